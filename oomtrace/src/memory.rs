//! `oomtrace memory`: where the node's memory is now — the breakdown
//! node-pressure verdicts carry (`oomtrace_core::node::node_memory`), as one JSON
//! object or a readable table; `--watch` repeats it.

use std::{
    io::{IsTerminal, Write},
    process::ExitCode,
};

use anyhow::Context;
use oomtrace_core::{
    node::cgroup::{Layout, Version},
    node::node_memory::{self, Breakdown},
    output::wording::human_bytes,
};

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
    let format = a.format.unwrap_or(if std::io::stdout().is_terminal() {
        Format::Text
    } else {
        Format::Json
    });
    loop {
        let b = read(&layout)?;
        let mut out = std::io::stdout().lock();
        match format {
            Format::Json => {
                serde_json::to_writer(&mut out, &json(&b, &node)?)?;
                writeln!(out)?;
            }
            Format::Text => write!(out, "{}", text(&b, &node))?,
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

/// The `node_memory` object: the line header, then the breakdown's fields.
pub fn json(b: &Breakdown, node: &str) -> anyhow::Result<serde_json::Value> {
    let mut v = serde_json::json!({
        "type": "node_memory",
        "schema_version": oomtrace_core::output::sink::SCHEMA_VERSION,
        "node": node,
        "time": now(),
    });
    if let (Some(obj), serde_json::Value::Object(fields)) =
        (v.as_object_mut(), serde_json::to_value(b)?)
    {
        obj.extend(fields);
    }
    Ok(v)
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

fn signed(v: i128) -> String {
    match u64::try_from(v) {
        Ok(v) => human_bytes(v),
        Err(_) => format!("-{}", human_bytes(u64::try_from(-v).unwrap_or(u64::MAX))),
    }
}

/// The readable table.
pub fn text(b: &Breakdown, node: &str) -> String {
    let t = b.total_bytes;
    let mut s = format!("node {node}: {} of memory ({})\n", human_bytes(t), now());
    let mut row = |indent: usize, name: &str, v: i128, share: bool| {
        let p = if share { pct(v, t) } else { String::new() };
        s.push_str(&format!(
            "{:indent$}{:<w$} {:>10} {p}\n",
            "",
            name,
            signed(v),
            w = 44 - indent
        ));
    };
    row(2, "free", b.free_bytes.into(), true);
    row(2, "pods", b.pods.bytes.into(), true);
    row(6, "Guaranteed", b.pods.by_qos.guaranteed.into(), false);
    row(6, "Burstable", b.pods.by_qos.burstable.into(), false);
    row(6, "BestEffort", b.pods.by_qos.besteffort.into(), false);
    for p in &b.pods.top {
        let name = format!(
            "pod {} (working set)",
            p.uid.as_deref().unwrap_or(p.cgroup.as_str())
        );
        row(6, &name, p.working_set_bytes.into(), false);
    }
    row(2, "system.slice", b.system.bytes.into(), true);
    for c in &b.system.top {
        row(6, &c.cgroup, c.usage_bytes.into(), false);
    }
    row(2, "other cgroups", b.other.bytes.into(), true);
    for c in &b.other.top {
        row(6, &c.cgroup, c.usage_bytes.into(), false);
    }
    let k = &b.kernel;
    row(2, "kernel (charged to no cgroup)", k.bytes.into(), true);
    row(
        6,
        "slab reclaimable",
        k.slab_reclaimable_bytes.into(),
        false,
    );
    row(
        6,
        "slab unreclaimable",
        k.slab_unreclaimable_bytes.into(),
        false,
    );
    row(6, "kernel stacks", k.kernel_stack_bytes.into(), false);
    row(6, "page tables", k.page_tables_bytes.into(), false);
    row(6, "vmalloc", k.vmalloc_bytes.into(), false);
    row(6, "percpu", k.percpu_bytes.into(), false);
    row(6, "hugetlb", k.hugetlb_bytes.into(), false);
    row(
        6,
        "less: charged to cgroups",
        -i128::from(k.charged_to_cgroups_bytes),
        false,
    );
    row(
        2,
        "page cache charged to no live cgroup",
        b.page_cache_unowned_bytes.into(),
        true,
    );
    row(
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
    row(2, &name, d.bytes.into(), true);
    for p in &d.by_parent {
        let name = match p.count {
            Some(n) => format!("under {} ({n})", p.cgroup),
            None => format!("under {}", p.cgroup),
        };
        row(6, &name, p.bytes.into(), false);
    }
    row(2, "unaccounted", b.unaccounted_bytes.into(), true);
    s.push_str(&b.summary);
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_line_header_and_every_part() {
        let b = node_memory::breakdown(&node_memory::Readings::default());
        let v = json(&b, "n1").expect("json");
        assert_eq!(v["type"], "node_memory");
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
        assert!(text(&b, "n1").contains("unaccounted"));
    }
}
