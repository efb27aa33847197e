//! Attribution: kernel events and a read-only view of the node in, verdicts
//! out. No I/O here — every rule is testable from a recorded trace, and a
//! replay gives the same verdicts as the live run.

use std::collections::HashMap;

use oomtrace_common::{MemcgLevel, OomEvent, SignalEvent, TaskInfo, VictimEvent, VictimSource};

use crate::{
    cgroup::{CgroupId, CgroupTree},
    event,
    oom_report::{Constraint as KmsgConstraint, OomSummary},
    pods::{self, KubeCgroup, Level},
    verdict::{
        Constraint, ConstraintSource, Container, Evidence, Limit, NodeMemory, Pod, PressureKind,
        Process, Signal, Stopped, Trigger, Verdict, VerdictKind, Victim,
    },
};

/// A page counter at or above this many pages is unlimited
/// (`PAGE_COUNTER_MAX` is `LONG_MAX / PAGE_SIZE`, ~2^51 with 4 KiB pages).
const UNLIMITED_PAGES: u64 = 1 << 50;
/// The charge that failed is at most a huge page (512 small pages), so the
/// OOMing cgroup's usage sits within that of its max when the victim is chosen.
const AT_LIMIT_SLACK_PAGES: u64 = 512;
/// Victims of one invocation (oom.group) are marked back to back by the
/// same task while the kernel holds oom_lock.
const SAME_INCIDENT_NS: u64 = 20_000_000;

/// The node as attribution sees it: no I/O behind any of it.
pub struct Snapshot<'a> {
    pub tree: &'a CgroupTree,
    pub page_size: u64,
    /// CLOCK_REALTIME − CLOCK_BOOTTIME, ns, sampled at start.
    pub boot_to_wall_ns: i128,
    /// Kernel-log summaries by victim pid, when they arrived before the verdict.
    pub kmsg: &'a HashMap<u32, OomSummary>,
}

/// What the engine learned at the edge for this victim.
#[derive(Default)]
pub struct Hints<'a> {
    /// The victim's cgroup when the hook could not read it (classic
    /// tracepoint): /proc or the attach history.
    pub victim_cgroup: Option<&'a str>,
    /// The container cgroup whose process first lived in the victim's pid
    /// namespace: ties a process to its pod whatever cgroup it sits in.
    pub victim_owner: Option<&'a str>,
    /// The same for the trigger.
    pub trigger_owner: Option<&'a str>,
}

#[derive(Default)]
pub struct Attributor {
    /// Per-OOM records waiting for their victims, by trigger tid.
    pending: HashMap<u32, OomEvent>,
    last: Option<LastVictim>,
}

struct LastVictim {
    trigger_tid: u32,
    limit: Option<u64>,
    boot_ns: u64,
    incident: String,
    scope: Scope,
}

#[derive(Clone)]
struct Scope {
    constraint: Option<Constraint>,
    source: Option<ConstraintSource>,
    limit: Option<LimitAt>,
}

#[derive(Clone)]
struct LimitAt {
    id: Option<CgroupId>,
    path: Option<String>,
    usage_pages: Option<u64>,
    max_pages: Option<u64>,
}

impl Attributor {
    pub fn on_oom(&mut self, ev: &OomEvent) {
        self.pending.insert(ev.trigger.tid, *ev);
    }

