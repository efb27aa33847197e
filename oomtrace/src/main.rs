//! oomtrace: every memory kill on a Kubernetes node, explained from the
//! kernel. See ARCHITECTURE.md for the map.

mod charges;
mod cli;
mod daemon;
mod doctor;
mod explain;
mod loader;
mod memory;
mod metrics;
mod probe;
mod sampler;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // OOMTRACE_LOG, else RUST_LOG (e.g. `oomtrace=debug`, which includes the
    // kernel programs' `oomtrace_ebpf` diagnostics), else warnings only.
    use tracing_subscriber::EnvFilter;
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("OOMTRACE_LOG")
                .or_else(|_| EnvFilter::try_from_default_env())
                .unwrap_or_else(|_| EnvFilter::new("warn")),
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
    use cli::{Command, Format};
    match cli.command {
        Command::Run(a) => daemon::run(a.common, a.format.unwrap_or(Format::Json), None),
        Command::Tail(a) => daemon::run(a.common, Format::Text, None),
        Command::Doctor(a) => doctor::run(a.common),
        Command::Record(a) => daemon::run(a.common, a.format.unwrap_or(Format::Json), Some(a.file)),
        Command::Replay(a) => daemon::replay(&a.file, a.format.unwrap_or(Format::Json)),
        Command::Explain(a) => explain::run(a),
        Command::Memory(a) => memory::run(a),
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
