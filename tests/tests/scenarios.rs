//! Every kill explained, on real containers (runc, busybox rootfs, their own
//! pid and mount namespaces, kubelet-shaped cgroups). Each scenario asserts
//! the JSON lines a user would read. Needs root (cargo xtask test).

use std::{fs, path::Path};

use oomtrace_e2e::{
    container::{host_cgroupfs_mount, Exit, Node, Pod, Qos},
    memory_root, unique_uid, wait_until, Cgroup, Daemon, Json, DEADLINE,
};

const LIMIT: u64 = 64 << 20;

fn verdicts_for_pod(daemon: &Daemon, uid: &str) -> Vec<Json> {
    daemon.all(|l| l["type"] == "verdict" && l["pod"]["uid"] == uid)
}

#[test]
fn container_init_over_its_limit_is_reported_by_the_kubelet() {
    let pod = Pod::new(Qos::Burstable);
    let spec = pod
        .container(&["oomtrace-hog", "--mib", "256"])
        .memory_limit(LIMIT);
    // The kubelet's log directories name the pod and the container.
    let logs = std::env::temp_dir().join(format!("oomtrace-logs-{}", unique_uid()));
    let (pods_dir, containers_dir) = (logs.join("pods"), logs.join("containers"));
    fs::create_dir_all(pods_dir.join(format!("shop_checkout-7d9f_{}", pod.uid)))
        .expect("pod log dir");
    fs::create_dir_all(&containers_dir).expect("containers log dir");
    let link = containers_dir.join(format!("checkout-7d9f_shop_worker-{}.log", spec.id));
    std::os::unix::fs::symlink("/dev/null", link).expect("container log link");
    let daemon = Daemon::start(&[
        "--pods-log-dir",
        &pods_dir.display().to_string(),
        "--containers-log-dir",
        &containers_dir.display().to_string(),
    ]);
    let c = spec.start();
    assert_eq!(c.wait_exit(DEADLINE), Some(Exit::Signal(9)));
    let v = daemon.wait_for("the init's verdict", |l| {
        l["type"] == "verdict" && l["victim"]["pid"] == c.init_pid
    });
    assert_eq!(v["verdict"], "pod_limit", "{v}");
    assert_eq!(v["source"], "bpf", "{v}");
    assert_eq!(v["pod"]["uid"], pod.uid.as_str(), "{v}");
    assert_eq!(v["pod"]["qos"], "Burstable", "{v}");
    assert_eq!(v["pod"]["namespace"], "shop", "{v}");
    assert_eq!(v["pod"]["name"], "checkout-7d9f", "{v}");
    assert_eq!(v["container"]["id"], c.id.as_str(), "{v}");
    assert_eq!(v["container"]["name"], "worker", "{v}");
    assert_eq!(v["victim"]["ns_pid"], 1, "the container's init: {v}");
    assert_eq!(v["kubelet_reports"], true, "{v}");
    assert_eq!(v["limit"]["cgroup"], c.cgroups_path.as_str(), "{v}");
    assert_eq!(v["limit"]["limit_bytes"], LIMIT, "{v}");
    assert_eq!(
        v["memory"]["cgroup"],
        c.cgroups_path.as_str(),
        "breakdown of the victim's cgroup: {v}"
    );
    assert!(v["memory"]["read_delay_ms"].as_f64().is_some(), "{v}");
    assert!(
        v["node_memory"]["capacity_bytes"]
            .as_u64()
            .is_some_and(|b| b > 0),
        "{v}"
    );
    assert_ne!(v["evidence"]["pid_ns"], Json::Null, "{v}");
    let summary = v["summary"].as_str().unwrap_or_default();
    assert!(
        summary.contains("OOMKilled") && summary.contains("shop/checkout-7d9f"),
        "{v}"
    );
    daemon.finish();
    let _ = fs::remove_dir_all(logs);
}

