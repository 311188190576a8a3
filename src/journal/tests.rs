//! Journal tests against real SQLite files in a temporary folder.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{mpsc, Notify};

use super::*;
use crate::model::{Reason, Rejection};

/// Read-only opening, anchors, signed checkpoints, retention.
mod evidence;
mod retention;
mod verify;

const T0: i64 = 1_795_935_900_000; // 2026-11-29T07:05:00Z

/// The Circular 10/2021 retention (regulations.md §3), and a time by which everything
/// received around [`T0`] has passed it.
const RETENTION: Duration = Duration::from_secs(60 * 86_400);
const DAY_MS: i64 = 86_400_000;
const LATER: i64 = T0 + 100 * DAY_MS;

fn payload(i: u64) -> Vec<u8> {
    format!(
        r#"{{"ts":"2026-11-29T14:05:00+07:00","readings":[{{"param":"COD","value":{i}.5,"unit":"mg/L"}}]}}"#
    )
    .into_bytes()
}

fn lines(i: u64, n: usize) -> Vec<String> {
    (0..n)
        .map(|k| format!("reading,park=p,site=s,station=st,param=P{k} value={i}.{k} {T0}"))
        .collect()
}

/// Appends `n` messages, `points` points each, one per batch of `per_batch`; message `i`
/// (1-based) is received at `T0 + i` seconds and rejections go on every third message.
fn fill(j: &mut Journal, n: u64, points: usize, per_batch: u64) {
    let rej = vec![Rejection {
        reason: Reason::Unit,
        detail: "unit \"ppb\" does not convert to mg/Nm3 for SO2".into(),
        index: Some(1),
    }];
    let payloads: Vec<Vec<u8>> = (1..=n).map(payload).collect();
    let start = j.chain_head().unwrap().0;
    for chunk in (1..=n).collect::<Vec<_>>().chunks(per_batch as usize) {
        let batch: Vec<Entry> = chunk
            .iter()
            .map(|&i| Entry {
                received_at_ms: T0 + (start + i) as i64 * 1000,
                topic: "env/dinh-vu/dv-steel/stack-1",
                payload: &payloads[i as usize - 1],
                station: Some("dinh-vu/dv-steel/stack-1".into()),
                rejections: if i % 3 == 0 { &rej } else { &[] },
                points: lines(start + i, points),
                once: false,
            })
            .collect();
        j.append(&batch).unwrap();
    }
}

fn raw(dir: &Path) -> Connection {
    Connection::open(db_path(dir)).unwrap()
}

#[test]
fn append_then_read_back_messages_points_and_ids() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    assert_eq!(j.chain_head().unwrap(), (0, chain::GENESIS));
    let bytes = b"COD\t48.2\tmg/L\t20261129140500\t00\r\n\xff".to_vec(); // not UTF-8: stored as is
    let rej = [Rejection {
        reason: Reason::Malformed,
        detail: "not JSON".into(),
        index: None,
    }];
    let c = j
        .append(&[
            Entry {
                received_at_ms: T0,
                topic: "env/a/b/c",
                payload: &bytes,
                station: Some("a/b/c".into()),
                rejections: &[],
                points: lines(1, 2),
                once: false,
            },
            Entry {
                received_at_ms: T0 + 1,
                topic: "bad/topic",
                payload: b"{",
                station: None,
                rejections: &rej,
                points: vec![],
                once: false,
            },
        ])
        .unwrap();
    assert_eq!(c.ids(), 1..3);
    assert_eq!(c.last_point_id, 2);
    assert_eq!(j.chain_head().unwrap(), (c.head_id, c.head_hash));
    assert_eq!(c.head_id, 2);
    assert_ne!(c.head_hash, chain::GENESIS);

    let all = j.messages_since(T0).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].payload, bytes);
    assert_eq!(all[0].station.as_deref(), Some("a/b/c"));
    assert_eq!((all[0].n_points, all[0].n_rejected), (2, 0));
    assert_eq!(all[1].station, None);
    assert_eq!((all[1].n_points, all[1].n_rejected), (0, 1));
    assert_eq!(j.messages_since(T0 + 1).unwrap().len(), 1);

    let mut o = Outbox::open(dir.path()).unwrap();
    let pts = o.next_batch(10).unwrap();
    assert_eq!(pts.iter().map(|p| p.0).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(pts[1].1, lines(1, 2)[1]);

    // The next batch continues the ids, also after reopening.
    drop(j);
    let mut j = Journal::open(dir.path(), true).unwrap();
    let c2 = j
        .append(&[Entry {
            received_at_ms: T0 + 2,
            topic: "env/a/b/c",
            payload: b"{}",
            station: None,
            rejections: &[],
            points: lines(3, 1),
            once: false,
        }])
        .unwrap();
    assert_eq!((c2.first_id, c2.last_point_id), (3, 3));
    assert!(verify(dir.path()).unwrap().ok());
}

