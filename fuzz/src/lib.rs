//! oomtrace's modules, compiled from their own files (`#[path]`), so the
//! fuzz targets call exactly the code the daemon runs without the oomtrace
//! package (its build script builds the eBPF object) or a library target.
//! The crate root mirrors oomtrace's, so the modules' `crate::` paths hold.
//! Only what `record::replay` reaches, plus the standalone parsers.

#![allow(dead_code, unused_imports, clippy::all)]

#[path = "../../oomtrace/src/attribution.rs"]
pub mod attribution;
#[path = "../../oomtrace/src/btf.rs"]
pub mod btf;
#[path = "../../oomtrace/src/cgroup.rs"]
pub mod cgroup;
#[path = "../../oomtrace/src/engine.rs"]
pub mod engine;
#[path = "../../oomtrace/src/event.rs"]
pub mod event;
#[path = "../../oomtrace/src/kernel_log.rs"]
pub mod kernel_log;
#[path = "../../oomtrace/src/kmsg.rs"]
pub mod kmsg;
#[path = "../../oomtrace/src/kubelet.rs"]
pub mod kubelet;
#[path = "../../oomtrace/src/observe.rs"]
pub mod observe;
#[path = "../../oomtrace/src/offsets.rs"]
pub mod offsets;
#[path = "../../oomtrace/src/pods.rs"]
pub mod pods;
#[path = "../../oomtrace/src/probe.rs"]
pub mod probe;
#[path = "../../oomtrace/src/record.rs"]
pub mod record;
#[path = "../../oomtrace/src/sink/mod.rs"]
pub mod sink;
#[path = "../../oomtrace/src/state.rs"]
pub mod state;
#[path = "../../oomtrace/src/tracefs.rs"]
pub mod tracefs;
#[path = "../../oomtrace/src/verdict.rs"]
pub mod verdict;

/// A file holding `data`, for the parsers that take a path (recordings,
/// the state file): one per thread, rewritten for each input, in /dev/shm
/// when it exists (no disk I/O per execution).
pub fn scratch_file(name: &str, data: &[u8]) -> std::path::PathBuf {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let path = dir.join(format!("oomtrace-fuzz-{}-{name}", std::process::id()));
    // An unwritable scratch file is a broken machine, not a finding.
    std::fs::write(&path, data).expect("writing the fuzz scratch file");
    path
}
