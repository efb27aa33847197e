//! `oomtrace run` / `tail`: the live pipeline. Ring buffer (tokio AsyncFd) →
//! decode → node model → attribution → names → sink. The kernel log is read
//! on a thread beside it; a verdict never waits for it unless the kernel
//! side could read nothing about the constraint.

use std::{
    collections::{HashMap, VecDeque},
    io::IsTerminal,
    time::Duration,
};

use anyhow::Context as _;
use aya::maps::{PerCpuArray, RingBuf};
use oomtrace_common::{Hook, VictimEvent};
use tokio::{io::unix::AsyncFd, sync::mpsc};

use crate::{
    attribution::{self, Attributor, Hints, Snapshot},
    cgroup::{CgroupTree, Layout},
    cli::{Common, Format},
    event::{self, Event},
    kernel_log,
    kmsg::OomSummary,
    loader,
    names::Names,
    probe::Family,
    sink::{json::JsonSink, text::TextSink, CgroupStatus, Lost, Record, Sink, Status},
};

/// How long a victim with no kernel-side constraint data waits for the
/// kernel log's summary line before it is attributed without it.
const KMSG_WAIT: Duration = Duration::from_millis(300);

/// Flags validated into what the daemon runs with.
pub struct Config {
    pub layout: Layout,
    pub node: String,
    pub names: Names,
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
        let names = Names::new(
            common.pods_log_dir.clone(),
            common.containers_log_dir.clone(),
        );
        Ok(Config {
            layout,
            node,
            names,
            common,
        })
    }
}

