//! Readable lines for a terminal: one per verdict, colour only on a TTY and
//! never with NO_COLOR set.

use std::io::Write;

use super::{Line, Sink};
use crate::verdict::VerdictKind;

pub struct TextSink<W: Write> {
    out: W,
    color: bool,
}

impl<W: Write> TextSink<W> {
    pub fn new(out: W, color: bool) -> Self {
        TextSink { out, color }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

impl<W: Write> Sink for TextSink<W> {
    fn write(&mut self, record: &Line) -> std::io::Result<()> {
        let line = match record {
            Line::Status(s) => {
                let hooks: Vec<String> = s
                    .hooks
                    .iter()
                    .map(|c| {
                        format!(
                            "{}={}",
                            c.family.name(),
                            c.chosen.map(|k| k.name()).unwrap_or("none")
                        )
                    })
                    .collect();
                let version = match s.cgroup.version {
                    crate::cgroup::Version::V1 => "v1",
                    crate::cgroup::Version::V2 => "v2",
                };
                format!(
                    "{} oomtrace {} on {} (cgroup {version}, {} cgroups) hooks: {}",
                    self.paint("2", s.state),
                    s.version,
                    s.kernel,
                    s.cgroup.cgroups,
                    hooks.join(" ")
                )
            }
            Line::Verdict(v) => {
                let (label, code) = match v.verdict {
                    VerdictKind::PodLimit => ("POD_LIMIT", "1;33"),
                    VerdictKind::NodePressure => ("NODE_PRESSURE", "1;31"),
                    VerdictKind::EscapedProcess => ("ESCAPED_PROCESS", "1;35"),
                    VerdictKind::System => ("SYSTEM", "1;36"),
                };
                let kind = v
                    .kind
                    .map(|k| {
                        format!(
                            "/{}",
                            serde_json::to_value(k)
                                .ok()
                                .and_then(|j| j.as_str().map(str::to_owned))
                                .unwrap_or_default()
                        )
                    })
                    .unwrap_or_default();
                format!(
                    "{} {}{} {}",
                    v.time,
                    self.paint(code, label),
                    kind,
                    v.summary
                )
            }
            Line::Finding(f) => {
                let label = match f.finding {
                    crate::verdict::FindingKind::EscapeDetected => "ESCAPE_DETECTED",
                    crate::verdict::FindingKind::CgroupLeak => "CGROUP_LEAK",
                };
                format!("{} {} {}", f.time, self.paint("1;35", label), f.summary)
            }
            Line::Stopped(s) => {
                format!("{} {} {}", s.time, self.paint("2", "STOPPED"), s.summary)
            }
            Line::Heartbeat(h) => format!(
                "{} up {} s, {} events, {} verdicts, {} findings, {} lost",
                self.paint("2", "heartbeat"),
                h.uptime_s,
                h.events,
                h.verdicts,
                h.findings,
                h.lost
            ),
            Line::Lost(l) => format!(
                "{} {} events lost on hook {} ({} in all)",
                self.paint("1;31", "LOST"),
                l.count,
                l.hook,
                l.total
            ),
        };
        writeln!(self.out, "{line}")?;
        self.out.flush()
    }
}
