//! Kernel BTF (/sys/kernel/btf/vmlinux): the parse, then every lookup the
//! daemon makes at start (offsets.rs and the probe table).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oomtrace_fuzz::{kernel::btf::Btf, kernel::offsets};

fuzz_target!(|data: &[u8]| {
    let Ok(btf) = Btf::parse(data) else { return };
    let _ = offsets::from_btf(&btf);
    let _ = btf.member_offset("outer", "in.x");
    let _ = btf.member_offset("outer", "c");
    let _ = btf.struct_size("mm_struct");
    let _ = btf.enum_value("", "ANON_A");
    let _ = btf.enum_variants("color");
    let _ = btf.has_func("oom_kill_process");
    let _ = btf.tracepoint_args("mark_victim");
    let _ = btf.tracepoint_args("signal_generate");
    let _ = btf.rss_layout();
});
