//! The inbox driver against a real folder, with the journal's part played by the test: it
//! receives the envelopes and resolves (or drops) their acks.

use std::time::Duration;

use super::*;

const NAME: &str = "HP_DV_K1_20261129140500.txt";

fn settings(dir: &Path) -> InboxSettings {
    InboxSettings {
        dir: dir.join("in"),
        done_dir: dir.join("in/done"),
        rejected_dir: dir.join("rejected"),
        poll_ms: 20,
        settle_ms: 60,
        ..InboxSettings::default()
    }
}

struct Running {
    envelopes: mpsc::Receiver<Envelope>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    metrics: Metrics,
}

fn start(s: InboxSettings, max_bytes: usize) -> Running {
    let (tx, envelopes) = mpsc::channel(16);
    let stop = CancellationToken::new();
    let metrics = Metrics::new();
    let task = tokio::spawn(run(
        s,
        max_bytes,
        tx,
        metrics.clone(),
        Readiness::default(),
        stop.clone(),
    ));
    Running {
        envelopes,
        stop,
        task,
        metrics,
    }
}

async fn next(r: &mut Running) -> Envelope {
    tokio::time::timeout(Duration::from_secs(10), r.envelopes.recv())
        .await
        .expect("a file within 10 s")
        .expect("the inbox is running")
}

async fn until(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}");
}

fn outcome(m: &Metrics, label: &str) -> u64 {
    m.inbox_files.with_label_values(&[label]).get()
}

#[tokio::test]
async fn a_journaled_file_moves_to_done_and_a_refused_one_to_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    std::fs::create_dir_all(s.dir.join("K1")).unwrap();
    std::fs::write(
        s.dir.join("K1").join(NAME),
        "COD\t48.2\tmg/L\t20261129140500\t00",
    )
    .unwrap();
    std::fs::write(s.dir.join("notes.txt"), "hello").unwrap();
    std::fs::write(s.dir.join("upload.txt.part"), "COD\t48").unwrap();
    let mut r = start(s.clone(), 1000);
    let mut got = vec![next(&mut r).await, next(&mut r).await];
    got.sort_by(|a, b| a.topic.cmp(&b.topic));
    assert_eq!(got[0].topic, format!("$inbox/K1/{NAME}"));
    assert_eq!(got[0].payload, b"COD\t48.2\tmg/L\t20261129140500\t00");
    assert_eq!(got[1].topic, "$inbox/notes.txt");
    let notes = got.pop().unwrap();
    let file = got.pop().unwrap();
    file.ack.resolve();
    notes.ack.resolve_refused();
    until("both moved", || {
        outcome(&r.metrics, "done") == 1 && outcome(&r.metrics, "rejected") == 1
    })
    .await;
    assert!(s.done_dir.join("K1").join(NAME).exists());
    assert!(s.rejected_dir.join("notes.txt").exists());
    assert!(!s.dir.join("K1").join(NAME).exists() && !s.dir.join("notes.txt").exists());
    assert!(
        s.dir.join("upload.txt.part").exists(),
        "an upload in progress is left alone"
    );
    assert_eq!(r.metrics.messages_received.get(), 2);
    // Nothing else comes: moved files are gone, the temporary name is never taken.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(r.envelopes.try_recv().is_err());
    r.stop.cancel();
    r.task.await.unwrap();
}

#[tokio::test]
async fn a_dropped_file_stays_and_is_taken_again_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    std::fs::create_dir_all(&s.dir).unwrap();
    std::fs::write(s.dir.join(NAME), "COD\t48.2\tmg/L\t20261129140500\t00").unwrap();
    let mut r = start(s.clone(), 1000);
    let e = next(&mut r).await;
    // The service stops with the file between the inbox and the journal.
    r.stop.cancel();
    drop(e);
    tokio::time::timeout(Duration::from_secs(5), r.task)
        .await
        .expect("the inbox ends once its file is given back")
        .unwrap();
    assert!(s.dir.join(NAME).exists());
    let mut r = start(s.clone(), 1000);
    let e = next(&mut r).await;
    assert_eq!(e.topic, format!("$inbox/{NAME}"));
    e.ack.resolve();
    until("moved", || s.done_dir.join(NAME).exists()).await;
    r.stop.cancel();
    r.task.await.unwrap();
}

