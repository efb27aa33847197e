//! The `near_oom` sampler: every `--near-oom-interval` it reads the usage
//! of the memory cgroups the engine names (`Engine::near_oom_targets`:
//! those with a limit oomtrace models) from cgroupfs and hands the ones at
//! or above `near_oom::SAMPLE_FLOOR` of their limit to the engine as one
//! `Input::Usage`, recorded like every input.
//!
//! Cost: one small read per cgroup per sample (v1 `memory.usage_in_bytes`,
//! v2 `memory.current`); the limit is re-read every [`LIMIT_EVERY_NS`], and
//! at every sample for cgroups past the floor (the limit a sample carries
//! is the limit at that sample); `memory.stat` (for the working set) and
//! v2 `memory.pressure` only for cgroups past the floor. No kernel hook is
//! involved.

use std::{
    collections::HashMap,
    fs::File,
    io::Read,
    path::{Path, PathBuf},
};

use oomtrace_core::{
    node::node_memory::{parse_psi, Psi},
    rules::near_oom::{self, Sample, Samples},
};

/// A cgroup's limit is re-read this often (the kubelet changes it rarely:
/// an in-place resize).
const LIMIT_EVERY_NS: u64 = 5_000_000_000;
/// At or above this a limit is none (v1's `PAGE_COUNTER_MAX` in bytes).
const UNLIMITED: u64 = 1 << 60;

pub struct Sampler {
    root: PathBuf,
    v2: bool,
    /// Per cgroup id: its limit (None: unlimited or unreadable), and when read.
    limits: HashMap<u64, (Option<u64>, u64)>,
    buf: Vec<u8>,
}

impl Sampler {
    pub fn new(memory_root: &Path, v2: bool) -> Sampler {
        Sampler {
            root: memory_root.to_path_buf(),
            v2,
            limits: HashMap::new(),
            buf: Vec::with_capacity(8192),
        }
    }

    /// One sample of `targets` at `now` (CLOCK_BOOTTIME ns).
    pub fn sample(&mut self, targets: &[(u64, String)], now: u64) -> Samples {
        let mut out = Samples {
            boot_ns: now,
            cgroups: Vec::new(),
        };
        if self.limits.len() > targets.len() * 2 + 64 {
            let live: std::collections::HashSet<u64> = targets.iter().map(|t| t.0).collect();
            self.limits.retain(|id, _| live.contains(id));
        }
        let (usage_file, limit_file) = if self.v2 {
            ("memory.current", "memory.max")
        } else {
            ("memory.usage_in_bytes", "memory.limit_in_bytes")
        };
        for (id, path) in targets {
            let dir = self.root.join(path.trim_start_matches('/'));
            let limit = match self.limits.get(id) {
                Some(&(limit, at)) if now.saturating_sub(at) < LIMIT_EVERY_NS => limit,
                _ => self.read_limit(*id, &dir.join(limit_file), now),
            };
            let Some(limit) = limit else { continue };
            let Some(usage) = self.read_u64(&dir.join(usage_file)) else {
                continue;
            };
            if (usage as f64) < near_oom::SAMPLE_FLOOR * limit as f64 {
                continue;
            }
            // A sent sample's limit is read at the sample: the engine takes
            // it as the limit at that instant (a kill after a lowered limit
            // is bounded by the last reading of the higher one).
            let limit = match self.limits.get(id) {
                Some(&(limit, at)) if at == now => limit,
                _ => self.read_limit(*id, &dir.join(limit_file), now),
            };
            let Some(limit) = limit.filter(|&l| usage as f64 >= near_oom::SAMPLE_FLOOR * l as f64)
            else {
                continue;
            };
            let inactive_key = if self.v2 {
                "inactive_file"
            } else {
                "total_inactive_file"
            };
            let working_set_bytes = self
                .read(&dir.join("memory.stat"))
                .and_then(|t| stat_value(t, inactive_key))
                .map(|inactive| usage.saturating_sub(inactive));
            let psi: Option<Psi> = if self.v2 {
                self.read(&dir.join("memory.pressure")).and_then(parse_psi)
            } else {
                None
            };
            out.cgroups.push(Sample {
                id: *id,
                cgroup: path.clone(),
                usage_bytes: usage,
                limit_bytes: limit,
                working_set_bytes,
                psi,
            });
        }
        out
    }

