//! Command line: flags parsed by clap, then turned into a validated config
//! (`daemon::Config`) before anything starts.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use oomtrace_core::kernel::hooks::HookRequests;

#[derive(Parser, Debug)]
#[command(
    name = "oomtrace",
    version,
    about = "Explains every memory kill on a Kubernetes node, from the kernel"
)]
pub struct Cli {
    /// How oomtrace's own diagnostics (warnings, errors) are written on
    /// stderr: `text` (colour only on a terminal) or `json`, one object a line,
    /// for log collectors.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A flag's value that clap's parsers cannot judge alone (it depends on
/// another flag, or on the filesystem): exit 2, as clap's own errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The daemon: one JSON object per line on stdout (a verdict per killed process).
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),
    /// Readable verdict lines for a terminal (colour on a TTY; NO_COLOR, TERM=dumb turn it off, CLICOLOR_FORCE on).
    #[command(after_help = TAIL_EXAMPLES)]
    Tail(TailArgs),
    /// What this node offers oomtrace: kernel, BTF, tracefs, cgroups, privileges, hooks.
    #[command(after_help = DOCTOR_HELP)]
    Doctor(DoctorArgs),
    /// `run`, also saving everything the verdicts were made from to FILE (for `replay` and bug reports).
    #[command(after_help = RECORD_EXAMPLES)]
    Record(RecordArgs),
    /// Reproduce the verdicts of a recording offline, without the kernel.
    #[command(after_help = REPLAY_EXAMPLES)]
    Replay(ReplayArgs),
    /// Verdicts from a saved kernel log (dmesg, dmesg -T, journalctl -k, syslog, /dev/kmsg records, a sosreport file); no root needed.
    #[command(after_help = EXPLAIN_EXAMPLES)]
    Explain(ExplainArgs),
    /// Where the node's memory is now: free, pods by QoS, system.slice, other cgroups, kernel, unowned page cache, dying cgroups, unaccounted (adds up to MemTotal).
    #[command(after_help = MEMORY_EXAMPLES)]
    Memory(MemoryArgs),
}

const RUN_EXAMPLES: &str = "\
Examples:
  oomtrace run | jq 'select(.type == \"verdict\")'
  oomtrace run --format text --metrics-addr 9090
  oomtrace run --hooks oom=kprobe,victim=tracepoint --ring-buffer-bytes 8MiB";
const TAIL_EXAMPLES: &str = "\
Default: kills and findings as they happen, the kills of the kernel log since
tail last ran (since boot the first time) as one line per verdict kind.

Examples:
  oomtrace tail
  oomtrace tail -n shop --since 1h --backlog
  oomtrace tail --pod web --verdict pod_limit,eviction --utc
  oomtrace tail --all --no-backlog
  NO_COLOR=1 oomtrace tail --kubelet-log none";
const DOCTOR_HELP: &str = "\
Each check is printed as ✓ (ok), ! (works, but with a fallback or without a source) or ✗ (cannot run), with the fix for each problem.

Exit status:
  0  oomtrace can run here with its best hooks and every source
  1  oomtrace cannot run here (no kill could be seen)
  2  usage error (a bad flag, or a path given on the command line that does not exist)
  3  degraded: oomtrace runs, with fallback hooks or without some source

Examples:
  oomtrace doctor
  oomtrace doctor --format json | jq '.checks[] | select(.status != \"ok\")'
  oomtrace doctor --btf /boot/vmlinux-6.1.btf --hooks oom=kprobe";
const RECORD_EXAMPLES: &str = "\
Examples:
  oomtrace record /tmp/node-1.rec
  oomtrace record /tmp/node-1.rec --format text --heartbeat 10s";
const REPLAY_EXAMPLES: &str = "\
Examples:
  oomtrace replay /tmp/node-1.rec
  oomtrace replay /tmp/node-1.rec --format text";
const EXPLAIN_EXAMPLES: &str = "\
Examples:
  dmesg | oomtrace explain --format text
  oomtrace explain --utc-offset +01:00 dmesg-T.txt
  journalctl -k -b -1 | oomtrace explain";
const MEMORY_EXAMPLES: &str = "\
Examples:
  oomtrace memory
  oomtrace memory --format json | jq .headroom
  oomtrace memory --watch 5s --kubelet-config /var/lib/kubelet/config.yaml";

