//! Status board tests: snapshots, descriptions and when stations are described again.
use super::*;
use crate::config::{StationDefaults, Stations, WindowSpec};
use crate::model::{HealthState, Reading, Reason, Status};

const HOUR: i64 = 3_600_000;
/// 2026-11-29T00:00:00Z.
const T0: i64 = 1_795_910_400_000;

fn engine() -> Engine {
    engine_of(quantrac_testkit::fixtures::CONTRACT_STATIONS)
}

fn engine_of(text: &str) -> Engine {
    let defaults = StationDefaults {
        windows: vec![
            WindowSpec::parse("1h").unwrap(),
            WindowSpec::parse("24h").unwrap(),
        ],
        min_capture: 0.75,
        stuck_after_s: 0,
    };
    let stations = Stations::parse(text, "stations.toml", &defaults).unwrap();
    Engine::new(
        stations,
        &super::super::Catalogue::builtin(),
        chrono_tz::Asia::Ho_Chi_Minh,
    )
}

fn outfall() -> StationKey {
    StationKey::parse("nam-dinh-vu", "nd-textile", "outfall-1").unwrap()
}

fn cod(ts_ms: i64, value: f64, status: Status) -> Reading {
    Reading {
        key: outfall(),
        param: Param::COD,
        ts_ms,
        value: Some(value),
        status,
    }
}

fn publish(board: &mut StatusBoard, e: &mut Engine, now: i64) {
    let health = e.health_changes(now);
    board.publish(e, &health, now);
}

fn cod_status(s: &ParkStatus) -> ParamStatus {
    let station = s.stations.iter().find(|s| s.key == outfall()).unwrap();
    station
        .params
        .iter()
        .find(|p| p.param == Param::COD)
        .unwrap()
        .clone()
}

/// The COD value the board holds for the outfall now (without publishing).
fn described_cod(board: &StatusBoard, e: &Engine) -> Option<f64> {
    let slot = (0..e.configured()).find(|&i| {
        board.described[i]
            .as_ref()
            .is_some_and(|d| d.status.key == outfall())
    })?;
    let d = board.described[slot].as_ref()?;
    d.status
        .params
        .iter()
        .find(|p| p.param == Param::COD)?
        .latest?
        .value
}

#[test]
fn a_change_of_health_alone_keeps_the_described_parameters() {
    let (tx, rx) = watch::channel(Arc::new(ParkStatus::empty(chrono_tz::UTC)));
    let mut board = StatusBoard::new(tx);
    let mut e = engine();
    e.judge(vec![cod(T0, 100.0, Status::Normal)], T0);
    publish(&mut board, &mut e, T0);
    let before = rx.borrow().clone();
    let outfall_of = |s: &ParkStatus| {
        s.stations
            .iter()
            .find(|s| s.key == outfall())
            .unwrap()
            .clone()
    };
    assert_eq!(outfall_of(&before).state, HealthState::Ok);
    // Silent within the hour (before a window ends): the state changes, the parameters
    // are the same allocation.
    publish(&mut board, &mut e, T0 + HOUR / 2);
    let after = outfall_of(&rx.borrow());
    assert_eq!(after.state, HealthState::Silent);
    assert!(Arc::ptr_eq(&after.params, &outfall_of(&before).params));
}

#[test]
fn a_message_is_described_at_once_and_a_replay_once_a_tick() {
    let (tx, rx) = watch::channel(Arc::new(ParkStatus::empty(chrono_tz::UTC)));
    let mut board = StatusBoard::new(tx);
    let mut e = engine();
    publish(&mut board, &mut e, T0);
    let t1 = T0 + 60_000;
    e.judge(vec![cod(t1, 100.0, Status::Normal)], t1);
    board.describe_changed(&mut e, t1);
    assert_eq!(
        described_cod(&board, &e),
        Some(100.0),
        "described with its message"
    );
    assert!(board.later.is_empty());
    // A buffer replayed: the next message within the second waits for the tick.
    e.judge(vec![cod(t1 + 60_000, 110.0, Status::Normal)], t1 + 300);
    board.describe_changed(&mut e, t1 + 300);
    assert_eq!(described_cod(&board, &e), Some(100.0));
    assert_eq!(board.later.len(), 1);
    publish(&mut board, &mut e, t1 + 1_000);
    assert_eq!(cod_status(&rx.borrow()).latest.unwrap().value, Some(110.0));
    assert!(board.later.is_empty());
}

