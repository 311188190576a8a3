//! Whether writes are failing (since when, and what), and how long to wait before the next
//! attempt. A failure is reported when it starts or changes kind and a recovery once, so an
//! outage of hours is two log lines, not thousands; every attempt is still counted (see
//! [`AttemptFailed`](super::events::AttemptFailed)).

use std::time::Duration;

use tokio::time::Instant;

use super::classify::RetryPolicy;
use super::events::{Failing, Failure, Resumed};
use crate::readiness::Readiness;

pub(super) struct Health {
    retry: RetryPolicy,
    readiness: Readiness,
    /// The failure going on, and when the first failure of this run of failures happened.
    failing: Option<(Instant, Failure)>,
    /// Failed attempts in a row, for the exponential backoff.
    attempt: u32,
}

impl Health {
    pub fn new(retry: RetryPolicy, readiness: Readiness) -> Health {
        Health {
            retry,
            readiness,
            failing: None,
            attempt: 0,
        }
    }

    /// Reports `what` when it starts or changes kind; retries of the same failure stay quiet.
    pub fn failed(&mut self, what: Failure, message: &str) {
        let since = match self.failing {
            Some((_, was)) if was == what => return,
            Some((since, _)) => since,
            None => Instant::now(),
        };
        self.failing = Some((since, what));
        Failing { what, message }.emit(&self.readiness);
    }

    /// The cursor moved: the backoff starts over and a failure, if any, is over.
    pub fn recovered(&mut self) {
        self.attempt = 0;
        if let Some((since, _)) = self.failing.take() {
            Resumed {
                after: since.elapsed(),
            }
            .emit(&self.readiness);
        }
    }

    /// The wait before the next attempt after a transient failure: exponential, full jitter.
    pub fn backoff(&mut self) -> Duration {
        let wait = self.retry.backoff(self.attempt, rand::random::<f64>());
        self.attempt = self.attempt.saturating_add(1);
        wait
    }

    /// The wait the server asked for (`Retry-After`), capped.
    pub fn throttled(&mut self, asked: Duration) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        self.retry.cap(asked)
    }

    /// The wait after refused credentials or a 404 (a configuration error, which retrying fast
    /// will not fix): the longest backoff.
    pub fn refused_credentials(&mut self) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        self.retry.auth_wait()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // README: retried with capped exponential backoff. A write that gets through starts the
    // backoff over, so the next outage is retried quickly again.
    #[test]
    fn backoff_grows_to_the_cap_and_starts_over_after_a_recovery() {
        let policy = RetryPolicy {
            min: Duration::from_millis(200),
            max: Duration::from_secs(30),
        };
        let mut h = Health::new(policy, crate::readiness::Readiness::default());
        assert_eq!(h.backoff(), policy.min, "the first retry waits the minimum");
        for _ in 0..20 {
            let wait = h.backoff();
            assert!(wait >= policy.min && wait <= policy.max, "{wait:?}");
        }
        assert_eq!(h.throttled(Duration::from_secs(3600)), policy.max);
        assert_eq!(h.refused_credentials(), policy.max);
        h.recovered();
        assert_eq!(
            h.backoff(),
            policy.min,
            "after a recovery, the minimum again"
        );
    }

    // An outage of hours is two log lines: a failure is said when it starts or changes kind,
    // a recovery once. A TLS failure (a certificate to fix) is said on /readyz; others pass.
    #[test]
    fn a_failure_is_said_when_it_starts_or_changes_and_a_recovery_once() {
        use super::super::classify::ErrorKind;
        let policy = RetryPolicy {
            min: Duration::from_millis(200),
            max: Duration::from_secs(30),
        };
        let readiness = crate::readiness::Readiness::default();
        let mut h = Health::new(policy, readiness.clone());
        let tls = Failure::Write(ErrorKind::Tls);
        let log = crate::telemetry::logged(|| {
            h.failed(tls, "TLS handshake failed (unknown_ca): x");
            h.failed(tls, "TLS handshake failed (unknown_ca): x");
        });
        assert_eq!(
            log.matches("TLS handshake with InfluxDB failed").count(),
            1,
            "{log}"
        );
        assert_eq!(
            readiness.reason().unwrap(),
            "influx: TLS handshake failed (unknown_ca): x; points stay in the journal"
        );
        let log = crate::telemetry::logged(|| {
            h.failed(Failure::Write(ErrorKind::Connect), "connection refused");
            h.failed(Failure::Write(ErrorKind::Connect), "connection refused");
            h.failed(Failure::Journal, "disk I/O error");
        });
        assert_eq!(
            log.matches("InfluxDB unreachable, retrying").count(),
            1,
            "{log}"
        );
        assert_eq!(
            log.matches("cannot read or advance the journal outbox")
                .count(),
            1
        );
        assert_eq!(
            readiness.reason(),
            None,
            "not a certificate: passes by itself"
        );
        h.failed(tls, "TLS handshake failed (unknown_ca): x");
        assert!(readiness.reason().is_some());
        let log = crate::telemetry::logged(|| {
            h.recovered();
            h.recovered();
        });
        assert_eq!(log.matches("InfluxDB writes resumed").count(), 1, "{log}");
        assert_eq!(readiness.reason(), None, "ready again");
    }
}
