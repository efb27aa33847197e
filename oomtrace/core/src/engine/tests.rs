use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
};

use crate::node::observe::ProcStart;

use oomtrace_common::{AttachEvent, Kind, MovedTask, PATH_LEN};

use super::*;
use crate::{
    kernel::{event::bytes_of, test_kit as kit},
    node::cgroup::Version,
    node::kubelet::Threshold,
    node::observe::{Charges, MemoryStat, Namespaces, NodeAvailable},
    node::pods::{ContainerId, PodUid},
    output::verdict::{
        Constraint, ConstraintSource, LimitBasis, LimitLowered, MemorySource, StopReason, Stopped,
        Verdict, VerdictKind,
    },
};

const HOST_NS: u32 = 1;
const POD_A: &str = "/kubepods/burstable/pod6f1c2a9e-3b7d-4c11-9e0a-2b8f5d4c7a10";
const POD_B: &str = "/kubepods/burstable/pod7a2d3b0f-4c8e-4d22-8f1b-3c9a6e5d8b21";
const CID_A: &str = "3f9a1c0b7e2d4f6a8b1c3d5e7f9a0b2c4d6e8f0a1b3c5d7e9f1a2b3c4d5e6f70";
const CID_B: &str = "4e0b2d1c8f3e5a7b9c2d4e6f8a0b1c3d5e7f9a1b2c4d6e8f0a2b3c4d5e6f7a81";

/// A fake node that knows only these pids' namespaces and starts.
fn namespaced(ns: HashMap<u32, u32>, starts: HashMap<u32, ProcStart>) -> Fake {
    Fake {
        ns,
        starts,
        ..Fake::default()
    }
}

fn attach(pid: u32, path: &str, boot_ns: u64) -> Input {
    attach_to(pid, path, 0, boot_ns)
}

fn attach_to(pid: u32, path: &str, dst_id: u64, boot_ns: u64) -> Input {
    attach_in(4, pid, path, dst_id, boot_ns)
}

/// An attach in hierarchy `root` (0: cgroup v2's).
fn attach_in(root: u32, pid: u32, path: &str, dst_id: u64, boot_ns: u64) -> Input {
    let mut ev = AttachEvent {
        header: kit::header(Kind::CgroupAttach, boot_ns),
        dst_root: root,
        dst_level: 0,
        dst_id,
        pid,
        path_len: path.len() as u32,
        pid_ns: 0,
        ppid: 0,
        start_ns: 0,
        parent_start_ns: 0,
        valid: 0,
        _pad: 0,
        comm: kit::comm("sh"),
        path: [0; PATH_LEN],
    };
    ev.path[..path.len()].copy_from_slice(path.as_bytes());
    Input::Kernel(Bytes::from(bytes_of(&ev)))
}

/// An attach (v1 memory hierarchy) whose record carries the moved task,
/// as the tp_btf program reads it.
fn attach_moved(pid: u32, path: &str, boot_ns: u64, moved: MovedTask) -> Input {
    let Input::Kernel(bytes) = attach(pid, path, boot_ns) else {
        unreachable!("attach() makes a kernel record")
    };
    let mut ev: AttachEvent = bytemuck::pod_read_unaligned(&bytes);
    ev.pid_ns = moved.pid_ns;
    ev.ppid = moved.ppid;
    ev.start_ns = moved.start_ns;
    ev.parent_start_ns = moved.parent_start_ns;
    ev.valid = oomtrace_common::valid::ATTACH_TASK;
    Input::Kernel(Bytes::from(bytes_of(&ev)))
}

#[test]
fn a_move_whose_record_carries_its_task_needs_no_proc() {
    // /proc knows none of these processes (the record was read a tick
    // after the move, and they are gone): the record alone decides.
    let mut obs = namespaced(HashMap::new(), HashMap::new());
    let mut engine = Engine::new(start_in_host_ns());
    let ms = 1_000_000;
    let task = |pid_ns, ppid, start_ns, parent_start_ns| MovedTask {
        pid_ns,
        ppid,
        start_ns,
        parent_start_ns,
    };
    // A container's process learns its pid namespace's owner...
    engine.handle(
        attach_moved(
            10,
            &format!("{POD_A}/{CID_A}"),
            100 * ms,
            task(77, 1, 50 * ms, 0),
        ),
        &mut obs,
    );
    // ...so another process of that namespace leaving the pod escapes.
    let out = engine.handle(
        attach_moved(
            11,
            "/system.slice/demo.service",
            200 * ms,
            task(77, 10, 150 * ms, 50 * ms),
        ),
        &mut obs,
    );
    assert_eq!(escapes(&out).len(), 1, "a container process's escape");
    // hostPID: a host-namespace process seen joining pod B, then its child
    // (forked after) leaving every pod; and one forked before: no escape.
    engine.handle(
        attach_moved(
            20,
            &format!("{POD_B}/{CID_B}"),
            300 * ms,
            task(HOST_NS, 1, 250 * ms, 0),
        ),
        &mut obs,
    );
    let out = engine.handle(
        attach_moved(
            21,
            "/system.slice/agent.service",
            500 * ms,
            task(HOST_NS, 20, 400 * ms, 250 * ms),
        ),
        &mut obs,
    );
    let found = escapes(&out);
    assert_eq!(found.len(), 1, "the hostPID child forked in the pod");
    assert_eq!(
        found[0].pod_cgroup.as_deref(),
        Some(format!("{POD_B}/{CID_B}").as_str())
    );
    let out = engine.handle(
        attach_moved(
            22,
            "/system.slice/agent.service",
            600 * ms,
            task(HOST_NS, 20, 260 * ms, 250 * ms),
        ),
        &mut obs,
    );
    assert!(escapes(&out).is_empty(), "forked before its parent joined");
    assert_eq!(
        (obs.ns_reads, obs.start_reads),
        (0, 0),
        "no /proc read for a move"
    );
}

fn start_in_host_ns() -> Start {
    Start {
        node: "n".into(),
        kernel: "k".into(),
        layout: Layout {
            version: Version::V1,
            memory_root: PathBuf::from("/sys/fs/cgroup/memory"),
            hierarchy_id: 4,
        },
        cgroups: Vec::new(),
        page_size: 4096,
        boot_to_wall_ns: 0,
        host_pid_ns: HOST_NS,
        containers: Vec::new(),
        leak_grace_ns: u64::MAX,
        heartbeat_ns: 0,
        kernel_oom_kills: None,
        container_pids: Vec::new(),
        kubelet_log: false,
        follow_long_stops: true,
        runtime_slack_ns: crate::node::kubelet::RUNTIME_SLACK_NS,
        reading_kmsg: true,
        near_oom_horizon_ns: 0,
        dying_sample_ns: crate::node::node_memory::DYING_SAMPLE_NS,
        userspace_killers: Some(Vec::new()),
        limits: Vec::new(),
        limits_ns: 0,
    }
}

fn escapes(out: &[Line]) -> Vec<&Finding> {
    out.iter()
        .filter_map(|r| match r {
            Line::Finding(f) if f.finding == FindingKind::EscapeDetected => Some(f),
            _ => None,
        })
        .collect()
}

fn started(start_ns: u64, ppid: u32) -> ProcStart {
    ProcStart { start_ns, ppid }
}

#[test]
fn a_host_pid_pods_process_leaving_its_pod_is_found_by_its_pid() {
    let container = format!("{POD_A}/{CID_A}");
    let ms = 1_000_000;
    // Every process here shares the host's pid namespace (hostPID).
    let ns = HashMap::from([(10, HOST_NS), (11, HOST_NS), (12, HOST_NS), (13, HOST_NS)]);
    let mut obs = namespaced(
        ns,
        HashMap::from([
            // Seen joining the container at 100 ms, started before.
            (10, started(50 * ms, 1)),
            // Forked by 10 inside the pod, after 10 joined it.
            (11, started(300 * ms, 10)),
            // Forked by 10 before 10 joined the pod: never in it.
            (12, started(60 * ms, 10)),
        ]),
    );
    let mut engine = Engine::new(start_in_host_ns());
    engine.handle(attach(10, &container, 100 * ms), &mut obs);
    let out = engine.handle(
        attach(11, "/system.slice/agent.service", 400 * ms),
        &mut obs,
    );
    let found = escapes(&out);
    assert_eq!(found.len(), 1, "the child forked in the pod");
    assert_eq!(found[0].pod_cgroup.as_deref(), Some(container.as_str()));
    assert_eq!(
        found[0].container.as_ref().map(|c| c.id.as_str()),
        Some(CID_A)
    );
    let out = engine.handle(
        attach(12, "/system.slice/agent.service", 500 * ms),
        &mut obs,
    );
    assert!(escapes(&out).is_empty(), "forked before its parent joined");
    let out = engine.handle(
        attach(10, "/system.slice/agent.service", 600 * ms),
        &mut obs,
    );
    assert_eq!(escapes(&out).len(), 1, "the process seen joining the pod");
}

#[test]
fn a_reused_pid_is_no_escape() {
    let ms = 1_000_000;
    let mut obs = namespaced(
        HashMap::from([(10, HOST_NS)]),
        // The process now at pid 10 started after the one seen in the
        // pod: the kernel reused the pid.
        HashMap::from([(10, started(900 * ms, 1))]),
    );
    let mut engine = Engine::new(start_in_host_ns());
    engine.handle(attach(10, &format!("{POD_A}/{CID_A}"), 100 * ms), &mut obs);
    let out = engine.handle(
        attach(10, "/system.slice/cron.service", 1000 * ms),
        &mut obs,
    );
    assert!(escapes(&out).is_empty());
    // A host process never seen in a pod is none either.
    let out = engine.handle(
        attach(99, "/system.slice/cron.service", 1100 * ms),
        &mut obs,
    );
    assert!(escapes(&out).is_empty());
}

