//! Tests that pin the README's promises about the journal, each written so that the one-line
//! change that would break the promise fails it every time:
//!
//! - a PUBACK only after the commit that holds the message (the acks of a commit that waits are
//!   held, the acks of a commit that fails are never released);
//! - with `journal.durable = true` (the default) every commit is on disk before its PUBACK
//!   (`synchronous = FULL` on the writer's own connection);
//! - tamper evidence covers the whole record: the record hash is checked against a vector
//!   computed independently of this code, and `verify` is shown each hashed column changed, the
//!   counts and point ownership it checks beside the hash, and the recorded head;
//! - retention: the stage prunes expired, delivered records by itself, counted in days.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{mpsc, Notify};

use super::chain::{record_hash, RecordRef, RejectionRow, GENESIS};
use super::schema::key;
use super::*;
use crate::metrics::Metrics;
use crate::model::{Reason, Rejection};
use crate::pipeline::{Ack, AckEvent, Envelope, Processed};
use crate::readiness::Readiness;

// --- The record hash, against an independent computation ---------------------------------

/// The two records of the known-answer test. Record 1: a station's message with one point.
const TOPIC_1: &str = "env/nam-dinh-vu/nd-textile/outfall-1";
const PAYLOAD_1: &[u8] = br#"{"ts":"2026-11-29T14:05:00+07:00","readings":[{"param":"COD","value":148.2,"unit":"mg/L"}]}"#;
const STATION_1: &str = "nam-dinh-vu/nd-textile/outfall-1";
const LINE_1: &str = r#"reading,park=nam-dinh-vu,site=nd-textile,station=outfall-1,param=COD value=148.2,unit="mg/L",status="00",limit_max=135,ratio=1.0977777777777777,exceeded=true 1795935900000"#;
/// Record 2: a payload that is not UTF-8, no station, two rejections, no point.
const TOPIC_2: &str = "env/nam-dinh-vu/nd-textile";
const PAYLOAD_2: &[u8] = b"{\xff";
const DETAIL_2A: &str = "not JSON: EOF while parsing";
const DETAIL_2B: &str = "unit \"ppb\" does not convert";
const T1: i64 = 1_795_935_900_000;

/// SHA-256 of the two records, computed once with Python's `hashlib` from the layout written
/// in `chain.rs` alone, not from this code:
///
/// ```python
/// import hashlib, struct
/// u64 = lambda n: struct.pack(">Q", n); i64 = lambda n: struct.pack(">q", n)
/// b = lambda x: u64(len(x)) + x
/// def record(prev, id, received_at_ms, topic, payload, station, rejections, points):
///     m = b"quantrac-journal-v1" + prev + u64(id) + i64(received_at_ms)
///     m += b(topic.encode()) + b(payload)
///     m += b"\x00" if station is None else b"\x01" + b(station.encode())
///     m += b"R" + u64(len(rejections))
///     for seq, reading, reason, detail in rejections:
///         m += u64(seq) + (b"\x00" if reading is None else b"\x01" + u64(reading))
///         m += b(reason.encode()) + b(detail.encode())
///     m += b"P" + u64(len(points))
///     for pid, line in points:
///         m += u64(pid) + b(line.encode())
///     return hashlib.sha256(m).digest()
/// h1 = record(bytes(32), 1, 1795935900000, TOPIC_1, PAYLOAD_1, STATION_1, [], [(1, LINE_1)])
/// h2 = record(h1, 2, 1795935901000, TOPIC_2, PAYLOAD_2, None,
///             [(0, None, "malformed", DETAIL_2A), (1, 3, "unit", DETAIL_2B)], [])
/// ```
const KNOWN_1: &str = "4bff9b4883dfd632cc32e80c05ce8201274742b0a5a2adc70e556de2e7de6b3a";
const KNOWN_2: &str = "26b2194da7ac407d5c4ad329a92b000198b7ca5eb3bc75ed4aff593e953da091";

