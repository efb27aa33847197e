//! `oomtrace explain`: the kills in a saved kernel log.
//!
//! People paste what they have: `dmesg` (`[ seconds]` stamps, or `-T`
//! dates), `journalctl -k` or a syslog file (`Nov 27 23:13:03 host kernel: `,
//! or ISO dates with `-o short-iso`), raw `/dev/kmsg` records
//! (`6,1234,5678,-;`), or a whole sosreport-style file where the OOM report
//! sits among other lines. Each line's prefix is stripped, then the lines
//! go through the same parsers as the live log (`oom_report`).
//!
//! One OOM report starts with `… invoked oom-killer:`; it may print the
//! memcg's usage and limit (`memory: usage …kB, limit …kB`) and the memcg
//! it describes (`Memory cgroup stats for /path:`), then the `oom-kill:`
//! summary (4.19+) and one or more `Killed process` lines (5.x+ with the
//! reason before them; 4.x bare, after `… Kill process … or sacrifice
//! child` and `Task in /a killed as a result of limit of /b`). Nothing is
//! taken from a report unless it names the same process or memcg: the
//! summary is matched to its kill by pid, the usage and limit to the
//! summary's memcg, so interleaved reports never lend each other fields.

use crate::{
    kernel_log::PastKill,
    oom_report::{self, Constraint, MemcgReport, OomLine, OomSummary, ReportReader},
};

/// One kill found in a saved log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedKill {
    /// `seq`: the record's sequence number for raw `/dev/kmsg` records, else
    /// the kill line's number in the input (1-based); `ts_us`: since boot
    /// when the line carries it, else 0.
    pub past: PastKill,
    /// Microseconds since boot, when the log's stamps give it.
    pub since_boot_us: Option<u64>,
    /// RFC 3339 UTC, only when the log's dates carry their zone.
    pub time: Option<String>,
    /// The OOMing memcg's usage and limit in bytes, when the report printed
    /// them for the memcg the summary names.
    pub usage_bytes: Option<u64>,
    pub limit_bytes: Option<u64>,
    /// Shared by the kills of one report.
    pub incident: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    #[error("the input is not a text log ({0})")]
    NotText(&'static str),
}

/// One input line: where the kernel's text starts, and what its prefix said.
#[derive(Debug, Default, PartialEq, Eq)]
struct Stamped {
    seq: Option<u64>,
    since_boot_us: Option<u64>,
    time: Option<String>,
    text: String,
}

/// The report being read: fields that belong to it until the next one starts.
#[derive(Default)]
struct Report {
    incident: String,
    /// 4.x: `… Kill process …` said which kind of OOM the bare
    /// `Killed process` line that follows belongs to.
    memcg: Option<bool>,
    /// `Memory cgroup stats for /path:` (the first one: the OOMing memcg).
    stats_for: Option<String>,
    usage_limit_kb: Option<(u64, u64)>,
    /// 4.x `Task in /task killed as a result of limit of /limit`.
    legacy: Option<(String, String)>,
}

/// The kernel's page counter maximum (`PAGE_COUNTER_MAX` pages) reads as
/// about 8 EiB in kB: no limit.
const UNLIMITED_KB: u64 = 1 << 52;

/// What the log itself cannot say.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// The UTC offset of `dmesg -T` dates, which carry none; without it
    /// their time is null.
    pub local_offset: Option<time::UtcOffset>,
}

/// Every kill in `input`, oldest first. Lines the parsers do not know are
/// skipped; `Err` only when the input is not text at all.
pub fn explain(input: &[u8]) -> Result<Vec<LoggedKill>, ExplainError> {
    explain_with(input, Options::default())
}

