//! The per-cgroup charge counters (`CHARGES`, a per-CPU hash map filled by
//! the opt-in charge hook while some cgroup is under pressure), read for
//! the engine through [`ChargeSource`].

use oomtrace_core::node::observe::{boot_ns, ChargeSource, Charges};

pub struct ChargeReader {
    pub map: aya::maps::PerCpuHashMap<aya::maps::MapData, u64, u64>,
    pub armed_ns: Option<u64>,
}

impl ChargeSource for ChargeReader {
    fn read(&self) -> Option<Charges> {
        let armed_ns = self.armed_ns?;
        let mut pages: Vec<(u64, u64)> = self
            .map
            .iter()
            .filter_map(Result::ok)
            .map(|(id, per_cpu)| (id, per_cpu.iter().copied().fold(0u64, u64::saturating_add)))
            .collect();
        pages.sort();
        Some(Charges {
            armed_ns,
            now_ns: boot_ns(),
            pages,
        })
    }

    fn arm(&mut self, now_ns: u64) {
        self.armed_ns = Some(now_ns);
    }

    fn clear(&mut self) {
        let keys: Vec<u64> = self.map.keys().filter_map(Result::ok).collect();
        for k in keys {
            // A key removed by a racing CPU is already gone: nothing to do.
            let _ = self.map.remove(&k);
        }
        self.armed_ns = None;
    }
}
