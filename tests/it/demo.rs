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
    assert!(
        first.contains("wrote ") && first.contains("6 simulated stations"),
        "{first}"
    );
    let stations = std::fs::read_to_string(&file).unwrap();
    let cfg = Quantrac::config_text(dir.path(), &broker.url(), &influx.v1_config(), "");
    let q = Quantrac::start(QUANTRAC, dir.path(), &cfg, &stations);
    q.wait_ready().await;
    let second = simulate("4").await;
    assert!(
        !second.contains("wrote "),
        "the file is read, not written again: {second}"
    );
    let sites = eventually(
        "every simulated site judged",
        Duration::from_secs(20),
        || async {
            let rows = influx
                .rows("SELECT count(limit_max) FROM reading GROUP BY site")
                .await;
            (rows.len() == 6).then_some(rows)
        },
    )
    .await;
    assert!(
        sites.iter().all(|r| r["count"].as_u64().unwrap() > 0),
        "{sites:?}"
    );
    assert_eq!(
        q.metric(r#"quantrac_readings_rejected_total{reason="unknown_station"}"#)
            .await
            .unwrap_or(0.0),
        0.0
    );
}

/// The demo's alert timeline (`quantrac::demo::ALERT_TIMELINE`, printed in its banner and the
/// README), checked on what the alerts are computed from: the simulated park runs for 20
/// simulated minutes through the real decoder and compliance engine, and each scenario's
/// condition must hold as early and as long as the shipped rule's `for:` needs.
#[test]
fn the_demo_scenarios_meet_each_alert_condition_in_time() {
    use quantrac::compliance::{Catalogue, Engine, HealthState};
    use quantrac::decode::{Decoder, StationFilter};

    let settings = quantrac::config::Settings::default();
    let tz = settings.stations.timezone;
    let defaults = settings.compliance.station_defaults();
    let stations =
        quantrac::config::Stations::parse(&quantrac::demo::stations_toml(), "demo", &defaults)
            .unwrap();
    let keys: Vec<_> = stations.iter().map(|s| s.key.clone()).collect();
    let mut decoder = Decoder::new(&settings.mqtt.topics, tz, settings.mqtt.max_payload_bytes)
        .unwrap()
        .with_stations(StationFilter::new(
            keys,
            settings.stations.unknown,
            settings.stations.max_unknown_stations,
        ));
    let mut engine = Engine::new(stations, &Catalogue::builtin(), tz);
    let mut sim = quantrac::demo::Simulator::new(7, Duration::from_secs(5));

    const MIN: i64 = 60_000;
    // 2026-11-29 14:02:30 +07:00: in the middle of a 5-minute window, as a demo usually starts.
    let t0: i64 = 1_795_935_750_000;
    let state_of = |h: &[quantrac::compliance::StationHealth], station: &str| {
        h.iter()
            .find(|h| h.key.to_string() == station)
            .unwrap()
            .state
    };
    let (mut accepted, mut rejected) = (0usize, 0usize);
    let mut textile_instant: Vec<(i64, bool)> = Vec::new();
    let mut window_exceeded_at = None;
    let mut boiler_fault: Vec<i64> = Vec::new();
    let mut silent_from = None;
    let mut stuck_from = None;
    for step in 0..=(20 * 12) {
        let now = t0 + step * 5_000;
        for (topic, payload) in sim.messages_at(now) {
            let decoded = decoder.decode(&topic, &payload, now);
            accepted += decoded.readings.len();
            rejected += decoded.rejections.len();
            let (judged, points) = engine.judge(decoded.readings, now);
            for j in judged {
                if topic == "env/nam-dinh-vu/nd-textile/outfall-1"
                    && j.reading.param.to_string() == "COD"
                {
                    textile_instant.push((now - t0, j.exceeded));
                }
            }
            for p in points {
                if p.window == "5m" && p.valid && p.exceeded {
                    window_exceeded_at.get_or_insert(now - t0);
                }
            }
        }
        for p in engine.tick(now) {
            if p.window == "5m" && p.valid && p.exceeded {
                window_exceeded_at.get_or_insert(now - t0);
            }
        }
        let h = engine.health(now);
        if state_of(&h, "dinh-vu/dv-power/boiler-1") == HealthState::Fault {
            boiler_fault.push(now - t0);
        }
        match state_of(&h, "trang-due/td-footwear/outfall-1") {
            HealthState::Silent => {
                silent_from.get_or_insert(now - t0);
            }
            _ => assert!(silent_from.is_none(), "the footwear outfall stays silent"),
        }
        if state_of(&h, "deep-c/dc-electronics/outfall-1") == HealthState::Stuck {
            stuck_from.get_or_insert(now - t0);
        }
    }
    // StationSilent (for 2m): silent within the first minute.
    assert!(silent_from.unwrap() <= MIN, "{silent_from:?}");
    // StationDeviceFault (for 5m): in fault without a break for more than 5 minutes, early.
    assert!(boiler_fault[0] <= 2 * MIN, "{:?}", boiler_fault.first());
    let fault_run = boiler_fault
        .windows(2)
        .take_while(|w| w[1] - w[0] == 5_000)
        .count() as i64
        * 5_000;
    assert!(fault_run > 6 * MIN, "fault for {fault_run} ms");
    // LimitExceeded: a closed, valid 5-minute window over the limit within 10 minutes.
    assert!(
        window_exceeded_at.unwrap() <= 10 * MIN,
        "{window_exceeded_at:?}"
    );
    // InstantLimitExceeded (for 15m): every COD reading over the limit for over 16 minutes.
    let over: Vec<i64> = textile_instant
        .iter()
        .take_while(|(_, e)| *e)
        .map(|(t, _)| *t)
        .collect();
    assert!(over.last().copied().unwrap_or(0) >= 16 * MIN, "{over:?}");
    // AnalyserStuck (for 5m): stuck within 6 minutes.
    assert!(stuck_from.unwrap() <= 6 * MIN, "{stuck_from:?}");
    // ReadingsRejected (> 5 % for 15m).
    let share = rejected as f64 / (accepted + rejected) as f64;
    assert!(
        share > 0.06,
        "{rejected} of {} rejected",
        accepted + rejected
    );
}
