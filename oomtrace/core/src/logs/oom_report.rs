//! The kernel's own account of an OOM kill, read from `/dev/kmsg`.
//!
//! The tracepoints say who died; these lines add what only the kernel's
//! report carries (the constraint and the memcg that hit its limit), and they
//! are the fallback where the tracepoints cannot be attached. Task names are
//! chosen by the process being killed, so every parser here assumes the comm
//! may try to look like the surrounding syntax.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Constraint {
    /// A memory cgroup hit its limit.
    Memcg,
    /// The whole machine ran out.
    None,
    Cpuset,
    MemoryPolicy,
    Other(String),
}

impl Constraint {
    fn from_kernel(text: &str) -> Self {
        match text {
            "CONSTRAINT_MEMCG" => Constraint::Memcg,
            "CONSTRAINT_NONE" => Constraint::None,
            "CONSTRAINT_CPUSET" => Constraint::Cpuset,
            "CONSTRAINT_MEMORY_POLICY" => Constraint::MemoryPolicy,
            other => Constraint::Other(other.to_owned()),
        }
    }
}

/// The one-line `oom-kill:` summary (4.19+). The kernel rate-limits the OOM
/// report, so a kill may come without one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OomSummary {
    pub constraint: Constraint,
    /// The cgroup whose limit was hit; absent for global OOMs.
    pub oom_memcg: Option<String>,
    pub task_memcg: Option<String>,
    pub task: String,
    pub pid: u32,
    /// `None` when the kernel printed the invalid uid (-1).
    pub uid: Option<u32>,
    /// The report's account of `oom_memcg` when the reader saw it (live
    /// and backlog; never from the summary line alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<MemcgReport>,
}

/// What a memcg OOM report says of the cgroup at its limit: `memory: usage
/// …kB, limit …kB` and the `Memory cgroup stats for /path:` block. The
/// kernel prints it under the OOM lock, before the victim is chosen, having
/// just flushed the counters: the memory as it was at the kill.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemcgReport {
    pub cgroup: String,
    pub usage_kb: Option<u64>,
    pub limit_kb: Option<u64>,
    /// `memory.stat` keys as printed: v2's (`anon`, `file`, …) or v1's
    /// (`rss`, `cache`, …, `total_*`).
    pub stats: BTreeMap<String, u64>,
}

impl MemcgReport {
    /// The cgroup's usage and limit in bytes, as its `memory: usage …kB,
    /// limit …kB` line printed them; no limit when it is the page counter's
    /// maximum.
    pub fn usage_limit_bytes(&self) -> (Option<u64>, Option<u64>) {
        (
            self.usage_kb.map(|kb| kb.saturating_mul(1024)),
            self.limit_kb
                .filter(|&kb| kb < UNLIMITED_KB)
                .map(|kb| kb.saturating_mul(1024)),
        )
    }
}

/// The kernel's page counter maximum (`PAGE_COUNTER_MAX` pages) reads as
/// about 8 EiB in kB: no limit.
const UNLIMITED_KB: u64 = 1 << 52;

/// `memory: usage 16384kB, limit 16384kB, failcnt 19` (v1 and v2 alike).
pub(crate) fn usage_limit(text: &str) -> Option<(u64, u64)> {
    let rest = text.strip_prefix("memory: usage ")?;
    let (usage, rest) = rest.split_once("kB, limit ")?;
    let (limit, _) = rest.split_once("kB")?;
    Some((usage.parse().ok()?, limit.parse().ok()?))
}

/// Follows the log line by line (live: record by record) and hands out
/// what each OOM report says: its start, the summary with the report's
/// memcg part, the kill lines with what the report said of them, and a
/// report that ended without naming a victim. One OOM report is printed
/// under the OOM lock, so a kernel's reports do not interleave; other
/// messages may come between their lines, and a paste may cut, reorder
/// or repeat them, so nothing is lent from one report to another.
#[derive(Debug, Default)]
pub struct ReportReader {
    report: Option<OpenReport>,
    usage_limit: Option<(u64, u64)>,
    memcg: Option<MemcgReport>,
    in_stats: bool,
}

/// What the report being read has said so far.
#[derive(Debug, Default)]
struct OpenReport {
    /// The task whose allocation invoked the OOM killer.
    comm: Option<String>,
    pid: Option<u32>,
    /// A memcg report's lines (`memory: usage`, `Memory cgroup stats`,
    /// `Task in`) or a global one's (`Mem-Info:`) were seen.
    memcg_lines: bool,
    global_lines: bool,
    /// Before 4.19: `Task in /task killed as a result of limit of /limit`.
    task_in: Option<(String, String)>,
    /// Before 5.2: `<why>: Kill process P (comm) score S or sacrifice child`.
    chosen: Option<(Chosen, bool)>,
    /// The report's summary (its oom_memcg is the group kill's limit).
    summary: Option<OomSummary>,
    /// `Tasks in /path are going to be killed due to memory.oom.group set`.
    group: Option<String>,
    /// A kill or summary line came: the report named its victim.
    named: bool,
}

/// The process the kernel chose when it killed a child of it instead
/// (kernels before 5.2 preferred a child with its own memory).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Chosen {
    pub pid: u32,
    pub comm: String,
}

/// A member of a `memory.oom.group` kill: every task of the group's cgroup
/// dies with the victim.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OomGroup {
    /// The group's cgroup: the member lives in it or below it.
    pub cgroup: String,
    /// The memcg whose limit was hit, from the same report's summary.
    pub oom_memcg: Option<String>,
}

/// An OOM report that ended (the next report began, or the input ended)
/// without a kill or summary line: the log does not name its victim.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Unfinished {
    /// The task that invoked the OOM killer (not necessarily the victim).
    pub comm: Option<String>,
    pub pid: Option<u32>,
    /// Memcg when the report printed a memcg's lines, none (global) when
    /// it printed the node's, else unknown.
    pub constraint: Option<Constraint>,
    /// The memcg at its limit (`Task in … limit of`, `Memory cgroup stats for`).
    pub oom_memcg: Option<String>,
    /// Before 4.19: the chosen task's cgroup (`Task in`).
    pub task_memcg: Option<String>,
    pub report: Option<MemcgReport>,
}

