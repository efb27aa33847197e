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
//! builds a name index once, and answers the handful of questions the daemon asks. The file
//! comes from whatever kernel we happen to run on, so nothing in it is trusted: every
//! malformed input, including reference cycles, is a [`BtfError`] rather than a panic.
//!
//! Only base BTF is supported. Split BTF (`/sys/kernel/btf/<module>`) numbers its types and
//! strings after vmlinux's, so parsed on its own its references point outside the file and
//! are reported as errors.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

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

/// Where the mm counters sit: counter `i` (MM_FILEPAGES, MM_ANONPAGES, ...) is the integer
/// at `mm + base + i * stride + inner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RssLayout {
    pub base: u32,
    pub stride: u32,
    pub inner: u32,
}

/// The decoded type section plus its string section, indexed by name.
pub struct Btf {
    /// Indexed by type id; slot 0 is `void`, so ids from the file index directly.
    types: Vec<Type>,
    strings: String,
    by_name: HashMap<String, Vec<u32>>,
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

        let mut by_name: HashMap<String, Vec<u32>> = HashMap::with_capacity(types.len());
        let mut enums = Vec::new();
        for (id, t) in (0u32..).zip(&types) {
            if matches!(t.kind, Kind::Enum { .. }) {
                enums.push(id);
            }
            if t.name_off == 0 {
                continue;
            }
            let name = str_at(&strings, t.name_off)?;
            if name.is_empty() {
                continue;
            }
            match by_name.get_mut(name) {
                Some(ids) => ids.push(id),
                None => {
                    by_name.insert(name.to_owned(), vec![id]);
                }
            }
        }

