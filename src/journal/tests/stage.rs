//! The journal stage end to end: commits before acks, in order, and pausing when full.

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
    }
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
    let h = std::thread::spawn(move || {
        run(
            j,
            rx,
            Box::new(|p: &Processed| {
                vec![format!("reading value=1 {}", p.envelope.received_at_ms)]
            }),
            m,
            w,
            params(u64::MAX),
            r,
        )
    });
    drop(tx);
    h.join().unwrap().unwrap();
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
