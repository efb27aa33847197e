//! Output values built for the unit tests: a pod's kill with every other
//! field as `Verdict::unread` leaves it, so a new verdict field needs no
//! test literal elsewhere.

use crate::{
    node::pods::{ContainerId, PodUid},
    output::verdict::{Container, Pod, Verdict, VerdictKind, Victim},
};

/// A pod known by its uid alone.
pub fn pod(uid: &str) -> Pod {
    Pod {
        uid: Some(PodUid::parse(uid).expect("a test pod uid")),
        namespace: None,
        name: None,
        qos: None,
    }
}

/// A container known by its id alone.
pub fn container(id: &str) -> Container {
    Container {
        id: ContainerId::parse(id).expect("a test container id"),
        name: None,
        runtime: None,
    }
}

/// A `pod_limit` kill of `victim` in container `cid` of pod `uid`, seen
/// by `source` (tp_btf's victim record).
pub fn pod_kill(
    source: &'static str,
    incident: String,
    victim: Victim,
    uid: &str,
    cid: &str,
) -> Verdict {
    Verdict {
        victim: Some(victim),
        pod: Some(pod(uid)),
        container: Some(container(cid)),
        ..Verdict::unread(VerdictKind::PodLimit, source, incident, "tp_btf")
    }
}
