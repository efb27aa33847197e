//! The kubelet's config file (YAML or JSON) and its quantities.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oomtrace_fuzz::node::kubelet;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let t = kubelet::parse_config(&text, "fuzz");
    let _ = t.bytes(u64::MAX);
    let _ = t.bytes(0);
    let _ = t.bytes(25 << 30);
    if let Some(a) = kubelet::parse_amount(&text) {
        let _ = format!("{a:?}");
    }
});
