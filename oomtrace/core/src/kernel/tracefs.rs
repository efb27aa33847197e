//! Tracepoint `format` files from tracefs.
//!
//! Tracepoint record layouts are not ABI: fields move between kernel versions
//! and configs. Reading the offsets from the running kernel's format files
//! lets the daemon check (or feed) the layout its eBPF programs assume
//! instead of trusting a layout compiled in for one kernel.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub name: String,
    pub id: u32,
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// The element type as the kernel prints it, with array and `__data_loc`
    /// decorations moved into `array_len` and `data_loc`: `char comm[16]` and
    /// `__data_loc char[] comm` both have `c_type` "char". An array whose
    /// length the kernel printed as an expression (`__u8 saddr[sizeof(struct
    /// sockaddr_in6)]`) keeps the brackets in `c_type` and has no `array_len`;
    /// `size` is still exact. `__rel_loc` fields (offset relative to the end
    /// of the field, 5.18+) keep their prefix here and are not `data_loc`,
    /// since decoding them as `__data_loc` would read the wrong bytes.
    pub c_type: String,
    pub offset: u32,
    pub size: u32,
    pub signed: bool,
    /// The field is a u32 locator: low 16 bits the payload's offset from the
    /// start of the record, high 16 bits its length.
    pub data_loc: bool,
    pub array_len: Option<u32>,
}

/// A section every format file has; missing one means the text was cut short
/// or is not a format file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Name,
    Id,
    Format,
    PrintFmt,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Section::Name => "name:",
            Section::Id => "ID:",
            Section::Format => "format:",
            Section::PrintFmt => "print fmt:",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("empty event name")]
    EmptyName,
    #[error("ID is not a u32")]
    BadId,
    #[error("field line has no {0}")]
    MissingKey(&'static str),
    #[error("{0} is not a u32")]
    BadNumber(&'static str),
    #[error("signed is neither 0 nor 1")]
    BadSigned,
    #[error("declaration is not `<type> <name>`")]
    BadDeclaration,
}

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("format text has no `{0}` line (truncated, or not a format file)")]
    Missing(Section),
    #[error("format line {line}: {problem}: {text:?}")]
    Malformed {
        line: usize,
        problem: Problem,
        text: String,
    },
    #[error("tracepoint {event} has no field {field:?}")]
    NoSuchField { event: String, field: String },
    #[error("{what} name {name:?} is not a tracefs directory name")]
    BadName { what: &'static str, name: String },
    // The cause is in the message rather than `source()` so that a plain
    // `{}` (as tracing prints errors) shows the whole story once.
    #[error("cannot read {}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },
    #[error("{}: {error}", path.display())]
    InFile {
        path: PathBuf,
        error: Box<FormatError>,
    },
}

impl Format {
    pub fn field(&self, name: &str) -> Result<&Field, FormatError> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| FormatError::NoSuchField {
                event: self.name.clone(),
                field: name.to_owned(),
            })
    }
}

pub fn parse_format(text: &str) -> Result<Format, FormatError> {
    let mut name = None;
    let mut id = None;
    let mut saw_format = false;
    let mut saw_print_fmt = false;
    let mut fields = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let malformed = |problem| FormatError::Malformed {
            line,
            problem,
            text: raw.to_owned(),
        };
        let trimmed = raw.trim();
        if let Some(value) = trimmed.strip_prefix("name:") {
            let value = value.trim();
            if value.is_empty() {
                return Err(malformed(Problem::EmptyName));
            }
            name = Some(value.to_owned());
        } else if let Some(value) = trimmed.strip_prefix("ID:") {
            id = Some(
                value
                    .trim()
                    .parse()
                    .map_err(|_| malformed(Problem::BadId))?,
            );
        } else if trimmed == "format:" {
            saw_format = true;
        } else if trimmed.starts_with("field:") {
            fields.push(parse_field(trimmed).map_err(malformed)?);
        } else if trimmed.starts_with("print fmt:") {
            // The last section, and its C-format text may contain anything.
            saw_print_fmt = true;
            break;
        }
        // Blank lines separate the common fields; other lines are skipped so
        // that a kernel adding a header does not break every tracepoint.
    }
    let name = name.ok_or(FormatError::Missing(Section::Name))?;
    let id = id.ok_or(FormatError::Missing(Section::Id))?;
    if !saw_format {
        return Err(FormatError::Missing(Section::Format));
    }
    // Without this a file cut between two field lines would parse "fine" and
    // silently lack fields.
    if !saw_print_fmt {
        return Err(FormatError::Missing(Section::PrintFmt));
    }
    Ok(Format { name, id, fields })
}

