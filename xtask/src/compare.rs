//! `cargo xtask compare`: oomtrace next to its peers — bcc's `oomkill`
//! (Debian bpfcc-tools) and bpftrace's `oomkill.bt` (Debian bpftrace, `/usr/sbin/oomkill.bt`) — on
//! the same OOM kills inside Debian's 6.1 VM (as `vm-test` boots it); in the
//! same boot each tool's kill → line latency and its cost to the page-fault
//! and fork/exec storms; docs/comparison.md written from what each tool
//! printed and what was measured. Not part of `cargo xtask test`.
//!
//! bcc compiles its program at run time and bpftrace's `oomkill.bt`
//! includes kernel headers: both need the guest kernel's headers
//! (`linux-headers-<release>`, installed on the host, which the guest sees).

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};

use crate::{setup, vm};

const PEER_PACKAGES: &[&str] = &["bpfcc-tools", "bpftrace"];
/// bcc compiles its program twice (with the others, then alone), minutes each under TCG.
const BOOT_TIMEOUT: Duration = Duration::from_secs(40 * 60);
/// The guest's memory: enough for bcc's in-process clang at start, small
/// enough that the global-OOM scenario fills it before the page cache of
/// the binaries (read over 9p under TCG) thrashes for minutes (seen at 2 GiB).
const MEMORY: &str = "1G";

/// The scenarios, in the order the guest runs them: (tag, what it is).
const SCENARIOS: &[(&str, &str)] = &[
    (
        "pod_limit",
        "a container's limit (`kubepods/burstable/pod…/<cid>`, `memory.max` 64 MiB) hit by one process",
    ),
    (
        "oom_group",
        "a container with `memory.oom.group = 1` and three processes (two 4 MiB sleepers, one grower), `memory.max` 64 MiB",
    ),
    (
        "host_service",
        "a host service's limit (`system.slice/demo.service`, `memory.max` 64 MiB)",
    ),
    (
        "global_oom",
        "no memcg limit: two pods hold a quarter of the VM's memory each, a third grows until the global OOM killer fires (hogs at `oom_score_adj` 500, the tools at -1000)",
    ),
];

/// The latency series: memcg kills one after another, all three tools
/// attached, the console quiet.
const LATENCY_KILLS: u32 = 30;
/// The storms: each phase (no tool, or one tool alone) runs each storm this
/// many times.
const STORM_REPS: u32 = 8;
/// A page-fault storm run: map, touch and unmap this many MiB, this many times.
const FAULT_MIB: u32 = 64;
const FAULT_ITERS: u32 = 4;
/// A fork/exec storm run: fork + exec /bin/true + wait, this many times.
const FORKS: u32 = 100;
/// The storm phases in order: every tool alone between two runs with none,
/// so each is set beside the no-tool runs just before and after it.
const PHASES: &[&str] = &[
    "none", "oomtrace", "none", "bcc", "none", "bpftrace", "none",
];
/// The tools as the document names them: (phase tag, name).
const TOOLS: &[(&str, &str)] = &[
    ("oomtrace", "oomtrace"),
    ("bcc", "bcc `oomkill`"),
    ("bpftrace", "bpftrace `oomkill.bt`"),
];

const POD_UID: &str = "6f1c2a9e-3b7d-4c11-9e0a-2b8f5d4c7a10";
const CID: &str = "3f9a1c0b7e2d4f6a8b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a";
/// The oom.group scenario's container (64 hex, like every container id).
const CID_GROUP: &str = "9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c";
/// The latency series' and the storms' containers.
const CID_LATENCY: &str = "5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b";
const CID_STORM: &str = "7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d";

/// `6.1.0-56-amd64` from `/boot/vmlinuz-6.1.0-56-amd64`.
fn release_of(kernel: &Path) -> anyhow::Result<String> {
    kernel
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .map(str::to_owned)
        .context("kernel image name")
}

/// `render_only`: rewrite docs/comparison.md from the last run's outputs
/// (`target/compare/out`) without booting.
pub fn run(root: &Path, env: &setup::BuildEnv, render_only: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    if render_only {
        let release = release_of(&vm::kernel()?)?;
        let doc = render(&root.join("target/compare/out"), &release)?;
        let path = root.join("docs/comparison.md");
        fs::write(&path, doc).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("compare: wrote {}", path.display());
        return Ok(());
    }
    vm::ensure()?;
    let kernel = vm::kernel()?;
    let release = release_of(&kernel)?;
    let headers: &'static str = Box::leak(format!("linux-headers-{release}").into_boxed_str());
    let mut packages = PEER_PACKAGES.to_vec();
    packages.push(headers);
    let missing = setup::missing(&packages);
    if !missing.is_empty() {
        setup::apt_install(&missing)?;
    }
    // The workspace's build runs protoc (the tests' CRI client).
    setup::ensure_test_packages()?;
    // The release build, as `cargo xtask run` and the image run it: a debug
    // build's serialisation and wording cost milliseconds a kill under TCG.
    crate::cargo(root, env, &["build", "--release", "--bins"])?;
    let dir = root.join("target/compare");
    let (oomtrace, _) = vm::snapshot(
        &crate::target_dir(root).join("release"),
        &[],
        &dir.join("bin"),
    )?;
    let hog = dir.join("bin/oomtrace-hog");
    // The guest's stamper and storm loads: xtask as just built.
    let xtask = dir.join("bin/xtask");
    let built = crate::target_dir(root).join("release/xtask");
    fs::copy(&built, &xtask).with_context(|| format!("copying {}", built.display()))?;
    let out = dir.join("out");
    if out.exists() {
        fs::remove_dir_all(&out).with_context(|| format!("clearing {}", out.display()))?;
    }
    fs::create_dir_all(&out)?;
    let script = vm::write_script(
        &dir.join("guest.sh"),
        &guest_script(&oomtrace, &hog, &xtask, &out),
    )?;
    eprintln!(
        "compare: booting {} (TCG, 2 cpus, {MEMORY})",
        kernel.display()
    );
    let (result, _) = vm::boot(&kernel, &script, &out, MEMORY, BOOT_TIMEOUT)?;
    eprintln!("compare: {result} in {} s", started.elapsed().as_secs());
    if result != "pass" {
        bail!(
            "the comparison run failed ({result}); outputs under {}",
            out.display()
        );
    }
    runtime_rows(root, env, &out)?;
    let doc = render(&out, &release)?;
    let path = root.join("docs/comparison.md");
    fs::write(&path, doc).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("compare: wrote {}", path.display());
    Ok(())
}

