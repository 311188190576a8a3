//! `verify` on the journal alone: an untouched chain passes, and each kind of edit (a changed
//! byte, point or rejection, a retyped column, a deleted record, two swapped) is named.

use super::*;

#[test]
fn verify_passes_on_an_untouched_journal() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    let empty = verify(dir.path()).unwrap();
    assert!(empty.ok(), "{empty}");
    assert_eq!(empty.records, 0);
    fill(&mut j, 20, 3, 7);
    let r = verify(dir.path()).unwrap();
    assert!(r.ok(), "{r}");
    assert_eq!(r.records, 20);
    let (id, hash) = j.chain_head().unwrap();
    assert_eq!(r.head, (id, hex::encode(hash)));
    assert!(
        r.to_string().starts_with("journal intact: 20 records"),
        "{r}"
    );
}

#[test]
fn verify_names_the_record_whose_payload_changed_by_one_byte() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    fill(&mut j, 10, 2, 10);
    let mut p = payload(6);
    let k = p.iter().position(|&b| b == b'6').unwrap();
    p[k] = b'5'; // 6.5 mg/L becomes 5.5 mg/L
    raw(dir.path())
        .execute("UPDATE messages SET payload = ?1 WHERE id = 6", [&p])
        .unwrap();
    let r = verify(dir.path()).unwrap();
    assert_eq!(
        r.problem,
        Some(Problem::Altered {
            id: 6,
            topic: "env/dinh-vu/dv-steel/stack-1".into(),
            received_at_ms: T0 + 6000,
        })
    );
    assert_eq!(r.records, 5);
    let text = r.to_string();
    assert!(text.contains("record 6 (topic env/dinh-vu/dv-steel/stack-1, received 2026-11-29 07:05:06.000 UTC) was altered"), "{text}");
}

#[test]
fn verify_names_the_record_whose_point_or_rejection_changed() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    fill(&mut j, 6, 2, 6);
    let db = raw(dir.path());
    // Point 7 is the first point of message 4.
    db.execute("UPDATE points SET line = line || '0' WHERE id = 7", [])
        .unwrap();
    let r = verify(dir.path()).unwrap();
    assert!(
        matches!(r.problem, Some(Problem::Altered { id: 4, .. })),
        "{r}"
    );
    db.execute(
        "UPDATE points SET line = substr(line, 1, length(line) - 1) WHERE id = 7",
        [],
    )
    .unwrap();
    assert!(verify(dir.path()).unwrap().ok());
    // Message 3 carries a rejection; hiding it alters record 3.
    db.execute("DELETE FROM rejections WHERE msg_id = 3", [])
        .unwrap();
    let r = verify(dir.path()).unwrap();
    assert!(
        matches!(r.problem, Some(Problem::Altered { id: 3, .. })),
        "{r}"
    );
}

