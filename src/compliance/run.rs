//! The compliance stage's task: judges each decoded message, closes windows on a timer, and
//! keeps the verdict and health gauges current. All rules live in [`Engine`]; this loop only
//! moves values between the channel, the engine and the metrics.

use std::time::Duration;

use tokio::sync::mpsc;

use super::Engine;
use crate::metrics::{Metrics, STATION_STATES};
use crate::model::{Judged, WindowPoint};
use crate::pipeline::{Ack, Decoded, Envelope, Processed};
use crate::shutdown::StopListener;

/// Topic of the journal records that hold windows closed by the clock (not by a message).
pub const WINDOWS_TOPIC: &str = "$quantrac/windows";

/// How often windows are closed and the window and health gauges refreshed.
const TICK: Duration = Duration::from_secs(1);

pub async fn run(
    mut engine: Engine,
    mut rx: mpsc::Receiver<(Envelope, Decoded)>,
    tx: mpsc::Sender<Processed>,
    metrics: Metrics,
    _stop: StopListener,
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = rx.recv() => {
                let Some((envelope, decoded)) = message else { break };
                let (readings, averages) = engine.judge(decoded.readings, envelope.received_at_ms);
                record_readings(&metrics, &readings, envelope.received_at_ms);
                let processed = Processed {
                    key: decoded.key,
                    readings,
                    rejections: decoded.rejections,
                    averages,
                    envelope,
                };
                if tx.send(processed).await.is_err() {
                    break;
                }
            }
            _ = tick.tick() => {
                let now = chrono::Utc::now().timestamp_millis();
                let closed = engine.tick(now);
                if !closed.is_empty() && tx.send(windows_record(closed, now)).await.is_err() {
                    break;
                }
                record_windows(&metrics, &engine);
                record_health(&metrics, &engine, now);
            }
        }
    }
}

/// Windows closed by the clock become a journal record of their own, so the chain covers
/// every `average` point; the payload lists them for a human reader.
fn windows_record(points: Vec<WindowPoint>, now_ms: i64) -> Processed {
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
        envelope: Envelope {
            topic: WINDOWS_TOPIC.to_owned(),
            payload: serde_json::to_vec(&summary).expect("JSON values always serialise"),
            received_at_ms: now_ms,
            ack: Ack::none(),
        },
        key: None,
        readings: Vec::new(),
        rejections: Vec::new(),
        averages: points,
    }
}

fn record_readings(m: &Metrics, readings: &[Judged], received_at_ms: i64) {
    let Some(last) = readings.last() else { return };
    let key = &last.reading.key;
    m.station_last_reading
        .with_label_values(&Metrics::station_labels(key))
        .set(received_at_ms as f64 / 1000.0);
    m.ingest_lag
        .set((received_at_ms - last.reading.ts_ms) as f64 / 1000.0);
    for j in readings {
        let r = &j.reading;
        let labels = [key.park(), key.site(), key.station(), r.param.symbol()];
        m.reading_value.with_label_values(&labels).set(r.value);
        if j.limit.is_some() {
            let w = [
                key.park(),
                key.site(),
                key.station(),
                r.param.symbol(),
                "instant",
            ];
            if let Some(ratio) = j.ratio {
                m.limit_ratio.with_label_values(&w).set(ratio);
            }
            m.exceedance
                .with_label_values(&w)
                .set(i64::from(j.exceeded));
        }
    }
}

fn record_windows(m: &Metrics, engine: &Engine) {
    for s in engine.window_states() {
        let labels = [
            s.key.park(),
            s.key.site(),
            s.key.station(),
            s.param.symbol(),
            s.window.as_str(),
        ];
        if let Some(closed) = &s.closed {
            if closed.limit_max.is_some() {
                if let Some(ratio) = closed.ratio {
                    m.limit_ratio.with_label_values(&labels).set(ratio);
                }
                m.exceedance
                    .with_label_values(&labels)
                    .set(i64::from(closed.exceeded));
            }
        }
        if let Some(running) = &s.running {
            if let Some(ratio) = running.ratio {
                m.running_ratio.with_label_values(&labels).set(ratio);
            }
            m.running_capture
                .with_label_values(&labels)
                .set(running.capture);
        }
    }
}

fn record_health(m: &Metrics, engine: &Engine, now_ms: i64) {
    for h in engine.health(now_ms) {
        let [park, site, station] = Metrics::station_labels(&h.key);
        for state in STATION_STATES {
            let on = h.state.label() == state;
            m.station_state
                .with_label_values(&[park, site, station, state])
                .set(i64::from(on));
        }
    }
}
