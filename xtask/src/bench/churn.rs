//! churn: cgroup mkdir/rmdir at the machine's top rate; lost events, the
//! node model against a walk of cgroupfs. churn-v2: the same inside
//! Debian's 6.1 kernel (cgroup v2) in the TCG VM of `cargo xtask vm-test`:
//! the guest runs the churn section through the hidden `xtask bench-guest`
//! ([`super::guest`]) and hands its report back as JSON.

use std::{
    fmt::Write as _,
    fs,
    path::Path,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};
use oomtrace_e2e::{memory_root, pod_path, wait_until, Cgroup, Daemon, Line};
use serde_json::json;

use super::{lost_count, Bench, Out, Report, Target};

/// The first heartbeat after the lines the daemon printed so far, waiting
/// up to 5 s.
fn next_heartbeat(d: &Daemon) -> Option<Line> {
    let seen = d.line_count();
    let mut beat = None;
    wait_until(Duration::from_secs(5), || {
        beat = d.lines()[seen..]
            .iter()
            .find(|l| l.v["type"] == "heartbeat")
            .cloned();
        beat.is_some()
    });
    beat
}

/// Every cgroup directory in the memory hierarchy, the root included.
fn walk_cgroups() -> usize {
    let (root, _) = memory_root();
    let mut n = 0;
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        n += 1;
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    n
}

/// mkdir + rmdir of fresh container-shaped cgroups under `parent`, from
/// `threads` threads, for `secs`: pairs done.
fn churn_for(parent: &Path, threads: usize, secs: f64) -> u64 {
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (stop, done) = (&stop, &done);
            s.spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let dir = parent.join(format!("{t:08x}{i:056x}"));
                    if fs::create_dir(&dir).is_ok() && fs::remove_dir(&dir).is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
            });
        }
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
    });
    done.load(Ordering::Relaxed)
}

pub(super) fn run(b: &Bench) -> anyhow::Result<Report> {
    let secs = b.size(60.0, 10.0);
    let probe = b.size(3.0, 1.0);
    let (pod_rel, _) = pod_path();
    let pod = Cgroup::try_create(&pod_rel)?;
    // The machine's top rate first, without oomtrace: 1..=4 threads.
    let mut best = (0usize, 0.0f64);
    let mut probes = Vec::new();
    for threads in 1..=4 {
        let n = churn_for(&pod.dir, threads, probe);
        let rate = n as f64 / probe;
        probes.push(format!("{threads} thread(s): {rate:.0}/s"));
        if rate > best.1 {
            best = (threads, rate);
        }
    }
    let threads = best.0;
    // A heartbeat a second (the default is 60 s) to read the model's size.
    let d = b.daemon(&["--heartbeat", "1s"], Out::Pipe)?;
    d.settle();
    let cpu0 = d.cpu_ns();
    let started = Instant::now();
    let pairs = churn_for(&pod.dir, threads, secs);
    let elapsed = started.elapsed();
    let cpu1 = d.cpu_ns();
    let rate = pairs as f64 / elapsed.as_secs_f64();
    let daemon_pct = cpu1.saturating_sub(cpu0) as f64 / elapsed.as_nanos() as f64 * 100.0;
    // The model against a walk: a walk, the next heartbeat, a walk; when the
    // two walks agree nothing changed around the beat, and the beat's count
    // must equal them. Other people's tests make cgroups too: retry.
    let mut comparisons = Vec::new();
    let mut matched = false;
    // Beats computed while the churn's last events were still queued are
    // not a fair comparison: start two beats later.
    for _ in 0..2 {
        next_heartbeat(&d);
    }
    for _ in 0..20 {
        let w1 = walk_cgroups();
        let beat = next_heartbeat(&d);
        let w2 = walk_cgroups();
        let Some(hb) = beat else {
            bail!("no heartbeat within 5 s");
        };
        let model = hb.v["cgroups"]
            .as_u64()
            .context("heartbeat without `cgroups`")?;
        if w1 == w2 {
            comparisons.push(format!("walk {w1}, model {model}"));
            if model as usize == w1 {
                matched = true;
                break;
            }
        }
    }
    let lines = d.lines();
    d.stop()?;
    let lost: Vec<String> = lines
        .iter()
        .filter(|l| l.v["type"] == "lost")
        .map(|l| format!("{}: {}", l.v["hook"], l.v["count"]))
        .collect();
    let lost_total = lost_count(&lines);
    let events = lines
        .iter()
        .rev()
        .find(|l| l.v["type"] == "heartbeat")
        .and_then(|l| l.v["events"].as_u64())
        .unwrap_or(0);
    fs::write(
        b.raw.join("churn.json"),
        serde_json::to_vec_pretty(&json!({
            "threads": threads, "pairs": pairs, "seconds": elapsed.as_secs_f64(), "probes": probes,
            "daemon_cpu_pct": daemon_pct, "lost": lost, "comparisons": comparisons, "events": events,
        }))?,
    )?;
    let mut body = String::new();
    let _ = writeln!(
        body,
        "\
         Method: the machine's top mkdir/rmdir rate is found first without oomtrace ({}); then, with the best \
         thread count, `oomtrace run --heartbeat 1s` (default flags but the heartbeat, whose line carries the \
         model's cgroup count) watches {secs:.0} s of mkdir + rmdir of fresh container cgroups in one pod cgroup. \
         Lost events are the `lost` lines (ring-buffer reservation failures, per hook). The node model is then \
         compared with a fresh walk of cgroupfs: walk, next heartbeat, walk; when both walks agree, the \
         heartbeat's `cgroups` (the model's live cgroups) must equal them (retried while other people's tests \
         change the hierarchy). A count catches a missed mkdir (too few) or rmdir (too many), \
         not one of each; with 0 events lost neither can happen.\n",
        probes.join(", ")
    );
    let _ = writeln!(
        body,
        "| threads | duration | mkdir+rmdir pairs | rate | events handled | `lost` | model vs walk | daemon CPU |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n\
         | {threads} | {:.1} s | {pairs} | **{rate:.0} pairs/s** | {events} | {} | {} | {daemon_pct:.1} % of a core |",
        elapsed.as_secs_f64(),
        if lost.is_empty() {
            "0".to_string()
        } else {
            lost.join(", ")
        },
        if comparisons.is_empty() {
            "no quiet moment to compare".to_string()
        } else {
            comparisons.join("; ")
        }
    );
    let targets = vec![
        Target::new(
            "events lost under churn",
            "0",
            format!("{lost_total} at {rate:.0} mkdir+rmdir/s"),
            lost_total == 0,
        ),
        Target::new(
            "node model after churn",
            "= a walk of cgroupfs",
            comparisons
                .last()
                .cloned()
                .unwrap_or_else(|| "not compared".into()),
            matched,
        ),
        Target::new(
            "daemon CPU under churn",
            "≤ 25 % of a core",
            format!("{daemon_pct:.1} %"),
            daemon_pct <= 25.0,
        ),
    ];
    Ok(Report { body, targets })
}

