//! The kubelet's own word on an eviction: its eviction manager logs
//! `"Eviction manager: pod is evicted successfully" pod="NS/NAME"` once it
//! has killed the pod it chose. Where that log is readable (a file, or the
//! journal through `journalctl`), an eviction verdict that matches such a
//! line rests on it (`basis: kubelet_log`) instead of oomtrace's inference.

use std::{
    fs::File,
    io::{Read as _, Seek as _, SeekFrom},
    path::PathBuf,
    process::Command,
};

/// The eviction manager's line for a pod it evicted (kubelet 1.22 and
/// later, structured logging; pkg/kubelet/eviction/eviction_manager.go).
const EVICTED: &str = "Eviction manager: pod is evicted successfully";

/// Where the kubelet's log is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Not read: eviction verdicts rest on oomtrace's inference alone.
    None,
    /// A file the kubelet writes (`--log-file`, or its stderr redirected).
    File(PathBuf),
    /// The systemd journal, unit `kubelet`, through `journalctl`.
    Journal,
}

impl Source {
    /// `--kubelet-log`: a path, `journal`, `none`, or `auto` (the file
    /// `/var/log/kubelet.log` when it exists, else the journal when it holds
    /// the kubelet unit's lines, else none).
    pub fn parse(s: &str) -> Source {
        match s {
            "none" | "" => Source::None,
            "journal" => Source::Journal,
            "auto" => {
                let file = PathBuf::from("/var/log/kubelet.log");
                if file.is_file() {
                    Source::File(file)
                } else if Command::new("journalctl")
                    .args(["-u", "kubelet", "-n", "1", "-q", "--no-pager", "-o", "cat"])
                    .output()
                    .is_ok_and(|o| o.status.success() && !o.stdout.is_empty())
                {
                    Source::Journal
                } else {
                    Source::None
                }
            }
            path => Source::File(PathBuf::from(path)),
        }
    }
}

/// Whether `line` is the eviction manager's line for pod `namespace/name`.
pub fn is_eviction_of(line: &str, namespace: &str, name: &str) -> bool {
    line.contains(EVICTED) && line.contains(&format!("pod=\"{namespace}/{name}\""))
}

/// Reads the kubelet's log for eviction lines. A line confirms the
/// verdicts of one eviction only — its pod's containers, whose SIGTERMs
/// come within a minute of each other — not a later one of a pod with the
/// same name (a StatefulSet's pods keep theirs).
#[derive(Debug)]
pub struct Reader {
    source: Source,
    /// File: how far it was read, and the eviction lines found so far
    /// (their offsets, and whether one was used).
    offset: u64,
    found: Vec<(u64, String, Option<i64>)>,
}

/// Verdicts whose SIGTERMs are this close share one eviction line.
const SAME_EVICTION_S: i64 = 60;

