//! `cargo xtask vm-test`: the end-to-end scenarios inside other kernels.
//!
//! The host runs 6.18 with cgroup v1 memory and only the tracepoint family
//! of hooks; the kernels users' nodes run are booted with virtme-ng under
//! TCG (KVM does not work on these machines), each listed in [`KERNELS`]
//! with its cgroup version, its passes (the hooks forced through
//! `OOMTRACE_E2E_HOOKS`, read by tests/src/lib.rs, and the choices each must
//! show) and the targets each pass runs: Debian 12's 6.1 (from the host's
//! archive), Debian 11's 5.10 on cgroup v1 and on v2, and Debian 13's 6.12
//! (downloaded into a cache by `kernels`, never installed). Each boot
//! prints `oomtrace doctor`'s JSON, whose hook choices must be the best
//! pass's. 6.1's best pass runs every target of [`E2E_TARGETS`]; the others
//! run what tests a kernel difference (docs/kernels.md says what and why).
//! A small boot of 6.1 (512 MiB, no memcg limit anywhere) runs only the
//! global-OOM scenario (the `vm` target's ignored test): a global OOM is
//! safe nowhere else, and its `system_oom` verdict is kept in
//! `target/vm/system_oom.json`.
//! `OOMTRACE_VM_BOOTS=5.10-v1` (or `6.1` alias `main`, `5.10-v2`, `6.12`,
//! `global`, `stall`; comma-separated, booted in that order) runs some
//! boots only (iteration).
//! The guest sees the host's filesystem read-only through
//! 9p: it runs copies of the binaries `target/debug` holds, taken just before
//! the boot (`target/vm/bin`), and writes only `target/vm/artifacts`.
//!
//! The guest script ends with a sentinel line (`OOMTRACE-VM-RESULT: pass`
//! or `fail`): vng's exit status does not carry the script's. A hung boot is
//! killed (its process group, which this module created) at a deadline.

use std::{
    fs,
    io::{BufRead as _, BufReader, Write as _},
    os::unix::{fs::PermissionsExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};

use crate::{kernels, setup};

/// Debian packages the VM needs: the 6.1 kernel, qemu, a static busybox
/// for virtme-ng's guest init, and venv for installing virtme-ng.
const PACKAGES: &[&str] = &[
    "linux-image-amd64",
    "qemu-system-x86",
    "busybox-static",
    "python3-venv",
];
const VNG_VENV: &str = "/opt/vng";
const VNG_VERSION: &str = "1.42";
pub(crate) const SENTINEL: &str = "OOMTRACE-VM-RESULT:";
/// The whole boot, all runs included (measured: about 12 minutes on an idle
/// 2-core machine, 15 with other work beside it, and 25 on 2026-12-04 with
/// the long-grace stop tests and a slower emulation: 1,469 s of test
/// executables); the boot is killed past it (a stalled boot is booted once
/// more with the same limit). `OOMTRACE_VM_TIMEOUT_SECS` overrides.
const BOOT_TIMEOUT: Duration = Duration::from_secs(40 * 60);
/// The end-to-end test executables run in the guest (cargo target names),
/// all of them in 6.1's best-hooks pass; each [`Pass`] names its share.
/// `vm` holds the VM-only scenarios (`test = false`: host `cargo test` skips it).
/// `scenarios` and `containers` (real runc containers: every verdict and
/// finding) run on cgroup v2 here, and `cri` (pods through containerd's
/// CRI, as a kubelet runs them: on v2 with `memory.oom.group`). Those, the
/// daemon's restarts, lost events and heartbeats, metrics through
/// Prometheus, the node memory breakdown and the CRI runtime's side of
/// stops (no daemon: the hooks change nothing there) run once, with the
/// best hooks; `manifests` runs the agent with exactly the least-privilege
/// DaemonSet's capabilities (Debian's 6.1 opens a classic tracepoint's perf
/// event only with CAP_SYS_ADMIN: the tp_btf rows are what make it enough).
const E2E_TARGETS: &[&str] = &[
    "foundation",
    "vm",
    "storm",
    "scenarios",
    "containers",
    "daemon",
    "metrics",
    "cri",
    // Verdicts on CRI-made pods against ContainerStatus and the kernel's
    // oom_memcg: in every pass, since the limit's scope depends on the hooks.
    "cri_verdicts",
    // The least-privilege DaemonSet's capabilities against this kernel.
    "manifests",
    // The node memory breakdown on cgroup v2 (`oomtrace memory`, dying
    // cgroups, and an allocatable OOM's verdict).
    "node_memory",
    // The near_oom sampler on v2 (memory.current, memory.pressure).
    "near_oom",
    // A systemd as a container's init on v2: its units' cgroups below the
    // container's (Debian's systemd from the host's /usr).
    "systemd_container",
];
/// Tests of a target skipped in the fallback passes: what does not depend
/// on the OOM hooks (the CRI stops and evictions see only the signal
/// hook, the same in every pass) runs once, in the best-hooks pass.
const BEST_PASS_ONLY_TESTS: &[(&str, &[&str])] = &[
    ("cri_verdicts", &["eviction", "deletion"]),
    // Six pods killed under CPU load: minutes under TCG, and the memory at
    // the kill comes from the kernel's report whatever the hooks.
    //
    // The tests that pass `--hooks` of their own (the forced classic
    // tracepoint, kernel-log mode): OOMTRACE_E2E_HOOKS does not apply to
    // them, so a fallback pass would repeat them exactly.
    (
        "foundation",
        &[
            "a_burst_of_kills",
            "forced_tracepoint_fallback",
            "a_victim_named_from_proc",
            "kernel_log_mode",
        ],
    ),
    // A kill inside a write of memory.max: its trigger is the writer, outside
    // the cgroup, so without the per-OOM hook (struct oom_control) the
    // limit comes from the kernel log's summary, which has no limit to
    // compare with the earlier one.
    ("vm", &["after_a_lowered"]),
];
/// Tests left to the host: container churn (hundreds of runc starts) takes
/// minutes under TCG and tests no kernel difference.
/// Targets of which the guest runs only the tests named here (the rest of
/// `manifests` checks files and the host's tools, not the kernel).
const GUEST_FILTER: &[(&str, &str)] = &[("manifests", "least_privilege_daemonset")];
const HOST_ONLY: &[&str] = &[
    "container_churn_gives_no_verdict",
    "churn_of_many_containers",
];
/// The second, small boot: no memcg limit anywhere, so a global OOM is safe
/// only there. Runs the `vm` target's ignored global-OOM test.
const GLOBAL_OOM_MEMORY: &str = "512M";
const GLOBAL_OOM_TEST: &str = "global_oom_is_system_oom_with_top_consumers";
/// The line the global-OOM test prints with its verdict (kept in
/// `target/vm/system_oom.json`).
const CAPTURE: &str = "CAPTURED-SYSTEM-OOM ";
/// The binaries the end-to-end harness starts (tests/src/lib.rs `bin`).
const HARNESS_BINS: &[&str] = &["oomtrace", "oomtrace-hog"];

/// One pass of the scenarios: the hooks forced through `OOMTRACE_E2E_HOOKS`
/// and what the status line must then show (`OOMTRACE_E2E_EXPECT_HOOKS`).
struct Pass {
    label: &'static str,
    hooks: &'static str,
    expect: &'static str,
    /// The end-to-end targets this pass runs (of [`E2E_TARGETS`]).
    targets: &'static [&'static str],
}

impl Pass {
    /// A shell-word name for the exit-code summary and the artifacts dir.
    fn tag(&self) -> String {
        self.label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect()
    }
}

