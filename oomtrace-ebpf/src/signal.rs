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
use oomtrace_common::{Hook, Kind, MemcgLevel, SignalEvent, VictimSource, MEMCG_DEPTH};

use crate::{
    globals::{self as g, get},
    kernel::{count_drop, header, read, task_info},
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
        SEND_SIG_NOINFO => SI_USER,
        SEND_SIG_PRIV => SI_KERNEL,
        _ => read::<i32>(info, get(&g::KSI_CODE)).unwrap_or(SI_KERNEL),
    };
    let Some(mut entry) = EVENTS.reserve::<SignalEvent>(0) else {
        count_drop(Hook::Signal);
        return 0;
    };
    let ev = entry.as_mut_ptr();
    unsafe {
        fill_common(ev, sig, code, result, VictimSource::TpBtf);
        task_info(task, &mut (*ev).target);
    }
    entry.submit(0);
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
    unsafe {
        let code = read::<i32>(rec, get(&g::TP_SG_CODE)).unwrap_or(0);
        let result = read::<i32>(rec, get(&g::TP_SG_RESULT)).unwrap_or(0);
        fill_common(ev, sig, code, result, VictimSource::Tracepoint);
        // Only pid and comm are in the record; the task itself is out of reach.
        let t = &mut (*ev).target;
        let pid = read::<u32>(rec, get(&g::TP_SG_PID)).unwrap_or(0);
        t.tgid = pid;
        t.tid = pid;
        t.comm = read::<[u8; 16]>(rec, get(&g::TP_SG_COMM)).unwrap_or([0; 16]);
        t.memcg_depth = 0;
        t.ns_pid = 0;
        t.pid_ns = 0;
        t.mnt_ns = 0;
        let mut i = 0;
        while i < MEMCG_DEPTH {
            t.memcg[i] = MemcgLevel::default();
            i += 1;
        }
    }
    entry.submit(0);
    0
}

#[inline(always)]
unsafe fn fill_common(
    ev: *mut SignalEvent,
    sig: i32,
    code: i32,
    result: i32,
    source: VictimSource,
) {
    (*ev).header = header(Kind::Signal);
    (*ev).sig = sig as u32;
    (*ev).code = code;
    (*ev).result = result;
    (*ev).source = source as u32;
    let id = aya_ebpf::helpers::bpf_get_current_pid_tgid();
    (*ev).sender_tgid = (id >> 32) as u32;
    (*ev).sender_tid = id as u32;
    (*ev).sender_comm = aya_ebpf::helpers::bpf_get_current_comm().unwrap_or([0; 16]);
}
