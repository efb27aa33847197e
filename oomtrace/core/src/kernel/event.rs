//! Decoding ring-buffer records into the wire types of `oomtrace-common`.
//! Bytes are copied (`bytemuck::try_pod_read_unaligned`: the wire types are
//! `Pod`, so any bytes of the right length are a valid value) after checking
//! length, version and kind: ring-buffer memory is never borrowed as a typed
//! reference. Only this build's wire version decodes: a recording holds
//! the raw records of the build that made it.

use std::{fmt::Write as _, mem::size_of};

use bytemuck::Pod;
use oomtrace_common::{
    AttachEvent, CgroupEvent, Header, Kind, LimitWriteEvent, OomEvent, PressureEvent, SignalEvent,
    TaskInfo, VictimEvent, COMM_LEN, WIRE_VERSION,
};

/// Decoded one at a time and handled at once: not boxed (the variants'
/// sizes differ, but a box would allocate per record).
#[derive(Clone, Copy, Debug)]
pub enum Event {
    Oom(OomEvent),
    Victim(VictimEvent),
    Mkdir(CgroupEvent),
    Rmdir(CgroupEvent),
    Release(CgroupEvent),
    Attach(AttachEvent),
    Signal(SignalEvent),
    Pressure(PressureEvent),
    LimitWrite(LimitWriteEvent),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than its {need}-byte {what}")]
    Short {
        what: &'static str,
        len: usize,
        need: usize,
    },
    #[error("record has wire version {found}, this build reads {WIRE_VERSION}: kernel object and daemon are from different builds")]
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
    if header.version != WIRE_VERSION {
        return Err(DecodeError::Version {
            found: header.version,
        });
    }
    let kind = Kind::from_u16(header.kind).ok_or(DecodeError::Kind(header.kind))?;
    Ok(match kind {
        Kind::OomInvocation => Event::Oom(copy(bytes, "oom record")?),
        Kind::Victim => Event::Victim(copy(bytes, "victim record")?),
        Kind::CgroupMkdir => Event::Mkdir(copy(bytes, "cgroup record")?),
        Kind::CgroupRmdir => Event::Rmdir(copy(bytes, "cgroup record")?),
        Kind::CgroupRelease => Event::Release(copy(bytes, "cgroup record")?),
        Kind::CgroupAttach => Event::Attach(copy(bytes, "attach record")?),
        Kind::Signal => Event::Signal(copy(bytes, "signal record")?),
        Kind::Pressure => Event::Pressure(copy(bytes, "pressure record")?),
        Kind::LimitWrite => Event::LimitWrite(copy(bytes, "limit write record")?),
    })
}

/// The record's kind, from its header alone (None: too short or unknown).
pub fn kind(bytes: &[u8]) -> Option<Kind> {
    let header: Header = copy(bytes, "header").ok()?;
    Kind::from_u16(header.kind)
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
            Event::LimitWrite(e) => &e.header,
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

/// A task's pid for the output fields that always hold one. The kernel
/// takes it by helper (`current`) or from a tracepoint's own record, so it
/// is unset only where a probe's read of `task->tgid` failed: 0 then, no
/// process's pid, which matches no kernel log line and no /proc entry.
pub fn pid(task: &TaskInfo) -> u32 {
    task.tgid().unwrap_or(0)
}

/// A comm read through its record's accessor: `None` (null in the output)
/// when the kernel could not read it, never an empty name.
pub fn known_comm(raw: Option<&[u8; COMM_LEN]>) -> Option<String> {
    raw.map(comm)
}

/// A path copied by `bpf_probe_read_kernel_str`, bounded by its reported
/// length; invalid UTF-8 escaped (see [`escape_bytes`]).
pub fn path(raw: &[u8], len: u32) -> String {
    let len = (len as usize).min(raw.len());
    let end = raw[..len].iter().position(|&b| b == 0).unwrap_or(len);
    escape_bytes(&raw[..end])
}

/// A limit as written to `memory.max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WrittenLimit {
    /// `max`: no limit.
    Max,
    Bytes(u64),
}

/// What the kernel makes of a limit write's text (`page_counter_memparse`
/// after `strstrip`): `max`, or `memparse`'s number (base 0: `0x` hex, a
/// leading `0` octal; a K/M/G/T/P/E suffix, either case) rounded down to
/// whole pages. `None` where the kernel refuses the write (it then keeps
/// the old limit) and for a text the hook may have cut.
pub fn written_limit(text: &[u8], page_size: u64) -> Option<WrittenLimit> {
    if text.len() >= oomtrace_common::LIMIT_TEXT_LEN - 1 || page_size == 0 {
        return None;
    }
    let t = std::str::from_utf8(text).ok()?.trim_ascii();
    if t == "max" {
        return Some(WrittenLimit::Max);
    }
    let (radix, digits) = if let Some(h) = t.strip_prefix("0x").or(t.strip_prefix("0X")) {
        (16, h)
    } else if t.len() > 1 && t.starts_with('0') {
        (8, &t[1..])
    } else {
        (10, t)
    };
    let end = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    if end == 0 && radix != 8 {
        return None;
    }
    let n = if end == 0 {
        0
    } else {
        u64::from_str_radix(&digits[..end], radix).ok()?
    };
    let shift = match &digits[end..] {
        "" => 0,
        "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        "t" | "T" => 40,
        "p" | "P" => 50,
        "e" | "E" => 60,
        _ => return None,
    };
    let bytes = n.checked_mul(1u64 << shift)?;
    Some(WrittenLimit::Bytes(bytes / page_size * page_size))
}

