//! What the compliance stage shows the outside world: the verdict, window and health gauges,
//! one method per event (see [`crate::metrics`] for the pattern).
//!
//! - [`Events::judged`]: a message's readings were judged — `quantrac_reading_value`, the
//!   instant `quantrac_limit_ratio` / `quantrac_exceedance`, the station's
//!   `quantrac_station_last_reading_timestamp_seconds` and
//!   `quantrac_station_last_message_received_timestamp_seconds`, `quantrac_ingest_lag_seconds`.
//! - [`Events::windows`]: the window gauges after a tick (closed verdicts, running means).
//! - [`Events::health`]: `quantrac_station_state`, one series per state.
//!
//! They run for every message and for the windows and stations that changed on a tick; the
//! values go to the per-station table of [`crate::metrics::stations`] (one lock per message),
//! which exposes what `[metrics] detail` asks for. A series appears once it is given a value.
//!
//! ## Which time a station's gauges show
//! `quantrac_station_last_reading_timestamp_seconds` is the newest reading's own timestamp,
//! the largest seen since start ([`Freshness`]): a datalogger replaying a buffer from two days
//! ago after an outage does not make the station look fresh, and a replay arriving after newer
//! readings does not move the gauge back. It can run ahead of the clock by at most what decode
//! lets through (10 minutes). `quantrac_station_last_message_received_timestamp_seconds` is
//! when the station's latest message with accepted readings arrived, replay or not: the
//! receive-side view that the `silent` state of `quantrac_station_state` also uses.

use std::collections::HashMap;

use super::{FxBuild, StationHealth, WindowState};
use crate::metrics::{Metrics, StationTable, WindowValues, INSTANT, STATION_STATES};
use crate::model::{Judged, StationKey};

/// The compliance stage's events.
pub struct Events {
    metrics: Metrics,
    table: StationTable,
    freshness: HashMap<StationKey, Freshness, FxBuild>,
}

impl Events {
    pub fn new(metrics: &Metrics) -> Events {
        Events {
            metrics: metrics.clone(),
            table: metrics.stations.clone(),
            freshness: HashMap::default(),
        }
    }

    /// One message's readings were judged; it arrived at `received_at_ms`.
    pub fn judged(&mut self, readings: &[Judged], received_at_ms: i64) {
        let Some(last) = readings.last() else { return };
        self.metrics
            .ingest_lag
            .set((received_at_ms - last.reading.ts_ms) as f64 / 1000.0);
        // A message comes from one station; the lookup is per run of readings of one station.
        for run in readings.chunk_by(|a, b| a.reading.key == b.reading.key) {
            let key = &run[0].reading.key;
            let freshness = self.freshness.entry(key.clone()).or_default();
            let newest = run.iter().map(|j| j.reading.ts_ms).max();
            let newest = newest.and_then(|ts| freshness.observe(ts));
            self.table.station(key, |row| {
                row.last_received(received_at_ms as f64 / 1000.0);
                if let Some(newest) = newest {
                    row.last_reading(newest as f64 / 1000.0);
                }
                for j in run {
                    let param = j.reading.param;
                    // A status event has no value: the gauge keeps the last measured one.
                    if let Some(value) = j.reading.value {
                        row.value(param, value);
                    }
                    if j.limit.is_some() {
                        row.window(
                            param,
                            INSTANT,
                            WindowValues {
                                ratio: j.ratio,
                                exceeded: Some(j.exceeded),
                                ..WindowValues::default()
                            },
                        );
                    }
                }
            });
        }
    }

    /// The window gauges of the windows that changed: the latest closed valid window's verdict
    /// (when it has a limit) and the running window's ratio and capture.
    pub fn windows(&mut self, states: &[WindowState]) {
        for run in states.chunk_by(|a, b| a.key == b.key) {
            self.table.station(&run[0].key, |row| {
                for s in run {
                    let mut values = WindowValues::default();
                    if let Some(closed) = s.closed.as_ref().filter(|_| s.limit_max.is_some()) {
                        values.ratio = closed.ratio;
                        values.exceeded = Some(closed.exceeded);
                    }
                    if let Some(running) = &s.running {
                        values.running = true;
                        values.running_ratio = running.ratio;
                        values.running_capture = Some(running.capture);
                    }
                    row.window(s.param, &s.window, values);
                }
            });
        }
    }

