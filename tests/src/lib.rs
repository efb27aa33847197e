//! The end-to-end harness: start the real oomtrace, shape cgroups like a
//! kubelet node, run real processes into real OOM kills, and read the JSON
//! lines back as values. Everything is waited for with a deadline; every
//! cgroup and process is cleaned up by RAII guards, even on a failed assert.
//!
//! These tests need root (BPF, cgroups). `cargo xtask test` runs them as
//! root; run directly without root they fail saying so, never skip.
//!
//! `cargo xtask bench` uses the same harness (xtask depends on this
//! library): the daemon ([`Launch`], [`Daemon`]) and the cgroups
//! ([`Cgroup`]), through their `try_` forms, which return errors instead of
//! panicking. Keep this library free of build scripts and heavy
//! dependencies: every xtask build compiles it. The one exception, the CRI
//! harness ([`cri`]: tonic, and k8s-cri whose build runs protoc), sits
//! behind the default feature `cri`, which xtask leaves off.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::Value;

mod cgroup;
pub mod container;
#[cfg(feature = "cri")]
pub mod cri;
mod daemon;
pub mod kmsg;
pub mod kustomize;
pub mod systemd;

pub use cgroup::{
    cgroup_pids, kill, kill_all, memory_root, set_memory_limit, Cgroup, CgroupVersion,
};
pub use daemon::{proc_cpu_ns, realtime_ns, Daemon, Launch, Line};

pub type Json = Value;

/// Generous: a TCG VM or a loaded CI machine is slow; the wait ends as soon
/// as the condition holds.
pub const DEADLINE: Duration = Duration::from_secs(60);

pub fn require_root() {
    let uid = rustix::process::geteuid();
    assert!(
        uid.is_root(),
        "this end-to-end test loads eBPF programs and creates cgroups: run it as root (cargo xtask test)"
    );
}

/// The workspace's target directory holding the built binaries
/// (`target/debug`), found from this test executable (`target/debug/deps/..`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: build first with `cargo build --bins` (cargo xtask test does)",
        p.display()
    );
    p
}

/// A pod uid unique to this test process and call, uuid-shaped.
pub fn unique_uid() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0) as u64;
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        std::process::id(),
        n & 0xffff,
        (t >> 12) & 0xfff,
        t & 0xfff,
        (t >> 24) & 0xffff_ffff_ffff
    )
}

/// A 64-hex container id unique to this call.
pub fn unique_container_id() -> String {
    let uid = unique_uid().replace('-', "");
    format!(
        "{uid}{}",
        &"c0ffee00c0ffee00c0ffee00c0ffee00"[..64 - uid.len()]
    )
}

/// A pod cgroup path under the burstable QoS level and its container's,
/// both fresh (relative to the memory root):
/// `kubepods/burstable/pod<uid>` and `kubepods/burstable/pod<uid>/<64 hex>`.
pub fn pod_path() -> (String, String) {
    let pod = format!("kubepods/burstable/pod{}", unique_uid());
    let container = format!("{pod}/{}", unique_container_id());
    (pod, container)
}

/// The `NSpid:` line of /proc/<pid>/status: host pid, then pid in the
/// process's own pid namespace (empty once it is gone).
pub fn nspid(pid: u32) -> Vec<u32> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `cond` every 10 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A process that joins `cgroup` and allocates `mib` MiB.
pub fn spawn_hog(cgroup: &Cgroup, mib: u32) -> Child {
    spawn_hog_with(&bin("oomtrace-hog"), cgroup, mib).expect("spawning oomtrace-hog")
}

/// [`spawn_hog`] with a given build of `oomtrace-hog`.
pub fn spawn_hog_with(hog: &Path, cgroup: &Cgroup, mib: u32) -> std::io::Result<Child> {
    Command::new(hog)
        .arg("--join")
        .arg(cgroup.procs())
        .args(["--mib", &mib.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// Runs a hog into its cgroup's limit and waits for it to die.
pub fn oom_hog(cgroup: &Cgroup, mib: u32) -> u32 {
    let mut child = spawn_hog(cgroup, mib);
    let pid = child.id();
    let mut status = None;
    // A hog that neither fills its limit nor dies is a kernel stuck in
    // reclaim (or a limit that did not apply): fail, naming it, rather
    // than hang the suite.
    let died = wait_until(DEADLINE, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    if !died {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "the hog (pid {pid}, {mib} MiB) in {} was not killed within {} s; memory.events: {}",
            cgroup.rel,
            DEADLINE.as_secs(),
            fs::read_to_string(cgroup.dir.join("memory.events"))
                .or_else(|_| fs::read_to_string(cgroup.dir.join("memory.oom_control")))
                .unwrap_or_default()
                .replace('\n', ", ")
        );
    }
    let status = status.expect("the hog's exit status");
    assert!(
        !status.success(),
        "the hog in {} survived: no OOM kill happened",
        cgroup.rel
    );
    pid
}

/// Verdicts about a given victim pid.
pub fn is_verdict_for(pid: u32) -> impl Fn(&Value) -> bool {
    move |l: &Value| l["type"] == "verdict" && l["victim"]["pid"] == pid
}
