//! The wire contract between oomtrace's eBPF programs and its daemon.
//!
//! Every record that crosses the ring buffer starts with [`Header`]; its
//! `kind` names the payload type and `version` the layout revision. Kind ids
//! are grouped by hook family and never reused. Every type has a fixed size,
//! checked at compile time, so a layout change breaks the build instead of
//! the decoder. Every type derives `bytemuck::Pod`: no implicit padding
//! (every gap is a named `_pad`), any bit pattern valid, so decoding is safe
//! by type. No BPF map holds them (the maps hold `u64`s), so none is an
//! `aya::Pod` and this crate needs no aya.
//!
//! Unknown is null, also in the kernel: a field the kernel could not read is
//! left 0 and its bit in the record's `valid` mask (see [`valid`]) unset.
//! Read such fields through the accessors returning `Option`.
#![no_std]

use core::mem::size_of;

use bytemuck::{Pod, Zeroable};

/// Bumped whenever any wire layout below changes. 4: validity masks
/// (`TaskInfo::valid`/`memcg_valid`, `VictimEvent::valid`, `OomEvent::valid`,
/// `SignalEvent::valid`). 5: `AttachEvent` carries the moved task's pid
/// namespace and start times.
pub const WIRE_VERSION: u16 = 5;

/// Depth of the memory-cgroup ancestry carried per task (leaf first). A
/// kubelet node needs five levels (root, kubepods, QoS, pod, container).
pub const MEMCG_DEPTH: usize = 8;
pub const COMM_LEN: usize = 16;
/// A tracepoint field offset the running kernel's `format` lacks (older
/// `oom:mark_victim` records hold only the pid): the program leaves the
/// field unread and its validity bit unset.
pub const FIELD_ABSENT: u32 = u32::MAX;
pub const PATH_LEN: usize = 256;
/// The bytes of a limit write's text kept (`"max"`, `"134217728"`, `"128M"`).
pub const LIMIT_TEXT_LEN: usize = 32;

/// Validity bits: the kernel sets a bit only when the read behind the field
/// succeeded. Each record type has its own mask field and bit set.
pub mod valid {
    use super::MEMCG_DEPTH;

    // `TaskInfo::valid`.
    /// `tgid` and `tid`.
    pub const TASK_PID: u32 = 1 << 0;
    pub const TASK_COMM: u32 = 1 << 1;
    pub const TASK_NS_PID: u32 = 1 << 2;
    pub const TASK_PID_NS: u32 = 1 << 3;
    pub const TASK_MNT_NS: u32 = 1 << 4;
    /// The memcg ancestry walk ran to the root (or to `MEMCG_DEPTH` levels):
    /// `memcg_depth` is the whole chain, not a chain cut by a failed read.
    pub const TASK_MEMCG_CHAIN: u32 = 1 << 5;
    pub const TASK_ALL: u32 = (1 << 6) - 1;

    // `TaskInfo::memcg_valid`: two bits per ancestry level.
    /// `memcg[level].id` was read.
    pub const fn memcg_id(level: usize) -> u32 {
        1 << level
    }
    /// `memcg[level].usage_pages` and `max_pages` were read.
    pub const fn memcg_counters(level: usize) -> u32 {
        1 << (MEMCG_DEPTH + level)
    }
    /// Every id and counter bit of the first `depth` levels.
    pub const fn memcg_all(depth: usize) -> u32 {
        let ids = (1u32 << depth) - 1;
        ids | (ids << MEMCG_DEPTH)
    }

    // `VictimEvent::valid`.
    pub const VICTIM_TOTAL_VM: u32 = 1 << 0;
    pub const VICTIM_ANON_RSS: u32 = 1 << 1;
    pub const VICTIM_FILE_RSS: u32 = 1 << 2;
    pub const VICTIM_SHMEM_RSS: u32 = 1 << 3;
    pub const VICTIM_OOM_SCORE_ADJ: u32 = 1 << 4;
    pub const VICTIM_ALL: u32 = (1 << 5) - 1;

