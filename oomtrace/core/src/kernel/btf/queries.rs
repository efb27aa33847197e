//! The questions oomtrace asks of the kernel's BTF: member offsets, struct sizes,
//! enumerator values, functions, tracepoint prototypes and the mm counters' layout.
//! Every answer agrees across duplicate definitions or is an error.

use super::*;

/// Where the mm counters sit: counter `i` (MM_FILEPAGES, MM_ANONPAGES, ...) is the integer
/// at `mm + base + i * stride + inner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RssLayout {
    pub base: u32,
    pub stride: u32,
    pub inner: u32,
}

impl Btf {
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

#[cfg(test)]
mod tests {
    use super::super::test_kit::*;
    use super::*;

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
            ("oom_control", "constraint"),
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
        // The values `OomEvent::constraint` is read as (rules::attribution).
        let constraints = btf.enum_variants("oom_constraint")?;
        println!("oom_constraint = {constraints:?}");
        for (name, value) in [
            ("CONSTRAINT_NONE", 0),
            ("CONSTRAINT_CPUSET", 1),
            ("CONSTRAINT_MEMORY_POLICY", 2),
            ("CONSTRAINT_MEMCG", 3),
        ] {
            assert_eq!(btf.enum_value("oom_constraint", name)?, value, "{name}");
        }
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
