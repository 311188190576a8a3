//! The stop signal and the last flush (style §7, shutdown step 5).

use super::*;

// Style §7 shutdown step 5: the stop signal interrupts a backoff at once, one last flush is
// attempted within the deadline, and what is unwritten stays behind the cursor.
#[tokio::test(start_paused = true)]
async fn stop_interrupts_the_backoff_and_tries_one_last_flush() {
    let b = MemBacklog::with(2);
    let f = FakeInflux::new(|_, _| reply(500));
    let mut o = opts(2);
    o.retry = RetryPolicy {
        min: Duration::from_secs(3600),
        max: Duration::from_secs(3600),
    };
    let r = start(&b, &f, o);
    until(|| f.requests().len() == 1).await;
    let t = Instant::now();
    r.stop().await;
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(f.requests().len(), 2, "one last attempt on stop");
    assert_eq!(b.cursor(), 0);
}

#[tokio::test(start_paused = true)]
async fn stop_flushes_a_batch_still_waiting_for_the_interval() {
    let b = MemBacklog::with(3);
    let f = FakeInflux::new(|_, _| reply(204));
    let mut o = opts(100);
    o.flush_interval = Duration::from_secs(60);
    let r = start(&b, &f, o);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(f.requests().is_empty());
    let m = r.stop().await;
    assert_eq!(b.cursor(), 3);
    assert_eq!(m.influx_points_written.get(), 3);
}

// The final flush is bounded by the deadline even when the server hangs.
#[tokio::test(start_paused = true)]
async fn the_final_flush_respects_the_deadline() {
    #[derive(Clone)]
    struct Hanging;
    impl WriteApi for Hanging {
        async fn write(&self, _: String) -> Result<Reply, WriteError> {
            std::future::pending().await
        }
    }
    let b = MemBacklog::with(1);
    let stop = CancellationToken::new();
    stop.cancel();
    let t = Instant::now();
    run(
        b.clone(),
        Hanging,
        opts(10),
        Metrics::new(),
        crate::readiness::Readiness::default(),
        Arc::new(Notify::new()),
        stop,
    )
    .await
    .unwrap();
    assert_eq!(t.elapsed(), Duration::from_secs(5));
    assert_eq!(b.cursor(), 0);
}
