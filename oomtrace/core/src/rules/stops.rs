//! Stops and evictions: what a userspace SIGTERM/SIGKILL to a pod's
//! process comes to — an eviction once its whole pod is seen stopped, a
//! stop with its reason, or a wait for the rest of the stop.

use oomtrace_common::SignalEvent;

use crate::{
    kernel::event,
    node::pods::{self},
    output::verdict::{
        wall_time, Evidence, Identity, Names, NodeMemory, PressureKind, Process, Signal,
        StopReason, Stopped, Trigger, VerdictKind, Victim,
    },
    output::wording,
};

use super::attribution::Assessment;

/// What a userspace SIGTERM/SIGKILL to a pod's process comes to: a verdict
/// now, a line now, or a wait for the rest of the stop.
pub enum SignalStep {
    /// The eviction, once the whole pod is seen stopped (the kubelet evicts
    /// pods, never one container); else the stop, reason `pod_not_stopped`.
    Eviction(Box<EvictionStep>),
    Stopped(Box<Stop>),
    /// A runtime's SIGTERM under pressure: an eviction only if the process
    /// ends within a hard eviction's grace period, or the kubelet's log
    /// names it. Decided by the SIGKILL that follows, or by [`after_grace`]
    /// at `check_ns`.
    Wait(Box<PendingStop>),
}

/// A stop that looks like an eviction, waiting for its pod to be empty.
pub struct EvictionStep {
    pub a: Assessment,
    /// The node's memory at the SIGTERM.
    pub node_memory: Option<NodeMemory>,
    /// The stop to report instead if the rest of the pod keeps running.
    pub only_this: Stop,
    /// The process outlived the eviction's grace period: kubelets that
    /// give evicted pods their full grace period (kubernetes#115819,
    /// #124405) stop them exactly as a deletion does, so only the kubelet's
    /// own log line makes it an eviction; without it, this stop is reported
    /// (`eviction_or_deletion`).
    pub unless_logged: Option<Stop>,
}

/// A pod's process ended by a userspace signal that was not an eviction,
/// before its names are read.
#[derive(Clone, Debug)]
pub struct Stop {
    pub time: String,
    pub process: Process,
    pub cgroup: Option<String>,
    pub identity: Identity,
    pub signal: Signal,
    pub node_memory: Option<NodeMemory>,
    pub reason: StopReason,
    /// Whether the kubelet's log was read for this stop and named no
    /// eviction (`eviction_or_deletion` says which).
    pub kubelet_log_read: bool,
}

/// The one place a `Stopped` line is built.
pub fn stopped(s: Stop, names: &Names) -> Stopped {
    let kubelet_log_read = s.kubelet_log_read;
    let identity = s.identity.named(names);
    let mut out = Stopped {
        time: s.time,
        process: s.process,
        cgroup: s.cgroup,
        pod: identity.pod,
        container: identity.container,
        signal: s.signal,
        node_memory: s.node_memory,
        reason: s.reason,
        summary: String::new(),
    };
    out.summary = wording::stopped(&out, kubelet_log_read);
    out
}

/// si_code values of a signal sent from userspace: kill(2), tgkill(2),
/// sigqueue(2). The OOM killer's SIGKILL carries SI_KERNEL and is left to
/// the OOM hooks.
const SI_USER: i32 = 0;
const SI_QUEUE: i32 = -1;
const SI_TKILL: i32 = -6;

/// `signal_generate`'s `result`: delivered, or ignored by the target. A
/// container's init with no SIGTERM handler ignores the runtime's SIGTERM
/// (the kernel drops it at generation), yet that SIGTERM starts the stop.
const TRACE_SIGNAL_DELIVERED: i32 = 0;
const TRACE_SIGNAL_IGNORED: i32 = 1;

/// Whether a signal was sent to the target (delivered or ignored), not
/// lost (already pending, queue overflow).
pub fn sent(ev: &SignalEvent) -> bool {
    matches!(
        ev.result(),
        Some(TRACE_SIGNAL_DELIVERED | TRACE_SIGNAL_IGNORED)
    )
}

/// How long past its eviction's grace period a process that outlived it
/// is followed for the end of its stop: a pod's own grace period (which
/// some kubelets give evicted pods) is 30 s by default and sometimes an
/// hour. Still running after that, it is reported as it stands.
pub const LONG_STOP_FOLLOW_NS: u64 = 3_600_000_000_000 + 60_000_000_000;

/// How often such a process is looked for: its exit is not seen, and a
/// poll at every 50 ms tick of a 30 s stop would be 600 reads of /proc.
pub const LONG_STOP_POLL_NS: u64 = 1_000_000_000;