/// The churn section inside the 6.1 VM (cgroup v2): the release binaries
/// and this xtask are copied where the guest runs them, the guest runs
/// `xtask bench-guest`, and its JSON report becomes this section.
pub(super) fn run_v2(b: &Bench, target: &Path, host_cpu: Option<&str>) -> anyhow::Result<Report> {
    crate::vm::ensure()?;
    let kernel = crate::vm::kernel()?;
    let dir = target.join("bench/vm");
    let bin = dir.join("bin");
    let out = dir.join("out");
    for d in [&bin, &out] {
        if d.exists() {
            fs::remove_dir_all(d).with_context(|| format!("clearing {}", d.display()))?;
        }
        fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let mut copies = Vec::new();
    for src in [&b.oomtrace, &b.hog, &b.xtask] {
        let dst = bin.join(src.file_name().context("a binary without a name")?);
        fs::copy(src, &dst).with_context(|| format!("copying {}", src.display()))?;
        copies.push(crate::vm::shell_quote(&dst.display().to_string()));
    }
    let report = out.join("churn-v2.json");
    let script = format!(
        "{}{xtask} bench-guest --oomtrace {oomtrace} --hog {hog} --out {report}{quick}\n\
         if [ $? -eq 0 ]; then echo '{sentinel} pass'; else echo '{sentinel} fail'; fi\n",
        crate::vm::PREAMBLE,
        oomtrace = copies[0],
        hog = copies[1],
        xtask = copies[2],
        report = crate::vm::shell_quote(&report.display().to_string()),
        quick = if b.quick { " --quick" } else { "" },
        sentinel = crate::vm::SENTINEL,
    );
    let script = crate::vm::write_script(&dir.join("guest.sh"), &script)?;
    eprintln!(
        "bench: booting {} (TCG, 2 cpus, 2G) for churn on cgroup v2",
        kernel.display()
    );
    let (outcome, _) = crate::vm::boot(&kernel, &script, &out, "2G", Duration::from_secs(15 * 60))?;
    if outcome != "pass" {
        bail!("the churn run in the VM ended: {outcome} (its output is above)");
    }
    let text = fs::read(&report).with_context(|| format!("reading {}", report.display()))?;
    let mut r: Report = serde_json::from_slice(&text).context("the guest's report")?;
    for t in r
        .targets
        .iter_mut()
        .filter(|t| t.what.starts_with("daemon CPU") && !t.met)
    {
        t.note = match host_cpu {
            Some(h) => format!(
                "emulated (TCG); the same churn on the host, in this bench run, measured {h} \
                 (section above)"
            ),
            None => "emulated (TCG); the host's churn section was not run in this bench, so no \
                     native figure stands beside it"
                .into(),
        };
    }
    r.body = format!(
        "Inside Debian's 6.1 kernel (`{}`), cgroup v2 with the memory controller, booted under TCG \
         emulation by `cargo xtask bench --only churn-v2` (2 vCPUs, 2 GiB): emulated, so its rate is far \
         below the host's; what it checks is that nothing is lost and the model stays exact on v2.\n\n{}",
        kernel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        r.body
    );
    Ok(r)
}