/// The rows of "what the runtime reported": the CRI verdict scenarios
/// (tests/tests/cri_verdicts.rs) run on this host, each writing oomtrace's
/// line beside the runtime's ContainerStatus to `out/runtime.jsonl`.
fn runtime_rows(root: &Path, env: &setup::BuildEnv, out: &Path) -> anyhow::Result<()> {
    let rows = out.join(RUNTIME_ROWS);
    if rows.exists() {
        fs::remove_file(&rows).with_context(|| format!("clearing {}", rows.display()))?;
    }
    let kernel = setup::output("uname", &["-r"]).unwrap_or_default();
    fs::write(out.join("host-kernel.txt"), kernel.trim())?;
    let path = rows.display().to_string();
    crate::cargo_with(
        root,
        env,
        &["test", "-p", "oomtrace-e2e", "--test", "cri_verdicts"],
        &[("OOMTRACE_E2E_SIDE_BY_SIDE", path.as_str())],
    )
    .context("the CRI verdict scenarios (their rows are docs/comparison.md's runtime column)")
}

/// Where [`runtime_rows`] keeps its rows, beside the VM's outputs.
const RUNTIME_ROWS: &str = "runtime.jsonl";

/// The section of rows from [`runtime_rows`], sorted by scenario.
fn render_runtime(d: &mut String, out: &Path) -> anyhow::Result<()> {
    let Ok(text) = fs::read_to_string(out.join(RUNTIME_ROWS)) else {
        return Ok(());
    };
    let mut rows: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    rows.sort_by(|a, b| a["scenario"].as_str().cmp(&b["scenario"].as_str()));
    let kernel = fs::read_to_string(out.join("host-kernel.txt")).unwrap_or_default();
    writeln!(
        d,
        "## What the runtime reported: pods made through containerd's CRI\n\n\
         Generated in the same `cargo xtask compare` run, on the host (Linux {}, cgroup v1, \
         the tracepoint hooks), by tests/tests/cri_verdicts.rs: a private containerd 1.6 makes \
         the pods with the kubelet's CRI calls, the kills and stops are real, and each row is \
         oomtrace's line beside the runtime's own ContainerStatus for that container (the state, \
         exit code and reason the kubelet reads). bcc and bpftrace print no verdict, so they \
         have no column here; `cargo xtask test` asserts the same rows on cgroup v2 in the VM.\n",
        kernel.trim()
    )?;
    writeln!(
        d,
        "| scenario | oomtrace | limit (the kernel's oom_memcg) | basis | kubelet_reports | what the runtime reported |"
    )?;
    writeln!(d, "| --- | --- | --- | --- | --- | --- |")?;
    for r in &rows {
        let o = &r["oomtrace"];
        let what = match o["kind"].as_str() {
            Some(k) => format!(
                "{} {} / {k}",
                o["type"].as_str().unwrap_or("?"),
                o["what"].as_str().unwrap_or("?")
            ),
            None => format!(
                "{} {}",
                o["type"].as_str().unwrap_or("?"),
                o["what"].as_str().unwrap_or("?")
            ),
        };
        let or_dash = |v: &serde_json::Value| match v.as_str() {
            Some(s) => format!("`{}`", cell(s)),
            None if v.is_null() => "—".to_string(),
            None => v.to_string(),
        };
        writeln!(
            d,
            "| {} | {what} | {} | {} | {} | {}, exit {}, reason `{}` |",
            r["scenario"].as_str().unwrap_or("?"),
            or_dash(&o["limit"]),
            or_dash(&o["basis"]),
            or_dash(&o["kubelet_reports"]),
            r["runtime"]["state"].as_str().unwrap_or("?"),
            r["runtime"]["exit_code"],
            cell(r["runtime"]["reason"].as_str().unwrap_or("")),
        )?;
    }
    writeln!(
        d,
        "
oomtrace's sentences:
"
    )?;
    for r in &rows {
        writeln!(
            d,
            "- {}: {}",
            r["scenario"].as_str().unwrap_or("?"),
            r["oomtrace"]["summary"].as_str().unwrap_or("")
        )?;
    }
    writeln!(d)?;
    Ok(())
}

