//! The `near_oom` rule: a memory cgroup close to its limit and growing so
//! that it reaches the limit within the horizon, or already reclaiming at
//! its limit. Pure: samples of usage (the daemon reads them from cgroupfs,
//! `Input::Usage`, so a recording replays them) in, warnings out.
//!
//! - The level compared with the limit is the working set (usage −
//!   inactive file, the kubelet's number) when it was read, else usage:
//!   page cache the kernel can drop brings no OOM kill.
//! - An episode starts when the level is at least [`NEAR_FRACTION`] of
//!   the limit and either the least-squares growth over the last
//!   [`FIT_WINDOW_NS`] reaches the limit within the horizon, or the kernel
//!   is reclaiming at this cgroup's limit (a memcg-pressure record whose
//!   page counter was at its max). One warning per episode.
//! - Hysteresis: the episode ends (re-armed) when the level falls below
//!   [`REARM_FRACTION`] of the limit. The daemon sends only cgroups at or
//!   above [`SAMPLE_FLOOR`] of their limit: a cgroup missing from a batch
//!   is below it, so re-armed too.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::{node::node_memory::Psi, output::verdict::NearOomReason};

/// The level at which a cgroup counts as close to its limit.
pub const NEAR_FRACTION: f64 = 0.8;
/// Below this the episode is over and a new one may warn again.
pub const REARM_FRACTION: f64 = 0.6;
/// The daemon samples only cgroups at or above this share of their limit.
pub const SAMPLE_FLOOR: f64 = 0.5;
/// Growth is fitted over the samples of this last stretch.
pub const FIT_WINDOW_NS: u64 = 5_000_000_000;
/// A fit needs its samples to span at least this long.
const MIN_SPAN_NS: u64 = 400_000_000;
/// At most this many samples kept per cgroup.
const MAX_POINTS: usize = 32;
/// An ended episode's warning still counts for a kill this long after the
/// episode ended: a victim's verdict may wait for the kernel log while the
/// sample after the kill (usage down) already ended the episode.
const ENDED_GRACE_NS: u64 = 30_000_000_000;

/// One cgroup's memory at a sample.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The cgroup's kernfs id (the tree's key; the pressure records' too).
    pub id: u64,
    pub cgroup: String,
    pub usage_bytes: u64,
    pub limit_bytes: u64,
    /// usage − inactive_file, when memory.stat was read.
    pub working_set_bytes: Option<u64>,
    /// v2 only.
    pub psi: Option<Psi>,
}

/// The cgroups at or above [`SAMPLE_FLOOR`] of their limit at one instant
/// (CLOCK_BOOTTIME ns).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Samples {
    pub boot_ns: u64,
    pub cgroups: Vec<Sample>,
}

/// A `near_oom` warning, before names and wording.
#[derive(Clone, Debug, PartialEq)]
pub struct Warning {
    pub boot_ns: u64,
    pub sample: Sample,
    /// Least-squares growth of the level, bytes/s (None: too few samples).
    pub growth_bytes_per_s: Option<f64>,
    /// Seconds until the level reaches the limit at that growth (None: not growing).
    pub seconds_to_limit: Option<f64>,
    pub reason: NearOomReason,
}

#[derive(Debug, Default)]
struct State {
    points: VecDeque<(u64, u64)>,
    /// When this episode's warning was given.
    warned_ns: Option<u64>,
    /// The latest episode that ended: (warned, ended).
    ended: Option<(u64, u64)>,
}

#[derive(Debug)]
pub struct Detector {
    horizon_ns: u64,
    states: HashMap<u64, State>,
    /// Path → id of the cgroups with state, for the kill's lookups.
    paths: HashMap<String, u64>,
}

fn level(s: &Sample) -> u64 {
    s.working_set_bytes.unwrap_or(s.usage_bytes)
}

