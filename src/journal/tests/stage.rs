//! The journal stage end to end: commits before acks, in order, batches, pausing when the
//! journal or the disk is full, a deleted file, and signing after pruning.

use super::*;
use crate::journal::writer::PRUNE_CHUNK;
use crate::metrics::Metrics;
use crate::pipeline::{Ack, AckEvent, Envelope, Processed};

fn processed(i: u64, ack: Ack) -> Processed {
    Processed {
        envelope: Envelope {
            topic: format!("env/p/s/st{i}"),
            payload: payload(i),
            oversize: None,
            received_at_ms: T0 + i as i64,
            ack,
        },
        key: crate::model::StationKey::parse("p", "s", "st").ok(),
        readings: vec![],
        rejections: vec![],
        averages: vec![],
        engine_state: None,
    }
}

fn params(max_bytes: u64) -> RunParams {
    RunParams {
        max_bytes,
        retention: Duration::from_secs(60 * 86_400),
        chain_log_interval: Duration::from_secs(3600),
        prune_interval: Duration::from_secs(60),
        max_batch: 2_000,
        checkpoints: None,
        handover: Default::default(),
    }
}

/// Waits (at most 10 s) for `cond`.
fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} never happened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Message `i` with a payload that needs pages of its own.
fn big(i: u64, ack: Ack) -> Processed {
    let mut p = processed(i, ack);
    p.envelope.payload = vec![b'x'; 200_000];
    p
}

/// A page limit on the writer's connection stands in for the disk: the file may not grow, and
/// the ballast another connection put there is the only room there is, once dropped
/// (`DROP TABLE ballast` on the returned connection).
fn fill_the_disk(dir: &Path, j: &Journal) -> Connection {
    let ballast = raw(dir);
    ballast
        .execute_batch(
            "CREATE TABLE ballast(b BLOB); INSERT INTO ballast VALUES (zeroblob(1000000));",
        )
        .unwrap();
    let pages: i64 = j
        .connection()
        .pragma_query_value(None, "page_count", |r| r.get(0))
        .unwrap();
    j.connection()
        .pragma_update(None, "max_page_count", pages)
        .unwrap();
    ballast
}

#[test]
fn commits_then_resolves_acks_in_order_and_drains_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), true).unwrap();
    let (tx, rx) = mpsc::channel(100);
    let (ack_tx, mut ack_rx) = mpsc::channel(100);
    let metrics = Metrics::new();
    let wake = Arc::new(Notify::new());
    let not_ready = crate::readiness::Readiness::default();
    for i in 1..=50 {
        let permit = ack_tx.clone().try_reserve_owned().unwrap();
        tx.try_send(processed(i, Ack::new(i, permit))).unwrap();
    }
    drop(ack_tx);
    let (m, w, r) = (metrics.clone(), wake.clone(), not_ready.clone());
    // The compliance stage left its state as its input ended.
    let state = crate::pipeline::EngineState {
        fingerprint: [3; 32],
        bytes: vec![1, 2, 3],
    };
    let params = params(u64::MAX);
    params.handover.put(state.clone());
    let h = std::thread::spawn(move || {
        run(
            j,
            rx,
            Box::new(|p: &Processed| {
                vec![format!("reading value=1 {}", p.envelope.received_at_ms)]
            }),
            m,
            w,
            params,
            r,
        )
    });
    drop(tx);
    h.join().unwrap().unwrap();
    // Kept once all 50 were committed, as covering the last.
    let kept = crate::journal::engine_state::read(dir.path())
        .unwrap()
        .unwrap();
    assert_eq!(kept.state, state);
    assert_eq!(kept.covers_id, 50);
    let head = Journal::open(dir.path(), true)
        .unwrap()
        .chain_head()
        .unwrap();
    assert_eq!((kept.covers_id, kept.covers_hash), head);
    let mut acked = vec![];
    while let Ok(event) = ack_rx.try_recv() {
        acked.push(event);
    }
    assert_eq!(acked, (1..=50).map(AckEvent::Durable).collect::<Vec<_>>());
    assert!(metrics.journal_commits.get() >= 1);
    assert_eq!(metrics.journal_backlog.get(), 50);
    assert!(metrics.journal_bytes.get() > 0);
    let r = verify(dir.path()).unwrap();
    assert!(r.ok(), "{r}");
    let text = metrics.render();
    assert!(
        text.contains(&format!(
            "quantrac_journal_chain_head{{hash=\"{}\"}} 50",
            r.head.1
        )),
        "{text}"
    );
    assert_eq!(text.matches("quantrac_journal_chain_head{").count(), 1);
    assert_eq!(not_ready.reason(), None);
    let msgs = Journal::open(dir.path(), true)
        .unwrap()
        .messages_since(0)
        .unwrap();
    assert_eq!(msgs.len(), 50);
    assert_eq!(msgs[0].station.as_deref(), Some("p/s/st"));
}

