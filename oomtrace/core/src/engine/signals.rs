//! Stops and evictions: userspace signals to pods' processes fed to
//! `rules::stops`, the stops and evictions waiting for the rest of their pod,
//! and `oomkilled_misreport` at a container's end.

use super::*;

/// An eviction verdict waiting for the rest of its pod to stop.
pub(super) struct PendingEviction {
    deadline_ns: u64,
    /// When the pod was seen empty (then only the kubelet's line is awaited).
    stopped_at: Option<u64>,
    names: Option<Names>,
    pod_cgroup: String,
    a: Box<Assessment>,
    node_memory: Option<NodeMemory>,
    /// The stop to report instead if the pod keeps running.
    only_this: Box<stops::Stop>,
    /// The stop to report instead unless the kubelet's log names the
    /// eviction (the process outlived the eviction's grace period).
    unless_logged: Option<Box<stops::Stop>>,
}

/// How long after a container's end its whole pod must be stopped for an
/// eviction: the kubelet stops every container at once, then the sandbox
/// (measured with containerd: well under a second).
const POD_STOP_WAIT_NS: u64 = 10_000_000_000;

/// The pod cgroup a container (or pod-level) cgroup path belongs to; a
/// cgroup below a container's (a unit of a systemd inside) is the
/// container's.
fn pod_cgroup_of(path: &str) -> Option<String> {
    let k = pods::parse_cgroup_path(path)?;
    match k.level {
        Level::Pod => Some(path.to_string()),
        Level::Container => pods::container_cgroup(path)?
            .rsplit_once('/')
            .map(|(pod, _)| pod.to_string()),
        _ => None,
    }
}

impl Engine {
    pub(super) fn on_signal(
        &mut self,
        s: &oomtrace_common::SignalEvent,
        obs: &mut dyn Observe,
        out: &mut Vec<Line>,
    ) {
        // Cheap filters first: most SIGKILL/SIGTERM on a node are not ours.
        if !stops::sent(s) || s.code().is_none_or(|c| c > 0) {
            return;
        }
        self.init_signal(s, obs, out);
        if self
            .signalled
            .get(&event::pid(&s.target))
            .is_some_and(|&t| s.header.boot_ns.saturating_sub(t) < SIGNAL_DEDUP_NS)
        {
            return;
        }
        // Read in the kernel at the signal (tp_btf) when it could be; the
        // process may already be gone when this runs.
        let target_cgroup = leaf_path(&self.tree, &s.target)
            .or_else(|| self.cgroup_of_live_pid(event::pid(&s.target), obs));
        if self.userspace_killer_signal(s, target_cgroup.as_deref(), obs, out) {
            return;
        }
        if target_cgroup
            .as_deref()
            .and_then(pods::parse_cgroup_path)
            .is_none_or(|k| k.pod.is_none())
        {
            return;
        }
        let node = obs.node_memory();
        let threshold = obs.eviction_threshold();
        let node = node.map(|n| NodeMemory::of(&n, Some(&threshold)));
        let soft = threshold
            .soft
            .as_ref()
            .zip(node.as_ref())
            .map(|(s, n)| SoftThreshold {
                bytes: s.bytes(n.capacity_bytes),
                grace_ns: s.grace_ns(self.start.runtime_slack_ns),
                source: s.source.clone(),
            });
        // A runtime's signal under the kubelet's threshold may be an
        // eviction: where the node's memory was, read at the signal.
        let mut node = node;
        if let Some(n) = node.as_mut() {
            let under = n
                .eviction_threshold_bytes
                .is_some_and(|t| n.memory_available_bytes < t)
                || soft
                    .as_ref()
                    .is_some_and(|t| n.memory_available_bytes < t.bytes);
            if under
                && s.sender_comm()
                    .is_some_and(|c| crate::node::pods::is_runtime(&event::comm(c)))
            {
                n.breakdown = worded_breakdown(obs);
            }
        }
        let cx = SignalContext {
            target_cgroup: target_cgroup.as_deref(),
            node: node.as_ref(),
            soft,
            boot_to_wall_ns: self.start.boot_to_wall_ns,
            follow_long_stops: self.start.follow_long_stops,
            hard_grace_ns: 2_000_000_000 + self.start.runtime_slack_ns,
        };
        let earlier = self.pending_stops.remove(&event::pid(&s.target));
        let Some(step) = stops::on_signal(s, &cx, earlier.as_ref()) else {
            if let Some(p) = earlier {
                self.pending_stops.insert(p.pid, p);
            }
            return;
        };
        self.signal_step(step, s.header.boot_ns, obs, out);
    }

    /// A userspace SIGTERM/SIGKILL to a container's init: the end of a
    /// container that may be misreported `OOMKilled`. Only the cgroup the
    /// kernel read at the signal is used (no /proc read: the init may be
    /// gone, and a recording replays the questions asked in order).
    pub(super) fn init_signal(
        &mut self,
        s: &oomtrace_common::SignalEvent,
        obs: &mut dyn Observe,
        out: &mut Vec<Line>,
    ) {
        let Some(name) = Signal::stop_name(s.sig) else {
            return;
        };
        let own_ns = s
            .target
            .pid_ns()
            .is_some_and(|ns| ns != 0 && ns != self.start.host_pid_ns);
        if s.target.ns_pid() != Some(1) || !own_ns {
            return;
        }
        let Some(cgroup) = leaf_path(&self.tree, &s.target) else {
            return;
        };
        let process = Process {
            pid: event::pid(&s.target),
            comm: event::known_comm(s.target.comm()),
        };
        let signal = Signal {
            name,
            number: s.sig,
            sender: Process {
                pid: s.sender_tgid,
                comm: event::known_comm(s.sender_comm()),
            },
        };
        if let Some(m) = self.misreports.on_init_signal(&cgroup, process, signal) {
            self.misreport(m, s.header.boot_ns, obs, out);
        }
    }

