//! /dev/kmsg: the kernel's OOM lines. Live, a thread of its own (reads
//! block) follows the log from its end and hands the `oom-kill:` summary
//! lines, each with its report's memcg numbers, and the `Killed process`
//! lines to the pipeline; the kernel rate-limits the reports, so they fill
//! gaps and give the memory at the kill when they come. At start, the backlog since the last run shows the kills that
//! happened while oomtrace was not running.

use std::{
    collections::HashMap,
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

use crate::logs::oom_report::{self, OomKill, OomLine, OomSummary, ReportReader};

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
                            let Ok(record) = oom_report::parse_record(&text) else {
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
                let Ok(record) = oom_report::parse_record(&text) else {
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