fn guest_script(oomtrace: &Path, hog: &Path, xtask: &Path, out: &Path) -> String {
    let q = |p: &Path| vm::shell_quote(&p.display().to_string());
    let mut s = String::from(vm::PREAMBLE);
    write!(
        s,
        r#"O={oomtrace}
HOG={hog}
X={xtask}
out={out}
# The tools and this shell must outlive a global OOM; the hogs get +500.
echo -1000 > /proc/self/oom_score_adj
# A deadline-bounded wait for a pattern in a file: waitfor FILE PATTERN SECONDS.
waitfor() {{
    end=$(( $(date +%s) + $3 ))
    while ! grep -q "$2" "$1" 2>/dev/null; do
        [ "$(date +%s)" -lt "$end" ] || {{ note "no '$2' in $1 after $3 s"; return 1; }}
        sleep 0.2
    done
}}
mkcg() {{
    d=/sys/fs/cgroup
    for part in $(echo "$1" | tr / ' '); do
        echo +memory > "$d/cgroup.subtree_control" 2>/dev/null
        d="$d/$part"
        mkdir -p "$d"
    done
    echo "$d"
}}
# hog CGROUP_DIR MIB SLEEP ADJ LOG: a hog in the background; its pid in $hogpid.
hog() {{
    sh -c 'echo "$4" > /proc/self/oom_score_adj && exec "$0" --join "$1/cgroup.procs" --mib "$2" --sleep "$3"' "$HOG" "$1" "$2" "$3" "$4" > "$5" 2>&1 &
    hogpid=$!
}}
note "tools: oomtrace $($O --version 2>&1), bcc $(dpkg-query -W -f='${{Version}}' bpfcc-tools), $(bpftrace --version)"
{{ uname -r; $O --version; echo "bcc (bpfcc-tools) $(dpkg-query -W -f='${{Version}}' bpfcc-tools)"; bpftrace --version; }} > "$out/versions.txt" 2>&1
# stamped NAME: a fifo whose lines reach $TMPDIR/NAME behind the time they
# were read (xtask stamp); its path in $fifo. The stamped files stay in the
# guest's RAM until the tools stop: $out is the host's, over 9p, where a
# write costs milliseconds of a vCPU under TCG, which the tool woken after
# the writer would pay.
stamps=
stamped() {{
    fifo="$TMPDIR/fifo.$1"
    mkfifo "$fifo"
    $X stamp < "$fifo" > "$TMPDIR/$1" &
    stamps="$stamps $!"
}}
OOMTRACE_RUN="run --node-name vm --backlog off --state-file $TMPDIR/state --heartbeat 0"
# oomtrace logs its kill path's steps (a few writes a kill) for the table of steps.
# Its log goes to the guest's RAM ($out is the host's, over 9p: a write
# there costs milliseconds under TCG), copied to $out at the end.
stamped oomtrace.jsonl; OOMTRACE_LOG=oomtrace::timing=trace $O $OOMTRACE_RUN > "$fifo" 2> "$TMPDIR/oomtrace.err" &
otp=$!
stamped bcc.txt; PYTHONUNBUFFERED=1 /usr/sbin/oomkill-bpfcc > "$fifo" 2> "$out/bcc.err" &
bcp=$!
stamped bpftrace.txt; stdbuf -oL bpftrace /usr/sbin/oomkill.bt > "$fifo" 2> "$out/bpftrace.err" &
btp=$!
waitfor "$TMPDIR/oomtrace.jsonl" '"state":"ready"' 120 || fail=1
waitfor "$TMPDIR/bcc.txt" 'Tracing' 600 || {{ fail=1; cat "$out/bcc.err"; }}
waitfor "$TMPDIR/bpftrace.txt" 'Tracing' 600 || {{ fail=1; cat "$out/bpftrace.err"; }}
note "all three tools attached"

note "scenario pod_limit"
cg=$(mkcg kubepods/burstable/pod{POD_UID}/{CID})
echo 64M > "$cg/memory.max"; echo 0 > "$cg/memory.swap.max"
hog "$cg" 256 0 0 "$TMPDIR/h1"; wait $hogpid
echo "pod_limit $hogpid" >> "$out/scenarios.txt"

note "scenario oom_group"
cg=$(mkcg kubepods/burstable/pod{POD_UID}/{CID_GROUP})
echo 64M > "$cg/memory.max"; echo 0 > "$cg/memory.swap.max"; echo 1 > "$cg/memory.oom.group"
hog "$cg" 4 3600 0 "$TMPDIR/g1"; a=$hogpid
hog "$cg" 4 3600 0 "$TMPDIR/g2"; b=$hogpid
waitfor "$TMPDIR/g1" allocated 60; waitfor "$TMPDIR/g2" allocated 60
hog "$cg" 256 0 0 "$TMPDIR/g3"; c=$hogpid
wait $a $b $c
echo "oom_group $a $b $c" >> "$out/scenarios.txt"
note "oom_group memory.events: $(tr '\n' ' ' < "$cg/memory.events")"

note "scenario host_service"
cg=$(mkcg system.slice/demo.service)
echo 64M > "$cg/memory.max"; echo 0 > "$cg/memory.swap.max"
hog "$cg" 256 0 0 "$TMPDIR/s1"; wait $hogpid
echo "host_service $hogpid" >> "$out/scenarios.txt"

note "latency: {LATENCY_KILLS} memcg kills one after another, all three tools attached, the console quiet"
# The kernel prints its OOM report to the serial console synchronously
# (seconds under TCG) between the peers' probe and oomtrace's: quiet, the
# series measures the tools, not the console.
printk=$(cat /proc/sys/kernel/printk)
echo "$printk" > "$out/printk-before.txt"
echo 1 > /proc/sys/kernel/printk
cat /proc/sys/kernel/printk > "$out/printk-during.txt"
cg=$(mkcg kubepods/burstable/pod{POD_UID}/{CID_LATENCY})
echo 16M > "$cg/memory.max"; echo 0 > "$cg/memory.swap.max"
i=0
while [ $i -lt {LATENCY_KILLS} ]; do
    hog "$cg" 64 0 0 "$TMPDIR/l"; wait $hogpid
    echo "$hogpid" >> "$out/latency.txt"
    i=$(( i + 1 ))
done
echo "$printk" > /proc/sys/kernel/printk
note "latency series done; printk back to $(cat /proc/sys/kernel/printk | tr '\t' ' ')"

note "scenario global_oom"
quarter=$(awk '/MemTotal/ {{print int($2 / 1024 / 4)}}' /proc/meminfo)
p1=$(mkcg kubepods/besteffort/pod11111111-1111-4111-8111-111111111111/c1)
p2=$(mkcg kubepods/besteffort/pod22222222-2222-4222-8222-222222222222/c2)
p3=$(mkcg kubepods/besteffort/pod33333333-3333-4333-8333-333333333333/c3)
hog "$p1" $quarter 3600 500 "$TMPDIR/o1"; a=$hogpid
hog "$p2" $quarter 3600 500 "$TMPDIR/o2"; b=$hogpid
waitfor "$TMPDIR/o1" allocated 120; waitfor "$TMPDIR/o2" allocated 120
hog "$p3" $(( quarter * 4 )) 3600 500 "$TMPDIR/o3"; c=$hogpid
end=$(( $(date +%s) + 180 ))
while kill -0 $a 2>/dev/null && kill -0 $b 2>/dev/null && kill -0 $c 2>/dev/null; do
    [ "$(date +%s)" -lt "$end" ] || {{ note "no global OOM kill within 180 s"; fail=1; break; }}
    sleep 0.2
done
kill -9 $a $b $c 2>/dev/null; wait $a $b $c 2>/dev/null
echo "global_oom $a $b $c" >> "$out/scenarios.txt"

# Every kill in oomtrace's output and the last one in the peers' (they
# print once per OOM invocation, events in order; deadline-bounded), then
# stop them.
last=
for pid in $(dmesg | sed -n 's/.*[Kk]illed process \([0-9]*\) .*/\1/p'); do
    waitfor "$TMPDIR/oomtrace.jsonl" "\"pid\":$pid," 60
    last=$pid
done
waitfor "$TMPDIR/bcc.txt" "kill of PID $last " 60
waitfor "$TMPDIR/bpftrace.txt" "kill of PID $last " 60
# SIGTERM: a non-interactive shell starts background jobs with SIGINT
# ignored. bcc's output is unbuffered, bpftrace's line-buffered.
kill -TERM $bcp $btp $otp
end=$(( $(date +%s) + 60 ))
while kill -0 $bcp 2>/dev/null || kill -0 $btp 2>/dev/null || kill -0 $otp 2>/dev/null; do
    [ "$(date +%s)" -lt "$end" ] || {{ note "a tool did not exit within 60 s of SIGTERM"; kill -9 $bcp $btp $otp 2>/dev/null; break; }}
    sleep 0.2
done
wait $bcp $btp $otp 2>/dev/null
# The stampers end at their fifo's end of file.
wait $stamps 2>/dev/null
cp "$TMPDIR/oomtrace.jsonl" "$TMPDIR/bcc.txt" "$TMPDIR/bpftrace.txt" "$out/"
dmesg | grep -i 'killed process' > "$out/dmesg.txt"

# The storms: no tool, then each tool alone between runs with none.
sc=$(mkcg kubepods/burstable/pod{POD_UID}/{CID_STORM})
start_tool() {{
    rm -f "$TMPDIR/alone.out"
    case $1 in
    none) tp= ; return 0 ;;
    oomtrace) $O $OOMTRACE_RUN > "$TMPDIR/alone.out" 2>&1 & tp=$!; ready='"state":"ready"'; secs=120 ;;
    bcc) PYTHONUNBUFFERED=1 /usr/sbin/oomkill-bpfcc > "$TMPDIR/alone.out" 2>&1 & tp=$!; ready=Tracing; secs=600 ;;
    bpftrace) stdbuf -oL bpftrace /usr/sbin/oomkill.bt > "$TMPDIR/alone.out" 2>&1 & tp=$!; ready=Tracing; secs=600 ;;
    esac
    waitfor "$TMPDIR/alone.out" "$ready" $secs || {{ fail=1; cat "$TMPDIR/alone.out"; }}
}}
stop_tool() {{
    [ -n "$tp" ] || return 0
    kill -TERM $tp
    end=$(( $(date +%s) + 60 ))
    while kill -0 $tp 2>/dev/null; do
        [ "$(date +%s)" -lt "$end" ] || {{ note "$1 did not exit within 60 s of SIGTERM"; kill -9 $tp; fail=1; break; }}
        sleep 0.2
    done
    wait $tp 2>/dev/null
}}
n=0
for phase in {phases}; do
    n=$(( n + 1 ))
    start_tool $phase
    note "storms: phase $n, $phase"
    r=0
    while [ $r -lt {STORM_REPS} ]; do
        f=$($X bench-load faults --join "$sc/cgroup.procs" --mib {FAULT_MIB} --iters {FAULT_ITERS}) || fail=1
        echo "$n $phase faults $f" >> "$out/storms.txt"
        f=$($X bench-load forks --join "$sc/cgroup.procs" --count {FORKS}) || fail=1
        echo "$n $phase forks $f" >> "$out/storms.txt"
        r=$(( r + 1 ))
    done
    stop_tool $phase
