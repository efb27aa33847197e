//! Userspace OOM killers: a SIGTERM/SIGKILL whose sender is earlyoom,
//! nohang, systemd-oomd, oomd or a killer named with
//! `--userspace-killers` is a memory kill under node pressure
//! (`node_pressure`, kind `userspace_oom_killer`), one verdict per killed
//! process. That it was an OOM kill rests on the sender's name alone (its
//! comm, or its executable's file name): an inference the verdict says.
//!
//! earlyoom and nohang send SIGTERM, wait for the process to go (up to
//! 10 s by default), and send SIGKILL if it has not: the first signal
//! starts a [`PendingKill`] that the SIGKILL, the process's end (polled,
//! its exit is not seen) or [`KILLER_WAIT_NS`] ends. systemd-oomd (and
//! oomd) kill every process of a cgroup with SIGKILL, back to back: those
//! share one incident.

use oomtrace_common::SignalEvent;

use crate::{
    kernel::event,
    node::pods,
    output::verdict::{
        wall_time, Evidence, Identity, Killer, KillerSignal, NodeMemory, PressureKind, Process,
        Signal, StopReason, Trigger, VerdictKind, Victim,
    },
};

use super::{attribution::Assessment, stops::Stop};

/// The userspace OOM killers known by name. systemd-oomd's comm is its
/// full name (12 bytes, under the kernel's 15).
pub const KNOWN_KILLERS: [&str; 4] = ["earlyoom", "nohang", "systemd-oomd", "oomd"];

/// Killers that kill a whole cgroup (every process of a unit or slice)
/// with SIGKILL (systemd-oomd.service(8); oomd's `kill_by_memory_size_or_growth`).
const CGROUP_KILLERS: [&str; 2] = ["systemd-oomd", "oomd"];

/// How long after a killer's SIGTERM the process is followed: earlyoom
/// and nohang (`max_soft_exit_time`) wait 10 s by default before their
/// SIGKILL; a process still running well past that was not killed.
pub const KILLER_WAIT_NS: u64 = 30_000_000_000;

/// How often a process sent a killer's SIGTERM is looked for.
pub const KILLER_POLL_NS: u64 = 200_000_000;

/// A cgroup killer's SIGKILLs to the processes of one cgroup come back to
/// back (one pass over `cgroup.procs`, repeated until it is empty):
/// within this of the previous one, they are one incident.
pub const GROUP_KILL_NS: u64 = 1_000_000_000;

/// The kernel keeps 15 bytes of a process name.
const COMM_MAX: usize = 15;

/// What a sender was recognised as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recognised {
    pub known_as: String,
    /// `comm` or `exe`.
    pub matched_by: &'static str,
}

/// Whether a sender is a userspace OOM killer: its comm is a known name
/// (cut to the kernel's 15 bytes), or its executable's file name is.
/// nohang is a Python script: its comm is `nohang`, its exe python's.
pub fn recognise(comm: &str, exe: Option<&str>, extra: &[String]) -> Option<Recognised> {
    let names = KNOWN_KILLERS
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str));
    let exe_name = exe
        .map(|e| e.strip_suffix(" (deleted)").unwrap_or(e))
        .and_then(|e| e.rsplit('/').next());
    let mut by_exe = None;
    for name in names {
        let short = name.get(..COMM_MAX).unwrap_or(name);
        if !comm.is_empty() && (comm == name || comm == short) {
            return Some(Recognised {
                known_as: name.to_string(),
                matched_by: "comm",
            });
        }
        if by_exe.is_none() && exe_name == Some(name) {
            by_exe = Some(Recognised {
                known_as: name.to_string(),
                matched_by: "exe",
            });
        }
    }
    by_exe
}

/// What the engine read at the killer's first signal to a process.
pub struct KillerContext<'a> {
    pub target_cgroup: Option<&'a str>,
    /// The node's memory with its breakdown and PSI.
    pub node: Option<NodeMemory>,
    pub boot_to_wall_ns: i128,
    pub host_pid_ns: u32,
    pub exe: Option<String>,
    pub recognised: Recognised,
}

/// A killer's kill, judged: the assessment and the node's memory at its
/// first signal.
pub struct Killed {
    pub a: Assessment,
    pub node_memory: Option<NodeMemory>,
}

