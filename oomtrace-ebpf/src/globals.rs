//! Load-time constants. Userspace overwrites each with an offset resolved
//! from the running kernel's BTF or a tracefs `format` file
//! (`EbpfLoader::set_global`); the names are part of the loader's contract.
//! Read them through [`get`]: a plain read would let the compiler fold the
//! zero initializer into the code.

#[inline(always)]
pub fn get(v: &'static u32) -> usize {
    unsafe { core::ptr::read_volatile(v) as usize }
}

/// Non-zero once userspace resolved every BTF offset below.
#[no_mangle]
pub static BTF_READY: u32 = 0;
// Struct member offsets (BTF).
#[no_mangle]
pub static TASK_TGID: u32 = 0;
#[no_mangle]
pub static TASK_PID: u32 = 0;
#[no_mangle]
pub static TASK_COMM: u32 = 0;
#[no_mangle]
pub static TASK_CGROUPS: u32 = 0;
#[no_mangle]
pub static TASK_SIGNAL: u32 = 0;
#[no_mangle]
pub static TASK_MM: u32 = 0;
#[no_mangle]
pub static TASK_THREAD_PID: u32 = 0;
#[no_mangle]
pub static TASK_NSPROXY: u32 = 0;
#[no_mangle]
pub static TASK_REAL_PARENT: u32 = 0;
#[no_mangle]
pub static TASK_START_BOOTTIME: u32 = 0;
#[no_mangle]
pub static TASK_GROUP_LEADER: u32 = 0;
#[no_mangle]
pub static PID_LEVEL: u32 = 0;
#[no_mangle]
pub static PID_NUMBERS: u32 = 0;
#[no_mangle]
pub static UPID_SIZE: u32 = 0;
#[no_mangle]
pub static UPID_NR: u32 = 0;
#[no_mangle]
pub static UPID_NS: u32 = 0;
#[no_mangle]
pub static PIDNS_INUM: u32 = 0;
#[no_mangle]
pub static NSPROXY_MNT_NS: u32 = 0;
#[no_mangle]
pub static MNTNS_INUM: u32 = 0;
#[no_mangle]
pub static SIGNAL_OOM_SCORE_ADJ: u32 = 0;
#[no_mangle]
pub static SIGNAL_OOM_MM: u32 = 0;
#[no_mangle]
pub static MM_TOTAL_VM: u32 = 0;
#[no_mangle]
pub static MM_RSS_BASE: u32 = 0;
#[no_mangle]
pub static MM_RSS_STRIDE: u32 = 0;
#[no_mangle]
pub static MM_RSS_INNER: u32 = 0;
#[no_mangle]
pub static RSS_FILE_IDX: u32 = 0;
#[no_mangle]
pub static RSS_ANON_IDX: u32 = 0;
#[no_mangle]
pub static RSS_SHMEM_IDX: u32 = 0;
#[no_mangle]
pub static CSS_SET_SUBSYS: u32 = 0;
#[no_mangle]
pub static MEMORY_CGRP_ID: u32 = 0;
#[no_mangle]
pub static CSS_CGROUP: u32 = 0;
#[no_mangle]
pub static CSS_PARENT: u32 = 0;
#[no_mangle]
pub static CGROUP_KN: u32 = 0;
#[no_mangle]
pub static KN_ID: u32 = 0;
#[no_mangle]
pub static CGROUP_LEVEL: u32 = 0;
#[no_mangle]
pub static CGROUP_ROOT: u32 = 0;
#[no_mangle]
pub static ROOT_HIERARCHY_ID: u32 = 0;
#[no_mangle]
pub static MEMCG_CSS: u32 = 0;
#[no_mangle]
pub static MEMCG_MEMORY: u32 = 0;
#[no_mangle]
pub static PC_USAGE: u32 = 0;
#[no_mangle]
pub static PC_MAX: u32 = 0;

// struct oom_control.
#[no_mangle]
pub static OC_MEMCG: u32 = 0;
#[no_mangle]
pub static OC_CONSTRAINT: u32 = 0;

