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
//! - a column that holds another SQLite type than quantrac wrote (a payload turned from BLOB
//!   into TEXT by an SQL edit, a count turned into text) → that record was **altered**, and
//!   the column is named: values are read whatever their type, never trusted to be typed;
//! - a chain that ends before the head recorded with the last commit → records were removed
//!   from the **end**.
//!
//! # Evidence the file cannot forge
//! A chain that holds proves only that the file agrees with itself: whoever can write it can
//! remove a record and recompute every hash after it, `meta` included. So the walk also
//! collects the hash at every id that outside evidence names, and [`verify_with`] checks:
//! - **anchors** ([`Anchor`]: a record id and its chain hash, published earlier to a third
//!   party from the `journal chain head` log line or the `quantrac_journal_chain_head`
//!   metric): each must name a record of this chain with that hash. An anchor older than the
//!   chain base is checked against the archive's segments, which hold every pruned record;
//! - **signed checkpoints** ([`super::checkpoint`]): each must agree with the chain, and with
//!   public keys given, each signature must hold, the newest must cover the chain's last
//!   record (a cleanly stopped service signs its final head) and the current base;
//! - **retention**: a chain base (records deleted) must have been pruned, as recorded by the
//!   writer and by signed checkpoints, no sooner than the retention period after the base
//!   record was received.
//!
//! - **the archive** ([`super::archive::verify`]): the segments, from record 1, must form one
//!   chain that reaches the base with the base's hash and agrees with the journal where
//!   both hold a record; its first problem is named in [`ArchiveSummary`].
//!
//! Every disagreement is a [`Finding`], named, beside the chain's own first [`Problem`].

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row};

use super::chain::{record_hash, RecordRef, RejectionRow};
use super::checkpoint::{self, Signed};
use super::schema::{self, key, to_i64, Mode};
use super::Error;

mod report;
pub use report::*;

/// How far ahead a record's displaced content is looked for.
const REORDER_WINDOW: i64 = 64;

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
    /// The first column found holding another type than quantrac wrote.
    retyped: Option<Retyped>,
}

/// A column holding another SQLite type than quantrac wrote into it.
#[derive(Clone, Copy, Debug)]
struct Retyped {
    column: &'static str,
    found: &'static str,
    expected: &'static str,
}

/// The SQLite storage classes, as `typeof()` names them.
fn type_name(v: ValueRef<'_>) -> &'static str {
    match v {
        ValueRef::Null => "NULL",
        ValueRef::Integer(_) => "INTEGER",
        ValueRef::Real(_) => "REAL",
        ValueRef::Text(_) => "TEXT",
        ValueRef::Blob(_) => "BLOB",
    }
}

/// Reads columns whatever type they hold (an edited journal may hold anything), converting
/// to what quantrac wrote and noting the first column that held something else, so `verify`
/// names the record instead of failing on a type it did not expect.
#[derive(Default)]
struct Lenient {
    retyped: Option<Retyped>,
}

impl Lenient {
    fn note(&mut self, column: &'static str, v: ValueRef<'_>, expected: &'static str) {
        if self.retyped.is_none() {
            self.retyped = Some(Retyped {
                column,
                found: type_name(v),
                expected,
            });
        }
    }

    fn int(&mut self, row: &Row<'_>, i: usize, column: &'static str) -> Result<i64, Error> {
        let v = row.get_ref(i)?;
        Ok(match v {
            ValueRef::Integer(n) => n,
            other => {
                self.note(column, other, "INTEGER");
                match other {
                    ValueRef::Real(x) => x as i64,
                    ValueRef::Text(t) => std::str::from_utf8(t)
                        .ok()
                        .and_then(|t| t.trim().parse().ok())
                        .unwrap_or(0),
                    _ => 0,
                }
            }
        })
    }

    fn int_or_null(
        &mut self,
        row: &Row<'_>,
        i: usize,
        column: &'static str,
    ) -> Result<Option<i64>, Error> {
        match row.get_ref(i)? {
            ValueRef::Null => Ok(None),
            _ => self.int(row, i, column).map(Some),
        }
    }

    fn text(&mut self, row: &Row<'_>, i: usize, column: &'static str) -> Result<String, Error> {
        let v = row.get_ref(i)?;
        Ok(match v {
            ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
            other => {
                self.note(column, other, "TEXT");
                lossy(other)
            }
        })
    }

    fn text_or_null(
        &mut self,
        row: &Row<'_>,
        i: usize,
        column: &'static str,
    ) -> Result<Option<String>, Error> {
        match row.get_ref(i)? {
            ValueRef::Null => Ok(None),
            _ => self.text(row, i, column).map(Some),
        }
    }

    fn blob(&mut self, row: &Row<'_>, i: usize, column: &'static str) -> Result<Vec<u8>, Error> {
        let v = row.get_ref(i)?;
        Ok(match v {
            ValueRef::Blob(b) => b.to_vec(),
            other => {
                self.note(column, other, "BLOB");
                lossy(other).into_bytes()
            }
        })
    }
}

/// Any value as text: what an edited column's content most likely meant.
fn lossy(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => String::new(),
        ValueRef::Integer(n) => n.to_string(),
        ValueRef::Real(x) => x.to_string(),
        ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
    }
}

