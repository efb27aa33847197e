//! What oomtrace says about a kill: the user-facing types behind the JSON
//! `verdict` line (docs/schema.md). Kept apart from the wire structs so the
//! kernel layout can change without changing the contract. Unknown is
//! `None` (JSON null), never a guess.

use serde::Serialize;

use crate::pods::{ContainerId, PodUid, Qos, Runtime};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    PodLimit,
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Victim {
    pub pid: u32,
    pub comm: String,
    pub oom_score_adj: i16,
    pub rss_bytes: u64,
    pub anon_rss_bytes: u64,
    pub file_rss_bytes: u64,
    pub shmem_rss_bytes: u64,
    pub total_vm_bytes: u64,
    pub cgroup: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Trigger {
    pub pid: u32,
    pub comm: String,
    pub cgroup: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Limit {
    pub cgroup: Option<String>,
    pub limit_bytes: Option<u64>,
    pub usage_bytes: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pod {
    pub uid: PodUid,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub qos: Option<Qos>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Container {
    pub id: ContainerId,
    pub name: Option<String>,
    pub runtime: Option<Runtime>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub constraint: Option<Constraint>,
    pub constraint_source: Option<ConstraintSource>,
    /// Which hook saw the victim (tp_btf, raw_tp, tracepoint).
    pub victim_hook: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub verdict: VerdictKind,
    /// Only for `node_pressure`.
    pub kind: Option<PressureKind>,
    /// Shared by every victim of one OOM invocation (oom.group kills).
    pub incident: String,
    /// RFC 3339 UTC time of the kill in the kernel.
    pub time: String,
    pub victim: Victim,
    pub trigger: Trigger,
    pub limit: Option<Limit>,
    pub pod: Option<Pod>,
    pub container: Option<Container>,
    pub evidence: Evidence,
    pub summary: String,
}
