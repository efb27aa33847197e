//! The engine: inputs (kernel records, kernel-log summaries, ticks, drop
//! counters) in, output records out. It owns the node model and calls
//! attribution; every read of the machine goes through [`Observe`], so the
//! live daemon and a replay of a recording run this same code.

pub mod recording;

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::Bytes;
use oomtrace_common::{Hook, HOOK_COUNT};
use serde::{Deserialize, Serialize};

use crate::{
    kernel::event::{self, Event},
    logs::oom_report::{MemcgReport, OomSummary},
    node::cgroup::{CgroupId, CgroupTree, Layout, Version},
    node::observe::Observe,
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
    rules::misreport::Misreports,
    rules::near_oom::{self, Detector},
    rules::stops::{self, PendingStop, SignalContext, SignalStep, SoftThreshold},
};

/// How long a victim waits for the kernel's OOM report (its summary line
/// names the cgroup at its limit where no per-OOM hook read it, and its
/// stats are the memory at the kill) before it is judged without it. The
/// report is printed before the victim is marked; a slow or loaded node
/// reads /dev/kmsg a few hundred ms late. The wait ends early at the kill's
/// own `Killed process` line (a rate-limited report: none will come); an
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
    /// any, has been read.
    KmsgKill(u32),
    /// Time passes (CLOCK_BOOTTIME ns).
    Tick(u64),
    /// Per-hook totals of ring-buffer reservation failures.
    Drops([u64; HOOK_COUNT as usize]),
    /// Kills found in the kernel log at start: they happened while oomtrace
    /// was not running.
    PastKills(Vec<crate::logs::kernel_log::PastKill>),
    /// Kills the kernel counted (/proc/vmstat oom_kill) while oomtrace was
    /// not running that its log no longer shows.
    Missed(u64),
    /// The memory of the limited cgroups near their limits (the daemon's
    /// sampler, for `near_oom`).
    Usage(near_oom::Samples),
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

/// The runtime's slack recordings made before it was a field were judged with.
fn old_runtime_slack_ns() -> u64 {
    1_000_000_000
}

/// Everything the engine starts from; a recording's header holds it.
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
    #[serde(default)]
    pub container_pids: Vec<(u32, String, u64)>,
    /// Whether hostPID pods' processes are followed by pid (recordings made
    /// before this was added hold no answers for it).
    #[serde(default)]
    pub host_pid_escapes: bool,
    pub leak_grace_ns: u64,
    /// 0: no heartbeat lines.
    #[serde(default)]
    pub heartbeat_ns: u64,
    /// /proc/vmstat `oom_kill` once the hooks were attached: the kernel's
    /// count the stream is audited against (`missed` lines). None: no
    /// audit (a kernel without the count, or a recording made before the
    /// audit existed, which holds no vmstat answers).
    #[serde(default)]
    pub kernel_oom_kills: Option<KernelCount>,
    /// Whether the kubelet's log is read (`--kubelet-log`): an eviction
    /// then waits a little for the eviction manager's own line.
    #[serde(default)]
    pub kubelet_log: bool,
    /// Whether a runtime's stop under pressure that outlives the
    /// eviction's grace period is followed to its end, for the kubelet's
    /// log to decide (recordings made before hold no answers for its polls).
    #[serde(default)]
    pub follow_long_stops: bool,
    /// How late the runtime's SIGKILL may come after the grace the kubelet
    /// asked for (`kubelet::RUNTIME_SLACK_NS`; recordings made before it
    /// were judged with 1 s).
    #[serde(default = "old_runtime_slack_ns")]
    pub runtime_slack_ns: u64,
    /// `--near-oom-horizon`, ns; 0 (and recordings from before it): no
    /// `near_oom` findings.
    #[serde(default)]
    pub near_oom_horizon_ns: u64,
    /// How often the dying cgroups are sampled (`--dying-sample-interval`).
    #[serde(default = "dying_sample_ns")]
    pub dying_sample_ns: u64,
    /// Whether /dev/kmsg is read (not in a non-privileged container): a
    /// victim waits for the kernel's report only then.
    #[serde(default = "reading")]
    pub kernel_log: bool,
}

fn reading() -> bool {
    true
}

fn dying_sample_ns() -> u64 {
    crate::node::node_memory::DYING_SAMPLE_NS
}

/// A cgroup's page counter at the first and the latest pressure record.
#[derive(Clone, Copy, Debug)]
struct Sample {
    first_ns: u64,
    first_pages: u64,
    last_ns: u64,
    last_pages: u64,
}

/// How long a pressure record at a cgroup's limit says it is reclaiming there.
const AT_LIMIT_NS: u64 = 2_000_000_000;
/// A page counter at or above this is no limit (`PAGE_COUNTER_MAX` and near).
const UNLIMITED_PAGES: u64 = 1 << 50;

/// Whether `near_oom` samples this cgroup: a level the kubelet limits, or a
/// host service (`/system.slice/NAME.service`).
pub fn is_near_oom_target(path: &str) -> bool {
    if pods::parse_cgroup_path(path).is_some() {
        return true;
    }
    path.strip_prefix("/system.slice/")
        .is_some_and(|s| s.ends_with(".service") && !s.contains('/'))
}

/// How far back pressure counts as "before the kill".
const GROWTH_WINDOW_NS: u64 = 30_000_000_000;