#[derive(Args, Debug)]
pub struct MemoryArgs {
    /// Output format (default: `text` on a terminal, else `json`).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Print it again every DURATION (e.g. `5s`) until interrupted: redrawn
    /// in place on a terminal, appended when piped.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub watch: Option<std::time::Duration>,
    /// Where cgroupfs is mounted.
    #[arg(long, value_name = "PATH", default_value = "/sys/fs/cgroup")]
    pub cgroup_root: PathBuf,
    /// Name of this node in the JSON object (default: the hostname).
    #[arg(long, env = "NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,
    /// The kubelet's pod log directory (`<namespace>_<pod>_<uid>/` → the top
    /// pods' names).
    #[arg(long, value_name = "PATH", default_value = "/var/log/pods")]
    pub pods_log_dir: PathBuf,
    /// The kubelet's config file, for the eviction thresholds the headroom is
    /// measured against (default: the first found of the known places, as
    /// for `run`; none: the kubelet's default, memory.available<100Mi).
    #[arg(long, value_name = "PATH")]
    pub kubelet_config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// The log to read; `-` or nothing for standard input.
    #[arg(default_value = "-")]
    pub file: PathBuf,
    /// Output format (`text` as `tail` prints it; default: `json`).
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
    /// Output format on stdout (the recording itself is always the same).
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
    #[command(flatten)]
    pub cursor: Cursor,
    #[command(flatten)]
    pub common: Common,
}

/// The daemon's state file: `run`'s and `record`'s, never `tail`'s.
pub const DAEMON_STATE_FILE: &str = "/var/lib/oomtrace/state.json";
/// `tail`'s own, so a person's `tail` on the node never moves the daemon's.
pub const TAIL_STATE_FILE: &str = "/var/lib/oomtrace/tail-state.json";

/// How far the daemon has read the kernel log, and whether it reports the
/// kills it finds there at start.
#[derive(Args, Debug, Clone)]
pub struct Cursor {
    /// Where oomtrace remembers how far it has read the kernel log, so a
    /// restart reports the kills it missed while down, once (the
    /// DaemonSet keeps it on the node; `tail` has its own).
    #[arg(long, value_name = "PATH", default_value = DAEMON_STATE_FILE)]
    pub state_file: PathBuf,
    /// Report kills from the kernel log that happened while oomtrace was not
    /// running (since the state file's position; since boot on a first run).
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    pub backlog: bool,
    /// The same as `--backlog off`.
    #[arg(long, conflicts_with = "backlog")]
    pub no_backlog: bool,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// A file written by `oomtrace record`.
    pub file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
    #[command(flatten)]
    pub cursor: Cursor,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug)]
pub struct TailArgs {
    /// Only kills and findings of pods in this namespace (repeatable).
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Vec<String>,
    /// Only this pod: its name, its uid, or the name its Deployment's or
    /// StatefulSet's pods start with (`web` for `web-6f9c4-x2x8z`) (repeatable).
    #[arg(long, value_name = "POD")]
    pub pod: Vec<String>,
    /// Only this container: its name or the start of its id (repeatable).
    #[arg(long, value_name = "CONTAINER")]
    pub container: Vec<String>,
    /// Only these verdicts, node-pressure kinds or findings (comma-separated
    /// or repeated): pod_limit, cgroup_limit, node_pressure, eviction,
    /// allocatable_oom, system_oom, userspace_oom_killer, escaped_process,
    /// system, escape_detected, cgroup_leak, oomkilled_misreport,
    /// dying_cgroups, near_oom, stopped.
    #[arg(long, value_name = "KIND,...", value_delimiter = ',', value_parser = oomtrace_core::output::sink::tail::parse_kind)]
    pub verdict: Vec<String>,
    /// Only what happened within this long before now (e.g. `1h`, `30m`):
    /// it scopes the kills found in the kernel log at start.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub since: Option<std::time::Duration>,
    /// Also `stopped` lines (processes ended by a signal that was not an
    /// eviction) and heartbeats.
    #[arg(long)]
    pub all: bool,
    /// List every kill found in the kernel log at start (default: one
    /// summary line per verdict kind).
    #[arg(long, conflicts_with = "no_backlog")]
    pub backlog: bool,
    /// Do not read the kernel log's earlier kills at all.
    #[arg(long)]
    pub no_backlog: bool,
    /// Times in UTC (default: the local time zone).
    #[arg(long)]
    pub utc: bool,
    /// Tail's own cursor: where it remembers how far it has read the kernel
    /// log, so the next `tail` starts its backlog there. Never the daemon's
    /// (`run`'s /var/lib/oomtrace/state.json, which the DaemonSet keeps).
    #[arg(long, value_name = "PATH", default_value = TAIL_STATE_FILE)]
    pub state_file: PathBuf,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Text,
}