    // `OomEvent::valid`.
    /// `oc->memcg` was read: NULL (a global OOM, see `OOM_GLOBAL`) or a memcg.
    pub const OOM_MEMCG: u32 = 1 << 0;
    /// `memcg.id` of a memcg OOM.
    pub const OOM_MEMCG_ID: u32 = 1 << 1;
    /// `memcg.usage_pages` and `memcg.max_pages` of a memcg OOM.
    pub const OOM_MEMCG_COUNTERS: u32 = 1 << 2;
    // Bits 3, 5 and 6 were `totalpages`, `chosen` and `order`, read but
    // never used: retired with their reads, never to be reused.
    /// `OomEvent::constraint` was read.
    pub const OOM_CONSTRAINT: u32 = 1 << 4;
    /// With `OOM_MEMCG`: `oc->memcg` was NULL, a global OOM (`memcg` all 0).
    pub const OOM_GLOBAL: u32 = 1 << 7;

    // `SignalEvent::valid`.
    pub const SIGNAL_CODE: u32 = 1 << 0;
    pub const SIGNAL_RESULT: u32 = 1 << 1;
    pub const SIGNAL_SENDER_COMM: u32 = 1 << 2;
    pub const SIGNAL_ALL: u32 = (1 << 3) - 1;

    // `LimitWriteEvent::valid`.
    /// `memcg_id`: the written cgroup's kernfs id.
    pub const LIMIT_MEMCG_ID: u32 = 1 << 0;
    /// `old_max_pages`: the limit before the write.
    pub const LIMIT_OLD_MAX: u32 = 1 << 1;
    /// `text`: what was written.
    pub const LIMIT_TEXT: u32 = 1 << 2;
    pub const LIMIT_ALL: u32 = (1 << 3) - 1;

    // `AttachEvent::valid`.
    /// `pid_ns`, `start_ns`, `ppid` and `parent_start_ns`, all read in the
    /// kernel at the move (the tp_btf form; the classic tracepoint's record
    /// has no task). With it the daemon needs nothing from /proc for the
    /// move, so the record is submitted without a wake-up.
    pub const ATTACH_TASK: u32 = 1 << 0;
}

#[inline(always)]
fn bit<T>(mask: u32, bit: u32, v: T) -> Option<T> {
    if mask & bit != 0 {
        Some(v)
    } else {
        None
    }
}

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
    /// A write of a memory cgroup's limit (`memory.max`).
    LimitWrite = 40,
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
            40 => Self::LimitWrite,
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
    Limit = 5,
}

pub const HOOK_COUNT: u32 = 6;