/// How a boot's guest mounts its cgroups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cgroups {
    /// cgroup2 at /sys/fs/cgroup with memory delegated from the root.
    V2,
    /// The v1 hierarchies as a v1 node (and this project's CI host) has
    /// them, the memory controller among them; cgroup2 only as the
    /// controller-less `unified` mount.
    V1,
}

/// A kernel the VM suite boots and what runs there: the kernel set as data.
struct Kernel {
    /// Its name in `OOMTRACE_VM_BOOTS` and in the logs.
    boot: &'static str,
    /// Debian's package, downloaded into a cache of its own; None: Debian
    /// 12's 6.1, installed on the host (`linux-image-amd64`).
    package: Option<kernels::Package>,
    cgroups: Cgroups,
    /// Best hooks first: its `expect` is what `oomtrace doctor` must choose
    /// there too (the guest prints doctor's JSON; the host compares).
    passes: &'static [Pass],
    /// Tests of a target skipped in every pass of this kernel (`--skip`
    /// filters).
    skip: &'static [(&'static str, &'static [&'static str])],
}

/// What of `cri_verdicts` runs on 6.1 only (and on the host): the CRI
/// stops and evictions, and the stop after a child's kill (a finding),
/// see only the signal hook, which takes tp_btf on every kernel here; the
/// kubepods-level OOM of pods past allocatable is a kill the `vm` target's
/// lowered kubepods limit covers on v2. The other kernels run the kills
/// in a container's and a pod's limit and a child's kill (limits against
/// the kernel's `oom_memcg`, `kubelet_reports` against ContainerStatus),
/// which depend on the kernel: the twelve took over the 400 s a run has
/// under TCG on 5.10, and these five 390 s on 6.12.
const CRI_ON_61_ONLY: (&str, &[&str]) = (
    "cri_verdicts",
    &[
        "eviction",
        "deletion",
        "one_container_stopped",
        "signals_under_pressure",
        "a_stop_after",
        "pods_past_allocatable",
    ],
);
/// Six pods killed under CPU load (minutes under TCG): it tests the memory
/// at each kill taken from the kernel's report, whose format 6.12 shares
/// with 6.1; 5.10's is older and runs it.
const BURST: (&str, &[&str]) = ("foundation", &["a_burst_of_kills"]);

/// The targets every kernel runs with its best hooks: the verdicts
/// (`foundation`), the CRI-made pods' limits against the kernel's
/// `oom_memcg` and `kubelet_reports` against ContainerStatus
/// (`cri_verdicts`), and no kill missed (`storm`); on v2 the `vm`
/// target's `memory.oom.group` kills and lowered limits too.
const EVERY_KERNEL_V2: &[&str] = &["foundation", "vm", "storm", "cri_verdicts"];
/// 5.10 on v1 adds the daemon's restarts, losses and heartbeats (`daemon`):
/// the lost lines name the family's hook, and 5.10's victim hook is its
/// own (6.12 has 6.1's hooks, and 5.10 on v2 has these).
const EVERY_KERNEL_V1_DAEMON: &[&str] = &["foundation", "storm", "cri_verdicts", "daemon"];
/// A fallback pass on the other kernels: the verdicts only (the other
/// targets' hook-dependent paths are the same code as on 6.1, where they
/// walk the fallbacks).
const FALLBACK: &[&str] = &["foundation"];
/// 6.1's fallback passes: the verdicts, `memory.oom.group` and the CRI
/// pods' limits. The storm (a minute or more under TCG per pass) runs
/// with the best hooks on every kernel; it counts kills against the
/// kernel's, which no hook choice changes but the victim family's, and
/// that is walked by `foundation`.
const FALLBACK_61: &[&str] = &["foundation", "vm", "cri_verdicts"];

/// 6.1's and 6.12's hooks (docs/kernels.md): fentry and kprobe on
/// `oom_kill_process`, tp_btf/raw_tp/tracepoint on `oom:mark_victim`
/// (which carries the task there).
const BEST_6: &str = "oom=fentry,victim=tp_btf,cgroup=tp_btf,signal=tp_btf,pressure=tp_btf";
const KPROBE_RAW_TP: &str = "oom=kprobe,victim=raw_tp";
const KPROBE_RAW_TP_EXPECT: &str =
    "oom=kprobe,victim=raw_tp,cgroup=tp_btf,signal=tp_btf,pressure=tp_btf";
const CLASSIC_LABEL: &str = "no per-OOM hook, classic tracepoints (signal on tp_btf)";
// The signal family stays on tp_btf: its classic tracepoint records
// no target namespaces, so a stop cannot be tied to a container's
// init there (the host's forced-tracepoint tests cover it).
const CLASSIC: &str = "oom=off,victim=tracepoint,cgroup=tracepoint,pressure=tracepoint";
const CLASSIC_EXPECT: &str =
    "oom=none,victim=tracepoint,cgroup=tracepoint,signal=tp_btf,pressure=tracepoint";

/// 5.10's hooks: `oom:mark_victim` has only the pid there (its task came
/// in 6.9), so tp_btf and raw_tp find no task and the victim family takes
/// fentry, else kprobe, on `mark_oom_victim` (the function that emits the
/// tracepoint, with the task); the classic tracepoint gives the pid only
/// and the kernel's report the rest. fentry and kprobe on
/// `oom_kill_process`, the other families on tp_btf as on 6.1.
const BEST_510: &str = "oom=fentry,victim=fentry,cgroup=tp_btf,signal=tp_btf,pressure=tp_btf";
/// 5.10's fallbacks are split between its two boots, each once: which row
/// attaches does not depend on the cgroup version, and each boot's best
/// pass already runs the verdicts on its own cgroups.
const PASSES_510_V1: &[Pass] = &[
    Pass {
        label: "best hooks",
        hooks: "",
        expect: BEST_510,
        targets: EVERY_KERNEL_V1_DAEMON,
    },
    Pass {
        label: "kprobes",
        hooks: "oom=kprobe,victim=kprobe",
        expect: "oom=kprobe,victim=kprobe,cgroup=tp_btf,signal=tp_btf,pressure=tp_btf",
        targets: FALLBACK,
    },
    Pass {
        label: "kernel log only",
        hooks: "victim=off",
        expect: "oom=fentry,victim=none,cgroup=tp_btf,signal=tp_btf,pressure=tp_btf",
        targets: FALLBACK,
    },
];
const PASSES_510_V2: &[Pass] = &[
    Pass {
        label: "best hooks",
        hooks: "",
        expect: BEST_510,
        targets: EVERY_KERNEL_V2,
    },
    Pass {
        label: "pid-only tracepoint, no per-OOM hook, classic tracepoints (signal on tp_btf)",
        hooks: CLASSIC,
        expect: CLASSIC_EXPECT,
        targets: FALLBACK,
    },
];

