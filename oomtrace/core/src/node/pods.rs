//! Kubernetes identity recovered from cgroup paths and from the kubelet's
//! log-file naming.
//!
//! The kernel only knows cgroup paths; the kubelet encodes QoS class, pod uid
//! and container id into those paths in one of two layouts depending on its
//! cgroup driver. Everything here is pure string work so it can run on paths
//! taken from tracepoints, `/dev/kmsg` or cgroupfs alike, for cgroup v1 (the
//! path inside the memory hierarchy) and v2.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a string is not a pod uid or container id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("not a pod uid (8-4-4-4-12 hex, or 32 hex for a static pod): {0:?}")]
    PodUid(String),
    #[error("not a container id (64 hex digits): {0:?}")]
    ContainerId(String),
}

/// A pod's uid in the form the API server and `/var/log/pods` use:
/// lowercase, dashed.
///
/// Static pods are the exception the kubelet itself makes: their uid is the
/// 32-hex md5 of the manifest, with no dashes, and it is that value that names
/// their cgroups and log directories. It is accepted and kept as-is so that
/// control-plane pods (etcd, kube-apiserver) are attributed too.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct PodUid(String);

impl PodUid {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if is_uuid_shape(s) || (s.len() == 32 && is_hex(s)) {
            Ok(Self(s.to_ascii_lowercase()))
        } else {
            Err(IdError::PodUid(s.to_owned()))
        }
    }

    /// systemd reserves `-` in unit names for nesting, so the kubelet writes
    /// the uid with `_` there; a `-` in that position means the name is not
    /// one the kubelet made.
    fn from_systemd(escaped: &str) -> Option<Self> {
        if escaped.contains('-') {
            return None;
        }
        Self::parse(&escaped.replace('_', "-")).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Read back (recordings) through [`PodUid::parse`], as every other uid.
impl<'de> Deserialize<'de> for PodUid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl FromStr for PodUid {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for PodUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A container id as the runtimes and `/var/log/containers` spell it: 64
/// lowercase hex digits, without any runtime prefix or `.scope` suffix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ContainerId(String);

impl ContainerId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if s.len() == 64 && is_hex(s) {
            Ok(Self(s.to_ascii_lowercase()))
        } else {
            Err(IdError::ContainerId(s.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 12-character prefix people know from `crictl ps` and `docker ps`.
    pub fn short(&self) -> &str {
        self.0.get(..12).unwrap_or(&self.0)
    }
}

impl FromStr for ContainerId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Runtime {
    #[serde(rename = "containerd")]
    Containerd,
    #[serde(rename = "cri-o")]
    Crio,
    #[serde(rename = "docker")]
    Docker,
}

impl Runtime {
    /// The scheme of a CRI container id (`containerd://…`, `cri-o://…`).
    pub fn from_scheme(scheme: &str) -> Option<Runtime> {
        match scheme {
            "containerd" => Some(Runtime::Containerd),
            "cri-o" => Some(Runtime::Crio),
            "docker" => Some(Runtime::Docker),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd",
            Runtime::Crio => "cri-o",
            Runtime::Docker => "docker",
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Spelled as in a pod's `status.qosClass`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Qos {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl Qos {
    pub fn as_str(self) -> &'static str {
        match self {
            Qos::Guaranteed => "Guaranteed",
            Qos::Burstable => "Burstable",
            Qos::BestEffort => "BestEffort",
        }
    }

    /// The word the kubelet uses in cgroup names. Guaranteed pods sit directly
    /// under the kubepods root, so it has none.
    fn cgroup_word(self) -> Option<&'static str> {
        match self {
            Qos::Guaranteed => None,
            Qos::Burstable => Some("burstable"),
            Qos::BestEffort => Some("besteffort"),
        }
    }

    fn from_cgroup_word(word: &str) -> Option<Self> {
        match word {
            "burstable" => Some(Qos::Burstable),
            "besteffort" => Some(Qos::BestEffort),
            _ => None,
        }
    }
}

impl fmt::Display for Qos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kubelet's `cgroupDriver`, as read off the naming of the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    Cgroupfs,
    Systemd,
}

/// Which kubelet-managed level a path names. Paths below a container's
/// cgroup (a container making its own sub-cgroups) are `Container`: the
/// kubelet's accounting stops there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Kubepods,
    Qos(Qos),
    Pod,
    Container,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerRef {
    pub id: ContainerId,
    /// `None` where the path does not say: containerd and Docker both use a
    /// bare id under the cgroupfs driver.
    pub runtime: Option<Runtime>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KubeCgroup {
    pub driver: Driver,
    pub level: Level,
    /// Known once the path is at or below a QoS level, or at a Guaranteed pod.
    pub qos: Option<Qos>,
    pub pod: Option<PodUid>,
    pub container: Option<ContainerRef>,
    /// The components above the kubepods root, as `/a/b`, or empty when the
    /// root sits at the top of the hierarchy. Nested setups (kind, k3s, a
    /// kubelet inside a slice) put it there; the daemon needs it to rebuild
    /// the pod's cgroupfs path.
    pub prefix: String,
}

/// Reads the kubelet's identity out of a cgroup path relative to its
/// hierarchy root.
///
/// `None` when no kubepods root is in the path, or when what follows it is not
/// a layout the kubelet produces (a malformed uid, a QoS slice that does not
/// match its parent): attributing a kill to the wrong pod is worse than not
/// attributing it. A child of a pod cgroup that is not a container (CRI-O's
/// `crio-conmon-<id>`, anything unrecognised) still belongs to the pod and is
/// reported at `Level::Pod` with no container.
pub fn parse_cgroup_path(path: &str) -> Option<KubeCgroup> {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for (i, component) in components.iter().enumerate() {
        // `i < len`, so `i + 1 <= len` and these slices cannot panic.
        let above = &components[..i];
        let below = &components[i + 1..];
        let found = if *component == "kubepods" {
            Some(walk(Naming::Cgroupfs, below))
        } else if let Some(stem) = systemd_root_stem(component) {
            Some(walk(Naming::Systemd { stem }, below))
        } else {
            flat_systemd_pod(component).map(Some)
        };
        // The first kubepods root decides: a kubepods root further down lives
        // inside some container (Kubernetes-in-Kubernetes) and belongs to it.
        if let Some(found) = found {
            return found.map(|mut kube| {
                kube.prefix = join_prefix(above);
                kube
            });
        }
    }
    None
}

/// A container outside Kubernetes: Docker's own cgroups, `/docker/<id>`
/// (cgroupfs driver) or `/system.slice/docker-<id>.scope` (systemd's), on a
/// path with no kubepods root. Its limit is its own (`docker run -m`).
pub fn parse_standalone_container(path: &str) -> Option<ContainerRef> {
    if parse_cgroup_path(path).is_some() {
        return None;
    }
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let id = match components.as_slice() {
        ["docker", id] => *id,
        ["system.slice", unit] => unit.strip_prefix("docker-")?.strip_suffix(".scope")?,
        _ => return None,
    };
    Some(ContainerRef {
        id: ContainerId::parse(id).ok()?,
        runtime: Some(Runtime::Docker),
    })
}

/// Whether `path` is a pod's own cgroup. An unrecognised child of a pod
/// cgroup is reported at `Level::Pod` too (it belongs to the pod), but a
/// limit set there is that cgroup's, not the pod's.
pub fn is_pod_cgroup(path: &str) -> bool {
    if parse_cgroup_path(path).is_none_or(|k| k.level != Level::Pod) {
        return false;
    }
    let parent = path
        .trim_end_matches('/')
        .rsplit_once('/')
        .map_or("", |(p, _)| p);
    parse_cgroup_path(parent).is_none_or(|k| k.level != Level::Pod)
}

/// The container's own cgroup for a path at or below it: a container may
/// make cgroups of its own (a systemd as its init makes `init.scope` and a
/// cgroup per unit), and those belong to it — identity, limit and kills —
/// but only its own cgroup's removal ends it. `None` above container level.
pub fn container_cgroup(path: &str) -> Option<&str> {
    let is_container = |p: &str| parse_cgroup_path(p).is_some_and(|k| k.level == Level::Container);
    let mut own = path.trim_end_matches('/');
    if !is_container(own) {
        return None;
    }
    while let Some((parent, _)) = own.rsplit_once('/') {
        if !is_container(parent) {
            break;
        }
        own = parent;
    }
    Some(own)
}

/// Whether `path` is a container's own cgroup (not a pod, nor a cgroup the
/// container made below its own).
pub fn is_container_cgroup(path: &str) -> bool {
    container_cgroup(path).is_some_and(|own| own == path.trim_end_matches('/'))
}

/// How the kubelet spells QoS, pod and container cgroups under one root.
#[derive(Clone, Copy)]
enum Naming<'a> {
    /// `/kubepods/burstable/pod<uid>/<id>`
    Cgroupfs,
    /// `/<stem>.slice/<stem>-burstable.slice/<stem>-burstable-pod<uid_>.slice/<runtime>-<id>.scope`.
    /// The stem is `kubepods` unless the root itself sits in a slice
    /// (`kubelet-kubepods`), because systemd names encode their parents.
    Systemd { stem: &'a str },
}

enum TopChild {
    Qos(Qos),
    GuaranteedPod(PodUid),
}

impl Naming<'_> {
    fn driver(self) -> Driver {
        match self {
            Naming::Cgroupfs => Driver::Cgroupfs,
            Naming::Systemd { .. } => Driver::Systemd,
        }
    }

    fn top_child(self, component: &str) -> Option<TopChild> {
        let name = match self {
            Naming::Cgroupfs => component,
            Naming::Systemd { stem } => systemd_child(stem, component, ".slice")?,
        };
        if let Some(qos) = Qos::from_cgroup_word(name) {
            return Some(TopChild::Qos(qos));
        }
        Some(TopChild::GuaranteedPod(
            self.pod_uid(name.strip_prefix("pod")?)?,
        ))
    }

    fn pod_in_qos(self, qos: Qos, component: &str) -> Option<PodUid> {
        let uid = match self {
            Naming::Cgroupfs => component.strip_prefix("pod")?,
            Naming::Systemd { stem } => systemd_child(stem, component, ".slice")?
                .strip_prefix(qos.cgroup_word()?)?
                .strip_prefix("-pod")?,
        };
        self.pod_uid(uid)
    }

    fn pod_uid(self, raw: &str) -> Option<PodUid> {
        match self {
            Naming::Cgroupfs => PodUid::parse(raw).ok(),
            Naming::Systemd { .. } => PodUid::from_systemd(raw),
        }
    }

    fn container(self, component: &str) -> Option<ContainerRef> {
        let (runtime, id) = match self {
            Naming::Cgroupfs => {
                if component.starts_with("crio-conmon-") {
                    return None;
                }
                match component.strip_prefix("crio-") {
                    Some(id) => (Some(Runtime::Crio), id),
                    None => (None, component),
                }
            }
            Naming::Systemd { .. } => {
                let unit = component.strip_suffix(".scope")?;
                if unit.starts_with("crio-conmon-") {
                    return None;
                }
                let (runtime, id) = [
                    ("cri-containerd-", Runtime::Containerd),
                    ("crio-", Runtime::Crio),
                    ("docker-", Runtime::Docker),
                ]
                .iter()
                .find_map(|(p, r)| unit.strip_prefix(p).map(|id| (*r, id)))?;
                (Some(runtime), id)
            }
        };
        Some(ContainerRef {
            id: ContainerId::parse(id).ok()?,
            runtime,
        })
    }
}

fn walk(naming: Naming<'_>, below: &[&str]) -> Option<KubeCgroup> {
    let mut kube = KubeCgroup {
        driver: naming.driver(),
        level: Level::Kubepods,
        qos: None,
        pod: None,
        container: None,
        prefix: String::new(),
    };
    let mut rest = below.iter();
    let Some(first) = rest.next() else {
        return Some(kube);
    };
    let (qos, pod) = match naming.top_child(first)? {
        TopChild::Qos(qos) => {
            let Some(pod) = rest.next() else {
                kube.level = Level::Qos(qos);
                kube.qos = Some(qos);
                return Some(kube);
            };
            (qos, naming.pod_in_qos(qos, pod)?)
        }
        TopChild::GuaranteedPod(uid) => (Qos::Guaranteed, uid),
    };
    kube.qos = Some(qos);
    kube.pod = Some(pod);
    kube.level = Level::Pod;
    if let Some(container) = rest.next().and_then(|c| naming.container(c)) {
        kube.container = Some(container);
        kube.level = Level::Container;
    }
    Some(kube)
}

/// `kubepods.slice` → `kubepods`, `kubelet-kubepods.slice` → `kubelet-kubepods`.
fn systemd_root_stem(component: &str) -> Option<&str> {
    let stem = component.strip_suffix(".slice")?;
    (stem == "kubepods" || stem.ends_with("-kubepods")).then_some(stem)
}

/// The part of a child unit's name between `<stem>-` and its unit suffix.
fn systemd_child<'a>(stem: &str, component: &'a str, suffix: &str) -> Option<&'a str> {
    component
        .strip_prefix(stem)?
        .strip_prefix('-')?
        .strip_suffix(suffix)
}

/// When the kubelet uses the systemd driver but the runtime uses cgroupfs,
/// runc takes systemd's `slice:prefix:name` cgroupsPath literally and makes a
/// single directory, e.g.
/// `/system.slice/containerd.service/kubepods-burstable-pod<uid_>.slice:cri-containerd:<id>`.
/// A misconfiguration, but a common one, and the identity is all there.
fn flat_systemd_pod(component: &str) -> Option<KubeCgroup> {
    let mut parts = component.split(':');
    let slice = parts.next()?.strip_suffix(".slice")?;
    let runtime_word = parts.next()?;
    let id = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let (head, escaped_uid) = slice.rsplit_once("-pod")?;
    let (stem, qos) = match head.rsplit_once('-') {
        Some((stem, word)) => match Qos::from_cgroup_word(word) {
            Some(qos) => (stem, qos),
            None => (head, Qos::Guaranteed),
        },
        None => (head, Qos::Guaranteed),
    };
    if stem != "kubepods" && !stem.ends_with("-kubepods") {
        return None;
    }
    let runtime = match runtime_word {
        "cri-containerd" => Some(Runtime::Containerd),
        "crio" => Some(Runtime::Crio),
        "docker" => Some(Runtime::Docker),
        _ => None,
    };
    Some(KubeCgroup {
        driver: Driver::Systemd,
        level: Level::Container,
        qos: Some(qos),
        pod: Some(PodUid::from_systemd(escaped_uid)?),
        container: Some(ContainerRef {
            id: ContainerId::parse(id).ok()?,
            runtime,
        }),
        prefix: String::new(),
    })
}

fn join_prefix(components: &[&str]) -> String {
    components.iter().fold(String::new(), |mut acc, c| {
        acc.push('/');
        acc.push_str(c);
        acc
    })
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_uuid_shape(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// A pod as verdicts and the node memory breakdown name it: each part is
/// null where what was read does not say it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pod {
    /// Null only when a log names the pod by namespace/name alone.
    pub uid: Option<PodUid>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub qos: Option<Qos>,
}

/// A pod as named by its `/var/log/pods/<namespace>_<name>_<uid>` directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodName {
    pub namespace: String,
    pub name: String,
    pub uid: PodUid,
}

/// A container as named by its `/var/log/containers/<pod>_<namespace>_<container>-<id>.log`
/// symlink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerLogName {
    pub pod: String,
    pub namespace: String,
    pub container: String,
    pub id: ContainerId,
}

