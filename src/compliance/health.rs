//! Station health: is the station talking, and are its analysers measuring?
//!
//! An exceedance alert is only as good as the data behind it, so operators also need to know
//! when a station went quiet, reports a device fault (Circular 10/2021 status `02`), is being
//! calibrated (`01`), or sends a flat line — the same value again and again, the classic sign of
//! a frozen analyser or datalogger (regulations.md §5: stuck/flat-line checks, data-gap and
//! device-fault alerts).
//!
//! Rules, in priority order when several hold:
//! - `silent`: a configured station has sent nothing for more than 3 × `expected_interval_s`,
//!   measured on the receive side (the `now_ms` of the message), so a datalogger replaying old
//!   readings still counts as talking. A station never heard from is measured from the engine's
//!   start, and until then it is `unheard`, never `ok`: nothing says it works.
//! - `fault` / `calibrating`: the latest reading (by its own time) of some parameter has status
//!   `02` / `01`. Parameters whose latest reading is more than 3 intervals older than the
//!   station's newest reading are left out, so a parameter the station stopped sending cannot
//!   hold it in fault forever.
//! - `stuck`: a parameter's status-00 value has stayed exactly equal for at least
//!   `stuck_after_s` over at least 3 samples (`stuck_after_s = 0` turns the check off).
//!
//! Stations that are not configured have no expected interval and no stuck threshold: they are
//! never silent or stuck, only fault or calibrating.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use crate::config::{Station, Stations};
use crate::model::{Param, Reading, StationKey, Status};

use super::state::{Dec, Enc, StateError};
use super::FxBuild;

/// How many expected intervals without a message make a station silent.
pub const SILENT_AFTER_INTERVALS: i64 = 3;

/// A flat line needs at least this many identical samples.
pub const STUCK_MIN_SAMPLES: u32 = 3;

pub use crate::model::HealthState;

/// Health of one station at a given time.
#[derive(Clone, Debug, PartialEq)]
pub struct StationHealth {
    pub key: StationKey,
    pub state: HealthState,
    /// Receive time of the station's latest message (after a rebuild: the newest reading
    /// time found in the journal).
    pub last_reading_ms: Option<i64>,
    /// Parameters whose value is stuck, whatever the overall state.
    pub stuck_params: Vec<Param>,
}

#[derive(Clone, Debug)]
struct Run {
    value: f64,
    first_ts: i64,
    last_ts: i64,
    count: u32,
}

#[derive(Clone, Debug)]
struct ParamTrack {
    param: Param,
    latest_ts: i64,
    latest_status: Status,
    /// The current run of identical status-00 values.
    run: Option<Run>,
}

#[derive(Clone, Debug, Default)]
struct StationTrack {
    last_seen_ms: Option<i64>,
    /// A reading arrived since [`Tracker::changes`] last looked at the station.
    dirty: bool,
    /// The station has an entry in the silence queue.
    queued: bool,
    /// What [`Tracker::changes`] last reported.
    reported: Option<(HealthState, Option<i64>, Vec<Param>)>,
    /// Indexed by [`Param::index`] (table order, which is also `Param`'s order); grows to the
    /// highest parameter heard from.
    params: Vec<Option<ParamTrack>>,
}

impl StationTrack {
    /// The parameters heard from, in `Param` order.
    fn params(&self) -> impl Iterator<Item = (Param, &ParamTrack)> {
        self.params
            .iter()
            .filter_map(|p| p.as_ref().map(|p| (p.param, p)))
    }
}

/// Which station a [`Tracker`] call is about, from [`Tracker::handle`]: lets the engine look
/// a station up once per message rather than once per reading.
pub type Handle = usize;

/// What health is computed from, updated as readings arrive.
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    /// In the order stations were first met; [`Tracker::health`] sorts the ones it lists.
    tracks: Vec<(StationKey, StationTrack)>,
    index: HashMap<StationKey, Handle, FxBuild>,
    /// The last station looked up: consecutive readings nearly always share their key's
    /// allocation, so a pointer comparison answers without hashing.
    last: Option<Handle>,
    /// Stations a reading reached since [`Tracker::changes`] last ran.
    dirty: Vec<Handle>,
    /// When a configured station turns silent unless it is heard from before: the only state
    /// that changes with the clock alone. One entry per station at most; an entry that falls
    /// due for a station heard from since is put back at its new time.
    silence: BinaryHeap<Reverse<(i64, Handle)>>,
    /// [`Tracker::changes`] has reported every station once.
    primed: bool,
}

