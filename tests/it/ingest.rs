//! Issue: ingest end to end. Good and bad messages published to a real broker give exactly the
//! points, verdicts, rejection counts and gauges the contract describes, with both InfluxDB APIs.

use std::time::Duration;

use chrono::{Local, Utc};

use quantrac_testkit::*;

use crate::QUANTRAC;

const OUTFALL: &str = "env/nam-dinh-vu/nd-textile/outfall-1";
const STACK: &str = "env/dinh-vu/dv-steel/stack-1";
const OUTFALL_LABELS: &str = r#"park="nam-dinh-vu",site="nd-textile",station="outfall-1""#;

/// The message of the test: five good readings (one calibrating, one exceeding) and five bad ones,
/// each bad for a different reason.
fn mixed_message(ts: &str) -> String {
    format!(
        r#"{{"ts":"{ts}","readings":[
        {{"param":"COD","value":48.2,"unit":"mg/L","status":"00"}},
        {{"param":"TSS","value":120}},
        {{"param":"pH","value":7.1}},
        {{"param":"NH4","value":50,"status":"01"}},
        {{"param":"Flow","value":0.01,"unit":"m3/s"}},
        {{"param":"Benzene","value":1}},
        {{"param":"COD","value":-5}},
        {{"param":"TSS","value":5,"unit":"ppm"}},
        {{"param":"pH","value":"seven"}},
        {{"param":"TN","value":3,"ts":"yesterday"}}
        ]}}"#
    )
}

/// Circular 10/2021 text from the stack: local time, SO2 in ppm, O2 for the correction.
fn stack_text(local: &str) -> String {
    format!(
        "SO2\t120\tppm\t{local}\t00\r\nO2\t11\t%\t{local}\t00\r\nPM\t150\tmg/Nm3\t{local}\t00\r\n"
    )
}

struct Published {
    outfall_ts_ms: i64,
    stack_ts_ms: i64,
}

async fn publish_all(broker_port: u16, max_payload: usize) -> Published {
    let p = Publisher::connect(broker_port).await;
    let now = Utc::now() - chrono::Duration::minutes(2);
    let ts = now.format("%Y-%m-%dT%H:%M:%S+00:00").to_string();
    p.publish(OUTFALL, mixed_message(&ts)).await;
    let local = now.with_timezone(&chrono_tz::Asia::Ho_Chi_Minh);
    p.publish(STACK, stack_text(&local.format("%Y%m%d%H%M%S").to_string()))
        .await;
    p.publish(OUTFALL, "this is not a reading").await;
    p.publish(
        "env/nam dinh/nd-textile/outfall-1",
        json_message(&ts, &[("COD", 1.0, "")]),
    )
    .await;
    p.publish(
        OUTFALL,
        format!(
            "{{\"ts\":\"{ts}\",\"pad\":\"{}\",\"readings\":[]}}",
            "x".repeat(max_payload)
        ),
    )
    .await;
    p.wait_acked(5).await;
    let _ = Local::now();
    Published {
        outfall_ts_ms: now.timestamp() * 1000,
        stack_ts_ms: now.timestamp() * 1000,
    }
}

