use super::*;
use crate::{
    output::sink::Lost,
    output::test_kit as kit,
    output::verdict::{Limit, NodeMemory, Process, Signal, StopReason, Victim},
};

const UID: &str = "0000aaaa-0001-4ae4-8d9c-0018ec1c0fde";
const CID: &str = "5213e7570ed4ce6b2e12a9ae8f349b5287d918d3d76d0593d7e1c4e44370d37b";

fn pod(ns: &str, name: &str) -> Pod {
    Pod {
        namespace: Some(ns.into()),
        name: Some(name.into()),
        ..kit::pod(UID)
    }
}

fn kill(source: &'static str, time: &str, ns: &str, name: &str) -> Verdict {
    let mut victim = Victim::unread(
        4242,
        Some("python".into()),
        Some(format!("/kubepods/pod{UID}/{CID}")),
    );
    victim.rss_bytes = Some(63 << 20);
    Verdict {
        time: Some(time.into()),
        limit: Some(Limit {
            cgroup: Some(format!("/kubepods/pod{UID}/{CID}")),
            limit_bytes: Some(64 << 20),
            usage_bytes: Some(64 << 20),
        }),
        pod: Some(pod(ns, name)),
        container: Some(Container {
            name: Some("app".into()),
            ..kit::container(CID)
        }),
        kubelet_reports: Some(true),
        summary: "Container app of pod shop/web-6f9c4-x2x8z hit its memory limit of 64Mi; the kernel killed python (pid 4242, rss 63Mi). The kubelet reports OOMKilled.".into(),
        ..kit::pod_kill(source, "oom-1".into(), victim, UID, CID)
    }
}

fn stop() -> Stopped {
    Stopped {
        time: "2026-12-07T13:00:05.000000000Z".into(),
        process: Process {
            pid: 77,
            comm: Some("sleep".into()),
        },
        cgroup: None,
        pod: Some(pod("shop", "web-6f9c4-x2x8z")),
        container: None,
        signal: Signal {
            name: "SIGTERM",
            number: 15,
            sender: Process {
                pid: 21698,
                comm: Some("bash".into()),
            },
        },
        node_memory: None,
        reason: StopReason::SenderNotRuntime,
        summary: "stopped".into(),
    }
}

fn clock() -> Clock {
    Clock {
        offset: UtcOffset::from_hms(1, 0, 0).expect("offset"),
        utc: false,
        now: OffsetDateTime::parse("2026-12-07T14:00:00Z", &Rfc3339).expect("now"),
    }
}

fn opts(filter: Filter, backlog: Backlog) -> Options {
    Options {
        filter,
        backlog,
        clock: clock(),
        state_file: "/var/lib/oomtrace/tail-state.json".into(),
    }
}

fn written(o: Options, color: ColorChoice, lines: &[Line], backlog_end_after: usize) -> String {
    let mut sink = TailSink::new(Vec::new(), color, o);
    for (i, l) in lines.iter().enumerate() {
        if i == backlog_end_after {
            sink.end_of_backlog(false).expect("end");
        }
        sink.write(l).expect("write to a Vec");
    }
    String::from_utf8(sink.into_inner()).expect("utf-8")
}

#[test]
fn a_kill_is_a_row_of_columns_its_sentence_and_a_next_step() {
    let v = kill(
        "bpf",
        "2026-12-07T13:00:01.500000000Z",
        "shop",
        "web-6f9c4-x2x8z",
    );
    let out = written(
        opts(Filter::default(), Backlog::Summary),
        ColorChoice::Never,
        &[Line::Verdict(Box::new(v))],
        0,
    );
    let want = [
        "             no earlier kill in the kernel log since boot",
        "14:00:01     shop/web-6f9c4-x2x8z                app               pod_limit               64Mi     63Mi  OOMKilled",
        "             Container app of pod shop/web-6f9c4-x2x8z hit its memory limit of 64Mi; the kernel killed python (pid 4242, rss 63Mi). The kubelet reports OOMKilled.",
        "             next: the container's limit is 64Mi, its peak 64Mi: raise resources.limits.memory above what it needs, or find what grew (`kubectl top pod --containers`).",
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), want, "{out}");
}

