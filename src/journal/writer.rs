//! [`Journal`]: the writer connection — group-committed appends, the chain head, size, pruning.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use super::archive::{self, Archive};
use super::chain::{RecordHasher, RecordRef};
use super::schema::{self, key, to_i64, Mode};
use super::{Committed, Entry, Error, StoredMessage};

/// The writer connection. Exactly one exists per journal; it alone assigns ids.
pub struct Journal {
    conn: Connection,
    dir: PathBuf,
    /// Chain head: the last committed message id and its hash.
    head_id: u64,
    head_hash: [u8; 32],
    /// Id of the last point ever committed.
    last_point: u64,
    /// Device and inode of the database file when it was opened.
    file_id: Option<(u64, u64)>,
    /// Where records are sealed before they are pruned.
    archive: Archive,
}

/// How many messages one pruning transaction deletes at most, so a large backlog of expired
/// data never holds the write lock (and the acks behind it) for long.
pub(crate) const PRUNE_CHUNK: u64 = 10_000;

/// The shortest retention pruning accepts, whatever it is asked: a record is never deleted
/// on the day it was received (`journal.retention_days` is at least 1 for the same reason).
pub const MIN_RETENTION: Duration = Duration::from_secs(86_400);

impl Journal {
    /// Opens (creating if needed) `dir/journal.sqlite` in WAL mode. `durable`: every commit is
    /// fsynced before [`Journal::append`] returns; `false` is for benchmark baselines only.
    pub fn open(dir: &Path, durable: bool) -> Result<Journal, Error> {
        let conn = schema::open(dir, Mode::Writer { durable })?;
        // The writer continues the chain from the head it recorded itself: if newer rows were
        // removed behind its back, `verify` reports them missing instead of the chain quietly
        // continuing from an older record.
        let head_id = schema::get_u64(&conn, key::HEAD_ID)?;
        let head_hash = schema::get_hash(&conn, key::HEAD_HASH)?;
        let last_point = schema::get_u64(&conn, key::LAST_POINT)?;
        let file_id = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(super::db_path(dir))
                .ok()
                .map(|m| (m.dev(), m.ino()))
        };
        let tz = crate::config::StationsSettings::default().timezone;
        let archive = Archive::open(&dir.join(archive::DEFAULT_DIR), tz, None)?;
        Ok(Journal {
            conn,
            dir: dir.to_path_buf(),
            head_id,
            head_hash,
            last_point,
            file_id,
            archive,
        })
    }

    /// Seals into the archive in `dir`, by local days of `tz`, signing each segment with
    /// `key` when there is one (default: `archive/` in the journal folder, the default time
    /// zone, unsigned).
    pub fn set_archive(
        &mut self,
        dir: &Path,
        tz: chrono_tz::Tz,
        key: Option<std::sync::Arc<crate::config::SigningKey>>,
    ) -> Result<(), Error> {
        self.archive = Archive::open(dir, tz, key)?;
        Ok(())
    }

    /// The last record sealed into the archive (`None`: nothing sealed).
    pub fn archive_end(&self) -> Option<u64> {
        self.archive.end().map(|(id, _)| id)
    }

    /// Seals every local day that ended by `now_ms` and is not sealed yet. Returns how many
    /// segments were written.
    pub fn seal(&mut self, now_ms: i64) -> Result<usize, Error> {
        self.seal_some(now_ms, usize::MAX)
    }

    /// [`Journal::seal`], at most `max` days: the stage seals one day per turn, so a long
    /// backlog (a journal from before the archive) never holds up commits for long.
    pub fn seal_some(&mut self, now_ms: i64, max: usize) -> Result<usize, Error> {
        archive::seal_finished_days(&self.conn, &mut self.archive, now_ms, max)
    }

    /// Why the database file this journal writes is no longer the one at its path (deleted,
    /// or replaced by another file), or `None` while it is. A stat, cheap enough for every
    /// second: SQLite keeps writing to a deleted file's open descriptor, so without this check
    /// commits would go on into a file nobody can read.
    pub fn file_changed(&self) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let path = super::db_path(&self.dir);
        match std::fs::metadata(&path) {
            Ok(m) if Some((m.dev(), m.ino())) == self.file_id => None,
            Ok(_) => Some(format!("journal file {} was replaced", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Some(format!("journal file {} was deleted", path.display()))
            }
            Err(e) => Some(format!("journal file {}: {e}", path.display())),
        }
    }

    /// Commits a batch in one transaction (group commit) and returns the ids and the new head.
    /// Nothing of the batch is visible or durable unless the whole batch is.
    pub fn append(&mut self, batch: &[Entry<'_>]) -> Result<Committed, Error> {
        let first_id = self.head_id + 1;
        if batch.is_empty() {
            return Ok(self.committed(first_id, 0));
        }
        let mut id = self.head_id;
        let mut hash = self.head_hash;
        let mut point = self.last_point;
        let mut duplicates = 0u64;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut ins_msg = tx.prepare_cached(
                "INSERT INTO messages (id, received_at_ms, topic, payload, station, first_point,
                 n_points, n_rejected, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            let mut ins_point =
                tx.prepare_cached("INSERT INTO points (id, msg_id, line) VALUES (?1, ?2, ?3)")?;
            let mut ins_rej = tx.prepare_cached(
                "INSERT INTO rejections (msg_id, seq, reading, reason, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut ins_digest = tx
                .prepare_cached("INSERT OR IGNORE INTO digests (digest, msg_id) VALUES (?1, ?2)")?;
            for e in batch {
                if e.once {
                    // Recorded under the id this entry is about to get; a digest already there
                    // (the same message journaled before, in an earlier batch or this one)
                    // means a redelivery: skip it.
                    let digest = message_digest(e.topic, e.payload);
                    if ins_digest.execute((&digest[..], to_i64(id + 1)?))? == 0 {
                        duplicates += 1;
                        continue;
                    }
                }
                id += 1;
                let id_sql = to_i64(id)?;
                let mut h = RecordHasher::new(
                    &hash,
                    RecordRef {
                        id,
                        received_at_ms: e.received_at_ms,
                        topic: e.topic,
                        payload: e.payload,
                        station: e.station.as_deref(),
                    },
                );
                h.rejections(e.rejections.len() as u64);
                for (seq, r) in e.rejections.iter().enumerate() {
                    let reading = r.index.map(|i| i as u64);
                    let label = r.reason.as_label();
                    h.rejection(seq as u64, reading, label, &r.detail);
                    ins_rej.execute((
                        id_sql,
                        seq as i64,
                        reading.map(to_i64).transpose()?,
                        label,
                        &r.detail,
                    ))?;
                }
                let first_point = point + 1;
                h.points(e.points.len() as u64);
                for line in &e.points {
                    point += 1;
                    h.point(point, line);
                    ins_point.execute((to_i64(point)?, id_sql, line))?;
                }
                hash = h.finish();
                ins_msg.execute((
                    id_sql,
                    e.received_at_ms,
                    e.topic,
                    e.payload,
                    e.station.as_deref(),
                    to_i64(first_point)?,
                    e.points.len() as i64,
                    e.rejections.len() as i64,
                    &hash[..],
                ))?;
            }
            schema::set_u64(&tx, key::HEAD_ID, id)?;
            schema::set_hash(&tx, key::HEAD_HASH, &hash)?;
            schema::set_u64(&tx, key::LAST_POINT, point)?;
        }
        tx.commit()?;
        // Only a successful commit moves the in-memory head: after a failed one the next
        // attempt reuses the same ids.
        self.head_id = id;
        self.head_hash = hash;
        self.last_point = point;
        let count = batch.len() as u64 - duplicates;
        Ok(Committed {
            duplicates,
            ..self.committed(first_id, count)
        })
    }

    fn committed(&self, first_id: u64, count: u64) -> Committed {
        Committed {
            first_id,
            count,
            duplicates: 0,
            head_id: self.head_id,
            head_hash: self.head_hash,
            last_point_id: self.last_point,
        }
    }

    /// Bytes the journal occupies: database pages in use plus the write-ahead log. Free pages
    /// (left by pruning) are excluded because SQLite reuses them before growing the file, so
    /// pruning does make room even though the file does not shrink.
    pub fn size_bytes(&self) -> Result<u64, Error> {
        let page_size: i64 = self
            .conn
            .pragma_query_value(None, "page_size", |r| r.get(0))?;
        let pages: i64 = self
            .conn
            .pragma_query_value(None, "page_count", |r| r.get(0))?;
        let free: i64 = self
            .conn
            .pragma_query_value(None, "freelist_count", |r| r.get(0))?;
        let db = (pages - free).max(0) as u64 * page_size.max(0) as u64;
        let mut wal_path = super::db_path(&self.dir).into_os_string();
        wal_path.push("-wal");
        let wal = match std::fs::metadata(&wal_path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(source) => {
                return Err(Error::Io {
                    path: wal_path.into(),
                    source,
                })
            }
        };
        Ok(db + wal)
    }

    /// The writer's connection: for the signed checkpoints written on the same thread, and for
    /// tests that check its settings or make its writes fail.
    pub(super) fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The last committed message id and its hash (`0` and zeros for an empty journal).
    pub fn chain_head(&self) -> Result<(u64, [u8; 32]), Error> {
        Ok((self.head_id, self.head_hash))
    }

    /// The sink's durable cursor, as last committed by the [`super::Outbox`].
    pub fn outbox_cursor(&self) -> Result<u64, Error> {
        schema::get_u64(&self.conn, key::CURSOR)
    }

    /// Points committed and not yet written to InfluxDB.
    pub fn backlog(&self) -> Result<u64, Error> {
        Ok(self.last_point.saturating_sub(self.outbox_cursor()?))
    }

    /// Deletes messages older than `retention` at `now_ms` (received before `now_ms −
    /// retention`) whose points are all written (≤ the outbox cursor), oldest first, and
    /// stops at the first message that must stay: pruning removes a prefix of the chain, so
    /// the hash of the last pruned record becomes the new chain base and the rest still
    /// verifies. Dead letters (messages without points) go by age alone. A retention below
    /// [`MIN_RETENTION`] is raised to it. The base's receive time and the time of pruning are
    /// recorded with it, so `verify` can tell a base moved by pruning from one moved by hand.
    /// Every local day that is over is sealed into the archive first, and only records a
    /// segment on disk holds are deleted: a day that cannot be sealed (disk full, a gap in
    /// the chain) is not pruned. Returns the number of messages deleted.
    pub fn prune(&mut self, now_ms: i64, retention: Duration) -> Result<u64, Error> {
        let mut total = 0;
        loop {
            let n = self.prune_some(now_ms, retention, PRUNE_CHUNK)?;
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
    }

    /// [`Journal::prune`], at most `max` messages, in one transaction, after sealing at most
    /// one more day.
    pub(crate) fn prune_some(
        &mut self,
        now_ms: i64,
        retention: Duration,
        max: u64,
    ) -> Result<u64, Error> {
        let keep_ms = i64::try_from(retention.max(MIN_RETENTION).as_millis()).unwrap_or(i64::MAX);
        let cutoff_ms = now_ms.saturating_sub(keep_ms);
        // Nothing is deleted that a segment on disk does not hold.
        self.seal_some(now_ms, 1)?;
        let base_id = schema::get_u64(&self.conn, key::BASE_ID)?;
        let Some(sealed) = self.archive.sealed_through(base_id + 1) else {
            return Ok(0);
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let cursor = schema::get_u64(&tx, key::CURSOR)?;
        // (id, hash, last point id, receive time) of the last message to delete
        let mut last: Option<(u64, Vec<u8>, u64, i64)> = None;
        let mut count = 0;
        {
            let mut stmt = tx.prepare_cached(
                "SELECT id, received_at_ms, first_point, n_points, hash FROM messages
                 ORDER BY id LIMIT ?1",
            )?;
            let mut rows = stmt.query([to_i64(max)?])?;
            while let Some(row) = rows.next()? {
                let received_at_ms: i64 = row.get(1)?;
                let first_point: i64 = row.get(2)?;
                let n_points: i64 = row.get(3)?;
                let last_point = (first_point + n_points - 1).max(0) as u64;
                let id: i64 = row.get(0)?;
                if received_at_ms >= cutoff_ms
                    || (n_points > 0 && last_point > cursor)
                    || id as u64 > sealed
                {
                    break;
                }
                last = Some((id as u64, row.get(4)?, last_point, received_at_ms));
                count += 1;
            }
        }
        let Some((id, hash, last_point, received_at_ms)) = last else {
            return Ok(0);
        };
        let hash = schema::to_hash(&hash)
            .ok_or_else(|| Error::Corrupt(format!("record {id} has no 32-byte hash")))?;
        let id_sql = to_i64(id)?;
        let pt_sql = to_i64(last_point)?;
        tx.prepare_cached("DELETE FROM messages WHERE id <= ?1")?
            .execute([id_sql])?;
        tx.prepare_cached("DELETE FROM points WHERE id <= ?1")?
            .execute([pt_sql])?;
        tx.prepare_cached("DELETE FROM rejections WHERE msg_id <= ?1")?
            .execute([id_sql])?;
        tx.prepare_cached("DELETE FROM replays WHERE msg_id <= ?1")?
            .execute([id_sql])?;
        tx.prepare_cached("DELETE FROM replay_of WHERE msg_id <= ?1")?
            .execute([id_sql])?;
        tx.prepare_cached("DELETE FROM digests WHERE msg_id <= ?1")?
            .execute([id_sql])?;
        tx.prepare_cached("DELETE FROM refused WHERE point_id <= ?1")?
            .execute([pt_sql])?;
        schema::set_u64(&tx, key::BASE_ID, id)?;
        schema::set_hash(&tx, key::BASE_HASH, &hash)?;
        // Receive times before 1970 do not occur; a clock that says so records 0.
        schema::set_u64(&tx, key::BASE_RECEIVED_AT, received_at_ms.max(0) as u64)?;
        schema::set_u64(&tx, key::BASE_PRUNED_AT, now_ms.max(0) as u64)?;
        tx.commit()?;
        Ok(count)
    }

    /// Calls `each` for every raw message received at or after `since_ms`, in id order, one at
    /// a time: a day of messages is never held in memory at once.
    pub fn each_message_since(
        &self,
        since_ms: i64,
        mut each: impl FnMut(StoredMessage),
    ) -> Result<(), Error> {
        super::uplink::read_messages(&self.conn, since_ms, i64::MAX, &mut each)
    }

    /// [`Journal::each_message_since`], only messages after record `after_id`.
    pub fn each_message_after(
        &self,
        after_id: u64,
        since_ms: i64,
        mut each: impl FnMut(StoredMessage),
    ) -> Result<(), Error> {
        if after_id == 0 {
            return self.each_message_since(since_ms, each);
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, received_at_ms, topic, payload, station, n_points, n_rejected
             FROM messages WHERE id > ?1 AND received_at_ms >= ?2 ORDER BY id",
        )?;
        let mut rows = stmt.query((after_id as i64, since_ms))?;
        while let Some(r) = rows.next()? {
            each(super::uplink::stored_message(r)?);
        }
        Ok(())
    }

    /// The hash of record `id`, `None` when the journal does not hold it.
    pub fn message_hash(&self, id: u64) -> Result<Option<[u8; 32]>, Error> {
        use rusqlite::OptionalExtension as _;
        let hash: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT hash FROM messages WHERE id = ?1")?
            .query_row([id as i64], |r| r.get(0))
            .optional()?;
        Ok(hash.and_then(|h| h.try_into().ok()))
    }

    /// The journal's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Id of the newest message with `topic` received at or after `since_ms`.
    pub fn last_message_with_topic(
        &self,
        topic: &str,
        since_ms: i64,
    ) -> Result<Option<u64>, Error> {
        let id: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT max(id) FROM messages WHERE topic = ?1 AND received_at_ms >= ?2",
            )?
            .query_row((topic, since_ms), |r| r.get(0))?;
        Ok(id.map(|i| i as u64))
    }

    /// Raw messages received at or after `since_ms`, in id order (to rebuild compliance
    /// windows after a restart).
    pub fn messages_since(&self, since_ms: i64) -> Result<Vec<StoredMessage>, Error> {
        let mut all = Vec::new();
        self.each_message_since(since_ms, |m| all.push(m))?;
        Ok(all)
    }
}

/// What identifies a message for [`Entry::once`]: SHA-256 over the topic, a NUL (which a topic
/// cannot contain) and the payload.
fn message_digest(topic: &str, payload: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(topic.as_bytes());
    h.update([0u8]);
    h.update(payload);
    h.finalize().into()
}