/// `field:unsigned long total_vm;<TAB>offset:16;<TAB>size:8;<TAB>signed:0;`
fn parse_field(line: &str) -> Result<Field, Problem> {
    let mut declaration = None;
    let (mut offset, mut size, mut signed) = (None, None, None);
    for part in line.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = part.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "field" => declaration = Some(value),
            "offset" => offset = Some(value.parse().map_err(|_| Problem::BadNumber("offset"))?),
            "size" => size = Some(value.parse().map_err(|_| Problem::BadNumber("size"))?),
            "signed" => {
                signed = Some(match value {
                    "0" => false,
                    "1" => true,
                    _ => return Err(Problem::BadSigned),
                })
            }
            _ => {}
        }
    }
    let declaration = parse_declaration(declaration.ok_or(Problem::MissingKey("field"))?)?;
    Ok(Field {
        name: declaration.name,
        c_type: declaration.c_type,
        offset: offset.ok_or(Problem::MissingKey("offset"))?,
        size: size.ok_or(Problem::MissingKey("size"))?,
        signed: signed.ok_or(Problem::MissingKey("signed"))?,
        data_loc: declaration.data_loc,
        array_len: declaration.array_len,
    })
}

struct Declaration {
    name: String,
    c_type: String,
    data_loc: bool,
    array_len: Option<u32>,
}

fn parse_declaration(text: &str) -> Result<Declaration, Problem> {
    let (data_loc, text) = match text.strip_prefix("__data_loc ") {
        Some(rest) => (true, rest.trim_start()),
        None => (false, text),
    };
    let (declarator, array) = match text.strip_suffix(']').and_then(|t| t.rsplit_once('[')) {
        Some((declarator, length)) => (declarator.trim_end(), Some(length)),
        None => (text, None),
    };
    let (c_type, name) = declarator
        .rsplit_once(|c: char| c.is_whitespace())
        .ok_or(Problem::BadDeclaration)?;
    // `char *name` has the pointer star glued to the name.
    let stars = name.len() - name.trim_start_matches('*').len();
    let (star_part, name) = name.split_at(stars);
    let mut c_type = c_type.trim_end().to_owned();
    if !star_part.is_empty() {
        c_type = format!("{c_type} {star_part}");
    }
    if data_loc {
        c_type = c_type
            .strip_suffix("[]")
            .unwrap_or(&c_type)
            .trim_end()
            .to_owned();
    }
    if c_type.is_empty() || !is_identifier(name) {
        return Err(Problem::BadDeclaration);
    }
    let array_len = match array {
        None => None,
        Some(length) => match length.trim().parse() {
            Ok(n) => Some(n),
            Err(_) => {
                c_type = format!("{c_type}[{length}]");
                None
            }
        },
    };
    Ok(Declaration {
        name: name.to_owned(),
        c_type,
        data_loc,
        array_len,
    })
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Where tracefs is mounted, from `/proc/self/mountinfo`. Falls back to the
/// debugfs `tracing` directory that older setups (and the kernel's automount)
/// provide.
pub fn find_tracefs() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    tracefs_candidates(&mountinfo)
        .into_iter()
        .find(|dir| dir.join("events").is_dir())
}

