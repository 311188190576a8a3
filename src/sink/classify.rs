//! What to do after a write attempt, as a pure function of the answer (status, `Retry-After`,
//! body) or of the transport error, and how long to wait before the next attempt.
//!
//! The rule is "never lose a point because of the server's weather": only answers that are
//! about the *data* (400, 413, 422) can end with points refused, and even then only one line
//! at a time, after the batch was split down to it. Everything else keeps the batch behind the
//! outbox cursor and retries, forever if need be.
//!
//! Status codes follow the InfluxDB write documentation (v2 "Troubleshoot issues writing
//! data"; v1 `/write`):
//! - 2xx: all points written.
//! - 400: malformed line protocol; v2 refuses the whole batch, so the batch is split until the
//!   bad line is alone. InfluxDB 1.x also uses 400 for a *partial write* (body `partial write:
//!   … dropped=N`): the valid points were kept, which is handled like 422. InfluxDB 3 uses 400
//!   for partial writes without that phrase; splitting is still correct there, because
//!   resending a kept point overwrites it with itself.
//! - 413: the body is too large: split; a single line that is still too large is refused.
//! - 422: partial write (v2): the valid points were written, the rest dropped by the server
//!   (beyond retention, field type conflict). The batch is done; the dropped count is reported.
//! - 401/403: credentials: keep the data, retry slowly, log loudly.
//! - 429/503: throttled: wait for `Retry-After` (seconds or HTTP-date), capped.
//! - 404: the write endpoint, database or bucket does not exist — a configuration error, not
//!   the server's weather (an InfluxDB 1.x answering `/api/v2/write` with `404 page not
//!   found` because `influx.api` is `v2`, or `database not found`): keep the data, retry
//!   slowly like refused credentials, and say what to fix ([`not_found_hint`]).
//! - 408, other 5xx, other 4xx and transport errors (TLS handshake failures among them,
//!   counted as `tls`): back off.

use std::time::{Duration, SystemTime};

/// Counter label of `quantrac_influx_write_errors_total{kind}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    Connect,
    Timeout,
    Server,
    Throttled,
    Auth,
    NotFound,
    Rejected,
    TooLarge,
    /// The TLS handshake failed (a certificate refused by either side).
    Tls,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Server,
        ErrorKind::Throttled,
        ErrorKind::Auth,
        ErrorKind::NotFound,
        ErrorKind::Rejected,
        ErrorKind::TooLarge,
        ErrorKind::Tls,
    ];

    pub fn as_label(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Server => "server",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Auth => "auth",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Rejected => "rejected",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Tls => "tls",
        }
    }
}

/// The verdict on one write attempt of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every point was accepted: advance the cursor.
    Written,
    /// Some points were dropped by the server, the others kept; the batch is done.
    /// `dropped` is the server's count when the body gave one.
    Partial { dropped: Option<u64> },
    /// Throttled: wait this long (from `Retry-After`, uncapped here), keep the batch.
    RetryAfter(Duration),
    /// Transient failure: exponential backoff, keep the batch.
    Backoff(ErrorKind),
    /// Something in the batch is refused: split it and write the halves.
    Split(ErrorKind),
    /// This single line is refused for good.
    Reject(ErrorKind),
    /// Credentials refused: keep the data, retry slowly.
    AuthFailed,
    /// 404: no such endpoint, database or bucket (a configuration error): keep the data,
    /// retry slowly.
    NotFound,
}

impl Outcome {
    /// The `kind` label to count for this attempt, if it failed.
    pub fn error_kind(&self) -> Option<ErrorKind> {
        match self {
            Outcome::Written => None,
            Outcome::Partial { .. } => Some(ErrorKind::Rejected),
            Outcome::RetryAfter(_) => Some(ErrorKind::Throttled),
            Outcome::AuthFailed => Some(ErrorKind::Auth),
            Outcome::NotFound => Some(ErrorKind::NotFound),
            Outcome::Backoff(k) | Outcome::Split(k) | Outcome::Reject(k) => Some(*k),
        }
    }
}

/// Classifies an HTTP answer to a write of `batch_len` lines. `now` is used only to turn an
/// HTTP-date `Retry-After` into a delay.
pub fn classify(
    status: u16,
    retry_after: Option<&str>,
    body: &str,
    batch_len: usize,
    now: SystemTime,
) -> Outcome {
    let split_or_reject = |kind| {
        if batch_len > 1 {
            Outcome::Split(kind)
        } else {
            Outcome::Reject(kind)
        }
    };
    match status {
        200..=299 => Outcome::Written,
        422 => Outcome::Partial {
            dropped: dropped_count(body),
        },
        400 if body.contains("partial write") => Outcome::Partial {
            dropped: dropped_count(body),
        },
        400 => split_or_reject(ErrorKind::Rejected),
        413 => split_or_reject(ErrorKind::TooLarge),
        401 | 403 => Outcome::AuthFailed,
        404 => Outcome::NotFound,
        429 | 503 => match retry_after.and_then(|h| parse_retry_after(h, now)) {
            Some(d) => Outcome::RetryAfter(d),
            None => Outcome::Backoff(ErrorKind::Throttled),
        },
        _ => Outcome::Backoff(ErrorKind::Server),
    }
}

