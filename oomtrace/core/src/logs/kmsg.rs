//! /dev/kmsg: the kernel's OOM lines. Live, a thread of its own (reads
//! block) follows the log from its end and hands the `oom-kill:` summary
//! lines, each with its report's memcg numbers, and the `Killed process`
//! lines to the pipeline; the kernel rate-limits the reports, so they fill
//! gaps and give the memory at the kill when they come. At start, the backlog since the last run shows the kills that
//! happened while oomtrace was not running.

use std::{
    collections::HashMap,
    fmt,
    fs::OpenOptions,
    io::{Read, Seek, SeekFrom},
    os::{fd::OwnedFd, unix::fs::OpenOptionsExt},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::Sender;

use crate::logs::oom_report::{OomKill, OomLine, OomSummary, ReportReader};

/// One `/dev/kmsg` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsgRecord {
    pub seq: u64,
    /// Microseconds since boot (CLOCK_MONOTONIC, not wall time).
    pub ts_us: u64,
    /// The message with the kernel's `\xNN` escapes decoded, so task names
    /// and cgroup paths compare equal to what tracepoints and cgroupfs show.
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderField {
    Priority,
    Sequence,
    Timestamp,
    Flags,
}

impl fmt::Display for HeaderField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeaderField::Priority => "priority",
            HeaderField::Sequence => "sequence number",
            HeaderField::Timestamp => "timestamp",
            HeaderField::Flags => "flags",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KmsgError {
    /// A ` KEY=VALUE` dictionary line that follows a record; callers skip it.
    #[error("dictionary continuation line, not a record")]
    Continuation,
    #[error("empty record")]
    Empty,
    #[error("record has no `;` before its text")]
    NoText,
    #[error("record header has no {0}")]
    MissingField(HeaderField),
    #[error("record {field} is not a number: {value:?}")]
    BadNumber { field: HeaderField, value: String },
}

/// Parses `pri,seq,ts_us,flags[,more];text`. Input may be a whole `read()`
/// from `/dev/kmsg`: anything after the first newline (the dictionary) is
/// ignored.
pub fn parse_record(line: &str) -> Result<KmsgRecord, KmsgError> {
    let line = line.split('\n').next().unwrap_or_default();
    if line.starts_with(' ') {
        return Err(KmsgError::Continuation);
    }
    if line.trim().is_empty() {
        return Err(KmsgError::Empty);
    }
    let (header, text) = line.split_once(';').ok_or(KmsgError::NoText)?;
    // Later kernels append fields (e.g. `caller=T1`); the first four are fixed.
    let mut fields = header.split(',');
    let mut next = |which| fields.next().ok_or(KmsgError::MissingField(which));
    let priority = next(HeaderField::Priority)?;
    let seq = next(HeaderField::Sequence)?;
    let ts_us = next(HeaderField::Timestamp)?;
    let flags = next(HeaderField::Flags)?;
    number::<u32>(HeaderField::Priority, priority)?;
    if flags.is_empty() {
        return Err(KmsgError::MissingField(HeaderField::Flags));
    }
    Ok(KmsgRecord {
        seq: number(HeaderField::Sequence, seq)?,
        ts_us: number(HeaderField::Timestamp, ts_us)?,
        text: unescape(text.strip_suffix('\r').unwrap_or(text)),
    })
}

fn number<T: std::str::FromStr>(field: HeaderField, value: &str) -> Result<T, KmsgError> {
    value.parse().map_err(|_| KmsgError::BadNumber {
        field,
        value: value.to_owned(),
    })
}

/// The kernel writes bytes below space, at or above 127, and `\` itself as
/// `\xNN`; multi-byte UTF-8 therefore arrives as several escapes.
pub(crate) fn unescape(text: &str) -> String {
    if !text.contains('\\') {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = match (b, bytes.get(i + 1), bytes.get(i + 2..i + 4)) {
            (b'\\', Some(b'x'), Some(hex)) => std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok()),
            _ => None,
        };
        match escaped {
            Some(decoded) => {
                out.push(decoded);
                i += 4;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    // Bytes that are not UTF-8 read as they do from the ring buffer and
    // cgroupfs (`\xNN`), so paths from the three sources compare equal.
    crate::kernel::event::escape_bytes(&out)
}

/// A summary or kill line, with the log sequence number and stamp
/// (microseconds since boot) of its record.
#[derive(Clone, Debug)]
pub struct Seen {
    pub seq: u64,
    pub ts_us: u64,
    pub line: OomLine,
}

/// A kill found in the log's backlog, with its summary when the kernel
/// printed one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastKill {
    pub seq: u64,
    /// Microseconds since boot, as the log stamps it.
    pub ts_us: u64,
    pub kill: OomKill,
    pub summary: Option<OomSummary>,
}

/// What the reader hands the pipeline.
#[derive(Clone, Debug)]
pub enum FromLog {
    /// A summary or kill line.
    Line(Seen),
    /// Every record the log held when a [`Nudge`] stamped at this
    /// CLOCK_BOOTTIME ns was taken has been read (and its lines sent before
    /// this). The kernel stores a kill's OOM report before it marks the
    /// victim, so a victim marked by then whose report was not among them
    /// has none: the kernel rate-limited it.
    Drained(u64),
}

/// Wakes the reader to drain /dev/kmsg now. The kernel wakes its readers
/// lazily (on the next timer tick, milliseconds later), but the OOM report a
/// victim's verdict waits for is in the log before the victim record leaves
/// the kernel: the daemon nudges the reader whenever records arrive, and the
/// reader answers with [`FromLog::Drained`] once it has read to the end.
#[derive(Clone)]
pub struct Nudge {
    fd: Arc<OwnedFd>,
    through_ns: Arc<AtomicU64>,
}

impl Nudge {
    /// `through_ns`: a CLOCK_BOOTTIME stamp taken after the records that
    /// ask for the drain were read.
    pub fn now(&self, through_ns: u64) {
        self.through_ns.fetch_max(through_ns, Ordering::AcqRel);
        let _ = rustix::io::write(&*self.fd, &1u64.to_ne_bytes());
    }
}

pub fn spawn_reader(tx: Sender<FromLog>) -> std::io::Result<Nudge> {
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open("/dev/kmsg")?;
    // /dev/kmsg seeks to the end of the ring: only what happens from now on.
    file.seek(SeekFrom::End(0))?;
    let nudge = Nudge {
        fd: Arc::new(rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        )?),
        through_ns: Arc::new(AtomicU64::new(0)),
    };
    let woken = nudge.clone();
    std::thread::Builder::new()
        .name("kmsg".into())
        .spawn(move || {
            // One read returns exactly one record; 8 KiB is the kernel's maximum.
            let mut buf = vec![0u8; 8192];
            let mut reports = ReportReader::default();
            // The stamp of the nudge this drain answers.
            let mut asked: Option<u64> = None;
            loop {
                // Everything there is, then wait for more or a nudge.
                loop {
                    match file.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            let text = String::from_utf8_lossy(&buf[..n]);
                            let Ok(record) = parse_record(&text) else {
                                continue;
                            };
                            for line in reports.feed(&record.text) {
                                // Report boundaries are explain's; the
                                // pipeline takes summaries and kills.
                                if !matches!(line, OomLine::Summary(_) | OomLine::Kill(_)) {
                                    continue;
                                }
                                let seen = Seen {
                                    seq: record.seq,
                                    ts_us: record.ts_us,
                                    line,
                                };
                                if tx.blocking_send(FromLog::Line(seen)).is_err() {
                                    return;
                                }
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        // EPIPE: records were overwritten before we read them; go on.
                        Err(e) if e.raw_os_error() == Some(32) => continue,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            tracing::warn!("reading /dev/kmsg stopped: {e}");
                            return;
                        }
                    }
                }
                if let Some(through) = asked.take() {
                    if tx.blocking_send(FromLog::Drained(through)).is_err() {
                        return;
                    }
                }
                let mut fds = [
                    rustix::event::PollFd::new(&file, rustix::event::PollFlags::IN),
                    rustix::event::PollFd::new(&*woken.fd, rustix::event::PollFlags::IN),
                ];
                match rustix::event::poll(&mut fds, None) {
                    Ok(_) | Err(rustix::io::Errno::INTR) => {}
                    Err(e) => {
                        tracing::warn!("waiting on /dev/kmsg stopped: {e}");
                        return;
                    }
                }
                if !fds[1].revents().is_empty() {
                    let mut count = [0u8; 8];
                    let _ = rustix::io::read(&*woken.fd, &mut count);
                    // Loaded after the eventfd is read, before the drain:
                    // every record stored before the stamp is read next.
                    asked = Some(woken.through_ns.load(Ordering::Acquire));
                }
            }
        })?;
    Ok(nudge)
}