const KERNELS: &[Kernel] = &[
    Kernel {
        boot: "6.1",
        package: None,
        cgroups: Cgroups::V2,
        passes: &[
            Pass {
                label: "best hooks",
                hooks: "",
                expect: BEST_6,
                targets: E2E_TARGETS,
            },
            Pass {
                label: "kprobe + raw_tp",
                hooks: KPROBE_RAW_TP,
                expect: KPROBE_RAW_TP_EXPECT,
                targets: FALLBACK_61,
            },
            Pass {
                label: CLASSIC_LABEL,
                hooks: CLASSIC,
                expect: CLASSIC_EXPECT,
                targets: FALLBACK_61,
            },
            // No pass with oomtrace in a private cgroup namespace here: the
            // host suite runs every target of CGROUPNS_TARGETS so (`cargo
            // xtask test`'s second host run), and the translation of
            // /proc/PID/cgroup paths out of a namespace is the same code on
            // either cgroup version.
        ],
        skip: &[],
    },
    Kernel {
        boot: "5.10-v1",
        package: Some(kernels::Package {
            suite: "bullseye",
            name: "linux-image-5.10.0-32-amd64",
            image: "vmlinuz-5.10.0-32-amd64",
        }),
        cgroups: Cgroups::V1,
        passes: PASSES_510_V1,
        skip: &[CRI_ON_61_ONLY],
    },
    Kernel {
        boot: "5.10-v2",
        package: Some(kernels::Package {
            suite: "bullseye",
            name: "linux-image-5.10.0-32-amd64",
            image: "vmlinuz-5.10.0-32-amd64",
        }),
        cgroups: Cgroups::V2,
        passes: PASSES_510_V2,
        skip: &[CRI_ON_61_ONLY],
    },
    Kernel {
        boot: "6.12",
        package: Some(kernels::Package {
            suite: "trixie",
            name: "linux-image-6.12.117+deb13-amd64",
            image: "vmlinuz-6.12.117+deb13-amd64",
        }),
        cgroups: Cgroups::V2,
        // Its best hooks only: its fallbacks are 6.1's rows on the same
        // tracepoints and functions (6.1's boot walks them), and the whole
        // command stays within CI's time with four kernels.
        passes: &[Pass {
            label: "best hooks",
            hooks: "",
            expect: BEST_6,
            targets: EVERY_KERNEL_V2,
        }],
        skip: &[CRI_ON_61_ONLY, BURST],
    },
];

/// What runs once more with oomtrace as containerd runs a DaemonSet on a
/// cgroup v2 node (its own cgroup, a private cgroup namespace): the
/// verdicts, escapes and leaks, on the host too (`cargo xtask test`). The
/// CRI stops and evictions read no paths from /proc and stay out.
pub const CGROUPNS_TARGETS: &[&str] = &[
    "foundation",
    "scenarios",
    "containers",
    "cri_verdicts",
    // A systemd's unit cgroups below a container's, as `/../..` paths.
    "systemd_container",
];
pub const CGROUPNS_SKIP: &[&str] = &["eviction", "deletion"];

/// Installs what booting the VM needs, when missing (seconds when present;
/// about 2.5 minutes on a fresh machine).
pub fn ensure() -> anyhow::Result<()> {
    let missing = setup::missing(PACKAGES);
    if !missing.is_empty() {
        setup::apt_install(&missing)?;
    }
    let vng = Path::new(VNG_VENV).join("bin/vng");
    let have = setup::output(&vng.display().to_string(), &["--version"])
        .is_some_and(|v| v.contains(VNG_VERSION));
    if !have {
        eprintln!("vm: installing virtme-ng {VNG_VERSION} from PyPI into {VNG_VENV}");
        // Debian's interpreter, not whatever python3 comes first on PATH.
        setup::run("/usr/bin/python3", &["-m", "venv", VNG_VENV])
            .context("creating the virtme-ng venv (Debian: apt-get install python3-venv)")?;
        setup::run(
            &format!("{VNG_VENV}/bin/pip"),
            &["install", "-q", &format!("virtme-ng=={VNG_VERSION}")],
        )?;
    }
    Ok(())
}

/// The newest Debian 6.1 kernel image in /boot.
pub fn kernel() -> anyhow::Result<PathBuf> {
    let mut found: Vec<(Vec<u64>, PathBuf)> = fs::read_dir("/boot")
        .context("reading /boot")?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let version = name.strip_prefix("vmlinuz-6.1.")?;
            // 6.1.0-56-amd64 → [0, 56]: the ABI number orders Debian's builds.
            let key = version
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse().ok())
                .collect();
            Some((key, e.path()))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, p)| p)
        .context("no /boot/vmlinuz-6.1.* (Debian 12's kernel: apt-get install linux-image-amd64)")
}

/// The built test executables for [`E2E_TARGETS`], as cargo reports them
/// (only the end-to-end package: a unit test that does not compile elsewhere
/// in the workspace does not stop `cargo xtask vm-test`).
fn test_executables(root: &Path, env: &setup::BuildEnv) -> anyhow::Result<Vec<PathBuf>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .current_dir(root)
        .args([
            "test",
            "--no-run",
            "--message-format=json",
            "--package",
            "oomtrace-e2e",
        ])
        .args(E2E_TARGETS.iter().flat_map(|t| ["--test", t]))
        .env("PATH", &env.path)
        .env("OOMTRACE_EBPF_TOOLCHAIN", &env.ebpf_toolchain)
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo test --no-run")?;
    if !out.status.success() {
        bail!("`cargo test --no-run` failed ({})", out.status);
    }
    let mut exes: Vec<(usize, PathBuf)> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let name = msg["target"]["name"].as_str().unwrap_or_default();
        if let (Some(i), Some(exe)) = (
            E2E_TARGETS.iter().position(|t| *t == name),
            msg["executable"].as_str(),
        ) {
            exes.push((i, PathBuf::from(exe)));
        }
    }
    // In E2E_TARGETS' order: the guest script picks them by index.
    exes.sort();
    let exes: Vec<PathBuf> = exes.into_iter().map(|(_, p)| p).collect();
    if exes.len() != E2E_TARGETS.len() {
        bail!(
            "cargo reported {} of the end-to-end executables {E2E_TARGETS:?}: {exes:?}",
            exes.len()
        );
    }
    Ok(exes)
}

pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Copies the built binaries the guest runs into `to`, laid out as cargo
/// lays them out (the harness finds `oomtrace` beside `deps/`): a build
/// started on the host while the VM runs (TCG: minutes) must not swap a
/// binary under the guest. Returns the copies of `oomtrace` and of `exes`.
pub(crate) fn snapshot(
    from: &Path,
    exes: &[PathBuf],
    to: &Path,
) -> anyhow::Result<(PathBuf, Vec<PathBuf>)> {
    if to.exists() {
        fs::remove_dir_all(to).with_context(|| format!("clearing {}", to.display()))?;
    }
    let deps = to.join("deps");
    fs::create_dir_all(&deps).with_context(|| format!("creating {}", deps.display()))?;
    let copy = |src: &Path, dst: PathBuf| -> anyhow::Result<PathBuf> {
        fs::copy(src, &dst).with_context(|| {
            format!(
                "copying {} (build it first: cargo build --bins)",
                src.display()
            )
        })?;
        Ok(dst)
    };
    for bin in HARNESS_BINS {
        copy(&from.join(bin), to.join(bin))?;
    }
    let mut copies = Vec::new();
    for exe in exes {
        let name = exe
            .file_name()
            .context("a test executable without a name")?;
        copies.push(copy(exe, deps.join(name))?);
    }
    Ok((to.join("oomtrace"), copies))
}

