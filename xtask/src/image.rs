//! `cargo xtask image`: builds the Containerfile with podman, then checks
//! the image the way a node runs it: `--version`, the runtime stage's
//! libraries, and `oomtrace run` as deploy/base/daemonset.yaml starts it (uid 0
//! with only CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE, no_new_privs, a
//! read-only root, the node's cgroupfs, tracefs and BTF mounted, the host's
//! pid namespace) up to its `ready` line and a clean stop on SIGTERM.
//!
//! Not part of `cargo xtask test`: a build from scratch takes minutes
//! (tests/tests/image.rs checks the recipe cheaply there).
//!
//! `--debootstrap` makes the base images from Debian's archive instead of
//! pulling them, for machines that reach package registries only:
//! `debootstrap --variant=minbase bookworm` with the official image's apt
//! sources, imported as `localhost/oomtrace-base/debian:bookworm-slim` (the
//! runtime stage) and, with the host's extra CA certificates
//! (/usr/local/share/ca-certificates) for a TLS-inspecting proxy the host
//! trusts, as `localhost/oomtrace-base/debian:bookworm` (the build stage
//! only: the shipped image never holds them).

use std::{
    fs,
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};

use crate::setup;

const BASE: &str = "localhost/oomtrace-base/debian:bookworm";
const BASE_SLIM: &str = "localhost/oomtrace-base/debian:bookworm-slim";
/// The official image's apt sources (debian:bookworm), so the stand-in
/// base gets security updates as the real one does.
const SOURCES: &str = "Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";
/// How long the image may take to print `ready`.
const READY_WITHIN: Duration = Duration::from_secs(60);

pub fn build_and_check(root: &Path, tag: &str, debootstrap: bool) -> anyhow::Result<()> {
    let mut packages = vec!["podman"];
    if debootstrap {
        packages.push("debootstrap");
    }
    let missing = setup::missing(&packages);
    if !missing.is_empty() {
        setup::apt_install(&missing)?;
    }
    let mut build = vec![
        "build".to_string(),
        // The build stage fetches packages and crates; the host's network
        // needs no bridge (none works without a configured CNI here).
        "--network".into(),
        "host".into(),
    ];
    build.extend(ulimits());
    if debootstrap {
        base_images(root)?;
        build.extend([
            "--build-arg".into(),
            format!("DEBIAN={BASE}"),
            "--build-arg".into(),
            format!("DEBIAN_SLIM={BASE_SLIM}"),
        ]);
    }
    build.extend([
        "-t".into(),
        tag.into(),
        "-f".into(),
        root.join("Containerfile").display().to_string(),
        root.display().to_string(),
    ]);
    let started = Instant::now();
    podman(&build)?;
    eprintln!("image: built {tag} in {}s", started.elapsed().as_secs());
    check(tag)
}

/// podman gives a container its own limits (it raises them to 1048576
/// open files and 32768 processes where it can); on a machine whose hard
/// limits are lower runc then fails to start the container: ask for what
/// podman can actually pass on.
fn ulimits() -> Vec<String> {
    let limits = fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let hard = |name: &str| {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l[name.len()..].split_whitespace().nth(1))
            .and_then(|h| h.parse::<u64>().ok())
    };
    let mut out = Vec::new();
    for (name, flag, podman_max) in [
        ("Max open files", "nofile", 1_048_576u64),
        ("Max processes", "nproc", 32_768),
    ] {
        if let Some(h) = hard(name).map(|h| h.min(podman_max)) {
            out.push("--ulimit".into());
            out.push(format!("{flag}={h}:{h}"));
        }
    }
    out
}

fn base_images(root: &Path) -> anyhow::Result<()> {
    let have = |image: &str| {
        Command::new("podman")
            .args(["image", "exists", image])
            .status()
            .is_ok_and(|s| s.success())
    };
    if have(BASE) && have(BASE_SLIM) {
        return Ok(());
    }
    let rootfs = root.join("target/image/rootfs-bookworm");
    if !rootfs.join("etc/debian_version").exists() {
        let _ = fs::remove_dir_all(&rootfs);
        eprintln!("image: debootstrap bookworm (about half a minute)");
        setup::run(
            "debootstrap",
            &[
                "--variant=minbase",
                "bookworm",
                &rootfs.display().to_string(),
                "http://deb.debian.org/debian",
            ],
        )?;
    }
    let _ = fs::remove_file(rootfs.join("etc/apt/sources.list"));
    fs::write(
        rootfs.join("etc/apt/sources.list.d/debian.sources"),
        SOURCES,
    )
    .context("writing the base image's apt sources")?;
    let _ = fs::remove_dir_all(rootfs.join("var/lib/apt/lists"));
    let _ = fs::remove_dir_all(rootfs.join("var/cache/apt/archives"));
    let cas = rootfs.join("usr/local/share/ca-certificates");
    let _ = fs::remove_dir_all(&cas);
    fs::create_dir_all(&cas)?;
    import(&rootfs, BASE_SLIM)?;
    for entry in fs::read_dir("/usr/local/share/ca-certificates")
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "crt") {
            if let Some(name) = path.file_name() {
                fs::copy(&path, cas.join(name))
                    .with_context(|| format!("copying {}", path.display()))?;
            }
        }
    }
    import(&rootfs, BASE)?;
    let _ = fs::remove_dir_all(&cas);
    Ok(())
}