pub struct SignalContext<'a> {
    pub target_cgroup: Option<&'a str>,
    /// The node's memory with the kubelet's hard eviction threshold.
    pub node: Option<&'a NodeMemory>,
    /// The kubelet's soft threshold, when its config has one.
    pub soft: Option<SoftThreshold>,
    pub boot_to_wall_ns: i128,
    /// Whether a process that outlives the eviction's grace period is
    /// followed to the end of its stop (false: replaying a recording made
    /// before it was, which holds no answers for the polls).
    pub follow_long_stops: bool,
    /// The longest SIGTERM → SIGKILL gap of a hard eviction
    /// ([`crate::node::kubelet::HARD_EVICTION_GRACE_NS`]; a recording keeps the one it was made with).
    pub hard_grace_ns: u64,
}

/// `evictionSoft` memory.available, in bytes for this node.
#[derive(Clone, Debug)]
pub struct SoftThreshold {
    pub bytes: u64,
    /// The longest SIGTERM → SIGKILL gap of a soft eviction.
    pub grace_ns: u64,
    pub source: String,
}

/// A runtime's SIGTERM to a pod's process under memory pressure, waiting
/// for the rest of the stop.
#[derive(Clone, Debug)]
pub struct PendingStop {
    pub boot_ns: u64,
    /// The end of the eviction's grace period (slack included).
    pub deadline_ns: u64,
    /// When the process is next looked for: the deadline, then every
    /// [`LONG_STOP_POLL_NS`] once it outlived it.
    pub check_ns: u64,
    pub pid: u32,
    /// `hard` or `soft`: the threshold memory.available was under.
    threshold: &'static str,
    stop: Stop,
    follow: bool,
    /// Still running at the deadline: followed until its stop ends.
    outlived: bool,
}

impl PendingStop {
    /// Whether the process outlived the eviction's grace period and is
    /// followed at a slow poll (no faster ticks needed).
    pub fn outlived(&self) -> bool {
        self.outlived
    }
}

fn under_pressure(node: Option<&NodeMemory>) -> bool {
    node.is_some_and(|n| {
        n.eviction_threshold_bytes
            .is_some_and(|t| n.memory_available_bytes < t)
    })
}

/// A userspace SIGTERM or SIGKILL to a pod's process, judged. An eviction
/// needs what the kubelet's eviction looks like from the kernel: the
/// runtime sends it, memory.available is under the hard threshold, and the
/// process ends within a hard eviction's grace period after the SIGTERM.
/// `earlier` is this process's pending SIGTERM, if any.
pub fn on_signal(
    ev: &SignalEvent,
    cx: &SignalContext<'_>,
    earlier: Option<&PendingStop>,
) -> Option<SignalStep> {
    let name = Signal::stop_name(ev.sig)?;
    let from_userspace = matches!(ev.code(), Some(SI_USER | SI_QUEUE | SI_TKILL));
    if !from_userspace || !sent(ev) {
        return None;
    }
    let kube = cx.target_cgroup.and_then(pods::parse_cgroup_path)?;
    kube.pod.as_ref()?;
    let sender_comm = event::known_comm(ev.sender_comm());
    let runtime = sender_comm
        .as_deref()
        .is_some_and(crate::node::pods::is_runtime);
    let signal = Signal {
        name,
        number: ev.sig,
        sender: Process {
            pid: ev.sender_tgid,
            comm: sender_comm,
        },
    };
    let boot_ns = ev.header.boot_ns;
    let stop = Stop {
        time: wall_time(boot_ns, cx.boot_to_wall_ns),
        process: Process {
            pid: event::pid(&ev.target),
            comm: event::known_comm(ev.target.comm()),
        },
        cgroup: cx.target_cgroup.map(str::to_owned),
        identity: Identity::of(&kube),
        signal,
        node_memory: cx.node.cloned(),
        reason: StopReason::NoMemoryPressure,
        kubelet_log_read: false,
    };
    let with = |reason| {
        Some(SignalStep::Stopped(Box::new(Stop {
            reason,
            ..stop.clone()
        })))
    };
    if let Some(term) = earlier {
        if ev.sig == 15 {
            // Another SIGTERM changes nothing: the first one started the stop.
            return Some(SignalStep::Wait(Box::new(term.clone())));
        }
        // The SIGKILL that ends a stop: the grace period it shows decides.
        if !runtime {
            return with(StopReason::SenderNotRuntime);
        }
        let gap = boot_ns.saturating_sub(term.boot_ns);
        if boot_ns > term.deadline_ns && !term.follow {
            return with(StopReason::GraceLongerThanHardEviction);
        }
        return Some(eviction(
            term,
            stop,
            "runtime_sigterm_then_sigkill",
            Some(gap),
            boot_ns > term.deadline_ns,
        ));
    }
    if !runtime {
        return with(StopReason::SenderNotRuntime);
    }
    // The hard threshold first: under it the kubelet evicts at once, with
    // the shortest grace period.
    let soft = cx
        .soft
        .as_ref()
        .filter(|s| cx.node.is_some_and(|n| n.memory_available_bytes < s.bytes));
    let (threshold, window_ns, stop) = if under_pressure(cx.node) {
        ("hard", cx.hard_grace_ns, stop)
    } else if let Some(s) = soft {
        let mut stop = stop;
        if let Some(n) = stop.node_memory.as_mut() {
            n.eviction_threshold_bytes = Some(s.bytes);
            n.eviction_threshold_source = Some(s.source.clone());
        }
        ("soft", s.grace_ns, stop)
    } else {
        return with(StopReason::NoMemoryPressure);
    };
    if ev.sig == 9 {
        return Some(SignalStep::Stopped(Box::new(Stop {
            reason: StopReason::SigkillWithoutSigterm,
            ..stop
        })));
    }
    let deadline_ns = boot_ns.saturating_add(window_ns);
    Some(SignalStep::Wait(Box::new(PendingStop {
        boot_ns,
        deadline_ns,
        check_ns: deadline_ns,
        pid: event::pid(&ev.target),
        threshold,
        stop,
        follow: cx.follow_long_stops,
        outlived: false,
    })))
}