/// A guest script's start with the cgroups mounted one way: `head`, the
/// cgroup set-up, then tracefs, a private $TMPDIR, the heartbeat.
macro_rules! preamble {
    ($cgroups:literal) => {
        concat!(
            r#"#!/bin/sh
# Generated by `cargo xtask vm-test` (xtask/src/vm.rs); runs inside the VM.
set -u
fail=0
results=""
note() { echo "vm: $*"; }
note "kernel $(uname -r), $(nproc) cpus, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"
"#,
            $cgroups,
            r#"if ! awk '$3 == "tracefs" {f=1} END {exit !f}' /proc/mounts; then
    mount -t tracefs nodev /sys/kernel/tracing || note "mounting tracefs failed"
fi
# The guest's /tmp is an overlay on the host's: a directory of its own
# keeps this run's files (daemon recordings) apart from the host's.
export TMPDIR="$(mktemp -d /tmp/oomtrace-vm.XXXXXX)"
cd "$TMPDIR"
export RUST_BACKTRACE=1
# Two test threads for two CPUs: under TCG each daemon's BPF load and each
# OOM kill are slow, and fewer at once keeps the guest responsive.
export RUST_TEST_THREADS=2
# One test executable's run at most (measured: under 2 minutes on an idle
# 2-core host); one that hangs is killed and the rest still run.
RUN_TIMEOUT=400
# A heartbeat: if the guest stalls, the log shows when and in what state.
(
    while sleep 60; do
        note "heartbeat: up $(cut -d' ' -f1 /proc/uptime) s, load $(cut -d' ' -f1-3 /proc/loadavg), MemAvailable $(awk '/MemAvailable/ {print $2}' /proc/meminfo) kB, $(ps -eo stat= | grep -c '^D') tasks in D"
    done
) &
heartbeat=$!
# What a run that overran its time left behind.
stuck() {
    note "$1 overran its $RUN_TIMEOUT s: the tasks, then the kernel's last lines"
    ps -eo pid,ppid,stat,wchan:24,etime,rss,comm | sed 's/^/vm: ps: /'
    dmesg | tail -40 | sed 's/^/vm: dmesg: /'
}
"#
        )
    };
}

/// The start of every guest script: cgroup2 with memory delegated, tracefs,
/// a private $TMPDIR, `note`.
pub(crate) const PREAMBLE: &str = preamble!(
    r#"# cgroup v2 with the memory controller delegated from the root.
if ! awk '$2 == "/sys/fs/cgroup" && $3 == "cgroup2" {f=1} END {exit !f}' /proc/mounts; then
    mount -t cgroup2 none /sys/fs/cgroup || { note "mounting cgroup2 failed"; fail=1; }
fi
echo +memory > /sys/fs/cgroup/cgroup.subtree_control
if ! grep -qw memory /sys/fs/cgroup/cgroup.subtree_control; then
    note "the root cgroup does not delegate memory: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
    fail=1
fi
"#
);

/// [`PREAMBLE`] for a cgroup v1 node: vng's init mounts cgroup2 at
/// /sys/fs/cgroup with no controller enabled, so it is replaced by the v1
/// hierarchies as a v1 node has them (each controller its own, systemd's
/// named one, and the controller-less cgroup2 at `unified`); no controller
/// may be bound to v2 for its v1 mount to work.
const PREAMBLE_V1: &str = preamble!(
    r#"# cgroup v1: the hierarchies a v1 node mounts, memory among them.
if awk '$2 == "/sys/fs/cgroup" && $3 == "cgroup2" {f=1} END {exit !f}' /proc/mounts; then
    umount /sys/fs/cgroup || { note "unmounting vng's cgroup2 failed"; fail=1; }
fi
mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup || { note "mounting the cgroup tmpfs failed"; fail=1; }
for c in cpu cpuacct cpuset memory devices freezer blkio pids; do
    mkdir -p /sys/fs/cgroup/$c
    mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c || { note "mounting the v1 $c hierarchy failed"; fail=1; }
done
mkdir -p /sys/fs/cgroup/systemd /sys/fs/cgroup/unified
mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd || { note "mounting the v1 name=systemd hierarchy failed"; fail=1; }
mount -t cgroup2 none /sys/fs/cgroup/unified || { note "mounting cgroup2 at unified failed"; fail=1; }
[ -e /sys/fs/cgroup/memory/memory.limit_in_bytes ] || { note "no v1 memory controller"; fail=1; }
# Hierarchical accounting, as systemd turns it on at boot on every v1 node:
# before 5.11 a v1 cgroup's limit does not bound its children without it
# (a pod-level limit would never kill).
echo 1 > /sys/fs/cgroup/memory/memory.use_hierarchy || { note "memory.use_hierarchy could not be set"; fail=1; }
"#
);

/// The preamble for a boot's cgroups.
fn preamble(cgroups: Cgroups) -> &'static str {
    match cgroups {
        Cgroups::V2 => PREAMBLE,
        Cgroups::V1 => PREAMBLE_V1,
    }
}

/// One run of one test executable in the guest.
struct Run {
    /// Printed before the run.
    label: String,
    /// A shell-word name for the exit-code summary and the artifacts dir.
    tag: String,
    /// `OOMTRACE_E2E_HOOKS` and `OOMTRACE_E2E_EXPECT_HOOKS`.
    hooks: &'static str,
    expect: &'static str,
    exe: PathBuf,
    args: Vec<String>,
}

/// A kernel's runs: every pass, each of its targets, with the caller's
/// test arguments (a name filter applies to each executable).
fn pass_runs(kernel: &Kernel, exes: &[PathBuf], test_args: &[String]) -> Vec<Run> {
    let mut runs = Vec::new();
    for (i, pass) in kernel.passes.iter().enumerate() {
        for exe in exes {
            let name = exe
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let target = name.split('-').next().unwrap_or_default().to_string();
            if !pass.targets.contains(&target.as_str()) {
                continue;
            }
            runs.push(Run {
                label: format!(
                    "==== {}: {name}, {} (OOMTRACE_E2E_HOOKS={})",
                    kernel.boot,
                    pass.label,
                    if pass.hooks.is_empty() {
                        "auto"
                    } else {
                        pass.hooks
                    }
                ),
                tag: format!("{}_{target}", pass.tag()),
                hooks: pass.hooks,
                expect: pass.expect,
                exe: exe.clone(),
                args: GUEST_FILTER
                    .iter()
                    .filter(|(t, _)| *t == target)
                    .map(|(_, f)| f.to_string())
                    .chain(test_args.iter().cloned())
                    .chain(
                        HOST_ONLY
                            .iter()
                            .chain(
                                BEST_PASS_ONLY_TESTS
                                    .iter()
                                    .filter(|(t, _)| i > 0 && *t == target)
                                    .chain(kernel.skip.iter().filter(|(t, _)| *t == target))
                                    .flat_map(|(_, tests)| tests.iter()),
                            )
                            .flat_map(|t| ["--skip".to_string(), t.to_string()]),
                    )
                    .collect(),
            });
        }
    }
    runs
}

