//! Attribution: kernel events and a read-only view of the node in, verdicts
//! out. No I/O here — every rule is testable from a recorded trace, and a
//! replay gives the same verdicts as the live run.
//!
//! One path for every kill: a source (the OOM hooks, a userspace signal,
//! the kernel log) is *assessed* into an [`Assessment`]; the engine then
//! reads what that assessment needs from the node ([`Observed`]); and
//! [`verdict`] builds the one `Verdict`, worded by [`crate::output::wording`].

use std::collections::{HashMap, VecDeque};

use oomtrace_common::{MemcgRead, OomEvent, TaskInfo, VictimEvent, VictimSource};

use crate::{
    kernel::event,
    logs::oom_report::{Constraint as KmsgConstraint, OomSummary},
    node::cgroup::{CgroupId, CgroupTree, UNLIMITED_PAGES},
    node::pods::{self, KubeCgroup, Level},
    output::verdict::{
        wall_time, Constraint, ConstraintSource, Consumer, Evidence, Growth, Identity, Killer,
        Limit, Memory, Names, NodeMemory, PressureKind, Signal, Trigger, Verdict, VerdictKind,
        Victim,
    },
    output::wording,
};

/// How long a per-OOM record stays the scope of its task's next victim:
/// the victim is marked within the same invocation, well under this.
const OOM_RECORD_WINDOW_NS: u64 = 1_000_000_000;
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
    /// oomtrace's own pid namespace (the host's, run with hostPID).
    pub host_pid_ns: u32,
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
    /// The kernel's `Killed process` line for the victim, when read: its
    /// command and memory where the record lacks them.
    pub kill_line: Option<&'a crate::logs::oom_report::OomKill>,
}

/// One kill as its source described it and the rules judged it, before
/// anything is read from the node. Which cgroups the engine reads next
/// (the limit's `memory.oom.group`, the victim's memory, the identity's
/// names, the top consumers of a global OOM) follows from it.
#[derive(Clone, Debug)]
pub struct Assessment {
    pub verdict: VerdictKind,
    pub kind: Option<PressureKind>,
    pub source: &'static str,
    pub incident: String,
    /// CLOCK_BOOTTIME ns of the kill.
    pub boot_ns: u64,
    /// Null only for a kill read from a saved log without wall dates.
    pub time: Option<String>,
    pub victim: Victim,
    pub trigger: Option<Trigger>,
    pub limit: Option<Limit>,
    /// Whose kill it is, not yet named.
    pub identity: Identity,
    pub signal: Option<Signal>,
    /// `userspace_oom_killer` only.
    pub killer: Option<Killer>,
    pub evidence: Evidence,
    /// The victim shares the host's pid namespace (a hostPID pod, or no
    /// container): its pid 1 says nothing about a container.
    pub host_pid_ns: bool,
}

/// What the engine read from the node for one kill, in the order it reads.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Whether an oom.group kill took the victim's whole container (v2
    /// `memory.oom.group` set from the container's own cgroup — the
    /// victim's outside containers — up to the limit's).
    pub oom_group: Option<bool>,
    pub memory: Option<Memory>,
    pub node_memory: Option<NodeMemory>,
    pub growth: Option<Vec<Growth>>,
    pub top_consumers: Option<Vec<Consumer>>,
    pub names: Names,
    /// ns from the kill to the engine's reads for it (OOM kills).
    pub judged_after_ns: Option<u64>,
    /// The limit that fired, read higher shortly before the kill.
    pub limit_lowered: Option<crate::output::verdict::LimitLowered>,
}

/// The one place a `Verdict` is built, from every source.
pub fn verdict(a: Assessment, seen: Observed) -> Verdict {
    let identity = a.identity.named(&seen.names);
    let kubelet_reports = match a.kind {
        // The runtime reports a death by signal as `Error` (exit 128 + n):
        // `OOMKilled` comes only from the kernel's OOM kill in the
        // container's cgroup, which a userspace killer never causes.
        Some(PressureKind::UserspaceOomKiller) => {
            (identity.container.is_some() && !a.host_pid_ns).then_some(false)
        }
        _ => kubelet_reports(
            a.verdict,
            identity.container.is_some(),
            a.victim.ns_pid,
            seen.oom_group,
            a.host_pid_ns,
        ),
    };
    let mut v = Verdict {
        verdict: a.verdict,
        kind: a.kind,
        source: a.source,
        incident: a.incident,
        time: a.time,
        victim: Some(a.victim),
        trigger: a.trigger,
        limit: a.limit,
        pod: identity.pod,
        container: identity.container,
        kubelet_reports,
        memory: seen.memory,
        node_memory: seen.node_memory,
        signal: a.signal,
        killer: a.killer,
        top_consumers: seen.top_consumers,
        growth: seen.growth,
        warned_s_before: None,
        evidence: crate::output::verdict::Evidence {
            judged_after_ms: seen
                .judged_after_ns
                .map(|ns| (ns as f64 / 1e4).round() / 100.0),
            limit_lowered: seen.limit_lowered,
            ..a.evidence
        },
        summary: String::new(),
    };
    v.summary = wording::summary(&v);
    v
}

#[derive(Default)]
pub struct Attributor {
    /// Per-OOM records waiting for their victims, by trigger tid.
    pending: HashMap<u32, OomEvent>,
    /// The latest victims, newest last: the later victims of one OOM
    /// invocation (an oom.group kill) may be judged after other kills
    /// (they wait for a kernel-log line the kernel prints only for the
    /// first), so more than the very last one is kept.
    recent: VecDeque<LastVictim>,
}

/// Victims remembered for [`Attributor::recent`].
const RECENT_VICTIMS: usize = 64;

struct LastVictim {
    /// `None` where the kernel could not read it: then it matches no other.
    trigger_tid: Option<u32>,
    limit: Option<u64>,
    boot_ns: u64,
    incident: String,
    scope: Scope,
}

#[derive(Clone)]
pub(super) struct Scope {
    pub(super) constraint: Option<Constraint>,
    pub(super) source: Option<ConstraintSource>,
    pub(super) limit: Option<LimitAt>,
}

impl Scope {
    /// What an OOM verdict rests on (docs/schema.md, `evidence.basis`).
    pub(super) fn basis(&self) -> &'static str {
        match self.source {
            // The kernel's own record of this OOM: no inference.
            Some(ConstraintSource::OomControl) => "oom_control",
            // Inferred: the lowest common ancestor at its page-counter max.
            Some(ConstraintSource::MemcgCounters) => "page_counters_at_limit",
            Some(ConstraintSource::KernelLog) => "kernel_log",
            // Inferred from the victim's place alone.
            None => "victim_cgroup_only",
        }
    }

    /// The Kubernetes identity of the cgroup whose limit was hit.
    pub(super) fn limit_kube(&self) -> Option<KubeCgroup> {
        self.limit
            .as_ref()
            .and_then(|l| l.path.as_deref())
            .and_then(pods::parse_cgroup_path)
    }
}

