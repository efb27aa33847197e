//! The hook families, the probe table ([`PROBES`]: one row per way to hook
//! a family, best first, with what each needs from the kernel), what the
//! user asked for with `--hooks`, and the walk that picks one row per family
//! ([`choose`]). The attach calls are in the daemon's `probe`, the checks of
//! the needs in its `loader`; both read them from here.

use std::{collections::BTreeMap, fmt, str::FromStr};

use oomtrace_common::{programs, Hook};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Per OOM invocation: `oom_kill_process`.
    Oom,
    /// Per killed process: `oom:mark_victim`.
    Victim,
    Cgroup,
    Signal,
    /// A memory cgroup entering reclaim (`vmscan:mm_vmscan_memcg_reclaim_begin`).
    Pressure,
    /// Per-cgroup charge counters (`memcg:mod_memcg_lruvec_state`): loaded at
    /// start, attached only while some cgroup is under pressure. Off unless
    /// asked for (see [`Family::off_by_default`]).
    Charge,
}

impl Family {
    pub const ALL: [Family; 6] = [
        Family::Oom,
        Family::Victim,
        Family::Cgroup,
        Family::Signal,
        Family::Pressure,
        Family::Charge,
    ];

    /// The family's name (`--hooks`, `doctor`, `lost` lines): its drop
    /// slot's, so the two never differ.
    pub fn name(self) -> &'static str {
        match self.drops() {
            Some(slot) => slot.name(),
            None => "charge",
        }
    }

    /// Whether the family sees every killed process. Without it the
    /// daemon runs in kernel-log mode: the kernel's OOM report lines on
    /// /dev/kmsg are then the only source of kills (`basis: kernel_log`).
    pub fn sees_kills(self) -> bool {
        matches!(self, Family::Victim)
    }

    /// Why a family stays off unless `--hooks` asks for it. The charge
    /// tracepoint fires several times per page fault on every cgroup of the
    /// node, and some container is under memcg pressure on most busy nodes,
    /// so "armed only under pressure" is often "armed": measured 20 % of a
    /// page-fault storm's CPU on this machine (BENCHMARKS.md). The page
    /// counters read at pressure and at the kill give the growth without it.
    pub fn off_by_default(self) -> Option<&'static str> {
        match self {
            Family::Charge => Some(
                "off by default: while armed it costs every page charge on the node \
                 (BENCHMARKS.md); growth comes from the page counters read at pressure and \
                 at the kill; --hooks charge=tracepoint turns it on",
            ),
            _ => None,
        }
    }

    /// The family's slot in the kernel's `DROPS` map (ring-buffer
    /// reservation failures, reported as `lost` lines named after the
    /// slot): every family that sends records has one. The charge counter
    /// only updates a map.
    pub fn drops(self) -> Option<Hook> {
        match self {
            Family::Oom => Some(Hook::Oom),
            Family::Victim => Some(Hook::Victim),
            Family::Cgroup => Some(Hook::Cgroup),
            Family::Signal => Some(Hook::Signal),
            Family::Pressure => Some(Hook::Pressure),
            Family::Charge => None,
        }
    }

    /// The family counting its losses in `DROPS` slot `hook`.
    pub fn of_drops(hook: Hook) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.drops() == Some(hook))
    }

    /// The family's rows of [`PROBES`], best first.
    pub fn probes(self) -> impl Iterator<Item = &'static Probe> + Clone {
        PROBES.iter().filter(move |p| p.family == self)
    }

    /// The hook kinds the family can take, best first.
    pub fn candidates(self) -> impl Iterator<Item = HookKind> + Clone {
        self.probes().map(|p| p.kind)
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HookKind {
    Fentry,
    Kprobe,
    TpBtf,
    RawTp,
    Tracepoint,
}

impl HookKind {
    pub fn name(self) -> &'static str {
        match self {
            HookKind::Fentry => "fentry",
            HookKind::Kprobe => "kprobe",
            HookKind::TpBtf => "tp_btf",
            HookKind::RawTp => "raw_tp",
            HookKind::Tracepoint => "tracepoint",
        }
    }
}

impl fmt::Display for HookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One way to hook one family: a row of [`PROBES`].
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    pub family: Family,
    pub kind: HookKind,
    /// Loaded and attached together: a family is all or nothing.
    pub programs: &'static [ProgramSpec],
    /// Checked in this order before anything loads; the first one the node
    /// does not meet is why the row is skipped.
    pub needs: &'static [Need],
    pub arming: Arming,
    /// Whether the row reports all its family's first row does, from
    /// another hook point (the victim's task read at `mark_oom_victim`, the
    /// function that emits `mark_victim`): chosen, it is no degradation.
    pub as_good_as_best: bool,
}

impl Probe {
    /// Where the row hooks, for `doctor` (e.g. "function mark_oom_victim",
    /// "tracepoint mark_victim"): kinds alone do not say which function.
    pub fn hooked(&self) -> String {
        let names: Vec<&str> = self.programs.iter().map(|s| s.target.name()).collect();
        let what = match self.programs.first().map(|s| s.target) {
            Some(Target::Fentry(_) | Target::Kprobe(_)) => "function",
            _ => "tracepoint",
        };
        let plural = if names.len() > 1 { "s" } else { "" };
        format!("{what}{plural} {}", names.join(", "))
    }
}

