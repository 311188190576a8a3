//! [`Writer`]: resolves one batch at a time against InfluxDB and the outbox — splits refused
//! batches down to the refused line, moves the cursor over what is resolved, turns failures
//! into waits — and makes the last flush after the stop signal.

use std::sync::Arc;
use std::time::Duration;

use super::backlog::{Backlog, BacklogError};
use super::classify::{ErrorKind, Outcome};
use super::client::WriteApi;
use super::events::{
    BacklogCounted, Failure, PartialWrite, PointRefused, PointsWritten, WriterStopped,
};
use super::flight::{attempt, Flight};
use super::health::Health;
use super::run::Options;
use crate::metrics::Metrics;
use crate::readiness::Readiness;

/// What to do after a batch.
pub(super) enum Step {
    /// Everything in the batch is resolved; read the next one.
    Done,
    /// Nothing more can be written now; wait this long.
    Wait(Duration),
    /// The outbox is unusable: stop.
    Stop(BacklogError),
}

pub(super) struct Writer<B, W> {
    pub backlog: B,
    client: Arc<W>,
    pub opts: Options,
    metrics: Metrics,
    pub health: Health,
}

impl<B: Backlog, W: WriteApi> Writer<B, W> {
    pub fn new(
        backlog: B,
        client: W,
        opts: Options,
        metrics: Metrics,
        readiness: Readiness,
    ) -> Self {
        Writer {
            backlog,
            client: Arc::new(client),
            health: Health::new(opts.retry, readiness),
            opts,
            metrics,
        }
    }

    /// Sends `batch` as one request on its own task, so the driver can read the next batch
    /// (and send it) while this one is on the wire.
    pub fn send(&self, batch: Vec<(u64, String)>) -> Flight {
        Flight::send(&self.client, &self.metrics, batch)
    }

    /// Resolves one batch, splitting on refusals until each refused line is alone. `first` is
    /// the answer to the whole batch when it was already sent by [`Writer::send`].
    pub async fn write_batch(
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
                    if let Err(step) = self.advance(last_id).await {
                        return step;
                    }
                    PointsWritten {
                        points: part.len() as u64,
                    }
                    .emit(&self.metrics);
                }
                Outcome::Partial { dropped } => {
                    if let Err(step) = self.advance(last_id).await {
                        return step;
                    }
                    PartialWrite {
                        points: part.len() as u64,
                        dropped: dropped.unwrap_or(0),
                        first_id: part[0].0,
                        last_id,
                        message: &message,
                    }
                    .emit(&self.metrics);
                }
                Outcome::Split(_) => {
                    let mid = lo + part.len() / 2;
                    todo.push((mid, hi));
                    todo.push((lo, mid));
                }
                Outcome::Reject(kind) => {
                    if let Err(e) = self.backlog.rejected(last_id, &message).await {
                        return self.outbox_step(e);
                    }
                    if let Err(step) = self.advance(last_id).await {
                        return step;
                    }
                    PointRefused {
                        id: last_id,
                        kind,
                        message: &message,
                        line: &part[0].1,
                    }
                    .emit(&self.metrics);
                }
                Outcome::RetryAfter(wait) => {
                    self.health
                        .failed(Failure::Write(ErrorKind::Throttled), &message);
                    return Step::Wait(self.health.throttled(wait));
                }
                Outcome::Backoff(kind) => {
                    self.health.failed(Failure::Write(kind), &message);
                    return Step::Wait(self.health.backoff());
                }
                Outcome::AuthFailed => {
                    self.health
                        .failed(Failure::Write(ErrorKind::Auth), &message);
                    return Step::Wait(self.health.refused_credentials());
                }
                Outcome::NotFound => {
                    self.health
                        .failed(Failure::Write(ErrorKind::NotFound), &message);
                    return Step::Wait(self.health.refused_credentials());
                }
            }
        }
        Step::Done
    }

    /// Moves the cursor; a transient journal error becomes a wait (the points are resent,
    /// harmlessly).
    async fn advance(&mut self, upto: u64) -> Result<(), Step> {
        match self.backlog.written(upto).await {
            Ok(()) => {
                self.health.recovered();
                Ok(())
            }
            Err(e) => Err(self.outbox_step(e)),
        }
    }

    /// Reports a transient outbox error (once per change of failure) and hands a fatal one
    /// back, so the driver stops.
    pub fn outbox_failed(&mut self, e: BacklogError) -> Result<(), BacklogError> {
        if e.is_fatal() {
            return Err(e);
        }
        self.health.failed(Failure::Journal, &e.to_string());
        Ok(())
    }

    /// [`Writer::outbox_failed`], then back off.
    fn outbox_step(&mut self, e: BacklogError) -> Step {
        match self.outbox_failed(e) {
            Ok(()) => Step::Wait(self.health.backoff()),
            Err(e) => Step::Stop(e),
        }
    }

    /// After the stop signal: write what is behind the cursor until it is empty, an attempt
    /// fails, or the deadline passes. Whatever is left stays in the journal for the next start.
    pub async fn final_flush(&mut self) -> Result<(), BacklogError> {
        let deadline = self.opts.deadline_on_stop;
        let flush = async {
            loop {
                let batch = match self.backlog.next_batch(self.opts.batch_size).await {
                    Ok(batch) if !batch.is_empty() => batch,
                    Ok(_) => return Ok(true),
                    Err(e) => return self.outbox_failed(e).map(|()| false),
                };
                match self.write_batch(&batch, None).await {
                    Step::Done => {}
                    Step::Wait(_) => return Ok(false),
                    Step::Stop(e) => return Err(e),
                }
            }
        };
        let finished = match tokio::time::timeout(deadline, flush).await {
            Ok(done) => done?,
            Err(_elapsed) => false,
        };
        let left = self.refresh_backlog_gauge().await;
        WriterStopped {
            finished,
            points_left: left.unwrap_or(0),
            deadline,
        }
        .emit();
        Ok(())
    }

    /// Sets `quantrac_journal_backlog_readings`; the count, when the outbox gave one.
    pub async fn refresh_backlog_gauge(&mut self) -> Option<u64> {
        let count = self.backlog.backlog().await;
        BacklogCounted(&count).emit(&self.metrics);
        count.ok()
    }
}
