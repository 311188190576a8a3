//! Issue: zero loss and evidence. kill -9, outages and a full journal lose nothing; `verify`
//! catches tampering; dead letters can be listed and replayed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use quantrac_testkit::*;

use crate::QUANTRAC;

const OUTFALL: &str = "env/nam-dinh-vu/nd-textile/outfall-1";

fn message(base: chrono::DateTime<Utc>, i: i64) -> String {
    let ts = (base + chrono::Duration::seconds(i))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    json_message(
        &ts,
        &[
            ("COD", 40.0 + (i % 11) as f64, "mg/L"),
            ("TSS", 20.0 + (i % 5) as f64, ""),
            ("pH", 7.2, ""),
        ],
    )
}

/// What the journal in `dir/journal` holds for `topic`, counted in the journal itself (InfluxDB
/// overwrites a point written twice, so its counts cannot show a duplicate).
#[derive(Debug)]
struct Journaled {
    /// Records of the topic: every delivery that was committed, redeliveries included.
    records: u64,
    /// Distinct payloads among them: the messages.
    messages: u64,
    /// `reading` points in their outbox, and how many of those are distinct lines.
    reading_points: u64,
    distinct_reading_points: u64,
}

fn journaled(dir: &std::path::Path, topic: &str) -> Journaled {
    let db = rusqlite::Connection::open(dir.join("journal/journal.sqlite")).unwrap();
    let count =
        |sql: &str| -> u64 { db.query_row(sql, [topic], |r| r.get::<_, i64>(0)).unwrap() as u64 };
    Journaled {
        records: count("SELECT count(*) FROM messages WHERE topic = ?1"),
        messages: count("SELECT count(DISTINCT payload) FROM messages WHERE topic = ?1"),
        reading_points: count(
            "SELECT count(*) FROM points JOIN messages ON points.msg_id = messages.id
             WHERE messages.topic = ?1 AND points.line LIKE 'reading,%'",
        ),
        distinct_reading_points: count(
            "SELECT count(DISTINCT points.line) FROM points JOIN messages ON points.msg_id = messages.id
             WHERE messages.topic = ?1 AND points.line LIKE 'reading,%'",
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_kill9_and_an_influx_outage_lose_nothing_and_duplicate_nothing() {
    let Stack {
        mut q,
        mut influx,
        broker,
        dir,
    } = Stack::start(QUANTRAC, "").await;

    const N: i64 = 3000;
    let base = Utc::now() - chrono::Duration::hours(6);
    let publisher = Publisher::connect(broker.port).await;
    let done = Arc::new(AtomicBool::new(false));
    let sender = {
        let done = done.clone();
        tokio::spawn(async move {
            for i in 0..N {
                publisher.publish(OUTFALL, message(base, i)).await;
                if i % 100 == 99 {
                    tokio::time::sleep(Duration::from_millis(60)).await;
                }
            }
            publisher.wait_acked(N as u64).await;
            done.store(true, Ordering::SeqCst);
            publisher
        })
    };

    let mut kills = 0;
    while !done.load(Ordering::SeqCst) || kills < 4 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        if kills == 1 {
            influx.proc.kill9(); // InfluxDB away for a few restarts
        }
        if kills == 3 {
            influx.proc.restart();
        }
        q.proc.kill9();
        kills += 1;
        q.restart();
    }
    let publisher = sender.await.unwrap();
    q.wait_ready().await;
    let expected = (N * 3) as u64;
    eventually(
        &format!("{expected} points in InfluxDB"),
        Duration::from_secs(90),
        || async {
            let n = influx.count("SELECT count(value) FROM reading").await;
            (n >= expected).then_some(())
        },
    )
    .await;
    assert_eq!(
        influx.count("SELECT count(value) FROM reading").await,
        expected,
        "every reading exactly once"
    );
    for param in ["COD", "TSS", "pH"] {
        assert_eq!(
            influx
                .count(&format!(
                    "SELECT count(value) FROM reading WHERE param = '{param}'"
                ))
                .await,
            N as u64
        );
    }
    eventually("backlog 0", Duration::from_secs(20), || async {
        (q.metric("quantrac_journal_backlog_readings").await == Some(0.0)).then_some(())
    })
    .await;
    let (ok, out) = q.command(&["verify"]);
    assert!(ok, "the chain holds after {kills} kills: {out}");

    // Counted in the journal, where a duplicate shows: every message is there; a message
    // redelivered after a kill (committed, not yet acknowledged) is there again, with points
    // byte for byte those of its first delivery, so InfluxDB overwrites them.
    let j = journaled(dir.path(), OUTFALL);
    assert_eq!(j.messages, N as u64, "every message journaled: {j:?}");
    assert_eq!(
        j.reading_points,
        j.records * 3,
        "three readings a delivery: {j:?}"
    );
    assert_eq!(
        j.distinct_reading_points,
        (N * 3) as u64,
        "a redelivered message's points are those of its first delivery: {j:?}"
    );
    // What was acknowledged is never delivered again: after a clean stop and start, the next
    // message published is the next one journaled (the broker delivers a session's messages
    // in order, so a redelivery would come before it).
    assert!(q.proc.sigterm(Duration::from_secs(30)).unwrap().success());
    q.restart();
    q.wait_ready().await;
    publisher.publish(OUTFALL, message(base, N)).await;
    publisher.wait_acked(N as u64 + 1).await;
    eventually(
        "the next message journaled",
        Duration::from_secs(20),
        || async { (journaled(dir.path(), OUTFALL).messages == N as u64 + 1).then_some(()) },
    )
    .await;
    let after = journaled(dir.path(), OUTFALL);
    assert_eq!(
        after.records,
        j.records + 1,
        "a restart redelivered acknowledged messages: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_stream_loses_nothing() {
    let Stack {
        q,
        influx,
        mut broker,
        dir,
    } = Stack::start(QUANTRAC, "").await;
    let base = Utc::now() - chrono::Duration::hours(2);
    {
        let p = Publisher::connect(broker.port).await;
        for i in 0..500 {
            p.publish(OUTFALL, message(base, i)).await;
        }
        p.wait_acked(500).await;
    }
    let status = broker.proc.sigterm(Duration::from_secs(10));
    assert!(status.is_some(), "mosquitto stops");
    broker.restart();
    {
        let p = Publisher::connect(broker.port).await;
        for i in 500..1000 {
            p.publish(OUTFALL, message(base, i)).await;
        }
        p.wait_acked(500).await;
    }
    eventually(
        "3000 points after the broker restart",
        Duration::from_secs(60),
        || async { (influx.count("SELECT count(value) FROM reading").await == 3000).then_some(()) },
    )
    .await;
    assert_eq!(q.metric("quantrac_mqtt_connected").await, Some(1.0));
    let j = journaled(dir.path(), OUTFALL);
    assert_eq!(j.messages, 1000, "every message journaled: {j:?}");
    assert_eq!(j.distinct_reading_points, 3000, "{j:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_journal_stops_acknowledging_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let influx = Influx1::start(dir.path());
    influx.create_db().await;
    let small = Quantrac::config_text(
        dir.path(),
        &broker.url(),
        &influx.v1_config(),
        "[journal]\nmax_bytes = 300000\n",
    );
    let mut q = Quantrac::start(QUANTRAC, dir.path(), &small, STATIONS);
    q.wait_ready().await;
    let base = Utc::now() - chrono::Duration::hours(3);
    let p = Publisher::connect(broker.port).await;
    const N: i64 = 2000;
    for i in 0..N {
        p.publish(OUTFALL, message(base, i)).await;
    }
    p.wait_acked(N as u64).await;
    eventually("journal full", Duration::from_secs(30), || async {
        (q.metric("quantrac_journal_full").await == Some(1.0)).then_some(())
    })
    .await;
    let body = reqwest::get(format!("{}/readyz", q.http)).await.unwrap();
    assert_eq!(body.status().as_u16(), 503);
    let reason = body.text().await.unwrap();
    assert!(
        reason.contains("journal") && reason.contains("full"),
        "{reason}"
    );
    let stored = influx.count("SELECT count(value) FROM reading").await;
    assert!(
        stored < (N * 3) as u64,
        "not everything got in while full ({stored})"
    );

    // More room: everything the broker held arrives.
    q.proc.kill9();
    std::fs::write(
        &q.config,
        small.replace("max_bytes = 300000", "max_bytes = 100000000"),
    )
    .unwrap();
    q.restart();
    eventually(
        "all readings after the journal got room",
        Duration::from_secs(60),
        || async {
            (influx.count("SELECT count(value) FROM reading").await == (N * 3) as u64).then_some(())
        },
    )
    .await;
    assert_eq!(q.metric("quantrac_journal_full").await, Some(0.0));
    let j = journaled(dir.path(), OUTFALL);
    assert_eq!(
        j.messages, N as u64,
        "every message journaled once room was made: {j:?}"
    );
    assert_eq!(j.distinct_reading_points, (N * 3) as u64, "{j:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_the_altered_missing_and_reordered_record() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let cfg = Quantrac::config_text(dir.path(), &broker.url(), "url = \"\"", "");
    let mut q = Quantrac::start(QUANTRAC, dir.path(), &cfg, STATIONS);
    q.wait_ready().await;
    let p = Publisher::connect(broker.port).await;
    let base = Utc::now() - chrono::Duration::hours(1);
    for i in 0..20 {
        p.publish(OUTFALL, message(base, i)).await;
    }
    p.wait_acked(20).await;
    eventually("20 messages journaled", Duration::from_secs(10), || async {
        (q.metric("quantrac_readings_accepted_total").await == Some(60.0)).then_some(())
    })
    .await;
    assert!(q.proc.sigterm(Duration::from_secs(20)).unwrap().success());
    let (ok, out) = q.command(&["verify"]);
    assert!(ok, "untouched journal verifies: {out}");

    let tamper = |name: &str, sql: &str| {
        let copy = dir.path().join(name);
        std::fs::create_dir_all(&copy).unwrap();
        for f in std::fs::read_dir(dir.path().join("journal")).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), copy.join(f.file_name())).unwrap();
        }
        let db = rusqlite::Connection::open(copy.join("journal.sqlite")).unwrap();
        db.execute_batch(sql).unwrap();
        drop(db);
        let config = std::fs::read_to_string(&q.config).unwrap().replace(
            &format!("{}/journal", dir.path().display()),
            &copy.display().to_string(),
        );
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, config).unwrap();
        let out = std::process::Command::new(QUANTRAC)
            .args(["verify", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };

    // One byte of one stored payload.
    let (ok, out) = tamper(
        "altered",
        "UPDATE messages SET payload = CAST(replace(CAST(payload AS TEXT), '\"COD\"', '\"CQD\"') AS BLOB) WHERE id = 5;",
    );
    assert!(
        !ok && out.contains("record 5") && out.contains("altered"),
        "{out}"
    );

    let (ok, out) = tamper("deleted", "DELETE FROM messages WHERE id = 7;");
    assert!(
        !ok && out.contains("record 7") && out.contains("missing"),
        "{out}"
    );

    let (ok, out) = tamper(
        "swapped",
        "CREATE TEMP TABLE a AS SELECT * FROM messages WHERE id = 9;
         CREATE TEMP TABLE b AS SELECT * FROM messages WHERE id = 10;
         UPDATE messages SET received_at_ms = (SELECT received_at_ms FROM b), topic = (SELECT topic FROM b),
           payload = (SELECT payload FROM b), station = (SELECT station FROM b), first_point = (SELECT first_point FROM b),
           n_points = (SELECT n_points FROM b), n_rejected = (SELECT n_rejected FROM b), hash = (SELECT hash FROM b) WHERE id = 9;
         UPDATE messages SET received_at_ms = (SELECT received_at_ms FROM a), topic = (SELECT topic FROM a),
           payload = (SELECT payload FROM a), station = (SELECT station FROM a), first_point = (SELECT first_point FROM a),
           n_points = (SELECT n_points FROM a), n_rejected = (SELECT n_rejected FROM a), hash = (SELECT hash FROM a) WHERE id = 10;",
    );
    assert!(
        !ok && out.contains("records 9 and 10") && out.contains("reordered"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_replayed_after_a_config_fix() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let influx = Influx1::start(dir.path());
    influx.create_db().await;
    // Too small a payload limit: the station's message is rejected (too_large) and kept.
    let cfg = Quantrac::config_text(
        dir.path(),
        &broker.url(),
        &influx.v1_config(),
        "[mqtt]\nmax_payload_bytes = 60\n",
    );
    let mut q = Quantrac::start(QUANTRAC, dir.path(), &cfg, STATIONS);
    q.wait_ready().await;
    let p = Publisher::connect(broker.port).await;
    let ts = (Utc::now() - chrono::Duration::minutes(30))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let payload = json_message(&ts, &[("COD", 61.5, "mg/L")]);
    p.publish(OUTFALL, payload.clone()).await;
    p.wait_acked(1).await;
    eventually(
        "too_large rejection counted",
        Duration::from_secs(10),
        || async {
            (q.metric(r#"quantrac_readings_rejected_total{reason="too_large"}"#)
                .await
                == Some(1.0))
            .then_some(())
        },
    )
    .await;
    assert!(q.proc.sigterm(Duration::from_secs(20)).unwrap().success());

    let (ok, out) = q.command(&["dead-letters", "list"]);
    assert!(ok, "{out}");
    assert!(out.contains(OUTFALL), "{out}");
    assert!(out.contains("too_large"), "{out}");
    assert!(out.contains("61.5"), "raw bytes shown: {out}");

    // The fix: a payload limit that fits the station's messages.
    let fixed = std::fs::read_to_string(&q.config)
        .unwrap()
        .replace("max_payload_bytes = 60", "max_payload_bytes = 65536");
    std::fs::write(&q.config, fixed).unwrap();
    let (ok, out) = q.command(&["dead-letters", "replay"]);
    assert!(ok && out.contains("replayed 1"), "{out}");
    let (_, listed) = q.command(&["dead-letters", "list"]);
    assert!(listed.contains("replayed"), "{listed}");

    q.restart(); // the sink ships the replayed reading
    let rows = eventually(
        "the replayed reading in InfluxDB",
        Duration::from_secs(20),
        || async {
            let r = influx
                .rows("SELECT value FROM reading WHERE param = 'COD'")
                .await;
            (!r.is_empty()).then_some(r)
        },
    )
    .await;
    assert_eq!(rows[0]["value"], 61.5);
    let (ok, out) = q.command(&["verify"]);
    assert!(ok, "{out}");
}