/// One eBPF program of a row and where it attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramSpec {
    /// Its symbol in the object (`oomtrace_common::programs`).
    pub name: &'static str,
    pub target: Target,
}

/// Where a program attaches; the variant is its program type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// fentry on a kernel function (a BPF trampoline, through ftrace).
    Fentry(&'static str),
    /// kprobe on a kernel function.
    Kprobe(&'static str),
    /// tp_btf: a tracepoint's arguments, typed by its BTF prototype.
    BtfTracepoint(&'static str),
    /// raw_tp: a tracepoint's arguments, untyped.
    RawTracepoint(&'static str),
    /// A classic tracepoint: its record, laid out as its tracefs `format` says.
    Tracepoint {
        category: &'static str,
        name: &'static str,
    },
}

impl Target {
    /// The kernel function or tracepoint it attaches to.
    pub fn name(self) -> &'static str {
        match self {
            Target::Fentry(f) | Target::Kprobe(f) => f,
            Target::BtfTracepoint(t) | Target::RawTracepoint(t) => t,
            Target::Tracepoint { name, .. } => name,
        }
    }

    /// The hook kind a program of this type is.
    pub fn kind(self) -> HookKind {
        match self {
            Target::Fentry(_) => HookKind::Fentry,
            Target::Kprobe(_) => HookKind::Kprobe,
            Target::BtfTracepoint(_) => HookKind::TpBtf,
            Target::RawTracepoint(_) => HookKind::RawTp,
            Target::Tracepoint { .. } => HookKind::Tracepoint,
        }
    }
}

/// What a row needs from the node besides loading and attaching.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    /// Kernel BTF with every struct offset the programs read
    /// (`offsets::from_btf`).
    Btf,
    /// The tracepoint's BTF prototype has the argument the program reads
    /// by position (older kernels had `mark_victim(int pid)`).
    BtfPrototype(Prototype),
    /// Kprobes in the kernel (CONFIG_KPROBES).
    Kprobes,
    /// tracefs mounted: classic tracepoints attach by their tracefs id.
    Tracefs,
    /// tracefs mounted and the `format` files the program's record
    /// offsets come from parsed.
    TracefsFormat(Format),
}

/// A tracepoint argument a tp_btf/raw_tp program reads by position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Prototype {
    /// The tracepoint (BTF type `btf_trace_<tracepoint>`).
    pub tracepoint: &'static str,
    /// The argument's position, the tracepoint's own arguments counted
    /// from 0.
    pub index: usize,
    /// Its type as `Btf::tracepoint_args` spells it.
    pub ty: &'static str,
}

impl Prototype {
    /// Why the running kernel's arguments (from its BTF) are not what the
    /// program reads; `None` when they are.
    pub fn mismatch(&self, args: &[String]) -> Option<String> {
        if args.get(self.index).map(String::as_str) == Some(self.ty) {
            return None;
        }
        Some(format!(
            "{tp}'s arguments here are ({}), not a {want} at position {index}",
            args.join(", "),
            tp = self.tracepoint,
            want = self.ty,
            index = self.index,
        ))
    }
}

/// A set of tracefs `format` files and the globals read from them, one per
/// function of `offsets` (the loader maps each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Format {
    /// `oom:mark_victim` (`offsets::mark_victim`).
    MarkVictim,
    /// `cgroup:cgroup_mkdir` and `cgroup:cgroup_attach_task` (`offsets::cgroup`).
    Cgroup,
    /// `signal:signal_generate` (`offsets::signal`).
    Signal,
    /// `memcg:mod_memcg_lruvec_state` and the `node_stat_item` values from
    /// BTF (`offsets::memcg_charge`).
    MemcgCharge,
}

/// When a chosen row's programs attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arming {
    /// At start, for as long as the daemon runs.
    AtStart,
    /// Loaded at start; attached only while some cgroup is under pressure
    /// (the daemon arms and disarms it).
    UnderPressure,
}

const MARK_VICTIM_TASK: Need = Need::BtfPrototype(Prototype {
    tracepoint: "mark_victim",
    index: 0,
    ty: "task_struct *",
});
const CGROUP_EVENT_CGROUP: Need = Need::BtfPrototype(Prototype {
    tracepoint: "cgroup_mkdir",
    index: 0,
    ty: "cgroup *",
});
const CGROUP_ATTACH_TASK: Need = Need::BtfPrototype(Prototype {
    tracepoint: "cgroup_attach_task",
    index: 2,
    ty: "task_struct *",
});
const SIGNAL_TARGET_TASK: Need = Need::BtfPrototype(Prototype {
    tracepoint: "signal_generate",
    index: 2,
    ty: "task_struct *",
});

