//! `oomtrace run` / `tail` / `record` / `replay`: the live edge around the
//! engine. Ring buffer (tokio AsyncFd), kernel log (a thread), ticks and
//! drop counters become engine inputs; its records go to the sink and,
//! when recording, every input and answer to the recording file.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::Context as _;
use aya::{
    maps::{MapData, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::trace_point::TracePointLinkId,
};
use bytes::BytesMut;
use oomtrace_common::{Hook, Kind, HOOK_COUNT};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{signal, SignalKind},
    sync::mpsc,
};

use oomtrace_core::{
    engine::recording::{self, Recorder},
    engine::{Engine, Input, Start},
    kernel::hooks::{self, Family},
    logs::kmsg,
    logs::oom_report::OomLine,
    logs::state,
    node::cgroup::{CgroupNamespace, CgroupTree, Layout, Version},
    node::observe::{self, Live, Observe, Sources},
    node::pods::{self, Level},
    output::sink::{json::JsonSink, text::TextSink, CgroupStatus, KillSource, Line, Sink, Status},
    rules::audit::KernelCount,
};

use crate::{
    charges::ChargeReader,
    cli::{Common, Cursor, Format, Usage},
    loader, probe,
    sampler::{self, Sampler},
};

/// The charge counter is detached after this long without pressure.
const CHARGE_QUIET_NS: u64 = 5_000_000_000;

/// Flags validated into what the daemon runs with.
pub struct Config {
    pub layout: Layout,
    pub node: String,
    pub common: Common,
    /// The cursor in the kernel log: `run`'s and `record`'s, or `tail`'s own.
    pub state_file: PathBuf,
    /// Whether the kills in the kernel log since the cursor are reported.
    pub backlog: bool,
}

impl Config {
    pub fn from_args(common: Common, state_file: PathBuf, backlog: bool) -> anyhow::Result<Config> {
        let layout = Layout::detect(&common.node.cgroup_root)?;
        let node = match &common.node_name {
            Some(n) if !n.trim().is_empty() => n.clone(),
            _ => rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned(),
        };
        // --ring-buffer-bytes is checked by its parser.
        if !common.near_oom_horizon.is_zero()
            && common.near_oom_interval < Duration::from_millis(50)
        {
            return Err(Usage(format!(
                "--near-oom-interval {:?} is too short: at least 50ms (or --near-oom-horizon 0)",
                common.near_oom_interval
            ))
            .into());
        }
        Ok(Config {
            layout,
            node,
            common,
            state_file,
            backlog,
        })
    }
}

pub(crate) fn make_sink(format: Format, node: String) -> Box<dyn Sink> {
    let stdout = std::io::stdout().lock();
    match format {
        Format::Json => Box::new(JsonSink::new(stdout, node)),
        // anstream decides: a terminal, NO_COLOR, CLICOLOR_FORCE, TERM=dumb.
        Format::Text => Box::new(TextSink::new(
            stdout,
            oomtrace_core::output::sink::text::ColorChoice::Auto,
        )),
    }
}

/// `run` and `record`: the daemon's own cursor, JSON or text lines.
pub fn run_daemon(
    common: Common,
    cursor: Cursor,
    format: Format,
    record: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let backlog = cursor.backlog && !cursor.no_backlog;
    let config = Config::from_args(common, cursor.state_file, backlog)?;
    let sink = make_sink(format, config.node.clone());
    run(config, sink, record)
}

pub fn run(
    config: Config,
    sink: Box<dyn Sink>,
    record: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(pipeline(config, sink, record))?;
    Ok(ExitCode::SUCCESS)
}

pub fn replay(file: &Path, format: Format) -> anyhow::Result<ExitCode> {
    let mut sink: Option<Box<dyn Sink>> = None;
    recording::replay(file, |start, rec| {
        let s = sink.get_or_insert_with(|| make_sink(format, start.node.clone()));
        s.write(&rec)
    })?;
    Ok(ExitCode::SUCCESS)
}

pub fn kernel_release() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}

