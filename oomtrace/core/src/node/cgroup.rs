//! The node's memory-cgroup tree: scanned from cgroupfs at start, then kept
//! current from the kernel's cgroup events. A cgroup id is its kernfs node
//! id (the directory's inode number), the key the OOM hooks report. Removed
//! cgroups stay as tombstones for a while: a container's cgroup is often
//! gone milliseconds after its last process was killed.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    fs,
    os::unix::{ffi::OsStrExt, fs::MetadataExt},
    path::{Path, PathBuf},
};

use serde::Serialize;

use crate::kernel::event::{self, Event};

/// How long a removed cgroup keeps its identity.
pub const TOMBSTONE_NS: u64 = 10 * 60 * 1_000_000_000;
/// At most this many tombstones (oldest go first): under cgroup churn
/// (thousands of containers a second) ten minutes of them would be millions
/// of entries. At that rate the ones kept still cover seconds.
pub const MAX_TOMBSTONES: usize = 16_384;
/// Expired cgroups between sweeps of the pid map: a sweep walks every pid,
/// so it is batched rather than done at each expiry.
const PID_SWEEP_EVERY: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct CgroupId(pub u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Version {
    V1,
    V2,
}

/// Where the memory controller lives on this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Layout {
    pub version: Version,
    /// The memory hierarchy's mount: `<root>/memory` on v1, `<root>` on v2.
    pub memory_root: PathBuf,
    /// The hierarchy id the cgroup tracepoints report for it (0 on v2).
    pub hierarchy_id: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("cgroup root {0} does not exist (set --cgroup-root)")]
    Missing(PathBuf),
    #[error("no memory controller under {0}: neither cgroup v2 with `memory` in cgroup.controllers nor a v1 `memory` hierarchy")]
    NoMemory(PathBuf),
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Layout {
    /// Detects v1 (a `memory` hierarchy) or v2 (memory in the root's
    /// cgroup.controllers). A hybrid host with v2 mounted but without the
    /// memory controller counts as v1.
    pub fn detect(root: &Path) -> Result<Layout, LayoutError> {
        if !root.is_dir() {
            return Err(LayoutError::Missing(root.to_path_buf()));
        }
        let controllers = root.join("cgroup.controllers");
        if let Ok(text) = fs::read_to_string(&controllers) {
            if text.split_whitespace().any(|c| c == "memory") {
                return Ok(Layout {
                    version: Version::V2,
                    memory_root: root.to_path_buf(),
                    hierarchy_id: 0,
                });
            }
        }
        let v1 = root.join("memory");
        if v1.join("memory.limit_in_bytes").exists() {
            let hierarchy_id = memory_hierarchy_id()?;
            return Ok(Layout {
                version: Version::V1,
                memory_root: v1,
                hierarchy_id,
            });
        }
        Err(LayoutError::NoMemory(root.to_path_buf()))
    }
}

