//! [`UplinkOutbox`]: the uplink's view of the journal — the Circular 10/2021 files made for the
//! provincial department, each committed here before any upload, and the end of the last
//! period they were made for.
//!
//! # Invariants
//! 1. **A period is closed once.** Its files and the new `uplink_closed_upto_ms` (in `meta`)
//!    are committed in one transaction ([`UplinkOutbox::close_period`]): after a crash a period
//!    is either closed with all its files or not closed at all, and then closed again from the
//!    same journal records.
//! 2. **A file is done only when the server confirmed it** ([`UplinkOutbox::sent`], after the
//!    rename to its final name). Until then it is pending, kept with its name and content,
//!    and sent again after a restart, oldest first. Ids grow with the periods, so id order is
//!    period order for every station.
//! 3. **Sent files are kept** as the record of what the department received, and deleted with
//!    the journal's retention ([`UplinkOutbox::prune_sent`]).
//!
//! The table (`uplink_files`) is created with the others when a writer opens the journal
//! (added within schema version 2 by the DDL alone, like `replay_of`: an older build ignores
//! it). This connection commits with `synchronous = FULL`: a closed period reaches the disk
//! before its files go out.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension};

use super::schema::{self, to_i64, Mode};
use super::{Error, StoredMessage};

/// `meta` key: the end (Unix ms) of the last period whose files were made.
pub const CLOSED_UPTO: &str = "uplink_closed_upto_ms";

/// A file to commit for upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    /// `park/site/station`.
    pub station: String,
    /// Folder below the URL's base (`""` = the base itself).
    pub dir: String,
    pub name: String,
    pub content: Vec<u8>,
}

/// A committed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UplinkFile {
    pub id: u64,
    pub station: String,
    pub period_end_ms: i64,
    pub dir: String,
    pub name: String,
    pub content: Vec<u8>,
    /// The server's last permanent refusal, when it refused the file.
    pub refused: Option<String>,
}

/// A connection to the journal owned by the uplink.
pub struct UplinkOutbox {
    conn: Connection,
}

impl UplinkOutbox {
    /// Opens the journal in `dir` (creating it, and the table, if needed).
    pub fn open(dir: &Path) -> Result<UplinkOutbox, Error> {
        let conn = schema::open(dir, Mode::Bookkeeping)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        Ok(UplinkOutbox { conn })
    }

    /// End of the last closed period; `None` before the uplink ever ran on this journal.
    pub fn closed_upto(&self) -> Result<Option<i64>, Error> {
        Ok(schema::get_u64_opt(&self.conn, CLOSED_UPTO)?.map(|v| v as i64))
    }

