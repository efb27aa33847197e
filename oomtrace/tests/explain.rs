//! `oomtrace explain` on saved kernel logs: the built binary, no root, no
//! kernel. Each fixture names the kills that made it.
//!
//! Real captures (this repository's test host, 6.18, cgroup v1, the kills
//! made by the end-to-end suite's `oomtrace-hog` processes; trimmed to a
//! few whole reports, the ring buffer's cut start kept):
//! - `host-6.18-dmesg.txt`: `dmesg`
//! - `host-6.18-dmesg-T.txt`: `dmesg -T` of the same lines
//! - `host-6.18-kmsg.txt`: `cat /dev/kmsg` of the same records
//!
//! Synthesized from the kernels' print formats (mm/oom_kill.c,
//! mm/memcontrol.c), not captured:
//! - `synth-6.1-v2-journal.txt`: `journalctl -k -o short-iso` shape, a
//!   cgroup v2 systemd-driver container limit and a global OOM
//! - `synth-4.14-sosreport.txt`: a sosreport's dmesg with a 4.x report
//!   (`Task in … killed as a result of limit of …`, bare `Killed process`)
//! - `garbage.bin` (the first 4 KiB of an ELF), `no-oom.txt`

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/explain")
        .join(name)
}

fn explain(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oomtrace"))
        .arg("explain")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running oomtrace explain");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("writing stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("oomtrace explain output")
}

fn verdicts(name: &str) -> Vec<Value> {
    let path = fixture(name);
    let out = explain(&[path.to_str().expect("utf-8 path")], None);
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// (pid, verdict, kind, pod uid, container id prefix, limit cgroup, limit bytes)
type Kill = (
    u64,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    Option<u64>,
);

/// The kills in the host captures, in log order.
const HOST_KILLS: [Kill; 7] = [
    // The ring buffer's oldest lines: three kill lines of a storm whose
    // reports were overwritten; memcg kills of unknown cgroups.
    (18604, "cgroup_limit", None, None, None, None, None),
    (18605, "cgroup_limit", None, None, None, None, None),
    (18606, "cgroup_limit", None, None, None, None, None),
    // tests/tests/scenarios.rs: a BestEffort container (cgroupfs) at its own 64 MiB limit.
    (
        31338,
        "pod_limit",
        None,
        Some("00007777-002d-47ae-8983-0018ec0b0ceb"),
        Some("00007777002e"),
        Some("/kubepods/besteffort/pod00007777-002d-47ae-8983-0018ec0b0ceb/00007777002e48288bb80018ec0b0cebc0ffee00c0ffee00c0ffee00c0ffee00"),
        Some(64 << 20),
    ),
    // A Guaranteed pod's own 64 MiB limit, hit by one of its containers.
    (
        31928,
        "pod_limit",
        None,
        Some("00007c22-00d1-41fb-8be8-0018ec0b0f1f"),
        Some("00007c2200d2"),
        Some("/kubepods/pod00007c22-00d1-41fb-8be8-0018ec0b0f1f"),
        Some(64 << 20),
    ),
    // The systemd driver: a containerd scope at its limit.
    (
        31937,
        "pod_limit",
        None,
        Some("00007c22-00d7-43b1-8bbe-0018ec0b0f48"),
        Some("00007c2200d8"),
        Some("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod00007c22_00d7_43b1_8bbe_0018ec0b0f48.slice/cri-containerd-00007c2200d843b382e70018ec0b0f48c0ffee00c0ffee00c0ffee00c0ffee00.scope"),
        Some(64 << 20),
    ),
    // Pods together over node allocatable: the kubepods limit (96 MiB).
    (
        4916,
        "node_pressure",
        Some("allocatable_oom"),
        Some("00000316-00ac-468a-85f9-0018ec0b136e"),
        Some("0000031600ae"),
        Some("/oomtrace-node-00000316-00ab-465a-8900-0018ec0b136e/kubepods"),
        Some(96 << 20),
    ),
];

/// A 6.x log's memcg kills that have their report have its memory (the
/// rest were rate-limited: a `Killed process` line alone).
fn assert_memory_from_reports(got: &[Value]) {
    let memcg = got.iter().filter(|v| !v["limit"].is_null()).count();
    let with_memory = got.iter().filter(|v| !v["memory"].is_null()).count();
    assert!(memcg > 0 && with_memory > 0, "{got:#?}");
}

fn check(name: &str, got: &[Value], want: &[Kill]) {
    assert_eq!(got.len(), want.len(), "{name}: {got:#?}");

    for (v, &(pid, verdict, kind, pod, container, limit, limit_bytes)) in got.iter().zip(want) {
        let ctx = format!("{name}, pid {pid}: {v}");
        assert_eq!(v["type"], "verdict", "{ctx}");
        assert_eq!(v["source"], "kernel_log", "{ctx}");
        assert_eq!(v["victim"]["pid"], pid, "{ctx}");
        assert_eq!(v["verdict"], verdict, "{ctx}");
        assert_eq!(v["kind"].as_str(), kind, "{ctx}");
        assert_eq!(v["pod"]["uid"].as_str(), pod, "{ctx}");
        let cid = v["container"]["id"].as_str();
        assert_eq!(cid.map(|c| &c[..12]), container, "{ctx}");
        assert_eq!(v["limit"]["cgroup"].as_str(), limit, "{ctx}");
        assert_eq!(v["limit"]["limit_bytes"].as_u64(), limit_bytes, "{ctx}");
        // What a log cannot hold is null, never read from this machine.
        for field in ["node_memory", "growth", "trigger", "signal"] {
            assert!(v[field].is_null(), "{field}: {ctx}");
        }
        // The memory is the report's (6.x prints the stats of the cgroup at
        // its limit, full at the kill), or null.
        let m = &v["memory"];
        if !m.is_null() {
            assert_eq!(m["source"], "kernel_oom_report", "{ctx}");
            assert_eq!(m["cgroup"].as_str(), limit, "{ctx}");
            let usage = m["usage_bytes"].as_u64().unwrap_or(0);
            assert!(limit_bytes.is_some_and(|l| usage + (4 << 20) >= l), "{ctx}");
        }
        assert!(v["victim"]["ns_pid"].is_null(), "{ctx}");
        assert_eq!(v["pod"]["name"], Value::Null, "{ctx}");
        assert!(
            v["summary"]
                .as_str()
                .is_some_and(|s| s.starts_with("From the kernel log: ")),
            "{ctx}"
        );
    }
}

#[test]
fn host_dmesg() {
    let got = verdicts("host-6.18-dmesg.txt");
    assert_memory_from_reports(&got);
    check("dmesg", &got, &HOST_KILLS);
    // `[seconds]` stamps are since boot: no wall time.
    assert!(got.iter().all(|v| v["time"].is_null()));
    assert_eq!(got[3]["incident"], "log-4386.372317");
    assert_eq!(got[3]["victim"]["rss_bytes"], (65152 + 1736) * 1024);
}

#[test]
fn host_dmesg_dates() {
    let got = verdicts("host-6.18-dmesg-T.txt");
    check("dmesg -T", &got, &HOST_KILLS);
    // Local dates without a zone are not a wall time oomtrace can state…
    assert!(got.iter().all(|v| v["time"].is_null()));
    // …unless told the zone (this host's is UTC).
    let path = fixture("host-6.18-dmesg-T.txt");
    let out = explain(
        &[path.to_str().expect("utf-8"), "--utc-offset", "+00:00"],
        None,
    );
    assert!(out.status.success());
    let first: Value = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(3)
            .expect("a 4th verdict"),
    )
    .expect("JSON");
    assert_eq!(first["victim"]["pid"], 31338);
    assert_eq!(first["time"], "2026-11-27T23:35:01.000000000Z");
    let out = explain(
        &[path.to_str().expect("utf-8"), "--utc-offset", "01:00"],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "clap's usage error");
}