    pub fn on_victim(
        &mut self,
        ev: &VictimEvent,
        snap: &Snapshot<'_>,
        hints: &Hints<'_>,
    ) -> Verdict {
        let boot_ns = ev.header.boot_ns;
        let oom = self
            .pending
            .get(&ev.trigger.tid)
            .filter(|o| boot_ns.saturating_sub(o.header.boot_ns) < 1_000_000_000)
            .copied();
        let scope = scope(ev, oom.as_ref(), snap);
        let scope = self.same_oom_scope(ev, oom.as_ref()).unwrap_or(scope);

        let victim_cgroup = leaf(&ev.victim)
            .and_then(|id| snap.tree.path(id).map(str::to_owned))
            .or_else(|| hints.victim_cgroup.map(str::to_owned))
            .or_else(|| {
                snap.kmsg
                    .get(&ev.victim.tgid)
                    .and_then(|s| s.task_memcg.clone())
            });
        let trigger_cgroup = leaf(&ev.trigger).and_then(|id| snap.tree.path(id).map(str::to_owned));

        let incident = self.incident(ev, oom.as_ref(), &scope);

        let victim_kube = victim_cgroup.as_deref().and_then(pods::parse_cgroup_path);
        let limit_kube = scope
            .limit
            .as_ref()
            .and_then(|l| l.path.as_deref())
            .and_then(pods::parse_cgroup_path);
        let escape = escape(victim_cgroup.as_deref(), hints.victim_owner).or_else(|| {
            escape(trigger_cgroup.as_deref(), hints.trigger_owner)
                .filter(|_| victim_kube.as_ref().is_none_or(|k| k.pod.is_none()))
        });
        let limit_outside_pods = limit_kube.as_ref().is_none_or(|k| k.pod.is_none());
        let (verdict, kind) = match &escape {
            Some(_) if scope.constraint == Some(Constraint::Memcg) && limit_outside_pods => {
                (VerdictKind::EscapedProcess, None)
            }
            _ => decide(&scope, victim_kube.as_ref(), limit_kube.as_ref()),
        };
        // The pod is the victim's; a kill at the kubepods or QoS level names
        // the victim's pod too, while the limit names the level. An escaped
        // process is named by the pod its namespaces belong to.
        let identity = match (&escape, verdict) {
            (Some(owner), VerdictKind::EscapedProcess) => Some(owner),
            _ => victim_kube
                .as_ref()
                .filter(|k| k.pod.is_some())
                .or(limit_kube.as_ref().filter(|k| k.pod.is_some())),
        };
        let pod = identity.and_then(|k| {
            k.pod.clone().map(|uid| Pod {
                uid,
                namespace: None,
                name: None,
                qos: k.qos,
            })
        });
        let container = identity.and_then(|k| {
            k.container.clone().map(|c| Container {
                id: c.id,
                name: None,
                runtime: c.runtime,
            })
        });

        let page = snap.page_size;
        let victim = Victim {
            pid: ev.victim.tgid,
            comm: event::comm(&ev.victim.comm),
            oom_score_adj: Some(ev.oom_score_adj),
            rss_bytes: Some((ev.anon_rss_pages + ev.file_rss_pages + ev.shmem_rss_pages) * page),
            anon_rss_bytes: Some(ev.anon_rss_pages * page),
            file_rss_bytes: Some(ev.file_rss_pages * page),
            shmem_rss_bytes: Some(ev.shmem_rss_pages * page),
            total_vm_bytes: Some(ev.total_vm_pages * page),
            cgroup: victim_cgroup,
            ns_pid: (ev.victim.ns_pid != 0).then_some(ev.victim.ns_pid),
        };
        let trigger = Trigger {
            pid: ev.trigger.tgid,
            comm: event::comm(&ev.trigger.comm),
            cgroup: trigger_cgroup,
        };
        let limit = scope.limit.as_ref().map(|l| Limit {
            cgroup: l.path.clone(),
            limit_bytes: l
                .max_pages
                .filter(|&m| m < UNLIMITED_PAGES)
                .map(|m| m * page),
            usage_bytes: l.usage_pages.map(|u| u * page),
        });
        let mut v = Verdict {
            verdict,
            kind,
            source: "bpf",
            incident,
            time: wall_time(boot_ns, snap.boot_to_wall_ns),
            victim,
            trigger: Some(trigger),
            limit,
            pod,
            container,
            kubelet_reports: None,
            memory: None,
            node_memory: None,
            signal: None,
            top_consumers: None,
            growth: None,
            evidence: Evidence {
                constraint: scope.constraint,
                constraint_source: scope.source,
                victim_hook: match ev.source {
                    s if s == VictimSource::TpBtf as u32 => "tp_btf",
                    s if s == VictimSource::RawTp as u32 => "raw_tp",
                    _ => "tracepoint",
                },
                pid_ns: (ev.victim.pid_ns != 0).then_some(ev.victim.pid_ns),
                mnt_ns: (ev.victim.mnt_ns != 0).then_some(ev.victim.mnt_ns),
                pod_cgroup: match verdict {
                    VerdictKind::EscapedProcess => hints
                        .victim_owner
                        .or(hints.trigger_owner)
                        .map(str::to_owned),
                    _ => None,
                },
            },
            summary: String::new(),
        };
        v.summary = summary(&v);
        v
    }

    fn incident(&mut self, ev: &VictimEvent, oom: Option<&OomEvent>, scope: &Scope) -> String {
        let boot_ns = ev.header.boot_ns;
        let limit = scope.limit.as_ref().and_then(|l| l.id).map(|c| c.0);
        let incident = match (oom, &self.last) {
            (Some(o), _) => format!("oom-{}", o.header.boot_ns),
            (None, Some(last))
                if last.trigger_tid == ev.trigger.tid
                    && last.limit == limit
                    && boot_ns.saturating_sub(last.boot_ns) < SAME_INCIDENT_NS =>
            {
                last.incident.clone()
            }
            _ => format!("oom-{boot_ns}"),
        };
        self.last = Some(LastVictim {
            trigger_tid: ev.trigger.tid,
            limit,
            boot_ns,
            incident: incident.clone(),
            scope: scope.clone(),
        });
        incident
    }

