//! What `verify` found, and how it reads: the report, its problems and findings, the anchors
//! and options it was given.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::super::checkpoint::PublicKey;
use super::super::schema;

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
    /// What anchors, checkpoints and the retention period contradict (empty = nothing).
    pub findings: Vec<Finding>,
    /// Anchors given, and how many hold.
    pub anchors: (usize, usize),
    /// Checkpoints in the journal, how many hold (agree with the chain and, with keys given,
    /// carry a valid signature), whether signatures were checked, and the newest that holds.
    pub checkpoints: CheckpointSummary,
    /// The archive of pruned records.
    pub archive: ArchiveSummary,
}

/// What the walk over the archive's segments found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveSummary {
    /// The folder walked.
    pub dir: String,
    /// The first record the archive holds (records before it were pruned before quantrac
    /// kept an archive).
    pub from: u64,
    pub segments: usize,
    pub records: u64,
    /// The last record of the last segment that verified (0: none).
    pub end: u64,
    /// Segments whose signature holds with the given public keys.
    pub signed: usize,
    /// The first problem of the archive, or between archive and journal.
    pub problem: Option<crate::journal::archive::verify::SegmentProblem>,
}

/// What the signed checkpoints of a journal showed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointSummary {
    pub found: usize,
    pub holding: usize,
    pub signatures_checked: bool,
    /// `(written at, head id)` of the newest checkpoint that holds.
    pub newest: Option<(i64, u64)>,
}

impl VerifyReport {
    /// The chain holds and nothing outside it contradicts it.
    pub fn ok(&self) -> bool {
        self.problem.is_none() && self.findings.is_empty() && self.archive.problem.is_none()
    }
}

/// A record id and its chain hash, as published by the operator (`ID:HASH`, hash in hex).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    pub id: u64,
    pub hash: [u8; 32],
}

impl FromStr for Anchor {
    type Err = String;

    fn from_str(s: &str) -> Result<Anchor, String> {
        let bad = || format!("{s:?} is not an anchor RECORD_ID:HASH (HASH: 64 hex digits)");
        let (id, hash) = s.trim().split_once(':').ok_or_else(bad)?;
        let id = id.trim().parse().map_err(|_| bad())?;
        let hash = hex::decode(hash.trim())
            .ok()
            .and_then(|h| schema::to_hash(&h))
            .ok_or_else(bad)?;
        Ok(Anchor { id, hash })
    }
}

/// What to check beyond the chain itself.
#[derive(Debug, Clone)]
pub struct Options {
    pub anchors: Vec<Anchor>,
    /// Keys whose signatures are accepted on checkpoints; empty: signatures are not checked
    /// (the checkpoints' ids and hashes still are).
    pub public_keys: Vec<PublicKey>,
    /// The retention period the chain base must respect.
    pub retention: Duration,
    /// The archive of pruned records; default: `archive/` in the journal folder.
    pub archive_dir: Option<std::path::PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        let days = crate::config::JournalSettings::default().retention_days;
        Options {
            anchors: Vec::new(),
            public_keys: Vec::new(),
            retention: Duration::from_secs(u64::from(days) * 86_400),
            archive_dir: None,
        }
    }
}

/// How a claimed `(id, hash)` fails to match the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The chain gives record `id` another hash (hex).
    Differs { found: String },
    /// The record was pruned: the chain now starts after record `base_id`.
    Pruned { base_id: u64 },
    /// The journal has no such record: its chain ends at record `end`.
    Missing { end: u64 },
    /// The chain is broken before the record (record `at`), so it cannot be checked.
    Unreachable { at: u64 },
}