#[test]
fn child_process_kill_is_one_the_kubelet_hides() {
    let daemon = Daemon::start(&[]);
    let pod = Pod::new(Qos::BestEffort);
    let c = pod
        .container(&["sleep", "3600"])
        .memory_limit(LIMIT)
        .start();
    let mut child = c.exec(&["oomtrace-hog", "--mib", "256"]);
    assert_eq!(child.wait(), Exit::Signal(9));
    let v = daemon.wait_for("the child's verdict", |l| {
        l["type"] == "verdict" && l["victim"]["pid"] == child.pid
    });
    assert_eq!(v["verdict"], "pod_limit", "{v}");
    assert_eq!(v["container"]["id"], c.id.as_str(), "{v}");
    assert_eq!(v["pod"]["qos"], "BestEffort", "{v}");
    assert_ne!(v["victim"]["ns_pid"], 1, "{v}");
    assert_eq!(
        v["kubelet_reports"], false,
        "the kubelet will show this pod healthy: {v}"
    );
    assert!(
        wait_until(DEADLINE, || c.status() == "running"),
        "init survives"
    );
    daemon.finish();
}

#[test]
fn pods_over_node_allocatable_get_allocatable_oom() {
    let daemon = Daemon::start(&[]);
    let node = Node::new();
    node.set_allocatable(96 << 20);
    let big = node.pod(Qos::Burstable);
    let small = node.pod(Qos::BestEffort);
    // Each pod fits its own (absent) limit; together they exceed kubepods.
    let a = big
        .container(&["oomtrace-hog", "--mib", "64", "--sleep", "3600"])
        .start();
    assert!(
        wait_until(DEADLINE, || fs::read_to_string(
            memory_root()
                .0
                .join(a.cgroups_path.trim_start_matches('/'))
                .join("memory.usage_in_bytes")
        )
        .or_else(|_| fs::read_to_string(
            memory_root()
                .0
                .join(a.cgroups_path.trim_start_matches('/'))
                .join("memory.current")
        ))
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .is_some_and(|u| u >= 60 << 20)),
        "the first pod never held its 64 MiB"
    );
    let b = small.container(&["oomtrace-hog", "--mib", "256"]).start();
    assert_eq!(b.wait_exit(DEADLINE), Some(Exit::Signal(9)));
    let uids = [big.uid.as_str(), small.uid.as_str()];
    let v = daemon.wait_for("an allocatable verdict", |l| {
        l["type"] == "verdict" && uids.iter().any(|u| l["pod"]["uid"] == *u)
    });
    assert_eq!(v["verdict"], "node_pressure", "{v}");
    assert_eq!(v["kind"], "allocatable_oom", "{v}");
    assert_eq!(
        v["limit"]["cgroup"],
        format!("{}/kubepods", node.prefix),
        "{v}"
    );
    assert_eq!(v["limit"]["limit_bytes"], 96u64 << 20, "{v}");
    daemon.barrier();
    for u in uids {
        for v in verdicts_for_pod(&daemon, u) {
            assert_eq!(
                v["kind"], "allocatable_oom",
                "every kill here is the node's allocatable: {v}"
            );
        }
    }
    drop((a, b));
    daemon.finish();
}

/// A kubelet config whose hard threshold sits above this machine's
/// memory.available: the node counts as under pressure without exhausting it.
fn pressured_kubelet_config(dir: &Path) -> std::path::PathBuf {
    let meminfo = fs::read_to_string("/proc/meminfo").expect("meminfo");
    let total_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("MemTotal");
    let path = dir.join(format!("kubelet-{}.yaml", unique_uid()));
    fs::write(
        &path,
        format!(
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nevictionHard:\n  memory.available: \"{total_kib}Ki\"\n"
        ),
    )
    .expect("writing the kubelet config");
    path
}

/// The stopped line about `pid` in pod `uid`.
fn stopped_line(daemon: &Daemon, what: &str, uid: &str, pid: u32) -> Json {
    daemon.wait_for(what, |l| {
        l["type"] == "stopped" && l["pod"]["uid"] == uid && l["process"]["pid"] == pid
    })
}

