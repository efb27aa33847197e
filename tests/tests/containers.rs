//! The real-container harness itself (tests/src/container.rs): runc
//! containers in kubelet-shaped cgroups, OOM-killed for real. No oomtrace
//! here: these prove the scenarios the verdict tests build on. Needs root
//! (cargo xtask test).

use std::{fs, time::Instant};

use oomtrace_e2e::{
    container::{
        cgroup2_nsdelegate, cgroup_mounts, host_cgroupfs_mount, memory_cgroup_of, oom_kill_count,
        Exit, Pod, Qos,
    },
    memory_root, nspid, unique_uid, wait_until, Cgroup, CgroupVersion, DEADLINE,
};

const LIMIT: u64 = 64 << 20;

fn ns(pid: u32, kind: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .map(|l| l.display().to_string())
        .unwrap_or_default()
}

fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().to_string())
        })
        .is_some_and(|rest| !rest.starts_with('Z') && !rest.starts_with('X'))
}

#[test]
fn container_runs_in_its_kubepods_cgroup_and_is_visible_from_the_host() {
    let pod = Pod::new(Qos::Burstable);
    let c = pod
        .container(&["sleep", "3600"])
        .memory_limit(LIMIT)
        .start();
    eprintln!("container start: {:?}", c.start_time);
    assert_eq!(c.status(), "running");
    assert!(c.cgroups_path.starts_with("/kubepods/burstable/pod"));
    assert!(c.cgroups_path.ends_with(&c.id) && c.id.len() == 64);

    // (e) init from the host: its pid, its cgroup in every hierarchy.
    assert_eq!(
        memory_cgroup_of(c.init_pid).as_deref(),
        Some(c.cgroups_path.as_str())
    );
    let cgroup = fs::read_to_string(format!("/proc/{}/cgroup", c.init_pid)).expect("cgroup");
    for line in cgroup.lines() {
        assert!(line.ends_with(&format!(":{}", c.cgroups_path)), "{cgroup}");
    }
    for mount in cgroup_mounts() {
        let dir = mount.join(c.cgroups_path.trim_start_matches('/'));
        assert!(dir.is_dir(), "{} is missing", dir.display());
    }
    assert_eq!(
        nspid(c.init_pid),
        vec![c.init_pid, 1],
        "init is pid 1 inside"
    );
    let me = std::process::id();
    for kind in ["pid", "mnt", "uts", "ipc"] {
        assert_ne!(ns(c.init_pid, kind), ns(me, kind), "{kind} namespace");
    }
    assert_eq!(ns(c.init_pid, "net"), ns(me, "net"), "host network");
    assert_eq!(
        ns(c.init_pid, "cgroup"),
        ns(me, "cgroup"),
        "no cgroup namespace"
    );
    assert_eq!(
        fs::read_to_string(format!("/proc/{}/comm", c.init_pid))
            .expect("comm")
            .trim(),
        "sleep"
    );
    let limit_file = match memory_root().1 {
        oomtrace_e2e::CgroupVersion::V1 => "memory.limit_in_bytes",
        oomtrace_e2e::CgroupVersion::V2 => "memory.max",
    };
    assert_eq!(
        fs::read_to_string(c.memory_cgroup().join(limit_file))
            .expect("limit")
            .trim(),
        LIMIT.to_string()
    );

    // A second process, exec'd: same namespaces and cgroup, not pid 1.
    let e = c.exec(&["sleep", "3600"]);
    assert_eq!(ns(e.pid, "pid"), ns(c.init_pid, "pid"));
    assert_eq!(ns(e.pid, "mnt"), ns(c.init_pid, "mnt"));
    let inner = nspid(e.pid);
    assert!(
        inner.len() == 2 && inner[0] == e.pid && inner[1] != 1,
        "{inner:?}"
    );
    assert_eq!(
        memory_cgroup_of(e.pid).as_deref(),
        Some(c.cgroups_path.as_str())
    );
    let pids = c.pids();
    assert!(
        pids.contains(&c.init_pid) && pids.contains(&e.pid),
        "{pids:?}"
    );

    // Killed from userspace: init and everything in its pid namespace die.
    c.kill("KILL");
    assert_eq!(c.wait_exit(DEADLINE), Some(Exit::Signal(9)));
    assert!(
        wait_until(DEADLINE, || !alive(e.pid)),
        "exec'd process outlived init"
    );
    assert_eq!(c.status(), "stopped");
    // --keep: the cgroup stays until the container is deleted.
    assert!(c.memory_cgroup().is_dir());
    c.delete();
    for mount in cgroup_mounts() {
        assert!(!mount.join(c.cgroups_path.trim_start_matches('/')).exists());
    }
    drop(e);
    drop(c);
    let pod_dirs: Vec<_> = cgroup_mounts()
        .iter()
        .map(|m| m.join(pod.cgroup.trim_start_matches('/')))
        .collect();
    drop(pod);
    for d in pod_dirs {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

#[test]
fn init_past_its_limit_is_oom_killed() {
    // (a)
    let pod = Pod::new(Qos::Burstable);
    let c = pod
        .container(&["oomtrace-hog", "--mib", "256"])
        .memory_limit(LIMIT)
        .start();
    assert_eq!(
        c.wait_exit(DEADLINE),
        Some(Exit::Signal(9)),
        "init should be OOM-killed; output:\n{}",
        c.output()
    );
    assert_eq!(oom_kill_count(&c.memory_cgroup()), 1);
    assert_eq!(c.status(), "stopped");
    assert!(!c.output().contains("allocated"), "{}", c.output());
}

#[test]
fn exec_child_past_the_limit_is_the_victim_and_init_survives() {
    // (b)
    let pod = Pod::new(Qos::BestEffort);
    let c = pod
        .container(&["sleep", "3600"])
        .memory_limit(LIMIT)
        .start();
    assert!(c.cgroups_path.starts_with("/kubepods/besteffort/pod"));
    let mut hog = c.exec(&["oomtrace-hog", "--mib", "256"]);
    assert_eq!(
        memory_cgroup_of(c.init_pid).as_deref(),
        Some(c.cgroups_path.as_str())
    );
    assert_eq!(hog.wait(), Exit::Signal(9), "output:\n{}", c.output());
    assert_eq!(oom_kill_count(&c.memory_cgroup()), 1);
    assert!(alive(c.init_pid));
    assert_eq!(c.wait_exit(std::time::Duration::ZERO), None);
    assert_eq!(c.status(), "running");
    // Still usable: a small process lives.
    assert_eq!(
        c.exec(&["oomtrace-hog", "--mib", "8"]).wait(),
        Exit::Code(0)
    );
}

#[test]
fn sigterm_reaches_an_init_that_handles_it() {
    // Eviction-style stop: SIGTERM from userspace, then SIGKILL.
    let pod = Pod::new(Qos::Burstable);
    pod.set_memory_limit(LIMIT);
    let c = pod
        .container(&["sh", "-c", "trap 'exit 3' TERM; sleep 3600 & wait"])
        .memory_limit(LIMIT)
        .oom_score_adj(999)
        .start();
    assert_eq!(
        fs::read_to_string(format!("/proc/{}/oom_score_adj", c.init_pid))
            .expect("oom_score_adj")
            .trim(),
        "999"
    );
    // The kernel drops SIGTERM to a pid namespace's init until it has a
    // handler: wait for the trap (SigCgt bit 15).
    let handles_term = || {
        fs::read_to_string(format!("/proc/{}/status", c.init_pid))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .is_some_and(|m| m & (1 << (15 - 1)) != 0)
    };
    assert!(wait_until(DEADLINE, handles_term));
    c.kill("TERM");
    assert_eq!(c.wait_exit(DEADLINE), Some(Exit::Code(3)), "{}", c.output());
}

#[test]
fn churn_of_many_containers() {
    // (c) Start and remove containers back to back. Set
    // OOMTRACE_E2E_CHURN=200 to measure a bigger run (cargo test -- --nocapture).
    let n: usize = std::env::var("OOMTRACE_E2E_CHURN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let t0 = Instant::now();
    let mut starts = Vec::new();
    for _ in 0..n {
        let pod = Pod::new(Qos::Burstable);
        let c = pod
            .container(&["sleep", "3600"])
            .memory_limit(LIMIT)
            .start();
        starts.push(c.start_time);
        assert_eq!(
            memory_cgroup_of(c.init_pid).as_deref(),
            Some(c.cgroups_path.as_str())
        );
        let dir = c.memory_cgroup();
        drop(c);
        assert!(!dir.exists(), "{} left behind", dir.display());
        let pod_dir = pod.memory_dir();
        drop(pod);
        assert!(!pod_dir.exists(), "{} left behind", pod_dir.display());
    }
    let total = t0.elapsed();
    starts.sort();
    eprintln!(
        "churn: {n} containers started and deleted in {total:?} ({:.1}/s); start median {:?}, max {:?}",
        n as f64 / total.as_secs_f64(),
        starts[n / 2],
        starts[n - 1]
    );
}

/// (d) The Spin case: the host's /sys/fs/cgroup bind-mounted into the
/// container (read-only on v1, where the controller mounts below it stay
/// writable; writable on v2), and a process in the container moves a pid
/// into a host service's cgroup, out of its pod's limit.
fn escape(cgroup_namespace: bool) {
    let uid = unique_uid();
    let service = Cgroup::create(&format!("system.slice/escape-{uid}.service"));
    service.set_limit(128 << 20);
    let (memory, version) = memory_root();
    assert!(
        memory.starts_with("/sys/fs/cgroup"),
        "the memory hierarchy is expected under /sys/fs/cgroup"
    );
    // Seen from inside the container, through the bind mount: the same path.
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
    if cgroup_namespace {
        spec = spec.cgroup_namespace();
    }
    let c = spec.start();
    let me = std::process::id();
    assert_eq!(
        ns(c.init_pid, "cgroup") != ns(me, "cgroup"),
        cgroup_namespace,
        "cgroup namespace"
    );
    if version == CgroupVersion::V1 {
        // The top of the bind mount is read-only; the memory hierarchy
        // below it is not.
        assert_eq!(c.exec(&["mkdir", "/sys/fs/cgroup/x"]).wait(), Exit::Code(1));
    }
    if version == CgroupVersion::V2 && cgroup_namespace && cgroup2_nsdelegate() {
        // nsdelegate makes the namespace a delegation boundary: the move is
        // refused, and the pod's limit holds.
        let refused = c.exec(&["sh", "-c", &format!("echo $$ > {procs}")]).wait();
        assert_eq!(refused, Exit::Code(1), "output:\n{}", c.output());
        assert!(service.pids().is_empty());
        return;
    }

    // A shell in the container writes its child's pid into the host
    // service's cgroup.
    let shell = c.exec(&[
        "sh",
        "-c",
        &format!("sleep 3600 >/dev/null 2>&1 & echo $! > {procs}; wait"),
    ]);
    assert!(
        wait_until(DEADLINE, || !service.pids().is_empty()),
        "nothing moved into {}; output:\n{}",
        service.rel,
        c.output()
    );
    let moved = service.pids()[0] as u32;
    assert_eq!(
        memory_cgroup_of(moved).as_deref(),
        Some(service.rel.as_str())
    );
    assert_eq!(
        ns(moved, "pid"),
        ns(c.init_pid, "pid"),
        "still in the container"
    );
    assert_eq!(ns(moved, "mnt"), ns(c.init_pid, "mnt"));
    assert!(!c.pids().contains(&moved));
    // In the other hierarchies it stays in the container's cgroup.
    let pids_line = fs::read_to_string(format!("/proc/{moved}/cgroup"))
        .expect("cgroup")
        .lines()
        .find(|l| l.contains(":pids:"))
        .map(str::to_string);
    if let Some(line) = pids_line {
        assert!(line.ends_with(&c.cgroups_path), "{line}");
    }
    drop(shell);

    // Escaped: more than the pod's limit, and it lives...
    let big = c
        .exec(&["oomtrace-hog", "--join", &procs, "--mib", "96"])
        .wait();
    assert_eq!(big, Exit::Code(0), "output:\n{}", c.output());
    // ...until the host cgroup's own limit kills it.
    let killed = c
        .exec(&["oomtrace-hog", "--join", &procs, "--mib", "256"])
        .wait();
    assert_eq!(killed, Exit::Signal(9), "output:\n{}", c.output());
    assert_eq!(oom_kill_count(&service.dir), 1);
    assert_eq!(oom_kill_count(&c.memory_cgroup()), 0);
    assert!(alive(c.init_pid));
}

#[test]
fn process_escapes_to_a_host_cgroup_through_a_bind_mounted_cgroupfs() {
    escape(false);
}

#[test]
fn escape_works_with_a_cgroup_namespace_too() {
    escape(true);
}