/// Parses a `/var/log/pods` directory name (a full path is accepted; only its
/// last component is read).
///
/// Kubernetes object names cannot contain `_`, which is why the kubelet can use
/// it as the separator and why splitting on it is sound.
pub fn parse_pod_log_dir(name: &str) -> Option<PodName> {
    let mut parts = last_component(name)?.split('_');
    let (namespace, pod, uid) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !is_dns_label(namespace) || !is_dns_subdomain(pod) {
        return None;
    }
    Some(PodName {
        namespace: namespace.to_owned(),
        name: pod.to_owned(),
        uid: PodUid::parse(uid).ok()?,
    })
}

/// Parses a `/var/log/containers` symlink name (a full path is accepted; only
/// its last component is read).
///
/// Container names may contain `-`, so the id is split off the end.
pub fn parse_container_log_name(name: &str) -> Option<ContainerLogName> {
    let stem = last_component(name)?.strip_suffix(".log")?;
    let mut parts = stem.split('_');
    let (pod, namespace, rest) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (container, id) = rest.rsplit_once('-')?;
    if !is_dns_subdomain(pod) || !is_dns_label(namespace) || !is_dns_label(container) {
        return None;
    }
    Some(ContainerLogName {
        pod: pod.to_owned(),
        namespace: namespace.to_owned(),
        container: container.to_owned(),
        id: ContainerId::parse(id).ok()?,
    })
}

