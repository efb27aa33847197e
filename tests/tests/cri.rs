//! The CRI harness itself (tests/src/cri.rs): pods run by a private
//! containerd through the kubelet's CRI calls, OOM-killed and stopped for
//! real, and what ContainerStatus then says. No oomtrace here: these pin
//! the runtime's side that the verdict scenarios build on.
//!
//! Needs root (it starts containerd and makes cgroups): `cargo xtask test`
//! runs it as root, after installing containerd, runc and protoc.

use std::{
    fs,
    path::Path,
    time::{Duration, Instant},
};

use oomtrace_e2e::{
    container::{cgroup_mounts, memory_cgroup_of, Qos},
    cri::{Containerd, CriPod, State, Status},
    memory_root, nspid, wait_until, CgroupVersion, DEADLINE,
};

const LIMIT: u64 = 64 << 20;

fn status(state: State, exit_code: i32, reason: &str) -> Status {
    Status {
        state,
        exit_code,
        reason: reason.into(),
        message: String::new(),
    }
}

fn memory_limit(dir: &Path) -> u64 {
    let file = match memory_root().1 {
        CgroupVersion::V1 => "memory.limit_in_bytes",
        CgroupVersion::V2 => "memory.max",
    };
    let text = fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("reading {}/{file}: {e}", dir.display()));
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}/{file}: {text:?}: {e}", dir.display()))
}

fn read_trimmed(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .trim()
        .to_string()
}

#[test]
fn cri_init_past_its_limit_is_exited_137_oomkilled() {
    let t0 = Instant::now();
    let pod = CriPod::builder(Qos::Burstable)
        .namespace("shop")
        .name("checkout-7d9f")
        .container("worker", &["oomtrace-hog", "--mib", "256"], Some(LIMIT))
        .run();
    let rt = Containerd::get();
    eprintln!(
        "containerd {}: answered {:?} after its spawn, {:?} with the images; this pod started in {:?} ({:?} with its cgroups)",
        rt.version,
        rt.start_time,
        rt.setup_time,
        pod.start_time,
        t0.elapsed()
    );
    let c = pod.container("worker");
    assert_eq!(c.cgroup, format!("{}/{}", pod.cgroup(), c.id));
    assert!(pod.cgroup().starts_with("/kubepods/burstable/pod"));
    assert_eq!(
        memory_limit(&pod.pod.memory_dir()),
        LIMIT,
        "pod-level limit"
    );

    let s = c.wait_status(DEADLINE, |s| {
        s.state == State::Exited && s.reason == "OOMKilled"
    });
    eprintln!("init past its limit: {s:?}");
    assert_eq!(s, status(State::Exited, 137, "OOMKilled"));

    // The kubelet's log layout: <pods>/<ns>_<name>_<uid>/<container>/0.log,
    // and /var/log/containers' <pod>_<ns>_<container>-<id>.log link to it.
    let log = rt
        .pods_log_dir()
        .join(format!("shop_checkout-7d9f_{}", pod.uid))
        .join("worker/0.log");
    assert_eq!(c.log_path, log);
    assert!(log.is_file(), "{} is missing", log.display());
    let link = rt
        .containers_log_dir()
        .join(format!("checkout-7d9f_shop_worker-{}.log", c.id));
    assert_eq!(fs::read_link(&link).ok().as_deref(), Some(log.as_path()));
}

#[test]
fn cri_child_oom_killed_leaves_init_running_unless_oom_group() {
    // The init shell survives its child's OOM kill (and exits 143 on the
    // stop's SIGTERM once the hog is gone), except on cgroup v2, where the
    // kubelet's memory.oom.group=1 makes the kernel kill the whole container.
    let mut pod = CriPod::builder(Qos::Burstable)
        .container(
            "worker",
            &[
                "sh",
                "-c",
                "trap 'exit 143' TERM; oomtrace-hog --mib 256; while :; do sleep 1 & wait; done",
            ],
            Some(LIMIT),
        )
        .run();
    let c = pod.container("worker");
    let s = c.wait_status(DEADLINE, |s| s.reason == "OOMKilled");
    eprintln!("a child OOM-killed: {s:?}");
    match memory_root().1 {
        CgroupVersion::V1 => {
            assert_eq!(s, status(State::Running, 0, "OOMKilled"));
            assert!(c.pids().contains(&c.pid), "init still runs");
            let t = Instant::now();
            c.stop(10);
            let s = c.status();
            eprintln!("then StopContainer(10) in {:?}: {s:?}", t.elapsed());
            // kubernetes#140716: the earlier OOM kill names the stop.
            assert_eq!(s, status(State::Exited, 143, "OOMKilled"));
        }
        CgroupVersion::V2 => {
            assert_eq!(
                read_trimmed(c.memory_cgroup().join("memory.oom.group")),
                "1"
            );
            let s = c.wait_exited(DEADLINE);
            eprintln!("then, the group kill: {s:?}");
            assert_eq!(s, status(State::Exited, 137, "OOMKilled"));
        }
    }
    pod.stop(2);
}

