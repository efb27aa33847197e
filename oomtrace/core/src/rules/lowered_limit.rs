//! Kills after a lowered limit: writing a memory cgroup's limit below its
//! usage (an in-place pod resize, a VPA update, the kubelet lowering
//! kubepods' limit when allocatable changes) makes the kernel reclaim and
//! then OOM-kill at once, and the kill looks like the workload's fault.
//! Pure: readings of limits in (the start-up scan, the `near_oom`
//! sampler's samples, the reclaim records' page counters, the `limit`
//! hook's writes), and at a kill the limit the victim hook read compared
//! with the latest earlier reading of that cgroup.
//!
//! Where the `limit` hook saw the write, its old and new values are both
//! read at the write's moment: when the latest write before the kill set
//! the limit the kill hit, down from a higher one, `s_before` is exact.
//! Writes are kept apart from the readings for that: the sampler's
//! readings and the ring buffer's records reach the engine in two queues,
//! so a sample taken after the write may come before the write's record.
//! Otherwise the lowering happened after the last reading of the higher
//! limit and before the kill (or before the first reading of the lower
//! one), so `s_before` is an upper bound, and the rule says nothing when
//! no reading of a higher limit exists.

use std::collections::{HashMap, VecDeque};

use crate::output::verdict::{LimitBasis, LimitLowered};

/// A lowering this long (at most) before the kill is reported.
pub const WINDOW_NS: u64 = 60_000_000_000;
/// Readings older than this are forgotten (beyond the window, with room
/// for the kernel-log wait before a kill is judged).
const KEEP_NS: u64 = 2 * WINDOW_NS;
/// Runs of readings kept per cgroup.
const MAX_RUNS: usize = 8;

/// Consecutive readings of one value of a cgroup's limit.
#[derive(Clone, Debug, PartialEq)]
struct Run {
    bytes: u64,
    first_ns: u64,
    last_ns: u64,
    /// How the latest reading was made.
    basis: LimitBasis,
}

/// A write of a cgroup's limit seen by the `limit` hook: the limit before
/// it and the one written (None: no limit, or not known).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Write {
    at_ns: u64,
    from: Option<u64>,
    to: Option<u64>,
}

/// Every cgroup's recent limits, by path.
#[derive(Debug, Default)]
pub struct LimitHistory {
    runs: HashMap<String, VecDeque<Run>>,
    /// In the ring buffer's order, which is the kernel's.
    writes: HashMap<String, VecDeque<Write>>,
}

impl LimitHistory {
    pub fn new() -> LimitHistory {
        LimitHistory::default()
    }

    /// The history the start-up scan begins: each (cgroup, bytes) read at
    /// `at_ns`.
    pub fn startup_scan(limits: &[(String, u64)], at_ns: u64) -> LimitHistory {
        let mut h = LimitHistory::new();
        for (cgroup, bytes) in limits.iter().filter(|(_, b)| *b > 0) {
            h.saw(cgroup, *bytes, at_ns, LimitBasis::StartupScan);
        }
        h
    }

    /// `cgroup`'s limit was `bytes` at `at_ns` (CLOCK_BOOTTIME ns), read
    /// the way `basis` says. An unlimited cgroup is read as no limit: call
    /// this only with a limit.
    pub fn saw(&mut self, cgroup: &str, bytes: u64, at_ns: u64, basis: LimitBasis) {
        let runs = match self.runs.get_mut(cgroup) {
            Some(r) => r,
            None => self.runs.entry(cgroup.to_string()).or_default(),
        };
        match runs.back_mut() {
            Some(last) if last.bytes == bytes && at_ns >= last.first_ns => {
                if at_ns > last.last_ns {
                    last.last_ns = at_ns;
                    last.basis = basis;
                }
            }
            // A reading older than the latest run's start (the sampler and
            // the ring buffer are not one clock queue): the runs stay in
            // order, this one is not needed.
            Some(last) if at_ns < last.first_ns => {}
            _ => runs.push_back(Run {
                bytes,
                first_ns: at_ns,
                last_ns: at_ns,
                basis,
            }),
        }
        while runs.len() > MAX_RUNS {
            runs.pop_front();
        }
    }

