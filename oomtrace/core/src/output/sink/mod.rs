//! Output lines: one `Line` per line, JSON for pipelines or text for
//! people. The record types are the contract in docs/schema.md.

pub mod json;
mod palette;
pub mod tail;
pub mod text;

use serde::Serialize;

use crate::{
    kernel::hooks::Choice,
    output::verdict::{Finding, Stopped, Verdict},
};

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line {
    Status(Status),
    Verdict(Box<Verdict>),
    Finding(Finding),
    Stopped(Stopped),
    Lost(Lost),
    Missed(Missed),
    Heartbeat(Heartbeat),
}

/// Proof of life for pipelines: a quiet node and a dead agent look alike
/// without it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Heartbeat {
    /// RFC 3339 UTC time of the beat.
    pub time: String,
    pub uptime_s: u64,
    pub events: u64,
    pub verdicts: u64,
    pub findings: u64,
    pub lost: u64,
    /// The kernel's OOM kills since start (/proc/vmstat `oom_kill`), at the
    /// latest read; null when the kernel does not count them.
    pub kernel_oom_kills: Option<u64>,
    /// The verdicts of OOM-killed processes since start (the OOM hooks'; not
    /// evictions, not kills found in the kernel log at start).
    pub oom_verdicts: u64,
    /// oom.group kills since start: the kernel counts their chosen victim twice.
    pub oom_group_kills: u64,
    /// Kills the kernel counted that got no verdict (`missed` lines), in all.
    pub missed: u64,
    /// Live cgroups in oomtrace's node model at this beat: compared with a
    /// walk of cgroupfs, it shows the model kept up (no missed mkdir/rmdir).
    pub cgroups: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// RFC 3339 UTC time the state was reached.
    pub time: String,
    /// "ready" once every hook is attached; "stopping" on SIGTERM/SIGINT.
    pub state: &'static str,
    pub version: &'static str,
    pub kernel: String,
    pub cgroup: CgroupStatus,
    pub hooks: Vec<Choice>,
    /// Kernel-log reader state: "reading" or why not.
    pub kernel_log: String,
    /// Where kills are seen from.
    pub kills: KillSource,
}

/// Where the daemon sees kills: the victim hook, or (kernel-log mode, no
/// victim hook attached) the kernel's OOM report lines on /dev/kmsg only.
#[derive(Clone, Debug, Serialize)]
pub struct KillSource {
    /// `victim_hook` or `kernel_log`.
    pub seen_from: &'static str,
    /// Why the kernel log alone: each victim hook kind and why it did not
    /// attach. Null with a victim hook.
    pub why: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CgroupStatus {
    pub version: crate::node::cgroup::Version,
    pub memory_root: String,
    pub cgroups: usize,
    /// oomtrace's own cgroup namespace when it has a private one (its
    /// root's full path): /proc/PID/cgroup paths are resolved against it.
    pub namespace: Option<crate::node::cgroup::CgroupNamespace>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Lost {
    /// RFC 3339 UTC time the loss was counted.
    pub time: String,
    pub hook: &'static str,
    /// Events lost since the previous `lost` line for this hook.
    pub count: u64,
    pub total: u64,
}

/// Kills the kernel counted (/proc/vmstat `oom_kill`) that have no verdict
/// after the audit's deadline: their events were lost.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Missed {
    /// RFC 3339 UTC time of the audit's read that found them.
    pub time: String,
    /// Kills newly found without a verdict.
    pub count: u64,
    /// Missed kills since start, this line's included.
    pub total: u64,
    /// The kernel's OOM kills since start, as read at least the deadline ago.
    pub kernel_oom_kills: u64,
    /// The verdicts of OOM-killed processes since start.
    pub verdicts: u64,
    /// oom.group kills since start (the kernel counts their chosen victim
    /// twice): `kernel_oom_kills = verdicts + oom_group_kills + total`.
    pub oom_group_kills: u64,
    /// The missed kills happened after this time (RFC 3339): the last read
    /// of the count whose kills all had verdicts.
    pub since: String,
    pub summary: String,
}

/// Where records go. Errors are I/O errors of the output: a closed pipe
/// ends the daemon cleanly.
pub trait Sink {
    fn write(&mut self, record: &Line) -> std::io::Result<()>;

    /// The kills found in the kernel log at start have all been written
    /// (`since_last_run`: since the state file's position, else since
    /// boot); what follows is live.
    fn end_of_backlog(&mut self, _since_last_run: bool) -> std::io::Result<()> {
        Ok(())
    }

    /// Every line from here on is live, the backlog (if it was read) over:
    /// a `kernel_log` verdict after it is a kill the kernel logged just now
    /// (kernel-log mode), not one from while oomtrace was not running.
    fn live(&mut self) {}
}
