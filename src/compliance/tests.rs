//! Engine tests: the rules of regulations.md §1.1, §2.1, §4–6 and the contract, end to end
//! through `judge`, `tick` and `restore`, with hand-computed numbers.

use super::*;

mod gauges;
mod state;
use crate::config::{StationDefaults, Stations, WindowSpec};
use crate::model::LimitSource;
use crate::model::{Reading, Status, WindowPoint};
use chrono_tz::Asia::Ho_Chi_Minh;
// The contract's example stations.
use quantrac_testkit::fixtures::CONTRACT_STATIONS as STATIONS;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
/// 2026-11-29T00:00:00Z = 07:00 in Hải Phòng.
const T0: i64 = 1_795_910_400_000;

fn engine() -> Engine {
    engine_in(Ho_Chi_Minh)
}

fn engine_in(tz: chrono_tz::Tz) -> Engine {
    let defaults = StationDefaults {
        windows: vec![
            WindowSpec::parse("1h").unwrap(),
            WindowSpec::parse("24h").unwrap(),
        ],
        min_capture: 0.75,
        stuck_after_s: 3600,
    };
    let stations = Stations::parse(STATIONS, "stations.toml", &defaults).unwrap();
    Engine::new(stations, &Catalogue::builtin(), tz)
}

fn outfall() -> StationKey {
    StationKey::parse("nam-dinh-vu", "nd-textile", "outfall-1").unwrap()
}

fn stack() -> StationKey {
    StationKey::parse("dinh-vu", "dv-steel", "stack-1").unwrap()
}

fn r(key: &StationKey, param: Param, ts_ms: i64, value: f64) -> Reading {
    Reading {
        key: key.clone(),
        param,
        ts_ms,
        value: Some(value),
        status: Status::Normal,
    }
}

fn with_status(mut reading: Reading, status: Status) -> Reading {
    reading.status = status;
    reading
}

fn only<'a>(points: &'a [WindowPoint], window: &str) -> Vec<&'a WindowPoint> {
    points.iter().filter(|p| p.window == window).collect()
}

/// Sends one COD reading every 5 minutes from `from` (inclusive), each in its own message
/// received at its own time.
fn feed_cod(e: &mut Engine, from: i64, count: i64, value: f64) -> Vec<WindowPoint> {
    let mut points = Vec::new();
    for i in 0..count {
        let ts = from + i * 5 * MIN;
        let (_, p) = e.judge(vec![r(&outfall(), Param::COD, ts, value)], ts);
        points.extend(p);
    }
    points
}

#[test]
fn instant_verdict_against_qcvn_40_col_b_cod_135() {
    // 150 × Kq 0.9 × Kf 1.0 = 135 mg/L; 140 > 135 → exceeded, ratio 140 / 135.
    let mut e = engine();
    let (j, points) = e.judge(vec![r(&outfall(), Param::COD, T0, 140.0)], T0);
    assert!(points.is_empty());
    assert_eq!(j[0].limit.as_ref().unwrap().max, Some(135.0));
    assert!(j[0].exceeded);
    assert!((j[0].ratio.unwrap() - 140.0 / 135.0).abs() < 1e-12);
    assert_eq!(j[0].value_ref, None);

    let (j, _) = e.judge(
        vec![r(&outfall(), Param::COD, T0 + 5 * MIN, 135.0)],
        T0 + 5 * MIN,
    );
    assert!(!j[0].exceeded, "equal to the maximum is within it");
}

#[test]
fn ph_range_5_5_to_9_and_temp_40_without_coefficients() {
    // QCVN 40:2011 Table 1 col B, clause 2.2 (Cmax = C for pH and temperature).
    let mut e = engine();
    let msg = vec![
        r(&outfall(), Param::PH, T0, 5.4),
        r(&outfall(), Param::PH, T0 + 1, 9.0),
        r(&outfall(), Param::Temp, T0, 40.5),
        r(&outfall(), Param::Temp, T0 + 1, 36.0),
    ];
    let (j, _) = e.judge(msg, T0);
    let verdicts: Vec<bool> = j.iter().map(|j| j.exceeded).collect();
    assert_eq!(verdicts, [true, false, true, false]);
    assert_eq!(j[0].limit.as_ref().unwrap().min, Some(5.5));
    assert!((j[1].ratio.unwrap() - 1.0).abs() < 1e-12);
    assert!((j[3].ratio.unwrap() - 36.0 / 40.0).abs() < 1e-12);
}

