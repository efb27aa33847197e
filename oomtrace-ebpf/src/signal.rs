//! `signal:signal_generate`, filtered here to SIGKILL and SIGTERM: the only
//! signals that end a process for memory reasons (OOM killer, kubelet
//! eviction through the runtime). Everything else never leaves the kernel.
//! Best as tp_btf, which hands over the target's `task_struct *` so its
//! cgroup is read at the signal, even if the process is gone a moment later.

use aya_ebpf::{
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
    EbpfContext,
};
use aya_log_ebpf::debug;
use oomtrace_common::{valid, Hook, Kind, SignalEvent, VictimSource, COMM_LEN, MEMCG_DEPTH};

use crate::{
    globals::{self as g, get},
    kernel::{
        count_drop, flag, header, read, reset_task, task_expect, task_info, task_missing,
        TaskMissing, WAKE,
    },
    EVENTS,
};

const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;
/// `SEND_SIG_NOINFO` / `SEND_SIG_PRIV`: pseudo-pointers for kill(2)-like and
/// kernel-internal sends, as the tracepoint itself decodes them.
const SEND_SIG_NOINFO: usize = 0;
const SEND_SIG_PRIV: usize = 1;
const SI_USER: i32 = 0;
const SI_KERNEL: i32 = 0x80;

#[btf_tracepoint(function = "signal_generate")]
pub fn signal_tp_btf(ctx: BtfTracePointContext) -> i32 {
    let sig: i32 = ctx.arg(0);
    if sig != SIGKILL && sig != SIGTERM {
        return 0;
    }
    let info: *const u8 = ctx.arg(1);
    let task: *const u8 = ctx.arg(2);
    let result: i32 = ctx.arg(4);
    let code = match info as usize {
        SEND_SIG_NOINFO => Ok(SI_USER),
        SEND_SIG_PRIV => Ok(SI_KERNEL),
        _ => read::<i32>(info, get(&g::KSI_CODE)),
    };
    let Some(mut entry) = EVENTS.reserve::<SignalEvent>(0) else {
        count_drop(Hook::Signal);
        return 0;
    };
    let ev = entry.as_mut_ptr();
    let (target, missing) = unsafe {
        let missing = fill_common(ev, sig, code, Ok(result), VictimSource::TpBtf);
        task_info(task, &mut (*ev).target);
        (task_missing(&(*ev).target, task_expect()), missing)
    };
    entry.submit(WAKE);
    log_signal(&ctx, missing, target);
    0
}

#[tracepoint(category = "signal", name = "signal_generate")]
pub fn signal_generate(ctx: TracePointContext) -> u32 {
    let rec = ctx.as_ptr() as *const u8;
    let sig = read::<i32>(rec, get(&g::TP_SG_SIG)).unwrap_or(0);
    if sig != SIGKILL && sig != SIGTERM {
        return 0;
    }
    let Some(mut entry) = EVENTS.reserve::<SignalEvent>(0) else {
        count_drop(Hook::Signal);
        return 0;
    };
    let ev = entry.as_mut_ptr();
    let (target, missing) = unsafe {
        let code = read::<i32>(rec, get(&g::TP_SG_CODE));
        let result = read::<i32>(rec, get(&g::TP_SG_RESULT));
        let missing = fill_common(ev, sig, code, result, VictimSource::Tracepoint);
        // Only pid and comm are in the record; the task itself is out of reach.
        let t = &mut (*ev).target;
        reset_task(t);
        if let Ok(pid) = read::<u32>(rec, get(&g::TP_SG_PID)) {
            t.tgid = pid;
            t.tid = pid;
            t.valid |= valid::TASK_PID;
        }
        if let Ok(comm) = read::<[u8; COMM_LEN]>(rec, get(&g::TP_SG_COMM)) {
            t.comm = comm;
            t.valid |= valid::TASK_COMM;
        }
        (task_missing(t, valid::TASK_PID | valid::TASK_COMM), missing)
    };
    entry.submit(WAKE);
    log_signal(&ctx, missing, target);
    0
}

/// Fills everything but the target; returns the `valid::SIGNAL_*` bits
/// that could not be read.
#[inline(always)]
unsafe fn fill_common(
    ev: *mut SignalEvent,
    sig: i32,
    code: Result<i32, i64>,
    result: Result<i32, i64>,
    source: VictimSource,
) -> u32 {
    (*ev).header = header(Kind::Signal);
    (*ev).sig = sig as u32;
    let mut ok = 0;
    (*ev).code = 0;
    if let Ok(code) = code {
        (*ev).code = code;
        ok |= valid::SIGNAL_CODE;
    }
    (*ev).result = 0;
    if let Ok(result) = result {
        (*ev).result = result;
        ok |= valid::SIGNAL_RESULT;
    }
    (*ev).source = source as u32;
    let id = aya_ebpf::helpers::bpf_get_current_pid_tgid();
    (*ev).sender_tgid = (id >> 32) as u32;
    (*ev).sender_tid = id as u32;
    (*ev).sender_comm = [0; COMM_LEN];
    if let Ok(comm) = aya_ebpf::helpers::bpf_get_current_comm() {
        (*ev).sender_comm = comm;
        ok |= valid::SIGNAL_SENDER_COMM;
    }
    (*ev).valid = ok;
    (*ev)._pad = 0;
    valid::SIGNAL_ALL & !ok
}

/// Rare path: which reads of the record failed (1), in one line (one log
/// call per program: see `victim::log_victim`).
#[inline(always)]
fn log_signal<C: EbpfContext>(ctx: &C, missing: u32, t: TaskMissing) {
    if missing == 0 && t.fields == 0 && t.memcg == 0 {
        return;
    }
    debug!(
        ctx,
        "signal to pid {}: kernel reads failed (1): si_code {} result {} sender_comm {}; target task: pid {} comm {} ns_pid {} pid_ns {} mnt_ns {} memcg_chain {} (after {} levels), memcg levels without id {:x}, without page counters {:x}",
        t.tgid,
        flag(missing, valid::SIGNAL_CODE),
        flag(missing, valid::SIGNAL_RESULT),
        flag(missing, valid::SIGNAL_SENDER_COMM),
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