fn rejections_2() -> Vec<Rejection> {
    vec![
        Rejection {
            reason: Reason::Malformed,
            detail: DETAIL_2A.into(),
            index: None,
        },
        Rejection {
            reason: Reason::Unit,
            detail: DETAIL_2B.into(),
            index: Some(3),
        },
    ]
}

#[test]
fn the_record_hash_matches_a_vector_computed_independently() {
    let h1 = record_hash(
        &GENESIS,
        RecordRef {
            id: 1,
            received_at_ms: T1,
            topic: TOPIC_1,
            payload: PAYLOAD_1,
            station: Some(STATION_1),
        },
        &[],
        &[(1, LINE_1.to_string())],
    );
    assert_eq!(hex::encode(h1), KNOWN_1);
    let rows: Vec<RejectionRow> = vec![
        RejectionRow {
            seq: 0,
            reading: None,
            reason: "malformed".into(),
            detail: DETAIL_2A.into(),
        },
        RejectionRow {
            seq: 1,
            reading: Some(3),
            reason: "unit".into(),
            detail: DETAIL_2B.into(),
        },
    ];
    let h2 = record_hash(
        &h1,
        RecordRef {
            id: 2,
            received_at_ms: T1 + 1000,
            topic: TOPIC_2,
            payload: PAYLOAD_2,
            station: None,
        },
        &rows,
        &[],
    );
    assert_eq!(hex::encode(h2), KNOWN_2);
}

#[test]
fn the_writer_stores_the_independently_computed_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    let rej = rejections_2();
    let c = j
        .append(&[
            Entry {
                received_at_ms: T1,
                topic: TOPIC_1,
                payload: PAYLOAD_1,
                station: Some(STATION_1.into()),
                rejections: &[],
                points: vec![LINE_1.into()],
                once: false,
            },
            Entry {
                received_at_ms: T1 + 1000,
                topic: TOPIC_2,
                payload: PAYLOAD_2,
                station: None,
                rejections: &rej,
                points: vec![],
                once: false,
            },
        ])
        .unwrap();
    assert_eq!((c.head_id, hex::encode(c.head_hash)), (2, KNOWN_2.into()));
    let stored: Vec<String> = raw(dir.path())
        .prepare("SELECT hash FROM messages ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|h| hex::encode(h.unwrap()))
        .collect();
    assert_eq!(stored, [KNOWN_1, KNOWN_2]);
    let r = verify(dir.path()).unwrap();
    assert!(r.ok(), "{r}");
    assert_eq!(r.head, (2, KNOWN_2.to_string()));
}

// --- verify: every hashed column, the checks beside the hash, the head ----------------------

const STACK: &str = "env/dinh-vu/dv-steel/stack-1";

/// A journal of six messages, two points each (message i owns points 2i−1 and 2i), received
/// a second apart; message 3 carries one rejection.
fn six_records() -> (tempfile::TempDir, [u8; 32]) {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    let rej = [Rejection {
        reason: Reason::Unit,
        detail: "unit \"ppb\" does not convert to mg/Nm3 for SO2".into(),
        index: Some(1),
    }];
    let payloads: Vec<Vec<u8>> = (1..=6)
        .map(|i| {
            format!(
                r#"{{"ts":{},"readings":[{{"param":"SO2","value":{i}}}]}}"#,
                T1
            )
            .into()
        })
        .collect();
    let entries: Vec<Entry> = (1..=6usize)
        .map(|i| Entry {
            received_at_ms: T1 + i as i64 * 1000,
            topic: STACK,
            payload: &payloads[i - 1],
            station: Some("dinh-vu/dv-steel/stack-1".into()),
            rejections: if i == 3 { &rej } else { &[] },
            points: (0..2)
                .map(|k| format!("reading,param=SO2,k={k} value={i} {T1}"))
                .collect(),
            once: false,
        })
        .collect();
    let c = j.append(&entries).unwrap();
    let r = verify(dir.path()).unwrap();
    assert!(r.ok(), "{r}");
    assert!(
        !r.to_string().contains("deleted"),
        "nothing was pruned: {r}"
    );
    (dir, c.head_hash)
}

