//! A process that joins a cgroup and then allocates memory, touching every
//! page, until it holds `--mib` MiB (or the OOM killer ends it). With
//! `--hold` it then waits for stdin to close. With `--child` it joins, then
//! allocates in a forked child (its pid printed first: `child PID`), which
//! stays unreaped until stdin closes: a process the cgroup tracepoints never
//! saw attach, whose /proc/PID/cgroup outlives its kill.
//! With `--rate-mib-s N` it
//! allocates at N MiB/s (paced from its start, so it does not drift)
//! instead of as fast as it can.
//!
//! Joining itself (rather than being moved by the test) guarantees no byte is
//! charged before the process sits in the cgroup under test.

use std::io::Read;

fn main() -> std::process::ExitCode {
    let mut join: Vec<String> = Vec::new();
    let mut mib: usize = 0;
    let mut hold = false;
    let mut sleep_s: u64 = 0;
    let mut child = false;
    let mut rate: f64 = 0.0;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--join" => join.extend(args.next()),
            "--mib" => mib = args.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            "--hold" => hold = true,
            "--child" => child = true,
            "--rate-mib-s" => rate = args.next().and_then(|v| v.parse().ok()).unwrap_or(0.0),
            "--sleep" => sleep_s = args.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            other => {
                eprintln!("oomtrace-hog: unknown argument {other}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    for procs in &join {
        if let Err(e) = std::fs::write(procs, std::process::id().to_string()) {
            eprintln!("oomtrace-hog: joining {procs}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    if child {
        let spawned = std::env::current_exe().and_then(|exe| {
            std::process::Command::new(exe)
                .args(["--mib", &mib.to_string()])
                .stdout(std::process::Stdio::null())
                .spawn()
        });
        let mut c = match spawned {
            Ok(c) => c,
            Err(e) => {
                eprintln!("oomtrace-hog: forking the child: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        println!("child {}", c.id());
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        let _ = c.wait();
        return std::process::ExitCode::SUCCESS;
    }
    let mut held: Vec<Vec<u8>> = Vec::with_capacity(mib);
    let started = std::time::Instant::now();
    for i in 0..mib {
        if rate > 0.0 {
            let due = started + std::time::Duration::from_secs_f64(i as f64 / rate);
            std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
        }
        // Distinct bytes per chunk so no page can be shared or deduplicated.
        held.push(vec![(i % 251) as u8 + 1; 1 << 20]);
    }
    println!("allocated {mib}");
    // Holding the memory for a while (in a container with no stdin).
    std::thread::sleep(std::time::Duration::from_secs(sleep_s));
    if hold {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    }
    std::hint::black_box(&held);
    std::process::ExitCode::SUCCESS
}
