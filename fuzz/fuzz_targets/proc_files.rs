//! Small files oomtrace reads: /proc/PID/cgroup, a cgroup's
//! memory.pressure (the near_oom sampler's PSI) and its own state file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oomtrace_fuzz::{logs::state, node::cgroup, node::node_memory, scratch_file};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = cgroup::memory_cgroup_of(&text, false);
    let _ = cgroup::memory_cgroup_of(&text, true);
    let _ = node_memory::parse_psi(&text);
    let path = scratch_file("state.json", data);
    let _ = state::load(&path);
});
