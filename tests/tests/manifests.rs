//! deploy/'s manifests (each kustomization rendered by src/kustomize.rs,
//! and deploy/*.yaml) against the Kubernetes API types and against the binary:
//! every object parses into its k8s-openapi type with no field left over (a
//! typo must fail here, not be dropped silently as k8s-openapi would), every
//! argument the manifests and the docs pass is one `oomtrace` accepts, every
//! path it reads maps onto the host path it reads when run on the node, and
//! the least-privilege DaemonSet's capabilities are enough for this kernel:
//! oomtrace run with exactly those attaches the same hooks as root and gives
//! a real kill its verdict.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use k8s_openapi::api::{
    apps::v1::DaemonSet,
    core::v1::{Container, Namespace, Pod, PodSpec, ServiceAccount, Volume},
};
use oomtrace_e2e::{
    bin, is_verdict_for, oom_hog, require_root, unique_container_id, unique_uid, Cgroup, Daemon,
};
use serde::{de::DeserializeOwned, Serialize};

/// Where the Containerfile installs the binary; the manifests run it.
const BINARY: &str = "/usr/local/bin/oomtrace";
/// oomtrace's fixed tracefs path (loader.rs), where it mounts tracefs when
/// the node has none.
const TRACEFS: &str = "/sys/kernel/tracing";
/// The pod-spec facts the tests check, under their own names.
const PRIVILEGED_FILES: &[&str] = &["overlays/privileged", "debug-pod.yaml"];
/// The kustomizations of Kubernetes objects (deploy/monitoring's are the
/// Prometheus Operator's, checked by `cargo xtask manifests`), each a
/// DaemonSet with what it needs.
const KUSTOMIZATIONS: &[&str] = &["base", "overlays/privileged"];
/// Where oomtrace looks for the kubelet's config when `--kubelet-config` is
/// not given (oomtrace/src/kubelet_config.rs), each of which a pod must
/// mount from the same node path; and the kubelet's log `--kubelet-log
/// auto` reads.
const KUBELET_CONFIGS: &[&str] = &[
    "/var/lib/kubelet/config.yaml",
    "/etc/kubernetes/kubelet/config.json",
    "/etc/kubernetes/kubelet/kubelet-config.json",
    "/home/kubernetes/kubelet-config.yaml",
    "/var/lib/rancher/k3s/agent/etc/kubelet.conf.d/00-k3s-defaults.conf",
];
const KUBELET_LOG: &str = "/var/log/kubelet.log";