#[test]
fn when_full_it_takes_nothing_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), true).unwrap();
    let (tx, rx) = mpsc::channel(10);
    let (ack_tx, mut ack_rx) = mpsc::channel(10);
    let metrics = Metrics::new();
    let not_ready = crate::readiness::Readiness::default();
    let permit = ack_tx.clone().try_reserve_owned().unwrap();
    tx.try_send(processed(1, Ack::new(1, permit))).unwrap();
    let (m, r) = (metrics.clone(), not_ready.clone());
    let h = std::thread::spawn(move || {
        run(
            j,
            rx,
            Box::new(|_: &Processed| vec![]),
            m,
            Arc::new(Notify::new()),
            params(1),
            r,
        )
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while metrics.journal_full.get() != 1 {
        assert!(std::time::Instant::now() < deadline, "never reported full");
        std::thread::sleep(Duration::from_millis(20));
    }
    let reason = not_ready.reason().unwrap();
    assert!(reason.contains("journal is full"), "{reason}");
    drop(tx);
    h.join().unwrap().unwrap();
    drop(ack_tx);
    // Never committed, so never acknowledged (the broker keeps the message), and the
    // source is told so.
    assert_eq!(ack_rx.try_recv().ok(), Some(AckEvent::Dropped(1)));
    let r = verify(dir.path()).unwrap();
    assert_eq!(r.records, 0);
}

// A transaction holds at most `max_batch` messages: what is queued is taken in batches of that
// size.
#[test]
fn a_batch_holds_at_most_max_batch_messages() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), true).unwrap();
    let (tx, rx) = mpsc::channel(100);
    let (ack_tx, _ack_rx) = mpsc::channel(100);
    for i in 1..=10 {
        let permit = ack_tx.clone().try_reserve_owned().unwrap();
        tx.try_send(processed(i, Ack::new(i, permit))).unwrap();
    }
    drop(tx);
    let metrics = Metrics::new();
    let params = RunParams {
        max_batch: 3,
        ..params(u64::MAX)
    };
    let render = Box::new(|_: &Processed| vec![]);
    run(
        j,
        rx,
        render,
        metrics.clone(),
        Arc::new(Notify::new()),
        params,
        Default::default(),
    )
    .unwrap();
    assert_eq!(metrics.journal_commits.get(), 4, "3 + 3 + 3 + 1");
    assert_eq!(verify(dir.path()).unwrap().records, 10);
}

