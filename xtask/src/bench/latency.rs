//! latency: kernel kill time → JSON line read by this process.

use std::{
    collections::{HashMap, HashSet},
    fmt::Write as _,
    fs,
    os::unix::process::ExitStatusExt as _,
    time::Duration,
};

use anyhow::{bail, Context as _};
use oomtrace_e2e::{pod_path, wait_until, Cgroup, Line};
use serde_json::json;
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use super::{
    stats::{pct, sorted},
    Bench, Out, Report, Target, SIGKILL,
};

/// The kernel's log levels: console, default message, minimum console, boot default.
const PRINTK: &str = "/proc/sys/kernel/printk";
const DEVKMSG: &str = "/proc/sys/kernel/printk_devkmsg";

/// `2026-11-23T06:51:44.615662573Z` → ns since the epoch.
pub(crate) fn parse_rfc3339_ns(s: &str) -> Option<i128> {
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp_nanos)
}

/// Why a figure missed its target, from this run's other passes (ms): a
/// pass 10 % or more below the default row names what it took away; when
/// none is, the daemon's own path is what is left, with its judgement's
/// figure.
fn miss_cause(what: &str, default: f64, fifo: f64, quiet: f64, judged: f64) -> String {
    let mut parts = Vec::new();
    if fifo < default * 0.9 {
        parts.push(format!(
            "waiting for a CPU ({fifo:.3} ms with the daemon and the reader at SCHED_FIFO)"
        ));
    }
    if quiet < default * 0.9 {
        parts.push(format!(
            "the kernel's console print of the kill ({quiet:.3} ms with it kept off)"
        ));
    }
    if parts.is_empty() {
        format!(
            "neither SCHED_FIFO ({fifo:.3} ms) nor a quiet console ({quiet:.3} ms) brought the {what} down: \
             the daemon's own path (the kill to its judgement: {judged:.3} ms)"
        )
    } else {
        format!("measured below: {}", parts.join("; "))
    }
}

/// A verdict's kill time (its `time`) → this process reading the line, ms.
pub(super) fn kill_to_line_ms(l: &Line) -> Option<f64> {
    let t = parse_rfc3339_ns(l.v["time"].as_str()?)?;
    Some((l.at_ns - t) as f64 / 1e6)
}

/// The verdicts about `pids`.
pub(super) fn verdicts_for<'a>(
    lines: &'a [Line],
    pids: &'a HashSet<u64>,
) -> impl Iterator<Item = &'a Line> + 'a {
    lines.iter().filter(|l| {
        l.v["type"] == "verdict"
            && l.v["victim"]["pid"]
                .as_u64()
                .is_some_and(|p| pids.contains(&p))
    })
}

/// Kill → line latencies (ms) of the verdicts for `pids`, and how many
/// verdicts each pid that has one got.
pub(super) fn latencies(lines: &[Line], pids: &HashSet<u64>) -> (Vec<f64>, HashMap<u64, usize>) {
    let mut lat = Vec::new();
    let mut per_pid: HashMap<u64, usize> = HashMap::new();
    for l in verdicts_for(lines, pids) {
        if let Some(pid) = l.v["victim"]["pid"].as_u64() {
            *per_pid.entry(pid).or_default() += 1;
        }
        lat.extend(kill_to_line_ms(l));
    }
    (lat, per_pid)
}

/// `n` memcg OOM kills one after another: kill → line latencies (ms) and the
/// daemon's own kill → judgement delays (`evidence.judged_after_ms`), sorted.
fn latency_pass(b: &Bench, n: usize, realtime: bool) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let (lat, reads, _) = latency_pass_with(b, n, realtime, None)?;
    Ok((lat, reads))
}

/// The kill path's steps for one kill, ms after the kill (CLOCK_BOOTTIME
/// on both ends, from the daemon's `oomtrace::timing` log).
#[derive(Default, Clone, Copy)]
pub(crate) struct Steps {
    record: Option<f64>,
    report: Option<f64>,
    /// /dev/kmsg read to its end after the record (the report, if the
    /// kernel printed one, was among what was read).
    drained: Option<f64>,
    judged: Option<f64>,
    written: Option<f64>,
}

