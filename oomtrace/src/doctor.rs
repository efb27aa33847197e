//! `oomtrace doctor`: what this node offers and which hook each family
//! takes, with the reason every other candidate was skipped. It loads and
//! attaches exactly as `run` does, then detaches.
//!
//! Every check is ok, warn (oomtrace runs, with a fallback or without a
//! source) or fail (it cannot run), and each problem says its fix. The exit
//! status is the worst of them: 0 ok, 3 degraded, 1 cannot run.

use std::{
    fs,
    io::{self, Write},
    path::Path,
    process::ExitCode,
};

use serde::Serialize;

use oomtrace_core::{
    kernel::btf::Btf as KernelBtf,
    kernel::hooks::{self, Choice, Family, HookKind, Target},
    kernel::tracefs,
    node::cgroup::{CgroupNamespace, CgroupTree, Layout, Version},
};

use crate::{
    cli::{DoctorArgs, Format, NodeArgs},
    daemon::kernel_release,
    loader,
};

/// What a check found, worst last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    fn mark(self) -> &'static str {
        match self {
            Status::Ok => "✓",
            Status::Warn => "!",
            Status::Fail => "✗",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    /// What to do about it; null for an ok check.
    pub fix: Option<String>,
    /// Lines printed under the check (the kinds a hook family skipped, and why).
    #[serde(skip)]
    pub notes: Vec<String>,
}