        Ok(Btf {
            types,
            strings,
            by_name,
            enums,
        })
    }

    /// Byte offset of a dotted member path inside a struct or union, e.g.
    /// `("mem_cgroup", "memory.usage")`. Members of anonymous structs/unions are found
    /// through them, and typedefs and qualifiers are looked through when descending; pointers
    /// are not (the path never dereferences), and there is no `[i]` syntax: callers add
    /// `i * size` themselves. A bitfield anywhere on the path is an error.
    pub fn member_offset(&self, struct_name: &str, path: &str) -> Result<u32> {
        self.member_path(struct_name, path)
            .map(|(offset, _)| offset)
    }

    /// Size in bytes of a named struct or union.
    pub fn struct_size(&self, name: &str) -> Result<u32> {
        let mut size = None;
        for id in self.composites(name) {
            if let Kind::Composite { size: s, .. } = self.ty(id)?.kind {
                if size.is_some_and(|prev| prev != s) {
                    return Err(BtfError::Ambiguous {
                        kind: "struct or union",
                        name: name.to_owned(),
                    });
                }
                size = Some(s);
            }
        }
        size.ok_or_else(|| BtfError::NoType {
            kind: "struct or union",
            name: name.to_owned(),
        })
    }

    /// Value of enumerator `variant` of the ENUM/ENUM64 named `enum_name`; with an empty
    /// `enum_name`, of any enum, named or anonymous, that has it. Several enums may define
    /// the same enumerator only with the same value; otherwise the answer is ambiguous.
    /// 32-bit enums follow the BTF signedness flag, as libbpf does.
    pub fn enum_value(&self, enum_name: &str, variant: &str) -> Result<i64> {
        let candidates = if enum_name.is_empty() {
            self.enums.clone()
        } else {
            let ids = self.named_enums(enum_name);
            if ids.is_empty() {
                return Err(BtfError::NoType {
                    kind: "enum",
                    name: enum_name.to_owned(),
                });
            }
            ids
        };
        let mut found: Option<i128> = None;
        for id in candidates {
            let Kind::Enum { values, .. } = &self.ty(id)?.kind else {
                continue;
            };
            for e in values {
                if self.str(e.name_off)? != variant {
                    continue;
                }
                if found.is_some_and(|prev| prev != e.value) {
                    return Err(BtfError::Ambiguous {
                        kind: "enumerator",
                        name: variant.to_owned(),
                    });
                }
                found = Some(e.value);
            }
        }
        let value = found.ok_or_else(|| BtfError::NoEnumerator {
            enum_name: enum_name.to_owned(),
            variant: variant.to_owned(),
        })?;
        to_i64(variant, value)
    }

    /// All `(enumerator, value)` pairs of the named enum, in declaration order.
    // A lookup the fuzz target and the tests exercise; the daemon has no use for it yet.
    #[allow(dead_code)]
    pub fn enum_variants(&self, enum_name: &str) -> Result<Vec<(String, i64)>> {
        let mut result: Option<Vec<(String, i64)>> = None;
        for id in self.named_enums(enum_name) {
            let Kind::Enum { values, .. } = &self.ty(id)?.kind else {
                continue;
            };
            // An enum only declared, never defined, shows up with no enumerators.
            if values.is_empty() {
                continue;
            }
            let mut these = Vec::with_capacity(values.len());
            for e in values {
                let name = self.str(e.name_off)?;
                these.push((name.to_owned(), to_i64(name, e.value)?));
            }
            match &result {
                Some(prev) if *prev != these => {
                    return Err(BtfError::Ambiguous {
                        kind: "enum",
                        name: enum_name.to_owned(),
                    })
                }
                Some(_) => {}
                None => result = Some(these),
            }
        }
        result.ok_or_else(|| BtfError::NoType {
            kind: "enum",
            name: enum_name.to_owned(),
        })
    }

    /// Whether a FUNC (a function the kernel has BTF for, so fentry/kprobe targets it) exists.
    #[must_use]
    // A lookup the fuzz target and the tests exercise; the daemon has no use for it yet.
    #[allow(dead_code)]
    pub fn has_func(&self, name: &str) -> bool {
        self.named(name)
            .any(|id| matches!(self.ty(id).map(|t| &t.kind), Ok(Kind::Func)))
    }

    /// Argument types of raw tracepoint `name`, taken from the `btf_trace_<name>` typedef
    /// (a pointer to a prototype whose first, `void *` parameter is the context and is left
    /// out). Names are C spellings without the struct/union/enum keyword, with typedefs and
    /// qualifiers fully resolved: `struct task_struct *` is `"task_struct *"`, and a `uid_t`
    /// argument is its underlying `"unsigned int"`, since what a probe needs is the layout,
    /// which the typedef name would hide. Anonymous types are `"(anon struct)"` etc., a
    /// function prototype is `"(func)"`, and a variadic tail is `"..."`.
    pub fn tracepoint_args(&self, name: &str) -> Result<Vec<String>> {
        let typedef = format!("btf_trace_{name}");
        let target = self
            .named(&typedef)
            .find_map(|id| match self.ty(id).map(|t| &t.kind) {
                Ok(Kind::Typedef(target)) => Some(*target),
                _ => None,
            })
            .ok_or(BtfError::NoType {
                kind: "typedef",
                name: typedef,
            })?;
        let bad = |reason| BtfError::BadTracepoint {
            name: name.to_owned(),
            reason,
        };
        let Kind::Ptr(proto) = self.ty(self.strip(target)?)?.kind else {
            return Err(bad("btf_trace typedef is not a pointer"));
        };
        let Kind::FuncProto { params } = &self.ty(self.strip(proto)?)?.kind else {
            return Err(bad(
                "btf_trace typedef does not point to a function prototype",
            ));
        };
        let Some((ctx, args)) = params.split_first() else {
            return Err(bad("prototype has no context parameter"));
        };
        let is_void_ptr = match self.ty(self.strip(*ctx)?)?.kind {
            Kind::Ptr(pointee) => self.strip(pointee)? == 0,
            _ => false,
        };
        if !is_void_ptr {
            return Err(bad("first parameter is not `void *`"));
        }
        args.iter()
            .map(|&ty| {
                if ty == 0 {
                    Ok("...".to_owned())
                } else {
                    self.type_name(ty, 0)
                }
            })
            .collect()
    }

    /// Where `get_mm_counter()` reads from. Before 6.2 `mm_struct.rss_stat` is
    /// `struct mm_rss_stat { atomic_long_t count[N]; }`; since then it is
    /// `struct percpu_counter rss_stat[N]`, whose `count` holds the folded value. Both are
    /// recognised by shape (an array, possibly wrapped in a struct as `count`, of integers or
    /// of structs whose `count`/`counter` chain ends in an integer), never by kernel version,
    /// because distributions backport such changes.
    pub fn rss_layout(&self) -> Result<RssLayout> {
        const WHAT: &str = "mm_struct.rss_stat";
        let layout = |reason| BtfError::Layout { what: WHAT, reason };
        let (mut base, ty) = self.member_path("mm_struct", "rss_stat")?;
        let mut t = self.strip(ty)?;
        if let Kind::Composite { .. } = self.ty(t)?.kind {
            let (bits, m) = self
                .find_member(t, "count", 0)?
                .ok_or_else(|| BtfError::NoMember {
                    ty: self.display_name(t, WHAT),
                    member: "count".to_owned(),
                })?;
            if bits % 8 != 0 || m.bitfield_size != 0 {
                return Err(layout("rss_stat.count is a bitfield"));
            }
            base = base
                .checked_add(bits / 8)
                .ok_or(layout("offset overflows"))?;
            t = self.strip(m.ty)?;
        }
        let Kind::Array { elem, nelems } = self.ty(t)?.kind else {
            return Err(layout(
                "neither an array nor a struct holding array `count`",
            ));
        };
        if nelems == 0 {
            return Err(layout("the counter array is empty"));
        }
        let elem = self.strip(elem)?;
        let stride = self.size_of(elem, 0)?;
        let inner = self.counter_offset(elem)?;
        if stride == 0 || inner >= stride {
            return Err(layout("the counter does not lie inside its array element"));
        }
        Ok(RssLayout {
            base,
            stride,
            inner,
        })
    }

    // ---- internals ----

    fn ty(&self, id: u32) -> Result<&Type> {
        self.types
            .get(id as usize)
            .ok_or(BtfError::BadTypeId { id })
    }

    fn str(&self, off: u32) -> Result<&str> {
        str_at(&self.strings, off)
    }

    fn named<'a>(&'a self, name: &str) -> impl Iterator<Item = u32> + 'a {
        self.by_name.get(name).into_iter().flatten().copied()
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

    /// Offset (bytes) and type of a member path, agreeing across duplicate definitions.
    fn member_path(&self, struct_name: &str, path: &str) -> Result<(u32, u32)> {
        let candidates = self.composites(struct_name);
        if candidates.is_empty() {
            return Err(BtfError::NoType {
                kind: "struct or union",
                name: struct_name.to_owned(),
            });
        }
        // vmlinux can keep several same-named structs when compilation units disagree on
        // them; an answer is only trustworthy if every definition that has the path agrees.
        let mut found: Option<(u32, u32)> = None;
        let mut first_err = None;
        for id in candidates {
            match self.walk_path(id, struct_name, path) {
                Ok(hit) => match found {
                    Some((offset, _)) if offset != hit.0 => {
                        return Err(BtfError::Ambiguous {
                            kind: "struct or union",
                            name: format!("{struct_name}.{path}"),
                        })
                    }
                    Some(_) => {}
                    None => found = Some(hit),
                },
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match (found, first_err) {
            (Some(hit), _) => Ok(hit),
            (None, Some(e)) => Err(e),
            (None, None) => Err(BtfError::NoType {
                kind: "struct or union",
                name: struct_name.to_owned(),
            }),
        }
    }

    fn walk_path(&self, id: u32, struct_name: &str, path: &str) -> Result<(u32, u32)> {
        let bad_path = || BtfError::BadPath {
            path: path.to_owned(),
        };
        if path.is_empty() {
            return Err(bad_path());
        }
        let mut current = id;
        let mut current_name = struct_name.to_owned();
        let mut offset: u32 = 0;
        let mut member_ty = id;
        let mut walked = String::new();
        for component in path.split('.') {
            if component.is_empty() {
                return Err(bad_path());
            }
            if !walked.is_empty() {
                let next = self.strip(member_ty)?;
                if !matches!(self.ty(next)?.kind, Kind::Composite { .. }) {
                    return Err(BtfError::NotComposite {
                        ty: struct_name.to_owned(),
                        member: walked,
                    });
                }
                current = next;
                current_name = self.display_name(next, &format!("{struct_name}.{walked}"));
            }
            let (bits, m) =
                self.find_member(current, component, 0)?
                    .ok_or_else(|| BtfError::NoMember {
                        ty: current_name.clone(),
                        member: component.to_owned(),
                    })?;
            if m.bitfield_size != 0 || bits % 8 != 0 || self.is_int_bitfield(m.ty)? {
                return Err(BtfError::Bitfield {
                    ty: current_name,
                    member: component.to_owned(),
                });
            }
            offset = offset
                .checked_add(bits / 8)
                .ok_or_else(|| BtfError::OffsetOverflow {
                    ty: struct_name.to_owned(),
                    path: path.to_owned(),
                })?;
            member_ty = m.ty;
            if !walked.is_empty() {
                walked.push('.');
            }
            walked.push_str(component);
        }
        Ok((offset, member_ty))
    }

    /// Finds `name` in a struct/union, also inside its anonymous struct/union members
    /// (C keeps member names unique across those, so the first hit is the only one).
    /// Returns the bit offset from the start of `id` and the member.
    fn find_member(&self, id: u32, name: &str, depth: u32) -> Result<Option<(u32, &Member)>> {
        if depth > MAX_DEPTH {
            return Err(BtfError::TooDeep { id });
        }
        let Kind::Composite { members, .. } = &self.ty(id)?.kind else {
            return Ok(None);
        };
        for m in members {
            let member_name = self.str(m.name_off)?;
            if member_name == name {
                return Ok(Some((m.bit_offset, m)));
            }
            if !member_name.is_empty() {
                continue;
            }
            let inner = self.strip(m.ty)?;
            if !matches!(self.ty(inner)?.kind, Kind::Composite { .. }) {
                continue; // unnamed padding bitfield
            }
            if let Some((bits, found)) = self.find_member(inner, name, depth + 1)? {
                let bits =
                    m.bit_offset
                        .checked_add(bits)
                        .ok_or_else(|| BtfError::OffsetOverflow {
                            ty: self.display_name(id, "(anon)"),
                            path: name.to_owned(),
                        })?;
                return Ok(Some((bits, found)));
            }
        }
        Ok(None)
    }

    /// Without kind_flag, BTF marks a bitfield only through its INT type being narrower
    /// than its storage.
    fn is_int_bitfield(&self, ty: u32) -> Result<bool> {
        Ok(match self.ty(self.strip(ty)?)?.kind {
            Kind::Int {
                size,
                bits,
                bit_offset,
            } => bit_offset != 0 || u64::from(bits) != u64::from(size) * 8,
            _ => false,
        })
    }

    fn size_of(&self, id: u32, depth: u32) -> Result<u32> {
        if depth > MAX_DEPTH {
            return Err(BtfError::TooDeep { id });
        }
        let id = self.strip(id)?;
        match self.ty(id)?.kind {
            Kind::Int { size, .. }
            | Kind::Composite { size, .. }
            | Kind::Enum { size, .. }
            | Kind::Float { size } => Ok(size),
            // BTF has no pointer width; a kernel's `long` has it.
            Kind::Ptr(_) => ["long int", "long unsigned int"]
                .iter()
                .flat_map(|n| self.named(n))
                .find_map(|id| match self.ty(id).map(|t| &t.kind) {
                    Ok(Kind::Int { size, .. }) => Some(*size),
                    _ => None,
                })
                .ok_or_else(|| BtfError::NoSize {
                    ty: "pointer".to_owned(),
                }),
            Kind::Array { elem, nelems } => self
                .size_of(elem, depth + 1)?
                .checked_mul(nelems)
                .ok_or_else(|| BtfError::NoSize {
                    ty: self.display_name(id, "(array)"),
                }),
            _ => Err(BtfError::NoSize {
                ty: self.display_name(id, "(anon)"),
            }),
        }
    }

    /// Offset inside an rss counter element of the integer that holds the count:
    /// `percpu_counter.count` on 6.2+, `atomic_long_t.counter` before.
    fn counter_offset(&self, elem: u32) -> Result<u32> {
        let mut id = elem;
        let mut offset: u32 = 0;
        for _ in 0..MAX_DEPTH {
            id = self.strip(id)?;
            match self.ty(id)?.kind {
                Kind::Int { .. } | Kind::Enum { .. } => return Ok(offset),
                Kind::Composite { .. } => {
                    let hit = match self.find_member(id, "count", 0)? {
                        Some(hit) => Some(hit),
                        None => self.find_member(id, "counter", 0)?,
                    };
                    let Some((bits, m)) = hit else {
                        return Err(BtfError::Layout {
                            what: "mm_struct.rss_stat element",
                            reason: "has neither `count` nor `counter`",
                        });
                    };
                    if bits % 8 != 0 || m.bitfield_size != 0 {
                        return Err(BtfError::Layout {
                            what: "mm_struct.rss_stat element",
                            reason: "its counter is a bitfield",
                        });
                    }
                    offset = offset.checked_add(bits / 8).ok_or(BtfError::Layout {
                        what: "mm_struct.rss_stat element",
                        reason: "offset overflows",
                    })?;
                    id = m.ty;
                }
                _ => {
                    return Err(BtfError::Layout {
                        what: "mm_struct.rss_stat element",
                        reason: "the counter is not an integer",
                    })
                }
            }
        }
        Err(BtfError::TooDeep { id: elem })
    }

    fn type_name(&self, id: u32, depth: u32) -> Result<String> {
        if depth > MAX_DEPTH {
            return Err(BtfError::TooDeep { id });
        }
        let id = self.strip(id)?;
        let t = self.ty(id)?;
        let named = |anon: &str| -> Result<String> {
            let name = self.str(t.name_off)?;
            Ok(if name.is_empty() {
                anon.to_owned()
            } else {
                name.to_owned()
            })
        };
        match &t.kind {
            Kind::Void => Ok("void".to_owned()),
            Kind::Ptr(target) => {
                let mut inner = self.type_name(*target, depth + 1)?;
                inner.push_str(if inner.ends_with('*') { "*" } else { " *" });
                Ok(inner)
            }
            Kind::Array { elem, nelems } => {
                Ok(format!("{}[{nelems}]", self.type_name(*elem, depth + 1)?))
            }
            Kind::Composite { union: true, .. } => named("(anon union)"),
            Kind::Composite { union: false, .. } => named("(anon struct)"),
            Kind::Enum { .. } => named("(anon enum)"),
            Kind::FuncProto { .. } => Ok("(func)".to_owned()),
            Kind::Int { .. } | Kind::Float { .. } | Kind::Fwd | Kind::Func => named("(anon)"),
            // strip() never stops on these, and nothing well-formed points at the rest.
            Kind::Typedef(_) | Kind::Qualifier(_) | Kind::Other => named("(?)"),
        }
    }
}

fn to_i64(variant: &str, value: i128) -> Result<i64> {
    i64::try_from(value).map_err(|_| BtfError::EnumValueRange {
        variant: variant.to_owned(),
        value,
    })
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
    use super::*;

    /// Assembles raw BTF: strings are interned, types get ids in the order they are added.
    struct Builder {
        types: Vec<u8>,
        strings: Vec<u8>,
        next_id: u32,
    }

    impl Builder {
        fn new() -> Self {
            Builder {
                types: Vec::new(),
                strings: vec![0],
                next_id: 1,
            }
        }

        fn s(&mut self, name: &str) -> u32 {
            if name.is_empty() {
                return 0;
            }
            let off = self.strings.len() as u32;
            self.strings.extend_from_slice(name.as_bytes());
            self.strings.push(0);
            off
        }

        fn w(&mut self, v: u32) {
            self.types.extend_from_slice(&v.to_ne_bytes());
        }

        fn head(&mut self, name: &str, kind: u32, kflag: bool, vlen: u32, sot: u32) -> u32 {
            let n = self.s(name);
            self.w(n);
            self.w(kind << 24 | u32::from(kflag) << 31 | vlen);
            self.w(sot);
            let id = self.next_id;
            self.next_id += 1;
            id
        }

        fn int(&mut self, name: &str, size: u32, bits: u32) -> u32 {
            let id = self.head(name, KIND_INT, false, 0, size);
            self.w(bits);
            id
        }

        fn ptr(&mut self, to: u32) -> u32 {
            self.head("", KIND_PTR, false, 0, to)
        }

        fn typedef(&mut self, name: &str, to: u32) -> u32 {
            self.head(name, KIND_TYPEDEF, false, 0, to)
        }

        fn modifier(&mut self, kind: u32, to: u32) -> u32 {
            self.head("", kind, false, 0, to)
        }

        fn array(&mut self, elem: u32, index: u32, n: u32) -> u32 {
            let id = self.head("", KIND_ARRAY, false, 0, 0);
            self.w(elem);
            self.w(index);
            self.w(n);
            id
        }

        /// Members are (name, type, bit offset, bitfield size); any bitfield size sets
        /// kind_flag, as the kernel's encoder does.
        fn composite(
            &mut self,
            union: bool,
            name: &str,
            size: u32,
            members: &[(&str, u32, u32, u32)],
        ) -> u32 {
            let kflag = members.iter().any(|m| m.3 != 0);
            let kind = if union { KIND_UNION } else { KIND_STRUCT };
            let id = self.head(name, kind, kflag, members.len() as u32, size);
            for &(mname, ty, bits, bf) in members {
                let n = self.s(mname);
                self.w(n);
                self.w(ty);
                self.w(if kflag { bf << 24 | bits } else { bits });
            }
            id
        }

        fn strukt(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
            let m: Vec<_> = members.iter().map(|&(n, t, o)| (n, t, o, 0)).collect();
            self.composite(false, name, size, &m)
        }

        fn union(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
            let m: Vec<_> = members.iter().map(|&(n, t, o)| (n, t, o, 0)).collect();
            self.composite(true, name, size, &m)
        }

        fn enum32(&mut self, name: &str, signed: bool, values: &[(&str, i32)]) -> u32 {
            let id = self.head(name, KIND_ENUM, signed, values.len() as u32, 4);
            for &(n, v) in values {
                let n = self.s(n);
                self.w(n);
                self.w(v as u32);
            }
            id
        }

        fn enum64(&mut self, name: &str, signed: bool, values: &[(&str, u64)]) -> u32 {
            let id = self.head(name, KIND_ENUM64, signed, values.len() as u32, 8);
            for &(n, v) in values {
                let n = self.s(n);
                self.w(n);
                self.w(v as u32);
                self.w((v >> 32) as u32);
            }
            id
        }

        fn func_proto(&mut self, ret: u32, params: &[u32]) -> u32 {
            let id = self.head("", KIND_FUNC_PROTO, false, params.len() as u32, ret);
            for &p in params {
                self.w(0);
                self.w(p);
            }
            id
        }

        fn func(&mut self, name: &str, proto: u32) -> u32 {
            self.head(name, KIND_FUNC, false, 0, proto)
        }

        fn build(&self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&MAGIC.to_ne_bytes());
            out.push(VERSION);
            out.push(0);
            for v in [
                HEADER_LEN as u32,
                0,
                self.types.len() as u32,
                self.types.len() as u32,
                self.strings.len() as u32,
            ] {
                out.extend_from_slice(&v.to_ne_bytes());
            }
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }
    }

    /// A miniature kernel: anonymous nesting, typedef chains, a bitfield, enums of every
    /// flavour, a tracepoint and the 6.2+ rss_stat layout.
    fn sample() -> Vec<u8> {
        let mut b = Builder::new();
        let int = b.int("int", 4, 32);
        let uint = b.int("unsigned int", 4, 32);
        let long = b.int("long int", 8, 64);
        let s64 = b.typedef("s64", long);
        let uid_t = b.typedef("uid_t", uint);
        let char_t = b.int("char", 1, 8);
        let comm = b.array(char_t, int, 16);
        // struct inner { int x; int y; }  reached as const volatile typedef-of-typedef.
        let inner = b.strukt("inner", 8, &[("x", int, 0), ("y", int, 32)]);
        let inner_t = b.typedef("inner_t", inner);
        let inner_tt = b.typedef("inner_tt", inner_t);
        let vol = b.modifier(KIND_VOLATILE, inner_tt);
        let cst = b.modifier(KIND_CONST, vol);
        // union { int b; struct { int c; int d; }; }
        let anon_s = b.strukt("", 8, &[("c", int, 0), ("d", int, 32)]);
        let anon_u = b.union("", 8, &[("b", int, 0), ("", anon_s, 0)]);
        let outer = b.composite(
            false,
            "outer",
            48,
            &[
                ("a", int, 0, 0),
                ("", anon_u, 64, 0),
                ("in", cst, 128, 0),
                ("flags", uint, 192, 3),
                ("comm", comm, 256, 0),
            ],
        );
        // Old-style bitfield: no kind_flag, narrow INT type.
        let u3 = b.int("u3", 4, 3);
        b.strukt("oldbf", 4, &[("f", u3, 0)]);
        b.enum32(
            "color",
            false,
            &[("RED", 0), ("GREEN", 1), ("BLUE", 0x7fff_ffff)],
        );
        b.enum32("sign", true, &[("NEG", -5), ("POS", 5)]);
        b.enum32("", false, &[("ANON_A", 10), ("ANON_B", 11)]);
        b.enum32("", false, &[("ANON_A", 10)]); // same value elsewhere: not ambiguous
        b.enum64("big", false, &[("HUGE", 1 << 40), ("TOO_BIG", u64::MAX)]);
        b.enum64("big_signed", true, &[("MINUS_ONE", u64::MAX)]);
        // Raw tracepoint: typedef void (*btf_trace_victim)(void *, struct outer *, uid_t, char **);
        let void_ptr = b.ptr(0);
        let outer_ptr = b.ptr(outer);
        let char_ptr = b.ptr(char_t);
        let char_pp = b.ptr(char_ptr);
        let proto = b.func_proto(0, &[void_ptr, outer_ptr, uid_t, char_pp]);
        let proto_ptr = b.ptr(proto);
        b.typedef("btf_trace_victim", proto_ptr);
        let bad_proto = b.func_proto(0, &[outer_ptr]);
        let bad_proto_ptr = b.ptr(bad_proto);
        b.typedef("btf_trace_noctx", bad_proto_ptr);
        b.func("oom_kill_process", proto);
        // 6.2+: struct percpu_counter rss_stat[4];
        let lock = b.strukt("raw_spinlock", 4, &[("raw_lock", int, 0)]);
        let pcc = b.strukt(
            "percpu_counter",
            40,
            &[
                ("lock", lock, 0),
                ("count", s64, 64),
                ("counters", char_ptr, 256),
            ],
        );
        let rss = b.array(pcc, int, 4);
        b.strukt(
            "mm_struct",
            1024,
            &[("total_vm", long, 0), ("rss_stat", rss, 512)],
        );
        b.build()
    }

    fn sample_btf() -> Btf {
        Btf::parse(&sample()).expect("sample BTF parses")
    }

    #[test]
    fn anonymous_members_are_searched() -> Result<()> {
        let btf = sample_btf();
        assert_eq!(btf.member_offset("outer", "a")?, 0);
        assert_eq!(btf.member_offset("outer", "b")?, 8);
        assert_eq!(btf.member_offset("outer", "c")?, 8);
        assert_eq!(btf.member_offset("outer", "d")?, 12);
        assert_eq!(btf.member_offset("outer", "comm")?, 32);
        Ok(())
    }

    #[test]
    fn paths_descend_through_typedefs_and_qualifiers() -> Result<()> {
        let btf = sample_btf();
        assert_eq!(btf.member_offset("outer", "in")?, 16);
        assert_eq!(btf.member_offset("outer", "in.x")?, 16);
        assert_eq!(btf.member_offset("outer", "in.y")?, 20);
        assert_eq!(btf.member_offset("mm_struct", "rss_stat")?, 64);
        assert_eq!(btf.struct_size("outer")?, 48);
        assert_eq!(btf.struct_size("percpu_counter")?, 40);
        Ok(())
    }

    #[test]
    fn bitfields_are_refused() {
        let btf = sample_btf();
        let err = btf.member_offset("outer", "flags");
        assert!(
            matches!(&err, Err(BtfError::Bitfield { ty, member }) if ty == "outer" && member == "flags"),
            "{err:?}"
        );
        let err = btf.member_offset("oldbf", "f");
        assert!(matches!(err, Err(BtfError::Bitfield { .. })), "{err:?}");
    }

    #[test]
    fn missing_things_are_named() {
        let btf = sample_btf();
        let err = btf
            .member_offset("nosuch", "a")
            .expect_err("no such struct");
        assert!(matches!(&err, BtfError::NoType { name, .. } if name == "nosuch"));
        assert!(err.to_string().contains("`nosuch`"), "{err}");

        let err = btf
            .member_offset("outer", "nope")
            .expect_err("no such member");
        assert!(
            matches!(&err, BtfError::NoMember { ty, member } if ty == "outer" && member == "nope")
        );
        assert_eq!(err.to_string(), "`outer` has no member `nope`");

        let err = btf
            .member_offset("outer", "in.z")
            .expect_err("no nested member");
        assert!(
            matches!(&err, BtfError::NoMember { ty, member } if ty == "inner" && member == "z"),
            "{err:?}"
        );

        let err = btf
            .member_offset("outer", "a.x")
            .expect_err("int has no members");
        assert!(matches!(&err, BtfError::NotComposite { member, .. } if member == "a"));

        for path in ["", ".", "in.", ".x"] {
            let err = btf.member_offset("outer", path);
            assert!(
                matches!(err, Err(BtfError::BadPath { .. })),
                "{path:?}: {err:?}"
            );
        }

        // Typedefs, enums and functions are not structs.
        for name in ["inner_t", "color", "oom_kill_process"] {
            let err = btf.struct_size(name);
            assert!(
                matches!(err, Err(BtfError::NoType { .. })),
                "{name}: {err:?}"
            );
        }

        let err = btf
            .enum_value("color", "PURPLE")
            .expect_err("no enumerator");
        assert!(matches!(&err, BtfError::NoEnumerator { enum_name, variant }
            if enum_name == "color" && variant == "PURPLE"));
        let err = btf.enum_value("flavour", "RED").expect_err("no enum");
        assert!(matches!(&err, BtfError::NoType { kind: "enum", name } if name == "flavour"));
        let err = btf.tracepoint_args("nosuch").expect_err("no tracepoint");
        assert!(
            matches!(&err, BtfError::NoType { kind: "typedef", name } if name == "btf_trace_nosuch")
        );
    }

    #[test]
    fn enums() -> Result<()> {
        let btf = sample_btf();
        assert_eq!(btf.enum_value("color", "GREEN")?, 1);
        assert_eq!(btf.enum_value("color", "BLUE")?, 0x7fff_ffff);
        assert_eq!(btf.enum_value("sign", "NEG")?, -5);
        assert_eq!(btf.enum_value("", "ANON_B")?, 11);
        assert_eq!(btf.enum_value("", "ANON_A")?, 10);
        // Named enums are part of "any enum".
        assert_eq!(btf.enum_value("", "GREEN")?, 1);
        assert_eq!(btf.enum_value("big", "HUGE")?, 1 << 40);
        assert_eq!(btf.enum_value("big_signed", "MINUS_ONE")?, -1);
        assert!(matches!(
            btf.enum_value("big", "TOO_BIG"),
            Err(BtfError::EnumValueRange { .. })
        ));
        assert_eq!(
            btf.enum_variants("color")?,
            vec![
                ("RED".to_owned(), 0),
                ("GREEN".to_owned(), 1),
                ("BLUE".to_owned(), 0x7fff_ffff)
            ]
        );
        assert!(matches!(
            btf.enum_variants(""),
            Err(BtfError::NoType { .. })
        ));
        Ok(())
    }

    #[test]
    fn conflicting_enumerators_are_ambiguous() {
        let mut b = Builder::new();
        b.enum32("", false, &[("X", 1)]);
        b.enum32("", false, &[("X", 2)]);
        b.enum32("e", false, &[("A", 1)]);
        b.enum32("e", false, &[("A", 2)]);
        let btf = Btf::parse(&b.build()).expect("parses");
        assert!(matches!(
            btf.enum_value("", "X"),
            Err(BtfError::Ambiguous { .. })
        ));
        assert!(matches!(
            btf.enum_variants("e"),
            Err(BtfError::Ambiguous { .. })
        ));
    }

    #[test]
    fn duplicate_structs_must_agree() {
        let mut b = Builder::new();
        let int = b.int("int", 4, 32);
        b.strukt("dup", 8, &[("a", int, 0), ("b", int, 32)]);
        b.strukt("dup", 8, &[("b", int, 0)]);
        b.strukt("dup", 8, &[("a", int, 0)]);
        let btf = Btf::parse(&b.build()).expect("parses");
        assert_eq!(btf.member_offset("dup", "a").ok(), Some(0));
        assert!(matches!(
            btf.member_offset("dup", "b"),
            Err(BtfError::Ambiguous { .. })
        ));
        assert_eq!(btf.struct_size("dup").ok(), Some(8));
    }

    #[test]
    fn tracepoints_and_funcs() -> Result<()> {
        let btf = sample_btf();
        assert_eq!(
            btf.tracepoint_args("victim")?,
            vec!["outer *", "unsigned int", "char **"]
        );
        assert!(matches!(
            btf.tracepoint_args("noctx"),
            Err(BtfError::BadTracepoint { .. })
        ));
        assert!(btf.has_func("oom_kill_process"));
        assert!(!btf.has_func("outer"));
        assert!(!btf.has_func("nosuch"));
        Ok(())
    }

    #[test]
    fn rss_layout_percpu_counter() -> Result<()> {
        let btf = sample_btf();
        assert_eq!(
            btf.rss_layout()?,
            RssLayout {
                base: 64,
                stride: 40,
                inner: 8
            }
        );
        Ok(())
    }

    #[test]
    fn rss_layout_before_6_2() -> Result<()> {
        // struct mm_rss_stat { atomic_long_t count[4]; } at offset 40.
        let mut b = Builder::new();
        let int = b.int("int", 4, 32);
        let long = b.int("long int", 8, 64);
        let s64 = b.typedef("s64", long);
        let atomic64 = b.strukt("", 8, &[("counter", s64, 0)]);
        let atomic64_t = b.typedef("atomic64_t", atomic64);
        let atomic_long_t = b.typedef("atomic_long_t", atomic64_t);
        let counts = b.array(atomic_long_t, int, 4);
        let rss = b.strukt("mm_rss_stat", 32, &[("count", counts, 0)]);
        b.strukt(
            "mm_struct",
            512,
            &[("pad", long, 0), ("rss_stat", rss, 320)],
        );
        let btf = Btf::parse(&b.build())?;
        assert_eq!(
            btf.rss_layout()?,
            RssLayout {
                base: 40,
                stride: 8,
                inner: 0
            }
        );
        Ok(())
    }

    #[test]
    fn reference_cycles_are_errors() {
        let mut b = Builder::new();
        // Type 1 is a typedef of type 2, which is a const of type 1.
        b.typedef("loop_t", 2);
        b.modifier(KIND_CONST, 1);
        b.strukt("s", 8, &[("l", 1, 0)]);
        // Type 4 contains itself as an anonymous member (impossible in C, possible in bytes).
        b.strukt("t", 8, &[("", 4, 0)]);
        let proto = b.func_proto(0, &[0, 1]);
        let p = b.ptr(proto);
        b.typedef("btf_trace_loop", p);
        let btf = Btf::parse(&b.build()).expect("parses");
        assert!(matches!(
            btf.member_offset("s", "l.x"),
            Err(BtfError::TooDeep { .. })
        ));
        assert!(matches!(
            btf.member_offset("t", "x"),
            Err(BtfError::TooDeep { .. })
        ));
        assert!(btf.tracepoint_args("loop").is_err());
    }

    #[test]
    fn dangling_type_ids_are_errors() {
        let mut b = Builder::new();
        b.strukt("s", 8, &[("p", 99, 0)]);
        b.strukt("u", 8, &[("", 99, 0)]);
        let btf = Btf::parse(&b.build()).expect("parses");
        assert!(matches!(
            btf.member_offset("s", "p.x"),
            Err(BtfError::BadTypeId { id: 99 })
        ));
        assert!(matches!(
            btf.member_offset("u", "x"),
            Err(BtfError::BadTypeId { id: 99 })
        ));
    }

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

    // ---- against this machine's kernel ----

    const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

    /// The running kernel's BTF, or None (with a note) on a kernel built without it, so the
    /// unit tests above still run there.
    fn kernel() -> Option<Btf> {
        let path = Path::new(VMLINUX);
        if !path.exists() {
            eprintln!("{VMLINUX} missing: skipping kernel BTF test");
            return None;
        }
        match Btf::from_file(path) {
            Ok(btf) => Some(btf),
            Err(e) => panic!("parsing {VMLINUX}: {e} ({e:?})"),
        }
    }

    #[test]
    fn kernel_offsets() -> Result<()> {
        let Some(btf) = kernel() else { return Ok(()) };
        let mut task = Vec::new();
        for m in ["pid", "tgid", "comm", "cgroups", "signal", "mm"] {
            let off = btf.member_offset("task_struct", m)?;
            println!("task_struct.{m} = {off}");
            task.push(off);
        }
        let mut sorted = task.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            task.len(),
            "task_struct offsets collide: {task:?}"
        );
        let size = btf.struct_size("task_struct")?;
        assert!(task.iter().all(|&o| o < size));

        for (s, m) in [
            ("signal_struct", "oom_score_adj"),
            ("css_set", "subsys"),
            ("cgroup_subsys_state", "cgroup"),
            ("cgroup_subsys_state", "parent"),
            ("cgroup", "kn"),
            ("kernfs_node", "id"),
            ("mem_cgroup", "css"),
            ("mem_cgroup", "memory"),
            ("mem_cgroup", "memory.usage"),
            ("mem_cgroup", "memory.max"),
            ("page_counter", "usage"),
            ("page_counter", "max"),
            ("oom_control", "memcg"),
            ("oom_control", "chosen"),
            ("oom_control", "constraint"),
            ("oom_control", "totalpages"),
            ("oom_control", "order"),
            ("mm_struct", "total_vm"),
            ("mm_struct", "rss_stat"),
            ("percpu_counter", "count"),
        ] {
            let off = btf.member_offset(s, m)?;
            println!("{s}.{m} = {off}");
            assert!(off < btf.struct_size(s)?, "{s}.{m}");
        }
        assert_eq!(btf.member_offset("mem_cgroup", "css")?, 0);
        assert_ne!(
            btf.member_offset("page_counter", "usage")?,
            btf.member_offset("page_counter", "max")?
        );
        assert_eq!(
            btf.member_offset("mem_cgroup", "memory.usage")?,
            btf.member_offset("mem_cgroup", "memory")?
                + btf.member_offset("page_counter", "usage")?
        );
        for s in [
            "task_struct",
            "mm_struct",
            "percpu_counter",
            "page_counter",
            "oom_control",
        ] {
            println!("sizeof({s}) = {}", btf.struct_size(s)?);
        }
        Ok(())
    }

    #[test]
    fn kernel_enums_funcs_tracepoints() -> Result<()> {
        let Some(btf) = kernel() else { return Ok(()) };
        let memory = btf.enum_value("cgroup_subsys_id", "memory_cgrp_id")?;
        println!("memory_cgrp_id = {memory}");
        assert!(memory >= 0);
        assert!(btf
            .enum_variants("cgroup_subsys_id")?
            .iter()
            .any(|(n, v)| n == "memory_cgrp_id" && *v == memory));
        assert_eq!(btf.enum_value("oom_constraint", "CONSTRAINT_NONE")?, 0);
        let memcg = btf.enum_value("oom_constraint", "CONSTRAINT_MEMCG")?;
        println!("CONSTRAINT_MEMCG = {memcg}");
        assert!(memcg > 0);
        let mut mm = Vec::new();
        for v in [
            "MM_FILEPAGES",
            "MM_ANONPAGES",
            "MM_SHMEMPAGES",
            "NR_MM_COUNTERS",
        ] {
            let value = btf.enum_value("", v)?;
            println!("{v} = {value}");
            mm.push(value);
        }
        assert_eq!(mm, [0, 1, 3, 4]);
        assert!(btf.has_func("oom_kill_process"));
        assert!(!btf.has_func("task_struct"));
        let args = btf.tracepoint_args("mark_victim")?;
        println!("mark_victim args = {args:?}");
        assert_eq!(args.first().map(String::as_str), Some("task_struct *"));
        Ok(())
    }

    #[test]
    fn kernel_rss_layout() -> Result<()> {
        let Some(btf) = kernel() else { return Ok(()) };
        let layout = btf.rss_layout()?;
        println!("{layout:?}");
        assert_eq!(layout.base, btf.member_offset("mm_struct", "rss_stat")?);
        // This machine runs 6.18, so the percpu_counter layout.
        assert_eq!(layout.stride, btf.struct_size("percpu_counter")?);
        assert_eq!(layout.inner, btf.member_offset("percpu_counter", "count")?);
        Ok(())
    }

    #[test]
    fn kernel_parse_time() {
        let path = Path::new(VMLINUX);
        let Ok(bytes) = std::fs::read(path) else {
            eprintln!("{VMLINUX} unreadable: skipping");
            return;
        };
        let mut best = std::time::Duration::MAX;
        let mut types = 0;
        for _ in 0..5 {
            let start = std::time::Instant::now();
            let btf = Btf::parse(&bytes).expect("kernel BTF parses");
            best = best.min(start.elapsed());
            types = btf.types.len() - 1;
        }
        println!(
            "parsed {} bytes, {types} types in {best:?} (best of 5)",
            bytes.len()
        );
        // Only a gross regression should fail here; shared CI machines are noisy.
        if !cfg!(debug_assertions) {
            assert!(best < std::time::Duration::from_millis(500), "{best:?}");
        }
    }
}
