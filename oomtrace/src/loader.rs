//! Everything between the built eBPF object and attached hooks: tracefs
//! (mounted when missing), kernel BTF, load-time globals, the probe table.
//! Shared by `run` and `doctor`, so doctor reports exactly what run would do.

use std::path::{Path, PathBuf};

use aya::{Ebpf, EbpfLoader};
use serde::Serialize;

use oomtrace_core::{
    kernel::btf::{Btf as KernelBtf, BtfError},
    kernel::hooks::{self, Choice, Fields, Format, HookRequests, Need, Offers},
    kernel::offsets,
    kernel::tracefs,
};

use crate::probe;

pub(crate) static OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/oomtrace-ebpf"));

/// Why the eBPF object did not load: nothing runs without it. (A hook that
/// does not attach is no error: its family's next row is tried, see
/// [`probe::ProbeError`].) The cause is part of the message, as aya's
/// sources joined by [`probe::chain`].
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("this oomtrace was built with AYA_BUILD_SKIP=1 and holds no eBPF object; build it with `cargo xtask build`")]
    NoObject,
    #[error(
        "loading the eBPF object (are you root, with CAP_BPF and CAP_PERFMON?): {}",
        probe::chain(.0)
    )]
    Object(aya::EbpfError),
}

/// Why there is no tracefs: the rows that read tracepoints' formats or
/// attach to tracepoints are skipped.
#[derive(Debug, thiserror::Error)]
#[error("tracefs is not mounted and mounting it at {} failed: {error} (mount it: mount -t tracefs nodev {})", target.display(), target.display())]
pub struct NoTracefs {
    target: PathBuf,
    error: rustix::io::Errno,
}

/// Why the kernel's BTF serves no row that needs it.
#[derive(Debug, thiserror::Error)]
pub enum BtfProblem {
    #[error("no usable kernel BTF: {0}")]
    Unusable(BtfError),
    #[error("BTF of this kernel lacks what oomtrace reads: {0}")]
    Lacking(BtfError),
}

/// Why a tracepoint's format files give no field offsets.
#[derive(Debug, thiserror::Error)]
pub enum FormatProblem {
    #[error("{0}")]
    Format(#[from] tracefs::FormatError),
    #[error("no memcg charge tracepoint ({0}); growth comes from the page counters read at pressure and at the kill")]
    NoChargeTracepoint(String),
}

/// What the node offered, kept for `doctor` and the status line.
#[derive(Clone, Debug, Serialize)]
pub struct Facts {
    pub tracefs: Result<String, String>,
    /// Whether oomtrace mounted tracefs itself.
    pub tracefs_mounted_by_us: bool,
    pub btf: Result<String, String>,
    pub kprobes: bool,
}

pub struct Loaded {
    pub ebpf: Ebpf,
    pub choices: Vec<Choice>,
    pub facts: Facts,
    /// The kernel programs' diagnostics (aya-log: reads that failed),
    /// forwarded to `tracing` at debug level when polled (`flush` when its
    /// fd is readable). Keep it alive as long as `ebpf`: dropping it closes
    /// the log map, and programs loaded later (the charge counter) fail.
    pub bpf_log: Option<KernelLog>,
}

pub type KernelLog = aya_log::EbpfLogger<&'static dyn log::Log>;

/// Hands the heap freed by start-up back to the kernel. Loading parses the
/// kernel's BTF three times, one after the other (ours for offsets,
/// `EbpfLoader::new`'s, aya's for the BTF programs): tens of MiB, freed when
/// `load` returns, which glibc would otherwise keep
/// mapped for good (measured: 39 MiB RSS steady without this, 15 with).
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `memory_hierarchy`: the memory controller's hierarchy id (v2: 0), the
/// only hierarchy whose moves the attach programs then pass on; None passes
/// every hierarchy's.
/// The process's peak resident memory so far (VmHWM), for the debug log
/// of start-up's steps: the peak is start-up's, and this says which step.
pub fn log_peak(step: &str) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| "?".into())
    };
    tracing::debug!(
        "memory after {step}: peak {}, resident {}",
        field("VmHWM:"),
        field("VmRSS:")
    );
}

