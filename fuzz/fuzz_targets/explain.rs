//! `oomtrace explain`: any bytes as a saved log, then every kill, report
//! without a victim and eviction found through the verdict builders and
//! both writers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oomtrace_fuzz::{
    rules::{attribution::Observed, from_log},
    logs::explain::{self, Logged},
    output::sink::{json::JsonSink, Line, Sink},
};

fuzz_target!(|data: &[u8]| {
    let Ok(found) = explain::explain_all(data, explain::Options::default()) else {
        return;
    };
    let mut sink = JsonSink::new(std::io::sink(), String::new());
    for item in &found.items {
        let v = match item {
            Logged::Kill(k) => {
                from_log::verdict_from_log(from_log::from_saved_log(k), Observed::default())
            }
            Logged::NoVictim(r) => from_log::verdict_from_unfinished(r, Observed::default()),
            Logged::Eviction(e) => from_log::verdict_from_kubelet_eviction(e),
        };
        // A writer error is io::sink's, never the input's.
        let _ = sink.write(&Line::Verdict(Box::new(v)));
    }
});