// The compliance state kept while running covers exactly the records before it: the batch
// ends at the record carrying it, even with more queued behind.
#[test]
fn a_state_carried_by_a_record_is_kept_as_covering_that_record() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), true).unwrap();
    let (tx, rx) = mpsc::channel(100);
    let (ack_tx, mut ack_rx) = mpsc::channel(100);
    let state = crate::pipeline::EngineState {
        fingerprint: [4; 32],
        bytes: vec![9, 8, 7],
    };
    for i in 1..=10 {
        let permit = ack_tx.clone().try_reserve_owned().unwrap();
        let mut p = processed(i, Ack::new(i, permit));
        if i == 4 {
            p.engine_state = Some(Box::new(state.clone()));
        }
        tx.try_send(p).unwrap();
    }
    drop((tx, ack_tx));
    let metrics = Metrics::new();
    let render = Box::new(|_: &Processed| vec![]);
    let params = params(u64::MAX);
    run(
        j,
        rx,
        render,
        metrics.clone(),
        Arc::new(Notify::new()),
        params,
        Default::default(),
    )
    .unwrap();
    assert_eq!(metrics.journal_commits.get(), 2, "4, then the 6 behind it");
    let kept = crate::journal::engine_state::read(dir.path())
        .unwrap()
        .unwrap();
    assert_eq!(kept.state, state);
    let j = Journal::open(dir.path(), true).unwrap();
    assert_eq!(kept.covers_id, 4);
    assert_eq!(j.message_hash(4).unwrap(), Some(kept.covers_hash));
    let mut acked = vec![];
    while let Ok(event) = ack_rx.try_recv() {
        acked.push(event);
    }
    assert_eq!(acked, (1..=10).map(AckEvent::Durable).collect::<Vec<_>>());
}

// README, delivery guarantee 5: when the disk is full, the commit in hand is held, nothing is
// acknowledged, `quantrac_journal_full` is 1 and /readyz says `disk full`; intake resumes by
// itself when space returns (here: another connection frees pages).
#[test]
fn a_full_disk_holds_the_batch_unacknowledged_until_there_is_room() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), true).unwrap();
    let ballast = fill_the_disk(dir.path(), &j);
    let (tx, rx) = mpsc::channel(10);
    let (ack_tx, mut ack_rx) = mpsc::channel(10);
    let metrics = Metrics::new();
    let not_ready = crate::readiness::Readiness::default();
    let permit = ack_tx.clone().try_reserve_owned().unwrap();
    tx.try_send(big(1, Ack::new(1, permit))).unwrap();
    let (m, r) = (metrics.clone(), not_ready.clone());
    let h = std::thread::spawn(move || {
        run(
            j,
            rx,
            Box::new(|_: &Processed| vec![]),
            m,
            Arc::new(Notify::new()),
            params(u64::MAX),
            r,
        )
    });
    until("disk full said on /readyz", || {
        not_ready.reason().is_some_and(|r| r.contains("disk full"))
    });
    assert_eq!(metrics.journal_full.get(), 1);
    assert!(ack_rx.try_recv().is_err(), "acknowledged without a commit");
    assert_eq!(verify(dir.path()).unwrap().records, 0);

    ballast.execute_batch("DROP TABLE ballast").unwrap();
    until("ready again", || not_ready.reason().is_none());
    assert_eq!(ack_rx.try_recv().ok(), Some(AckEvent::Durable(1)));
    assert_eq!(metrics.journal_full.get(), 0);
    drop(tx);
    h.join().unwrap().unwrap();
    let r = verify(dir.path()).unwrap();
    assert!(r.ok(), "{r}");
    assert_eq!(r.records, 1);
}

// README, delivery guarantee 5: stopping while the disk is full ends the stage; the held
// batch is never acknowledged (the broker keeps it) and the source is told it was dropped.
#[test]
fn stopping_while_the_disk_is_full_acknowledges_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), true).unwrap();
    let _ballast = fill_the_disk(dir.path(), &j);
    let (tx, rx) = mpsc::channel(10);
    let (ack_tx, mut ack_rx) = mpsc::channel(10);
    let not_ready = crate::readiness::Readiness::default();
    let permit = ack_tx.clone().try_reserve_owned().unwrap();
    tx.try_send(big(1, Ack::new(1, permit))).unwrap();
    let r = not_ready.clone();
    let params = params(u64::MAX);
    params.handover.put(crate::pipeline::EngineState {
        fingerprint: [3; 32],
        bytes: vec![1, 2, 3],
    });
    let h = std::thread::spawn(move || {
        let m = Metrics::new();
        run(
            j,
            rx,
            Box::new(|_: &Processed| vec![]),
            m,
            Arc::new(Notify::new()),
            params,
            r,
        )
    });
    until("disk full said on /readyz", || {
        not_ready.reason().is_some_and(|r| r.contains("disk full"))
    });
    drop(tx);
    until("the stage ends", || h.is_finished());
    h.join().unwrap().unwrap();
    drop(ack_tx);
    assert_eq!(ack_rx.try_recv().ok(), Some(AckEvent::Dropped(1)));
    assert_eq!(verify(dir.path()).unwrap().records, 0);
    // The state covers a message the journal does not hold: not kept.
    assert_eq!(
        crate::journal::engine_state::read(dir.path()).unwrap(),
        None
    );
}