#[test]
fn columns_line_up_with_the_header_whatever_the_names() {
    let mut long = kill(
        "bpf",
        "2026-12-07T13:00:01Z",
        "a-very-long-namespace-name",
        "a-pod-name-that-is-longer-than-its-column-6f9c4-x2x8z",
    );
    long.kubelet_reports = None;
    long.victim.as_mut().expect("victim").rss_bytes = None;
    let short = kill("bpf", "2026-12-06T09:30:00Z", "ns", "p");
    let ready = crate::output::sink::Status {
        time: String::new(),
        state: "ready",
        version: "0.1.0",
        kernel: "6.1.0".into(),
        cgroup: crate::output::sink::CgroupStatus {
            version: crate::node::cgroup::Version::V2,
            memory_root: "/sys/fs/cgroup".into(),
            cgroups: 10,
            namespace: None,
        },
        hooks: vec![],
        kernel_log: "reading".into(),
        kills: crate::output::sink::KillSource {
            seen_from: "victim_hook",
            why: None,
        },
    };
    let out = written(
        opts(Filter::default(), Backlog::List),
        ColorChoice::Never,
        &[
            Line::Status(ready),
            Line::Verdict(Box::new(long)),
            Line::Verdict(Box::new(short)),
        ],
        usize::MAX,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].contains("tail's cursor: /var/lib/oomtrace/tail-state.json"),
        "{out}"
    );
    let header = lines[1];
    // Columns count characters, not bytes (`…` is three).
    let at = |line: &str, s: &str| line.find(s).map(|b| line[..b].chars().count());
    let col = |h: &str| at(header, h).expect("column");
    for row in [lines[2], lines[5]] {
        // Each column starts where its header does.
        for (name, value) in [("VERDICT", "pod_limit"), ("KUBELET REPORTS", "")] {
            if !value.is_empty() {
                assert_eq!(at(row, value), Some(col(name)), "{name}:\n{header}\n{row}");
            }
        }
        assert!(row.chars().count() >= col("KUBELET REPORTS"), "{row}");
    }
    // Cut in the middle, both ends kept; the unknown RSS and report are `-`.
    assert!(
        lines[2].contains("a-very-long-name…that-6f9c4-x2x8z") || lines[2].contains('…'),
        "{}",
        lines[2]
    );
    assert!(lines[2].ends_with("64Mi        -  -"), "{}", lines[2]);
    // Another day's kill shows its date.
    assert!(lines[5].starts_with("12-06 10:30"), "{}", lines[5]);
}

#[test]
fn filters_scope_by_namespace_pod_container_kind_and_time() {
    let v = Line::Verdict(Box::new(kill(
        "bpf",
        "2026-12-07T13:00:01Z",
        "shop",
        "web-6f9c4-x2x8z",
    )));
    let f = |g: fn(&mut Filter)| {
        let mut f = Filter::default();
        g(&mut f);
        f.wants(&v)
    };
    assert!(f(|_| {}));
    assert!(f(|f| f.namespaces = vec!["shop".into()]));
    assert!(!f(|f| f.namespaces = vec!["kube-system".into()]));
    assert!(f(|f| f.pods = vec!["web".into()]), "a Deployment's name");
    assert!(f(|f| f.pods = vec!["web-6f9c4-x2x8z".into()]));
    assert!(f(|f| f.pods = vec![UID.into()]));
    assert!(!f(|f| f.pods = vec!["we".into()]), "not any prefix");
    assert!(f(|f| f.containers = vec!["app".into()]));
    assert!(f(|f| f.containers = vec!["5213e757".into()]));
    assert!(!f(|f| f.containers = vec!["sidecar".into()]));
    assert!(f(|f| f.kinds = vec!["pod_limit".into()]));
    assert!(!f(
        |f| f.kinds = vec!["node_pressure".into(), "eviction".into()]
    ));
    let since = |t: &str| OffsetDateTime::parse(t, &Rfc3339).expect("t");
    assert!(f(|f| f.since = Some(
        OffsetDateTime::parse("2026-12-07T12:00:00Z", &Rfc3339).expect("t")
    )));
    let old = Filter {
        since: Some(since("2026-12-07T13:30:00Z")),
        ..Filter::default()
    };
    assert!(!old.wants(&v));
    // A line of no pod passes no pod-scoped filter.
    let host = Line::Finding(Finding::new(
        FindingKind::DyingCgroups,
        "2026-12-07T13:00:01Z".into(),
        "/".into(),
    ));
    assert!(Filter::default().wants(&host));
    let scoped = Filter {
        namespaces: vec!["shop".into()],
        ..Filter::default()
    };
    assert!(!scoped.wants(&host));
    // Lost kills may be anyone's: always shown.
    let lost = Line::Lost(Lost {
        time: "2026-12-07T13:00:01Z".into(),
        hook: "victim",
        count: 1,
        total: 1,
    });
    assert!(scoped.wants(&lost));
}

