//! Cgroup paths (from the kernel and cgroupfs) and the kubelet's log names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oomtrace_fuzz::node::pods;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(k) = pods::parse_cgroup_path(&text) {
        let _ = format!("{k:?}");
    }
    let _ = pods::parse_pod_log_dir(&text);
    let _ = pods::parse_container_log_name(&text);
    let _ = pods::PodUid::parse(&text);
    if let Ok(id) = pods::ContainerId::parse(&text) {
        let _ = id.short();
    }
});
