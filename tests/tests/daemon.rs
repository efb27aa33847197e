//! The daemon as a pipeline sees it: heartbeats, lost events reported, a
//! clean stop on SIGTERM. Needs root (cargo xtask test).

use oomtrace_e2e::{unique_uid, Cgroup, Daemon};

#[test]
fn heartbeat_counts_what_happened() {
    let daemon = Daemon::start(&["--heartbeat", "1s"]);
    let beat = daemon.wait_for("a heartbeat", |l| l["type"] == "heartbeat");
    for field in ["uptime_s", "events", "verdicts", "findings", "lost"] {
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
