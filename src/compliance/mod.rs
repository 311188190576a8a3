//! The compliance stage's core: what the permit and the regulation say about each reading.
//!
//! - [`catalogue`] — the QCVN tables as data files (`regulations/*.toml`), each value tagged
//!   verified / corroborated / unverified.
//! - [`limits`] — limit resolution: permit entry first, else table value × coefficients.
//! - [`o2`] — O2 normalisation of stack concentrations.
//! - [`windows`] — clock-aligned averaging windows with data capture and validity.
//! - [`health`] — silent / fault / calibrating / stuck stations.
//!
//! Everything here is a function of `(state, readings, now)`: no I/O, no clock reads, no
//! metrics. The stage's task feeds [`Engine::judge`] one message at a time, calls
//! [`Engine::tick`] on a timer to close windows, and reads [`Engine::window_states`] and
//! [`Engine::health`] for the gauges.

pub mod catalogue;
pub mod health;
pub mod limits;
pub mod o2;
mod run;
mod table;
pub mod windows;

use std::collections::{BTreeMap, BTreeSet};

use chrono_tz::Tz;

use crate::config::Stations;
use crate::model::{Judged, Limit, Param, Reading, StationKey, Status, WindowPoint};

pub use catalogue::{Catalogue, CatalogueError};
pub use health::{HealthState, StationHealth};
pub use run::{run, windows_record, PendingWindows, WINDOWS_TOPIC};
pub use table::render_limit_table;

use windows::Series;

/// Late readings are windowed for at least this long after their window closed.
pub const MIN_LATE_HORIZON_MS: i64 = 48 * 3_600_000;

/// One row of `check-config`'s limit table.
#[derive(Clone, Debug, PartialEq)]
pub struct LimitRow {
    pub key: StationKey,
    pub param: Param,
    pub limit: Limit,
    /// Averaging windows of this parameter (`1h`, `24h`, …).
    pub windows: Vec<String>,
    /// The reference O2 the value is corrected to before comparison, when it is.
    pub o2_ref: Option<f64>,
}

/// The averaging state of one station × parameter × window, for the gauges.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowState {
    pub key: StationKey,
    pub param: Param,
    pub window: String,
    /// The latest closed window that was valid: its `ratio` and `exceeded` are the window's
    /// verdict (`quantrac_limit_ratio`, `quantrac_exceedance`).
    pub closed: Option<WindowPoint>,
    /// The window still open at the latest time the engine was given, as it stands: `mean`,
    /// `ratio`, `capture` for early warnings. Its `valid`/`exceeded` are computed as if it
    /// closed now, so they are not a verdict.
    pub running: Option<WindowPoint>,
}

/// Limits, O2 correction, instantaneous verdicts, windows and station health.
#[derive(Debug)]
pub struct Engine {
    stations: Stations,
    tz: Tz,
    limits: BTreeMap<(StationKey, Param), Limit>,
    warnings: Vec<String>,
    /// Per station × parameter, one series per window length.
    series: BTreeMap<(StationKey, Param), Vec<Series>>,
    health: health::Tracker,
    horizon_ms: i64,
    /// The first time the engine was given: stands in for the last message of a station never
    /// heard from, so it turns silent 3 intervals after start-up rather than at once.
    started_ms: Option<i64>,
    /// The latest time the engine was given (for [`Engine::window_states`]).
    now_ms: Option<i64>,
}

impl Engine {
    pub fn new(stations: Stations, catalogue: &Catalogue, tz: Tz) -> Engine {
        let mut limits = BTreeMap::new();
        let mut warnings = Vec::new();
        let mut series = BTreeMap::new();
        let mut longest_s = 0u64;
        for station in stations.iter() {
            let resolved = limits::resolve(station, catalogue);
            warnings.extend(resolved.warnings);
            for (param, limit) in resolved.limits {
                limits.insert((station.key.clone(), param), limit);
            }
            for &param in Param::ALL {
                if !param.kinds().contains(&station.kind) {
                    continue;
                }
                let limit = limits.get(&(station.key.clone(), param)).cloned();
                let list: Vec<Series> = station
                    .windows_for(param)
                    .iter()
                    .map(|spec| {
                        longest_s = longest_s.max(spec.seconds);
                        Series::new(
                            station.key.clone(),
                            param,
                            spec.clone(),
                            station.expected_interval_s,
                            station.min_capture,
                            limit.clone(),
                        )
                    })
                    .collect();
                if !list.is_empty() {
                    series.insert((station.key.clone(), param), list);
                }
            }
        }
        let horizon_ms = MIN_LATE_HORIZON_MS.max(2 * longest_s as i64 * 1000);
        Engine {
            stations,
            tz,
            limits,
            warnings,
            series,
            health: health::Tracker::default(),
            horizon_ms,
            started_ms: None,
            now_ms: None,
        }
    }

