//! Failures of InfluxDB (throttling, outages, refused credentials) and of the outbox.

use super::*;

// RFC 9110 §10.2.3 via InfluxDB 429: the next attempt waits exactly Retry-After; nothing
// advances meanwhile.
#[tokio::test(start_paused = true)]
async fn throttling_honours_retry_after() {
    let b = MemBacklog::with(4);
    let f = FakeInflux::new(|_, n| {
        if n == 0 {
            Ok(Reply {
                status: 429,
                retry_after: Some("7".into()),
                body: String::new(),
            })
        } else {
            reply(204)
        }
    });
    let r = start(&b, &f, opts(4));
    until(|| !f.requests().is_empty()).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(b.cursor(), 0, "nothing advances while throttled");
    assert_eq!(f.requests().len(), 1);
    until(|| b.cursor() == 4).await;
    let req = f.requests();
    assert_eq!(req[1].0 - req[0].0, Duration::from_secs(7));
    assert_eq!(r.errors("throttled"), 1);
    r.stop().await;
}

/// `at` as an HTTP-date (RFC 9110 §5.6.7, IMF-fixdate).
fn http_date(at: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at)
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// The wait between a 503 carrying `retry_after` and the next attempt, through the writer loop.
async fn wait_after_retry_after(retry_after: String) -> Duration {
    let b = MemBacklog::with(2);
    let f = FakeInflux::new(move |_, n| {
        if n == 0 {
            Ok(Reply {
                status: 503,
                retry_after: Some(retry_after.clone()),
                body: String::new(),
            })
        } else {
            reply(204)
        }
    });
    let r = start(&b, &f, opts(2));
    until(|| b.cursor() == 2).await;
    let req = f.requests();
    assert_eq!(req.len(), 2);
    assert_eq!(r.errors("throttled"), 1);
    r.stop().await;
    req[1].0 - req[0].0
}

// README: 429/503 → Retry-After honoured, and every wait is bounded by `retry_max_ms` (30 s
// here): a server asking for an hour, in seconds or as an HTTP-date, cannot park the writer
// for an hour.
#[tokio::test(start_paused = true)]
async fn a_long_retry_after_is_capped_at_the_longest_backoff() {
    let hour = Duration::from_secs(3600);
    assert_eq!(
        wait_after_retry_after("3600".into()).await,
        Duration::from_secs(30)
    );
    let date = http_date(std::time::SystemTime::now() + hour);
    assert_eq!(wait_after_retry_after(date).await, Duration::from_secs(30));
    // A date within the bound is honoured (to the second the date is written in).
    let date = http_date(std::time::SystemTime::now() + Duration::from_secs(10));
    let wait = wait_after_retry_after(date.clone()).await;
    assert!(
        wait > Duration::from_secs(8) && wait <= Duration::from_secs(10),
        "{date}: {wait:?}"
    );
}

// Style §2 (never wedge, never lose): under a long outage the cursor never moves and the
// loop keeps trying, with growing waits, until the server is back.
#[tokio::test(start_paused = true)]
async fn the_cursor_never_advances_on_failure_and_retries_resume() {
    let b = MemBacklog::with(3);
    let up = Arc::new(Mutex::new(false));
    let up2 = up.clone();
    let f = FakeInflux::new(move |_, n| {
        if *up2.lock().unwrap() {
            reply(204)
        } else if n % 2 == 0 {
            Err(WriteError::Connect("connection refused".into()))
        } else {
            reply(503)
        }
    });
    let r = start(&b, &f, opts(3));
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(b.cursor(), 0);
    assert!(b.0.lock().unwrap().cursor_moves.is_empty());
    let tries = f.requests().len();
    // Full jitter waits between 200 ms and 30 s: at least 20 tries in 10 minutes, and
    // fewer than one every 200 ms.
    assert!((20..3000).contains(&tries), "{tries}");
    assert!(r.errors("connect") >= 10 && r.errors("throttled") >= 10);
    assert_eq!(r.metrics.journal_backlog.get(), 3);
    *up.lock().unwrap() = true;
    until(|| b.cursor() == 3).await;
    let m = r.stop().await;
    assert_eq!(m.influx_points_written.get(), 3);
}

