//! The archive's part of `quantrac verify`: every segment, in record order, as one chain.
//!
//! For each segment: its manifest must be there and name it; its file's SHA-256 must be the
//! manifest's; every line's `prev_hash` must be the hash before it and its content must hash
//! to its `hash`; ids continue from the previous segment with no gap; and, with public keys
//! given, its signature must hold. The first thing wrong is named: a segment **missing**
//! (an id range no segment holds, between two named segments), **altered** (with the record
//! when one can be named), or **reordered** (a file holding another segment's content, or
//! records out of order inside one).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::Path;

use super::{file_sha256, first_id_of, hash_hex, list, manifest_file, read_lines, segment_file};
use crate::journal::chain::GENESIS;
use crate::journal::checkpoint::PublicKey;
use crate::journal::Error;

/// The first thing wrong with the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentProblem {
    /// Records `from..=to` are in no segment: a segment was removed (`after` and `before`
    /// name its neighbours, when there are any).
    Missing {
        from: u64,
        to: u64,
        after: Option<String>,
        before: Option<String>,
    },
    /// The segment (or its manifest) is not what was sealed.
    Altered {
        segment: String,
        record: Option<u64>,
        why: String,
    },
    /// Segment file `segment` holds what was sealed as segment `holds`.
    Reordered { segment: String, holds: String },
    /// Inside `segment`, the record sealed as `id` is now at position of record `found_at`.
    RecordsReordered {
        segment: String,
        id: u64,
        found_at: u64,
    },
    /// The archive ends at record `end`, but the journal was pruned up to `base_id`.
    Short { end: u64, base_id: u64 },
    /// The archive and the journal give record `id` different hashes.
    Disagrees { id: u64 },
    /// The journal recorded that its archive begins with record `journal`; the segments begin
    /// with record `archive`.
    Begins { journal: u64, archive: u64 },
}

impl fmt::Display for SegmentProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SegmentProblem::Missing {
                from,
                to,
                after,
                before,
            } => {
                write!(
                    f,
                    "records {from} to {to} are in no segment: a segment is missing"
                )?;
                match (after, before) {
                    (Some(a), Some(b)) => write!(f, " between segments {a} and {b}"),
                    (None, Some(b)) => write!(f, " before segment {b}"),
                    (Some(a), None) => write!(f, " after segment {a}"),
                    (None, None) => Ok(()),
                }
            }
            SegmentProblem::Altered {
                segment,
                record,
                why,
            } => {
                write!(
                    f,
                    "segment {segment} was altered after it was sealed: {why}"
                )?;
                match record {
                    Some(id) => write!(f, " (record {id})"),
                    None => Ok(()),
                }
            }
            SegmentProblem::Reordered { segment, holds } => write!(
                f,
                "segments {segment} and {holds} were reordered: the file of segment {segment} \
                 holds what was sealed as segment {holds}"
            ),
            SegmentProblem::RecordsReordered {
                segment,
                id,
                found_at,
            } => write!(
                f,
                "segment {segment} was altered after it was sealed: records were reordered \
                 (record {id} is found where record {found_at} was expected)"
            ),
            SegmentProblem::Short { end, base_id } => write!(
                f,
                "records {} to {base_id} were pruned from the journal but are in no segment \
                 of the archive: a segment is missing, or they were deleted without being \
                 sealed",
                end + 1
            ),
            SegmentProblem::Begins { journal, archive } => write!(
                f,
                "the journal says its archive begins with record {journal}, the archive's \
                 manifests say record {archive}: the first segments were removed"
            ),
            SegmentProblem::Disagrees { id } => write!(
                f,
                "the archive and the journal give record {id} different hashes"
            ),
        }
    }
}

/// What one walk over the archive found.
#[derive(Debug, Clone, Default)]
pub struct ArchiveWalk {
    pub segments: usize,
    pub records: u64,
    /// The last verified record and its hash.
    pub end: Option<(u64, [u8; 32])>,
    /// Segments whose signature holds with the given keys.
    pub signed: usize,
    /// The first record the archive holds (records before it were pruned before quantrac
    /// kept an archive).
    pub from: u64,
    pub problem: Option<SegmentProblem>,
    /// Hashes of the verified records asked for.
    pub hashes: HashMap<u64, [u8; 32]>,
}

