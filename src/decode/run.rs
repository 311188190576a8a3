//! The decode stage's task: one [`Decoder::decode`] per message, counting and logging every
//! rejection. The message itself, rejected or not, goes on: the journal keeps rejected
//! payloads as dead letters, and only then is the message acknowledged.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::Decoder;
use crate::metrics::Metrics;
use crate::model::Rejection;
use crate::pipeline::{Decoded, Envelope};

pub async fn run(
    mut decoder: Decoder,
    mut rx: mpsc::Receiver<Envelope>,
    tx: mpsc::Sender<(Envelope, Decoded)>,
    metrics: Metrics,
) {
    let mut log = RejectionLog::new(20, Duration::from_secs(60));
    while let Some(envelope) = rx.recv().await {
        let decoded = decoder.decode(&envelope.topic, &envelope.payload, envelope.received_at_ms);
        metrics
            .readings_accepted
            .inc_by(decoded.readings.len() as u64);
        for r in &decoded.rejections {
            metrics.reject(r.reason);
            log.emit(&envelope.topic, r);
        }
        if tx.send((envelope, decoded)).await.is_err() {
            break;
        }
    }
    log.flush();
}

/// Logs rejections at warn level, at most `burst` lines per `period`; the rest are counted
/// and summarised when the period ends, so a misconfigured station cannot flood the log
/// (the metric still counts every one).
pub struct RejectionLog {
    burst: u32,
    period: Duration,
    window_start: Instant,
    logged: u32,
    suppressed: u64,
}

impl RejectionLog {
    pub fn new(burst: u32, period: Duration) -> RejectionLog {
        RejectionLog {
            burst,
            period,
            window_start: Instant::now(),
            logged: 0,
            suppressed: 0,
        }
    }

    pub fn emit(&mut self, topic: &str, r: &Rejection) {
        if self.window_start.elapsed() >= self.period {
            self.flush();
            self.window_start = Instant::now();
            self.logged = 0;
        }
        if self.logged < self.burst {
            self.logged += 1;
            tracing::warn!(topic, reason = r.reason.as_label(), detail = %r.detail, "reading rejected");
        } else {
            self.suppressed += 1;
        }
    }

    pub fn flush(&mut self) {
        if self.suppressed > 0 {
            tracing::warn!(
                suppressed = self.suppressed,
                "more rejections were not logged; quantrac_readings_rejected_total counts them all"
            );
            self.suppressed = 0;
        }
    }
}