fn is_daemonset(source: &str) -> bool {
    KUSTOMIZATIONS.contains(&source)
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn read(rel: &str) -> String {
    let p = root().join(rel);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// Every deploy/*.yaml: the manifests outside the kustomizations (the log
/// shippers' own configs live in deploy/logging/).
fn manifest_files() -> Vec<PathBuf> {
    let dir = root().join("deploy");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "deploy/ should hold the debug pod: {files:?}"
    );
    files
}

/// The YAML documents of a file, as generic values.
fn documents(path: &Path) -> Vec<yaml_serde::Value> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    yaml_serde::Deserializer::from_str(&text)
        .map(|d| {
            <yaml_serde::Value as serde::Deserialize>::deserialize(d)
                .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()))
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// `doc` as a `T`, failing on any field `T` does not have (serde_ignored
/// sees what k8s-openapi skips) and on anything the type does not carry
/// back unchanged (a round trip through JSON compared with the input).
fn parse_strict<T: DeserializeOwned + Serialize>(doc: &yaml_serde::Value) -> Result<T, String> {
    let mut unknown = Vec::new();
    // serde_ignored writes `?` for each Option on the way: drop them.
    let typed: T = serde_ignored::deserialize(doc.clone(), |path| {
        unknown.push(path.to_string().replace(".?", ""))
    })
    .map_err(|e| format!("does not parse: {e}"))?;
    if !unknown.is_empty() {
        return Err(format!("unknown fields: {}", unknown.join(", ")));
    }
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    let input = serde_json::to_value(doc).map_err(|e| e.to_string())?;
    if back != input {
        return Err(format!(
            "does not survive a round trip through the API type:\n  in:  {input}\n  out: {back}"
        ));
    }
    Ok(typed)
}

enum Object {
    Namespace(Box<Namespace>),
    ServiceAccount(Box<ServiceAccount>),
    DaemonSet(Box<DaemonSet>),
    Pod(Box<Pod>),
}

fn parse_object(doc: &yaml_serde::Value) -> Result<Object, String> {
    let kind = doc.get("kind").and_then(|k| k.as_str()).ok_or("no kind")?;
    Ok(match kind {
        "Namespace" => Object::Namespace(Box::new(parse_strict(doc)?)),
        "ServiceAccount" => Object::ServiceAccount(Box::new(parse_strict(doc)?)),
        "DaemonSet" => Object::DaemonSet(Box::new(parse_strict(doc)?)),
        "Pod" => Object::Pod(Box::new(parse_strict(doc)?)),
        other => return Err(format!("kind {other} is not one this test knows")),
    })
}

/// deploy/<dir>, rendered as `kubectl apply -k` would.
fn kustomization(dir: &str) -> Vec<yaml_serde::Value> {
    oomtrace_e2e::kustomize::build(&root().join("deploy").join(dir))
        .unwrap_or_else(|e| panic!("deploy/{dir}: {e}"))
        .into_iter()
        .map(|v| yaml_serde::to_value(v).expect("as YAML"))
        .collect()
}

/// Every object of every manifest, by kustomization or file name.
fn objects() -> Vec<(String, Object)> {
    let mut out = Vec::new();
    for dir in KUSTOMIZATIONS {
        for (i, doc) in kustomization(dir).iter().enumerate() {
            let obj =
                parse_object(doc).unwrap_or_else(|e| panic!("deploy/{dir}, object {}: {e}", i + 1));
            out.push((dir.to_string(), obj));
        }
    }
    for file in manifest_files() {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for (i, doc) in documents(&file).iter().enumerate() {
            let obj = parse_object(doc)
                .unwrap_or_else(|e| panic!("deploy/{name}, document {}: {e}", i + 1));
            out.push((name.clone(), obj));
        }
    }
    out
}

/// The pod specs of the manifests, with the file they come from.
fn pod_specs() -> Vec<(String, PodSpec)> {
    let mut out = Vec::new();
    for (file, obj) in objects() {
        match obj {
            Object::DaemonSet(ds) => {
                let spec = ds
                    .spec
                    .and_then(|s| s.template.spec)
                    .unwrap_or_else(|| panic!("{file}: a DaemonSet without a pod spec"));
                out.push((file, spec));
            }
            Object::Pod(p) => {
                let spec = p
                    .spec
                    .unwrap_or_else(|| panic!("{file}: a Pod without a spec"));
                out.push((file, spec));
            }
            _ => {}
        }
    }
    out
}

#[test]
fn every_manifest_parses_strictly() {
    let objects = objects();
    let count = |f: fn(&Object) -> bool| objects.iter().filter(|(_, o)| f(o)).count();
    // Each kustomization is whole: its namespace, service account, DaemonSet.
    assert_eq!(
        count(|o| matches!(o, Object::Namespace(_))),
        KUSTOMIZATIONS.len()
    );
    assert_eq!(
        count(|o| matches!(o, Object::DaemonSet(_))),
        KUSTOMIZATIONS.len()
    );
    assert_eq!(count(|o| matches!(o, Object::Pod(_))), 1);
    assert_eq!(
        count(|o| matches!(o, Object::ServiceAccount(_))),
        KUSTOMIZATIONS.len()
    );
    for (file, obj) in &objects {
        let namespace = match obj {
            Object::Namespace(n) => {
                assert_eq!(n.metadata.name.as_deref(), Some("oomtrace"), "{file}");
                continue;
            }
            Object::ServiceAccount(o) => o.metadata.namespace.clone(),
            Object::DaemonSet(o) => o.metadata.namespace.clone(),
            Object::Pod(o) => o.metadata.namespace.clone(),
        };
        assert_eq!(
            namespace.as_deref(),
            Some("oomtrace"),
            "{file}: everything in the namespace of deploy/base/namespace.yaml"
        );
    }
}

#[test]
fn a_misspelt_field_is_caught() {
    // k8s-openapi alone would drop these silently.
    let docs = kustomization("base");
    let ds = docs
        .iter()
        .find(|d| d.get("kind").and_then(|k| k.as_str()) == Some("DaemonSet"))
        .expect("a DaemonSet in deploy/base")
        .clone();
    let mut typo = ds.clone();
    typo["spec"]["template"]["spec"]["hostPid"] = yaml_serde::Value::Bool(true);
    let err = parse_strict::<DaemonSet>(&typo)
        .map(|_| ())
        .expect_err("hostPid");
    assert!(err.contains("spec.template.spec.hostPid"), "{err}");
    let mut nested = ds;
    nested["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilites"] =
        yaml_serde::Value::Null;
    let err = parse_strict::<DaemonSet>(&nested)
        .map(|_| ())
        .expect_err("capabilites");
    assert!(err.contains("capabilites"), "{err}");
}

/// `oomtrace SUB ARGS... --help` exits 0 only if clap accepted every
/// argument before `--help`: flags known, values valid.
fn cli_accepts(args: &[String]) -> Result<(), String> {
    let out = Command::new(bin("oomtrace"))
        .args(args)
        .arg("--help")
        .env_remove("NODE_NAME")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running oomtrace: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The long options of `oomtrace SUB --help` with their value name and
/// default, from clap's help text.
fn options(sub: &str) -> BTreeMap<String, (String, Option<String>)> {
    let out = Command::new(bin("oomtrace"))
        .args([sub, "--help"])
        .env_remove("NODE_NAME")
        .output()
        .expect("oomtrace --help");
    assert!(out.status.success(), "oomtrace {sub} --help failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut opts = BTreeMap::new();
    let lines: Vec<&str> = text.lines().map(str::trim_start).collect();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.strip_prefix("--") else {
            continue;
        };
        let (name, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let rest = rest.trim_start();
        let value = rest
            .strip_prefix('<')
            .and_then(|r| r.split_once('>'))
            .map(|(v, _)| v.to_string())
            .unwrap_or_default();
        // clap puts the help on the option's line, or (when some help is
        // long) on the lines below it, up to the next option.
        let help: String = std::iter::once(rest)
            .chain(
                lines[i + 1..]
                    .iter()
                    .copied()
                    .take_while(|l| !l.starts_with('-')),
            )
            .collect::<Vec<_>>()
            .join(" ");
        let default = help
            .split_once("[default: ")
            .and_then(|(_, d)| d.split_once(']'))
            .map(|(d, _)| d.to_string());
        opts.insert(name.to_string(), (value, default));
    }
    assert!(
        opts.contains_key("cgroup-root"),
        "no --cgroup-root in `oomtrace {sub} --help`:\n{text}"
    );
    opts
}

/// `--flag=value` and `--flag value` arguments as a map.
fn flag_values(args: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        let Some(flag) = a.strip_prefix("--") else {
            continue;
        };
        match flag.split_once('=') {
            Some((k, v)) => {
                out.insert(k.to_string(), v.to_string());
            }
            None => {
                let v = it
                    .next_if(|n| !n.starts_with("--"))
                    .cloned()
                    .unwrap_or_default();
                out.insert(flag.to_string(), v);
            }
        }
    }
    out
}

/// The host path a container path reads, through the container's
/// hostPath mounts (the longest mount path containing it), with whether
/// the mount is read-only.
fn host_path_of(container: &Container, volumes: &[Volume], path: &str) -> Option<(String, bool)> {
    let mounts = container.volume_mounts.as_deref().unwrap_or_default();
    let m = mounts
        .iter()
        .filter(|m| {
            path == m.mount_path
                || path.starts_with(&format!("{}/", m.mount_path.trim_end_matches('/')))
        })
        .max_by_key(|m| m.mount_path.len())?;
    let volume = volumes.iter().find(|v| v.name == m.name)?;
    let host = &volume.host_path.as_ref()?.path;
    let rest = &path[m.mount_path.len()..];
    Some((format!("{host}{rest}"), m.read_only == Some(true)))
}

fn security(container: &Container) -> k8s_openapi::api::core::v1::SecurityContext {
    container.security_context.clone().unwrap_or_default()
}

#[test]
fn pod_specs_match_the_binary_and_the_node() {
    let containerfile = read("Containerfile");
    assert!(
        containerfile.contains(&format!("ENTRYPOINT [\"{BINARY}\"]")),
        "the Containerfile's ENTRYPOINT is not {BINARY}"
    );
    let version = env!("CARGO_PKG_VERSION");
    let specs = pod_specs();
    assert_eq!(specs.len(), 3, "two DaemonSets and the debug pod");
    for (file, spec) in &specs {
        let volumes = spec.volumes.clone().unwrap_or_default();
        assert_eq!(spec.containers.len(), 1, "{file}: one container");
        let c = &spec.containers[0];
        let sc = security(c);
        let privileged = sc.privileged == Some(true);
        assert_eq!(
            privileged,
            PRIVILEGED_FILES.contains(&file.as_str()),
            "{file}: privileged only where the file says so"
        );
        assert_eq!(
            spec.host_pid,
            Some(true),
            "{file}: hostPID (/proc is the host's)"
        );
        assert_eq!(sc.run_as_user, Some(0), "{file}: capabilities are root's");
        assert!(
            spec.termination_grace_period_seconds
                .is_some_and(|s| (5..=30).contains(&s)),
            "{file}: a grace period that lets oomtrace print `stopping` and exit"
        );
        let image = c.image.as_deref().unwrap_or_default();
        assert!(
            image.ends_with(&format!("/oomtrace:{version}")),
            "{file}: image {image} is not oomtrace:{version}"
        );
        assert_eq!(
            c.command.as_deref(),
            Some(&[BINARY.to_string()][..]),
            "{file}: command"
        );
        let args = c.args.clone().unwrap_or_default();
        let sub = args.first().cloned().unwrap_or_default();
        assert!(
            ["run", "tail"].contains(&sub.as_str()),
            "{file}: args start with run or tail: {args:?}"
        );
        if let Err(e) = cli_accepts(&args) {
            panic!("{file}: oomtrace rejects {args:?}:\n{e}");
        }
        let given = flag_values(&args);
        let opts = options(&sub);
        for flag in given.keys() {
            assert!(
                opts.contains_key(flag),
                "{file}: --{flag} is no flag of oomtrace {sub}"
            );
        }

        // The node name: the downward API into NODE_NAME (--node-name's env).
        let env = c.env.clone().unwrap_or_default();
        let node = env.iter().find(|e| e.name == "NODE_NAME");
        assert_eq!(
            node.and_then(|e| e.value_from.as_ref())
                .and_then(|v| v.field_ref.as_ref())
                .map(|f| f.field_path.as_str()),
            Some("spec.nodeName"),
            "{file}: NODE_NAME from the downward API"
        );
        assert!(
            !given.contains_key("node-name"),
            "{file}: NODE_NAME names the node"
        );

        // Every path oomtrace reads (a PATH option, given or default) is
        // the host path it reads on the node, through a hostPath mount.
        for (flag, (value_name, default)) in &opts {
            if value_name != "PATH" {
                continue;
            }
            if flag == "kubelet-config" {
                // No default: looked up in the known places (below).
                assert!(
                    !given.contains_key(flag),
                    "{file}: --kubelet-config given: the known places are mounted instead"
                );
                continue;
            }
            let default = default
                .clone()
                .unwrap_or_else(|| panic!("--{flag} <PATH> has no default"));
            let path = given.get(flag).cloned().unwrap_or_else(|| default.clone());
            let mapped = host_path_of(c, &volumes, &path);
            if flag == "state-file" {
                // Written: kept on the node by a DaemonSet (restarts resume
                // from it); the debug pod keeps its own in the container.
                match (is_daemonset(file), mapped) {
                    (true, Some((host, ro))) => {
                        assert_eq!(host, default, "{file}: --state-file on the node");
                        assert!(!ro, "{file}: --state-file's mount is read-only");
                    }
                    (true, None) => panic!("{file}: --state-file {path} is not on the node"),
                    (false, Some((_, ro))) => assert!(!ro, "{file}: --state-file read-only"),
                    (false, None) => assert_ne!(
                        sc.read_only_root_filesystem,
                        Some(true),
                        "{file}: --state-file {path} on a read-only root"
                    ),
                }
                continue;
            }
            let (host, _) =
                mapped.unwrap_or_else(|| panic!("{file}: --{flag} {path} is on no hostPath mount"));
            assert_eq!(
                host, default,
                "{file}: --{flag} {path} reads {host} on the node, not {default}"
            );
        }
        let (tracefs, _) = host_path_of(c, &volumes, TRACEFS)
            .unwrap_or_else(|| panic!("{file}: {TRACEFS} is not mounted from the node"));
        assert_eq!(tracefs, TRACEFS, "{file}");
        for log_dir in ["pods-log-dir", "containers-log-dir", "cgroup-root"] {
            let path = given
                .get(log_dir)
                .cloned()
                .or_else(|| opts.get(log_dir).and_then(|(_, d)| d.clone()))
                .unwrap_or_default();
            let (_, ro) = host_path_of(c, &volumes, &path).unwrap_or_default();
            assert!(ro, "{file}: --{log_dir} is mounted read-only");
        }
        // The kubelet's config in each known place and its log file: the
        // node's own path, read-only, from a hostPath with no type check
        // (a node without it still starts the pod) of a directory (the
        // runtime would make a missing file's path a directory).
        let help = Command::new(bin("oomtrace"))
            .args([sub.as_str(), "--help"])
            .output()
            .expect("oomtrace --help");
        let help = String::from_utf8_lossy(&help.stdout);
        assert_eq!(
            given
                .get("kubelet-log")
                .map(String::as_str)
                .unwrap_or("auto"),
            "auto",
            "{file}: --kubelet-log auto reads {KUBELET_LOG}"
        );
        for path in KUBELET_CONFIGS.iter().chain([&KUBELET_LOG]) {
            if *path != KUBELET_LOG {
                assert!(
                    help.contains(path),
                    "`oomtrace {sub} --help` does not name {path}"
                );
            }
            let (host, ro) = host_path_of(c, &volumes, path)
                .unwrap_or_else(|| panic!("{file}: {path} is on no hostPath mount"));
            assert_eq!(&host, path, "{file}: {path} reads {host} on the node");
            assert!(ro, "{file}: {path} is mounted read-only");
            let mount = c
                .volume_mounts
                .as_deref()
                .unwrap_or_default()
                .iter()
                .filter(|m| path.starts_with(&format!("{}/", m.mount_path)))
                .max_by_key(|m| m.mount_path.len())
                .expect("the mount");
            let hp = volumes
                .iter()
                .find(|v| v.name == mount.name)
                .and_then(|v| v.host_path.clone())
                .expect("a hostPath");
            assert!(
                hp.type_.as_deref().unwrap_or_default().is_empty(),
                "{file}: {} is `type: {:?}`: a node without it would not start the pod",
                hp.path,
                hp.type_
            );
            assert_ne!(hp.path, *path, "{file}: a directory, not the file {path}");
        }
        // /dev/kmsg: opened only by a privileged container (the device
        // cgroup of any other denies it, whatever is mounted).
        let kmsg = host_path_of(c, &volumes, "/dev/kmsg");
        assert_eq!(
            kmsg.map(|(h, _)| h),
            privileged.then(|| "/dev/kmsg".to_string()),
            "{file}: /dev/kmsg mounted exactly when privileged"
        );
        // Every volume is mounted, every mount has its volume.
        let mounted: BTreeSet<&str> = c
            .volume_mounts
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        let declared: BTreeSet<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(mounted, declared, "{file}: volumes and mounts");

        // Metrics: the port is declared where it is served.
        if let Some(addr) = given.get("metrics-addr") {
            let port: i32 = addr
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("{file}: --metrics-addr {addr}"));
            let ports = c.ports.clone().unwrap_or_default();
            assert!(
                ports
                    .iter()
                    .any(|p| p.container_port == port && p.name.as_deref() == Some("metrics")),
                "{file}: containerPort {port} named metrics"
            );
        }

        if !privileged {
            let caps = sc.capabilities.clone().unwrap_or_default();
            assert_eq!(
                caps.drop.as_deref(),
                Some(&["ALL".to_string()][..]),
                "{file}"
            );
            let add = caps.add.unwrap_or_default();
            assert!(
                !add.iter().any(|c| c == "SYS_ADMIN"),
                "{file}: CAP_SYS_ADMIN belongs in the privileged variant"
            );
            let deploy_readme = read("deploy/README.md");
            for cap in &add {
                assert!(
                    deploy_readme.contains(&format!("CAP_{cap}")),
                    "deploy/README.md does not say why CAP_{cap} is needed"
                );
            }
        }
    }
}

#[test]
fn the_daemonset_pods_are_the_same_but_for_privilege() {
    let specs: BTreeMap<String, PodSpec> = pod_specs().into_iter().collect();
    let strip = |mut spec: PodSpec| {
        for c in &mut spec.containers {
            c.security_context = None;
            if let Some(m) = c.volume_mounts.as_mut() {
                m.retain(|m| m.name != "kmsg");
            }
        }
        if let Some(v) = spec.volumes.as_mut() {
            v.retain(|v| v.name != "kmsg");
        }
        serde_json::to_value(spec).expect("json")
    };
    let least = specs.get("base").cloned().expect("deploy/base");
    let privileged = specs
        .get("overlays/privileged")
        .cloned()
        .expect("deploy/overlays/privileged");
    assert_eq!(
        strip(least),
        strip(privileged),
        "the two DaemonSets differ in more than their securityContext and /dev/kmsg"
    );
}

/// The `oomtrace ...` command lines the docs show.
fn documented_commands() -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for doc in ["README.md", "deploy/README.md", "deploy/debug-pod.yaml"] {
        // Shell continuation lines are one command.
        let text = read(doc).replace("\\\n", " ");
        for line in text.lines() {
            let Some(at) = line.find("oomtrace ") else {
                continue;
            };
            let words: Vec<String> = line[at + "oomtrace ".len()..]
                .split_whitespace()
                .take_while(|w| !["|", ";", "&&", "#", ">", "2>"].contains(w) && !w.contains('`'))
                .map(str::to_string)
                .collect();
            let is_command = words
                .first()
                .is_some_and(|w| ["run", "tail", "doctor"].contains(&w.as_str()));
            // Only lines that pass flags: `oomtrace tail` alone proves nothing.
            if is_command && words.iter().any(|w| w.starts_with("--")) {
                out.push((format!("{doc}: {}", line.trim()), words));
            }
        }
    }
    out
}