pub fn boot_to_wall_ns() -> i128 {
    let wall = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    let wall = wall.tv_sec as i128 * 1_000_000_000 + wall.tv_nsec as i128;
    wall - observe::boot_ns() as i128
}

/// Containers already running, so their processes are known wherever they
/// go: the pid namespace of one process of each container cgroup, and
/// every process in one (with the time it was seen there) for hostPID pods,
/// whose processes share the host's namespaces.
#[expect(clippy::type_complexity, reason = "the two halves of engine::Start")]
fn running_containers(
    tree: &CgroupTree,
    live: &mut Live,
    host_pid_ns: u32,
) -> (Vec<(u32, String)>, Vec<(u32, String, u64)>) {
    let (mut namespaces, mut pids) = (Vec::new(), Vec::new());
    let seen_at = observe::boot_ns();
    for (_, node) in tree.live() {
        if !pods::parse_cgroup_path(&node.path).is_some_and(|k| k.level == Level::Container) {
            continue;
        }
        let procs = live
            .sources
            .memory_root
            .join(node.path.trim_start_matches('/'))
            .join("cgroup.procs");
        let listed: Vec<u32> = std::fs::read_to_string(procs)
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default();
        if let Some(ns) = listed.first().and_then(|&pid| live.namespaces(pid)) {
            if ns.pid_ns != host_pid_ns {
                namespaces.push((ns.pid_ns, node.path.clone()));
            }
        }
        pids.extend(
            listed
                .into_iter()
                .map(|pid| (pid, node.path.clone(), seen_at)),
        );
    }
    namespaces.sort();
    pids.sort();
    (namespaces, pids)
}

/// The opt-in charge counter: attached while some cgroup is under pressure.
struct ChargeHook {
    link: Option<TracePointLinkId>,
    /// The engine's latest pressure record when the counter was last armed.
    armed_for_ns: u64,
}

/// The live daemon between start and stop: what the event loop's steps share.
struct Daemon {
    config: Config,
    loaded: loader::Loaded,
    engine: Engine,
    live: Live,
    sink: Box<dyn Sink>,
    recorder: Option<Recorder>,
    /// What the next run needs to report kills made while this one is down.
    position: state::State,
    /// Whether `position` moved since it was last saved.
    position_unsaved: bool,
    charge: Option<ChargeHook>,
    drops: PerCpuArray<MapData, u64>,
    drops_sent: [u64; HOOK_COUNT as usize],
    /// Ring-buffer records are copied here, one `Bytes` each, reusing its capacity.
    ring_buf: BytesMut,
    cgroups: usize,
    cgroup_ns: Option<CgroupNamespace>,
    /// The status line's `kernel_log`: whether /dev/kmsg is read, and why not.
    kernel_log: String,
    /// Where kills are seen from (kernel-log mode: no victim hook).
    kills: KillSource,
    /// Drains /dev/kmsg at once when kernel records arrive (see `Nudge`).
    kmsg_nudge: Option<kmsg::Nudge>,
    /// The `near_oom` sampler (None: `--near-oom-horizon 0`).
    sampler: Option<Sampler>,
    /// Whether the latest usage batch held any cgroup: one empty batch
    /// follows a non-empty one (their episodes end), later ones are not sent.
    sampled_any: bool,
}

/// The status line's facts, fixed at start.
fn status(d: &Daemon, state: &'static str) -> Status {
    Status {
        time: oomtrace_core::kernel::clock::now(),
        state,
        version: env!("CARGO_PKG_VERSION"),
        kernel: kernel_release(),
        cgroup: CgroupStatus {
            version: d.config.layout.version,
            memory_root: d.config.layout.memory_root.display().to_string(),
            cgroups: d.cgroups,
            namespace: d.cgroup_ns.clone(),
        },
        hooks: d.loaded.choices.clone(),
        kernel_log: d.kernel_log.clone(),
        kills: d.kills.clone(),
    }
}

