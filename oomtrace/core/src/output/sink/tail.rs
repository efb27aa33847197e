//! `oomtrace tail`: what a person on the node scans. One row of aligned
//! columns per kill or finding (time, namespace/pod, container, verdict,
//! limit, RSS, what the kubelet reports), the sentence under it, and the
//! next step for the verdict's kind. Scoped by [`Filter`]; the kills found
//! in the kernel log at start come as one line per verdict kind unless
//! every one is asked for. A field the record lacks prints as `-`.

use std::{collections::BTreeMap, io::Write};

use anstream::{
    stream::{AsLockedWrite, RawStream},
    AutoStream, ColorChoice,
};
use time::{format_description::well_known::Rfc3339, OffsetDateTime, UtcOffset};

use super::{
    palette::{paint, Style, BOLD, CYAN, DIM, GREEN, MAGENTA, RED, YELLOW},
    Line, Sink,
};
use crate::{
    node::node_memory,
    node::pods::{self, Level},
    output::verdict::{
        Container, Finding, FindingKind, Pod, PressureKind, Stopped, Verdict, VerdictKind,
    },
    output::wording::human_bytes as quantity,
};

/// Every name `--verdict` takes: the verdicts, node pressure's kinds, the
/// findings, and `stopped`.
pub const KINDS: [&str; 15] = [
    "pod_limit",
    "cgroup_limit",
    "node_pressure",
    "eviction",
    "allocatable_oom",
    "system_oom",
    "userspace_oom_killer",
    "escaped_process",
    "system",
    "escape_detected",
    "cgroup_leak",
    "oomkilled_misreport",
    "dying_cgroups",
    "near_oom",
    "stopped",
];

/// Which lines a person asked for. Empty lists match everything.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub namespaces: Vec<String>,
    /// A pod's name, its uid, or the name a Deployment's or StatefulSet's
    /// pods start with (`web` for `web-6f9c4-x2x8z`).
    pub pods: Vec<String>,
    /// A container's name or the start of its id.
    pub containers: Vec<String>,
    /// Names of [`KINDS`].
    pub kinds: Vec<String>,
    /// Lines older than this are left out (`--since`).
    pub since: Option<OffsetDateTime>,
    /// `stopped` lines, heartbeats and the stopping status too.
    pub all: bool,
}

impl Filter {
    fn scoped(&self) -> bool {
        !(self.namespaces.is_empty() && self.pods.is_empty() && self.containers.is_empty())
    }

    /// Whose line it is: lines of no pod pass only an unscoped filter.
    fn whose(&self, pod: Option<&Pod>, container: Option<&Container>) -> bool {
        if !self.scoped() {
            return true;
        }
        let ns_ok = self.namespaces.is_empty()
            || pod
                .and_then(|p| p.namespace.as_deref())
                .is_some_and(|ns| self.namespaces.iter().any(|n| n == ns));
        let pod_ok = self.pods.is_empty()
            || pod.is_some_and(|p| {
                self.pods.iter().any(|want| {
                    p.uid.as_ref().is_some_and(|u| u.to_string() == *want)
                        || p.name.as_deref().is_some_and(|name| {
                            name == want
                                || name
                                    .strip_prefix(want.as_str())
                                    .is_some_and(|rest| rest.starts_with('-'))
                        })
                })
            });
        let container_ok = self.containers.is_empty()
            || container.is_some_and(|c| {
                self.containers.iter().any(|want| {
                    c.name.as_deref() == Some(want.as_str())
                        || (want.len() >= 4 && c.id.to_string().starts_with(want.as_str()))
                })
            });
        ns_ok && pod_ok && container_ok
    }

    fn kind(&self, names: &[&str]) -> bool {
        self.kinds.is_empty() || names.iter().any(|n| self.kinds.iter().any(|k| k == n))
    }

    fn recent(&self, time: Option<&str>) -> bool {
        let Some(since) = self.since else {
            return true;
        };
        // A line whose time is unknown is not known to be old.
        time.and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .is_none_or(|t| t >= since)
    }