/// The phrases a report's lines are known by, found in one pass.
pub(crate) mod anchors {
    use std::sync::LazyLock;

    use aho_corasick::AhoCorasick;

    pub const HEADER: u32 = 1 << 0;
    pub const KILLED: u32 = 1 << 1;
    pub const CHOSEN: u32 = 1 << 2;
    pub const TASK_IN: u32 = 1 << 3;
    /// The kubelet's and containerd's lines (explain::journal).
    pub const JOURNAL: u32 = 1 << 4;

    const PHRASES: [(&str, u32); 9] = [
        (" invoked oom-killer: ", HEADER),
        ("Killed process ", KILLED),
        (": Kill process ", CHOSEN),
        (" killed as a result of limit of ", TASK_IN),
        ("viction manager: ", JOURNAL),
        ("Killing container with a grace period", JOURNAL),
        ("SyncLoop (PLEG)", JOURNAL),
        ("TaskOOM", JOURNAL),
        ("oom-kill:", KILLED),
    ];

    static FINDER: LazyLock<Option<AhoCorasick>> =
        LazyLock::new(|| AhoCorasick::new(PHRASES.iter().map(|(p, _)| p)).ok());

    /// Which phrases `text` holds; every bit when the finder could not be
    /// built (the parsers then look for themselves).
    pub fn of(text: &str) -> u32 {
        let Some(f) = FINDER.as_ref() else {
            return u32::MAX;
        };
        // The phrases do not overlap one another: a plain scan finds each.
        f.find_iter(text).fold(0, |bits, m| {
            bits | PHRASES.get(m.pattern().as_usize()).map_or(0, |p| p.1)
        })
    }
}

impl ReportReader {
    /// Every summary, kill and report boundary in one line of kernel text.
    pub fn feed(&mut self, text: &str) -> Vec<OomLine> {
        self.feed_with(text, anchors::of(text))
    }

    /// [`feed`](Self::feed), with the phrases already looked for.
    pub(crate) fn feed_with(&mut self, text: &str, found: u32) -> Vec<OomLine> {
        let text = text.trim_end_matches(['\n', '\r']);
        let mut out = Vec::new();
        let header = match found & anchors::HEADER {
            0 => None,
            _ => text.rsplit_once(" invoked oom-killer: "),
        };
        if let Some((comm, _)) = header {
            self.end_report(&mut out);
            self.report = Some(OpenReport {
                comm: Some(comm.to_owned()),
                ..OpenReport::default()
            });
            out.push(OomLine::Start);
            return out;
        }
        if let Some(ul) = usage_limit(text) {
            // The first is the memcg's own; v1 follows with memory+swap and kmem.
            if self.memcg.is_none() {
                self.usage_limit.get_or_insert(ul);
            }
            self.open().memcg_lines = true;
            return out;
        }
        if let Some(rest) = text.strip_prefix("Memory cgroup stats for ") {
            self.stats_header(rest);
            return out;
        }
        if self.in_stats {
            if text.starts_with("Tasks state") || text.starts_with("[ pid ]") {
                self.in_stats = false;
                return out;
            }
            if self.stats_lines(text) {
                return out;
            }
        }
        if let Some(pid) = cpu_line_pid(text) {
            if let Some(r) = self.report.as_mut() {
                r.pid.get_or_insert(pid);
            }
            return out;
        }
        if text == "Mem-Info:" {
            self.open().global_lines = true;
            return out;
        }
        if let Some(rest) = text
            .strip_prefix("Task in ")
            .filter(|_| found & anchors::TASK_IN != 0)
        {
            if let Some((task, limit)) = rest.split_once(" killed as a result of limit of ") {
                let r = self.open();
                r.task_in = Some((task.to_owned(), limit.to_owned()));
                r.memcg_lines = true;
            }
            return out;
        }
        if let Some(path) = text
            .strip_prefix("Tasks in ")
            .and_then(|r| r.strip_suffix(" are going to be killed due to memory.oom.group set"))
        {
            self.open().group = Some(path.to_owned());
            return out;
        }
        if let Some(chosen) = parse_chosen(text).filter(|_| found & anchors::CHOSEN != 0) {
            self.open().chosen = Some(chosen);
            return out;
        }
        if found & anchors::KILLED == 0 {
            return out;
        }
        let parsed = parse_oom_line(text).or_else(|| {
            // Before 5.2 the kill line carried no reason: the report's
            // `Kill process` line (or its memcg or node lines) gave it.
            let r = self.report.as_ref()?;
            let memcg = match &r.chosen {
                Some((_, memcg)) => *memcg,
                None if r.memcg_lines => true,
                None if r.global_lines => false,
                None => return None,
            };
            parse_bare_kill(text, memcg).map(OomLine::Kill)
        });
        match parsed {
            Some(OomLine::Summary(mut s)) => {
                let memcg = self.memcg.take();
                s.report = memcg.filter(|m| s.oom_memcg.as_deref() == Some(m.cgroup.as_str()));
                self.usage_limit = None;
                self.in_stats = false;
                let r = self.open();
                r.named = true;
                r.summary = Some(s.clone());
                out.push(OomLine::Summary(s));
            }
            Some(OomLine::Kill(mut kill)) => {
                let memcg = self.memcg.clone();
                let r = self.open();
                r.named = true;
                if let Some((chosen, _)) = r.chosen.as_ref().filter(|(c, _)| c.pid != kill.pid) {
                    kill.chosen = Some(chosen.clone());
                }
                if let Some(cgroup) = &r.group {
                    kill.group = Some(OomGroup {
                        cgroup: cgroup.clone(),
                        oom_memcg: r.summary.as_ref().and_then(|s| s.oom_memcg.clone()),
                    });
                }
                // Before 4.19 the paths were on the `Task in` line: the
                // report's summary, for the kill the report made.
                let legacy = match (&r.task_in, &r.summary) {
                    (Some((task, limit)), None) if kill.memcg && kill.group.is_none() => {
                        Some(OomSummary {
                            constraint: Constraint::Memcg,
                            oom_memcg: Some(limit.clone()),
                            task_memcg: Some(task.clone()),
                            task: kill.comm.clone(),
                            pid: kill.pid,
                            uid: None,
                            report: memcg.filter(|m| &m.cgroup == limit),
                        })
                    }
                    _ => None,
                };
                if let Some(s) = legacy {
                    out.push(OomLine::Summary(s));
                }
                out.push(OomLine::Kill(kill));
            }
            Some(other) => out.push(other),
            None => {}
        }
        out
    }

