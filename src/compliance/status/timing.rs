//! What publishing costs the stage (the issue: the page must not slow ingestion).

use std::time::Instant;

use super::*;
use crate::config::{StationDefaults, Stations, WindowSpec};
use crate::model::{Reading, Status};

/// 1,002 stations (the demo park × 167), a day of readings every 10 minutes, then the
/// snapshot published: once with every station to describe (the first tick, or the end of
/// an hour), once with one station changed (a usual tick). Run in release:
/// `cargo test --release --lib -- --ignored publish_1000 --nocapture`.
#[test]
#[ignore = "a timing; run on its own, in release"]
fn publish_1000_stations() {
    let defaults = StationDefaults {
        windows: vec![
            WindowSpec::parse("1h").unwrap(),
            WindowSpec::parse("24h").unwrap(),
        ],
        min_capture: 0.75,
        stuck_after_s: 0,
    };
    let text = crate::demo::stations_toml_replicated(167);
    let stations = Stations::parse(&text, "stations.toml", &defaults).unwrap();
    let mut e = Engine::new(
        stations,
        &super::super::Catalogue::builtin(),
        chrono_tz::Asia::Ho_Chi_Minh,
    );
    let t0 = 1_795_910_400_000;
    let keys: Vec<_> = e.stations().map(|s| (s.key.clone(), s.kind)).collect();
    let mut readings = 0;
    for step in 0..144 {
        let ts = t0 + step * 600_000;
        for (key, kind) in &keys {
            let message: Vec<Reading> = Param::ALL
                .iter()
                .filter(|p| p.kinds().contains(kind))
                .map(|&param| Reading {
                    key: key.clone(),
                    param,
                    ts_ms: ts,
                    value: Some(10.0 + (step % 7) as f64),
                    status: Status::Normal,
                })
                .collect();
            readings += message.len();
            e.judge(message, ts);
        }
        e.tick(ts);
    }
    // A minute after the last readings, nine before the top of the hour.
    let now = t0 + 143 * 600_000 + 60_000;
    let health = e.health_changes(now);
    let (tx, rx) = watch::channel(Arc::new(ParkStatus::empty(chrono_tz::UTC)));
    let mut board = StatusBoard::new(tx);
    let t = Instant::now();
    board.publish(&mut e, &health, now);
    let all = t.elapsed();
    let (key, kind) = &keys[0];
    let one = vec![Reading {
        key: key.clone(),
        param: *Param::ALL
            .iter()
            .find(|p| p.kinds().contains(kind))
            .unwrap(),
        ts_ms: now,
        value: Some(1.0),
        status: Status::Normal,
    }];
    e.judge(one, now);
    let health = e.health_changes(now + 1);
    let t = Instant::now();
    board.publish(&mut e, &health, now + 1);
    let usual = t.elapsed();
    let s = rx.borrow().clone();
    let params: usize = s.stations.iter().map(|s| s.params.len()).sum();
    let hourly: usize = s
        .stations
        .iter()
        .flat_map(|s| s.params.iter())
        .map(|p| p.hourly.len())
        .sum();
    println!(
        "snapshot of {} stations ({params} parameters, {hourly} hourly means, {readings} readings judged): every station described {:.1} ms, one station {:.2} ms",
        s.stations.len(),
        all.as_secs_f64() * 1000.0,
        usual.as_secs_f64() * 1000.0
    );
}
