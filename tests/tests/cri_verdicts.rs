//! Verdicts on pods the kubelet's way, checked against the runtime: a
//! private containerd makes the pods through its CRI (tests/src/cri.rs),
//! the processes are OOM-killed or stopped for real, and every verdict is
//! compared with what the runtime reports (ContainerStatus) and with the
//! kernel's own account of the kill (its `oom-kill:` line's `oom_memcg`,
//! the cgroup its OOM killer worked in).
//!
//! Needs root (BPF, cgroups, containerd): `cargo xtask test` runs it on the
//! host (cgroup v1) and in the 6.1 VM (cgroup v2, `memory.oom.group` on
//! containers as kubelet 1.28 and later set it).

use std::{fs, path::PathBuf};

use oomtrace_e2e::{
    container::{Node, Qos},
    cri::{Containerd, CriContainer, CriPod, State, Status},
    kmsg, memory_root, unique_uid, wait_until, CgroupVersion, Daemon, Json, DEADLINE,
};

const LIMIT: u64 = 64 << 20;

/// A daemon that names pods and containers from the runtime's log
/// directories, as a DaemonSet mounting /var/log does.
fn daemon(extra: &[&str]) -> Daemon {
    let rt = Containerd::get();
    let pods = rt.pods_log_dir().display().to_string();
    let containers = rt.containers_log_dir().display().to_string();
    let mut args = vec![
        "--pods-log-dir",
        pods.as_str(),
        "--containers-log-dir",
        containers.as_str(),
    ];
    args.extend_from_slice(extra);
    Daemon::start(&args)
}

fn verdict_of(daemon: &Daemon, pid: u32) -> Json {
    daemon.wait_for(&format!("the verdict for pid {pid}"), |l| {
        l["type"] == "verdict" && l["victim"]["pid"] == pid
    })
}

/// `kubelet_reports` against what the runtime reported: equal, or null
/// where this hook set cannot know (the classic `oom:mark_victim`
/// tracepoint reads no namespaces, so a victim's pid-namespace pid is
/// unknown) — never the opposite of the runtime.
fn assert_reports(v: &Json, status: &Status) {
    let expected = kubelet_shows_oomkilled(status);
    let unknowable = v["evidence"]["victim_hook"] == "tracepoint" && v["kubelet_reports"].is_null();
    assert!(
        v["kubelet_reports"] == expected || unknowable,
        "kubelet_reports against ContainerStatus {status:?}: {v}"
    );
}

/// What the kubelet will show for a container, from its ContainerStatus:
/// `OOMKilled` only for an exited container (a running one shows Running,
/// whatever the runtime's reason field already holds).
fn kubelet_shows_oomkilled(s: &Status) -> bool {
    s.state == State::Exited && s.reason == "OOMKilled"
}

/// The verdict's limit is the cgroup the kernel's OOM killer worked in for
/// this kill, and its size is that cgroup's limit.
fn assert_limit_is_the_kernels(v: &Json) {
    let pid = v["victim"]["pid"].as_u64().expect("victim pid") as u32;
    let k = kmsg::oom_summary(pid, DEADLINE)
        .unwrap_or_else(|| panic!("no oom-kill line in the kernel log for pid {pid}: {v}"));
    let oom_memcg = k.oom_memcg.clone().expect("oom_memcg in the kernel's line");
    assert_eq!(
        v["limit"]["cgroup"], oom_memcg,
        "the verdict's limit against the kernel's oom_memcg ({k:?}): {v}"
    );
    let file = match memory_root().1 {
        CgroupVersion::V1 => "memory.limit_in_bytes",
        CgroupVersion::V2 => "memory.max",
    };
    let dir: PathBuf = memory_root().0.join(oom_memcg.trim_start_matches('/'));
    if let Ok(text) = fs::read_to_string(dir.join(file)) {
        if let Ok(bytes) = text.trim().parse::<u64>() {
            assert_eq!(v["limit"]["limit_bytes"], bytes, "{v}");
        }
    }
}

