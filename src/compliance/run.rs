//! The compliance stage's task: judges each decoded message, closes windows on a timer, and
//! keeps the verdict and health gauges current. All rules live in [`Engine`] and every gauge
//! in [`Events`]; this loop only moves values between the channel, the engine and the events.
//!
//! Window points are written once per tick, not once per message. A datalogger replaying its
//! buffer, or a backlog drained after an outage, touches the same closed windows with every
//! message; rewriting a window's `average` point for each of them would multiply the InfluxDB
//! writes (a 24 h window of 5-minute data would be rewritten 288 times). So the points a message
//! changes are kept here, newest wins, and go to the journal with the next tick as one
//! [`WINDOWS_TOPIC`] record. A crash before that record is committed loses nothing: on start-up
//! `app` re-judges the readings journaled after the last such record, which re-emits those
//! windows.
//!
//! Each tick also publishes the park's [`ParkStatus`] for the status page (see [`StatusBoard`]).
//!
//! Every `journal.state_interval_s` a windows record also carries the engine's state, which
//! the journal stage keeps once the record is committed: a start after a crash then replays
//! only the records after it, not the whole late-data horizon (see `app::recovery`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::events::Events;
use super::status::StatusBoard;
use super::Engine;
use crate::metrics::Metrics;
use crate::model::{Param, ParkStatus, StationKey, WindowPoint};
use crate::pipeline::{Decoded, EngineState, Envelope, Handover, Processed};

/// Topic of the journal records that hold windows closed by the clock (not by a message).
pub const WINDOWS_TOPIC: &str = "$quantrac/windows";

/// How often windows are closed, the window and health gauges that changed refreshed and the
/// status snapshot brought up to date.
const TICK: Duration = Duration::from_secs(1);

pub async fn run(
    mut engine: Engine,
    mut rx: mpsc::Receiver<(Envelope, Decoded)>,
    tx: mpsc::Sender<Processed>,
    metrics: Metrics,
    status: watch::Sender<Arc<ParkStatus>>,
    handover: Handover,
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending = PendingWindows::default();
    let mut events = Events::new(&metrics);
    let mut board = StatusBoard::new(status);
    // The start-up rebuild has just run: what it freed goes back to the system, and then
    // periodically what a backlog drain freed (see `memory`).
    crate::memory::release();
    let mut released = tokio::time::Instant::now();
    // The start has just loaded or rebuilt the state: the first is kept a period from now.
    let mut kept = tokio::time::Instant::now();
    let mut changes = Vec::new();
    loop {
        tokio::select! {
            message = rx.recv() => {
                let Some((envelope, decoded)) = message else { break };
                let (readings, averages) = engine.judge(decoded.readings, envelope.received_at_ms);
                events.judged(&readings, envelope.received_at_ms);
                // The window gauges of this station now, while its state is in the CPU's
                // caches: at a province's scale, waiting for the tick means fetching every
                // station's windows again from memory (see `cargo bench --bench scale`).
                engine.window_changes(&mut changes);
                events.windows(&changes);
                board.describe_changed(&mut engine, envelope.received_at_ms);
                board.rejected(
                    &envelope.topic,
                    decoded.key.as_ref(),
                    &decoded.rejections,
                    envelope.received_at_ms,
                );
                pending.add(averages);
                let processed = Processed {
                    key: decoded.key,
                    readings,
                    rejections: decoded.rejections,
                    averages: Vec::new(),
                    engine_state: None,
                    envelope,
                };
                if tx.send(processed).await.is_err() {
                    return;
                }
            }
            _ = tick.tick() => {
                let now = chrono::Utc::now().timestamp_millis();
                // Closed by the clock now: newer than anything pending for the same window.
                pending.add(engine.tick(now));
                if let Some(mut record) = pending.take_record(now) {
                    // Every window point is in this record or before it, so the state as it
                    // is now covers the journal up to it: kept with it, now and then.
                    if kept.elapsed() >= handover.every() {
                        record.engine_state = Some(Box::new(EngineState {
                            fingerprint: engine.fingerprint(),
                            bytes: engine.save_state(),
                        }));
                        kept = tokio::time::Instant::now();
                    }
                    if tx.send(record).await.is_err() {
                        return;
                    }
                }
                // Only what changed or fell due: the windows a reading or a close touched,
                // the stations whose health moved (see `Engine`).
                engine.window_changes(&mut changes);
                events.windows(&changes);
                let health = engine.health_changes(now);
                board.publish(&mut engine, &health, now);
                // Configured stations only: a station removed from the configuration has no
                // state series, even while its readings are still in the journal.
                let configured = engine.configured();
                events.health(
                    health
                        .into_iter()
                        .filter(|(slot, _)| *slot < configured)
                        .map(|(_, h)| h),
                );
                if released.elapsed() >= crate::memory::PERIOD {
                    crate::memory::release();
                    released = tokio::time::Instant::now();
                }
            }
        }
    }
    // Input closed (shutdown): what is pending goes to the journal before the stage ends.
    if let Some(record) = pending.take_record(chrono::Utc::now().timestamp_millis()) {
        if tx.send(record).await.is_err() {
            return;
        }
    }
    // Then the state, for the journal stage to keep once the records before it are committed
    // (it sees its input end only after this stage drops `tx`).
    handover.put(EngineState {
        fingerprint: engine.fingerprint(),
        bytes: engine.save_state(),
    });
}

