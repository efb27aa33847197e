//! Output lines: one `Line` per line, JSON for pipelines or text for
//! people. The record types are the contract in docs/schema.md.

pub mod json;
pub mod text;

use serde::Serialize;

use crate::{
    hooks::Choice,
    verdict::{Finding, Stopped, Verdict},
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
    Heartbeat(Heartbeat),
}

/// Proof of life for pipelines: a quiet node and a dead agent look alike
/// without it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Heartbeat {
    pub uptime_s: u64,
    pub events: u64,
    pub verdicts: u64,
    pub findings: u64,
    pub lost: u64,
    /// Live cgroups in oomtrace's node model at this beat: compared with a
    /// walk of cgroupfs, it shows the model kept up (no missed mkdir/rmdir).
    pub cgroups: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// "ready" once every hook is attached; "stopping" on SIGTERM/SIGINT.
    pub state: &'static str,
    pub version: &'static str,
    pub kernel: String,
    pub cgroup: CgroupStatus,
    pub hooks: Vec<Choice>,
    /// Kernel-log reader state: "reading" or why not.
    pub kernel_log: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct CgroupStatus {
    pub version: crate::cgroup::Version,
    pub memory_root: String,
    pub cgroups: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Lost {
    pub hook: &'static str,
    /// Events lost since the previous `lost` line for this hook.
    pub count: u64,
    pub total: u64,
}

/// Where records go. Errors are I/O errors of the output: a closed pipe
/// ends the daemon cleanly.
pub trait Sink {
    fn write(&mut self, record: &Line) -> std::io::Result<()>;
}