/// One row per scenario for the record: oomtrace's line beside what the
/// runtime reported. Printed (the note quotes them), and appended as JSON to
/// `OOMTRACE_E2E_SIDE_BY_SIDE` when set (`cargo xtask compare` renders
/// those rows into docs/comparison.md).
fn side_by_side(scenario: &str, line: &Json, status: &Status) {
    let what = line["verdict"]
        .as_str()
        .or(line["finding"].as_str())
        .or(line["reason"].as_str())
        .unwrap_or("?");
    eprintln!(
        "SIDE-BY-SIDE {scenario}: oomtrace {} {what} limit={} basis={} kubelet_reports={} | runtime {:?} exit {} reason {:?}",
        line["type"].as_str().unwrap_or("?"),
        line["limit"]["cgroup"],
        line["evidence"]["basis"],
        line["kubelet_reports"],
        status.state,
        status.exit_code,
        status.reason
    );
    let Some(path) = std::env::var_os("OOMTRACE_E2E_SIDE_BY_SIDE") else {
        return;
    };
    let row = serde_json::json!({
        "scenario": scenario,
        "oomtrace": {
            "type": line["type"],
            "what": what,
            "kind": line["kind"],
            "limit": line["limit"]["cgroup"],
            "basis": line["evidence"]["basis"],
            "kubelet_reports": line["kubelet_reports"],
            "summary": line["summary"],
        },
        "runtime": {
            "state": format!("{:?}", status.state),
            "exit_code": status.exit_code,
            "reason": status.reason,
        },
    });
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.to_string_lossy()));
    // One write per row: rows from parallel tests do not interleave.
    std::io::Write::write_all(&mut f, format!("{row}\n").as_bytes())
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.to_string_lossy()));
}

fn assert_names(v: &Json, pod: &CriPod, c: &CriContainer) {
    assert_eq!(v["pod"]["uid"], pod.uid.as_str(), "{v}");
    assert_eq!(v["pod"]["namespace"], pod.namespace.as_str(), "{v}");
    assert_eq!(v["pod"]["name"], pod.name.as_str(), "{v}");
    assert_eq!(v["container"]["id"], c.id.as_str(), "{v}");
    assert_eq!(v["container"]["name"], c.name.as_str(), "{v}");
}

/// One container, its limit the pod's too (the kubelet's pod-level limit
/// is the sum of the containers'): the pod's cgroup, which also holds the
/// sandbox, is usually the one at its limit first. The verdict names the
/// cgroup the kernel named, and says what the kubelet will show.
#[test]
fn a_containers_init_past_its_limit_matches_the_runtime_and_the_kernel() {
    let daemon = daemon(&[]);
    let pod = CriPod::builder(Qos::Burstable)
        .namespace("shop")
        .name("checkout-7d9f")
        .container("worker", &["oomtrace-hog", "--mib", "256"], Some(LIMIT))
        .run();
    let c = pod.container("worker");
    let status = c.wait_exited(DEADLINE);
    assert_eq!(
        (status.exit_code, status.reason.as_str()),
        (137, "OOMKilled")
    );
    let v = verdict_of(&daemon, c.pid);
    assert_eq!(v["verdict"], "pod_limit", "{v}");
    assert_names(&v, &pod, c);
    assert_eq!(v["pod"]["qos"], "Burstable", "{v}");
    assert_reports(&v, &status);
    assert_limit_is_the_kernels(&v);
    assert_eq!(v["source"], "bpf", "{v}");
    // The classic tracepoint reads no namespaces: null there, 1 elsewhere.
    if v["evidence"]["victim_hook"] != "tracepoint" {
        assert_eq!(v["victim"]["ns_pid"], 1, "the container's init: {v}");
        assert_ne!(v["evidence"]["pid_ns"], Json::Null, "{v}");
    }
    // The memory at the kill: the kernel's report of the cgroup at its
    // limit, or the victim's page counter read by the hook (containerd
    // removes the container's cgroup as soon as its init is gone: a read
    // after the kill finds nothing or what is left). Null only where the
    // classic tracepoint read no counters and the report was rate-limited.
    match v["memory"]["source"].as_str() {
        Some("kernel_oom_report") => {
            assert_eq!(v["memory"]["cgroup"], v["limit"]["cgroup"], "{v}");
            let usage = v["memory"]["usage_bytes"].as_u64().unwrap_or(0);
            assert!(usage + (4 << 20) >= LIMIT, "not the kill's: {v}");
        }
        Some("page_counter") => assert_eq!(v["memory"]["cgroup"], c.cgroup.as_str(), "{v}"),
        _ => assert!(
            v["memory"].is_null() && v["evidence"]["victim_hook"] == "tracepoint",
            "{v}"
        ),
    }
    assert!(
        v["node_memory"]["capacity_bytes"]
            .as_u64()
            .is_some_and(|b| b > 0),
        "{v}"
    );
    let summary = v["summary"].as_str().unwrap_or_default();
    assert!(
        summary.contains("OOMKilled") && summary.contains("shop/checkout-7d9f"),
        "{v}"
    );
    side_by_side(
        "init past its limit (Burstable, one container)",
        &v,
        &status,
    );
    daemon.finish();
}

