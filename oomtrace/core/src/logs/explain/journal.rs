//! What a node's journal says beside the kernel: the kubelet's eviction
//! manager and its container kills, and containerd's OOM events. A paste of
//! `journalctl` holds them together; they name pods and containers, and
//! the eviction manager's own lines are the kubelet's word on an eviction.
//!
//! Two generations of the kubelet's wording are read: structured logging
//! (1.20+: `"Eviction manager: pod is evicted successfully" pod="NS/NAME"`)
//! and klog's printf lines before it (`eviction manager: pod
//! NAME_NS(UID) evicted successfully`).

/// One line that says something about pods, containers or evictions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalLine {
    /// The eviction manager evicted a pod.
    Evicted {
        namespace: String,
        name: String,
        uid: Option<String>,
    },
    /// The eviction manager is reclaiming this resource (`memory`,
    /// `ephemeral-storage`, `nodefs`, `imagefs`, `pid`…).
    Reclaim { resource: String },
    /// The kubelet stopping a container, with the names and ids it printed.
    Killing(ContainerName),
    /// The kubelet's PLEG naming a container of a pod.
    PodContainer(ContainerName),
    /// containerd's TaskOOM event for a container (by full id).
    TaskOom { container_id: String },
}

/// Names and ids the kubelet printed together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerName {
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub uid: Option<String>,
    pub container: Option<String>,
    /// Without the runtime's `containerd://` scheme.
    pub container_id: Option<String>,
    /// The scheme: `containerd`, `cri-o`, `docker`.
    pub runtime: Option<String>,
    pub grace_s: Option<u64>,
}

pub fn parse(text: &str) -> Option<JournalLine> {
    if let Some(at) = text.find("\"Eviction manager: pod is evicted successfully\"") {
        let (namespace, name) = split_pod(&quoted_value(&text[at..], "pod")?)?;
        return Some(JournalLine::Evicted {
            namespace,
            name,
            uid: None,
        });
    }
    if let Some(at) = text.find("eviction manager: pod ") {
        // format.Pod(): `NAME_NAMESPACE(UID)`; neither holds `_` or `(`.
        let rest = &text[at + "eviction manager: pod ".len()..];
        let (pod, tail) = rest.split_once(' ')?;
        if tail.starts_with("evicted successfully") || tail.starts_with("is evicted successfully") {
            let (name_ns, uid) = pod.strip_suffix(')')?.split_once('(')?;
            let (name, namespace) = name_ns.rsplit_once('_')?;
            return Some(JournalLine::Evicted {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                uid: (!uid.is_empty()).then(|| uid.to_owned()),
            });
        }
        return None;
    }
    for marker in [
        "\"Eviction manager: attempting to reclaim\"",
        "\"Eviction manager: must evict pod(s) to reclaim\"",
    ] {
        if let Some(at) = text.find(marker) {
            let resource = quoted_value(&text[at..], "resourceName")?;
            return Some(JournalLine::Reclaim { resource });
        }
    }
    for marker in [
        "eviction manager: attempting to reclaim ",
        "eviction manager: must evict pod(s) to reclaim ",
    ] {
        if let Some(at) = text.find(marker) {
            let resource = text[at + marker.len()..].split_whitespace().next()?;
            return Some(JournalLine::Reclaim {
                resource: resource.to_owned(),
            });
        }
    }
    if let Some(at) = text.find("\"Killing container with a grace period\"") {
        let rest = &text[at..];
        return Some(JournalLine::Killing(container_name(rest)));
    }
    if let Some(at) = text.find("\"SyncLoop (PLEG): event for pod\"") {
        // event=&{ID:<pod uid> Type:ContainerDied Data:<container id>}
        let rest = &text[at..];
        let mut c = container_name(rest);
        let event = rest.split_once("event=&{")?.1;
        c.uid = field(event, "ID:");
        c.container_id = field(event, "Data:").filter(|d| is_hex_id(d));
        c.container_id.as_ref()?;
        return Some(JournalLine::PodContainer(c));
    }
    if let Some(at) = text.find("TaskOOM") {
        let rest = &text[at..];
        let id = rest
            .split_once("container_id:")
            .or_else(|| rest.split_once("ContainerID:"))
            .map(|(_, r)| r.trim_start_matches(['\\', '"']))?;
        let id: String = id.chars().take_while(char::is_ascii_hexdigit).collect();
        return is_hex_id(&id).then_some(JournalLine::TaskOom { container_id: id });
    }
    None
}

fn container_name(rest: &str) -> ContainerName {
    let pod = quoted_value(rest, "pod").and_then(|p| split_pod(&p));
    ContainerName {
        namespace: pod.as_ref().map(|(ns, _)| ns.clone()),
        name: pod.map(|(_, n)| n),
        uid: bare_value(rest, "podUID"),
        container: quoted_value(rest, "containerName"),
        container_id: quoted_value(rest, "containerID").map(|id| match id.split_once("://") {
            Some((_, id)) => id.to_owned(),
            None => id,
        }),
        runtime: quoted_value(rest, "containerID")
            .and_then(|id| id.split_once("://").map(|(scheme, _)| scheme.to_owned())),
        grace_s: bare_value(rest, "gracePeriod").and_then(|g| g.parse().ok()),
    }
}