pub fn load(
    btf_path: &Path,
    requests: &HookRequests,
    ring_buffer_bytes: u32,
    memory_hierarchy: Option<u32>,
) -> Result<Loaded, LoadError> {
    if OBJECT.is_empty() {
        return Err(LoadError::NoObject);
    }
    raise_memlock();
    let (tracefs_dir, tracefs_mounted_by_us) = match ensure_tracefs() {
        Ok((p, m)) => (Ok(p), m),
        Err(e) => (Err(e.to_string()), false),
    };
    log_peak("tracefs");
    let (kernel_btf, unusable) = match KernelBtf::from_file(btf_path) {
        Ok(b) => (Some(b), None),
        Err(e) => (None, Some(BtfProblem::Unusable(e))),
    };
    log_peak("oomtrace's BTF parse");
    let mut globals: Vec<offsets::Global> = Vec::new();
    let mut offers = Offers {
        tracefs_problem: tracefs_dir.as_ref().err().cloned(),
        ..Offers::default()
    };
    // The format files of every row that reads a tracepoint's record: their
    // field offsets are globals of the whole object.
    if let Ok(dir) = &tracefs_dir {
        for need in hooks::needs() {
            if let Need::TracefsFormat(format) = need {
                match tracefs_fields(format, Path::new(dir), kernel_btf.as_ref()) {
                    Ok(g) => globals.extend(g),
                    Err(e) => {
                        offers.format_problem.insert(format, e.to_string());
                    }
                }
            }
        }
    }

    let btf_problem = match &kernel_btf {
        Some(b) => match offsets::from_btf(b) {
            Ok(g) => {
                globals.extend(g);
                // Moves' records carry their task, and then wake the daemon
                // only once a quarter of the ring waits: it reads them at
                // its next wake-up or tick (a wake-up is most of a move's
                // cost: cargo xtask bench, overhead).
                match offsets::attach_task(b) {
                    Ok(g) => {
                        globals.extend(g);
                        globals.push(("LAZY_WAKE_BYTES", ring_buffer_bytes / 4));
                    }
                    Err(e) => tracing::debug!("moves wake the daemon: {e}"),
                }
                None
            }
            Err(e) => Some(BtfProblem::Lacking(e)),
        },
        None => unusable,
    };
    offers.btf_problem = btf_problem.map(|p| p.to_string());
    // The offsets only one family reads: their absence costs that family.
    if let (Some(b), None) = (&kernel_btf, &offers.btf_problem) {
        for need in hooks::needs() {
            if let Need::BtfFields(fields) = need {
                match btf_fields(fields, b) {
                    Ok(g) => globals.extend(g),
                    Err(e) => {
                        offers
                            .fields_problem
                            .insert(fields, BtfProblem::Lacking(e).to_string());
                    }
                }
            }
        }
    }
    // The BTF/raw programs read tracepoint arguments by position: check the
    // running kernel's prototypes say what they expect.
    if let Some(b) = &kernel_btf {
        for need in hooks::needs() {
            if let Need::BtfPrototype(p) = need {
                let problem = match b.tracepoint_args(p.tracepoint) {
                    Ok(args) => p.mismatch(&args),
                    Err(e) => Some(format!("no BTF prototype for {}: {e}", p.tracepoint)),
                };
                if let Some(problem) = problem {
                    offers.prototype_problem.insert(p, problem);
                }
            }
        }
    }
    // Start-up's peak memory is the parsed BTFs (several times the file
    // each): ours goes before aya's, and aya's two never coexist.
    drop(kernel_btf);
    log_peak("oomtrace's BTF queries");

    // `EbpfLoader::new` parses the kernel's BTF for CO-RE relocations, which
    // Rust programs do not have (no `preserve_access_index`): dropped at once.
    let mut loader = EbpfLoader::new();
    loader.btf(None);
    loader.map_max_entries("EVENTS", ring_buffer_bytes);
    let memory_hierarchy = memory_hierarchy.unwrap_or(u32::MAX);
    loader.override_global("MEMORY_HIERARCHY", &memory_hierarchy, true);
    for (name, value) in &globals {
        loader.override_global(name, value, true);
    }
    // aya-log's level in the kernel: its lines are written only when they
    // would be shown (`OOMTRACE_LOG`/`RUST_LOG=oomtrace=debug`).
    let kernel_debug = tracing::enabled!(target: "oomtrace_ebpf", tracing::Level::DEBUG);
    // 4: aya_log_common::Level::Debug; 0: off.
    let kernel_log_level: u8 = if kernel_debug { 4 } else { 0 };
    loader.override_global("AYA_LOG_LEVEL", &kernel_log_level, false);
    let mut ebpf = loader.load(OBJECT).map_err(LoadError::Object)?;
    drop(loader);
    log_peak("the object's load");
    let bpf_log = aya_log::EbpfLogger::init(&mut ebpf)
        .inspect_err(|e| tracing::debug!("no kernel-side log: {e}"))
        .ok();

    // The BTF programs' attach targets are found by name in aya's own parse.
    let aya_btf = if offers.btf_problem.is_none() {
        aya::Btf::parse_file(btf_path, aya::Endianness::Little).ok()
    } else {
        None
    };
    log_peak("aya's BTF parse");
    offers.kprobes = has_kprobes(tracefs_dir.as_ref().ok().map(PathBuf::from).as_deref());
    let env = probe::Env {
        btf: aya_btf.as_ref(),
        offers,
    };
    let choices = probe::attach_all(&mut ebpf, requests, &env);
    log_peak("attaching");
    if pod_moves_suffice(&choices) {
        if let Err(e) = keep_pod_moves_only(&mut ebpf) {
            tracing::warn!("every process move of the memory hierarchy stays passed on: {e}");
        }
    }
    let facts = Facts {
        tracefs: tracefs_dir,
        tracefs_mounted_by_us,
        btf: match env.offers.btf_problem {
            None => Ok(btf_path.display().to_string()),
            Some(p) => Err(p),
        },
        kprobes: env.offers.kprobes,
    };
    Ok(Loaded {
        ebpf,
        choices,
        facts,
        bpf_log,
    })
}

