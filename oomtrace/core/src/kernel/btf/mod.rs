//! A small reader of the running kernel's raw BTF (`/sys/kernel/btf/vmlinux`).
//!
//! C eBPF programs get CO-RE: clang records every field access made through
//! `preserve_access_index`, and libbpf rewrites those offsets at load time to match the
//! kernel it is loading into. Rust has no equivalent of that attribute, so Rust eBPF programs
//! get no such relocations, and an offset compiled into one is only right for the kernel it
//! was copied from.
//! oomtrace therefore asks the running kernel's BTF for every offset and enumerator value its
//! probes need, here in userspace, and writes them into the eBPF object's globals before
//! load; the verifier then sees constants, and one binary works across kernel versions.
//!
//! aya-obj has a complete BTF parser but keeps its lookups `pub(crate)`, hence this reader.
//! It decodes every kind (otherwise type ids after the first unknown record would be wrong),
//! builds a name index once (here), and answers the handful of questions the daemon asks
//! ([`queries`]). The file
//! comes from whatever kernel we happen to run on, so nothing in it is trusted: every
//! malformed input, including reference cycles, is a [`BtfError`] rather than a panic.
//!
//! Only base BTF is supported. Split BTF (`/sys/kernel/btf/<module>`) numbers its types and
//! strings after vmlinux's, so parsed on its own its references point outside the file and
//! are reported as errors.

use std::fmt;
use std::path::{Path, PathBuf};

mod queries;
#[cfg(test)]
mod test_kit;

pub use queries::RssLayout;

