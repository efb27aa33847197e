//! Per killed process: `oom:mark_victim`, best first as tp_btf, raw_tp,
//! fentry and kprobe on `mark_oom_victim` (the function that emits the
//! tracepoint, for kernels whose tracepoint carries only the pid), then the
//! classic tracepoint. `current` is the task whose charge failed (the
//! trigger); arg0 of every form but the classic one is the victim's
//! `task_struct *`.

use aya_ebpf::{
    macros::{btf_tracepoint, fentry, kprobe, raw_tracepoint, tracepoint},
    programs::{
        BtfTracePointContext, FEntryContext, ProbeContext, RawTracePointContext, TracePointContext,
    },
    EbpfContext,
};
use aya_log_ebpf::debug;
use oomtrace_common::{
    valid, Hook, Kind, VictimEvent, VictimSource, COMM_LEN, FIELD_ABSENT, MEMCG_DEPTH,
};

use crate::{
    globals::{self as g, get},
    kernel::{
        count_drop, current_task_info, data_loc, flag, header, read, reset_task, task_expect,
        task_info, task_missing, try_read_str, TaskMissing, WAKE,
    },
    EVENTS,
};

#[btf_tracepoint(function = "mark_victim")]
pub fn victim_tp_btf(ctx: BtfTracePointContext) -> i32 {
    let task: *const u8 = ctx.arg(0);
    emit_from_task(&ctx, task, VictimSource::TpBtf);
    0
}

#[raw_tracepoint(tracepoint = "mark_victim")]
pub fn victim_raw_tp(ctx: RawTracePointContext) -> i32 {
    let task: *const u8 = ctx.arg(0);
    emit_from_task(&ctx, task, VictimSource::RawTp);
    0
}

#[fentry(function = "mark_oom_victim")]
pub fn victim_fentry(ctx: FEntryContext) -> i32 {
    let task: *const u8 = ctx.arg(0);
    if !already_marked(task) {
        emit_from_task(&ctx, task, VictimSource::Fentry);
    }
    0
}

#[kprobe]
pub fn victim_kprobe(ctx: ProbeContext) -> u32 {
    if let Some(task) = ctx.arg::<*const u8>(0) {
        if !already_marked(task) {
            emit_from_task(&ctx, task, VictimSource::Kprobe);
        }
    }
    0
}

/// Whether `mark_oom_victim` runs for a process marked before: it returns
/// early then (its task has TIF_MEMDIE), without the tracepoint, and the
/// daemon would judge the kill twice. The first marking of a process sets
/// its `signal->oom_mm`, never cleared while the process lives; unlike
/// TIF_MEMDIE's bit, its offset comes from BTF on every architecture. (It
/// also skips another thread of a process marked before, which the
/// tracepoint would report again: the daemon keys victims by process.)
#[inline(always)]
fn already_marked(task: *const u8) -> bool {
    read::<*const u8>(task, get(&g::TASK_SIGNAL))
        .and_then(|signal| read::<*const u8>(signal, get(&g::SIGNAL_OOM_MM)))
        .is_ok_and(|mm| !mm.is_null())
}

#[tracepoint(category = "oom", name = "mark_victim")]
pub fn victim_tp(ctx: TracePointContext) -> u32 {
    emit_from_record(&ctx, ctx.as_ptr() as *const u8);
    0
}