#[test]
fn status_other_than_00_is_never_exceeded_and_has_no_ratio() {
    // Contract: only "00" readings take part in compliance verdicts.
    let mut e = engine();
    let msg = vec![
        with_status(r(&outfall(), Param::COD, T0, 900.0), Status::Calibrating),
        with_status(r(&outfall(), Param::TSS, T0, 900.0), Status::Fault),
    ];
    let (j, _) = e.judge(msg, T0);
    for judged in &j {
        assert!(!judged.exceeded);
        assert_eq!(judged.ratio, None);
        assert!(judged.limit.is_some(), "the limit is still recorded");
    }
}

#[test]
fn o2_correction_applies_before_the_permit_limit() {
    // SO2 250 at O2 11 %, reference 7 %: 250 × 13.9 / 9.9 = 351.01 > permit 300, although
    // the measured 250 is below it (contract: limits apply to C_ref).
    let mut e = engine();
    let msg = vec![
        r(&stack(), Param::SO2, T0, 250.0),
        r(&stack(), Param::O2, T0, 11.0),
        r(&stack(), Param::PM, T0, 100.0),
    ];
    let (j, _) = e.judge(msg, T0);
    let so2 = &j[0];
    assert!((so2.value_ref.unwrap() - 250.0 * 13.9 / 9.9).abs() < 1e-9);
    assert!(so2.exceeded);
    assert!((so2.ratio.unwrap() - 250.0 * 13.9 / 9.9 / 300.0).abs() < 1e-12);
    assert_eq!(so2.limit.as_ref().unwrap().source, LimitSource::Permit);
    // O2 itself is neither corrected nor limited.
    assert_eq!(j[1].value_ref, None);
    assert_eq!(j[1].limit, None);
    // PM 100 → 140.40 against the permit's 100 (the table's 200 × 0.9 = 180 does not apply).
    assert!((j[2].value_ref.unwrap() - 140.404_040_4).abs() < 1e-6);
    assert_eq!(j[2].limit.as_ref().unwrap().max, Some(100.0));
    assert!(j[2].exceeded);
}

#[test]
fn o2_at_or_above_20_percent_leaves_the_value_uncorrected() {
    let mut e = engine();
    let msg = vec![
        r(&stack(), Param::SO2, T0, 250.0),
        r(&stack(), Param::O2, T0, 20.4),
    ];
    let (j, _) = e.judge(msg, T0);
    assert_eq!(j[0].value_ref, None);
    assert!(!j[0].exceeded, "raw 250 is below 300");
    assert!((j[0].ratio.unwrap() - 250.0 / 300.0).abs() < 1e-12);
}

#[test]
fn table_limit_without_permit_is_unverified_qcvn_19_so2_col_b() {
    // CO has no permit value at stack-1: 1000 × Kp 0.9 × Kv 1.0 = 900 mg/Nm3, [U].
    let e = engine();
    let co = e.limit(&stack(), Param::CO).unwrap();
    assert_eq!(co.max, Some(900.0));
    assert!(matches!(
        co.source,
        LimitSource::Regulation {
            unverified: true,
            ..
        }
    ));
    // Each station its own: the outfall's COD (QCVN 40 column B, 150 × 0.9 × 1.0), and no
    // limit for a station not in the file.
    assert_eq!(e.limit(&outfall(), Param::COD).unwrap().max, Some(135.0));
    let stranger = StationKey::parse("p", "s", "nobody").unwrap();
    assert!(e.limit(&stranger, Param::COD).is_none());
    // Warnings: CO and NOx rest on [U] values; PM and SO2 are overridden by the permit.
    let w = e.warnings();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w.iter().all(|w| w.contains("dinh-vu/dv-steel/stack-1")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|w| w.contains("the CO limit (max 900 mg/Nm3)")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|w| w.contains("the NOx limit (max 765 mg/Nm3)")),
        "{w:?}"
    );
}