#[test]
fn verify_names_the_record_whose_column_changed_type() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    fill(&mut j, 8, 2, 8);
    let db = raw(dir.path());
    // The same bytes, now TEXT: an SQL edit (`SET payload = '…'`) leaves this behind.
    db.execute(
        "UPDATE messages SET payload = CAST(payload AS TEXT) WHERE id = 5",
        [],
    )
    .unwrap();
    let r = verify(dir.path()).unwrap();
    match &r.problem {
        Some(Problem::Retyped {
            id: 5,
            column: "messages.payload",
            found: "TEXT",
            expected: "BLOB",
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(r.records, 4);
    let text = r.to_string();
    assert!(
        text.contains("record 5 (topic env/dinh-vu/dv-steel/stack-1")
            && text.contains("its messages.payload holds TEXT where quantrac wrote BLOB"),
        "{text}"
    );
    // Back to a BLOB: intact again. Then a count stored as text, and a point line as a BLOB.
    db.execute(
        "UPDATE messages SET payload = CAST(payload AS BLOB) WHERE id = 5",
        [],
    )
    .unwrap();
    assert!(verify(dir.path()).unwrap().ok());
    db.execute("UPDATE messages SET n_points = '2 points' WHERE id = 3", [])
        .unwrap();
    let r = verify(dir.path()).unwrap();
    assert!(
        matches!(
            r.problem,
            Some(Problem::Retyped {
                id: 3,
                column: "messages.n_points",
                found: "TEXT",
                ..
            })
        ),
        "{r}"
    );
    db.execute("UPDATE messages SET n_points = 2 WHERE id = 3", [])
        .unwrap();
    db.execute(
        "UPDATE points SET line = CAST(line AS BLOB) WHERE id = 13",
        [],
    )
    .unwrap();
    let r = verify(dir.path()).unwrap();
    assert!(
        matches!(
            r.problem,
            Some(Problem::Retyped {
                id: 7,
                column: "points.line",
                found: "BLOB",
                ..
            })
        ),
        "{r}"
    );
    // The record is still named by its topic and time when those are the retyped columns: a
    // time stored as REAL, or as text SQLite kept as text (a number pasted with a no-break
    // space; a plain number typed as text is stored as an INTEGER), a topic as a BLOB.
    let at: i64 = db
        .query_row(
            "SELECT received_at_ms FROM messages WHERE id = 4",
            [],
            |r| r.get(0),
        )
        .unwrap();
    for (set, column, found) in [
        (
            "received_at_ms = received_at_ms + 0.5",
            "messages.received_at_ms",
            "REAL",
        ),
        (
            "received_at_ms = received_at_ms || char(160)",
            "messages.received_at_ms",
            "TEXT",
        ),
        ("topic = CAST(topic AS BLOB)", "messages.topic", "BLOB"),
    ] {
        db.execute(&format!("UPDATE messages SET {set} WHERE id = 4"), [])
            .unwrap();
        let r = verify(dir.path()).unwrap();
        match &r.problem {
            Some(Problem::Retyped {
                id: 4,
                topic,
                received_at_ms,
                column: c,
                found: f,
                ..
            }) if *c == column && *f == found => {
                assert_eq!(
                    (topic.as_str(), *received_at_ms),
                    ("env/dinh-vu/dv-steel/stack-1", at),
                    "{set}"
                );
            }
            other => panic!("{set}: {other:?}"),
        }
        db.execute(
            "UPDATE messages SET received_at_ms = ?1, topic = CAST(topic AS TEXT) WHERE id = 4",
            [at],
        )
        .unwrap();
    }
}

#[test]
fn verify_reports_a_deleted_record_as_missing() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    fill(&mut j, 10, 2, 4);
    let db = raw(dir.path());
    db.execute("DELETE FROM messages WHERE id = 4", []).unwrap();
    let r = verify(dir.path()).unwrap();
    assert_eq!(r.problem, Some(Problem::Missing { id: 4, next: 5 }));
    assert_eq!(r.records, 3);
    assert!(r.to_string().contains("record 4 is missing"), "{r}");

    // Removing the newest records is caught by the head recorded with each commit.
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    fill(&mut j, 10, 2, 4);
    raw(dir.path())
        .execute("DELETE FROM messages WHERE id >= 9", [])
        .unwrap();
    let r = verify(dir.path()).unwrap();
    assert_eq!(r.problem, Some(Problem::Truncated { last: 8, head: 10 }));
    assert!(r.to_string().contains("records 9 to 10 are missing"), "{r}");
}

/// Swaps everything but the id of messages `a` and `b` (optionally not the stored hash), and
/// moves their points and rejections with them, as a careful forger would.
fn swap(dir: &Path, a: i64, b: i64, with_hash: bool) {
    let db = raw(dir);
    for t in ["messages", "points", "rejections"] {
        let col = if t == "messages" { "id" } else { "msg_id" };
        db.execute(&format!("UPDATE {t} SET {col} = -1 WHERE {col} = {a}"), [])
            .unwrap();
        db.execute(&format!("UPDATE {t} SET {col} = {a} WHERE {col} = {b}"), [])
            .unwrap();
        db.execute(&format!("UPDATE {t} SET {col} = {b} WHERE {col} = -1"), [])
            .unwrap();
    }
    if !with_hash {
        let hash = |id: i64| -> Vec<u8> {
            db.query_row("SELECT hash FROM messages WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap()
        };
        let (ha, hb) = (hash(a), hash(b));
        db.execute("UPDATE messages SET hash = ?2 WHERE id = ?1", (a, hb))
            .unwrap();
        db.execute("UPDATE messages SET hash = ?2 WHERE id = ?1", (b, ha))
            .unwrap();
    }
}

#[test]
fn verify_names_two_swapped_records_as_reordered() {
    for with_hash in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), true).unwrap();
        fill(&mut j, 10, 2, 10);
        swap(dir.path(), 5, 6, with_hash);
        let r = verify(dir.path()).unwrap();
        assert_eq!(
            r.problem,
            Some(Problem::Reordered {
                id: 5,
                found_at: 6,
                topic: "env/dinh-vu/dv-steel/stack-1".into(),
                received_at_ms: T0 + 5000,
            }),
            "hash swapped too: {with_hash}"
        );
        assert!(
            r.to_string().contains("records 5 and 6 were reordered"),
            "{r}"
        );
    }
    // Not only neighbours.
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    fill(&mut j, 10, 2, 10);
    swap(dir.path(), 2, 8, true);
    let r = verify(dir.path()).unwrap();
    assert!(
        matches!(
            r.problem,
            Some(Problem::Reordered {
                id: 2,
                found_at: 8,
                ..
            })
        ),
        "{r}"
    );
}