done
sed 's/^/vm: dmesg: /' "$out/dmesg.txt"
for f in bcc.txt bpftrace.txt bcc.err bpftrace.err; do sed "s/^/vm: $f: /" "$out/$f"; done
cp "$TMPDIR/oomtrace.err" "$out/oomtrace.err"
grep -v 'oomtrace::timing' "$out/oomtrace.err" | sed "s/^/vm: oomtrace.err: /"
if [ $fail -eq 0 ]; then echo 'OOMTRACE-VM-RESULT: pass'; else echo 'OOMTRACE-VM-RESULT: fail'; fi
"#,
        oomtrace = q(oomtrace),
        hog = q(hog),
        xtask = q(xtask),
        out = q(out),
        phases = PHASES.join(" "),
    )
    .expect("writing to a String");
    s
}

/// A peer's line: (trigger pid, trigger comm, victim pid, victim comm).
type PeerKill = (u32, String, u32, String);

fn parse_peer(line: &str) -> Option<PeerKill> {
    // "HH:MM:SS Triggered by PID 123 ("comm"), OOM kill of PID 456 ("comm"), ..."
    let rest = line.split_once("Triggered by PID ")?.1;
    let (tpid, rest) = rest.split_once(" (\"")?;
    let (tcomm, rest) = rest.split_once("\")")?;
    let rest = rest.split_once("OOM kill of PID ")?.1;
    let (vpid, rest) = rest.split_once(" (\"")?;
    let (vcomm, _) = rest.split_once("\")")?;
    Some((
        tpid.trim().parse().ok()?,
        tcomm.to_string(),
        vpid.trim().parse().ok()?,
        vcomm.to_string(),
    ))
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

fn render(out: &Path, release: &str) -> anyhow::Result<String> {
    let read = |name: &str| -> anyhow::Result<String> {
        let p: PathBuf = out.join(name);
        fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
    };
    let scenarios: BTreeMap<String, Vec<u32>> = read("scenarios.txt")?
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let tag = w.next()?.to_string();
            Some((tag, w.filter_map(|p| p.parse().ok()).collect()))
        })
        .collect();
    let verdicts: Vec<Verdict> = read("oomtrace.jsonl")?
        .lines()
        .filter_map(|l| {
            let (at, l) = unstamp(l);
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["type"] == "verdict").then(|| (v, l.to_string(), at))
        })
        .collect();
    let peers: Vec<(&str, Vec<Stamped>)> = vec![
        ("bcc `oomkill`", stamped_lines(&read("bcc.txt")?)),
        (
            "bpftrace `oomkill.bt`",
            stamped_lines(&read("bpftrace.txt")?),
        ),
    ];
    let versions = read("versions.txt").unwrap_or_default();
    let dmesg = read("dmesg.txt").unwrap_or_default();

    let mut d = String::new();
    writeln!(
        d,
        "# oomtrace next to bcc's `oomkill` and bpftrace's `oomkill.bt`\n"
    )?;
    writeln!(
        d,
        "Generated by `cargo xtask compare` (xtask/src/compare.rs) from one run: the three \
         tools attached at once inside Debian's {release} kernel (TCG VM, 2 CPUs, {MEMORY}B, cgroup v2), \
         then the scenarios below caused real OOM kills. Each cell says only what that tool printed; \
         \"—\" means the tool's output has no such field. The tools' own lines follow each table.\n"
    )?;
    writeln!(d, "Versions:\n\n```\n{}```\n", versions)?;
    writeln!(
        d,
        "Columns: **victim** the killed process, **trigger** the task whose allocation failed, \
         **cgroup** the victim's (or the limit's) cgroup, **pod** the pod uid, **verdict** the \
         tool's judgement of why.\n"
    )?;
    for (tag, what) in SCENARIOS {
        let Some(pids) = scenarios.get(*tag) else {
            writeln!(d, "## {tag}\n\nNot run.\n")?;
            continue;
        };
        writeln!(d, "## {tag}: {what}\n")?;
        writeln!(d, "| tool | victim | trigger | cgroup | pod | verdict |")?;
        writeln!(d, "| --- | --- | --- | --- | --- | --- |")?;
        let mine: Vec<&Verdict> = verdicts
            .iter()
            .filter(|(v, _, _)| {
                v["victim"]["pid"]
                    .as_u64()
                    .is_some_and(|p| pids.contains(&(p as u32)))
            })
            .collect();
        if mine.is_empty() {
            writeln!(d, "| oomtrace | (no line) | | | | |")?;
        }
        for (v, _, _) in &mine {
            let verdict = match v["kind"].as_str() {
                Some(k) => format!("{} / {k}", v["verdict"].as_str().unwrap_or("?")),
                None => v["verdict"].as_str().unwrap_or("?").to_string(),
            };
            writeln!(
                d,
                "| oomtrace | {} ({}) | {} ({}) | victim `{}`; limit `{}` | {} | {}, incident `{}`, kubelet_reports {} |",
                v["victim"]["comm"].as_str().unwrap_or("?"),
                v["victim"]["pid"],
                v["trigger"]["comm"].as_str().unwrap_or("?"),
                v["trigger"]["pid"],
                cell(v["victim"]["cgroup"].as_str().unwrap_or("null")),
                cell(v["limit"]["cgroup"].as_str().unwrap_or("none")),
                v["pod"]["uid"].as_str().unwrap_or("—"),
                verdict,
                v["incident"].as_str().unwrap_or("?"),
                v["kubelet_reports"],
            )?;
        }
        let mut raw = String::new();
        for (tool, lines) in &peers {
            let lines: Vec<(&str, PeerKill)> = lines
                .iter()
                .filter_map(|(_, l)| parse_peer(l).map(|p| (l.as_str(), p)))
                .filter(|(_, p)| pids.contains(&p.2))
                .collect();
            if lines.is_empty() {
                writeln!(d, "| {tool} | (no line) | | — | — | — |")?;
            }
            for (line, (tpid, tcomm, vpid, vcomm)) in lines {
                writeln!(
                    d,
                    "| {tool} | {vcomm} ({vpid}) | {tcomm} ({tpid}) | — | — | — |"
                )?;
                writeln!(raw, "{tool}: {line}")?;
            }
        }
        writeln!(d, "\nWhat they printed:\n\n```")?;
        for (_, line, _) in &mine {
            writeln!(d, "oomtrace: {line}")?;
        }
        write!(d, "{raw}")?;
        writeln!(d, "```\n")?;
    }
    if !dmesg.is_empty() {
        writeln!(
            d,
            "The kernel's own lines for the same kills:\n\n```\n{dmesg}```\n"
        )?;
    }
    render_latency(&mut d, out, &verdicts, &peers)?;
    render_storms(&mut d, out)?;
    render_runtime(&mut d, out)?;
    Ok(d)
}