#[test]
fn stops_and_heartbeats_only_when_asked_for() {
    let s = Line::Stopped(stop());
    let beat = Line::Heartbeat(crate::output::sink::Heartbeat::default());
    assert!(!Filter::default().wants(&s));
    assert!(!Filter::default().wants(&beat));
    let all = Filter {
        all: true,
        ..Filter::default()
    };
    assert!(all.wants(&s) && all.wants(&beat));
    let stops = Filter {
        kinds: vec!["stopped".into()],
        ..Filter::default()
    };
    assert!(stops.wants(&s) && !stops.wants(&beat));
}

/// A kill line whose report the kernel rate-limited away names neither a
/// pod nor a cgroup: the backlog's line names the process, never a `-`.
#[test]
fn a_backlog_kill_with_no_place_is_named_by_its_process() {
    let mut v = kill("kernel_log", "2026-12-07T10:00:00Z", "shop", "web-1");
    v.verdict = VerdictKind::CgroupLimit;
    v.pod = None;
    v.container = None;
    v.victim = Some(Victim::unread(141313, Some("mount".into()), None));
    let out = written(
        opts(Filter::default(), Backlog::Summary),
        ColorChoice::Never,
        &[
            Line::Verdict(Box::new(v)),
            Line::Verdict(Box::new(kill(
                "bpf",
                "2026-12-07T13:59:00Z",
                "shop",
                "web-3",
            ))),
        ],
        1,
    );
    assert_eq!(
        out.lines().next(),
        Some("11:00:00     backlog: 1 cgroup_limit kill in the kernel log since boot, the latest of mount (pid 141313); --backlog lists them"),
        "{out}"
    );
}

#[test]
fn the_backlog_is_one_line_per_kind_unless_listed() {
    let backlog: Vec<Line> = vec![
        Line::Verdict(Box::new(kill(
            "kernel_log",
            "2026-12-07T10:00:00Z",
            "shop",
            "web-1",
        ))),
        Line::Verdict(Box::new(kill(
            "kernel_log",
            "2026-12-07T11:00:00Z",
            "shop",
            "web-2",
        ))),
        Line::Verdict(Box::new(kill(
            "bpf",
            "2026-12-07T13:59:00Z",
            "shop",
            "web-3",
        ))),
    ];
    let out = written(
        opts(Filter::default(), Backlog::Summary),
        ColorChoice::Never,
        &backlog,
        2,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "12:00:00     backlog: 2 pod_limit kills in the kernel log since boot, the latest of shop/web-2 (app); --backlog lists them"
    );
    assert!(lines[1].contains("shop/web-3"), "{out}");
    assert_eq!(
        lines.len(),
        4,
        "the live kill's row, sentence and next step: {out}"
    );
    let listed = written(
        opts(Filter::default(), Backlog::List),
        ColorChoice::Never,
        &backlog,
        2,
    );
    assert_eq!(listed.matches("pod_limit").count(), 3, "{listed}");
    assert!(!listed.contains("backlog:"), "{listed}");
    // Only what the filter lets through is counted.
    let scoped = Filter {
        pods: vec!["web-1".into()],
        ..Filter::default()
    };
    let out = written(
        opts(scoped, Backlog::Summary),
        ColorChoice::Never,
        &backlog,
        2,
    );
    assert!(
        out.starts_with("11:00:00     backlog: 1 pod_limit kill "),
        "{out}"
    );
}

