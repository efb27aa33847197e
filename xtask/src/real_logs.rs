//! `oomtrace explain` against logs nobody here wrote: the real OOM reports
//! and kubelet lines people pasted into public trackers, kept beside the
//! project in `../shared/real-logs` (never copied into it). Each file's
//! conclusions, as its README states them, are written here as the
//! verdicts a careful reader expects: every kill and eviction found with
//! its verdict, kind, limit cgroup and pod, and nothing more (a verdict the
//! text does not support is a failure).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _};
use serde_json::Value;

/// One expected verdict: the victim's pid (None: the log does not name
/// it), verdict and kind, the end of the limit cgroup's path (None: null),
/// and the pod uid's start (None: null).
struct Want {
    pid: Option<u64>,
    verdict: &'static str,
    kind: Option<&'static str>,
    limit_ends: Option<&'static str>,
    pod: Option<&'static str>,
    /// Evictions: the pod's namespace/name.
    pod_name: Option<&'static str>,
}

const fn kill(
    pid: u64,
    verdict: &'static str,
    kind: Option<&'static str>,
    limit_ends: Option<&'static str>,
    pod: Option<&'static str>,
) -> Want {
    Want {
        pid: Some(pid),
        verdict,
        kind,
        limit_ends,
        pod,
        pod_name: None,
    }
}

const fn eviction(pod_name: &'static str) -> Want {
    Want {
        pid: None,
        verdict: "node_pressure",
        kind: Some("eviction"),
        limit_ends: None,
        pod: None,
        pod_name: Some(pod_name),
    }
}

const MEMCG_UNKNOWN: Want = Want {
    pid: None,
    verdict: "cgroup_limit",
    kind: None,
    limit_ends: None,
    pod: None,
    pod_name: None,
};

/// The README's conclusions, file by file (by the file's number).
fn expected(file: &str) -> Option<Vec<Want>> {
    let n = file.split('-').next()?;
    Some(match n {
        "01" => vec![kill(13536, "system", None, Some("/mem2"), None)],
        "02" => vec![kill(1532, "node_pressure", Some("system_oom"), None, None)],
        "03" => vec![
            kill(
                1381,
                "pod_limit",
                None,
                Some("/docker/2e088fe462e25e60be1dafafe2c05c47bda1a97978648d10ad2b7484fc0b8f50"),
                None,
            ),
            kill(
                1667,
                "pod_limit",
                None,
                Some("/docker/6c6fcab8562fd3150854986b78552c732f234fd405b624207b8843528a145e70"),
                None,
            ),
        ],
        "05" => vec![Want {
            pid: None,
            verdict: "pod_limit",
            kind: None,
            limit_ends: Some(
                "/docker-b27201334a41cd0749d053b18378d7ea65617b8e26277197ea25c974da1a5a8a.scope",
            ),
            pod: Some("0330b2c1-"),
            pod_name: None,
        }],
        "07" => vec![Want {
            pid: Some(387951),
            ..MEMCG_UNKNOWN
        }],
        "09" => vec![kill(
            3967383,
            "pod_limit",
            None,
            Some("/pod62015ce8-a46f-4b0e-a5a1-3082235c62dd"),
            Some("62015ce8-"),
        )],
        "10" => vec![kill(
            2908,
            "pod_limit",
            None,
            Some("/podcb4794b7-954b-4831-81cf-403d83ad22a4"),
            Some("cb4794b7-"),
        )],
        "12" => vec![kill(989, "system", None, Some("/podruntime.slice"), None)],
        "13" => vec![kill(
            183960,
            "pod_limit",
            None,
            Some("-pod5931aa75_4603_4e65_b552_7c71cf55cfb5.slice"),
            Some("5931aa75-"),
        )],
        "15" => {
            let mut v = vec![kill(135564, "pod_limit", None, Some("/cri-containerd-b6f10b59e59e4a6ded45057def7d5b74a9e2a9276882b284271c55cb6153f6fd.scope"), Some("c7483131-"))];
            for pid in [140339, 141313, 141314, 141315, 141316, 141317, 141320] {
                v.push(Want {
                    pid: Some(pid),
                    ..MEMCG_UNKNOWN
                });
            }
            v
        }
        "16" => vec![kill(
            184260,
            "pod_limit",
            None,
            Some("-pod58dc1221_d430_496e_951d_e8cb23caaead.slice"),
            Some("58dc1221-"),
        )],
        "17" => vec![Want {
            pid: None,
            verdict: "system",
            kind: None,
            limit_ends: Some("/azure-walinuxagent-logcollector.slice"),
            pod: None,
            pod_name: None,
        }],
        "19" => vec![
            kill(5574, "node_pressure", Some("system_oom"), None, None),
            kill(3362909, "node_pressure", Some("system_oom"), None, None),
        ],
        "20" => vec![eviction("default/nginx")],
        "21" => vec![eviction("sre/infras-logstash-d484d57fc-rkx95")],
        "24" | "25" => vec![],
        _ => return None,
    })
}