// 401/403: credentials refused: the data stays, the retry waits the longest backoff.
#[tokio::test(start_paused = true)]
async fn refused_credentials_keep_the_data_and_retry_slowly() {
    let b = MemBacklog::with(2);
    let f = FakeInflux::new(|_, n| reply(if n < 2 { 401 } else { 204 }));
    let r = start(&b, &f, opts(2));
    until(|| b.cursor() == 2).await;
    let req = f.requests();
    assert_eq!(req.len(), 3);
    assert_eq!(req[1].0 - req[0].0, Duration::from_secs(30));
    assert_eq!(req[2].0 - req[1].0, Duration::from_secs(30));
    assert_eq!(r.errors("auth"), 2);
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_journal_read_error_is_retried() {
    let b = MemBacklog::with(2);
    b.0.lock().unwrap().fail_reads = 3;
    let f = FakeInflux::new(|_, _| reply(204));
    let r = start(&b, &f, opts(2));
    until(|| b.cursor() == 2).await;
    r.stop().await;
    assert_eq!(b.0.lock().unwrap().fail_reads, 0);
}

// A transient outbox error while moving the cursor: InfluxDB has the points but the cursor
// stays; after the backoff they are sent again (harmless, they overwrite) and counted once,
// when the cursor passes them.
#[tokio::test(start_paused = true)]
async fn a_transient_cursor_error_is_retried_and_counted_once() {
    let b = MemBacklog::with(2);
    b.0.lock()
        .unwrap()
        .written_errors
        .push_back(BacklogError::Transient("database is locked".into()));
    let f = FakeInflux::new(|_, _| reply(204));
    let r = start(&b, &f, opts(2));
    until(|| b.cursor() == 2).await;
    let m = r.stop().await;
    assert_eq!(
        f.requests().len(),
        2,
        "sent again after the cursor did not move"
    );
    assert_eq!(b.0.lock().unwrap().cursor_moves, [2]);
    assert_eq!(m.influx_points_written.get(), 2);
}

// Issue 8 (typed errors): an outbox that fails for good stops the writer at once, and `run`
// says why; nothing is sent and the points stay in the journal.
#[tokio::test(start_paused = true)]
async fn a_fatal_outbox_error_stops_the_writer_and_says_why() {
    let b = MemBacklog::with(3);
    let fatal = BacklogError::Fatal("journal is corrupt: hash of 31 bytes".into());
    b.0.lock().unwrap().broken = Some(fatal.clone());
    let f = FakeInflux::new(|_, _| reply(204));
    let r = start(&b, &f, opts(3));
    let t = Instant::now();
    let result = r.task.await.unwrap();
    assert_eq!(result, Err(fatal));
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(f.requests().is_empty());
    assert_eq!(b.cursor(), 0);
}

// A fatal error moving the cursor after InfluxDB accepted the batch: the writer stops without
// counting the points as written (they were not confirmed in the journal) and without a
// last flush.
#[tokio::test(start_paused = true)]
async fn a_fatal_cursor_error_stops_the_writer() {
    let b = MemBacklog::with(2);
    let fatal = BacklogError::Fatal("outbox cursor 2 is beyond the last committed point 1".into());
    b.0.lock().unwrap().written_errors.push_back(fatal.clone());
    let f = FakeInflux::new(|_, _| reply(204));
    let r = start(&b, &f, opts(2));
    assert_eq!(r.task.await.unwrap(), Err(fatal));
    assert_eq!(f.requests().len(), 1);
    assert_eq!(b.cursor(), 0);
    assert_eq!(r.metrics.influx_points_written.get(), 0);
}
