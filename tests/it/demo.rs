//! Issue: operator kit. `quantrac demo` starts from an empty folder and, within 30 s, /metrics
//! shows readings from every simulated station, at least one exceedance and one silent station.

use std::time::Duration;

use quantrac_testkit::*;

use crate::QUANTRAC;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_a_live_park_within_30_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let mut demo = Proc::spawn(
        "quantrac demo",
        &[
            QUANTRAC.into(),
            "demo".into(),
            "--mqtt-port".into(),
            "0".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--dir".into(),
            dir.path().join("demo").display().to_string(),
        ],
        &[],
        dir.path(),
    );
    let http = announced_http(&demo, Duration::from_secs(20));
    let url = format!("{http}/metrics");
    let stations = quantrac::demo::Simulator::new(1, Duration::from_secs(5)).station_keys();
    assert!(stations.len() >= 5);

    let text = eventually("every station, an exceedance and a silent station", Duration::from_secs(30), || {
        let url = url.clone();
        let stations = stations.clone();
        async move {
            let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
            let reporting = stations.iter().filter(|k| {
                let mut p = k.split('/');
                let (park, site, station) = (p.next().unwrap(), p.next().unwrap(), p.next().unwrap());
                parse_metric(&text, &format!(
                    "quantrac_station_last_reading_timestamp_seconds{{park=\"{park}\",site=\"{site}\",station=\"{station}\"}}"
                ))
                .is_some()
            });
            let exceeded = text.lines().any(|l| l.starts_with("quantrac_exceedance{") && l.ends_with(" 1"));
            let silent = text
                .lines()
                .any(|l| l.starts_with("quantrac_station_state{") && l.contains("state=\"silent\"") && l.ends_with(" 1"));
            (reporting.count() == stations.len() && exceeded && silent).then_some(text)
        }
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(40));
    assert!(parse_metric(&text, "quantrac_readings_accepted_total").unwrap() > 0.0);
    let status = demo
        .sigterm(Duration::from_secs(30))
        .expect("the demo stops on SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_publishes_the_park_to_a_real_broker_and_quantrac_ingests_it() {
    // Most simulated stations are not in this test's stations.toml: accepted (stored, counted,
    // no verdict) because the test says so; the default rejects them.
    let Stack {
        q,
        influx,
        broker,
        dir: _dir,
    } = Stack::start(QUANTRAC, "[stations]\nunknown = \"accept\"\n").await;
    let out = tokio::process::Command::new(QUANTRAC)
        .args([
            "simulate",
            "--url",
            &broker.url(),
            "--interval-s",
            "0.5",
            "--duration-s",
            "3",
        ])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(" 0 unacknowledged"), "{text}");
    let sent: u64 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(sent >= 10, "{text}");
    // The stations of the simulated park that are not in this test's stations.toml: stored,
    // counted, no verdict.
    eventually(
        "every simulated message received",
        Duration::from_secs(20),
        || async {
            (q.metric("quantrac_messages_received_total").await == Some(sent as f64)).then_some(())
        },
    )
    .await;
    let rows = eventually(
        "simulated readings in InfluxDB",
        Duration::from_secs(20),
        || async {
            let r = influx
                .rows("SELECT count(value) FROM reading GROUP BY station")
                .await;
            (r.len() >= 3).then_some(r)
        },
    )
    .await;
    assert!(rows.iter().all(|r| r["count"].as_u64().unwrap() > 0));
    // The textile outfall is configured in this test's stations.toml; the electronics one is not.
    let judged = influx
        .count("SELECT count(limit_max) FROM reading WHERE site = 'nd-textile'")
        .await;
    assert!(judged > 0);
    let unjudged = influx
        .count("SELECT count(limit_max) FROM reading WHERE site = 'dc-electronics'")
        .await;
    assert_eq!(
        unjudged, 0,
        "an unconfigured station is stored with no limit"
    );
    assert!(
        influx
            .count("SELECT count(value) FROM reading WHERE site = 'dc-electronics'")
            .await
            > 0
    );
}

/// `simulate --stations FILE` writes the park's stations file; `run` with it judges every
/// simulated station (none rejected as unknown), and a second `simulate` reads the same file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_writes_the_stations_file_that_run_judges_every_station_with() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let influx = Influx1::start(dir.path());
    influx.create_db().await;
    let file = dir.path().join("park.toml");
    let simulate = |duration: &'static str| {
        let (url, file) = (broker.url(), file.clone());
        async move {
            let out = tokio::process::Command::new(QUANTRAC)
                .args(["simulate", "--url", &url, "--interval-s", "0.5"])
                .args(["--duration-s", duration, "--stations"])
                .arg(&file)
                .output()
                .await
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            assert!(
                out.status.success(),
                "{text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            text
        }
    };
    let first = simulate("1").await;
    assert!(first.contains("wrote ") && first.contains("6 simulated stations"), "{first}");
    let stations = std::fs::read_to_string(&file).unwrap();
    let cfg = Quantrac::config_text(dir.path(), &broker.url(), &influx.v1_config(), "");
    let q = Quantrac::start(QUANTRAC, dir.path(), &cfg, &stations);
    q.wait_ready().await;
    let second = simulate("4").await;
    assert!(!second.contains("wrote "), "the file is read, not written again: {second}");
    let sites = eventually("every simulated site judged", Duration::from_secs(20), || async {
        let rows = influx
            .rows("SELECT count(limit_max) FROM reading GROUP BY site")
            .await;
        (rows.len() == 6).then_some(rows)
    })
    .await;
    assert!(sites.iter().all(|r| r["count"].as_u64().unwrap() > 0), "{sites:?}");
    assert_eq!(
        q.metric(r#"quantrac_readings_rejected_total{reason="unknown_station"}"#)
            .await
            .unwrap_or(0.0),
        0.0
    );
}
