//! Set-up, build, run and test orchestration. `cargo xtask run` and
//! `cargo xtask test` are the README's two commands; both set the machine up
//! first, idempotently (seconds when everything is there).

mod bench;
mod compare;
mod fuzz;
mod image;
mod kernels;
mod load;
mod manifests;
mod real_logs;
mod setup;
mod vm;

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "oomtrace's set-up, build and test tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and running oomtrace needs (Debian packages, bpf-linker, tracefs).
    Setup,
    /// Set up, then build oomtrace (release).
    Build,
    /// Set up, build, and run oomtrace with the given arguments (default: `tail`).
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build the container image (Containerfile) with podman and check it:
    /// --version, its libraries, and `oomtrace run` with the DaemonSet's
    /// capabilities up to `ready` and a clean SIGTERM (as root; minutes).
    Image {
        /// Image name.
        #[arg(long, default_value = concat!("localhost/oomtrace:", env!("CARGO_PKG_VERSION")))]
        tag: String,
        /// Make the Debian base images with debootstrap instead of pulling them.
        #[arg(long)]
        debootstrap: bool,
    },
    /// Render deploy/'s kustomizations and check them: every Kubernetes
    /// object strictly against the API schemas (kubernetes-validate, oldest
    /// and newest supported Kubernetes), the Prometheus Operator objects
    /// against their CRDs' fields, the alerts with promtool's rule tests.
    /// On the host, no root needed but for installing its tools; seconds.
    /// The first step of `test`.
    Manifests,
    /// Re-record the replay fixtures (oomtrace/tests/fixtures) from the end-to-end scenarios, as root.
    Fixtures,
    /// Set up, build, and run the whole test suite (unit and end-to-end, as root),
    /// then the end-to-end scenarios again inside Debian's 5.10 (cgroup v1 and v2), 6.1 and 6.12 kernels (vm-test).
    Test {
        /// Skip the VM run (local iteration only; CI runs it).
        #[arg(long)]
        no_vm: bool,
        /// Extra arguments for `cargo test` after `--` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Measure overhead, latency, loss and footprint on this machine (as root;
    /// minutes) and write the figures into BENCHMARKS.md. Not part of `test`.
    Bench(bench::Opts),
    /// Fuzz every parser of kernel and file input (cargo-fuzz, nightly), each
    /// target for --seconds, and record the runs in BENCHMARKS.md.
    Fuzz(fuzz::Opts),
    /// The bench's load generators (run by `bench` inside the cgroup under test).
    #[command(hide = true, subcommand)]
    BenchLoad(load::Load),
    /// The bench's churn section inside the VM (run by `bench --only churn-v2`).
    #[command(hide = true)]
    BenchGuest {
        #[arg(long)]
        oomtrace: PathBuf,
        #[arg(long)]
        hog: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        quick: bool,
    },
    /// Each line of stdin to stdout behind the CLOCK_REALTIME (ns) it was
    /// read at (run by `compare` inside the VM, on each tool's output).
    #[command(hide = true)]
    Stamp,
    /// Run bcc's oomkill and bpftrace's oomkill.bt next to oomtrace on the same
    /// OOM kills inside Debian's 6.1 VM, measure each one's kill → line latency
    /// and its overhead on the page-fault and fork/exec storms, and write
    /// docs/comparison.md (as root; minutes; installs bpfcc-tools, bpftrace and
    /// the kernel's headers). Not part of `test`.
    Compare {
        /// Only rewrite docs/comparison.md from the last run's outputs.
        #[arg(long)]
        render_only: bool,
    },
    /// Build, then run the end-to-end scenarios inside Debian's 5.10 (cgroup
    /// v1 and v2), 6.1 and 6.12 kernels in a TCG VM: best hooks and each
    /// fallback (docs/kernels.md; OOMTRACE_VM_BOOTS picks boots).
    VmTest {
        /// Extra arguments for the test executable (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    match cli.task {
        Task::Setup => {
            setup::ensure()?;
        }
        Task::Build => {
            build_release(&root)?;
        }
        Task::Run { args } => {
            let bin = build_release(&root)?;
            let args = if args.is_empty() {
                vec!["tail".to_string()]
            } else {
                args
            };
            let status = Command::new(&bin)
                .args(&args)
                .status()
                .with_context(|| format!("running {}", bin.display()))?;
            if !status.success() {
                bail!("oomtrace exited with {status}");
            }
        }
        Task::Fixtures => fixtures(&root)?,
        Task::Manifests => manifests::check(&root, &target_dir(&root))?,
        Task::Bench(opts) => {
            let env = setup::ensure()?;
            if !rustix_is_root() {
                bail!("the bench loads eBPF programs, creates cgroups and causes OOM kills: run `cargo xtask bench` as root");
            }
            bench::run(&root, &env, opts)?;
        }
        Task::Fuzz(opts) => fuzz::run(&root, opts)?,
        Task::BenchLoad(load) => load::run(load)?,
        Task::BenchGuest {
            oomtrace,
            hog,
            out,
            quick,
        } => bench::guest(oomtrace, hog, &out, quick)?,
        Task::Image { tag, debootstrap } => {
            if !rustix_is_root() {
                bail!("`cargo xtask image` runs podman as root (and checks the image with BPF): run it as root");
            }
            image::build_and_check(&root, &tag, debootstrap)?;
        }
        Task::Test { no_vm, args } => {
            let env = setup::ensure()?;
            if !rustix_is_root() {
                bail!("the end-to-end tests load eBPF programs, create cgroups and cause OOM kills: run `cargo xtask test` as root");
            }
            setup::ensure_test_packages()?;
            // deploy/ rendered and validated: seconds, on the host.
            manifests::check(&root, &target_dir(&root))?;
            // The end-to-end tests start the built binaries. Plain `build` and
            // `test` cover the default members: every crate but the eBPF one,
            // which only builds for the BPF target (through oomtrace/build.rs).
            cargo(&root, &env, &["build", "--bins"])?;
            // Logs nobody here wrote first: seconds, and no root needed.
            real_logs::check(&root, &target_dir(&root).join("debug/oomtrace"))?;
            let mut test = vec!["test", "--no-fail-fast", "--"];
            test.extend(args.iter().map(String::as_str));
            // A silent fallback fails the host's run too: every daemon a
            // test starts without hooks of its own must take these.
            cargo_with(
                &root,
                &env,
                &test,
                &[("OOMTRACE_E2E_EXPECT_HOOKS", HOST_EXPECT_HOOKS)],
            )?;
            // Once more as a DaemonSet's container runs: in a cgroup of its
            // own and a private cgroup namespace (v1 hierarchies are
            // namespaced alike).
            eprintln!("xtask: the verdict, escape and leak scenarios with oomtrace in a private cgroup namespace");
            let mut ns_test = vec!["test", "--no-fail-fast", "-p", "oomtrace-e2e"];
            for t in vm::CGROUPNS_TARGETS {
                ns_test.extend(["--test", t]);
            }
            ns_test.push("--");
            ns_test.extend(args.iter().map(String::as_str));
            for t in vm::CGROUPNS_SKIP {
                ns_test.extend(["--skip", t]);
            }
            cargo_with(
                &root,
                &env,
                &ns_test,
                &[
                    ("OOMTRACE_E2E_EXPECT_HOOKS", HOST_EXPECT_HOOKS),
                    ("OOMTRACE_E2E_CGROUPNS", "1"),
                ],
            )?;
            if no_vm {
                eprintln!("xtask: --no-vm: skipping the VM runs");
            } else {
                vm::test(&root, &env, &args)?;
            }
        }
        Task::Stamp => compare::stamp()?,
        Task::Compare { render_only } => {
            let env = setup::ensure()?;
            if !rustix_is_root() {
                bail!("`cargo xtask compare` installs packages and boots the VM: run it as root");
            }
            compare::run(&root, &env, render_only)?;
        }
        Task::VmTest { args } => {
            let env = setup::ensure()?;
            if !rustix_is_root() {
                bail!("the VM run needs root (apt-get, and the guest runs the tests as root): run `cargo xtask vm-test` as root");
            }
            // The guest runs the host's runc and containerd (9p), and the
            // build needs protoc.
            setup::ensure_test_packages()?;
            cargo(&root, &env, &["build", "--bins"])?;
            vm::test(&root, &env, &args)?;
        }
    }
    Ok(())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn rustix_is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Cargo's target directory: `CARGO_TARGET_DIR` when set (relative to the
/// workspace), else `target` in the workspace.
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// Sets up, builds oomtrace (release) and returns the binary.
fn build_release(root: &Path) -> anyhow::Result<PathBuf> {
    let env = setup::ensure()?;
    cargo(root, &env, &["build", "--release", "--package", "oomtrace"])?;
    Ok(target_dir(root).join("release/oomtrace"))
}

/// The hooks this machine kind's kernel (6.18, BTF, no kprobes; fentry
/// refused with EPERM, so no `oom` family) must give every family that can
/// be asserted: the host's side of issue 12's "a silent fallback must fail".
/// The VM's passes set their own (xtask/src/vm.rs `PASSES`).
const HOST_EXPECT_HOOKS: &str = "victim=tp_btf,signal=tp_btf,cgroup=tp_btf,pressure=tp_btf";

fn cargo(root: &Path, env: &setup::BuildEnv, args: &[&str]) -> anyhow::Result<()> {
    cargo_with(root, env, args, &[])
}

/// [`cargo`] with extra environment variables.
pub(crate) fn cargo_with(
    root: &Path,
    env: &setup::BuildEnv,
    args: &[&str],
    vars: &[(&str, &str)],
) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(root)
        .args(args)
        .env("PATH", &env.path)
        .env("OOMTRACE_EBPF_TOOLCHAIN", &env.ebpf_toolchain)
        .envs(vars.iter().copied())
        .status()
        .with_context(|| format!("running {cargo} {}", args.join(" ")))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Records each end-to-end scenario, one at a time so a recording holds only
/// its own scenario, and stores its replay beside it as the expected lines.
fn fixtures(root: &Path) -> anyhow::Result<()> {
    let env = setup::ensure()?;
    setup::ensure_test_packages()?;
    let dir = root.join("oomtrace/tests/fixtures");
    std::fs::create_dir_all(&dir)?;
    for entry in std::fs::read_dir(&dir)? {
        let p = entry?.path();
        if p.extension().is_some_and(|e| e == "rec" || e == "jsonl") {
            std::fs::remove_file(p)?;
        }
    }
    cargo(root, &env, &["build", "--bins"])?;
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args([
            "test",
            "-p",
            "oomtrace-e2e",
            "--test",
            "foundation",
            "--test",
            "scenarios",
            "--test",
            "cri_verdicts",
            "--test",
            "near_oom",
            "--",
            "--test-threads=1",
            // Churn recordings run to megabytes and hold no verdict.
            "--skip",
            "churn",
        ])
        .env("PATH", &env.path)
        .env("OOMTRACE_EBPF_TOOLCHAIN", &env.ebpf_toolchain)
        .env("OOMTRACE_E2E_FIXTURES", &dir)
        .status()?;
    if !status.success() {
        bail!("recording the fixtures failed ({status})");
    }
    let bin = target_dir(root).join("debug/oomtrace");
    for entry in std::fs::read_dir(&dir)? {
        let p = entry?.path();
        if p.extension().is_some_and(|e| e == "rec") {
            let out = Command::new(&bin).arg("replay").arg(&p).output()?;
            if !out.status.success() {
                bail!(
                    "replaying {}: {}",
                    p.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::fs::write(p.with_extension("expected.jsonl"), out.stdout)?;
        }
    }
    eprintln!("fixtures written to {}", dir.display());
    Ok(())
}
