//! oomtrace: every memory kill on a Kubernetes node, explained from the
//! kernel. See ARCHITECTURE.md for the map.

mod attribution;
mod btf;
mod cgroup;
mod cli;
mod daemon;
mod doctor;
mod event;
mod kernel_log;
mod kmsg;
mod loader;
mod names;
mod offsets;
mod pods;
mod probe;
mod sink;
mod tracefs;
mod verdict;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OOMTRACE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = cli::Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("oomtrace: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        cli::Command::Run(args) => {
            daemon::run(args.common, args.format.unwrap_or(cli::Format::Json))
        }
        cli::Command::Tail(args) => daemon::run(args.common, cli::Format::Text),
        cli::Command::Doctor(args) => doctor::run(args.common),
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