/// The kills in the log after sequence number `after` (all of them when
/// `None`), oldest first, and the last sequence number read.
pub fn backlog(after: Option<u64>) -> std::io::Result<(Vec<PastKill>, Option<u64>)> {
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open("/dev/kmsg")?;
    let mut buf = vec![0u8; 8192];
    let mut kills = Vec::new();
    let mut summaries: HashMap<u32, OomSummary> = HashMap::new();
    let mut last = None;
    let mut reports = ReportReader::default();
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                let Ok(record) = parse_record(&text) else {
                    continue;
                };
                last = Some(record.seq);
                if after.is_some_and(|a| record.seq <= a) {
                    continue;
                }
                for line in reports.feed(&record.text) {
                    match line {
                        // The summary comes just before its kill line.
                        OomLine::Summary(s) => {
                            summaries.insert(s.pid, s);
                        }
                        OomLine::Kill(kill) => {
                            let summary = summaries.remove(&kill.pid);
                            kills.push(PastKill {
                                seq: record.seq,
                                ts_us: record.ts_us,
                                kill,
                                summary,
                            });
                        }
                        OomLine::Start | OomLine::Unfinished(_) => {}
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e)
                if e.raw_os_error() == Some(32) || e.kind() == std::io::ErrorKind::Interrupted =>
            {
                continue
            }
            Err(e) => return Err(e),
        }
    }
    Ok((kills, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(line: &str) -> KmsgRecord {
        match parse_record(line) {
            Ok(r) => r,
            Err(e) => panic!("{e}: {line}"),
        }
    }

    #[test]
    fn record_shapes() {
        let with_dict = "6,190,187467,-;acpi PNP0A08:00: _OSC: OS supports [ExtendedConfig]\n SUBSYSTEM=acpi\n DEVICE=+acpi:PNP0A08:00\n";
        let r = record(with_dict);
        assert_eq!(
            r.text,
            "acpi PNP0A08:00: _OSC: OS supports [ExtendedConfig]"
        );
        assert_eq!((r.seq, r.ts_us), (190, 187_467));
        // CONFIG_PRINTK_CALLER adds a field; a `;` in the text is text.
        let r = record("4,339,5140900,-,caller=T1;a;b");
        assert_eq!((r.seq, r.text.as_str()), (339, "a;b"));
        assert_eq!(record("12,0,0,c;").text, "");
    }

    #[test]
    fn malformed_records() {
        let cases: [(&str, KmsgError); 11] = [
            (" SUBSYSTEM=acpi", KmsgError::Continuation),
            ("", KmsgError::Empty),
            ("\n", KmsgError::Empty),
            ("6,1,2,-", KmsgError::NoText),
            ("6,1,2;x", KmsgError::MissingField(HeaderField::Flags)),
            ("6,1;x", KmsgError::MissingField(HeaderField::Timestamp)),
            ("6,1,2,;x", KmsgError::MissingField(HeaderField::Flags)),
            (
                "x,1,2,-;t",
                KmsgError::BadNumber {
                    field: HeaderField::Priority,
                    value: "x".into(),
                },
            ),
            (
                "6,-1,2,-;t",
                KmsgError::BadNumber {
                    field: HeaderField::Sequence,
                    value: "-1".into(),
                },
            ),
            (
                "6,1,99999999999999999999999,-;t",
                KmsgError::BadNumber {
                    field: HeaderField::Timestamp,
                    value: "99999999999999999999999".into(),
                },
            ),
            (
                "6,1,ünï,-;t",
                KmsgError::BadNumber {
                    field: HeaderField::Timestamp,
                    value: "ünï".into(),
                },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(parse_record(line), Err(want), "{line:?}");
        }
    }
}
