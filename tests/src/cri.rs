//! A kubelet's node, for real: a private containerd driven through its CRI
//! (v1) socket with the calls and fields the kubelet sends, so that the
//! runtime, not the harness, makes the container cgroups, starts and
//! signals the processes, writes the logs and reports ContainerStatus.
//! Where container.rs (runc straight) shapes what a kubelet would leave
//! behind, this is the kubelet's path end to end, and what the runtime
//! then reports is ground truth for verdicts (tests/tests/cri.rs pins it).
//!
//! ```no_run
//! use oomtrace_e2e::{container::Qos, cri::{CriPod, State}, DEADLINE};
//! let pod = CriPod::builder(Qos::Burstable)
//!     .namespace("shop")
//!     .name("checkout-7d9f")
//!     .container("worker", &["oomtrace-hog", "--mib", "256"], Some(64 << 20))
//!     .run();
//! let s = pod.container("worker").wait_exited(DEADLINE);
//! assert_eq!((s.state, s.exit_code, s.reason.as_str()), (State::Exited, 137, "OOMKilled"));
//! ```
//!
//! How it is done, and why:
//! - One containerd per test process ([`Containerd::get`]), in
//!   `/tmp/oomtrace-e2e-containerd-<pid>/`: its root, state, socket, runc
//!   root, log (`containerd.log`, whose tail failures print) and the
//!   kubelet's log directories (`pods/`, `containers/`). It is a child of a
//!   thread that never ends, with SIGTERM as its parent-death signal: the
//!   kernel sends that when the forking *thread* ends, so it comes exactly
//!   when the test process ends, however it ends. The directories of test
//!   processes that are gone are removed at the next start, with the
//!   shims, containers and mounts left in them.
//! - Its config is `containerd config default` with what containerd 1.6
//!   needs here: private paths, `restrict_oom_score_adj` (root here lacks
//!   CAP_SYS_RESOURCE, so a negative oom_score_adj is clamped to 0 instead
//!   of failing the start), the cgroupfs driver (no systemd as PID 1), no
//!   CNI (host-network pods), and the `native` snapshotter (the VM's /tmp
//!   is an overlayfs, where overlayfs snapshots cannot be mounted).
//! - No registry: the images are OCI archives written here from
//!   [`RootFs`] (one uncompressed layer shared by both) and imported with
//!   `ctr`. The sandbox image's "pause" is busybox sh, exiting 0 on SIGTERM.
//! - The pod as the kubelet makes it: its cgroup `/kubepods/<qos>/pod<uid>`
//!   in every hierarchy first ([`Pod`]), with the pod-level memory limit
//!   when every container has one; the log directory; `RunPodSandbox` with
//!   host network, a private pid namespace per container and the pod's ipc;
//!   then `CreateContainer` + `StartContainer` per container, with the
//!   container's memory limit, the QoS class's oom_score_adj and, on cgroup
//!   v2, `memory.oom.group = 1` (kubelet 1.28 and later), and the
//!   `/var/log/containers`-style symlink to its log.
//! - The CRI client is tonic over the unix socket, on one tokio runtime;
//!   each call blocks on it, so the test API stays blocking.

