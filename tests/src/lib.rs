//! The end-to-end harness: start the real oomtrace, shape cgroups like a
//! kubelet node, run real processes into real OOM kills, and read the JSON
//! lines back as values. Everything is waited for with a deadline; every
//! cgroup and process is cleaned up by RAII guards, even on a failed assert.
//!
//! These tests need root (BPF, cgroups). `cargo xtask test` runs them as
//! root; run directly without root they fail saying so, never skip.

use std::{
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, Condvar, Mutex,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::Value;

pub mod container;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// The memory controller's mount on this machine.
pub fn memory_root() -> (PathBuf, CgroupVersion) {
    let v1 = PathBuf::from("/sys/fs/cgroup/memory");
    if v1.join("memory.limit_in_bytes").exists() {
        return (v1, CgroupVersion::V1);
    }
    (PathBuf::from("/sys/fs/cgroup"), CgroupVersion::V2)
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
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempts < 100 => {
                    attempts += 1;
                    dir = root.clone();
                    parts = rel.trim_matches('/').split('/');
                    continue;
                }
                Err(e) => panic!("mkdir {}: {e}", next.display()),
            }
            dir = next;
        }
        Cgroup {
            rel: format!("/{}", rel.trim_matches('/')),
            dir,
            created,
            version,
        }
    }

    pub fn set_limit(&self, bytes: u64) {
        let file = match self.version {
            CgroupVersion::V1 => "memory.limit_in_bytes",
            CgroupVersion::V2 => "memory.max",
        };
        let path = self.dir.join(file);
        fs::write(&path, bytes.to_string())
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        if self.version == CgroupVersion::V2 {
            // No swap escape hatch: the limit must end in an OOM kill.
            let _ = fs::write(self.dir.join("memory.swap.max"), "0");
        }
    }

    pub fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    pub fn pids(&self) -> Vec<i32> {
        fs::read_to_string(self.procs())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
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

fn kill_all(dir: &Path) {
    for pid in fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse::<i32>().ok())
    {
        if let Some(pid) = rustix::process::Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
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
    Command::new(bin("oomtrace-hog"))
        .args([
            "--join",
            &cgroup.procs().display().to_string(),
            "--mib",
            &mib.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning oomtrace-hog")
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

struct Lines {
    lines: Mutex<Vec<Value>>,
    changed: Condvar,
}

/// The oomtrace daemon (`oomtrace record`), JSON lines collected as they
/// come. [`Daemon::finish`] stops it and checks that replaying its recording
/// gives the same lines.
pub struct Daemon {
    child: Child,
    lines: Arc<Lines>,
    reader: Option<std::thread::JoinHandle<()>>,
    recording: PathBuf,
}

impl Daemon {
    /// Starts `oomtrace run` with `args` and waits for the `ready` line.
    /// When the test passes no `--hooks` of its own, `OOMTRACE_E2E_HOOKS`
    /// (e.g. `oom=off,victim=tracepoint`) forces the hooks, so the same
    /// scenarios run on each fallback (`cargo xtask vm-test` does), and
    /// `OOMTRACE_E2E_EXPECT_HOOKS` (same shape) asserts which hook each named
    /// family took (`none` for a family that must not attach).
    pub fn start(args: &[&str]) -> Daemon {
        Daemon::start_wrapped(&[], args)
    }

    /// [`Daemon::start`] with oomtrace run under `wrapper`, a command that
    /// execs the rest of its arguments (e.g. `setpriv` with fewer
    /// capabilities); empty: oomtrace itself.
    pub fn start_wrapped(wrapper: &[&str], args: &[&str]) -> Daemon {
        require_root();
        let own_hooks = args
            .iter()
            .any(|a| *a == "--hooks" || a.starts_with("--hooks="));
        let env_hooks = std::env::var("OOMTRACE_E2E_HOOKS")
            .ok()
            .filter(|h| !own_hooks && !h.trim().is_empty());
        let recording = std::env::temp_dir().join(format!("oomtrace-e2e-{}.rec", unique_uid()));
        let mut command = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin("oomtrace"));
                c
            }
            None => Command::new(bin("oomtrace")),
        };
        let mut child = command
            .arg("record")
            .arg(&recording)
            .args(["--node-name", "e2e-node"])
            // Its own state, and no report of kills from before it started,
            // unless the test is about exactly that.
            .args(if args.contains(&"--state-file") {
                Vec::new()
            } else {
                vec![
                    "--backlog".to_string(),
                    "off".to_string(),
                    "--state-file".to_string(),
                    recording.with_extension("state").display().to_string(),
                ]
            })
            .args(env_hooks.iter().flat_map(|h| ["--hooks", h.as_str()]))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning oomtrace");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Lines {
            lines: Mutex::new(Vec::new()),
            changed: Condvar::new(),
        });
        let sink = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
                    panic!("oomtrace printed a line that is not JSON ({e}): {line}")
                });
                // A test that failed while holding the lock poisons it; the
                // lines are still whole (pushes cannot fail halfway).
                let mut all = sink.lines.lock().unwrap_or_else(|e| e.into_inner());
                all.push(value);
                sink.changed.notify_all();
            }
        });
        let d = Daemon {
            child,
            lines,
            reader: Some(reader),
            recording,
        };
        let ready = d.wait_for("the ready status line", |l| {
            l["type"] == "status" && l["state"] == "ready"
        });
        assert_eq!(ready["schema_version"], 1);
        assert_eq!(ready["node"], "e2e-node");
        if let Some(expect) = std::env::var("OOMTRACE_E2E_EXPECT_HOOKS")
            .ok()
            .filter(|_| !own_hooks)
        {
            for pair in expect.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (family, kind) = pair.split_once('=').unwrap_or_else(|| {
                    panic!("OOMTRACE_E2E_EXPECT_HOOKS: `{pair}` is not FAMILY=KIND")
                });
                assert_eq!(
                    d.hook(family).as_deref().unwrap_or("none"),
                    kind,
                    "OOMTRACE_E2E_EXPECT_HOOKS wants {family}={kind}; status line: {ready}"
                );
            }
        }
        d
    }

    /// The daemon's pid (a wrapper's too: it execs oomtrace).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The hook `family` took, from the ready status line (None: no hook
    /// of that family attached).
    pub fn hook(&self, family: &str) -> Option<String> {
        let ready = self.wait_for("the ready status line", |l| {
            l["type"] == "status" && l["state"] == "ready"
        });
        let choice = ready["hooks"]
            .as_array()
            .and_then(|h| h.iter().find(|c| c["family"] == family))
            .cloned()
            .unwrap_or_else(|| panic!("no `{family}` family in the status line: {ready}"));
        choice["chosen"].as_str().map(str::to_owned)
    }

    /// Where a memcg verdict's constraint must come from with the hooks this
    /// kernel gave: `struct oom_control` when the per-OOM hook attached,
    /// else the memcg page counters read at the kill (BTF is present on
    /// every kernel tested here).
    pub fn expected_constraint_source(&self) -> &'static str {
        match self.hook("oom") {
            Some(_) => "oom_control",
            None => "memcg_counters",
        }
    }

    /// The first line matching `pred`, waiting up to [`DEADLINE`].
    pub fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + DEADLINE;
        let mut all = self.lines.lines.lock().expect("lines");
        loop {
            if let Some(v) = all.iter().find(|l| pred(l)) {
                return v.clone();
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "timed out waiting for {what}; lines so far:\n{}",
                dump(&all)
            );
            all = self
                .lines
                .changed
                .wait_timeout(all, deadline - now)
                .expect("lines")
                .0;
        }
    }

    /// Every line so far matching `pred`.
    pub fn all(&self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.lines
            .lines
            .lock()
            .expect("lines")
            .iter()
            .filter(|l| pred(l))
            .cloned()
            .collect()
    }

    /// Stops the daemon with SIGTERM (it must exit 0 and say `stopping`),
    /// then replays its recording: the replay must print exactly the lines
    /// the live daemon printed after its status line.
    pub fn finish(mut self) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("pid");
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
        let mut status = None;
        assert!(
            wait_until(Duration::from_secs(20), || {
                status = self.child.try_wait().ok().flatten();
                status.is_some()
            }),
            "oomtrace did not exit within 20 s of SIGTERM"
        );
        assert!(
            status.is_some_and(|s| s.success()),
            "oomtrace exited with {status:?} on SIGTERM"
        );
        if let Some(r) = self.reader.take() {
            r.join().expect("reader thread");
        }
        let live: Vec<Value> = self.all(|l| l["type"] != "status");
        let stopping = self.all(|l| l["type"] == "status" && l["state"] == "stopping");
        assert_eq!(stopping.len(), 1, "one stopping status line on SIGTERM");
        let out = Command::new(bin("oomtrace"))
            .arg("replay")
            .arg(&self.recording)
            .output()
            .expect("oomtrace replay");
        assert!(
            out.status.success(),
            "replay failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let replayed: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("replay printed a non-JSON line ({e}): {l}"))
            })
            .collect();
        assert_eq!(
            replayed,
            live,
            "the replay of {} differs from the live run",
            self.recording.display()
        );
        // `cargo xtask fixtures` keeps the recordings as replay fixtures.
        if let Some(dir) = std::env::var_os("OOMTRACE_E2E_FIXTURES") {
            let name = std::thread::current()
                .name()
                .unwrap_or("unnamed")
                .replace("::", "-");
            let dest = PathBuf::from(dir).join(format!("{name}.rec"));
            fs::copy(&self.recording, &dest)
                .unwrap_or_else(|e| panic!("keeping {}: {e}", dest.display()));
        }
        let _ = fs::remove_file(&self.recording);
    }

    /// A barrier: causes an OOM kill in a fresh host cgroup and waits for its
    /// verdict. Events are delivered in order, so every verdict caused
    /// before this call has been printed once it returns.
    pub fn barrier(&self) {
        let cg = Cgroup::create(&format!("oomtrace-barrier-{}", unique_uid()));
        cg.set_limit(16 << 20);
        let pid = oom_hog(&cg, 64);
        self.wait_for("the barrier's verdict", |l| {
            l["type"] == "verdict" && l["victim"]["pid"] == pid
        });
    }
}

fn dump(lines: &[Value]) -> String {
    lines
        .iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A failed test keeps its recording to look at; others leave none.
        if !std::thread::panicking() {
            let _ = fs::remove_file(&self.recording);
        }
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Verdicts about a given victim pid.
pub fn is_verdict_for(pid: u32) -> impl Fn(&Value) -> bool {
    move |l: &Value| l["type"] == "verdict" && l["victim"]["pid"] == pid
}