#[test]
fn host_kmsg_records() {
    let got = verdicts("host-6.18-kmsg.txt");
    // The raw capture has one more record of the storm at its start.
    let mut want = HOST_KILLS.to_vec();
    want.insert(3, (18609, "cgroup_limit", None, None, None, None, None));
    check("/dev/kmsg", &got, &want);
    assert_eq!(got[4]["incident"], "kmsg-25837");
}

/// Real captures from Debian's 6.1 kernel (cgroup v2) in the test VM.
#[test]
fn vm_6_1_dmesg() {
    let main = verdicts("vm-6.1-dmesg-main.txt");
    assert_memory_from_reports(&main);
    let text = std::fs::read_to_string(fixture("vm-6.1-dmesg-main.txt")).expect("fixture");
    // An oom.group kill prints its first victim twice (as the victim, then
    // as a member): one verdict per victim per incident.
    let repeats = text
        .matches("are going to be killed due to memory.oom.group set")
        .count();
    assert!(repeats > 0);
    assert_eq!(
        main.len(),
        text.matches("Killed process").count() - repeats,
        "one verdict per kill in the log"
    );
    let pick = |pid: u64| -> Vec<Value> {
        main.iter()
            .filter(|v| v["victim"]["pid"] == pid)
            .cloned()
            .collect()
    };
    // tests/tests/vm.rs's oom.group kill: the members have no summary of
    // their own; the group's line gives their cgroup, the invocation's
    // summary the limit. Never a host process.
    let group = "/kubepods/burstable/pod00000199-0001-460a-846a-0018ec0cad63/00000199000246208e900018ec0cad63c0ffee00c0ffee00c0ffee00c0ffee00";
    for pid in [418, 414, 415] {
        let v = pick(pid);
        assert_eq!(v.len(), 1, "{pid}: {v:#?}");
        assert_eq!(v[0]["verdict"], "pod_limit", "{pid}: {v:#?}");
        assert_eq!(v[0]["limit"]["cgroup"], group, "{pid}: {v:#?}");
        assert_eq!(v[0]["victim"]["cgroup"], group, "{pid}: {v:#?}");
        assert_eq!(v[0]["incident"], pick(418)[0]["incident"], "{pid}");
    }
    // tests/tests/foundation.rs on the systemd driver: a BestEffort
    // containerd scope at its own limit.
    let scope = "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod00000106_00d8_4b47_8458_0018ec0cab99.slice/cri-containerd-0000010600d94b578a100018ec0cab99c0ffee00c0ffee00c0ffee00c0ffee00.scope";
    check(
        "vm main, systemd driver",
        &pick(401),
        &[(
            401,
            "pod_limit",
            None,
            Some("00000106-00d8-4b47-8458-0018ec0cab99"),
            Some("0000010600d9"),
            Some(scope),
            None,
        )],
    );
    // Pods together over node allocatable: the kubepods limit (96 MiB).
    check(
        "vm main, allocatable",
        &pick(601),
        &[(
            601,
            "node_pressure",
            Some("allocatable_oom"),
            Some("000001a9-0011-4d2c-8cc4-0018ec0cb2dc"),
            Some("000001a90013"),
            Some("/oomtrace-node-000001a9-0010-44fe-89bc-0018ec0cb2dc/kubepods"),
            Some(96 << 20),
        )],
    );

    // tests/tests/vm.rs's global OOM in 512 MiB: no memcg constraint.
    let global = verdicts("vm-6.1-dmesg-global.txt");
    check(
        "vm global",
        &global,
        &[(
            260,
            "node_pressure",
            Some("system_oom"),
            Some("000000fb-0005-464f-8e6c-0018ec0ccf3b"),
            Some("000000fb0006"),
            None,
            None,
        )],
    );
    assert_eq!(global[0]["evidence"]["constraint"], "global");
}

