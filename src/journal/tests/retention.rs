//! The retention period of the chain base: pruning records when, `verify` checks it against
//! the period, and records deleted by hand are caught by the archive that lacks them.

use super::evidence::{anchor, check, keys};
use super::*;
use crate::journal::archive::verify::SegmentProblem;
use crate::journal::checkpoint::Checkpointer;
use crate::journal::schema::key;

#[test]
fn pruning_records_when_and_verify_checks_the_base_against_the_retention() {
    let (key, public) = keys();
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    fill(&mut j, 10, 1, 10); // message i received at T0 + i s
    Outbox::open(dir.path()).unwrap().written(10).unwrap();

    // However short the retention asked for, nothing younger than a day goes.
    assert_eq!(j.prune(T0 + 3_600_000, Duration::ZERO).unwrap(), 0);
    let deleted_at = T0 + DAY_MS + 5_500;
    assert_eq!(j.prune(deleted_at, Duration::ZERO).unwrap(), 5);
    let meta = |k: &str| -> i64 {
        raw(dir.path())
            .query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(meta(key::BASE_RECEIVED_AT), T0 + 5_000);
    assert_eq!(meta(key::BASE_PRUNED_AT), deleted_at);
    let one_day = Options {
        retention: Duration::from_secs(86_400),
        ..Options::default()
    };
    let r = verify_with(dir.path(), &one_day).unwrap();
    assert!(r.ok(), "{r}");
    assert!(r
        .to_string()
        .contains("records up to 5 were deleted after their retention period"));
    // A regulator expecting 60 days sees they went too early.
    let r = verify(dir.path()).unwrap();
    assert_eq!(
        r.findings,
        vec![Finding::Retention {
            base_id: 5,
            received_at_ms: T0 + 5_000,
            deleted_by_ms: deleted_at,
            retention_days: 60,
            evidence: "as the journal recorded the pruning".into(),
        }]
    );
    let text = r.to_string();
    assert!(text.contains("NOT after their retention period"), "{text}");
    assert!(text.contains("before their retention period of 60 days: record 5 was received 2026-11-29 07:05:05.000 UTC"), "{text}");

    // Signed after a pruning within the retention: the checkpoint says so too.
    let mut c = Checkpointer::new(key.clone(), Duration::from_secs(300));
    c.tick_at(&j, true, LATER);
    assert!(verify_with(
        dir.path(),
        &Options {
            public_keys: vec![public],
            ..one_day.clone()
        }
    )
    .unwrap()
    .ok());

    // Records deleted by hand and the base moved: no pruning recorded it.
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    fill(&mut j, 10, 1, 10);
    let mut c = Checkpointer::new(key, Duration::from_secs(300));
    c.tick_at(&j, true, T0 + 20_000);
    drop(j);
    let a3 = anchor(dir.path(), 3);
    let move_base = |extra: &str| {
        raw(dir.path())
            .execute_batch(&format!(
                "DELETE FROM points WHERE msg_id <= 3; DELETE FROM rejections WHERE msg_id <= 3;
                 DELETE FROM messages WHERE id <= 3;
                 UPDATE meta SET value = 3 WHERE key = '{}';
                 UPDATE meta SET value = X'{}' WHERE key = '{}'; {extra}",
                key::BASE_ID,
                hex::encode(a3.hash),
                key::BASE_HASH
            ))
            .unwrap()
    };
    move_base("");
    let r = verify(dir.path()).unwrap();
    assert_eq!(
        r.findings,
        vec![Finding::BaseUnrecorded { base_id: 3 }],
        "{r}"
    );
    let text = r.to_string();
    assert!(
        text.contains("deleted by hand") && !text.contains("deleted after their retention"),
        "{text}"
    );

    // Times forged to look old fool the journal's own record, not the signed checkpoint.
    let long_ago = T0 - 90 * DAY_MS;
    raw(dir.path())
        .execute_batch(&format!(
            "UPDATE meta SET value = {long_ago} WHERE key = '{}';
             UPDATE meta SET value = {T0} WHERE key = '{}';",
            key::BASE_RECEIVED_AT,
            key::BASE_PRUNED_AT
        ))
        .unwrap();
    let r = verify(dir.path()).unwrap();
    assert!(r.findings.is_empty() && r.problem.is_none(), "{r}");
    // The archive was not: no segment holds the records deleted by hand.
    assert_eq!(
        r.archive.problem,
        Some(SegmentProblem::Short { end: 0, base_id: 3 })
    );
    assert!(
        r.to_string()
            .starts_with("journal NOT intact: its archive is not"),
        "{r}"
    );
    assert!(
        r.to_string()
            .contains("records 1 to 3 were pruned from the journal but are in no segment"),
        "{r}"
    );
    let r = check(dir.path(), &[], &[public]);
    assert_eq!(
        r.findings,
        vec![Finding::BaseUnsigned {
            base_id: 3,
            signed_base_id: 0,
            at_ms: T0 + 20_000
        }]
    );
    assert!(
        r.to_string().contains("NOT after their retention period"),
        "{r}"
    );
}

// `journal.max_bytes` is compared with what the journal occupies: the database pages in use
// plus the write-ahead log. Every committed byte counts, and pages that pruning freed do not
// (SQLite reuses them before growing the file), so pruning makes room.
#[test]
fn the_size_counts_what_is_committed_and_not_what_pruning_freed() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    let occupied = || -> u64 {
        let conn = raw(dir.path());
        let pragma = |name: &str| -> u64 {
            conn.pragma_query_value(None, name, |r| r.get::<_, i64>(0))
                .unwrap() as u64
        };
        let wal = std::fs::metadata(format!("{}-wal", db_path(dir.path()).display()))
            .map(|m| m.len())
            .unwrap_or(0);
        (pragma("page_count") - pragma("freelist_count")) * pragma("page_size") + wal
    };
    let empty = j.size_bytes().unwrap();
    assert_eq!(empty, occupied());
    let big = vec![b'x'; 50_000];
    let entries: Vec<Entry<'_>> = (0..20)
        .map(|i| Entry {
            received_at_ms: T0 + i,
            topic: "env/p/s/st",
            payload: &big,
            station: None,
            rejections: &[],
            points: vec![],
            once: false,
        })
        .collect();
    j.append(&entries).unwrap();
    let full = j.size_bytes().unwrap();
    assert_eq!(full, occupied());
    assert!(full >= empty + 1_000_000, "{empty} → {full}");
    assert_eq!(j.prune(LATER, RETENTION).unwrap(), 20);
    let pruned = j.size_bytes().unwrap();
    assert_eq!(pruned, occupied());
    assert!(
        pruned + 500_000 < full,
        "pruning made room: {full} → {pruned}"
    );
}

