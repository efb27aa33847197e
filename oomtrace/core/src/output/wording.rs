//! Every sentence oomtrace prints: the summaries of verdicts, stops and
//! findings, and the small phrases they share. Built from the finished
//! output types only, so wording changes never touch a rule.

use crate::{
    node::pods::{self, Level},
    output::verdict::{
        Container, LimitBasis, LimitLowered, Pod, PressureKind, StopReason, Stopped, Verdict,
        VerdictKind,
    },
};

/// A size as Kubernetes writes quantities (`64Mi`, `1.5Gi`), to one
/// decimal; under 1Ki, bytes (`512B`).
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "Ki", "Mi", "Gi", "Ti"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        return format!("{b}B");
    }
    let s = format!("{v:.1}");
    let s = s.strip_suffix(".0").unwrap_or(&s);
    format!("{s}{}", UNITS[u])
}

fn capitalize(s: String) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => s,
    }
}

/// "container c of pod ns/name", or as much of it as is known.
pub fn describe(pod: Option<&Pod>, container: Option<&Container>) -> String {
    let container_ref = container;
    let pod = pod.map(|p| match (&p.namespace, &p.name) {
        (Some(ns), Some(n)) => format!("pod {ns}/{n}"),
        _ => match &p.uid {
            Some(uid) => format!("pod {uid}"),
            None => "a pod".to_string(),
        },
    });
    let container = container.map(|c| match &c.name {
        Some(n) => format!("container {n}"),
        None => format!("container {}", c.id.short()),
    });
    match (container, pod) {
        (Some(c), Some(p)) => format!("{c} of {p}"),
        (None, Some(p)) => p,
        // A container outside Kubernetes (`docker run -m`): named by its runtime.
        (Some(c), None) => match container_runtime(container_ref) {
            Some(r) => format!("{} {c}", capitalize(r.to_string())),
            None => c,
        },
        (None, None) => "a process outside any pod".to_string(),
    }
}

/// The verdict's one-sentence summary. Only the pod_limit sentence starts
/// with our own words ("container …"); the others start with a capital
/// already or with a process name, kept as the kernel spelled it.
pub fn summary(v: &Verdict) -> String {
    let s = match v.verdict {
        VerdictKind::PodLimit => capitalize(sentence(v)),
        _ => sentence(v),
    };
    let s = match &v.evidence.limit_lowered {
        Some(l) => format!("{s} {}", limit_lowered(l)),
        None => s,
    };
    let s = with_breakdown(v, s);
    match v.source {
        "kernel_log" => format!("While oomtrace was not running: {s}"),
        _ => s,
    }
}

/// A node-pressure kill's sentence ends with where the node's memory was.
fn with_breakdown(v: &Verdict, s: String) -> String {
    match v
        .node_memory
        .as_ref()
        .and_then(|n| n.breakdown.as_ref())
        .filter(|_| v.verdict == VerdictKind::NodePressure)
    {
        Some(b) => format!("{s} {}", b.summary),
        None => s,
    }
}

/// A limit lowered before the kill: when the write was seen, when it was;
/// else only a reading of the higher limit before it, so the time is a
/// bound.
fn limit_lowered(l: &LimitLowered) -> String {
    let (when, how) = match l.basis {
        LimitBasis::WriteHook => ("", "the write was seen in the kernel"),
        LimitBasis::Sampler => (
            "at most ",
            "the near_oom sampler last read the higher limit then",
        ),
        LimitBasis::Pressure => (
            "at most ",
            "a reclaim record last read the higher limit then",
        ),
        LimitBasis::StartupScan => (
            "at most ",
            "oomtrace's start-up scan last read the higher limit then",
        ),
        LimitBasis::EarlierWrite => (
            "at most ",
            "a write seen in the kernel left the higher limit then",
        ),
    };
    format!(
        "Its limit had been lowered from {} to {} {when}{} s before the kill ({how}): the lowering, not only the workload's growth, brought the kill.",
        human_bytes(l.from_bytes),
        human_bytes(l.to_bytes),
        l.s_before
    )
}

