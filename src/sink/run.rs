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
//! - The loop never gives up: transient failures back off (full jitter), throttling waits for
//!   `Retry-After`, refused credentials retry slowly. The stop signal interrupts every wait.
//! - Batches go out when full or when their oldest point has waited `flush_interval`.
//! - Errors are logged when the state changes ("unreachable, retrying", "resumed after N s"),
//!   not on every retry; every attempt is counted in `quantrac_influx_write_errors_total`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{watch, Notify};
use tokio::task::{JoinError, JoinHandle};
use tokio::time::Instant;

use super::classify::{classify, classify_transport, ErrorKind, Outcome, RetryPolicy};
use super::client::WriteApi;
use crate::config::InfluxSettings;
use crate::metrics::Metrics;

/// The outbox as the sink sees it. The journal implements it (in `app`); ids are the journal's
/// monotonic record ids.
pub trait Backlog: Send + 'static {
    /// Up to `limit` points after the cursor, in id order: `(id, line protocol)`.
    fn next_batch(&mut self, limit: usize) -> Result<Vec<(u64, String)>, String>;
    /// Moves the cursor to `upto_id`: every point up to it is done.
    fn written(&mut self, upto_id: u64) -> Result<(), String>;
    /// Records that InfluxDB refused point `id` for good (the reason is the server's answer).
    /// The driver then moves the cursor past it with [`Backlog::written`].
    fn rejected(&mut self, id: u64, reason: &str) -> Result<(), String>;
    /// Points after the cursor, for `quantrac_journal_backlog_readings`.
    fn backlog(&mut self) -> Result<u64, String>;
    /// Up to `limit` points with an id above `after_id`, in id order: the batch after those
    /// already on the wire. `after_id` is at or past the cursor and `ahead` points lie between
    /// the two (the batches still unconfirmed).
    ///
    /// The default reads `ahead + limit` points with [`Backlog::next_batch`] and drops the
    /// first ones; an outbox that can seek by id should answer directly.
    fn next_batch_after(
        &mut self,
        after_id: u64,
        ahead: usize,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, String> {
        let mut batch = self.next_batch(ahead.saturating_add(limit))?;
        let skip = batch.partition_point(|&(id, _)| id <= after_id);
        batch.drain(..skip);
        batch.truncate(limit);
        Ok(batch)
    }
}

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