/// The folder of real logs, when this checkout sits beside `shared/`
/// (or `OOMTRACE_REAL_LOGS` names it).
fn folder(root: &Path) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("OOMTRACE_REAL_LOGS") {
        return Some(PathBuf::from(p));
    }
    let p = root.parent()?.join("shared/real-logs");
    p.is_dir().then_some(p)
}

/// Runs `oomtrace explain` over every file of the folder and compares
/// with the conclusions above; says so when the folder is absent.
pub fn check(root: &Path, oomtrace: &Path) -> anyhow::Result<()> {
    let Some(dir) = folder(root) else {
        eprintln!(
            "xtask: real logs: no ../shared/real-logs beside this checkout (nor OOMTRACE_REAL_LOGS): not checked"
        );
        return Ok(());
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    let mut failures = Vec::new();
    let mut unscored = 0;
    for path in &files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let out = Command::new(oomtrace)
            .arg("explain")
            .arg(path)
            .output()
            .with_context(|| format!("running {} explain", oomtrace.display()))?;
        if !out.status.success() {
            failures.push(format!("{name}: exit {:?}", out.status.code()));
            continue;
        }
        let got: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let Some(want) = expected(&name) else {
            // A file added to the folder later: run, never a panic, but no
            // conclusion to compare with.
            unscored += 1;
            eprintln!(
                "xtask: real logs: {name}: {} verdicts (no expectation written)",
                got.len()
            );
            continue;
        };
        match compare(&got, &want) {
            Ok(()) => eprintln!("xtask: real logs: {name}: ok ({} verdicts)", got.len()),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    eprintln!(
        "xtask: real logs: ran `oomtrace explain` on {} files of {} ({} without an expectation)",
        files.len(),
        dir.display(),
        unscored
    );
    if !failures.is_empty() {
        bail!("real logs: {}", failures.join("; "));
    }
    Ok(())
}

fn compare(got: &[Value], want: &[Want]) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!(
            "{} verdicts, want {}: {}",
            got.len(),
            want.len(),
            got.iter()
                .map(|v| v["summary"].as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
                .join(" | ")
        ));
    }
    for (v, w) in got.iter().zip(want) {
        let ctx = v["summary"].as_str().unwrap_or_default();
        let pid = v["victim"]["pid"].as_u64();
        if pid != w.pid {
            return Err(format!("victim pid {pid:?}, want {:?}: {ctx}", w.pid));
        }
        if v["verdict"] != w.verdict || v["kind"].as_str() != w.kind {
            return Err(format!(
                "{} {}, want {} {:?}: {ctx}",
                v["verdict"], v["kind"], w.verdict, w.kind
            ));
        }
        let limit = v["limit"]["cgroup"].as_str();
        let limit_ok = match (limit, w.limit_ends) {
            (None, None) => true,
            (Some(l), Some(end)) => l.ends_with(end),
            _ => false,
        };
        if !limit_ok {
            return Err(format!("limit {limit:?}, want …{:?}: {ctx}", w.limit_ends));
        }
        let pod = v["pod"]["uid"].as_str();
        let pod_ok = match (pod, w.pod) {
            (None, None) => true,
            (Some(p), Some(start)) => p.starts_with(start),
            _ => false,
        };
        if !pod_ok && w.pod_name.is_none() {
            return Err(format!("pod {pod:?}, want {:?}…: {ctx}", w.pod));
        }
        if let Some(name) = w.pod_name {
            let got = format!(
                "{}/{}",
                v["pod"]["namespace"].as_str().unwrap_or_default(),
                v["pod"]["name"].as_str().unwrap_or_default()
            );
            if got != name {
                return Err(format!("pod {got}, want {name}: {ctx}"));
            }
        }
    }
    Ok(())
}