pub struct Engine {
    start: Start,
    tree: CgroupTree,
    attributor: Attributor,
    kmsg: HashMap<u32, OomSummary>,
    /// Pids whose `Killed process` line was read without a summary before it.
    unreported: HashSet<u32>,
    /// When each pid's kernel-log line came, oldest first: lines no victim
    /// took are dropped after [`KMSG_KEEP_NS`].
    log_seen: VecDeque<(u64, u32)>,
    /// The memcg part of the latest OOM reports, by incident.
    reports: VecDeque<(String, MemcgReport)>,
    waiting: VecDeque<(u64, oomtrace_common::VictimEvent, Option<String>)>,
    /// Pid namespace → the container cgroup its first process joined.
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
    lost_seen: [u64; HOOK_COUNT as usize],
    /// Pod cgroups seen empty, since when (boot ns).
    empty_since: HashMap<CgroupId, u64>,
    leaks_reported: HashSet<CgroupId>,
    last_leak_check: u64,
    now: u64,
    started: Option<u64>,
    /// Memory cgroups seen entering reclaim: usage at first and last sight.
    pressured: HashMap<u64, Sample>,
    last_heartbeat: u64,
    counts: Heartbeat,
    /// CLOCK_BOOTTIME ns of the latest reclaim-pressure record, 0 before any.
    last_pressure_ns: u64,
    /// The kernel's OOM-kill count against the verdicts (None: no audit).
    audit: Option<Audit>,
    /// The incident of the latest victim the audit counted.
    audited_incident: Option<String>,
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
            log_seen: VecDeque::new(),
            reports: VecDeque::new(),
            waiting: VecDeque::new(),
            owners,
            pod_of_pid,
            escaped_by_pid: HashMap::new(),
            signalled: HashMap::new(),
            pending_stops: HashMap::new(),
            pending_evictions: Vec::new(),
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
            misreports: Misreports::default(),
            dying: crate::node::node_memory::DyingWatch::default(),
            near: Detector::new(start.near_oom_horizon_ns),
            at_limit: HashMap::new(),
            targets: None,
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
            Input::KmsgKill(pid) => {
                if !self.kmsg.contains_key(&pid) {
                    if self.unreported.len() > 4096 {
                        self.unreported.clear();
                    }
                    self.unreported.insert(pid);
                    self.log_seen.push_back((self.now, pid));
                }
                self.flush_waiting(obs, &mut out);
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
                    out.push(Line::Heartbeat(self.counts.clone()));
                }
            }
            Input::PastKills(kills) => {
                for past in &kills {
                    let a = from_log::from_kernel_log(past, self.start.boot_to_wall_ns);
                    let seen = Observed {
                        memory: past
                            .summary
                            .as_ref()
                            .and_then(|s| s.report.as_ref())
                            .map(Memory::from_report),
                        names: self.names(&a.identity, obs),
                        ..Observed::default()
                    };
                    out.push(Line::Verdict(Box::new(attribution::verdict(a, seen))));
                }
            }
            Input::Usage(batch) => {
                self.now = self.now.max(batch.boot_ns);
                self.near_oom(&batch, obs, &mut out);
            }
            Input::Missed(count) => {
                out.push(Line::Lost(Lost {
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

    /// Whether the kernel counted this victim's incident as an oom.group
    /// kill (cgroup v2), which counts its chosen victim twice. Only the
    /// first victim of each incident counts; `group` is the kill's, read
    /// for the verdict.
    fn group_kill(&mut self, a: &Assessment, group: Option<bool>) -> bool {
        if self.audit.is_none()
            || self.start.layout.version != Version::V2
            || self.audited_incident.as_deref() == Some(a.incident.as_str())
        {
            return false;
        }
        self.audited_incident = Some(a.incident.clone());
        group == Some(true)
    }

    fn on_event(&mut self, ev: Event, obs: &mut dyn Observe, out: &mut Vec<Line>) {
        match ev {
            Event::Oom(o) => self.attributor.on_oom(&o),
            Event::Victim(v) => {
                let hint = if v.victim.memcg_depth() == 0 {
                    self.cgroup_of_live_pid(v.victim.tgid, obs)
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
                        obs,
                        out,
                    );
                }
            }
            Event::Signal(s) => self.on_signal(&s, obs, out),
            Event::Pressure(p) => self.on_pressure(&p),
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

    /// A process's memory cgroup when the hook could not read it: the last
    /// attach the tree saw first (it outlives the process), then /proc —
    /// where a process that has already exited shows `/`, which then says
    /// nothing.
    fn cgroup_of_live_pid(&self, pid: u32, obs: &mut dyn Observe) -> Option<String> {
        if let Some(path) = self
            .tree
            .cgroup_of_pid(pid)
            .and_then(|id| self.tree.path(id))
        {
            return Some(path.to_owned());
        }
        obs.proc_cgroup(pid).filter(|p| p != "/")
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

    /// Whether the kernel's report for this victim has been read, or none
    /// will come: an oom.group member gets none of its own (its
    /// invocation's first victim, judged, had it).
    fn report_read(&self, v: &oomtrace_common::VictimEvent) -> bool {
        let pid = v.victim.tgid;
        !self.start.kernel_log
            || self.kmsg.contains_key(&pid)
            || self.unreported.contains(&pid)
            || self.attributor.follows_a_judged_victim(v)
    }

    fn owner_of(&self, pid_ns: Option<u32>) -> Option<&str> {
        let pid_ns = pid_ns.unwrap_or(0);
        (pid_ns != 0 && pid_ns != self.start.host_pid_ns)
            .then(|| self.live_owner(pid_ns))
            .flatten()
    }

    /// The container a pid namespace was seen in, while its cgroup lives.
    /// A namespace outlives its container's cgroup only while a process
    /// in it does, and the runtime keeps a container whose init lives;
    /// once the namespace is freed the kernel reuses its inode number, so
    /// an entry whose cgroup is gone is a dead container's.
    fn live_owner(&self, pid_ns: u32) -> Option<&str> {
        let owner = self.owners.get(&pid_ns)?;
        self.tree
            .live()
            .any(|(_, n)| n.path == *owner)
            .then_some(owner.as_str())
    }

    fn victim(
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
        let victim_owner = self
            .owner_of(v.victim.pid_ns())
            .or_else(|| self.escaped_by_pid.get(&v.victim.tgid).map(String::as_str))
            .map(str::to_owned);
        let trigger_owner = self.owner_of(v.trigger.pid_ns()).map(str::to_owned);
        let hints = Hints {
            victim_cgroup: hint.as_deref(),
            victim_owner: victim_owner.as_deref(),
            trigger_owner: trigger_owner.as_deref(),
        };
        let a = self.attributor.assess(v, &snap, &hints);
        if let Some(r) = self.kmsg.get(&v.victim.tgid).and_then(|s| s.report.clone()) {
            if self.reports.len() >= REPORTS_KEPT {
                self.reports.pop_front();
            }
            self.reports.push_back((a.incident.clone(), r));
        }
        let seen = self.observe_kill(&a, v, obs);
        // Its lines are spent: a later process with the same pid has its own.
        self.kmsg.remove(&v.victim.tgid);
        self.unreported.remove(&v.victim.tgid);
        let group_kill = self.group_kill(&a, seen.oom_group);
        if let Some(audit) = self.audit.as_mut() {
            audit.verdict(group_kill);
        }
        self.counts.oom_verdicts += 1;
        let warned = self.warned_s_before(&a);
        let mut verdict = attribution::verdict(a, seen);
        verdict.warned_s_before = warned;
        out.push(Line::Verdict(Box::new(verdict)));
    }

    /// Everything a victim's verdict reads from the node, in one order (a
    /// recording replays these answers in the order they were asked).
    fn observe_kill(
        &self,
        a: &Assessment,
        v: &oomtrace_common::VictimEvent,
        obs: &mut dyn Observe,
    ) -> Observed {
        let oom_group = a
            .limit
            .as_ref()
            .and_then(|l| l.cgroup.as_deref())
            .and_then(|limit| obs.oom_group(a.victim.cgroup.as_deref().unwrap_or(limit), limit));
        let judged_at = obs.now_boot_ns();
        let memory = self.kill_memory(a, v);
        let node_memory = obs.node_memory().map(|n| NodeMemory::of(&n, None));
        let growth = self.growth(v, obs);
        let top_consumers =
            (a.kind == Some(PressureKind::SystemOom)).then(|| self.top_consumers(obs));
        let names = self.names(&a.identity, obs);
        // Last, so that recordings made before it replay: where the node's
        // memory went, for every node-pressure kill.
        let node_memory = match (node_memory, a.kind.is_some()) {
            (Some(mut n), true) => {
                n.breakdown = worded_breakdown(obs);
                Some(n)
            }
            (n, _) => n,
        };
        Observed {
            oom_group,
            memory,
            node_memory,
            growth,
            top_consumers,
            names,
            judged_after_ns: Some(judged_at.saturating_sub(a.boot_ns)),
        }
    }

    /// The memory at the kill: the kernel's report for this kill's OOM
    /// invocation, else the victim cgroup's page counter as the victim hook
    /// read it. Never cgroupfs after the kill: the victim's pages are being
    /// freed by then.
    fn kill_memory(&self, a: &Assessment, v: &oomtrace_common::VictimEvent) -> Option<Memory> {
        let report = self
            .kmsg
            .get(&v.victim.tgid)
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

    fn on_pressure(&mut self, p: &oomtrace_common::PressureEvent) {
        let now = p.header.boot_ns;
        self.last_pressure_ns = self.last_pressure_ns.max(now);
        self.pressured
            .retain(|_, s| now.saturating_sub(s.last_ns) < GROWTH_WINDOW_NS);
        self.at_limit
            .retain(|_, t| now.saturating_sub(*t) < AT_LIMIT_NS);
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
            let s = self.pressured.entry(id).or_insert(Sample {
                first_ns: now,
                first_pages: usage,
                last_ns: now,
                last_pages: usage,
            });
            s.last_ns = now;
            s.last_pages = usage;
        }
    }

    /// A batch of usage samples through the `near_oom` rule: one finding
    /// per episode.
    fn near_oom(&mut self, batch: &near_oom::Samples, obs: &mut dyn Observe, out: &mut Vec<Line>) {
        let now = batch.boot_ns;
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
    fn warned_s_before(&self, a: &Assessment) -> Option<f64> {
        let limit = a.limit.as_ref().and_then(|l| l.cgroup.clone());
        let candidates: Vec<String> = match (limit, a.victim.cgroup.as_deref()) {
            (Some(l), _) => vec![l],
            (None, Some(v)) => {
                let mut c = vec![v.to_string()];
                let mut p = v;
                while let Some((up, _)) = p.rsplit_once('/') {
                    if up.is_empty() {
                        break;
                    }
                    c.push(up.to_string());
                    p = up;
                }
                c
            }
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
    fn growth(
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

    /// The kubelet's names for an identity: the pod's, then the container's.
    fn names(&self, id: &Identity, obs: &mut dyn Observe) -> Names {
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
    fn top_consumers(&self, obs: &mut dyn Observe) -> Vec<Consumer> {
        let candidates: Vec<String> = self
            .tree
            .live()
            .filter(|(_, n)| match pods::parse_cgroup_path(&n.path) {
                Some(k) => k.level == Level::Pod,
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

    fn on_attach(
        &mut self,
        pid: u32,
        comm: &str,
        path: &str,
        boot_ns: u64,
        obs: &mut dyn Observe,
        out: &mut Vec<Line>,
    ) {
        let kube = pods::parse_cgroup_path(path);
        let in_container = kube.as_ref().is_some_and(|k| k.level == Level::Container);
        let in_pod = kube.as_ref().is_some_and(|k| k.pod.is_some());
        // Only two cases need the namespaces: a process joining a container
        // (learn its pid namespace) and one leaving every pod (an escape?).
        if in_container {
            self.remember_container_pid(pid, path, boot_ns);
        }
        if in_pod && !in_container {
            return;
        }
        let Some(ns) = obs.namespaces(pid) else {
            return;
        };
        if ns.pid_ns == self.start.host_pid_ns {
            if !in_container && self.start.host_pid_escapes {
                if let Some(owner) = self.host_pid_owner(pid, obs) {
                    self.pod_of_pid.remove(&pid);
                    self.escaped_by_pid.insert(pid, owner.clone());
                    self.escape_detected(pid, comm, path, boot_ns, owner, obs, out);
                }
            }
            return;
        }
        if in_container {
            // The latest container wins: the kernel reuses a namespace's
            // inode number once the namespace is gone, so an older entry
            // may name a dead container. (Containers sharing a pod's pid
            // namespace are in one pod either way.)
            self.owners.insert(ns.pid_ns, path.to_string());
            return;
        }
        let Some(owner) = self.live_owner(ns.pid_ns).map(str::to_owned) else {
            return;
        };
        self.escape_detected(pid, comm, path, boot_ns, owner, obs, out);
    }

    /// A process of a hostPID pod leaving every pod: the container it was
    /// seen joining (or, for one forked there since, its parent's), when
    /// the process at that pid is still the one seen: a pid the kernel
    /// reused for a later process is no escape.
    fn host_pid_owner(&self, pid: u32, obs: &mut dyn Observe) -> Option<String> {
        // /proc's start time is in clock ticks (10 ms at most).
        const TICK_NS: u64 = 10_000_000;
        let me = obs.proc_start(pid)?;
        if let Some((cgroup, at)) = self.pod_of_pid.get(&pid) {
            return (me.start_ns <= at.saturating_add(TICK_NS)).then(|| cgroup.clone());
        }
        let (cgroup, at) = self.pod_of_pid.get(&me.ppid)?.clone();
        let parent = obs.proc_start(me.ppid)?;
        (parent.start_ns <= at.saturating_add(TICK_NS) && me.start_ns.saturating_add(TICK_NS) >= at)
            .then_some(cgroup)
    }

    fn remember_container_pid(&mut self, pid: u32, path: &str, boot_ns: u64) {
        // Bounded: pids of containers that are gone go first.
        if self.pod_of_pid.len() >= 1 << 18 {
            let tree = &self.tree;
            self.pod_of_pid
                .retain(|_, (cgroup, _)| tree.live().any(|(_, n)| n.path == *cgroup));
            if self.pod_of_pid.len() >= 1 << 18 {
                self.pod_of_pid.clear();
            }
        }
        self.pod_of_pid.insert(pid, (path.to_string(), boot_ns));
    }

    /// The `escape_detected` finding: `pid` left its pod (`owner`, the
    /// container cgroup it belongs to) for `path`.
    #[expect(clippy::too_many_arguments, reason = "one finding's facts, named")]
    fn escape_detected(
        &mut self,
        pid: u32,
        comm: &str,
        path: &str,
        boot_ns: u64,
        owner: String,
        obs: &mut dyn Observe,
        out: &mut Vec<Line>,
    ) {
        let identity = Identity::of_path(&owner);
        let identity = identity.clone().named(&self.names(&identity, obs));
        let f = Finding {
            summary: wording::escape_detected(
                comm,
                pid,
                identity.pod.as_ref(),
                identity.container.as_ref(),
                path,
            ),
            pod: identity.pod,
            container: identity.container,
            process: Some(Process {
                pid,
                comm: comm.to_string(),
            }),
            pod_cgroup: Some(owner),
            ..Finding::new(
                FindingKind::EscapeDetected,
                wall_time(boot_ns, self.start.boot_to_wall_ns),
                path.to_string(),
            )
        };
        out.push(Line::Finding(f));
    }

    fn on_signal(
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
            .get(&s.target.tgid)
            .is_some_and(|&t| s.header.boot_ns.saturating_sub(t) < SIGNAL_DEDUP_NS)
        {
            return;
        }
        // Read in the kernel at the signal (tp_btf) when it could be; the
        // process may already be gone when this runs.
        let target_cgroup = leaf_path(&self.tree, &s.target)
            .or_else(|| self.cgroup_of_live_pid(s.target.tgid, obs));
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
        // eviction: where the node's memory was, read at the signal (after
        // the reads recordings made before it hold).
        let mut node = node;
        if let Some(n) = node.as_mut() {
            let under = n
                .eviction_threshold_bytes
                .is_some_and(|t| n.memory_available_bytes < t)
                || soft
                    .as_ref()
                    .is_some_and(|t| n.memory_available_bytes < t.bytes);
            if under && crate::node::pods::is_runtime(&event::comm(&s.sender_comm)) {
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
        let earlier = self.pending_stops.remove(&s.target.tgid);
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
    fn init_signal(
        &mut self,
        s: &oomtrace_common::SignalEvent,
        obs: &mut dyn Observe,
        out: &mut Vec<Line>,
    ) {
        let name = match s.sig {
            9 => "SIGKILL",
            15 => "SIGTERM",
            _ => return,
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
            pid: s.target.tgid,
            comm: event::comm(&s.target.comm),
        };
        let signal = Signal {
            name,
            number: s.sig,
            sender: Process {
                pid: s.sender_tgid,
                comm: event::comm(&s.sender_comm),
            },
        };
        if let Some(m) = self.misreports.on_init_signal(&cgroup, process, signal) {
            self.misreport(m, s.header.boot_ns, obs, out);
        }
    }

    /// The `oomkilled_misreport` finding, named and worded.
    fn misreport(
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
    fn signal_step(
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
    fn check_pending_stops(&mut self, obs: &mut dyn Observe, out: &mut Vec<Line>) {
        let now = self.now;
        let mut due: Vec<u32> = self
            .pending_stops
            .values()
            .filter(|p| p.check_ns <= now)
            .map(|p| p.pid)
            .collect();
        due.sort_unstable();
        for pid in due {
            let Some(p) = self.pending_stops.remove(&pid) else {
                continue;
            };
            let alive = obs.namespaces(pid).is_some();
            self.signal_step(stops::after_grace(p, alive, now), now, obs, out);
        }
    }

    /// Evictions whose pod is now empty (the verdict), or still running
    /// past the wait (a stop of one container, not an eviction).
    fn check_pending_evictions(&mut self, obs: &mut dyn Observe, out: &mut Vec<Line>) {
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

    /// Removed cgroups piling up (their page cache keeps them): the node
    /// memory breakdown sampled once a minute; a `dying_cgroups` finding
    /// when it grew through a whole window, at most once an hour.
    fn watch_dying(&mut self, obs: &mut dyn Observe, out: &mut Vec<Line>) {
        if !self.dying.due(self.now, self.start.dying_sample_ns) {
            return;
        }
        let Some(b) = obs.node_breakdown() else {
            // Unread (or a recording made before this read): try again
            // at the next sample.
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
    fn check_leaks(&mut self, obs: &mut dyn Observe, out: &mut Vec<Line>) {
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

/// An eviction verdict waiting for the rest of its pod to stop.
struct PendingEviction {
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

/// The node's memory breakdown for a verdict's evidence, with its sentence.
fn worded_breakdown(obs: &mut dyn Observe) -> Option<Box<crate::node::node_memory::Breakdown>> {
    let mut b = obs.node_breakdown()?;
    b.summary = crate::output::wording::node_memory_summary(&b);
    Some(b)
}

/// The pod cgroup a container (or pod-level) cgroup path belongs to.
fn pod_cgroup_of(path: &str) -> Option<String> {
    let k = pods::parse_cgroup_path(path)?;
    match k.level {
        Level::Pod => Some(path.to_string()),
        Level::Container => path.rsplit_once('/').map(|(pod, _)| pod.to_string()),
        _ => None,
    }
}

fn leaf_path(tree: &CgroupTree, t: &oomtrace_common::TaskInfo) -> Option<String> {
    t.leaf_memcg_id()
        .filter(|&id| id != 0)
        .and_then(|id| tree.path(CgroupId(id)).map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use std::{
        collections::{HashMap, HashSet},
        path::PathBuf,
    };

    use crate::node::observe::ProcStart;

    use oomtrace_common::{AttachEvent, Kind, COMM_LEN, PATH_LEN, WIRE_VERSION};

    use super::*;
    use crate::{
        kernel::event::bytes_of,
        node::cgroup::Version,
        node::kubelet::Threshold,
        node::observe::{Charges, MemoryStat, Namespaces, NodeMemory},
        node::pods::{ContainerId, PodUid},
        output::verdict::{MemorySource, StopReason, Stopped, Verdict, VerdictKind},
    };

    const HOST_NS: u32 = 1;
    const POD_A: &str = "/kubepods/burstable/pod6f1c2a9e-3b7d-4c11-9e0a-2b8f5d4c7a10";
    const POD_B: &str = "/kubepods/burstable/pod7a2d3b0f-4c8e-4d22-8f1b-3c9a6e5d8b21";
    const CID_A: &str = "3f9a1c0b7e2d4f6a8b1c3d5e7f9a0b2c4d6e8f0a1b3c5d7e9f1a2b3c4d5e6f70";
    const CID_B: &str = "4e0b2d1c8f3e5a7b9c2d4e6f8a0b1c3d5e7f9a1b2c4d6e8f0a2b3c4d5e6f7a81";

    /// A fake node that knows only these pids' namespaces and starts.
    fn namespaced(ns: HashMap<u32, u32>, starts: HashMap<u32, ProcStart>) -> Fake {
        Fake {
            ns,
            starts,
            ..Fake::default()
        }
    }

    fn attach(pid: u32, path: &str, boot_ns: u64) -> Input {
        attach_to(pid, path, 0, boot_ns)
    }

    fn attach_to(pid: u32, path: &str, dst_id: u64, boot_ns: u64) -> Input {
        let mut ev = AttachEvent {
            header: oomtrace_common::Header {
                version: WIRE_VERSION,
                kind: Kind::CgroupAttach as u16,
                cpu: 0,
                boot_ns,
            },
            dst_root: 4,
            dst_level: 0,
            dst_id,
            pid,
            path_len: path.len() as u32,
            comm: [0; COMM_LEN],
            path: [0; PATH_LEN],
        };
        ev.comm[..4].copy_from_slice(b"sh\0\0");
        ev.path[..path.len()].copy_from_slice(path.as_bytes());
        Input::Kernel(Bytes::from(bytes_of(&ev)))
    }

    fn start_in_host_ns() -> Start {
        Start {
            node: "n".into(),
            kernel: "k".into(),
            layout: Layout {
                version: Version::V1,
                memory_root: PathBuf::from("/sys/fs/cgroup/memory"),
                hierarchy_id: 4,
            },
            cgroups: Vec::new(),
            page_size: 4096,
            boot_to_wall_ns: 0,
            host_pid_ns: HOST_NS,
            containers: Vec::new(),
            leak_grace_ns: u64::MAX,
            heartbeat_ns: 0,
            kernel_oom_kills: None,
            container_pids: Vec::new(),
            host_pid_escapes: true,
            kubelet_log: false,
            follow_long_stops: true,
            runtime_slack_ns: crate::node::kubelet::RUNTIME_SLACK_NS,
            kernel_log: true,
            near_oom_horizon_ns: 0,
            dying_sample_ns: crate::node::node_memory::DYING_SAMPLE_NS,
        }
    }

    fn escapes(out: &[Line]) -> Vec<&Finding> {
        out.iter()
            .filter_map(|r| match r {
                Line::Finding(f) if f.finding == FindingKind::EscapeDetected => Some(f),
                _ => None,
            })
            .collect()
    }

    fn started(start_ns: u64, ppid: u32) -> ProcStart {
        ProcStart { start_ns, ppid }
    }

    #[test]
    fn a_host_pid_pods_process_leaving_its_pod_is_found_by_its_pid() {
        let container = format!("{POD_A}/{CID_A}");
        let ms = 1_000_000;
        // Every process here shares the host's pid namespace (hostPID).
        let ns = HashMap::from([(10, HOST_NS), (11, HOST_NS), (12, HOST_NS), (13, HOST_NS)]);
        let mut obs = namespaced(
            ns,
            HashMap::from([
                // Seen joining the container at 100 ms, started before.
                (10, started(50 * ms, 1)),
                // Forked by 10 inside the pod, after 10 joined it.
                (11, started(300 * ms, 10)),
                // Forked by 10 before 10 joined the pod: never in it.
                (12, started(60 * ms, 10)),
            ]),
        );
        let mut engine = Engine::new(start_in_host_ns());
        engine.handle(attach(10, &container, 100 * ms), &mut obs);
        let out = engine.handle(
            attach(11, "/system.slice/agent.service", 400 * ms),
            &mut obs,
        );
        let found = escapes(&out);
        assert_eq!(found.len(), 1, "the child forked in the pod");
        assert_eq!(found[0].pod_cgroup.as_deref(), Some(container.as_str()));
        assert_eq!(
            found[0].container.as_ref().map(|c| c.id.as_str()),
            Some(CID_A)
        );
        let out = engine.handle(
            attach(12, "/system.slice/agent.service", 500 * ms),
            &mut obs,
        );
        assert!(escapes(&out).is_empty(), "forked before its parent joined");
        let out = engine.handle(
            attach(10, "/system.slice/agent.service", 600 * ms),
            &mut obs,
        );
        assert_eq!(escapes(&out).len(), 1, "the process seen joining the pod");
    }

    #[test]
    fn a_reused_pid_is_no_escape() {
        let ms = 1_000_000;
        let mut obs = namespaced(
            HashMap::from([(10, HOST_NS)]),
            // The process now at pid 10 started after the one seen in the
            // pod: the kernel reused the pid.
            HashMap::from([(10, started(900 * ms, 1))]),
        );
        let mut engine = Engine::new(start_in_host_ns());
        engine.handle(attach(10, &format!("{POD_A}/{CID_A}"), 100 * ms), &mut obs);
        let out = engine.handle(
            attach(10, "/system.slice/cron.service", 1000 * ms),
            &mut obs,
        );
        assert!(escapes(&out).is_empty());
        // A host process never seen in a pod is none either.
        let out = engine.handle(
            attach(99, "/system.slice/cron.service", 1100 * ms),
            &mut obs,
        );
        assert!(escapes(&out).is_empty());
    }

    #[test]
    fn a_reused_pid_namespace_inode_names_the_newer_container() {
        let mut engine = Engine::new(Start {
            cgroups: vec![(30, format!("{POD_B}/{CID_B}"))],
            ..start_in_host_ns()
        });
        // Container A's init, then (A gone) container B's init: the kernel
        // gave B's new pid namespace A's old inode number, 77.
        let mut obs = namespaced(
            HashMap::from([(10, 77), (20, 77), (21, 77)]),
            HashMap::new(),
        );
        engine.handle(attach(10, &format!("{POD_A}/{CID_A}"), 1), &mut obs);
        engine.handle(attach(20, &format!("{POD_B}/{CID_B}"), 2), &mut obs);
        let out = engine.handle(attach(21, "/system.slice/demo.service", 3), &mut obs);
        let found: Vec<&Finding> = out
            .iter()
            .filter_map(|r| match r {
                Line::Finding(f) => Some(f),
                _ => None,
            })
            .collect();
        assert_eq!(found.len(), 1, "one escape_detected");
        assert_eq!(
            found[0].pod_cgroup.as_deref(),
            Some(format!("{POD_B}/{CID_B}").as_str())
        );
        assert_eq!(
            found[0].container.as_ref().map(|c| c.id.as_str()),
            Some(CID_B)
        );
    }

    /// Recorded in CI: a container's pid namespace got a dead container's
    /// inode number and its init was never seen joining in it; the dead
    /// container's cgroup is gone, so its entry names no one.
    #[test]
    fn a_pid_namespace_whose_container_cgroup_is_gone_makes_no_escape() {
        let mut engine = Engine::new(start_in_host_ns());
        let mut obs = namespaced(HashMap::from([(10, 77), (21, 77)]), HashMap::new());
        let dead = format!("{POD_A}/{CID_A}");
        engine.handle(attach_to(10, &dead, 101, 1), &mut obs);
        let mut rmdir = oomtrace_common::CgroupEvent {
            header: oomtrace_common::Header {
                version: WIRE_VERSION,
                kind: Kind::CgroupRmdir as u16,
                cpu: 0,
                boot_ns: 2,
            },
            root: 4,
            level: 5,
            id: 101,
            path_len: dead.len() as u32,
            _pad: 0,
            path: [0; PATH_LEN],
        };
        rmdir.path[..dead.len()].copy_from_slice(dead.as_bytes());
        engine.handle(Input::Kernel(Bytes::from(bytes_of(&rmdir))), &mut obs);
        let out = engine.handle(
            attach_to(21, "/system.slice/demo.service", 102, 3),
            &mut obs,
        );
        assert!(
            !out.iter().any(|r| matches!(r, Line::Finding(_))),
            "no escape from a container that is gone"
        );
    }

    /// The one fake node of these tests: the namespaces and starts of the
    /// pids it was given, the kernel's OOM-kill count (its vmstat reads
    /// counted) and the cgroups with memory.oom.group set; nothing else.
    #[derive(Default)]
    struct Fake {
        ns: HashMap<u32, u32>,
        starts: HashMap<u32, ProcStart>,
        oom_kill: u64,
        groups: HashSet<String>,
        reads: usize,
        /// Dying cgroups at each breakdown read (none: unread).
        dying: VecDeque<u64>,
        /// The node's memory (none: unread).
        node: Option<NodeMemory>,
        /// Every pod cgroup's `populated` (none: unread).
        populated: Option<bool>,
        /// Every pod's namespace/name.
        pod: Option<(String, String)>,
        /// The kubelet's log: whether it names the eviction (none: unread).
        evicted: Option<bool>,
        /// How often the kubelet's log was asked.
        log_reads: usize,
        /// How often a process's namespaces were read.
        ns_reads: usize,
    }

    impl Observe for Fake {
        fn proc_cgroup(&mut self, _: u32) -> Option<String> {
            None
        }
        fn namespaces(&mut self, pid: u32) -> Option<Namespaces> {
            self.ns_reads += 1;
            self.ns
                .get(&pid)
                .map(|&pid_ns| Namespaces { pid_ns, mnt_ns: 0 })
        }
        fn memory_stat(&mut self, _: &str) -> Option<MemoryStat> {
            None
        }
        fn node_memory(&mut self) -> Option<NodeMemory> {
            self.node.clone()
        }
        fn node_breakdown(&mut self) -> Option<Box<crate::node::node_memory::Breakdown>> {
            let n = self.dying.pop_front()?;
            let mut b =
                crate::node::node_memory::breakdown(&crate::node::node_memory::Input::default());
            b.dying_cgroups.count = Some(n);
            b.dying_cgroups.bytes = (n * 2) << 20;
            Some(Box::new(b))
        }
        fn eviction_threshold(&mut self) -> Threshold {
            Threshold::default()
        }
        fn pod_name(&mut self, _: &PodUid) -> Option<(String, String)> {
            self.pod.clone()
        }
        fn container_name(&mut self, _: &ContainerId) -> Option<String> {
            None
        }
        fn populated(&mut self, _: &str) -> Option<bool> {
            self.populated
        }
        fn oom_group(&mut self, victim: &str, limit: &str) -> Option<bool> {
            Some(
                crate::node::observe::up_to(victim, limit)
                    .iter()
                    .any(|c| self.groups.contains(*c)),
            )
        }
        fn now_boot_ns(&mut self) -> u64 {
            0
        }
        fn charges(&mut self) -> Option<Charges> {
            None
        }
        fn kubelet_evicted(&mut self, _: &str, _: &str, _: i64) -> Option<bool> {
            self.log_reads += 1;
            self.evicted
        }
        fn proc_start(&mut self, pid: u32) -> Option<ProcStart> {
            self.starts.get(&pid).copied()
        }
        fn vmstat_oom_kill(&mut self) -> Option<u64> {
            self.reads += 1;
            Some(self.oom_kill)
        }
    }

    const S: u64 = 1_000_000_000;
    const BASE: u64 = 500;

    /// A v2 node with one pod container (cgroup id 5); audited from 1 s
    /// (`audit`), a heartbeat every second.
    fn audited(audit: bool) -> Engine {
        Engine::new(Start {
            node: "n".into(),
            kernel: "k".into(),
            layout: Layout {
                version: Version::V2,
                memory_root: PathBuf::from("/sys/fs/cgroup"),
                hierarchy_id: 0,
            },
            cgroups: vec![
                (1, "/".into()),
                (2, "/kubepods".into()),
                (3, "/kubepods/burstable".into()),
                (4, POD_A.into()),
                (5, format!("{POD_A}/{CID_A}")),
            ],
            page_size: 4096,
            boot_to_wall_ns: 0,
            host_pid_ns: HOST_NS,
            containers: Vec::new(),
            leak_grace_ns: u64::MAX,
            container_pids: Vec::new(),
            host_pid_escapes: true,
            heartbeat_ns: S,
            kernel_oom_kills: audit.then_some(KernelCount {
                boot_ns: S,
                oom_kill: BASE,
            }),
            kubelet_log: false,
            follow_long_stops: true,
            runtime_slack_ns: crate::node::kubelet::RUNTIME_SLACK_NS,
            kernel_log: true,
            near_oom_horizon_ns: 0,
            dying_sample_ns: crate::node::node_memory::DYING_SAMPLE_NS,
        })
    }

    /// A process of the container (cgroup 5, at its limit), killed at
    /// `boot_ns` by an allocation of `trigger`.
    fn killed(pid: u32, trigger: u32, boot_ns: u64) -> Input {
        use oomtrace_common::{
            valid, MemcgLevel, TaskInfo, VictimEvent, VictimSource, MEMCG_DEPTH,
        };
        let task = |pid: u32| {
            let mut memcg = [MemcgLevel::default(); MEMCG_DEPTH];
            for (i, (id, max)) in [
                (5, 4096),
                (4, 1 << 51),
                (3, 1 << 51),
                (2, 1 << 51),
                (1, 1 << 51),
            ]
            .into_iter()
            .enumerate()
            {
                memcg[i] = MemcgLevel {
                    id,
                    usage_pages: 4096,
                    max_pages: max,
                };
            }
            TaskInfo {
                tgid: pid,
                tid: pid,
                comm: *b"worker\0\0\0\0\0\0\0\0\0\0",
                memcg_depth: 5,
                ns_pid: 7,
                pid_ns: 99,
                mnt_ns: 98,
                valid: valid::TASK_ALL,
                memcg_valid: valid::memcg_all(5),
                memcg,
            }
        };
        let ev = VictimEvent {
            header: oomtrace_common::Header {
                version: WIRE_VERSION,
                kind: Kind::Victim as u16,
                cpu: 0,
                boot_ns,
            },
            victim: task(pid),
            trigger: task(trigger),
            total_vm_pages: 100,
            anon_rss_pages: 90,
            file_rss_pages: 5,
            shmem_rss_pages: 0,
            oom_score_adj: 0,
            _pad: [0; 2],
            source: VictimSource::TpBtf as u32,
            valid: valid::VICTIM_ALL,
            _pad2: 0,
        };
        Input::Kernel(Bytes::from(bytes_of(&ev)))
    }

    #[test]
    fn dying_cgroups_growing_every_minute_are_a_finding_once() {
        let mut e = Engine::new(start_in_host_ns());
        let mut k = Fake {
            dying: (0..30).map(|i| 100 + 60 * i).collect(),
            ..Fake::default()
        };
        // Ticks every second for 30 minutes: one read a minute.
        let out: Vec<Line> = (0..=30 * 60)
            .flat_map(|t| e.handle(Input::Tick(t * S), &mut k))
            .collect();
        assert!(
            k.dying.len() <= 1,
            "read once a minute: {} left",
            k.dying.len()
        );
        let found: Vec<&Finding> = out
            .iter()
            .filter_map(|l| match l {
                Line::Finding(f) if f.finding == FindingKind::DyingCgroups => Some(f),
                _ => None,
            })
            .collect();
        assert_eq!(found.len(), 1, "at most one an hour");
        let g = found[0].dying_cgroups.as_ref().expect("numbers");
        assert_eq!((g.count_before, g.count), (Some(100), Some(100 + 60 * 9)));
        assert!(
            found[0].summary.contains("keep growing"),
            "{}",
            found[0].summary
        );
    }

    /// Every line of ticks at `from..=to` s (every 50 ms too, as while
    /// victims wait: vmstat is still read about once a second).
    fn ticks(e: &mut Engine, k: &mut Fake, from: u64, to: u64) -> Vec<Line> {
        (from * 20..=to * 20)
            .flat_map(|t| e.handle(Input::Tick(t * S / 20), k))
            .collect()
    }

    fn missed(lines: &[Line]) -> Vec<&crate::output::sink::Missed> {
        lines
            .iter()
            .filter_map(|l| match l {
                Line::Missed(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    fn last_beat(lines: &[Line]) -> Heartbeat {
        lines
            .iter()
            .rev()
            .find_map(|l| match l {
                Line::Heartbeat(h) => Some(h.clone()),
                _ => None,
            })
            .expect("a heartbeat")
    }

    fn verdicts(lines: &[Line]) -> usize {
        lines
            .iter()
            .filter(|l| matches!(l, Line::Verdict(_)))
            .count()
    }

    fn only_verdict(lines: &[Line]) -> &Verdict {
        let v: Vec<&Verdict> = lines
            .iter()
            .filter_map(|l| match l {
                Line::Verdict(v) => Some(&**v),
                _ => None,
            })
            .collect();
        assert_eq!(v.len(), 1, "{lines:?}");
        v[0]
    }

    fn summary_for(pid: u32, report: Option<MemcgReport>) -> OomSummary {
        let cgroup = format!("{POD_A}/{CID_A}");
        OomSummary {
            constraint: crate::logs::oom_report::Constraint::Memcg,
            oom_memcg: Some(cgroup.clone()),
            task_memcg: Some(cgroup),
            task: "worker".into(),
            pid,
            uid: Some(0),
            report,
        }
    }

    #[test]
    fn the_memory_is_the_kernels_report_at_the_kill() {
        let mut e = audited(false);
        let mut k = Fake::default();
        ticks(&mut e, &mut k, 1, 2);
        // The victim record first: it waits for the report.
        let out = e.handle(killed(100, 100, 2 * S), &mut k);
        assert!(out.is_empty() && e.waiting(), "{out:?}");
        let report = MemcgReport {
            cgroup: format!("{POD_A}/{CID_A}"),
            usage_kb: Some(16384),
            limit_kb: Some(16384),
            stats: [
                ("anon".to_owned(), 15 << 20),
                ("inactive_file".to_owned(), 1 << 20),
            ]
            .into_iter()
            .collect(),
        };
        let out = e.handle(Input::Kmsg(summary_for(100, Some(report))), &mut k);
        let m = only_verdict(&out).memory.clone().expect("memory");
        assert_eq!(m.source, MemorySource::KernelOomReport);
        assert_eq!(m.anon_bytes, Some(15 << 20));
        assert_eq!(m.working_set_bytes, Some(15 << 20));
    }

    #[test]
    fn a_rate_limited_report_leaves_the_page_counter_and_no_wait() {
        let mut e = audited(false);
        let mut k = Fake::default();
        ticks(&mut e, &mut k, 1, 2);
        assert!(e.handle(killed(100, 100, 2 * S), &mut k).is_empty());
        // The kill line without a summary before it: no report will come.
        let out = e.handle(Input::KmsgKill(100), &mut k);
        let m = only_verdict(&out).memory.clone().expect("memory");
        assert_eq!(m.source, MemorySource::PageCounter);
        assert_eq!(m.cgroup, format!("{POD_A}/{CID_A}"));
        assert_eq!(m.usage_bytes, Some(4096 * 4096));
        assert_eq!((m.anon_bytes, m.working_set_bytes), (None, None));
        // Had the kill line come first, the record is judged at once.
        let out = e.handle(Input::KmsgKill(101), &mut k);
        assert!(out.is_empty());
        let out = e.handle(killed(101, 101, 3 * S), &mut k);
        assert_eq!(
            only_verdict(&out).memory.as_ref().map(|m| m.source),
            Some(MemorySource::PageCounter)
        );
    }

    #[test]
    fn without_the_kernel_log_nothing_waits_for_it() {
        // A non-privileged container has no /dev/kmsg: the page counter at
        // once, not a second's wait per kill for a report that cannot come.
        let mut e = Engine::new(Start {
            kernel_log: false,
            ..audited(false).start
        });
        let mut k = Fake::default();
        ticks(&mut e, &mut k, 1, 2);
        let out = e.handle(killed(100, 100, 2 * S), &mut k);
        let m = only_verdict(&out).memory.clone().expect("memory");
        assert_eq!(m.source, MemorySource::PageCounter);
    }

    #[test]
    fn near_oom_is_one_finding_before_the_kill_which_says_so() {
        let mut start = audited(false).start.clone();
        start.near_oom_horizon_ns = 60 * S;
        let mut e = Engine::new(start);
        let mut k = Fake::default();
        let container = format!("{POD_A}/{CID_A}");
        assert!(e
            .near_oom_targets()
            .iter()
            .any(|(id, p)| *id == 5 && *p == container));
        let limit = 128u64 << 20;
        let mut out = Vec::new();
        // 16 MiB/s from 64 MiB, sampled every 500 ms.
        for i in 0..8u64 {
            let usage = (64 << 20) + i * (8 << 20);
            out.extend(e.handle(
                Input::Usage(near_oom::Samples {
                    boot_ns: 10 * S + i * S / 2,
                    cgroups: vec![near_oom::Sample {
                        id: 5,
                        cgroup: container.clone(),
                        usage_bytes: usage,
                        limit_bytes: limit,
                        working_set_bytes: Some(usage),
                        psi: None,
                    }],
                }),
                &mut k,
            ));
        }
        let found: Vec<&Finding> = out
            .iter()
            .filter_map(|l| match l {
                Line::Finding(f) if f.finding == FindingKind::NearOom => Some(f),
                _ => None,
            })
            .collect();
        assert_eq!(found.len(), 1, "{out:?}");
        let f = found[0];
        assert_eq!(f.cgroup, container);
        assert_eq!(f.limit_bytes, Some(limit));
        assert_eq!(f.growth_bytes_per_s, Some(16 << 20));
        assert_eq!(
            f.pod
                .as_ref()
                .and_then(|p| p.uid.as_ref())
                .map(|u| u.to_string()),
            Some(POD_A[23..].to_string())
        );
        assert!(f.container.is_some());
        assert!(f.summary.contains("growing 16.0 MiB/s"), "{}", f.summary);
        // 106 MiB at 12.5 s: warned; the kill at 14 s.
        // The verdict waits up to 1 s for the kernel log's line.
        let mut out = e.handle(killed(100, 100, 14 * S), &mut k);
        out.extend(e.handle(Input::Tick(15 * S + S / 5), &mut k));
        let v = out
            .iter()
            .find_map(|l| match l {
                Line::Verdict(v) => Some(v),
                _ => None,
            })
            .expect("the kill's verdict");
        assert_eq!(v.warned_s_before, Some(1.5), "{v:?}");
    }

    /// A memcg-pressure record of a task in the container (cgroup 5) whose
    /// page counter is at `usage` of `max` pages.
    fn pressure(boot_ns: u64, usage: u64, max: u64) -> Input {
        use oomtrace_common::{valid, MemcgLevel, PressureEvent, TaskInfo, MEMCG_DEPTH};
        let mut memcg = [MemcgLevel::default(); MEMCG_DEPTH];
        for (i, (id, u, m)) in [(5, usage, max), (4, usage, 1 << 51), (1, usage, 1 << 51)]
            .into_iter()
            .enumerate()
        {
            memcg[i] = MemcgLevel {
                id,
                usage_pages: u,
                max_pages: m,
            };
        }
        let ev = PressureEvent {
            header: oomtrace_common::Header {
                version: WIRE_VERSION,
                kind: Kind::Pressure as u16,
                cpu: 0,
                boot_ns,
            },
            task: TaskInfo {
                tgid: 100,
                tid: 100,
                comm: *b"worker\0\0\0\0\0\0\0\0\0\0",
                memcg_depth: 3,
                ns_pid: 7,
                pid_ns: 99,
                mnt_ns: 98,
                valid: valid::TASK_ALL,
                memcg_valid: valid::memcg_all(3),
                memcg,
            },
        };
        Input::Kernel(Bytes::from(bytes_of(&ev)))
    }

    #[test]
    fn near_oom_when_the_kernel_reclaims_at_the_limit_without_growth() {
        let mut start = audited(false).start.clone();
        start.near_oom_horizon_ns = 60 * S;
        let mut e = Engine::new(start);
        let mut k = Fake::default();
        let container = format!("{POD_A}/{CID_A}");
        let limit = 128u64 << 20;
        let flat = |t: u64| {
            Input::Usage(near_oom::Samples {
                boot_ns: t,
                cgroups: vec![near_oom::Sample {
                    id: 5,
                    cgroup: container.clone(),
                    usage_bytes: limit - (1 << 20),
                    limit_bytes: limit,
                    working_set_bytes: Some(limit - (2 << 20)),
                    psi: Some(crate::node::node_memory::Psi {
                        some_avg10: 12.5,
                        full_avg10: 3.0,
                    }),
                }],
            })
        };
        let findings = |out: &[Line]| -> Vec<Finding> {
            out.iter()
                .filter_map(|l| match l {
                    Line::Finding(f) if f.finding == FindingKind::NearOom => Some(f.clone()),
                    _ => None,
                })
                .collect()
        };
        // Flat at 98 %: no growth, no reclaim seen: nothing.
        let mut out = Vec::new();
        for i in 0..4 {
            out.extend(e.handle(flat(10 * S + i * S / 2), &mut k));
        }
        assert!(findings(&out).is_empty(), "{out:?}");
        // A reclaim record with this cgroup's counter far from its max
        // (reclaim at some other level) says nothing; one at its max does.
        out.extend(e.handle(pressure(12 * S, 32_000, 1 << 40), &mut k));
        out.extend(e.handle(flat(12 * S + S / 2), &mut k));
        assert!(findings(&out).is_empty(), "{out:?}");
        out.extend(e.handle(pressure(13 * S, 32_760, 32_768), &mut k));
        out.extend(e.handle(flat(13 * S + S / 2), &mut k));
        let found = findings(&out);
        assert_eq!(found.len(), 1, "{out:?}");
        let f = &found[0];
        assert_eq!(f.seconds_to_limit, None);
        assert_eq!(f.psi.map(|p| p.full_avg10), Some(3.0));
        assert!(f.summary.contains("already reclaiming"), "{}", f.summary);
        // Still at it: one per episode.
        out.extend(e.handle(pressure(14 * S, 32_760, 32_768), &mut k));
        out.extend(e.handle(flat(14 * S + S / 2), &mut k));
        assert_eq!(findings(&out).len(), 1);
    }

    #[test]
    fn verdicts_that_keep_up_leave_missed_at_zero() {
        let mut e = audited(true);
        let mut k = Fake {
            oom_kill: BASE,
            ..Fake::default()
        };
        let mut out = ticks(&mut e, &mut k, 2, 3);
        // Kills counted before their records are read, one tick apart.
        for (i, pid) in (100..110).enumerate() {
            k.oom_kill += 1;
            out.extend(ticks(&mut e, &mut k, 4 + i as u64, 4 + i as u64));
            out.extend(e.handle(killed(pid, pid, (4 + i as u64) * S), &mut k));
        }
        out.extend(ticks(&mut e, &mut k, 15, 25));
        assert_eq!(verdicts(&out), 10);
        assert!(missed(&out).is_empty(), "{:?}", missed(&out));
        let beat = last_beat(&out);
        assert_eq!(beat.kernel_oom_kills, Some(10), "{beat:?}");
        assert_eq!((beat.oom_verdicts, beat.missed), (10, 0), "{beat:?}");
        // About once a second over 23 s of 50 ms ticks.
        assert!((20..=26).contains(&k.reads), "{} vmstat reads", k.reads);
    }

    #[test]
    fn kills_without_a_verdict_are_missed_once_after_the_deadline() {
        let mut e = audited(true);
        let mut k = Fake {
            oom_kill: BASE,
            ..Fake::default()
        };
        let mut out = ticks(&mut e, &mut k, 2, 3);
        // Three kills; the ring buffer lost two of the records.
        k.oom_kill += 3;
        out.extend(e.handle(killed(100, 100, 3 * S + 1), &mut k));
        let early = ticks(&mut e, &mut k, 4, 6);
        assert!(missed(&early).is_empty(), "before the deadline: {early:?}");
        out.extend(early);
        out.extend(ticks(&mut e, &mut k, 7, 30));
        let m = missed(&out);
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!((m[0].count, m[0].total), (2, 2));
        assert_eq!((m[0].kernel_oom_kills, m[0].verdicts), (3, 1));
        let beat = last_beat(&out);
        assert_eq!(
            (beat.kernel_oom_kills, beat.oom_verdicts, beat.missed),
            (Some(3), 1, 2)
        );
    }

    #[test]
    fn an_oom_group_kill_is_counted_right() {
        let mut e = audited(true);
        let mut k = Fake {
            oom_kill: BASE,
            groups: HashSet::from([format!("{POD_A}/{CID_A}")]),
            ..Fake::default()
        };
        let mut out = ticks(&mut e, &mut k, 2, 3);
        // One invocation kills the container's three processes; the kernel
        // counts the chosen one twice: 4.
        k.oom_kill += 4;
        for (i, pid) in [100, 101, 102].into_iter().enumerate() {
            out.extend(e.handle(killed(pid, 100, 3 * S + 1 + i as u64 * 1000), &mut k));
        }
        out.extend(ticks(&mut e, &mut k, 4, 20));
        let incidents: HashSet<String> = out
            .iter()
            .filter_map(|l| match l {
                Line::Verdict(v) => Some(v.incident.clone()),
                _ => None,
            })
            .collect();
        assert_eq!((verdicts(&out), incidents.len()), (3, 1));
        assert!(missed(&out).is_empty(), "{:?}", missed(&out));
        let beat = last_beat(&out);
        assert_eq!(
            (
                beat.kernel_oom_kills,
                beat.oom_verdicts,
                beat.oom_group_kills
            ),
            (Some(4), 3, 1)
        );
        // A second, separate incident in the same group that lost its record.
        k.oom_kill += 2;
        out.extend(ticks(&mut e, &mut k, 21, 30));
        let m = missed(&out);
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0].count, 2);
    }

    #[test]
    fn kills_from_before_start_are_not_counted() {
        let mut e = audited(true);
        let mut k = Fake {
            oom_kill: BASE,
            ..Fake::default()
        };
        let past = crate::logs::kernel_log::PastKill {
            seq: 7,
            ts_us: 500_000,
            kill: crate::logs::oom_report::OomKill {
                memcg: true,
                pid: 42,
                comm: "old".into(),
                total_vm_kb: None,
                anon_rss_kb: None,
                file_rss_kb: None,
                shmem_rss_kb: None,
                oom_score_adj: None,
                chosen: None,
                group: None,
            },
            summary: None,
        };
        let mut out = e.handle(Input::PastKills(vec![past]), &mut k);
        assert_eq!(verdicts(&out), 1);
        // One live kill whose record was lost: the backlog's verdict does
        // not stand in for it.
        k.oom_kill += 1;
        out.extend(ticks(&mut e, &mut k, 2, 10));
        let m = missed(&out);
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!((m[0].count, m[0].verdicts), (1, 0));
        assert_eq!(last_beat(&out).oom_verdicts, 0);
    }

    #[test]
    fn a_recording_without_the_base_reads_no_vmstat() {
        let mut e = audited(false);
        let mut k = Fake {
            oom_kill: BASE + 5,
            ..Fake::default()
        };
        let out = ticks(&mut e, &mut k, 2, 10);
        assert_eq!(k.reads, 0);
        assert!(missed(&out).is_empty());
        let beat = last_beat(&out);
        assert_eq!((beat.kernel_oom_kills, beat.missed), (None, 0));
    }

    /// A node under the kubelet's default hard threshold (100Mi) whose
    /// pod (`shop/cache-1`, container cgroup 5) holds pid 10; `kubelet_log`:
    /// whether the kubelet's log is read.
    fn pressured(kubelet_log: bool) -> (Engine, Fake) {
        let e = Engine::new(Start {
            kubelet_log,
            heartbeat_ns: 0,
            ..audited(false).start
        });
        let k = Fake {
            ns: HashMap::from([(10, 99)]),
            node: Some(crate::node::observe::NodeMemory {
                capacity_bytes: 8 << 30,
                mem_available_bytes: 60 << 20,
                memory_available_bytes: 50 << 20,
            }),
            populated: Some(true),
            pod: Some(("shop".into(), "cache-1".into())),
            ..Fake::default()
        };
        (e, k)
    }

    /// A userspace signal from `sender` at `at_ns` to pid 10, the pod's
    /// container's init.
    fn signalled(sig: u32, sender: &str, at_ns: u64) -> Input {
        use oomtrace_common::{
            valid, MemcgLevel, SignalEvent, TaskInfo, VictimSource, MEMCG_DEPTH,
        };
        let mut memcg = [MemcgLevel::default(); MEMCG_DEPTH];
        for (i, id) in [5, 4, 3, 2, 1].into_iter().enumerate() {
            memcg[i] = MemcgLevel {
                id,
                usage_pages: 100,
                max_pages: 1 << 51,
            };
        }
        let mut sender_comm = [0u8; COMM_LEN];
        sender_comm[..sender.len()].copy_from_slice(sender.as_bytes());
        let ev = SignalEvent {
            header: oomtrace_common::Header {
                version: WIRE_VERSION,
                kind: Kind::Signal as u16,
                cpu: 0,
                boot_ns: at_ns,
            },
            sig,
            code: 0,
            result: 0,
            source: VictimSource::TpBtf as u32,
            sender_tgid: 77,
            sender_tid: 77,
            sender_comm,
            valid: valid::SIGNAL_ALL,
            _pad: 0,
            target: TaskInfo {
                tgid: 10,
                tid: 10,
                comm: *b"sleep\0\0\0\0\0\0\0\0\0\0\0",
                memcg_depth: 5,
                ns_pid: 1,
                pid_ns: 99,
                mnt_ns: 98,
                valid: valid::TASK_ALL,
                memcg_valid: valid::memcg_all(5),
                memcg,
            },
        };
        Input::Kernel(Bytes::from(bytes_of(&ev)))
    }

    fn stops(lines: &[Line]) -> Vec<&Stopped> {
        lines
            .iter()
            .filter_map(|l| match l {
                Line::Stopped(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    /// Ticks every 50 ms from `from` to `to` ns, the lines they gave.
    fn ticks_ns(e: &mut Engine, k: &mut Fake, from: u64, to: u64) -> Vec<Line> {
        (from / (S / 20)..=to / (S / 20))
            .flat_map(|t| e.handle(Input::Tick(t * (S / 20)), k))
            .collect()
    }

    /// The runtime's stop with the pod's 30 s (SIGTERM at 1 s, ignored,
    /// SIGKILL at 31 s; or an exit at `exit_at_s`), then the sandbox: the
    /// lines up to 40 s.
    fn stop_with_30s_grace(e: &mut Engine, k: &mut Fake, exit_at_s: Option<u64>) -> Vec<Line> {
        let mut out = e.handle(signalled(15, "runc", S), k);
        // Ticks at 1 s while nothing waits but the long stop, as the daemon's.
        let mut t = S;
        while t < 31 * S {
            t += if e.waiting() { S / 20 } else { S };
            if exit_at_s.is_some_and(|x| t >= x * S) {
                // The kubelet stops the sandbox once the container ended.
                k.ns.remove(&10);
                k.populated = Some(false);
            }
            out.extend(e.handle(Input::Tick(t), k));
        }
        if exit_at_s.is_none() {
            out.extend(e.handle(signalled(9, "runc", 31 * S), k));
            k.ns.remove(&10);
        }
        k.populated = Some(false);
        out.extend(ticks_ns(e, k, 31 * S + S / 2, 40 * S));
        out
    }

    #[test]
    fn a_long_grace_eviction_the_kubelets_log_names_is_an_eviction() {
        let (mut e, mut k) = pressured(true);
        k.evicted = Some(true);
        let out = stop_with_30s_grace(&mut e, &mut k, None);
        assert!(stops(&out).is_empty(), "{out:?}");
        let v = only_verdict(&out);
        assert_eq!(
            (v.verdict, v.kind),
            (VerdictKind::NodePressure, Some(PressureKind::Eviction))
        );
        assert_eq!(v.evidence.basis, Some("kubelet_log"));
        assert_eq!(v.evidence.grace_s, Some(30.0), "the grace it saw");
        assert_eq!(v.evidence.eviction_threshold, Some("hard"));
        assert!(v.summary.contains("kubernetes#115819"), "{}", v.summary);
        assert!(!e.waiting());
    }

    #[test]
    fn a_long_grace_exit_the_kubelets_log_names_is_an_eviction() {
        let (mut e, mut k) = pressured(true);
        k.evicted = Some(true);
        let out = stop_with_30s_grace(&mut e, &mut k, Some(12));
        let v = only_verdict(&out);
        assert_eq!(v.evidence.basis, Some("kubelet_log"));
        assert_eq!(v.evidence.grace_s, None, "its exit is not seen");
    }

    #[test]
    fn a_long_grace_stop_without_the_kubelets_word_fits_both() {
        // The kubelet's log not read: said at once when the pod is empty.
        let (mut e, mut k) = pressured(false);
        let out = stop_with_30s_grace(&mut e, &mut k, None);
        assert_eq!(verdicts(&out), 0, "{out:?}");
        let s = stops(&out);
        assert_eq!(s.len(), 1, "{out:?}");
        assert_eq!(s[0].reason, StopReason::EvictionOrDeletion);
        assert_eq!(s[0].signal.name, "SIGTERM", "the stop's first signal");
        assert!(
            s[0].summary.contains("kubernetes#115819")
                && s[0].summary.contains("--kubelet-log")
                && !s[0].summary.contains("not an eviction"),
            "{}",
            s[0].summary
        );
        assert_eq!(k.log_reads, 0);
        // Read, and no line for the pod within the wait.
        let (mut e, mut k) = pressured(true);
        k.evicted = Some(false);
        let out = stop_with_30s_grace(&mut e, &mut k, None);
        assert_eq!(verdicts(&out), 0, "{out:?}");
        let s = stops(&out);
        assert_eq!(s.len(), 1, "{out:?}");
        assert_eq!(s[0].reason, StopReason::EvictionOrDeletion);
        assert!(
            s[0].summary
                .contains("named no eviction of the pod within 5 s"),
            "{}",
            s[0].summary
        );
        assert!(k.log_reads > 1, "waited for the line");
        // Unreadable when asked (a journal that failed): where to look.
        let (mut e, mut k) = pressured(true);
        let out = stop_with_30s_grace(&mut e, &mut k, None);
        assert!(stops(&out)[0].summary.contains("--kubelet-log"), "{out:?}");
    }

    #[test]
    fn a_long_stop_is_polled_once_a_second_without_fast_ticks() {
        let (mut e, mut k) = pressured(false);
        e.handle(signalled(15, "runc", S), &mut k);
        assert!(e.waiting(), "a hard eviction's grace is watched closely");
        ticks_ns(&mut e, &mut k, S, 5 * S + S / 20);
        assert!(!e.waiting(), "past it, the stop is followed slowly");
        let before = k.ns_reads;
        let out = ticks_ns(&mut e, &mut k, 5 * S + S / 10, 21 * S);
        assert!(out.is_empty(), "{out:?}");
        let polls = k.ns_reads - before;
        assert!((15..=17).contains(&polls), "{polls} reads in 16 s");
    }

    #[test]
    fn a_long_stop_of_one_container_is_not_an_eviction() {
        let (mut e, mut k) = pressured(true);
        k.evicted = Some(false);
        let mut out = e.handle(signalled(15, "runc", S), &mut k);
        out.extend(ticks_ns(&mut e, &mut k, S, 31 * S));
        out.extend(e.handle(signalled(9, "runc", 31 * S), &mut k));
        k.ns.remove(&10);
        // The rest of the pod runs on.
        out.extend(ticks_ns(&mut e, &mut k, 31 * S, 45 * S));
        let s = stops(&out);
        assert_eq!(s.len(), 1, "{out:?}");
        assert_eq!(s[0].reason, StopReason::PodNotStopped);
        assert_eq!(verdicts(&out), 0);
    }

    #[test]
    fn a_recording_from_before_long_stops_were_followed_replays_the_old_rule() {
        let (e, mut k) = pressured(true);
        let mut e = Engine::new(Start {
            follow_long_stops: false,
            runtime_slack_ns: crate::node::kubelet::RUNTIME_SLACK_NS,
            ..e.start
        });
        let mut out = e.handle(signalled(15, "runc", S), &mut k);
        out.extend(ticks_ns(&mut e, &mut k, S, 5 * S));
        let s = stops(&out);
        assert_eq!(s.len(), 1, "{out:?}");
        assert_eq!(s[0].reason, StopReason::GraceLongerThanHardEviction);
        assert!(!e.waiting());
    }
}
