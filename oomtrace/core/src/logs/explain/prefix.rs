//! What comes before the kernel's text on a pasted line, and where that text
//! starts. People paste `dmesg` (`[ seconds]` stamps, or `-T` dates),
//! `journalctl` (short or ISO, with continuation lines indented under the
//! message), syslog files with or without the host name, raw `/dev/kmsg`
//! records, `grep` output over several files, and text quoted in a ticket
//! (`> `, indentation). The stamps say when, when they can.

use crate::logs::kmsg;

/// One input line: where the kernel's text starts, and what its prefix said.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stamped {
    pub seq: Option<u64>,
    pub since_boot_us: Option<u64>,
    pub time: Option<String>,
    /// The line had a prefix of a known shape (a stamp, a syslog or kmsg
    /// header): it is a record of its own, not a fold of the line before.
    pub prefixed: bool,
    /// Whose line it is when a syslog-style prefix names it (`kernel`,
    /// `kubelet`, `containerd`, `systemd`).
    pub program: Option<String>,
    pub text: String,
}

/// What the log itself cannot say.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// The UTC offset of `dmesg -T` dates, which carry none; without it
    /// their time is null.
    pub local_offset: Option<time::UtcOffset>,
}

/// A line's kernel text and stamps; `None` for a `/dev/kmsg` dictionary
/// line (` SUBSYSTEM=…`), which belongs to the record before.
pub fn strip(line: &str, opts: Options) -> Option<Stamped> {
    let dictionary = line.starts_with(' ')
        && !line.trim_start().starts_with('[')
        && line.trim_start().split_once('=').is_some_and(|(k, _)| {
            !k.is_empty() && k.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
        });
    if dictionary {
        return None;
    }
    let line = unquote(line).trim_start();
    if line.starts_with('{') {
        if let Some(s) = journal_json(line) {
            return Some(s);
        }
    }
    if let Ok(r) = kmsg::parse_record(line) {
        return Some(Stamped {
            seq: Some(r.seq),
            since_boot_us: Some(r.ts_us),
            prefixed: true,
            program: Some("kernel".into()),
            text: r.text,
            ..Stamped::default()
        });
    }
    let mut s = Stamped::default();
    let mut rest = grep_file(line).unwrap_or(line);
    rest = priority(rest);
    rest = facility_level(rest);
    if let Some((time, program, after)) = syslog_prefix(rest) {
        s.time = time;
        s.program = Some(program.to_owned());
        s.prefixed = true;
        rest = after;
    }
    if let Some((us, after)) = boot_stamp(rest) {
        s.since_boot_us = Some(us);
        s.prefixed = true;
        rest = after;
        // `journalctl -o short-monotonic`: the host and program follow.
        if s.program.is_none() {
            if let Some((program, after)) = host_program(rest) {
                s.program = Some(program.to_owned());
                rest = after;
            }
        }
    } else if let Some((date, after)) = ctime_stamp(rest) {
        // `dmesg -T`: local time of a zone the log does not name; a wall
        // time only when the caller names it.
        if let Some(offset) = opts.local_offset {
            s.time = Some(crate::kernel::clock::rfc3339(date.assume_offset(offset)));
        }
        s.prefixed = true;
        rest = after;
    }
    rest = caller_id(rest);
    // Continuation lines (journalctl, dmesg) and pasted blocks are indented.
    s.text = kmsg::unescape(rest.trim_start());
    Some(s)
}

/// `journalctl -o json`: one object per record, the text in `MESSAGE`
/// (an array of bytes when it is not UTF-8), the wall clock in
/// `__REALTIME_TIMESTAMP` (µs since the epoch), the kernel's own stamp in
/// `_SOURCE_MONOTONIC_TIMESTAMP`.
fn journal_json(line: &str) -> Option<Stamped> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let text = match &v["MESSAGE"] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(bytes) => {
            let raw: Vec<u8> = bytes
                .iter()
                .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            crate::kernel::event::escape_bytes(&raw)
        }
        _ => return None,
    };
    let number = |key: &str| v[key].as_str().and_then(|n| n.parse::<u64>().ok());
    let time = number("__REALTIME_TIMESTAMP")
        .map(|us| crate::kernel::clock::rfc3339_ns(i128::from(us) * 1000));
    Some(Stamped {
        seq: None,
        since_boot_us: number("_SOURCE_MONOTONIC_TIMESTAMP"),
        time,
        prefixed: true,
        program: v["SYSLOG_IDENTIFIER"].as_str().map(str::to_owned),
        text,
    })
}

