//! The engine's window on the node: every read of /proc, cgroupfs, the
//! kubelet's files and the clock goes through [`Observe`]. Live, the answers
//! come from the machine (and are written to a recording when asked); in a
//! replay each comes back from the recording by what was asked (the call
//! and its arguments), so the same events give the same verdicts bit for
//! bit.

use std::{
    collections::{HashMap, VecDeque},
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{
    node::cgroup::memory_cgroup_of,
    node::files::{read_kv, read_u64},
    node::kubelet::Threshold,
    node::pods::{parse_container_log_name, parse_pod_log_dir, ContainerId, PodUid},
};

/// A cgroup's memory as its own files say, read after the kill.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryStat {
    pub usage_bytes: Option<u64>,
    pub anon_bytes: Option<u64>,
    pub file_bytes: Option<u64>,
    pub active_file_bytes: Option<u64>,
    pub inactive_file_bytes: Option<u64>,
    pub slab_bytes: Option<u64>,
}

/// What the kubelet would compute for the node, plus MemAvailable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAvailable {
    pub capacity_bytes: u64,
    pub mem_available_bytes: u64,
    /// capacity − the root cgroup's working set (usage − inactive_file).
    pub memory_available_bytes: u64,
}

/// The pid and mount namespaces of a live process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespaces {
    pub pid_ns: u32,
    pub mnt_ns: u32,
}

/// The kernel's charge counters, summed over CPUs, since they were armed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charges {
    pub armed_ns: u64,
    pub now_ns: u64,
    /// (cgroup id, pages charged)
    pub pages: Vec<(u64, u64)>,
}

/// The kernel's charge counters, read on demand (the daemon's reader of
/// the `CHARGES` map; none in a replay, where the recording answers).
pub trait ChargeSource {
    fn read(&self) -> Option<Charges>;
    /// Counting starts (the hook was attached at `now_ns`).
    fn arm(&mut self, now_ns: u64);
    /// Forget the counts of a pressure episode that ended.
    fn clear(&mut self);
}

/// The node's reads the engine makes, each once: [`Ask`] (the call and its
/// arguments, what a replay looks an answer up by) and [`Reply`] (what the
/// node said) are both made from this list, so a new read is one line here,
/// its [`Observe`] method and its live reader.
macro_rules! calls {
    ($($call:ident { $($arg:ident: $ty:ty),* } -> $value:ty;)*) => {
        /// A question to the node, as recorded: the call and its arguments.
        #[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(tag = "call", rename_all = "snake_case", deny_unknown_fields)]
        pub enum Ask {
            $($call { $($arg: $ty),* },)*
        }

        /// The node's answer to the [`Ask`] of the same name.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Reply {
            $($call($value),)*
        }

        impl Reply {
            fn to_json(&self) -> serde_json::Result<serde_json::Value> {
                match self {
                    $(Reply::$call(v) => serde_json::to_value(v),)*
                }
            }

            /// `value` read as the answer to `ask`.
            fn from_json(ask: &Ask, value: serde_json::Value) -> serde_json::Result<Reply> {
                Ok(match ask {
                    $(Ask::$call { .. } => Reply::$call(serde_json::from_value(value)?),)*
                })
            }
        }
    };
}

calls! {
    ProcCgroup { pid: u32 } -> Option<String>;
    Namespaces { pid: u32 } -> Option<Namespaces>;
    MemoryStat { cgroup: String } -> Option<MemoryStat>;
    NodeMemory {} -> Option<NodeAvailable>;
    EvictionThreshold {} -> Threshold;
    PodName { uid: String } -> Option<(String, String)>;
    ContainerName { id: String } -> Option<String>;
    Populated { cgroup: String } -> Option<bool>;
    OomGroup { victim: String, limit: String } -> Option<bool>;
    NowBootNs {} -> u64;
    Charges {} -> Option<Charges>;
    VmstatOomKill {} -> Option<u64>;
    ProcStart { pid: u32 } -> Option<ProcStart>;
    KubeletEvicted { namespace: String, name: String, since_unix_s: i64 } -> Option<bool>;
    NodeBreakdown {} -> Option<Box<crate::node::node_memory::Breakdown>>;
    // /proc/PID/exe of a signal's sender (userspace OOM killers).
    Exe { pid: u32 } -> Option<String>;
    // /proc/pressure/memory at a userspace OOM killer's signal.
    NodePsi {} -> Option<crate::node::node_memory::Psi>;
}

