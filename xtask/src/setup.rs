//! Idempotent machine set-up. Each step checks first and acts only when
//! something is missing; nothing is downloaded from outside the package
//! registries (Debian's archive and crates.io).

use std::{path::Path, process::Command};

use anyhow::{bail, Context as _};

/// Debian packages: the eBPF toolchain (Rust with library sources, LLVM 22
/// for bpf-linker).
const PACKAGES: &[&str] = &["rustc-web", "cargo-web", "rust-web-src", "llvm-22-dev"];
const BPF_LINKER_VERSION: &str = "0.13.0";
const BPF_LINKER_ROOT: &str = "/opt/bpf-linker";

pub struct BuildEnv {
    pub path: String,
    pub ebpf_toolchain: String,
}

pub fn ensure() -> anyhow::Result<BuildEnv> {
    let path = format!(
        "{BPF_LINKER_ROOT}/bin:{}",
        std::env::var("PATH").unwrap_or_default()
    );
    let ebpf_toolchain = match nightly_with_rust_src() {
        Some(t) => {
            eprintln!("setup: eBPF toolchain: rustup {t} (has rust-src)");
            t
        }
        None => {
            ensure_packages()?;
            ensure_linked_toolchain()?;
            "debian-web".to_string()
        }
    };
    ensure_bpf_linker(&path)?;
    ensure_tracefs();
    Ok(BuildEnv {
        path,
        ebpf_toolchain,
    })
}

pub fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn nightly_with_rust_src() -> Option<String> {
    let installed = output(
        "rustup",
        &["component", "list", "--toolchain", "nightly", "--installed"],
    )?;
    installed
        .lines()
        .any(|l| l.starts_with("rust-src"))
        .then(|| "nightly".to_string())
}

fn missing_packages() -> Vec<&'static str> {
    missing(PACKAGES)
}

