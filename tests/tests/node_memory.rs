//! `oomtrace memory`: the node memory breakdown against the real kernel
//! (cgroup v1 on the host, v2 in the VM). Needs root: it makes cgroups
//! and runs processes in them.
//!
//! - Removed cgroups whose page cache is still charged to them are counted
//!   (`dying_cgroups`) with the memory they hold, and drop out when the
//!   cache is freed.
//! - A system.slice service's memory is under `system`, a pod's under
//!   `pods` by its QoS class.
//! - The parts add up to MemTotal exactly (`unaccounted_bytes` is the
//!   remainder), and the remainder stays within [`TOLERANCE_PCT`] % of
//!   MemTotal: what no counter names (drivers' pages, the skew of counters
//!   read one after another on a busy node).

use std::{
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use oomtrace_e2e::{
    bin, is_verdict_for, memory_root, oom_hog, require_root, unique_container_id, unique_uid,
    wait_until, Cgroup, CgroupVersion, Daemon, Json, DEADLINE,
};

const MIB: u64 = 1 << 20;
/// How much of MemTotal the breakdown may leave unaccounted.
const TOLERANCE_PCT: u64 = 5;

/// `oomtrace memory --format json`, parsed.
fn breakdown() -> Json {
    let out = Command::new(bin("oomtrace"))
        .args(["memory", "--format", "json"])
        .output()
        .expect("running oomtrace memory");
    assert!(
        out.status.success(),
        "oomtrace memory: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "oomtrace memory printed no JSON object ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn u(v: &Json) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("not a byte count: {v}"))
}

/// Every part, as the schema lists them; they must add up to MemTotal.
fn assert_adds_up(b: &Json) {
    let total = u(&b["total_bytes"]);
    let parts = [
        u(&b["free_bytes"]),
        u(&b["pods"]["bytes"]),
        u(&b["system"]["bytes"]),
        u(&b["other"]["bytes"]),
        u(&b["kernel"]["bytes"]),
        u(&b["page_cache_unowned_bytes"]),
        u(&b["unowned_anon_bytes"]),
        u(&b["dying_cgroups"]["bytes"]),
    ];
    let unaccounted = b["unaccounted_bytes"].as_i64().expect("unaccounted_bytes");
    let sum: i128 = parts.iter().map(|&p| i128::from(p)).sum::<i128>() + i128::from(unaccounted);
    assert_eq!(sum, i128::from(total), "the parts add up to MemTotal: {b}");
    assert!(
        unaccounted.unsigned_abs() <= total / 100 * TOLERANCE_PCT,
        "{} MiB unaccounted, more than {TOLERANCE_PCT} % of {} MiB: {b}",
        unaccounted / MIB as i64,
        total / MIB
    );
    let meminfo_total = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .expect("MemTotal");
    assert_eq!(total, meminfo_total * 1024, "{b}");
}

/// A directory on a disk filesystem (page cache, not tmpfs) where the test
/// may write: /var/tmp, else the temp dir (the VM's guest has only tmpfs
/// to write to; tmpfs pages are charged to the cgroup the same way).
fn scratch_dir(name: &str) -> PathBuf {
    for base in [PathBuf::from("/var/tmp"), std::env::temp_dir()] {
        let dir = base.join(name);
        if fs::create_dir_all(&dir).is_ok() && fs::write(dir.join(".probe"), b"").is_ok() {
            return dir;
        }
    }
    panic!("no writable directory for the test's files");
}

struct RemoveDir(PathBuf);
impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Writes `bytes` to `file` from a process inside `cgroup` (its page
/// cache is charged there) and waits for it to finish.
fn write_from(cgroup: &Cgroup, file: &Path, bytes: u64) {
    let script = format!(
        "echo $$ > '{}' && head -c {bytes} /dev/zero > '{}'",
        cgroup.procs().display(),
        file.display()
    );
    let status = Command::new("sh")
        .args(["-c", &script])
        .status()
        .expect("running sh");
    assert!(
        status.success(),
        "writing {} from {}",
        file.display(),
        cgroup.rel
    );
}

fn dying_under<'a>(b: &'a Json, cgroup: &str) -> Option<&'a Json> {
    b["dying_cgroups"]["by_parent"]
        .as_array()?
        .iter()
        .find(|d| d["cgroup"] == cgroup)
}

