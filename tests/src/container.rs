//! Real containers for the end-to-end scenarios: Debian's `runc` starts them
//! from a tiny busybox rootfs, with their own pid, mount, uts and ipc
//! namespaces, under kubelet-shaped cgroups (runc's cgroupfs driver:
//! `linux.cgroupsPath` = `/kubepods/<qos>/pod<uid>/<container-id>`, made in
//! every mounted hierarchy, memory included), with the container's memory
//! limit set as the kubelet sets it (swap limit = memory limit: no swap).
//!
//! ```no_run
//! use oomtrace_e2e::container::{Exit, Pod, Qos};
//! let pod = Pod::new(Qos::Burstable);
//! let c = pod
//!     .container(&["oomtrace-hog", "--mib", "256"])
//!     .memory_limit(64 << 20)
//!     .start();
//! assert_eq!(c.wait_exit(oomtrace_e2e::DEADLINE), Some(Exit::Signal(9)));
//! ```
//!
//! How it is done, and why:
//! - One `runc run --keep` in the foreground per container, a child of the
//!   test process: its exit status is the container init's (runc reports a
//!   death by signal n as 128 + n), and nothing relies on the host's PID 1 to
//!   reap. `--keep` leaves the stopped container and its cgroup in place
//!   after init died (to read its counters) until [`Container::delete`] or
//!   drop (`runc kill KILL`, wait, `runc delete --force`).
//! - One runc state root per test process (`/tmp/oomtrace-e2e-runc-<pid>`)
//!   and one bundle directory per container
//!   (`/tmp/oomtrace-e2e-bundles-<pid>/<id>`: `config.json`, and `output`,
//!   where runc copies the container processes' stdout and stderr from the
//!   pipes it gives them, and writes its own errors).
//! - The rootfs ([`RootFs`]) is built once per test process and shared
//!   read-only by every container: busybox with its applets, and
//!   `/bin/oomtrace-hog` with the shared libraries `ldd` names, copied at
//!   the same paths (so the host's library layout does not matter).
//! - No network namespace (host network): no scenario needs one, and it
//!   keeps starts fast.
//! - No cgroup namespace unless asked ([`ContainerSpec::cgroup_namespace`]):
//!   containerd and the kubelet use none on cgroup v1. Either way, a
//!   bind-mounted host cgroupfs shows the host's whole tree and a process
//!   inside can write any pid it sees into any `cgroup.procs` there
//!   (scenario: escaped_process).
//! - A pid namespace: the container's init is pid 1 inside, so signals from
//!   the host other than SIGKILL and SIGSTOP reach it only if it installed a
//!   handler (for a SIGTERM eviction, make init a shell with a `trap`).
//! - Pods ([`Pod`]) make their `pod<uid>` cgroup in every hierarchy first
//!   (retrying when a concurrent test removes a shared parent under it) and
//!   remove it on drop; the shared QoS parents (`/kubepods`,
//!   `/kubepods/burstable`, ...) stay, as on a real node, so that no test
//!   pulls a parent from under another one's mkdir.

use std::{
    fs::{self, File, OpenOptions},
    io::ErrorKind,
    os::unix::{fs::symlink, process::ExitStatusExt},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        Mutex, OnceLock,
    },
    time::{Duration, Instant},
};

use serde_json::json;

use crate::{
    bin, cgroup_pids, kill, kill_all, memory_root, require_root, unique_container_id, unique_uid,
    wait_until, CgroupVersion, DEADLINE,
};

/// How long teardown waits for processes and cgroups to go.
const TEARDOWN: Duration = Duration::from_secs(10);

/// How a container's process ended, from the status runc passes on: a death
/// by signal n arrives as exit code 128 + n and is reported as `Signal(n)`
/// (so a process that itself exits with 137 also reads as `Signal(9)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    fn from_runc(status: ExitStatus) -> Exit {
        match (status.code(), status.signal()) {
            (Some(c), _) if c > 128 => Exit::Signal(c - 128),
            (Some(c), _) => Exit::Code(c),
            // runc itself was killed: report that signal.
            (None, Some(s)) => Exit::Signal(s),
            (None, None) => Exit::Code(-1),
        }
    }
}

