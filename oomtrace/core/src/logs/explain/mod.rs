//! `oomtrace explain`: the kills in a saved log.
//!
//! People paste what they have: `dmesg`, `journalctl` (kernel and kubelet
//! together), a syslog file, raw `/dev/kmsg` records, `grep` output over
//! rotated files, a sosreport, a ticket's quote. Each line's prefix is taken
//! off ([`prefix`]); the kernel's text goes through the same reader as the
//! live log ([`ReportReader`]), every form since 3.10; the kubelet's and
//! containerd's lines ([`journal`]) give evictions and names.
//!
//! Nothing is taken from a report unless it names the same process or
//! memcg: the summary is matched to its kill by pid, the usage and limit
//! to the summary's memcg; a report ends at the next one, at a gap in the
//! paste (`--`), or when its lines' stamps are seconds apart, so a kill
//! line never takes a neighbour's cgroup. What the log does not say is
//! null, never guessed.

pub mod journal;
pub mod prefix;

use std::collections::{HashMap, HashSet};

pub use prefix::Options;
use prefix::Stamped;

use crate::{
    logs::kmsg::PastKill,
    logs::oom_report::{Constraint, OomKill, OomLine, OomSummary, ReportReader, Unfinished},
};
use journal::{ContainerName, JournalLine};

/// One kill found in a saved log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedKill {
    /// `seq`: the record's sequence number for raw `/dev/kmsg` records, else
    /// the kill line's number in the input (1-based); `ts_us`: since boot
    /// when the line carries it, else 0.
    pub past: PastKill,
    /// Microseconds since boot, when the log's stamps give it.
    pub since_boot_us: Option<u64>,
    /// RFC 3339 UTC, only when the log's dates carry their zone.
    pub time: Option<String>,
    /// The OOMing memcg's usage and limit in bytes, when the report printed
    /// them for the memcg the summary names.
    pub usage_bytes: Option<u64>,
    pub limit_bytes: Option<u64>,
    /// Shared by the kills of one report.
    pub incident: String,
    /// The kill line itself is not in the log: the summary named the victim.
    pub from_summary_only: bool,
}

/// An OOM report whose victim the log does not name (the paste ends, or
/// is cut, before its kill line), with what it does say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedReport {
    pub report: Unfinished,
    pub since_boot_us: Option<u64>,
    pub time: Option<String>,
    pub incident: String,
    pub usage_bytes: Option<u64>,
    pub limit_bytes: Option<u64>,
    pub line: u64,
}

/// The kubelet's eviction of a pod, as its eviction manager logged it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedEviction {
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
    /// What the eviction manager said it was reclaiming; null when its
    /// lines for this eviction are not in the log.
    pub resource: Option<String>,
    /// The grace period the kubelet gave the pod's containers.
    pub grace_s: Option<u64>,
    /// The containers the kubelet said it stopped.
    pub containers: Vec<ContainerName>,
    pub time: Option<String>,
    pub line: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Logged {
    Kill(Box<LoggedKill>),
    NoVictim(LoggedReport),
    Eviction(LoggedEviction),
}

/// Names the paste gives for pods and containers (the kubelet's lines).
#[derive(Clone, Debug, Default)]
pub struct LogNames {
    by_container: HashMap<String, ContainerName>,
    by_uid: HashMap<String, (String, String)>,
}

impl LogNames {
    fn learn(&mut self, c: &ContainerName) {
        if let (Some(uid), Some(ns), Some(name)) = (&c.uid, &c.namespace, &c.name) {
            self.by_uid.insert(uid.clone(), (ns.clone(), name.clone()));
        }
        if let Some(id) = &c.container_id {
            let known = self.by_container.entry(id.clone()).or_default();
            for (have, new) in [
                (&mut known.namespace, &c.namespace),
                (&mut known.name, &c.name),
                (&mut known.uid, &c.uid),
                (&mut known.container, &c.container),
            ] {
                if new.is_some() {
                    have.clone_from(new);
                }
            }
            known.container_id = Some(id.clone());
        }
    }

    /// Learns what one raw line of a log names (the kubelet's and
    /// containerd's lines); the rest are skipped at the cost of one scan.
    pub fn learn_line(&mut self, raw: &[u8]) {
        let line = String::from_utf8_lossy(raw);
        if crate::logs::oom_report::anchors::of(&line) & crate::logs::oom_report::anchors::JOURNAL
            == 0
        {
            return;
        }
        let Some(s) = prefix::strip(&line, Options::default()) else {
            return;
        };
        match journal::parse(&s.text) {
            Some(JournalLine::Killing(c) | JournalLine::PodContainer(c)) => self.learn(&c),
            Some(JournalLine::TaskOom { container_id }) => self.learn(&ContainerName {
                container_id: Some(container_id),
                ..ContainerName::default()
            }),
            _ => {}
        }
    }

    /// The pod's namespace and name by its uid.
    pub fn pod(&self, uid: &str) -> Option<(String, String)> {
        self.by_uid.get(uid).cloned()
    }

    /// The container's name, and its pod's namespace and name, by its id.
    pub fn container(&self, id: &str) -> Option<&ContainerName> {
        self.by_container.get(id)
    }
}

/// Everything a log held.
#[derive(Clone, Debug, Default)]
pub struct Explained {
    pub items: Vec<Logged>,
    pub names: LogNames,
    /// Lines where an OOM report began whose outcome is not in the log
    /// (neither its scope nor its victim): context, not verdicts.
    pub without_outcome: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    #[error("the input is not a text log ({0})")]
    NotText(&'static str),
}

/// A report's lines are printed within milliseconds (under the OOM lock);
/// stamps further apart than this belong to different reports.
const REPORT_SPAN_US: u64 = 5_000_000;

/// Reads a log line by line; what each line completes comes out at once,
/// so a followed log (`dmesg -w`) is explained as it grows.
#[derive(Default)]
pub struct Explainer {
    opts: Options,
    reader: ReportReader,
    line_no: u64,
    /// The report being read: its incident, first line's stamp, and the
    /// stamp of the line before (continuation lines have none).
    incident: Option<String>,
    report_start_us: Option<u64>,
    report_time: Option<String>,
    report_line: Option<u64>,
    last: Stamped,
    /// Summaries wait for their kill line, by pid.
    summaries: Vec<(OomSummary, Stamped, u64, String)>,
    /// One verdict per victim per incident (oom.group repeats the first),
    /// and per kill line however often it is pasted (its pid and stamp).
    judged: HashSet<(String, u32)>,
    stamped: HashSet<(u32, u64)>,
    /// The report's memcg part, for the members of its oom.group kill.
    group_report: Option<crate::logs::oom_report::MemcgReport>,
    /// A line that may continue on the next one (a terminal's fold).
    held: Option<(Stamped, u64)>,
    names: LogNames,
    /// The kubelet's lines since its last eviction: the resource and the
    /// containers it stopped, by pod.
    reclaim: Option<String>,
    stopping: HashMap<(String, String), Vec<ContainerName>>,
    without_outcome: Vec<u64>,
}

impl Explainer {
    pub fn new(opts: Options) -> Explainer {
        Explainer {
            opts,
            ..Explainer::default()
        }
    }

    pub fn names(&self) -> &LogNames {
        &self.names
    }