#[test]
fn removed_cgroups_pinned_by_page_cache_are_counted_until_it_is_freed() {
    require_root();
    let _one_at_a_time = DYING.lock().unwrap_or_else(|e| e.into_inner());
    let (_, version) = memory_root();
    const N: u64 = 20;
    const EACH: u64 = 2 * MIB;
    let uid = unique_uid();
    let pod = Cgroup::create(&format!("kubepods/burstable/pod{uid}"));
    let dir = scratch_dir(&format!("oomtrace-e2e-dying-{uid}"));
    let _cleanup = RemoveDir(dir.clone());
    let before = breakdown();
    for i in 0..N {
        let mut c = Cgroup::create(&format!("{}/{}", pod.rel, unique_container_id()));
        write_from(&c, &dir.join(format!("f{i}")), EACH);
        c.remove_leaf().expect("rmdir of the container cgroup");
    }
    // The 20 removed cgroups still hold their page cache: counted under
    // the pod, with at least 90 % of what they wrote.
    let mut last = Json::Null;
    let pinned = wait_until(DEADLINE, || {
        last = breakdown();
        dying_under(&last, &pod.rel).is_some_and(|d| u(&d["bytes"]) >= N * EACH * 9 / 10)
    });
    assert!(
        pinned,
        "no dying cgroups holding {} MiB under {}: {last}",
        N * EACH / MIB,
        pod.rel
    );
    let d = dying_under(&last, &pod.rel).expect("the pod's dying cgroups");
    assert_eq!(d["pod"], uid.as_str(), "{d}");
    assert!(u(&d["bytes"]) <= N * EACH + 4 * MIB, "{d}");
    let count = u(&last["dying_cgroups"]["count"]);
    match version {
        // v2 counts them per parent.
        CgroupVersion::V2 => assert_eq!(u(&d["count"]), N, "{d}"),
        // v1: only the node's count (/proc/cgroups less the live ones).
        CgroupVersion::V1 => {
            assert_eq!(d["count"], Json::Null, "{d}");
            assert!(count >= N, "{count} dying cgroups: {last}");
        }
    }
    assert!(
        u(&last["dying_cgroups"]["bytes"]) >= u(&d["bytes"]),
        "{last}"
    );
    // Counted once: the pod's own part does not hold them.
    assert!(
        u(&last["pods"]["bytes"]) < u(&before["pods"]["bytes"]) + N * EACH / 2,
        "the pinned cache is not a pod's: before {before}, now {last}"
    );
    assert_adds_up(&last);
    println!("{}", last["summary"]);

    // Deleting the files frees the cache: nothing is held under the pod.
    let _ = fs::remove_dir_all(&dir);
    let freed = wait_until(DEADLINE, || {
        last = breakdown();
        dying_under(&last, &pod.rel).is_none_or(|d| u(&d["bytes"]) < MIB)
    });
    assert!(
        freed,
        "the dying cgroups under {} still hold memory: {last}",
        pod.rel
    );
    assert_adds_up(&last);
}

/// A hog holding `mib` MiB in `cgroup` until its stdin closes.
struct Holder(Child);

