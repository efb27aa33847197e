//! The kill path: a victim record assessed, what its verdict needs read from
//! the node, the verdict built (the OOM rules are in `rules::attribution`).

use super::*;
use crate::output::verdict::LimitLowered;

impl Engine {
    /// Whether the kernel counted this victim's incident as an oom.group
    /// kill (cgroup v2), which counts its chosen victim twice. Only the
    /// first victim of each incident counts; `group` is the kill's, read
    /// for the verdict.
    pub(super) fn group_kill(&mut self, a: &Assessment, group: Option<bool>) -> bool {
        if self.audit.is_none()
            || self.start.layout.version != Version::V2
            || self.audited_incident.as_deref() == Some(a.incident.as_str())
        {
            return false;
        }
        self.audited_incident = Some(a.incident.clone());
        group == Some(true)
    }

    /// A process's memory cgroup when the hook could not read it: the last
    /// attach the tree saw first (it outlives the process), then /proc —
    /// where a process that has already exited shows `/`, which then says
    /// nothing.
    pub(super) fn cgroup_of_live_pid(&self, pid: u32, obs: &mut dyn Observe) -> Option<String> {
        if let Some(path) = self
            .tree
            .cgroup_of_pid(pid)
            .and_then(|id| self.tree.path(id))
        {
            return Some(path.to_owned());
        }
        obs.proc_cgroup(pid).filter(|p| p != "/")
    }

    /// Whether the kernel's report for this victim has been read, or none
    /// will come (the deadline aside): an oom.group member gets none of its own (its
    /// invocation's first victim, judged, had it).
    pub(super) fn report_read(&self, v: &oomtrace_common::VictimEvent) -> bool {
        let pid = crate::kernel::event::pid(&v.victim);
        // A record without the victim's command (a pid-only mark_victim)
        // waits for the `Killed process` line, printed after the report,
        // which names the command and the memory.
        if self.start.reading_kmsg && v.victim.comm().is_none() {
            return self.kill_lines.contains_key(&pid)
                || self.attributor.follows_a_judged_victim(v);
        }
        !self.start.reading_kmsg
            || self.kmsg.contains_key(&pid)
            || self.unreported.contains(&pid)
            || self.attributor.follows_a_judged_victim(v)
    }

    pub(super) fn victim(
        &mut self,
        v: &oomtrace_common::VictimEvent,
        hint: Option<String>,
        obs: &mut dyn Observe,
        out: &mut Vec<Line>,
    ) {
        let snap = Snapshot {
            tree: &self.tree,
            page_size: self.start.page_size,
            boot_to_wall_ns: self.start.boot_to_wall_ns,
            kmsg: &self.kmsg,
            host_pid_ns: self.start.host_pid_ns,
        };
        let pid = crate::kernel::event::pid(&v.victim);
        let victim_owner = self
            .owner_of(v.victim.pid_ns())
            .or_else(|| self.escaped_by_pid.get(&pid).map(String::as_str))
            .map(str::to_owned);
        let trigger_owner = self.owner_of(v.trigger.pid_ns()).map(str::to_owned);
        let hints = Hints {
            victim_cgroup: hint.as_deref(),
            victim_owner: victim_owner.as_deref(),
            trigger_owner: trigger_owner.as_deref(),
            kill_line: self.kill_lines.get(&pid),
        };
        let mut a = self.attributor.assess(v, &snap, &hints);
        if let Some(r) = self.kmsg.get(&pid).and_then(|s| s.report.clone()) {
            // A limit no chain read held (a writer outside the cgroup, the
            // victim's chain unread): the report's numbers are that cgroup's.
            if let Some(l) = a.limit.as_mut().filter(|l| {
                l.usage_bytes.is_none()
                    && l.limit_bytes.is_none()
                    && l.cgroup.as_deref() == Some(r.cgroup.as_str())
            }) {
                (l.usage_bytes, l.limit_bytes) = r.usage_limit_bytes();
            }
            if self.reports.len() >= REPORTS_KEPT {
                self.reports.pop_front();
            }
            self.reports.push_back((a.incident.clone(), r));
        }
        let (mut seen, group) = self.observe_kill(&a, v, obs);
        seen.limit_lowered = self.limit_lowered(&a);
        // Its lines are spent: a later process with the same pid has its own.
        self.kmsg.remove(&pid);
        self.unreported.remove(&pid);
        self.kill_lines.remove(&pid);
        let group_kill = self.group_kill(&a, group);
        if let Some(audit) = self.audit.as_mut() {
            audit.verdict(group_kill);
        }
        self.counts.oom_verdicts += 1;
        let warned = self.warned_s_before(&a);
        let mut verdict = attribution::verdict(a, seen);
        verdict.warned_s_before = warned;
        out.push(Line::Verdict(Box::new(verdict)));
    }

