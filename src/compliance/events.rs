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
//! These run for every reading and every window on every tick, so the label-resolved gauges
//! are kept in `Gauges`, per station (a hash lookup per message) and per parameter (an array
//! index) and window (a short list). A series is resolved the first time it is set, never
//! before, so the exposed series are exactly those that were given a value.
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

use prometheus::{Gauge, GaugeVec, IntGauge, IntGaugeVec};

use super::{FxBuild, StationHealth, WindowState};
use crate::metrics::{Metrics, STATION_STATES};
use crate::model::{Judged, Param, StationKey};

/// The window label of the instantaneous verdict gauges.
const INSTANT: &str = "instant";

/// The compliance stage's events.
pub struct Events {
    metrics: Metrics,
    gauges: Gauges,
}

impl Events {
    pub fn new(metrics: &Metrics) -> Events {
        Events {
            metrics: metrics.clone(),
            gauges: Gauges::default(),
        }
    }

    /// One message's readings were judged; it arrived at `received_at_ms`.
    pub fn judged(&mut self, readings: &[Judged], received_at_ms: i64) {
        let Some(last) = readings.last() else { return };
        let m = &self.metrics;
        m.ingest_lag
            .set((received_at_ms - last.reading.ts_ms) as f64 / 1000.0);
        // A message comes from one station; the lookup is per run of readings of one station.
        for run in readings.chunk_by(|a, b| a.reading.key == b.reading.key) {
            let key = &run[0].reading.key;
            let station = self.gauges.station(key);
            let [park, site, name] = Metrics::station_labels(key);
            gauge(
                &mut station.last_received,
                &m.station_last_received,
                &[park, site, name],
            )
            .set(received_at_ms as f64 / 1000.0);
            let newest = run.iter().map(|j| j.reading.ts_ms).max();
            if let Some(newest) = newest.and_then(|ts| station.freshness.observe(ts)) {
                gauge(
                    &mut station.last_reading,
                    &m.station_last_reading,
                    &[park, site, name],
                )
                .set(newest as f64 / 1000.0);
            }
            for j in run {
                let param = j.reading.param;
                let p = station.param(param);
                let labels = [park, site, name, param.symbol()];
                // A status event has no value: the gauge keeps the last measured one.
                if let Some(value) = j.reading.value {
                    gauge(&mut p.value, &m.reading_value, &labels).set(value);
                }
                if j.limit.is_some() {
                    let w = [park, site, name, param.symbol(), INSTANT];
                    if let Some(ratio) = j.ratio {
                        gauge(&mut p.instant.ratio, &m.limit_ratio, &w).set(ratio);
                    }
                    int_gauge(&mut p.instant.exceedance, &m.exceedance, &w)
                        .set(i64::from(j.exceeded));
                }
            }
        }
    }

    /// The window gauges as the engine holds them now: the latest closed valid window's verdict
    /// (when it has a limit) and the running window's ratio and capture.
    pub fn windows(&mut self, states: &[WindowState]) {
        let m = &self.metrics;
        for s in states {
            let labels = [
                s.key.park(),
                s.key.site(),
                s.key.station(),
                s.param.symbol(),
                s.window.as_str(),
            ];
            let g = self.gauges.station(&s.key).param(s.param).window(&s.window);
            if let Some(closed) = &s.closed {
                if closed.limit_max.is_some() {
                    if let Some(ratio) = closed.ratio {
                        gauge(&mut g.ratio, &m.limit_ratio, &labels).set(ratio);
                    }
                    int_gauge(&mut g.exceedance, &m.exceedance, &labels)
                        .set(i64::from(closed.exceeded));
                }
            }
            if let Some(running) = &s.running {
                if let Some(ratio) = running.ratio {
                    gauge(&mut g.running_ratio, &m.running_ratio, &labels).set(ratio);
                }
                gauge(&mut g.running_capture, &m.running_capture, &labels).set(running.capture);
            }
        }
    }

