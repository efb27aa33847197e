//! Per OOM invocation: fentry, else kprobe, on `oom_kill_process(struct
//! oom_control *oc, const char *message)`. `oc` names the OOMing memcg (NULL
//! for a global OOM) and the constraint, which the per-victim hook cannot see.

use aya_ebpf::{
    macros::{fentry, kprobe},
    programs::{FEntryContext, ProbeContext},
    EbpfContext,
};
use aya_log_ebpf::debug;
use oomtrace_common::{valid, Hook, Kind, MemcgLevel, OomEvent, MEMCG_DEPTH};

use crate::{
    globals::{self as g, get},
    kernel::{count_drop, current_task_info, flag, header, read, task_expect, task_missing, WAKE},
    EVENTS,
};

#[fentry(function = "oom_kill_process")]
pub fn oom_fentry(ctx: FEntryContext) -> i32 {
    let oc: *const u8 = ctx.arg(0);
    emit(&ctx, oc);
    0
}

#[kprobe]
pub fn oom_kprobe(ctx: ProbeContext) -> u32 {
    if let Some(oc) = ctx.arg::<*const u8>(0) {
        emit(&ctx, oc);
    }
    0
}

#[inline(always)]
fn emit<C: EbpfContext>(ctx: &C, oc: *const u8) {
    let Some(mut entry) = EVENTS.reserve::<OomEvent>(0) else {
        count_drop(Hook::Oom);
        return;
    };
    let ev = entry.as_mut_ptr();
    let (trigger, missing) = unsafe {
        (*ev).header = header(Kind::OomInvocation);
        current_task_info(&mut (*ev).trigger);
        let mut ok = 0;
        let mut expect = valid::OOM_MEMCG | valid::OOM_CONSTRAINT;
        (*ev).memcg = MemcgLevel::default();
        if let Ok(memcg) = read::<*const u8>(oc, get(&g::OC_MEMCG)) {
            ok |= valid::OOM_MEMCG;
            if memcg.is_null() {
                ok |= valid::OOM_GLOBAL;
            } else {
                expect |= valid::OOM_MEMCG_ID | valid::OOM_MEMCG_COUNTERS;
                let css = memcg.wrapping_add(get(&g::MEMCG_CSS));
                let counter = get(&g::MEMCG_MEMORY);
                if let Ok(id) = read::<*const u8>(css, get(&g::CSS_CGROUP))
                    .and_then(|cgrp| read::<*const u8>(cgrp, get(&g::CGROUP_KN)))
                    .and_then(|kn| read::<u64>(kn, get(&g::KN_ID)))
                {
                    (*ev).memcg.id = id;
                    ok |= valid::OOM_MEMCG_ID;
                }
                if let (Ok(usage), Ok(max)) = (
                    read::<u64>(memcg, counter + get(&g::PC_USAGE)),
                    read::<u64>(memcg, counter + get(&g::PC_MAX)),
                ) {
                    (*ev).memcg.usage_pages = usage;
                    (*ev).memcg.max_pages = max;
                    ok |= valid::OOM_MEMCG_COUNTERS;
                }
            }
        }
        // Ring-buffer memory is not zeroed: the reserved words are.
        (*ev)._reserved = 0;
        (*ev)._reserved2 = [0; 2];
        (*ev).constraint = 0;
        if let Ok(v) = read::<u32>(oc, get(&g::OC_CONSTRAINT)) {
            (*ev).constraint = v;
            ok |= valid::OOM_CONSTRAINT;
        }
        (*ev).valid = ok;
        (task_missing(&(*ev).trigger, task_expect()), expect & !ok)
    };
    entry.submit(WAKE);
    // Rare path, one log call per program (see `victim::log_victim`).
    let t = trigger;
    if missing != 0 || t.fields != 0 || t.memcg != 0 {
        debug!(
            ctx,
            "oom_control of pid {}: kernel reads failed (1): memcg {} memcg id {} memcg counters {} constraint {}; trigger task: pid {} comm {} ns_pid {} pid_ns {} mnt_ns {} memcg_chain {} (after {} levels), memcg levels without id {:x}, without page counters {:x}",
            t.tgid,
            flag(missing, valid::OOM_MEMCG),
            flag(missing, valid::OOM_MEMCG_ID),
            flag(missing, valid::OOM_MEMCG_COUNTERS),
            flag(missing, valid::OOM_CONSTRAINT),
            flag(t.fields, valid::TASK_PID),
            flag(t.fields, valid::TASK_COMM),
            flag(t.fields, valid::TASK_NS_PID),
            flag(t.fields, valid::TASK_PID_NS),
            flag(t.fields, valid::TASK_MNT_NS),
            flag(t.fields, valid::TASK_MEMCG_CHAIN),
            t.depth,
            t.memcg & 0xff,
            t.memcg >> MEMCG_DEPTH
        );
    }
}