const COLUMNS: &str =
    "id, received_at_ms, topic, payload, station, first_point, n_points, n_rejected, hash";

impl Record {
    fn read(conn: &Connection, row: &Row<'_>) -> Result<Record, Error> {
        let mut col = Lenient::default();
        let id = col.int(row, 0, "messages.id")?.max(0) as u64;
        let received_at_ms = col.int(row, 1, "messages.received_at_ms")?;
        let topic = col.text(row, 2, "messages.topic")?;
        let payload = col.blob(row, 3, "messages.payload")?;
        let station = col.text_or_null(row, 4, "messages.station")?;
        let first_point = col.int(row, 5, "messages.first_point")?;
        let n_points = col.int(row, 6, "messages.n_points")?;
        let n_rejected = col.int(row, 7, "messages.n_rejected")?;
        let hash = col.blob(row, 8, "messages.hash")?;
        let mut rec = Record {
            id,
            received_at_ms,
            topic,
            payload,
            station,
            n_points: n_points.max(0) as u64,
            n_rejected: n_rejected.max(0) as u64,
            hash: schema::to_hash(&hash),
            rejections: Vec::new(),
            points: Vec::new(),
            points_owned: true,
            retyped: None,
        };
        let mut pts = conn.prepare_cached(
            "SELECT id, msg_id, line FROM points WHERE id >= ?1 AND id < ?2 ORDER BY id",
        )?;
        let mut rows = pts.query((first_point, first_point.saturating_add(n_points)))?;
        while let Some(r) = rows.next()? {
            let point_id = col.int(r, 0, "points.id")?;
            let msg_id = col.int(r, 1, "points.msg_id")?;
            rec.points_owned &= msg_id == to_i64(id)?;
            rec.points
                .push((point_id.max(0) as u64, col.text(r, 2, "points.line")?));
        }
        let mut rej = conn.prepare_cached(
            "SELECT seq, reading, reason, detail FROM rejections WHERE msg_id = ?1 ORDER BY seq",
        )?;
        let mut rows = rej.query([to_i64(id)?])?;
        while let Some(r) = rows.next()? {
            rec.rejections.push(RejectionRow {
                seq: col.int(r, 0, "rejections.seq")?.max(0) as u64,
                reading: col
                    .int_or_null(r, 1, "rejections.reading")?
                    .map(|i| i.max(0) as u64),
                reason: col.text(r, 2, "rejections.reason")?,
                detail: col.text(r, 3, "rejections.detail")?,
            });
        }
        rec.retyped = col.retyped;
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
        self.retyped.is_none()
            && self.points_owned
            && self.points.len() as u64 == self.n_points
            && self.rejections.len() as u64 == self.n_rejected
    }
}

/// Walks the chain of the journal in `dir` (opened read-only) and reports the first problem;
/// checkpoints are checked against the chain (not their signatures), and the base against
/// the default retention period.
pub fn verify(dir: &Path) -> Result<VerifyReport, Error> {
    verify_with(dir, &Options::default())
}