/// The summary of a verdict read from the kernel's text as it was written:
/// a saved log (`oomtrace explain`), or live when no victim hook sees kills.
pub fn summary_from_log(v: &Verdict) -> String {
    if v.source == "kubelet_log" {
        return format!("From the kubelet log: {}", kubelet_eviction(v));
    }
    let s = with_breakdown(
        v,
        match v.verdict {
            VerdictKind::PodLimit => capitalize(sentence(v)),
            _ => sentence(v),
        },
    );
    let chosen = v
        .evidence
        .chosen
        .as_ref()
        .map(|c| {
            format!(
                " The kernel chose {} and killed this child of it instead.",
                process(c.comm.as_deref(), c.pid)
            )
        })
        .unwrap_or_default();
    format!("From the kernel log: {s}{chosen}")
}

fn container_runtime(c: Option<&Container>) -> Option<&'static str> {
    c.and_then(|c| c.runtime).map(|r| match r {
        crate::node::pods::Runtime::Docker => "Docker",
        other => other.as_str(),
    })
}

/// An eviction the kubelet's eviction manager logged: it evicts pods, so no
/// process is named; the resource says whether memory was the reason.
fn kubelet_eviction(v: &Verdict) -> String {
    let pod = describe(v.pod.as_ref(), None);
    let uid = v
        .pod
        .as_ref()
        .filter(|p| p.name.is_some())
        .and_then(|p| p.uid.as_ref())
        .map(|u| format!(" (uid {u})"))
        .unwrap_or_default();
    let why = match v.evidence.eviction_resource.as_deref() {
        Some("memory") => " to reclaim memory: the node was under memory pressure.".to_string(),
        Some(r) => format!(" to reclaim {r}: disk or other pressure, not a memory kill."),
        None => ": the node was under pressure; the log here does not name the resource it reclaimed (memory or disk).".to_string(),
    };
    let grace = v
        .evidence
        .grace_s
        .map(|g| format!(" Its containers were given a {g:.0} s grace period."))
        .unwrap_or_default();
    format!("the kubelet evicted {pod}{uid}{why}{grace}")
}

/// Whose limit it was, by the level of the limit's cgroup: a container's
/// own, the pod's, or a cgroup inside the pod that oomtrace cannot name.
fn whose_limit(v: &Verdict) -> &'static str {
    let Some(path) = v.limit.as_ref().and_then(|l| l.cgroup.as_deref()) else {
        return "its memory limit";
    };
    match pods::parse_cgroup_path(path).map(|k| k.level) {
        Some(Level::Pod) if pods::is_pod_cgroup(path) => "the pod's memory limit",
        Some(Level::Pod) => "the cgroup's memory limit",
        // A cgroup the container made (a unit of a systemd inside) with a
        // limit of its own.
        Some(Level::Container) if !pods::is_container_cgroup(path) => "the cgroup's memory limit",
        _ => "its memory limit",
    }
}

/// A process by its command, or as `a process` where the evidence has no
/// name for it: never an empty name.
pub fn name(comm: Option<&str>) -> &str {
    comm.filter(|c| !c.is_empty()).unwrap_or("a process")
}

/// `comm (pid N)`, or `a process (pid N)` without a command.
pub fn process(comm: Option<&str>, pid: u32) -> String {
    format!("{} (pid {pid})", name(comm))
}

