//! `quantrac export` and `quantrac verify --export`: one station's records over a period, in
//! a folder a third party checks without quantrac's journal.
//!
//! # The folder
//! - `records.jsonl`: every record of the chain, in id order, from the last one received
//!   before the period (so the verifier sees where the period starts) to the first record at
//!   or after the period's last record of the station that a signed checkpoint or a signed
//!   segment vouches for (or the chain head, without signatures; or `--through ID`). One
//!   [`Line`] each, as in the archive: content, `prev_hash`, `hash`. Records of other stations
//!   received in between are there in full: a record's chain hash can only be recomputed from
//!   its whole content, so a hash alone would let anyone put another record in its place.
//! - `checkpoints.json`: the signed checkpoints of the journal and the signed segment
//!   manifests whose head falls inside the range.
//! - `manifest.json`: the station, the period, the id range, the hash before the first record
//!   and of the last, the number of records, the SHA-256 of `records.jsonl`, and, when the
//!   operator's signing key is configured, an Ed25519 signature over all of that.
//!
//! # The proof
//! [`verify_export`] recomputes every record's hash from its content and the hash before it,
//! so one changed byte anywhere changes every hash after it; then the last hashes must be the
//! ones outside evidence names: an anchor `ID:HASH` published earlier, or a checkpoint signed
//! with the operator's key (`--public-key`). Whoever edits the folder can recompute the
//! hashes, but cannot make them match a published anchor or forge a signature.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::archive::{self, hash_hex, history, Line, Manifest};
use super::chain::GENESIS;
use super::checkpoint::{self, Checkpoint, PublicKey};
use super::schema::{self, Mode};
use super::{Anchor, Error};
use crate::config::SigningKey;

pub const FORMAT: &str = "quantrac-export-v1";
const SIGN_DOMAIN: &[u8] = b"quantrac-export-v1";

/// What to export.
#[derive(Debug, Clone)]
pub struct Request {
    /// A station id (`outfall-1`) or its whole key (`park/site/station`).
    pub station: String,
    /// `[from_ms, to_ms)`, by receive time, and the text they were given as.
    pub from_ms: i64,
    pub to_ms: i64,
    pub from: String,
    pub to: String,
    /// Extend the range to this record at least (to reach an anchor).
    pub through: Option<u64>,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportManifest {
    pub format: String,
    pub station: String,
    pub from: String,
    pub to: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub first_id: u64,
    pub last_id: u64,
    pub prev_hash: String,
    pub last_hash: String,
    pub records: u64,
    /// Records of the station received in the period.
    pub station_records: u64,
    pub sha256: String,
    pub created_at: String,
    pub signature: Option<archive::SegmentSignature>,
}

impl ExportManifest {
    /// `"quantrac-export-v1" ‖ at_ms ‖ the manifest without its signature, as JSON`.
    fn signed_message(&self, at_ms: i64) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.signature = None;
        let mut m = SIGN_DOMAIN.to_vec();
        m.extend_from_slice(&at_ms.to_be_bytes());
        m.extend_from_slice(&serde_json::to_vec(&unsigned).expect("a manifest serialises"));
        m
    }
}

/// A signed statement in `checkpoints.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Signed {
    /// A checkpoint of the journal (see [`checkpoint`]).
    Journal {
        at_ms: i64,
        base_id: u64,
        base_hash: String,
        base_received_at_ms: i64,
        head_id: u64,
        head_hash: String,
        public_key: String,
        signature: String,
    },
    /// A sealed segment's manifest with its signature.
    Segment { manifest: Manifest },
}

impl Signed {
    /// The record it vouches for, and that record's hash.
    fn head(&self) -> Option<(u64, [u8; 32])> {
        match self {
            Signed::Journal {
                head_id, head_hash, ..
            } => Some((*head_id, hash_hex(head_hash)?)),
            Signed::Segment { manifest } => {
                Some((manifest.last_id, hash_hex(&manifest.last_hash)?))
            }
        }
    }

