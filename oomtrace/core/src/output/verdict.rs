//! What oomtrace says about a kill: the user-facing types behind the JSON
//! `verdict` line (docs/schema.md). Kept apart from the wire structs so the
//! kernel layout can change without changing the contract. Unknown is
//! `None` (JSON null), never a guess.

use serde::Serialize;

use crate::{
    node::kubelet::Threshold,
    node::observe,
    node::pods::{parse_cgroup_path, ContainerId, KubeCgroup, PodUid, Runtime},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    PodLimit,
    /// A memory cgroup hit its limit and the evidence does not name the
    /// cgroup, so not whose limit it was either (a saved log's kill line
    /// without its report).
    CgroupLimit,
    NodePressure,
    EscapedProcess,
    System,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PressureKind {
    Eviction,
    AllocatableOom,
    SystemOom,
    /// A userspace OOM killer (earlyoom, nohang, systemd-oomd, oomd, or
    /// one named with `--userspace-killers`) signalled the process.
    UserspaceOomKiller,
}

/// The OOM killer's scope: a memory cgroup's limit, or the whole machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Constraint {
    Memcg,
    Global,
    /// cpuset or mempolicy constrained (NUMA); not a memory-limit story.
    Other,
}

/// Where the constraint and the limit cgroup came from, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintSource {
    /// `struct oom_control` read by the per-OOM hook.
    OomControl,
    /// The page counters of the trigger's and victim's memcg ancestry, read
    /// in the kernel at the kill.
    MemcgCounters,
    /// The kernel's rate-limited `oom-kill:` summary line.
    KernelLog,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Victim {
    pub pid: u32,
    /// Null when neither the hook nor the kernel's log named it (a
    /// `mark_victim` record holding only the pid).
    pub comm: Option<String>,
    pub oom_score_adj: Option<i16>,
    pub rss_bytes: Option<u64>,
    pub anon_rss_bytes: Option<u64>,
    pub file_rss_bytes: Option<u64>,
    pub shmem_rss_bytes: Option<u64>,
    pub total_vm_bytes: Option<u64>,
    pub cgroup: Option<String>,
    /// Its pid inside its own pid namespace: 1 is a container's init.
    pub ns_pid: Option<u32>,
}

/// A cgroup's memory at the kill, never read after it: by then the kernel
/// may have freed the victim's pages (the OOM reaper starts at once).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Memory {
    /// Whose numbers these are: the cgroup at its limit for the kernel's
    /// report, the victim's own for its page counter.
    pub cgroup: String,
    pub source: MemorySource,
    pub usage_bytes: Option<u64>,
    pub anon_bytes: Option<u64>,
    pub file_bytes: Option<u64>,
    pub active_file_bytes: Option<u64>,
    pub inactive_file_bytes: Option<u64>,
    pub slab_bytes: Option<u64>,
    /// usage − inactive_file, as the kubelet and `kubectl top` compute it.
    pub working_set_bytes: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemorySource {
    /// The memcg OOM report the kernel printed for this kill (usage and
    /// the `Memory cgroup stats` block), before any victim was killed.
    KernelOomReport,
    /// The victim cgroup's page counter, read by the victim hook at the
    /// kill: usage only (the report was rate-limited, or a global OOM).
    PageCounter,
}

impl Memory {
    /// From the report's usage line and stats block (v2 keys, or v1's
    /// hierarchical `total_*` ones).
    pub fn from_report(r: &crate::logs::oom_report::MemcgReport) -> Memory {
        // v1 prints the cgroup's own counters and then the hierarchical
        // `total_*` ones, which are v2's (and the kernel's limit's) sense.
        let stat = |v2: &str, v1: &str| {
            r.stats
                .get(&format!("total_{v1}"))
                .or_else(|| r.stats.get(v2))
                .copied()
        };
        let usage_bytes = r.usage_kb.map(|kb| kb.saturating_mul(1024));
        let inactive_file_bytes = stat("inactive_file", "inactive_file");
        Memory {
            cgroup: r.cgroup.clone(),
            source: MemorySource::KernelOomReport,
            usage_bytes,
            anon_bytes: stat("anon", "rss"),
            file_bytes: stat("file", "cache"),
            active_file_bytes: stat("active_file", "active_file"),
            inactive_file_bytes,
            slab_bytes: r.stats.get("slab").copied(),
            working_set_bytes: usage_bytes
                .zip(inactive_file_bytes)
                .map(|(u, i)| u.saturating_sub(i)),
        }
    }

