//! `oomtrace run` / `tail` / `record` / `replay`: the live edge around the
//! engine. Ring buffer (tokio AsyncFd), kernel log (a thread), ticks and
//! drop counters become engine inputs; its records go to the sink and,
//! when recording, every input and answer to the recording file.

use std::{
    io::IsTerminal,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::Context as _;
use aya::maps::{PerCpuArray, PerCpuHashMap, RingBuf};
use oomtrace_common::{Hook, Kind, HOOK_COUNT};
use tokio::{io::unix::AsyncFd, sync::mpsc};

use oomtrace_core::{
    cgroup::{CgroupTree, Layout, Version},
    engine::{Engine, Input, Start},
    hooks::Family,
    kernel_log,
    observe::{self, Live, Observe, Sources},
    pods::{self, Level},
    recording::{self, Recorder},
    sink::{json::JsonSink, text::TextSink, CgroupStatus, Line, Sink, Status},
    state,
};

use crate::{
    charges::ChargeReader,
    cli::{Common, Format},
    loader, probe,
};

/// The charge counter is detached after this long without pressure.
const CHARGE_QUIET_NS: u64 = 5_000_000_000;

/// Flags validated into what the daemon runs with.
pub struct Config {
    pub layout: Layout,
    pub node: String,
    pub common: Common,
}

impl Config {
    pub fn from_args(common: Common) -> anyhow::Result<Config> {
        let layout = Layout::detect(&common.cgroup_root)?;
        let node = match &common.node_name {
            Some(n) if !n.trim().is_empty() => n.clone(),
            _ => rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned(),
        };
        if !common.ring_buffer_bytes.is_power_of_two() || common.ring_buffer_bytes < 4096 {
            anyhow::bail!(
                "--ring-buffer-bytes {} must be a power of two of at least 4096",
                common.ring_buffer_bytes
            );
        }
        Ok(Config {
            layout,
            node,
            common,
        })
    }
}

fn make_sink(format: Format, node: String) -> Box<dyn Sink> {
    let stdout = std::io::stdout().lock();
    match format {
        Format::Json => Box::new(JsonSink::new(stdout, node)),
        Format::Text => {
            let color = std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            Box::new(TextSink::new(stdout, color))
        }
    }
}

pub fn run(common: Common, format: Format, record: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let config = Config::from_args(common)?;
    let sink = make_sink(format, config.node.clone());
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

/// Containers already running: the pid namespace of one process of each
/// container cgroup, so their processes are known wherever they go.
fn running_containers(tree: &CgroupTree, live: &mut Live, host_pid_ns: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for (_, node) in tree.live() {
        if !pods::parse_cgroup_path(&node.path).is_some_and(|k| k.level == Level::Container) {
            continue;
        }
        let procs = live
            .sources
            .memory_root
            .join(node.path.trim_start_matches('/'))
            .join("cgroup.procs");
        let first = std::fs::read_to_string(procs)
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u32>().ok()));
        if let Some(ns) = first.and_then(|pid| live.namespaces(pid)) {
            if ns.pid_ns != host_pid_ns {
                out.push((ns.pid_ns, node.path.clone()));
            }
        }
    }
    out.sort();
    out
}