/// The script the guest runs as root (its init's `--exec`). `artifacts` is
/// the host directory the guest may write (vng `--rwdir`): recordings of
/// failed tests are copied there. `global_ok`: this boot causes a global
/// OOM on purpose (else one is a failure: it kills test processes at random).
fn guest_script(oomtrace: &Path, runs: &[Run], artifacts: &Path, guest: &Guest) -> String {
    let global_ok = guest.global_ok;
    let mut s = String::from(preamble(guest.cgroups));
    s.push_str(&format!(
        "artifacts={}
",
        shell_quote(&artifacts.display().to_string())
    ));
    s.push_str(
        r#"# A failed test leaves its daemon's recording in $TMPDIR (the guest's RAM).
keep() {
    for f in "$TMPDIR"/oomtrace-e2e-*.rec; do
        [ -e "$f" ] || continue
        mkdir -p "$artifacts/$1" && cp "$f" "$artifacts/$1/" && note "kept $artifacts/$1/${f##*/}"
        rm -f "$f"
    done
}
"#,
    );
    // doctor's JSON on one line: the host reads its hook choices back and
    // holds them to the kernel's best pass (check_doctor).
    s.push_str(&format!(
        "note '==== oomtrace doctor'\nout=$({} doctor --format json)\nrc=$?\necho \"{DOCTOR}$out\"\nnote \"doctor exit $rc\"\n[ $rc -eq 0 ] || [ $rc -eq 3 ] || fail=1\nresults=\"$results doctor=$rc\"\n",
        shell_quote(&oomtrace.display().to_string())
    ));
    for run in runs {
        let args: Vec<String> = run.args.iter().map(|a| shell_quote(a)).collect();
        s.push_str(&format!(
            "note {label}\nstart=$(date +%s)\nOOMTRACE_E2E_HOOKS={hooks} OOMTRACE_E2E_EXPECT_HOOKS={expect} timeout -k 10 $RUN_TIMEOUT {exe} {args}\nrc=$?\nnote \"exit $rc after $(( $(date +%s) - start )) s\"\n[ $rc -eq 124 ] || [ $rc -eq 137 ] && stuck {tag}\n[ $rc -eq 0 ] || fail=1\nresults=\"$results {tag}=$rc\"\nkeep {tag}\n",
            label = shell_quote(&run.label),
            hooks = shell_quote(run.hooks),
            expect = shell_quote(run.expect),
            exe = shell_quote(&run.exe.display().to_string()),
            args = args.join(" "),
            // [A-Za-z0-9_] only: no quoting needed.
            tag = run.tag,
        ));
    }
    // A global OOM in the guest would kill test processes at random: say so.
    // (memcg kills print "Memory cgroup out of memory: Killed process").
    s.push_str("global=$(dmesg | grep -c 'Out of memory: Killed process')\nnote \"global OOM kills: $global\"\ndmesg | grep 'Out of memory: Killed process' | sed 's/^/vm: global OOM: /'\n");
    if global_ok {
        s.push_str("[ \"$global\" -gt 0 ] || { note 'no global OOM happened'; fail=1; }\n");
    } else {
        // Processes killed at random make every result of this boot suspect.
        s.push_str("[ \"$global\" -eq 0 ] || { note 'a global OOM in a boot that must have none: its results cannot be trusted'; fail=1; }\n");
    }
    // The guest's kernel log, for `oomtrace explain` fixtures (6.1, cgroup v2).
    let log = guest.log;
    s.push_str(&format!(
        "dmesg > \"$artifacts/dmesg-{log}.txt\"\ntimeout 1 cat /dev/kmsg > \"$artifacts/kmsg-{log}.txt\"\n"
    ));
    s.push_str(&format!(
        "kill $heartbeat 2>/dev/null\nnote \"exit codes:$results\"\nif [ $fail -eq 0 ]; then echo '{SENTINEL} pass'; else echo '{SENTINEL} fail'; fi\n"
    ));
    s
}

/// How one boot's guest is set up.
struct Guest {
    cgroups: Cgroups,
    /// The artifacts' `dmesg-<log>.txt` and `kmsg-<log>.txt`.
    log: &'static str,
    /// This boot causes a global OOM on purpose (else one is a failure: it
    /// kills test processes at random).
    global_ok: bool,
}

/// The prefix of the guest's line with `oomtrace doctor --format json`.
const DOCTOR: &str = "OOMTRACE-DOCTOR: ";

/// The hook doctor chose for each family of `expect` (`FAMILY=KIND,...`,
/// `none` where no kind attached), from the doctor JSON line among
/// `lines`, and the mismatches against `expect`.
fn check_doctor(lines: &[String], expect: &str) -> anyhow::Result<String> {
    let json = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix(DOCTOR.trim_end()))
        .context("the guest printed no `oomtrace doctor --format json` line")?;
    let report: serde_json::Value = serde_json::from_str(json.trim())
        .with_context(|| format!("doctor's output is not JSON: {json}"))?;
    let hooks = report["hooks"]
        .as_array()
        .context("doctor's JSON has no `hooks` array")?;
    let chosen = |family: &str| -> Option<String> {
        hooks
            .iter()
            .find(|h| h["family"] == family)
            .map(|h| h["chosen"].as_str().unwrap_or("none").to_string())
    };
    let mut got = Vec::new();
    let mut wrong = Vec::new();
    for pair in expect.split(',') {
        let (family, kind) = pair
            .split_once('=')
            .with_context(|| format!("`{pair}` is not FAMILY=KIND"))?;
        let took = chosen(family).unwrap_or_else(|| "missing".into());
        if took != kind {
            wrong.push(format!("{family}: {took}, expected {kind}"));
        }
        got.push(format!("{family}={took}"));
    }
    if !wrong.is_empty() {
        bail!(
            "oomtrace doctor chose other hooks than expected ({}); its report: {json}",
            wrong.join("; ")
        );
    }
    Ok(got.join(","))
}

/// Each run's label and seconds, from the guest's `vm: ==== <label>` and
/// `vm: exit N after S s` lines.
fn run_times(lines: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut label = None;
    for l in lines {
        let l = l.trim();
        if let Some(rest) = l.strip_prefix("vm: ==== ") {
            label = Some(rest.to_string());
        } else if let Some(rest) = l.strip_prefix("vm: exit ") {
            if let Some(label) = label.take() {
                out.push((label, rest.to_string()));
            }
        }
    }
    out
}

/// The boots `OOMTRACE_VM_BOOTS` may name: each kernel's, the global OOM
/// and the stall self-check.
fn boot_names() -> Vec<&'static str> {
    KERNELS
        .iter()
        .map(|k| k.boot)
        .chain(["global", "stall"])
        .collect()
}

