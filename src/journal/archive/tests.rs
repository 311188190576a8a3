//! The archive: segments of one local day each, sealed before pruning, written once, and verified
//! with the journal as one chain.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::verify::SegmentProblem;
use super::*;
use crate::journal::checkpoint::PublicKey;
use crate::journal::{verify, verify_with, Entry, Journal, Options, Outbox};
use crate::model::{Reason, Rejection};

/// 2026-11-29 14:05 in Hanoi (07:05 UTC).
const T0: i64 = 1_795_935_900_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
const RETENTION: Duration = Duration::from_secs(60 * 86_400);

/// Appends one record received at each of `times`, with one point and, for every other one,
/// a rejection; the payload of the third is not UTF-8.
fn append(j: &mut Journal, times: &[i64]) {
    let rej = [Rejection {
        reason: Reason::Unit,
        detail: "reading 1 (SO2): unit \"ppb\" does not convert".into(),
        index: Some(1),
    }];
    for (i, &t) in times.iter().enumerate() {
        let payload: Vec<u8> = if i % 3 == 2 {
            b"COD\t48.2\xff".to_vec()
        } else {
            format!("{{\"n\":{i}}}").into_bytes()
        };
        j.append(&[Entry {
            received_at_ms: t,
            topic: "env/dinh-vu/dv-steel/stack-1",
            payload: &payload,
            station: Some("dinh-vu/dv-steel/stack-1".into()),
            rejections: if i % 2 == 1 { &rej } else { &[] },
            points: vec![format!("reading,param=SO2 value={i} {t}")],
            once: false,
        }])
        .unwrap();
    }
}

/// Three local days: records 1–3 on 29/11 (Hanoi), 4–5 on 30/11 (one just after local
/// midnight, 17:00 UTC), 6 on 1/12.
fn three_days(dir: &Path) -> Journal {
    let mut j = Journal::open(dir, true).unwrap();
    let midnight = T0 + 10 * HOUR - 5 * 60_000; // 2026-11-30 00:00 Hanoi
    append(
        &mut j,
        &[
            T0,
            T0 + HOUR,
            midnight - 1,
            midnight,
            midnight + 5 * HOUR,
            midnight + DAY + 1,
        ],
    );
    j
}

fn archive(dir: &Path) -> PathBuf {
    dir.join(DEFAULT_DIR)
}

fn names(dir: &Path) -> Vec<String> {
    list(&archive(dir))
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

#[test]
fn days_are_sealed_once_over_one_segment_per_local_day_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = three_days(dir.path());
    // During 30/11 only 29/11 is over.
    assert_eq!(j.seal(T0 + 12 * HOUR).unwrap(), 1);
    assert_eq!(names(dir.path()), ["2026-11-29_000000000001"]);
    assert_eq!(j.seal(T0 + 12 * HOUR).unwrap(), 0, "sealed once");
    // Later: 30/11 and 1/12 too.
    assert_eq!(j.seal(T0 + 5 * DAY).unwrap(), 2);
    assert_eq!(
        names(dir.path()),
        [
            "2026-11-29_000000000001",
            "2026-11-30_000000000004",
            "2026-12-01_000000000006"
        ]
    );
    let a = archive(dir.path());
    let m = read_manifest(&a.join("2026-11-30_000000000004.manifest.json")).unwrap();
    assert_eq!((m.first_id, m.last_id, m.records), (4, 5, 2));
    assert_eq!(m.day, "2026-11-30");
    assert_eq!(m.timezone, "Asia/Ho_Chi_Minh");
    assert_eq!(m.file, "2026-11-30_000000000004.jsonl.gz");
    assert_eq!(
        m.sha256,
        file_sha256(&a.join("2026-11-30_000000000004.jsonl.gz")).unwrap()
    );
    assert!(m.signature.is_none());
    let lines = read_lines(&a.join("2026-11-29_000000000001.jsonl.gz")).unwrap();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0].prev_hash, "0".repeat(64));
    assert_eq!(lines[1].rejections[0].reason, "unit");
    assert_eq!(lines[2].payload, None, "not UTF-8: base64 only");
    assert_eq!(lines[2].payload_bytes().unwrap(), b"COD\t48.2\xff");
    assert_eq!(lines[0].payload.as_deref(), Some("{\"n\":0}"));
    assert_eq!(lines[0].received_at, "2026-11-29T07:05:00.000Z");
    assert_eq!(m.prev_hash, lines[2].hash);
    let r = verify(dir.path()).unwrap();
    assert!(r.ok(), "{r}");
    assert_eq!((r.archive.segments, r.archive.end), (3, 6));
    let text = r.to_string();
    assert!(
        text.contains("archive intact: 3 segments, 6 records (1 to 6) verified"),
        "{text}"
    );
    // The archive begins with the chain: no record was pruned before it. No anchor was given
    // and no checkpoint written: the report says nothing of either.
    assert!(
        !text.contains("pruned before quantrac kept an archive"),
        "{text}"
    );
    assert!(
        !text.contains("anchors") && !text.contains("checkpoints"),
        "{text}"
    );
}

