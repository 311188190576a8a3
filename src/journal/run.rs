//! The journal stage: a dedicated OS thread (SQLite blocks) that group-commits whatever the
//! pipeline has queued, then resolves those messages' acks, in order (as refused when nothing
//! of a message was accepted: the inbox keeps such a file apart).
//!
//! Each turn: wait for one message, take whatever else is already queued (up to
//! `max_batch`), commit them in one transaction, resolve their acks, update the metrics, wake
//! the sink. While the journal is at its size limit the stage takes nothing (the broker keeps
//! the messages, unacknowledged) and retries pruning every second. A failed commit ends the
//! stage: its acks are dropped unresolved, so those messages are redelivered after a restart.
//! What the stage logs, counts and reports on `/readyz` is in [`Events`].

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, Notify};

use super::checkpoint::Checkpointer;
use super::events::Events;
use super::writer::PRUNE_CHUNK;
use super::{Entry, Error, Journal};
use crate::config::JournalSettings;
use crate::metrics::Metrics;
use crate::pipeline::{EngineState, Handover, Processed};
use crate::readiness::Readiness;

/// Renders a processed message into line-protocol points (one point per string).
pub type Render = Box<dyn Fn(&Processed) -> Vec<String> + Send>;

/// Parameters of the stage loop, from `[journal]`.
#[derive(Debug, Clone)]
pub struct RunParams {
    /// At or above this size, intake pauses.
    pub max_bytes: u64,
    /// Readings written to InfluxDB are kept this long (Circular 10/2021 datalogger parity:
    /// at least 60 days of data kept locally, regulations.md §3).
    pub retention: Duration,
    /// How often the chain head is logged at info, for third-party anchoring.
    pub chain_log_interval: Duration,
    /// How often expired records are pruned while the journal is not full.
    pub prune_interval: Duration,
    /// Most messages in one transaction.
    pub max_batch: usize,
    /// Signs checkpoints of the chain, when `journal.signing_key_file` is set.
    pub checkpoints: Option<Checkpointer>,
    /// Where the compliance stage leaves its state at a clean stop: kept beside the journal
    /// once everything before it is committed (see [`super::engine_state`]).
    pub handover: Handover,
}

impl RunParams {
    pub fn from_settings(s: &JournalSettings) -> RunParams {
        RunParams {
            max_bytes: s.max_bytes,
            retention: Duration::from_secs(u64::from(s.retention_days) * 86_400),
            chain_log_interval: Duration::from_secs(s.chain_log_interval_s.max(1)),
            prune_interval: Duration::from_secs(60),
            max_batch: 2_000,
            checkpoints: s.signing_key.clone().map(|key| {
                Checkpointer::new(key, Duration::from_secs(s.checkpoint_interval_s.max(1)))
            }),
            handover: Handover::new(Duration::from_secs(s.state_interval_s)),
        }
    }
}

/// How long the loop waits for a message before doing its periodic work (pruning, head log,
/// re-checking the size while full).
const TICK: Duration = Duration::from_secs(1);

/// Runs the stage on the calling thread (it blocks: give it a thread of its own). It returns
/// `Ok` once `rx` is closed and everything received was committed, `Err` after a failed commit
/// (the reason is also set in `not_ready` and logged here, once).
pub fn run(
    journal: Journal,
    rx: mpsc::Receiver<Processed>,
    render: Render,
    metrics: Metrics,
    wake_sink: Arc<Notify>,
    params: RunParams,
    not_ready: Readiness,
) -> Result<(), Error> {
    let stage = Stage {
        journal,
        render,
        events: Events::new(&metrics, not_ready),
        wake_sink,
        params,
        held: None,
    };
    stage.run(rx)
}

struct Stage {
    journal: Journal,
    render: Render,
    events: Events,
    wake_sink: Arc<Notify>,
    params: RunParams,
    /// A batch whose commit found the disk full: tried again before anything else is taken.
    held: Option<Vec<Processed>>,
}