    /// Whether `line` is one the person asked for.
    pub fn wants(&self, line: &Line) -> bool {
        match line {
            Line::Verdict(v) => {
                let kind = v.kind.map(pressure_name);
                let names: Vec<&str> = [Some(verdict_name(v.verdict)), kind]
                    .into_iter()
                    .flatten()
                    .collect();
                self.kind(&names)
                    && self.whose(v.pod.as_ref(), v.container.as_ref())
                    && self.recent(v.time.as_deref())
            }
            Line::Finding(f) => {
                self.kind(&[finding_name(&f.finding)])
                    && self.whose(f.pod.as_ref(), f.container.as_ref())
                    && self.recent(Some(&f.time))
            }
            Line::Stopped(s) => {
                let asked = self.kinds.iter().any(|k| k == "stopped");
                (self.all || asked)
                    && self.kind(&["stopped"])
                    && self.whose(s.pod.as_ref(), s.container.as_ref())
                    && self.recent(Some(&s.time))
            }
            Line::Heartbeat(_) => self.all,
            Line::Status(s) => s.state == "ready" || self.all,
            // Kills without a verdict may be anyone's: never hidden.
            Line::Lost(_) | Line::Missed(_) => true,
        }
    }
}

/// `--verdict`'s parser: one of [`KINDS`].
pub fn parse_kind(s: &str) -> Result<String, String> {
    if KINDS.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!("`{s}`: expected one of {}", KINDS.join(", ")))
    }
}

fn verdict_name(v: VerdictKind) -> &'static str {
    match v {
        VerdictKind::PodLimit => "pod_limit",
        VerdictKind::CgroupLimit => "cgroup_limit",
        VerdictKind::NodePressure => "node_pressure",
        VerdictKind::EscapedProcess => "escaped_process",
        VerdictKind::System => "system",
    }
}

fn pressure_name(k: PressureKind) -> &'static str {
    match k {
        PressureKind::Eviction => "eviction",
        PressureKind::AllocatableOom => "allocatable_oom",
        PressureKind::SystemOom => "system_oom",
        PressureKind::UserspaceOomKiller => "userspace_oom_killer",
    }
}

fn finding_name(f: &FindingKind) -> &'static str {
    match f {
        FindingKind::EscapeDetected => "escape_detected",
        FindingKind::CgroupLeak => "cgroup_leak",
        FindingKind::OomkilledMisreport => "oomkilled_misreport",
        FindingKind::DyingCgroups => "dying_cgroups",
        FindingKind::NearOom => "near_oom",
    }
}

/// The kills found in the kernel log at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backlog {
    /// One line per verdict kind.
    Summary,
    /// Every kill's row.
    List,
}

/// How times are shown: local (or UTC) wall clock, the date only when it
/// is not today's.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    pub offset: UtcOffset,
    pub utc: bool,
    pub now: OffsetDateTime,
}

impl Clock {
    fn width(&self) -> usize {
        if self.utc {
            12
        } else {
            11
        }
    }

    /// `14:02:11`, `12-06 14:02` on another day (`Z` after either in UTC);
    /// `-` when unknown.
    fn show(&self, rfc3339: Option<&str>) -> String {
        let Some(t) = rfc3339.and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok()) else {
            return "-".to_string();
        };
        let offset = if self.utc {
            UtcOffset::UTC
        } else {
            self.offset
        };
        let (t, today) = (t.to_offset(offset), self.now.to_offset(offset).date());
        let z = if self.utc { "Z" } else { "" };
        if t.date() == today {
            format!("{:02}:{:02}:{:02}{z}", t.hour(), t.minute(), t.second())
        } else {
            format!(
                "{:02}-{:02} {:02}:{:02}{z}",
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            )
        }
    }
}

/// What the sink needs beyond its stream.
#[derive(Clone, Debug)]
pub struct Options {
    pub filter: Filter,
    pub backlog: Backlog,
    pub clock: Clock,
    /// Tail's own cursor, named in its first line.
    pub state_file: String,
}

/// The backlog's kills of one verdict kind, counted for its summary line.
#[derive(Debug, Default)]
struct Tally {
    count: u64,
    latest_time: Option<String>,
    latest_place: String,
}

pub struct TailSink<W: RawStream> {
    out: AutoStream<W>,
    opts: Options,
    /// Between the start and the backlog's end: kernel-log kills are tallied.
    in_backlog: bool,
    tally: BTreeMap<&'static str, Tally>,
}

