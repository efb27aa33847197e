//! Where the kubelet's config file is when `--kubelet-config` is not given:
//! the places the common distributions put it, looked up once at start.
//! The file itself is read by `oomtrace_core::node::kubelet` (YAML, so JSON too:
//! EKS writes JSON).

use std::path::{Path, PathBuf};

/// The known places, first found wins, with who puts a file there.
pub const KNOWN: &[(&str, &str)] = &[
    // kubeadm, and the installers built on it (kubespray, Cluster API).
    ("/var/lib/kubelet/config.yaml", "kubeadm"),
    // Amazon Linux 2023's nodeadm.
    ("/etc/kubernetes/kubelet/config.json", "EKS (AL2023)"),
    // Amazon Linux 2's bootstrap.sh.
    ("/etc/kubernetes/kubelet/kubelet-config.json", "EKS (AL2)"),
    ("/home/kubernetes/kubelet-config.yaml", "GKE"),
    // k3s 1.32 and later: its defaults as the first drop-in of the
    // directory it passes as the kubelet's --config-dir. Older k3s passes
    // everything as flags, which no file shows.
    (K3S_DEFAULTS, "k3s"),
];

const K3S_DEFAULTS: &str = "/var/lib/rancher/k3s/agent/etc/kubelet.conf.d/00-k3s-defaults.conf";

/// Where the kubelet config came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// `--kubelet-config PATH`: used as given, present or not.
    Given(PathBuf),
    /// The first of [`KNOWN`] that is a file, and whose it is.
    Known(PathBuf, &'static str),
    /// None of them: the kubelet's defaults are assumed.
    None,
}

impl Found {
    /// The path to read: empty when none was found (the reader then takes
    /// the kubelet's defaults, as for a missing file).
    pub fn path(&self) -> PathBuf {
        match self {
            Found::Given(p) | Found::Known(p, _) => p.clone(),
            Found::None => PathBuf::new(),
        }
    }
}

/// `--kubelet-config` if given, else the first known place under `root`
/// (`/` on the node and in the DaemonSet, which mounts each place at its
/// own path).
pub fn resolve(given: Option<&Path>, root: &Path) -> Found {
    if let Some(p) = given {
        return Found::Given(p.to_path_buf());
    }
    for (path, who) in KNOWN {
        let p = root.join(path.trim_start_matches('/'));
        if p.is_file() {
            return Found::Known(p, who);
        }
    }
    Found::None
}

/// Other drop-ins beside k3s' defaults, which the kubelet merges after
/// it and oomtrace does not: a threshold set there is not seen.
pub fn unmerged_drop_ins(found: &Path) -> Vec<PathBuf> {
    let Some(dir) = found.parent() else {
        return Vec::new();
    };
    if !found.ends_with(
        Path::new(K3S_DEFAULTS)
            .file_name()
            .map(Path::new)
            .unwrap_or(Path::new("")),
    ) {
        return Vec::new();
    }
    let mut others: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "conf") && p != found)
                .collect()
        })
        .unwrap_or_default();
    others.sort();
    others
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[&str]) -> PathBuf {
        let root = std::env::temp_dir().join(format!(
            "oomtrace-kubelet-config-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        for f in files {
            let p = root.join(f.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, "evictionHard:\n  memory.available: 1Gi\n").expect("write");
        }
        std::fs::create_dir_all(&root).expect("root");
        root
    }

    #[test]
    fn a_given_path_is_used_as_given() {
        let root = tree(&["/var/lib/kubelet/config.yaml"]);
        let given = Path::new("/elsewhere/kubelet.yaml");
        assert_eq!(
            resolve(Some(given), &root),
            Found::Given(given.to_path_buf())
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn each_known_place_is_found() {
        for (path, who) in KNOWN {
            let root = tree(&[path]);
            assert_eq!(
                resolve(None, &root),
                Found::Known(root.join(path.trim_start_matches('/')), who),
                "{path}"
            );
            let _ = std::fs::remove_dir_all(&root);
        }
        let root = tree(&[]);
        assert_eq!(resolve(None, &root), Found::None);
        assert_eq!(Found::None.path(), PathBuf::new());
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn kubeadm_first_and_a_directory_is_no_file() {
        let root = tree(&[
            "/etc/kubernetes/kubelet/kubelet-config.json",
            "/var/lib/kubelet/config.yaml",
        ]);
        assert_eq!(
            resolve(None, &root),
            Found::Known(root.join("var/lib/kubelet/config.yaml"), "kubeadm")
        );
        let _ = std::fs::remove_dir_all(&root);
        // A missing file mounted with `type: ""` may leave a directory.
        let root = tree(&["/home/kubernetes/kubelet-config.yaml"]);
        std::fs::create_dir_all(root.join("var/lib/kubelet/config.yaml")).expect("mkdir");
        assert_eq!(
            resolve(None, &root).path(),
            root.join("home/kubernetes/kubelet-config.yaml")
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn k3s_drop_ins_beside_its_defaults_are_named() {
        let root = tree(&[
            K3S_DEFAULTS,
            "/var/lib/rancher/k3s/agent/etc/kubelet.conf.d/50-site.conf",
        ]);
        let found = resolve(None, &root).path();
        assert_eq!(
            unmerged_drop_ins(&found),
            vec![root.join("var/lib/rancher/k3s/agent/etc/kubelet.conf.d/50-site.conf")]
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    /// EKS writes JSON: the reader takes it (YAML is a superset of JSON).
    #[test]
    fn a_json_config_is_read() {
        let t = oomtrace_core::node::kubelet::parse_config(
            r#"{"kind":"KubeletConfiguration","apiVersion":"kubelet.config.k8s.io/v1beta1","evictionHard":{"memory.available":"200Mi","nodefs.available":"10%"}}"#,
            "eks",
        );
        assert_eq!(
            t.amount,
            oomtrace_core::node::kubelet::Amount::Bytes(200 << 20),
            "{t:?}"
        );
    }
}