/// The probe table: every way oomtrace can hook each family, best first
/// within a family. Candidates, `--hooks` kinds, the checks before loading,
/// the attach calls and the names in status lines all come from here.
/// Adding a row takes the row, its program in `oomtrace-ebpf` and its name
/// in `oomtrace_common::programs`; the daemon's tests check the built
/// object against this table.
pub static PROBES: &[Probe] = &[
    Probe {
        family: Family::Oom,
        kind: HookKind::Fentry,
        programs: &[ProgramSpec {
            name: programs::OOM_FENTRY,
            target: Target::Fentry("oom_kill_process"),
        }],
        needs: &[Need::Btf],
        arming: Arming::AtStart,
        as_good_as_best: true,
    },
    Probe {
        family: Family::Oom,
        kind: HookKind::Kprobe,
        programs: &[ProgramSpec {
            name: programs::OOM_KPROBE,
            target: Target::Kprobe("oom_kill_process"),
        }],
        needs: &[Need::Btf, Need::Kprobes],
        arming: Arming::AtStart,
        as_good_as_best: false,
    },
    Probe {
        family: Family::Victim,
        kind: HookKind::TpBtf,
        programs: &[ProgramSpec {
            name: programs::VICTIM_TP_BTF,
            target: Target::BtfTracepoint("mark_victim"),
        }],
        needs: &[MARK_VICTIM_TASK, Need::Btf],
        arming: Arming::AtStart,
        as_good_as_best: true,
    },
    Probe {
        family: Family::Victim,
        kind: HookKind::RawTp,
        programs: &[ProgramSpec {
            name: programs::VICTIM_RAW_TP,
            target: Target::RawTracepoint("mark_victim"),
        }],
        needs: &[MARK_VICTIM_TASK, Need::Btf],
        arming: Arming::AtStart,
        as_good_as_best: true,
    },
    // Kernels whose mark_victim carries only the pid (before 6.9, unless
    // backported): the function that emits it, with the task.
    Probe {
        family: Family::Victim,
        kind: HookKind::Fentry,
        programs: &[ProgramSpec {
            name: programs::VICTIM_FENTRY,
            target: Target::Fentry("mark_oom_victim"),
        }],
        needs: &[Need::Btf],
        arming: Arming::AtStart,
        as_good_as_best: true,
    },
    Probe {
        family: Family::Victim,
        kind: HookKind::Kprobe,
        programs: &[ProgramSpec {
            name: programs::VICTIM_KPROBE,
            target: Target::Kprobe("mark_oom_victim"),
        }],
        needs: &[Need::Btf, Need::Kprobes],
        arming: Arming::AtStart,
        as_good_as_best: true,
    },
    // Last: the record alone (only the pid before 6.9; the kernel's report
    // names the rest).
    Probe {
        family: Family::Victim,
        kind: HookKind::Tracepoint,
        programs: &[ProgramSpec {
            name: programs::VICTIM_TP,
            target: Target::Tracepoint {
                category: "oom",
                name: "mark_victim",
            },
        }],
        needs: &[Need::TracefsFormat(Format::MarkVictim)],
        arming: Arming::AtStart,
        as_good_as_best: false,
    },
    Probe {
        family: Family::Cgroup,
        kind: HookKind::TpBtf,
        programs: &[
            ProgramSpec {
                name: programs::CGROUP_MKDIR_BTF,
                target: Target::BtfTracepoint("cgroup_mkdir"),
            },
            ProgramSpec {
                name: programs::CGROUP_RMDIR_BTF,
                target: Target::BtfTracepoint("cgroup_rmdir"),
            },
            ProgramSpec {
                name: programs::CGROUP_RELEASE_BTF,
                target: Target::BtfTracepoint("cgroup_release"),
            },
            ProgramSpec {
                name: programs::CGROUP_ATTACH_BTF,
                target: Target::BtfTracepoint("cgroup_attach_task"),
            },
        ],
        needs: &[CGROUP_EVENT_CGROUP, CGROUP_ATTACH_TASK, Need::Btf],
        arming: Arming::AtStart,
        as_good_as_best: true,
    },
    Probe {
        family: Family::Cgroup,
        kind: HookKind::Tracepoint,
        programs: &[
            ProgramSpec {
                name: programs::CGROUP_MKDIR,
                target: Target::Tracepoint {
                    category: "cgroup",
                    name: "cgroup_mkdir",
                },
            },
            ProgramSpec {
                name: programs::CGROUP_RMDIR,
                target: Target::Tracepoint {
                    category: "cgroup",
                    name: "cgroup_rmdir",
                },
            },
            ProgramSpec {
                name: programs::CGROUP_RELEASE,
                target: Target::Tracepoint {
                    category: "cgroup",
                    name: "cgroup_release",
                },
            },
            ProgramSpec {
                name: programs::CGROUP_ATTACH,
                target: Target::Tracepoint {
                    category: "cgroup",
                    name: "cgroup_attach_task",
                },
            },
        ],
        needs: &[Need::TracefsFormat(Format::Cgroup)],
        arming: Arming::AtStart,
        as_good_as_best: false,
    },
    Probe {
        family: Family::Signal,
        kind: HookKind::TpBtf,
        programs: &[ProgramSpec {
            name: programs::SIGNAL_TP_BTF,
            target: Target::BtfTracepoint("signal_generate"),
        }],
        needs: &[SIGNAL_TARGET_TASK, Need::Btf],
        arming: Arming::AtStart,
        as_good_as_best: true,
    },
    Probe {
        family: Family::Signal,
        kind: HookKind::Tracepoint,
        programs: &[ProgramSpec {
            name: programs::SIGNAL_TP,
            target: Target::Tracepoint {
                category: "signal",
                name: "signal_generate",
            },
        }],
        needs: &[Need::TracefsFormat(Format::Signal)],
        arming: Arming::AtStart,
        as_good_as_best: false,
    },
    Probe {
        family: Family::Pressure,
        kind: HookKind::TpBtf,
        programs: &[ProgramSpec {
            name: programs::MEMCG_RECLAIM_BTF,
            target: Target::BtfTracepoint("mm_vmscan_memcg_reclaim_begin"),
        }],
        needs: &[Need::Btf],
        arming: Arming::AtStart,
        as_good_as_best: true,
    },
    Probe {
        family: Family::Pressure,
        kind: HookKind::Tracepoint,
        programs: &[ProgramSpec {
            name: programs::MEMCG_RECLAIM,
            target: Target::Tracepoint {
                category: "vmscan",
                name: "mm_vmscan_memcg_reclaim_begin",
            },
        }],
        needs: &[Need::Tracefs],
        arming: Arming::AtStart,
        as_good_as_best: false,
    },
    Probe {
        family: Family::Charge,
        kind: HookKind::Tracepoint,
        programs: &[ProgramSpec {
            name: programs::MEMCG_CHARGE,
            target: Target::Tracepoint {
                category: "memcg",
                name: "mod_memcg_lruvec_state",
            },
        }],
        needs: &[Need::TracefsFormat(Format::MemcgCharge)],
        arming: Arming::UnderPressure,
        as_good_as_best: true,
    },
];

