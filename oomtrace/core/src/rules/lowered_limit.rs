//! Kills after a lowered limit: writing a memory cgroup's limit below its
//! usage (an in-place pod resize, a VPA update, the kubelet lowering
//! kubepods' limit when allocatable changes) makes the kernel reclaim and
//! then OOM-kill at once, and the kill looks like the workload's fault.
//! Pure: readings of limits in (the `near_oom` sampler's samples, the
//! reclaim records' page counters), and at a kill the limit the victim
//! hook read compared with the latest earlier reading of that cgroup.
//!
//! Nothing here sees the write itself: the lowering happened after the
//! last reading of the higher limit and before the kill (or before the
//! first reading of the lower one), so `s_before` is an upper bound, and
//! the rule says nothing when no reading of a higher limit exists.

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
    basis: LimitBasis,
}

/// Every cgroup's recent limits, by path.
#[derive(Debug, Default)]
pub struct LimitHistory {
    runs: HashMap<String, VecDeque<Run>>,
}

impl LimitHistory {
    pub fn new() -> LimitHistory {
        LimitHistory::default()
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

    /// Drops what is older than [`KEEP_NS`] before `now_ns`.
    pub fn forget_before(&mut self, now_ns: u64) {
        let cutoff = now_ns.saturating_sub(KEEP_NS);
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
    /// between it and the kill.
    pub fn lowered_before(
        &self,
        cgroup: &str,
        to_bytes: u64,
        kill_ns: u64,
    ) -> Option<LimitLowered> {
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
        Some(LimitLowered {
            from_bytes: old.bytes,
            to_bytes,
            s_before: (before_ns as f64 / 1e6).round() / 1e3,
            basis: old.basis,
        })
    }
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

    #[test]
    fn old_readings_are_forgotten() {
        let mut h = LimitHistory::new();
        h.saw(C, 200 * MIB, 10 * S, LimitBasis::Sampler);
        h.forget_before(10 * S + KEEP_NS + 1);
        assert_eq!(h.lowered_before(C, 64 * MIB, 11 * S), None);
        assert!(h.runs.is_empty());
    }
}