    /// Without a per-OOM record, the later victims of one oom.group kill
    /// get the first one's memcg scope: by the time the kernel marks them,
    /// the first victim's memory may already be freed (the oom reaper runs
    /// beside the kill), so the counters no longer sit at the limit. Same
    /// trigger, marked back to back, inside the cgroup whose limit was hit:
    /// the same invocation of the OOM killer.
    fn same_oom_scope(&self, ev: &VictimEvent, oom: Option<&OomEvent>) -> Option<Scope> {
        if oom.is_some() {
            return None;
        }
        let last = self.last.as_ref()?;
        let limit_id = last.scope.limit.as_ref()?.id?;
        let vict = chain(&ev.victim);
        let inside = vict.is_empty() || vict.iter().any(|l| l.id == limit_id.0);
        (last.trigger_tid == ev.trigger.tid
            && last.scope.constraint == Some(Constraint::Memcg)
            && last.scope.source == Some(ConstraintSource::MemcgCounters)
            && ev.header.boot_ns.saturating_sub(last.boot_ns) < SAME_INCIDENT_NS
            && inside)
            .then(|| last.scope.clone())
    }
}

/// A process whose namespaces tie it to a container (`owner`, the
/// container's cgroup) while its own cgroup is outside that pod.
fn escape(cgroup: Option<&str>, owner: Option<&str>) -> Option<KubeCgroup> {
    let owner_kube = pods::parse_cgroup_path(owner?)?;
    let owner_pod = owner_kube.pod.as_ref()?;
    let here = cgroup.and_then(pods::parse_cgroup_path);
    let same_pod = here.as_ref().and_then(|k| k.pod.as_ref()) == Some(owner_pod);
    (!same_pod && cgroup.is_some()).then_some(owner_kube)
}

/// The kubelet reports `OOMKilled` only when the container's init process
/// died (kubernetes#78973): the victim is pid 1 of its namespace, or an
/// oom.group kill took the whole container.
/// Null when the victim shares the host's pid namespace (a hostPID pod, or
/// no container at all): there pid 1 says nothing about the container.
pub fn kubelet_reports(v: &Verdict, oom_group: Option<bool>, host_pid_ns: bool) -> Option<bool> {
    v.container.as_ref()?;
    if host_pid_ns {
        return oom_group.filter(|&g| g);
    }
    if v.verdict == VerdictKind::EscapedProcess {
        return Some(v.victim.ns_pid == Some(1));
    }
    match (v.victim.ns_pid, oom_group) {
        (Some(1), _) | (_, Some(true)) => Some(true),
        (Some(_), _) => Some(false),
        (None, _) => None,
    }
}

fn leaf(t: &TaskInfo) -> Option<CgroupId> {
    (t.memcg_depth > 0 && t.memcg[0].id != 0).then(|| CgroupId(t.memcg[0].id))
}

fn chain(t: &TaskInfo) -> &[MemcgLevel] {
    let n = (t.memcg_depth as usize).min(t.memcg.len());
    &t.memcg[..n]
}

/// The constraint and the cgroup whose limit was hit, best source first.
fn scope(ev: &VictimEvent, oom: Option<&OomEvent>, snap: &Snapshot<'_>) -> Scope {
    let path_of = |id: u64| snap.tree.path(CgroupId(id)).map(str::to_owned);
    if let Some(o) = oom {
        if o.memcg.id == 0 {
            return Scope {
                constraint: Some(Constraint::Global),
                source: Some(ConstraintSource::OomControl),
                limit: None,
            };
        }
        return Scope {
            constraint: Some(Constraint::Memcg),
            source: Some(ConstraintSource::OomControl),
            limit: Some(LimitAt {
                id: Some(CgroupId(o.memcg.id)),
                path: path_of(o.memcg.id),
                usage_pages: Some(o.memcg.usage_pages),
                max_pages: Some(o.memcg.max_pages),
            }),
        };
    }
    let trig = chain(&ev.trigger);
    let vict = chain(&ev.victim);
    if !trig.is_empty() {
        // The OOMing memcg is an ancestor of both: the trigger's charge
        // failed there, and the victim was chosen inside it.
        let at_limit = trig.iter().find(|l| {
            (vict.is_empty() || vict.iter().any(|v| v.id == l.id))
                && l.max_pages < UNLIMITED_PAGES
                && l.usage_pages + AT_LIMIT_SLACK_PAGES >= l.max_pages
        });
        return match at_limit {
            Some(l) => Scope {
                constraint: Some(Constraint::Memcg),
                source: Some(ConstraintSource::MemcgCounters),
                limit: Some(LimitAt {
                    id: Some(CgroupId(l.id)),
                    path: path_of(l.id),
                    usage_pages: Some(l.usage_pages),
                    max_pages: Some(l.max_pages),
                }),
            },
            None => Scope {
                constraint: Some(Constraint::Global),
                source: Some(ConstraintSource::MemcgCounters),
                limit: None,
            },
        };
    }
    if let Some(s) = snap.kmsg.get(&ev.victim.tgid) {
        let constraint = match s.constraint {
            KmsgConstraint::Memcg => Constraint::Memcg,
            KmsgConstraint::None => Constraint::Global,
            _ => Constraint::Other,
        };
        let limit = s.oom_memcg.clone().map(|p| LimitAt {
            id: None,
            path: Some(p),
            usage_pages: None,
            max_pages: None,
        });
        return Scope {
            constraint: Some(constraint),
            source: Some(ConstraintSource::KernelLog),
            limit,
        };
    }
    Scope {
        constraint: None,
        source: None,
        limit: None,
    }
}

