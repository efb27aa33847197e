//! `signal:signal_generate`, filtered here to SIGKILL and SIGTERM: the only
//! signals that end a process for memory reasons (OOM killer, kubelet
//! eviction through the runtime). Everything else never leaves the kernel.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext, EbpfContext};
use oomtrace_common::{Hook, Kind, SignalEvent};

use crate::{
    globals::{self as g, get},
    kernel::{count_drop, header, read},
    EVENTS,
};

const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;

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
        (*ev).header = header(Kind::Signal);
        (*ev).sig = sig as u32;
        (*ev).code = read::<i32>(rec, get(&g::TP_SG_CODE)).unwrap_or(0);
        (*ev).target_pid = read::<u32>(rec, get(&g::TP_SG_PID)).unwrap_or(0);
        (*ev).result = read::<i32>(rec, get(&g::TP_SG_RESULT)).unwrap_or(0);
        let id = aya_ebpf::helpers::bpf_get_current_pid_tgid();
        (*ev).sender_tgid = (id >> 32) as u32;
        (*ev).sender_tid = id as u32;
        (*ev).target_comm = read::<[u8; 16]>(rec, get(&g::TP_SG_COMM)).unwrap_or([0; 16]);
        (*ev).sender_comm = aya_ebpf::helpers::bpf_get_current_comm().unwrap_or([0; 16]);
    }
    entry.submit(0);
    0
}
