//! [`Outbox`]: the InfluxDB sink's view of the journal — committed points in id order after a
//! durable cursor.
//!
//! The sink reads a batch, writes it, and only then calls [`Outbox::written`]; a crash in
//! between resends the batch, which InfluxDB overwrites (same measurement, tags, timestamp).
//! The cursor is the sink's acknowledgement: the journal prunes nothing above it.
//!
//! [`AsyncOutbox`] is the same outbox for async callers: its SQLite work runs off the
//! runtime's worker threads.

use std::path::Path;
use std::sync::{Arc, Mutex};

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

/// A point InfluxDB refused for good, as `quantrac refused list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedPoint {
    pub point_id: u64,
    /// The journal record (message) the point was rendered from, its topic and receive time.
    pub msg_id: u64,
    pub topic: String,
    pub received_at_ms: i64,
    /// The line protocol as it was sent.
    pub line: String,
    /// InfluxDB's answer (status and body).
    pub reason: String,
}

/// The newest `limit` points InfluxDB refused for good, oldest first, read-only: the journal
/// keeps them (with InfluxDB's answer) until their record is pruned.
pub fn refused_points(dir: &Path, limit: usize) -> Result<Vec<RefusedPoint>, Error> {
    let conn = schema::open(dir, Mode::ReadOnly)?;
    let mut stmt = conn.prepare_cached(
        "SELECT r.point_id, p.msg_id, m.topic, m.received_at_ms, p.line, r.reason
         FROM refused r JOIN points p ON p.id = r.point_id
         LEFT JOIN messages m ON m.id = p.msg_id
         ORDER BY r.point_id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
        Ok(RefusedPoint {
            point_id: r.get::<_, i64>(0)? as u64,
            msg_id: r.get::<_, i64>(1)? as u64,
            topic: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
            received_at_ms: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
            line: r.get(4)?,
            reason: r.get(5)?,
        })
    })?;
    let mut list = rows.collect::<Result<Vec<_>, _>>()?;
    list.reverse();
    Ok(list)
}

/// [`Outbox`] for async callers: each call runs on tokio's blocking pool (`spawn_blocking`), so
/// SQLite, and its busy timeout, never holds up a runtime worker.
///
/// Why the blocking pool rather than a thread of its own, as the journal writer has: the sink
/// makes one call at a time and waits for its answer, so there is no queue to own, and the
/// pool keeps a thread warm between calls. The `Outbox` sits behind a mutex rather than being
/// moved into each call and back: a caller that stops waiting (the sink's last flush is cut off
/// by its deadline) leaves it in place; the call finishes on its own (a cursor move is then
/// durable, as if the caller had waited) and the next call waits for it.
///
/// Errors are [`Error`]; [`Error::is_transient`] tells a caller whether asking again can help.
/// A call that panicked, or that the runtime dropped while shutting down, is [`Error::Worker`].
#[derive(Clone)]
pub struct AsyncOutbox(Arc<Mutex<Outbox>>);

impl AsyncOutbox {
    pub fn new(outbox: Outbox) -> AsyncOutbox {
        AsyncOutbox(Arc::new(Mutex::new(outbox)))
    }

    /// [`Outbox::next_batch`].
    pub async fn next_batch(&self, limit: usize) -> Result<Vec<(u64, String)>, Error> {
        self.call(move |o| o.next_batch(limit)).await
    }

    /// [`Outbox::next_batch_after`].
    pub async fn next_batch_after(
        &self,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, Error> {
        self.call(move |o| o.next_batch_after(after_id, limit))
            .await
    }

    /// [`Outbox::written`].
    pub async fn written(&self, upto_id: u64) -> Result<(), Error> {
        self.call(move |o| o.written(upto_id)).await
    }

    /// [`Outbox::rejected`].
    pub async fn rejected(&self, point_id: u64, reason: String) -> Result<(), Error> {
        self.call(move |o| o.rejected(point_id, &reason)).await
    }

    /// [`Outbox::backlog`].
    pub async fn backlog(&self) -> Result<u64, Error> {
        self.call(Outbox::backlog).await
    }

    /// Runs `f` on the outbox on the blocking pool.
    async fn call<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Outbox) -> Result<T, Error> + Send + 'static,
    {
        on_blocking_pool(&self.0, "outbox", f).await
    }
}

