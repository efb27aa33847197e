//! Decoding ring-buffer records into the wire types of `oomtrace-common`.
//! Bytes are copied (`bytemuck::try_pod_read_unaligned`: the wire types are
//! `Pod`, so any bytes of the right length are a valid value) after checking
//! length, version and kind: ring-buffer memory is never borrowed as a typed
//! reference. Records of wire version 3 (before the validity masks; the
//! replay fixtures hold them) decode into today's types, see [`v3`].

use std::{fmt::Write as _, mem::size_of};

use bytemuck::Pod;
use oomtrace_common::{
    AttachEvent, CgroupEvent, Header, Kind, OomEvent, PressureEvent, SignalEvent, VictimEvent,
    COMM_LEN, WIRE_VERSION,
};

#[derive(Clone, Copy, Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "decoded one at a time and handled at once; boxing would allocate per record"
)]
pub enum Event {
    Oom(OomEvent),
    Victim(VictimEvent),
    Mkdir(CgroupEvent),
    Rmdir(CgroupEvent),
    Release(CgroupEvent),
    Attach(AttachEvent),
    Signal(SignalEvent),
    Pressure(PressureEvent),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than its {need}-byte {what}")]
    Short {
        what: &'static str,
        len: usize,
        need: usize,
    },
    #[error("record has wire version {found}, this build reads {WIRE_VERSION} (and 3 from old recordings): kernel object and daemon are from different builds")]
    Version { found: u16 },
    #[error("unknown record kind {0}")]
    Kind(u16),
}

/// The first `size_of::<T>()` bytes as a `T`; longer records are accepted
/// (trailing bytes ignored), shorter ones are a typed error.
fn copy<T: Pod>(bytes: &[u8], what: &'static str) -> Result<T, DecodeError> {
    let short = || DecodeError::Short {
        what,
        len: bytes.len(),
        need: size_of::<T>(),
    };
    let head = bytes.get(..size_of::<T>()).ok_or_else(short)?;
    bytemuck::try_pod_read_unaligned(head).map_err(|_| short())
}

pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let header: Header = copy(bytes, "header")?;
    if header.version != WIRE_VERSION && header.version != v3::VERSION {
        return Err(DecodeError::Version {
            found: header.version,
        });
    }
    let kind = Kind::from_u16(header.kind).ok_or(DecodeError::Kind(header.kind))?;
    if header.version == v3::VERSION {
        return v3::decode(kind, bytes);
    }
    Ok(match kind {
        Kind::OomInvocation => Event::Oom(copy(bytes, "oom record")?),
        Kind::Victim => Event::Victim(copy(bytes, "victim record")?),
        Kind::CgroupMkdir => Event::Mkdir(copy(bytes, "cgroup record")?),
        Kind::CgroupRmdir => Event::Rmdir(copy(bytes, "cgroup record")?),
        Kind::CgroupRelease => Event::Release(copy(bytes, "cgroup record")?),
        Kind::CgroupAttach => Event::Attach(copy(bytes, "attach record")?),
        Kind::Signal => Event::Signal(copy(bytes, "signal record")?),
        Kind::Pressure => Event::Pressure(copy(bytes, "pressure record")?),
    })
}

impl Event {
    pub fn header(&self) -> &Header {
        match self {
            Event::Oom(e) => &e.header,
            Event::Victim(e) => &e.header,
            Event::Mkdir(e) | Event::Rmdir(e) | Event::Release(e) => &e.header,
            Event::Attach(e) => &e.header,
            Event::Signal(e) => &e.header,
            Event::Pressure(e) => &e.header,
        }
    }
}

/// Kernel bytes (a comm, a cgroup name or path) as text, losslessly: valid
/// UTF-8 stays as it is (a literal backslash too: systemd unit names hold
/// `\x2d`), each byte that is not part of valid UTF-8 becomes the four
/// characters `\xNN` (lowercase hex). Every path the daemon builds (ring
/// buffer, cgroupfs walk, /proc/PID/cgroup) goes through this, so the same
/// cgroup always has the same string.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// A kernel `comm`: up to 16 bytes, NUL-terminated unless full. Not
/// necessarily UTF-8: invalid bytes are escaped (see [`escape_bytes`]).
pub fn comm(raw: &[u8; COMM_LEN]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    escape_bytes(&raw[..end])
}