/// The kubelet config to read its eviction thresholds from: the given
/// one, else the first of the known places (said once, at start).
fn kubelet_config(node: &crate::cli::NodeArgs) -> PathBuf {
    use crate::kubelet_config::{resolve, Found};
    let found = resolve(node.kubelet_config.as_deref(), Path::new("/"));
    match &found {
        Found::Given(_) => {}
        Found::Known(p, who) => tracing::info!("kubelet config: {} ({who})", p.display()),
        Found::None => tracing::info!(
            "kubelet config: none of the known places holds one; eviction thresholds are the kubelet's defaults (memory.available<100Mi)"
        ),
    }
    found.path()
}

/// The debug target of the kill path's steps (`OOMTRACE_LOG=oomtrace::timing=debug`):
/// when each victim record and each kernel report reached the daemon, when
/// its verdict was judged and written, in CLOCK_BOOTTIME ns, for the latency
/// bench's split.
pub const TIMING: &str = "oomtrace::timing";

/// Loads and attaches the hooks.
fn load_hooks(config: &Config) -> anyhow::Result<loader::Loaded> {
    let loaded = loader::load(
        &config.common.node.btf,
        &config.common.node.hooks,
        config.common.node.ring_buffer_bytes,
        Some(config.layout.hierarchy_id),
    )?;
    loader::trim_heap();
    Ok(loaded)
}

/// Where kills are seen from: the victim hook, else (kernel-log mode) the
/// kernel log, with why no victim hook attached; an error when neither can
/// see a kill, naming both reasons.
fn kill_source(
    choices: &[hooks::Choice],
    kernel_log: Result<(), &str>,
) -> anyhow::Result<KillSource> {
    let Some(victim) = choices
        .iter()
        .find(|c| c.family.sees_kills() && c.chosen.is_none())
    else {
        return Ok(KillSource {
            seen_from: "victim_hook",
            why: None,
        });
    };
    let reasons: Vec<String> = victim
        .skipped
        .iter()
        .map(|s| format!("{}: {}", s.kind, s.reason))
        .collect();
    let why = format!(
        "no {} hook attached ({})",
        victim.family.name(),
        reasons.join("; ")
    );
    match kernel_log {
        Ok(()) => Ok(KillSource {
            seen_from: "kernel_log",
            why: Some(why),
        }),
        Err(e) => anyhow::bail!(
            "no kill can be seen: {why}, and the kernel log is unreadable ({e}); `oomtrace doctor` says more"
        ),
    }
}

