//! A real OOM kill in the kernel becomes one verdict line: real BPF programs,
//! real kubelet-shaped cgroups, real processes. Needs root (cargo xtask test).

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use oomtrace_e2e::{
    bin, is_verdict_for, oom_hog, unique_container_id, unique_uid, wait_until, Cgroup, Daemon, Json,
};

const LIMIT: u64 = 64 << 20;

fn assert_pod_limit(v: &Json, pid: u32, uid: &str, cid: &str, limit_cgroup: &str, qos: &str) {
    assert_eq!(v["verdict"], "pod_limit", "{v}");
    assert_eq!(v["kind"], Json::Null, "{v}");
    assert_eq!(v["victim"]["pid"], pid, "{v}");
    assert_eq!(v["victim"]["comm"], "oomtrace-hog", "{v}");
    assert_eq!(v["pod"]["uid"], uid, "{v}");
    assert_eq!(v["pod"]["qos"], qos, "{v}");
    assert_eq!(v["container"]["id"], cid, "{v}");
    assert_eq!(v["limit"]["cgroup"], limit_cgroup, "{v}");
    assert_eq!(v["limit"]["limit_bytes"], LIMIT, "{v}");
    let usage = v["limit"]["usage_bytes"].as_u64().expect("usage_bytes");
    assert!(
        usage + (4 << 20) >= LIMIT,
        "usage {usage} should be at the limit: {v}"
    );
    // A pid-only mark_victim (before 6.9) too: the kernel's kill line.
    assert!(
        v["victim"]["rss_bytes"].as_u64().expect("rss") > 32 << 20,
        "{v}"
    );
    assert_eq!(v["node"], "e2e-node");
    assert_eq!(v["schema_version"], 1);
    assert!(
        v["time"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.len() >= 20),
        "{v}"
    );
    assert!(v["incident"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
    assert_memory_at_the_kill(v, limit_cgroup);
    assert!(
        v["summary"]
            .as_str()
            .is_some_and(|s| s.contains("oomtrace-hog")),
        "{v}"
    );
}

/// The memory is the kill's: the kernel's report (the cgroup at its limit,
/// full there) or the victim cgroup's page counter read at the kill — never
/// a read after it, when the victim's pages may be gone already. Null only
/// where the classic tracepoint read no counters and no report came.
fn assert_memory_at_the_kill(v: &Json, limit_cgroup: &str) {
    let m = &v["memory"];
    let usage = m["usage_bytes"].as_u64();
    // The kernel prints a kill's report before it marks the victim; the
    // daemon stops waiting for one once it has read the log past the kill.
    // A report the kernel printed (not rate-limited away) was read by then,
    // so the memory is the report's.
    let pid = v["victim"]["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok());
    // Of this kill: its cgroup is this test's alone (a pid may be reused).
    let printed = pid
        .and_then(|p| oomtrace_e2e::kmsg::oom_summary(p, Duration::ZERO))
        .filter(|s| s.task_memcg.as_deref() == v["victim"]["cgroup"].as_str());
    if let Some(summary) = printed {
        assert_eq!(
            m["source"], "kernel_oom_report",
            "the kernel printed its report ({summary:?}), the verdict did not use it: {v}"
        );
    }
    match m["source"].as_str() {
        Some("kernel_oom_report") => {
            assert_eq!(m["cgroup"], limit_cgroup, "{v}");
            assert!(usage.is_some_and(|u| u + (4 << 20) >= LIMIT), "{v}");
            // The hog's anonymous memory filled the limit.
            assert!(
                m["anon_bytes"].as_u64().is_some_and(|a| a >= LIMIT / 2),
                "{v}"
            );
            assert!(m["working_set_bytes"].as_u64().is_some(), "{v}");
        }
        Some("page_counter") => {
            assert_eq!(m["cgroup"], v["victim"]["cgroup"], "{v}");
            assert!(usage.is_some_and(|u| u + (4 << 20) >= LIMIT), "{v}");
            assert_eq!(m["anon_bytes"], Json::Null, "{v}");
        }
        _ => assert!(
            m.is_null() && v["evidence"]["victim_hook"] == "tracepoint",
            "memory without a known source: {v}"
        ),
    }
}

/// The constraint's source follows from the hooks the kernel gave this
/// daemon (read from its status line): `oom_control` wherever the per-OOM
/// hook attached, else the kernel's summary line or the memcg counters.
/// Asserted on every run, never skipped.
fn assert_constraint_source(daemon: &Daemon, v: &Json) {
    assert_eq!(v["evidence"]["constraint"], "memcg", "{v}");
    let source = v["evidence"]["constraint_source"]
        .as_str()
        .unwrap_or("null");
    assert!(
        daemon.expected_constraint_sources().contains(&source),
        "oom hook: {:?}; {v}",
        daemon.hook("oom")
    );
}

#[test]
fn pod_limit_cgroupfs_driver() {
    let daemon = Daemon::start(&[]);
    let uid = unique_uid();
    let cid = unique_container_id();
    let container = Cgroup::create(&format!("kubepods/burstable/pod{uid}/{cid}"));
    container.set_limit(LIMIT);
    let pid = oom_hog(&container, 256);
    let v = daemon.wait_for("the pod_limit verdict", is_verdict_for(pid));
    assert_pod_limit(&v, pid, &uid, &cid, &container.rel, "Burstable");
    assert_constraint_source(&daemon, &v);
    daemon.barrier();
    assert_eq!(
        daemon
            .all(|l| l["type"] == "verdict" && l["pod"]["uid"] == uid.as_str())
            .len(),
        1,
        "exactly one verdict per kill"
    );
    daemon.finish();
}

#[test]
fn pod_limit_systemd_driver() {
    let daemon = Daemon::start(&[]);
    let uid = unique_uid();
    let cid = unique_container_id();
    let rel = format!(
        "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-{cid}.scope",
        uid.replace('-', "_")
    );
    let container = Cgroup::create(&rel);
    container.set_limit(LIMIT);
    let pid = oom_hog(&container, 256);
    let v = daemon.wait_for("the pod_limit verdict", is_verdict_for(pid));
    assert_pod_limit(&v, pid, &uid, &cid, &container.rel, "BestEffort");
    assert_constraint_source(&daemon, &v);
    assert_eq!(v["container"]["runtime"], "containerd", "{v}");
    daemon.finish();
}

#[test]
fn pod_level_limit_guaranteed() {
    // The pod cgroup's limit fires, not the container's.
    let daemon = Daemon::start(&[]);
    let uid = unique_uid();
    let cid = unique_container_id();
    let pod = Cgroup::create(&format!("kubepods/pod{uid}"));
    pod.set_limit(LIMIT);
    let container = Cgroup::create(&format!("kubepods/pod{uid}/{cid}"));
    let pid = oom_hog(&container, 256);
    let v = daemon.wait_for("the pod_limit verdict", is_verdict_for(pid));
    assert_pod_limit(&v, pid, &uid, &cid, &pod.rel, "Guaranteed");
    assert_constraint_source(&daemon, &v);
    assert_eq!(v["victim"]["cgroup"], container.rel.as_str(), "{v}");
    daemon.finish();
}

/// Busy loops on every CPU while they live: a loaded node, where the daemon
/// runs late after a burst of kills.
struct CpuLoad(Vec<std::process::Child>);

impl CpuLoad {
    fn start() -> CpuLoad {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        CpuLoad(
            (0..cpus)
                .map(|_| {
                    std::process::Command::new("sh")
                        .args(["-c", "while :; do :; done"])
                        .spawn()
                        .expect("a busy loop")
                })
                .collect(),
        )
    }
}

impl Drop for CpuLoad {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn a_burst_of_kills_across_pods_keeps_each_kills_memory() {
    // Six pods past their limits at once on a loaded node: every verdict's
    // memory is its own kill's (the cgroup full), however late the daemon
    // gets to it. A read of cgroupfs after the kill shows what is left.
    let daemon = Daemon::start(&[]);
    let load = CpuLoad::start();
    let pods: Vec<(String, String, Cgroup)> = (0..6)
        .map(|_| {
            let uid = unique_uid();
            let cid = unique_container_id();
            let c = Cgroup::create(&format!("kubepods/burstable/pod{uid}/{cid}"));
            c.set_limit(LIMIT);
            (uid, cid, c)
        })
        .collect();
    let pids: Vec<u32> = std::thread::scope(|s| {
        let hogs: Vec<_> = pods
            .iter()
            .map(|(_, _, c)| s.spawn(move || oom_hog(c, 256)))
            .collect();
        hogs.into_iter()
            .map(|h| h.join().expect("a hog's thread"))
            .collect()
    });
    drop(load);
    for ((uid, cid, c), pid) in pods.iter().zip(pids) {
        let v = daemon.wait_for("the burst's verdicts", is_verdict_for(pid));
        assert_pod_limit(&v, pid, uid, cid, &c.rel, "Burstable");
    }
    daemon.finish();
}

#[test]
fn host_service_gets_system_verdict() {
    let daemon = Daemon::start(&[]);
    let service = Cgroup::create(&format!("system.slice/demo-{}.service", unique_uid()));
    service.set_limit(LIMIT);
    let pid = oom_hog(&service, 256);
    let v = daemon.wait_for("the system verdict", is_verdict_for(pid));
    assert_eq!(v["verdict"], "system", "{v}");
    assert_eq!(v["pod"], Json::Null, "{v}");
    assert_eq!(v["container"], Json::Null, "{v}");
    assert_eq!(v["victim"]["cgroup"], service.rel.as_str(), "{v}");
    assert_eq!(v["limit"]["cgroup"], service.rel.as_str(), "{v}");
    assert_eq!(v["limit"]["limit_bytes"], LIMIT, "{v}");
    assert_constraint_source(&daemon, &v);
    daemon.finish();
}

#[test]
fn verdict_names_pod_after_container_cgroup_is_removed() {
    let daemon = Daemon::start(&[]);
    let uid = unique_uid();
    let cid = unique_container_id();
    let mut container = Cgroup::create(&format!("kubepods/besteffort/pod{uid}/{cid}"));
    container.set_limit(LIMIT);
    let pid = oom_hog(&container, 256);
    // Gone before oomtrace necessarily printed anything about it.
    container.remove_leaf().expect("rmdir the container cgroup");
    let v = daemon.wait_for("the verdict", is_verdict_for(pid));
    assert_eq!(v["verdict"], "pod_limit", "{v}");
    assert_eq!(v["pod"]["uid"], uid.as_str(), "{v}");
    assert_eq!(v["container"]["id"], cid.as_str(), "{v}");
    assert_eq!(v["victim"]["cgroup"], container.rel.as_str(), "{v}");
    assert_constraint_source(&daemon, &v);
    daemon.finish();
}

#[test]
fn cgroup_churn_without_oom_gives_no_verdict() {
    let daemon = Daemon::start(&[]);
    let mut uids = Vec::new();
    for _ in 0..100 {
        let uid = unique_uid();
        let cid = unique_container_id();
        let c = Cgroup::create(&format!("kubepods/burstable/pod{uid}/{cid}"));
        c.set_limit(LIMIT);
        // Used, within its limit.
        let mut hog = oomtrace_e2e::spawn_hog(&c, 4);
        assert!(
            hog.wait().expect("hog").success(),
            "a 4 MiB process under a 64 MiB limit must live"
        );
        uids.push(uid);
        drop(c);
    }
    daemon.barrier();
    let about_churn = daemon
        .all(|l| l["type"] == "verdict" && uids.iter().any(|u| l["pod"]["uid"] == u.as_str()));
    assert!(
        about_churn.is_empty(),
        "verdicts without an OOM: {about_churn:?}"
    );
    daemon.finish();
}

#[test]
fn forced_tracepoint_fallback_still_attributes() {
    // The classic tracepoint cannot read the victim's task_struct: the
    // trigger's memcg counters and /proc must still find the pod and limit.
    let daemon = Daemon::start(&["--hooks", "victim=tracepoint"]);
    let status = daemon.wait_for("status", |l| l["type"] == "status");
    let victim = status["hooks"]
        .as_array()
        .and_then(|h| h.iter().find(|c| c["family"] == "victim"))
        .cloned();
    assert_eq!(
        victim.as_ref().map(|v| &v["chosen"]),
        Some(&Json::from("tracepoint")),
        "{status}"
    );
    let uid = unique_uid();
    let cid = unique_container_id();
    let container = Cgroup::create(&format!("kubepods/burstable/pod{uid}/{cid}"));
    container.set_limit(LIMIT);
    let pid = oom_hog(&container, 256);
    let v = daemon.wait_for("the verdict", is_verdict_for(pid));
    assert_pod_limit(&v, pid, &uid, &cid, &container.rel, "Burstable");
    assert_constraint_source(&daemon, &v);
    assert_eq!(v["evidence"]["victim_hook"], "tracepoint", "{v}");
    daemon.finish();
}

#[test]
fn a_victim_named_from_proc_has_the_nodes_full_path() {
    // The classic victim tracepoint gives a pid only, and a forked child
    // was never seen attaching: its cgroup comes from /proc/PID/cgroup —
    // relative to oomtrace's own cgroup in a private cgroup namespace
    // (OOMTRACE_E2E_CGROUPNS) — and must be the node's full path.
    let daemon = Daemon::start(&["--hooks", "victim=tracepoint"]);
    let uid = unique_uid();
    let cid = unique_container_id();
    let container = Cgroup::create(&format!("kubepods/burstable/pod{uid}/{cid}"));
    container.set_limit(LIMIT);
    let mut parent = Command::new(bin("oomtrace-hog"))
        .arg("--join")
        .arg(container.procs())
        .args(["--mib", "256", "--child"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("oomtrace-hog --child");
    let mut first = String::new();
    let stdout = parent.stdout.take().expect("its stdout");
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("the child's pid");
    let child: u32 = first
        .trim()
        .strip_prefix("child ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("not a child pid: {first:?}"));
    assert!(
        wait_until(Duration::from_secs(60), || container
            .oom_kills()
            .is_ok_and(|n| n >= 1)),
        "the child was not OOM-killed"
    );
    let v = daemon.wait_for("the child's verdict", is_verdict_for(child));
    // Unreaped until now: the parent ends when its stdin closes.
    drop(parent.stdin.take());
    let _ = parent.wait();
    assert_eq!(v["evidence"]["victim_hook"], "tracepoint", "{v}");
    // The node's full path, or null: on cgroup v1 the kernel shows an
    // exiting task in `/` whatever its cgroup, and the daemon may read it
    // that late — never a namespace-relative path, never oomtrace's own.
    assert!(
        v["victim"]["cgroup"] == container.rel.as_str() || v["victim"]["cgroup"].is_null(),
        "{v}"
    );
    assert_eq!(v["verdict"], "pod_limit", "{v}");
    assert_eq!(v["pod"]["uid"], uid.as_str(), "{v}");
    assert_eq!(v["container"]["id"], cid.as_str(), "{v}");
    daemon.finish();
}

/// Kernel-log mode, as on a kernel whose `oom:mark_victim` carries only the
/// pid (before 6.9, e.g. Debian 11's 5.10): no victim hook (here turned off),
/// so each kill is judged from the kernel's own lines on /dev/kmsg, live.
#[test]
fn kernel_log_mode_gives_a_pod_limit_verdict_without_a_victim_hook() {
    let daemon = Daemon::start(&["--hooks", "victim=off", "--heartbeat", "1s"]);
    let ready = daemon.wait_for("status", |l| l["type"] == "status");
    assert_eq!(ready["kills"]["seen_from"], "kernel_log", "{ready}");
    assert!(
        ready["kills"]["why"]
            .as_str()
            .is_some_and(|w| w.contains("victim") && w.contains("turned off by --hooks")),
        "{ready}"
    );
    assert_eq!(daemon.hook("victim"), None, "{ready}");

    let uid = unique_uid();
    let cid = unique_container_id();
    let container = Cgroup::create(&format!("kubepods/burstable/pod{uid}/{cid}"));
    container.set_limit(LIMIT);
    // The kernel rate-limits its OOM report (10 per 5 s, machine-wide);
    // without it the log names no cgroup: the verdict names no limit, only
    // the pod the process was seen joining. A kill whose report was printed
    // is what this test is about.
    let mut judged = None;
    for _ in 0..3 {
        let pid = oom_hog(&container, 256);
        let v = daemon.wait_for("the verdict from the kernel log", is_verdict_for(pid));
        // Printed before the kill line the verdict came from: there by now.
        match oomtrace_e2e::kmsg::oom_summary(pid, Duration::from_secs(1)) {
            Some(summary) => {
                judged = Some((pid, v, summary));
                break;
            }
            None => {
                assert_eq!(v["verdict"], "cgroup_limit", "{v}");
                assert_eq!(v["limit"], Json::Null, "no report, no limit: {v}");
                assert_eq!(v["pod"]["uid"], uid.as_str(), "{v}");
                // The rate limit's window.
                std::thread::sleep(Duration::from_secs(5));
            }
        }
    }
    let (pid, v, summary) = judged.expect("three kills, each with its report rate-limited away");
    assert_eq!(v["source"], "kernel_log", "{v}");
    assert_eq!(v["evidence"]["basis"], "kernel_log", "{v}");
    assert_eq!(v["evidence"]["constraint_source"], "kernel_log", "{v}");
    // The limit is the kernel's own oom_memcg, the victim's cgroup its task_memcg.
    assert_eq!(summary.oom_memcg.as_deref(), Some(container.rel.as_str()));
    assert_eq!(v["limit"]["cgroup"], container.rel.as_str(), "{v}");
    assert_eq!(
        v["victim"]["cgroup"].as_str(),
        summary.task_memcg.as_deref(),
        "{v}"
    );
    assert_eq!(summary.pid, pid);
    assert_pod_limit(&v, pid, &uid, &cid, &container.rel, "Burstable");
    // What the kernel's lines do not say stays null.
    assert_eq!(v["victim"]["ns_pid"], Json::Null, "{v}");
    assert_eq!(v["evidence"]["victim_hook"], "kernel_log", "{v}");
    assert!(
        v["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("From the kernel log: ")),
        "{v}"
    );
    // Every kill the kernel counted since the start has its verdict: a
    // heartbeat past the audit's deadline, and no `missed` line.
    let beat = daemon.heartbeat_after(5);
    assert!(daemon.all(|l| l["type"] == "missed").is_empty(), "{beat}");
    assert_eq!(
        daemon.all(is_verdict_for(pid)).len(),
        1,
        "exactly one verdict per kill"
    );
    daemon.finish();
}

/// `oomtrace doctor` with the victim hook off: degraded (exit 3), the hook
/// table's victim row chosen by none, each kind skipped with its reason,
/// and the victim check saying kills come from the kernel log only.
#[test]
fn kernel_log_mode_is_degraded_in_doctor() {
    let out = Command::new(bin("oomtrace"))
        .args(["doctor", "--format", "json", "--hooks", "victim=off"])
        .output()
        .expect("oomtrace doctor");
    let v: Json = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(out.status.code(), Some(3), "{v}");
    assert_eq!(v["verdict"], "degraded", "{v}");
    let row = v["hooks"]
        .as_array()
        .and_then(|h| h.iter().find(|c| c["family"] == "victim"))
        .expect("a victim row");
    assert_eq!(row["chosen"], Json::Null, "{row}");
    let skipped = row["skipped"].as_array().expect("skipped");
    let kinds: Vec<&str> = skipped.iter().filter_map(|s| s["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["tp_btf", "raw_tp", "fentry", "kprobe", "tracepoint"],
        "{row}"
    );
    assert!(
        skipped
            .iter()
            .all(|s| s["reason"] == "turned off by --hooks"),
        "{row}"
    );
    let check = v["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "hook victim"))
        .expect("the victim hook's check");
    assert_eq!(check["status"], "warn", "{check}");
    assert!(
        check["detail"]
            .as_str()
            .is_some_and(|d| d.contains("kernel log only")),
        "{check}"
    );
    // The same node with its victim hook: that row is fine.
    let out = Command::new(bin("oomtrace"))
        .args(["doctor", "--format", "json"])
        .output()
        .expect("oomtrace doctor");
    let v: Json = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let check = v["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "hook victim"))
        .expect("the victim hook's check");
    assert_eq!(check["status"], "ok", "{check}");
}

/// No victim hook and no kernel log: nothing could see a kill, so oomtrace
/// refuses to start, naming both reasons. /dev/kmsg is hidden from it by a
/// private mount namespace with an empty /dev.
#[test]
fn kernel_log_mode_refuses_only_without_the_kernel_log() {
    let state = std::env::temp_dir().join(format!("oomtrace-blind-{}.state", unique_uid()));
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount -t tmpfs none /dev && exec \"$@\"")
        .arg("sh")
        .arg(bin("oomtrace"))
        .args([
            "run",
            "--hooks",
            "victim=off",
            "--backlog",
            "off",
            "--state-file",
        ])
        .arg(&state)
        .output()
        .expect("unshare");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no kill can be seen")
            && stderr.contains("turned off by --hooks")
            && stderr.contains("kernel log is unreadable"),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "no ready line: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let _ = std::fs::remove_file(state);
}