/// One answer, as recorded: one JSON object, the [`Ask`]'s fields (`call`
/// and the arguments) and the reply as `value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub ask: Ask,
    pub reply: Reply,
}

impl Serialize for Answer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::{ser::Error, ser::SerializeMap};
        let ask = match serde_json::to_value(&self.ask).map_err(S::Error::custom)? {
            serde_json::Value::Object(m) => m,
            other => return Err(S::Error::custom(format!("an ask as {other}"))),
        };
        let value = self.reply.to_json().map_err(S::Error::custom)?;
        let mut map = s.serialize_map(Some(ask.len() + 1))?;
        // `call` first, so a line reads as the question it answers.
        if let Some(call) = ask.get("call") {
            map.serialize_entry("call", call)?;
        }
        for (k, v) in ask.iter().filter(|(k, _)| *k != "call") {
            map.serialize_entry(k, v)?;
        }
        map.serialize_entry("value", &value)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for Answer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut fields = serde_json::Map::deserialize(d)?;
        let value = fields
            .remove("value")
            .ok_or_else(|| D::Error::missing_field("value"))?;
        let ask = Ask::deserialize(serde_json::Value::Object(fields)).map_err(D::Error::custom)?;
        let reply = Reply::from_json(&ask, value)
            .map_err(|e| D::Error::custom(format!("the answer to {ask:?}: {e}")))?;
        Ok(Answer { ask, reply })
    }
}

pub trait Observe {
    /// The memory-hierarchy cgroup of a live process.
    fn proc_cgroup(&mut self, pid: u32) -> Option<String>;
    fn namespaces(&mut self, pid: u32) -> Option<Namespaces>;
    fn memory_stat(&mut self, cgroup: &str) -> Option<MemoryStat>;
    fn node_memory(&mut self) -> Option<NodeAvailable>;
    fn eviction_threshold(&mut self) -> Threshold;
    /// (namespace, name) of a pod, from the kubelet's pod log directory.
    fn pod_name(&mut self, uid: &PodUid) -> Option<(String, String)>;
    fn container_name(&mut self, id: &ContainerId) -> Option<String>;
    /// Whether a cgroup or any descendant holds a process.
    fn populated(&mut self, cgroup: &str) -> Option<bool>;
    /// Whether a kill in `victim` (a cgroup at or below `limit`, the one
    /// whose limit was hit) takes a whole group: v2 `memory.oom.group` set
    /// on some cgroup from the victim's up to the limit's (the kernel's
    /// `mem_cgroup_get_oom_group`). Null when a level could not be read.
    fn oom_group(&mut self, victim: &str, limit: &str) -> Option<bool>;
    fn now_boot_ns(&mut self) -> u64;
    /// The kernel's per-cgroup charge counters, when armed.
    fn charges(&mut self) -> Option<Charges>;
    /// /proc/vmstat `oom_kill`: the kernel's OOM kills this boot.
    fn vmstat_oom_kill(&mut self) -> Option<u64>;
    /// When a live process started, and its parent (/proc/PID/stat).
    fn proc_start(&mut self, pid: u32) -> Option<ProcStart>;
    /// Whether the kubelet's log says it evicted pod `namespace/name`
    /// (since `since_unix_s`); None when no log is read.
    fn kubelet_evicted(&mut self, namespace: &str, name: &str, since_unix_s: i64) -> Option<bool>;
    /// Where the node's memory is (`node_memory`): read for node-pressure
    /// kills, last of a kill's reads.
    fn node_breakdown(&mut self) -> Option<Box<crate::node::node_memory::Breakdown>>;
    /// The executable of a live process (/proc/PID/exe).
    fn exe(&mut self, pid: u32) -> Option<String>;
    /// The node's memory PSI (/proc/pressure/memory); None where the
    /// kernel keeps none.
    fn node_psi(&mut self) -> Option<crate::node::node_memory::Psi>;
}