    /// The input ended, or a gap in it (`--` between `grep -C` matches):
    /// what follows belongs to no report read so far.
    pub fn finish(&mut self) -> Vec<OomLine> {
        let mut out = Vec::new();
        self.end_report(&mut out);
        out
    }

    fn end_report(&mut self, out: &mut Vec<OomLine>) {
        let memcg = self.memcg.take();
        let usage_limit = self.usage_limit.take();
        self.in_stats = false;
        let Some(r) = self.report.take() else {
            return;
        };
        if r.named {
            return;
        }
        let oom_memcg = r
            .task_in
            .as_ref()
            .map(|(_, limit)| limit.clone())
            .or_else(|| memcg.as_ref().map(|m| m.cgroup.clone()));
        let constraint = if r.memcg_lines {
            Some(Constraint::Memcg)
        } else if r.global_lines {
            Some(Constraint::None)
        } else {
            r.chosen.as_ref().map(|(_, memcg)| match memcg {
                true => Constraint::Memcg,
                false => Constraint::None,
            })
        };
        let report = match memcg {
            Some(m) => Some(m),
            // 4.x: the stats were on their own line; the usage still counts.
            None => oom_memcg
                .as_ref()
                .zip(usage_limit)
                .map(|(c, (u, l))| MemcgReport {
                    cgroup: c.clone(),
                    usage_kb: Some(u),
                    limit_kb: Some(l),
                    stats: BTreeMap::new(),
                }),
        };
        out.push(OomLine::Unfinished(Unfinished {
            comm: r.comm,
            pid: r.pid,
            constraint,
            task_memcg: r.task_in.map(|(task, _)| task),
            report: report.filter(|m| oom_memcg.as_deref() == Some(m.cgroup.as_str())),
            oom_memcg,
        }));
    }

    /// A report's lines may come without their header (a paste that starts
    /// mid-report): they open one.
    fn open(&mut self) -> &mut OpenReport {
        self.report.get_or_insert_with(OpenReport::default)
    }

    fn stats_header(&mut self, rest: &str) {
        self.in_stats = false;
        self.open().memcg_lines = true;
        if let Some(m) = self.memcg.as_mut() {
            // 4.x prints a line for every cgroup below the memcg too, each
            // with its own counters: their sum is the memcg's hierarchical
            // total, as v1's `total_*` keys are.
            if let Some((path, stats)) = rest.split_once(": ") {
                let below = path
                    .strip_prefix(m.cgroup.as_str())
                    .is_some_and(|r| r.starts_with('/') || m.cgroup == "/");
                if below && !m.stats.is_empty() {
                    for (k, v) in one_line_stats(stats) {
                        let total = m.stats.entry(k).or_insert(0);
                        *total = total.saturating_add(v);
                    }
                }
            }
            return;
        }
        let (usage_kb, limit_kb) = self.usage_limit.unzip();
        // 6.x ends the path with `:` and prints the stats after it (on
        // records or lines of their own); 4.x/5.x put `cache:…KB rss:…KB`
        // on the same line.
        if let Some(path) = rest.strip_suffix(':') {
            self.memcg = Some(MemcgReport {
                cgroup: path.to_owned(),
                usage_kb,
                limit_kb,
                stats: BTreeMap::new(),
            });
            self.in_stats = true;
        } else if let Some((path, stats)) = rest.split_once(": ") {
            self.memcg = Some(MemcgReport {
                cgroup: path.to_owned(),
                usage_kb,
                limit_kb,
                stats: one_line_stats(stats),
            });
        }
    }

    /// 6.1 prints the block as one record of lines (cut at the record's
    /// size limit: its last line may be a fragment), 6.18 a record per
    /// line (other messages may come between). Every line that is `key
    /// value` counts, the first value of a key wins; anything else is
    /// skipped, up to the task table or the summary.
    fn stats_lines(&mut self, text: &str) -> bool {
        let Some(m) = self.memcg.as_mut() else {
            return false;
        };
        let mut any = false;
        for l in text.lines() {
            let Some((k, v)) = l.trim().split_once(' ') else {
                continue;
            };
            if let (true, Ok(v)) = (is_stat_key(k), v.trim().parse::<u64>()) {
                m.stats.entry(k.to_owned()).or_insert(v);
                any = true;
            }
        }
        any
    }
}

