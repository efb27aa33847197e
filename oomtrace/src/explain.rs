//! `oomtrace explain [FILE|-]`: verdicts from a saved log. Needs no root,
//! BPF or tracefs: the log is read line by line by
//! `oomtrace_core::logs::explain::Explainer` (bounded memory; a followed log,
//! `dmesg -w | oomtrace explain`, prints each kill as its line comes), each
//! kill judged by the backlog's rules, and written as `run` writes verdicts.
//! gzip, xz and zstd input is read as it is.

use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead, BufReader, IsTerminal as _, Read},
    path::Path,
    process::ExitCode,
};

use anyhow::Context;
use oomtrace_core::{
    logs::explain::{self, Explainer, LogNames, Logged},
    node::pods::{self, ContainerId, PodUid},
    output::sink::Line,
    output::verdict::{Identity, Memory, Names, Verdict},
    rules::{attribution::Observed, from_log},
};

use crate::cli::{ExplainArgs, Format};

/// What is sniffed of the input to tell text from binary.
const SNIFF: usize = 64 * 1024;

pub fn run(a: ExplainArgs) -> anyhow::Result<ExitCode> {
    let stdin = a.file.to_str() == Some("-");
    if stdin && std::io::stdin().is_terminal() {
        eprintln!(
            "oomtrace explain: reading a log from the terminal; paste it and end with Ctrl-D, or give it: \
             `oomtrace explain /var/log/kern.log`, `dmesg | oomtrace explain`, \
             `journalctl -k -b -1 | oomtrace explain`, `dmesg -w | oomtrace explain`"
        );
    }
    let opts = explain::Options {
        local_offset: a.utc_offset,
    };
    // A file is read twice: first for the names the kubelet's lines give
    // anywhere in it, then for the verdicts. A stream once, names as they come.
    let names = match stdin {
        true => None,
        false => Some(names_in(&a.file)?),
    };
    let mut input = open(&a.file)?;
    let sniffed = input
        .fill_buf()
        .map(|b| b[..b.len().min(SNIFF)].to_vec())
        .unwrap_or_default();
    let node = a.node_name.clone().unwrap_or_default();
    let mut sink = crate::daemon::make_sink(a.format.unwrap_or(Format::Json), node);
    let mut e = Explainer::new(opts);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .with_context(|| format!("reading {}", name(&a.file)))?;
        let items = match n {
            0 => e.finish(),
            _ => e.line(line.strip_suffix(b"\n").unwrap_or(&line)),
        };
        for item in items {
            let v = verdict(
                &item,
                names.as_ref().unwrap_or(e.names()),
                &a.pods_log_dir,
                &a.containers_log_dir,
            );
            *counts.entry(label(&v)).or_default() += 1;
            match sink.write(&Line::Verdict(Box::new(v))) {
                Ok(()) => {}
                // A closed pipe (`| head -1`): the reader has what it wanted.
                Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {
                    return Ok(ExitCode::SUCCESS)
                }
                Err(err) => return Err(err).context("writing standard output"),
            }
        }
        if n == 0 {
            break;
        }
    }
    let total: usize = counts.values().sum();
    if total == 0 {
        if let Err(err) = explain::check_text(&sniffed) {
            eprintln!("oomtrace: {}: {err}{}", name(&a.file), hint(&sniffed));
            return Ok(ExitCode::from(2));
        }
        eprintln!(
            "oomtrace: no OOM kill found in {}, and no eviction",
            name(&a.file)
        );
    } else {
        let by: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
        eprintln!(
            "oomtrace: {total} verdict{} from {}: {}",
            if total == 1 { "" } else { "s" },
            name(&a.file),
            by.join(", ")
        );
    }
    let without = e.without_outcome();
    if !without.is_empty() {
        let lines: Vec<String> = without.iter().map(u64::to_string).collect();
        let (its, s) = if lines.len() == 1 {
            ("its", "")
        } else {
            ("their", "s")
        };
        eprintln!(
            "oomtrace: {} OOM report{s} began (line {}) but the log holds neither {its} scope nor {its} victim: no verdict",
            lines.len(),
            lines.join(", "),
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn label(v: &Verdict) -> String {
    match v.kind {
        Some(k) => format!("{}/{}", json_name(&v.verdict), json_name(&k)),
        None => json_name(&v.verdict),
    }
}

/// The JSON spelling of a unit enum value.
fn json_name<T: serde::Serialize>(t: &T) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Compressed input the reader does not take: say what it is.
fn hint(head: &[u8]) -> &'static str {
    if head.starts_with(b"PK\x03\x04") {
        return " (a zip archive: unzip it first)";
    }
    if head.starts_with(b"BZh") {
        return " (bzip2: `bzcat FILE | oomtrace explain`)";
    }
    ""
}

/// The input, decompressed when it is gzip, xz or zstd (by its magic).
fn open(file: &Path) -> anyhow::Result<Box<dyn BufRead>> {
    let raw: Box<dyn Read + Send> = match file.to_str() {
        Some("-") => Box::new(std::io::stdin()),
        _ => Box::new(fs::File::open(file).with_context(|| format!("reading {}", file.display()))?),
    };
    let mut raw = BufReader::with_capacity(SNIFF, raw);
    let head = raw
        .fill_buf()
        .with_context(|| format!("reading {}", name(file)))?;
    let inner: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(raw))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(XzReader::spawn(raw))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(
            ruzstd::decoding::StreamingDecoder::new(raw)
                .map_err(|e| anyhow::anyhow!("{}: not a zstd stream: {e}", name(file)))?,
        )
    } else {
        return Ok(Box::new(raw));
    };
    Ok(Box::new(BufReader::with_capacity(SNIFF, inner)))
}

