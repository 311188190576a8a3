//! What the sink lets an operator see: one struct per event, whose `emit` writes the log line
//! and moves the counters together (vector's `internal_events`), so the two cannot drift. The
//! driver decides *that* something happened; this file decides how it shows.
//!
//! Events that count take the [`Metrics`] handle in `emit`; the others only log.
//!
//! | event | log | metric |
//! |---|---|---|
//! | [`WriterStarted`] | | `quantrac_influx_write_errors_total{kind}` series created at 0 |
//! | [`AttemptFailed`] | debug, every attempt | `quantrac_influx_write_errors_total{kind}` |
//! | [`HandshakeFailed`] | | `quantrac_tls_handshake_failures_total{client="influx",reason}` |
//! | [`Failing`] | warn/error, when a failure starts or changes | | `influx: …TLS handshake failed…` while the handshake fails |
//! | [`Resumed`] | info, once per recovery | | ready |
//! | [`PointsWritten`] | trace | `quantrac_influx_points_written_total` |
//! | [`PartialWrite`] | warn | `…_points_written_total`, `…_points_rejected_total` |
//! | [`PointRefused`] | warn | `quantrac_influx_points_rejected_total` |
//! | [`BacklogCounted`] | debug when the count fails | `quantrac_journal_backlog_readings` |
//! | [`OutboxFailed`] | error | |
//! | [`WriterStopped`] | info or warn | |

use std::time::Duration;

use super::backlog::BacklogError;
use super::classify::ErrorKind;
use crate::metrics::Metrics;
use crate::readiness::Readiness;
use crate::tls::Handshake;

/// What is failing, for reporting once per change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Failure {
    Write(ErrorKind),
    Journal,
}

/// The writer starts: every `kind` series exists at 0, so a rate over it works before the
/// first failure.
pub(super) struct WriterStarted;

impl WriterStarted {
    pub fn emit(self, metrics: &Metrics) {
        for kind in ErrorKind::ALL {
            metrics
                .influx_write_errors
                .with_label_values(&[kind.as_label()]);
        }
    }
}

/// One write attempt failed. Counted every time, whether or not the driver ends up using the
/// answer; the log line worth reading is [`Failing`], once per change.
pub(super) struct AttemptFailed<'a> {
    pub kind: ErrorKind,
    pub points: usize,
    pub message: &'a str,
}

impl AttemptFailed<'_> {
    pub fn emit(self, metrics: &Metrics) {
        tracing::debug!(
            kind = self.kind.as_label(),
            points = self.points,
            error.message = %self.message,
            "InfluxDB write attempt failed"
        );
        metrics
            .influx_write_errors
            .with_label_values(&[self.kind.as_label()])
            .inc();
    }
}

/// A write attempt failed in the TLS handshake (counted beside [`AttemptFailed`], kind `tls`).
pub(super) struct HandshakeFailed<'a>(pub &'a Handshake);

impl HandshakeFailed<'_> {
    pub fn emit(self, metrics: &Metrics) {
        metrics
            .tls_handshake_failures
            .with_label_values(&["influx", self.0.failure.as_label()])
            .inc();
    }
}

/// A failure started, or changed kind. Retries of the same failure stay quiet.
pub(super) struct Failing<'a> {
    pub what: Failure,
    pub message: &'a str,
}

impl Failing<'_> {
    pub fn emit(self, readiness: &Readiness) {
        let message = self.message;
        // A certificate to fix is said on /readyz; other failures pass by themselves.
        if self.what == Failure::Write(ErrorKind::Tls) {
            readiness.not_ready(
                super::COMPONENT,
                format!("{message}; points stay in the journal"),
            );
        } else {
            readiness.ready(super::COMPONENT);
        }
        match self.what {
            Failure::Write(ErrorKind::Auth) => tracing::error!(
                error.message = %message,
                "InfluxDB refused the credentials (check influx.token or influx.username/password); points stay in the journal, retrying slowly"
            ),
            Failure::Write(ErrorKind::NotFound) => tracing::error!(
                error.message = %message,
                hint = super::classify::not_found_hint(message),
                "InfluxDB answered 404 Not Found; points stay in the journal, retrying slowly"
            ),
            Failure::Write(ErrorKind::Throttled) => tracing::warn!(
                error.message = %message,
                "InfluxDB is throttling writes, waiting as asked"
            ),
            Failure::Write(ErrorKind::Tls) => tracing::error!(
                error.message = %message,
                "TLS handshake with InfluxDB failed (check influx.ca_file, influx.cert_file and the server's certificate); points stay in the journal, retrying"
            ),
            Failure::Write(ErrorKind::Connect) => tracing::warn!(
                error.message = %message,
                "InfluxDB unreachable, retrying"
            ),
            Failure::Write(ErrorKind::Timeout) => tracing::warn!(
                error.message = %message,
                "InfluxDB did not answer in time, retrying"
            ),
            Failure::Write(_) => tracing::warn!(
                error.message = %message,
                "InfluxDB write failed, retrying"
            ),
            Failure::Journal => tracing::error!(
                error.message = %message,
                "cannot read or advance the journal outbox, retrying"
            ),
        }
    }
}

/// Writes go through again after a failure that lasted `after`.
pub(super) struct Resumed {
    pub after: Duration,
}