    pub fn from_page_counter(cgroup: String, usage_bytes: u64) -> Memory {
        Memory {
            cgroup,
            source: MemorySource::PageCounter,
            usage_bytes: Some(usage_bytes),
            anon_bytes: None,
            file_bytes: None,
            active_file_bytes: None,
            inactive_file_bytes: None,
            slab_bytes: None,
            working_set_bytes: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeMemory {
    pub capacity_bytes: u64,
    pub mem_available_bytes: u64,
    /// The kubelet's memory.available: capacity − the root cgroup's working set.
    pub memory_available_bytes: u64,
    pub eviction_threshold_bytes: Option<u64>,
    pub eviction_threshold_source: Option<String>,
    /// Where the node's memory was (node-pressure verdicts; null otherwise).
    pub breakdown: Option<Box<crate::node::node_memory::Breakdown>>,
    /// The node's memory PSI (/proc/pressure/memory) at a userspace OOM
    /// killer's signal: what systemd-oomd kills on. Absent elsewhere, and
    /// where the kernel keeps no PSI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<crate::node::node_memory::Psi>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Process {
    pub pid: u32,
    /// Null when the kernel's read of it failed.
    pub comm: Option<String>,
}

/// A kill by signal from userspace (eviction).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Signal {
    pub name: &'static str,
    pub number: u32,
    pub sender: Process,
}

impl Signal {
    /// The name of a signal that ends a process the way a stop, an
    /// eviction or a userspace OOM killer does; `None` for any other.
    pub fn stop_name(number: u32) -> Option<&'static str> {
        match number {
            9 => Some("SIGKILL"),
            15 => Some("SIGTERM"),
            _ => None,
        }
    }
}

/// A userspace OOM killer that ended a process: who it is, how it was
/// recognised, and every signal it sent that process.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Killer {
    pub pid: u32,
    /// Null when the kernel's read of it failed (then `exe` named it).
    pub comm: Option<String>,
    /// /proc/PID/exe of the sender at its signal; null when unreadable
    /// (gone, or a host process's killer, known by its comm alone).
    pub exe: Option<String>,
    /// The name it was recognised by (`earlyoom`, `nohang`,
    /// `systemd-oomd`, `oomd`, or one given with `--userspace-killers`).
    pub known_as: String,
    /// `comm` or `exe`: which of the two carried that name.
    pub matched_by: &'static str,
    /// Its signals to this process, first first.
    pub signals: Vec<KillerSignal>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KillerSignal {
    pub name: &'static str,
    pub number: u32,
    /// Seconds after the killer's first signal to this process.
    pub after_s: f64,
    /// The target ignored it (a container's init with no handler for
    /// SIGTERM: the kernel drops it).
    pub ignored: bool,
}

/// A cgroup that was charging memory before the kill.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Growth {
    pub cgroup: Option<String>,
    pub pod: Option<PodUid>,
    pub bytes_per_s: u64,
    pub window_s: f64,
    /// `charge_counter`: pages charged, counted in the kernel while armed;
    /// `page_counter`: the cgroup's usage at pressure and at the kill.
    pub source: &'static str,
}