/// A process a killer sent SIGTERM, followed until it ends.
#[derive(Clone, Debug)]
pub struct PendingKill {
    pub pid: u32,
    first_ns: u64,
    /// When the process is next looked for.
    pub check_ns: u64,
    a: Assessment,
    node_memory: Option<NodeMemory>,
}

impl PendingKill {
    /// The killer that sent the SIGTERM.
    pub fn killer_pid(&self) -> Option<u32> {
        self.a.killer.as_ref().map(|k| k.pid)
    }
}

pub enum KillStep {
    Verdict(Box<Killed>),
    Wait(Box<PendingKill>),
    /// Still running [`KILLER_WAIT_NS`] after the killer's SIGTERM.
    Survived(Box<Stop>),
}

/// The last cgroup killer's SIGKILL, for the incident of the next.
#[derive(Default)]
pub struct GroupKills {
    last: Option<(u32, u64, String)>,
}

impl GroupKills {
    fn incident(&mut self, killer: &Recognised, sender: u32, sig: u32, boot_ns: u64) -> String {
        let fresh = format!("userspace-{boot_ns}");
        if !CGROUP_KILLERS.contains(&killer.known_as.as_str()) || sig != 9 {
            return fresh;
        }
        let incident = match &self.last {
            Some((pid, at, incident))
                if *pid == sender && boot_ns.saturating_sub(*at) <= GROUP_KILL_NS =>
            {
                incident.clone()
            }
            _ => fresh,
        };
        self.last = Some((sender, boot_ns, incident.clone()));
        incident
    }
}

fn killer_signal(ev: &SignalEvent, name: &'static str, first_ns: u64) -> KillerSignal {
    KillerSignal {
        name,
        number: ev.sig,
        after_s: (ev.header.boot_ns.saturating_sub(first_ns) as f64 / 1e6).round() / 1e3,
        ignored: ev.result() == Some(1),
    }
}

/// A known killer's SIGTERM or SIGKILL sent to a process (`earlier`: its
/// pending SIGTERM). A SIGKILL is the verdict at once (the kernel kills on
/// it whatever the process does); a SIGTERM waits for the process's end.
/// `cx` is read at the first signal only: `None` for a later one.
pub fn on_killer_signal(
    ev: &SignalEvent,
    cx: Option<KillerContext<'_>>,
    earlier: Option<PendingKill>,
    groups: &mut GroupKills,
) -> Option<KillStep> {
    let name = Signal::stop_name(ev.sig)?;
    let mut p = match (earlier, cx) {
        (Some(mut p), _) => {
            let s = killer_signal(ev, name, p.first_ns);
            if let Some(k) = p.a.killer.as_mut() {
                k.signals.push(s);
            }
            p.a.signal = Some(Signal {
                name,
                number: ev.sig,
                sender: Process {
                    pid: ev.sender_tgid,
                    comm: event::known_comm(ev.sender_comm()),
                },
            });
            p
        }
        (None, Some(cx)) => first(ev, name, cx, groups),
        (None, None) => return None,
    };
    if ev.sig == 9 {
        return Some(KillStep::Verdict(Box::new(Killed {
            a: p.a,
            node_memory: p.node_memory,
        })));
    }
    p.check_ns = ev.header.boot_ns.saturating_add(KILLER_POLL_NS);
    Some(KillStep::Wait(Box::new(p)))
}