use std::{
    collections::HashMap,
    fs::{self, File},
    future::Future,
    io::ErrorKind,
    os::unix::{fs::symlink, process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{mpsc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::{
    image_service_client::ImageServiceClient, runtime_service_client::RuntimeServiceClient,
    security_profile::ProfileType, ContainerConfig, ContainerMetadata, ContainerState,
    ContainerStatusRequest, CreateContainerRequest, ImageSpec, ImageStatusRequest,
    LinuxContainerConfig, LinuxContainerResources, LinuxContainerSecurityContext,
    LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption,
    PodSandboxConfig, PodSandboxMetadata, RemovePodSandboxRequest, RunPodSandboxRequest,
    SecurityProfile, StartContainerRequest, StopContainerRequest, StopPodSandboxRequest,
    VersionRequest,
};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tonic::transport::{Channel, Endpoint, Uri};

use crate::{
    cgroup_pids,
    container::{cgroup_mounts, Pod, Qos, RootFs},
    kill, memory_root, require_root, wait_until, CgroupVersion, DEADLINE,
};

/// The sandbox image (`sandbox_image` in containerd's config).
pub const PAUSE_IMAGE: &str = "localhost/oomtrace-e2e-pause:1";
/// The workload image: busybox and `oomtrace-hog` on `PATH`; each
/// container names its command.
pub const IMAGE: &str = "localhost/oomtrace-e2e:1";
/// The kubelet's `minimumGracePeriodInSeconds`: what teardown gives a
/// container that a test did not stop itself.
const TEARDOWN_GRACE_S: i64 = 2;
/// How many lines of containerd's log a failure prints.
const LOG_TAIL_LINES: usize = 40;

/// This test process's containerd, its CRI client and its directories.
pub struct Containerd {
    /// `/tmp/oomtrace-e2e-containerd-<pid>`.
    pub dir: PathBuf,
    /// The CRI (and containerd API) socket.
    pub socket: PathBuf,
    /// containerd's `version` (e.g. `1.6.20~ds1`).
    pub version: String,
    /// How long containerd took from spawn to answering the CRI.
    pub start_time: Duration,
    /// The whole first use: the image archive, containerd's start, the import.
    pub setup_time: Duration,
    pods_log_dir: PathBuf,
    containers_log_dir: PathBuf,
    log: PathBuf,
    process: Mutex<Child>,
    rt: tokio::runtime::Runtime,
    channel: Channel,
}

impl Containerd {
    /// Started on first use (and the images imported); a start that failed
    /// (or panicked) fails every later caller with the same message rather
    /// than starting a second containerd over the first one's directory.
    pub fn get() -> &'static Containerd {
        static CONTAINERD: OnceLock<Result<Containerd, String>> = OnceLock::new();
        let started = CONTAINERD.get_or_init(|| {
            std::panic::catch_unwind(Containerd::start).unwrap_or_else(|panic| {
                Err(panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "starting containerd panicked".into()))
            })
        });
        match started {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    /// The kubelet's `/var/log/pods`: one `<ns>_<name>_<uid>/` per pod,
    /// holding `<container>/0.log` (oomtrace `--pods-log-dir`).
    pub fn pods_log_dir(&self) -> &Path {
        &self.pods_log_dir
    }

    /// The kubelet's `/var/log/containers`: one symlink
    /// `<pod>_<ns>_<container>-<id>.log` per container (oomtrace
    /// `--containers-log-dir`).
    pub fn containers_log_dir(&self) -> &Path {
        &self.containers_log_dir
    }

    /// The last lines containerd logged.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// Whether containerd still runs (it never exits on its own).
    pub fn running(&self) -> bool {
        let mut p = self.process.lock().unwrap_or_else(|e| e.into_inner());
        matches!(p.try_wait(), Ok(None))
    }

    fn start() -> Result<Containerd, String> {
        let t_setup = Instant::now();
        require_root();
        remove_stale_dirs();
        let dir = PathBuf::from(format!(
            "/tmp/oomtrace-e2e-containerd-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        for d in [
            "root",
            "state",
            "runc",
            "opt",
            "cni/bin",
            "cni/conf",
            "pods",
            "containers",
        ] {
            fs::create_dir_all(dir.join(d))
                .map_err(|e| format!("mkdir -p {}: {e}", dir.join(d).display()))?;
        }
        // Before containerd runs: a rootfs that cannot be built leaves no
        // daemon behind.
        let archive = dir.join("images.tar");
        write_image_archive(&RootFs::get().dir, &archive)?;

        let containerd = find_binary("containerd")?;
        let out = Command::new(&containerd)
            .args(["config", "default"])
            .output()
            .map_err(|e| format!("running containerd config default: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "containerd config default: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let socket = dir.join("containerd.sock");
        let config = edit_config(&String::from_utf8_lossy(&out.stdout), &dir, &socket)?;
        let config_path = dir.join("config.toml");
        fs::write(&config_path, config)
            .map_err(|e| format!("writing {}: {e}", config_path.display()))?;

        let log = dir.join("containerd.log");
        let log_file =
            File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let mut cmd = Command::new(&containerd);
        cmd.arg("--config")
            .arg(&config_path)
            // Its shims look up runc and containerd-shim-runc-v2 on PATH,
            // and root's may lack the sbin directories.
            .env("PATH", search_path())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(|e| format!("dup: {e}"))?)
            .stderr(log_file);
        let t0 = Instant::now();
        let process = Mutex::new(spawn_tied_to_process(cmd)?);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("building the tokio runtime: {e}"))?;
        let (channel, version) = match connect(&rt, &socket, &process) {
            Ok(c) => c,
            Err(e) => {
                // Ours, by its Child: gone with the failed start.
                let mut p = process.lock().unwrap_or_else(|e| e.into_inner());
                let _ = p.kill();
                let _ = p.wait();
                return Err(format!("{e}\ncontainerd's log:\n{}", log_tail(&log)));
            }
        };
        let mut c = Containerd {
            pods_log_dir: dir.join("pods"),
            containers_log_dir: dir.join("containers"),
            dir,
            socket,
            version,
            start_time: t0.elapsed(),
            setup_time: Duration::ZERO,
            log,
            process,
            rt,
            channel,
        };
        c.import(&archive)?;
        c.setup_time = t_setup.elapsed();
        Ok(c)
    }

    /// `ctr images import` of the archive, then the CRI's view of both images.
    fn import(&self, archive: &Path) -> Result<(), String> {
        let ctr = find_binary("ctr")?;
        let out = Command::new(ctr)
            .args(["-n", "k8s.io", "--address"])
            .arg(&self.socket)
            .args(["images", "import", "--snapshotter", "native"])
            .arg(archive)
            .output()
            .map_err(|e| format!("running ctr: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ctr images import {}: {}{}\ncontainerd's log:\n{}",
                archive.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log_tail()
            ));
        }
        for image in [PAUSE_IMAGE, IMAGE] {
            let status = self.try_call(
                "ImageStatus",
                DEADLINE,
                ImageServiceClient::new(self.channel.clone()).image_status(ImageStatusRequest {
                    image: Some(image_spec(image)),
                    verbose: false,
                }),
            )?;
            if status.image.is_none() {
                return Err(format!(
                    "the CRI does not see {image} after the import\ncontainerd's log:\n{}",
                    self.log_tail()
                ));
            }
        }
        Ok(())
    }

    fn runtime(&self) -> RuntimeServiceClient<Channel> {
        RuntimeServiceClient::new(self.channel.clone())
    }

    /// One CRI call, blocking, answered within `limit`.
    fn try_call<T>(
        &self,
        what: &str,
        limit: Duration,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, String> {
        // The timer needs the runtime's context: made inside the future.
        match self
            .rt
            .block_on(async { tokio::time::timeout(limit, call).await })
        {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => Err(format!("{what}: {:?}: {}", s.code(), s.message())),
            Err(_) => Err(format!("{what}: no answer within {limit:?}")),
        }
    }

    /// [`Containerd::try_call`], panicking with containerd's log.
    fn call<T>(
        &self,
        what: &str,
        limit: Duration,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> T {
        self.try_call(what, limit, call)
            .unwrap_or_else(|e| panic!("{e}\ncontainerd's log:\n{}", self.log_tail()))
    }
}

fn log_tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// Waits until the CRI at `socket` answers `Version` (the socket is up
/// before the CRI plugin serves), or containerd exits, or [`DEADLINE`]
/// passes. Returns the channel and containerd's version.
fn connect(
    rt: &tokio::runtime::Runtime,
    socket: &Path,
    process: &Mutex<Child>,
) -> Result<(Channel, String), String> {
    let deadline = Instant::now() + DEADLINE;
    let mut last = String::from("no socket yet");
    loop {
        let exited = process
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_wait()
            .ok()
            .flatten();
        if let Some(status) = exited {
            return Err(format!(
                "containerd exited ({status}) before its CRI answered"
            ));
        }
        if socket.exists() {
            let socket = socket.to_path_buf();
            let attempt = rt.block_on(async move {
                let channel = Endpoint::from_static("http://localhost")
                    .connect_timeout(Duration::from_secs(5))
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let socket = socket.clone();
                        async move {
                            Ok::<_, std::io::Error>(TokioIo::new(
                                tokio::net::UnixStream::connect(socket).await?,
                            ))
                        }
                    }))
                    .await
                    .map_err(|e| format!("connecting: {e}"))?;
                let v = RuntimeServiceClient::new(channel.clone())
                    .version(VersionRequest {
                        version: "v1".into(),
                    })
                    .await
                    .map_err(|s| format!("Version: {}", s.message()))?
                    .into_inner();
                Ok::<_, String>((channel, v.runtime_version))
            });
            match attempt {
                Ok(c) => return Ok(c),
                Err(e) => last = e,
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "containerd's CRI at {} did not answer within {DEADLINE:?} ({last})",
                socket.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `cmd` spawned from a thread that never ends, with SIGTERM as its
/// parent-death signal: the kernel sends it when the thread that forked
/// ends, which for this thread is the end of the test process. Dropping a
/// `Child` kills nothing, and a test process's statics are never dropped.
fn spawn_tied_to_process(mut cmd: Command) -> Result<Child, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("containerd-parent".into())
        .spawn(move || {
            // SAFETY: the closure runs between fork and exec and only makes
            // one system call (prctl), which is async-signal-safe.
            unsafe {
                cmd.pre_exec(|| {
                    rustix::process::set_parent_process_death_signal(Some(
                        rustix::process::Signal::TERM,
                    ))
                    .map_err(Into::into)
                });
            }
            let _ = tx.send(cmd.spawn());
            loop {
                std::thread::park();
            }
        })
        .map_err(|e| format!("starting containerd's parent thread: {e}"))?;
    rx.recv()
        .map_err(|_| "containerd's parent thread ended".to_string())?
        .map_err(|e| format!("spawning containerd: {e}"))
}

/// root's PATH and the sbin/bin directories it may lack.
fn search_path() -> std::ffi::OsString {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(
        [
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
        ]
        .map(PathBuf::from),
    );
    std::env::join_paths(dirs).unwrap_or_default()
}

fn find_binary(name: &str) -> Result<PathBuf, String> {
    std::env::split_paths(&search_path())
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .ok_or_else(|| {
            format!("{name} is missing: apt-get install containerd (cargo xtask test does)")
        })
}

/// `containerd config default` with private paths and the settings above.
/// Each key is replaced in its own table; a key not found (a containerd
/// whose default config changed) is an error naming it.
fn edit_config(default: &str, dir: &Path, socket: &Path) -> Result<String, String> {
    let p = |sub: &str| dir.join(sub).display().to_string();
    let cri = r#"plugins."io.containerd.grpc.v1.cri""#;
    let edits: Vec<(String, &str, String)> = vec![
        (String::new(), "root", p("root")),
        (String::new(), "state", p("state")),
        ("grpc".into(), "address", socket.display().to_string()),
        (cri.into(), "sandbox_image", PAUSE_IMAGE.into()),
        (cri.into(), "restrict_oom_score_adj", "true".into()),
        (format!("{cri}.cni"), "bin_dir", p("cni/bin")),
        (format!("{cri}.cni"), "conf_dir", p("cni/conf")),
        (format!("{cri}.containerd"), "snapshotter", "native".into()),
        (
            format!("{cri}.containerd.runtimes.runc.options"),
            "SystemdCgroup",
            "false".into(),
        ),
        (
            format!("{cri}.containerd.runtimes.runc.options"),
            "Root",
            p("runc"),
        ),
        (
            format!("{cri}.containerd.runtimes.runc.options"),
            "BinaryName",
            find_binary("runc")?.display().to_string(),
        ),
        // Else it makes /opt/containerd, on the host (read-only in the VM).
        (
            r#"plugins."io.containerd.internal.v1.opt""#.into(),
            "path",
            p("opt"),
        ),
    ];
    let mut done = vec![false; edits.len()];
    let mut table = String::new();
    let mut out = String::new();
    for line in default.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            table = name.trim_matches(|c| c == '[' || c == ']').to_string();
        }
        let key = t.split_once('=').map(|(k, _)| k.trim());
        let edit = edits
            .iter()
            .position(|(tb, k, _)| *tb == table && key == Some(*k));
        match edit {
            Some(i) => {
                let (_, k, v) = &edits[i];
                let indent = &line[..line.len() - line.trim_start().len()];
                let value = if v == "true" || v == "false" {
                    v.clone()
                } else {
                    toml_string(v)?
                };
                out.push_str(&format!("{indent}{k} = {value}\n"));
                done[i] = true;
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    if let Some(i) = done.iter().position(|d| !d) {
        let (tb, k, _) = &edits[i];
        return Err(format!(
            "containerd config default has no `{k}` in [{tb}]: its format changed"
        ));
    }
    Ok(out)
}

fn toml_string(s: &str) -> Result<String, String> {
    if s.contains(['"', '\\', '\n']) {
        return Err(format!("{s:?} needs TOML escapes"));
    }
    Ok(format!("\"{s}\""))
}

/// Removes the containerd directories of test processes that are gone:
/// first what their containerd left running or mounted (containerd and
/// its shims, found by their command lines naming the directory; the
/// containers in its runc root; the rootfs and shm mounts under its state
/// directory). The pod cgroups stay, as container.rs's do.
fn remove_stale_dirs() {
    let Ok(entries) = fs::read_dir("/tmp") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("oomtrace-e2e-containerd-")
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let dir = e.path();
        kill_processes_naming(&dir);
        // The shim's runc root is `<Root>/<containerd namespace>`.
        let roots = fs::read_dir(dir.join("runc"))
            .into_iter()
            .flatten()
            .flatten();
        if let Ok(runc) = find_binary("runc") {
            for root in roots {
                let root = root.path().display().to_string();
                let Ok(out) = Command::new(&runc)
                    .args(["--root", &root, "list", "-q"])
                    .output()
                else {
                    continue;
                };
                for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new(&runc)
                        .args(["--root", &root, "delete", "--force", id])
                        .output();
                }
            }
        }
        unmount_under(&dir);
        if let Err(err) = fs::remove_dir_all(&dir) {
            eprintln!("oomtrace-e2e: removing {}: {err}", dir.display());
        }
    }
}

/// SIGKILL to the processes whose command line names a path under `dir`
/// (a stale containerd, its shims: `-address <dir>/containerd.sock`).
fn kill_processes_naming(dir: &Path) {
    let needle = dir.display().to_string();
    let Ok(procs) = fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let cmdline = fs::read(p.path().join("cmdline")).unwrap_or_default();
        if cmdline
            .split(|b| *b == 0)
            .any(|arg| String::from_utf8_lossy(arg).starts_with(&needle))
        {
            kill(pid, rustix::process::Signal::KILL);
        }
    }
}

/// Detaches every mount at or below `dir`, deepest first.
fn unmount_under(dir: &Path) {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        let _ = rustix::mount::unmount(&p, rustix::mount::UnmountFlags::DETACH);
    }
}

/// Writes both images as one OCI archive (`ctr images import` reads the
/// `io.containerd.image.name` annotation of each manifest): one
/// uncompressed layer, the rootfs, shared by both.
fn write_image_archive(rootfs: &Path, to: &Path) -> Result<(), String> {
    let layer = layer_tar(rootfs)?;
    let layer_digest = sha256(&layer);
    let mut blobs: Vec<(String, Vec<u8>)> = vec![(layer_digest.clone(), layer.clone())];
    let mut manifests = Vec::new();
    let (arch, os) = (oci_arch(), "linux");
    for (name, entrypoint, cmd) in [
        (
            PAUSE_IMAGE,
            json!([
                "/bin/sh",
                "-c",
                "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done"
            ]),
            json!([]),
        ),
        (IMAGE, json!([]), json!(["sleep", "3600"])),
    ] {
        let config = serde_json::to_vec(&json!({
            "architecture": arch,
            "os": os,
            "config": {
                "Entrypoint": entrypoint,
                "Cmd": cmd,
                "Env": ["PATH=/bin"],
                "WorkingDir": "/",
            },
            "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{layer_digest}")] },
        }))
        .map_err(|e| format!("image config: {e}"))?;
        let config_digest = sha256(&config);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": format!("sha256:{config_digest}"),
                "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": format!("sha256:{layer_digest}"),
                "size": layer.len(),
            }],
        }))
        .map_err(|e| format!("image manifest: {e}"))?;
        let manifest_digest = sha256(&manifest);
        manifests.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest_digest}"),
            "size": manifest.len(),
            "platform": { "architecture": arch, "os": os },
            "annotations": {
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": name.rsplit(':').next().unwrap_or(name),
            },
        }));
        blobs.push((config_digest, config));
        blobs.push((manifest_digest, manifest));
    }
    let index = serde_json::to_vec(&json!({ "schemaVersion": 2, "manifests": manifests }))
        .map_err(|e| format!("image index: {e}"))?;
    let file = File::create(to).map_err(|e| format!("creating {}: {e}", to.display()))?;
    let mut archive = tar::Builder::new(file);
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        archive
            .append_data(&mut h, path, data)
            .map_err(|e| format!("writing {path} into {}: {e}", to.display()))
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    add("index.json", &index)?;
    blobs.sort();
    blobs.dedup_by(|a, b| a.0 == b.0);
    for (digest, data) in &blobs {
        add(&format!("blobs/sha256/{digest}"), data)?;
    }
    archive
        .into_inner()
        .map_err(|e| format!("finishing {}: {e}", to.display()))?;
    Ok(())
}