    /// Whether one of `keys` signed it.
    fn signed_by(&self, keys: &[PublicKey]) -> bool {
        match self {
            Signed::Journal {
                at_ms,
                base_id,
                base_hash,
                base_received_at_ms,
                head_id,
                head_hash,
                signature,
                ..
            } => {
                let (Some(bh), Some(hh), Ok(sig)) = (
                    hash_hex(base_hash),
                    hash_hex(head_hash),
                    hex::decode(signature),
                ) else {
                    return false;
                };
                let c = Checkpoint {
                    at_ms: *at_ms,
                    base_id: *base_id,
                    base_hash: bh,
                    base_received_at_ms: *base_received_at_ms,
                    head_id: *head_id,
                    head_hash: hh,
                };
                keys.iter().any(|k| k.verifies(&c, &sig))
            }
            Signed::Segment { manifest } => manifest.signature.as_ref().is_some_and(|s| {
                let (Some(msg), Ok(sig)) =
                    (manifest.signed_message(s.at_ms), hex::decode(&s.signature))
                else {
                    return false;
                };
                keys.iter().any(|k| verifies(k, &msg, &sig))
            }),
        }
    }
}

fn verifies(k: &PublicKey, msg: &[u8], sig: &[u8]) -> bool {
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &k.0)
        .verify(msg, sig)
        .is_ok()
}

fn matches_station(line: &Line, station: &str) -> bool {
    line.station
        .as_deref()
        .is_some_and(|s| s == station || s.rsplit('/').next() == Some(station))
}

/// Writes the export of `req` into `out` (which must not exist or be empty), from the
/// archive and the journal; signs its manifest with `key`.
pub fn export(
    journal_dir: &Path,
    archive_dir: &Path,
    req: &Request,
    out: &Path,
    key: Option<&SigningKey>,
    now_ms: i64,
) -> Result<ExportManifest, Error> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    if std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some()) {
        return Err(Error::Request(format!(
            "{} is not empty; an export goes into a new folder",
            out.display()
        )));
    }
    // Pass 1: where the period starts and ends, and the head.
    let (mut before, mut first_in, mut last_station, mut head) = (None, None, None, 0u64);
    let mut named = std::collections::BTreeSet::new();
    history::each_record(journal_dir, archive_dir, |l| {
        head = l.id;
        if l.received_at_ms < req.from_ms {
            before = Some(l.id);
        } else if l.received_at_ms < req.to_ms {
            first_in.get_or_insert(l.id);
            if matches_station(&l, &req.station) {
                last_station = Some(l.id);
                named.extend(l.station.clone());
            }
        }
    })?;
    if named.len() > 1 {
        let all: Vec<String> = named.into_iter().collect();
        return Err(Error::Request(format!(
            "station {} names several stations ({}): give park/site/station",
            req.station,
            all.join(", ")
        )));
    }
    let Some(last_station) = last_station else {
        return Err(Error::Request(format!(
            "no record of station {} was received from {} to {}",
            req.station, req.from, req.to
        )));
    };
    let first = before.or(first_in).unwrap_or(1);
    // The signed statements, and the first one at or after the station's last record.
    let conn = schema::open(journal_dir, Mode::ReadOnly)?;
    let mut signed: Vec<Signed> = checkpoint::read_all(&conn)?
        .into_iter()
        .map(|s| Signed::Journal {
            at_ms: s.checkpoint.at_ms,
            base_id: s.checkpoint.base_id,
            base_hash: hex::encode(s.checkpoint.base_hash),
            base_received_at_ms: s.checkpoint.base_received_at_ms,
            head_id: s.checkpoint.head_id,
            head_hash: hex::encode(s.checkpoint.head_hash),
            public_key: hex::encode(&s.public_key),
            signature: hex::encode(&s.signature),
        })
        .collect();
    for (name, _) in archive::list(archive_dir)? {
        if let Ok(m) = archive::read_manifest(&archive_dir.join(archive::manifest_file(&name))) {
            if m.signature.is_some() {
                signed.push(Signed::Segment { manifest: m });
            }
        }
    }
    let mut end = signed
        .iter()
        .filter_map(|s| s.head().map(|(id, _)| id))
        .filter(|&id| id >= last_station && id <= head)
        .min()
        .unwrap_or(head);
    if let Some(t) = req.through {
        end = end.max(t.min(head));
    }
    signed.retain(|s| s.head().is_some_and(|(id, _)| id >= first && id <= end));
    // Pass 2: the records.
    std::fs::create_dir_all(out).map_err(io(out))?;
    let mut text = Vec::new();
    let (mut prev_hash, mut last_hash, mut records, mut station_records) =
        (None, String::new(), 0u64, 0u64);
    history::each_record(journal_dir, archive_dir, |l| {
        if l.id < first || l.id > end {
            return;
        }
        prev_hash.get_or_insert(l.prev_hash.clone());
        if matches_station(&l, &req.station) && (req.from_ms..req.to_ms).contains(&l.received_at_ms)
        {
            station_records += 1;
        }
        last_hash = l.hash.clone();
        records += 1;
        text.extend(serde_json::to_vec(&l).expect("a record serialises"));
        text.push(b'\n');
    })?;
    let records_path = out.join("records.jsonl");
    archive::write_once(&records_path, &text)?;
    let mut signed_text = serde_json::to_vec_pretty(&signed).expect("checkpoints serialise");
    signed_text.push(b'\n');
    archive::write_once(&out.join("checkpoints.json"), &signed_text)?;
    let mut manifest = ExportManifest {
        format: FORMAT.into(),
        station: req.station.clone(),
        from: req.from.clone(),
        to: req.to.clone(),
        from_ms: req.from_ms,
        to_ms: req.to_ms,
        first_id: first,
        last_id: end,
        prev_hash: prev_hash.unwrap_or_else(|| hex::encode(GENESIS)),
        last_hash,
        records,
        station_records,
        sha256: hex::encode(Sha256::digest(&text)),
        created_at: archive::rfc3339_ms(now_ms),
        signature: None,
    };
    if let Some(key) = key {
        let sig = key.sign(&manifest.signed_message(now_ms));
        manifest.signature = Some(archive::SegmentSignature {
            at_ms: now_ms,
            public_key: hex::encode(key.public_key()),
            signature: hex::encode(sig),
        });
    }
    let mut m = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
    m.push(b'\n');
    archive::write_once(&out.join("manifest.json"), &m)?;
    Ok(manifest)
}

