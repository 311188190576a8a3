//! Batching by size and interval, splitting refused batches, partial writes, reading ahead.

use super::*;

// contract.md "InfluxDB schema" + style §7.6: the cursor advances only after acceptance,
// in batches of at most batch_size.
#[tokio::test(start_paused = true)]
async fn full_batches_go_out_and_the_cursor_follows() {
    let b = MemBacklog::with(10);
    let f = FakeInflux::new(|_, _| reply(204));
    let r = start(&b, &f, opts(4));
    until(|| b.cursor() == 10).await;
    let m = r.stop().await;
    let sizes: Vec<_> = f
        .requests()
        .iter()
        .map(|(_, body, _)| body.lines().count())
        .collect();
    assert_eq!(sizes, [4, 4, 2]);
    assert_eq!(b.0.lock().unwrap().cursor_moves, [4, 8, 10]);
    assert_eq!(m.influx_points_written.get(), 10);
    assert_eq!(m.journal_backlog.get(), 0);
    assert!(f.requests()[0]
        .1
        .starts_with("reading,param=COD v=1 1\nreading,param=COD v=2 2\n"));
}

// A batch that is not full waits for the flush interval (counted from when its oldest point
// was first seen); a wake that fills the batch sends it at once.
#[tokio::test(start_paused = true)]
async fn partial_batches_wait_for_the_flush_interval_full_ones_do_not() {
    let b = MemBacklog::with(2);
    let f = FakeInflux::new(|_, _| reply(204));
    let t0 = Instant::now();
    let r = start(&b, &f, opts(4));
    until(|| b.cursor() == 2).await;
    let first = f.requests()[0].0 - t0;
    assert!(
        first >= Duration::from_secs(1) && first < Duration::from_millis(1100),
        "{first:?}"
    );

    let t1 = Instant::now();
    b.push(3..=4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(f.requests().len(), 1, "two points wait for more");
    b.push(5..=6);
    r.wake.notify_one();
    until(|| b.cursor() == 6).await;
    let second = f.requests()[1].0 - t1;
    assert!(
        second < Duration::from_secs(1),
        "a full batch goes at once: {second:?}"
    );
    r.stop().await;
}

// InfluxDB v2 "400 Bad request": the whole batch is refused; splitting isolates exactly the
// bad line, the others are written, the cursor passes all of them.
#[tokio::test(start_paused = true)]
async fn split_isolates_exactly_the_bad_line() {
    let b = MemBacklog::with(8);
    b.0.lock().unwrap().points[4].1 = "reading,param=COD v=\"bad 5".into();
    let f = FakeInflux::new(|body, _| {
        if body.contains("bad") {
            Ok(Reply {
                status: 400,
                retry_after: None,
                body: r#"{"code":"invalid","message":"unable to parse"}"#.into(),
            })
        } else {
            reply(204)
        }
    });
    let r = start(&b, &f, opts(8));
    until(|| b.cursor() == 8).await;
    let m = r.stop().await;
    let o = b.0.lock().unwrap();
    assert_eq!(o.rejected.len(), 1);
    assert_eq!(o.rejected[0].0, 5);
    assert!(o.rejected[0].1.contains("unable to parse"));
    assert_eq!(m.influx_points_written.get(), 7);
    assert_eq!(m.influx_points_rejected.get(), 1);
    // Every good line went out in an accepted request exactly once.
    let accepted: Vec<String> = f
        .requests()
        .into_iter()
        .filter(|(_, _, s)| *s == 204)
        .flat_map(|(_, body, _)| body.lines().map(String::from).collect::<Vec<_>>())
        .collect();
    assert_eq!(accepted.len(), 7);
    assert!(!accepted.iter().any(|l| l.contains("bad")));
    // 8 → [1-4 ok] [5-8 400] → [5,6 400] → [5 rejected] [6 ok] → [7,8 ok]
    assert_eq!(o.cursor_moves, [4, 5, 6, 8]);
    // Refused attempts: 1-8, 5-8, 5-6 and 5 alone.
    assert_eq!(
        m.influx_write_errors.with_label_values(&["rejected"]).get(),
        4
    );
}

// InfluxDB v2 422 (partial write): the kept points are in, the dropped ones are counted;
// the batch is done and not resent.
#[tokio::test(start_paused = true)]
async fn a_partial_write_finishes_the_batch_and_counts_the_dropped() {
    let b = MemBacklog::with(5);
    let f = FakeInflux::new(|_, _| {
        Ok(Reply {
            status: 422,
            retry_after: None,
            body: "partial write: points beyond retention policy dropped=2".into(),
        })
    });
    let r = start(&b, &f, opts(5));
    until(|| b.cursor() == 5).await;
    let m = r.stop().await;
    assert_eq!(f.requests().len(), 1);
    assert_eq!(m.influx_points_written.get(), 3);
    assert_eq!(m.influx_points_rejected.get(), 2);
}

// The default next_batch_after skips the points already on the wire.
#[tokio::test]
async fn next_batch_after_skips_what_is_on_the_wire() {
    let mut b = MemBacklog::with(10);
    b.written(2).await.unwrap();
    let ids = |v: Vec<(u64, String)>| v.into_iter().map(|(id, _)| id).collect::<Vec<_>>();
    assert_eq!(ids(b.next_batch_after(5, 3, 3).await.unwrap()), [6, 7, 8]);
    assert_eq!(ids(b.next_batch_after(8, 6, 3).await.unwrap()), [9, 10]);
    assert_eq!(
        ids(b.next_batch_after(10, 8, 3).await.unwrap()),
        Vec::<u64>::new()
    );
    // A wrong hint reads too little, never the wrong points.
    assert_eq!(
        ids(b.next_batch_after(5, 0, 3).await.unwrap()),
        Vec::<u64>::new()
    );
}

#[test]
fn options_come_from_settings() {
    let s = InfluxSettings {
        batch_size: 500,
        flush_interval_ms: 250,
        retry_max_ms: 10_000,
        ..InfluxSettings::default()
    };
    let o = Options::from_settings(&s, Duration::from_secs(3));
    assert_eq!(o.batch_size, 500);
    assert_eq!(o.flush_interval, Duration::from_millis(250));
    assert_eq!(o.retry.max, Duration::from_secs(10));
    assert_eq!(o.retry.min, RETRY_MIN);
    assert_eq!(o.in_flight, IN_FLIGHT);
}

// A commit wakes the idle writer: with room in the window, a full batch goes at once, not at
// the next poll (here a minute away).
#[tokio::test(start_paused = true)]
async fn a_wake_sends_a_new_full_batch_at_once_while_idle() {
    let b = MemBacklog::with(0);
    let f = FakeInflux::new(|_, _| reply(204));
    let r = start(
        &b,
        &f,
        Options {
            flush_interval: Duration::from_secs(60),
            ..opts(4)
        },
    );
    // Idle: nothing to send, the next poll a minute away.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let t1 = Instant::now();
    b.push(1..=4);
    r.wake.notify_one();
    until(|| b.cursor() == 4).await;
    let sent = f.requests()[0].0 - t1;
    assert!(
        sent < Duration::from_secs(1),
        "sent {sent:?} after the wake"
    );
    r.stop().await;
}