#[test]
fn documented_commands_use_real_flags() {
    let commands = documented_commands();
    assert!(
        commands.iter().any(|(l, _)| l.contains("kubectl debug")),
        "the README's `kubectl debug` line was not found: {commands:?}"
    );
    for (line, words) in commands {
        if let Err(e) = cli_accepts(&words) {
            panic!("{line}\noomtrace rejects it:\n{e}");
        }
    }
}

/// The jq program deploy/README.md shows, run by a real jq over the JSON
/// streams recorded from the end-to-end scenarios (oomtrace/tests/fixtures:
/// exactly what `oomtrace run` printed): one line out per verdict in, each
/// a JSON object with the fields it picks.
#[test]
fn jq_example_reads_real_streams() {
    let readme = read("deploy/README.md");
    let program = readme
        .split("jq -c '")
        .nth(1)
        .and_then(|rest| rest.split_once('\''))
        .map(|(p, _)| p.to_string())
        .expect("deploy/README.md shows a `jq -c '...'` program");
    assert!(
        Path::new("/usr/bin/jq").exists(),
        "/usr/bin/jq is missing: `cargo xtask test` installs Debian's jq package"
    );
    let dir = root().join("oomtrace/tests/fixtures");
    let mut streams: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".expected.jsonl"))
        .collect();
    streams.sort();
    assert!(
        !streams.is_empty(),
        "no recorded streams in {}",
        dir.display()
    );
    let mut verdicts_seen = 0;
    for stream in streams {
        let text = fs::read_to_string(&stream).expect("stream");
        let verdicts = text
            .lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v["type"] == "verdict")
            })
            .count();
        let out = Command::new("/usr/bin/jq")
            .args(["-c", &program])
            .arg(&stream)
            .output()
            .expect("running jq");
        assert!(
            out.status.success(),
            "jq failed on {}: {}",
            stream.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("jq printed {l}: {e}")))
            .collect();
        assert_eq!(
            lines.len(),
            verdicts,
            "{}: one line per verdict",
            stream.display()
        );
        for l in &lines {
            for field in ["time", "node", "verdict", "summary"] {
                assert!(
                    l[field].is_string(),
                    "{}: no {field} in {l}",
                    stream.display()
                );
            }
        }
        verdicts_seen += verdicts;
    }
    assert!(verdicts_seen > 0, "the recorded streams hold no verdict");
}

