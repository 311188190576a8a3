//! What the decode stage tells the outside world, one method per event: each writes its log
//! line and its counter together, so neither can happen without the other (see
//! [`crate::metrics`] for the pattern).
//!
//! - [`Events::accepted`]: `quantrac_readings_accepted_total` (no log line: the normal case).
//! - [`Events::rejected`]: `quantrac_readings_rejected_total{reason}` for every rejection, and a
//!   warning naming topic, reason and detail, through [`RejectionLog`]'s rate limit.
//! - [`Events::flush`]: the summary of warnings the rate limit held back.

use std::time::{Duration, Instant};

use prometheus::IntCounter;

use crate::metrics::Metrics;
use crate::model::{Reason, Rejection};

/// Warnings per period before [`RejectionLog`] only counts.
const LOG_BURST: u32 = 20;
/// The rate limit's period.
const LOG_PERIOD: Duration = Duration::from_secs(60);

/// The decode stage's events, with the counters resolved once.
pub struct Events {
    accepted: IntCounter,
    /// Indexed like [`Reason::ALL`].
    rejected: [IntCounter; Reason::ALL.len()],
    log: RejectionLog,
}

impl Events {
    pub fn new(m: &Metrics) -> Events {
        Events {
            accepted: m.readings_accepted.clone(),
            rejected: Reason::ALL.map(|r| m.readings_rejected.with_label_values(&[r.as_label()])),
            log: RejectionLog::new(LOG_BURST, LOG_PERIOD),
        }
    }

    /// `n` readings of one message passed decoding.
    pub fn accepted(&self, n: usize) {
        self.accepted.inc_by(n as u64);
    }

    /// One reading (or a whole payload) of a message on `topic` was rejected: always counted,
    /// logged within the rate limit.
    pub fn rejected(&mut self, topic: &str, r: &Rejection) {
        self.rejected[reason_index(r.reason)].inc();
        self.log.emit(topic, r);
    }

    /// The stage ends: say how many warnings were held back, if any.
    pub fn flush(&mut self) {
        self.log.flush();
    }
}

fn reason_index(reason: Reason) -> usize {
    Reason::ALL
        .iter()
        .position(|&r| r == reason)
        .expect("Reason::ALL lists every reason")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection(reason: Reason) -> Rejection {
        Rejection {
            reason,
            detail: "test".into(),
            index: Some(0),
        }
    }

    #[test]
    fn every_rejection_is_counted_under_its_reason_even_past_the_log_limit() {
        let m = Metrics::new();
        let mut events = Events::new(&m);
        events.accepted(3);
        for _ in 0..LOG_BURST + 5 {
            events.rejected("env/p/s/x", &rejection(Reason::Unit));
        }
        events.rejected("env/p/s/x", &rejection(Reason::TooLarge));
        assert_eq!(m.readings_accepted.get(), 3);
        for reason in Reason::ALL {
            let expected = match reason {
                Reason::Unit => u64::from(LOG_BURST) + 5,
                Reason::TooLarge => 1,
                _ => 0,
            };
            assert_eq!(
                m.readings_rejected
                    .with_label_values(&[reason.as_label()])
                    .get(),
                expected,
                "{}",
                reason.as_label()
            );
        }
        assert_eq!(
            events.log.suppressed, 6,
            "past the burst, counted not logged"
        );
        events.flush();
        assert_eq!(events.log.suppressed, 0);
    }
}