/// The container root filesystem, shared read-only by every container of
/// this test process: `/bin/busybox` and a symlink per applet (`sh`,
/// `sleep`, `cat`, `echo`, ...), `/bin/oomtrace-hog` and its shared
/// libraries, and empty `/proc`, `/dev`, `/sys`, `/tmp` mount points.
pub struct RootFs {
    pub dir: PathBuf,
}

impl RootFs {
    /// Built on first use, in `/tmp/oomtrace-e2e-rootfs-<pid>` (the
    /// directories of test processes that are gone are removed then).
    pub fn get() -> &'static RootFs {
        static ROOTFS: OnceLock<RootFs> = OnceLock::new();
        ROOTFS.get_or_init(RootFs::build)
    }

    fn build() -> RootFs {
        remove_stale_dirs();
        let dir = PathBuf::from(format!("/tmp/oomtrace-e2e-rootfs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for d in ["bin", "proc", "dev", "sys", "tmp", "etc"] {
            mkdir_p(&dir.join(d));
        }
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("busybox is missing: apt-get install busybox-static (cargo xtask test does)");
        install_host_binary(&dir, &busybox, "bin/busybox");
        let list = Command::new(&busybox)
            .arg("--list")
            .output()
            .expect("running busybox --list");
        for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
            if applet != "busybox" && !applet.contains('/') {
                let _ = symlink("busybox", dir.join("bin").join(applet));
            }
        }
        install_host_binary(&dir, &bin("oomtrace-hog"), "bin/oomtrace-hog");
        fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").expect("etc/passwd");
        fs::write(dir.join("etc/group"), "root:x:0:\n").expect("etc/group");
        RootFs { dir }
    }
}

fn mkdir_p(dir: &Path) {
    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir -p {}: {e}", dir.display()));
}

/// Copies a host binary into the rootfs at `dest`, and the shared libraries
/// `ldd` lists for it at their host paths (nothing for a static binary).
fn install_host_binary(rootfs: &Path, host: &Path, dest: &str) {
    let to = rootfs.join(dest);
    fs::copy(host, &to)
        .unwrap_or_else(|e| panic!("copying {} into the rootfs: {e}", host.display()));
    let ldd = Command::new("ldd")
        .arg(host)
        .output()
        .expect("running ldd (Debian: libc-bin)");
    for lib in String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        let to = rootfs.join(lib.trim_start_matches('/'));
        if to.exists() {
            continue;
        }
        mkdir_p(to.parent().expect("a library path has a parent"));
        fs::copy(lib, &to).unwrap_or_else(|e| panic!("copying {lib} into the rootfs: {e}"));
    }
}

/// Removes the rootfs and bundle directories of test processes that are
/// gone, after deleting any container their runc state root still lists
/// (a test process killed before its guards ran).
pub(crate) fn remove_stale_dirs() {
    let Ok(entries) = fs::read_dir("/tmp") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = ["rootfs", "bundles", "runc", "systemd"]
            .iter()
            .find_map(|kind| {
                name.strip_prefix(&format!("oomtrace-e2e-{kind}-"))
                    .and_then(|p| p.parse::<u32>().ok())
            })
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let path = e.path();
        if name.starts_with("oomtrace-e2e-runc-") {
            let root = path.display().to_string();
            if let Ok(out) = Command::new(runc())
                .args(["--root", &root, "list", "-q"])
                .output()
            {
                for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new(runc())
                        .args(["--root", &root, "delete", "--force", id])
                        .output();
                }
            }
        }
        let _ = fs::remove_dir_all(&path);
    }
}

