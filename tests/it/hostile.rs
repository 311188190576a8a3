//! Issue: a hostile world. Each test is one row of the issue's table, done as an attacker or a
//! careless operator would, against the real binary, mosquitto and InfluxDB 1.x: poison
//! messages, rogue publishers, a full disk, a journal deleted under the service, a second
//! instance with the same client id, secrets in URLs, implausible values, and the broker's ACL.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use quantrac_testkit::*;

use crate::QUANTRAC;

const OUTFALL: &str = "env/nam-dinh-vu/nd-textile/outfall-1";

fn now_ts() -> String {
    Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `mosquitto_pub` as an attacker's client would run it: one QoS 1 message from a file.
fn publish_file(port: u16, protocol: &str, topic: &str, file: &Path) {
    let out = Command::new(program("mosquitto_pub", "mosquitto-clients"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-V", protocol, "-t", topic, "-f"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mosquitto_pub: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn big_file(dir: &Path, name: &str, bytes: usize) -> std::path::PathBuf {
    let path = dir.join(name);
    let mut body = b"{\"ts\":\"2026-11-30T00:00:00Z\",\"readings\":[".to_vec();
    body.resize(bytes, b' ');
    std::fs::write(&path, body).unwrap();
    path
}

/// Peak resident memory of a process, from `/proc`.
fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}

async fn wait_metric(q: &Quantrac, sample: &str, at_least: f64) {
    eventually(sample, Duration::from_secs(30), || async {
        (q.metric(sample).await.unwrap_or(0.0) >= at_least).then_some(())
    })
    .await;
}

/// After an oversized message: a good one still gets through, and the dead letter holds an
/// excerpt, the size and the digest, not the payload.
async fn oversized_then_valid(protocol_opt: &str, client: &str, bytes: usize) {
    let Stack {
        q,
        influx,
        broker,
        dir,
    } = Stack::start(QUANTRAC, protocol_opt).await;
    let big = big_file(dir.path(), "big.json", bytes);
    publish_file(broker.port, client, OUTFALL, &big);
    let p = Publisher::connect(broker.port).await;
    p.publish(OUTFALL, json_message(&now_ts(), &[("COD", 10.0, "")]))
        .await;
    p.wait_acked(1).await;
    wait_metric(&q, "quantrac_readings_accepted_total", 1.0).await;
    wait_metric(
        &q,
        r#"quantrac_readings_rejected_total{reason="too_large"}"#,
        1.0,
    )
    .await;
    eventually(
        "the good reading in InfluxDB",
        Duration::from_secs(20),
        || async { (influx.count("SELECT count(value) FROM reading").await == 1).then_some(()) },
    )
    .await;
    let (ok, listing) = q.command(&["dead-letters", "list"]);
    assert!(ok, "{listing}");
    assert!(
        listing.contains(&format!("payload of {bytes} bytes")) && listing.contains("SHA-256"),
        "{}",
        &listing[..listing.len().min(2000)]
    );
    assert!(
        listing.len() < 64 * 1024,
        "the listing shows an excerpt, not {bytes} bytes: {} bytes",
        listing.len()
    );
    let journal_bytes = q.metric("quantrac_journal_bytes").await.unwrap();
    assert!(journal_bytes < 8.0 * 1024.0 * 1024.0, "{journal_bytes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row1_a_20_mb_message_under_mqtt_3_1_1_does_not_stop_ingestion() {
    oversized_then_valid("[mqtt]\nprotocol = \"v3.1.1\"\n", "mqttv311", 20 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row2_a_32_mb_message_under_mqtt_5_is_received_counted_and_kept_as_an_excerpt() {
    oversized_then_valid("", "mqttv5", 32 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row3_many_oversized_payloads_cost_neither_journal_nor_memory() {
    let Stack {
        q,
        broker,
        dir,
        influx: _influx,
    } = Stack::start(QUANTRAC, "").await;
    let big = big_file(dir.path(), "big.json", 8 << 20);
    for _ in 0..12 {
        publish_file(broker.port, "mqttv5", OUTFALL, &big);
    }
    wait_metric(
        &q,
        r#"quantrac_readings_rejected_total{reason="too_large"}"#,
        12.0,
    )
    .await;
    let journal_bytes = q.metric("quantrac_journal_bytes").await.unwrap();
    assert!(
        journal_bytes < 8.0 * 1024.0 * 1024.0,
        "96 MB sent, journal {journal_bytes} bytes"
    );
    let rss = peak_rss_mb(q.proc.pid());
    assert!(rss < 400.0, "peak RSS {rss} MB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row4_unknown_stations_are_rejected_and_cost_no_series_and_no_tag_values() {
    let Stack {
        q,
        influx,
        broker,
        dir: _dir,
    } = Stack::start(QUANTRAC, "").await;
    let before = q.metrics().await.len();
    let p = Publisher::connect(broker.port).await;
    let n = 3_000u64;
    let ts = now_ts();
    for i in 0..n {
        p.publish(
            &format!("env/rogue/r/st{i}"),
            json_message(&ts, &[("COD", 10.0, "")]),
        )
        .await;
    }
    p.wait_acked(n).await;
    wait_metric(
        &q,
        r#"quantrac_readings_rejected_total{reason="unknown_station"}"#,
        n as f64,
    )
    .await;
    let text = q.metrics().await;
    assert!(!text.contains("rogue"), "no per-station series for them");
    assert!(
        text.len() < before + 4096,
        "/metrics grew from {before} to {} bytes",
        text.len()
    );
    // 4b: a configured station's reading is still written.
    p.publish(OUTFALL, json_message(&ts, &[("COD", 10.0, "")]))
        .await;
    eventually(
        "the configured station's reading",
        Duration::from_secs(20),
        || async { (influx.count("SELECT count(value) FROM reading").await == 1).then_some(()) },
    )
    .await;
    assert_eq!(
        influx
            .count("SELECT count(value) FROM reading WHERE park = 'rogue'")
            .await,
        0
    );
    let (ok, listing) = q.command(&["dead-letters", "list", "--limit", "1"]);
    assert!(ok && listing.contains("unknown_station"), "{listing}");
}

/// Records in the journal of a stopped quantrac that came from `topic`.
fn journal_records(q: &Quantrac, topic: &str) -> usize {
    let journal = quantrac::journal::Journal::open(&q.dir.join("journal"), true).unwrap();
    journal
        .messages_since(0)
        .unwrap()
        .iter()
        .filter(|m| m.topic == topic)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row5_a_flood_from_four_publishers_is_journaled_exactly_once() {
    let Stack {
        mut q,
        broker,
        dir,
        influx: _influx,
    } = Stack::start(QUANTRAC, "").await;
    let per = 5_000usize;
    let mut children = Vec::new();
    for k in 0..4 {
        let lines: String = (0..per)
            .map(|i| {
                let ts = 1_795_910_400_000i64 + (k * per + i) as i64 * 1000;
                format!("{{\"ts\":{ts},\"readings\":[{{\"param\":\"COD\",\"value\":{i}}}]}}\n")
            })
            .collect();
        let file = dir.path().join(format!("flood{k}.txt"));
        std::fs::write(&file, lines).unwrap();
        children.push(
            Command::new(program("mosquitto_pub", "mosquitto-clients"))
                .args(["-h", "127.0.0.1", "-p", &broker.port.to_string(), "-q", "1"])
                .args(["-t", OUTFALL, "-l"])
                .stdin(std::fs::File::open(&file).unwrap())
                .spawn()
                .unwrap(),
        );
    }
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let total = (4 * per) as f64;
    eventually(
        "every message acknowledged",
        Duration::from_secs(60),
        || async {
            (q.metric("quantrac_mqtt_acks_total").await.unwrap_or(0.0) >= total).then_some(())
        },
    )
    .await;
    assert_eq!(q.metric("quantrac_mqtt_connected").await, Some(1.0));
    let log = q.proc.log_text();
    assert!(
        !log.contains("MQTT connection lost") && !log.contains("reconnected"),
        "the session stays up under the flood: {log}"
    );
    let received = q.metric("quantrac_messages_received_total").await.unwrap();
    let duplicates = q.metric("quantrac_journal_duplicates_total").await.unwrap();
    q.proc.sigterm(Duration::from_secs(40)).expect("exits");
    assert_eq!(
        journal_records(&q, OUTFALL),
        4 * per,
        "one record per distinct message ({received} received, {duplicates} duplicates)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row6_a_full_disk_pauses_acknowledgements_and_resumes_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let fs = dir.path().join("small-disk");
    std::fs::create_dir_all(&fs).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
        .arg(&fs)
        .status()
        .unwrap();
    assert!(mounted.success(), "mounting a 16 MiB tmpfs (needs root)");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(fs.clone());
    let cfg = Quantrac::config_text(dir.path(), &broker.url(), "url = \"\"", "").replace(
        &format!("path = \"{}/journal\"", dir.path().display()),
        &format!("path = \"{}/journal\"", fs.display()),
    );
    let q = Quantrac::start(QUANTRAC, dir.path(), &cfg, STATIONS);
    q.wait_ready().await;
    // Fill the disk.
    let filler = fs.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", filler.display()))
        .output();
    let p = Publisher::connect(broker.port).await;
    let base = 1_795_910_400_000i64;
    for i in 0..200 {
        let payload = format!(
            "{{\"ts\":{},\"readings\":[{{\"param\":\"COD\",\"value\":{i}}},{{\"param\":\"TSS\",\"value\":{i}}}],\"pad\":\"{}\"}}",
            base + i * 1000,
            "x".repeat(2000)
        );
        p.publish(OUTFALL, payload).await;
    }
    let body = eventually("503 disk full", Duration::from_secs(30), || async {
        let r = reqwest::get(format!("{}/readyz", q.http)).await.ok()?;
        let body = r.text().await.ok()?;
        body.contains("disk full").then_some(body)
    })
    .await;
    assert!(body.contains("journal"), "{body}");
    assert_eq!(q.metric("quantrac_journal_full").await, Some(1.0));
    let acked_while_full = q.metric("quantrac_mqtt_acks_total").await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        q.metric("quantrac_mqtt_acks_total").await.unwrap(),
        acked_while_full,
        "nothing acknowledged while the disk is full"
    );
    std::fs::remove_file(&filler).unwrap();
    p.wait_acked(200).await;
    eventually("ready again", Duration::from_secs(30), || async {
        q.ready().await.then_some(())
    })
    .await;
    assert_eq!(q.metric("quantrac_journal_full").await, Some(0.0));
    wait_metric(&q, "quantrac_mqtt_acks_total", 200.0).await;
    let (ok, report) = q.command(&["verify"]);
    assert!(ok, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row7_a_journal_deleted_under_the_service_stops_acknowledgements() {
    let Stack {
        q,
        broker,
        dir,
        influx: _influx,
    } = Stack::start(QUANTRAC, "").await;
    let p = Publisher::connect(broker.port).await;
    p.publish(OUTFALL, json_message(&now_ts(), &[("COD", 1.0, "")]))
        .await;
    p.wait_acked(1).await;
    wait_metric(&q, "quantrac_mqtt_acks_total", 1.0).await;
    for entry in std::fs::read_dir(dir.path().join("journal")).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("journal.sqlite")
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    let body = eventually("503 journal deleted", Duration::from_secs(10), || async {
        let r = reqwest::get(format!("{}/readyz", q.http)).await.ok()?;
        let body = r.text().await.ok()?;
        body.contains("deleted").then_some(body)
    })
    .await;
    assert!(body.starts_with("journal"), "{body}");
    q.proc
        .wait_for_log("journal file is gone", Duration::from_secs(5));
    let ts = (Utc::now() + chrono::Duration::seconds(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    p.publish(OUTFALL, json_message(&ts, &[("COD", 2.0, "")]))
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        q.metric("quantrac_mqtt_acks_total").await,
        Some(1.0),
        "nothing acknowledged into a deleted file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row9_two_instances_with_one_client_id_back_off_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    std::fs::write(dir.path().join("stations.toml"), STATIONS).unwrap();
    let mut instances = Vec::new();
    for k in 0..2 {
        let sub = dir.path().join(format!("q{k}"));
        std::fs::create_dir_all(&sub).unwrap();
        let cfg = format!(
            "[mqtt]\nurl = \"{}\"\nclient_id = \"quantrac-shared-{}\"\nreconnect_min_ms = 200\nreconnect_max_ms = 8000\n\
             [influx]\nurl = \"\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [stations]\nfile = \"{}/stations.toml\"\n[journal]\npath = \"{}/journal\"\n",
            broker.url(),
            broker.port,
            dir.path().display(),
            sub.display()
        );
        let path = sub.join("quantrac.toml");
        std::fs::write(&path, cfg).unwrap();
        instances.push(Quantrac::run(QUANTRAC, &path));
    }
    tokio::time::sleep(Duration::from_secs(12)).await;
    let takeovers = broker
        .proc
        .log_text()
        .lines()
        .filter(|l| l.contains("already connected"))
        .count();
    assert!(
        takeovers <= 16,
        "{takeovers} takeovers in 12 s: a tight loop would be dozens"
    );
    for q in &instances {
        let log = q.proc.log_text();
        assert!(
            log.matches("keeps handing the session to another client")
                .count()
                <= 1,
            "said once: {log}"
        );
    }
    let said: Vec<bool> = instances
        .iter()
        .map(|q| {
            q.proc
                .log_text()
                .contains("keeps handing the session to another client")
        })
        .collect();
    assert!(
        said.iter().any(|s| *s),
        "at least the one losing the session says why"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row11_a_password_in_a_url_is_refused_without_repeating_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("stations.toml"), STATIONS).unwrap();
    for (section, line) in [
        ("mqtt", "url = \"mqtt://user:S3CRET-mqtt@127.0.0.1:1883\""),
        (
            "influx",
            "url = \"http://user:S3CRET-influx@127.0.0.1:8086\"",
        ),
    ] {
        let cfg = format!(
            "[{section}]\n{line}\n[stations]\nfile = \"{}/stations.toml\"\n",
            dir.path().display()
        );
        let path = dir.path().join("q.toml");
        std::fs::write(&path, cfg).unwrap();
        for cmd in ["check-config", "run"] {
            let out = Command::new(QUANTRAC)
                .args([cmd, "--config"])
                .arg(&path)
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!out.status.success(), "{cmd} refuses it: {text}");
            assert!(!text.contains("S3CRET"), "{cmd}: {text}");
            assert!(text.contains(&format!("{section}.url")), "{cmd}: {text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row12_an_implausible_value_is_rejected_and_sets_no_exceedance() {
    let Stack {
        q,
        broker,
        dir: _dir,
        influx: _influx,
    } = Stack::start(QUANTRAC, "").await;
    let p = Publisher::connect(broker.port).await;
    p.publish(
        OUTFALL,
        format!(
            r#"{{"ts":"{}","readings":[{{"param":"COD","value":1e308}}]}}"#,
            now_ts()
        ),
    )
    .await;
    wait_metric(
        &q,
        r#"quantrac_readings_rejected_total{reason="value"}"#,
        1.0,
    )
    .await;
    assert_eq!(
        q.metric("quantrac_readings_accepted_total").await,
        Some(0.0)
    );
    assert!(
        !q.metrics().await.contains("quantrac_exceedance{"),
        "no verdict from an implausible value"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_acl_keeps_each_station_to_its_own_topic_and_quantrac_to_reading() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/mosquitto");
    let passwords = dir.path().join("passwords");
    let users = [
        ("quantrac", "q-pass"),
        ("nam-dinh-vu/nd-textile/outfall-1", "s1-pass"),
        ("dinh-vu/dv-steel/stack-1", "s2-pass"),
    ];
    for (i, (user, pass)) in users.iter().enumerate() {
        let mut cmd = Command::new(program("mosquitto_passwd", "mosquitto"));
        if i == 0 {
            cmd.arg("-c");
        }
        assert!(cmd
            .arg("-b")
            .arg(&passwords)
            .args([user, pass])
            .status()
            .unwrap()
            .success());
    }
    // The shipped configuration, with this test's port, files and folder.
    let conf = std::fs::read_to_string(root.join("mosquitto-acl.conf"))
        .unwrap()
        .replace("listener 1883", &format!("listener {port} 127.0.0.1"))
        .replace(
            "/mosquitto/config/passwords",
            &passwords.display().to_string(),
        )
        .replace(
            "/mosquitto/config/acl",
            &root.join("acl").display().to_string(),
        )
        .replace("/mosquitto/data/", &format!("{}/", dir.path().display()))
        .replace("log_dest stdout", "log_dest stderr\nuser root");
    let conf_path = dir.path().join("mosquitto.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let _broker = Proc::spawn(
        "mosquitto",
        &[
            program("mosquitto", "mosquitto").display().to_string(),
            "-c".into(),
            conf_path.display().to_string(),
        ],
        &[],
        dir.path(),
    );
    wait_port(port, "mosquitto");

    // quantrac's user subscribes to everything and counts what it is allowed to see.
    let sub = Command::new(program("mosquitto_sub", "mosquitto-clients"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-u", "quantrac", "-P", "q-pass", "-t", "env/#", "-v"])
        .args(["-W", "6"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let publish = |user: &str, pass: &str, topic: &str, payload: &str| {
        Command::new(program("mosquitto_pub", "mosquitto-clients"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
            .args(["-u", user, "-P", pass, "-t", topic, "-m", payload])
            .status()
            .unwrap();
    };
    publish(users[1].0, users[1].1, OUTFALL, "own-topic");
    publish(
        users[1].0,
        users[1].1,
        "env/dinh-vu/dv-steel/stack-1",
        "forged",
    );
    publish(users[0].0, users[0].1, OUTFALL, "from-quantrac");
    publish(
        users[2].0,
        users[2].1,
        "env/dinh-vu/dv-steel/stack-1",
        "stack-own",
    );
    let out = sub.wait_with_output().unwrap();
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(
        seen.contains("own-topic") && seen.contains("stack-own"),
        "{seen}"
    );
    assert!(
        !seen.contains("forged"),
        "a station wrote another's topic: {seen}"
    );
    assert!(
        !seen.contains("from-quantrac"),
        "quantrac's user published: {seen}"
    );
}