impl Stage {
    fn run(mut self, mut rx: mpsc::Receiver<Processed>) -> Result<(), Error> {
        // A tiny runtime of our own, only to wait on the channel with a timeout.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|source| Error::Io {
                path: "journal thread runtime".into(),
                source,
            })?;
        let result = self.turns(&rt, &mut rx);
        match &result {
            Ok(()) => self.checkpoint(true), // the final head, signed at shutdown
            Err(e) => self.events.stopped(e),
        }
        result
    }

    fn turns(
        &mut self,
        rt: &tokio::runtime::Runtime,
        rx: &mut mpsc::Receiver<Processed>,
    ) -> Result<(), Error> {
        self.publish_metrics()?;
        self.log_head();
        self.checkpoint(true);
        let mut last_log = Instant::now();
        let mut last_prune: Option<Instant> = None;
        // The last prune left work behind (a part of a day sealed, a full chunk deleted):
        // the next goes after the next commit, not a minute later, so a province's day is
        // sealed and pruned at the pace it is written.
        let mut behind = false;
        let mut last_file_check = Instant::now();
        let mut size = self.journal.size_bytes()?;
        loop {
            if last_file_check.elapsed() >= TICK {
                last_file_check = Instant::now();
                if let Some(why) = self.journal.file_changed() {
                    return self.gone(&why, rx);
                }
            }
            if let Some(batch) = self.held.take() {
                // The disk was full: the same batch again, once a second, nothing new meanwhile.
                if !self.commit(batch)? {
                    if rx.is_closed() {
                        return Ok(()); // stopping: the held messages stay with the broker
                    }
                    std::thread::sleep(TICK);
                }
                continue;
            }
            let full = size >= self.params.max_bytes;
            let mut pruned = 0;
            if full
                || behind
                || last_prune.is_none_or(|t| t.elapsed() >= self.params.prune_interval)
            {
                (pruned, behind) = self.prune(full);
                last_prune = Some(Instant::now());
                size = self.journal.size_bytes()?;
                self.events.size(size);
            }
            self.checkpoint(pruned > 0);
            if last_log.elapsed() >= self.params.chain_log_interval {
                self.log_head();
                last_log = Instant::now();
            }
            if size >= self.params.max_bytes {
                self.events.full(size, self.params.max_bytes);
                if rx.is_closed() {
                    // Shutdown while full: whatever is still queued stays unacknowledged in
                    // the broker and comes back after the restart.
                    return Ok(());
                }
                std::thread::sleep(TICK);
                continue;
            }
            self.events.has_room();
            let first = match rt.block_on(async { tokio::time::timeout(TICK, rx.recv()).await }) {
                Ok(Some(p)) => p,
                Ok(None) => {
                    // Closed and drained: everything is committed.
                    self.keep_engine_state();
                    return Ok(());
                }
                Err(_) => continue, // idle tick
            };
            let mut batch = vec![first];
            // A record carrying the compliance state ends its batch: the state covers the
            // journal up to that record, and is kept as covering the batch's last.
            while batch.len() < self.params.max_batch
                && batch.last().is_some_and(|p| p.engine_state.is_none())
            {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            self.commit(batch)?;
            size = self.journal.size_bytes()?;
            self.events.size(size);
        }
    }

    /// One transaction for the batch, then its acks in order, then metrics and the sink.
    /// `Ok(false)`: the disk is full; the batch is held (acks unresolved) for the next try.
    fn commit(&mut self, batch: Vec<Processed>) -> Result<bool, Error> {
        let entries: Vec<Entry<'_>> = batch
            .iter()
            .map(|p| Entry::of(p, (self.render)(p)))
            .collect();
        let committed = match self.journal.append(&entries) {
            Ok(c) => c,
            Err(e) if e.is_storage_full() => {
                drop(entries);
                self.events.disk_full(&e);
                self.held = Some(batch);
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        drop(entries);
        let mut state = None;
        for mut p in batch {
            state = p.engine_state.take().or(state);
            // Nothing accepted: the message is in the journal as a dead letter only.
            if p.readings.is_empty() && !p.rejections.is_empty() {
                p.envelope.ack.resolve_refused();
            } else {
                p.envelope.ack.resolve();
            }
        }
        self.events.disk_has_room();
        self.events.duplicates(committed.duplicates);
        let backlog = committed
            .last_point_id
            .saturating_sub(self.journal.outbox_cursor()?);
        self.events
            .committed(committed.head_id, &committed.head_hash, backlog);
        self.wake_sink.notify_one();
        // After the acks: keeping it takes a while at a province's scale (tens of MB).
        if let Some(state) = state {
            self.keep(committed.head_id, committed.head_hash, &state);
        }
        Ok(true)
    }

    /// The database file was deleted or replaced: take and acknowledge nothing more (the
    /// broker keeps the messages) and say so until the service is stopped.
    fn gone(&mut self, why: &str, rx: &mut mpsc::Receiver<Processed>) -> Result<(), Error> {
        self.events.file_gone(why);
        while !rx.is_closed() {
            std::thread::sleep(TICK);
        }
        Ok(())
    }

    fn publish_metrics(&mut self) -> Result<(), Error> {
        let (id, hash) = self.journal.chain_head()?;
        self.events.head(id, &hash);
        self.events.backlog(self.journal.backlog()?);
        self.events.size(self.journal.size_bytes()?);
        Ok(())
    }

    fn log_head(&self) {
        if let Ok((id, hash)) = self.journal.chain_head() {
            self.events.chain_head(id, &hash);
        }
    }

    /// Seals the days that are over into the archive, then deletes expired, delivered, sealed
    /// records: one chunk per call normally, until below the limit
    /// (or nothing more can go) while full. A failure is logged when it starts and when it
    /// ends; intake continues, since a failed prune loses nothing. Returns how many records
    /// went, and whether work may be left (a segment sealed, a full chunk deleted).
    fn prune(&mut self, full: bool) -> (u64, bool) {
        let now = now_ms();
        let before = self.journal.archive_end();
        let result = (|| -> Result<(u64, bool), Error> {
            // Every day that is over is sealed first, a day a call (pruning seals one more, to
            // delete what it holds).
            self.journal.seal_some(now, 1)?;
            let mut total = 0;
            loop {
                let n = self
                    .journal
                    .prune_some(now, self.params.retention, PRUNE_CHUNK)?;
                total += n;
                if n == 0 || !full || self.journal.size_bytes()? < self.params.max_bytes {
                    return Ok((total, n >= PRUNE_CHUNK));
                }
            }
        })();
        // Logged once a turn, with every record sealed in it, whether it then failed or not.
        let after = self.journal.archive_end();
        if let Some(end) = after.filter(|_| after != before) {
            self.events.sealed(before.map_or(1, |b| b + 1), end);
        }
        match result {
            Ok((n, full_chunk)) => {
                self.events.pruned(n);
                (n, after != before || full_chunk)
            }
            Err(e) => {
                self.events.prune_failed(&e);
                (0, false)
            }
        }
    }

    /// The compliance stage's state, when it left one, kept as covering the last record: its
    /// input ended before the journal's, so every record it judged is committed.
    fn keep_engine_state(&mut self) {
        let Some(state) = self.params.handover.take() else {
            return;
        };
        // An empty journal: nothing to cover, nothing a start would replay.
        let Ok((id @ 1.., hash)) = self.journal.chain_head() else {
            return;
        };
        self.keep(id, hash, &state);
    }

    /// Keeps `state` as covering the journal up to record `id` (whose hash is `hash`).
    fn keep(&mut self, id: u64, hash: [u8; 32], state: &EngineState) {
        let started = Instant::now();
        let kept = super::engine_state::write(self.journal.dir(), id, hash, now_ms(), state);
        self.events.engine_state_kept(id, kept, started.elapsed());
    }

    /// Signs a checkpoint when one is due, or at once (`now`); see [`Checkpointer::tick`].
    fn checkpoint(&mut self, now: bool) {
        if let Some(c) = &mut self.params.checkpoints {
            c.tick(&self.journal, now);
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