/// Boots each kernel once and runs its passes, then the global-OOM boot
/// and the stall self-check (on 6.1); Err unless every guest printed the
/// pass sentinel and doctor chose each kernel's best hooks.
pub fn test(root: &Path, env: &setup::BuildEnv, test_args: &[String]) -> anyhow::Result<()> {
    let started = Instant::now();
    // `OOMTRACE_VM_BOOTS=5.10-v1`, `=6.1,global`, ... (`main` is 6.1's):
    // some of the boots only (local iteration); default all.
    let boots = std::env::var("OOMTRACE_VM_BOOTS").unwrap_or_else(|_| boot_names().join(","));
    let names = boot_names();
    let wanted: Vec<&str> = boots
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(|w| if w == "main" { "6.1" } else { w })
        .collect();
    if let Some(bad) = wanted.iter().find(|w| !names.contains(w)) {
        bail!("OOMTRACE_VM_BOOTS names `{bad}`; the boots are {names:?} (and `main` for 6.1)");
    }
    let want = |b: &str| wanted.contains(&b);
    ensure()?;
    let host_kernel = kernel()?;
    // Every kernel at hand before the first boot: a failed download ends
    // the run at once, not after the boots before it.
    let mut images = Vec::new();
    // In the order asked for (iteration: the boot of interest first).
    for k in wanted
        .iter()
        .filter_map(|w| KERNELS.iter().find(|k| k.boot == *w))
    {
        let image = match &k.package {
            Some(p) => kernels::image(p)?,
            None => host_kernel.clone(),
        };
        images.push((k, image));
    }
    let built = test_executables(root, env)?;
    // The guest sees the host's files read-only: the script lives in
    // target/vm, and only target/vm/artifacts is writable from the guest.
    let dir = root.join("target/vm");
    let (oomtrace, exes) = snapshot(
        &crate::target_dir(root).join("debug"),
        &built,
        &dir.join("bin"),
    )?;
    let artifacts = dir.join("artifacts");
    if artifacts.exists() {
        fs::remove_dir_all(&artifacts)
            .with_context(|| format!("clearing {}", artifacts.display()))?;
    }
    fs::create_dir_all(&artifacts).with_context(|| format!("creating {}", artifacts.display()))?;
    let timeout = std::env::var("OOMTRACE_VM_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(BOOT_TIMEOUT);
    let mut failed = Vec::new();
    let mut summary = Vec::new();
    let mut wrong_hooks = Vec::new();
    // One boot running `runs`: the script written, the boot logged (and
    // booted once more if the guest stalled); a failure noted. The guest's
    // lines back.
    let mut boot = |name: &str,
                    kernel: &Path,
                    memory: &str,
                    purpose: &str,
                    runs: &[Run],
                    guest: &Guest|
     -> anyhow::Result<Vec<String>> {
        let script = write_script(
            &dir.join(format!("guest-{name}.sh")),
            &guest_script(&oomtrace, runs, &artifacts, guest),
        )?;
        eprintln!(
            "vm: booting {} (TCG, 2 cpus, {memory}, cgroup {:?}) for {purpose}, at most {} s",
            kernel.display(),
            guest.cgroups,
            timeout.as_secs()
        );
        let t = Instant::now();
        let (result, lines, _) =
            boot_once_more_if_stalled(kernel, &script, &artifacts, memory, timeout, STALL)?;
        let secs = t.elapsed().as_secs();
        eprintln!("vm: {name} boot: {result} in {secs} s");
        summary.push(format!("vm: {name} boot: {result} in {secs} s"));
        for (label, exit) in run_times(&lines) {
            summary.push(format!("vm:     {label}: exit {exit}"));
        }
        if result != "pass" {
            failed.push(format!("{name} boot: {result}"));
        }
        Ok(lines)
    };

    for (k, image) in &images {
        let runs = pass_runs(k, &exes, test_args);
        let lines = boot(
            k.boot,
            image,
            "2G",
            &format!("{} pass(es), {} run(s)", k.passes.len(), runs.len()),
            &runs,
            &Guest {
                cgroups: k.cgroups,
                // 6.1's keeps its name: explain's fixtures are made from it.
                log: if k.package.is_none() { "main" } else { k.boot },
                global_ok: false,
            },
        )?;
        match check_doctor(&lines, k.passes[0].expect) {
            Ok(hooks) => eprintln!("vm: {} doctor: {hooks}", k.boot),
            Err(e) => wrong_hooks.push(format!("{} doctor: {e:#}", k.boot)),
        }
    }
    if want("global") {
        let vm_exe = exes
            .get(
                E2E_TARGETS
                    .iter()
                    .position(|t| *t == "vm")
                    .unwrap_or(usize::MAX),
            )
            .context("the `vm` test executable")?;
        let runs = [Run {
            label: format!("==== global OOM in {GLOBAL_OOM_MEMORY}, best hooks"),
            tag: "global_oom".into(),
            hooks: "",
            expect: BEST_6,
            exe: vm_exe.clone(),
            args: [GLOBAL_OOM_TEST, "--exact", "--ignored", "--nocapture"]
                .map(String::from)
                .to_vec(),
        }];
        let lines = boot(
            "global-OOM",
            &host_kernel,
            GLOBAL_OOM_MEMORY,
            "the global OOM (no memcg limit)",
            &runs,
            &Guest {
                cgroups: Cgroups::V2,
                log: "global",
                global_ok: true,
            },
        )?;
        if let Some(line) = lines
            .iter()
            .find_map(|l| l.split_once(CAPTURE).map(|(_, j)| j))
        {
            let keep = dir.join("system_oom.json");
            fs::write(&keep, format!("{line}\n"))
                .with_context(|| format!("writing {}", keep.display()))?;
            eprintln!("vm: the system_oom verdict is in {}", keep.display());
        }
    }
    // The guests' kernel logs, kept next to system_oom.json.
    for log in KERNELS
        .iter()
        .map(|k| if k.package.is_none() { "main" } else { k.boot })
        .chain(["global"])
        .flat_map(|l| [format!("dmesg-{l}.txt"), format!("kmsg-{l}.txt")])
    {
        if fs::copy(artifacts.join(&log), dir.join(&log)).is_ok() {
            eprintln!(
                "vm: the guest's kernel log is in {}",
                dir.join(&log).display()
            );
        }
    }
    failed.extend(wrong_hooks);
    if want("stall") {
        let t = Instant::now();
        if let Err(e) = stall_self_check(&host_kernel, &dir, &artifacts) {
            failed.push(format!("{e:#}"));
        }
        summary.push(format!(
            "vm: stall self-check in {} s",
            t.elapsed().as_secs()
        ));
    }
    for line in &summary {
        eprintln!("{line}");
    }
    eprintln!("vm: done in {} s", started.elapsed().as_secs());
    if !failed.is_empty() {
        bail!("the end-to-end scenarios failed in the VM ({}); the guest's output is above, failed tests' recordings under {}", failed.join("; "), artifacts.display());
    }
    Ok(())
}

pub(crate) fn write_script(path: &Path, text: &str) -> anyhow::Result<PathBuf> {
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
    Ok(path.to_path_buf())
}

/// How a boot ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The guest script's sentinel word (`pass` or `fail`).
    Sentinel(String),
    /// The guest printed nothing, not even its heartbeat, for [`STALL`]: the
    /// whole guest stopped (seen once on a CI machine under TCG, with no
    /// line from the kernel or the test harness).
    Stalled,
    TimedOut(Duration),
    /// vng ended without the sentinel (its status).
    NoSentinel(String),
    /// The guest stalled after printing a failing result (that line): the
    /// failure stands, and no second boot may hide it.
    StalledAfterFailure(String),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Sentinel(word) => f.write_str(word),
            // How long the silence was is said when the VM is killed.
            Outcome::Stalled => f.write_str("the guest stalled (it stopped printing)"),
            Outcome::TimedOut(t) => write!(f, "timed out after {} s", t.as_secs()),
            Outcome::NoSentinel(status) => {
                write!(f, "vng exited ({status}) without the {SENTINEL} line")
            }
            Outcome::StalledAfterFailure(line) => write!(
                f,
                "the guest stalled (it stopped printing) after a failure: {line}"
            ),
        }
    }
}

impl PartialEq<&str> for Outcome {
    fn eq(&self, other: &&str) -> bool {
        matches!(self, Outcome::Sentinel(w) if w == other)
    }
}

/// The guest prints a heartbeat every 60 s (PREAMBLE): this long without
/// any line means the guest itself stopped.
const STALL: Duration = Duration::from_secs(240);
/// How long a boot may take before the guest's first line, whatever the
/// stall.
const FIRST_LINE: Duration = Duration::from_secs(120);

/// The first line of a boot's output that says something failed: a test
/// (`... FAILED`, `test result: FAILED`, a panic) or a run's non-zero exit
/// (`vm: exit N after ...`).
pub(crate) fn first_failure(lines: &[String]) -> Option<&str> {
    lines.iter().map(String::as_str).find(|l| {
        let l = l.trim();
        l.ends_with(" FAILED")
            || l.contains("test result: FAILED")
            || l.contains("panicked at")
            || l.strip_prefix("vm: exit ")
                .and_then(|r| r.split_whitespace().next())
                .is_some_and(|code| code != "0")
    })
}

/// A stalled boot's outcome: a failure it printed before stalling stands
/// (`None`: boot once more).
fn after_stall(lines: &[String]) -> Option<Outcome> {
    first_failure(lines).map(|l| Outcome::StalledAfterFailure(l.to_string()))
}