#[test]
fn limit_table_lists_every_station_parameter_with_a_limit() {
    let rows = engine().limit_table();
    let cod = rows
        .iter()
        .find(|r| r.key == outfall() && r.param == Param::COD)
        .unwrap();
    assert_eq!(cod.limit.max, Some(135.0));
    assert_eq!(cod.windows, ["1h", "24h"]);
    assert_eq!(cod.o2_ref, None);
    let so2 = rows
        .iter()
        .find(|r| r.key == stack() && r.param == Param::SO2)
        .unwrap();
    assert_eq!(so2.limit.max, Some(300.0));
    assert_eq!(so2.o2_ref, Some(7.0));
    // Outfall: Temp, Color, pH, BOD5, COD, TSS, NH4, TN, TP, Cl; stack: PM, SO2, NOx, CO.
    assert_eq!(rows.iter().filter(|r| r.key == outfall()).count(), 10);
    assert_eq!(rows.iter().filter(|r| r.key == stack()).count(), 4);
    assert!(!rows
        .iter()
        .any(|r| r.param == Param::Flow || r.param == Param::TOC));
}

#[test]
fn a_full_hour_of_twelve_five_minute_samples_closes_valid_at_the_hour() {
    let mut e = engine();
    assert!(
        feed_cod(&mut e, T0, 12, 100.0).is_empty(),
        "nothing closed while feeding"
    );
    assert!(e.tick(T0 + HOUR - 1).is_empty());
    let points = e.tick(T0 + HOUR);
    assert_eq!(points.len(), 1, "only the 1h window closed: {points:?}");
    let p = &points[0];
    assert_eq!((p.window.as_str(), p.start_ms), ("1h", T0));
    assert_eq!(p.samples, 12);
    assert_eq!(p.capture, 1.0);
    assert!(p.valid);
    assert_eq!(p.limit_max, Some(135.0));
    assert!((p.ratio.unwrap() - 100.0 / 135.0).abs() < 1e-12);
    assert!(!p.exceeded);
    assert!(e.tick(T0 + HOUR + MIN).is_empty(), "emitted once");
}

#[test]
fn eight_of_twelve_samples_is_invalid_so_no_exceedance() {
    // capture 8/12 = 0.667 < min_capture 0.75: mean 200 > 135 but not an exceedance.
    let mut e = engine();
    feed_cod(&mut e, T0, 8, 200.0);
    let p = e.tick(T0 + HOUR).pop().unwrap();
    assert_eq!(p.samples, 8);
    assert!((p.capture - 0.6667).abs() < 1e-4);
    assert!(!p.valid);
    assert!(!p.exceeded);
    assert!(p.ratio.unwrap() > 1.0);
}

#[test]
fn calibration_readings_stay_out_of_the_average() {
    // regulations.md §4.1/§6 item 5: only status-00 data enter compliance averages.
    let mut e = engine();
    feed_cod(&mut e, T0, 10, 100.0);
    for i in 10..12 {
        let ts = T0 + i * 5 * MIN;
        let reading = with_status(r(&outfall(), Param::COD, ts, 5000.0), Status::Calibrating);
        e.judge(vec![reading], ts);
    }
    let p = e.tick(T0 + HOUR).pop().unwrap();
    assert_eq!(p.samples, 10);
    assert_eq!(p.mean, 100.0);
    assert!((p.capture - 10.0 / 12.0).abs() < 1e-12);
    assert!(p.valid && !p.exceeded);
}

