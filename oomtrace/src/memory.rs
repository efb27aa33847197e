//! `oomtrace memory`: where the node's memory is now — the breakdown
//! node-pressure verdicts carry (`oomtrace_core::node::node_memory`), and
//! the headroom above the kubelet's eviction thresholds, as one JSON
//! object or a readable table; `--watch` repeats it (in place on a
//! terminal).

use std::{
    collections::BTreeMap,
    io::{IsTerminal, Write},
    path::Path,
    process::ExitCode,
};

use anyhow::Context;
use oomtrace_core::{
    node::cgroup::{Layout, Version},
    node::kubelet,
    node::node_memory::{self, Breakdown},
    node::observe,
    node::pods,
    output::wording::human_bytes,
};
use serde::Serialize;

use crate::cli::{Format, MemoryArgs};

pub fn run(a: MemoryArgs) -> anyhow::Result<ExitCode> {
    let layout = Layout::detect(&a.cgroup_root)?;
    let node = match &a.node_name {
        Some(n) if !n.trim().is_empty() => n.clone(),
        _ => rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned(),
    };
    let terminal = std::io::stdout().is_terminal();
    let format = a
        .format
        .unwrap_or(if terminal { Format::Text } else { Format::Json });
    let config = crate::kubelet_config::resolve(a.kubelet_config.as_deref(), Path::new("/")).path();
    // Redrawn in place only where a person watches; a pipe gets each table after the last.
    let redraw = terminal && format == Format::Text && a.watch.is_some_and(|d| !d.is_zero());
    loop {
        let mut b = read(&layout)?;
        let names = pod_names(&a.pods_log_dir);
        b.name_pods(|uid| names.get(uid).cloned());
        let headroom = headroom(&layout, &config);
        let mut out = std::io::stdout().lock();
        match format {
            Format::Json => {
                writeln!(out, "{}", json(&b, &node, headroom.as_ref())?)?;
            }
            Format::Text => {
                let table = text(&b, &node, headroom.as_ref());
                if redraw {
                    // Over the last table: from the top left, each line's
                    // old rest erased, then what was below. (Clearing the
                    // whole screen would push each table into the
                    // terminal's scrollback.)
                    write!(out, "\x1b[H")?;
                    for line in table.lines() {
                        writeln!(out, "{line}\x1b[K")?;
                    }
                    write!(out, "\x1b[J")?;
                } else {
                    write!(out, "{table}")?;
                }
            }
        }
        out.flush()?;
        drop(out);
        match a.watch {
            Some(d) if !d.is_zero() => std::thread::sleep(d),
            _ => return Ok(ExitCode::SUCCESS),
        }
    }
}

/// The breakdown of this node now.
pub fn read(layout: &Layout) -> anyhow::Result<Breakdown> {
    let input = node_memory::read(&layout.memory_root, layout.version == Version::V2)
        .context("reading the node's memory")?;
    Ok(node_memory::breakdown(&input))
}

/// memory.available (the kubelet's: capacity − the root cgroup's working
/// set) against the kubelet's hard and soft eviction thresholds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Headroom {
    pub memory_available_bytes: u64,
    pub hard_threshold_bytes: u64,
    /// Where the hard threshold came from (the config's line, or the kubelet's default).
    pub hard_threshold_source: String,
    /// memory.available − the hard threshold: negative when under it (the
    /// kubelet evicts pods at once).
    pub above_hard_bytes: i64,
    /// Null when the config sets no soft threshold.
    pub soft_threshold_bytes: Option<u64>,
    pub soft_threshold_source: Option<String>,
    pub above_soft_bytes: Option<i64>,
}

fn headroom(layout: &Layout, config: &Path) -> Option<Headroom> {
    let n = observe::read_node_memory(&layout.memory_root, layout.version == Version::V2)?;
    let t = kubelet::read_threshold(config);
    Some(headroom_of(n.memory_available_bytes, n.capacity_bytes, &t))
}

