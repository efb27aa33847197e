//! Growth and pressure: reclaim records per memory cgroup (the growth
//! before a kill, the cgroups at their limit) and the `near_oom` samples.

use super::*;
use crate::output::verdict::LimitBasis;

/// A cgroup's page counter at the first and the latest pressure record.
#[derive(Clone, Copy, Debug)]
pub(super) struct PressureSpan {
    first_ns: u64,
    first_pages: u64,
    last_ns: u64,
    last_pages: u64,
}

/// How long a pressure record at a cgroup's limit says it is reclaiming there.
const AT_LIMIT_NS: u64 = 2_000_000_000;

/// How far back pressure counts as "before the kill".
const GROWTH_WINDOW_NS: u64 = 30_000_000_000;

impl Engine {
    pub(super) fn on_pressure(&mut self, p: &oomtrace_common::PressureEvent) {
        let now = p.header.boot_ns;
        self.last_pressure_ns = self.last_pressure_ns.max(now);
        self.pressured
            .retain(|_, s| now.saturating_sub(s.last_ns) < GROWTH_WINDOW_NS);
        self.at_limit
            .retain(|_, t| now.saturating_sub(*t) < AT_LIMIT_NS);
        self.limits.forget_before(now);
        for level in p.task.memcg_chain() {
            let (Some(id), Some(usage)) = (level.id.filter(|&id| id != 0), level.usage_pages)
            else {
                continue;
            };
            // At its max, give or take a charge batch (64 pages) or 2 %.
            if let Some(max) = level.max_pages.filter(|&m| m > 0 && m < UNLIMITED_PAGES) {
                if usage.saturating_add((max / 50).max(64)) >= max {
                    self.at_limit.insert(id, now);
                }
            }
            if let (Some(max), Some(path)) = (
                level.max_pages.filter(|&m| m > 0 && m < UNLIMITED_PAGES),
                self.tree.path(CgroupId(id)),
            ) {
                self.limits.saw(
                    path,
                    max.saturating_mul(self.start.page_size),
                    now,
                    LimitBasis::Pressure,
                );
            }
            let s = self.pressured.entry(id).or_insert(PressureSpan {
                first_ns: now,
                first_pages: usage,
                last_ns: now,
                last_pages: usage,
            });
            s.last_ns = now;
            s.last_pages = usage;
        }
    }

    /// A write of a cgroup's limit, seen at its start: the old limit and
    /// the new one, both at the write's moment.
    pub(super) fn on_limit_write(&mut self, w: &oomtrace_common::LimitWriteEvent) {
        let now = w.header.boot_ns;
        self.limits.forget_before(now);
        let Some(path) = w
            .memcg_id()
            .and_then(|id| self.tree.path(CgroupId(id)))
            .map(str::to_owned)
        else {
            return;
        };
        let page = self.start.page_size;
        let old = w
            .old_max_pages()
            .filter(|&m| m > 0 && m < UNLIMITED_PAGES)
            .map(|m| m.saturating_mul(page));
        let new = match w.text().and_then(|t| event::written_limit(t, page)) {
            Some(event::WrittenLimit::Bytes(b)) if b > 0 && b / page.max(1) < UNLIMITED_PAGES => {
                Some(b)
            }
            _ => None,
        };
        self.limits.wrote(&path, old, new, now);
    }

    /// A batch of usage samples through the `near_oom` rule: one finding
    /// per episode.
    pub(super) fn near_oom(
        &mut self,
        batch: &near_oom::Samples,
        obs: &mut dyn Observe,
        out: &mut Vec<Line>,
    ) {
        let now = batch.boot_ns;
        // The sampler reads the limit of every cgroup it sends at the sample.
        self.limits.forget_before(now);
        for s in batch.cgroups.iter().filter(|s| s.limit_bytes > 0) {
            self.limits
                .saw(&s.cgroup, s.limit_bytes, now, LimitBasis::Sampler);
        }
        let at_limit = &self.at_limit;
        let warnings = self.near.observe(batch, |id| {
            at_limit
                .get(&id)
                .is_some_and(|&t| now.saturating_sub(t) < AT_LIMIT_NS)
        });
        for w in warnings {
            let identity = Identity::of_path(&w.sample.cgroup);
            let identity = identity.clone().named(&self.names(&identity, obs));
            let mut f = Finding::new(
                FindingKind::NearOom,
                wall_time(w.boot_ns, self.start.boot_to_wall_ns),
                w.sample.cgroup.clone(),
            );
            f.pod = identity.pod;
            f.container = identity.container;
            f.usage_bytes = Some(w.sample.usage_bytes);
            f.limit_bytes = Some(w.sample.limit_bytes);
            f.growth_bytes_per_s = w.growth_bytes_per_s.map(|g| g.round() as i64);
            f.seconds_to_limit = w.seconds_to_limit.map(|s| (s * 10.0).round() / 10.0);
            f.working_set_bytes = w.sample.working_set_bytes;
            f.psi = w.sample.psi;
            f.summary = wording::near_oom(&f, w.reason);
            out.push(Line::Finding(f));
        }
    }