/// A large memory user at the time of a global OOM.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Consumer {
    pub cgroup: String,
    pub usage_bytes: u64,
    pub pod: Option<Pod>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Trigger {
    pub pid: u32,
    /// Null when the kernel's read of it failed.
    pub comm: Option<String>,
    pub cgroup: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Limit {
    pub cgroup: Option<String>,
    pub limit_bytes: Option<u64>,
    pub usage_bytes: Option<u64>,
}

/// A pod's identity lives with the rest of it (node::pods); the node
/// memory breakdown's top pods carry the same object.
pub use crate::node::pods::Pod;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Container {
    pub id: ContainerId,
    pub name: Option<String>,
    pub runtime: Option<Runtime>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evidence {
    pub constraint: Option<Constraint>,
    pub constraint_source: Option<ConstraintSource>,
    /// Which hook saw the victim (tp_btf, raw_tp, tracepoint, signal).
    pub victim_hook: &'static str,
    /// The victim's pid and mount namespace ids (as in /proc/PID/ns).
    pub pid_ns: Option<u32>,
    pub mnt_ns: Option<u32>,
    /// For escaped_process: the pod cgroup the process belongs to by its namespaces.
    pub pod_cgroup: Option<String>,
    /// What the verdict rests on, and whether that is inference
    /// (docs/schema.md lists every value).
    pub basis: Option<&'static str>,
    /// Eviction only: seconds from the runtime's SIGTERM to its SIGKILL.
    pub grace_s: Option<f64>,
    /// Eviction only: `hard` or `soft`, the kubelet threshold
    /// memory.available was under at the SIGTERM.
    pub eviction_threshold: Option<&'static str>,
    /// How long after the kill the daemon judged it (OOM kills; a wait
    /// for the kernel's report included).
    pub judged_after_ms: Option<f64>,
    /// Eviction from the kubelet's log: the resource its eviction manager
    /// said it was reclaiming (`memory`, `ephemeral-storage`, `imagefs`…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eviction_resource: Option<String>,
    /// Where the pod's and container's names came from when a saved log
    /// gave them (`kubelet_log`: the kubelet's own lines in the paste).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub names_from: Option<&'static str>,
    /// Kernels before 5.2: the process the OOM killer chose when it killed
    /// a child of it instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chosen: Option<Process>,
    /// The limit that fired had been read higher shortly before the kill
    /// (rules/lowered_limit.rs); absent when no reading shows a lowering.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_lowered: Option<LimitLowered>,
}

/// A limit lowered before the kill: what the readings show.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LimitLowered {
    /// The latest earlier reading of a higher limit.
    pub from_bytes: u64,
    /// The limit at the kill (the victim hook's page counter).
    pub to_bytes: u64,
    /// Seconds from the last reading of `from_bytes` to the kill: when the
    /// write was seen (`basis: write_hook`) exactly how long before, else
    /// at most this long (the write fell between that reading and the kill).
    pub s_before: f64,
    /// Where the reading of `from_bytes` came from.
    pub basis: LimitBasis,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitBasis {
    /// The `near_oom` sampler's read of the limit file.
    Sampler,
    /// The page counter a memcg reclaim record read in the kernel.
    Pressure,
    /// The daemon's start-up scan of the cgroups' limit files.
    StartupScan,
    /// The write of the limit itself, seen by the `limit` hook: the old
    /// and the new value at its moment, so `s_before` is exact.
    WriteHook,
    /// A write seen by the `limit` hook left the higher limit in place (it
    /// raised it, or the kernel refused it); the lowering after it was not
    /// seen, so `s_before` is a bound.
    EarlierWrite,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    pub verdict: VerdictKind,
    /// Only for `node_pressure`.
    pub kind: Option<PressureKind>,
    /// `bpf`: seen live by the kernel hooks; `kernel_log`: found in the
    /// kernel log at start (a kill that happened while oomtrace was not
    /// running) or in a saved log by `oomtrace explain`.
    pub source: &'static str,
    /// Shared by every victim of one OOM invocation (oom.group kills).
    pub incident: String,
    /// RFC 3339 UTC time of the kill in the kernel; null only from
    /// `oomtrace explain` on a log whose lines carry no zoned wall date.
    pub time: Option<String>,
    /// Null only when the evidence names no process: a saved log cut
    /// before its report's kill line, or the kubelet's log of an eviction
    /// (it evicts pods).
    pub victim: Option<Victim>,
    /// The task whose charge failed (eviction: the sender); null when unknown.
    pub trigger: Option<Trigger>,
    pub limit: Option<Limit>,
    pub pod: Option<Pod>,
    pub container: Option<Container>,
    /// Whether the kubelet will report this kill as `OOMKilled`: only when
    /// the container's init died in the incident. Null outside containers.
    pub kubelet_reports: Option<bool>,
    pub memory: Option<Memory>,
    pub node_memory: Option<NodeMemory>,
    /// Eviction only: the signal and who sent it.
    pub signal: Option<Signal>,
    /// `userspace_oom_killer` only: who killed and how.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub killer: Option<Killer>,
    /// Global OOM only: the largest memory users at the kill.
    pub top_consumers: Option<Vec<Consumer>>,
    /// The cgroups charging memory fastest in the seconds before the kill.
    pub growth: Option<Vec<Growth>>,
    /// Seconds from the `near_oom` finding of the cgroup whose limit was
    /// hit to this kill; null when none was given.
    pub warned_s_before: Option<f64>,
    pub evidence: Evidence,
    pub summary: String,
}

/// Something worth knowing before any kill.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    EscapeDetected,
    CgroupLeak,
    /// Kubernetes will show the container `OOMKilled`, but its init ended
    /// otherwise (kubernetes#140716).
    OomkilledMisreport,
    /// Removed memory cgroups pile up, held by their page cache (seed 004).
    DyingCgroups,
    /// A memory cgroup close to its limit and growing into it within the
    /// horizon, or already reclaiming at it: before any kill.
    NearOom,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub finding: FindingKind,
    pub time: String,
    pub pod: Option<Pod>,
    pub container: Option<Container>,
    /// escape_detected: the process that left its pod's cgroup.
    pub process: Option<Process>,
    /// escape_detected: the cgroup it moved to; cgroup_leak: the leaked pod cgroup.
    pub cgroup: String,
    /// escape_detected: the pod cgroup it belongs to by its namespaces.
    pub pod_cgroup: Option<String>,
    /// cgroup_leak: how long it has been empty.
    pub empty_for_s: Option<f64>,
    /// oomkilled_misreport: how the container's init ended.
    pub exit: Option<Exit>,
    /// oomkilled_misreport: the OOM kills in the container before that.
    pub earlier_kills: Option<Vec<EarlierKill>>,
    /// dying_cgroups: their count and pinned memory, then and now.
    pub dying_cgroups: Option<crate::node::node_memory::DyingGrowth>,
    /// near_oom: the cgroup's usage and limit at the sample.
    pub usage_bytes: Option<u64>,
    pub limit_bytes: Option<u64>,
    /// near_oom: growth of the working set over the last seconds (a
    /// least-squares fit), bytes/s.
    pub growth_bytes_per_s: Option<i64>,
    /// near_oom: at that growth, seconds until the limit (null: not growing).
    pub seconds_to_limit: Option<f64>,
    /// near_oom: usage − inactive_file.
    pub working_set_bytes: Option<u64>,
    /// near_oom: the cgroup's memory PSI (v2 `memory.pressure`); null on v1.
    pub psi: Option<crate::node::node_memory::Psi>,
    pub summary: String,
}

impl Finding {
    /// A finding of `finding` about `cgroup` with no other fact yet.
    pub fn new(finding: FindingKind, time: String, cgroup: String) -> Finding {
        Finding {
            finding,
            time,
            pod: None,
            container: None,
            process: None,
            cgroup,
            pod_cgroup: None,
            empty_for_s: None,
            exit: None,
            earlier_kills: None,
            dying_cgroups: None,
            usage_bytes: None,
            limit_bytes: None,
            growth_bytes_per_s: None,
            seconds_to_limit: None,
            working_set_bytes: None,
            psi: None,
            summary: String::new(),
        }
    }
}

/// Why a pod's process ended by a userspace signal is not an eviction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// memory.available was above the kubelet's hard threshold.
    NoMemoryPressure,
    /// Sent by a process that is not a container runtime: the kubelet never
    /// signals a container itself.
    SenderNotRuntime,
    /// A SIGKILL with no SIGTERM before it: the kubelet's stops always give
    /// a grace period (at least 1 s).
    SigkillWithoutSigterm,
    /// The process outlived the eviction's grace period after SIGTERM and
    /// still ran when oomtrace stopped following it (an hour later, or at
    /// that grace's end when not followed: `engine::Start::follow_long_stops`).
    GraceLongerThanHardEviction,
    /// A userspace OOM killer's SIGTERM that the process outlived, with no
    /// SIGKILL after it: not killed.
    SurvivedUserspaceOomKiller,
    /// Looked like an eviction, but the rest of the pod kept running:
    /// the kubelet evicts whole pods (a container restart, e.g. after a
    /// failed liveness probe, stops one container).
    PodNotStopped,
    /// The whole pod was stopped under the threshold after a grace period
    /// longer than the eviction's, and the kubelet's log did not name its
    /// eviction: a kubelet that gives evicted pods their full grace period
    /// (kubernetes#115819, #124405) and a deletion or rollout look alike.
    EvictionOrDeletion,
}

