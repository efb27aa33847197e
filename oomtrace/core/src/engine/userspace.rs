//! Userspace OOM killers: their signals fed to `rules::userspace`, the
//! node read at their first signal to a process, and the processes they
//! sent SIGTERM followed to their end.

use super::*;
use crate::rules::userspace::{self, KillStep, KillerContext};

/// si_code of a signal sent from userspace: kill(2) and pidfd_send_signal(2)
/// (SI_USER), sigqueue(2) (SI_QUEUE), tgkill(2) (SI_TKILL).
fn from_userspace(s: &oomtrace_common::SignalEvent) -> bool {
    matches!(s.code(), Some(0 | -1 | -6))
}

impl Engine {
    /// A SIGTERM/SIGKILL whose sender is a userspace OOM killer, to a
    /// pod's process or a host's: true when it was taken here (a verdict,
    /// a wait, a survivor's line), false to judge it as any other stop.
    pub(super) fn userspace_killer_signal(
        &mut self,
        s: &oomtrace_common::SignalEvent,
        target_cgroup: Option<&str>,
        obs: &mut dyn Observe,
        out: &mut Vec<Line>,
    ) -> bool {
        if self.start.userspace_killers.is_none()
            || Signal::stop_name(s.sig).is_none()
            || !from_userspace(s)
        {
            return false;
        }
        let now = s.header.boot_ns;
        let pid = event::pid(&s.target);
        if let Some(p) = self.pending_kills.remove(&pid) {
            // Only the killer's own later signals continue its kill.
            if p.killer_pid() == Some(s.sender_tgid) {
                if let Some(step) =
                    userspace::on_killer_signal(s, None, Some(p), &mut self.group_kills)
                {
                    self.kill_step(step, now, obs, out);
                }
                return true;
            }
            self.pending_kills.insert(pid, p);
            return false;
        }
        // An unread comm is no name: only the exe can then recognise it.
        let comm = event::known_comm(s.sender_comm()).unwrap_or_default();
        if pods::is_runtime(&comm) {
            return false;
        }
        let extra = self.start.userspace_killers.as_deref().unwrap_or_default();
        // A pod's process: the sender's exe is read whoever it is. A host
        // process's killer is known by its comm alone (the node's other
        // SIGTERMs and SIGKILLs cost no read).
        if !userspace::in_pod(target_cgroup) && userspace::recognise(&comm, None, extra).is_none() {
            return false;
        }
        let exe = obs.exe(s.sender_tgid);
        let extra = self.start.userspace_killers.as_deref().unwrap_or_default();
        let Some(recognised) = userspace::recognise(&comm, exe.as_deref(), extra) else {
            return false;
        };
        let node = obs.node_memory().map(|n| {
            let threshold = obs.eviction_threshold();
            let mut n = NodeMemory::of(&n, Some(&threshold));
            n.breakdown = worded_breakdown(obs);
            n.psi = obs.node_psi();
            n
        });
        let cx = KillerContext {
            target_cgroup,
            node,
            boot_to_wall_ns: self.start.boot_to_wall_ns,
            host_pid_ns: self.start.host_pid_ns,
            exe,
            recognised,
        };
        if let Some(step) = userspace::on_killer_signal(s, Some(cx), None, &mut self.group_kills) {
            self.kill_step(step, now, obs, out);
        }
        true
    }

    fn kill_step(&mut self, step: KillStep, now: u64, obs: &mut dyn Observe, out: &mut Vec<Line>) {
        match step {
            KillStep::Wait(p) => {
                self.pending_kills.insert(p.pid, *p);
            }
            KillStep::Verdict(k) => {
                self.signalled.insert(k.a.victim.pid, now);
                let seen = Observed {
                    names: self.names(&k.a.identity, obs),
                    node_memory: k.node_memory,
                    ..Observed::default()
                };
                out.push(Line::Verdict(Box::new(attribution::verdict(k.a, seen))));
            }
            KillStep::Survived(stop) => {
                self.signalled.insert(stop.process.pid, now);
                let names = self.names(&stop.identity, obs);
                out.push(Line::Stopped(stops::stopped(*stop, &names)));
            }
        }
    }

    /// Processes a killer sent SIGTERM: gone (killed), or looked for again.
    pub(super) fn check_pending_kills(&mut self, obs: &mut dyn Observe, out: &mut Vec<Line>) {
        let now = self.now;
        for p in super::take_due(&mut self.pending_kills, now, |p| p.check_ns) {
            let alive = obs.namespaces(p.pid).is_some();
            self.kill_step(userspace::after_wait(p, alive, now), now, obs, out);
        }
    }
}
