//! The engine's saved state (`compliance::state`): loading it gives the engine a rebuild from
//! the journal gives, and a state that does not fit is refused without a trace.

use super::*;

/// An hour and a half of a park: the outfall's COD every 5 minutes, rising over the limit
/// (an exceedance run), TSS with one calibration, the stack's SO2 with O2 (corrected), and a
/// station that is not configured.
fn park_readings() -> Vec<Vec<Reading>> {
    let stranger = StationKey::parse("nam-dinh-vu", "unknown-site", "outfall-9").unwrap();
    (0..18)
        .map(|i| {
            let ts = T0 + i * 5 * MIN;
            let mut m = vec![
                r(&outfall(), Param::COD, ts, 100.0 + 10.0 * i as f64),
                r(&outfall(), Param::TSS, ts, 40.0),
                r(&stranger, Param::COD, ts, 50.0),
            ];
            if i == 4 {
                m[1] = with_status(m[1].clone(), Status::Calibrating);
            }
            m.extend(stack_message(
                ts,
                220.0,
                if i % 2 == 0 { DOUBLING_O2 } else { 7.0 },
            ));
            m
        })
        .collect()
}

/// Everything an engine shows at `now`: window gauges, health, each station's status page.
fn seen(e: &mut Engine, now: i64) -> String {
    let statuses: Vec<_> = (0..e.configured())
        .map(|slot| e.station_status(slot, now))
        .collect();
    format!("{:?}\n{:?}\n{statuses:?}", e.window_states(), e.health(now))
}

#[test]
fn a_saved_state_loads_to_what_a_rebuild_from_the_journal_makes() {
    let messages = park_readings();
    let restart = T0 + 47 * MIN;
    let (before, after): (Vec<_>, Vec<_>) =
        messages.iter().cloned().partition(|m| m[0].ts_ms < restart);

    // The service before the clean stop, judging live.
    let mut live = engine();
    for m in &before {
        live.judge(m.clone(), m[0].ts_ms);
        live.tick(m[0].ts_ms);
    }
    let bytes = live.save_state();

    // The next start: from the saved state, or (no state) from every record.
    let mut loaded = engine();
    assert_eq!(loaded.fingerprint(), live.fingerprint());
    loaded.load_state(&bytes, restart).unwrap();
    loaded.restore_done(restart);
    let mut rebuilt = engine();
    rebuilt.restore(before.concat(), restart);
    // The gauges are told of every loaded window, as of every rebuilt one.
    let [mut from_state, mut from_rebuild] = [Vec::new(), Vec::new()];
    loaded.window_changes(&mut from_state);
    rebuilt.window_changes(&mut from_rebuild);
    let sorted = |w: &[WindowState]| {
        let mut v: Vec<String> = w.iter().map(|w| format!("{w:?}")).collect();
        v.sort();
        v
    };
    assert_eq!(from_state.len(), 8, "{from_state:?}");
    assert_eq!(sorted(&from_state), sorted(&from_rebuild));
    assert_eq!(seen(&mut loaded, restart), seen(&mut rebuilt, restart));
    assert!(seen(&mut loaded, restart).contains("exceeding_since_ms: Some"));

    // And both go on alike: the same points for the rest of the day, the same windows. The
    // first message after the start is one from before, redelivered with other values: its
    // times are already counted, so it changes no window.
    let mut redelivered = before[2].clone();
    for reading in &mut redelivered {
        reading.value = Some(999.0);
    }
    let after: Vec<Vec<Reading>> = std::iter::once(redelivered).chain(after).collect();
    let mut points = [Vec::new(), Vec::new()];
    for (e, points) in [&mut loaded, &mut rebuilt].into_iter().zip(&mut points) {
        assert!(
            e.tick(restart).is_empty(),
            "closed windows were written before"
        );
        for m in &after {
            let received = m[0].ts_ms.max(restart);
            points.extend(e.judge(m.clone(), received).1);
            points.extend(e.tick(received));
        }
        points.extend(e.tick(T0 + 24 * HOUR));
    }
    assert_eq!(points[0], points[1]);
    // The outfall's hour from 00:00: ten samples before the stop, two after; (100 + 10 i)
    // for i = 0..12 averages 155, over the limit of 135.
    let cod_hour: Vec<_> = points[0]
        .iter()
        .filter(|p| p.param == Param::COD && p.window == "1h" && p.start_ms == T0)
        .collect();
    assert_eq!(cod_hour.len(), 1, "{cod_hour:?}");
    assert_eq!((cod_hour[0].samples, cod_hour[0].mean), (12, 155.0));
    assert!(cod_hour[0].exceeded);
    let day: Vec<_> = only(&points[0], "24h")
        .into_iter()
        .filter(|p| p.param == Param::COD && p.key == outfall())
        .collect();
    assert_eq!(day.len(), 1);
    assert_eq!(day[0].samples, 18);
    assert_eq!(
        seen(&mut loaded, T0 + 24 * HOUR),
        seen(&mut rebuilt, T0 + 24 * HOUR)
    );
}

#[test]
fn a_state_that_does_not_fit_is_refused_and_changes_nothing() {
    let mut live = engine();
    for m in park_readings() {
        live.judge(m.clone(), m[0].ts_ms);
    }
    let bytes = live.save_state();
    let now = T0 + 2 * HOUR;

    // Another configuration (here: the zone the windows align to) has another fingerprint.
    assert_ne!(engine_in(chrono_tz::UTC).fingerprint(), live.fingerprint());

    // Cut short, or with bytes after the end: refused, and the engine is as new.
    let mut fresh = engine();
    let untouched = seen(&mut fresh, now);
    for bad in [
        &bytes[..bytes.len() / 2],
        &[bytes.as_slice(), &[0]].concat()[..],
    ] {
        let mut e = engine();
        assert!(e.load_state(bad, now).is_err());
        e.restore_done(now);
        assert_eq!(seen(&mut e, now), untouched);
    }
}

/// A state kept after hours have closed carries each window's last valid mean, and loads back
/// whole: the loaded engine shows and saves exactly what the live one did.
#[test]
fn a_state_kept_after_an_hour_closed_loads_back_whole() {
    let mut live = engine();
    let mut closed = Vec::new();
    let now = T0 + 95 * MIN;
    for m in park_readings() {
        live.judge(m.clone(), m[0].ts_ms);
        closed.extend(live.tick(m[0].ts_ms));
    }
    closed.extend(live.tick(now));
    assert!(
        closed.iter().any(|p| p.window == "1h" && p.valid),
        "{closed:?}"
    );
    let bytes = live.save_state();
    let mut loaded = engine();
    loaded.load_state(&bytes, now).unwrap();
    loaded.restore_done(now);
    assert_eq!(seen(&mut loaded, now), seen(&mut live, now));
    assert_eq!(loaded.save_state(), bytes);
}