    /// `cgroup`'s limit was written at `at_ns` (the `limit` hook): `from`
    /// before, `to` after (None: no limit, or unknown). Both are readings
    /// too.
    pub fn wrote(&mut self, cgroup: &str, from: Option<u64>, to: Option<u64>, at_ns: u64) {
        for bytes in [from, to].into_iter().flatten() {
            self.saw(cgroup, bytes, at_ns, LimitBasis::WriteHook);
        }
        let writes = match self.writes.get_mut(cgroup) {
            Some(w) => w,
            None => self.writes.entry(cgroup.to_string()).or_default(),
        };
        writes.push_back(Write { at_ns, from, to });
        while writes.len() > MAX_RUNS {
            writes.pop_front();
        }
    }

    /// Drops what is older than [`KEEP_NS`] before `now_ns`.
    pub fn forget_before(&mut self, now_ns: u64) {
        let cutoff = now_ns.saturating_sub(KEEP_NS);
        self.writes.retain(|_, writes| {
            while writes.front().is_some_and(|w| w.at_ns < cutoff) {
                writes.pop_front();
            }
            !writes.is_empty()
        });
        self.runs.retain(|_, runs| {
            while runs.front().is_some_and(|r| r.last_ns < cutoff) {
                runs.pop_front();
            }
            !runs.is_empty()
        });
    }

    /// Whether `cgroup`'s limit, `to_bytes` at the kill at `kill_ns`, had
    /// been read higher within [`WINDOW_NS`] before: the last reading of a
    /// higher limit before the kill, with nothing but `to_bytes` read
    /// between it and the kill. `basis: write_hook` when the latest seen
    /// write before the kill took the limit down to `to_bytes` (the time is
    /// then exact); a higher limit a seen write left in place is
    /// `earlier_write`.
    pub fn lowered_before(
        &self,
        cgroup: &str,
        to_bytes: u64,
        kill_ns: u64,
    ) -> Option<LimitLowered> {
        let write = self
            .writes
            .get(cgroup)
            .and_then(|w| w.iter().rev().find(|w| w.at_ns <= kill_ns));
        if let Some(w) = write.filter(|w| w.to == Some(to_bytes) && kill_ns - w.at_ns <= WINDOW_NS)
        {
            if let Some(from) = w.from.filter(|&f| f > to_bytes) {
                return Some(LimitLowered {
                    from_bytes: from,
                    to_bytes,
                    s_before: seconds(kill_ns - w.at_ns),
                    basis: LimitBasis::WriteHook,
                });
            }
        }
        let runs = self.runs.get(cgroup)?;
        let mut before_kill = runs.iter().rev().filter(|r| r.first_ns <= kill_ns);
        let newest = before_kill.next()?;
        let (old, last_old_ns) = if newest.bytes == to_bytes {
            let old = before_kill.next()?;
            (old, old.last_ns)
        } else {
            // A run that goes on past the kill read a higher limit after
            // it too (raised again?): its last reading before the kill is
            // not known, its first is.
            let last = if newest.last_ns <= kill_ns {
                newest.last_ns
            } else {
                newest.first_ns
            };
            (newest, last)
        };
        if old.bytes <= to_bytes {
            return None;
        }
        let before_ns = kill_ns.saturating_sub(last_old_ns);
        if before_ns > WINDOW_NS {
            return None;
        }
        // No seen write is known to have lowered it (that would have been
        // found above): a write's reading is only where the higher limit
        // stood.
        let basis = match old.basis {
            LimitBasis::WriteHook => LimitBasis::EarlierWrite,
            b => b,
        };
        Some(LimitLowered {
            from_bytes: old.bytes,
            to_bytes,
            s_before: seconds(before_ns),
            basis,
        })
    }
}