/// [`verify`], and what the anchors, the checkpoints (signatures too, with public keys) and
/// the retention period in `opts` say about the chain.
pub fn verify_with(dir: &Path, opts: &Options) -> Result<VerifyReport, Error> {
    let conn = schema::open(dir, Mode::ReadOnly)?;
    let base_id = schema::get_u64(&conn, key::BASE_ID)?;
    let base_hash = schema::get_hash(&conn, key::BASE_HASH)?;
    let checkpoints = checkpoint::read_all(&conn)?;
    let mut wanted: BTreeSet<u64> = opts.anchors.iter().map(|a| a.id).collect();
    for c in &checkpoints {
        wanted.extend([c.checkpoint.head_id, c.checkpoint.base_id]);
    }
    let archive_dir = opts
        .archive_dir
        .clone()
        .unwrap_or_else(|| dir.join(super::archive::DEFAULT_DIR));
    let mut wanted_archived = wanted.clone();
    wanted_archived.insert(base_id);
    let arch = super::archive::verify::walk(&archive_dir, &opts.public_keys, &wanted_archived)?;
    if let Some((end, _)) = arch.end {
        wanted.insert(end);
    }
    let walk = walk(&conn, base_id, base_hash, &wanted)?;
    let archive_from = schema::get_u64_opt(&conn, key::ARCHIVE_FROM)?;
    let archive = archive_summary(
        &archive_dir,
        &arch,
        (base_id, &base_hash),
        archive_from,
        &walk.hashes,
    );
    let chain = ChainView {
        base_id,
        base_hash,
        end: walk.end,
        broken: match &walk.problem {
            Some(Problem::Missing { id, .. })
            | Some(Problem::Altered { id, .. })
            | Some(Problem::Retyped { id, .. })
            | Some(Problem::Reordered { id, .. }) => Some(*id),
            _ => None,
        },
        hashes: walk.hashes,
        archived: arch.hashes,
    };
    let retention_ms = i64::try_from(opts.retention.as_millis()).unwrap_or(i64::MAX);
    let retention_days = opts.retention.as_secs() / 86_400;
    let mut findings = Vec::new();

    let mut held = 0;
    for a in &opts.anchors {
        match chain.check(a.id, &a.hash) {
            Ok(()) => held += 1,
            Err(mismatch) => findings.push(Finding::Anchor {
                id: a.id,
                hash: hex::encode(a.hash),
                mismatch,
            }),
        }
    }

    let (summary, newest) = check_checkpoints(&checkpoints, opts, &chain, &mut findings);
    if summary.signatures_checked && chain.broken.is_none() {
        match newest {
            None if chain.end > base_id => findings.push(Finding::Unsigned {
                from: base_id + 1,
                to: chain.end,
                newest: None,
            }),
            None => {}
            Some(n) => {
                if n.head_id < chain.end {
                    findings.push(Finding::Unsigned {
                        from: n.head_id + 1,
                        to: chain.end,
                        newest: Some((n.at_ms, n.head_id)),
                    });
                }
                if n.base_id != base_id {
                    findings.push(Finding::BaseUnsigned {
                        base_id,
                        signed_base_id: n.base_id,
                        at_ms: n.at_ms,
                    });
                }
            }
        }
    }

    if base_id > 0 {
        let received = schema::get_u64_opt(&conn, key::BASE_RECEIVED_AT)?.unwrap_or(0) as i64;
        let pruned = schema::get_u64_opt(&conn, key::BASE_PRUNED_AT)?.unwrap_or(0) as i64;
        if pruned == 0 {
            findings.push(Finding::BaseUnrecorded { base_id });
        } else if received.saturating_add(retention_ms) > pruned {
            findings.push(Finding::Retention {
                base_id,
                received_at_ms: received,
                deleted_by_ms: pruned,
                retention_days,
                evidence: "as the journal recorded the pruning".into(),
            });
        }
    }

    Ok(VerifyReport {
        records: walk.records,
        head: (walk.end, hex::encode(walk.end_hash)),
        base_id,
        problem: walk.problem,
        findings,
        anchors: (opts.anchors.len(), held),
        checkpoints: summary,
        archive,
    })
}