impl Check {
    fn ok(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
            notes: Vec::new(),
        }
    }

    fn problem(
        name: impl Into<String>,
        status: Status,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            status,
            detail: detail.into(),
            fix: Some(fix.into()),
            notes: Vec::new(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub version: &'static str,
    /// `ok`, `degraded` or `cannot_run`: the worst check.
    pub verdict: &'static str,
    pub checks: Vec<Check>,
    /// Which hook each family took and why the others did not (empty when
    /// the object could not be loaded).
    pub hooks: Vec<Choice>,
}

impl Report {
    fn new(checks: Vec<Check>, hooks: Vec<Choice>) -> Report {
        let verdict = match worst(&checks) {
            Status::Ok => "ok",
            Status::Warn => "degraded",
            Status::Fail => "cannot_run",
        };
        Report {
            version: env!("CARGO_PKG_VERSION"),
            verdict,
            checks,
            hooks,
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(exit_status(worst(&self.checks)))
    }
}

fn worst(checks: &[Check]) -> Status {
    checks.iter().map(|c| c.status).max().unwrap_or(Status::Ok)
}

/// The documented exit status of a worst check (`doctor --help`, README).
pub fn exit_status(worst: Status) -> u8 {
    match worst {
        Status::Ok => 0,
        Status::Fail => 1,
        Status::Warn => 3,
    }
}

pub fn run(a: DoctorArgs) -> anyhow::Result<ExitCode> {
    let report = examine(&a.node);
    let mut out = io::stdout().lock();
    match a.format {
        Format::Json => {
            serde_json::to_writer(&mut out, &report)?;
            writeln!(out)?;
        }
        Format::Text => write_text(&mut out, &report)?,
    }
    out.flush()?;
    Ok(report.exit_code())
}

fn write_text(out: &mut impl Write, r: &Report) -> io::Result<()> {
    writeln!(out, "oomtrace {} doctor", r.version)?;
    for c in &r.checks {
        writeln!(out, "{} {:<13} {}", c.status.mark(), c.name, c.detail)?;
        if let Some(fix) = &c.fix {
            writeln!(out, "                fix: {fix}")?;
        }
        for n in &c.notes {
            writeln!(out, "                {n}")?;
        }
    }
    let problems = r.checks.iter().filter(|c| c.status != Status::Ok).count();
    match worst(&r.checks) {
        Status::Ok => writeln!(out, "verdict: oomtrace can run here"),
        Status::Warn => writeln!(
            out,
            "verdict: oomtrace can run here, degraded ({problems} {} above)",
            if problems == 1 { "warning" } else { "warnings" }
        ),
        Status::Fail => writeln!(
            out,
            "verdict: oomtrace cannot run here (fix the ✗ checks above)"
        ),
    }
}

const ROOT_FIX: &str = "run as root, or with CAP_BPF and CAP_PERFMON (CAP_SYS_ADMIN on kernels before 5.8); in a pod: securityContext.privileged: true";

/// Every check, in the order they are printed.
pub fn examine(node: &NodeArgs) -> Report {
    let mut checks = vec![Check::ok("kernel", kernel_release())];
    checks.push(lockdown());
    let privileged = privileges(&mut checks);
    let kube = cgroups(node, &mut checks);
    sources(node, kube, &mut checks);
    let log = kernel_log();
    // Why the kernel log cannot stand in for the victim hook, if it cannot.
    let log_problem = (log.status != Status::Ok).then(|| log.detail.clone());
    checks.push(log);

    let hooks = match loader::load(&node.btf, &node.hooks, node.ring_buffer_bytes, None) {
        Ok(loaded) => {
            let f = &loaded.facts;
            let oom_fentry = loaded
                .choices
                .iter()
                .any(|c| c.family == Family::Oom && c.chosen == Some(HookKind::Fentry));
            checks.push(tracefs_check(f.tracefs.clone(), f.tracefs_mounted_by_us));
            checks.push(btf_check(f.btf.clone()));
            checks.push(kprobes_check(f.kprobes, oom_fentry));
            if let Ok(dir) = &f.tracefs {
                // Every fentry target of the probe table; a function list
                // that cannot be read says so once.
                let mut traced: Vec<Check> = Vec::new();
                for (row, spec) in hooks::table_programs() {
                    if let Target::Fentry(func) = spec.target {
                        let chosen = loaded
                            .choices
                            .iter()
                            .find(|c| c.family == row.family)
                            .and_then(|c| c.chosen);
                        let position = |k| row.family.candidates().position(|c| c == k);
                        let check = match chosen {
                            // A better row of the family attached.
                            Some(k) if position(k) < position(HookKind::Fentry) => Check::ok(
                                "ftrace",
                                format!("{func}: not needed ({} took {k})", row.family),
                            ),
                            _ => function_tracing(
                                Path::new(dir),
                                func,
                                chosen == Some(HookKind::Fentry),
                            ),
                        };
                        if !traced.iter().any(|t| t.detail == check.detail) {
                            traced.push(check);
                        }
                    }
                }
                checks.extend(traced);
            }
            checks.extend(
                loaded
                    .choices
                    .iter()
                    .map(|c| hook_check(c, log_problem.as_deref())),
            );
            loaded.choices.clone()
        }
        Err(e) => {
            // What can be known without loading, so the fixes are all there.
            let found = tracefs::find_tracefs()
                .map(|p| p.display().to_string())
                .ok_or_else(|| {
                    // Mounted but closed to this user looks like not mounted.
                    match fs::metadata("/sys/kernel/tracing/events") {
                        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                            format!("/sys/kernel/tracing unreadable ({e}): it needs root")
                        }
                        _ => "no tracefs mount found".to_string(),
                    }
                });
            checks.push(tracefs_check(found, false));
            checks.push(btf_check(
                KernelBtf::from_file(&node.btf)
                    .map(|_| node.btf.display().to_string())
                    .map_err(|e| e.to_string()),
            ));
            checks.push(Check::problem(
                "hooks",
                Status::Fail,
                format!("not loaded: {e:#}"),
                if privileged {
                    "the error above says why; `OOMTRACE_LOG=debug oomtrace doctor` says more"
                } else {
                    ROOT_FIX
                },
            ));
            Vec::new()
        }
    };
    Report::new(checks, hooks)
}

fn lockdown() -> Check {
    // `none [integrity] confidentiality`: the mode in brackets is in force.
    let Ok(text) = fs::read_to_string("/sys/kernel/security/lockdown") else {
        return Check::ok(
            "lockdown",
            "unknown (no securityfs lockdown file: not in force)",
        );
    };
    let mode = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']')))
        .unwrap_or("unknown");
    if mode == "confidentiality" {
        Check::problem(
            "lockdown",
            Status::Warn,
            "confidentiality: the kernel refuses BPF reads of its memory, so fields read at a kill may be null",
            "boot with lockdown=integrity or without lockdown",
        )
    } else {
        Check::ok("lockdown", mode)
    }
}

