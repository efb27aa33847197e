//! Per killed process: `oom:mark_victim`, best first as tp_btf, raw_tp, then
//! the classic tracepoint. `current` is the task whose charge failed (the
//! trigger); arg0 of the BTF/raw forms is the victim's `task_struct *`.

use aya_ebpf::{
    macros::{btf_tracepoint, raw_tracepoint, tracepoint},
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
    EbpfContext,
};
use oomtrace_common::{Hook, Kind, VictimEvent, VictimSource};

use crate::{
    globals::{self as g, get},
    kernel::{count_drop, current_task_info, data_loc, header, read, read_str, task_info},
    EVENTS,
};

#[btf_tracepoint(function = "mark_victim")]
pub fn victim_tp_btf(ctx: BtfTracePointContext) -> i32 {
    let task: *const u8 = ctx.arg(0);
    emit_from_task(task, VictimSource::TpBtf);
    0
}

#[raw_tracepoint(tracepoint = "mark_victim")]
pub fn victim_raw_tp(ctx: RawTracePointContext) -> i32 {
    let task: *const u8 = ctx.arg(0);
    emit_from_task(task, VictimSource::RawTp);
    0
}

#[tracepoint(category = "oom", name = "mark_victim")]
pub fn victim_tp(ctx: TracePointContext) -> u32 {
    emit_from_record(ctx.as_ptr() as *const u8);
    0
}

#[inline(always)]
fn emit_from_task(task: *const u8, source: VictimSource) {
    let Some(mut entry) = EVENTS.reserve::<VictimEvent>(0) else {
        count_drop(Hook::Victim);
        return;
    };
    let ev = entry.as_mut_ptr();
    unsafe {
        (*ev).header = header(Kind::Victim);
        task_info(task, &mut (*ev).victim);
        current_task_info(&mut (*ev).trigger);
        let signal = read::<*const u8>(task, get(&g::TASK_SIGNAL)).unwrap_or(core::ptr::null());
        (*ev).oom_score_adj = read::<i16>(signal, get(&g::SIGNAL_OOM_SCORE_ADJ)).unwrap_or(0);
        let mm = read::<*const u8>(task, get(&g::TASK_MM)).unwrap_or(core::ptr::null());
        (*ev).total_vm_pages = read::<u64>(mm, get(&g::MM_TOTAL_VM)).unwrap_or(0);
        (*ev).anon_rss_pages = rss(mm, get(&g::RSS_ANON_IDX));
        (*ev).file_rss_pages = rss(mm, get(&g::RSS_FILE_IDX));
        (*ev).shmem_rss_pages = rss(mm, get(&g::RSS_SHMEM_IDX));
        (*ev)._pad = [0; 2];
        (*ev).source = source as u32;
    }
    entry.submit(0);
}

/// `get_mm_counter()` as the tracepoint itself reads it: the counter's
/// shared value without summing per-CPU deltas.
#[inline(always)]
fn rss(mm: *const u8, idx: usize) -> u64 {
    let off = get(&g::MM_RSS_BASE) + idx * get(&g::MM_RSS_STRIDE) + get(&g::MM_RSS_INNER);
    let v = read::<i64>(mm, off).unwrap_or(0);
    if v < 0 {
        0
    } else {
        v as u64
    }
}

/// Classic tracepoint: the victim's fields come from the record; its
/// task_struct is out of reach, so only the trigger's memcgs are read.
#[inline(always)]
fn emit_from_record(rec: *const u8) {
    let Some(mut entry) = EVENTS.reserve::<VictimEvent>(0) else {
        count_drop(Hook::Victim);
        return;
    };
    let ev = entry.as_mut_ptr();
    unsafe {
        (*ev).header = header(Kind::Victim);
        let pid = read::<i32>(rec, get(&g::TP_MV_PID)).unwrap_or(0) as u32;
        let v = &mut (*ev).victim;
        v.tgid = pid;
        v.tid = pid;
        v.comm = [0; 16];
        let comm_src = if get(&g::TP_MV_COMM_IS_LOC) != 0 {
            data_loc(rec, get(&g::TP_MV_COMM)).unwrap_or(core::ptr::null())
        } else {
            rec.wrapping_add(get(&g::TP_MV_COMM))
        };
        read_str(comm_src, v.comm.as_mut_ptr(), 16);
        v.memcg_depth = 0;
        v.ns_pid = 0;
        v.pid_ns = 0;
        v.mnt_ns = 0;
        let mut i = 0;
        while i < oomtrace_common::MEMCG_DEPTH {
            v.memcg[i] = Default::default();
            i += 1;
        }
        current_task_info(&mut (*ev).trigger);
        (*ev).total_vm_pages = read::<u64>(rec, get(&g::TP_MV_TOTAL_VM)).unwrap_or(0);
        (*ev).anon_rss_pages = read::<u64>(rec, get(&g::TP_MV_ANON_RSS)).unwrap_or(0);
        (*ev).file_rss_pages = read::<u64>(rec, get(&g::TP_MV_FILE_RSS)).unwrap_or(0);
        (*ev).shmem_rss_pages = read::<u64>(rec, get(&g::TP_MV_SHMEM_RSS)).unwrap_or(0);
        (*ev).oom_score_adj = read::<i16>(rec, get(&g::TP_MV_OOM_SCORE_ADJ)).unwrap_or(0);
        (*ev)._pad = [0; 2];
        (*ev).source = VictimSource::Tracepoint as u32;
    }
    entry.submit(0);
}
