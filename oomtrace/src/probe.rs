//! The probe table: for each hook family, its candidates best first. The
//! first that loads and attaches wins; every other candidate keeps the reason
//! it was skipped, for `doctor` and the status line.

use std::collections::BTreeMap;

use aya::{
    programs::{BtfTracePoint, FEntry, KProbe, Program, RawTracePoint, TracePoint},
    Btf, Ebpf,
};
use oomtrace_core::hooks::{Choice, Family, HookKind, HookRequests, Request, Skipped};

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