impl Hook {
    pub const ALL: [Hook; HOOK_COUNT as usize] = [
        Hook::Oom,
        Hook::Victim,
        Hook::Cgroup,
        Hook::Signal,
        Hook::Pressure,
        Hook::Limit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Hook::Oom => "oom",
            Hook::Victim => "victim",
            Hook::Cgroup => "cgroup",
            Hook::Signal => "signal",
            Hook::Pressure => "pressure",
            Hook::Limit => "limit",
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Header {
    pub version: u16,
    pub kind: u16,
    pub cpu: u32,
    /// `bpf_ktime_get_boot_ns`: CLOCK_BOOTTIME, so suspend does not skew it.
    pub boot_ns: u64,
}

/// One memory cgroup and its page counter, read in the kernel at event time.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
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
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct TaskInfo {
    pub tgid: u32,
    pub tid: u32,
    pub comm: [u8; COMM_LEN],
    /// Number of entries walked in `memcg`; 0 when the hook could not read it
    /// (`valid::TASK_MEMCG_CHAIN` tells a whole chain from a cut one).
    pub memcg_depth: u32,
    /// The task's pid in its own pid namespace: 1 for a container's init.
    pub ns_pid: u32,
    /// Inode numbers of its pid and mount namespaces (as in /proc/PID/ns/*):
    /// how a process outside its pod's cgroup is still tied to the pod.
    pub pid_ns: u32,
    pub mnt_ns: u32,
    /// `valid::TASK_*` bits.
    pub valid: u32,
    /// `valid::memcg_id(level)` / `valid::memcg_counters(level)` bits.
    pub memcg_valid: u32,
    pub memcg: [MemcgLevel; MEMCG_DEPTH],
}

/// One level of a memcg ancestry with its unread parts as `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemcgRead {
    pub id: Option<u64>,
    pub usage_pages: Option<u64>,
    pub max_pages: Option<u64>,
}

impl TaskInfo {
    pub fn tgid(&self) -> Option<u32> {
        bit(self.valid, valid::TASK_PID, self.tgid)
    }
    pub fn tid(&self) -> Option<u32> {
        bit(self.valid, valid::TASK_PID, self.tid)
    }
    /// The raw `comm` bytes (decode with `oomtrace_core::kernel::event::comm`).
    pub fn comm(&self) -> Option<&[u8; COMM_LEN]> {
        bit(self.valid, valid::TASK_COMM, &self.comm)
    }
    pub fn ns_pid(&self) -> Option<u32> {
        bit(self.valid, valid::TASK_NS_PID, self.ns_pid)
    }
    pub fn pid_ns(&self) -> Option<u32> {
        bit(self.valid, valid::TASK_PID_NS, self.pid_ns)
    }
    pub fn mnt_ns(&self) -> Option<u32> {
        bit(self.valid, valid::TASK_MNT_NS, self.mnt_ns)
    }
    /// Levels walked, bounded by `MEMCG_DEPTH`.
    pub fn memcg_depth(&self) -> usize {
        (self.memcg_depth as usize).min(MEMCG_DEPTH)
    }
    /// Whether the ancestry walk reached the root (see `valid::TASK_MEMCG_CHAIN`).
    pub fn memcg_chain_complete(&self) -> bool {
        self.valid & valid::TASK_MEMCG_CHAIN != 0
    }
    /// Level `level` of the ancestry (0: the task's own memcg); `None`
    /// beyond the levels walked.
    pub fn memcg(&self, level: usize) -> Option<MemcgRead> {
        if level >= self.memcg_depth() {
            return None;
        }
        let l = &self.memcg[level];
        let counters = self.memcg_valid & valid::memcg_counters(level) != 0;
        Some(MemcgRead {
            id: bit(self.memcg_valid, valid::memcg_id(level), l.id),
            usage_pages: counters.then_some(l.usage_pages),
            max_pages: counters.then_some(l.max_pages),
        })
    }
    /// The walked ancestry, leaf first.
    pub fn memcg_chain(&self) -> impl Iterator<Item = MemcgRead> + Clone + '_ {
        (0..self.memcg_depth()).filter_map(move |i| self.memcg(i))
    }
    /// The id of the task's own memcg.
    pub fn leaf_memcg_id(&self) -> Option<u64> {
        self.memcg(0).and_then(|l| l.id)
    }
}

/// Per killed process. `trigger` is `current`: the task whose charge failed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
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
    /// `valid::VICTIM_*` bits.
    pub valid: u32,
    pub _pad2: u32,
}