/// Every program of the table with its row.
pub fn table_programs() -> impl Iterator<Item = (&'static Probe, &'static ProgramSpec)> {
    PROBES
        .iter()
        .flat_map(|p| p.programs.iter().map(move |s| (p, s)))
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("no eBPF program `{0}` in the probe table")]
pub struct UnknownProgram(pub String);

/// A program of the table by name, with its row.
pub fn program(name: &str) -> Result<(&'static Probe, &'static ProgramSpec), UnknownProgram> {
    table_programs()
        .find(|(_, s)| s.name == name)
        .ok_or_else(|| UnknownProgram(name.into()))
}

/// The distinct needs of the table, in table order: what the loader checks.
pub fn needs() -> Vec<Need> {
    let mut out: Vec<Need> = Vec::new();
    for n in PROBES.iter().flat_map(|p| p.needs) {
        if !out.contains(n) {
            out.push(*n);
        }
    }
    out
}

/// What the node offers toward the table's needs, found once at start (by
/// the daemon's loader) and explained per need.
#[derive(Clone, Debug, Default)]
pub struct Offers {
    /// Why there is no usable kernel BTF (none, or offsets unresolved).
    pub btf_problem: Option<String>,
    /// Why tracefs cannot be used (not mounted and mounting it failed).
    pub tracefs_problem: Option<String>,
    /// Why a set of `format` files did not parse. Absent: parsed.
    pub format_problem: BTreeMap<Format, String>,
    /// Why a tracepoint's BTF prototype differs. Absent: as expected, or
    /// not checked for want of BTF (then [`Need::Btf`] is unmet).
    pub prototype_problem: BTreeMap<Prototype, String>,
    pub kprobes: bool,
}

impl Offers {
    /// Why `need` is not met here; `None` when it is.
    pub fn unmet(&self, need: &Need) -> Option<String> {
        match need {
            Need::Btf => self.btf_problem.clone(),
            Need::BtfPrototype(p) => self.prototype_problem.get(p).cloned(),
            Need::Kprobes => (!self.kprobes).then(|| {
                "kernel has no kprobes (no kprobe_events in tracefs, no /sys/bus/event_source/devices/kprobe)".into()
            }),
            Need::Tracefs => self.tracefs_problem.clone(),
            Need::TracefsFormat(f) => self
                .tracefs_problem
                .clone()
                .or_else(|| self.format_problem.get(f).cloned()),
        }
    }
}

/// Walks the table for every family: the first row that `--hooks` allows,
/// whose needs the node meets and that `attach` loads (and, when it arms at
/// start, attaches) wins; every other row keeps why it was skipped.
pub fn choose(
    requests: &HookRequests,
    offers: &Offers,
    mut attach: impl FnMut(&'static Probe) -> Result<(), String>,
) -> Vec<Choice> {
    Family::ALL
        .into_iter()
        .map(|family| {
            let mut choice = Choice {
                family,
                chosen: None,
                skipped: Vec::new(),
            };
            let request = requests.get(family);
            for probe in family.probes() {
                let kind = probe.kind;
                let outcome = match (request, family.off_by_default()) {
                    (Request::Auto, Some(why)) => Err(why.to_string()),
                    (Request::Off, _) => Err("turned off by --hooks".to_string()),
                    (Request::Only(k), _) if k != kind => {
                        Err(format!("--hooks asked for {family}={k}"))
                    }
                    _ if choice.chosen.is_some() => Err("a better hook attached".to_string()),
                    _ => match probe.needs.iter().find_map(|n| offers.unmet(n)) {
                        Some(reason) => Err(reason),
                        None => attach(probe),
                    },
                };
                match outcome {
                    Ok(()) => choice.chosen = Some(kind),
                    Err(reason) => choice.skipped.push(Skipped { kind, reason }),
                }
            }
            choice
        })
        .collect()
}

/// What the user asked for one family with `--hooks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Auto,
    Off,
    Only(HookKind),
}