#[derive(Clone)]
pub(super) struct LimitAt {
    pub(super) id: Option<CgroupId>,
    pub(super) path: Option<String>,
    pub(super) usage_pages: Option<u64>,
    pub(super) max_pages: Option<u64>,
}

impl LimitAt {
    pub(super) fn at_path(path: String) -> LimitAt {
        LimitAt {
            id: None,
            path: Some(path),
            usage_pages: None,
            max_pages: None,
        }
    }

    pub(super) fn limit(&self, page: u64) -> Limit {
        Limit {
            cgroup: self.path.clone(),
            limit_bytes: self
                .max_pages
                .filter(|&m| m < UNLIMITED_PAGES)
                .map(|m| m * page),
            usage_bytes: self.usage_pages.map(|u| u * page),
        }
    }
}

/// The verdict, its kind and whose kill it is, from the scope and the
/// cgroups involved: the rule every source shares.
pub(super) struct Decision {
    pub(super) verdict: VerdictKind,
    pub(super) kind: Option<PressureKind>,
    pub(super) identity: Identity,
}

/// The victim's command: the hook's, else (a `mark_victim` record holding
/// only the pid, before 6.9) the kernel's report of the kill or its
/// `Killed process` line, else `None`: never a name the evidence lacks.
fn victim_comm(
    ev: &VictimEvent,
    snap: &Snapshot<'_>,
    line: Option<&crate::logs::oom_report::OomKill>,
) -> Option<String> {
    if let Some(c) = event::known_comm(ev.victim.comm()) {
        return Some(c);
    }
    let pid = ev.victim.tgid()?;
    snap.kmsg
        .get(&pid)
        .map(|s| s.task.clone())
        .or_else(|| line.filter(|k| k.pid == pid).map(|k| k.comm.clone()))
        // The kernel prints an empty `task=` for a task without a name.
        .filter(|c| !c.is_empty())
}

pub(super) fn decide_identity(
    scope: &Scope,
    victim: Option<&KubeCgroup>,
    limit: Option<&KubeCgroup>,
    escape: Option<&KubeCgroup>,
) -> Decision {
    let limit_outside_pods = limit.is_none_or(|k| k.pod.is_none());
    let (verdict, kind) = match escape {
        Some(_) if scope.constraint == Some(Constraint::Memcg) && limit_outside_pods => {
            (VerdictKind::EscapedProcess, None)
        }
        _ => decide(scope, victim, limit),
    };
    // The pod is the victim's; a kill at the kubepods or QoS level names
    // the victim's pod too, while the limit names the level. An escaped
    // process is named by the pod its namespaces belong to.
    let who = match (escape, verdict) {
        (Some(owner), VerdictKind::EscapedProcess) => Some(owner),
        _ => victim
            .filter(|k| k.pod.is_some())
            .or(limit.filter(|k| k.pod.is_some())),
    };
    Decision {
        verdict,
        kind,
        identity: who.map(Identity::of).unwrap_or_default(),
    }
}

impl Attributor {
    pub fn on_oom(&mut self, ev: &OomEvent) {
        if let Some(tid) = ev.trigger.tid() {
            self.pending.insert(tid, *ev);
        }
    }

    /// One victim of the OOM killer, as the hooks saw it.
    pub fn assess(
        &mut self,
        ev: &VictimEvent,
        snap: &Snapshot<'_>,
        hints: &Hints<'_>,
    ) -> Assessment {
        let boot_ns = ev.header.boot_ns;
        let oom = ev
            .trigger
            .tid()
            .and_then(|tid| self.pending.get(&tid))
            .filter(|o| boot_ns.saturating_sub(o.header.boot_ns) < OOM_RECORD_WINDOW_NS)
            .copied();
        let scope = scope(ev, oom.as_ref(), snap);
        let scope = self.same_oom_scope(ev, oom.as_ref(), snap).unwrap_or(scope);

        let victim_cgroup = leaf(&ev.victim)
            .and_then(|id| snap.tree.path(id).map(str::to_owned))
            .or_else(|| hints.victim_cgroup.map(str::to_owned))
            .or_else(|| {
                snap.kmsg
                    .get(&ev.victim.tgid()?)
                    .and_then(|s| s.task_memcg.clone())
            });
        let trigger_cgroup = leaf(&ev.trigger).and_then(|id| snap.tree.path(id).map(str::to_owned));

        let incident = self.incident(ev, oom.as_ref(), &scope);

        let victim_kube = victim_cgroup.as_deref().and_then(pods::parse_cgroup_path);
        let limit_kube = scope.limit_kube();
        let escape = escape(victim_cgroup.as_deref(), hints.victim_owner).or_else(|| {
            escape(trigger_cgroup.as_deref(), hints.trigger_owner)
                .filter(|_| victim_kube.as_ref().is_none_or(|k| k.pod.is_none()))
        });
        let d = decide_identity(
            &scope,
            victim_kube.as_ref(),
            limit_kube.as_ref(),
            escape.as_ref(),
        );

        let page = snap.page_size;
        let bytes = |pages: Option<u64>| pages.map(|p| p.saturating_mul(page));
        // The kill line's numbers, for a record without the victim's (a
        // pid-only mark_victim): the kernel's own, for this pid.
        let line = hints.kill_line.filter(|k| Some(k.pid) == ev.victim.tgid());
        let kb = |x: Option<u64>| x.map(|k| k.saturating_mul(1024));
        let victim = Victim {
            pid: event::pid(&ev.victim),
            comm: victim_comm(ev, snap, hints.kill_line),
            oom_score_adj: ev.oom_score_adj().or_else(|| {
                line.and_then(|k| k.oom_score_adj)
                    .and_then(|a| i16::try_from(a).ok())
            }),
            rss_bytes: bytes(ev.rss_pages()).or_else(|| {
                line.and_then(|k| Some((k.anon_rss_kb? + k.file_rss_kb? + k.shmem_rss_kb?) * 1024))
            }),
            anon_rss_bytes: bytes(ev.anon_rss_pages()).or(kb(line.and_then(|k| k.anon_rss_kb))),
            file_rss_bytes: bytes(ev.file_rss_pages()).or(kb(line.and_then(|k| k.file_rss_kb))),
            shmem_rss_bytes: bytes(ev.shmem_rss_pages()).or(kb(line.and_then(|k| k.shmem_rss_kb))),
            total_vm_bytes: bytes(ev.total_vm_pages()).or(kb(line.and_then(|k| k.total_vm_kb))),
            cgroup: victim_cgroup,
            ns_pid: known(ev.victim.ns_pid()),
        };
        Assessment {
            verdict: d.verdict,
            kind: d.kind,
            source: "bpf",
            incident,
            boot_ns,
            time: Some(wall_time(boot_ns, snap.boot_to_wall_ns)),
            victim,
            trigger: Some(Trigger {
                pid: event::pid(&ev.trigger),
                comm: event::known_comm(ev.trigger.comm()),
                cgroup: trigger_cgroup,
            }),
            limit: scope.limit.as_ref().map(|l| l.limit(page)),
            identity: d.identity,
            signal: None,
            killer: None,
            evidence: Evidence {
                constraint: scope.constraint,
                constraint_source: scope.source,
                victim_hook: match ev.source {
                    s if s == VictimSource::TpBtf as u32 => "tp_btf",
                    s if s == VictimSource::RawTp as u32 => "raw_tp",
                    s if s == VictimSource::Fentry as u32 => "fentry",
                    s if s == VictimSource::Kprobe as u32 => "kprobe",
                    _ => "tracepoint",
                },
                pid_ns: known(ev.victim.pid_ns()),
                mnt_ns: known(ev.victim.mnt_ns()),
                eviction_resource: None,
                names_from: None,
                chosen: None,
                limit_lowered: None,
                pod_cgroup: match d.verdict {
                    VerdictKind::EscapedProcess => hints
                        .victim_owner
                        .or(hints.trigger_owner)
                        .map(str::to_owned),
                    _ => None,
                },
                basis: Some(scope.basis()),
                grace_s: None,
                eviction_threshold: None,
                judged_after_ms: None,
            },
            host_pid_ns: known(ev.victim.pid_ns()).is_none_or(|ns| ns == snap.host_pid_ns),
        }
    }