impl VictimEvent {
    pub fn total_vm_pages(&self) -> Option<u64> {
        bit(self.valid, valid::VICTIM_TOTAL_VM, self.total_vm_pages)
    }
    pub fn anon_rss_pages(&self) -> Option<u64> {
        bit(self.valid, valid::VICTIM_ANON_RSS, self.anon_rss_pages)
    }
    pub fn file_rss_pages(&self) -> Option<u64> {
        bit(self.valid, valid::VICTIM_FILE_RSS, self.file_rss_pages)
    }
    pub fn shmem_rss_pages(&self) -> Option<u64> {
        bit(self.valid, valid::VICTIM_SHMEM_RSS, self.shmem_rss_pages)
    }
    /// anon + file + shmem; `None` unless all three were read.
    pub fn rss_pages(&self) -> Option<u64> {
        Some(
            self.anon_rss_pages()?
                .saturating_add(self.file_rss_pages()?)
                .saturating_add(self.shmem_rss_pages()?),
        )
    }
    pub fn oom_score_adj(&self) -> Option<i16> {
        bit(self.valid, valid::VICTIM_OOM_SCORE_ADJ, self.oom_score_adj)
    }
}

#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VictimSource {
    TpBtf = 1,
    RawTp = 2,
    Tracepoint = 3,
    /// fentry on `mark_oom_victim`, the function that emits `mark_victim`.
    Fentry = 4,
    /// kprobe on `mark_oom_victim`.
    Kprobe = 5,
}

/// Per OOM invocation, from `struct oom_control`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct OomEvent {
    pub header: Header,
    pub trigger: TaskInfo,
    /// The OOMing memcg (`oc->memcg`); id 0 for a global OOM.
    pub memcg: MemcgLevel,
    /// Was `oc->totalpages`, never used: kept so the layout stays; 0.
    pub _reserved: u64,
    /// `oc->constraint`, an `enum oom_constraint` value (mm/oom_kill.c:
    /// 0 none, 1 cpuset, 2 memory policy, 3 memcg; the daemon's BTF test
    /// checks that order against the running kernel).
    pub constraint: u32,
    /// Were `oc->chosen`'s tgid and `oc->order`, never used: kept so the
    /// layout stays; 0.
    pub _reserved2: [u32; 2],
    /// `valid::OOM_*` bits.
    pub valid: u32,
}

impl OomEvent {
    /// `Some(true)` for a global OOM (`oc->memcg` NULL), `Some(false)` for a
    /// memcg OOM, `None` when `oc->memcg` could not be read.
    pub fn global(&self) -> Option<bool> {
        let global = self.valid & valid::OOM_GLOBAL != 0;
        bit(self.valid, valid::OOM_MEMCG, global)
    }
    /// The OOMing memcg of a memcg OOM; `None` for a global or unread one.
    pub fn memcg(&self) -> Option<MemcgRead> {
        if self.global()? {
            return None;
        }
        let counters = self.valid & valid::OOM_MEMCG_COUNTERS != 0;
        Some(MemcgRead {
            id: bit(self.valid, valid::OOM_MEMCG_ID, self.memcg.id),
            usage_pages: counters.then_some(self.memcg.usage_pages),
            max_pages: counters.then_some(self.memcg.max_pages),
        })
    }
    /// The raw `enum oom_constraint` value (see the field).
    pub fn constraint(&self) -> Option<u32> {
        bit(self.valid, valid::OOM_CONSTRAINT, self.constraint)
    }
}

/// cgroup_mkdir / rmdir / release share one layout. Every field comes from
/// the tracepoint's own record, which is always readable: no validity mask.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
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

/// From the tracepoint's own record, like [`CgroupEvent`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct AttachEvent {
    pub header: Header,
    pub dst_root: u32,
    pub dst_level: u32,
    pub dst_id: u64,
    pub pid: u32,
    pub path_len: u32,
    /// The moved task's pid namespace (inode number), with
    /// [`valid::ATTACH_TASK`] like the three below.
    pub pid_ns: u32,
    /// Its real parent's tgid.
    pub ppid: u32,
    /// Its start (`start_boottime`, CLOCK_BOOTTIME ns).
    pub start_ns: u64,
    /// Its real parent's thread-group leader's start, as
    /// `/proc/<ppid>/stat` gives it.
    pub parent_start_ns: u64,
    pub valid: u32,
    pub _pad: u32,
    pub comm: [u8; COMM_LEN],
    pub path: [u8; PATH_LEN],
}

