//! near-oom: the cost of the `near_oom` machinery (the daemon's cgroupfs
//! sampler and the rule), on a storm of 200 limited pod cgroups growing
//! toward their limits and shrinking again, run with the sampler on
//! (default flags) and off (`--near-oom-horizon 0`), interleaved.

use std::{
    fmt::Write as _,
    fs,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use oomtrace_e2e::{pod_path, Cgroup};
use serde_json::json;

use super::{
    stats::{median, sorted},
    Bench, Out, Report, Target,
};

const LIMIT: u64 = 64 << 20;

/// A hog growing to `mib` MiB at `rate` MiB/s in `cg`, holding it 1 s,
/// then exiting.
fn grower(b: &Bench, cg: &Cgroup, mib: u32, rate: u32) -> anyhow::Result<Child> {
    Command::new(&b.hog)
        .arg("--join")
        .arg(cg.procs())
        .args(["--mib", &mib.to_string(), "--rate-mib-s", &rate.to_string()])
        .args(["--sleep", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("spawning {}", b.hog.display()))
}

/// One storm: `at_once` hogs at a time, round-robin over `cgs`, each
/// growing to 56 MiB of its cgroup's 64 MiB (87.5 %: a `near_oom` each
/// time) at 16 MiB/s, holding it 1 s and exiting (its cgroup shrinks back
/// to nothing).
/// Returns the hogs run.
fn storm(b: &Bench, cgs: &[Cgroup], at_once: usize, secs: u64) -> anyhow::Result<usize> {
    let started = Instant::now();
    let mut running: Vec<Child> = Vec::new();
    let mut next = 0usize;
    let mut ran = 0usize;
    while started.elapsed() < Duration::from_secs(secs) {
        running.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
        while running.len() < at_once {
            running.push(grower(b, &cgs[next % cgs.len()], 56, 16)?);
            next += 1;
            ran += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for mut c in running {
        let _ = c.wait();
    }
    Ok(ran)
}

pub(super) fn run(b: &Bench) -> anyhow::Result<Report> {
    let (count, at_once, secs, pairs) = b.size((200, 16, 30, 3), (200, 16, 8, 1));
    let mut cgs = Vec::new();
    for _ in 0..count {
        let (_p, rel) = pod_path();
        let cg = Cgroup::try_create(&rel)?;
        cg.try_set_limit(LIMIT)?;
        cgs.push(cg);
    }
    let mut body = String::new();
    let _ = writeln!(
        body,
        "Method: {count} pod container cgroups, each limited to 64 MiB; for {secs} s, {at_once} \
         `oomtrace-hog`s at a time, round-robin over them, each growing to 56 MiB (87.5 % of its limit) \
         at 16 MiB/s, holding it 1 s and exiting, so the cgroups grow toward their limits (a `near_oom` \
         each time) and shrink again. \
         A fresh `oomtrace run` per run, settled before the storm, stdout read line by line: with \
         the sampler (default flags: `--near-oom-horizon 60s`, `--near-oom-interval 500ms`) and \
         without (`--near-oom-horizon 0`), {pairs} interleaved pair(s). The sampler is userspace \
         (no kernel hook: the storm's own processes pay nothing), so its cost is the daemon's CPU \
         time over the storm, in % of one core; the machine's other cgroups with a limit are \
         sampled too.\n"
    );
    let _ = writeln!(
        body,
        "| run | daemon CPU, % of a core | near_oom findings | hogs run |\n| --- | --- | --- | --- |"
    );
    let mut on_cpu = Vec::new();
    let mut off_cpu = Vec::new();
    let mut raw = Vec::new();
    let mut findings_on = Vec::new();
    for i in 0..pairs {
        let order = if i % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for with in order {
            let flags: &[&str] = if with {
                &[]
            } else {
                &["--near-oom-horizon", "0"]
            };
            let d = b.daemon(flags, Out::Pipe)?;
            d.settle();
            let c0 = d.cpu_ns();
            let t0 = Instant::now();
            let ran = storm(b, &cgs, at_once, secs)?;
            let wall = t0.elapsed().as_nanos() as f64;
            let c1 = d.cpu_ns();
            let found = d
                .lines()
                .iter()
                .filter(|l| l.v["type"] == "finding" && l.v["finding"] == "near_oom")
                .count();
            d.stop()?;
            let pct = c1.saturating_sub(c0) as f64 / wall * 100.0;
            eprintln!(
                "bench: near-oom pair {} sampler {}: daemon {pct:.2} % of a core, {found} near_oom, {ran} hogs",
                i + 1,
                if with { "on" } else { "off" }
            );
            let _ = writeln!(
                body,
                "| pair {}, sampler {} | {pct:.2} % | {found} | {ran} |",
                i + 1,
                if with { "on" } else { "off" }
            );
            raw.push(json!({"pair": i + 1, "sampler": with, "daemon_cpu_pct": pct, "near_oom": found, "hogs": ran}));
            if with {
                on_cpu.push(pct);
                findings_on.push(found);
            } else {
                off_cpu.push(pct);
            }
        }
    }
    let (on, off) = (median(&on_cpu), median(&off_cpu));
    let diffs = sorted(
        on_cpu
            .iter()
            .zip(&off_cpu)
            .map(|(a, b)| a - b)
            .collect::<Vec<_>>(),
    );
    let cost = median(&diffs);
    let _ = writeln!(
        body,
        "\nMedian daemon CPU: {on:.2} % of a core with the sampler, {off:.2} % without: the \
         `near_oom` machinery costs {cost:+.2} % of a core (pairs {:+.2} to {:+.2}) for {count} \
         limited cgroups sampled twice a second while they grow and shrink.",
        diffs.first().copied().unwrap_or(f64::NAN),
        diffs.last().copied().unwrap_or(f64::NAN),
    );
    fs::write(
        b.raw.join("near-oom.json"),
        serde_json::to_vec_pretty(&raw)?,
    )?;
    let targets = vec![
        Target::new(
            format!("near_oom sampler, {count} limited cgroups growing and shrinking"),
            "≤ 1 % of a core",
            format!("{cost:+.2} % of a core (daemon {on:.2} % with, {off:.2} % without)"),
            cost <= 1.0,
        ),
        Target::new(
            "near_oom findings in the storm (every hog nears its limit)",
            "some, one per episode",
            format!("{:?} per run", findings_on),
            findings_on.iter().all(|&f| f > 0),
        ),
    ];
    Ok(Report { body, targets })
}