    fn incident(&mut self, ev: &VictimEvent, oom: Option<&OomEvent>, scope: &Scope) -> String {
        let boot_ns = ev.header.boot_ns;
        let limit = scope.limit.as_ref().and_then(|l| l.id).map(|c| c.0);
        let same = self.recent.iter().rev().find(|last| {
            last.trigger_tid.is_some()
                && last.trigger_tid == ev.trigger.tid()
                && last.limit == limit
                && boot_ns.saturating_sub(last.boot_ns) < SAME_INCIDENT_NS
        });
        let incident = match (oom, same) {
            (Some(o), _) => format!("oom-{}", o.header.boot_ns),
            (None, Some(last)) => last.incident.clone(),
            _ => format!("oom-{boot_ns}"),
        };
        if self.recent.len() >= RECENT_VICTIMS {
            self.recent.pop_front();
        }
        self.recent.push_back(LastVictim {
            trigger_tid: ev.trigger.tid(),
            limit,
            boot_ns,
            incident: incident.clone(),
            scope: scope.clone(),
        });
        incident
    }

    /// The victim judged last of the OOM invocation `ev` may belong to:
    /// the same trigger, moments before.
    fn follows(&self, ev: &VictimEvent) -> Option<&LastVictim> {
        self.recent.iter().rev().find(|last| {
            last.trigger_tid.is_some()
                && last.trigger_tid == ev.trigger.tid()
                && ev.header.boot_ns.saturating_sub(last.boot_ns) < SAME_INCIDENT_NS
        })
    }

    /// Whether an earlier victim of the same OOM invocation was judged
    /// already: then this one needs no kernel-log line of its own (the
    /// kernel prints one per invocation).
    pub fn follows_a_judged_victim(&self, ev: &VictimEvent) -> bool {
        self.follows(ev).is_some()
    }

    /// Without a per-OOM record, the later victims of one oom.group kill
    /// get the first one's memcg scope: by the time the kernel marks them,
    /// the first victim's memory may already be freed (the oom reaper runs
    /// beside the kill), so the counters no longer sit at the limit. Same
    /// trigger, marked back to back, inside the cgroup whose limit was hit:
    /// the same invocation of the OOM killer.
    /// The kernel log's scope may name its cgroup by path alone (no chain
    /// read held it): then the victim is inside it by that path.
    fn same_oom_scope(
        &self,
        ev: &VictimEvent,
        oom: Option<&OomEvent>,
        snap: &Snapshot<'_>,
    ) -> Option<Scope> {
        if oom.is_some() {
            return None;
        }
        let last = self.follows(ev)?;
        let limit = last.scope.limit.as_ref()?;
        let is_limit = |l: &MemcgRead| match limit.id {
            Some(id) => l.id == Some(id.0),
            None => {
                limit.path.is_some()
                    && l.id.and_then(|id| snap.tree.path(CgroupId(id))) == limit.path.as_deref()
            }
        };
        let vict = chain(&ev.victim);
        let inside = vict.is_empty() || vict.iter().any(is_limit);
        (last.trigger_tid == ev.trigger.tid()
            && last.scope.constraint == Some(Constraint::Memcg)
            && matches!(
                last.scope.source,
                Some(ConstraintSource::MemcgCounters | ConstraintSource::KernelLog)
            )
            && ev.header.boot_ns.saturating_sub(last.boot_ns) < SAME_INCIDENT_NS
            && inside)
            .then(|| last.scope.clone())
    }
}

/// A process whose namespaces tie it to a container (`owner`, the
/// container's cgroup) while its own cgroup is outside that pod.
/// Only a cgroup outside every pod counts: a process inside some pod's
/// cgroup is that pod's. The owner comes from the pid namespace's inode,
/// which the kernel reuses once a namespace is gone, so a container started
/// since (whose init was never seen joining) can carry a dead container's
/// entry; another pod's cgroup is that, not an escape.
fn escape(cgroup: Option<&str>, owner: Option<&str>) -> Option<KubeCgroup> {
    let owner_kube = pods::parse_cgroup_path(owner?)?;
    owner_kube.pod.as_ref()?;
    let here = cgroup?;
    let in_a_pod = pods::parse_cgroup_path(here).is_some_and(|k| k.pod.is_some());
    (!in_a_pod).then_some(owner_kube)
}

/// The kubelet reports `OOMKilled` only when the container's init process
/// died (kubernetes#78973): the victim is pid 1 of its namespace, or an
/// oom.group kill took the whole container.
/// Null when the victim shares the host's pid namespace (a hostPID pod, or
/// no container at all): there pid 1 says nothing about the container.
pub fn kubelet_reports(
    verdict: VerdictKind,
    in_container: bool,
    ns_pid: Option<u32>,
    oom_group: Option<bool>,
    host_pid_ns: bool,
) -> Option<bool> {
    if !in_container {
        return None;
    }
    if host_pid_ns {
        return oom_group.filter(|&g| g);
    }
    if verdict == VerdictKind::EscapedProcess {
        return Some(ns_pid == Some(1));
    }
    match (ns_pid, oom_group) {
        (Some(1), _) | (_, Some(true)) => Some(true),
        (Some(_), _) => Some(false),
        (None, _) => None,
    }
}

/// A value the kernel read, where 0 also means "none" (pids, namespace ids).
fn known(v: Option<u32>) -> Option<u32> {
    v.filter(|&v| v != 0)
}