#[inline(always)]
fn emit_from_task<C: EbpfContext>(ctx: &C, task: *const u8, source: VictimSource) {
    let Some(mut entry) = EVENTS.reserve::<VictimEvent>(0) else {
        count_drop(Hook::Victim);
        return;
    };
    let ev = entry.as_mut_ptr();
    let (victim, trigger, missing) = unsafe {
        (*ev).header = header(Kind::Victim);
        task_info(task, &mut (*ev).victim);
        current_task_info(&mut (*ev).trigger);
        let mut ok = 0;
        (*ev).oom_score_adj = 0;
        if let Ok(adj) = read::<*const u8>(task, get(&g::TASK_SIGNAL))
            .and_then(|signal| read::<i16>(signal, get(&g::SIGNAL_OOM_SCORE_ADJ)))
        {
            (*ev).oom_score_adj = adj;
            ok |= valid::VICTIM_OOM_SCORE_ADJ;
        }
        (*ev).total_vm_pages = 0;
        (*ev).anon_rss_pages = 0;
        (*ev).file_rss_pages = 0;
        (*ev).shmem_rss_pages = 0;
        if let Ok(mm) = read::<*const u8>(task, get(&g::TASK_MM)) {
            if let Ok(v) = read::<u64>(mm, get(&g::MM_TOTAL_VM)) {
                (*ev).total_vm_pages = v;
                ok |= valid::VICTIM_TOTAL_VM;
            }
            if let Ok(v) = rss(mm, get(&g::RSS_ANON_IDX)) {
                (*ev).anon_rss_pages = v;
                ok |= valid::VICTIM_ANON_RSS;
            }
            if let Ok(v) = rss(mm, get(&g::RSS_FILE_IDX)) {
                (*ev).file_rss_pages = v;
                ok |= valid::VICTIM_FILE_RSS;
            }
            if let Ok(v) = rss(mm, get(&g::RSS_SHMEM_IDX)) {
                (*ev).shmem_rss_pages = v;
                ok |= valid::VICTIM_SHMEM_RSS;
            }
        }
        (*ev)._pad = [0; 2];
        (*ev).source = source as u32;
        (*ev).valid = ok;
        (*ev)._pad2 = 0;
        (
            task_missing(&(*ev).victim, task_expect()),
            task_missing(&(*ev).trigger, task_expect()),
            valid::VICTIM_ALL & !ok,
        )
    };
    entry.submit(WAKE);
    log_victim(ctx, missing, victim, trigger);
}

/// `get_mm_counter()` as the tracepoint itself reads it: the counter's
/// shared value without summing per-CPU deltas (a negative transient is 0,
/// as there).
#[inline(always)]
fn rss(mm: *const u8, idx: usize) -> Result<u64, i64> {
    let off = get(&g::MM_RSS_BASE) + idx * get(&g::MM_RSS_STRIDE) + get(&g::MM_RSS_INNER);
    let v = read::<i64>(mm, off)?;
    Ok(if v < 0 { 0 } else { v as u64 })
}

