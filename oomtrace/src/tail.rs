//! `oomtrace tail`: the daemon's pipeline with tail's own cursor and the
//! person's scope, printed by the core's `TailSink`.

use std::process::ExitCode;

use oomtrace_core::output::sink::tail::{Backlog, Clock, Filter, Options, TailSink};

use crate::{
    cli::{TailArgs, Usage, DAEMON_STATE_FILE},
    daemon::{self, Config},
};

pub fn run(a: TailArgs) -> anyhow::Result<ExitCode> {
    refuse_the_daemons_cursor(&a.state_file)?;
    let now = time::OffsetDateTime::now_utc();
    let since = match a.since {
        Some(d) => Some(
            time::Duration::try_from(d)
                .ok()
                .and_then(|d| now.checked_sub(d))
                .ok_or_else(|| Usage(format!("--since {d:?} reaches before the epoch")))?,
        ),
        None => None,
    };
    let opts = Options {
        filter: Filter {
            namespaces: a.namespace,
            pods: a.pod,
            containers: a.container,
            kinds: a.verdict,
            since,
            all: a.all,
        },
        backlog: if a.backlog {
            Backlog::List
        } else {
            Backlog::Summary
        },
        clock: Clock {
            offset: local_offset(now),
            utc: a.utc,
            now,
        },
        state_file: a.state_file.display().to_string(),
    };
    let config = Config::from_args(a.common, a.state_file, !a.no_backlog)?;
    // anstream decides the colour: a terminal, NO_COLOR, CLICOLOR_FORCE, TERM=dumb.
    let sink = Box::new(TailSink::new(
        std::io::stdout().lock(),
        oomtrace_core::output::sink::text::ColorChoice::Auto,
        opts,
    ));
    daemon::run(config, sink, None)
}

/// Tail must never read or move the daemon's cursor: a person's `tail` on
/// the node would take the backlog the DaemonSet is to report.
fn refuse_the_daemons_cursor(path: &std::path::Path) -> anyhow::Result<()> {
    let daemons = std::path::Path::new(DAEMON_STATE_FILE);
    let same = path == daemons
        || std::fs::canonicalize(path)
            .ok()
            .zip(std::fs::canonicalize(daemons).ok())
            .is_some_and(|(a, b)| a == b);
    if same {
        return Err(Usage(format!(
            "--state-file {}: that is the daemon's cursor (`oomtrace run`); tail keeps its own",
            path.display()
        ))
        .into());
    }
    Ok(())
}

/// The local time zone's offset now (the C library's, from TZ or
/// /etc/localtime); UTC when it cannot say. Read once: a long tail shows
/// later times at this offset even across a DST change.
fn local_offset(now: time::OffsetDateTime) -> time::UtcOffset {
    let t: libc::time_t = now.unix_timestamp() as libc::time_t;
    // SAFETY: a zeroed `tm` is a valid out-parameter; localtime_r writes it
    // and reads only `t`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return time::UtcOffset::UTC;
    }
    i32::try_from(tm.tm_gmtoff)
        .ok()
        .and_then(|s| time::UtcOffset::from_whole_seconds(s).ok())
        .unwrap_or(time::UtcOffset::UTC)
}
