//! Where the node's memory went: /proc/meminfo and the memory cgroups'
//! own counters → one breakdown whose parts add up to MemTotal.
//!
//! [`breakdown`] is pure (plain numbers in, a [`Breakdown`] out); [`read`]
//! gathers its input from the machine (/proc/meminfo, /proc/cgroups and a
//! walk of the memory hierarchy).
//!
//! The parts, each counted once:
//! - `free`: MemFree.
//! - `pods`, `system`, `other`: the page counters of the top-level cgroups
//!   (kubepods, system.slice, the rest), less what dying cgroups below them
//!   hold. A cgroup's counter holds its anon and file pages and the kernel
//!   memory charged to it (slab, stacks, page tables).
//! - `dying_cgroups`: the anon and file pages still charged to removed
//!   cgroups (their page cache keeps them alive): for each live cgroup, its
//!   hierarchical anon + file less its live children's and its own (v1:
//!   memory.stat's local `rss` + `cache`; v2 has no local counters, so only
//!   a cgroup holding no process of its own and with dying children counts).
//! - `page_cache_unowned` / `unowned_anon`: file (Cached + Buffers +
//!   SwapCached) and anon (AnonPages) pages charged to no cgroup below the
//!   root (processes in the root cgroup, pages charged before a cgroup
//!   existed), less the dying cgroups directly under the root.
//! - `kernel`: slab, kernel stacks, page tables, vmalloc, percpu, HugeTLB
//!   (/proc/meminfo), less the kernel memory charged to the cgroups (their
//!   counters less their anon and file pages), which the cgroups' parts hold.
//! - `unaccounted`: MemTotal less all of the above (signed): memory no
//!   counter names (drivers' pages, network buffers not charged to a
//!   cgroup, the per-CPU charge caches of the page counters), and the skew
//!   of counters read one after another on a busy node.

use std::{collections::HashMap, fs, path::Path};

use serde::{Deserialize, Serialize};

use crate::{
    node::cgroup::parent,
    node::files::{read_kv, read_u64},
    node::pods::{self, Level, Qos},
};

/// How many pods, services and cgroups are named.
pub const TOP: usize = 5;
/// How many parents of dying cgroups are named.
pub const TOP_DYING: usize = 10;

/// The /proc/meminfo fields the breakdown uses, in bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meminfo {
    pub total: u64,
    pub free: u64,
    pub buffers: u64,
    pub cached: u64,
    pub swap_cached: u64,
    pub anon_pages: u64,
    pub slab_reclaimable: u64,
    pub slab_unreclaimable: u64,
    pub kernel_stack: u64,
    pub page_tables: u64,
    pub sec_page_tables: u64,
    pub vmalloc: u64,
    pub percpu: u64,
    pub hugetlb: u64,
}

/// One live cgroup of the memory hierarchy, as its files say.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupMem {
    /// `/` for the root.
    pub path: String,
    /// The page counter (v2 memory.current, v1 memory.usage_in_bytes);
    /// none at the v2 root.
    pub usage: Option<u64>,
    /// Hierarchical (v2 memory.stat; v1 the `total_*` keys).
    pub anon: Option<u64>,
    pub file: Option<u64>,
    pub inactive_file: Option<u64>,
    /// v1: the pages charged to this cgroup itself (`rss` + `cache`); v2:
    /// none (no local counters).
    pub local_lru: Option<u64>,
    /// Whether cgroup.procs lists a process.
    pub has_procs: bool,
    /// v2 cgroup.stat `nr_dying_descendants`; none on v1.
    pub nr_dying_descendants: Option<u64>,
}

impl CgroupMem {
    fn lru(&self) -> Option<u64> {
        Some(self.anon?.saturating_add(self.file?))
    }
}

