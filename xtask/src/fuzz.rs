//! `cargo xtask fuzz`: coverage-guided fuzzing (cargo-fuzz, libFuzzer, the
//! rustup nightly) of every parser that reads kernel or file input, each
//! target for `--seconds`; the runs are recorded in BENCHMARKS.md.
//!
//! The targets live in `fuzz/` (a workspace of its own). Seeds are written
//! fresh from this machine and the repository (recorded ring-buffer
//! records and recordings, tracefs formats, the kernel log, cgroup paths, a
//! small BTF) into `fuzz/corpus/<target>`, which libFuzzer then grows.
//! A crash leaves its input in `fuzz/artifacts/<target>/`: it becomes a unit
//! test next to the parser, with the fix.

use std::{
    fmt::Write as _,
    fs,
    io::Read as _,
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{bail, Context as _};

#[derive(clap::Args, Debug)]
pub struct Opts {
    /// Seconds per target.
    #[arg(long, default_value_t = 600)]
    pub seconds: u64,
    /// Targets fuzzed at once (each is one libFuzzer process: one core).
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Only these targets (comma-separated; default all).
    #[arg(long, value_delimiter = ',')]
    pub targets: Vec<String>,
    /// The report to update (only its fuzz section).
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub out: PathBuf,
}

struct Target {
    name: &'static str,
    what: &'static str,
    /// libFuzzer's -max_len: a little over the largest real input.
    max_len: usize,
}

const TARGETS: &[Target] = &[
    Target {
        name: "event_decode",
        what: "`event::decode`: ring-buffer records (then the cgroup tree applies them)",
        max_len: 2048,
    },
    Target {
        name: "tracefs_format",
        what: "`tracefs::parse_format`: tracepoint format files",
        max_len: 8192,
    },
    Target {
        name: "kmsg",
        what: "`kmsg::parse_record` + `oom_report::parse_oom_line`: /dev/kmsg records",
        max_len: 2048,
    },
    Target {
        name: "explain",
        what: "`explain::explain`: any bytes as a saved kernel log (dmesg, -T, journal, syslog, kmsg records), then the verdicts",
        max_len: 16384,
    },
    Target {
        name: "pods",
        what: "`pods::parse_cgroup_path`, `parse_pod_log_dir`, `parse_container_log_name`, `PodUid`/`ContainerId::parse`",
        max_len: 1024,
    },
    Target {
        name: "btf",
        what: "`btf::Btf::parse` and every lookup the daemon makes (`offsets::from_btf`, tracepoint prototypes, rss layout)",
        max_len: 16384,
    },
    Target {
        name: "kubelet_config",
        what: "`kubelet::parse_config` + `parse_amount`: the kubelet's config",
        max_len: 4096,
    },
    Target {
        name: "record_replay",
        what: "`record::replay`: any bytes as a recording, through the engine",
        max_len: 65536,
    },
    Target {
        name: "proc_files",
        what: "`observe::memory_cgroup_of` (/proc/PID/cgroup) and `state::load` (the state file)",
        max_len: 4096,
    },
];

struct Outcome {
    name: &'static str,
    seconds: f64,
    execs: Option<u64>,
    per_sec: Option<u64>,
    cov: Option<String>,
    corpus: usize,
    crashes: Vec<String>,
    status: String,
}

pub fn run(root: &Path, opts: Opts) -> anyhow::Result<()> {
    let dir = root.join("fuzz");
    if setup_output("cargo", &["+nightly", "--version"]).is_none() {
        bail!("cargo-fuzz needs a nightly toolchain: `rustup toolchain install nightly`");
    }
    if setup_output("cargo", &["+nightly", "fuzz", "--version"]).is_none() {
        eprintln!("fuzz: installing cargo-fuzz from crates.io");
        crate::setup::run("cargo", &["install", "cargo-fuzz", "--locked"])?;
    }
    let targets: Vec<&Target> = TARGETS
        .iter()
        .filter(|t| opts.targets.is_empty() || opts.targets.iter().any(|n| n == t.name))
        .collect();
    if targets.is_empty() {
        bail!(
            "no such target; the targets are: {}",
            TARGETS
                .iter()
                .map(|t| t.name)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for t in &targets {
        let n = seed(root, t.name, &dir.join("corpus").join(t.name))
            .with_context(|| format!("seeding {}", t.name))?;
        eprintln!("fuzz: {}: {n} seeds", t.name);
    }
    let status = Command::new("cargo")
        .current_dir(&dir)
        .args(["+nightly", "fuzz", "build", "-O"])
        .status()
        .context("running cargo fuzz build")?;
    if !status.success() {
        bail!("cargo fuzz build failed ({status})");
    }
    let logs = root.join("target/fuzz-logs");
    fs::create_dir_all(&logs)?;
    let mut outcomes = Vec::new();
    for chunk in targets.chunks(opts.jobs.max(1)) {
        let running: Vec<_> = chunk
            .iter()
            .map(|t| {
                let log = logs.join(format!("{}.log", t.name));
                let started = Instant::now();
                let child = fs::File::create(&log)
                    .context("creating the log")
                    .and_then(|f| {
                        Command::new("cargo")
                            .current_dir(&dir)
                            .args(["+nightly", "fuzz", "run", "-O", t.name, "--"])
                            .arg(format!("-max_total_time={}", opts.seconds))
                            .arg(format!("-max_len={}", t.max_len))
                            .args(["-print_final_stats=1", "-timeout=10", "-rss_limit_mb=2048"])
                            .stdout(Stdio::null())
                            .stderr(f)
                            .spawn()
                            .context("starting cargo fuzz run")
                    });
                eprintln!(
                    "fuzz: {} for {} s (log {})",
                    t.name,
                    opts.seconds,
                    log.display()
                );
                (t, log, started, child)
            })
            .collect();
        for (t, log, started, child) in running {
            let status = match child {
                Ok(mut c) => c
                    .wait()
                    .map(|s| s.to_string())
                    .unwrap_or_else(|e| e.to_string()),
                Err(e) => format!("{e:#}"),
            };
            let text = fs::read_to_string(&log).unwrap_or_default();
            let artifacts = dir.join("artifacts").join(t.name);
            let crashes: Vec<String> = fs::read_dir(&artifacts)
                .map(|es| {
                    es.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| {
                            ["crash-", "leak-", "timeout-", "oom-", "slow-unit-"]
                                .iter()
                                .any(|p| n.starts_with(p))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let o = Outcome {
                name: t.name,
                seconds: started.elapsed().as_secs_f64(),
                execs: stat(&text, "stat::number_of_executed_units:"),
                per_sec: stat(&text, "stat::average_exec_per_sec:"),
                cov: text
                    .lines()
                    .rev()
                    .find(|l| l.contains("cov:"))
                    .and_then(|l| l.split("cov:").nth(1))
                    .and_then(|r| r.split_whitespace().next())
                    .map(str::to_owned),
                corpus: fs::read_dir(dir.join("corpus").join(t.name))
                    .map(|es| es.count())
                    .unwrap_or(0),
                crashes,
                status,
            };
            eprintln!(
                "fuzz: {}: {} executions, {} crash inputs ({})",
                o.name,
                o.execs.map(|e| e.to_string()).unwrap_or_else(|| "?".into()),
                o.crashes.len(),
                o.status
            );
            outcomes.push(o);
        }
    }
    let md = report(&targets, &outcomes, opts.seconds);
    let out = if opts.out.is_absolute() {
        opts.out.clone()
    } else {
        root.join(&opts.out)
    };
    crate::bench::update_block(&out, "fuzz", &md)?;
    print!("{md}");
    if outcomes.iter().any(|o| !o.crashes.is_empty()) {
        bail!("crashing inputs in fuzz/artifacts/: each becomes a unit test next to its parser, with the fix");
    }
    Ok(())
}

fn setup_output(cmd: &str, args: &[&str]) -> Option<String> {
    crate::setup::output(cmd, args)
}

fn stat(log: &str, key: &str) -> Option<u64> {
    log.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(key))
        .and_then(|v| v.trim().parse().ok())
}

fn report(targets: &[&Target], outcomes: &[Outcome], seconds: u64) -> String {
    let date = crate::setup::output("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
        .map(|d| d.trim().to_string())
        .unwrap_or_default();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\
         `cargo xtask fuzz` ({date}): cargo-fuzz (libFuzzer, AddressSanitizer, rustup nightly, `-O` with debug \
         assertions), {seconds} s per target, one target at a time per core on this shared 2-core machine. \
         The targets (fuzz/fuzz_targets) compile oomtrace's own module files, so they fuzz exactly the \
         daemon's code. Seeds are written fresh from this machine and the repository (ring-buffer records \
         and recordings from the replay fixtures, tracefs formats, the kernel log, cgroup paths, a small \
         BTF); the corpora then grow in fuzz/corpus (not committed).\n"
    );
    let _ = writeln!(
        s,
        "| target | input | time | executions | exec/s | coverage (edges) | corpus | crashes |\n| --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for o in outcomes {
        let what = targets
            .iter()
            .find(|t| t.name == o.name)
            .map(|t| t.what)
            .unwrap_or("");
        let _ = writeln!(
            s,
            "| `{}` | {what} | {:.0} s | {} | {} | {} | {} | {} |",
            o.name,
            o.seconds,
            o.execs.map(|e| e.to_string()).unwrap_or_else(|| "?".into()),
            o.per_sec
                .map(|e| e.to_string())
                .unwrap_or_else(|| "?".into()),
            o.cov.clone().unwrap_or_else(|| "?".into()),
            o.corpus,
            if o.crashes.is_empty() {
                "0".to_string()
            } else {
                format!("**{}**: {}", o.crashes.len(), o.crashes.join(", "))
            }
        );
    }
    s
}

// ---------------------------------------------------------------------------
// Seeds.

fn seed(root: &Path, target: &str, corpus: &Path) -> anyhow::Result<usize> {
    fs::create_dir_all(corpus).with_context(|| format!("creating {}", corpus.display()))?;
    let fixtures = root.join("oomtrace/tests/fixtures");
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    match target {
        "event_decode" => {
            for rec in recordings(&fixtures) {
                for line in rec.split(|&b| b == b'\n') {
                    let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
                        continue;
                    };
                    if let Some(b) = v["input"]["Kernel"].as_str().and_then(base64_decode) {
                        seeds.push(b);
                    }
                }
            }
            // One of each record kind is plenty: keep the first 64.
            seeds.sort();
            seeds.dedup();
            seeds.truncate(64);
        }
        "tracefs_format" => {
            for tp in [
                "oom/mark_victim",
                "signal/signal_generate",
                "cgroup/cgroup_mkdir",
                "cgroup/cgroup_attach_task",
                "memcg/mod_memcg_lruvec_state",
                "vmscan/mm_vmscan_memcg_reclaim_begin",
                "sched/sched_process_exit",
            ] {
                for base in ["/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events"] {
                    if let Ok(b) = fs::read(format!("{base}/{tp}/format")) {
                        seeds.push(b);
                        break;
                    }
                }
            }
        }
        "kmsg" => {
            seeds.extend(kmsg_records());
            seeds.push(b"3,1234,5678,-;Memory cgroup out of memory: Killed process 42 (hog) total-vm:70000kB, anon-rss:65000kB, file-rss:1000kB, shmem-rss:0kB, UID:0 pgtables:200kB oom_score_adj:0\n".to_vec());
            seeds.push(b"6,1235,5679,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kubepods/pod1,task_memcg=/kubepods/pod1/c1,task=hog,pid=42,uid=0\n".to_vec());
        }
        "explain" => {
            let dir = root.join("oomtrace/tests/fixtures/explain");
            let mut files: Vec<PathBuf> = fs::read_dir(&dir)
                .map(|es| es.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            files.sort();
            for f in files {
                if let Ok(b) = fs::read(&f) {
                    // Whole reports within -max_len.
                    seeds.push(b.into_iter().take(16384).collect());
                }
            }
        }
        "pods" => {
            for p in cgroup_paths().into_iter().take(200) {
                seeds.push(p.into_bytes());
            }
            for s in [
                "/kubepods/burstable/pod6f1c2a9e-3b7d-4c11-9e0a-2b8f5d4c7a10/3f9a1c0b7e2d4f6a8b1c3d5e7f9a0b2c4d6e8f0a1b3c5d7e9f1a2b3c4d5e6f70",
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod6f1c2a9e_3b7d_4c11_9e0a_2b8f5d4c7a10.slice/cri-containerd-3f9a1c0b7e2d4f6a8b1c3d5e7f9a0b2c4d6e8f0a1b3c5d7e9f1a2b3c4d5e6f70.scope",
                "/kubepods.slice/kubepods-pod6f1c2a9e_3b7d_4c11_9e0a_2b8f5d4c7a10.slice/crio-3f9a1c0b7e2d4f6a8b1c3d5e7f9a0b2c4d6e8f0a1b3c5d7e9f1a2b3c4d5e6f70.scope",
                "/kubepods/pod6f1c2a9e-3b7d-4c11-9e0a-2b8f5d4c7a10/docker-3f9a1c0b7e2d4f6a8b1c3d5e7f9a0b2c4d6e8f0a1b3c5d7e9f1a2b3c4d5e6f70.scope",
                "default_web-0_6f1c2a9e-3b7d-4c11-9e0a-2b8f5d4c7a10",
                "web-0_default_app-3f9a1c0b7e2d4f6a8b1c3d5e7f9a0b2c4d6e8f0a1b3c5d7e9f1a2b3c4d5e6f70.log",
            ] {
                seeds.push(s.as_bytes().to_vec());
            }
        }
        "btf" => {
            seeds.push(small_btf(false));
            seeds.push(small_btf(true));
        }
        "kubelet_config" => {
            for s in [
                "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nevictionHard:\n  memory.available: \"100Mi\"\n  nodefs.available: \"10%\"\n",
                "evictionHard:\n  memory.available: 5%\n",
                "{\"kind\":\"KubeletConfiguration\",\"evictionHard\":{\"memory.available\":\"1.5Gi\"}}",
                "evictionHard: {}\n",
                "",
            ] {
                seeds.push(s.as_bytes().to_vec());
            }
        }
        "record_replay" => seeds.extend(recordings(&fixtures)),
        "proc_files" => {
            if let Ok(b) = fs::read("/proc/self/cgroup") {
                seeds.push(b);
            }
            let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
            seeds.push(
                format!(
                    "{{\"boot_id\":\"{}\",\"kmsg_seq\":1234,\"oom_kill\":7}}",
                    boot.trim()
                )
                .into_bytes(),
            );
            seeds.push(b"0::/kubepods/burstable/pod1/c1\n".to_vec());
        }
        other => bail!("no seeds for {other}"),
    }
    for (i, s) in seeds.iter().enumerate() {
        fs::write(corpus.join(format!("seed-{i:04}")), s)?;
    }
    Ok(seeds.len())
}

fn recordings(fixtures: &Path) -> Vec<Vec<u8>> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(fixtures)
        .map(|es| {
            es.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "rec"))
                .filter_map(|p| fs::read(&p).ok().map(|b| (p, b)))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out.into_iter().map(|(_, b)| b).collect()
}

/// The kernel log's current records, one read(2) each, without blocking.
fn kmsg_records() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let Ok(mut f) = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
    else {
        return out;
    };
    let mut buf = vec![0u8; 8192];
    let mut others = 0;
    for _ in 0..100_000 {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let rec = &buf[..n];
                let text = String::from_utf8_lossy(rec);
                let oomish = ["oom", "Killed process", "Memory cgroup", "memory:"]
                    .iter()
                    .any(|k| text.contains(k));
                if (oomish && out.len() < 60) || (!oomish && others < 20) {
                    if !oomish {
                        others += 1;
                    }
                    out.push(rec.to_vec());
                }
            }
            // EPIPE: a record was overwritten under us; go on.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(_) => break,
        }
    }
    out
}

fn cgroup_paths() -> Vec<String> {
    let root = PathBuf::from("/sys/fs/cgroup/memory");
    let root = if root.is_dir() {
        root
    } else {
        PathBuf::from("/sys/fs/cgroup")
    };
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        if let Ok(rel) = dir.strip_prefix(&root) {
            out.push(format!("/{}", rel.display()));
        }
        if let Ok(es) = fs::read_dir(&dir) {
            for e in es.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
    }
    out.sort();
    out
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c)? << (18 - 6 * i);
        }
        let n = chunk.len().saturating_sub(1);
        for i in 0..n {
            out.push((acc >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

/// A miniature kernel BTF: the structs, enums and tracepoint prototype the
/// daemon looks up at start, so mutations start from a parse that succeeds.
fn small_btf(with_rss: bool) -> Vec<u8> {
    const INT: u32 = 1;
    const PTR: u32 = 2;
    const ARRAY: u32 = 3;
    const STRUCT: u32 = 4;
    const ENUM: u32 = 6;
    const TYPEDEF: u32 = 8;
    const FUNC: u32 = 12;
    const FUNC_PROTO: u32 = 13;
    struct B {
        types: Vec<u8>,
        strings: Vec<u8>,
        next: u32,
    }
    impl B {
        fn s(&mut self, name: &str) -> u32 {
            if name.is_empty() {
                return 0;
            }
            let off = self.strings.len() as u32;
            self.strings.extend_from_slice(name.as_bytes());
            self.strings.push(0);
            off
        }
        fn w(&mut self, v: u32) {
            self.types.extend_from_slice(&v.to_ne_bytes());
        }
        fn head(&mut self, name: &str, kind: u32, vlen: u32, size_or_type: u32) -> u32 {
            let n = self.s(name);
            self.w(n);
            self.w(kind << 24 | vlen);
            self.w(size_or_type);
            self.next += 1;
            self.next
        }
        fn int(&mut self, name: &str, size: u32) -> u32 {
            let id = self.head(name, INT, 0, size);
            self.w(size * 8);
            id
        }
        fn strukt(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
            let id = self.head(name, STRUCT, members.len() as u32, size);
            for &(m, ty, bits) in members {
                let n = self.s(m);
                self.w(n);
                self.w(ty);
                self.w(bits);
            }
            id
        }
    }
    let mut b = B {
        types: Vec::new(),
        strings: vec![0],
        next: 0,
    };
    let int = b.int("int", 4);
    let long = b.int("long int", 8);
    let ch = b.int("char", 1);
    let comm = b.head("", ARRAY, 0, 0);
    b.w(ch);
    b.w(int);
    b.w(16);
    let css = b.strukt(
        "cgroup_subsys_state",
        16,
        &[("cgroup", 0, 0), ("parent", 0, 64)],
    );
    let memcg = b.strukt("mem_cgroup", 64, &[("css", css, 0), ("memory", long, 128)]);
    let memcg_ptr = b.head("", PTR, 0, memcg);
    let task = b.strukt(
        "task_struct",
        256,
        &[
            ("pid", int, 0),
            ("tgid", int, 32),
            ("comm", comm, 64),
            ("memcg", memcg_ptr, 192),
        ],
    );
    let task_ptr = b.head("", PTR, 0, task);
    if with_rss {
        let rss = b.head("", ARRAY, 0, 0);
        b.w(long);
        b.w(int);
        b.w(4);
        b.strukt(
            "mm_struct",
            128,
            &[("total_vm", long, 0), ("rss_stat", rss, 64)],
        );
    }
    let e = b.head("", ENUM, 3, 4);
    for (name, v) in [
        ("MM_FILEPAGES", 0u32),
        ("MM_ANONPAGES", 1),
        ("MM_SHMEMPAGES", 3),
    ] {
        let n = b.s(name);
        b.w(n);
        b.w(v);
    }
    let _ = e;
    let void_ptr = b.head("", PTR, 0, 0);
    let proto = b.head("", FUNC_PROTO, 2, 0);
    b.w(0);
    b.w(void_ptr);
    b.w(0);
    b.w(task_ptr);
    let proto_ptr = b.head("", PTR, 0, proto);
    b.head("btf_trace_mark_victim", TYPEDEF, 0, proto_ptr);
    b.head("oom_kill_process", FUNC, 0, proto);
    let mut out = Vec::new();
    out.extend_from_slice(&0xeb9fu16.to_ne_bytes());
    out.push(1);
    out.push(0);
    for v in [
        24u32,
        0,
        b.types.len() as u32,
        b.types.len() as u32,
        b.strings.len() as u32,
    ] {
        out.extend_from_slice(&v.to_ne_bytes());
    }
    out.extend_from_slice(&b.types);
    out.extend_from_slice(&b.strings);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_known_values() {
        assert_eq!(base64_decode("aGVsbG8=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(base64_decode("AAEC").as_deref(), Some(&[0u8, 1, 2][..]));
        assert_eq!(base64_decode("a!"), None);
    }
}
