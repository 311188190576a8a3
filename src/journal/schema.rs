//! Tables, connection settings and the `meta` key/value helpers.
//!
//! Only primary keys are indexed, plus two indexes that queries need: receive time (windows are
//! rebuilt from the messages of the last day) and a partial index over messages with rejections
//! (dead-letter listing), which costs nothing for the messages that have none.
//!
//! `digests` maps the SHA-256 of a message's topic and payload to its record, for as long as
//! the record is kept: a message the broker delivers again (after a reconnect, its PUBACK lost)
//! is recognised and journaled once. It is an index of the records, not evidence: the hash
//! chain does not cover it. Created with the other tables (`CREATE TABLE IF NOT EXISTS`), so an
//! older journal gets the (empty) table when it is next opened for writing.
//!
//! # Versions
//! [`VERSION`] is the layout this build writes. A writer opening an older journal brings it up
//! to date in one transaction ([`create`]: new tables are created, [`migrate`] adds what an
//! older version lacked); a journal from a newer version is refused, since this build would
//! not keep what the newer one records. A read-only open ([`Mode::ReadOnly`]) accepts an older
//! journal as it is, so a copy handed over years later still verifies: what the old version
//! did not record reads as absent.
//!
//! # Read-only opening
//! `verify` must work on a copy nobody can write to (a regulator's copy, a read-only mount).
//! A journal quantrac closed cleanly is one file without a write-ahead log; it is opened
//! `immutable=1`, which reads the file and creates, locks and changes nothing. A journal with
//! a `-wal` file (quantrac running, or stopped by a crash) is opened `mode=ro`, which reads
//! the log too but needs the `-shm` index file next to it (existing, or creatable).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::Error;

/// The database file inside the journal folder.
pub const FILE_NAME: &str = "journal.sqlite";

/// Bumped whenever a table or the hash layout changes. 2: signed checkpoints (`checkpoints`)
/// and the receive and deletion times of the chain base (`meta`).
pub const VERSION: i64 = 2;

