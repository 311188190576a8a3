//! [`Outbox`]: the InfluxDB sink's view of the journal — committed points in id order after a
//! durable cursor.
//!
//! The sink reads a batch, writes it, and only then calls [`Outbox::written`]; a crash in
//! between resends the batch, which InfluxDB overwrites (same measurement, tags, timestamp).
//! The cursor is the sink's acknowledgement: the journal prunes nothing above it.

use std::path::Path;

use rusqlite::Connection;

use super::schema::{self, key, to_i64, Mode};
use super::Error;

/// A second connection to the journal, owned by the sink.
pub struct Outbox {
    conn: Connection,
    /// The durable cursor: every point with an id ≤ this was accepted by InfluxDB (or refused
    /// for good). Only this connection writes it, so the copy in memory is authoritative.
    cursor: u64,
}

impl Outbox {
    /// Opens the journal in `dir` (creating it if the writer has not yet).
    pub fn open(dir: &Path) -> Result<Outbox, Error> {
        let conn = schema::open(dir, Mode::Bookkeeping)?;
        let cursor = schema::get_u64(&conn, key::CURSOR)?;
        Ok(Outbox { conn, cursor })
    }

    /// Up to `limit` points after the cursor, in id order. Calling it again before
    /// [`Outbox::written`] returns the same points (a retry).
    pub fn next_batch(&mut self, limit: usize) -> Result<Vec<(u64, String)>, Error> {
        self.next_batch_after(self.cursor, limit)
    }

    /// Up to `limit` points after `after_id` (at or past the cursor), in id order: the sink
    /// reads ahead of the cursor while earlier batches are still on their way to InfluxDB.
    pub fn next_batch_after(
        &mut self,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, Error> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, line FROM points WHERE id > ?1 ORDER BY id LIMIT ?2")?;
        let rows = stmt.query_map(
            (
                to_i64(after_id.max(self.cursor))?,
                i64::try_from(limit).unwrap_or(i64::MAX),
            ),
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?)),
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// InfluxDB accepted every point up to `upto_id`: advances the durable cursor. Never moves
    /// it back (a stale call is a no-op) and never past the last committed point.
    pub fn written(&mut self, upto_id: u64) -> Result<(), Error> {
        if upto_id <= self.cursor {
            return Ok(());
        }
        let last = schema::get_u64(&self.conn, key::LAST_POINT)?;
        if upto_id > last {
            return Err(Error::Cursor {
                upto: upto_id,
                last,
            });
        }
        schema::set_u64(&self.conn, key::CURSOR, upto_id)?;
        self.cursor = upto_id;
        Ok(())
    }

    /// InfluxDB refused this point for good (a 4xx other than 408/429): the point stays in the
    /// journal with the reason, for an operator to inspect. The sink still moves the cursor
    /// past it with [`Outbox::written`].
    pub fn rejected(&mut self, point_id: u64, reason: &str) -> Result<(), Error> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO refused (point_id, reason) VALUES (?1, ?2)")?
            .execute((to_i64(point_id)?, reason))?;
        Ok(())
    }

    /// Points committed and not yet written: last committed point id − cursor.
    pub fn backlog(&mut self) -> Result<u64, Error> {
        let last = schema::get_u64(&self.conn, key::LAST_POINT)?;
        Ok(last.saturating_sub(self.cursor))
    }

    /// The durable cursor.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Points InfluxDB refused for good, with the reason, oldest first.
    pub fn refused(&mut self, limit: usize) -> Result<Vec<(u64, String, String)>, Error> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT r.point_id, p.line, r.reason FROM refused r JOIN points p ON p.id = r.point_id
             ORDER BY r.point_id LIMIT ?1",
        )?;
        let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