/// Everything the breakdown is computed from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readings {
    pub v2: bool,
    pub meminfo: Meminfo,
    /// Every live cgroup of the memory hierarchy, the root included.
    pub cgroups: Vec<CgroupMem>,
    /// v1: /proc/cgroups `memory` num_cgroups (live and dying).
    pub v1_num_cgroups: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breakdown {
    pub total_bytes: u64,
    pub free_bytes: u64,
    pub pods: Pods,
    pub system: Group,
    pub other: Group,
    pub kernel: Kernel,
    pub page_cache_unowned_bytes: u64,
    pub unowned_anon_bytes: u64,
    pub dying_cgroups: Dying,
    /// MemTotal less every part above; may be negative.
    pub unaccounted_bytes: i64,
    pub summary: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pods {
    pub bytes: u64,
    pub by_qos: ByQos,
    pub top: Vec<PodUsage>,
}

/// The QoS levels' cgroups (Guaranteed: the sum of its pods); what
/// `pods.bytes` holds beyond them is kubepods' own (kernel memory charged
/// to it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByQos {
    pub guaranteed: u64,
    pub burstable: u64,
    pub besteffort: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodUsage {
    pub cgroup: String,
    /// The verdicts' pod object; namespace and name null unless the reader
    /// of the breakdown had them (`oomtrace memory`, from the pod log
    /// directories).
    pub pod: pods::Pod,
    pub usage_bytes: u64,
    pub working_set_bytes: u64,
    pub anon_bytes: Option<u64>,
    pub file_bytes: Option<u64>,
}

impl Breakdown {
    /// Names the top pods whose uid `name_of` knows; the others keep null
    /// names.
    pub fn name_pods(&mut self, name_of: impl Fn(&pods::PodUid) -> Option<pods::PodName>) {
        for p in &mut self.pods.top {
            if let Some(n) = p.pod.uid.as_ref().and_then(&name_of) {
                p.pod.namespace = Some(n.namespace);
                p.pod.name = Some(n.name);
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub bytes: u64,
    pub top: Vec<CgroupUsage>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupUsage {
    pub cgroup: String,
    pub usage_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kernel {
    /// The items below less `charged_to_cgroups_bytes`.
    pub bytes: u64,
    pub slab_reclaimable_bytes: u64,
    pub slab_unreclaimable_bytes: u64,
    pub kernel_stack_bytes: u64,
    pub page_tables_bytes: u64,
    pub vmalloc_bytes: u64,
    pub percpu_bytes: u64,
    pub hugetlb_bytes: u64,
    /// Kernel memory charged to cgroups (counted in their parts).
    pub charged_to_cgroups_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dying {
    /// Removed memory cgroups the kernel still holds; null when unknown.
    pub count: Option<u64>,
    pub bytes: u64,
    pub by_parent: Vec<DyingParent>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DyingParent {
    pub cgroup: String,
    /// v2: its dying children (and their descendants); null on v1.
    pub count: Option<u64>,
    pub bytes: u64,
    pub pod: Option<String>,
}

/// Where a top-level cgroup's memory is counted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Pods,
    System,
    Other,
}

fn part_of(top: &str) -> Part {
    match top {
        "/kubepods" | "/kubepods.slice" => Part::Pods,
        "/system.slice" => Part::System,
        _ => Part::Other,
    }
}

/// The breakdown of `input` (pure).
pub fn breakdown(input: &Readings) -> Breakdown {
    let m = &input.meminfo;
    let by_path: HashMap<&str, &CgroupMem> =
        input.cgroups.iter().map(|c| (c.path.as_str(), c)).collect();
    let mut children: HashMap<&str, Vec<&CgroupMem>> = HashMap::new();
    for c in &input.cgroups {
        if let Some(p) = parent(&c.path).filter(|p| by_path.contains_key(p)) {
            children.entry(p).or_default().push(c);
        }
    }
    let no_kids = Vec::new();

    // What dying children hold, per live parent.
    let mut dying: Vec<DyingParent> = Vec::new();
    for c in &input.cgroups {
        let kids = children.get(c.path.as_str()).unwrap_or(&no_kids);
        let direct_dying = c
            .nr_dying_descendants
            .map(|n| n.saturating_sub(kids.iter().filter_map(|k| k.nr_dying_descendants).sum()));
        let Some(lru) = c.lru() else { continue };
        let kids_lru: u64 = kids.iter().filter_map(|k| k.lru()).sum();
        let residual = lru.saturating_sub(kids_lru);
        let bytes = if input.v2 {
            // No local counters: a cgroup with processes of its own keeps
            // the residual, and so does the root (boot-time page cache and
            // kernel threads are charged there: not the dying cgroups').
            let own_procs = c.has_procs || c.path == "/";
            if direct_dying.unwrap_or(0) > 0 && !own_procs {
                residual
            } else {
                0
            }
        } else {
            residual.saturating_sub(c.local_lru.unwrap_or(0))
        };
        if bytes > 0 || direct_dying.unwrap_or(0) > 0 {
            dying.push(DyingParent {
                cgroup: c.path.clone(),
                count: direct_dying,
                bytes,
                pod: pods::parse_cgroup_path(&c.path)
                    .and_then(|k| k.pod)
                    .map(|p| p.to_string()),
            });
        }
    }
    let dying_bytes: u64 = dying.iter().map(|d| d.bytes).sum();
    let dying_below = |top: &str| -> u64 {
        dying
            .iter()
            .filter(|d| d.cgroup == top || d.cgroup.starts_with(&format!("{top}/")))
            .map(|d| d.bytes)
            .sum()
    };
    let dying_at_root: u64 = dying
        .iter()
        .filter(|d| d.cgroup == "/")
        .map(|d| d.bytes)
        .sum();

    // The top-level cgroups: who holds what.
    let tops: Vec<&CgroupMem> = children.get("/").cloned().unwrap_or_default();
    let live = |c: &CgroupMem| c.usage.unwrap_or(0).saturating_sub(dying_below(&c.path));
    let mut pods_bytes = 0u64;
    let mut system = Group {
        bytes: 0,
        top: Vec::new(),
    };
    let mut other = Group {
        bytes: 0,
        top: Vec::new(),
    };
    let (mut top_anon, mut top_file, mut charged_kernel) = (0u64, 0u64, 0u64);
    for t in &tops {
        top_anon = top_anon.saturating_add(t.anon.unwrap_or(0));
        top_file = top_file.saturating_add(t.file.unwrap_or(0));
        if let Some(usage) = t.usage {
            charged_kernel =
                charged_kernel.saturating_add(usage.saturating_sub(t.lru().unwrap_or(0)));
        }
        match part_of(&t.path) {
            Part::Pods => pods_bytes = pods_bytes.saturating_add(live(t)),
            Part::System => system.bytes = system.bytes.saturating_add(live(t)),
            Part::Other => {
                other.bytes = other.bytes.saturating_add(live(t));
                other.top.push(CgroupUsage {
                    cgroup: t.path.clone(),
                    usage_bytes: live(t),
                });
            }
        }
    }
    for s in children.get("/system.slice").unwrap_or(&no_kids) {
        system.top.push(CgroupUsage {
            cgroup: s.path.clone(),
            usage_bytes: live(s),
        });
    }
    for g in [&mut system, &mut other] {
        g.top.sort_by(|a, b| {
            b.usage_bytes
                .cmp(&a.usage_bytes)
                .then(a.cgroup.cmp(&b.cgroup))
        });
        g.top.retain(|c| c.usage_bytes > 0);
        g.top.truncate(TOP);
    }

    // Pods by QoS class, and the largest by working set.
    let mut by_qos = ByQos::default();
    let mut pod_list = Vec::new();
    for c in &input.cgroups {
        let Some(k) = pods::parse_cgroup_path(&c.path) else {
            continue;
        };
        match k.level {
            Level::Qos(Qos::Burstable) => by_qos.burstable += live(c),
            Level::Qos(Qos::BestEffort) => by_qos.besteffort += live(c),
            // A pod's own cgroup only: what is below it (containers, the
            // cgroups a container's systemd makes, a runtime's conmon) is
            // counted in it already.
            Level::Pod if pods::is_pod_cgroup(&c.path) => {
                if k.qos == Some(Qos::Guaranteed) {
                    by_qos.guaranteed += live(c);
                }
                let usage = c.usage.unwrap_or(0);
                pod_list.push(PodUsage {
                    cgroup: c.path.clone(),
                    // The cgroup path says no name: a reader that has
                    // them sets them ([`Breakdown::name_pods`]).
                    pod: pods::Pod {
                        uid: k.pod,
                        namespace: None,
                        name: None,
                        qos: k.qos,
                    },
                    usage_bytes: usage,
                    working_set_bytes: usage.saturating_sub(c.inactive_file.unwrap_or(0)),
                    anon_bytes: c.anon,
                    file_bytes: c.file,
                });
            }
            _ => {}
        }
    }
    pod_list.sort_by(|a, b| {
        b.working_set_bytes
            .cmp(&a.working_set_bytes)
            .then(a.cgroup.cmp(&b.cgroup))
    });
    pod_list.truncate(TOP);

    let kernel_items = [
        m.slab_reclaimable,
        m.slab_unreclaimable,
        m.kernel_stack,
        m.page_tables.saturating_add(m.sec_page_tables),
        m.vmalloc,
        m.percpu,
        m.hugetlb,
    ];
    let kernel = Kernel {
        bytes: kernel_items
            .iter()
            .sum::<u64>()
            .saturating_sub(charged_kernel),
        slab_reclaimable_bytes: m.slab_reclaimable,
        slab_unreclaimable_bytes: m.slab_unreclaimable,
        kernel_stack_bytes: m.kernel_stack,
        page_tables_bytes: m.page_tables.saturating_add(m.sec_page_tables),
        vmalloc_bytes: m.vmalloc,
        percpu_bytes: m.percpu,
        hugetlb_bytes: m.hugetlb,
        charged_to_cgroups_bytes: charged_kernel,
    };
    let file_pages = m
        .cached
        .saturating_add(m.buffers)
        .saturating_add(m.swap_cached);
    let unowned_file = file_pages.saturating_sub(top_file);
    let page_cache_unowned_bytes = unowned_file.saturating_sub(dying_at_root);
    let unowned_anon_bytes = m
        .anon_pages
        .saturating_sub(top_anon)
        .saturating_sub(dying_at_root.saturating_sub(unowned_file));

    let count = if input.v2 {
        by_path.get("/").and_then(|r| r.nr_dying_descendants)
    } else {
        input
            .v1_num_cgroups
            .map(|n| n.saturating_sub(input.cgroups.len() as u64))
    };
    dying.sort_by(|a, b| {
        b.bytes
            .cmp(&a.bytes)
            .then(b.count.cmp(&a.count))
            .then(a.cgroup.cmp(&b.cgroup))
    });
    dying.truncate(TOP_DYING);
    let dying_cgroups = Dying {
        count,
        bytes: dying_bytes,
        by_parent: dying,
    };

    let counted = [
        m.free,
        pods_bytes,
        system.bytes,
        other.bytes,
        kernel.bytes,
        page_cache_unowned_bytes,
        unowned_anon_bytes,
        dying_bytes,
    ]
    .iter()
    .fold(0i128, |s, &b| s + i128::from(b));
    let unaccounted = i128::from(m.total) - counted;
    Breakdown {
        total_bytes: m.total,
        free_bytes: m.free,
        pods: Pods {
            bytes: pods_bytes,
            by_qos,
            top: pod_list,
        },
        system,
        other,
        kernel,
        page_cache_unowned_bytes,
        unowned_anon_bytes,
        dying_cgroups,
        unaccounted_bytes: i64::try_from(unaccounted).unwrap_or(if unaccounted < 0 {
            i64::MIN
        } else {
            i64::MAX
        }),
        summary: String::new(),
    }
}

/// The parts, by name, for metrics and the text table: every byte of
/// MemTotal in exactly one (`unaccounted` may be negative).
pub fn parts(b: &Breakdown) -> [(&'static str, i128); 9] {
    [
        ("free", b.free_bytes.into()),
        ("pods", b.pods.bytes.into()),
        ("system", b.system.bytes.into()),
        ("other_cgroups", b.other.bytes.into()),
        ("kernel", b.kernel.bytes.into()),
        ("page_cache_unowned", b.page_cache_unowned_bytes.into()),
        ("unowned_anon", b.unowned_anon_bytes.into()),
        ("dying_cgroups", b.dying_cgroups.bytes.into()),
        ("unaccounted", b.unaccounted_bytes.into()),
    ]
}

/// The largest part that is not free memory nor a pod's own: what the
/// summary names. `None` when every such part is empty.
pub fn largest_outside_pods(b: &Breakdown) -> Option<(&'static str, u64)> {
    parts(b)
        .into_iter()
        .filter(|(name, _)| !matches!(*name, "free" | "pods"))
        .filter_map(|(name, v)| u64::try_from(v).ok().map(|v| (name, v)))
        .filter(|(_, v)| *v > 0)
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
}

// ---- Dying cgroups that keep growing -------------------------------------

/// How often the daemon samples the dying cgroups (on its ticks).
pub const DYING_SAMPLE_NS: u64 = 60_000_000_000;
/// The samples a `dying_cgroups` finding looks back over (10 minutes).
pub const DYING_WINDOW: usize = 10;
/// At most one `dying_cgroups` finding an hour.
pub const DYING_FINDING_EVERY_NS: u64 = 3_600_000_000_000;
/// Growth that counts: this many more dying cgroups over the window (and
/// a tenth more than at its start), or this much more memory pinned.
pub const DYING_MIN_COUNT_GROWTH: u64 = 50;
pub const DYING_MIN_BYTES_GROWTH: u64 = 256 << 20;

/// A `dying_cgroups` finding's numbers: the window's first and last samples.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DyingGrowth {
    pub count: Option<u64>,
    pub bytes: u64,
    pub count_before: Option<u64>,
    pub bytes_before: u64,
    pub window_s: u64,
    /// The parents under which the most is held now.
    pub by_parent: Vec<DyingParent>,
}

#[derive(Clone, Copy, Debug)]
struct DyingSample {
    ns: u64,
    count: Option<u64>,
    bytes: u64,
}

/// The seed-004 pattern: removed cgroups piling up (their page cache keeps
/// them), sample after sample. Pure: samples in, a finding's numbers out.
#[derive(Clone, Debug, Default)]
pub struct DyingWatch {
    samples: std::collections::VecDeque<DyingSample>,
    last_finding_ns: Option<u64>,
}

impl DyingWatch {
    /// Whether a sample is due at `now_ns`, one every `every_ns`.
    pub fn due(&self, now_ns: u64, every_ns: u64) -> bool {
        self.samples
            .back()
            .is_none_or(|s| now_ns.saturating_sub(s.ns) >= every_ns)
    }

    /// One sample; the growth when the dying cgroups' count or pinned
    /// memory rose at every sample of a full window, by at least the
    /// minimums, and no finding was given within the hour.
    pub fn sample(&mut self, now_ns: u64, d: &Dying) -> Option<DyingGrowth> {
        self.samples.push_back(DyingSample {
            ns: now_ns,
            count: d.count,
            bytes: d.bytes,
        });
        while self.samples.len() > DYING_WINDOW {
            self.samples.pop_front();
        }
        if self.samples.len() < DYING_WINDOW
            || self
                .last_finding_ns
                .is_some_and(|t| now_ns.saturating_sub(t) < DYING_FINDING_EVERY_NS)
        {
            return None;
        }
        let first = *self.samples.front()?;
        let last = *self.samples.back()?;
        let pairs = || self.samples.iter().zip(self.samples.iter().skip(1));
        let counts_grow = pairs()
            .all(|(a, b)| matches!((a.count, b.count), (Some(x), Some(y)) if y >= x))
            && match (first.count, last.count) {
                (Some(a), Some(b)) => {
                    b >= a.saturating_add(DYING_MIN_COUNT_GROWTH) && b >= a.saturating_add(a / 10)
                }
                _ => false,
            };
        let bytes_grow = pairs().all(|(a, b)| b.bytes >= a.bytes)
            && last.bytes >= first.bytes.saturating_add(DYING_MIN_BYTES_GROWTH);
        if !(counts_grow || bytes_grow) {
            return None;
        }
        self.last_finding_ns = Some(now_ns);
        Some(DyingGrowth {
            count: last.count,
            bytes: last.bytes,
            count_before: first.count,
            bytes_before: first.bytes,
            window_s: last.ns.saturating_sub(first.ns) / 1_000_000_000,
            by_parent: d.by_parent.clone(),
        })
    }
}

// ---- Reading the machine -------------------------------------------------

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading /proc/meminfo: {0}")]
    Meminfo(#[from] procfs::ProcError),
    #[error("{0} is no memory cgroup hierarchy's root (no memory.stat; set --cgroup-root)")]
    Root(String),
}

pub fn read_meminfo() -> Result<Meminfo, procfs::ProcError> {
    let m = <procfs::Meminfo as procfs::Current>::current()?;
    let hugetlb = m.hugetlb.unwrap_or_else(|| {
        m.hugepages_total
            .unwrap_or(0)
            .saturating_mul(m.hugepagesize.unwrap_or(0))
    });
    Ok(Meminfo {
        total: m.mem_total,
        free: m.mem_free,
        buffers: m.buffers,
        cached: m.cached,
        swap_cached: m.swap_cached,
        anon_pages: m.anon_pages.unwrap_or(0),
        slab_reclaimable: m.s_reclaimable.unwrap_or(0),
        slab_unreclaimable: m.s_unreclaim.unwrap_or(0),
        kernel_stack: m.kernel_stack.unwrap_or(0),
        page_tables: m.page_tables.unwrap_or(0),
        sec_page_tables: m.secondary_page_tables.unwrap_or(0),
        vmalloc: m.vmalloc_used,
        percpu: m.per_cpu.unwrap_or(0),
        hugetlb,
    })
}

/// One cgroup's files; none when it has no memory.stat (removed meanwhile).
fn read_cgroup(dir: &Path, path: String, v2: bool) -> Option<CgroupMem> {
    let stat = read_kv(&dir.join("memory.stat"))?;
    let g = |k: &str| stat.get(k).copied();
    let has_procs = fs::read_to_string(dir.join("cgroup.procs"))
        .is_ok_and(|t| t.lines().any(|l| !l.trim().is_empty()));
    Some(if v2 {
        CgroupMem {
            usage: read_u64(&dir.join("memory.current")),
            anon: g("anon"),
            file: g("file"),
            inactive_file: g("inactive_file"),
            local_lru: None,
            has_procs,
            nr_dying_descendants: read_kv(&dir.join("cgroup.stat"))
                .and_then(|s| s.get("nr_dying_descendants").copied()),
            path,
        }
    } else {
        CgroupMem {
            usage: read_u64(&dir.join("memory.usage_in_bytes")),
            anon: g("total_rss"),
            file: g("total_cache"),
            inactive_file: g("total_inactive_file"),
            local_lru: Some(
                g("rss")
                    .unwrap_or(0)
                    .saturating_add(g("cache").unwrap_or(0)),
            ),
            has_procs,
            nr_dying_descendants: None,
            path,
        }
    })
}

/// /proc/cgroups' `memory` num_cgroups (v1: live and dying).
pub fn v1_num_cgroups(text: &str) -> Option<u64> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"memory"))
        .and_then(|f| f.get(2)?.parse().ok())
}

/// Reads the breakdown's input from the machine: /proc/meminfo, every
/// cgroup of the memory hierarchy under `memory_root`, and (v1)
/// /proc/cgroups.
pub fn read(memory_root: &Path, v2: bool) -> Result<Readings, ReadError> {
    let meminfo = read_meminfo()?;
    // A v2 root without memory.stat (older kernels) still has children.
    let root = match read_cgroup(memory_root, "/".into(), v2) {
        Some(r) => r,
        None if v2 && memory_root.join("cgroup.controllers").exists() => CgroupMem {
            path: "/".into(),
            nr_dying_descendants: read_kv(&memory_root.join("cgroup.stat"))
                .and_then(|s| s.get("nr_dying_descendants").copied()),
            ..CgroupMem::default()
        },
        None => return Err(ReadError::Root(memory_root.display().to_string())),
    };
    let mut cgroups = vec![root];
    let mut stack = vec![(memory_root.to_path_buf(), String::new())];
    while let Some((dir, path)) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let mut subdirs: Vec<_> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .collect();
        subdirs.sort_by_key(|e| e.file_name());
        for e in subdirs {
            let name = crate::kernel::event::escape_bytes(e.file_name().as_encoded_bytes());
            let child = format!("{path}/{name}");
            if let Some(c) = read_cgroup(&e.path(), child.clone(), v2) {
                cgroups.push(c);
                stack.push((e.path(), child));
            }
        }
    }
    let v1_num_cgroups = if v2 {
        None
    } else {
        fs::read_to_string("/proc/cgroups")
            .ok()
            .and_then(|t| v1_num_cgroups(&t))
    };
    Ok(Readings {
        v2,
        meminfo,
        cgroups,
        v1_num_cgroups,
    })
}

/// PSI of a cgroup (v2 `memory.pressure`), the avg10 shares in percent.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Psi {
    pub some_avg10: f64,
    pub full_avg10: f64,
}

/// v2 `memory.pressure`: the `some` and `full` lines' `avg10`.
pub fn parse_psi(text: &str) -> Option<Psi> {
    let avg10 = |kind: &str| -> Option<f64> {
        let line = text.lines().find(|l| l.starts_with(kind))?;
        line.split_whitespace()
            .find_map(|f| f.strip_prefix("avg10="))?
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
    };
    Some(Psi {
        some_avg10: avg10("some ")?,
        full_avg10: avg10("full ")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const MIB: u64 = 1 << 20;

    fn cg(path: &str, usage: u64, anon: u64, file: u64) -> CgroupMem {
        CgroupMem {
            path: path.into(),
            usage: Some(usage),
            anon: Some(anon),
            file: Some(file),
            inactive_file: Some(file / 2),
            // A leaf's pages are its own.
            local_lru: Some(anon + file),
            has_procs: false,
            nr_dying_descendants: None,
        }
    }

    fn meminfo() -> Meminfo {
        Meminfo {
            total: 4096 * MIB,
            // Nothing unaccounted in the v1 input below.
            free: 1986 * MIB,
            buffers: 10 * MIB,
            cached: 1100 * MIB,
            swap_cached: 0,
            anon_pages: 700 * MIB,
            slab_reclaimable: 200 * MIB,
            slab_unreclaimable: 50 * MIB,
            kernel_stack: 10 * MIB,
            page_tables: 20 * MIB,
            sec_page_tables: 0,
            vmalloc: 15 * MIB,
            percpu: 5 * MIB,
            hugetlb: 0,
        }
    }

    /// A v1 node: two pods, two services, a test cgroup whose 20 removed
    /// children hold 40 MiB of page cache.
    fn v1_input() -> Readings {
        let pod_a = "/kubepods/burstable/pod11111111-1111-1111-1111-111111111111";
        let pod_b = "/kubepods/pod22222222-2222-2222-2222-222222222222";
        // The v1 root's hierarchical counters are the node's; 100 MiB of
        // its pages are its own (processes in the root cgroup), 20 MiB
        // held by dying cgroups directly under it.
        let mut root = cg("/", 3000 * MIB, 700 * MIB, 1110 * MIB);
        root.local_lru = Some(100 * MIB);
        let inner = |path: &str, usage: u64, anon: u64, file: u64| CgroupMem {
            local_lru: Some(0),
            ..cg(path, usage, anon, file)
        };
        Readings {
            v2: false,
            meminfo: meminfo(),
            cgroups: vec![
                root,
                inner("/kubepods", 1100 * MIB, 500 * MIB, 500 * MIB),
                inner("/kubepods/burstable", 400 * MIB, 200 * MIB, 150 * MIB),
                cg("/kubepods/besteffort", 0, 0, 0),
                cg(pod_a, 400 * MIB, 200 * MIB, 150 * MIB),
                cg(pod_b, 640 * MIB, 300 * MIB, 300 * MIB),
                inner("/system.slice", 700 * MIB, 150 * MIB, 500 * MIB),
                cg(
                    "/system.slice/kubelet.service",
                    200 * MIB,
                    100 * MIB,
                    80 * MIB,
                ),
                cg(
                    "/system.slice/containerd.service",
                    430 * MIB,
                    50 * MIB,
                    380 * MIB,
                ),
                inner("/test", 45 * MIB, 0, 40 * MIB),
            ],
            v1_num_cgroups: Some(30),
        }
    }

    #[test]
    fn the_parts_add_up_to_memtotal() {
        let b = breakdown(&v1_input());
        let sum: i128 = parts(&b).iter().map(|p| p.1).sum();
        assert_eq!(sum, i128::from(b.total_bytes));
        assert_eq!(b.total_bytes, 4096 * MIB);
        assert_eq!(b.unaccounted_bytes, 0);
    }

    #[test]
    fn dying_cgroups_are_counted_with_what_they_hold() {
        let b = breakdown(&v1_input());
        // 30 memory cgroups in /proc/cgroups, 10 live.
        assert_eq!(b.dying_cgroups.count, Some(20));
        // /kubepods: 1000 lru, children 350 + 600 → 50 MiB held by dying pods.
        // /system.slice: 650 − 180 − 430 → 40. /test: 40 (no live child).
        // root: 1810 − 1000 − 650 − 40 − 100 local → 20.
        let by: BTreeMap<_, _> = b
            .dying_cgroups
            .by_parent
            .iter()
            .map(|d| (d.cgroup.as_str(), d.bytes))
            .collect();
        assert_eq!(by.get("/kubepods"), Some(&(50 * MIB)));
        assert_eq!(by.get("/system.slice"), Some(&(40 * MIB)));
        assert_eq!(by.get("/test"), Some(&(40 * MIB)));
        assert_eq!(by.get("/"), Some(&(20 * MIB)));
        assert_eq!(b.dying_cgroups.bytes, 150 * MIB);
        // The pods' part excludes what dying pods hold.
        assert_eq!(b.pods.bytes, 1050 * MIB);
        assert_eq!(b.system.bytes, 660 * MIB);
        assert_eq!(b.other.bytes, 5 * MIB);
        assert_eq!(b.system.top[0].cgroup, "/system.slice/containerd.service");
    }

    #[test]
    fn top_pods_are_named_only_where_the_reader_knows_the_uid() {
        let mut b = breakdown(&v1_input());
        assert!(b.pods.top.iter().all(|p| p.pod.name.is_none()));
        let known = pods::PodUid::parse("22222222-2222-2222-2222-222222222222").expect("uid");
        b.name_pods(|uid| {
            (*uid == known).then(|| pods::PodName {
                namespace: "shop".to_string(),
                name: "cart-0".to_string(),
                uid: uid.clone(),
            })
        });
        assert_eq!(b.pods.top[0].pod.namespace.as_deref(), Some("shop"));
        assert_eq!(b.pods.top[0].pod.name.as_deref(), Some("cart-0"));
        assert_eq!(b.pods.top[1].pod.namespace, None);
        assert_eq!(b.pods.top[1].pod.name, None);
    }

    #[test]
    fn a_recorded_breakdown_reads_back_and_a_bad_uid_is_refused() {
        // Recordings keep the breakdown as JSON and replay reads it back.
        let b = breakdown(&v1_input());
        let text = serde_json::to_string(&b).expect("json");
        let back: Breakdown = serde_json::from_str(&text).expect("reads back");
        assert_eq!(back, b);
        let bad = text.replace("22222222-2222-2222-2222-222222222222", "not-a-uid");
        let err = serde_json::from_str::<Breakdown>(&bad).expect_err("bad uid");
        assert!(err.to_string().contains("not a pod uid"), "{err}");
    }

    #[test]
    fn pods_by_qos_and_working_set() {
        let b = breakdown(&v1_input());
        assert_eq!(b.pods.by_qos.burstable, 400 * MIB);
        assert_eq!(b.pods.by_qos.besteffort, 0);
        assert_eq!(b.pods.by_qos.guaranteed, 640 * MIB);
        assert_eq!(b.pods.top.len(), 2);
        assert_eq!(
            b.pods.top[0].pod.uid.as_ref().map(|u| u.as_str()),
            Some("22222222-2222-2222-2222-222222222222")
        );
        assert_eq!(b.pods.top[0].working_set_bytes, 490 * MIB);
        assert_eq!(b.pods.top[0].pod.qos, Some(Qos::Guaranteed));
    }

    #[test]
    fn cgroups_below_a_pod_are_counted_in_it_once() {
        // pod_b's container runs a systemd whose units are cgroups of their
        // own below the container's, and a runtime's conmon sits beside
        // the container in the pod: the pod's totals are the pod's own
        // hierarchical counters, nothing below is added again.
        let pod_b = "/kubepods/pod22222222-2222-2222-2222-222222222222";
        let own = format!("{pod_b}/{}", "c".repeat(64));
        let inner = |path: &str, usage: u64, anon: u64, file: u64| CgroupMem {
            local_lru: Some(0),
            ..cg(path, usage, anon, file)
        };
        let mut input = v1_input();
        for c in input.cgroups.iter_mut().filter(|c| c.path == pod_b) {
            c.local_lru = Some(0);
        }
        input.cgroups.extend([
            inner(&own, 630 * MIB, 290 * MIB, 300 * MIB),
            cg(&format!("{own}/init.scope"), 12 * MIB, 5 * MIB, 5 * MIB),
            inner(
                &format!("{own}/system.slice"),
                615 * MIB,
                285 * MIB,
                295 * MIB,
            ),
            cg(
                &format!("{own}/system.slice/hog.service"),
                615 * MIB,
                285 * MIB,
                295 * MIB,
            ),
            cg(
                &format!("{pod_b}/crio-conmon-{}", "c".repeat(64)),
                10 * MIB,
                5 * MIB,
                5 * MIB,
            ),
        ]);
        input.v1_num_cgroups = Some(35);
        let b = breakdown(&input);
        let before = breakdown(&v1_input());
        assert_eq!(b.pods.by_qos.guaranteed, 640 * MIB);
        assert_eq!(b.pods.by_qos, before.pods.by_qos);
        assert_eq!(b.pods.bytes, before.pods.bytes);
        assert_eq!(b.pods.top, before.pods.top, "one entry per pod");
        assert_eq!(b.dying_cgroups.bytes, before.dying_cgroups.bytes);
        let sum: i128 = parts(&b).iter().map(|p| p.1).sum();
        assert_eq!(sum, i128::from(b.total_bytes));
    }

    #[test]
    fn kernel_memory_charged_to_cgroups_is_counted_once() {
        let b = breakdown(&v1_input());
        // usage − lru of the top levels: 100 + 50 + 5.
        assert_eq!(b.kernel.charged_to_cgroups_bytes, 155 * MIB);
        assert_eq!(b.kernel.bytes, (300 - 155) * MIB);
        // Cached + Buffers − the top levels' file, less the root's dying.
        assert_eq!(b.page_cache_unowned_bytes, (1110 - 1040 - 20) * MIB);
        assert_eq!(b.unowned_anon_bytes, (700 - 650) * MIB);
    }

    #[test]
    fn v2_counts_dying_only_where_no_process_keeps_the_residual() {
        let mut pod = cg(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod33333333_3333_3333_3333_333333333333.slice",
            300 * MIB,
            0,
            300 * MIB,
        );
        pod.nr_dying_descendants = Some(3);
        let mut svc = cg("/system.slice/foo.service", 100 * MIB, 50 * MIB, 50 * MIB);
        svc.has_procs = true;
        svc.nr_dying_descendants = Some(1);
        let mut root = cg("/", 0, 50 * MIB, 350 * MIB);
        root.usage = None;
        root.nr_dying_descendants = Some(4);
        let mut kube = cg("/kubepods.slice", 300 * MIB, 0, 300 * MIB);
        kube.nr_dying_descendants = Some(3);
        let mut be = cg(
            "/kubepods.slice/kubepods-besteffort.slice",
            300 * MIB,
            0,
            300 * MIB,
        );
        be.nr_dying_descendants = Some(3);
        let mut sys = cg("/system.slice", 100 * MIB, 50 * MIB, 50 * MIB);
        sys.nr_dying_descendants = Some(1);
        let input = Readings {
            v2: true,
            meminfo: Meminfo {
                cached: 340 * MIB,
                anon_pages: 50 * MIB,
                ..meminfo()
            },
            cgroups: vec![root, kube, be, pod, sys, svc],
            v1_num_cgroups: None,
        };
        let mut input = input;
        // Free memory so that nothing is unaccounted: the summary then
        // names the dying cgroups.
        let unaccounted = breakdown(&input).unaccounted_bytes;
        input.meminfo.free = input.meminfo.free.saturating_add_signed(unaccounted);
        let b = breakdown(&input);
        assert_eq!(b.unaccounted_bytes, 0);
        assert_eq!(b.dying_cgroups.count, Some(4));
        assert_eq!(b.dying_cgroups.bytes, 300 * MIB);
        let d = &b.dying_cgroups.by_parent[0];
        assert_eq!(d.count, Some(3));
        assert_eq!(
            d.pod.as_deref(),
            Some("33333333-3333-3333-3333-333333333333")
        );
        // A service with a process: its residual stays its own.
        assert_eq!(b.system.bytes, 100 * MIB);
        assert_eq!(b.pods.bytes, 0);
        assert_eq!(b.pods.by_qos.besteffort, 0);
        let sum: i128 = parts(&b).iter().map(|p| p.1).sum();
        assert_eq!(sum, i128::from(b.total_bytes));
        let summary = crate::output::wording::node_memory_summary(&b);
        assert!(summary.contains("dying cgroups"), "{summary}");
    }

    #[test]
    fn nothing_read_still_adds_up() {
        let b = breakdown(&Readings::default());
        assert_eq!(b.unaccounted_bytes, 0);
        let b = breakdown(&Readings {
            meminfo: Meminfo {
                total: 100,
                free: 300,
                ..Meminfo::default()
            },
            ..Readings::default()
        });
        assert_eq!(b.unaccounted_bytes, -200);
        assert_eq!(b.dying_cgroups.count, None);
    }

    #[test]
    fn proc_cgroups_memory_count() {
        let text =
            "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t1\t9\t1\nmemory\t4\t54\t1\n";
        assert_eq!(v1_num_cgroups(text), Some(54));
        assert_eq!(v1_num_cgroups("memory\t4\n"), None);
        assert_eq!(v1_num_cgroups(""), None);
    }

    #[test]
    fn the_summary_names_the_largest_share_outside_pods() {
        let b = breakdown(&v1_input());
        assert_eq!(largest_outside_pods(&b).map(|p| p.0), Some("system"));
        let summary = crate::output::wording::node_memory_summary(&b);
        assert!(summary.contains("system.slice"), "{summary}");
    }

    #[test]
    fn parents() {
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
    }

    fn dying(count: u64, bytes: u64) -> Dying {
        Dying {
            count: Some(count),
            bytes,
            by_parent: Vec::new(),
        }
    }

    #[test]
    fn dying_cgroups_growing_over_a_window_give_one_finding_an_hour() {
        let mut w = DyingWatch::default();
        let min = DYING_SAMPLE_NS;
        let mut found = Vec::new();
        // 100 more every minute, for two hours.
        for i in 0..120u64 {
            assert!(w.due(i * min, DYING_SAMPLE_NS));
            if let Some(g) = w.sample(i * min, &dying(1000 + 100 * i, 0)) {
                found.push((i, g));
            }
            assert!(!w.due(i * min + min / 2, DYING_SAMPLE_NS));
        }
        let at: Vec<u64> = found.iter().map(|f| f.0).collect();
        assert_eq!(at, [9, 69], "a full window first, then once an hour");
        let g = &found[0].1;
        assert_eq!((g.count_before, g.count), (Some(1000), Some(1900)));
        assert_eq!(g.window_s, 9 * 60);
    }

    #[test]
    fn dying_cgroups_that_come_and_go_give_none() {
        let mut w = DyingWatch::default();
        for i in 0..60u64 {
            // Up and down: freed as fast as made.
            let n = if i % 2 == 0 { 1000 } else { 1400 };
            assert!(w.sample(i * DYING_SAMPLE_NS, &dying(n, 0)).is_none());
        }
        // Growing, but by too little.
        let mut w = DyingWatch::default();
        for i in 0..60u64 {
            assert!(w.sample(i * DYING_SAMPLE_NS, &dying(1000 + i, 0)).is_none());
        }
        // Unknown counts never grow; pinned memory still can.
        let mut w = DyingWatch::default();
        let found = (0..10u64).find_map(|i| {
            w.sample(
                i * DYING_SAMPLE_NS,
                &Dying {
                    count: None,
                    bytes: i * 64 * MIB,
                    by_parent: Vec::new(),
                },
            )
        });
        assert_eq!(found.map(|g| g.bytes), Some(9 * 64 * MIB));
    }

    /// This machine's breakdown adds up (skipped where no memory hierarchy
    /// is mounted at the usual place).
    #[test]
    fn this_machines_breakdown_adds_up() {
        let (root, v2) = if Path::new("/sys/fs/cgroup/memory/memory.stat").exists() {
            (Path::new("/sys/fs/cgroup/memory"), false)
        } else if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            (Path::new("/sys/fs/cgroup"), true)
        } else {
            eprintln!("skipped: no memory cgroup hierarchy here");
            return;
        };
        let input = read(root, v2).expect("reading this machine");
        assert!(input.cgroups.iter().any(|c| c.path == "/"));
        let b = breakdown(&input);
        let sum: i128 = parts(&b).iter().map(|p| p.1).sum();
        assert_eq!(sum, i128::from(b.total_bytes));
        assert!(b.total_bytes > 0 && b.free_bytes <= b.total_bytes);
        // Not a cgroup hierarchy: a clear error.
        let e = read(Path::new("/proc/self"), false).expect_err("not a hierarchy");
        assert!(e.to_string().contains("/proc/self"), "{e}");
    }
}
