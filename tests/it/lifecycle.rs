//! Issue: one lifecycle. `/readyz` says "shutting down" (503) while the pipeline drains, and
//! refused MQTT credentials end the retries with one clear log line and a reason on `/readyz`.

use std::time::Duration;

use quantrac_testkit::*;

use crate::QUANTRAC;

const STATION: &str = "env/nam-dinh-vu/nd-textile/outfall-1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_503_during_the_drain_and_the_http_server_stops_last() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    // An InfluxDB that accepts connections and never answers: the sink's last flush then lasts
    // as long as the shutdown budget allows it, and the drain can be watched from outside.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let influx = format!(
        "url = \"http://{}\"\napi = \"v1\"\ndatabase = \"q\"\ntimeout_ms = 60000",
        black_hole.local_addr().unwrap()
    );
    let cfg = Quantrac::config_text(dir.path(), &broker.url(), &influx, "");
    let mut q = Quantrac::start(QUANTRAC, dir.path(), &cfg, STATIONS);
    q.wait_ready().await;
    let p = Publisher::connect(broker.port).await;
    let ts = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    p.publish(STATION, json_message(&ts, &[("COD", 10.0, "")]))
        .await;
    p.wait_acked(1).await;

    let status = std::process::Command::new("kill")
        .args(["-TERM", &q.proc.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (code, body) = eventually("503 while draining", Duration::from_secs(10), || async {
        let r = reqwest::get(format!("{}/readyz", q.http)).await.ok()?;
        let code = r.status().as_u16();
        let body = r.text().await.ok()?;
        (code == 503 && body.contains("shutting down")).then_some((code, body))
    })
    .await;
    assert_eq!(code, 503, "{body}");
    assert!(q.proc.is_running(), "still draining while /readyz answers");
    q.proc.wait_for_log("stopped", Duration::from_secs(40));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while q.proc.is_running() {
        assert!(std::time::Instant::now() < deadline, "never exited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        reqwest::get(format!("{}/readyz", q.http)).await.is_err(),
        "the HTTP server is gone after the exit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_mqtt_credentials_stop_the_retries_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let data = dir.path().join("mosquitto");
    std::fs::create_dir_all(&data).unwrap();
    let passwords = data.join("passwords");
    let made = std::process::Command::new(program("mosquitto_passwd", "mosquitto"))
        .arg("-c")
        .arg("-b")
        .arg(&passwords)
        .args(["quantrac", "right-password"])
        .status()
        .unwrap();
    assert!(made.success());
    let conf = data.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n\
             log_dest stderr\nuser root\nlog_type all\n",
            passwords.display()
        ),
    )
    .unwrap();
    let broker = Proc::spawn(
        "mosquitto",
        &[
            program("mosquitto", "mosquitto").display().to_string(),
            "-c".into(),
            conf.display().to_string(),
        ],
        &[],
        dir.path(),
    );
    wait_port(port, "mosquitto");

    let cfg = Quantrac::config_text(
        dir.path(),
        &format!("mqtt://127.0.0.1:{port}"),
        "url = \"\"",
        "[mqtt]\nusername = \"quantrac\"\npassword = \"wrong-password-5e1f\"\n",
    );
    let q = Quantrac::start(QUANTRAC, dir.path(), &cfg, STATIONS);
    let body = eventually("refusal on /readyz", Duration::from_secs(15), || async {
        let r = reqwest::get(format!("{}/readyz", q.http)).await.ok()?;
        let body = r.text().await.ok()?;
        body.contains("refused").then_some(body)
    })
    .await;
    assert!(
        body.contains("not retrying") && !body.contains("wrong-password-5e1f"),
        "{body}"
    );
    // With reconnect_min_ms = 100, retrying would mean a dozen attempts in these 3 seconds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let attempts = broker
        .log_text()
        .lines()
        .filter(|l| l.contains("not authorised"))
        .count();
    assert_eq!(attempts, 1, "{}", broker.log_text());
    let log = q.proc.log_text();
    assert_eq!(log.matches("not retrying").count(), 1, "{log}");
    assert!(!log.contains("wrong-password-5e1f"), "{log}");
    assert!(!q.ready().await);
}
