//! What the compliance stage shows the outside world: the verdict, window and health gauges,
//! one method per event (see [`crate::metrics`] for the pattern).
//!
//! - [`Events::judged`]: a message's readings were judged — `quantrac_reading_value`, the
//!   instant `quantrac_limit_ratio` / `quantrac_exceedance`, the station's
//!   `quantrac_station_last_reading_timestamp_seconds`, `quantrac_ingest_lag_seconds`.
//! - [`Events::windows`]: the window gauges after a tick (closed verdicts, running means).
//! - [`Events::health`]: `quantrac_station_state`, one series per state.
//!
//! These run for every reading and every window on every tick, so the label-resolved gauges
//! are kept in `Gauges`, per station (a hash lookup per message) and per parameter (an array
//! index) and window (a short list). A series is resolved the first time it is set, never
//! before, so the exposed series are exactly those that were given a value.

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
                &mut station.last_reading,
                &m.station_last_reading,
                &[park, site, name],
            )
            .set(received_at_ms as f64 / 1000.0);
            for j in run {
                let param = j.reading.param;
                let p = station.param(param);
                let labels = [park, site, name, param.symbol()];
                gauge(&mut p.value, &m.reading_value, &labels).set(j.reading.value);
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

struct StationGauges {
    last_reading: Option<Gauge>,
    /// In the order of [`STATION_STATES`].
    states: Option<[IntGauge; STATION_STATES.len()]>,
    /// Indexed by `Param as usize`.
    params: [Option<ParamGauges>; Param::ALL.len()],
}

impl Default for StationGauges {
    fn default() -> Self {
        StationGauges {
            last_reading: None,
            states: None,
            params: [const { None }; Param::ALL.len()],
        }
    }
}

impl StationGauges {
    fn param(&mut self, param: Param) -> &mut ParamGauges {
        self.params[param as usize].get_or_insert_with(ParamGauges::default)
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
                value: 42.0,
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