/// The moved task as the kernel saw it at the move (tp_btf form only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MovedTask {
    pub pid_ns: u32,
    pub ppid: u32,
    pub start_ns: u64,
    pub parent_start_ns: u64,
}

impl AttachEvent {
    pub fn moved_task(&self) -> Option<MovedTask> {
        bit(
            self.valid,
            valid::ATTACH_TASK,
            MovedTask {
                pid_ns: self.pid_ns,
                ppid: self.ppid,
                start_ns: self.start_ns,
                parent_start_ns: self.parent_start_ns,
            },
        )
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
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
    /// `valid::SIGNAL_*` bits.
    pub valid: u32,
    pub _pad: u32,
    /// The signalled task; with tp_btf its memcg ancestry and namespaces are
    /// read at the signal, before the process can vanish.
    pub target: TaskInfo,
}

impl SignalEvent {
    pub fn code(&self) -> Option<i32> {
        bit(self.valid, valid::SIGNAL_CODE, self.code)
    }
    pub fn result(&self) -> Option<i32> {
        bit(self.valid, valid::SIGNAL_RESULT, self.result)
    }
    pub fn sender_comm(&self) -> Option<&[u8; COMM_LEN]> {
        bit(self.valid, valid::SIGNAL_SENDER_COMM, &self.sender_comm)
    }
}

/// The task charging when its memcg entered reclaim, with the memcg's
/// ancestry and page counters at that moment.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct PressureEvent {
    pub header: Header,
    pub task: TaskInfo,
}

/// A write of a memory cgroup's limit, at its start: the cgroup, its limit
/// until then and the text written (parsed in userspace as the kernel
/// does, `page_counter_memparse`), so no second hook at its end is needed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct LimitWriteEvent {
    pub header: Header,
    /// kernfs id of the cgroup whose limit file was written.
    pub memcg_id: u64,
    /// `memory.max` before the write, pages (`PAGE_COUNTER_MAX`: none).
    pub old_max_pages: u64,
    /// Bytes of `text` before its NUL.
    pub text_len: u32,
    /// `valid::LIMIT_*` bits.
    pub valid: u32,
    pub text: [u8; LIMIT_TEXT_LEN],
}

impl LimitWriteEvent {
    pub fn memcg_id(&self) -> Option<u64> {
        bit(self.valid, valid::LIMIT_MEMCG_ID, self.memcg_id)
    }
    pub fn old_max_pages(&self) -> Option<u64> {
        bit(self.valid, valid::LIMIT_OLD_MAX, self.old_max_pages)
    }
    /// The bytes written, up to [`LIMIT_TEXT_LEN`] (a longer text is cut:
    /// the kernel would refuse it anyway, see the parser in the daemon).
    pub fn text(&self) -> Option<&[u8]> {
        let len = (self.text_len as usize).min(LIMIT_TEXT_LEN);
        bit(self.valid, valid::LIMIT_TEXT, &self.text[..len])
    }
}

const _: () = assert!(size_of::<Header>() == 16);
const _: () = assert!(size_of::<LimitWriteEvent>() == 16 + 24 + LIMIT_TEXT_LEN);
const _: () = assert!(size_of::<PressureEvent>() == 16 + 240);
const _: () = assert!(size_of::<MemcgLevel>() == 24);
const _: () = assert!(size_of::<TaskInfo>() == 48 + 24 * MEMCG_DEPTH);
const _: () = assert!(size_of::<VictimEvent>() == 16 + 2 * 240 + 32 + 16);
const _: () = assert!(size_of::<OomEvent>() == 16 + 240 + 24 + 8 + 16);
const _: () = assert!(size_of::<CgroupEvent>() == 16 + 24 + PATH_LEN);
const _: () = assert!(size_of::<AttachEvent>() == 16 + 24 + 32 + COMM_LEN + PATH_LEN);
const _: () = assert!(size_of::<SignalEvent>() == 16 + 24 + COMM_LEN + 8 + 240);
const _: () = assert!(valid::memcg_all(MEMCG_DEPTH) == u16::MAX as u32);