// Tracepoint field offsets (tracefs `format`); `FIELD_ABSENT` for a field
// the running kernel's record does not have.
#[no_mangle]
pub static TP_MV_PID: u32 = 0;
#[no_mangle]
pub static TP_MV_COMM: u32 = 0;
#[no_mangle]
pub static TP_MV_COMM_IS_LOC: u32 = 0;
#[no_mangle]
pub static TP_MV_TOTAL_VM: u32 = 0;
#[no_mangle]
pub static TP_MV_ANON_RSS: u32 = 0;
#[no_mangle]
pub static TP_MV_FILE_RSS: u32 = 0;
#[no_mangle]
pub static TP_MV_SHMEM_RSS: u32 = 0;
#[no_mangle]
pub static TP_MV_OOM_SCORE_ADJ: u32 = 0;
#[no_mangle]
pub static TP_CG_ROOT: u32 = 0;
#[no_mangle]
pub static TP_CG_ID: u32 = 0;
#[no_mangle]
pub static TP_CG_LEVEL: u32 = 0;
#[no_mangle]
pub static TP_CG_PATH: u32 = 0;
#[no_mangle]
pub static TP_AT_DST_ROOT: u32 = 0;
#[no_mangle]
pub static TP_AT_DST_ID: u32 = 0;
#[no_mangle]
pub static TP_AT_DST_LEVEL: u32 = 0;
#[no_mangle]
pub static TP_AT_PID: u32 = 0;
#[no_mangle]
pub static TP_AT_DST_PATH: u32 = 0;
#[no_mangle]
pub static TP_AT_COMM: u32 = 0;
#[no_mangle]
pub static TP_SG_SIG: u32 = 0;
#[no_mangle]
pub static TP_SG_CODE: u32 = 0;
#[no_mangle]
pub static TP_SG_COMM: u32 = 0;
#[no_mangle]
pub static TP_SG_PID: u32 = 0;
#[no_mangle]
pub static TP_SG_RESULT: u32 = 0;

// memcg:mod_memcg_lruvec_state fields and the node_stat_item values summed.
#[no_mangle]
pub static TP_MS_ID: u32 = 0;
#[no_mangle]
pub static TP_MS_ITEM: u32 = 0;
#[no_mangle]
pub static TP_MS_VAL: u32 = 0;
#[no_mangle]
pub static ITEM_ANON: u32 = u32::MAX;
#[no_mangle]
pub static ITEM_FILE: u32 = u32::MAX;
#[no_mangle]
pub static ITEM_SHMEM: u32 = u32::MAX;

/// The memory controller's hierarchy id (v2: 0), whose moves the attach
/// programs keep; `u32::MAX` (not told) keeps every hierarchy's.
#[no_mangle]
pub static MEMORY_HIERARCHY: u32 = u32::MAX;

/// Bytes waiting in the ring buffer from which a move's record (which
/// carries all the daemon needs of the move) wakes the daemon after all;
/// below it the record waits for the next wake-up or the daemon's tick.
/// 0 (not told: the start times' offsets are unknown): every move wakes it.
#[no_mangle]
pub static LAZY_WAKE_BYTES: u32 = 0;

/// `kernel_siginfo.si_code`.
#[no_mangle]
pub static KSI_CODE: u32 = 0;

// A write of a memory cgroup's limit (limit.rs): its own BTF offsets, so a
// kernel that renamed one of them loses only that family.
/// `kernfs_open_file.kn`: the limit file's node.
#[no_mangle]
pub static OF_KN: u32 = 0;
/// `kernfs_node.parent` (`__parent` since 6.15): the cgroup's directory.
#[no_mangle]
pub static KN_PARENT: u32 = 0;
/// `kernfs_node.priv`: a cgroup directory's `struct cgroup`.
#[no_mangle]
pub static KN_PRIV: u32 = 0;
/// `cgroup.subsys`: its css per controller.
#[no_mangle]
pub static CGROUP_SUBSYS: u32 = 0;