impl Tracker {
    /// The station's handle, adding it when it is new. The engine adds its configured
    /// stations first, in order, so their handles are their positions in that order.
    pub fn handle(&mut self, key: &StationKey) -> Handle {
        if let Some(h) = self.last {
            // By allocation only: comparing strings here would cost a fetch of another
            // station's key with nearly every message of a large park.
            if self.tracks[h].0.is_same(key) {
                return h;
            }
        }
        let h = match self.index.get(key) {
            Some(&h) => h,
            None => {
                let h = self.tracks.len();
                self.tracks.push((key.clone(), StationTrack::default()));
                self.index.insert(key.clone(), h);
                h
            }
        };
        self.last = Some(h);
        h
    }

    /// The station sent something that arrived at `at_ms`.
    pub fn seen(&mut self, key: &StationKey, at_ms: i64) {
        let h = self.handle(key);
        self.seen_at(h, at_ms);
    }

    /// [`Tracker::seen`] by handle.
    pub fn seen_at(&mut self, h: Handle, at_ms: i64) {
        let t = &mut self.tracks[h].1;
        t.last_seen_ms = Some(t.last_seen_ms.map_or(at_ms, |s| s.max(at_ms)));
        if !t.dirty {
            t.dirty = true;
            self.dirty.push(h);
        }
    }

    /// The station's handle when it was seen or configured, without adding it.
    pub fn find(&self, key: &StationKey) -> Option<Handle> {
        self.index.get(key).copied()
    }

    /// Health at `now_ms` of the stations whose health changed since the last call (every
    /// station the first time), with their handles: only stations a reading reached and
    /// stations whose silence deadline passed are looked at, so the cost follows the readings,
    /// not the size of the park. `stations` must be the configured stations whose handles
    /// are their positions in key order (as the engine adds them).
    pub fn changes(
        &mut self,
        stations: &[Expect],
        started_ms: i64,
        now_ms: i64,
    ) -> Vec<(Handle, StationHealth)> {
        let mut due = std::mem::take(&mut self.dirty);
        if !self.primed {
            self.primed = true;
            due = (0..self.tracks.len()).collect();
        }
        while let Some(&Reverse((at, h))) = self.silence.peek() {
            if at > now_ms {
                break;
            }
            self.silence.pop();
            self.tracks[h].1.queued = false;
            due.push(h);
        }
        due.sort_unstable();
        due.dedup();
        let mut out = Vec::new();
        for h in due {
            let station = stations.get(h).copied();
            let (key, track) = &mut self.tracks[h];
            track.dirty = false;
            let health = evaluate(key, Some(&*track), station, started_ms, now_ms);
            if let Some(s) = station {
                if health.state != HealthState::Silent && !track.queued {
                    let interval_ms = s.expected_interval_s as i64 * 1000;
                    let last = track.last_seen_ms.unwrap_or(started_ms);
                    let at = last + SILENT_AFTER_INTERVALS * interval_ms + 1;
                    track.queued = true;
                    self.silence.push(Reverse((at.max(now_ms + 1), h)));
                }
            }
            let now = (
                health.state,
                health.last_reading_ms,
                health.stuck_params.clone(),
            );
            if track.reported.as_ref() != Some(&now) {
                track.reported = Some(now);
                out.push((h, health));
            }
        }
        out
    }

    /// Records one reading's status and value.
    pub fn observe(&mut self, r: &Reading) {
        let h = self.handle(&r.key);
        self.observe_at(h, r);
    }

    /// [`Tracker::observe`] by handle (of `r.key`).
    pub fn observe_at(&mut self, h: Handle, r: &Reading) {
        let params = &mut self.tracks[h].1.params;
        let i = r.param.index();
        if params.len() <= i {
            params.resize(i + 1, None);
        }
        let p = params[i].get_or_insert(ParamTrack {
            param: r.param,
            latest_ts: r.ts_ms,
            latest_status: r.status,
            run: None,
        });
        // A status event (no value) moves the status like any reading.
        if r.ts_ms >= p.latest_ts {
            p.latest_ts = r.ts_ms;
            p.latest_status = r.status;
        }
        let (Status::Normal, Some(value)) = (r.status, r.value) else {
            return;
        };
        match &mut p.run {
            // Late or repeated readings say nothing about the present: only newer ones count.
            Some(run) if r.ts_ms <= run.last_ts => {}
            Some(run) if run.value == value => {
                run.last_ts = r.ts_ms;
                run.count += 1;
            }
            _ => {
                p.run = Some(Run {
                    value,
                    first_ts: r.ts_ms,
                    last_ts: r.ts_ms,
                    count: 1,
                })
            }
        }
    }

