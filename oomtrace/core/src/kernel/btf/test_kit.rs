//! Raw BTF assembled in tests, and a miniature kernel's.

use super::*;

/// Assembles raw BTF: strings are interned, types get ids in the order they are added.
pub(super) struct Builder {
    types: Vec<u8>,
    strings: Vec<u8>,
    next_id: u32,
}

impl Builder {
    pub(super) fn new() -> Self {
        Builder {
            types: Vec::new(),
            strings: vec![0],
            next_id: 1,
        }
    }

    pub(super) fn s(&mut self, name: &str) -> u32 {
        if name.is_empty() {
            return 0;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(name.as_bytes());
        self.strings.push(0);
        off
    }

    pub(super) fn w(&mut self, v: u32) {
        self.types.extend_from_slice(&v.to_ne_bytes());
    }

    pub(super) fn head(&mut self, name: &str, kind: u32, kflag: bool, vlen: u32, sot: u32) -> u32 {
        let n = self.s(name);
        self.w(n);
        self.w(kind << 24 | u32::from(kflag) << 31 | vlen);
        self.w(sot);
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub(super) fn int(&mut self, name: &str, size: u32, bits: u32) -> u32 {
        let id = self.head(name, KIND_INT, false, 0, size);
        self.w(bits);
        id
    }

    pub(super) fn ptr(&mut self, to: u32) -> u32 {
        self.head("", KIND_PTR, false, 0, to)
    }

    pub(super) fn typedef(&mut self, name: &str, to: u32) -> u32 {
        self.head(name, KIND_TYPEDEF, false, 0, to)
    }

    pub(super) fn modifier(&mut self, kind: u32, to: u32) -> u32 {
        self.head("", kind, false, 0, to)
    }

    pub(super) fn array(&mut self, elem: u32, index: u32, n: u32) -> u32 {
        let id = self.head("", KIND_ARRAY, false, 0, 0);
        self.w(elem);
        self.w(index);
        self.w(n);
        id
    }

    /// Members are (name, type, bit offset, bitfield size); any bitfield size sets
    /// kind_flag, as the kernel's encoder does.
    pub(super) fn composite(
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

    pub(super) fn strukt(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        let m: Vec<_> = members.iter().map(|&(n, t, o)| (n, t, o, 0)).collect();
        self.composite(false, name, size, &m)
    }

    pub(super) fn union(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        let m: Vec<_> = members.iter().map(|&(n, t, o)| (n, t, o, 0)).collect();
        self.composite(true, name, size, &m)
    }

    pub(super) fn enum32(&mut self, name: &str, signed: bool, values: &[(&str, i32)]) -> u32 {
        let id = self.head(name, KIND_ENUM, signed, values.len() as u32, 4);
        for &(n, v) in values {
            let n = self.s(n);
            self.w(n);
            self.w(v as u32);
        }
        id
    }

    pub(super) fn enum64(&mut self, name: &str, signed: bool, values: &[(&str, u64)]) -> u32 {
        let id = self.head(name, KIND_ENUM64, signed, values.len() as u32, 8);
        for &(n, v) in values {
            let n = self.s(n);
            self.w(n);
            self.w(v as u32);
            self.w((v >> 32) as u32);
        }
        id
    }

    pub(super) fn func_proto(&mut self, ret: u32, params: &[u32]) -> u32 {
        let id = self.head("", KIND_FUNC_PROTO, false, params.len() as u32, ret);
        for &p in params {
            self.w(0);
            self.w(p);
        }
        id
    }

    pub(super) fn func(&mut self, name: &str, proto: u32) -> u32 {
        self.head(name, KIND_FUNC, false, 0, proto)
    }

    pub(super) fn build(&self) -> Vec<u8> {
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
pub(super) fn sample() -> Vec<u8> {
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

pub(super) fn sample_btf() -> Btf {
    Btf::parse(&sample()).expect("sample BTF parses")
}
