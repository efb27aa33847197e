//! cgroup lifecycle tracepoints, for v1 hierarchies (`root` = hierarchy id)
//! and v2 (`root` = 0). They keep the daemon's cgroup-id → path table
//! current, including paths of cgroups removed moments after a kill.
//! Best as tp_btf (the `struct cgroup *` and the path the kernel formatted
//! for the event; no perf event, which Linux 6.1 opens for a classic
//! tracepoint's raw data only with CAP_SYS_ADMIN), else the classic
//! tracepoints' records.
//!
//! `cgroup_attach_task` fires for every process move in every hierarchy
//! (on v1, a runtime or systemd moving one process fires it once per
//! controller), and a record costs the mover the ring buffer's wake-up of
//! the daemon. So the attach programs return before reserving anything for
//! the moves userspace would ignore: those of other hierarchies than the
//! memory one (both forms), and — with `ATTACH_MOVES` set, which userspace
//! does only when no hook needs a host process's last move as its cgroup —
//! moves of host processes that concern no pod (tp_btf form: the task is at
//! hand to tell).

use aya_ebpf::{
    macros::{btf_tracepoint, map, tracepoint},
    maps::{Array, LruHashMap},
    programs::{BtfTracePointContext, TracePointContext},
    EbpfContext,
};
use oomtrace_common::{valid, AttachEvent, CgroupEvent, Hook, Kind, COMM_LEN, PATH_LEN};

use crate::{
    globals::{self as g, get},
    kernel::{
        active_upid, count_drop, data_loc, header, lazy_wakeup, pid_ns_inum, read, read_str,
        try_read_str, WAKE,
    },
    EVENTS,
};

/// Slot 0: 1 when only the moves that concern a pod are wanted (see the
/// module's comment); 0, the default, keeps every move of the memory
/// hierarchy.
#[map]
static ATTACH_MOVES: Array<u32> = Array::with_max_entries(1, 0);

/// Host-pid-namespace processes seen joining a pod's cgroup (a hostPID
/// pod's): their later move out is an escape userspace must see, which the
/// path and the pid namespace would not tell.
#[map]
static POD_HOST_PIDS: LruHashMap<u32, u8> = LruHashMap::with_max_entries(16384, 0);

/// "kubepods", the word every pod cgroup's path holds (cgroupfs and systemd
/// drivers, a `<prefix>-kubepods.slice`, runc's flat systemd names).
const KUBEPODS: u64 = u64::from_le_bytes(*b"kubepods");

#[tracepoint(category = "cgroup", name = "cgroup_mkdir")]
pub fn cgroup_mkdir(ctx: TracePointContext) -> u32 {
    emit(ctx.as_ptr() as *const u8, Kind::CgroupMkdir);
    0
}

#[tracepoint(category = "cgroup", name = "cgroup_rmdir")]
pub fn cgroup_rmdir(ctx: TracePointContext) -> u32 {
    emit(ctx.as_ptr() as *const u8, Kind::CgroupRmdir);
    0
}

#[tracepoint(category = "cgroup", name = "cgroup_release")]
pub fn cgroup_release(ctx: TracePointContext) -> u32 {
    emit(ctx.as_ptr() as *const u8, Kind::CgroupRelease);
    0
}

#[tracepoint(category = "cgroup", name = "cgroup_attach_task")]
pub fn cgroup_attach(ctx: TracePointContext) -> u32 {
    emit_attach(ctx.as_ptr() as *const u8);
    0
}

#[btf_tracepoint(function = "cgroup_mkdir")]
pub fn cg_mkdir_btf(ctx: BtfTracePointContext) -> i32 {
    emit_btf(ctx.arg(0), ctx.arg(1), Kind::CgroupMkdir);
    0
}

#[btf_tracepoint(function = "cgroup_rmdir")]
pub fn cg_rmdir_btf(ctx: BtfTracePointContext) -> i32 {
    emit_btf(ctx.arg(0), ctx.arg(1), Kind::CgroupRmdir);
    0
}

#[btf_tracepoint(function = "cgroup_release")]
pub fn cg_release_btf(ctx: BtfTracePointContext) -> i32 {
    emit_btf(ctx.arg(0), ctx.arg(1), Kind::CgroupRelease);
    0
}