/// The v1 memory hierarchy's id, from /proc/cgroups.
fn memory_hierarchy_id() -> Result<u32, LayoutError> {
    let path = PathBuf::from("/proc/cgroups");
    let controllers = procfs::cgroups().map_err(|e| LayoutError::Io {
        path: path.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    controllers
        .0
        .into_iter()
        .find(|c| c.name == "memory")
        .map(|c| c.hierarchy)
        .ok_or(LayoutError::NoMemory(path))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Relative to the hierarchy root, as the kernel prints it: `/a/b`.
    pub path: String,
    /// boot-time ns of its rmdir, for tombstone expiry.
    pub removed_ns: Option<u64>,
}

#[derive(Clone, Debug, Default)]
pub struct CgroupTree {
    /// Ordered, so walks (and the machine reads they cause) happen in the
    /// same order live and in a replay.
    nodes: BTreeMap<CgroupId, Node>,
    /// Last memory cgroup each pid was attached to (from attach events).
    pids: HashMap<u32, CgroupId>,
    hierarchy_id: u32,
    /// Removals, oldest first: expiry pops from the front instead of
    /// walking every node at each rmdir (that walk made churn quadratic).
    tombstones: VecDeque<(u64, CgroupId)>,
    expired_since_sweep: usize,
}

impl CgroupTree {
    pub fn new(hierarchy_id: u32) -> Self {
        CgroupTree {
            hierarchy_id,
            ..Default::default()
        }
    }

    /// Walks the memory hierarchy. Directories that vanish mid-walk are
    /// skipped: the tree is racing a live node. Names that are not UTF-8 are
    /// escaped as the ring buffer's paths are (`event::escape_bytes`), so
    /// both give the same path.
    pub fn scan(layout: &Layout) -> Result<Self, LayoutError> {
        let mut tree = CgroupTree::new(layout.hierarchy_id);
        let root = &layout.memory_root;
        let meta = fs::metadata(root).map_err(|source| LayoutError::Io {
            path: root.clone(),
            source,
        })?;
        tree.insert(CgroupId(meta.ino()), "/".into());
        let mut stack = vec![(root.clone(), String::new())];
        while let Some((dir, rel)) = stack.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(ft) = entry.file_type() else { continue };
                if !ft.is_dir() {
                    continue;
                }
                let Ok(meta) = entry.metadata() else { continue };
                let name = entry.file_name();
                let child_rel = format!("{rel}/{}", event::escape_bytes(name.as_bytes()));
                tree.insert(CgroupId(meta.ino()), child_rel.clone());
                stack.push((entry.path(), child_rel));
            }
        }
        Ok(tree)
    }

    pub fn insert(&mut self, id: CgroupId, path: String) {
        self.nodes.insert(
            id,
            Node {
                path,
                removed_ns: None,
            },
        );
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn path(&self, id: CgroupId) -> Option<&str> {
        self.nodes.get(&id).map(|n| n.path.as_str())
    }

    pub fn cgroup_of_pid(&self, pid: u32) -> Option<CgroupId> {
        self.pids.get(&pid).copied()
    }

    /// Live (not removed) cgroups, for comparisons with a fresh walk.
    #[cfg(test)]
    pub fn live_paths(&self) -> impl Iterator<Item = &str> {
        self.nodes
            .values()
            .filter(|n| n.removed_ns.is_none())
            .map(|n| n.path.as_str())
    }

    pub fn live(&self) -> impl Iterator<Item = (CgroupId, &Node)> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.removed_ns.is_none())
            .map(|(id, n)| (*id, n))
    }

    /// Every live (id, path), sorted: the snapshot a recording starts from.
    pub fn entries(&self) -> Vec<(u64, String)> {
        let mut v: Vec<(u64, String)> = self.live().map(|(id, n)| (id.0, n.path.clone())).collect();
        v.sort();
        v
    }

    pub fn from_entries(hierarchy_id: u32, entries: &[(u64, String)]) -> Self {
        let mut t = CgroupTree::new(hierarchy_id);
        for (id, path) in entries {
            t.insert(CgroupId(*id), path.clone());
        }
        t
    }

    /// Applies a cgroup event of the memory hierarchy; other hierarchies and
    /// other events are ignored. Purges expired tombstones as time advances.
    pub fn apply(&mut self, ev: &Event) {
        match ev {
            Event::Mkdir(c) if c.root == self.hierarchy_id => {
                self.insert(CgroupId(c.id), event::path(&c.path, c.path_len));
            }
            Event::Rmdir(c) if c.root == self.hierarchy_id => {
                let path = event::path(&c.path, c.path_len);
                let node = self.nodes.entry(CgroupId(c.id)).or_insert(Node {
                    path,
                    removed_ns: None,
                });
                node.removed_ns = Some(c.header.boot_ns);
                self.tombstones
                    .push_back((c.header.boot_ns, CgroupId(c.id)));
                self.expire(c.header.boot_ns);
            }
            Event::Attach(a) if a.dst_root == self.hierarchy_id => {
                let id = CgroupId(a.dst_id);
                self.nodes.entry(id).or_insert_with(|| Node {
                    path: event::path(&a.path, a.path_len),
                    removed_ns: None,
                });
                self.pids.insert(a.pid, id);
            }
            _ => {}
        }
    }

    fn expire(&mut self, now_ns: u64) {
        while let Some(&(t, id)) = self.tombstones.front() {
            if now_ns.saturating_sub(t) < TOMBSTONE_NS && self.tombstones.len() <= MAX_TOMBSTONES {
                break;
            }
            self.tombstones.pop_front();
            // Unless the id (an inode number) was reused by a newer cgroup.
            if self.nodes.get(&id).is_some_and(|n| n.removed_ns == Some(t)) {
                self.nodes.remove(&id);
                self.expired_since_sweep += 1;
            }
        }
        // A pid left pointing at an expired cgroup only resolves to no path,
        // as it would after the sweep: sweeping can wait for a batch.
        if self.expired_since_sweep >= PID_SWEEP_EVERY {
            self.expired_since_sweep = 0;
            let nodes = &self.nodes;
            self.pids.retain(|_, id| nodes.contains_key(id));
        }
    }
}

