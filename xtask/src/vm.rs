//! `cargo xtask vm-test`: the end-to-end scenarios inside a second kernel.
//!
//! The host runs 6.18 with cgroup v1 memory and only the tracepoint family
//! of hooks; Debian's 6.1 kernel, booted with virtme-ng under TCG (KVM does
//! not work on these machines), has cgroup v2, fentry and kprobes. One boot
//! runs the already-built `foundation` test executable several times, once
//! with the best hooks and then forced onto each fallback
//! (`OOMTRACE_E2E_HOOKS`, read by tests/src/lib.rs), and prints
//! `oomtrace doctor`; the `vm` target's VM-only scenarios (cgroup v2
//! `memory.oom.group`) run in each pass too, and the real-container targets
//! (`scenarios`, `containers`, `cri`) in the best-hooks pass. A second, small boot (512 MiB,
//! no memcg limit anywhere) runs only the global-OOM scenario (the `vm`
//! target's ignored test): a global OOM is safe nowhere else, and its
//! `system_oom` verdict is kept in `target/vm/system_oom.json`.
//! `OOMTRACE_VM_BOOTS=main` or `=global` runs one boot only (iteration).
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

use crate::setup;

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
/// The end-to-end test executables run in the guest (cargo target names):
/// `vm` holds the VM-only scenarios (`test = false`: host `cargo test` skips it).
/// `scenarios` and `containers` (real runc containers: every verdict and
/// finding) run on cgroup v2 here, and `cri` (pods through containerd's
/// CRI, as a kubelet runs them: on v2 with `memory.oom.group`).
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
/// Targets run in the best-hooks pass only: they test attribution on cgroup
/// v2 and real containers, the daemon's restarts, lost events and
/// heartbeats, metrics through Prometheus, the node memory breakdown
/// (`oomtrace memory`, dying cgroups), and the CRI runtime's side of OOM
/// kills and stops (no daemon: the hooks change nothing there), while
/// `foundation`, `vm` and the no-kill-missed `storm` walk every fallback.
/// `manifests` runs the agent with exactly the least-privilege DaemonSet's
/// capabilities (Debian's 6.1 opens a classic tracepoint's perf event only
/// with CAP_SYS_ADMIN: the tp_btf rows are what make it enough there).
const BEST_PASS_ONLY: &[&str] = &[
    "scenarios",
    "containers",
    "daemon",
    "metrics",
    "cri",
    "manifests",
    "node_memory",
    "near_oom",
    "systemd_container",
];
/// Tests of a target skipped in the fallback passes: what does not depend
/// on the OOM hooks (the CRI stops and evictions see only the signal
/// hook, the same in every pass) runs once, in the best-hooks pass.
const BEST_PASS_ONLY_TESTS: &[(&str, &[&str])] = &[
    ("cri_verdicts", &["eviction", "deletion"]),
    // Six pods killed under CPU load: minutes under TCG, and the memory at
    // the kill comes from the kernel's report whatever the hooks.
    ("foundation", &["a_burst_of_kills"]),
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
    /// oomtrace in a private cgroup namespace (`OOMTRACE_E2E_CGROUPNS`),
    /// the targets of [`CGROUPNS_TARGETS`] only.
    cgroupns: bool,
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

/// What 6.1 offers (docs/toolchain.md): fentry and kprobe on
/// `oom_kill_process`, tp_btf/raw_tp/tracepoint on `oom:mark_victim`.
const PASSES: &[Pass] = &[
    Pass {
        label: "best hooks",
        hooks: "",
        expect: "oom=fentry,victim=tp_btf,cgroup=tp_btf,signal=tp_btf,pressure=tp_btf",
        cgroupns: false,
    },
    Pass {
        label: "kprobe + raw_tp",
        hooks: "oom=kprobe,victim=raw_tp",
        expect: "oom=kprobe,victim=raw_tp,cgroup=tp_btf,signal=tp_btf,pressure=tp_btf",
        cgroupns: false,
    },
    Pass {
        label: "no per-OOM hook, classic tracepoints (signal on tp_btf)",
        // The signal family stays on tp_btf: its classic tracepoint records
        // no target namespaces, so a stop cannot be tied to a container's
        // init there (the host's forced-tracepoint tests cover it).
        hooks: "oom=off,victim=tracepoint,cgroup=tracepoint,pressure=tracepoint",
        expect: "oom=none,victim=tracepoint,cgroup=tracepoint,signal=tp_btf,pressure=tracepoint",
        cgroupns: false,
    },
    Pass {
        label: "best hooks, oomtrace in a private cgroup namespace",
        hooks: "",
        expect: "oom=fentry,victim=tp_btf,cgroup=tp_btf,signal=tp_btf,pressure=tp_btf",
        cgroupns: true,
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
/// The guest's share of them: the verdicts (foundation) and the escapes
/// and leaks (scenarios); the rest repeat those paths on the host.
const CGROUPNS_GUEST_TARGETS: &[&str] = &["foundation", "scenarios"];
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

/// The start of every guest script: cgroup2 with memory delegated, tracefs,
/// a private $TMPDIR, `note`.
pub(crate) const PREAMBLE: &str = r#"#!/bin/sh
# Generated by `cargo xtask vm-test` (xtask/src/vm.rs); runs inside the VM.
set -u
fail=0
results=""
note() { echo "vm: $*"; }
note "kernel $(uname -r), $(nproc) cpus, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"
# cgroup v2 with the memory controller delegated from the root.
if ! awk '$2 == "/sys/fs/cgroup" && $3 == "cgroup2" {f=1} END {exit !f}' /proc/mounts; then
    mount -t cgroup2 none /sys/fs/cgroup || { note "mounting cgroup2 failed"; fail=1; }
fi
echo +memory > /sys/fs/cgroup/cgroup.subtree_control
if ! grep -qw memory /sys/fs/cgroup/cgroup.subtree_control; then
    note "the root cgroup does not delegate memory: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
    fail=1
fi
if ! awk '$3 == "tracefs" {f=1} END {exit !f}' /proc/mounts; then
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
"#;

/// One run of one test executable in the guest.
struct Run {
    /// Printed before the run.
    label: String,
    /// A shell-word name for the exit-code summary and the artifacts dir.
    tag: String,
    /// `OOMTRACE_E2E_HOOKS` and `OOMTRACE_E2E_EXPECT_HOOKS`.
    hooks: &'static str,
    expect: &'static str,
    /// `OOMTRACE_E2E_CGROUPNS=1`.
    cgroupns: bool,
    exe: PathBuf,
    args: Vec<String>,
}

/// The main boot's runs: every pass, each end-to-end executable, with the
/// caller's test arguments (a name filter applies to each executable).
fn pass_runs(exes: &[PathBuf], test_args: &[String]) -> Vec<Run> {
    let mut runs = Vec::new();
    for (i, pass) in PASSES.iter().enumerate() {
        for exe in exes {
            let name = exe
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let target = name.split('-').next().unwrap_or_default().to_string();
            if i > 0 && !pass.cgroupns && BEST_PASS_ONLY.contains(&target.as_str()) {
                continue;
            }
            if pass.cgroupns && !CGROUPNS_GUEST_TARGETS.contains(&target.as_str()) {
                continue;
            }
            runs.push(Run {
                label: format!(
                    "==== {name}, {} (OOMTRACE_E2E_HOOKS={})",
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
                cgroupns: pass.cgroupns,
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
                                    .flat_map(|(_, tests)| tests.iter()),
                            )
                            .chain(CGROUPNS_SKIP.iter().filter(|_| pass.cgroupns))
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
fn guest_script(oomtrace: &Path, runs: &[Run], artifacts: &Path, global_ok: bool) -> String {
    let mut s = String::from(PREAMBLE);
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
    s.push_str(&format!(
        "note '==== oomtrace doctor'\n{} doctor\nrc=$?\nnote \"doctor exit $rc\"\n[ $rc -eq 0 ] || [ $rc -eq 3 ] || fail=1\nresults=\"$results doctor=$rc\"\n",
        shell_quote(&oomtrace.display().to_string())
    ));
    for run in runs {
        let args: Vec<String> = run.args.iter().map(|a| shell_quote(a)).collect();
        s.push_str(&format!(
            "note {label}\nstart=$(date +%s)\nOOMTRACE_E2E_HOOKS={hooks} OOMTRACE_E2E_EXPECT_HOOKS={expect} OOMTRACE_E2E_CGROUPNS={ns} timeout -k 10 $RUN_TIMEOUT {exe} {args}\nrc=$?\nnote \"exit $rc after $(( $(date +%s) - start )) s\"\n[ $rc -eq 124 ] || [ $rc -eq 137 ] && stuck {tag}\n[ $rc -eq 0 ] || fail=1\nresults=\"$results {tag}=$rc\"\nkeep {tag}\n",
            label = shell_quote(&run.label),
            hooks = shell_quote(run.hooks),
            expect = shell_quote(run.expect),
            ns = u8::from(run.cgroupns),
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
    let log = if global_ok { "global" } else { "main" };
    s.push_str(&format!(
        "dmesg > \"$artifacts/dmesg-{log}.txt\"\ntimeout 1 cat /dev/kmsg > \"$artifacts/kmsg-{log}.txt\"\n"
    ));
    s.push_str(&format!(
        "kill $heartbeat 2>/dev/null\nnote \"exit codes:$results\"\nif [ $fail -eq 0 ]; then echo '{SENTINEL} pass'; else echo '{SENTINEL} fail'; fi\n"
    ));
    s
}

/// Boots the 6.1 kernel once and runs every pass; Err unless the guest
/// printed the pass sentinel.
pub fn test(root: &Path, env: &setup::BuildEnv, test_args: &[String]) -> anyhow::Result<()> {
    let started = Instant::now();
    ensure()?;
    let kernel = kernel()?;
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
    // `OOMTRACE_VM_BOOTS=main`, `=global` or `=stall` (the stall path's
    // self-check): some of the boots only (local iteration); default all.
    let boots = std::env::var("OOMTRACE_VM_BOOTS").unwrap_or_else(|_| "main,global,stall".into());
    let want = |b: &str| boots.split(',').any(|w| w.trim() == b);
    let mut failed = Vec::new();
    // One boot running `runs`: the script written, the boot logged (and
    // booted once more if the guest stalled); a failure noted. The guest's
    // lines back.
    let mut boot = |name: &str,
                    file: &str,
                    memory: &str,
                    purpose: &str,
                    runs: &[Run],
                    global_ok: bool|
     -> anyhow::Result<Vec<String>> {
        let script = write_script(
            &dir.join(file),
            &guest_script(&oomtrace, runs, &artifacts, global_ok),
        )?;
        eprintln!(
            "vm: booting {} (TCG, 2 cpus, {memory}) for {purpose}, at most {} s",
            kernel.display(),
            timeout.as_secs()
        );
        let t = Instant::now();
        let (result, lines, _) =
            boot_once_more_if_stalled(&kernel, &script, &artifacts, memory, timeout, STALL)?;
        eprintln!("vm: {name} boot: {result} in {} s", t.elapsed().as_secs());
        if result != "pass" {
            failed.push(format!("{name} boot: {result}"));
        }
        Ok(lines)
    };

    if want("main") {
        boot(
            "main",
            "guest.sh",
            "2G",
            &format!("{} pass(es)", PASSES.len()),
            &pass_runs(&exes, test_args),
            false,
        )?;
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
            expect: PASSES[0].expect,
            cgroupns: false,
            exe: vm_exe.clone(),
            args: [GLOBAL_OOM_TEST, "--exact", "--ignored", "--nocapture"]
                .map(String::from)
                .to_vec(),
        }];
        let lines = boot(
            "global-OOM",
            "guest-global.sh",
            GLOBAL_OOM_MEMORY,
            "the global OOM (no memcg limit)",
            &runs,
            true,
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
    // The guest's kernel logs, kept next to system_oom.json.
    for log in [
        "dmesg-main.txt",
        "kmsg-main.txt",
        "dmesg-global.txt",
        "kmsg-global.txt",
    ] {
        if fs::copy(artifacts.join(log), dir.join(log)).is_ok() {
            eprintln!(
                "vm: the guest's kernel log is in {}",
                dir.join(log).display()
            );
        }
    }
    if want("stall") {
        if let Err(e) = stall_self_check(&kernel, &dir, &artifacts) {
            failed.push(format!("{e:#}"));
        }
    }
    eprintln!("vm: done in {} s", started.elapsed().as_secs());
    if !failed.is_empty() {
        bail!("the end-to-end scenarios failed on Debian's 6.1 kernel ({}); the guest's output is above, failed tests' recordings under {}", failed.join("; "), artifacts.display());
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

/// [`boot`], and once more when the guest stalled: a stall is the emulator
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
    if outcome != Outcome::Stalled {
        return Ok((outcome, lines, 1));
    }
    if let Some(failed) = after_stall(&lines) {
        eprintln!("vm: {failed}; not booting again");
        return Ok((failed, lines, 1));
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
    fn a_global_oom_fails_the_main_boot() {
        let main = guest_script(Path::new("/x/oomtrace"), &[], Path::new("/x/a"), false);
        assert!(main.contains("[ \"$global\" -eq 0 ] || {"), "{main}");
        let global = guest_script(Path::new("/x/oomtrace"), &[], Path::new("/x/a"), true);
        assert!(global.contains("[ \"$global\" -gt 0 ] || {"), "{global}");
    }
}