fn decide(
    scope: &Scope,
    victim: Option<&KubeCgroup>,
    limit: Option<&KubeCgroup>,
) -> (VerdictKind, Option<PressureKind>) {
    let victim_in_pod = victim.is_some_and(|k| k.pod.is_some());
    match scope.constraint {
        Some(Constraint::Global) | Some(Constraint::Other) => {
            (VerdictKind::NodePressure, Some(PressureKind::SystemOom))
        }
        Some(Constraint::Memcg) => match limit.map(|k| &k.level) {
            Some(Level::Pod) | Some(Level::Container) => (VerdictKind::PodLimit, None),
            Some(Level::Kubepods) | Some(Level::Qos(_)) => (
                VerdictKind::NodePressure,
                Some(PressureKind::AllocatableOom),
            ),
            // A limit outside kubepods: a host cgroup's own limit (an
            // escaped pod process is caught before this).
            None => (VerdictKind::System, None),
        },
        // Constraint unreadable: say only what the victim's place tells.
        None if victim_in_pod => (VerdictKind::PodLimit, None),
        None => (VerdictKind::System, None),
    }
}

pub fn wall_time(boot_ns: u64, boot_to_wall_ns: i128) -> String {
    let wall = boot_ns as i128 + boot_to_wall_ns;
    time::OffsetDateTime::from_unix_timestamp_nanos(wall)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub fn summary(v: &Verdict) -> String {
    // Only the pod_limit sentence starts with our own words ("container …");
    // the others start with a capital already or with a process name, which
    // is kept as the kernel spelled it.
    match v.verdict {
        VerdictKind::PodLimit => capitalize(sentence(v)),
        _ => sentence(v),
    }
}

pub fn capitalize(s: String) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => s,
    }
}

fn sentence(v: &Verdict) -> String {
    let who = match v.victim.rss_bytes {
        Some(rss) => format!(
            "{} (pid {}, rss {})",
            v.victim.comm,
            v.victim.pid,
            human_bytes(rss)
        ),
        None => format!("{} (pid {})", v.victim.comm, v.victim.pid),
    };
    let limit = v.limit.as_ref();
    let limit_bytes = limit
        .and_then(|l| l.limit_bytes)
        .map(|b| format!(" of {}", human_bytes(b)))
        .unwrap_or_default();
    let limit_at = limit
        .and_then(|l| l.cgroup.as_deref())
        .map(|c| format!(" ({c})"))
        .unwrap_or_default();
    let place = place(v);
    let reports = match v.kubelet_reports {
        Some(true) => " The kubelet reports OOMKilled.",
        Some(false) => " The kubelet will not report it: the container's init survived.",
        None => "",
    };
    match (v.verdict, v.kind) {
        (VerdictKind::PodLimit, _) => {
            let level = match limit.and_then(|l| l.cgroup.as_deref()).and_then(pods::parse_cgroup_path).map(|k| k.level) {
                Some(Level::Pod) => "the pod's memory limit",
                _ => "its memory limit",
            };
            format!("{place} hit {level}{limit_bytes}; the kernel killed {who}.{reports}")
        }
        (VerdictKind::NodePressure, Some(PressureKind::AllocatableOom)) => format!(
            "Pods together exceeded node allocatable: the kubepods limit{limit_bytes}{limit_at} was hit; the kernel killed {who} in {place}.{reports}"
        ),
        (VerdictKind::NodePressure, Some(PressureKind::Eviction)) => {
            let by = v.signal.as_ref().map(|s| format!("{} from {} (pid {})", s.name, s.sender.comm, s.sender.pid)).unwrap_or_default();
            let avail = v.node_memory.as_ref().map(|n| format!(" with memory.available at {}", human_bytes(n.memory_available_bytes))).unwrap_or_default();
            format!("The node was under memory pressure{avail}: {place} was evicted, {who} ended by {by}.")
        }
        (VerdictKind::NodePressure, _) => {
            let place = if place.is_empty() { String::new() } else { format!(" in {place}") };
            format!("The node ran out of memory (global OOM); the kernel killed {who}{place}.")
        }
        (VerdictKind::EscapedProcess, _) => format!(
            "{who} belongs to {place} but runs in {}, outside the pod's cgroup, so the pod's limit never held it; the limit{limit_bytes}{limit_at} was hit.",
            v.victim.cgroup.as_deref().unwrap_or("another cgroup")
        ),
        (VerdictKind::System, _) => format!(
            "Host process {who} in {} was killed: the limit{limit_bytes}{limit_at} was hit.",
            v.victim.cgroup.as_deref().unwrap_or("an unknown cgroup")
        ),
    }
}

