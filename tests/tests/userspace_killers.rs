//! Userspace OOM killers, the real ones (Debian's earlyoom and nohang): a
//! pod-shaped cgroup's process grows until the killer acts, and oomtrace's
//! verdict (`node_pressure`, kind `userspace_oom_killer`) must name the
//! process, the killer and the signals the killer's own log names.
//! systemd-oomd needs systemd as PID 1, which these machines do not run:
//! the core's unit tests cover it from its documented behaviour.
//!
//! Safety, since a killer picks its victim among the processes it sees:
//! - each killer runs as pid 1 of a pid namespace of its own with its own
//!   /proc, so it sees (and can kill) only that namespace's processes:
//!   itself, a shell or `unshare`, and the test's hog; never another
//!   process of the machine;
//! - the hog also has oom_score_adj 1000 and is the killer's preferred
//!   victim (earlyoom `--prefer`; nohang `@BADNESS_ADJ_RE_NAME` and a
//!   `min_badness` only it reaches);
//! - the thresholds come from MemAvailable at the test's start: SIGTERM
//!   300 MiB below it, SIGKILL 500 MiB below; the hog stops at 1200 MiB
//!   (its cgroup's limit, 1400 MiB, is a backstop), far from the host's
//!   real limit;
//! - the killer's namespace is torn down (its `unshare` killed, which
//!   kills its init, and so everything in it) once the test has what it
//!   needs, and on drop, a failed assert included.
//!
//! Needs root (cargo xtask test).

use std::{
    fs,
    io::{BufRead, BufReader, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::Duration,
};

use oomtrace_e2e::{
    bin, is_verdict_for, nspid, pod_path, unique_uid, wait_until, Cgroup, Daemon, Json, DEADLINE,
};

const MIB: u64 = 1 << 20;
/// SIGTERM this far under MemAvailable at the start; SIGKILL at
/// [`KILL_BELOW`].
const TERM_BELOW: u64 = 300 * MIB;
const KILL_BELOW: u64 = 500 * MIB;
/// What the hog allocates at most, and how fast.
const HOG_MIB: u64 = 1200;
const HOG_RATE_MIB_S: u64 = 100;
/// The hog's cgroup limit: a backstop, should no killer act.
const HOG_LIMIT: u64 = 1400 * MIB;

fn meminfo_kib(key: &str) -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or_else(|| panic!("{key} in /proc/meminfo"))
}

/// MemAvailable now, bytes; the test refuses to run with under 2 GiB.
fn mem_available() -> u64 {
    let avail = meminfo_kib("MemAvailable") * 1024;
    assert!(
        avail >= 2048 * MIB,
        "only {} MiB available: this test lets a process take {HOG_MIB} MiB and needs 2 GiB free",
        avail / MIB
    );
    avail
}

fn require(program: &str) -> PathBuf {
    let found = ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| p.exists());
    found.unwrap_or_else(|| {
        panic!("{program} is missing: install Debian's `{program}` (cargo xtask test does)")
    })
}

/// A killer confined to a pid namespace of its own (see the module doc),
/// its output lines (stdout and stderr) kept; the namespace is torn down
/// on drop.
struct Confined {
    unshare: Child,
    log: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
    what: &'static str,
}