/// Where this process's cgroup namespace is rooted, when it has one of its
/// own: containerd and CRI-O give every container (privileged ones on v1
/// excepted) a private cgroup namespace, in which /proc/PID/cgroup reads
/// paths relative to the namespace's root (`/../../kubepods/...`). The
/// kernel's records and the cgroupfs walk (the node's hierarchy, mounted
/// from the host) give full paths; [`CgroupNamespace::full_path`] turns the
/// relative ones into the same form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CgroupNamespace {
    /// The namespace root's full path in the memory hierarchy; None when
    /// it could not be found (relative paths are then unusable).
    pub root: Option<String>,
}

impl CgroupNamespace {
    /// None when /proc/self/cgroup names the cgroup this process is in (the
    /// host's cgroup namespace, or one rooted at the top); else the
    /// namespace's root, found by this process's pid in the `cgroup.procs`
    /// of the mounted hierarchy — a root of None when it is in none there
    /// (relative paths are then not used, rather than guessed).
    pub fn detect(tree: &CgroupTree, layout: &Layout) -> Option<Self> {
        let me = std::process::id();
        let holds_me = |path: &str| {
            fs::read_to_string(
                layout
                    .memory_root
                    .join(path.trim_start_matches('/'))
                    .join("cgroup.procs"),
            )
            .is_ok_and(|t| t.lines().any(|l| l.trim().parse() == Ok(me)))
        };
        let own = fs::read_to_string("/proc/self/cgroup")
            .ok()
            .and_then(|t| memory_cgroup_of(&t, layout.version == Version::V2))?;
        if !own.contains("/..") && holds_me(&own) {
            // Also what a namespace's own cgroupfs mount shows (its root as
            // `/`): the kernel's paths would then not match the walk's.
            let ns = |pid: &str| fs::metadata(format!("/proc/{pid}/ns/cgroup")).map(|m| m.ino());
            if let (Ok(me_ns), Ok(init_ns)) = (ns("self"), ns("1")) {
                if me_ns != init_ns && own == "/" {
                    tracing::warn!(
                        "{} looks like this cgroup namespace's own view, not the node's: mount the host's cgroupfs (hostPath /sys/fs/cgroup) and point --cgroup-root at it",
                        layout.memory_root.display()
                    );
                }
            }
            return None;
        }
        let root = tree
            .live()
            .find(|(_, node)| holds_me(&node.path))
            .and_then(|(_, node)| namespace_root(&node.path, &own));
        if root.is_none() {
            tracing::warn!(
                "this process (pid {me}, {own} in its own cgroup namespace) is in no cgroup under {} that explains it: /proc/PID/cgroup paths are not used (run with hostPID and the host's cgroupfs mounted)",
                layout.memory_root.display()
            );
        }
        Some(CgroupNamespace { root })
    }

    /// A path as /proc/PID/cgroup gives it inside this namespace, as the
    /// node's full path (`..` resolved against the namespace's root).
    pub fn full_path(&self, relative: &str) -> Option<String> {
        Some(full_path(self.root.as_deref()?, relative))
    }
}

/// The root of a namespace in which `full` reads as `relative` (no `..`).
fn namespace_root(full: &str, relative: &str) -> Option<String> {
    if relative.contains("/..") {
        return None;
    }
    let rel = relative.trim_end_matches('/');
    if rel.is_empty() {
        return Some(full.to_owned());
    }
    let root = full.strip_suffix(rel)?;
    Some(if root.is_empty() {
        "/".to_owned()
    } else {
        root.to_owned()
    })
}