/// oomtrace's verdict: (the line parsed, the line, when it was read).
type Verdict = (serde_json::Value, String, Option<i128>);
/// A peer's line and when it was read.
type Stamped = (Option<i128>, String);

/// A line of a file written by `xtask stamp`: (the CLOCK_REALTIME ns it was
/// read at, the line as the tool printed it). A line without a stamp is
/// kept whole.
fn unstamp(line: &str) -> (Option<i128>, &str) {
    match line.split_once(' ') {
        Some((t, rest)) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => {
            (t.parse().ok(), rest)
        }
        _ => (None, line),
    }
}

fn stamped_lines(text: &str) -> Vec<Stamped> {
    text.lines()
        .map(|l| {
            let (at, l) = unstamp(l);
            (at, l.to_string())
        })
        .collect()
}

/// `xtask stamp`: each line of stdin to stdout behind the CLOCK_REALTIME
/// (ns since the epoch) at which the read returning it came back, flushed
/// at once. A tool writes a line in one write, so one read returns it whole.
pub fn stamp() -> anyhow::Result<()> {
    use std::io::{BufRead as _, Write as _};
    let mut input = std::io::stdin().lock();
    let mut output = std::io::stdout().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        if input
            .read_until(b'\n', &mut line)
            .context("reading stdin")?
            == 0
        {
            return Ok(());
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .context("the clock is before 1970")?
            .as_nanos();
        if !line.ends_with(b"\n") {
            line.push(b'\n');
        }
        write!(output, "{now} ").context("writing stdout")?;
        output.write_all(&line).context("writing stdout")?;
        output.flush().context("writing stdout")?;
    }
}