/// Whether the daemon can do without host processes' moves that concern no
/// pod: a process's last move is its cgroup only where a record lacks the
/// task's memory cgroup (a victim hook reading only the pid, the classic
/// signal tracepoint, kernel-log mode's kill lines without a report).
fn pod_moves_suffice(choices: &[Choice]) -> bool {
    let chosen = |f: hooks::Family| {
        choices
            .iter()
            .find(|c| c.family == f)
            .and_then(|c| c.chosen)
    };
    use hooks::HookKind::{Fentry, Kprobe, RawTp, TpBtf};
    matches!(
        chosen(hooks::Family::Victim),
        Some(TpBtf | RawTp | Fentry | Kprobe)
    ) && matches!(chosen(hooks::Family::Signal), None | Some(TpBtf))
}

/// Tells the attach program (`ATTACH_MOVES`) to pass on only the moves
/// that may concern a pod.
fn keep_pod_moves_only(ebpf: &mut Ebpf) -> Result<(), aya::maps::MapError> {
    let map = ebpf
        .map_mut("ATTACH_MOVES")
        .ok_or_else(|| aya::maps::MapError::InvalidName {
            name: "ATTACH_MOVES".into(),
        })?;
    let mut moves: aya::maps::Array<_, u32> = aya::maps::Array::try_from(map)?;
    moves.set(0, 1, 0)
}

/// The globals read from one set of tracefs `format` files (a
/// [`Need::TracefsFormat`] of the probe table), or why they cannot be.
fn tracefs_fields(
    format: Format,
    tracefs: &Path,
    btf: Option<&KernelBtf>,
) -> Result<Vec<offsets::Global>, FormatProblem> {
    Ok(match format {
        Format::MarkVictim => offsets::mark_victim(tracefs)?,
        Format::Cgroup => offsets::cgroup(tracefs)?,
        Format::Signal => offsets::signal(tracefs)?,
        Format::MemcgCharge => {
            offsets::memcg_charge(tracefs, btf).map_err(FormatProblem::NoChargeTracepoint)?
        }
    })
}