#[test]
fn colour_marks_the_verdict_and_the_next_step() {
    let v = Line::Verdict(Box::new(kill("bpf", "2026-12-07T13:00:01Z", "shop", "web")));
    let out = written(
        opts(Filter::default(), Backlog::List),
        ColorChoice::Always,
        &[v],
        usize::MAX,
    );
    assert!(
        out.contains(&format!("{YELLOW}pod_limit          {YELLOW:#}")),
        "{out:?}"
    );
    assert!(out.contains(&format!("{GREEN}next:{GREEN:#}")), "{out:?}");
    let plain = written(
        opts(Filter::default(), Backlog::List),
        ColorChoice::Never,
        &[Line::Verdict(Box::new(kill(
            "bpf",
            "2026-12-07T13:00:01Z",
            "shop",
            "web",
        )))],
        usize::MAX,
    );
    assert_eq!(anstream::adapter::strip_str(&out).to_string(), plain);
}

#[test]
fn utc_times_say_so() {
    let mut o = opts(Filter::default(), Backlog::List);
    o.clock.utc = true;
    let out = written(
        o,
        ColorChoice::Never,
        &[Line::Verdict(Box::new(kill(
            "bpf",
            "2026-12-07T13:00:01Z",
            "shop",
            "web",
        )))],
        usize::MAX,
    );
    assert!(out.starts_with("13:00:01Z     shop/web "), "{out}");
}

#[test]
fn a_next_step_never_claims_a_missing_fact() {
    let mut v = kill("bpf", "2026-12-07T13:00:01Z", "shop", "web");
    v.limit = None;
    let s = next_step(&v).expect("a pod_limit always has a step");
    assert!(!s.contains("limit is"), "{s}");
    assert!(s.starts_with("raise resources.limits.memory"), "{s}");

    // A limit of the pod, and of a cgroup below the container (a unit of a
    // systemd inside), are named as theirs.
    let mut p = kill("bpf", "2026-12-07T13:00:01Z", "shop", "web");
    p.limit.as_mut().expect("limit").cgroup = Some(format!("/kubepods/pod{UID}"));
    let s = next_step(&p).expect("step");
    assert!(s.starts_with("the pod's limit is 64Mi"), "{s}");
    p.limit.as_mut().expect("limit").cgroup =
        Some(format!("/kubepods/pod{UID}/{CID}/system.slice/db.service"));
    let s = next_step(&p).expect("step");
    assert!(
        s.starts_with("the cgroup's limit is 64Mi") && s.contains("raise that cgroup's own limit"),
        "{s}"
    );

    // Eviction: the threshold and memory.available when the record has them.
    let mut e = kill("bpf", "2026-12-07T13:00:01Z", "shop", "web");
    e.verdict = VerdictKind::NodePressure;
    e.kind = Some(PressureKind::Eviction);
    e.evidence.eviction_threshold = Some("hard");
    e.node_memory = Some(NodeMemory {
        capacity_bytes: 8 << 30,
        psi: None,
        mem_available_bytes: 90 << 20,
        memory_available_bytes: 80 << 20,
        eviction_threshold_bytes: Some(100 << 20),
        eviction_threshold_source: Some("default".into()),
        breakdown: None,
    });
    let s = next_step(&e).expect("step");
    assert!(
        s.starts_with("memory.available was 80Mi against the kubelet's hard threshold 100Mi; "),
        "{s}"
    );
    e.node_memory = None;
    let s = next_step(&e).expect("step");
    assert!(
        !s.contains("threshold 1") && !s.contains("memory.available was"),
        "{s}"
    );

    // Escape: the cgroup it ran in and the pod's.
    let mut x = kill("bpf", "2026-12-07T13:00:01Z", "shop", "web");
    x.verdict = VerdictKind::EscapedProcess;
    x.victim.as_mut().expect("victim").cgroup = Some("/system.slice/run-r1.scope".into());
    x.evidence.pod_cgroup = Some(format!("/kubepods/pod{UID}"));
    let s = next_step(&x).expect("step");
    assert!(
        s.starts_with(&format!(
            "it ran in /system.slice/run-r1.scope, its pod's cgroup is /kubepods/pod{UID}; "
        )),
        "{s}"
    );
    assert!(s.contains("cgroup.procs"), "{s}");
}

#[test]
fn a_bad_verdict_name_lists_the_good_ones() {
    assert_eq!(parse_kind("eviction"), Ok("eviction".into()));
    let e = parse_kind("oom").expect_err("refused");
    assert!(e.contains("pod_limit") && e.contains("stopped"), "{e}");
}