/// The rootfs as a layer: every entry under its relative path, symlinks
/// kept (busybox's applets), ownership and times left out so the digest
/// depends on the content only.
fn layer_tar(rootfs: &Path) -> Result<Vec<u8>, String> {
    let mut b = tar::Builder::new(Vec::new());
    b.mode(tar::HeaderMode::Deterministic);
    b.follow_symlinks(false);
    let mut stack = vec![rootfs.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<PathBuf> = fs::read_dir(&dir)
            .map_err(|e| format!("reading {}: {e}", dir.display()))?
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for path in entries {
            let rel = path.strip_prefix(rootfs).map_err(|e| e.to_string())?;
            b.append_path_with_name(&path, rel)
                .map_err(|e| format!("adding {} to the layer: {e}", path.display()))?;
            if path.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                stack.push(path);
            }
        }
    }
    b.into_inner()
        .map_err(|e| format!("finishing the layer: {e}"))
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn image_spec(image: &str) -> ImageSpec {
    ImageSpec {
        image: image.into(),
        ..Default::default()
    }
}

/// A container's state as ContainerStatus reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Created,
    Running,
    Exited,
    Unknown,
}

/// What the kubelet reads from ContainerStatus (and puts in the pod's
/// `status.containerStatuses`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub state: State,
    /// 128 + n for a death by signal n (137: SIGKILL).
    pub exit_code: i32,
    /// `OOMKilled`, `Error`, `Completed`, or empty while it runs without
    /// an OOM kill.
    pub reason: String,
    pub message: String,
}