#[test]
fn the_snapshot_holds_latest_values_windows_hourly_means_and_exceedance_runs() {
    let (tx, rx) = watch::channel(Arc::new(ParkStatus::empty(chrono_tz::UTC)));
    let mut board = StatusBoard::new(tx);
    let mut e = engine();
    // Three hours of 5-minute COD readings at 100 mg/L, then 200 (limit 135: QCVN 40:2011
    // column B 150 × Kq 0.9 × Kf 1.0).
    for i in 0..36 {
        let ts = T0 + i * 300_000;
        e.judge(vec![cod(ts, 100.0, Status::Normal)], ts);
    }
    e.tick(T0 + 3 * HOUR);
    for i in 0..3 {
        let ts = T0 + 3 * HOUR + i * 300_000;
        e.judge(vec![cod(ts, 200.0, Status::Normal)], ts);
    }
    let now = T0 + 3 * HOUR + 11 * 60_000;
    publish(&mut board, &mut e, now);
    let s = rx.borrow().clone();
    // The page shows local times: the stations' zone, not the placeholder's UTC.
    assert_eq!(s.tz, chrono_tz::Asia::Ho_Chi_Minh);
    assert_eq!(s.at_ms, Some(now));
    assert_eq!(s.stations.len(), 2, "both configured stations");
    let p = cod_status(&s);
    let run = p.last_exceedance.unwrap();
    assert_eq!(
        (run.from_ms, run.to_ms, run.peak),
        (T0 + 3 * HOUR, T0 + 3 * HOUR + 600_000, 200.0)
    );
    let latest = p.latest.unwrap();
    assert_eq!(latest.value, Some(200.0));
    assert!(latest.exceeded);
    assert_eq!(
        latest.exceeding_since_ms,
        Some(T0 + 3 * HOUR),
        "the run's first reading"
    );
    assert!((latest.ratio.unwrap() - 200.0 / 135.0).abs() < 1e-9);
    assert_eq!(p.limit.unwrap().max, Some(135.0));
    let hourly: Vec<_> = p.hourly.iter().map(|m| (m.start_ms, m.mean)).collect();
    assert_eq!(
        hourly,
        [
            (T0, 100.0),
            (T0 + HOUR, 100.0),
            (T0 + 2 * HOUR, 100.0),
            (T0 + 3 * HOUR, 200.0)
        ]
    );
    let one_hour = &p.windows[0];
    assert_eq!(&*one_hour.label, "1h");
    let running = one_hour.running.unwrap();
    assert_eq!((running.mean, running.samples), (200.0, 3));
    assert_eq!(running.capture, 0.25);
    assert_eq!(one_hour.closed.unwrap().start_ms, T0 + 2 * HOUR);
    assert_eq!(&*p.windows[1].label, "24h");

    // A calibration ends the run; the next exceedance starts a new one.
    let ts = now + 60_000;
    e.judge(vec![cod(ts, 5.0, Status::Calibrating)], ts);
    e.judge(vec![cod(ts + 300_000, 210.0, Status::Normal)], ts + 300_000);
    publish(&mut board, &mut e, ts + 300_000);
    let now_cod = cod_status(&rx.borrow());
    assert_eq!(
        now_cod.latest.unwrap().exceeding_since_ms,
        Some(ts + 300_000)
    );
    let run = now_cod.last_exceedance.unwrap();
    assert_eq!(
        (run.from_ms, run.to_ms, run.peak),
        (ts + 300_000, ts + 300_000, 210.0)
    );
    // A late reading does not move the latest one.
    e.judge(vec![cod(T0, 1.0, Status::Normal)], ts + 400_000);
    publish(&mut board, &mut e, ts + 400_000);
    assert_eq!(cod_status(&rx.borrow()).latest.unwrap().value, Some(210.0));
}

#[test]
fn unchanged_stations_are_shared_between_snapshots() {
    let (tx, rx) = watch::channel(Arc::new(ParkStatus::empty(chrono_tz::UTC)));
    let mut board = StatusBoard::new(tx);
    let mut e = engine();
    e.judge(vec![cod(T0, 100.0, Status::Normal)], T0);
    publish(&mut board, &mut e, T0 + 1000);
    let first = rx.borrow().clone();
    publish(&mut board, &mut e, T0 + 2000);
    let second = rx.borrow().clone();
    for (a, b) in first.stations.iter().zip(&second.stations) {
        assert!(Arc::ptr_eq(a, b), "{:?} was rebuilt", a.key);
    }
    // A new reading rebuilds its station only; the end of the hour rebuilds every one.
    e.judge(vec![cod(T0 + 300_000, 100.0, Status::Normal)], T0 + 300_000);
    publish(&mut board, &mut e, T0 + 300_000);
    let third = rx.borrow().clone();
    let rebuilt: Vec<_> = second
        .stations
        .iter()
        .zip(&third.stations)
        .filter(|(a, b)| !Arc::ptr_eq(a, b))
        .map(|(a, _)| a.key.clone())
        .collect();
    assert_eq!(rebuilt, [outfall()]);
    publish(&mut board, &mut e, T0 + HOUR);
    let fourth = rx.borrow().clone();
    let outfall_status = fourth.stations.iter().find(|s| s.key == outfall()).unwrap();
    assert!(
        cod_status(&fourth).windows[0].running.is_none(),
        "a new hour"
    );
    assert_eq!(
        outfall_status.state,
        HealthState::Silent,
        "55 min without a message"
    );
}