/// Runs `f` on `shared` on tokio's blocking pool, one call at a time; `what` names it in the
/// error when a call panicked or the runtime is shutting down. Shared by the sink's outbox
/// and the uplink's.
pub(super) async fn on_blocking_pool<O, T, F>(
    shared: &Arc<Mutex<O>>,
    what: &'static str,
    f: F,
) -> Result<T, Error>
where
    O: Send + 'static,
    T: Send + 'static,
    F: FnOnce(&mut O) -> Result<T, Error> + Send + 'static,
{
    let shared = shared.clone();
    let task = tokio::task::spawn_blocking(move || {
        let mut guard = shared
            .lock()
            .map_err(|_| Error::Worker(format!("an earlier {what} call panicked")))?;
        f(&mut guard)
    });
    match task.await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(Error::Worker(format!("an {what} call panicked"))),
        Err(_) => Err(Error::Worker(format!(
            "the runtime is shutting down; the {what} call did not run"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Entry, Journal};

    fn fill(j: &mut Journal, n: u64) {
        let entries: Vec<Entry> = (1..=n)
            .map(|i| Entry {
                received_at_ms: 1_795_935_900_000 + i as i64,
                topic: "env/dinh-vu/dv-steel/stack-1",
                payload: b"{}",
                station: None,
                rejections: &[],
                points: vec![format!("reading,param=COD value={i} {i}")],
                once: false,
            })
            .collect();
        j.append(&entries).unwrap();
    }

    // The async outbox answers as the synchronous one does.
    #[tokio::test(flavor = "current_thread")]
    async fn the_async_outbox_answers_like_the_outbox() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), true).unwrap();
        fill(&mut j, 6);
        let o = AsyncOutbox::new(Outbox::open(dir.path()).unwrap());
        let ids = |v: Vec<(u64, String)>| v.into_iter().map(|p| p.0).collect::<Vec<_>>();
        assert_eq!(ids(o.next_batch(4).await.unwrap()), [1, 2, 3, 4]);
        assert_eq!(ids(o.next_batch_after(4, 4).await.unwrap()), [5, 6]);
        o.written(3).await.unwrap();
        o.rejected(4, "400: unable to parse".into()).await.unwrap();
        o.written(4).await.unwrap();
        assert_eq!(o.backlog().await.unwrap(), 2);
        let err = o.written(7).await.unwrap_err();
        assert!(matches!(err, Error::Cursor { upto: 7, last: 6 }), "{err}");
        assert!(!err.is_transient());

        // The cursor is durable: a fresh outbox starts after it.
        drop(o);
        let mut again = Outbox::open(dir.path()).unwrap();
        assert_eq!(again.cursor(), 4);
        assert_eq!(again.refused(10).unwrap()[0].0, 4);
        let listed = refused_points(dir.path(), 10).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].point_id, 4);
    }

    // Issue 8 "no blocking calls on runtime workers": while another connection holds the write
    // lock, a cursor move waits (up to the busy timeout) on the blocking pool, and the runtime's
    // only worker goes on running other tasks meanwhile.
    #[tokio::test(flavor = "current_thread")]
    async fn a_busy_database_does_not_hold_the_runtime_worker() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), true).unwrap();
        fill(&mut j, 3);
        let o = AsyncOutbox::new(Outbox::open(dir.path()).unwrap());
        let other = rusqlite::Connection::open(crate::journal::db_path(dir.path())).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();

        let move_cursor = tokio::spawn({
            let o = o.clone();
            async move { o.written(3).await }
        });
        let t = std::time::Instant::now();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            t.elapsed()
        );
        assert!(
            !move_cursor.is_finished(),
            "the write lock is held elsewhere"
        );

        other.execute_batch("COMMIT").unwrap();
        move_cursor.await.unwrap().unwrap();
        assert_eq!(o.backlog().await.unwrap(), 0);
    }

    // A busy or locked database, a failing or full disk: asking again can help. Corrupt data,
    // a cursor beyond the last point, a worker gone: it cannot.
    #[test]
    fn transient_errors_are_the_ones_worth_retrying() {
        use rusqlite::ffi;
        let sqlite =
            |code| Error::Sqlite(rusqlite::Error::SqliteFailure(ffi::Error::new(code), None));
        for code in [
            ffi::SQLITE_BUSY,
            ffi::SQLITE_LOCKED,
            ffi::SQLITE_IOERR,
            ffi::SQLITE_FULL,
            ffi::SQLITE_CANTOPEN,
        ] {
            assert!(sqlite(code).is_transient(), "{}", sqlite(code));
        }
        assert!(Error::Full {
            bytes: 2,
            max_bytes: 1
        }
        .is_transient());
        for code in [ffi::SQLITE_CORRUPT, ffi::SQLITE_NOTADB] {
            assert!(!sqlite(code).is_transient(), "{}", sqlite(code));
        }
        assert!(!Error::Sqlite(rusqlite::Error::InvalidColumnType(
            0,
            "id".into(),
            rusqlite::types::Type::Text
        ))
        .is_transient());
        assert!(!Error::Cursor { upto: 9, last: 8 }.is_transient());
        assert!(!Error::Corrupt("hash of 31 bytes".into()).is_transient());
        assert!(!Error::Worker("an outbox call panicked".into()).is_transient());
    }
}