/// Runs until `stop` turns true (or its sender is dropped), then makes one last flush attempt
/// within `opts.deadline_on_stop` and returns. `wake` is notified by the journal after each
/// commit, so a full batch goes out without waiting for the flush interval.
pub async fn run<B: Backlog, W: WriteApi>(
    backlog: B,
    client: W,
    opts: Options,
    metrics: Metrics,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    for kind in ErrorKind::ALL {
        metrics
            .influx_write_errors
            .with_label_values(&[kind.as_label()]);
    }
    let mut w = Writer {
        backlog,
        client: Arc::new(client),
        opts,
        metrics,
        health: Health::Ok,
        attempt: 0,
    };
    w.refresh_backlog_gauge();
    let depth = w.opts.in_flight.max(1);
    // Batches sent and not yet resolved, oldest first: the cursor can only pass the front.
    let mut flights: VecDeque<Flight> = VecDeque::new();
    // (first id of a batch that was not full, when it was first seen)
    let mut pending: Option<(u64, Instant)> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        // Fill the window while the front one is on the wire. `due` is set when a batch is
        // waiting to fill up, `idle` when there is nothing to send at all.
        let mut due = None;
        let mut idle = false;
        let mut backoff = None;
        while flights.len() < depth {
            let read = match flights.back() {
                None => w.backlog.next_batch(w.opts.batch_size),
                Some(back) => {
                    let ahead = flights.iter().map(|f| f.batch.len()).sum();
                    w.backlog
                        .next_batch_after(back.last_id, ahead, w.opts.batch_size)
                }
            };
            let batch = match read {
                Ok(batch) => batch,
                Err(e) => {
                    w.failed(Failure::Journal, &e);
                    // With batches on the wire, their answers come first and the read is
                    // retried after the front one is resolved; otherwise back off.
                    if flights.is_empty() {
                        backoff = Some(w.next_backoff());
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
            if sleep_or_stop(wait, &mut stop).await {
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
                w.refresh_backlog_gauge();
                if let Step::Wait(wait) = step {
                    // Everything behind the failed batch is sent again from the cursor after
                    // the wait (harmless: InfluxDB overwrites identical points).
                    flights.clear();
                    if sleep_or_stop(wait, &mut stop).await {
                        break;
                    }
                }
            }
            _ = wake.notified(), if room => {}
            _ = sleep_until_or_never(poll) => {}
            _ = stopped(&mut stop) => break,
        }
    }
    // Answers still on the way are dropped; the last flush resends from the cursor.
    flights.clear();
    w.final_flush().await;
}

/// A batch on the wire: its first attempt runs as its own task. Dropping it aborts the
/// request (the batch stays behind the cursor).
struct Flight {
    batch: Arc<Vec<(u64, String)>>,
    last_id: u64,
    task: JoinHandle<(Outcome, String)>,
}

impl Drop for Flight {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The answer to the oldest batch on the wire; never resolves when none is.
async fn front(flights: &mut VecDeque<Flight>) -> Result<(Outcome, String), JoinError> {
    match flights.front_mut() {
        Some(f) => (&mut f.task).await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `at`; never resolves without one.
async fn sleep_until_or_never(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What to do after a batch.
enum Step {
    /// Everything in the batch is resolved; read the next one.
    Done,
    /// Nothing more can be written now; wait this long.
    Wait(Duration),
}

/// What is failing, for logging once per change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    Write(ErrorKind),
    Journal,
}

enum Health {
    Ok,
    Failing { since: Instant, what: Failure },
}

struct Writer<B, W> {
    backlog: B,
    client: Arc<W>,
    opts: Options,
    metrics: Metrics,
    health: Health,
    /// Failed attempts in a row, for the exponential backoff.
    attempt: u32,
}

impl<B: Backlog, W: WriteApi> Writer<B, W> {
    /// Sends `batch` as one request on its own task, so the driver can read the next batch
    /// (and send it) while this one is on the wire.
    fn send(&self, batch: Vec<(u64, String)>) -> Flight {
        let batch = Arc::new(batch);
        let last_id = batch.last().map_or(0, |&(id, _)| id);
        let task = tokio::spawn({
            let (client, metrics, batch) =
                (self.client.clone(), self.metrics.clone(), batch.clone());
            async move { attempt(&*client, &batch, &metrics).await }
        });
        Flight {
            batch,
            last_id,
            task,
        }
    }

    /// Resolves one batch, splitting on refusals until each refused line is alone. `first` is
    /// the answer to the whole batch when it was already sent by [`Writer::send`].
    async fn write_batch(
        &mut self,
        batch: &[(u64, String)],
        mut first: Option<(Outcome, String)>,
    ) -> Step {
        // Ranges still to write, the next one on top: left halves before right ones, so the
        // cursor only ever moves forward over resolved points.
        let mut todo = vec![(0, batch.len())];
        while let Some((lo, hi)) = todo.pop() {
            let part = &batch[lo..hi];
            let Some(&(last_id, _)) = part.last() else {
                continue;
            };
            let (outcome, message) = match first.take() {
                Some(answer) => answer,
                None => attempt(&*self.client, part, &self.metrics).await,
            };
            match outcome {
                Outcome::Written => {
                    if let Err(step) = self.advance(last_id) {
                        return step;
                    }
                    self.metrics.influx_points_written.inc_by(part.len() as u64);
                }
                Outcome::Partial { dropped } => {
                    let n = part.len() as u64;
                    let dropped = dropped.unwrap_or(0).min(n);
                    tracing::warn!(
                        points = n,
                        dropped,
                        first_id = part[0].0,
                        last_id,
                        error.message = %message,
                        "InfluxDB kept part of a batch and dropped the rest; the journal keeps every point"
                    );
                    if let Err(step) = self.advance(last_id) {
                        return step;
                    }
                    self.metrics.influx_points_written.inc_by(n - dropped);
                    self.metrics.influx_points_rejected.inc_by(dropped);
                }
                Outcome::Split(_) => {
                    let mid = lo + part.len() / 2;
                    todo.push((mid, hi));
                    todo.push((lo, mid));
                }
                Outcome::Reject(kind) => {
                    tracing::warn!(
                        id = last_id,
                        kind = kind.as_label(),
                        error.message = %message,
                        line = %clip(&part[0].1),
                        "InfluxDB refused a point; it stays in the journal and is skipped"
                    );
                    if let Err(e) = self.backlog.rejected(last_id, &message) {
                        self.failed(Failure::Journal, &e);
                        return Step::Wait(self.next_backoff());
                    }
                    if let Err(step) = self.advance(last_id) {
                        return step;
                    }
                    self.metrics.influx_points_rejected.inc();
                }
                Outcome::RetryAfter(wait) => {
                    self.failed(Failure::Write(ErrorKind::Throttled), &message);
                    self.attempt = self.attempt.saturating_add(1);
                    return Step::Wait(self.opts.retry.cap(wait));
                }
                Outcome::Backoff(kind) => {
                    self.failed(Failure::Write(kind), &message);
                    return Step::Wait(self.next_backoff());
                }
                Outcome::AuthFailed => {
                    self.failed(Failure::Write(ErrorKind::Auth), &message);
                    self.attempt = self.attempt.saturating_add(1);
                    return Step::Wait(self.opts.retry.auth_wait());
                }
            }
        }
        Step::Done
    }

    /// Moves the cursor; a journal error becomes a wait (the points are resent, harmlessly).
    fn advance(&mut self, upto: u64) -> Result<(), Step> {
        match self.backlog.written(upto) {
            Ok(()) => {
                self.recovered();
                Ok(())
            }
            Err(e) => {
                self.failed(Failure::Journal, &e);
                Err(Step::Wait(self.next_backoff()))
            }
        }
    }

    /// After the stop signal: write what is behind the cursor until it is empty, an attempt
    /// fails, or the deadline passes. Whatever is left stays in the journal for the next start.
    async fn final_flush(&mut self) {
        let deadline = self.opts.deadline_on_stop;
        let flush = async {
            loop {
                let batch = match self.backlog.next_batch(self.opts.batch_size) {
                    Ok(batch) if !batch.is_empty() => batch,
                    Ok(_) => return true,
                    Err(e) => {
                        self.failed(Failure::Journal, &e);
                        return false;
                    }
                };
                if let Step::Wait(_) = self.write_batch(&batch, None).await {
                    return false;
                }
            }
        };
        let finished = matches!(tokio::time::timeout(deadline, flush).await, Ok(true));
        self.refresh_backlog_gauge();
        let left = self.backlog.backlog().unwrap_or(0);
        if finished {
            tracing::info!("InfluxDB writer stopped; every journalled point was written");
        } else {
            tracing::warn!(
                points_left = left,
                deadline_s = deadline.as_secs_f64(),
                "InfluxDB writer stopped before the outbox was empty; the rest stays in the journal and is written at the next start"
            );
        }
    }

    fn next_backoff(&mut self) -> Duration {
        let wait = self.opts.retry.backoff(self.attempt, rand::random::<f64>());
        self.attempt = self.attempt.saturating_add(1);
        wait
    }

    /// Logs a failure when it starts or changes kind; retries of the same failure stay quiet.
    fn failed(&mut self, what: Failure, message: &str) {
        let since = match self.health {
            Health::Failing { what: was, .. } if was == what => return,
            Health::Failing { since, .. } => since,
            Health::Ok => Instant::now(),
        };
        self.health = Health::Failing { since, what };
        match what {
            Failure::Write(ErrorKind::Auth) => tracing::error!(
                error.message = %message,
                "InfluxDB refused the credentials (check influx.token or influx.username/password); points stay in the journal, retrying slowly"
            ),
            Failure::Write(ErrorKind::Throttled) => tracing::warn!(
                error.message = %message,
                "InfluxDB is throttling writes, waiting as asked"
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

    fn recovered(&mut self) {
        self.attempt = 0;
        if let Health::Failing { since, .. } = std::mem::replace(&mut self.health, Health::Ok) {
            tracing::info!(
                after_s = since.elapsed().as_secs(),
                "InfluxDB writes resumed after {} s",
                since.elapsed().as_secs()
            );
        }
    }

    fn refresh_backlog_gauge(&mut self) {
        match self.backlog.backlog() {
            Ok(n) => self
                .metrics
                .journal_backlog
                .set(i64::try_from(n).unwrap_or(i64::MAX)),
            Err(e) => tracing::debug!(error.message = %e, "cannot count the journal backlog"),
        }
    }
}

/// One request for `part`: its outcome and a message for the logs. Every failed attempt is
/// counted here, whether or not the driver ends up using the answer.
async fn attempt<W: WriteApi>(
    client: &W,
    part: &[(u64, String)],
    metrics: &Metrics,
) -> (Outcome, String) {
    let (outcome, message) = match client.write(join(part)).await {
        Ok(reply) => {
            let outcome = classify(
                reply.status,
                reply.retry_after.as_deref(),
                &reply.body,
                part.len(),
                SystemTime::now(),
            );
            let message = format!("HTTP {}: {}", reply.status, clip(&reply.body));
            (outcome, message)
        }
        Err(e) => (classify_transport(e.kind()), e.to_string()),
    };
    if let Some(kind) = outcome.error_kind() {
        metrics
            .influx_write_errors
            .with_label_values(&[kind.as_label()])
            .inc();
    }
    (outcome, message)
}

/// The lines of `part` as one request body, built in one allocation.
fn join(part: &[(u64, String)]) -> String {
    let mut body = String::with_capacity(part.iter().map(|(_, l)| l.len() + 1).sum());
    for (i, (_, line)) in part.iter().enumerate() {
        if i > 0 {
            body.push('\n');
        }
        body.push_str(line);
    }
    body
}

/// At most 300 characters of a server message or a line, for logs.
fn clip(s: &str) -> &str {
    match s.char_indices().nth(300) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// Resolves once the stop signal is true, or its sender is gone (nobody can stop us any more,
/// which only happens when the application is going away).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Sleeps `wait`; `true` if the stop signal came first.
async fn sleep_or_stop(wait: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => false,
        _ = stopped(stop) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::client::{Reply, WriteError};
    use std::sync::Mutex;

    /// The outbox in memory: points, a cursor, the refusals.
    #[derive(Default)]
    struct Outbox {
        points: Vec<(u64, String)>,
        cursor: u64,
        cursor_moves: Vec<u64>,
        rejected: Vec<(u64, String)>,
        fail_reads: u32,
    }

    #[derive(Clone, Default)]
    struct MemBacklog(Arc<Mutex<Outbox>>);

    impl MemBacklog {
        fn with(n: u64) -> MemBacklog {
            let b = MemBacklog::default();
            b.push(1..=n);
            b
        }
        fn push(&self, ids: impl IntoIterator<Item = u64>) {
            let mut o = self.0.lock().unwrap();
            for id in ids {
                o.points
                    .push((id, format!("reading,param=COD v={id} {id}")));
            }
        }
        fn cursor(&self) -> u64 {
            self.0.lock().unwrap().cursor
        }
    }

    impl Backlog for MemBacklog {
        fn next_batch(&mut self, limit: usize) -> Result<Vec<(u64, String)>, String> {
            let mut o = self.0.lock().unwrap();
            if o.fail_reads > 0 {
                o.fail_reads -= 1;
                return Err("disk I/O error".into());
            }
            let c = o.cursor;
            Ok(o.points
                .iter()
                .filter(|(id, _)| *id > c)
                .take(limit)
                .cloned()
                .collect())
        }
        fn written(&mut self, upto_id: u64) -> Result<(), String> {
            let mut o = self.0.lock().unwrap();
            assert!(upto_id >= o.cursor, "the cursor never goes back");
            o.cursor = upto_id;
            o.cursor_moves.push(upto_id);
            Ok(())
        }
        fn rejected(&mut self, id: u64, reason: &str) -> Result<(), String> {
            self.0
                .lock()
                .unwrap()
                .rejected
                .push((id, reason.to_owned()));
            Ok(())
        }
        fn backlog(&mut self) -> Result<u64, String> {
            let o = self.0.lock().unwrap();
            Ok(o.points.iter().filter(|(id, _)| *id > o.cursor).count() as u64)
        }
    }

    type Rule = Box<dyn Fn(&str, usize) -> Result<Reply, WriteError> + Send + Sync>;

    /// A fake InfluxDB: answers by a rule on (body, attempt number), records every request.
    #[derive(Clone)]
    struct FakeInflux {
        rule: Arc<Rule>,
        log: Arc<Mutex<Vec<(Instant, String, u16)>>>,
    }

    impl FakeInflux {
        fn new(
            rule: impl Fn(&str, usize) -> Result<Reply, WriteError> + Send + Sync + 'static,
        ) -> Self {
            FakeInflux {
                rule: Arc::new(Box::new(rule)),
                log: Arc::default(),
            }
        }
        fn requests(&self) -> Vec<(Instant, String, u16)> {
            self.log.lock().unwrap().clone()
        }
    }

    impl WriteApi for FakeInflux {
        async fn write(&self, body: String) -> Result<Reply, WriteError> {
            let n = self.log.lock().unwrap().len();
            let r = (self.rule)(&body, n);
            let status = r.as_ref().map(|r| r.status).unwrap_or(0);
            self.log
                .lock()
                .unwrap()
                .push((Instant::now(), body, status));
            r
        }
    }

    fn reply(status: u16) -> Result<Reply, WriteError> {
        Ok(Reply {
            status,
            retry_after: None,
            body: String::new(),
        })
    }

    fn opts(batch_size: usize) -> Options {
        Options {
            batch_size,
            flush_interval: Duration::from_secs(1),
            retry: RetryPolicy {
                min: Duration::from_millis(200),
                max: Duration::from_secs(30),
            },
            deadline_on_stop: Duration::from_secs(5),
            in_flight: IN_FLIGHT,
        }
    }

    struct Running {
        stop: watch::Sender<bool>,
        wake: Arc<Notify>,
        task: tokio::task::JoinHandle<()>,
        metrics: Metrics,
    }

    fn start(b: &MemBacklog, f: &FakeInflux, o: Options) -> Running {
        let (stop, rx) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        let metrics = Metrics::new();
        let task = tokio::spawn(run(
            b.clone(),
            f.clone(),
            o,
            metrics.clone(),
            wake.clone(),
            rx,
        ));
        Running {
            stop,
            wake,
            task,
            metrics,
        }
    }

    impl Running {
        async fn stop(self) -> Metrics {
            self.stop.send(true).unwrap();
            self.task.await.unwrap();
            self.metrics
        }
        fn errors(&self, kind: &str) -> u64 {
            self.metrics
                .influx_write_errors
                .with_label_values(&[kind])
                .get()
        }
    }

    /// Waits (in paused time) until `cond` holds, at most an hour of virtual time.
    async fn until(cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(3600);
        while !cond() {
            assert!(Instant::now() < deadline, "condition never held");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    // contract.md "InfluxDB schema" + style §7.6: the cursor advances only after acceptance,
    // in batches of at most batch_size.
    #[tokio::test(start_paused = true)]
    async fn full_batches_go_out_and_the_cursor_follows() {
        let b = MemBacklog::with(10);
        let f = FakeInflux::new(|_, _| reply(204));
        let r = start(&b, &f, opts(4));
        until(|| b.cursor() == 10).await;
        let m = r.stop().await;
        let sizes: Vec<_> = f
            .requests()
            .iter()
            .map(|(_, body, _)| body.lines().count())
            .collect();
        assert_eq!(sizes, [4, 4, 2]);
        assert_eq!(b.0.lock().unwrap().cursor_moves, [4, 8, 10]);
        assert_eq!(m.influx_points_written.get(), 10);
        assert_eq!(m.journal_backlog.get(), 0);
        assert!(f.requests()[0]
            .1
            .starts_with("reading,param=COD v=1 1\nreading,param=COD v=2 2\n"));
    }

    // A batch that is not full waits for the flush interval (counted from when its oldest point
    // was first seen); a wake that fills the batch sends it at once.
    #[tokio::test(start_paused = true)]
    async fn partial_batches_wait_for_the_flush_interval_full_ones_do_not() {
        let b = MemBacklog::with(2);
        let f = FakeInflux::new(|_, _| reply(204));
        let t0 = Instant::now();
        let r = start(&b, &f, opts(4));
        until(|| b.cursor() == 2).await;
        let first = f.requests()[0].0 - t0;
        assert!(
            first >= Duration::from_secs(1) && first < Duration::from_millis(1100),
            "{first:?}"
        );

        let t1 = Instant::now();
        b.push(3..=4);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(f.requests().len(), 1, "two points wait for more");
        b.push(5..=6);
        r.wake.notify_one();
        until(|| b.cursor() == 6).await;
        let second = f.requests()[1].0 - t1;
        assert!(
            second < Duration::from_secs(1),
            "a full batch goes at once: {second:?}"
        );
        r.stop().await;
    }

    // InfluxDB v2 "400 Bad request": the whole batch is refused; splitting isolates exactly the
    // bad line, the others are written, the cursor passes all of them.
    #[tokio::test(start_paused = true)]
    async fn split_isolates_exactly_the_bad_line() {
        let b = MemBacklog::with(8);
        b.0.lock().unwrap().points[4].1 = "reading,param=COD v=\"bad 5".into();
        let f = FakeInflux::new(|body, _| {
            if body.contains("bad") {
                Ok(Reply {
                    status: 400,
                    retry_after: None,
                    body: r#"{"code":"invalid","message":"unable to parse"}"#.into(),
                })
            } else {
                reply(204)
            }
        });
        let r = start(&b, &f, opts(8));
        until(|| b.cursor() == 8).await;
        let m = r.stop().await;
        let o = b.0.lock().unwrap();
        assert_eq!(o.rejected.len(), 1);
        assert_eq!(o.rejected[0].0, 5);
        assert!(o.rejected[0].1.contains("unable to parse"));
        assert_eq!(m.influx_points_written.get(), 7);
        assert_eq!(m.influx_points_rejected.get(), 1);
        // Every good line went out in an accepted request exactly once.
        let accepted: Vec<String> = f
            .requests()
            .into_iter()
            .filter(|(_, _, s)| *s == 204)
            .flat_map(|(_, body, _)| body.lines().map(String::from).collect::<Vec<_>>())
            .collect();
        assert_eq!(accepted.len(), 7);
        assert!(!accepted.iter().any(|l| l.contains("bad")));
        // 8 → [1-4 ok] [5-8 400] → [5,6 400] → [5 rejected] [6 ok] → [7,8 ok]
        assert_eq!(o.cursor_moves, [4, 5, 6, 8]);
        // Refused attempts: 1-8, 5-8, 5-6 and 5 alone.
        assert_eq!(
            m.influx_write_errors.with_label_values(&["rejected"]).get(),
            4
        );
    }

    // RFC 9110 §10.2.3 via InfluxDB 429: the next attempt waits exactly Retry-After; nothing
    // advances meanwhile.
    #[tokio::test(start_paused = true)]
    async fn throttling_honours_retry_after() {
        let b = MemBacklog::with(4);
        let f = FakeInflux::new(|_, n| {
            if n == 0 {
                Ok(Reply {
                    status: 429,
                    retry_after: Some("7".into()),
                    body: String::new(),
                })
            } else {
                reply(204)
            }
        });
        let r = start(&b, &f, opts(4));
        until(|| !f.requests().is_empty()).await;
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(b.cursor(), 0, "nothing advances while throttled");
        assert_eq!(f.requests().len(), 1);
        until(|| b.cursor() == 4).await;
        let req = f.requests();
        assert_eq!(req[1].0 - req[0].0, Duration::from_secs(7));
        assert_eq!(r.errors("throttled"), 1);
        r.stop().await;
    }

    // Style §2 (never wedge, never lose): under a long outage the cursor never moves and the
    // loop keeps trying, with growing waits, until the server is back.
    #[tokio::test(start_paused = true)]
    async fn the_cursor_never_advances_on_failure_and_retries_resume() {
        let b = MemBacklog::with(3);
        let up = Arc::new(Mutex::new(false));
        let up2 = up.clone();
        let f = FakeInflux::new(move |_, n| {
            if *up2.lock().unwrap() {
                reply(204)
            } else if n % 2 == 0 {
                Err(WriteError::Connect("connection refused".into()))
            } else {
                reply(503)
            }
        });
        let r = start(&b, &f, opts(3));
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(b.cursor(), 0);
        assert!(b.0.lock().unwrap().cursor_moves.is_empty());
        let tries = f.requests().len();
        // Full jitter waits between 200 ms and 30 s: at least 20 tries in 10 minutes, and
        // fewer than one every 200 ms.
        assert!((20..3000).contains(&tries), "{tries}");
        assert!(r.errors("connect") >= 10 && r.errors("throttled") >= 10);
        assert_eq!(r.metrics.journal_backlog.get(), 3);
        *up.lock().unwrap() = true;
        until(|| b.cursor() == 3).await;
        let m = r.stop().await;
        assert_eq!(m.influx_points_written.get(), 3);
    }

    // 401/403: credentials refused: the data stays, the retry waits the longest backoff.
    #[tokio::test(start_paused = true)]
    async fn refused_credentials_keep_the_data_and_retry_slowly() {
        let b = MemBacklog::with(2);
        let f = FakeInflux::new(|_, n| reply(if n < 2 { 401 } else { 204 }));
        let r = start(&b, &f, opts(2));
        until(|| b.cursor() == 2).await;
        let req = f.requests();
        assert_eq!(req.len(), 3);
        assert_eq!(req[1].0 - req[0].0, Duration::from_secs(30));
        assert_eq!(req[2].0 - req[1].0, Duration::from_secs(30));
        assert_eq!(r.errors("auth"), 2);
        r.stop().await;
    }

    // InfluxDB v2 422 (partial write): the kept points are in, the dropped ones are counted;
    // the batch is done and not resent.
    #[tokio::test(start_paused = true)]
    async fn a_partial_write_finishes_the_batch_and_counts_the_dropped() {
        let b = MemBacklog::with(5);
        let f = FakeInflux::new(|_, _| {
            Ok(Reply {
                status: 422,
                retry_after: None,
                body: "partial write: points beyond retention policy dropped=2".into(),
            })
        });
        let r = start(&b, &f, opts(5));
        until(|| b.cursor() == 5).await;
        let m = r.stop().await;
        assert_eq!(f.requests().len(), 1);
        assert_eq!(m.influx_points_written.get(), 3);
        assert_eq!(m.influx_points_rejected.get(), 2);
    }

    // Style §7 shutdown step 5: the stop signal interrupts a backoff at once, one last flush is
    // attempted within the deadline, and what is unwritten stays behind the cursor.
    #[tokio::test(start_paused = true)]
    async fn stop_interrupts_the_backoff_and_tries_one_last_flush() {
        let b = MemBacklog::with(2);
        let f = FakeInflux::new(|_, _| reply(500));
        let mut o = opts(2);
        o.retry = RetryPolicy {
            min: Duration::from_secs(3600),
            max: Duration::from_secs(3600),
        };
        let r = start(&b, &f, o);
        until(|| f.requests().len() == 1).await;
        let t = Instant::now();
        r.stop().await;
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert_eq!(f.requests().len(), 2, "one last attempt on stop");
        assert_eq!(b.cursor(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn stop_flushes_a_batch_still_waiting_for_the_interval() {
        let b = MemBacklog::with(3);
        let f = FakeInflux::new(|_, _| reply(204));
        let mut o = opts(100);
        o.flush_interval = Duration::from_secs(60);
        let r = start(&b, &f, o);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(f.requests().is_empty());
        let m = r.stop().await;
        assert_eq!(b.cursor(), 3);
        assert_eq!(m.influx_points_written.get(), 3);
    }

    // The final flush is bounded by the deadline even when the server hangs.
    #[tokio::test(start_paused = true)]
    async fn the_final_flush_respects_the_deadline() {
        #[derive(Clone)]
        struct Hanging;
        impl WriteApi for Hanging {
            async fn write(&self, _: String) -> Result<Reply, WriteError> {
                std::future::pending().await
            }
        }
        let b = MemBacklog::with(1);
        let (stop, rx) = watch::channel(true);
        let t = Instant::now();
        run(
            b.clone(),
            Hanging,
            opts(10),
            Metrics::new(),
            Arc::new(Notify::new()),
            rx,
        )
        .await;
        assert_eq!(t.elapsed(), Duration::from_secs(5));
        assert_eq!(b.cursor(), 0);
        drop(stop);
    }

    #[tokio::test(start_paused = true)]
    async fn a_journal_read_error_is_retried() {
        let b = MemBacklog::with(2);
        b.0.lock().unwrap().fail_reads = 3;
        let f = FakeInflux::new(|_, _| reply(204));
        let r = start(&b, &f, opts(2));
        until(|| b.cursor() == 2).await;
        r.stop().await;
        assert_eq!(b.0.lock().unwrap().fail_reads, 0);
    }

    type SlowRule = Box<dyn Fn(u64, usize) -> (Duration, u16) + Send + Sync>;

    /// A fake InfluxDB whose answers take time: a rule on (first id of the body, attempt number)
    /// gives the latency and the status. Records when each request ended and how many were
    /// on the wire at once.
    #[derive(Clone)]
    struct SlowInflux {
        rule: Arc<SlowRule>,
        state: Arc<Mutex<Slow>>,
    }

    #[derive(Default)]
    struct Slow {
        started: usize,
        on_wire: usize,
        most_on_wire: usize,
        /// (first id, last id, status), in the order the answers came.
        answered: Vec<(u64, u64, u16)>,
    }

    impl SlowInflux {
        fn new(rule: impl Fn(u64, usize) -> (Duration, u16) + Send + Sync + 'static) -> Self {
            SlowInflux {
                rule: Arc::new(Box::new(rule)),
                state: Arc::default(),
            }
        }
        fn answered(&self) -> Vec<(u64, u64, u16)> {
            self.state.lock().unwrap().answered.clone()
        }
    }

    impl WriteApi for SlowInflux {
        async fn write(&self, body: String) -> Result<Reply, WriteError> {
            // Lines are "reading,param=COD v={id} {id}": the id is the timestamp.
            let id = |line: &str| line.rsplit(' ').next().unwrap().parse::<u64>().unwrap();
            let (first, last) = (
                id(body.lines().next().unwrap()),
                id(body.lines().last().unwrap()),
            );
            let (latency, status) = {
                let mut s = self.state.lock().unwrap();
                s.on_wire += 1;
                s.most_on_wire = s.most_on_wire.max(s.on_wire);
                s.started += 1;
                (self.rule)(first, s.started - 1)
            };
            tokio::time::sleep(latency).await;
            let mut s = self.state.lock().unwrap();
            s.on_wire -= 1;
            s.answered.push((first, last, status));
            reply(status)
        }
    }

    fn start_slow(b: &MemBacklog, f: &SlowInflux, o: Options) -> Running {
        let (stop, rx) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        let metrics = Metrics::new();
        let task = tokio::spawn(run(
            b.clone(),
            f.clone(),
            o,
            metrics.clone(),
            wake.clone(),
            rx,
        ));
        Running {
            stop,
            wake,
            task,
            metrics,
        }
    }

    // Outbox invariant (journal/outbox.rs: the cursor is the sink's acknowledgement): with
    // several requests on the wire, answers that come out of order still move the cursor in
    // order, over whole batches, and never more than `in_flight` requests are open at once.
    #[tokio::test(start_paused = true)]
    async fn out_of_order_answers_move_the_cursor_in_order() {
        let b = MemBacklog::with(8);
        // The first batch is slow, the others quick.
        let f = SlowInflux::new(|first, _| {
            let ms = if first == 1 { 500 } else { 10 };
            (Duration::from_millis(ms), 204)
        });
        let mut o = opts(2);
        o.in_flight = 3;
        let r = start_slow(&b, &f, o);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(f.answered(), [(3, 4, 204), (5, 6, 204)]);
        assert_eq!(b.cursor(), 0, "batch 1 is not confirmed: nothing moves");
        until(|| b.cursor() == 8).await;
        let m = r.stop().await;
        let answered = f.answered();
        assert_eq!(answered[2], (1, 2, 204));
        assert_eq!(b.0.lock().unwrap().cursor_moves, [2, 4, 6, 8]);
        assert_eq!(f.state.lock().unwrap().most_on_wire, 3);
        assert_eq!(m.influx_points_written.get(), 8);
    }

    // Style §2 (never lose a point): a failed early batch holds the cursor below it even when
    // later batches were accepted; after the backoff everything from the cursor is sent again
    // and the cursor passes every point exactly once.
    #[tokio::test(start_paused = true)]
    async fn a_failed_early_batch_holds_the_cursor() {
        let b = MemBacklog::with(6);
        // Attempt 0 (batch 1) fails slowly; everything else succeeds at once.
        let f = SlowInflux::new(|_, n| {
            if n == 0 {
                (Duration::from_millis(300), 500)
            } else {
                (Duration::from_millis(10), 204)
            }
        });
        let mut o = opts(2);
        o.in_flight = 3;
        o.retry = RetryPolicy {
            min: Duration::from_secs(60),
            max: Duration::from_secs(60),
        };
        let r = start_slow(&b, &f, o);
        until(|| f.answered().len() == 3).await;
        assert_eq!(f.answered()[2], (1, 2, 500));
        // Batches 2 and 3 are in InfluxDB, yet the cursor waits for batch 1.
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(b.cursor(), 0);
        assert!(b.0.lock().unwrap().cursor_moves.is_empty());
        assert_eq!(r.errors("server"), 1);
        until(|| b.cursor() == 6).await;
        let m = r.stop().await;
        let answered = f.answered();
        assert_eq!(
            answered[3..].iter().map(|a| a.0).collect::<Vec<_>>(),
            [1, 3, 5],
            "resent from the cursor: {answered:?}"
        );
        assert_eq!(b.0.lock().unwrap().cursor_moves, [2, 4, 6]);
        assert_eq!(m.influx_points_written.get(), 6);
    }

    // Style §7 shutdown step 5: stop interrupts requests on the wire; the last flush resends
    // from the cursor within the deadline, and the cursor keeps only what was confirmed.
    #[tokio::test(start_paused = true)]
    async fn stop_drops_requests_on_the_wire_and_flushes_from_the_cursor() {
        let b = MemBacklog::with(6);
        // Batch 1 answers at once; the others hang for an hour.
        let f = SlowInflux::new(|first, _| {
            let latency = if first == 1 {
                Duration::from_millis(10)
            } else {
                Duration::from_secs(3600)
            };
            (latency, 204)
        });
        let mut o = opts(2);
        o.in_flight = 3;
        let r = start_slow(&b, &f, o);
        until(|| b.cursor() == 2).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let t = Instant::now();
        r.stop().await;
        // The last flush sends batch 2 again, which hangs until the deadline.
        assert_eq!(t.elapsed(), Duration::from_secs(5));
        assert_eq!(b.cursor(), 2);
        assert_eq!(b.0.lock().unwrap().cursor_moves, [2]);
        let s = f.state.lock().unwrap();
        assert_eq!(s.started, 4, "batches 1-3, then batch 2 in the last flush");
    }

    // The default next_batch_after skips the points already on the wire.
    #[test]
    fn next_batch_after_skips_what_is_on_the_wire() {
        let mut b = MemBacklog::with(10);
        b.written(2).unwrap();
        let ids = |v: Vec<(u64, String)>| v.into_iter().map(|(id, _)| id).collect::<Vec<_>>();
        assert_eq!(ids(b.next_batch_after(5, 3, 3).unwrap()), [6, 7, 8]);
        assert_eq!(ids(b.next_batch_after(8, 6, 3).unwrap()), [9, 10]);
        assert_eq!(
            ids(b.next_batch_after(10, 8, 3).unwrap()),
            Vec::<u64>::new()
        );
        // A wrong hint reads too little, never the wrong points.
        assert_eq!(ids(b.next_batch_after(5, 0, 3).unwrap()), Vec::<u64>::new());
    }

    #[test]
    fn options_come_from_settings() {
        let s = InfluxSettings {
            batch_size: 500,
            flush_interval_ms: 250,
            retry_max_ms: 10_000,
            ..InfluxSettings::default()
        };
        let o = Options::from_settings(&s, Duration::from_secs(3));
        assert_eq!(o.batch_size, 500);
        assert_eq!(o.flush_interval, Duration::from_millis(250));
        assert_eq!(o.retry.max, Duration::from_secs(10));
        assert_eq!(o.retry.min, RETRY_MIN);
        assert_eq!(o.in_flight, IN_FLIGHT);
    }
}