fn sentence(v: &Verdict) -> String {
    let victim = v.victim.as_ref();
    let who = victim.map(|x| {
        let comm = name(x.comm.as_deref());
        match x.rss_bytes {
            Some(rss) => format!("{comm} (pid {}, rss {})", x.pid, human_bytes(rss)),
            None => format!("{comm} (pid {})", x.pid),
        }
    });
    // A saved log cut before the report's kill line names no victim.
    const UNNAMED: &str = "the log ends before the kernel names the process it killed";
    let limit = v.limit.as_ref();
    let limit_bytes = limit
        .and_then(|l| l.limit_bytes)
        .map(|b| format!(" of {}", human_bytes(b)))
        .unwrap_or_default();
    let limit_at = limit
        .and_then(|l| l.cgroup.as_deref())
        .map(|c| format!(" ({c})"))
        .unwrap_or_default();
    let place = describe(v.pod.as_ref(), v.container.as_ref());
    let reports = match v.kubelet_reports {
        Some(true) => " The kubelet reports OOMKilled.",
        Some(false) => " The kubelet will not report it: the container's init survived.",
        None => "",
    };
    match (v.verdict, v.kind) {
        (VerdictKind::PodLimit, _) => {
            let whose = whose_limit(v);
            let at = match whose {
                "the cgroup's memory limit" => limit_at,
                _ => String::new(),
            };
            match who {
                Some(who) => format!(
                    "{place} hit {whose}{limit_bytes}{at}; the kernel killed {who}.{reports}"
                ),
                None => format!("{place} hit {whose}{limit_bytes}{at}; {UNNAMED}."),
            }
        }
        (VerdictKind::CgroupLimit, _) => format!(
            "a memory-cgroup kill of {}{}; the log does not name the cgroup, so whose limit it was (a container's, a pod's, kubepods' or a host service's) is unknown.",
            who.as_deref().unwrap_or("a process the log does not name"),
            // Kernel-log mode: the process was seen in its container.
            match (&v.pod, &v.container) {
                (None, None) => String::new(),
                _ => format!(" in {place}"),
            }
        ),
        (VerdictKind::NodePressure, Some(PressureKind::AllocatableOom)) => match who {
            Some(who) => format!(
                "Pods together exceeded node allocatable: the kubepods limit{limit_bytes}{limit_at} was hit; the kernel killed {who} in {place}.{reports}"
            ),
            None => format!(
                "Pods together exceeded node allocatable: the kubepods limit{limit_bytes}{limit_at} was hit in {place}; {UNNAMED}."
            ),
        },
        (VerdictKind::NodePressure, Some(PressureKind::UserspaceOomKiller)) => {
            userspace_killer(v, who.as_deref().unwrap_or("a process"))
        }
        (VerdictKind::NodePressure, Some(PressureKind::Eviction)) => {
            let by = v
                .signal
                .as_ref()
                .map(|s| {
                    let sender = process(s.sender.comm.as_deref(), s.sender.pid);
                    format!("{} from {sender}", s.name)
                })
                .unwrap_or_default();
            // The threshold beside the reading, when the verdict has it:
            // how far under it the node was is the story.
            let avail = v
                .node_memory
                .as_ref()
                .map(|n| {
                    let threshold = n
                        .eviction_threshold_bytes
                        .map(|t| {
                            let which = v.evidence.eviction_threshold.unwrap_or("eviction");
                            format!(" (the kubelet's {which} threshold: {})", human_bytes(t))
                        })
                        .unwrap_or_default();
                    format!(
                        " with memory.available at {}{threshold}",
                        human_bytes(n.memory_available_bytes)
                    )
                })
                .unwrap_or_default();
            let kind = match v.evidence.eviction_threshold {
                Some("soft") => "a soft eviction",
                _ => "a hard eviction",
            };
            let soft = v.evidence.eviction_threshold == Some("soft");
            let hard_grace_s = crate::node::kubelet::HARD_EVICTION_GRACE_NS as f64 / 1e9;
            let how = match (v.evidence.basis, v.evidence.grace_s) {
                (Some("runtime_sigterm_then_exit"), _) => {
                    format!(" It exited within {kind}'s grace period after the runtime's SIGTERM (its exit is inferred, not seen).")
                }
                // The kubelet's word decides whatever the grace: a long one
                // is the pod's own, which kubelets of some versions gave
                // evicted pods.
                (Some("kubelet_log"), Some(g)) if !soft && g > hard_grace_s => format!(
                    " The runtime's SIGKILL came {g:.1} s after its SIGTERM, longer than a hard eviction's grace period: the pod's own, which kubelets of some versions give evicted pods (kubernetes#115819); the kubelet's log names this eviction."
                ),
                // A soft eviction's own grace is not in the verdict to compare.
                (Some("kubelet_log"), Some(g)) if soft => format!(
                    " The runtime's SIGKILL came {g:.1} s after its SIGTERM; the kubelet's log names this eviction."
                ),
                (_, Some(g)) => format!(" The runtime's SIGKILL came {g:.1} s after its SIGTERM: {kind}'s grace period."),
                (Some("kubelet_log"), None) => {
                    " The kubelet's log names this eviction.".to_string()
                }
                _ => String::new(),
            };
            let who = who.unwrap_or_else(|| "its process".to_string());
            format!("The node was under memory pressure{avail}: {place} was evicted, {who} ended by {by}.{how}")
        }
        (VerdictKind::NodePressure, _) => {
            let place = if v.pod.is_none() && v.container.is_none() {
                String::new()
            } else {
                format!(" in {place}")
            };
            // A cpuset or memory policy confined the allocation to some
            // NUMA nodes: those ran out, not necessarily the node.
            let what = match v.evidence.constraint {
                Some(crate::output::verdict::Constraint::Other) => {
                    "The memory nodes an allocation's cpuset or memory policy allowed ran out (a constrained OOM, not the node's memory as a whole)"
                }
                _ => "The node ran out of memory (global OOM)",
            };
            match who {
                Some(who) => format!("{what}; the kernel killed {who}{place}."),
                None => format!("{what}{place}; {UNNAMED}."),
            }
        }
        (VerdictKind::EscapedProcess, _) => format!(
            "{} belongs to {place} but runs in {}, outside the pod's cgroup, so the pod's limit never held it; the limit{limit_bytes}{limit_at} was hit.",
            who.as_deref().unwrap_or("A process"),
            victim
                .and_then(|x| x.cgroup.as_deref())
                .unwrap_or("another cgroup")
        ),
        (VerdictKind::System, _) => match who {
            Some(who) => format!(
                "Host process {who} in {} was killed: the limit{limit_bytes}{limit_at} was hit.",
                victim
                    .and_then(|x| x.cgroup.as_deref())
                    .unwrap_or("an unknown cgroup")
            ),
            None => format!(
                "The host cgroup{limit_at} hit its limit{limit_bytes}; {UNNAMED}."
            ),
        },
    }
}

