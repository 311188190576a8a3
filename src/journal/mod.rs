//! The journal: the local SQLite store where a message (an MQTT publish, or a file from the
//! inbox) becomes durable, and the only SQLite code in quantrac.
//!
//! # Design
//! Every message is committed here — raw payload bytes exactly as received, topic (for a file,
//! `$inbox/` and its path, so a file taken again is recognised like a redelivery), receive time,
//! station, the InfluxDB points rendered for it (the *outbox*) and its rejections (the *dead
//! letters*) — in one transaction per batch (group commit), and only then is its MQTT
//! acknowledgement resolved. A crash before the commit means no PUBACK, so the broker delivers
//! the message again; a crash after it loses nothing.
//!
//! Two connections share one WAL-mode database file (`journal.sqlite` in the configured folder):
//! the writer ([`Journal`], on the journal stage's own OS thread) and the reader of the outbox
//! ([`Outbox`], used by the InfluxDB sink); the uplink has a third ([`uplink::UplinkOutbox`]:
//! the files for the provincial department, committed before they are sent). WAL lets the sink read while the writer commits;
//! `busy_timeout` settles the rare moment both want the write lock.
//!
//! # Invariants
//! 1. **Contiguous, monotonic ids.** Message ids and point ids are assigned by the writer as
//!    previous + 1, never reused. So the outbox backlog is a subtraction (last point id − cursor)
//!    and a removed record shows as a gap that [`verify`] names.
//! 2. **Hash chain.** Each message row stores `hash_n = SHA-256(hash_{n-1} ‖ record n)`, where
//!    the record covers the id, receive time, topic, payload, station, every rejection and every
//!    point (id and line), each length-prefixed (see [`chain`]). The first previous hash is 32
//!    zero bytes, or the *chain base* once older records have been pruned.
//! 3. **Delete only what was delivered.** The outbox cursor (last point id InfluxDB accepted) only
//!    moves forward, and only the sink moves it. [`Journal::prune`] deletes a *prefix* of the
//!    chain: messages older than the retention cutoff whose points are all at or below the
//!    cursor, and records the last pruned hash as the new chain base so the rest still verifies.
//!    The writer, not its caller, enforces the retention: it is told the time and the period,
//!    never a cutoff, and records the base's receive time and when it was pruned, which
//!    `verify` checks against the retention period.
//!    **Sealed before deleted**: pruning first seals every local day that is over into the
//!    [`archive`] (one segment per day, written once), and deletes only records a segment on
//!    disk holds; `verify` walks archive and journal as one chain.
//! 4. **Block when full, never drop.** When the journal reaches its size limit the stage stops
//!    taking messages (they stay unacknowledged in the broker) until pruning makes room.
//! 5. **The head is recorded with every commit** (`meta`), so truncating the newest records is
//!    detected too; the head is also logged periodically for third-party anchoring.
//! 6. **Evidence outside the file.** Whoever can write the file can recompute the whole chain,
//!    so `verify` also checks what the file cannot forge: anchors (record id and hash)
//!    published to a third party, and [`checkpoint`]s of the chain signed with the operator's
//!    Ed25519 key.
//!
//! # Files
//! [`schema`] (tables and connection settings), [`chain`] (the record hash, pure), [`archive`]
//! (sealed segments of pruned days), [`export`] (one station's records for a third party),
//! `writer` ([`Journal`]), [`outbox`] ([`Outbox`]), [`uplink`] (the uplink's files),
//! [`dead_letters`], [`verify`], [`checkpoint`]
//! (signed checkpoints), [`run`] (the stage loop), `events` (what the stage logs, counts and
//! reports on `/readyz`).

pub mod archive;
pub mod chain;
pub mod checkpoint;
pub mod dead_letters;
pub mod engine_state;
mod events;
pub mod export;
pub mod outbox;
pub mod run;
pub mod schema;
pub mod uplink;
pub mod verify;
mod writer;

use std::path::PathBuf;

use crate::model;

pub use dead_letters::{dead_letters, mark_replayed, DeadLetter};
pub use outbox::{refused_points, Outbox, RefusedPoint};
pub use run::{run, RunParams};
pub use verify::{verify, verify_with, Anchor, Finding, Mismatch, Options, Problem, VerifyReport};
pub use writer::{Journal, MIN_RETENTION};