/// The metrics of the published messages; `full`: with `[metrics] detail = "full"`, which adds
/// the instantaneous ratio the compact default leaves out.
async fn check_metrics(q: &Quantrac, full: bool) {
    let text = eventually(
        "all five messages counted",
        Duration::from_secs(20),
        || async {
            let t = q.metrics().await;
            (parse_metric(&t, "quantrac_messages_received_total") == Some(5.0)
                && parse_metric(&t, "quantrac_readings_accepted_total") == Some(8.0))
            .then_some(t)
        },
    )
    .await;
    // Every message is acknowledged once committed, the last one too: none waits for a later
    // message's commit.
    eventually(
        "all five messages acknowledged",
        Duration::from_secs(20),
        || async {
            (parse_metric(&q.metrics().await, "quantrac_mqtt_acks_total") == Some(5.0))
                .then_some(())
        },
    )
    .await;
    for (reason, n) in [
        ("unknown_param", 1.0),
        ("value", 1.0),
        ("unit", 1.0),
        ("malformed", 2.0),
        ("timestamp", 1.0),
        ("topic", 1.0),
        ("too_large", 1.0),
    ] {
        assert_eq!(
            parse_metric(
                &text,
                &format!("quantrac_readings_rejected_total{{reason=\"{reason}\"}}")
            ),
            Some(n),
            "rejections for {reason}\n{text}"
        );
    }
    assert_eq!(
        parse_metric(
            &text,
            &format!("quantrac_reading_value{{{OUTFALL_LABELS},param=\"COD\"}}")
        ),
        Some(48.2)
    );
    assert_eq!(
        parse_metric(
            &text,
            &format!("quantrac_reading_value{{{OUTFALL_LABELS},param=\"Flow\"}}")
        ),
        Some(36.0)
    );
    assert_eq!(
        parse_metric(
            &text,
            &format!("quantrac_exceedance{{{OUTFALL_LABELS},param=\"TSS\",window=\"instant\"}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        parse_metric(
            &text,
            &format!("quantrac_exceedance{{{OUTFALL_LABELS},param=\"COD\",window=\"instant\"}}")
        ),
        Some(0.0)
    );
    assert_eq!(
        parse_metric(
            &text,
            &format!("quantrac_exceedance{{{OUTFALL_LABELS},param=\"NH4\",window=\"instant\"}}")
        )
        .unwrap_or(0.0),
        0.0,
        "a calibrating reading is never an exceedance"
    );
    let ratio = parse_metric(
        &text,
        &format!("quantrac_limit_ratio{{{OUTFALL_LABELS},param=\"TSS\",window=\"instant\"}}"),
    );
    if full {
        let ratio = ratio.expect("the instantaneous ratio, with full detail");
        assert!((ratio - 120.0 / 90.0).abs() < 1e-9, "TSS ratio {ratio}");
    } else {
        assert_eq!(
            ratio, None,
            "compact metrics: no instantaneous ratio series"
        );
    }
    assert_eq!(
        parse_metric(
            &text,
            &format!("quantrac_station_expected_interval_seconds{{{OUTFALL_LABELS}}}")
        ),
        Some(300.0)
    );
    assert!(
        parse_metric(
            &text,
            &format!("quantrac_station_last_reading_timestamp_seconds{{{OUTFALL_LABELS}}}")
        )
        .unwrap()
            > 1.7e9
    );
    assert_eq!(
        parse_metric(
            &text,
            r#"quantrac_exceedance{park="dinh-vu",site="dv-steel",station="stack-1",param="SO2",window="instant"}"#
        ),
        Some(1.0)
    );
    assert_eq!(parse_metric(&text, "quantrac_mqtt_connected"), Some(1.0));
    assert!(parse_metric(&text, r#"quantrac_build_info{version="#).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_influxdb_gets_every_reading_with_limit_and_verdict() {
    let Stack {
        q,
        influx,
        broker,
        dir: _dir,
    } = Stack::start(
        QUANTRAC,
        "[mqtt]\nmax_payload_bytes = 4096\n[metrics]\ndetail = \"full\"\n",
    )
    .await;
    let sent = publish_all(broker.port, 4096).await;
    check_metrics(&q, true).await;

    let rows = eventually(
        "8 readings in InfluxDB",
        Duration::from_secs(20),
        || async {
            let r = influx.rows("SELECT * FROM reading").await;
            (r.len() == 8).then_some(r)
        },
    )
    .await;
    let find = |param: &str| {
        rows.iter()
            .find(|r| r["param"] == param)
            .unwrap_or_else(|| panic!("{param} in {rows:?}"))
            .clone()
    };
    let cod = find("COD");
    assert_eq!(cod["value"], 48.2);
    assert_eq!(
        cod["limit_max"], 135.0,
        "QCVN 40:2011 B COD 150 × Kq 0.9 × Kf 1.0"
    );
    assert_eq!(cod["exceeded"], false);
    assert_eq!(cod["status"], "00");
    assert_eq!(cod["unit"], "mg/L");
    assert_eq!(cod["time"].as_i64().unwrap(), sent.outfall_ts_ms);
    let tss = find("TSS");
    assert_eq!(tss["exceeded"], true);
    assert_eq!(tss["limit_max"], 90.0);
    let nh4 = find("NH4");
    assert_eq!(nh4["status"], "01");
    assert_eq!(
        nh4["exceeded"], false,
        "calibrating: stored, never an exceedance"
    );
    let ph = find("pH");
    assert_eq!(ph["limit_min"], 5.5);
    assert_eq!(ph["limit_max"], 9.0);
    assert_eq!(find("Flow")["value"], 36.0);

    let so2 = find("SO2");
    let so2_mg = 120.0 * 64.066 / 24.45;
    assert!(
        (so2["value"].as_f64().unwrap() - so2_mg).abs() < 1e-6,
        "{so2:?}"
    );
    let so2_ref = so2_mg * (20.9 - 7.0) / (20.9 - 11.0);
    assert!(
        (so2["value_ref"].as_f64().unwrap() - so2_ref).abs() < 1e-6,
        "{so2:?}"
    );
    assert_eq!(so2["limit_max"], 300.0, "permit override");
    assert_eq!(so2["exceeded"], true);
    assert_eq!(
        so2["time"].as_i64().unwrap(),
        sent.stack_ts_ms,
        "local text time converted to UTC"
    );
    assert_eq!(find("PM")["exceeded"], true);

    // Everything written: the backlog is empty and the write counter matches.
    eventually("backlog drained", Duration::from_secs(10), || async {
        (q.metric("quantrac_journal_backlog_readings").await == Some(0.0)).then_some(())
    })
    .await;
    assert!(
        q.metric("quantrac_influx_points_written_total")
            .await
            .unwrap()
            >= 8.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_write_api_gets_every_reading() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let vm = Victoria::start(dir.path());
    let token = "tok-3f9a-secret-value";
    let cfg = Quantrac::config_text(
        dir.path(),
        &broker.url(),
        &format!("url = \"{}\"\napi = \"v2\"\norg = \"park\"\nbucket = \"quantrac\"\ntoken = \"{token}\"", vm.url()),
        "[mqtt]\nmax_payload_bytes = 4096\n",
    );
    let q = Quantrac::start(QUANTRAC, dir.path(), &cfg, STATIONS);
    q.wait_ready().await;
    publish_all(broker.port, 4096).await;
    check_metrics(&q, false).await;
    let series = eventually(
        "8 reading values in victoria-metrics",
        Duration::from_secs(30),
        || async {
            let s = vm.export(r#"{__name__="reading_value"}"#).await;
            (s.len() == 8).then_some(s)
        },
    )
    .await;
    let cod = series
        .iter()
        .find(|s| s["metric"]["param"] == "COD")
        .unwrap();
    assert_eq!(cod["metric"]["station"], "outfall-1");
    assert_eq!(cod["values"][0], 48.2);
    let limits = vm
        .export(r#"{__name__="reading_limit_max",param="COD"}"#)
        .await;
    assert_eq!(limits[0]["values"][0], 135.0);
    assert!(
        !q.proc.log_text().contains(token),
        "the token never reaches the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_influxdb_outage_loses_nothing() {
    let Stack {
        q,
        mut influx,
        broker,
        dir: _dir,
    } = Stack::start(QUANTRAC, "").await;
    let p = Publisher::connect(broker.port).await;
    let base = Utc::now() - chrono::Duration::hours(3);
    let send = |i: i64| {
        let ts = (base + chrono::Duration::seconds(i))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        json_message(
            &ts,
            &[
                ("COD", 40.0 + (i % 7) as f64, "mg/L"),
                ("TSS", 30.0, ""),
                ("pH", 7.0, ""),
            ],
        )
    };
    for i in 0..100 {
        p.publish(OUTFALL, send(i)).await;
    }
    p.wait_acked(100).await;
    eventually("first 300 points", Duration::from_secs(20), || async {
        (influx.count("SELECT count(value) FROM reading").await == 300).then_some(())
    })
    .await;

    influx.proc.kill9();
    for i in 100..400 {
        p.publish(OUTFALL, send(i)).await;
    }
    p.wait_acked(400).await;
    eventually(
        "backlog grows while InfluxDB is down",
        Duration::from_secs(20),
        || async {
            // 900 readings, plus the rewrites of the (closed) hourly windows they fall in.
            let b = q.metric("quantrac_journal_backlog_readings").await;
            (b >= Some(900.0)).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        q.metric(r#"quantrac_influx_write_errors_total{kind="connect"}"#)
            .await
            .unwrap_or(0.0)
            >= 1.0,
        "{}",
        q.metrics().await
    );
    assert!(q.ready().await, "an InfluxDB outage does not stop intake");

    influx.proc.restart();
    wait_port(influx.port, "influxd");
    eventually(
        "all 1200 points after the outage",
        Duration::from_secs(30),
        || async { (influx.count("SELECT count(value) FROM reading").await == 1200).then_some(()) },
    )
    .await;
    eventually("backlog back to 0", Duration::from_secs(10), || async {
        (q.metric("quantrac_journal_backlog_readings").await == Some(0.0)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_and_exits_zero_and_secrets_stay_out_of_logs() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let influx = Influx1::start(dir.path());
    influx.create_db().await;
    let secret_file = dir.path().join("pw");
    std::fs::write(&secret_file, "pw-from-file-8c1d\n").unwrap();
    let cfg = Quantrac::config_text(
        dir.path(),
        &broker.url(),
        &format!(
            "url = \"{}\"\napi = \"v1\"\ndatabase = \"{}\"\nusername = \"\"\npassword_file = \"{}\"\npassword = \"tok-inline-77aa\"",
            influx.url(),
            influx.db,
            secret_file.display()
        ),
        "",
    );
    let mut q = Quantrac::start(QUANTRAC, dir.path(), &cfg, STATIONS);
    q.wait_ready().await;
    let p = Publisher::connect(broker.port).await;
    let ts = (Utc::now() - chrono::Duration::minutes(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    p.publish(OUTFALL, json_message(&ts, &[("COD", 10.0, "")]))
        .await;
    p.wait_acked(1).await;
    eventually("reading counted", Duration::from_secs(10), || async {
        (q.metric("quantrac_readings_accepted_total").await == Some(1.0)).then_some(())
    })
    .await;
    let status = q
        .proc
        .sigterm(Duration::from_secs(30))
        .expect("exits after SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(
        influx.count("SELECT count(value) FROM reading").await,
        1,
        "flushed before exit"
    );
    let log = q.proc.log_text();
    assert!(
        !log.contains("pw-from-file-8c1d") && !log.contains("tok-inline-77aa"),
        "{log}"
    );
    let (_, help) = q.command(&["run", "--help"]);
    assert!(!help.contains("tok-inline-77aa"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_v3_1_1_by_option() {
    let Stack {
        mut q,
        influx,
        broker,
        dir: _dir,
    } = Stack::start(QUANTRAC, "[mqtt]\nprotocol = \"v3.1.1\"\n").await;
    let p = Publisher::connect(broker.port).await;
    let base = Utc::now() - chrono::Duration::minutes(30);
    for i in 0..50 {
        let ts = (base + chrono::Duration::seconds(i))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        p.publish(
            OUTFALL,
            json_message(&ts, &[("COD", 50.0, ""), ("pH", 7.0, "")]),
        )
        .await;
    }
    p.wait_acked(50).await;
    eventually(
        "100 readings over MQTT 3.1.1",
        Duration::from_secs(20),
        || async { (influx.count("SELECT count(value) FROM reading").await == 100).then_some(()) },
    )
    .await;
    // The session persists across a restart in 3.1.1 too: messages sent while quantrac is down arrive.
    assert!(q.proc.sigterm(Duration::from_secs(20)).unwrap().success());
    for i in 50..80 {
        let ts = (base + chrono::Duration::seconds(i))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        p.publish(
            OUTFALL,
            json_message(&ts, &[("COD", 50.0, ""), ("pH", 7.0, "")]),
        )
        .await;
    }
    p.wait_acked(80).await;
    q.restart();
    eventually(
        "160 readings after the restart",
        Duration::from_secs(20),
        || async { (influx.count("SELECT count(value) FROM reading").await == 160).then_some(()) },
    )
    .await;
}
