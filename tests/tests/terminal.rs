//! The terminal commands as a person sees them: run in a real
//! pseudo-terminal (tmux) and the screen read back with its colours
//! (`capture-pane -e`): `oomtrace tail` on a real OOM kill in a pod-shaped
//! cgroup, `oomtrace memory --watch` redrawn in place. Needs root and tmux
//! (cargo xtask test).

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use oomtrace_e2e::{
    bin, oom_hog, require_root, unique_container_id, unique_uid, wait_until, Cgroup, DEADLINE,
};

const LIMIT: u64 = 64 << 20;

/// A detached tmux session running one command; killed when dropped.
struct Screen {
    name: String,
}

impl Screen {
    fn start(tag: &str, command: &str) -> Screen {
        let name = format!("oomtrace-tail-{}-{tag}", std::process::id());
        let status = Command::new("tmux")
            .args(["new-session", "-d", "-s", &name, "-x", "250", "-y", "80"])
            .arg(command)
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE")
            .env("TERM", "xterm-256color")
            .status()
            .expect("tmux is installed (cargo xtask test installs it)");
        assert!(status.success(), "tmux new-session failed: {status}");
        Screen { name }
    }

    /// The screen as text, with its colours as escape sequences when `colour`.
    fn capture(&self, colour: bool) -> String {
        let mut c = Command::new("tmux");
        c.args(["capture-pane", "-p", "-J", "-S", "-", "-t", &self.name]);
        if colour {
            c.arg("-e");
        }
        let out = c.stderr(Stdio::null()).output().expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_for(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let mut seen = String::new();
        let ok = wait_until(DEADLINE, || {
            seen = self.capture(false);
            cond(&seen)
        });
        assert!(ok, "{what} never appeared on the screen:\n{seen}");
        seen
    }

    fn keys(&self, keys: &str) {
        let status = Command::new("tmux")
            .args(["send-keys", "-t", &self.name, keys])
            .status()
            .expect("tmux send-keys");
        assert!(status.success());
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// The kubelet's log directories naming the pod and its container.
fn kubelet_dirs(
    dir: &Path,
    ns: &str,
    pod: &str,
    uid: &str,
    container: &str,
    cid: &str,
) -> (PathBuf, PathBuf) {
    let pods = dir.join("pods");
    let containers = dir.join("containers");
    fs::create_dir_all(pods.join(format!("{ns}_{pod}_{uid}")).join(container)).expect("pods dir");
    fs::create_dir_all(&containers).expect("containers dir");
    let log = pods.join(format!("{ns}_{pod}_{uid}/{container}/0.log"));
    fs::write(&log, "").expect("container log");
    std::os::unix::fs::symlink(
        &log,
        containers.join(format!("{pod}_{ns}_{container}-{cid}.log")),
    )
    .expect("container log symlink");
    (pods, containers)
}

fn modified(p: &Path) -> Option<std::time::SystemTime> {
    fs::metadata(p).and_then(|m| m.modified()).ok()
}

#[test]
fn tail_shows_a_kill_in_columns_with_colour_and_hides_stops() {
    require_root();
    let (uid, cid) = (unique_uid(), unique_container_id());
    let (ns, pod, name) = ("e2e-tail", "web-7d9f8-x2x8z", "app");
    let dir = std::env::temp_dir().join(format!("oomtrace-tail-{uid}"));
    let (pods, containers) = kubelet_dirs(&dir, ns, pod, &uid, name, &cid);
    let state = dir.join("tail-state.json");
    let daemons_state = Path::new("/var/lib/oomtrace/state.json");
    let daemons_before = modified(daemons_state);
    let cgroup = Cgroup::create(&format!("kubepods/burstable/pod{uid}/{cid}"));
    cgroup.set_limit(LIMIT);

    let command = |state: &Path, more: &str| {
        format!(
            "{} tail --state-file {} --pods-log-dir {} --containers-log-dir {} --kubelet-log none --heartbeat 0 {more}; echo \"tail exited $?\"; sleep 600",
            bin("oomtrace").display(),
            state.display(),
            pods.display(),
            containers.display()
        )
    };
    let screen = Screen::start("default", &command(&state, "--no-backlog"));
    // The same events with --all, which shows the stop the default hides.
    let all = Screen::start(
        "all",
        &command(&dir.join("tail-all-state.json"), "--no-backlog --all"),
    );
    all.wait_for("tail --all's column header", |s| {
        s.contains("NAMESPACE/POD")
    });
    let first = screen.wait_for("tail's column header", |s| s.contains("NAMESPACE/POD"));
    assert!(
        first.contains(&format!("tail's cursor: {}", state.display())),
        "{first}"
    );

    // A process of the pod ended by a SIGTERM from this test, not the
    // runtime: a `stopped` line, which tail leaves to --all.
    let mut sleeper = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {} && exec sleep 600",
            cgroup.procs().display()
        ))
        .spawn()
        .expect("sleeper");
    let sleeper_pid = sleeper.id();
    assert!(
        wait_until(DEADLINE, || cgroup.pids().contains(&(sleeper_pid as i32))),
        "the sleeper never joined the pod's cgroup"
    );
    oomtrace_e2e::kill(sleeper_pid as i32, rustix::process::Signal::TERM);
    let _ = sleeper.wait();

    let victim = oom_hog(&cgroup, 256);
    let with_all = all.wait_for("the stop and the kill with --all", |s| {
        s.contains(&format!("(pid {victim}")) && s.contains("sent SIGTERM")
    });
    let stop_row = with_all
        .lines()
        .find(|l| l.contains("stopped"))
        .unwrap_or_else(|| panic!("no stopped row with --all:\n{with_all}"));
    assert!(stop_row.contains(&format!("{ns}/{pod}")), "{stop_row}");
    assert!(
        with_all.contains(", which is not a container runtime"),
        "{with_all}"
    );
    assert!(
        !with_all.contains(") by a process"),
        "no doubled 'by': {with_all}"
    );
    let screen_text = screen.wait_for("the kill's row", |s| s.contains(&format!("(pid {victim}")));
    let lines: Vec<&str> = screen_text.lines().collect();
    let header = lines
        .iter()
        .find(|l| l.contains("NAMESPACE/POD"))
        .expect("header");
    let row_at = lines
        .iter()
        .position(|l| l.contains("pod_limit"))
        .unwrap_or_else(|| panic!("no pod_limit row:\n{screen_text}"));
    let row = lines[row_at];
    // Aligned: each value starts under its column's name.
    for (column, value) in [
        ("NAMESPACE/POD", format!("{ns}/{pod}")),
        ("CONTAINER", name.to_string()),
        ("VERDICT", "pod_limit".to_string()),
    ] {
        assert_eq!(
            row.find(value.as_str()),
            header.find(column),
            "{column}:\n{header}\n{row}"
        );
    }
    // Kubernetes quantities, right-aligned under LIMIT; the victim shares
    // the host's pid namespace, so what the kubelet reports is unknown: `-`.
    let limit_end = header.find("LIMIT").expect("LIMIT") + "LIMIT".len();
    assert_eq!(
        row.get(limit_end - 4..limit_end),
        Some("64Mi"),
        "{header}\n{row}"
    );
    assert!(row.trim_end().ends_with('-'), "{row}");
    let time = row.split_whitespace().next().expect("time");
    assert!(
        time.len() == 8 && time.as_bytes()[2] == b':' && time.as_bytes()[5] == b':',
        "local HH:MM:SS: {row}"
    );
    // The sentence under it, then the next step from the record's facts.
    let sentence = lines[row_at + 1].trim();
    assert!(
        sentence.starts_with(&format!("Container {name} of pod {ns}/{pod} hit its memory limit of 64Mi; the kernel killed oomtrace-hog (pid {victim}")),
        "{sentence}"
    );
    let next = lines[row_at + 2].trim();
    assert!(
        next.starts_with("next: the container's limit is 64Mi, its peak ")
            && next.contains("raise resources.limits.memory"),
        "{next}"
    );
    // The stop came first, and is not on the screen.
    assert!(!screen_text.contains("stopped"), "{screen_text}");
    assert!(!screen_text.contains("sent SIGTERM"), "{screen_text}");

    // Colour: bold yellow verdict, bold green next step, dim header.
    let coloured = screen.capture(true);
    let row_c = coloured
        .lines()
        .find(|l| l.contains("pod_limit"))
        .expect("the row, coloured");
    assert!(row_c.contains("\x1b[1m\x1b[33mpod_limit"), "{row_c:?}");
    assert!(coloured.contains("\x1b[1m\x1b[32mnext:"), "{coloured:?}");
    // tmux writes an attribute once where it starts: the header is dim
    // when the last change of style before it turned dim on.
    let header_at = coloured
        .find("NAMESPACE/POD")
        .expect("the header, coloured");
    let before = &coloured[..header_at];
    let last_style = before.rfind('\x1b').map(|i| &before[i..]);
    assert!(
        last_style.is_some_and(|s| s.starts_with("\x1b[2m")),
        "{coloured:?}"
    );

    // Ctrl-C ends it cleanly; its own cursor saved, the daemon's untouched.
    screen.keys("C-c");
    screen.wait_for("tail's exit", |s| s.contains("tail exited"));
    assert!(
        screen.capture(false).contains("tail exited 0"),
        "{}",
        screen.capture(false)
    );
    assert!(state.is_file(), "tail saved no cursor of its own");
    assert_eq!(
        modified(daemons_state),
        daemons_before,
        "tail touched the daemon's state file"
    );
    drop(screen);
    drop(all);

    // A later tail with a cursor of its own finds the kill in the kernel
    // log: one summary line for the pod asked for; the next one, from
    // the cursor the first left, none.
    let later_state = dir.join("later-state.json");
    let scoped = format!("--pod {pod}");
    let later = Screen::start("later", &command(&later_state, &scoped));
    let shown = later.wait_for("the backlog's summary", |s| {
        s.contains("backlog:") || s.contains("no earlier kill")
    });
    let summary = shown
        .lines()
        .find(|l| l.contains("backlog:"))
        .unwrap_or_else(|| panic!("no backlog summary:\n{shown}"));
    assert!(
        summary.ends_with(&format!(
            "backlog: 1 pod_limit kill in the kernel log since boot, the latest of {ns}/{pod} ({name}); --backlog lists them"
        )),
        "{summary}"
    );
    later.keys("C-c");
    later.wait_for("the later tail's exit", |s| s.contains("tail exited 0"));
    drop(later);
    let again = Screen::start("again", &command(&later_state, &scoped));
    again.wait_for("nothing since the cursor", |s| {
        s.contains("no earlier kill of those asked for in the kernel log since tail last ran")
    });
    drop(again);
    let _ = fs::remove_dir_all(dir);
}

/// On a terminal each table is drawn over the last: one table on the
/// screen and in its scrollback however many were drawn; piped, they follow
/// each other.
#[test]
fn memory_watch_redraws_in_place_on_a_terminal_and_appends_when_piped() {
    require_root();
    let command = format!(
        "{} memory --watch 200ms --node-name watched; sleep 600",
        bin("oomtrace").display()
    );
    let screen = Screen::start("memory", &command);
    let first = screen.wait_for("the first table", |s| s.contains("unaccounted"));
    let stamp = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("node watched:"))
            .map(str::to_owned)
    };
    let first_stamp = stamp(&first).expect("the table's first line");
    // A later table (its time differs) replaced the first one.
    let later = screen.wait_for("a second table", |s| {
        stamp(s).is_some_and(|l| l != first_stamp) && s.contains("unaccounted")
    });
    assert_eq!(
        later.matches("node watched:").count(),
        1,
        "more than one table on the screen and in its scrollback:\n{later}"
    );
    assert!(later.contains("headroom: memory.available "), "{later}");
    drop(screen);

    let piped = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} memory --watch 100ms --format text --node-name piped | head -c 20000",
            bin("oomtrace").display()
        ))
        .output()
        .expect("oomtrace memory | head");
    let text = String::from_utf8_lossy(&piped.stdout);
    assert!(
        piped.status.success(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    assert!(text.matches("node piped:").count() >= 2, "{text}");
    assert!(!text.contains('\x1b'), "escape codes in a pipe: {text:?}");
}