/// The runc binary (root's PATH may lack /usr/sbin).
fn runc() -> &'static Path {
    static RUNC: OnceLock<PathBuf> = OnceLock::new();
    RUNC.get_or_init(|| {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .chain(["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
            .map(|d| d.join("runc"))
            .find(|p| p.exists())
            .expect("runc is missing: apt-get install runc (cargo xtask test does)")
    })
}

fn state_root() -> String {
    format!("/tmp/oomtrace-e2e-runc-{}", std::process::id())
}

fn bundles_dir() -> PathBuf {
    PathBuf::from(format!("/tmp/oomtrace-e2e-bundles-{}", std::process::id()))
}

fn runc_cmd() -> Command {
    let mut c = Command::new(runc());
    c.arg("--root").arg(state_root());
    c
}

/// Every mounted cgroup hierarchy (v1 controllers, named ones, and the v2
/// tree, hybrid or not): runc's cgroupfs driver makes the container's path
/// in each.
pub fn cgroup_mounts() -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").expect("/proc/self/mountinfo");
    let mut mounts: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fstype = post.split_whitespace().next()?;
            let mut f = pre.split_whitespace();
            let root = f.nth(3)?;
            let point = f.next()?;
            (matches!(fstype, "cgroup" | "cgroup2") && root == "/").then(|| PathBuf::from(point))
        })
        .collect();
    mounts.sort();
    mounts.dedup();
    mounts
}

/// Kubernetes QoS classes, which pick the pod cgroup's parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qos {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl Qos {
    /// The pod cgroup for `uid` (cgroupfs driver).
    pub fn pod_cgroup(self, uid: &str) -> String {
        match self {
            Qos::Guaranteed => format!("/kubepods/pod{uid}"),
            Qos::Burstable => format!("/kubepods/burstable/pod{uid}"),
            Qos::BestEffort => format!("/kubepods/besteffort/pod{uid}"),
        }
    }
}

/// A pod's cgroup (`/kubepods/<qos>/pod<uid>`, fresh uid) in every
/// hierarchy; removed on drop with whatever is left inside. Declare it
/// before its containers so they are dropped (deleted) first.
pub struct Pod {
    pub uid: String,
    pub qos: Qos,
    /// The pod cgroup path, relative to each hierarchy's root.
    pub cgroup: String,
    created: Vec<PathBuf>,
}

impl Pod {
    pub fn new(qos: Qos) -> Pod {
        Pod::new_in("", qos)
    }

    /// A pod under `prefix` (e.g. a [`Node`]'s own kubepods tree).
    pub fn new_in(prefix: &str, qos: Qos) -> Pod {
        require_root();
        let uid = unique_uid();
        let cgroup = format!("{prefix}{}", qos.pod_cgroup(&uid));
        let rel = cgroup.trim_start_matches('/');
        let mut pod = Pod {
            uid,
            qos,
            cgroup: cgroup.clone(),
            created: Vec::new(),
        };
        let (memory, version) = memory_root();
        for mount in cgroup_mounts() {
            let dir = mount.join(rel);
            let deadline = Instant::now() + TEARDOWN;
            loop {
                if version == CgroupVersion::V2 && mount == memory {
                    // The pod's memory limit needs the controller enabled
                    // down to it.
                    let mut d = mount.clone();
                    for part in Path::new(rel).parent().into_iter().flat_map(|p| p.iter()) {
                        let _ = fs::write(d.join("cgroup.subtree_control"), "+memory");
                        d = d.join(part);
                        let _ = fs::create_dir(&d);
                    }
                    let _ = fs::write(d.join("cgroup.subtree_control"), "+memory");
                }
                match fs::create_dir_all(&dir) {
                    Ok(()) => break,
                    // Another test removed a shared parent mid-way: again.
                    Err(e) if e.kind() == ErrorKind::NotFound && Instant::now() < deadline => {}
                    Err(e) => panic!("mkdir -p {}: {e}", dir.display()),
                }
            }
            pod.created.push(dir);
        }
        pod
    }

    /// The pod cgroup's directory in the memory hierarchy.
    pub fn memory_dir(&self) -> PathBuf {
        memory_root().0.join(self.cgroup.trim_start_matches('/'))
    }

    /// A pod-level memory limit (the kubelet sets one when every container
    /// has a limit).
    pub fn set_memory_limit(&self, bytes: u64) {
        set_memory_limit(&self.memory_dir(), bytes);
    }