/// What the archive walk found, and whether archive and journal are one chain: the archive
/// holds every pruned record (up to the base, with the base's hash) and agrees with the
/// journal on the records both hold.
fn archive_summary(
    dir: &Path,
    arch: &super::archive::verify::ArchiveWalk,
    (base_id, base_hash): (u64, &[u8; 32]),
    journal_from: Option<u64>,
    journal_hashes: &HashMap<u64, [u8; 32]>,
) -> ArchiveSummary {
    use super::archive::verify::SegmentProblem;
    // Where the archive must begin: as the journal recorded it at the first sealing, or as
    // the segments say; records before it were pruned before quantrac kept an archive.
    let from = match (journal_from, arch.segments) {
        (Some(f), _) => f,
        (None, 0) => 1,
        (None, _) => arch.from,
    };
    let end = arch.end.map_or(from.saturating_sub(1), |(id, _)| id);
    let mut problem = arch.problem.clone();
    if problem.is_none() && arch.segments > 0 && arch.from != from {
        problem = Some(SegmentProblem::Begins {
            journal: from,
            archive: arch.from,
        });
    }
    if problem.is_none() && base_id >= from {
        if end < base_id {
            problem = Some(SegmentProblem::Short { end, base_id });
        } else if arch.hashes.get(&base_id) != Some(base_hash) {
            problem = Some(SegmentProblem::Disagrees { id: base_id });
        }
    }
    if problem.is_none() {
        if let Some((id, hash)) = arch.end {
            if journal_hashes.get(&id).is_some_and(|h| h != &hash) {
                problem = Some(SegmentProblem::Disagrees { id });
            }
        }
    }
    ArchiveSummary {
        dir: dir.display().to_string(),
        from,
        segments: arch.segments,
        records: arch.records,
        end,
        signed: arch.signed,
        problem,
    }
}

/// Checks every checkpoint against the chain (and its signature, with keys given), adds what
/// disagrees to `findings`, and returns the summary and the newest checkpoint that holds.
fn check_checkpoints(
    all: &[Signed],
    opts: &Options,
    chain: &ChainView,
    findings: &mut Vec<Finding>,
) -> (CheckpointSummary, Option<checkpoint::Checkpoint>) {
    let retention_ms = i64::try_from(opts.retention.as_millis()).unwrap_or(i64::MAX);
    let keys = &opts.public_keys;
    let mut summary = CheckpointSummary {
        found: all.len(),
        signatures_checked: !keys.is_empty(),
        ..CheckpointSummary::default()
    };
    let mut newest = None;
    for s in all {
        let c = &s.checkpoint;
        let mut holds = true;
        if !keys.is_empty() && !keys.iter().any(|k| k.verifies(c, &s.signature)) {
            holds = false;
            findings.push(Finding::Signature {
                row: s.row,
                at_ms: c.at_ms,
                head_id: c.head_id,
                other_key: (!keys.iter().any(|k| k.0[..] == s.public_key[..]))
                    .then(|| hex::encode(&s.public_key)),
            });
        }
        for (what, id, hash) in [
            ("head", c.head_id, c.head_hash),
            ("base", c.base_id, c.base_hash),
        ] {
            match chain.check(id, &hash) {
                // Pruned since it was signed: the chain no longer has it to compare.
                Ok(()) | Err(Mismatch::Pruned { .. }) => {}
                // The chain's own problem says why.
                Err(Mismatch::Unreachable { .. }) => holds = false,
                Err(mismatch) => {
                    holds = false;
                    findings.push(Finding::Checkpoint {
                        row: s.row,
                        at_ms: c.at_ms,
                        what,
                        id,
                        hash: hex::encode(hash),
                        mismatch,
                    });
                }
            }
        }
        if c.base_id > 0 && c.base_received_at_ms.saturating_add(retention_ms) > c.at_ms {
            holds = false;
            findings.push(Finding::Retention {
                base_id: c.base_id,
                received_at_ms: c.base_received_at_ms,
                deleted_by_ms: c.at_ms,
                retention_days: opts.retention.as_secs() / 86_400,
                evidence: format!("as signed checkpoint {} says", s.row),
            });
        }
        if holds {
            summary.holding += 1;
            summary.newest = Some((c.at_ms, c.head_id));
            newest = Some(*c);
        }
    }
    (summary, newest)
}