/// tracefs mounts first, the canonical one ahead of others; then debugfs
/// mounts with `tracing` appended. procfs parses each mountinfo line (one
/// it cannot parse is skipped, not the whole table); it leaves the kernel's
/// octal escapes in the mount point, so they are decoded here.
fn tracefs_candidates(mountinfo: &str) -> Vec<PathBuf> {
    let mut tracefs = Vec::new();
    let mut debugfs = Vec::new();
    for mount in mountinfo
        .lines()
        .filter_map(|l| procfs::process::MountInfo::from_line(l).ok())
    {
        let point = PathBuf::from(unescape_mount_point(&mount.mount_point.to_string_lossy()));
        match mount.fs_type.as_str() {
            "tracefs" => tracefs.push(point),
            "debugfs" => debugfs.push(point.join("tracing")),
            _ => {}
        }
    }
    tracefs.sort_by_key(|p| p != Path::new("/sys/kernel/tracing"));
    tracefs.extend(debugfs);
    tracefs
}

/// The kernel writes space, tab, newline and backslash in mount points as
/// three-digit octal escapes.
fn unescape_mount_point(escaped: &str) -> String {
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let decoded = after
            .get(..3)
            .filter(|d| d.bytes().all(|b| (b'0'..=b'7').contains(&b)))
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match decoded {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &after[3..];
            }
            None => {
                out.push('\\');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Reads and parses `<tracefs>/events/<system>/<event>/format`; every error
/// names that file.
pub fn read_format(tracefs: &Path, system: &str, event: &str) -> Result<Format, FormatError> {
    check_name("system", system)?;
    check_name("event", event)?;
    let path = tracefs
        .join("events")
        .join(system)
        .join(event)
        .join("format");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) => return Err(FormatError::Io { path, error }),
    };
    parse_format(&text).map_err(|error| FormatError::InFile {
        path,
        error: Box::new(error),
    })
}