    /// Everything a victim's verdict reads from the node (a recording keeps
    /// each answer with its question), and whether the kill was an oom.group
    /// kill (of any group).
    pub(super) fn observe_kill(
        &self,
        a: &Assessment,
        v: &oomtrace_common::VictimEvent,
        obs: &mut dyn Observe,
    ) -> (Observed, Option<bool>) {
        let judged_at = obs.now_boot_ns();
        let (mut seen, group) = self.observe_oom(a, obs);
        seen.memory = self.kill_memory(a, v);
        seen.growth = self.growth(v, obs);
        seen.judged_after_ns = Some(judged_at.saturating_sub(a.boot_ns));
        (seen, group)
    }

    /// What a kill's verdict reads from the node whatever saw the kill (a
    /// victim hook or the kernel log, live): memory.oom.group of its limit,
    /// the node's memory, the top consumers of a global OOM, the names.
    fn observe_oom(&self, a: &Assessment, obs: &mut dyn Observe) -> (Observed, Option<bool>) {
        let limit = a.limit.as_ref().and_then(|l| l.cgroup.as_deref());
        let victim = a.victim.cgroup.as_deref();
        let group = limit.and_then(|limit| obs.oom_group(victim.unwrap_or(limit), limit));
        let oom_group = match (group, victim, limit) {
            (Some(true), Some(victim), Some(limit)) => container_group(victim, limit, obs),
            _ => group,
        };
        let mut node_memory = obs.node_memory().map(|n| NodeMemory::of(&n, None));
        // Where the node's memory went, for every node-pressure kill.
        if let Some(n) = node_memory.as_mut().filter(|_| a.kind.is_some()) {
            n.breakdown = worded_breakdown(obs);
        }
        let top_consumers =
            (a.kind == Some(PressureKind::SystemOom)).then(|| self.top_consumers(obs));
        let names = self.names(&a.identity, obs);
        let seen = Observed {
            oom_group,
            node_memory,
            top_consumers,
            names,
            ..Observed::default()
        };
        (seen, group)
    }

    /// A kill the kernel's log tells of: from the backlog at start (`live`
    /// false: it happened while oomtrace was not running, so the node now
    /// says nothing of it but the kubelet's names), or live in kernel-log
    /// mode (no victim hook), when the node is read as for a hook's victim.
    /// Either way the assessment is the log's alone (`from_kernel_log`).
    pub(super) fn logged_kill(
        &mut self,
        past: &crate::logs::kmsg::PastKill,
        live: bool,
        obs: &mut dyn Observe,
        out: &mut Vec<Line>,
    ) {
        // Live, a kill line without its report still has a process oomtrace
        // may have seen joining its cgroup.
        let seen = (live && past.summary.is_none() && past.kill.group.is_none())
            .then(|| self.cgroup_of_live_pid(past.kill.pid, obs))
            .flatten();
        let mut a = from_log::from_kernel_log_seen(past, seen, self.start.boot_to_wall_ns);
        let report = past.summary.as_ref().and_then(|s| s.report.as_ref());
        // The report is of the summary's oom_memcg: the limit's own numbers.
        if let (Some(l), Some(r)) = (a.limit.as_mut(), report) {
            (l.usage_bytes, l.limit_bytes) = r.usage_limit_bytes();
        }
        let memory = report.map(Memory::from_report);
        if !live {
            let seen = Observed {
                memory,
                names: self.names(&a.identity, obs),
                ..Observed::default()
            };
            out.push(Line::Verdict(Box::new(attribution::verdict(a, seen))));
            return;
        }
        let pid = past.kill.pid;
        // Judged by the backlog already, but counted by the kernel since
        // the audit's base: the reader was started first.
        let judged = self.backlog_through.is_some_and(|s| past.seq <= s);
        // The chosen victim's line again, as a member of its oom.group kill.
        let again = past.kill.group.is_some() && self.logged_pids.contains(&pid);
        if judged || again {
            if let Some(audit) = self.audit.as_mut() {
                if again {
                    audit.counted_twice();
                } else {
                    audit.verdict(false);
                }
            }
            return;
        }
        if self.logged_pids.len() >= REPORTS_KEPT {
            self.logged_pids.pop_front();
        }
        self.logged_pids.push_back(pid);
        let (mut seen, _) = self.observe_oom(&a, obs);
        seen.memory = memory;
        if let Some(audit) = self.audit.as_mut() {
            audit.verdict(false);
        }
        self.counts.oom_verdicts += 1;
        out.push(Line::Verdict(Box::new(from_log::verdict_from_log(a, seen))));
    }

