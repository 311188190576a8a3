//! The [`Engine`]: per-station state (limits, windows, health) and the rules applied to each
//! message and each tick. A function of `(state, readings, now)`; no I/O, no clock reads.

use std::collections::BTreeMap;

use chrono_tz::Tz;

use super::status::Spans;
use super::windows::{self, Series};
use super::{
    health, limits, o2, Catalogue, LimitRow, StationHealth, WindowState, MIN_LATE_HORIZON_MS,
};
use crate::config::{Station, Stations};
use crate::model::status::{Exceedance, Latest, ParamStatus};
use crate::model::{Judged, Limit, Param, Reading, StationKey, Status, WindowPoint};

/// What the engine keeps per configured station × parameter.
#[derive(Debug, Default)]
struct ParamState {
    limit: Option<Limit>,
    /// One series per window length, in the station's window order.
    series: Vec<Series>,
    /// The newest reading (by its own time) and its verdict, for the status page.
    latest: Option<Latest>,
    /// The latest run of exceeded readings, for the status page.
    exceedance: Option<Exceedance>,
}

/// What the engine keeps per configured station, found once per message.
#[derive(Debug)]
struct StationState {
    o2_ref: Option<f64>,
    /// Indexed by [`Param::index`], over the whole parameter table.
    params: Vec<ParamState>,
    /// A reading reached it since [`Engine::station_status`] last described it.
    changed: bool,
}