/// How long a connection waits for the other one's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const DDL: &str = "
CREATE TABLE IF NOT EXISTS messages (
    id             INTEGER PRIMARY KEY,
    received_at_ms INTEGER NOT NULL,
    topic          TEXT    NOT NULL,
    payload        BLOB    NOT NULL,
    station        TEXT,
    first_point    INTEGER NOT NULL,
    n_points       INTEGER NOT NULL,
    n_rejected     INTEGER NOT NULL,
    hash           BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_received ON messages(received_at_ms);
CREATE INDEX IF NOT EXISTS messages_dead ON messages(id) WHERE n_rejected > 0;
CREATE TABLE IF NOT EXISTS points (
    id     INTEGER PRIMARY KEY,
    msg_id INTEGER NOT NULL,
    line   TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS rejections (
    msg_id  INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    reading INTEGER,
    reason  TEXT    NOT NULL,
    detail  TEXT    NOT NULL,
    PRIMARY KEY (msg_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS refused (
    point_id INTEGER PRIMARY KEY,
    reason   TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS replays (
    msg_id INTEGER PRIMARY KEY,
    at_ms  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS replay_of (
    msg_id      INTEGER PRIMARY KEY,
    original_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS digests (
    digest BLOB    PRIMARY KEY,
    msg_id INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    id                  INTEGER PRIMARY KEY,
    at_ms               INTEGER NOT NULL,
    base_id             INTEGER NOT NULL,
    base_hash           BLOB    NOT NULL,
    base_received_at_ms INTEGER NOT NULL,
    head_id             INTEGER NOT NULL,
    head_hash           BLOB    NOT NULL,
    public_key          BLOB    NOT NULL,
    signature           BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS uplink_files (
    id            INTEGER PRIMARY KEY,
    station       TEXT    NOT NULL,
    period_end_ms INTEGER NOT NULL,
    dir           TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    content       BLOB    NOT NULL,
    made_at_ms    INTEGER NOT NULL,
    sent_at_ms    INTEGER,
    refused       TEXT
);
CREATE INDEX IF NOT EXISTS uplink_pending ON uplink_files(id) WHERE sent_at_ms IS NULL;
";

/// Keys of the `meta` table.
pub mod key {
    pub const VERSION: &str = "schema_version";
    /// Id and hash of the last pruned record (0 and zeros before any pruning).
    pub const BASE_ID: &str = "chain_base_id";
    pub const BASE_HASH: &str = "chain_base_hash";
    /// Receive time of the last pruned record, and when it was pruned (0 before any pruning):
    /// `verify` checks the base against the retention period with them.
    pub const BASE_RECEIVED_AT: &str = "chain_base_received_at_ms";
    pub const BASE_PRUNED_AT: &str = "chain_base_pruned_at_ms";
    /// Id and hash of the last committed record, written with every commit.
    pub const HEAD_ID: &str = "chain_head_id";
    pub const HEAD_HASH: &str = "chain_head_hash";
    /// Id of the last point ever committed (survives pruning).
    pub const LAST_POINT: &str = "last_point_id";
    /// Id of the last point InfluxDB accepted.
    pub const CURSOR: &str = "outbox_cursor";
    /// The first record the archive holds: 1, or, for a journal pruned before quantrac kept
    /// an archive, the record after the base then. Written once, by the first sealing.
    pub const ARCHIVE_FROM: &str = "archive_from_id";
}

/// How a connection is going to be used.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The journal writer; `durable` chooses `synchronous=FULL` (fsync on every commit) or
    /// `OFF` (benchmark baseline only).
    Writer { durable: bool },
    /// The outbox and the dead-letter commands: small bookkeeping writes (the cursor, refused
    /// points, replay marks). `NORMAL` is enough: a cursor lost in a crash makes the sink resend
    /// points, which InfluxDB overwrites.
    Bookkeeping,
    /// `verify` and `dead-letters list`: never writes.
    ReadOnly,
}

/// Opens `dir/journal.sqlite`, creating the folder and the tables unless read-only.
pub fn open(dir: &Path, mode: Mode) -> Result<Connection, Error> {
    let path = super::db_path(dir);
    let conn = if mode == Mode::ReadOnly {
        open_read_only(&path)?
    } else {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Connection::open(&path)?
    };
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(32);
    match mode {
        Mode::ReadOnly => {}
        Mode::Writer { durable } => {
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "OFF" })?;
            create(&conn)?;
        }
        Mode::Bookkeeping => {
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            create(&conn)?;
        }
    }
    check_version(&conn, mode)?;
    Ok(conn)
}

/// Opens the database file read-only, without creating, locking or changing anything when
/// it can (see the module documentation).
fn open_read_only(path: &Path) -> Result<Connection, Error> {
    if !path.exists() {
        return Err(Error::Missing(path.to_path_buf()));
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let uri = file_uri(path);
    let wal = wal_len(path)?;
    if wal.is_none() {
        // No write-ahead log: no writer has the journal open, everything is in the file.
        return Ok(Connection::open_with_flags(
            format!("{uri}?immutable=1"),
            flags,
        )?);
    }
    let opened = Connection::open_with_flags(format!("{uri}?mode=ro"), flags).and_then(|c| {
        // Opening is lazy: the first read is where a missing `-shm` shows.
        c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })?;
        Ok(c)
    });
    match opened {
        Ok(c) => Ok(c),
        Err(e) if cannot_open(&e) && wal == Some(0) => {
            // An empty log holds nothing: the file alone is the journal.
            Ok(Connection::open_with_flags(
                format!("{uri}?immutable=1"),
                flags,
            )?)
        }
        Err(e) if cannot_open(&e) => {
            let mut wal_path = path.as_os_str().to_owned();
            wal_path.push("-wal");
            Err(Error::Io {
                path: wal_path.into(),
                source: std::io::Error::other(format!(
                    "{e}: the journal has a write-ahead log, which SQLite reads only with its \
                     -shm index file, and that file is missing and cannot be created here; \
                     copy the journal with its -wal and -shm files, or into a writable folder, \
                     or copy it after quantrac stopped"
                )),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// SQLite's answer when a read-only connection cannot get at the write-ahead log's index.
fn cannot_open(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::ReadOnly)
    )
}

/// Size of the journal's `-wal` file; `None` when there is none.
fn wal_len(path: &Path) -> Result<Option<u64>, Error> {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    match std::fs::metadata(&wal) {
        Ok(m) => Ok(Some(m.len())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            path: wal.into(),
            source,
        }),
    }
}

/// `file:` URI of a path: `%`, `?` and `#` would otherwise be read as URI syntax.
fn file_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri
}

/// Creates the tables and the initial `meta` rows if this is a new journal, and brings an
/// older journal up to [`VERSION`].
fn create(conn: &Connection) -> Result<(), Error> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let r = (|| -> Result<(), Error> {
        conn.execute_batch(DDL)?;
        let ins = "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)";
        conn.execute(ins, (key::VERSION, VERSION))?;
        for k in [
            key::BASE_ID,
            key::HEAD_ID,
            key::LAST_POINT,
            key::CURSOR,
            key::BASE_RECEIVED_AT,
            key::BASE_PRUNED_AT,
        ] {
            conn.execute(ins, (k, 0i64))?;
        }
        for k in [key::BASE_HASH, key::HEAD_HASH] {
            conn.execute(ins, (k, &super::chain::GENESIS[..]))?;
        }
        migrate(conn)
    })();
    match r {
        Ok(()) => conn.execute_batch("COMMIT")?,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
    }
    Ok(())
}

/// Brings an older journal up to [`VERSION`], inside [`create`]'s transaction, after the DDL
/// (which creates only what is missing) and the initial `meta` rows (inserted only where
/// absent). Refuses a newer journal.
///
/// 1 → 2: the `checkpoints` table and the base times in `meta`, both from the steps before.
///
/// Added within version 2, by the DDL alone: `replay_of` (which record a replayed dead letter
/// became) and `uplink_files` (the files made for the provincial department, with the
/// `uplink_closed_upto_ms` key in `meta`; see [`super::uplink`]). An older build ignores
/// them; readers check that they exist ([`has_table`]).
/// A base that version 1 moved gets times of 0, which `verify` reports as a base with no
/// recorded pruning until the next pruning records real ones.
fn migrate(conn: &Connection) -> Result<(), Error> {
    let found = get_u64(conn, key::VERSION)? as i64;
    if found > VERSION {
        return Err(Error::Schema {
            found,
            expected: VERSION,
        });
    }
    if found < VERSION {
        conn.execute(
            "UPDATE meta SET value = ?2 WHERE key = ?1",
            (key::VERSION, VERSION),
        )?;
    }
    Ok(())
}

/// A writer needs the current version (it was just migrated); a reader takes any version up
/// to this one.
fn check_version(conn: &Connection, mode: Mode) -> Result<(), Error> {
    let found = get_u64(conn, key::VERSION)? as i64;
    let ok = match mode {
        Mode::ReadOnly => found <= VERSION,
        Mode::Writer { .. } | Mode::Bookkeeping => found == VERSION,
    };
    if !ok {
        return Err(Error::Schema {
            found,
            expected: VERSION,
        });
    }
    Ok(())
}

/// An integer from `meta`.
pub fn get_u64(conn: &Connection, k: &str) -> Result<u64, Error> {
    let v: Option<rusqlite::types::Value> = conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([k], |r| r.get(0))
        .optional()?;
    match v {
        Some(rusqlite::types::Value::Integer(i)) if i >= 0 => Ok(i as u64),
        None => Err(Error::Corrupt(format!("meta key {k} is missing"))),
        Some(other) => Err(Error::Corrupt(format!(
            "meta key {k} holds {other:?}, not a count"
        ))),
    }
}

/// An integer from `meta` that older versions did not write: `None` when absent.
pub fn get_u64_opt(conn: &Connection, k: &str) -> Result<Option<u64>, Error> {
    match get_u64(conn, k) {
        Ok(v) => Ok(Some(v)),
        Err(Error::Corrupt(_)) if !has_key(conn, k)? => Ok(None),
        Err(e) => Err(e),
    }
}

fn has_key(conn: &Connection, k: &str) -> Result<bool, Error> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM meta WHERE key = ?1")?
        .exists([k])?)
}

/// Whether the journal has table `name` (a read-only open of an older journal may not).
pub fn has_table(conn: &Connection, name: &str) -> Result<bool, Error> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")?
        .exists([name])?)
}