/// `(struct cgroup *dst_cgrp, const char *path, struct task_struct *task, bool threadgroup)`
#[btf_tracepoint(function = "cgroup_attach_task")]
pub fn cg_attach_btf(ctx: BtfTracePointContext) -> i32 {
    let cgrp: *const u8 = ctx.arg(0);
    let path: *const u8 = ctx.arg(1);
    let task: *const u8 = ctx.arg(2);
    let root = hierarchy_id(cgrp);
    if !memory_hierarchy(root) || !concerns_a_pod(task, path) {
        return 0;
    }
    let Some(mut entry) = EVENTS.reserve::<AttachEvent>(0) else {
        count_drop(Hook::Cgroup);
        return 0;
    };
    let ev = entry.as_mut_ptr();
    unsafe {
        (*ev).header = header(Kind::CgroupAttach);
        let (_, level, id) = cgroup_fields(cgrp);
        (*ev).dst_root = root;
        (*ev).dst_level = level;
        (*ev).dst_id = id;
        (*ev).pid = read::<i32>(task, get(&g::TASK_PID)).unwrap_or(0) as u32;
        read_str(
            task.wrapping_add(get(&g::TASK_COMM)),
            (*ev).comm.as_mut_ptr(),
            COMM_LEN,
        );
        (*ev).path_len = read_str(path, (*ev).path.as_mut_ptr(), PATH_LEN);
        (*ev)._pad = 0;
        (*ev).valid = 0;
        if moved_task(task, ev) {
            (*ev).valid = valid::ATTACH_TASK;
        }
    }
    let flags = if get(&g::LAZY_WAKE_BYTES) != 0 && unsafe { (*ev).valid } != 0 {
        lazy_wakeup()
    } else {
        WAKE
    };
    entry.submit(flags);
    0
}

/// What the daemon needs of a moved task, into `ev` (the pid namespace,
/// the task's and its parent leader's starts, the parent's tgid): true when
/// every read succeeded and the offsets are known.
#[inline(always)]
unsafe fn moved_task(task: *const u8, ev: *mut AttachEvent) -> bool {
    if get(&g::BTF_READY) == 0 || get(&g::LAZY_WAKE_BYTES) == 0 {
        return false;
    }
    let Some((pid, upid)) = active_upid(task) else {
        return false;
    };
    let Ok(pid_ns) = pid_ns_inum(pid, upid) else {
        return false;
    };
    let Ok(start) = read::<u64>(task, get(&g::TASK_START_BOOTTIME)) else {
        return false;
    };
    let Ok(parent) = read::<*const u8>(task, get(&g::TASK_REAL_PARENT)) else {
        return false;
    };
    let Ok(ppid) = read::<u32>(parent, get(&g::TASK_TGID)) else {
        return false;
    };
    let Ok(parent_start) = read::<*const u8>(parent, get(&g::TASK_GROUP_LEADER))
        .and_then(|leader| read::<u64>(leader, get(&g::TASK_START_BOOTTIME)))
    else {
        return false;
    };
    (*ev).pid_ns = pid_ns;
    (*ev).start_ns = start;
    (*ev).ppid = ppid;
    (*ev).parent_start_ns = parent_start;
    true
}

/// Whether a move into hierarchy `root` is one userspace reads: the memory
/// hierarchy's (v1: its id; v2: 0), or any when userspace did not say.
#[inline(always)]
fn memory_hierarchy(root: u32) -> bool {
    let memory = get(&g::MEMORY_HIERARCHY) as u32;
    memory == u32::MAX || root == memory
}

/// Whether this move of the memory hierarchy may concern a pod: a process
/// of a container's pid namespace (into or out of its pod), a host process
/// joining a pod's cgroup (remembered), or one seen joining a pod before,
/// or whose parent was (leaving it). Every move when `ATTACH_MOVES` is 0
/// or a read fails.
#[inline(always)]
fn concerns_a_pod(task: *const u8, path: *const u8) -> bool {
    if ATTACH_MOVES.get(0) != Some(&1) || get(&g::BTF_READY) == 0 {
        return true;
    }
    let Ok(level) = read::<*const u8>(task, get(&g::TASK_THREAD_PID))
        .and_then(|pid| read::<u32>(pid, get(&g::PID_LEVEL)))
    else {
        return true;
    };
    if level > 0 {
        return true;
    }
    let Ok(tgid) = read::<u32>(task, get(&g::TASK_TGID)) else {
        return true;
    };
    if unsafe { POD_HOST_PIDS.get(tgid) }.is_some() {
        return true;
    }
    if let Ok(parent) = read::<*const u8>(task, get(&g::TASK_REAL_PARENT))
        .and_then(|p| read::<u32>(p, get(&g::TASK_TGID)))
    {
        if unsafe { POD_HOST_PIDS.get(parent) }.is_some() {
            return true;
        }
    }
    if names_kubepods(path) {
        let _ = POD_HOST_PIDS.insert(tgid, 1, 0);
        return true;
    }
    false
}