/// Something outside the chain that contradicts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// An anchor that does not hold.
    Anchor {
        id: u64,
        hash: String,
        mismatch: Mismatch,
    },
    /// A checkpoint whose signature no given key accepts.
    Signature {
        row: u64,
        at_ms: i64,
        head_id: u64,
        /// The key stored with it, when that is not one of the given keys.
        other_key: Option<String>,
    },
    /// A checkpoint whose head (or base) is not what the chain has.
    Checkpoint {
        row: u64,
        at_ms: i64,
        /// `"head"` or `"base"`.
        what: &'static str,
        id: u64,
        hash: String,
        mismatch: Mismatch,
    },
    /// Records that no valid signed checkpoint covers.
    Unsigned {
        from: u64,
        to: u64,
        /// `(written at, head id)` of the newest checkpoint that holds.
        newest: Option<(i64, u64)>,
    },
    /// The chain base moved after the newest valid signed checkpoint.
    BaseUnsigned {
        base_id: u64,
        signed_base_id: u64,
        at_ms: i64,
    },
    /// Records were deleted (the chain starts after `base_id`) but no pruning recorded it.
    BaseUnrecorded { base_id: u64 },
    /// Record `base_id` was deleted sooner than the retention period after it was received.
    Retention {
        base_id: u64,
        received_at_ms: i64,
        deleted_by_ms: i64,
        retention_days: u64,
        /// What says so: the journal's own record, or a signed checkpoint.
        evidence: String,
    },
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
    /// A column of the record (or of one of its points or rejections) holds another SQLite
    /// type than quantrac wrote: `column` as `table.column`, `found` the type it now holds.
    Retyped {
        id: u64,
        topic: String,
        received_at_ms: i64,
        column: &'static str,
        found: &'static str,
        expected: &'static str,
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
            Problem::Retyped {
                id,
                topic,
                received_at_ms,
                column,
                found,
                expected,
            } => write!(
                f,
                "record {id} (topic {topic}, received {}) was altered after it was written: \
                 its {column} holds {found} where quantrac wrote {expected}",
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

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Differs { found } => write!(f, "the journal's chain gives it hash {found}"),
            Mismatch::Pruned { base_id } => write!(
                f,
                "it was pruned (the chain now starts after record {base_id}); it cannot be \
                 checked here"
            ),
            Mismatch::Missing { end } => write!(
                f,
                "the journal has no such record: its chain ends at record {end}"
            ),
            Mismatch::Unreachable { at } => write!(
                f,
                "it cannot be checked: the chain is broken at record {at}, before it"
            ),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Anchor { id, hash, mismatch } => {
                write!(f, "anchor {id}:{hash} does not hold: {mismatch}")
            }
            Finding::Signature {
                row,
                at_ms,
                head_id,
                other_key,
            } => {
                write!(
                    f,
                    "checkpoint {row} (written {}, record {head_id}) has no valid signature \
                     by the given public key",
                    time(*at_ms)
                )?;
                match other_key {
                    Some(k) => write!(f, ": it names key {k}"),
                    None => write!(f, ": it was changed after it was signed, or forged"),
                }
            }
            Finding::Checkpoint {
                row,
                at_ms,
                what,
                id,
                hash,
                mismatch,
            } => write!(
                f,
                "checkpoint {row} (written {}) signed record {id} as the chain {what} with hash \
                 {hash}, but {mismatch}",
                time(*at_ms)
            ),
            Finding::Unsigned { from, to, newest } => {
                write!(
                    f,
                    "records {from} to {to} are not covered by a signed checkpoint"
                )?;
                match newest {
                    Some((at, head)) => write!(
                        f,
                        " (the newest valid one, written {}, covers up to record {head}): they \
                         were added or rewritten after it, or quantrac was still running when \
                         the copy was made",
                        time(*at)
                    ),
                    None => write!(f, " (the journal has no valid one)"),
                }
            }
            Finding::BaseUnsigned {
                base_id,
                signed_base_id,
                at_ms,
            } => write!(
                f,
                "the chain now starts after record {base_id}, but the newest valid signed \
                 checkpoint (written {}) has it start after record {signed_base_id}: the base \
                 was moved without a signed pruning",
                time(*at_ms)
            ),
            Finding::BaseUnrecorded { base_id } => write!(
                f,
                "records up to {base_id} were deleted, but the journal recorded no pruning of \
                 them: this contradicts the retention period (they were deleted by hand)"
            ),
            Finding::Retention {
                base_id,
                received_at_ms,
                deleted_by_ms,
                retention_days,
                evidence,
            } => write!(
                f,
                "records up to {base_id} were deleted before their retention period of \
                 {retention_days} days: record {base_id} was received {} and deleted by {} \
                 ({evidence})",
                time(*received_at_ms),
                time(*deleted_by_ms)
            ),
        }
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (id, hash) = &self.head;
        match (&self.problem, self.findings.len()) {
            (None, 0) if self.archive.problem.is_some() => write!(
                f,
                "journal NOT intact: its archive is not (below). The journal's own chain holds \
                 ({} records, chain head record {id} hash {hash})",
                self.records
            )?,
            (None, 0) => write!(
                f,
                "journal intact: {} records verified, chain head record {id} hash {hash}",
                self.records
            )?,
            (None, n) => write!(
                f,
                "journal NOT intact: {n} problem(s) listed below. The stored chain agrees with \
                 itself ({} records, chain head record {id} hash {hash}), but not with the \
                 evidence outside it",
                self.records
            )?,
            (Some(p), _) => write!(
                f,
                "journal NOT intact: {p}. {} records before it verified (last good record {id}, \
                 hash {hash})",
                self.records
            )?,
        }
        if self.base_id > 0 {
            let retention_contradicted = self.findings.iter().any(|x| {
                matches!(
                    x,
                    Finding::Retention { .. }
                        | Finding::BaseUnrecorded { .. }
                        | Finding::BaseUnsigned { .. }
                )
            });
            if retention_contradicted {
                write!(
                    f,
                    "; records up to {} were deleted, NOT after their retention period (below)",
                    self.base_id
                )?;
            } else {
                write!(
                    f,
                    "; records up to {} were deleted after their retention period, the chain \
                     continues from the hash recorded for record {}",
                    self.base_id, self.base_id
                )?;
            }
        }
        for x in &self.findings {
            write!(f, "\n- {x}")?;
        }
        let a = &self.archive;
        match &a.problem {
            Some(p) => write!(f, "\narchive NOT intact: {p}")?,
            None if a.segments > 0 => {
                write!(
                    f,
                    "\narchive intact: {} segments, {} records ({} to {}) verified",
                    a.segments, a.records, a.from, a.end
                )?;
                if a.from > 1 {
                    write!(
                        f,
                        " (records before {} were pruned before quantrac kept an archive)",
                        a.from
                    )?;
                }
            }
            None => {}
        }
        if self.checkpoints.signatures_checked && a.segments > 0 {
            write!(
                f,
                "; {} of {} segments signed with the given public key",
                a.signed, a.segments
            )?;
        }
        let (given, held) = self.anchors;
        if given > 0 {
            write!(f, "\nanchors: {held} of {given} hold")?;
        }
        let c = &self.checkpoints;
        if c.signatures_checked {
            write!(
                f,
                "\nsigned checkpoints: {} of {} hold with the given public key",
                c.holding, c.found
            )?;
            if let Some((at, head)) = c.newest {
                write!(
                    f,
                    "; the newest, written {}, covers records up to {head}",
                    time(at)
                )?;
            }
        } else if c.found > 0 {
            write!(
                f,
                "\n{} checkpoints agree with the chain ({} found); their signatures were not \
                 checked (give --public-key)",
                c.holding, c.found
            )?;
        }
        Ok(())
    }
}