#[test]
fn rejections_keep_the_newest_excerpts_only() {
    let (tx, rx) = watch::channel(Arc::new(ParkStatus::empty(chrono_tz::UTC)));
    let mut board = StatusBoard::new(tx);
    let mut e = engine();
    let long = "x".repeat(10_000);
    for i in 0..RECENT_REJECTIONS as i64 + 5 {
        let r = Rejection {
            reason: Reason::Malformed,
            detail: format!("{i} {long}"),
            index: None,
        };
        board.rejected(&format!("env/{i}/{long}"), None, &[r], T0 + i);
    }
    publish(&mut board, &mut e, T0 + 1000);
    let s = rx.borrow().clone();
    assert_eq!(s.rejections.len(), RECENT_REJECTIONS);
    let newest = &s.rejections[0];
    assert_eq!(newest.received_at_ms, T0 + RECENT_REJECTIONS as i64 + 4);
    assert!(newest.topic.len() <= EXCERPT_CHARS + '…'.len_utf8());
    assert!(newest.detail.starts_with("204 x"));
    assert!(newest.detail.len() <= EXCERPT_CHARS + '…'.len_utf8());
}

#[test]
fn an_exceedance_run_keeps_its_first_and_last_time_and_its_highest_value() {
    // Status page: "over the limit from … to …, peak …" (limit 135 mg/L: QCVN 40:2011
    // column B 150 × Kq 0.9 × Kf 1.0).
    let (tx, rx) = watch::channel(Arc::new(ParkStatus::empty(chrono_tz::UTC)));
    let mut board = StatusBoard::new(tx);
    let mut e = engine();
    let mut judge = |i: i64, value: f64| {
        let ts = T0 + i * 300_000;
        e.judge(vec![cod(ts, value, Status::Normal)], ts);
    };
    for (i, value) in [140.0, 170.0, 180.0].into_iter().enumerate() {
        judge(i as i64, value);
    }
    let run = |board: &mut StatusBoard, e: &mut Engine, now| {
        publish(board, e, now);
        cod_status(&rx.borrow()).last_exceedance.unwrap()
    };
    let rising = run(&mut board, &mut e, T0 + 11 * 60_000);
    assert_eq!(
        (rising.from_ms, rising.to_ms, rising.peak),
        (T0, T0 + 600_000, 180.0)
    );
    assert!((rising.peak_ratio.unwrap() - 180.0 / 135.0).abs() < 1e-12);
    // Still over the limit, lower: the run goes on, its peak stays.
    e.judge(vec![cod(T0 + 900_000, 150.0, Status::Normal)], T0 + 900_000);
    let later = run(&mut board, &mut e, T0 + 16 * 60_000);
    assert_eq!(
        (later.from_ms, later.to_ms, later.peak),
        (T0, T0 + 900_000, 180.0)
    );
    assert_eq!(later.peak_ratio, rising.peak_ratio);
}

#[test]
fn spans_follow_now_into_the_next_window_and_keep_only_the_one_holding_it() {
    // T0 is 07:00 in Hanoi: the hour is 07:00–08:00, the local day began at 00:00 (17:00 UTC).
    let day_start = T0 - 7 * HOUR;
    let mut s = Spans::new(T0, chrono_tz::Asia::Ho_Chi_Minh);
    assert_eq!(s.at(3600), (T0, T0 + HOUR));
    assert_eq!(s.at(86_400), (day_start, day_start + 24 * HOUR));
    s.move_to(T0 + HOUR / 2);
    assert_eq!(s.at(3600), (T0, T0 + HOUR));
    // Exactly at an hour's end, now is in the next hour (windows are [start, end)).
    s.move_to(T0 + HOUR);
    assert_eq!(s.at(3600), (T0 + HOUR, T0 + 2 * HOUR));
    assert_eq!(s.at(86_400), (day_start, day_start + 24 * HOUR));
    // Several hours on at once (a quiet park), and into the next local day.
    s.move_to(T0 + 17 * HOUR + HOUR / 2);
    assert_eq!(s.at(3600), (T0 + 17 * HOUR, T0 + 18 * HOUR));
    assert_eq!(s.at(86_400), (day_start + 24 * HOUR, day_start + 48 * HOUR));
    // The clock stepped back (an NTP correction): the earlier hour again.
    s.move_to(T0 + 16 * HOUR + HOUR / 2);
    assert_eq!(s.at(3600), (T0 + 16 * HOUR, T0 + 17 * HOUR));
}