fn leaf(t: &TaskInfo) -> Option<CgroupId> {
    t.leaf_memcg_id().filter(|&id| id != 0).map(CgroupId)
}

fn chain(t: &TaskInfo) -> Vec<MemcgRead> {
    t.memcg_chain().collect()
}

/// `oc->constraint` as the report's summary line would name it: the
/// values of `enum oom_constraint` (mm/oom_kill.c), whose order the BTF
/// test checks against the running kernel. So the per-OOM record and the
/// kernel's log count a constraint the same way ([`kmsg_constraint`]).
fn oom_control_constraint(value: u32) -> KmsgConstraint {
    match value {
        0 => KmsgConstraint::None,
        1 => KmsgConstraint::Cpuset,
        2 => KmsgConstraint::MemoryPolicy,
        3 => KmsgConstraint::Memcg,
        other => KmsgConstraint::Other(format!("oom_constraint {other}")),
    }
}

/// A cpuset- or mempolicy-constrained OOM (and a constraint this build
/// does not know) is `Other`: the allowed NUMA nodes ran out, which is not
/// the node's memory exhausted nor a cgroup's limit.
pub(super) fn kmsg_constraint(c: &KmsgConstraint) -> Constraint {
    match c {
        KmsgConstraint::Memcg => Constraint::Memcg,
        KmsgConstraint::None => Constraint::Global,
        _ => Constraint::Other,
    }
}