/// `> ` quote marks of a ticket or mail, any depth.
fn unquote(line: &str) -> &str {
    let mut rest = line;
    loop {
        let t = rest.trim_start();
        match t.strip_prefix('>') {
            Some(after) => rest = after.strip_prefix(' ').unwrap_or(after),
            None => return rest,
        }
    }
}

/// `grep` over several files puts `FILE:` (matches) or `FILE-` (context)
/// before each line, and `-n` a line number: taken off only when a known
/// stamp or date follows.
fn grep_file(line: &str) -> Option<&str> {
    let head = line.split_whitespace().next()?;
    if head.starts_with('[') || !(head.contains(':') || head.contains('-')) {
        return None;
    }
    for (at, c) in line.char_indices() {
        if c == ' ' {
            return None;
        }
        if c != ':' && c != '-' {
            continue;
        }
        let mut rest = line.get(at + 1..)?;
        // `-n`: a line number and its own separator.
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && matches!(rest.as_bytes().get(digits), Some(b':' | b'-')) {
            rest = rest.get(digits + 1..)?;
        }
        let known = syslog_prefix(rest).is_some()
            || boot_stamp(rest).is_some()
            || ctime_stamp(rest).is_some()
            || kmsg::parse_record(rest).is_ok();
        if known {
            return Some(rest);
        }
    }
    None
}

/// `kern  :err   : ` (`dmesg -x`).
fn facility_level(line: &str) -> &str {
    let Some((facility, rest)) = line.split_once(':') else {
        return line;
    };
    let Some((level, rest)) = rest.split_once(':') else {
        return line;
    };
    const FACILITIES: [&str; 4] = ["kern", "user", "daemon", "syslog"];
    const LEVELS: [&str; 8] = [
        "emerg", "alert", "crit", "err", "warn", "notice", "info", "debug",
    ];
    if FACILITIES.contains(&facility.trim_end()) && LEVELS.contains(&level.trim()) {
        rest.strip_prefix(' ').unwrap_or(rest)
    } else {
        line
    }
}

/// `host kernel: ` after a monotonic stamp.
fn host_program(line: &str) -> Option<(&str, &str)> {
    let (head, rest) = line.split_once(": ")?;
    let mut words = head.split(' ');
    let (_host, program) = (words.next()?, words.next()?);
    if words.next().is_some() {
        return None;
    }
    let program = program.split_once('[').map_or(program, |(p, _)| p);
    matches!(
        program,
        "kernel" | "kubelet" | "containerd" | "crio" | "dockerd" | "systemd"
    )
    .then_some((program, rest))
}

/// `<6>` before a stamp (`dmesg -r`, some syslog daemons).
fn priority(line: &str) -> &str {
    let Some((n, rest)) = line.strip_prefix('<').and_then(|l| l.split_once('>')) else {
        return line;
    };
    if !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()) {
        rest
    } else {
        line
    }
}

