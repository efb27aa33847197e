//! Memory cgroups for the end-to-end tests and the bench: the memory
//! controller's mount, and [`Cgroup`], a path made with its parents and
//! removed, processes and all, when dropped.
//!
//! Each fallible step has a `try_` form returning an error (the bench's
//! way) beside the panicking one a test calls.

use std::{
    fs,
    io::ErrorKind,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Context as _;

use crate::wait_until;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

impl CgroupVersion {
    /// `v1` or `v2`.
    pub fn name(self) -> &'static str {
        match self {
            CgroupVersion::V1 => "v1",
            CgroupVersion::V2 => "v2",
        }
    }
}

impl std::fmt::Display for CgroupVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The memory controller's mount on this machine.
pub fn memory_root() -> (PathBuf, CgroupVersion) {
    let v1 = PathBuf::from("/sys/fs/cgroup/memory");
    if v1.join("memory.limit_in_bytes").exists() {
        return (v1, CgroupVersion::V1);
    }
    (PathBuf::from("/sys/fs/cgroup"), CgroupVersion::V2)
}

/// Sets the memory limit of the cgroup directory `dir` (v1
/// `memory.limit_in_bytes`, v2 `memory.max`, and on v2 no swap: the limit
/// must end in an OOM kill).
pub fn set_memory_limit(dir: &Path, bytes: u64) -> anyhow::Result<()> {
    let (_, version) = memory_root();
    let file = match version {
        CgroupVersion::V1 => "memory.limit_in_bytes",
        CgroupVersion::V2 => "memory.max",
    };
    let path = dir.join(file);
    fs::write(&path, bytes.to_string()).with_context(|| format!("writing {}", path.display()))?;
    if version == CgroupVersion::V2 {
        let _ = fs::write(dir.join("memory.swap.max"), "0");
    }
    Ok(())
}

/// The pids in the cgroup directory `dir` (none when it cannot be read).
pub fn cgroup_pids(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// SIGKILL to every process in the cgroup directory `dir`.
pub fn kill_all(dir: &Path) {
    for pid in cgroup_pids(dir) {
        kill(pid, rustix::process::Signal::KILL);
    }
}

/// Sends `signal` to `pid` (ignored when there is no such process).
pub fn kill(pid: i32, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// A cgroup path (relative to the memory root) created with its parents;
/// removed with everything inside when dropped.
pub struct Cgroup {
    pub rel: String,
    pub dir: PathBuf,
    created: Vec<PathBuf>,
    version: CgroupVersion,
}

impl Cgroup {
    pub fn create(rel: &str) -> Cgroup {
        Cgroup::try_create(rel).unwrap_or_else(|e| panic!("{e:#}"))
    }

    pub fn try_create(rel: &str) -> anyhow::Result<Cgroup> {
        let (root, version) = memory_root();
        let mut created = Vec::new();
        let mut dir = root.clone();
        // Tests run in parallel and share parents (kubepods, its QoS
        // levels): another test may create a parent first (EEXIST: not
        // ours) or remove it on drop between our steps (ENOENT: walk again).
        let mut attempts = 0;
        let mut parts = rel.trim_matches('/').split('/');
        while let Some(part) = parts.next() {
            if version == CgroupVersion::V2 {
                // Children get a memory controller only if the parent enables it.
                let _ = fs::write(dir.join("cgroup.subtree_control"), "+memory");
            }
            let next = dir.join(part);
            match fs::create_dir(&next) {
                Ok(()) => created.push(next.clone()),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) if e.kind() == ErrorKind::NotFound && attempts < 100 => {
                    attempts += 1;
                    dir = root.clone();
                    parts = rel.trim_matches('/').split('/');
                    continue;
                }
                Err(e) => return Err(e).with_context(|| format!("mkdir {}", next.display())),
            }
            dir = next;
        }
        Ok(Cgroup {
            rel: format!("/{}", rel.trim_matches('/')),
            dir,
            created,
            version,
        })
    }

    pub fn set_limit(&self, bytes: u64) {
        self.try_set_limit(bytes)
            .unwrap_or_else(|e| panic!("{e:#}"));
    }

    pub fn try_set_limit(&self, bytes: u64) -> anyhow::Result<()> {
        set_memory_limit(&self.dir, bytes)
    }

    pub fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    pub fn pids(&self) -> Vec<i32> {
        cgroup_pids(&self.dir)
    }

    /// The kernel's count of OOM kills of this cgroup's own processes (v1
    /// `memory.oom_control` is local to the cgroup; v2 `memory.events.local`).
    pub fn oom_kills(&self) -> anyhow::Result<u64> {
        let file = match self.version {
            CgroupVersion::V1 => "memory.oom_control",
            CgroupVersion::V2 => "memory.events.local",
        };
        let path = self.dir.join(file);
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
            .with_context(|| format!("no oom_kill count in {}: {text}", path.display()))
    }

    /// Removes this cgroup now (the parents stay until drop).
    pub fn remove_leaf(&mut self) -> std::io::Result<()> {
        kill_all(&self.dir);
        wait_until(Duration::from_secs(10), || self.pids().is_empty());
        fs::remove_dir(&self.dir)?;
        self.created.retain(|d| d != &self.dir);
        Ok(())
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for dir in self.created.iter().rev() {
            kill_all(dir);
            let deadline = Instant::now() + Duration::from_secs(10);
            while fs::remove_dir(dir).is_err()
                && dir.exists()
                && !has_child_cgroups(dir)
                && Instant::now() < deadline
            {
                kill_all(dir);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Child cgroups left in a parent we created belong to another test running
/// in parallel (ours are removed first): the parent stays for it.
fn has_child_cgroups(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|mut entries| {
        entries.any(|e| {
            e.ok()
                .and_then(|e| e.file_type().ok())
                .is_some_and(|t| t.is_dir())
        })
    })
}