    /// The memory at the kill: the kernel's report for this kill's OOM
    /// invocation, else the victim cgroup's page counter as the victim hook
    /// read it. Never cgroupfs after the kill: the victim's pages are being
    /// freed by then.
    pub(super) fn kill_memory(
        &self,
        a: &Assessment,
        v: &oomtrace_common::VictimEvent,
    ) -> Option<Memory> {
        let report = self
            .kmsg
            .get(&crate::kernel::event::pid(&v.victim))
            .and_then(|s| s.report.as_ref())
            .or_else(|| {
                self.reports
                    .iter()
                    .rev()
                    .find(|(incident, _)| *incident == a.incident)
                    .map(|(_, r)| r)
            });
        if let Some(r) = report {
            return Some(Memory::from_report(r));
        }
        let pages = v.victim.memcg(0)?.usage_pages?;
        Some(Memory::from_page_counter(
            a.victim.cgroup.clone()?,
            pages.saturating_mul(self.start.page_size),
        ))
    }

    /// Whether the limit that fired, as the hooks read it at the kill, had
    /// been read higher shortly before (rules/lowered_limit.rs).
    pub(super) fn limit_lowered(&self, a: &Assessment) -> Option<LimitLowered> {
        let limit = a.limit.as_ref()?;
        self.limits
            .lowered_before(limit.cgroup.as_deref()?, limit.limit_bytes?, a.boot_ns)
    }

    /// The kubelet's names for an identity: the pod's, then the container's.
    pub(super) fn names(&self, id: &Identity, obs: &mut dyn Observe) -> Names {
        Names {
            pod: id
                .pod
                .as_ref()
                .and_then(|p| p.uid.as_ref())
                .and_then(|uid| obs.pod_name(uid)),
            container: id
                .container
                .as_ref()
                .and_then(|c| obs.container_name(&c.id)),
        }
    }

    /// The largest pod cgroups and top-level host cgroups by usage.
    pub(super) fn top_consumers(&self, obs: &mut dyn Observe) -> Vec<Consumer> {
        let candidates: Vec<String> = self
            .tree
            .live()
            .filter(|(_, n)| match pods::parse_cgroup_path(&n.path) {
                // Pods' own cgroups: what is below one is counted in it.
                Some(_) => pods::is_pod_cgroup(&n.path),
                None => n.path != "/" && n.path.matches('/').count() == 1,
            })
            .map(|(_, n)| n.path.clone())
            .collect();
        let mut sized: Vec<Consumer> = candidates
            .into_iter()
            .filter_map(|cgroup| {
                let usage_bytes = obs.memory_stat(&cgroup)?.usage_bytes?;
                let pod = Identity::of_path(&cgroup).pod;
                Some(Consumer {
                    cgroup,
                    usage_bytes,
                    pod,
                })
            })
            .collect();
        sized.sort_by(|a, b| {
            b.usage_bytes
                .cmp(&a.usage_bytes)
                .then(a.cgroup.cmp(&b.cgroup))
        });
        sized.truncate(5);
        sized
    }
}

/// Whether an oom.group kill — memory.oom.group set on some cgroup from the
/// victim's up to the limit's — took the victim's whole container. The
/// kernel kills the highest such cgroup: one set only below the container's
/// own (a unit of a systemd inside, `OOMPolicy=kill`) takes that unit, and
/// the container's init lives on. Asked once more, from the container's own
/// cgroup up, only for a victim below it (recordings of other kills replay
/// as before).
fn container_group(victim: &str, limit: &str, obs: &mut dyn Observe) -> Option<bool> {
    let Some(own) = pods::container_cgroup(victim) else {
        return Some(true);
    };
    if own == victim.trim_end_matches('/') {
        return Some(true);
    }
    // A limit below the container's own: the group is inside the container.
    if limit
        .strip_prefix(own)
        .is_some_and(|rest| rest.starts_with('/'))
    {
        return Some(false);
    }
    obs.oom_group(own, limit)
}