#[test]
fn day_windows_split_at_local_midnight_for_ho_chi_minh() {
    // 16:59:59Z is 23:59:59 on 29/11 in Hải Phòng, 17:00:00Z is 00:00 on 30/11.
    let mut e = engine();
    let a = T0 + 17 * HOUR - 1000;
    let b = T0 + 17 * HOUR;
    e.judge(vec![r(&outfall(), Param::COD, a, 10.0)], a);
    e.judge(vec![r(&outfall(), Param::COD, b, 20.0)], b);
    let points = e.tick(T0 + 48 * HOUR);
    let days = only(&points, "24h");
    assert_eq!(days.len(), 2);
    assert_eq!((days[0].start_ms, days[0].mean), (T0 - 7 * HOUR, 10.0));
    assert_eq!((days[1].start_ms, days[1].mean), (T0 + 17 * HOUR, 20.0));
    // A day window expects 86400 / 300 = 288 samples.
    assert!((days[0].capture - 1.0 / 288.0).abs() < 1e-12);
}

#[test]
fn the_24h_window_closes_at_local_midnight() {
    let mut e = engine();
    feed_cod(&mut e, T0, 1, 10.0);
    assert!(only(&e.tick(T0 + 17 * HOUR - 1), "24h").is_empty());
    let points = e.tick(T0 + 17 * HOUR);
    assert_eq!(only(&points, "24h")[0].start_ms, T0 - 7 * HOUR);
}

#[test]
fn late_data_rewrites_a_closed_window() {
    // Contract: late readings (a datalogger replaying its buffer) update their window and
    // rewrite its point.
    let mut e = engine();
    feed_cod(&mut e, T0, 8, 100.0);
    let first = e.tick(T0 + HOUR).pop().unwrap();
    assert_eq!(first.samples, 8);
    assert!(!first.valid);

    // At 03:00Z the buffer arrives: four readings of the 00:00 hour, in one message.
    let now = T0 + 3 * HOUR;
    let late: Vec<Reading> = (8..12)
        .map(|i| r(&outfall(), Param::COD, T0 + i * 5 * MIN, 160.0))
        .collect();
    let (judged, points) = e.judge(late, now);
    assert_eq!(judged.len(), 4);
    assert_eq!(
        points.len(),
        1,
        "the open 24h window is not emitted: {points:?}"
    );
    let p = &points[0];
    assert_eq!((p.window.as_str(), p.start_ms, p.samples), ("1h", T0, 12));
    assert!((p.mean - (8.0 * 100.0 + 4.0 * 160.0) / 12.0).abs() < 1e-9);
    assert!(p.valid);
    assert!(
        e.tick(now).is_empty(),
        "the rewrite is not emitted again by tick"
    );
}

#[test]
fn a_redelivered_message_does_not_double_count() {
    let mut e = engine();
    let msg = vec![r(&outfall(), Param::COD, T0, 100.0)];
    e.judge(msg.clone(), T0);
    e.judge(msg, T0 + 10);
    e.judge(
        vec![r(&outfall(), Param::COD, T0 + 5 * MIN, 130.0)],
        T0 + 5 * MIN,
    );
    let p = e.tick(T0 + HOUR).pop().unwrap();
    assert_eq!(p.samples, 2);
    assert_eq!(p.mean, 115.0);
}

#[test]
fn readings_beyond_the_late_horizon_are_judged_but_not_windowed() {
    let mut e = engine();
    assert_eq!(e.late_horizon_ms(), 48 * HOUR);
    let now = T0 + 72 * HOUR;
    let (j, points) = e.judge(vec![r(&outfall(), Param::COD, T0, 200.0)], now);
    assert!(j[0].exceeded, "still judged instantly");
    assert!(points.is_empty());
    assert!(e.tick(now).is_empty(), "no window was opened");
    // Within the horizon (the 1h window ended 47 h ago) it is windowed and rewritten.
    let ts = T0 + 24 * HOUR;
    let (_, points) = e.judge(vec![r(&outfall(), Param::COD, ts, 200.0)], now);
    assert_eq!(only(&points, "1h").len(), 1);
}