fn full_path(root: &str, relative: &str) -> String {
    let mut parts: Vec<&str> = root.split('/').filter(|p| !p.is_empty()).collect();
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Parses a /proc/PID/cgroup text for the memory hierarchy's path (procfs'
/// parser; the fuzz target feeds this any text).
pub fn memory_cgroup_of(text: &str, v2: bool) -> Option<String> {
    let groups =
        <procfs::ProcessCGroups as procfs::FromBufRead>::from_buf_read(text.as_bytes()).ok()?;
    memory_cgroup(groups, v2)
}

/// v2: the unified hierarchy's line (`0::PATH`); v1: the hierarchy the
/// memory controller is bound to.
fn memory_cgroup(groups: procfs::ProcessCGroups, v2: bool) -> Option<String> {
    groups
        .into_iter()
        .find(|g| {
            if v2 {
                g.hierarchy == 0 && g.controllers.is_empty()
            } else {
                g.controllers.iter().any(|c| c == "memory")
            }
        })
        .map(|g| g.pathname)
}

/// A memory page counter at or above this many pages is no limit
/// (`PAGE_COUNTER_MAX` is `LONG_MAX / PAGE_SIZE`, ~2^51 with 4 KiB pages).
pub const UNLIMITED_PAGES: u64 = 1 << 50;

/// The parent of a cgroup path (`/a/b` → `/a`, `/a` → `/`); `None` for the
/// root or a path that is not absolute.
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rsplit_once('/') {
        Some(("", _)) => Some("/"),
        Some((up, _)) => Some(up),
        None => None,
    }
}

/// A cgroup path and its ancestors, nearest first, the root excluded.
pub fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(path), |p| parent(p)).take_while(|p| !p.is_empty() && *p != "/")
}

#[cfg(test)]
mod tests {
    #[test]
    fn ancestors_nearest_first_without_the_root() {
        let up: Vec<&str> = super::ancestors("/a/b/c").collect();
        assert_eq!(up, ["/a/b/c", "/a/b", "/a"]);
        assert_eq!(super::ancestors("/").count(), 0);
        assert_eq!(super::parent("/a"), Some("/"));
        assert_eq!(super::parent("a"), None);
    }

    #[test]
    fn namespace_relative_paths_resolve_to_the_nodes() {
        let root = "/kubepods.slice/kubepods-pod1.slice/cri-containerd-agent.scope";
        let ns = super::CgroupNamespace {
            root: Some(root.into()),
        };
        let full = |p: &str| ns.full_path(p).unwrap_or_default();
        assert_eq!(
            full("/../../kubepods-besteffort.slice/kubepods-besteffort-pod2.slice/cri-containerd-c2.scope"),
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod2.slice/cri-containerd-c2.scope"
        );
        assert_eq!(full("/"), root);
        assert_eq!(full("/sub"), format!("{root}/sub"));
        assert_eq!(
            full("/../../../../../../system.slice/kubelet.service"),
            "/system.slice/kubelet.service"
        );
        let at_root = super::CgroupNamespace {
            root: Some("/".into()),
        };
        assert_eq!(at_root.full_path("/a/b").as_deref(), Some("/a/b"));
        assert_eq!(
            super::namespace_root("/a/b/c", "/").as_deref(),
            Some("/a/b/c")
        );
        assert_eq!(
            super::namespace_root("/a/b/c", "/c").as_deref(),
            Some("/a/b")
        );
        assert_eq!(
            super::namespace_root("/a/b/c", "/a/b/c").as_deref(),
            Some("/")
        );
        assert_eq!(super::namespace_root("/a/b/c", "/x"), None);
        assert_eq!(super::namespace_root("/a/b/c", "/../c"), None);
        // Its root unknown: no path rather than a wrong one.
        assert_eq!(
            super::CgroupNamespace { root: None }.full_path("/../x"),
            None
        );
    }

    use super::*;
    use oomtrace_common::{CgroupEvent, Header, Kind, PATH_LEN, WIRE_VERSION};

    fn cg(kind: Kind, root: u32, id: u64, path: &str, ns: u64) -> Event {
        let mut p = [0u8; PATH_LEN];
        p[..path.len()].copy_from_slice(path.as_bytes());
        let c = CgroupEvent {
            header: Header {
                version: WIRE_VERSION,
                kind: kind as u16,
                cpu: 0,
                boot_ns: ns,
            },
            root,
            level: 1,
            id,
            path_len: path.len() as u32,
            _pad: 0,
            path: p,
        };
        match kind {
            Kind::CgroupMkdir => Event::Mkdir(c),
            _ => Event::Rmdir(c),
        }
    }

