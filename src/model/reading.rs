//! Readings, rejections and verdicts.

use std::fmt;
use std::sync::Arc;

use super::Param;

/// Where a reading came from: park, site and station, each an identifier matching
/// `[A-Za-z0-9_.-]{1,64}`. Built only through [`StationKey::parse`], so later code never
/// re-checks. Cheap to clone (one `Arc`).
///
/// Equality and ordering compare the three identifiers, but first check whether both keys
/// share one `Arc`: the decoder hands out one key per topic, so equal keys are nearly always
/// the same allocation and per-reading map lookups skip the string comparisons.
#[derive(Clone)]
pub struct StationKey(Arc<(String, String, String)>);

impl PartialEq for StationKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Eq for StationKey {}

impl PartialOrd for StationKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for StationKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            std::cmp::Ordering::Equal
        } else {
            self.0.cmp(&other.0)
        }
    }
}

/// Hashes the identifiers (never the pointer), so equal keys from different allocations hash
/// alike, as `Eq` requires.
impl std::hash::Hash for StationKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl StationKey {
    /// Validates the three identifiers; the error names the first bad one.
    pub fn parse(park: &str, site: &str, station: &str) -> Result<StationKey, String> {
        for (what, v) in [("park", park), ("site", site), ("station", station)] {
            if !is_identifier(v) {
                return Err(format!(
                    "{what} {v:?} is not an identifier ([A-Za-z0-9_.-]{{1,64}})"
                ));
            }
        }
        Ok(StationKey(Arc::new((
            park.to_owned(),
            site.to_owned(),
            station.to_owned(),
        ))))
    }

    /// The same allocation (so certainly the same key); `false` says nothing. A check that
    /// reads no string, for a lookup that has a slower, exact one to fall back on.
    pub fn is_same(&self, other: &StationKey) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    pub fn park(&self) -> &str {
        &self.0 .0
    }
    pub fn site(&self) -> &str {
        &self.0 .1
    }
    pub fn station(&self) -> &str {
        &self.0 .2
    }
}

/// `[A-Za-z0-9_.-]{1,64}`: safe as an InfluxDB tag, a Prometheus label and a file name.
pub fn is_identifier(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl fmt::Display for StationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.park(), self.site(), self.station())
    }
}

impl fmt::Debug for StationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StationKey({self})")
    }
}

/// Instrument status codes of Circular 10/2021/TT-BTNMT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// `00`: measuring normally. Only these readings take part in compliance.
    Normal,
    /// `01`: calibrating.
    Calibrating,
    /// `02`: device fault.
    Fault,
}

impl Status {
    pub fn parse(code: &str) -> Option<Status> {
        match code.trim() {
            "00" | "0" => Some(Status::Normal),
            "01" | "1" => Some(Status::Calibrating),
            "02" | "2" => Some(Status::Fault),
            _ => None,
        }
    }

    /// The two-digit code as stored.
    pub fn code(self) -> &'static str {
        match self {
            Status::Normal => "00",
            Status::Calibrating => "01",
            Status::Fault => "02",
        }
    }
}

/// One measured value in its parameter's canonical unit, checked to be finite and physically
/// possible. `ts_ms` is the reading's own time (Unix epoch milliseconds, UTC).
///
/// `value` is `None` only for a *status event*: an analyser calibrating (`01`) or in fault
/// (`02`) that reported its status without a number, as dataloggers do (an empty or `null`
/// value). It is stored and drives the station's state like any reading, and takes no part in
/// verdicts or windows (only status `00` does, and a status `00` reading always has a value).
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    pub key: StationKey,
    pub param: Param,
    pub ts_ms: i64,
    pub value: Option<f64>,
    pub status: Status,
}

/// Why a reading or a payload was refused. The labels are the contract's `reason` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Not JSON nor Circular 10/2021 text, or a reading lacks a field or has the wrong type.
    Malformed,
    /// The topic matches no template or captures an invalid identifier.
    Topic,
    /// The parameter symbol is not in the table.
    UnknownParam,
    /// The unit does not convert to the parameter's canonical unit.
    Unit,
    /// Not finite, or outside the physically possible range.
    Value,
    /// Missing, unparsable or implausible time.
    Timestamp,
    /// The payload is larger than `mqtt.max_payload_bytes`.
    TooLarge,
    /// The topic names a station that is not in `stations.toml` (with `stations.unknown =
    /// "reject"`, or beyond `stations.max_unknown_stations`).
    UnknownStation,
}