impl Daemon {
    /// Hooks attached, node scanned, recording opened; returns the daemon,
    /// the ring buffer to wait on and the kernel-log lines.
    fn start(
        config: Config,
        sink: Box<dyn Sink>,
        record_to: Option<&Path>,
    ) -> anyhow::Result<(
        Daemon,
        AsyncFd<RingBuf<MapData>>,
        mpsc::Receiver<kmsg::FromLog>,
    )> {
        let mut loaded = load_hooks(&config)?;
        let ring = RingBuf::try_from(
            loaded
                .ebpf
                .take_map("EVENTS")
                .context("EVENTS map missing from the object")?,
        )?;
        let drops: PerCpuArray<_, u64> =
            PerCpuArray::try_from(loaded.ebpf.take_map("DROPS").context("DROPS map missing")?)?;
        // SAFETY: the ring buffer owns its fd, and the AsyncFd owns the ring
        // buffer: the fd stays open for as long as it is registered.
        let ring = unsafe { AsyncFd::register(ring) }
            .map_err(|e| anyhow::anyhow!("registering the ring buffer with tokio: {e}"))?;

        let mut live = Live {
            sources: Sources {
                memory_root: config.layout.memory_root.clone(),
                v2: config.layout.version == Version::V2,
                pods_log_dir: config.common.node.pods_log_dir.clone(),
                containers_log_dir: config.common.node.containers_log_dir.clone(),
                kubelet_config: kubelet_config(&config.common.node),
                cgroup_ns: None,
            },
            recorded: None,
            charges: None,
            kubelet_log: oomtrace_core::node::kubelet_log::Reader::new(
                oomtrace_core::node::kubelet_log::Source::parse(&config.common.kubelet_log),
            ),
        };
        let charge_hook = loaded
            .choices
            .iter()
            .any(|c| c.family == Family::Charge && c.chosen.is_some());
        let charge = if charge_hook {
            let map = loaded
                .ebpf
                .take_map("CHARGES")
                .context("CHARGES map missing")?;
            live.charges = Some(Box::new(ChargeReader {
                map: PerCpuHashMap::try_from(map)?,
                armed_ns: None,
            }));
            Some(ChargeHook {
                link: None,
                armed_for_ns: 0,
            })
        } else {
            None
        };
        // Attached first, scanned second: a cgroup made in between arrives as
        // an event and simply overwrites its scanned entry.
        let tree = CgroupTree::scan(&config.layout)?;
        live.sources.cgroup_ns = CgroupNamespace::detect(&tree, &config.layout);
        let host_pid_ns = live
            .namespaces(std::process::id())
            .map(|n| n.pid_ns)
            .unwrap_or(0);
        let (containers, container_pids) = running_containers(&tree, &mut live, host_pid_ns);
        let (kmsg_tx, kmsg_rx) = mpsc::channel::<kmsg::FromLog>(1024);
        let (kernel_log, kmsg_nudge) = match kmsg::spawn_reader(kmsg_tx) {
            Ok(nudge) => ("reading".to_string(), Some(nudge)),
            Err(e) => (format!("unavailable: {e}"), None),
        };
        let reading_kmsg = kmsg_nudge.is_some();
        let kills = kill_source(
            &loaded.choices,
            if reading_kmsg {
                Ok(())
            } else {
                Err(kernel_log.as_str())
            },
        )?;
        // Read once the hooks are attached and the kernel log is followed:
        // every kill counted from here on has a record, a `lost` line or (in
        // kernel-log mode) a line of the kernel's, so it must get a verdict.
        let kernel_oom_kills = state::vmstat_oom_kill().map(|oom_kill| KernelCount {
            boot_ns: observe::boot_ns(),
            oom_kill,
        });
        // Read once the hooks are attached, like the kernel's count below:
        // a write after it is the limit hook's.
        let limits_ns = observe::boot_ns();
        let limits = sampler::limits_at_start(
            &config.layout.memory_root,
            config.layout.version == Version::V2,
            &tree.entries(),
        );
        let start = Start {
            limits,
            limits_ns,
            node: config.node.clone(),
            kernel: kernel_release(),
            layout: config.layout.clone(),
            cgroups: tree.entries(),
            page_size: rustix::param::page_size() as u64,
            boot_to_wall_ns: boot_to_wall_ns(),
            host_pid_ns,
            containers,
            container_pids,
            leak_grace_ns: config.common.leak_grace.as_nanos().min(u64::MAX as u128) as u64,
            heartbeat_ns: config.common.heartbeat.as_nanos().min(u64::MAX as u128) as u64,
            kernel_oom_kills,
            kubelet_log: live.kubelet_log.enabled(),
            follow_long_stops: true,
            runtime_slack_ns: oomtrace_core::node::kubelet::RUNTIME_SLACK_NS,
            reading_kmsg,
            userspace_killers: Some(config.common.userspace_killers.clone()),
            dying_sample_ns: config
                .common
                .dying_sample_interval
                .as_nanos()
                .clamp(1, u64::MAX as u128) as u64,
            near_oom_horizon_ns: config
                .common
                .near_oom_horizon
                .as_nanos()
                .min(u64::MAX as u128) as u64,
        };
        let recorder = match record_to {
            Some(p) => Some(
                Recorder::create(p, &start)
                    .with_context(|| format!("creating the recording {}", p.display()))?,
            ),
            None => None,
        };
        live.recorded = recorder.as_ref().map(|_| Vec::new());
        let cgroups = start.cgroups.len();

        let cgroup_ns = live.sources.cgroup_ns.clone();
        let sampler = (!config.common.near_oom_horizon.is_zero()).then(|| {
            Sampler::new(
                &config.layout.memory_root,
                config.layout.version == Version::V2,
            )
        });
        let daemon = Daemon {
            sampler,
            sampled_any: false,
            config,
            loaded,
            engine: Engine::new(start),
            live,
            sink,
            recorder,
            position: state::State {
                boot_id: state::boot_id(),
                kmsg_seq: None,
                oom_kill: state::vmstat_oom_kill(),
            },
            position_unsaved: false,
            charge,
            drops,
            drops_sent: [0; HOOK_COUNT as usize],
            ring_buf: BytesMut::with_capacity(64 * 1024),
            cgroups,
            cgroup_ns,
            kernel_log,
            kills,
            kmsg_nudge,
        };
        Ok((daemon, ring, kmsg_rx))
    }

