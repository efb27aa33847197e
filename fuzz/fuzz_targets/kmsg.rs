//! /dev/kmsg records and the kernel's OOM lines inside them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oomtrace_fuzz::logs::{kmsg, oom_report};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = oom_report::parse_oom_line(&text);
    if let Ok(rec) = kmsg::parse_record(&text) {
        let _ = oom_report::parse_oom_line(&rec.text);
    }
});