#[test]
fn an_inbox_file_is_recorded_once_by_its_path_and_content() {
    // Issue #14: exactly once per file across restarts. An inbox file's topic is `$inbox/`
    // and its path, so the digest of topic and payload is its name and SHA-256.
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    let file = |topic: &'static str, payload: &'static [u8]| Entry {
        received_at_ms: T0,
        topic,
        payload,
        station: Some("p/s/k1".into()),
        rejections: &[],
        points: lines(1, 1),
        once: true,
    };
    let a = file(
        "$inbox/HP_DV_K1_20261129140500.txt",
        b"COD\t48.2\tmg/L\t20261129140500\t00",
    );
    let c = j.append(std::slice::from_ref(&a)).unwrap();
    assert_eq!((c.count, c.duplicates), (1, 0));
    // Taken again after a restart (journaled, not moved out of the inbox yet): skipped.
    drop(j);
    let mut j = Journal::open(dir.path(), true).unwrap();
    let c = j.append(std::slice::from_ref(&a)).unwrap();
    assert_eq!((c.count, c.duplicates, c.head_id), (0, 1, 1));
    // The same name with other content (a corrected file), another name: recorded.
    let corrected = file(
        "$inbox/HP_DV_K1_20261129140500.txt",
        b"COD\t48.3\tmg/L\t20261129140500\t00",
    );
    let next = file(
        "$inbox/HP_DV_K1_20261129141000.txt",
        b"COD\t48.2\tmg/L\t20261129140500\t00",
    );
    let c = j.append(&[corrected, next]).unwrap();
    assert_eq!((c.count, c.duplicates), (2, 0));
    // A dead letter replayed after a configuration fix is quantrac's own record: recorded.
    let replay = Entry { once: false, ..a };
    let c = j.append(&[replay]).unwrap();
    assert_eq!((c.count, c.duplicates), (1, 0));
    assert!(verify(dir.path()).unwrap().ok());
}

#[test]
fn outbox_cursor_survives_reopen_and_resumes_at_the_unwritten_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    fill(&mut j, 5, 2, 5); // points 1..=10
    let mut o = Outbox::open(dir.path()).unwrap();
    let first = o.next_batch(4).unwrap();
    assert_eq!(first.last().unwrap().0, 4);
    // Not yet written: asking again is a retry of the same points.
    assert_eq!(o.next_batch(4).unwrap(), first);
    o.written(4).unwrap();
    drop(o);
    drop(j);

    let j = Journal::open(dir.path(), true).unwrap();
    let mut o = Outbox::open(dir.path()).unwrap();
    assert_eq!(o.cursor(), 4);
    assert_eq!(j.outbox_cursor().unwrap(), 4);
    let rest = o.next_batch(100).unwrap();
    assert_eq!(
        rest.iter().map(|p| p.0).collect::<Vec<_>>(),
        (5..=10).collect::<Vec<_>>()
    );
}

#[test]
fn reading_ahead_of_the_cursor_never_goes_behind_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    fill(&mut j, 5, 2, 5); // points 1..=10
    let mut o = Outbox::open(dir.path()).unwrap();
    let ids = |v: Vec<(u64, String)>| v.into_iter().map(|p| p.0).collect::<Vec<_>>();
    assert_eq!(ids(o.next_batch_after(3, 4).unwrap()), [4, 5, 6, 7]);
    o.written(6).unwrap();
    // An id behind the cursor reads from the cursor: written points are not sent again.
    assert_eq!(ids(o.next_batch_after(2, 3).unwrap()), [7, 8, 9]);
    assert_eq!(ids(o.next_batch_after(9, 5).unwrap()), [10]);
}

#[test]
fn backlog_is_last_point_minus_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    let mut o = Outbox::open(dir.path()).unwrap();
    assert_eq!(o.backlog().unwrap(), 0);
    fill(&mut j, 3, 8, 3); // 24 points
    assert_eq!(o.backlog().unwrap(), 24);
    o.written(10).unwrap();
    assert_eq!(o.backlog().unwrap(), 14);
    assert_eq!(j.backlog().unwrap(), 14);
    // The cursor never moves back, and never past what was committed.
    o.written(3).unwrap();
    assert_eq!(o.cursor(), 10);
    assert!(matches!(
        o.written(25),
        Err(Error::Cursor { upto: 25, last: 24 })
    ));
    o.rejected(11, "400: field type conflict").unwrap();
    o.written(24).unwrap();
    assert_eq!(o.backlog().unwrap(), 0);
    assert_eq!(o.next_batch(10).unwrap(), vec![]);
    let refused = o.refused(10).unwrap();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0, 11);
    assert_eq!(refused[0].2, "400: field type conflict");
}

