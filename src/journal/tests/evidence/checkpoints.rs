//! The checkpointer: it signs changes only, refuses to sign over a journal that contradicts
//! its last checkpoint (each reason), and logs a failing write once.

use super::*;

#[test]
fn the_checkpointer_signs_changes_only_and_never_signs_over_a_contradiction() {
    let (key, public) = keys();
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    let count = || -> i64 {
        raw(dir.path())
            .query_row("SELECT count(*) FROM checkpoints", [], |r| r.get(0))
            .unwrap()
    };
    let mut c = Checkpointer::new(key.clone(), Duration::from_secs(300));
    c.tick_at(&j, true, T0);
    c.tick_at(&j, true, T0 + 1);
    assert_eq!(count(), 1, "an unchanged head is not signed twice");
    fill(&mut j, 3, 1, 3);
    c.tick_at(&j, false, T0 + 2);
    assert_eq!(count(), 1, "not due before the interval");
    c.tick_at(&j, true, T0 + 3);
    assert_eq!(count(), 2);
    drop(j);

    // Unchanged while stopped: the next start signs what comes after.
    let mut j = Journal::open(dir.path(), true).unwrap();
    let mut c = Checkpointer::new(key.clone(), Duration::from_secs(300));
    fill(&mut j, 6, 1, 3);
    c.tick_at(&j, true, T0 + 3);
    assert_eq!(
        count(),
        3,
        "a journal that fits its checkpoint is signed again"
    );
    drop(j);

    // Changed while stopped: the next start refuses to sign the changed journal.
    cut_tail(dir.path(), 2);
    let mut j = Journal::open(dir.path(), true).unwrap();
    let mut c = Checkpointer::new(key, Duration::from_secs(300));
    c.tick_at(&j, true, T0 + 4);
    fill(&mut j, 3, 1, 3);
    c.tick_at(&j, true, T0 + 5);
    assert_eq!(count(), 3, "nothing signed over the contradiction");
    let r = check(dir.path(), &[], &[public]);
    assert!(!r.ok(), "{r}");
}

// A checkpoint that cannot be written is logged once, not with every attempt, and its
// recovery is logged too; a checkpoint is dated with the wall clock.
#[test]
fn a_failing_checkpoint_is_logged_once_and_its_recovery_too() {
    let (key, _) = keys();
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    fill(&mut j, 3, 1, 3);
    let mut c = Checkpointer::new(key, Duration::from_secs(300));
    let now_ms = || chrono::Utc::now().timestamp_millis();
    let before = now_ms();
    c.tick(&j, true);
    let at: i64 = raw(dir.path())
        .query_row("SELECT max(at_ms) FROM checkpoints", [], |r| r.get(0))
        .unwrap();
    assert!((before..=now_ms()).contains(&at), "{at} is now");
    let db = raw(dir.path());
    db.execute_batch("ALTER TABLE checkpoints RENAME TO away")
        .unwrap();
    let logs = crate::telemetry::logged(|| {
        for i in 0..3 {
            fill(&mut j, 1, 1, 1);
            c.tick_at(&j, true, T0 + i);
        }
    });
    assert_eq!(
        logs.matches("writing a journal checkpoint failed").count(),
        1,
        "{logs}"
    );
    db.execute_batch("ALTER TABLE away RENAME TO checkpoints")
        .unwrap();
    let logs = crate::telemetry::logged(|| c.tick_at(&j, true, T0 + 4));
    assert!(
        logs.contains("journal checkpoints are written again"),
        "{logs}"
    );
    let signed: i64 = db
        .query_row("SELECT count(*) FROM checkpoints", [], |r| r.get(0))
        .unwrap();
    assert_eq!(signed, 2, "the first, and the one after the recovery");
}

// What stops the signing at start, reason by reason: a journal shorter than the checkpoint, a
// covered record missing or with another hash, the base with another hash. A journal that
// still holds what the checkpoint signed (its head, or an older record) is no contradiction.
#[test]
fn a_checkpoint_is_contradicted_by_a_shorter_journal_or_a_changed_record_only() {
    use crate::journal::checkpoint::{contradiction, Checkpoint};
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    fill(&mut j, 6, 1, 3);
    let signed = |head_id: u64, head_hash: [u8; 32]| Checkpoint {
        at_ms: T0,
        base_id: 0,
        base_hash: [0; 32],
        base_received_at_ms: 0,
        head_id,
        head_hash,
    };
    let hash = |id: u64| j.message_hash(id).unwrap().unwrap();
    let why = |c: Checkpoint| contradiction(j.connection(), &c).unwrap();
    assert_eq!(why(signed(6, hash(6))), None, "the head as signed");
    assert_eq!(why(signed(3, hash(3))), None, "an older record as signed");
    let shorter = why(signed(7, [7; 32])).unwrap();
    assert!(shorter.contains("ends at record 6"), "{shorter}");
    let changed = why(signed(4, [9; 32])).unwrap();
    assert!(changed.contains("record 4 has hash"), "{changed}");
    let base: [u8; 32] = raw(dir.path())
        .query_row(
            &format!("SELECT value FROM meta WHERE key = '{}'", key::BASE_HASH),
            [],
            |r| r.get::<_, Vec<u8>>(0),
        )
        .map(|v| v.try_into().unwrap())
        .unwrap();
    assert_eq!(why(signed(0, base)), None, "the base as signed");
    let at_base = why(signed(0, [8; 32])).unwrap();
    assert!(at_base.contains("record 0 has hash"), "{at_base}");
    raw(dir.path())
        .execute_batch(
            "DELETE FROM points WHERE msg_id = 5; DELETE FROM rejections WHERE msg_id = 5;
             DELETE FROM messages WHERE id = 5;",
        )
        .unwrap();
    let missing = why(signed(5, [5; 32])).unwrap();
    assert!(
        missing.contains("record 5, covered by the last checkpoint, is missing"),
        "{missing}"
    );
}
