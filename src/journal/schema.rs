//! Tables, connection settings and the `meta` key/value helpers.
//!
//! Only primary keys are indexed, plus two indexes that queries need: receive time (windows are
//! rebuilt from the messages of the last day) and a partial index over messages with rejections
//! (dead-letter listing), which costs nothing for the messages that have none.
//!
//! `digests` maps the SHA-256 of a message's topic and payload to its record, for as long as
//! the record is kept: a message the broker delivers again (after a reconnect, its PUBACK lost)
//! is recognised and journaled once. It is an index of the records, not evidence: the hash
//! chain does not cover it. Added without a version bump: `CREATE TABLE IF NOT EXISTS` gives an
//! older journal the (empty) table when it is next opened for writing.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::Error;

/// The database file inside the journal folder.
pub const FILE_NAME: &str = "journal.sqlite";

/// Bumped whenever a table or the hash layout changes.
pub const VERSION: i64 = 1;

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
CREATE TABLE IF NOT EXISTS digests (
    digest BLOB    PRIMARY KEY,
    msg_id INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value
) WITHOUT ROWID;
";

/// Keys of the `meta` table.
pub mod key {
    pub const VERSION: &str = "schema_version";
    /// Id and hash of the last pruned record (0 and zeros before any pruning).
    pub const BASE_ID: &str = "chain_base_id";
    pub const BASE_HASH: &str = "chain_base_hash";
    /// Id and hash of the last committed record, written with every commit.
    pub const HEAD_ID: &str = "chain_head_id";
    pub const HEAD_HASH: &str = "chain_head_hash";
    /// Id of the last point ever committed (survives pruning).
    pub const LAST_POINT: &str = "last_point_id";
    /// Id of the last point InfluxDB accepted.
    pub const CURSOR: &str = "outbox_cursor";
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
        if !path.exists() {
            return Err(Error::Missing(path));
        }
        Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?
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
    check_version(&conn)?;
    Ok(conn)
}

/// Creates the tables and the initial `meta` rows if this is a new journal.
fn create(conn: &Connection) -> Result<(), Error> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let r = (|| -> Result<(), Error> {
        conn.execute_batch(DDL)?;
        let ins = "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)";
        conn.execute(ins, (key::VERSION, VERSION))?;
        for k in [key::BASE_ID, key::HEAD_ID, key::LAST_POINT, key::CURSOR] {
            conn.execute(ins, (k, 0i64))?;
        }
        for k in [key::BASE_HASH, key::HEAD_HASH] {
            conn.execute(ins, (k, &super::chain::GENESIS[..]))?;
        }
        Ok(())
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

fn check_version(conn: &Connection) -> Result<(), Error> {
    let found = get_u64(conn, key::VERSION)? as i64;
    if found != VERSION {
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

/// A 32-byte hash from `meta`.
pub fn get_hash(conn: &Connection, k: &str) -> Result<[u8; 32], Error> {
    let v: Option<Vec<u8>> = conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([k], |r| r.get(0))
        .optional()?;
    let v = v.ok_or_else(|| Error::Corrupt(format!("meta key {k} is missing")))?;
    to_hash(&v).ok_or_else(|| Error::Corrupt(format!("meta key {k} is not a 32-byte hash")))
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