    #[test]
    fn removed_cgroups_keep_identity_until_expiry() {
        let mut t = CgroupTree::new(5);
        t.apply(&cg(Kind::CgroupMkdir, 5, 10, "/kubepods/pod1", 1));
        t.apply(&cg(Kind::CgroupMkdir, 3, 11, "/other-hierarchy", 1));
        assert_eq!(t.path(CgroupId(10)), Some("/kubepods/pod1"));
        assert_eq!(t.path(CgroupId(11)), None, "other hierarchies are ignored");
        t.apply(&cg(Kind::CgroupRmdir, 5, 10, "/kubepods/pod1", 2));
        assert_eq!(t.path(CgroupId(10)), Some("/kubepods/pod1"), "tombstone");
        assert_eq!(t.live_paths().count(), 0);
        t.apply(&cg(Kind::CgroupRmdir, 5, 12, "/x", 2 + TOMBSTONE_NS));
        assert_eq!(t.path(CgroupId(10)), None, "expired");
    }

    #[test]
    fn tombstones_are_capped_and_reused_ids_survive_expiry() {
        let mut t = CgroupTree::new(5);
        let n = MAX_TOMBSTONES as u64 + 10;
        for id in 0..n {
            t.apply(&cg(Kind::CgroupMkdir, 5, 100 + id, "/c", id));
            t.apply(&cg(Kind::CgroupRmdir, 5, 100 + id, "/c", id));
        }
        assert_eq!(t.len(), MAX_TOMBSTONES, "oldest tombstones dropped");
        assert_eq!(t.path(CgroupId(100)), None);
        assert_eq!(t.path(CgroupId(100 + n - 1)), Some("/c"));
        // An id removed, then reused by a new cgroup: expiry of the old
        // removal must not take the new one.
        let mut t = CgroupTree::new(5);
        t.apply(&cg(Kind::CgroupMkdir, 5, 7, "/old", 1));
        t.apply(&cg(Kind::CgroupRmdir, 5, 7, "/old", 2));
        t.apply(&cg(Kind::CgroupMkdir, 5, 7, "/new", 3));
        t.apply(&cg(Kind::CgroupRmdir, 5, 8, "/x", 3 + TOMBSTONE_NS));
        assert_eq!(t.path(CgroupId(7)), Some("/new"));
        assert_eq!(t.live_paths().collect::<Vec<_>>(), vec!["/new"]);
    }

    #[test]
    fn names_that_are_not_utf8_give_one_path_from_every_source() {
        use std::{ffi::OsStr, os::unix::ffi::OsStrExt};
        let root =
            std::env::temp_dir().join(format!("oomtrace-cgroup-scan-{}", std::process::id()));
        let odd = root.join(OsStr::from_bytes(b"pod\xff"));
        let unit = root.join("system.slice/getty\\x2dtty1.service");
        fs::create_dir_all(&odd).expect("mkdir");
        fs::create_dir_all(&unit).expect("mkdir");
        let tree = CgroupTree::scan(&Layout {
            version: Version::V1,
            memory_root: root.clone(),
            hierarchy_id: 4,
        });
        let _ = fs::remove_dir_all(&root);
        let tree = tree.expect("scan");
        let mut paths: Vec<&str> = tree.live_paths().collect();
        paths.sort();
        assert_eq!(
            paths,
            vec![
                "/",
                "/pod\\xff",
                "/system.slice",
                "/system.slice/getty\\x2dtty1.service"
            ]
        );
        // The same cgroup from the ring buffer and from /proc/PID/cgroup.
        let mut raw = [0u8; PATH_LEN];
        raw[..7].copy_from_slice(b"/pod\xff\0x");
        assert_eq!(event::path(&raw, 5), "/pod\\xff");
        let proc_text = event::escape_bytes(b"4:memory:/pod\xff\n1:name=systemd:/\n");
        assert_eq!(
            memory_cgroup_of(&proc_text, false).as_deref(),
            Some("/pod\\xff")
        );
    }

    #[test]
    fn missing_root_is_named() {
        let err = Layout::detect(Path::new("/nonexistent/cgroup")).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/cgroup"));
    }
}