#[test]
fn a_reused_pid_namespace_inode_names_the_newer_container() {
    let mut engine = Engine::new(Start {
        cgroups: vec![(30, format!("{POD_B}/{CID_B}"))],
        ..start_in_host_ns()
    });
    // Container A's init, then (A gone) container B's init: the kernel
    // gave B's new pid namespace A's old inode number, 77.
    let mut obs = namespaced(
        HashMap::from([(10, 77), (20, 77), (21, 77)]),
        HashMap::new(),
    );
    engine.handle(attach(10, &format!("{POD_A}/{CID_A}"), 1), &mut obs);
    engine.handle(attach(20, &format!("{POD_B}/{CID_B}"), 2), &mut obs);
    let out = engine.handle(attach(21, "/system.slice/demo.service", 3), &mut obs);
    let found: Vec<&Finding> = out
        .iter()
        .filter_map(|r| match r {
            Line::Finding(f) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(found.len(), 1, "one escape_detected");
    assert_eq!(
        found[0].pod_cgroup.as_deref(),
        Some(format!("{POD_B}/{CID_B}").as_str())
    );
    assert_eq!(
        found[0].container.as_ref().map(|c| c.id.as_str()),
        Some(CID_B)
    );
}

/// Recorded in CI: a container's pid namespace got a dead container's
/// inode number and its init was never seen joining in it; the dead
/// container's cgroup is gone, so its entry names no one.
#[test]
fn a_pid_namespace_whose_container_cgroup_is_gone_makes_no_escape() {
    let mut engine = Engine::new(start_in_host_ns());
    let mut obs = namespaced(HashMap::from([(10, 77), (21, 77)]), HashMap::new());
    let dead = format!("{POD_A}/{CID_A}");
    engine.handle(attach_to(10, &dead, 101, 1), &mut obs);
    let mut rmdir = oomtrace_common::CgroupEvent {
        header: kit::header(Kind::CgroupRmdir, 2),
        root: 4,
        level: 5,
        id: 101,
        path_len: dead.len() as u32,
        _pad: 0,
        path: [0; PATH_LEN],
    };
    rmdir.path[..dead.len()].copy_from_slice(dead.as_bytes());
    engine.handle(Input::Kernel(Bytes::from(bytes_of(&rmdir))), &mut obs);
    let out = engine.handle(
        attach_to(21, "/system.slice/demo.service", 102, 3),
        &mut obs,
    );
    assert!(
        !out.iter().any(|r| matches!(r, Line::Finding(_))),
        "no escape from a container that is gone"
    );
}

/// The one fake node of these tests: the namespaces and starts of the
/// pids it was given, the kernel's OOM-kill count (its vmstat reads
/// counted) and the cgroups with memory.oom.group set; nothing else.
#[derive(Default)]
struct Fake {
    ns: HashMap<u32, u32>,
    starts: HashMap<u32, ProcStart>,
    oom_kill: u64,
    groups: HashSet<String>,
    reads: usize,
    /// Dying cgroups at each breakdown read (none: unread).
    dying: VecDeque<u64>,
    /// The node's memory (none: unread).
    node: Option<NodeAvailable>,
    /// Every pod cgroup's `populated` (none: unread).
    populated: Option<bool>,
    /// Every pod's namespace/name.
    pod: Option<(String, String)>,
    /// The kubelet's log: whether it names the eviction (none: unread).
    evicted: Option<bool>,
    /// How often the kubelet's log was asked.
    log_reads: usize,
    /// How often a process's namespaces were read.
    ns_reads: usize,
    start_reads: usize,
    /// Every sender's executable (none: unread).
    exe: Option<String>,
    /// The node's memory PSI (none: unread).
    psi: Option<crate::node::node_memory::Psi>,
}

impl Observe for Fake {
    fn proc_cgroup(&mut self, _: u32) -> Option<String> {
        None
    }
    fn namespaces(&mut self, pid: u32) -> Option<Namespaces> {
        self.ns_reads += 1;
        self.ns
            .get(&pid)
            .map(|&pid_ns| Namespaces { pid_ns, mnt_ns: 0 })
    }
    fn memory_stat(&mut self, _: &str) -> Option<MemoryStat> {
        None
    }
    fn node_memory(&mut self) -> Option<NodeAvailable> {
        self.node.clone()
    }
    fn node_breakdown(&mut self) -> Option<Box<crate::node::node_memory::Breakdown>> {
        let n = self.dying.pop_front()?;
        let mut b =
            crate::node::node_memory::breakdown(&crate::node::node_memory::Readings::default());
        b.dying_cgroups.count = Some(n);
        b.dying_cgroups.bytes = (n * 2) << 20;
        Some(Box::new(b))
    }
    fn eviction_threshold(&mut self) -> Threshold {
        Threshold::default()
    }
    fn pod_name(&mut self, _: &PodUid) -> Option<(String, String)> {
        self.pod.clone()
    }
    fn container_name(&mut self, _: &ContainerId) -> Option<String> {
        None
    }
    fn populated(&mut self, _: &str) -> Option<bool> {
        self.populated
    }
    fn oom_group(&mut self, victim: &str, limit: &str) -> Option<bool> {
        Some(
            crate::node::observe::up_to(victim, limit)
                .iter()
                .any(|c| self.groups.contains(*c)),
        )
    }
    fn now_boot_ns(&mut self) -> u64 {
        0
    }
    fn charges(&mut self) -> Option<Charges> {
        None
    }
    fn kubelet_evicted(&mut self, _: &str, _: &str, _: i64) -> Option<bool> {
        self.log_reads += 1;
        self.evicted
    }
    fn proc_start(&mut self, pid: u32) -> Option<ProcStart> {
        self.start_reads += 1;
        self.starts.get(&pid).copied()
    }
    fn vmstat_oom_kill(&mut self) -> Option<u64> {
        self.reads += 1;
        Some(self.oom_kill)
    }
    fn exe(&mut self, _: u32) -> Option<String> {
        self.exe.clone()
    }
    fn node_psi(&mut self) -> Option<crate::node::node_memory::Psi> {
        self.psi
    }
}

const S: u64 = 1_000_000_000;
const BASE: u64 = 500;

/// A v2 node with one pod container (cgroup id 5); audited from 1 s
/// (`audit`), a heartbeat every second.
fn audited(audit: bool) -> Engine {
    Engine::new(Start {
        node: "n".into(),
        kernel: "k".into(),
        layout: Layout {
            version: Version::V2,
            memory_root: PathBuf::from("/sys/fs/cgroup"),
            hierarchy_id: 0,
        },
        cgroups: vec![
            (1, "/".into()),
            (2, "/kubepods".into()),
            (3, "/kubepods/burstable".into()),
            (4, POD_A.into()),
            (5, format!("{POD_A}/{CID_A}")),
        ],
        page_size: 4096,
        boot_to_wall_ns: 0,
        host_pid_ns: HOST_NS,
        containers: Vec::new(),
        leak_grace_ns: u64::MAX,
        container_pids: Vec::new(),
        heartbeat_ns: S,
        kernel_oom_kills: audit.then_some(KernelCount {
            boot_ns: S,
            oom_kill: BASE,
        }),
        kubelet_log: false,
        follow_long_stops: true,
        runtime_slack_ns: crate::node::kubelet::RUNTIME_SLACK_NS,
        reading_kmsg: true,
        near_oom_horizon_ns: 0,
        dying_sample_ns: crate::node::node_memory::DYING_SAMPLE_NS,
        userspace_killers: Some(Vec::new()),
        limits: Vec::new(),
        limits_ns: 0,
    })
}

/// A process of the container (cgroup 5, at its limit), killed at
/// `boot_ns` by an allocation of `trigger`.
fn killed(pid: u32, trigger: u32, boot_ns: u64) -> Input {
    killed_in(
        pid,
        trigger,
        boot_ns,
        &[
            (5, 4096),
            (4, 1 << 51),
            (3, 1 << 51),
            (2, 1 << 51),
            (1, 1 << 51),
        ],
    )
}

/// A process killed at `boot_ns` whose memcg chain (leaf first) is
/// `chain`: (cgroup id, its limit in pages; usage is 4096 pages).
fn killed_in(pid: u32, trigger: u32, boot_ns: u64, chain: &[(u64, u64)]) -> Input {
    let levels: Vec<(u64, u64, u64)> = chain.iter().map(|&(id, max)| (id, 4096, max)).collect();
    killed_by(pid, &levels, trigger, &levels, boot_ns)
}

/// A victim record: the victim's and the trigger's memcg chains (leaf
/// first) each as (cgroup id, usage pages, max pages).
fn killed_by(
    pid: u32,
    victim_chain: &[(u64, u64, u64)],
    trigger: u32,
    trigger_chain: &[(u64, u64, u64)],
    boot_ns: u64,
) -> Input {
    let ev = kit::victim(
        kit::task(pid, 7, "worker", victim_chain),
        kit::task(trigger, 7, "worker", trigger_chain),
        boot_ns,
    );
    Input::Kernel(Bytes::from(bytes_of(&ev)))
}

#[test]
fn dying_cgroups_growing_every_minute_are_a_finding_once() {
    let mut e = Engine::new(start_in_host_ns());
    let mut k = Fake {
        dying: (0..30).map(|i| 100 + 60 * i).collect(),
        ..Fake::default()
    };
    // Ticks every second for 30 minutes: one read a minute.
    let out: Vec<Line> = (0..=30 * 60)
        .flat_map(|t| e.handle(Input::Tick(t * S), &mut k))
        .collect();
    assert!(
        k.dying.len() <= 1,
        "read once a minute: {} left",
        k.dying.len()
    );
    let found: Vec<&Finding> = out
        .iter()
        .filter_map(|l| match l {
            Line::Finding(f) if f.finding == FindingKind::DyingCgroups => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(found.len(), 1, "at most one an hour");
    let g = found[0].dying_cgroups.as_ref().expect("numbers");
    assert_eq!((g.count_before, g.count), (Some(100), Some(100 + 60 * 9)));
    assert!(
        found[0].summary.contains("keep growing"),
        "{}",
        found[0].summary
    );
}

/// Every line of ticks at `from..=to` s (every 50 ms too, as while
/// victims wait: vmstat is still read about once a second).
/// An engine without the audit, ticked through its first two seconds.
fn two_seconds_in() -> (Engine, Fake) {
    let mut e = audited(false);
    let mut k = Fake::default();
    ticks(&mut e, &mut k, 1, 2);
    (e, k)
}

fn ticks(e: &mut Engine, k: &mut Fake, from: u64, to: u64) -> Vec<Line> {
    (from * 20..=to * 20)
        .flat_map(|t| e.handle(Input::Tick(t * S / 20), k))
        .collect()
}

fn missed(lines: &[Line]) -> Vec<&crate::output::sink::Missed> {
    lines
        .iter()
        .filter_map(|l| match l {
            Line::Missed(m) => Some(m),
            _ => None,
        })
        .collect()
}

fn last_beat(lines: &[Line]) -> Heartbeat {
    lines
        .iter()
        .rev()
        .find_map(|l| match l {
            Line::Heartbeat(h) => Some(h.clone()),
            _ => None,
        })
        .expect("a heartbeat")
}

fn verdicts(lines: &[Line]) -> usize {
    lines
        .iter()
        .filter(|l| matches!(l, Line::Verdict(_)))
        .count()
}

fn only_verdict(lines: &[Line]) -> &Verdict {
    let v: Vec<&Verdict> = lines
        .iter()
        .filter_map(|l| match l {
            Line::Verdict(v) => Some(&**v),
            _ => None,
        })
        .collect();
    assert_eq!(v.len(), 1, "{lines:?}");
    v[0]
}

fn summary_for(pid: u32, report: Option<MemcgReport>) -> OomSummary {
    let cgroup = format!("{POD_A}/{CID_A}");
    OomSummary {
        constraint: crate::logs::oom_report::Constraint::Memcg,
        oom_memcg: Some(cgroup.clone()),
        task_memcg: Some(cgroup),
        task: "worker".into(),
        pid,
        uid: Some(0),
        report,
    }
}

#[test]
fn the_memory_is_the_kernels_report_at_the_kill() {
    let (mut e, mut k) = two_seconds_in();
    // The victim record first: it waits for the report.
    let out = e.handle(killed(100, 100, 2 * S), &mut k);
    assert!(out.is_empty() && e.waiting(), "{out:?}");
    let report = MemcgReport {
        cgroup: format!("{POD_A}/{CID_A}"),
        usage_kb: Some(16384),
        limit_kb: Some(16384),
        stats: [
            ("anon".to_owned(), 15 << 20),
            ("inactive_file".to_owned(), 1 << 20),
        ]
        .into_iter()
        .collect(),
    };
    let out = e.handle(Input::Kmsg(summary_for(100, Some(report))), &mut k);
    let m = only_verdict(&out).memory.clone().expect("memory");
    assert_eq!(m.source, MemorySource::KernelOomReport);
    assert_eq!(m.anon_bytes, Some(15 << 20));
    assert_eq!(m.working_set_bytes, Some(15 << 20));
}

#[test]
fn a_rate_limited_report_leaves_the_page_counter_and_no_wait() {
    let (mut e, mut k) = two_seconds_in();
    assert!(e.handle(killed(100, 100, 2 * S), &mut k).is_empty());
    // The kill line without a summary before it: no report will come.
    let out = e.handle(Input::KmsgKill(100), &mut k);
    let m = only_verdict(&out).memory.clone().expect("memory");
    assert_eq!(m.source, MemorySource::PageCounter);
    assert_eq!(m.cgroup, format!("{POD_A}/{CID_A}"));
    assert_eq!(m.usage_bytes, Some(4096 * 4096));
    assert_eq!((m.anon_bytes, m.working_set_bytes), (None, None));
    // Had the kill line come first, the record is judged at once.
    let out = e.handle(Input::KmsgKill(101), &mut k);
    assert!(out.is_empty());
    let out = e.handle(killed(101, 101, 3 * S), &mut k);
    assert_eq!(
        only_verdict(&out).memory.as_ref().map(|m| m.source),
        Some(MemorySource::PageCounter)
    );
}

#[test]
fn a_log_read_past_the_kill_without_its_report_ends_the_wait() {
    // The kernel stores a kill's report before it marks the victim: once
    // /dev/kmsg has been read to its end after the victim record arrived,
    // a report not among what was read will not come.
    let (mut e, mut k) = two_seconds_in();
    assert!(e.handle(killed(100, 100, 2 * S), &mut k).is_empty());
    // Read through a moment before the kill: the report may still come.
    let out = e.handle(Input::KmsgDrained(2 * S - 1), &mut k);
    assert!(out.is_empty() && e.waiting(), "{out:?}");
    let out = e.handle(Input::KmsgDrained(2 * S + 1), &mut k);
    let m = only_verdict(&out).memory.clone().expect("memory");
    assert_eq!(m.source, MemorySource::PageCounter);
    assert!(!e.waiting());
    // A report read before the drain is the verdict's, as ever.
    assert!(e.handle(killed(101, 101, 3 * S), &mut k).is_empty());
    let report = MemcgReport {
        cgroup: format!("{POD_A}/{CID_A}"),
        usage_kb: Some(16384),
        limit_kb: Some(16384),
        stats: [("anon".to_owned(), 15 << 20)].into_iter().collect(),
    };
    // The summary came in the same drain: its line is handed on first.
    let out = e.handle(Input::Kmsg(summary_for(101, Some(report))), &mut k);
    let m = only_verdict(&out).memory.clone().expect("memory");
    assert_eq!(m.source, MemorySource::KernelOomReport);
    let out = e.handle(Input::KmsgDrained(3 * S + 1), &mut k);
    assert!(out.is_empty(), "judged twice: {out:?}");
}

#[test]
fn without_the_kernel_log_nothing_waits_for_it() {
    // A non-privileged container has no /dev/kmsg: the page counter at
    // once, not a second's wait per kill for a report that cannot come.
    let mut e = Engine::new(Start {
        reading_kmsg: false,
        ..audited(false).start
    });
    let mut k = Fake::default();
    ticks(&mut e, &mut k, 1, 2);
    let out = e.handle(killed(100, 100, 2 * S), &mut k);
    let m = only_verdict(&out).memory.clone().expect("memory");
    assert_eq!(m.source, MemorySource::PageCounter);
}

/// A process of the container whose memory.max (cgroup 5) was written
/// down to 4096 pages below its 8192 in use, the kernel's OOM killer run
/// inside the write: the trigger is the writer, a shell in the root cgroup.
fn killed_by_a_limit_write(pid: u32, boot_ns: u64) -> Input {
    killed_by(
        pid,
        &[
            (5, 8192, 4096),
            (4, 8192, 1 << 51),
            (3, 9000, 1 << 51),
            (2, 9000, 1 << 51),
            (1, 50_000, 1 << 51),
        ],
        WRITER,
        &[(1, 50_000, 1 << 51)],
        boot_ns,
    )
}

const WRITER: u32 = 300;

/// The kernel's summary of a kill in a memcg OOM of `oom_memcg`.
fn memcg_summary(pid: u32, oom_memcg: &str) -> OomSummary {
    OomSummary {
        oom_memcg: Some(oom_memcg.to_owned()),
        ..summary_for(pid, None)
    }
}

#[test]
fn a_kill_inside_a_limit_write_is_the_limits_as_the_kernels_report_says() {
    // No per-OOM record: the writer's chain holds no limit, and the
    // victim's report names the container's.
    let (mut e, mut k) = two_seconds_in();
    assert!(e
        .handle(killed_by_a_limit_write(100, 2 * S), &mut k)
        .is_empty());
    let container = format!("{POD_A}/{CID_A}");
    let out = e.handle(Input::Kmsg(memcg_summary(100, &container)), &mut k);
    let v = only_verdict(&out);
    assert_eq!((v.verdict, v.kind), (VerdictKind::PodLimit, None));
    assert_eq!(v.evidence.constraint, Some(Constraint::Memcg));
    assert_eq!(
        v.evidence.constraint_source,
        Some(ConstraintSource::KernelLog)
    );
    let limit = v.limit.as_ref().expect("the limit");
    assert_eq!(limit.cgroup.as_deref(), Some(container.as_str()));
    assert_eq!(limit.limit_bytes, Some(4096 * 4096));
    assert_eq!(limit.usage_bytes, Some(8192 * 4096));
    // A second victim of the same write, marked before its report is read,
    // is of the same OOM: not a global one.
    let out = e.handle(killed_by_a_limit_write(101, 2 * S + 5_000_000), &mut k);
    assert_same_oom(only_verdict(&out), v, &container);
}

/// `two`, judged before its own report, is of `one`'s memcg OOM at
/// `limit`'s limit.
fn assert_same_oom(two: &Verdict, one: &Verdict, limit: &str) {
    assert_eq!(two.verdict, VerdictKind::PodLimit, "{two:?}");
    assert_eq!(two.evidence.constraint, Some(Constraint::Memcg), "{two:?}");
    assert_eq!(two.incident, one.incident);
    assert_eq!(
        two.limit.as_ref().and_then(|l| l.cgroup.as_deref()),
        Some(limit)
    );
}

#[test]
fn a_limit_write_seen_without_the_victims_chain_keeps_the_reports_scope() {
    // The victims' chains unread (the classic tracepoint): the report's
    // cgroup is in no chain read, known by its path alone. The write's next
    // victim, before its own report, is still of that OOM.
    let (mut e, mut k) = two_seconds_in();
    let writer = [(1, 50_000, 1 << 51)];
    assert!(e
        .handle(killed_by(100, &[], WRITER, &writer, 2 * S), &mut k)
        .is_empty());
    let container = format!("{POD_A}/{CID_A}");
    let report = MemcgReport {
        cgroup: container.clone(),
        usage_kb: Some(32768),
        limit_kb: Some(16384),
        stats: Default::default(),
    };
    let summary = OomSummary {
        report: Some(report),
        ..memcg_summary(100, &container)
    };
    let out = e.handle(Input::Kmsg(summary), &mut k);
    let one = only_verdict(&out);
    assert_eq!(one.verdict, VerdictKind::PodLimit);
    // The limit's numbers from the kernel's report of that cgroup.
    let limit = one.limit.as_ref().expect("the limit");
    assert_eq!(
        (limit.usage_bytes, limit.limit_bytes),
        (Some(32768 << 10), Some(16384 << 10))
    );
    let out = e.handle(
        killed_by(101, &[], WRITER, &writer, 2 * S + 5_000_000),
        &mut k,
    );
    assert_same_oom(only_verdict(&out), one, &container);
}

#[test]
fn a_kill_inside_a_write_to_the_kubepods_limit_is_allocatable() {
    let (mut e, mut k) = two_seconds_in();
    assert!(e
        .handle(killed_by_a_limit_write(100, 2 * S), &mut k)
        .is_empty());
    let out = e.handle(Input::Kmsg(memcg_summary(100, "/kubepods")), &mut k);
    let v = only_verdict(&out);
    assert_eq!(
        (v.verdict, v.kind),
        (
            VerdictKind::NodePressure,
            Some(PressureKind::AllocatableOom)
        )
    );
    assert_eq!(
        v.limit.as_ref().and_then(|l| l.cgroup.as_deref()),
        Some("/kubepods")
    );
}

#[test]
fn a_limit_write_kill_without_its_report_claims_no_global_oom() {
    // The report never comes (rate-limited, then the deadline): the
    // victim's container is over its limit, the trigger outside it. The
    // OOM may be that limit's, written from outside: no global claim.
    let (mut e, mut k) = two_seconds_in();
    assert!(e
        .handle(killed_by_a_limit_write(100, 2 * S), &mut k)
        .is_empty());
    let out = ticks_ns(&mut e, &mut k, 2 * S, 4 * S);
    let v = only_verdict(&out);
    assert_ne!(v.kind, Some(PressureKind::SystemOom), "{v:?}");
    assert_eq!(v.evidence.constraint, None);
    assert_eq!(v.evidence.basis, Some("victim_cgroup_only"));
    assert!(v.top_consumers.is_none(), "{v:?}");
}

#[test]
fn near_oom_is_one_finding_before_the_kill_which_says_so() {
    let mut start = audited(false).start.clone();
    start.near_oom_horizon_ns = 60 * S;
    let mut e = Engine::new(start);
    let mut k = Fake::default();
    let container = format!("{POD_A}/{CID_A}");
    assert!(e
        .near_oom_targets()
        .iter()
        .any(|(id, p)| *id == 5 && *p == container));
    let limit = 128u64 << 20;
    let mut out = Vec::new();
    // 16 MiB/s from 64 MiB, sampled every 500 ms.
    for i in 0..8u64 {
        let usage = (64 << 20) + i * (8 << 20);
        out.extend(e.handle(
            Input::Usage(near_oom::Samples {
                boot_ns: 10 * S + i * S / 2,
                cgroups: vec![near_oom::Sample {
                    id: 5,
                    cgroup: container.clone(),
                    usage_bytes: usage,
                    limit_bytes: limit,
                    working_set_bytes: Some(usage),
                    psi: None,
                }],
            }),
            &mut k,
        ));
    }
    let found: Vec<&Finding> = out
        .iter()
        .filter_map(|l| match l {
            Line::Finding(f) if f.finding == FindingKind::NearOom => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(found.len(), 1, "{out:?}");
    let f = found[0];
    assert_eq!(f.cgroup, container);
    assert_eq!(f.limit_bytes, Some(limit));
    assert_eq!(f.growth_bytes_per_s, Some(16 << 20));
    assert_eq!(
        f.pod
            .as_ref()
            .and_then(|p| p.uid.as_ref())
            .map(|u| u.to_string()),
        Some(POD_A[23..].to_string())
    );
    assert!(f.container.is_some());
    assert!(f.summary.contains("growing 16Mi/s"), "{}", f.summary);
    // 106 MiB at 12.5 s: warned; the kill at 14 s.
    // The verdict waits up to 1 s for the kernel log's line.
    let mut out = e.handle(killed(100, 100, 14 * S), &mut k);
    out.extend(e.handle(Input::Tick(15 * S + S / 5), &mut k));
    let v = out
        .iter()
        .find_map(|l| match l {
            Line::Verdict(v) => Some(v),
            _ => None,
        })
        .expect("the kill's verdict");
    assert_eq!(v.warned_s_before, Some(1.5), "{v:?}");
}

/// A memcg-pressure record of a task in the container (cgroup 5) whose
/// page counter is at `usage` of `max` pages.
fn pressure(boot_ns: u64, usage: u64, max: u64) -> Input {
    let chain = [(5, usage, max), (4, usage, 1 << 51), (1, usage, 1 << 51)];
    let ev = oomtrace_common::PressureEvent {
        header: kit::header(Kind::Pressure, boot_ns),
        task: kit::task(100, 7, "worker", &chain),
    };
    Input::Kernel(Bytes::from(bytes_of(&ev)))
}

#[test]
fn near_oom_when_the_kernel_reclaims_at_the_limit_without_growth() {
    let mut start = audited(false).start.clone();
    start.near_oom_horizon_ns = 60 * S;
    let mut e = Engine::new(start);
    let mut k = Fake::default();
    let container = format!("{POD_A}/{CID_A}");
    let limit = 128u64 << 20;
    let flat = |t: u64| {
        Input::Usage(near_oom::Samples {
            boot_ns: t,
            cgroups: vec![near_oom::Sample {
                id: 5,
                cgroup: container.clone(),
                usage_bytes: limit - (1 << 20),
                limit_bytes: limit,
                working_set_bytes: Some(limit - (2 << 20)),
                psi: Some(crate::node::node_memory::Psi {
                    some_avg10: 12.5,
                    full_avg10: 3.0,
                }),
            }],
        })
    };
    let findings = |out: &[Line]| -> Vec<Finding> {
        out.iter()
            .filter_map(|l| match l {
                Line::Finding(f) if f.finding == FindingKind::NearOom => Some(f.clone()),
                _ => None,
            })
            .collect()
    };
    // Flat at 98 %: no growth, no reclaim seen: nothing.
    let mut out = Vec::new();
    for i in 0..4 {
        out.extend(e.handle(flat(10 * S + i * S / 2), &mut k));
    }
    assert!(findings(&out).is_empty(), "{out:?}");
    // A reclaim record with this cgroup's counter far from its max
    // (reclaim at some other level) says nothing; one at its max does.
    out.extend(e.handle(pressure(12 * S, 32_000, 1 << 40), &mut k));
    out.extend(e.handle(flat(12 * S + S / 2), &mut k));
    assert!(findings(&out).is_empty(), "{out:?}");
    out.extend(e.handle(pressure(13 * S, 32_760, 32_768), &mut k));
    out.extend(e.handle(flat(13 * S + S / 2), &mut k));
    let found = findings(&out);
    assert_eq!(found.len(), 1, "{out:?}");
    let f = &found[0];
    assert_eq!(f.seconds_to_limit, None);
    assert_eq!(f.psi.map(|p| p.full_avg10), Some(3.0));
    assert!(f.summary.contains("already reclaiming"), "{}", f.summary);
    // Still at it: one per episode.
    out.extend(e.handle(pressure(14 * S, 32_760, 32_768), &mut k));
    out.extend(e.handle(flat(14 * S + S / 2), &mut k));
    assert_eq!(findings(&out).len(), 1);
}

#[test]
fn verdicts_that_keep_up_leave_missed_at_zero() {
    let mut e = audited(true);
    let mut k = Fake {
        oom_kill: BASE,
        ..Fake::default()
    };
    let mut out = ticks(&mut e, &mut k, 2, 3);
    // Kills counted before their records are read, one tick apart.
    for (i, pid) in (100..110).enumerate() {
        k.oom_kill += 1;
        out.extend(ticks(&mut e, &mut k, 4 + i as u64, 4 + i as u64));
        out.extend(e.handle(killed(pid, pid, (4 + i as u64) * S), &mut k));
    }
    out.extend(ticks(&mut e, &mut k, 15, 25));
    assert_eq!(verdicts(&out), 10);
    assert!(missed(&out).is_empty(), "{:?}", missed(&out));
    let beat = last_beat(&out);
    assert_eq!(beat.kernel_oom_kills, Some(10), "{beat:?}");
    assert_eq!((beat.oom_verdicts, beat.missed), (10, 0), "{beat:?}");
    // About once a second over 23 s of 50 ms ticks.
    assert!((20..=26).contains(&k.reads), "{} vmstat reads", k.reads);
}

#[test]
fn kills_without_a_verdict_are_missed_once_after_the_deadline() {
    let mut e = audited(true);
    let mut k = Fake {
        oom_kill: BASE,
        ..Fake::default()
    };
    let mut out = ticks(&mut e, &mut k, 2, 3);
    // Three kills; the ring buffer lost two of the records.
    k.oom_kill += 3;
    out.extend(e.handle(killed(100, 100, 3 * S + 1), &mut k));
    let early = ticks(&mut e, &mut k, 4, 6);
    assert!(missed(&early).is_empty(), "before the deadline: {early:?}");
    out.extend(early);
    out.extend(ticks(&mut e, &mut k, 7, 30));
    let m = missed(&out);
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!((m[0].count, m[0].total), (2, 2));
    assert_eq!((m[0].kernel_oom_kills, m[0].verdicts), (3, 1));
    let beat = last_beat(&out);
    assert_eq!(
        (beat.kernel_oom_kills, beat.oom_verdicts, beat.missed),
        (Some(3), 1, 2)
    );
    // Each line has its own time, of one width: found after the kills
    // happened, the beat later still.
    let width = "2026-01-01T00:00:00.000000000Z".len();
    for t in [&m[0].time, &m[0].since, &beat.time] {
        assert_eq!(t.len(), width, "{t}");
    }
    assert!(
        m[0].since < m[0].time && m[0].time <= beat.time,
        "{m:?} {beat:?}"
    );
}

/// An audited engine, past its first ticks, on a node whose container
/// has memory.oom.group set.
fn grouped_and_audited() -> (Engine, Fake, Vec<Line>) {
    let mut e = audited(true);
    let mut k = Fake {
        oom_kill: BASE,
        groups: HashSet::from([format!("{POD_A}/{CID_A}")]),
        ..Fake::default()
    };
    let out = ticks(&mut e, &mut k, 2, 3);
    (e, k, out)
}

#[test]
fn an_oom_group_kill_is_counted_right() {
    let (mut e, mut k, mut out) = grouped_and_audited();
    // One invocation kills the container's three processes; the kernel
    // counts the chosen one twice: 4.
    k.oom_kill += 4;
    for (i, pid) in [100, 101, 102].into_iter().enumerate() {
        out.extend(e.handle(killed(pid, 100, 3 * S + 1 + i as u64 * 1000), &mut k));
    }
    out.extend(ticks(&mut e, &mut k, 4, 20));
    let incidents: HashSet<String> = out
        .iter()
        .filter_map(|l| match l {
            Line::Verdict(v) => Some(v.incident.clone()),
            _ => None,
        })
        .collect();
    assert_eq!((verdicts(&out), incidents.len()), (3, 1));
    assert!(missed(&out).is_empty(), "{:?}", missed(&out));
    let beat = last_beat(&out);
    assert_eq!(
        (
            beat.kernel_oom_kills,
            beat.oom_verdicts,
            beat.oom_group_kills
        ),
        (Some(4), 3, 1)
    );
    // A second, separate incident in the same group that lost its record.
    k.oom_kill += 2;
    out.extend(ticks(&mut e, &mut k, 21, 30));
    let m = missed(&out);
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0].count, 2);
}

#[test]
fn kills_from_before_start_are_not_counted() {
    let mut e = audited(true);
    let mut k = Fake {
        oom_kill: BASE,
        ..Fake::default()
    };
    let past = crate::logs::kmsg::PastKill {
        seq: 7,
        ts_us: 500_000,
        kill: crate::logs::oom_report::OomKill::unread(true, 42, "old".into()),
        summary: None,
    };
    let mut out = e.handle(Input::PastKills(vec![past]), &mut k);
    assert_eq!(verdicts(&out), 1);
    // One live kill whose record was lost: the backlog's verdict does
    // not stand in for it.
    k.oom_kill += 1;
    out.extend(ticks(&mut e, &mut k, 2, 10));
    let m = missed(&out);
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!((m[0].count, m[0].verdicts), (1, 0));
    assert_eq!(last_beat(&out).oom_verdicts, 0);
}

/// A `Killed process` line of the container's, read live in kernel-log
/// mode (no victim hook); `group`: printed for a member of an oom.group kill.
fn logged_kill(seq: u64, pid: u32, group: bool) -> Input {
    Input::LoggedKill {
        seq,
        ts_us: 3_000_000 + seq,
        kill: crate::logs::oom_report::OomKill {
            oom_score_adj: Some(0),
            group: group.then(|| crate::logs::oom_report::OomGroup {
                cgroup: format!("{POD_A}/{CID_A}"),
                oom_memcg: Some(format!("{POD_A}/{CID_A}")),
            }),
            ..kill_line(pid, "worker")
        },
    }
}

#[test]
fn without_a_victim_hook_the_live_kernel_log_gives_the_verdict() {
    let mut e = audited(true);
    let mut k = Fake {
        oom_kill: BASE,
        ..Fake::default()
    };
    let mut out = ticks(&mut e, &mut k, 2, 3);
    k.oom_kill += 1;
    let report = MemcgReport {
        cgroup: format!("{POD_A}/{CID_A}"),
        usage_kb: Some(32768),
        limit_kb: Some(32768),
        stats: [("anon".to_owned(), 31 << 20)].into_iter().collect(),
    };
    // The summary first, as the kernel prints it: nothing yet.
    let first = e.handle(Input::Kmsg(summary_for(100, Some(report))), &mut k);
    assert_eq!(verdicts(&first), 0, "{first:?}");
    let kill = e.handle(logged_kill(9, 100, false), &mut k);
    let v = only_verdict(&kill).clone();
    assert_eq!(v.verdict, VerdictKind::PodLimit);
    assert_eq!(v.source, "kernel_log");
    assert_eq!(v.evidence.basis, Some("kernel_log"));
    let victim = v.victim.as_ref().expect("victim");
    assert_eq!((victim.pid, victim.comm.as_deref()), (100, Some("worker")));
    assert_eq!(victim.rss_bytes, Some((32_512 + 6_652) * 1024));
    // What the log does not say stays null: no namespaces, so no init.
    assert_eq!((victim.ns_pid, v.kubelet_reports), (None, None));
    let container = format!("{POD_A}/{CID_A}");
    assert_eq!(
        v.limit.as_ref().and_then(|l| l.cgroup.as_deref()),
        Some(container.as_str())
    );
    assert_eq!(
        v.limit.as_ref().map(|l| (l.usage_bytes, l.limit_bytes)),
        Some((Some(32 << 20), Some(32 << 20)))
    );
    assert!(v.container.is_some() && v.pod.is_some(), "{v:?}");
    let m = v.memory.as_ref().expect("the report's memory");
    assert_eq!(m.source, MemorySource::KernelOomReport);
    assert!(
        v.summary.starts_with("From the kernel log: "),
        "{}",
        v.summary
    );
    out.extend(first);
    out.extend(kill);
    // The kernel's count is accounted for: no `missed` line.
    out.extend(ticks(&mut e, &mut k, 4, 10));
    assert!(missed(&out).is_empty(), "{:?}", missed(&out));
    assert_eq!(last_beat(&out).oom_verdicts, 1);
}

#[test]
fn a_live_kill_line_without_its_report_names_the_pod_it_was_seen_in_not_the_limit() {
    let mut e = audited(true);
    let mut k = Fake {
        oom_kill: BASE,
        ..Fake::default()
    };
    let container = format!("{POD_A}/{CID_A}");
    ticks(&mut e, &mut k, 2, 3);
    // The process joined the container's cgroup (the cgroup hook saw it);
    // the kernel rate-limited its report: the kill line alone.
    e.handle(attach_in(0, 100, &container, 5, 3 * S), &mut k);
    let out = e.handle(logged_kill(9, 100, false), &mut k);
    let v = only_verdict(&out);
    assert_eq!(v.verdict, VerdictKind::CgroupLimit);
    assert_eq!(v.limit, None, "the log names no limit: {v:?}");
    assert_eq!(
        v.victim.as_ref().and_then(|x| x.cgroup.as_deref()),
        Some(container.as_str())
    );
    assert!(v.pod.is_some() && v.container.is_some(), "{v:?}");
    assert_eq!(v.memory, None);
    assert!(
        v.summary.contains(" in container ") && v.summary.contains("whose limit it was"),
        "{}",
        v.summary
    );
}

#[test]
fn a_live_log_line_the_backlog_judged_and_a_group_kills_repeat_are_one_verdict() {
    let (mut e, mut k, mut out) = grouped_and_audited();
    // Logged after the live reader started, before the backlog was read:
    // both hold it; the kernel counted it after the audit's base.
    k.oom_kill += 1;
    out.extend(e.handle(Input::Kmsg(summary_for(90, None)), &mut k));
    let Input::LoggedKill { kill, .. } = logged_kill(7, 90, false) else {
        unreachable!()
    };
    let past = crate::logs::kmsg::PastKill {
        seq: 7,
        ts_us: 3_000_007,
        kill,
        summary: Some(summary_for(90, None)),
    };
    out.extend(e.handle(Input::PastKills(vec![past]), &mut k));
    out.extend(e.handle(logged_kill(7, 90, false), &mut k));
    assert_eq!(verdicts(&out), 1, "{out:?}");
    // An oom.group kill: the chosen victim's line, then the group's lines,
    // the chosen one's again among them; the kernel counts it twice.
    k.oom_kill += 3;
    out.extend(e.handle(Input::Kmsg(summary_for(100, None)), &mut k));
    for (seq, pid, group) in [(10, 100, false), (11, 100, true), (12, 101, true)] {
        out.extend(e.handle(logged_kill(seq, pid, group), &mut k));
    }
    out.extend(ticks(&mut e, &mut k, 4, 10));
    let pids: Vec<u32> = all_verdicts(&out)
        .iter()
        .filter_map(|v| v.victim.as_ref().map(|x| x.pid))
        .collect();
    assert_eq!(pids, [90, 100, 101]);
    // The group took the whole container: Kubernetes shows it.
    assert!(all_verdicts(&out)[1..]
        .iter()
        .all(|v| v.kubelet_reports == Some(true)));
    assert!(missed(&out).is_empty(), "{:?}", missed(&out));
    let beat = last_beat(&out);
    assert_eq!(
        (
            beat.kernel_oom_kills,
            beat.oom_verdicts,
            beat.oom_group_kills
        ),
        (Some(4), 2, 1)
    );
}

#[test]
fn a_recording_without_the_base_reads_no_vmstat() {
    let mut e = audited(false);
    let mut k = Fake {
        oom_kill: BASE + 5,
        ..Fake::default()
    };
    let out = ticks(&mut e, &mut k, 2, 10);
    assert_eq!(k.reads, 0);
    assert!(missed(&out).is_empty());
    let beat = last_beat(&out);
    assert_eq!((beat.kernel_oom_kills, beat.missed), (None, 0));
}

/// A node under the kubelet's default hard threshold (100Mi) whose
/// pod (`shop/cache-1`, container cgroup 5) holds pid 10; `kubelet_log`:
/// whether the kubelet's log is read.
fn pressured(kubelet_log: bool) -> (Engine, Fake) {
    let e = Engine::new(Start {
        kubelet_log,
        heartbeat_ns: 0,
        ..audited(false).start
    });
    let k = Fake {
        ns: HashMap::from([(10, 99)]),
        node: Some(crate::node::observe::NodeAvailable {
            capacity_bytes: 8 << 30,
            mem_available_bytes: 60 << 20,
            memory_available_bytes: 50 << 20,
        }),
        populated: Some(true),
        pod: Some(("shop".into(), "cache-1".into())),
        ..Fake::default()
    };
    (e, k)
}

/// A userspace signal from `sender` at `at_ns` to pid 10, the pod's
/// container's init.
fn signalled(sig: u32, sender: &str, at_ns: u64) -> Input {
    signal_to(sig, (sender, 77), (10, 1), 0, at_ns)
}

/// A userspace signal from `sender` (comm, pid) at `at_ns` to `target`
/// (pid, its pid in the pod's pid namespace) in the pod's container;
/// `result` 1: the target ignored it.
fn signal_to(sig: u32, sender: (&str, u32), target: (u32, u32), result: i32, at_ns: u64) -> Input {
    let chain = [5, 4, 3, 2, 1].map(|id| (id, 100, 1 << 51));
    let target = kit::task(target.0, target.1, "sleep", &chain);
    let ev = kit::signal(sig, sender, target, result, at_ns);
    Input::Kernel(Bytes::from(bytes_of(&ev)))
}

fn stops(lines: &[Line]) -> Vec<&Stopped> {
    lines
        .iter()
        .filter_map(|l| match l {
            Line::Stopped(s) => Some(s),
            _ => None,
        })
        .collect()
}

/// Ticks every 50 ms from `from` to `to` ns, the lines they gave.
fn ticks_ns(e: &mut Engine, k: &mut Fake, from: u64, to: u64) -> Vec<Line> {
    (from / (S / 20)..=to / (S / 20))
        .flat_map(|t| e.handle(Input::Tick(t * (S / 20)), k))
        .collect()
}

/// The runtime's stop with the pod's 30 s (SIGTERM at 1 s, ignored,
/// SIGKILL at 31 s; or an exit at `exit_at_s`), then the sandbox: the
/// lines up to 40 s.
fn stop_with_30s_grace(e: &mut Engine, k: &mut Fake, exit_at_s: Option<u64>) -> Vec<Line> {
    let mut out = e.handle(signalled(15, "runc", S), k);
    // Ticks at 1 s while nothing waits but the long stop, as the daemon's.
    let mut t = S;
    while t < 31 * S {
        t += if e.waiting() { S / 20 } else { S };
        if exit_at_s.is_some_and(|x| t >= x * S) {
            // The kubelet stops the sandbox once the container ended.
            k.ns.remove(&10);
            k.populated = Some(false);
        }
        out.extend(e.handle(Input::Tick(t), k));
    }
    if exit_at_s.is_none() {
        out.extend(e.handle(signalled(9, "runc", 31 * S), k));
        k.ns.remove(&10);
    }
    k.populated = Some(false);
    out.extend(ticks_ns(e, k, 31 * S + S / 2, 40 * S));
    out
}

#[test]
fn a_long_grace_eviction_the_kubelets_log_names_is_an_eviction() {
    let (mut e, mut k) = pressured(true);
    k.evicted = Some(true);
    let out = stop_with_30s_grace(&mut e, &mut k, None);
    assert!(stops(&out).is_empty(), "{out:?}");
    let v = only_verdict(&out);
    assert_eq!(
        (v.verdict, v.kind),
        (VerdictKind::NodePressure, Some(PressureKind::Eviction))
    );
    assert_eq!(v.evidence.basis, Some("kubelet_log"));
    assert_eq!(v.evidence.grace_s, Some(30.0), "the grace it saw");
    assert_eq!(v.evidence.eviction_threshold, Some("hard"));
    assert!(v.summary.contains("kubernetes#115819"), "{}", v.summary);
    assert!(!e.waiting());
}

#[test]
fn a_long_grace_exit_the_kubelets_log_names_is_an_eviction() {
    let (mut e, mut k) = pressured(true);
    k.evicted = Some(true);
    let out = stop_with_30s_grace(&mut e, &mut k, Some(12));
    let v = only_verdict(&out);
    assert_eq!(v.evidence.basis, Some("kubelet_log"));
    assert_eq!(v.evidence.grace_s, None, "its exit is not seen");
}

#[test]
fn a_long_grace_stop_without_the_kubelets_word_fits_both() {
    // The kubelet's log not read: said at once when the pod is empty.
    let (mut e, mut k) = pressured(false);
    let out = stop_with_30s_grace(&mut e, &mut k, None);
    assert_eq!(verdicts(&out), 0, "{out:?}");
    let s = stops(&out);
    assert_eq!(s.len(), 1, "{out:?}");
    assert_eq!(s[0].reason, StopReason::EvictionOrDeletion);
    assert_eq!(s[0].signal.name, "SIGTERM", "the stop's first signal");
    assert!(
        s[0].summary.contains("kubernetes#115819")
            && s[0].summary.contains("--kubelet-log")
            && !s[0].summary.contains("not an eviction"),
        "{}",
        s[0].summary
    );
    assert_eq!(k.log_reads, 0);
    // Read, and no line for the pod within the wait.
    let (mut e, mut k) = pressured(true);
    k.evicted = Some(false);
    let out = stop_with_30s_grace(&mut e, &mut k, None);
    assert_eq!(verdicts(&out), 0, "{out:?}");
    let s = stops(&out);
    assert_eq!(s.len(), 1, "{out:?}");
    assert_eq!(s[0].reason, StopReason::EvictionOrDeletion);
    assert!(
        s[0].summary
            .contains("named no eviction of the pod within 5 s"),
        "{}",
        s[0].summary
    );
    assert!(k.log_reads > 1, "waited for the line");
    // Unreadable when asked (a journal that failed): where to look.
    let (mut e, mut k) = pressured(true);
    let out = stop_with_30s_grace(&mut e, &mut k, None);
    assert!(stops(&out)[0].summary.contains("--kubelet-log"), "{out:?}");
}

#[test]
fn a_long_stop_is_polled_once_a_second_without_fast_ticks() {
    let (mut e, mut k) = pressured(false);
    e.handle(signalled(15, "runc", S), &mut k);
    assert!(e.waiting(), "a hard eviction's grace is watched closely");
    ticks_ns(&mut e, &mut k, S, 5 * S + S / 20);
    assert!(!e.waiting(), "past it, the stop is followed slowly");
    let before = k.ns_reads;
    let out = ticks_ns(&mut e, &mut k, 5 * S + S / 10, 21 * S);
    assert!(out.is_empty(), "{out:?}");
    let polls = k.ns_reads - before;
    assert!((15..=17).contains(&polls), "{polls} reads in 16 s");
}

#[test]
fn a_long_stop_of_one_container_is_not_an_eviction() {
    let (mut e, mut k) = pressured(true);
    k.evicted = Some(false);
    let mut out = e.handle(signalled(15, "runc", S), &mut k);
    out.extend(ticks_ns(&mut e, &mut k, S, 31 * S));
    out.extend(e.handle(signalled(9, "runc", 31 * S), &mut k));
    k.ns.remove(&10);
    // The rest of the pod runs on.
    out.extend(ticks_ns(&mut e, &mut k, 31 * S, 45 * S));
    let s = stops(&out);
    assert_eq!(s.len(), 1, "{out:?}");
    assert_eq!(s[0].reason, StopReason::PodNotStopped);
    assert_eq!(verdicts(&out), 0);
}

#[test]
fn a_recording_from_before_long_stops_were_followed_replays_the_old_rule() {
    let (e, mut k) = pressured(true);
    let mut e = Engine::new(Start {
        follow_long_stops: false,
        runtime_slack_ns: crate::node::kubelet::RUNTIME_SLACK_NS,
        ..e.start
    });
    let mut out = e.handle(signalled(15, "runc", S), &mut k);
    out.extend(ticks_ns(&mut e, &mut k, S, 5 * S));
    let s = stops(&out);
    assert_eq!(s.len(), 1, "{out:?}");
    assert_eq!(s[0].reason, StopReason::GraceLongerThanHardEviction);
    assert!(!e.waiting());
}

/// A cgroup event (mkdir/rmdir) for `path` with kernfs id `id`, in
/// hierarchy `root` (0: v2).
fn cgroup_event(kind: Kind, root: u32, id: u64, path: &str, boot_ns: u64) -> Input {
    let mut ev = oomtrace_common::CgroupEvent {
        header: kit::header(kind, boot_ns),
        root,
        level: path.matches('/').count() as u32,
        id,
        path_len: path.len() as u32,
        _pad: 0,
        path: [0; PATH_LEN],
    };
    ev.path[..path.len()].copy_from_slice(path.as_bytes());
    Input::Kernel(Bytes::from(bytes_of(&ev)))
}

fn misreports(lines: &[Line]) -> Vec<&Finding> {
    lines
        .iter()
        .filter_map(|r| match r {
            Line::Finding(f) if f.finding == FindingKind::OomkilledMisreport => Some(f),
            _ => None,
        })
        .collect()
}

/// A systemd as the container's init (seed 001): `init.scope` and a unit
/// per service below the container's cgroup (5). A unit's process killed at
/// the pod's limit is the container's `pod_limit`; the unit's end is not
/// the container's; the container's own cgroup going is.
#[test]
fn a_unit_of_a_systemd_in_the_container_is_the_containers() {
    let own = format!("{POD_A}/{CID_A}");
    let unit = format!("{own}/system.slice/hog.service");
    let mut e = audited(false);
    let mut k = Fake::default();
    for (id, path) in [
        (6, format!("{own}/init.scope")),
        (7, format!("{own}/system.slice")),
        (8, unit.clone()),
    ] {
        e.handle(cgroup_event(Kind::CgroupMkdir, 0, id, &path, S / 2), &mut k);
    }
    // The pod (4) is at its limit; the unit and the container have none.
    let out = {
        let mut out = e.handle(
            killed_in(
                812,
                812,
                S,
                &[
                    (8, 1 << 51),
                    (7, 1 << 51),
                    (5, 1 << 51),
                    (4, 4096),
                    (3, 1 << 51),
                    (2, 1 << 51),
                    (1, 1 << 51),
                ],
            ),
            &mut k,
        );
        out.extend(ticks(&mut e, &mut k, 1, 3));
        out
    };
    let v = only_verdict(&out);
    assert_eq!(v.verdict, VerdictKind::PodLimit);
    assert_eq!(v.container.as_ref().map(|c| c.id.as_str()), Some(CID_A));
    assert_eq!(
        v.limit.as_ref().and_then(|l| l.cgroup.as_deref()),
        Some(POD_A),
        "the lowest limit on the path holds"
    );
    assert_eq!(
        v.victim.as_ref().and_then(|p| p.cgroup.as_deref()),
        Some(unit.as_str())
    );
    assert_eq!(v.kubelet_reports, Some(false), "not the container's init");

    // The unit's shell exits: systemd removes the unit's cgroup, then its
    // slice; the container runs on.
    for (id, path) in [(8, unit.clone()), (7, format!("{own}/system.slice"))] {
        let out = e.handle(cgroup_event(Kind::CgroupRmdir, 0, id, &path, 4 * S), &mut k);
        assert!(misreports(&out).is_empty(), "{path}: {out:?}");
    }
    let out = e.handle(
        cgroup_event(Kind::CgroupRmdir, 0, 6, &format!("{own}/init.scope"), 5 * S),
        &mut k,
    );
    assert!(misreports(&out).is_empty(), "{out:?}");
    // The container's own cgroup goes: its init has ended.
    let out = e.handle(cgroup_event(Kind::CgroupRmdir, 0, 5, &own, 6 * S), &mut k);
    let f = misreports(&out);
    assert_eq!(f.len(), 1, "{out:?}");
    assert_eq!(f[0].cgroup, own);
    assert_eq!(f[0].container.as_ref().map(|c| c.id.as_str()), Some(CID_A));
}

/// The container's systemd moves processes into its units: a process of
/// the container's pid namespace is tied to the container's own cgroup,
/// so it still names the container once that unit is gone.
#[test]
fn a_units_process_escaping_names_the_containers_own_cgroup() {
    let own = format!("{POD_A}/{CID_A}");
    let unit = format!("{own}/system.slice/demo.service");
    let mut engine = Engine::new(Start {
        cgroups: vec![(30, own.clone()), (31, unit.clone())],
        ..start_in_host_ns()
    });
    let mut obs = namespaced(
        HashMap::from([(10, 77), (20, 77), (21, 77)]),
        HashMap::new(),
    );
    engine.handle(attach(10, &format!("{own}/init.scope"), 1), &mut obs);
    engine.handle(attach_to(20, &unit, 31, 2), &mut obs);
    engine.handle(cgroup_event(Kind::CgroupRmdir, 4, 31, &unit, 3), &mut obs);
    let out = engine.handle(attach(21, "/system.slice/cron.service", 4), &mut obs);
    let found = escapes(&out);
    assert_eq!(found.len(), 1, "{out:?}");
    assert_eq!(found[0].pod_cgroup.as_deref(), Some(own.as_str()));
    assert_eq!(
        found[0].container.as_ref().map(|c| c.id.as_str()),
        Some(CID_A)
    );
}

/// The kill of a process in `{container}/system.slice/hog.service` at the
/// pod's limit, with memory.oom.group set on `groups`.
fn unit_kill_with_groups(groups: &[String]) -> Verdict {
    let own = format!("{POD_A}/{CID_A}");
    let mut e = audited(false);
    let mut k = Fake {
        groups: groups.iter().cloned().collect(),
        ..Fake::default()
    };
    for (id, path) in [
        (7, format!("{own}/system.slice")),
        (8, format!("{own}/system.slice/hog.service")),
    ] {
        e.handle(cgroup_event(Kind::CgroupMkdir, 0, id, &path, S / 2), &mut k);
    }
    let chain = [
        (8, 1 << 51),
        (7, 1 << 51),
        (5, 1 << 51),
        (4, 4096),
        (3, 1 << 51),
        (2, 1 << 51),
        (1, 1 << 51),
    ];
    let mut out = e.handle(killed_in(812, 812, S, &chain), &mut k);
    out.extend(ticks(&mut e, &mut k, 1, 3));
    only_verdict(&out).clone()
}

/// systemd sets memory.oom.group on a unit with `OOMPolicy=kill`: the
/// kernel then kills that unit's processes, not the container's init.
#[test]
fn an_oom_group_below_the_container_does_not_take_its_init() {
    let own = format!("{POD_A}/{CID_A}");
    let unit = format!("{own}/system.slice/hog.service");
    assert_eq!(unit_kill_with_groups(&[]).kubelet_reports, Some(false));
    assert_eq!(
        unit_kill_with_groups(std::slice::from_ref(&unit)).kubelet_reports,
        Some(false),
        "the unit's group, not the container"
    );
    assert_eq!(
        unit_kill_with_groups(std::slice::from_ref(&own)).kubelet_reports,
        Some(true),
        "the container's own group takes its init"
    );
    assert_eq!(
        unit_kill_with_groups(&[unit, POD_A.to_string()]).kubelet_reports,
        Some(true),
        "the pod's group takes every container"
    );
}

/// Empty cgroups below a container's (a systemd's units between runs) are
/// the container's, never pod cgroups left behind: only the pod's own
/// cgroup can be a leak.
#[test]
fn empty_cgroups_below_a_container_are_no_leaks() {
    let own = format!("{POD_A}/{CID_A}");
    let mut e = Engine::new(Start {
        cgroups: vec![
            (4, POD_A.into()),
            (5, own.clone()),
            (6, format!("{own}/init.scope")),
            (7, format!("{own}/system.slice")),
            (8, format!("{own}/system.slice/hog.service")),
        ],
        leak_grace_ns: S,
        ..start_in_host_ns()
    });
    let mut k = Fake {
        populated: Some(false),
        ..Fake::default()
    };
    let out = ticks(&mut e, &mut k, 1, 5);
    let leaks: Vec<&str> = out
        .iter()
        .filter_map(|l| match l {
            Line::Finding(f) if f.finding == FindingKind::CgroupLeak => Some(f.cgroup.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(leaks, vec![POD_A]);
}

// Userspace OOM killers, from the shape of their kills as the signal hook
// records them: earlyoom's SIGTERM to a container's init (ignored: no
// handler) and its SIGKILL once memory falls under its kill threshold;
// nohang's SIGTERM that a worker dies of; systemd-oomd's SIGKILL to every
// process of a cgroup.

/// A node under memory pressure (PSI read, a breakdown) holding the pod
/// `shop/cache-1`: pid 10 its container's init, 11 and 12 its workers.
fn under_a_killer(killers: Option<Vec<String>>) -> (Engine, Fake) {
    let (e, mut k) = pressured(false);
    let e = Engine::new(Start {
        userspace_killers: killers,
        limits: Vec::new(),
        limits_ns: 0,
        ..e.start
    });
    k.ns.extend([(11, 99), (12, 99)]);
    k.dying = VecDeque::from([0]);
    k.exe = Some("/usr/bin/earlyoom".into());
    k.psi = Some(crate::node::node_memory::Psi {
        some_avg10: 12.5,
        full_avg10: 4.25,
    });
    (e, k)
}

fn all_verdicts(lines: &[Line]) -> Vec<&Verdict> {
    lines
        .iter()
        .filter_map(|l| match l {
            Line::Verdict(v) => Some(&**v),
            _ => None,
        })
        .collect()
}

#[test]
fn earlyooms_sigterm_then_sigkill_of_a_containers_init_is_one_verdict() {
    let (mut e, mut k) = under_a_killer(Some(Vec::new()));
    // The init has no SIGTERM handler: the kernel drops it (result 1).
    let mut out = e.handle(signal_to(15, ("earlyoom", 300), (10, 1), 1, S), &mut k);
    assert!(out.is_empty(), "a SIGTERM waits for the end: {out:?}");
    assert!(e.waiting());
    out.extend(ticks_ns(&mut e, &mut k, S, 2 * S));
    assert!(out.is_empty(), "still running: {out:?}");
    out.extend(e.handle(
        signal_to(9, ("earlyoom", 300), (10, 1), 0, 2 * S + S / 4),
        &mut k,
    ));
    k.ns.remove(&10);
    out.extend(ticks_ns(&mut e, &mut k, 2 * S, 40 * S));
    assert!(stops(&out).is_empty(), "{out:?}");
    let v = only_verdict(&out);
    assert_eq!(
        (v.verdict, v.kind),
        (
            VerdictKind::NodePressure,
            Some(PressureKind::UserspaceOomKiller)
        )
    );
    let killer = v.killer.as_ref().expect("the killer");
    assert_eq!(
        (killer.pid, killer.comm.as_deref()),
        (300, Some("earlyoom"))
    );
    assert_eq!(killer.exe.as_deref(), Some("/usr/bin/earlyoom"));
    assert_eq!(
        (killer.known_as.as_str(), killer.matched_by),
        ("earlyoom", "comm")
    );
    let signals: Vec<_> = killer
        .signals
        .iter()
        .map(|s| (s.name, s.after_s, s.ignored))
        .collect();
    assert_eq!(signals, [("SIGTERM", 0.0, true), ("SIGKILL", 1.25, false)]);
    assert_eq!(
        v.victim.as_ref().map(|x| (x.pid, x.ns_pid)),
        Some((10, Some(1)))
    );
    assert_eq!(
        v.pod.as_ref().and_then(|p| p.name.as_deref()),
        Some("cache-1")
    );
    assert_eq!(v.kubelet_reports, Some(false), "never OOMKilled");
    assert_eq!(v.evidence.basis, Some("userspace_killer_identity"));
    let n = v
        .node_memory
        .as_ref()
        .expect("the node's memory at the SIGTERM");
    assert_eq!(n.mem_available_bytes, 60 << 20);
    assert!(n.breakdown.is_some());
    assert_eq!(n.psi.map(|p| p.full_avg10), Some(4.25));
    for part in [
        "earlyoom (pid 300)",
        "SIGTERM (ignored",
        "then SIGKILL 1.2 s later",
        "MemAvailable was 60Mi of 8Gi (memory PSI avg10: some 12.50 %, full 4.25 %).",
        "Error with exit code 137, not OOMKilled",
        "inferred from the sender's identity",
    ] {
        assert!(v.summary.contains(part), "{part:?} not in {}", v.summary);
    }
    assert!(!e.waiting());
}

#[test]
fn nohangs_sigterm_a_worker_dies_of_is_a_verdict_once_it_is_gone() {
    let (mut e, mut k) = under_a_killer(Some(Vec::new()));
    // nohang is a Python script: its comm is its name, its exe python's.
    k.exe = Some("/usr/bin/python3.11".into());
    let mut out = e.handle(signal_to(15, ("nohang", 400), (11, 7), 0, S), &mut k);
    out.extend(ticks_ns(&mut e, &mut k, S, S + S / 10));
    assert!(out.is_empty(), "{out:?}");
    k.ns.remove(&11);
    out.extend(ticks_ns(&mut e, &mut k, S + S / 10, 3 * S));
    let v = only_verdict(&out);
    assert_eq!(v.kind, Some(PressureKind::UserspaceOomKiller));
    let killer = v.killer.as_ref().expect("the killer");
    assert_eq!(killer.known_as, "nohang");
    assert_eq!(killer.signals.len(), 1);
    assert_eq!(
        v.evidence.basis,
        Some("userspace_killer_identity_then_exit")
    );
    assert_eq!(v.kubelet_reports, Some(false));
    assert!(v.summary.contains("init survived"), "{}", v.summary);
    assert!(v.summary.contains("inferred, not seen"), "{}", v.summary);
    assert!(!e.waiting());
}

#[test]
fn a_process_that_outlives_a_killers_sigterm_is_a_stop_not_a_kill() {
    let (mut e, mut k) = under_a_killer(Some(Vec::new()));
    let mut out = e.handle(signal_to(15, ("earlyoom", 300), (11, 7), 0, S), &mut k);
    out.extend(ticks_ns(&mut e, &mut k, S, 40 * S));
    assert_eq!(verdicts(&out), 0, "{out:?}");
    let s = stops(&out);
    assert_eq!(s.len(), 1, "{out:?}");
    assert_eq!(s[0].reason, StopReason::SurvivedUserspaceOomKiller);
    assert!(s[0].summary.contains("not killed"), "{}", s[0].summary);
    assert!(!e.waiting());
}

/// systemd-oomd (systemd-oomd.service(8)) kills the cgroup it chose, every
/// process in it, with SIGKILL: one incident for all of them, and the next
/// kill seconds later is another.
#[test]
fn systemd_oomds_kill_of_a_cgroup_is_one_incident() {
    let (mut e, mut k) = under_a_killer(Some(Vec::new()));
    k.exe = Some("/usr/lib/systemd/systemd-oomd".into());
    let mut out = Vec::new();
    for (i, (pid, ns_pid)) in [(10, 1), (11, 7), (12, 8)].into_iter().enumerate() {
        let at = S + i as u64 * 300_000;
        out.extend(e.handle(
            signal_to(9, ("systemd-oomd", 500), (pid, ns_pid), 0, at),
            &mut k,
        ));
    }
    let v = all_verdicts(&out);
    assert_eq!(v.len(), 3, "one verdict per process: {out:?}");
    assert!(v.iter().all(|x| x.incident == v[0].incident), "{out:?}");
    assert!(v
        .iter()
        .all(|v| v.kind == Some(PressureKind::UserspaceOomKiller)));
    assert!(
        v.iter()
            .all(|v| v.killer.as_ref().is_some_and(|k| k.signals.len() == 1)),
        "SIGKILL alone: {out:?}"
    );
    assert!(v[0].summary.contains("exit code 137"), "{}", v[0].summary);
    let later = e.handle(
        signal_to(9, ("systemd-oomd", 500), (13, 9), 0, 20 * S),
        &mut k,
    );
    let later = only_verdict(&later);
    assert_ne!(
        later.incident, v[0].incident,
        "a later kill is another incident"
    );
    assert!(!e.waiting());
}

/// earlyoom kills one process at a time: two kills a moment apart are two
/// incidents.
#[test]
fn earlyooms_kills_are_one_incident_each() {
    let (mut e, mut k) = under_a_killer(Some(Vec::new()));
    let mut out = e.handle(signal_to(9, ("earlyoom", 300), (11, 7), 0, S), &mut k);
    out.extend(e.handle(
        signal_to(9, ("earlyoom", 300), (12, 8), 0, S + S / 10),
        &mut k,
    ));
    let v = all_verdicts(&out);
    assert_eq!(v.len(), 2, "{out:?}");
    assert_ne!(v[0].incident, v[1].incident);
}

#[test]
fn a_host_process_killed_by_a_killer_is_node_pressure_with_no_pod() {
    let (mut e, mut k) = under_a_killer(Some(Vec::new()));
    let mut ev = signal_to(9, ("earlyoom", 300), (40, 40), 0, S);
    // A host process: in no memory cgroup the tree knows, the host's pid
    // namespace.
    if let Input::Kernel(b) = &ev {
        let Ok(Event::Signal(mut raw)) = event::decode(b) else {
            panic!("a signal record");
        };
        raw.target.memcg_depth = 0;
        raw.target.pid_ns = HOST_NS;
        ev = Input::Kernel(Bytes::from(bytes_of(&raw)));
    }
    let out = e.handle(ev, &mut k);
    let v = only_verdict(&out);
    assert_eq!(
        (v.verdict, v.kind),
        (
            VerdictKind::NodePressure,
            Some(PressureKind::UserspaceOomKiller)
        )
    );
    assert_eq!((v.pod.as_ref(), v.container.as_ref()), (None, None));
    assert_eq!(v.kubelet_reports, None);
    assert!(v.summary.contains("on the host (no pod)"), "{}", v.summary);
}

#[test]
fn killers_are_known_by_comm_by_exe_and_by_the_flag() {
    // Any other sender is a stop, as before.
    let (mut e, mut k) = under_a_killer(Some(Vec::new()));
    k.exe = Some("/usr/bin/bash".into());
    let out = e.handle(signal_to(15, ("bash", 301), (11, 7), 0, S), &mut k);
    assert_eq!(stops(&out)[0].reason, StopReason::SenderNotRuntime);
    // A killer named with --userspace-killers, by its executable.
    let (mut e, mut k) = under_a_killer(Some(vec!["oom-guard".into()]));
    k.exe = Some("/opt/guard/oom-guard".into());
    let out = e.handle(signal_to(9, ("guard-worker", 302), (11, 7), 0, S), &mut k);
    let v = only_verdict(&out);
    let killer = v.killer.as_ref().expect("the killer");
    assert_eq!(
        (killer.known_as.as_str(), killer.matched_by),
        ("oom-guard", "exe")
    );
    assert!(v.summary.contains("/opt/guard/oom-guard"), "{}", v.summary);
    // A recording made before killers were judged: the old stop, no read.
    let (mut e, mut k) = under_a_killer(None);
    let out = e.handle(signal_to(9, ("earlyoom", 300), (11, 7), 0, S), &mut k);
    assert_eq!(verdicts(&out), 0, "{out:?}");
    assert_eq!(stops(&out)[0].reason, StopReason::SenderNotRuntime);
}

/// The sampler read the container's limit at 200 MiB until 12 s; the kill
/// at 12.2 s is at 16 MiB (4096 pages, the victim hook's page counter):
/// the verdict says the limit had been lowered at most 0.2 s before. With
/// the same limit sampled before, it says nothing.
#[test]
fn a_kill_after_a_lowered_limit_says_so_and_only_then() {
    let judge = |sampled_limit: u64| {
        let mut start = audited(false).start.clone();
        start.near_oom_horizon_ns = 60 * S;
        let mut e = Engine::new(start);
        let mut k = Fake::default();
        let container = format!("{POD_A}/{CID_A}");
        for i in 0..5u64 {
            e.handle(
                Input::Usage(near_oom::Samples {
                    boot_ns: 10 * S + i * S / 2,
                    cgroups: vec![near_oom::Sample {
                        id: 5,
                        cgroup: container.clone(),
                        usage_bytes: 15 << 20,
                        limit_bytes: sampled_limit,
                        working_set_bytes: Some(15 << 20),
                        psi: None,
                    }],
                }),
                &mut k,
            );
        }
        let mut out = e.handle(killed(100, 100, 12 * S + S / 5), &mut k);
        out.extend(e.handle(Input::Tick(14 * S), &mut k));
        out.into_iter()
            .find_map(|l| match l {
                Line::Verdict(v) => Some(v),
                _ => None,
            })
            .expect("the kill's verdict")
    };
    let v = judge(200 << 20);
    assert_eq!(v.limit.as_ref().and_then(|l| l.limit_bytes), Some(16 << 20));
    assert_eq!(
        v.evidence.limit_lowered,
        Some(LimitLowered {
            from_bytes: 200 << 20,
            to_bytes: 16 << 20,
            s_before: 0.2,
            basis: LimitBasis::Sampler,
        }),
        "{v:?}"
    );
    assert!(
        v.summary.contains(
            "Its limit had been lowered from 200Mi to 16Mi at most 0.2 s before the kill"
        ),
        "{}",
        v.summary
    );
    let json = serde_json::to_value(&*v).expect("a verdict serializes");
    assert_eq!(
        json["evidence"]["limit_lowered"],
        serde_json::json!({"from_bytes": 200u64 << 20, "to_bytes": 16u64 << 20, "s_before": 0.2, "basis": "sampler"})
    );

    let v = judge(16 << 20);
    assert_eq!(v.evidence.limit_lowered, None, "{v:?}");
    assert!(!v.summary.contains("lowered"), "{}", v.summary);
    let json = serde_json::to_value(&*v).expect("a verdict serializes");
    assert!(json["evidence"].get("limit_lowered").is_none(), "{json}");
}

/// A reclaim record of the container at its old limit (512 MiB) is a
/// reading too: the kill at 16 MiB 1.5 s later was after a lowering.
#[test]
fn a_reclaim_record_reads_the_limit_before_a_lowering() {
    let mut e = Engine::new(audited(false).start);
    let mut k = Fake::default();
    e.handle(pressure(10 * S, 100_000, 131_072), &mut k);
    let mut out = e.handle(killed(100, 100, 11 * S + S / 2), &mut k);
    out.extend(e.handle(Input::Tick(13 * S), &mut k));
    let v = only_verdict(&out);
    let l = v.evidence.limit_lowered.expect("a lowering");
    assert_eq!((l.from_bytes, l.to_bytes), (512 << 20, 16 << 20));
    assert_eq!(l.s_before, 1.5);
    assert_eq!(l.basis, LimitBasis::Pressure);
}

/// `oom:mark_victim` as kernels before 6.9 emit it to the classic
/// tracepoint: the victim's pid and nothing else (the trigger is read as
/// ever).
fn killed_pid_only(pid: u32, trigger: u32, boot_ns: u64) -> Input {
    use oomtrace_common::{valid, VictimEvent, VictimSource};
    let Input::Kernel(full) = killed(pid, trigger, boot_ns) else {
        unreachable!("killed gives a kernel record")
    };
    let mut ev: VictimEvent = bytemuck::pod_read_unaligned(&full);
    ev.victim.comm = [0; 16];
    ev.victim.valid = valid::TASK_PID;
    ev.victim.memcg_depth = 0;
    ev.victim.memcg_valid = 0;
    ev.valid = 0;
    ev.source = VictimSource::Tracepoint as u32;
    Input::Kernel(Bytes::from(bytes_of(&ev)))
}

/// A pid-only victim record: its command is the kernel's report's, its
/// cgroup the report's task_memcg, and what neither says (rss,
/// oom_score_adj, namespaces) stays null.
#[test]
fn a_pid_only_victim_is_named_by_the_kernels_report() {
    let (mut e, mut k) = two_seconds_in();
    let out = e.handle(killed_pid_only(100, 100, 2 * S), &mut k);
    assert!(
        out.is_empty() && e.waiting(),
        "waits for the report: {out:?}"
    );
    let mut summary = summary_for(100, None);
    summary.task = "python3".into();
    // The report's summary line: the kill line, printed after it, is
    // still to come.
    let out = e.handle(Input::Kmsg(summary), &mut k);
    assert!(
        out.is_empty() && e.waiting(),
        "waits for the kill line: {out:?}"
    );
    let out = e.handle(Input::KmsgKilled(kill_line(100, "python3")), &mut k);
    let v = only_verdict(&out);
    let victim = v.victim.as_ref().expect("a victim");
    assert_eq!(victim.comm.as_deref(), Some("python3"));
    assert_eq!(victim.cgroup.as_deref(), Some(&*format!("{POD_A}/{CID_A}")));
    // The kill line's numbers, in bytes; no namespace (no line names one).
    assert_eq!(victim.anon_rss_bytes, Some(32512 << 10));
    assert_eq!(victim.rss_bytes, Some((32512 + 6652) << 10));
    assert_eq!(victim.total_vm_bytes, Some(278712 << 10));
    assert_eq!(victim.oom_score_adj, Some(-997));
    assert_eq!(victim.ns_pid, None);
    assert_eq!(v.evidence.victim_hook, "tracepoint");
    assert_eq!(v.evidence.pid_ns, None);
    assert!(v.summary.contains("python3 (pid 100, rss"), "{}", v.summary);

    // The report rate-limited away: the kill line alone names it.
    let out = e.handle(killed_pid_only(101, 101, 3 * S), &mut k);
    assert!(out.is_empty());
    let out = e.handle(Input::KmsgKilled(kill_line(101, "worker2")), &mut k);
    let v = only_verdict(&out);
    assert_eq!(
        v.victim.as_ref().and_then(|x| x.comm.as_deref()),
        Some("worker2")
    );

    // Neither line came (the reader fell behind): judged at the deadline,
    // and no name is made up.
    let out = e.handle(killed_pid_only(102, 102, 4 * S), &mut k);
    assert!(out.is_empty());
    let out = ticks(&mut e, &mut k, 4, 6);
    let v = only_verdict(&out);
    let victim = v.victim.as_ref().expect("a victim");
    assert_eq!((victim.comm.as_deref(), victim.rss_bytes), (None, None));
    assert!(v.summary.contains("a process (pid 102)"), "{}", v.summary);
    // Null in the JSON a user reads, not an empty name.
    let json = serde_json::to_value(v).expect("a verdict serializes");
    assert_eq!(json["victim"]["comm"], serde_json::Value::Null, "{json}");
    assert_eq!(json["victim"]["pid"], 102);
}

/// `Killed process <pid> (<comm>) total-vm:278712kB, anon-rss:32512kB,
/// file-rss:6652kB, shmem-rss:0kB, UID:0 pgtables:120kB oom_score_adj:-997`.
fn kill_line(pid: u32, comm: &str) -> crate::logs::oom_report::OomKill {
    crate::logs::oom_report::OomKill {
        total_vm_kb: Some(278712),
        anon_rss_kb: Some(32512),
        file_rss_kb: Some(6652),
        shmem_rss_kb: Some(0),
        oom_score_adj: Some(-997),
        ..crate::logs::oom_report::OomKill::unread(true, pid, comm.into())
    }
}

/// fentry and kprobe on `mark_oom_victim` read the same task as tp_btf and
/// say which hook saw it.
#[test]
fn a_victim_from_mark_oom_victim_names_its_hook() {
    use oomtrace_common::{VictimEvent, VictimSource};
    for (source, name) in [
        (VictimSource::Fentry, "fentry"),
        (VictimSource::Kprobe, "kprobe"),
    ] {
        let mut e = audited(false);
        let mut k = Fake::default();
        ticks(&mut e, &mut k, 1, 2);
        let Input::Kernel(full) = killed(100, 100, 2 * S) else {
            unreachable!("killed gives a kernel record")
        };
        let mut ev: VictimEvent = bytemuck::pod_read_unaligned(&full);
        ev.source = source as u32;
        assert!(e
            .handle(Input::Kernel(Bytes::from(bytes_of(&ev))), &mut k)
            .is_empty());
        let out = e.handle(Input::KmsgKill(100), &mut k);
        let v = only_verdict(&out);
        assert_eq!(v.evidence.victim_hook, name);
        assert_eq!(
            v.victim.as_ref().and_then(|x| x.comm.as_deref()),
            Some("worker")
        );
        assert_eq!(v.evidence.pid_ns, Some(99));
    }
}
/// The `limit` hook's record of a write of cgroup `id`'s limit at `boot_ns`:
/// `old_pages` before it, `text` written.
fn limit_write(boot_ns: u64, id: u64, old_pages: u64, text: &str) -> Input {
    use bytemuck::Zeroable;
    use oomtrace_common::{valid, LimitWriteEvent};
    let mut ev = LimitWriteEvent::zeroed();
    ev.header = kit::header(Kind::LimitWrite, boot_ns);
    ev.memcg_id = id;
    ev.old_max_pages = old_pages;
    ev.text[..text.len()].copy_from_slice(text.as_bytes());
    ev.text_len = text.len() as u32;
    ev.valid = valid::LIMIT_ALL;
    Input::Kernel(Bytes::from(bytes_of(&ev)))
}

/// The write seen by the `limit` hook: the container's limit written from
/// 512 MiB down to 16 MiB 0.4 s before the kill. The time is exact, and
/// the sentence says so (no "at most").
#[test]
fn a_seen_limit_write_says_exactly_when() {
    let mut e = Engine::new(audited(false).start);
    let mut k = Fake::default();
    // A reclaim record at the old limit first: the write's reading wins.
    e.handle(pressure(10 * S, 100_000, 131_072), &mut k);
    e.handle(limit_write(11 * S, 5, 131_072, "16M\n"), &mut k);
    let mut out = e.handle(killed(100, 100, 11 * S + 2 * S / 5), &mut k);
    out.extend(e.handle(Input::Tick(13 * S), &mut k));
    let v = only_verdict(&out);
    assert_eq!(
        v.evidence.limit_lowered,
        Some(LimitLowered {
            from_bytes: 512 << 20,
            to_bytes: 16 << 20,
            s_before: 0.4,
            basis: LimitBasis::WriteHook,
        }),
        "{v:?}"
    );
    assert!(
        v.summary.contains(
            "Its limit had been lowered from 512Mi to 16Mi 0.4 s before the kill (the write was seen in the kernel): the lowering, not only the workload's growth, brought the kill."
        ),
        "{}",
        v.summary
    );
    assert!(!v.summary.contains("at most"), "{}", v.summary);
    let json = serde_json::to_value(v).expect("a verdict serializes");
    assert_eq!(
        json["evidence"]["limit_lowered"],
        serde_json::json!({"from_bytes": 512u64 << 20, "to_bytes": 16u64 << 20, "s_before": 0.4, "basis": "write_hook"})
    );
}

/// A write the kernel refuses (`16Mi`: the old limit stays) and a kill
/// at a lower limit after it: lowered after the write, a bound.
#[test]
fn a_refused_limit_write_is_only_a_reading() {
    let mut e = Engine::new(audited(false).start);
    let mut k = Fake::default();
    e.handle(limit_write(11 * S, 5, 131_072, "16Mi"), &mut k);
    let mut out = e.handle(killed(100, 100, 12 * S), &mut k);
    out.extend(e.handle(Input::Tick(14 * S), &mut k));
    let v = only_verdict(&out);
    let l = v.evidence.limit_lowered.expect("a lowering");
    assert_eq!((l.s_before, l.basis), (1.0, LimitBasis::EarlierWrite));
    assert!(
        v.summary.contains("Its limit had been lowered from 512Mi to 16Mi at most 1 s before the kill (a write seen in the kernel left the higher limit then)"),
        "{}",
        v.summary
    );
}

/// Writes that lowered nothing the kill shows: one of an unknown cgroup,
/// a raise from no limit, a raise. No claim.
#[test]
fn limit_writes_that_lowered_nothing_say_nothing() {
    for (id, old, text) in [(77, 131_072, "16M"), (5, 2048, "max"), (5, 2048, "16M")] {
        let mut e = Engine::new(audited(false).start);
        let mut k = Fake::default();
        e.handle(limit_write(11 * S, id, old, text), &mut k);
        let mut out = e.handle(killed(100, 100, 12 * S), &mut k);
        out.extend(e.handle(Input::Tick(14 * S), &mut k));
        let v = only_verdict(&out);
        assert_eq!(v.evidence.limit_lowered, None, "{id} {old} {text}: {v:?}");
        assert!(!v.summary.contains("lowered"), "{}", v.summary);
    }
}

/// A recording made before the `limit` family holds five drop totals.
#[test]
fn drop_totals_of_fewer_hooks_still_read() {
    let old: Input = serde_json::from_str(r#"{"Drops":[1,2,3,4,5]}"#).expect("five totals");
    let Input::Drops(t) = old else {
        panic!("not drops")
    };
    assert_eq!(t, [1, 2, 3, 4, 5, 0]);
    let back = serde_json::to_string(&Input::Drops(t)).expect("json");
    assert_eq!(back, r#"{"Drops":[1,2,3,4,5,0]}"#);
    assert!(serde_json::from_str::<Input>(r#"{"Drops":[1,2,3,4,5,6,7]}"#).is_err());
}
