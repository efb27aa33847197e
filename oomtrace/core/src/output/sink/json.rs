//! JSON lines: every object carries `type`, `schema_version` and `node`.

use std::io::Write;

use serde::Serialize;

use super::{Line, Sink, SCHEMA_VERSION};

pub struct JsonSink<W: Write> {
    out: W,
    node: String,
}

#[derive(Serialize)]
struct Envelope<'a> {
    schema_version: u32,
    node: &'a str,
    #[serde(flatten)]
    record: &'a Line,
}

impl<W: Write> JsonSink<W> {
    pub fn new(out: W, node: String) -> Self {
        JsonSink { out, node }
    }
}

impl<W: Write> Sink for JsonSink<W> {
    fn write(&mut self, record: &Line) -> std::io::Result<()> {
        let env = Envelope {
            schema_version: SCHEMA_VERSION,
            node: &self.node,
            record,
        };
        serde_json::to_writer(&mut self.out, &env)?;
        self.out.write_all(b"\n")?;
        // Line-at-a-time: a pipeline must see a kill when it happens.
        self.out.flush()
    }
}