/// What [`verify_export`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportReport {
    pub station: String,
    pub period: (String, String),
    pub range: (u64, u64),
    pub records: u64,
    pub station_records: u64,
    /// The first thing wrong; `None`: every check held.
    pub problems: Vec<String>,
    /// Anchors given and held; signed statements checked and held.
    pub anchors: (usize, usize),
    pub signatures: (usize, usize),
    /// Whether a key or an anchor vouched for the end of the range.
    pub end_vouched: bool,
}

impl ExportReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl std::fmt::Display for ExportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (a, b) = self.range;
        if self.ok() {
            write!(
                f,
                "export intact: {} records (ids {a} to {b}) verified; {} of station {} \
                 received from {} to {}",
                self.records, self.station_records, self.station, self.period.0, self.period.1
            )?;
        } else {
            write!(f, "export NOT intact:")?;
            for p in &self.problems {
                write!(f, "\n- {p}")?;
            }
        }
        let (given, held) = self.anchors;
        if given > 0 {
            write!(f, "\nanchors: {held} of {given} hold")?;
        }
        let (checked, held) = self.signatures;
        if checked > 0 {
            write!(
                f,
                "\nsigned checkpoints: {held} of {checked} hold with the given public key"
            )?;
        }
        if self.ok() && !self.end_vouched {
            write!(
                f,
                "\nthe records agree with each other only: give --anchor or --public-key to \
                 check them against evidence outside the export"
            )?;
        }
        Ok(())
    }
}