async fn pipeline(
    config: Config,
    mut sink: Box<dyn Sink>,
    record_to: Option<PathBuf>,
) -> anyhow::Result<()> {
    // Installed before anything is printed: a SIGTERM right after `ready`
    // must already mean a clean stop.
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    // Bound before the hooks load: a taken port fails the start, not after `ready`.
    let metrics_listener = match config.common.metrics_addr {
        Some(addr) => Some(crate::metrics::bind(addr).await?),
        None => None,
    };
    let mut loaded = loader::load(
        &config.common.btf,
        &config.common.hooks,
        config.common.ring_buffer_bytes,
    )?;
    loader::trim_heap();
    if let Some(victim) = loaded.choices.iter().find(|c| c.family == Family::Victim) {
        if victim.chosen.is_none() {
            let reasons: Vec<String> = victim
                .skipped
                .iter()
                .map(|s| format!("{}: {}", s.kind, s.reason))
                .collect();
            anyhow::bail!("no hook on oom:mark_victim could attach, so no kill can be seen ({}); `oomtrace doctor` says more", reasons.join("; "));
        }
    }
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
    let mut ring = unsafe { AsyncFd::register(ring) }
        .map_err(|e| anyhow::anyhow!("registering the ring buffer with tokio: {e}"))?;

    let mut live = Live {
        sources: Sources {
            memory_root: config.layout.memory_root.clone(),
            v2: config.layout.version == Version::V2,
            pods_log_dir: config.common.pods_log_dir.clone(),
            containers_log_dir: config.common.containers_log_dir.clone(),
            kubelet_config: config.common.kubelet_config.clone(),
        },
        recorded: None,
        charges: None,
    };
    let charge_hook = loaded
        .choices
        .iter()
        .any(|c| c.family == Family::Charge && c.chosen.is_some());
    if charge_hook {
        let map = loaded
            .ebpf
            .take_map("CHARGES")
            .context("CHARGES map missing")?;
        live.charges = Some(Box::new(ChargeReader {
            map: PerCpuHashMap::try_from(map)?,
            armed_ns: None,
        }));
    }
    let mut charge_link = None;
    let mut last_pressure_ns = 0u64;
    // Attached first, scanned second: a cgroup made in between arrives as
    // an event and simply overwrites its scanned entry.
    let tree = CgroupTree::scan(&config.layout)?;
    let host_pid_ns = live
        .namespaces(std::process::id())
        .map(|n| n.pid_ns)
        .unwrap_or(0);
    let start = Start {
        node: config.node.clone(),
        kernel: kernel_release(),
        layout: config.layout.clone(),
        cgroups: tree.entries(),
        page_size: rustix::param::page_size() as u64,
        boot_to_wall_ns: boot_to_wall_ns(),
        host_pid_ns,
        containers: running_containers(&tree, &mut live, host_pid_ns),
        leak_grace_ns: config.common.leak_grace.as_nanos().min(u64::MAX as u128) as u64,
        heartbeat_ns: config.common.heartbeat.as_nanos().min(u64::MAX as u128) as u64,
    };
    let mut recorder = match &record_to {
        Some(p) => Some(
            Recorder::create(p, &start)
                .with_context(|| format!("creating the recording {}", p.display()))?,
        ),
        None => None,
    };
    live.recorded = recorder.as_ref().map(|_| Vec::new());
    let cgroups = start.cgroups.len();
    let mut engine = Engine::new(start);

    let (kmsg_tx, mut kmsg_rx) = mpsc::channel::<kernel_log::Seen>(1024);
    let kmsg_state = match kernel_log::spawn_reader(kmsg_tx) {
        Ok(()) => "reading".to_string(),
        Err(e) => format!("unavailable: {e}"),
    };
    let status = |state| Status {
        state,
        version: env!("CARGO_PKG_VERSION"),
        kernel: kernel_release(),
        cgroup: CgroupStatus {
            version: config.layout.version,
            memory_root: config.layout.memory_root.display().to_string(),
            cgroups,
        },
        hooks: loaded.choices.clone(),
        kernel_log: kmsg_state.clone(),
    };
    sink.write(&Line::Status(status("ready")))?;

    let metrics = metrics_listener.map(|l| crate::metrics::Running::start(l, &status("ready")));
    if let Some(m) = &metrics {
        sink = m.wrap(sink);
    }

    let mut feed = |input: Input,
                    engine: &mut Engine,
                    live: &mut Live,
                    sink: &mut Box<dyn Sink>|
     -> anyhow::Result<()> {
        let records = engine.handle(input.clone(), live);
        if let Some(r) = recorder.as_mut() {
            let answers = live.recorded.replace(Vec::new()).unwrap_or_default();
            r.input(&input, answers).context("writing the recording")?;
        }
        for rec in records {
            sink.write(&rec)?;
        }
        Ok(())
    };

    // Kills while oomtrace was not running: in the kernel log after the
    // position the last run remembered (since boot on a first run), and the
    // kernel's own count of those the log no longer holds.
    let previous = state::load(&config.common.state_file)?;
    let mut memory = state::State {
        boot_id: state::boot_id(),
        kmsg_seq: None,
        oom_kill: state::vmstat_oom_kill(),
    };
    if config.common.backlog {
        match kernel_log::backlog(previous.as_ref().and_then(|s| s.kmsg_seq)) {
            Ok((kills, last)) => {
                memory.kmsg_seq = last;
                let missed = match (previous.as_ref().and_then(|s| s.oom_kill), memory.oom_kill) {
                    (Some(then), Some(now)) => {
                        now.saturating_sub(then).saturating_sub(kills.len() as u64)
                    }
                    _ => 0,
                };
                if !kills.is_empty() {
                    feed(Input::PastKills(kills), &mut engine, &mut live, &mut sink)?;
                }
                if missed > 0 {
                    feed(Input::Missed(missed), &mut engine, &mut live, &mut sink)?;
                }
            }
            Err(e) => tracing::warn!("reading the kernel log's backlog: {e}"),
        }
    } else if let Ok((_, last)) = kernel_log::backlog(Some(u64::MAX)) {
        memory.kmsg_seq = last;
    }
    state::save(&config.common.state_file, &memory)?;

    let mut drops_sent = [0u64; HOOK_COUNT as usize];
    let mut drops_tick = tokio::time::interval(Duration::from_secs(1));
    // The next tick's deadline, kept across turns of the loop: a sleep made
    // afresh each turn never fired while another branch kept the loop busy
    // (ring-buffer traffic, or just the 1 s drops interval, which always won
    // the race), so heartbeats, leak checks and disarming the charge counter
    // starved (cargo xtask bench, churn section).
    let mut next_tick = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        let tick = if engine.waiting() {
            Duration::from_millis(50)
        } else {
            Duration::from_secs(1)
        };
        // Victims waiting for the kernel log ask for a faster tick: at once.
        next_tick = next_tick.min(tokio::time::Instant::now() + tick);
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                let mut batch = Vec::new();
                {
                    let rb = guard.get_inner_mut();
                    while let Some(item) = rb.next() {
                        batch.push(item.to_vec());
                    }
                }
                guard.clear_ready();
                for bytes in batch {
                    // Pressure arms the charge counter before the engine
                    // sees it, so the growth that follows is counted.
                    if charge_hook && bytes.get(2..4) == Some(&(Kind::Pressure as u16).to_ne_bytes()[..]) {
                        last_pressure_ns = observe::boot_ns();
                        if charge_link.is_none() {
                            match probe::arm_charges(&mut loaded.ebpf) {
                                Ok(link) => {
                                    charge_link = Some(link);
                                    if let Some(c) = live.charges.as_mut() {
                                        c.arm(last_pressure_ns);
                                    }
                                }
                                Err(e) => tracing::warn!("arming the charge counter: {e}"),
                            }
                        }
                    }
                    feed(Input::Kernel(bytes), &mut engine, &mut live, &mut sink)?;
                }
            }
            Some(seen) = kmsg_rx.recv() => {
                memory.kmsg_seq = Some(seen.seq);
                memory.oom_kill = state::vmstat_oom_kill();
                if let Err(e) = state::save(&config.common.state_file, &memory) {
                    tracing::warn!("{e}");
                }
                if let Some(summary) = seen.summary {
                    feed(Input::Kmsg(summary), &mut engine, &mut live, &mut sink)?;
                }
            }
            _ = tokio::time::sleep_until(next_tick) => {
                next_tick = tokio::time::Instant::now() + tick;
                let now = observe::boot_ns();
                if charge_link.is_some() && now.saturating_sub(last_pressure_ns) > CHARGE_QUIET_NS {
                    if let Some(link) = charge_link.take() {
                        if let Err(e) = probe::disarm_charges(&mut loaded.ebpf, link) {
                            tracing::warn!("disarming the charge counter: {e}");
                        }
                    }
                    if let Some(c) = live.charges.as_mut() {
                        c.clear();
                    }
                }
                feed(Input::Tick(now), &mut engine, &mut live, &mut sink)?;
            }
            _ = drops_tick.tick() => {
                let mut totals = [0u64; HOOK_COUNT as usize];
                for hook in Hook::ALL {
                    totals[hook as usize] = drops.get(&(hook as u32), 0).map(|v| v.iter().sum()).unwrap_or(0);
                }
                if totals != drops_sent {
                    drops_sent = totals;
                    feed(Input::Drops(totals), &mut engine, &mut live, &mut sink)?;
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    memory.oom_kill = state::vmstat_oom_kill();
    if let Err(e) = state::save(&config.common.state_file, &memory) {
        tracing::warn!("{e}");
    }
    sink.write(&Line::Status(status("stopping")))?;
    if let Some(m) = metrics {
        m.stop().await;
    }
    if let Some(r) = recorder {
        r.end().context("finishing the recording")?;
    }
    Ok(())
}