#[derive(Debug, thiserror::Error)]
pub enum HooksArgError {
    #[error("`{0}` is not FAMILY=KIND (e.g. oom=kprobe,victim=tracepoint)")]
    Shape(String),
    #[error("unknown hook family `{0}` (families: oom, victim, cgroup, signal, pressure, charge)")]
    Family(String),
    #[error(
        "`{kind}` is not a hook kind for family `{family}` (choose from: auto, off, {choices})"
    )]
    Kind {
        family: String,
        kind: String,
        choices: String,
    },
}

/// `--hooks FAMILY=KIND,...`, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookRequests(BTreeMap<Family, Request>);

impl HookRequests {
    pub fn get(&self, family: Family) -> Request {
        self.0.get(&family).copied().unwrap_or(Request::Auto)
    }
}

impl FromStr for HookRequests {
    type Err = HooksArgError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut map = BTreeMap::new();
        if s.trim() == "auto" || s.trim().is_empty() {
            return Ok(HookRequests(map));
        }
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (fam, kind) = part
                .split_once('=')
                .ok_or_else(|| HooksArgError::Shape(part.into()))?;
            let family = Family::ALL
                .into_iter()
                .find(|f| f.name() == fam.trim())
                .ok_or_else(|| HooksArgError::Family(fam.trim().into()))?;
            let request = match kind.trim() {
                "auto" => Request::Auto,
                "off" => Request::Off,
                k => {
                    Request::Only(family.candidates().find(|c| c.name() == k).ok_or_else(|| {
                        HooksArgError::Kind {
                            family: fam.into(),
                            kind: k.into(),
                            choices: family
                                .candidates()
                                .map(HookKind::name)
                                .collect::<Vec<_>>()
                                .join(", "),
                        }
                    })?)
                }
            };
            map.insert(family, request);
        }
        Ok(HookRequests(map))
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    pub kind: HookKind,
    pub reason: String,
}

/// The outcome for one family.
#[derive(Clone, Debug, Serialize)]
pub struct Choice {
    pub family: Family,
    pub chosen: Option<HookKind>,
    pub skipped: Vec<Skipped>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_arg_parses_and_validates() {
        let r: HookRequests = "oom=kprobe, victim=tracepoint".parse().expect("valid");
        assert_eq!(r.get(Family::Oom), Request::Only(HookKind::Kprobe));
        assert_eq!(r.get(Family::Victim), Request::Only(HookKind::Tracepoint));
        assert_eq!(r.get(Family::Cgroup), Request::Auto);
        assert_eq!(
            "auto".parse::<HookRequests>().expect("auto"),
            HookRequests::default()
        );
        assert!(matches!(
            "oom".parse::<HookRequests>(),
            Err(HooksArgError::Shape(_))
        ));
        assert!(matches!(
            "mem=kprobe".parse::<HookRequests>(),
            Err(HooksArgError::Family(_))
        ));
        assert!(matches!(
            "victim=bogus".parse::<HookRequests>(),
            Err(HooksArgError::Kind { .. })
        ));
        // The function that emits mark_victim, for kernels where the
        // tracepoint carries only the pid.
        assert_eq!(
            "victim=kprobe"
                .parse::<HookRequests>()
                .expect("a victim row")
                .get(Family::Victim),
            Request::Only(HookKind::Kprobe)
        );
        // Off: kills come from the kernel log only (the daemon's kernel-log mode).
        assert_eq!(
            "victim=off"
                .parse::<HookRequests>()
                .expect("off")
                .get(Family::Victim),
            Request::Off
        );
        assert_eq!(
            "oom=off"
                .parse::<HookRequests>()
                .expect("off")
                .get(Family::Oom),
            Request::Off
        );
        // The messages users see (`--hooks` errors are part of the CLI).
        let err = |s: &str| {
            s.parse::<HookRequests>()
                .map(|_| ())
                .expect_err("invalid")
                .to_string()
        };
        assert_eq!(
            err("victim=bogus"),
            "`bogus` is not a hook kind for family `victim` (choose from: auto, off, tp_btf, raw_tp, fentry, kprobe, tracepoint)"
        );
        assert_eq!(
            err("mem=x"),
            "unknown hook family `mem` (families: oom, victim, cgroup, signal, pressure, charge)"
        );
    }

    /// The candidates, best first: the order the table gives every node.
    #[test]
    fn candidates_come_from_the_table_best_first() {
        let kinds = |f: Family| f.candidates().map(HookKind::name).collect::<Vec<_>>();
        assert_eq!(kinds(Family::Oom), ["fentry", "kprobe"]);
        assert_eq!(
            kinds(Family::Victim),
            ["tp_btf", "raw_tp", "fentry", "kprobe", "tracepoint"]
        );
        assert_eq!(kinds(Family::Cgroup), ["tp_btf", "tracepoint"]);
        assert_eq!(kinds(Family::Signal), ["tp_btf", "tracepoint"]);
        assert_eq!(kinds(Family::Pressure), ["tp_btf", "tracepoint"]);
        assert_eq!(kinds(Family::Charge), ["tracepoint"]);
        // The `--hooks` error names every family the table has.
        let names: Vec<_> = Family::ALL.iter().map(|f| f.name()).collect();
        assert!(HooksArgError::Family(String::new())
            .to_string()
            .contains(&names.join(", ")));
    }

