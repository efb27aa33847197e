//! The oomtrace daemon as a child process, its JSON lines collected as they
//! come, each stamped with CLOCK_REALTIME when it was read (before it is
//! parsed). [`Launch`] starts any build of it with any arguments (the
//! bench: the release build's `oomtrace run`); [`Daemon::start`] is the
//! end-to-end tests' `oomtrace record`, whose [`Daemon::finish`] checks
//! that replaying the recording gives the same lines.

use std::{
    ffi::OsStr,
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};
use serde_json::Value;

use crate::{bin, oom_hog, require_root, unique_uid, wait_until, Cgroup, DEADLINE};

/// A line the daemon printed.
#[derive(Clone, Debug)]
pub struct Line {
    /// CLOCK_REALTIME (ns since the epoch) when this process read the line.
    pub at_ns: i128,
    pub v: Value,
}

/// CLOCK_REALTIME, ns since the epoch: the clock the daemon's `time`
/// fields are on.
pub fn realtime_ns() -> i128 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)
}

/// What the reader thread has collected.
#[derive(Default)]
struct Collected {
    lines: Vec<Line>,
    /// The first line that was not JSON (the daemon's stdout is JSON lines
    /// only: docs/schema.md).
    not_json: Option<String>,
    /// The daemon's stdout is closed: no line will come.
    ended: bool,
}

#[derive(Default)]
struct Shared {
    collected: Mutex<Collected>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Collected> {
        // A test that failed while holding the lock poisons it; the lines
        // are still whole (pushes cannot fail halfway).
        self.collected.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How to start a daemon: the program (under a wrapper or not), its
/// arguments, where its stdout goes. [`Launch::spawn`] starts it and waits
/// for its `ready` line; stderr is inherited.
pub struct Launch {
    command: Command,
    program: PathBuf,
    stdout_file: Option<PathBuf>,
    on_reader_start: Option<Box<dyn FnOnce() + Send>>,
    ready_within: Duration,
}

impl Launch {
    /// `program` under `wrapper`, a command that execs the rest of its
    /// arguments (`chrt -f 10`, `setpriv ...`); empty: `program` itself.
    pub fn new(wrapper: &[&str], program: &Path) -> Launch {
        let mut command = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(program);
                c
            }
            None => Command::new(program),
        };
        command.stderr(Stdio::inherit());
        Launch {
            command,
            program: program.to_path_buf(),
            stdout_file: None,
            on_reader_start: None,
            ready_within: DEADLINE,
        }
    }

    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Launch {
        self.command.arg(arg);
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut Launch
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command.args(args);
        self
    }

    /// stdout to `file`, which nobody reads while the daemon runs (like
    /// /dev/null, but the ready line can still be seen); removed when the
    /// daemon is stopped. Default: a pipe, read line by line.
    pub fn stdout_file(&mut self, file: PathBuf) -> &mut Launch {
        self.stdout_file = Some(file);
        self
    }

    /// An environment variable for the daemon (e.g. `OOMTRACE_LOG`).
    pub fn env(&mut self, key: &str, value: &str) -> &mut Launch {
        self.command.env(key, value);
        self
    }

    /// stderr to `file` (default: inherited), kept after the daemon stops.
    pub fn stderr_file(&mut self, file: &Path) -> anyhow::Result<&mut Launch> {
        let f = std::fs::File::create(file)
            .map_err(|e| anyhow::anyhow!("creating {}: {e}", file.display()))?;
        self.command.stderr(f);
        Ok(self)
    }

    /// Run on the line reader's thread before it reads (e.g. to give it a
    /// real-time priority).
    pub fn on_reader_start(&mut self, f: impl FnOnce() + Send + 'static) -> &mut Launch {
        self.on_reader_start = Some(Box::new(f));
        self
    }

    /// How long the `ready` line may take (default [`DEADLINE`]).
    pub fn ready_within(&mut self, limit: Duration) -> &mut Launch {
        self.ready_within = limit;
        self
    }