/// The eBPF programs by name: the symbol of each `#[program]` fn in
/// `oomtrace-ebpf` (aya-ebpf's macros take neither a constant for the name
/// nor for the attach point, so the kernel side spells them out; the
/// daemon's tests check every name and attach point of its probe table,
/// `oomtrace_core::kernel::hooks::PROBES`, against the built object).
pub mod programs {
    /// fentry on `oom_kill_process` (oom.rs).
    pub const OOM_FENTRY: &str = "oom_fentry";
    /// kprobe on `oom_kill_process` (oom.rs).
    pub const OOM_KPROBE: &str = "oom_kprobe";
    /// tp_btf `mark_victim` (victim.rs).
    pub const VICTIM_TP_BTF: &str = "victim_tp_btf";
    /// raw_tp `mark_victim` (victim.rs).
    pub const VICTIM_RAW_TP: &str = "victim_raw_tp";
    /// tracepoint `oom:mark_victim` (victim.rs).
    pub const VICTIM_TP: &str = "victim_tp";
    /// fentry on `mark_oom_victim` (victim.rs).
    pub const VICTIM_FENTRY: &str = "victim_fentry";
    /// kprobe on `mark_oom_victim` (victim.rs).
    pub const VICTIM_KPROBE: &str = "victim_kprobe";
    /// tracepoint `cgroup:cgroup_mkdir` (cgroup.rs).
    pub const CGROUP_MKDIR: &str = "cgroup_mkdir";
    /// tracepoint `cgroup:cgroup_rmdir` (cgroup.rs).
    pub const CGROUP_RMDIR: &str = "cgroup_rmdir";
    /// tracepoint `cgroup:cgroup_release` (cgroup.rs).
    pub const CGROUP_RELEASE: &str = "cgroup_release";
    /// tracepoint `cgroup:cgroup_attach_task` (cgroup.rs).
    pub const CGROUP_ATTACH: &str = "cgroup_attach";
    /// tp_btf `cgroup_mkdir` (cgroup.rs).
    pub const CGROUP_MKDIR_BTF: &str = "cg_mkdir_btf";
    /// tp_btf `cgroup_rmdir` (cgroup.rs).
    pub const CGROUP_RMDIR_BTF: &str = "cg_rmdir_btf";
    /// tp_btf `cgroup_release` (cgroup.rs).
    pub const CGROUP_RELEASE_BTF: &str = "cg_release_btf";
    /// tp_btf `cgroup_attach_task` (cgroup.rs).
    pub const CGROUP_ATTACH_BTF: &str = "cg_attach_btf";
    /// tp_btf `signal_generate` (signal.rs).
    pub const SIGNAL_TP_BTF: &str = "signal_tp_btf";
    /// tracepoint `signal:signal_generate` (signal.rs).
    pub const SIGNAL_TP: &str = "signal_generate";
    /// tracepoint `vmscan:mm_vmscan_memcg_reclaim_begin` (memcg.rs).
    pub const MEMCG_RECLAIM: &str = "memcg_reclaim";
    /// tp_btf `mm_vmscan_memcg_reclaim_begin` (memcg.rs).
    pub const MEMCG_RECLAIM_BTF: &str = "reclaim_tp_btf";
    /// tracepoint `memcg:mod_memcg_lruvec_state` (memcg.rs).
    pub const MEMCG_CHARGE: &str = "memcg_charge";

    // Writes of a memory cgroup's limit (limit.rs).
    /// fentry on `memory_max_write` (limit.rs).
    pub const LIMIT_FENTRY: &str = "limit_fentry";
    /// kprobe on `memory_max_write` (limit.rs).
    pub const LIMIT_KPROBE: &str = "limit_kprobe";
}
