//! The hook families and the kinds of hook each can take, best first, and
//! what the user asked for with `--hooks`: the data behind the probe table
//! (the attach calls are in the daemon's `probe`).

use std::{collections::BTreeMap, fmt, str::FromStr};

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Per OOM invocation: `oom_kill_process`.
    Oom,
    /// Per killed process: `oom:mark_victim`.
    Victim,
    Cgroup,
    Signal,
    /// A memory cgroup entering reclaim (`vmscan:mm_vmscan_memcg_reclaim_begin`).
    Pressure,
    /// Per-cgroup charge counters (`memcg:mod_memcg_lruvec_state`): loaded at
    /// start, attached only while some cgroup is under pressure. Off unless
    /// asked for (see [`Family::off_by_default`]).
    Charge,
}

impl Family {
    pub const ALL: [Family; 6] = [
        Family::Oom,
        Family::Victim,
        Family::Cgroup,
        Family::Signal,
        Family::Pressure,
        Family::Charge,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::Oom => "oom",
            Family::Victim => "victim",
            Family::Cgroup => "cgroup",
            Family::Signal => "signal",
            Family::Pressure => "pressure",
            Family::Charge => "charge",
        }
    }

    /// Without these oomtrace cannot give verdicts at all.
    pub fn required(self) -> bool {
        matches!(self, Family::Victim)
    }

    /// Why a family stays off unless `--hooks` asks for it. The charge
    /// tracepoint fires several times per page fault on every cgroup of the
    /// node, and some container is under memcg pressure on most busy nodes,
    /// so "armed only under pressure" is often "armed": measured 20 % of a
    /// page-fault storm's CPU on this machine (BENCHMARKS.md). The page
    /// counters read at pressure and at the kill give the growth without it.
    pub fn off_by_default(self) -> Option<&'static str> {
        match self {
            Family::Charge => Some(
                "off by default: while armed it costs every page charge on the node \
                 (BENCHMARKS.md); growth comes from the page counters read at pressure and \
                 at the kill; --hooks charge=tracepoint turns it on",
            ),
            _ => None,
        }
    }

    pub fn candidates(self) -> &'static [HookKind] {
        match self {
            Family::Oom => &[HookKind::Fentry, HookKind::Kprobe],
            Family::Victim => &[HookKind::TpBtf, HookKind::RawTp, HookKind::Tracepoint],
            Family::Signal => &[HookKind::TpBtf, HookKind::Tracepoint],
            Family::Cgroup | Family::Pressure | Family::Charge => &[HookKind::Tracepoint],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HookKind {
    Fentry,
    Kprobe,
    TpBtf,
    RawTp,
    Tracepoint,
}

impl HookKind {
    pub fn name(self) -> &'static str {
        match self {
            HookKind::Fentry => "fentry",
            HookKind::Kprobe => "kprobe",
            HookKind::TpBtf => "tp_btf",
            HookKind::RawTp => "raw_tp",
            HookKind::Tracepoint => "tracepoint",
        }
    }
}

impl fmt::Display for HookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the user asked for one family with `--hooks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Auto,
    Off,
    Only(HookKind),
}

#[derive(Debug, thiserror::Error)]
pub enum HooksArgError {
    #[error("`{0}` is not FAMILY=KIND (e.g. oom=kprobe,victim=tracepoint)")]
    Shape(String),
    #[error("unknown hook family `{0}` (families: oom, victim, cgroup, signal, pressure, charge)")]
    Family(String),
    #[error(
        "`{kind}` is not a hook kind for family `{family}` (choose from: auto, off, {choices})"
    )]
    Kind {
        family: String,
        kind: String,
        choices: String,
    },
    #[error("the `{0}` family cannot be turned off: oomtrace needs it for verdicts")]
    Required(String),
}

/// `--hooks FAMILY=KIND,...`, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookRequests(BTreeMap<Family, Request>);

impl HookRequests {
    pub fn get(&self, family: Family) -> Request {
        self.0.get(&family).copied().unwrap_or(Request::Auto)
    }
}

impl FromStr for HookRequests {
    type Err = HooksArgError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut map = BTreeMap::new();
        if s.trim() == "auto" || s.trim().is_empty() {
            return Ok(HookRequests(map));
        }
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (fam, kind) = part
                .split_once('=')
                .ok_or_else(|| HooksArgError::Shape(part.into()))?;
            let family = Family::ALL
                .into_iter()
                .find(|f| f.name() == fam.trim())
                .ok_or_else(|| HooksArgError::Family(fam.trim().into()))?;
            let request = match kind.trim() {
                "auto" => Request::Auto,
                "off" if family.required() => return Err(HooksArgError::Required(fam.into())),
                "off" => Request::Off,
                k => Request::Only(
                    family
                        .candidates()
                        .iter()
                        .copied()
                        .find(|c| c.name() == k)
                        .ok_or_else(|| HooksArgError::Kind {
                            family: fam.into(),
                            kind: k.into(),
                            choices: family
                                .candidates()
                                .iter()
                                .map(|c| c.name())
                                .collect::<Vec<_>>()
                                .join(", "),
                        })?,
                ),
            };
            map.insert(family, request);
        }
        Ok(HookRequests(map))
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    pub kind: HookKind,
    pub reason: String,
}

/// The outcome for one family.
#[derive(Clone, Debug, Serialize)]
pub struct Choice {
    pub family: Family,
    pub chosen: Option<HookKind>,
    pub skipped: Vec<Skipped>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_arg_parses_and_validates() {
        let r: HookRequests = "oom=kprobe, victim=tracepoint".parse().expect("valid");
        assert_eq!(r.get(Family::Oom), Request::Only(HookKind::Kprobe));
        assert_eq!(r.get(Family::Victim), Request::Only(HookKind::Tracepoint));
        assert_eq!(r.get(Family::Cgroup), Request::Auto);
        assert_eq!(
            "auto".parse::<HookRequests>().expect("auto"),
            HookRequests::default()
        );
        assert!(matches!(
            "oom".parse::<HookRequests>(),
            Err(HooksArgError::Shape(_))
        ));
        assert!(matches!(
            "mem=kprobe".parse::<HookRequests>(),
            Err(HooksArgError::Family(_))
        ));
        assert!(matches!(
            "victim=kprobe".parse::<HookRequests>(),
            Err(HooksArgError::Kind { .. })
        ));
        assert!(matches!(
            "victim=off".parse::<HookRequests>(),
            Err(HooksArgError::Required(_))
        ));
        assert_eq!(
            "oom=off"
                .parse::<HookRequests>()
                .expect("off")
                .get(Family::Oom),
            Request::Off
        );
    }
}
