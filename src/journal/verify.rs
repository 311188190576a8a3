//! `quantrac verify`: recompute the hash chain and name the first record that was altered,
//! removed or reordered.
//!
//! The walk starts from the chain base (zeros, or the hash of the last pruned record) and
//! recomputes every record's hash from its stored content, its rejections and its points.
//! The first disagreement is classified:
//! - an id gap → that record is **missing** (removed);
//! - a hash mismatch where the content of a nearby record hashes to what this position expects
//!   → the records were **reordered** (swapped or moved);
//! - any other mismatch, or a point that names another message → the record was **altered**;
//! - a chain that ends before the head recorded with the last commit → records were removed
//!   from the **end**.

use std::fmt;
use std::path::Path;

use rusqlite::{Connection, Row};

use super::chain::{record_hash, RecordRef, RejectionRow};
use super::schema::{self, key, to_i64, Mode};
use super::Error;

/// How far ahead a record's displaced content is looked for.
const REORDER_WINDOW: i64 = 64;

/// The outcome of a walk over the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records verified (before the problem, if there is one).
    pub records: u64,
    /// The last verified record: id and hash (hex). Id 0 = nothing verified yet.
    pub head: (u64, String),
    /// Id of the last pruned record (0 = nothing pruned); the chain starts after it.
    pub base_id: u64,
    /// The first problem found; `None` = the whole chain holds.
    pub problem: Option<Problem>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

/// The first thing wrong with the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The record's content (payload, topic, time, station, rejections or points) no longer
    /// matches the hash it was written with.
    Altered {
        id: u64,
        topic: String,
        received_at_ms: i64,
    },
    /// An id gap: record `id` was removed (`next` is the record found after the gap).
    Missing { id: u64, next: u64 },
    /// The content now stored as record `found_at` was written as record `id`.
    Reordered {
        id: u64,
        found_at: u64,
        topic: String,
        received_at_ms: i64,
    },
    /// The chain ends at `last` but the journal recorded `head` as its newest record.
    Truncated { last: u64, head: u64 },
    /// The chain ends where the journal says, but not with the hash it recorded.
    HeadMismatch {
        id: u64,
        recorded: String,
        found: String,
    },
}

/// Receive times as a regulator reads them: UTC, to the millisecond.
fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
        .unwrap_or_else(|| format!("{ms} ms since 1970"))
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Altered {
                id,
                topic,
                received_at_ms,
            } => write!(
                f,
                "record {id} (topic {topic}, received {}) was altered after it was written: \
                 its content no longer matches its hash",
                time(*received_at_ms)
            ),
            Problem::Missing { id, next } => write!(
                f,
                "record {id} is missing: it was removed (the chain jumps to record {next})"
            ),
            Problem::Reordered {
                id,
                found_at,
                topic,
                received_at_ms,
            } => write!(
                f,
                "records {id} and {found_at} were reordered: the message written as record {id} \
                 (topic {topic}, received {}) is now stored as record {found_at}",
                time(*received_at_ms)
            ),
            Problem::Truncated { last, head } => write!(
                f,
                "records {} to {head} are missing: they were removed from the end of the journal \
                 (the last commit recorded record {head}, the chain ends at record {last})",
                last + 1
            ),
            Problem::HeadMismatch {
                id,
                recorded,
                found,
            } => write!(
                f,
                "the newest record {id} has hash {found}, but the last commit recorded {recorded}"
            ),
        }
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (id, hash) = &self.head;
        match &self.problem {
            None => write!(
                f,
                "journal intact: {} records verified, chain head record {id} hash {hash}",
                self.records
            )?,
            Some(p) => write!(
                f,
                "journal NOT intact: {p}. {} records before it verified (last good record {id}, \
                 hash {hash})",
                self.records
            )?,
        }
        if self.base_id > 0 {
            write!(
                f,
                "; records up to {} were deleted after their retention period, the chain \
                 continues from the hash recorded for record {}",
                self.base_id, self.base_id
            )?;
        }
        Ok(())
    }
}

/// One stored record with its rejections and points.
struct Record {
    id: u64,
    received_at_ms: i64,
    topic: String,
    payload: Vec<u8>,
    station: Option<String>,
    n_points: u64,
    n_rejected: u64,
    hash: Option<[u8; 32]>,
    rejections: Vec<RejectionRow>,
    /// `(point id, line)`
    points: Vec<(u64, String)>,
    /// Every point in the record's range names it as its message.
    points_owned: bool,
}

const COLUMNS: &str =
    "id, received_at_ms, topic, payload, station, first_point, n_points, n_rejected, hash";

