//! `cargo xtask manifests`, the first step of `cargo xtask test`: deploy/
//! rendered and checked on the host, no root, no VM, seconds once its
//! tools are installed:
//!
//! - each kustomization (deploy/base, deploy/overlays/privileged,
//!   deploy/monitoring) rendered by tests/src/kustomize.rs, and compared
//!   with `kubectl kustomize` where kubectl is on PATH (no package
//!   registry oomtrace uses ships kustomize or kubectl);
//! - every Kubernetes object validated strictly (unknown fields fail)
//!   against the API schemas of the oldest and newest Kubernetes oomtrace
//!   supports ([`KUBERNETES`]) by PyPI's kubernetes-validate, in a venv
//!   under the target directory;
//! - the Prometheus Operator objects, whose CRDs kubernetes-validate has no
//!   schema for, against the fields of their CRDs that oomtrace may use
//!   ([`crd_fields`]), and the PodMonitor against the DaemonSet it scrapes;
//! - the PrometheusRule's groups by Debian's promtool: `check rules`, and
//!   `test rules` with deploy/monitoring/prometheusrule.test.yaml; every
//!   metric and label its expressions name is one oomtrace/src/metrics.rs
//!   exports.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _};
use serde_json::Value;

use oomtrace_e2e::kustomize;

/// The Kubernetes versions the manifests are validated for: 1.30 is the
/// first with `appArmorProfile` in the securityContext (and
/// `recursiveReadOnly` on mounts), which the DaemonSet sets; the newest is
/// the newest kubernetes-validate knows.
pub const KUBERNETES: &[&str] = &["1.30.0", "1.37.0"];
const KUBERNETES_VALIDATE: &str = "1.37.0";
/// The kustomizations, by the name their rendering is written under.
pub const KUSTOMIZATIONS: &[(&str, &str)] = &[
    ("base", "deploy/base"),
    ("privileged", "deploy/overlays/privileged"),
    ("monitoring", "deploy/monitoring"),
];
const PLAIN: &[&str] = &["deploy/debug-pod.yaml"];
const PROMTOOL: &str = "/usr/bin/promtool";