/// A userspace OOM killer's kill: who, how, the node's memory, what the
/// kubelet will show, and that it rests on the sender's name.
fn userspace_killer(v: &Verdict, who: &str) -> String {
    let Some(k) = v.killer.as_ref() else {
        return format!("A userspace OOM killer ended {who}.");
    };
    let place = match (&v.pod, &v.container) {
        (None, None) => " on the host (no pod)".to_string(),
        (pod, container) => format!(" in {}", describe(pod.as_ref(), container.as_ref())),
    };
    let mut how = String::new();
    for (i, s) in k.signals.iter().enumerate() {
        let ignored = if s.ignored {
            " (ignored: it has no handler for it)"
        } else {
            ""
        };
        match i {
            0 => how.push_str(&format!("{}{ignored}", s.name)),
            _ => how.push_str(&format!(
                ", then {} {:.1} s later{ignored}",
                s.name, s.after_s
            )),
        }
    }
    let name = match k.comm.as_deref() {
        Some(c) if c != k.known_as => format!("{} ({c})", k.known_as),
        _ => k.known_as.clone(),
    };
    let mem = v
        .node_memory
        .as_ref()
        .map(|n| {
            let psi = n
                .psi
                .map(|p| {
                    format!(
                        " (memory PSI avg10: some {:.2} %, full {:.2} %)",
                        p.some_avg10, p.full_avg10
                    )
                })
                .unwrap_or_default();
            format!(
                " At its first signal MemAvailable was {} of {}{psi}.",
                human_bytes(n.mem_available_bytes),
                human_bytes(n.capacity_bytes)
            )
        })
        .unwrap_or_default();
    let last = k.signals.last().map(|s| s.number);
    let ended = match v.evidence.basis {
        Some("userspace_killer_identity_then_exit") => {
            " It was gone after the SIGTERM (its exit is inferred, not seen)."
        }
        _ => "",
    };
    let init = v.victim.as_ref().and_then(|x| x.ns_pid) == Some(1);
    let reports = match (v.kubelet_reports, init, last) {
        (Some(_), true, Some(9)) => {
            " The container's init died: the kubelet will show it Error with exit code 137, not OOMKilled.".to_string()
        }
        (Some(_), true, _) => {
            " The container's init ended: the kubelet will show it Error, with exit code 143 if it died of the SIGTERM (its own code if it handled it), not OOMKilled.".to_string()
        }
        (Some(_), false, _) => {
            " The container's init survived: the kubelet shows nothing for it (never OOMKilled) unless the init exits in turn.".to_string()
        }
        (None, _, _) => String::new(),
    };
    let by = match k.matched_by {
        "exe" => format!(
            "its executable's name ({})",
            k.exe.as_deref().unwrap_or("?")
        ),
        _ => "its process name".to_string(),
    };
    format!(
        "A userspace OOM killer, {name} (pid {}), ended {who}{place}: {how}.{mem}{ended}{reports} That this is an OOM kill is inferred from the sender's identity, {by}, not from the kernel.",
        k.pid
    )
}