/// Two containers with limits (Guaranteed): one grows past its own limit
/// while the pod's sum still has room: the container's cgroup is the limit.
#[test]
fn a_guaranteed_pods_container_hits_its_own_limit_not_the_pods() {
    let daemon = daemon(&[]);
    let pod = CriPod::builder(Qos::Guaranteed)
        .container("steady", &["sleep", "3600"], Some(LIMIT))
        .container("grower", &["oomtrace-hog", "--mib", "256"], Some(LIMIT))
        .run();
    let c = pod.container("grower");
    let status = c.wait_exited(DEADLINE);
    assert_eq!(
        (status.exit_code, status.reason.as_str()),
        (137, "OOMKilled")
    );
    let v = verdict_of(&daemon, c.pid);
    assert_eq!(v["verdict"], "pod_limit", "{v}");
    assert_eq!(v["pod"]["qos"], "Guaranteed", "{v}");
    assert_eq!(v["limit"]["cgroup"], c.cgroup.as_str(), "{v}");
    assert_reports(&v, &status);
    assert_limit_is_the_kernels(&v);
    assert_eq!(
        pod.container("steady").status().state,
        State::Running,
        "the other container lives on"
    );
    side_by_side("Guaranteed, one container past its own limit", &v, &status);
    daemon.finish();
}

/// A child process OOM-killed: on cgroup v1 (and v2 without oom.group) the
/// init lives on and the kubelet shows the container Running; on v2 with
/// `memory.oom.group = 1` the kernel kills the whole container, init
/// included, and the runtime reports it OOMKilled. oomtrace's
/// `kubelet_reports` must say which, for every victim.
#[test]
fn a_childs_kill_is_reported_as_the_runtime_reports_it() {
    let daemon = daemon(&[]);
    let pod = CriPod::builder(Qos::Burstable)
        .container(
            "app",
            &["sh", "-c", "oomtrace-hog --mib 256; exec sleep 3600"],
            Some(LIMIT),
        )
        .run();
    let c = pod.container("app");
    let hog = daemon.wait_for("the child's verdict", |l| {
        l["type"] == "verdict"
            && l["container"]["id"] == c.id.as_str()
            && l["victim"]["comm"] == "oomtrace-hog"
    });
    assert_eq!(hog["verdict"], "pod_limit", "{hog}");
    assert_ne!(hog["victim"]["ns_pid"], 1, "{hog}");
    assert_limit_is_the_kernels(&hog);
    let group = memory_root().1 == CgroupVersion::V2;
    let status = if group {
        c.wait_exited(DEADLINE)
    } else {
        // The init must still run once the kill is over: its shell runs
        // `sleep` next.
        assert!(
            wait_until(DEADLINE, || fs::read_to_string(format!(
                "/proc/{}/comm",
                c.pid
            ))
            .is_ok_and(|s| s.trim() == "sleep")),
            "the init lives on"
        );
        // containerd takes the OOM event from the cgroup on its own
        // schedule: the verdict can come first (it once took longer than
        // the runtime, and this test read the status once).
        wait_until(DEADLINE, || c.status().reason == "OOMKilled");
        c.status()
    };
    assert_reports(&hog, &status);
    if group {
        assert_eq!(
            (status.exit_code, status.reason.as_str()),
            (137, "OOMKilled")
        );
        let init = verdict_of(&daemon, c.pid);
        assert_eq!(init["incident"], hog["incident"], "one group kill: {init}");
        assert_reports(&init, &status);
    } else {
        assert_eq!(status.state, State::Running, "{status:?}");
        // The runtime's reason already says OOMKilled (kubernetes#140716).
        assert_eq!(status.reason, "OOMKilled", "{status:?}");
    }
    side_by_side("a child OOM-killed", &hog, &status);
    daemon.finish();
}

