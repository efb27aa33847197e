//! Per OOM invocation: fentry, else kprobe, on `oom_kill_process(struct
//! oom_control *oc, const char *message)`. `oc` names the OOMing memcg (NULL
//! for a global OOM) and the constraint, which the per-victim hook cannot see.

use aya_ebpf::{
    macros::{fentry, kprobe},
    programs::{FEntryContext, ProbeContext},
};
use oomtrace_common::{Hook, Kind, MemcgLevel, OomEvent};

use crate::{
    globals::{self as g, get},
    kernel::{count_drop, current_task_info, header, read},
    EVENTS,
};

#[fentry(function = "oom_kill_process")]
pub fn oom_fentry(ctx: FEntryContext) -> i32 {
    let oc: *const u8 = ctx.arg(0);
    emit(oc);
    0
}

#[kprobe]
pub fn oom_kprobe(ctx: ProbeContext) -> u32 {
    if let Some(oc) = ctx.arg::<*const u8>(0) {
        emit(oc);
    }
    0
}

#[inline(always)]
fn emit(oc: *const u8) {
    let Some(mut entry) = EVENTS.reserve::<OomEvent>(0) else {
        count_drop(Hook::Oom);
        return;
    };
    let ev = entry.as_mut_ptr();
    unsafe {
        (*ev).header = header(Kind::OomInvocation);
        current_task_info(&mut (*ev).trigger);
        let memcg = read::<*const u8>(oc, get(&g::OC_MEMCG)).unwrap_or(core::ptr::null());
        (*ev).memcg = if memcg.is_null() {
            MemcgLevel::default()
        } else {
            let css = memcg.wrapping_add(get(&g::MEMCG_CSS));
            let counter = get(&g::MEMCG_MEMORY);
            MemcgLevel {
                id: read::<*const u8>(css, get(&g::CSS_CGROUP))
                    .and_then(|cgrp| read::<*const u8>(cgrp, get(&g::CGROUP_KN)))
                    .and_then(|kn| read::<u64>(kn, get(&g::KN_ID)))
                    .unwrap_or(0),
                usage_pages: read::<u64>(memcg, counter + get(&g::PC_USAGE)).unwrap_or(0),
                max_pages: read::<u64>(memcg, counter + get(&g::PC_MAX)).unwrap_or(0),
            }
        };
        (*ev).totalpages = read::<u64>(oc, get(&g::OC_TOTALPAGES)).unwrap_or(0);
        (*ev).constraint = read::<u32>(oc, get(&g::OC_CONSTRAINT)).unwrap_or(u32::MAX);
        let chosen = read::<*const u8>(oc, get(&g::OC_CHOSEN)).unwrap_or(core::ptr::null());
        (*ev).chosen_tgid = read::<u32>(chosen, get(&g::TASK_TGID)).unwrap_or(0);
        (*ev).order = read::<i32>(oc, get(&g::OC_ORDER)).unwrap_or(0);
        (*ev)._pad = 0;
    }
    entry.submit(0);
}
