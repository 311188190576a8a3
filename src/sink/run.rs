//! The driver: read the outbox after its cursor, write in batches, advance the cursor only
//! after InfluxDB accepted the points.
//!
//! Invariants:
//! - The cursor moves past a point only once InfluxDB has it, or refused that single line for
//!   good (recorded with [`Backlog::rejected`] and counted). A failed attempt moves nothing, so
//!   a crash or restart resends from the cursor, which is harmless: identical measurement, tags
//!   and timestamp overwrite.
//! - Points go out in id order; after a split, each half that succeeds moves the cursor to its
//!   last id, so a retry never resends what is already confirmed.
//! - The loop never gives up on InfluxDB: transient failures back off (full jitter), throttling
//!   waits for `Retry-After`, refused credentials retry slowly. A transient outbox error backs
//!   off too; only a [`BacklogError::Fatal`] stops the driver. The stop signal interrupts every
//!   wait.
//! - Batches go out when full or when their oldest point has waited `flush_interval`.
//! - Errors are logged when the state changes ("unreachable, retrying", "resumed after N s"),
//!   not on every retry; every attempt is counted in `quantrac_influx_write_errors_total`
//!   (each log line is paired with its counters in `events.rs`).
//!
//! The outbox is only ever awaited, never called in a blocking way: an outbox over SQLite does
//! its work off the runtime's workers (see [`Backlog`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::backlog::{Backlog, BacklogError};
use super::classify::{ErrorKind, Outcome, RetryPolicy};
use super::client::WriteApi;
use super::events::{OutboxFailed, WriterStarted};
use super::flight::{front, Flight};
use super::writer::{Step, Writer};
use crate::config::InfluxSettings;
use crate::metrics::Metrics;
use crate::readiness::Readiness;

/// How the driver batches and retries.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Most points per request (`influx.batch_size`).
    pub batch_size: usize,
    /// Longest time a point waits for its batch to fill (`influx.flush_interval_ms`).
    pub flush_interval: Duration,
    /// Backoff between failed attempts (`influx.retry_max_ms` is the ceiling).
    pub retry: RetryPolicy,
    /// Time allowed for the last flush after the stop signal.
    pub deadline_on_stop: Duration,
    /// Most write requests on the wire at once (at least 1). Only the oldest can move the
    /// cursor; the others overlap their network and server time with it.
    pub in_flight: usize,
}

/// Write requests on the wire at once. A single request leaves both InfluxDB and quantrac
/// idle half the time (one parses while the other reads the outbox and waits); a second one
/// fills those gaps and a third absorbs jitter. More only queues up inside InfluxDB, which
/// already uses every core on the small machines this runs on.
pub const IN_FLIGHT: usize = 3;

/// The first backoff step. Small, so one dropped connection costs little; the exponential
/// growth reaches `retry_max_ms` within a few attempts when the outage lasts.
pub const RETRY_MIN: Duration = Duration::from_millis(200);

impl Options {
    pub fn from_settings(s: &InfluxSettings, deadline_on_stop: Duration) -> Options {
        let max = Duration::from_millis(s.retry_max_ms).max(RETRY_MIN);
        Options {
            batch_size: s.batch_size.max(1),
            flush_interval: Duration::from_millis(s.flush_interval_ms),
            retry: RetryPolicy {
                min: RETRY_MIN,
                max,
            },
            deadline_on_stop,
            in_flight: IN_FLIGHT,
        }
    }
}

/// Runs until `stop` is cancelled, then makes one last flush attempt within
/// `opts.deadline_on_stop` and returns `Ok`. `wake` is notified by the journal after each
/// commit, so a full batch goes out without waiting for the flush interval.
///
/// Returns early with the error when the outbox fails for good ([`BacklogError::Fatal`]),
/// after logging it; the unwritten points stay in the journal.
pub async fn run<B: Backlog, W: WriteApi>(
    backlog: B,
    client: W,
    opts: Options,
    metrics: Metrics,
    readiness: Readiness,
    wake: Arc<Notify>,
    stop: CancellationToken,
) -> Result<(), BacklogError> {
    WriterStarted.emit(&metrics);
    let mut w = Writer::new(backlog, client, opts, metrics, readiness);
    let result = drive(&mut w, &wake, &stop).await;
    if let Err(error) = &result {
        OutboxFailed { error }.emit();
    }
    result
}