/// A live process's start (CLOCK_BOOTTIME ns, to the clock tick) and parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcStart {
    pub start_ns: u64,
    pub ppid: u32,
}

/// Paths and settings the live observer reads from.
#[derive(Clone, Debug)]
pub struct Sources {
    pub memory_root: PathBuf,
    pub v2: bool,
    pub pods_log_dir: PathBuf,
    pub containers_log_dir: PathBuf,
    pub kubelet_config: PathBuf,
    /// This process's own cgroup namespace, when it has one: /proc/PID/cgroup
    /// paths are then relative to its root.
    pub cgroup_ns: Option<crate::node::cgroup::CgroupNamespace>,
}

/// Reads the machine; every answer is also pushed to `recorded` when recording.
pub struct Live {
    pub sources: Sources,
    pub recorded: Option<Vec<Answer>>,
    pub charges: Option<Box<dyn ChargeSource>>,
    pub kubelet_log: crate::node::kubelet_log::Reader,
}

impl Live {
    fn keep(&mut self, ask: impl FnOnce() -> Ask, reply: Reply) {
        // Each read's end, at trace level of the kill path's timing log
        // (`OOMTRACE_LOG=oomtrace::timing=trace`): the gaps between them are
        // what each read cost.
        let timed = tracing::enabled!(target: "oomtrace::timing", tracing::Level::TRACE);
        if !timed && self.recorded.is_none() {
            return;
        }
        let ask = ask();
        if timed {
            tracing::trace!(target: "oomtrace::timing", "read done_ns={} {ask:?}", boot_ns());
        }
        if let Some(r) = self.recorded.as_mut() {
            r.push(Answer { ask, reply });
        }
    }

    fn cgroup_dir(&self, cgroup: &str) -> PathBuf {
        self.sources
            .memory_root
            .join(cgroup.trim_start_matches('/'))
    }
}

/// /proc/PID/stat's start time (clock ticks since boot) and parent.
fn read_proc_start(pid: u32) -> Option<ProcStart> {
    let stat = procfs::process::Process::new(i32::try_from(pid).ok()?)
        .ok()?
        .stat()
        .ok()?;
    let ticks = procfs::ticks_per_second().max(1);
    Some(ProcStart {
        start_ns: stat.starttime.saturating_mul(1_000_000_000) / ticks,
        ppid: u32::try_from(stat.ppid).ok()?,
    })
}

