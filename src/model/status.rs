//! The park as the compliance stage sees it at one instant: every station's health, each
//! parameter's latest reading, limit, averaging windows and last day of hourly means, and the
//! latest rejections. Built by `compliance` at most once a second and handed to readers (the
//! status page, `/api/stations`) through a `tokio::sync::watch`, so a reader never touches the
//! pipeline's own state and never waits for it.
//!
//! Memory is O(stations × parameters × 24) numbers plus a bounded list of rejections; the
//! parts that did not change since the last snapshot are shared (`Arc`), not copied.

use std::sync::Arc;

use super::{Kind, Limit, Param, Reason, StationKey, Status};

/// How many recent rejections a snapshot keeps, newest first.
pub const RECENT_REJECTIONS: usize = 200;

/// A rejection's topic and detail are cut to this many bytes (on a character boundary): enough
/// to recognise a publisher's mistake, never a payload.
pub const EXCERPT_CHARS: usize = 160;

/// The state of one station, as the `quantrac_station_state` gauge shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HealthState {
    Ok,
    Silent,
    Fault,
    Calibrating,
    Stuck,
    /// A configured station not heard from since start-up, before it counts as silent. Not an
    /// exported state: every `quantrac_station_state` series of the station is 0, so nothing
    /// shows it `ok` before it has reported.
    Unheard,
}

impl HealthState {
    /// Every exported state, in the order of `metrics::STATION_STATES` ([`HealthState::Unheard`]
    /// is not one).
    pub const ALL: [HealthState; 5] = [
        HealthState::Ok,
        HealthState::Silent,
        HealthState::Fault,
        HealthState::Calibrating,
        HealthState::Stuck,
    ];

    /// The `state` label.
    pub fn label(self) -> &'static str {
        match self {
            HealthState::Ok => "ok",
            HealthState::Silent => "silent",
            HealthState::Fault => "fault",
            HealthState::Calibrating => "calibrating",
            HealthState::Stuck => "stuck",
            HealthState::Unheard => "unheard",
        }
    }
}

/// A snapshot of the whole park.
#[derive(Clone, Debug)]
pub struct ParkStatus {
    /// When it was built (Unix epoch milliseconds); `None` before the first one.
    pub at_ms: Option<i64>,
    /// The zone the park's windows are aligned to, for showing times.
    pub tz: chrono_tz::Tz,
    /// Configured stations in key order, then stations heard from but not configured.
    pub stations: Vec<Arc<StationStatus>>,
    /// The latest rejections, newest first, at most [`RECENT_REJECTIONS`].
    pub rejections: Arc<[RecentRejection]>,
}

impl ParkStatus {
    /// The snapshot before the compliance stage published any.
    pub fn empty(tz: chrono_tz::Tz) -> ParkStatus {
        ParkStatus {
            at_ms: None,
            tz,
            stations: Vec::new(),
            rejections: Arc::from(Vec::new()),
        }
    }
}

/// One station.
#[derive(Clone, Debug)]
pub struct StationStatus {
    pub key: StationKey,
    /// `None` for a station heard from but not in `stations.toml` (no permit, no verdict).
    pub kind: Option<Kind>,
    pub expected_interval_s: Option<u64>,
    pub state: HealthState,
    /// Receive time of its latest message with readings.
    pub last_message_ms: Option<i64>,
    /// Parameters whose value has not moved for `stuck_after_s`.
    pub stuck: Vec<Param>,
    /// Every parameter it reported or has a limit for, in table order.
    pub params: Arc<[ParamStatus]>,
}

/// One parameter of one station.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamStatus {
    pub param: Param,
    pub latest: Option<Latest>,
    pub limit: Option<Limit>,
    /// The station's averaging windows for this parameter, in configured order.
    pub windows: Vec<WindowStatus>,
    /// Hourly means of the last 24 hours, oldest first (only hours with a status-00 sample).
    /// Empty when no one-hour window is configured for the parameter.
    pub hourly: HourlyMeans,
    /// The most recent run of exceeded readings, ongoing or over.
    pub last_exceedance: Option<Exceedance>,
}