    /// One input through the engine: recorded with the answers it took,
    /// its lines written.
    fn feed(&mut self, input: Input) -> anyhow::Result<()> {
        let timing = tracing::enabled!(target: TIMING, tracing::Level::DEBUG);
        let lines = match self.recorder.as_mut() {
            Some(r) => {
                let lines = self.engine.handle(input.clone(), &mut self.live);
                let answers = self.live.recorded.replace(Vec::new()).unwrap_or_default();
                r.input(&input, answers).context("writing the recording")?;
                lines
            }
            None => self.engine.handle(input, &mut self.live),
        };
        let judged_ns = if timing { observe::boot_ns() } else { 0 };
        for line in lines {
            self.sink.write(&line)?;
            if let (true, Line::Verdict(v)) = (timing, &line) {
                if let Some(victim) = &v.victim {
                    tracing::debug!(
                        target: TIMING,
                        "verdict pid={} judged_ns={judged_ns} written_ns={}",
                        victim.pid,
                        observe::boot_ns()
                    );
                }
            }
        }
        Ok(())
    }

    /// Kills while oomtrace was not running: in the kernel log after the
    /// position the last run remembered (since boot on a first run), and the
    /// kernel's own count of those the log no longer holds.
    fn backlog(&mut self) -> anyhow::Result<()> {
        let previous = state::load(&self.config.state_file)?;
        if self.config.backlog {
            match kmsg::backlog(previous.as_ref().and_then(|s| s.kmsg_seq)) {
                Ok((kills, last)) => {
                    self.position.kmsg_seq = last;
                    let missed = match (
                        previous.as_ref().and_then(|s| s.oom_kill),
                        self.position.oom_kill,
                    ) {
                        (Some(then), Some(now)) => {
                            now.saturating_sub(then).saturating_sub(kills.len() as u64)
                        }
                        _ => 0,
                    };
                    if !kills.is_empty() {
                        self.feed(Input::PastKills(kills))?;
                    }
                    if missed > 0 {
                        self.feed(Input::Missed(missed))?;
                    }
                    self.sink.end_of_backlog(previous.is_some())?;
                }
                Err(e) => tracing::warn!("reading the kernel log's backlog: {e}"),
            }
        } else if let Ok((_, last)) = kmsg::backlog(Some(u64::MAX)) {
            self.position.kmsg_seq = last;
        }
        state::save(&self.config.state_file, &self.position)?;
        self.sink.live();
        Ok(())
    }

    /// Every record the ring buffer holds, decoded once by the engine.
    fn drain(&mut self, ring: &mut RingBuf<MapData>) -> anyhow::Result<()> {
        let mut batch = Vec::new();
        while let Some(item) = ring.next() {
            self.ring_buf.extend_from_slice(&item);
            batch.push(self.ring_buf.split().freeze());
        }
        // A victim's report is already in the kernel log: read it now, not
        // at the kernel's next lazy wake-up of log readers. (Moves alone
        // need nothing of the log.)
        let moves_only = batch
            .iter()
            .all(|b| oomtrace_core::kernel::event::kind(b) == Some(Kind::CgroupAttach));
        if let (false, Some(n)) = (moves_only, &self.kmsg_nudge) {
            n.now(observe::boot_ns());
        }
        if tracing::enabled!(target: TIMING, tracing::Level::DEBUG) {
            let now = observe::boot_ns();
            for bytes in &batch {
                if let Ok(oomtrace_core::kernel::event::Event::Victim(v)) =
                    oomtrace_core::kernel::event::decode(bytes)
                {
                    tracing::debug!(
                        target: TIMING,
                        "victim record pid={} kill_ns={} arrived_ns={now}",
                        oomtrace_core::kernel::event::pid(&v.victim),
                        v.header.boot_ns
                    );
                }
            }
        }
        for bytes in batch {
            self.feed(Input::Kernel(bytes))?;
        }
        self.arm_charges();
        Ok(())
    }

