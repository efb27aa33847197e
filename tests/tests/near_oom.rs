//! `near_oom`: a memory cgroup close to its limit and growing into it gets
//! one finding before its kill, and the kill's verdict says how long
//! before (`warned_s_before`); one that stays near its limit gets one, not
//! a stream; one far from its limit gets none; a pod's and a kubepods
//! limit are warned as theirs. Real cgroups, real growth, real kills.
//! Needs root (cargo xtask test).

use std::process::{Child, Command, Stdio};

use oomtrace_e2e::{
    bin, is_verdict_for, memory_root, unique_container_id, unique_uid, wait_until, Cgroup,
    CgroupVersion, Daemon, Json, DEADLINE,
};

const LIMIT: u64 = 128 << 20;

/// A hog in `cgroup` allocating `mib` MiB at `rate` MiB/s, then holding it
/// for `hold_s` s.
fn paced_hog(cgroup: &Cgroup, mib: u32, rate: u32, hold_s: u32) -> Child {
    Command::new(bin("oomtrace-hog"))
        .arg("--join")
        .arg(cgroup.procs())
        .args(["--mib", &mib.to_string()])
        .args(["--rate-mib-s", &rate.to_string()])
        .args(["--sleep", &hold_s.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning oomtrace-hog")
}

/// Waits for the hog to end; true when it exited by itself (not killed).
fn ended(child: &mut Child) -> bool {
    let mut status = None;
    let done = wait_until(DEADLINE, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    if !done {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "the hog (pid {}) did not end within {DEADLINE:?}",
            child.id()
        );
    }
    status.is_some_and(|s| s.success())
}

fn near_oom_of(cgroup: &str) -> impl Fn(&Json) -> bool + '_ {
    move |l: &Json| l["type"] == "finding" && l["finding"] == "near_oom" && l["cgroup"] == cgroup
}

/// The fields every `near_oom` finding has, whatever its level.
fn assert_near_oom(f: &Json, limit: u64) {
    assert_eq!(f["schema_version"], 1, "{f}");
    assert_eq!(f["limit_bytes"], limit, "{f}");
    let usage = f["usage_bytes"].as_u64().expect("usage_bytes");
    let ws = f["working_set_bytes"].as_u64().expect("working_set_bytes");
    assert!(ws <= usage, "{f}");
    assert!(
        ws as f64 >= 0.8 * limit as f64 && usage <= limit,
        "close to the limit: {f}"
    );
    // PSI: cgroup v2 only, and only where the kernel keeps it (`psi=0` or
    // CONFIG_PSI_DEFAULT_DISABLED leave no /proc/pressure).
    let psi = memory_root().1 == CgroupVersion::V2
        && std::path::Path::new("/proc/pressure/memory").exists();
    if psi {
        assert!(f["psi"]["some_avg10"].as_f64().is_some(), "{f}");
        assert!(f["psi"]["full_avg10"].as_f64().is_some(), "{f}");
    } else {
        assert_eq!(f["psi"], Json::Null, "{f}");
    }
    assert!(f["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{f}");
    assert!(
        f["summary"]
            .as_str()
            .is_some_and(|s| s.contains("128Mi limit")),
        "{f}"
    );
}

/// The finding is a growth warning: a rate near the hog's, the limit ahead.
fn assert_growing(f: &Json, rate_mib: u32) {
    let growth = f["growth_bytes_per_s"]
        .as_i64()
        .expect("growth_bytes_per_s") as f64;
    let want = f64::from(rate_mib) * (1 << 20) as f64;
    assert!(
        growth > 0.5 * want && growth < 1.6 * want,
        "growth {growth} B/s for a hog of {rate_mib} MiB/s: {f}"
    );
    let eta = f["seconds_to_limit"].as_f64().expect("seconds_to_limit");
    assert!(eta > 0.0 && eta <= 60.0, "{f}");
    assert!(
        f["summary"]
            .as_str()
            .is_some_and(|s| s.contains("to an OOM kill")),
        "{f}"
    );
}

/// Index of the first line matching `pred` in the daemon's output so far.
fn position(daemon: &Daemon, pred: impl Fn(&Json) -> bool) -> usize {
    daemon
        .lines()
        .iter()
        .position(|l| pred(&l.v))
        .expect("the line")
}

/// The kill's verdict says the warning came, and how long before.
fn assert_warned(daemon: &Daemon, v: &Json, finding_cgroup: &str) {
    let before = v["warned_s_before"].as_f64().expect("warned_s_before");
    assert!(before > 0.0 && before < 60.0, "{v}");
    assert!(
        position(daemon, near_oom_of(finding_cgroup))
            < position(daemon, |l| l["type"] == "verdict"
                && l["victim"] == v["victim"]),
        "the finding is printed before the kill's verdict"
    );
}

#[test]
fn near_oom_warns_a_container_growing_into_its_limit_before_its_kill() {
    let daemon = Daemon::start(&[]);
    let uid = unique_uid();
    let cid = unique_container_id();
    let container = Cgroup::create(&format!("kubepods/burstable/pod{uid}/{cid}"));
    container.set_limit(LIMIT);
    // 12 MiB/s: the limit after about 10 s.
    let mut hog = paced_hog(&container, 256, 12, 0);
    let pid = hog.id();
    assert!(!ended(&mut hog), "the hog must be OOM-killed");
    let v = daemon.wait_for("the kill's verdict", is_verdict_for(pid));
    assert_eq!(v["verdict"], "pod_limit", "{v}");
    let f = daemon.wait_for("the near_oom finding", near_oom_of(&container.rel));
    assert_near_oom(&f, LIMIT);
    assert_growing(&f, 12);
    assert_eq!(f["pod"]["uid"], uid.as_str(), "{f}");
    assert_eq!(f["pod"]["qos"], "Burstable", "{f}");
    assert_eq!(f["container"]["id"], cid.as_str(), "{f}");
    assert!(
        f["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("Container ")),
        "{f}"
    );
    assert_warned(&daemon, &v, &container.rel);
    assert_eq!(daemon.all(near_oom_of(&container.rel)).len(), 1);
    // For the README's examples (`--nocapture`).
    eprintln!("near_oom finding: {f}\nthe kill's verdict: {v}");
    daemon.finish();
}

#[test]
fn near_oom_once_for_staying_near_the_limit_none_far_from_it() {
    let daemon = Daemon::start(&[]);
    let (near_uid, far_uid) = (unique_uid(), unique_uid());
    let near = Cgroup::create(&format!(
        "kubepods/burstable/pod{near_uid}/{}",
        unique_container_id()
    ));
    let far = Cgroup::create(&format!(
        "kubepods/burstable/pod{far_uid}/{}",
        unique_container_id()
    ));
    near.set_limit(LIMIT);
    far.set_limit(LIMIT);
    // Up to about 95 % in 7.5 s (the hog's own pages on top of 120 MiB),
    // then held for 12 s; beside it one that stops at a quarter.
    let mut near_hog = paced_hog(&near, 120, 16, 12);
    let mut far_hog = paced_hog(&far, 32, 16, 12);
    let f = daemon.wait_for("the near_oom finding", near_oom_of(&near.rel));
    assert_near_oom(&f, LIMIT);
    assert_eq!(f["pod"]["uid"], near_uid.as_str(), "{f}");
    assert!(ended(&mut near_hog), "the hog at 95 % must live");
    assert!(ended(&mut far_hog), "the hog at 25 % must live");
    let about_near = daemon.all(near_oom_of(&near.rel));
    assert_eq!(
        about_near.len(),
        1,
        "one finding per episode: {about_near:?}"
    );
    let about_far = daemon.all(|l| l["type"] == "finding" && l["pod"]["uid"] == far_uid.as_str());
    assert!(about_far.is_empty(), "{about_far:?}");
    let kills = daemon.all(|l| {
        l["type"] == "verdict"
            && (l["pod"]["uid"] == near_uid.as_str() || l["pod"]["uid"] == far_uid.as_str())
    });
    assert!(kills.is_empty(), "{kills:?}");
    daemon.finish();
}

#[test]
fn near_oom_of_a_pod_limit_and_a_kubepods_limit_is_theirs() {
    let daemon = Daemon::start(&[]);
    // A Guaranteed pod whose own cgroup holds the limit.
    let pod_uid = unique_uid();
    let pod = Cgroup::create(&format!("kubepods/pod{pod_uid}"));
    pod.set_limit(LIMIT);
    let in_pod = Cgroup::create(&format!("kubepods/pod{pod_uid}/{}", unique_container_id()));
    // A kubepods root of its own (as under kind or k3s: nested in another
    // cgroup), its limit node allocatable; the pod below it has none.
    let root = format!("oomtrace-near-{}", unique_uid());
    let kubepods = Cgroup::create(&format!("{root}/kubepods"));
    kubepods.set_limit(LIMIT);
    let alloc_uid = unique_uid();
    let in_alloc = Cgroup::create(&format!(
        "{root}/kubepods/besteffort/pod{alloc_uid}/{}",
        unique_container_id()
    ));
    let mut pod_hog = paced_hog(&in_pod, 256, 12, 0);
    let mut alloc_hog = paced_hog(&in_alloc, 256, 12, 0);
    let (pod_pid, alloc_pid) = (pod_hog.id(), alloc_hog.id());
    assert!(!ended(&mut pod_hog), "the pod's hog must be OOM-killed");
    assert!(
        !ended(&mut alloc_hog),
        "the allocatable hog must be OOM-killed"
    );

    let f = daemon.wait_for("the pod's near_oom", near_oom_of(&pod.rel));
    assert_near_oom(&f, LIMIT);
    assert_growing(&f, 12);
    assert_eq!(f["pod"]["uid"], pod_uid.as_str(), "{f}");
    assert_eq!(f["pod"]["qos"], "Guaranteed", "{f}");
    assert_eq!(f["container"], Json::Null, "{f}");
    assert!(
        f["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("Pod ") && s.contains("the pod's 128Mi limit")),
        "{f}"
    );
    let v = daemon.wait_for("the pod's kill", is_verdict_for(pod_pid));
    assert_eq!(v["verdict"], "pod_limit", "{v}");
    assert_eq!(v["limit"]["cgroup"], pod.rel.as_str(), "{v}");
    assert_warned(&daemon, &v, &pod.rel);

    let f = daemon.wait_for("the kubepods near_oom", near_oom_of(&kubepods.rel));
    assert_near_oom(&f, LIMIT);
    assert_growing(&f, 12);
    assert_eq!(f["pod"], Json::Null, "{f}");
    assert_eq!(f["container"], Json::Null, "{f}");
    assert!(
        f["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("The pods together") && s.contains("node allocatable")),
        "{f}"
    );
    let v = daemon.wait_for("the allocatable kill", is_verdict_for(alloc_pid));
    assert_eq!(v["kind"], "allocatable_oom", "{v}");
    assert_eq!(v["limit"]["cgroup"], kubepods.rel.as_str(), "{v}");
    assert_warned(&daemon, &v, &kubepods.rel);

    // The containers' own cgroups have no limit: no finding of theirs.
    for c in [&in_pod, &in_alloc] {
        assert!(daemon.all(near_oom_of(&c.rel)).is_empty(), "{}", c.rel);
    }
    daemon.finish();
}