/// kubernetes#140716: after a child's OOM kill, a graceful stop (init exits
/// 143 on SIGTERM) is still reported `OOMKilled` by the runtime. oomtrace
/// says so with an `oomkilled_misreport` finding. (On v2 the kubelet's
/// `singleProcessOOMKill` keeps the init alive through the child's kill.)
#[test]
fn a_stop_after_a_childs_kill_is_a_misreport_finding() {
    let daemon = daemon(&[]);
    let pod = CriPod::builder(Qos::Burstable)
        .namespace("shop")
        .name("php-7c4d")
        .single_process_oom_kill()
        .container(
            "fpm",
            &[
                "sh",
                "-c",
                "trap 'exit 143' TERM; oomtrace-hog --mib 256; while :; do sleep 1 & wait $!; done",
            ],
            Some(LIMIT),
        )
        .run();
    let c = pod.container("fpm");
    let kill = daemon.wait_for("the child's verdict", |l| {
        l["type"] == "verdict" && l["container"]["id"] == c.id.as_str()
    });
    let running = c.status();
    assert_eq!(running.state, State::Running);
    assert_reports(&kill, &running);
    c.stop(10);
    let status = c.wait_exited(DEADLINE);
    assert_eq!(
        (status.exit_code, status.reason.as_str()),
        (143, "OOMKilled"),
        "the runtime's misreport itself"
    );
    let f = daemon.wait_for("the misreport finding", |l| {
        l["type"] == "finding"
            && l["finding"] == "oomkilled_misreport"
            && l["container"]["id"] == c.id.as_str()
    });
    assert_eq!(f["pod"]["namespace"], "shop", "{f}");
    assert_eq!(f["pod"]["name"], "php-7c4d", "{f}");
    assert_eq!(f["container"]["name"], "fpm", "{f}");
    assert_eq!(f["process"]["pid"], c.pid, "the init: {f}");
    assert_eq!(f["exit"]["signal"], "SIGTERM", "{f}");
    assert!(
        f["exit"]["sender"]["comm"]
            .as_str()
            .is_some_and(|s| s.starts_with("runc")),
        "{f}"
    );
    assert_eq!(
        f["earlier_kills"][0]["victim"]["pid"], kill["victim"]["pid"],
        "{f}"
    );
    assert_eq!(f["earlier_kills"][0]["incident"], kill["incident"], "{f}");
    let summary = f["summary"].as_str().unwrap_or_default();
    assert!(
        summary.contains("OOMKilled") && summary.contains("fpm of pod shop/php-7c4d"),
        "{f}"
    );
    side_by_side("StopContainer(10) after a child's kill", &f, &status);
    daemon.finish();
}

/// Two pods that each fit their own limits (none) exceed the node's
/// kubepods (allocatable) limit together: node pressure, the kubepods
/// cgroup as the kernel names it, for every kill there.
#[test]
fn pods_past_allocatable_together_are_node_pressure() {
    let daemon = daemon(&[]);
    let node = Node::new();
    node.set_allocatable(96 << 20);
    let big = CriPod::builder(Qos::Burstable)
        .cgroup_prefix(&node.prefix)
        .container(
            "cache",
            &["oomtrace-hog", "--mib", "64", "--sleep", "3600"],
            None,
        )
        .run();
    let cache = big.container("cache");
    assert!(
        wait_until(DEADLINE, || cache.log().contains("allocated")),
        "the first pod never held its 64 MiB: {}",
        cache.log()
    );
    let small = CriPod::builder(Qos::BestEffort)
        .cgroup_prefix(&node.prefix)
        .container("batch", &["oomtrace-hog", "--mib", "256"], None)
        .run();
    let c = small.container("batch");
    let status = c.wait_exited(DEADLINE);
    assert_eq!(
        (status.exit_code, status.reason.as_str()),
        (137, "OOMKilled")
    );
    let v = verdict_of(&daemon, c.pid);
    assert_eq!(v["verdict"], "node_pressure", "{v}");
    assert_eq!(v["kind"], "allocatable_oom", "{v}");
    assert_eq!(v["pod"]["qos"], "BestEffort", "{v}");
    assert_eq!(
        v["limit"]["cgroup"],
        format!("{}/kubepods", node.prefix),
        "{v}"
    );
    assert_eq!(v["limit"]["limit_bytes"], 96u64 << 20, "{v}");
    assert_reports(&v, &status);
    assert_limit_is_the_kernels(&v);
    side_by_side("two pods past allocatable (BestEffort killed)", &v, &status);
    daemon.barrier();
    for uid in [big.uid.as_str(), small.uid.as_str()] {
        for v in daemon.all(|l| l["type"] == "verdict" && l["pod"]["uid"] == uid) {
            assert_eq!(
                v["kind"], "allocatable_oom",
                "every kill here is the node's allocatable: {v}"
            );
            assert_limit_is_the_kernels(&v);
        }
    }
    drop((small, big));
    daemon.finish();
}

/// A kubelet config whose hard threshold sits above this machine's
/// memory.available: the node counts as under pressure without exhausting it.
fn pressured_kubelet_config() -> PathBuf {
    kubelet_config(|total_kib| format!("evictionHard:\n  memory.available: \"{total_kib}Ki\"\n"))
}

/// A kubelet config built from MemTotal (KiB).
fn kubelet_config(body: impl Fn(u64) -> String) -> PathBuf {
    let meminfo = fs::read_to_string("/proc/meminfo").expect("meminfo");
    let total_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("MemTotal");
    let path = std::env::temp_dir().join(format!("kubelet-{}.yaml", unique_uid()));
    fs::write(
        &path,
        format!(
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n{}",
            body(total_kib)
        ),
    )
    .expect("writing the kubelet config");
    path
}

