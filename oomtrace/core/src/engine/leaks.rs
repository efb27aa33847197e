//! Leaks and dying cgroups: pods whose cgroup stays empty, and the
//! `dying_cgroups` finding from the node's samples.

use super::*;

impl Engine {
    /// Removed cgroups piling up (their page cache keeps them): the node
    /// memory breakdown sampled once a minute; a `dying_cgroups` finding
    /// when it grew through a whole window, at most once an hour.
    pub(super) fn watch_dying(&mut self, obs: &mut dyn Observe, out: &mut Vec<Line>) {
        if !self.dying.due(self.now, self.start.dying_sample_ns) {
            return;
        }
        let Some(b) = obs.node_breakdown() else {
            // Unread: try again at the next sample.
            let _ = self.dying.sample(
                self.now,
                &crate::node::node_memory::Dying {
                    count: None,
                    bytes: 0,
                    by_parent: Vec::new(),
                },
            );
            return;
        };
        let Some(g) = self.dying.sample(self.now, &b.dying_cgroups) else {
            return;
        };
        let cgroup = g
            .by_parent
            .first()
            .map_or_else(|| "/".to_string(), |d| d.cgroup.clone());
        let summary = wording::dying_cgroups(&g);
        out.push(Line::Finding(Finding {
            dying_cgroups: Some(g),
            summary,
            ..Finding::new(
                FindingKind::DyingCgroups,
                wall_time(self.now, self.start.boot_to_wall_ns),
                cgroup,
            )
        }));
    }

    /// Pod cgroups with no process left that outlive the grace period
    /// (kubernetes#106957): reported once each.
    pub(super) fn check_leaks(&mut self, obs: &mut dyn Observe, out: &mut Vec<Line>) {
        let grace = self.start.leak_grace_ns;
        let every = (grace / 4).clamp(500_000_000, 30_000_000_000);
        if self.now.saturating_sub(self.last_leak_check) < every {
            return;
        }
        self.last_leak_check = self.now;
        let pods: Vec<(CgroupId, String)> = self
            .tree
            .live()
            .filter(|(id, n)| {
                !self.leaks_reported.contains(id)
                    && pods::parse_cgroup_path(&n.path).is_some_and(|k| k.level == Level::Pod)
            })
            .map(|(id, n)| (id, n.path.clone()))
            .collect();
        for (id, path) in pods {
            match obs.populated(&path) {
                Some(false) => {
                    let since = *self.empty_since.entry(id).or_insert(self.now);
                    let empty_for = self.now.saturating_sub(since);
                    if empty_for >= grace {
                        self.leaks_reported.insert(id);
                        let pod = Identity::of_path(&path).pod.map(|pod| Identity {
                            pod: Some(pod),
                            container: None,
                        });
                        let pod = pod.and_then(|id| id.clone().named(&self.names(&id, obs)).pod);
                        let empty_for_s = empty_for as f64 / 1e9;
                        let summary = wording::cgroup_leak(pod.as_ref(), &path, empty_for_s);
                        out.push(Line::Finding(Finding {
                            pod,
                            empty_for_s: Some(empty_for_s),
                            summary,
                            ..Finding::new(
                                FindingKind::CgroupLeak,
                                wall_time(self.now, self.start.boot_to_wall_ns),
                                path,
                            )
                        }));
                    }
                }
                _ => {
                    self.empty_since.remove(&id);
                }
            }
        }
    }
}