/// Capability numbers (linux/capability.h) of the names the manifests use.
fn cap_number(name: &str) -> u32 {
    match name {
        "SYS_PTRACE" => 19,
        "SYS_ADMIN" => 21,
        "SYS_RESOURCE" => 24,
        "SYSLOG" => 34,
        "PERFMON" => 38,
        "BPF" => 39,
        other => panic!("capability {other}: add its number to this test"),
    }
}

#[test]
fn least_privilege_daemonset_is_enough_on_this_kernel() {
    require_root();
    let (_, spec) = pod_specs()
        .into_iter()
        .find(|(f, _)| f == "base")
        .expect("deploy/base");
    let sc = security(&spec.containers[0]);
    let caps = sc
        .capabilities
        .and_then(|c| c.add)
        .expect("capabilities.add");
    // As a container runtime starts it: uid 0, the bounding set cut to
    // the added capabilities (root's permitted and effective sets follow
    // it at exec), nothing inheritable, no_new_privs when escalation is
    // off.
    let bounding = std::iter::once("-all".to_string())
        .chain(caps.iter().map(|c| format!("+{}", c.to_ascii_lowercase())))
        .collect::<Vec<_>>()
        .join(",");
    let mut wrapper = vec!["setpriv", "--bounding-set", &bounding, "--inh-caps", "-all"];
    if sc.allow_privilege_escalation == Some(false) {
        wrapper.push("--no-new-privs");
    }
    wrapper.push("--");

    // What root attaches on this kernel, to compare with.
    let full = Daemon::start(&[]);
    let families = ["oom", "victim", "cgroup", "signal", "pressure"];
    let want: Vec<Option<String>> = families.iter().map(|f| full.hook(f)).collect();
    full.finish();

    let daemon = Daemon::start_wrapped(&wrapper, &[]);
    let status = fs::read_to_string(format!("/proc/{}/status", daemon.pid())).expect("status");
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .expect("CapEff");
    let expected = caps.iter().fold(0u64, |m, c| m | 1 << cap_number(c));
    assert_eq!(
        eff, expected,
        "oomtrace runs with exactly the manifest's capabilities (CapEff {eff:x})"
    );
    let got: Vec<Option<String>> = families.iter().map(|f| daemon.hook(f)).collect();
    assert_eq!(
        got, want,
        "with {caps:?} the hooks of {families:?} differ from root's"
    );
    let uid = unique_uid();
    let cid = unique_container_id();
    let container = Cgroup::create(&format!("kubepods/burstable/pod{uid}/{cid}"));
    container.set_limit(64 << 20);
    let pid = oom_hog(&container, 256);
    let v = daemon.wait_for("the pod_limit verdict", is_verdict_for(pid));
    assert_eq!(v["verdict"], "pod_limit", "{v}");
    assert_eq!(v["pod"]["uid"], uid.as_str(), "{v}");
    assert_eq!(v["limit"]["cgroup"], container.rel.as_str(), "{v}");
    daemon.finish();
}
