//! The core's rooms import only from the rooms below them (lib.rs lists
//! them lowest first), so no two modules import each other in a circle.
//! Read from the source: test code (from the first `#[cfg(test)]` of a
//! file) may use anything.

use std::{collections::BTreeSet, fs, path::Path};

/// Lowest first: a room may import from the rooms before it.
const ROOMS: [&str; 6] = ["kernel", "logs", "node", "output", "rules", "engine"];

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .expect("reading the core's src")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let text = fs::read_to_string(&p).expect("reading a source file");
            out.push((p.display().to_string(), text));
        }
    }
}

/// The rooms a file's non-test code names through `crate::`.
fn rooms_used(text: &str) -> BTreeSet<&'static str> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut used = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a::x, b::{y, z}}`: the first segment of each
            // top-level item.
            let mut depth = 0;
            let mut item_start = true;
            let mut word = String::new();
            for ch in group.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        item_start = true;
                        continue;
                    }
                    _ => {}
                }
                if item_start {
                    if ch.is_alphanumeric() || ch == '_' {
                        word.push(ch);
                        continue;
                    }
                    if !word.is_empty() {
                        if let Some(r) = ROOMS.iter().find(|r| **r == word) {
                            used.insert(*r);
                        }
                        word.clear();
                        item_start = false;
                    }
                }
            }
        } else {
            let word: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if let Some(r) = ROOMS.iter().find(|r| **r == word) {
                used.insert(*r);
            }
        }
    }
    used
}

#[test]
fn each_room_imports_only_rooms_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    assert!(files.len() > 20, "the core's sources were not found");
    let mut wrong = Vec::new();
    for (path, text) in &files {
        let rel = path
            .strip_prefix(&src.display().to_string())
            .unwrap_or(path)
            .trim_start_matches('/');
        let Some(room) = ROOMS.iter().position(|r| rel.starts_with(&format!("{r}/"))) else {
            assert_eq!(rel, "lib.rs", "a source file outside the rooms");
            continue;
        };
        for used in rooms_used(text) {
            let at = ROOMS.iter().position(|r| *r == used).unwrap_or(0);
            if at > room {
                wrong.push(format!("{rel} ({}) imports {used}", ROOMS[room]));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the room order:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_scan_sees_grouped_and_inline_paths() {
    let text = "use crate::{\n    node::cgroup::X,\n    output::{verdict::V, sink},\n};\nfn f() { crate::rules::x(); }\n#[cfg(test)]\nmod tests { use crate::engine::E; }";
    let used: Vec<_> = rooms_used(text).into_iter().collect();
    assert_eq!(used, ["node", "output", "rules"]);
}