/// Kill → line for each tool over the latency series (`latency.txt`: the
/// victims' pids), the kill's time being oomtrace's `time` for that victim.
fn render_latency(
    d: &mut String,
    out: &Path,
    verdicts: &[Verdict],
    peers: &[(&str, Vec<Stamped>)],
) -> anyhow::Result<()> {
    let Ok(text) = fs::read_to_string(out.join("latency.txt")) else {
        return Ok(());
    };
    let pids: Vec<u32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    let victim = |v: &serde_json::Value| v["victim"]["pid"].as_u64().map(|p| p as u32);
    let kill_ns: HashMap<u32, i128> = verdicts
        .iter()
        .filter_map(|(v, _, _)| {
            let t = crate::bench::latency::parse_rfc3339_ns(v["time"].as_str()?)?;
            Some((victim(v)?, t))
        })
        .collect();
    // Each tool's first line naming the victim, when it was read.
    let mut arrivals: Vec<(&str, HashMap<u32, i128>)> = Vec::new();
    let mut mine = HashMap::new();
    for (v, _, at) in verdicts {
        if let (Some(pid), Some(at)) = (victim(v), at) {
            mine.entry(pid).or_insert(*at);
        }
    }
    arrivals.push(("oomtrace", mine));
    for (tool, lines) in peers {
        let mut theirs = HashMap::new();
        for (at, l) in lines {
            if let (Some(at), Some(p)) = (at, parse_peer(l)) {
                theirs.entry(p.2).or_insert(*at);
            }
        }
        arrivals.push((tool, theirs));
    }
    let level = |f: &str| {
        fs::read_to_string(out.join(f))
            .ok()
            .and_then(|t| t.split_whitespace().next().map(str::to_owned))
    };
    let console = match (level("printk-before.txt"), level("printk-during.txt")) {
        (Some(b), Some(d)) if b == d => format!(
            "The kernel's console log level was already {d} at the series (the first field of \
             /proc/sys/kernel/printk): the kernel wrote no OOM report to the emulated serial \
             console inside the kill path."
        ),
        (Some(b), Some(d)) => format!(
            "The kernel's console log level (the first field of /proc/sys/kernel/printk) was set \
             from {b} to {d} for the series and restored after, so the kernel wrote no OOM report \
             to the emulated serial console inside the kill path."
        ),
        _ => "The kernel's console log level during the series was not recorded.".to_string(),
    };
    writeln!(
        d,
        "## Kill → line, side by side\n\n\
         Measured in the same run: {n} memcg OOM kills one after another (a hog asks 64 MiB of a \
         container cgroup limited to 16 MiB), the three tools attached at once, each tool's \
         stdout a pipe into `xtask stamp`, which writes each line behind the CLOCK_REALTIME at \
         which its read returned. The kill's time is oomtrace's `time` for that victim: the \
         victim hook's CLOCK_BOOTTIME stamp at `mark_victim` plus (CLOCK_REALTIME − \
         CLOCK_BOOTTIME) taken at oomtrace's start. bcc's and bpftrace's kprobe on \
         `oom_kill_process` fires earlier in the same call, before the kernel dumps its OOM \
         report, so their figures count from a little after their own probe: the comparison errs \
         in the peers' favour. {console} Emulated (TCG): absolute figures are many times a real \
         machine's; the ratios are the point.\n",
        n = pids.len()
    )?;
    writeln!(
        d,
        "| tool | kills with a line | p50 | p90 | max | p50 ÷ oomtrace's p50 |"
    )?;
    writeln!(d, "| --- | --- | --- | --- | --- | --- |")?;
    let mut ours_p50 = f64::NAN;
    for (tool, at) in &arrivals {
        let ms: Vec<f64> = pids
            .iter()
            .filter_map(|p| Some((at.get(p)? - kill_ns.get(p)?) as f64 / 1e6))
            .collect();
        let ms = crate::bench::stats::sorted(ms);
        let p50 = crate::bench::stats::pct(&ms, 50.0);
        if *tool == "oomtrace" {
            ours_p50 = p50;
        }
        let fmt = |x: f64| {
            if x.is_nan() {
                "—".to_string()
            } else {
                format!("{x:.1} ms")
            }
        };
        writeln!(
            d,
            "| {tool} | {} of {} | {} | {} | {} | {} |",
            ms.len(),
            pids.len(),
            fmt(p50),
            fmt(crate::bench::stats::pct(&ms, 90.0)),
            fmt(ms.last().copied().unwrap_or(f64::NAN)),
            if p50.is_nan() || ours_p50.is_nan() || ours_p50 <= 0.0 {
                "—".to_string()
            } else {
                format!("{:.2}", p50 / ours_p50)
            }
        )?;
    }
    let judged = crate::bench::stats::sorted(
        verdicts
            .iter()
            .filter(|(v, _, _)| victim(v).is_some_and(|p| pids.contains(&p)))
            .filter_map(|(v, _, _)| v["evidence"]["judged_after_ms"].as_f64())
            .collect(),
    );
    if !judged.is_empty() {
        writeln!(
            d,
            "\noomtrace's own `evidence.judged_after_ms` for the same kills (from the kill to its \
             judgement: the wait for the kernel's OOM report from /dev/kmsg, the reads and the \
             attribution): p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms.",
            crate::bench::stats::pct(&judged, 50.0),
            crate::bench::stats::pct(&judged, 90.0),
            judged.last().copied().unwrap_or(f64::NAN),
        )?;
    }
    // Where oomtrace's time goes, from its own log of the same kills.
    if let Ok(log) = fs::read_to_string(out.join("oomtrace.err")) {
        let by_pid = crate::bench::latency::parse_steps(&log);
        let steps: Vec<_> = pids
            .iter()
            .filter_map(|p| by_pid.get(&u64::from(*p)).copied())
            .collect();
        if !steps.is_empty() {
            let ours: Vec<f64> = pids
                .iter()
                .filter_map(|p| {
                    let at = arrivals.first()?.1.get(p)?;
                    Some((at - kill_ns.get(p)?) as f64 / 1e6)
                })
                .collect();
            let intro = format!(
                "\noomtrace's kill → line, step by step, from its own log of the same kills \
                 (`OOMTRACE_LOG=oomtrace::timing=trace`, stderr to a file in the guest's RAM: a few \
                 log writes a kill and one a read of the node, counted in its figures above), each in CLOCK_BOOTTIME after the kill (the victim \
                 hook's stamp), {} kills:",
                steps.len()
            );
            d.push_str(&crate::bench::latency::steps_rows(
                &intro,
                &steps,
                &crate::bench::stats::sorted(ours),
                "`xtask stamp`",
            ));
            // Woken after the peers: their probe fires before the kernel's
            // report, oomtrace's victim record leaves after it.
            let peer_ms = |tool: usize, p: &u32| -> Option<f64> {
                Some((arrivals.get(tool)?.1.get(p)? - kill_ns.get(p)?) as f64 / 1e6)
            };
            let records = victim_records(&log);
            let behind = pids
                .iter()
                .filter(|p| {
                    let Some(rec) = records.get(p) else {
                        return false;
                    };
                    (1..arrivals.len()).all(|t| peer_ms(t, p).is_some_and(|ms| ms < *rec))
                })
                .count();
            let _ = writeln!(
                d,
                "\nIn {behind} of the {} kills oomtrace's victim record reached it after both peers' \
                 lines had been read: their kprobe fires at `oom_kill_process`'s entry, before the \
                 kernel's OOM report, and wakes them first; oomtrace's record leaves the kernel at \
                 `mark_victim`, after the report, and the guest's two vCPUs run the woken in turn.",
                pids.len()
            );
            let reads = read_costs(&log, &pids);
            if !reads.is_empty() {
                let _ = writeln!(
                    d,
                    "\nWhat oomtrace's own path spent between steps, from the same log (each read of \
                     the node logs its end; a row is the time since the previous logged step, so it \
                     holds that read and the work before it, and one log write):\n\n\
                     | after | kills | p50 | max |\n| --- | --- | --- | --- |"
                );
                for (what, ms) in reads {
                    let ms = crate::bench::stats::sorted(ms);
                    let _ = writeln!(
                        d,
                        "| {what} | {} | {:.3} ms | {:.3} ms |",
                        ms.len(),
                        crate::bench::stats::pct(&ms, 50.0),
                        ms.last().copied().unwrap_or(f64::NAN)
                    );
                }
            }
        }
    }
    writeln!(d)?;
    Ok(())
}