// README, delivery guarantee 7: a journal file deleted under the service is noticed within a
// second, also while the journal is full and the stage takes nothing.
#[test]
fn a_deleted_journal_is_noticed_while_full() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), true).unwrap();
    let (tx, rx) = mpsc::channel(10);
    let not_ready = crate::readiness::Readiness::default();
    let r = not_ready.clone();
    let h = std::thread::spawn(move || {
        let m = Metrics::new();
        run(
            j,
            rx,
            Box::new(|_: &Processed| vec![]),
            m,
            Arc::new(Notify::new()),
            params(1),
            r,
        )
    });
    until("full", || {
        not_ready
            .reason()
            .is_some_and(|r| r.contains("journal is full"))
    });
    std::fs::remove_file(db_path(dir.path())).unwrap();
    until("the deleted file noticed", || {
        not_ready
            .reason()
            .is_some_and(|r| r.contains("was deleted"))
    });
    // It takes nothing more, and stays until the service stops.
    let (ack_tx, mut ack_rx) = mpsc::channel(10);
    let permit = ack_tx.clone().try_reserve_owned().unwrap();
    tx.try_send(processed(1, Ack::new(1, permit))).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !h.is_finished(),
        "the stage ended before the service stopped"
    );
    drop(tx);
    h.join().unwrap().unwrap();
    drop(ack_tx);
    assert_eq!(ack_rx.try_recv().ok(), Some(AckEvent::Dropped(1)));
}

// README: with a signing key the chain is signed after every pruning, at once (the moved base
// is signed while the service runs, not only at shutdown), and otherwise once an interval, not
// at every commit.
#[test]
fn a_pruning_is_signed_at_once_and_commits_wait_for_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let p = payload(1);
    let entry = |received_at_ms| Entry {
        received_at_ms,
        topic: "env/p/s/st",
        payload: &p,
        station: None,
        rejections: &[],
        points: vec![format!("reading value=1 {received_at_ms}")],
        once: false,
    };
    j.append(&[
        entry(now - 61 * DAY_MS),
        entry(now - 61 * DAY_MS + 1),
        entry(now),
    ])
    .unwrap();
    Outbox::open(dir.path()).unwrap().written(3).unwrap();
    let (key, _) = evidence::keys();
    let params = RunParams {
        prune_interval: Duration::from_secs(3600),
        checkpoints: Some(checkpoint::Checkpointer::new(
            key,
            Duration::from_secs(3600),
        )),
        ..params(u64::MAX)
    };
    let (tx, rx) = mpsc::channel(10);
    let (ack_tx, mut ack_rx) = mpsc::channel(10);
    let h = std::thread::spawn(move || {
        let m = Metrics::new();
        let render = Box::new(|_: &Processed| vec![]);
        run(
            j,
            rx,
            render,
            m,
            Arc::new(Notify::new()),
            params,
            Default::default(),
        )
    });
    let conn = raw(dir.path());
    let bases = || -> Vec<u64> {
        checkpoint::read_all(&conn)
            .unwrap()
            .iter()
            .map(|s| s.checkpoint.base_id)
            .collect()
    };
    until("a checkpoint of the pruned base", || bases().contains(&2));
    // Two commits: the turn after the first one has passed once the second is acknowledged.
    for i in [10, 11] {
        let permit = ack_tx.clone().try_reserve_owned().unwrap();
        tx.try_send(processed(i, Ack::new(i, permit))).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while ack_rx.try_recv().is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "{i} never acknowledged"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert_eq!(bases(), [0, 2], "at start and after pruning only");
    drop(tx);
    h.join().unwrap().unwrap();
    assert_eq!(bases(), [0, 2, 2], "and the final head at shutdown");
}

