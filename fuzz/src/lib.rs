//! The fuzz targets' shared helpers, and oomtrace's core re-exported: the
//! targets call exactly the code the daemon runs (`oomtrace-core` builds
//! without the eBPF toolchain).

pub use oomtrace_core::*;

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