impl Reader {
    /// A file is read from its current end: lines written before oomtrace
    /// started are about evictions it did not see.
    /// A file that cannot be read at start is not read at all (said once):
    /// else every eviction would wait for a line that cannot come.
    pub fn new(source: Source) -> Reader {
        let (source, offset) = match source {
            Source::File(p) => match std::fs::metadata(&p) {
                Ok(m) if File::open(&p).is_ok() => (Source::File(p), m.len()),
                _ => {
                    tracing::warn!(
                        "the kubelet log {} cannot be read: eviction verdicts rest on oomtrace's inference alone",
                        p.display()
                    );
                    (Source::None, 0)
                }
            },
            other => (other, 0),
        };
        Reader {
            source,
            offset,
            found: Vec::new(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.source != Source::None
    }

    /// Whether the kubelet logged evicting pod `namespace/name` since
    /// `since_unix_s` (journal) or since oomtrace started (file). None when
    /// the log cannot be read.
    pub fn evicted(&mut self, namespace: &str, name: &str, since_unix_s: i64) -> Option<bool> {
        match self.source.clone() {
            Source::None => None,
            Source::File(path) => {
                self.read_file(&path)?;
                let hit = self.found.iter_mut().find(|(_, l, used)| {
                    used.is_none_or(|first| (since_unix_s - first).abs() < SAME_EVICTION_S)
                        && is_eviction_of(l, namespace, name)
                });
                Some(
                    hit.map(|(_, _, used)| {
                        used.get_or_insert(since_unix_s);
                    })
                    .is_some(),
                )
            }
            Source::Journal => {
                let out = Command::new("journalctl")
                    .args(["-u", "kubelet", "--no-pager", "-o", "cat", "--since"])
                    .arg(format!("@{since_unix_s}"))
                    .output()
                    .ok()?;
                if !out.status.success() {
                    return None;
                }
                let text = String::from_utf8_lossy(&out.stdout);
                Some(text.lines().any(|l| is_eviction_of(l, namespace, name)))
            }
        }
    }

    /// Appends the file's new eviction lines to `found`; a file that shrank
    /// was rotated: read again from its start.
    fn read_file(&mut self, path: &PathBuf) -> Option<()> {
        let mut f = File::open(path).ok()?;
        let len = f.metadata().ok()?.len();
        if len < self.offset {
            self.offset = 0;
        }
        f.seek(SeekFrom::Start(self.offset)).ok()?;
        let mut buf = Vec::new();
        f.take(len - self.offset).read_to_end(&mut buf).ok()?;
        // Only whole lines: a line being written is read next time.
        let whole = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let text = String::from_utf8_lossy(&buf[..whole]);
        let mut at = self.offset;
        for line in text.split_inclusive('\n') {
            if line.contains(EVICTED) {
                self.found.push((at, line.trim_end().to_string(), None));
            }
            at += line.len() as u64;
        }
        self.offset += whole as u64;
        // A long-lived node evicts often: keep the recent ones.
        if self.found.len() > 1024 {
            self.found.drain(..self.found.len() - 1024);
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"I1012 19:34:45.445172    2480 eviction_manager.go:595] "Eviction manager: pod is evicted successfully" pod="default/nginx""#;

    #[test]
    fn the_eviction_managers_line_names_the_pod() {
        assert!(is_eviction_of(LINE, "default", "nginx"));
        assert!(!is_eviction_of(LINE, "default", "nginx-2"));
        assert!(!is_eviction_of(LINE, "kube-system", "nginx"));
        assert!(!is_eviction_of(
            r#""Eviction manager: pod failed to evict" pod="default/nginx""#,
            "default",
            "nginx"
        ));
    }

    #[test]
    fn a_file_is_read_from_where_it_was_and_each_line_counts_once() {
        let dir = std::env::temp_dir().join(format!("oomtrace-kubelet-log-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("kubelet.log");
        std::fs::write(&path, format!("{LINE}\n")).expect("write");
        let mut r = Reader::new(Source::File(path.clone()));
        assert_eq!(
            r.evicted("default", "nginx", 0),
            Some(false),
            "from before the start"
        );
        let mut text = std::fs::read_to_string(&path).expect("read");
        text.push_str("I1012 19:34:46.0 2480 other.go:1] \"something else\"\n");
        text.push_str(&format!("{LINE}\n"));
        std::fs::write(&path, text).expect("write");
        assert_eq!(r.evicted("default", "nginx", 1000), Some(true));
        assert_eq!(
            r.evicted("default", "nginx", 1001),
            Some(true),
            "another container of that pod"
        );
        assert_eq!(
            r.evicted("default", "nginx", 2000),
            Some(false),
            "a later eviction"
        );
        let mut r = Reader::new(Source::File(dir.join("missing.log")));
        assert!(!r.enabled(), "a file missing at start is not waited for");
        assert_eq!(r.evicted("default", "nginx", 0), None);
        let _ = std::fs::remove_dir_all(dir);
    }
}