fn split_pod(pod: &str) -> Option<(String, String)> {
    let (ns, name) = pod.split_once('/')?;
    (!ns.is_empty() && !name.is_empty()).then(|| (ns.to_owned(), name.to_owned()))
}

/// ` key="value"` (structured logging quotes strings).
fn quoted_value(text: &str, key: &str) -> Option<String> {
    let pat = format!(" {key}=\"");
    let (_, rest) = text.split_once(&pat)?;
    let (value, _) = rest.split_once('"')?;
    Some(value.to_owned())
}

/// ` key=value` (uids and numbers come unquoted).
fn bare_value(text: &str, key: &str) -> Option<String> {
    let pat = format!(" {key}=");
    let (_, rest) = text.split_once(&pat)?;
    let value: String = rest
        .trim_start_matches('"')
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    (!value.is_empty()).then_some(value)
}

fn field(event: &str, key: &str) -> Option<String> {
    let (_, rest) = event.split_once(key)?;
    let value: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    (!value.is_empty()).then_some(value)
}

fn is_hex_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CID: &str = "4296b9e2377fddb0e7e42d20223c36771268cb7a1828315331405b66f0030add";

    #[test]
    fn structured_eviction_lines() {
        assert_eq!(
            parse(
                r#"I1012 19:34:45.445172    2480 eviction_manager.go:595] "Eviction manager: pod is evicted successfully" pod="default/nginx""#
            ),
            Some(JournalLine::Evicted {
                namespace: "default".into(),
                name: "nginx".into(),
                uid: None
            })
        );
        assert_eq!(
            parse(
                r#"I0528 16:05:50.514706 1 eviction_manager.go:374] "Eviction manager: attempting to reclaim" resourceName="memory""#
            ),
            Some(JournalLine::Reclaim {
                resource: "memory".into()
            })
        );
        let k = parse(&format!(
            r#"I1012 19:34:45.000152    2480 kuberuntime_container.go:709] "Killing container with a grace period" pod="default/nginx" podUID=27aff94d-e0d9-43d1-84d6-9ab000aa57e2 containerName="nginx" containerID="containerd://{CID}" gracePeriod=30"#
        ));
        assert_eq!(
            k,
            Some(JournalLine::Killing(ContainerName {
                namespace: Some("default".into()),
                name: Some("nginx".into()),
                uid: Some("27aff94d-e0d9-43d1-84d6-9ab000aa57e2".into()),
                container: Some("nginx".into()),
                container_id: Some(CID.into()),
                runtime: Some("containerd".into()),
                grace_s: Some(30),
            }))
        );
        let p = parse(&format!(
            r#"I1012 19:34:45.357018    2480 kubelet.go:2231] "SyncLoop (PLEG): event for pod" pod="default/nginx" event=&{{ID:27aff94d-e0d9-43d1-84d6-9ab000aa57e2 Type:ContainerDied Data:{CID}}}"#
        ));
        let Some(JournalLine::PodContainer(c)) = p else {
            panic!("{p:?}");
        };
        assert_eq!(c.container_id.as_deref(), Some(CID));
        assert_eq!(
            c.uid.as_deref(),
            Some("27aff94d-e0d9-43d1-84d6-9ab000aa57e2")
        );
        // Ranking and thresholds are context.
        assert_eq!(
            parse(
                r#"I1012 eviction_manager.go:374] "Eviction manager: pods ranked for eviction" pods="[default/nginx kube-system/kube-proxy-5thr6]""#
            ),
            None
        );
    }

    #[test]
    fn klog_eviction_lines() {
        assert_eq!(
            parse("I0822 23:51:03.731930 2684 eviction_manager.go:225] eviction manager: must evict pod(s) to reclaim imagefs"),
            Some(JournalLine::Reclaim {
                resource: "imagefs".into()
            })
        );
        assert_eq!(
            parse("I0913 eviction_manager.go:317] eviction manager: pod web-7d4b9c-x2x4k_shop(0c1a5b5e-98c1-11e7-8e52-42010a800002) evicted successfully"),
            Some(JournalLine::Evicted {
                namespace: "shop".into(),
                name: "web-7d4b9c-x2x4k".into(),
                uid: Some("0c1a5b5e-98c1-11e7-8e52-42010a800002".into()),
            })
        );
        assert_eq!(
            parse("I0913 eviction_manager.go:288] eviction manager: node conditions - observed: [MemoryPressure]"),
            None
        );
        assert_eq!(
            parse("E0822 eviction_manager.go:230] eviction manager: no ranking function for resource imagefs"),
            None
        );
        assert_eq!(
            parse("eviction manager: pod x_y(u) failed to evict timeout"),
            None
        );
    }

    #[test]
    fn containerd_task_oom() {
        assert_eq!(
            parse(&format!(
                r#"time="2023-01-01T00:00:00Z" level=info msg="TaskOOM event container_id:\"{CID}\"""#
            )),
            Some(JournalLine::TaskOom {
                container_id: CID.into()
            })
        );
        assert_eq!(
            parse(&format!(
                "msg=\"TaskOOM event &TaskOOM{{ContainerID:{CID},XXX_unrecognized:[],}}\""
            )),
            Some(JournalLine::TaskOom {
                container_id: CID.into()
            })
        );
        assert_eq!(parse("TaskOOM event container_id:\"abc\""), None);
    }
}