/// The `oomtrace::timing` lines of a daemon's log → steps per victim pid.
pub(crate) fn parse_steps(log: &str) -> HashMap<u64, Steps> {
    let field = |line: &str, key: &str| -> Option<u64> {
        let at = line.find(key)? + key.len();
        let digits: String = line[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    let mut kill_ns: HashMap<u64, u64> = HashMap::new();
    let mut report_ns: HashMap<u64, u64> = HashMap::new();
    let mut steps: HashMap<u64, Steps> = HashMap::new();
    // (read through, arrived) of each drain, in the log's order.
    let mut drains: Vec<(u64, u64)> = Vec::new();
    let ms = |at: u64, kill: u64| at.saturating_sub(kill) as f64 / 1e6;
    for line in log.lines() {
        if line.contains("kernel log drained through_ns=") {
            if let (Some(through), Some(at)) =
                (field(line, "through_ns="), field(line, "arrived_ns="))
            {
                drains.push((through, at));
            }
            continue;
        }
        let Some(pid) = field(line, " pid=") else {
            continue;
        };
        if line.contains("victim record pid=") {
            if let (Some(k), Some(at)) = (field(line, "kill_ns="), field(line, "arrived_ns=")) {
                kill_ns.insert(pid, k);
                steps.entry(pid).or_default().record = Some(ms(at, k));
                if let Some(&r) = report_ns.get(&pid) {
                    steps.entry(pid).or_default().report = Some(ms(r, k));
                }
            }
        } else if line.contains("kernel report pid=") {
            if let Some(at) = field(line, "arrived_ns=") {
                // The first report of this pid: the one its verdict waited for.
                report_ns.entry(pid).or_insert(at);
                if let Some(&k) = kill_ns.get(&pid) {
                    let s = steps.entry(pid).or_default();
                    s.report.get_or_insert(ms(at, k));
                }
            }
        } else if line.contains("verdict pid=") {
            if let (Some(&k), Some(j), Some(w)) = (
                kill_ns.get(&pid),
                field(line, "judged_ns="),
                field(line, "written_ns="),
            ) {
                let s = steps.entry(pid).or_default();
                s.judged = Some(ms(j, k));
                s.written = Some(ms(w, k));
            }
        }
    }
    // A kill's drain: the first read through its stamp.
    for (pid, &k) in &kill_ns {
        if let Some(&(_, at)) = drains.iter().find(|(through, _)| *through >= k) {
            steps.entry(*pid).or_default().drained = Some(ms(at, k));
        }
    }
    steps
}

/// [`latency_pass`], and with `timing` (a file for the daemon's stderr) the
/// kill path's steps per kill.
fn latency_pass_with(
    b: &Bench,
    n: usize,
    realtime: bool,
    timing: Option<&std::path::Path>,
) -> anyhow::Result<(Vec<f64>, Vec<f64>, Vec<Steps>)> {
    let (_p, rel) = pod_path();
    let cg = Cgroup::try_create(&rel)?;
    cg.try_set_limit(16 << 20)?;
    let d = b.daemon_with(&[], Out::Pipe, realtime, timing)?;
    d.settle();
    let mut pids = HashSet::new();
    for _ in 0..n {
        let mut c = b.spawn_hog(&cg, 64)?;
        let pid = c.id();
        let st = c.wait()?;
        if st.signal() != Some(SIGKILL) {
            bail!("hog {pid} was not OOM-killed ({st})");
        }
        pids.insert(u64::from(pid));
    }
    let ok = wait_until(Duration::from_secs(60), || {
        latencies(&d.lines(), &pids).1.len() == pids.len()
    });
    let lines = d.lines();
    d.stop()?;
    let (lat, per) = latencies(&lines, &pids);
    if !ok {
        bail!("{} of {n} kills got no verdict", n - per.len());
    }
    let reads: Vec<f64> = verdicts_for(&lines, &pids)
        .filter_map(|l| l.v["evidence"]["judged_after_ms"].as_f64())
        .collect();
    let steps = match timing {
        Some(file) => {
            let log =
                fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
            let by_pid = parse_steps(&log);
            pids.iter().filter_map(|p| by_pid.get(p).copied()).collect()
        }
        None => Vec::new(),
    };
    Ok((sorted(lat), sorted(reads), steps))
}

/// A kill line as long as this bench's (`Memory cgroup out of memory:
/// Killed process … oom_score_adj:0`), at its level (KERN_ERR).
const CONSOLE_PROBE: &str = "<3>oomtrace bench: the console's own print of a line as long as a kill line, timed from its write to /dev/kmsg; nothing was killed. .........................................";

/// The console's own print of a kill line, measured apart from any kill:
/// a line of that length and level written to /dev/kmsg, each write timed
/// (the kernel prints it to its consoles in the writer's context, as it
/// prints the kill line in the OOM killer's), `n` times, 20 ms apart (ms).
fn console_print_ms(n: usize) -> anyhow::Result<Vec<f64>> {
    use std::io::Write as _;
    // Writes to /dev/kmsg are rate-limited (10 per 5 s) unless this says
    // `on`: a dropped line prints nothing and would time as a few µs.
    let devkmsg = fs::read_to_string(DEVKMSG).context("reading printk_devkmsg")?;
    fs::write(DEVKMSG, "on\n").context("letting every /dev/kmsg write through")?;
    let timed = (|| {
        let mut kmsg = fs::OpenOptions::new()
            .write(true)
            .open("/dev/kmsg")
            .context("opening /dev/kmsg to time the console")?;
        let mut took = Vec::with_capacity(n);
        for _ in 0..n {
            let at = std::time::Instant::now();
            kmsg.write_all(CONSOLE_PROBE.as_bytes())
                .context("writing to /dev/kmsg")?;
            took.push(at.elapsed().as_secs_f64() * 1e3);
            std::thread::sleep(Duration::from_millis(20));
        }
        anyhow::Ok(sorted(took))
    })();
    if let Err(e) = fs::write(DEVKMSG, format!("{}\n", devkmsg.trim())) {
        eprintln!("bench: restoring {DEVKMSG} to {}: {e}", devkmsg.trim());
    }
    timed
}

pub(super) fn run(b: &Bench) -> anyhow::Result<Report> {
    let n = b.size(200, 30);
    let (s, s_reads) = latency_pass(b, n, false)?;
    let (rt, rt_reads) = latency_pass(b, n, true)?;
    // The same kills with the kernel's console log level lowered, so that
    // the kill's KERN_ERR line is not written to the console.
    let printk = fs::read_to_string(PRINTK).context("reading /proc/sys/kernel/printk")?;
    // At the machine's own console level, as the default pass ran.
    let console_ms = console_print_ms(b.size(50, 10))?;
    fs::write(PRINTK, "1").context("lowering the console log level")?;
    let quiet = latency_pass(b, n, false);
    let timing_log = b.tmp.join("latency-timing.log");
    let timed = quiet
        .as_ref()
        .ok()
        .map(|_| latency_pass_with(b, n, false, Some(&timing_log)));
    if let Err(e) = fs::write(PRINTK, printk.trim()) {
        eprintln!(
            "bench: restoring /proc/sys/kernel/printk to {}: {e}",
            printk.trim()
        );
    }
    let (q, q_reads) = quiet?;
    let (t_lat, _, steps) = match timed {
        Some(t) => t?,
        None => bail!("no timed pass"),
    };
    fs::write(
        b.raw.join("latency.json"),
        serde_json::to_vec_pretty(&json!({
            "default": s, "default_judged_after": s_reads,
            "sched_fifo": rt, "sched_fifo_judged_after": rt_reads,
            "console_quiet": q, "console_quiet_judged_after": q_reads,
            "printk": printk.trim(),
            "timed_console_quiet": t_lat,
            "console_print": console_ms,
            "timed_steps_ms": steps.iter().map(|s| json!({
                "record": s.record, "report": s.report, "drained": s.drained,
                "judged": s.judged, "written": s.written,
            })).collect::<Vec<_>>(),
        }))?,
    )?;
    let (p50, p99, max) = (pct(&s, 50.0), pct(&s, 99.0), s[s.len() - 1]);
    let (rt50, rt99) = (pct(&rt, 50.0), pct(&rt, 99.0));
    let mut body = String::new();
    let _ = writeln!(
        body,
        "Method: {n} memcg OOM kills, one after another (a hog asks 64 MiB of a container cgroup limited to 16 MiB), \
         with one `oomtrace run` (default flags) whose stdout is a pipe read by this bench. \
         A verdict's `time` is the kernel's kill time: the victim hook's CLOCK_BOOTTIME stamp plus \
         (CLOCK_REALTIME − CLOCK_BOOTTIME) taken at the daemon's start. The bench stamps each line with \
         CLOCK_REALTIME when `read_line` returns it, before parsing. Latency = arrival − `time`: it covers the \
         ring buffer's wake-up, the daemon's scheduling, its wait for the kernel's OOM report from /dev/kmsg (the \
         memory at the kill; the kernel prints it before the kill, so the wait ends once the log has been read \
         past the kill, up to 1 s), its reads (/proc/meminfo, the \
         root cgroup's usage), the attribution, the write, the pipe and the reader's scheduling. Both ends use \
         CLOCK_REALTIME, and the daemon's offset is taken once at its start: the offset between the two clocks \
         was checked to drift by microseconds over minutes here (no NTP slewing), so it does not bias the figure.\n\n\
         A second pass runs the daemon (`chrt -f 10`) and the bench's reader at SCHED_FIFO (not the default): \
         no other work on the machine can then delay them, which tells a busy run queue apart from oomtrace's \
         own path (on a quiet machine it can be the slower row: see below). A third pass (default scheduling) \
         lowers the kernel's console log level to 1 (`/proc/sys/kernel/printk`, restored afterwards), so the \
         kernel does not write the kill's `Killed process` line (KERN_ERR) to its console: the difference \
         to the default row is what that console print costs the kill → line path here. The last column is the verdict's own `evidence.judged_after_ms`: \
         how long after the kill the daemon judged it (its reads for the verdict).\n"
    );
    let _ = writeln!(
        body,
        "| pass | kills | min | p50 | p90 | p99 | max | kill → the daemon's judgement, p50 |\n| --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    let quiet_name = format!(
        "default, console log level 1 (was `{}`)",
        printk.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    for (name, v, reads) in [
        ("default", &s, &s_reads),
        ("SCHED_FIFO (daemon + reader)", &rt, &rt_reads),
        (quiet_name.as_str(), &q, &q_reads),
    ] {
        let _ = writeln!(
            body,
            "| {name} | {} | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms |",
            v.len(),
            v[0],
            pct(v, 50.0),
            pct(v, 90.0),
            pct(v, 99.0),
            v[v.len() - 1],
            pct(reads, 50.0),
        );
    }
    let (q50, q99) = (pct(&q, 50.0), pct(&q, 99.0));
    let console = fs::read_to_string("/proc/cmdline")
        .ok()
        .and_then(|c| {
            c.split_whitespace()
                .rev()
                .find_map(|a| a.strip_prefix("console="))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "none given on the command line".into());
    let c50 = pct(&console_ms, 50.0);
    let _ = writeln!(
        body,
        "\nThe console, measured: this kernel's console is `{console}`. With the kill's line kept off it, \
         the median is {q50:.3} ms and p99 {q99:.3} ms, against {p50:.3} ms and {p99:.3} ms by default: \
         the console print accounts for {:+.3} ms of the median and {:+.3} ms of p99 in this run. \
         The console's own print, apart from any kill: a line as long as the kill line, at its level, \
         written to /dev/kmsg {} times at the default console level (`printk_devkmsg` set to `on` meanwhile, so that \
         no write is rate-limited away, and restored), each write timed (the kernel prints \
         to its consoles in the writer's context, as it prints the kill line in the OOM killer's, with the \
         CPU's interrupts off, so the ring buffer's wake-up of the daemon waits for it): p50 {c50:.3} ms, \
         p90 {:.3} ms.",
        p50 - q50,
        p99 - q99,
        console_ms.len(),
        pct(&console_ms, 90.0),
    );
    let _ = writeln!(body, "\n{}", steps_table(&steps, &t_lat));
    let quiet_target = Target::new(
        "latency p50, console quiet",
        "≤ 0.5 ms",
        format!("{q50:.3} ms (p90 {:.3} ms)", pct(&q, 90.0)),
        q50 <= 0.5,
    );
    let quiet_target = if q50 <= 0.5 {
        quiet_target
    } else if pct(&q, 10.0) <= 0.5 {
        quiet_target.inconclusive().note(format!(
            "the kills spread from {:.3} ms (p10) to {:.3} ms (p90) across the target; the steps' table below says where the median goes",
            pct(&q, 10.0),
            pct(&q, 90.0)
        ))
    } else {
        quiet_target.note(steps_cause(&steps))
    };
    let targets = vec![
        quiet_target,
        {
            let bound = c50 + 0.3;
            let wide = pct(&console_ms, 90.0) + 0.3;
            let t = Target::new(
                "latency p50",
                format!("≤ the console's own print + 0.3 ms ({bound:.3} ms here)"),
                format!("{p50:.3} ms"),
                p50 <= bound,
            );
            if p50 <= bound {
                t
            } else if p50 <= wide {
                t.inconclusive().note(format!(
                    "the console's own print spread from {c50:.3} ms (p50) to {:.3} ms (p90): the bound with it, \
                     {bound:.3} to {wide:.3} ms, straddles the median",
                    pct(&console_ms, 90.0)
                ))
            } else {
                t.note(miss_cause("median", p50, rt50, q50, pct(&s_reads, 50.0)))
            }
        },
        Target::new(
            "latency p99",
            "≤ 10 ms",
            format!("{p99:.3} ms (max {max:.3} ms)"),
            p99 <= 10.0,
        )
        .note(if p99 <= 10.0 {
            String::new()
        } else {
            miss_cause("p99", p99, rt99, q99, pct(&s_reads, 99.0))
        }),
    ];
    Ok(Report { body, targets })
}

/// The p50 of one step over the kills that have it.
fn step_p50(steps: &[Steps], f: impl Fn(&Steps) -> Option<f64>) -> Option<f64> {
    let v = sorted(steps.iter().filter_map(f).collect());
    (!v.is_empty()).then(|| pct(&v, 50.0))
}

/// Where the time of the timed pass goes, step by step.
fn steps_table(steps: &[Steps], lat: &[f64]) -> String {
    let intro = format!(
        "The kill → line path, step by step: a fourth pass (console quiet, as the third) with the daemon \
         logging its steps (`OOMTRACE_LOG=oomtrace::timing=debug`, stderr to a file: a few log writes per \
         kill), each in CLOCK_BOOTTIME ns after the kill (the victim hook's stamp), {} kills:",
        steps.len()
    );
    steps_rows(&intro, steps, lat, "the bench")
}

/// `intro`, then a table of each step's p50/p90/max over `steps`, and last
/// the line's arrival at `reader` (`lat`, kill → line, ms).
pub(crate) fn steps_rows(intro: &str, steps: &[Steps], lat: &[f64], reader: &str) -> String {
    let mut t = format!("{intro}\n\n| step | p50 | p90 | max |\n| --- | --- | --- | --- |\n");
    type Pick = fn(&Steps) -> Option<f64>;
    let rows: [(&str, Pick); 5] = [
        (
            "the victim record reaches the daemon (ring buffer wake-up)",
            |s| s.record,
        ),
        (
            "the kernel's OOM report reaches the daemon (/dev/kmsg, one record a read)",
            |s| s.report,
        ),
        (
            "/dev/kmsg read to its end past the kill (the report, when printed, is before the kill: a report not read by then is rate-limited, not late)",
            |s| s.drained,
        ),
        (
            "judged: the engine done (the wait for the report, the reads, the verdict)",
            |s| s.judged,
        ),
        ("the line written", |s| s.written),
    ];
    for (name, pick) in rows {
        let v = sorted(steps.iter().filter_map(pick).collect());
        if v.is_empty() {
            let _ = writeln!(t, "| {name} | - | - | - |");
            continue;
        }
        let _ = writeln!(
            t,
            "| {name} | {:.3} ms | {:.3} ms | {:.3} ms |",
            pct(&v, 50.0),
            pct(&v, 90.0),
            v[v.len() - 1]
        );
    }
    if !lat.is_empty() {
        let _ = writeln!(
            t,
            "| the line read by {reader} (kill → line) | {:.3} ms | {:.3} ms | {:.3} ms |",
            pct(lat, 50.0),
            pct(lat, 90.0),
            lat[lat.len() - 1]
        );
    }
    t
}

/// What holds the quiet median, from the steps' medians.
fn steps_cause(steps: &[Steps]) -> String {
    let (Some(rec), Some(judged)) = (step_p50(steps, |s| s.record), step_p50(steps, |s| s.judged))
    else {
        return "the steps' table below".to_string();
    };
    let drained = step_p50(steps, |s| s.drained)
        .map(|d| format!(", /dev/kmsg read past the kill at {d:.3} ms"))
        .unwrap_or_default();
    let reported = steps.iter().filter(|s| s.report.is_some()).count();
    format!(
        "the victim record reaches the daemon at {rec:.3} ms (p50){drained}, judged at {judged:.3} ms \
         ({reported} of {} kills had a report: the kernel rate-limits them)",
        steps.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_miss_names_only_what_a_pass_measured() {
        let c = miss_cause("median", 2.7, 2.76, 0.98, 2.5);
        assert!(c.contains("console") && !c.contains("waiting"), "{c}");
        let c = miss_cause("p99", 12.5, 4.6, 8.2, 9.0);
        assert!(
            c.contains("console") && c.contains("waiting for a CPU (4.600 ms"),
            "{c}"
        );
        let c = miss_cause("median", 2.7, 2.6, 2.6, 2.5);
        assert!(c.starts_with("neither") && c.contains("2.500 ms"), "{c}");
    }

    #[test]
    fn steps_are_read_from_the_timing_log() {
        let log = "\
2026-12-07T18:01:37.825717Z DEBUG oomtrace::timing: kernel report pid=7 arrived_ns=1500000
2026-12-07T18:01:37.825768Z DEBUG oomtrace::timing: victim record pid=7 kill_ns=1000000 arrived_ns=1200000
2026-12-07T18:01:37.826020Z DEBUG oomtrace::timing: verdict pid=7 judged_ns=1700000 written_ns=1800000
2026-12-07T18:01:38.188618Z DEBUG oomtrace::timing: victim record pid=9 kill_ns=2000000 arrived_ns=2100000
2026-12-07T18:01:38.189590Z DEBUG oomtrace::timing: kernel report pid=9 arrived_ns=2400000
2026-12-07T18:01:38.189590Z DEBUG oomtrace::timing: verdict pid=9 judged_ns=2500000 written_ns=2600000
2026-12-07T18:01:38.288618Z DEBUG oomtrace::timing: victim record pid=11 kill_ns=3000000 arrived_ns=3100000
2026-12-07T18:01:38.288700Z DEBUG oomtrace::timing: kernel log drained through_ns=2900000 arrived_ns=3150000
2026-12-07T18:01:38.288800Z DEBUG oomtrace::timing: kernel log drained through_ns=3110000 arrived_ns=3300000
";
        let s = parse_steps(log);
        let seven = s.get(&7).copied().unwrap_or_default();
        assert_eq!(
            (seven.record, seven.report, seven.judged, seven.written),
            (Some(0.2), Some(0.5), Some(0.7), Some(0.8))
        );
        let nine = s.get(&9).copied().unwrap_or_default();
        assert_eq!((nine.record, nine.report), (Some(0.1), Some(0.4)));
        // A drain through a moment before the kill is not the kill's.
        let eleven = s.get(&11).copied().unwrap_or_default();
        assert_eq!((eleven.report, eleven.drained), (None, Some(0.3)));
    }

    #[test]
    fn rfc3339_to_epoch_ns() {
        assert_eq!(parse_rfc3339_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ns("2026-11-23T06:51:44.615662573Z"),
            Some(1_795_416_704_615_662_573)
        );
        assert_eq!(
            parse_rfc3339_ns("2000-03-01T00:00:01.5Z"),
            Some(951_868_801_500_000_000)
        );
        assert_eq!(parse_rfc3339_ns("garbage"), None);
    }
}
