//! The stream audits itself against the kernel: /proc/vmstat `oom_kill`
//! counts every process the OOM killer kills, machine-wide; every one of
//! them should have a verdict. Kills the kernel counted that still have no
//! verdict after [`DEADLINE_NS`] are reported, once, as a `missed` line.
//!
//! Pure: the engine reads the count (through `Observe`, so a recording
//! replays it) and hands it here with the tick's time.
//!
//! What the kernel counts per kill (mm/oom_kill.c): `__oom_kill_process`
//! counts `OOM_KILL` and then marks the victim (`oom:mark_victim`, once per
//! process: a second mark returns early). An oom.group kill (cgroup v2,
//! `memory.oom.group`) runs `__oom_kill_process` for the chosen victim,
//! then again for every member of the group — the chosen victim included:
//! the kernel counts it twice and marks it once. So the kills accounted
//! for are the verdicts of marked victims plus one per oom.group incident.
//! The kernel also marks without counting (an allocating task that is
//! already exiting): more verdicts than kills, which is never reported.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::{output::sink::Missed, output::verdict::wall_time, output::wording};

/// A kill counted by the kernel must have its verdict by then: victims wait
/// up to 300 ms for the kernel log, records queue in the ring buffer, and
/// the count is read once a second.
pub const DEADLINE_NS: u64 = 3_000_000_000;
/// /proc/vmstat is read at most this often (ticks come every second, or
/// every 50 ms while victims wait for the kernel log).
pub const READ_EVERY_NS: u64 = 900_000_000;

/// /proc/vmstat `oom_kill` once the hooks were attached: the audit's base.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelCount {
    /// CLOCK_BOOTTIME ns of the read.
    pub boot_ns: u64,
    pub oom_kill: u64,
}

#[derive(Clone, Debug)]
pub struct Audit {
    base: u64,
    /// (boot ns, kills since start) of the reads still needed: the newest
    /// one at least [`DEADLINE_NS`] old first, then the younger ones.
    readings: VecDeque<(u64, u64)>,
    last_read: u64,
    /// Kills since start, at the latest read.
    kernel: u64,
    /// Verdicts of marked victims (the OOM hooks', or in kernel-log mode
    /// the live `Killed process` lines'; not evictions, not kills found in
    /// the kernel log at start).
    verdicts: u64,
    /// oom.group incidents: the kernel counted their chosen victim twice.
    groups: u64,
    /// Kills reported missed, in all.
    missed: u64,
    /// Up to here, every kill the kernel counted was accounted for.
    accounted_at: u64,
}

impl Audit {
    pub fn new(base: KernelCount) -> Audit {
        Audit {
            base: base.oom_kill,
            readings: VecDeque::from([(base.boot_ns, 0)]),
            last_read: base.boot_ns,
            kernel: 0,
            verdicts: 0,
            groups: 0,
            missed: 0,
            accounted_at: base.boot_ns,
        }
    }

    /// Whether the count is due for a read at `now`.
    pub fn due(&self, now: u64) -> bool {
        now.saturating_sub(self.last_read) >= READ_EVERY_NS
    }

    /// One verdict of a marked victim; `group_kill` for the first victim
    /// of an oom.group incident.
    pub fn verdict(&mut self, group_kill: bool) {
        self.verdicts += 1;
        self.groups += u64::from(group_kill);
    }

    /// A kill the kernel counted a second time: the chosen victim of an
    /// oom.group kill, seen again as a member of its group (its verdict was
    /// counted the first time).
    pub fn counted_twice(&mut self) {
        self.groups += 1;
    }

    /// Kills since start at the latest read.
    pub fn kernel_oom_kills(&self) -> u64 {
        self.kernel
    }

    pub fn verdicts(&self) -> u64 {
        self.verdicts
    }

    pub fn oom_group_kills(&self) -> u64 {
        self.groups
    }

    pub fn missed(&self) -> u64 {
        self.missed
    }

    fn accounted(&self) -> u64 {
        self.verdicts + self.groups + self.missed
    }

