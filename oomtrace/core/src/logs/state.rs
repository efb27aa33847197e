//! What oomtrace remembers across restarts: how far it has read the kernel
//! log in this boot, and the kernel's OOM kill count then. A restart reports
//! the kills it missed while down, once.

use std::{fs, io::Write, path::Path};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// /proc/sys/kernel/random/boot_id: a sequence number means nothing in
    /// another boot.
    pub boot_id: String,
    /// The last /dev/kmsg sequence number whose OOM lines were handled.
    pub kmsg_seq: Option<u64>,
    /// /proc/vmstat `oom_kill` when the state was written.
    pub oom_kill: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("reading the state file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the state file {path} is damaged ({source}); delete it to start afresh")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("writing the state file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

pub fn boot_id() -> String {
    procfs::sys::kernel::random::boot_id().unwrap_or_default()
}

/// /proc/vmstat `oom_kill`: every OOM kill this boot (kernels since 4.13).
pub fn vmstat_oom_kill() -> Option<u64> {
    oom_kill(&<procfs::VmStat as procfs::Current>::current().ok()?)
}

fn oom_kill(vmstat: &procfs::VmStat) -> Option<u64> {
    vmstat
        .0
        .get("oom_kill")
        .and_then(|&n| u64::try_from(n).ok())
}

/// The state for this boot: `None` when there is no file or it is from
/// another boot (then everything in the kernel log is new to us).
pub fn load(path: &Path) -> Result<Option<State>, StateError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                path: path.display().to_string(),
                source,
            })
        }
    };
    let state: State = serde_json::from_str(&text).map_err(|source| StateError::Parse {
        path: path.display().to_string(),
        source,
    })?;
    Ok((state.boot_id == boot_id()).then_some(state))
}

/// Written to a temporary file and renamed: a crash never leaves half a state.
pub fn save(path: &Path, state: &State) -> Result<(), StateError> {
    let err = |source| StateError::Write {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            fs::create_dir_all(dir).map_err(err)?;
        }
    }
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(err)?;
    f.write_all(&serde_json::to_vec(state).unwrap_or_default())
        .map_err(err)?;
    f.sync_all().map_err(err)?;
    fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmstat_and_boot_id() {
        let vmstat = |t: &str| <procfs::VmStat as procfs::FromBufRead>::from_buf_read(t.as_bytes());
        let v = vmstat("nr_free_pages 1024\noom_kill 7\npgfault 99\n").expect("vmstat");
        assert_eq!(oom_kill(&v), Some(7));
        let v = vmstat("nr_free_pages 1024\n").expect("vmstat");
        assert_eq!(oom_kill(&v), None, "kernels before 4.13 have no oom_kill");
        if let Ok(text) = fs::read_to_string("/proc/vmstat") {
            assert_eq!(
                vmstat_oom_kill().is_some(),
                text.lines().any(|l| l.starts_with("oom_kill "))
            );
            let id = boot_id();
            assert_eq!(id.len(), 36, "{id:?}");
            assert_eq!(id, id.trim());
        }
    }

    #[test]
    fn round_trip_and_other_boots() {
        let dir = std::env::temp_dir().join(format!("oomtrace-state-{}", std::process::id()));
        let path = dir.join("state.json");
        assert_eq!(load(&path).expect("missing is fine"), None);
        let s = State {
            boot_id: boot_id(),
            kmsg_seq: Some(42),
            oom_kill: Some(3),
        };
        save(&path, &s).expect("save");
        assert_eq!(load(&path).expect("load"), Some(s));
        save(
            &path,
            &State {
                boot_id: "another-boot".into(),
                kmsg_seq: Some(1),
                oom_kill: None,
            },
        )
        .expect("save");
        assert_eq!(
            load(&path).expect("load"),
            None,
            "a state from another boot is ignored"
        );
        fs::write(&path, "{not json").expect("write");
        assert!(matches!(load(&path), Err(StateError::Parse { .. })));
        let _ = fs::remove_dir_all(dir);
    }
}