    #[test]
    fn table_is_consistent() {
        for family in Family::ALL {
            assert!(family.probes().next().is_some(), "{family} has no row");
            let kinds: Vec<_> = family.candidates().collect();
            for (i, k) in kinds.iter().enumerate() {
                assert!(!kinds[..i].contains(k), "{family}={k} twice");
            }
        }
        for p in PROBES {
            assert!(
                !p.programs.is_empty(),
                "{}={} has no program",
                p.family,
                p.kind
            );
            for s in p.programs {
                assert_eq!(
                    s.target.kind(),
                    p.kind,
                    "{} in the {}={} row",
                    s.name,
                    p.family,
                    p.kind
                );
            }
            // Reading a record's fields or a task's needs what it reads from.
            let needs_btf = matches!(
                p.kind,
                HookKind::Fentry | HookKind::Kprobe | HookKind::TpBtf | HookKind::RawTp
            );
            assert_eq!(
                needs_btf,
                p.needs.contains(&Need::Btf),
                "{}={}",
                p.family,
                p.kind
            );
            if p.kind == HookKind::Tracepoint {
                assert!(
                    p.needs
                        .iter()
                        .any(|n| matches!(n, Need::Tracefs | Need::TracefsFormat(_))),
                    "{}=tracepoint without tracefs",
                    p.family
                );
            }
            if p.kind == HookKind::Kprobe {
                assert!(p.needs.contains(&Need::Kprobes));
            }
            if matches!(p.kind, HookKind::TpBtf | HookKind::RawTp) {
                // The prototypes first, for programs that read arguments:
                // their reason says more than "no BTF".
                let first_other = p
                    .needs
                    .iter()
                    .position(|n| !matches!(n, Need::BtfPrototype(_)))
                    .unwrap_or(p.needs.len());
                assert!(
                    p.needs[first_other..]
                        .iter()
                        .all(|n| !matches!(n, Need::BtfPrototype(_))),
                    "{}",
                    p.family
                );
                assert!(p.needs.contains(&Need::Btf), "{}", p.family);
            }
        }
        let names: Vec<&str> = table_programs().map(|(_, s)| s.name).collect();
        for (i, n) in names.iter().enumerate() {
            assert!(!names[..i].contains(n), "program {n} in two rows");
        }
        // Only the charge counter waits for pressure.
        for p in PROBES {
            assert_eq!(
                p.arming == Arming::UnderPressure,
                p.family == Family::Charge,
                "{}",
                p.family
            );
        }
    }

    #[test]
    fn every_program_name_is_in_the_table() {
        use oomtrace_common::programs::*;
        for name in [
            OOM_FENTRY,
            OOM_KPROBE,
            VICTIM_TP_BTF,
            VICTIM_RAW_TP,
            VICTIM_TP,
            VICTIM_FENTRY,
            VICTIM_KPROBE,
            CGROUP_MKDIR,
            CGROUP_RMDIR,
            CGROUP_RELEASE,
            CGROUP_ATTACH,
            CGROUP_MKDIR_BTF,
            CGROUP_RMDIR_BTF,
            CGROUP_RELEASE_BTF,
            CGROUP_ATTACH_BTF,
            SIGNAL_TP_BTF,
            SIGNAL_TP,
            MEMCG_RECLAIM,
            MEMCG_RECLAIM_BTF,
            MEMCG_CHARGE,
        ] {
            assert!(program(name).is_ok(), "{name}");
        }
        assert_eq!(table_programs().count(), 20);
        let (row, spec) = program("memcg_charge").expect("in the table");
        assert_eq!(row.family, Family::Charge);
        assert_eq!(
            spec.target,
            Target::Tracepoint {
                category: "memcg",
                name: "mod_memcg_lruvec_state"
            }
        );
        // An unknown name is an error, never some default tracepoint.
        assert_eq!(
            program("victim_fexit").map(|_| ()),
            Err(UnknownProgram("victim_fexit".into()))
        );
    }

    /// Every DROPS slot belongs to exactly one family, named alike: `lost`
    /// lines (named after the slot) and the status line's families agree.
    #[test]
    fn drops_slots_map_to_families() {
        for hook in Hook::ALL {
            let family = Family::of_drops(hook).expect("a family per DROPS slot");
            assert_eq!(family.name(), hook.name());
            assert_eq!(
                Family::ALL
                    .iter()
                    .filter(|f| f.drops() == Some(hook))
                    .count(),
                1
            );
        }
        for family in Family::ALL {
            if let Some(h) = family.drops() {
                assert!(Hook::ALL.contains(&h));
            }
        }
        assert_eq!(Family::Charge.drops(), None);
        assert_eq!(Family::Pressure.drops(), Some(Hook::Pressure));
    }

    /// The names in status lines (serde) are the names of `--hooks`,
    /// `doctor` and the metrics.
    #[test]
    fn serialized_names_are_the_names() {
        for family in Family::ALL {
            assert_eq!(
                serde_json::to_value(family).expect("json"),
                serde_json::Value::String(family.name().into())
            );
        }
        for p in PROBES {
            assert_eq!(
                serde_json::to_value(p.kind).expect("json"),
                serde_json::Value::String(p.kind.name().into())
            );
        }
    }