/// The loop of [`run`], then the last flush.
async fn drive<B: Backlog, W: WriteApi>(
    w: &mut Writer<B, W>,
    wake: &Notify,
    stop: &CancellationToken,
) -> Result<(), BacklogError> {
    w.refresh_backlog_gauge().await;
    let depth = w.opts.in_flight.max(1);
    // Batches sent and not yet resolved, oldest first: the cursor can only pass the front.
    let mut flights: VecDeque<Flight> = VecDeque::new();
    // (first id of a batch that was not full, when it was first seen)
    let mut pending: Option<(u64, Instant)> = None;
    loop {
        if stop.is_cancelled() {
            break;
        }
        // Fill the window while the front one is on the wire. `due` is set when a batch is
        // waiting to fill up, `idle` when there is nothing to send at all.
        let mut due = None;
        let mut idle = false;
        let mut backoff = None;
        while flights.len() < depth {
            let read = match flights.back() {
                None => w.backlog.next_batch(w.opts.batch_size).await,
                Some(back) => {
                    let ahead = flights.iter().map(|f| f.batch.len()).sum();
                    w.backlog
                        .next_batch_after(back.last_id, ahead, w.opts.batch_size)
                        .await
                }
            };
            let batch = match read {
                Ok(batch) => batch,
                Err(e) => {
                    w.outbox_failed(e)?;
                    // With batches on the wire, their answers come first and the read is
                    // retried after the front one is resolved; otherwise back off.
                    if flights.is_empty() {
                        backoff = Some(w.health.backoff());
                    }
                    break;
                }
            };
            let Some(&(first, _)) = batch.first() else {
                pending = None;
                idle = true;
                break;
            };
            if batch.len() < w.opts.batch_size {
                let since = match pending {
                    Some((id, at)) if id == first => at,
                    _ => {
                        let now = Instant::now();
                        pending = Some((first, now));
                        now
                    }
                };
                let at = since + w.opts.flush_interval;
                if Instant::now() < at {
                    due = Some(at);
                    break;
                }
            }
            pending = None;
            flights.push_back(w.send(batch));
        }
        if let Some(wait) = backoff {
            if sleep_or_stop(wait, stop).await {
                break;
            }
            continue;
        }
        // Room left in the window: a journal commit may fill the next batch.
        let room = flights.len() < depth && (idle || due.is_some());
        let poll = if idle {
            // The flush interval doubles as a poll, should a notification ever be missed.
            Some(Instant::now() + w.opts.flush_interval)
        } else {
            due
        };
        tokio::select! {
            answer = front(&mut flights) => {
                let Some(flight) = flights.pop_front() else { continue };
                let first = answer.unwrap_or_else(|e| {
                    // The attempt's task panicked: a failed attempt like any other.
                    (Outcome::Backoff(ErrorKind::Server), e.to_string())
                });
                let step = w.write_batch(&flight.batch, Some(first)).await;
                w.refresh_backlog_gauge().await;
                match step {
                    Step::Done => {}
                    Step::Stop(e) => return Err(e),
                    Step::Wait(wait) => {
                        // Everything behind the failed batch is sent again from the cursor
                        // after the wait (harmless: InfluxDB overwrites identical points).
                        flights.clear();
                        if sleep_or_stop(wait, stop).await {
                            break;
                        }
                    }
                }
            }
            _ = wake.notified(), if room => {}
            _ = sleep_until_or_never(poll) => {}
            _ = stop.cancelled() => break,
        }
    }
    // Answers still on the way are dropped; the last flush resends from the cursor.
    flights.clear();
    w.final_flush().await
}

/// Sleeps until `at`; never resolves without one.
async fn sleep_until_or_never(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Sleeps `wait`; `true` if the stop signal came first.
async fn sleep_or_stop(wait: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => false,
        _ = stop.cancelled() => true,
    }
}
