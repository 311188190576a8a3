//! The [`Engine`]: per-station state (limits, windows, health) and the rules applied to each
//! message and each tick. A function of `(state, readings, now)`; no I/O, no clock reads.
//!
//! ## Work follows the readings, not the size of the park
//! A province has tens of thousands of series, nearly all idle at any second, so nothing here
//! walks every station or every window on a tick:
//! - a due-queue ([`BinaryHeap`] by time) holds, per series, when its next window closes and
//!   when its oldest window leaves the late-data horizon; a tick pops what fell due;
//! - a series is created with the first sample of its parameter, so an idle station holds its
//!   limits and nothing else;
//! - parameters whose windows changed (a sample, a close) are marked, and
//!   [`Engine::window_changes`] hands out only those; [`Engine::health_changes`] does the same
//!   for station health (readings, and a queue of silence deadlines).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chrono_tz::Tz;

mod state;
mod verdict;

use self::verdict::{instant, sample, verdict, Offset};
use super::health::Expect;
use super::status::Spans;
use super::windows::Series;
use super::{
    health, limits, o2, Catalogue, LimitRow, StationHealth, WindowState, MIN_LATE_HORIZON_MS,
};
use crate::config::Stations;
use crate::model::status::{Exceedance, Latest, ParamStatus};
use crate::model::{Judged, Limit, Param, Reading, StationKey, WindowPoint};

/// Marks a parameter with no state in [`StationState::index`].
const NONE: u8 = u8::MAX;

/// What the engine keeps per configured station × parameter: those with a limit from the
/// start, any other from its first reading.
#[derive(Debug)]
struct ParamState {
    param: Param,
    limit: Option<Limit>,
    /// One series per window length, in the station's window order; created with the
    /// parameter's first status-00 sample.
    series: Vec<Series>,
    /// The newest reading and the latest run of exceeded readings, for the status page.
    seen: Option<Box<Seen>>,
    /// Its windows changed since [`Engine::window_changes`] last handed them out.
    dirty: bool,
}

#[derive(Debug, Default)]
struct Seen {
    /// The newest reading (by its own time) and its verdict.
    latest: Option<Latest>,
    /// The latest run of exceeded readings.
    exceedance: Option<Exceedance>,
}

/// What the engine keeps per configured station, found once per message.
#[derive(Debug)]
struct StationState {
    o2_ref: Option<f64>,
    /// The states of the parameters with one: those with a limit in table order, then the
    /// others in the order they were first heard. A position never changes.
    params: Vec<ParamState>,
    /// Position in `params` by [`Param::index`] ([`NONE`]: no state).
    index: [u8; Param::ALL.len()],
    /// A reading reached it since [`Engine::station_status`] last described it.
    changed: bool,
}

impl StationState {
    fn param(&self, param: Param) -> Option<&ParamState> {
        match self.index[param.index()] {
            NONE => None,
            i => Some(&self.params[usize::from(i)]),
        }
    }

    /// The parameter's state and its position, created when missing.
    fn param_mut(&mut self, param: Param) -> (usize, &mut ParamState) {
        let i = match self.index[param.index()] {
            NONE => {
                // Appended, so positions already handed out (due times, dirty marks) hold.
                let at = self.params.len();
                self.params.push(ParamState::new(param, None));
                self.index[param.index()] = u8::try_from(at).expect("fewer than 255 parameters");
                at
            }
            i => usize::from(i),
        };
        (i, &mut self.params[i])
    }
}

/// Which series a due time is about: (slot, position in its station's params, series).
type Loc = (u32, u16, u8);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Close,
    Evict,
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
    warnings: Vec<String>,
    slots: Vec<StationState>,
    /// What health needs of each configured station, by slot.
    expect: Vec<Expect>,
    health: health::Tracker,
    /// When each series next has a window to close or to forget (see the module's
    /// documentation). An entry may be stale (its window already closed by a rebuild): the
    /// series then has nothing due and is put back at its real time.
    due: BinaryHeap<Reverse<(i64, Due, Loc)>>,
    /// Parameters whose windows changed, as (slot, position).
    dirty: Vec<(u32, u16)>,
    /// The running windows at the latest [`Engine::window_changes`].
    spans: Spans,
    /// Series created by a rebuild in progress ([`Engine::restore_part`]).
    restored: Vec<Loc>,
    /// Configured stations a reading reached since [`Engine::take_changed`], by slot.
    changed: Vec<usize>,
    /// Each configured station's kind, by slot.
    kinds: Vec<crate::model::Kind>,
    horizon_ms: i64,
    /// The first time the engine was given: stands in for the last message of a station never
    /// heard from, so it turns silent 3 intervals after start-up rather than at once.
    started_ms: Option<i64>,
    /// The latest time the engine was given (for [`Engine::window_states`]).
    now_ms: Option<i64>,
}

