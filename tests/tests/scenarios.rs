//! What only runc straight can make: processes that leave their pod's
//! cgroup (escapes), pod cgroups the kubelet leaves behind (leaks) and
//! container churn, on real containers (busybox rootfs, their own pid and
//! mount namespaces, kubelet-shaped cgroups). Every verdict a runtime can
//! make happen is in cri_verdicts.rs, on pods made through containerd's
//! CRI. Each scenario asserts the JSON lines a user would read. Needs root
//! (cargo xtask test).

use oomtrace_e2e::{
    container::{host_cgroupfs_mount, Container, Exit, Pod, Qos},
    unique_uid, wait_until, Cgroup, Daemon, DEADLINE,
};

const LIMIT: u64 = 64 << 20;

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
    let procs = service.procs().display().to_string();
    let (pod, c) = sleeper_seeing_the_host_cgroupfs(host_pid);

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

/// A burstable pod's sleeping container with the host's cgroupfs
/// bind-mounted at its own path (as the Spin pods had it: a cgroup's
/// `cgroup.procs` has the same path inside), in the host's pid namespace
/// when `host_pid`.
fn sleeper_seeing_the_host_cgroupfs(host_pid: bool) -> (Pod, Container) {
    let pod = Pod::new(Qos::Burstable);
    let mut spec = pod
        .container(&["sleep", "3600"])
        .memory_limit(LIMIT)
        .mount(host_cgroupfs_mount());
    if host_pid {
        spec = spec.host_pid();
    }
    let c = spec.start();
    (pod, c)
}

/// A process that escapes and exits at once: its move's record is read at
/// the daemon's next wake-up, when /proc no longer has the process, so the
/// pod is found from what the kernel read at the move (the tp_btf attach
/// program's task fields), in both pid-namespace cases.
#[test]
fn a_short_lived_escape_is_found_from_the_move_alone() {
    for host_pid in [false, true] {
        let daemon = Daemon::start(&[]);
        assert_eq!(
            daemon.hook("cgroup").as_deref(),
            Some("tp_btf"),
            "only the tp_btf attach program reads the moved task"
        );
        let service = Cgroup::create(&format!("system.slice/brief-{}.service", unique_uid()));
        let procs = service.procs().display().to_string();
        let (pod, c) = sleeper_seeing_the_host_cgroupfs(host_pid);
        let mut brief = c.exec(&["oomtrace-hog", "--join", &procs, "--mib", "1"]);
        assert_eq!(brief.wait(), Exit::Code(0), "joins, touches 1 MiB, exits");
        let found = daemon.wait_for("escape_detected of a process already gone", |l| {
            l["type"] == "finding"
                && l["finding"] == "escape_detected"
                && l["process"]["pid"] == brief.pid
        });
        assert_eq!(
            found["pod"]["uid"],
            pod.uid.as_str(),
            "hostPID {host_pid}: {found}"
        );
        assert_eq!(
            found["container"]["id"],
            c.id.as_str(),
            "hostPID {host_pid}: {found}"
        );
        assert_eq!(
            found["cgroup"],
            service.rel.as_str(),
            "hostPID {host_pid}: {found}"
        );
        drop(c);
        daemon.finish();
    }
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

/// kubernetes#140716 with the systemd cgroup driver's names (containerd's
/// systemd driver needs systemd as PID 1, which these machines do not run:
/// the cgroups are named by hand, runc makes them): a child OOM-killed, then
/// the runtime's SIGTERM ends the init, which the runtime will report
/// `OOMKilled`; oomtrace says it was not.
#[test]
fn a_misreport_under_the_systemd_drivers_names() {
    let daemon = Daemon::start(&[]);
    let node = oomtrace_e2e::container::Node::new();
    let pod = Pod::new(Qos::Burstable);
    let mut spec = pod
        .container(&[
            "sh",
            "-c",
            "trap 'exit 143' TERM; oomtrace-hog --mib 256; while :; do sleep 1 & wait $!; done",
        ])
        .memory_limit(LIMIT);
    spec.cgroups_path = format!(
        "{}/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{}.scope",
        node.prefix,
        pod.uid.replace('-', "_"),
        spec.id
    );
    let c = spec.start();
    let kill = daemon.wait_for("the child's verdict", |l| {
        l["type"] == "verdict" && l["container"]["id"] == c.id.as_str()
    });
    assert_eq!(kill["victim"]["comm"], "oomtrace-hog", "{kill}");
    assert_eq!(c.status(), "running", "the init lives on");
    c.kill("TERM");
    // runc passes exit 143 on as 128 + 15.
    assert_eq!(c.wait_exit(DEADLINE), Some(Exit::Signal(15)));
    c.delete();
    let f = daemon.wait_for("the misreport finding", |l| {
        l["type"] == "finding" && l["finding"] == "oomkilled_misreport"
    });
    assert_eq!(f["container"]["id"], c.id.as_str(), "{f}");
    assert_eq!(f["pod"]["uid"], pod.uid.as_str(), "{f}");
    assert_eq!(f["cgroup"], c.cgroups_path.as_str(), "{f}");
    assert_eq!(f["exit"]["signal"], "SIGTERM", "{f}");
    assert_eq!(f["earlier_kills"][0]["incident"], kill["incident"], "{f}");
    daemon.finish();
}
