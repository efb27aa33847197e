//! oomtrace's core: everything between a kernel record and an output line
//! that needs no eBPF toolchain — wire decoding, the cgroup and pod model,
//! attribution, the engine, recordings, the parsers of kernel and file
//! input, and the output types and writers. `cargo test -p oomtrace-core`
//! runs on any machine with a stable rustc. See ARCHITECTURE.md.

pub mod attribution;
pub mod audit;
pub mod btf;
pub mod cgroup;
pub mod engine;
pub mod event;
pub mod explain;
pub mod hooks;
pub mod kernel_log;
pub mod kubelet;
pub mod kubelet_log;
pub mod misreport;
pub mod near_oom;
pub mod node_memory;
pub mod observe;
pub mod offsets;
pub mod oom_report;
pub mod pods;
pub mod recording;
pub mod sink;
pub mod state;
pub mod tracefs;
pub mod verdict;
pub mod wording;
