//! Verdicts from the kernel's own text: kills found in the kernel log at
//! start (the backlog), and `explain`'s kills, reports and kubelet eviction
//! lines read from a saved log.

use crate::{
    logs::kmsg::PastKill,
    node::pods::{self},
    output::verdict::{
        wall_time, Constraint, ConstraintSource, Evidence, Identity, PressureKind, Process,
        Verdict, VerdictKind, Victim,
    },
    output::wording,
};

use super::attribution::{
    decide_identity, kmsg_constraint, verdict, Assessment, LimitAt, Observed, Scope,
};

/// A kill found in the kernel log at start: what the log says, no more.
/// The summary line (when the kernel printed one) gives the constraint and
/// both cgroups; the kill line the victim and its memory. A member of an
/// oom.group kill has the group's cgroup and the invocation's limit.
pub fn from_kernel_log(past: &PastKill, boot_to_wall_ns: i128) -> Assessment {
    from_kernel_log_seen(past, None, boot_to_wall_ns)
}

/// A kill line read live (kernel-log mode): the log's rules, and where the
/// log names no victim cgroup (its report was rate-limited away) the one
/// oomtrace saw the process in (`seen_cgroup`: its last cgroup attach, else
/// /proc). That names the pod and container, never the limit: the verdict
/// stays `cgroup_limit` for a memcg kill.
pub fn from_kernel_log_seen(
    past: &PastKill,
    seen_cgroup: Option<String>,
    boot_to_wall_ns: i128,
) -> Assessment {
    let k = &past.kill;
    let s = past.summary.as_ref();
    let constraint = match s.map(|s| &s.constraint) {
        Some(c) => Some(kmsg_constraint(c)),
        None if k.memcg => Some(Constraint::Memcg),
        None => Some(Constraint::Global),
    };
    let limit_path = s
        .and_then(|s| s.oom_memcg.clone())
        .or_else(|| k.group.as_ref().and_then(|g| g.oom_memcg.clone()));
    let victim_cgroup = s
        .and_then(|s| s.task_memcg.clone())
        .or_else(|| k.group.as_ref().map(|g| g.cgroup.clone()))
        .or(seen_cgroup);
    let kib = |v: Option<u64>| v.map(|x| x * 1024);
    let rss = match (k.anon_rss_kb, k.file_rss_kb, k.shmem_rss_kb) {
        (Some(a), Some(f), Some(sh)) => Some((a + f + sh) * 1024),
        _ => None,
    };
    let victim = Victim {
        pid: k.pid,
        // The kernel prints an empty name for a task without one.
        comm: Some(k.comm.clone()).filter(|c| !c.is_empty()),
        oom_score_adj: k.oom_score_adj.and_then(|a| i16::try_from(a).ok()),
        rss_bytes: rss,
        anon_rss_bytes: kib(k.anon_rss_kb),
        file_rss_bytes: kib(k.file_rss_kb),
        shmem_rss_bytes: kib(k.shmem_rss_kb),
        total_vm_bytes: kib(k.total_vm_kb),
        cgroup: victim_cgroup,
        ns_pid: None,
    };
    let mut a = logged_oom(
        constraint,
        limit_path,
        victim,
        past.ts_us.saturating_mul(1000),
        boot_to_wall_ns,
    );
    a.incident = format!("kmsg-{}", past.seq);
    a.evidence.chosen = k.chosen.as_ref().map(|c| Process {
        pid: c.pid,
        comm: Some(c.comm.clone()).filter(|c| !c.is_empty()),
    });
    a
}