    /// Records that periods up to `end_ms` are closed, committing their files with it.
    /// A period at or before the recorded one was closed already, with its files: it is left
    /// as it was, and `files` are not added (never a second copy).
    pub fn close_period(
        &mut self,
        end_ms: i64,
        made_at_ms: i64,
        files: &[NewFile],
    ) -> Result<(), Error> {
        let tx = self.conn.transaction()?;
        let before: Option<i64> = schema::get_u64_opt(&tx, CLOSED_UPTO)?.map(|v| v as i64);
        if before.is_some_and(|b| b >= end_ms) {
            return Ok(());
        }
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO uplink_files (station, period_end_ms, dir, name, content, made_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for f in files {
                insert.execute((&f.station, end_ms, &f.dir, &f.name, &f.content, made_at_ms))?;
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            (CLOSED_UPTO, end_ms),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Up to `limit` files not yet confirmed by the server, oldest first, after file
    /// `after_id` (0: from the oldest). Paged, so a long outage never loads its whole backlog.
    pub fn pending(&self, after_id: u64, limit: usize) -> Result<Vec<UplinkFile>, Error> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, station, period_end_ms, dir, name, content, refused FROM uplink_files
             WHERE sent_at_ms IS NULL AND id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map((to_i64(after_id)?, limit), |r| {
            Ok(UplinkFile {
                id: r.get::<_, i64>(0)? as u64,
                station: r.get(1)?,
                period_end_ms: r.get(2)?,
                dir: r.get(3)?,
                name: r.get(4)?,
                content: r.get(5)?,
                refused: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The server confirmed file `id` under its final name.
    pub fn sent(&mut self, id: u64, at_ms: i64) -> Result<(), Error> {
        self.conn
            .prepare_cached("UPDATE uplink_files SET sent_at_ms = ?2 WHERE id = ?1")?
            .execute((to_i64(id)?, at_ms))?;
        Ok(())
    }

    /// The server refused file `id` for good (it stays pending, with the reason).
    pub fn refused(&mut self, id: u64, reason: &str) -> Result<(), Error> {
        self.conn
            .prepare_cached("UPDATE uplink_files SET refused = ?2 WHERE id = ?1")?
            .execute((to_i64(id)?, reason))?;
        Ok(())
    }

    /// Files not yet confirmed.
    pub fn backlog(&self) -> Result<u64, Error> {
        let n: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM uplink_files WHERE sent_at_ms IS NULL")?
            .query_row([], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// Deletes files the server confirmed before `before_ms`.
    pub fn prune_sent(&mut self, before_ms: i64) -> Result<usize, Error> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM uplink_files WHERE sent_at_ms < ?1")?
            .execute([before_ms])?)
    }

    /// When file `station`/`name` was confirmed, if it was (for tests and operators).
    pub fn sent_at(&self, station: &str, name: &str) -> Result<Option<i64>, Error> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT sent_at_ms FROM uplink_files WHERE station = ?1 AND name = ?2
                 ORDER BY id DESC LIMIT 1",
            )?
            .query_row((station, name), |r| r.get::<_, Option<i64>>(0))
            .optional()?
            .flatten())
    }

    /// Messages received in `[since_ms, until_ms]`, in id order: where a period's readings
    /// are read back from.
    pub fn messages_between(
        &self,
        since_ms: i64,
        until_ms: i64,
        mut each: impl FnMut(StoredMessage),
    ) -> Result<(), Error> {
        read_messages(&self.conn, since_ms, until_ms, &mut each)
    }
}

/// Messages received in `[since_ms, until_ms]`, in id order, from any connection.
pub fn read_messages(
    conn: &Connection,
    since_ms: i64,
    until_ms: i64,
    each: &mut dyn FnMut(StoredMessage),
) -> Result<(), Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, received_at_ms, topic, payload, station, n_points, n_rejected
         FROM messages WHERE received_at_ms >= ?1 AND received_at_ms <= ?2 ORDER BY id",
    )?;
    let mut rows = stmt.query((since_ms, until_ms))?;
    while let Some(r) = rows.next()? {
        each(stored_message(r)?);
    }
    Ok(())
}

/// A row of `SELECT id, received_at_ms, topic, payload, station, n_points, n_rejected`.
pub(super) fn stored_message(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        id: r.get::<_, i64>(0)? as u64,
        received_at_ms: r.get(1)?,
        topic: r.get(2)?,
        payload: r.get(3)?,
        station: r.get(4)?,
        n_points: r.get::<_, i64>(5)? as u64,
        n_rejected: r.get::<_, i64>(6)? as u64,
    })
}

/// Messages received in `[since_ms, until_ms]`, read-only (for `quantrac uplink preview`,
/// beside a running service).
pub fn messages_between(
    dir: &Path,
    since_ms: i64,
    until_ms: i64,
    each: &mut dyn FnMut(StoredMessage),
) -> Result<(), Error> {
    let conn = schema::open(dir, Mode::ReadOnly)?;
    read_messages(&conn, since_ms, until_ms, each)
}

/// [`UplinkOutbox`] for async callers: each call runs on tokio's blocking pool, as
/// [`super::outbox::AsyncOutbox`] does for the sink (see there for why).
#[derive(Clone)]
pub struct AsyncUplinkOutbox(Arc<Mutex<UplinkOutbox>>);

impl AsyncUplinkOutbox {
    pub fn new(outbox: UplinkOutbox) -> AsyncUplinkOutbox {
        AsyncUplinkOutbox(Arc::new(Mutex::new(outbox)))
    }