    /// Seconds from the `near_oom` of the cgroup whose limit a kill hit
    /// (when the limit is unknown: of the victim's cgroup or its nearest
    /// warned ancestor) to the kill.
    pub(super) fn warned_s_before(&self, a: &Assessment) -> Option<f64> {
        let limit = a.limit.as_ref().and_then(|l| l.cgroup.clone());
        let candidates: Vec<String> = match (limit, a.victim.cgroup.as_deref()) {
            (Some(l), _) => vec![l],
            (None, Some(v)) => crate::node::cgroup::ancestors(v)
                .map(str::to_string)
                .collect(),
            (None, None) => return None,
        };
        candidates.iter().find_map(|c| {
            let at = self.near.warned_before(c, a.boot_ns)?;
            Some((a.boot_ns.saturating_sub(at) as f64 / 1e9 * 1000.0).round() / 1000.0)
        })
    }

    /// The cgroups charging fastest before the kill: the kernel's charge
    /// counters when they were armed, else the page counters seen at
    /// pressure and at the kill.
    pub(super) fn growth(
        &self,
        v: &oomtrace_common::VictimEvent,
        obs: &mut dyn Observe,
    ) -> Option<Vec<Growth>> {
        let page = self.start.page_size;
        let mut rates: Vec<(u64, u64, f64, &'static str)> = Vec::new();
        if let Some(c) = obs.charges() {
            let window = c.now_ns.saturating_sub(c.armed_ns);
            if window > 0 {
                for (id, pages) in c.pages {
                    let bps =
                        (pages as u128 * page as u128 * 1_000_000_000 / window as u128) as u64;
                    rates.push((id, bps, window as f64 / 1e9, "charge_counter"));
                }
            }
        }
        {
            let kill = v.header.boot_ns;
            let at_kill: HashMap<u64, u64> = [&v.victim, &v.trigger]
                .iter()
                .flat_map(|t| t.memcg_chain())
                .filter_map(|l| Some((l.id?, l.usage_pages?)))
                .collect();
            for (&id, s) in &self.pressured {
                // The kernel's own count wins where it has one.
                if kill.saturating_sub(s.last_ns) > GROWTH_WINDOW_NS
                    || rates.iter().any(|r| r.0 == id)
                {
                    continue;
                }
                let (t, pages) = match at_kill.get(&id) {
                    Some(&p) => (kill, p),
                    None => (s.last_ns, s.last_pages),
                };
                let window = t.saturating_sub(s.first_ns);
                if window < 10_000_000 || pages <= s.first_pages {
                    continue;
                }
                let bps = ((pages - s.first_pages) as u128 * page as u128 * 1_000_000_000
                    / window as u128) as u64;
                rates.push((id, bps, window as f64 / 1e9, "page_counter"));
            }
        }
        if rates.is_empty() {
            return None;
        }
        rates.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        rates.truncate(5);
        Some(
            rates
                .into_iter()
                .map(|(id, bytes_per_s, window_s, source)| {
                    let cgroup = self.tree.path(CgroupId(id)).map(str::to_owned);
                    let pod = cgroup
                        .as_deref()
                        .and_then(|c| Identity::of_path(c).pod)
                        .and_then(|p| p.uid);
                    Growth {
                        cgroup,
                        pod,
                        bytes_per_s,
                        window_s: (window_s * 1000.0).round() / 1000.0,
                        source,
                    }
                })
                .collect(),
        )
    }
}
