//! Decoding ring-buffer records into the wire types of `oomtrace-common`.
//! Bytes are copied with `read_unaligned` after checking length, version and
//! kind: ring-buffer memory is never borrowed as a typed reference.

use std::mem::size_of;

use oomtrace_common::{
    AttachEvent, CgroupEvent, Header, Kind, OomEvent, PressureEvent, SignalEvent, VictimEvent,
    COMM_LEN, WIRE_VERSION,
};

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

fn copy<T: Copy>(bytes: &[u8], what: &'static str) -> Result<T, DecodeError> {
    if bytes.len() < size_of::<T>() {
        return Err(DecodeError::Short {
            what,
            len: bytes.len(),
            need: size_of::<T>(),
        });
    }
    // SAFETY: the length is checked above; every wire type is plain integers
    // (any bit pattern is valid) and read_unaligned needs no alignment.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
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

/// A kernel `comm`: up to 16 bytes, NUL-terminated unless full. Not
/// necessarily UTF-8; invalid bytes become U+FFFD rather than an error.
pub fn comm(raw: &[u8; COMM_LEN]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// A path copied by `bpf_probe_read_kernel_str`, bounded by its reported length.
pub fn path(raw: &[u8], len: u32) -> String {
    let len = (len as usize).min(raw.len());
    let end = raw[..len].iter().position(|&b| b == 0).unwrap_or(len);
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// The raw bytes of a wire value, for tests.
#[cfg(test)]
pub fn bytes_of<T: Copy>(v: &T) -> Vec<u8> {
    // SAFETY: wire types are repr(C) with every padding byte a named field,
    // so all `size_of::<T>()` bytes are initialized.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oomtrace_common::{MemcgLevel, TaskInfo, VictimSource, MEMCG_DEPTH, PATH_LEN};

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
        assert_eq!(back.oom_score_adj, -998);
        assert_eq!(comm(&back.victim.comm), "hog\u{fffd}");
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