/// Checks the export in `dir` against `anchors` and, with `keys`, the signatures.
pub fn verify_export(dir: &Path, anchors: &[Anchor], keys: &[PublicKey]) -> ExportReport {
    let mut r = ExportReport::default();
    let manifest: ExportManifest = match std::fs::read(dir.join("manifest.json"))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(m) => m,
        Err(e) => {
            r.problems.push(format!("manifest.json is unreadable: {e}"));
            return r;
        }
    };
    r.station = manifest.station.clone();
    r.period = (manifest.from.clone(), manifest.to.clone());
    r.range = (manifest.first_id, manifest.last_id);
    let text = match std::fs::read(dir.join("records.jsonl")) {
        Ok(t) => t,
        Err(e) => {
            r.problems.push(format!("records.jsonl is unreadable: {e}"));
            return r;
        }
    };
    if hex::encode(Sha256::digest(&text)) != manifest.sha256 {
        r.problems.push(
            "records.jsonl is not the file exported: its SHA-256 is not the manifest's".into(),
        );
    }
    // The chain, from the hash before the first record.
    let mut hashes = std::collections::HashMap::new();
    let mut prev = hash_hex(&manifest.prev_hash).unwrap_or([0xff; 32]);
    let mut next = manifest.first_id;
    let mut previous_received = None;
    for (i, raw) in text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let line: Line = match serde_json::from_slice(raw) {
            Ok(l) => l,
            Err(e) => {
                r.problems
                    .push(format!("line {} is not a record: {e}", i + 1));
                return r;
            }
        };
        if line.id != next {
            r.problems.push(format!(
                "record {next} is missing or out of place: line {} holds record {}",
                i + 1,
                line.id
            ));
            return r;
        }
        let holds = hash_hex(&line.prev_hash) == Some(prev)
            && line
                .recompute(&prev)
                .is_some_and(|h| Some(h) == hash_hex(&line.hash));
        if !holds {
            r.problems.push(format!(
                "record {} (topic {}, received {}) was altered: its content no longer matches \
                 its hash",
                line.id, line.topic, line.received_at
            ));
            return r;
        }
        prev = hash_hex(&line.hash).expect("checked just above");
        hashes.insert(line.id, prev);
        if matches_station(&line, &manifest.station)
            && (manifest.from_ms..manifest.to_ms).contains(&line.received_at_ms)
        {
            r.station_records += 1;
        }
        if line.id == manifest.first_id && line.received_at_ms >= manifest.from_ms && next > 1 {
            previous_received = Some(line.received_at_ms);
        }
        r.records += 1;
        next += 1;
    }
    if let Some(at) = previous_received {
        r.problems.push(format!(
            "the first record was received {} ms after the period began: records before it \
             that belong to the period may be missing",
            at - manifest.from_ms
        ));
    }
    if next != manifest.last_id + 1 || hash_hex(&manifest.last_hash) != Some(prev) {
        r.problems.push(format!(
            "the records end at record {} with hash {}, the manifest says record {} with hash {}",
            next.saturating_sub(1),
            hex::encode(prev),
            manifest.last_id,
            manifest.last_hash
        ));
    }
    if r.station_records != manifest.station_records || r.records != manifest.records {
        r.problems.push(format!(
            "the manifest counts {} records, {} of the station, the file holds {} and {}",
            manifest.records, manifest.station_records, r.records, r.station_records
        ));
    }
    // Evidence outside the folder.
    r.anchors.0 = anchors.len();
    for a in anchors {
        match hashes.get(&a.id) {
            Some(h) if *h == a.hash => r.anchors.1 += 1,
            Some(h) => r.problems.push(format!(
                "anchor {}:{} does not hold: the export gives record {} hash {}",
                a.id,
                hex::encode(a.hash),
                a.id,
                hex::encode(h)
            )),
            None => r.problems.push(format!(
                "anchor {}:{} names a record outside the export (records {} to {}); export \
                 again with --through {}",
                a.id,
                hex::encode(a.hash),
                manifest.first_id,
                manifest.last_id,
                a.id
            )),
        }
    }
    // A later anchor vouches for everything before it.
    if anchors.iter().any(|a| hashes.get(&a.id) == Some(&a.hash)) {
        r.end_vouched = true;
    }
    if !keys.is_empty() {
        let signed: Vec<Signed> = match std::fs::read(dir.join("checkpoints.json"))
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(s) => s,
            Err(e) => {
                r.problems
                    .push(format!("checkpoints.json is unreadable: {e}"));
                Vec::new()
            }
        };
        for s in &signed {
            r.signatures.0 += 1;
            let Some((id, hash)) = s.head() else {
                r.problems
                    .push("a signed checkpoint has no valid hash".into());
                continue;
            };
            if !s.signed_by(keys) {
                r.problems.push(format!(
                    "the signed checkpoint of record {id} has no valid signature by the given \
                     public key"
                ));
            } else if hashes.get(&id) != Some(&hash) {
                r.problems.push(format!(
                    "the signed checkpoint of record {id} says hash {}, the export gives {}",
                    hex::encode(hash),
                    hashes
                        .get(&id)
                        .map(hex::encode)
                        .unwrap_or_else(|| "none".into())
                ));
            } else {
                r.signatures.1 += 1;
                if id == manifest.last_id {
                    r.end_vouched = true;
                }
            }
        }
        match &manifest.signature {
            Some(s) => {
                let ok = hex::decode(&s.signature).is_ok_and(|sig| {
                    keys.iter()
                        .any(|k| verifies(k, &manifest.signed_message(s.at_ms), &sig))
                });
                if !ok {
                    r.problems.push(
                        "manifest.json was changed after it was signed, or signed by another key"
                            .into(),
                    );
                }
            }
            None => r
                .problems
                .push("manifest.json is not signed, though a public key was given".into()),
        }
        if !r.end_vouched {
            r.problems.push(format!(
                "no valid signature vouches for the last record {}: the records could have \
                 been recomputed",
                manifest.last_id
            ));
        }
    }
    r
}