    /// How long after its window closed a late reading still updates it: 48 h, or twice the
    /// longest configured window when that is longer.
    pub fn late_horizon_ms(&self) -> i64 {
        self.horizon_ms
    }

    /// Effective limit of every configured station × parameter that has one.
    pub fn limit_table(&self) -> Vec<LimitRow> {
        self.limits
            .iter()
            .filter_map(|((key, param), limit)| {
                let station = self.stations.get(key)?;
                Some(LimitRow {
                    key: key.clone(),
                    param: *param,
                    limit: limit.clone(),
                    windows: station
                        .windows_for(*param)
                        .iter()
                        .map(|w| w.label.clone())
                        .collect(),
                    o2_ref: station.o2_ref.filter(|_| param.o2_correctable()),
                })
            })
            .collect()
    }

    /// Start-up warnings, one sentence each: a limit resting on an unverified catalogue value
    /// without a permit override, an unknown regulation or column, a station with no limit.
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    /// The effective limit of one station × parameter.
    pub fn limit(&self, key: &StationKey, param: Param) -> Option<&Limit> {
        self.limits.get(&(key.clone(), param))
    }

    /// Judges the readings of one message (received at `now_ms`). Returns each reading judged
    /// and the points of windows already closed at `now_ms` that this message changed (late
    /// data: the point is rewritten).
    ///
    /// Instantaneous verdict: only status-00 readings are compared, with the O2-corrected value
    /// when there is one. A reading with another status gets its limit and (when O2 applies)
    /// its corrected value, but no ratio and `exceeded = false`: a calibration gas or a faulty
    /// analyser's output is not an emission, and a ratio would show as one on dashboards.
    pub fn judge(
        &mut self,
        readings: Vec<Reading>,
        now_ms: i64,
    ) -> (Vec<Judged>, Vec<WindowPoint>) {
        self.advance(now_ms);
        let o2 = o2::valid_o2(&readings);
        let floor = self.floor(now_ms);
        let mut touched: BTreeSet<(StationKey, Param, usize, i64)> = BTreeSet::new();
        let mut seen_keys: BTreeSet<StationKey> = BTreeSet::new();
        let mut judged = Vec::with_capacity(readings.len());
        for reading in readings {
            if seen_keys.insert(reading.key.clone()) {
                self.health.seen(&reading.key, now_ms);
            }
            self.health.observe(&reading);
            let o2_ref = self.stations.get(&reading.key).and_then(|s| s.o2_ref);
            let value_ref = o2::value_ref(&reading, o2_ref, &o2);
            touched.extend(self.window(&reading, value_ref, floor));
            judged.push(self.verdict(reading, value_ref));
        }
        let mut points = Vec::new();
        for (key, param, i, start) in touched {
            let Some(series) = self
                .series
                .get_mut(&(key, param))
                .and_then(|l| l.get_mut(i))
            else {
                continue;
            };
            if series.is_closed(start, now_ms) {
                points.extend(series.emit(start));
            }
        }
        (judged, points)
    }

    /// Closes windows whose end is at or before `now_ms` and returns their points, once each
    /// (a later late reading re-emits a point through [`Engine::judge`]). Then forgets windows
    /// that ended more than the late-data horizon ago. A window that received no status-00
    /// sample has no point.
    pub fn tick(&mut self, now_ms: i64) -> Vec<WindowPoint> {
        self.advance(now_ms);
        let floor = self.floor(now_ms);
        let mut points = Vec::new();
        for list in self.series.values_mut() {
            for series in list {
                points.extend(series.close(now_ms));
                series.evict(floor);
            }
        }
        points
    }