    /// The `oomkilled_misreport` finding, named and worded.
    pub(super) fn misreport(
        &mut self,
        m: Misreport,
        boot_ns: u64,
        obs: &mut dyn Observe,
        out: &mut Vec<Line>,
    ) {
        let identity = m.identity.clone();
        let identity = identity.clone().named(&self.names(&identity, obs));
        let summary =
            wording::oomkilled_misreport(identity.pod.as_ref(), identity.container.as_ref(), &m);
        out.push(Line::Finding(Finding {
            pod: identity.pod,
            container: identity.container,
            process: m.process,
            exit: Some(m.exit),
            earlier_kills: Some(m.earlier_kills),
            summary,
            ..Finding::new(
                FindingKind::OomkilledMisreport,
                wall_time(boot_ns, self.start.boot_to_wall_ns),
                m.container_cgroup,
            )
        }));
    }

    /// A signal's outcome: a line now, or a stop that waits for the rest.
    pub(super) fn signal_step(
        &mut self,
        step: SignalStep,
        now: u64,
        obs: &mut dyn Observe,
        out: &mut Vec<Line>,
    ) {
        let pid = match &step {
            SignalStep::Eviction(e) => e.a.victim.pid,
            SignalStep::Stopped(s) => s.process.pid,
            SignalStep::Wait(p) => {
                self.pending_stops.insert(p.pid, (**p).clone());
                return;
            }
        };
        self.signalled.insert(pid, now);
        if self.signalled.len() > 65_536 {
            self.signalled
                .retain(|_, t| now.saturating_sub(*t) < SIGNAL_DEDUP_NS);
        }
        match step {
            SignalStep::Eviction(e) => {
                let e = *e;
                match e.only_this.cgroup.as_deref().and_then(pod_cgroup_of) {
                    Some(pod_cgroup) => self.pending_evictions.push(PendingEviction {
                        deadline_ns: now.saturating_add(POD_STOP_WAIT_NS),
                        stopped_at: None,
                        names: None,
                        pod_cgroup,
                        a: Box::new(e.a),
                        node_memory: e.node_memory,
                        only_this: Box::new(e.only_this),
                        unless_logged: e.unless_logged.map(Box::new),
                    }),
                    None => {
                        let names = self.names(&e.only_this.identity, obs);
                        out.push(Line::Stopped(stops::stopped(e.only_this, &names)));
                    }
                }
            }
            SignalStep::Stopped(stop) => {
                let names = self.names(&stop.identity, obs);
                out.push(Line::Stopped(stops::stopped(*stop, &names)));
            }
            SignalStep::Wait(_) => {}
        }
    }

    /// Runtime SIGTERMs whose hard-eviction grace ran out with no SIGKILL:
    /// whether the process is still there decides.
    pub(super) fn check_pending_stops(&mut self, obs: &mut dyn Observe, out: &mut Vec<Line>) {
        let now = self.now;
        for p in super::take_due(&mut self.pending_stops, now, |p| p.check_ns) {
            let alive = obs.namespaces(p.pid).is_some();
            self.signal_step(stops::after_grace(p, alive, now), now, obs, out);
        }
    }

    /// Evictions whose pod is now empty (the verdict), or still running
    /// past the wait (a stop of one container, not an eviction).
    pub(super) fn check_pending_evictions(&mut self, obs: &mut dyn Observe, out: &mut Vec<Line>) {
        if self.pending_evictions.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending_evictions);
        for mut p in pending {
            if p.stopped_at.is_none() {
                if obs.populated(&p.pod_cgroup) == Some(true) {
                    if self.now >= p.deadline_ns {
                        let names = self.names(&p.only_this.identity, obs);
                        out.push(Line::Stopped(stops::stopped(*p.only_this, &names)));
                    } else {
                        self.pending_evictions.push(p);
                    }
                    continue;
                }
                p.stopped_at = Some(self.now);
                p.names = Some(self.names(&p.a.identity, obs));
            }
            let names = p.names.clone().unwrap_or_default();
            // The kubelet logs its eviction once the pod is killed: give it
            // a moment, when its log is read.
            let logged = match (&names.pod, self.start.kubelet_log) {
                (Some((ns, name)), true) => {
                    let since = (p.a.boot_ns as i128 + self.start.boot_to_wall_ns) / 1_000_000_000;
                    obs.kubelet_evicted(ns, name, since as i64 - 1)
                }
                _ => None,
            };
            let confirmed = logged == Some(true);
            let waited = self.now.saturating_sub(p.stopped_at.unwrap_or(self.now));
            if confirmed
                || !self.start.kubelet_log
                || names.pod.is_none()
                || waited >= crate::node::kubelet::KUBELET_LOG_WAIT_NS
            {
                if let Some(stop) = p.unless_logged.take().filter(|_| !confirmed) {
                    let stop = stops::Stop {
                        kubelet_log_read: logged.is_some(),
                        ..*stop
                    };
                    out.push(Line::Stopped(stops::stopped(stop, &names)));
                    continue;
                }
                let mut a = *p.a;
                if confirmed {
                    a.evidence.basis = Some("kubelet_log");
                }
                let seen = Observed {
                    names,
                    node_memory: p.node_memory,
                    ..Observed::default()
                };
                out.push(Line::Verdict(Box::new(attribution::verdict(a, seen))));
            } else {
                self.pending_evictions.push(p);
            }
        }
    }
}