    /// Pressure the engine saw arms the charge counter, so the growth that
    /// follows is counted.
    fn arm_charges(&mut self) {
        let pressure = self.engine.last_pressure_ns();
        let Some(charge) = self.charge.as_mut() else {
            return;
        };
        if charge.link.is_some() || pressure <= charge.armed_for_ns {
            return;
        }
        charge.armed_for_ns = pressure;
        match probe::arm_charges(&mut self.loaded.ebpf) {
            Ok(link) => {
                charge.link = Some(link);
                if let Some(c) = self.live.charges.as_mut() {
                    c.arm(observe::boot_ns());
                }
            }
            Err(e) => tracing::warn!("arming the charge counter: {e}"),
        }
    }

    /// Detaches the charge counter after a quiet spell: an attached program
    /// costs every page charge even when it returns at once.
    fn disarm_quiet_charges(&mut self, now: u64) {
        let pressure = self.engine.last_pressure_ns();
        let Some(charge) = self.charge.as_mut() else {
            return;
        };
        if now.saturating_sub(pressure) <= CHARGE_QUIET_NS {
            return;
        }
        if let Some(link) = charge.link.take() {
            if let Err(e) = probe::disarm_charges(&mut self.loaded.ebpf, link) {
                tracing::warn!("disarming the charge counter: {e}");
            }
            if let Some(c) = self.live.charges.as_mut() {
                c.clear();
            }
        }
    }

    fn on_kmsg(&mut self, read: kmsg::FromLog) -> anyhow::Result<()> {
        let seen = match read {
            kmsg::FromLog::Line(seen) => seen,
            kmsg::FromLog::Drained(through_ns) => {
                tracing::debug!(
                    target: TIMING,
                    "kernel log drained through_ns={through_ns} arrived_ns={}",
                    observe::boot_ns()
                );
                return self.feed(Input::KmsgDrained(through_ns));
            }
        };
        if let OomLine::Summary(summary) = &seen.line {
            tracing::debug!(
                target: TIMING,
                "kernel report pid={} arrived_ns={}",
                summary.pid,
                observe::boot_ns()
            );
        }
        let seq = seen.seq;
        let judged = match seen.line {
            OomLine::Summary(summary) => self.feed(Input::Kmsg(summary)),
            // Kernel-log mode: the line is the kill, judged from the log.
            OomLine::Kill(kill) if self.kills.why.is_some() => self.feed(Input::LoggedKill {
                seq: seen.seq,
                ts_us: seen.ts_us,
                kill,
            }),
            // Else the victim hook's record has the kill: its report is read.
            OomLine::Kill(kill) => self.feed(Input::KmsgKilled(kill)),
            // The reader sends only summaries and kills.
            OomLine::Start | OomLine::Unfinished(_) => Ok(()),
        };
        // The position moves only past a line judged and written (a crash
        // before the save replays it at the next start rather than losing
        // it, and so does a line whose write failed), and
        // is saved at the next tick: the save's fsync took milliseconds, and
        // stood between a kill's report and its verdict (cargo xtask bench,
        // latency steps).
        if judged.is_ok() {
            self.position.kmsg_seq = Some(seq);
            self.position.oom_kill = state::vmstat_oom_kill();
            self.position_unsaved = true;
        }
        judged
    }

    /// The position saved, if it moved since the last save.
    fn save_position(&mut self) {
        if !self.position_unsaved {
            return;
        }
        self.position_unsaved = false;
        if let Err(e) = state::save(&self.config.state_file, &self.position) {
            tracing::warn!("{e}");
        }
    }

    fn on_tick(&mut self) -> anyhow::Result<()> {
        self.save_position();
        let now = observe::boot_ns();
        self.disarm_quiet_charges(now);
        self.feed(Input::Tick(now))
    }

