//! The kubelet's eviction thresholds for memory.available, from its config
//! file (`evictionHard`; `evictionSoft` with `evictionMaxPodGracePeriod`),
//! as the kubelet itself would read them.

use std::{fs, path::Path};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Amount {
    Bytes(u64),
    /// Hundredths of a percent of capacity.
    Percent(u32),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threshold {
    pub amount: Amount,
    /// Where it came from: the file, or the kubelet's default.
    pub source: String,
    /// `evictionSoft` memory.available, when the config sets one.
    pub soft: Option<Soft>,
}

/// A soft eviction threshold: the kubelet evicts under it (once it held
/// for `evictionSoftGracePeriod`) with `evictionMaxPodGracePeriod` as the
/// pods' grace period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Soft {
    pub amount: Amount,
    /// `evictionMaxPodGracePeriod` (seconds; 0, the default, means the
    /// kubelet's minimum of 2 s).
    pub max_pod_grace_s: u32,
    pub source: String,
}

impl Default for Threshold {
    fn default() -> Self {
        Threshold {
            amount: Amount::Bytes(100 << 20),
            source: "kubelet default memory.available<100Mi".into(),
            soft: None,
        }
    }
}

impl Threshold {
    pub fn bytes(&self, capacity: u64) -> u64 {
        match self.amount {
            Amount::Bytes(b) => b,
            Amount::Percent(h) => (capacity as u128 * h as u128 / 10_000) as u64,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KubeletConfig {
    #[serde(default)]
    eviction_hard: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    eviction_soft: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    eviction_max_pod_grace_period: Option<u32>,
}

/// Reads `evictionHard["memory.available"]`. A missing file or key means the
/// kubelet's default; an unreadable value is reported in `source` and the
/// default used, since the kubelet would refuse to start with it.
pub fn read_threshold(path: &Path) -> Threshold {
    let Ok(text) = fs::read_to_string(path) else {
        return Threshold::default();
    };
    parse_config(&text, &path.display().to_string())
}

pub fn parse_config(text: &str, origin: &str) -> Threshold {
    let config: KubeletConfig = match yaml_serde::from_str(text) {
        Ok(c) => c,
        Err(e) => {
            return Threshold {
                source: format!(
                    "{origin} unreadable ({e}); kubelet default memory.available<100Mi"
                ),
                ..Threshold::default()
            }
        }
    };
    let soft = config
        .eviction_soft
        .as_ref()
        .and_then(|m| m.get("memory.available"))
        .and_then(|value| {
            Some(Soft {
                amount: parse_amount(value)?,
                max_pod_grace_s: config.eviction_max_pod_grace_period.unwrap_or(0),
                source: format!("{origin} evictionSoft memory.available<{value}"),
            })
        });
    let hard = match config
        .eviction_hard
        .as_ref()
        .and_then(|m| m.get("memory.available"))
    {
        None => Threshold::default(),
        Some(value) => match parse_amount(value) {
            Some(amount) => Threshold { amount, source: format!("{origin} evictionHard memory.available<{value}"), soft: None },
            None => Threshold { source: format!("{origin}: cannot read memory.available<{value}; kubelet default memory.available<100Mi"), ..Threshold::default() },
        },
    };
    Threshold { soft, ..hard }
}

impl Soft {
    pub fn bytes(&self, capacity: u64) -> u64 {
        Threshold {
            amount: self.amount.clone(),
            source: String::new(),
            soft: None,
        }
        .bytes(capacity)
    }

    /// The longest SIGTERM → SIGKILL gap of this soft eviction: the pods'
    /// grace period (never under the kubelet's 2 s) and the runtime's slack.
    pub fn grace_ns(&self, slack_ns: u64) -> u64 {
        u64::from(self.max_pod_grace_s.max(2)) * 1_000_000_000 + slack_ns
    }
}

/// How late the runtime's SIGKILL may come after the grace period the
/// kubelet asked for: containerd's timer, then a fresh `runc kill`. On a
/// node it is milliseconds; in the emulated test VM on a busy machine a
/// 2 s grace's SIGKILL came 3.41 s after its SIGTERM (a recorded CI run).
pub const RUNTIME_SLACK_NS: u64 = 2_000_000_000;

/// How long an eviction waits for the kubelet's own line once its pod is
/// empty (the kubelet logs it as its kill returns).
pub const KUBELET_LOG_WAIT_NS: u64 = 5_000_000_000;

/// The longest SIGTERM → SIGKILL gap of a hard eviction: the kubelet gives
/// it a grace period of 1 s (older kubelets) or 2 s (current ones raise
/// anything under 2 s to 2 s); the rest is slack for the runtime
/// ([`RUNTIME_SLACK_NS`]).
pub const HARD_EVICTION_GRACE_NS: u64 = 2_000_000_000 + RUNTIME_SLACK_NS;

/// A Kubernetes quantity ("100Mi", "1G", "1.5Gi", "500000") or a percentage.
pub fn parse_amount(s: &str) -> Option<Amount> {
    let s = s.trim();
    if let Some(p) = s.strip_suffix('%') {
        let v: f64 = p.trim().parse().ok()?;
        return (0.0..=100.0)
            .contains(&v)
            .then(|| Amount::Percent((v * 100.0).round() as u32));
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        _ => return None,
    };
    let bytes = n * mult;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64)
        .then_some(Amount::Bytes(bytes as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_and_percentages() {
        assert_eq!(parse_amount("100Mi"), Some(Amount::Bytes(100 << 20)));
        assert_eq!(parse_amount("1.5Gi"), Some(Amount::Bytes(3 << 29)));
        assert_eq!(parse_amount("500M"), Some(Amount::Bytes(500_000_000)));
        assert_eq!(parse_amount("4096"), Some(Amount::Bytes(4096)));
        assert_eq!(parse_amount("10%"), Some(Amount::Percent(1000)));
        assert_eq!(parse_amount("7.5%"), Some(Amount::Percent(750)));
        assert_eq!(parse_amount("abc"), None);
        assert_eq!(parse_amount("10Xi"), None);
        assert_eq!(parse_amount("150%"), None);
        assert_eq!(
            Threshold {
                amount: Amount::Percent(1000),
                source: String::new(),
                soft: None,
            }
            .bytes(1000),
            100
        );
    }

    #[test]
    fn config_file_shapes() {
        let t = parse_config("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nevictionHard:\n  memory.available: \"200Mi\"\n  nodefs.available: \"10%\"\n", "cfg");
        assert_eq!(t.amount, Amount::Bytes(200 << 20));
        assert!(t.source.contains("cfg"));
        assert_eq!(
            parse_config("kind: KubeletConfiguration\n", "cfg"),
            Threshold::default()
        );
        let bad = parse_config("evictionHard: [", "cfg");
        assert_eq!(bad.amount, Threshold::default().amount);
        assert!(bad.source.contains("unreadable"));
        assert_eq!(
            read_threshold(Path::new("/nonexistent/kubelet.yaml")),
            Threshold::default()
        );
    }

    #[test]
    fn a_soft_threshold_with_its_grace_period() {
        let t = parse_config("evictionSoft:\n  memory.available: \"1Gi\"\nevictionSoftGracePeriod:\n  memory.available: \"1m30s\"\nevictionMaxPodGracePeriod: 20\n", "cfg");
        assert_eq!(
            t.amount,
            Threshold::default().amount,
            "the hard default stays"
        );
        let soft = t.soft.expect("the soft threshold");
        assert_eq!(soft.amount, Amount::Bytes(1 << 30));
        assert_eq!(soft.grace_ns(RUNTIME_SLACK_NS), 22_000_000_000);
        assert!(soft.source.contains("evictionSoft"));
        let t = parse_config("evictionSoft:\n  memory.available: \"10%\"\n", "cfg");
        assert_eq!(
            t.soft.map(|s| s.grace_ns(RUNTIME_SLACK_NS)),
            Some(4_000_000_000),
            "the 2 s minimum"
        );
    }
}
