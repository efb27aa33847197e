//! cgroup lifecycle tracepoints, for v1 hierarchies (`root` = hierarchy id)
//! and v2 (`root` = 0). They keep the daemon's cgroup-id → path table
//! current, including paths of cgroups removed moments after a kill.
//! Best as tp_btf (the `struct cgroup *` and the path the kernel formatted
//! for the event; no perf event, which Linux 6.1 opens for a classic
//! tracepoint's raw data only with CAP_SYS_ADMIN), else the classic
//! tracepoints' records.

use aya_ebpf::{
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
    EbpfContext,
};
use oomtrace_common::{AttachEvent, CgroupEvent, Hook, Kind, COMM_LEN, PATH_LEN};

use crate::{
    globals::{self as g, get},
    kernel::{count_drop, data_loc, header, read, read_str},
    EVENTS,
};

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
    let Some(mut entry) = EVENTS.reserve::<AttachEvent>(0) else {
        count_drop(Hook::Cgroup);
        return 0;
    };
    let ev = entry.as_mut_ptr();
    unsafe {
        (*ev).header = header(Kind::CgroupAttach);
        let (root, level, id) = cgroup_fields(cgrp);
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
    }
    entry.submit(0);
    0
}

/// The hierarchy id, level and kernfs id of a `struct cgroup`, as the
/// classic tracepoints record them.
#[inline(always)]
fn cgroup_fields(cgrp: *const u8) -> (u32, u32, u64) {
    let root = read::<*const u8>(cgrp, get(&g::CGROUP_ROOT))
        .and_then(|r| read::<i32>(r, get(&g::ROOT_HIERARCHY_ID)))
        .unwrap_or(0) as u32;
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
    entry.submit(0);
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
    entry.submit(0);
}

#[inline(always)]
fn emit_attach(rec: *const u8) {
    let Some(mut entry) = EVENTS.reserve::<AttachEvent>(0) else {
        count_drop(Hook::Cgroup);
        return;
    };
    let ev = entry.as_mut_ptr();
    unsafe {
        (*ev).header = header(Kind::CgroupAttach);
        (*ev).dst_root = read::<u32>(rec, get(&g::TP_AT_DST_ROOT)).unwrap_or(0);
        (*ev).dst_level = read::<u32>(rec, get(&g::TP_AT_DST_LEVEL)).unwrap_or(0);
        (*ev).dst_id = read::<u64>(rec, get(&g::TP_AT_DST_ID)).unwrap_or(0);
        (*ev).pid = read::<u32>(rec, get(&g::TP_AT_PID)).unwrap_or(0);
        let comm = data_loc(rec, get(&g::TP_AT_COMM)).unwrap_or(core::ptr::null());
        read_str(comm, (*ev).comm.as_mut_ptr(), COMM_LEN);
        let src = data_loc(rec, get(&g::TP_AT_DST_PATH)).unwrap_or(core::ptr::null());
        (*ev).path_len = read_str(src, (*ev).path.as_mut_ptr(), PATH_LEN);
    }
    entry.submit(0);
}