/// A path copied by `bpf_probe_read_kernel_str`, bounded by its reported
/// length; invalid UTF-8 escaped (see [`escape_bytes`]).
pub fn path(raw: &[u8], len: u32) -> String {
    let len = (len as usize).min(raw.len());
    let end = raw[..len].iter().position(|&b| b == 0).unwrap_or(len);
    escape_bytes(&raw[..end])
}

/// The raw bytes of a wire value, for tests.
#[cfg(test)]
pub fn bytes_of<T: Pod>(v: &T) -> Vec<u8> {
    bytemuck::bytes_of(v).to_vec()
}

/// Wire version 3: the layouts before the validity masks, kept so that
/// recordings made with it (the replay fixtures) replay to the same lines.
/// Version 3's kernel code wrote 0 for a failed read; its values are taken
/// as read, except where 0 (or `u32::MAX` for the constraint) already meant
/// unread then: namespace ids and `ns_pid`, memcg ids, `chosen_tgid`.
/// Cgroup and attach records did not change.
pub mod v3 {
    use std::mem::size_of;

    use bytemuck::{Pod, Zeroable};
    use oomtrace_common::{valid, Header, Kind, MemcgLevel, COMM_LEN, MEMCG_DEPTH};

    use super::{copy, DecodeError, Event};

    pub const VERSION: u16 = 3;

    #[repr(C)]
    #[derive(Clone, Copy, Debug, Pod, Zeroable)]
    pub struct TaskInfo {
        pub tgid: u32,
        pub tid: u32,
        pub comm: [u8; COMM_LEN],
        pub memcg_depth: u32,
        pub ns_pid: u32,
        pub pid_ns: u32,
        pub mnt_ns: u32,
        pub memcg: [MemcgLevel; MEMCG_DEPTH],
    }