/// Whether BPF may be loaded, by the effective capabilities.
fn privileges(checks: &mut Vec<Check>) -> bool {
    let euid = rustix::process::geteuid().as_raw();
    let caps = effective_caps();
    let has = |bit: u32| caps.is_some_and(|c| c & (1 << bit) != 0);
    let (bpf, perfmon, sys_admin) = (has(39), has(38), has(21));
    let detail = format!(
        "euid {euid}, CAP_BPF {}, CAP_PERFMON {}, CAP_SYS_ADMIN {}",
        yes(bpf),
        yes(perfmon),
        yes(sys_admin)
    );
    let enough = sys_admin || (bpf && perfmon);
    checks.push(if enough {
        Check::ok("privileges", detail)
    } else {
        Check::problem("privileges", Status::Fail, detail, ROOT_FIX)
    });
    enough
}

/// The cgroup checks; whether this is a Kubernetes node (kubepods present).
fn cgroups(node: &NodeArgs, checks: &mut Vec<Check>) -> bool {
    let layout = match Layout::detect(&node.cgroup_root) {
        Ok(l) => l,
        Err(e) => {
            checks.push(Check::problem(
                "cgroups",
                Status::Fail,
                e.to_string(),
                "mount cgroupfs (the host's /sys/fs/cgroup, in a pod a hostPath volume) or give its mount point with --cgroup-root",
            ));
            return false;
        }
    };
    let tree = CgroupTree::scan(&layout).ok();
    checks.push(Check::ok(
        "cgroups",
        format!(
            "{:?}, memory controller at {} ({} cgroups){}",
            layout.version,
            layout.memory_root.display(),
            tree.as_ref().map_or(0, |t| t.len()),
            if layout.version == Version::V1 {
                format!(", hierarchy id {}", layout.hierarchy_id)
            } else {
                String::new()
            }
        ),
    ));
    checks.push(
        match tree
            .as_ref()
            .and_then(|t| CgroupNamespace::detect(t, &layout))
        {
            None => Check::ok("cgroupns", "the host's: /proc/PID/cgroup paths are the node's"),
            Some(CgroupNamespace { root: Some(root) }) => Check::ok(
                "cgroupns",
                format!("private, rooted at {root}: /proc/PID/cgroup paths are resolved against it"),
            ),
            Some(CgroupNamespace { root: None }) => Check::problem(
                "cgroupns",
                Status::Fail,
                "a private cgroup namespace whose root is in no cgroup.procs of the mounted hierarchy",
                "run with hostPID and the host's cgroupfs mounted",
            ),
        },
    );
    let kube = ["kubepods", "kubepods.slice"]
        .iter()
        .find(|k| layout.memory_root.join(k).is_dir());
    checks.push(Check::ok(
        "kubelet",
        match kube {
            Some(k) => format!(
                "{k} present (cgroup driver: {})",
                if k.ends_with(".slice") {
                    "systemd"
                } else {
                    "cgroupfs"
                }
            ),
            None => "no kubepods cgroup: not a Kubernetes node (host processes still get verdicts)"
                .into(),
        },
    ));
    kube.is_some()
}

/// The kubelet's files oomtrace names pods from. Off a Kubernetes node
/// there is nothing for them to name, so their absence is no problem.
fn sources(node: &NodeArgs, kube: bool, checks: &mut Vec<Check>) {
    let rows: [(&str, &Path, bool, &str, &str, &str); 2] = [
        (
            "pod names",
            &node.pods_log_dir,
            node.pods_log_dir.is_dir(),
            "pod namespace/name will be null",
            "--pods-log-dir",
            "/var/log/pods",
        ),
        (
            "containers",
            &node.containers_log_dir,
            node.containers_log_dir.is_dir(),
            "container names will be null",
            "--containers-log-dir",
            "/var/log/containers",
        ),
    ];
    for (name, path, present, without, flag, default) in rows {
        let check = if present {
            Check::ok(name, format!("{} present", path.display()))
        } else if !kube {
            Check::ok(
                name,
                format!("{} missing (not needed off Kubernetes)", path.display()),
            )
        } else {
            Check::problem(
                name,
                Status::Warn,
                format!("{} missing: {without}", path.display()),
                format!(
                    "mount the host's {default} (hostPath, read-only) or give its path with {flag}"
                ),
            )
        };
        checks.push(check);
    }
    checks.push(kubelet_config(node, kube));
}