fn last_component(path: &str) -> Option<&str> {
    path.rsplit('/').find(|c| !c.is_empty())
}

/// RFC 1123 label, as Kubernetes validates namespaces and container names.
fn is_dns_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            bytes.len() <= 63
                && is_lower_alnum(*first)
                && is_lower_alnum(*last)
                && bytes.iter().all(|&b| is_lower_alnum(b) || b == b'-')
        }
        _ => false,
    }
}

/// RFC 1123 subdomain, as Kubernetes validates pod names.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Process names of the container runtimes that deliver a stop's signals
/// (each `runc kill` is a fresh, short-lived process). Names are the
/// kernel's 15-byte comm.
const RUNTIMES: &[&str] = &[
    "runc",
    "crun",
    "youki",
    "runsc",
    "conmon",
    "containerd",
    "crio",
    "dockerd",
    "kata-runtime",
];

/// Whether `comm` is a container runtime (or one of containerd's shims).
pub fn is_runtime(comm: &str) -> bool {
    RUNTIMES.contains(&comm) || comm.starts_with("containerd-shim")
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "6f1c3a2e-8b4d-4c9e-a1f0-123456789abc";
    const UID_: &str = "6f1c3a2e_8b4d_4c9e_a1f0_123456789abc";
    const CID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const STATIC_UID: &str = "8e1d4a9a1b0f4c1e9e0f0b5c6b2a1d3e";

    fn uid() -> PodUid {
        PodUid::parse(UID).expect("test uid is valid")
    }

    fn cid() -> ContainerId {
        ContainerId::parse(CID).expect("test id is valid")
    }

    fn container(driver: Driver, qos: Qos, runtime: Option<Runtime>) -> KubeCgroup {
        KubeCgroup {
            driver,
            level: Level::Container,
            qos: Some(qos),
            pod: Some(uid()),
            container: Some(ContainerRef { id: cid(), runtime }),
            prefix: String::new(),
        }
    }

    fn pod(driver: Driver, qos: Qos) -> KubeCgroup {
        KubeCgroup {
            driver,
            level: Level::Pod,
            qos: Some(qos),
            pod: Some(uid()),
            container: None,
            prefix: String::new(),
        }
    }

    fn cgroupfs_pod_path(qos: Qos) -> String {
        match qos.cgroup_word() {
            Some(word) => format!("/kubepods/{word}/pod{UID}"),
            None => format!("/kubepods/pod{UID}"),
        }
    }

    fn systemd_pod_path(stem: &str, qos: Qos) -> String {
        match qos.cgroup_word() {
            Some(word) => {
                format!("/{stem}.slice/{stem}-{word}.slice/{stem}-{word}-pod{UID_}.slice")
            }
            None => format!("/{stem}.slice/{stem}-pod{UID_}.slice"),
        }
    }

    const ALL_QOS: [Qos; 3] = [Qos::Guaranteed, Qos::Burstable, Qos::BestEffort];

    #[test]
    fn cgroupfs_every_qos_and_runtime() {
        for qos in ALL_QOS {
            let pod_path = cgroupfs_pod_path(qos);
            assert_eq!(
                parse_cgroup_path(&format!("{pod_path}/{CID}")),
                Some(container(Driver::Cgroupfs, qos, None)),
                "{qos} bare id"
            );
            assert_eq!(
                parse_cgroup_path(&format!("{pod_path}/crio-{CID}")),
                Some(container(Driver::Cgroupfs, qos, Some(Runtime::Crio))),
                "{qos} crio"
            );
            assert_eq!(
                parse_cgroup_path(&pod_path),
                Some(pod(Driver::Cgroupfs, qos))
            );
        }
    }

    #[test]
    fn systemd_every_qos_and_runtime() {
        let scopes = [
            ("cri-containerd", Runtime::Containerd),
            ("crio", Runtime::Crio),
            ("docker", Runtime::Docker),
        ];
        for qos in ALL_QOS {
            let pod_path = systemd_pod_path("kubepods", qos);
            for (prefix, runtime) in scopes {
                assert_eq!(
                    parse_cgroup_path(&format!("{pod_path}/{prefix}-{CID}.scope")),
                    Some(container(Driver::Systemd, qos, Some(runtime))),
                    "{qos} {runtime}"
                );
            }
            assert_eq!(
                parse_cgroup_path(&pod_path),
                Some(pod(Driver::Systemd, qos))
            );
        }
    }

    #[test]
    fn real_looking_systemd_path() {
        let path = "/kubepods.slice/kubepods-burstable.slice/\
            kubepods-burstable-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789.slice/\
            cri-containerd-fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210.scope";
        let kube = parse_cgroup_path(path).expect("kubelet path");
        assert_eq!(
            kube.pod.as_ref().map(PodUid::as_str),
            Some("0a1b2c3d-4e5f-6789-abcd-ef0123456789")
        );
        assert_eq!(
            kube.container.as_ref().map(|c| c.id.as_str()),
            Some("fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210")
        );
    }

    #[test]
    fn kubepods_and_qos_levels() {
        let root = |driver| KubeCgroup {
            driver,
            level: Level::Kubepods,
            qos: None,
            pod: None,
            container: None,
            prefix: String::new(),
        };
        assert_eq!(parse_cgroup_path("/kubepods"), Some(root(Driver::Cgroupfs)));
        assert_eq!(
            parse_cgroup_path("/kubepods.slice"),
            Some(root(Driver::Systemd))
        );
        for (word, qos) in [
            ("burstable", Qos::Burstable),
            ("besteffort", Qos::BestEffort),
        ] {
            let at_qos = |driver| KubeCgroup {
                level: Level::Qos(qos),
                qos: Some(qos),
                ..root(driver)
            };
            assert_eq!(
                parse_cgroup_path(&format!("/kubepods/{word}")),
                Some(at_qos(Driver::Cgroupfs))
            );
            assert_eq!(
                parse_cgroup_path(&format!("/kubepods.slice/kubepods-{word}.slice")),
                Some(at_qos(Driver::Systemd))
            );
        }
    }

    #[test]
    fn prefixes_above_the_root_are_kept() {
        let kind = format!(
            "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/\
             kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{CID}.scope"
        );
        assert_eq!(
            parse_cgroup_path(&kind),
            Some(KubeCgroup {
                prefix: "/kubelet.slice".into(),
                ..container(Driver::Systemd, Qos::BestEffort, Some(Runtime::Containerd))
            })
        );

        let guaranteed_in_slice = format!(
            "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod{UID_}.slice/crio-{CID}.scope"
        );
        assert_eq!(
            parse_cgroup_path(&guaranteed_in_slice),
            Some(KubeCgroup {
                prefix: "/kubelet.slice".into(),
                ..container(Driver::Systemd, Qos::Guaranteed, Some(Runtime::Crio))
            })
        );

        let docker_node = format!("/docker/{CID}/kubepods/burstable/pod{UID}/{CID}");
        assert_eq!(
            parse_cgroup_path(&docker_node),
            Some(KubeCgroup {
                prefix: format!("/docker/{CID}"),
                ..container(Driver::Cgroupfs, Qos::Burstable, None)
            })
        );

        // A systemd-named node container (docker-<id>.scope) above the root is
        // prefix, not a container.
        let nested = format!("/system.slice/docker-{CID}.scope/kubepods/besteffort/pod{UID}");
        assert_eq!(
            parse_cgroup_path(&nested),
            Some(KubeCgroup {
                prefix: format!("/system.slice/docker-{CID}.scope"),
                ..pod(Driver::Cgroupfs, Qos::BestEffort)
            })
        );
    }

    #[test]
    fn systemd_children_must_carry_their_parents_stem() {
        // `kubepods-burstable.slice` under `kubelet-kubepods.slice` is not a
        // name the kubelet (via systemd) would produce.
        let path = format!(
            "/kubelet.slice/kubelet-kubepods.slice/kubepods-burstable.slice/\
             kubepods-burstable-pod{UID_}.slice"
        );
        assert_eq!(parse_cgroup_path(&path), None);
        let wrong_qos =
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-besteffort-pod{UID_}.slice");
        assert_eq!(parse_cgroup_path(&wrong_qos), None);
        let guaranteed_name_under_qos =
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-pod{UID_}.slice");
        assert_eq!(parse_cgroup_path(&guaranteed_name_under_qos), None);
    }

    #[test]
    fn flat_misconfigured_systemd_path() {
        let path = format!(
            "/system.slice/containerd.service/kubepods-burstable-pod{UID_}.slice:cri-containerd:{CID}"
        );
        assert_eq!(
            parse_cgroup_path(&path),
            Some(KubeCgroup {
                prefix: "/system.slice/containerd.service".into(),
                ..container(Driver::Systemd, Qos::Burstable, Some(Runtime::Containerd))
            })
        );
        let guaranteed = format!(
            "/system.slice/containerd.service/kubepods-pod{UID_}.slice:cri-containerd:{CID}"
        );
        assert_eq!(
            parse_cgroup_path(&guaranteed).and_then(|k| k.qos),
            Some(Qos::Guaranteed)
        );
        let unknown_runtime = format!("/kubepods-besteffort-pod{UID_}.slice:foo:{CID}");
        let kube = parse_cgroup_path(&unknown_runtime).expect("flat path");
        assert_eq!(kube.container.map(|c| c.runtime), Some(None));
        let deeper = format!("{path}/sub/cgroup");
        assert_eq!(
            parse_cgroup_path(&deeper).map(|k| k.level),
            Some(Level::Container)
        );
        for bad in [
            format!("/kubepods-burstable-pod{UID_}.slice:cri-containerd:nothex"),
            format!("/kubepods-burstable-pod{UID}.slice:cri-containerd:{CID}"),
            format!("/notkube-burstable-pod{UID_}.slice:cri-containerd:{CID}"),
            format!("/kubepods-burstable-pod{UID_}.slice:cri-containerd:{CID}:x"),
            format!("/kubepods-burstable-pod{UID_}.slice"),
        ] {
            assert_eq!(parse_cgroup_path(&bad), None, "{bad}");
        }
    }

    #[test]
    fn deeper_than_container_belongs_to_container() {
        let cases = [
            (
                format!("/kubepods/burstable/pod{UID}/{CID}/app/worker"),
                container(Driver::Cgroupfs, Qos::Burstable, None),
            ),
            (
                format!(
                    "{}/crio-{CID}.scope/container",
                    systemd_pod_path("kubepods", Qos::Guaranteed)
                ),
                container(Driver::Systemd, Qos::Guaranteed, Some(Runtime::Crio)),
            ),
        ];
        for (path, want) in cases {
            assert_eq!(parse_cgroup_path(&path), Some(want), "{path}");
        }
        // A kubepods tree inside a container is the outer container's business.
        let nested = format!("/kubepods/pod{UID}/{CID}/kubepods/besteffort/pod{STATIC_UID}");
        assert_eq!(
            parse_cgroup_path(&nested),
            Some(container(Driver::Cgroupfs, Qos::Guaranteed, None))
        );
    }

    #[test]
    fn a_containers_own_cgroup_from_below_it() {
        // A systemd as the container's init: init.scope and a unit per
        // service inside the container's cgroup, on v1 and v2 paths alike
        // (the path is relative to the hierarchy's root either way).
        let cgroupfs = format!("/kubepods/burstable/pod{UID}/{CID}");
        let systemd = format!(
            "{}/cri-containerd-{CID}.scope",
            systemd_pod_path("kubepods", Qos::Burstable)
        );
        let flat = format!(
            "/system.slice/containerd.service/kubepods-burstable-pod{UID_}.slice:cri-containerd:{CID}"
        );
        let in_ns = format!("/../..{cgroupfs}");
        for own in [&cgroupfs, &systemd, &flat, &in_ns] {
            assert_eq!(container_cgroup(own), Some(own.as_str()), "{own}");
            assert!(is_container_cgroup(own), "{own}");
            for below in [
                "init.scope",
                "system.slice/hog.service",
                "system.slice/system-modprobe.slice/modprobe@fuse.service",
            ] {
                let nested = format!("{own}/{below}");
                assert_eq!(container_cgroup(&nested), Some(own.as_str()), "{nested}");
                assert!(!is_container_cgroup(&nested), "{nested}");
                let kube = parse_cgroup_path(&nested).expect("nested is the container's");
                assert_eq!(kube.container.map(|c| c.id), Some(cid()), "{nested}");
                assert_eq!(kube.pod, Some(uid()), "{nested}");
            }
            assert_eq!(container_cgroup(&format!("{own}/")), Some(own.as_str()));
        }
        for above in [
            format!("/kubepods/burstable/pod{UID}"),
            format!("/kubepods/burstable/pod{UID}/init.scope"),
            "/kubepods/burstable".to_owned(),
            format!("/system.slice/docker-{CID}.scope"),
            "/".to_owned(),
        ] {
            assert_eq!(container_cgroup(&above), None, "{above}");
            assert!(!is_container_cgroup(&above), "{above}");
        }
        // A kubepods tree inside a container is the outer container's.
        let inner = format!(
            "{cgroupfs}/kubepods/besteffort/pod{STATIC_UID}/{}",
            "e".repeat(64)
        );
        assert_eq!(container_cgroup(&inner), Some(cgroupfs.as_str()));
    }

    #[test]
    fn crio_conmon_is_pod_level() {
        let systemd = format!(
            "{}/crio-conmon-{CID}.scope",
            systemd_pod_path("kubepods", Qos::Burstable)
        );
        assert_eq!(
            parse_cgroup_path(&systemd),
            Some(pod(Driver::Systemd, Qos::Burstable))
        );
        let cgroupfs = format!("/kubepods/besteffort/pod{UID}/crio-conmon-{CID}");
        assert_eq!(
            parse_cgroup_path(&cgroupfs),
            Some(pod(Driver::Cgroupfs, Qos::BestEffort))
        );
    }

    #[test]
    fn unrecognised_pod_children_stay_at_pod_level() {
        for child in [
            "init.scope".to_owned(),
            "abc".to_owned(),
            CID[..63].to_owned(),
            format!("{CID}0"),
            format!("crio-{}", &CID[..63]),
            format!("cri-containerd-{CID}"), // cgroupfs naming never has this
        ] {
            let path = format!("/kubepods/burstable/pod{UID}/{child}");
            assert_eq!(
                parse_cgroup_path(&path),
                Some(pod(Driver::Cgroupfs, Qos::Burstable)),
                "{path}"
            );
        }
        for child in [
            format!("cri-containerd-{CID}"),
            format!("libpod-{CID}.scope"),
            format!("cri-containerd-{}.scope", &CID[..60]),
        ] {
            let path = format!("{}/{child}", systemd_pod_path("kubepods", Qos::Burstable));
            assert_eq!(
                parse_cgroup_path(&path),
                Some(pod(Driver::Systemd, Qos::Burstable)),
                "{path}"
            );
        }
    }

    #[test]
    fn static_pod_uid() {
        let path = format!("/kubepods/burstable/pod{STATIC_UID}/{CID}");
        let kube = parse_cgroup_path(&path).expect("static pod");
        assert_eq!(kube.pod.as_ref().map(PodUid::as_str), Some(STATIC_UID));
        let systemd = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{STATIC_UID}.slice"
        );
        assert_eq!(
            parse_cgroup_path(&systemd).and_then(|k| k.pod),
            PodUid::parse(STATIC_UID).ok()
        );
    }

    #[test]
    fn uppercase_ids_are_canonicalised() {
        let path = format!(
            "/kubepods/burstable/pod{}/{}",
            UID.to_uppercase(),
            CID.to_uppercase()
        );
        assert_eq!(
            parse_cgroup_path(&path),
            Some(container(Driver::Cgroupfs, Qos::Burstable, None))
        );
    }

    #[test]
    fn malformed_pod_uids() {
        let bad_uids = [
            &UID[..35],                              // short
            "6f1c3a2e-8b4d-4c9e-a1f0-123456789abcd", // long
            "6f1c3a2e-8b4d-4c9e-a1f0-123456789abg",  // non-hex
            "6f1c3a2e8-b4d-4c9e-a1f0-123456789abc",  // dashes misplaced
            "6f1c3a2e_8b4d_4c9e_a1f0_123456789abc",  // systemd escape on cgroupfs
            "",
            &STATIC_UID[..31],
        ];
        for bad in bad_uids {
            for path in [
                format!("/kubepods/burstable/pod{bad}/{CID}"),
                format!("/kubepods/pod{bad}"),
            ] {
                assert_eq!(parse_cgroup_path(&path), None, "{path}");
            }
            assert!(PodUid::parse(bad).is_err(), "{bad}");
        }
        let systemd_bad = [
            format!("/kubepods.slice/kubepods-pod{UID}.slice"), // dashes, not escaped
            format!("/kubepods.slice/kubepods-pod{}.slice", &UID_[..30]),
            "/kubepods.slice/kubepods-pod.slice".to_owned(),
        ];
        for path in systemd_bad {
            assert_eq!(parse_cgroup_path(&path), None, "{path}");
        }
    }

    #[test]
    fn unknown_children_of_root_or_qos() {
        for path in [
            "/kubepods/guaranteed",
            "/kubepods/foo",
            "/kubepods/burstable/foo",
            "/kubepods.slice/kubepods-foo.slice",
            "/kubepods.slice/burstable",
            "/kubepods.slice/kubepods-burstable.slice/pod-x",
        ] {
            assert_eq!(parse_cgroup_path(path), None, "{path}");
        }
    }

    #[test]
    fn non_pod_paths() {
        for path in [
            "",
            "/",
            "//",
            "/system.slice/demo.service",
            "/user.slice/user-1000.slice/session-3.scope",
            "/process_api/abc",
            "/kubepodsx/burstable",
            "/kube.slice/kube-pods.slice",
            "/kubepods-burstable.slice",
            "kubepods.slicex",
        ] {
            assert_eq!(parse_cgroup_path(path), None, "{path:?}");
        }
    }

    #[test]
    fn trailing_and_doubled_slashes_and_relative_paths() {
        let want = Some(container(Driver::Cgroupfs, Qos::Burstable, None));
        assert_eq!(
            parse_cgroup_path(&format!("/kubepods/burstable/pod{UID}/{CID}/")),
            want
        );
        assert_eq!(
            parse_cgroup_path(&format!("//kubepods//burstable/pod{UID}//{CID}")),
            want
        );
        assert_eq!(
            parse_cgroup_path(&format!("kubepods/burstable/pod{UID}/{CID}")),
            want
        );
        assert_eq!(
            parse_cgroup_path("/kubepods/burstable/").map(|k| k.level),
            Some(Level::Qos(Qos::Burstable))
        );
    }

    #[test]
    fn non_ascii_input_never_panics() {
        for path in [
            "/kubepods/burstable/podé".to_owned(),
            "/kubepods/burstable/pod6f1c3a2e-8b4d-4c9e-a1f0-123456789abé".to_owned(),
            format!("/kubepods/pod{UID}/{}é", &CID[..62]),
            "/kubepods.slice/kubepods-💥.slice".to_owned(),
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod💥.slice".to_owned(),
            "/💥/kubepods-burstable-pod💥.slice:crio:💥".to_owned(),
            "/ünïcode/kubepods".to_owned(),
        ] {
            let parsed = parse_cgroup_path(&path);
            if let Some(kube) = parsed {
                assert!(kube.container.is_none(), "{path}");
                assert!(kube.pod.is_none() || kube.level == Level::Pod, "{path}");
            }
        }
        assert_eq!(
            parse_cgroup_path("/ünïcode/kubepods").map(|k| k.prefix),
            Some("/ünïcode".to_owned())
        );
    }

    #[test]
    fn serializes_as_kubernetes_spells_it() {
        let kube = container(Driver::Systemd, Qos::BestEffort, Some(Runtime::Crio));
        let json = serde_json::to_value(&kube).expect("serializable");
        assert_eq!(
            json,
            serde_json::json!({
                "driver": "systemd",
                "level": "container",
                "qos": "BestEffort",
                "pod": UID,
                "container": { "id": CID, "runtime": "cri-o" },
                "prefix": "",
            })
        );
        let runtimes: Vec<_> = [Runtime::Containerd, Runtime::Crio, Runtime::Docker]
            .iter()
            .map(|r| serde_json::to_value(r).expect("serializable"))
            .collect();
        assert_eq!(runtimes, ["containerd", "cri-o", "docker"]);
        let qos: Vec<_> = ALL_QOS
            .iter()
            .map(|q| serde_json::to_value(q).expect("serializable"))
            .collect();
        assert_eq!(qos, ["Guaranteed", "Burstable", "BestEffort"]);
        assert_eq!(
            serde_json::to_value(Level::Qos(Qos::Burstable)).expect("serializable"),
            serde_json::json!({ "qos": "Burstable" })
        );
        assert_eq!(Runtime::Crio.to_string(), "cri-o");
        assert_eq!(Qos::BestEffort.to_string(), "BestEffort");
    }

    #[test]
    fn id_types_parse_and_display() {
        assert_eq!(uid().to_string(), UID);
        assert_eq!(UID.parse::<PodUid>(), Ok(uid()));
        assert_eq!(CID.parse::<ContainerId>(), Ok(cid()));
        assert_eq!(
            "xyz".parse::<ContainerId>(),
            Err(IdError::ContainerId("xyz".into()))
        );
        assert!(ContainerId::parse(&CID[..63]).is_err());
        assert!(ContainerId::parse(&format!("{}g", &CID[..63])).is_err());
        assert!(ContainerId::parse("").is_err());
    }

    #[test]
    fn pod_log_dirs() {
        assert_eq!(
            parse_pod_log_dir(&format!("kube-system_coredns-5d78c9869d-x7x2k_{UID}")),
            Some(PodName {
                namespace: "kube-system".into(),
                name: "coredns-5d78c9869d-x7x2k".into(),
                uid: uid(),
            })
        );
        let with_path = format!("/var/log/pods/default_web.example-0_{UID}/");
        assert_eq!(
            parse_pod_log_dir(&with_path).map(|p| p.name),
            Some("web.example-0".to_owned())
        );
        let static_pod = format!("kube-system_etcd-control-plane_{STATIC_UID}");
        assert_eq!(
            parse_pod_log_dir(&static_pod).map(|p| p.uid.to_string()),
            Some(STATIC_UID.to_owned())
        );
    }

    #[test]
    fn malformed_pod_log_dirs() {
        for bad in [
            String::new(),
            "/".to_owned(),
            "default_web".to_owned(),
            format!("default_web_{UID}_extra"),
            format!("default__{UID}"),
            format!("_web_{UID}"),
            format!("Default_web_{UID}"),
            format!("default_Web_{UID}"),
            format!("default_web-_{UID}"),
            format!("default_web_{}", &UID[..35]),
            format!("default_web_{UID_}"),
            format!("défault_web_{UID}"),
            format!("{}_web_{UID}", "a".repeat(64)),
        ] {
            assert_eq!(parse_pod_log_dir(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn container_log_names() {
        let name = format!("coredns-5d78c9869d-x7x2k_kube-system_coredns-{CID}.log");
        assert_eq!(
            parse_container_log_name(&name),
            Some(ContainerLogName {
                pod: "coredns-5d78c9869d-x7x2k".into(),
                namespace: "kube-system".into(),
                container: "coredns".into(),
                id: cid(),
            })
        );
        let dashed = format!("/var/log/containers/web-0_shop_istio-proxy-{CID}.log");
        let parsed = parse_container_log_name(&dashed).expect("dashed container name");
        assert_eq!(parsed.container, "istio-proxy");
        assert_eq!(parsed.pod, "web-0");
        assert_eq!(parsed.namespace, "shop");
    }

    #[test]
    fn malformed_container_log_names() {
        for bad in [
            String::new(),
            format!("web-0_shop_app-{CID}"), // no .log
            format!("web-0_shop_app-{CID}.log.1"),
            format!("web-0_shop_app{CID}.log"), // no dash before id
            format!("web-0_shop_-{CID}.log"),   // empty container
            format!("web-0_shop_app-{}.log", &CID[..63]),
            format!("web-0_shop_app-{}x.log", &CID[..63]),
            format!("web-0_app-{CID}.log"),
            format!("web-0_shop_extra_app-{CID}.log"),
            format!("Web-0_shop_app-{CID}.log"),
            format!("web-0_shop_äpp-{CID}.log"),
            format!("web-0_shop.x_app-{CID}.log"), // namespaces are labels
            ".log".to_owned(),
            "-.log".to_owned(),
        ] {
            assert_eq!(parse_container_log_name(&bad), None, "{bad:?}");
        }
    }

    /// A path cut anywhere (a truncated tracepoint string, a partial read)
    /// must never name a different pod or container than the whole path.
    #[test]
    fn every_truncation_is_none_or_right() {
        let paths = [
            format!("/kubepods/burstable/pod{UID}/crio-{CID}/sub"),
            format!("/kubepods/pod{UID}/{CID}"),
            format!(
                "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/\
                 kubelet-kubepods-besteffort-pod{UID_}.slice/docker-{CID}.scope/ü"
            ),
            format!("/ü/kubepods-pod{UID_}.slice:cri-containerd:{CID}"),
        ];
        for path in &paths {
            for (cut, _) in path.char_indices() {
                let prefix = &path[..cut];
                let Some(kube) = parse_cgroup_path(prefix) else {
                    continue;
                };
                if let Some(pod) = kube.pod {
                    assert_eq!(pod, uid(), "{prefix}");
                }
                if let Some(container) = kube.container {
                    assert_eq!(container.id, cid(), "{prefix}");
                }
            }
        }
        let log_names = [
            format!("web-0_shop_istio-proxy-{CID}.log"),
            format!("default_web-0_{UID}"),
        ];
        for name in &log_names {
            for (cut, _) in name.char_indices() {
                let prefix = &name[..cut];
                assert_eq!(parse_container_log_name(prefix), None, "{prefix}");
                assert_eq!(parse_pod_log_dir(prefix), None, "{prefix}");
            }
        }
    }
}
