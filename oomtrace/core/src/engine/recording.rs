//! Recordings: what the engine saw, so a replay gives the same lines bit for
//! bit — on another machine, in a bug report, or as a test fixture.
//!
//! JSON lines. The first is the header (`format`, `version`, the engine's
//! `start`); then each input on a line of its own, followed by the answers
//! the machine gave while it was handled; a clean stop writes `{"end":true}`.
//!
//! Version 2 keys each answer by what was asked, the call and its arguments
//! (`{"answer":{"call":"proc_cgroup","pid":4242,"value":"/kubepods/…"}}`):
//! a replay looks answers up by question, so the engine may read the node
//! in another order than the one that recorded. Version 1 kept answers by
//! position and is refused (see [`RecordingError::Version`]).

use std::{
    fs::File,
    io::{BufRead, BufReader, BufWriter, Write},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{
    engine::{Engine, Input, Start},
    kernel::event,
    node::observe::{Answer, Replayed},
    output::sink::Line,
};

const FORMAT: &str = "oomtrace-recording";
const VERSION: u32 = 2;

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    start: Start,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Entry {
    Input(Input),
    Answer(Answer),
    End(bool),
}

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    // The io::Error is the source: `{:#}` prints it once, after this.
    #[error("reading {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is empty: not an oomtrace recording")]
    Empty { path: PathBuf },
    #[error(
        "{path} is not an oomtrace recording (its first line is not a recording header: {detail})"
    )]
    Foreign { path: PathBuf, detail: String },
    #[error("{path} is a recording of format version {found}; this oomtrace reads version {VERSION} only{}", advice(*found))]
    Version { path: PathBuf, found: u32 },
    #[error("{path} is truncated: line {line} ends mid-record")]
    Truncated { path: PathBuf, line: usize },
    #[error("{path} line {line}: {detail}")]
    Bad {
        path: PathBuf,
        line: usize,
        detail: String,
    },
    #[error("{path} line {line}: kernel record from another build")]
    Wire {
        path: PathBuf,
        line: usize,
        source: event::DecodeError,
    },
    #[error("replay of {path} diverged at line {line}: {detail}")]
    Diverged {
        path: PathBuf,
        line: usize,
        detail: String,
    },
}

/// What to do with a recording of another version.
fn advice(found: u32) -> &'static str {
    if found < VERSION {
        ". Replay it with the oomtrace that recorded it, or record the scenario again with this one \
         (version 1 kept the node's answers by position, which a changed read order breaks)"
    } else {
        ": it was recorded by a newer oomtrace; replay it with that one"
    }
}

pub struct Recorder {
    out: BufWriter<File>,
}

impl Recorder {
    pub fn create(path: &Path, start: &Start) -> std::io::Result<Recorder> {
        let mut out = BufWriter::new(File::create(path)?);
        let header = Header {
            format: FORMAT.into(),
            version: VERSION,
            start: start.clone(),
        };
        serde_json::to_writer(&mut out, &header)?;
        out.write_all(b"\n")?;
        out.flush()?;
        Ok(Recorder { out })
    }

    /// One input and the answers given while it was handled; flushed, so a
    /// killed daemon leaves a usable recording.
    pub fn input(&mut self, input: &Input, answers: Vec<Answer>) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, &Entry::Input(input.clone()))?;
        self.out.write_all(b"\n")?;
        for a in answers {
            serde_json::to_writer(&mut self.out, &Entry::Answer(a))?;
            self.out.write_all(b"\n")?;
        }
        self.out.flush()
    }

    pub fn end(mut self) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, &Entry::End(true))?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }
}

/// Replays a recording through the engine, handing every output record to
/// `emit`. Returns the header's start (node name etc.).
pub fn replay(
    path: &Path,
    mut emit: impl FnMut(&Start, Line) -> std::io::Result<()>,
) -> Result<Start, RecordingError> {
    let io = |source| RecordingError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let mut lines = BufReader::new(file).split(b'\n').enumerate().peekable();
    let Some((_, first)) = lines.next() else {
        return Err(RecordingError::Empty {
            path: path.to_path_buf(),
        });
    };
    let first = first.map_err(io)?;
    let header: Header = serde_json::from_slice(&first).map_err(|e| RecordingError::Foreign {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    if header.format != FORMAT {
        return Err(RecordingError::Foreign {
            path: path.to_path_buf(),
            detail: format!("format is {:?}", header.format),
        });
    }
    if header.version != VERSION {
        return Err(RecordingError::Version {
            path: path.to_path_buf(),
            found: header.version,
        });
    }
    let start = header.start;
    let mut engine = Engine::new(start.clone());
    // Read the whole body first: a damaged file fails before any output.
    let mut body: Vec<(usize, Input, Vec<Answer>)> = Vec::new();
    let mut ended = false;
    while let Some((i, raw)) = lines.next() {
        let line_no = i + 1;
        let raw = raw.map_err(io)?;
        if raw.is_empty() {
            continue;
        }
        let is_last = lines.peek().is_none();
        let line: Entry = match serde_json::from_slice(&raw) {
            Ok(l) => l,
            Err(e) if is_last && e.is_eof() => {
                return Err(RecordingError::Truncated {
                    path: path.to_path_buf(),
                    line: line_no,
                })
            }
            Err(e) => {
                return Err(RecordingError::Bad {
                    path: path.to_path_buf(),
                    line: line_no,
                    detail: e.to_string(),
                })
            }
        };
        match line {
            Entry::Input(input) => {
                if let Input::Kernel(bytes) = &input {
                    event::decode(bytes).map_err(|source| RecordingError::Wire {
                        path: path.to_path_buf(),
                        line: line_no,
                        source,
                    })?;
                }
                body.push((line_no, input, Vec::new()));
            }
            Entry::Answer(a) => match body.last_mut() {
                Some((_, _, answers)) => answers.push(a),
                None => {
                    return Err(RecordingError::Bad {
                        path: path.to_path_buf(),
                        line: line_no,
                        detail: "an answer before any input".into(),
                    })
                }
            },
            Entry::End(_) => ended = true,
        }
    }
    if !ended {
        tracing::warn!("{} has no end line: the recording daemon did not stop cleanly; replaying what is there", path.display());
    }
    for (line, input, answers) in body {
        let mut obs = Replayed::new(answers);
        for record in engine.handle(input, &mut obs) {
            emit(&start, record).map_err(io)?;
        }
        let unasked = obs.unasked();
        if obs.diverged.is_none() && !unasked.is_empty() {
            obs.diverged = Some(format!(
                "{} recorded answers were not asked for: {unasked:?}",
                unasked.len()
            ));
        }
        if let Some(detail) = obs.diverged.take() {
            return Err(RecordingError::Diverged {
                path: path.to_path_buf(),
                line,
                detail,
            });
        }
    }
    Ok(start)
}