const MAGIC: u16 = 0xeb9f;
const VERSION: u8 = 1;
const HEADER_LEN: usize = 24;
/// Bounds every walk along type references (typedef chains, nested anonymous members,
/// pointers when rendering names), so a malformed cycle ends in an error instead of a hang
/// or a stack overflow. libbpf uses the same limit; real kernels stay far below it.
const MAX_DEPTH: u32 = 32;

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// Everything that can go wrong reading BTF or answering a question about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BtfError {
    // The cause is part of the message, not a `source()`: callers report these errors with
    // `to_string()`, which would otherwise drop the reason.
    #[error("cannot read BTF from {}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("malformed BTF in {}: {error}", path.display())]
    InFile { path: PathBuf, error: Box<BtfError> },
    #[error("not BTF: magic is {found:#06x}, expected {MAGIC:#06x}")]
    BadMagic { found: u16 },
    #[error("BTF was written on a machine of the other byte order (magic {found:#06x})")]
    WrongEndian { found: u16 },
    #[error("unsupported BTF version {version}")]
    UnsupportedVersion { version: u8 },
    #[error("malformed BTF header: {reason}")]
    BadHeader { reason: &'static str },
    #[error("BTF truncated: {what} needs {need} bytes at offset {offset}, {have} left")]
    Truncated {
        what: &'static str,
        offset: usize,
        need: usize,
        have: usize,
    },
    #[error("malformed BTF string section: {reason}")]
    BadStrings { reason: &'static str },
    #[error("BTF string offset {offset} is outside the string section or splits a character")]
    BadString { offset: u32 },
    #[error("BTF type {id} has unknown kind {kind}")]
    UnknownKind { id: u32, kind: u32 },
    #[error("BTF refers to type id {id}, which does not exist")]
    BadTypeId { id: u32 },
    #[error("BTF has more types than fit a 32-bit id")]
    TooManyTypes,
    #[error("BTF type references nest deeper than {MAX_DEPTH} starting at type {id} (a cycle?)")]
    TooDeep { id: u32 },
    #[error("no {kind} named `{name}` in BTF")]
    NoType { kind: &'static str, name: String },
    #[error("`{ty}` has no member `{member}`")]
    NoMember { ty: String, member: String },
    #[error("`{ty}.{member}` is a bitfield, which has no byte offset")]
    Bitfield { ty: String, member: String },
    #[error("`{ty}.{member}` is not a struct or union, so the path cannot descend into it")]
    NotComposite { ty: String, member: String },
    #[error("member path `{path}` is empty or has an empty component")]
    BadPath { path: String },
    #[error("offset of `{ty}.{path}` does not fit in 32 bits")]
    OffsetOverflow { ty: String, path: String },
    #[error("several different {kind} definitions named `{name}` in BTF")]
    Ambiguous { kind: &'static str, name: String },
    #[error("enum `{enum_name}` has no enumerator `{variant}`")]
    NoEnumerator { enum_name: String, variant: String },
    #[error("enumerator `{variant}` = {value} does not fit in an i64")]
    EnumValueRange { variant: String, value: i128 },
    #[error("type `{ty}` has no size")]
    NoSize { ty: String },
    #[error("raw tracepoint `{name}`: {reason}")]
    BadTracepoint { name: String, reason: &'static str },
    #[error("unexpected layout of {what}: {reason}")]
    Layout {
        what: &'static str,
        reason: &'static str,
    },
}

type Result<T> = std::result::Result<T, BtfError>;

/// The decoded type section plus its string section, indexed by name.
pub struct Btf {
    /// Indexed by type id; slot 0 is `void`, so ids from the file index directly.
    types: Vec<Type>,
    strings: String,
    /// Ids of the named types, sorted by name (then id): a name's ids are
    /// one run, found by binary search. (A map of owned names held about
    /// 14 MiB for a kernel's BTF, most of the daemon's start-up peak.)
    by_name: Vec<u32>,
    /// Every ENUM/ENUM64, including anonymous ones, which the name index cannot reach.
    enums: Vec<u32>,
}

impl fmt::Debug for Btf {
    // The full type table is hundreds of thousands of entries; nobody wants that in a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Btf")
            .field("types", &self.types.len().saturating_sub(1))
            .field("string_bytes", &self.strings.len())
            .finish()
    }
}

#[derive(Debug)]
struct Type {
    name_off: u32,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Void,
    Int {
        size: u32,
        bits: u32,
        bit_offset: u32,
    },
    Ptr(u32),
    Array {
        elem: u32,
        nelems: u32,
    },
    Composite {
        union: bool,
        size: u32,
        members: Vec<Member>,
    },
    Enum {
        size: u32,
        values: Vec<Enumerator>,
    },
    Fwd,
    Typedef(u32),
    /// const, volatile, restrict and type tags: they never change layout or meaning here.
    Qualifier(u32),
    Func,
    FuncProto {
        params: Vec<u32>,
    },
    Float {
        size: u32,
    },
    /// VAR, DATASEC, DECL_TAG: decoded only to step over them.
    Other,
}

#[derive(Debug)]
struct Member {
    name_off: u32,
    ty: u32,
    bit_offset: u32,
    bitfield_size: u32,
}

#[derive(Debug)]
struct Enumerator {
    name_off: u32,
    /// i128 holds both signed and unsigned 64-bit enumerators without loss; callers convert.
    value: i128,
}

/// Bounds-checked cursor over one section; `base` makes error offsets file offsets.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl Reader<'_> {
    fn u32(&mut self, what: &'static str) -> Result<u32> {
        match self.buf.get(self.pos..).and_then(|b| b.get(..4)) {
            Some(&[a, b, c, d]) => {
                self.pos += 4;
                Ok(u32::from_ne_bytes([a, b, c, d]))
            }
            _ => Err(self.truncated(what, 4)),
        }
    }

    /// Checks up front that `count` records fit, so a corrupt vlen costs one error rather
    /// than a large allocation followed by one.
    fn expect(&self, what: &'static str, count: u32, record: usize) -> Result<()> {
        let need = (count as usize).saturating_mul(record);
        if self.remaining() < need {
            return Err(self.truncated(what, need));
        }
        Ok(())
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn truncated(&self, what: &'static str, need: usize) -> BtfError {
        BtfError::Truncated {
            what,
            offset: self.base.saturating_add(self.pos),
            need,
            have: self.remaining(),
        }
    }
}

fn header_u32(bytes: &[u8], at: usize) -> Result<u32> {
    Reader {
        buf: bytes,
        pos: at,
        base: 0,
    }
    .u32("header")
}

/// `off..off+len` of `bytes`, or the error naming the section that does not fit.
fn section<'a>(
    bytes: &'a [u8],
    hdr_len: usize,
    off: u32,
    len: u32,
    what: &'static str,
) -> Result<(&'a [u8], usize)> {
    let start = hdr_len.saturating_add(off as usize);
    let end = start.saturating_add(len as usize);
    match bytes.get(start..end) {
        Some(s) => Ok((s, start)),
        None => Err(BtfError::Truncated {
            what,
            offset: start,
            need: len as usize,
            have: bytes.len().saturating_sub(start),
        }),
    }
}

/// The NUL-terminated string at `off`. The whole section was checked to be UTF-8 ending in
/// NUL, so only the offset itself can be wrong.
fn str_at(strings: &str, off: u32) -> Result<&str> {
    let bad = || BtfError::BadString { offset: off };
    if off as usize >= strings.len() {
        return Err(bad());
    }
    let tail = strings.get(off as usize..).ok_or_else(bad)?;
    Ok(tail.split('\0').next().unwrap_or(""))
}

impl Btf {
    /// Reads and parses a raw BTF file, normally `/sys/kernel/btf/vmlinux`.
    pub fn from_file(path: &Path) -> Result<Btf> {
        let bytes = std::fs::read(path).map_err(|error| BtfError::Io {
            path: path.to_owned(),
            error,
        })?;
        Btf::parse(&bytes).map_err(|e| BtfError::InFile {
            path: path.to_owned(),
            error: Box::new(e),
        })
    }

    /// Parses raw BTF in this machine's byte order (the kernel exports it that way). The
    /// strings are copied, so `bytes` can be dropped afterwards.
    pub fn parse(bytes: &[u8]) -> Result<Btf> {
        let magic = match bytes {
            [a, b, ..] => u16::from_ne_bytes([*a, *b]),
            _ => {
                return Err(BtfError::Truncated {
                    what: "header",
                    offset: 0,
                    need: HEADER_LEN,
                    have: bytes.len(),
                })
            }
        };
        if magic == MAGIC.swap_bytes() {
            return Err(BtfError::WrongEndian { found: magic });
        }
        if magic != MAGIC {
            return Err(BtfError::BadMagic { found: magic });
        }
        if bytes.len() < HEADER_LEN {
            return Err(BtfError::Truncated {
                what: "header",
                offset: 0,
                need: HEADER_LEN,
                have: bytes.len(),
            });
        }
        let version = bytes.get(2).copied().unwrap_or(0);
        if version != VERSION {
            return Err(BtfError::UnsupportedVersion { version });
        }
        // hdr_len may grow in future versions; the section offsets are relative to it.
        let hdr_len = header_u32(bytes, 4)? as usize;
        if hdr_len < HEADER_LEN {
            return Err(BtfError::BadHeader {
                reason: "hdr_len is smaller than the header",
            });
        }
        let type_off = header_u32(bytes, 8)?;
        let type_len = header_u32(bytes, 12)?;
        let str_off = header_u32(bytes, 16)?;
        let str_len = header_u32(bytes, 20)?;
        let (type_sec, type_base) = section(bytes, hdr_len, type_off, type_len, "type section")?;
        let (str_sec, _) = section(bytes, hdr_len, str_off, str_len, "string section")?;

        // Offset 0 must be the empty name and every string must end inside the section;
        // checking both once here keeps every later lookup a cheap slice.
        if str_sec.first() != Some(&0) {
            return Err(BtfError::BadStrings {
                reason: "does not start with an empty string",
            });
        }
        if str_sec.last() != Some(&0) {
            return Err(BtfError::BadStrings {
                reason: "last string is not NUL-terminated",
            });
        }
        let strings = std::str::from_utf8(str_sec)
            .map_err(|_| BtfError::BadStrings {
                reason: "not UTF-8",
            })?
            .to_owned();

        let types = parse_types(type_sec, type_base, &strings)?;

        let mut by_name: Vec<u32> = Vec::new();
        let mut enums = Vec::new();
        for (id, t) in (0u32..).zip(&types) {
            if matches!(t.kind, Kind::Enum { .. }) {
                enums.push(id);
            }
            if t.name_off == 0 {
                continue;
            }
            // Checked here once, so the index's lookups can trust it.
            if !str_at(&strings, t.name_off)?.is_empty() {
                by_name.push(id);
            }
        }
        let name_of = |id: &u32| {
            types
                .get(*id as usize)
                .and_then(|t| str_at(&strings, t.name_off).ok())
                .unwrap_or("")
        };
        by_name.sort_by(|a, b| name_of(a).cmp(name_of(b)).then(a.cmp(b)));
        by_name.shrink_to_fit();

        Ok(Btf {
            types,
            strings,
            by_name,
            enums,
        })
    }
}

/// The queries' building blocks.
impl Btf {
    fn ty(&self, id: u32) -> Result<&Type> {
        self.types
            .get(id as usize)
            .ok_or(BtfError::BadTypeId { id })
    }

    fn str(&self, off: u32) -> Result<&str> {
        str_at(&self.strings, off)
    }

    fn named(&self, name: &str) -> impl Iterator<Item = u32> + '_ {
        let name_of = |id: u32| self.ty(id).and_then(|t| self.str(t.name_off)).unwrap_or("");
        let start = self.by_name.partition_point(|&id| name_of(id) < name);
        let run: Vec<u32> = self
            .by_name
            .iter()
            .skip(start)
            .copied()
            .take_while(|&id| name_of(id) == name)
            .collect();
        run.into_iter()
    }

    fn composites(&self, name: &str) -> Vec<u32> {
        self.named(name)
            .filter(|&id| matches!(self.ty(id).map(|t| &t.kind), Ok(Kind::Composite { .. })))
            .collect()
    }

    fn named_enums(&self, name: &str) -> Vec<u32> {
        self.named(name)
            .filter(|&id| matches!(self.ty(id).map(|t| &t.kind), Ok(Kind::Enum { .. })))
            .collect()
    }

    /// The type's own name, or `fallback` for anonymous ones, for error messages.
    fn display_name(&self, id: u32, fallback: &str) -> String {
        match self.ty(id).and_then(|t| self.str(t.name_off)) {
            Ok(name) if !name.is_empty() => name.to_owned(),
            _ => fallback.to_owned(),
        }
    }

    /// Follows typedefs and qualifiers to the type that decides layout.
    fn strip(&self, mut id: u32) -> Result<u32> {
        let start = id;
        for _ in 0..MAX_DEPTH {
            match self.ty(id)?.kind {
                Kind::Typedef(next) | Kind::Qualifier(next) => id = next,
                _ => return Ok(id),
            }
        }
        Err(BtfError::TooDeep { id: start })
    }
}

fn parse_types(sec: &[u8], base: usize, strings: &str) -> Result<Vec<Type>> {
    let mut r = Reader {
        buf: sec,
        pos: 0,
        base,
    };
    // vmlinux averages a little over 30 bytes per type; reserving avoids regrowth.
    let mut types = Vec::with_capacity(sec.len() / 32 + 1);
    types.push(Type {
        name_off: 0,
        kind: Kind::Void,
    });
    while r.remaining() > 0 {
        let id = u32::try_from(types.len()).map_err(|_| BtfError::TooManyTypes)?;
        let name_off = r.u32("type record")?;
        let info = r.u32("type record")?;
        let size_or_type = r.u32("type record")?;
        // Validate now so later lookups only fail on real questions, not on stale offsets.
        str_at(strings, name_off)?;
        let vlen = info & 0xffff;
        let kind_flag = info >> 31 == 1;
        let kind = match (info >> 24) & 0x1f {
            KIND_INT => {
                let data = r.u32("INT data")?;
                Kind::Int {
                    size: size_or_type,
                    bits: data & 0xff,
                    bit_offset: (data >> 16) & 0xff,
                }
            }
            KIND_PTR => Kind::Ptr(size_or_type),
            KIND_ARRAY => {
                let elem = r.u32("ARRAY data")?;
                let _index_type = r.u32("ARRAY data")?;
                let nelems = r.u32("ARRAY data")?;
                Kind::Array { elem, nelems }
            }
            k @ (KIND_STRUCT | KIND_UNION) => {
                r.expect("struct members", vlen, 12)?;
                let mut members = Vec::with_capacity(vlen as usize);
                for _ in 0..vlen {
                    let name_off = r.u32("struct member")?;
                    let ty = r.u32("struct member")?;
                    let offset = r.u32("struct member")?;
                    str_at(strings, name_off)?;
                    let (bit_offset, bitfield_size) = if kind_flag {
                        (offset & 0x00ff_ffff, offset >> 24)
                    } else {
                        (offset, 0)
                    };
                    members.push(Member {
                        name_off,
                        ty,
                        bit_offset,
                        bitfield_size,
                    });
                }
                Kind::Composite {
                    union: k == KIND_UNION,
                    size: size_or_type,
                    members,
                }
            }
            KIND_ENUM => {
                r.expect("enumerators", vlen, 8)?;
                let mut values = Vec::with_capacity(vlen as usize);
                for _ in 0..vlen {
                    let name_off = r.u32("enumerator")?;
                    let raw = r.u32("enumerator")?;
                    str_at(strings, name_off)?;
                    // kind_flag marks a signed enum; without it the value is unsigned.
                    let value = if kind_flag {
                        i128::from(raw as i32)
                    } else {
                        i128::from(raw)
                    };
                    values.push(Enumerator { name_off, value });
                }
                Kind::Enum {
                    size: size_or_type,
                    values,
                }
            }
            KIND_ENUM64 => {
                r.expect("enumerators", vlen, 12)?;
                let mut values = Vec::with_capacity(vlen as usize);
                for _ in 0..vlen {
                    let name_off = r.u32("enumerator")?;
                    let lo = r.u32("enumerator")?;
                    let hi = r.u32("enumerator")?;
                    str_at(strings, name_off)?;
                    let raw = u64::from(hi) << 32 | u64::from(lo);
                    let value = if kind_flag {
                        i128::from(raw as i64)
                    } else {
                        i128::from(raw)
                    };
                    values.push(Enumerator { name_off, value });
                }
                Kind::Enum {
                    size: size_or_type,
                    values,
                }
            }
            KIND_FWD => Kind::Fwd,
            KIND_TYPEDEF => Kind::Typedef(size_or_type),
            KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                Kind::Qualifier(size_or_type)
            }
            KIND_FUNC => Kind::Func,
            KIND_FUNC_PROTO => {
                r.expect("function parameters", vlen, 8)?;
                let mut params = Vec::with_capacity(vlen as usize);
                for _ in 0..vlen {
                    let name_off = r.u32("function parameter")?;
                    params.push(r.u32("function parameter")?);
                    str_at(strings, name_off)?;
                }
                Kind::FuncProto { params }
            }
            KIND_VAR => {
                r.u32("VAR data")?;
                Kind::Other
            }
            KIND_DATASEC => {
                r.expect("DATASEC entries", vlen, 12)?;
                for _ in 0..vlen * 3 {
                    r.u32("DATASEC entry")?;
                }
                Kind::Other
            }
            KIND_FLOAT => Kind::Float { size: size_or_type },
            KIND_DECL_TAG => {
                r.u32("DECL_TAG data")?;
                Kind::Other
            }
            kind => return Err(BtfError::UnknownKind { id, kind }),
        };
        types.push(Type { name_off, kind });
    }
    Ok(types)
}