/// The kubelet's hard eviction, reproduced call for call: every container
/// stopped with a 2 s grace period at once, then the sandbox. A workload
/// that ignores SIGTERM is SIGKILLed by the runtime 2 s later; one that
/// exits on SIGTERM ends before that (inferred, and said so).
#[test]
fn a_hard_eviction_through_the_runtime_is_an_eviction() {
    let config = pressured_kubelet_config();
    let daemon = daemon(&["--kubelet-config", &config.display().to_string()]);
    let calm = self::daemon(&["--kubelet-config", "/nonexistent/kubelet-config.yaml"]);
    let mut pod = CriPod::builder(Qos::Burstable)
        .namespace("shop")
        .name("cache-0")
        .container("stubborn", &["sleep", "3600"], None)
        .container(
            "polite",
            &[
                "sh",
                "-c",
                "trap 'exit 143' TERM; while :; do sleep 1 & wait $!; done",
            ],
            None,
        )
        .run();
    pod.stop(2);
    let (stubborn, polite) = (pod.container("stubborn"), pod.container("polite"));
    let s = stubborn.wait_exited(DEADLINE);
    assert_eq!((s.exit_code, s.reason.as_str()), (137, "Error"), "{s:?}");
    let p = polite.wait_exited(DEADLINE);
    assert_eq!((p.exit_code, p.reason.as_str()), (143, "Error"), "{p:?}");

    let v = verdict_of(&daemon, stubborn.pid);
    assert_eq!(
        (v["verdict"].as_str(), v["kind"].as_str()),
        (Some("node_pressure"), Some("eviction")),
        "{v}"
    );
    assert_names(&v, &pod, stubborn);
    assert_eq!(
        v["evidence"]["basis"], "runtime_sigterm_then_sigkill",
        "{v}"
    );
    let grace = v["evidence"]["grace_s"].as_f64().expect("grace_s");
    assert!((1.5..4.0).contains(&grace), "the 2 s grace period: {v}");
    assert!(
        v["signal"]["sender"]["comm"]
            .as_str()
            .is_some_and(|c| c.starts_with("runc")),
        "{v}"
    );
    // Where the node's memory was at the runtime's signal.
    let b = &v["node_memory"]["breakdown"];
    assert!(
        b["total_bytes"].as_u64().is_some_and(|t| t > 0),
        "an eviction carries node_memory.breakdown: {v}"
    );
    assert!(
        v["summary"]
            .as_str()
            .zip(b["summary"].as_str())
            .is_some_and(|(s, bs)| s.ends_with(bs)),
        "{v}"
    );
    side_by_side("hard eviction (grace 2 s), SIGTERM ignored", &v, &s);
    let v = verdict_of(&daemon, polite.pid);
    assert_eq!(v["kind"], "eviction", "{v}");
    assert_names(&v, &pod, polite);
    assert_eq!(v["evidence"]["basis"], "runtime_sigterm_then_exit", "{v}");
    side_by_side("hard eviction (grace 2 s), exits on SIGTERM", &v, &p);

    // The same stop on a node with room: no eviction, one line per stop.
    let line = calm.wait_for("a stopped line", |l| {
        l["type"] == "stopped" && l["process"]["pid"] == stubborn.pid
    });
    assert_eq!(line["reason"], "no_memory_pressure", "{line}");
    assert_eq!(
        line["signal"]["name"], "SIGTERM",
        "the stop began there: {line}"
    );
    side_by_side("the same stop, no memory pressure", &line, &s);
    calm.barrier();
    assert!(
        calm.all(|l| l["type"] == "verdict" && l["pod"]["uid"] == pod.uid.as_str())
            .is_empty(),
        "no memory pressure, no eviction"
    );
    assert_eq!(
        calm.all(|l| l["type"] == "stopped" && l["process"]["pid"] == stubborn.pid)
            .len(),
        1,
        "one line per stop, not one per signal"
    );
    calm.finish();
    daemon.finish();
    let _ = fs::remove_file(config);
}

/// Whether a `stopped` line says its stop fits both an eviction by a
/// kubelet that gives evicted pods their full grace period
/// (kubernetes#115819) and a deletion, never that it is not an eviction.
fn says_eviction_or_deletion(line: &Json) -> bool {
    let summary = line["summary"].as_str().unwrap_or_default();
    line["reason"] == "eviction_or_deletion"
        && summary.contains("kubernetes#115819")
        && summary.contains("a deletion or rollout")
        && !summary.contains("not an eviction")
}