#[test]
fn restore_then_judge_equals_an_uninterrupted_run() {
    // 2 h of 5-minute data; the second engine restarts at 01:30Z, rebuilding from the journal.
    let readings: Vec<Reading> = (0..24)
        .map(|i| r(&outfall(), Param::COD, T0 + i * 5 * MIN, 90.0 + i as f64))
        .collect();
    let restart = T0 + 90 * MIN;

    let mut a = engine();
    let mut a_points = Vec::new();
    for reading in &readings {
        a_points.extend(a.judge(vec![reading.clone()], reading.ts_ms).1);
        a_points.extend(a.tick(reading.ts_ms));
    }
    a_points.extend(a.tick(T0 + 24 * HOUR));

    let mut b = engine();
    let (before, after): (Vec<Reading>, Vec<Reading>) =
        readings.iter().cloned().partition(|r| r.ts_ms < restart);
    b.restore(before, restart);
    assert!(
        b.tick(restart).is_empty(),
        "the 00:00 hour was written before the restart"
    );
    let mut b_points = Vec::new();
    for reading in &after {
        b_points.extend(b.judge(vec![reading.clone()], reading.ts_ms).1);
        b_points.extend(b.tick(reading.ts_ms));
    }
    b_points.extend(b.tick(T0 + 24 * HOUR));

    // After the restart, b emits exactly what a emitted after that time.
    let a_after: Vec<&WindowPoint> = a_points
        .iter()
        .filter(|p| p.start_ms + if p.window == "1h" { HOUR } else { 24 * HOUR } > restart)
        .collect();
    assert_eq!(a_after.len(), 2, "{a_after:?}");
    assert_eq!(b_points.iter().collect::<Vec<_>>(), a_after);
    assert_eq!(only(&b_points, "24h")[0].samples, 24);
    // And the window states agree.
    assert_eq!(a.window_states(), b.window_states());
}

#[test]
fn unconfigured_stations_get_no_verdict_and_no_window() {
    // Contract: readings from a station that is not configured are stored, with no verdict.
    let mut e = engine();
    let other = StationKey::parse("x", "y", "z").unwrap();
    let (j, _) = e.judge(vec![r(&other, Param::COD, T0, 9999.0)], T0);
    assert_eq!(j[0].limit, None);
    assert_eq!(j[0].ratio, None);
    assert!(!j[0].exceeded);
    assert!(e.tick(T0 + 48 * HOUR).is_empty());
    let h = e.health(T0 + 5 * MIN);
    assert_eq!(h.len(), 3);
    assert!(h
        .iter()
        .any(|h| h.key == other && h.state == HealthState::Ok));
}

#[test]
fn window_states_show_the_running_window_and_the_last_valid_one() {
    let mut e = engine();
    feed_cod(&mut e, T0, 12, 150.0);
    feed_cod(&mut e, T0 + HOUR, 3, 67.5);
    e.tick(T0 + HOUR + 10 * MIN);
    let states = e.window_states();
    let hour = states
        .iter()
        .find(|s| s.key == outfall() && s.param == Param::COD && &*s.window == "1h")
        .unwrap();
    let closed = hour.closed.as_ref().unwrap();
    assert_eq!(closed.start_ms, T0);
    assert!(closed.exceeded);
    assert!((closed.ratio.unwrap() - 150.0 / 135.0).abs() < 1e-12);
    let running = hour.running.as_ref().unwrap();
    assert_eq!(running.start_ms, T0 + HOUR);
    assert_eq!(running.ratio, Some(0.5));
    assert_eq!(running.capture, 0.25);
    let day = states.iter().find(|s| &*s.window == "24h").unwrap();
    assert!(day.closed.is_none());
    assert_eq!(day.running.as_ref().unwrap().samples, 15);
}

#[test]
fn an_invalid_closed_window_does_not_replace_the_last_valid_one() {
    let mut e = engine();
    feed_cod(&mut e, T0, 12, 150.0);
    feed_cod(&mut e, T0 + HOUR, 2, 10.0);
    e.tick(T0 + 2 * HOUR);
    let hour = e
        .window_states()
        .into_iter()
        .find(|s| &*s.window == "1h")
        .unwrap();
    assert_eq!(hour.closed.unwrap().start_ms, T0);
    assert!(hour.running.is_none(), "nothing in the 02:00 hour yet");
}