/// A container the pod declares: its name, command (the image has no
/// entrypoint of its own: this is `command` in a pod spec) and memory limit.
#[derive(Clone, Debug)]
struct ContainerDecl {
    name: String,
    command: Vec<String>,
    memory_limit: Option<u64>,
}

/// A pod to run: its QoS class, name and containers, all known before the
/// sandbox runs (the pod-level limit is the sum of the containers').
#[derive(Clone, Debug)]
pub struct CriPodBuilder {
    qos: Qos,
    prefix: String,
    namespace: String,
    name: Option<String>,
    containers: Vec<ContainerDecl>,
    oom_group: bool,
}

impl CriPodBuilder {
    /// The kubelet's `singleProcessOOMKill: true` (1.32 and later): no
    /// `memory.oom.group` on the containers (cgroup v2), so an OOM kill
    /// takes one process, as on cgroup v1.
    pub fn single_process_oom_kill(mut self) -> Self {
        self.oom_group = false;
        self
    }

    /// Default: `default`.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Default: `pod-<end of the uid>`.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The pod cgroup under `prefix` (a [`crate::container::Node`]'s),
    /// as [`Pod::new_in`].
    pub fn cgroup_prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// A container running `command` (`PATH=/bin`: busybox applets,
    /// `oomtrace-hog`), with a memory limit (its request too: a limit alone
    /// defaults the request to it).
    pub fn container(mut self, name: &str, command: &[&str], memory_limit: Option<u64>) -> Self {
        self.containers.push(ContainerDecl {
            name: name.into(),
            command: command.iter().map(|a| a.to_string()).collect(),
            memory_limit,
        });
        self
    }