/// `[ 4386.372317] ` → microseconds since boot.
pub fn boot_stamp(line: &str) -> Option<(u64, &str)> {
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

/// `Nov 27 23:13:03 host kernel: ` (journalctl, syslog: no year, no zone,
/// so no wall time; EKS's syslog leaves the host out), or
/// `2026-11-27T23:13:03[.123456]+00:00 host kernel: ` (journalctl -o
/// short-iso, rsyslog: a wall time). The program may carry a pid
/// (`kubelet[2480]:`).
fn syslog_prefix(line: &str) -> Option<(Option<String>, &str, &str)> {
    let (head, rest) = line.split_once(": ")?;
    let words: Vec<&str> = head.split_whitespace().collect();
    let (date, program) = words.split_at(words.len().checked_sub(1)?);
    let program = program.first()?;
    let program = program.split_once('[').map_or(*program, |(p, pid)| {
        if pid
            .strip_suffix(']')
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        {
            p
        } else {
            ""
        }
    });
    if program.is_empty()
        || !program
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@/".contains(&b))
    {
        return None;
    }
    // `-o short-precise` adds a fraction to the seconds.
    let hms_ok = |hms: &str| {
        let whole = hms.split_once('.').map_or(hms, |(w, f)| {
            if f.bytes().all(|b| b.is_ascii_digit()) {
                w
            } else {
                ""
            }
        });
        whole.len() == 8 && whole.bytes().filter(|&b| b == b':').count() == 2
    };
    let classic = |mon: &str, day: &str, hms: &str| {
        month(mon).is_some()
            && !day.is_empty()
            && day.bytes().all(|b| b.is_ascii_digit())
            && hms_ok(hms)
    };
    match date {
        [mon, day, hms] | [mon, day, hms, _] if classic(mon, day, hms) => {
            Some((None, program, rest))
        }
        // `-o short-full`: `Thu 2023-10-12 19:00:20 UTC host`.
        [_, ymd, hms, zone] | [_, ymd, hms, zone, _] if hms_ok(hms) && ymd.len() == 10 => {
            let time = match *zone {
                "UTC" | "GMT" | "Z" => iso_time(&format!("{ymd}T{hms}Z")),
                _ => None,
            };
            Some((time, program, rest))
        }
        [iso] | [iso, _] => Some((Some(iso_time(iso)?), program, rest)),
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
    Some(crate::kernel::clock::rfc3339(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(line: &str) -> String {
        strip(line, Options::default())
            .map(|s| s.text)
            .unwrap_or_default()
    }

    #[test]
    fn every_prefix_gives_the_same_text() {
        let want = "Memory cgroup out of memory: Killed process 1 (x) total-vm:1kB";
        for line in [
            want.to_owned(),
            format!("[ 3773.673217] {want}"),
            format!("[Fri Nov 27 23:24:48 2026] {want}"),
            format!("Nov 27 23:24:48 node-1 kernel: {want}"),
            format!("Sep  8 06:22:08 kernel: {want}"),
            format!("Nov 27 23:24:48 node-1 kernel: [ 3773.673217] {want}"),
            format!("2026-11-27T23:24:48+0100 node-1 kernel: {want}"),
            format!("3,420,367390388,-;{want}"),
            format!("<3>[ 3773.673217] {want}"),
            format!("/var/log/messages-20230501:May  6 21:11:29 worker-1 kernel: {want}"),
            format!("kern.log-12-[ 3773.673217] {want}"),
            format!("    [ 3773.673217] {want}"),
            format!("> > [ 3773.673217] {want}"),
            format!("Nov 27 23:24:48.123456 node-1 kernel: {want}"),
            format!("[ 3773.673217] node-1 kernel: {want}"),
            format!("Fri 2026-11-27 23:24:48 UTC node-1 kernel: {want}"),
            format!("kern  :err   : [ 3773.673217] {want}"),
            format!("[ 3773.673217] [  T18700] {want}"),
        ] {
            assert_eq!(text(&line), want, "{line}");
        }
    }

    #[test]
    fn journalctl_json() {
        let s = strip(
            r#"{"__REALTIME_TIMESTAMP":"1701000000123456","_SOURCE_MONOTONIC_TIMESTAMP":"8523347282","SYSLOG_IDENTIFIER":"kernel","MESSAGE":"memory: usage 102400kB, limit 102400kB, failcnt 6402"}"#,
            Options::default(),
        )
        .unwrap_or_default();
        assert_eq!(
            s.text,
            "memory: usage 102400kB, limit 102400kB, failcnt 6402"
        );
        assert_eq!(s.since_boot_us, Some(8_523_347_282));
        assert_eq!(s.time.as_deref(), Some("2023-11-26T12:00:00.123456000Z"));
        assert_eq!(s.program.as_deref(), Some("kernel"));
        let s = strip(r#"{"MESSAGE":[110,97,195]}"#, Options::default()).unwrap_or_default();
        assert_eq!(s.text, "na\\xc3");
    }

    #[test]
    fn programs_and_stamps() {
        let s = strip(
            "Oct 12 19:34:45 aks-node kubelet[2480]: I1012 19:34:45.445172    2480 eviction_manager.go:595] x",
            Options::default(),
        )
        .unwrap_or_default();
        assert_eq!(s.program.as_deref(), Some("kubelet"));
        assert!(s.text.starts_with("I1012 "));
        let s = strip("Sep  8 06:22:08 kernel: oom-kill:x", Options::default()).unwrap_or_default();
        assert_eq!(
            (s.program.as_deref(), s.text.as_str()),
            (Some("kernel"), "oom-kill:x")
        );
        // A continuation line has no prefix of its own.
        let s = strip("                     file 135168", Options::default()).unwrap_or_default();
        assert!(!s.prefixed);
        assert_eq!(s.text, "file 135168");
        let s = strip(
            "Fri 2026-11-27 23:24:48 UTC node-1 kernel: x",
            Options::default(),
        )
        .unwrap_or_default();
        assert_eq!(s.time.as_deref(), Some("2026-11-27T23:24:48.000000000Z"));
        // A colon in the text is not a syslog prefix.
        let s = strip(
            "Memory cgroup out of memory: Kill process 1 (x)",
            Options::default(),
        )
        .unwrap_or_default();
        assert_eq!((s.program, s.prefixed), (None, false));
    }
}
