//! `--metrics-addr`: the records the sink prints, counted for Prometheus.
//!
//! The JSON lines stay the contract (docs/schema.md); metrics are a view of
//! them for alerting, fed from exactly the records the sink writes
//! ([`Metered`] wraps the sink), so the two never disagree. Served as
//! OpenMetrics text at `GET /metrics` by axum, on the daemon's own runtime.
//!
//! Label values are names, never guesses: a field oomtrace does not know is
//! an empty label (Prometheus treats that as absent). Container ids are not
//! labels: a restarted container gets a new id, so each kill would be a new
//! series.

use std::{
    future::Future,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::Context as _;
use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::IntoResponse,
    routing::get,
    Router,
};
use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use serde::Serialize;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use oomtrace_common::Hook;
use oomtrace_core::{
    output::sink::{Line, Sink, Status},
    output::verdict::{Container, Pod},
};

/// OpenMetrics is what `prometheus_client` writes and what Prometheus asks
/// for first.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic text format, for every other client (curl, promtool, older
/// scrapers): their parsers do not know OpenMetrics' counter naming.
const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How long a stopping daemon waits for a scrape in flight.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// `--metrics-addr`: `IP:PORT`, or a bare `PORT` / `:PORT`, which means
/// loopback only: exposing the endpoint beyond the node is a choice the
/// user makes by naming an address.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    let port = s.strip_prefix(':').unwrap_or(s);
    if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
        return port
            .parse::<u16>()
            .map(|p| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p))
            .map_err(|_| format!("`{s}`: the port must be 0..=65535"));
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bad = || {
        format!(
            "`{s}` is not PORT, :PORT, IP:PORT or HOST:PORT (e.g. 9090, localhost:9090, 0.0.0.0:9090, [::1]:9090)"
        )
    };
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    // The resolver may put ::1 first; localhost means what a bare port means.
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '[' || c == ']') {
        return Err(bad());
    }
    use std::net::ToSocketAddrs;
    let mut addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("`{s}`: cannot resolve {host}: {e}"))?;
    addrs
        .next()
        .ok_or_else(|| format!("`{s}`: {host} resolves to no address"))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KillLabels {
    verdict: String,
    kind: String,
    /// `live` (seen by the hooks) or `backlog` (read from the kernel log at
    /// start: a kill while oomtrace was not running).
    source: String,
    /// `true`/`false`: whether Kubernetes will show the kill (`OOMKilled`);
    /// empty outside containers.
    kubelet_reports: String,
    pod_namespace: String,
    pod_name: String,
    container_name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FindingLabels {
    finding: String,
    pod_namespace: String,
    pod_name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoppedLabels {
    signal: String,
    pod_namespace: String,
    pod_name: String,
    container_name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookLabels {
    hook: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookChoiceLabels {
    family: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartLabels {
    part: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    kernel: String,
    cgroup: String,
}

/// Every metric oomtrace exports, registered once.
pub struct Metrics {
    registry: Registry,
    kills: Family<KillLabels, Counter>,
    findings: Family<FindingLabels, Counter>,
    stopped: Family<StoppedLabels, Counter>,
    lost: Family<HookLabels, Counter>,
    missed: Counter,
    up: Gauge,
    kernel_log: Gauge,
    node_memory: Family<PartLabels, Gauge>,
    dying_cgroups: Gauge,
    /// Where the breakdown is read from at each scrape: the memory
    /// hierarchy's root, and whether it is v2.
    memory_root: std::path::PathBuf,
    v2: bool,
    /// Set once the backlog is over: a `kernel_log` verdict after it was
    /// seen live (kernel-log mode).
    live: AtomicBool,
}

impl Metrics {
    /// Metrics for a daemon that printed `status` (its `ready` line): build
    /// info and the hook each family took are fixed from then on.
    pub fn new(status: &Status) -> Metrics {
        let mut registry = Registry::default();
        let kills = Family::<KillLabels, Counter>::default();
        registry.register(
            "oomtrace_kills",
            "Processes killed for memory, by verdict (pod_limit, node_pressure, escaped_process, system), node_pressure kind, source (live, or backlog: read from the kernel log at start), whether Kubernetes will show it, and the pod and container when known",
            kills.clone(),
        );
        let findings = Family::<FindingLabels, Counter>::default();
        registry.register(
            "oomtrace_findings",
            "Findings beside the kills (escape_detected, cgroup_leak, oomkilled_misreport, near_oom)",
            findings.clone(),
        );
        let stopped = Family::<StoppedLabels, Counter>::default();
        registry.register(
            "oomtrace_stopped",
            "Pod processes ended by SIGKILL/SIGTERM from userspace while the node was not under memory pressure",
            stopped.clone(),
        );
        let lost = Family::<HookLabels, Counter>::default();
        registry.register(
            "oomtrace_lost_events",
            "Kernel events lost because the ring buffer was full, per hook family: some kills may have no verdict",
            lost.clone(),
        );
        // Every hook family with a DROPS slot starts at 0 so that `rate()`
        // and alerts see the series before the first loss.
        for hook in Hook::ALL {
            let _ = lost.get_or_create(&HookLabels {
                hook: hook.name().into(),
            });
        }
        let missed = Counter::default();
        registry.register(
            "oomtrace_missed_kills",
            "OOM kills the kernel counted (/proc/vmstat oom_kill) that got no verdict: their events were lost",
            missed.clone(),
        );
        let hooks = Family::<HookChoiceLabels, Gauge>::default();
        registry.register(
            "oomtrace_hook",
            "1 for the hook kind each family attached with (kind=\"none\" when none did), 0 for the candidates it skipped",
            hooks.clone(),
        );
        for choice in &status.hooks {
            let family = choice.family.name();
            let chosen = choice.chosen.map(|k| k.name()).unwrap_or("none");
            hooks
                .get_or_create(&HookChoiceLabels {
                    family: family.into(),
                    kind: chosen.into(),
                })
                .set(1);
            for skipped in &choice.skipped {
                hooks
                    .get_or_create(&HookChoiceLabels {
                        family: family.into(),
                        kind: skipped.kind.name().into(),
                    })
                    .set(0);
            }
        }
        let build = Family::<BuildLabels, Gauge>::default();
        registry.register(
            "oomtrace_build_info",
            "Always 1: the oomtrace version, the kernel release and the cgroup version it runs on",
            build.clone(),
        );
        build
            .get_or_create(&BuildLabels {
                version: status.version.into(),
                kernel: status.kernel.clone(),
                cgroup: label(&status.cgroup.version),
            })
            .set(1);
        let up = Gauge::default();
        registry.register(
            "oomtrace_up",
            "1 while every hook is attached and kills are being watched; 0 once the daemon is stopping",
            up.clone(),
        );
        up.set(i64::from(status.state == "ready"));
        let kernel_log = Gauge::default();
        registry.register(
            "oomtrace_kernel_log_reading",
            "1 when /dev/kmsg is read (the kernel's OOM summary lines fill gaps), else 0",
            kernel_log.clone(),
        );
        kernel_log.set(i64::from(status.kernel_log == "reading"));
        let node_memory = Family::<PartLabels, Gauge>::default();
        registry.register(
            "oomtrace_node_memory_bytes",
            "Where the node's memory is, read at the scrape; the parts add up to MemTotal: free, pods, system, other_cgroups, kernel, page_cache_unowned, unowned_anon, dying_cgroups, unaccounted (may be negative)",
            node_memory.clone(),
        );
        let dying_cgroups = Gauge::default();
        registry.register(
            "oomtrace_dying_cgroups",
            "Removed memory cgroups the kernel still holds (v2 nr_dying_descendants of the root; v1 /proc/cgroups' count less the live ones), read at the scrape",
            dying_cgroups.clone(),
        );
        Metrics {
            node_memory,
            dying_cgroups,
            memory_root: status.cgroup.memory_root.clone().into(),
            v2: status.cgroup.version == oomtrace_core::node::cgroup::Version::V2,
            registry,
            kills,
            findings,
            stopped,
            lost,
            missed,
            up,
            kernel_log,
            live: AtomicBool::new(false),
        }
    }

    /// The backlog is over: what follows was seen live.
    pub fn live(&self) {
        self.live.store(true, Ordering::Relaxed);
    }

    /// Counts one record the sink wrote.
    pub fn observe(&self, rec: &Line) {
        match rec {
            Line::Verdict(v) => {
                let (pod_namespace, pod_name) = pod_labels(v.pod.as_ref());
                self.kills
                    .get_or_create(&KillLabels {
                        verdict: label(&v.verdict),
                        kind: v.kind.as_ref().map(label).unwrap_or_default(),
                        source: source_label(v.source, self.live.load(Ordering::Relaxed)).into(),
                        kubelet_reports: v
                            .kubelet_reports
                            .map(|r| r.to_string())
                            .unwrap_or_default(),
                        pod_namespace,
                        pod_name,
                        container_name: container_label(v.container.as_ref()),
                    })
                    .inc();
            }
            Line::Finding(f) => {
                let (pod_namespace, pod_name) = pod_labels(f.pod.as_ref());
                self.findings
                    .get_or_create(&FindingLabels {
                        finding: label(&f.finding),
                        pod_namespace,
                        pod_name,
                    })
                    .inc();
            }
            Line::Stopped(s) => {
                let (pod_namespace, pod_name) = pod_labels(s.pod.as_ref());
                self.stopped
                    .get_or_create(&StoppedLabels {
                        signal: s.signal.name.into(),
                        pod_namespace,
                        pod_name,
                        container_name: container_label(s.container.as_ref()),
                    })
                    .inc();
            }
            Line::Lost(l) => {
                self.lost
                    .get_or_create(&HookLabels {
                        hook: l.hook.into(),
                    })
                    .inc_by(l.count);
            }
            Line::Missed(m) => {
                self.missed.inc_by(m.count);
            }
            Line::Status(s) => {
                self.up.set(i64::from(s.state == "ready"));
                self.kernel_log.set(i64::from(s.kernel_log == "reading"));
            }
            Line::Heartbeat(_) => {}
        }
    }

    /// Reads the node memory breakdown into its gauges (at each scrape;
    /// a failed read keeps the last values).
    pub fn refresh_node_memory(&self) {
        let input = match oomtrace_core::node::node_memory::read(&self.memory_root, self.v2) {
            Ok(i) => i,
            Err(e) => {
                tracing::debug!("node memory for the metrics: {e}");
                return;
            }
        };
        let b = oomtrace_core::node::node_memory::breakdown(&input);
        for (part, bytes) in oomtrace_core::node::node_memory::parts(&b) {
            self.node_memory
                .get_or_create(&PartLabels { part: part.into() })
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        if let Some(n) = b.dying_cgroups.count {
            self.dying_cgroups.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// The exposition, OpenMetrics text.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// The exposition in the classic text format (0.0.4).
    pub fn encode_text(&self) -> Result<String, std::fmt::Error> {
        Ok(openmetrics_to_text(&self.encode()?))
    }
}

/// OpenMetrics text as the classic format: the two differ, for the metric
/// types used here (counter, gauge), only in that OpenMetrics names a
/// counter family without its `_total` suffix in `# HELP`/`# TYPE` (the
/// classic parser then sees `x_total` as another, untyped family) and ends
/// with `# EOF`.
fn openmetrics_to_text(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    let mut help: Option<&str> = None;
    for line in om.lines() {
        if line == "# EOF" {
            continue;
        }
        if line.starts_with("# HELP ") {
            // Held until its TYPE line says whether the name changes.
            if let Some(h) = help.replace(line) {
                out.push_str(h);
                out.push('\n');
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let name_total = format!("{name}_total");
            let counter = kind == "counter" && !name.ends_with("_total");
            if let Some(h) = help.take() {
                match h.strip_prefix("# HELP ").and_then(|r| r.strip_prefix(name)) {
                    Some(text) if counter => {
                        out.push_str("# HELP ");
                        out.push_str(&name_total);
                        out.push_str(text);
                    }
                    _ => out.push_str(h),
                }
                out.push('\n');
            }
            if counter {
                out.push_str(&format!("# TYPE {name_total} counter\n"));
            } else {
                out.push_str(line);
                out.push('\n');
            }
            continue;
        }
        if let Some(h) = help.take() {
            out.push_str(h);
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    if let Some(h) = help {
        out.push_str(h);
        out.push('\n');
    }
    out
}

/// A serialized enum's name (`pod_limit`, `v1`, ...), the same word the
/// JSON line uses.
fn label<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// The pod's namespace and name. Not `namespace`/`pod`: those are the
/// scrape's own target labels (oomtrace's pod), which Prometheus would
/// rename `exported_*` or, with `honor_labels`, overwrite. Not the pod uid:
/// every new pod of a Deployment would be a new series of each counter.
fn pod_labels(pod: Option<&Pod>) -> (String, String) {
    match pod {
        Some(p) => (
            p.namespace.clone().unwrap_or_default(),
            p.name.clone().unwrap_or_default(),
        ),
        None => Default::default(),
    }
}

/// A verdict's `source` as the `source` label: `backlog` for the kills the
/// daemon read from the kernel log at start (`kernel_log` before the
/// backlog's end: they happened while it was not running, so an alert on
/// them is about the past), `live` for everything seen since: by the hooks,
/// or by the kernel log in kernel-log mode.
fn source_label(source: &str, live: bool) -> &'static str {
    match source {
        "kernel_log" if !live => "backlog",
        _ => "live",
    }
}

fn container_label(c: Option<&Container>) -> String {
    c.and_then(|c| c.name.clone()).unwrap_or_default()
}

/// A sink that counts what it passes on: metrics see exactly the lines
/// printed, in order, including the `stopping` status.
pub struct Metered {
    inner: Box<dyn Sink>,
    metrics: Arc<Metrics>,
}

impl Metered {
    pub fn wrap(inner: Box<dyn Sink>, metrics: Arc<Metrics>) -> Box<dyn Sink> {
        Box::new(Metered { inner, metrics })
    }
}

impl Sink for Metered {
    fn write(&mut self, record: &Line) -> std::io::Result<()> {
        self.metrics.observe(record);
        self.inner.write(record)
    }

    fn end_of_backlog(&mut self, since_last_run: bool) -> std::io::Result<()> {
        self.inner.end_of_backlog(since_last_run)
    }

    fn live(&mut self) {
        self.metrics.live();
        self.inner.live();
    }
}

/// Binds the metrics listener. Done before the hooks are loaded, so a
/// taken port fails the start with its address instead of after `ready`.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("--metrics-addr {addr}: cannot listen there"))
}

/// Serves `GET /metrics` at `addr` until `shutdown` completes. The daemon
/// binds first ([`bind`], before loading hooks) and uses [`Running`]; this is
/// the one-call form.
#[cfg_attr(not(test), allow(dead_code))]
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_on(bind(addr).await?, metrics, shutdown).await
}

/// Serves `GET /metrics` on a bound listener until `shutdown` completes.
pub async fn serve_on(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener
        .local_addr()
        .context("the metrics listener's address")?;
    let app = Router::new()
        .route("/metrics", get(exposition))
        .with_state(metrics);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .with_context(|| format!("serving metrics on {addr}"))
}

async fn exposition(
    State(metrics): State<Arc<Metrics>>,
    headers: HeaderMap,
) -> axum::response::Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let fresh = Arc::clone(&metrics);
    if let Err(e) = tokio::task::spawn_blocking(move || fresh.refresh_node_memory()).await {
        tracing::debug!("node memory for the metrics: {e}");
    }
    let (body, content_type) = if openmetrics {
        (metrics.encode(), OPENMETRICS)
    } else {
        (metrics.encode_text(), TEXT)
    };
    match body {
        Ok(body) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the metrics: {e}\n"),
        )
            .into_response(),
    }
}

/// The running endpoint, as the daemon holds it.
pub struct Running {
    pub metrics: Arc<Metrics>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Starts serving on `listener` (from [`bind`]) with metrics made from
    /// the `ready` status line.
    pub fn start(listener: TcpListener, ready: &Status) -> Running {
        let metrics = Arc::new(Metrics::new(ready));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_on(listener, Arc::clone(&metrics), async move {
            // A dropped sender also stops the server.
            let _ = stopped.await;
        }));
        Running {
            metrics,
            stop,
            task,
        }
    }

    /// The sink, counted.
    pub fn wrap(&self, sink: Box<dyn Sink>) -> Box<dyn Sink> {
        Metered::wrap(sink, Arc::clone(&self.metrics))
    }

    /// Stops the server, letting a scrape in flight finish (briefly: the
    /// pod's grace period is the limit that matters).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        match tokio::time::timeout(STOP_GRACE, &mut task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!("metrics endpoint: {e:#}"),
            Ok(Err(e)) => tracing::warn!("metrics endpoint task: {e}"),
            Err(_) => task.abort(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oomtrace_core::{
        kernel::hooks::{Choice, Family as HookFamily, HookKind, Skipped},
        node::cgroup::Version,
        node::pods::{ContainerId, PodUid},
        output::sink::{CgroupStatus, Lost, Missed},
        output::verdict::{
            Finding, FindingKind, PressureKind, Trigger, Verdict, VerdictKind, Victim,
        },
    };

    fn status(state: &'static str) -> Status {
        Status {
            time: String::new(),
            state,
            version: "0.1.0",
            kernel: "6.18.44".into(),
            cgroup: CgroupStatus {
                version: Version::V1,
                memory_root: "/sys/fs/cgroup/memory".into(),
                cgroups: 3,
                namespace: None,
            },
            hooks: vec![
                Choice {
                    family: HookFamily::Oom,
                    chosen: None,
                    skipped: vec![Skipped {
                        kind: HookKind::Fentry,
                        reason: "no".into(),
                    }],
                },
                Choice {
                    family: HookFamily::Victim,
                    chosen: Some(HookKind::TpBtf),
                    skipped: vec![],
                },
            ],
            kernel_log: "reading".into(),
            kills: oomtrace_core::output::sink::KillSource {
                seen_from: "victim_hook",
                why: None,
            },
        }
    }

    fn verdict(verdict: VerdictKind, kind: Option<PressureKind>, pod: Option<Pod>) -> Line {
        Line::Verdict(Box::new(Verdict {
            kind,
            time: Some("2026-11-23T06:51:44.615662573Z".into()),
            victim: Some(Victim::unread(1, Some("x".into()), None)),
            trigger: Some(Trigger {
                pid: 1,
                comm: Some("x".into()),
                cgroup: None,
            }),
            container: pod.as_ref().map(|_| Container {
                id: ContainerId::parse(&"a".repeat(64)).expect("id"),
                name: Some("app".into()),
                runtime: None,
            }),
            pod,
            ..Verdict::unread(verdict, "bpf", "oom-1".into(), "tp_btf")
        }))
    }

    const UID: &str = "6f1c2a9e-3b7d-4c11-9e0a-2b8f5d4c7a10";

    fn pod() -> Pod {
        Pod {
            uid: Some(PodUid::parse(UID).expect("uid")),
            namespace: Some("shop".into()),
            name: Some("cart-0".into()),
            qos: None,
        }
    }

    /// A real HTTP round trip on loopback: status, content type, body, and
    /// a clean stop.
    #[test]
    fn serves_the_exposition_over_http() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            // Port 0 would not tell us where it listens: reserve one first.
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = probe.local_addr().expect("addr");
            drop(probe);
            let metrics = Arc::new(Metrics::new(&status("ready")));
            let (stop, stopped) = oneshot::channel::<()>();
            let server = tokio::spawn(serve(addr, Arc::clone(&metrics), async move {
                let _ = stopped.await;
            }));
            let mut conn = None;
            for _ in 0..200 {
                match tokio::net::TcpStream::connect(addr).await {
                    Ok(c) => {
                        conn = Some(c);
                        break;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
            let mut conn = conn.expect("the metrics server did not start listening");
            conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .expect("request");
            let mut reply = String::new();
            conn.read_to_string(&mut reply).await.expect("reply");
            assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
            assert!(
                reply
                    .to_ascii_lowercase()
                    .contains(&format!("content-type: {TEXT}")),
                "{reply}"
            );
            assert!(reply.contains("oomtrace_up 1"), "{reply}");
            // A second bind on the same address fails naming it.
            let err = bind(addr).await.expect_err("the port is taken");
            assert!(format!("{err:#}").contains(&addr.to_string()), "{err:#}");
            let _ = stop.send(());
            server.await.expect("join").expect("server");
        });
    }

    #[test]
    fn bare_port_is_loopback() {
        let lo = |p| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p);
        assert_eq!(parse_addr("9090"), Ok(lo(9090)));
        assert_eq!(parse_addr(":9090"), Ok(lo(9090)));
        assert_eq!(
            parse_addr("0.0.0.0:9464").map(|a| a.to_string()),
            Ok("0.0.0.0:9464".into())
        );
        assert_eq!(
            parse_addr("[::1]:9090").map(|a| a.to_string()),
            Ok("[::1]:9090".into())
        );
        assert!(parse_addr("70000").is_err());
        assert_eq!(parse_addr("localhost:9091"), Ok(lo(9091)));
        assert_eq!(parse_addr("LOCALHOST:9091"), Ok(lo(9091)));
        assert!(parse_addr("localhost:70000").is_err());
        assert!(parse_addr("localhost").is_err());
        assert!(parse_addr("[::1]").is_err());
        assert!(parse_addr("").is_err());
        assert!(parse_addr(":").is_err());
    }

    /// The gauges of the node memory breakdown, read from this machine
    /// (skipped where /sys/fs/cgroup/memory is no v1 hierarchy).
    #[test]
    fn node_memory_gauges_are_read_at_the_scrape() {
        if !std::path::Path::new("/sys/fs/cgroup/memory/memory.stat").exists() {
            eprintln!("skipped: no cgroup v1 memory hierarchy here");
            return;
        }
        let m = Metrics::new(&status("ready"));
        m.refresh_node_memory();
        let text = m.encode().expect("encode");
        for part in
            oomtrace_core::node::node_memory::parts(&oomtrace_core::node::node_memory::breakdown(
                &oomtrace_core::node::node_memory::Readings::default(),
            ))
        {
            let prefix = format!("oomtrace_node_memory_bytes{{part=\"{}\"}} ", part.0);
            assert!(
                text.lines().any(|l| l.starts_with(&prefix)),
                "no `{prefix}` in:\n{text}"
            );
        }
        assert!(
            text.lines()
                .any(|l| l.starts_with("oomtrace_dying_cgroups ")),
            "{text}"
        );
    }

    #[test]
    fn exposition_counts_records() {
        let m = Metrics::new(&status("ready"));
        m.observe(&verdict(VerdictKind::PodLimit, None, Some(pod())));
        m.observe(&verdict(VerdictKind::PodLimit, None, Some(pod())));
        // The same pod's kill from the kernel log's backlog at start, one
        // that Kubernetes shows: a series of its own, apart from the live ones.
        let mut past = verdict(VerdictKind::PodLimit, None, Some(pod()));
        if let Line::Verdict(v) = &mut past {
            v.source = "kernel_log";
            v.kubelet_reports = Some(true);
        }
        m.observe(&past);
        // After the backlog, a kill from the kernel log was seen live
        // (kernel-log mode: no victim hook).
        m.live();
        let mut logged = verdict(VerdictKind::PodLimit, None, Some(pod()));
        if let Line::Verdict(v) = &mut logged {
            v.source = "kernel_log";
            v.kubelet_reports = Some(true);
        }
        m.observe(&logged);
        let mut child = verdict(VerdictKind::PodLimit, None, Some(pod()));
        if let Line::Verdict(v) = &mut child {
            v.kubelet_reports = Some(false);
        }
        m.observe(&child);
        m.observe(&verdict(
            VerdictKind::NodePressure,
            Some(PressureKind::SystemOom),
            None,
        ));
        m.observe(&Line::Finding(Finding {
            pod: Some(pod()),
            empty_for_s: Some(301.0),
            ..Finding::new(FindingKind::CgroupLeak, String::new(), "/kubepods/x".into())
        }));
        m.observe(&Line::Finding(Finding::new(
            FindingKind::NearOom,
            String::new(),
            "/kubepods".into(),
        )));
        m.observe(&Line::Lost(Lost {
            time: String::new(),
            hook: "cgroup",
            count: 7,
            total: 7,
        }));
        m.observe(&Line::Missed(Missed {
            time: String::new(),
            count: 3,
            total: 3,
            kernel_oom_kills: 5,
            verdicts: 2,
            oom_group_kills: 0,
            since: String::new(),
            summary: String::new(),
        }));
        let text = m.encode().expect("encode");
        for line in [
            "oomtrace_kills_total{verdict=\"pod_limit\",kind=\"\",source=\"live\",kubelet_reports=\"\",pod_namespace=\"shop\",pod_name=\"cart-0\",container_name=\"app\"} 2",
            "oomtrace_kills_total{verdict=\"pod_limit\",kind=\"\",source=\"backlog\",kubelet_reports=\"true\",pod_namespace=\"shop\",pod_name=\"cart-0\",container_name=\"app\"} 1",
            "oomtrace_kills_total{verdict=\"pod_limit\",kind=\"\",source=\"live\",kubelet_reports=\"true\",pod_namespace=\"shop\",pod_name=\"cart-0\",container_name=\"app\"} 1",
            "oomtrace_kills_total{verdict=\"pod_limit\",kind=\"\",source=\"live\",kubelet_reports=\"false\",pod_namespace=\"shop\",pod_name=\"cart-0\",container_name=\"app\"} 1",
            "oomtrace_kills_total{verdict=\"node_pressure\",kind=\"system_oom\",source=\"live\",kubelet_reports=\"\",pod_namespace=\"\",pod_name=\"\",container_name=\"\"} 1",
            "oomtrace_findings_total{finding=\"cgroup_leak\",pod_namespace=\"shop\",pod_name=\"cart-0\"} 1",
            "oomtrace_findings_total{finding=\"near_oom\",pod_namespace=\"\",pod_name=\"\"} 1",
            "oomtrace_lost_events_total{hook=\"cgroup\"} 7",
            "oomtrace_lost_events_total{hook=\"victim\"} 0",
            "oomtrace_lost_events_total{hook=\"pressure\"} 0",
            "oomtrace_missed_kills_total 3",
            "oomtrace_hook{family=\"oom\",kind=\"none\"} 1",
            "oomtrace_hook{family=\"oom\",kind=\"fentry\"} 0",
            "oomtrace_hook{family=\"victim\",kind=\"tp_btf\"} 1",
            "oomtrace_build_info{version=\"0.1.0\",kernel=\"6.18.44\",cgroup=\"v1\"} 1",
            "oomtrace_up 1",
            "oomtrace_kernel_log_reading 1",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
        // No label a scrape's target labels would rename or a pod's
        // restarts would multiply.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            for bad in [
                "pod_uid=",
                "{namespace=",
                ",namespace=",
                "{pod=",
                ",pod=",
                ",container=",
            ] {
                assert!(!l.contains(bad), "`{bad}` in `{l}`");
            }
        }
        let classic = m.encode_text().expect("encode");
        for line in [
            "# HELP oomtrace_kills_total Processes killed for memory, by verdict (pod_limit, node_pressure, escaped_process, system), node_pressure kind, source (live, or backlog: read from the kernel log at start), whether Kubernetes will show it, and the pod and container when known.",
            "# TYPE oomtrace_kills_total counter",
            "# TYPE oomtrace_lost_events_total counter",
            "# TYPE oomtrace_missed_kills_total counter",
            "oomtrace_missed_kills_total 3",
            "# TYPE oomtrace_up gauge",
            "# HELP oomtrace_up 1 while every hook is attached and kills are being watched; 0 once the daemon is stopping.",
            "oomtrace_lost_events_total{hook=\"cgroup\"} 7",
        ] {
            assert!(classic.lines().any(|l| l == line), "no `{line}` in:\n{classic}");
        }
        assert!(!classic.contains("# EOF"), "{classic}");
        assert_eq!(
            classic.lines().filter(|l| !l.starts_with('#')).count(),
            text.lines().filter(|l| !l.starts_with('#')).count(),
            "the same samples in both formats"
        );
        m.observe(&Line::Status(status("stopping")));
        let text = m.encode().expect("encode");
        assert!(text.lines().any(|l| l == "oomtrace_up 0"), "{text}");
    }
}
