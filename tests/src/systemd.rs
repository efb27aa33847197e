//! A systemd as a container's init (seed 001): Debian's own systemd from the
//! host's `/usr`, booted in a runc container of a kubelet-shaped pod, with
//! the host's cgroupfs bind-mounted as the Spin pods had it. With runc's
//! cgroupfs driver and no cgroup namespace the container's cgroup is its
//! systemd's root: it moves itself to `<container>/init.scope` and makes a
//! cgroup per unit below the container's (`<container>/system.slice/NAME.service`),
//! in every hierarchy it manages — on cgroup v1 the memory hierarchy and
//! its own named `name=systemd` one (or the hybrid `unified` tree), which
//! runc makes the container's path in as it does in every mounted hierarchy.
//!
//! The root filesystem ([`SystemdRoot`]) is built once per test process:
//! `/usr` is the host's, bound read-only (`/bin`, `/lib`, `/sbin` are the
//! merged-usr symlinks into it); `/etc` is small and ours (`os-release`, an
//! empty `machine-id` that systemd covers with a generated one, a root
//! user, the units a container has no use for masked, `multi-user.target`
//! the default); `/run`, `/tmp` and `/var` are tmpfs; `container=docker`
//! tells systemd it is one. The only capability beside containerd's
//! default set is CAP_SYS_ADMIN (systemd mounts its API filesystems).

use std::{
    fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    sync::OnceLock,
};

use crate::{
    bin,
    container::{
        cgroup_mounts, host_cgroupfs_mount, BindMount, Container, ContainerSpec, Exit, Pod,
    },
    memory_root, wait_until, CgroupVersion, DEADLINE,
};

/// Debian's systemd, from the host's `/usr`.
pub const SYSTEMD: &str = "/lib/systemd/systemd";
/// Where the memory hog is inside the container (bound from the host).
pub const HOG: &str = "/opt/oomtrace-hog";

/// Units a container cannot run or has no use for: terminals, logins,
/// devices (udev), and the bus (no dbus configuration in our `/etc`;
/// `systemctl` and `systemd-run` talk to systemd's private socket).
const MASKED: &[&str] = &[
    "getty.target",
    "console-getty.service",
    "getty@.service",
    "systemd-logind.service",
    "systemd-udevd.service",
    "systemd-udev-trigger.service",
    "systemd-udevd-control.socket",
    "systemd-udevd-kernel.socket",
    "dbus.service",
    "dbus.socket",
];

/// The root filesystem of systemd containers (read-only, shared).
pub struct SystemdRoot {
    pub dir: PathBuf,
}

impl SystemdRoot {
    /// Built on first use in `/tmp/oomtrace-e2e-systemd-<pid>` (those of
    /// test processes that are gone are removed then); panics with
    /// what is missing when the host cannot boot a systemd container.
    pub fn get() -> &'static SystemdRoot {
        static ROOT: OnceLock<SystemdRoot> = OnceLock::new();
        ROOT.get_or_init(SystemdRoot::build)
    }

    fn build() -> SystemdRoot {
        assert!(
            Path::new(SYSTEMD).exists() && Path::new("/usr/bin/systemd-run").exists(),
            "{SYSTEMD} and systemd-run are missing: apt-get install systemd"
        );
        // systemd needs a hierarchy to keep its units in: on v1 its named
        // one (or the hybrid unified tree), which runc then makes the
        // container's path in.
        let mounts = cgroup_mounts();
        if memory_root().1 == CgroupVersion::V1 {
            assert!(
                mounts
                    .iter()
                    .any(|m| m.ends_with("systemd") || m.ends_with("unified")),
                "systemd in a container on cgroup v1 needs the host's named systemd hierarchy \
                 (mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd) \
                 or a hybrid unified one; the host has: {mounts:?}"
            );
        }
        crate::container::remove_stale_dirs();
        let dir = PathBuf::from(format!("/tmp/oomtrace-e2e-systemd-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for d in [
            "usr",
            "etc/systemd/system",
            "proc",
            "sys",
            "dev",
            "run",
            "tmp",
            "var",
            "root",
        ] {
            fs::create_dir_all(dir.join(d)).unwrap_or_else(|e| panic!("mkdir {d}: {e}"));
        }
        for (link, to) in [("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib")] {
            symlink(to, dir.join(link)).unwrap_or_else(|e| panic!("{link}: {e}"));
        }
        if Path::new("/usr/lib64").exists() {
            symlink("usr/lib64", dir.join("lib64")).expect("lib64");
        }
        let etc = dir.join("etc");
        let os_release = fs::read("/usr/lib/os-release").expect("/usr/lib/os-release");
        fs::write(etc.join("os-release"), os_release).expect("os-release");
        fs::write(etc.join("machine-id"), "").expect("machine-id");
        fs::write(etc.join("passwd"), "root:x:0:0:root:/root:/bin/sh\n").expect("passwd");
        fs::write(etc.join("group"), "root:x:0:\n").expect("group");
        let units = etc.join("systemd/system");
        for unit in MASKED {
            symlink("/dev/null", units.join(unit)).expect("masking a unit");
        }
        symlink(
            "/usr/lib/systemd/system/multi-user.target",
            units.join("default.target"),
        )
        .expect("default.target");
        SystemdRoot { dir }
    }
}

/// A container of `pod` whose init is systemd (see the module's text), the
/// memory hog at [`HOG`].
pub fn container(pod: &Pod) -> ContainerSpec {
    let mut spec = pod
        .container(&[SYSTEMD])
        .mount(BindMount::ro("/usr", "/usr"))
        .mount(host_cgroupfs_mount())
        .mount(BindMount::ro(bin("oomtrace-hog"), HOG));
    spec.rootfs = Some(SystemdRoot::get().dir.clone());
    spec.env = vec![
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin".into(),
        "container=docker".into(),
    ];
    spec.tmpfs = vec!["/run".into(), "/var".into()];
    spec.sysfs = true;
    spec.extra_caps = vec!["CAP_SYS_ADMIN"];
    spec
}

/// Waits (up to [`DEADLINE`]) until the container's systemd has finished
/// booting (`systemctl is-system-running` says `running`); panics with its
/// failed units otherwise.
pub fn wait_booted(c: &Container) {
    let up = wait_until(DEADLINE, || {
        c.exec(&["systemctl", "is-system-running", "--quiet"])
            .wait()
            == Exit::Code(0)
    });
    if !up {
        let _ = c.exec(&["systemctl", "--failed", "--no-pager"]).wait();
        panic!(
            "systemd in container {} did not finish booting; output:\n{}",
            c.id,
            c.output()
        );
    }
}
