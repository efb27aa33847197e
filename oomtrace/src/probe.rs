//! The probe table: for each hook family, its candidates best first. The
//! first that loads and attaches wins; every other candidate keeps the reason
//! it was skipped, for `doctor` and the status line.

use std::{collections::BTreeMap, fmt, str::FromStr};

use aya::{
    programs::{BtfTracePoint, FEntry, KProbe, Program, RawTracePoint, TracePoint},
    Btf, Ebpf,
};
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

    pub fn name(self) -> &'static str {
        match self {
            Family::Oom => "oom",
            Family::Victim => "victim",
            Family::Cgroup => "cgroup",
            Family::Signal => "signal",
            Family::Pressure => "pressure",
            Family::Charge => "charge",
        }
    }

    /// Without these oomtrace cannot give verdicts at all.
    pub fn required(self) -> bool {
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

    fn candidates(self) -> &'static [HookKind] {
        match self {
            Family::Oom => &[HookKind::Fentry, HookKind::Kprobe],
            Family::Victim => &[HookKind::TpBtf, HookKind::RawTp, HookKind::Tracepoint],
            Family::Signal => &[HookKind::TpBtf, HookKind::Tracepoint],
            Family::Cgroup | Family::Pressure | Family::Charge => &[HookKind::Tracepoint],
        }
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
    #[error("the `{0}` family cannot be turned off: oomtrace needs it for verdicts")]
    Required(String),
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
                "off" if family.required() => return Err(HooksArgError::Required(fam.into())),
                "off" => Request::Off,
                k => Request::Only(
                    family
                        .candidates()
                        .iter()
                        .copied()
                        .find(|c| c.name() == k)
                        .ok_or_else(|| HooksArgError::Kind {
                            family: fam.into(),
                            kind: k.into(),
                            choices: family
                                .candidates()
                                .iter()
                                .map(|c| c.name())
                                .collect::<Vec<_>>()
                                .join(", "),
                        })?,
                ),
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

/// What attaching needs besides the loaded object.
pub struct Env<'a> {
    pub btf: Option<&'a Btf>,
    /// Why BTF-based candidates cannot work (no BTF, unresolved offsets).
    pub btf_problem: Option<String>,
    /// Why classic tracepoints cannot attach (no tracefs, format unreadable), per family.
    pub tracefs_problem: BTreeMap<Family, String>,
    /// Why a tracepoint's arguments are not what the tp_btf/raw_tp programs
    /// read (older kernels had `mark_victim(int pid)`), per family.
    pub prototype_problem: BTreeMap<Family, String>,
    pub has_kprobes: bool,
}

/// Walks the table: loads and attaches the first candidate that works for
/// every family. Attached links live as long as `ebpf`.
pub fn attach_all(ebpf: &mut Ebpf, requests: &HookRequests, env: &Env<'_>) -> Vec<Choice> {
    Family::ALL
        .into_iter()
        .map(|family| {
            let mut choice = Choice {
                family,
                chosen: None,
                skipped: Vec::new(),
            };
            let request = requests.get(family);
            for &kind in family.candidates() {
                if let (Request::Auto, Some(why)) = (request, family.off_by_default()) {
                    choice.skipped.push(Skipped {
                        kind,
                        reason: why.into(),
                    });
                    continue;
                }
                match request {
                    Request::Off => {
                        choice.skipped.push(Skipped {
                            kind,
                            reason: "turned off by --hooks".into(),
                        });
                        continue;
                    }
                    Request::Only(k) if k != kind => {
                        choice.skipped.push(Skipped {
                            kind,
                            reason: format!(
                                "--hooks asked for {family}={k}",
                                family = family.name()
                            ),
                        });
                        continue;
                    }
                    _ => {}
                }
                if choice.chosen.is_some() {
                    choice.skipped.push(Skipped {
                        kind,
                        reason: "a better hook attached".into(),
                    });
                    continue;
                }
                match try_attach(ebpf, family, kind, env) {
                    Ok(()) => choice.chosen = Some(kind),
                    Err(reason) => choice.skipped.push(Skipped { kind, reason }),
                }
            }
            choice
        })
        .collect()
}