const PLACE: usize = 34;
const CONTAINER: usize = 16;
const KIND: usize = 19;
const SIZE: usize = 7;

impl<W: RawStream + AsLockedWrite> TailSink<W> {
    pub fn new(out: W, color: ColorChoice, opts: Options) -> Self {
        TailSink {
            out: AutoStream::new(out, color),
            opts,
            in_backlog: true,
            tally: BTreeMap::new(),
        }
    }

    #[cfg(test)]
    fn into_inner(self) -> W {
        self.out.into_inner()
    }

    fn emit(&mut self, text: &str) -> std::io::Result<()> {
        writeln!(self.out, "{text}")?;
        self.out.flush()
    }

    fn header(&self) -> String {
        let t = if self.opts.clock.utc {
            "TIME (UTC)"
        } else {
            "TIME"
        };
        paint(
            DIM,
            &format!(
                "{t:<tw$}  {:<PLACE$}  {:<CONTAINER$}  {:<KIND$}  {:>SIZE$}  {:>SIZE$}  KUBELET REPORTS",
                "NAMESPACE/POD",
                "CONTAINER",
                "VERDICT",
                "LIMIT",
                "RSS",
                tw = self.opts.clock.width()
            ),
        )
    }

    #[expect(clippy::too_many_arguments, reason = "one per column")]
    fn row(
        &self,
        time: Option<&str>,
        place: &str,
        container: &str,
        (label, style): (&str, Style),
        limit: Option<u64>,
        rss: Option<u64>,
        reports: &str,
    ) -> String {
        let size = |b: Option<u64>| b.map(quantity).unwrap_or_else(|| "-".into());
        let label = format!("{label:<KIND$}");
        format!(
            "{:<tw$}  {:<PLACE$}  {:<CONTAINER$}  {}  {:>SIZE$}  {:>SIZE$}  {reports}",
            self.opts.clock.show(time),
            fit(place, PLACE),
            fit(container, CONTAINER),
            paint(style, &label),
            size(limit),
            size(rss),
            tw = self.opts.clock.width()
        )
        .trim_end()
        .to_string()
    }

    /// The sentence and the next step, under the row.
    fn under(&self, sentence: &str, next: Option<String>) -> String {
        let pad = " ".repeat(self.opts.clock.width() + 2);
        let mut s = format!("{pad}{sentence}");
        if let Some(n) = next {
            s.push_str(&format!("\n{pad}{} {n}", paint(GREEN, "next:")));
        }
        s
    }

    fn verdict(&self, v: &Verdict) -> String {
        let label = match (v.verdict, v.kind) {
            (VerdictKind::NodePressure, Some(k)) => (pressure_name(k), RED),
            (VerdictKind::NodePressure, None) => ("node_pressure", RED),
            (VerdictKind::PodLimit, _) => ("pod_limit", YELLOW),
            (VerdictKind::CgroupLimit, _) => ("cgroup_limit", YELLOW),
            (VerdictKind::EscapedProcess, _) => ("escaped_process", MAGENTA),
            (VerdictKind::System, _) => ("system", CYAN),
        };
        let reports = match v.kubelet_reports {
            Some(true) => "OOMKilled",
            Some(false) => "nothing",
            None => "-",
        };
        let host = v.victim.as_ref().and_then(|x| x.cgroup.as_deref());
        let row = self.row(
            v.time.as_deref(),
            &place(v.pod.as_ref(), host),
            &container(v.container.as_ref()),
            label,
            v.limit.as_ref().and_then(|l| l.limit_bytes),
            v.victim.as_ref().and_then(|x| x.rss_bytes),
            reports,
        );
        format!("{row}\n{}", self.under(&v.summary, next_step(v)))
    }

    fn finding(&self, f: &Finding) -> String {
        let host = (f.pod.is_none()).then_some(f.cgroup.as_str());
        let row = self.row(
            Some(&f.time),
            &place(f.pod.as_ref(), host),
            &container(f.container.as_ref()),
            (finding_name(&f.finding), MAGENTA),
            f.limit_bytes,
            None,
            "-",
        );
        format!("{row}\n{}", self.under(&f.summary, None))
    }