#[cfg(test)]
mod tests {
    use super::test_kit::*;
    use super::*;

    #[test]
    fn bad_magic_version_and_header() {
        let good = sample();
        let mut bad = good.clone();
        bad[0] = 0;
        assert!(matches!(Btf::parse(&bad), Err(BtfError::BadMagic { .. })));
        let mut swapped = good.clone();
        swapped.swap(0, 1);
        assert!(matches!(
            Btf::parse(&swapped),
            Err(BtfError::WrongEndian { .. })
        ));
        let mut version = good.clone();
        version[2] = 2;
        assert!(matches!(
            Btf::parse(&version),
            Err(BtfError::UnsupportedVersion { version: 2 })
        ));
        let mut hdr = good.clone();
        hdr[4..8].copy_from_slice(&8u32.to_ne_bytes());
        assert!(matches!(Btf::parse(&hdr), Err(BtfError::BadHeader { .. })));
        assert!(matches!(
            Btf::parse(b"hello world"),
            Err(BtfError::BadMagic { .. })
        ));
        assert!(matches!(Btf::parse(&[]), Err(BtfError::Truncated { .. })));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let good = sample();
        for len in 0..good.len() {
            let err = Btf::parse(&good[..len]);
            assert!(
                matches!(err, Err(BtfError::Truncated { .. })),
                "prefix of {len} bytes: {err:?}"
            );
        }
    }