pub fn headroom_of(available: u64, capacity: u64, t: &kubelet::Threshold) -> Headroom {
    let above = |threshold: u64| {
        i64::try_from(i128::from(available) - i128::from(threshold)).unwrap_or(i64::MIN)
    };
    let hard = t.bytes(capacity);
    let soft = t.soft.as_ref().map(|s| s.bytes(capacity));
    Headroom {
        memory_available_bytes: available,
        hard_threshold_bytes: hard,
        hard_threshold_source: t.source.clone(),
        above_hard_bytes: above(hard),
        soft_threshold_bytes: soft,
        soft_threshold_source: t.soft.as_ref().map(|s| s.source.clone()),
        above_soft_bytes: soft.map(above),
    }
}

/// Pod uid → namespace and name, from the kubelet's pod log directories
/// (none when the directory cannot be read: the pods keep null names).
fn pod_names(dir: &Path) -> BTreeMap<pods::PodUid, pods::PodName> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| pods::parse_pod_log_dir(&e.file_name().to_string_lossy()))
                .map(|p| (p.uid.clone(), p))
                .collect()
        })
        .unwrap_or_default()
}

/// The `node_memory` line: `type` first, as every line of `run`.
#[derive(Serialize)]
struct Line<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    schema_version: u32,
    node: &'a str,
    time: String,
    /// Null when memory.available could not be read.
    headroom: Option<&'a Headroom>,
    #[serde(flatten)]
    breakdown: &'a Breakdown,
}

/// The `node_memory` line: the line header, the headroom, then the
/// breakdown's fields, in that order (written from the struct: a JSON
/// `Value`'s map would sort its keys).
pub fn json(b: &Breakdown, node: &str, headroom: Option<&Headroom>) -> anyhow::Result<String> {
    Ok(serde_json::to_string(&Line {
        kind: "node_memory",
        schema_version: oomtrace_core::output::sink::SCHEMA_VERSION,
        node,
        time: now(),
        headroom,
        breakdown: b,
    })?)
}

/// "1.2Gi above the hard eviction threshold 100Mi (…)", or under it.
fn against(above: i64, name: &str, threshold: u64, source: &str) -> String {
    let gap = human_bytes(above.unsigned_abs());
    if above >= 0 {
        format!(
            "{gap} above the {name} eviction threshold {} ({source})",
            human_bytes(threshold)
        )
    } else {
        format!(
            "{gap} UNDER the {name} eviction threshold {} ({source}): the kubelet evicts pods",
            human_bytes(threshold)
        )
    }
}

fn now() -> String {
    oomtrace_core::kernel::clock::now()
}

fn pct(part: i128, total: u64) -> String {
    if total == 0 {
        return String::new();
    }
    format!("{:5.1}%", part as f64 * 100.0 / total as f64)
}

/// A part's share of the node as a bar of up to [`BAR`] cells, so the
/// largest parts stand out at a glance.
fn bar(part: i128, total: u64) -> String {
    if total == 0 || part <= 0 {
        return String::new();
    }
    let cells = (part as f64 * BAR as f64 / total as f64).round() as usize;
    "█".repeat(cells.min(BAR))
}

const BAR: usize = 20;

/// `name` in `width` columns: a longer one keeps its start and its end.
fn fit(name: &str, width: usize) -> String {
    let n = name.chars().count();
    if n <= width || width < 3 {
        return name.to_string();
    }
    let head = (width - 1) / 2;
    let tail = width - 1 - head;
    let start: String = name.chars().take(head).collect();
    let end: String = name.chars().skip(n - tail).collect();
    format!("{start}…{end}")
}

fn signed(v: i128) -> String {
    match u64::try_from(v) {
        Ok(v) => human_bytes(v),
        Err(_) => format!("-{}", human_bytes(u64::try_from(-v).unwrap_or(u64::MAX))),
    }
}

