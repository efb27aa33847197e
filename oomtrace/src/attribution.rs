//! Attribution: kernel events and a read-only view of the node in, verdicts
//! out. No I/O here — every rule is testable from a recorded trace, and a
//! replay gives the same verdicts as the live run.

use std::collections::HashMap;

use oomtrace_common::{MemcgLevel, OomEvent, TaskInfo, VictimEvent, VictimSource};

use crate::{
    cgroup::{CgroupId, CgroupTree},
    event,
    kmsg::{Constraint as KmsgConstraint, OomSummary},
    pods::{self, KubeCgroup, Level},
    verdict::{
        Constraint, ConstraintSource, Container, Evidence, Limit, Pod, PressureKind, Trigger,
        Verdict, VerdictKind, Victim,
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

/// Where the victim's cgroup came from when the hook could not read it
/// (classic tracepoint): the daemon's /proc read or the attach history.
pub struct Hints<'a> {
    pub victim_cgroup: Option<&'a str>,
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
}

struct Scope {
    constraint: Option<Constraint>,
    source: Option<ConstraintSource>,
    limit: Option<LimitAt>,
}

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
        let (verdict, kind) = decide(&scope, victim_kube.as_ref(), limit_kube.as_ref());
        // The pod is the victim's; a kill at the kubepods or QoS level names
        // the victim's pod too, while the limit names the level.
        let identity = victim_kube
            .as_ref()
            .filter(|k| k.pod.is_some())
            .or(limit_kube.as_ref().filter(|k| k.pod.is_some()));
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
            oom_score_adj: ev.oom_score_adj,
            rss_bytes: (ev.anon_rss_pages + ev.file_rss_pages + ev.shmem_rss_pages) * page,
            anon_rss_bytes: ev.anon_rss_pages * page,
            file_rss_bytes: ev.file_rss_pages * page,
            shmem_rss_bytes: ev.shmem_rss_pages * page,
            total_vm_bytes: ev.total_vm_pages * page,
            cgroup: victim_cgroup,
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
            incident,
            time: wall_time(boot_ns, snap.boot_to_wall_ns),
            victim,
            trigger,
            limit,
            pod,
            container,
            evidence: Evidence {
                constraint: scope.constraint,
                constraint_source: scope.source,
                victim_hook: match ev.source {
                    s if s == VictimSource::TpBtf as u32 => "tp_btf",
                    s if s == VictimSource::RawTp as u32 => "raw_tp",
                    _ => "tracepoint",
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
        });
        incident
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
            // A limit outside kubepods: a host cgroup's own limit.
            None if !victim_in_pod => (VerdictKind::System, None),
            // TODO(verdicts issue): a pod's process under a non-pod limit is an escape.
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
    let who = format!(
        "{} (pid {}, rss {})",
        v.victim.comm,
        v.victim.pid,
        human_bytes(v.victim.rss_bytes)
    );
    let limit = v.limit.as_ref();
    let limit_text = match (
        limit.and_then(|l| l.cgroup.as_deref()),
        limit.and_then(|l| l.limit_bytes),
    ) {
        (Some(c), Some(b)) => format!("{c} hit its limit of {}", human_bytes(b)),
        (Some(c), None) => format!("{c} hit its limit"),
        _ => "a memory limit was hit".to_string(),
    };
    let pod = v.pod.as_ref().map(|p| match (&p.namespace, &p.name) {
        (Some(ns), Some(n)) => format!("pod {ns}/{n}"),
        _ => format!("pod {}", p.uid),
    });
    let container = v.container.as_ref().map(|c| match &c.name {
        Some(n) => format!("container {n}"),
        None => format!("container {}", c.id.short()),
    });
    let place = match (container, pod) {
        (Some(c), Some(p)) => format!("{c} of {p}"),
        (None, Some(p)) => p,
        _ => String::new(),
    };
    match (v.verdict, v.kind) {
        (VerdictKind::PodLimit, _) => {
            format!("{place} reached its own memory limit: {limit_text}; the kernel killed {who}.")
        }
        (VerdictKind::NodePressure, Some(PressureKind::AllocatableOom)) => {
            format!("Pods together exceeded node allocatable: {limit_text}; the kernel killed {who} in {place}.")
        }
        (VerdictKind::NodePressure, _) => format!(
            "The node ran out of memory (global OOM); the kernel killed {who}{}.",
            if place.is_empty() {
                String::new()
            } else {
                format!(" in {place}")
            }
        ),
        (VerdictKind::EscapedProcess, _) => {
            format!("{who} escaped its pod's cgroup; {limit_text}.")
        }
        (VerdictKind::System, _) => format!(
            "Host process {who} in {} was killed: {limit_text}.",
            v.victim.cgroup.as_deref().unwrap_or("an unknown cgroup")
        ),
    }
}