    #[test]
    fn prototype_mismatch_says_what_the_kernel_has() {
        let Need::BtfPrototype(p) = MARK_VICTIM_TASK else {
            panic!("a prototype need")
        };
        assert_eq!(p.mismatch(&["task_struct *".into()]), None);
        assert_eq!(
            p.mismatch(&["int".into()]).as_deref(),
            Some("mark_victim's arguments here are (int), not a task_struct * at position 0")
        );
        assert!(p.mismatch(&[]).is_some());
    }

    const EPERM: &str = "oom_fentry: the BPF_PROG_LOAD syscall returned Operation not permitted (os error 1). Verifier output: ";

    /// This project's 6.18 host: fentry refused, no kprobes, all else there.
    fn host_choices(hooks: &str) -> String {
        let requests: HookRequests = hooks.parse().expect("valid");
        let offers = Offers::default();
        let mut tried = Vec::new();
        let choices = choose(&requests, &offers, |p| {
            tried.push((p.family, p.kind));
            if p.kind == HookKind::Fentry {
                Err(EPERM.into())
            } else {
                Ok(())
            }
        });
        // Rows whose needs fail or that are not asked for are never loaded.
        assert!(!tried.contains(&(Family::Oom, HookKind::Kprobe)));
        assert!(!tried.contains(&(Family::Victim, HookKind::RawTp)));
        serde_json::to_string(&choices).expect("json")
    }