/// [`explain`], with what the caller knows about the log.
pub fn explain_with(input: &[u8], opts: Options) -> Result<Vec<LoggedKill>, ExplainError> {
    let mut kills = Vec::new();
    let mut report: Option<Report> = None;
    // Summaries wait for their kill line, by pid: another report's lines
    // may come between them.
    let mut summaries: Vec<OomSummary> = Vec::new();
    // The memcg part of each report (usage and the stats block) follows
    // the same lines: the memory at the kill, as the kernel printed it.
    let mut reader = ReportReader::default();
    let mut memcg: Option<(u32, MemcgReport)> = None;
    for (n, raw) in input.split(|&b| b == b'\n').enumerate() {
        let line_no = n as u64 + 1;
        let line = String::from_utf8_lossy(raw);
        let Some(s) = strip(line.trim_end_matches('\r'), opts) else {
            continue;
        };
        let text = s.text.as_str();
        if let Some(OomLine::Summary(sum)) = reader.feed(text) {
            memcg = sum.report.map(|r| (sum.pid, r));
        }
        if text.contains(" invoked oom-killer: ") {
            report = Some(Report {
                incident: incident(&s, line_no),
                ..Report::default()
            });
            continue;
        }
        if let Some(r) = report.as_mut() {
            if let Some(ul) = oom_report::usage_limit(text) {
                r.usage_limit_kb.get_or_insert(ul);
                continue;
            }
            if let Some(rest) = text.strip_prefix("Memory cgroup stats for ") {
                // 4.x prints the stats on the same line, after `: `.
                let path = match rest.strip_suffix(':') {
                    Some(p) => Some(p),
                    None => rest.split_once(": ").map(|(p, _)| p),
                };
                if let Some(p) = path {
                    r.stats_for.get_or_insert_with(|| p.to_owned());
                }
                continue;
            }
            if let Some(rest) = text.strip_prefix("Task in ") {
                if let Some((task, limit)) = rest.split_once(" killed as a result of limit of ") {
                    r.legacy = Some((task.to_owned(), limit.to_owned()));
                }
                continue;
            }
            if let Some((why, _)) = text.split_once(": Kill process ") {
                r.memcg = Some(why == "Memory cgroup out of memory");
                continue;
            }
        }
        let parsed = match oom_report::parse_oom_line(text) {
            Some(p) => Some(p),
            // 4.x: the reason was on the `Kill process` line before.
            None if text.starts_with("Killed process ") => {
                match report.as_ref().and_then(|r| r.memcg) {
                    Some(true) => {
                        oom_report::parse_oom_line(&format!("Memory cgroup out of memory: {text}"))
                    }
                    Some(false) => oom_report::parse_oom_line(&format!("Out of memory: {text}")),
                    None => None,
                }
            }
            None => None,
        };
        match parsed {
            Some(OomLine::Summary(mut sum)) => {
                sum.report = memcg
                    .take()
                    .filter(|(pid, _)| *pid == sum.pid)
                    .map(|(_, r)| r);
                summaries.retain(|s| s.pid != sum.pid);
                summaries.push(sum);
            }
            Some(OomLine::Kill(kill)) => {
                let summary = summaries
                    .iter()
                    .position(|s| s.pid == kill.pid && s.task == kill.comm)
                    .map(|i| summaries.remove(i));
                let r = report.as_ref();
                // 4.x printed the paths on a line of their own, no summary.
                let summary = summary.or_else(|| {
                    let (task, limit) = r?.legacy.clone()?;
                    kill.memcg.then(|| OomSummary {
                        constraint: Constraint::Memcg,
                        oom_memcg: Some(limit),
                        task_memcg: Some(task),
                        task: kill.comm.clone(),
                        pid: kill.pid,
                        uid: None,
                        report: None,
                    })
                });
                // The usage and limit printed for the memcg the summary names.
                let (usage, limit) = match (r, summary.as_ref()) {
                    (Some(r), Some(sum))
                        if r.stats_for.is_some() && r.stats_for == sum.oom_memcg =>
                    {
                        r.usage_limit_kb.unzip()
                    }
                    _ => (None, None),
                };
                let since_boot_us = s.since_boot_us;
                kills.push(LoggedKill {
                    past: PastKill {
                        seq: s.seq.unwrap_or(line_no),
                        ts_us: since_boot_us.unwrap_or(0),
                        kill,
                        summary,
                    },
                    since_boot_us,
                    time: s.time.clone(),
                    usage_bytes: usage.map(|kb| kb.saturating_mul(1024)),
                    limit_bytes: limit
                        .filter(|&kb| kb < UNLIMITED_KB)
                        .map(|kb| kb.saturating_mul(1024)),
                    incident: r
                        .map(|r| r.incident.clone())
                        .unwrap_or_else(|| incident(&s, line_no)),
                });
            }
            None => {}
        }
    }
    if kills.is_empty() {
        if input.contains(&0) {
            return Err(ExplainError::NotText("it holds NUL bytes"));
        }
        let bad = String::from_utf8_lossy(input).matches('\u{fffd}').count();
        if bad > 0 && bad * 8 > input.len() / 8 {
            return Err(ExplainError::NotText("most of it is not UTF-8"));
        }
    }
    Ok(kills)
}

