//! The sealed archive: every record the journal prunes is first written here, in segments of
//! one local day (several for a day of more than 10,000 records), in an open format, and never
//! rewritten.
//!
//! # Format
//! A segment is two files in `journal.archive_dir` (default: `archive/` in the journal
//! folder), named after the local day (in `stations.timezone`) its records were received on
//! and its first record id, `2026-11-29_000000000123`:
//! - `….jsonl.gz`: gzip'd JSON Lines, one [`Line`] per record in id order: id, receive time,
//!   topic, station, the payload exactly as received (base64, and as text when it is UTF-8),
//!   its rejections, its InfluxDB points (line protocol) and its readings (those points taken
//!   apart into columns), the hash of the record before it and its own chain hash. Everything the chain hash covers is there, so
//!   the chain can be recomputed from a segment alone ([`super::chain`]). DuckDB reads it
//!   with `read_json_auto('….jsonl.gz')`, pandas with `read_json(…, lines=True)`.
//! - `….manifest.json`: a [`Manifest`]: first and last record id, the hash before the first
//!   record, the first and last chain hash, the record count, the SHA-256 of the `.jsonl.gz`
//!   file, and with `journal.signing_key_file` an Ed25519 signature over all of that.
//!
//! # Invariants
//! 1. **Sealed before pruned.** The journal seals every local day that is over (all its
//!    records, whatever InfluxDB has) when it prunes, and deletes only records a segment on
//!    disk holds ([`super::Journal::prune`]): pruning without a sealed segment cannot happen.
//! 2. **Written once.** Each file is written to a temporary name, fsynced, renamed, and the
//!    folder fsynced. A segment that already exists (a crash between sealing and pruning) is
//!    compared, never replaced: the gzip stream carries no time, so the same records give the
//!    same bytes.
//! 3. **Contiguous.** Segments hold consecutive id ranges: the archive and the journal are
//!    one chain from record 1 ([`verify`] walks it).

pub mod history;
pub mod readings;
mod seal;
pub mod verify;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{NaiveDate, TimeZone};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::chain::{record_hash, RecordRef, RejectionRow};
use super::Error;
use crate::config::SigningKey;

pub(crate) use seal::seal_finished_days;

/// `format` of every manifest this build writes.
pub const FORMAT: &str = "quantrac-archive-v1";

/// Separates segment signatures from checkpoint signatures made with the same key.
const SIGN_DOMAIN: &[u8] = b"quantrac-segment-v1";

/// The folder name of the default archive, inside the journal folder.
pub const DEFAULT_DIR: &str = "archive";

/// One record in a segment: a line of JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub id: u64,
    /// Receive time, RFC 3339 UTC with milliseconds (for people and SQL; the hash covers
    /// `received_at_ms`).
    pub received_at: String,
    pub received_at_ms: i64,
    pub topic: String,
    pub station: Option<String>,
    /// The payload as text, when it is UTF-8 (`null` otherwise).
    pub payload: Option<String>,
    /// The payload bytes exactly as received.
    pub payload_base64: String,
    pub rejections: Vec<LineRejection>,
    pub points: Vec<LinePoint>,
    /// The `reading` points taken apart (derived from `points`, which the hash covers).
    pub readings: Vec<readings::LineReading>,
    /// Chain hash of the record before (hex; 64 zeros before record 1).
    pub prev_hash: String,
    /// This record's chain hash (hex).
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineRejection {
    pub seq: u64,
    pub reading: Option<u64>,
    pub reason: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinePoint {
    pub id: u64,
    pub line: String,
}

impl Line {
    /// The payload bytes; `None` when `payload_base64` is not base64.
    pub fn payload_bytes(&self) -> Option<Vec<u8>> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(&self.payload_base64)
            .ok()
    }

    /// The chain hash this line's content gives after `prev`; `None` when the line cannot be
    /// what quantrac wrote (the payload is not base64, its text differs from its bytes, or
    /// its readings are not those of its points).
    pub fn recompute(&self, prev: &[u8; 32]) -> Option<[u8; 32]> {
        let payload = self.payload_bytes()?;
        let text = std::str::from_utf8(&payload).ok();
        if text != self.payload.as_deref()
            || !readings::agree(
                &self.readings,
                &readings::readings(self.points.iter().map(|p| p.line.as_str())),
            )
        {
            return None;
        }
        let rejections: Vec<RejectionRow> = self
            .rejections
            .iter()
            .map(|r| RejectionRow {
                seq: r.seq,
                reading: r.reading,
                reason: r.reason.clone(),
                detail: r.detail.clone(),
            })
            .collect();
        let points: Vec<(u64, String)> =
            self.points.iter().map(|p| (p.id, p.line.clone())).collect();
        Some(record_hash(
            prev,
            RecordRef {
                id: self.id,
                received_at_ms: self.received_at_ms,
                topic: &self.topic,
                payload: &payload,
                station: self.station.as_deref(),
            },
            &rejections,
            &points,
        ))
    }
}