/// Whether a boot that ended so is booted once more: a stall, or a guest
/// that died (vng ended without the sentinel: seen once on 6.12 within
/// seconds of its first test, the console quiet), when no failure was
/// printed before. A printed failure always stands.
fn boot_again(outcome: &Outcome, lines: &[String]) -> bool {
    matches!(outcome, Outcome::Stalled | Outcome::NoSentinel(_)) && first_failure(lines).is_none()
}

/// [`boot`], and once more when the guest stalled or died: a stall is the emulator
/// or the guest kernel stopping as a whole, not a test failing (a failing or
/// hung test is still answered by the guest: its heartbeat goes on, and the
/// run's own timeout ends it). Said loudly, never silently. A boot that
/// printed a failure before stalling fails without a second boot, and a
/// second stall is a failure too. Returns how many boots it took.
fn boot_once_more_if_stalled(
    kernel: &Path,
    script: &Path,
    artifacts: &Path,
    memory: &str,
    timeout: Duration,
    stall: Duration,
) -> anyhow::Result<(Outcome, Vec<String>, u32)> {
    let (outcome, lines) = boot_stalling_after(kernel, script, artifacts, memory, timeout, stall)?;
    if !boot_again(&outcome, &lines) {
        if outcome == Outcome::Stalled {
            if let Some(failed) = after_stall(&lines) {
                eprintln!("vm: {failed}; not booting again");
                return Ok((failed, lines, 1));
            }
        }
        return Ok((outcome, lines, 1));
    }
    eprintln!(
        "vm: WARNING: {outcome}; the last lines are above. Booting once more, from the start"
    );
    let (outcome, lines) = boot_stalling_after(kernel, script, artifacts, memory, timeout, stall)?;
    Ok((outcome, lines, 2))
}

/// The stall path, for real: a guest that prints a line, then nothing, is
/// declared stalled, booted once more, and fails when it stalls again; a
/// guest that prints a failing result before stalling fails at once.
/// About two minutes under TCG (short boots, a 20 s stall).
fn stall_self_check(kernel: &Path, dir: &Path, artifacts: &Path) -> anyhow::Result<()> {
    const QUICK_STALL: Duration = Duration::from_secs(20);
    let silent = write_script(
        &dir.join("guest-stall.sh"),
        "#!/bin/sh
echo 'vm: stall self-check: printing nothing from now on'
exec sleep 100000
",
    )?;
    let (outcome, _, boots) = boot_once_more_if_stalled(
        kernel,
        &silent,
        artifacts,
        "512M",
        Duration::from_secs(300),
        QUICK_STALL,
    )?;
    if outcome != Outcome::Stalled || boots != 2 {
        bail!("the stall self-check expected a stall, a second boot and a second stall; got {outcome} after {boots} boot(s)");
    }
    let failing = write_script(
        &dir.join("guest-stall-failed.sh"),
        "#!/bin/sh
echo 'vm: exit 101 after 3 s'
echo 'vm: stall self-check: a failure, then nothing'
exec sleep 100000
",
    )?;
    let (outcome, _, boots) = boot_once_more_if_stalled(
        kernel,
        &failing,
        artifacts,
        "512M",
        Duration::from_secs(300),
        QUICK_STALL,
    )?;
    if !matches!(outcome, Outcome::StalledAfterFailure(_)) || boots != 1 {
        bail!("the stall self-check expected a failure that stands after a stall, in one boot; got {outcome} after {boots} boot(s)");
    }
    eprintln!("vm: stall self-check: a silent guest is booted once more and fails on its second stall; a failure printed before a stall fails at once");
    Ok(())
}

/// Runs vng in a process group of its own, echoing the guest's output as it
/// comes, and returns the sentinel's word (or why there was none) and every
/// line the guest printed.
pub(crate) fn boot(
    kernel: &Path,
    script: &Path,
    artifacts: &Path,
    memory: &str,
    timeout: Duration,
) -> anyhow::Result<(Outcome, Vec<String>)> {
    boot_stalling_after(kernel, script, artifacts, memory, timeout, STALL)
}

/// [`boot`], with the silence that counts as a stall.
fn boot_stalling_after(
    kernel: &Path,
    script: &Path,
    artifacts: &Path,
    memory: &str,
    timeout: Duration,
    stall: Duration,
) -> anyhow::Result<(Outcome, Vec<String>)> {
    let bin = Path::new(VNG_VENV).join("bin");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut vng = Command::new(bin.join("vng"));
    vng.args(["--run", &kernel.display().to_string()])
        .args(["--disable-kvm", "--memory", memory, "--cpus", "2"])
        .arg(format!("--rwdir={}", artifacts.display()))
        .args(["--exec", &script.display().to_string()])
        // vng runs virtme-run from PATH.
        .env("PATH", &path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = vng.spawn().context("starting vng")?;
    let pgid = child.id() as i32;
    // stdout and stderr through pipes, never one file: qemu's stderr would
    // overwrite the guest's output.
    let (tx, rx) = mpsc::channel::<String>();
    let mut readers = Vec::new();
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            let mut r = BufReader::new(stream);
            let mut buf = Vec::new();
            while r.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                buf.clear();
                if tx.send(line).is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);
    let deadline = Instant::now() + timeout;
    let mut verdict: Option<String> = None;
    let mut timed_out = false;
    let mut stalled = false;
    let mut silence;
    let mut lines = Vec::new();
    let stdout = std::io::stdout();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // The boot itself is silent (seen past 20 s under TCG on a loaded
        // machine): a short stall counts only once the guest has spoken.
        silence = if lines.is_empty() {
            stall.max(FIRST_LINE)
        } else {
            stall
        };
        match rx.recv_timeout(left.min(silence)) {
            Ok(line) => {
                let mut out = stdout.lock();
                let _ = writeln!(out, "vm| {line}");
                let _ = out.flush();
                if let Some(rest) = line.trim().strip_prefix(SENTINEL) {
                    verdict = Some(rest.trim().to_string());
                }
                lines.push(line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                stalled = true;
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                timed_out = true;
                break;
            }
        }
    }
    if stalled {
        eprintln!(
            "vm: no line from the guest for {} s: killing the VM (process group {pgid})",
            silence.as_secs()
        );
        kill_group(pgid);
    }
    if timed_out {
        eprintln!(
            "vm: no end after {} s: killing the VM (process group {pgid})",
            timeout.as_secs()
        );
        kill_group(pgid);
    }
    // Both pipes closed (or the group was killed): vng is ending.
    let status = child.wait().context("waiting for vng")?;
    for r in readers {
        let _ = r.join();
    }
    let outcome = match verdict {
        Some(word) => Outcome::Sentinel(word),
        None if stalled => Outcome::Stalled,
        None if timed_out => Outcome::TimedOut(timeout),
        None => Outcome::NoSentinel(status.to_string()),
    };
    Ok((outcome, lines))
}