fn incident(s: &Stamped, line_no: u64) -> String {
    match (s.seq, s.since_boot_us) {
        (Some(seq), _) => format!("kmsg-{seq}"),
        (None, Some(us)) => format!("log-{}.{:06}", us / 1_000_000, us % 1_000_000),
        (None, None) => format!("line-{line_no}"),
    }
}

/// The kernel's text of one input line, its prefix stripped; `None` for a
/// `/dev/kmsg` dictionary line.
fn strip(line: &str, opts: Options) -> Option<Stamped> {
    if line.starts_with(' ') && line.contains('=') && !line.trim_start().starts_with('[') {
        // ` SUBSYSTEM=…` after a raw record; nothing else starts so.
        if line.trim_start().split_once('=').is_some_and(|(k, _)| {
            !k.is_empty() && k.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
        }) {
            return None;
        }
    }
    if let Ok(r) = oom_report::parse_record(line) {
        return Some(Stamped {
            seq: Some(r.seq),
            since_boot_us: Some(r.ts_us),
            time: None,
            text: r.text,
        });
    }
    let mut s = Stamped::default();
    let mut rest = line;
    if let Some((time, after)) = syslog_prefix(rest) {
        s.time = time;
        rest = after;
    }
    if let Some((us, after)) = boot_stamp(rest) {
        s.since_boot_us = Some(us);
        rest = after;
    } else if let Some((date, after)) = ctime_stamp(rest) {
        // `dmesg -T`: local time of a zone the log does not name; a wall
        // time only when the caller names it.
        if let Some(offset) = opts.local_offset {
            s.time = date
                .assume_offset(offset)
                .to_offset(time::UtcOffset::UTC)
                .format(&time::format_description::well_known::Rfc3339)
                .ok();
        }
        rest = after;
    }
    rest = caller_id(rest);
    s.text = oom_report::unescape(rest);
    Some(s)
}

/// `[ 4386.372317] ` → microseconds since boot.
fn boot_stamp(line: &str) -> Option<(u64, &str)> {
    let inner = line.strip_prefix('[')?;
    let (stamp, rest) = inner.split_once(']')?;
    let (secs, frac) = stamp.trim_start().split_once('.')?;
    if secs.is_empty() || frac.is_empty() || frac.len() > 9 {
        return None;
    }
    if !secs.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = secs.parse().ok()?;
    let mut us: u64 = 0;
    for i in 0..6 {
        us = us * 10 + frac.as_bytes().get(i).map_or(0, |b| u64::from(b - b'0'));
    }
    let us = secs.checked_mul(1_000_000)?.checked_add(us)?;
    Some((us, rest.strip_prefix(' ').unwrap_or(rest)))
}

/// `[Fri Nov 27 23:13:03 2026] ` (`dmesg -T`): the date, zone unknown.
fn ctime_stamp(line: &str) -> Option<(time::PrimitiveDateTime, &str)> {
    let inner = line.strip_prefix('[')?;
    let (stamp, rest) = inner.split_once(']')?;
    let words: Vec<&str> = stamp.split_whitespace().collect();
    let [_, mon, day, hms, year] = words.as_slice() else {
        return None;
    };
    let month = time::Month::try_from(month(mon)?).ok()?;
    let mut t = hms.split(':').map(|x| x.parse::<u8>().ok());
    let (h, m, sec) = (t.next()??, t.next()??, t.next()??);
    let date = time::Date::from_calendar_date(year.parse().ok()?, month, day.parse().ok()?).ok()?;
    let at = time::PrimitiveDateTime::new(date, time::Time::from_hms(h, m, sec).ok()?);
    Some((at, rest.strip_prefix(' ').unwrap_or(rest)))
}