impl Detector {
    /// `horizon_ns` 0: no warning is ever given.
    pub fn new(horizon_ns: u64) -> Detector {
        Detector {
            horizon_ns,
            states: HashMap::new(),
            paths: HashMap::new(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.horizon_ns > 0
    }

    /// One batch of samples; `reclaiming(id)` says whether the kernel was
    /// reclaiming at that cgroup's limit lately. Cgroups missing from the
    /// batch are below the floor: their episodes end.
    pub fn observe(
        &mut self,
        batch: &Samples,
        mut reclaiming: impl FnMut(u64) -> bool,
    ) -> Vec<Warning> {
        let now = batch.boot_ns;
        let mut out = Vec::new();
        if !self.enabled() {
            return out;
        }
        let present: std::collections::HashSet<u64> = batch.cgroups.iter().map(|s| s.id).collect();
        for (id, st) in self.states.iter_mut() {
            if !present.contains(id) {
                end_episode(st, now);
                st.points.clear();
            }
        }
        // Forget what holds nothing worth keeping.
        self.states.retain(|id, st| {
            present.contains(id)
                || st
                    .ended
                    .is_some_and(|(_, ended)| now.saturating_sub(ended) < ENDED_GRACE_NS)
        });
        let states = &self.states;
        self.paths.retain(|_, id| states.contains_key(id));
        for s in &batch.cgroups {
            if s.limit_bytes == 0 {
                continue;
            }
            self.paths.insert(s.cgroup.clone(), s.id);
            let st = self.states.entry(s.id).or_default();
            let lvl = level(s);
            st.points.push_back((now, lvl));
            while st.points.len() > MAX_POINTS
                || st
                    .points
                    .front()
                    .is_some_and(|&(t, _)| now.saturating_sub(t) > FIT_WINDOW_NS)
            {
                st.points.pop_front();
            }
            let share = lvl as f64 / s.limit_bytes as f64;
            if share < REARM_FRACTION {
                end_episode(st, now);
                continue;
            }
            if st.warned_ns.is_some() || share < NEAR_FRACTION {
                continue;
            }
            let growth = slope(&st.points);
            let seconds_to_limit = growth.filter(|g| *g > 0.0).map(|g| {
                let left = s.limit_bytes.saturating_sub(lvl) as f64;
                left / g
            });
            let horizon_s = self.horizon_ns as f64 / 1e9;
            let reason = if seconds_to_limit.is_some_and(|t| t <= horizon_s) {
                NearOomReason::Growing
            } else if reclaiming(s.id) {
                NearOomReason::Reclaiming
            } else {
                continue;
            };
            st.warned_ns = Some(now);
            out.push(Warning {
                boot_ns: now,
                sample: s.clone(),
                growth_bytes_per_s: growth,
                seconds_to_limit,
                reason,
            });
        }
        out
    }

    /// When the warning for the episode of `cgroup` that a kill at
    /// `kill_ns` belongs to was given: the episode still on, or ended
    /// after the kill (the kill's own drop of usage ends it).
    pub fn warned_before(&self, cgroup: &str, kill_ns: u64) -> Option<u64> {
        let st = self.states.get(self.paths.get(cgroup)?)?;
        let at = match (st.warned_ns, st.ended) {
            (Some(w), _) => w,
            (None, Some((w, ended))) if ended >= kill_ns => w,
            _ => return None,
        };
        (at <= kill_ns).then_some(at)
    }
}

fn end_episode(st: &mut State, now: u64) {
    if let Some(w) = st.warned_ns.take() {
        st.ended = Some((w, now));
    }
}

/// Least-squares slope, bytes/s; None with fewer than two samples or too
/// short a span.
fn slope(points: &VecDeque<(u64, u64)>) -> Option<f64> {
    let (&(t0, _), &(t1, _)) = (points.front()?, points.back()?);
    if points.len() < 2 || t1.saturating_sub(t0) < MIN_SPAN_NS {
        return None;
    }
    let n = points.len() as f64;
    let xs = points
        .iter()
        .map(|&(t, _)| t.saturating_sub(t0) as f64 / 1e9);
    let mean_x = xs.clone().sum::<f64>() / n;
    let mean_y = points.iter().map(|&(_, y)| y as f64).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (x, &(_, y)) in xs.zip(points.iter()) {
        sxy += (x - mean_x) * (y as f64 - mean_y);
        sxx += (x - mean_x) * (x - mean_x);
    }
    (sxx > 0.0).then(|| sxy / sxx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::node_memory::parse_psi;

    const MIB: u64 = 1 << 20;
    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;
    const LIMIT: u64 = 128 * MIB;

    fn sample(id: u64, usage: u64) -> Sample {
        Sample {
            id,
            cgroup: format!("/kubepods/burstable/podx/c{id}"),
            usage_bytes: usage,
            limit_bytes: LIMIT,
            working_set_bytes: Some(usage),
            psi: None,
        }
    }

    /// Batches every 500 ms from `from`, each holding the cgroups whose
    /// usage (by `f(t_s)`) is at or above the floor, as the daemon sends.
    fn run(d: &mut Detector, from: u64, to: u64, f: impl Fn(f64) -> u64) -> Vec<Warning> {
        let mut out = Vec::new();
        let mut t = from;
        while t <= to {
            let usage = f(t as f64 / 1e9);
            let cgroups = if usage as f64 >= SAMPLE_FLOOR * LIMIT as f64 {
                vec![sample(1, usage)]
            } else {
                Vec::new()
            };
            out.extend(d.observe(
                &Samples {
                    boot_ns: t,
                    cgroups,
                },
                |_| false,
            ));
            t += 500 * MS;
        }
        out
    }

    #[test]
    fn psi_is_read_from_memory_pressure() {
        let text = "some avg10=1.50 avg60=0.20 avg300=0.00 total=123\nfull avg10=0.75 avg60=0.00 avg300=0.00 total=45\n";
        assert_eq!(
            parse_psi(text),
            Some(Psi {
                some_avg10: 1.5,
                full_avg10: 0.75
            })
        );
        assert_eq!(parse_psi(""), None);
        assert_eq!(parse_psi("some avg10=x\nfull avg10=1"), None);
        assert_eq!(parse_psi("some avg10=NaN\nfull avg10=0.00"), None);
    }

    #[test]
    fn steady_growth_is_warned_once_before_the_limit() {
        let mut d = Detector::new(60 * S);
        // 12 MiB/s from zero: the limit at about 10.7 s.
        let w = run(&mut d, 0, 10 * S, |t| (t * 12.0 * MIB as f64) as u64);
        assert_eq!(w.len(), 1, "{w:?}");
        let w = &w[0];
        assert_eq!(w.reason, NearOomReason::Growing);
        assert!(w.sample.usage_bytes as f64 >= NEAR_FRACTION * LIMIT as f64);
        let g = w.growth_bytes_per_s.expect("growth");
        assert!((g - 12.0 * MIB as f64).abs() < 0.5 * MIB as f64, "{g}");
        let eta = w.seconds_to_limit.expect("eta");
        let real = 128.0 / 12.0 - w.boot_ns as f64 / 1e9;
        assert!((eta - real).abs() < 0.2, "{eta} vs {real}");
        assert!(eta > 1.0, "warned seconds before: {eta}");
    }

    #[test]
    fn rising_to_95_percent_and_staying_gives_one_warning() {
        let mut d = Detector::new(60 * S);
        let top = 0.95 * LIMIT as f64;
        let w = run(&mut d, 0, 30 * S, |t| {
            (t * 16.0 * MIB as f64).min(top) as u64
        });
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(d
            .warned_before("/kubepods/burstable/podx/c1", 30 * S)
            .is_some());
    }

    #[test]
    fn far_from_the_limit_or_flat_gives_none() {
        let mut d = Detector::new(60 * S);
        // Growing fast but capped at 40 %: never close.
        assert!(run(
            &mut d,
            0,
            20 * S,
            |t| (t * 50.0 * MIB as f64).min(0.4 * LIMIT as f64) as u64
        )
        .is_empty());
        // At 90 %, flat: close but not growing, not reclaiming.
        let mut d = Detector::new(60 * S);
        assert!(run(&mut d, 0, 20 * S, |_| (0.9 * LIMIT as f64) as u64).is_empty());
        // A slow leak at 85 % that needs far more than the horizon.
        let mut d = Detector::new(60 * S);
        assert!(
            run(&mut d, 0, 20 * S, |t| (0.85 * LIMIT as f64 + t * 1024.0)
                as u64)
            .is_empty()
        );
        // Off.
        let mut d = Detector::new(0);
        assert!(run(&mut d, 0, 10 * S, |t| (t * 12.0 * MIB as f64) as u64).is_empty());
    }

    #[test]
    fn the_horizon_decides_for_slow_growth() {
        // 85 % and 0.25 MiB/s: about 77 s to the limit.
        let f = |t: f64| (0.85 * LIMIT as f64 + t * 0.25 * MIB as f64) as u64;
        let mut d = Detector::new(60 * S);
        assert!(run(&mut d, 0, 4 * S, f).is_empty());
        let mut d = Detector::new(120 * S);
        let w = run(&mut d, 0, 4 * S, f);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0]
            .seconds_to_limit
            .is_some_and(|s| (60.0..100.0).contains(&s)));
    }

    #[test]
    fn falling_well_below_re_arms_and_hovering_does_not() {
        let mut d = Detector::new(60 * S);
        let near = 0.9 * LIMIT as f64;
        // Up, then hovering between 70 and 95 %: one warning.
        let mut w = run(&mut d, 0, 10 * S, |t| {
            (t * 16.0 * MIB as f64).min(near) as u64
        });
        w.extend(run(&mut d, 10 * S + 500 * MS, 30 * S, |t| {
            let wobble = if ((t * 2.0) as u64).is_multiple_of(2) {
                0.7
            } else {
                0.95
            };
            (wobble * LIMIT as f64) as u64
        }));
        assert_eq!(w.len(), 1, "hovering is one episode: {w:?}");
        // Down to 55 % (below the re-arm mark, above the floor), up again.
        w.extend(run(&mut d, 30 * S + 500 * MS, 35 * S, |_| {
            (0.55 * LIMIT as f64) as u64
        }));
        w.extend(run(&mut d, 35 * S + 500 * MS, 50 * S, |t| {
            ((0.55 + (t - 35.0) * 0.08) * LIMIT as f64).min(near) as u64
        }));
        assert_eq!(w.len(), 2, "re-armed below {REARM_FRACTION}: {w:?}");
        // Gone from the batches (below the floor), then up: a third.
        w.extend(run(&mut d, 50 * S + 500 * MS, 55 * S, |_| MIB));
        w.extend(run(&mut d, 55 * S + 500 * MS, 70 * S, |t| {
            ((t - 55.0) * 16.0 * MIB as f64).min(near) as u64
        }));
        assert_eq!(w.len(), 3, "{w:?}");
    }

    #[test]
    fn reclaiming_at_the_limit_is_warned_without_growth() {
        let mut d = Detector::new(60 * S);
        let at = |t: u64, reclaim: bool, d: &mut Detector| {
            d.observe(
                &Samples {
                    boot_ns: t,
                    cgroups: vec![sample(1, LIMIT - MIB)],
                },
                |id| reclaim && id == 1,
            )
        };
        assert!(at(0, false, &mut d).is_empty());
        assert!(at(S, false, &mut d).is_empty());
        let w = at(2 * S, true, &mut d);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].reason, NearOomReason::Reclaiming);
        assert_eq!(w[0].seconds_to_limit, None);
        assert!(at(3 * S, true, &mut d).is_empty(), "one per episode");
    }

    #[test]
    fn the_working_set_not_usage_is_what_nears_the_limit() {
        let mut d = Detector::new(60 * S);
        // Usage at the limit, most of it inactive page cache.
        let mut out = Vec::new();
        for i in 0..20u64 {
            let mut s = sample(1, LIMIT);
            s.working_set_bytes = Some(LIMIT / 4 + i * MIB);
            out.extend(d.observe(
                &Samples {
                    boot_ns: i * 500 * MS,
                    cgroups: vec![s],
                },
                |_| true,
            ));
        }
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_kill_after_the_warning_finds_it_even_once_usage_dropped() {
        let mut d = Detector::new(60 * S);
        let w = run(&mut d, 0, 10 * S, |t| (t * 12.0 * MIB as f64) as u64);
        let warned = w[0].boot_ns;
        let kill = 10 * S + 600 * MS;
        // The kill frees the memory: the next batch no longer holds it.
        run(&mut d, 11 * S, 11 * S, |_| 0);
        let path = "/kubepods/burstable/podx/c1";
        assert_eq!(d.warned_before(path, kill), Some(warned));
        // A kill after the episode ended is not warned by it.
        assert_eq!(d.warned_before(path, 12 * S), None);
        assert_eq!(d.warned_before("/other", kill), None);
        // Nor one before the warning.
        let mut d = Detector::new(60 * S);
        let w = run(&mut d, 0, 10 * S, |t| (t * 12.0 * MIB as f64) as u64);
        assert_eq!(d.warned_before(path, w[0].boot_ns - 1), None);
    }
}