#[tokio::test]
async fn a_file_uploaded_again_before_its_move_stays_and_is_taken_again() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    std::fs::create_dir_all(&s.dir).unwrap();
    std::fs::write(s.dir.join(NAME), "COD\t1\tmg/L\t20261129140500\t00").unwrap();
    let mut r = start(s.clone(), 1000);
    let first = next(&mut r).await;
    // The datalogger sends the file again, corrected, while the first is being journaled.
    std::fs::write(s.dir.join(NAME), "COD\t2.5\tmg/L\t20261129140500\t00").unwrap();
    first.ack.resolve();
    let second = next(&mut r).await;
    assert_eq!(second.payload, b"COD\t2.5\tmg/L\t20261129140500\t00");
    assert!(
        !s.done_dir.join(NAME).exists(),
        "the first content was not moved in its place"
    );
    second.ack.resolve();
    until("moved", || s.done_dir.join(NAME).exists()).await;
    assert_eq!(
        std::fs::read(s.done_dir.join(NAME)).unwrap(),
        b"COD\t2.5\tmg/L\t20261129140500\t00"
    );
    r.stop.cancel();
    r.task.await.unwrap();
}

#[tokio::test]
async fn stopping_waits_for_the_files_in_flight_to_be_journaled_and_moved() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    std::fs::create_dir_all(&s.dir).unwrap();
    std::fs::write(s.dir.join(NAME), "COD\t1\tmg/L\t20261129140500\t00").unwrap();
    let mut r = start(s.clone(), 1000);
    let e = next(&mut r).await;
    r.stop.cancel();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !r.task.is_finished(),
        "a file is still on its way to the journal"
    );
    e.ack.resolve();
    tokio::time::timeout(Duration::from_secs(5), r.task)
        .await
        .unwrap()
        .unwrap();
    assert!(s.done_dir.join(NAME).exists());
}

#[tokio::test]
async fn a_file_larger_than_the_payload_limit_travels_as_an_excerpt() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    std::fs::create_dir_all(&s.dir).unwrap();
    std::fs::write(s.dir.join(NAME), vec![b'x'; 5000]).unwrap();
    let mut r = start(s.clone(), 100);
    let e = next(&mut r).await;
    assert_eq!(e.payload.len(), crate::pipeline::EXCERPT_BYTES);
    assert_eq!(
        e.oversize.as_ref().map(|o| o.bytes),
        Some(5000),
        "decode rejects it as too large"
    );
    e.ack.resolve_refused();
    until("kept whole", || s.rejected_dir.join(NAME).exists()).await;
    assert_eq!(
        std::fs::metadata(s.rejected_dir.join(NAME)).unwrap().len(),
        5000
    );
    r.stop.cancel();
    r.task.await.unwrap();
}

#[tokio::test]
async fn a_missing_inbox_folder_is_shown_on_readyz_until_it_exists() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let (tx, mut envelopes) = mpsc::channel(4);
    let stop = CancellationToken::new();
    let readiness = Readiness::default();
    let task = tokio::spawn(run(
        s.clone(),
        1000,
        tx,
        Metrics::new(),
        readiness.clone(),
        stop.clone(),
    ));
    until("not ready", || {
        readiness
            .reason()
            .is_some_and(|r| r.starts_with("inbox: cannot list"))
    })
    .await;
    std::fs::create_dir_all(&s.dir).unwrap();
    until("ready", || readiness.reason().is_none()).await;
    std::fs::write(s.dir.join(NAME), "COD\t1\tmg/L\t20261129140500\t00").unwrap();
    let e = tokio::time::timeout(Duration::from_secs(10), envelopes.recv())
        .await
        .unwrap()
        .unwrap();
    e.ack.resolve();
    stop.cancel();
    task.await.unwrap();
}