#[test]
fn cri_stop_container_sends_term_then_kill_after_the_grace() {
    let pod = CriPod::builder(Qos::BestEffort)
        .namespace("batch")
        .container("ignores-term", &["sleep", "3600"], None)
        .container(
            "exits-on-term",
            &[
                "sh",
                "-c",
                "trap 'exit 143' TERM; echo ready; while :; do sleep 1 & wait; done",
            ],
            None,
        )
        .run();
    assert!(pod.cgroup().starts_with("/kubepods/besteffort/pod"));
    assert_eq!(pod.memory_limit, None);
    let (ignores, exits) = (
        pod.container("ignores-term"),
        pod.container("exits-on-term"),
    );
    // The trap is set before the shell prints.
    assert!(
        wait_until(DEADLINE, || exits.log().contains(" stdout F ready\n")),
        "{}: {:?}",
        exits.log_path.display(),
        exits.log()
    );
    for c in [ignores, exits] {
        assert_eq!(c.status(), status(State::Running, 0, ""));
    }
    let (t_ignores, t_exits) = std::thread::scope(|s| {
        let a = s.spawn(|| {
            let t = Instant::now();
            ignores.stop(10);
            t.elapsed()
        });
        let b = s.spawn(|| {
            let t = Instant::now();
            exits.stop(10);
            t.elapsed()
        });
        (
            a.join().expect("stopping ignores-term"),
            b.join().expect("stopping exits-on-term"),
        )
    });
    let (s_ignores, s_exits) = (ignores.status(), exits.status());
    eprintln!("StopContainer(10): pid-1 sleep after {t_ignores:?}: {s_ignores:?}; trapping sh after {t_exits:?}: {s_exits:?}");
    assert_eq!(s_exits, status(State::Exited, 143, "Error"));
    assert!(t_exits < Duration::from_secs(5), "{t_exits:?}");
    assert_eq!(s_ignores, status(State::Exited, 137, "Error"));
    assert!(
        t_ignores >= Duration::from_secs(10) && t_ignores < Duration::from_secs(10) + DEADLINE,
        "{t_ignores:?}"
    );
}

#[test]
fn cri_running_pod_is_shaped_as_the_kubelet_shapes_it_and_torn_down() {
    let pod = CriPod::builder(Qos::Burstable)
        .namespace("shop")
        .name("cart-5c8d")
        .container("app", &["sleep", "3600"], Some(32 << 20))
        .container("sidecar", &["sleep", "3600"], Some(48 << 20))
        .run();
    assert_eq!(pod.memory_limit, Some(80 << 20));
    assert_eq!(memory_limit(&pod.pod.memory_dir()), 80 << 20, "the sum");
    let (_, version) = memory_root();
    let capacity = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("MemTotal")
        * 1024;
    let host_net = fs::read_link("/proc/self/ns/net").expect("net ns");
    let mut dirs = Vec::new();
    for (c, limit) in [
        (pod.container("app"), 32u64 << 20),
        (pod.container("sidecar"), 48 << 20),
    ] {
        assert_eq!(c.id.len(), 64, "{}", c.id);
        assert_eq!(memory_cgroup_of(c.pid).as_deref(), Some(c.cgroup.as_str()));
        assert_eq!(c.pids(), vec![c.pid]);
        assert_eq!(
            nspid(c.pid),
            vec![c.pid, 1],
            "init is pid 1 in its own namespace"
        );
        assert_eq!(
            fs::read_link(format!("/proc/{}/ns/net", c.pid)).ok(),
            Some(host_net.clone()),
            "host network"
        );
        assert_eq!(memory_limit(&c.memory_cgroup()), limit);
        let adj: i64 = read_trimmed(format!("/proc/{}/oom_score_adj", c.pid))
            .parse()
            .expect("oom_score_adj");
        let expected = (1000 - (1000 * limit / capacity) as i64).clamp(3, 999);
        assert_eq!(adj, expected, "Burstable, request = limit = {limit}");
        if version == CgroupVersion::V2 {
            assert_eq!(
                read_trimmed(c.memory_cgroup().join("memory.oom.group")),
                "1"
            );
        }
        for dir in c.cgroup_dirs() {
            assert!(dir.is_dir(), "{} is missing", dir.display());
            dirs.push(dir);
        }
        assert!(c.log_path.is_file(), "{}", c.log_path.display());
    }
    let pod_dirs: Vec<_> = cgroup_mounts()
        .into_iter()
        .map(|m| m.join(pod.cgroup().trim_start_matches('/')))
        .collect();
    let log_dir = pod.log_dir.clone();
    let t = Instant::now();
    drop(pod);
    eprintln!("teardown (StopContainer(2) x2 of pid-1 sleeps, StopPodSandbox, RemovePodSandbox, cgroups): {:?}", t.elapsed());
    for dir in dirs.iter().chain(&pod_dirs) {
        assert!(!dir.exists(), "{} is left", dir.display());
    }
    assert!(!log_dir.exists(), "{} is left", log_dir.display());
    assert!(Containerd::get().running());
}
