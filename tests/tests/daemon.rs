//! The daemon as a pipeline sees it: heartbeats, lost events reported, a
//! clean stop on SIGTERM. Needs root (cargo xtask test).

use std::collections::HashSet;

use oomtrace_e2e::{kill, oom_hog, unique_uid, wait_until, Cgroup, Daemon, Json, DEADLINE};

#[test]
fn heartbeat_counts_what_happened() {
    let daemon = Daemon::start(&["--heartbeat", "1s"]);
    let beat = daemon.wait_for("a heartbeat", |l| l["type"] == "heartbeat");
    for field in [
        "uptime_s",
        "events",
        "verdicts",
        "findings",
        "lost",
        "cgroups",
        "kernel_oom_kills",
        "oom_verdicts",
        "oom_group_kills",
        "missed",
    ] {
        assert!(beat[field].is_u64(), "{field} in {beat}");
    }
    daemon.barrier();
    let after = daemon.wait_for("a heartbeat counting the barrier's verdict", |l| {
        l["type"] == "heartbeat" && l["verdicts"].as_u64().is_some_and(|v| v >= 1)
    });
    assert!(after["events"].as_u64().is_some_and(|e| e >= 1), "{after}");
    daemon.finish();
}

#[test]
fn full_ring_buffer_is_reported_as_lost() {
    // One page of ring buffer cannot hold a burst of cgroup events.
    let daemon = Daemon::start(&["--ring-buffer-bytes", "4096"]);
    let parent = Cgroup::create(&format!("oomtrace-burst-{}", unique_uid()));
    let mut made = Vec::new();
    for i in 0..400 {
        let dir = parent.dir.join(format!("c{i}"));
        std::fs::create_dir(&dir).expect("mkdir");
        made.push(dir);
    }
    let lost = daemon.wait_for("a lost line for the cgroup hook", |l| {
        l["type"] == "lost" && l["hook"] == "cgroup"
    });
    assert!(lost["count"].as_u64().is_some_and(|c| c > 0), "{lost}");
    assert!(lost["total"].as_u64() >= lost["count"].as_u64(), "{lost}");
    for dir in made {
        let _ = std::fs::remove_dir(dir);
    }
    daemon.finish();
}

#[test]
fn kills_while_not_running_are_reported_once_after_a_restart() {
    let state = std::env::temp_dir().join(format!("oomtrace-restart-{}.json", unique_uid()));
    let state_arg = state.display().to_string();
    let args = ["--state-file", state_arg.as_str(), "--backlog", "on"];
    // A first run remembers how far it read the kernel log.
    Daemon::start(&args).finish();

    // A kill while oomtrace is down.
    let service = Cgroup::create(&format!("system.slice/missed-{}.service", unique_uid()));
    service.set_limit(32 << 20);
    let pid = oomtrace_e2e::oom_hog(&service, 128);

    let second = Daemon::start(&args);
    let v = second.wait_for(
        "the missed kill, from the kernel log",
        oomtrace_e2e::is_verdict_for(pid),
    );
    assert_eq!(v["source"], "kernel_log", "{v}");
    assert_eq!(v["victim"]["comm"], "oomtrace-hog", "{v}");
    assert_eq!(v["evidence"]["constraint"], "memcg", "{v}");
    assert!(
        v["summary"]
            .as_str()
            .is_some_and(|s| s.contains("not running")),
        "{v}"
    );
    second.finish();

    // Reported once: a third run has nothing to say about it.
    let third = Daemon::start(&args);
    third.barrier();
    let again = third.all(oomtrace_e2e::is_verdict_for(pid));
    assert!(again.is_empty(), "reported twice: {again:?}");
    third.finish();
    let _ = std::fs::remove_file(state);
}

#[test]
fn heartbeats_come_every_interval() {
    // The ticks behind heartbeats (and leak checks, and disarming the charge
    // counter) once starved whenever another branch of the daemon's loop
    // fired first, even the 1 s drops poll on a quiet node: one beat in tens
    // of seconds. Three one-second beats must come two seconds of uptime
    // apart (whole seconds: up to three), counted from the first beat, not
    // from the start (a slow start under emulation once made the third
    // beat look late).
    let daemon = Daemon::start(&["--heartbeat", "1s"]);
    let three = wait_until(std::time::Duration::from_secs(20), || {
        daemon.all(|l| l["type"] == "heartbeat").len() >= 3
    });
    let beats = daemon.all(|l| l["type"] == "heartbeat");
    assert!(three, "{} heartbeats in 20 s: ticks starved", beats.len());
    let uptime = |b: &serde_json::Value| b["uptime_s"].as_u64().expect("uptime_s in a heartbeat");
    let span = uptime(&beats[2]) - uptime(&beats[0]);
    assert!(
        span <= 3,
        "three 1 s heartbeats spanned {span} s of uptime ({} then {}): ticks starved",
        beats[0],
        beats[2]
    );
    daemon.finish();
}