/// `doctor`'s flags: the node's sources and hooks `run` would use, nothing
/// of the daemon's own.
#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Output format: the checks as lines, or one JSON object.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// What the node offers the daemon: read by `run` and checked by `doctor`.
#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
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
    /// fentry|kprobe|off; victim: tp_btf|raw_tp|fentry|kprobe|tracepoint|off, fentry and kprobe on
    /// mark_oom_victim where mark_victim has only the pid, off: kills from the kernel log only; signal: tp_btf|tracepoint|off; cgroup, pressure: tp_btf|tracepoint|off; charge:
    /// tracepoint|off, off unless named here).
    #[arg(long, value_name = "FAMILY=KIND,...", default_value = "auto")]
    pub hooks: HookRequests,
    /// Kernel BTF to read struct offsets from.
    #[arg(long, value_name = "PATH", default_value = "/sys/kernel/btf/vmlinux")]
    pub btf: PathBuf,
    /// The kubelet's config file (YAML or JSON), for its eviction thresholds
    /// (`evictionHard`, `evictionSoft` with `evictionMaxPodGracePeriod`).
    /// Default: the first found of /var/lib/kubelet/config.yaml (kubeadm),
    /// /etc/kubernetes/kubelet/config.json and
    /// /etc/kubernetes/kubelet/kubelet-config.json (EKS),
    /// /home/kubernetes/kubelet-config.yaml (GKE),
    /// /var/lib/rancher/k3s/agent/etc/kubelet.conf.d/00-k3s-defaults.conf (k3s).
    #[arg(long, value_name = "PATH")]
    pub kubelet_config: Option<PathBuf>,
    /// Ring buffer size: a power of two of at least 4096 bytes, as bytes
    /// (`262144`) or with a binary unit, K/Ki/KiB, M/Mi/MiB or G/Gi/GiB, all
    /// powers of 1024 (`256K`, `4M`, `4Mi`, `4MiB`).
    #[arg(long, value_name = "SIZE", default_value = "4MiB", value_parser = parse_ring_size)]
    pub ring_buffer_bytes: u32,
}

