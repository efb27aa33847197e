//! Scenarios that need Debian's 6.1 VM (`cargo xtask vm-test`, run by
//! `cargo xtask test`): cgroup v2 with `memory.oom.group`, and a global OOM,
//! which is only safe in a small VM. Not run by a host `cargo test` (this
//! target is `test = false` in tests/Cargo.toml); run elsewhere, each test
//! fails saying what it lacks, never skips.

use std::{
    fs,
    io::{BufRead as _, BufReader},
    process::{Child, ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use oomtrace_e2e::{
    bin, memory_root, unique_container_id, unique_uid, wait_until, Cgroup, CgroupVersion, Daemon,
    Json, DEADLINE,
};

/// Kills its process when dropped (a failed assert leaves no hog behind).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `oomtrace-hog` joining `cgroup`, allocating `mib` MiB then sleeping
/// `sleep_s`; run through `sh` so that its `oom_score_adj` is `adj` before
/// it allocates a byte (a child inherits its parent's).
fn hog(cgroup: &Cgroup, mib: u32, sleep_s: u32, adj: i32) -> Proc {
    let script = format!(
        "echo {adj} > /proc/self/oom_score_adj && exec \"$0\" --join \"$1\" --mib {mib} --sleep {sleep_s}"
    );
    let child = Command::new("sh")
        .args(["-c", &script])
        .arg(bin("oomtrace-hog"))
        .arg(cgroup.procs())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning oomtrace-hog");
    Proc(child)
}

/// Waits (up to [`DEADLINE`]) for the hog's `allocated N` line: it holds
/// all its memory.
fn wait_allocated(p: &mut Proc) {
    let out: ChildStdout = p.0.stdout.take().expect("hog stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(DEADLINE)
        .expect("the hog did not finish allocating within the deadline");
    assert!(
        line.starts_with("allocated"),
        "the hog (pid {}) died before holding its memory: {line:?}",
        p.0.id()
    );
}

fn require_v2() {
    let (root, version) = memory_root();
    assert_eq!(
        version,
        CgroupVersion::V2,
        "this test needs cgroup v2 with the memory controller (Debian's 6.1 VM: cargo xtask vm-test); memory root here: {}",
        root.display()
    );
}

/// `memory.events` of `cgroup` as (key, value) pairs.
fn memory_event(cgroup: &Cgroup, key: &str) -> u64 {
    let path = cgroup.dir.join("memory.events");
    memory_event_if_any(cgroup, key).unwrap_or_else(|| panic!("no `{key}` in {}", path.display()))
}

/// `key` of `cgroup`'s memory.events; `None` when this kernel has no such
/// key (`oom_group_kill` came in 5.17).
fn memory_event_if_any(cgroup: &Cgroup, key: &str) -> Option<u64> {
    let path = cgroup.dir.join("memory.events");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// The group kills of `cgroup` in the kernel log: "Tasks in /<path> are
/// going to be killed due to memory.oom.group set", printed once per group
/// kill by every kernel since 4.19 (the witness where memory.events has no
/// `oom_group_kill`).
fn group_kills_in_kernel_log(cgroup: &Cgroup) -> u64 {
    let out = Command::new("dmesg").output().expect("running dmesg");
    assert!(out.status.success(), "dmesg failed");
    let named = format!("Tasks in /{} are going", cgroup.rel.trim_start_matches('/'));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&named) && l.contains("memory.oom.group"))
        .count() as u64
}

/// The pids of `pids` in the kernel log's "Killed process N" lines, once
/// per line.
fn killed_in_kernel_log(pids: &[u32]) -> Vec<u32> {
    let out = Command::new("dmesg").output().expect("running dmesg");
    assert!(out.status.success(), "dmesg failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once("Killed process ").map(|(_, r)| r))
        .filter_map(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .filter(|p| pids.contains(p))
        .collect()
}

fn protect(pid: u32) {
    let path = format!("/proc/{pid}/oom_score_adj");
    fs::write(&path, "-1000").unwrap_or_else(|e| panic!("writing {path}: {e}"));
}

/// Needs the VM (cgroup v2). A container cgroup with `memory.oom.group = 1`
/// (the kubelet's setting since 1.28) holding three processes: the kernel
/// kills all of them in one OOM invocation. One verdict per victim, one
/// shared incident, and each says the kubelet reports it (init died too).
#[test]
fn oom_group_kills_whole_container_one_incident() {
    require_v2();
    let daemon = Daemon::start(&["--heartbeat", "1s"]);
    let uid = unique_uid();
    let cid = unique_container_id();
    let container = Cgroup::create(&format!("kubepods/burstable/pod{uid}/{cid}"));
    container.set_limit(64 << 20);
    let group = container.dir.join("memory.oom.group");
    fs::write(&group, "1").unwrap_or_else(|e| panic!("writing {}: {e}", group.display()));

    let mut sleepers = vec![hog(&container, 4, 3600, 0), hog(&container, 4, 3600, 0)];
    for s in &mut sleepers {
        wait_allocated(s);
    }
    let mut grower = hog(&container, 256, 0, 0);
    let status = grower.0.wait().expect("waiting for the growing hog");
    assert!(!status.success(), "the growing hog survived a 64 MiB limit");
    let mut pids: Vec<u32> = sleepers.iter().map(|s| s.0.id()).collect();
    pids.push(grower.0.id());
    // oom.group: the sleepers die with it.
    for s in &mut sleepers {
        let deadline = Instant::now() + DEADLINE;
        let mut status = None;
        while status.is_none() && Instant::now() < deadline {
            status = s.0.try_wait().expect("try_wait");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            status.is_some_and(|st| !st.success()),
            "sleeper {} was not killed with its group: {status:?}",
            s.0.id()
        );
    }

    let oom_kill = memory_event(&container, "oom_kill");
    let group_kill = memory_event_if_any(&container, "oom_group_kill")
        .unwrap_or_else(|| group_kills_in_kernel_log(&container));
    assert_eq!(
        group_kill, 1,
        "one group kill (memory.events oom_group_kill, else the kernel log)"
    );
    // The kernel kills the chosen victim, then every member of the group —
    // the victim again (oom_kill_memcg_member skips only oom_score_adj
    // -1000 and init): it logs "Killed process" and counts `oom_kill` twice
    // for it, but marks it a victim (oom:mark_victim) once. So `oom_kill` is
    // one more than the processes killed per group kill; the kernel log
    // says which pids died.
    let logged = killed_in_kernel_log(&pids);
    assert_eq!(
        logged.len() as u64,
        oom_kill,
        "memory.events oom_kill counts each \"Killed process\" line: {logged:?}"
    );
    let mut killed = logged.clone();
    killed.sort_unstable();
    killed.dedup();
    assert_eq!(
        killed.len(),
        pids.len(),
        "every process of the group killed: {logged:?} of {pids:?}"
    );
    assert_eq!(
        oom_kill - group_kill,
        pids.len() as u64,
        "oom_kill counts the group's chosen victim twice"
    );

    for &pid in &pids {
        daemon.wait_for("a verdict per killed process", |l| {
            l["type"] == "verdict" && l["victim"]["pid"] == pid
        });
    }
    daemon.barrier();
    let verdicts = daemon.all(|l| l["type"] == "verdict" && l["pod"]["uid"] == uid.as_str());
    assert_eq!(
        verdicts.len(),
        killed.len(),
        "one verdict per killed process (memory.events oom_kill {oom_kill}, oom_group_kill {group_kill}): {verdicts:#?}"
    );
    let incident = &verdicts[0]["incident"];
    assert!(
        incident.as_str().is_some_and(|s| !s.is_empty()),
        "{}",
        verdicts[0]
    );
    for v in &verdicts {
        assert_eq!(&v["incident"], incident, "one incident for the group: {v}");
        assert_eq!(v["verdict"], "pod_limit", "{v}");
        assert_eq!(v["pod"]["qos"], "Burstable", "{v}");
        assert_eq!(v["container"]["id"], cid.as_str(), "{v}");
        assert_eq!(v["limit"]["cgroup"], container.rel.as_str(), "{v}");
        assert_eq!(v["limit"]["limit_bytes"], 64u64 << 20, "{v}");
        assert_eq!(v["kubelet_reports"], true, "oom.group takes init too: {v}");
        assert_eq!(v["victim"]["comm"], "oomtrace-hog", "{v}");
        assert!(
            pids.contains(&(v["victim"]["pid"].as_u64().unwrap_or(0) as u32)),
            "{v}"
        );
    }
    // The audit against /proc/vmstat oom_kill (which, like memory.events,
    // counts the chosen victim twice) finds nothing missed past its deadline.
    let beat = daemon.heartbeat_after(5);
    assert_eq!(beat["missed"], 0, "{beat}");
    assert!(
        beat["oom_group_kills"].as_u64().is_some_and(|g| g >= 1),
        "{beat}"
    );
    let missed = daemon.all(|l| l["type"] == "missed");
    assert!(missed.is_empty(), "{missed:?}");
    daemon.finish();
}

/// `oomtrace-hog` joining `cgroup`, growing to `mib` MiB at `rate` MiB/s
/// (so that the `near_oom` sampler sees it climb), then holding it.
fn paced_hog(cgroup: &Cgroup, mib: u32, rate: u32) -> Proc {
    let child = Command::new(bin("oomtrace-hog"))
        .arg("--join")
        .arg(cgroup.procs())
        .args(["--mib", &mib.to_string()])
        .args(["--rate-mib-s", &rate.to_string()])
        .args(["--sleep", "3600"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning oomtrace-hog");
    Proc(child)
}

/// A limit written below usage: `limited` at 200 MiB holds a hog that grew
/// to 180 MiB; once oomtrace has warned about it (so its sampler read the
/// 200 MiB limit), `memory.max` is written down to 64 MiB. The kernel
/// reclaims, finds only anonymous memory, and OOM-kills the hog inside the
/// write. Returns the hog's verdict, after the checks every such kill
/// shares: the limit at the kill is 64 MiB, and `evidence.limit_lowered`
/// says it was 200 MiB. With the `limit` hook (cgroup v2's
/// `memory_max_write`) the write itself was seen: exactly how long before
/// the kill, within the write's own duration. Without it, at most as long
/// before as the test ran, from the sampler's or a reclaim record's reading.
fn lowered_limit_kill(daemon: &Daemon, limited: &Cgroup, hog_in: &Cgroup) -> Json {
    const FROM: u64 = 200 << 20;
    const TO: u64 = 64 << 20;
    let began = Instant::now();
    limited.set_limit(FROM);
    let mut hog = paced_hog(hog_in, 180, 30);
    let pid = hog.0.id();
    let f = daemon.wait_for("the near_oom warning before the lowering", |l| {
        l["type"] == "finding" && l["finding"] == "near_oom" && l["cgroup"] == limited.rel.as_str()
    });
    assert_eq!(f["limit_bytes"], FROM, "the sampler read the limit: {f}");
    // The write returns once the kernel has reclaimed or killed.
    let write = Instant::now();
    limited.set_limit(TO);
    let write_s = write.elapsed().as_secs_f64();
    let ran_s = began.elapsed().as_secs_f64();
    let mut status = None;
    assert!(
        wait_until(DEADLINE, || {
            status = hog.0.try_wait().ok().flatten();
            status.is_some()
        }),
        "the hog outlived its limit's lowering"
    );
    assert!(
        status.is_some_and(|s| !s.success()),
        "the hog was killed: {status:?}"
    );
    assert!(
        memory_event(limited, "oom_kill") >= 1,
        "the kernel counted the kill in {}",
        limited.rel
    );
    let v = daemon.wait_for("the hog's verdict", |l| {
        l["type"] == "verdict" && l["victim"]["pid"] == pid
    });
    eprintln!("oomtrace: {v}");
    assert_eq!(v["limit"]["cgroup"], limited.rel.as_str(), "{v}");
    assert_eq!(v["limit"]["limit_bytes"], TO, "{v}");
    let l = &v["evidence"]["limit_lowered"];
    assert_eq!(l["from_bytes"], FROM, "{v}");
    assert_eq!(l["to_bytes"], TO, "{v}");
    let s_before = l["s_before"].as_f64().expect("s_before");
    let summary = v["summary"].as_str().expect("a summary");
    match daemon.hook("limit") {
        Some(kind) => {
            assert_eq!(l["basis"], "write_hook", "limit={kind}: {v}");
            // Rounded to the millisecond.
            assert!(
                (0.0..=write_s + 0.001).contains(&s_before),
                "the kill came inside the write, which took {write_s:.3} s: {v}"
            );
            let said = format!(
                "Its limit had been lowered from 200Mi to 64Mi {s_before} s before the kill (the write was seen in the kernel)"
            );
            assert!(summary.contains(&said), "{said}: {v}");
        }
        None => {
            assert!(l["basis"] == "sampler" || l["basis"] == "pressure", "{v}");
            assert!(
                (0.0..=ran_s).contains(&s_before),
                "the higher limit was read after the test set it, {ran_s:.1} s before the write returned: {v}"
            );
            assert!(
                summary.contains("Its limit had been lowered from 200Mi to 64Mi at most"),
                "{v}"
            );
        }
    }
    v
}

/// Needs the VM (cgroup v2: on v1 a limit written below usage reclaims
/// and fails with EBUSY, no kill). An in-place resize: a container's
/// limit lowered below what its process holds.
#[test]
fn a_kill_after_a_lowered_container_limit_says_so() {
    require_v2();
    let daemon = Daemon::start(&[]);
    let uid = unique_uid();
    let cid = unique_container_id();
    let container = Cgroup::create(&format!("kubepods/burstable/pod{uid}/{cid}"));
    let v = lowered_limit_kill(&daemon, &container, &container);
    assert_eq!(v["verdict"], "pod_limit", "{v}");
    assert_eq!(v["pod"]["uid"], uid.as_str(), "{v}");
    assert_eq!(v["container"]["id"], cid.as_str(), "{v}");
    daemon.finish();
}

/// Needs the VM (cgroup v2). The same resize with the `limit` hook off:
/// the lowering is known from the readings before it only, a bound.
#[test]
fn a_kill_after_a_lowered_limit_without_the_limit_hook_says_at_most() {
    require_v2();
    let daemon = Daemon::start(&["--hooks", "limit=off"]);
    assert_eq!(daemon.hook("limit"), None);
    let uid = unique_uid();
    let cid = unique_container_id();
    let container = Cgroup::create(&format!("kubepods/burstable/pod{uid}/{cid}"));
    let v = lowered_limit_kill(&daemon, &container, &container);
    assert_eq!(v["verdict"], "pod_limit", "{v}");
    daemon.finish();
}

/// Needs the VM (cgroup v2). The kubelet lowering kubepods' limit (node
/// allocatable) below what the pods hold: an `allocatable_oom` that says
/// the limit was lowered. A kubepods root of its own (nested, as under
/// kind or k3s), so no other test's pods are under it.
#[test]
fn an_allocatable_oom_after_a_lowered_kubepods_limit_says_so() {
    require_v2();
    let daemon = Daemon::start(&[]);
    let root = format!("oomtrace-lowered-{}", unique_uid());
    let kubepods = Cgroup::create(&format!("{root}/kubepods"));
    let uid = unique_uid();
    let container = Cgroup::create(&format!(
        "{root}/kubepods/besteffort/pod{uid}/{}",
        unique_container_id()
    ));
    let v = lowered_limit_kill(&daemon, &kubepods, &container);
    assert_eq!(v["verdict"], "node_pressure", "{v}");
    assert_eq!(v["kind"], "allocatable_oom", "{v}");
    assert_eq!(v["pod"]["uid"], uid.as_str(), "{v}");
    daemon.finish();
}

fn mem_total_bytes() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .expect("MemTotal in /proc/meminfo")
        * 1024
}

/// Needs the 512 MiB VM boot (`cargo xtask vm-test` runs it there with
/// `--ignored`): no memcg limit anywhere, three pods grow until the kernel's
/// global OOM killer fires. oomtrace and this test are shielded with
/// `oom_score_adj = -1000`, the hogs exposed with +500. Refuses (fails) on
/// a machine with 1 GiB or more: a global OOM there would hit real work.
#[test]
#[ignore = "causes a global OOM: only in the 512 MiB VM (cargo xtask vm-test)"]
fn global_oom_is_system_oom_with_top_consumers() {
    require_v2();
    let total = mem_total_bytes();
    assert!(
        total < 1 << 30,
        "refusing to cause a global OOM on a machine with {} MiB (the VM boot gives 512 MiB)",
        total >> 20
    );
    protect(std::process::id());
    let daemon = Daemon::start(&[]);
    protect(daemon.pid());

    let pods: Vec<(String, Cgroup)> = (0..3)
        .map(|_| {
            let uid = unique_uid();
            let cid = unique_container_id();
            let cg = Cgroup::create(&format!("kubepods/besteffort/pod{uid}/{cid}"));
            (uid, cg)
        })
        .collect();
    // Two pods hold a quarter of the memory each, then the third grows.
    let hold_mib = (total >> 20) as u32 / 4;
    let mut holders = vec![
        hog(&pods[0].1, hold_mib, 3600, 500),
        hog(&pods[1].1, hold_mib, 3600, 500),
    ];
    for h in &mut holders {
        wait_allocated(h);
    }
    let mut grower = hog(&pods[2].1, (total >> 20) as u32, 3600, 500);
    let mut hogs: Vec<u32> = holders.iter().map(|h| h.0.id()).collect();
    hogs.push(grower.0.id());

    let v = daemon.wait_for("the system_oom verdict", |l| {
        l["type"] == "verdict" && hogs.iter().any(|&p| l["victim"]["pid"] == p)
    });
    // Stop the growth before anything else can starve.
    let _ = grower.0.kill();
    assert!(
        wait_until(DEADLINE, || grower.0.try_wait().ok().flatten().is_some()),
        "the growing hog did not exit"
    );
    drop(holders);
    println!("CAPTURED-SYSTEM-OOM {v}");
    assert_eq!(v["verdict"], "node_pressure", "{v}");
    assert_eq!(v["kind"], "system_oom", "{v}");
    assert_eq!(v["limit"], Json::Null, "a global OOM has no limit: {v}");
    assert_eq!(v["evidence"]["constraint"], "global", "{v}");
    assert_eq!(v["victim"]["comm"], "oomtrace-hog", "{v}");
    assert_ne!(v["victim"]["pid"], daemon.pid(), "{v}");
    let victim_pod = v["pod"]["uid"]
        .as_str()
        .expect("the victim's pod")
        .to_string();
    assert!(
        pods.iter().any(|(uid, _)| *uid == victim_pod),
        "victim in one of the test's pods: {v}"
    );
    let top = v["top_consumers"].as_array().expect("top_consumers");
    assert!(!top.is_empty(), "{v}");
    let named: Vec<&str> = top
        .iter()
        .filter_map(|c| c["pod"]["uid"].as_str())
        .filter(|u| pods.iter().any(|(uid, _)| uid == u))
        .collect();
    // The surviving holders keep their memory: their pods rank first.
    assert!(
        named.len() >= 2,
        "top_consumers should name the test's pods: {v}"
    );
    for c in top {
        assert!(c["usage_bytes"].as_u64().is_some(), "{c}");
    }
    // Where the node's memory was at the kill: the parts add up to
    // MemTotal, and the surviving holders' pods are among them.
    let b = &v["node_memory"]["breakdown"];
    assert!(
        b.is_object(),
        "a global OOM carries node_memory.breakdown: {v}"
    );
    assert_eq!(b["total_bytes"], total, "{b}");
    let part = |p: &Json| {
        p.as_u64()
            .unwrap_or_else(|| panic!("not a byte count: {p} in {b}"))
    };
    let parts: u64 = [
        &b["free_bytes"],
        &b["pods"]["bytes"],
        &b["system"]["bytes"],
        &b["other"]["bytes"],
        &b["kernel"]["bytes"],
        &b["page_cache_unowned_bytes"],
        &b["unowned_anon_bytes"],
        &b["dying_cgroups"]["bytes"],
    ]
    .into_iter()
    .map(part)
    .sum();
    let unaccounted = b["unaccounted_bytes"].as_i64().expect("unaccounted_bytes");
    assert_eq!(
        i128::from(parts) + i128::from(unaccounted),
        i128::from(total),
        "the parts add up to MemTotal: {b}"
    );
    assert!(
        part(&b["pods"]["by_qos"]["besteffort"]) >= u64::from(hold_mib / 2) << 20,
        "a holder's {hold_mib} MiB are the BestEffort pods': {b}"
    );
    assert!(
        v["summary"]
            .as_str()
            .zip(b["summary"].as_str())
            .is_some_and(|(s, bs)| s.ends_with(bs)),
        "{v}"
    );
    daemon.finish();
}