/// `[ T1234] ` or `[ C3] ` after the stamp (CONFIG_PRINTK_CALLER).
fn caller_id(line: &str) -> &str {
    let Some((id, rest)) = line.strip_prefix('[').and_then(|l| l.split_once(']')) else {
        return line;
    };
    let id = id.trim_start();
    let ok = id.len() > 1
        && matches!(id.as_bytes()[0], b'T' | b'C')
        && id[1..].bytes().all(|b| b.is_ascii_digit());
    if ok {
        rest.strip_prefix(' ').unwrap_or(rest)
    } else {
        line
    }
}

fn month(m: &str) -> Option<u8> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    MONTHS.iter().position(|&x| x == m).map(|i| i as u8 + 1)
}

/// `Nov 27 23:13:03 host kernel: ` (journalctl -k, syslog: no year, no
/// zone, so no wall time) or `2026-11-27T23:13:03[.123456]+00:00 host
/// kernel: ` (journalctl -o short-iso, rsyslog: a wall time).
fn syslog_prefix(line: &str) -> Option<(Option<String>, &str)> {
    let at = line.find(" kernel: ")?;
    let head = line.get(..at)?;
    let rest = line.get(at + " kernel: ".len()..)?;
    let words: Vec<&str> = head.split_whitespace().collect();
    match words.as_slice() {
        [mon, day, hms, _host] if month(mon).is_some() => {
            let ok = day.bytes().all(|b| b.is_ascii_digit())
                && hms.len() == 8
                && hms.bytes().filter(|&b| b == b':').count() == 2;
            ok.then_some((None, rest))
        }
        [iso, _host] => {
            let t = iso_time(iso)?;
            Some((Some(t), rest))
        }
        _ => None,
    }
}