    /// Rebuilds the state from readings already journaled (after a restart): windows and health
    /// are fed as if the readings had arrived, no point is emitted, and windows closed at
    /// `now_ms` count as already written. A station's last-seen time becomes its newest reading
    /// time (at most `now_ms`), since receive times are not journaled here.
    pub fn restore(&mut self, mut readings: Vec<Reading>, now_ms: i64) {
        self.advance(now_ms);
        readings.sort_by_key(|r| r.ts_ms);
        let o2 = o2::valid_o2(&readings);
        let floor = self.floor(now_ms);
        for reading in &readings {
            self.health.seen(&reading.key, reading.ts_ms.min(now_ms));
            self.health.observe(reading);
            let o2_ref = self.stations.get(&reading.key).and_then(|s| s.o2_ref);
            let value_ref = o2::value_ref(reading, o2_ref, &o2);
            self.window(reading, value_ref, floor);
        }
        for list in self.series.values_mut() {
            for series in list {
                series.mark_closed_emitted(now_ms);
                series.evict(floor);
            }
        }
    }

    /// Per station × parameter × window: the latest closed valid window and the running one
    /// at the latest time the engine was given. Series with neither are left out.
    pub fn window_states(&self) -> Vec<WindowState> {
        let Some(now) = self.now_ms else {
            return Vec::new();
        };
        self.series
            .values()
            .flatten()
            .filter_map(|s| {
                let closed = s.last_valid().cloned();
                let running = s.running(now, self.tz);
                (closed.is_some() || running.is_some()).then(|| WindowState {
                    key: s.key.clone(),
                    param: s.param,
                    window: s.spec.label.clone(),
                    closed,
                    running,
                })
            })
            .collect()
    }

    /// Station health at `now_ms` for every configured station and every other station seen.
    /// Before the engine was given any time, `now_ms` counts as the start.
    /// Whether `key` is a configured station (has a permit in `stations.toml`).
    pub fn is_configured(&self, key: &StationKey) -> bool {
        self.stations.get(key).is_some()
    }

    pub fn health(&self, now_ms: i64) -> Vec<StationHealth> {
        self.health
            .health(&self.stations, self.started_ms.unwrap_or(now_ms), now_ms)
    }

    /// Windows ending at or before this are beyond the late-data horizon. Measured from the
    /// latest time given, so a message carrying an older receive time cannot reopen a window
    /// that was already forgotten.
    fn floor(&self, now_ms: i64) -> i64 {
        self.now_ms.unwrap_or(now_ms).max(now_ms) - self.horizon_ms
    }

    fn advance(&mut self, now_ms: i64) {
        self.started_ms = Some(self.started_ms.map_or(now_ms, |s| s.min(now_ms)));
        self.now_ms = Some(self.now_ms.map_or(now_ms, |n| n.max(now_ms)));
    }

    /// Records the reading in its station's windows; returns the windows it changed.
    fn window(
        &mut self,
        reading: &Reading,
        value_ref: Option<f64>,
        floor_ms: i64,
    ) -> Vec<(StationKey, Param, usize, i64)> {
        let Some(list) = self.series.get_mut(&(reading.key.clone(), reading.param)) else {
            return Vec::new();
        };
        let sample = (reading.status == Status::Normal).then(|| value_ref.unwrap_or(reading.value));
        list.iter_mut()
            .enumerate()
            .filter_map(|(i, s)| {
                s.put(reading.ts_ms, sample, self.tz, floor_ms)
                    .map(|start| (reading.key.clone(), reading.param, i, start))
            })
            .collect()
    }

    /// Readings of stations that are not configured have no limit, hence no verdict.
    fn verdict(&self, reading: Reading, value_ref: Option<f64>) -> Judged {
        let limit = self.limit(&reading.key, reading.param).cloned();
        let (ratio, exceeded) = match (&limit, reading.status) {
            (Some(l), Status::Normal) => {
                let v = value_ref.unwrap_or(reading.value);
                (limits::ratio(l, v), limits::exceeds(l, v))
            }
            _ => (None, false),
        };
        Judged {
            reading,
            value_ref,
            limit,
            ratio,
            exceeded,
        }
    }
}

#[cfg(test)]
mod tests;
