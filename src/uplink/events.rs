//! What the uplink lets an operator see: one struct per event, whose `emit` writes the log line
//! and moves the metrics together. The uplink never touches `/readyz` (the pipeline runs on
//! without the department's server).
//!
//! | event | log | metric |
//! |---|---|---|
//! | [`Started`] | info | |
//! | [`PeriodClosed`] | debug (info when it made files while catching up) | |
//! | [`Backlog`] | | `quantrac_uplink_backlog_files` |
//! | [`Sent`] | info | `quantrac_uplink_files_total{result="sent"}`, `quantrac_uplink_last_success_timestamp_seconds` |
//! | [`Refused`] | warn, once per file | `quantrac_uplink_files_total{result="refused"}` |
//! | [`Failing`] | warn, when a failure starts or changes | `quantrac_uplink_files_total{result}` (unreachable, login, tls) |
//! | [`Resumed`] | info, once per recovery | |
//! | [`StoreFailed`] | error | |

use std::time::Duration;

use super::ftp::Failure;
use super::StoreError;
use crate::metrics::Metrics;

pub(super) struct Started<'a> {
    pub url: &'a str,
    pub stations: usize,
    pub period_s: u64,
    pub backlog: usize,
}

impl Started<'_> {
    pub fn emit(self) {
        tracing::info!(
            url = self.url,
            stations = self.stations,
            period_s = self.period_s,
            backlog = self.backlog,
            "uplink to the department's FTP server started"
        );
    }
}

pub(super) struct PeriodClosed {
    pub end: chrono::NaiveDateTime,
    pub files: usize,
    pub late: bool,
}

impl PeriodClosed {
    pub fn emit(self) {
        if self.late && self.files > 0 {
            tracing::info!(period_end = %self.end, files = self.files, "uplink period closed (catching up)");
        } else {
            tracing::debug!(period_end = %self.end, files = self.files, "uplink period closed");
        }
    }
}

pub(super) struct Backlog(pub usize);

impl Backlog {
    pub fn emit(self, metrics: &Metrics) {
        metrics.uplink_backlog.set(self.0 as i64);
    }
}

pub(super) struct Sent<'a> {
    pub station: &'a str,
    pub path: &'a str,
    pub bytes: usize,
}

impl Sent<'_> {
    pub fn emit(self, metrics: &Metrics) {
        tracing::info!(
            station = self.station,
            file = self.path,
            bytes = self.bytes,
            "uplink file delivered"
        );
        metrics.uplink_files.with_label_values(&["sent"]).inc();
        metrics
            .uplink_last_success
            .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
    }
}

/// The server refused a file for good. Counted at every attempt, logged the first time.
pub(super) struct Refused<'a> {
    pub station: &'a str,
    pub path: &'a str,
    pub reason: &'a str,
    pub first: bool,
    pub retry_in: Duration,
}

impl Refused<'_> {
    pub fn emit(self, metrics: &Metrics) {
        metrics.uplink_files.with_label_values(&["refused"]).inc();
        if self.first {
            tracing::warn!(
                station = self.station,
                file = self.path,
                reason = self.reason,
                retry_in_s = self.retry_in.as_secs(),
                "the department's server refused an uplink file; it is kept and retried (other stations go on)"
            );
        }
    }
}

/// Sending failed for every file (server unreachable, login or TLS refused). Counted at every
/// attempt, logged when the failure starts or changes kind.
pub(super) struct Failing<'a> {
    pub failure: &'a Failure,
    pub changed: bool,
    pub retry_in: Duration,
    pub backlog: usize,
}

impl Failing<'_> {
    pub fn emit(self, metrics: &Metrics) {
        metrics
            .uplink_files
            .with_label_values(&[self.failure.as_label()])
            .inc();
        if self.changed {
            tracing::warn!(
                kind = self.failure.as_label(),
                error.message = %self.failure,
                backlog = self.backlog,
                retry_in_ms = self.retry_in.as_millis() as u64,
                "uplink cannot deliver to the department's server; files wait in the journal"
            );
        } else {
            tracing::debug!(kind = self.failure.as_label(), error.message = %self.failure, "uplink attempt failed");
        }
    }
}

pub(super) struct Resumed;

impl Resumed {
    pub fn emit(self) {
        tracing::info!("uplink delivers again");
    }
}

pub(super) struct StoreFailed<'a> {
    pub doing: &'a str,
    pub error: &'a StoreError,
}

impl StoreFailed<'_> {
    pub fn emit(self) {
        tracing::error!(doing = self.doing, error.message = %self.error, "uplink: the journal failed");
    }
}