/// A run of consecutive exceeded readings (status 00, above the limit) of one parameter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Exceedance {
    /// Time of its first and of its last exceeded reading.
    pub from_ms: i64,
    pub to_ms: i64,
    /// The highest value compared to the limit (O2-corrected where that applies).
    pub peak: f64,
    pub peak_ratio: Option<f64>,
}

/// The newest reading of a parameter (by its own time) and its instantaneous verdict.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Latest {
    pub ts_ms: i64,
    /// `None` for a status event without a value (a fault or calibration reported alone).
    pub value: Option<f64>,
    /// O2-corrected value, when the correction applied (it is what the limit is compared to).
    pub value_ref: Option<f64>,
    pub status: Status,
    pub ratio: Option<f64>,
    pub exceeded: bool,
    /// Time of the first reading of the current run of exceeded readings.
    pub exceeding_since_ms: Option<i64>,
}

/// One averaging window of a parameter: the one still open and the latest closed valid one.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowStatus {
    pub label: Arc<str>,
    pub seconds: u64,
    /// The window holding "now", as it stands.
    pub running: Option<WindowMean>,
    /// The latest closed window that was valid: its `exceeded` is the window's verdict.
    pub closed: Option<WindowMean>,
}

/// The mean of one window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowMean {
    pub start_ms: i64,
    pub end_ms: i64,
    pub mean: f64,
    pub samples: u32,
    pub capture: f64,
    pub valid: bool,
    pub ratio: Option<f64>,
    pub exceeded: bool,
}

/// One hour of a parameter's hourly chart: what the chart and `/api/stations` show of it, in
/// half the room of a [`WindowMean`] (a province's snapshot holds a day of them per station
/// and parameter).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HourMean {
    pub start_ms: i64,
    pub mean: f64,
    pub capture: f64,
    pub valid: bool,
}

impl HourMean {
    pub const LEN_MS: i64 = 3_600_000;

    pub fn end_ms(&self) -> i64 {
        self.start_ms + Self::LEN_MS
    }
}

/// A parameter's hourly chart: the hours before the newest, shared (`Arc`) between a
/// station's successive descriptions while none of them changes, and the newest hour, made
/// afresh with each description. A station is described with every message; at a province's
/// scale rebuilding 24 hours of means each time meant fetching 24 windows per parameter from
/// memory that had long left the CPU's caches.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HourlyMeans {
    pub before: Arc<[HourMean]>,
    pub newest: Option<HourMean>,
}

impl HourlyMeans {
    pub fn iter(&self) -> impl Iterator<Item = &HourMean> {
        self.before.iter().chain(self.newest.as_ref())
    }

    pub fn len(&self) -> usize {
        self.before.len() + usize::from(self.newest.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn to_vec(&self) -> Vec<HourMean> {
        self.iter().copied().collect()
    }
}

impl FromIterator<HourMean> for HourlyMeans {
    fn from_iter<I: IntoIterator<Item = HourMean>>(iter: I) -> HourlyMeans {
        let mut all: Vec<HourMean> = iter.into_iter().collect();
        let newest = all.pop();
        HourlyMeans {
            before: all.into(),
            newest,
        }
    }
}

impl From<WindowMean> for HourMean {
    fn from(m: WindowMean) -> HourMean {
        HourMean {
            start_ms: m.start_ms,
            mean: m.mean,
            capture: m.capture,
            valid: m.valid,
        }
    }
}

/// A rejected reading or payload, without its payload.
#[derive(Clone, Debug, PartialEq)]
pub struct RecentRejection {
    pub received_at_ms: i64,
    /// The topic, cut to [`EXCERPT_CHARS`].
    pub topic: String,
    /// The station, when the topic named one.
    pub key: Option<StationKey>,
    pub reason: Reason,
    /// The human detail, cut to [`EXCERPT_CHARS`].
    pub detail: String,
}

/// `text` cut to at most `max` bytes on a character boundary, with `…` when cut.
pub fn excerpt(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_cut_on_a_character_boundary() {
        assert_eq!(excerpt("abc", 3), "abc");
        assert_eq!(excerpt("abcd", 3), "abc…");
        // "Đ" is two bytes: cutting after one byte would split it.
        assert_eq!(excerpt("ĐĐ", 3), "Đ…");
    }
}