/// Rare path: which reads of the record failed (1), the victim's own
/// fields and both tasks', in one line: a single log call per program, as
/// each one multiplies the paths the verifier walks once debug logging is on
/// (three made these programs too complex for 6.1's verifier).
#[inline(always)]
fn log_victim<C: EbpfContext>(ctx: &C, missing: u32, v: TaskMissing, t: TaskMissing) {
    if missing == 0 && v.fields == 0 && v.memcg == 0 && t.fields == 0 && t.memcg == 0 {
        return;
    }
    debug!(
        ctx,
        "victim pid {}: kernel reads failed (1): oom_score_adj {} total_vm {} anon_rss {} file_rss {} shmem_rss {}; victim task: pid {} comm {} ns_pid {} pid_ns {} mnt_ns {} memcg_chain {} (after {} levels), memcg levels without id {:x}, without page counters {:x}; trigger pid {}: pid {} comm {} ns_pid {} pid_ns {} mnt_ns {} memcg_chain {} (after {} levels), memcg levels without id {:x}, without page counters {:x}",
        v.tgid,
        flag(missing, valid::VICTIM_OOM_SCORE_ADJ),
        flag(missing, valid::VICTIM_TOTAL_VM),
        flag(missing, valid::VICTIM_ANON_RSS),
        flag(missing, valid::VICTIM_FILE_RSS),
        flag(missing, valid::VICTIM_SHMEM_RSS),
        flag(v.fields, valid::TASK_PID),
        flag(v.fields, valid::TASK_COMM),
        flag(v.fields, valid::TASK_NS_PID),
        flag(v.fields, valid::TASK_PID_NS),
        flag(v.fields, valid::TASK_MNT_NS),
        flag(v.fields, valid::TASK_MEMCG_CHAIN),
        v.depth,
        v.memcg & 0xff,
        v.memcg >> MEMCG_DEPTH,
        t.tgid,
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

/// A tracepoint field's offset, `None` when this kernel's record lacks it.
#[inline(always)]
fn field(global: &'static u32) -> Option<usize> {
    let off = get(global);
    (off != FIELD_ABSENT as usize).then_some(off)
}

/// A fixed-size field of the record, `Err` when absent or unreadable.
#[inline(always)]
fn read_field<T>(rec: *const u8, global: &'static u32) -> Result<T, i64> {
    match field(global) {
        Some(off) => read::<T>(rec, off),
        None => Err(-2),
    }
}

/// Classic tracepoint: the victim's fields come from the record; its
/// task_struct is out of reach, so only the trigger's memcgs are read.
/// Before Linux 6.9 (unless backported) the record holds only the pid: the
/// other fields stay unset, for the kernel's report and kill line to name.
#[inline(always)]
fn emit_from_record<C: EbpfContext>(ctx: &C, rec: *const u8) {
    let Some(mut entry) = EVENTS.reserve::<VictimEvent>(0) else {
        count_drop(Hook::Victim);
        return;
    };
    let ev = entry.as_mut_ptr();
    let (victim, trigger, missing) = unsafe {
        (*ev).header = header(Kind::Victim);
        let v = &mut (*ev).victim;
        reset_task(v);
        if let Ok(pid) = read::<i32>(rec, get(&g::TP_MV_PID)) {
            v.tgid = pid as u32;
            v.tid = pid as u32;
            v.valid |= valid::TASK_PID;
        }
        if let Some(off) = field(&g::TP_MV_COMM) {
            let comm_src = if get(&g::TP_MV_COMM_IS_LOC) != 0 {
                data_loc(rec, off).unwrap_or(core::ptr::null())
            } else {
                rec.wrapping_add(off)
            };
            if try_read_str(comm_src, v.comm.as_mut_ptr(), COMM_LEN).is_ok() {
                v.valid |= valid::TASK_COMM;
            }
        }
        current_task_info(&mut (*ev).trigger);
        let mut ok = 0;
        (*ev).total_vm_pages = 0;
        (*ev).anon_rss_pages = 0;
        (*ev).file_rss_pages = 0;
        (*ev).shmem_rss_pages = 0;
        (*ev).oom_score_adj = 0;
        if let Ok(x) = read_field::<u64>(rec, &g::TP_MV_TOTAL_VM) {
            (*ev).total_vm_pages = x;
            ok |= valid::VICTIM_TOTAL_VM;
        }
        if let Ok(x) = read_field::<u64>(rec, &g::TP_MV_ANON_RSS) {
            (*ev).anon_rss_pages = x;
            ok |= valid::VICTIM_ANON_RSS;
        }
        if let Ok(x) = read_field::<u64>(rec, &g::TP_MV_FILE_RSS) {
            (*ev).file_rss_pages = x;
            ok |= valid::VICTIM_FILE_RSS;
        }
        if let Ok(x) = read_field::<u64>(rec, &g::TP_MV_SHMEM_RSS) {
            (*ev).shmem_rss_pages = x;
            ok |= valid::VICTIM_SHMEM_RSS;
        }
        if let Ok(x) = read_field::<i16>(rec, &g::TP_MV_OOM_SCORE_ADJ) {
            (*ev).oom_score_adj = x;
            ok |= valid::VICTIM_OOM_SCORE_ADJ;
        }
        (*ev)._pad = [0; 2];
        (*ev).source = VictimSource::Tracepoint as u32;
        (*ev).valid = ok;
        (*ev)._pad2 = 0;
        (
            // The record holds only pid and comm of the victim (only the
            // pid before 6.9).
            task_missing(
                &(*ev).victim,
                valid::TASK_PID
                    | if field(&g::TP_MV_COMM).is_some() {
                        valid::TASK_COMM
                    } else {
                        0
                    },
            ),
            task_missing(&(*ev).trigger, task_expect()),
            if field(&g::TP_MV_TOTAL_VM).is_some() {
                valid::VICTIM_ALL & !ok
            } else {
                0
            },
        )
    };
    entry.submit(WAKE);
    log_victim(ctx, missing, victim, trigger);
}