    fn stopped(&self, s: &Stopped) -> String {
        let row = self.row(
            Some(&s.time),
            &place(s.pod.as_ref(), s.cgroup.as_deref()),
            &container(s.container.as_ref()),
            ("stopped", DIM),
            None,
            None,
            "-",
        );
        format!("{row}\n{}", self.under(&s.summary, None))
    }

    /// The backlog's summary: one line per verdict kind.
    fn backlog_summary(&mut self, since_last_run: bool) -> std::io::Result<()> {
        let span = match (self.opts.filter.since, since_last_run) {
            (Some(_), _) => "in the --since window",
            (None, true) => "since tail last ran",
            (None, false) => "since boot",
        };
        let tally = std::mem::take(&mut self.tally);
        if tally.is_empty() {
            let pad = " ".repeat(self.opts.clock.width() + 2);
            let asked = if self.opts.filter.scoped() || !self.opts.filter.kinds.is_empty() {
                " of those asked for"
            } else {
                ""
            };
            let line = paint(
                DIM,
                &format!("{pad}no earlier kill{asked} in the kernel log {span}"),
            );
            return self.emit(&line);
        }
        for (kind, t) in tally {
            let style = match kind {
                "pod_limit" | "cgroup_limit" => YELLOW,
                "escaped_process" => MAGENTA,
                "system" => CYAN,
                _ => RED,
            };
            let kills = if t.count == 1 { "kill" } else { "kills" };
            let latest = match t.latest_place.as_str() {
                "" => String::new(),
                at => format!(", the latest of {at}"),
            };
            let line = format!(
                "{:<tw$}  {} {} {kind} {kills} in the kernel log {span}{latest}; {} lists them",
                self.opts.clock.show(t.latest_time.as_deref()),
                paint(style, "backlog:"),
                t.count,
                paint(BOLD, "--backlog"),
                tw = self.opts.clock.width()
            );
            self.emit(&line)?;
        }
        Ok(())
    }
}

/// `s` in `width` columns: cut in the middle (a pod's unique suffix and
/// its namespace both stay).
fn fit(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n <= width {
        return s.to_string();
    }
    let keep = width - 1;
    let head: String = s.chars().take(keep / 2).collect();
    let tail: String = s.chars().skip(n - (keep - keep / 2)).collect();
    format!("{head}…{tail}")
}

/// `namespace/pod`; a pod known by uid alone as its uid; a host process as
/// its cgroup.
fn place(pod: Option<&Pod>, host_cgroup: Option<&str>) -> String {
    match pod {
        Some(p) => match (&p.namespace, &p.name, &p.uid) {
            (Some(ns), Some(n), _) => format!("{ns}/{n}"),
            (_, _, Some(uid)) => format!("pod {uid}"),
            _ => "-".to_string(),
        },
        None => host_cgroup.unwrap_or("-").to_string(),
    }
}

fn container(c: Option<&Container>) -> String {
    match c {
        Some(c) => c.name.clone().unwrap_or_else(|| c.id.short().to_string()),
        None => "-".to_string(),
    }
}

