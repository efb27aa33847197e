//! oomtrace's kernel side: one file per hook family, shared helpers in
//! `kernel`. Programs stay thin: a `#[program]` wrapper takes its arguments
//! and hands them to its family's `emit*`, which reserves a record, fills it
//! field by field and submits it. No program fails: a read that fails leaves
//! its validity bit clear (and is logged through aya-log at debug level), a
//! reservation that fails is counted in `DROPS`, so every wrapper returns 0
//! (hence no aya-template `try_*`). Every struct offset and tracepoint field
//! offset is a global written by userspace before load (no CO-RE in Rust).
#![no_std]
#![no_main]

mod cgroup;
mod globals;
mod kernel;
mod limit;
mod memcg;
mod oom;
mod signal;
mod victim;

use aya_ebpf::{
    macros::map,
    maps::{PerCpuArray, RingBuf},
};
use oomtrace_common::HOOK_COUNT;

/// Only rare events cross it (OOM, cgroup lifecycle, SIGKILL/SIGTERM); the
/// size is overridden from userspace.
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// Ring-buffer reservation failures, one slot per `oomtrace_common::Hook`.
#[map]
static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(HOOK_COUNT, 0);

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

// The tracing helpers (probe_read_kernel, ringbuf) are GPL-only.
#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
