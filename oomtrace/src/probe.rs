//! The attach calls of the probe table (`oomtrace_core::kernel::hooks::PROBES`): for
//! each hook family the first row that loads and attaches wins; every other
//! row keeps the reason it was skipped, for `doctor` and the status line.

use aya::{
    programs::{
        trace_point::TracePointLinkId, BtfTracePoint, FEntry, KProbe, Program, RawTracePoint,
        TracePoint,
    },
    Btf, Ebpf,
};
use oomtrace_core::kernel::hooks::{
    self, Arming, Choice, Family, HookRequests, Offers, Probe, Target,
};

/// Why a program of the probe table did not load or attach. The cause is
/// part of the message (aya's own, its sources joined by [`chain`]), not a
/// `source()`: doctor and the status line show these with `to_string()`.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("program {0} missing from the object")]
    Missing(String),
    #[error("no kernel BTF")]
    NoBtf,
    #[error("{}", chain(.0))]
    Program(#[from] aya::programs::ProgramError),
    /// A row's program failed: which one, and why.
    #[error("{program}: {error}")]
    Row {
        program: &'static str,
        error: Box<ProbeError>,
    },
    #[error("the probe table has no charge row armed under pressure")]
    NoChargeRow,
    #[error("the charge counter {program} is a {kind}, not a tracepoint")]
    ChargeNotTracepoint {
        program: &'static str,
        kind: hooks::HookKind,
    },
    #[error("the charge row must hold exactly one program")]
    ChargeRowShape,
}

/// What attaching needs besides the loaded object.
pub struct Env<'a> {
    pub btf: Option<&'a Btf>,
    /// What the node offers toward each row's needs.
    pub offers: Offers,
}

/// Walks the table: loads and attaches the first candidate that works for
/// every family. Attached links live as long as `ebpf`.
pub fn attach_all(ebpf: &mut Ebpf, requests: &HookRequests, env: &Env<'_>) -> Vec<Choice> {
    hooks::choose(requests, &env.offers, |probe| {
        try_attach(ebpf, probe, env.btf).map_err(|e| e.to_string())
    })
}

/// Loads a row's programs and attaches them (unless the row arms later).
/// A family is all or nothing: on any failure nothing of the row stays
/// loaded.
fn try_attach(ebpf: &mut Ebpf, probe: &Probe, btf: Option<&Btf>) -> Result<(), ProbeError> {
    let mut loaded: Vec<&str> = Vec::new();
    for spec in probe.programs {
        let result = match probe.arming {
            Arming::AtStart => load_attach(ebpf, spec.name, spec.target, btf),
            Arming::UnderPressure => load(ebpf, spec.name, spec.target, btf),
        };
        if let Err(e) = result {
            for name in loaded.into_iter().chain([spec.name]) {
                if let Some(p) = ebpf.program_mut(name) {
                    let _ = unload(p);
                }
            }
            return Err(ProbeError::Row {
                program: spec.name,
                error: Box::new(e),
            });
        }
        loaded.push(spec.name);
    }
    Ok(())
}

/// The charge counter's program and tracepoint: the table's row that is
/// armed under pressure.
fn charge_program() -> Result<(&'static str, &'static str, &'static str), ProbeError> {
    let probe = Family::Charge
        .probes()
        .find(|p| p.arming == Arming::UnderPressure)
        .ok_or(ProbeError::NoChargeRow)?;
    match probe.programs {
        [spec] => match spec.target {
            Target::Tracepoint { category, name } => Ok((spec.name, category, name)),
            other => Err(ProbeError::ChargeNotTracepoint {
                program: spec.name,
                kind: other.kind(),
            }),
        },
        _ => Err(ProbeError::ChargeRowShape),
    }
}

/// Attaches the charge counter (while some cgroup is under pressure).
pub fn arm_charges(ebpf: &mut Ebpf) -> Result<TracePointLinkId, ProbeError> {
    let (program, category, name) = charge_program()?;
    Ok(tracepoint(ebpf, program)?.attach(category, name)?)
}

/// Detaches it again: an attached program costs even when it returns at once.
pub fn disarm_charges(ebpf: &mut Ebpf, link: TracePointLinkId) -> Result<(), ProbeError> {
    let (program, _, _) = charge_program()?;
    Ok(tracepoint(ebpf, program)?.detach(link)?)
}

fn program<'e>(ebpf: &'e mut Ebpf, name: &str) -> Result<&'e mut Program, ProbeError> {
    ebpf.program_mut(name)
        .ok_or_else(|| ProbeError::Missing(name.to_owned()))
}

fn tracepoint<'e>(ebpf: &'e mut Ebpf, name: &str) -> Result<&'e mut TracePoint, ProbeError> {
    Ok(program(ebpf, name)?.try_into()?)
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

/// Loads a program for its target (fentry and tp_btf load against the
/// kernel's BTF), without attaching it.
fn load(ebpf: &mut Ebpf, name: &str, target: Target, btf: Option<&Btf>) -> Result<(), ProbeError> {
    let prog = program(ebpf, name)?;
    let need_btf = || btf.ok_or(ProbeError::NoBtf);
    match target {
        Target::Fentry(function) => {
            let p: &mut FEntry = prog.try_into()?;
            Ok(p.load(function, need_btf()?)?)
        }
        Target::Kprobe(_) => {
            let p: &mut KProbe = prog.try_into()?;
            Ok(p.load()?)
        }
        Target::BtfTracepoint(tracepoint) => {
            let p: &mut BtfTracePoint = prog.try_into()?;
            Ok(p.load(tracepoint, need_btf()?)?)
        }
        Target::RawTracepoint(_) => {
            let p: &mut RawTracePoint = prog.try_into()?;
            Ok(p.load()?)
        }
        Target::Tracepoint { .. } => {
            let p: &mut TracePoint = prog.try_into()?;
            Ok(p.load()?)
        }
    }
}