/// The constraint and the cgroup whose limit was hit, best source first.
fn scope(ev: &VictimEvent, oom: Option<&OomEvent>, snap: &Snapshot<'_>) -> Scope {
    let path_of = |id: u64| snap.tree.path(CgroupId(id)).map(str::to_owned);
    // `struct oom_control` decides when the hook read it; a part it could
    // not read falls through to the next source. Its constraint names a
    // cpuset or memory policy where `oc->memcg` alone would say global.
    let constraint = oom
        .and_then(OomEvent::constraint)
        .map(oom_control_constraint)
        .map(|c| kmsg_constraint(&c));
    match oom.map(|o| (o.global(), o.memcg())) {
        Some(_) if constraint == Some(Constraint::Other) => {
            return Scope {
                constraint,
                source: Some(ConstraintSource::OomControl),
                limit: None,
            };
        }
        Some((Some(true), _)) => {
            return Scope {
                constraint: Some(Constraint::Global),
                source: Some(ConstraintSource::OomControl),
                limit: None,
            };
        }
        Some((Some(false), Some(m))) if m.id.is_some() => {
            return Scope {
                constraint: Some(Constraint::Memcg),
                source: Some(ConstraintSource::OomControl),
                limit: Some(LimitAt {
                    id: m.id.map(CgroupId),
                    path: m.id.and_then(path_of),
                    usage_pages: m.usage_pages,
                    max_pages: m.max_pages,
                }),
            };
        }
        _ => {}
    }
    let trig = chain(&ev.trigger);
    let vict = chain(&ev.victim);
    // Without the per-OOM hook, the kernel's own summary line for this kill
    // (`oom-kill:constraint=...,oom_memcg=...`) names the cgroup its OOM
    // killer worked in: that beats inferring it from page counters read a
    // little later. Its counters come from the trigger's chain when the
    // chain holds that cgroup, else from the victim's, always inside it (a
    // write of memory.max below usage runs the OOM killer in the writer,
    // who may be outside).
    if let Some(s) = ev.victim.tgid().and_then(|pid| snap.kmsg.get(&pid)) {
        let limit = s.oom_memcg.clone().map(|path| {
            let level = trig
                .iter()
                .chain(vict.iter())
                .find(|l| l.id.and_then(path_of).as_deref() == Some(path.as_str()));
            match level {
                Some(l) => LimitAt {
                    id: l.id.map(CgroupId),
                    path: Some(path),
                    usage_pages: l.usage_pages,
                    max_pages: l.max_pages,
                },
                None => LimitAt::at_path(path),
            }
        });
        return Scope {
            constraint: Some(kmsg_constraint(&s.constraint)),
            source: Some(ConstraintSource::KernelLog),
            limit,
        };
    }
    if !trig.is_empty() {
        // The OOMing memcg is an ancestor of both: the trigger's charge
        // failed there, and the victim was chosen inside it.
        // A level whose id or counters the kernel could not read is never
        // taken for the one at its limit.
        let limited: Vec<(u64, u64, u64)> = trig
            .iter()
            .filter_map(|l| {
                let (id, usage, max) = (l.id?, l.usage_pages?, l.max_pages?);
                let shared = vict.is_empty() || vict.iter().any(|v| v.id == Some(id));
                (shared && max < UNLIMITED_PAGES).then_some((id, usage, max))
            })
            .collect();
        // The page counter's charge failed at the lowest level where usage
        // plus the charge would pass max, and was undone below it. A failed
        // single page leaves that level exactly at max while a child can sit
        // pages under its own (a pod's limit, container + pause, is usually
        // hit before the container's); only a failed huge-page charge
        // leaves it up to 511 pages short, hence the slack, second.
        let at_limit = limited
            .iter()
            .find(|&&(_, usage, max)| usage >= max)
            .or_else(|| {
                limited
                    .iter()
                    .find(|&&(_, usage, max)| usage.saturating_add(AT_LIMIT_SLACK_PAGES) >= max)
            })
            .copied();
        // The victim under a limit it is at or over that the trigger is not
        // under: the OOM may be that limit's, run from outside (a write of
        // memory.max below usage runs it in the writer, usage then over the
        // new max until the kill frees it) as well as global. Nothing read
        // says which. No slack here: a failed charge is not what stops there.
        let at_a_limit_of_its_own = || {
            vict.iter().any(|l| {
                let shared = trig.iter().any(|t| t.id.is_some() && t.id == l.id);
                !shared
                    && matches!((l.usage_pages, l.max_pages), (Some(u), Some(m))
                        if m < UNLIMITED_PAGES && u >= m)
            })
        };
        return match at_limit {
            None if at_a_limit_of_its_own() => Scope {
                constraint: None,
                source: None,
                limit: None,
            },
            Some((id, usage, max)) => Scope {
                constraint: Some(Constraint::Memcg),
                source: Some(ConstraintSource::MemcgCounters),
                limit: Some(LimitAt {
                    id: Some(CgroupId(id)),
                    path: path_of(id),
                    usage_pages: Some(usage),
                    max_pages: Some(max),
                }),
            },
            None => Scope {
                constraint: Some(Constraint::Global),
                source: Some(ConstraintSource::MemcgCounters),
                limit: None,
            },
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use oomtrace_common::{valid, SignalEvent, TaskInfo, VictimEvent, VictimSource};

    use super::*;
    use crate::kernel::test_kit as kit;
    use crate::logs::kmsg::PastKill;
    use crate::node::cgroup::{CgroupId, CgroupTree};
    use crate::node::{kubelet::HARD_EVICTION_GRACE_NS, pods::is_runtime};
    use crate::output::verdict::StopReason;
    use crate::rules::{from_log::*, stops::*};

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

    /// A task named `worker` whose memcg chain is `levels` (leaf first):
    /// (id, usage, max).
    fn task(pid: u32, ns_pid: u32, levels: &[(u64, u64, u64)]) -> TaskInfo {
        kit::task(pid, ns_pid, "worker", levels)
    }

    fn victim(v: TaskInfo, t: TaskInfo) -> VictimEvent {
        kit::victim(v, t, 1_000)
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
            host_pid_ns: 0,
        })
    }

    /// The verdict of one victim with nothing read from the node.
    fn on(a: &mut Attributor, ev: &VictimEvent, snap: &Snapshot<'_>, hints: &Hints<'_>) -> Verdict {
        verdict(a.assess(ev, snap, hints), Observed::default())
    }

    /// The kernel's summary line of the kill of `pid`, a `worker` in the
    /// test pod's container, in an OOM of `oom_memcg` (none: global).
    fn summary_of(pid: u32, constraint: KmsgConstraint, oom_memcg: Option<&str>) -> OomSummary {
        OomSummary {
            constraint,
            oom_memcg: oom_memcg.map(str::to_owned),
            task_memcg: Some(format!("{POD}/{CID}")),
            task: "worker".into(),
            pid,
            uid: Some(0),
            report: None,
        }
    }

    /// The verdict of one victim after the kernel's summary line of its kill.
    fn judge_after(summary: OomSummary, ev: &VictimEvent) -> Verdict {
        let tree = tree();
        let kmsg = HashMap::from([(summary.pid, summary)]);
        let snap = Snapshot {
            tree: &tree,
            page_size: 4096,
            boot_to_wall_ns: 0,
            kmsg: &kmsg,
            host_pid_ns: 0,
        };
        on(&mut Attributor::default(), ev, &snap, &Hints::default())
    }

    fn judge(ev: &VictimEvent, hints: &Hints<'_>) -> Verdict {
        with_snapshot(|snap| on(&mut Attributor::default(), ev, snap, hints))
    }

    fn reports(v: &Verdict, oom_group: Option<bool>, host_pid_ns: bool) -> Option<bool> {
        kubelet_reports(
            v.verdict,
            v.container.is_some(),
            v.victim.as_ref().and_then(|x| x.ns_pid),
            oom_group,
            host_pid_ns,
        )
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
        assert_eq!(reports(&v, None, false), Some(false));
    }

    /// Recorded in CI: a pod's container reused a dead container's pid
    /// namespace inode; its kill was called an escape from the dead pod.
    #[test]
    fn a_stale_owner_never_makes_another_pods_process_an_escape() {
        let c = chain_container(16384, 16384, 16384, UNLIMITED);
        let dead = "/kubepods/besteffort/pod0b8e6f2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b/\
                    aa00000000000000000000000000000000000000000000000000000000000000";
        let hints = Hints {
            victim_owner: Some(dead),
            trigger_owner: Some(dead),
            ..Hints::default()
        };
        let v = judge(&victim(task(10, 1, &c), task(10, 1, &c)), &hints);
        assert_eq!(v.verdict, VerdictKind::PodLimit);
        assert_eq!(v.container.as_ref().map(|c| c.id.as_str()), Some(CID));
    }

    #[test]
    fn kubelet_reports_only_when_init_dies() {
        let c = chain_container(16384, 16384, 16384, UNLIMITED);
        let init = judge(&victim(task(10, 1, &c), task(10, 1, &c)), &Hints::default());
        assert_eq!(reports(&init, None, false), Some(true));
        let child = judge(&victim(task(11, 7, &c), task(11, 7, &c)), &Hints::default());
        assert_eq!(reports(&child, None, false), Some(false));
        assert_eq!(
            reports(&child, Some(true), false),
            Some(true),
            "oom.group takes init too"
        );
        assert_eq!(
            reports(&child, None, true),
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
            let one = on(&mut a, &first, snap, &Hints::default());
            let two = on(&mut a, &second, snap, &Hints::default());
            assert_eq!(one.incident, two.incident);
            first.header.boot_ns += 5_000_000_000;
            let later = on(&mut a, &first, snap, &Hints::default());
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
            let one = on(&mut a, &first, snap, &Hints::default());
            let two = on(&mut a, &second, snap, &Hints::default());
            assert_eq!(two.verdict, VerdictKind::PodLimit);
            assert_eq!(two.incident, one.incident);
            assert_eq!(
                two.limit.as_ref().and_then(|l| l.cgroup.as_deref()),
                Some(format!("{POD}/{CID}").as_str())
            );
            // Another trigger's kill with nothing at a limit is not borrowed.
            let mut other = victim(task(13, 4, &[]), task(14, 5, &freed));
            other.header.boot_ns = second.header.boot_ns + 1_000;
            let three = on(&mut a, &other, snap, &Hints::default());
            assert_eq!(three.evidence.constraint, Some(Constraint::Global));
        });
    }

    #[test]
    fn reads_the_kernel_could_not_make_are_null_not_zero() {
        let c = chain_container(16_384, 16_384, 16_400, UNLIMITED);
        let mut ev = victim(task(10, 1, &c), task(10, 1, &c));
        ev.valid = valid::VICTIM_ALL & !(valid::VICTIM_OOM_SCORE_ADJ | valid::VICTIM_FILE_RSS);
        ev.victim.valid = valid::TASK_ALL & !(valid::TASK_NS_PID | valid::TASK_PID_NS);
        let v = judge(&ev, &Hints::default());
        assert_eq!(v.victim.as_ref().and_then(|x| x.oom_score_adj), None);
        assert_eq!(v.victim.as_ref().and_then(|x| x.file_rss_bytes), None);
        assert_eq!(
            v.victim.as_ref().and_then(|x| x.rss_bytes),
            None,
            "a sum with an unread part is unknown"
        );
        assert_eq!(
            v.victim.as_ref().and_then(|x| x.anon_rss_bytes),
            Some(90 * 4096)
        );
        assert_eq!(v.victim.as_ref().and_then(|x| x.ns_pid), None);
        assert_eq!(v.evidence.pid_ns, None);
        assert_eq!(v.evidence.mnt_ns, Some(98));
        // Without its pid in the namespace, the kubelet's view is unknown.
        assert_eq!(v.kubelet_reports, None);
        assert!(v.summary.contains("(pid 10)"), "{}", v.summary);
    }

    #[test]
    fn a_level_with_unread_counters_is_never_the_one_at_its_limit() {
        let c = chain_container(16_384, 16_384, 16_400, 16_400);
        let mut t = task(10, 1, &c);
        t.memcg_valid &= !valid::memcg_counters(0);
        let v = judge(&victim(t, t), &Hints::default());
        assert_eq!(
            v.limit.and_then(|l| l.cgroup).as_deref(),
            Some(POD),
            "the container level was unread; the pod level at its limit is the one"
        );
    }

    #[test]
    fn a_limit_on_an_unrecognised_cgroup_in_a_pod_is_that_cgroups() {
        let t = CgroupTree::from_entries(
            4,
            &[
                (1, "/".into()),
                (2, "/kubepods".into()),
                (3, "/kubepods/burstable".into()),
                (4, POD.into()),
                (5, format!("{POD}/sidecar-thing")),
            ],
        );
        let kmsg = HashMap::new();
        let snap = Snapshot {
            tree: &t,
            page_size: 4096,
            boot_to_wall_ns: 0,
            kmsg: &kmsg,
            host_pid_ns: 0,
        };
        let c = chain_container(16_384, 16_384, 16_400, UNLIMITED);
        let v = on(
            &mut Attributor::default(),
            &victim(task(10, 1, &c), task(10, 1, &c)),
            &snap,
            &Hints::default(),
        );
        assert_eq!(v.verdict, VerdictKind::PodLimit);
        assert!(
            v.summary
                .contains("hit the cgroup's memory limit of 64Mi (/kubepods/burstable/pod"),
            "{}",
            v.summary
        );
        assert!(!v.summary.contains("pod's memory limit"), "{}", v.summary);
        // The pod's own cgroup at its limit is still the pod's.
        let c = chain_container(100, UNLIMITED, 16_384, 16_384);
        let v = judge(&victim(task(10, 1, &c), task(10, 1, &c)), &Hints::default());
        assert!(
            v.summary.contains("hit the pod's memory limit"),
            "{}",
            v.summary
        );
    }

    /// A userspace signal at `at_ms` to pid 10 in the test pod's container.
    fn signal(sig: u32, sender: &str, at_ms: u64) -> SignalEvent {
        let c = chain_container(100, UNLIMITED, 100, UNLIMITED);
        kit::signal(sig, (sender, 77), task(10, 1, &c), 0, at_ms * 1_000_000)
    }

    fn node(pressure: bool) -> NodeMemory {
        NodeMemory {
            capacity_bytes: 8 << 30,
            mem_available_bytes: 1 << 30,
            memory_available_bytes: if pressure { 50 << 20 } else { 4 << 30 },
            eviction_threshold_bytes: Some(100 << 20),
            eviction_threshold_source: Some("test".into()),
            breakdown: None,
            psi: None,
        }
    }

    fn step(ev: &SignalEvent, pressure: bool, earlier: Option<&PendingStop>) -> SignalStep {
        step_with(ev, pressure, None, earlier)
    }

    fn step_with(
        ev: &SignalEvent,
        pressure: bool,
        soft: Option<SoftThreshold>,
        earlier: Option<&PendingStop>,
    ) -> SignalStep {
        let n = node(pressure);
        let path = format!("{POD}/{CID}");
        let cx = SignalContext {
            target_cgroup: Some(&path),
            node: Some(&n),
            soft,
            boot_to_wall_ns: 0,
            follow_long_stops: true,
            hard_grace_ns: HARD_EVICTION_GRACE_NS,
        };
        on_signal(ev, &cx, earlier).expect("a pod's process, signalled from userspace")
    }

    /// Above the hard threshold (4 GiB available), under a soft one of
    /// 5 GiB whose pods get 20 s.
    fn soft() -> Option<SoftThreshold> {
        Some(SoftThreshold {
            bytes: 5 << 30,
            grace_ns: 21_000_000_000,
            source: "cfg evictionSoft memory.available<5Gi".into(),
        })
    }

    #[test]
    fn a_soft_eviction_gets_its_longer_grace_period() {
        let term = pending(step_with(&signal(15, "runc", 1_000), false, soft(), None));
        assert_eq!(term.deadline_ns, 22_000_000_000);
        let v = evicted(step_with(
            &signal(9, "runc", 16_000),
            false,
            soft(),
            Some(&term),
        ));
        assert_eq!(v.kind, Some(PressureKind::Eviction));
        assert_eq!(v.evidence.eviction_threshold, Some("soft"));
        assert_eq!(v.evidence.grace_s, Some(15.0));
        let n = v.node_memory.expect("node memory");
        assert_eq!(n.eviction_threshold_bytes, Some(5 << 30));
        assert!(v.summary.contains("soft eviction"), "{}", v.summary);
        // Past the soft grace: the kubelet's log decides.
        let late = step_with(&signal(9, "runc", 30_000), false, soft(), Some(&term));
        assert_eq!(unless_logged(late), Some(StopReason::EvictionOrDeletion));
        assert_eq!(
            reason(step_with(&signal(15, "runc", 1_000), false, None, None)),
            StopReason::NoMemoryPressure,
            "no soft threshold configured"
        );
    }

    fn reason(s: SignalStep) -> StopReason {
        match s {
            SignalStep::Stopped(s) => s.reason,
            SignalStep::Eviction(..) => panic!("an eviction"),
            SignalStep::Wait(_) => panic!("a wait"),
        }
    }

    /// An eviction's stop to report unless the kubelet's log names it.
    fn unless_logged(s: SignalStep) -> Option<StopReason> {
        match s {
            SignalStep::Eviction(e) => e.unless_logged.map(|s| s.reason),
            _ => panic!("not an eviction"),
        }
    }

    fn pending(s: SignalStep) -> PendingStop {
        match s {
            SignalStep::Wait(p) => *p,
            _ => panic!("not a wait"),
        }
    }

    fn evicted(s: SignalStep) -> Verdict {
        match s {
            SignalStep::Eviction(e) => verdict(
                e.a,
                Observed {
                    node_memory: e.node_memory,
                    ..Observed::default()
                },
            ),
            _ => panic!("not an eviction"),
        }
    }

    #[test]
    fn a_runtime_sigterm_then_sigkill_within_the_hard_grace_is_an_eviction() {
        let term = pending(step(&signal(15, "runc", 1_000), true, None));
        assert_eq!(term.deadline_ns, 1_000_000_000 + HARD_EVICTION_GRACE_NS);
        let v = evicted(step(&signal(9, "runc", 3_000), true, Some(&term)));
        assert_eq!(v.kind, Some(PressureKind::Eviction));
        assert_eq!(v.evidence.basis, Some("runtime_sigterm_then_sigkill"));
        assert_eq!(v.evidence.grace_s, Some(2.0));
        assert_eq!(v.incident, "evict-1000000000");
        assert_eq!(v.signal.as_ref().map(|s| s.name), Some("SIGKILL"));
        assert!(
            v.summary.contains("2.0 s after its SIGTERM"),
            "{}",
            v.summary
        );
        // A second SIGTERM keeps the first one's clock.
        let again = pending(step(&signal(15, "runc", 2_000), true, Some(&term)));
        assert_eq!(again.boot_ns, term.boot_ns);
    }

    /// A stop past a hard eviction's grace (a deletion's 30 s, or an
    /// eviction by a kubelet that gives evicted pods their full grace,
    /// kubernetes#115819) is followed to its end; then only the kubelet's
    /// log makes it an eviction, else it is `eviction_or_deletion`.
    #[test]
    fn a_stop_past_the_eviction_grace_waits_for_the_kubelets_word() {
        let term = pending(step(&signal(15, "runc", 1_000), true, None));
        let at_grace = term.deadline_ns;
        // Alive at the grace's end: followed, slowly, no line yet.
        let followed = pending(after_grace(term.clone(), true, at_grace));
        assert!(followed.outlived());
        assert_eq!(followed.check_ns, at_grace + LONG_STOP_POLL_NS);
        let again = pending(after_grace(
            followed.clone(),
            true,
            at_grace + 5_000_000_000,
        ));
        assert_eq!(again.boot_ns, term.boot_ns, "the SIGTERM's clock");
        // The runtime's SIGKILL at the pod's 30 s: an eviction that needs
        // the kubelet's line, its grace kept.
        let killed = step(&signal(9, "runc", 31_000), true, Some(&followed));
        let SignalStep::Eviction(e) = killed else {
            panic!("not an eviction to confirm")
        };
        let stop = e.unless_logged.clone().expect("a stop unless logged");
        assert_eq!(stop.reason, StopReason::EvictionOrDeletion);
        assert_eq!(stop.signal.name, "SIGTERM", "the stop's first signal");
        assert_eq!(e.only_this.reason, StopReason::PodNotStopped);
        let v = evicted(SignalStep::Eviction(e));
        assert_eq!(v.evidence.grace_s, Some(30.0));
        assert_eq!(v.kind, Some(PressureKind::Eviction));
        // The same SIGKILL before the poll saw the grace's end.
        assert_eq!(
            unless_logged(step(&signal(9, "runc", 31_000), true, Some(&term))),
            Some(StopReason::EvictionOrDeletion)
        );
        // An exit on the SIGTERM after the grace: the same, no grace seen.
        let e = after_grace(followed, false, at_grace + 6_000_000_000);
        let SignalStep::Eviction(e) = e else {
            panic!("not an eviction to confirm")
        };
        assert_eq!(
            e.unless_logged.as_ref().map(|s| s.reason),
            Some(StopReason::EvictionOrDeletion)
        );
        assert_eq!(e.a.evidence.grace_s, None);
        // Within the grace nothing needs the kubelet's word.
        let term = pending(step(&signal(15, "runc", 1_000), true, None));
        assert_eq!(
            unless_logged(step(&signal(9, "runc", 3_000), true, Some(&term))),
            None
        );
        assert_eq!(unless_logged(after_grace(term, false, at_grace)), None);
    }

    #[test]
    fn a_stop_that_never_ends_is_reported_as_it_stands() {
        let term = pending(step(&signal(15, "runc", 1_000), true, None));
        let last = term.deadline_ns + LONG_STOP_FOLLOW_NS;
        let followed = pending(after_grace(term, true, last - 1));
        assert_eq!(
            reason(after_grace(followed, true, last)),
            StopReason::GraceLongerThanHardEviction
        );
    }

    /// Without following (recordings converted from version 1 hold no
    /// answers for the polls), a long grace is a stop at the grace end.
    #[test]
    fn without_following_a_long_grace_is_a_stop_at_the_grace_end() {
        let n = node(true);
        let path = format!("{POD}/{CID}");
        let cx = SignalContext {
            target_cgroup: Some(&path),
            node: Some(&n),
            soft: None,
            boot_to_wall_ns: 0,
            follow_long_stops: false,
            hard_grace_ns: HARD_EVICTION_GRACE_NS,
        };
        let term = match on_signal(&signal(15, "runc", 1_000), &cx, None) {
            Some(SignalStep::Wait(p)) => *p,
            _ => panic!("not a wait"),
        };
        assert_eq!(
            reason(after_grace(term.clone(), true, term.deadline_ns)),
            StopReason::GraceLongerThanHardEviction
        );
        let late = on_signal(&signal(9, "runc", 31_000), &cx, Some(&term));
        assert_eq!(
            late.map(reason),
            Some(StopReason::GraceLongerThanHardEviction)
        );
    }

    #[test]
    fn an_exit_on_the_runtimes_sigterm_is_an_eviction_that_says_it_is_inferred() {
        let term = pending(step(&signal(15, "containerd-shim", 1_000), true, None));
        let deadline = term.deadline_ns;
        let v = evicted(after_grace(term, false, deadline));
        assert_eq!(v.evidence.basis, Some("runtime_sigterm_then_exit"));
        assert_eq!(v.evidence.grace_s, None);
        assert_eq!(v.signal.as_ref().map(|s| s.name), Some("SIGTERM"));
        assert!(v.summary.contains("inferred"), "{}", v.summary);
    }

    #[test]
    fn signals_that_do_not_look_like_the_kubelets_eviction_are_stops() {
        // A supervisor in the pod reaping its worker, under pressure.
        assert_eq!(
            reason(step(&signal(9, "supervisord", 1_000), true, None)),
            StopReason::SenderNotRuntime
        );
        // An operator's kill from a host shell.
        assert_eq!(
            reason(step(&signal(15, "bash", 1_000), true, None)),
            StopReason::SenderNotRuntime
        );
        // The runtime, with no grace period: never the kubelet.
        assert_eq!(
            reason(step(&signal(9, "runc", 1_000), true, None)),
            StopReason::SigkillWithoutSigterm
        );
        // The runtime's stop without pressure.
        assert_eq!(
            reason(step(&signal(15, "runc", 1_000), false, None)),
            StopReason::NoMemoryPressure
        );
        // After the runtime's SIGTERM, a SIGKILL from someone else.
        let term = pending(step(&signal(15, "runc", 1_000), true, None));
        assert_eq!(
            reason(step(&signal(9, "bash", 1_500), true, Some(&term))),
            StopReason::SenderNotRuntime
        );
        assert!(is_runtime("containerd-shim"));
        assert!(is_runtime("crun"));
        assert!(!is_runtime("runcx"));
    }

    #[test]
    fn oom_verdicts_say_what_they_rest_on() {
        let c = chain_container(16_384, 16_384, 16_400, UNLIMITED);
        let v = judge(&victim(task(10, 1, &c), task(10, 1, &c)), &Hints::default());
        assert_eq!(v.evidence.basis, Some("page_counters_at_limit"));
    }

    #[test]
    fn the_kernels_summary_line_names_the_limit_when_no_per_oom_hook_read_it() {
        // Seen in the 6.1 VM (tracepoint-only hooks, CRI pod): neither level
        // at its max when read; the kernel's line named the pod.
        let c = chain_container(66_527_232 / 4096, 16_384, 16_300, 16_384);
        let summary = summary_of(10, KmsgConstraint::Memcg, Some(POD));
        let v = judge_after(summary, &victim(task(10, 1, &c), task(10, 1, &c)));
        let limit = v.limit.expect("a limit");
        assert_eq!(limit.cgroup.as_deref(), Some(POD));
        assert_eq!(
            limit.limit_bytes,
            Some(16_384 * 4096),
            "the pod level's counters"
        );
        assert_eq!(v.evidence.basis, Some("kernel_log"));
        assert_eq!(
            v.evidence.constraint_source,
            Some(ConstraintSource::KernelLog)
        );
    }

    /// A per-OOM record of a global OOM (`oc->memcg` NULL) whose
    /// `oc->constraint` is `value`, or unread.
    fn global_oom(trigger_tid: u32, value: Option<u32>) -> OomEvent {
        let mut o = kit::oom(task(trigger_tid, 3, &[]), 500);
        o.valid = valid::OOM_MEMCG | valid::OOM_GLOBAL;
        if let Some(v) = value {
            o.constraint = v;
            o.valid |= valid::OOM_CONSTRAINT;
        }
        o
    }

    #[test]
    fn a_cpuset_or_mempolicy_oom_from_the_per_oom_record_is_not_the_node_out_of_memory() {
        let c = chain_container(100, 16_384, 100, UNLIMITED);
        let judge_with = |value: Option<u32>| {
            with_snapshot(|snap| {
                let mut a = Attributor::default();
                a.on_oom(&global_oom(12, value));
                on(
                    &mut a,
                    &victim(task(10, 1, &c), task(12, 3, &c)),
                    snap,
                    &Hints::default(),
                )
            })
        };
        // CONSTRAINT_CPUSET, CONSTRAINT_MEMORY_POLICY, and a value this
        // build does not know: as the kernel log's line counts them.
        for value in [1, 2, 9] {
            let v = judge_with(Some(value));
            assert_eq!(v.evidence.constraint, Some(Constraint::Other), "{value}");
            assert_eq!(
                v.evidence.constraint_source,
                Some(ConstraintSource::OomControl)
            );
            assert_eq!(
                (v.verdict, v.kind),
                (VerdictKind::NodePressure, Some(PressureKind::SystemOom))
            );
            assert!(v.limit.is_none(), "no cgroup's limit: {:?}", v.limit);
            assert!(
                v.summary.contains("cpuset or memory policy") && !v.summary.contains("global OOM"),
                "{}",
                v.summary
            );
        }
        // CONSTRAINT_NONE, or the constraint unread: `oc->memcg` NULL is a
        // global OOM, as before.
        for value in [Some(0), None] {
            let v = judge_with(value);
            assert_eq!(v.evidence.constraint, Some(Constraint::Global), "{value:?}");
            assert!(v.summary.contains("global OOM"), "{}", v.summary);
        }
    }

    #[test]
    fn a_cpuset_or_mempolicy_oom_from_the_kernel_log_is_not_the_node_out_of_memory() {
        let c = chain_container(100, 16_384, 100, UNLIMITED);
        for (constraint, want) in [
            (KmsgConstraint::Cpuset, Constraint::Other),
            (KmsgConstraint::MemoryPolicy, Constraint::Other),
            (
                KmsgConstraint::Other("CONSTRAINT_FUTURE".into()),
                Constraint::Other,
            ),
            (KmsgConstraint::None, Constraint::Global),
        ] {
            let summary = summary_of(10, constraint.clone(), None);
            let v = judge_after(summary, &victim(task(10, 1, &c), task(12, 3, &c)));
            assert_eq!(v.evidence.constraint, Some(want), "{constraint:?}");
            assert_eq!(
                v.evidence.constraint_source,
                Some(ConstraintSource::KernelLog)
            );
            assert_eq!(
                v.summary.contains("cpuset or memory policy"),
                want == Constraint::Other,
                "{}",
                v.summary
            );
        }
    }

    #[test]
    fn a_pod_at_its_limit_wins_over_a_container_pages_short_of_its_own() {
        // Seen on CRI-made pods (issue 11): container 66,899,968 of
        // 67,108,864 bytes, the pod (container + pause) at its 64 MiB.
        let c = chain_container(66_899_968 / 4096, 16_384, 16_384, 16_384);
        let v = judge(&victim(task(10, 1, &c), task(10, 1, &c)), &Hints::default());
        assert_eq!(v.limit.and_then(|l| l.cgroup).as_deref(), Some(POD));
        // A failed huge-page charge leaves the container short of its max
        // while nothing above is at its own: still the container's.
        let c = chain_container(16_384 - 300, 16_384, 16_384 - 250, 16_384);
        let v = judge(&victim(task(10, 1, &c), task(10, 1, &c)), &Hints::default());
        assert_eq!(
            v.limit.and_then(|l| l.cgroup).as_deref(),
            Some(format!("{POD}/{CID}").as_str())
        );
    }

    /// The backlog at start reads the same kill lines `explain` does: a
    /// memcg kill without its report names no cgroup (never a host
    /// process), and an oom.group member takes its group's.
    #[test]
    fn kernel_log_kills_without_a_summary() {
        use crate::logs::oom_report::{OomGroup, OomKill};
        let kill = |group: Option<OomGroup>| PastKill {
            seq: 9,
            ts_us: 1_000,
            kill: OomKill {
                memcg: true,
                pid: 77,
                comm: "hog".into(),
                total_vm_kb: None,
                anon_rss_kb: Some(1),
                file_rss_kb: Some(1),
                shmem_rss_kb: Some(0),
                oom_score_adj: None,
                chosen: None,
                group,
            },
            summary: None,
        };
        let a = from_kernel_log(&kill(None), 0);
        assert_eq!(a.verdict, VerdictKind::CgroupLimit);
        assert!(a.limit.is_none() && a.identity.pod.is_none());
        let v = verdict(a, Observed::default());
        assert!(
            v.summary.contains("does not name the cgroup"),
            "{}",
            v.summary
        );
        let member = kill(Some(OomGroup {
            cgroup: format!("{POD}/{CID}"),
            oom_memcg: Some(POD.into()),
        }));
        let a = from_kernel_log(&member, 0);
        assert_eq!(a.verdict, VerdictKind::PodLimit);
        assert_eq!(a.limit.and_then(|l| l.cgroup).as_deref(), Some(POD));
        assert_eq!(a.victim.cgroup, Some(format!("{POD}/{CID}")));
        assert_eq!(
            a.identity.container.map(|c| c.id.to_string()).as_deref(),
            Some(CID)
        );
    }
}