#[test]
fn health_silent_station_fault_and_start_time() {
    let mut e = engine();
    // Not heard from yet: neither ok nor silent.
    assert!(e.health(T0).iter().all(|h| h.state == HealthState::Unheard));
    e.tick(T0);
    // The outfall reports a fault; the stack is never heard from.
    let fault = with_status(r(&outfall(), Param::COD, T0 + 10 * MIN, 0.0), Status::Fault);
    e.judge(vec![fault], T0 + 10 * MIN);
    let h = e.health(T0 + 15 * MIN + 1);
    let state = |k: &StationKey| h.iter().find(|h| &h.key == k).unwrap().state;
    assert_eq!(state(&outfall()), HealthState::Fault);
    assert_eq!(
        state(&stack()),
        HealthState::Silent,
        "3 × 300 s after start, nothing"
    );
    let out = h.iter().find(|h| h.key == outfall()).unwrap();
    assert_eq!(out.last_reading_ms, Some(T0 + 10 * MIN));
}

#[test]
fn an_older_receive_time_cannot_reopen_a_forgotten_window() {
    let mut e = engine();
    feed_cod(&mut e, T0, 12, 100.0);
    assert_eq!(e.tick(T0 + 72 * HOUR).len(), 2, "1h and 24h points");
    // A message stamped with an earlier receive time (clock step back) for the 00:00 hour:
    // the window was evicted at 72 h, so it must not come back with a single sample.
    let (_, points) = e.judge(vec![r(&outfall(), Param::COD, T0, 100.0)], T0 + 10 * HOUR);
    assert!(points.is_empty(), "{points:?}");
    assert!(e.tick(T0 + 73 * HOUR).is_empty());
}

/// One stack message: SO2 `so2` mg/Nm3 with O2 `o2` % at `ts`.
fn stack_message(ts: i64, so2: f64, o2: f64) -> Vec<Reading> {
    vec![
        r(&stack(), Param::SO2, ts, so2),
        r(&stack(), Param::O2, ts, o2),
    ]
}

/// O2 13.95 % doubles a concentration at the stack's reference 7 %: (20.9 − 7) / (20.9 − 13.95)
/// = 13.9 / 6.95 = 2; O2 7 % leaves it as measured.
const DOUBLING_O2: f64 = 13.95;

/// The hour's SO2 point among `points`, checked against the hand computation: six samples of
/// 220 at the reference O2 and six of 220 × 2 = 440 give a mean of 330 mg/Nm3 at 7 % O2,
/// above the permit's 300 (ratio 1.1), although every measured value (220) is below it.
fn assert_corrected_stack_hour(points: &[WindowPoint]) {
    let hour: Vec<&WindowPoint> = points
        .iter()
        .filter(|p| p.param == Param::SO2 && p.window == "1h")
        .collect();
    assert_eq!(hour.len(), 1, "{points:?}");
    let p = hour[0];
    assert_eq!((p.start_ms, p.samples), (T0, 12));
    assert!((p.mean - 330.0).abs() < 1e-9, "mean {} at 7 % O2", p.mean);
    assert_eq!(p.capture, 1.0);
    assert!(p.valid);
    assert_eq!(p.limit_max, Some(300.0));
    assert!((p.ratio.unwrap() - 1.1).abs() < 1e-9);
    assert!(p.exceeded, "the corrected average exceeds the permit");
}

// README: windows average O2-corrected values where the station has `o2_ref` (stack averages
// at the reference O2), judged live…
#[test]
fn a_stack_hour_averages_o2_corrected_values() {
    let mut e = engine();
    for i in 0..12 {
        let ts = T0 + i * 5 * MIN;
        let o2 = if i < 6 { DOUBLING_O2 } else { 7.0 };
        let (judged, _) = e.judge(stack_message(ts, 220.0, o2), ts);
        let expected = if i < 6 { 440.0 } else { 220.0 };
        assert!((judged[0].value_ref.unwrap() - expected).abs() < 1e-9);
    }
    assert_corrected_stack_hour(&e.tick(T0 + HOUR));
}