#[test]
fn pruning_deletes_only_sealed_records_and_verify_walks_archive_and_journal() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = three_days(dir.path());
    Outbox::open(dir.path()).unwrap().written(6).unwrap();
    let now = T0 + 62 * DAY;
    // The archive cannot be written: nothing is pruned.
    std::fs::write(archive(dir.path()), b"not a folder").unwrap();
    j.set_archive(&archive(dir.path()), chrono_tz::Asia::Ho_Chi_Minh, None)
        .unwrap_err();
    assert!(j.prune(now, RETENTION).is_err());
    assert_eq!(j.messages_since(0).unwrap().len(), 6);
    std::fs::remove_file(archive(dir.path())).unwrap();
    j.set_archive(&archive(dir.path()), chrono_tz::Asia::Ho_Chi_Minh, None)
        .unwrap();
    assert_eq!(j.prune(now, RETENTION).unwrap(), 6);
    let r = verify(dir.path()).unwrap();
    assert!(r.ok(), "{r}");
    assert_eq!((r.base_id, r.archive.records), (6, 6));
    // The chain goes on in the journal.
    append(&mut j, &[now]);
    let r = verify(dir.path()).unwrap();
    assert!(r.ok(), "{r}");
    assert_eq!((r.head.0, r.records), (7, 1));
}

