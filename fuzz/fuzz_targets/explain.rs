//! `oomtrace explain`: any bytes as a saved kernel log, then every kill found
//! through the verdict builder and both writers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oomtrace_fuzz::{
    attribution::{self, Observed},
    explain,
    sink::{json::JsonSink, Line, Sink},
};

fuzz_target!(|data: &[u8]| {
    let Ok(kills) = explain::explain(data) else {
        return;
    };
    let mut sink = JsonSink::new(std::io::sink(), String::new());
    for k in &kills {
        let v = attribution::verdict_from_log(attribution::from_saved_log(k), Observed::default());
        // A writer error is io::sink's, never the input's.
        let _ = sink.write(&Line::Verdict(Box::new(v)));
    }
});