/// Which kubelet config the daemon would read: the given one, or the first
/// of the known places (kubeadm, EKS, GKE, k3s), or none and what that costs.
fn kubelet_config(node: &NodeArgs, kube: bool) -> Check {
    use crate::kubelet_config::{resolve, unmerged_drop_ins, Found, KNOWN};
    const NAME: &str = "kubelet cfg";
    const WITHOUT: &str = "eviction thresholds taken as the kubelet's defaults (memory.available<100Mi, no soft threshold): an eviction under a threshold set otherwise is judged against the wrong one";
    let found = resolve(node.kubelet_config.as_deref(), Path::new("/"));
    let thresholds = |p: &Path| {
        let t = oomtrace_core::node::kubelet::read_threshold(p);
        match &t.soft {
            Some(s) => format!("{}; {}", t.source, s.source),
            None => t.source,
        }
    };
    match found {
        Found::Given(p) if p.is_file() => Check::ok(NAME, format!("{} (given): {}", p.display(), thresholds(&p))),
        Found::Given(p) => Check::problem(
            NAME,
            if kube { Status::Warn } else { Status::Ok },
            format!("{} (given) missing: {WITHOUT}", p.display()),
            "give the kubelet's --config file, or leave --kubelet-config out to look in the known places",
        ),
        Found::Known(p, who) => {
            let mut check = Check::ok(NAME, format!("{} ({who}): {}", p.display(), thresholds(&p)));
            let others = unmerged_drop_ins(&p);
            if !others.is_empty() {
                check = Check::problem(
                    NAME,
                    Status::Warn,
                    format!(
                        "{} ({who}): {}; drop-ins after it are not merged: {}",
                        p.display(),
                        thresholds(&p),
                        others.iter().map(|o| o.display().to_string()).collect::<Vec<_>>().join(", ")
                    ),
                    "give the drop-in that sets evictionHard/evictionSoft with --kubelet-config",
                );
            }
            check
        }
        Found::None if !kube => Check::ok(NAME, "none found (not needed off Kubernetes)"),
        Found::None => Check::problem(
            NAME,
            Status::Warn,
            format!(
                "none found at {}: {WITHOUT}",
                KNOWN.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(", ")
            ),
            "mount the directory of the kubelet's --config file at its own path (hostPath, read-only), or give it with --kubelet-config",
        ),
    }
}

fn kernel_log() -> Check {
    match fs::File::open("/dev/kmsg") {
        Ok(_) => Check::ok("kernel log", "/dev/kmsg readable"),
        Err(e) => {
            let fix = match e.kind() {
                io::ErrorKind::NotFound => "no /dev/kmsg here: in a container, mount the host's /dev/kmsg (hostPath, type CharDevice)",
                _ => "reading /dev/kmsg needs root or CAP_SYSLOG (kernel.dmesg_restrict=1 hides it from everyone else)",
            };
            Check::problem(
                "kernel log",
                Status::Warn,
                format!("/dev/kmsg unreadable ({e}): kills are seen by the victim hook only, without the kernel's OOM report (memory at the kill) nor kills made while oomtrace was down"),
                fix,
            )
        }
    }
}