fn import(rootfs: &Path, image: &str) -> anyhow::Result<()> {
    let mut tar = Command::new("tar")
        .args(["-C", &rootfs.display().to_string(), "-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .context("running tar")?;
    let stdout = tar.stdout.take().context("tar's stdout")?;
    let status = Command::new("podman")
        .args(["import", "-q", "-", image])
        .stdin(stdout)
        .stdout(Stdio::null())
        .status()
        .context("running podman import")?;
    let tar_status = tar.wait()?;
    if !status.success() || !tar_status.success() {
        bail!("importing {} as {image} failed", rootfs.display());
    }
    Ok(())
}

fn podman(args: &[String]) -> anyhow::Result<()> {
    let status = Command::new("podman")
        .args(args)
        .status()
        .context("running podman")?;
    if !status.success() {
        bail!("`podman {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

fn podman_output(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("podman")
        .args(args)
        .output()
        .context("running podman")?;
    if !out.status.success() {
        bail!(
            "`podman {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn check(tag: &str) -> anyhow::Result<()> {
    let limits = ulimits();
    let limits: Vec<&str> = limits.iter().map(String::as_str).collect();
    let mut run = vec!["run", "--rm", "--network", "host"];
    run.extend(&limits);

    let mut version = run.clone();
    version.extend([tag, "--version"]);
    let version = podman_output(&version)?;
    let want = format!("oomtrace {}", env!("CARGO_PKG_VERSION"));
    if version.trim() != want {
        bail!("the image says `{}`, not `{want}`", version.trim());
    }
    eprintln!("image: {want}");

    let mut ldd = run.clone();
    ldd.extend(["--entrypoint", "ldd", tag, "/usr/local/bin/oomtrace"]);
    let ldd = podman_output(&ldd)?;
    if ldd.contains("not found") {
        bail!("the runtime image lacks libraries the binary needs:\n{ldd}");
    }

    // As deploy/base/daemonset.yaml runs it.
    let state = std::env::temp_dir().join(format!("oomtrace-image-state-{}", std::process::id()));
    fs::create_dir_all(&state)?;
    let name = format!("oomtrace-image-check-{}", std::process::id());
    let state_mount = format!("{}:/var/lib/oomtrace", state.display());
    let mut daemon = run.clone();
    daemon.extend([
        "--name",
        &name,
        "--pid",
        "host",
        "--user",
        "0",
        "--cap-drop",
        "all",
        "--cap-add",
        "bpf,perfmon,sys_ptrace",
        "--security-opt",
        "no-new-privileges",
        "--security-opt",
        "seccomp=unconfined",
        "--read-only",
        "-v",
        "/sys/fs/cgroup:/host/sys/fs/cgroup:ro",
        "-v",
        "/sys/kernel/tracing:/sys/kernel/tracing:ro",
        "-v",
        "/sys/kernel/btf:/sys/kernel/btf:ro",
        "-v",
        &state_mount,
        "-e",
        "NODE_NAME=image-check",
        tag,
        "run",
        "--cgroup-root=/host/sys/fs/cgroup",
        "--heartbeat=0",
    ]);
    let result = run_until_ready(&daemon, &name);
    let _ = fs::remove_dir_all(&state);
    result
}

/// Starts the daemon container, waits for its `ready` line, stops it with
/// SIGTERM and expects exit 0 after a `stopping` line.
fn run_until_ready(args: &[&str], name: &str) -> anyhow::Result<()> {
    let mut child = Command::new("podman")
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .context("running podman")?;
    let stdout = child.stdout.take().context("podman's stdout")?;
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + READY_WITHIN;
    let mut ready = None;
    while ready.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let v: serde_json::Value = serde_json::from_str(&line)
                    .with_context(|| format!("the container printed a non-JSON line: {line}"))?;
                if v["type"] == "status" && v["state"] == "ready" {
                    ready = Some(v);
                }
            }
            Err(_) => {
                let _ = Command::new("podman").args(["kill", name]).status();
                let _ = child.wait();
                bail!("the container printed no ready line within {READY_WITHIN:?}");
            }
        }
    }
    let ready = ready.unwrap_or_default();
    let hooks: Vec<String> = ready["hooks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            format!(
                "{}={}",
                h["family"].as_str().unwrap_or("?"),
                h["chosen"].as_str().unwrap_or("none")
            )
        })
        .collect();
    eprintln!(
        "image: ready with the DaemonSet's capabilities; node {}, hooks {}, kernel log {}",
        ready["node"],
        hooks.join(" "),
        ready["kernel_log"]
    );
    if ready["node"] != "image-check" {
        bail!("NODE_NAME did not name the node: {ready}");
    }
    podman(&["kill".into(), "--signal".into(), "TERM".into(), name.into()])?;
    let status = child.wait()?;
    let _ = reader.join();
    let rest: Vec<String> = rx.try_iter().collect();
    let stopping = rest.iter().any(|l| {
        serde_json::from_str::<serde_json::Value>(l)
            .is_ok_and(|v| v["type"] == "status" && v["state"] == "stopping")
    });
    if !status.success() || !stopping {
        bail!("on SIGTERM the container exited with {status} (stopping line: {stopping})");
    }
    eprintln!("image: SIGTERM: `stopping` line, exit 0");
    Ok(())
}