/// What to fix after a 404, from its body: InfluxDB 1.x says `database not found`, 2.x
/// `bucket "…" not found` (or `organization name "…" not found`), and a server that has no
/// such endpoint at all (InfluxDB 1.x asked for `/api/v2/write`) a bare `404 page not found`.
pub fn not_found_hint(body: &str) -> &'static str {
    let body = body.to_ascii_lowercase();
    if body.contains("database not found") {
        "the InfluxDB 1.x database does not exist: create it (influx -execute 'CREATE DATABASE quantrac', \
         with the name in influx.database) or set influx.database to one that exists"
    } else if body.contains("bucket") || body.contains("organization") {
        "the InfluxDB 2.x bucket or organisation does not exist: check influx.org and influx.bucket \
         (influx bucket create --name quantrac)"
    } else {
        "InfluxDB has no such write endpoint: an InfluxDB 1.x server needs influx.api = \"v1\" \
         (writes to /write), a 2.x or 3.x server influx.api = \"v2\" (/api/v2/write); check influx.url too"
    }
}

/// `dropped=N` as InfluxDB writes it at the end of a partial-write message.
pub fn dropped_count(body: &str) -> Option<u64> {
    let at = body.rfind("dropped=")? + "dropped=".len();
    let digits: String = body[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date. A date in the past means
/// "now" (zero); an unreadable value is ignored (`None`).
pub fn parse_retry_after(header: &str, now: SystemTime) -> Option<Duration> {
    let header = header.trim();
    if let Ok(secs) = header.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(header).ok()?;
    let at = SystemTime::UNIX_EPOCH
        + Duration::from_millis(u64::try_from(at.timestamp_millis()).unwrap_or(0));
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Exponential backoff with full jitter between `min` and `max`: attempt `n` (0-based) waits a
/// uniformly random time in `[min, min(max, min × 2ⁿ)]`. Spreading the waits keeps several
/// quantrac instances from hammering a recovering server in step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub min: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (0-based); `jitter` ∈ [0, 1) picks the point in
    /// the range (a random number in production, fixed in tests).
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let ceiling = self
            .min
            .saturating_mul(2u32.saturating_pow(attempt.min(31)))
            .min(self.max)
            .max(self.min);
        let span = ceiling - self.min;
        self.min + span.mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// A server-given `Retry-After`, held to the policy's maximum so a bad header cannot park
    /// the writer for hours.
    pub fn cap(&self, wait: Duration) -> Duration {
        wait.min(self.max)
    }

    /// The wait after refused credentials: the slowest the policy allows. The data stays in
    /// the journal; retrying fast would only flood the server's auth log.
    pub fn auth_wait(&self) -> Duration {
        self.max
    }
}

/// Transport failures classify as backoff of their kind.
pub fn classify_transport(kind: ErrorKind) -> Outcome {
    Outcome::Backoff(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        // 2026-11-29T07:05:00Z
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_935_900)
    }

    fn c(status: u16, body: &str, n: usize) -> Outcome {
        classify(status, None, body, n, now())
    }

    #[test]
    fn success_codes_are_written() {
        assert_eq!(c(204, "", 10), Outcome::Written);
        assert_eq!(c(200, "", 1), Outcome::Written);
    }

    // InfluxDB v2 docs: 400 = malformed line protocol, the whole batch refused → isolate it.
    #[test]
    fn bad_request_splits_then_rejects_a_single_line() {
        let body = r#"{"code":"invalid","message":"unable to parse 'x': missing fields"}"#;
        assert_eq!(c(400, body, 2), Outcome::Split(ErrorKind::Rejected));
        assert_eq!(c(400, body, 1), Outcome::Reject(ErrorKind::Rejected));
    }

    // InfluxDB v2 docs: 413 = request too large → split; one line still too large is refused.
    #[test]
    fn too_large_splits() {
        assert_eq!(c(413, "", 5000), Outcome::Split(ErrorKind::TooLarge));
        assert_eq!(c(413, "", 1), Outcome::Reject(ErrorKind::TooLarge));
        assert_eq!(
            Outcome::Split(ErrorKind::TooLarge)
                .error_kind()
                .unwrap()
                .as_label(),
            "too_large"
        );
    }

    // InfluxDB v2 docs: 422 = some points rejected, the others ingested.
    #[test]
    fn unprocessable_is_a_partial_write_with_the_dropped_count() {
        let body = r#"{"code":"unprocessable entity","message":"failure writing points to database: partial write: points beyond retention policy dropped=3"}"#;
        assert_eq!(c(422, body, 10), Outcome::Partial { dropped: Some(3) });
        assert_eq!(c(422, "{}", 10), Outcome::Partial { dropped: None });
        assert_eq!(
            Outcome::Partial { dropped: None }.error_kind(),
            Some(ErrorKind::Rejected)
        );
    }

    // InfluxDB 1.x reports partial writes as 400 with "partial write" in the body.
    #[test]
    fn v1_partial_write_is_a_partial_write_not_a_split() {
        let body = r#"{"error":"partial write: field type conflict: input field \"value\" on measurement \"reading\" is type string, already exists as type float dropped=1"}"#;
        assert_eq!(c(400, body, 10), Outcome::Partial { dropped: Some(1) });
        assert_eq!(c(400, body, 1), Outcome::Partial { dropped: Some(1) });
    }

    #[test]
    fn credentials_refused_keep_the_data() {
        assert_eq!(c(401, "unauthorized", 10), Outcome::AuthFailed);
        assert_eq!(c(403, "", 10), Outcome::AuthFailed);
        assert_eq!(Outcome::AuthFailed.error_kind(), Some(ErrorKind::Auth));
    }

    // RFC 9110 §10.2.3: Retry-After is delay-seconds or an HTTP-date.
    #[test]
    fn throttled_honours_retry_after_seconds_and_dates() {
        assert_eq!(
            classify(429, Some("7"), "", 10, now()),
            Outcome::RetryAfter(Duration::from_secs(7))
        );
        assert_eq!(
            classify(503, Some("Sun, 29 Nov 2026 07:05:30 GMT"), "", 10, now()),
            Outcome::RetryAfter(Duration::from_secs(30))
        );
        assert_eq!(
            classify(503, Some("Sun, 29 Nov 2026 07:00:00 GMT"), "", 10, now()),
            Outcome::RetryAfter(Duration::ZERO),
            "a date in the past means retry now"
        );
        assert_eq!(
            classify(429, Some("soon"), "", 10, now()),
            Outcome::Backoff(ErrorKind::Throttled)
        );
        assert_eq!(c(429, "", 10), Outcome::Backoff(ErrorKind::Throttled));
        assert_eq!(
            Outcome::RetryAfter(Duration::ZERO).error_kind(),
            Some(ErrorKind::Throttled)
        );
    }

    // A 404 is a configuration error (wrong API, no database or bucket), not the server's
    // weather: its own kind, slow retries, and a hint naming what to fix.
    #[test]
    fn not_found_is_its_own_kind_with_a_hint() {
        assert_eq!(c(404, "404 page not found\n", 10), Outcome::NotFound);
        assert_eq!(c(404, "", 1), Outcome::NotFound);
        assert_eq!(Outcome::NotFound.error_kind(), Some(ErrorKind::NotFound));
        assert_eq!(ErrorKind::NotFound.as_label(), "not_found");
        // InfluxDB 1.x answering a v2 write.
        assert!(not_found_hint("404 page not found").contains("influx.api = \"v1\""));
        // InfluxDB 1.x with api = "v1" and no database.
        let v1 = r#"{"error":"database not found: \"quantrac\""}"#;
        assert!(not_found_hint(v1).contains("CREATE DATABASE"));
        // InfluxDB 2.x.
        let v2 = r#"{"code":"not found","message":"bucket \"quantrac\" not found"}"#;
        assert!(not_found_hint(v2).contains("influx.bucket"));
    }

    #[test]
    fn server_errors_and_timeouts_back_off() {
        for s in [408, 500, 502, 504, 405] {
            assert_eq!(c(s, "", 10), Outcome::Backoff(ErrorKind::Server), "{s}");
        }
        assert_eq!(
            classify_transport(ErrorKind::Connect),
            Outcome::Backoff(ErrorKind::Connect)
        );
    }

    #[test]
    fn dropped_count_reads_the_last_number() {
        assert_eq!(dropped_count("partial write: x dropped=12\"}"), Some(12));
        assert_eq!(dropped_count("dropped="), None);
        assert_eq!(dropped_count("nothing"), None);
    }

    #[test]
    fn error_labels_are_the_metric_kinds() {
        let labels: Vec<_> = ErrorKind::ALL.iter().map(|k| k.as_label()).collect();
        assert_eq!(
            labels,
            [
                "connect",
                "timeout",
                "server",
                "throttled",
                "auth",
                "not_found",
                "rejected",
                "too_large",
                "tls"
            ]
        );
    }

    #[test]
    fn backoff_grows_exponentially_with_full_jitter_between_min_and_max() {
        let p = RetryPolicy {
            min: Duration::from_millis(200),
            max: Duration::from_secs(30),
        };
        assert_eq!(p.backoff(0, 0.99), Duration::from_millis(200));
        assert_eq!(p.backoff(3, 0.0), Duration::from_millis(200));
        assert_eq!(p.backoff(3, 0.5), Duration::from_millis(200 + 700)); // ceiling 1.6 s
        assert_eq!(p.backoff(100, 1.0), Duration::from_secs(30));
        assert!(p.backoff(100, 0.5) <= p.max);
        assert_eq!(p.cap(Duration::from_secs(3600)), Duration::from_secs(30));
        assert_eq!(p.cap(Duration::from_secs(3)), Duration::from_secs(3));
        assert_eq!(p.auth_wait(), p.max);
    }
}