/// The globals of one family's own struct offsets (a [`Need::BtfFields`]
/// of the probe table).
fn btf_fields(fields: Fields, btf: &KernelBtf) -> Result<Vec<offsets::Global>, BtfError> {
    match fields {
        Fields::LimitWrite => offsets::limit_write(btf),
    }
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK (later ones to the
/// memory cgroup), and containers often inherit a small limit: lift it as
/// far as this process may (unlimited with CAP_SYS_RESOURCE, else up to the
/// hard limit). A failure only matters on those kernels, where the load
/// then fails with its own error.
fn raise_memlock() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let unlimited = Rlimit {
        current: None,
        maximum: None,
    };
    if setrlimit(Resource::Memlock, unlimited).is_ok() {
        return;
    }
    let hard = getrlimit(Resource::Memlock).maximum;
    if let Err(e) = setrlimit(
        Resource::Memlock,
        Rlimit {
            current: hard,
            maximum: hard,
        },
    ) {
        tracing::debug!("raising RLIMIT_MEMLOCK: {e}");
    }
}

/// The tracefs mount, mounting it at /sys/kernel/tracing when the node has
/// none (the host here boots without it).
fn ensure_tracefs() -> Result<(String, bool), NoTracefs> {
    if let Some(p) = tracefs::find_tracefs() {
        return Ok((p.display().to_string(), false));
    }
    let target = Path::new("/sys/kernel/tracing");
    rustix::mount::mount(
        "nodev",
        target,
        "tracefs",
        rustix::mount::MountFlags::empty(),
        None,
    )
    .map_err(|error| NoTracefs {
        target: target.to_path_buf(),
        error,
    })?;
    Ok((target.display().to_string(), true))
}

fn has_kprobes(tracefs: Option<&Path>) -> bool {
    Path::new("/sys/bus/event_source/devices/kprobe").exists()
        || tracefs.is_some_and(|t| t.join("kprobe_events").exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choices(victim: Option<hooks::HookKind>, signal: Option<hooks::HookKind>) -> Vec<Choice> {
        [
            (hooks::Family::Victim, victim),
            (hooks::Family::Signal, signal),
            (hooks::Family::Cgroup, Some(hooks::HookKind::TpBtf)),
        ]
        .into_iter()
        .map(|(family, chosen)| Choice {
            family,
            chosen,
            skipped: Vec::new(),
        })
        .collect()
    }

    /// Host processes' moves are dropped in the kernel only when every
    /// record that names a process carries its memory cgroup.
    #[test]
    fn host_moves_are_dropped_only_when_no_hook_needs_them() {
        use hooks::HookKind::{Fentry, Kprobe, RawTp, TpBtf, Tracepoint};
        assert!(pod_moves_suffice(&choices(Some(TpBtf), Some(TpBtf))));
        assert!(pod_moves_suffice(&choices(Some(RawTp), None)));
        // mark_oom_victim's rows read the victim's task, memcg included.
        assert!(pod_moves_suffice(&choices(Some(Fentry), Some(TpBtf))));
        assert!(pod_moves_suffice(&choices(Some(Kprobe), Some(TpBtf))));
        // The classic victim tracepoint gives the pid only.
        assert!(!pod_moves_suffice(&choices(Some(Tracepoint), Some(TpBtf))));
        // Kernel-log mode: a kill line without its report is named by the move.
        assert!(!pod_moves_suffice(&choices(None, Some(TpBtf))));
        // The classic signal tracepoint has no target cgroup.
        assert!(!pod_moves_suffice(&choices(Some(TpBtf), Some(Tracepoint))));
    }

    /// Doctor shows these as they read: what failed, why, and the fix.
    #[test]
    fn problems_read_as_doctor_shows_them() {
        let e = NoTracefs {
            target: PathBuf::from("/sys/kernel/tracing"),
            error: rustix::io::Errno::PERM,
        };
        let text = e.to_string();
        assert!(
            text.starts_with(
                "tracefs is not mounted and mounting it at /sys/kernel/tracing failed: "
            ) && text.ends_with("(mount it: mount -t tracefs nodev /sys/kernel/tracing)"),
            "{text}"
        );
        let p = FormatProblem::NoChargeTracepoint("no mm_memcg_charge".into());
        assert_eq!(p.to_string(), "no memcg charge tracepoint (no mm_memcg_charge); growth comes from the page counters read at pressure and at the kill");
        let row = probe::ProbeError::Row {
            program: "oom_fentry",
            error: Box::new(probe::ProbeError::NoBtf),
        };
        assert_eq!(row.to_string(), "oom_fentry: no kernel BTF");
    }
}