pub fn boot_ns() -> u64 {
    let t = rustix::time::clock_gettime_dynamic(rustix::time::DynamicClockId::Boottime)
        .unwrap_or_else(|_| rustix::time::clock_gettime(rustix::time::ClockId::Monotonic));
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

pub fn read_memory_stat(dir: &Path, v2: bool) -> Option<MemoryStat> {
    let stat = read_kv(&dir.join("memory.stat"))?;
    let g = |k: &str| stat.get(k).copied();
    Some(if v2 {
        MemoryStat {
            usage_bytes: read_u64(&dir.join("memory.current")),
            anon_bytes: g("anon"),
            file_bytes: g("file"),
            active_file_bytes: g("active_file"),
            inactive_file_bytes: g("inactive_file"),
            slab_bytes: g("slab"),
        }
    } else {
        // v1: the total_* keys include descendants, as v2's do.
        MemoryStat {
            usage_bytes: read_u64(&dir.join("memory.usage_in_bytes")),
            anon_bytes: g("total_rss"),
            file_bytes: g("total_cache"),
            active_file_bytes: g("total_active_file"),
            inactive_file_bytes: g("total_inactive_file"),
            slab_bytes: None,
        }
    })
}

impl Observe for Live {
    fn proc_cgroup(&mut self, pid: u32) -> Option<String> {
        // Read as bytes and escaped as the ring buffer's paths are (a name
        // that is not UTF-8 gets `\xNN`, see `event::escape_bytes`): the
        // same cgroup gives the same path from here and from the kernel.
        let a = fs::read(format!("/proc/{pid}/cgroup"))
            .ok()
            .and_then(|b| {
                memory_cgroup_of(&crate::kernel::event::escape_bytes(&b), self.sources.v2)
            })
            .and_then(|p| match &self.sources.cgroup_ns {
                // The namespace's root is oomtrace's own cgroup: a task
                // shows it once it has exited (moved to the root), which
                // says nothing, as `/` says nothing in the node's namespace.
                Some(_) if p == "/" => Some(p),
                Some(ns) => ns.full_path(&p),
                None => Some(p),
            });
        self.keep(|| Ask::ProcCgroup { pid }, Reply::ProcCgroup(a.clone()));
        a
    }

    fn namespaces(&mut self, pid: u32) -> Option<Namespaces> {
        let ino = |n: &str| {
            fs::metadata(format!("/proc/{pid}/ns/{n}"))
                .ok()
                .map(|m| m.ino() as u32)
        };
        let a = match (ino("pid"), ino("mnt")) {
            (Some(pid_ns), Some(mnt_ns)) => Some(Namespaces { pid_ns, mnt_ns }),
            _ => None,
        };
        self.keep(|| Ask::Namespaces { pid }, Reply::Namespaces(a));
        a
    }

    fn memory_stat(&mut self, cgroup: &str) -> Option<MemoryStat> {
        let a = read_memory_stat(&self.cgroup_dir(cgroup), self.sources.v2);
        self.keep(
            || Ask::MemoryStat {
                cgroup: cgroup.to_owned(),
            },
            Reply::MemoryStat(a.clone()),
        );
        a
    }

    fn node_memory(&mut self) -> Option<NodeAvailable> {
        let a = read_node_memory(&self.sources.memory_root, self.sources.v2);
        self.keep(|| Ask::NodeMemory {}, Reply::NodeMemory(a.clone()));
        a
    }

    fn eviction_threshold(&mut self) -> Threshold {
        let a = crate::node::kubelet::read_threshold(&self.sources.kubelet_config);
        self.keep(
            || Ask::EvictionThreshold {},
            Reply::EvictionThreshold(a.clone()),
        );
        a
    }

    fn pod_name(&mut self, uid: &PodUid) -> Option<(String, String)> {
        let a = fs::read_dir(&self.sources.pods_log_dir)
            .ok()
            .and_then(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| e.file_name().to_str().and_then(parse_pod_log_dir))
                    .find(|p| &p.uid == uid)
                    .map(|p| (p.namespace, p.name))
            });
        self.keep(
            || Ask::PodName {
                uid: uid.as_str().to_owned(),
            },
            Reply::PodName(a.clone()),
        );
        a
    }

    fn container_name(&mut self, id: &ContainerId) -> Option<String> {
        let a = fs::read_dir(&self.sources.containers_log_dir)
            .ok()
            .and_then(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| e.file_name().to_str().and_then(parse_container_log_name))
                    .find(|c| &c.id == id)
                    .map(|c| c.container)
            });
        self.keep(
            || Ask::ContainerName {
                id: id.as_str().to_owned(),
            },
            Reply::ContainerName(a.clone()),
        );
        a
    }

    fn populated(&mut self, cgroup: &str) -> Option<bool> {
        let a = populated(&self.cgroup_dir(cgroup), self.sources.v2);
        self.keep(
            || Ask::Populated {
                cgroup: cgroup.to_owned(),
            },
            Reply::Populated(a),
        );
        a
    }

    fn oom_group(&mut self, victim: &str, limit: &str) -> Option<bool> {
        let a = if self.sources.v2 {
            let mut unread = false;
            let mut found = false;
            for c in up_to(victim, limit) {
                match read_u64(&self.cgroup_dir(c).join("memory.oom.group")) {
                    Some(1) => found = true,
                    Some(_) => {}
                    None => unread = true,
                }
            }
            if found {
                Some(true)
            } else {
                (!unread).then_some(false)
            }
        } else {
            Some(false)
        };
        self.keep(
            || Ask::OomGroup {
                victim: victim.to_owned(),
                limit: limit.to_owned(),
            },
            Reply::OomGroup(a),
        );
        a
    }

    fn now_boot_ns(&mut self) -> u64 {
        let a = boot_ns();
        self.keep(|| Ask::NowBootNs {}, Reply::NowBootNs(a));
        a
    }

    fn charges(&mut self) -> Option<Charges> {
        let a = self.charges.as_ref().and_then(|c| c.read());
        self.keep(|| Ask::Charges {}, Reply::Charges(a.clone()));
        a
    }

    fn vmstat_oom_kill(&mut self) -> Option<u64> {
        let a = crate::logs::state::vmstat_oom_kill();
        self.keep(|| Ask::VmstatOomKill {}, Reply::VmstatOomKill(a));
        a
    }

    fn proc_start(&mut self, pid: u32) -> Option<ProcStart> {
        let a = read_proc_start(pid);
        self.keep(|| Ask::ProcStart { pid }, Reply::ProcStart(a));
        a
    }

    fn kubelet_evicted(&mut self, namespace: &str, name: &str, since_unix_s: i64) -> Option<bool> {
        let a = self.kubelet_log.evicted(namespace, name, since_unix_s);
        self.keep(
            || Ask::KubeletEvicted {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                since_unix_s,
            },
            Reply::KubeletEvicted(a),
        );
        a
    }

    fn node_breakdown(&mut self) -> Option<Box<crate::node::node_memory::Breakdown>> {
        let a = match crate::node::node_memory::read(&self.sources.memory_root, self.sources.v2) {
            Ok(input) => Some(Box::new(crate::node::node_memory::breakdown(&input))),
            Err(e) => {
                tracing::debug!("node memory breakdown: {e}");
                None
            }
        };
        self.keep(|| Ask::NodeBreakdown {}, Reply::NodeBreakdown(a.clone()));
        a
    }

    fn exe(&mut self, pid: u32) -> Option<String> {
        let a = fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned());
        self.keep(|| Ask::Exe { pid }, Reply::Exe(a.clone()));
        a
    }

    fn node_psi(&mut self) -> Option<crate::node::node_memory::Psi> {
        let a = fs::read_to_string("/proc/pressure/memory")
            .ok()
            .and_then(|t| crate::node::node_memory::parse_psi(&t));
        self.keep(|| Ask::NodePsi {}, Reply::NodePsi(a));
        a
    }
}