fn program_name(family: Family, kind: HookKind) -> &'static [&'static str] {
    match (family, kind) {
        (Family::Oom, HookKind::Fentry) => &["oom_fentry"],
        (Family::Oom, HookKind::Kprobe) => &["oom_kprobe"],
        (Family::Victim, HookKind::TpBtf) => &["victim_tp_btf"],
        (Family::Victim, HookKind::RawTp) => &["victim_raw_tp"],
        (Family::Victim, HookKind::Tracepoint) => &["victim_tp"],
        (Family::Cgroup, _) => &[
            "cgroup_mkdir",
            "cgroup_rmdir",
            "cgroup_release",
            "cgroup_attach",
        ],
        (Family::Signal, HookKind::TpBtf) => &["signal_tp_btf"],
        (Family::Signal, _) => &["signal_generate"],
        (Family::Pressure, _) => &["memcg_reclaim"],
        (Family::Charge, _) => &["memcg_charge"],
        _ => &[],
    }
}

fn tracepoint_of(program: &str) -> (&'static str, &'static str) {
    match program {
        "cgroup_mkdir" => ("cgroup", "cgroup_mkdir"),
        "cgroup_rmdir" => ("cgroup", "cgroup_rmdir"),
        "cgroup_release" => ("cgroup", "cgroup_release"),
        "cgroup_attach" => ("cgroup", "cgroup_attach_task"),
        "signal_generate" => ("signal", "signal_generate"),
        "memcg_reclaim" => ("vmscan", "mm_vmscan_memcg_reclaim_begin"),
        CHARGE_PROGRAM => CHARGE_TRACEPOINT,
        _ => ("oom", "mark_victim"),
    }
}

pub const CHARGE_PROGRAM: &str = "memcg_charge";
pub const CHARGE_TRACEPOINT: (&str, &str) = ("memcg", "mod_memcg_lruvec_state");

/// Attaches the charge counter (while some cgroup is under pressure).
pub fn arm_charges(
    ebpf: &mut Ebpf,
) -> Result<aya::programs::trace_point::TracePointLinkId, String> {
    let prog = ebpf
        .program_mut(CHARGE_PROGRAM)
        .ok_or("charge program missing")?;
    let p: &mut TracePoint = prog.try_into().map_err(chain)?;
    p.attach(CHARGE_TRACEPOINT.0, CHARGE_TRACEPOINT.1)
        .map_err(chain)
}

/// Detaches it again: an attached program costs even when it returns at once.
pub fn disarm_charges(
    ebpf: &mut Ebpf,
    link: aya::programs::trace_point::TracePointLinkId,
) -> Result<(), String> {
    let prog = ebpf
        .program_mut(CHARGE_PROGRAM)
        .ok_or("charge program missing")?;
    let p: &mut TracePoint = prog.try_into().map_err(chain)?;
    p.detach(link).map_err(chain)
}