/// Keeps a caller's name from walking out of `events/`.
fn check_name(what: &'static str, name: &str) -> Result<(), FormatError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(FormatError::BadName {
            what,
            name: name.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    // Copied from kernel 6.18 (/sys/kernel/tracing/events/*/*/format), so the
    // parser is exercised on real text where no tracefs is mounted.
    pub(crate) const MARK_VICTIM: &str = "name: mark_victim
ID: 609
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;
\tfield:__data_loc char[] comm;\toffset:12;\tsize:4;\tsigned:0;
\tfield:unsigned long total_vm;\toffset:16;\tsize:8;\tsigned:0;
\tfield:unsigned long anon_rss;\toffset:24;\tsize:8;\tsigned:0;
\tfield:unsigned long file_rss;\toffset:32;\tsize:8;\tsigned:0;
\tfield:unsigned long shmem_rss;\toffset:40;\tsize:8;\tsigned:0;
\tfield:uid_t uid;\toffset:48;\tsize:4;\tsigned:0;
\tfield:unsigned long pgtables;\toffset:56;\tsize:8;\tsigned:0;
\tfield:short oom_score_adj;\toffset:64;\tsize:2;\tsigned:1;

print fmt: \"pid=%d comm=%s total-vm=%lukB anon-rss=%lukB file-rss:%lukB shmem-rss:%lukB uid=%u pgtables=%lukB oom_score_adj=%hd\", REC->pid, __get_str(comm), REC->total_vm, REC->anon_rss, REC->file_rss, REC->shmem_rss, REC->uid, REC->pgtables, REC->oom_score_adj
";

    const CGROUP_MKDIR: &str = "name: cgroup_mkdir
ID: 544
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int root;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int level;\toffset:12;\tsize:4;\tsigned:1;
\tfield:u64 id;\toffset:16;\tsize:8;\tsigned:0;
\tfield:__data_loc char[] path;\toffset:24;\tsize:4;\tsigned:0;

print fmt: \"root=%d id=%llu level=%d path=%s\", REC->root, REC->id, REC->level, __get_str(path)
";

    const CGROUP_ATTACH_TASK: &str = "name: cgroup_attach_task
ID: 538
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int dst_root;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int dst_level;\toffset:12;\tsize:4;\tsigned:1;
\tfield:u64 dst_id;\toffset:16;\tsize:8;\tsigned:0;
\tfield:int pid;\toffset:24;\tsize:4;\tsigned:1;
\tfield:__data_loc char[] dst_path;\toffset:28;\tsize:4;\tsigned:0;
\tfield:__data_loc char[] comm;\toffset:32;\tsize:4;\tsigned:0;

print fmt: \"dst_root=%d dst_id=%llu dst_level=%d dst_path=%s pid=%d comm=%s\", REC->dst_root, REC->dst_id, REC->dst_level, __get_str(dst_path), REC->pid, __get_str(comm)
";

    const SIGNAL_GENERATE: &str = "name: signal_generate
ID: 261
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int sig;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int errno;\toffset:12;\tsize:4;\tsigned:1;
\tfield:int code;\toffset:16;\tsize:4;\tsigned:1;
\tfield:char comm[16];\toffset:20;\tsize:16;\tsigned:0;
\tfield:pid_t pid;\toffset:36;\tsize:4;\tsigned:1;
\tfield:int group;\toffset:40;\tsize:4;\tsigned:1;
\tfield:int result;\toffset:44;\tsize:4;\tsigned:1;

print fmt: \"sig=%d errno=%d code=%d comm=%s pid=%d grp=%d res=%d\", REC->sig, REC->errno, REC->code, REC->comm, REC->pid, REC->group, REC->result
";

    /// The fields oomtrace reads, per tracepoint.
    const NEEDED: [(&str, &str, &[&str]); 6] = [
        (
            "oom",
            "mark_victim",
            &[
                "pid",
                "comm",
                "total_vm",
                "anon_rss",
                "file_rss",
                "shmem_rss",
                "oom_score_adj",
            ],
        ),
        ("cgroup", "cgroup_mkdir", &["root", "id", "level", "path"]),
        ("cgroup", "cgroup_rmdir", &["root", "id", "level", "path"]),
        ("cgroup", "cgroup_release", &["root", "id", "level", "path"]),
        (
            "cgroup",
            "cgroup_attach_task",
            &["dst_root", "dst_id", "dst_level", "pid", "dst_path", "comm"],
        ),
        (
            "signal",
            "signal_generate",
            &["sig", "errno", "code", "comm", "pid", "group", "result"],
        ),
    ];

    fn parsed(text: &str) -> Format {
        match parse_format(text) {
            Ok(format) => format,
            Err(e) => panic!("{e}"),
        }
    }

    fn field<'a>(format: &'a Format, name: &str) -> &'a Field {
        match format.field(name) {
            Ok(field) => field,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn mark_victim_layout() {
        let format = parsed(MARK_VICTIM);
        assert_eq!(format.name, "mark_victim");
        assert_eq!(format.id, 609);
        assert_eq!(format.fields.len(), 13);
        assert_eq!(
            field(&format, "comm"),
            &Field {
                name: "comm".into(),
                c_type: "char".into(),
                offset: 12,
                size: 4,
                signed: false,
                data_loc: true,
                array_len: None,
            }
        );
        assert_eq!(
            field(&format, "oom_score_adj"),
            &Field {
                name: "oom_score_adj".into(),
                c_type: "short".into(),
                offset: 64,
                size: 2,
                signed: true,
                data_loc: false,
                array_len: None,
            }
        );
        assert_eq!(field(&format, "common_type").c_type, "unsigned short");
        assert_eq!(field(&format, "total_vm").offset, 16);
    }

    #[test]
    fn signal_generate_fixed_array() {
        let format = parsed(SIGNAL_GENERATE);
        assert_eq!(
            field(&format, "comm"),
            &Field {
                name: "comm".into(),
                c_type: "char".into(),
                offset: 20,
                size: 16,
                signed: false,
                data_loc: false,
                array_len: Some(16),
            }
        );
        assert_eq!(field(&format, "pid").c_type, "pid_t");
        assert_eq!(field(&format, "result").offset, 44);
    }

    #[test]
    fn embedded_copies_have_every_needed_field() {
        let copies = [
            ("mark_victim", MARK_VICTIM),
            ("cgroup_mkdir", CGROUP_MKDIR),
            ("cgroup_attach_task", CGROUP_ATTACH_TASK),
            ("signal_generate", SIGNAL_GENERATE),
        ];
        for (event, text) in copies {
            let format = parsed(text);
            assert_eq!(format.name, event);
            let needed = NEEDED
                .iter()
                .find(|(_, e, _)| *e == event)
                .map(|(_, _, fields)| *fields)
                .unwrap_or_default();
            assert!(!needed.is_empty());
            for name in needed {
                assert!(format.field(name).is_ok(), "{event}.{name}");
            }
        }
        let attach = parsed(CGROUP_ATTACH_TASK);
        assert!(field(&attach, "dst_path").data_loc);
        assert_eq!(field(&attach, "dst_path").offset, 28);
        assert_eq!(field(&parsed(CGROUP_MKDIR), "id").c_type, "u64");
    }

    /// Runs against the live kernel when tracefs is reachable (root, mounted);
    /// elsewhere the embedded copies above cover the parser.
    #[test]
    fn real_tracefs_files() {
        let Some(tracefs) = find_tracefs() else {
            eprintln!("tracefs not mounted or not readable; skipping live check");
            return;
        };
        for (system, event, needed) in NEEDED {
            let format = match read_format(&tracefs, system, event) {
                Ok(format) => format,
                Err(e) => panic!("{e}"),
            };
            assert_eq!(format.name, event);
            assert!(format.id > 0);
            for name in needed {
                let f = field(&format, name);
                assert!(f.size > 0, "{event}.{name}");
                assert!(f.offset >= 8, "{event}.{name} overlaps the common header");
            }
            for name in ["path", "dst_path"] {
                if let Ok(f) = format.field(name) {
                    assert!(f.data_loc, "{event}.{name}");
                }
            }
        }
    }

    #[test]
    fn missing_field_error_names_event_and_field() {
        let format = parsed(CGROUP_MKDIR);
        let err = format.field("dst_path").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("tracepoint cgroup_mkdir has no field \"dst_path\"")
        );
    }

    #[test]
    fn truncated_texts() {
        let cut_in_fields = MARK_VICTIM
            .find("\tfield:unsigned long anon_rss")
            .map(|at| &MARK_VICTIM[..at])
            .unwrap_or_default();
        assert!(matches!(
            parse_format(cut_in_fields),
            Err(FormatError::Missing(Section::PrintFmt))
        ));
        let cut_mid_line = MARK_VICTIM
            .find("size:8;\tsigned:0;\n\tfield:unsigned long anon_rss")
            .map(|at| &MARK_VICTIM[..at])
            .unwrap_or_default();
        assert!(matches!(
            parse_format(cut_mid_line),
            Err(FormatError::Malformed {
                line: 11,
                problem: Problem::MissingKey("size"),
                ..
            })
        ));
        assert!(matches!(
            parse_format(""),
            Err(FormatError::Missing(Section::Name))
        ));
        assert!(matches!(
            parse_format("name: x\n"),
            Err(FormatError::Missing(Section::Id))
        ));
        assert!(matches!(
            parse_format("name: x\nID: 3\nprint fmt: \"\"\n"),
            Err(FormatError::Missing(Section::Format))
        ));
        // The smallest complete file: a tracepoint may have no own fields.
        let empty = parsed("name: x\nID: 3\nformat:\nprint fmt: \"\"\n");
        assert!(empty.fields.is_empty());
    }

    #[test]
    fn malformed_lines() {
        let with = |field_line: &str| {
            parse_format(&format!(
                "name: e\nID: 1\nformat:\n{field_line}\n\nprint fmt: \"\"\n"
            ))
        };
        let problem = |field_line: &str| match with(field_line) {
            Err(FormatError::Malformed {
                line: 4, problem, ..
            }) => Some(problem),
            _ => None,
        };
        assert_eq!(
            problem("\tfield:int x;\toffset:eight;\tsize:4;\tsigned:1;"),
            Some(Problem::BadNumber("offset"))
        );
        assert_eq!(
            problem("\tfield:int x;\toffset:-8;\tsize:4;\tsigned:1;"),
            Some(Problem::BadNumber("offset"))
        );
        assert_eq!(
            problem("\tfield:int x;\toffset:8;\tsize:4x;\tsigned:1;"),
            Some(Problem::BadNumber("size"))
        );
        assert_eq!(
            problem("\tfield:int x;\toffset:8;\tsize:4;\tsigned:yes;"),
            Some(Problem::BadSigned)
        );
        assert_eq!(
            problem("\tfield:int x;\toffset:8;\tsize:4;"),
            Some(Problem::MissingKey("signed"))
        );
        assert_eq!(
            problem("\tfield:int x;\tsize:4;\tsigned:1;"),
            Some(Problem::MissingKey("offset"))
        );
        assert_eq!(
            problem("\tfield:x;\toffset:8;\tsize:4;\tsigned:1;"),
            Some(Problem::BadDeclaration)
        );
        assert_eq!(
            problem("\tfield:;\toffset:8;\tsize:4;\tsigned:1;"),
            Some(Problem::BadDeclaration)
        );
        assert_eq!(
            problem("\tfield:int 9x;\toffset:8;\tsize:4;\tsigned:1;"),
            Some(Problem::BadDeclaration)
        );
        assert_eq!(
            problem("\tfield:int ü;\toffset:8;\tsize:4;\tsigned:1;"),
            Some(Problem::BadDeclaration)
        );
        assert!(matches!(
            parse_format("name: e\nID: 0x10\nformat:\nprint fmt: \"\"\n"),
            Err(FormatError::Malformed {
                line: 2,
                problem: Problem::BadId,
                ..
            })
        ));
        assert!(matches!(
            parse_format("name:\nID: 1\nformat:\nprint fmt: \"\"\n"),
            Err(FormatError::Malformed {
                line: 1,
                problem: Problem::EmptyName,
                ..
            })
        ));
        let message = with("\tfield:int x;\toffset:eight;\tsize:4;\tsigned:1;")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            message.as_deref(),
            Some("format line 4: offset is not a u32: \"\\tfield:int x;\\toffset:eight;\\tsize:4;\\tsigned:1;\"")
        );
    }

    #[test]
    fn unknown_lines_and_keys_are_skipped() {
        let text = "name: e\nID: 7\nflags: 0x1\nformat:\n\
                    \tfield:int x;\toffset:8;\tsize:4;\tsigned:1;\tfuture:yes;\n\
                    \tsomething new\n\
                    print fmt: \"field:bogus\"\nfield:ignored after print fmt\n";
        let format = parsed(text);
        assert_eq!(format.fields.len(), 1);
        assert_eq!(field(&format, "x").offset, 8);
    }

    #[test]
    fn declaration_shapes() {
        let decl = |d: &str| {
            let line = format!("field:{d};\toffset:8;\tsize:28;\tsigned:0;");
            parse_field(&line).map(|f| (f.c_type, f.name, f.data_loc, f.array_len))
        };
        assert_eq!(
            decl("const char * name"),
            Ok(("const char *".into(), "name".into(), false, None))
        );
        assert_eq!(
            decl("const char *name"),
            Ok(("const char *".into(), "name".into(), false, None))
        );
        assert_eq!(
            decl("__u8 saddr[sizeof(struct sockaddr_in6)]"),
            Ok((
                "__u8[sizeof(struct sockaddr_in6)]".into(),
                "saddr".into(),
                false,
                None
            ))
        );
        assert_eq!(
            decl("__data_loc unsigned long[] ips"),
            Ok(("unsigned long".into(), "ips".into(), true, None))
        );
        assert_eq!(
            decl("__rel_loc char[] name"),
            Ok(("__rel_loc char[]".into(), "name".into(), false, None))
        );
        assert_eq!(
            decl("unsigned long caller[8]"),
            Ok(("unsigned long".into(), "caller".into(), false, Some(8)))
        );
        assert_eq!(decl("int"), Err(Problem::BadDeclaration));
        assert_eq!(decl("[4]"), Err(Problem::BadDeclaration));
        assert_eq!(decl("__data_loc char[]"), Err(Problem::BadDeclaration));
    }

    #[test]
    fn mount_table_candidates() {
        let mounts = "\
23 27 0:22 / /sys rw,nosuid shared:7 - sysfs sysfs rw
30 23 0:7 / /sys/kernel/debug rw,relatime shared:12 - debugfs debugfs rw
91 27 0:13 / /mnt/my\\040trace rw,relatime - tracefs nodev rw
42 23 0:13 / /sys/kernel/tracing rw,relatime shared:13 master:1 - tracefs nodev rw
garbage
43 23 0:13 / /half/a/line rw - tracefs
";
        assert_eq!(
            tracefs_candidates(mounts),
            [
                PathBuf::from("/sys/kernel/tracing"),
                PathBuf::from("/mnt/my trace"),
                PathBuf::from("/sys/kernel/debug/tracing"),
            ]
        );
        assert!(tracefs_candidates("").is_empty());
        assert_eq!(unescape_mount_point("a\\134b\\011"), "a\\b\t");
        assert_eq!(unescape_mount_point("trail\\"), "trail\\");
        assert_eq!(unescape_mount_point("bad\\9ab"), "bad\\9ab");
        assert_eq!(unescape_mount_point("é\\040é"), "é é");
    }

    #[test]
    fn read_format_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("tracefs-test-{}", std::process::id()));
        let event_dir = dir.join("events/oom/mark_victim");
        let bad_dir = dir.join("events/oom/bad");
        for d in [&event_dir, &bad_dir] {
            if let Err(e) = std::fs::create_dir_all(d) {
                panic!("{e}");
            }
        }
        let writes = [
            std::fs::write(event_dir.join("format"), MARK_VICTIM),
            std::fs::write(bad_dir.join("format"), "name: bad\nID: x\n"),
        ];
        for w in writes {
            if let Err(e) = w {
                panic!("{e}");
            }
        }

        assert!(read_format(&dir, "oom", "mark_victim").is_ok());

        let missing = read_format(&dir, "oom", "nope")
            .err()
            .map(|e| e.to_string());
        let missing_path = dir.join("events/oom/nope/format");
        assert!(
            missing.as_deref().is_some_and(
                |m| m.starts_with(&format!("cannot read {}: ", missing_path.display()))
            ),
            "{missing:?}"
        );

        let bad = read_format(&dir, "oom", "bad").err().map(|e| e.to_string());
        assert_eq!(
            bad,
            Some(format!(
                "{}: format line 2: ID is not a u32: \"ID: x\"",
                bad_dir.join("format").display()
            ))
        );

        for (system, event) in [("..", "x"), ("oom", "a/b"), ("", "x"), ("oom", ".")] {
            assert!(matches!(
                read_format(&dir, system, event),
                Err(FormatError::BadName { .. })
            ));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A format file read short must never yield a layout that differs from
    /// the whole file's.
    #[test]
    fn every_truncation_is_error_or_whole() {
        for text in [
            MARK_VICTIM,
            CGROUP_MKDIR,
            CGROUP_ATTACH_TASK,
            SIGNAL_GENERATE,
        ] {
            let whole = parsed(text);
            for (cut, _) in text.char_indices() {
                if let Ok(format) = parse_format(&text[..cut]) {
                    assert_eq!(format, whole, "cut at {cut}");
                }
            }
        }
    }
}
