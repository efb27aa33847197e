//! A systemd as a container's init (seed 001, issue 22): the real systemd
//! of the host's `/usr` boots in a runc container of a kubelet-shaped pod
//! and makes a cgroup per unit inside the container's cgroup. A unit's
//! process killed at the pod's limit is the container's kill; the unit's
//! end is not the container's; the container's own end is judged as for
//! any container. Needs root (cargo xtask test).

use oomtrace_e2e::{
    container::{memory_cgroup_of, Exit, Pod, Qos},
    memory_root, systemd, wait_until, Daemon, DEADLINE,
};

/// The pod's limit: systemd, its journal and a shell fit in it with room
/// to spare; the hog's 512 MiB do not.
const POD_LIMIT: u64 = 128 << 20;

#[test]
fn a_unit_of_a_systemd_in_the_container_is_the_containers() {
    let daemon = Daemon::start(&[]);
    let pod = Pod::new(Qos::Burstable);
    pod.set_memory_limit(POD_LIMIT);
    let c = systemd::container(&pod).start();
    systemd::wait_booted(&c);
    let init_scope = format!("{}/init.scope", c.cgroups_path);
    assert_eq!(
        memory_cgroup_of(c.init_pid).as_deref(),
        Some(init_scope.as_str()),
        "systemd keeps itself in init.scope below the container's cgroup"
    );

    // A unit whose shell runs the hog past the pod's limit.
    let unit_cgroup = format!("{}/system.slice/oomtrace-hog.service", c.cgroups_path);
    let started = c
        .exec(&[
            "systemd-run",
            "--unit=oomtrace-hog",
            "sh",
            "-c",
            &format!("{} --mib 512; echo the hog ended: $?", systemd::HOG),
        ])
        .wait();
    assert_eq!(started, Exit::Code(0), "output:\n{}", c.output());

    let v = daemon.wait_for("the hog's verdict", |l| {
        l["type"] == "verdict" && l["pod"]["uid"] == pod.uid.as_str()
    });
    eprintln!("oomtrace: {v}");
    assert_eq!(v["verdict"], "pod_limit", "{v}");
    assert_eq!(v["victim"]["comm"], "oomtrace-hog", "{v}");
    assert_eq!(v["victim"]["cgroup"], unit_cgroup.as_str(), "{v}");
    assert_eq!(v["container"]["id"], c.id.as_str(), "{v}");
    assert_eq!(v["limit"]["cgroup"], pod.cgroup.as_str(), "{v}");
    assert_eq!(
        v["kubelet_reports"], false,
        "the container's init (systemd) lives: {v}"
    );

    // The unit's shell exits; systemd removes the unit's cgroup and runs on.
    let unit_dir = memory_root().0.join(unit_cgroup.trim_start_matches('/'));
    assert!(
        wait_until(DEADLINE, || !unit_dir.exists()),
        "{} outlived its unit",
        unit_dir.display()
    );
    assert_eq!(c.status(), "running");
    // systemd runs on. On cgroup v2 it sees the kernel's kill in the
    // unit's memory.events and fails the unit (OOMPolicy=stop, result
    // `oom-kill`): the system is then `degraded` by that unit alone; on v1
    // it sees nothing and the unit's shell ends it cleanly.
    let check = "state=$(systemctl is-system-running); \
        failed=$(systemctl list-units --failed --plain --no-legend | cut -d' ' -f1 | tr '\\n' ' '); \
        echo \"systemd: $state; failed units: $failed\"; \
        case \"$state\" in running) exit 0 ;; degraded) [ \"$failed\" = 'oomtrace-hog.service ' ] && exit 0 ;; esac; exit 1";
    assert_eq!(
        c.exec(&["sh", "-c", check]).wait(),
        Exit::Code(0),
        "systemd still runs, no unit failed but the hog's; output:\n{}",
        c.output()
    );
    // Every event so far is judged once a later kill's verdict is out.
    daemon.barrier();
    let about_pod = |l: &serde_json::Value| {
        l["pod"]["uid"] == pod.uid.as_str() || l["pod_cgroup"] == c.cgroups_path.as_str()
    };
    let ended = |l: &serde_json::Value| l["finding"] == "oomkilled_misreport";
    let early = daemon.all(|l| about_pod(l) && ended(l));
    assert!(
        early.is_empty(),
        "the unit's end is not the container's: {early:?}"
    );

    // The runtime stops the container after the grace period: SIGKILL to
    // systemd, the container's init, as for any container with a child
    // OOM-killed earlier: the runtime will say OOMKilled, oomtrace says not.
    c.kill("KILL");
    assert_eq!(c.wait_exit(DEADLINE), Some(Exit::Signal(9)));
    c.delete();
    let f = daemon.wait_for("the misreport at the container's end", |l| {
        l["type"] == "finding" && l["finding"] == "oomkilled_misreport" && about_pod(l)
    });
    eprintln!("oomtrace: {f}");
    assert_eq!(f["cgroup"], c.cgroups_path.as_str(), "{f}");
    assert_eq!(f["container"]["id"], c.id.as_str(), "{f}");
    assert_eq!(f["exit"]["signal"], "SIGKILL", "{f}");
    assert_eq!(f["process"]["pid"], c.init_pid, "{f}");
    assert_eq!(f["earlier_kills"][0]["incident"], v["incident"], "{f}");
    daemon.barrier();
    let verdicts = daemon.all(|l| about_pod(l) && l["type"] == "verdict");
    assert_eq!(verdicts.len(), 1, "one kill, one verdict: {verdicts:?}");
    let ends = daemon.all(|l| about_pod(l) && ended(l));
    assert_eq!(ends.len(), 1, "the container ended once: {ends:?}");
    // A near_oom warning may come before the kill (the sampler's timing):
    // the pod's is the only limit in the pod.
    for w in daemon.all(|l| about_pod(l) && l["finding"] == "near_oom") {
        assert_eq!(w["cgroup"], pod.cgroup.as_str(), "{w}");
    }
    let escapes =
        daemon.all(|l| l["verdict"] == "escaped_process" || l["finding"] == "escape_detected");
    assert!(escapes.is_empty(), "no escape: {escapes:?}");
    // The kernel's word on the kill, next to oomtrace's.
    if let Ok(out) = std::process::Command::new("dmesg").output() {
        let text = String::from_utf8_lossy(&out.stdout);
        let pid = v["victim"]["pid"].to_string();
        for l in text.lines().filter(|l| {
            (l.contains("oom-kill:") && l.contains(&pod.uid))
                || (l.contains("Killed process") && l.contains(&format!("process {pid} ")))
        }) {
            eprintln!("kernel: {l}");
        }
    }
    daemon.finish();
}
