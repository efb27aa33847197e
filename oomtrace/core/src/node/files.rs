//! Plain readers of the kernel's one-value and key-value files (cgroupfs,
//! /proc): a file that is missing or does not parse reads as `None`.

use std::{collections::BTreeMap, fs, path::Path};

/// `memory.stat` keys → bytes.
pub fn read_kv(path: &Path) -> Option<BTreeMap<String, u64>> {
    let text = fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.to_string(), v.trim().parse().ok()?))
            })
            .collect(),
    )
}

pub fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}
