//! A rogue publisher: what 100,000 messages to stations nobody configured cost quantrac.
//! Prints quantrac's resident memory and the size of `/metrics` (and the time to scrape it)
//! before and after, with the default `stations.unknown = "reject"` and with
//! `unknown = "accept"` under its cap. Asserts nothing; the integration test
//! `hostile::row4_…` checks the behaviour.
//!
//! `cargo bench --bench rogue` (`QUANTRAC_ROGUE_MESSAGES` sets the count). Under `cargo test`
//! it does nothing but say how to run it.

use std::time::{Duration, Instant};

use chrono::Utc;
use quantrac_testkit::*;

const QUANTRAC: &str = env!("CARGO_BIN_EXE_quantrac");

fn rss_mb(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn scrape(q: &Quantrac) -> (usize, Duration) {
    let t = Instant::now();
    let text = q.metrics().await;
    (text.len(), t.elapsed())
}

async fn run(messages: u64, stations_section: &str) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let cfg = Quantrac::config_text(dir.path(), &broker.url(), "url = \"\"", stations_section);
    let q = Quantrac::start(QUANTRAC, dir.path(), &cfg, STATIONS);
    q.wait_ready().await;
    let (rss0, _) = rss_mb(q.proc.pid());
    let (m0, t0) = scrape(&q).await;
    let p = Publisher::connect(broker.port).await;
    let ts = Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let started = Instant::now();
    for i in 0..messages {
        p.publish(
            &format!("env/rogue/r/st{i}"),
            json_message(&ts, &[("COD", 10.0, "")]),
        )
        .await;
    }
    p.wait_acked(messages).await;
    eventually(
        "every message journaled",
        Duration::from_secs(300),
        || async {
            (q.metric("quantrac_mqtt_acks_total").await.unwrap_or(0.0) >= messages as f64)
                .then_some(())
        },
    )
    .await;
    let took = started.elapsed();
    let (rss1, peak) = rss_mb(q.proc.pid());
    let (m1, t1) = scrape(&q).await;
    let rejected = q
        .metric(r#"quantrac_readings_rejected_total{reason="unknown_station"}"#)
        .await
        .unwrap_or(0.0);
    println!(
        "  {messages} messages in {:.1} s; rejected unknown_station: {rejected}\n  \
         RSS {rss0:.0} MB → {rss1:.0} MB (peak {peak:.0} MB)\n  \
         /metrics {:.1} KB in {:.1} ms → {:.1} KB in {:.1} ms",
        took.as_secs_f64(),
        m0 as f64 / 1024.0,
        t0.as_secs_f64() * 1000.0,
        m1 as f64 / 1024.0,
        t1.as_secs_f64() * 1000.0,
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("rogue publisher bench: run `cargo bench --bench rogue` for figures");
        return;
    }
    let messages = std::env::var("QUANTRAC_ROGUE_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000u64);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("rogue publisher: {messages} messages to as many unknown stations");
    println!("stations.unknown = \"reject\" (default):");
    runtime.block_on(run(messages, ""));
    println!("stations.unknown = \"accept\", max_unknown_stations = 100:");
    runtime.block_on(run(
        messages,
        "[stations]\nunknown = \"accept\"\nmax_unknown_stations = 100\n",
    ));
}
