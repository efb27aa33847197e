//! Ring-buffer records: any bytes the kernel side could hand over.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oomtrace_fuzz::{node::cgroup::CgroupTree, kernel::event};

fuzz_target!(|data: &[u8]| {
    if let Ok(ev) = event::decode(data) {
        // What the engine does next with a record: names, paths, the tree.
        let _ = format!("{ev:?}");
        let mut tree = CgroupTree::new(4);
        tree.apply(&ev);
        let _ = tree.entries();
    }
});
