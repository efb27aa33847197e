//! footprint: RSS and start-to-ready with 1,000 cgroups, 10,000 processes.

use std::{
    fmt::Write as _,
    fs,
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{bail, Context as _};
use oomtrace_e2e::{pod_path, Cgroup};
use serde_json::json;

use super::{
    stats::{median, spread},
    Bench, Out, Report, Target,
};

/// One start of the daemon.
struct Start {
    ready_ms: f64,
    rss_ready_kib: u64,
    /// VmHWM read with the RSS at ready: the peak so far.
    hwm_ready_kib: u64,
    rss_steady_kib: u64,
    hwm_kib: u64,
    cgroups: u64,
}

fn measure_starts(b: &Bench, n: usize, steady: Duration) -> anyhow::Result<Vec<Start>> {
    let mut out = Vec::new();
    for _ in 0..n {
        let d = b.daemon(&[], Out::Pipe)?;
        let ready = d.wait_for_line("the ready line", Duration::from_secs(5), |l| {
            l["type"] == "status" && l["state"] == "ready"
        })?;
        let (rss_ready, hwm_ready) = d.rss_kib();
        d.settle();
        std::thread::sleep(steady);
        let (rss, hwm) = d.rss_kib();
        let ready_after = d.ready_after();
        d.stop()?;
        out.push(Start {
            ready_ms: ready_after.as_secs_f64() * 1e3,
            rss_ready_kib: rss_ready,
            hwm_ready_kib: hwm_ready,
            rss_steady_kib: rss,
            hwm_kib: hwm,
            cgroups: ready.v["cgroup"]["cgroups"].as_u64().unwrap_or(0),
        });
    }
    Ok(out)
}

pub(super) fn run(b: &Bench) -> anyhow::Result<Report> {
    let (pods, per) = b.size((500, 20), (100, 20));
    let runs = b.size(5, 3);
    let steady = Duration::from_secs(b.size(10, 2));
    let base = measure_starts(b, 3, Duration::from_secs(1))?;
    let procs_before = count_processes();

    let mut cgs = Vec::new();
    let mut helpers: Vec<Child> = Vec::new();
    let result = (|| -> anyhow::Result<Vec<Start>> {
        for _ in 0..pods {
            let (pod, container) = pod_path();
            cgs.push(Cgroup::try_create(&pod)?);
            cgs.push(Cgroup::try_create(&container)?);
        }
        for pair in cgs.chunks(2) {
            let mut c = Command::new(&b.xtask)
                .args(["bench-load", "sleepers", "--join"])
                .arg(pair[1].procs())
                .args(["--count", &per.to_string()])
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .context("spawning sleepers")?;
            // "ready" once its children are forked.
            let mut line = String::new();
            if let Some(out) = c.stdout.take() {
                BufReader::new(out).read_line(&mut line)?;
            }
            helpers.push(c);
            if line.trim() != "ready" {
                bail!("a sleepers helper did not start its children");
            }
        }
        let present: usize = cgs.iter().map(|c| c.pids().len()).sum();
        if present < pods * per {
            bail!(
                "{present} processes in the bench's cgroups, wanted {}",
                pods * per
            );
        }
        measure_starts(b, runs, steady)
    })();
    let procs_during = count_processes();
    for h in &mut helpers {
        let _ = h.kill();
        let _ = h.wait();
    }
    // Containers before their pods: a pod cgroup with a child left in it is
    // taken for someone else's and kept.
    while let Some(cg) = cgs.pop() {
        drop(cg);
    }
    let starts = result?;

    let (r_min, r_med, r_max) = spread(starts.iter().map(|s| s.ready_ms).collect());
    let (m_min, m_med, m_max) = spread(
        starts
            .iter()
            .map(|s| s.rss_steady_kib as f64 / 1024.0)
            .collect(),
    );
    let (h_min, h_med, h_max) = spread(starts.iter().map(|s| s.hwm_kib as f64 / 1024.0).collect());
    let (b_r, b_m) = (
        median(&base.iter().map(|s| s.ready_ms).collect::<Vec<_>>()),
        median(
            &base
                .iter()
                .map(|s| s.rss_steady_kib as f64 / 1024.0)
                .collect::<Vec<_>>(),
        ),
    );
    let rss_ready = median(
        &starts
            .iter()
            .map(|s| s.rss_ready_kib as f64 / 1024.0)
            .collect::<Vec<_>>(),
    );
    let cgroups = starts.iter().map(|s| s.cgroups).max().unwrap_or(0);
    fs::write(
        b.raw.join("footprint.json"),
        serde_json::to_vec_pretty(&json!({
            "base": base.iter().map(|s| json!({"ready_ms": s.ready_ms, "rss_kib": s.rss_steady_kib})).collect::<Vec<_>>(),
            "loaded": starts.iter().map(|s| json!({"ready_ms": s.ready_ms, "rss_ready_kib": s.rss_ready_kib, "hwm_ready_kib": s.hwm_ready_kib, "rss_kib": s.rss_steady_kib, "hwm_kib": s.hwm_kib, "cgroups": s.cgroups})).collect::<Vec<_>>(),
            "processes": procs_during,
        }))?,
    )?;
    let mut body = String::new();
    let _ = writeln!(
        body,
        "\
         Method: {pods} pod cgroups with one container cgroup each ({} cgroups made; the hierarchy then held \
         {cgroups}) and {per} sleeping processes in each container ({} made; {procs_during} processes on the \
         machine, {procs_before} before). `oomtrace run` (default flags) is started {runs} times: ready = spawn → \
         the `ready` line read from its stdout (BPF load and attach, the cgroup walk, the running containers' \
         pid namespaces); RSS (VmRSS) at ready and {} s after it settled; VmHWM is the peak. For comparison, the \
         machine as it is (no extra cgroups or processes): ready {b_r:.0} ms, RSS {b_m:.1} MiB (median of 3).\n",
        pods * 2,
        pods * per,
        steady.as_secs()
    );
    let _ = writeln!(
        body,
        "| runs | ready: median [min, max] | RSS at ready (median) | RSS steady: median [min, max] | VmHWM: median [min, max] |\n\
         | --- | --- | --- | --- | --- |\n\
         | {runs} | {r_med:.0} ms [{r_min:.0}, {r_max:.0}] | {rss_ready:.1} MiB | {m_med:.1} MiB [{m_min:.1}, {m_max:.1}] | {h_med:.1} MiB [{h_min:.1}, {h_max:.1}] |"
    );
    // Whether the peak had been reached by `ready`: measured per run.
    let by_ready = starts
        .iter()
        .filter(|s| s.hwm_ready_kib >= s.hwm_kib)
        .count();
    let targets = vec![
        Target::new(
            format!("RSS with {} cgroups, {} processes", pods * 2, pods * per),
            "≤ 24 MiB steady",
            format!("{m_med:.1} MiB [{m_min:.1}, {m_max:.1}]"),
            m_max <= 24.0,
        ),
        Target::new(
            "start-up peak (VmHWM)",
            "≤ 32 MiB",
            format!("{h_med:.1} MiB [{h_min:.1}, {h_max:.1}]"),
            h_max <= 32.0,
        )
        .note(format!(
            "in {by_ready} of {} runs the peak had been reached by the ready line, before any event",
            starts.len()
        )),
        {
            let t = Target::new(
                "start to ready",
                "≤ 1 s",
                format!("{r_med:.0} ms (max {r_max:.0} ms)"),
                r_max <= 1000.0,
            );
            if r_max <= 1000.0 || r_min > 1000.0 {
                t
            } else {
                t.inconclusive().note(format!(
                    "the starts spread from {r_min:.0} to {r_max:.0} ms, across the target; the bare machine's start took {b_r:.0} ms in this run"
                ))
            }
        },
    ];
    Ok(Report { body, targets })
}

fn count_processes() -> usize {
    fs::read_dir("/proc")
        .map(|es| {
            es.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.bytes().all(|c| c.is_ascii_digit()))
                })
                .count()
        })
        .unwrap_or(0)
}
