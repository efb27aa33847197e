//! `oomtrace doctor`: what this node offers and which hook each family
//! takes, with the reason every other candidate was skipped. It loads and
//! attaches exactly as `run` does, then detaches.

use std::{fs, path::Path, process::ExitCode};

use oomtrace_core::{
    cgroup::{CgroupNamespace, CgroupTree, Layout},
    hooks::{self, Family, Target},
};

use crate::{cli::Common, daemon::kernel_release, loader};

pub fn run(common: Common) -> anyhow::Result<ExitCode> {
    let mut problems: Vec<String> = Vec::new();
    println!("oomtrace {} doctor", env!("CARGO_PKG_VERSION"));
    println!("kernel      {}", kernel_release());
    let lockdown = fs::read_to_string("/sys/kernel/security/lockdown")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    println!("lockdown    {lockdown}");

    let euid = rustix::process::geteuid();
    let caps = effective_caps();
    println!(
        "privileges  euid {}, CAP_BPF {}, CAP_PERFMON {}, CAP_SYS_ADMIN {}",
        euid.as_raw(),
        yes(caps.is_some_and(|c| c & (1 << 39) != 0)),
        yes(caps.is_some_and(|c| c & (1 << 38) != 0)),
        yes(caps.is_some_and(|c| c & (1 << 21) != 0)),
    );

    match Layout::detect(&common.cgroup_root) {
        Ok(layout) => {
            let tree = CgroupTree::scan(&layout).ok();
            let count = tree.as_ref().map_or(0, |t| t.len());
            println!(
                "cgroups     {:?}, memory controller at {} ({} cgroups){}",
                layout.version,
                layout.memory_root.display(),
                count,
                if layout.version == oomtrace_core::cgroup::Version::V1 {
                    format!(", hierarchy id {}", layout.hierarchy_id)
                } else {
                    String::new()
                }
            );
            match tree
                .as_ref()
                .and_then(|t| CgroupNamespace::detect(t, &layout))
            {
                None => println!("cgroupns    the host's: /proc/PID/cgroup paths are the node's"),
                Some(CgroupNamespace { root: Some(root) }) => println!(
                    "cgroupns    private, rooted at {root}: /proc/PID/cgroup paths are resolved against it"
                ),
                Some(CgroupNamespace { root: None }) => {
                    let e = "a private cgroup namespace whose root is in no cgroup.procs of the mounted hierarchy: run with hostPID and the host's cgroupfs mounted";
                    println!("cgroupns    ERROR {e}");
                    problems.push(e.to_string());
                }
            }
            let kube = ["kubepods", "kubepods.slice"]
                .iter()
                .find(|k| layout.memory_root.join(k).is_dir());
            println!("kubelet     {}", match kube {
                Some(k) => format!("{k} present (cgroup driver: {})", if k.ends_with(".slice") { "systemd" } else { "cgroupfs" }),
                None => "no kubepods cgroup: not a Kubernetes node (host processes still get verdicts)".into(),
            });
        }
        Err(e) => {
            println!("cgroups     ERROR {e}");
            problems.push(e.to_string());
        }
    }
    println!(
        "pod names   {} {}",
        common.pods_log_dir.display(),
        if common.pods_log_dir.is_dir() {
            "present"
        } else {
            "missing: pod namespace/name will be null"
        }
    );
    println!(
        "kernel log  /dev/kmsg {}",
        match fs::File::open("/dev/kmsg") {
            Ok(_) => "readable".to_string(),
            Err(e) => format!("unreadable: {e}"),
        }
    );

    match loader::load(&common.btf, &common.hooks, common.ring_buffer_bytes) {
        Ok(loaded) => {
            let f = &loaded.facts;
            println!(
                "tracefs     {}",
                match &f.tracefs {
                    Ok(p) => format!(
                        "{p}{}",
                        if f.tracefs_mounted_by_us {
                            " (mounted by oomtrace)"
                        } else {
                            ""
                        }
                    ),
                    Err(e) => format!("ERROR {e}"),
                }
            );
            println!(
                "btf         {}",
                match &f.btf {
                    Ok(p) => format!("{p}: every offset resolved"),
                    Err(e) => format!("ERROR {e}"),
                }
            );
            println!(
                "kprobes     {}",
                if f.kprobes {
                    "available"
                } else {
                    "not in this kernel"
                }
            );
            if let Ok(dir) = &f.tracefs {
                // Every fentry target of the probe table.
                for (_, spec) in hooks::table_programs() {
                    if let Target::Fentry(func) = spec.target {
                        println!("ftrace      {}", function_tracing(Path::new(dir), func));
                    }
                }
            }
            println!("hooks");
            for c in &loaded.choices {
                println!(
                    "  {:<7} {}",
                    c.family.name(),
                    match c.chosen {
                        Some(k) => k.name(),
                        // Off as asked (or by default): not a problem.
                        None if c.family.off_by_default().is_some()
                            || c.skipped.iter().all(|s| s.reason.contains("--hooks")) =>
                        {
                            "off"
                        }
                        None => "NONE",
                    }
                );
                for s in &c.skipped {
                    println!("          skipped {:<10} {}", s.kind.name(), s.reason);
                }
                if c.chosen.is_none() && c.family == Family::Victim {
                    problems
                        .push("no hook on oom:mark_victim attaches: no kill can be seen".into());
                }
                if c.chosen.is_none() && c.family == Family::Oom {
                    println!("          (constraint and OOMing cgroup come from the memcg counters read at each kill, then the kernel log)");
                }
            }
        }
        Err(e) => {
            println!("hooks       ERROR {e:#}");
            problems.push(format!("{e:#}"));
        }
    }
    if problems.is_empty() {
        println!("verdict     oomtrace can run here");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("verdict     oomtrace cannot run here:");
        for p in problems {
            println!("  - {p}");
        }
        Ok(ExitCode::FAILURE)
    }
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

/// Whether the function tracer offers `func`: fentry attaches through
/// ftrace (a BPF trampoline), so a kernel that hides or forbids its function
/// list (this project's 6.18 host answers EPERM) explains a refused fentry.
fn function_tracing(tracefs: &Path, func: &str) -> String {
    let list = tracefs.join("available_filter_functions");
    match fs::File::open(&list) {
        Ok(f) => {
            // Lines are `name` or `name [module]`.
            let found = std::io::BufRead::lines(std::io::BufReader::new(f))
                .map_while(Result::ok)
                .any(|l| l.split_whitespace().next() == Some(func));
            if found {
                format!("{func} traceable (fentry can attach there)")
            } else {
                format!("{func} not in available_filter_functions: fentry cannot attach there")
            }
        }
        Err(e) => format!(
            "function list unreadable ({}: {e}): the function tracer is restricted on this kernel, and fentry attaches through it",
            list.display()
        ),
    }
}
