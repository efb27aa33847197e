//! Memory-charge activity, for the "who was growing" evidence.
//!
//! `vmscan:mm_vmscan_memcg_reclaim_begin` stays attached: it fires only when
//! a memory cgroup is under pressure, and at most one record per CPU per
//! 100 ms crosses the ring buffer. `memcg:mod_memcg_lruvec_state` fires
//! several times per page fault, so userspace attaches `memcg_charge` only
//! while some cgroup is under pressure, and it never touches the ring
//! buffer: it sums charged pages per cgroup in a per-CPU map.

use aya_ebpf::{
    macros::{btf_tracepoint, map, tracepoint},
    maps::{PerCpuArray, PerCpuHashMap},
    programs::{BtfTracePointContext, TracePointContext},
    EbpfContext,
};
use oomtrace_common::{Hook, Kind, PressureEvent};

use crate::{
    globals::{self as g, get},
    kernel::{
        count_drop, current_task_info, header, log_task, read, task_expect, task_missing, WAKE,
    },
    EVENTS,
};

const PRESSURE_EVERY_NS: u64 = 100_000_000;

/// Pages charged per memory cgroup (kernfs id) while armed.
#[map]
static CHARGES: PerCpuHashMap<u64, u64> = PerCpuHashMap::with_max_entries(8192, 0);

/// When this CPU last sent a pressure record.
#[map]
static LAST_PRESSURE: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// The same as `memcg_reclaim`, without the perf event (see cgroup.rs).
#[btf_tracepoint(function = "mm_vmscan_memcg_reclaim_begin")]
pub fn reclaim_tp_btf(ctx: BtfTracePointContext) -> i32 {
    pressure(&ctx);
    0
}

#[tracepoint(category = "vmscan", name = "mm_vmscan_memcg_reclaim_begin")]
pub fn memcg_reclaim(ctx: TracePointContext) -> u32 {
    pressure(&ctx);
    0
}

/// One record per CPU per 100 ms: the task charging (the one in reclaim)
/// and its memcg chain.
#[inline(always)]
fn pressure<C: EbpfContext>(ctx: &C) {
    let h = header(Kind::Pressure);
    let Some(last) = LAST_PRESSURE.get_ptr_mut(0) else {
        return;
    };
    unsafe {
        if h.boot_ns.saturating_sub(*last) < PRESSURE_EVERY_NS {
            return;
        }
        *last = h.boot_ns;
    }
    let Some(mut entry) = EVENTS.reserve::<PressureEvent>(0) else {
        count_drop(Hook::Pressure);
        return;
    };
    let ev = entry.as_mut_ptr();
    let missing = unsafe {
        (*ev).header = h;
        current_task_info(&mut (*ev).task);
        task_missing(&(*ev).task, task_expect())
    };
    entry.submit(WAKE);
    // Rate-limited above, and silent unless a read failed.
    log_task(ctx, "pressure task", missing);
}

#[tracepoint(category = "memcg", name = "mod_memcg_lruvec_state")]
pub fn memcg_charge(ctx: TracePointContext) -> u32 {
    let rec = ctx.as_ptr() as *const u8;
    let val = read::<i32>(rec, get(&g::TP_MS_VAL)).unwrap_or(0);
    if val <= 0 {
        return 0;
    }
    let item = read::<i32>(rec, get(&g::TP_MS_ITEM)).unwrap_or(-1) as usize;
    if item != get(&g::ITEM_ANON) && item != get(&g::ITEM_FILE) && item != get(&g::ITEM_SHMEM) {
        return 0;
    }
    let id = read::<u64>(rec, get(&g::TP_MS_ID)).unwrap_or(0);
    match CHARGES.get_ptr_mut(&id) {
        Some(pages) => unsafe { *pages += val as u64 },
        None => {
            let _ = CHARGES.insert(&id, &(val as u64), 0);
        }
    }
    0
}