/// The raw bytes of a wire value, for tests.
#[cfg(test)]
pub fn bytes_of<T: Pod>(v: &T) -> Vec<u8> {
    bytemuck::bytes_of(v).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::test_kit as kit;
    use bytemuck::Zeroable;
    use oomtrace_common::{valid, LimitWriteEvent, MemcgLevel, TaskInfo, PATH_LEN};

    fn header(kind: Kind) -> Header {
        kit::header(kind, 42)
    }

    /// A task with a comm that is not UTF-8 and two memcg levels read.
    fn task(tgid: u32) -> TaskInfo {
        let mut t = kit::task(tgid, 1, "hog", &[(7, 10, 11), (1, 99, u64::MAX)]);
        t.comm[3] = 0xff;
        t
    }

    #[test]
    fn victim_round_trip() {
        let mut ev = kit::victim(task(100), task(200), 42);
        (ev.total_vm_pages, ev.anon_rss_pages) = (1, 2);
        (ev.file_rss_pages, ev.shmem_rss_pages) = (3, 4);
        ev.oom_score_adj = -998;
        ev.valid = valid::VICTIM_ALL & !valid::VICTIM_SHMEM_RSS;
        let mut bytes = vec![0u8; 3];
        bytes.extend(bytes_of(&ev));
        // Decoding from an unaligned slice must work.
        let Ok(Event::Victim(back)) = decode(&bytes[3..]) else {
            panic!("not a victim")
        };
        assert_eq!(back.victim.tgid(), Some(100));
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
        assert_eq!(known_comm(back.victim.comm()).as_deref(), Some("hog\\xff"));
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
        o.constraint = 3;
        o.valid = valid::OOM_MEMCG | valid::OOM_MEMCG_COUNTERS;
        let Ok(Event::Oom(back)) = decode(&bytes_of(&o)) else {
            panic!("not an oom record")
        };
        assert_eq!(back.global(), Some(false));
        let m = back.memcg().expect("a memcg OOM");
        assert_eq!((m.id, m.usage_pages, m.max_pages), (None, Some(5), Some(5)));
        assert_eq!(back.constraint(), None, "a value without its bit is unread");
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
    fn limit_write_round_trip() {
        let mut ev = LimitWriteEvent::zeroed();
        ev.header = header(Kind::LimitWrite);
        ev.memcg_id = 12;
        ev.old_max_pages = 51_200;
        ev.text[..9].copy_from_slice(b"67108864\n");
        ev.text_len = 9;
        ev.valid = valid::LIMIT_MEMCG_ID | valid::LIMIT_TEXT;
        let Ok(Event::LimitWrite(back)) = decode(&bytes_of(&ev)) else {
            panic!("not a limit write")
        };
        assert_eq!(back.memcg_id(), Some(12));
        assert_eq!(back.old_max_pages(), None, "unread is None, not 0");
        assert_eq!(back.text(), Some(&b"67108864\n"[..]));
        assert_eq!(
            written_limit(back.text().expect("text"), 4096),
            Some(WrittenLimit::Bytes(64 << 20))
        );
    }

    /// As the kernel's `page_counter_memparse`.
    #[test]
    fn written_limits_parse_as_the_kernel_does() {
        let w = |t: &str| written_limit(t.as_bytes(), 4096);
        assert_eq!(w("max\n"), Some(WrittenLimit::Max));
        assert_eq!(w(" 134217728 "), Some(WrittenLimit::Bytes(128 << 20)));
        assert_eq!(w("128M"), Some(WrittenLimit::Bytes(128 << 20)));
        assert_eq!(w("1g"), Some(WrittenLimit::Bytes(1 << 30)));
        assert_eq!(w("0x1000"), Some(WrittenLimit::Bytes(4096)));
        assert_eq!(w("010000"), Some(WrittenLimit::Bytes(4096)), "octal");
        assert_eq!(w("0"), Some(WrittenLimit::Bytes(0)));
        // Rounded down to whole pages.
        assert_eq!(w("5000"), Some(WrittenLimit::Bytes(4096)));
        // Refused by the kernel: the old limit stays.
        for bad in [
            "",
            "max2",
            "128Mi",
            "-1",
            "12 34",
            "0x",
            "99999999999999999999",
        ] {
            assert_eq!(w(bad), None, "{bad:?}");
        }
        // Cut by the hook: not trusted.
        assert_eq!(w(&"1".repeat(oomtrace_common::LIMIT_TEXT_LEN - 1)), None);
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
