//! The `oomkilled_misreport` finding (kubernetes#140716): runtimes report a
//! container `OOMKilled` from its cgroup's cumulative OOM-kill count, so a
//! container whose child was OOM-killed earlier is reported `OOMKilled`
//! however its init ends later — a stop, a crash, a clean exit.
//!
//! Per container this remembers the OOM kills oomtrace gave a verdict for
//! (live, or from the kernel log's backlog at start) and whether one of
//! them took the init. The container's end is seen as a userspace signal to
//! its init (a SIGKILL ends it; a SIGTERM is remembered until the
//! container's cgroup is removed) or, with no signal seen, as the removal
//! of its cgroup: the runtime removes it once the init has exited.

use std::collections::HashMap;

use crate::{
    node::pods::{container_cgroup, is_container_cgroup, parse_cgroup_path, ContainerId, Level},
    output::verdict::{EarlierKill, Exit, Identity, Misreport, Process, Signal, Verdict},
};

/// Containers remembered at most; the oldest entries go first past it (a
/// node runs a few hundred containers, and only ones with a kill are kept).
const MAX_CONTAINERS: usize = 4096;
/// Earlier kills listed per container; the count goes on past it.
const MAX_KILLS: usize = 16;

#[derive(Debug, Default)]
struct Track {
    cgroup: String,
    kills: Vec<EarlierKill>,
    more_kills: usize,
    init_killed: bool,
    /// A kill whose victim may have been the init.
    maybe_init: bool,
    /// The init's SIGTERM, waiting for the end of the container.
    term: Option<(Process, Signal)>,
    /// Insertion order, for eviction past `MAX_CONTAINERS`.
    seq: u64,
}

#[derive(Debug, Default)]
pub struct Misreports {
    containers: HashMap<ContainerId, Track>,
    seq: u64,
}

/// The container a cgroup path is or is below (not a pod or QoS level).
fn container_of(cgroup: &str) -> Option<ContainerId> {
    let k = parse_cgroup_path(cgroup)?;
    (k.level == Level::Container)
        .then_some(k.container)
        .flatten()
        .map(|c| c.id)
}

impl Misreports {
    /// Every OOM-kill verdict (evictions, not OOM kills, are skipped). A
    /// kill where it is unknown whether the init died (`kubelet_reports`
    /// null: the hooks read no namespaces) counts, but then only a signal
    /// to the init afterwards shows that the init outlived it.
    pub fn on_verdict(&mut self, v: &Verdict) {
        if v.signal.is_some() {
            return;
        }
        let Some(victim) = v.victim.as_ref() else {
            return;
        };
        let Some(cgroup) = victim.cgroup.as_deref() else {
            return;
        };
        let Some(id) = container_of(cgroup) else {
            return;
        };
        if v.container.as_ref().is_none_or(|c| c.id != id) {
            // An escaped process: its kill is not counted in this cgroup.
            return;
        }
        let seq = self.next_seq();
        // A kill in a cgroup the container made (a unit of its own
        // systemd) is the container's: remembered under its own cgroup.
        let own = container_cgroup(cgroup).unwrap_or(cgroup);
        let t = self.containers.entry(id).or_insert_with(|| Track {
            cgroup: own.to_string(),
            seq,
            ..Track::default()
        });
        match v.kubelet_reports {
            Some(true) => t.init_killed = true,
            Some(false) => {}
            None => t.maybe_init = true,
        }
        if t.kills.len() < MAX_KILLS {
            t.kills.push(EarlierKill {
                time: v.time.clone(),
                victim: Process {
                    pid: victim.pid,
                    comm: victim.comm.clone(),
                },
                incident: v.incident.clone(),
            });
        } else {
            t.more_kills += 1;
        }
        self.trim();
    }

    /// A userspace SIGTERM or SIGKILL to the init (pid 1 of its own pid
    /// namespace) of the container at `cgroup`.
    pub fn on_init_signal(
        &mut self,
        cgroup: &str,
        process: Process,
        signal: Signal,
    ) -> Option<Misreport> {
        // The init may live in a cgroup below the container's own (a
        // systemd moves itself to `init.scope`): the container is the same.
        let id = container_of(cgroup)?;
        let t = self.containers.get_mut(&id)?;
        if t.init_killed {
            return None;
        }
        if signal.number == 15 {
            t.term.get_or_insert((process, signal));
            return None;
        }
        let t = self.containers.remove(&id)?;
        Some(t.finding(
            container_cgroup(cgroup).unwrap_or(cgroup),
            Some((process, signal)),
        ))
    }