/// A deletion under pressure, with no kubelet log to read: the pod's own
/// grace period (12 s here; 30 s by default) outlives a hard eviction's, and a kubelet that
/// gives evicted pods their full grace period (kubernetes#115819) stops
/// them the same way: a `stopped` line that says both, never an eviction.
#[test]
fn a_deletion_under_pressure_is_a_stop() {
    let config = pressured_kubelet_config();
    let daemon = daemon(&[
        "--kubelet-config",
        &config.display().to_string(),
        "--kubelet-log",
        "none",
    ]);
    let mut pod = CriPod::builder(Qos::Burstable)
        .container("stubborn", &["sleep", "3600"], None)
        .run();
    let pid = pod.container("stubborn").pid;
    // The line comes once the stop has ended and the pod is empty.
    pod.stop(12);
    let line = daemon.wait_for("the stopped line", |l| {
        l["type"] == "stopped" && l["process"]["pid"] == pid
    });
    assert!(says_eviction_or_deletion(&line), "{line}");
    assert!(
        line["summary"]
            .as_str()
            .is_some_and(|s| s.contains("--kubelet-log")),
        "what would tell them apart: {line}"
    );
    assert_eq!(line["signal"]["name"], "SIGTERM", "{line}");
    let s = pod.container("stubborn").status();
    assert_eq!((s.state, s.exit_code), (State::Exited, 137), "{s:?}");
    side_by_side("deletion under pressure (grace 12 s)", &line, &s);
    daemon.barrier();
    assert!(
        daemon
            .all(|l| l["type"] == "verdict" && l["pod"]["uid"] == pod.uid.as_str())
            .is_empty(),
        "a deletion is no eviction"
    );
    daemon.finish();
    let _ = fs::remove_file(config);
}

/// One container stopped the eviction's way while the rest of its pod runs
/// (a restart after a failed liveness probe): not an eviction.
#[test]
fn one_container_stopped_while_its_pod_runs_is_not_an_eviction() {
    let config = pressured_kubelet_config();
    let daemon = daemon(&["--kubelet-config", &config.display().to_string()]);
    let pod = CriPod::builder(Qos::Burstable)
        .container("restarted", &["sleep", "3600"], None)
        .container("sidecar", &["sleep", "3600"], None)
        .run();
    let c = pod.container("restarted");
    c.stop(2);
    let line = daemon.wait_for("the stopped line", |l| {
        l["type"] == "stopped" && l["process"]["pid"] == c.pid
    });
    assert_eq!(line["reason"], "pod_not_stopped", "{line}");
    assert_eq!(pod.container("sidecar").status().state, State::Running);
    side_by_side(
        "one container stopped (grace 2 s), pod runs",
        &line,
        &c.status(),
    );
    daemon.barrier();
    assert!(
        daemon
            .all(|l| l["type"] == "verdict" && l["pod"]["uid"] == pod.uid.as_str())
            .is_empty(),
        "no eviction"
    );
    daemon.finish();
    let _ = fs::remove_file(config);
}

/// A soft eviction: memory.available under `evictionSoft` only (the hard
/// threshold is the default 100Mi), so the kubelet stops the pod with
/// `evictionMaxPodGracePeriod` (here 5 s): an eviction with that longer
/// grace, never one past it.
#[test]
fn a_soft_eviction_has_the_configured_grace_period() {
    let config = kubelet_config(|total_kib| {
        format!("evictionSoft:\n  memory.available: \"{total_kib}Ki\"\nevictionSoftGracePeriod:\n  memory.available: \"30s\"\nevictionMaxPodGracePeriod: 5\n")
    });
    let daemon = daemon(&["--kubelet-config", &config.display().to_string()]);
    let mut pod = CriPod::builder(Qos::Burstable)
        .container("stubborn", &["sleep", "3600"], None)
        .run();
    pod.stop(5);
    let c = pod.container("stubborn");
    let s = c.wait_exited(DEADLINE);
    assert_eq!((s.exit_code, s.reason.as_str()), (137, "Error"), "{s:?}");
    let v = verdict_of(&daemon, c.pid);
    assert_eq!(v["kind"], "eviction", "{v}");
    assert_eq!(v["evidence"]["eviction_threshold"], "soft", "{v}");
    let grace = v["evidence"]["grace_s"].as_f64().expect("grace_s");
    assert!((4.5..7.0).contains(&grace), "the 5 s grace period: {v}");
    assert!(
        v["node_memory"]["eviction_threshold_source"]
            .as_str()
            .is_some_and(|s| s.contains("evictionSoft")),
        "{v}"
    );
    side_by_side("soft eviction (grace 5 s)", &v, &s);

    // The same node, a pod deleted with 12 s: past the soft grace,
    // and no kubelet log names it.
    let mut deleted = CriPod::builder(Qos::Burstable)
        .container("stubborn", &["sleep", "3600"], None)
        .run();
    let pid = deleted.container("stubborn").pid;
    deleted.stop(12);
    let line = daemon.wait_for("the stopped line", |l| {
        l["type"] == "stopped" && l["process"]["pid"] == pid
    });
    assert!(says_eviction_or_deletion(&line), "{line}");
    daemon.barrier();
    assert!(
        daemon
            .all(|l| l["type"] == "verdict" && l["pod"]["uid"] == deleted.uid.as_str())
            .is_empty(),
        "{line}"
    );
    daemon.finish();
    let _ = fs::remove_file(config);
}