/// Each victim's record arrival, ms after its kill, from the timing log.
fn victim_records(log: &str) -> HashMap<u32, f64> {
    log.lines()
        .filter_map(|l| {
            let rest = l.split("victim record pid=").nth(1)?;
            let mut w = rest.split_whitespace();
            let pid = w.next()?.parse().ok()?;
            let kill: u64 = w.next()?.strip_prefix("kill_ns=")?.parse().ok()?;
            let at: u64 = w.next()?.strip_prefix("arrived_ns=")?.parse().ok()?;
            Some((pid, at.saturating_sub(kill) as f64 / 1e6))
        })
        .collect()
}

/// For each victim of `pids`, the time from each logged step of its kill
/// path to the next (the record, the report, each read of the node by its
/// `Ask` name, the judgement, the write), from its record to its verdict.
fn read_costs(log: &str, pids: &[u32]) -> Vec<(String, Vec<f64>)> {
    let num = |l: &str, key: &str| -> Option<u64> {
        let at = l.find(key)? + key.len();
        l[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    let mut order: Vec<String> = Vec::new();
    let mut costs: HashMap<String, Vec<f64>> = HashMap::new();
    let mut push = |what: String, ms: f64| {
        if !order.contains(&what) {
            order.push(what.clone());
        }
        costs.entry(what).or_default().push(ms);
    };
    let lines: Vec<&str> = log.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        let Some(pid) = num(l, "victim record pid=") else {
            continue;
        };
        if !pids.contains(&(pid as u32)) {
            continue;
        }
        let Some(mut prev) = num(l, "arrived_ns=") else {
            continue;
        };
        let verdict = format!("verdict pid={pid} ");
        for next in &lines[i + 1..] {
            if let Some(done) = num(next, "read done_ns=") {
                let what = next
                    .split("read done_ns=")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().nth(1))
                    .unwrap_or("?");
                let row = match what {
                    // The clock read that opens the node reads.
                    "NowBootNs" => "the attribution, up to the node reads".to_string(),
                    _ => format!("read `{what}`"),
                };
                push(row, done.saturating_sub(prev) as f64 / 1e6);
                prev = done;
            } else if next.contains("kernel report pid=")
                && num(next, "kernel report pid=") == Some(pid)
            {
                if let Some(at) = num(next, "arrived_ns=") {
                    push(
                        "the kernel's report read".into(),
                        at.saturating_sub(prev) as f64 / 1e6,
                    );
                    prev = prev.max(at);
                }
            } else if next.contains(&verdict) {
                if let (Some(j), Some(w)) = (num(next, "judged_ns="), num(next, "written_ns=")) {
                    push(
                        "judged (attribution, wording)".into(),
                        j.saturating_sub(prev) as f64 / 1e6,
                    );
                    push(
                        "written (JSON, the write)".into(),
                        w.saturating_sub(j) as f64 / 1e6,
                    );
                }
                break;
            }
        }
    }
    order
        .into_iter()
        .filter_map(|w| costs.remove(&w).map(|c| (w, c)))
        .collect()
}

/// One storm run from `storms.txt`.
#[derive(Debug, PartialEq)]
struct StormRun {
    phase_no: u32,
    phase: String,
    storm: String,
    wall_ms: f64,
    cpu_ms: f64,
}

fn storm_runs(text: &str) -> Vec<StormRun> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.splitn(4, ' ');
            let phase_no = w.next()?.parse().ok()?;
            let phase = w.next()?.to_string();
            let storm = w.next()?.to_string();
            let v: serde_json::Value = serde_json::from_str(w.next()?).ok()?;
            Some(StormRun {
                phase_no,
                phase,
                storm,
                wall_ms: v["wall_ns"].as_u64()? as f64 / 1e6,
                cpu_ms: v["cpu_ns"].as_u64()? as f64 / 1e6,
            })
        })
        .collect()
}

