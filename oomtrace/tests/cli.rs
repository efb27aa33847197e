//! The command line itself, through the built binary: a closed stdout,
//! exit statuses, usage errors, warnings on stderr. Everything here runs
//! without root except `a_closed_stdout_stops_the_daemon_cleanly`, which
//! loads the eBPF programs and says so when it is skipped.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

fn oomtrace() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_oomtrace"));
    // The tests' own environment must not colour or filter what is checked.
    c.env_remove("OOMTRACE_LOG")
        .env_remove("RUST_LOG")
        .env_remove("CLICOLOR_FORCE");
    c
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn recording() -> String {
    fixtures()
        .join("pod_limit_cgroupfs_driver.rec")
        .display()
        .to_string()
}

fn run(args: &[&str]) -> Output {
    oomtrace()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running oomtrace")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The command with a stdout whose reader is already gone: its first write
/// fails with EPIPE, every time (no race with a reader closing late).
fn with_closed_stdout(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    oomtrace()
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("running oomtrace")
}

#[test]
fn a_closed_stdout_is_success_in_every_command() {
    let rec = recording();
    let explain_log = fixtures()
        .join("explain/host-6.18-dmesg.txt")
        .display()
        .to_string();
    let mut cases: Vec<Vec<&str>> = vec![
        // doctor without root: every check still prints (it then fails).
        vec!["doctor"],
        vec!["doctor", "--format", "json"],
        vec!["replay", &rec],
        vec!["replay", &rec, "--format", "text"],
        vec!["explain", &explain_log],
        vec!["--help"],
        vec!["--version"],
        vec!["help"],
    ];
    if Path::new("/sys/fs/cgroup").is_dir() {
        for format in ["json", "text"] {
            cases.push(vec![
                "memory",
                "--cgroup-root",
                "/sys/fs/cgroup",
                "--format",
                format,
            ]);
        }
    }
    let commands = [
        "run", "tail", "doctor", "record", "replay", "explain", "memory",
    ];
    for c in commands {
        cases.push(vec![c, "--help"]);
        cases.push(vec![c, "-h"]);
    }
    for args in cases {
        let out = with_closed_stdout(&args);
        let err = stderr(&out);
        assert!(
            !err.contains("panicked"),
            "oomtrace {args:?} panicked:\n{err}"
        );
        assert_eq!(out.status.code(), Some(0), "oomtrace {args:?}:\n{err}");
    }
}

#[test]
fn memory_watch_ends_at_a_closed_pipe() {
    if !Path::new("/sys/fs/cgroup").is_dir() {
        eprintln!("skipped: no /sys/fs/cgroup here");
        return;
    }
    let out = with_closed_stdout(&["memory", "--format", "json", "--watch", "1s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// Needs root: it loads and attaches the eBPF programs.
#[test]
fn a_closed_stdout_stops_the_daemon_cleanly() {
    if !is_root() {
        eprintln!("skipped: needs root (loads the eBPF programs)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("oomtrace-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let rec = dir.join("closed.rec");
    let state = dir.join("state.json");
    let mut child = oomtrace()
        .args(["record", rec.to_str().expect("utf-8"), "--heartbeat", "0"])
        .args(["--state-file", state.to_str().expect("utf-8")])
        .args(["--backlog", "off", "--kubelet-log", "none"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running oomtrace record");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("the ready line");
    // The reader is gone now; the daemon has nothing else to print.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("oomtrace record kept running after its stdout closed");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().expect("output");
    let err = stderr(&out);
    assert!(first.contains("\"state\":\"ready\""), "{first}");
    // The status line has its time too, nine fraction digits.
    let ready: Value = serde_json::from_str(&first).expect("JSON");
    assert!(
        ready["time"]
            .as_str()
            .is_some_and(|t| t.len() == "2026-01-01T00:00:00.000000000Z".len() && t.ends_with('Z')),
        "{first}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(state.is_file(), "the state file was not saved");
    // Finished, not cut: it replays.
    let replayed = run(&["replay", rec.to_str().expect("utf-8")]);
    assert!(replayed.status.success(), "{}", stderr(&replayed));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn doctor_refuses_a_missing_path_it_was_given() {
    let out = run(&["doctor", "--btf", "/nonexistent/vmlinux"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--btf /nonexistent/vmlinux"),
        "{}",
        stderr(&out)
    );
    assert!(!text.contains("can run"), "{text}");
}

#[test]
fn doctor_json_is_one_object_whose_worst_check_is_the_exit_status() {
    let out = run(&["doctor", "--format", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let checks = v["checks"].as_array().expect("checks");
    assert!(!checks.is_empty());
    for c in checks {
        assert!(c["name"].is_string() && c["detail"].is_string(), "{c}");
        let status = c["status"].as_str().expect("status");
        assert!(matches!(status, "ok" | "warn" | "fail"), "{c}");
        // Every problem says its fix.
        assert_eq!(c["fix"].is_string(), status != "ok", "{c}");
    }
    assert!(v["hooks"].is_array(), "{v}");
    let worst = |s: &str| checks.iter().any(|c| c["status"] == s);
    let want = if worst("fail") {
        1
    } else if worst("warn") {
        3
    } else {
        0
    };
    assert_eq!(out.status.code(), Some(want), "{v}");
    if !is_root() {
        // Without root: the privileges check names the fix.
        assert_eq!(want, 1);
        let privileges = checks
            .iter()
            .find(|c| c["name"] == "privileges")
            .expect("privileges check");
        assert!(
            privileges["fix"]
                .as_str()
                .is_some_and(|f| f.contains("root")),
            "{privileges}"
        );
    }
}

#[test]
fn doctor_help_lists_only_its_flags_and_its_exit_statuses() {
    let out = run(&["doctor", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for daemon_only in [
        "--heartbeat",
        "--state-file",
        "--metrics-addr",
        "--leak-grace",
        "--backlog",
        "--near-oom",
        "--node-name",
        "--kubelet-log ",
    ] {
        assert!(
            !help.contains(daemon_only),
            "doctor --help lists {daemon_only}"
        );
    }
    for wanted in ["--btf", "--hooks", "--format", "Exit status", "3  degraded"] {
        assert!(
            help.contains(wanted),
            "doctor --help lacks {wanted}:\n{help}"
        );
    }
}

#[test]
fn every_command_shows_an_example() {
    for c in [
        "run", "tail", "doctor", "record", "replay", "explain", "memory",
    ] {
        let out = run(&[c, "--help"]);
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("Examples:\n  oomtrace") || help.contains("Examples:\n  dmesg"),
            "{c}:\n{help}"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["run", "--ring-buffer-bytes", "1000"],
        vec!["run", "--ring-buffer-bytes", "4MB"],
        vec!["run", "--metrics-addr", "nowhere"],
        vec!["run", "--near-oom-interval", "1ms"],
        vec!["run", "--nope"],
        vec!["memory", "--cgroup-root", "/nonexistent"],
        vec!["tail", "--cgroup-root", "/nonexistent"],
        vec!["doctor", "--cgroup-root", "/nonexistent"],
        vec!["explain", "--utc-offset", "noon"],
        vec!["tail", "--verdict", "oom"],
        vec!["tail", "--since", "soon"],
        vec!["tail", "--backlog", "--no-backlog"],
        vec!["run", "--backlog", "off", "--no-backlog"],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{args:?}");
    }
}

/// `tail` keeps its own cursor: a person's `tail` on the node must not
/// take the backlog the DaemonSet is to report.
#[test]
fn tail_refuses_the_daemons_state_file() {
    let out = run(&["tail", "--state-file", "/var/lib/oomtrace/state.json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("that is the daemon's cursor"),
        "{}",
        stderr(&out)
    );
    let help = run(&["tail", "--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("[default: /var/lib/oomtrace/tail-state.json]"),
        "{text}"
    );
    for flag in [
        "--namespace",
        "--pod",
        "--container",
        "--verdict",
        "--since",
        "--all",
        "--backlog",
        "--no-backlog",
        "--utc",
    ] {
        assert!(text.contains(flag), "tail --help lacks {flag}");
    }
    let help = run(&["run", "--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("[default: /var/lib/oomtrace/state.json]") && text.contains("--no-backlog"),
        "{text}"
    );
}

#[test]
fn sizes_and_addresses_people_write_are_accepted() {
    // Parsed, then refused for what follows the flags (a missing cgroup
    // root, exit 2): not for the values themselves.
    for args in [
        ["--ring-buffer-bytes", "4M"],
        ["--ring-buffer-bytes", "4Mi"],
        ["--ring-buffer-bytes", "4MiB"],
        ["--ring-buffer-bytes", "262144"],
        ["--metrics-addr", "localhost:9091"],
        ["--metrics-addr", "[::1]:9091"],
        ["--metrics-addr", "127.0.0.1:9091"],
        ["--metrics-addr", "9091"],
    ] {
        let out = run(&["run", "--cgroup-root", "/nonexistent", args[0], args[1]]);
        let err = stderr(&out);
        assert!(
            err.contains("--cgroup-root /nonexistent"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_missing_recording_says_its_error_once() {
    let out = run(&["replay", "/nonexistent/x.rec"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}

#[test]
fn a_missing_optional_source_is_a_warning_without_colour() {
    let out = oomtrace()
        .args(["explain", "--pods-log-dir", "/nonexistent/pods", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("running oomtrace");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let warning = err
        .lines()
        .find(|l| l.contains("--pods-log-dir /nonexistent/pods"))
        .unwrap_or_else(|| panic!("no warning:\n{err}"));
    assert!(warning.contains("WARN"), "{warning}");
    // stderr is a pipe here, as in a container log.
    assert!(!warning.contains('\x1b'), "ANSI codes in {warning:?}");
}

#[test]
fn log_format_json_writes_diagnostics_as_json_lines() {
    let out = oomtrace()
        .args([
            "--log-format",
            "json",
            "explain",
            "--pods-log-dir",
            "/nonexistent/pods",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("running oomtrace");
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.contains("/nonexistent/pods"))
        .unwrap_or_else(|| panic!("no warning:\n{err}"));
    let v: Value = serde_json::from_str(line).expect("a JSON diagnostic");
    assert_eq!(v["level"], "WARN", "{v}");
    assert!(v["fields"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("--pods-log-dir")));
}