pub fn check(root: &Path, target: &Path) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let out = target.join("manifests");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    let kubectl = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut kube_files = Vec::new();
    let mut rendered = Vec::new();
    for (name, dir) in KUSTOMIZATIONS {
        let objects = kustomize::build(&root.join(dir)).map_err(anyhow::Error::msg)?;
        if kubectl {
            let theirs = Command::new("kubectl")
                .args(["kustomize"])
                .arg(root.join(dir))
                .output()
                .context("kubectl kustomize")?;
            if !theirs.status.success() {
                bail!(
                    "kubectl kustomize {dir}: {}",
                    String::from_utf8_lossy(&theirs.stderr)
                );
            }
            let tmp = out.join(format!("{name}.kubectl.yaml"));
            std::fs::write(&tmp, &theirs.stdout)?;
            let theirs = kustomize::documents(&tmp).map_err(anyhow::Error::msg)?;
            if sorted(&theirs) != sorted(&objects) {
                bail!("{dir}: tests/src/kustomize.rs renders otherwise than `kubectl kustomize` ({} beside {})", out.join(format!("{name}.yaml")).display(), tmp.display());
            }
        }
        let file = out.join(format!("{name}.yaml"));
        write_documents(&file, &objects)?;
        if *name != "monitoring" {
            kube_files.push(file);
        }
        rendered.push((name.to_string(), objects));
    }
    eprintln!(
        "xtask: manifests: {} rendered{}",
        KUSTOMIZATIONS
            .iter()
            .map(|(_, d)| *d)
            .collect::<Vec<_>>()
            .join(", "),
        if kubectl {
            " (as `kubectl kustomize` renders them)"
        } else {
            " (no kubectl here to compare with)"
        }
    );
    for p in PLAIN {
        kube_files.push(root.join(p));
    }

    // The Kubernetes API objects, strictly, for each version.
    let validate = ensure_kubernetes_validate(target)?;
    for version in KUBERNETES {
        let status = Command::new(&validate)
            .args(["--strict", "--quiet", "-k", version])
            .args(&kube_files)
            .status()
            .with_context(|| format!("running {}", validate.display()))?;
        if !status.success() {
            bail!("kubernetes-validate --strict -k {version} failed on deploy/ (above)");
        }
    }
    eprintln!(
        "xtask: manifests: every Kubernetes object valid (strict) for Kubernetes {}",
        KUBERNETES.join(" and ")
    );

    // The Prometheus Operator objects.
    let monitoring = &rendered
        .iter()
        .find(|(n, _)| n == "monitoring")
        .context("deploy/monitoring")?
        .1;
    let base = &rendered
        .iter()
        .find(|(n, _)| n == "base")
        .context("deploy/base")?
        .1;
    for obj in monitoring {
        let kind = obj["kind"].as_str().unwrap_or_default();
        if obj["apiVersion"] != "monitoring.coreos.com/v1" {
            bail!("deploy/monitoring: {kind} is not monitoring.coreos.com/v1");
        }
        let fields = crd_fields(kind).with_context(|| format!("deploy/monitoring: kind {kind}"))?;
        let mut errors = Vec::new();
        check_fields(obj, &fields, kind, &mut errors);
        if !errors.is_empty() {
            bail!("deploy/monitoring: {}", errors.join("; "));
        }
    }
    check_pod_monitor(monitoring, base)?;
    let rule = monitoring
        .iter()
        .find(|o| o["kind"] == "PrometheusRule")
        .context("deploy/monitoring has no PrometheusRule")?;
    check_names_against_metrics(rule, &root.join("oomtrace/src/metrics.rs"))?;

    // promtool on the rule groups, as the operator hands them to Prometheus.
    ensure_promtool()?;
    let rules = out.join("prometheusrule.rules.yaml");
    std::fs::write(
        &rules,
        serde_json::to_string_pretty(&serde_json::json!({"groups": rule["spec"]["groups"]}))?,
    )?;
    let test = out.join("prometheusrule.test.yaml");
    std::fs::copy(
        root.join("deploy/monitoring/prometheusrule.test.yaml"),
        &test,
    )?;
    for args in [&["check", "rules"][..], &["test", "rules"][..]] {
        let file = if args[0] == "check" { &rules } else { &test };
        let o = Command::new(PROMTOOL)
            .args(args)
            .arg(file.file_name().context("name")?)
            .current_dir(&out)
            .output()
            .context("running promtool")?;
        if !o.status.success() {
            bail!(
                "promtool {} {}:\n{}{}",
                args.join(" "),
                file.display(),
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
    eprintln!(
        "xtask: manifests: PodMonitor and PrometheusRule fields known, promtool check rules and test rules pass ({:.1} s in all)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn sorted(objects: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = objects.iter().map(|o| o.to_string()).collect();
    v.sort();
    v
}

fn write_documents(file: &Path, objects: &[Value]) -> anyhow::Result<()> {
    let text: Vec<String> = objects
        .iter()
        .map(serde_json::to_string_pretty)
        .collect::<Result<_, _>>()?;
    std::fs::write(file, text.join("\n---\n") + "\n")
        .with_context(|| format!("writing {}", file.display()))
}

/// kubernetes-validate in a venv of Debian's python3 under the target
/// directory, installed from PyPI when missing or another version.
fn ensure_kubernetes_validate(target: &Path) -> anyhow::Result<PathBuf> {
    let venv = target.join("kubernetes-validate-venv");
    let bin = venv.join("bin/kubernetes-validate");
    let have = Command::new(&bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(KUBERNETES_VALIDATE));
    if have {
        return Ok(bin);
    }
    let missing = crate::setup::missing(&["python3", "python3-venv"]);
    if !missing.is_empty() {
        crate::setup::apt_install_with(&missing, false)?;
    }
    eprintln!(
        "xtask: manifests: installing kubernetes-validate {KUBERNETES_VALIDATE} into {}",
        venv.display()
    );
    let _ = std::fs::remove_dir_all(&venv);
    crate::setup::run(
        "/usr/bin/python3",
        &["-m", "venv", &venv.display().to_string()],
    )?;
    crate::setup::run(
        &venv.join("bin/pip").display().to_string(),
        &[
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("kubernetes-validate=={KUBERNETES_VALIDATE}"),
        ],
    )?;
    Ok(bin)
}

/// promtool from Debian's prometheus package (also the metrics test's).
fn ensure_promtool() -> anyhow::Result<()> {
    let missing = crate::setup::missing(&["prometheus"]);
    if !missing.is_empty() {
        // Without Recommends: no node-exporter service from a test run.
        crate::setup::apt_install_with(&missing, false)?;
    }
    Ok(())
}

/// A field tree: the keys an object may have, each with what its value
/// may be.
#[derive(Clone, Debug)]
pub enum Field {
    Str,
    Bool,
    /// A string from a fixed set.
    OneOf(&'static [&'static str]),
    /// Any string keys, string values (labels, annotations).
    StrMap,
    List(Box<Field>),
    Object(Vec<(&'static str, Field)>),
}

fn obj(fields: Vec<(&'static str, Field)>) -> Field {
    Field::Object(fields)
}

fn list(f: Field) -> Field {
    Field::List(Box::new(f))
}

fn metadata() -> Field {
    obj(vec![
        ("name", Field::Str),
        ("namespace", Field::Str),
        ("labels", Field::StrMap),
        ("annotations", Field::StrMap),
    ])
}

fn label_selector() -> Field {
    obj(vec![
        ("matchLabels", Field::StrMap),
        (
            "matchExpressions",
            list(obj(vec![
                ("key", Field::Str),
                (
                    "operator",
                    Field::OneOf(&["In", "NotIn", "Exists", "DoesNotExist"]),
                ),
                ("values", list(Field::Str)),
            ])),
        ),
    ])
}

fn relabel_config() -> Field {
    obj(vec![
        (
            "action",
            Field::OneOf(&[
                "replace",
                "Replace",
                "keep",
                "Keep",
                "drop",
                "Drop",
                "hashmod",
                "HashMod",
                "labelmap",
                "LabelMap",
                "labeldrop",
                "LabelDrop",
                "labelkeep",
                "LabelKeep",
                "lowercase",
                "Lowercase",
                "uppercase",
                "Uppercase",
                "keepequal",
                "KeepEqual",
                "dropequal",
                "DropEqual",
            ]),
        ),
        ("sourceLabels", list(Field::Str)),
        ("separator", Field::Str),
        ("targetLabel", Field::Str),
        ("regex", Field::Str),
        ("replacement", Field::Str),
    ])
}

/// The fields of the Prometheus Operator's CRDs (monitoring.coreos.com/v1,
/// operator 0.7x) that these manifests may use, as the CRDs spell them: a
/// subset, so a field the CRD has but this list lacks fails too (add it
/// here, from the CRD, when a manifest needs it).
pub fn crd_fields(kind: &str) -> anyhow::Result<Field> {
    let top = |spec: Field| {
        obj(vec![
            ("apiVersion", Field::Str),
            ("kind", Field::Str),
            ("metadata", metadata()),
            ("spec", spec),
        ])
    };
    Ok(match kind {
        "PodMonitor" => top(obj(vec![
            ("jobLabel", Field::Str),
            ("podTargetLabels", list(Field::Str)),
            ("selector", label_selector()),
            (
                "namespaceSelector",
                obj(vec![("any", Field::Bool), ("matchNames", list(Field::Str))]),
            ),
            (
                "podMetricsEndpoints",
                list(obj(vec![
                    ("port", Field::Str),
                    ("path", Field::Str),
                    ("scheme", Field::OneOf(&["http", "https"])),
                    ("interval", Field::Str),
                    ("scrapeTimeout", Field::Str),
                    ("honorLabels", Field::Bool),
                    ("honorTimestamps", Field::Bool),
                    ("relabelings", list(relabel_config())),
                    ("metricRelabelings", list(relabel_config())),
                ])),
            ),
        ])),
        "PrometheusRule" => top(obj(vec![(
            "groups",
            list(obj(vec![
                ("name", Field::Str),
                ("interval", Field::Str),
                (
                    "rules",
                    list(obj(vec![
                        ("alert", Field::Str),
                        ("record", Field::Str),
                        ("expr", Field::Str),
                        ("for", Field::Str),
                        ("keep_firing_for", Field::Str),
                        ("labels", Field::StrMap),
                        ("annotations", Field::StrMap),
                    ])),
                ),
            ])),
        )])),
        other => bail!("no CRD fields known for {other}"),
    })
}

pub fn check_fields(v: &Value, field: &Field, at: &str, errors: &mut Vec<String>) {
    match (field, v) {
        (Field::Str, Value::String(_)) | (Field::Bool, Value::Bool(_)) => {}
        (Field::OneOf(set), Value::String(s)) if set.contains(&s.as_str()) => {}
        (Field::StrMap, Value::Object(m)) => {
            for (k, v) in m {
                if !v.is_string() {
                    errors.push(format!("{at}.{k}: not a string"));
                }
            }
        }
        (Field::List(item), Value::Array(a)) => {
            for (i, v) in a.iter().enumerate() {
                check_fields(v, item, &format!("{at}[{i}]"), errors);
            }
        }
        (Field::Object(fields), Value::Object(m)) => {
            for (k, v) in m {
                match fields.iter().find(|(name, _)| name == k) {
                    Some((_, f)) => check_fields(v, f, &format!("{at}.{k}"), errors),
                    None => errors.push(format!("{at}.{k}: unknown field")),
                }
            }
        }
        (f, v) => errors.push(format!("{at}: {v} is not {f:?}")),
    }
}

/// The PodMonitor selects the DaemonSet's pods, in its namespace, on the
/// port it serves metrics on.
fn check_pod_monitor(monitoring: &[Value], base: &[Value]) -> anyhow::Result<()> {
    let pm = monitoring
        .iter()
        .find(|o| o["kind"] == "PodMonitor")
        .context("deploy/monitoring has no PodMonitor")?;
    let ds = base
        .iter()
        .find(|o| o["kind"] == "DaemonSet")
        .context("deploy/base has no DaemonSet")?;
    let pod = &ds["spec"]["template"];
    let labels = pod["metadata"]["labels"]
        .as_object()
        .context("pod labels")?;
    for (k, v) in pm["spec"]["selector"]["matchLabels"]
        .as_object()
        .context("PodMonitor selector.matchLabels")?
    {
        if labels.get(k) != Some(v) {
            bail!("the PodMonitor selects {k}={v}, which the DaemonSet's pods do not carry");
        }
    }
    let ns = ds["metadata"]["namespace"].clone();
    if !pm["spec"]["namespaceSelector"]["matchNames"]
        .as_array()
        .is_some_and(|n| n.contains(&ns))
    {
        bail!("the PodMonitor does not look in the DaemonSet's namespace {ns}");
    }
    let ports: Vec<&Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .map(|p| &p["name"])
        .collect();
    for ep in pm["spec"]["podMetricsEndpoints"]
        .as_array()
        .context("podMetricsEndpoints")?
    {
        if !ports.contains(&&ep["port"]) {
            bail!(
                "the PodMonitor scrapes port {}, which the DaemonSet does not name",
                ep["port"]
            );
        }
    }
    Ok(())
}

/// Every `oomtrace_*` metric and every label matched in the rules'
/// expressions is one oomtrace/src/metrics.rs registers (counters with
/// `_total`) or a label field it has.
fn check_names_against_metrics(rule: &Value, metrics_rs: &Path) -> anyhow::Result<()> {
    let src = std::fs::read_to_string(metrics_rs)
        .with_context(|| format!("reading {}", metrics_rs.display()))?;
    let exprs: Vec<&str> = rule["spec"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .filter_map(|r| r["expr"].as_str())
        .collect();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    for expr in exprs {
        let mut rest = expr;
        while let Some(at) = rest.find("oomtrace_") {
            let name: String = rest[at..].chars().take_while(|&c| ident(c)).collect();
            let base = name.strip_suffix("_total").unwrap_or(&name);
            if !src.contains(&format!("\"{base}\"")) {
                bail!("the PrometheusRule names {name}, which oomtrace/src/metrics.rs does not register");
            }
            rest = &rest[at + name.len()..];
        }
        // Label matchers: `name="` / `name=~"` / `name!="`.
        for (i, _) in expr.match_indices('"').step_by(2) {
            let before = expr[..i].trim_end_matches(['=', '!', '~']);
            let label: String = before
                .chars()
                .rev()
                .take_while(|&c| ident(c))
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            if label.is_empty() || before.len() == expr[..i].len() {
                continue;
            }
            if !src.contains(&format!("    {label}: String,")) {
                bail!("the PrometheusRule matches label {label}, which no metric of oomtrace/src/metrics.rs has");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_crd_fields_are_caught() {
        let fields = crd_fields("PodMonitor").expect("fields");
        let mut errors = Vec::new();
        let pm = json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
            "metadata": {"name": "x"},
            "spec": {"podMetricsEndpoints": [{"port": "metrics", "honorlabels": true,
                "relabelings": [{"action": "rename"}]}]}});
        check_fields(&pm, &fields, "PodMonitor", &mut errors);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].contains("honorlabels: unknown field"),
            "{errors:?}"
        );
        assert!(errors[1].contains("action"), "{errors:?}");
    }
}