/// A removed segment, a one-byte change in one, and two swapped are each named.
#[test]
fn verify_names_a_removed_an_altered_and_a_swapped_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = three_days(dir.path());
    Outbox::open(dir.path()).unwrap().written(6).unwrap();
    j.prune(T0 + 62 * DAY, RETENTION).unwrap();
    drop(j);
    let a = archive(dir.path());
    let copy = || {
        let to = tempfile::tempdir().unwrap();
        std::fs::create_dir(to.path().join(DEFAULT_DIR)).unwrap();
        std::fs::copy(
            crate::journal::db_path(dir.path()),
            crate::journal::db_path(to.path()),
        )
        .unwrap();
        for f in std::fs::read_dir(&a).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), to.path().join(DEFAULT_DIR).join(f.file_name())).unwrap();
        }
        to
    };
    let (d1, d2, d3) = (
        "2026-11-29_000000000001",
        "2026-11-30_000000000004",
        "2026-12-01_000000000006",
    );

    // Removed: the middle segment.
    let t = copy();
    for f in [segment_file(d2), manifest_file(d2)] {
        std::fs::remove_file(archive(t.path()).join(f)).unwrap();
    }
    let r = verify(t.path()).unwrap();
    assert_eq!(
        r.archive.problem,
        Some(SegmentProblem::Missing {
            from: 4,
            to: 5,
            after: Some(d1.into()),
            before: Some(d3.into())
        }),
        "{r}"
    );
    assert!(!r.ok());
    assert!(r.to_string().contains(&format!(
        "records 4 to 5 are in no segment: a segment is missing between segments {d1} and {d3}"
    )));
    // Removed: the last one, the journal's base is in no segment.
    let t = copy();
    std::fs::remove_file(archive(t.path()).join(segment_file(d3))).unwrap();
    std::fs::remove_file(archive(t.path()).join(manifest_file(d3))).unwrap();
    let r = verify(t.path()).unwrap();
    assert_eq!(
        r.archive.problem,
        Some(SegmentProblem::Short { end: 5, base_id: 6 })
    );

    // A manifest whose file or first record was edited alone names another segment (it still
    // describes its own segment's bytes: not a reordering).
    for (field, value) in [
        ("file", serde_json::json!(segment_file(d3))),
        ("first_id", serde_json::json!(5)),
    ] {
        let t = copy();
        let path = archive(t.path()).join(manifest_file(d2));
        let mut m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        m[field] = value;
        std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
        let r = verify(t.path()).unwrap();
        assert!(
            matches!(&r.archive.problem, Some(SegmentProblem::Altered { segment, why, .. })
                if segment == d2 && why.contains("names another segment")),
            "{field}: {r}"
        );
    }

    // A manifest whose hash before its first record was edited alone no longer continues the
    // segment before it.
    // The first segment's too: the chain's first record follows the genesis hash.
    for segment in [d2, d1] {
        let t = copy();
        let path = archive(t.path()).join(manifest_file(segment));
        let mut m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        m["prev_hash"] = hex::encode([7u8; 32]).into();
        std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
        let r = verify(t.path()).unwrap();
        assert!(
            matches!(&r.archive.problem, Some(SegmentProblem::Altered { segment: s, why, .. })
                if s == segment && why.contains("does not continue the chain")),
            "{segment}: {r}"
        );
    }

    // A manifest whose count of records or last hash was edited alone no longer describes
    // its segment.
    for (field, value) in [
        ("records", serde_json::json!(3)),
        ("last_hash", serde_json::json!(hex::encode([7u8; 32]))),
    ] {
        let t = copy();
        let path = archive(t.path()).join(manifest_file(d2));
        let mut m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        m[field] = value;
        std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
        let r = verify(t.path()).unwrap();
        assert!(
            matches!(&r.archive.problem, Some(SegmentProblem::Altered { segment, why, .. })
                if segment == d2 && why.contains("does not describe its records")),
            "{field}: {r}"
        );
    }

    // One byte changed.
    let t = copy();
    let path = archive(t.path()).join(segment_file(d2));
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let r = verify(t.path()).unwrap();
    assert!(
        matches!(&r.archive.problem, Some(SegmentProblem::Altered { segment, .. }) if segment == d2),
        "{r}"
    );
    assert!(r
        .to_string()
        .contains(&format!("segment {d2} was altered after it was sealed")));

    // A record's content changed and the file recompressed (the manifest's SHA-256 too).
    let t = copy();
    let path = archive(t.path()).join(segment_file(d1));
    let mut lines = read_lines(&path).unwrap();
    lines[1].topic = "env/dinh-vu/dv-steel/stack-2".into();
    let bytes = write_lines(&path, &lines);
    let mpath = archive(t.path()).join(manifest_file(d1));
    let mut m = read_manifest(&mpath).unwrap();
    m.sha256 = hex::encode(sha2::Sha256::digest(&bytes));
    std::fs::write(&mpath, serde_json::to_vec(&m).unwrap()).unwrap();
    let r = verify(t.path()).unwrap();
    assert_eq!(
        r.archive.problem,
        Some(SegmentProblem::Altered {
            segment: d1.into(),
            record: Some(2),
            why: "the record's content no longer matches its hash".into()
        }),
        "{r}"
    );

    // Two segment files swapped.
    let t = copy();
    let (p1, p2) = (
        archive(t.path()).join(segment_file(d1)),
        archive(t.path()).join(segment_file(d2)),
    );
    let tmp = archive(t.path()).join("x");
    std::fs::rename(&p1, &tmp).unwrap();
    std::fs::rename(&p2, &p1).unwrap();
    std::fs::rename(&tmp, &p2).unwrap();
    let r = verify(t.path()).unwrap();
    assert_eq!(
        r.archive.problem,
        Some(SegmentProblem::Reordered {
            segment: d1.into(),
            holds: d2.into()
        }),
        "{r}"
    );
    assert!(r
        .to_string()
        .contains(&format!("segments {d1} and {d2} were reordered")));

    // Two records swapped inside a segment.
    let t = copy();
    let path = archive(t.path()).join(segment_file(d1));
    let mut lines = read_lines(&path).unwrap();
    lines.swap(0, 1);
    write_lines(&path, &lines);
    let r = verify(t.path()).unwrap();
    assert_eq!(
        r.archive.problem,
        Some(SegmentProblem::RecordsReordered {
            segment: d1.into(),
            id: 2,
            found_at: 1
        }),
        "{r}"
    );

    // A record removed from a segment (the rest recompressed): named as missing, not moved.
    let t = copy();
    let path = archive(t.path()).join(segment_file(d1));
    let mut lines = read_lines(&path).unwrap();
    lines.remove(1);
    write_lines(&path, &lines);
    let r = verify(t.path()).unwrap();
    assert_eq!(
        r.archive.problem,
        Some(SegmentProblem::Altered {
            segment: d1.into(),
            record: Some(2),
            why: "the record is missing from the segment".into()
        }),
        "{r}"
    );

    // One segment's manifest replaced by a copy of another's: the manifest belongs to that
    // other segment.
    let t = copy();
    std::fs::copy(
        archive(t.path()).join(manifest_file(d3)),
        archive(t.path()).join(manifest_file(d2)),
    )
    .unwrap();
    let r = verify(t.path()).unwrap();
    assert_eq!(
        r.archive.problem,
        Some(SegmentProblem::Reordered {
            segment: d2.into(),
            holds: d3.into()
        }),
        "{r}"
    );
}