    /// Runs `f` on the outbox on the blocking pool.
    pub async fn call<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut UplinkOutbox) -> Result<T, Error> + Send + 'static,
    {
        super::outbox::on_blocking_pool(&self.0, "uplink outbox", f).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(station: &str, name: &str) -> NewFile {
        NewFile {
            station: station.into(),
            dir: "K1/2026/11/29".into(),
            name: name.into(),
            content: b"COD\t48.2\tmg/L\t20261129140500\t00\r\n".to_vec(),
        }
    }

    // Invariants 1 and 2: a period's files and its closing commit together; files stay pending,
    // in period order, until sent; closing a closed period again adds nothing.
    #[test]
    fn periods_close_once_and_files_stay_until_sent() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = UplinkOutbox::open(dir.path()).unwrap();
        assert_eq!(o.closed_upto().unwrap(), None);
        o.close_period(300_000, 1, &[file("p/s/a", "a1"), file("p/s/b", "b1")])
            .unwrap();
        o.close_period(600_000, 2, &[file("p/s/a", "a2")]).unwrap();
        o.close_period(600_000, 3, &[file("p/s/a", "again")])
            .unwrap();
        assert_eq!(o.closed_upto().unwrap(), Some(600_000));
        let names = |o: &UplinkOutbox| -> Vec<String> {
            o.pending(0, 100)
                .unwrap()
                .into_iter()
                .map(|f| f.name)
                .collect()
        };
        assert_eq!(names(&o), ["a1", "b1", "a2"]);
        let first = o.pending(0, 100).unwrap()[0].id;
        o.sent(first, 10).unwrap();
        let b1 = o.pending(0, 100).unwrap()[0].id;
        o.refused(b1, "550 Permission denied").unwrap();
        assert_eq!(names(&o), ["b1", "a2"]);
        assert_eq!(o.backlog().unwrap(), 2);
        assert_eq!(o.sent_at("p/s/a", "a1").unwrap(), Some(10));

        // Durable: a new connection sees the same.
        drop(o);
        let mut o = UplinkOutbox::open(dir.path()).unwrap();
        assert_eq!(o.closed_upto().unwrap(), Some(600_000));
        assert_eq!(
            o.pending(0, 100).unwrap()[0].refused.as_deref(),
            Some("550 Permission denied")
        );
        assert_eq!(o.prune_sent(11).unwrap(), 1);
        assert_eq!(o.sent_at("p/s/a", "a1").unwrap(), None);
    }

    /// Pending files come a page at a time, in id order, each page after the last id seen.
    #[test]
    fn pending_files_page_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = UplinkOutbox::open(dir.path()).unwrap();
        let files: Vec<NewFile> = (0..5).map(|i| file("p/s/a", &format!("f{i}"))).collect();
        o.close_period(300_000, 1, &files).unwrap();
        let first = o.pending(0, 2).unwrap();
        assert_eq!(
            first.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            ["f0", "f1"]
        );
        o.sent(first[0].id, 10).unwrap();
        let second = o.pending(first[1].id, 2).unwrap();
        assert_eq!(
            second.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            ["f2", "f3"]
        );
        let last = o.pending(second[1].id, 2).unwrap();
        assert_eq!(
            last.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            ["f4"]
        );
        assert_eq!(o.pending(0, 10).unwrap().len(), 4);
    }

    /// A period's readings are read back from the messages received in it, both ends
    /// included, in id order; the read-only path (`quantrac uplink preview`) reads the same.
    #[test]
    fn the_messages_of_a_period_are_read_back_in_id_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = crate::journal::Journal::open(dir.path(), true).unwrap();
        const T: i64 = 1_795_935_900_000;
        for (i, at) in [T, T + 1_000, T + 2_000, T + 3_000].into_iter().enumerate() {
            j.append(&[crate::journal::Entry {
                received_at_ms: at,
                topic: "env/p/s/a",
                payload: format!("{i}").as_bytes(),
                station: Some("p/s/a".into()),
                rejections: &[],
                points: vec![],
                once: false,
            }])
            .unwrap();
        }
        let o = UplinkOutbox::open(dir.path()).unwrap();
        let mut ids = Vec::new();
        o.messages_between(T + 1_000, T + 2_000, |m| ids.push((m.id, m.payload)))
            .unwrap();
        assert_eq!(ids, [(2, b"1".to_vec()), (3, b"2".to_vec())]);
        let mut ids = Vec::new();
        messages_between(dir.path(), T, T + 1_000, &mut |m| ids.push(m.id)).unwrap();
        assert_eq!(ids, [1, 2]);
    }
}