/// The readable table.
pub fn text(b: &Breakdown, node: &str, headroom: Option<&Headroom>) -> String {
    let t = b.total_bytes;
    let mut s = format!("node {node}: {} of memory ({})\n", human_bytes(t), now());
    match headroom {
        Some(h) => {
            s.push_str(&format!(
                "headroom: memory.available {}, {}",
                human_bytes(h.memory_available_bytes),
                against(
                    h.above_hard_bytes,
                    "hard",
                    h.hard_threshold_bytes,
                    &h.hard_threshold_source
                )
            ));
            match (
                h.above_soft_bytes,
                h.soft_threshold_bytes,
                &h.soft_threshold_source,
            ) {
                (Some(a), Some(th), Some(src)) => {
                    s.push_str(&format!("; {}\n", against(a, "soft", th, src)))
                }
                _ => s.push_str("; no soft threshold\n"),
            }
        }
        None => s.push_str("headroom: memory.available could not be read\n"),
    }
    push_row(&mut s, t, 2, "free", b.free_bytes.into(), true);
    push_row(&mut s, t, 2, "pods", b.pods.bytes.into(), true);
    push_row(
        &mut s,
        t,
        6,
        "Guaranteed",
        b.pods.by_qos.guaranteed.into(),
        false,
    );
    push_row(
        &mut s,
        t,
        6,
        "Burstable",
        b.pods.by_qos.burstable.into(),
        false,
    );
    push_row(
        &mut s,
        t,
        6,
        "BestEffort",
        b.pods.by_qos.besteffort.into(),
        false,
    );
    if !b.pods.top.is_empty() {
        s.push_str("      largest pods (working set):\n");
    }
    for p in &b.pods.top {
        let who = match (&p.pod.namespace, &p.pod.name, &p.pod.uid) {
            (Some(ns), Some(name), _) => format!("{ns}/{name}"),
            (_, _, Some(uid)) => uid.to_string(),
            _ => p.cgroup.clone(),
        };
        push_row(&mut s, t, 8, &who, p.working_set_bytes.into(), false);
    }
    push_row(&mut s, t, 2, "system.slice", b.system.bytes.into(), true);
    for c in &b.system.top {
        push_row(&mut s, t, 6, &c.cgroup, c.usage_bytes.into(), false);
    }
    push_row(&mut s, t, 2, "other cgroups", b.other.bytes.into(), true);
    for c in &b.other.top {
        push_row(&mut s, t, 6, &c.cgroup, c.usage_bytes.into(), false);
    }
    let k = &b.kernel;
    push_row(
        &mut s,
        t,
        2,
        "kernel (charged to no cgroup)",
        k.bytes.into(),
        true,
    );
    push_row(
        &mut s,
        t,
        6,
        "slab reclaimable",
        k.slab_reclaimable_bytes.into(),
        false,
    );
    push_row(
        &mut s,
        t,
        6,
        "slab unreclaimable",
        k.slab_unreclaimable_bytes.into(),
        false,
    );
    push_row(
        &mut s,
        t,
        6,
        "kernel stacks",
        k.kernel_stack_bytes.into(),
        false,
    );
    push_row(
        &mut s,
        t,
        6,
        "page tables",
        k.page_tables_bytes.into(),
        false,
    );
    push_row(&mut s, t, 6, "vmalloc", k.vmalloc_bytes.into(), false);
    push_row(&mut s, t, 6, "percpu", k.percpu_bytes.into(), false);
    push_row(&mut s, t, 6, "hugetlb", k.hugetlb_bytes.into(), false);
    push_row(
        &mut s,
        t,
        6,
        "less: charged to cgroups",
        -i128::from(k.charged_to_cgroups_bytes),
        false,
    );
    push_row(
        &mut s,
        t,
        2,
        "page cache charged to no live cgroup",
        b.page_cache_unowned_bytes.into(),
        true,
    );
    push_row(
        &mut s,
        t,
        2,
        "anon in the root cgroup",
        b.unowned_anon_bytes.into(),
        true,
    );
    let d = &b.dying_cgroups;
    let name = match d.count {
        Some(n) => format!("dying cgroups ({n})"),
        None => "dying cgroups".to_string(),
    };
    push_row(&mut s, t, 2, &name, d.bytes.into(), true);
    for p in &d.by_parent {
        let name = match p.count {
            Some(n) => format!("under {} ({n})", p.cgroup),
            None => format!("under {}", p.cgroup),
        };
        push_row(&mut s, t, 6, &name, p.bytes.into(), false);
    }
    push_row(
        &mut s,
        t,
        2,
        "unaccounted",
        b.unaccounted_bytes.into(),
        true,
    );
    s.push_str(&b.summary);
    s.push('\n');
    s
}