pub fn run(common: Common, format: Format) -> anyhow::Result<std::process::ExitCode> {
    let config = Config::from_args(common)?;
    let stdout = std::io::stdout().lock();
    let sink: Box<dyn Sink> = match format {
        Format::Json => Box::new(JsonSink::new(stdout, config.node.clone())),
        Format::Text => {
            let color = std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            Box::new(TextSink::new(stdout, color))
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(pipeline(config, sink))?;
    Ok(std::process::ExitCode::SUCCESS)
}

pub fn kernel_release() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}

pub fn boot_to_wall_ns() -> i128 {
    let wall = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    let boot = rustix::time::clock_gettime_dynamic(rustix::time::DynamicClockId::Boottime)
        .unwrap_or_else(|_| rustix::time::clock_gettime(rustix::time::ClockId::Monotonic));
    let ns = |t: rustix::time::Timespec| t.tv_sec as i128 * 1_000_000_000 + t.tv_nsec as i128;
    ns(wall) - ns(boot)
}

async fn pipeline(config: Config, mut sink: Box<dyn Sink>) -> anyhow::Result<()> {
    let mut loaded = loader::load(
        &config.common.btf,
        &config.common.hooks,
        config.common.ring_buffer_bytes,
    )?;
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
    // SAFETY: the ring buffer owns its fd and outlives the registration (both
    // live in this function and the AsyncFd owns the map).
    let mut ring = unsafe { AsyncFd::register(ring) }
        .map_err(|e| anyhow::anyhow!("registering the ring buffer with tokio: {e}"))?;

    // Attached first, scanned second: a cgroup made in between arrives as
    // an event and simply overwrites its scanned entry.
    let mut tree = CgroupTree::scan(&config.layout)?;
    let (kmsg_tx, mut kmsg_rx) = mpsc::channel::<OomSummary>(1024);
    let kmsg_state = match kernel_log::spawn_reader(kmsg_tx) {
        Ok(()) => "reading".to_string(),
        Err(e) => format!("unavailable: {e}"),
    };
    sink.write(&Record::Status(Status {
        state: "ready",
        version: env!("CARGO_PKG_VERSION"),
        kernel: kernel_release(),
        cgroup: CgroupStatus {
            version: config.layout.version,
            memory_root: config.layout.memory_root.display().to_string(),
            cgroups: tree.len(),
        },
        hooks: loaded.choices.clone(),
        kernel_log: kmsg_state,
    }))?;

    let page_size = rustix::param::page_size() as u64;
    let boot_to_wall = boot_to_wall_ns();
    let mut attributor = Attributor::default();
    let mut kmsg_facts: HashMap<u32, OomSummary> = HashMap::new();
    let mut waiting: VecDeque<(tokio::time::Instant, VictimEvent, Option<String>)> =
        VecDeque::new();
    let mut lost_seen = [0u64; Hook::ALL.len()];
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut drops_tick = tokio::time::interval(Duration::from_secs(1));
    let mut shutdown = std::pin::pin!(shutdown_signal());

    loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                let rb = guard.get_inner_mut();
                while let Some(item) = rb.next() {
                    let ev = match event::decode(&item) {
                        Ok(ev) => ev,
                        Err(e) => { tracing::warn!("dropping a ring-buffer record: {e}"); continue; }
                    };
                    match ev {
                        Event::Oom(o) => attributor.on_oom(&o),
                        Event::Victim(v) => {
                            let hint = victim_hint(&v, &tree);
                            let blind = v.victim.memcg_depth == 0 && v.trigger.memcg_depth == 0;
                            if blind && !kmsg_facts.contains_key(&v.victim.tgid) {
                                waiting.push_back((tokio::time::Instant::now() + KMSG_WAIT, v, hint));
                            } else {
                                let snap = Snapshot { tree: &tree, page_size, boot_to_wall_ns: boot_to_wall, kmsg: &kmsg_facts };
                                emit(&mut *sink, &config, attributor.on_victim(&v, &snap, &Hints { victim_cgroup: hint.as_deref() }))?;
                            }
                        }
                        other => tree.apply(&other),
                    }
                }
                guard.clear_ready();
            }
            Some(summary) = kmsg_rx.recv() => {
                kmsg_facts.insert(summary.pid, summary);
                if kmsg_facts.len() > 4096 {
                    kmsg_facts.clear();
                }
            }
            _ = tick.tick(), if !waiting.is_empty() => {}
            _ = drops_tick.tick() => {
                for hook in Hook::ALL {
                    let total: u64 = drops.get(&(hook as u32), 0).map(|v| v.iter().sum()).unwrap_or(0);
                    let seen = &mut lost_seen[hook as usize];
                    if total > *seen {
                        sink.write(&Record::Lost(Lost { hook: hook.name(), count: total - *seen, total }))?;
                        *seen = total;
                    }
                }
            }
            _ = &mut shutdown => break,
        }
        // Victims that waited for the kernel log: attribute those whose line
        // came or whose time is up, in arrival order.
        while let Some((deadline, v, _)) = waiting.front() {
            if !kmsg_facts.contains_key(&v.victim.tgid) && tokio::time::Instant::now() < *deadline {
                break;
            }
            let Some((_, v, hint)) = waiting.pop_front() else {
                break;
            };
            let snap = Snapshot {
                tree: &tree,
                page_size,
                boot_to_wall_ns: boot_to_wall,
                kmsg: &kmsg_facts,
            };
            emit(
                &mut *sink,
                &config,
                attributor.on_victim(
                    &v,
                    &snap,
                    &Hints {
                        victim_cgroup: hint.as_deref(),
                    },
                ),
            )?;
        }
    }
    Ok(())
}

/// The victim's cgroup when the hook could not read it: /proc while the
/// dying process is still there, else the last attach the tree saw.
fn victim_hint(v: &VictimEvent, tree: &CgroupTree) -> Option<String> {
    if v.victim.memcg_depth > 0 {
        return None;
    }
    let pid = v.victim.tgid as i32;
    let from_proc = procfs::process::Process::new(pid)
        .ok()
        .and_then(|p| p.cgroups().ok())
        .and_then(|groups| {
            groups
                .0
                .into_iter()
                .find(|g| {
                    g.controllers.iter().any(|c| c == "memory")
                        || (g.hierarchy == 0 && g.controllers.is_empty())
                })
                .map(|g| g.pathname)
        });
    from_proc.or_else(|| {
        tree.cgroup_of_pid(v.victim.tgid)
            .and_then(|id| tree.path(id).map(str::to_owned))
    })
}

fn emit(
    sink: &mut dyn Sink,
    config: &Config,
    mut verdict: crate::verdict::Verdict,
) -> anyhow::Result<()> {
    config.names.fill(&mut verdict);
    verdict.summary = attribution::summary(&verdict);
    sink.write(&Record::Verdict(Box::new(verdict)))?;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without handlers the default action still ends the process.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