/// Writes `lines` as a segment's gzipped JSON lines at `path`; returns the file's bytes.
fn write_lines(path: &Path, lines: &[Line]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for l in lines {
        writeln!(gz, "{}", serde_json::to_string(l).unwrap()).unwrap();
    }
    let bytes = gz.finish().unwrap();
    std::fs::write(path, &bytes).unwrap();
    bytes
}

#[test]
fn segments_are_signed_with_the_checkpoint_key_and_never_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = three_days(dir.path());
    let (key, _) = SigningKey::generate().unwrap();
    let public = PublicKey(key.public_key());
    j.set_archive(
        &archive(dir.path()),
        chrono_tz::Asia::Ho_Chi_Minh,
        Some(Arc::new(key)),
    )
    .unwrap();
    let with_key = Options {
        public_keys: vec![public],
        ..Options::default()
    };
    // Nothing sealed yet: the report says nothing of an archive or its signatures.
    let text = verify_with(dir.path(), &with_key).unwrap().to_string();
    assert!(
        !text.contains("archive") && !text.contains("segments signed"),
        "{text}"
    );
    assert_eq!(j.seal(T0 + 5 * DAY).unwrap(), 3);
    let r = verify_with(dir.path(), &with_key).unwrap();
    assert_eq!(r.archive.signed, 3, "{r}");
    assert!(
        r.to_string()
            .contains("; 3 of 3 segments signed with the given public key"),
        "{r}"
    );
    // Without the key, the signatures are not spoken of.
    let r = verify(dir.path()).unwrap();
    assert!(r.ok() && !r.to_string().contains("segments signed"), "{r}");
    // A manifest edited after signing.
    let mpath = archive(dir.path()).join(manifest_file("2026-11-29_000000000001"));
    let mut m = read_manifest(&mpath).unwrap();
    m.sealed_at = "2020-01-01T00:00:00.000Z".into();
    let sig = m.signature.clone().unwrap();
    m.signature = Some(SegmentSignature {
        at_ms: sig.at_ms + 1,
        ..sig
    });
    std::fs::write(&mpath, serde_json::to_vec(&m).unwrap()).unwrap();
    let r = verify_with(dir.path(), &with_key).unwrap();
    assert!(
        r.to_string()
            .contains("its signature does not hold with the given public key"),
        "{r}"
    );
    // An existing file with other content is never replaced.
    let seg = archive(dir.path()).join(segment_file("2026-11-29_000000000001"));
    assert!(write_once(&seg, b"other").is_err());
    assert!(!write_once(&seg, &std::fs::read(&seg).unwrap()).unwrap());
}

