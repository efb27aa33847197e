//! oomtrace: every memory kill on a Kubernetes node, explained from the
//! kernel. See ARCHITECTURE.md for the map.

mod charges;
mod cli;
mod daemon;
mod doctor;
mod explain;
mod kubelet_config;
mod loader;
mod memory;
mod metrics;
mod probe;
mod sampler;
mod tail;

use std::{
    io::{IsTerminal, Write},
    path::PathBuf,
    process::ExitCode,
};

use clap::{parser::ValueSource, ArgMatches, CommandFactory, FromArgMatches};

/// Paths whose absence means oomtrace cannot do what was asked: named on the
/// command line and missing, they are a usage error (exit 2).
const REQUIRED_PATHS: [&str; 2] = ["cgroup_root", "btf"];
/// Optional sources: named on the command line and missing, a warning.
const OPTIONAL_PATHS: [&str; 3] = ["pods_log_dir", "containers_log_dir", "kubelet_config"];

fn main() -> ExitCode {
    let matches = cli::Cli::command().get_matches();
    let cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    init_logging(cli.log_format);
    if let Some((_, sub)) = matches.subcommand() {
        if let Err(e) = check_given_paths(sub) {
            say_error(&e);
            return ExitCode::from(2);
        }
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            say_error(&e);
            if e.downcast_ref::<cli::Usage>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Diagnostics on stderr: colour only for a terminal (a file or a container
/// log would keep the escape codes), or JSON lines for a log collector.
fn init_logging(format: cli::LogFormat) {
    // OOMTRACE_LOG, else RUST_LOG (e.g. `oomtrace=debug`, which includes the
    // kernel programs' `oomtrace_ebpf` diagnostics), else warnings only.
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("OOMTRACE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("warn"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        cli::LogFormat::Text => fmt.with_ansi(std::io::stderr().is_terminal()).init(),
        cli::LogFormat::Json => fmt.with_ansi(false).json().init(),
    }
}

/// The final error, never a panic: stderr may be closed too.
fn say_error(e: &anyhow::Error) {
    let _ = writeln!(std::io::stderr(), "oomtrace: error: {e:#}");
}

/// Paths given on the command line, checked before anything starts: a
/// required one missing is an error, never a run on a fallback the user did
/// not ask for; an optional one missing is said once, at start.
fn check_given_paths(sub: &ArgMatches) -> anyhow::Result<()> {
    let given = |id: &str| -> Option<PathBuf> {
        let on_command_line = sub
            .try_contains_id(id)
            .is_ok_and(|present| present && sub.value_source(id) == Some(ValueSource::CommandLine));
        on_command_line
            .then(|| sub.try_get_one::<PathBuf>(id).ok().flatten().cloned())
            .flatten()
    };
    let flag = |id: &str| format!("--{}", id.replace('_', "-"));
    for id in REQUIRED_PATHS {
        if let Some(p) = given(id) {
            if let Err(e) = std::fs::metadata(&p) {
                return Err(cli::Usage(format!("{} {}: {e}", flag(id), p.display())).into());
            }
        }
    }
    for id in OPTIONAL_PATHS {
        if let Some(p) = given(id) {
            if let Err(e) = std::fs::metadata(&p) {
                tracing::warn!(
                    "{} {}: {e}; going on without it ({})",
                    flag(id),
                    p.display(),
                    match id {
                        "pods_log_dir" => "pod namespaces and names will be null",
                        "containers_log_dir" => "container names will be null",
                        _ => "eviction thresholds unknown: evictions rest on the kubelet's log and signals alone",
                    }
                );
            }
        }
    }
    // A missing --kubelet-log file is said by its reader, at start.
    Ok(())
}

fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    use cli::Command;
    match cli.command {
        Command::Run(a) => daemon::run_daemon(a.common, a.cursor, a.format, None),
        Command::Tail(a) => tail::run(a),
        Command::Doctor(a) => doctor::run(a),
        Command::Record(a) => daemon::run_daemon(a.common, a.cursor, a.format, Some(a.file)),
        Command::Replay(a) => daemon::replay(&a.file, a.format),
        Command::Explain(a) => explain::run(a),
        Command::Memory(a) => memory::run(a),
    }
}

/// A closed stdout (`oomtrace … | head`): the reader has what it wanted.
pub(crate) fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            // serde_json keeps the io::Error inside, not as a source.
            || c.downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == Some(std::io::ErrorKind::BrokenPipe)
    })
}
