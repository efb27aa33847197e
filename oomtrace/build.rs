//! Builds the eBPF object with aya-build. `AYA_BUILD_SKIP=1` writes an empty
//! stub instead so `cargo check` and clippy stay fast and toolchain-free.
use std::{env, fs, path::PathBuf};

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    println!("cargo:rerun-if-env-changed=OOMTRACE_EBPF_TOOLCHAIN");
    if env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v == "true") {
        let out = PathBuf::from(env::var("OUT_DIR")?).join("oomtrace-ebpf");
        fs::write(out, [])?;
        return Ok(());
    }
    // `cargo xtask setup` installs bpf-linker here; a plain `cargo build`
    // should find it too.
    if let Ok(path) = env::var("PATH") {
        if !path.split(':').any(|p| p == "/opt/bpf-linker/bin") {
            env::set_var("PATH", format!("/opt/bpf-linker/bin:{path}"));
        }
    }
    let root_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../oomtrace-ebpf");
    let pkg = aya_build::Package {
        name: "oomtrace-ebpf",
        root_dir,
        ..Default::default()
    };
    // The toolchain with library sources for -Z build-std=core: Debian's
    // rustc-web linked as `debian-web` by default, or a nightly that has rust-src.
    let toolchain = env::var("OOMTRACE_EBPF_TOOLCHAIN").unwrap_or_else(|_| "debian-web".into());
    let toolchain: &'static str = Box::leak(toolchain.into_boxed_str());
    aya_build::build_ebpf([pkg], aya_build::Toolchain::Custom(toolchain))
}