    /// A container of this pod running `args` as its init: fresh 64-hex id,
    /// cgroupsPath `<pod cgroup>/<id>`.
    pub fn container(&self, args: &[&str]) -> ContainerSpec {
        let id = unique_container_id();
        ContainerSpec {
            cgroups_path: format!("{}/{id}", self.cgroup),
            id,
            args: args.iter().map(|a| a.to_string()).collect(),
            memory_limit: None,
            mounts: Vec::new(),
            hostname: format!("pod-{}", &self.uid[self.uid.len() - 12..]),
            cgroup_namespace: false,
            host_pid: false,
            oom_score_adj: None,
            rootfs: None,
            env: Vec::new(),
            tmpfs: Vec::new(),
            sysfs: false,
            extra_caps: Vec::new(),
        }
    }
}

fn set_memory_limit(dir: &Path, bytes: u64) {
    crate::set_memory_limit(dir, bytes).unwrap_or_else(|e| panic!("{e:#}"));
}

impl Drop for Pod {
    fn drop(&mut self) {
        for dir in &self.created {
            remove_tree(dir);
        }
    }
}

/// Kills every process in a cgroup subtree and removes it, deepest first.
fn remove_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    let gone = wait_until(TEARDOWN, || {
        kill_all(dir);
        match fs::remove_dir(dir) {
            Ok(()) => true,
            Err(e) => e.kind() == ErrorKind::NotFound,
        }
    });
    if !gone {
        eprintln!("oomtrace-e2e: could not remove cgroup {}", dir.display());
    }
}

/// A bind mount of a host path into the container (`rbind`: the mounts
/// below it come along). `read_only` remounts only the top mount read-only,
/// as runc does for `ro` binds: mounts below it stay writable. Binding
/// `/sys/fs/cgroup` read-only therefore leaves every v1 controller writable,
/// the Spin pods' escape route (seed 001).
#[derive(Clone, Debug)]
pub struct BindMount {
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
}

impl BindMount {
    pub fn rw(source: impl Into<PathBuf>, destination: &str) -> BindMount {
        BindMount {
            source: source.into(),
            destination: destination.to_string(),
            read_only: false,
        }
    }

    pub fn ro(source: impl Into<PathBuf>, destination: &str) -> BindMount {
        BindMount {
            read_only: true,
            ..BindMount::rw(source, destination)
        }
    }
}

/// What to run: made by [`Pod::container`], adjusted with the builder
/// methods or the public fields, then [`ContainerSpec::start`]ed.
#[derive(Clone, Debug)]
pub struct ContainerSpec {
    /// 64 hex digits, as containerd and CRI-O name containers.
    pub id: String,
    /// `linux.cgroupsPath`, relative to each hierarchy's root.
    pub cgroups_path: String,
    /// The init process; `PATH=/bin` (busybox applets, `oomtrace-hog`).
    pub args: Vec<String>,
    /// `linux.resources.memory.limit` (and `.swap` = the same: no swap).
    pub memory_limit: Option<u64>,
    pub mounts: Vec<BindMount>,
    pub hostname: String,
    /// A private cgroup namespace (`linux.namespaces` type `cgroup`).
    pub cgroup_namespace: bool,
    /// The host's pid namespace (a `hostPID: true` pod: node agents,
    /// debug pods).
    pub host_pid: bool,
    /// `process.oomScoreAdj` (the kubelet sets it from the QoS class).
    /// Below the test process's own value it needs CAP_SYS_RESOURCE, which
    /// root lacks on some CI hosts (this one): runc then fails to start.
    pub oom_score_adj: Option<i32>,
    /// The root filesystem (read-only); `None`: the shared busybox one
    /// ([`RootFs`]).
    pub rootfs: Option<PathBuf>,
    /// Environment beside `PATH=/bin` and `HOME=/` (which a `PATH=` or
    /// `HOME=` here replaces).
    pub env: Vec<String>,
    /// More tmpfs mounts (`/run`, `/var`, ...), beside `/dev` and `/tmp`.
    pub tmpfs: Vec<String>,
    /// A read-only sysfs at `/sys` (mounted before the bind mounts, so a
    /// bind of `/sys/fs/cgroup` lands on it).
    pub sysfs: bool,
    /// Capabilities beside containerd's default set.
    pub extra_caps: Vec<&'static str>,
}

impl ContainerSpec {
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    pub fn mount(mut self, m: BindMount) -> Self {
        self.mounts.push(m);
        self
    }