fn raw(dir: &Path) -> Connection {
    Connection::open(db_path(dir)).unwrap()
}

/// The problem `verify` finds after `sql` is run on a fresh six-record journal.
fn problem_after(sql: &str) -> Problem {
    let (dir, _) = six_records();
    raw(dir.path()).execute_batch(sql).unwrap();
    let r = verify(dir.path()).unwrap();
    assert!(!r.ok(), "{r}");
    assert!(r.to_string().starts_with("journal NOT intact: "), "{r}");
    r.problem
        .unwrap_or_else(|| panic!("verify saw nothing wrong after {sql}"))
}

fn altered(p: &Problem) -> Option<u64> {
    match p {
        Problem::Altered { id, .. } => Some(*id),
        _ => None,
    }
}

#[test]
fn verify_names_a_record_whose_topic_receive_time_or_station_changed() {
    for (what, sql) in [
        (
            "topic",
            "UPDATE messages SET topic = 'env/dinh-vu/dv-steel/stack-2' WHERE id = 4",
        ),
        (
            "receive time",
            "UPDATE messages SET received_at_ms = received_at_ms + 1 WHERE id = 4",
        ),
        (
            "station removed",
            "UPDATE messages SET station = NULL WHERE id = 4",
        ),
        (
            "station changed",
            "UPDATE messages SET station = 'dinh-vu/dv-steel/stack-2' WHERE id = 4",
        ),
        ("id of a point", "UPDATE points SET id = 100 WHERE id = 8"),
        (
            "line of a point",
            "UPDATE points SET line = 'x' WHERE id = 8",
        ),
        (
            "point count",
            "UPDATE messages SET n_points = 1 WHERE id = 4",
        ),
        (
            "first point",
            "UPDATE messages SET first_point = 8 WHERE id = 4",
        ),
    ] {
        let p = problem_after(sql);
        assert_eq!(altered(&p), Some(4), "{what}: {p}");
    }
    for (what, sql) in [
        (
            "rejected reading",
            "UPDATE rejections SET reading = NULL WHERE msg_id = 3",
        ),
        (
            "rejection reason",
            "UPDATE rejections SET reason = 'value' WHERE msg_id = 3",
        ),
        (
            "rejection detail",
            "UPDATE rejections SET detail = 'fine' WHERE msg_id = 3",
        ),
        (
            "rejection position",
            "UPDATE rejections SET seq = 1 WHERE msg_id = 3",
        ),
    ] {
        let p = problem_after(sql);
        assert_eq!(altered(&p), Some(3), "{what}: {p}");
    }
}

// The counts stored on a message and the owner of each point are not hashed: `verify` checks
// them beside the hash, so rows moved between messages or hidden by a count are still seen.
#[test]
fn verify_checks_rejection_counts_and_point_ownership_beside_the_hash() {
    for (what, sql, id) in [
        (
            "rejection count lowered",
            "UPDATE messages SET n_rejected = 0 WHERE id = 3",
            3,
        ),
        (
            "rejection count raised",
            "UPDATE messages SET n_rejected = 1 WHERE id = 4",
            4,
        ),
        (
            "a rejection moved to another message",
            "UPDATE rejections SET msg_id = 4 WHERE msg_id = 3",
            3,
        ),
        (
            "a point given to another message",
            "UPDATE points SET msg_id = 3 WHERE id = 7",
            4,
        ),
    ] {
        let p = problem_after(sql);
        assert_eq!(altered(&p), Some(id), "{what}: {p}");
        assert!(
            p.to_string()
                .contains(&format!("record {id} (topic {STACK}")),
            "{p}"
        );
    }
}