#[test]
fn userspace_sigkill_under_pressure_is_an_eviction_and_without_is_not() {
    let config = pressured_kubelet_config(&std::env::temp_dir());
    let pressured = Daemon::start(&["--kubelet-config", &config.display().to_string()]);
    let calm = Daemon::start(&["--kubelet-config", "/nonexistent/kubelet-config.yaml"]);
    let pod = Pod::new(Qos::Burstable);
    // sleep as its pid namespace's init has no SIGTERM handler: it ignores
    // SIGTERM, and the runtime's SIGKILL ends it.
    let c = pod.container(&["sleep", "3600"]).start();
    // The runtime stops the container the way the kubelet's hard eviction
    // does: SIGTERM, then SIGKILL when the grace period (1-2 s) runs out.
    c.kill("TERM");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    c.kill("KILL");
    assert_eq!(c.wait_exit(DEADLINE), Some(Exit::Signal(9)));

    let v = pressured.wait_for("the eviction verdict", |l| {
        l["type"] == "verdict" && l["pod"]["uid"] == pod.uid.as_str()
    });
    assert_eq!(v["verdict"], "node_pressure", "{v}");
    assert_eq!(v["kind"], "eviction", "{v}");
    assert_eq!(v["victim"]["pid"], c.init_pid, "{v}");
    assert_eq!(v["container"]["id"], c.id.as_str(), "{v}");
    assert_eq!(v["signal"]["name"], "SIGKILL", "{v}");
    assert_eq!(
        v["evidence"]["basis"], "runtime_sigterm_then_sigkill",
        "{v}"
    );
    let grace = v["evidence"]["grace_s"].as_f64().expect("grace_s");
    assert!((1.0..3.0).contains(&grace), "the 1.5 s grace period: {v}");
    assert!(
        v["signal"]["sender"]["comm"]
            .as_str()
            .is_some_and(|s| s.starts_with("runc")),
        "the runtime sent it: {v}"
    );
    let avail = v["node_memory"]["memory_available_bytes"]
        .as_u64()
        .expect("memory.available");
    let threshold = v["node_memory"]["eviction_threshold_bytes"]
        .as_u64()
        .expect("threshold");
    assert!(avail < threshold, "{v}");
    assert!(
        v["node_memory"]["eviction_threshold_source"]
            .as_str()
            .is_some_and(|s| s.contains("evictionHard")),
        "{v}"
    );

    let s = stopped_line(&calm, "a stopped line", &pod.uid, c.init_pid);
    assert_eq!(s["signal"]["name"], "SIGTERM", "the stop began there: {s}");
    assert_eq!(s["reason"], "no_memory_pressure", "{s}");
    calm.barrier();
    assert!(
        verdicts_for_pod(&calm, &pod.uid).is_empty(),
        "no memory pressure, no OOM verdict"
    );
    assert_eq!(
        calm.all(|l| l["type"] == "stopped" && l["pod"]["uid"] == pod.uid.as_str())
            .len(),
        1,
        "one line per stop, not one per signal"
    );
    drop(c);
    // The pressured daemon last: its recording is the kept fixture.
    calm.finish();
    pressured.finish();
    let _ = fs::remove_file(config);
}