    pub fn cgroup_namespace(mut self) -> Self {
        self.cgroup_namespace = true;
        self
    }

    pub fn host_pid(mut self) -> Self {
        self.host_pid = true;
        self
    }

    pub fn oom_score_adj(mut self, adj: i32) -> Self {
        self.oom_score_adj = Some(adj);
        self
    }

    pub fn start(self) -> Container {
        Container::start(self)
    }

    /// The OCI runtime config (config.json).
    pub fn oci_config(&self, rootfs: &Path) -> serde_json::Value {
        const CAPS: &[&str] = &[
            // containerd's and Docker's default set.
            "CAP_CHOWN",
            "CAP_DAC_OVERRIDE",
            "CAP_FSETID",
            "CAP_FOWNER",
            "CAP_MKNOD",
            "CAP_NET_RAW",
            "CAP_SETGID",
            "CAP_SETUID",
            "CAP_SETFCAP",
            "CAP_SETPCAP",
            "CAP_NET_BIND_SERVICE",
            "CAP_SYS_CHROOT",
            "CAP_KILL",
            "CAP_AUDIT_WRITE",
        ];
        let caps: Vec<&str> = CAPS.iter().chain(&self.extra_caps).copied().collect();
        let key = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
        let mut env: Vec<String> = ["PATH=/bin", "HOME=/"]
            .into_iter()
            .filter(|base| !self.env.iter().any(|e| key(e) == key(base)))
            .map(str::to_string)
            .collect();
        env.extend(self.env.iter().cloned());
        let mut process = json!({
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": self.args,
            "env": env,
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": true,
        });
        if let Some(adj) = self.oom_score_adj {
            process["oomScoreAdj"] = json!(adj);
        }
        let mut mounts = vec![
            json!({"destination": "/proc", "type": "proc", "source": "proc",
                   "options": ["nosuid", "noexec", "nodev"]}),
            json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                   "options": ["nosuid", "strictatime", "mode=755", "size=1m"]}),
            json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                   "options": ["nosuid", "nodev", "mode=1777"]}),
        ];
        for dir in &self.tmpfs {
            mounts.push(
                json!({"destination": dir, "type": "tmpfs", "source": "tmpfs",
                               "options": ["nosuid", "nodev", "mode=755"]}),
            );
        }
        if self.sysfs {
            mounts.push(
                json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
                               "options": ["nosuid", "noexec", "nodev", "ro"]}),
            );
        }
        for m in &self.mounts {
            mounts.push(json!({
                "destination": m.destination,
                "type": "bind",
                "source": m.source,
                "options": ["rbind", if m.read_only { "ro" } else { "rw" }, "nosuid", "nodev"],
            }));
        }
        let mut namespaces = vec![
            json!({"type": "ipc"}),
            json!({"type": "uts"}),
            json!({"type": "mount"}),
        ];
        if !self.host_pid {
            namespaces.push(json!({"type": "pid"}));
        }
        if self.cgroup_namespace {
            namespaces.push(json!({"type": "cgroup"}));
        }
        let mut resources = json!({"devices": [{"allow": false, "access": "rwm"}]});
        if let Some(limit) = self.memory_limit {
            resources["memory"] = json!({"limit": limit, "swap": limit});
        }
        json!({
            "ociVersion": "1.0.2",
            "process": process,
            "root": {"path": rootfs, "readonly": true},
            "hostname": self.hostname,
            "mounts": mounts,
            "linux": {
                "cgroupsPath": self.cgroups_path,
                "resources": resources,
                "namespaces": namespaces,
            },
        })
    }
}

struct Runc {
    run: Child,
    deleted: bool,
}

/// A running (or, after its init died, stopped) container. Dropping it runs
/// `runc delete --force` (SIGKILL to everything in it, cgroup removed),
/// also when a test failed.
pub struct Container {
    pub id: String,
    pub cgroups_path: String,
    /// The host pid of the container's init (pid 1 inside).
    pub init_pid: u32,
    /// How long `runc run` took until init was running.
    pub start_time: Duration,
    bundle: PathBuf,
    runc: Mutex<Runc>,
}