/// Limits, O2 correction, instantaneous verdicts, windows and station health.
///
/// Configured stations are held in key order in `slots`; the health tracker is given them
/// first, in the same order, so a station's tracker handle is its slot. A reading's station
/// is found once per message (by handle), its parameter by index: no map keyed by strings is
/// searched per reading.
#[derive(Debug)]
pub struct Engine {
    stations: Stations,
    tz: Tz,
    limits: BTreeMap<(StationKey, Param), Limit>,
    warnings: Vec<String>,
    slots: Vec<StationState>,
    health: health::Tracker,
    /// No window closes before this (a lower bound): a timer tick earlier has nothing to
    /// close, so it does not visit the series.
    close_due_ms: i64,
    /// No window ends before this (a lower bound): nothing to forget while the late-data
    /// floor is below it.
    evict_due_ms: i64,
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
        let mut slots = Vec::new();
        let mut health = health::Tracker::default();
        let mut longest_s = 0u64;
        for station in stations.iter() {
            let resolved = limits::resolve(station, catalogue);
            warnings.extend(resolved.warnings);
            let mut params: Vec<ParamState> = stations
                .params
                .all()
                .map(|p| ParamState {
                    limit: resolved.limits.get(&p).cloned(),
                    series: Vec::new(),
                    latest: None,
                    exceedance: None,
                })
                .collect();
            for (param, limit) in resolved.limits {
                limits.insert((station.key.clone(), param), limit);
            }
            for param in stations.params.all() {
                if !param.kinds().contains(&station.kind) {
                    continue;
                }
                let state = &mut params[param.index()];
                state.series = station
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
                            state.limit.clone(),
                        )
                    })
                    .collect();
            }
            let handle = health.handle(&station.key);
            debug_assert_eq!(handle, slots.len());
            slots.push(StationState {
                o2_ref: station.o2_ref,
                params,
                changed: true,
            });
        }
        let horizon_ms = MIN_LATE_HORIZON_MS.max(2 * longest_s as i64 * 1000);
        Engine {
            stations,
            tz,
            limits,
            warnings,
            slots,
            health,
            close_due_ms: i64::MAX,
            evict_due_ms: i64::MAX,
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
        // Windows already closed at `now_ms` that this message changed, as
        // (slot, param, series, start): emitted once each, after the whole message.
        let mut touched: Vec<(usize, usize, usize, i64)> = Vec::new();
        let mut offset = Offset::default();
        let mut current: Option<(StationKey, health::Handle)> = None;
        let mut judged = Vec::with_capacity(readings.len());
        for reading in readings {
            let handle = match &current {
                Some((key, h)) if *key == reading.key => *h,
                _ => {
                    let h = self.health.handle(&reading.key);
                    self.health.seen_at(h, now_ms);
                    current = Some((reading.key.clone(), h));
                    h
                }
            };
            self.health.observe_at(handle, &reading);
            let (o2_ref, param) = match self.slots.get_mut(handle) {
                Some(s) => (s.o2_ref, s.params.get_mut(reading.param.index())),
                None => (None, None),
            };
            let value_ref = o2::value_ref(&reading, o2_ref, &o2);
            let mut limit = None;
            if let Some(param) = param {
                limit = param.limit.clone();
                let sample = sample(&reading, value_ref);
                let off = offset.at(reading.ts_ms, self.tz);
                for (i, series) in param.series.iter_mut().enumerate() {
                    let Some((start, end)) =
                        series.put_at(reading.ts_ms, off, sample, self.tz, floor)
                    else {
                        continue;
                    };
                    self.close_due_ms = self.close_due_ms.min(end);
                    self.evict_due_ms = self.evict_due_ms.min(end);
                    if end <= now_ms {
                        touched.push((handle, reading.param.index(), i, start));
                    }
                }
            }
            let judged_reading = verdict(reading, value_ref, limit);
            if let Some(slot) = self.slots.get_mut(handle) {
                slot.changed = true;
                let p = &mut slot.params[judged_reading.reading.param.index()];
                p.observe(
                    &judged_reading.reading,
                    value_ref,
                    judged_reading.ratio,
                    judged_reading.exceeded,
                );
            }
            judged.push(judged_reading);
        }
        touched.sort_unstable();
        touched.dedup();
        let mut points = Vec::new();
        for (slot, param, i, start) in touched {
            let series = &mut self.slots[slot].params[param].series[i];
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
    ///
    /// Runs once a second while tens of thousands of windows are held, so it only visits
    /// series with something due, and each of those only at the windows that are due.
    pub fn tick(&mut self, now_ms: i64) -> Vec<WindowPoint> {
        self.advance(now_ms);
        let floor = self.floor(now_ms);
        let mut points = Vec::new();
        if now_ms < self.close_due_ms && floor < self.evict_due_ms {
            return points;
        }
        let mut close_due = i64::MAX;
        let mut evict_due = i64::MAX;
        for series in self.series_mut() {
            if now_ms >= series.next_close_ms() {
                series.close_into(now_ms, &mut points);
            }
            if floor >= series.next_evict_ms() {
                series.evict(floor);
            }
            close_due = close_due.min(series.next_close_ms());
            evict_due = evict_due.min(series.next_evict_ms());
        }
        self.close_due_ms = close_due;
        self.evict_due_ms = evict_due;
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
        let mut offset = Offset::default();
        for reading in &readings {
            let handle = self.health.handle(&reading.key);
            self.health.seen_at(handle, reading.ts_ms.min(now_ms));
            self.health.observe_at(handle, reading);
            let Some(slot) = self.slots.get_mut(handle) else {
                continue;
            };
            let value_ref = o2::value_ref(reading, slot.o2_ref, &o2);
            let sample = sample(reading, value_ref);
            let off = offset.at(reading.ts_ms, self.tz);
            let Some(param) = slot.params.get_mut(reading.param.index()) else {
                continue;
            };
            for series in &mut param.series {
                series.put_at(reading.ts_ms, off, sample, self.tz, floor);
            }
            let (ratio, exceeded) = instant(param.limit.as_ref(), reading, value_ref);
            param.observe(reading, value_ref, ratio, exceeded);
            slot.changed = true;
        }
        let mut close_due = i64::MAX;
        let mut evict_due = i64::MAX;
        for series in self.series_mut() {
            series.mark_closed_emitted(now_ms);
            series.evict(floor);
            close_due = close_due.min(series.next_close_ms());
            evict_due = evict_due.min(series.next_evict_ms());
        }
        self.close_due_ms = close_due;
        self.evict_due_ms = evict_due;
    }

    /// Per station × parameter × window: the latest closed valid window and the running one
    /// at the latest time the engine was given. Series with neither are left out.
    pub fn window_states(&self) -> Vec<WindowState> {
        let Some(now) = self.now_ms else {
            return Vec::new();
        };
        self.slots
            .iter()
            .flat_map(|slot| &slot.params)
            .flat_map(|p| &p.series)
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

    /// The configured stations, in key order: a station's position here is its `slot` in
    /// [`Engine::station_status`].
    pub fn stations(&self) -> impl Iterator<Item = &Station> {
        self.stations.iter()
    }

    /// The parameters of the configured station at `slot` as they stand at `now_ms` (every
    /// parameter with a reading or a limit, in table order), and the time until which that
    /// answer holds unless a reading arrives: the earliest end of a window open at `now_ms`.
    /// Clears the station's "changed" mark.
    pub fn station_status(&mut self, slot: usize, now_ms: i64) -> (Vec<ParamStatus>, i64) {
        let mut spans = Spans::new(now_ms, self.tz);
        self.station_status_in(slot, &mut spans)
    }

    /// [`Engine::station_status`] at the instant of `spans`, which a caller describing many
    /// stations at once shares between them.
    pub fn station_status_in(&mut self, slot: usize, spans: &mut Spans) -> (Vec<ParamStatus>, i64) {
        let state = &mut self.slots[slot];
        state.changed = false;
        let mut until = i64::MAX;
        let params = Param::ALL
            .iter()
            .zip(&state.params)
            .filter(|(_, p)| p.latest.is_some() || p.limit.is_some())
            .map(|(&param, p)| {
                for s in &p.series {
                    until = until.min(spans.at(s.spec.seconds).1);
                }
                let mut status = super::status::param_status(
                    param,
                    p.latest,
                    p.limit.as_ref(),
                    &p.series,
                    spans,
                );
                status.last_exceedance = p.exceedance;
                status
            })
            .collect();
        (params, until)
    }

    /// Whether a reading reached the configured station at `slot` since
    /// [`Engine::station_status`] last described it.
    pub fn station_changed(&self, slot: usize) -> bool {
        self.slots[slot].changed
    }

    /// The zone windows align to.
    pub fn timezone(&self) -> Tz {
        self.tz
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

    fn series_mut(&mut self) -> impl Iterator<Item = &mut Series> {
        self.slots
            .iter_mut()
            .flat_map(|slot| &mut slot.params)
            .flat_map(|p| &mut p.series)
    }
}

/// The time zone's UTC offset at the last timestamp asked about: the readings of one message
/// nearly always share their timestamp, so the zone is consulted about once per message.
#[derive(Default)]
struct Offset(Option<(i64, i64)>);

impl Offset {
    fn at(&mut self, ts_ms: i64, tz: Tz) -> i64 {
        match self.0 {
            Some((ts, off)) if ts == ts_ms => off,
            _ => {
                let off = windows::offset_ms(ts_ms, tz);
                self.0 = Some((ts_ms, off));
                off
            }
        }
    }
}

/// What a reading gives its windows: the (O2-corrected) value of a status-00 reading; nothing
/// for a calibration, a fault, or a status event without a value.
fn sample(reading: &Reading, value_ref: Option<f64>) -> Option<f64> {
    match (reading.status, reading.value) {
        (Status::Normal, Some(v)) => Some(value_ref.unwrap_or(v)),
        _ => None,
    }
}

/// The instantaneous verdict. Readings of stations that are not configured have no limit,
/// hence no verdict; neither has a reading that is not status 00 (nor one without a value).
fn verdict(reading: Reading, value_ref: Option<f64>, limit: Option<Limit>) -> Judged {
    let (ratio, exceeded) = instant(limit.as_ref(), &reading, value_ref);
    Judged {
        reading,
        value_ref,
        limit,
        ratio,
        exceeded,
    }
}

/// The instantaneous ratio and verdict: only status-00 readings with a value are compared.
fn instant(
    limit: Option<&Limit>,
    reading: &Reading,
    value_ref: Option<f64>,
) -> (Option<f64>, bool) {
    match (limit, sample(reading, value_ref)) {
        (Some(l), Some(v)) => (limits::ratio(l, v), limits::exceeds(l, v)),
        _ => (None, false),
    }
}

impl ParamState {
    /// Keeps the newest reading of a parameter and its latest run of exceeded readings. A run
    /// starts at the first exceeded reading after one that was not, and ends with the next
    /// reading that is not (whatever its status: a calibration interrupts it). Late readings
    /// move neither.
    fn observe(
        &mut self,
        reading: &Reading,
        value_ref: Option<f64>,
        ratio: Option<f64>,
        exceeded: bool,
    ) {
        let latest = &mut self.latest;
        if latest.is_some_and(|l| l.ts_ms > reading.ts_ms) {
            return;
        }
        let ongoing = latest.and_then(|l| l.exceeding_since_ms);
        let since = match ongoing {
            _ if !exceeded => None,
            Some(since) => Some(since),
            None => Some(reading.ts_ms),
        };
        if let Some(value) = sample(reading, value_ref).filter(|_| exceeded) {
            let run = match (ongoing, self.exceedance) {
                (Some(_), Some(run)) if run.peak >= value => Exceedance {
                    to_ms: reading.ts_ms,
                    ..run
                },
                (Some(_), Some(run)) => Exceedance {
                    to_ms: reading.ts_ms,
                    peak: value,
                    peak_ratio: ratio,
                    ..run
                },
                _ => Exceedance {
                    from_ms: reading.ts_ms,
                    to_ms: reading.ts_ms,
                    peak: value,
                    peak_ratio: ratio,
                },
            };
            self.exceedance = Some(run);
        }
        *latest = Some(Latest {
            ts_ms: reading.ts_ms,
            value: reading.value,
            value_ref,
            status: reading.status,
            ratio,
            exceeded,
            exceeding_since_ms: since,
        });
    }
}

#[cfg(test)]
mod due_tests {
    //! The timer's shortcuts (skip when nothing is due) must not lose a window.

    use super::*;
    use crate::config::{StationDefaults, WindowSpec};

    const HOUR: i64 = 3_600_000;
    /// 2026-11-29T00:00:00Z.
    const T0: i64 = 1_795_910_400_000;

    fn engine() -> Engine {
        let defaults = StationDefaults {
            windows: vec![WindowSpec::parse("1h").unwrap()],
            min_capture: 0.75,
            stuck_after_s: 0,
        };
        let text = quantrac_testkit::fixtures::CONTRACT_STATIONS;
        let stations = Stations::parse(text, "stations.toml", &defaults).unwrap();
        Engine::new(
            stations,
            &Catalogue::builtin(),
            chrono_tz::Asia::Ho_Chi_Minh,
        )
    }

    fn cod(ts_ms: i64) -> Vec<Reading> {
        vec![Reading {
            key: StationKey::parse("nam-dinh-vu", "nd-textile", "outfall-1").unwrap(),
            param: Param::COD,
            ts_ms,
            value: Some(50.0),
            status: Status::Normal,
        }]
    }

    #[test]
    fn a_window_opened_after_an_idle_tick_is_still_closed_on_time() {
        let mut e = engine();
        assert!(e.tick(T0).is_empty(), "nothing held");
        e.judge(cod(T0 + 10 * HOUR), T0 + 10 * HOUR);
        assert!(e.tick(T0 + 10 * HOUR + 1).is_empty());
        // A message received with an earlier clock (a step back) opens an earlier window:
        // it is not closed at its own receive time, so the next tick must close it.
        e.judge(cod(T0 + HOUR), T0 + HOUR + 1);
        let points = e.tick(T0 + 10 * HOUR + 2);
        assert_eq!(points.len(), 1, "{points:?}");
        assert_eq!(points[0].start_ms, T0 + HOUR);
        assert_eq!(e.tick(T0 + 11 * HOUR).len(), 1, "the 10:00 hour");
    }

    #[test]
    fn idle_ticks_do_not_forget_a_window_inside_the_late_horizon() {
        let mut e = engine();
        e.judge(cod(T0), T0);
        assert_eq!(e.tick(T0 + HOUR).len(), 1);
        assert!(e.tick(T0 + 2 * HOUR).is_empty());
        let horizon = e.late_horizon_ms();
        // Just inside the horizon a late reading still rewrites the hour…
        let (_, points) = e.judge(cod(T0 + 1), T0 + HOUR + horizon - 1);
        assert_eq!(points.len(), 1);
        // …and once past the horizon it no longer is.
        e.tick(T0 + HOUR + horizon);
        let (_, points) = e.judge(cod(T0 + 2), T0 + HOUR + horizon);
        assert!(points.is_empty(), "{points:?}");
    }
}
