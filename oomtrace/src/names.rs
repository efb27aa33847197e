//! Pod and container names from the kubelet's log directories, which every
//! node has without an API call: `<pods-log-dir>/<namespace>_<pod>_<uid>/`
//! and `<containers-log-dir>/<pod>_<namespace>_<container>-<id>.log`.
//! Read at verdict time (rare), so a pod started a second ago is found.
//! A name that is not there stays null.

use std::{fs, path::PathBuf};

use crate::{
    pods::{parse_container_log_name, parse_pod_log_dir},
    verdict::Verdict,
};

pub struct Names {
    pods_log_dir: PathBuf,
    containers_log_dir: PathBuf,
}

impl Names {
    pub fn new(pods_log_dir: PathBuf, containers_log_dir: PathBuf) -> Self {
        Names {
            pods_log_dir,
            containers_log_dir,
        }
    }

    pub fn fill(&self, v: &mut Verdict) {
        if let Some(pod) = v.pod.as_mut() {
            if let Ok(entries) = fs::read_dir(&self.pods_log_dir) {
                let found = entries
                    .flatten()
                    .filter_map(|e| e.file_name().to_str().and_then(parse_pod_log_dir))
                    .find(|p| p.uid == pod.uid);
                if let Some(p) = found {
                    pod.namespace = Some(p.namespace);
                    pod.name = Some(p.name);
                }
            }
        }
        if let Some(container) = v.container.as_mut() {
            if let Ok(entries) = fs::read_dir(&self.containers_log_dir) {
                let found = entries
                    .flatten()
                    .filter_map(|e| e.file_name().to_str().and_then(parse_container_log_name))
                    .find(|c| c.id == container.id);
                if let Some(c) = found {
                    container.name = Some(c.container);
                }
            }
        }
    }
}