fn load_attach(
    ebpf: &mut Ebpf,
    name: &str,
    target: Target,
    btf: Option<&Btf>,
) -> Result<(), ProbeError> {
    load(ebpf, name, target, btf)?;
    let prog = program(ebpf, name)?;
    match target {
        Target::Fentry(_) => {
            let p: &mut FEntry = prog.try_into()?;
            p.attach()?;
        }
        Target::Kprobe(function) => {
            let p: &mut KProbe = prog.try_into()?;
            p.attach(function, 0)?;
        }
        Target::BtfTracepoint(_) => {
            let p: &mut BtfTracePoint = prog.try_into()?;
            p.attach()?;
        }
        Target::RawTracepoint(tracepoint) => {
            let p: &mut RawTracePoint = prog.try_into()?;
            p.attach(tracepoint)?;
        }
        Target::Tracepoint { category, name } => {
            let p: &mut TracePoint = prog.try_into()?;
            p.attach(category, name)?;
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
    use std::collections::BTreeMap;

    use object::{Object as _, ObjectSection as _, ObjectSymbol as _, SymbolKind};
    use oomtrace_core::kernel::hooks::{self, Target};

    /// The ELF section aya-ebpf's program macros give a program attaching
    /// at `target`.
    fn section_fits(target: Target, section: &str) -> bool {
        match target {
            Target::Fentry(f) => section == format!("fentry/{f}"),
            // `#[kprobe]` names no function: it is given at attach.
            Target::Kprobe(f) => section == "kprobe" || section == format!("kprobe/{f}"),
            Target::BtfTracepoint(tp) => section == format!("tp_btf/{tp}"),
            Target::RawTracepoint(tp) => section == format!("raw_tp/{tp}"),
            Target::Tracepoint { category, name } => {
                section == format!("tracepoint/{category}/{name}")
            }
        }
    }

    /// aya-ebpf's macros take neither the program name nor its attach point
    /// from a constant, so the kernel side spells both out: every row of
    /// the probe table must find its program in the built object, of its
    /// type and at its attach point, and every program of the object must
    /// have a row.
    #[test]
    fn table_matches_the_built_object() {
        let bytes = crate::loader::OBJECT;
        if bytes.is_empty() {
            eprintln!("skipped: built with AYA_BUILD_SKIP=1, there is no eBPF object to check");
            return;
        }
        let elf = object::File::parse(bytes).expect("the eBPF object parses");
        let mut programs: BTreeMap<String, String> = BTreeMap::new();
        for sym in elf.symbols() {
            if sym.kind() != SymbolKind::Text || !sym.is_global() {
                continue;
            }
            let Some(section) = sym
                .section_index()
                .and_then(|i| elf.section_by_index(i).ok())
            else {
                continue;
            };
            let section = section.name().expect("section name");
            if section.starts_with(".text") {
                continue;
            }
            programs.insert(sym.name().expect("symbol name").into(), section.into());
        }
        for (probe, spec) in hooks::table_programs() {
            let section = programs.get(spec.name).unwrap_or_else(|| {
                panic!(
                    "{} ({}={}) is not a program of the object; it has {programs:?}",
                    spec.name, probe.family, probe.kind
                )
            });
            assert!(
                section_fits(spec.target, section),
                "{} is in section {section}, the table says {:?}",
                spec.name,
                spec.target
            );
        }
        for name in programs.keys() {
            if let Err(e) = hooks::program(name) {
                panic!("{e}: a program of the object that nothing loads");
            }
        }
    }

    /// `--hooks`'s help lists, per family, the table's kinds (and `off`
    /// for the families that may be turned off).
    #[test]
    fn hooks_help_lists_the_table() {
        use clap::CommandFactory as _;
        use oomtrace_core::kernel::hooks::{Family, HookKind};
        let cli = crate::cli::Cli::command();
        let help = cli
            .find_subcommand("run")
            .and_then(|run| run.get_arguments().find(|a| a.get_id() == "hooks"))
            .and_then(|a| a.get_help())
            .expect("--hooks has a help text")
            .to_string();
        let list = help
            .split_once("(kinds: ")
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(list, _)| list)
            .expect("(kinds: ...) in the help");
        let mut listed: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for part in list.split("; ") {
            let (families, kinds) = part.split_once(": ").expect("FAMILIES: KINDS");
            let kinds: Vec<&str> = kinds
                .split(',')
                .next()
                .unwrap_or_default()
                .split('|')
                .collect();
            for f in families.split(", ") {
                listed.insert(f, kinds.clone());
            }
        }
        for family in Family::ALL {
            let mut want: Vec<&str> = family.candidates().map(HookKind::name).collect();
            want.push("off");
            assert_eq!(
                listed.get(family.name()),
                Some(&want),
                "{family} in: {help}"
            );
        }
        assert_eq!(listed.len(), Family::ALL.len(), "{help}");
    }
}
