//! The engine: inputs (kernel records, kernel-log summaries, ticks, drop
//! counters) in, output records out. It owns the node model and calls
//! attribution; every read of the machine goes through [`Observe`], so the
//! live daemon and a replay of a recording run this same code.

// `impl Engine` is split by the rule each part feeds; this file keeps the
// dispatch, the kernel-log wait and the heartbeat.
mod escapes;
mod growth;
mod kill;
mod leaks;
pub mod recording;
mod signals;
#[cfg(test)]
mod tests;
mod userspace;

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::Bytes;
use oomtrace_common::{Hook, MovedTask, HOOK_COUNT};
use serde::{Deserialize, Serialize};

use crate::{
    kernel::event::{self, Event},
    logs::oom_report::{MemcgReport, OomSummary},
    node::cgroup::{CgroupId, CgroupTree, Layout, Version, UNLIMITED_PAGES},
    node::observe::{Observe, ProcStart},
    node::pods::{self, Level},
    output::sink::{Heartbeat, Line, Lost},
    output::verdict::Misreport,
    output::verdict::{
        wall_time, Consumer, Finding, FindingKind, Growth, Identity, Memory, Names, NodeMemory,
        PressureKind, Process, Signal,
    },
    output::wording,
    rules::attribution::{self, Assessment, Attributor, Hints, Observed, Snapshot},
    rules::audit::{Audit, KernelCount},
    rules::from_log,
    rules::lowered_limit::LimitHistory,
    rules::misreport::Misreports,
    rules::near_oom::{self, Detector},
    rules::stops::{self, PendingStop, SignalContext, SignalStep, SoftThreshold},
};
use growth::PressureSpan;
use signals::PendingEviction;

