//! The InfluxDB writer's error triage against a real InfluxDB 1.x: refused credentials keep the
//! data, and a point InfluxDB refuses is isolated while the rest are written.

use std::time::Duration;

use chrono::Utc;

use quantrac_testkit::*;

use crate::QUANTRAC;

const OUTFALL: &str = "env/nam-dinh-vu/nd-textile/outfall-1";

fn message(i: i64) -> String {
    let ts = (Utc::now() - chrono::Duration::minutes(20) + chrono::Duration::seconds(i))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    format!(
        r#"{{"ts":"{ts}","readings":[{{"param":"COD","value":{}}},{{"param":"Flow","value":12.5}},{{"param":"NH4","value":3,"status":"01"}}]}}"#,
        40 + i
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_keep_every_point_until_they_are_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let influx = Influx1::start_with(dir.path(), true);
    influx.create_db().await;
    let (user, password) = influx.admin.clone().unwrap();
    let wrong = format!(
        "{}\nusername = \"{user}\"\npassword = \"not-the-pw-6d2e\"",
        influx.v1_config()
    );
    let cfg = Quantrac::config_text(dir.path(), &broker.url(), &wrong, "");
    let mut q = Quantrac::start(QUANTRAC, dir.path(), &cfg, STATIONS);
    q.wait_ready().await;
    let p = Publisher::connect(broker.port).await;
    for i in 0..20 {
        p.publish(OUTFALL, message(i)).await;
    }
    p.wait_acked(20).await;
    eventually(
        "auth errors counted, every point kept",
        Duration::from_secs(20),
        || async {
            let t = q.metrics().await;
            (parse_metric(&t, r#"quantrac_influx_write_errors_total{kind="auth"}"#) >= Some(1.0)
                && parse_metric(&t, "quantrac_journal_backlog_readings") == Some(60.0))
            .then_some(())
        },
    )
    .await;
    assert!(q.ready().await, "refused credentials do not stop intake");
    assert_eq!(influx.count("SELECT count(value) FROM reading").await, 0);
    let log = q.proc.log_text();
    assert!(
        log.contains("ERROR"),
        "refused credentials are reported loudly:\n{log}"
    );
    assert!(!log.contains("not-the-pw-6d2e"));

    // The operator fixes the password (as a secret file) and restarts: nothing was lost.
    let secret = dir.path().join("influx-password");
    std::fs::write(&secret, format!("{password}\n")).unwrap();
    let fixed = cfg.replace(
        "password = \"not-the-pw-6d2e\"",
        &format!("password_file = \"{}\"", secret.display()),
    );
    std::fs::write(&q.config, fixed).unwrap();
    assert!(q.proc.sigterm(Duration::from_secs(30)).unwrap().success());
    q.restart();
    eventually(
        "all 60 points after the fix",
        Duration::from_secs(20),
        || async { (influx.count("SELECT count(value) FROM reading").await == 60).then_some(()) },
    )
    .await;
    assert!(!q.proc.log_text().contains(&password));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_point_is_isolated_and_the_rest_are_written() {
    let Stack {
        q,
        influx,
        broker,
        dir: _dir,
    } = Stack::start(QUANTRAC, "").await;
    // A `ratio` field of another type already in this shard: InfluxDB refuses every point that
    // carries a numeric ratio (COD, which has a limit) and accepts the others (Flow has no
    // limit, NH4 is calibrating).
    let ts = (Utc::now() - chrono::Duration::minutes(30)).timestamp_millis();
    let r = reqwest::Client::new()
        .post(format!(
            "{}/write?db={}&precision=ms",
            influx.url(),
            influx.db
        ))
        .body(format!(
            "reading,park=x,site=y,station=z,param=COD ratio=\"text\" {ts}"
        ))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{r:?}");

    let p = Publisher::connect(broker.port).await;
    for i in 0..10 {
        p.publish(OUTFALL, message(i)).await;
    }
    p.wait_acked(10).await;
    eventually(
        "the writer gets past the refused points",
        Duration::from_secs(20),
        || async {
            (q.metric("quantrac_journal_backlog_readings").await == Some(0.0)).then_some(())
        },
    )
    .await;
    assert!(q.metric("quantrac_influx_points_rejected_total").await >= Some(10.0));
    assert_eq!(
        influx
            .count("SELECT count(value) FROM reading WHERE param = 'Flow'")
            .await,
        10
    );
    assert_eq!(
        influx
            .count("SELECT count(value) FROM reading WHERE param = 'NH4'")
            .await,
        10
    );
    assert_eq!(
        influx
            .count("SELECT count(value) FROM reading WHERE param = 'COD' AND station = 'outfall-1'")
            .await,
        0
    );
    // And it keeps going: later points are written.
    p.publish(OUTFALL, message(100)).await;
    p.wait_acked(11).await;
    eventually("a later point", Duration::from_secs(20), || async {
        (influx
            .count("SELECT count(value) FROM reading WHERE param = 'Flow'")
            .await
            == 11)
            .then_some(())
    })
    .await;
}

/// InfluxDB 1.x written to with `api = "v2"` answers 404 on `/api/v2/write`: its own error kind,
/// a log line that says to set `influx.api = "v1"`, the data kept; and with the API right but
/// no database, the hint says to create it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_404_is_not_found_with_a_hint_and_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let influx = Influx1::start(dir.path());
    let v2 = format!(
        "url = \"{}\"\napi = \"v2\"\norg = \"quantrac\"\nbucket = \"quantrac\"",
        influx.url()
    );
    let cfg = Quantrac::config_text(dir.path(), &broker.url(), &v2, "");
    let mut q = Quantrac::start(QUANTRAC, dir.path(), &cfg, STATIONS);
    q.wait_ready().await;
    let p = Publisher::connect(broker.port).await;
    p.publish(OUTFALL, message(0)).await;
    p.wait_acked(1).await;
    eventually("a not_found error", Duration::from_secs(20), || async {
        let t = q.metrics().await;
        (parse_metric(
            &t,
            r#"quantrac_influx_write_errors_total{kind="not_found"}"#,
        ) >= Some(1.0)
            && parse_metric(&t, r#"quantrac_influx_write_errors_total{kind="server"}"#)
                == Some(0.0)
            && parse_metric(&t, "quantrac_journal_backlog_readings") == Some(3.0))
        .then_some(())
    })
    .await;
    let log = q.proc.log_text();
    assert!(
        log.contains("404") && log.contains(r#"influx.api = \"v1\""#),
        "the hint names influx.api:\n{log}"
    );

    // The API fixed, the database still missing.
    std::fs::write(
        &q.config,
        Quantrac::config_text(dir.path(), &broker.url(), &influx.v1_config(), ""),
    )
    .unwrap();
    q.restart();
    q.wait_ready().await;
    eventually("database not found", Duration::from_secs(20), || async {
        q.proc.find_log("CREATE DATABASE")
    })
    .await;
    // Created: the kept points arrive.
    influx.create_db().await;
    eventually(
        "the kept points in InfluxDB",
        Duration::from_secs(60),
        || async { (influx.count("SELECT count(value) FROM reading").await > 0).then_some(()) },
    )
    .await;
}