    #[repr(C)]
    #[derive(Clone, Copy, Debug, Pod, Zeroable)]
    pub struct VictimEvent {
        pub header: Header,
        pub victim: TaskInfo,
        pub trigger: TaskInfo,
        pub total_vm_pages: u64,
        pub anon_rss_pages: u64,
        pub file_rss_pages: u64,
        pub shmem_rss_pages: u64,
        pub oom_score_adj: i16,
        pub _pad: [u8; 2],
        pub source: u32,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Debug, Pod, Zeroable)]
    pub struct OomEvent {
        pub header: Header,
        pub trigger: TaskInfo,
        pub memcg: MemcgLevel,
        pub totalpages: u64,
        pub constraint: u32,
        pub chosen_tgid: u32,
        pub order: i32,
        pub _pad: u32,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Debug, Pod, Zeroable)]
    pub struct SignalEvent {
        pub header: Header,
        pub sig: u32,
        pub code: i32,
        pub result: i32,
        pub source: u32,
        pub sender_tgid: u32,
        pub sender_tid: u32,
        pub sender_comm: [u8; COMM_LEN],
        pub target: TaskInfo,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Debug, Pod, Zeroable)]
    pub struct PressureEvent {
        pub header: Header,
        pub task: TaskInfo,
    }

    const _: () = assert!(size_of::<TaskInfo>() == 232);
    const _: () = assert!(size_of::<VictimEvent>() == 520);
    const _: () = assert!(size_of::<OomEvent>() == 296);
    const _: () = assert!(size_of::<SignalEvent>() == 288);
    const _: () = assert!(size_of::<PressureEvent>() == 248);

    fn flag(cond: bool, bit: u32) -> u32 {
        if cond {
            bit
        } else {
            0
        }
    }

    impl From<TaskInfo> for oomtrace_common::TaskInfo {
        fn from(t: TaskInfo) -> Self {
            let depth = (t.memcg_depth as usize).min(MEMCG_DEPTH);
            let mut memcg_valid = 0;
            for (i, l) in t.memcg.iter().enumerate().take(depth) {
                memcg_valid |= flag(l.id != 0, valid::memcg_id(i)) | valid::memcg_counters(i);
            }
            oomtrace_common::TaskInfo {
                tgid: t.tgid,
                tid: t.tid,
                comm: t.comm,
                memcg_depth: t.memcg_depth,
                ns_pid: t.ns_pid,
                pid_ns: t.pid_ns,
                mnt_ns: t.mnt_ns,
                valid: valid::TASK_PID
                    | valid::TASK_COMM
                    | flag(t.ns_pid != 0, valid::TASK_NS_PID)
                    | flag(t.pid_ns != 0, valid::TASK_PID_NS)
                    | flag(t.mnt_ns != 0, valid::TASK_MNT_NS)
                    | flag(depth > 0, valid::TASK_MEMCG_CHAIN),
                memcg_valid,
                memcg: t.memcg,
            }
        }
    }

    impl From<VictimEvent> for oomtrace_common::VictimEvent {
        fn from(v: VictimEvent) -> Self {
            oomtrace_common::VictimEvent {
                header: v.header,
                victim: v.victim.into(),
                trigger: v.trigger.into(),
                total_vm_pages: v.total_vm_pages,
                anon_rss_pages: v.anon_rss_pages,
                file_rss_pages: v.file_rss_pages,
                shmem_rss_pages: v.shmem_rss_pages,
                oom_score_adj: v.oom_score_adj,
                _pad: [0; 2],
                source: v.source,
                valid: valid::VICTIM_ALL,
                _pad2: 0,
            }
        }
    }

    impl From<OomEvent> for oomtrace_common::OomEvent {
        fn from(o: OomEvent) -> Self {
            // v3: id 0 was a global OOM (or an unread oc->memcg).
            let memcg = o.memcg.id != 0;
            oomtrace_common::OomEvent {
                header: o.header,
                trigger: o.trigger.into(),
                memcg: o.memcg,
                totalpages: o.totalpages,
                constraint: o.constraint,
                chosen_tgid: o.chosen_tgid,
                order: o.order,
                valid: valid::OOM_MEMCG
                    | flag(!memcg, valid::OOM_GLOBAL)
                    | flag(memcg, valid::OOM_MEMCG_ID | valid::OOM_MEMCG_COUNTERS)
                    | valid::OOM_TOTALPAGES
                    | flag(o.constraint != u32::MAX, valid::OOM_CONSTRAINT)
                    | flag(o.chosen_tgid != 0, valid::OOM_CHOSEN)
                    | valid::OOM_ORDER,
            }
        }
    }

    impl From<SignalEvent> for oomtrace_common::SignalEvent {
        fn from(s: SignalEvent) -> Self {
            oomtrace_common::SignalEvent {
                header: s.header,
                sig: s.sig,
                code: s.code,
                result: s.result,
                source: s.source,
                sender_tgid: s.sender_tgid,
                sender_tid: s.sender_tid,
                sender_comm: s.sender_comm,
                valid: valid::SIGNAL_ALL,
                _pad: 0,
                target: s.target.into(),
            }
        }
    }

    impl From<PressureEvent> for oomtrace_common::PressureEvent {
        fn from(p: PressureEvent) -> Self {
            oomtrace_common::PressureEvent {
                header: p.header,
                task: p.task.into(),
            }
        }
    }

    /// A version-3 record of `kind` as today's types.
    pub(super) fn decode(kind: Kind, bytes: &[u8]) -> Result<Event, DecodeError> {
        Ok(match kind {
            Kind::OomInvocation => Event::Oom(copy::<OomEvent>(bytes, "oom record")?.into()),
            Kind::Victim => Event::Victim(copy::<VictimEvent>(bytes, "victim record")?.into()),
            Kind::CgroupMkdir => Event::Mkdir(copy(bytes, "cgroup record")?),
            Kind::CgroupRmdir => Event::Rmdir(copy(bytes, "cgroup record")?),
            Kind::CgroupRelease => Event::Release(copy(bytes, "cgroup record")?),
            Kind::CgroupAttach => Event::Attach(copy(bytes, "attach record")?),
            Kind::Signal => Event::Signal(copy::<SignalEvent>(bytes, "signal record")?.into()),
            Kind::Pressure => {
                Event::Pressure(copy::<PressureEvent>(bytes, "pressure record")?.into())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytemuck::Zeroable;
    use oomtrace_common::{valid, MemcgLevel, TaskInfo, VictimSource, MEMCG_DEPTH, PATH_LEN};

    pub fn header(kind: Kind) -> Header {
        Header {
            version: WIRE_VERSION,
            kind: kind as u16,
            cpu: 1,
            boot_ns: 42,
        }
    }

    fn task(tgid: u32) -> TaskInfo {
        let mut comm = [0u8; COMM_LEN];
        comm[..4].copy_from_slice(b"hog\xff");
        TaskInfo {
            tgid,
            tid: tgid + 1,
            comm,
            memcg_depth: 2,
            ns_pid: 1,
            pid_ns: 4026531836,
            mnt_ns: 4026531841,
            valid: valid::TASK_ALL,
            memcg_valid: valid::memcg_all(2),
            memcg: {
                let mut m = [MemcgLevel::default(); MEMCG_DEPTH];
                m[0] = MemcgLevel {
                    id: 7,
                    usage_pages: 10,
                    max_pages: 11,
                };
                m[1] = MemcgLevel {
                    id: 1,
                    usage_pages: 99,
                    max_pages: u64::MAX,
                };
                m
            },
        }
    }

    #[test]
    fn victim_round_trip() {
        let ev = VictimEvent {
            header: header(Kind::Victim),
            victim: task(100),
            trigger: task(200),
            total_vm_pages: 1,
            anon_rss_pages: 2,
            file_rss_pages: 3,
            shmem_rss_pages: 4,
            oom_score_adj: -998,
            _pad: [0; 2],
            source: VictimSource::TpBtf as u32,
            valid: valid::VICTIM_ALL & !valid::VICTIM_SHMEM_RSS,
            _pad2: 0,
        };
        let mut bytes = vec![0u8; 3];
        bytes.extend(bytes_of(&ev));
        // Decoding from an unaligned slice must work.
        let Ok(Event::Victim(back)) = decode(&bytes[3..]) else {
            panic!("not a victim")
        };
        assert_eq!(back.victim.tgid, 100);
        assert_eq!(
            back.trigger.memcg[0],
            MemcgLevel {
                id: 7,
                usage_pages: 10,
                max_pages: 11
            }
        );
        assert_eq!(back.oom_score_adj(), Some(-998));
        assert_eq!(back.anon_rss_pages(), Some(2));
        assert_eq!(back.shmem_rss_pages(), None, "unread is None, not 0");
        assert_eq!(back.rss_pages(), None);
        assert_eq!(back.victim.ns_pid(), Some(1));
        assert_eq!(back.victim.leaf_memcg_id(), Some(7));
        assert_eq!(comm(&back.victim.comm), "hog\\xff");
    }

    #[test]
    fn unread_task_fields_are_none() {
        let mut t = task(5);
        t.valid = valid::TASK_PID | valid::TASK_COMM;
        t.memcg_valid = valid::memcg_id(0) | valid::memcg_counters(1);
        assert_eq!(
            (t.tgid(), t.ns_pid(), t.pid_ns(), t.mnt_ns()),
            (Some(5), None, None, None)
        );
        assert!(!t.memcg_chain_complete());
        let chain: Vec<_> = t.memcg_chain().collect();
        assert_eq!(chain.len(), 2);
        assert_eq!(
            (chain[0].id, chain[0].usage_pages, chain[0].max_pages),
            (Some(7), None, None)
        );
        assert_eq!(
            (chain[1].id, chain[1].usage_pages, chain[1].max_pages),
            (None, Some(99), Some(u64::MAX))
        );
        assert_eq!(t.memcg(2), None, "beyond the levels walked");
    }

    #[test]
    fn oom_memcg_with_an_unread_id_is_not_global() {
        let mut o = OomEvent::zeroed();
        o.header = header(Kind::OomInvocation);
        o.memcg.usage_pages = 5;
        o.memcg.max_pages = 5;
        o.valid = valid::OOM_MEMCG | valid::OOM_MEMCG_COUNTERS | valid::OOM_TOTALPAGES;
        let Ok(Event::Oom(back)) = decode(&bytes_of(&o)) else {
            panic!("not an oom record")
        };
        assert_eq!(back.global(), Some(false));
        let m = back.memcg().expect("a memcg OOM");
        assert_eq!((m.id, m.usage_pages, m.max_pages), (None, Some(5), Some(5)));
        assert_eq!((back.constraint(), back.chosen_tgid()), (None, None));
        o.valid = valid::OOM_MEMCG | valid::OOM_GLOBAL;
        assert_eq!((o.global(), o.memcg()), (Some(true), None));
        o.valid = 0;
        assert_eq!((o.global(), o.memcg()), (None, None), "oc->memcg unread");
    }

    #[test]
    fn invalid_utf8_is_escaped_and_backslashes_kept() {
        assert_eq!(escape_bytes(b"/kubepods/pod\xff"), "/kubepods/pod\\xff");
        // Not injective, by choice: a name spelling `\xff` reads the same.
        assert_eq!(
            escape_bytes(b"/kubepods/pod\xff"),
            escape_bytes(b"/kubepods/pod\\xff")
        );
        // systemd's own escaping stays as it is: a literal backslash is valid UTF-8.
        let unit = b"/system.slice/system-getty.slice/getty\\x2dtty1.service";
        assert_eq!(
            escape_bytes(unit),
            "/system.slice/system-getty.slice/getty\\x2dtty1.service"
        );
        assert_eq!(escape_bytes("naïve".as_bytes()), "naïve");
        // A truncated multi-byte sequence: each of its bytes escaped.
        assert_eq!(escape_bytes(b"a\xc3\xa9\xe2\x82"), "a\u{e9}\\xe2\\x82");
        let mut raw = [0u8; COMM_LEN];
        raw[..5].copy_from_slice(b"x\xffy\0z");
        assert_eq!(comm(&raw), "x\\xffy");
        let mut p = [0u8; PATH_LEN];
        p[..5].copy_from_slice(b"/a\xfe/b");
        assert_eq!(path(&p, 5), "/a\\xfe/b");
    }

    #[test]
    fn version_3_records_decode_with_their_reads_valid() {
        let mut t3 = v3::TaskInfo::zeroed();
        t3.tgid = 100;
        t3.tid = 101;
        t3.comm[..3].copy_from_slice(b"hog");
        t3.memcg_depth = 2;
        t3.ns_pid = 0;
        t3.pid_ns = 4026531836;
        t3.mnt_ns = 4026531841;
        t3.memcg[0] = MemcgLevel {
            id: 7,
            usage_pages: 10,
            max_pages: 10,
        };
        t3.memcg[1] = MemcgLevel {
            id: 0,
            usage_pages: 0,
            max_pages: 0,
        };
        let mut blind = v3::TaskInfo::zeroed();
        blind.tgid = 100;
        blind.tid = 100;
        let v = v3::VictimEvent {
            header: Header {
                version: v3::VERSION,
                ..header(Kind::Victim)
            },
            victim: blind,
            trigger: t3,
            total_vm_pages: 1,
            anon_rss_pages: 2,
            file_rss_pages: 3,
            shmem_rss_pages: 0,
            oom_score_adj: 0,
            _pad: [0; 2],
            source: VictimSource::Tracepoint as u32,
        };
        let Ok(Event::Victim(back)) = decode(&bytes_of(&v)) else {
            panic!("v3 victim not decoded")
        };
        assert_eq!(back.header.version, v3::VERSION);
        assert_eq!(back.oom_score_adj(), Some(0), "v3 values count as read");
        assert_eq!(back.rss_pages(), Some(5));
        assert_eq!(back.source, VictimSource::Tracepoint as u32);
        let t = back.trigger;
        assert_eq!((t.tgid(), t.tid()), (Some(100), Some(101)));
        assert_eq!(comm(t.comm().expect("comm")), "hog");
        // 0 meant unread in v3 for namespace ids, ns_pid and memcg ids.
        assert_eq!(
            (t.ns_pid(), t.pid_ns(), t.mnt_ns()),
            (None, Some(4026531836), Some(4026531841))
        );
        assert_eq!(
            t.memcg(0).map(|l| (l.id, l.max_pages)),
            Some((Some(7), Some(10)))
        );
        assert_eq!(
            t.memcg(1).map(|l| (l.id, l.usage_pages)),
            Some((None, Some(0)))
        );
        assert!(t.memcg_chain_complete());
        let b = back.victim;
        assert_eq!(
            (b.tgid(), b.memcg_depth(), b.memcg_chain_complete()),
            (Some(100), 0, false)
        );

        let o = v3::OomEvent {
            header: Header {
                version: v3::VERSION,
                ..header(Kind::OomInvocation)
            },
            trigger: t3,
            memcg: MemcgLevel::default(),
            totalpages: 9,
            constraint: u32::MAX,
            chosen_tgid: 100,
            order: 0,
            _pad: 0,
        };
        let Ok(Event::Oom(o)) = decode(&bytes_of(&o)) else {
            panic!("v3 oom not decoded")
        };
        assert_eq!(
            (o.global(), o.memcg(), o.constraint()),
            (Some(true), None, None)
        );
        assert_eq!(
            (o.totalpages(), o.chosen_tgid(), o.order()),
            (Some(9), Some(100), Some(0))
        );

        let s = v3::SignalEvent {
            header: Header {
                version: v3::VERSION,
                ..header(Kind::Signal)
            },
            sig: 9,
            code: 0x80,
            result: 0,
            source: VictimSource::TpBtf as u32,
            sender_tgid: 1,
            sender_tid: 1,
            sender_comm: *b"kubelet\0\0\0\0\0\0\0\0\0",
            target: t3,
        };
        let Ok(Event::Signal(s)) = decode(&bytes_of(&s)) else {
            panic!("v3 signal not decoded")
        };
        assert_eq!((s.code(), s.result()), (Some(0x80), Some(0)));
        assert_eq!(s.sender_comm().map(comm).as_deref(), Some("kubelet"));
        assert_eq!(s.target.leaf_memcg_id(), Some(7));

        let p = v3::PressureEvent {
            header: Header {
                version: v3::VERSION,
                ..header(Kind::Pressure)
            },
            task: t3,
        };
        let Ok(Event::Pressure(p)) = decode(&bytes_of(&p)) else {
            panic!("v3 pressure not decoded")
        };
        assert_eq!(p.task.memcg(0).and_then(|l| l.usage_pages), Some(10));
        // A v3 record one byte short is still a typed error.
        let mut short = bytes_of(&v3::PressureEvent {
            header: Header {
                version: v3::VERSION,
                ..header(Kind::Pressure)
            },
            task: t3,
        });
        short.pop();
        assert!(matches!(
            decode(&short),
            Err(DecodeError::Short {
                what: "pressure record",
                need: 248,
                ..
            })
        ));
    }

    #[test]
    fn cgroup_round_trip_and_path() {
        let mut p = [0u8; PATH_LEN];
        p[..6].copy_from_slice(b"/a/b\0x");
        let ev = CgroupEvent {
            header: header(Kind::CgroupRmdir),
            root: 3,
            level: 2,
            id: 9,
            path_len: 4,
            _pad: 0,
            path: p,
        };
        let Ok(Event::Rmdir(back)) = decode(&bytes_of(&ev)) else {
            panic!("not rmdir")
        };
        assert_eq!(path(&back.path, back.path_len), "/a/b");
        assert_eq!(path(&back.path, 999), "/a/b");
    }

    #[test]
    fn bad_records_are_typed_errors() {
        assert_eq!(
            decode(&[1, 2]).err(),
            Some(DecodeError::Short {
                what: "header",
                len: 2,
                need: 16
            })
        );
        let mut h = bytes_of(&header(Kind::Victim));
        assert!(matches!(
            decode(&h),
            Err(DecodeError::Short {
                what: "victim record",
                ..
            })
        ));
        h[0] = 99;
        assert_eq!(decode(&h).err(), Some(DecodeError::Version { found: 99 }));
        let mut k = bytes_of(&header(Kind::Victim));
        k[2] = 77;
        assert_eq!(decode(&k).err(), Some(DecodeError::Kind(77)));
    }
}