impl Holder {
    fn start(cgroup: &Cgroup, mib: u32) -> Holder {
        let mut child = Command::new(bin("oomtrace-hog"))
            .arg("--join")
            .arg(cgroup.procs())
            .args(["--mib", &mib.to_string(), "--hold"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning oomtrace-hog");
        let out = child.stdout.take().expect("the hog's stdout");
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        assert!(
            line.starts_with("allocated"),
            "the hog in {}: {line:?}",
            cgroup.rel
        );
        Holder(child)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_services_memory_is_systems_and_a_pods_is_under_its_qos_class() {
    require_root();
    let uid = unique_uid();
    let service = Cgroup::create(&format!("system.slice/oomtrace-e2e-{uid}.service"));
    let container = Cgroup::create(&format!(
        "kubepods/besteffort/pod{uid}/{}",
        unique_container_id()
    ));
    let before = breakdown();
    assert_adds_up(&before);
    let _svc = Holder::start(&service, 64);
    let _pod = Holder::start(&container, 48);
    let mut b = Json::Null;
    let seen = wait_until(Duration::from_secs(10), || {
        b = breakdown();
        b["system"]["top"]
            .as_array()
            .is_some_and(|t| t.iter().any(|c| c["cgroup"] == service.rel.as_str()))
            && b["pods"]["top"]
                .as_array()
                .is_some_and(|t| t.iter().any(|p| p["pod"]["uid"] == uid.as_str()))
    });
    assert!(seen, "the service and the pod are not named: {b}");
    let svc = b["system"]["top"]
        .as_array()
        .and_then(|t| t.iter().find(|c| c["cgroup"] == service.rel.as_str()))
        .expect("the service");
    assert!(u(&svc["usage_bytes"]) >= 64 * MIB, "{svc}");
    assert!(u(&b["system"]["bytes"]) >= 64 * MIB, "{b}");
    let pod = b["pods"]["top"]
        .as_array()
        .and_then(|t| t.iter().find(|p| p["pod"]["uid"] == uid.as_str()))
        .expect("the pod");
    assert_eq!(pod["pod"]["qos"], "BestEffort", "{pod}");
    // No pod log directory names this uid: null, not made up.
    assert!(pod["pod"]["namespace"].is_null(), "{pod}");
    assert!(pod["pod"]["name"].is_null(), "{pod}");
    assert!(u(&pod["working_set_bytes"]) >= 48 * MIB, "{pod}");
    assert!(u(&pod["anon_bytes"]) >= 48 * MIB, "{pod}");
    assert!(u(&b["pods"]["by_qos"]["besteffort"]) >= 48 * MIB, "{b}");
    assert!(u(&b["pods"]["bytes"]) >= 48 * MIB, "{b}");
    assert_adds_up(&b);
}

#[test]
fn the_text_table_names_every_part() {
    let out = Command::new(bin("oomtrace"))
        .args(["memory", "--format", "text"])
        .output()
        .expect("running oomtrace memory");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for part in [
        "free",
        "pods",
        "system.slice",
        "other cgroups",
        "kernel",
        "page cache charged to no live cgroup",
        "dying cgroups",
        "unaccounted",
    ] {
        assert!(text.contains(part), "no `{part}` in:\n{text}");
    }
    println!("{text}");
}

/// A node-pressure verdict carries the breakdown read at the kill: here an
/// allocatable OOM, in a kubepods root of the test's own (nested, as kind
/// and k3s nest it) so no other test's pods share its limit.
#[test]
fn an_allocatable_oom_carries_the_breakdown() {
    require_root();
    let daemon = Daemon::start(&[]);
    let uid = unique_uid();
    let root = format!("oomtrace-e2e-node-{uid}/kubepods");
    let kubepods = Cgroup::create(&root);
    kubepods.set_limit(64 * MIB);
    let container = Cgroup::create(&format!(
        "{root}/besteffort/pod{uid}/{}",
        unique_container_id()
    ));
    let pid = oom_hog(&container, 256);
    let v = daemon.wait_for("the allocatable_oom verdict", is_verdict_for(pid));
    assert_eq!(v["verdict"], "node_pressure", "{v}");
    assert_eq!(v["kind"], "allocatable_oom", "{v}");
    let b = &v["node_memory"]["breakdown"];
    assert!(b.is_object(), "no node_memory.breakdown: {v}");
    assert_adds_up(b);
    // The test's kubepods root is no top-level kubepods: its pods are
    // among the other cgroups.
    assert!(
        b["other"]["top"].as_array().is_some_and(|t| !t.is_empty()),
        "{b}"
    );
    let summary = v["summary"].as_str().expect("summary");
    let breakdown_summary = b["summary"].as_str().expect("the breakdown's summary");
    assert!(
        summary.ends_with(breakdown_summary),
        "the verdict's summary ends with the breakdown's: {summary}"
    );
    drop(container);
    drop(kubepods);
    daemon.finish();
}

/// The dying-cgroup tests read the node's count, which the other one moves.
static DYING: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn dying_cgroups_piling_up_sample_after_sample_are_a_finding() {
    require_root();
    let _one_at_a_time = DYING.lock().unwrap_or_else(|e| e.into_inner());
    // Sampled every 3 s here (60 s by default): ten samples that each see
    // more removed cgroups held by their page cache (seed 004). The window
    // must see 50 more: the emulated VM makes about 4 a second (a 1 s
    // interval's 10 s window saw 40 there, and no finding was due).
    let daemon = Daemon::start(&["--dying-sample-interval", "3s"]);
    let uid = unique_uid();
    let pod = Cgroup::create(&format!("kubepods/burstable/pod{uid}"));
    let dir = scratch_dir(&format!("oomtrace-e2e-piling-{uid}"));
    let _cleanup = RemoveDir(dir.clone());
    let is_finding = |l: &Json| l["type"] == "finding" && l["finding"] == "dying_cgroups";
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    let mut made = 0u64;
    while daemon.all(is_finding).is_empty() && std::time::Instant::now() < deadline {
        for _ in 0..10 {
            let mut c = Cgroup::create(&format!("{}/{}", pod.rel, unique_container_id()));
            write_from(&c, &dir.join(format!("f{made}")), 256 << 10);
            c.remove_leaf().expect("rmdir of the container cgroup");
            made += 1;
        }
    }
    let found = daemon.all(is_finding);
    assert_eq!(
        found.len(),
        1,
        "one dying_cgroups finding after {made} removed cgroups held by their page cache"
    );
    let f = &found[0];
    let g = &f["dying_cgroups"];
    assert!(
        u(&g["count"]) >= u(&g["count_before"]) + 50
            || u(&g["bytes"]) >= u(&g["bytes_before"]) + 256 * MIB,
        "{f}"
    );
    assert!(u(&g["window_s"]) >= 26, "ten samples 3 s apart: {f}");
    assert!(f["summary"].as_str().is_some_and(|s| !s.is_empty()), "{f}");
    // Still one: at most one an hour, however long it goes on.
    for _ in 0..3 {
        let mut c = Cgroup::create(&format!("{}/{}", pod.rel, unique_container_id()));
        write_from(&c, &dir.join(format!("f{made}")), 256 << 10);
        c.remove_leaf().expect("rmdir of the container cgroup");
        made += 1;
    }
    daemon.barrier();
    assert_eq!(daemon.all(is_finding).len(), 1, "rate-limited");
    let _ = fs::remove_dir_all(&dir);
    daemon.finish();
}