/// A segment's signature by the operator's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentSignature {
    /// When it was signed, Unix epoch milliseconds.
    pub at_ms: i64,
    /// The Ed25519 public key (hex).
    pub public_key: String,
    /// Ed25519 signature (hex) of [`Manifest::signed_message`].
    pub signature: String,
}

/// What a segment holds, written beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    /// The local day (`YYYY-MM-DD`) the records were received on, in `timezone`.
    pub day: String,
    pub timezone: String,
    /// The segment file's name.
    pub file: String,
    pub first_id: u64,
    pub last_id: u64,
    /// The chain hash of the record before the first (hex).
    pub prev_hash: String,
    pub first_hash: String,
    pub last_hash: String,
    pub records: u64,
    /// The first record the archive holds (1, unless the journal was pruned before it kept
    /// an archive); every segment of an archive says the same.
    pub archive_from: u64,
    /// SHA-256 of the segment file (hex).
    pub sha256: String,
    /// When it was sealed (RFC 3339 UTC).
    pub sealed_at: String,
    pub signature: Option<SegmentSignature>,
}

impl Manifest {
    /// The bytes the signature covers: `"quantrac-segment-v1" ‖ at_ms ‖ first_id ‖
    /// prev_hash ‖ last_id ‖ last_hash ‖ sha256 ‖ archive_from`, integers 8-byte big-endian,
    /// hashes raw.
    pub fn signed_message(&self, at_ms: i64) -> Option<Vec<u8>> {
        let mut m = SIGN_DOMAIN.to_vec();
        m.extend_from_slice(&at_ms.to_be_bytes());
        m.extend_from_slice(&self.first_id.to_be_bytes());
        m.extend_from_slice(&hash_hex(&self.prev_hash)?);
        m.extend_from_slice(&self.last_id.to_be_bytes());
        m.extend_from_slice(&hash_hex(&self.last_hash)?);
        m.extend_from_slice(&hash_hex(&self.sha256)?);
        m.extend_from_slice(&self.archive_from.to_be_bytes());
        Some(m)
    }
}

/// The archive folder of these settings: `journal.archive_dir`, or `archive/` in the journal
/// folder.
pub fn configured_dir(s: &crate::config::JournalSettings) -> PathBuf {
    s.archive_dir
        .clone()
        .unwrap_or_else(|| s.path.join(DEFAULT_DIR))
}

/// A 32-byte hash from hex.
pub fn hash_hex(s: &str) -> Option<[u8; 32]> {
    hex::decode(s).ok()?.try_into().ok()
}

/// The files of one segment, by its name (`DAY_FIRSTID`).
pub fn segment_file(name: &str) -> String {
    format!("{name}.jsonl.gz")
}

pub fn manifest_file(name: &str) -> String {
    format!("{name}.manifest.json")
}

/// A segment's name: its local day and first record id.
pub fn segment_name(day: NaiveDate, first_id: u64) -> String {
    format!("{}_{first_id:012}", day.format("%Y-%m-%d"))
}

/// The first record id a segment name gives (`None`: not a segment name).
pub fn first_id_of(name: &str) -> Option<u64> {
    let (day, id) = name.split_once('_')?;
    NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
    id.parse().ok()
}

/// The local day of `ms` in `tz`.
pub fn local_day(ms: i64, tz: Tz) -> NaiveDate {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .with_timezone(&tz)
        .date_naive()
}

/// The instant (Unix ms) the local day `day` starts in `tz` (its first existing instant).
pub fn day_start_ms(day: NaiveDate, tz: Tz) -> i64 {
    let midnight = day.and_hms_opt(0, 0, 0).expect("midnight exists");
    for hour in 0..4 {
        let t = midnight + chrono::Duration::hours(hour);
        if let Some(dt) = tz.from_local_datetime(&t).earliest() {
            return dt.timestamp_millis();
        }
    }
    midnight.and_utc().timestamp_millis()
}

/// RFC 3339 UTC with milliseconds.
pub fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A sealed segment as the writer knows it.
#[derive(Debug, Clone)]
struct Sealed {
    name: String,
    first_id: u64,
    last_id: u64,
    last_hash: [u8; 32],
}

/// The archive the journal writer seals into.
pub struct Archive {
    dir: PathBuf,
    tz: Tz,
    key: Option<Arc<SigningKey>>,
    segments: Vec<Sealed>,
    /// What the first segment's manifest says the archive begins with.
    from: Option<u64>,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive")
            .field("dir", &self.dir)
            .field("tz", &self.tz)
            .field("segments", &self.segments.len())
            .finish_non_exhaustive()
    }
}