/// A pod's process ended by SIGKILL/SIGTERM from userspace that was not an
/// eviction (`reason` says why): not an OOM, said so that nothing is hidden.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stopped {
    pub time: String,
    pub process: Process,
    pub cgroup: Option<String>,
    pub pod: Option<Pod>,
    pub container: Option<Container>,
    pub signal: Signal,
    pub node_memory: Option<NodeMemory>,
    pub reason: StopReason,
    pub summary: String,
}

/// Whose kill, stop or finding it is: a pod and its container as their
/// cgroup path names them, before their names are read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Identity {
    pub pod: Option<Pod>,
    pub container: Option<Container>,
}

/// A pod's namespace/name and a container's name, read from the kubelet's
/// log directories.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Names {
    pub pod: Option<(String, String)>,
    pub container: Option<String>,
}

impl Identity {
    /// The one place a cgroup path's identity becomes output types.
    pub fn of(k: &KubeCgroup) -> Identity {
        Identity {
            pod: k.pod.clone().map(|uid| Pod {
                uid: Some(uid),
                namespace: None,
                name: None,
                qos: k.qos,
            }),
            container: k.container.clone().map(|c| Container {
                id: c.id,
                name: None,
                runtime: c.runtime,
            }),
        }
    }

    /// The identity of a cgroup path; empty outside kubepods.
    pub fn of_path(path: &str) -> Identity {
        parse_cgroup_path(path)
            .map(|k| Identity::of(&k))
            .unwrap_or_default()
    }