/// Where the kubelet's log is readable, its eviction manager's line for the
/// pod is what the eviction rests on (written here as the kubelet writes
/// it once its kill returned: the kubelet itself does not run here).
#[test]
fn the_kubelets_own_log_confirms_an_eviction() {
    let config = pressured_kubelet_config();
    let log = std::env::temp_dir().join(format!("kubelet-{}.log", unique_uid()));
    fs::write(
        &log,
        "I1128 01:00:00.000000    2480 kubelet.go:2400] \"SyncLoop ADD\"\n",
    )
    .expect("kubelet log");
    let daemon = daemon(&[
        "--kubelet-config",
        &config.display().to_string(),
        "--kubelet-log",
        &log.display().to_string(),
    ]);
    let mut pod = CriPod::builder(Qos::Burstable)
        .namespace("shop")
        .name("cache-1")
        .container("stubborn", &["sleep", "3600"], None)
        .run();
    pod.stop(2);
    let mut text = fs::read_to_string(&log).expect("kubelet log");
    text.push_str("I1128 01:00:05.445172    2480 eviction_manager.go:595] \"Eviction manager: pod is evicted successfully\" pod=\"shop/cache-1\"\n");
    fs::write(&log, text).expect("kubelet log");
    let c = pod.container("stubborn");
    let v = verdict_of(&daemon, c.pid);
    assert_eq!(v["kind"], "eviction", "{v}");
    assert_eq!(v["evidence"]["basis"], "kubelet_log", "{v}");
    assert!(v["evidence"]["grace_s"].as_f64().is_some(), "{v}");
    side_by_side("hard eviction, the kubelet's log read", &v, &c.status());
    daemon.finish();
    let _ = fs::remove_file(config);
    let _ = fs::remove_file(log);
}

/// The kubelet's line for the pod, as its eviction manager writes it once
/// its kill returned.
fn kubelet_logs_eviction(log: &std::path::Path, pod: &CriPod) {
    let mut text = fs::read_to_string(log).expect("kubelet log");
    text.push_str(&format!(
        "I1128 01:00:35.445172    2480 eviction_manager.go:595] \"Eviction manager: pod is evicted successfully\" pod=\"{}/{}\"\n",
        pod.namespace, pod.name
    ));
    fs::write(log, text).expect("kubelet log");
}

