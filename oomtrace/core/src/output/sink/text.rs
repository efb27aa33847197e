//! Readable lines for a terminal: one per verdict. Labels are styled with
//! anstyle; an anstream `AutoStream` decides whether the styles reach the
//! output: with `ColorChoice::Auto`, colour on a terminal, never with
//! NO_COLOR set or TERM=dumb (or unset), always with CLICOLOR_FORCE set.

use std::io::Write;

pub use anstream::ColorChoice;
use anstream::{
    stream::{AsLockedWrite, RawStream},
    AutoStream,
};

use super::{
    palette::{paint, CYAN, DIM, MAGENTA, RED, YELLOW},
    Line, Sink,
};
use crate::output::verdict::VerdictKind;

pub struct TextSink<W: RawStream> {
    out: AutoStream<W>,
}

impl<W: RawStream + AsLockedWrite> TextSink<W> {
    /// `color`: `Auto` for the daemon's stdout; `Always`/`Never` to force.
    pub fn new(out: W, color: ColorChoice) -> Self {
        TextSink {
            out: AutoStream::new(out, color),
        }
    }

    /// What the stream resolved `Auto` to.
    pub fn color(&self) -> ColorChoice {
        self.out.current_choice()
    }
}

impl<W: RawStream + AsLockedWrite> Sink for TextSink<W> {
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
                    crate::node::cgroup::Version::V1 => "v1",
                    crate::node::cgroup::Version::V2 => "v2",
                };
                let only_log = match &s.kills.why {
                    Some(why) => format!("; kills from the kernel log only: {why}"),
                    None => String::new(),
                };
                format!(
                    "{} oomtrace {} on {} (cgroup {version}, {} cgroups) hooks: {}{only_log}",
                    paint(DIM, s.state),
                    s.version,
                    s.kernel,
                    s.cgroup.cgroups,
                    hooks.join(" ")
                )
            }
            Line::Verdict(v) => {
                let (label, style) = match v.verdict {
                    VerdictKind::PodLimit => ("POD_LIMIT", YELLOW),
                    VerdictKind::CgroupLimit => ("CGROUP_LIMIT", YELLOW),
                    VerdictKind::NodePressure => ("NODE_PRESSURE", RED),
                    VerdictKind::EscapedProcess => ("ESCAPED_PROCESS", MAGENTA),
                    VerdictKind::System => ("SYSTEM", CYAN),
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
                    v.time.as_deref().unwrap_or("-"),
                    paint(style, label),
                    kind,
                    v.summary
                )
            }
            Line::Finding(f) => {
                let label = match f.finding {
                    crate::output::verdict::FindingKind::EscapeDetected => "ESCAPE_DETECTED",
                    crate::output::verdict::FindingKind::CgroupLeak => "CGROUP_LEAK",
                    crate::output::verdict::FindingKind::OomkilledMisreport => {
                        "OOMKILLED_MISREPORT"
                    }
                    crate::output::verdict::FindingKind::DyingCgroups => "DYING_CGROUPS",
                    crate::output::verdict::FindingKind::NearOom => "NEAR_OOM",
                };
                format!("{} {} {}", f.time, paint(MAGENTA, label), f.summary)
            }
            Line::Stopped(s) => {
                format!("{} {} {}", s.time, paint(DIM, "STOPPED"), s.summary)
            }
            Line::Heartbeat(h) => format!(
                "{} up {} s, {} events, {} verdicts, {} findings, {} lost, {} missed{}",
                paint(DIM, "heartbeat"),
                h.uptime_s,
                h.events,
                h.verdicts,
                h.findings,
                h.lost,
                h.missed,
                h.kernel_oom_kills
                    .map(|k| format!(" ({k} OOM kills counted by the kernel)"))
                    .unwrap_or_default()
            ),
            Line::Missed(m) => format!("{} {} {}", m.since, paint(RED, "MISSED"), m.summary),
            Line::Lost(l) => format!(
                "{} {} events lost on hook {} ({} in all)",
                paint(RED, "LOST"),
                l.count,
                l.hook,
                l.total
            ),
        };
        writeln!(self.out, "{line}")?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        output::sink::{Heartbeat, Lost, Missed},
        output::verdict::{Finding, FindingKind},
    };

    fn lines() -> Vec<Line> {
        vec![
            Line::Lost(Lost {
                time: "2024-01-01T00:00:00.000000000Z".into(),
                hook: "victim",
                count: 2,
                total: 5,
            }),
            Line::Finding(Finding {
                empty_for_s: Some(60.0),
                summary: "empty for 60 s".into(),
                ..Finding::new(
                    FindingKind::CgroupLeak,
                    "2024-01-01T00:00:00Z".into(),
                    "/kubepods/podx".into(),
                )
            }),
            Line::Heartbeat(Heartbeat {
                uptime_s: 10,
                events: 1,
                ..Heartbeat::default()
            }),
            Line::Missed(Missed {
                time: "2024-01-01T00:00:00.000000000Z".into(),
                count: 2,
                total: 2,
                kernel_oom_kills: 3,
                verdicts: 1,
                oom_group_kills: 0,
                since: "2024-01-01T00:00:00Z".into(),
                summary: crate::output::wording::missed(2, "2024-01-01T00:00:00Z"),
            }),
            Line::Heartbeat(Heartbeat {
                uptime_s: 11,
                kernel_oom_kills: Some(3),
                oom_verdicts: 1,
                missed: 2,
                ..Heartbeat::default()
            }),
        ]
    }

    fn written(color: ColorChoice) -> String {
        let mut sink = TextSink::new(Vec::new(), color);
        for l in lines() {
            sink.write(&l).expect("write to a Vec");
        }
        String::from_utf8(sink.out.into_inner()).expect("utf-8")
    }

    const PLAIN: &str = "\
LOST 2 events lost on hook victim (5 in all)
2024-01-01T00:00:00Z CGROUP_LEAK empty for 60 s
heartbeat up 10 s, 1 events, 0 verdicts, 0 findings, 0 lost, 0 missed
2024-01-01T00:00:00Z MISSED The kernel OOM-killed 2 processes since 2024-01-01T00:00:00Z that have no verdict: their events were lost (see the `lost` lines; enlarge --ring-buffer-bytes).
heartbeat up 11 s, 0 events, 0 verdicts, 0 findings, 0 lost, 2 missed (3 OOM kills counted by the kernel)
";

    #[test]
    fn without_colour_no_escape_reaches_the_output() {
        let out = written(ColorChoice::Never);
        assert_eq!(out, PLAIN);
        assert!(!out.contains('\x1b'));
    }

    #[test]
    fn with_colour_labels_are_styled() {
        let out = written(ColorChoice::Always);
        assert_eq!(
            out.lines().next(),
            Some(format!("{RED}LOST{RED:#} 2 events lost on hook victim (5 in all)").as_str())
        );
        assert!(
            out.contains(&format!("{MAGENTA}CGROUP_LEAK{MAGENTA:#}")),
            "{out:?}"
        );
        assert!(out.contains(&format!("{DIM}heartbeat{DIM:#}")), "{out:?}");
        assert!(out.contains(&format!("{RED}MISSED{RED:#}")), "{out:?}");
        assert!(
            out.contains("\x1b[1m") && out.contains("\x1b[31m"),
            "bold red: {out:?}"
        );
        // The same text once the styles are stripped.
        assert_eq!(anstream::adapter::strip_str(&out).to_string(), PLAIN);
    }

    #[test]
    fn auto_is_off_for_a_non_terminal() {
        // A Vec is no terminal: off unless CLICOLOR_FORCE is set around us.
        let sink = TextSink::new(Vec::new(), ColorChoice::Auto);
        if std::env::var_os("CLICOLOR_FORCE").is_none_or(|v| v.is_empty()) {
            assert_eq!(sink.color(), ColorChoice::Never);
        }
    }
}
