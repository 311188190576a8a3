//! What the engine hands to the gauges and the status page: the windows a message, a clock
//! close, a rebuild or a loaded state touched, and each station's described parameters.

use super::*;

// The window gauges follow each message: after a message, `window_changes` hands out the
// windows of what it touched (the running hour and day with the reading in them), once.
#[test]
fn window_changes_hand_out_the_windows_a_message_touched_once() {
    let mut e = engine();
    let mut out = Vec::new();
    e.judge(vec![r(&outfall(), Param::COD, T0, 120.0)], T0);
    e.window_changes(&mut out);
    let mut windows: Vec<&str> = out.iter().map(|w| &*w.window).collect();
    windows.sort();
    assert_eq!(windows, ["1h", "24h"]);
    for w in &out {
        assert_eq!((&w.key, w.param), (&outfall(), Param::COD));
        let running = w.running.as_ref().expect("the window holding the reading");
        assert_eq!((running.mean, running.samples), (120.0, 1));
    }
    e.window_changes(&mut out);
    assert!(out.is_empty(), "handed out once: {out:?}");
    e.judge(
        vec![r(&outfall(), Param::COD, T0 + 5 * MIN, 100.0)],
        T0 + 5 * MIN,
    );
    e.window_changes(&mut out);
    assert_eq!(out.len(), 2);
    assert!(out
        .iter()
        .all(|w| w.running.as_ref().unwrap().mean == 110.0));
    // The rest of the hour, then closed by the clock: the hour's verdict is handed out too.
    feed_cod(&mut e, T0 + 10 * MIN, 10, 100.0);
    e.window_changes(&mut out);
    assert_eq!(e.tick(T0 + HOUR).len(), 1);
    e.window_changes(&mut out);
    let hour: Vec<_> = out.iter().filter(|w| &*w.window == "1h").collect();
    assert_eq!(hour.len(), 1, "{out:?}");
    assert_eq!(hour[0].closed.as_ref().map(|c| c.samples), Some(12));
}

// After a rebuild the window gauges start from the restored state: the windows it fed are
// handed out like those of a message.
#[test]
fn a_rebuild_hands_out_the_windows_and_stations_it_restored() {
    let mut e = engine();
    e.restore_part(vec![r(&outfall(), Param::COD, T0, 120.0)], T0 + MIN);
    e.restore_done(T0 + MIN);
    e.tick(T0 + MIN);
    let mut out = Vec::new();
    e.window_changes(&mut out);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out.iter().all(|w| w.key == outfall()));
}

// The status page describes a station with every parameter that has a reading or a limit:
// flow (read, no limit in QCVN 40) and COD (limited, not read yet) both, TOC (neither) not.
#[test]
fn a_station_is_described_with_every_parameter_read_or_limited() {
    let mut e = engine();
    e.judge(vec![r(&outfall(), Param::Flow, T0, 12.0)], T0);
    // Configured stations in key order: dinh-vu/… (the stack), then nam-dinh-vu/… (outfall).
    let (params, _) = e.station_status(1, T0);
    let described: Vec<Param> = params.iter().map(|p| p.param).collect();
    assert!(described.contains(&Param::Flow), "{described:?}");
    assert!(described.contains(&Param::COD), "{described:?}");
    assert!(!described.contains(&Param::TOC), "{described:?}");
}
