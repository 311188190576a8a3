//! The timer's shortcuts (skip when nothing is due) must not lose a window.

use super::*;
use crate::config::{StationDefaults, WindowSpec};
use crate::model::Status;

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

#[test]
fn ticks_past_the_late_horizon_forget_the_window() {
    let mut e = engine();
    e.judge(cod(T0), T0);
    assert_eq!(e.tick(T0 + HOUR).len(), 1);
    let held = |e: &Engine| {
        e.slots
            .iter()
            .flat_map(|s| &s.params)
            .flat_map(|p| &p.series)
            .filter(|s| s.point(T0).is_some())
            .count()
    };
    assert_eq!(held(&e), 1);
    let past = T0 + 2 * HOUR + e.late_horizon_ms();
    e.tick(past - 2 * HOUR);
    assert_eq!(held(&e), 1, "still inside the horizon");
    e.tick(past);
    assert_eq!(
        held(&e),
        0,
        "forgotten: what is held does not grow with time"
    );
}