    /// Makes the pod cgroup, runs the sandbox, creates and starts each
    /// container in order (as the kubelet's SyncPod does).
    pub fn run(self) -> CriPod {
        assert!(!self.containers.is_empty(), "a pod needs a container");
        match self.qos {
            Qos::Guaranteed => assert!(
                self.containers.iter().all(|c| c.memory_limit.is_some()),
                "a Guaranteed pod has a memory limit on every container"
            ),
            Qos::BestEffort => assert!(
                self.containers.iter().all(|c| c.memory_limit.is_none()),
                "a BestEffort pod has no memory limit"
            ),
            Qos::Burstable => {}
        }
        let rt = Containerd::get();
        let pod = Pod::new_in(&self.prefix, self.qos);
        let limits: Option<Vec<u64>> = self.containers.iter().map(|c| c.memory_limit).collect();
        let pod_limit = limits.map(|l| l.iter().sum::<u64>());
        if let Some(bytes) = pod_limit {
            pod.set_memory_limit(bytes);
        }
        let name = self
            .name
            .unwrap_or_else(|| format!("pod-{}", &pod.uid[pod.uid.len() - 12..]));
        let log_dir = rt
            .pods_log_dir
            .join(format!("{}_{name}_{}", self.namespace, pod.uid));
        fs::create_dir_all(&log_dir)
            .unwrap_or_else(|e| panic!("mkdir -p {}: {e}", log_dir.display()));
        let labels: HashMap<String, String> = [
            ("io.kubernetes.pod.name", name.as_str()),
            ("io.kubernetes.pod.namespace", self.namespace.as_str()),
            ("io.kubernetes.pod.uid", pod.uid.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.clone(),
                uid: pod.uid.clone(),
                namespace: self.namespace.clone(),
                attempt: 0,
            }),
            // A host-network pod's: containerd refuses a hostname without
            // a UTS namespace of its own.
            hostname: String::new(),
            log_directory: log_dir.display().to_string(),
            labels: labels.clone(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: pod.cgroup.clone(),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(namespaces()),
                    seccomp: Some(unconfined()),
                    ..Default::default()
                }),
                // The kubelet passes the pod's total on (containerd 1.6
                // does not use it; the pod cgroup already has it).
                resources: pod_limit.map(|bytes| LinuxContainerResources {
                    memory_limit_in_bytes: bytes as i64,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let t0 = Instant::now();
        let sandbox_id = rt
            .call(
                "RunPodSandbox",
                DEADLINE,
                rt.runtime().run_pod_sandbox(RunPodSandboxRequest {
                    config: Some(config.clone()),
                    runtime_handler: String::new(),
                }),
            )
            .pod_sandbox_id;
        // From here on, a failed step still stops and removes the sandbox.
        let mut cri_pod = CriPod {
            uid: pod.uid.clone(),
            namespace: self.namespace.clone(),
            name: name.clone(),
            qos: self.qos,
            sandbox_id,
            log_dir,
            memory_limit: pod_limit,
            containers: Vec::new(),
            start_time: Duration::ZERO,
            oom_group: self.oom_group,
            stopped: false,
            removed: false,
            pod,
        };
        for decl in &self.containers {
            let c = cri_pod.create_and_start(rt, &config, &labels, decl);
            cri_pod.containers.push(c);
        }
        cri_pod.start_time = t0.elapsed();
        cri_pod
    }
}

/// `network: NODE, pid: CONTAINER, ipc: POD`: a host-network pod whose
/// containers each have their own pid namespace (their init is pid 1
/// there), as the kubelet asks for a pod without `shareProcessNamespace`.
fn namespaces() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Node as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// The kubelet's seccomp profile for a pod that names none (without the
/// SeccompDefault setting).
fn unconfined() -> SecurityProfile {
    SecurityProfile {
        profile_type: ProfileType::Unconfined as i32,
        localhost_ref: String::new(),
    }
}

/// The kubelet's oom_score_adj for a container (pkg/kubelet/qos): -997
/// for Guaranteed (clamped to containerd's own 0 here), 1000 for
/// BestEffort, and for Burstable `1000 - 1000 * request / capacity` kept
/// within 3..=999.
fn oom_score_adj(qos: Qos, request: Option<u64>) -> i64 {
    match qos {
        Qos::Guaranteed => -997,
        Qos::BestEffort => 1000,
        Qos::Burstable => {
            let capacity = mem_total().max(1);
            let adj = 1000 - (1000 * request.unwrap_or(0) / capacity) as i64;
            adj.clamp(3, 999)
        }
    }
}

/// The node's memory capacity as the kubelet reads it (MemTotal).
fn mem_total() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A pod run through the CRI. Dropping it stops what still runs (with the
/// kubelet's minimum grace), removes the sandbox with its containers, then
/// the pod cgroup and the log directory (kept when a test failed).
pub struct CriPod {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub qos: Qos,
    pub sandbox_id: String,
    /// `<pods_log_dir>/<ns>_<name>_<uid>`.
    pub log_dir: PathBuf,
    /// The pod cgroup's memory limit (none unless every container has one).
    pub memory_limit: Option<u64>,
    /// In declaration order.
    pub containers: Vec<CriContainer>,
    /// From `RunPodSandbox` to the last `StartContainer` answered.
    pub start_time: Duration,
    oom_group: bool,
    stopped: bool,
    removed: bool,
    /// Declared last: its cgroups go after the runtime removed its own.
    pub pod: Pod,
}

impl CriPod {
    pub fn builder(qos: Qos) -> CriPodBuilder {
        CriPodBuilder {
            qos,
            prefix: String::new(),
            namespace: "default".into(),
            name: None,
            containers: Vec::new(),
            oom_group: true,
        }
    }

    /// The pod cgroup, relative to each hierarchy's root
    /// (`/kubepods/<qos>/pod<uid>`).
    pub fn cgroup(&self) -> &str {
        &self.pod.cgroup
    }

    /// The container the pod declared as `name`.
    pub fn container(&self, name: &str) -> &CriContainer {
        self.containers
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("pod {} has no container {name}", self.name))
    }

    fn create_and_start(
        &self,
        rt: &Containerd,
        sandbox: &PodSandboxConfig,
        pod_labels: &HashMap<String, String>,
        decl: &ContainerDecl,
    ) -> CriContainer {
        // The kubelet makes the container's log directory; the runtime
        // opens `0.log` in it.
        let log_path = self.log_dir.join(&decl.name).join("0.log");
        fs::create_dir_all(self.log_dir.join(&decl.name))
            .unwrap_or_else(|e| panic!("mkdir -p {}: {e}", self.log_dir.display()));
        let mut labels = pod_labels.clone();
        labels.insert("io.kubernetes.container.name".into(), decl.name.clone());
        let mut unified = HashMap::new();
        let mut swap = 0;
        let (memory, version) = memory_root();
        if decl.memory_limit.is_some() {
            // No swap (kubelet's NoSwap): v1 memsw = limit, v2 swap.max = 0,
            // where the kernel accounts swap at all.
            match version {
                CgroupVersion::V1 if memory.join("memory.memsw.limit_in_bytes").exists() => {
                    swap = decl.memory_limit.unwrap_or(0) as i64;
                }
                CgroupVersion::V2 if self.pod.memory_dir().join("memory.swap.max").exists() => {
                    unified.insert("memory.swap.max".to_string(), "0".to_string());
                }
                _ => {}
            }
        }
        if version == CgroupVersion::V2 && self.oom_group {
            unified.insert("memory.oom.group".to_string(), "1".to_string());
        }
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: decl.name.clone(),
                attempt: 0,
            }),
            image: Some(image_spec(IMAGE)),
            command: decl.command.clone(),
            labels,
            annotations: [("io.kubernetes.container.restartCount", "0")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            log_path: format!("{}/0.log", decl.name),
            linux: Some(LinuxContainerConfig {
                resources: Some(LinuxContainerResources {
                    memory_limit_in_bytes: decl.memory_limit.unwrap_or(0) as i64,
                    memory_swap_limit_in_bytes: swap,
                    oom_score_adj: oom_score_adj(self.qos, decl.memory_limit),
                    unified,
                    ..Default::default()
                }),
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: Some(namespaces()),
                    seccomp: Some(unconfined()),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        };
        let id = rt
            .call(
                "CreateContainer",
                DEADLINE,
                rt.runtime().create_container(CreateContainerRequest {
                    pod_sandbox_id: self.sandbox_id.clone(),
                    config: Some(config),
                    sandbox_config: Some(sandbox.clone()),
                }),
            )
            .container_id;
        rt.call(
            "StartContainer",
            DEADLINE,
            rt.runtime().start_container(StartContainerRequest {
                container_id: id.clone(),
            }),
        );
        // The kubelet's legacy symlink, named as /var/log/containers has it.
        let link = rt.containers_log_dir.join(format!(
            "{}_{}_{}-{id}.log",
            self.name, self.namespace, decl.name
        ));
        let _ = symlink(&log_path, &link);
        let pid = init_pid(rt, &id);
        CriContainer {
            cgroup: format!("{}/{id}", self.pod.cgroup),
            id,
            name: decl.name.clone(),
            pid,
            log_path,
        }
    }

    /// Stops the pod as the kubelet does: `StopContainer(grace_s)` for every
    /// container at once, then `StopPodSandbox`.
    pub fn stop(&mut self, grace_s: i64) {
        if let Err(e) = self.try_stop(grace_s) {
            panic!("{e}\ncontainerd's log:\n{}", Containerd::get().log_tail());
        }
    }

    fn try_stop(&mut self, grace_s: i64) -> Result<(), String> {
        if self.stopped {
            return Ok(());
        }
        let errors: Vec<String> = std::thread::scope(|s| {
            let stops: Vec<_> = self
                .containers
                .iter()
                .map(|c| s.spawn(move || c.try_stop(grace_s)))
                .collect();
            stops
                .into_iter()
                .filter_map(|t| match t.join() {
                    Ok(r) => r.err(),
                    Err(_) => Some("a StopContainer thread panicked".into()),
                })
                .collect()
        });
        if !errors.is_empty() {
            return Err(errors.join("; "));
        }
        let rt = Containerd::get();
        rt.try_call(
            "StopPodSandbox",
            DEADLINE,
            rt.runtime().stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: self.sandbox_id.clone(),
            }),
        )?;
        self.stopped = true;
        Ok(())
    }

    fn try_remove(&mut self) -> Result<(), String> {
        if self.removed {
            return Ok(());
        }
        let stopped = self.try_stop(TEARDOWN_GRACE_S);
        let rt = Containerd::get();
        rt.try_call(
            "RemovePodSandbox",
            DEADLINE,
            rt.runtime().remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: self.sandbox_id.clone(),
            }),
        )?;
        self.removed = true;
        for c in &self.containers {
            let _ = fs::remove_file(rt.containers_log_dir.join(format!(
                "{}_{}_{}-{}.log",
                self.name, self.namespace, c.name, c.id
            )));
        }
        stopped
    }
}

