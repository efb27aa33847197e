//! `oomtrace explain [FILE|-]`: verdicts from a saved kernel log. Needs no
//! root, BPF or tracefs: the log is parsed by `oomtrace_core::explain`, each
//! kill judged by the backlog's rules, and written as `run` writes verdicts.

use std::{fs, io::Read, path::Path, process::ExitCode};

use anyhow::Context;
use oomtrace_core::{
    attribution::{self, Observed},
    explain,
    pods::{self, ContainerId, PodUid},
    sink::Line,
    verdict::{Identity, Memory, Names},
};

use crate::cli::{ExplainArgs, Format};

pub fn run(a: ExplainArgs) -> anyhow::Result<ExitCode> {
    let input = read(&a.file)?;
    let opts = explain::Options {
        local_offset: a.utc_offset,
    };
    let kills = match explain::explain_with(&input, opts) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("oomtrace: {}: {e}", name(&a.file));
            return Ok(ExitCode::from(2));
        }
    };
    if kills.is_empty() {
        eprintln!("oomtrace: no OOM kill found in {}", name(&a.file));
        return Ok(ExitCode::SUCCESS);
    }
    let node = a.node_name.clone().unwrap_or_default();
    let mut sink = crate::daemon::make_sink(a.format.unwrap_or(Format::Json), node);
    for k in &kills {
        let assessment = attribution::from_saved_log(k);
        let seen = Observed {
            memory: k
                .past
                .summary
                .as_ref()
                .and_then(|s| s.report.as_ref())
                .map(Memory::from_report),
            names: names(&assessment.identity, &a.pods_log_dir, &a.containers_log_dir),
            ..Observed::default()
        };
        let v = attribution::verdict_from_log(assessment, seen);
        sink.write(&Line::Verdict(Box::new(v)))?;
    }
    Ok(ExitCode::SUCCESS)
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

/// The kubelet's names, when its log directories exist here.
fn names(id: &Identity, pods_dir: &Path, containers_dir: &Path) -> Names {
    Names {
        pod: id.pod.as_ref().and_then(|p| pod_name(pods_dir, &p.uid)),
        container: id
            .container
            .as_ref()
            .and_then(|c| container_name(containers_dir, &c.id)),
    }
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
