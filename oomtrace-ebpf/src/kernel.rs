//! Helpers shared by the hook families: load-time globals, guarded kernel
//! reads, record headers and drop counting, and the rare-path diagnostics.
//!
//! Unknown is null: a field whose read failed stays 0 with its validity bit
//! (`oomtrace_common::valid`) unset, and the program says which field at
//! debug level through aya-log (`log_task` and friends), only on that
//! failure path.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_probe_read_kernel,
        generated::{bpf_get_smp_processor_id, bpf_ktime_get_boot_ns},
    },
    EbpfContext,
};
use aya_log_ebpf::debug;
use oomtrace_common::{
    valid, Header, Hook, Kind, MemcgLevel, TaskInfo, COMM_LEN, MEMCG_DEPTH, WIRE_VERSION,
};

use crate::{
    globals::{self as g, get},
    DROPS, EVENTS,
};

/// The submit flags of a record the daemon waits for. Forced: the ring
/// buffer's own (adaptive) wake-up fires only when the daemon has read
/// every record before this one, and a move's record may wait unread
/// before it ([`lazy_wakeup`]).
pub const WAKE: u64 = BPF_RB_FORCE_WAKEUP as u64;

/// The submit flags of a move's record that carries all the daemon needs
/// of the move: no wake-up (a wake-up is an interrupt and a context switch
/// on the CPU that moved the process, most of a move's cost: cargo xtask
/// bench, overhead) unless the ring is filling up. The daemon reads such
/// records at its next wake-up, whose records they precede, or at its tick.
#[inline(always)]
pub fn lazy_wakeup() -> u64 {
    let waiting = EVENTS.query(BPF_RB_AVAIL_DATA as u64);
    if waiting >= get(&g::LAZY_WAKE_BYTES) as u64 {
        WAKE
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

#[inline(always)]
pub fn count_drop(hook: Hook) {
    if let Some(slot) = DROPS.get_ptr_mut(hook as u32) {
        unsafe { *slot += 1 };
    }
}

#[inline(always)]
pub fn header(kind: Kind) -> Header {
    Header {
        version: WIRE_VERSION,
        kind: kind as u16,
        cpu: unsafe { bpf_get_smp_processor_id() },
        boot_ns: unsafe { bpf_ktime_get_boot_ns() },
    }
}

/// Reads a `T` at `base + off`; a null base is an error rather than a fault
/// the verifier would refuse to reason about.
#[inline(always)]
pub fn read<T>(base: *const u8, off: usize) -> Result<T, i64> {
    if base.is_null() {
        return Err(-1);
    }
    unsafe { bpf_probe_read_kernel(base.wrapping_add(off) as *const T) }.map_err(|e| e as i64)
}

/// The one way a `TaskInfo` starts: every field 0, every validity bit unset
/// (ring-buffer memory comes uninitialised).
#[inline(always)]
pub unsafe fn reset_task(out: *mut TaskInfo) {
    (*out).tgid = 0;
    (*out).tid = 0;
    (*out).comm = [0; COMM_LEN];
    (*out).memcg_depth = 0;
    (*out).ns_pid = 0;
    (*out).pid_ns = 0;
    (*out).mnt_ns = 0;
    (*out).valid = 0;
    (*out).memcg_valid = 0;
    let mut i = 0;
    while i < MEMCG_DEPTH {
        (*out).memcg[i] = MemcgLevel::default();
        i += 1;
    }
}

/// The `TaskInfo` bits a hook that has the task's `task_struct` should
/// get: all of them with BTF offsets, pid and comm only without.
#[inline(always)]
pub fn task_expect() -> u32 {
    if get(&g::BTF_READY) == 0 {
        valid::TASK_PID | valid::TASK_COMM
    } else {
        valid::TASK_ALL
    }
}

/// Fills `out` for the calling task (helpers only, no BTF needed) and, when
/// BTF offsets are present, its namespaces and memcg ancestry.
#[inline(always)]
pub unsafe fn current_task_info(out: *mut TaskInfo) {
    reset_task(out);
    let id = bpf_get_current_pid_tgid();
    (*out).tgid = (id >> 32) as u32;
    (*out).tid = id as u32;
    (*out).valid = valid::TASK_PID;
    if let Ok(comm) = bpf_get_current_comm() {
        (*out).comm = comm;
        (*out).valid |= valid::TASK_COMM;
    }
    let task = aya_ebpf::helpers::generated::bpf_get_current_task() as *const u8;
    fill_namespaces(task, out);
    fill_memcg(task, out);
}

/// Fills `out` for an arbitrary task through BTF offsets.
#[inline(always)]
pub unsafe fn task_info(task: *const u8, out: *mut TaskInfo) {
    reset_task(out);
    if get(&g::BTF_READY) == 0 {
        return;
    }
    if let (Ok(tgid), Ok(tid)) = (
        read::<u32>(task, get(&g::TASK_TGID)),
        read::<u32>(task, get(&g::TASK_PID)),
    ) {
        (*out).tgid = tgid;
        (*out).tid = tid;
        (*out).valid |= valid::TASK_PID;
    }
    if let Ok(comm) = read::<[u8; COMM_LEN]>(task, get(&g::TASK_COMM)) {
        (*out).comm = comm;
        (*out).valid |= valid::TASK_COMM;
    }
    fill_namespaces(task, out);
    fill_memcg(task, out);
}

/// The task's pid as its own pid namespace sees it, and its pid and mount
/// namespace ids: `thread_pid->numbers[thread_pid->level]` and
/// `nsproxy->mnt_ns->ns.inum`. Expects `out` reset.
#[inline(always)]
unsafe fn fill_namespaces(task: *const u8, out: *mut TaskInfo) {
    if get(&g::BTF_READY) == 0 || task.is_null() {
        return;
    }
    if let Some((pid, upid)) = active_upid(task) {
        if let Ok(nr) = read::<u32>(pid, upid + get(&g::UPID_NR)) {
            (*out).ns_pid = nr;
            (*out).valid |= valid::TASK_NS_PID;
        }
        if let Ok(inum) = pid_ns_inum(pid, upid) {
            (*out).pid_ns = inum;
            (*out).valid |= valid::TASK_PID_NS;
        }
    }
    if let Ok(inum) = read::<*const u8>(task, get(&g::TASK_NSPROXY))
        .and_then(|nsproxy| read::<*const u8>(nsproxy, get(&g::NSPROXY_MNT_NS)))
        .and_then(|mnt_ns| read::<u32>(mnt_ns, get(&g::MNTNS_INUM)))
    {
        (*out).mnt_ns = inum;
        (*out).valid |= valid::TASK_MNT_NS;
    }
}

/// The task's `struct pid` and the offset in it of its `upid` in its own
/// (innermost) pid namespace: `thread_pid->numbers[thread_pid->level]`.
#[inline(always)]
pub fn active_upid(task: *const u8) -> Option<(*const u8, usize)> {
    let pid = read::<*const u8>(task, get(&g::TASK_THREAD_PID)).ok()?;
    let level = read::<u32>(pid, get(&g::PID_LEVEL)).ok()? as usize;
    // Bounded for the verifier; pid namespaces nest at most 32 deep.
    if level >= 32 {
        return None;
    }
    Some((pid, get(&g::PID_NUMBERS) + level * get(&g::UPID_SIZE)))
}

/// The inode number of the pid namespace of `upid` (at that offset in `pid`).
#[inline(always)]
pub fn pid_ns_inum(pid: *const u8, upid: usize) -> Result<u32, i64> {
    read::<*const u8>(pid, upid + get(&g::UPID_NS))
        .and_then(|ns| read::<u32>(ns, get(&g::PIDNS_INUM)))
}

/// The task's memory cgroup and its ancestors, leaf first, each with its
/// page counter: userspace finds the cgroup whose limit was hit from these
/// numbers, read at kill time, even when no per-OOM hook loads. Expects
/// `out` reset.
#[inline(always)]
unsafe fn fill_memcg(task: *const u8, out: *mut TaskInfo) {
    if get(&g::BTF_READY) == 0 || task.is_null() {
        return;
    }
    let Ok(cgroups) = read::<*const u8>(task, get(&g::TASK_CGROUPS)) else {
        return;
    };
    let Ok(mut css) = read::<*const u8>(
        cgroups,
        get(&g::CSS_SET_SUBSYS) + 8 * get(&g::MEMORY_CGRP_ID),
    ) else {
        return;
    };
    let mut depth = 0;
    let mut cut = false;
    while depth < MEMCG_DEPTH {
        if css.is_null() {
            break;
        }
        if let Ok(id) = read::<*const u8>(css, get(&g::CSS_CGROUP))
            .and_then(|cgrp| read::<*const u8>(cgrp, get(&g::CGROUP_KN)))
            .and_then(|kn| read::<u64>(kn, get(&g::KN_ID)))
        {
            (*out).memcg[depth].id = id;
            (*out).memcg_valid |= valid::memcg_id(depth);
        }
        let memcg = css.wrapping_sub(get(&g::MEMCG_CSS));
        let counter = get(&g::MEMCG_MEMORY);
        if let (Ok(usage), Ok(max)) = (
            read::<u64>(memcg, counter + get(&g::PC_USAGE)),
            read::<u64>(memcg, counter + get(&g::PC_MAX)),
        ) {
            (*out).memcg[depth].usage_pages = usage;
            (*out).memcg[depth].max_pages = max;
            (*out).memcg_valid |= valid::memcg_counters(depth);
        }
        depth += 1;
        match read::<*const u8>(css, get(&g::CSS_PARENT)) {
            Ok(parent) => css = parent,
            Err(_) => {
                cut = depth < MEMCG_DEPTH;
                break;
            }
        }
    }
    (*out).memcg_depth = depth as u32;
    if !cut {
        (*out).valid |= valid::TASK_MEMCG_CHAIN;
    }
}

/// What a filled `TaskInfo` lacks of what was expected of it, for
/// [`log_task`]: (tgid, missing `valid` bits, missing `memcg_valid` bits,
/// levels walked).
#[derive(Clone, Copy)]
pub struct TaskMissing {
    pub tgid: u32,
    pub fields: u32,
    pub memcg: u32,
    pub depth: u32,
}

#[inline(always)]
pub fn task_missing(t: &TaskInfo, expect: u32) -> TaskMissing {
    let depth = if (t.memcg_depth as usize) < MEMCG_DEPTH {
        t.memcg_depth as usize
    } else {
        MEMCG_DEPTH
    };
    let memcg = if expect & valid::TASK_MEMCG_CHAIN != 0 {
        valid::memcg_all(depth) & !t.memcg_valid
    } else {
        0
    };
    TaskMissing {
        tgid: t.tgid,
        fields: expect & !t.valid,
        memcg,
        depth: depth as u32,
    }
}

/// 1 when `bit` is in `mask`: a log argument naming a failed read.
#[inline(always)]
pub fn flag(mask: u32, bit: u32) -> u8 {
    (mask & bit != 0) as u8
}

/// Rare-path diagnostics: one debug line naming the fields of a task that
/// could not be read (1: failed). Call it after submitting the record; it
/// logs nothing when every expected read succeeded (the normal path). One
/// line per record, not one per field: each log call multiplies the paths
/// the verifier walks once debug logging is on (the victim, signal and oom
/// programs log their whole record in one line of their own).
#[inline(always)]
pub fn log_task<C: EbpfContext>(ctx: &C, who: &str, m: TaskMissing) {
    if m.fields == 0 && m.memcg == 0 {
        return;
    }
    let f = m.fields;
    debug!(
        ctx,
        "{} pid {}: kernel reads failed (1): pid {} comm {} ns_pid {} pid_ns {} mnt_ns {} memcg_chain {} (after {} levels); memcg levels without id {:x}, without page counters {:x}",
        who,
        m.tgid,
        flag(f, valid::TASK_PID),
        flag(f, valid::TASK_COMM),
        flag(f, valid::TASK_NS_PID),
        flag(f, valid::TASK_PID_NS),
        flag(f, valid::TASK_MNT_NS),
        flag(f, valid::TASK_MEMCG_CHAIN),
        m.depth,
        m.memcg & 0xff,
        m.memcg >> MEMCG_DEPTH
    );
}

/// Copies a NUL-terminated kernel string into `dst`, returning the length
/// without the NUL (0 on failure).
#[inline(always)]
pub unsafe fn read_str(src: *const u8, dst: *mut u8, cap: usize) -> u32 {
    try_read_str(src, dst, cap).unwrap_or(0)
}

/// [`read_str`] telling a failed read (`Err`, `dst` then holds "") from an
/// empty string.
#[inline(always)]
pub unsafe fn try_read_str(src: *const u8, dst: *mut u8, cap: usize) -> Result<u32, i64> {
    let n = aya_ebpf::helpers::generated::bpf_probe_read_kernel_str(
        dst as *mut core::ffi::c_void,
        cap as u32,
        src as *const core::ffi::c_void,
    );
    if n > 0 {
        Ok((n - 1) as u32)
    } else {
        *dst = 0;
        Err(n)
    }
}

/// The address a tracepoint `__data_loc` field points to: the low 16 bits
/// of the u32 are the offset from the record start.
#[inline(always)]
pub unsafe fn data_loc(ctx: *const u8, field_off: usize) -> Result<*const u8, i64> {
    let loc = read::<u32>(ctx, field_off)?;
    Ok(ctx.wrapping_add((loc & 0xffff) as usize))
}