impl Drop for CriPod {
    fn drop(&mut self) {
        if let Err(e) = self.try_remove() {
            eprintln!(
                "oomtrace-e2e: pod {}/{} (sandbox {}): {e}",
                self.namespace, self.name, self.sandbox_id
            );
        }
        if std::thread::panicking() {
            eprintln!(
                "oomtrace-e2e: pod {}/{}: its logs stay in {}",
                self.namespace,
                self.name,
                self.log_dir.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.log_dir);
        }
    }
}

/// The host pid of a container's init, from the verbose ContainerStatus
/// (`info` is containerd's JSON, holding `pid`; kept after it exits).
fn init_pid(rt: &Containerd, id: &str) -> u32 {
    let status = rt.call(
        "ContainerStatus",
        DEADLINE,
        rt.runtime().container_status(ContainerStatusRequest {
            container_id: id.into(),
            verbose: true,
        }),
    );
    let info = status.info.get("info").cloned().unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(&info)
        .ok()
        .and_then(|v| v["pid"].as_u64())
        .and_then(|p| u32::try_from(p).ok())
        .filter(|p| *p > 0)
        .unwrap_or_else(|| panic!("container {id}: no pid in ContainerStatus info: {info}"))
}

/// A container of a [`CriPod`].
pub struct CriContainer {
    /// containerd's 64-hex id.
    pub id: String,
    /// The name the pod declared.
    pub name: String,
    /// Its init's host pid.
    pub pid: u32,
    /// Its cgroup relative to each hierarchy's root: `<pod cgroup>/<id>`
    /// (containerd's cgroupfs path).
    pub cgroup: String,
    /// `<pod log dir>/<name>/0.log`, CRI-format lines.
    pub log_path: PathBuf,
}