impl Container {
    /// Starts the container and waits (up to [`DEADLINE`]) until its init
    /// runs the spec's program (or has already exited).
    pub fn start(spec: ContainerSpec) -> Container {
        require_root();
        let rootfs = spec
            .rootfs
            .clone()
            .unwrap_or_else(|| RootFs::get().dir.clone());
        let t0 = Instant::now();
        let bundle = bundles_dir().join(&spec.id);
        mkdir_p(&bundle);
        let config = serde_json::to_vec_pretty(&spec.oci_config(&rootfs)).expect("json");
        fs::write(bundle.join("config.json"), config).expect("writing config.json");
        let output = File::create(bundle.join("output")).expect("creating the output file");
        let pid_file = bundle.join("init.pid");
        let run = runc_cmd()
            .arg("run")
            .arg("--keep")
            .arg("--bundle")
            .arg(&bundle)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(&spec.id)
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("dup"))
            .stderr(output)
            .spawn()
            .expect("spawning runc run");
        // From here on, a failed assert still deletes the container.
        let mut c = Container {
            id: spec.id,
            cgroups_path: spec.cgroups_path,
            init_pid: 0,
            start_time: Duration::ZERO,
            bundle,
            runc: Mutex::new(Runc {
                run,
                deleted: false,
            }),
        };
        let pid = c.wait_init_pid(&pid_file);
        // The pid file is written as init is released to execve the
        // program: wait until it has (or already exited).
        let execed = wait_until(DEADLINE, || {
            fs::read_link(format!("/proc/{pid}/exe"))
                .map(|exe| !exe.to_string_lossy().contains("runc"))
                .unwrap_or(true)
        });
        assert!(execed, "container {}: init never left runc", c.id);
        c.init_pid = pid;
        c.start_time = t0.elapsed();
        c
    }

    /// Waits until runc wrote init's pid, or panics with the output if
    /// `runc run` exits first or the deadline passes.
    fn wait_init_pid(&self, pid_file: &Path) -> u32 {
        let read = || {
            fs::read_to_string(pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
        };
        let mut failed = None;
        wait_until(DEADLINE, || {
            if read().is_some() {
                return true;
            }
            let mut r = self.runc.lock().expect("runc");
            if let Ok(Some(status)) = r.run.try_wait() {
                failed = Some(status);
                return true;
            }
            false
        });
        read().unwrap_or_else(|| {
            panic!(
                "runc run {} failed ({}); output:\n{}",
                self.id,
                failed.map_or("timed out".to_string(), |s| s.to_string()),
                self.output()
            )
        })
    }

    /// The container's cgroup in the memory hierarchy.
    pub fn memory_cgroup(&self) -> PathBuf {
        memory_root()
            .0
            .join(self.cgroups_path.trim_start_matches('/'))
    }

    /// Host pids of the processes in the container's memory cgroup (a
    /// process moved out of it is not listed).
    pub fn pids(&self) -> Vec<u32> {
        cgroup_pids(&self.memory_cgroup())
            .into_iter()
            .map(|p| p as u32)
            .collect()
    }

    /// What the container's processes and runc printed so far.
    pub fn output(&self) -> String {
        fs::read_to_string(self.bundle.join("output")).unwrap_or_default()
    }

    /// runc's view: `created`, `running`, `paused` or `stopped`.
    pub fn status(&self) -> String {
        let out = runc_cmd()
            .args(["state", &self.id])
            .output()
            .expect("runc state");
        let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "runc state {}: {e}: {}",
                self.id,
                String::from_utf8_lossy(&out.stderr)
            )
        });
        state["status"].as_str().unwrap_or_default().to_string()
    }

    /// Runs a second process in the container (`runc exec`: same
    /// namespaces and cgroup, a child of no one inside: its parent is the
    /// runc on the host), returning once it runs.
    pub fn exec(&self, args: &[&str]) -> Exec {
        static N: AtomicU32 = AtomicU32::new(0);
        let pid_file = self
            .bundle
            .join(format!("exec-{}.pid", N.fetch_add(1, Ordering::Relaxed)));
        let output = || {
            OpenOptions::new()
                .append(true)
                .open(self.bundle.join("output"))
                .expect("opening the output file")
        };
        let mut child = runc_cmd()
            .arg("exec")
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(&self.id)
            .args(args)
            .stdin(Stdio::null())
            .stdout(output())
            .stderr(output())
            .spawn()
            .expect("spawning runc exec");
        let read = || {
            fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
        };
        let mut failed = None;
        wait_until(DEADLINE, || {
            read().is_some()
                || match child.try_wait() {
                    Ok(Some(s)) => {
                        failed = Some(s);
                        true
                    }
                    _ => false,
                }
        });
        // The pid file may land just before runc exec exits.
        match read() {
            Some(pid) => Exec { pid, child },
            None => panic!(
                "runc exec {args:?} in container {} failed ({}); output:\n{}",
                self.id,
                failed.map_or("timed out".to_string(), |s| s.to_string()),
                self.output()
            ),
        }
    }

    /// Sends `signal` (`KILL`, `TERM`, ...) to the container's init from
    /// userspace (`runc kill`), as the runtime does when the kubelet stops
    /// or evicts a pod.
    pub fn kill(&self, signal: &str) {
        let out = runc_cmd()
            .args(["kill", &self.id, signal])
            .output()
            .expect("runc kill");
        assert!(
            out.status.success(),
            "runc kill {} {signal}: {}",
            self.id,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Waits up to `limit` for the container's init to exit; `None` if it
    /// still runs.
    pub fn wait_exit(&self, limit: Duration) -> Option<Exit> {
        let mut exit = None;
        wait_until(limit, || {
            let mut r = self.runc.lock().expect("runc");
            if let Ok(Some(status)) = r.run.try_wait() {
                exit = Some(Exit::from_runc(status));
            }
            exit.is_some()
        });
        exit
    }

    /// `runc delete --force`: kills what still runs and removes the
    /// container's cgroup, now (as the runtime does after the kubelet
    /// removes a container).
    pub fn delete(&self) {
        if let Err(e) = self.teardown() {
            panic!("deleting container {}: {e}", self.id);
        }
    }

    fn teardown(&self) -> Result<(), String> {
        let mut r = self.runc.lock().unwrap_or_else(|e| e.into_inner());
        if r.deleted {
            return Ok(());
        }
        // Kill, and wait for the foreground runc to see init gone, before
        // deleting: `delete --force` of a running container sleeps 100 ms
        // before it even checks, while a stopped one goes at once.
        if !matches!(r.run.try_wait(), Ok(Some(_))) {
            let _ = runc_cmd().args(["kill", &self.id, "KILL"]).output();
            if !wait_until(TEARDOWN, || matches!(r.run.try_wait(), Ok(Some(_)))) {
                let _ = r.run.kill();
                let _ = r.run.wait();
            }
        }
        let out = runc_cmd()
            .args(["delete", "--force", &self.id])
            .output()
            .map_err(|e| format!("runc delete: {e}"))?;
        r.deleted = true;
        // A container whose `runc run` failed never existed.
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && !stderr.contains("does not exist") {
            return Err(format!(
                "runc delete --force: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("oomtrace-e2e: container {}: {e}", self.id);
        }
        let _ = fs::remove_dir_all(&self.bundle);
    }
}

/// A process started in a container by [`Container::exec`]. Its stdout and
/// stderr are pipes to the `runc exec` on the host (copied into the
/// container's output file): as with `kubectl exec`, runc returns, and
/// [`Exec::wait`] with it, once the process has exited **and** every process
/// that inherited those pipes closed them, so redirect what it leaves
/// running in the background (`cmd >/dev/null 2>&1 &`). Dropping it kills
/// the process if it still runs.
pub struct Exec {
    /// Its host pid.
    pub pid: u32,
    child: Child,
}

impl Exec {
    /// Waits (up to [`DEADLINE`]) for it to end.
    pub fn wait(&mut self) -> Exit {
        let mut exit = None;
        wait_until(DEADLINE, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                exit = Some(Exit::from_runc(status));
            }
            exit.is_some()
        });
        exit.unwrap_or_else(|| {
            panic!(
                "exec'd process {} (or a process holding its stdout) still runs after {DEADLINE:?}",
                self.pid
            )
        })
    }
}

impl Drop for Exec {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        kill(self.pid as i32, rustix::process::Signal::KILL);
        // Not waiting for runc to drain pipes a background process holds.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The memory cgroup of a host pid as the host sees it (`/proc/<pid>/cgroup`:
/// the v1 line naming `memory`, else the v2 `0::` line).
pub fn memory_cgroup_of(pid: u32) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let (_, version) = memory_root();
    text.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        let hit = match version {
            CgroupVersion::V1 => controllers.split(',').any(|c| c == "memory"),
            CgroupVersion::V2 => controllers.is_empty(),
        };
        hit.then(|| path.to_string())
    })
}