/// A `stopped` line's sentence. `kubelet_log_read`: the kubelet's log was
/// read for this stop and named no eviction of its pod (what
/// `eviction_or_deletion` then says instead of where to look).
pub fn stopped(s: &Stopped, kubelet_log_read: bool) -> String {
    let sent = format!(
        "{} of {} was sent {} by {}",
        process(s.process.comm.as_deref(), s.process.pid),
        describe(s.pod.as_ref(), s.container.as_ref()),
        s.signal.name,
        process(s.signal.sender.comm.as_deref(), s.signal.sender.pid),
    );
    if s.reason == StopReason::EvictionOrDeletion {
        // Not "a deletion": kubelets with kubernetes#115819 (and #124405)
        // gave hard-evicted pods their whole terminationGracePeriodSeconds.
        let apart = if kubelet_log_read {
            format!(
                "the kubelet's log, which tells them apart, named no eviction of the pod within {} s of its end",
                crate::node::kubelet::KUBELET_LOG_WAIT_NS / 1_000_000_000
            )
        } else {
            "the kubelet's log (--kubelet-log) would tell them apart".to_string()
        };
        return format!(
            "{sent} while memory.available was under the kubelet's eviction threshold, and outlived an eviction's grace period before its whole pod stopped: that fits both an eviction by a kubelet that gives evicted pods their full grace period (kubernetes#115819) and a deletion or rollout; {apart}. Not an OOM."
        );
    }
    // Each reason follows the sender: "… by bash (pid 21698), which is not
    // a container runtime", never a second "by".
    let why = match s.reason {
        StopReason::NoMemoryPressure => " while the node was not under memory pressure",
        StopReason::SenderNotRuntime => {
            ", which is not a container runtime (the kubelet stops containers only through the runtime)"
        }
        StopReason::SigkillWithoutSigterm => {
            " with no SIGTERM before it (the kubelet always gives a grace period)"
        }
        StopReason::GraceLongerThanHardEviction => {
            " after a grace period longer than an eviction's (a deletion or rollout)"
        }
        StopReason::SurvivedUserspaceOomKiller => {
            return format!(
                "{sent}, a userspace OOM killer, and was still running long after it (past the killers' own wait for an exit) with no SIGKILL: not killed, not an OOM."
            );
        }
        StopReason::PodNotStopped => {
            " while the rest of its pod kept running (the kubelet evicts whole pods: a container restart)"
        }
        // Its own sentence, above: it is not "not an eviction".
        StopReason::EvictionOrDeletion => "",
    };
    format!("{sent}{why}: not an eviction, not an OOM.")
}

pub fn escape_detected(
    comm: &str,
    pid: u32,
    pod: Option<&Pod>,
    container: Option<&Container>,
    cgroup: &str,
) -> String {
    format!(
        "{comm} (pid {pid}) of {} moved to {cgroup}, outside its pod's cgroup: the pod's memory limit no longer applies to it.",
        describe(pod, container)
    )
}

pub fn cgroup_leak(pod: Option<&Pod>, cgroup: &str, empty_for_s: f64) -> String {
    capitalize(format!(
        "{} has had no process for {empty_for_s:.0} s, but its cgroup {cgroup} remains: a leaked pod cgroup (kubernetes#106957) the kubelet and runtime keep paying for.",
        describe(pod, None),
    ))
}

