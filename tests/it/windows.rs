//! Issue: compliance windows. An hour of readings gives the average, capture and verdict a
//! regulator would compute by hand; a restart in the middle of the hour changes nothing.

use std::time::Duration;

use chrono::{DurationRound, Utc};

use quantrac_testkit::*;

use crate::QUANTRAC;

const OUTFALL: &str = "env/nam-dinh-vu/nd-textile/outfall-1";

fn reading(ts: chrono::DateTime<Utc>, cod: f64, status: &str) -> String {
    format!(
        r#"{{"ts":"{}","readings":[{{"param":"COD","value":{cod},"status":"{status}"}}]}}"#,
        ts.format("%Y-%m-%dT%H:%M:%SZ")
    )
}

async fn average(
    influx: &Influx1,
    hour_ms: i64,
    samples: i64,
) -> serde_json::Map<String, serde_json::Value> {
    eventually(&format!("1h average with {samples} samples"), Duration::from_secs(20), || async {
        let rows = influx
            .rows(&format!(
                "SELECT * FROM average WHERE \"window\" = '1h' AND param = 'COD' AND time = {hour_ms}ms"
            ))
            .await;
        rows.into_iter().find(|r| r["samples"] == samples)
    })
    .await
}

/// COD `value` at the five-minute steps `steps` of `hour`, each acknowledged (the publisher
/// has sent nothing else before).
async fn publish_cod(
    p: &Publisher,
    hour: chrono::DateTime<Utc>,
    steps: std::ops::Range<i64>,
    value: f64,
) {
    for i in steps.clone() {
        p.publish(
            OUTFALL,
            reading(hour + chrono::Duration::minutes(5 * i), value, "00"),
        )
        .await;
    }
    p.wait_acked(steps.end as u64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_of_old_readings_gives_the_hand_computed_average() {
    let Stack {
        q: _q,
        influx,
        broker,
        dir: _dir,
    } = Stack::start(QUANTRAC, "").await;
    let hour = (Utc::now() - chrono::Duration::hours(3))
        .duration_trunc(chrono::Duration::hours(1))
        .unwrap();
    let p = Publisher::connect(broker.port).await;
    // 12 five-minute samples, 140..151 mg/L: mean 145.5; plus a calibration spike that must not count.
    for i in 0..12 {
        p.publish(
            OUTFALL,
            reading(
                hour + chrono::Duration::minutes(5 * i),
                140.0 + i as f64,
                "00",
            ),
        )
        .await;
    }
    p.publish(
        OUTFALL,
        reading(hour + chrono::Duration::seconds(150), 900.0, "01"),
    )
    .await;
    p.wait_acked(13).await;

    let avg = average(&influx, hour.timestamp_millis(), 12).await;
    assert_eq!(avg["mean"], 145.5);
    assert_eq!(
        avg["capture"], 1.0,
        "12 of 12 expected samples (300 s interval)"
    );
    assert_eq!(avg["valid"], true);
    assert_eq!(
        avg["limit_max"], 135.0,
        "QCVN 40:2011 B COD 150 × 0.9 × 1.0"
    );
    assert_eq!(avg["exceeded"], true);
    assert!((avg["ratio"].as_f64().unwrap() - 145.5 / 135.0).abs() < 1e-9);

    // A partial hour: 6 of 12 samples is below 0.75 capture, so no verdict.
    let partial = hour - chrono::Duration::hours(1);
    for i in 0..6 {
        p.publish(
            OUTFALL,
            reading(partial + chrono::Duration::minutes(5 * i), 300.0, "00"),
        )
        .await;
    }
    p.wait_acked(19).await;
    let avg = average(&influx, partial.timestamp_millis(), 6).await;
    assert_eq!(avg["capture"], 0.5);
    assert_eq!(avg["valid"], false);
    assert_eq!(avg["exceeded"], false, "no verdict on an invalid window");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill9_in_the_middle_of_an_hour_keeps_every_sample() {
    let Stack {
        mut q,
        influx,
        broker,
        dir: _dir,
    } = Stack::start(QUANTRAC, "").await;
    let hour = (Utc::now() - chrono::Duration::hours(5))
        .duration_trunc(chrono::Duration::hours(1))
        .unwrap();
    let p = Publisher::connect(broker.port).await;
    publish_cod(&p, hour, 0..6, 100.0).await;
    average(&influx, hour.timestamp_millis(), 6).await;

    q.proc.kill9();
    q.restart();
    q.wait_ready().await;
    publish_cod(&p, hour, 6..12, 112.0).await;
    let avg = average(&influx, hour.timestamp_millis(), 12).await;
    assert_eq!(
        avg["mean"], 106.0,
        "samples from before and after the restart"
    );
    assert_eq!(avg["capture"], 1.0);
    assert_eq!(avg["exceeded"], false);
    let rows = influx
        .rows(&format!(
            "SELECT * FROM average WHERE \"window\" = '1h' AND param = 'COD' AND time = {}ms",
            hour.timestamp_millis()
        ))
        .await;
    assert_eq!(
        rows.len(),
        1,
        "the window's point was rewritten, not duplicated"
    );
}

// README: a clean stop keeps the compliance state beside the journal; the next start loads it
// and replays only the records after it, and the hour still holds every sample.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_restart_starts_from_the_saved_state_and_keeps_every_sample() {
    let Stack {
        mut q,
        influx,
        broker,
        dir,
    } = Stack::start(QUANTRAC, "").await;
    let hour = (Utc::now() - chrono::Duration::hours(4))
        .duration_trunc(chrono::Duration::hours(1))
        .unwrap();
    let p = Publisher::connect(broker.port).await;
    publish_cod(&p, hour, 0..6, 100.0).await;
    average(&influx, hour.timestamp_millis(), 6).await;

    assert!(q.proc.sigterm(Duration::from_secs(20)).unwrap().success());
    let saved = dir.path().join("journal").join("compliance-state.bin");
    assert!(saved.exists(), "a clean stop keeps the state");
    q.restart();
    q.wait_ready().await;
    let line = q
        .proc
        .wait_for_log("compliance windows rebuilt", Duration::from_secs(5));
    assert!(line.contains("from_saved_state=true"), "{line}");
    assert!(
        line.contains("messages=0"),
        "nothing after the state to replay: {line}"
    );
    publish_cod(&p, hour, 6..12, 112.0).await;
    let avg = average(&influx, hour.timestamp_millis(), 12).await;
    assert_eq!(avg["mean"], 106.0, "samples from before and after the stop");
    assert_eq!(avg["capture"], 1.0);

    // A state that no longer fits the journal (here: damaged) is not used; the start rebuilds
    // from the records and the hour is the same.
    assert!(q.proc.sigterm(Duration::from_secs(20)).unwrap().success());
    let mut bytes = std::fs::read(&saved).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&saved, bytes).unwrap();
    q.restart();
    q.wait_ready().await;
    q.proc.wait_for_log("is damaged", Duration::from_secs(5));
    let line = q.proc.log_text();
    let rebuilt = line
        .lines()
        .rfind(|l| l.contains("compliance windows rebuilt"))
        .unwrap();
    assert!(rebuilt.contains("from_saved_state=false"), "{rebuilt}");
    p.publish(
        OUTFALL,
        reading(hour + chrono::Duration::minutes(2), 106.0, "00"),
    )
    .await;
    p.wait_acked(13).await;
    let avg = average(&influx, hour.timestamp_millis(), 13).await;
    assert_eq!(
        avg["mean"], 106.0,
        "all 12 earlier samples rebuilt, and the late one"
    );
}

// README: while running, the compliance state is kept beside the journal every
// `journal.state_interval_s` (here 1 s); a start after a kill -9 loads the last one and replays
// only the records after it, and the hour still holds every sample.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_restart_starts_from_the_state_kept_while_running() {
    let Stack {
        mut q,
        influx,
        broker,
        dir: _dir,
    } = Stack::start(QUANTRAC, "[journal]\nstate_interval_s = 1\n").await;
    let hour = (Utc::now() - chrono::Duration::hours(6))
        .duration_trunc(chrono::Duration::hours(1))
        .unwrap();
    // A period after the start, so the first windows record carries the state.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let p = Publisher::connect(broker.port).await;
    publish_cod(&p, hour, 0..6, 100.0).await;
    average(&influx, hour.timestamp_millis(), 6).await;
    q.proc
        .wait_for_log("compliance state kept", Duration::from_secs(10));

    q.proc.kill9();
    q.restart();
    q.wait_ready().await;
    let line = q
        .proc
        .wait_for_log("compliance windows rebuilt", Duration::from_secs(5));
    assert!(line.contains("from_saved_state=true"), "{line}");
    publish_cod(&p, hour, 6..12, 112.0).await;
    let avg = average(&influx, hour.timestamp_millis(), 12).await;
    assert_eq!(
        avg["mean"], 106.0,
        "samples from before and after the crash"
    );
    assert_eq!(avg["capture"], 1.0);
}