impl Reason {
    pub const ALL: [Reason; 8] = [
        Reason::Malformed,
        Reason::Topic,
        Reason::UnknownParam,
        Reason::Unit,
        Reason::Value,
        Reason::Timestamp,
        Reason::TooLarge,
        Reason::UnknownStation,
    ];

    /// The `reason` label of `quantrac_readings_rejected_total`.
    pub fn as_label(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::Topic => "topic",
            Reason::UnknownParam => "unknown_param",
            Reason::Unit => "unit",
            Reason::Value => "value",
            Reason::Timestamp => "timestamp",
            Reason::TooLarge => "too_large",
            Reason::UnknownStation => "unknown_station",
        }
    }

    pub fn from_label(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_label() == s)
    }
}

/// A refused reading (or a whole payload, when `index` is `None`), with a human detail such as
/// `unit "ppb" does not convert to mg/Nm3 for SO2`.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    pub reason: Reason,
    pub detail: String,
    /// Position of the reading in the payload (0-based), `None` for the whole payload.
    pub index: Option<usize>,
}

/// Where a limit comes from, for `check-config` and for the audit trail.
#[derive(Clone, Debug, PartialEq)]
pub enum LimitSource {
    /// The station's own permit (`[station.limits]`).
    Permit,
    /// A regulation table entry with the coefficients applied, e.g.
    /// `QCVN 40:2011/BTNMT Table 1 col B × Kq 0.9 × Kf 1.0`.
    /// `text` is shared: the stations of a park mostly have the same one, and a limit is
    /// cloned into every judged reading.
    Regulation {
        text: std::sync::Arc<str>,
        unverified: bool,
    },
}

/// The limit that applies to one station × parameter, in the canonical unit.
#[derive(Clone, Debug, PartialEq)]
pub struct Limit {
    pub max: Option<f64>,
    pub min: Option<f64>,
    pub source: LimitSource,
}

/// A reading after compliance: its O2-corrected value, the limit and the instantaneous verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct Judged {
    pub reading: Reading,
    /// O2-corrected value (`C × (20.9 − O2ref) / (20.9 − O2)`) when it was applied.
    pub value_ref: Option<f64>,
    pub limit: Option<Limit>,
    /// The compared value ÷ `limit.max`.
    pub ratio: Option<f64>,
    /// Instantaneous verdict; always false when the status is not `00`.
    pub exceeded: bool,
}

/// One compliance window (`1h`, `24h`, …) of one station × parameter: the `average`
/// measurement. `start_ms` is the window's start, aligned to the clock (hours) or to local days.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowPoint {
    pub key: StationKey,
    pub param: Param,
    pub window: String,
    pub start_ms: i64,
    pub mean: f64,
    pub samples: u32,
    pub capture: f64,
    pub valid: bool,
    pub limit_max: Option<f64>,
    pub ratio: Option<f64>,
    pub exceeded: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_follow_the_contract_pattern() {
        assert!(StationKey::parse("nam-dinh-vu", "nd_textile.2", "outfall-1").is_ok());
        assert!(StationKey::parse("", "a", "b").is_err());
        assert!(StationKey::parse("a", "b c", "d").is_err());
        assert!(StationKey::parse("a", "b", &"x".repeat(65)).is_err());
        assert!(StationKey::parse("a", "b", &"x".repeat(64)).is_ok());
        assert!(StationKey::parse("a", "tr\u{1ea1}m", "d").is_err());
    }

    #[test]
    fn reason_labels_are_the_contract_list() {
        let labels: Vec<_> = Reason::ALL.iter().map(|r| r.as_label()).collect();
        assert_eq!(
            labels,
            [
                "malformed",
                "topic",
                "unknown_param",
                "unit",
                "value",
                "timestamp",
                "too_large",
                "unknown_station"
            ]
        );
        for r in Reason::ALL {
            assert_eq!(Reason::from_label(r.as_label()), Some(r));
        }
    }

    #[test]
    fn status_codes_are_circular_10_2021() {
        assert_eq!(Status::parse("00"), Some(Status::Normal));
        assert_eq!(Status::parse("01"), Some(Status::Calibrating));
        assert_eq!(Status::parse("02"), Some(Status::Fault));
        assert_eq!(Status::parse("07"), None);
        assert_eq!(Status::Fault.code(), "02");
    }
}