/// The storms with each tool alone beside the no-tool phases just before
/// and after it: the ratio of medians, read as noise when it is inside the
/// spread of the no-tool phases' own medians.
fn render_storms(d: &mut String, out: &Path) -> anyhow::Result<()> {
    use crate::bench::stats::median;
    let Ok(text) = fs::read_to_string(out.join("storms.txt")) else {
        return Ok(());
    };
    let runs = storm_runs(&text);
    let faults: Vec<&StormRun> = runs.iter().filter(|r| r.storm == "faults").collect();
    let cpu_above_wall = faults.iter().filter(|r| r.cpu_ms > r.wall_ms).count();
    writeln!(
        d,
        "## Overhead on the storms, side by side\n\n\
         Measured in the same run, after the kills above: each tool alone (started, attached, \
         then stopped), with no-tool phases just before and after it (phases {phases}). Each \
         phase runs each storm {STORM_REPS} times in a container cgroup: **faults** maps, touches \
         (one write per page) and unmaps {FAULT_MIB} MiB, {FAULT_ITERS} times, in one thread; \
         **forks** forks, execs `/bin/true` and waits, {FORKS} times. The figure is each run's \
         wall time, not the CPU time the guest charged: {cpu_above_wall} of the {n_faults} \
         single-threaded fault runs were charged more CPU time than their wall time. Ratio = the \
         tool's median ÷ the median of the no-tool phases beside it. Noise = the larger of how \
         far the no-tool phases' medians differ among themselves (largest − smallest, over their \
         median) and how far any tool's ratio fell below 1 (a probe cannot make a storm faster); \
         a ratio within it is inconclusive. oomtrace runs \
         with its defaults (every default hook, the near-OOM sampler); bcc and bpftrace attach \
         one kprobe on `oom_kill_process`, which no storm reaches. Emulated (TCG, 2 vCPUs). The \
         finer figure for oomtrace's own hooks (the kernel's BPF stats, and each hook's cost per \
         hit measured with and without it) is in BENCHMARKS.md's overhead section, on the host.\n",
        phases = PHASES.join(", "),
        n_faults = faults.len(),
    )?;
    writeln!(
        d,
        "| storm | tool | wall per run, median | no tool beside it, median | ratio | noise | reading |"
    )?;
    writeln!(d, "| --- | --- | --- | --- | --- | --- | --- |")?;
    for storm in ["faults", "forks"] {
        let phase_median = |n: u32| {
            let v: Vec<f64> = runs
                .iter()
                .filter(|r| r.storm == storm && r.phase_no == n)
                .map(|r| r.wall_ms)
                .collect();
            (!v.is_empty()).then(|| median(&v))
        };
        let none_medians: Vec<f64> = (1..=PHASES.len() as u32)
            .filter(|&n| PHASES[n as usize - 1] == "none")
            .filter_map(phase_median)
            .collect();
        let noise = match (
            none_medians.iter().copied().reduce(f64::min),
            none_medians.iter().copied().reduce(f64::max),
        ) {
            (Some(lo), Some(hi)) => (hi - lo) / median(&none_medians),
            _ => f64::NAN,
        };
        // (tool, its phase's median, the no-tool median beside it)
        let mut rows = Vec::new();
        for (n, phase) in PHASES.iter().enumerate() {
            let n = n as u32 + 1;
            let Some((_, name)) = TOOLS.iter().find(|(t, _)| t == phase) else {
                continue;
            };
            let beside: Vec<f64> = runs
                .iter()
                .filter(|r| {
                    r.storm == storm
                        && r.phase == "none"
                        && (r.phase_no + 1 == n || r.phase_no == n + 1)
                })
                .map(|r| r.wall_ms)
                .collect();
            rows.push((
                *name,
                phase_median(n),
                (!beside.is_empty()).then(|| median(&beside)),
            ));
        }
        // A probe cannot make a storm faster: how far a tool's phase fell
        // below the runs beside it is noise too.
        let noise = rows
            .iter()
            .filter_map(|(_, t, m)| Some(1.0 - (*t)? / (*m)?))
            .fold(noise, f64::max);
        for (name, t, m) in rows {
            let (Some(t), Some(m)) = (t, m) else {
                writeln!(d, "| {storm} | {name} | (no runs) | | | | |")?;
                continue;
            };
            let ratio = t / m;
            let reading = if noise.is_nan() || (ratio - 1.0).abs() <= noise {
                "within noise: inconclusive".to_string()
            } else {
                format!("{:+.1} %", (ratio - 1.0) * 100.0)
            };
            writeln!(
                d,
                "| {storm} | {name} | {t:.0} ms | {m:.0} ms | {ratio:.3} | ±{:.1} % | {reading} |",
                noise * 100.0
            )?;
        }
    }
    writeln!(d)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamped_line_gives_back_the_tools_own_line() {
        let (at, l) = unstamp("1764311403123456789 02:30:03 Triggered by PID 542 (\"hog\"), OOM kill of PID 542 (\"hog\"), 16384 pages");
        assert_eq!(at, Some(1_764_311_403_123_456_789));
        assert_eq!(parse_peer(l).map(|p| p.2), Some(542));
        // bcc's own line starts with a time, not a stamp: kept whole.
        assert_eq!(unstamp("02:30:03 Triggered by").0, None);
        assert_eq!(
            unstamp("{\"type\":\"verdict\"}"),
            (None, "{\"type\":\"verdict\"}")
        );
    }

    #[test]
    fn storm_runs_are_read_by_phase_and_storm() {
        let runs = storm_runs(
            "1 none faults {\"iters\":4,\"pages\":65536,\"wall_ns\":9000000,\"cpu_ns\":2000000}\n\
             2 oomtrace forks {\"iters\":100,\"pages\":0,\"wall_ns\":8000000,\"cpu_ns\":3000000}\n\
             3 none forks garbage\n",
        );
        let got: Vec<(u32, &str, &str, f64, f64)> = runs
            .iter()
            .map(|r| {
                (
                    r.phase_no,
                    r.phase.as_str(),
                    r.storm.as_str(),
                    r.wall_ms,
                    r.cpu_ms,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (1, "none", "faults", 9.0, 2.0),
                (2, "oomtrace", "forks", 8.0, 3.0),
            ]
        );
    }

    #[test]
    fn each_tool_phase_sits_between_two_without_a_tool() {
        for (i, p) in PHASES.iter().enumerate() {
            if *p != "none" {
                assert_eq!(PHASES.get(i.wrapping_sub(1)), Some(&"none"));
                assert_eq!(PHASES.get(i + 1), Some(&"none"));
                assert!(TOOLS.iter().any(|(t, _)| t == p));
            }
        }
    }
}