/// xz, decompressed on a thread of its own into a bounded channel (the
/// decoder writes; it offers no reader).
struct XzReader {
    rx: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    at: usize,
}

impl XzReader {
    fn spawn(mut input: BufReader<Box<dyn Read + Send>>) -> XzReader {
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        std::thread::spawn(move || {
            let mut w = ChannelWriter(tx.clone());
            if let Err(e) = lzma_rs::xz_decompress(&mut input, &mut w) {
                let _ = tx.send(Err(std::io::Error::other(format!("xz: {e}"))));
            }
        });
        XzReader {
            rx,
            chunk: Vec::new(),
            at: 0,
        }
    }
}

struct ChannelWriter(std::sync::mpsc::SyncSender<std::io::Result<Vec<u8>>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .send(Ok(buf.to_vec()))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Read for XzReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at >= self.chunk.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The decoder is done.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The names the kubelet's lines give anywhere in a file.
fn names_in(file: &Path) -> anyhow::Result<LogNames> {
    let mut input = open(file)?;
    let mut names = LogNames::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        names.learn_line(&line);
    }
    Ok(names)
}

/// One item's verdict, named by the log directories here or the log's own lines.
fn verdict(item: &Logged, logged: &LogNames, pods_dir: &Path, containers_dir: &Path) -> Verdict {
    match item {
        Logged::Kill(k) => {
            let assessment = from_log::from_saved_log(k);
            let (names, from) = names(&assessment.identity, logged, pods_dir, containers_dir);
            let seen = Observed {
                memory: k
                    .past
                    .summary
                    .as_ref()
                    .and_then(|s| s.report.as_ref())
                    .map(Memory::from_report),
                names,
                ..Observed::default()
            };
            let mut v = from_log::verdict_from_log(assessment, seen);
            v.evidence.names_from = from;
            v
        }
        Logged::NoVictim(r) => {
            let identity = r
                .report
                .oom_memcg
                .as_deref()
                .map(Identity::of_path)
                .unwrap_or_default();
            let (names, from) = names(&identity, logged, pods_dir, containers_dir);
            let seen = Observed {
                memory: r.report.report.as_ref().map(Memory::from_report),
                names,
                ..Observed::default()
            };
            let mut v = from_log::verdict_from_unfinished(r, seen);
            v.evidence.names_from = from;
            v
        }
        Logged::Eviction(e) => from_log::verdict_from_kubelet_eviction(e),
    }
}

/// The kubelet's names: from its log directories when they exist here,
/// else from its own lines in the paste.
fn names(
    id: &Identity,
    logged: &LogNames,
    pods_dir: &Path,
    containers_dir: &Path,
) -> (Names, Option<&'static str>) {
    let uid = id.pod.as_ref().and_then(|p| p.uid.as_ref());
    let cid = id.container.as_ref().map(|c| &c.id);
    let from_dirs = Names {
        pod: uid.and_then(|u| pod_name(pods_dir, u)),
        container: cid.and_then(|c| container_name(containers_dir, c)),
    };
    if from_dirs.pod.is_some() || from_dirs.container.is_some() {
        return (from_dirs, Some("pods_log_dir"));
    }
    let by_container = cid.and_then(|c| logged.container(c.as_str()));
    let from_log = Names {
        pod: uid.and_then(|u| logged.pod(u.as_str())).or_else(|| {
            let c = by_container?;
            Some((c.namespace.clone()?, c.name.clone()?))
        }),
        container: by_container.and_then(|c| c.container.clone()),
    };
    let any = from_log.pod.is_some() || from_log.container.is_some();
    (from_log, any.then_some("kubelet_log"))
}

fn name(file: &Path) -> String {
    match file.to_str() {
        Some("-") => "standard input".into(),
        _ => file.display().to_string(),
    }
}

fn pod_name(dir: &Path, uid: &PodUid) -> Option<(String, String)> {
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(pods::parse_pod_log_dir))
        .find(|p| &p.uid == uid)
        .map(|p| (p.namespace, p.name))
}

fn container_name(dir: &Path, id: &ContainerId) -> Option<String> {
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(pods::parse_container_log_name)
        })
        .find(|c| &c.id == id)
        .map(|c| c.container)
}