#[test]
fn verify_compares_the_chain_with_the_head_recorded_at_the_last_commit() {
    let (dir, head) = six_records();
    let db = raw(dir.path());
    db.execute(
        "UPDATE meta SET value = ?2 WHERE key = ?1",
        (key::HEAD_HASH, &[7u8; 32][..]),
    )
    .unwrap();
    let r = verify(dir.path()).unwrap();
    assert_eq!(
        r.problem,
        Some(Problem::HeadMismatch {
            id: 6,
            recorded: format!("{} for record 6", hex::encode([7u8; 32])),
            found: hex::encode(head),
        })
    );
    assert_eq!(r.records, 6);
    assert!(
        r.to_string().contains(&format!(
            "the newest record 6 has hash {}, but the last commit recorded",
            hex::encode(head)
        )),
        "{r}"
    );

    // The right hash, but recorded for an older record: the chain goes on past the head.
    db.execute(
        "UPDATE meta SET value = ?2 WHERE key = ?1",
        (key::HEAD_HASH, &head[..]),
    )
    .unwrap();
    assert!(verify(dir.path()).unwrap().ok());
    db.execute("UPDATE meta SET value = 5 WHERE key = ?1", [key::HEAD_ID])
        .unwrap();
    let r = verify(dir.path()).unwrap();
    assert!(
        matches!(r.problem, Some(Problem::HeadMismatch { id: 6, .. })),
        "{r}"
    );

    // A chain base that is not the hash the first record was written after.
    let p = problem_after(&format!(
        "UPDATE meta SET value = x'{}' WHERE key = '{}'",
        "01".repeat(32),
        key::BASE_HASH
    ));
    assert_eq!(altered(&p), Some(1), "{p}");
}

// --- Durability ---------------------------------------------------------------------------

#[test]
fn a_durable_writer_syncs_every_commit_and_durable_is_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let pragma = |j: &Journal, name: &str| -> String {
        j.connection()
            .pragma_query_value(None, name, |r| r.get::<_, rusqlite::types::Value>(0))
            .map(|v| match v {
                rusqlite::types::Value::Integer(i) => i.to_string(),
                rusqlite::types::Value::Text(t) => t,
                other => format!("{other:?}"),
            })
            .unwrap()
    };
    let j = Journal::open(&dir.path().join("durable"), true).unwrap();
    assert_eq!(pragma(&j, "journal_mode"), "wal");
    // 2 = FULL: in WAL mode, NORMAL (1) lets a commit be acknowledged before it is on disk.
    assert_eq!(pragma(&j, "synchronous"), "2", "synchronous = FULL");
    let j = Journal::open(&dir.path().join("fast"), false).unwrap();
    assert_eq!(pragma(&j, "synchronous"), "0", "synchronous = OFF");

    assert!(crate::config::JournalSettings::default().durable);
    let file = dir.path().join("quantrac.toml");
    std::fs::write(&file, "[journal]\nretention_days = 30\n").unwrap();
    let settings = crate::config::Settings::load(&file, true, Some(Default::default())).unwrap();
    assert!(settings.journal.durable, "journal.durable defaults to true");
}

// --- Acknowledgement after the commit, through the stage ----------------------------------

fn processed(i: u64, ack: Ack) -> Processed {
    Processed {
        envelope: Envelope {
            topic: format!("env/p/s/st{i}"),
            payload: format!("{{\"n\":{i}}}").into_bytes(),
            oversize: None,
            received_at_ms: T1 + i as i64,
            ack,
        },
        key: None,
        readings: vec![],
        rejections: vec![],
        averages: vec![],
        engine_state: None,
    }
}

struct Stage {
    tx: mpsc::Sender<Processed>,
    acks: mpsc::Sender<AckEvent>,
    events: mpsc::Receiver<AckEvent>,
    /// Messages the stage has rendered (it renders a batch just before committing it).
    rendered: Arc<AtomicUsize>,
    metrics: Metrics,
    not_ready: Readiness,
    thread: JoinHandle<Result<(), Error>>,
}