/// One row of the table: the name in its column, the bytes, and for a part
/// of the node its share and bar.
fn push_row(s: &mut String, total: u64, indent: usize, name: &str, v: i128, share: bool) {
    let p = if share {
        format!("{} {}", pct(v, total), bar(v, total))
    } else {
        String::new()
    };
    let w = 44 - indent;
    s.push_str(&format!(
        "{:indent$}{:<w$} {:>10} {p}",
        "",
        fit(name, w),
        signed(v),
    ));
    // No trailing blanks: a redrawn line ends where its text does.
    while s.ends_with(' ') {
        s.pop();
    }
    s.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_line_header_and_every_part() {
        let b = node_memory::breakdown(&node_memory::Readings::default());
        let h = headroom_of(2 << 30, 8 << 30, &kubelet::Threshold::default());
        let text = json(&b, "n1", Some(&h)).expect("json");
        let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(v["type"], "node_memory");
        // `type` first, as in every line of `run`.
        assert!(
            text.starts_with(r#"{"type":"node_memory","schema_version":1,"node":"n1","time":"#),
            "{text}"
        );
        assert_eq!(
            v["headroom"]["above_hard_bytes"],
            (2i64 << 30) - (100 << 20)
        );
        assert_eq!(v["node"], "n1");
        for k in [
            "total_bytes",
            "free_bytes",
            "pods",
            "system",
            "other",
            "kernel",
            "page_cache_unowned_bytes",
            "unowned_anon_bytes",
            "dying_cgroups",
            "unaccounted_bytes",
            "summary",
        ] {
            assert!(v.get(k).is_some(), "{k} missing: {v}");
        }
        assert!(super::text(&b, "n1", Some(&h)).contains("unaccounted"));
    }

    /// Two pods' cgroups (cgroup v2, cgroupfs driver): a Burstable one
    /// and a Guaranteed one.
    fn two_pods() -> Breakdown {
        let cg = |path: &str, usage: u64| node_memory::CgroupMem {
            path: path.to_string(),
            usage: Some(usage),
            anon: Some(usage / 2),
            file: Some(usage / 2),
            inactive_file: Some(0),
            ..Default::default()
        };
        node_memory::breakdown(&node_memory::Readings {
            v2: true,
            meminfo: node_memory::Meminfo {
                total: 8 << 30,
                ..Default::default()
            },
            cgroups: vec![
                node_memory::CgroupMem {
                    path: "/".to_string(),
                    ..Default::default()
                },
                cg("/kubepods", 600 << 20),
                cg("/kubepods/burstable", 400 << 20),
                cg(
                    "/kubepods/burstable/pod11111111-1111-1111-1111-111111111111",
                    400 << 20,
                ),
                cg(
                    "/kubepods/pod22222222-2222-2222-2222-222222222222",
                    200 << 20,
                ),
            ],
            v1_num_cgroups: None,
        })
    }

    #[test]
    fn top_pods_carry_the_verdicts_pod_object_named_from_the_pod_log_dirs() {
        let dir = std::env::temp_dir().join(format!("oomtrace-memory-pods-{}", std::process::id()));
        let named = dir.join("shop_cart-0_11111111-1111-1111-1111-111111111111");
        std::fs::create_dir_all(&named).expect("pod log dir");
        // Not a pod log directory: names nothing.
        std::fs::create_dir_all(dir.join("lost+found")).expect("dir");
        let names = pod_names(&dir);
        std::fs::remove_dir_all(&dir).expect("cleanup");

        let mut b = two_pods();
        b.name_pods(|uid| names.get(uid).cloned());
        let text = json(&b, "n1", None).expect("json");
        let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let top = v["pods"]["top"].as_array().expect("pods.top");
        assert_eq!(top.len(), 2, "{v}");
        assert_eq!(
            top[0]["pod"],
            serde_json::json!({
                "uid": "11111111-1111-1111-1111-111111111111",
                "namespace": "shop",
                "name": "cart-0",
                "qos": "Burstable",
            })
        );
        // No log directory names the second pod: null, not made up.
        assert_eq!(
            top[1]["pod"],
            serde_json::json!({
                "uid": "22222222-2222-2222-2222-222222222222",
                "namespace": null,
                "name": null,
                "qos": "Guaranteed",
            })
        );
        // The flat fields of before are gone: one pod object, as in verdicts.
        for gone in ["uid", "qos", "namespace", "name"] {
            assert!(top[0].get(gone).is_none(), "{gone}: {}", top[0]);
        }
        assert_eq!(
            top[0]["cgroup"],
            "/kubepods/burstable/pod11111111-1111-1111-1111-111111111111"
        );
        assert_eq!(top[0]["usage_bytes"], 400u64 << 20);
        // Same object in the text table: the name where known, else the uid.
        let table = super::text(&b, "n1", None);
        assert!(table.contains("largest pods (working set):"), "{table}");
        assert!(table.contains("        shop/cart-0 "), "{table}");
        assert!(
            table.contains("        22222222-2222-2222-2222-222222222222 "),
            "{table}"
        );
        // Each part's share as a bar of 20 cells: the pods' 600Mi of 8Gi is
        // one, the rest (unaccounted here) nineteen; an empty part none.
        assert!(table.contains("  7.3% █\n"), "{table}");
        assert!(
            table.contains(&format!(" 92.7% {}\n", "█".repeat(19))),
            "{table}"
        );
        assert!(table.contains("  0.0%\n"), "{table}");
    }

    #[test]
    fn without_a_pods_log_dir_every_top_pod_has_null_names() {
        let names = pod_names(Path::new("/nonexistent/oomtrace/pods"));
        assert!(names.is_empty());
        let mut b = two_pods();
        b.name_pods(|uid| names.get(uid).cloned());
        let v: serde_json::Value =
            serde_json::from_str(&json(&b, "n1", None).expect("json")).expect("JSON");
        for p in v["pods"]["top"].as_array().expect("pods.top") {
            assert!(p["pod"]["uid"].is_string(), "{p}");
            assert!(p["pod"]["namespace"].is_null(), "{p}");
            assert!(p["pod"]["name"].is_null(), "{p}");
        }
    }

    #[test]
    fn headroom_against_both_thresholds_and_under_them() {
        let t = kubelet::parse_config(
            "evictionHard:\n  memory.available: 500Mi\nevictionSoft:\n  memory.available: 1Gi\n",
            "config.yaml",
        );
        let h = headroom_of(800 << 20, 8 << 30, &t);
        assert_eq!(h.above_hard_bytes, 300 << 20);
        assert_eq!(h.above_soft_bytes, Some(-(224 << 20)));
        let b = node_memory::breakdown(&node_memory::Readings::default());
        let out = super::text(&b, "n1", Some(&h));
        let line = out.lines().nth(1).expect("headroom line");
        assert_eq!(
            line,
            "headroom: memory.available 800Mi, 300Mi above the hard eviction threshold 500Mi (config.yaml evictionHard memory.available<500Mi); 224Mi UNDER the soft eviction threshold 1Gi (config.yaml evictionSoft memory.available<1Gi): the kubelet evicts pods"
        );
        let none = headroom_of(800 << 20, 8 << 30, &kubelet::Threshold::default());
        assert!(super::text(&b, "n1", Some(&none)).contains("; no soft threshold\n"));
    }
}