    /// Lines where an OOM report began whose outcome is not in the log.
    pub fn without_outcome(&self) -> &[u64] {
        &self.without_outcome
    }

    /// One input line (without its newline).
    pub fn line(&mut self, raw: &[u8]) -> Vec<Logged> {
        self.line_no += 1;
        let mut out = Vec::new();
        let line = String::from_utf8_lossy(raw);
        let line = line.trim_end_matches('\r');
        if line.trim() == "--" {
            // `grep -C`: lines left out here; no report spans the gap.
            self.release_held(&mut out);
            self.gap(&mut out);
            return out;
        }
        let Some(mut s) = prefix::strip(line, self.opts) else {
            return out;
        };
        if let Some((held, at)) = self.held.take() {
            let joined = format!("{}{}", held.text, s.text);
            if !s.prefixed && !s.text.is_empty() && !starts_report_line(&s.text) {
                // A fold: the line goes on here.
                let s = Stamped {
                    text: joined,
                    ..held
                };
                self.take(s, at, &mut out);
                return out;
            }
            self.take(held, at, &mut out);
        }
        if !s.prefixed {
            // A continuation line: the stamp of the record it continues.
            s.seq = self.last.seq;
            s.since_boot_us = self.last.since_boot_us;
            s.time.clone_from(&self.last.time);
            s.program.clone_from(&self.last.program);
        }
        let at = self.line_no;
        if might_continue(&s.text) {
            self.held = Some((s, at));
            return out;
        }
        self.take(s, at, &mut out);
        out
    }

    /// The input ended.
    pub fn finish(&mut self) -> Vec<Logged> {
        let mut out = Vec::new();
        self.release_held(&mut out);
        self.gap(&mut out);
        out
    }

    fn release_held(&mut self, out: &mut Vec<Logged>) {
        if let Some((held, at)) = self.held.take() {
            self.take(held, at, out);
        }
    }

    /// A break in the log: pending summaries become kills, an unfinished
    /// report is reported.
    fn gap(&mut self, out: &mut Vec<Logged>) {
        for l in self.reader.finish() {
            self.handle(l, &Stamped::default(), self.line_no, out);
        }
        self.flush_summaries(out);
        self.incident = None;
        self.report_start_us = None;
        self.report_time = None;
        self.report_line = None;
        self.group_report = None;
    }

    fn take(&mut self, s: Stamped, line_no: u64, out: &mut Vec<Logged>) {
        if s.prefixed {
            self.last = Stamped {
                text: String::new(),
                ..s.clone()
            };
        }
        let found = crate::logs::oom_report::anchors::of(&s.text);
        if found & crate::logs::oom_report::anchors::JOURNAL != 0
            && s.program.as_deref().is_none_or(|p| p != "kernel")
        {
            if let Some(j) = journal::parse(&s.text) {
                self.journal(j, &s, line_no, out);
                return;
            }
        }
        if found & crate::logs::oom_report::anchors::KILLED != 0 {
            if let Some(quoted) = quoted_kill(&s.text) {
                // Another tool quoting the kernel's kill line (a Kubernetes
                // event, node-problem-detector): a kill, unless the
                // kernel's own line already gave it.
                if let Some(OomLine::Kill(kill)) = crate::logs::oom_report::parse_oom_line(quoted) {
                    if !self.judged.iter().any(|(_, pid)| *pid == kill.pid) {
                        let incident = incident(&s, line_no);
                        self.kill(kill, None, &s, line_no, incident, false, out);
                    }
                }
                return;
            }
        }
        // Stamps far apart: whatever comes now is another report's.
        if let (Some(start), Some(now)) = (self.report_start_us, s.since_boot_us) {
            if now.abs_diff(start) > REPORT_SPAN_US {
                self.gap(out);
            }
        }
        for l in self.reader.feed_with(&s.text, found) {
            self.handle(l, &s, line_no, out);
        }
    }