/// Nanoseconds as seconds, to the millisecond.
fn seconds(ns: u64) -> f64 {
    (ns as f64 / 1e6).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const S: u64 = 1_000_000_000;
    const C: &str = "/kubepods/burstable/podx/cid";

    /// The sampler every 500 ms at 200 MiB, the limit written down to
    /// 64 MiB between two samples, the kill 0.2 s after the last sample.
    #[test]
    fn a_limit_read_higher_by_the_sampler_is_lowered_at_most_since_then() {
        let mut h = LimitHistory::new();
        for i in 0..6 {
            h.saw(C, 200 * MIB, 10 * S + i * S / 2, LimitBasis::Sampler);
        }
        let kill = 10 * S + 5 * S / 2 + S / 5;
        let l = h.lowered_before(C, 64 * MIB, kill).expect("a lowering");
        assert_eq!(
            l,
            LimitLowered {
                from_bytes: 200 * MIB,
                to_bytes: 64 * MIB,
                s_before: 0.2,
                basis: LimitBasis::Sampler,
            }
        );
    }

    /// A reading of the lower limit before the kill (a sample, a reclaim
    /// record) does not move the bound: the higher one's last reading does.
    #[test]
    fn the_bound_is_the_last_reading_of_the_higher_limit() {
        let mut h = LimitHistory::new();
        h.saw(C, 512 * MIB, 10 * S, LimitBasis::Sampler);
        h.saw(C, 512 * MIB, 11 * S, LimitBasis::Pressure);
        h.saw(C, 128 * MIB, 11 * S + S / 2, LimitBasis::Pressure);
        let l = h.lowered_before(C, 128 * MIB, 12 * S).expect("a lowering");
        assert_eq!((l.from_bytes, l.to_bytes), (512 * MIB, 128 * MIB));
        assert_eq!(l.s_before, 1.0);
        assert_eq!(l.basis, LimitBasis::Pressure);
    }

    #[test]
    fn no_claim_without_a_higher_reading_or_past_the_window() {
        let mut h = LimitHistory::new();
        assert_eq!(h.lowered_before(C, 64 * MIB, 10 * S), None, "never read");
        h.saw(C, 64 * MIB, 9 * S, LimitBasis::Sampler);
        assert_eq!(h.lowered_before(C, 64 * MIB, 10 * S), None, "unchanged");
        h.saw("/other", 256 * MIB, 9 * S, LimitBasis::Sampler);
        assert_eq!(
            h.lowered_before(C, 32 * MIB, 10 * S + WINDOW_NS),
            None,
            "too old"
        );
        let l = h.lowered_before(C, 32 * MIB, 10 * S).expect("64 → 32 MiB");
        assert_eq!(l.s_before, 1.0);
        // A raised limit is no lowering.
        assert_eq!(h.lowered_before(C, 128 * MIB, 10 * S), None);
        // Readings after the kill say nothing about before it.
        let mut h = LimitHistory::new();
        h.saw(C, 256 * MIB, 20 * S, LimitBasis::Sampler);
        assert_eq!(h.lowered_before(C, 64 * MIB, 10 * S), None);
    }

    /// The kill's own drop, then samples of the lowered limit after it
    /// (the verdict waits for the kernel log): the bound stays the same.
    #[test]
    fn readings_after_the_kill_change_nothing() {
        let mut h = LimitHistory::new();
        h.saw(C, 200 * MIB, 10 * S, LimitBasis::Sampler);
        h.saw(C, 64 * MIB, 11 * S, LimitBasis::Sampler);
        let l = h
            .lowered_before(C, 64 * MIB, 10 * S + S / 2)
            .expect("a lowering");
        assert_eq!(l.s_before, 0.5);
    }

    /// The write seen: the old value and the new one at its moment, after
    /// samples of the old one. The kill 0.4 s later is exactly that long
    /// after the lowering.
    #[test]
    fn a_seen_write_gives_the_exact_moment() {
        let mut h = LimitHistory::new();
        h.saw(C, 512 * MIB, 10 * S, LimitBasis::Sampler);
        h.saw(C, 512 * MIB, 11 * S, LimitBasis::Sampler);
        let write = 11 * S + S / 4;
        h.wrote(C, Some(512 * MIB), Some(128 * MIB), write);
        // A sample of the new limit before the kill changes nothing.
        h.saw(C, 128 * MIB, write + S / 10, LimitBasis::Sampler);
        let l = h
            .lowered_before(C, 128 * MIB, write + 2 * S / 5)
            .expect("a lowering");
        assert_eq!(
            l,
            LimitLowered {
                from_bytes: 512 * MIB,
                to_bytes: 128 * MIB,
                s_before: 0.4,
                basis: LimitBasis::WriteHook,
            }
        );
        // A kill inside the write (cgroup v2 kills from the writer).
        let l = h.lowered_before(C, 128 * MIB, write).expect("a lowering");
        assert_eq!((l.s_before, l.basis), (0.0, LimitBasis::WriteHook));
    }

    /// As in the VM: the sampler's reading of the new limit, taken after
    /// the write, reaches the engine before the write's record and the
    /// kill's. The write still gives the moment.
    #[test]
    fn a_write_recorded_after_a_later_sample_still_counts() {
        let mut h = LimitHistory::new();
        for i in 0..6 {
            h.saw(C, 200 * MIB, 154 * S + i * S / 2, LimitBasis::Sampler);
        }
        h.saw(C, 64 * MIB, 158_050_000_000, LimitBasis::Sampler);
        h.wrote(C, Some(200 * MIB), Some(64 * MIB), 157_883_000_000);
        let l = h
            .lowered_before(C, 64 * MIB, 158_006_000_000)
            .expect("a lowering");
        assert_eq!((l.s_before, l.basis), (0.123, LimitBasis::WriteHook));
    }

    /// A write seen with no earlier reading (the first thing known of the
    /// cgroup), and a write the kernel refused to lower (the kill's limit
    /// is the old one): the history says what each write says.
    #[test]
    fn a_write_alone_is_enough_and_a_later_reading_wins() {
        let mut h = LimitHistory::new();
        h.wrote(C, Some(200 * MIB), Some(64 * MIB), 5 * S);
        let l = h.lowered_before(C, 64 * MIB, 6 * S).expect("a lowering");
        assert_eq!((l.from_bytes, l.s_before), (200 * MIB, 1.0));
        // The kill's limit is the old one: the write did not hold.
        assert_eq!(h.lowered_before(C, 200 * MIB, 6 * S), None);
        // Past the window, nothing.
        assert_eq!(h.lowered_before(C, 64 * MIB, 6 * S + WINDOW_NS), None);
    }

    /// A seen write to 300 MiB, then a lowering to 64 MiB no hook saw (a
    /// cgroup v1 write): the lowering is after the write, a bound, and
    /// the seen write is only where the higher limit was read.
    #[test]
    fn a_lowering_after_a_seen_write_is_a_bound() {
        let mut h = LimitHistory::new();
        h.wrote(C, Some(512 * MIB), Some(300 * MIB), 5 * S);
        let l = h.lowered_before(C, 64 * MIB, 6 * S).expect("a lowering");
        assert_eq!(
            (l.from_bytes, l.s_before, l.basis),
            (300 * MIB, 1.0, LimitBasis::EarlierWrite)
        );
        // A write the kernel refused (only the old value known), the same.
        let mut h = LimitHistory::new();
        h.saw(C, 512 * MIB, 5 * S, LimitBasis::Sampler);
        h.wrote(C, Some(512 * MIB), None, 7 * S);
        let l = h.lowered_before(C, 64 * MIB, 8 * S).expect("a lowering");
        assert_eq!((l.s_before, l.basis), (1.0, LimitBasis::EarlierWrite));
        // A sampler's reading of 64 MiB does not make it the write's.
        h.saw(C, 64 * MIB, 7 * S + S / 2, LimitBasis::Sampler);
        let l = h.lowered_before(C, 64 * MIB, 8 * S).expect("a lowering");
        assert_eq!(l.basis, LimitBasis::EarlierWrite);
        // A raise seen last: the limit the kill hit came from it, no
        // lowering is exact; the readings before say what they say.
        let mut h = LimitHistory::new();
        h.wrote(C, Some(32 * MIB), Some(64 * MIB), 7 * S);
        assert_eq!(h.lowered_before(C, 64 * MIB, 8 * S), None);
    }

    /// The start-up scan read 256 MiB; the cgroup stayed below the
    /// sampler's floor, so nothing read it again before the kill at 64 MiB.
    #[test]
    fn the_start_up_scan_is_a_reading() {
        let h =
            LimitHistory::startup_scan(&[(C.into(), 256 * MIB), ("/kubepods".into(), 0)], 10 * S);
        let l = h.lowered_before(C, 64 * MIB, 12 * S).expect("a lowering");
        assert_eq!(
            (l.from_bytes, l.s_before, l.basis),
            (256 * MIB, 2.0, LimitBasis::StartupScan)
        );
        assert!(!h.runs.contains_key("/kubepods"), "no limit read as 0");
    }

    #[test]
    fn old_readings_are_forgotten() {
        let mut h = LimitHistory::new();
        h.saw(C, 200 * MIB, 10 * S, LimitBasis::Sampler);
        h.wrote(C, Some(200 * MIB), Some(64 * MIB), 10 * S);
        h.forget_before(10 * S + KEEP_NS + 1);
        assert_eq!(h.lowered_before(C, 64 * MIB, 11 * S), None);
        assert!(h.runs.is_empty() && h.writes.is_empty());
    }
}