/// How long a victim waits for the kernel's OOM report (its summary line
/// names the cgroup at its limit where no per-OOM hook read it, and its
/// stats are the memory at the kill) before it is judged without it. The
/// report is printed before the victim is marked; a slow or loaded node
/// reads /dev/kmsg a few hundred ms late. The wait ends early once the log
/// has been read past the kill ([`Input::KmsgDrained`]) or at the kill's own
/// `Killed process` line (a rate-limited report: none will come); an
/// oom.group member has none of its own and waits for none.
const KMSG_WAIT_NS: u64 = 1_000_000_000;
/// Reports kept for the later victims of their OOM invocation.
const REPORTS_KEPT: usize = 64;
/// How long a kernel-log line waits for its victim's record: the victim is
/// judged within [`KMSG_WAIT_NS`] of its own record, so a line this old
/// belongs to no victim to come (a reused pid must not find it).
const KMSG_KEEP_NS: u64 = 60_000_000_000;
/// One verdict per process: a later SIGKILL after a SIGTERM is the same stop.
const SIGNAL_DEDUP_NS: u64 = 60_000_000_000;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Input {
    /// A raw ring-buffer record.
    Kernel(#[serde(with = "b64")] Bytes),
    Kmsg(OomSummary),
    /// The kernel log's `Killed process` line for this pid: its report, if
    /// any, has been read. (Recordings made before [`Input::KmsgKilled`].)
    KmsgKill(u32),
    /// The same line, whole (what the daemon sends since victim records
    /// may hold only the pid): it also names the victim's command and
    /// memory where the record does not (a `mark_victim` of the pid only,
    /// before 6.9), which the report, rate-limited, may not.
    KmsgKilled(crate::logs::oom_report::OomKill),
    /// The kernel log's `Killed process` line, whole, when no victim hook
    /// sees kills (kernel-log mode): a verdict from the log alone, as the
    /// backlog's, with its `oom-kill:` summary (`Kmsg`) when one came.
    /// `seq` and `ts_us` are its /dev/kmsg record's.
    LoggedKill {
        seq: u64,
        ts_us: u64,
        kill: crate::logs::oom_report::OomKill,
    },
    /// /dev/kmsg was read to its end after this CLOCK_BOOTTIME ns: a
    /// victim marked by then whose report was not read has none (the
    /// kernel prints the report before it marks the victim), so its verdict
    /// waits no more for one.
    KmsgDrained(u64),
    /// Time passes (CLOCK_BOOTTIME ns).
    Tick(u64),
    /// Per-hook totals of ring-buffer reservation failures.
    Drops(#[serde(with = "drops")] [u64; HOOK_COUNT as usize]),
    /// Kills found in the kernel log at start: they happened while oomtrace
    /// was not running.
    PastKills(Vec<crate::logs::kmsg::PastKill>),
    /// Kills the kernel counted (/proc/vmstat oom_kill) while oomtrace was
    /// not running that its log no longer shows.
    Missed(u64),
    /// The memory of the limited cgroups near their limits (the daemon's
    /// sampler, for `near_oom`).
    Usage(near_oom::Samples),
}

/// A recording made before a hook family was added holds fewer totals:
/// the missing ones are 0.
mod drops {
    use oomtrace_common::HOOK_COUNT;
    use serde::{de::Error, Deserialize, Deserializer, Serialize, Serializer};

    type Totals = [u64; HOOK_COUNT as usize];

    pub fn serialize<S: Serializer>(v: &Totals, s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Totals, D::Error> {
        let v = Vec::<u64>::deserialize(d)?;
        let mut out = [0; HOOK_COUNT as usize];
        if v.len() > out.len() {
            return Err(D::Error::invalid_length(
                v.len(),
                &"at most one total per hook",
            ));
        }
        out[..v.len()].copy_from_slice(&v);
        Ok(out)
    }
}

mod b64 {
    use base64::{engine::general_purpose::STANDARD, Engine as _};
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD
            .decode(s)
            .map(Bytes::from)
            .map_err(serde::de::Error::custom)
    }
}

/// Everything the engine starts from; a recording's header holds it, every
/// field written out. A new field that recordings made before it lack takes
/// `#[serde(default = …)]` with the value they were judged with, until the
/// next `recording::VERSION` converts them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Start {
    pub node: String,
    pub kernel: String,
    pub layout: Layout,
    pub cgroups: Vec<(u64, String)>,
    pub page_size: u64,
    /// CLOCK_REALTIME − CLOCK_BOOTTIME at start, ns.
    pub boot_to_wall_ns: i128,
    /// The pid namespace of the host (oomtrace's own, run with hostPID):
    /// processes in it belong to no container.
    pub host_pid_ns: u32,
    /// Pid namespace → container cgroup, for containers already running.
    pub containers: Vec<(u32, String)>,
    /// (pid, container cgroup, when seen there) of every process in a
    /// container at start: a hostPID pod's process leaving it is known by
    /// its pid, its namespaces being the host's.
    pub container_pids: Vec<(u32, String, u64)>,
    pub leak_grace_ns: u64,
    /// 0: no heartbeat lines.
    pub heartbeat_ns: u64,
    /// /proc/vmstat `oom_kill` once the hooks were attached: the kernel's
    /// count the stream is audited against (`missed` lines). None: no
    /// audit (a kernel without the count).
    pub kernel_oom_kills: Option<KernelCount>,
    /// Whether the kubelet's log is read (`--kubelet-log`): an eviction
    /// then waits a little for the eviction manager's own line.
    pub kubelet_log: bool,
    /// Whether a runtime's stop under pressure that outlives the
    /// eviction's grace period is followed to its end, for the kubelet's
    /// log to decide. The daemon always follows; recordings converted
    /// from version 1 (the replay fixtures) were made without following
    /// and hold no answers for its polls.
    pub follow_long_stops: bool,
    /// How late the runtime's SIGKILL may come after the grace the kubelet
    /// asked for (`kubelet::RUNTIME_SLACK_NS`; recordings converted from
    /// version 1 were judged with 1 s).
    pub runtime_slack_ns: u64,
    /// `--near-oom-horizon`, ns; 0: no `near_oom` findings.
    pub near_oom_horizon_ns: u64,
    /// How often the dying cgroups are sampled (`--dying-sample-interval`).
    pub dying_sample_ns: u64,
    /// Whether /dev/kmsg is read (not in a non-privileged container): a
    /// victim waits for the kernel's report only then.
    pub reading_kmsg: bool,
    /// Userspace OOM killers known beyond the built-in ones
    /// (`--userspace-killers`). None: a recording made before they were
    /// judged (it holds no answers for their reads), so none is.
    #[serde(default)]
    pub userspace_killers: Option<Vec<String>>,
    /// The limit of every cgroup `near_oom` models (path, bytes), read by
    /// the start-up scan at `limits_ns` once the hooks were attached: a
    /// lowering before the first sample is still seen. Empty in
    /// recordings made before the scan read limits.
    #[serde(default)]
    pub limits: Vec<(String, u64)>,
    #[serde(default)]
    pub limits_ns: u64,
}

/// Whether `near_oom` samples this cgroup: a level the kubelet limits, or a
/// host service (`/system.slice/NAME.service`).
pub fn is_near_oom_target(path: &str) -> bool {
    if pods::parse_cgroup_path(path).is_some() {
        return true;
    }
    path.strip_prefix("/system.slice/")
        .is_some_and(|s| s.ends_with(".service") && !s.contains('/'))
}

pub struct Engine {
    start: Start,
    tree: CgroupTree,
    attributor: Attributor,
    kmsg: HashMap<u32, OomSummary>,
    /// Pids whose `Killed process` line was read without a summary before it.
    unreported: HashSet<u32>,
    /// The `Killed process` lines by pid, for victim records without the
    /// victim's command and memory.
    kill_lines: HashMap<u32, crate::logs::oom_report::OomKill>,
    /// When each pid's kernel-log line came, oldest first: lines no victim
    /// took are dropped after [`KMSG_KEEP_NS`].
    log_seen: VecDeque<(u64, u32)>,
    /// The memcg part of the latest OOM reports, by incident.
    reports: VecDeque<(String, MemcgReport)>,
    waiting: VecDeque<(u64, oomtrace_common::VictimEvent, Option<String>)>,
    /// Pid namespace → the container cgroup a process of it joined last
    /// (the latest wins: the kernel reuses dead namespaces' inode numbers).
    owners: HashMap<u32, String>,
    /// Pid → the container cgroup it last joined, and when: how a process of
    /// a hostPID pod (the host's namespaces) is tied to its pod.
    pod_of_pid: HashMap<u32, (String, u64)>,
    /// Pid → the container cgroup of a hostPID pod's process that left it.
    escaped_by_pid: HashMap<u32, String>,
    signalled: HashMap<u32, u64>,
    /// Runtime SIGTERMs under pressure waiting for the rest of the stop, by pid.
    pending_stops: HashMap<u32, PendingStop>,
    /// Evictions waiting for their whole pod to stop.
    pending_evictions: Vec<PendingEviction>,
    /// Processes a userspace OOM killer sent SIGTERM, by pid.
    pending_kills: HashMap<u32, crate::rules::userspace::PendingKill>,
    /// The last cgroup killer's SIGKILL, for one incident per cgroup kill.
    group_kills: crate::rules::userspace::GroupKills,
    lost_seen: [u64; HOOK_COUNT as usize],
    /// Pod cgroups seen empty, since when (boot ns).
    empty_since: HashMap<CgroupId, u64>,
    leaks_reported: HashSet<CgroupId>,
    last_leak_check: u64,
    now: u64,
    started: Option<u64>,
    /// Memory cgroups seen entering reclaim: usage at first and last sight.
    pressured: HashMap<u64, PressureSpan>,
    last_heartbeat: u64,
    counts: Heartbeat,
    /// CLOCK_BOOTTIME ns of the latest reclaim-pressure record, 0 before any.
    last_pressure_ns: u64,
    /// The kernel's OOM-kill count against the verdicts (None: no audit).
    audit: Option<Audit>,
    /// The incident of the latest victim the audit counted.
    audited_incident: Option<String>,
    /// The last record of the backlog's kills: a live line up to it was
    /// judged there already (the reader starts before the backlog is read).
    backlog_through: Option<u64>,
    /// Pids judged from live `Killed process` lines, newest last: an
    /// oom.group kill prints its chosen victim's line twice (once chosen,
    /// once as a member), and the kernel counts both.
    logged_pids: VecDeque<u32>,
    /// Containers with OOM kills, for `oomkilled_misreport` at their end.
    misreports: Misreports,
    /// The dying cgroups sampled on ticks, for the `dying_cgroups` finding.
    dying: crate::node::node_memory::DyingWatch,
    /// The `near_oom` rule.
    near: Detector,
    /// Memory cgroups a pressure record saw at their limit, and when.
    at_limit: HashMap<u64, u64>,
    /// The cgroups the sampler reads; None when the tree changed since.
    targets: Option<Vec<(u64, String)>>,
    /// Recent readings of limits, for a kill after a lowered limit.
    limits: LimitHistory,
}

impl Engine {
    pub fn new(start: Start) -> Engine {
        let tree = CgroupTree::from_entries(start.layout.hierarchy_id, &start.cgroups);
        let owners = start.containers.iter().cloned().collect();
        let pod_of_pid = start
            .container_pids
            .iter()
            .map(|(pid, cgroup, at)| (*pid, (cgroup.clone(), *at)))
            .collect();
        Engine {
            tree,
            attributor: Attributor::default(),
            kmsg: HashMap::new(),
            unreported: HashSet::new(),
            kill_lines: HashMap::new(),
            log_seen: VecDeque::new(),
            reports: VecDeque::new(),
            waiting: VecDeque::new(),
            owners,
            pod_of_pid,
            escaped_by_pid: HashMap::new(),
            signalled: HashMap::new(),
            pending_stops: HashMap::new(),
            pending_evictions: Vec::new(),
            pending_kills: HashMap::new(),
            group_kills: Default::default(),
            lost_seen: [0; HOOK_COUNT as usize],
            empty_since: HashMap::new(),
            leaks_reported: HashSet::new(),
            last_leak_check: 0,
            now: 0,
            started: None,
            pressured: HashMap::new(),
            last_heartbeat: 0,
            last_pressure_ns: 0,
            counts: Heartbeat::default(),
            audit: start.kernel_oom_kills.map(Audit::new),
            audited_incident: None,
            backlog_through: None,
            logged_pids: VecDeque::new(),
            misreports: Misreports::default(),
            dying: crate::node::node_memory::DyingWatch::default(),
            near: Detector::new(start.near_oom_horizon_ns),
            at_limit: HashMap::new(),
            targets: None,
            limits: LimitHistory::startup_scan(&start.limits, start.limits_ns),
            start,
        }
    }

    /// When some memory cgroup last entered reclaim (CLOCK_BOOTTIME ns, 0
    /// before any): the daemon arms the opt-in charge counter from it.
    pub fn last_pressure_ns(&self) -> u64 {
        self.last_pressure_ns
    }

    /// The memory cgroups with a limit oomtrace models, for the `near_oom`
    /// sampler: containers (and below), pods, QoS levels, kubepods, and
    /// `system.slice` services. Empty when `near_oom` is off.
    pub fn near_oom_targets(&mut self) -> &[(u64, String)] {
        if !self.near.enabled() {
            return &[];
        }
        let tree = &self.tree;
        self.targets.get_or_insert_with(|| {
            tree.live()
                .filter(|(_, n)| is_near_oom_target(&n.path))
                .map(|(id, n)| (id.0, n.path.clone()))
                .collect()
        })
    }

    /// Whether victims wait for the kernel log: the caller then ticks faster.
    pub fn waiting(&self) -> bool {
        !self.waiting.is_empty()
            || self.pending_stops.values().any(|p| !p.outlived())
            || !self.pending_evictions.is_empty()
            || !self.pending_kills.is_empty()
    }

    pub fn handle(&mut self, input: Input, obs: &mut dyn Observe) -> Vec<Line> {
        let mut out = Vec::new();
        // Lines before this index are counted already.
        let mut counted = 0;
        match input {
            Input::Kernel(bytes) => match event::decode(&bytes) {
                Ok(ev) => {
                    self.counts.events += 1;
                    self.now = self.now.max(ev.header().boot_ns);
                    self.on_event(ev, obs, &mut out);
                }
                Err(e) => tracing::warn!("dropping a ring-buffer record: {e}"),
            },
            Input::Kmsg(s) => {
                if self.kmsg.len() > 4096 {
                    self.kmsg.clear();
                }
                self.unreported.remove(&s.pid);
                self.log_seen.push_back((self.now, s.pid));
                self.kmsg.insert(s.pid, s);
                self.flush_waiting(obs, &mut out);
            }
            Input::KmsgKill(pid) => self.on_kill_line(pid, obs, &mut out),
            Input::KmsgDrained(through_ns) => self.on_drained(through_ns, obs, &mut out),
            Input::KmsgKilled(kill) => {
                let pid = kill.pid;
                if self.kill_lines.len() > 4096 {
                    self.kill_lines.clear();
                }
                self.kill_lines.insert(pid, kill);
                self.on_kill_line(pid, obs, &mut out);
            }
            Input::Tick(now) => {
                self.now = self.now.max(now);
                let started = *self.started.get_or_insert(now);
                while let Some(&(at, pid)) = self.log_seen.front() {
                    if now.saturating_sub(at) < KMSG_KEEP_NS {
                        break;
                    }
                    self.log_seen.pop_front();
                    self.kmsg.remove(&pid);
                    self.unreported.remove(&pid);
                    self.kill_lines.remove(&pid);
                }
                self.check_leaks(obs, &mut out);
                self.watch_dying(obs, &mut out);
                // Victims due by now get their verdicts before the audit.
                self.flush_waiting(obs, &mut out);
                self.audit(now, obs, &mut out);
                let every = self.start.heartbeat_ns;
                if every > 0 && now.saturating_sub(self.last_heartbeat.max(started)) >= every {
                    self.count(&out);
                    counted = out.len();
                    // On the grid of `every` from the start: a tick a little
                    // late does not push every later beat back (at 1 s ticks
                    // that skipped every other beat).
                    self.last_heartbeat = now - now.saturating_sub(started) % every;
                    self.counts.uptime_s = now.saturating_sub(started) / 1_000_000_000;
                    self.counts.cgroups = self.tree.live().count() as u64;
                    if let Some(a) = &self.audit {
                        self.counts.kernel_oom_kills = Some(a.kernel_oom_kills());
                        self.counts.oom_group_kills = a.oom_group_kills();
                        self.counts.missed = a.missed();
                    }
                    self.counts.time = wall_time(now, self.start.boot_to_wall_ns);
                    out.push(Line::Heartbeat(self.counts.clone()));
                }
            }
            Input::PastKills(kills) => {
                for past in &kills {
                    self.backlog_through = self.backlog_through.max(Some(past.seq));
                    self.logged_kill(past, false, obs, &mut out);
                }
            }
            Input::LoggedKill { seq, ts_us, kill } => {
                self.unreported.remove(&kill.pid);
                let past = crate::logs::kmsg::PastKill {
                    seq,
                    ts_us,
                    summary: self.kmsg.remove(&kill.pid),
                    kill,
                };
                self.logged_kill(&past, true, obs, &mut out);
            }
            Input::Usage(batch) => {
                self.now = self.now.max(batch.boot_ns);
                self.near_oom(&batch, obs, &mut out);
            }
            Input::Missed(count) => {
                out.push(Line::Lost(Lost {
                    time: wall_time(self.now, self.start.boot_to_wall_ns),
                    hook: "kernel_log",
                    count,
                    total: count,
                }));
            }
            Input::Drops(totals) => {
                for hook in Hook::ALL {
                    let (total, seen) = (totals[hook as usize], &mut self.lost_seen[hook as usize]);
                    if total > *seen {
                        out.push(Line::Lost(Lost {
                            time: wall_time(self.now, self.start.boot_to_wall_ns),
                            hook: hook.name(),
                            count: total - *seen,
                            total,
                        }));
                        *seen = total;
                    }
                }
            }
        }
        self.flush_waiting(obs, &mut out);
        self.check_pending_stops(obs, &mut out);
        self.check_pending_evictions(obs, &mut out);
        self.check_pending_kills(obs, &mut out);
        for l in &out {
            if let Line::Verdict(v) = l {
                self.misreports.on_verdict(v);
            }
        }
        self.count(&out[counted..]);
        out
    }

    /// The heartbeat's counters, for lines about to be printed.
    fn count(&mut self, lines: &[Line]) {
        for r in lines {
            match r {
                Line::Verdict(_) => self.counts.verdicts += 1,
                Line::Finding(_) => self.counts.findings += 1,
                Line::Lost(l) => self.counts.lost += l.count,
                _ => {}
            }
        }
    }

    /// The kernel's OOM-kill count, read about once a second, against the
    /// verdicts: kills without one past the deadline are a `missed` line.
    fn audit(&mut self, now: u64, obs: &mut dyn Observe, out: &mut Vec<Line>) {
        let Some(audit) = self.audit.as_mut().filter(|a| a.due(now)) else {
            return;
        };
        let count = obs.vmstat_oom_kill();
        if let Some(m) = audit.read(now, count, self.start.boot_to_wall_ns) {
            out.push(Line::Missed(m));
        }
    }

    fn on_event(&mut self, ev: Event, obs: &mut dyn Observe, out: &mut Vec<Line>) {
        match ev {
            Event::Oom(o) => self.attributor.on_oom(&o),
            Event::Victim(v) => {
                let hint = if v.victim.memcg_depth() == 0 {
                    self.cgroup_of_live_pid(event::pid(&v.victim), obs)
                } else {
                    None
                };
                if !self.report_read(&v) {
                    self.waiting
                        .push_back((v.header.boot_ns + KMSG_WAIT_NS, v, hint));
                } else {
                    self.victim(&v, hint, obs, out);
                }
            }
            Event::Attach(a) => {
                if self.tree.path(CgroupId(a.dst_id)).is_none() {
                    self.targets = None;
                }
                self.tree.apply(&ev);
                if a.dst_root == self.start.layout.hierarchy_id {
                    self.on_attach(
                        a.pid,
                        &event::comm(&a.comm),
                        &event::path(&a.path, a.path_len),
                        a.header.boot_ns,
                        a.moved_task(),
                        obs,
                        out,
                    );
                }
            }
            Event::Signal(s) => self.on_signal(&s, obs, out),
            Event::Pressure(p) => self.on_pressure(&p),
            Event::LimitWrite(w) => self.on_limit_write(&w),
            Event::Mkdir(_) | Event::Rmdir(_) | Event::Release(_) => {
                self.targets = None;
                if let Event::Rmdir(c) = &ev {
                    self.empty_since.remove(&CgroupId(c.id));
                    self.leaks_reported.remove(&CgroupId(c.id));
                    if c.root == self.start.layout.hierarchy_id {
                        let path = event::path(&c.path, c.path_len);
                        if let Some(m) = self.misreports.on_removed(&path) {
                            self.misreport(m, c.header.boot_ns, obs, out);
                        }
                    }
                }
                self.tree.apply(&ev);
            }
        }
    }

    /// A `Killed process` line while a victim hook sees kills: the
    /// victim's report, if any, has been read.
    fn on_kill_line(&mut self, pid: u32, obs: &mut dyn Observe, out: &mut Vec<Line>) {
        if !self.kmsg.contains_key(&pid) {
            if self.unreported.len() > 4096 {
                self.unreported.clear();
            }
            self.unreported.insert(pid);
            self.log_seen.push_back((self.now, pid));
        }
        self.flush_waiting(obs, out);
    }

    /// The kernel log read through `through_ns`: waiting victims marked by
    /// then without a report have none to wait for.
    fn on_drained(&mut self, through_ns: u64, obs: &mut dyn Observe, out: &mut Vec<Line>) {
        let unreported: Vec<u32> = self
            .waiting
            .iter()
            .filter(|(_, v, _)| v.header.boot_ns <= through_ns)
            .map(|(_, v, _)| v.victim.tgid)
            .filter(|pid| !self.kmsg.contains_key(pid))
            .collect();
        for pid in unreported {
            if self.unreported.len() > 4096 {
                self.unreported.clear();
            }
            if self.unreported.insert(pid) {
                self.log_seen.push_back((self.now, pid));
            }
        }
        self.flush_waiting(obs, out);
    }

    fn flush_waiting(&mut self, obs: &mut dyn Observe, out: &mut Vec<Line>) {
        while let Some((deadline, v, _)) = self.waiting.front() {
            if !self.report_read(v) && self.now < *deadline {
                break;
            }
            let Some((_, v, hint)) = self.waiting.pop_front() else {
                break;
            };
            self.victim(&v, hint, obs, out);
        }
    }
}

/// The node's memory breakdown for a verdict's evidence, with its sentence.
fn worded_breakdown(obs: &mut dyn Observe) -> Option<Box<crate::node::node_memory::Breakdown>> {
    let mut b = obs.node_breakdown()?;
    b.summary = crate::output::wording::node_memory_summary(&b);
    Some(b)
}

fn leaf_path(tree: &CgroupTree, t: &oomtrace_common::TaskInfo) -> Option<String> {
    t.leaf_memcg_id()
        .filter(|&id| id != 0)
        .and_then(|id| tree.path(CgroupId(id)).map(str::to_owned))
}

/// The waits of `pending` (keyed by pid) due at `now`, taken out, lowest
/// pid first: a fixed order, since each is decided by a read of the node.
fn take_due<P>(pending: &mut HashMap<u32, P>, now: u64, check_ns: impl Fn(&P) -> u64) -> Vec<P> {
    let mut due: Vec<u32> = pending
        .iter()
        .filter(|(_, p)| check_ns(p) <= now)
        .map(|(&pid, _)| pid)
        .collect();
    due.sort_unstable();
    due.into_iter()
        .filter_map(|pid| pending.remove(&pid))
        .collect()
}