/// Window points waiting for the next tick, one per window (the newest).
#[derive(Default)]
pub struct PendingWindows {
    points: BTreeMap<(StationKey, Param, String, i64), WindowPoint>,
}

impl PendingWindows {
    pub fn add(&mut self, points: Vec<WindowPoint>) {
        for p in points {
            self.points
                .insert((p.key.clone(), p.param, p.window.clone(), p.start_ms), p);
        }
    }

    /// The journal record for everything pending, if anything is.
    pub fn take_record(&mut self, now_ms: i64) -> Option<Processed> {
        if self.points.is_empty() {
            return None;
        }
        let points = std::mem::take(&mut self.points).into_values().collect();
        Some(windows_record(points, now_ms))
    }
}

/// Windows closed by the clock become a journal record of their own, so the chain covers
/// every `average` point; the payload lists them for a human reader.
pub fn windows_record(points: Vec<WindowPoint>, now_ms: i64) -> Processed {
    let summary: Vec<serde_json::Value> = points
        .iter()
        .map(|w| {
            serde_json::json!({
                "station": w.key.to_string(), "param": w.param.symbol(), "window": w.window,
                "start_ms": w.start_ms, "mean": w.mean, "samples": w.samples,
                "capture": w.capture, "valid": w.valid, "exceeded": w.exceeded,
            })
        })
        .collect();
    Processed {
        envelope: Envelope::internal(
            WINDOWS_TOPIC.to_owned(),
            serde_json::to_vec(&summary).expect("JSON values always serialise"),
            now_ms,
        ),
        key: None,
        readings: Vec::new(),
        rejections: Vec::new(),
        averages: points,
        engine_state: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(start_ms: i64, window: &str, mean: f64) -> WindowPoint {
        WindowPoint {
            key: StationKey::parse("p", "s", "x").unwrap(),
            param: Param::COD,
            window: window.into(),
            start_ms,
            mean,
            samples: 1,
            capture: 1.0,
            valid: true,
            limit_max: None,
            ratio: None,
            exceeded: false,
        }
    }

    #[test]
    fn pending_windows_keep_the_newest_point_per_window() {
        let mut p = PendingWindows::default();
        assert!(p.take_record(0).is_none(), "nothing pending, no record");
        p.add(vec![point(0, "1h", 1.0), point(0, "24h", 1.0)]);
        p.add(vec![point(0, "1h", 2.0), point(3_600_000, "1h", 3.0)]);
        let record = p.take_record(42).unwrap();
        assert_eq!(record.envelope.topic, WINDOWS_TOPIC);
        assert_eq!(record.envelope.received_at_ms, 42);
        let means: Vec<_> = record
            .averages
            .iter()
            .map(|w| (w.window.as_str(), w.start_ms, w.mean))
            .collect();
        assert_eq!(
            means,
            [("1h", 0, 2.0), ("1h", 3_600_000, 3.0), ("24h", 0, 1.0)]
        );
        assert!(p.take_record(43).is_none(), "taken once");
    }
}