impl ParamState {
    fn new(param: Param, limit: Option<Limit>) -> ParamState {
        ParamState {
            param,
            limit,
            series: Vec::new(),
            seen: None,
            dirty: false,
        }
    }
}

impl Engine {
    pub fn new(stations: Stations, catalogue: &Catalogue, tz: Tz) -> Engine {
        let mut warnings = Vec::new();
        let mut slots = Vec::new();
        let mut expect = Vec::new();
        let mut kinds = Vec::new();
        let mut health = health::Tracker::default();
        let mut longest_s = 0u64;
        // One copy of each limit's source text for the whole park.
        let mut texts: std::collections::HashSet<std::sync::Arc<str>> = Default::default();
        for station in stations.iter() {
            let mut resolved = limits::resolve(station, catalogue);
            warnings.extend(resolved.warnings);
            for limit in resolved.limits.values_mut() {
                if let crate::model::LimitSource::Regulation { text, .. } = &mut limit.source {
                    match texts.get(text) {
                        Some(shared) => *text = shared.clone(),
                        None => {
                            texts.insert(text.clone());
                        }
                    }
                }
            }
            let mut state = StationState {
                o2_ref: station.o2_ref,
                params: Vec::new(),
                index: [NONE; Param::ALL.len()],
                changed: true,
            };
            for (param, limit) in resolved.limits {
                let (_, p) = state.param_mut(param);
                p.limit = Some(limit);
            }
            state.params.shrink_to_fit();
            for param in stations.params.all() {
                if param.kinds().contains(&station.kind) {
                    for spec in station.windows_for(param) {
                        longest_s = longest_s.max(spec.seconds);
                    }
                }
            }
            let handle = health.handle(&station.key);
            debug_assert_eq!(handle, slots.len());
            slots.push(state);
            expect.push(Expect::of(station));
            kinds.push(station.kind);
        }
        let horizon_ms = MIN_LATE_HORIZON_MS.max(2 * longest_s as i64 * 1000);
        Engine {
            stations,
            tz,
            warnings,
            slots,
            expect,
            health,
            due: BinaryHeap::new(),
            dirty: Vec::new(),
            spans: Spans::new(0, tz),
            restored: Vec::new(),
            changed: Vec::new(),
            kinds,
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
        self.stations
            .iter()
            .zip(&self.slots)
            .flat_map(|(station, slot)| {
                slot.params.iter().filter_map(move |p| {
                    let limit = p.limit.clone()?;
                    Some(LimitRow {
                        key: station.key.clone(),
                        param: p.param,
                        limit,
                        windows: station
                            .windows_for(p.param)
                            .iter()
                            .map(|w| w.label.to_string())
                            .collect(),
                        o2_ref: station.o2_ref.filter(|_| p.param.o2_correctable()),
                    })
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
        let slot = self.slots.get(self.health.find(key)?)?;
        slot.param(param)?.limit.as_ref()
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
            let Some(slot) = self.slots.get_mut(handle) else {
                // Not a configured station: no limit, no window.
                judged.push(verdict(reading, None, None));
                continue;
            };
            let value_ref = o2::value_ref(&reading, slot.o2_ref, &o2);
            let (pi, param) = slot.param_mut(reading.param);
            let limit = param.limit.clone();
            let sample = sample(&reading, value_ref);
            if let Some(v) = sample {
                if param.series.is_empty() {
                    param.series = new_series(&self.stations, &reading.key, reading.param, &limit);
                }
                let off = offset.at(reading.ts_ms, self.tz);
                for (i, series) in param.series.iter_mut().enumerate() {
                    let Some((start, end)) =
                        series.put_at(reading.ts_ms, off, Some(v), self.tz, floor)
                    else {
                        continue;
                    };
                    let loc = (handle as u32, pi as u16, i as u8);
                    schedule(&mut self.due, series, self.horizon_ms, loc);
                    if !param.dirty {
                        param.dirty = true;
                        self.dirty.push((loc.0, loc.1));
                    }
                    if end <= now_ms {
                        touched.push((handle, pi, i, start));
                    }
                }
            }
            let judged_reading = verdict(reading, value_ref, limit);
            if !slot.changed {
                slot.changed = true;
                self.changed.push(handle);
            }
            let p = &mut slot.params[pi];
            p.observe(
                &judged_reading.reading,
                value_ref,
                judged_reading.ratio,
                judged_reading.exceeded,
            );
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
    /// Runs once a second while tens of thousands of windows are held, so it only visits the
    /// series the due-queue names, and each of those only at the windows that are due.
    pub fn tick(&mut self, now_ms: i64) -> Vec<WindowPoint> {
        self.advance(now_ms);
        let floor = self.floor(now_ms);
        let mut points = Vec::new();
        while let Some(&Reverse((at, due, loc))) = self.due.peek() {
            if at > now_ms {
                break;
            }
            self.due.pop();
            let (slot, pi, i) = loc;
            let param = &mut self.slots[slot as usize].params[usize::from(pi)];
            let series = &mut param.series[usize::from(i)];
            match due {
                Due::Close if at == series.queued_close => {
                    series.queued_close = i64::MAX;
                    if series.next_close_ms() <= now_ms {
                        series.close_into(now_ms, &mut points);
                        if !param.dirty {
                            param.dirty = true;
                            self.dirty.push((slot, pi));
                        }
                    }
                }
                Due::Evict if at == series.queued_evict => {
                    series.queued_evict = i64::MAX;
                    if floor >= series.next_evict_ms() {
                        series.evict(floor);
                    }
                }
                // Stale: the series was queued again since.
                _ => continue,
            }
            schedule(&mut self.due, series, self.horizon_ms, loc);
        }
        points
    }

    /// Rebuilds the state from readings already journaled (after a restart): windows and health
    /// are fed as if the readings had arrived, no point is emitted, and windows closed at
    /// `now_ms` count as already written. A station's last-seen time becomes its newest reading
    /// time (at most `now_ms`), since receive times are not journaled here.
    ///
    /// All at once: [`Engine::restore_part`] for each batch, then [`Engine::restore_done`].
    pub fn restore(&mut self, readings: Vec<Reading>, now_ms: i64) {
        self.restore_part(readings, now_ms);
        self.restore_done(now_ms);
    }

    /// One batch of [`Engine::restore`] (the readings of a message, in journal order), so a
    /// rebuild never holds the whole late-data horizon of readings in memory at once.
    pub fn restore_part(&mut self, mut readings: Vec<Reading>, now_ms: i64) {
        self.advance(now_ms);
        readings.sort_by_key(|r| r.ts_ms);
        let o2 = o2::valid_o2(&readings);
        let floor = self.floor(now_ms);
        let mut offset = Offset::default();
        let fed = &mut self.restored;
        for reading in &readings {
            let handle = self.health.handle(&reading.key);
            self.health.seen_at(handle, reading.ts_ms.min(now_ms));
            self.health.observe_at(handle, reading);
            let Some(slot) = self.slots.get_mut(handle) else {
                continue;
            };
            let value_ref = o2::value_ref(reading, slot.o2_ref, &o2);
            let sample = sample(reading, value_ref);
            let (pi, param) = slot.param_mut(reading.param);
            if let Some(v) = sample {
                if param.series.is_empty() {
                    param.series =
                        new_series(&self.stations, &reading.key, reading.param, &param.limit);
                    for i in 0..param.series.len() {
                        fed.push((handle as u32, pi as u16, i as u8));
                    }
                }
                let off = offset.at(reading.ts_ms, self.tz);
                for series in &mut param.series {
                    series.put_at(reading.ts_ms, off, Some(v), self.tz, floor);
                }
            }
            let (ratio, exceeded) = instant(param.limit.as_ref(), reading, value_ref);
            param.observe(reading, value_ref, ratio, exceeded);
            if !param.dirty {
                param.dirty = true;
                self.dirty.push((handle as u32, pi as u16));
            }
            if !slot.changed {
                slot.changed = true;
                self.changed.push(handle);
            }
        }
    }

    /// Ends a rebuild by batches: see [`Engine::restore_part`].
    pub fn restore_done(&mut self, now_ms: i64) {
        let floor = self.floor(now_ms);
        let mut fed = std::mem::take(&mut self.restored);
        fed.sort_unstable();
        fed.dedup();
        self.reschedule(now_ms, floor, &fed);
    }

    /// After a rebuild: marks the closed windows of the series `fed` emitted, forgets what is
    /// beyond the horizon, and queues their due times.
    fn reschedule(&mut self, now_ms: i64, floor: i64, fed: &[Loc]) {
        for &loc in fed {
            let (slot, pi, i) = loc;
            let series =
                &mut self.slots[slot as usize].params[usize::from(pi)].series[usize::from(i)];
            series.mark_closed_emitted(now_ms);
            series.evict(floor);
            schedule(&mut self.due, series, self.horizon_ms, loc);
        }
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
            .filter_map(|s| window_state(s, &mut Spans::new(now, self.tz)))
            .collect()
    }

    /// [`Engine::window_states`] of the parameters whose windows changed (a sample, a close)
    /// since the last call: what the window gauges need to be current. Into `out` (cleared
    /// first), so the stage reuses one buffer: a province hands out about a thousand a second.
    pub fn window_changes(&mut self, out: &mut Vec<WindowState>) {
        out.clear();
        let Some(now) = self.now_ms else {
            return;
        };
        // The running windows: found in the zone once per window length, and kept while
        // they hold "now" (the stage calls this after every message).
        self.spans.move_to(now);
        let mut dirty = std::mem::take(&mut self.dirty);
        for &(slot, pi) in &dirty {
            let p = &mut self.slots[slot as usize].params[usize::from(pi)];
            p.dirty = false;
            out.extend(
                p.series
                    .iter()
                    .filter_map(|s| window_state(s, &mut self.spans)),
            );
        }
        dirty.clear();
        self.dirty = dirty;
    }

    /// Station health at `now_ms` for every configured station and every other station seen.
    /// Before the engine was given any time, `now_ms` counts as the start.
    pub fn health(&self, now_ms: i64) -> Vec<StationHealth> {
        self.health
            .health(&self.stations, self.started_ms.unwrap_or(now_ms), now_ms)
    }

    /// The health of the stations whose health changed since the last call (every station the
    /// first time), with their slot (`< configured` for a configured station): see
    /// [`health::Tracker::changes`].
    pub fn health_changes(&mut self, now_ms: i64) -> Vec<(usize, StationHealth)> {
        let started = self.started_ms.unwrap_or(now_ms);
        self.health.changes(&self.expect, started, now_ms)
    }

    /// How many stations are configured (their slots are `0..configured`).
    pub fn configured(&self) -> usize {
        self.slots.len()
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
        let latest = |p: &ParamState| p.seen.as_ref().and_then(|s| s.latest);
        let mut until = i64::MAX;
        let mut described: Vec<usize> = (0..state.params.len())
            .filter(|&i| latest(&state.params[i]).is_some() || state.params[i].limit.is_some())
            .collect();
        described.sort_by_key(|&i| state.params[i].param);
        let params = described
            .into_iter()
            .map(|i| {
                let p = &mut state.params[i];
                for s in &p.series {
                    until = until.min(spans.at(s.spec.seconds).1);
                }
                let mut status = super::status::param_status(
                    p.param,
                    latest(p),
                    p.limit.as_ref(),
                    &mut p.series,
                    spans,
                );
                status.last_exceedance = p.seen.as_ref().and_then(|s| s.exceedance);
                status
            })
            .collect();
        (params, until)
    }

    /// The configured stations a reading reached since the last call, by slot.
    pub fn take_changed(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.changed)
    }

    /// The kind and expected interval of the configured station at `slot`.
    pub fn station_kind(&self, slot: usize) -> (crate::model::Kind, u64) {
        let e = self.expect[slot];
        (self.kinds[slot], e.expected_interval_s)
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
}

/// The series of a configured station's parameter, one per window length.
fn new_series(
    stations: &Stations,
    key: &StationKey,
    param: Param,
    limit: &Option<Limit>,
) -> Vec<Series> {
    let Some(station) = stations.get(key) else {
        return Vec::new();
    };
    if !param.kinds().contains(&station.kind) {
        return Vec::new();
    }
    station
        .windows_for(param)
        .iter()
        .map(|spec| {
            Series::new(
                station.key.clone(),
                param,
                spec.clone(),
                station.expected_interval_s,
                station.min_capture,
                limit.clone(),
            )
        })
        .collect()
}

/// Queues the series' next close and next eviction when they are earlier than what is queued
/// for it: one live entry per series and kind (an entry not matching the series' queued time
/// is stale and skipped when it falls due).
fn schedule(
    due: &mut BinaryHeap<Reverse<(i64, Due, Loc)>>,
    series: &mut Series,
    horizon_ms: i64,
    loc: Loc,
) {
    let next = series.next_close_ms();
    if next < series.queued_close {
        series.queued_close = next;
        due.push(Reverse((next, Due::Close, loc)));
    }
    let next = series.next_evict_ms().saturating_add(horizon_ms);
    if next < series.queued_evict {
        series.queued_evict = next;
        due.push(Reverse((next, Due::Evict, loc)));
    }
}

fn window_state(s: &Series, spans: &mut Spans) -> Option<WindowState> {
    let closed = s.last_valid_mean();
    let running = s.mean_at(spans.at(s.spec.seconds).0);
    (closed.is_some() || running.is_some()).then(|| WindowState {
        key: s.key.clone(),
        param: s.param,
        window: s.spec.label.clone(),
        limit_max: s.limit.as_ref().and_then(|l| l.max),
        closed,
        running,
    })
}

#[cfg(test)]
mod due_tests;