#[derive(Args, Debug, Clone)]
pub struct Common {
    #[command(flatten)]
    pub node: NodeArgs,
    /// Name of this node in every JSON object (default: the hostname).
    #[arg(long, env = "NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,
    /// The kubelet's log, where its eviction manager names the pods it
    /// evicts (an eviction verdict then rests on it: `basis: kubelet_log`):
    /// a file, `journal` (journalctl -u kubelet), `none`, or `auto`
    /// (/var/log/kubelet.log if present, else the journal if it holds the kubelet unit's lines).
    #[arg(long, value_name = "PATH|journal|none|auto", default_value = "auto")]
    pub kubelet_log: String,
    /// Userspace OOM killers beyond the built-in earlyoom, nohang,
    /// systemd-oomd and oomd, by process name or executable file name
    /// (e.g. `oom-guard,my-killer`): their SIGTERM/SIGKILL is a
    /// `node_pressure` verdict of kind `userspace_oom_killer`.
    #[arg(long, value_name = "NAME,...", value_delimiter = ',', value_parser = parse_killer_name)]
    pub userspace_killers: Vec<String>,
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
    /// Serve Prometheus metrics at http://ADDR/metrics (off by default):
    /// IP:PORT, HOST:PORT (`localhost:9090`), [IPv6]:PORT, or a bare PORT or
    /// :PORT, which mean 127.0.0.1:PORT; e.g. 0.0.0.0:9090 to expose it.
    #[arg(long, value_name = "ADDR", value_parser = crate::metrics::parse_addr)]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// `--ring-buffer-bytes`: bytes, or a number with a binary unit. Decimal
/// units (`MB`) are refused rather than guessed: no power of 1000 is a power
/// of two, which the kernel requires of a ring buffer.
pub fn parse_ring_size(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let shift = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "ki" | "kib" => 10,
        "m" | "mi" | "mib" => 20,
        "g" | "gi" | "gib" => 30,
        "kb" | "mb" | "gb" => {
            return Err(format!(
                "`{s}`: decimal units are no power of two; use KiB, MiB or GiB"
            ))
        }
        _ => {
            return Err(format!(
                "`{s}`: expected bytes or a size like 256K, 4M, 4Mi, 4MiB"
            ))
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}`: expected bytes or a size like 256K, 4M, 4Mi, 4MiB"))?;
    let bytes = n
        .checked_shl(shift)
        .filter(|b| b >> shift == n)
        .and_then(|b| u32::try_from(b).ok())
        .ok_or_else(|| format!("`{s}` is too large: at most 2GiB"))?;
    if !bytes.is_power_of_two() || bytes < 4096 {
        return Err(format!(
            "`{s}` ({bytes} bytes) must be a power of two of at least 4096"
        ));
    }
    Ok(bytes)
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        other => Err(format!("`{other}`: expected on or off")),
    }
}

/// A userspace OOM killer's name: a process name or an executable's file
/// name, so no path and no blank.
fn parse_killer_name(s: &str) -> Result<String, String> {
    let name = s.trim();
    if name.is_empty() {
        return Err("an empty name".into());
    }
    if name.contains('/') || name.chars().any(char::is_whitespace) {
        return Err(format!(
            "`{name}` is not a process name: give the name (comm) or the executable's file name, without a path or spaces"
        ));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_sizes_take_binary_units() {
        for (s, want) in [
            ("262144", 262_144),
            ("4096", 4096),
            ("256K", 256 << 10),
            ("4M", 4 << 20),
            ("4Mi", 4 << 20),
            ("4MiB", 4 << 20),
            ("4mib", 4 << 20),
            ("4 MiB", 4 << 20),
            ("1G", 1 << 30),
        ] {
            assert_eq!(parse_ring_size(s), Ok(want), "{s}");
        }
        for s in [
            "",
            "M",
            "4MB",
            "3M",
            "1000",
            "2048",
            "4X",
            "-4M",
            "8G",
            "99999999999999999999",
        ] {
            assert!(parse_ring_size(s).is_err(), "{s} accepted");
        }
    }

    #[test]
    fn userspace_killers_are_names_separated_by_commas() {
        let Ok(Cli {
            command: Command::Run(run),
            ..
        }) = Cli::try_parse_from([
            "oomtrace",
            "run",
            "--userspace-killers",
            "oom-guard, my-killer",
        ])
        else {
            panic!("--userspace-killers oom-guard,my-killer was refused");
        };
        assert_eq!(run.common.userspace_killers, ["oom-guard", "my-killer"]);
        for bad in ["/usr/bin/earlyoom", "", "a b"] {
            assert!(
                Cli::try_parse_from(["oomtrace", "run", "--userspace-killers", bad]).is_err(),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn the_help_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn tails_verdict_help_names_every_kind_it_takes() {
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        let tail = cmd.find_subcommand_mut("tail").expect("tail");
        let help = tail
            .get_arguments()
            .find(|a| a.get_id() == "verdict")
            .and_then(|a| a.get_help())
            .map(ToString::to_string)
            .unwrap_or_default();
        for kind in oomtrace_core::output::sink::tail::KINDS {
            assert!(help.contains(kind), "--verdict's help lacks {kind}: {help}");
        }
    }

    #[test]
    fn doctor_takes_no_daemon_flag() {
        for flag in [
            "--heartbeat",
            "--state-file",
            "--metrics-addr",
            "--leak-grace",
            "--backlog",
        ] {
            let parsed = Cli::try_parse_from(["oomtrace", "doctor", flag, "1"]);
            assert!(parsed.is_err(), "doctor accepted {flag}");
        }
        assert!(
            Cli::try_parse_from(["oomtrace", "doctor", "--btf", "/x", "--format", "json"]).is_ok()
        );
    }
}
