//! Helpers shared by the hook families: load-time globals, guarded kernel
//! reads, record headers and drop counting.

use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_probe_read_kernel,
    generated::{bpf_get_smp_processor_id, bpf_ktime_get_boot_ns},
};
use oomtrace_common::{Header, Hook, Kind, MemcgLevel, TaskInfo, MEMCG_DEPTH, WIRE_VERSION};

use crate::{
    globals::{self as g, get},
    DROPS,
};

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

/// Fills `out` for the calling task (helpers only, no BTF needed) and, when
/// BTF offsets are present, its memcg ancestry.
#[inline(always)]
pub unsafe fn current_task_info(out: *mut TaskInfo) {
    let id = bpf_get_current_pid_tgid();
    (*out).tgid = (id >> 32) as u32;
    (*out).tid = id as u32;
    (*out).comm = bpf_get_current_comm().unwrap_or([0; 16]);
    let task = aya_ebpf::helpers::generated::bpf_get_current_task() as *const u8;
    fill_namespaces(task, out);
    fill_memcg(task, out);
}

/// Fills `out` for an arbitrary task through BTF offsets.
#[inline(always)]
pub unsafe fn task_info(task: *const u8, out: *mut TaskInfo) {
    (*out).tgid = read::<u32>(task, get(&g::TASK_TGID)).unwrap_or(0);
    (*out).tid = read::<u32>(task, get(&g::TASK_PID)).unwrap_or(0);
    (*out).comm = read::<[u8; 16]>(task, get(&g::TASK_COMM)).unwrap_or([0; 16]);
    fill_namespaces(task, out);
    fill_memcg(task, out);
}

/// The task's pid as its own pid namespace sees it, and its pid and mount
/// namespace ids: `thread_pid->numbers[thread_pid->level]` and
/// `nsproxy->mnt_ns->ns.inum`.
#[inline(always)]
unsafe fn fill_namespaces(task: *const u8, out: *mut TaskInfo) {
    (*out).ns_pid = 0;
    (*out).pid_ns = 0;
    (*out).mnt_ns = 0;
    if get(&g::BTF_READY) == 0 || task.is_null() {
        return;
    }
    if let Ok(pid) = read::<*const u8>(task, get(&g::TASK_THREAD_PID)) {
        let level = read::<u32>(pid, get(&g::PID_LEVEL)).unwrap_or(0) as usize;
        // Bounded for the verifier; pid namespaces nest at most 32 deep.
        if level < 32 {
            let upid = get(&g::PID_NUMBERS) + level * get(&g::UPID_SIZE);
            (*out).ns_pid = read::<u32>(pid, upid + get(&g::UPID_NR)).unwrap_or(0);
            let ns = read::<*const u8>(pid, upid + get(&g::UPID_NS)).unwrap_or(core::ptr::null());
            (*out).pid_ns = read::<u32>(ns, get(&g::PIDNS_INUM)).unwrap_or(0);
        }
    }
    let nsproxy = read::<*const u8>(task, get(&g::TASK_NSPROXY)).unwrap_or(core::ptr::null());
    let mnt_ns = read::<*const u8>(nsproxy, get(&g::NSPROXY_MNT_NS)).unwrap_or(core::ptr::null());
    (*out).mnt_ns = read::<u32>(mnt_ns, get(&g::MNTNS_INUM)).unwrap_or(0);
}

/// The task's memory cgroup and its ancestors, leaf first, each with its
/// page counter: userspace finds the cgroup whose limit was hit from these
/// numbers, read at kill time, even when no per-OOM hook loads.
#[inline(always)]
unsafe fn fill_memcg(task: *const u8, out: *mut TaskInfo) {
    (*out).memcg_depth = 0;
    let mut i = 0;
    while i < MEMCG_DEPTH {
        (*out).memcg[i] = MemcgLevel::default();
        i += 1;
    }
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
    while depth < MEMCG_DEPTH {
        if css.is_null() {
            break;
        }
        let id = read::<*const u8>(css, get(&g::CSS_CGROUP))
            .and_then(|cgrp| read::<*const u8>(cgrp, get(&g::CGROUP_KN)))
            .and_then(|kn| read::<u64>(kn, get(&g::KN_ID)))
            .unwrap_or(0);
        let memcg = css.wrapping_sub(get(&g::MEMCG_CSS));
        let counter = get(&g::MEMCG_MEMORY);
        (*out).memcg[depth] = MemcgLevel {
            id,
            usage_pages: read::<u64>(memcg, counter + get(&g::PC_USAGE)).unwrap_or(0),
            max_pages: read::<u64>(memcg, counter + get(&g::PC_MAX)).unwrap_or(0),
        };
        depth += 1;
        css = read::<*const u8>(css, get(&g::CSS_PARENT)).unwrap_or(core::ptr::null());
    }
    (*out).memcg_depth = depth as u32;
}

/// Copies a NUL-terminated kernel string into `dst`, returning the length
/// without the NUL (0 on failure).
#[inline(always)]
pub unsafe fn read_str(src: *const u8, dst: *mut u8, cap: usize) -> u32 {
    let n = aya_ebpf::helpers::generated::bpf_probe_read_kernel_str(
        dst as *mut core::ffi::c_void,
        cap as u32,
        src as *const core::ffi::c_void,
    );
    if n > 0 {
        (n - 1) as u32
    } else {
        *dst = 0;
        0
    }
}

/// The address a tracepoint `__data_loc` field points to: the low 16 bits
/// of the u32 are the offset from the record start.
#[inline(always)]
pub unsafe fn data_loc(ctx: *const u8, field_off: usize) -> Result<*const u8, i64> {
    let loc = read::<u32>(ctx, field_off)?;
    Ok(ctx.wrapping_add((loc & 0xffff) as usize))
}