/// SIGKILL to the process group vng was started in (vng, virtme-run, qemu).
fn kill_group(pgid: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn a_guest_that_died_is_booted_once_more_unless_it_printed_a_failure() {
        let died = Outcome::NoSentinel("exit status: 255".into());
        assert!(boot_again(
            &died,
            &lines("vm: ==== 6.12: foundation\nrunning 11 tests")
        ));
        assert!(!boot_again(
            &died,
            &lines("test a ... FAILED\ntest result: FAILED. 0 passed; 1 failed")
        ));
        assert!(!boot_again(&Outcome::Sentinel("fail".into()), &lines("")));
        assert!(!boot_again(
            &Outcome::TimedOut(Duration::from_secs(1)),
            &lines("")
        ));
        assert!(boot_again(&Outcome::Stalled, &lines("vm: heartbeat")));
    }

    #[test]
    fn a_failure_printed_before_a_stall_stands() {
        let ok = lines(
            "vm: ==== foundation\ntest a ... ok\nvm: exit 0 after 12 s\nvm: heartbeat: up 60 s",
        );
        assert_eq!(first_failure(&ok), None);
        assert!(
            after_stall(&ok).is_none(),
            "a clean stall is booted once more"
        );
        for failing in [
            "test pod_limit_cgroupfs_driver ... FAILED",
            "test result: FAILED. 5 passed; 1 failed",
            "thread 'x' panicked at tests/tests/foundation.rs:9:5:",
            "vm: exit 101 after 33 s",
        ] {
            let mut l = ok.clone();
            l.push(failing.to_string());
            l.push("vm: heartbeat: up 120 s".to_string());
            assert_eq!(first_failure(&l), Some(failing));
            assert!(
                matches!(after_stall(&l), Some(Outcome::StalledAfterFailure(f)) if f == failing)
            );
        }
    }

    #[test]
    fn doctor_is_held_to_the_best_pass() {
        let report = r#"{"verdict":"degraded","hooks":[{"family":"oom","chosen":"fentry","skipped":[]},{"family":"victim","chosen":null,"skipped":[]},{"family":"cgroup","chosen":"tp_btf","skipped":[]}]}"#;
        let l = lines(&format!(
            "vm: ==== oomtrace doctor\n{DOCTOR}{report}\nvm: doctor exit 3"
        ));
        assert_eq!(
            check_doctor(&l, "oom=fentry,victim=none,cgroup=tp_btf").expect("as expected"),
            "oom=fentry,victim=none,cgroup=tp_btf"
        );
        let e = check_doctor(&l, "oom=fentry,victim=tp_btf").expect_err("victim differs");
        assert!(
            format!("{e:#}").contains("victim: none, expected tp_btf"),
            "{e:#}"
        );
        let e = check_doctor(&l, "signal=tp_btf").expect_err("no such family in the report");
        assert!(format!("{e:#}").contains("signal: missing"), "{e:#}");
        assert!(check_doctor(&lines("vm: doctor exit 1"), "oom=fentry").is_err());
        assert!(check_doctor(&lines(&format!("{DOCTOR}not json")), "oom=fentry").is_err());
    }

    #[test]
    fn every_kernels_best_pass_runs_the_suites_the_issue_names() {
        for k in KERNELS {
            let best = &k.passes[0];
            assert!(best.hooks.is_empty(), "{}: the first pass is auto", k.boot);
            for t in ["foundation", "storm", "cri_verdicts"] {
                assert!(best.targets.contains(&t), "{}: {t}", k.boot);
            }
            assert_eq!(
                best.targets.contains(&"daemon"),
                ["6.1", "5.10-v1"].contains(&k.boot),
                "{}: daemon once per set of best hooks",
                k.boot
            );
            // `vm` needs cgroup v2 (memory.oom.group).
            assert_eq!(
                best.targets.contains(&"vm"),
                k.cgroups == Cgroups::V2,
                "{}",
                k.boot
            );
            for p in k.passes {
                assert!(
                    p.targets.iter().all(|t| E2E_TARGETS.contains(t)),
                    "{}: {}",
                    k.boot,
                    p.label
                );
                // Heavy suites run once per kernel, with the best hooks.
                if !std::ptr::eq(p, best) {
                    assert!(!p.targets.contains(&"storm"), "{}: {}", k.boot, p.label);
                    assert!(!p.targets.contains(&"cri"), "{}: {}", k.boot, p.label);
                }
            }
        }
        let names = boot_names();
        assert_eq!(
            names.len(),
            names
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        );
    }

    #[test]
    fn each_kernels_runs_carry_its_passes_hooks_and_skips() {
        let exes: Vec<PathBuf> = E2E_TARGETS
            .iter()
            .map(|t| PathBuf::from(format!("/x/deps/{t}-0123abcd")))
            .collect();
        let kernel = |b: &str| KERNELS.iter().find(|k| k.boot == b).expect(b);
        let six_one = pass_runs(kernel("6.1"), &exes, &[]);
        assert_eq!(six_one.len(), E2E_TARGETS.len() + 2 * FALLBACK_61.len());
        assert!(six_one
            .iter()
            .filter(|r| r.tag.ends_with("_storm"))
            .all(|r| r.hooks.is_empty()));
        let fallback_foundation = six_one
            .iter()
            .find(|r| r.hooks == KPROBE_RAW_TP && r.tag.ends_with("_foundation"))
            .expect("foundation with kprobe + raw_tp");
        assert_eq!(fallback_foundation.expect, KPROBE_RAW_TP_EXPECT);
        for t in [
            "a_burst_of_kills",
            "forced_tracepoint_fallback",
            "kernel_log_mode",
        ] {
            assert!(
                fallback_foundation.args.iter().any(|a| a == t),
                "{:?}",
                fallback_foundation.args
            );
        }
        let v1 = pass_runs(kernel("5.10-v1"), &exes, &["pod_limit".to_string()]);
        assert!(v1.iter().all(|r| !r.tag.ends_with("_vm")));
        let cri = v1
            .iter()
            .find(|r| r.tag.ends_with("_cri_verdicts"))
            .expect("cri_verdicts on 5.10 v1");
        assert_eq!(cri.args[0], "pod_limit", "the caller's filter first");
        assert!(cri.args.iter().any(|a| a == "eviction"), "{:?}", cri.args);
        assert!(v1.iter().any(|r| r.hooks == "victim=off"));
    }

    #[test]
    fn a_v1_boot_mounts_v1_memory_and_no_v2_memory() {
        assert!(PREAMBLE_V1.contains("mount -t cgroup -o $c cgroup"));
        assert!(!PREAMBLE_V1.contains("+memory"));
        assert!(PREAMBLE.contains("echo +memory > /sys/fs/cgroup/cgroup.subtree_control"));
        for p in [PREAMBLE, PREAMBLE_V1] {
            assert!(p.starts_with("#!/bin/sh\n") && p.contains("heartbeat=$!"));
        }
    }

    #[test]
    fn run_times_pair_each_label_with_its_exit() {
        let l = lines(
            "vm: ==== 6.1: foundation-x, best hooks\ntest a ... ok\nvm: exit 0 after 12 s\nvm: ==== 6.1: vm-y, kprobe\nvm: exit 101 after 3 s",
        );
        assert_eq!(
            run_times(&l),
            [
                (
                    "6.1: foundation-x, best hooks".to_string(),
                    "0 after 12 s".to_string()
                ),
                ("6.1: vm-y, kprobe".to_string(), "101 after 3 s".to_string()),
            ]
        );
    }

    #[test]
    fn a_global_oom_fails_the_main_boot() {
        let guest = |global_ok| Guest {
            cgroups: Cgroups::V2,
            log: "main",
            global_ok,
        };
        let main = guest_script(
            Path::new("/x/oomtrace"),
            &[],
            Path::new("/x/a"),
            &guest(false),
        );
        assert!(main.contains("[ \"$global\" -eq 0 ] || {"), "{main}");
        let global = guest_script(
            Path::new("/x/oomtrace"),
            &[],
            Path::new("/x/a"),
            &guest(true),
        );
        assert!(global.contains("[ \"$global\" -gt 0 ] || {"), "{global}");
    }
}
