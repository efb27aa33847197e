//! One-shot: converts version-1 recordings (answers by position) to version
//! 2 (answers by question) by replaying them through today's engine and
//! keeping each answer with the question it answered. Run once over the
//! replay fixtures (`cargo test -p oomtrace-core convert_v1_fixtures --
//! --ignored`), then removed: version 1 is refused from then on.

use std::{
    fs,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use serde_json::Value;

use super::{recording::FORMAT, Engine, Input, Start};
use crate::node::{
    kubelet::Threshold,
    node_memory::Breakdown,
    observe::{
        Answer, Ask, Charges, MemoryStat, Namespaces, NodeAvailable, Observe, ProcStart, Reply,
    },
    pods::{ContainerId, PodUid},
};

/// A version-1 answer: the call and its value, no arguments.
#[derive(Deserialize)]
#[serde(tag = "call", content = "value", rename_all = "snake_case")]
enum V1 {
    ProcCgroup(Option<String>),
    Namespaces(Option<Namespaces>),
    MemoryStat(Option<MemoryStat>),
    NodeMemory(Option<NodeAvailable>),
    Threshold(Threshold),
    PodName(Option<(String, String)>),
    ContainerName(Option<String>),
    Populated(Option<bool>),
    OomGroup(Option<bool>),
    NowBootNs(u64),
    Charges(Option<Charges>),
    VmstatOomKill(Option<u64>),
    ProcStart(Option<ProcStart>),
    KubeletEvicted(Option<bool>),
    NodeBreakdown(Option<Box<Breakdown>>),
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Entry {
    Input(Input),
    Answer(V1),
    End(serde::de::IgnoredAny),
}

/// Version 1's answers in order, as version 1's replay gave them (with its
/// two allowances for recordings older still), each kept with its question.
struct Positional {
    answers: std::iter::Peekable<std::vec::IntoIter<V1>>,
    kept: Vec<Answer>,
    diverged: Option<String>,
}

macro_rules! positional {
    ($self:ident, $v1:ident, $ask:expr, $reply:ident, $default:expr) => {{
        let v = match $self.answers.next() {
            Some(V1::$v1(v)) => v,
            other => {
                $self.diverged.get_or_insert(format!(
                    "expected {}, found {}",
                    stringify!($v1),
                    other.is_some()
                ));
                $default
            }
        };
        $self.kept.push(Answer {
            ask: $ask,
            reply: Reply::$reply(v.clone()),
        });
        v
    }};
}

impl Observe for Positional {
    fn proc_cgroup(&mut self, pid: u32) -> Option<String> {
        positional!(self, ProcCgroup, Ask::ProcCgroup { pid }, ProcCgroup, None)
    }
    fn namespaces(&mut self, pid: u32) -> Option<Namespaces> {
        positional!(self, Namespaces, Ask::Namespaces { pid }, Namespaces, None)
    }
    fn memory_stat(&mut self, cgroup: &str) -> Option<MemoryStat> {
        let ask = Ask::MemoryStat {
            cgroup: cgroup.to_owned(),
        };
        positional!(self, MemoryStat, ask, MemoryStat, None)
    }
    fn node_memory(&mut self) -> Option<NodeAvailable> {
        positional!(self, NodeMemory, Ask::NodeMemory {}, NodeMemory, None)
    }
    fn eviction_threshold(&mut self) -> Threshold {
        positional!(
            self,
            Threshold,
            Ask::EvictionThreshold {},
            EvictionThreshold,
            Threshold::default()
        )
    }
    fn pod_name(&mut self, uid: &PodUid) -> Option<(String, String)> {
        let ask = Ask::PodName {
            uid: uid.as_str().to_owned(),
        };
        positional!(self, PodName, ask, PodName, None)
    }
    fn container_name(&mut self, id: &ContainerId) -> Option<String> {
        let ask = Ask::ContainerName {
            id: id.as_str().to_owned(),
        };
        positional!(self, ContainerName, ask, ContainerName, None)
    }
    fn populated(&mut self, cgroup: &str) -> Option<bool> {
        let ask = Ask::Populated {
            cgroup: cgroup.to_owned(),
        };
        positional!(self, Populated, ask, Populated, None)
    }
    fn oom_group(&mut self, victim: &str, limit: &str) -> Option<bool> {
        let ask = Ask::OomGroup {
            victim: victim.to_owned(),
            limit: limit.to_owned(),
        };
        positional!(self, OomGroup, ask, OomGroup, None)
    }
    fn now_boot_ns(&mut self) -> u64 {
        // Version 1's allowance: recordings from before the memory at the
        // kill came from the kernel's report read a memory.stat here.
        if let Some(V1::MemoryStat(_)) = self.answers.peek() {
            self.answers.next();
        }
        positional!(self, NowBootNs, Ask::NowBootNs {}, NowBootNs, 0)
    }
    fn charges(&mut self) -> Option<Charges> {
        positional!(self, Charges, Ask::Charges {}, Charges, None)
    }
    fn vmstat_oom_kill(&mut self) -> Option<u64> {
        positional!(
            self,
            VmstatOomKill,
            Ask::VmstatOomKill {},
            VmstatOomKill,
            None
        )
    }
    fn proc_start(&mut self, pid: u32) -> Option<ProcStart> {
        positional!(self, ProcStart, Ask::ProcStart { pid }, ProcStart, None)
    }
    fn kubelet_evicted(&mut self, namespace: &str, name: &str, since_unix_s: i64) -> Option<bool> {
        let ask = Ask::KubeletEvicted {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            since_unix_s,
        };
        positional!(self, KubeletEvicted, ask, KubeletEvicted, None)
    }
    fn node_breakdown(&mut self) -> Option<Box<Breakdown>> {
        // Version 1's allowance: recordings from before this read have no
        // such answer, and were replayed with none.
        if !matches!(self.answers.peek(), Some(V1::NodeBreakdown(_))) {
            self.kept.push(Answer {
                ask: Ask::NodeBreakdown {},
                reply: Reply::NodeBreakdown(None),
            });
            return None;
        }
        positional!(
            self,
            NodeBreakdown,
            Ask::NodeBreakdown {},
            NodeBreakdown,
            None
        )
    }
}

/// A version-1 header's start as version 2 writes it: every field present,
/// with the value version 1's replay gave a missing one.
fn start_of(v1: &Value) -> Result<Start, String> {
    let mut start = v1
        .get("start")
        .and_then(Value::as_object)
        .cloned()
        .ok_or("no start")?;
    if start.remove("host_pid_escapes") != Some(Value::Bool(true)) {
        return Err("recorded without following hostPID pods by pid".into());
    }
    let reading_kmsg = start
        .remove("kernel_log")
        .or_else(|| start.remove("reading_kmsg"))
        .unwrap_or(Value::Bool(true));
    start.insert("reading_kmsg".into(), reading_kmsg);
    let defaults = [
        ("container_pids", serde_json::json!([])),
        ("heartbeat_ns", serde_json::json!(0)),
        ("kernel_oom_kills", Value::Null),
        ("kubelet_log", serde_json::json!(false)),
        ("follow_long_stops", serde_json::json!(false)),
        ("runtime_slack_ns", serde_json::json!(1_000_000_000u64)),
        ("near_oom_horizon_ns", serde_json::json!(0)),
        (
            "dying_sample_ns",
            serde_json::json!(crate::node::node_memory::DYING_SAMPLE_NS),
        ),
    ];
    for (k, v) in defaults {
        start.entry(k).or_insert(v);
    }
    serde_json::from_value(Value::Object(start)).map_err(|e| e.to_string())
}

pub fn convert(from: &Path, to: &Path) -> Result<(), String> {
    let text = fs::read_to_string(from).map_err(|e| e.to_string())?;
    let mut lines = text.lines();
    let header: Value =
        serde_json::from_str(lines.next().ok_or("empty")?).map_err(|e| e.to_string())?;
    if header["format"] != FORMAT || header["version"] != 1 {
        return Err(format!("not a version-1 recording: {header}"));
    }
    let start = start_of(&header)?;
    let mut body: Vec<(Input, Vec<V1>)> = Vec::new();
    let mut ended = false;
    for (i, l) in lines.enumerate() {
        match serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 2))? {
            Entry::Input(input) => body.push((input, Vec::new())),
            Entry::Answer(a) => body.last_mut().ok_or("answer before input")?.1.push(a),
            Entry::End(_) => ended = true,
        }
    }
    let mut rec = super::recording::Recorder::create(to, &start).map_err(|e| e.to_string())?;
    let mut engine = Engine::new(start.clone());
    for (n, (input, answers)) in body.into_iter().enumerate() {
        let mut obs = Positional {
            answers: answers.into_iter().peekable(),
            kept: Vec::new(),
            diverged: None,
        };
        let _ = engine.handle(input.clone(), &mut obs);
        if let Some(d) = obs.diverged {
            return Err(format!("input {n}: {d}"));
        }
        if obs.answers.next().is_some() {
            return Err(format!("input {n}: answers left over"));
        }
        rec.input(&input, obs.kept).map_err(|e| e.to_string())?;
    }
    if ended {
        rec.end().map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[test]
#[ignore = "one-shot: converts the replay fixtures in place"]
fn convert_v1_fixtures() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut n = 0;
    for e in fs::read_dir(&dir).expect("fixtures") {
        let path = e.expect("entry").path();
        if path.extension().is_none_or(|x| x != "rec") {
            continue;
        }
        let tmp = path.with_extension("rec.v2");
        convert(&path, &tmp).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        fs::rename(&tmp, &path).expect("rename");
        n += 1;
    }
    assert!(n > 0);
}