impl Record {
    fn read(conn: &Connection, row: &Row<'_>) -> Result<Record, Error> {
        let id = row.get::<_, i64>(0)? as u64;
        let first_point = row.get::<_, i64>(5)?;
        let n_points = row.get::<_, i64>(6)?;
        let hash: Vec<u8> = row.get(8)?;
        let mut rec = Record {
            id,
            received_at_ms: row.get(1)?,
            topic: row.get(2)?,
            payload: row.get(3)?,
            station: row.get(4)?,
            n_points: n_points.max(0) as u64,
            n_rejected: row.get::<_, i64>(7)?.max(0) as u64,
            hash: schema::to_hash(&hash),
            rejections: Vec::new(),
            points: Vec::new(),
            points_owned: true,
        };
        let mut pts = conn.prepare_cached(
            "SELECT id, msg_id, line FROM points WHERE id >= ?1 AND id < ?2 ORDER BY id",
        )?;
        let mut rows = pts.query((first_point, first_point.saturating_add(n_points)))?;
        while let Some(r) = rows.next()? {
            let msg_id = r.get::<_, i64>(1)?;
            rec.points_owned &= msg_id == to_i64(id)?;
            rec.points.push((r.get::<_, i64>(0)? as u64, r.get(2)?));
        }
        let mut rej = conn.prepare_cached(
            "SELECT seq, reading, reason, detail FROM rejections WHERE msg_id = ?1 ORDER BY seq",
        )?;
        let rows = rej.query_map([to_i64(id)?], |r| {
            Ok(RejectionRow {
                seq: r.get::<_, i64>(0)? as u64,
                reading: r.get::<_, Option<i64>>(1)?.map(|i| i as u64),
                reason: r.get(2)?,
                detail: r.get(3)?,
            })
        })?;
        rec.rejections = rows.collect::<Result<_, _>>()?;
        Ok(rec)
    }

    /// This record's content hashed as if it stood at position `id` after `prev`.
    fn hash_at(&self, prev: &[u8; 32], id: u64) -> [u8; 32] {
        record_hash(
            prev,
            RecordRef {
                id,
                received_at_ms: self.received_at_ms,
                topic: &self.topic,
                payload: &self.payload,
                station: self.station.as_deref(),
            },
            &self.rejections,
            &self.points,
        )
    }

    /// The counts stored on the message agree with the rows found for it.
    fn consistent(&self) -> bool {
        self.points_owned
            && self.points.len() as u64 == self.n_points
            && self.rejections.len() as u64 == self.n_rejected
    }
}

/// Walks the chain of the journal in `dir` (opened read-only) and reports the first problem.
pub fn verify(dir: &Path) -> Result<VerifyReport, Error> {
    let conn = schema::open(dir, Mode::ReadOnly)?;
    let base_id = schema::get_u64(&conn, key::BASE_ID)?;
    let base_hash = schema::get_hash(&conn, key::BASE_HASH)?;
    let head_id = schema::get_u64(&conn, key::HEAD_ID)?;
    let head_hash = schema::get_hash(&conn, key::HEAD_HASH)?;

    let mut prev_id = base_id;
    let mut prev_hash = base_hash;
    let mut records = 0;
    let report = |records, prev_id, prev_hash: [u8; 32], problem| VerifyReport {
        records,
        head: (prev_id, hex::encode(prev_hash)),
        base_id,
        problem,
    };

    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM messages ORDER BY id"))?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let rec = Record::read(&conn, row)?;
        if rec.id > prev_id + 1 {
            let problem = Problem::Missing {
                id: prev_id + 1,
                next: rec.id,
            };
            return Ok(report(records, prev_id, prev_hash, Some(problem)));
        }
        let expected = rec.hash_at(&prev_hash, rec.id);
        if rec.hash == Some(expected) && rec.consistent() && rec.id == prev_id + 1 {
            records += 1;
            prev_id = rec.id;
            prev_hash = expected;
            continue;
        }
        let problem = match displaced(&conn, &rec, &prev_hash)? {
            Some(moved) => Problem::Reordered {
                id: rec.id,
                found_at: moved.id,
                topic: moved.topic,
                received_at_ms: moved.received_at_ms,
            },
            None => Problem::Altered {
                id: rec.id,
                topic: rec.topic,
                received_at_ms: rec.received_at_ms,
            },
        };
        return Ok(report(records, prev_id, prev_hash, Some(problem)));
    }
    let problem = if prev_id < head_id {
        Some(Problem::Truncated {
            last: prev_id,
            head: head_id,
        })
    } else if prev_id != head_id || prev_hash != head_hash {
        Some(Problem::HeadMismatch {
            id: prev_id,
            recorded: format!("{} for record {head_id}", hex::encode(head_hash)),
            found: hex::encode(prev_hash),
        })
    } else {
        None
    };
    Ok(report(records, prev_id, prev_hash, problem))
}

/// The record, among the next few after `at`, whose content was written at `at`'s position:
/// hashed after `prev` as record `at.id`, it gives the hash stored at `at` (contents swapped)
/// or its own stored hash (whole rows swapped, hashes included).
fn displaced(conn: &Connection, at: &Record, prev: &[u8; 32]) -> Result<Option<Record>, Error> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM messages WHERE id > ?1 ORDER BY id LIMIT ?2"
    ))?;
    let mut rows = stmt.query((to_i64(at.id)?, REORDER_WINDOW))?;
    while let Some(row) = rows.next()? {
        let cand = Record::read(conn, row)?;
        let h = cand.hash_at(prev, at.id);
        if Some(h) == at.hash || Some(h) == cand.hash {
            return Ok(Some(cand));
        }
    }
    Ok(None)
}