impl Resumed {
    pub fn emit(self, readiness: &Readiness) {
        readiness.ready(super::COMPONENT);
        let after_s = self.after.as_secs();
        tracing::info!(after_s, "InfluxDB writes resumed after {after_s} s");
    }
}

/// InfluxDB accepted these points and the cursor passed them.
pub(super) struct PointsWritten {
    pub points: u64,
}

impl PointsWritten {
    pub fn emit(self, metrics: &Metrics) {
        tracing::trace!(points = self.points, "points written to InfluxDB");
        metrics.influx_points_written.inc_by(self.points);
    }
}

/// InfluxDB kept part of a batch and dropped the rest (v2 422, v1 "partial write"); the cursor
/// passed the batch.
pub(super) struct PartialWrite<'a> {
    pub points: u64,
    pub dropped: u64,
    pub first_id: u64,
    pub last_id: u64,
    pub message: &'a str,
}

impl PartialWrite<'_> {
    pub fn emit(self, metrics: &Metrics) {
        let dropped = self.dropped.min(self.points);
        tracing::warn!(
            points = self.points,
            dropped,
            first_id = self.first_id,
            last_id = self.last_id,
            error.message = %self.message,
            "InfluxDB kept part of a batch and dropped the rest; the journal keeps every point"
        );
        metrics.influx_points_written.inc_by(self.points - dropped);
        metrics.influx_points_rejected.inc_by(dropped);
    }
}

/// InfluxDB refused one point for good; it was recorded in the journal and the cursor passed it.
pub(super) struct PointRefused<'a> {
    pub id: u64,
    pub kind: ErrorKind,
    pub message: &'a str,
    pub line: &'a str,
}

impl PointRefused<'_> {
    pub fn emit(self, metrics: &Metrics) {
        tracing::warn!(
            id = self.id,
            kind = self.kind.as_label(),
            error.message = %self.message,
            line = %clip(self.line),
            "InfluxDB refused a point; it stays in the journal and is skipped"
        );
        metrics.influx_points_rejected.inc();
    }
}

/// The points after the cursor were counted, or could not be.
pub(super) struct BacklogCounted<'a>(pub &'a Result<u64, BacklogError>);

impl BacklogCounted<'_> {
    pub fn emit(self, metrics: &Metrics) {
        match self.0 {
            Ok(n) => metrics
                .journal_backlog
                .set(i64::try_from(*n).unwrap_or(i64::MAX)),
            Err(e) => tracing::debug!(error.message = %e, "cannot count the journal backlog"),
        }
    }
}

/// The outbox failed for good: the writer stops.
pub(super) struct OutboxFailed<'a> {
    pub error: &'a BacklogError,
}

impl OutboxFailed<'_> {
    pub fn emit(self) {
        tracing::error!(
            error.message = %self.error,
            error.cause_chain = ?self.error,
            "InfluxDB writer stopped: the journal outbox cannot be used; unwritten points stay in the journal"
        );
    }
}

/// The writer stopped after the stop signal and its last flush.
pub(super) struct WriterStopped {
    /// Whether the last flush emptied the outbox.
    pub finished: bool,
    pub points_left: u64,
    pub deadline: Duration,
}

impl WriterStopped {
    pub fn emit(self) {
        if self.finished {
            tracing::info!("InfluxDB writer stopped; every journalled point was written");
        } else {
            tracing::warn!(
                points_left = self.points_left,
                deadline_s = self.deadline.as_secs_f64(),
                "InfluxDB writer stopped before the outbox was empty; the rest stays in the journal and is written at the next start"
            );
        }
    }
}

/// At most 300 characters of a server message or a line, for logs.
pub(super) fn clip(s: &str) -> &str {
    match s.char_indices().nth(300) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::Failure as TlsFailure;

    #[test]
    fn every_write_error_kind_is_exported_at_zero_and_a_handshake_counted_by_reason() {
        let m = Metrics::new();
        WriterStarted.emit(&m);
        let text = m.render();
        for kind in ErrorKind::ALL {
            assert!(
                text.contains(&format!(
                    "quantrac_influx_write_errors_total{{kind=\"{}\"}} 0",
                    kind.as_label()
                )),
                "{kind:?}"
            );
        }
        let h = Handshake {
            failure: TlsFailure::UnknownCa,
            detail: "unknown issuer".into(),
        };
        HandshakeFailed(&h).emit(&m);
        assert_eq!(
            m.tls_handshake_failures
                .with_label_values(&["influx", TlsFailure::UnknownCa.as_label()])
                .get(),
            1
        );
    }

    #[test]
    fn the_writer_says_why_it_stopped_and_what_stays_in_the_journal() {
        let log = crate::telemetry::logged(|| {
            OutboxFailed {
                error: &BacklogError::Fatal("cursor beyond the last point".into()),
            }
            .emit();
            WriterStopped {
                finished: false,
                points_left: 5,
                deadline: Duration::from_secs(10),
            }
            .emit();
        });
        assert!(
            log.contains("journal outbox cannot be used")
                && log.contains("cursor beyond the last point"),
            "{log}"
        );
        assert!(
            log.contains("before the outbox was empty") && log.contains("points_left=5"),
            "{log}"
        );
        let log = crate::telemetry::logged(|| {
            WriterStopped {
                finished: true,
                points_left: 0,
                deadline: Duration::from_secs(10),
            }
            .emit()
        });
        assert!(log.contains("every journalled point was written"), "{log}");
    }
}