fn populated(dir: &Path, v2: bool) -> Option<bool> {
    if v2 {
        let events = fs::read_to_string(dir.join("cgroup.events")).ok()?;
        return events
            .lines()
            .find_map(|l| l.strip_prefix("populated "))
            .map(|v| v.trim() == "1");
    }
    // v1 has no populated flag: walk cgroup.procs down the subtree.
    let mut stack = vec![dir.to_path_buf()];
    let mut seen_any = false;
    while let Some(d) = stack.pop() {
        let Ok(procs) = fs::read_to_string(d.join("cgroup.procs")) else {
            continue;
        };
        seen_any = true;
        if procs.lines().any(|l| !l.trim().is_empty()) {
            return Some(true);
        }
        if let Ok(entries) = fs::read_dir(&d) {
            stack.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
    }
    seen_any.then_some(false)
}

/// The kubelet's memory.available: capacity minus the root cgroup's working
/// set. v1's root memcg reports usage and total_inactive_file; v2's root has
/// no memory.current, so it is derived from /proc/meminfo as cadvisor does.
pub fn read_node_memory(memory_root: &Path, v2: bool) -> Option<NodeAvailable> {
    let meminfo = <procfs::Meminfo as procfs::Current>::current().ok()?;
    let capacity = meminfo.mem_total;
    let mem_available = meminfo.mem_available.unwrap_or(meminfo.mem_free);
    let working_set = if v2 {
        let usage = capacity.saturating_sub(meminfo.mem_free);
        usage.saturating_sub(meminfo.inactive_file.unwrap_or(0))
    } else {
        let usage = read_u64(&memory_root.join("memory.usage_in_bytes"))?;
        let inactive = read_kv(&memory_root.join("memory.stat"))
            .and_then(|s| s.get("total_inactive_file").copied())
            .unwrap_or(0);
        usage.saturating_sub(inactive)
    };
    Some(NodeAvailable {
        capacity_bytes: capacity,
        mem_available_bytes: mem_available,
        memory_available_bytes: capacity.saturating_sub(working_set),
    })
}

/// Answers from a recording, looked up by what is asked: the same
/// question asked twice gets its recorded answers in the order given.
pub struct Replayed {
    answers: HashMap<Ask, VecDeque<Reply>>,
    pub diverged: Option<String>,
}

impl Replayed {
    pub fn new(answers: Vec<Answer>) -> Self {
        let mut by_ask: HashMap<Ask, VecDeque<Reply>> = HashMap::new();
        for a in answers {
            by_ask.entry(a.ask).or_default().push_back(a.reply);
        }
        Replayed {
            answers: by_ask,
            diverged: None,
        }
    }

    /// Recorded answers the replay did not ask for: the engine took another
    /// path.
    pub fn unasked(&self) -> Vec<&Ask> {
        let mut left: Vec<&Ask> = self
            .answers
            .iter()
            .flat_map(|(ask, replies)| std::iter::repeat_n(ask, replies.len()))
            .collect();
        left.sort_by_key(|a| format!("{a:?}"));
        left
    }

    fn take(&mut self, ask: Ask) -> Option<Reply> {
        let reply = self.answers.get_mut(&ask).and_then(VecDeque::pop_front);
        if reply.is_none() && self.diverged.is_none() {
            self.diverged = Some(format!("the recording has no answer to {ask:?}"));
        }
        reply
    }
}

/// The recorded reply to `Ask::$call { args }`, or `$default` (the replay
/// then diverged, which [`Replayed::diverged`] says).
macro_rules! replay_answer {
    ($self:ident, $call:ident { $($arg:ident: $val:expr),* }, $default:expr) => {
        match $self.take(Ask::$call { $($arg: $val),* }) {
            Some(Reply::$call(v)) => v,
            // `Reply::from_json` gives every ask its own call's reply.
            _ => $default,
        }
    };
}

impl Observe for Replayed {
    fn proc_cgroup(&mut self, pid: u32) -> Option<String> {
        replay_answer!(self, ProcCgroup { pid: pid }, None)
    }
    fn namespaces(&mut self, pid: u32) -> Option<Namespaces> {
        replay_answer!(self, Namespaces { pid: pid }, None)
    }
    fn memory_stat(&mut self, cgroup: &str) -> Option<MemoryStat> {
        replay_answer!(
            self,
            MemoryStat {
                cgroup: cgroup.to_owned()
            },
            None
        )
    }
    fn node_memory(&mut self) -> Option<NodeAvailable> {
        replay_answer!(self, NodeMemory {}, None)
    }
    fn eviction_threshold(&mut self) -> Threshold {
        replay_answer!(self, EvictionThreshold {}, Threshold::default())
    }
    fn pod_name(&mut self, uid: &PodUid) -> Option<(String, String)> {
        replay_answer!(
            self,
            PodName {
                uid: uid.as_str().to_owned()
            },
            None
        )
    }
    fn container_name(&mut self, id: &ContainerId) -> Option<String> {
        replay_answer!(
            self,
            ContainerName {
                id: id.as_str().to_owned()
            },
            None
        )
    }
    fn populated(&mut self, cgroup: &str) -> Option<bool> {
        replay_answer!(
            self,
            Populated {
                cgroup: cgroup.to_owned()
            },
            None
        )
    }
    fn oom_group(&mut self, victim: &str, limit: &str) -> Option<bool> {
        replay_answer!(
            self,
            OomGroup {
                victim: victim.to_owned(),
                limit: limit.to_owned()
            },
            None
        )
    }
    fn now_boot_ns(&mut self) -> u64 {
        replay_answer!(self, NowBootNs {}, 0)
    }
    fn charges(&mut self) -> Option<Charges> {
        replay_answer!(self, Charges {}, None)
    }
    fn vmstat_oom_kill(&mut self) -> Option<u64> {
        replay_answer!(self, VmstatOomKill {}, None)
    }
    fn proc_start(&mut self, pid: u32) -> Option<ProcStart> {
        replay_answer!(self, ProcStart { pid: pid }, None)
    }
    fn kubelet_evicted(&mut self, namespace: &str, name: &str, since_unix_s: i64) -> Option<bool> {
        replay_answer!(
            self,
            KubeletEvicted {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                since_unix_s: since_unix_s
            },
            None
        )
    }
    fn node_breakdown(&mut self) -> Option<Box<crate::node::node_memory::Breakdown>> {
        replay_answer!(self, NodeBreakdown {}, None)
    }
    fn exe(&mut self, pid: u32) -> Option<String> {
        replay_answer!(self, Exe { pid: pid }, None)
    }
    fn node_psi(&mut self) -> Option<crate::node::node_memory::Psi> {
        replay_answer!(self, NodePsi {}, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_cgroup_from_proc_pid_cgroup() {
        let v1 = "12:pids:/kubepods/pod1/c1\n\
                  4:cpu,cpuacct:/kubepods/pod1/c1\n\
                  7:memory:/kubepods/burstable/pod1/c1\n\
                  1:name=systemd:/kubepods/pod1/c1\n\
                  0::/system.slice/containerd.service\n";
        assert_eq!(
            memory_cgroup_of(v1, false).as_deref(),
            Some("/kubepods/burstable/pod1/c1")
        );
        // Hybrid: v2 mode takes the unified line.
        assert_eq!(
            memory_cgroup_of(v1, true).as_deref(),
            Some("/system.slice/containerd.service")
        );
        let v2 = "0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-c1.scope\n";
        assert_eq!(
            memory_cgroup_of(v2, true).as_deref(),
            Some("/kubepods.slice/kubepods-pod1.slice/cri-containerd-c1.scope")
        );
        assert_eq!(memory_cgroup_of(v2, false), None);
        // A path may hold colons.
        assert_eq!(memory_cgroup_of("0::/a:b\n", true).as_deref(), Some("/a:b"));
        assert_eq!(memory_cgroup_of("", true), None);
        assert_eq!(memory_cgroup_of("garbage", true), None);
        assert_eq!(memory_cgroup_of("x:memory:/a\n", false), None);
    }

    fn answer(ask: Ask, reply: Reply) -> Answer {
        Answer { ask, reply }
    }

    #[test]
    fn an_answer_is_one_line_of_the_question_and_its_value() {
        let a = answer(
            Ask::OomGroup {
                victim: "/a/b".into(),
                limit: "/a".into(),
            },
            Reply::OomGroup(Some(true)),
        );
        let line = serde_json::to_string(&a).expect("serializes");
        assert!(line.starts_with(r#"{"call":"oom_group","#), "{line}");
        assert!(line.ends_with(r#""value":true}"#), "{line}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&line).ok(),
            Some(serde_json::json!({
                "call": "oom_group", "victim": "/a/b", "limit": "/a", "value": true
            }))
        );
        assert_eq!(serde_json::from_str::<Answer>(&line).ok(), Some(a));
        let unit = answer(Ask::NowBootNs {}, Reply::NowBootNs(7));
        let line = serde_json::to_string(&unit).expect("serializes");
        assert_eq!(line, r#"{"call":"now_boot_ns","value":7}"#);
        assert_eq!(serde_json::from_str::<Answer>(&line).ok(), Some(unit));
        // The value is read as the call's own type.
        let wrong = r#"{"call":"now_boot_ns","value":"soon"}"#;
        let err = serde_json::from_str::<Answer>(wrong).expect_err("a string is no clock");
        assert!(err.to_string().contains("NowBootNs"), "{err}");
        assert!(serde_json::from_str::<Answer>(r#"{"call":"now_boot_ns"}"#).is_err());
        assert!(serde_json::from_str::<Answer>(r#"{"call":"mystery","value":1}"#).is_err());
    }

    #[test]
    fn a_replay_answers_by_question_whatever_the_order() {
        let mut r = Replayed::new(vec![
            answer(Ask::NowBootNs {}, Reply::NowBootNs(1)),
            answer(
                Ask::ProcCgroup { pid: 2 },
                Reply::ProcCgroup(Some("/b".into())),
            ),
            answer(
                Ask::ProcCgroup { pid: 1 },
                Reply::ProcCgroup(Some("/a".into())),
            ),
            answer(Ask::NowBootNs {}, Reply::NowBootNs(2)),
        ]);
        assert_eq!(r.proc_cgroup(1).as_deref(), Some("/a"));
        // The same question twice: its answers in the order recorded.
        assert_eq!((r.now_boot_ns(), r.now_boot_ns()), (1, 2));
        assert_eq!(r.unasked(), [&Ask::ProcCgroup { pid: 2 }]);
        assert_eq!(r.diverged, None);
        assert_eq!(r.proc_cgroup(3), None);
        assert!(
            r.diverged
                .as_deref()
                .is_some_and(|d| d.contains("ProcCgroup { pid: 3 }")),
            "{:?}",
            r.diverged
        );
    }

    #[test]
    fn live_proc_cgroup_of_this_process() {
        let Ok(text) = fs::read_to_string("/proc/self/cgroup") else {
            return;
        };
        let v2 = text.lines().any(|l| l.starts_with("0::"))
            && !text.lines().any(|l| l.contains(":memory:"));
        let mut live = Live {
            sources: Sources {
                memory_root: PathBuf::from("/sys/fs/cgroup"),
                v2,
                pods_log_dir: PathBuf::new(),
                containers_log_dir: PathBuf::new(),
                kubelet_config: PathBuf::new(),
                cgroup_ns: None,
            },
            recorded: Some(Vec::new()),
            charges: None,
            kubelet_log: crate::node::kubelet_log::Reader::new(
                crate::node::kubelet_log::Source::None,
            ),
        };
        let a = live.proc_cgroup(std::process::id());
        assert_eq!(a, memory_cgroup_of(&text, v2));
        assert!(a.is_some(), "{text}");
        assert_eq!(
            live.recorded,
            Some(vec![Answer {
                ask: Ask::ProcCgroup {
                    pid: std::process::id()
                },
                reply: Reply::ProcCgroup(a)
            }])
        );
    }
}

/// `victim` and its ancestors up to `limit` included (the root excluded): the
/// cgroups whose `memory.oom.group` the kernel consults for a kill. A
/// victim outside `limit`'s subtree gives `limit` alone.
pub(crate) fn up_to<'a>(victim: &'a str, limit: &'a str) -> Vec<&'a str> {
    let inside = victim == limit
        || limit == "/"
        || victim
            .strip_prefix(limit)
            .is_some_and(|rest| rest.starts_with('/'));
    if !inside {
        return vec![limit].into_iter().filter(|c| *c != "/").collect();
    }
    let mut out = Vec::new();
    for c in crate::node::cgroup::ancestors(victim) {
        out.push(c);
        if c == limit {
            break;
        }
    }
    out
}

#[cfg(test)]
mod oom_group_tests {
    use super::up_to;

    #[test]
    fn the_group_walk_stops_at_the_limit() {
        assert_eq!(
            up_to("/kubepods/burstable/podX/c1", "/kubepods/burstable/podX"),
            ["/kubepods/burstable/podX/c1", "/kubepods/burstable/podX"]
        );
        assert_eq!(up_to("/a/b", "/"), ["/a/b", "/a"]);
        assert_eq!(up_to("/a/b", "/a/b"), ["/a/b"]);
        assert_eq!(up_to("/ab/c", "/a"), ["/a"], "not a prefix by name alone");
        assert!(up_to("/x", "/").len() == 1);
    }
}
