//! The Containerfile's recipe, checked in seconds (`cargo xtask image`
//! builds and runs the real image, in minutes, outside the test suite):
//! its build stage is the README's flow (`cargo xtask setup`, then a
//! release build of oomtrace, with the lock file as committed), which
//! `cargo xtask test` itself has just run to build the binary under test;
//! and its runtime stage, debian:bookworm-slim plus the binary, holds every
//! library that binary links.

use std::{collections::BTreeSet, fs, path::PathBuf, process::Command};

use oomtrace_e2e::bin;

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn containerfile() -> String {
    fs::read_to_string(root().join("Containerfile")).expect("Containerfile")
}

/// The logical lines of one stage (continuations joined).
fn stages(text: &str) -> Vec<Vec<String>> {
    let joined = text.replace("\\\n", " ");
    let mut stages: Vec<Vec<String>> = Vec::new();
    for line in joined.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with("FROM ") {
            stages.push(Vec::new());
        }
        if let Some(stage) = stages.last_mut() {
            stage.push(line.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    stages
}

#[test]
fn build_stage_is_the_readme_flow() {
    let text = containerfile();
    let stages = stages(&text);
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    let build = stages[0].join("\n");
    assert!(
        build.starts_with("FROM ${DEBIAN} AS build"),
        "the build stage is Debian 12: {build}"
    );
    assert!(
        text.contains("ARG DEBIAN=docker.io/library/debian:bookworm\n"),
        "the build base is debian:bookworm"
    );
    for step in [
        "--default-toolchain \"$RUST_TOOLCHAIN\"",
        "ARG RUST_TOOLCHAIN=stable",
        "RUN cargo xtask setup",
        "RUN cargo build --release --locked --package oomtrace",
        "PATH=/opt/bpf-linker/bin:",
    ] {
        assert!(
            build.contains(step),
            "the build stage lacks `{step}`:\n{build}"
        );
    }
    // `--locked` fails on a lock file that does not match the manifests;
    // the test build (no --locked) would not notice.
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let out = Command::new(cargo)
        .args([
            "tree",
            "--locked",
            "--offline",
            "--package",
            "oomtrace",
            "--depth",
            "0",
        ])
        .current_dir(root())
        .output()
        .expect("cargo tree");
    assert!(
        out.status.success(),
        "Cargo.lock is not current, so the image's `cargo build --locked` would fail: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The build context leaves out the build output.
    let ignore = fs::read_to_string(root().join(".dockerignore")).expect(".dockerignore");
    assert!(
        ignore.lines().any(|l| l.trim() == "/target"),
        ".dockerignore: /target"
    );
    // The binary that flow made runs.
    let out = Command::new(bin("oomtrace"))
        .arg("--version")
        .output()
        .expect("oomtrace --version");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("oomtrace {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn runtime_stage_holds_what_the_binary_links() {
    let stages = stages(&containerfile());
    let runtime = &stages[stages.len() - 1];
    assert_eq!(runtime[0], "FROM ${DEBIAN_SLIM}", "{runtime:?}");
    assert!(containerfile().contains("ARG DEBIAN_SLIM=docker.io/library/debian:bookworm-slim\n"));
    // Only the binary goes in.
    let copies: Vec<&String> = runtime.iter().filter(|l| l.starts_with("COPY")).collect();
    assert_eq!(
        copies,
        [&"COPY --from=build /out/oomtrace /usr/local/bin/oomtrace".to_string()],
        "the runtime stage copies only the binary"
    );
    assert!(
        !runtime.iter().any(|l| l.starts_with("RUN")),
        "the runtime stage installs nothing: {runtime:?}"
    );
    // What the binary links, by package: all of them must be in
    // bookworm-slim, which holds Debian's essential and required set.
    let out = Command::new("ldd")
        .arg(bin("oomtrace"))
        .output()
        .expect("ldd");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !text.contains("not found"),
        "{text}"
    );
    let mut packages = BTreeSet::new();
    for line in text.lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or
        // `/lib64/ld-linux-x86-64.so.2 (0x...)`; the vDSO has no file.
        let path = match line.split_once("=>") {
            Some((_, rhs)) => rhs.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        let Some(path) = path.filter(|p| p.starts_with('/')) else {
            continue;
        };
        let real = fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path));
        let owner = [PathBuf::from(path), real]
            .iter()
            .find_map(|p| {
                let o = Command::new("dpkg").arg("-S").arg(p).output().ok()?;
                o.status.success().then(|| {
                    String::from_utf8_lossy(&o.stdout)
                        .split(':')
                        .next()
                        .unwrap_or_default()
                        .to_string()
                })
            })
            .unwrap_or_else(|| panic!("no Debian package owns {path}"));
        packages.insert(owner);
    }
    let in_slim = ["libc6", "libgcc-s1"];
    for p in &packages {
        assert!(
            in_slim.contains(&p.as_str()),
            "oomtrace links a library from {p}, which debian:bookworm-slim lacks: install it in the runtime stage ({packages:?})"
        );
    }
    assert!(packages.contains("libc6"), "{packages:?}");
}