fn is_stat_key(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `cache:0KB rss:980KB rss_huge:0KB …` (4.x and v1 5.x: one cgroup's own
/// counters) in bytes, keyed `total_*` as v1's hierarchical counters are
/// (the lines of the cgroups below are added in).
fn one_line_stats(text: &str) -> BTreeMap<String, u64> {
    text.split_whitespace()
        .filter_map(|t| {
            let (k, v) = t.split_once(':')?;
            let kb: u64 = v.strip_suffix("KB")?.parse().ok()?;
            is_stat_key(k).then(|| (format!("total_{k}"), kb.saturating_mul(1024)))
        })
        .collect()
}

/// `CPU: 0 PID: 18700 Comm: …` (6.x: `CPU: 0 UID: 0 PID: …`).
fn cpu_line_pid(text: &str) -> Option<u32> {
    let rest = text.strip_prefix("CPU: ")?;
    let (_, after) = rest.split_once(" PID: ")?;
    let (pid, _) = after.split_once(" Comm: ")?;
    pid.parse().ok()
}

/// `Memory cgroup out of memory: Kill process 1234 (java) score 1995 or
/// sacrifice child` (before 5.2): the process chosen, and whether a memcg's
/// limit chose it.
fn parse_chosen(text: &str) -> Option<(Chosen, bool)> {
    let (why, rest) = text.split_once(": Kill process ")?;
    let memcg = match why {
        "Memory cgroup out of memory" => true,
        w if w.starts_with("Out of memory") => false,
        _ => return None,
    };
    let (pid, rest) = rest.split_once(" (")?;
    let at = rest.rfind(") score ")?;
    let comm = rest.get(..at)?;
    Some((
        Chosen {
            pid: pid.parse().ok()?,
            comm: comm.to_owned(),
        },
        memcg,
    ))
}

/// The `Killed process` line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OomKill {
    /// Whether a memory cgroup's limit (rather than the machine) caused it.
    pub memcg: bool,
    pub pid: u32,
    pub comm: String,
    pub total_vm_kb: Option<u64>,
    pub anon_rss_kb: Option<u64>,
    pub file_rss_kb: Option<u64>,
    pub shmem_rss_kb: Option<u64>,
    pub oom_score_adj: Option<i32>,
    /// Before 5.2: the process the kernel chose, when it killed a child of
    /// it instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen: Option<Chosen>,
    /// A member of a `memory.oom.group` kill (the first victim's own line
    /// comes before the group's and has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<OomGroup>,
}

impl OomKill {
    /// A kill known by its process alone: none of its numbers read.
    pub fn unread(memcg: bool, pid: u32, comm: String) -> OomKill {
        OomKill {
            memcg,
            pid,
            comm,
            total_vm_kb: None,
            anon_rss_kb: None,
            file_rss_kb: None,
            shmem_rss_kb: None,
            oom_score_adj: None,
            chosen: None,
            group: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OomLine {
    /// `… invoked oom-killer:`: a report begins.
    Start,
    Summary(OomSummary),
    Kill(OomKill),
    /// A report ended without naming its victim.
    Unfinished(Unfinished),
}

/// Recognises the summary and kill lines in a record's text; `None` for any
/// other line and for lines too damaged to attribute.
pub fn parse_oom_line(text: &str) -> Option<OomLine> {
    let text = text.trim_end_matches(['\n', '\r']);
    if let Some(body) = text.strip_prefix("oom-kill:") {
        return parse_summary(body).map(OomLine::Summary);
    }
    parse_kill(text).map(OomLine::Kill)
}

/// `constraint=…,nodemask=…[,cpuset=…,mems_allowed=…],oom_memcg=…|global_oom,task_memcg=…,task=…,pid=…,uid=…`
///
/// The tail `,task=%s,pid=%d,uid=%d` is fixed by the kernel (one `pr_cont`,
/// since the line was introduced in 4.19), so pid and uid are taken from the
/// right, where whatever the comm contains cannot reach, and the comm is
/// everything between the first `task=` key and `,pid=`. A line without the
/// uid was cut (at the record size limit, or by another CPU's printk
/// splitting the `pr_cont` pieces) and its pid digits may be incomplete.
fn parse_summary(body: &str) -> Option<OomSummary> {
    let (rest, uid) = body.rsplit_once(",uid=")?;
    let uid = parse_uid(uid)?;
    let (head, pid) = rest.rsplit_once(",pid=")?;
    let pid = pid.parse().ok()?;

    let mut pairs: Vec<(&str, String)> = Vec::new();
    let mut task = None;
    let mut pieces = head.split(',');
    while let Some(piece) = pieces.next() {
        let key_value = piece.split_once('=').filter(|(k, _)| is_key(k));
        match key_value {
            Some(("task", first)) => {
                let mut comm = first.to_owned();
                for more in pieces.by_ref() {
                    comm.push(',');
                    comm.push_str(more);
                }
                task = Some(comm);
            }
            Some((key, value)) => pairs.push((key, value.to_owned())),
            None if piece == "global_oom" => {}
            None => {
                // Node lists (`mems_allowed=0-1,4`) and cgroup names may
                // contain commas; such a piece continues the previous value.
                let (_, value) = pairs.last_mut()?;
                value.push(',');
                value.push_str(piece);
            }
        }
    }
    let value = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    };
    Some(OomSummary {
        constraint: Constraint::from_kernel(&value("constraint")?),
        oom_memcg: value("oom_memcg"),
        task_memcg: value("task_memcg"),
        task: task?,
        pid,
        uid,
        report: None,
    })
}

fn is_key(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

/// The kernel prints the uid with `%d`, so the invalid uid (`(uid_t)-1`)
/// arrives as `-1`. Outer `None`: not a number; inner: the invalid uid.
fn parse_uid(text: &str) -> Option<Option<u32>> {
    match text {
        "-1" | "4294967295" => Some(None),
        _ => text.parse().ok().map(Some),
    }
}

/// `<why>: Killed process <pid> (<comm>) total-vm:…kB, anon-rss:…kB, file-rss:…kB, shmem-rss:…kB, UID:… pgtables:…kB oom_score_adj:…`
///
/// 4.x kernels printed a bare `Killed process` without the reason; memcg
/// cannot be told from global there, so that form is not recognised. Early
/// 5.x lines lack `UID:`, `pgtables:` and `oom_score_adj:`, which then stay
/// `None`.
fn parse_kill(text: &str) -> Option<OomKill> {
    let (reason, rest) = text.split_once(": Killed process ")?;
    let memcg = match reason {
        "Memory cgroup out of memory" => true,
        // Also "Out of memory (oom_kill_allocating_task)".
        r if r.starts_with("Out of memory") => false,
        _ => return None,
    };
    kill_body(rest, memcg)
}

/// A `Killed process …` line without its reason (kernels before 5.2), when
/// the report said which kind of OOM it is.
pub fn parse_bare_kill(text: &str, memcg: bool) -> Option<OomKill> {
    kill_body(text.strip_prefix("Killed process ")?, memcg)
}

/// `<pid> (<comm>) total-vm:…` and RHEL 7's `<pid> (<comm>), UID 80,
/// total-vm:…`.
fn kill_body(rest: &str, memcg: bool) -> Option<OomKill> {
    let (pid, rest) = rest.split_once(" (")?;
    let pid = pid.parse().ok()?;
    // The comm may contain ") total-vm:" itself, but the kernel's own one
    // comes last. Without it the line was cut, possibly inside a comm that
    // contains `)`, and no comm can be trusted.
    let at = [") total-vm:", "), UID "]
        .iter()
        .filter_map(|end| rest.rfind(end))
        .max()?;
    let (comm, stats) = (rest.get(..at)?, rest.get(at + 1..)?);
    let mut kill = OomKill::unread(memcg, pid, comm.to_owned());
    for token in stats.split([',', ' ']).filter(|t| !t.is_empty()) {
        let Some((key, value)) = token.split_once(':') else {
            continue;
        };
        let kb = || value.strip_suffix("kB").and_then(|v| v.parse().ok());
        match key {
            "total-vm" => kill.total_vm_kb = kb(),
            "anon-rss" => kill.anon_rss_kb = kb(),
            "file-rss" => kill.file_rss_kb = kb(),
            "shmem-rss" => kill.shmem_rss_kb = kb(),
            "oom_score_adj" => kill.oom_score_adj = value.parse().ok(),
            _ => {}
        }
    }
    Some(kill)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::kmsg::{parse_record, KmsgRecord};

    // Seen on this machine (6.18, cgroup v1 memcg with a 32 MiB limit).
    const REAL_SUMMARY: &str = "6,419,367390370,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/parsework-test,task_memcg=/parsework-test,task=python3,pid=6979,uid=0";
    const REAL_KILL: &str = "3,420,367390388,-;Memory cgroup out of memory: Killed process 6979 (python3) total-vm:278712kB, anon-rss:32512kB, file-rss:6652kB, shmem-rss:0kB, UID:0 pgtables:120kB oom_score_adj:0";
    // Same, with the comm set to "odd (x) y=1,z" and to "naïve\tool".
    const REAL_ODD_SUMMARY: &str = "6,500,367472636,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/parsework-test,task_memcg=/parsework-test,task=odd (x) y=1,z,pid=6981,uid=0";
    const REAL_ODD_KILL: &str = "3,501,367472652,-;Memory cgroup out of memory: Killed process 6981 (odd (x) y=1,z) total-vm:278716kB, anon-rss:32512kB, file-rss:6704kB, shmem-rss:0kB, UID:0 pgtables:120kB oom_score_adj:0";
    const REAL_ESCAPED_KILL: &str = "3,582,377105175,-;Memory cgroup out of memory: Killed process 7244 (na\\xc3\\xafve\\x5ctool) total-vm:278716kB, anon-rss:32512kB, file-rss:6704kB, shmem-rss:0kB, UID:0 pgtables:128kB oom_score_adj:0";

    const KUBE_MEMCG: &str = "/kubepods/burstable/pod6f1c3a2e-8b4d-4c9e-a1f0-123456789abc/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn record(line: &str) -> KmsgRecord {
        match parse_record(line) {
            Ok(r) => r,
            Err(e) => panic!("{e}: {line}"),
        }
    }

    fn summary(text: &str) -> OomSummary {
        match parse_oom_line(text) {
            Some(OomLine::Summary(s)) => s,
            other => panic!("not a summary: {other:?} from {text}"),
        }
    }

    fn kill(text: &str) -> OomKill {
        match parse_oom_line(text) {
            Some(OomLine::Kill(k)) => k,
            other => panic!("not a kill: {other:?} from {text}"),
        }
    }

    #[test]
    fn real_records_from_this_machine() {
        let r = record(REAL_SUMMARY);
        assert_eq!((r.seq, r.ts_us), (419, 367_390_370));
        assert_eq!(
            summary(&r.text),
            OomSummary {
                constraint: Constraint::Memcg,
                oom_memcg: Some("/parsework-test".into()),
                task_memcg: Some("/parsework-test".into()),
                task: "python3".into(),
                pid: 6979,
                uid: Some(0),
                report: None,
            }
        );
        assert_eq!(
            kill(&record(REAL_KILL).text),
            OomKill {
                memcg: true,
                pid: 6979,
                comm: "python3".into(),
                total_vm_kb: Some(278_712),
                anon_rss_kb: Some(32_512),
                file_rss_kb: Some(6_652),
                shmem_rss_kb: Some(0),
                oom_score_adj: Some(0),
                chosen: None,
                group: None,
            }
        );
    }

    #[test]
    fn real_odd_comm_with_comma_equals_and_parens() {
        let s = summary(&record(REAL_ODD_SUMMARY).text);
        assert_eq!(s.task, "odd (x) y=1,z");
        assert_eq!((s.pid, s.uid), (6981, Some(0)));
        assert_eq!(s.task_memcg.as_deref(), Some("/parsework-test"));
        let k = kill(&record(REAL_ODD_KILL).text);
        assert_eq!(k.comm, "odd (x) y=1,z");
        assert_eq!(k.file_rss_kb, Some(6_704));
    }

    #[test]
    fn escapes_are_decoded() {
        let k = kill(&record(REAL_ESCAPED_KILL).text);
        assert_eq!(k.comm, "naïve\\tool");
        assert_eq!(
            record("6,91,137226,-;rcu: \\x09RCU restricting").text,
            "rcu: \tRCU restricting"
        );
        // Not an escape: left alone rather than guessed at.
        assert_eq!(record("6,1,1,-;a\\xZZ \\x4").text, "a\\xZZ \\x4");
        // Bytes that are not UTF-8 do not fail the record, and read as
        // the ring buffer's and cgroupfs's names do.
        assert_eq!(record("6,1,1,-;bad \\xff end").text, "bad \\xff end");
    }

    #[test]
    fn summary_in_a_kubernetes_pod_5x_v1() {
        let text = format!(
            "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset={cid},mems_allowed=0,\
             oom_memcg={KUBE_MEMCG},task_memcg={KUBE_MEMCG},task=java,pid=31337,uid=1000",
            cid = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        );
        let s = summary(&text);
        assert_eq!(s.constraint, Constraint::Memcg);
        assert_eq!(s.oom_memcg.as_deref(), Some(KUBE_MEMCG));
        assert_eq!(s.task_memcg.as_deref(), Some(KUBE_MEMCG));
        assert_eq!((s.task.as_str(), s.pid, s.uid), ("java", 31337, Some(1000)));
    }

    #[test]
    fn summary_pod_limit_below_container_6x_v2() {
        // The pod's limit was hit while the victim sits in one of its containers.
        let pod = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod6f1c3a2e_8b4d_4c9e_a1f0_123456789abc.slice";
        let text = format!(
            "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0-1,\
             oom_memcg={pod},task_memcg={pod}/cri-containerd-abc.scope,task=node,pid=4242,uid=65534"
        );
        let s = summary(&text);
        assert_eq!(s.oom_memcg.as_deref(), Some(pod));
        assert_eq!(
            s.task_memcg,
            Some(format!("{pod}/cri-containerd-abc.scope"))
        );
        assert_eq!(s.uid, Some(65534));
    }

    #[test]
    fn global_summary() {
        let s = summary(
            "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,\
             task_memcg=/user.slice/user-1000.slice/session-3.scope,task=stress-ng-vm,pid=2912,uid=1000",
        );
        assert_eq!(
            s,
            OomSummary {
                constraint: Constraint::None,
                oom_memcg: None,
                task_memcg: Some("/user.slice/user-1000.slice/session-3.scope".into()),
                task: "stress-ng-vm".into(),
                pid: 2912,
                uid: Some(1000),
                report: None,
            }
        );
    }

    #[test]
    fn summary_variants() {
        // No cpuset support compiled in, multi-node masks with commas, other
        // constraints, and a key order the parser has not seen.
        let s = summary(
            "oom-kill:constraint=CONSTRAINT_CPUSET,nodemask=0-1,3,mems_allowed=0,2-3,\
             oom_memcg=/a,b,task_memcg=/a,b/c,task=x,pid=1,uid=0",
        );
        assert_eq!(s.constraint, Constraint::Cpuset);
        assert_eq!(s.oom_memcg.as_deref(), Some("/a,b"));
        assert_eq!(s.task_memcg.as_deref(), Some("/a,b/c"));
        let s = summary(
            "oom-kill:nodemask=(null),constraint=CONSTRAINT_MEMORY_POLICY,task=x,pid=1,uid=7",
        );
        assert_eq!((s.constraint, s.uid), (Constraint::MemoryPolicy, Some(7)));
        let s = summary("oom-kill:seq=4,constraint=CONSTRAINT_FUTURE,task=x,pid=1,uid=-1");
        assert_eq!(s.constraint, Constraint::Other("CONSTRAINT_FUTURE".into()));
        assert_eq!(s.uid, None);
    }

    #[test]
    fn summary_comm_cannot_spoof_fields() {
        let s = summary(
            "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),oom_memcg=/real,\
             task_memcg=/real,task=a,task_memcg=/fake,pid=9,pid=77,uid=5",
        );
        assert_eq!(s.task, "a,task_memcg=/fake,pid=9");
        assert_eq!(s.task_memcg.as_deref(), Some("/real"));
        assert_eq!((s.pid, s.uid), (77, Some(5)));
        let s = summary(
            "oom-kill:constraint=CONSTRAINT_NONE,global_oom,task_memcg=/,task=,pid=3,uid=0",
        );
        assert_eq!(s.task, "");
        let s = summary(
            "oom-kill:constraint=CONSTRAINT_NONE,task_memcg=/,task=my task=1 (x),pid=3,uid=0",
        );
        assert_eq!(s.task, "my task=1 (x)");
    }

    #[test]
    fn damaged_summaries() {
        for text in [
            "oom-kill:",
            "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kubepods/bu",
            "oom-kill:constraint=CONSTRAINT_MEMCG,task_memcg=/x,task=python3,pid=12",
            "oom-kill:constraint=CONSTRAINT_MEMCG,task_memcg=/x,task=python3,pid=12,uid=",
            "oom-kill:constraint=CONSTRAINT_MEMCG,task_memcg=/x,task=python3,pid=,uid=0",
            "oom-kill:constraint=CONSTRAINT_MEMCG,task_memcg=/x,task=python3,pid=-1,uid=0",
            "oom-kill:task_memcg=/x,task=python3,pid=12,uid=0",
            "oom-kill:constraint=CONSTRAINT_MEMCG,task_memcg=/x,pid=12,uid=0",
            "oom-kill:stray,constraint=CONSTRAINT_MEMCG,task=x,pid=12,uid=0",
            "oom-kill:constraint=CONSTRAINT_MEMCG,task=x,pid=12,uid=zero",
            "oom-kill:constraint=CONSTRAINT_MEMCG,task=x,pid=99999999999,uid=0",
            "oom-kill:constraint=CONSTRAINT_MEMCG,task=x,pid=1,uid=-2",
            // The first pr_cont piece alone, as a printk race can leave it.
            "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null)",
            ",task=python3,pid=6979,uid=0",
        ] {
            assert_eq!(parse_oom_line(text), None, "{text}");
        }
    }

    #[test]
    fn kill_lines_5x_6x() {
        let global = kill(
            "Out of memory: Killed process 2912 (stress-ng-vm) total-vm:1052960kB, anon-rss:1023736kB, \
             file-rss:4kB, shmem-rss:32kB, UID:1000 pgtables:2068kB oom_score_adj:1000",
        );
        assert_eq!(
            global,
            OomKill {
                memcg: false,
                pid: 2912,
                comm: "stress-ng-vm".into(),
                total_vm_kb: Some(1_052_960),
                anon_rss_kb: Some(1_023_736),
                file_rss_kb: Some(4),
                shmem_rss_kb: Some(32),
                oom_score_adj: Some(1000),
                chosen: None,
                group: None,
            }
        );
        let allocating = kill(
            "Out of memory (oom_kill_allocating_task): Killed process 77 (a) total-vm:1kB, \
             anon-rss:0kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:-998",
        );
        assert!(!allocating.memcg);
        assert_eq!(allocating.oom_score_adj, Some(-998));
        // Early 5.x line, before UID/pgtables/oom_score_adj were added.
        let older = kill(
            "Memory cgroup out of memory: Killed process 1234 (python3) total-vm:123kB, \
             anon-rss:456kB, file-rss:0kB, shmem-rss:0kB",
        );
        assert!(older.memcg);
        assert_eq!(
            (older.total_vm_kb, older.shmem_rss_kb, older.oom_score_adj),
            (Some(123), Some(0), None)
        );
    }

    #[test]
    fn kill_comm_cannot_spoof_stats() {
        let k = kill(
            "Memory cgroup out of memory: Killed process 5 (x) total-vm:1kB) total-vm:2kB, \
             anon-rss:3kB, file-rss:4kB, shmem-rss:5kB, UID:0 pgtables:6kB oom_score_adj:7",
        );
        assert_eq!(k.comm, "x) total-vm:1kB");
        assert_eq!((k.total_vm_kb, k.oom_score_adj), (Some(2), Some(7)));
        let k = kill("Out of memory: Killed process 5 ((sd-pam)) total-vm:1kB");
        assert_eq!(k.comm, "(sd-pam)");
        let k = kill("Out of memory: Killed process 5 () total-vm:1kB");
        assert_eq!(k.comm, "");
    }

    #[test]
    fn truncated_kill_lines() {
        let k = kill("Memory cgroup out of memory: Killed process 1234 (python3) total-vm:278712kB, anon-rss:325");
        assert_eq!(
            (k.total_vm_kb, k.anon_rss_kb, k.file_rss_kb),
            (Some(278_712), None, None)
        );
        let k = kill("Memory cgroup out of memory: Killed process 1234 (python3) total-vm:");
        assert_eq!((k.comm.as_str(), k.total_vm_kb), ("python3", None));
        for cut in [
            "Memory cgroup out of memory: Killed process 1234 (python3) tot",
            "Memory cgroup out of memory: Killed process 1234 (python3)",
            "Memory cgroup out of memory: Killed process 1234 (odd (x) ",
            "Memory cgroup out of memory: Killed process 1234 (odd (x)",
            "Memory cgroup out of memory: Killed process 1234 (odd (x) y",
            "Memory cgroup out of memory: Killed process 1234 (pyth",
            "Memory cgroup out of memory: Killed process 1234",
            "Memory cgroup out of memory: Killed process 12",
            "Memory cgroup out of memory: Killed process ",
            "Memory cgroup out of memory: Killed proc",
        ] {
            assert_eq!(parse_oom_line(cut), None, "{cut}");
        }
    }

    #[test]
    fn unrelated_and_garbage_lines() {
        for text in [
            "",
            "python3 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
            "memory: usage 32768kB, limit 32768kB, failcnt 59",
            "oom_reaper: reaped process 6979 (python3), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB",
            "Killed process 1234 (python3) total-vm:123kB, anon-rss:456kB, file-rss:0kB, shmem-rss:0kB",
            "Memory cgroup out of memory: Kill process 1234 (python3) score 1000 or sacrifice child",
            "Something else: Killed process 1 (init) total-vm:1kB",
            "Memory cgroup out of memory: Killed process x (python3) total-vm:1kB",
            "Memory cgroup out of memory: Killed process -1 (python3) total-vm:1kB",
            "oom-kill",
            " oom-kill:constraint=CONSTRAINT_NONE,task=x,pid=1,uid=0",
            "\u{0}\u{1}💥; Killed process (",
            "💥: Killed process 💥 (💥) total-vm:💥kB",
        ] {
            assert_eq!(parse_oom_line(text), None, "{text:?}");
        }
    }

    #[test]
    fn non_ascii_values() {
        let k = kill("Out of memory: Killed process 9 (💥 ü) total-vm:1💥kB, anon-rss:2kB");
        assert_eq!(
            (k.comm.as_str(), k.total_vm_kb, k.anon_rss_kb),
            ("💥 ü", None, Some(2))
        );
        let s = summary(
            "oom-kill:constraint=CONSTRAINT_MEMCG,oom_memcg=/ü,task_memcg=/ü,task=💥,pid=1,uid=0",
        );
        assert_eq!(
            (s.task.as_str(), s.oom_memcg.as_deref()),
            ("💥", Some("/ü"))
        );
    }

    /// A record cut anywhere (the kernel truncates at its record size limit,
    /// and printk races split `pr_cont` pieces) must never name the wrong
    /// process: either nothing, or the right pid and comm.
    #[test]
    fn every_truncation_is_none_or_right() {
        let lines = [
            (REAL_SUMMARY, 6979, "python3"),
            (REAL_KILL, 6979, "python3"),
            (REAL_ODD_SUMMARY, 6981, "odd (x) y=1,z"),
            (REAL_ODD_KILL, 6981, "odd (x) y=1,z"),
            (REAL_ESCAPED_KILL, 7244, "naïve\\tool"),
        ];
        for (line, pid, comm) in lines {
            let text = record(line).text;
            for (cut, _) in text.char_indices().chain([(text.len(), ' ')]) {
                let prefix = &text[..cut];
                let found = match parse_oom_line(prefix) {
                    Some(OomLine::Summary(s)) => (s.pid, s.task),
                    Some(OomLine::Kill(k)) => (k.pid, k.comm),
                    _ => continue,
                };
                assert_eq!(found, (pid, comm.to_owned()), "{prefix}");
            }
            for (cut, _) in line.char_indices() {
                // Only must not panic; a cut header is an error, a cut text
                // is a shorter record.
                let _ = parse_record(&line[..cut]);
            }
        }
    }

    /// Every summary and kill line the reader hands out for a raw log.
    fn read_log(log: &str) -> Vec<OomLine> {
        let mut r = ReportReader::default();
        log.lines()
            .filter_map(|l| parse_record(l).ok())
            .flat_map(|rec| r.feed(&rec.text))
            .filter(|l| matches!(l, OomLine::Summary(_) | OomLine::Kill(_)))
            .collect()
    }

    #[test]
    fn v1_report_on_6_18_gives_the_stats_of_the_memcg_at_its_limit() {
        // Captured on the host (cgroup v1): rate-limited kills (kill lines
        // only), then a container's kill and a pod's kill with reports.
        let lines = read_log(include_str!(
            "../../../tests/fixtures/explain/host-6.18-kmsg.txt"
        ));
        let summaries: Vec<&OomSummary> = lines
            .iter()
            .filter_map(|l| match l {
                OomLine::Summary(s) => Some(s),
                _ => None,
            })
            .collect();
        assert!(
            lines
                .iter()
                .filter(|l| matches!(l, OomLine::Kill(_)))
                .count()
                > summaries.len()
        );
        let first = summaries.first().expect("a summary");
        let r = first.report.as_ref().expect("its report");
        assert_eq!(Some(r.cgroup.as_str()), first.oom_memcg.as_deref());
        assert_eq!((r.usage_kb, r.limit_kb), (Some(65536), Some(65536)));
        assert_eq!(r.stats.get("rss"), Some(&66781184));
        assert!(r.stats.contains_key("total_rss"), "{r:?}");
        let m = crate::output::verdict::Memory::from_report(r);
        assert_eq!(m.usage_bytes, Some(65536 * 1024));
        assert_eq!(m.anon_bytes, r.stats.get("total_rss").copied());
        assert_eq!(m.slab_bytes, None);
        assert_eq!(
            m.inactive_file_bytes,
            r.stats.get("total_inactive_file").copied()
        );
        // The pod's report: its own numbers, not the container's before it.
        let pod = summaries
            .iter()
            .find(|s| {
                s.oom_memcg
                    .as_deref()
                    .is_some_and(|m| m.ends_with("0018ec0b0f1f"))
            })
            .expect("the pod-level kill");
        let r = pod.report.as_ref().expect("its report");
        assert_eq!(Some(r.cgroup.as_str()), pod.oom_memcg.as_deref());
        assert_eq!(r.stats.get("hierarchical_memory_limit"), Some(&67108864));
        // The pod's own counters are 0 (its processes sit in the
        // container): the hierarchical ones are the pod's memory.
        assert_eq!(r.stats.get("rss"), Some(&0));
        let m = crate::output::verdict::Memory::from_report(r);
        assert_eq!(m.anon_bytes, r.stats.get("total_rss").copied());
        assert!(m.anon_bytes.is_some_and(|a| a > 60 << 20), "{m:?}");
    }

    #[test]
    fn a_cut_block_and_lines_between_lose_nothing_that_was_printed() {
        // 6.1: the block's record cut at the size limit, mid-line.
        let cut = V2_REPORT.replace("slab 8192\\x0a", "slab 8192\\x0apgfau");
        assert_ne!(cut, V2_REPORT);
        let lines = read_log(&cut);
        let Some(OomLine::Summary(s)) = lines.first() else {
            panic!("{lines:?}");
        };
        let r = s.report.as_ref().expect("the report");
        assert_eq!(r.stats.get("anon"), Some(&66977792));
        assert_eq!(r.stats.get("slab"), Some(&8192));
        // 6.18 (a record per line): another message between two stats lines.
        let between = V2_REPORT.replace(
            "6,14,1004,-;anon 66977792\\x0a",
            "6,14,1004,-;anon 66977792\n4,99,1004,-;eth0: Link is Up - 1Gbps/Full\n6,98,1004,-;",
        );
        assert_ne!(between, V2_REPORT);
        let lines = read_log(&between);
        let Some(OomLine::Summary(s)) = lines.first() else {
            panic!("{lines:?}");
        };
        let r = s.report.as_ref().expect("the report");
        assert_eq!(r.stats.get("anon"), Some(&66977792));
        assert_eq!(r.stats.get("inactive_file"), Some(&4096));
    }

    const V2_REPORT: &str = "4,10,1000,-;hog invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
6,11,1001,-;memory: usage 65536kB, limit 65536kB, failcnt 12
6,12,1002,-;swap: usage 0kB, limit 0kB, failcnt 0
6,13,1003,-;Memory cgroup stats for /kubepods/pod1/c1:
6,14,1004,-;anon 66977792\\x0afile 4096\\x0aactive_file 0\\x0ainactive_file 4096\\x0aslab 8192\\x0a
6,15,1005,-;Tasks state (memory values in pages):
6,16,1006,-;[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name
6,17,1007,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kubepods/pod1/c1,task_memcg=/kubepods/pod1/c1,task=hog,pid=77,uid=0
3,18,1008,-;Memory cgroup out of memory: Killed process 77 (hog) total-vm:68772kB, anon-rss:65152kB, file-rss:1736kB, shmem-rss:0kB, UID:0 pgtables:172kB oom_score_adj:0";

    #[test]
    fn v2_report_on_6_1_is_one_record_of_lines() {
        let lines = read_log(V2_REPORT);
        let [OomLine::Summary(s), OomLine::Kill(k)] = lines.as_slice() else {
            panic!("{lines:?}");
        };
        assert_eq!(k.pid, 77);
        let r = s.report.as_ref().expect("the report");
        assert_eq!(r.cgroup, "/kubepods/pod1/c1");
        let m = crate::output::verdict::Memory::from_report(r);
        assert_eq!(m.usage_bytes, Some(65536 * 1024));
        assert_eq!(m.anon_bytes, Some(66977792));
        assert_eq!(m.file_bytes, Some(4096));
        assert_eq!(m.slab_bytes, Some(8192));
        assert_eq!(m.working_set_bytes, Some(65536 * 1024 - 4096));
    }

    #[test]
    fn a_report_is_lent_to_no_other_memcg_and_no_later_summary() {
        // Stats of another cgroup than the summary's oom_memcg: not taken.
        let other = V2_REPORT.replace("stats for /kubepods/pod1/c1:", "stats for /elsewhere:");
        let lines = read_log(&other);
        let Some(OomLine::Summary(s)) = lines.first() else {
            panic!("{lines:?}");
        };
        assert_eq!(s.report, None);
        // A second summary without a report of its own gets none.
        let twice = format!(
            "{V2_REPORT}\n6,19,1009,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kubepods/pod1/c1,task_memcg=/kubepods/pod1/c1,task=hog,pid=78,uid=0"
        );
        let summaries: Vec<_> = read_log(&twice)
            .into_iter()
            .filter_map(|l| match l {
                OomLine::Summary(s) => Some(s),
                _ => None,
            })
            .collect();
        assert!(summaries[0].report.is_some());
        assert_eq!(summaries[1].report, None);
    }
}