    /// Health at `now_ms` of every configured station, in their order, then every other
    /// station seen, by key. `started_ms` stands in for the last message of a station never
    /// heard from.
    pub fn health(&self, stations: &Stations, started_ms: i64, now_ms: i64) -> Vec<StationHealth> {
        let mut out: Vec<StationHealth> = stations
            .iter()
            .map(|s| {
                let track = self.index.get(&s.key).map(|&h| &self.tracks[h].1);
                evaluate(&s.key, track, Some(Expect::of(s)), started_ms, now_ms)
            })
            .collect();
        let mut others: Vec<&(StationKey, StationTrack)> = self
            .tracks
            .iter()
            .filter(|(key, _)| stations.get(key).is_none())
            .collect();
        others.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, track) in others {
            out.push(evaluate(key, Some(track), None, started_ms, now_ms));
        }
        out
    }

    /// Writes what readings made of every station's health (see `compliance::state`): when
    /// it was last heard from, and per parameter its latest status and run of equal values.
    /// What is reported and queued is not kept: after a load every station is looked at
    /// again, as after a rebuild.
    pub fn save(&self, e: &mut Enc) {
        e.len(self.tracks.len());
        for (key, t) in &self.tracks {
            e.str(key.park());
            e.str(key.site());
            e.str(key.station());
            e.opt_i64(t.last_seen_ms);
            e.len(t.params.len());
            for p in &t.params {
                e.bool(p.is_some());
                let Some(p) = p else { continue };
                e.param(p.param);
                e.i64(p.latest_ts);
                e.status(p.latest_status);
                e.bool(p.run.is_some());
                if let Some(run) = &p.run {
                    e.f64(run.value);
                    e.i64(run.first_ts);
                    e.i64(run.last_ts);
                    e.u32(run.count);
                }
            }
        }
    }

    /// Reads what [`Tracker::save`] wrote into a tracker that holds the configured stations
    /// (added first, in the same order, so their handles do not move).
    pub fn load(&mut self, d: &mut Dec<'_>) -> Result<(), StateError> {
        for _ in 0..d.len()? {
            let (park, site, station) = (d.str()?, d.str()?, d.str()?);
            let key = StationKey::parse(park, site, station).map_err(StateError::Mismatch)?;
            let h = self.handle(&key);
            let last_seen_ms = d.opt_i64()?;
            let n = d.len()?;
            let mut params = Vec::with_capacity(n);
            for _ in 0..n {
                if !d.bool()? {
                    params.push(None);
                    continue;
                }
                let (param, latest_ts, latest_status) = (d.param()?, d.i64()?, d.status()?);
                let run = if d.bool()? {
                    Some(Run {
                        value: d.f64()?,
                        first_ts: d.i64()?,
                        last_ts: d.i64()?,
                        count: d.u32()?,
                    })
                } else {
                    None
                };
                params.push(Some(ParamTrack {
                    param,
                    latest_ts,
                    latest_status,
                    run,
                }));
            }
            let t = &mut self.tracks[h].1;
            t.last_seen_ms = last_seen_ms;
            t.params = params;
            if !t.dirty {
                t.dirty = true;
                self.dirty.push(h);
            }
        }
        Ok(())
    }
}

/// What health needs of a configured station's settings.
#[derive(Clone, Copy, Debug)]
pub struct Expect {
    pub expected_interval_s: u64,
    pub stuck_after_s: u64,
}

impl Expect {
    pub fn of(s: &Station) -> Expect {
        Expect {
            expected_interval_s: s.expected_interval_s,
            stuck_after_s: s.stuck_after_s,
        }
    }
}