/// Walks the segments in `dir` (none when it does not exist) from record 1.
pub fn walk(dir: &Path, keys: &[PublicKey], wanted: &BTreeSet<u64>) -> Result<ArchiveWalk, Error> {
    let names = list(dir)?;
    let mut manifests = Vec::new();
    for (name, has_file) in &names {
        manifests.push((
            name.clone(),
            *has_file,
            super::read_manifest(&dir.join(manifest_file(name))),
        ));
    }
    let by_sha: HashMap<String, String> = manifests
        .iter()
        .filter_map(|(n, _, m)| m.as_ref().ok().map(|m| (m.sha256.clone(), n.clone())))
        .collect();
    let mut w = ArchiveWalk::default();
    // Where the archive begins, as its first manifest says: record 1, or the record after the
    // journal's base when quantrac began keeping an archive (every manifest must agree).
    let from = manifests
        .iter()
        .find_map(|(_, _, m)| m.as_ref().ok().map(|m| m.archive_from))
        .unwrap_or(1);
    w.from = from;
    let mut next = from;
    let mut prev = GENESIS;
    let mut prev_name: Option<String> = None;
    for (name, has_file, manifest) in manifests {
        let altered = |record, why: &str| SegmentProblem::Altered {
            segment: name.clone(),
            record,
            why: why.to_string(),
        };
        let m = match manifest {
            Ok(m) => m,
            Err(e) => {
                w.problem = Some(altered(None, &format!("its manifest is unreadable ({e})")));
                return Ok(w);
            }
        };
        if m.first_id != first_id_of(&name).unwrap_or(0) || m.file != segment_file(&name) {
            w.problem = Some(match manifests_named(&by_sha, &m.sha256) {
                Some(other) if other != name => SegmentProblem::Reordered {
                    segment: name,
                    holds: other,
                },
                _ => altered(None, "its manifest names another segment"),
            });
            return Ok(w);
        }
        if m.archive_from != from {
            w.problem = Some(altered(
                None,
                &format!(
                    "its manifest says the archive begins with record {}, the first segment's \
                     says {from}",
                    m.archive_from
                ),
            ));
            return Ok(w);
        }
        if m.first_id == from && from > 1 && prev_name.is_none() {
            // The hash before the archive's first record: the journal's base when the archive
            // began, checked by nothing here (records before it were pruned earlier).
            if let Some(h) = hash_hex(&m.prev_hash) {
                prev = h;
            }
        }
        if m.first_id > next {
            w.problem = Some(SegmentProblem::Missing {
                from: next,
                to: m.first_id - 1,
                after: prev_name,
                before: Some(name),
            });
            return Ok(w);
        }
        if m.first_id < next || hash_hex(&m.prev_hash) != Some(prev) {
            w.problem = Some(altered(
                None,
                "its manifest does not continue the chain of the segment before",
            ));
            return Ok(w);
        }
        if !has_file {
            w.problem = Some(SegmentProblem::Missing {
                from: m.first_id,
                to: m.last_id,
                after: prev_name,
                before: Some(name),
            });
            return Ok(w);
        }
        let path = dir.join(segment_file(&name));
        let sha = file_sha256(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        if sha != m.sha256 {
            if let Some(other) = manifests_named(&by_sha, &sha) {
                w.problem = Some(SegmentProblem::Reordered {
                    segment: name,
                    holds: other,
                });
                return Ok(w);
            }
        }
        let lines = match read_lines(&path) {
            Ok(l) => l,
            Err(why) => {
                w.problem = Some(altered(None, &why));
                return Ok(w);
            }
        };
        let (start_next, start_records) = (next, w.records);
        for (i, line) in lines.iter().enumerate() {
            if line.id != next {
                w.problem = Some(if lines[i..].iter().any(|l| l.id == next) {
                    SegmentProblem::RecordsReordered {
                        segment: name,
                        id: line.id,
                        found_at: next,
                    }
                } else {
                    altered(Some(next), "the record is missing from the segment")
                });
                return Ok(w);
            }
            let ok = hash_hex(&line.prev_hash) == Some(prev)
                && line
                    .recompute(&prev)
                    .is_some_and(|h| Some(h) == hash_hex(&line.hash));
            if !ok {
                w.problem = Some(altered(
                    Some(line.id),
                    "the record's content no longer matches its hash",
                ));
                return Ok(w);
            }
            prev = hash_hex(&line.hash).expect("checked just above");
            if wanted.contains(&line.id) {
                w.hashes.insert(line.id, prev);
            }
            next += 1;
            w.records += 1;
        }
        let described = m.last_id + 1 == next
            && m.records == w.records - start_records
            && hash_hex(&m.last_hash) == Some(prev)
            && next > start_next;
        if sha != m.sha256 || !described {
            w.problem = Some(altered(
                None,
                if sha != m.sha256 {
                    "its SHA-256 is not the one in its manifest"
                } else {
                    "its manifest does not describe its records"
                },
            ));
            return Ok(w);
        }
        if !keys.is_empty() {
            let holds = m.signature.as_ref().is_some_and(|s| {
                let (Ok(sig), Some(msg)) = (hex::decode(&s.signature), m.signed_message(s.at_ms))
                else {
                    return false;
                };
                keys.iter().any(|k| {
                    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &k.0)
                        .verify(&msg, &sig)
                        .is_ok()
                })
            });
            if holds {
                w.signed += 1;
            } else if m.signature.is_some() {
                w.problem = Some(altered(
                    None,
                    "its signature does not hold with the given public key",
                ));
                return Ok(w);
            }
        }
        w.segments += 1;
        w.end = Some((m.last_id, prev));
        prev_name = Some(name);
    }
    Ok(w)
}

fn manifests_named(by_sha: &HashMap<String, String>, sha: &str) -> Option<String> {
    by_sha.get(sha).cloned()
}