/// An ISO 8601 date with its offset, as RFC 3339 UTC.
fn iso_time(iso: &str) -> Option<String> {
    use time::format_description::well_known::Rfc3339;
    // journalctl's `+0000` is ISO 8601 but not RFC 3339: add the colon.
    let mut iso = iso.to_owned();
    let tail = iso.len().checked_sub(5).and_then(|at| iso.get(at..));
    if let Some(tail) = tail {
        let b = tail.as_bytes();
        if (b[0] == b'+' || b[0] == b'-') && b[1..].iter().all(u8::is_ascii_digit) {
            iso.insert(iso.len() - 2, ':');
        }
    }
    let t = time::OffsetDateTime::parse(&iso, &Rfc3339).ok()?;
    t.to_offset(time::UtcOffset::UTC).format(&Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kills(input: &str) -> Vec<LoggedKill> {
        match explain(input.as_bytes()) {
            Ok(k) => k,
            Err(e) => panic!("{e}"),
        }
    }

    /// A real report from this host (6.18, cgroup v1), trimmed of its
    /// stack and stats: the kill that made it is oomtrace-hog pid 18700 in
    /// a 16 MiB memcg (tests/ barrier cgroup).
    const HOST_618: &str = "\
[ 3773.672951] oomtrace-hog invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
[ 3773.672959] CPU: 0 UID: 0 PID: 18700 Comm: oomtrace-hog Not tainted 6.18.44-fc-v669 #1 PREEMPT(none) 
[ 3773.673077] memory: usage 16384kB, limit 16384kB, failcnt 19
[ 3773.673084] memory+swap: usage 16384kB, limit 9007199254740988kB, failcnt 0
[ 3773.673086] kmem: usage 32kB, limit 9007199254740988kB, failcnt 0
[ 3773.673087] Memory cgroup stats for /oomtrace-barrier-0000436f-0029-4341-8dbb-0018ec0a7e47:
[ 3773.673105] cache 0
[ 3773.673156] Tasks state (memory values in pages):
[ 3773.673157] [  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name
[ 3773.673159] [  18700]     0 18700     4857     4585     4096      489         0    77824        0             0 oomtrace-hog
[ 3773.673163] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/oomtrace-barrier-0000436f-0029-4341-8dbb-0018ec0a7e47,task_memcg=/oomtrace-barrier-0000436f-0029-4341-8dbb-0018ec0a7e47,task=oomtrace-hog,pid=18700,uid=0
[ 3773.673217] Memory cgroup out of memory: Killed process 18700 (oomtrace-hog) total-vm:19428kB, anon-rss:16384kB, file-rss:1956kB, shmem-rss:0kB, UID:0 pgtables:76kB oom_score_adj:0
";
    const BARRIER: &str = "/oomtrace-barrier-0000436f-0029-4341-8dbb-0018ec0a7e47";

    fn check_host(k: &[LoggedKill]) {
        assert_eq!(k.len(), 1, "{k:?}");
        let k = &k[0];
        assert_eq!(
            (k.past.kill.pid, k.past.kill.comm.as_str()),
            (18700, "oomtrace-hog")
        );
        let s = k.past.summary.as_ref().expect("summary");
        assert_eq!(s.oom_memcg.as_deref(), Some(BARRIER));
        assert_eq!(k.limit_bytes, Some(16 << 20));
        assert_eq!(k.usage_bytes, Some(16 << 20));
    }

    fn reprefix(mut f: impl FnMut(&str, &str) -> String) -> String {
        HOST_618
            .lines()
            .map(|l| {
                let (stamp, text) = l.split_once("] ").expect("stamped");
                f(stamp.trim_start_matches('['), text) + "\n"
            })
            .collect()
    }

    #[test]
    fn dmesg_seconds() {
        let k = kills(HOST_618);
        check_host(&k);
        assert_eq!(k[0].since_boot_us, Some(3_773_673_217));
        assert_eq!(k[0].time, None);
        assert_eq!(k[0].incident, "log-3773.672951");
    }

    #[test]
    fn dmesg_dates_and_caller_ids() {
        let k = kills(&reprefix(|_, t| format!("[Fri Nov 27 23:24:48 2026] {t}")));
        check_host(&k);
        // Local time of an unknown zone: not stated.
        assert_eq!((k[0].time.as_deref(), k[0].since_boot_us), (None, None));
        // Unless the caller names the zone.
        let input = reprefix(|_, t| format!("[Fri Nov 27 23:24:48 2026] {t}"));
        let opts = Options {
            local_offset: time::UtcOffset::from_hms(-5, 0, 0).ok(),
        };
        let k = explain_with(input.as_bytes(), opts).unwrap_or_default();
        check_host(&k);
        assert_eq!(k[0].time.as_deref(), Some("2026-11-28T04:24:48Z"));
        let k = kills(&reprefix(|s, t| format!("[{s}] [  T18700] {t}")));
        check_host(&k);
    }

    #[test]
    fn journal_and_syslog() {
        let k = kills(&reprefix(|_, t| {
            format!("Nov 27 23:24:48 node-1 kernel: {t}")
        }));
        check_host(&k);
        assert_eq!(k[0].time, None);
        assert!(k[0].incident.starts_with("line-"));
        // /var/log/messages keeps the dmesg stamp after the prefix.
        let k = kills(&reprefix(|s, t| {
            format!("Nov 27 23:24:48 node-1 kernel: [{s}] {t}")
        }));
        check_host(&k);
        assert_eq!(k[0].since_boot_us, Some(3_773_673_217));
        let k = kills(&reprefix(|_, t| {
            format!("2026-11-27T23:24:48+0100 node-1 kernel: {t}")
        }));
        check_host(&k);
        assert_eq!(k[0].time.as_deref(), Some("2026-11-27T22:24:48Z"));
        let k = kills(&reprefix(|_, t| {
            format!("2026-11-27T23:24:48.123456+00:00 node-1 kernel: {t}")
        }));
        assert_eq!(k[0].time.as_deref(), Some("2026-11-27T23:24:48.123456Z"));
    }

    #[test]
    fn raw_kmsg_records() {
        let mut seq = 25_000;
        let input = reprefix(|s, t| {
            seq += 1;
            let us = s.trim().replace('.', "");
            format!("6,{seq},{us},-;{t}\n SUBSYSTEM=memory")
        });
        let k = kills(&input);
        check_host(&k);
        assert_eq!(k[0].past.seq, 25_012);
        assert_eq!(k[0].incident, "kmsg-25001");
    }

    #[test]
    fn among_other_lines() {
        let input = format!(
            "sos_commands/kernel/dmesg\n\nsome header: x\n{HOST_618}[ 3780.1] eth0: link up\nNov 27 other: line\n"
        );
        check_host(&kills(&input));
    }

    /// 4.x: no `oom-kill:` summary; the paths on a `Task in` line, the
    /// reason on the `Kill process` line, and a bare `Killed process`.
    /// Synthesized from 4.14's mm/memcontrol.c and mm/oom_kill.c formats.
    #[test]
    fn kernel_4x_report() {
        let pod = "/kubepods/burstable/pod6f1c2a9e-3b7d-4c11-9e0a-2b8f5d4c7a10";
        let cid = "3f9a1c0b7e2d4f6a8b1c3d5e7f9a0b2c4d6e8f0a1b3c5d7e9f1a2b3c4d5e6f70";
        let input = format!(
            "[ 5.0] java invoked oom-killer: gfp_mask=0x14000c0(GFP_KERNEL), nodemask=(null), order=0, oom_score_adj=999
[ 5.0] Task in {pod}/{cid} killed as a result of limit of {pod}/{cid}
[ 5.0] memory: usage 262144kB, limit 262144kB, failcnt 17
[ 5.0] Memory cgroup stats for {pod}/{cid}: cache:0KB rss:262144KB
[ 5.0] Memory cgroup out of memory: Kill process 4242 (java) score 1995 or sacrifice child
[ 5.0] Killed process 4242 (java) total-vm:3000000kB, anon-rss:262000kB, file-rss:100kB, shmem-rss:0kB
"
        );
        let k = kills(&input);
        assert_eq!(k.len(), 1);
        let s = k[0].past.summary.as_ref().expect("from Task in");
        assert_eq!(s.task_memcg, Some(format!("{pod}/{cid}")));
        assert_eq!(s.constraint, Constraint::Memcg);
        assert!(k[0].past.kill.memcg);
        // 4.x's stats line carries the stats after the path.
        assert_eq!(k[0].limit_bytes, Some(256 << 20));
        // A global 4.x kill.
        let k = kills(
            "x invoked oom-killer: gfp_mask=0x0\nOut of memory: Kill process 7 (x) score 900 or sacrifice child\nKilled process 7 (x) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB\n",
        );
        assert_eq!(k.len(), 1);
        assert!(!k[0].past.kill.memcg);
        // A bare kill line without its reason: no kind, so no verdict.
        assert!(kills("Killed process 7 (x) total-vm:1kB\n").is_empty());
    }

    /// Early 5.x: the summary, and a kill line without `UID:`, `pgtables:`
    /// and `oom_score_adj:` (synthesized from 5.1's mm/oom_kill.c format).
    #[test]
    fn kernel_5x_report() {
        let input = "\
[  99.000001] stress invoked oom-killer: gfp_mask=0x6200ca(GFP_HIGHUSER_MOVABLE), order=0, oom_score_adj=0
[  99.000002] memory: usage 102400kB, limit 102400kB, failcnt 12
[  99.000003] Memory cgroup stats for /system.slice/stress.service: cache:0KB rss:102400KB
[  99.000004] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/system.slice/stress.service,task_memcg=/system.slice/stress.service,task=stress,pid=777,uid=0
[  99.000005] Memory cgroup out of memory: Killed process 777 (stress) total-vm:110000kB, anon-rss:102000kB, file-rss:300kB, shmem-rss:0kB
";
        let k = kills(input);
        assert_eq!(k.len(), 1);
        assert_eq!(k[0].past.kill.oom_score_adj, None);
        assert_eq!(k[0].limit_bytes, Some(100 << 20));
        let v = crate::attribution::verdict_from_log(
            crate::attribution::from_saved_log(&k[0]),
            Default::default(),
        );
        assert_eq!(
            v.limit.and_then(|l| l.cgroup).as_deref(),
            Some("/system.slice/stress.service")
        );
    }

    #[test]
    fn interleaved_reports_lend_nothing() {
        let a = "/a";
        let input = format!(
            "[1.0] p invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
[1.1] memory: usage 1024kB, limit 1024kB, failcnt 1
[1.1] Memory cgroup stats for {a}:
[1.2] q invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
[1.3] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg={a},task_memcg={a},task=p,pid=1,uid=0
[1.4] memory: usage 2048kB, limit 2048kB, failcnt 1
[1.4] Memory cgroup stats for /b:
[1.5] Memory cgroup out of memory: Killed process 1 (p) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0
[1.6] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/b,task_memcg=/b,task=q,pid=2,uid=0
[1.7] Memory cgroup out of memory: Killed process 2 (q) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0
"
        );
        let k = kills(&input);
        assert_eq!(k.len(), 2);
        // p's summary is p's; the limit printed in the report now open is /b's.
        assert_eq!(
            k[0].past
                .summary
                .as_ref()
                .and_then(|s| s.oom_memcg.as_deref()),
            Some(a)
        );
        assert_eq!(k[0].limit_bytes, None);
        assert_eq!(
            k[1].past
                .summary
                .as_ref()
                .and_then(|s| s.oom_memcg.as_deref()),
            Some("/b")
        );
        assert_eq!(k[1].limit_bytes, Some(2048 * 1024));
    }

    #[test]
    fn truncated_and_empty() {
        assert!(kills("").is_empty());
        assert!(kills("\n\n[ 1.0] eth0: link up\n").is_empty());
        // The report cut before its kill line: nothing.
        let cut = HOST_618
            .rsplit_once("[ 3773.673217]")
            .map(|(a, _)| a)
            .unwrap_or_default();
        assert!(kills(cut).is_empty());
        // Every cut of the report: nothing or the right process.
        for (at, _) in HOST_618.char_indices() {
            for k in kills(&HOST_618[..at]) {
                assert_eq!(k.past.kill.pid, 18700);
            }
        }
        // Unlimited limits are no limit.
        let unlimited = HOST_618.replace("limit 16384kB", "limit 9007199254740988kB");
        assert_eq!(kills(&unlimited)[0].limit_bytes, None);
    }

    /// A cheap stand-in for the fuzz target in `cargo test`: the report
    /// with bytes flipped, dropped and duplicated, through the verdicts.
    #[test]
    fn mutated_reports_never_panic() {
        let base = HOST_618.as_bytes();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..2000 {
            let mut m = base.to_vec();
            for _ in 0..(next() % 8 + 1) {
                if m.is_empty() {
                    break;
                }
                let at = (next() as usize) % m.len();
                match next() % 4 {
                    0 => m[at] = next() as u8,
                    1 => {
                        m.remove(at);
                    }
                    2 => m.insert(at, b"\n[]:;,=()-"[(next() % 10) as usize]),
                    _ => {
                        let end = (at + (next() as usize) % 64).min(m.len());
                        let piece = m[at..end].to_vec();
                        m.splice(at..at, piece);
                    }
                }
            }
            for k in explain(&m).unwrap_or_default() {
                let a = crate::attribution::from_saved_log(&k);
                let v = crate::attribution::verdict_from_log(a, Default::default());
                assert!(v.summary.starts_with("From the kernel log: "));
            }
        }
    }

    #[test]
    fn binary_input() {
        assert!(matches!(
            explain(b"\x7fELF\x02\x01\x01\0\0\0"),
            Err(ExplainError::NotText(_))
        ));
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i * 7919 % 251) as u8 | 0x80)
            .collect();
        assert!(matches!(explain(&garbage), Err(ExplainError::NotText(_))));
        // A kill in a file with some binary in it is still a kill.
        let mut mixed = b"\0\x01\xff\n".to_vec();
        mixed.extend_from_slice(HOST_618.as_bytes());
        assert_eq!(explain(&mixed).map(|k| k.len()), Ok(1));
    }
}