    pub fn spawn(&mut self) -> anyhow::Result<Daemon> {
        match &self.stdout_file {
            Some(f) => {
                let file =
                    fs::File::create(f).with_context(|| format!("creating {}", f.display()))?;
                self.command.stdout(file);
            }
            None => {
                self.command.stdout(Stdio::piped());
            }
        }
        let spawned = Instant::now();
        let mut child = self
            .command
            .spawn()
            .with_context(|| format!("starting {}", self.program.display()))?;
        let shared = Arc::new(Shared::default());
        let reader = child.stdout.take().map(|stdout| {
            let sink = Arc::clone(&shared);
            let on_start = self.on_reader_start.take();
            std::thread::spawn(move || read_lines(stdout, &sink, on_start))
        });
        let mut d = Daemon {
            child,
            shared,
            reader,
            out_file: self.stdout_file.clone(),
            recording: None,
            ready_after: Duration::ZERO,
            agent_cgroup: None,
        };
        let limit = self.ready_within;
        match &d.out_file {
            None => {
                d.wait_for_line("the ready status line", limit, is_ready)?;
            }
            Some(f) => {
                let mut exited = None;
                let ok = wait_until(limit, || {
                    exited = d.child.try_wait().ok().flatten();
                    exited.is_some()
                        || fs::read_to_string(f).is_ok_and(|t| t.contains(r#""state":"ready""#))
                });
                if let Some(status) = exited {
                    bail!("oomtrace exited before it was ready ({status})");
                }
                if !ok {
                    bail!("oomtrace was not ready within {limit:?}");
                }
            }
        }
        d.ready_after = spawned.elapsed();
        Ok(d)
    }
}

fn read_lines(
    stdout: impl std::io::Read,
    sink: &Shared,
    on_start: Option<Box<dyn FnOnce() + Send>>,
) {
    if let Some(f) = on_start {
        f();
    }
    let mut r = BufReader::new(stdout);
    let mut buf = String::new();
    loop {
        buf.clear();
        match r.read_line(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        // Stamped first, parsed after: parsing is not latency.
        let at_ns = realtime_ns();
        let parsed = serde_json::from_str::<Value>(&buf);
        let mut c = sink.lock();
        match parsed {
            Ok(v) => c.lines.push(Line { at_ns, v }),
            Err(e) => {
                if c.not_json.is_none() {
                    c.not_json = Some(format!("{e}: {}", buf.trim_end()));
                }
            }
        }
        sink.changed.notify_all();
    }
    sink.lock().ended = true;
    sink.changed.notify_all();
}

fn is_ready(l: &Value) -> bool {
    l["type"] == "status" && l["state"] == "ready"
}

/// A running oomtrace daemon and the lines it printed so far. Dropped, it
/// is stopped (SIGTERM, then SIGKILL after 10 s).
pub struct Daemon {
    child: Child,
    shared: Arc<Shared>,
    reader: Option<JoinHandle<()>>,
    out_file: Option<PathBuf>,
    /// `oomtrace record`'s file (the end-to-end tests').
    recording: Option<PathBuf>,
    ready_after: Duration,
    /// The cgroup a daemon started in a private cgroup namespace runs in
    /// (`OOMTRACE_E2E_CGROUPNS`); removed after it stops.
    agent_cgroup: Option<crate::Cgroup>,
}

impl Daemon {
    /// Starts `oomtrace record` with `args` and waits for the `ready` line.
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
    ///
    /// With `OOMTRACE_E2E_CGROUPNS=1` oomtrace runs as containerd runs a
    /// DaemonSet's container on a cgroup v2 node (and v1 hierarchies are
    /// namespaced alike): in a cgroup of its own, in a private cgroup
    /// namespace rooted there, so /proc/PID/cgroup reads `/../..`-relative
    /// paths; every path it reports must still be the node's.
    pub fn start_wrapped(wrapper: &[&str], args: &[&str]) -> Daemon {
        require_root();
        let agent_cgroup = std::env::var("OOMTRACE_E2E_CGROUPNS")
            .is_ok_and(|v| v == "1")
            .then(|| crate::Cgroup::create(&format!("oomtrace-agent-{}", unique_uid())));
        let namespaced: Vec<String>;
        let wrapper: Vec<&str> = match &agent_cgroup {
            Some(cg) => {
                // Into its cgroup first, then a namespace rooted there.
                namespaced = [
                    "sh".to_owned(),
                    "-c".to_owned(),
                    format!("echo $$ > {} && exec \"$@\"", cg.procs().display()),
                    "sh".to_owned(),
                    "unshare".to_owned(),
                    "--cgroup".to_owned(),
                ]
                .into_iter()
                .chain(wrapper.iter().map(|w| (*w).to_owned()))
                .collect();
                namespaced.iter().map(String::as_str).collect()
            }
            None => wrapper.to_vec(),
        };
        let wrapper = wrapper.as_slice();
        let own_hooks = args
            .iter()
            .any(|a| *a == "--hooks" || a.starts_with("--hooks="));
        let env_hooks = std::env::var("OOMTRACE_E2E_HOOKS")
            .ok()
            .filter(|h| !own_hooks && !h.trim().is_empty());
        let recording = std::env::temp_dir().join(format!("oomtrace-e2e-{}.rec", unique_uid()));
        let mut launch = Launch::new(wrapper, &bin("oomtrace"));
        launch
            .arg("record")
            .arg(&recording)
            .args(["--node-name", "e2e-node"]);
        // Its own state, and no report of kills from before it started,
        // unless the test is about exactly that.
        if !args.contains(&"--state-file") {
            launch
                .args(["--backlog", "off", "--state-file"])
                .arg(recording.with_extension("state"));
        }
        if let Some(h) = &env_hooks {
            launch.args(["--hooks", h]);
        }
        let mut d = launch
            .args(args)
            .spawn()
            .unwrap_or_else(|e| panic!("starting oomtrace: {e:#}"));
        d.recording = Some(recording);
        let ready = d.wait_for("the ready status line", is_ready);
        assert_eq!(ready["schema_version"], 1);
        assert_eq!(ready["node"], "e2e-node");
        match &agent_cgroup {
            Some(cg) => assert_eq!(
                ready["cgroup"]["namespace"]["root"],
                cg.rel.as_str(),
                "oomtrace in a private cgroup namespace rooted at its own cgroup: {ready}"
            ),
            None => assert_eq!(ready["cgroup"]["namespace"], Value::Null, "{ready}"),
        }
        d.agent_cgroup = agent_cgroup;
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

    /// Spawn → the ready line seen.
    pub fn ready_after(&self) -> Duration {
        self.ready_after
    }

    /// The hook `family` took, from the ready status line (None: no hook
    /// of that family attached).
    pub fn hook(&self, family: &str) -> Option<String> {
        let ready = self.wait_for("the ready status line", is_ready);
        let choice = ready["hooks"]
            .as_array()
            .and_then(|h| h.iter().find(|c| c["family"] == family))
            .cloned()
            .unwrap_or_else(|| panic!("no `{family}` family in the status line: {ready}"));
        choice["chosen"].as_str().map(str::to_owned)
    }

    /// Where a memcg verdict's constraint may come from with the hooks this
    /// kernel gave: `struct oom_control` when the per-OOM hook attached,
    /// else the kernel's summary line or the memcg page counters read at
    /// the kill (BTF is present on every kernel tested here).
    pub fn expected_constraint_sources(&self) -> &'static [&'static str] {
        // Kernel-log mode (no victim hook): each verdict rests on the
        // kernel's report alone, whatever the per-OOM hook saw.
        if self.hook("victim").is_none() {
            return &["kernel_log"];
        }
        match self.hook("oom") {
            Some(_) => &["oom_control"],
            // The kernel's summary line when it was read in time, else the
            // counters (the kernel rate-limits its OOM reports).
            None => &["kernel_log", "memcg_counters"],
        }
    }

    /// The first line matching `pred`, waiting up to [`DEADLINE`]; panics
    /// (with every line so far) when none comes.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        match self.wait_for_line(what, DEADLINE, pred) {
            Ok(l) => l.v,
            Err(e) => panic!(
                "waiting for {what}: {e:#}; lines so far:\n{}",
                dump(&self.shared.lock().lines)
            ),
        }
    }

    /// The first line matching `pred`, waiting up to `limit`; an error when
    /// none came by then, the output ended, or a line was not JSON.
    pub fn wait_for_line(
        &self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Line> {
        let deadline = Instant::now() + limit;
        let mut c = self.shared.lock();
        loop {
            if let Some(l) = c.lines.iter().find(|l| pred(&l.v)) {
                return Ok(l.clone());
            }
            if let Some(bad) = &c.not_json {
                bail!("oomtrace printed a line that is not JSON ({bad})");
            }
            if c.ended {
                bail!("oomtrace's output ended without {what}");
            }
            let now = Instant::now();
            if now >= deadline {
                bail!("oomtrace printed no {what} within {limit:?}");
            }
            c = self
                .shared
                .changed
                .wait_timeout(c, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Every line so far matching `pred`.
    pub fn all(&self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.shared
            .lock()
            .lines
            .iter()
            .filter(|l| pred(&l.v))
            .map(|l| l.v.clone())
            .collect()
    }

    /// Every line so far, with the time each was read.
    pub fn lines(&self) -> Vec<Line> {
        self.shared.lock().lines.clone()
    }

    /// How many lines so far.
    pub fn line_count(&self) -> usize {
        self.shared.lock().lines.len()
    }

    /// The daemon's CPU time so far (user + system), ns.
    pub fn cpu_ns(&self) -> u64 {
        proc_cpu_ns(self.pid()).unwrap_or(0)
    }

    /// (VmRSS, VmHWM) in KiB.
    pub fn rss_kib(&self) -> (u64, u64) {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Waits until the daemon's start-up work (the kernel log's backlog,
    /// the first reads) is over: its CPU time stands still for 200 ms.
    pub fn settle(&self) {
        let mut last = self.cpu_ns();
        let mut still = 0;
        wait_until(Duration::from_secs(10), || {
            std::thread::sleep(Duration::from_millis(100));
            let now = self.cpu_ns();
            still = if now == last { still + 1 } else { 0 };
            last = now;
            still >= 2
        });
    }

    /// SIGTERM, and the clean exit the daemon owes it.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.terminate()
    }

    fn terminate(&mut self) -> anyhow::Result<()> {
        crate::kill(self.child.id() as i32, rustix::process::Signal::TERM);
        let mut status = None;
        wait_until(Duration::from_secs(20), || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        let Some(status) = status else {
            bail!("oomtrace did not exit within 20 s of SIGTERM");
        };
        // Exited: its stdout is closed, the reader ends.
        if let Some(r) = self.reader.take() {
            if r.join().is_err() {
                bail!("the line reader thread panicked");
            }
        }
        if let Some(f) = self.out_file.take() {
            let _ = fs::remove_file(f);
        }
        if !status.success() {
            bail!("oomtrace exited with {status} on SIGTERM");
        }
        if let Some(bad) = &self.shared.lock().not_json {
            bail!("oomtrace printed a line that is not JSON ({bad})");
        }
        Ok(())
    }

    /// Stops the daemon with SIGTERM (it must exit 0 and say `stopping`),
    /// then replays its recording: the replay must print exactly the lines
    /// the live daemon printed after its status line.
    pub fn finish(mut self) {
        if let Err(e) = self.terminate() {
            panic!("{e:#}");
        }
        let recording = self
            .recording
            .clone()
            .expect("finish is for daemons started by Daemon::start (oomtrace record)");
        let live: Vec<Value> = self.all(|l| l["type"] != "status");
        let stopping = self.all(|l| l["type"] == "status" && l["state"] == "stopping");
        assert_eq!(stopping.len(), 1, "one stopping status line on SIGTERM");
        let out = Command::new(bin("oomtrace"))
            .arg("replay")
            .arg(&recording)
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
            recording.display()
        );
        // `cargo xtask fixtures` keeps the recordings as replay fixtures.
        if let Some(dir) = std::env::var_os("OOMTRACE_E2E_FIXTURES") {
            let name = std::thread::current()
                .name()
                .unwrap_or("unnamed")
                .replace("::", "-");
            let dest = PathBuf::from(dir).join(format!("{name}.rec"));
            fs::copy(&recording, &dest)
                .unwrap_or_else(|e| panic!("keeping {}: {e}", dest.display()));
        }
        let _ = fs::remove_file(&recording);
    }

    /// A barrier: causes an OOM kill in a fresh host cgroup and waits for its
    /// verdict. Events are delivered in order, so every verdict caused
    /// before this call has been printed once it returns.
    /// The first heartbeat at least `secs` s after the latest one printed so
    /// far: what the daemon says once a deadline of its own has passed
    /// (start it with a short `--heartbeat`).
    pub fn heartbeat_after(&self, secs: u64) -> Value {
        let now = self
            .all(|l| l["type"] == "heartbeat")
            .last()
            .and_then(|b| b["uptime_s"].as_u64())
            .unwrap_or(0);
        self.wait_for("a heartbeat past the deadline", |l| {
            l["type"] == "heartbeat" && l["uptime_s"].as_u64().is_some_and(|u| u >= now + secs)
        })
    }

    pub fn barrier(&self) {
        let cg = Cgroup::create(&format!("oomtrace-barrier-{}", unique_uid()));
        cg.set_limit(16 << 20);
        let pid = oom_hog(&cg, 64);
        self.wait_for("the barrier's verdict", |l| {
            l["type"] == "verdict" && l["victim"]["pid"] == pid
        });
    }
}

fn dump(lines: &[Line]) -> String {
    lines
        .iter()
        .map(|l| l.v.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(f) = self.out_file.take() {
            let _ = fs::remove_file(f);
        }
        // A failed test keeps its recording to look at; others leave none.
        if let Some(rec) = &self.recording {
            if !std::thread::panicking() {
                let _ = fs::remove_file(rec);
            }
        }
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        crate::kill(self.child.id() as i32, rustix::process::Signal::TERM);
        if !wait_until(Duration::from_secs(10), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        }) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A process's CPU time (utime + stime from /proc/PID/stat), ns, at
/// clock-tick resolution.
pub fn proc_cpu_ns(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces and parens).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let hz = rustix::param::clock_ticks_per_second().max(1);
    Some((utime + stime) * 1_000_000_000 / hz)
}