/// Whether the kernel's path of the destination holds "kubepods" (a failed
/// read says yes: the move is kept).
#[inline(always)]
fn names_kubepods(path: *const u8) -> bool {
    let mut buf = [0u8; PATH_LEN];
    let Ok(n) = (unsafe { try_read_str(path, buf.as_mut_ptr(), PATH_LEN) }) else {
        return true;
    };
    let n = n as usize;
    let mut i = 0;
    while i + 8 <= n && i + 8 <= PATH_LEN {
        // SAFETY: i + 8 <= PATH_LEN, inside `buf`.
        let word = unsafe { core::ptr::read_unaligned(buf.as_ptr().add(i) as *const u64) };
        if word == KUBEPODS {
            return true;
        }
        i += 1;
    }
    false
}

/// A `struct cgroup`'s hierarchy id (0 for v2's, and when unreadable).
#[inline(always)]
fn hierarchy_id(cgrp: *const u8) -> u32 {
    read::<*const u8>(cgrp, get(&g::CGROUP_ROOT))
        .and_then(|r| read::<i32>(r, get(&g::ROOT_HIERARCHY_ID)))
        .unwrap_or(0) as u32
}

/// The hierarchy id, level and kernfs id of a `struct cgroup`, as the
/// classic tracepoints record them.
#[inline(always)]
fn cgroup_fields(cgrp: *const u8) -> (u32, u32, u64) {
    let root = hierarchy_id(cgrp);
    let level = read::<i32>(cgrp, get(&g::CGROUP_LEVEL)).unwrap_or(0) as u32;
    let id = read::<*const u8>(cgrp, get(&g::CGROUP_KN))
        .and_then(|kn| read::<u64>(kn, get(&g::KN_ID)))
        .unwrap_or(0);
    (root, level, id)
}

#[inline(always)]
fn emit_btf(cgrp: *const u8, path: *const u8, kind: Kind) {
    let Some(mut entry) = EVENTS.reserve::<CgroupEvent>(0) else {
        count_drop(Hook::Cgroup);
        return;
    };
    let ev = entry.as_mut_ptr();
    unsafe {
        (*ev).header = header(kind);
        let (root, level, id) = cgroup_fields(cgrp);
        (*ev).root = root;
        (*ev).level = level;
        (*ev).id = id;
        (*ev)._pad = 0;
        (*ev).path_len = read_str(path, (*ev).path.as_mut_ptr(), PATH_LEN);
    }
    entry.submit(WAKE);
}

#[inline(always)]
fn emit(rec: *const u8, kind: Kind) {
    let Some(mut entry) = EVENTS.reserve::<CgroupEvent>(0) else {
        count_drop(Hook::Cgroup);
        return;
    };
    let ev = entry.as_mut_ptr();
    unsafe {
        (*ev).header = header(kind);
        (*ev).root = read::<u32>(rec, get(&g::TP_CG_ROOT)).unwrap_or(0);
        (*ev).level = read::<u32>(rec, get(&g::TP_CG_LEVEL)).unwrap_or(0);
        (*ev).id = read::<u64>(rec, get(&g::TP_CG_ID)).unwrap_or(0);
        (*ev)._pad = 0;
        let src = data_loc(rec, get(&g::TP_CG_PATH)).unwrap_or(core::ptr::null());
        (*ev).path_len = read_str(src, (*ev).path.as_mut_ptr(), PATH_LEN);
    }
    entry.submit(WAKE);
}

#[inline(always)]
fn emit_attach(rec: *const u8) {
    // No task at hand here: every move of the memory hierarchy is kept.
    let Ok(root) = read::<u32>(rec, get(&g::TP_AT_DST_ROOT)) else {
        return;
    };
    if !memory_hierarchy(root) {
        return;
    }
    let Some(mut entry) = EVENTS.reserve::<AttachEvent>(0) else {
        count_drop(Hook::Cgroup);
        return;
    };
    let ev = entry.as_mut_ptr();
    unsafe {
        (*ev).header = header(Kind::CgroupAttach);
        (*ev).dst_root = root;
        (*ev).dst_level = read::<u32>(rec, get(&g::TP_AT_DST_LEVEL)).unwrap_or(0);
        (*ev).dst_id = read::<u64>(rec, get(&g::TP_AT_DST_ID)).unwrap_or(0);
        (*ev).pid = read::<u32>(rec, get(&g::TP_AT_PID)).unwrap_or(0);
        let comm = data_loc(rec, get(&g::TP_AT_COMM)).unwrap_or(core::ptr::null());
        read_str(comm, (*ev).comm.as_mut_ptr(), COMM_LEN);
        let src = data_loc(rec, get(&g::TP_AT_DST_PATH)).unwrap_or(core::ptr::null());
        (*ev).path_len = read_str(src, (*ev).path.as_mut_ptr(), PATH_LEN);
        // No task here: the daemon reads the moved process from /proc, at once.
        (*ev).valid = 0;
        (*ev).pid_ns = 0;
        (*ev).ppid = 0;
        (*ev).start_ns = 0;
        (*ev).parent_start_ns = 0;
        (*ev)._pad = 0;
    }
    entry.submit(WAKE);
}
