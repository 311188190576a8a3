//! The compliance stage in-process: the engine, its gauges and the status board, as
//! `compliance::run` drives them, without a broker or a database in the way.

use std::sync::Arc;

use quantrac::compliance::{events::Events, Engine, StatusBoard};
use quantrac::config::{StationDefaults, Stations, WindowSpec};
use quantrac::metrics::Metrics;
use quantrac::model::{Param, ParkStatus, Reading, StationKey, Status};
use tokio::sync::watch;

use crate::procfs;

/// Wastewater parameters every station sends in one message.
pub(crate) const PARAMS: [Param; 6] = [
    Param::COD,
    Param::TSS,
    Param::PH,
    Param::NH4,
    Param::Temp,
    Param::Flow,
];

/// 2026-11-29T17:00:00Z: local midnight in Hải Phòng, where the backfilled day starts.
pub(crate) const DAY0: i64 = 1_795_971_600_000;
pub(crate) const MIN: i64 = 60_000;

pub(crate) fn stations(n: usize) -> Stations {
    let defaults = StationDefaults {
        windows: vec![
            WindowSpec::parse("1h").expect("valid"),
            WindowSpec::parse("24h").expect("valid"),
        ],
        min_capture: 0.75,
        stuck_after_s: 0,
    };
    Stations::parse(
        &quantrac_testkit::fixtures::province_stations_toml(n),
        "stations.toml",
        &defaults,
    )
    .expect("generated stations")
}

/// One message of station `key` at `ts_ms`: six readings.
pub(crate) fn message(key: &StationKey, ts_ms: i64, salt: u64) -> Vec<Reading> {
    PARAMS
        .iter()
        .enumerate()
        .map(|(i, &param)| Reading {
            key: key.clone(),
            param,
            ts_ms,
            // COD ~60, TSS ~40, pH ~7, NH4 ~5, Temp ~30 (all within QCVN 40 column B), Flow.
            value: Some(
                [60.0, 40.0, 7.0, 5.0, 30.0, 120.0][i]
                    + ((salt.wrapping_mul(31).wrapping_add(i as u64 * 7)) % 97) as f64 / 97.0,
            ),
            status: Status::Normal,
        })
        .collect()
}

/// The stage as `compliance::run` holds it.
pub(crate) struct Stage {
    pub(crate) engine: Engine,
    pub(crate) events: Events,
    pub(crate) board: StatusBoard,
    pub(crate) metrics: Metrics,
    pub(crate) keys: Vec<StationKey>,
    /// The buffer the stage reuses for window changes.
    changes: Vec<quantrac::compliance::WindowState>,
    _rx: watch::Receiver<Arc<ParkStatus>>,
}

impl Stage {
    pub(crate) fn new(n: usize, metrics: Metrics) -> Stage {
        let stations = stations(n);
        let keys: Vec<StationKey> = stations.iter().map(|s| s.key.clone()).collect();
        let engine = Engine::new(
            stations,
            &quantrac::compliance::Catalogue::builtin(),
            chrono_tz::Asia::Ho_Chi_Minh,
        );
        let (tx, rx) = watch::channel(Arc::new(ParkStatus::empty(chrono_tz::UTC)));
        Stage {
            engine,
            events: Events::new(&metrics),
            board: StatusBoard::new(tx),
            metrics,
            keys,
            changes: Vec::new(),
            _rx: rx,
        }
    }

    /// One message judged and its gauges set, as the stage does on receipt.
    pub(crate) fn message(&mut self, readings: Vec<Reading>, now_ms: i64) {
        let (judged, _) = self.engine.judge(readings, now_ms);
        self.events.judged(&judged, now_ms);
        self.engine.window_changes(&mut self.changes);
        self.events.windows(&self.changes);
        self.board.describe_changed(&mut self.engine, now_ms);
    }

    /// One tick of the stage's timer.
    pub(crate) fn tick(&mut self, now_ms: i64) {
        self.engine.tick(now_ms);
        self.engine.window_changes(&mut self.changes);
        self.events.windows(&self.changes);
        let health = self.engine.health_changes(now_ms);
        self.board.publish(&mut self.engine, &health, now_ms);
        self.events.health(health.into_iter().map(|(_, h)| h));
    }
}

/// What the backfill did.
pub(crate) struct Backfill {
    pub(crate) readings: u64,
    pub(crate) backfill_cpu_s: f64,
}

/// `n` stations, then a day of one-minute messages from each, oldest first, as a backfill
/// (received at the end of the day), with a tick every simulated hour.
pub(crate) fn day_of_windows(n: usize) -> (Stage, Backfill) {
    let mut stage = Stage::new(n, Metrics::new());
    let now = DAY0 + 24 * 60 * MIN - 1;
    stage.tick(now);
    let cpu0 = procfs::thread_cpu();
    let mut readings = 0u64;
    for minute in 0..24 * 60 {
        let ts = DAY0 + minute * MIN;
        for i in 0..n {
            let key = stage.keys[i].clone();
            let m = message(&key, ts, (minute as u64) * 7 + i as u64);
            readings += m.len() as u64;
            stage.message(m, now);
        }
        if minute % 60 == 59 {
            stage.tick(now);
        }
    }
    stage.tick(now);
    let figures = Backfill {
        readings,
        backfill_cpu_s: procfs::thread_cpu() - cpu0,
    };
    (stage, figures)
}

/// `minutes` live minutes from `from_ms`: each station's message a second after its minute,
/// the clock ticking every second. Returns the readings judged and the thread CPU seconds.
pub(crate) fn live_minutes(stage: &mut Stage, from_ms: i64, minutes: i64) -> (u64, f64) {
    let n = stage.keys.len();
    let cpu0 = procfs::thread_cpu();
    let mut readings = 0u64;
    for minute in 0..minutes {
        let ts = from_ms + minute * MIN;
        for second in 0..60 {
            let now = ts + second * 1000;
            if second == 1 {
                for i in 0..n {
                    let key = stage.keys[i].clone();
                    let m = message(&key, ts, minute as u64 * 13 + i as u64);
                    readings += m.len() as u64;
                    stage.message(m, now);
                }
            }
            stage.tick(now);
        }
    }
    (readings, procfs::thread_cpu() - cpu0)
}