/// What can go wrong in the journal, by what the caller does next.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite refused an operation (I/O error, disk full, locked beyond the busy timeout).
    #[error("journal database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The journal folder or its files could not be created or inspected.
    #[error("journal file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The stored data is not what this code wrote (wrong types, bad hash length, …).
    #[error("journal is corrupt: {0}")]
    Corrupt(String),
    /// The database was written by another version of quantrac.
    #[error(
        "journal schema version {found} is not supported (this build reads version {expected})"
    )]
    Schema { found: i64, expected: i64 },
    /// The journal reached `journal.max_bytes`; intake pauses until pruning makes room.
    #[error("journal is full: {bytes} bytes ≥ limit {max_bytes}")]
    Full { bytes: u64, max_bytes: u64 },
    /// The sink claimed to have written points the journal never held.
    #[error("outbox cursor {upto} is beyond the last committed point {last}")]
    Cursor { upto: u64, last: u64 },
    /// There is no journal at this path (for the read-only commands).
    #[error("no journal at {0}")]
    Missing(PathBuf),
    /// The thread doing an [`outbox::AsyncOutbox`] call panicked, or never ran it.
    #[error("journal outbox worker: {0}")]
    Worker(String),
    /// What a read-only command was asked for cannot be done (an export of a station with
    /// no record in the period, into a folder that is not empty).
    #[error("{0}")]
    Request(String),
}

impl Error {
    /// Whether the same call can succeed later, with nothing fixed by hand: the database was
    /// busy or locked beyond the busy timeout, the disk was full or failed, the journal is at
    /// its size limit. `false` means asking again cannot help: the stored data is not what this
    /// code wrote (corrupt, another schema, a cursor beyond the last point), the journal is
    /// missing, or the worker is gone. An unknown SQLite failure counts as transient, so a
    /// caller that retries is never stopped by a hiccup it could have ridden out.
    pub fn is_transient(&self) -> bool {
        use rusqlite::ErrorCode;
        match self {
            Error::Sqlite(e) => match e.sqlite_error_code() {
                Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => false,
                Some(_) => true,
                // Not a failure of SQLite itself: a stored value of the wrong type or range.
                None => false,
            },
            Error::Io { .. } | Error::Full { .. } => true,
            Error::Corrupt(_)
            | Error::Schema { .. }
            | Error::Cursor { .. }
            | Error::Missing(_)
            | Error::Worker(_)
            | Error::Request(_) => false,
        }
    }

    /// Whether the disk (or the file system) has no room for the write: the same batch can be
    /// committed once space returns.
    pub fn is_storage_full(&self) -> bool {
        match self {
            Error::Sqlite(e) => {
                matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DiskFull))
            }
            Error::Io { source, .. } => source.raw_os_error() == Some(28), // ENOSPC
            _ => false,
        }
    }
}

/// One MQTT message as the journal commits it.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// Receive time, Unix epoch milliseconds.
    pub received_at_ms: i64,
    /// The MQTT topic, or `$inbox/<path>` for a file from the inbox.
    pub topic: &'a str,
    /// The payload bytes exactly as received.
    pub payload: &'a [u8],
    /// `park/site/station`, when the topic named a valid station.
    pub station: Option<String>,
    /// Dead letters: every reading (or the whole payload) that was refused, with why.
    pub rejections: &'a [model::Rejection],
    /// InfluxDB line protocol, one point per string (the outbox).
    pub points: Vec<String>,
    /// A message from outside that may arrive again (an MQTT redelivery): journaled once,
    /// skipped when a record with the same topic and payload is already in the journal.
    /// Records quantrac makes itself (windows, replays) are never skipped.
    pub once: bool,
}

impl<'a> Entry<'a> {
    /// The entry for a processed message, with the outbox lines rendered for it.
    pub fn of(p: &'a crate::pipeline::Processed, points: Vec<String>) -> Entry<'a> {
        Entry {
            received_at_ms: p.envelope.received_at_ms,
            topic: &p.envelope.topic,
            payload: &p.envelope.payload,
            station: p.key.as_ref().map(ToString::to_string),
            rejections: &p.rejections,
            points,
            once: p.envelope.ack.from_source(),
        }
    }
}

/// What one [`Journal::append`] committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// Id of the batch's first message (messages get `first_id .. first_id + count`).
    pub first_id: u64,
    pub count: u64,
    /// Entries of the batch not journaled because the journal already held them (redelivered
    /// messages; see [`Entry::once`]).
    pub duplicates: u64,
    /// The chain head after the commit: last message id and its hash.
    pub head_id: u64,
    pub head_hash: [u8; 32],
    /// Id of the last point in the outbox after the commit.
    pub last_point_id: u64,
}

impl Committed {
    /// The ids of the committed messages, in batch order.
    pub fn ids(&self) -> std::ops::Range<u64> {
        self.first_id..self.first_id + self.count
    }
}

/// A message read back from the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: u64,
    pub received_at_ms: i64,
    pub topic: String,
    pub payload: Vec<u8>,
    pub station: Option<String>,
    pub n_points: u64,
    pub n_rejected: u64,
}

/// The journal database inside the configured folder.
pub fn db_path(dir: &std::path::Path) -> PathBuf {
    dir.join(schema::FILE_NAME)
}

#[cfg(test)]
mod promises;
#[cfg(test)]
mod tests;