    /// The `near_oom` sampler's turn: the limited cgroups' usage to the engine.
    fn on_sample(&mut self) -> anyhow::Result<()> {
        let Some(sampler) = self.sampler.as_mut() else {
            return Ok(());
        };
        let batch = sampler.sample(self.engine.near_oom_targets(), observe::boot_ns());
        let any = !batch.cgroups.is_empty();
        if !any && !self.sampled_any {
            return Ok(());
        }
        self.sampled_any = any;
        self.feed(Input::Usage(batch))
    }

    /// Ring-buffer reservation failures per hook, when they grew.
    fn on_drops(&mut self) -> anyhow::Result<()> {
        let mut totals = [0u64; HOOK_COUNT as usize];
        for hook in Hook::ALL {
            totals[hook as usize] = self
                .drops
                .get(&(hook as u32), 0)
                .map(|v| v.iter().sum())
                .unwrap_or(0);
        }
        if totals == self.drops_sent {
            return Ok(());
        }
        self.drops_sent = totals;
        self.feed(Input::Drops(totals))
    }

    /// The state file written, the stop said, the recording closed.
    fn stop(mut self) -> anyhow::Result<()> {
        self.position.oom_kill = state::vmstat_oom_kill();
        if let Err(e) = state::save(&self.config.state_file, &self.position) {
            tracing::warn!("{e}");
        }
        let stopping = status(&self, "stopping");
        // Written before the recording is finished, but not in its way: with
        // stdout closed the recording must still end whole.
        let said = self.sink.write(&Line::Status(stopping));
        if let Some(r) = self.recorder {
            r.end().context("finishing the recording")?;
        }
        said?;
        Ok(())
    }
}

async fn pipeline(
    config: Config,
    sink: Box<dyn Sink>,
    record_to: Option<PathBuf>,
) -> anyhow::Result<()> {
    // Installed before anything is printed: a SIGTERM right after `ready`
    // must already mean a clean stop.
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    // Bound before the hooks load: a taken port fails the start, not after `ready`.
    let metrics_listener = match config.common.metrics_addr {
        Some(addr) => Some(crate::metrics::bind(addr).await?),
        None => None,
    };
    let (mut daemon, mut ring, mut kmsg_rx) = Daemon::start(config, sink, record_to.as_deref())?;
    forward_bpf_log(&mut daemon.loaded);
    let ready = status(&daemon, "ready");
    daemon.sink.write(&Line::Status(ready.clone()))?;
    let metrics = metrics_listener.map(|l| crate::metrics::Running::start(l, &ready));
    if let Some(m) = &metrics {
        let sink = std::mem::replace(&mut daemon.sink, Box::new(NullSink));
        daemon.sink = m.wrap(sink);
    }
    daemon.backlog()?;

    let mut drops_tick = tokio::time::interval(Duration::from_secs(1));
    // Never fires when the sampler is off.
    let sample_every = match daemon.sampler {
        Some(_) => daemon.config.common.near_oom_interval,
        None => Duration::from_secs(3600 * 24 * 365),
    };
    let mut sample_tick = tokio::time::interval(sample_every);
    sample_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The next tick's deadline, kept across turns of the loop: a sleep made
    // afresh each turn never fired while another branch kept the loop busy
    // (ring-buffer traffic, or just the 1 s drops interval, which always won
    // the race), so heartbeats, leak checks and disarming the charge counter
    // starved (cargo xtask bench, churn section).
    let mut next_tick = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        // Victims waiting for the kernel log ask for a faster tick: at once.
        let tick = if daemon.engine.waiting() {
            Duration::from_millis(50)
        } else {
            Duration::from_secs(1)
        };
        next_tick = next_tick.min(tokio::time::Instant::now() + tick);
        let step = tokio::select! {
            guard = ring.readable_mut() => match guard {
                Ok(mut guard) => {
                    let r = daemon.drain(guard.get_inner_mut());
                    guard.clear_ready();
                    r
                }
                Err(e) => Err(e.into()),
            },
            // Moves' records wait unread in the ring (oomtrace-ebpf's
            // `lazy_wakeup`): a kill judged from the log needs them first.
            Some(read) = kmsg_rx.recv() => {
                daemon.drain(ring.get_mut()).and_then(|()| daemon.on_kmsg(read))
            }
            _ = tokio::time::sleep_until(next_tick) => {
                next_tick = tokio::time::Instant::now() + tick;
                // A reader that went away is noticed within a tick, not at
                // the next line, which on a quiet node may be a heartbeat away.
                if stdout_closed() {
                    break;
                }
                // Moves' records are submitted without a wake-up: read at
                // the latest here.
                daemon.drain(ring.get_mut()).and_then(|()| daemon.on_tick())
            }
            _ = drops_tick.tick() => daemon.on_drops(),
            _ = sample_tick.tick(), if daemon.sampler.is_some() => daemon.on_sample(),
            _ = term.recv() => break,
            _ = int.recv() => break,
        };
        match step {
            Ok(()) => {}
            // `oomtrace run | head`: the reader is done, which is a stop like
            // SIGTERM (state file saved, recording finished), not a failure.
            Err(e) if crate::is_broken_pipe(&e) => break,
            Err(e) => return Err(e),
        }
    }
    match daemon.stop() {
        Err(e) if !crate::is_broken_pipe(&e) => return Err(e),
        _ => {}
    }
    if let Some(m) = metrics {
        m.stop().await;
    }
    Ok(())
}