/// The chain as the walk found it, to check claimed `(id, hash)` pairs against.
struct ChainView {
    base_id: u64,
    base_hash: [u8; 32],
    /// The last verified record.
    end: u64,
    /// Where the chain is broken, when it is broken before its end.
    broken: Option<u64>,
    /// The hash of every verified record that a claim names.
    hashes: HashMap<u64, [u8; 32]>,
    /// The same, from the archive's segments.
    archived: HashMap<u64, [u8; 32]>,
}

impl ChainView {
    fn check(&self, id: u64, hash: &[u8; 32]) -> Result<(), Mismatch> {
        if let Some(h) = self.archived.get(&id).filter(|_| id <= self.base_id) {
            return if h == hash {
                Ok(())
            } else {
                Err(Mismatch::Differs {
                    found: hex::encode(h),
                })
            };
        }
        if id < self.base_id {
            return Err(Mismatch::Pruned {
                base_id: self.base_id,
            });
        }
        let found = if id == self.base_id {
            Some(self.base_hash)
        } else {
            self.hashes.get(&id).copied()
        };
        match (found, self.broken) {
            (Some(h), _) if h == *hash => Ok(()),
            (Some(h), _) => Err(Mismatch::Differs {
                found: hex::encode(h),
            }),
            (None, Some(at)) => Err(Mismatch::Unreachable { at }),
            (None, None) => Err(Mismatch::Missing { end: self.end }),
        }
    }
}

/// What one walk over the chain found.
struct Walk {
    records: u64,
    /// The last verified record and its hash (the base when none was).
    end: u64,
    end_hash: [u8; 32],
    problem: Option<Problem>,
    /// Hashes of the verified records whose ids were asked for.
    hashes: HashMap<u64, [u8; 32]>,
}

/// Recomputes the chain from the base, stops at the first problem, and keeps the hashes of
/// the records in `wanted`.
fn walk(
    conn: &Connection,
    base_id: u64,
    base_hash: [u8; 32],
    wanted: &BTreeSet<u64>,
) -> Result<Walk, Error> {
    let head_id = schema::get_u64(conn, key::HEAD_ID)?;
    let head_hash = schema::get_hash(conn, key::HEAD_HASH)?;
    let mut w = Walk {
        records: 0,
        end: base_id,
        end_hash: base_hash,
        problem: None,
        hashes: HashMap::new(),
    };
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM messages ORDER BY id"))?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let rec = Record::read(conn, row)?;
        if rec.id > w.end + 1 {
            w.problem = Some(Problem::Missing {
                id: w.end + 1,
                next: rec.id,
            });
            return Ok(w);
        }
        let expected = rec.hash_at(&w.end_hash, rec.id);
        if rec.hash == Some(expected) && rec.consistent() && rec.id == w.end + 1 {
            w.records += 1;
            w.end = rec.id;
            w.end_hash = expected;
            if wanted.contains(&rec.id) {
                w.hashes.insert(rec.id, expected);
            }
            continue;
        }
        if let Some(t) = rec.retyped {
            w.problem = Some(Problem::Retyped {
                id: rec.id,
                topic: rec.topic,
                received_at_ms: rec.received_at_ms,
                column: t.column,
                found: t.found,
                expected: t.expected,
            });
            return Ok(w);
        }
        w.problem = Some(match displaced(conn, &rec, &w.end_hash)? {
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
        });
        return Ok(w);
    }
    w.problem = if w.end < head_id {
        Some(Problem::Truncated {
            last: w.end,
            head: head_id,
        })
    } else if w.end != head_id || w.end_hash != head_hash {
        Some(Problem::HeadMismatch {
            id: w.end,
            recorded: format!("{} for record {head_id}", hex::encode(head_hash)),
            found: hex::encode(w.end_hash),
        })
    } else {
        None
    };
    Ok(w)
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
