//! The kernel's own account of an OOM kill, read from /dev/kmsg: the
//! ground truth a verdict's `limit` is checked against. The kernel prints
//! one summary line per kill,
//! `oom-kill:constraint=CONSTRAINT_MEMCG,...,oom_memcg=/a/b,task_memcg=/a/b/c,task=hog,pid=812,uid=0`,
//! where `oom_memcg` is the cgroup its OOM killer worked in (the one whose
//! limit was hit; `/` for a global OOM).

use std::{
    fs::OpenOptions,
    io::{ErrorKind, Read as _},
    os::unix::fs::OpenOptionsExt as _,
    time::Duration,
};

use crate::wait_until;

/// The kernel's summary of one kill, as printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OomSummary {
    pub constraint: String,
    pub oom_memcg: Option<String>,
    pub task_memcg: Option<String>,
    pub task: String,
    pub pid: u32,
}

/// Every record in the kernel's ring buffer now (non-blocking: stops at
/// the end).
fn records() -> Vec<String> {
    let mut f = match OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open("/dev/kmsg")
    {
        Ok(f) => f,
        Err(e) => panic!("reading the kernel log (/dev/kmsg): {e}"),
    };
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            // A record overwritten while reading: go on from the next one.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PIPE.raw_os_error()) => {}
            Err(e) => panic!("reading /dev/kmsg: {e}"),
        }
    }
    out
}

fn parse(record: &str) -> Option<OomSummary> {
    let msg = record.split_once(';')?.1.lines().next()?;
    let rest = msg.strip_prefix("oom-kill:")?;
    let field = |name: &str| {
        rest.split(',')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_string)
    };
    Some(OomSummary {
        constraint: field("constraint")?,
        oom_memcg: field("oom_memcg"),
        task_memcg: field("task_memcg"),
        task: field("task")?,
        pid: field("pid")?.parse().ok()?,
    })
}

/// The kernel's summary line for the kill of `pid`, waited for (the kernel
/// prints it before the kill; /dev/kmsg has it as soon as it is printed).
pub fn oom_summary(pid: u32, limit: Duration) -> Option<OomSummary> {
    let mut found = None;
    wait_until(limit, || {
        found = records()
            .iter()
            .filter_map(|r| parse(r))
            .rfind(|s| s.pid == pid);
        found.is_some()
    });
    found
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn the_summary_line_is_read_field_by_field() {
        let r = "6,1234,5678,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kubepods/burstable/podX,task_memcg=/kubepods/burstable/podX/abc,task=oomtrace-hog,pid=812,uid=0\n";
        let s = parse(r).expect("a summary");
        assert_eq!(s.oom_memcg.as_deref(), Some("/kubepods/burstable/podX"));
        assert_eq!(
            s.task_memcg.as_deref(),
            Some("/kubepods/burstable/podX/abc")
        );
        assert_eq!(s.pid, 812);
        assert_eq!(s.task, "oomtrace-hog");
        assert_eq!(
            parse("6,1,2,-;Memory cgroup out of memory: Killed process 812"),
            None
        );
    }
}