/// The `oomkilled_misreport` finding: what Kubernetes will show, and what
/// really happened.
pub fn oomkilled_misreport(
    pod: Option<&Pod>,
    container: Option<&Container>,
    m: &crate::output::verdict::Misreport,
) -> String {
    let init = m
        .process
        .as_ref()
        .map(|p| format!("its init {}", process(p.comm.as_deref(), p.pid)))
        .unwrap_or_else(|| "its init".to_string());
    let how = match (m.exit.signal, m.exit.sender.as_ref()) {
        (Some(sig), Some(s)) => {
            let what = if s.comm.as_deref().is_some_and(crate::node::pods::is_runtime) {
                "a stop"
            } else {
                "not the runtime"
            };
            let sender = process(s.comm.as_deref(), s.pid);
            format!("ended by {sig} from {sender}, {what}")
        }
        _ => "ended without the OOM killer (by its own exit or a signal oomtrace did not see)"
            .to_string(),
    };
    let kills: Vec<String> = m
        .earlier_kills
        .iter()
        .take(3)
        .map(|k| {
            format!(
                "{}{}",
                process(k.victim.comm.as_deref(), k.victim.pid),
                k.time
                    .as_deref()
                    .map(|t| format!(" at {t}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    let more = m.earlier_kills.len().saturating_sub(kills.len()) + m.more_kills;
    let which = match (kills.len(), more) {
        (1, 0) => format!("the OOM kill was of another process, {}", kills[0]),
        (_, 0) => format!(
            "the OOM kills were of other processes: {}",
            kills.join(", ")
        ),
        _ => format!(
            "the OOM kills were of other processes: {} and {more} more",
            kills.join(", ")
        ),
    };
    format!(
        "Kubernetes will show {} OOMKilled, but {init} {how}; {which} (kubernetes#140716).",
        describe(pod, container)
    )
}

/// The `near_oom` finding: whose limit, how close, how fast.
pub fn near_oom(
    f: &crate::output::verdict::Finding,
    reason: crate::output::verdict::NearOomReason,
) -> String {
    let level = pods::parse_cgroup_path(&f.cgroup).map(|k| k.level);
    let (who, whose) = match level {
        Some(Level::Container) if !pods::is_container_cgroup(&f.cgroup) => (
            format!(
                "{} ({})",
                capitalize(describe(f.pod.as_ref(), f.container.as_ref())),
                f.cgroup
            ),
            "its",
        ),
        Some(Level::Container) => (
            capitalize(describe(f.pod.as_ref(), f.container.as_ref())),
            "its",
        ),
        Some(Level::Pod) if pods::is_pod_cgroup(&f.cgroup) => {
            (capitalize(describe(f.pod.as_ref(), None)), "the pod's")
        }
        Some(Level::Pod) => (
            format!(
                "{} ({})",
                capitalize(describe(f.pod.as_ref(), None)),
                f.cgroup
            ),
            "its",
        ),
        Some(Level::Kubepods) => (
            format!("The pods together ({})", f.cgroup),
            "the node allocatable",
        ),
        Some(Level::Qos(_)) => (format!("The pods of {}", f.cgroup), "their"),
        None => (format!("Host cgroup {}", f.cgroup), "its"),
    };
    let limit = f.limit_bytes.unwrap_or(0);
    let used = f.working_set_bytes.or(f.usage_bytes).unwrap_or(0);
    let pct = if limit > 0 {
        used as f64 * 100.0 / limit as f64
    } else {
        0.0
    };
    let at = format!(
        "{who} is at {pct:.0} % of {whose} {} limit",
        human_bytes(limit)
    );
    match (reason, f.growth_bytes_per_s, f.seconds_to_limit) {
        (crate::output::verdict::NearOomReason::Growing, Some(g), Some(eta)) => format!(
            "{at} and growing {}/s: about {eta:.1} s to an OOM kill.",
            human_bytes(g.max(0) as u64)
        ),
        _ => {
            format!("{at} and the kernel is already reclaiming at that limit: an OOM kill is near.")
        }
    }
}

/// A `missed` line: kills the kernel counted that got no verdict.
pub fn missed(count: u64, since: &str) -> String {
    let (kills, have, events) = match count {
        1 => ("1 process".to_string(), "has", "its event was"),
        n => (format!("{n} processes"), "have", "their events were"),
    };
    format!(
        "The kernel OOM-killed {kills} since {since} that {have} no verdict: {events} lost (see the `lost` lines; enlarge --ring-buffer-bytes)."
    )
}

/// "1,843" (a count with thousands separators).
fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The `dying_cgroups` finding's sentence.
pub fn dying_cgroups(g: &crate::node::node_memory::DyingGrowth) -> String {
    let n = match (g.count_before, g.count) {
        (Some(a), Some(b)) => format!(
            "{} removed memory cgroups (from {} {} min ago)",
            count(b),
            count(a),
            g.window_s / 60
        ),
        _ => "Removed memory cgroups".to_string(),
    };
    let under = g
        .by_parent
        .first()
        .map(|d| format!(", the most under {} ({})", d.cgroup, human_bytes(d.bytes)))
        .unwrap_or_default();
    format!(
        "{n} are still held by the kernel and keep growing: they pin {} (from {}){under}. Memory charged to them (page cache most often) keeps them; the pods' numbers no longer add up to the node's.",
        human_bytes(g.bytes),
        human_bytes(g.bytes_before)
    )
}

/// The node memory breakdown's sentence: the totals, then the largest
/// share that is not free memory nor a pod's own.
pub fn node_memory_summary(b: &crate::node::node_memory::Breakdown) -> String {
    let head = format!(
        "Of {} of memory, {} is free and pods hold {}",
        human_bytes(b.total_bytes),
        human_bytes(b.free_bytes),
        human_bytes(b.pods.bytes)
    );
    let Some((part, bytes)) = crate::node::node_memory::largest_outside_pods(b) else {
        return format!("{head}.");
    };
    let size = human_bytes(bytes);
    let top = |g: &crate::node::node_memory::Group| {
        g.top
            .first()
            .map(|c| {
                format!(
                    " ({} the largest, {})",
                    c.cgroup,
                    human_bytes(c.usage_bytes)
                )
            })
            .unwrap_or_default()
    };
    let share = match part {
        "dying_cgroups" => {
            let n = b
                .dying_cgroups
                .count
                .map(|n| format!("{} ", count(n)))
                .unwrap_or_default();
            let of_pods = if b
                .dying_cgroups
                .by_parent
                .first()
                .is_some_and(|d| pods::parse_cgroup_path(&d.cgroup).is_some())
            {
                " of deleted pods"
            } else {
                ""
            };
            format!("{size} held by {n}dying cgroups{of_pods} (removed, their page cache still charged to them)")
        }
        "system" => format!("{size} in system.slice{}", top(&b.system)),
        "other_cgroups" => format!(
            "{size} in cgroups outside kubepods and system.slice{}",
            top(&b.other)
        ),
        "kernel" => format!(
            "{size} of kernel memory charged to no cgroup (slab {})",
            human_bytes(
                b.kernel
                    .slab_reclaimable_bytes
                    .saturating_add(b.kernel.slab_unreclaimable_bytes)
            )
        ),
        "page_cache_unowned" => format!("{size} of page cache charged to no live cgroup"),
        "unowned_anon" => format!("{size} of process memory in the root cgroup"),
        _ => format!("{size} unaccounted (in no counter oomtrace reads)"),
    };
    format!("{head}; the largest share outside the pods: {share}.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::verdict::{Finding, FindingKind, Identity, NearOomReason};

    #[test]
    fn a_near_oom_below_a_container_names_its_cgroup() {
        let own = format!(
            "/kubepods/burstable/pod{}/{}",
            "6f1c2a9e-3b7d-4c11-9e0a-2b8f5d4c7a10",
            "c".repeat(64)
        );
        let unit = format!("{own}/system.slice/db.service");
        let of = |cgroup: &str| Finding {
            container: Identity::of_path(cgroup).container,
            pod: Identity::of_path(cgroup).pod,
            ..Finding::new(FindingKind::NearOom, "T".into(), cgroup.to_string())
        };
        let text = near_oom(&of(&unit), NearOomReason::Reclaiming);
        assert!(text.contains(&format!("({unit})")), "{text}");
        let text = near_oom(&of(&own), NearOomReason::Reclaiming);
        assert!(!text.contains(&format!("({own})")), "{text}");
    }

    #[test]
    fn sizes_are_kubernetes_quantities() {
        assert_eq!(human_bytes(64 << 20), "64Mi");
        assert_eq!(human_bytes(3 << 29), "1.5Gi");
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(1024), "1Ki");
        assert_eq!(human_bytes((64 << 20) - 4096), "64Mi");
        assert_eq!(human_bytes(100_000_000), "95.4Mi");
    }

    #[test]
    fn missed_counts_in_words() {
        assert_eq!(
            missed(1, "T"),
            "The kernel OOM-killed 1 process since T that has no verdict: its event was lost (see the `lost` lines; enlarge --ring-buffer-bytes)."
        );
        assert!(missed(3, "T")
            .starts_with("The kernel OOM-killed 3 processes since T that have no verdict"));
    }
}