/// What to do about a verdict of this kind, from the record's own fields;
/// a clause whose fact is missing is left out, and `None` when no fact is
/// there to build on.
pub fn next_step(v: &Verdict) -> Option<String> {
    let limit = v.limit.as_ref();
    let limit_bytes = limit.and_then(|l| l.limit_bytes);
    match (v.verdict, v.kind) {
        (VerdictKind::PodLimit, _) => {
            // Whose limit: the pod's, the container's, or a cgroup's below
            // either (a unit of a systemd inside), which the wording names.
            let at = limit.and_then(|l| l.cgroup.as_deref());
            let level = at.and_then(pods::parse_cgroup_path).map(|k| k.level);
            let pod_level = level == Some(Level::Pod) && at.is_some_and(pods::is_pod_cgroup);
            let nested = match level {
                Some(Level::Pod) => !pod_level,
                Some(Level::Container) => !at.is_some_and(pods::is_container_cgroup),
                _ => false,
            };
            let whose = match (pod_level, nested) {
                (true, _) => "the pod's",
                (_, true) => "the cgroup's",
                _ => "the container's",
            };
            let peak = limit
                .and_then(|l| l.usage_bytes)
                .or(v.memory.as_ref().and_then(|m| m.usage_bytes));
            let facts = match (limit_bytes, peak) {
                (Some(l), Some(p)) => {
                    format!(
                        "{whose} limit is {}, its peak {}: ",
                        quantity(l),
                        quantity(p)
                    )
                }
                (Some(l), None) => format!("{whose} limit is {}: ", quantity(l)),
                _ => String::new(),
            };
            let what = match (pod_level, nested) {
                (true, _) => "raise the pod's memory (its containers' resources.limits.memory)",
                (_, true) => "raise that cgroup's own limit (set inside the container)",
                _ => "raise resources.limits.memory",
            };
            Some(format!(
                "{facts}{what} above what it needs, or find what grew (`kubectl top pod --containers`)."
            ))
        }
        (VerdictKind::EscapedProcess, _) => {
            let victim = v.victim.as_ref();
            let at = victim
                .and_then(|x| x.cgroup.as_deref())
                .map(|c| format!("it ran in {c}"));
            let belongs = v
                .evidence
                .pod_cgroup
                .as_deref()
                .map(|c| format!("its pod's cgroup is {c}"));
            let facts: Vec<String> = [at, belongs].into_iter().flatten().collect();
            let facts = if facts.is_empty() {
                String::new()
            } else {
                format!("{}; ", facts.join(", "))
            };
            Some(format!(
                "{facts}a process lands outside its pod when something writes its pid to another cgroup's cgroup.procs (systemd-run --scope, a host agent or supervisor, `nsenter` from the host): find who moved it, and keep the pod's processes in the pod's cgroup."
            ))
        }
        (VerdictKind::NodePressure, kind) => {
            let node = v.node_memory.as_ref();
            let threshold = node.and_then(|n| {
                n.eviction_threshold_bytes.map(|t| {
                    let which = v.evidence.eviction_threshold.unwrap_or("eviction");
                    format!(
                        "memory.available was {} against the kubelet's {which} threshold {}",
                        quantity(n.memory_available_bytes),
                        quantity(t)
                    )
                })
            });
            let largest = match kind {
                Some(PressureKind::SystemOom) => {
                    v.top_consumers.as_ref().and_then(|t| t.first()).map(|c| {
                        format!(
                            "the largest user was {} ({})",
                            c.cgroup,
                            quantity(c.usage_bytes)
                        )
                    })
                }
                _ => None,
            }
            .or_else(|| {
                node.and_then(|n| n.breakdown.as_ref()).and_then(|b| {
                    let pods = b.pods.bytes;
                    let outside = node_memory::largest_outside_pods(b);
                    match outside {
                        Some((part, bytes)) if bytes > pods => Some(format!(
                            "the largest share was {} ({})",
                            part.replace('_', " "),
                            quantity(bytes)
                        )),
                        _ if pods > 0 => Some(format!(
                            "the largest share was the pods ({})",
                            quantity(pods)
                        )),
                        _ => None,
                    }
                })
            });
            let allocatable = match kind {
                Some(PressureKind::AllocatableOom) => {
                    limit_bytes.map(|l| format!("the pods' allocatable limit is {}", quantity(l)))
                }
                _ => None,
            };
            // A userspace killer acts at its own threshold, not the kubelet's.
            let killer = v.killer.as_ref().map(|k| {
                format!(
                    "{} (pid {}) killed it at its own threshold, before the kernel or the kubelet would have",
                    k.known_as, k.pid
                )
            });
            let facts: Vec<String> = [killer, allocatable, threshold, largest]
                .into_iter()
                .flatten()
                .collect();
            let facts = if facts.is_empty() {
                String::new()
            } else {
                format!("{}; ", facts.join(", "))
            };
            Some(format!(
                "{facts}give the pods memory requests near their use so the scheduler does not overcommit the node, or reserve more for the system (--system-reserved, --kube-reserved) when the largest share is outside the pods."
            ))
        }
        (VerdictKind::System, _) => {
            let cgroup = limit.and_then(|l| l.cgroup.as_deref())?;
            let of = limit_bytes
                .map(|l| format!(" of {}", quantity(l)))
                .unwrap_or_default();
            Some(format!(
                "{cgroup} hit its limit{of}: raise its unit's MemoryMax= (systemctl set-property), or find what grew in it."
            ))
        }
        (VerdictKind::CgroupLimit, _) => None,
    }
}