/// The kernel programs' diagnostics (aya-log: reads that failed) go to
/// tracing from a task that owns the logger, so the log map stays open for
/// as long as the runtime runs.
fn forward_bpf_log(loaded: &mut loader::Loaded) {
    let Some(log) = loaded.bpf_log.take() else {
        return;
    };
    // SAFETY: the logger owns its ring buffer's fd, and the AsyncFd owns
    // the logger: the fd stays open for as long as it is registered.
    match unsafe { AsyncFd::register_with_interest(log, tokio::io::Interest::READABLE) } {
        Ok(mut log) => {
            tokio::spawn(async move {
                while let Ok(mut guard) = log.readable_mut().await {
                    guard.get_inner_mut().flush();
                    guard.clear_ready();
                }
            });
        }
        Err(e) => {
            let (log, e) = e.into_parts();
            tracing::debug!("the kernel-side log is not read: {e}");
            loaded.bpf_log = Some(log);
        }
    }
}

/// Whether stdout is a pipe or socket whose reader has gone: poll reports
/// POLLERR on it (a terminal or a file never does).
fn stdout_closed() -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match poll(&mut fds, Some(&now)) {
        Ok(_) => fds[0].revents().contains(PollFlags::ERR),
        Err(_) => false,
    }
}

/// Stands in for the sink for the instant it is wrapped.
struct NullSink;

impl Sink for NullSink {
    fn write(&mut self, _: &Line) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oomtrace_core::kernel::hooks::{Choice, HookKind, Skipped};

    fn victim(chosen: Option<HookKind>) -> Vec<Choice> {
        vec![Choice {
            family: Family::Victim,
            chosen,
            skipped: vec![Skipped {
                kind: HookKind::TpBtf,
                reason: "mark_victim's arguments here are (int)".into(),
            }],
        }]
    }

    #[test]
    fn kills_come_from_the_victim_hook_else_the_kernel_log_else_nowhere() {
        let hooked = kill_source(&victim(Some(HookKind::Tracepoint)), Err("gone")).expect("ok");
        assert_eq!((hooked.seen_from, hooked.why), ("victim_hook", None));
        let logged = kill_source(&victim(None), Ok(())).expect("kernel-log mode");
        assert_eq!(logged.seen_from, "kernel_log");
        assert_eq!(
            logged.why.as_deref(),
            Some("no victim hook attached (tp_btf: mark_victim's arguments here are (int))")
        );
        // Neither: an error naming both reasons.
        let e = kill_source(&victim(None), Err("unavailable: Permission denied"))
            .expect_err("no way to see a kill")
            .to_string();
        assert!(
            e.contains("(int)") && e.contains("Permission denied"),
            "{e}"
        );
    }
}