    #[test]
    fn type_section_cut_inside_a_record_is_truncated() {
        let mut b = Builder::new();
        let int = b.int("int", 4, 32);
        b.strukt("s", 8, &[("a", int, 0), ("b", int, 32)]);
        let mut blob = b.build();
        // Claim a shorter type section: the struct's last member is cut off.
        let type_len = u32::from_ne_bytes([blob[12], blob[13], blob[14], blob[15]]) - 4;
        blob[12..16].copy_from_slice(&type_len.to_ne_bytes());
        blob[16..20].copy_from_slice(&type_len.to_ne_bytes());
        blob.drain(HEADER_LEN + type_len as usize..HEADER_LEN + type_len as usize + 4);
        assert!(matches!(
            Btf::parse(&blob),
            Err(BtfError::Truncated {
                what: "struct members",
                ..
            })
        ));
    }

    #[test]
    fn bad_strings_and_kinds() {
        let mut b = Builder::new();
        b.head("x", 25, false, 0, 0);
        assert!(matches!(
            Btf::parse(&b.build()),
            Err(BtfError::UnknownKind { id: 1, kind: 25 })
        ));
        let mut b = Builder::new();
        b.head("", KIND_PTR, false, 0, 0);
        let mut blob = b.build();
        blob[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(matches!(
            Btf::parse(&blob),
            Err(BtfError::BadString { offset: 1000 })
        ));
        let mut blob = sample();
        let last = blob.len() - 1;
        blob[last] = b'x';
        assert!(matches!(
            Btf::parse(&blob),
            Err(BtfError::BadStrings { .. })
        ));
    }

    #[test]
    fn file_errors_name_the_path() {
        let missing = Path::new("/nonexistent/oomtrace-btf-test");
        let err = Btf::from_file(missing).expect_err("missing file");
        assert!(
            matches!(&err, BtfError::Io { path, .. } if path == missing),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("/nonexistent/oomtrace-btf-test"), "{text}");
        assert!(text.contains("No such file"), "{text}");

        let path = std::env::temp_dir().join(format!("oomtrace-btf-test-{}", std::process::id()));
        std::fs::write(&path, b"not btf at all").expect("write temp file");
        let err = Btf::from_file(&path).expect_err("garbage file");
        let _ = std::fs::remove_file(&path);
        match &err {
            BtfError::InFile { path: p, error } => {
                assert_eq!(p, &path);
                assert!(matches!(**error, BtfError::BadMagic { .. }), "{error:?}");
            }
            other => panic!("expected InFile, got {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains(&*path.to_string_lossy()), "{text}");
        assert!(text.contains("not BTF: magic is"), "{text}");
    }

    /// Exercises every query on a possibly-parsed blob; only the absence of panics matters.
    fn poke(blob: &[u8]) {
        if let Ok(btf) = Btf::parse(blob) {
            let _ = btf.member_offset("outer", "in.y");
            let _ = btf.member_offset("outer", "d");
            let _ = btf.member_offset("outer", "flags");
            let _ = btf.struct_size("percpu_counter");
            let _ = btf.enum_value("", "ANON_A");
            let _ = btf.enum_variants("big");
            let _ = btf.tracepoint_args("victim");
            let _ = btf.has_func("oom_kill_process");
            let _ = btf.rss_layout();
            let _ = format!("{btf:?}");
        }
    }

    #[test]
    fn corrupted_bytes_never_panic() {
        let good = sample();
        for i in 0..good.len() {
            for flip in [0xff, 0x01, 0x80] {
                let mut bad = good.clone();
                bad[i] ^= flip;
                poke(&bad);
            }
        }
        // Random multi-byte damage too (xorshift: deterministic, no dependency).
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..5000 {
            let mut bad = good.clone();
            for _ in 0..(next() % 8 + 1) {
                let at = HEADER_LEN + (next() as usize) % (good.len() - HEADER_LEN);
                bad[at] = next() as u8;
            }
            poke(&bad);
        }
    }
}