// …and after a restart, when the first half of the hour is rebuilt from the journal.
#[test]
fn a_stack_hour_rebuilt_after_a_restart_averages_o2_corrected_values() {
    let restart = T0 + 30 * MIN;
    let mut e = engine();
    let before: Vec<Reading> = (0..6)
        .flat_map(|i| stack_message(T0 + i * 5 * MIN, 220.0, DOUBLING_O2))
        .collect();
    e.restore(before, restart);
    for i in 6..12 {
        let ts = T0 + i * 5 * MIN;
        e.judge(stack_message(ts, 220.0, 7.0), ts);
    }
    assert_corrected_stack_hour(&e.tick(T0 + HOUR));

    // The whole hour from the journal (a restart after it closed, before its point was
    // written): the same point, by the rebuild alone.
    let mut e = engine();
    let all: Vec<Reading> = (0..12)
        .flat_map(|i| {
            let o2 = if i < 6 { DOUBLING_O2 } else { 7.0 };
            stack_message(T0 + i * 5 * MIN, 220.0, o2)
        })
        .collect();
    e.restore(all, T0 + HOUR - 1);
    assert_corrected_stack_hour(&e.tick(T0 + HOUR));
}

#[test]
fn readings_of_one_message_either_side_of_a_clock_change_find_their_own_windows() {
    // Windows align to the local clock. When the clocks go back (Paris, 2026-10-25, 03:00
    // CEST → 02:00 CET at 01:00Z) the local hour 02:00–03:00 happens twice: a reading of each
    // lies in it, and one message may carry both.
    let mut e = engine_in(chrono_tz::Europe::Paris);
    let before = 1_792_888_200_000; // 2026-10-25T00:30:00Z = 02:30 CEST
    let after = before + HOUR; // 01:30Z = 02:30 CET
    let message = vec![
        r(&outfall(), Param::COD, before, 100.0),
        r(&outfall(), Param::COD, after, 100.0),
    ];
    e.judge(message, after);
    let points = e.tick(after + 3 * HOUR);
    let hours = only(&points, "1h");
    let start = windows::bounds(after, 3600, chrono_tz::Europe::Paris).0;
    assert_eq!(
        start,
        windows::bounds(before, 3600, chrono_tz::Europe::Paris).0
    );
    assert_eq!(
        hours
            .iter()
            .map(|p| (p.start_ms, p.samples))
            .collect::<Vec<_>>(),
        [(start, 2)],
        "one local hour, both readings"
    );
}

// README: a window's average is written when the window closes (or rewritten by a late
// reading once closed), never while it is still open.
#[test]
fn a_reading_in_an_open_window_writes_no_average_until_it_closes() {
    let mut e = engine();
    let ts = T0 + 5 * MIN;
    let (_, points) = e.judge(vec![r(&outfall(), Param::COD, ts, 100.0)], ts + 1_000);
    assert!(points.is_empty(), "{points:?}");
    let closed = e.tick(T0 + HOUR);
    assert_eq!(only(&closed, "1h").len(), 1, "{closed:?}");
    assert_eq!(only(&closed, "1h")[0].samples, 1);
}

// After a restart the windows closed while the service was down count as written, and the
// latest VALID one is the window's verdict (quantrac_limit_ratio, quantrac_exceedance): not an
// older valid one, not a newer invalid one.
#[test]
fn after_a_rebuild_the_verdict_is_the_latest_valid_window() {
    let mut e = engine();
    let hours = [(0, 12, 100.0), (1, 12, 140.0), (2, 3, 500.0)];
    let readings: Vec<Reading> = hours
        .iter()
        .flat_map(|&(hour, n, value)| {
            (0..n).map(move |i| {
                r(
                    &outfall(),
                    Param::COD,
                    T0 + hour * HOUR + i * 5 * MIN,
                    value,
                )
            })
        })
        .collect();
    e.restore(readings, T0 + 3 * HOUR + 1);
    let hour = e
        .window_states()
        .into_iter()
        .find(|w| w.param == Param::COD && &*w.window == "1h")
        .unwrap();
    let closed = hour.closed.unwrap();
    assert_eq!((closed.start_ms, closed.mean), (T0 + HOUR, 140.0));
    assert!(closed.valid && closed.exceeded, "140 over the limit of 135");
}