/// How many processes the OOM killer killed in a memory cgroup (v1
/// `memory.oom_control`, v2 `memory.events`: `oom_kill N`).
/// The host's cgroupfs bind-mounted at /sys/fs/cgroup, the way the Spin
/// pods of seed 001 had it, so a process in the container can write a pid
/// into a host cgroup at the same path as on the host
/// ([`memory_root`]). On v1 the mount is read-only: its top is a tmpfs, and
/// the controller mounts below it stay writable. On v2 it is the cgroup2
/// mount itself, so it must be writable for the escape to be possible.
pub fn host_cgroupfs_mount() -> BindMount {
    match memory_root().1 {
        CgroupVersion::V1 => BindMount::ro("/sys/fs/cgroup", "/sys/fs/cgroup"),
        CgroupVersion::V2 => BindMount::rw("/sys/fs/cgroup", "/sys/fs/cgroup"),
    }
}

/// Whether the cgroup2 hierarchy is mounted with `nsdelegate` (systemd's
/// default): then a process in a cgroup namespace cannot move anything to a
/// cgroup outside its namespace's root, which stops the escape.
pub fn cgroup2_nsdelegate() -> bool {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(" - cgroup2 "))
        .any(|l| l.contains("nsdelegate"))
}

pub fn oom_kill_count(memory_dir: &Path) -> u64 {
    let file = match memory_root().1 {
        CgroupVersion::V1 => "memory.oom_control",
        CgroupVersion::V2 => "memory.events",
    };
    fs::read_to_string(memory_dir.join(file))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// A kubelet node of its own: `/oomtrace-node-<uid>/kubepods/...` in every
/// hierarchy, so a test can put a limit on *its* kubepods (node allocatable)
/// without touching other tests' pods. Removed on drop, deepest first;
/// declare it before its pods and containers.
pub struct Node {
    pub prefix: String,
}

impl Node {
    pub fn new() -> Node {
        require_root();
        Node {
            prefix: format!("/oomtrace-node-{}", unique_uid()),
        }
    }

    pub fn pod(&self, qos: Qos) -> Pod {
        Pod::new_in(&self.prefix, qos)
    }

    /// This node's kubepods cgroup in the memory hierarchy.
    pub fn kubepods_dir(&self) -> PathBuf {
        memory_root()
            .0
            .join(self.prefix.trim_start_matches('/'))
            .join("kubepods")
    }

    /// The allocatable limit the kubelet puts on kubepods.
    pub fn set_allocatable(&self, bytes: u64) {
        let (root, version) = memory_root();
        let mut d = root;
        for part in [self.prefix.trim_start_matches('/'), "kubepods"] {
            if version == CgroupVersion::V2 {
                let _ = fs::write(d.join("cgroup.subtree_control"), "+memory");
            }
            d = d.join(part);
            let _ = fs::create_dir(&d);
        }
        set_memory_limit(&d, bytes);
    }
}

impl Default for Node {
    fn default() -> Self {
        Node::new()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for mount in cgroup_mounts() {
            let top = mount.join(self.prefix.trim_start_matches('/'));
            let mut dirs = Vec::new();
            let mut stack = vec![top];
            while let Some(d) = stack.pop() {
                if let Ok(entries) = fs::read_dir(&d) {
                    stack.extend(
                        entries
                            .flatten()
                            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                            .map(|e| e.path()),
                    );
                }
                dirs.push(d);
            }
            for d in dirs.iter().rev() {
                let _ = wait_until(TEARDOWN, || fs::remove_dir(d).is_ok() || !d.exists());
            }
        }
    }
}