fn first(
    ev: &SignalEvent,
    name: &'static str,
    cx: KillerContext<'_>,
    groups: &mut GroupKills,
) -> PendingKill {
    let boot_ns = ev.header.boot_ns;
    let sender = Process {
        pid: ev.sender_tgid,
        comm: event::known_comm(ev.sender_comm()),
    };
    let cgroup = cx.target_cgroup.map(str::to_owned);
    let identity = cx.target_cgroup.map(Identity::of_path).unwrap_or_default();
    let pid_ns = ev.target.pid_ns().filter(|&ns| ns != 0);
    let mut victim = Victim::unread(
        event::pid(&ev.target),
        event::known_comm(ev.target.comm()),
        cgroup,
    );
    victim.ns_pid = ev.target.ns_pid().filter(|&p| p != 0);
    let a = Assessment {
        verdict: VerdictKind::NodePressure,
        kind: Some(PressureKind::UserspaceOomKiller),
        source: "bpf",
        incident: groups.incident(&cx.recognised, ev.sender_tgid, ev.sig, boot_ns),
        boot_ns,
        time: Some(wall_time(boot_ns, cx.boot_to_wall_ns)),
        victim,
        trigger: Some(Trigger {
            pid: sender.pid,
            comm: sender.comm.clone(),
            cgroup: None,
        }),
        limit: None,
        identity,
        signal: Some(Signal {
            name,
            number: ev.sig,
            sender: sender.clone(),
        }),
        killer: Some(Killer {
            pid: sender.pid,
            comm: sender.comm,
            exe: cx.exe,
            known_as: cx.recognised.known_as,
            matched_by: cx.recognised.matched_by,
            signals: vec![killer_signal(ev, name, boot_ns)],
        }),
        evidence: Evidence {
            basis: Some("userspace_killer_identity"),
            pid_ns,
            mnt_ns: ev.target.mnt_ns().filter(|&ns| ns != 0),
            ..Evidence::unread("signal")
        },
        host_pid_ns: pid_ns.is_none_or(|ns| ns == cx.host_pid_ns),
    };
    PendingKill {
        pid: event::pid(&ev.target),
        first_ns: boot_ns,
        check_ns: boot_ns,
        a,
        node_memory: cx.node,
    }
}

/// A process a killer sent SIGTERM, looked at (`now_ns`): gone, it was
/// killed (its exit inferred, not seen); alive, it is looked for again
/// until [`KILLER_WAIT_NS`], then reported as a survivor.
pub fn after_wait(mut p: PendingKill, alive: bool, now_ns: u64) -> KillStep {
    if !alive {
        p.a.evidence.basis = Some("userspace_killer_identity_then_exit");
        return KillStep::Verdict(Box::new(Killed {
            a: p.a,
            node_memory: p.node_memory,
        }));
    }
    if now_ns.saturating_sub(p.first_ns) < KILLER_WAIT_NS {
        p.check_ns = now_ns.saturating_add(KILLER_POLL_NS);
        return KillStep::Wait(Box::new(p));
    }
    let a = p.a;
    let signal = a.signal.clone().unwrap_or(Signal {
        name: "SIGTERM",
        number: 15,
        sender: Process {
            pid: a.victim.pid,
            comm: None,
        },
    });
    KillStep::Survived(Box::new(Stop {
        time: a.time.clone().unwrap_or_default(),
        process: Process {
            pid: a.victim.pid,
            comm: a.victim.comm.clone(),
        },
        cgroup: a.victim.cgroup.clone(),
        identity: a.identity,
        signal,
        node_memory: p.node_memory,
        reason: StopReason::SurvivedUserspaceOomKiller,
        kubelet_log_read: false,
    }))
}

/// Whether a cgroup path is a pod's (for the host/pod split in wording).
pub fn in_pod(cgroup: Option<&str>) -> bool {
    cgroup
        .and_then(pods::parse_cgroup_path)
        .is_some_and(|k| k.pod.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn killers_are_recognised_by_comm_then_by_exe() {
        let by = |comm, exe, extra: &[String]| {
            recognise(comm, exe, extra).map(|r| (r.known_as, r.matched_by))
        };
        assert_eq!(by("earlyoom", None, &[]), Some(("earlyoom".into(), "comm")));
        assert_eq!(
            by("systemd-oomd", Some("/usr/lib/systemd/systemd-oomd"), &[]),
            Some(("systemd-oomd".into(), "comm"))
        );
        // An upgraded binary still running: the kernel appends " (deleted)".
        assert_eq!(
            by("worker", Some("/usr/bin/earlyoom (deleted)"), &[]),
            Some(("earlyoom".into(), "exe"))
        );
        // The kernel keeps 15 bytes of a name.
        let long = vec!["tencent-oom-guard".to_string()];
        assert_eq!(
            by("tencent-oom-gua", None, &long),
            Some(("tencent-oom-guard".into(), "comm"))
        );
        assert_eq!(by("bash", Some("/usr/bin/bash"), &long), None);
        // Only a whole name: not a prefix, not a directory.
        assert_eq!(by("earlyoomd", Some("/opt/earlyoom/run"), &[]), None);
        assert_eq!(by("", None, &[String::new()]), None);
    }
}