    /// The limit of each of `cgroups` now, those with none left out.
    fn limits(&mut self, cgroups: &[(u64, String)]) -> Vec<(String, u64)> {
        let limit_file = if self.v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        cgroups
            .iter()
            .filter_map(|(_, path)| {
                let file = self
                    .root
                    .join(path.trim_start_matches('/'))
                    .join(limit_file);
                let limit = self.read_u64(&file).filter(|&l| l > 0 && l < UNLIMITED)?;
                Some((path.clone(), limit))
            })
            .collect()
    }

    /// A small file's text, read into the reused buffer.
    fn read(&mut self, path: &Path) -> Option<&str> {
        self.buf.clear();
        File::open(path).ok()?.read_to_end(&mut self.buf).ok()?;
        std::str::from_utf8(&self.buf).ok()
    }

    /// The limit of cgroup `id` in `file` now (None: unlimited or
    /// unreadable), kept with the time it was read.
    fn read_limit(&mut self, id: u64, file: &Path, now: u64) -> Option<u64> {
        let limit = self.read_u64(file).filter(|&l| l > 0 && l < UNLIMITED);
        self.limits.insert(id, (limit, now));
        limit
    }

    fn read_u64(&mut self, path: &Path) -> Option<u64> {
        self.read(path)?.trim().parse().ok()
    }
}

/// The start-up scan's limits: of every cgroup of `entries` whose limit
/// `near_oom` models (the kubelet's levels, host services), one read each.
pub fn limits_at_start(
    memory_root: &Path,
    v2: bool,
    entries: &[(u64, String)],
) -> Vec<(String, u64)> {
    let targets: Vec<(u64, String)> = entries
        .iter()
        .filter(|(_, p)| oomtrace_core::engine::is_near_oom_target(p))
        .cloned()
        .collect();
    Sampler::new(memory_root, v2).limits(&targets)
}

fn stat_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_only_limited_cgroups_past_the_floor() {
        let root = std::env::temp_dir().join(format!("oomtrace-sampler-{}", std::process::id()));
        let mk = |name: &str, current: &str, max: &str| {
            let d = root.join(name);
            std::fs::create_dir_all(&d).expect("mkdir");
            std::fs::write(d.join("memory.current"), current).expect("write");
            std::fs::write(d.join("memory.max"), max).expect("write");
            std::fs::write(d.join("memory.stat"), "anon 1\ninactive_file 1000\n").expect("write");
            std::fs::write(
                d.join("memory.pressure"),
                "some avg10=2.00 avg60=0 avg300=0 total=1\nfull avg10=1.00 avg60=0 avg300=0 total=1\n",
            )
            .expect("write");
        };
        mk("near", "9000\n", "10000\n");
        mk("low", "1000\n", "10000\n");
        mk("free", "9000\n", "max\n");
        let mut s = Sampler::new(&root, true);
        let targets = vec![
            (1, "/near".to_string()),
            (2, "/low".to_string()),
            (3, "/free".to_string()),
            (4, "/gone".to_string()),
        ];
        let batch = s.sample(&targets, 7);
        let _ = std::fs::remove_dir_all(&root);
        assert_eq!(batch.boot_ns, 7);
        assert_eq!(
            batch.cgroups,
            vec![Sample {
                id: 1,
                cgroup: "/near".into(),
                usage_bytes: 9000,
                limit_bytes: 10000,
                working_set_bytes: Some(8000),
                psi: Some(Psi {
                    some_avg10: 2.0,
                    full_avg10: 1.0
                }),
            }]
        );
    }

    /// A limit lowered between two samples 0.5 s apart (well inside
    /// [`LIMIT_EVERY_NS`]): the second sample carries the lowered one.
    #[test]
    fn a_sample_carries_the_limit_at_the_sample() {
        let root =
            std::env::temp_dir().join(format!("oomtrace-sampler-low-{}", std::process::id()));
        let d = root.join("c");
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join("memory.current"), "150\n").expect("write");
        std::fs::write(d.join("memory.max"), "200\n").expect("write");
        let mut s = Sampler::new(&root, true);
        let targets = vec![(1, "/c".to_string())];
        let first = s.sample(&targets, 1_000_000_000);
        std::fs::write(d.join("memory.max"), "160\n").expect("write");
        let second = s.sample(&targets, 1_500_000_000);
        let _ = std::fs::remove_dir_all(&root);
        let limits = |b: &Samples| b.cgroups.iter().map(|c| c.limit_bytes).collect::<Vec<_>>();
        assert_eq!(limits(&first), vec![200]);
        assert_eq!(limits(&second), vec![160]);
    }
}