/// "container c of pod ns/name", or as much of it as is known.
pub fn place(v: &Verdict) -> String {
    describe(v.pod.as_ref(), v.container.as_ref())
}

pub fn describe(pod: Option<&Pod>, container: Option<&Container>) -> String {
    let pod = pod.map(|p| match (&p.namespace, &p.name) {
        (Some(ns), Some(n)) => format!("pod {ns}/{n}"),
        _ => format!("pod {}", p.uid),
    });
    let container = container.map(|c| match &c.name {
        Some(n) => format!("container {n}"),
        None => format!("container {}", c.id.short()),
    });
    match (container, pod) {
        (Some(c), Some(p)) => format!("{c} of {p}"),
        (None, Some(p)) => p,
        _ => "a process outside any pod".to_string(),
    }
}

/// A kill by signal from userspace, judged: an eviction when the node is
/// under the kubelet's threshold, else a plain stop.
pub enum SignalOutcome {
    Eviction(Box<Verdict>),
    Stopped(Stopped),
}

/// si_code values of a signal sent from userspace: kill(2), tgkill(2),
/// sigqueue(2). The OOM killer's SIGKILL carries SI_KERNEL and is left to
/// the OOM hooks.
const SI_USER: i32 = 0;
const SI_QUEUE: i32 = -1;
const SI_TKILL: i32 = -6;

pub struct SignalContext<'a> {
    pub target_cgroup: Option<&'a str>,
    pub node: Option<&'a crate::observe::NodeMemory>,
    pub threshold: &'a crate::kubelet::Threshold,
    pub boot_to_wall_ns: i128,
}

pub fn on_signal(ev: &SignalEvent, cx: &SignalContext<'_>) -> Option<SignalOutcome> {
    let name = match ev.sig {
        9 => "SIGKILL",
        15 => "SIGTERM",
        _ => return None,
    };
    if !matches!(ev.code, SI_USER | SI_QUEUE | SI_TKILL) || ev.result != 0 {
        return None;
    }
    let kube = cx.target_cgroup.and_then(pods::parse_cgroup_path)?;
    let uid = kube.pod.clone()?;
    let pod = Some(Pod {
        uid,
        namespace: None,
        name: None,
        qos: kube.qos,
    });
    let container = kube.container.clone().map(|c| Container {
        id: c.id,
        name: None,
        runtime: c.runtime,
    });
    let signal = Signal {
        name,
        number: ev.sig,
        sender: Process {
            pid: ev.sender_tgid,
            comm: event::comm(&ev.sender_comm),
        },
    };
    let process = Process {
        pid: ev.target.tgid,
        comm: event::comm(&ev.target.comm),
    };
    let time = wall_time(ev.header.boot_ns, cx.boot_to_wall_ns);
    let threshold = cx.node.map(|n| cx.threshold.bytes(n.capacity_bytes));
    let node_memory = cx.node.map(|n| NodeMemory {
        capacity_bytes: n.capacity_bytes,
        mem_available_bytes: n.mem_available_bytes,
        memory_available_bytes: n.memory_available_bytes,
        eviction_threshold_bytes: threshold,
        eviction_threshold_source: Some(cx.threshold.source.clone()),
    });
    let pressure =
        matches!((cx.node, threshold), (Some(n), Some(t)) if n.memory_available_bytes < t);
    if !pressure {
        let mut s = Stopped {
            time,
            process,
            cgroup: cx.target_cgroup.map(str::to_owned),
            pod,
            container,
            signal,
            node_memory,
            summary: String::new(),
        };
        s.summary = format!(
            "{} (pid {}) of {} was sent {} by {} (pid {}) while the node was not under memory pressure: not an OOM.",
            s.process.comm, s.process.pid, describe(s.pod.as_ref(), s.container.as_ref()), s.signal.name, s.signal.sender.comm, s.signal.sender.pid
        );
        return Some(SignalOutcome::Stopped(s));
    }
    let mut v = Verdict {
        verdict: VerdictKind::NodePressure,
        kind: Some(PressureKind::Eviction),
        source: "bpf",
        incident: format!("evict-{}", ev.header.boot_ns),
        time,
        victim: Victim {
            pid: ev.target.tgid,
            comm: process.comm,
            oom_score_adj: None,
            rss_bytes: None,
            anon_rss_bytes: None,
            file_rss_bytes: None,
            shmem_rss_bytes: None,
            total_vm_bytes: None,
            cgroup: cx.target_cgroup.map(str::to_owned),
            ns_pid: None,
        },
        trigger: Some(Trigger {
            pid: ev.sender_tgid,
            comm: event::comm(&ev.sender_comm),
            cgroup: None,
        }),
        limit: None,
        pod,
        container,
        kubelet_reports: None,
        memory: None,
        node_memory,
        signal: Some(signal),
        top_consumers: None,
        growth: None,
        evidence: Evidence {
            constraint: None,
            constraint_source: None,
            victim_hook: "signal",
            pid_ns: None,
            mnt_ns: None,
            pod_cgroup: None,
        },
        summary: String::new(),
    };
    v.summary = summary(&v);
    Some(SignalOutcome::Eviction(Box::new(v)))
}