#[test]
fn the_hourly_chart_holds_the_hours_of_the_last_day_up_to_the_one_starting_now() {
    let (tx, rx) = watch::channel(Arc::new(ParkStatus::empty(chrono_tz::UTC)));
    let mut board = StatusBoard::new(tx);
    let mut e = engine();
    // One reading at the start of each hour for 30 hours (the windows hold 48).
    for h in 0..=30 {
        let ts = T0 + h * HOUR;
        e.judge(vec![cod(ts, h as f64, Status::Normal)], ts);
    }
    let now = T0 + 30 * HOUR;
    publish(&mut board, &mut e, now);
    let starts: Vec<i64> = cod_status(&rx.borrow())
        .hourly
        .iter()
        .map(|m| m.start_ms)
        .collect();
    let want: Vec<i64> = (6..=30).map(|h| T0 + h * HOUR).collect();
    assert_eq!(starts, want);
}

#[test]
fn stations_never_heard_from_share_one_description_of_their_parameters() {
    // A province's idle stations cost a few bytes each on the page: alike and unmeasured, they
    // share their parameters' description until they report.
    let (tx, rx) = watch::channel(Arc::new(ParkStatus::empty(chrono_tz::UTC)));
    let mut board = StatusBoard::new(tx);
    let mut e = engine_of(&quantrac_testkit::fixtures::province_stations_toml(3));
    publish(&mut board, &mut e, T0);
    let s = rx.borrow().clone();
    assert_eq!(s.stations.len(), 3);
    assert!(Arc::ptr_eq(&s.stations[0].params, &s.stations[1].params));
    assert!(Arc::ptr_eq(&s.stations[0].params, &s.stations[2].params));
    let first = s.stations[0].key.clone();
    e.judge(
        vec![Reading {
            key: first.clone(),
            ..cod(T0 + 60_000, 100.0, Status::Normal)
        }],
        T0 + 60_000,
    );
    publish(&mut board, &mut e, T0 + 61_000);
    let s = rx.borrow().clone();
    let heard = s.stations.iter().position(|st| st.key == first).unwrap();
    let other = (heard + 1) % 3;
    assert!(!Arc::ptr_eq(
        &s.stations[heard].params,
        &s.stations[other].params
    ));
    assert!(s.stations[heard].params.iter().any(|p| p.latest.is_some()));
    // A station that is not configured is listed after the configured ones.
    let stranger = StationKey::parse("p9", "s9", "outfall-9").unwrap();
    e.judge(
        vec![Reading {
            key: stranger.clone(),
            ..cod(T0 + 120_000, 100.0, Status::Normal)
        }],
        T0 + 120_000,
    );
    publish(&mut board, &mut e, T0 + 121_000);
    let s = rx.borrow().clone();
    assert_eq!(s.stations.len(), 4);
    assert_eq!(s.stations[3].key, stranger);
}

#[test]
fn a_quiet_park_is_published_again_every_refresh_period_and_after_a_clock_step_back() {
    let (tx, rx) = watch::channel(Arc::new(ParkStatus::empty(chrono_tz::UTC)));
    let mut board = StatusBoard::new(tx);
    let mut e = engine();
    publish(&mut board, &mut e, T0);
    publish(&mut board, &mut e, T0 + 1);
    assert_eq!(rx.borrow().at_ms, Some(T0), "nothing changed, not yet due");
    publish(&mut board, &mut e, T0 + REFRESH_MS);
    assert_eq!(rx.borrow().at_ms, Some(T0 + REFRESH_MS));
    publish(&mut board, &mut e, T0);
    assert_eq!(rx.borrow().at_ms, Some(T0), "the clock stepped back");
}

#[test]
fn a_change_is_published_at_once_not_at_the_next_refresh() {
    let (tx, rx) = watch::channel(Arc::new(ParkStatus::empty(chrono_tz::UTC)));
    let mut board = StatusBoard::new(tx);
    let mut e = engine();
    publish(&mut board, &mut e, T0);
    // A configured station's reading, a second later.
    e.judge(vec![cod(T0 + 1_000, 100.0, Status::Normal)], T0 + 1_000);
    publish(&mut board, &mut e, T0 + 1_001);
    assert_eq!(rx.borrow().at_ms, Some(T0 + 1_001));
    assert_eq!(cod_status(&rx.borrow()).latest.unwrap().value, Some(100.0));
    // A station that is not configured, a second later again.
    let stranger = StationKey::parse("p9", "s9", "outfall-9").unwrap();
    e.judge(
        vec![Reading {
            key: stranger.clone(),
            ..cod(T0 + 2_000, 5.0, Status::Normal)
        }],
        T0 + 2_000,
    );
    publish(&mut board, &mut e, T0 + 2_001);
    assert_eq!(rx.borrow().at_ms, Some(T0 + 2_001));
    assert!(rx.borrow().stations.iter().any(|s| s.key == stranger));
}