#[test]
fn synthesized_6_1_v2_journal() {
    let got = verdicts("synth-6.1-v2-journal.txt");
    let scope = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod6f1c2a9e_3b7d_4c11_9e0a_2b8f5d4c7a10.slice/cri-containerd-3f9a1c0b7e2d4f6a8b1c3d5e7f9a0b2c4d6e8f0a1b3c5d7e9f1a2b3c4d5e6f70.scope";
    let scope: &'static str = Box::leak(scope.to_owned().into_boxed_str());
    check(
        "journal",
        &got,
        &[
            (
                4242,
                "pod_limit",
                None,
                Some("6f1c2a9e-3b7d-4c11-9e0a-2b8f5d4c7a10"),
                Some("3f9a1c0b7e2d"),
                Some(scope),
                Some(256 << 20),
            ),
            (
                2912,
                "node_pressure",
                Some("system_oom"),
                None,
                None,
                None,
                None,
            ),
        ],
    );
    // Zoned ISO dates are wall times.
    assert_eq!(got[0]["time"], "2026-11-20T10:15:02.000000000Z");
    assert_eq!(got[1]["evidence"]["constraint"], "global");
    // The task table is not read: no top consumers from a log.
    assert!(got[1]["top_consumers"].is_null());
}

#[test]
fn synthesized_4_14_sosreport() {
    let got = verdicts("synth-4.14-sosreport.txt");
    check(
        "4.14",
        &got,
        &[(
            4242,
            "pod_limit",
            None,
            Some("6f1c2a9e-3b7d-4c11-9e0a-2b8f5d4c7a10"),
            Some("3f9a1c0b7e2d"),
            Some("/kubepods/burstable/pod6f1c2a9e-3b7d-4c11-9e0a-2b8f5d4c7a10"),
            Some(512 << 20),
        )],
    );
    // 4.x printed no oom_score_adj on the kill line.
    assert!(got[0]["victim"]["oom_score_adj"].is_null());
}

#[test]
fn text_format_and_stdin() {
    let input = std::fs::read(fixture("host-6.18-dmesg.txt")).expect("fixture");
    let out = explain(&["--format", "text", "-"], Some(&input));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 7, "{text}");
    assert!(text.contains("POD_LIMIT From the kernel log: Container 00007777002e of pod 00007777-002d-47ae-8983-0018ec0b0ceb hit its memory limit of 64Mi"), "{text}");
}