/// Retention: only records older than the cutoff whose points InfluxDB accepted are deleted
/// (Circular 10/2021 datalogger parity: ≥ 60 days kept locally, regulations.md §3).
#[test]
fn prune_keeps_verify_passing_and_never_deletes_unwritten_points() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    fill(&mut j, 10, 2, 3); // message i: points 2i-1, 2i; received T0 + i s
    let mut o = Outbox::open(dir.path()).unwrap();

    // Nothing written yet: nothing goes, however old.
    assert_eq!(j.prune(LATER, RETENTION).unwrap(), 0);

    // Points up to 9 written: message 5 (points 9, 10) is only half written and stays.
    o.written(9).unwrap();
    assert_eq!(j.prune(LATER, RETENTION).unwrap(), 4);
    let r = verify(dir.path()).unwrap();
    assert!(r.ok(), "{r}");
    assert_eq!((r.base_id, r.records), (4, 6));
    assert!(
        r.to_string().contains("records up to 4 were deleted"),
        "{r}"
    );
    assert_eq!(o.next_batch(100).unwrap()[0].0, 10);
    assert_eq!(o.backlog().unwrap(), 11);

    // Everything written, but the cutoff (age) keeps messages 7.. (received at T0 + 7 s).
    o.written(20).unwrap();
    assert_eq!(j.prune(T0 + 7000 + 60 * DAY_MS, RETENTION).unwrap(), 2);
    assert_eq!(j.messages_since(0).unwrap()[0].id, 7);
    assert!(verify(dir.path()).unwrap().ok());

    // The chain goes on after pruning, and survives reopening.
    fill(&mut j, 3, 2, 3);
    drop(j);
    let r = verify(dir.path()).unwrap();
    assert!(r.ok(), "{r}");
    assert_eq!((r.base_id, r.records, r.head.0), (6, 7, 13));
    let mut j = Journal::open(dir.path(), true).unwrap();
    assert_eq!(j.prune(LATER, RETENTION).unwrap(), 4); // 7..=10 written; 11.. not
    assert!(verify(dir.path()).unwrap().ok());
    // Removing a record just above the chain base is still a gap.
    raw(dir.path())
        .execute("DELETE FROM messages WHERE id = 11", [])
        .unwrap();
    assert_eq!(
        verify(dir.path()).unwrap().problem,
        Some(Problem::Missing { id: 11, next: 12 })
    );
}

#[test]
fn dead_letters_list_rejected_messages_with_reasons_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    fill(&mut j, 10, 1, 10); // rejections on messages 3, 6, 9
    let all = dead_letters(dir.path(), 100).unwrap();
    assert_eq!(all.iter().map(|d| d.id).collect::<Vec<_>>(), vec![3, 6, 9]);
    assert_eq!(all[0].payload, payload(3));
    assert_eq!(all[0].topic, "env/dinh-vu/dv-steel/stack-1");
    assert_eq!(all[0].received_at_ms, T0 + 3000);
    assert_eq!(
        all[0].reasons,
        vec![(
            "unit".to_string(),
            "unit \"ppb\" does not convert to mg/Nm3 for SO2".to_string()
        )]
    );
    assert!(!all[0].replayed);
    // The limit keeps the newest.
    let last = dead_letters(dir.path(), 2).unwrap();
    assert_eq!(last.iter().map(|d| d.id).collect::<Vec<_>>(), vec![6, 9]);
    // Marking: only dead letters, each once.
    // Record 9 stands for the replay of dead letter 3 that was rejected again.
    let replays = [(3, 9), (4, 9), (3, 9), (99, 9)];
    assert_eq!(mark_replayed(dir.path(), &replays, T0).unwrap(), 1);
    let all = dead_letters(dir.path(), 100).unwrap();
    assert_eq!(
        all.iter().map(|d| d.replayed).collect::<Vec<_>>(),
        vec![true, false, false]
    );
    // Each side names the other.
    assert_eq!(all[0].replayed_as, Some(9));
    assert_eq!(all[2].replay_of, Some(3));
    assert_eq!((all[1].replayed_as, all[1].replay_of), (None, None));
    // Replay marks are outside the chain.
    assert!(verify(dir.path()).unwrap().ok());
}

