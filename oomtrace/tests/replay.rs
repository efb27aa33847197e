//! Attribution from recorded traces: every fixture (recorded from a real
//! end-to-end scenario by `cargo xtask fixtures`) replays to exactly the
//! lines it produced live, and each says what its scenario is about. Runs
//! anywhere, no root, no kernel.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn replay(path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oomtrace"))
        .arg("replay")
        .arg(path)
        .output()
        .expect("running oomtrace replay")
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn replayed(name: &str) -> Vec<Value> {
    let out = replay(&fixtures().join(format!("{name}.rec")));
    assert!(
        out.status.success(),
        "replay of {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lines(&String::from_utf8_lossy(&out.stdout))
}

#[test]
fn every_fixture_replays_to_its_recorded_lines() {
    let mut seen = 0;
    for entry in fs::read_dir(fixtures()).expect("fixtures dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "rec") {
            continue;
        }
        seen += 1;
        let out = replay(&path);
        assert!(
            out.status.success(),
            "replay of {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let expected =
            fs::read_to_string(path.with_extension("expected.jsonl")).expect("expected lines");
        assert_eq!(
            lines(&String::from_utf8_lossy(&out.stdout)),
            lines(&expected),
            "{}",
            path.display()
        );
    }
    assert!(
        seen >= 10,
        "only {seen} fixtures: run `cargo xtask fixtures`"
    );
}

fn verdicts<'a>(
    lines: &'a [Value],
    pred: impl Fn(&Value) -> bool + 'a,
) -> impl Iterator<Item = &'a Value> + 'a {
    lines
        .iter()
        .filter(move |l| l["type"] == "verdict" && pred(l))
}

#[test]
fn fixtures_carry_their_scenarios_verdicts() {
    let init = replayed("a_containers_init_past_its_limit_matches_the_runtime_and_the_kernel");
    assert!(
        verdicts(&init, |v| v["verdict"] == "pod_limit"
            && v["kubelet_reports"] == true
            && v["victim"]["ns_pid"] == 1)
        .count()
            == 1
    );

    let child = replayed("a_childs_kill_is_reported_as_the_runtime_reports_it");
    assert!(
        verdicts(&child, |v| v["verdict"] == "pod_limit"
            && v["kubelet_reports"] == false)
        .count()
            == 1
    );

    let alloc = replayed("pods_past_allocatable_together_are_node_pressure");
    assert!(verdicts(&alloc, |v| v["kind"] == "allocatable_oom").count() >= 1);

    let escape = replayed("process_escaping_its_pod_is_found_at_the_move_and_at_the_kill");
    assert!(escape
        .iter()
        .any(|l| l["type"] == "finding" && l["finding"] == "escape_detected"));
    assert!(
        verdicts(&escape, |v| v["verdict"] == "escaped_process"
            && v["pod"]["uid"].is_string())
        .count()
            == 1
    );

    let near = replayed("near_oom_warns_a_container_growing_into_its_limit_before_its_kill");
    let warned: Vec<&Value> = near
        .iter()
        .filter(|l| l["type"] == "finding" && l["finding"] == "near_oom")
        .collect();
    assert_eq!(warned.len(), 1, "{near:?}");
    assert!(warned[0]["seconds_to_limit"]
        .as_f64()
        .is_some_and(|s| s > 0.0));
    assert!(
        verdicts(&near, |v| v["verdict"] == "pod_limit"
            && v["warned_s_before"].as_f64().is_some_and(|s| s > 0.0))
        .count()
            == 1
    );

    let evict = replayed("a_hard_eviction_through_the_runtime_is_an_eviction");
    assert!(
        verdicts(&evict, |v| v["kind"] == "eviction"
            && v["signal"]["name"] == "SIGKILL"
            && v["evidence"]["basis"] == "runtime_sigterm_then_sigkill")
        .count()
            >= 1
    );

    let stops = replayed("signals_under_pressure_that_are_not_the_kubelets_eviction_are_stops");
    let deleted = replayed("a_deletion_under_pressure_is_a_stop");
    let one = replayed("one_container_stopped_while_its_pod_runs_is_not_an_eviction");
    for (lines, reason) in [
        (&stops, "sender_not_runtime"),
        (&stops, "sigkill_without_sigterm"),
        (&deleted, "grace_longer_than_hard_eviction"),
        (&one, "pod_not_stopped"),
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l["type"] == "stopped" && l["reason"] == reason),
            "no stopped line with reason {reason}"
        );
        assert_eq!(verdicts(lines, |v| v["kind"] == "eviction").count(), 0);
    }

    for name in [
        "a_stop_after_a_childs_kill_is_a_misreport_finding",
        "a_misreport_under_the_systemd_drivers_names",
    ] {
        let misreport = replayed(name);
        assert!(
            misreport.iter().any(|l| l["type"] == "finding"
                && l["finding"] == "oomkilled_misreport"
                && l["exit"]["signal"] == "SIGTERM"),
            "{name}"
        );
    }

    let leak = replayed("pod_cgroup_left_behind_is_a_leak_after_the_grace_period");
    assert!(leak
        .iter()
        .any(|l| l["type"] == "finding" && l["finding"] == "cgroup_leak"));

    let host = replayed("host_service_gets_system_verdict");
    assert!(verdicts(&host, |v| v["verdict"] == "system" && v["pod"].is_null()).count() >= 1);

    let systemd = replayed("pod_limit_systemd_driver");
    assert!(
        verdicts(&systemd, |v| v["verdict"] == "pod_limit"
            && v["container"]["runtime"] == "containerd")
        .count()
            == 1
    );

    let fallback = replayed("forced_tracepoint_fallback_still_attributes");
    assert!(
        verdicts(&fallback, |v| v["verdict"] == "pod_limit"
            && v["evidence"]["victim_hook"] == "tracepoint")
        .count()
            == 1
    );
}