#[test]
fn pod_names_from_the_log_dirs() {
    let dir = std::env::temp_dir().join(format!("oomtrace-explain-{}", std::process::id()));
    let pods = dir.join("pods");
    let containers = dir.join("containers");
    let uid = "00007c22-00d1-41fb-8be8-0018ec0b0f1f";
    let cid = "00007c2200d241fd816c0018ec0b0f1fc0ffee00c0ffee00c0ffee00c0ffee00";
    std::fs::create_dir_all(pods.join(format!("shop_cart-7d9_{uid}"))).expect("pods dir");
    std::fs::create_dir_all(&containers).expect("containers dir");
    std::fs::write(containers.join(format!("cart-7d9_shop_app-{cid}.log")), "").expect("log");
    let path = fixture("host-6.18-dmesg.txt");
    let out = explain(
        &[
            path.to_str().expect("utf-8"),
            "--pods-log-dir",
            pods.to_str().expect("utf-8"),
            "--containers-log-dir",
            containers.to_str().expect("utf-8"),
        ],
        None,
    );
    let _ = std::fs::remove_dir_all(&dir);
    let got: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let v = &got[4];
    assert_eq!(v["pod"]["namespace"], "shop", "{v}");
    assert_eq!(v["pod"]["name"], "cart-7d9", "{v}");
    assert_eq!(v["container"]["name"], "app", "{v}");
}

#[test]
fn bad_input() {
    // No kills: exit 0, nothing on stdout, one line on stderr.
    for input in [&b""[..], b"[ 1.0] eth0: link up\n"] {
        let out = explain(&["-"], Some(input));
        assert!(out.status.success());
        assert!(out.stdout.is_empty());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("no OOM kill found"), "{err}");
    }
    let out = explain(&[fixture("no-oom.txt").to_str().expect("utf-8")], None);
    assert!(out.status.success());
    // Not text, or not there: non-zero, no panic.
    let out = explain(&[fixture("garbage.bin").to_str().expect("utf-8")], None);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a text log"));
    let out = explain(&["/nonexistent/oomtrace-explain"], None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    // A report cut anywhere: never a panic, never the wrong pid.
    let text = std::fs::read(fixture("host-6.18-dmesg.txt")).expect("fixture");
    for cut in (0..text.len()).step_by(997) {
        let out = explain(&["-"], Some(&text[..cut]));
        assert!(out.status.success(), "cut at {cut}: {out:?}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }
}

/// A followed log (`dmesg -w | oomtrace explain`): each kill is printed
/// when its line comes, not at the end of input.
#[test]
fn a_followed_log_prints_each_kill_as_it_comes() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_oomtrace"))
        .args(["explain", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running oomtrace explain");
    let mut stdin = child.stdin.take().expect("stdin");
    let report = std::fs::read(fixture("host-6.18-dmesg.txt")).expect("fixture");
    stdin.write_all(&report).expect("writing the report");
    stdin.flush().expect("flush");
    // stdin stays open: the verdicts must come anyway.
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("a verdict before the end of input");
    let v: Value = serde_json::from_str(&first).expect("JSON");
    assert_eq!(v["type"], "verdict", "{v}");
    drop(stdin);
    let status = child.wait().expect("exit");
    assert!(status.success());
}

/// gzip, xz and zstd logs are read as they are, with the same verdicts.
#[test]
fn compressed_logs() {
    let plain = verdicts("host-6.18-dmesg.txt");
    let dir = std::env::temp_dir().join(format!("oomtrace-explain-z-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let src = fixture("host-6.18-dmesg.txt");
    for (tool, ext) in [("gzip", "gz"), ("xz", "xz"), ("zstd", "zst")] {
        let out = dir.join(format!("log.{ext}"));
        let made = Command::new(tool).args(["-c", "-q"]).arg(&src).output();
        let Some(made) = made.ok().filter(|m| m.status.success()) else {
            panic!("{tool} is needed for this test (Debian's {tool} package)");
        };
        std::fs::write(&out, made.stdout).expect("writing the compressed log");
        let got = explain(&[out.to_str().expect("utf-8")], None);
        assert!(got.status.success(), "{tool}: {got:?}");
        let got: Vec<Value> = String::from_utf8_lossy(&got.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        assert_eq!(got, plain, "{tool}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Output closed early (`| head -1`): exit 0, no panic.
#[test]
fn a_closed_pipe_is_success() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oomtrace"))
        .args([
            "explain",
            fixture("vm-6.1-dmesg-main.txt").to_str().expect("utf-8"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running oomtrace explain");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("exit");
    assert!(out.status.success(), "{out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "{out:?}"
    );
}
