//! `[metrics]`: how much of each station `/metrics` exposes.

use serde::{de::Error as _, Deserialize, Deserializer};

/// Which per-station series `/metrics` exposes.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum MetricsDetail {
    /// What the shipped alert rules and dashboards need, within a series budget.
    #[default]
    Compact,
    /// Every per-station series.
    Full,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    pub detail: MetricsDetail,
    /// Compact detail: a running window's ratio is exposed while it is at least this (the
    /// shipped rules' early-warning share)…
    #[serde(deserialize_with = "non_negative")]
    pub running_min_ratio: f64,
    /// …and the running window's capture at least this (0–1).
    #[serde(deserialize_with = "share")]
    pub running_min_capture: f64,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            detail: MetricsDetail::Compact,
            running_min_ratio: 0.8,
            running_min_capture: 0.5,
        }
    }
}

fn non_negative<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let x = f64::deserialize(d)?;
    if !(x >= 0.0 && x.is_finite()) {
        return Err(D::Error::custom("must be a number ≥ 0"));
    }
    Ok(x)
}

fn share<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let x = f64::deserialize(d)?;
    if !(0.0..=1.0).contains(&x) {
        return Err(D::Error::custom("must be in 0–1"));
    }
    Ok(x)
}
