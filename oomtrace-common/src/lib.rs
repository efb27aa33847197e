//! The wire contract between oomtrace's eBPF programs and its daemon.
//!
//! Every record that crosses the ring buffer starts with [`Header`]; its
//! `kind` names the payload type and `version` the layout revision. Kind ids
//! are grouped by hook family and never reused. Every type has a fixed size,
//! checked at compile time, so a layout change breaks the build instead of
//! the decoder.
#![no_std]

use core::mem::size_of;

/// Bumped whenever any wire layout below changes.
pub const WIRE_VERSION: u16 = 3;

/// Depth of the memory-cgroup ancestry carried per task (leaf first). A
/// kubelet node needs five levels (root, kubepods, QoS, pod, container).
pub const MEMCG_DEPTH: usize = 8;
pub const COMM_LEN: usize = 16;
pub const PATH_LEN: usize = 256;

/// Numeric event kinds. Grouped by family; never reuse a retired number.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Once per OOM invocation (fentry/kprobe on `oom_kill_process`).
    OomInvocation = 1,
    /// Once per killed process (`oom:mark_victim`).
    Victim = 2,
    CgroupMkdir = 10,
    CgroupRmdir = 11,
    CgroupRelease = 12,
    CgroupAttach = 13,
    Signal = 20,
    /// A memory cgroup entered reclaim (rate-limited per CPU).
    Pressure = 30,
}

impl Kind {
    pub fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            1 => Self::OomInvocation,
            2 => Self::Victim,
            10 => Self::CgroupMkdir,
            11 => Self::CgroupRmdir,
            12 => Self::CgroupRelease,
            13 => Self::CgroupAttach,
            20 => Self::Signal,
            30 => Self::Pressure,
            _ => return None,
        })
    }
}

/// Hooks whose ring-buffer reservation failures are counted, one slot each
/// in the `DROPS` per-CPU array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Oom = 0,
    Victim = 1,
    Cgroup = 2,
    Signal = 3,
    Pressure = 4,
}

pub const HOOK_COUNT: u32 = 5;

impl Hook {
    pub const ALL: [Hook; HOOK_COUNT as usize] = [
        Hook::Oom,
        Hook::Victim,
        Hook::Cgroup,
        Hook::Signal,
        Hook::Pressure,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Hook::Oom => "oom",
            Hook::Victim => "victim",
            Hook::Cgroup => "cgroup",
            Hook::Signal => "signal",
            Hook::Pressure => "pressure",
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Header {
    pub version: u16,
    pub kind: u16,
    pub cpu: u32,
    /// `bpf_ktime_get_boot_ns`: CLOCK_BOOTTIME, so suspend does not skew it.
    pub boot_ns: u64,
}

/// One memory cgroup and its page counter, read in the kernel at event time.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemcgLevel {
    /// kernfs node id: the inode number of the cgroup's directory.
    pub id: u64,
    /// `page_counter.usage`, pages.
    pub usage_pages: u64,
    /// `page_counter.max`, pages (`PAGE_COUNTER_MAX` when unlimited).
    pub max_pages: u64,
}

/// A task as the OOM hooks see it, with its memcg ancestry (leaf first).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TaskInfo {
    pub tgid: u32,
    pub tid: u32,
    pub comm: [u8; COMM_LEN],
    /// Number of valid entries in `memcg`; 0 when the hook could not read it.
    pub memcg_depth: u32,
    /// The task's pid in its own pid namespace: 1 for a container's init.
    /// 0 when unread.
    pub ns_pid: u32,
    /// Inode numbers of its pid and mount namespaces (as in /proc/PID/ns/*):
    /// how a process outside its pod's cgroup is still tied to the pod.
    pub pid_ns: u32,
    pub mnt_ns: u32,
    pub memcg: [MemcgLevel; MEMCG_DEPTH],
}

/// Per killed process. `trigger` is `current`: the task whose charge failed.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct VictimEvent {
    pub header: Header,
    pub victim: TaskInfo,
    pub trigger: TaskInfo,
    pub total_vm_pages: u64,
    pub anon_rss_pages: u64,
    pub file_rss_pages: u64,
    pub shmem_rss_pages: u64,
    pub oom_score_adj: i16,
    pub _pad: [u8; 2],
    /// Which program produced it (see [`VictimSource`]).
    pub source: u32,
}

#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VictimSource {
    TpBtf = 1,
    RawTp = 2,
    Tracepoint = 3,
}

/// Per OOM invocation, from `struct oom_control`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OomEvent {
    pub header: Header,
    pub trigger: TaskInfo,
    /// The OOMing memcg (`oc->memcg`); id 0 for a global OOM.
    pub memcg: MemcgLevel,
    pub totalpages: u64,
    /// `enum oom_constraint` value; userspace maps it by name through BTF.
    pub constraint: u32,
    pub chosen_tgid: u32,
    pub order: i32,
    pub _pad: u32,
}

/// cgroup_mkdir / rmdir / release share one layout.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CgroupEvent {
    pub header: Header,
    /// Hierarchy id (v1), 0 for cgroup v2.
    pub root: u32,
    pub level: u32,
    pub id: u64,
    pub path_len: u32,
    pub _pad: u32,
    pub path: [u8; PATH_LEN],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AttachEvent {
    pub header: Header,
    pub dst_root: u32,
    pub dst_level: u32,
    pub dst_id: u64,
    pub pid: u32,
    pub path_len: u32,
    pub comm: [u8; COMM_LEN],
    pub path: [u8; PATH_LEN],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SignalEvent {
    pub header: Header,
    pub sig: u32,
    /// `si_code`: SI_USER/SI_TKILL/SI_QUEUE from userspace, SI_KERNEL from the kernel.
    pub code: i32,
    /// The tracepoint's `result` (0: delivered).
    pub result: i32,
    /// Which program produced it (see [`VictimSource`]).
    pub source: u32,
    pub sender_tgid: u32,
    pub sender_tid: u32,
    pub sender_comm: [u8; COMM_LEN],
    /// The signalled task; with tp_btf its memcg ancestry and namespaces are
    /// read at the signal, before the process can vanish.
    pub target: TaskInfo,
}

/// The task charging when its memcg entered reclaim, with the memcg's
/// ancestry and page counters at that moment.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PressureEvent {
    pub header: Header,
    pub task: TaskInfo,
}

const _: () = assert!(size_of::<Header>() == 16);
const _: () = assert!(size_of::<PressureEvent>() == 16 + 232);
const _: () = assert!(size_of::<MemcgLevel>() == 24);
const _: () = assert!(size_of::<TaskInfo>() == 40 + 24 * MEMCG_DEPTH);
const _: () = assert!(size_of::<VictimEvent>() == 16 + 2 * 232 + 32 + 8);
const _: () = assert!(size_of::<OomEvent>() == 16 + 232 + 24 + 8 + 16);
const _: () = assert!(size_of::<CgroupEvent>() == 16 + 24 + PATH_LEN);
const _: () = assert!(size_of::<AttachEvent>() == 16 + 24 + COMM_LEN + PATH_LEN);
const _: () = assert!(size_of::<SignalEvent>() == 16 + 24 + COMM_LEN + 232);

// Safety: all fields are integers or arrays of integers, repr(C), no padding
// left implicit (every gap is a named `_pad`).
#[cfg(feature = "user")]
mod pod {
    use super::*;
    unsafe impl aya::Pod for Header {}
    unsafe impl aya::Pod for MemcgLevel {}
}