impl CriContainer {
    /// ContainerStatus, now.
    pub fn status(&self) -> Status {
        self.try_status()
            .unwrap_or_else(|e| panic!("{e}\ncontainerd's log:\n{}", Containerd::get().log_tail()))
    }

    fn try_status(&self) -> Result<Status, String> {
        let rt = Containerd::get();
        let s = rt
            .try_call(
                "ContainerStatus",
                DEADLINE,
                rt.runtime().container_status(ContainerStatusRequest {
                    container_id: self.id.clone(),
                    verbose: false,
                }),
            )?
            .status
            .ok_or_else(|| format!("ContainerStatus {}: no status", self.id))?;
        let state = match ContainerState::try_from(s.state) {
            Ok(ContainerState::ContainerCreated) => State::Created,
            Ok(ContainerState::ContainerRunning) => State::Running,
            Ok(ContainerState::ContainerExited) => State::Exited,
            Ok(ContainerState::ContainerUnknown) | Err(_) => State::Unknown,
        };
        Ok(Status {
            state,
            exit_code: s.exit_code,
            reason: s.reason,
            message: s.message,
        })
    }

    /// Polls ContainerStatus until `done` holds, or panics after `limit`
    /// with the last status.
    pub fn wait_status(&self, limit: Duration, done: impl Fn(&Status) -> bool) -> Status {
        let mut last = None;
        let ok = wait_until(limit, || {
            let s = self.status();
            let hit = done(&s);
            last = Some(s);
            hit
        });
        let last = last.unwrap_or_else(|| self.status());
        assert!(
            ok,
            "container {} ({}): ContainerStatus still {last:?} after {limit:?}",
            self.name, self.id
        );
        last
    }