/// What the kernel's log says of one OOM: its scope and the victim's
/// place; the rules as for live kills, and nothing the log does not say.
fn logged_oom(
    constraint: Option<Constraint>,
    limit_path: Option<String>,
    victim: Victim,
    boot_ns: u64,
    boot_to_wall_ns: i128,
) -> Assessment {
    let unnamed = limit_path.is_none();
    let scope = Scope {
        constraint,
        source: Some(ConstraintSource::KernelLog),
        limit: limit_path.map(LimitAt::at_path),
    };
    let victim_kube = victim.cgroup.as_deref().and_then(pods::parse_cgroup_path);
    let limit_kube = scope.limit_kube();
    let d = decide_identity(&scope, victim_kube.as_ref(), limit_kube.as_ref(), None);
    let limit_path = scope.limit.as_ref().and_then(|l| l.path.as_deref());
    // A container outside Kubernetes (Docker's own cgroups) at its own limit.
    let standalone = limit_path
        .and_then(pods::parse_standalone_container)
        .filter(|_| d.verdict == VerdictKind::System);
    let (verdict, kind, identity) = match standalone {
        Some(c) => (
            VerdictKind::PodLimit,
            None,
            Identity {
                pod: None,
                container: Some(crate::output::verdict::Container {
                    id: c.id,
                    name: None,
                    runtime: c.runtime,
                }),
            },
        ),
        // A memcg's limit, but the log does not say whose: never a host
        // process by default.
        None if unnamed && scope.constraint == Some(Constraint::Memcg) => {
            (VerdictKind::CgroupLimit, None, d.identity)
        }
        None => (d.verdict, d.kind, d.identity),
    };
    Assessment {
        verdict,
        kind,
        source: "kernel_log",
        incident: String::new(),
        boot_ns,
        time: Some(wall_time(boot_ns, boot_to_wall_ns)),
        victim,
        trigger: None,
        limit: scope.limit.as_ref().map(|l| l.limit(1)),
        identity,
        signal: None,
        killer: None,
        evidence: Evidence {
            constraint: scope.constraint,
            constraint_source: scope.source,
            basis: Some(scope.basis()),
            ..Evidence::unread("kernel_log")
        },
        host_pid_ns: false,
    }
}

/// A kill read from a saved log by `oomtrace explain`: the backlog's rules,
/// with the time, incident and limit the log itself gave (never the
/// machine's: the log may come from another one).
pub fn from_saved_log(k: &crate::logs::explain::LoggedKill) -> Assessment {
    let mut a = from_kernel_log(&k.past, 0);
    a.time = k.time.clone();
    a.boot_ns = k.since_boot_us.unwrap_or(0).saturating_mul(1000);
    a.incident = k.incident.clone();
    if let Some(l) = a.limit.as_mut() {
        l.limit_bytes = k.limit_bytes;
        l.usage_bytes = k.usage_bytes;
    }
    a
}

/// The verdict of a kill read from a saved log: the one builder, and the
/// sentence that says where it came from.
pub fn verdict_from_log(a: Assessment, seen: Observed) -> Verdict {
    let mut v = verdict(a, seen);
    v.summary = wording::summary_from_log(&v);
    v
}

/// An OOM report in a saved log that ends before its victim: the scope it
/// printed, and no process (`victim` null).
pub fn verdict_from_unfinished(r: &crate::logs::explain::LoggedReport, seen: Observed) -> Verdict {
    let u = &r.report;
    let mut a = logged_oom(
        u.constraint.as_ref().map(kmsg_constraint),
        u.oom_memcg.clone(),
        Victim::unread(0, None, u.task_memcg.clone()),
        r.since_boot_us.unwrap_or(0).saturating_mul(1000),
        0,
    );
    // The chosen task's cgroup (4.x `Task in`) names the pod when the
    // limit's does not.
    a.time = r.time.clone();
    a.incident = r.incident.clone();
    if let Some(l) = a.limit.as_mut() {
        l.limit_bytes = r.limit_bytes;
        l.usage_bytes = r.usage_bytes;
    }
    let mut v = verdict(a, seen);
    v.victim = None;
    v.kubelet_reports = None;
    v.summary = wording::summary_from_log(&v);
    v
}

/// The kubelet's eviction of a pod, from its eviction manager's lines in a
/// saved log: a node-pressure eviction resting on the kubelet's own word.
pub fn verdict_from_kubelet_eviction(e: &crate::logs::explain::LoggedEviction) -> Verdict {
    let uid = e.uid.as_deref().and_then(|u| pods::PodUid::parse(u).ok());
    let container = match e.containers.as_slice() {
        [c] => c
            .container_id
            .as_deref()
            .and_then(|id| pods::ContainerId::parse(id).ok())
            .map(|id| crate::output::verdict::Container {
                id,
                name: c.container.clone(),
                runtime: c.runtime.as_deref().and_then(pods::Runtime::from_scheme),
            }),
        _ => None,
    };
    let mut v = Verdict {
        kind: Some(PressureKind::Eviction),
        time: e.time.clone(),
        pod: Some(crate::output::verdict::Pod {
            uid,
            namespace: Some(e.namespace.clone()),
            name: Some(e.name.clone()),
            qos: None,
        }),
        container,
        evidence: Evidence {
            basis: Some("kubelet_log"),
            grace_s: e.grace_s.map(|g| g as f64),
            eviction_resource: e.resource.clone(),
            ..Evidence::unread("kubelet_log")
        },
        ..Verdict::unread(
            VerdictKind::NodePressure,
            "kubelet_log",
            format!("kubelet-evict-{}/{}-{}", e.namespace, e.name, e.line),
            "kubelet_log",
        )
    };
    v.summary = wording::summary_from_log(&v);
    v
}
