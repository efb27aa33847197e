//! The bench's load generators (`xtask bench-load ...`, hidden): each joins
//! the cgroup it is given *before* doing anything, so every page and every
//! child is charged to the cgroup under test, then prints one JSON line with
//! what it did and what it cost (its own CPU time and its children's).

use std::time::Instant;

use anyhow::{bail, Context as _};
use clap::Subcommand;

#[derive(Subcommand, Debug, Clone)]
pub enum Load {
    /// Map, touch (one write per page) and unmap MIB MiB of anonymous memory, ITERS times.
    Faults {
        #[arg(long)]
        join: String,
        #[arg(long, default_value_t = 256)]
        mib: usize,
        #[arg(long)]
        iters: u32,
        /// Keep the cgroup under reclaim: each mapping is released with
        /// MADV_FREE and unmapped only after the next one is touched, so the
        /// next one's charges must reclaim it (lazily freed pages need no
        /// swap). Set the cgroup's limit between MIB and 2×MIB.
        #[arg(long)]
        pressure: bool,
    },
    /// fork + exec /bin/true + wait, COUNT times.
    Forks {
        #[arg(long)]
        join: String,
        #[arg(long)]
        count: u32,
    },
    /// kill(self, SIGURG) COUNT times (ignored by default): one
    /// `signal:signal_generate` hit each, for the hook's cost per hit.
    Signals {
        #[arg(long)]
        join: String,
        #[arg(long)]
        count: u32,
    },
    /// Move this process between the cgroups whose cgroup.procs are A and
    /// B, COUNT times: one `cgroup:cgroup_attach_task` hit each.
    Attaches {
        #[arg(long)]
        a: String,
        #[arg(long)]
        b: String,
        #[arg(long)]
        count: u32,
    },
    /// Join, fork COUNT−1 children, and wait (all of them) until killed.
    Sleepers {
        #[arg(long)]
        join: String,
        #[arg(long)]
        count: u32,
    },
}

pub fn run(load: Load) -> anyhow::Result<()> {
    match load {
        Load::Faults {
            join,
            mib,
            iters,
            pressure,
        } => {
            self_join(&join)?;
            let started = Instant::now();
            let pages = faults(mib, iters, pressure)?;
            report(started, iters as u64, pages)
        }
        Load::Forks { join, count } => {
            self_join(&join)?;
            let started = Instant::now();
            forks(count)?;
            report(started, count as u64, 0)
        }
        Load::Signals { join, count } => {
            self_join(&join)?;
            let started = Instant::now();
            for _ in 0..count {
                rustix::process::kill_process(
                    rustix::process::getpid(),
                    rustix::process::Signal::URG,
                )
                .context("kill(self, SIGURG)")?;
            }
            report(started, count as u64, 0)
        }
        Load::Attaches { a, b, count } => {
            let me = std::process::id().to_string();
            let started = Instant::now();
            for i in 0..count {
                let to = if i % 2 == 0 { &a } else { &b };
                std::fs::write(to, &me).with_context(|| format!("joining {to}"))?;
            }
            report(started, count as u64, 0)
        }
        Load::Sleepers { join, count } => {
            self_join(&join)?;
            sleepers(count)
        }
    }
}

fn self_join(procs: &str) -> anyhow::Result<()> {
    std::fs::write(procs, std::process::id().to_string())
        .with_context(|| format!("joining {procs}"))
}

/// CPU time (user + system) of this process and its reaped children, ns.
fn cpu_ns() -> u64 {
    let mut total = 0u64;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        // SAFETY: getrusage writes a plain struct we own.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(who, &mut ru) } == 0 {
            for tv in [ru.ru_utime, ru.ru_stime] {
                total += tv.tv_sec as u64 * 1_000_000_000 + tv.tv_usec as u64 * 1_000;
            }
        }
    }
    total
}

fn report(started: Instant, iters: u64, pages: u64) -> anyhow::Result<()> {
    let wall_ns = started.elapsed().as_nanos() as u64;
    println!(
        "{}",
        serde_json::json!({"iters": iters, "pages": pages, "wall_ns": wall_ns, "cpu_ns": cpu_ns()})
    );
    Ok(())
}

struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> anyhow::Result<Mapping> {
        // SAFETY: a fresh private anonymous mapping; nothing aliases it.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            bail!("mmap {len} bytes: {}", std::io::Error::last_os_error());
        }
        // 4 KiB faults, whatever the machine's THP setting: one fault per
        // page is what the storm is about.
        // SAFETY: advice on our own mapping.
        unsafe { libc::madvise(ptr, len, libc::MADV_NOHUGEPAGE) };
        Ok(Mapping { ptr, len })
    }

    /// One write per page: each is a page fault that allocates and charges.
    fn touch(&self, page: usize) -> u64 {
        let base = self.ptr as *mut u8;
        let mut n = 0;
        let mut off = 0;
        while off < self.len {
            // SAFETY: off < len, inside the mapping.
            unsafe { base.add(off).write_volatile(1) };
            off += page;
            n += 1;
        }
        n
    }

    fn lazy_free(&self) -> anyhow::Result<()> {
        // SAFETY: advice on our own mapping.
        if unsafe { libc::madvise(self.ptr, self.len, libc::MADV_FREE) } != 0 {
            bail!("madvise(MADV_FREE): {}", std::io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping what mmap gave us, once.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

fn faults(mib: usize, iters: u32, pressure: bool) -> anyhow::Result<u64> {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
    let mut pages = 0;
    let mut previous: Option<Mapping> = None;
    for _ in 0..iters {
        let m = Mapping::new(mib << 20)?;
        pages += m.touch(page);
        if pressure {
            m.lazy_free()?;
            // The previous mapping's lazily freed pages were what this
            // one's charges reclaimed; drop what is left of it now.
            previous = Some(m);
        } else {
            drop(m);
        }
    }
    drop(previous);
    Ok(pages)
}

/// fork(2): 0 in the child, the child's pid in the parent.
///
/// # Safety
/// The process must be single-threaded, and the child may call only
/// async-signal-safe functions.
unsafe fn fork() -> anyhow::Result<libc::pid_t> {
    // SAFETY: as the caller promised.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        bail!("fork: {}", std::io::Error::last_os_error());
    }
    Ok(pid)
}

fn forks(count: u32) -> anyhow::Result<()> {
    let path = c"/bin/true";
    let argv = [path.as_ptr(), std::ptr::null()];
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    for _ in 0..count {
        // SAFETY: this process is single-threaded; the child only calls
        // async-signal-safe execve and _exit.
        let pid = unsafe { fork()? };
        if pid == 0 {
            unsafe {
                libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
                libc::_exit(127);
            }
        }
        let mut status = 0;
        // SAFETY: waiting for the child we just made.
        if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
            bail!("waitpid: {}", std::io::Error::last_os_error());
        }
        if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
            bail!("/bin/true failed (status {status:#x})");
        }
    }
    Ok(())
}

fn sleepers(count: u32) -> anyhow::Result<()> {
    for _ in 1..count {
        // SAFETY: single-threaded; the child only calls prctl and pause.
        let pid = unsafe { fork()? };
        if pid == 0 {
            unsafe {
                // Gone with this process, whatever becomes of the bench.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                loop {
                    libc::pause();
                }
            }
        }
    }
    println!("ready");
    loop {
        // SAFETY: pause has no preconditions.
        unsafe { libc::pause() };
    }
}