fn evaluate(
    key: &StationKey,
    track: Option<&StationTrack>,
    station: Option<Expect>,
    started_ms: i64,
    now_ms: i64,
) -> StationHealth {
    let last_seen = track.and_then(|t| t.last_seen_ms);
    let silent = station.is_some_and(|s| {
        let interval_ms = s.expected_interval_s as i64 * 1000;
        now_ms - last_seen.unwrap_or(started_ms) > SILENT_AFTER_INTERVALS * interval_ms
    });
    let newest = track.and_then(|t| t.params().map(|(_, p)| p.latest_ts).max());
    let recent = |p: &ParamTrack| match (station, newest) {
        (Some(s), Some(newest)) => {
            newest - p.latest_ts <= SILENT_AFTER_INTERVALS * s.expected_interval_s as i64 * 1000
        }
        _ => true,
    };
    let current: Vec<(Param, &ParamTrack)> = track
        .map(|t| t.params().filter(|(_, p)| recent(p)).collect())
        .unwrap_or_default();
    let any_status = |st: Status| current.iter().any(|(_, p)| p.latest_status == st);
    let stuck_params: Vec<Param> = match station {
        Some(s) if s.stuck_after_s > 0 => current
            .iter()
            .filter(|(_, p)| {
                p.run.as_ref().is_some_and(|r| {
                    r.count >= STUCK_MIN_SAMPLES
                        && r.last_ts - r.first_ts >= s.stuck_after_s as i64 * 1000
                })
            })
            .map(|(param, _)| *param)
            .collect(),
        _ => Vec::new(),
    };
    let state = if silent {
        HealthState::Silent
    } else if station.is_some() && last_seen.is_none() {
        HealthState::Unheard
    } else if any_status(Status::Fault) {
        HealthState::Fault
    } else if any_status(Status::Calibrating) {
        HealthState::Calibrating
    } else if !stuck_params.is_empty() {
        HealthState::Stuck
    } else {
        HealthState::Ok
    };
    StationHealth {
        key: key.clone(),
        state,
        last_reading_ms: last_seen,
        stuck_params,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{StationDefaults, WindowSpec};
    use crate::metrics::STATION_STATES;

    const MIN: i64 = 60_000;

    fn stations() -> Stations {
        stations_stuck_after(3600)
    }

    fn stations_stuck_after(stuck_after_s: u64) -> Stations {
        let defaults = StationDefaults {
            windows: vec![WindowSpec::parse("1h").unwrap()],
            min_capture: 0.75,
            stuck_after_s,
        };
        Stations::parse(
            "[[station]]\npark = \"p\"\nsite = \"s\"\nstation = \"outfall-1\"\nkind = \"wastewater\"\n",
            "stations.toml",
            &defaults,
        )
        .unwrap()
    }

    fn key() -> StationKey {
        StationKey::parse("p", "s", "outfall-1").unwrap()
    }

    fn reading(param: Param, ts_ms: i64, value: f64, status: Status) -> Reading {
        Reading {
            key: key(),
            param,
            ts_ms,
            value: Some(value),
            status,
        }
    }

    fn state(t: &Tracker, now: i64) -> HealthState {
        t.health(&stations(), 0, now)[0].state
    }

    #[test]
    fn labels_are_the_metric_states() {
        let labels: Vec<_> = HealthState::ALL.iter().map(|s| s.label()).collect();
        assert_eq!(labels, STATION_STATES);
    }

    #[test]
    fn silent_after_three_intervals_without_a_message() {
        // expected_interval_s = 300: silent when more than 900 s pass without a message.
        let mut t = Tracker::default();
        assert_eq!(state(&t, 0), HealthState::Unheard, "never heard, at start");
        assert_eq!(
            state(&t, 15 * MIN),
            HealthState::Unheard,
            "never heard, 3 intervals after start: not silent yet, and not ok"
        );
        assert_eq!(
            state(&t, 15 * MIN + 1),
            HealthState::Silent,
            "never heard since start"
        );
        t.seen(&key(), 20 * MIN);
        t.observe(&reading(Param::COD, 20 * MIN, 40.0, Status::Normal));
        let h = &t.health(&stations(), 0, 35 * MIN)[0];
        assert_eq!(h.state, HealthState::Ok);
        assert_eq!(h.last_reading_ms, Some(20 * MIN));
        assert_eq!(state(&t, 35 * MIN + 1), HealthState::Silent);
    }

    // What the gauges and the page are told: the station goes silent at its deadline, not
    // before and not later, and is back with its next message, with a new deadline.
    #[test]
    fn changes_report_silence_at_its_deadline_and_the_return_after_it() {
        let expect: Vec<Expect> = stations().iter().map(Expect::of).collect();
        let mut t = Tracker::default();
        let h = t.handle(&key());
        let states = |t: &mut Tracker, now: i64| -> Vec<HealthState> {
            let changes = t.changes(&expect, 0, now);
            changes
                .into_iter()
                .map(|(_, health)| health.state)
                .collect()
        };
        t.seen_at(h, 0);
        t.observe_at(h, &reading(Param::COD, 0, 40.0, Status::Normal));
        assert_eq!(states(&mut t, 0), [HealthState::Ok]);
        assert_eq!(states(&mut t, 15 * MIN), [], "not silent yet");
        assert_eq!(states(&mut t, 15 * MIN + 1), [HealthState::Silent]);
        assert_eq!(states(&mut t, 16 * MIN), [], "said once");
        t.seen_at(h, 20 * MIN);
        t.observe_at(h, &reading(Param::COD, 20 * MIN, 40.0, Status::Normal));
        assert_eq!(states(&mut t, 20 * MIN), [HealthState::Ok], "back");
        assert_eq!(states(&mut t, 35 * MIN), []);
        assert_eq!(states(&mut t, 35 * MIN + 1), [HealthState::Silent], "again");
    }

    #[test]
    fn fault_and_calibrating_follow_the_latest_status_circular_10_2021() {
        let mut t = Tracker::default();
        t.seen(&key(), 5 * MIN);
        t.observe(&reading(Param::COD, 5 * MIN, 40.0, Status::Normal));
        t.observe(&reading(Param::PH, 5 * MIN, 7.0, Status::Calibrating));
        assert_eq!(state(&t, 6 * MIN), HealthState::Calibrating);
        t.observe(&reading(Param::COD, 10 * MIN, 40.0, Status::Fault));
        assert_eq!(
            state(&t, 11 * MIN),
            HealthState::Fault,
            "fault beats calibrating"
        );
        // A late replay of an older normal reading does not clear the fault.
        t.observe(&reading(Param::COD, 8 * MIN, 40.0, Status::Normal));
        assert_eq!(state(&t, 11 * MIN), HealthState::Fault);
        t.observe(&reading(Param::COD, 15 * MIN, 41.0, Status::Normal));
        t.observe(&reading(Param::PH, 15 * MIN, 7.0, Status::Normal));
        t.seen(&key(), 15 * MIN);
        assert_eq!(state(&t, 16 * MIN), HealthState::Ok);
        // Silence beats everything.
        t.observe(&reading(Param::COD, 16 * MIN, 41.0, Status::Fault));
        assert_eq!(state(&t, 60 * MIN), HealthState::Silent);
    }

    #[test]
    fn a_parameter_no_longer_reported_does_not_hold_the_station_in_fault() {
        let mut t = Tracker::default();
        t.observe(&reading(Param::TSS, 0, 10.0, Status::Fault));
        t.observe(&reading(Param::COD, 0, 40.0, Status::Normal));
        t.observe(&reading(Param::COD, 20 * MIN, 41.0, Status::Normal));
        t.seen(&key(), 20 * MIN);
        assert_eq!(state(&t, 21 * MIN), HealthState::Ok);
    }

    #[test]
    fn stuck_after_identical_values_for_stuck_after_s_with_three_samples() {
        // stuck_after_s = 3600: 13 identical 5-minute samples span exactly 3600 s.
        let mut t = Tracker::default();
        for i in 0..12 {
            t.observe(&reading(Param::COD, i * 5 * MIN, 42.5, Status::Normal));
            t.observe(&reading(
                Param::PH,
                i * 5 * MIN,
                7.0 + i as f64 / 100.0,
                Status::Normal,
            ));
        }
        t.seen(&key(), 55 * MIN);
        assert_eq!(
            state(&t, 56 * MIN),
            HealthState::Ok,
            "55 min is not yet an hour"
        );
        t.observe(&reading(Param::COD, 60 * MIN, 42.5, Status::Normal));
        t.seen(&key(), 60 * MIN);
        let h = &t.health(&stations(), 0, 61 * MIN)[0];
        assert_eq!(h.state, HealthState::Stuck);
        assert_eq!(h.stuck_params, [Param::COD]);
        // A changed value ends the run.
        t.observe(&reading(Param::COD, 65 * MIN, 42.6, Status::Normal));
        assert_eq!(state(&t, 66 * MIN), HealthState::Ok);
    }

    #[test]
    fn a_run_is_measured_from_its_first_sample_and_stuck_after_s_0_turns_the_check_off() {
        // Three identical samples from 10:00 to 10:10: a run of 10 minutes, not an hour.
        let mut t = Tracker::default();
        for ts in [600 * MIN, 605 * MIN, 610 * MIN] {
            t.observe(&reading(Param::COD, ts, 42.5, Status::Normal));
        }
        t.seen(&key(), 610 * MIN);
        assert_eq!(
            t.health(&stations(), 0, 611 * MIN)[0].state,
            HealthState::Ok
        );
        // An hour of identical samples with the check off.
        let off = stations_stuck_after(0);
        for i in 3..=13 {
            t.observe(&reading(
                Param::COD,
                600 * MIN + i * 5 * MIN,
                42.5,
                Status::Normal,
            ));
        }
        t.seen(&key(), 665 * MIN);
        assert_eq!(
            t.health(&stations(), 0, 666 * MIN)[0].state,
            HealthState::Stuck
        );
        assert_eq!(t.health(&off, 0, 666 * MIN)[0].state, HealthState::Ok);
    }

    #[test]
    fn a_parameter_two_intervals_behind_the_newest_still_counts() {
        // The analyser's COD fault at 10:00, then only TSS, until 10:10 (intervals of 5 min):
        // COD is still current, so the station is still at fault.
        let mut t = Tracker::default();
        t.observe(&reading(Param::COD, 600 * MIN, 0.0, Status::Fault));
        t.observe(&reading(Param::TSS, 610 * MIN, 40.0, Status::Normal));
        t.seen(&key(), 610 * MIN);
        assert_eq!(state(&t, 611 * MIN), HealthState::Fault);
        // Four intervals behind: no longer current.
        t.observe(&reading(Param::TSS, 620 * MIN, 40.0, Status::Normal));
        t.seen(&key(), 620 * MIN);
        assert_eq!(state(&t, 621 * MIN), HealthState::Ok);
    }

    #[test]
    fn two_samples_an_hour_apart_are_not_a_flat_line() {
        let mut t = Tracker::default();
        t.observe(&reading(Param::COD, 0, 42.5, Status::Normal));
        t.observe(&reading(Param::COD, 60 * MIN, 42.5, Status::Normal));
        // A redelivered duplicate is not a third sample.
        t.observe(&reading(Param::COD, 60 * MIN, 42.5, Status::Normal));
        t.seen(&key(), 60 * MIN);
        assert_eq!(state(&t, 61 * MIN), HealthState::Ok);
    }

    #[test]
    fn a_fault_reported_without_a_value_is_a_fault() {
        // Circular 10/2021 status 02 with an empty value (a datalogger whose analyser is down):
        // the station's state is fault, exactly as with a value.
        let mut t = Tracker::default();
        t.seen(&key(), 10 * MIN);
        t.observe(&reading(Param::COD, 5 * MIN, 40.0, Status::Normal));
        t.observe(&Reading {
            value: None,
            ..reading(Param::COD, 10 * MIN, 0.0, Status::Fault)
        });
        assert_eq!(state(&t, 11 * MIN), HealthState::Fault);
        t.observe(&Reading {
            value: None,
            ..reading(Param::PH, 10 * MIN, 0.0, Status::Calibrating)
        });
        assert_eq!(
            state(&t, 11 * MIN),
            HealthState::Fault,
            "fault outranks calibrating"
        );
        t.observe(&reading(Param::COD, 15 * MIN, 41.0, Status::Normal));
        t.seen(&key(), 15 * MIN);
        assert_eq!(state(&t, 16 * MIN), HealthState::Calibrating);
    }

    #[test]
    fn unconfigured_stations_are_listed_but_never_silent() {
        let mut t = Tracker::default();
        let other = StationKey::parse("p", "s", "unknown").unwrap();
        t.seen(&other, 0);
        t.observe(&Reading {
            key: other.clone(),
            param: Param::COD,
            ts_ms: 0,
            value: Some(1.0),
            status: Status::Calibrating,
        });
        let all = t.health(&stations(), 0, 999 * MIN);
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].key, other);
        assert_eq!(all[1].state, HealthState::Calibrating);
    }
}
