//! Kernel text and oomtrace's own state: the OOM report reader, the
//! /dev/kmsg reader, `explain`'s log readers, the state file.

pub mod explain;
pub mod kmsg;
pub mod oom_report;
pub mod state;