/// A kubelet of the kubernetes#115819 era (and #124405) evicts a pod with
/// its full grace period (a pod's own, 12 s here): the runtime's calls are a deletion's, so
/// the kubelet's own line decides. With it, an eviction that keeps the
/// grace it saw; a pod stopped alike beside it that the log does not name
/// is a stop that says both, and that the log was read.
#[test]
fn a_long_grace_eviction_rests_on_the_kubelets_log() {
    let config = pressured_kubelet_config();
    let log = std::env::temp_dir().join(format!("kubelet-{}.log", unique_uid()));
    fs::write(
        &log,
        "I1128 01:00:00.000000    2480 kubelet.go:2400] \"SyncLoop ADD\"\n",
    )
    .expect("kubelet log");
    let daemon = daemon(&[
        "--kubelet-config",
        &config.display().to_string(),
        "--kubelet-log",
        &log.display().to_string(),
    ]);
    let mut evicted = CriPod::builder(Qos::Burstable)
        .container("stubborn", &["sleep", "3600"], None)
        .run();
    let mut deleted = CriPod::builder(Qos::Burstable)
        .container("stubborn", &["sleep", "3600"], None)
        .run();
    std::thread::scope(|s| {
        // 12 s: three times an eviction's 4 s window, and a shorter wait
        // than a pod's default 30 s in the emulated VM.
        let other = s.spawn(|| deleted.stop(12));
        evicted.stop(12);
        kubelet_logs_eviction(&log, &evicted);
        other.join().expect("the other stop");
    });

    let c = evicted.container("stubborn");
    let status = c.status();
    assert_eq!(
        (status.state, status.exit_code, status.reason.as_str()),
        (State::Exited, 137, "Error"),
        "{status:?}"
    );
    let v = verdict_of(&daemon, c.pid);
    assert_eq!(
        (v["verdict"].as_str(), v["kind"].as_str()),
        (Some("node_pressure"), Some("eviction")),
        "{v}"
    );
    assert_names(&v, &evicted, c);
    assert_eq!(v["evidence"]["basis"], "kubelet_log", "{v}");
    assert_eq!(v["evidence"]["eviction_threshold"], "hard", "{v}");
    let grace = v["evidence"]["grace_s"].as_f64().expect("grace_s");
    assert!((11.0..15.0).contains(&grace), "the pod's 12 s: {v}");
    assert!(
        v["summary"]
            .as_str()
            .is_some_and(|s| s.contains("kubernetes#115819")),
        "{v}"
    );
    side_by_side(
        "eviction with the pod's grace (12 s), the kubelet's log read",
        &v,
        &status,
    );

    let c = deleted.container("stubborn");
    let status = c.status();
    assert_eq!(
        (status.state, status.exit_code),
        (State::Exited, 137),
        "{status:?}"
    );
    let line = daemon.wait_for("the stopped line", |l| {
        l["type"] == "stopped" && l["process"]["pid"] == c.pid
    });
    assert!(says_eviction_or_deletion(&line), "{line}");
    assert!(
        line["summary"].as_str().is_some_and(
            |s| s.contains("the kubelet's log, which tells them apart, named no eviction")
        ),
        "{line}"
    );
    side_by_side(
        "the same stop (12 s), the kubelet's log read, no line",
        &line,
        &status,
    );
    daemon.barrier();
    assert!(
        daemon
            .all(|l| l["type"] == "verdict" && l["pod"]["uid"] == deleted.uid.as_str())
            .is_empty(),
        "the log did not name it"
    );
    assert_eq!(
        daemon
            .all(|l| l["type"] == "stopped"
                && l["process"]["pid"] == evicted.container("stubborn").pid)
            .len(),
        0,
        "the eviction has its verdict, no stop line"
    );
    daemon.finish();
    let _ = fs::remove_file(config);
    let _ = fs::remove_file(log);
}

/// Under memory pressure, signals that do not look like the kubelet's
/// eviction are `stopped` lines with the reason: a process of the pod
/// killing another one (a supervisor reaping a worker), an operator's kill
/// from a host shell, and the runtime's SIGKILL with no grace period.
#[test]
fn signals_under_pressure_that_are_not_the_kubelets_eviction_are_stops() {
    let config = pressured_kubelet_config();
    let daemon = daemon(&["--kubelet-config", &config.display().to_string()]);
    let pod = CriPod::builder(Qos::Burstable)
        .container(
            "supervisor",
            &[
                "sh",
                "-c",
                "tail -f /dev/null & w=$!; sleep 1; kill -KILL $w; exec sleep 3600",
            ],
            None,
        )
        .container("operated", &["sleep", "3600"], None)
        .container("abrupt", &["sleep", "3600"], None)
        .run();

    let s = daemon.wait_for("the reaped worker", |l| {
        l["type"] == "stopped"
            && l["pod"]["uid"] == pod.uid.as_str()
            && l["process"]["comm"] == "tail"
    });
    assert_eq!(s["reason"], "sender_not_runtime", "{s}");
    assert_eq!(s["signal"]["sender"]["comm"], "sh", "{s}");
    let supervisor = pod.container("supervisor");
    side_by_side(
        "a process of the pod kills another",
        &s,
        &supervisor.status(),
    );

    let operated = pod.container("operated");
    let pid = rustix::process::Pid::from_raw(operated.pid as i32).expect("init pid");
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("kill");
    let status = operated.wait_exited(DEADLINE);
    let s = daemon.wait_for("the operator's kill", |l| {
        l["type"] == "stopped" && l["process"]["pid"] == operated.pid
    });
    assert_eq!(s["reason"], "sender_not_runtime", "{s}");
    side_by_side("an operator's kill from a host shell", &s, &status);

    let abrupt = pod.container("abrupt");
    abrupt.stop(0);
    let status = abrupt.wait_exited(DEADLINE);
    let s = daemon.wait_for("the abrupt stop", |l| {
        l["type"] == "stopped" && l["process"]["pid"] == abrupt.pid
    });
    assert_eq!(s["reason"], "sigkill_without_sigterm", "{s}");
    side_by_side("StopContainer(0): SIGKILL, no grace", &s, &status);

    daemon.barrier();
    assert!(
        daemon
            .all(|l| l["type"] == "verdict" && l["pod"]["uid"] == pod.uid.as_str())
            .is_empty(),
        "none of these is an eviction"
    );
    daemon.finish();
    let _ = fs::remove_file(config);
}
