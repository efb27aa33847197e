//! Kernel records built for the unit tests: every field read and valid
//! unless a test says otherwise, so a new wire field is set here once and
//! no test elsewhere spells the whole record.

use oomtrace_common::{
    valid, Header, Kind, MemcgLevel, OomEvent, SignalEvent, TaskInfo, VictimEvent, VictimSource,
    COMM_LEN, MEMCG_DEPTH, WIRE_VERSION,
};

/// The pid and mount namespace ids every built task is in.
pub const PID_NS: u32 = 99;
pub const MNT_NS: u32 = 98;

pub fn header(kind: Kind, boot_ns: u64) -> Header {
    Header {
        version: WIRE_VERSION,
        kind: kind as u16,
        cpu: 0,
        boot_ns,
    }
}

/// A kernel `comm` of `name` (at most 16 bytes).
pub fn comm(name: &str) -> [u8; COMM_LEN] {
    let mut c = [0u8; COMM_LEN];
    c[..name.len()].copy_from_slice(name.as_bytes());
    c
}

/// A task `pid` named `name`, `ns_pid` in its own pid namespace
/// ([`PID_NS`]), whose memcg chain (leaf first) is `chain`: (cgroup id,
/// usage pages, max pages), all read.
pub fn task(pid: u32, ns_pid: u32, name: &str, chain: &[(u64, u64, u64)]) -> TaskInfo {
    let mut memcg = [MemcgLevel::default(); MEMCG_DEPTH];
    for (level, &(id, usage_pages, max_pages)) in memcg.iter_mut().zip(chain) {
        *level = MemcgLevel {
            id,
            usage_pages,
            max_pages,
        };
    }
    TaskInfo {
        tgid: pid,
        tid: pid,
        comm: comm(name),
        memcg_depth: chain.len() as u32,
        ns_pid,
        pid_ns: PID_NS,
        mnt_ns: MNT_NS,
        valid: valid::TASK_ALL,
        memcg_valid: valid::memcg_all(chain.len()),
        memcg,
    }
}

/// `victim` killed at `boot_ns` for `trigger`'s allocation, as tp_btf
/// reads it: 100 pages of total_vm, 90 anon, 5 file, 0 shmem.
pub fn victim(victim: TaskInfo, trigger: TaskInfo, boot_ns: u64) -> VictimEvent {
    VictimEvent {
        header: header(Kind::Victim, boot_ns),
        victim,
        trigger,
        total_vm_pages: 100,
        anon_rss_pages: 90,
        file_rss_pages: 5,
        shmem_rss_pages: 0,
        oom_score_adj: 0,
        _pad: [0; 2],
        source: VictimSource::TpBtf as u32,
        valid: valid::VICTIM_ALL,
        _pad2: 0,
    }
}

/// Signal `sig` from userspace (`si_code` 0) sent at `boot_ns` by
/// `sender` (comm, pid) to `target`, as tp_btf reads it; `result` 1: the
/// target ignored it.
pub fn signal(
    sig: u32,
    sender: (&str, u32),
    target: TaskInfo,
    result: i32,
    boot_ns: u64,
) -> SignalEvent {
    SignalEvent {
        header: header(Kind::Signal, boot_ns),
        sig,
        code: 0,
        result,
        source: VictimSource::TpBtf as u32,
        sender_tgid: sender.1,
        sender_tid: sender.1,
        sender_comm: comm(sender.0),
        valid: valid::SIGNAL_ALL,
        _pad: 0,
        target,
    }
}

/// A per-OOM record at `boot_ns` of `trigger`'s allocation with nothing
/// of `struct oom_control` read: tests set what the kernel read.
pub fn oom(trigger: TaskInfo, boot_ns: u64) -> OomEvent {
    let mut o = <OomEvent as bytemuck::Zeroable>::zeroed();
    o.header = header(Kind::OomInvocation, boot_ns);
    o.trigger = trigger;
    o
}