/// The charge counter costs every page charge on the node while armed
/// (BENCHMARKS.md): off unless asked for, and then taken wherever the
/// kernel has its tracepoint.
#[test]
fn charge_counter_is_off_unless_asked_for() {
    let daemon = Daemon::start(&[]);
    assert_eq!(daemon.hook("charge"), None);
    let ready = daemon.wait_for("the ready status line", |l| {
        l["type"] == "status" && l["state"] == "ready"
    });
    let charge = ready["hooks"]
        .as_array()
        .and_then(|h| h.iter().find(|c| c["family"] == "charge"))
        .cloned()
        .expect("a charge family in the status line");
    assert!(
        charge["skipped"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("off by default")),
        "{charge}"
    );
    daemon.barrier();
    for v in daemon.all(|l| l["type"] == "verdict") {
        assert!(
            !v["growth"].to_string().contains("charge_counter"),
            "a charge counter without the hook: {v}"
        );
    }
    daemon.finish();

    let has_tracepoint =
        std::path::Path::new("/sys/kernel/tracing/events/memcg/mod_memcg_lruvec_state/format")
            .exists();
    let asked = Daemon::start(&["--hooks", "charge=tracepoint"]);
    assert_eq!(
        asked.hook("charge").as_deref(),
        has_tracepoint.then_some("tracepoint")
    );
    asked.finish();
}

/// The process state letter from /proc/PID/stat (`T`: stopped).
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

/// Never silent: kills whose events were lost are reported. The daemon is
/// stopped (SIGSTOP) with one page of ring buffer; a burst of cgroup
/// events fills it, then real OOM kills happen: their victim records
/// cannot be reserved. Resumed, the daemon says `lost` for the victim hook
/// and, once the deadline has passed, `missed` for the kills the kernel
/// counted (/proc/vmstat oom_kill) that have no verdict.
#[test]
fn kills_whose_events_were_lost_are_reported_missed() {
    const KILLS: usize = 3;
    let daemon = Daemon::start(&["--ring-buffer-bytes", "4096", "--heartbeat", "1s"]);
    daemon.settle();
    let pid = daemon.pid();
    let parent = Cgroup::create(&format!("oomtrace-flood-{}", unique_uid()));
    let service = Cgroup::create(&format!("oomtrace-missed-{}.service", unique_uid()));
    service.set_limit(16 << 20);

    kill(pid as i32, rustix::process::Signal::STOP);
    assert!(
        wait_until(DEADLINE, || proc_state(pid) == Some('T')),
        "the daemon did not stop"
    );
    let mut made = Vec::new();
    for i in 0..300 {
        let dir = parent.dir.join(format!("c{i}"));
        std::fs::create_dir(&dir).expect("mkdir");
        made.push(dir);
    }
    let mine: Vec<u32> = (0..KILLS).map(|_| oom_hog(&service, 64)).collect();
    kill(pid as i32, rustix::process::Signal::CONT);

    let lost = daemon.wait_for("a lost line for the victim hook", |l| {
        l["type"] == "lost" && l["hook"] == "victim"
    });
    assert!(lost["count"].as_u64().is_some_and(|c| c > 0), "{lost}");
    let missed = daemon.wait_for("a missed line", |l| l["type"] == "missed");
    eprintln!("missed line: {missed}");
    let n = |v: &Json, f: &str| {
        v[f].as_u64()
            .unwrap_or_else(|| panic!("{f} is not a count: {v}"))
    };
    assert!(n(&missed, "count") >= 1, "{missed}");
    assert_eq!(
        n(&missed, "kernel_oom_kills"),
        n(&missed, "verdicts") + n(&missed, "oom_group_kills") + n(&missed, "total"),
        "every kill the kernel counted is a verdict or reported missed: {missed}"
    );
    assert!(missed["since"].is_string(), "{missed}");
    assert!(
        missed["summary"]
            .as_str()
            .is_some_and(|s| s.contains("no verdict")),
        "{missed}"
    );

    // Every kill of this test without a verdict is counted missed (other
    // tests kill in parallel, and vmstat is machine-wide: their lost kills
    // count too, so the totals are at least ours).
    let verdicts: HashSet<u64> = daemon
        .all(|l| l["type"] == "verdict")
        .iter()
        .filter_map(|v| v["victim"]["pid"].as_u64())
        .collect();
    let unjudged = mine
        .iter()
        .filter(|&&p| !verdicts.contains(&u64::from(p)))
        .count() as u64;
    assert!(
        unjudged >= 1,
        "the flood did not fill the ring buffer before the kills: all {KILLS} have verdicts"
    );
    let covering = daemon.wait_for("missed lines covering this test's kills", |l| {
        l["type"] == "missed" && l["total"].as_u64().is_some_and(|t| t >= unjudged)
    });
    // Each missed kill lost its victim record: the heartbeat's counts agree.
    let beat = daemon.wait_for("a heartbeat counting the missed kills", |l| {
        l["type"] == "heartbeat" && l["missed"].as_u64() >= covering["total"].as_u64()
    });
    let lost_victim: u64 = daemon
        .all(|l| l["type"] == "lost" && l["hook"] == "victim")
        .iter()
        .map(|l| n(l, "count"))
        .sum();
    assert!(
        n(&beat, "missed") <= lost_victim,
        "more kills missed than victim records lost ({lost_victim}): {beat}"
    );
    assert!(
        n(&beat, "kernel_oom_kills") >= KILLS as u64,
        "the kernel counted this test's kills: {beat}"
    );
    for dir in made {
        let _ = std::fs::remove_dir(dir);
    }
    daemon.finish();
}
