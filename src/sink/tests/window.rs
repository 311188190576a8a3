//! Several writes on the wire at once: answers out of order, a failed early batch, stopping.

use super::*;

// Outbox invariant (journal/outbox.rs: the cursor is the sink's acknowledgement): with
// several requests on the wire, answers that come out of order still move the cursor in
// order, over whole batches, and never more than `in_flight` requests are open at once.
#[tokio::test(start_paused = true)]
async fn out_of_order_answers_move_the_cursor_in_order() {
    let b = MemBacklog::with(8);
    // The first batch is slow, the others quick.
    let f = SlowInflux::new(|first, _| {
        let ms = if first == 1 { 500 } else { 10 };
        (Duration::from_millis(ms), 204)
    });
    let mut o = opts(2);
    o.in_flight = 3;
    let r = start_slow(&b, &f, o);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(f.answered(), [(3, 4, 204), (5, 6, 204)]);
    assert_eq!(b.cursor(), 0, "batch 1 is not confirmed: nothing moves");
    until(|| b.cursor() == 8).await;
    let m = r.stop().await;
    let answered = f.answered();
    assert_eq!(answered[2], (1, 2, 204));
    assert_eq!(b.0.lock().unwrap().cursor_moves, [2, 4, 6, 8]);
    assert_eq!(f.state.lock().unwrap().most_on_wire, 3);
    assert_eq!(m.influx_points_written.get(), 8);
}

// Style §2 (never lose a point): a failed early batch holds the cursor below it even when
// later batches were accepted; after the backoff everything from the cursor is sent again
// and the cursor passes every point exactly once.
#[tokio::test(start_paused = true)]
async fn a_failed_early_batch_holds_the_cursor() {
    let b = MemBacklog::with(6);
    // Attempt 0 (batch 1) fails slowly; everything else succeeds at once.
    let f = SlowInflux::new(|_, n| {
        if n == 0 {
            (Duration::from_millis(300), 500)
        } else {
            (Duration::from_millis(10), 204)
        }
    });
    let mut o = opts(2);
    o.in_flight = 3;
    o.retry = RetryPolicy {
        min: Duration::from_secs(60),
        max: Duration::from_secs(60),
    };
    let r = start_slow(&b, &f, o);
    until(|| f.answered().len() == 3).await;
    assert_eq!(f.answered()[2], (1, 2, 500));
    // Batches 2 and 3 are in InfluxDB, yet the cursor waits for batch 1.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(b.cursor(), 0);
    assert!(b.0.lock().unwrap().cursor_moves.is_empty());
    assert_eq!(r.errors("server"), 1);
    until(|| b.cursor() == 6).await;
    let m = r.stop().await;
    let answered = f.answered();
    assert_eq!(
        answered[3..].iter().map(|a| a.0).collect::<Vec<_>>(),
        [1, 3, 5],
        "resent from the cursor: {answered:?}"
    );
    assert_eq!(b.0.lock().unwrap().cursor_moves, [2, 4, 6]);
    assert_eq!(m.influx_points_written.get(), 6);
}

// Style §7 shutdown step 5: stop interrupts requests on the wire; the last flush resends
// from the cursor within the deadline, and the cursor keeps only what was confirmed.
#[tokio::test(start_paused = true)]
async fn stop_drops_requests_on_the_wire_and_flushes_from_the_cursor() {
    let b = MemBacklog::with(6);
    // Batch 1 answers at once; the others hang for an hour.
    let f = SlowInflux::new(|first, _| {
        let latency = if first == 1 {
            Duration::from_millis(10)
        } else {
            Duration::from_secs(3600)
        };
        (latency, 204)
    });
    let mut o = opts(2);
    o.in_flight = 3;
    let r = start_slow(&b, &f, o);
    until(|| b.cursor() == 2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t = Instant::now();
    r.stop().await;
    // The last flush sends batch 2 again, which hangs until the deadline.
    assert_eq!(t.elapsed(), Duration::from_secs(5));
    assert_eq!(b.cursor(), 2);
    assert_eq!(b.0.lock().unwrap().cursor_moves, [2]);
    let s = f.state.lock().unwrap();
    assert_eq!(s.started, 4, "batches 1-3, then batch 2 in the last flush");
}
