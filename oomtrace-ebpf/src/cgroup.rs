//! cgroup lifecycle tracepoints, for v1 hierarchies (`root` = hierarchy id)
//! and v2 (`root` = 0). They keep the daemon's cgroup-id → path table
//! current, including paths of cgroups removed moments after a kill.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext, EbpfContext};
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