/// A pending SIGTERM looked at (`now_ns`) with no SIGKILL seen: gone at the
/// deadline means it ended within the grace (an eviction, inferred: the
/// exit itself is not seen); gone later, that its stop had a longer grace
/// (the kubelet's log decides); alive, it is followed until its stop ends,
/// for at most [`LONG_STOP_FOLLOW_NS`] past the deadline.
pub fn after_grace(mut p: PendingStop, alive: bool, now_ns: u64) -> SignalStep {
    if !alive {
        let stop = p.stop.clone();
        return eviction(&p, stop, "runtime_sigterm_then_exit", None, p.outlived);
    }
    let followed_for = now_ns.saturating_sub(p.deadline_ns);
    if !p.follow || followed_for >= LONG_STOP_FOLLOW_NS {
        return SignalStep::Stopped(Box::new(Stop {
            reason: StopReason::GraceLongerThanHardEviction,
            ..p.stop
        }));
    }
    p.outlived = true;
    p.check_ns = now_ns.saturating_add(LONG_STOP_POLL_NS);
    SignalStep::Wait(Box::new(p))
}

/// The eviction verdict's assessment: the stop began with `term`'s SIGTERM
/// and ended with `last` (the SIGKILL, or the SIGTERM itself). `outlived`:
/// it ended after the eviction's grace period, so it is an eviction only
/// if the kubelet's log says so.
fn eviction(
    term: &PendingStop,
    last: Stop,
    basis: &'static str,
    grace_ns: Option<u64>,
    outlived: bool,
) -> SignalStep {
    let last_stop = last.clone();
    let a = Assessment {
        verdict: VerdictKind::NodePressure,
        kind: Some(PressureKind::Eviction),
        source: "bpf",
        incident: format!("evict-{}", term.boot_ns),
        boot_ns: term.boot_ns,
        time: Some(term.stop.time.clone()),
        victim: Victim::unread(last.process.pid, last.process.comm, last.cgroup),
        trigger: Some(Trigger {
            pid: last.signal.sender.pid,
            comm: last.signal.sender.comm.clone(),
            cgroup: None,
        }),
        limit: None,
        identity: last.identity,
        signal: Some(last.signal),
        killer: None,
        evidence: Evidence {
            basis: Some(basis),
            grace_s: grace_ns.map(|g| (g as f64 / 1e6).round() / 1e3),
            eviction_threshold: Some(term.threshold),
            ..Evidence::unread("signal")
        },
        host_pid_ns: false,
    };
    let only_this = Stop {
        reason: StopReason::PodNotStopped,
        ..last_stop
    };
    // Said from the stop's first signal, as every stop line is.
    let unless_logged = outlived.then(|| Stop {
        reason: StopReason::EvictionOrDeletion,
        ..term.stop.clone()
    });
    SignalStep::Eviction(Box::new(EvictionStep {
        a,
        node_memory: term.stop.node_memory.clone(),
        only_this,
        unless_logged,
    }))
}