    /// Station states: the current state's series is 1 (see [`crate::metrics::stations`]
    /// for the others).
    pub fn health(&mut self, healths: impl IntoIterator<Item = StationHealth>) {
        for h in healths {
            let state = STATION_STATES.iter().position(|s| *s == h.state.label());
            self.table.set_state(&h.key, state);
        }
    }
}

/// The newest reading time seen from one station. Readings arrive in any order (a datalogger
/// replays its buffer after an outage, oldest first, possibly after newer live readings), so
/// the newest is the maximum, not the latest to arrive.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Freshness {
    newest_reading_ms: Option<i64>,
}

impl Freshness {
    /// Takes one reading's own time; returns the new newest time when it moved forward (or was
    /// first set), `None` when the reading is not newer than one already seen.
    pub fn observe(&mut self, ts_ms: i64) -> Option<i64> {
        if self.newest_reading_ms.is_some_and(|n| n >= ts_ms) {
            return None;
        }
        self.newest_reading_ms = Some(ts_ms);
        Some(ts_ms)
    }

    pub fn newest_reading_ms(&self) -> Option<i64> {
        self.newest_reading_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::HealthState;
    use crate::model::status::WindowMean;
    use crate::model::{Limit, LimitSource, Param, Reading, Status};

    const DAY_MS: i64 = 86_400_000;
    const NOW_MS: i64 = 1_795_935_900_000; // 2026-11-29T07:05:00Z

    fn key() -> StationKey {
        StationKey::parse("p", "s", "x").unwrap()
    }

    fn judged(param: Param, ts_ms: i64, limit: bool) -> Judged {
        Judged {
            reading: Reading {
                key: key(),
                param,
                ts_ms,
                value: Some(42.0),
                status: Status::Normal,
            },
            value_ref: None,
            limit: limit.then_some(Limit {
                max: Some(100.0),
                min: None,
                source: LimitSource::Permit,
            }),
            ratio: limit.then_some(0.42),
            exceeded: false,
        }
    }

    fn value_of(m: &Metrics, series: &str) -> Option<f64> {
        m.render().lines().find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().unwrap())
        })
    }

    const LAST_READING: &str =
        r#"quantrac_station_last_reading_timestamp_seconds{park="p",site="s",station="x"}"#;
    const LAST_RECEIVED: &str = r#"quantrac_station_last_message_received_timestamp_seconds{park="p",site="s",station="x"}"#;

    #[test]
    fn freshness_is_the_newest_reading_time_and_never_moves_back() {
        let mut f = Freshness::default();
        assert_eq!(f.newest_reading_ms(), None);
        assert_eq!(f.observe(NOW_MS - DAY_MS), Some(NOW_MS - DAY_MS), "first");
        assert_eq!(f.observe(NOW_MS), Some(NOW_MS), "newer moves it");
        assert_eq!(f.observe(NOW_MS), None, "the same time again");
        assert_eq!(f.observe(NOW_MS - 2 * DAY_MS), None, "a replayed buffer");
        assert_eq!(f.newest_reading_ms(), Some(NOW_MS));
    }

    /// A datalogger back after two days replays its buffer: the messages arrive now, the
    /// readings are two days old. The station must not look fresh (StationSilent keys on the
    /// reading time), while the receive-time gauge shows that it is talking.
    #[test]
    fn a_replayed_old_buffer_does_not_make_the_station_look_fresh() {
        let m = Metrics::new();
        let mut events = Events::new(&m);
        let old = NOW_MS - 2 * DAY_MS;
        events.judged(&[judged(Param::COD, old, false)], NOW_MS);
        assert_eq!(value_of(&m, LAST_READING), Some(old as f64 / 1000.0));
        assert_eq!(value_of(&m, LAST_RECEIVED), Some(NOW_MS as f64 / 1000.0));
        assert_eq!(
            value_of(&m, "quantrac_ingest_lag_seconds"),
            Some(2.0 * 86_400.0)
        );

        // Live readings resume, then more of the old buffer comes in behind them.
        events.judged(&[judged(Param::COD, NOW_MS, false)], NOW_MS + 1_000);
        events.judged(
            &[
                judged(Param::COD, old + 300_000, false),
                judged(Param::TSS, old + 300_000, false),
            ],
            NOW_MS + 2_000,
        );
        assert_eq!(
            value_of(&m, LAST_READING),
            Some(NOW_MS as f64 / 1000.0),
            "the newest reading stays the newest"
        );
        assert_eq!(
            value_of(&m, LAST_RECEIVED),
            Some((NOW_MS + 2_000) as f64 / 1000.0)
        );
    }

    #[test]
    fn the_newest_reading_of_a_message_counts_not_its_last() {
        let m = Metrics::new();
        let mut events = Events::new(&m);
        events.judged(
            &[
                judged(Param::COD, NOW_MS, false),
                judged(Param::TSS, NOW_MS - 60_000, false),
            ],
            NOW_MS,
        );
        assert_eq!(value_of(&m, LAST_READING), Some(NOW_MS as f64 / 1000.0));
    }

    /// Window states come grouped by station; each station's gauges carry only its own.
    #[test]
    fn each_station_gets_its_own_window_gauges() {
        let m = Metrics::new();
        let mut events = Events::new(&m);
        let other = StationKey::parse("p", "s", "y").unwrap();
        let of = |key: &StationKey, ratio| WindowState {
            key: key.clone(),
            ..window(Param::COD, "1h", ratio, 0.9, true)
        };
        events.windows(&[of(&key(), 0.9), of(&key(), 0.9), of(&other, 0.8)]);
        let text = m.render();
        let gauge = |station: &str| {
            format!(
                r#"quantrac_window_running_ratio{{param="COD",park="p",site="s",station="{station}",window="1h"}}"#
            )
        };
        assert!(text.contains(&format!("{} 0.9", gauge("x"))), "{text}");
        assert!(text.contains(&format!("{} 0.8", gauge("y"))), "{text}");

        // Readings of two stations in one call (an inbox file of a park): each its own.
        let mut y = judged(Param::COD, NOW_MS, true);
        y.reading.key = other.clone();
        y.reading.value = Some(7.0);
        let x = judged(Param::COD, NOW_MS, true);
        events.judged(&[x.clone(), x, y], NOW_MS);
        let text = m.render();
        let value = |station: &str| {
            format!(
                r#"quantrac_reading_value{{param="COD",park="p",site="s",station="{station}"}}"#
            )
        };
        assert!(text.contains(&format!("{} 42", value("x"))), "{text}");
        assert!(text.contains(&format!("{} 7", value("y"))), "{text}");
    }

    fn full() -> crate::metrics::Detail {
        crate::metrics::Detail {
            full: true,
            ..Default::default()
        }
    }

    fn window(param: Param, label: &str, ratio: f64, capture: f64, closed: bool) -> WindowState {
        let mean = WindowMean {
            start_ms: NOW_MS,
            end_ms: NOW_MS + 3_600_000,
            mean: 50.0,
            samples: 1,
            capture,
            valid: closed,
            ratio: Some(ratio),
            exceeded: closed && ratio > 1.0,
        };
        WindowState {
            key: key(),
            param,
            window: label.into(),
            limit_max: Some(100.0),
            closed: closed.then_some(mean),
            running: Some(mean),
        }
    }

    /// The issue's budget: by default at most 6 series per station × parameter (two windows)
    /// and 8 per station; `quantrac_reading_value` and `quantrac_exceedance` as before.
    #[test]
    fn the_compact_detail_keeps_the_series_budget() {
        let m = Metrics::new();
        let mut events = Events::new(&m);
        m.stations.set_expected_interval(&key(), 300.0);
        events.health([crate::compliance::StationHealth {
            key: key(),
            state: HealthState::Ok,
            last_reading_ms: Some(NOW_MS),
            stuck_params: Vec::new(),
        }]);
        events.judged(
            &[
                judged(Param::COD, NOW_MS, true),
                judged(Param::Flow, NOW_MS, false),
            ],
            NOW_MS,
        );
        events.windows(&[
            window(Param::COD, "1h", 0.9, 0.6, true),
            window(Param::COD, "24h", 0.9, 0.4, true),
        ]);
        let text = m.render();
        let series = |needle: &str| {
            text.lines()
                .filter(|l| !l.starts_with('#') && l.contains(needle))
                .collect::<Vec<_>>()
        };
        let cod = series(r#"param="COD",park="p",site="s",station="x""#);
        assert_eq!(cod.len(), 5, "{cod:#?}");
        assert!(cod.iter().all(|l| !l.starts_with("quantrac_limit_ratio")
            && !l.starts_with("quantrac_window_running_capture")));
        assert!(text.contains(
            r#"quantrac_exceedance{param="COD",park="p",site="s",station="x",window="1h"} 0"#
        ));
        assert!(text.contains(r#"quantrac_window_running_ratio{param="COD",park="p",site="s",station="x",window="1h"} 0.9"#));
        assert!(!text.contains(r#"quantrac_window_running_ratio{param="COD",park="p",site="s",station="x",window="24h"}"#), "capture 0.4 < 0.5");
        assert_eq!(series(r#"param="Flow""#).len(), 1);
        let station = series(r#"{park="p",site="s","#);
        assert_eq!(station.len(), 4, "{station:#?}");
        assert!(
            text.contains(r#"quantrac_station_state{park="p",site="s",state="ok",station="x"} 1"#)
        );
        // The running ratio falls below the floor: its series goes.
        events.windows(&[window(Param::COD, "1h", 0.3, 0.7, true)]);
        assert!(!m
            .render()
            .contains(r#"quantrac_window_running_ratio{param="COD""#));
        // Every family is announced, whatever the detail.
        for family in crate::metrics::stations::FAMILIES {
            assert!(text.contains(&format!("# TYPE {} gauge", family.0)));
        }
    }

    /// Cached handles must not expose a series before it has a value: a parameter without a
    /// limit has no instant ratio or exceedance, a station never judged has no timestamps.
    #[test]
    fn series_appear_only_once_they_have_a_value() {
        let m = Metrics::new();
        m.stations.set_detail(full());
        let mut events = Events::new(&m);
        events.judged(&[], NOW_MS);
        events.health([crate::compliance::StationHealth {
            key: key(),
            state: HealthState::Silent,
            last_reading_ms: None,
            stuck_params: Vec::new(),
        }]);
        let text = m.render();
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("quantrac_station_last_")),
            "{text}"
        );
        assert!(text
            .contains(r#"quantrac_station_state{park="p",site="s",state="silent",station="x"} 1"#));
        assert!(
            text.contains(r#"quantrac_station_state{park="p",site="s",state="ok",station="x"} 0"#)
        );
        // Not heard from since start-up: no state is 1, `ok` least of all.
        events.health([crate::compliance::StationHealth {
            key: key(),
            state: HealthState::Unheard,
            last_reading_ms: None,
            stuck_params: Vec::new(),
        }]);
        let text = m.render();
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("quantrac_station_state{") && l.ends_with(" 1"))
                .count(),
            0,
            "{text}"
        );

        events.judged(
            &[
                judged(Param::COD, NOW_MS, true),
                judged(Param::PH, NOW_MS, false),
            ],
            NOW_MS,
        );
        let text = m.render();
        assert!(text.contains(r#"quantrac_limit_ratio{param="COD",park="p",site="s",station="x",window="instant"} 0.42"#), "{text}");
        assert!(text.contains(
            r#"quantrac_exceedance{param="COD",park="p",site="s",station="x",window="instant"} 0"#
        ));
        assert!(
            text.contains(r#"quantrac_reading_value{param="pH",park="p",site="s",station="x"} 42"#)
        );
        assert!(
            !text.contains(r#"param="pH",park="p",site="s",station="x",window"#),
            "{text}"
        );

        let running = WindowMean {
            start_ms: NOW_MS,
            end_ms: NOW_MS + 3_600_000,
            mean: 50.0,
            samples: 1,
            capture: 0.25,
            valid: false,
            ratio: Some(0.5),
            exceeded: false,
        };
        events.windows(&[WindowState {
            key: key(),
            param: Param::COD,
            window: "1h".into(),
            limit_max: Some(100.0),
            closed: None,
            running: Some(running),
        }]);
        let text = m.render();
        assert!(text.contains(r#"quantrac_window_running_ratio{param="COD",park="p",site="s",station="x",window="1h"} 0.5"#));
        assert!(text.contains(r#"quantrac_window_running_capture{param="COD",park="p",site="s",station="x",window="1h"} 0.25"#));
        assert!(
            !text.contains(
                r#"quantrac_exceedance{param="COD",park="p",site="s",station="x",window="1h"}"#
            ),
            "no closed window, no verdict"
        );
    }
}