    /// Waits until ContainerStatus says EXITED.
    pub fn wait_exited(&self, limit: Duration) -> Status {
        self.wait_status(limit, |s| s.state == State::Exited)
    }

    /// `StopContainer(timeout_s)`: SIGTERM (the image's stop signal), then
    /// SIGKILL after `timeout_s` if init still runs; returns once it has
    /// stopped.
    pub fn stop(&self, timeout_s: i64) {
        self.try_stop(timeout_s)
            .unwrap_or_else(|e| panic!("{e}\ncontainerd's log:\n{}", Containerd::get().log_tail()));
    }

    fn try_stop(&self, timeout_s: i64) -> Result<(), String> {
        let rt = Containerd::get();
        rt.try_call(
            "StopContainer",
            DEADLINE + Duration::from_secs(timeout_s.max(0) as u64),
            rt.runtime().stop_container(StopContainerRequest {
                container_id: self.id.clone(),
                timeout: timeout_s,
            }),
        )
        .map(|_| ())
    }

    /// Its cgroup in the memory hierarchy.
    pub fn memory_cgroup(&self) -> PathBuf {
        memory_root().0.join(self.cgroup.trim_start_matches('/'))
    }

    /// Host pids in its memory cgroup.
    pub fn pids(&self) -> Vec<u32> {
        cgroup_pids(&self.memory_cgroup())
            .into_iter()
            .map(|p| p as u32)
            .collect()
    }

    /// Its cgroup's directory in every hierarchy (containerd makes them all).
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        cgroup_mounts()
            .into_iter()
            .map(|m| m.join(self.cgroup.trim_start_matches('/')))
            .collect()
    }

    /// What it wrote so far, as the runtime logged it
    /// (`<RFC 3339 time> stdout|stderr F|P <text>` lines).
    pub fn log(&self) -> String {
        match fs::read_to_string(&self.log_path) {
            Ok(s) => s,
            Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
            Err(e) => panic!("reading {}: {e}", self.log_path.display()),
        }
    }
}
