//! `oomtrace explain [FILE|-]`: verdicts from a saved log. Needs no root,
//! BPF or tracefs: the log is read by `oomtrace_core::explain`, each kill
//! judged by the backlog's rules, and written as `run` writes verdicts.

use std::{collections::BTreeMap, fs, io::Read, path::Path, process::ExitCode};

use anyhow::Context;
use oomtrace_core::{
    attribution::{self, Observed},
    explain::{self, Explained, LogNames, Logged},
    pods::{self, ContainerId, PodUid},
    sink::Line,
    verdict::{Identity, Memory, Names, Verdict},
};

use crate::cli::{ExplainArgs, Format};

pub fn run(a: ExplainArgs) -> anyhow::Result<ExitCode> {
    let input = read(&a.file)?;
    let opts = explain::Options {
        local_offset: a.utc_offset,
    };
    let found = match explain::explain_all(&input, opts) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("oomtrace: {}: {e}", name(&a.file));
            return Ok(ExitCode::from(2));
        }
    };
    let verdicts = verdicts(&found, &a.pods_log_dir, &a.containers_log_dir);
    if verdicts.is_empty() {
        eprintln!("oomtrace: no OOM kill found in {}, and no eviction", name(&a.file));
        note_without_outcome(&found);
        return Ok(ExitCode::SUCCESS);
    }
    let node = a.node_name.clone().unwrap_or_default();
    let mut sink = crate::daemon::make_sink(a.format.unwrap_or(Format::Json), node);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for v in verdicts {
        let label = match v.kind {
            Some(k) => format!(
                "{}/{}",
                json_name(&v.verdict),
                json_name(&k)
            ),
            None => json_name(&v.verdict),
        };
        *counts.entry(label).or_default() += 1;
        sink.write(&Line::Verdict(Box::new(v)))?;
    }
    let total: usize = counts.values().sum();
    let by: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    eprintln!(
        "oomtrace: {total} verdict{} from {}: {}",
        if total == 1 { "" } else { "s" },
        name(&a.file),
        by.join(", ")
    );
    note_without_outcome(&found);
    Ok(ExitCode::SUCCESS)
}

fn json_name<T: serde::Serialize>(t: &T) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn note_without_outcome(found: &Explained) {
    if found.without_outcome.is_empty() {
        return;
    }
    let lines: Vec<String> = found.without_outcome.iter().map(u64::to_string).collect();
    eprintln!(
        "oomtrace: {} OOM report{} began (line {}) but the log holds neither {} scope nor {} victim: no verdict",
        lines.len(),
        if lines.len() == 1 { "" } else { "s" },
        lines.join(", "),
        if lines.len() == 1 { "its" } else { "their" },
        if lines.len() == 1 { "its" } else { "their" },
    );
}

/// One verdict per kill, report without a victim, and eviction, in log order.
fn verdicts(found: &Explained, pods_dir: &Path, containers_dir: &Path) -> Vec<Verdict> {
    found
        .items
        .iter()
        .map(|item| match item {
            Logged::Kill(k) => {
                let assessment = attribution::from_saved_log(k);
                let (names, from) = names(&assessment.identity, &found.names, pods_dir, containers_dir);
                let seen = Observed {
                    memory: k
                        .past
                        .summary
                        .as_ref()
                        .and_then(|s| s.report.as_ref())
                        .map(Memory::from_report),
                    names,
                    ..Observed::default()
                };
                let mut v = attribution::verdict_from_log(assessment, seen);
                v.evidence.names_from = from;
                v
            }
            Logged::NoVictim(r) => {
                let identity = r
                    .report
                    .oom_memcg
                    .as_deref()
                    .map(Identity::of_path)
                    .unwrap_or_default();
                let (names, from) = names(&identity, &found.names, pods_dir, containers_dir);
                let seen = Observed {
                    memory: r.report.report.as_ref().map(Memory::from_report),
                    names,
                    ..Observed::default()
                };
                let mut v = attribution::verdict_from_unfinished(r, seen);
                v.evidence.names_from = from;
                v
            }
            Logged::Eviction(e) => attribution::verdict_from_kubelet_eviction(e),
        })
        .collect()
}

/// The kubelet's names: from its log directories when they exist here,
/// else from its own lines in the paste.
fn names(
    id: &Identity,
    logged: &LogNames,
    pods_dir: &Path,
    containers_dir: &Path,
) -> (Names, Option<&'static str>) {
    let uid = id.pod.as_ref().and_then(|p| p.uid.as_ref());
    let cid = id.container.as_ref().map(|c| &c.id);
    let from_dirs = Names {
        pod: uid.and_then(|u| pod_name(pods_dir, u)),
        container: cid.and_then(|c| container_name(containers_dir, c)),
    };
    if from_dirs.pod.is_some() || from_dirs.container.is_some() {
        return (from_dirs, Some("pods_log_dir"));
    }
    let by_container = cid.and_then(|c| logged.container(c.as_str()));
    let from_log = Names {
        pod: uid
            .and_then(|u| logged.pod(u.as_str()))
            .or_else(|| {
                let c = by_container?;
                Some((c.namespace.clone()?, c.name.clone()?))
            }),
        container: by_container.and_then(|c| c.container.clone()),
    };
    let any = from_log.pod.is_some() || from_log.container.is_some();
    (from_log, any.then_some("kubelet_log"))
}

fn name(file: &Path) -> String {
    match file.to_str() {
        Some("-") => "standard input".into(),
        _ => file.display().to_string(),
    }
}

fn read(file: &Path) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if file.to_str() == Some("-") {
        std::io::stdin()
            .lock()
            .read_to_end(&mut buf)
            .context("reading standard input")?;
    } else {
        buf = fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    }
    Ok(buf)
}

fn pod_name(dir: &Path, uid: &PodUid) -> Option<(String, String)> {
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(pods::parse_pod_log_dir))
        .find(|p| &p.uid == uid)
        .map(|p| (p.namespace, p.name))
}

fn container_name(dir: &Path, id: &ContainerId) -> Option<String> {
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(pods::parse_container_log_name)
        })
        .find(|c| &c.id == id)
        .map(|c| c.container)
}
