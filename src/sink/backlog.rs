//! [`Backlog`]: the outbox as the sink sees it, and [`BacklogError`], what can go wrong reading
//! or advancing it, split by what the driver does next.
//!
//! The trait is async so that an implementation over a blocking store (the journal's SQLite
//! outbox, with its busy timeout) does its work off the runtime's worker threads. The sink owns
//! the trait; `app` implements it over the journal, so the sink never names the journal.

use std::future::Future;

/// The outbox as the sink sees it. Ids are the journal's monotonic record ids.
///
/// The driver calls one method at a time and awaits it before the next. It may drop a call's
/// future before it resolves (the last flush is cut off by its deadline); an implementation
/// must then leave the outbox usable, with the cursor either moved or not, never half-way.
pub trait Backlog: Send + 'static {
    /// Up to `limit` points after the cursor, in id order: `(id, line protocol)`.
    fn next_batch(
        &mut self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(u64, String)>, BacklogError>> + Send;

    /// Moves the cursor to `upto_id`: every point up to it is done.
    fn written(&mut self, upto_id: u64) -> impl Future<Output = Result<(), BacklogError>> + Send;

    /// Records that InfluxDB refused point `id` for good (the reason is the server's answer).
    /// The driver then moves the cursor past it with [`Backlog::written`].
    fn rejected(
        &mut self,
        id: u64,
        reason: &str,
    ) -> impl Future<Output = Result<(), BacklogError>> + Send;

    /// Points after the cursor, for `quantrac_journal_backlog_readings`.
    fn backlog(&mut self) -> impl Future<Output = Result<u64, BacklogError>> + Send;

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
    ) -> impl Future<Output = Result<Vec<(u64, String)>, BacklogError>> + Send {
        async move {
            let mut batch = self.next_batch(ahead.saturating_add(limit)).await?;
            let skip = batch.partition_point(|&(id, _)| id <= after_id);
            batch.drain(..skip);
            batch.truncate(limit);
            Ok(batch)
        }
    }
}

/// A [`Backlog`] call that failed, by what the driver does next. The message is the store's
/// own (the sink cannot name the journal's error type), already fit for a log line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BacklogError {
    /// The outbox cannot answer now (database busy or locked beyond its timeout, an I/O error,
    /// a full disk). Nothing moved: the driver logs it once, backs off and asks again.
    #[error("journal outbox unavailable: {0}")]
    Transient(String),
    /// The outbox can never answer this (corrupt journal, a cursor beyond the last committed
    /// point, its worker gone). The driver stops, logs why, and [`run`](super::run()) returns
    /// this error; every unwritten point stays in the journal.
    #[error("journal outbox unusable: {0}")]
    Fatal(String),
}

impl BacklogError {
    /// Whether the driver must stop rather than retry.
    pub fn is_fatal(&self) -> bool {
        matches!(self, BacklogError::Fatal(_))
    }
}