// The retention period is a minimum: a base deleted exactly when its period ended was kept
// long enough, by the journal's record and by a checkpoint signed then; one deleted a
// millisecond sooner was not.
#[test]
fn a_base_deleted_exactly_at_the_end_of_its_retention_was_kept_long_enough() {
    let (key, public) = keys();
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    fill(&mut j, 10, 1, 10); // message i received at T0 + i s
    Outbox::open(dir.path()).unwrap().written(10).unwrap();
    let deleted_at = T0 + DAY_MS + 5_500;
    assert_eq!(j.prune(deleted_at, Duration::ZERO).unwrap(), 5);
    Checkpointer::new(key, Duration::from_secs(300)).tick_at(&j, true, deleted_at);
    drop(j);
    // Record 5, the base, was received at T0 + 5 s: this period ends when it was deleted.
    let exact = Duration::from_millis((DAY_MS + 500) as u64);
    let with = |retention| {
        verify_with(
            dir.path(),
            &Options {
                retention,
                public_keys: vec![public],
                ..Options::default()
            },
        )
        .unwrap()
    };
    let r = with(exact);
    assert!(r.ok(), "{r}");
    assert_eq!(r.checkpoints.holding, 1, "{r}");
    let r = with(exact + Duration::from_millis(1));
    let journal = Finding::Retention {
        base_id: 5,
        received_at_ms: T0 + 5_000,
        deleted_by_ms: deleted_at,
        retention_days: 1,
        evidence: "as the journal recorded the pruning".into(),
    };
    assert!(r.findings.contains(&journal), "{r}");
    assert!(
        r.findings.iter().any(|f| matches!(
            f,
            Finding::Retention { base_id: 5, received_at_ms, deleted_by_ms, retention_days: 1, evidence }
                if *received_at_ms == T0 + 5_000
                    && *deleted_by_ms == deleted_at
                    && evidence.starts_with("as signed checkpoint")
        )),
        "{r}"
    );
    assert_eq!(r.checkpoints.holding, 0, "{r}");
}

// An anchor that names the chain base is checked against the hash the chain continues from,
// also when no archive holds the base record (records deleted by hand).
#[test]
fn an_anchor_at_the_base_is_checked_against_the_base_hash() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    fill(&mut j, 10, 1, 10);
    drop(j);
    let a3 = anchor(dir.path(), 3);
    raw(dir.path())
        .execute_batch(&format!(
            "DELETE FROM points WHERE msg_id <= 3; DELETE FROM rejections WHERE msg_id <= 3;
             DELETE FROM messages WHERE id <= 3;
             UPDATE meta SET value = 3 WHERE key = '{}';
             UPDATE meta SET value = X'{}' WHERE key = '{}';",
            key::BASE_ID,
            hex::encode(a3.hash),
            key::BASE_HASH
        ))
        .unwrap();
    let r = check(dir.path(), &[a3], &[]);
    assert_eq!(r.anchors, (1, 1), "{r}");
    let forged = Anchor {
        id: 3,
        hash: [7; 32],
    };
    let r = check(dir.path(), &[forged], &[]);
    assert_eq!(r.anchors, (1, 0), "{r}");
    assert!(
        r.findings.contains(&Finding::Anchor {
            id: 3,
            hash: hex::encode([7u8; 32]),
            mismatch: Mismatch::Differs {
                found: hex::encode(a3.hash)
            },
        }),
        "{r}"
    );
}