/// A journal pruned before quantrac kept an archive: the archive begins after the base, and
/// `verify` says so instead of calling the old pruning a missing segment.
#[test]
fn a_journal_pruned_before_the_archive_existed_starts_its_archive_after_the_base() {
    use crate::journal::schema::key;
    let dir = tempfile::tempdir().unwrap();
    let mut j = three_days(dir.path());
    // As an older version pruned records 1–3: deleted, the base moved and recorded.
    let hash3: Vec<u8> = rusqlite::Connection::open(crate::journal::db_path(dir.path()))
        .unwrap()
        .query_row("SELECT hash FROM messages WHERE id = 3", [], |r| r.get(0))
        .unwrap();
    drop(j);
    rusqlite::Connection::open(crate::journal::db_path(dir.path()))
        .unwrap()
        .execute_batch(&format!(
            "DELETE FROM points WHERE msg_id <= 3; DELETE FROM rejections WHERE msg_id <= 3;
             DELETE FROM messages WHERE id <= 3;
             UPDATE meta SET value = 3 WHERE key = '{}';
             UPDATE meta SET value = X'{}' WHERE key = '{}';
             UPDATE meta SET value = {} WHERE key = '{}';
             UPDATE meta SET value = {} WHERE key = '{}';",
            key::BASE_ID,
            hex::encode(&hash3),
            key::BASE_HASH,
            T0,
            key::BASE_RECEIVED_AT,
            T0 + 61 * DAY,
            key::BASE_PRUNED_AT,
        ))
        .unwrap();
    j = Journal::open(dir.path(), true).unwrap();
    assert_eq!(j.seal(T0 + 5 * DAY).unwrap(), 2);
    assert_eq!(names(dir.path())[0], "2026-11-30_000000000004");
    let r = verify(dir.path()).unwrap();
    assert!(r.ok(), "{r}");
    assert_eq!((r.archive.from, r.archive.end), (4, 6));
    assert!(
        r.to_string()
            .contains("(records before 4 were pruned before quantrac kept an archive)"),
        "{r}"
    );
    // The first segment removed, and the manifests edited to hide it: the journal recorded
    // where its archive begins.
    let a = archive(dir.path());
    for f in [
        segment_file("2026-11-30_000000000004"),
        manifest_file("2026-11-30_000000000004"),
    ] {
        std::fs::remove_file(a.join(f)).unwrap();
    }
    let mpath = a.join(manifest_file("2026-12-01_000000000006"));
    let mut m = read_manifest(&mpath).unwrap();
    m.archive_from = 6;
    std::fs::write(&mpath, serde_json::to_vec(&m).unwrap()).unwrap();
    let r = verify(dir.path()).unwrap();
    assert_eq!(
        r.archive.problem,
        Some(SegmentProblem::Begins {
            journal: 4,
            archive: 6
        }),
        "{r}"
    );
    // Every segment removed while the journal still holds their records: nothing pruned is
    // missing, and an archive with no segment has no beginning to disagree with.
    for f in [
        segment_file("2026-12-01_000000000006"),
        manifest_file("2026-12-01_000000000006"),
    ] {
        std::fs::remove_file(a.join(f)).unwrap();
    }
    let r = verify(dir.path()).unwrap();
    assert!(r.ok(), "{r}");
    assert_eq!((r.archive.segments, r.archive.from), (0, 4));
}

/// Segments lost after they were pruned: the archive is not continued over the hole, nothing
/// more is pruned, and `verify` names the records.
#[test]
fn a_lost_archive_stops_sealing_and_pruning() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = three_days(dir.path());
    Outbox::open(dir.path()).unwrap().written(6).unwrap();
    assert_eq!(j.prune(T0 + 62 * DAY, RETENTION).unwrap(), 6);
    append(&mut j, &[T0 + 62 * DAY]);
    std::fs::remove_dir_all(archive(dir.path())).unwrap();
    j.set_archive(&archive(dir.path()), chrono_tz::Asia::Ho_Chi_Minh, None)
        .unwrap();
    let e = j.prune(T0 + 70 * DAY, RETENTION).unwrap_err();
    assert!(e.to_string().contains("lacks records 1 to 6"), "{e}");
    assert_eq!(j.messages_since(0).unwrap().len(), 1);
    assert!(names(dir.path()).is_empty());
    let r = verify(dir.path()).unwrap();
    assert_eq!(
        r.archive.problem,
        Some(SegmentProblem::Short { end: 0, base_id: 6 })
    );
}