    /// The removal of a cgroup: for a container's own, its init has ended.
    /// A cgroup the container made below its own (a unit of a systemd
    /// inside) goes when that unit ends, while the container runs on.
    pub fn on_removed(&mut self, cgroup: &str) -> Option<Misreport> {
        if !is_container_cgroup(cgroup) {
            return None;
        }
        let id = container_of(cgroup)?;
        let mut t = self.containers.remove(&id)?;
        let term = t.term.take();
        if t.init_killed || (t.maybe_init && term.is_none()) {
            return None;
        }
        Some(t.finding(cgroup, term))
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn trim(&mut self) {
        while self.containers.len() > MAX_CONTAINERS {
            let Some(oldest) = self
                .containers
                .iter()
                .min_by_key(|(_, t)| t.seq)
                .map(|(id, _)| id.clone())
            else {
                return;
            };
            self.containers.remove(&oldest);
        }
    }
}

impl Track {
    fn finding(self, cgroup: &str, end: Option<(Process, Signal)>) -> Misreport {
        let (process, exit) = match end {
            Some((p, s)) => (
                Some(p),
                Exit {
                    signal: Some(s.name),
                    code: None,
                    sender: Some(s.sender),
                },
            ),
            None => (
                None,
                Exit {
                    signal: None,
                    code: None,
                    sender: None,
                },
            ),
        };
        let cgroup = if self.cgroup.is_empty() {
            cgroup.to_string()
        } else {
            self.cgroup
        };
        Misreport {
            identity: Identity::of_path(&cgroup),
            container_cgroup: cgroup,
            process,
            exit,
            earlier_kills: self.kills,
            more_kills: self.more_kills,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{test_kit as kit, verdict::Victim};

    const UID: &str = "6f1c2a9e-3b7d-4c11-9e0a-2b8f5d4c7a10";

    fn id(c: char) -> String {
        c.to_string().repeat(64)
    }

    fn cgroup(c: char) -> String {
        format!("/kubepods/burstable/pod{UID}/{}", id(c))
    }

    /// An OOM-kill verdict of `pid` in container `c`; `init`: the kubelet
    /// reports it (the init died).
    fn kill(c: char, pid: u32, init: bool) -> Verdict {
        let mut victim = Victim::unread(pid, Some("php-fpm".into()), Some(cgroup(c)));
        victim.ns_pid = Some(if init { 1 } else { 7 });
        Verdict {
            time: Some("2026-11-28T12:03:44Z".into()),
            kubelet_reports: Some(init),
            ..kit::pod_kill("bpf", format!("oom-{pid}"), victim, UID, &id(c))
        }
    }

    fn signal(number: u32, sender: &str) -> Signal {
        Signal {
            name: Signal::stop_name(number).unwrap_or("SIGTERM"),
            number,
            sender: Process {
                pid: 500,
                comm: Some(sender.into()),
            },
        }
    }

    fn init() -> Process {
        Process {
            pid: 40,
            comm: Some("sh".into()),
        }
    }

    #[test]
    fn a_stop_after_a_childs_kill_is_a_misreport() {
        let mut m = Misreports::default();
        m.on_verdict(&kill('a', 812, false));
        assert_eq!(
            m.on_init_signal(&cgroup('a'), init(), signal(15, "runc")),
            None,
            "a SIGTERM waits for the end"
        );
        let f = m.on_removed(&cgroup('a')).expect("the finding at the end");
        assert_eq!(f.exit.signal, Some("SIGTERM"));
        assert_eq!(
            f.exit.sender.as_ref().and_then(|s| s.comm.as_deref()),
            Some("runc")
        );
        assert_eq!(f.process, Some(init()));
        assert_eq!(f.earlier_kills.len(), 1);
        assert_eq!(f.earlier_kills[0].victim.pid, 812);
        assert_eq!(f.container_cgroup, cgroup('a'));
        let text = crate::output::wording::oomkilled_misreport(None, None, &f);
        assert!(
            text.contains("ended by SIGTERM from runc (pid 500), a stop")
                && text.contains("php-fpm (pid 812) at 2026-11-28T12:03:44Z"),
            "{text}"
        );
        assert_eq!(m.on_removed(&cgroup('a')), None, "once");
    }

    #[test]
    fn a_sigkill_ends_the_init_at_once() {
        let mut m = Misreports::default();
        m.on_verdict(&kill('a', 812, false));
        let f = m
            .on_init_signal(&cgroup('a'), init(), signal(9, "kill"))
            .expect("finding");
        assert_eq!(f.exit.signal, Some("SIGKILL"));
    }

    #[test]
    fn an_exit_with_no_signal_seen_is_reported_at_the_cgroups_removal() {
        let mut m = Misreports::default();
        m.on_verdict(&kill('a', 812, false));
        let f = m.on_removed(&cgroup('a')).expect("finding");
        assert_eq!(f.exit.signal, None);
        assert_eq!(f.process, None);
    }

    #[test]
    fn no_finding_when_the_kubelet_is_right_or_there_was_no_kill() {
        let mut m = Misreports::default();
        m.on_verdict(&kill('a', 812, false));
        m.on_verdict(&kill('a', 40, true));
        assert_eq!(m.on_removed(&cgroup('a')), None, "the init was OOM-killed");
        assert_eq!(
            m.on_init_signal(&cgroup('b'), init(), signal(9, "runc")),
            None,
            "no kill in that container"
        );
        m.on_verdict(&kill('c', 9, false));
        assert_eq!(
            m.on_removed(&format!("/kubepods/burstable/pod{UID}")),
            None,
            "a pod cgroup is not a container's"
        );
    }

    #[test]
    fn the_systemd_drivers_names_are_containers_too() {
        let uid = UID.replace('-', "_");
        let scope = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice/cri-containerd-{}.scope",
            id('d')
        );
        let mut v = kill('d', 812, false);
        if let Some(victim) = v.victim.as_mut() {
            victim.cgroup = Some(scope.clone());
        }
        let mut m = Misreports::default();
        m.on_verdict(&v);
        let f = m
            .on_init_signal(&scope, init(), signal(9, "runc"))
            .expect("a finding for the systemd-named container");
        assert_eq!(f.container_cgroup, scope);
        assert_eq!(
            f.identity.container.map(|c| c.id),
            Some(ContainerId::parse(&id('d')).expect("id"))
        );
    }

    #[test]
    fn a_kill_that_may_have_been_the_inits_needs_the_init_seen_alive_after() {
        let mut unknown = kill('a', 812, false);
        unknown.kubelet_reports = None;
        let mut m = Misreports::default();
        m.on_verdict(&unknown);
        assert_eq!(
            m.on_removed(&cgroup('a')),
            None,
            "maybe the init died of it"
        );
        m.on_verdict(&unknown);
        assert_eq!(
            m.on_init_signal(&cgroup('a'), init(), signal(15, "runc")),
            None
        );
        assert!(
            m.on_removed(&cgroup('a')).is_some(),
            "the init lived to be stopped"
        );
    }

    /// A systemd as the container's init: its units are cgroups below the
    /// container's (`init.scope`, `system.slice/NAME.service`), under either
    /// driver's names and in a private cgroup namespace's relative paths.
    fn systemd_containers() -> Vec<(char, String)> {
        let uid = UID.replace('-', "_");
        vec![
            ('a', cgroup('a')),
            ('b', format!("/../..{}", cgroup('b'))),
            (
                'c',
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice/cri-containerd-{}.scope",
                    id('c')
                ),
            ),
        ]
    }