fn try_attach(
    ebpf: &mut Ebpf,
    family: Family,
    kind: HookKind,
    env: &Env<'_>,
) -> Result<(), String> {
    if family == Family::Charge {
        if let Some(p) = env.tracefs_problem.get(&family) {
            return Err(p.clone());
        }
        let prog = ebpf
            .program_mut(CHARGE_PROGRAM)
            .ok_or("charge program missing")?;
        let p: &mut TracePoint = prog.try_into().map_err(chain)?;
        return p.load().map_err(chain);
    }
    if matches!(kind, HookKind::TpBtf | HookKind::RawTp) {
        if let Some(p) = env.prototype_problem.get(&family) {
            return Err(p.clone());
        }
    }
    let needs_btf = matches!(
        kind,
        HookKind::Fentry | HookKind::Kprobe | HookKind::TpBtf | HookKind::RawTp
    );
    if needs_btf {
        if let Some(p) = &env.btf_problem {
            return Err(p.clone());
        }
    }
    if kind == HookKind::Kprobe && !env.has_kprobes {
        return Err("kernel has no kprobes (no kprobe_events in tracefs, no /sys/bus/event_source/devices/kprobe)".into());
    }
    if kind == HookKind::Tracepoint {
        if let Some(p) = env.tracefs_problem.get(&family) {
            return Err(p.clone());
        }
    }
    let names = program_name(family, kind);
    let mut attached = Vec::new();
    for &name in names {
        if let Err(e) = load_attach(ebpf, name, kind, env.btf) {
            // Leave nothing half-attached: a family is all or nothing.
            for n in attached {
                if let Some(p) = ebpf.program_mut(n) {
                    let _ = unload(p);
                }
            }
            if let Some(p) = ebpf.program_mut(name) {
                let _ = unload(p);
            }
            return Err(format!("{name}: {e}"));
        }
        attached.push(name);
    }
    Ok(())
}

fn unload(p: &mut Program) -> Result<(), aya::programs::ProgramError> {
    match p {
        Program::FEntry(p) => p.unload(),
        Program::KProbe(p) => p.unload(),
        Program::BtfTracePoint(p) => p.unload(),
        Program::RawTracePoint(p) => p.unload(),
        Program::TracePoint(p) => p.unload(),
        _ => Ok(()),
    }
}

fn load_attach(
    ebpf: &mut Ebpf,
    name: &str,
    kind: HookKind,
    btf: Option<&Btf>,
) -> Result<(), String> {
    let prog = ebpf
        .program_mut(name)
        .ok_or_else(|| format!("program {name} missing from the object"))?;
    let need_btf = || btf.ok_or_else(|| "no kernel BTF".to_string());
    match kind {
        HookKind::Fentry => {
            let p: &mut FEntry = prog.try_into().map_err(chain)?;
            p.load("oom_kill_process", need_btf()?).map_err(chain)?;
            p.attach().map_err(chain)?;
        }
        HookKind::Kprobe => {
            let p: &mut KProbe = prog.try_into().map_err(chain)?;
            p.load().map_err(chain)?;
            p.attach("oom_kill_process", 0).map_err(chain)?;
        }
        HookKind::TpBtf => {
            let p: &mut BtfTracePoint = prog.try_into().map_err(chain)?;
            let tracepoint = if name == "signal_tp_btf" {
                "signal_generate"
            } else {
                "mark_victim"
            };
            p.load(tracepoint, need_btf()?).map_err(chain)?;
            p.attach().map_err(chain)?;
        }
        HookKind::RawTp => {
            let p: &mut RawTracePoint = prog.try_into().map_err(chain)?;
            p.load().map_err(chain)?;
            p.attach("mark_victim").map_err(chain)?;
        }
        HookKind::Tracepoint => {
            let (category, event) = tracepoint_of(name);
            let p: &mut TracePoint = prog.try_into().map_err(chain)?;
            p.load().map_err(chain)?;
            p.attach(category, event).map_err(chain)?;
        }
    }
    Ok(())
}

/// An error and its sources on one line: aya's top-level messages ("the
/// BPF_PROG_LOAD syscall failed") hide the errno users need.
pub fn chain(e: impl std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    // The verifier log can be thousands of lines; its first lines say why.
    if s.len() > 600 {
        let mut cut = 600;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str(" …");
    }
    s
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
            "victim=kprobe".parse::<HookRequests>(),
            Err(HooksArgError::Kind { .. })
        ));
        assert!(matches!(
            "victim=off".parse::<HookRequests>(),
            Err(HooksArgError::Required(_))
        ));
        assert_eq!(
            "oom=off"
                .parse::<HookRequests>()
                .expect("off")
                .get(Family::Oom),
            Request::Off
        );
    }
}