#[test]
fn read_only_commands_say_when_there_is_no_journal() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        verify(&dir.path().join("nope")),
        Err(Error::Missing(_))
    ));
}

mod stage;

mod measure;

#[test]
fn a_redelivered_message_is_journaled_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    let entry = |payload: &'static [u8], once| Entry {
        received_at_ms: T0,
        topic: "env/a/b/c",
        payload,
        station: Some("a/b/c".into()),
        rejections: &[],
        points: lines(1, 1),
        once,
    };
    let c = j
        .append(&[entry(b"{\"ts\":1}", true), entry(b"{\"ts\":1}", true)])
        .unwrap();
    assert_eq!((c.count, c.duplicates, c.head_id), (1, 1, 1), "same batch");
    let c = j
        .append(&[entry(b"{\"ts\":1}", true), entry(b"{\"ts\":2}", true)])
        .unwrap();
    assert_eq!(
        (c.count, c.duplicates, c.ids()),
        (1, 1, 2..3),
        "later batch"
    );
    let c = j.append(&[entry(b"{\"ts\":1}", false)]).unwrap();
    assert_eq!(
        (c.count, c.duplicates),
        (1, 0),
        "records quantrac makes itself (a replay) are never skipped"
    );
    assert_eq!(j.messages_since(0).unwrap().len(), 3);
    assert!(verify(dir.path()).unwrap().ok());
}

/// The journal notices when its database file is no longer the one at its path: deleted, or
/// replaced by another file (SQLite would go on writing into the open, unreachable one).
#[test]
fn a_deleted_or_replaced_journal_file_is_noticed() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), true).unwrap();
    assert_eq!(j.file_changed(), None);
    let db = super::db_path(dir.path());
    let moved = dir.path().join("moved.sqlite");
    std::fs::rename(&db, &moved).unwrap();
    let gone = j.file_changed().expect("a deleted file is noticed");
    assert!(gone.contains("was deleted"), "{gone}");
    std::fs::write(&db, b"another file").unwrap();
    let replaced = j.file_changed().expect("a replaced file is noticed");
    assert!(replaced.contains("was replaced"), "{replaced}");
    std::fs::remove_file(&db).unwrap();
    std::fs::rename(&moved, &db).unwrap();
    assert_eq!(j.file_changed(), None, "the same file back at its path");
}

// The restart rebuild finds the last windows record by its topic: the newest message with that
// topic received since a time, or none.
#[test]
fn the_last_message_with_a_topic_is_the_newest_one_since_the_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    let entry = |received_at_ms, topic| Entry {
        received_at_ms,
        topic,
        payload: b"{}",
        station: None,
        rejections: &[],
        points: vec![],
        once: false,
    };
    j.append(&[
        entry(T0, "a"),
        entry(T0 + 1, "b"),
        entry(T0 + 2, "a"),
        entry(T0 + 3, "c"),
    ])
    .unwrap();
    assert_eq!(j.last_message_with_topic("a", 0).unwrap(), Some(3));
    assert_eq!(j.last_message_with_topic("b", T0).unwrap(), Some(2));
    assert_eq!(j.last_message_with_topic("b", T0 + 2).unwrap(), None);
    assert_eq!(j.last_message_with_topic("d", 0).unwrap(), None);

    // A restart from a kept state replays only the records after the one it covers, and only
    // those received since the late-data horizon; a state covering nothing replays them all.
    let after = |id, since| {
        let mut seen = Vec::new();
        j.each_message_after(id, since, |m| seen.push((m.id, m.topic)))
            .unwrap();
        seen
    };
    assert_eq!(after(2, 0), [(3, "a".to_string()), (4, "c".to_string())]);
    assert_eq!(after(2, T0 + 3), [(4, "c".to_string())]);
    assert_eq!(after(0, T0 + 1).len(), 3);
    assert!(after(4, 0).is_empty());
}

#[test]
fn a_file_write_refused_for_want_of_space_is_storage_full_and_nothing_else_is() {
    // ENOSPC from a file the journal writes (the kept state, an archive segment): the write
    // can be made again once there is room, like SQLite's own SQLITE_FULL.
    let io = |code| Error::Io {
        path: "state".into(),
        source: std::io::Error::from_raw_os_error(code),
    };
    assert!(io(28).is_storage_full());
    assert!(!io(13).is_storage_full(), "EACCES is not a full disk");
}