impl<W: RawStream + AsLockedWrite> Sink for TailSink<W> {
    fn write(&mut self, record: &Line) -> std::io::Result<()> {
        if !self.opts.filter.wants(record) {
            return Ok(());
        }
        let text = match record {
            Line::Status(s) if s.state == "ready" => {
                let version = match s.cgroup.version {
                    crate::node::cgroup::Version::V1 => "v1",
                    crate::node::cgroup::Version::V2 => "v2",
                };
                format!(
                    "{}\n{}",
                    paint(
                        DIM,
                        &format!(
                            "oomtrace {} watching (kernel {}, cgroup {version}{}); tail's cursor: {}",
                            s.version,
                            s.kernel,
                            match s.kills.why {
                                Some(_) => ", kills from the kernel log only",
                                None => "",
                            },
                            self.opts.state_file
                        )
                    ),
                    self.header()
                )
            }
            Line::Status(s) => paint(DIM, &format!("oomtrace {}", s.state)),
            Line::Verdict(v) if self.in_backlog && v.source == "kernel_log" => {
                if self.opts.backlog == Backlog::Summary {
                    let kind = v.kind.map(pressure_name).unwrap_or(verdict_name(v.verdict));
                    let t = self.tally.entry(kind).or_default();
                    t.count += 1;
                    if t.latest_time.is_none() || v.time >= t.latest_time {
                        t.latest_time = v.time.clone();
                        let c = container(v.container.as_ref());
                        let host = v.victim.as_ref().and_then(|x| x.cgroup.as_deref());
                        let at = place(v.pod.as_ref(), host);
                        // Where the log names no place (a kill line whose
                        // report is gone), the process is what it names.
                        t.latest_place = match (c.as_str(), at.as_str()) {
                            ("-", "-") => v
                                .victim
                                .as_ref()
                                .map(|x| crate::output::wording::process(x.comm.as_deref(), x.pid))
                                .unwrap_or_default(),
                            ("-", _) => at,
                            (c, _) => format!("{at} ({c})"),
                        };
                    }
                    return Ok(());
                }
                self.verdict(v)
            }
            Line::Verdict(v) => self.verdict(v),
            Line::Finding(f) => self.finding(f),
            Line::Stopped(s) => self.stopped(s),
            Line::Heartbeat(h) => format!(
                "{:<tw$}  {}",
                self.opts.clock.show(Some(&h.time)),
                paint(
                    DIM,
                    &format!(
                        "heartbeat: up {} s, {} verdicts, {} findings, {} lost, {} missed",
                        h.uptime_s, h.verdicts, h.findings, h.lost, h.missed
                    )
                ),
                tw = self.opts.clock.width()
            ),
            Line::Missed(m) => format!(
                "{:<tw$}  {} {}",
                self.opts.clock.show(Some(&m.time)),
                paint(RED, "MISSED"),
                m.summary,
                tw = self.opts.clock.width()
            ),
            Line::Lost(l) if l.hook == "kernel_log" => format!(
                "{:<tw$}  {} {} OOM kills counted by the kernel while nothing watched are no longer in its log: no verdict can be given for them",
                self.opts.clock.show(Some(&l.time)),
                paint(RED, "LOST"),
                l.count,
                tw = self.opts.clock.width()
            ),
            Line::Lost(l) => format!(
                "{:<tw$}  {} {} events lost on hook {} ({} in all): enlarge --ring-buffer-bytes",
                self.opts.clock.show(Some(&l.time)),
                paint(RED, "LOST"),
                l.count,
                l.hook,
                l.total,
                tw = self.opts.clock.width()
            ),
        };
        self.emit(&text)
    }

    fn live(&mut self) {
        self.in_backlog = false;
    }

    fn end_of_backlog(&mut self, since_last_run: bool) -> std::io::Result<()> {
        if !self.in_backlog {
            return Ok(());
        }
        self.in_backlog = false;
        match self.opts.backlog {
            Backlog::Summary => self.backlog_summary(since_last_run),
            Backlog::List => Ok(()),
        }
    }
}

#[cfg(test)]
#[path = "tail_tests.rs"]
mod tests;
