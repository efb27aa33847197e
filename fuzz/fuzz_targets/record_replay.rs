//! Recordings (`oomtrace replay FILE`): any bytes as a file, through the
//! whole engine.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oomtrace_fuzz::{engine::recording as record, scratch_file, output::sink::json::JsonSink, output::sink::Sink};

fuzz_target!(|data: &[u8]| {
    let path = scratch_file("recording", data);
    let mut sink = JsonSink::new(std::io::sink(), "fuzz".to_string());
    let _ = record::replay(&path, |_, rec| sink.write(&rec));
});