// README: a crash before the window points are written loses nothing (the readings after the
// last written windows are judged again at start-up). The crash is made exactly: with
// quantrac stopped, an hour of readings is committed to its journal the way the journal stage
// commits them, with no windows record after them — the state a kill -9 leaves between the
// commit of the readings and the next tick. quantrac then starts and must write the hour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_journaled_before_a_crash_get_their_window_written_at_start_up() {
    let Stack {
        mut q,
        influx,
        broker: _broker,
        dir,
    } = Stack::start(QUANTRAC, "").await;
    assert!(q.proc.sigterm(Duration::from_secs(20)).unwrap().success());
    let hour = (Utc::now() - chrono::Duration::hours(7))
        .duration_trunc(chrono::Duration::hours(1))
        .unwrap();
    let payloads: Vec<String> = (0..12)
        .map(|i| reading(hour + chrono::Duration::minutes(5 * i), 90.0, "00"))
        .collect();
    {
        let mut journal =
            quantrac::journal::Journal::open(&dir.path().join("journal"), true).unwrap();
        let received = Utc::now().timestamp_millis();
        let entries: Vec<quantrac::journal::Entry> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| quantrac::journal::Entry {
                received_at_ms: received + i as i64,
                topic: OUTFALL,
                payload: p.as_bytes(),
                station: Some("nam-dinh-vu/nd-textile/outfall-1".into()),
                rejections: &[],
                points: vec![],
                once: false,
            })
            .collect();
        journal.append(&entries).unwrap();
    }
    q.restart();
    let avg = average(&influx, hour.timestamp_millis(), 12).await;
    assert_eq!(avg["mean"], 90.0);
    assert_eq!(avg["valid"], true);
    let (ok, out) = q.command(&["verify"]);
    assert!(ok, "{out}");
}