fn stderr_of_failed(path: &Path) -> String {
    let out = replay(path);
    assert!(
        !out.status.success(),
        "replay of {} should fail",
        path.display()
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_recordings_are_clear_errors() {
    let dir = std::env::temp_dir().join(format!("oomtrace-replay-test-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("tmp dir");

    let missing = dir.join("missing.rec");
    assert!(stderr_of_failed(&missing).contains("missing.rec"));

    let foreign = dir.join("foreign.rec");
    fs::write(&foreign, "[package]\nname = \"x\"\n").expect("write");
    assert!(stderr_of_failed(&foreign).contains("not an oomtrace recording"));

    let empty = dir.join("empty.rec");
    fs::write(&empty, "").expect("write");
    assert!(stderr_of_failed(&empty).contains("empty"));

    let whole = fs::read(fixtures().join("pod_limit_cgroupfs_driver.rec")).expect("fixture");
    let truncated = dir.join("truncated.rec");
    let cut = whole.len() - 40;
    fs::write(&truncated, &whole[..cut]).expect("write");
    let err = stderr_of_failed(&truncated);
    assert!(err.contains("truncated"), "{err}");

    // Version 1 kept answers by position: refused, saying what to do.
    let text = String::from_utf8(whole).expect("utf-8");
    let v1 = dir.join("v1.rec");
    fs::write(&v1, text.replacen("\"version\":2", "\"version\":1", 1)).expect("write");
    let err = stderr_of_failed(&v1);
    assert!(
        err.contains("format version 1") && err.contains("record the scenario again"),
        "{err}"
    );

    // An answer is found by its question: one asked of another pid is not
    // this question's answer.
    let asked = text
        .find("{\"answer\":{\"call\":\"namespaces\",\"pid\":")
        .expect("a namespaces answer");
    let mut other = text.clone();
    let pid_at = asked + "{\"answer\":{\"call\":\"namespaces\",\"pid\":".len();
    other.insert(pid_at, '9');
    let diverged = dir.join("diverged.rec");
    fs::write(&diverged, other).expect("write");
    let err = stderr_of_failed(&diverged);
    assert!(
        err.contains("diverged") && err.contains("Namespaces"),
        "{err}"
    );

    let _ = fs::remove_dir_all(dir);
}