impl Stage {
    fn start(j: Journal) -> Stage {
        let (tx, rx) = mpsc::channel(100);
        let (acks, events) = mpsc::channel(100);
        let rendered = Arc::new(AtomicUsize::new(0));
        let metrics = Metrics::new();
        let not_ready = Readiness::default();
        let (n, m, r) = (rendered.clone(), metrics.clone(), not_ready.clone());
        let thread = std::thread::spawn(move || {
            run(
                j,
                rx,
                Box::new(move |p: &Processed| {
                    n.fetch_add(1, Ordering::SeqCst);
                    vec![format!("reading value=1 {}", p.envelope.received_at_ms)]
                }),
                m,
                Arc::new(Notify::new()),
                RunParams {
                    max_bytes: u64::MAX,
                    retention: Duration::from_secs(60 * 86_400),
                    chain_log_interval: Duration::from_secs(3600),
                    prune_interval: Duration::from_secs(3600),
                    max_batch: 2_000,
                    checkpoints: None,
                    handover: Default::default(),
                },
                r,
            )
        });
        Stage {
            tx,
            acks,
            events,
            rendered,
            metrics,
            not_ready,
            thread,
        }
    }

    fn send(&self, i: u64) {
        let permit = self.acks.clone().try_reserve_owned().unwrap();
        self.tx.try_send(processed(i, Ack::new(i, permit))).unwrap();
    }

    /// Waits (at most 10 s) for `cond`.
    fn until(&self, what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "{what} never happened");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Closes the input, waits for the stage to end, and returns its result and every ack
    /// event, in order.
    fn finish(self) -> (Result<(), Error>, Vec<AckEvent>) {
        let Stage {
            tx,
            acks,
            mut events,
            thread,
            ..
        } = self;
        drop(tx);
        let result = thread.join().unwrap();
        drop(acks);
        let mut all = vec![];
        while let Ok(e) = events.try_recv() {
            all.push(e);
        }
        (result, all)
    }
}

// README, delivery guarantee 2: a message is acknowledged only after the journal transaction
// holding it is committed. Another connection holds the write lock, so the stage's commit
// waits; every message of the batch has been rendered (the step just before the commit), yet
// no ack comes out until the lock is released and the commit returns.
#[test]
fn no_ack_is_released_while_the_commit_waits_for_the_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Stage::start(Journal::open(dir.path(), true).unwrap());
    // Message 0 goes all the way: the stage is past its start-up pruning (which takes the
    // write lock too) and waits for the next message.
    s.send(0);
    s.until("the first ack", || s.rendered.load(Ordering::SeqCst) == 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        match s.events.try_recv() {
            Ok(e) => break e,
            Err(_) => {
                assert!(Instant::now() < deadline, "message 0 never acknowledged");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    };
    assert_eq!(first, AckEvent::Durable(0));
    // The commit is counted just after its acks are resolved.
    s.until("message 0's commit counted", || {
        s.metrics.journal_commits.get() == 1
    });
    let commits = s.metrics.journal_commits.get();

    let lock = raw(dir.path());
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    for i in 1..=5 {
        s.send(i);
    }
    // The stage takes what is queued when it wakes (message 1, or more) as one batch.
    s.until("the next batch rendered", || {
        s.rendered.load(Ordering::SeqCst) > 1
    });
    // Its commit is now waiting for the lock (up to the 10 s busy timeout).
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        s.events.try_recv().is_err(),
        "an ack was released before its commit"
    );
    assert_eq!(s.metrics.journal_commits.get(), commits);
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);

    let (result, events) = s.finish();
    result.unwrap();
    assert_eq!(events, (1..=5).map(AckEvent::Durable).collect::<Vec<_>>());
    assert_eq!(verify(dir.path()).unwrap().records, 6);
}