/// The Debian packages of `packages` that are not installed.
pub fn missing(packages: &[&'static str]) -> Vec<&'static str> {
    packages
        .iter()
        .copied()
        .filter(|p| {
            !output("dpkg-query", &["-W", "-f=${Status}", p])
                .is_some_and(|s| s.contains("install ok installed"))
        })
        .collect()
}

/// Debian packages of the end-to-end tests: real containers (runc; crun
/// refuses hybrid cgroup hierarchies) from a busybox rootfs; a real
/// Prometheus and promtool for the metrics endpoint (tests/tests/metrics.rs
/// runs the binaries itself, so the package's service is never needed); jq,
/// the JSON consumer deploy/README.md shows (tests/tests/manifests.rs);
/// containerd, the runtime the CRI harness drives as a kubelet would
/// (tests/src/cri.rs starts its own, so no service is needed either), and
/// protoc (protobuf-compiler), which k8s-cri's build script runs to generate
/// the CRI client: a whole-workspace build needs it, `cargo xtask run` not.
/// earlyoom and nohang, the userspace OOM killers tests/tests/userspace_killers.rs
/// runs itself, each confined to a pid namespace of its own (their packages
/// enable a service on a systemd host: the tests never need it).
const TEST_PACKAGES: &[&str] = &[
    "runc",
    "busybox-static",
    "prometheus",
    "jq",
    "containerd",
    "protobuf-compiler",
    // A systemd as a container's init (tests/tests/systemd_container.rs):
    // the container boots the host's own /usr/lib/systemd/systemd.
    "systemd",
    // explain reads compressed logs: the test compresses a fixture with each.
    "gzip",
    "xz-utils",
    "zstd",
    "earlyoom",
    "nohang",
    // tail and memory --watch seen through a real terminal (tests/tests/terminal.rs).
    "tmux",
];

/// Installs the end-to-end tests' packages when missing.
pub fn ensure_test_packages() -> anyhow::Result<()> {
    let missing = missing(TEST_PACKAGES);
    if missing.is_empty() {
        return Ok(());
    }
    if Command::new("apt-get").arg("--version").output().is_err() {
        bail!(
            "the end-to-end tests need {}: install them, then rerun",
            missing.join(" ")
        );
    }
    // Without Recommends: prometheus would bring node-exporter, a service a
    // developer's machine does not want from a test run.
    apt_install_with(&missing, false)?;
    stop_packaged_killers(&missing);
    Ok(())
}

/// On a systemd host the earlyoom and nohang packages enable and start their
/// service: a node-wide OOM killer a test run must not leave behind (it
/// would pick any process of the machine). The tests run their own.
fn stop_packaged_killers(installed: &[&str]) {
    if !std::path::Path::new("/run/systemd/system").exists() {
        return;
    }
    for (package, units) in [
        ("earlyoom", &["earlyoom.service"][..]),
        ("nohang", &["nohang.service", "nohang-desktop.service"][..]),
    ] {
        if !installed.contains(&package) {
            continue;
        }
        for unit in units {
            // Absent units fail harmlessly; say what happened either way.
            let _ = Command::new("systemctl")
                .args(["disable", "--now", unit])
                .status();
        }
        eprintln!(
            "setup: {package}'s packaged service disabled (the tests start their own, confined)"
        );
    }
}

fn ensure_packages() -> anyhow::Result<()> {
    let missing = missing_packages();
    if missing.is_empty() {
        return Ok(());
    }
    if Command::new("apt-get").arg("--version").output().is_err() {
        bail!("missing {}, and this is not a Debian system: install a Rust nightly with rust-src (`rustup toolchain install nightly --component rust-src`) and LLVM 22, then rerun", missing.join(" "));
    }
    apt_install(&missing)
}

/// `apt-get update` then `apt-get install -y` of `missing`.
pub fn apt_install(missing: &[&str]) -> anyhow::Result<()> {
    apt_install_with(missing, true)
}

pub fn apt_install_with(missing: &[&str], recommends: bool) -> anyhow::Result<()> {
    let what = missing.join(" ");
    eprintln!("setup: installing {what}");
    run("apt-get", &["update", "-q"])?;
    let mut args = vec!["install", "-y", "-q"];
    if !recommends {
        args.push("--no-install-recommends");
    }
    args.extend(missing);
    run_env("apt-get", &args, &[("DEBIAN_FRONTEND", "noninteractive")])
        .with_context(|| format!("installing {what}: as root, run `apt-get install -y {what}`"))
}

fn ensure_linked_toolchain() -> anyhow::Result<()> {
    let list = output("rustup", &["toolchain", "list"])
        .context("rustup is required (https://rustup.rs); it is not on PATH")?;
    if list.lines().any(|l| l.starts_with("debian-web")) {
        return Ok(());
    }
    eprintln!("setup: linking Debian's rustc-web as the rustup toolchain `debian-web`");
    run("rustup", &["toolchain", "link", "debian-web", "/usr"])
}

fn ensure_bpf_linker(path: &str) -> anyhow::Result<()> {
    let bin = format!("{BPF_LINKER_ROOT}/bin/bpf-linker");
    if output(&bin, &["--version"]).is_some_and(|v| v.contains(BPF_LINKER_VERSION)) {
        return Ok(());
    }
    if !Path::new("/usr/lib/llvm-22").is_dir() {
        ensure_packages()?;
    }
    eprintln!("setup: building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (about a minute)");
    run_env(
        "cargo",
        &[
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--no-default-features",
            "--features",
            "llvm-22",
            "--root",
            BPF_LINKER_ROOT,
        ],
        &[("LLVM_PREFIX", "/usr/lib/llvm-22"), ("PATH", path)],
    )
    .context("building bpf-linker: needs LLVM 22 (Debian: apt-get install llvm-22-dev)")
}

/// The classic tracepoints need tracefs; oomtrace mounts it itself when it
/// can, so a failure here is only a warning.
fn ensure_tracefs() {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    if mounts
        .lines()
        .any(|l| l.split_whitespace().nth(2) == Some("tracefs"))
    {
        return;
    }
    if let Err(e) = run("mount", &["-t", "tracefs", "nodev", "/sys/kernel/tracing"]) {
        eprintln!("setup: warning: tracefs is not mounted and mounting it failed ({e:#}); run `mount -t tracefs nodev /sys/kernel/tracing` as root");
    }
}

pub fn run(cmd: &str, args: &[&str]) -> anyhow::Result<()> {
    run_env(cmd, args, &[])
}

fn run_env(cmd: &str, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<()> {
    let status = Command::new(cmd)
        .args(args)
        .envs(env.iter().copied())
        .status()
        .with_context(|| format!("running {cmd}"))?;
    if !status.success() {
        bail!("`{cmd} {}` failed ({status})", args.join(" "));
    }
    Ok(())
}