fn tracefs_check(found: Result<String, String>, mounted_by_us: bool) -> Check {
    match found {
        Ok(p) => Check::ok(
            "tracefs",
            if mounted_by_us {
                format!("{p} (mounted by oomtrace)")
            } else {
                p
            },
        ),
        Err(e) => {
            let fix = if e.ends_with("it needs root") {
                ROOT_FIX
            } else {
                "mount -t tracefs nodev /sys/kernel/tracing (in a pod: a hostPath volume of /sys/kernel/tracing, or privileged)"
            };
            Check::problem(
                "tracefs",
                Status::Warn,
                format!("{e}: the tracepoint and kprobe hooks cannot attach"),
                fix,
            )
        }
    }
}

fn btf_check(found: Result<String, String>) -> Check {
    match found {
        Ok(p) => Check::ok("btf", format!("{p}: every offset resolved")),
        Err(e) => Check::problem(
            "btf",
            Status::Warn,
            format!("{e}: the BTF hooks (fentry, tp_btf, raw_tp) cannot attach"),
            "a kernel built with CONFIG_DEBUG_INFO_BTF=y has /sys/kernel/btf/vmlinux; else give a BTF file of this exact kernel (e.g. from BTFHub) with --btf",
        ),
    }
}

fn kprobes_check(available: bool, oom_fentry: bool) -> Check {
    if available {
        Check::ok("kprobes", "available")
    } else if oom_fentry {
        Check::ok(
            "kprobes",
            "not in this kernel (not needed: oom took fentry)",
        )
    } else {
        Check::problem(
            "kprobes",
            Status::Warn,
            "not in this kernel: the kprobe rows (oom, and victim's on mark_oom_victim) cannot attach where fentry does not",
            "a kernel with CONFIG_KPROBES=y and CONFIG_KPROBE_EVENTS=y",
        )
    }
}

/// Whether the function tracer offers `func`: fentry attaches through
/// ftrace (a BPF trampoline), so a kernel that hides or forbids its function
/// list (this project's 6.18 host answers EPERM) explains a refused fentry.
fn function_tracing(tracefs: &Path, func: &str, attached: bool) -> Check {
    let list = tracefs.join("available_filter_functions");
    let problem = match fs::File::open(&list) {
        Ok(f) => {
            // Lines are `name` or `name [module]`.
            let found = io::BufRead::lines(io::BufReader::new(f))
                .map_while(Result::ok)
                .any(|l| l.split_whitespace().next() == Some(func));
            if found {
                return Check::ok("ftrace", format!("{func} traceable (fentry can attach there)"));
            }
            format!("{func} not in available_filter_functions: fentry cannot attach there")
        }
        Err(e) => format!(
            "function list unreadable ({}: {e}): the function tracer is restricted on this kernel, and fentry attaches through it",
            list.display()
        ),
    };
    if attached {
        return Check::ok("ftrace", format!("{problem} (yet fentry attached)"));
    }
    Check::problem(
        "ftrace",
        Status::Warn,
        problem,
        "a kernel with CONFIG_FUNCTION_TRACER=y and CONFIG_DYNAMIC_FTRACE=y whose function tracer no security module restricts; else the kprobe fallback (CONFIG_KPROBES=y)",
    )
}