impl Archive {
    /// The archive in `dir` (which need not exist yet): reads the manifests already there.
    pub fn open(dir: &Path, tz: Tz, key: Option<Arc<SigningKey>>) -> Result<Archive, Error> {
        let mut segments = Vec::new();
        let mut from = None;
        for (name, _) in list(dir)? {
            let path = dir.join(manifest_file(&name));
            let Ok(m) = read_manifest(&path) else {
                continue; // a segment without its manifest: `verify` names it
            };
            from.get_or_insert(m.archive_from);
            if let Some(last_hash) = hash_hex(&m.last_hash) {
                segments.push(Sealed {
                    name,
                    first_id: m.first_id,
                    last_id: m.last_id,
                    last_hash,
                });
            }
        }
        segments.sort_by_key(|s| s.first_id);
        Ok(Archive {
            dir: dir.to_path_buf(),
            tz,
            key,
            segments,
            from,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last sealed record and its hash (`None`: nothing sealed).
    pub fn end(&self) -> Option<(u64, [u8; 32])> {
        self.segments.last().map(|s| (s.last_id, s.last_hash))
    }

    /// The highest id up to which records may be deleted: every record from `from` to it is
    /// in a segment whose files are on disk now. `None`: `from` itself is in none.
    pub fn sealed_through(&self, from: u64) -> Option<u64> {
        let mut upto = None;
        let mut next = from;
        for s in &self.segments {
            if s.last_id < next {
                continue;
            }
            if s.first_id > next {
                break;
            }
            let on_disk = self.dir.join(segment_file(&s.name)).is_file()
                && self.dir.join(manifest_file(&s.name)).is_file();
            if !on_disk {
                break;
            }
            upto = Some(s.last_id);
            next = s.last_id + 1;
        }
        upto
    }
}

/// `(name, has segment file)` of every segment in `dir` (by manifest or segment file), sorted
/// by first record id; an absent folder has none.
pub fn list(dir: &Path) -> Result<Vec<(String, bool)>, Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Io {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut names = std::collections::BTreeMap::new();
    for e in entries {
        let e = e.map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let file = e.file_name().to_string_lossy().into_owned();
        if let Some(name) = file.strip_suffix(".manifest.json") {
            if first_id_of(name).is_some() {
                names.entry(name.to_string()).or_insert(false);
            }
        } else if let Some(name) = file.strip_suffix(".jsonl.gz") {
            if first_id_of(name).is_some() {
                names.insert(name.to_string(), true);
            }
        }
    }
    let mut all: Vec<(String, bool)> = names.into_iter().collect();
    all.sort_by_key(|(n, _)| (first_id_of(n), n.clone()));
    Ok(all)
}

pub fn read_manifest(path: &Path) -> Result<Manifest, String> {
    let text = std::fs::read(path).map_err(|e| e.to_string())?;
    serde_json::from_slice(&text).map_err(|e| e.to_string())
}

/// SHA-256 of a file (hex).
pub fn file_sha256(path: &Path) -> io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    io::copy(&mut f, &mut HashWriter(&mut h))?;
    Ok(hex::encode(h.finalize()))
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, fsynced, renamed
/// into place, the folder fsynced. An existing `path` is never replaced: `Ok(false)` when it
/// holds the same bytes, an error when it holds others.
pub fn write_once(path: &Path, bytes: &[u8]) -> Result<bool, Error> {
    let io_err = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    if path.exists() {
        let existing = std::fs::read(path).map_err(io_err)?;
        if existing == bytes {
            return Ok(false);
        }
        return Err(Error::Corrupt(format!(
            "archive file {} exists with other content; it is never rewritten",
            path.display()
        )));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    {
        let mut f = std::fs::File::create(&tmp).map_err(io_err)?;
        f.write_all(bytes).map_err(io_err)?;
        f.sync_all().map_err(io_err)?;
    }
    std::fs::rename(&tmp, path).map_err(io_err)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err)?;
    Ok(true)
}

/// Every record line of a segment file, in file order; `Err` with why when the file does not
/// decompress or a line is not a record.
pub fn read_lines(path: &Path) -> Result<Vec<Line>, String> {
    use io::BufRead as _;
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let gz = flate2::read::GzDecoder::new(io::BufReader::new(f));
    let mut out = Vec::new();
    for (i, line) in io::BufReader::new(gz).lines().enumerate() {
        let line = line.map_err(|e| format!("the file does not decompress: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(&line)
                .map_err(|e| format!("line {} is not an archive record: {e}", i + 1))?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