/// A kill found in the kernel log at start: what the log says, no more.
/// The summary line (when the kernel printed one) gives the constraint and
/// both cgroups; the kill line the victim and its memory.
pub fn from_kernel_log(past: &crate::kernel_log::PastKill, boot_to_wall_ns: i128) -> Verdict {
    let k = &past.kill;
    let s = past.summary.as_ref();
    let constraint = match s.map(|s| &s.constraint) {
        Some(KmsgConstraint::Memcg) => Some(Constraint::Memcg),
        Some(KmsgConstraint::None) => Some(Constraint::Global),
        Some(_) => Some(Constraint::Other),
        None if k.memcg => Some(Constraint::Memcg),
        None => Some(Constraint::Global),
    };
    let limit_path = s.and_then(|s| s.oom_memcg.clone());
    let victim_cgroup = s.and_then(|s| s.task_memcg.clone());
    let scope = Scope {
        constraint,
        source: Some(ConstraintSource::KernelLog),
        limit: limit_path.clone().map(|p| LimitAt {
            id: None,
            path: Some(p),
            usage_pages: None,
            max_pages: None,
        }),
    };
    let victim_kube = victim_cgroup.as_deref().and_then(pods::parse_cgroup_path);
    let limit_kube = limit_path.as_deref().and_then(pods::parse_cgroup_path);
    let (verdict, kind) = decide(&scope, victim_kube.as_ref(), limit_kube.as_ref());
    let identity = victim_kube
        .as_ref()
        .filter(|k| k.pod.is_some())
        .or(limit_kube.as_ref().filter(|k| k.pod.is_some()));
    let kib = |v: Option<u64>| v.map(|x| x * 1024);
    let rss = match (k.anon_rss_kb, k.file_rss_kb, k.shmem_rss_kb) {
        (Some(a), Some(f), Some(sh)) => Some((a + f + sh) * 1024),
        _ => None,
    };
    let mut v = Verdict {
        verdict,
        kind,
        source: "kernel_log",
        incident: format!("kmsg-{}", past.seq),
        time: wall_time(past.ts_us.saturating_mul(1000), boot_to_wall_ns),
        victim: Victim {
            pid: k.pid,
            comm: k.comm.clone(),
            oom_score_adj: k.oom_score_adj.and_then(|a| i16::try_from(a).ok()),
            rss_bytes: rss,
            anon_rss_bytes: kib(k.anon_rss_kb),
            file_rss_bytes: kib(k.file_rss_kb),
            shmem_rss_bytes: kib(k.shmem_rss_kb),
            total_vm_bytes: kib(k.total_vm_kb),
            cgroup: victim_cgroup,
            ns_pid: None,
        },
        trigger: None,
        limit: limit_path.map(|p| Limit {
            cgroup: Some(p),
            limit_bytes: None,
            usage_bytes: None,
        }),
        pod: identity.and_then(|k| {
            k.pod.clone().map(|uid| Pod {
                uid,
                namespace: None,
                name: None,
                qos: k.qos,
            })
        }),
        container: identity.and_then(|k| {
            k.container.clone().map(|c| Container {
                id: c.id,
                name: None,
                runtime: c.runtime,
            })
        }),
        kubelet_reports: None,
        memory: None,
        node_memory: None,
        signal: None,
        top_consumers: None,
        growth: None,
        evidence: Evidence {
            constraint: scope.constraint,
            constraint_source: scope.source,
            victim_hook: "kernel_log",
            pid_ns: None,
            mnt_ns: None,
            pod_cgroup: None,
        },
        summary: String::new(),
    };
    v.summary = format!("While oomtrace was not running: {}", summary(&v));
    v
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use oomtrace_common::{
        Header, Kind, MemcgLevel, TaskInfo, VictimEvent, VictimSource, MEMCG_DEPTH, WIRE_VERSION,
    };

    use super::*;
    use crate::cgroup::{CgroupId, CgroupTree};

    const POD: &str = "/kubepods/burstable/pod6f1c2a9e-3b7d-4c11-9e0a-2b8f5d4c7a10";
    const CID: &str = "3f9a1c0b7e2d4f6a8b1c3d5e7f9a0b2c4d6e8f0a1b3c5d7e9f1a2b3c4d5e6f70";
    const UNLIMITED: u64 = 1 << 51;

    fn tree() -> CgroupTree {
        CgroupTree::from_entries(
            4,
            &[
                (1, "/".into()),
                (2, "/kubepods".into()),
                (3, "/kubepods/burstable".into()),
                (4, POD.into()),
                (5, format!("{POD}/{CID}")),
                (6, "/system.slice".into()),
                (7, "/system.slice/demo.service".into()),
            ],
        )
    }

    /// A task whose memcg chain is `levels` (leaf first): (id, usage, max).
    fn task(pid: u32, ns_pid: u32, levels: &[(u64, u64, u64)]) -> TaskInfo {
        let mut memcg = [MemcgLevel::default(); MEMCG_DEPTH];
        for (i, &(id, usage_pages, max_pages)) in levels.iter().enumerate() {
            memcg[i] = MemcgLevel {
                id,
                usage_pages,
                max_pages,
            };
        }
        TaskInfo {
            tgid: pid,
            tid: pid,
            comm: *b"worker\0\0\0\0\0\0\0\0\0\0",
            memcg_depth: levels.len() as u32,
            ns_pid,
            pid_ns: 99,
            mnt_ns: 98,
            memcg,
        }
    }

    fn victim(v: TaskInfo, t: TaskInfo) -> VictimEvent {
        VictimEvent {
            header: Header {
                version: WIRE_VERSION,
                kind: Kind::Victim as u16,
                cpu: 0,
                boot_ns: 1_000,
            },
            victim: v,
            trigger: t,
            total_vm_pages: 100,
            anon_rss_pages: 90,
            file_rss_pages: 5,
            shmem_rss_pages: 0,
            oom_score_adj: 0,
            _pad: [0; 2],
            source: VictimSource::TpBtf as u32,
        }
    }

    /// Runs `f` on a snapshot of the test tree with no kernel-log summaries.
    fn with_snapshot<R>(f: impl FnOnce(&Snapshot<'_>) -> R) -> R {
        let tree = tree();
        let kmsg = HashMap::new();
        f(&Snapshot {
            tree: &tree,
            page_size: 4096,
            boot_to_wall_ns: 0,
            kmsg: &kmsg,
        })
    }

    fn judge(ev: &VictimEvent, hints: &Hints<'_>) -> Verdict {
        with_snapshot(|snap| Attributor::default().on_victim(ev, snap, hints))
    }

    fn chain_container(usage: u64, max: u64, pod_usage: u64, pod_max: u64) -> Vec<(u64, u64, u64)> {
        vec![
            (5, usage, max),
            (4, pod_usage, pod_max),
            (3, pod_usage, UNLIMITED),
            (2, pod_usage, UNLIMITED),
            (1, pod_usage, UNLIMITED),
        ]
    }

    #[test]
    fn the_lowest_common_ancestor_at_its_limit_is_the_one_hit() {
        let c = chain_container(16384, 16384, 16384, 32768);
        let v = judge(&victim(task(10, 1, &c), task(10, 1, &c)), &Hints::default());
        assert_eq!(v.verdict, VerdictKind::PodLimit);
        assert_eq!(
            v.limit.as_ref().and_then(|l| l.cgroup.as_deref()),
            Some(format!("{POD}/{CID}").as_str())
        );
        assert_eq!(
            v.limit.as_ref().and_then(|l| l.limit_bytes),
            Some(16384 * 4096)
        );
        assert_eq!(v.container.as_ref().map(|c| c.id.as_str()), Some(CID));
        assert_eq!(
            v.evidence.constraint_source,
            Some(ConstraintSource::MemcgCounters)
        );
        // The container below its own limit, the pod at its: the pod's limit.
        let c = chain_container(8000, 16384, 32700, 32768);
        let v = judge(&victim(task(10, 1, &c), task(10, 1, &c)), &Hints::default());
        assert_eq!(
            v.limit.as_ref().and_then(|l| l.cgroup.as_deref()),
            Some(POD)
        );
        assert_eq!(v.verdict, VerdictKind::PodLimit);
    }

    #[test]
    fn kubepods_at_its_limit_is_allocatable_and_nothing_at_a_limit_is_global() {
        let c = vec![
            (5, 100, UNLIMITED),
            (4, 100, UNLIMITED),
            (3, 100, UNLIMITED),
            (2, 24576, 24576),
            (1, 24576, UNLIMITED),
        ];
        let v = judge(&victim(task(10, 1, &c), task(10, 1, &c)), &Hints::default());
        assert_eq!(
            (v.verdict, v.kind),
            (
                VerdictKind::NodePressure,
                Some(PressureKind::AllocatableOom)
            )
        );
        let c = vec![(5, 100, UNLIMITED), (1, 5_000_000, UNLIMITED)];
        let v = judge(&victim(task(10, 1, &c), task(10, 1, &c)), &Hints::default());
        assert_eq!(
            (v.verdict, v.kind),
            (VerdictKind::NodePressure, Some(PressureKind::SystemOom))
        );
        assert_eq!(v.evidence.constraint, Some(Constraint::Global));
    }

    #[test]
    fn a_limit_only_the_trigger_shares_is_not_taken() {
        // The trigger's own cgroup is at its limit, but the victim is not
        // under it: that limit cannot be the one the kill answered.
        let trig = vec![(7, 8192, 8192), (6, 8192, UNLIMITED), (1, 9000, UNLIMITED)];
        let vict = chain_container(100, 16384, 100, UNLIMITED);
        let v = judge(
            &victim(task(10, 1, &vict), task(20, 20, &trig)),
            &Hints::default(),
        );
        assert_eq!(v.evidence.constraint, Some(Constraint::Global));
    }

    #[test]
    fn host_service_is_system_and_escaped_process_names_its_pod() {
        let svc = vec![(7, 8192, 8192), (6, 8192, UNLIMITED), (1, 9000, UNLIMITED)];
        let v = judge(
            &victim(task(30, 30, &svc), task(30, 30, &svc)),
            &Hints::default(),
        );
        assert_eq!(v.verdict, VerdictKind::System);
        assert!(v.pod.is_none() && v.container.is_none());
        let owner = format!("{POD}/{CID}");
        let hints = Hints {
            victim_owner: Some(&owner),
            ..Hints::default()
        };
        let v = judge(&victim(task(30, 7, &svc), task(30, 7, &svc)), &hints);
        assert_eq!(v.verdict, VerdictKind::EscapedProcess);
        assert_eq!(v.container.as_ref().map(|c| c.id.as_str()), Some(CID));
        assert_eq!(v.evidence.pod_cgroup.as_deref(), Some(owner.as_str()));
        assert_eq!(kubelet_reports(&v, None, false), Some(false));
    }

    #[test]
    fn kubelet_reports_only_when_init_dies() {
        let c = chain_container(16384, 16384, 16384, UNLIMITED);
        let init = judge(&victim(task(10, 1, &c), task(10, 1, &c)), &Hints::default());
        assert_eq!(kubelet_reports(&init, None, false), Some(true));
        let child = judge(&victim(task(11, 7, &c), task(11, 7, &c)), &Hints::default());
        assert_eq!(kubelet_reports(&child, None, false), Some(false));
        assert_eq!(
            kubelet_reports(&child, Some(true), false),
            Some(true),
            "oom.group takes init too"
        );
        assert_eq!(
            kubelet_reports(&child, None, true),
            None,
            "host pid namespace: unknowable"
        );
    }

    #[test]
    fn victims_of_one_invocation_share_an_incident() {
        let c = chain_container(16384, 16384, 16384, UNLIMITED);
        with_snapshot(|snap| {
            let mut a = Attributor::default();
            let mut first = victim(task(10, 1, &c), task(12, 3, &c));
            let mut second = victim(task(11, 2, &c), task(12, 3, &c));
            second.header.boot_ns = first.header.boot_ns + 1_000;
            let one = a.on_victim(&first, snap, &Hints::default());
            let two = a.on_victim(&second, snap, &Hints::default());
            assert_eq!(one.incident, two.incident);
            first.header.boot_ns += 5_000_000_000;
            let later = a.on_victim(&first, snap, &Hints::default());
            assert_ne!(later.incident, one.incident);
        });
        let _ = CgroupId(0);
    }

    #[test]
    fn later_victims_of_a_group_kill_keep_the_limit_after_memory_is_freed() {
        // oom.group seen by the classic tracepoint: the victim's chain is
        // unknown, and by the second victim the first one's memory is gone.
        with_snapshot(|snap| {
            let mut a = Attributor::default();
            let at_limit = chain_container(16384, 16384, 16384, UNLIMITED);
            let freed = chain_container(2, 16384, 2, UNLIMITED);
            let mut first = victim(task(10, 1, &[]), task(12, 3, &at_limit));
            first.source = VictimSource::Tracepoint as u32;
            let mut second = victim(task(11, 2, &[]), task(12, 3, &freed));
            second.source = VictimSource::Tracepoint as u32;
            second.header.boot_ns = first.header.boot_ns + 6_000_000;
            let one = a.on_victim(&first, snap, &Hints::default());
            let two = a.on_victim(&second, snap, &Hints::default());
            assert_eq!(two.verdict, VerdictKind::PodLimit);
            assert_eq!(two.incident, one.incident);
            assert_eq!(
                two.limit.as_ref().and_then(|l| l.cgroup.as_deref()),
                Some(format!("{POD}/{CID}").as_str())
            );
            // Another trigger's kill with nothing at a limit is not borrowed.
            let mut other = victim(task(13, 4, &[]), task(14, 5, &freed));
            other.header.boot_ns = second.header.boot_ns + 1_000;
            let three = a.on_victim(&other, snap, &Hints::default());
            assert_eq!(three.evidence.constraint, Some(Constraint::Global));
        });
    }
}