/// Under memory pressure, signals that do not look like the kubelet's
/// eviction (issue: a supervisor reaping its worker and an operator's
/// `kill` both came out as evictions) are `stopped` lines with the reason.
#[test]
fn signals_under_pressure_that_are_not_the_kubelets_eviction_are_stops() {
    let config = pressured_kubelet_config(&std::env::temp_dir());
    let daemon = Daemon::start(&["--kubelet-config", &config.display().to_string()]);
    let pod = Pod::new(Qos::Burstable);

    // A process in the pod kills another one (a supervisor reaping a worker).
    let supervisor = pod.container(&["sleep", "3600"]).start();
    let worker = supervisor.exec(&["tail", "-f", "/dev/null"]);
    let _reaper = supervisor.exec(&["killall", "-KILL", "tail"]);
    let s = stopped_line(&daemon, "the reaped worker", &pod.uid, worker.pid);
    assert_eq!(s["reason"], "sender_not_runtime", "{s}");
    assert_eq!(s["signal"]["sender"]["comm"], "killall", "{s}");

    // An operator's kill from a host shell (this test process).
    let operator = pod.container(&["sleep", "3600"]).start();
    let pid = rustix::process::Pid::from_raw(operator.init_pid as i32).expect("init pid");
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("kill");
    assert_eq!(operator.wait_exit(DEADLINE), Some(Exit::Signal(9)));
    let s = stopped_line(&daemon, "the operator's kill", &pod.uid, operator.init_pid);
    assert_eq!(s["reason"], "sender_not_runtime", "{s}");

    // The runtime's SIGKILL with no grace period: not how the kubelet stops.
    let abrupt = pod.container(&["sleep", "3600"]).start();
    abrupt.kill("KILL");
    assert_eq!(abrupt.wait_exit(DEADLINE), Some(Exit::Signal(9)));
    let s = stopped_line(&daemon, "the abrupt stop", &pod.uid, abrupt.init_pid);
    assert_eq!(s["reason"], "sigkill_without_sigterm", "{s}");

    // A deletion's grace period: the process outlives a hard eviction's.
    let deleted = pod.container(&["sleep", "3600"]).start();
    deleted.kill("TERM");
    let s = stopped_line(&daemon, "the slow stop", &pod.uid, deleted.init_pid);
    assert_eq!(s["reason"], "grace_longer_than_hard_eviction", "{s}");
    assert_eq!(s["signal"]["name"], "SIGTERM", "{s}");
    deleted.kill("KILL");
    assert_eq!(deleted.wait_exit(DEADLINE), Some(Exit::Signal(9)));

    daemon.barrier();
    assert!(
        verdicts_for_pod(&daemon, &pod.uid).is_empty(),
        "none of these is an eviction: {:?}",
        verdicts_for_pod(&daemon, &pod.uid)
    );
    drop((supervisor, operator, abrupt, deleted));
    daemon.finish();
    let _ = fs::remove_file(config);
}

#[test]
fn process_escaping_its_pod_is_found_at_the_move_and_at_the_kill() {
    escape_to_a_service(false);
}

/// A hostPID pod (a node agent, a debug pod) shares the host's pid
/// namespace, so its processes cannot be tied to it by namespace: oomtrace
/// follows them by pid from the moment they join the container.
#[test]
fn host_pid_pod_process_escaping_is_found_by_its_pid() {
    escape_to_a_service(true);
}

/// A container process writes itself into a system.slice service's
/// cgroup through the host's cgroupfs, bind-mounted into the container as
/// the Spin pods had it, and grows past the service's limit: found at the
/// move and at the kill, named by its pod.
fn escape_to_a_service(host_pid: bool) {
    let daemon = Daemon::start(&[]);
    let service = Cgroup::create(&format!("system.slice/escape-{}.service", unique_uid()));
    service.set_limit(128 << 20);
    let (memory, _) = memory_root();
    let procs = memory
        .join(service.rel.trim_start_matches('/'))
        .join("cgroup.procs")
        .display()
        .to_string();
    let pod = Pod::new(Qos::Burstable);
    let mut spec = pod
        .container(&["sleep", "3600"])
        .memory_limit(LIMIT)
        .mount(host_cgroupfs_mount());
    if host_pid {
        spec = spec.host_pid();
    }
    let c = spec.start();

    let mut hog = c.exec(&["oomtrace-hog", "--join", &procs, "--mib", "256"]);
    let found = daemon.wait_for("escape_detected", |l| {
        l["type"] == "finding"
            && l["finding"] == "escape_detected"
            && l["process"]["pid"] == hog.pid
    });
    assert_eq!(found["pod"]["uid"], pod.uid.as_str(), "{found}");
    assert_eq!(found["container"]["id"], c.id.as_str(), "{found}");
    assert_eq!(found["cgroup"], service.rel.as_str(), "{found}");
    assert_eq!(found["pod_cgroup"], c.cgroups_path.as_str(), "{found}");

    assert_eq!(
        hog.wait(),
        Exit::Signal(9),
        "the service's limit ends it, not the pod's"
    );
    let v = daemon.wait_for("the escaped_process verdict", |l| {
        l["type"] == "verdict" && l["victim"]["pid"] == hog.pid
    });
    assert_eq!(v["verdict"], "escaped_process", "{v}");
    assert_eq!(v["pod"]["uid"], pod.uid.as_str(), "{v}");
    assert_eq!(v["container"]["id"], c.id.as_str(), "{v}");
    assert_eq!(v["victim"]["cgroup"], service.rel.as_str(), "{v}");
    assert_eq!(v["limit"]["cgroup"], service.rel.as_str(), "{v}");
    assert_eq!(v["evidence"]["pod_cgroup"], c.cgroups_path.as_str(), "{v}");
    if host_pid {
        // In the host's pid namespace its pid says nothing about the container.
        assert!(v["kubelet_reports"].is_null(), "{v}");
    } else {
        assert_eq!(v["kubelet_reports"], false, "{v}");
    }
    drop(c);
    daemon.finish();
}

