//! Command line: flags parsed by clap, then turned into a validated config
//! (`daemon::Config`) before anything starts.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use oomtrace_core::hooks::HookRequests;

#[derive(Parser, Debug)]
#[command(
    name = "oomtrace",
    version,
    about = "Explains every memory kill on a Kubernetes node, from the kernel"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The daemon: one JSON object per line on stdout (a verdict per killed process).
    Run(RunArgs),
    /// Readable verdict lines for a terminal (colour on a TTY; NO_COLOR, TERM=dumb turn it off, CLICOLOR_FORCE on).
    Tail(TailArgs),
    /// What this node offers oomtrace: kernel, BTF, tracefs, cgroups, privileges, hooks.
    Doctor(TailArgs),
    /// `run`, also saving everything the verdicts were made from to FILE (for `replay` and bug reports).
    Record(RecordArgs),
    /// Reproduce the verdicts of a recording offline, without the kernel.
    Replay(ReplayArgs),
    /// Verdicts from a saved kernel log (dmesg, dmesg -T, journalctl -k, syslog, /dev/kmsg records, a sosreport file); no root needed.
    Explain(ExplainArgs),
    /// Where the node's memory is now: free, pods by QoS, system.slice, other cgroups, kernel, unowned page cache, dying cgroups, unaccounted (adds up to MemTotal).
    Memory(MemoryArgs),
}

#[derive(Args, Debug)]
pub struct MemoryArgs {
    /// Output format (default: `text` on a terminal, else `json`).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Print it again every DURATION (e.g. `5s`) until interrupted.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub watch: Option<std::time::Duration>,
    /// Where cgroupfs is mounted.
    #[arg(long, value_name = "PATH", default_value = "/sys/fs/cgroup")]
    pub cgroup_root: PathBuf,
    /// Name of this node in the JSON object (default: the hostname).
    #[arg(long, env = "NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// The log to read; `-` or nothing for standard input.
    #[arg(default_value = "-")]
    pub file: PathBuf,
    /// Output format (`text` as `tail` prints it).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// The kubelet's pod log directory, for pod names when it exists here.
    #[arg(long, value_name = "PATH", default_value = "/var/log/pods")]
    pub pods_log_dir: PathBuf,
    /// The kubelet's container log symlinks, for container names when they exist here.
    #[arg(long, value_name = "PATH", default_value = "/var/log/containers")]
    pub containers_log_dir: PathBuf,
    /// Name of the node the log came from, for the JSON `node` field (empty when not given).
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// The UTC offset of `dmesg -T` dates, which name no zone (e.g. `+01:00`, `-05:00`, `UTC`); without it their `time` is null.
    #[arg(long, value_name = "OFFSET", value_parser = parse_utc_offset)]
    pub utc_offset: Option<time::UtcOffset>,
}

fn parse_utc_offset(s: &str) -> Result<time::UtcOffset, String> {
    if matches!(s, "Z" | "z" | "UTC" | "utc") {
        return Ok(time::UtcOffset::UTC);
    }
    let bad = || format!("`{s}`: expected an offset like +01:00, -0500 or UTC");
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(bad()),
    };
    let digits: String = rest.chars().filter(|&c| c != ':').collect();
    if !(digits.len() == 2 || digits.len() == 4) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let h: i8 = digits[..2].parse().map_err(|_| bad())?;
    let m: i8 = digits
        .get(2..)
        .map_or(Ok(0), str::parse)
        .map_err(|_| bad())?;
    time::UtcOffset::from_hms(sign * h, sign * m, 0).map_err(|_| bad())
}

#[derive(Args, Debug)]
pub struct RecordArgs {
    /// Where to write the recording.
    pub file: PathBuf,
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// A file written by `oomtrace record`.
    pub file: PathBuf,
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Output format.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug)]
pub struct TailArgs {
    #[command(flatten)]
    pub common: Common,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Text,
}

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Where cgroupfs is mounted.
    #[arg(long, value_name = "PATH", default_value = "/sys/fs/cgroup")]
    pub cgroup_root: PathBuf,
    /// The kubelet's pod log directory (`<namespace>_<pod>_<uid>/` → pod names).
    #[arg(long, value_name = "PATH", default_value = "/var/log/pods")]
    pub pods_log_dir: PathBuf,
    /// The kubelet's container log symlinks (`<pod>_<ns>_<container>-<id>.log` → container names).
    #[arg(long, value_name = "PATH", default_value = "/var/log/containers")]
    pub containers_log_dir: PathBuf,
    /// Force a hook per family, e.g. `oom=kprobe,victim=tracepoint` (kinds: oom:
    /// fentry|kprobe|off; victim: tp_btf|raw_tp|tracepoint; signal: tp_btf|tracepoint|off;
    /// cgroup, pressure: tp_btf|tracepoint|off; charge: tracepoint|off, off unless named here).
    #[arg(long, value_name = "FAMILY=KIND,...", default_value = "auto")]
    pub hooks: HookRequests,
    /// Name of this node in every JSON object (default: the hostname).
    #[arg(long, env = "NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,
    /// Kernel BTF to read struct offsets from.
    #[arg(long, value_name = "PATH", default_value = "/sys/kernel/btf/vmlinux")]
    pub btf: PathBuf,
    /// The kubelet's config file, for its eviction thresholds (`evictionHard`,
    /// `evictionSoft` with `evictionMaxPodGracePeriod`).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/var/lib/kubelet/config.yaml"
    )]
    pub kubelet_config: PathBuf,
    /// The kubelet's log, where its eviction manager names the pods it
    /// evicts (an eviction verdict then rests on it: `basis: kubelet_log`):
    /// a file, `journal` (journalctl -u kubelet), `none`, or `auto`
    /// (/var/log/kubelet.log if present, else the journal if it holds the kubelet unit's lines).
    #[arg(long, value_name = "PATH|journal|none|auto", default_value = "auto")]
    pub kubelet_log: String,
    /// How long a pod cgroup may stay empty before it is reported as leaked.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub leak_grace: std::time::Duration,
    /// Warn (`near_oom` finding) when a limited memory cgroup near its
    /// limit will reach it within this long at its current growth, or is
    /// already reclaiming at it (0 turns the sampler and the finding off).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub near_oom_horizon: std::time::Duration,
    /// How often the node's dying cgroups are counted for the
    /// `dying_cgroups` finding (it needs growth at every one of 10 samples).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub dying_sample_interval: std::time::Duration,
    /// How often the `near_oom` sampler reads the limited cgroups' usage.
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub near_oom_interval: std::time::Duration,
    /// Print a heartbeat line this often (0 turns it off).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub heartbeat: std::time::Duration,
    /// Where oomtrace remembers how far it has read the kernel log, so a
    /// restart reports the kills it missed while down, once.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/var/lib/oomtrace/state.json"
    )]
    pub state_file: PathBuf,
    /// Report kills from the kernel log that happened while oomtrace was not
    /// running (since the state file's position; since boot on a first run).
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    pub backlog: bool,
    /// Ring buffer size in bytes (a power of two, multiple of the page size).
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 22)]
    pub ring_buffer_bytes: u32,
    /// Serve Prometheus metrics at http://ADDR/metrics (off by default; a bare
    /// PORT or :PORT means 127.0.0.1:PORT, e.g. 0.0.0.0:9090 to expose it).
    #[arg(long, value_name = "ADDR", value_parser = crate::metrics::parse_addr)]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        other => Err(format!("`{other}`: expected on or off")),
    }
}