// README, delivery guarantee 2: a message that was not committed is never acknowledged. The
// writer's connection refuses every write, so the first commit fails: the stage ends with the
// error and says why on /readyz; every message, of that batch or still queued, is reported
// dropped, in order, and none durable.
#[test]
fn a_failed_commit_releases_no_ack_and_reports_every_message_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), true).unwrap();
    j.connection()
        .pragma_update(None, "query_only", true)
        .unwrap();
    let s = Stage::start(j);
    for i in 1..=5 {
        s.send(i);
    }
    s.until("a batch rendered", || s.rendered.load(Ordering::SeqCst) > 0);
    let not_ready = s.not_ready.clone();
    let (result, events) = s.finish();
    let err = result.expect_err("the commit cannot succeed");
    assert!(matches!(err, Error::Sqlite(_)), "{err}");
    assert_eq!(events, (1..=5).map(AckEvent::Dropped).collect::<Vec<_>>());
    let reason = not_ready.reason().expect("/readyz says why");
    assert!(reason.contains("journal failed"), "{reason}");
    assert_eq!(verify(dir.path()).unwrap().records, 0);
}

// --- Retention, through the stage -----------------------------------------------------------

// README: records are pruned once all their points are in InfluxDB and they are older than
// `retention_days` (default 60). The stage's parameters come from the settings in days.
#[test]
fn retention_is_counted_in_days_from_the_settings() {
    let settings = crate::config::JournalSettings {
        retention_days: 60,
        chain_log_interval_s: 0,
        ..Default::default()
    };
    let p = RunParams::from_settings(&settings);
    assert_eq!(p.retention, Duration::from_secs(60 * 86_400));
    assert_eq!(
        p.chain_log_interval,
        Duration::from_secs(1),
        "at least a second"
    );
    assert_eq!(p.max_bytes, settings.max_bytes);
}

// The stage prunes on its own, not only when the journal is full: records past the retention
// whose points InfluxDB has are deleted soon after start, the rest stays, and the chain still
// verifies from its new base. The chain head is exported from the start, for anchoring.
#[test]
fn the_stage_prunes_expired_written_records_while_not_full() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    // The default retention (60 days), which `verify` checks the pruned base against.
    let day = 86_400_000;
    let payload = b"{}";
    let entry = |received_at_ms| Entry {
        received_at_ms,
        topic: STACK,
        payload,
        station: None,
        rejections: &[],
        points: vec![format!("reading value=1 {received_at_ms}")],
        once: false,
    };
    // Three records 61 days old and two just received; the points of the first four are
    // written: the fourth is delivered but too young, the fifth not delivered.
    let c = j
        .append(&[
            entry(now - 61 * day),
            entry(now - 61 * day + 1),
            entry(now - 61 * day + 2),
            entry(now),
            entry(now + 1),
        ])
        .unwrap();
    Outbox::open(dir.path()).unwrap().written(4).unwrap();
    let (tx, rx) = mpsc::channel::<Processed>(1);
    drop(tx);
    let metrics = Metrics::new();
    run(
        j,
        rx,
        Box::new(|_: &Processed| vec![]),
        metrics.clone(),
        Arc::new(Notify::new()),
        RunParams {
            max_bytes: u64::MAX,
            retention: Duration::from_secs(60 * 86_400),
            chain_log_interval: Duration::from_secs(3600),
            prune_interval: Duration::from_secs(3600),
            max_batch: 2_000,
            checkpoints: None,
            handover: Default::default(),
        },
        Readiness::default(),
    )
    .unwrap();
    let r = verify(dir.path()).unwrap();
    assert!(r.ok(), "{r}");
    assert_eq!((r.base_id, r.records), (3, 2), "{r}");
    // Sealed first: the old day is a segment of the archive, today is not over.
    assert_eq!((r.archive.segments, r.archive.end), (1, 3), "{r}");
    // The head and the backlog are exported from the start, before any commit.
    let text = metrics.render();
    assert!(
        text.contains(&format!(
            "quantrac_journal_chain_head{{hash=\"{}\"}} 5",
            hex::encode(c.head_hash)
        )),
        "{text}"
    );
    assert_eq!(metrics.journal_backlog.get(), 1);
}
