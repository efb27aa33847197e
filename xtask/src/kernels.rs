//! The kernels the VM suite boots besides Debian 12's 6.1 (which the host
//! installs from its own archive): Debian's packages of other releases,
//! downloaded with apt into a cache of their own and unpacked there, never
//! installed on the host. apt runs with a private sources list, lists and
//! archive cache, and no dpkg status, so the host's apt state is untouched.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _};

/// Where the packages are downloaded and unpacked (kept across runs: a
/// present kernel is not downloaded again). `OOMTRACE_KERNEL_CACHE`
/// overrides.
const CACHE: &str = "/var/cache/oomtrace-kernels";
/// Debian's archive key, which signs bullseye and trixie as well.
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
const MIRROR: &str = "http://deb.debian.org/debian";

/// A kernel package of a Debian suite, pinned: a newer upload changes the
/// package's name (its ABI number), and the matrix in docs/kernels.md is
/// about exactly this build.
#[derive(Clone, Copy, Debug)]
pub struct Package {
    pub suite: &'static str,
    pub name: &'static str,
    /// The image's file name under `boot/`. vng finds the modules beside
    /// it itself (`lib/modules`, or `usr/lib/modules` as Debian 13 keeps
    /// them).
    pub image: &'static str,
}

fn cache() -> PathBuf {
    std::env::var_os("OOMTRACE_KERNEL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(CACHE))
}

/// The kernel image of `pkg`, downloaded and unpacked first when missing
/// (about 10 s per package on a fresh machine).
pub fn image(pkg: &Package) -> anyhow::Result<PathBuf> {
    let root = cache();
    let tree = root.join("x").join(pkg.name);
    let image = tree.join("boot").join(pkg.image);
    if !image.exists() {
        unpack(&root, pkg, &tree)?;
    }
    Ok(image)
}

fn unpack(root: &Path, pkg: &Package, tree: &Path) -> anyhow::Result<()> {
    if !Path::new(KEYRING).exists() {
        bail!("{KEYRING} is missing (Debian: apt-get install debian-archive-keyring)");
    }
    for d in ["lists/partial", "cache/archives/partial", "deb", "x"] {
        let d = root.join(d);
        fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    }
    let sources = root.join("sources.list");
    let list: String = SUITES
        .iter()
        .map(|s| format!("deb [signed-by={KEYRING}] {MIRROR} {s} main\n"))
        .collect();
    fs::write(&sources, list).with_context(|| format!("writing {}", sources.display()))?;
    let opts = [
        format!("Dir::Etc::SourceList={}", sources.display()),
        "Dir::Etc::SourceParts=/dev/null".to_string(),
        format!("Dir::State::Lists={}", root.join("lists").display()),
        format!("Dir::Cache={}", root.join("cache").display()),
        // No dpkg status: apt neither reads nor writes the host's.
        "Dir::State::status=/dev/null".to_string(),
        // The cache is root's: apt's unprivileged download user could not
        // write it (apt says so, then downloads as root anyway).
        "APT::Sandbox::User=root".to_string(),
    ];
    let apt = |args: &[&str], dir: &Path| -> anyhow::Result<()> {
        let mut c = Command::new("apt-get");
        c.current_dir(dir).arg("-q");
        for o in &opts {
            c.args(["-o", o]);
        }
        let status = c
            .args(args)
            .status()
            .with_context(|| format!("running apt-get {}", args.join(" ")))?;
        if !status.success() {
            bail!("apt-get {} failed ({status})", args.join(" "));
        }
        Ok(())
    };
    eprintln!(
        "vm: downloading Debian {}'s {} into {}",
        pkg.suite,
        pkg.name,
        root.display()
    );
    apt(&["update"], root)?;
    let debs = root.join("deb");
    apt(&["download", pkg.name], &debs)?;
    let deb = fs::read_dir(&debs)
        .with_context(|| format!("reading {}", debs.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{}_", pkg.name)))
        })
        .with_context(|| format!("apt-get download left no {}_*.deb", pkg.name))?;
    // Unpacked beside, then renamed: an interrupted unpack leaves no tree
    // that looks complete.
    let partial = tree.with_extension("partial");
    if partial.exists() {
        fs::remove_dir_all(&partial)?;
    }
    let status = Command::new("dpkg")
        .arg("-x")
        .arg(&deb)
        .arg(&partial)
        .status()
        .context("running dpkg -x")?;
    if !status.success() {
        bail!("dpkg -x {} failed ({status})", deb.display());
    }
    fs::rename(&partial, tree)
        .with_context(|| format!("renaming {} to {}", partial.display(), tree.display()))?;
    Ok(())
}

/// The suites [`unpack`]'s sources list names (every package's).
const SUITES: &[&str] = &["bullseye", "trixie"];