    /// Station states: 1 on the current state's series, 0 on the others.
    pub fn health(&mut self, healths: impl IntoIterator<Item = StationHealth>) {
        let vec = &self.metrics.station_state;
        for h in healths {
            let states = self
                .gauges
                .station(&h.key)
                .states
                .get_or_insert_with(|| state_gauges(vec, &h.key));
            for (g, state) in states.iter().zip(STATION_STATES) {
                g.set(i64::from(h.state.label() == state));
            }
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

/// Label-resolved gauges, created on first use.
#[derive(Default)]
struct Gauges {
    stations: HashMap<StationKey, StationGauges, FxBuild>,
}

impl Gauges {
    fn station(&mut self, key: &StationKey) -> &mut StationGauges {
        // `entry` would clone the key on every call; the key is new only once per station.
        if !self.stations.contains_key(key) {
            self.stations.insert(key.clone(), StationGauges::default());
        }
        self.stations
            .get_mut(key)
            .expect("inserted just above when missing")
    }
}

#[derive(Default)]
struct StationGauges {
    freshness: Freshness,
    last_reading: Option<Gauge>,
    last_received: Option<Gauge>,
    /// In the order of [`STATION_STATES`].
    states: Option<[IntGauge; STATION_STATES.len()]>,
    /// Indexed by [`Param::index`]; grows to the highest parameter given a value.
    params: Vec<Option<ParamGauges>>,
}

impl StationGauges {
    fn param(&mut self, param: Param) -> &mut ParamGauges {
        let i = param.index();
        if self.params.len() <= i {
            self.params.resize_with(i + 1, || None);
        }
        self.params[i].get_or_insert_with(ParamGauges::default)
    }
}

#[derive(Default)]
struct ParamGauges {
    value: Option<Gauge>,
    instant: WindowGauges,
    /// One per window label (`1h`, `24h`, …): a station has a handful, so a list.
    windows: Vec<(String, WindowGauges)>,
}

impl ParamGauges {
    fn window(&mut self, label: &str) -> &mut WindowGauges {
        let i = match self.windows.iter().position(|(w, _)| w == label) {
            Some(i) => i,
            None => {
                self.windows
                    .push((label.to_owned(), WindowGauges::default()));
                self.windows.len() - 1
            }
        };
        &mut self.windows[i].1
    }
}

#[derive(Default)]
struct WindowGauges {
    ratio: Option<Gauge>,
    exceedance: Option<IntGauge>,
    running_ratio: Option<Gauge>,
    running_capture: Option<Gauge>,
}

/// The gauge in `slot`, resolved from `vec` with `labels` the first time.
fn gauge<'a>(slot: &'a mut Option<Gauge>, vec: &GaugeVec, labels: &[&str]) -> &'a Gauge {
    slot.get_or_insert_with(|| vec.with_label_values(labels))
}

fn int_gauge<'a>(
    slot: &'a mut Option<IntGauge>,
    vec: &IntGaugeVec,
    labels: &[&str],
) -> &'a IntGauge {
    slot.get_or_insert_with(|| vec.with_label_values(labels))
}

fn state_gauges(vec: &IntGaugeVec, key: &StationKey) -> [IntGauge; STATION_STATES.len()] {
    let [park, site, station] = Metrics::station_labels(key);
    STATION_STATES.map(|state| vec.with_label_values(&[park, site, station, state]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::HealthState;
    use crate::model::{Limit, LimitSource, Reading, Status, WindowPoint};

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

    /// Cached handles must not expose a series before it has a value: a parameter without a
    /// limit has no instant ratio or exceedance, a station never judged has no timestamps.
    #[test]
    fn series_appear_only_once_they_have_a_value() {
        let m = Metrics::new();
        let mut events = Events::new(&m);
        events.judged(&[], NOW_MS);
        events.health([crate::compliance::StationHealth {
            key: key(),
            state: HealthState::Silent,
            last_reading_ms: None,
            stuck_params: Vec::new(),
        }]);
        let text = m.render();
        assert!(!text.contains("quantrac_station_last_"), "{text}");
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

        let running = WindowPoint {
            key: key(),
            param: Param::COD,
            window: "1h".into(),
            start_ms: NOW_MS,
            mean: 50.0,
            samples: 1,
            capture: 0.25,
            valid: false,
            limit_max: Some(100.0),
            ratio: Some(0.5),
            exceeded: false,
        };
        events.windows(&[WindowState {
            key: key(),
            param: Param::COD,
            window: "1h".into(),
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