/// A 32-byte hash from `meta`.
pub fn get_hash(conn: &Connection, k: &str) -> Result<[u8; 32], Error> {
    let v: Option<Vec<u8>> = conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([k], |r| r.get(0))
        .optional()?;
    let v = v.ok_or_else(|| Error::Corrupt(format!("meta key {k} is missing")))?;
    to_hash(&v).ok_or_else(|| Error::Corrupt(format!("meta key {k} is not a 32-byte hash")))
}

/// Sets a `meta` key that older journals lack (inserting it).
pub fn put_u64(conn: &Connection, k: &str, v: u64) -> Result<(), Error> {
    conn.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
        .execute((k, to_i64(v)?))?;
    Ok(())
}

pub fn set_u64(conn: &Connection, k: &str, v: u64) -> Result<(), Error> {
    conn.prepare_cached("UPDATE meta SET value = ?2 WHERE key = ?1")?
        .execute((k, to_i64(v)?))?;
    Ok(())
}

pub fn set_hash(conn: &Connection, k: &str, v: &[u8; 32]) -> Result<(), Error> {
    conn.prepare_cached("UPDATE meta SET value = ?2 WHERE key = ?1")?
        .execute((k, &v[..]))?;
    Ok(())
}

pub fn to_hash(v: &[u8]) -> Option<[u8; 32]> {
    v.try_into().ok()
}

/// SQLite integers are signed; ids never come near the limit, but say so if they do.
pub fn to_i64(v: u64) -> Result<i64, Error> {
    i64::try_from(v).map_err(|_| Error::Corrupt(format!("id {v} does not fit SQLite")))
}