#[test]
fn pod_cgroup_left_behind_is_a_leak_after_the_grace_period() {
    let daemon = Daemon::start(&["--leak-grace", "2s"]);
    let uid = unique_uid();
    let pod = Cgroup::create(&format!("kubepods/burstable/pod{uid}"));
    let f = daemon.wait_for("cgroup_leak", |l| {
        l["type"] == "finding" && l["finding"] == "cgroup_leak" && l["pod"]["uid"] == uid.as_str()
    });
    assert_eq!(f["cgroup"], pod.rel.as_str(), "{f}");
    assert!(f["empty_for_s"].as_f64().is_some_and(|s| s >= 2.0), "{f}");
    // A pod with a live process is no leak.
    let busy_uid = unique_uid();
    let busy = Cgroup::create(&format!("kubepods/besteffort/pod{busy_uid}"));
    let mut sleeper = std::process::Command::new(oomtrace_e2e::bin("oomtrace-hog"))
        .args([
            "--join",
            &busy.procs().display().to_string(),
            "--mib",
            "1",
            "--sleep",
            "3600",
        ])
        .spawn()
        .expect("a process in the busy pod");
    assert!(
        wait_until(DEADLINE, || !busy.pids().is_empty()),
        "the busy pod's process never joined"
    );
    // A leak found later proves the busy pod was looked at meanwhile.
    let later_uid = unique_uid();
    let _later = Cgroup::create(&format!("kubepods/burstable/pod{later_uid}"));
    daemon.wait_for("a later leak", |l| {
        l["type"] == "finding" && l["pod"]["uid"] == later_uid.as_str()
    });
    let busy_leaks = daemon.all(|l| l["type"] == "finding" && l["pod"]["uid"] == busy_uid.as_str());
    assert!(
        busy_leaks.is_empty(),
        "a populated pod is not a leak: {busy_leaks:?}"
    );
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    daemon.finish();
}

#[test]
fn container_churn_gives_no_verdict() {
    let daemon = Daemon::start(&[]);
    let mut uids = Vec::new();
    for _ in 0..20 {
        let pod = Pod::new(Qos::Burstable);
        for _ in 0..10 {
            let c = pod
                .container(&["sleep", "3600"])
                .memory_limit(LIMIT)
                .start();
            c.kill("KILL");
            assert_eq!(c.wait_exit(DEADLINE), Some(Exit::Signal(9)));
        }
        uids.push(pod.uid.clone());
    }
    daemon.barrier();
    let about_churn = daemon
        .all(|l| l["type"] == "verdict" && uids.iter().any(|u| l["pod"]["uid"] == u.as_str()));
    assert!(
        about_churn.is_empty(),
        "200 containers started and stopped, no memory trouble: {about_churn:?}"
    );
    daemon.finish();
}
