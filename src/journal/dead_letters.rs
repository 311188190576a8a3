//! Dead letters: messages with at least one rejection, kept with their raw bytes and reasons so
//! an operator can see what a station sent and replay it after fixing the configuration.
//!
//! A replay goes through the pipeline as a new message (a new record in the chain; the original
//! stays as evidence of what was received). [`mark_replayed`] notes on the original that it was
//! replayed and which record it became (`replays`, `replay_of`); a replay that is rejected
//! again is a dead letter of its own that names its original, so a listing shows one history,
//! not unrelated failures. The notes are bookkeeping outside the chain, like the outbox cursor.

use std::path::Path;

use rusqlite::OptionalExtension as _;

use super::schema::{self, to_i64, Mode};
use super::Error;

/// One rejected message as received, with every reason it was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: u64,
    pub received_at_ms: i64,
    pub topic: String,
    pub payload: Vec<u8>,
    /// `(reason label, detail)`, in the order decode reported them.
    pub reasons: Vec<(String, String)>,
    pub replayed: bool,
    /// The record this dead letter's replay became, when it was replayed.
    pub replayed_as: Option<u64>,
    /// The dead letter this record is a replay of, when it is one.
    pub replay_of: Option<u64>,
}

/// The newest `limit` dead letters, oldest first (the order to replay them in).
pub fn dead_letters(dir: &Path, limit: usize) -> Result<Vec<DeadLetter>, Error> {
    let conn = schema::open(dir, Mode::ReadOnly)?;
    let mut list = {
        // `n_rejected > 0` matches the partial index `messages_dead`.
        let mut stmt = conn.prepare_cached(
            "SELECT m.id, m.received_at_ms, m.topic, m.payload,
                    EXISTS (SELECT 1 FROM replays r WHERE r.msg_id = m.id)
             FROM messages m WHERE m.n_rejected > 0 ORDER BY m.id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
            Ok(DeadLetter {
                id: r.get::<_, i64>(0)? as u64,
                received_at_ms: r.get(1)?,
                topic: r.get(2)?,
                payload: r.get(3)?,
                reasons: Vec::new(),
                replayed: r.get(4)?,
                replayed_as: None,
                replay_of: None,
            })
        })?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    list.reverse();
    let mut stmt = conn
        .prepare_cached("SELECT reason, detail FROM rejections WHERE msg_id = ?1 ORDER BY seq")?;
    for d in &mut list {
        let rows = stmt.query_map([to_i64(d.id)?], |r| Ok((r.get(0)?, r.get(1)?)))?;
        d.reasons = rows.collect::<Result<_, _>>()?;
    }
    // A journal written before replays were linked has no `replay_of` table.
    if schema::has_table(&conn, "replay_of")? {
        let mut of = conn.prepare_cached("SELECT original_id FROM replay_of WHERE msg_id = ?1")?;
        let mut as_ = conn.prepare_cached(
            "SELECT min(msg_id) FROM replay_of WHERE original_id = ?1 HAVING count(*) > 0",
        )?;
        for d in &mut list {
            let id = to_i64(d.id)?;
            d.replay_of = of
                .query_row([id], |r| r.get::<_, i64>(0))
                .optional()?
                .map(|i| i as u64);
            d.replayed_as = as_
                .query_row([id], |r| r.get::<_, i64>(0))
                .optional()?
                .map(|i| i as u64);
        }
    }
    Ok(list)
}

/// Notes that these dead letters were replayed at `at_ms`, each `(original, new)` becoming
/// record `new`; returns how many originals were newly marked. Originals that are not (or no
/// longer) dead letters in the journal are ignored.
pub fn mark_replayed(dir: &Path, replays: &[(u64, u64)], at_ms: i64) -> Result<usize, Error> {
    let mut conn = schema::open(dir, Mode::Bookkeeping)?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut n = 0;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT OR IGNORE INTO replays (msg_id, at_ms)
             SELECT id, ?2 FROM messages WHERE id = ?1 AND n_rejected > 0",
        )?;
        let mut link = tx.prepare_cached(
            "INSERT OR IGNORE INTO replay_of (msg_id, original_id)
             SELECT ?1, id FROM messages WHERE id = ?2 AND n_rejected > 0",
        )?;
        for &(original, new) in replays {
            n += stmt.execute((to_i64(original)?, at_ms))?;
            link.execute((to_i64(new)?, to_i64(original)?))?;
        }
    }
    tx.commit()?;
    Ok(n)
}