    fn handle(&mut self, l: OomLine, s: &Stamped, line_no: u64, out: &mut Vec<Logged>) {
        match l {
            OomLine::Start => {
                self.flush_summaries(out);
                self.incident = Some(incident(s, line_no));
                self.report_start_us = s.since_boot_us;
                self.report_time.clone_from(&s.time);
                self.report_line = Some(line_no);
                self.group_report = None;
            }
            OomLine::Summary(sum) => {
                let incident = self.current_incident(s, line_no);
                self.summaries.retain(|(p, ..)| p.pid != sum.pid);
                self.summaries.push((sum, s.clone(), line_no, incident));
            }
            OomLine::Kill(kill) => {
                let incident = self.current_incident(s, line_no);
                let summary = self
                    .summaries
                    .iter()
                    .position(|(p, ..)| p.pid == kill.pid && p.task == kill.comm)
                    .map(|i| self.summaries.remove(i));
                let (summary, incident) = match summary {
                    // The summary's report is the kill's.
                    Some((sum, _, _, inc)) => (Some(sum), inc),
                    None => (None, incident),
                };
                self.kill(kill, summary, s, line_no, incident, false, out);
            }
            OomLine::Unfinished(report) => {
                let worth =
                    report.oom_memcg.is_some() || report.constraint == Some(Constraint::None);
                if !worth {
                    self.without_outcome
                        .push(self.report_line.unwrap_or(line_no));
                    return;
                }
                let (usage, limit) = usage_limit(report.report.as_ref());
                out.push(Logged::NoVictim(LoggedReport {
                    since_boot_us: self.report_start_us.or(s.since_boot_us),
                    time: self.report_time.clone().or_else(|| s.time.clone()),
                    incident: self.current_incident(s, line_no),
                    usage_bytes: usage,
                    limit_bytes: limit,
                    line: line_no,
                    report,
                }));
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn kill(
        &mut self,
        kill: OomKill,
        summary: Option<OomSummary>,
        s: &Stamped,
        line_no: u64,
        incident: String,
        from_summary_only: bool,
        out: &mut Vec<Logged>,
    ) {
        if !self.judged.insert((incident.clone(), kill.pid)) {
            return;
        }
        if let Some(us) = s.since_boot_us.filter(|_| !from_summary_only) {
            if !self.stamped.insert((kill.pid, us)) {
                return;
            }
        }
        if let Some(r) = summary.as_ref().and_then(|sum| sum.report.as_ref()) {
            self.group_report = Some(r.clone());
        }
        // A group member has no summary: the limit's numbers are its report's.
        let member_report = kill.group.as_ref().and_then(|g| {
            self.group_report
                .as_ref()
                .filter(|r| g.oom_memcg.as_deref() == Some(r.cgroup.as_str()))
        });
        let report = summary
            .as_ref()
            .and_then(|sum| sum.report.as_ref())
            .or(member_report);
        let (usage, limit) = usage_limit(report);
        let since_boot_us = s.since_boot_us;
        out.push(Logged::Kill(Box::new(LoggedKill {
            past: PastKill {
                seq: s.seq.unwrap_or(line_no),
                ts_us: since_boot_us.unwrap_or(0),
                kill,
                summary,
            },
            since_boot_us,
            time: s.time.clone(),
            usage_bytes: usage,
            limit_bytes: limit,
            incident,
            from_summary_only,
        })));
    }

    /// Summaries whose kill line never came (cut from the paste): the
    /// summary names the victim, its memcg and the limit's.
    fn flush_summaries(&mut self, out: &mut Vec<Logged>) {
        for (sum, s, line_no, incident) in std::mem::take(&mut self.summaries) {
            let kill = OomKill::unread(
                sum.constraint == Constraint::Memcg,
                sum.pid,
                sum.task.clone(),
            );
            self.kill(kill, Some(sum), &s, line_no, incident, true, out);
        }
    }

    fn current_incident(&mut self, s: &Stamped, line_no: u64) -> String {
        if self.incident.is_none() {
            self.report_start_us = s.since_boot_us;
            self.report_time.clone_from(&s.time);
            self.report_line = Some(line_no);
        }
        self.incident
            .get_or_insert_with(|| incident(s, line_no))
            .clone()
    }

    fn journal(&mut self, j: JournalLine, s: &Stamped, line_no: u64, out: &mut Vec<Logged>) {
        match j {
            JournalLine::Reclaim { resource } => self.reclaim = Some(resource),
            JournalLine::Killing(c) => {
                self.names.learn(&c);
                if let (Some(ns), Some(name)) = (&c.namespace, &c.name) {
                    self.stopping
                        .entry((ns.clone(), name.clone()))
                        .or_default()
                        .push(c);
                }
            }
            JournalLine::PodContainer(c) => self.names.learn(&c),
            JournalLine::TaskOom { container_id } => self.names.learn(&ContainerName {
                container_id: Some(container_id),
                ..ContainerName::default()
            }),
            JournalLine::Evicted {
                namespace,
                name,
                uid,
            } => {
                let stopped = self
                    .stopping
                    .remove(&(namespace.clone(), name.clone()))
                    .unwrap_or_default();
                let uid = uid.or_else(|| stopped.iter().find_map(|c| c.uid.clone()));
                out.push(Logged::Eviction(LoggedEviction {
                    grace_s: stopped.iter().filter_map(|c| c.grace_s).max(),
                    containers: stopped.clone(),
                    namespace,
                    name,
                    uid,
                    resource: self.reclaim.clone(),
                    time: s.time.clone(),
                    line: line_no,
                }));
            }
        }
    }
}

/// The kernel's kill line inside another tool's line, not at its start.
fn quoted_kill(text: &str) -> Option<&str> {
    [
        "Memory cgroup out of memory: Killed process ",
        "Out of memory: Killed process ",
    ]
    .iter()
    .filter_map(|p| text.find(p))
    .min()
    .filter(|&at| at > 0)
    .and_then(|at| text.get(at..))
}

/// A line a terminal may have folded: an OOM line that is not whole yet.
fn might_continue(text: &str) -> bool {
    let found = crate::logs::oom_report::anchors::of(text);
    if found & crate::logs::oom_report::anchors::KILLED == 0 && !text.starts_with("Task in ") {
        return false;
    }
    let summary_cut = text.starts_with("oom-kill:") && !ends_with_uid(text);
    let task_in_cut =
        text.starts_with("Task in ") && found & crate::logs::oom_report::anchors::TASK_IN == 0;
    let kill_cut = found & crate::logs::oom_report::anchors::KILLED != 0
        && text.contains("Killed process ")
        && !text.contains("total-vm:")
        && !text.contains("is already exiting");
    summary_cut || task_in_cut || kill_cut
}

fn ends_with_uid(text: &str) -> bool {
    text.rsplit_once(",uid=").is_some_and(|(_, u)| {
        !u.is_empty()
            && u.trim_start_matches('-')
                .bytes()
                .all(|b| b.is_ascii_digit())
    })
}

/// Lines that start a record of their own, never the rest of a fold.
fn starts_report_line(text: &str) -> bool {
    const STARTS: [&str; 10] = [
        "oom-kill:",
        "Memory cgroup",
        "Killed process",
        "Out of memory",
        "Task in ",
        "Tasks in ",
        "memory: ",
        "oom_reaper:",
        "CPU: ",
        "[",
    ];
    STARTS.iter().any(|p| text.starts_with(p)) || text.contains(" invoked oom-killer: ")
}

fn usage_limit(
    report: Option<&crate::logs::oom_report::MemcgReport>,
) -> (Option<u64>, Option<u64>) {
    report.map_or((None, None), |r| r.usage_limit_bytes())
}

/// Every kill in `input`, oldest first. Lines the parsers do not know are
/// skipped; `Err` only when the input is not text at all.
pub fn explain(input: &[u8]) -> Result<Vec<LoggedKill>, ExplainError> {
    explain_with(input, Options::default())
}

/// [`explain`], with what the caller knows about the log.
pub fn explain_with(input: &[u8], opts: Options) -> Result<Vec<LoggedKill>, ExplainError> {
    Ok(explain_all(input, opts)?
        .items
        .into_iter()
        .filter_map(|l| match l {
            Logged::Kill(k) => Some(*k),
            _ => None,
        })
        .collect())
}

/// Everything in `input`: kills, reports without a victim, evictions, and
/// the names the log gives.
pub fn explain_all(input: &[u8], opts: Options) -> Result<Explained, ExplainError> {
    let mut e = Explainer::new(opts);
    let mut items = Vec::new();
    for raw in input.split(|&b| b == b'\n') {
        items.extend(e.line(raw));
    }
    items.extend(e.finish());
    if items.is_empty() {
        check_text(input)?;
    }
    Ok(Explained {
        items,
        names: e.names,
        without_outcome: e.without_outcome,
    })
}

/// `Err` when `input` is not text: NUL bytes, or mostly not UTF-8.
pub fn check_text(input: &[u8]) -> Result<(), ExplainError> {
    if input.contains(&0) {
        return Err(ExplainError::NotText("it holds NUL bytes"));
    }
    let bad = String::from_utf8_lossy(input).matches('\u{fffd}').count();
    if bad > 0 && bad * 8 > input.len() / 8 {
        return Err(ExplainError::NotText("most of it is not UTF-8"));
    }
    Ok(())
}

fn incident(s: &Stamped, line_no: u64) -> String {
    match (s.seq, s.since_boot_us) {
        (Some(seq), _) => format!("kmsg-{seq}"),
        (None, Some(us)) => format!("log-{}.{:06}", us / 1_000_000, us % 1_000_000),
        (None, None) => format!("line-{line_no}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kills(input: &str) -> Vec<LoggedKill> {
        match explain(input.as_bytes()) {
            Ok(k) => k,
            Err(e) => panic!("{e}"),
        }
    }

    /// A real report from this host (6.18, cgroup v1), trimmed of its
    /// stack and stats: the kill that made it is oomtrace-hog pid 18700 in
    /// a 16 MiB memcg (tests/ barrier cgroup).
    const HOST_618: &str = "\
[ 3773.672951] oomtrace-hog invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
[ 3773.672959] CPU: 0 UID: 0 PID: 18700 Comm: oomtrace-hog Not tainted 6.18.44-fc-v669 #1 PREEMPT(none) 
[ 3773.673077] memory: usage 16384kB, limit 16384kB, failcnt 19
[ 3773.673084] memory+swap: usage 16384kB, limit 9007199254740988kB, failcnt 0
[ 3773.673086] kmem: usage 32kB, limit 9007199254740988kB, failcnt 0
[ 3773.673087] Memory cgroup stats for /oomtrace-barrier-0000436f-0029-4341-8dbb-0018ec0a7e47:
[ 3773.673105] cache 0
[ 3773.673156] Tasks state (memory values in pages):
[ 3773.673157] [  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name
[ 3773.673159] [  18700]     0 18700     4857     4585     4096      489         0    77824        0             0 oomtrace-hog
[ 3773.673163] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/oomtrace-barrier-0000436f-0029-4341-8dbb-0018ec0a7e47,task_memcg=/oomtrace-barrier-0000436f-0029-4341-8dbb-0018ec0a7e47,task=oomtrace-hog,pid=18700,uid=0
[ 3773.673217] Memory cgroup out of memory: Killed process 18700 (oomtrace-hog) total-vm:19428kB, anon-rss:16384kB, file-rss:1956kB, shmem-rss:0kB, UID:0 pgtables:76kB oom_score_adj:0
";
    const BARRIER: &str = "/oomtrace-barrier-0000436f-0029-4341-8dbb-0018ec0a7e47";

    fn check_host(k: &[LoggedKill]) {
        assert_eq!(k.len(), 1, "{k:?}");
        let k = &k[0];
        assert_eq!(
            (k.past.kill.pid, k.past.kill.comm.as_str()),
            (18700, "oomtrace-hog")
        );
        let s = k.past.summary.as_ref().expect("summary");
        assert_eq!(s.oom_memcg.as_deref(), Some(BARRIER));
        assert_eq!(k.limit_bytes, Some(16 << 20));
        assert_eq!(k.usage_bytes, Some(16 << 20));
    }

    fn reprefix(mut f: impl FnMut(&str, &str) -> String) -> String {
        HOST_618
            .lines()
            .map(|l| {
                let (stamp, text) = l.split_once("] ").expect("stamped");
                f(stamp.trim_start_matches('['), text) + "\n"
            })
            .collect()
    }

    #[test]
    fn dmesg_seconds() {
        let k = kills(HOST_618);
        check_host(&k);
        assert_eq!(k[0].since_boot_us, Some(3_773_673_217));
        assert_eq!(k[0].time, None);
        assert_eq!(k[0].incident, "log-3773.672951");
    }

    #[test]
    fn dmesg_dates_and_caller_ids() {
        let k = kills(&reprefix(|_, t| format!("[Fri Nov 27 23:24:48 2026] {t}")));
        check_host(&k);
        // Local time of an unknown zone: not stated.
        assert_eq!((k[0].time.as_deref(), k[0].since_boot_us), (None, None));
        // Unless the caller names the zone.
        let input = reprefix(|_, t| format!("[Fri Nov 27 23:24:48 2026] {t}"));
        let opts = Options {
            local_offset: time::UtcOffset::from_hms(-5, 0, 0).ok(),
        };
        let k = explain_with(input.as_bytes(), opts).unwrap_or_default();
        check_host(&k);
        assert_eq!(k[0].time.as_deref(), Some("2026-11-28T04:24:48.000000000Z"));
        let k = kills(&reprefix(|s, t| format!("[{s}] [  T18700] {t}")));
        check_host(&k);
    }

    #[test]
    fn journal_and_syslog() {
        let k = kills(&reprefix(|_, t| {
            format!("Nov 27 23:24:48 node-1 kernel: {t}")
        }));
        check_host(&k);
        assert_eq!(k[0].time, None);
        assert!(k[0].incident.starts_with("line-"));
        // /var/log/messages keeps the dmesg stamp after the prefix.
        let k = kills(&reprefix(|s, t| {
            format!("Nov 27 23:24:48 node-1 kernel: [{s}] {t}")
        }));
        check_host(&k);
        assert_eq!(k[0].since_boot_us, Some(3_773_673_217));
        let k = kills(&reprefix(|_, t| {
            format!("2026-11-27T23:24:48+0100 node-1 kernel: {t}")
        }));
        check_host(&k);
        assert_eq!(k[0].time.as_deref(), Some("2026-11-27T22:24:48.000000000Z"));
        let k = kills(&reprefix(|_, t| {
            format!("2026-11-27T23:24:48.123456+00:00 node-1 kernel: {t}")
        }));
        assert_eq!(k[0].time.as_deref(), Some("2026-11-27T23:24:48.123456000Z"));
    }

    #[test]
    fn raw_kmsg_records() {
        let mut seq = 25_000;
        let input = reprefix(|s, t| {
            seq += 1;
            let us = s.trim().replace('.', "");
            format!("6,{seq},{us},-;{t}\n SUBSYSTEM=memory")
        });
        let k = kills(&input);
        check_host(&k);
        assert_eq!(k[0].past.seq, 25_012);
        assert_eq!(k[0].incident, "kmsg-25001");
    }

    #[test]
    fn among_other_lines() {
        let input = format!(
            "sos_commands/kernel/dmesg\n\nsome header: x\n{HOST_618}[ 3780.1] eth0: link up\nNov 27 other: line\n"
        );
        check_host(&kills(&input));
    }

    /// 4.x: no `oom-kill:` summary; the paths on a `Task in` line, the
    /// reason on the `Kill process` line, and a bare `Killed process`.
    /// Synthesized from 4.14's mm/memcontrol.c and mm/oom_kill.c formats.
    #[test]
    fn kernel_4x_report() {
        let pod = "/kubepods/burstable/pod6f1c2a9e-3b7d-4c11-9e0a-2b8f5d4c7a10";
        let cid = "3f9a1c0b7e2d4f6a8b1c3d5e7f9a0b2c4d6e8f0a1b3c5d7e9f1a2b3c4d5e6f70";
        let input = format!(
            "[ 5.0] java invoked oom-killer: gfp_mask=0x14000c0(GFP_KERNEL), nodemask=(null), order=0, oom_score_adj=999
[ 5.0] Task in {pod}/{cid} killed as a result of limit of {pod}/{cid}
[ 5.0] memory: usage 262144kB, limit 262144kB, failcnt 17
[ 5.0] Memory cgroup stats for {pod}/{cid}: cache:0KB rss:262144KB
[ 5.0] Memory cgroup out of memory: Kill process 4242 (java) score 1995 or sacrifice child
[ 5.0] Killed process 4242 (java) total-vm:3000000kB, anon-rss:262000kB, file-rss:100kB, shmem-rss:0kB
"
        );
        let k = kills(&input);
        assert_eq!(k.len(), 1);
        let s = k[0].past.summary.as_ref().expect("from Task in");
        assert_eq!(s.task_memcg, Some(format!("{pod}/{cid}")));
        assert_eq!(s.constraint, Constraint::Memcg);
        assert!(k[0].past.kill.memcg);
        // 4.x's stats line carries the stats after the path.
        assert_eq!(k[0].limit_bytes, Some(256 << 20));
        // A global 4.x kill.
        let k = kills(
            "x invoked oom-killer: gfp_mask=0x0\nOut of memory: Kill process 7 (x) score 900 or sacrifice child\nKilled process 7 (x) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB\n",
        );
        assert_eq!(k.len(), 1);
        assert!(!k[0].past.kill.memcg);
        // A bare kill line without its reason: no kind, so no verdict.
        assert!(kills("Killed process 7 (x) total-vm:1kB\n").is_empty());
    }

    /// Early 5.x: the summary, and a kill line without `UID:`, `pgtables:`
    /// and `oom_score_adj:` (synthesized from 5.1's mm/oom_kill.c format).
    #[test]
    fn kernel_5x_report() {
        let input = "\
[  99.000001] stress invoked oom-killer: gfp_mask=0x6200ca(GFP_HIGHUSER_MOVABLE), order=0, oom_score_adj=0
[  99.000002] memory: usage 102400kB, limit 102400kB, failcnt 12
[  99.000003] Memory cgroup stats for /system.slice/stress.service: cache:0KB rss:102400KB
[  99.000004] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/system.slice/stress.service,task_memcg=/system.slice/stress.service,task=stress,pid=777,uid=0
[  99.000005] Memory cgroup out of memory: Killed process 777 (stress) total-vm:110000kB, anon-rss:102000kB, file-rss:300kB, shmem-rss:0kB
";
        let k = kills(input);
        assert_eq!(k.len(), 1);
        assert_eq!(k[0].past.kill.oom_score_adj, None);
        assert_eq!(k[0].limit_bytes, Some(100 << 20));
        let v = crate::rules::from_log::verdict_from_log(
            crate::rules::from_log::from_saved_log(&k[0]),
            Default::default(),
        );
        assert_eq!(
            v.limit.and_then(|l| l.cgroup).as_deref(),
            Some("/system.slice/stress.service")
        );
    }

    #[test]
    fn interleaved_reports_lend_nothing() {
        let a = "/a";
        let input = format!(
            "[1.0] p invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
[1.1] memory: usage 1024kB, limit 1024kB, failcnt 1
[1.1] Memory cgroup stats for {a}:
[1.2] q invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
[1.3] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg={a},task_memcg={a},task=p,pid=1,uid=0
[1.4] memory: usage 2048kB, limit 2048kB, failcnt 1
[1.4] Memory cgroup stats for /b:
[1.5] Memory cgroup out of memory: Killed process 1 (p) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0
[1.6] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/b,task_memcg=/b,task=q,pid=2,uid=0
[1.7] Memory cgroup out of memory: Killed process 2 (q) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0
"
        );
        let k = kills(&input);
        assert_eq!(k.len(), 2);
        // p's summary is p's; the limit printed in the report now open is /b's.
        assert_eq!(
            k[0].past
                .summary
                .as_ref()
                .and_then(|s| s.oom_memcg.as_deref()),
            Some(a)
        );
        assert_eq!(k[0].limit_bytes, None);
        assert_eq!(
            k[1].past
                .summary
                .as_ref()
                .and_then(|s| s.oom_memcg.as_deref()),
            Some("/b")
        );
        assert_eq!(k[1].limit_bytes, Some(2048 * 1024));
    }

    #[test]
    fn truncated_and_empty() {
        assert!(kills("").is_empty());
        assert!(kills("\n\n[ 1.0] eth0: link up\n").is_empty());
        // The report cut before its kill line: the summary names the victim.
        let cut = HOST_618
            .rsplit_once("[ 3773.673217]")
            .map(|(a, _)| a)
            .unwrap_or_default();
        let k = kills(cut);
        assert_eq!(k.len(), 1);
        assert!(k[0].from_summary_only);
        assert_eq!(
            (k[0].past.kill.pid, k[0].past.kill.anon_rss_kb),
            (18700, None)
        );
        assert_eq!(k[0].limit_bytes, Some(16 << 20));
        // Cut before the summary too: no victim, so no kill.
        let cut = HOST_618
            .rsplit_once("[ 3773.673163]")
            .map(|(a, _)| a)
            .unwrap_or_default();
        assert!(kills(cut).is_empty());
        // Every cut of the report: nothing or the right process.
        for (at, _) in HOST_618.char_indices() {
            for k in kills(&HOST_618[..at]) {
                assert_eq!(k.past.kill.pid, 18700);
            }
        }
        // Unlimited limits are no limit.
        let unlimited = HOST_618.replace("limit 16384kB", "limit 9007199254740988kB");
        assert_eq!(kills(&unlimited)[0].limit_bytes, None);
    }

    /// A cheap stand-in for the fuzz target in `cargo test`: the report
    /// with bytes flipped, dropped and duplicated, through the verdicts.
    #[test]
    fn mutated_reports_never_panic() {
        let base = HOST_618.as_bytes();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..2000 {
            let mut m = base.to_vec();
            for _ in 0..(next() % 8 + 1) {
                if m.is_empty() {
                    break;
                }
                let at = (next() as usize) % m.len();
                match next() % 4 {
                    0 => m[at] = next() as u8,
                    1 => {
                        m.remove(at);
                    }
                    2 => m.insert(at, b"\n[]:;,=()-"[(next() % 10) as usize]),
                    _ => {
                        let end = (at + (next() as usize) % 64).min(m.len());
                        let piece = m[at..end].to_vec();
                        m.splice(at..at, piece);
                    }
                }
            }
            let found = explain_all(&m, Options::default()).unwrap_or_default();
            for item in &found.items {
                let v = match item {
                    Logged::Kill(k) => crate::rules::from_log::verdict_from_log(
                        crate::rules::from_log::from_saved_log(k),
                        Default::default(),
                    ),
                    Logged::NoVictim(r) => {
                        crate::rules::from_log::verdict_from_unfinished(r, Default::default())
                    }
                    Logged::Eviction(e) => crate::rules::from_log::verdict_from_kubelet_eviction(e),
                };
                assert!(v.summary.starts_with("From the k"), "{}", v.summary);
                if let Some(victim) = &v.victim {
                    assert!(matches!(item, Logged::Kill(k) if k.past.kill.pid == victim.pid));
                }
            }
        }
    }

    #[test]
    fn binary_input() {
        assert!(matches!(
            explain(b"\x7fELF\x02\x01\x01\0\0\0"),
            Err(ExplainError::NotText(_))
        ));
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i * 7919 % 251) as u8 | 0x80)
            .collect();
        assert!(matches!(explain(&garbage), Err(ExplainError::NotText(_))));
        // A kill in a file with some binary in it is still a kill.
        let mut mixed = b"\0\x01\xff\n".to_vec();
        mixed.extend_from_slice(HOST_618.as_bytes());
        assert_eq!(explain(&mixed).map(|k| k.len()), Ok(1));
    }
}

/// Every form the reader knows, written from the kernels' and kubelet's
/// print formats (mm/oom_kill.c, mm/memcontrol.c, pkg/kubelet/eviction)
/// with made-up ids: one test per shape people paste.
#[cfg(test)]
mod forms {
    use super::*;
    use crate::{output::verdict::Verdict, rules::attribution, rules::from_log};

    const UID: &str = "6f1c2a9e-3b7d-4c11-9e0a-2b8f5d4c7a10";
    const UID_: &str = "6f1c2a9e_3b7d_4c11_9e0a_2b8f5d4c7a10";
    const CID: &str = "3f9a1c0b7e2d4f6a8b1c3d5e7f9a0b2c4d6e8f0a1b3c5d7e9f1a2b3c4d5e6f70";
    const CID2: &str = "7e0d5c4b3a29180f7e6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c4b3a29180f";

    fn all(input: &str) -> Explained {
        match explain_all(input.as_bytes(), Options::default()) {
            Ok(e) => e,
            Err(e) => panic!("{e}"),
        }
    }

    /// The verdicts `oomtrace explain` prints for `input` (names from the
    /// paste only).
    fn verdicts(input: &str) -> Vec<Verdict> {
        all(input)
            .items
            .iter()
            .map(|i| match i {
                Logged::Kill(k) => from_log::verdict_from_log(
                    from_log::from_saved_log(k),
                    attribution::Observed::default(),
                ),
                Logged::NoVictim(r) => {
                    from_log::verdict_from_unfinished(r, attribution::Observed::default())
                }
                Logged::Eviction(e) => from_log::verdict_from_kubelet_eviction(e),
            })
            .collect()
    }

    fn json(v: &Verdict) -> serde_json::Value {
        serde_json::to_value(v).unwrap_or_default()
    }

    fn summary_line(pod: &str, cid: &str, task: &str, pid: u32) -> String {
        format!("oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset={cid},mems_allowed=0,oom_memcg={pod},task_memcg={pod}/{cid},task={task},pid={pid},uid=999")
    }

    fn kill_line(pid: u32, comm: &str) -> String {
        format!("Memory cgroup out of memory: Killed process {pid} ({comm}) total-vm:208060kB, anon-rss:64296kB, file-rss:9904kB, shmem-rss:0kB, UID:999 pgtables:296kB oom_score_adj:984")
    }

    #[test]
    fn syslog_without_a_host_name() {
        let pod = format!("/kubepods/burstable/pod{UID}");
        let input = format!(
            "Sep  8 06:22:08 kernel: Tasks state (memory values in pages):\n\
             Sep  8 06:22:08 kernel: {}\n\
             Sep  8 06:22:08 kernel: {}\n",
            summary_line(&pod, CID, "gunicorn", 2908),
            kill_line(2908, "gunicorn")
        );
        let v = verdicts(&input);
        assert_eq!(v.len(), 1, "{v:#?}");
        let j = json(&v[0]);
        assert_eq!(j["verdict"], "pod_limit");
        assert_eq!(j["limit"]["cgroup"], pod.as_str());
        assert_eq!(j["pod"]["uid"], UID);
        assert_eq!(j["container"]["id"], CID);
        assert_eq!(j["victim"]["rss_bytes"], (64296 + 9904) * 1024);
    }

    #[test]
    fn a_summary_alone_is_a_kill() {
        let pod = format!("/kubepods/burstable/pod{UID}");
        // Raw /dev/kmsg, and pasted bare: the summary names victim and cgroups.
        for input in [
            format!("6,4242,17534177146,-;{}\n", summary_line(&pod, CID, "python3", 209)),
            format!("{}\n", summary_line(&pod, CID, "python3", 209)),
            format!(
                "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg={pod}/{CID},task=python3,pid=209,uid=0\n"
            ),
        ] {
            let v = verdicts(&input);
            assert_eq!(v.len(), 1, "{input}: {v:#?}");
            let j = json(&v[0]);
            assert_eq!(j["victim"]["pid"], 209, "{input}");
            assert_eq!(j["victim"]["rss_bytes"], serde_json::Value::Null, "{input}");
            assert_eq!(j["pod"]["uid"], UID, "{input}");
            if input.contains("global_oom") {
                assert_eq!((j["verdict"].as_str(), j["kind"].as_str()), (Some("node_pressure"), Some("system_oom")));
            } else {
                assert_eq!(j["verdict"], "pod_limit", "{input}");
                assert_eq!(j["limit"]["cgroup"], pod.as_str());
            }
        }
    }

    #[test]
    fn memcg_kill_lines_without_their_report_are_never_host_processes() {
        let input = format!(
            "[18026.221140] {}\n[18026.223926] {}\n",
            kill_line(140339, "python3"),
            kill_line(141313, "mount")
        );
        let v = verdicts(&input);
        assert_eq!(v.len(), 2);
        for v in &v {
            let j = json(v);
            assert_eq!(j["verdict"], "cgroup_limit", "{j}");
            assert_eq!(j["limit"], serde_json::Value::Null);
            assert_eq!(j["victim"]["cgroup"], serde_json::Value::Null);
            assert!(
                v.summary.contains("does not name the cgroup"),
                "{}",
                v.summary
            );
            assert!(!v.summary.contains("Host process"), "{}", v.summary);
        }
        // A report far earlier in the same paste lends them nothing.
        let scope = format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{CID}.scope");
        let before = format!(
            "[17534.176984] openssl invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=-997\n\
             [17534.177146] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg={scope},task_memcg={scope},task=aws-efs-csi-dri,pid=135564,uid=0\n{input}"
        );
        let v = verdicts(&before);
        assert_eq!(v.len(), 3, "{v:#?}");
        assert_eq!(json(&v[0])["verdict"], "pod_limit");
        assert_eq!(json(&v[1])["verdict"], "cgroup_limit");
        assert_ne!(v[0].incident, v[1].incident);
    }

    #[test]
    fn oom_group_kill_on_v2_systemd_driver() {
        let scope = format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{CID}.scope");
        let host = "Mar  3 10:00:01 node-7 kernel:";
        let input = format!(
            "{host} java invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=985\n\
             {host} memory: usage 524288kB, limit 524288kB, failcnt 90\n\
             {host} Memory cgroup stats for {scope}:\n\
             {host} anon 530000000\n\
             {host} oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=cri-containerd-{CID}.scope,mems_allowed=0,oom_memcg={scope},task_memcg={scope},task=java,pid=500,uid=1000\n\
             {host} {}\n\
             {host} Tasks in {scope} are going to be killed due to memory.oom.group set\n\
             {host} {}\n\
             {host} {}\n\
             {host} {}\n",
            kill_line(500, "java"),
            kill_line(480, "tini"),
            kill_line(501, "sidecar-agent"),
            kill_line(500, "java"),
        );
        let v = verdicts(&input);
        let pids: Vec<u64> = v
            .iter()
            .filter_map(|v| v.victim.as_ref())
            .map(|x| u64::from(x.pid))
            .collect();
        assert_eq!(pids, [500, 480, 501], "one verdict per victim: {v:#?}");
        for v in &v {
            let j = json(v);
            assert_eq!(j["verdict"], "pod_limit", "{j}");
            assert_eq!(j["limit"]["cgroup"], scope.as_str(), "{j}");
            assert_eq!(j["limit"]["limit_bytes"], 512 << 20, "{j}");
            assert_eq!(j["container"]["id"], CID, "{j}");
            assert_eq!(j["incident"], v.incident.as_str());
        }
        assert!(v.iter().all(|x| x.incident == v[0].incident));
    }

    #[test]
    fn rhel7_forms() {
        let pod = format!("/kubepods/burstable/pod{UID}");
        // 3.10: `Task in`, the chosen parent and its killed child, the
        // comm with a space and a slash, `UID` before the sizes, dmesg -T.
        let input = format!(
            "[Thu Dec  7 00:05:15 2017] node invoked oom-killer: gfp_mask=0xd0, order=0, oom_score_adj=999\n\
             [Thu Dec  7 00:05:15 2017] node cpuset={CID} mems_allowed=0\n\
             [Thu Dec  7 00:05:15 2017] Task in {pod}/{CID} killed as a result of limit of {pod}/{CID}\n\
             [Thu Dec  7 00:05:15 2017] memory: usage 262144kB, limit 262144kB, failcnt 4\n\
             [Thu Dec  7 00:05:15 2017] Memory cgroup stats for {pod}/{CID}: cache:0KB rss:262000KB rss_huge:0KB mapped_file:0KB inactive_file:12KB active_file:0KB\n\
             [Thu Dec  7 00:05:15 2017] Memory cgroup out of memory: Kill process 4100 (node /opt/www/s) score 1990 or sacrifice child\n\
             [Thu Dec  7 00:05:15 2017] Killed process 4122 (node /opt/www/p), UID 80, total-vm:1200000kB, anon-rss:250000kB, file-rss:1000kB, shmem-rss:0kB\n"
        );
        let v = verdicts(&input);
        assert_eq!(v.len(), 1, "{v:#?}");
        let j = json(&v[0]);
        assert_eq!(j["victim"]["pid"], 4122);
        assert_eq!(j["victim"]["comm"], "node /opt/www/p");
        assert_eq!(j["verdict"], "pod_limit");
        assert_eq!(j["limit"]["cgroup"], format!("{pod}/{CID}"));
        assert_eq!(j["limit"]["limit_bytes"], 256 << 20);
        assert_eq!(j["evidence"]["chosen"]["pid"], 4100);
        assert_eq!(
            j["memory"]["anon_bytes"],
            serde_json::Value::Null,
            "memory comes from the CLI's Observed"
        );
        assert!(
            v[0].summary.contains("killed this child of it"),
            "{}",
            v[0].summary
        );
        // The same 4.x stats line, summed over the cgroups below the memcg.
        let k = all(&input).items;
        let Some(Logged::Kill(k)) = k.first() else {
            panic!("{k:?}");
        };
        let r = k
            .past
            .summary
            .as_ref()
            .and_then(|s| s.report.as_ref())
            .cloned()
            .unwrap_or_else(|| panic!("{k:?}"));
        assert_eq!(r.stats.get("total_rss"), Some(&(262000 * 1024)));
        // The global form of the same era.
        let v = verdicts(
            "x invoked oom-killer: gfp_mask=0x280da, order=0, oom_score_adj=0\nMem-Info:\n\
             Out of memory: Kill process 1532 (x) score 919 or sacrifice child\n\
             Killed process 1532 (x) total-vm:1641388kB, anon-rss:1595164kB, file-rss:76kB\n",
        );
        assert_eq!(json(&v[0])["kind"], "system_oom");
        assert_eq!(json(&v[0])["evidence"]["chosen"], serde_json::Value::Null);
    }

    #[test]
    fn plain_docker_containers() {
        for (limit, runtime_line) in [
            (format!("/docker/{CID}"), "cgroupfs"),
            (format!("/system.slice/docker-{CID}.scope"), "systemd"),
        ] {
            let input = format!(
                "a invoked oom-killer: gfp_mask=0x24000c0(GFP_KERNEL), order=0, oom_score_adj=0\n\
                 Task in {limit} killed as a result of limit of {limit}\n\
                 memory: usage 20480kB, limit 20480kB, failcnt 1204\n\
                 Memory cgroup out of memory: Kill process 1381 (a) score 1046 or sacrifice child\n\
                 Killed process 1381 (a) total-vm:2121528kB, anon-rss:18624kB, file-rss:2140kB, shmem-rss:0kB\n"
            );
            let v = verdicts(&input);
            let j = json(&v[0]);
            assert_eq!(j["verdict"], "pod_limit", "{runtime_line}: {j}");
            assert_eq!(j["pod"], serde_json::Value::Null);
            assert_eq!(j["container"]["runtime"], "docker");
            assert!(
                v[0].summary
                    .contains("Docker container 3f9a1c0b7e2d hit its memory limit"),
                "{}",
                v[0].summary
            );
        }
        // A host cgroup stays a host cgroup.
        let v = verdicts("Task in /mem2 killed as a result of limit of /mem2\nMemory cgroup out of memory: Kill process 9 (m) score 9 or sacrifice child\nKilled process 9 (m) total-vm:1kB, anon-rss:1kB, file-rss:0kB\n");
        assert_eq!(json(&v[0])["verdict"], "system");
    }

    #[test]
    fn a_report_without_its_victim() {
        let scope = format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/docker-{CID}.scope");
        let input = format!(
            "Jan  5 02:12:02 node kernel: Task in {scope} killed as a result of limit of {scope}\n\
             Jan  5 02:12:02 node kernel: memory: usage 1048576kB, limit 1048576kB, failcnt 189\n\
             Jan  5 02:12:02 node kernel: Memory cgroup stats for {scope}: cache:24KB rss:1048552KB\n"
        );
        let v = verdicts(&input);
        assert_eq!(v.len(), 1, "{v:#?}");
        let j = json(&v[0]);
        assert_eq!(j["victim"], serde_json::Value::Null);
        assert_eq!(j["verdict"], "pod_limit");
        assert_eq!(j["limit"]["cgroup"], scope.as_str());
        assert_eq!(j["pod"]["uid"], UID);
        assert!(
            v[0].summary
                .contains("the log ends before the kernel names the process it killed"),
            "{}",
            v[0].summary
        );
        // A header alone says neither scope nor victim: no verdict, noted.
        let e = all("[ 147.754026] exe invoked oom-killer: gfp_mask=0xc40(GFP_NOFS), order=0, oom_score_adj=-999\n[ 147.765432] CPU: 0 PID: 2052 Comm: exe Not tainted 5.4.17 #1\n");
        assert!(e.items.is_empty());
        assert_eq!(e.without_outcome, [1]);
    }

    #[test]
    fn journald_continuation_lines_and_grep_gaps() {
        let slice = "/azure.slice/agent.slice";
        let pad = " ".repeat(59);
        let input = format!(
            "Apr 17 09:17:11 node kernel: memory: usage 40960kB, limit 40960kB, failcnt 3\n\
             Apr 17 09:17:11 node kernel: Memory cgroup stats for {slice}:\n\
             Apr 17 09:17:11 node kernel: anon 14409728\n\
             {pad}file 135168\n\
             {pad}inactive_file 442368\n"
        );
        let e = all(&input);
        let [Logged::NoVictim(r)] = e.items.as_slice() else {
            panic!("{:?}", e.items);
        };
        let m = r.report.report.as_ref().unwrap_or_else(|| panic!("{r:?}"));
        assert_eq!(m.stats.get("inactive_file"), Some(&442368));
        assert_eq!(r.limit_bytes, Some(40 << 20));
        // `grep -C`: a report before a gap lends nothing to a kill after it.
        let input = "[ 10.0] Task in /a killed as a result of limit of /a\n--\n[ 10.1] Killed process 7 (x) total-vm:1kB, anon-rss:1kB, file-rss:0kB\n";
        let e = all(input);
        assert!(
            e.items.iter().all(|i| !matches!(i, Logged::Kill(_))),
            "a bare kill line after a gap has no reason: {:?}",
            e.items
        );
    }

    #[test]
    fn a_terminal_fold_is_joined() {
        let pod = format!("/kubepods/burstable/pod{UID}");
        let line = summary_line(&pod, CID, "gunicorn", 2908);
        let (a, b) = line.split_at(80);
        let input = format!("{a}\n{b}\n{}\n", kill_line(2908, "gunicorn"));
        let v = verdicts(&input);
        assert_eq!(v.len(), 1, "{v:#?}");
        assert_eq!(json(&v[0])["limit"]["cgroup"], pod.as_str());
        // A cut line followed by a record of its own is not joined.
        let input = format!("{a}\n{}\n", kill_line(2908, "gunicorn"));
        let v = verdicts(&input);
        assert_eq!(json(&v[0])["verdict"], "cgroup_limit");
    }

    #[test]
    fn out_of_order_and_repeated_lines() {
        let l1 = "May  6 21:11:29 w1 kernel: [ 2641.827901] Out of memory: Killed process 5574 (prometheus) total-vm:5164568kB, anon-rss:3984240kB, file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:8328kB oom_score_adj:999";
        let l2 = "May  5 01:32:58 w1 kernel: [698939.066080] Out of memory: Killed process 3362909 (prometheus) total-vm:4205720kB, anon-rss:3069552kB, file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:6348kB oom_score_adj:999";
        // grep over two files of the same node: each kill once.
        let input = format!("messages:{l1}\nmessages-1:{l2}\nkern.log:{l1}\n");
        let v = verdicts(&input);
        let pids: Vec<u32> = v
            .iter()
            .filter_map(|v| v.victim.as_ref())
            .map(|x| x.pid)
            .collect();
        assert_eq!(pids, [5574, 3362909], "{v:#?}");
        assert!(v
            .iter()
            .all(|v| v.kind == Some(crate::output::verdict::PressureKind::SystemOom)));
    }

    #[test]
    fn kill_lines_quoted_by_other_tools() {
        // A Kubernetes event, and node-problem-detector after the kernel's own line.
        let input = format!(
            "LAST SEEN   TYPE      REASON       OBJECT        MESSAGE\n\
             2m          Warning   OOMKilling   node/gke-n1   {}\n\
             Oct 12 19:00:20 n kernel: [ 8523.1] {}\n\
             Oct 12 19:00:20 n node-problem-detector[3240]: I1012 log_monitor.go:160] New status generated: &{{Source:kernel-monitor Events:[{{Severity:warn Reason:OOMKilling Message:{}}}]}}\n",
            kill_line(77, "java"),
            kill_line(78, "python3"),
            kill_line(78, "python3"),
        );
        let v = verdicts(&input);
        let pids: Vec<u32> = v
            .iter()
            .filter_map(|v| v.victim.as_ref())
            .map(|x| x.pid)
            .collect();
        assert_eq!(pids, [77, 78], "{v:#?}");
        assert!(v
            .iter()
            .all(|v| v.verdict == crate::output::verdict::VerdictKind::CgroupLimit));
    }

    #[test]
    fn kubelet_evictions_structured_and_klog() {
        let cid = format!("containerd://{CID}");
        let input = format!(
            "Oct 12 19:34:44 n kubelet[2480]: I1012 19:34:44.999261 2480 eviction_manager.go:374] \"Eviction manager: attempting to reclaim\" resourceName=\"memory\"\n\
             Oct 12 19:34:44 n kubelet[2480]: I1012 19:34:44.999262 2480 eviction_manager.go:374] \"Eviction manager: pods ranked for eviction\" pods=\"[shop/web-1 kube-system/kube-proxy-x]\"\n\
             Oct 12 19:34:45 n kubelet[2480]: I1012 19:34:45.000152 2480 kuberuntime_container.go:709] \"Killing container with a grace period\" pod=\"shop/web-1\" podUID={UID} containerName=\"web\" containerID=\"{cid}\" gracePeriod=30\n\
             Oct 12 19:34:45 n kubelet[2480]: I1012 19:34:45.445172 2480 eviction_manager.go:595] \"Eviction manager: pod is evicted successfully\" pod=\"shop/web-1\"\n\
             I0822 23:51:03.731889 2684 eviction_manager.go:211] eviction manager: attempting to reclaim imagefs\n\
             I0822 23:51:09.000001 2684 eviction_manager.go:317] eviction manager: pod cache-0_data(0c1a5b5e-98c1-11e7-8e52-42010a800002) evicted successfully\n\
             I0822 23:51:09.000002 2684 eviction_manager.go:230] eviction manager: no ranking function for resource imagefs\n"
        );
        let v = verdicts(&input);
        assert_eq!(v.len(), 2, "{v:#?}");
        let a = json(&v[0]);
        assert_eq!(
            (a["verdict"].as_str(), a["kind"].as_str()),
            (Some("node_pressure"), Some("eviction"))
        );
        assert_eq!(a["source"], "kubelet_log");
        assert_eq!(a["victim"], serde_json::Value::Null);
        assert_eq!(a["pod"]["uid"], UID);
        assert_eq!(a["pod"]["namespace"], "shop");
        assert_eq!(a["pod"]["name"], "web-1");
        assert_eq!(a["container"]["name"], "web");
        assert_eq!(a["evidence"]["basis"], "kubelet_log");
        assert_eq!(a["evidence"]["eviction_resource"], "memory");
        assert_eq!(a["evidence"]["grace_s"], 30.0);
        let b = json(&v[1]);
        assert_eq!(b["pod"]["name"], "cache-0");
        assert_eq!(b["pod"]["namespace"], "data");
        assert_eq!(b["evidence"]["eviction_resource"], "imagefs");
        assert!(
            v[1].summary.contains("not a memory kill"),
            "{}",
            v[1].summary
        );
    }

    #[test]
    fn a_nodes_journal_names_the_kernels_kill() {
        let pod = format!("/kubepods/burstable/pod{UID}");
        let input = format!(
            "Oct 12 19:00:20 n kernel: [ 8523.1] {}\n\
             Oct 12 19:00:20 n kernel: [ 8523.2] {}\n\
             Oct 12 19:00:20 n containerd[2388]: time=\"2023-10-12T19:00:20.879932879Z\" level=info msg=\"TaskOOM event container_id:\\\"{CID}\\\"\"\n\
             Oct 12 19:00:21 n kubelet[2480]: I1012 \"SyncLoop (PLEG): event for pod\" pod=\"shop/web-1\" event=&{{ID:{UID} Type:ContainerDied Data:{CID}}}\n\
             Oct 12 19:00:21 n kubelet[2480]: I1012 \"Killing container with a grace period\" pod=\"shop/web-1\" podUID={UID} containerName=\"web\" containerID=\"containerd://{CID2}\" gracePeriod=30\n",
            summary_line(&pod, CID, "gunicorn", 2908),
            kill_line(2908, "gunicorn")
        );
        let e = all(&input);
        assert_eq!(
            e.items.len(),
            1,
            "the runtime's lines join the kernel's kill: {:?}",
            e.items
        );
        assert_eq!(e.names.pod(UID), Some(("shop".into(), "web-1".into())));
        let c = e.names.container(CID2).cloned().unwrap_or_default();
        assert_eq!(c.container.as_deref(), Some("web"));
        assert_eq!(
            e.names
                .container(CID)
                .and_then(|c| c.uid.clone())
                .as_deref(),
            Some(UID)
        );
    }
}