/// Only the newest segment lost after its records were pruned: the archive ends before the
/// chain's base, and is not continued over the hole either.
#[test]
fn a_lost_last_segment_stops_sealing_and_pruning() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = three_days(dir.path());
    Outbox::open(dir.path()).unwrap().written(6).unwrap();
    assert_eq!(j.prune(T0 + 62 * DAY, RETENTION).unwrap(), 6);
    append(&mut j, &[T0 + 62 * DAY]);
    let last = names(dir.path()).pop().unwrap();
    std::fs::remove_file(archive(dir.path()).join(segment_file(&last))).unwrap();
    std::fs::remove_file(archive(dir.path()).join(manifest_file(&last))).unwrap();
    j.set_archive(&archive(dir.path()), chrono_tz::Asia::Ho_Chi_Minh, None)
        .unwrap();
    let e = j.prune(T0 + 70 * DAY, RETENTION).unwrap_err();
    assert!(e.to_string().contains("lacks records 6 to 6"), "{e}");
    assert_eq!(j.messages_since(0).unwrap().len(), 1, "nothing more pruned");
}

/// The journal stage seals one segment a turn: `seal_some` seals at most what it is asked.
#[test]
fn seal_some_seals_at_most_that_many_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = three_days(dir.path());
    let midnight = T0 + 10 * HOUR - 5 * 60_000; // the end of 29/11, Hanoi
    assert_eq!(j.seal_some(midnight - 1, 5).unwrap(), 0, "29/11 not over");
    assert_eq!(j.seal_some(midnight, 1).unwrap(), 1, "over at its midnight");
    assert_eq!(names(dir.path()).len(), 1);
    let later = T0 + 3 * DAY;
    assert_eq!(j.seal_some(later, 1).unwrap(), 1);
    assert_eq!(j.seal_some(later, 5).unwrap(), 1);
    assert_eq!(j.seal_some(later, 5).unwrap(), 0);
}

/// A crash after a segment was written but before its manifest: the day is sealed again,
/// the same bytes are found and kept, and the manifest is written.
#[test]
fn a_segment_without_its_manifest_is_completed_not_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = three_days(dir.path());
    assert_eq!(j.seal(T0 + 12 * HOUR).unwrap(), 1);
    drop(j);
    let a = archive(dir.path());
    let name = "2026-11-29_000000000001";
    let before = std::fs::read(a.join(segment_file(name))).unwrap();
    std::fs::remove_file(a.join(manifest_file(name))).unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    assert_eq!(j.seal(T0 + 12 * HOUR).unwrap(), 1);
    assert_eq!(std::fs::read(a.join(segment_file(name))).unwrap(), before);
    assert!(a.join(manifest_file(name)).is_file());
    assert!(verify(dir.path()).unwrap().ok());
}

#[test]
fn a_large_day_is_sealed_in_parts_that_verify_as_one_chain() {
    // A province's day is millions of records: at most SEGMENT_MAX_RECORDS a segment, so
    // sealing never holds the journal's thread for long.
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    let n = seal::SEGMENT_MAX_RECORDS + 3;
    let payloads: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("{{\"n\":{i}}}").into_bytes())
        .collect();
    let entries: Vec<Entry> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| Entry {
            received_at_ms: T0 + i as i64,
            topic: "env/dinh-vu/dv-steel/stack-1",
            payload: p,
            station: Some("dinh-vu/dv-steel/stack-1".into()),
            rejections: &[],
            points: vec![format!("reading,param=SO2 value={i} {}", T0 + i as i64)],
            once: false,
        })
        .collect();
    j.append(&entries).unwrap();
    assert_eq!(j.seal(T0 + DAY).unwrap(), 2);
    assert_eq!(
        names(dir.path()),
        ["2026-11-29_000000000001", "2026-11-29_000000010001"]
    );
    let a = archive(dir.path());
    let first = read_manifest(&a.join("2026-11-29_000000000001.manifest.json")).unwrap();
    let second = read_manifest(&a.join("2026-11-29_000000010001.manifest.json")).unwrap();
    assert_eq!(
        (first.first_id, first.last_id),
        (1, seal::SEGMENT_MAX_RECORDS)
    );
    assert_eq!(
        (second.first_id, second.last_id, second.records),
        (10_001, n, 3)
    );
    assert_eq!(second.day, "2026-11-29");
    assert_eq!(second.prev_hash, first.last_hash);
    Outbox::open(dir.path()).unwrap().written(n).unwrap();
    assert_eq!(j.prune(T0 + 62 * DAY, RETENTION).unwrap(), n);
    let r = verify(dir.path()).unwrap();
    assert!(r.ok(), "{r}");
    assert_eq!((r.archive.segments, r.archive.records), (2, n));
}
