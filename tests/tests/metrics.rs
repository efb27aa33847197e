//! `--metrics-addr` scraped by a real Prometheus (Debian's `prometheus`,
//! installed by `cargo xtask test`) after a real OOM kill: its query API
//! must return the kill with its verdict and pod, and `promtool check
//! metrics` must accept the exposition. Needs root (cargo xtask test).

use std::{
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use oomtrace_e2e::{
    bin, is_verdict_for, oom_hog, require_root, unique_container_id, unique_uid, Cgroup, Daemon,
    Json, DEADLINE,
};

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";

fn require_prometheus() {
    for tool in [PROMETHEUS, PROMTOOL] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: `cargo xtask test` installs Debian's prometheus package (apt-get install -y prometheus)"
        );
    }
}

/// A loopback port free right now (the kernel picks it; the listener is
/// closed so the process under test can take it).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Prometheus run by the test on loopback with its own config and storage
/// in a temporary directory; killed and removed on drop.
struct Prometheus {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("oomtrace-e2e-prometheus-{}", unique_uid()));
        fs::create_dir_all(dir.join("data")).expect("prometheus temp dir");
        let config = dir.join("prometheus.yml");
        fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: oomtrace\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("prometheus.yml");
        let check = Command::new(PROMTOOL)
            .args(["check", "config"])
            .arg(&config)
            .output()
            .expect("promtool check config");
        assert!(
            check.status.success(),
            "promtool rejects the test's config: {}",
            String::from_utf8_lossy(&check.stdout) + String::from_utf8_lossy(&check.stderr)
        );
        let port = free_port();
        let log = fs::File::create(dir.join("prometheus.log")).expect("prometheus.log");
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning prometheus");
        Prometheus { child, dir, port }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// The instant vector `expr` evaluates to now (empty while Prometheus
    /// is starting or has not scraped yet).
    fn query(&self, expr: &str) -> Vec<Json> {
        let url = format!("http://127.0.0.1:{}/api/v1/query", self.port);
        let Ok(mut reply) = ureq::get(&url).query("query", expr).call() else {
            return Vec::new();
        };
        let Ok(body) = reply.body_mut().read_to_string() else {
            return Vec::new();
        };
        let v: Json = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("Prometheus' query API answered non-JSON ({e}): {body}"));
        assert_eq!(v["status"], "success", "query {expr}: {v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Polls `expr` until `cond` holds for its result, up to [`DEADLINE`].
    fn wait_for(&self, expr: &str, cond: impl Fn(&[Json]) -> bool) -> Vec<Json> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let result = self.query(expr);
            if cond(&result) {
                return result;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus never returned what was expected for `{expr}` (last: {result:?}); its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn prometheus_scrapes_a_real_kill() {
    require_root();
    require_prometheus();
    let addr = format!("127.0.0.1:{}", free_port());
    // The pod's name from a pods log directory of the test's own, as the
    // kubelet lays it out: the metrics label pods by name, never by uid.
    let uid = unique_uid();
    let pod_name = format!("metrics-{}", &uid[..8]);
    let pods_log_dir = std::env::temp_dir().join(format!("oomtrace-metrics-pods-{uid}"));
    fs::create_dir_all(pods_log_dir.join(format!("e2e_{pod_name}_{uid}/app")))
        .expect("pods log dir");
    let pods_log_arg = pods_log_dir.display().to_string();
    let daemon = Daemon::start(&["--metrics-addr", &addr, "--pods-log-dir", &pods_log_arg]);
    let prometheus = Prometheus::start(&addr);

    let cid = unique_container_id();
    let container = Cgroup::create(&format!("kubepods/burstable/pod{uid}/{cid}"));
    container.set_limit(64 << 20);
    let pid = oom_hog(&container, 256);
    let v = daemon.wait_for("the pod_limit verdict", is_verdict_for(pid));
    assert_eq!(v["verdict"], "pod_limit", "{v}");

    // The kill, as Prometheus stored it from its own scrapes.
    let expr = format!("oomtrace_kills_total{{pod_name=\"{pod_name}\"}}");
    let result = prometheus.wait_for(&expr, |r| !r.is_empty());
    assert_eq!(result.len(), 1, "one series for the pod: {result:?}");
    let series = &result[0];
    assert_eq!(series["metric"]["verdict"], "pod_limit", "{series}");
    assert_eq!(series["metric"]["pod_namespace"], "e2e", "{series}");
    assert_eq!(series["metric"]["source"], "live", "{series}");
    assert_eq!(series["metric"]["job"], "oomtrace", "{series}");
    assert_eq!(series["value"][1], "1", "one kill: {series}");

    // deploy/README.md's alert expression fires on a pod's first kill (a
    // series that starts at 1, which increase() alone does not see).
    let alert = "(increase(oomtrace_kills_total[10m]) > 0) or (oomtrace_kills_total unless oomtrace_kills_total offset 10m)";
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/README.md"))
            .expect("deploy/README.md");
    assert!(
        readme.contains(alert),
        "deploy/README.md no longer shows {alert}"
    );
    // Other tests' kills may be there too: this daemon sees the machine.
    prometheus.wait_for(alert, |r| {
        r.iter()
            .any(|s| s["metric"]["pod_name"] == pod_name.as_str())
    });

    // The daemon itself, seen through the same scrapes.
    let up = prometheus.wait_for("oomtrace_up", |r| !r.is_empty());
    assert_eq!(up[0]["value"][1], "1", "{up:?}");
    let victim = prometheus.wait_for("oomtrace_hook{family=\"victim\"} == 1", |r| !r.is_empty());
    assert_eq!(
        victim[0]["metric"]["kind"].as_str(),
        daemon.hook("victim").as_deref(),
        "the chosen victim hook, as in the status line: {victim:?}"
    );
    let build = prometheus.wait_for("oomtrace_build_info", |r| !r.is_empty());
    assert_eq!(
        build[0]["metric"]["version"],
        env!("CARGO_PKG_VERSION"),
        "{build:?}"
    );

    // promtool lints the exposition a plain client gets (the classic text
    // format; Prometheus itself negotiated OpenMetrics above).
    let exposition = ureq::get(&format!("http://{addr}/metrics"))
        .call()
        .and_then(|mut r| r.body_mut().read_to_string())
        .expect("GET /metrics");
    assert!(exposition.contains(&pod_name), "{exposition}");
    assert!(!exposition.contains(&uid), "no pod uid label: {exposition}");
    let mut promtool = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool check metrics");
    {
        use std::io::Write as _;
        let mut stdin = promtool.stdin.take().expect("stdin");
        stdin
            .write_all(exposition.as_bytes())
            .expect("feeding promtool");
    }
    let out = promtool.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\non:\n{exposition}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(prometheus);
    daemon.finish();
    let _ = fs::remove_dir_all(&pods_log_dir);
}

#[test]
fn taken_metrics_port_fails_the_start_naming_it() {
    require_root();
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = Command::new(bin("oomtrace"))
        .args(["run", "--metrics-addr", &addr])
        .stdin(Stdio::null())
        .output()
        .expect("oomtrace run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started on a taken port: {stderr}");
    assert!(
        stderr.contains(&addr) && stderr.contains("--metrics-addr"),
        "the error names the flag and the address: {stderr}"
    );
    // It fails before the hooks load: no ready line a pipeline could trust.
    assert!(
        out.stdout.is_empty(),
        "printed before failing: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}