    /// The status line's `hooks` exactly as oomtrace printed it on the host
    /// before the table (HEAD a3c2703).
    #[test]
    fn choices_match_the_status_line_before_the_table() {
        let charge_off = r#"{"family":"charge","chosen":null,"skipped":[{"kind":"tracepoint","reason":"off by default: while armed it costs every page charge on the node (BENCHMARKS.md); growth comes from the page counters read at pressure and at the kill; --hooks charge=tracepoint turns it on"}]}"#;
        let oom = format!(
            r#"{{"family":"oom","chosen":null,"skipped":[{{"kind":"fentry","reason":"{EPERM}"}},{{"kind":"kprobe","reason":"kernel has no kprobes (no kprobe_events in tracefs, no /sys/bus/event_source/devices/kprobe)"}}]}}"#
        );
        // Since then the cgroup and pressure families have a tp_btf row first.
        let rest = r#"{"family":"cgroup","chosen":"tp_btf","skipped":[{"kind":"tracepoint","reason":"a better hook attached"}]},{"family":"signal","chosen":"tp_btf","skipped":[{"kind":"tracepoint","reason":"a better hook attached"}]},{"family":"pressure","chosen":"tp_btf","skipped":[{"kind":"tracepoint","reason":"a better hook attached"}]}"#;
        assert_eq!(
            host_choices("auto"),
            format!(
                r#"[{oom},{{"family":"victim","chosen":"tp_btf","skipped":[{{"kind":"raw_tp","reason":"a better hook attached"}},{{"kind":"fentry","reason":"a better hook attached"}},{{"kind":"kprobe","reason":"a better hook attached"}},{{"kind":"tracepoint","reason":"a better hook attached"}}]}},{rest},{charge_off}]"#
            )
        );
        assert_eq!(
            host_choices("victim=tracepoint"),
            format!(
                r#"[{oom},{{"family":"victim","chosen":"tracepoint","skipped":[{{"kind":"tp_btf","reason":"--hooks asked for victim=tracepoint"}},{{"kind":"raw_tp","reason":"--hooks asked for victim=tracepoint"}},{{"kind":"fentry","reason":"--hooks asked for victim=tracepoint"}},{{"kind":"kprobe","reason":"--hooks asked for victim=tracepoint"}}]}},{rest},{charge_off}]"#
            )
        );
        let forced = host_choices("oom=kprobe,cgroup=off,charge=tracepoint");
        assert!(
            forced.contains(r#"{"kind":"fentry","reason":"--hooks asked for oom=kprobe"}"#),
            "{forced}"
        );
        assert!(forced.contains(r#"{"family":"cgroup","chosen":null,"skipped":[{"kind":"tp_btf","reason":"turned off by --hooks"},{"kind":"tracepoint","reason":"turned off by --hooks"}]}"#), "{forced}");
        assert!(
            forced.contains(r#"{"family":"charge","chosen":"tracepoint","skipped":[]}"#),
            "{forced}"
        );
    }

    /// Needs are checked in row order, before anything loads.
    #[test]
    fn unmet_needs_skip_rows_with_their_reason() {
        let mut offers = Offers {
            btf_problem: Some("no usable kernel BTF: x".into()),
            tracefs_problem: None,
            kprobes: true,
            ..Offers::default()
        };
        let Need::BtfPrototype(mv) = MARK_VICTIM_TASK else {
            panic!("a prototype need")
        };
        offers.prototype_problem.insert(
            mv,
            "mark_victim's arguments here are (int), not a task_struct * at position 0".into(),
        );
        offers
            .format_problem
            .insert(Format::Signal, "no field sig".into());
        let choices = choose(&HookRequests::default(), &offers, |_| Ok(()));
        let by = |f: Family| choices.iter().find(|c| c.family == f).expect("family");
        let victim = by(Family::Victim);
        assert_eq!(victim.chosen, Some(HookKind::Tracepoint));
        let reasons: Vec<_> = victim
            .skipped
            .iter()
            .map(|s| (s.kind.name(), s.reason.as_str()))
            .collect();
        let mismatch = "mark_victim's arguments here are (int), not a task_struct * at position 0";
        assert_eq!(
            reasons,
            [
                ("tp_btf", mismatch),
                ("raw_tp", mismatch),
                ("fentry", "no usable kernel BTF: x"),
                ("kprobe", "no usable kernel BTF: x"),
            ]
        );
        let oom = by(Family::Oom);
        assert_eq!(oom.chosen, None);
        assert!(oom
            .skipped
            .iter()
            .all(|s| s.reason == "no usable kernel BTF: x"));
        let signal = by(Family::Signal);
        assert_eq!(signal.chosen, None);
        assert_eq!(signal.skipped[0].reason, "no usable kernel BTF: x");
        assert_eq!(signal.skipped[1].reason, "no field sig");
        // No tracefs: every tracepoint row says why.
        offers.tracefs_problem = Some("tracefs is not mounted".into());
        let choices = choose(&HookRequests::default(), &offers, |_| Ok(()));
        for c in &choices {
            if c.family != Family::Charge {
                assert!(
                    c.skipped
                        .iter()
                        .filter(|s| s.kind == HookKind::Tracepoint)
                        .all(|s| s.reason == "tracefs is not mounted"),
                    "{c:?}"
                );
            }
        }
        assert_eq!(
            choices
                .iter()
                .find(|c| c.family == Family::Pressure)
                .map(|c| c.chosen),
            Some(None)
        );
    }

    /// Debian 11's 5.10: BTF, kprobes and fentry there, but `mark_victim(int
    /// pid)`. The victim comes from `mark_oom_victim`, by fentry, else by
    /// kprobe where fentry cannot attach (a kernel that inlined it), else the
    /// pid-only tracepoint; each skipped row says why.
    #[test]
    fn a_pid_only_mark_victim_takes_mark_oom_victim() {
        let Need::BtfPrototype(mv) = MARK_VICTIM_TASK else {
            panic!("a prototype need")
        };
        let mismatch = "mark_victim's arguments here are (int), not a task_struct * at position 0";
        let mut offers = Offers {
            kprobes: true,
            ..Offers::default()
        };
        offers.prototype_problem.insert(mv, mismatch.into());
        let victim = |offers: &Offers, refuse: &[HookKind]| {
            let choices = choose(&HookRequests::default(), offers, |p| {
                match refuse.contains(&p.kind) && p.family == Family::Victim {
                    true => Err(format!("{}: no such function", p.programs[0].name)),
                    false => Ok(()),
                }
            });
            let c = choices
                .into_iter()
                .find(|c| c.family == Family::Victim)
                .expect("a victim family");
            let skipped: Vec<(HookKind, String)> =
                c.skipped.into_iter().map(|s| (s.kind, s.reason)).collect();
            (c.chosen, skipped)
        };
        let better = "a better hook attached".to_string();
        assert_eq!(
            victim(&offers, &[]),
            (
                Some(HookKind::Fentry),
                vec![
                    (HookKind::TpBtf, mismatch.into()),
                    (HookKind::RawTp, mismatch.into()),
                    (HookKind::Kprobe, better.clone()),
                    (HookKind::Tracepoint, better.clone()),
                ]
            )
        );
        assert_eq!(
            victim(&offers, &[HookKind::Fentry]),
            (
                Some(HookKind::Kprobe),
                vec![
                    (HookKind::TpBtf, mismatch.into()),
                    (HookKind::RawTp, mismatch.into()),
                    (HookKind::Fentry, "victim_fentry: no such function".into()),
                    (HookKind::Tracepoint, better),
                ]
            )
        );
        offers.kprobes = false;
        let (chosen, skipped) = victim(&offers, &[HookKind::Fentry]);
        assert_eq!(chosen, Some(HookKind::Tracepoint));
        assert!(
            skipped[3].1.starts_with("kernel has no kprobes"),
            "{skipped:?}"
        );
    }

    /// The victim rows hook mark_victim or the function that emits it, and
    /// `doctor` names which.
    #[test]
    fn victim_rows_name_where_they_hook() {
        let hooked: Vec<(&str, String, bool)> = Family::Victim
            .probes()
            .map(|p| (p.kind.name(), p.hooked(), p.as_good_as_best))
            .collect();
        assert_eq!(
            hooked,
            [
                ("tp_btf", "tracepoint mark_victim".to_string(), true),
                ("raw_tp", "tracepoint mark_victim".to_string(), true),
                ("fentry", "function mark_oom_victim".to_string(), true),
                ("kprobe", "function mark_oom_victim".to_string(), true),
                ("tracepoint", "tracepoint mark_victim".to_string(), false),
            ]
        );
        let (row, _) = program(programs::CGROUP_ATTACH).expect("in the table");
        assert_eq!(
            row.hooked(),
            "tracepoints cgroup_mkdir, cgroup_rmdir, cgroup_release, cgroup_attach_task"
        );
        // The first row of every family is its best.
        for family in Family::ALL {
            assert!(family.probes().next().is_some_and(|p| p.as_good_as_best));
        }
    }
}
