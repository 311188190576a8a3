//! Evidence beyond the chain: `verify` on a read-only copy, anchors, signed checkpoints and
//! the retention period of the chain base.

use std::os::unix::fs::PermissionsExt as _;

use super::*;
use crate::config::SigningKey;
use crate::journal::chain::{record_hash, RecordRef, RejectionRow};
use crate::journal::checkpoint::{Checkpointer, PublicKey};
use crate::journal::schema::key;

/// The checkpointer: what it signs, when it refuses, what it logs.
mod checkpoints;

pub(super) fn keys() -> (Arc<SigningKey>, PublicKey) {
    let (k, _) = SigningKey::generate().unwrap();
    let public = PublicKey(k.public_key());
    (Arc::new(k), public)
}

pub(super) fn check(dir: &Path, anchors: &[Anchor], public_keys: &[PublicKey]) -> VerifyReport {
    verify_with(
        dir,
        &Options {
            anchors: anchors.to_vec(),
            public_keys: public_keys.to_vec(),
            ..Options::default()
        },
    )
    .unwrap()
}

/// The anchor an operator would have published for record `id`.
pub(super) fn anchor(dir: &Path, id: i64) -> Anchor {
    let hash: Vec<u8> = raw(dir)
        .query_row("SELECT hash FROM messages WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap();
    Anchor {
        id: id as u64,
        hash: hash.try_into().unwrap(),
    }
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut all: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect();
    all.sort();
    all
}

/// What someone with the file and the chain's public description can do: delete record
/// `victim`, renumber the records after it, recompute every hash from there and record the
/// new head, so the chain agrees with itself again.
fn delete_and_recompute(dir: &Path, victim: i64) {
    let db = raw(dir);
    db.execute_batch(&format!(
        "DELETE FROM points WHERE msg_id = {victim};
         DELETE FROM rejections WHERE msg_id = {victim};
         DELETE FROM messages WHERE id = {victim};
         UPDATE messages SET id = -(id - 1) WHERE id > {victim};
         UPDATE messages SET id = -id WHERE id < 0;
         UPDATE points SET msg_id = msg_id - 1 WHERE msg_id > {victim};
         UPDATE rejections SET msg_id = -(msg_id - 1) WHERE msg_id > {victim};
         UPDATE rejections SET msg_id = -msg_id WHERE msg_id < 0;"
    ))
    .unwrap();
    let mut prev: [u8; 32] = if victim > 1 {
        let h: Vec<u8> = db
            .query_row(
                "SELECT hash FROM messages WHERE id = ?1",
                [victim - 1],
                |r| r.get(0),
            )
            .unwrap();
        h.try_into().unwrap()
    } else {
        chain::GENESIS
    };
    let last: i64 = db
        .query_row("SELECT max(id) FROM messages", [], |r| r.get(0))
        .unwrap();
    for id in victim..=last {
        let (received_at_ms, topic, payload, station): (i64, String, Vec<u8>, Option<String>) = db
            .query_row(
                "SELECT received_at_ms, topic, payload, station FROM messages WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        let mut stmt = db
            .prepare("SELECT seq, reading, reason, detail FROM rejections WHERE msg_id = ?1 ORDER BY seq")
            .unwrap();
        let rejections: Vec<RejectionRow> = stmt
            .query_map([id], |r| {
                Ok(RejectionRow {
                    seq: r.get::<_, i64>(0)? as u64,
                    reading: r.get::<_, Option<i64>>(1)?.map(|i| i as u64),
                    reason: r.get(2)?,
                    detail: r.get(3)?,
                })
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut stmt = db
            .prepare("SELECT id, line FROM points WHERE msg_id = ?1 ORDER BY id")
            .unwrap();
        let points: Vec<(u64, String)> = stmt
            .query_map([id], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let record = RecordRef {
            id: id as u64,
            received_at_ms,
            topic: &topic,
            payload: &payload,
            station: station.as_deref(),
        };
        prev = record_hash(&prev, record, &rejections, &points);
        db.execute(
            "UPDATE messages SET hash = ?2 WHERE id = ?1",
            (id, &prev[..]),
        )
        .unwrap();
    }
    db.execute(
        "UPDATE meta SET value = ?2 WHERE key = ?1",
        (key::HEAD_ID, last),
    )
    .unwrap();
    db.execute(
        "UPDATE meta SET value = ?2 WHERE key = ?1",
        (key::HEAD_HASH, &prev[..]),
    )
    .unwrap();
}

/// Deletes the records after `keep` and records `keep` as the head, as if the journal had
/// ended there.
fn cut_tail(dir: &Path, keep: i64) {
    let db = raw(dir);
    db.execute_batch(&format!(
        "DELETE FROM points WHERE msg_id > {keep};
         DELETE FROM rejections WHERE msg_id > {keep};
         DELETE FROM messages WHERE id > {keep};
         UPDATE meta SET value = {keep} WHERE key = '{}';
         UPDATE meta SET value = (SELECT hash FROM messages WHERE id = {keep}) WHERE key = '{}';",
        key::HEAD_ID,
        key::HEAD_HASH
    ))
    .unwrap();
}

#[test]
fn a_closed_journal_is_verified_without_creating_or_changing_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    fill(&mut j, 10, 2, 4);
    drop(j);
    let before = files(dir.path());
    assert_eq!(
        before.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(),
        ["journal.sqlite"],
        "a cleanly closed journal is one file"
    );
    std::fs::set_permissions(
        dir.path().join("journal.sqlite"),
        std::fs::Permissions::from_mode(0o444),
    )
    .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    let r = verify(dir.path()).unwrap();
    assert!(r.ok(), "{r}");
    assert_eq!(r.records, 10);
    assert_eq!(dead_letters(dir.path(), 10).unwrap().len(), 3);
    assert_eq!(files(dir.path()), before, "nothing created or changed");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        dir.path().join("journal.sqlite"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();

    // While a writer has it open, the committed records in the log are read too.
    let mut j = Journal::open(dir.path(), true).unwrap();
    fill(&mut j, 5, 2, 5);
    assert!(dir.path().join("journal.sqlite-wal").exists());
    let r = verify(dir.path()).unwrap();
    assert!(r.ok(), "{r}");
    assert_eq!(r.records, 15);
}

#[test]
fn an_older_journal_is_read_as_it_is_and_brought_up_to_date_by_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    fill(&mut j, 5, 1, 5);
    drop(j);
    raw(dir.path())
        .execute_batch(&format!(
            "DROP TABLE checkpoints;
             DELETE FROM meta WHERE key IN ('{}', '{}');
             UPDATE meta SET value = 1 WHERE key = '{}';",
            key::BASE_RECEIVED_AT,
            key::BASE_PRUNED_AT,
            key::VERSION
        ))
        .unwrap();
    let r = verify(dir.path()).unwrap();
    assert!(r.ok(), "version 1, read as it is: {r}");
    let mut j = Journal::open(dir.path(), true).unwrap();
    fill(&mut j, 2, 1, 2);
    let version: i64 = raw(dir.path())
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [key::VERSION],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, schema::VERSION);
    assert!(verify(dir.path()).unwrap().ok());
    drop(j);

    raw(dir.path())
        .execute("UPDATE meta SET value = 99 WHERE key = ?1", [key::VERSION])
        .unwrap();
    assert!(matches!(
        Journal::open(dir.path(), true),
        Err(Error::Schema { found: 99, .. })
    ));
    assert!(matches!(
        verify(dir.path()),
        Err(Error::Schema { found: 99, .. })
    ));
}

#[test]
fn anchors_hold_only_for_the_chain_they_were_taken_from() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    fill(&mut j, 20, 2, 5); // message i: points 2i-1, 2i
    let a15 = anchor(dir.path(), 15);
    let a20 = anchor(dir.path(), 20);
    let r = check(dir.path(), &[a15, a20], &[]);
    assert!(r.ok(), "{r}");
    assert_eq!(r.anchors, (2, 2));
    assert!(r.to_string().contains("anchors: 2 of 2 hold"), "{r}");

    let wrong = Anchor {
        hash: a20.hash,
        ..a15
    };
    let beyond = Anchor { id: 25, ..a20 };
    let r = check(dir.path(), &[a15, wrong, beyond], &[]);
    assert!(!r.ok() && r.problem.is_none(), "{r}");
    assert_eq!(
        r.findings,
        vec![
            Finding::Anchor {
                id: 15,
                hash: hex::encode(a20.hash),
                mismatch: Mismatch::Differs {
                    found: hex::encode(a15.hash)
                },
            },
            Finding::Anchor {
                id: 25,
                hash: hex::encode(a20.hash),
                mismatch: Mismatch::Missing { end: 20 },
            },
        ]
    );
    let text = r.to_string();
    assert!(
        text.starts_with("journal NOT intact: 2 problem(s)"),
        "{text}"
    );
    assert!(text.contains(&format!("anchor 25:{} does not hold: the journal has no such record: its chain ends at record 20", hex::encode(a20.hash))), "{text}");

    // Pruned records are checked against the archive they were sealed into first.
    let (a2, a4) = (anchor(dir.path(), 2), anchor(dir.path(), 4));
    Outbox::open(dir.path()).unwrap().written(8).unwrap();
    assert_eq!(j.prune(LATER, RETENTION).unwrap(), 4);
    let r = check(dir.path(), &[a2, a4, a15], &[]);
    assert_eq!(r.findings, vec![], "{r}");
    let forged = Anchor {
        id: 2,
        hash: a4.hash,
    };
    let r = check(dir.path(), &[forged], &[]);
    assert!(
        matches!(
            &r.findings[..],
            [Finding::Anchor {
                id: 2,
                mismatch: Mismatch::Differs { .. },
                ..
            }]
        ),
        "{r}"
    );
    // Without the archive, they cannot be checked here.
    std::fs::remove_dir_all(dir.path().join("archive")).unwrap();
    let r = check(dir.path(), &[a2], &[]);
    assert_eq!(
        r.findings,
        vec![Finding::Anchor {
            id: 2,
            hash: hex::encode(a2.hash),
            mismatch: Mismatch::Pruned { base_id: 4 },
        }]
    );
    assert!(r.to_string().contains("pruned"), "{r}");

    // Past a broken record, an anchor cannot be checked at all.
    raw(dir.path())
        .execute("UPDATE messages SET topic = 'x' WHERE id = 10", [])
        .unwrap();
    let r = check(dir.path(), &[a15], &[]);
    assert!(
        matches!(r.problem, Some(Problem::Altered { id: 10, .. })),
        "{r}"
    );
    assert_eq!(
        r.findings,
        vec![Finding::Anchor {
            id: 15,
            hash: hex::encode(a15.hash),
            mismatch: Mismatch::Unreachable { at: 10 },
        }]
    );
}

#[test]
fn anchors_are_parsed_from_id_and_hex_hash() {
    let hash = "ab".repeat(32);
    assert_eq!(
        format!("500:{hash}").parse::<Anchor>(),
        Ok(Anchor {
            id: 500,
            hash: [0xab; 32]
        })
    );
    for bad in [
        "500",
        &format!("x:{hash}"),
        "500:abcd",
        &format!("500:{}", "zz".repeat(32)),
    ] {
        let e = bad.parse::<Anchor>().unwrap_err();
        assert!(e.contains("RECORD_ID:HASH"), "{e}");
    }
}

#[test]
fn a_recomputed_chain_holds_alone_and_is_caught_by_anchors_and_signed_checkpoints() {
    let (key, public) = keys();
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    let mut c = Checkpointer::new(key, Duration::from_secs(300));
    fill(&mut j, 10, 2, 5);
    c.tick_at(&j, true, T0 + 20_000);
    fill(&mut j, 10, 2, 5);
    c.tick_at(&j, true, T0 + 40_000);
    drop(j);
    let r = check(dir.path(), &[], &[public]);
    assert!(r.ok(), "{r}");
    assert_eq!(r.checkpoints.holding, 2);
    assert!(
        r.to_string().contains("signed checkpoints: 2 of 2 hold"),
        "{r}"
    );
    let (a10, a20) = (anchor(dir.path(), 10), anchor(dir.path(), 20));

    delete_and_recompute(dir.path(), 5);
    // With its checkpoints deleted too, the file agrees with itself: only evidence kept
    // outside it shows what happened.
    let bare = tempfile::tempdir().unwrap();
    std::fs::copy(db_path(dir.path()), db_path(bare.path())).unwrap();
    raw(bare.path())
        .execute("DELETE FROM checkpoints", [])
        .unwrap();
    let r = verify(bare.path()).unwrap();
    assert!(r.ok(), "the forgery holds on its own: {r}");
    assert_eq!(r.records, 19);
    let r = check(bare.path(), &[a10, a20], &[]);
    assert_eq!(r.anchors, (2, 0));
    assert!(
        matches!(
            &r.findings[..],
            [
                Finding::Anchor {
                    id: 10,
                    mismatch: Mismatch::Differs { .. },
                    ..
                },
                Finding::Anchor {
                    id: 20,
                    mismatch: Mismatch::Missing { end: 19 },
                    ..
                },
            ]
        ),
        "{r}"
    );
    let r = check(bare.path(), &[], &[public]);
    assert_eq!(
        r.findings,
        vec![Finding::Unsigned {
            from: 1,
            to: 19,
            newest: None
        }]
    );

    // Checkpoints left in place name themselves.
    let r = check(dir.path(), &[], &[public]);
    assert!(!r.ok());
    let named: Vec<_> = r
        .findings
        .iter()
        .filter_map(|f| match f {
            Finding::Checkpoint {
                row,
                id,
                what: "head",
                mismatch,
                ..
            } => Some((*row, *id, mismatch.clone())),
            _ => None,
        })
        .collect();
    assert!(
        matches!(
            &named[..],
            [
                (1, 10, Mismatch::Differs { .. }),
                (2, 20, Mismatch::Missing { end: 19 })
            ]
        ),
        "{r}"
    );
    assert!(
        r.findings.contains(&Finding::Unsigned {
            from: 1,
            to: 19,
            newest: None
        }),
        "{r}"
    );
    let text = r.to_string();
    assert!(
        text.contains(
            "checkpoint 1 (written 2026-11-29 07:05:20.000 UTC) signed record 10 as the chain head"
        ),
        "{text}"
    );
}

#[test]
fn tail_deletion_with_a_rewritten_head_is_caught_by_the_last_checkpoint() {
    let (key, public) = keys();
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    let mut c = Checkpointer::new(key, Duration::from_secs(300));
    fill(&mut j, 20, 1, 20);
    c.tick_at(&j, true, T0 + 60_000); // as at shutdown
    drop(j);
    let a20 = anchor(dir.path(), 20);
    cut_tail(dir.path(), 10);
    let r = verify(dir.path()).unwrap();
    assert!(r.problem.is_none(), "the head in meta was rewritten: {r}");
    assert!(
        matches!(
            &r.findings[..],
            [Finding::Checkpoint {
                id: 20,
                what: "head",
                mismatch: Mismatch::Missing { end: 10 },
                ..
            }]
        ),
        "even unsigned, the checkpoint says where the chain ended: {r}"
    );
    let r = check(dir.path(), &[a20], &[public]);
    assert!(
        r.findings.contains(&Finding::Anchor {
            id: 20,
            hash: hex::encode(a20.hash),
            mismatch: Mismatch::Missing { end: 10 }
        }),
        "{r}"
    );
    // Deleting that checkpoint as well leaves records no signature covers.
    raw(dir.path())
        .execute("DELETE FROM checkpoints", [])
        .unwrap();
    let r = check(dir.path(), &[], &[public]);
    assert_eq!(
        r.findings,
        vec![Finding::Unsigned {
            from: 1,
            to: 10,
            newest: None
        }]
    );
}

#[test]
fn signatures_name_a_changed_checkpoint_and_one_by_another_key() {
    let (key, public) = keys();
    let (stranger, stranger_public) = keys();
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    fill(&mut j, 5, 1, 5);
    Checkpointer::new(key.clone(), Duration::from_secs(300)).tick_at(&j, true, T0 + 10_000);
    fill(&mut j, 5, 1, 5);
    Checkpointer::new(stranger, Duration::from_secs(300)).tick_at(&j, true, T0 + 20_000);
    let r = check(dir.path(), &[], &[public]);
    assert_eq!(
        r.findings,
        vec![
            Finding::Signature {
                row: 2,
                at_ms: T0 + 20_000,
                head_id: 10,
                other_key: Some(stranger_public.to_string()),
            },
            Finding::Unsigned {
                from: 6,
                to: 10,
                newest: Some((T0 + 10_000, 5))
            },
        ]
    );
    assert!(check(dir.path(), &[], &[public, stranger_public]).ok());
    // Moving a signed checkpoint's time breaks its signature.
    raw(dir.path())
        .execute("UPDATE checkpoints SET at_ms = at_ms - 1 WHERE id = 1", [])
        .unwrap();
    let r = check(dir.path(), &[], &[public, stranger_public]);
    assert_eq!(
        r.findings,
        vec![Finding::Signature {
            row: 1,
            at_ms: T0 + 9_999,
            head_id: 5,
            other_key: None
        }]
    );
    assert!(r.to_string().contains("changed after it was signed"), "{r}");
    // Without public keys, signatures are not checked, and the report says so.
    let r = verify(dir.path()).unwrap();
    assert!(r.ok(), "{r}");
    assert!(r.to_string().contains("signatures were not checked"), "{r}");
}

// With public keys given, a chain with no record after its base has nothing left unsigned.
#[test]
fn an_empty_chain_has_nothing_unsigned() {
    let (_, public) = keys();
    let dir = tempfile::tempdir().unwrap();
    drop(Journal::open(dir.path(), true).unwrap());
    let r = check(dir.path(), &[], &[public]);
    assert_eq!(r.findings, vec![], "{r}");
    assert!(r.ok(), "{r}");
    assert_eq!((r.records, r.checkpoints.found), (0, 0));
}