#[test]
fn a_backlog_of_expired_records_is_sealed_and_pruned_chunk_after_chunk_not_one_a_minute() {
    // A province writes ~170 records a second; one chunk a minute would never catch up.
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    let n = 2 * PRUNE_CHUNK + 5;
    fill(&mut j, n, 1, 5_000);
    Outbox::open(dir.path()).unwrap().written(n).unwrap();
    let (tx, rx) = mpsc::channel(10);
    let metrics = Metrics::new();
    let mut p = params(u64::MAX);
    p.retention = Duration::from_secs(86_400);
    p.prune_interval = Duration::from_secs(3_600);
    let h = std::thread::spawn(move || {
        run(
            j,
            rx,
            Box::new(|_: &Processed| vec![]),
            metrics,
            Arc::new(Notify::new()),
            p,
            crate::readiness::Readiness::default(),
        )
    });
    let left = || -> i64 {
        raw(dir.path())
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while left() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} records still there: pruning waited for its interval",
            left()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(tx);
    h.join().unwrap().unwrap();
    let one_day = Options {
        retention: Duration::from_secs(86_400),
        ..Options::default()
    };
    let r = verify_with(dir.path(), &one_day).unwrap();
    assert!(r.ok(), "{r}");
    assert_eq!((r.archive.records, r.archive.segments), (n, 3));
}

#[test]
fn days_sealed_one_a_turn_are_pruned_turn_after_turn_not_one_an_interval() {
    // Four past days of a few records each: each turn seals one day and deletes its records
    // (far less than a chunk). A turn that sealed is followed by another at once, so the
    // last day does not wait three pruning intervals.
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), true).unwrap();
    for day in 0..4 {
        let at = T0 - (10 - day) * DAY_MS;
        j.append(&[Entry {
            received_at_ms: at,
            topic: "env/dinh-vu/dv-steel/stack-1",
            payload: b"{}",
            station: Some("dinh-vu/dv-steel/stack-1".into()),
            rejections: &[],
            points: vec![format!("reading,param=SO2 value=1 {at}")],
            once: false,
        }])
        .unwrap();
    }
    Outbox::open(dir.path()).unwrap().written(4).unwrap();
    let (tx, rx) = mpsc::channel(10);
    let mut p = params(u64::MAX);
    p.retention = Duration::from_secs(86_400);
    p.prune_interval = Duration::from_secs(3_600);
    let h = std::thread::spawn(move || {
        let mut result = None;
        let log = crate::telemetry::logged(|| {
            result = Some(run(
                j,
                rx,
                Box::new(|_: &Processed| vec![]),
                Metrics::new(),
                Arc::new(Notify::new()),
                p,
                crate::readiness::Readiness::default(),
            ))
        });
        (result.unwrap(), log)
    });
    until("every day pruned", || {
        raw(dir.path())
            .query_row("SELECT count(*) FROM messages", [], |r| r.get::<_, i64>(0))
            .unwrap()
            == 0
    });
    drop(tx);
    let (result, log) = h.join().unwrap();
    result.unwrap();
    // Each turn that sealed says which records it sealed: every one, once.
    let sealed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("journal days sealed into the archive"))
        .filter_map(|l| l.split(" from=").nth(1))
        .collect();
    assert_eq!(sealed, ["1 archive_end=2", "3 archive_end=4"], "{log}");
    // The chain head is logged, for operators to publish as an anchor (README, "publish
    // anchors").
    let (head, hash) = Journal::open(dir.path(), true)
        .unwrap()
        .chain_head()
        .unwrap();
    assert!(
        log.contains(&format!(
            "journal chain head chain_head_id={head} chain_head_hash={}",
            hex::encode(hash)
        )),
        "{log}"
    );
    let one_day = Options {
        retention: Duration::from_secs(86_400),
        ..Options::default()
    };
    let r = verify_with(dir.path(), &one_day).unwrap();
    assert!(r.ok(), "{r}");
    assert_eq!((r.archive.records, r.archive.segments), (4, 4));
}