    /// The kernel's count read at `now` (None: it could not be read). The
    /// kills it counted at least [`DEADLINE_NS`] ago that have no verdict
    /// yet, if any, as a `missed` line.
    pub fn read(
        &mut self,
        now: u64,
        oom_kill: Option<u64>,
        boot_to_wall_ns: i128,
    ) -> Option<Missed> {
        self.last_read = now;
        if let Some(count) = oom_kill {
            // Never below the base (the counter only grows within a boot).
            self.kernel = self.kernel.max(count.saturating_sub(self.base));
            self.readings.push_back((now, self.kernel));
        }
        if self
            .readings
            .back()
            .is_some_and(|&(_, k)| k <= self.accounted())
        {
            self.accounted_at = self.readings.back().map_or(now, |r| r.0);
        }
        let cutoff = now.saturating_sub(DEADLINE_NS);
        while self.readings.len() > 1 && self.readings[1].0 <= cutoff {
            self.readings.pop_front();
        }
        let &(at, due) = self.readings.front().filter(|r| r.0 <= cutoff)?;
        let accounted = self.accounted();
        if due <= accounted {
            return None;
        }
        let count = due - accounted;
        let since = wall_time(self.accounted_at, boot_to_wall_ns);
        self.missed += count;
        self.accounted_at = at;
        Some(Missed {
            time: wall_time(now, boot_to_wall_ns),
            summary: wording::missed(count, &since),
            count,
            total: self.missed,
            kernel_oom_kills: due,
            verdicts: self.verdicts,
            oom_group_kills: self.groups,
            since,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn audit() -> Audit {
        Audit::new(KernelCount {
            boot_ns: 10 * S,
            oom_kill: 100,
        })
    }

    /// Reads once a second from `from` to `to` (s) with the count `count`.
    fn run(a: &mut Audit, from: u64, to: u64, count: u64) -> Vec<Missed> {
        (from..=to)
            .filter_map(|t| a.read(t * S, Some(count), 0))
            .collect()
    }

    #[test]
    fn verdicts_that_keep_up_leave_nothing_missed() {
        let mut a = audit();
        assert!(run(&mut a, 11, 12, 100).is_empty());
        // Two kills counted at 13 s; their verdicts come a little later.
        assert!(run(&mut a, 13, 14, 102).is_empty());
        a.verdict(false);
        a.verdict(false);
        assert!(run(&mut a, 15, 30, 102).is_empty());
        assert_eq!((a.kernel_oom_kills(), a.verdicts(), a.missed()), (2, 2, 0));
    }

    #[test]
    fn a_shortfall_is_reported_once_after_the_deadline() {
        let mut a = audit();
        assert!(run(&mut a, 11, 12, 100).is_empty());
        a.verdict(false);
        // Three kills by 13 s, one verdict: not yet, only after 3 s.
        assert!(run(&mut a, 13, 15, 103).is_empty());
        let m = run(&mut a, 16, 40, 103);
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0].count, 2);
        assert_eq!(m[0].total, 2);
        assert_eq!(m[0].kernel_oom_kills, 3);
        assert_eq!(m[0].verdicts, 1);
        // The kills happened after the last read that was all accounted for.
        assert_eq!(m[0].since, wall_time(12 * S, 0));
        assert!(m[0].summary.contains('2'), "{}", m[0].summary);
        assert_eq!(a.missed(), 2);
        // A later miss is a new line, counted from there.
        let m = run(&mut a, 41, 50, 104);
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!((m[0].count, m[0].total), (1, 3));
        assert_eq!(m[0].since, wall_time(40 * S, 0));
    }

    #[test]
    fn an_oom_group_kill_counts_its_chosen_victim_twice() {
        let mut a = audit();
        // Three members killed: the kernel counts 4 (the chosen one twice).
        a.verdict(true);
        a.verdict(false);
        a.verdict(false);
        assert!(run(&mut a, 11, 30, 104).is_empty());
        assert_eq!(a.oom_group_kills(), 1);
        // The kernel did not count the chosen victim again (it had already
        // exited): more accounted than counted is never a miss.
        a.verdict(true);
        assert!(run(&mut a, 31, 40, 105).is_empty());
    }

    #[test]
    fn a_stalled_reader_is_not_a_miss() {
        let mut a = audit();
        assert!(run(&mut a, 11, 12, 100).is_empty());
        // Stopped for 20 s while kills happened: the first read after it
        // sees them at once, their verdicts come right after.
        assert!(a.read(33 * S, Some(105), 0).is_none());
        for _ in 0..5 {
            a.verdict(false);
        }
        assert!(run(&mut a, 34, 40, 105).is_empty());
    }

    #[test]
    fn an_unreadable_count_changes_nothing() {
        let mut a = audit();
        assert!((11..40).all(|t| a.read(t * S, None, 0).is_none()));
        assert_eq!(a.kernel_oom_kills(), 0);
        // A count below the base (it cannot shrink) never goes negative.
        assert!(run(&mut a, 41, 50, 90).is_empty());
        assert_eq!(a.kernel_oom_kills(), 0);
    }

    #[test]
    fn reads_are_at_most_about_once_a_second() {
        let mut a = audit();
        assert!(!a.due(10 * S + 500_000_000));
        assert!(a.due(11 * S));
        a.read(11 * S, Some(100), 0);
        assert!(!a.due(11 * S + 50_000_000));
        assert!(a.due(12 * S));
    }
}
