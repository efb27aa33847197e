//! storm: an OOM storm across many pod cgroups; every kill has a verdict.

use std::{
    collections::{HashMap, HashSet},
    fmt::Write as _,
    fs,
    os::unix::process::ExitStatusExt as _,
    time::{Duration, Instant},
};

use oomtrace_e2e::{pod_path, wait_until, Cgroup};
use serde_json::json;

use super::{
    latency::{kill_to_line_ms, latencies, verdicts_for},
    lost_count,
    stats::{pct, sorted},
    Bench, Out, Report, Target, SIGKILL,
};

/// A hog the storm saw end, and how.
struct Kill {
    pid: u32,
    signal: Option<i32>,
}

/// /proc/vmstat's `oom_kill`: every OOM kill on the machine.
fn vmstat_oom_kill() -> Option<u64> {
    fs::read_to_string("/proc/vmstat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
}

pub(super) fn run(b: &Bench) -> anyhow::Result<Report> {
    let (pods, workers, secs) = b.size((40, 6, 30), (10, 4, 8));
    let limit: u64 = 16 << 20;
    let mut cgs = Vec::new();
    for _ in 0..pods {
        let (_p, rel) = pod_path();
        let cg = Cgroup::try_create(&rel)?;
        cg.try_set_limit(limit)?;
        cgs.push(cg);
    }
    let d = b.daemon(&[], Out::Pipe)?;
    d.settle();
    let before: Vec<u64> = cgs
        .iter()
        .map(Cgroup::oom_kills)
        .collect::<anyhow::Result<_>>()?;
    let vm0 = vmstat_oom_kill();
    let cpu0 = d.cpu_ns();
    let started = Instant::now();
    let storm = Duration::from_secs(secs);
    let kills: Vec<Kill> = std::thread::scope(|s| -> anyhow::Result<Vec<Kill>> {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let cgs = &cgs;
                s.spawn(move || -> anyhow::Result<Vec<Kill>> {
                    // One hog at a time per pod: worker w owns pods w, w+workers, ...
                    let mine: Vec<usize> = (w..pods).step_by(workers).collect();
                    let mut out = Vec::new();
                    for &i in mine.iter().cycle() {
                        if started.elapsed() >= storm {
                            break;
                        }
                        let mut c = b.spawn_hog(&cgs[i], 64)?;
                        let pid = c.id();
                        let st = c.wait()?;
                        out.push(Kill {
                            pid,
                            signal: st.signal(),
                        });
                    }
                    Ok(out)
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.extend(
                h.join()
                    .map_err(|_| anyhow::anyhow!("a storm worker panicked"))??,
            );
        }
        Ok(all)
    })?;
    let elapsed = started.elapsed();
    let cpu1 = d.cpu_ns();
    let vm1 = vmstat_oom_kill();
    let after: Vec<u64> = cgs
        .iter()
        .map(Cgroup::oom_kills)
        .collect::<anyhow::Result<_>>()?;
    let kernel: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    let kernel_total: u64 = kernel.iter().sum();
    let pids: HashSet<u64> = kills
        .iter()
        .filter(|k| k.signal == Some(SIGKILL))
        .map(|k| u64::from(k.pid))
        .collect();
    // Every verdict of the storm is printed once each pid has one (or the
    // deadline says some never will).
    let complete = wait_until(Duration::from_secs(60), || {
        latencies(&d.lines(), &pids).1.len() == pids.len()
    });
    let lines = d.lines();
    d.stop()?;
    let cgroup_of: HashMap<&str, usize> = cgs
        .iter()
        .enumerate()
        .map(|(i, c)| (c.rel.as_str(), i))
        .collect();
    let mut verdicts = vec![0u64; pods];
    for l in &lines {
        if l.v["type"] == "verdict" {
            if let Some(&i) = l.v["victim"]["cgroup"]
                .as_str()
                .and_then(|c| cgroup_of.get(c))
            {
                verdicts[i] += 1;
            }
        }
    }
    let verdict_total: u64 = verdicts.iter().sum();
    let mismatched = verdicts.iter().zip(&kernel).filter(|(v, k)| v != k).count();
    let (lat, per_pid) = latencies(&lines, &pids);
    let missing = pids.len() - per_pid.len();
    let duplicated = per_pid.values().filter(|&&n| n > 1).count();
    let not_killed = kills.len() - pids.len();
    let lost = lost_count(&lines);
    let rate = kernel_total as f64 / elapsed.as_secs_f64();
    let s = sorted(lat);
    let daemon_pct = cpu1.saturating_sub(cpu0) as f64 / elapsed.as_nanos() as f64 * 100.0;
    let vm_delta = match (vm0, vm1) {
        (Some(a), Some(b)) => format!("{}", b - a),
        _ => "unreadable".into(),
    };
    fs::write(
        b.raw.join("storm.json"),
        serde_json::to_vec_pretty(&json!({
            "pods": pods, "workers": workers, "seconds": elapsed.as_secs_f64(),
            "hogs": kills.len(), "kernel_per_pod": kernel, "verdicts_per_pod": verdicts,
            "vmstat_delta": vm_delta, "lost": lost, "missing": missing, "duplicated": duplicated,
            // Per verdict: line latency, the daemon's own read delay, the constraint's source.
            "verdicts": verdicts_for(&lines, &pids)
                .map(|l| json!([
                    kill_to_line_ms(l),
                    l.v["evidence"]["judged_after_ms"], l.v["evidence"]["constraint_source"], l.at_ns as f64 / 1e9,
                ])).collect::<Vec<_>>(),
        }))?,
    )?;
    let mut body = String::new();
    let _ = writeln!(
        body,
        "\
         Method: {pods} container cgroups (`kubepods/burstable/pod<uid>/<id>`, 16 MiB limit each), {workers} workers \
         each cycling over its own pods (one hog per pod at a time) for {secs} s: a hog asks 64 MiB and is OOM-killed. \
         One `oomtrace run` (default flags) reads it all. The kernel's count is per cgroup (`memory.oom_control` \
         `oom_kill` on v1, local to the cgroup; `memory.events.local` on v2), summed over the storm's pods, because \
         /proc/vmstat's `oom_kill` is global and other tests ran beside this one (its delta is shown for \
         reference). Then every hog the bench saw die by SIGKILL must have exactly one verdict.\n"
    );
    let _ = writeln!(
        body,
        "| duration | hogs | kernel's kills (per-cgroup sum) | rate | verdicts for those cgroups | pods where verdicts ≠ kernel | SIGKILLed hogs without a verdict | with more than one | `lost` | vmstat delta (global) | daemon CPU |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n\
         | {:.1} s | {} | {kernel_total} | **{rate:.0} kills/s** | {verdict_total} | {mismatched} | {missing} | {duplicated} | {lost} | {vm_delta} | {daemon_pct:.1} % of a core |",
        elapsed.as_secs_f64(),
        kills.len(),
    );
    if !s.is_empty() {
        let _ = writeln!(
            body,
            "\nKill → line latency during the storm: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} kills).",
            pct(&s, 50.0),
            pct(&s, 99.0),
            s[s.len() - 1],
            s.len()
        );
    }
    let all_good = complete
        && mismatched == 0
        && missing == 0
        && duplicated == 0
        && lost == 0
        && not_killed == 0
        && verdict_total == kernel_total;
    let targets = vec![Target::new(
        format!("no kill missed ({secs} s storm)"),
        "verdicts = kernel's count; one verdict per SIGKILLed hog; 0 lost",
        format!(
            "{verdict_total} verdicts / {kernel_total} kills at {rate:.0} kills/s; {missing} missing, {duplicated} duplicated, {lost} lost"
        ),
        all_good,
    )
    .note(if not_killed > 0 {
        format!("{not_killed} hogs were not OOM-killed")
    } else {
        String::new()
    })];
    Ok(Report { body, targets })
}
