//! Tracepoint `format` files from tracefs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oomtrace_fuzz::kernel::tracefs;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(f) = tracefs::parse_format(&text) {
        // The lookups offsets.rs makes.
        for name in [
            "pid", "comm", "root", "id", "level", "path", "sig", "val", "idx", "memcg_id",
        ] {
            let _ = f.field(name);
        }
    }
});