    fn in_unit(c: char, own: &str, pid: u32) -> Verdict {
        let mut v = kill(c, pid, false);
        if let Some(victim) = v.victim.as_mut() {
            victim.cgroup = Some(format!("{own}/system.slice/hog.service"));
        }
        v
    }

    #[test]
    fn a_units_end_is_not_the_containers() {
        for (c, own) in systemd_containers() {
            let mut m = Misreports::default();
            m.on_verdict(&in_unit(c, &own, 812));
            for unit in ["system.slice/hog.service", "init.scope", "system.slice"] {
                assert_eq!(
                    m.on_removed(&format!("{own}/{unit}")),
                    None,
                    "{own}/{unit}: the container's systemd runs on"
                );
            }
            // A signal to a unit's process that is pid 1 of no namespace
            // never reaches here (the engine checks ns pid 1); its end is
            // no signal to the init either.
            let f = m.on_removed(&own).expect("the container's own end");
            assert_eq!(f.container_cgroup, own, "named by the container's cgroup");
            assert_eq!(f.earlier_kills.len(), 1);
            assert_eq!(
                f.identity.container.map(|c| c.id),
                Some(ContainerId::parse(&id(c)).expect("id"))
            );
        }
    }

    #[test]
    fn the_init_in_init_scope_ends_the_container() {
        for (c, own) in systemd_containers() {
            let mut m = Misreports::default();
            m.on_verdict(&in_unit(c, &own, 812));
            let systemd = Process {
                pid: 40,
                comm: Some("systemd".into()),
            };
            let f = m
                .on_init_signal(
                    &format!("{own}/init.scope"),
                    systemd.clone(),
                    signal(9, "runc"),
                )
                .expect("systemd, pid 1 of the container, killed");
            assert_eq!(f.container_cgroup, own);
            assert_eq!(f.process, Some(systemd));
            assert_eq!(f.earlier_kills[0].victim.pid, 812);
            assert_eq!(m.on_removed(&own), None, "once");
        }
    }

    #[test]
    fn a_units_kill_of_the_init_is_no_misreport() {
        // The kubelet is right when the init itself died (here: the
        // systemd, OOM-killed in init.scope).
        let (c, own) = systemd_containers().remove(0);
        let mut m = Misreports::default();
        let mut v = kill(c, 40, true);
        if let Some(victim) = v.victim.as_mut() {
            victim.cgroup = Some(format!("{own}/init.scope"));
        }
        m.on_verdict(&v);
        m.on_verdict(&in_unit(c, &own, 812));
        assert_eq!(m.on_removed(&own), None);
    }
}