impl Confined {
    /// Runs `script` with `args` ($1…) as pid 1 of a new pid namespace
    /// (and mount namespace, with its own /proc).
    fn spawn(what: &'static str, script: &str, args: &[&str]) -> Confined {
        let mut unshare = Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "--kill-child", "--"])
            .args(["sh", "-c", script, "sh"])
            .args(args)
            // Python's prints reach the pipe at once.
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what} under unshare: {e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        let out: [Option<Box<dyn Read + Send>>; 2] = [
            unshare.stdout.take().map(|s| Box::new(s) as _),
            unshare.stderr.take().map(|s| Box::new(s) as _),
        ];
        for stream in out.into_iter().flatten() {
            let log = Arc::clone(&log);
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            }));
        }
        Confined {
            unshare,
            log,
            readers,
            what,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The first line matching `pred`, waiting up to [`DEADLINE`].
    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let mut found = None;
        wait_until(DEADLINE, || {
            found = self.lines().into_iter().find(|l| pred(l));
            found.is_some()
        });
        found.unwrap_or_else(|| {
            panic!(
                "{} never printed {what} within {DEADLINE:?}; its output:\n{}",
                self.what,
                self.lines().join("\n")
            )
        })
    }

    /// The killer's host pid: the namespace's init, `unshare`'s child.
    fn init_pid(&self) -> u32 {
        let pid = self.unshare.id();
        let mut found = None;
        wait_until(DEADLINE, || {
            found = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .ok()
                .and_then(|c| c.split_whitespace().next()?.parse().ok());
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("{} (unshare {pid}) has no child", self.what))
    }

    /// Kills the namespace: `unshare` dies, its child (the namespace's
    /// init) gets SIGKILL, and with it every process in the namespace.
    fn stop(&mut self) {
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

impl Drop for Confined {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The pod's container cgroup (limit [`HOG_LIMIT`]) and the pod's uid.
fn pod() -> (Cgroup, String) {
    let (_, container) = pod_path();
    let c = Cgroup::create(&container);
    c.set_limit(HOG_LIMIT);
    let uid = container
        .split('/')
        .find_map(|p| p.strip_prefix("pod"))
        .expect("a pod uid in the path")
        .to_string();
    (c, uid)
}

/// The hog's host pid, once it joined the container cgroup.
fn hog_in(c: &Cgroup) -> u32 {
    let mut pid = None;
    wait_until(DEADLINE, || {
        pid = c.pids().first().copied();
        pid.is_some()
    });
    let pid = pid.unwrap_or_else(|| panic!("no hog joined {}", c.rel));
    u32::try_from(pid).expect("a pid")
}

/// The pid a process has in the killer's namespace (the second entry of
/// its NSpid: host first).
fn pid_seen_by_killer(host_pid: u32) -> u32 {
    let ns = nspid(host_pid);
    *ns.get(1)
        .unwrap_or_else(|| panic!("pid {host_pid} is in no namespace below the host's: {ns:?}"))
}

fn number_after(line: &str, key: &str) -> Option<u32> {
    let rest = &line[line.find(key)? + key.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// What every userspace killer's verdict says, whoever the killer.
fn assert_killer_verdict(v: &Json, uid: &str, killer: &str, killer_pid: u32) {
    assert_eq!(v["verdict"], "node_pressure", "{v}");
    assert_eq!(v["kind"], "userspace_oom_killer", "{v}");
    assert_eq!(v["pod"]["uid"], uid, "{v}");
    assert!(v["container"]["id"].is_string(), "{v}");
    assert_eq!(v["killer"]["comm"], killer, "{v}");
    assert_eq!(v["killer"]["known_as"], killer, "{v}");
    assert_eq!(v["killer"]["matched_by"], "comm", "{v}");
    assert_eq!(v["killer"]["pid"], killer_pid, "{v}");
    assert_eq!(v["trigger"]["pid"], killer_pid, "{v}");
    assert_eq!(v["kubelet_reports"], false, "never OOMKilled: {v}");
    let n = &v["node_memory"];
    let avail = n["mem_available_bytes"]
        .as_u64()
        .expect("mem_available_bytes");
    assert!(avail > 0, "{v}");
    assert!(
        n["breakdown"].is_object(),
        "the node's memory breakdown: {v}"
    );
    // PSI where the kernel keeps it.
    let psi = fs::read_to_string("/proc/pressure/memory").is_ok();
    assert_eq!(n["psi"]["full_avg10"].is_number(), psi, "{v}");
    let summary = v["summary"].as_str().expect("summary");
    assert!(
        summary.contains("inferred from the sender's identity"),
        "{summary}"
    );
}

/// earlyoom (`earlyoom -M TERM,KILL`) and a container's init that grows:
/// the init has no SIGTERM handler, so earlyoom's SIGTERM is ignored (the
/// kernel drops it for a namespace's init), the growth goes on, and
/// earlyoom escalates to SIGKILL: one verdict with both signals, and the
/// kubelet would show `Error`, exit code 137.
/// One killer at a time: each test's thresholds come from MemAvailable at
/// its start, which another test's hog would move.
static ONE_KILLER: Mutex<()> = Mutex::new(());

#[test]
fn earlyoom_killing_a_containers_init_is_one_userspace_oom_killer_verdict() {
    let earlyoom = require("earlyoom");
    let _one = ONE_KILLER.lock().unwrap_or_else(|e| e.into_inner());
    require("unshare");
    let daemon = Daemon::start(&[]);
    let (container, uid) = pod();
    let avail = mem_available();
    let term_kib = (avail - TERM_BELOW) / 1024;
    let kill_kib = (avail - KILL_BELOW) / 1024;
    // $1 hog, $2 its cgroup.procs, $3 earlyoom, $4 -M's value, $5 $6 the
    // hog's size and rate. The hog is pid 1 of a namespace below the
    // killer's, as a container's init.
    let script = r#"
unshare --pid --fork --kill-child sh -c 'echo 1000 > /proc/self/oom_score_adj && exec "$0" --join "$1" --mib "$2" --rate-mib-s "$3" --sleep 120' "$1" "$2" "$5" "$6" </dev/null >/dev/null 2>&1 &
exec "$3" -M "$4" -s 100,100 -r 0 --prefer '^oomtrace-hog$' --avoid '^(sh|unshare)$'
"#;
    let mut killer = Confined::spawn(
        "earlyoom",
        script,
        &[
            bin("oomtrace-hog").to_str().expect("a UTF-8 path"),
            container.procs().to_str().expect("a UTF-8 path"),
            earlyoom.to_str().expect("a UTF-8 path"),
            &format!("{term_kib},{kill_kib}"),
            &HOG_MIB.to_string(),
            &HOG_RATE_MIB_S.to_string(),
        ],
    );
    let killer_pid = killer.init_pid();
    let hog = hog_in(&container);
    assert_eq!(
        nspid(hog).last(),
        Some(&1),
        "the hog is its namespace's init"
    );
    let hog_ns = pid_seen_by_killer(hog);
    let term = killer.wait_for("its SIGTERM line", |l| {
        l.contains("sending SIGTERM to process")
    });
    // Escalated while it waited for the SIGTERM's effect, or sent anew.
    let escalated = killer.wait_for("its SIGKILL", |l| {
        l.contains("escalating to SIGKILL") || l.contains("sending SIGKILL to process")
    });
    let v = daemon.wait_for("the hog's verdict", is_verdict_for(hog));
    killer.stop();
    assert_eq!(
        number_after(&term, "sending SIGTERM to process"),
        Some(hog_ns),
        "earlyoom chose the hog: {term}"
    );
    assert!(term.contains("\"oomtrace-hog\""), "{term}");
    assert_killer_verdict(&v, &uid, "earlyoom", killer_pid);
    assert_eq!(
        v["killer"]["exe"],
        earlyoom.to_str().expect("a UTF-8 path"),
        "{v}"
    );
    assert_eq!(v["victim"]["ns_pid"], 1, "{v}");
    let signals: Vec<(String, bool)> = v["killer"]["signals"]
        .as_array()
        .expect("signals")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or("").to_string(),
                s["ignored"] == true,
            )
        })
        .collect();
    assert_eq!(
        signals,
        [
            ("SIGTERM".to_string(), true),
            ("SIGKILL".to_string(), false)
        ],
        "{v}"
    );
    assert_eq!(v["evidence"]["basis"], "userspace_killer_identity", "{v}");
    let summary = v["summary"].as_str().expect("summary");
    assert!(summary.contains("exit code 137"), "{summary}");
    // One verdict for the process, no stop line about it.
    assert_eq!(daemon.all(is_verdict_for(hog)).len(), 1);
    assert!(daemon
        .all(|l| l["type"] == "stopped" && l["process"]["pid"] == hog)
        .is_empty());
    println!("earlyoom: {term}\nearlyoom: {escalated}");
    println!("oomtrace: {summary}");
    daemon.finish();
}

/// /proc/meminfo with MemTotal doubled, rewritten in place every 10 ms
/// while it lives: nohang refuses a threshold above half of MemTotal, and
/// half of this machine's memory is no test's to take. Its MemAvailable
/// (what nohang acts on) stays the kernel's own, read each time.
struct DoubledMemTotal {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    writer: Option<JoinHandle<()>>,
}

fn doubled(meminfo: &str) -> String {
    meminfo
        .lines()
        .map(|l| match l.strip_prefix("MemTotal:") {
            Some(v) => {
                let kib: u64 = v
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("MemTotal's value");
                format!("MemTotal:       {:8} kB", kib * 2)
            }
            None => l.to_string(),
        })
        .map(|l| l + "\n")
        .collect()
}

impl DoubledMemTotal {
    fn start() -> DoubledMemTotal {
        let path = std::env::temp_dir().join(format!("oomtrace-e2e-meminfo-{}", unique_uid()));
        let first = doubled(&fs::read_to_string("/proc/meminfo").expect("/proc/meminfo"));
        fs::write(&path, first).expect("writing the meminfo copy");
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (path.clone(), Arc::clone(&stop));
        let writer = std::thread::spawn(move || {
            let Ok(mut f) = fs::OpenOptions::new().write(true).open(&p) else {
                return;
            };
            while !s.load(Ordering::Relaxed) {
                if let Ok(t) = fs::read_to_string("/proc/meminfo") {
                    let t = doubled(&t);
                    // In place, one write: the reader keeps its file open.
                    let _ = f
                        .seek(SeekFrom::Start(0))
                        .and_then(|_| f.write_all(t.as_bytes()));
                    let _ = f.set_len(t.len() as u64);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        DoubledMemTotal {
            path,
            stop,
            writer: Some(writer),
        }
    }
}

impl Drop for DoubledMemTotal {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        let _ = fs::remove_file(&self.path);
    }
}

/// nohang's config: the package's own, with the thresholds in MiB, swap
/// ignored (none on the test machines, or any amount), a faster poll, and
/// a victim only the hog can be.
fn nohang_config(term_mib: u64, kill_mib: u64) -> String {
    let base = fs::read_to_string("/etc/nohang/nohang.conf")
        .expect("nohang's config, /etc/nohang/nohang.conf (Debian's nohang package)");
    let set = [
        ("soft_threshold_min_mem", format!("{term_mib} M")),
        ("hard_threshold_min_mem", format!("{kill_mib} M")),
        ("soft_threshold_min_swap", "100 %".to_string()),
        ("hard_threshold_min_swap", "100 %".to_string()),
        ("max_sleep", "0.5".to_string()),
        ("min_sleep", "0.1".to_string()),
        ("min_badness", "1000".to_string()),
        ("print_victim_status", "True".to_string()),
    ];
    let mut out: Vec<String> = base
        .lines()
        .map(|l| {
            let key = l.split('=').next().unwrap_or("").trim();
            match set.iter().find(|(k, _)| *k == key && !l.starts_with('#')) {
                Some((k, v)) => format!("{k} = {v}"),
                None => l.to_string(),
            }
        })
        .collect();
    for (k, _) in &set {
        assert!(
            out.iter().any(|l| l.starts_with(&format!("{k} = "))),
            "nohang's config has no {k}"
        );
    }
    out.push("@BADNESS_ADJ_RE_NAME 1000 /// ^oomtrace-hog$".to_string());
    out.join("\n") + "\n"
}

/// nohang (`soft_threshold_min_mem`) and a worker process of a container
/// that grows: it dies of nohang's SIGTERM, and the verdict, made once it
/// is gone, says its exit is inferred and that the container's init
/// survived.
#[test]
fn nohang_killing_a_containers_worker_is_a_userspace_oom_killer_verdict() {
    let nohang = require("nohang");
    let _one = ONE_KILLER.lock().unwrap_or_else(|e| e.into_inner());
    require("unshare");
    let daemon = Daemon::start(&[]);
    let (container, uid) = pod();
    let avail = mem_available();
    let config = std::env::temp_dir().join(format!("oomtrace-e2e-nohang-{}.conf", unique_uid()));
    fs::write(
        &config,
        nohang_config((avail - TERM_BELOW) / MIB, (avail - KILL_BELOW) / MIB),
    )
    .expect("writing nohang's config");
    let meminfo = DoubledMemTotal::start();
    // $1 hog, $2 its cgroup.procs, $3 nohang, $4 its config, $5 the
    // meminfo copy, $6 $7 the hog's size and rate.
    let script = r#"
mount --bind "$5" /proc/meminfo || exit 1
sh -c 'echo 1000 > /proc/self/oom_score_adj && exec "$0" --join "$1" --mib "$2" --rate-mib-s "$3" --sleep 120' "$1" "$2" "$6" "$7" </dev/null >/dev/null 2>&1 &
exec "$3" --monitor -c "$4"
"#;
    let mut killer = Confined::spawn(
        "nohang",
        script,
        &[
            bin("oomtrace-hog").to_str().expect("a UTF-8 path"),
            container.procs().to_str().expect("a UTF-8 path"),
            nohang.to_str().expect("a UTF-8 path"),
            config.to_str().expect("a UTF-8 path"),
            meminfo.path.to_str().expect("a UTF-8 path"),
            &HOG_MIB.to_string(),
            &HOG_RATE_MIB_S.to_string(),
        ],
    );
    let killer_pid = killer.init_pid();
    let hog = hog_in(&container);
    let hog_ns = pid_seen_by_killer(hog);
    let chosen = killer.wait_for("the victim it chose", |l| {
        l.contains("PID:") && l.contains("name: oomtrace-hog")
    });
    let sent = killer.wait_for("its SIGTERM", |l| {
        l.contains("Sending SIGTERM to the victim")
    });
    let v = daemon.wait_for("the hog's verdict", is_verdict_for(hog));
    let died = killer.wait_for("the victim's end", |l| {
        l.contains("The victim died in") || l.contains("The victim became a zombie in")
    });
    killer.stop();
    drop(meminfo);
    let _ = fs::remove_file(&config);
    assert_eq!(
        number_after(&chosen, "PID:"),
        Some(hog_ns),
        "nohang chose the hog: {chosen}"
    );
    assert_killer_verdict(&v, &uid, "nohang", killer_pid);
    // A Python script: the comm is its own name, the executable Python's.
    assert!(
        v["killer"]["exe"]
            .as_str()
            .is_some_and(|e| e.contains("python")),
        "{v}"
    );
    assert_ne!(v["victim"]["ns_pid"], 1, "a worker, not the init: {v}");
    let signals: Vec<&str> = v["killer"]["signals"]
        .as_array()
        .expect("signals")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(signals, ["SIGTERM"], "{v}");
    assert_eq!(v["killer"]["signals"][0]["ignored"], false, "{v}");
    assert_eq!(
        v["evidence"]["basis"], "userspace_killer_identity_then_exit",
        "{v}"
    );
    let summary = v["summary"].as_str().expect("summary");
    assert!(summary.contains("init survived"), "{summary}");
    assert_eq!(daemon.all(is_verdict_for(hog)).len(), 1);
    println!("nohang: {}\nnohang: {sent}\nnohang: {died}", chosen.trim());
    println!("oomtrace: {summary}");
    daemon.finish();
}