/// One family's row; `log_problem`: why /dev/kmsg is unreadable, if it is
/// (without a victim hook the kernel log is then the only source of kills).
fn hook_check(c: &Choice, log_problem: Option<&str>) -> Check {
    let name = format!("hook {}", c.family.name());
    // The row of a kind: where it hooks (the victim family hooks the
    // tracepoint mark_victim, or the function mark_oom_victim that emits it).
    let row = |k: HookKind| c.family.probes().find(|p| p.kind == k);
    let on = |k: HookKind| row(k).map_or_else(String::new, |p| format!(" on {}", p.hooked()));
    let notes = c
        .skipped
        .iter()
        .map(|s| match row(s.kind) {
            Some(p) => format!(
                "skipped {:<10} ({}) {}",
                s.kind.name(),
                p.hooked(),
                s.reason
            ),
            None => format!("skipped {:<10} {}", s.kind.name(), s.reason),
        })
        .collect();
    let asked = |reason: &str| reason.contains("--hooks");
    let mut check = match c.chosen {
        // The best kind, or one that reports all the best would (the victim
        // read at mark_oom_victim), or a lesser one --hooks asked for.
        Some(k)
            if c.family.candidates().next() == Some(k)
                || c.skipped.iter().any(|s| asked(&s.reason)) =>
        {
            Check::ok(name, format!("{}{}", k.name(), on(k)))
        }
        Some(k) if row(k).is_some_and(|p| p.as_good_as_best) => Check::ok(
            name,
            format!(
                "{}{} (reports all the best kind would; the better kinds were skipped for the reasons below)",
                k.name(),
                on(k)
            ),
        ),
        Some(k) => Check::problem(
            name,
            Status::Warn,
            format!("{}{} (a fallback)", k.name(), on(k)),
            "the better kinds were skipped for the reasons below: the btf, tracefs and ftrace checks say what they need",
        ),
        None if c.family.sees_kills() => match log_problem {
            None => Check::problem(
                name,
                Status::Warn,
                format!(
                    "none: kills are seen from the kernel log only ({}): each verdict rests on the \
                     kernel's own `oom-kill:` and `Killed process` lines (basis kernel_log), without \
                     the victim's namespaces (kubelet_reports may be null), and when the kernel \
                     rate-limits its report (at most 10 per 5 s) without the victim's cgroup and memory",
                    if c.skipped.iter().all(|s| asked(&s.reason)) {
                        "turned off by --hooks"
                    } else {
                        "no kind attached, for the reasons below"
                    }
                ),
                "the reasons below say what each kind needs (tp_btf and raw_tp: kernel BTF and a tracepoint mark_victim with the task; fentry and kprobe: kernel BTF and the function mark_oom_victim, not inlined, fentry through ftrace, kprobe with kprobes; tracepoint: tracefs and mark_victim's pid): see the btf, tracefs, kprobes and ftrace checks",
            ),
            Some(why) => Check::problem(
                name,
                Status::Fail,
                format!("none attaches, and the kernel log cannot stand in ({why}): no kill can be seen"),
                "a victim hook (see the reasons below, the btf and tracefs checks) or a readable /dev/kmsg (see the kernel log check)",
            ),
        },
        // Off as asked (or by default): not a problem.
        None if c.family.off_by_default().is_some()
            || c.skipped.iter().all(|s| asked(&s.reason)) =>
        {
            Check::ok(name, "off")
        }
        None => Check::problem(
            name,
            Status::Warn,
            match c.family {
                Family::Oom => "none: the constraint and the OOMing cgroup come from the kernel log's summary line of each kill, else the memcg counters read at the kill (a cpuset or mempolicy constraint only from the log)",
                Family::Limit => "none: a limit lowered before a kill is known from readings of it only (the start-up scan, the near_oom sampler, reclaim records), so how long before the kill is a bound (\"at most\"), not the write's moment",
                _ => "none: what it reports is missing",
            },
            "the reasons below say what each kind needs: see the btf, tracefs, kprobes and ftrace checks",
        ),
    };
    check.notes = notes;
    check
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// CapEff of /proc/self/status.
fn effective_caps() -> Option<u64> {
    procfs::process::Process::myself()
        .and_then(|me| me.status())
        .ok()
        .map(|s| s.capeff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oomtrace_core::kernel::hooks::Skipped;

    fn choice(family: Family, chosen: Option<HookKind>, skipped: &[(HookKind, &str)]) -> Choice {
        Choice {
            family,
            chosen,
            skipped: skipped
                .iter()
                .map(|&(kind, reason)| Skipped {
                    kind,
                    reason: reason.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn the_worst_check_is_the_exit_status() {
        let ok = || Check::ok("a", "fine");
        let warn = || Check::problem("b", Status::Warn, "meh", "fix it");
        let fail = || Check::problem("c", Status::Fail, "no", "fix it");
        assert_eq!(exit_status(worst(&[ok(), ok()])), 0);
        assert_eq!(exit_status(worst(&[ok(), warn()])), 3);
        assert_eq!(exit_status(worst(&[warn(), fail(), ok()])), 1);
        assert_eq!(Report::new(vec![ok(), warn()], vec![]).verdict, "degraded");
    }

    #[test]
    fn hooks_are_judged_by_fallback_and_family() {
        let best = choice(
            Family::Victim,
            Some(HookKind::TpBtf),
            &[(HookKind::RawTp, "a better hook attached")],
        );
        assert_eq!(hook_check(&best, None).status, Status::Ok);
        let fallback = choice(
            Family::Victim,
            Some(HookKind::Tracepoint),
            &[(HookKind::TpBtf, "no usable kernel BTF")],
        );
        assert_eq!(hook_check(&fallback, None).status, Status::Warn);
        let forced = choice(
            Family::Victim,
            Some(HookKind::Tracepoint),
            &[(HookKind::TpBtf, "--hooks asked for victim=tracepoint")],
        );
        assert_eq!(hook_check(&forced, None).status, Status::Ok);
        // No victim hook: the kernel log alone gives verdicts (degraded);
        // with /dev/kmsg unreadable too, nothing can see a kill.
        let blind = choice(Family::Victim, None, &[(HookKind::TpBtf, "no BTF")]);
        let c = hook_check(&blind, None);
        assert_eq!(c.status, Status::Warn, "{c:?}");
        assert!(c.detail.contains("kernel log only"), "{c:?}");
        let c = hook_check(&blind, Some("/dev/kmsg unreadable (EPERM)"));
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(c.detail.contains("EPERM"), "{c:?}");
        let off = choice(
            Family::Victim,
            None,
            &[(HookKind::TpBtf, "turned off by --hooks")],
        );
        let c = hook_check(&off, None);
        assert_eq!(c.status, Status::Warn, "{c:?}");
        assert!(c.detail.contains("turned off by --hooks"), "{c:?}");
        let no_oom = choice(Family::Oom, None, &[(HookKind::Fentry, "EPERM")]);
        let c = hook_check(&no_oom, None);
        assert_eq!(c.status, Status::Warn);
        assert!(c.fix.is_some() && c.notes.len() == 1, "{c:?}");
        let off = choice(
            Family::Oom,
            None,
            &[(HookKind::Fentry, "turned off by --hooks")],
        );
        assert_eq!(hook_check(&off, None).status, Status::Ok);
        // No limit hook (this project's 6.18 host): lowered limits are bounds.
        let no_limit = choice(Family::Limit, None, &[(HookKind::Fentry, "EPERM")]);
        let c = hook_check(&no_limit, None);
        assert_eq!(c.status, Status::Warn);
        assert!(c.detail.contains("\"at most\""), "{c:?}");
    }

    #[test]
    fn text_marks_each_check_and_says_its_fix() {
        let r = Report::new(
            vec![
                Check::ok("kernel", "6.1"),
                Check::problem(
                    "kernel log",
                    Status::Warn,
                    "/dev/kmsg unreadable",
                    "needs CAP_SYSLOG",
                ),
            ],
            vec![],
        );
        let mut out = Vec::new();
        write_text(&mut out, &r).expect("write");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.contains("✓ kernel"), "{text}");
        assert!(text.contains("! kernel log"), "{text}");
        assert!(text.contains("fix: needs CAP_SYSLOG"), "{text}");
        assert!(text.contains("degraded (1 warning above)"), "{text}");
    }

    #[test]
    fn json_has_every_check_field() {
        let r = Report::new(
            vec![Check::problem(
                "btf",
                Status::Fail,
                "gone",
                "CONFIG_DEBUG_INFO_BTF=y",
            )],
            vec![choice(Family::Oom, Some(HookKind::Kprobe), &[])],
        );
        let v = serde_json::to_value(&r).expect("json");
        assert_eq!(v["verdict"], "cannot_run");
        let c = &v["checks"][0];
        for (k, want) in [("name", "btf"), ("status", "fail"), ("detail", "gone")] {
            assert_eq!(c[k], want, "{v}");
        }
        assert_eq!(c["fix"], "CONFIG_DEBUG_INFO_BTF=y");
        assert_eq!(v["hooks"][0]["chosen"], "kprobe", "{v}");
    }
}