    pub fn named(mut self, names: &Names) -> Identity {
        if let (Some(p), Some((ns, name))) = (self.pod.as_mut(), names.pod.as_ref()) {
            p.namespace = Some(ns.clone());
            p.name = Some(name.clone());
        }
        if let Some(c) = self.container.as_mut() {
            c.name = names.container.clone();
        }
        self
    }
}

impl Victim {
    /// A victim known only by pid, name and cgroup (a signal's target).
    pub fn unread(pid: u32, comm: Option<String>, cgroup: Option<String>) -> Victim {
        Victim {
            pid,
            comm,
            oom_score_adj: None,
            rss_bytes: None,
            anon_rss_bytes: None,
            file_rss_bytes: None,
            shmem_rss_bytes: None,
            total_vm_bytes: None,
            cgroup,
            ns_pid: None,
        }
    }
}

impl Verdict {
    /// A verdict of `verdict` from `source` with nothing read yet: every
    /// field the evidence fills is null, the evidence names only the hook
    /// that saw the kill. Builders set what they know over it, so a new
    /// field is one line here and no other literal changes.
    pub fn unread(
        verdict: VerdictKind,
        source: &'static str,
        incident: String,
        victim_hook: &'static str,
    ) -> Verdict {
        Verdict {
            verdict,
            kind: None,
            source,
            incident,
            time: None,
            victim: None,
            trigger: None,
            limit: None,
            pod: None,
            container: None,
            kubelet_reports: None,
            memory: None,
            node_memory: None,
            signal: None,
            killer: None,
            top_consumers: None,
            growth: None,
            warned_s_before: None,
            evidence: Evidence::unread(victim_hook),
            summary: String::new(),
        }
    }
}

impl Evidence {
    /// Evidence with nothing read but the hook that saw the kill.
    pub fn unread(victim_hook: &'static str) -> Evidence {
        Evidence {
            constraint: None,
            constraint_source: None,
            victim_hook,
            pid_ns: None,
            mnt_ns: None,
            pod_cgroup: None,
            basis: None,
            grace_s: None,
            eviction_threshold: None,
            judged_after_ms: None,
            eviction_resource: None,
            names_from: None,
            chosen: None,
            limit_lowered: None,
        }
    }
}

impl NodeMemory {
    /// The node's memory as read, with the kubelet's eviction threshold
    /// when it matters (signals).
    pub fn of(n: &observe::NodeAvailable, threshold: Option<&Threshold>) -> NodeMemory {
        NodeMemory {
            capacity_bytes: n.capacity_bytes,
            mem_available_bytes: n.mem_available_bytes,
            memory_available_bytes: n.memory_available_bytes,
            eviction_threshold_bytes: threshold.map(|t| t.bytes(n.capacity_bytes)),
            eviction_threshold_source: threshold.map(|t| t.source.clone()),
            breakdown: None,
            psi: None,
        }
    }
}

/// RFC 3339 UTC wall time of a CLOCK_BOOTTIME instant (nine fraction digits).
pub fn wall_time(boot_ns: u64, boot_to_wall_ns: i128) -> String {
    crate::kernel::clock::rfc3339_ns(boot_ns as i128 + boot_to_wall_ns)
}

// The `oomkilled_misreport` finding's parts (rules::misreport decides it).

/// An OOM kill in the container before its init ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EarlierKill {
    pub time: Option<String>,
    pub victim: Process,
    pub incident: String,
}

/// How the container's init ended, as far as oomtrace saw it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Exit {
    /// The userspace signal that ended it; null when none was seen (the
    /// init exited by itself, or by a signal sent before oomtrace started).
    pub signal: Option<&'static str>,
    /// Its exit code: not observed by oomtrace (always null). The runtime
    /// reports 128 + n for a death by signal n.
    pub code: Option<i32>,
    pub sender: Option<Process>,
}

/// A finding ready to be named and worded.
#[derive(Clone, Debug, PartialEq)]
pub struct Misreport {
    pub container_cgroup: String,
    pub identity: Identity,
    pub process: Option<Process>,
    pub exit: Exit,
    pub earlier_kills: Vec<EarlierKill>,
    /// Kills past the `MAX_KILLS` listed.
    pub more_kills: usize,
}

/// Why a `near_oom` warning was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NearOomReason {
    /// Growing so that the limit is reached within the horizon.
    Growing,
    /// The kernel is already reclaiming at this cgroup's limit.
    Reclaiming,
}
