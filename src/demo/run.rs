//! `quantrac demo` and `quantrac simulate`: the command-line arguments and the wiring of the
//! embedded broker, the simulator and the real pipeline ([`app::start`]).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};

use super::{
    publish, start_broker_listeners, stations_toml, stations_toml_for, DemoError, PublishOptions,
    ALERT_TIMELINE,
};
use crate::app;
use crate::config::Settings;
use crate::shutdown::CancellationToken;

#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Port of the embedded MQTT broker (0 = a free port).
    #[arg(long, default_value_t = 1883)]
    pub mqtt_port: u16,
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, default_value = "127.0.0.1:9787")]
    pub listen: String,
    /// Folder for the demo's journal and configuration.
    #[arg(long, default_value = "data/demo")]
    pub dir: PathBuf,
    /// Seconds between a station's messages.
    #[arg(long, default_value_t = 5)]
    pub interval_s: u64,
    /// Also write to this InfluxDB (e.g. http://127.0.0.1:8086); none by default.
    #[arg(long)]
    pub influx_url: Option<crate::config::InfluxUrl>,
    /// InfluxDB API for --influx-url: v1 or v2.
    #[arg(long, default_value = "v1")]
    pub influx_api: String,
}

#[derive(clap::Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Broker to publish to.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub url: String,
    /// Seconds between a station's messages.
    #[arg(long, default_value_t = 5.0)]
    pub interval_s: f64,
    /// Replicate the park this many times (load tests).
    #[arg(long, default_value_t = 1)]
    pub copies: usize,
    /// Stop after this many seconds (0 = until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub duration_s: u64,
    /// The stations file of the simulated park. When FILE does not exist it is written (every
    /// copy, reporting every --interval-s), so `quantrac run` with `stations.file` naming it
    /// judges every station published; when it exists, only the simulated stations it
    /// configures are published.
    #[arg(long, value_name = "FILE")]
    pub stations: Option<PathBuf>,
}

/// `quantrac demo`: an embedded broker, the simulated park and the real pipeline.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    // The usual ports may be taken (a broker or another quantrac already running): the demo
    // then takes free ones and says so, rather than refusing to start.
    let listeners = match start_broker_listeners(args.mqtt_port) {
        Err(DemoError::PortInUse { port, .. }) if port != 0 => {
            tracing::warn!(
                port,
                "MQTT port in use; the demo broker takes a free port instead"
            );
            start_broker_listeners(0)?
        }
        other => other?,
    };
    let broker = listeners.v5;
    let listen = match std::net::TcpListener::bind(&args.listen) {
        Ok(probe) => {
            drop(probe);
            args.listen.clone()
        }
        Err(e) => {
            tracing::warn!(listen = %args.listen, error.message = %e, "metrics address in use; the demo takes a free port instead");
            "127.0.0.1:0".to_string()
        }
    };
    let stations = args.dir.join("stations.toml");
    std::fs::write(&stations, stations_toml())
        .with_context(|| format!("writing {}", stations.display()))?;
    // The demo's journal for the commands that read one (`dead-letters list`, `verify`).
    let config = args.dir.join("quantrac.toml");
    std::fs::write(&config, demo_config(&stations, &args.dir.join("journal")))
        .with_context(|| format!("writing {}", config.display()))?;
    let mut settings = Settings::default();
    settings.mqtt.url = broker.into();
    settings.mqtt.client_id = "quantrac-demo".into();
    settings.stations.file = stations;
    settings.journal.path = args.dir.join("journal");
    settings.http.listen = listen.parse().context("--listen")?;
    settings.influx.url = args.influx_url.clone();
    settings.influx.api = match args.influx_api.as_str() {
        "v1" => crate::config::InfluxApi::V1(Default::default()),
        "v2" => crate::config::InfluxApi::V2(Default::default()),
        other => bail!("--influx-api {other:?}: expected v1 or v2"),
    };
    let running = app::start(settings).await?;
    let options = PublishOptions {
        url: format!("mqtt://{}", listeners.mqtt),
        client_id: "quantrac-demo-simulator".into(),
        interval: Duration::from_secs(args.interval_s.max(1)),
        ..Default::default()
    };
    let simulator = tokio::spawn(publish(options, running.stopping()));
    let http = running.http_addr;
    let journal = args.dir.join("journal");
    let mut timeline = String::new();
    for (when, alert, what) in ALERT_TIMELINE {
        timeline.push_str(&format!("  {when:<20} {alert:<25} {what}\n"));
    }
    println!("\nquantrac status page: http://{http}/  ← open it in a browser: which sites are over their limits, right now");
    println!(
        "\nquantrac demo: a simulated Hải Phòng park is publishing to an embedded MQTT broker.\n\n\
         \x20 metrics      http://{http}/metrics   (try: curl -s http://{http}/metrics | grep 'quantrac_station_state.* 1$')\n\
         \x20 readiness    http://{http}/readyz\n\
         \x20 MQTT broker  mqtt://{mqtt} (MQTT 3.1.1 and v5); watch it: mosquitto_sub -h {h} -p {p} -t 'env/#' -v\n\
         \x20 journal      {journal}   (quantrac verify --journal {journal})\n\
         \x20 settings     {config}   (quantrac dead-letters list --config {config})\n\
         \x20 Grafana      add Prometheus scraping http://{http}/metrics and import deploy/grafana/dashboards/\n\
         \x20              (run with --influx-url http://127.0.0.1:8086 to fill InfluxDB too)\n\n\
         What happens, and when, counted from now (the alerts of deploy/prometheus/rules/, with\n\
         Prometheus scraping the metrics address above):\n{timeline}\n\
         Ctrl-C stops.\n",
        mqtt = listeners.mqtt,
        h = listeners.mqtt.ip(),
        p = listeners.mqtt.port(),
        journal = journal.display(),
        config = config.display(),
    );
    let result = running.run_until(app::shutdown_signal()).await;
    match simulator.await {
        Ok(Ok(report)) => tracing::info!(
            sent = report.sent,
            acked = report.acked,
            "simulator stopped"
        ),
        Ok(Err(e)) => tracing::warn!(error.message = %e, "simulator failed"),
        Err(e) => tracing::warn!(error.message = %e, "simulator task failed"),
    }
    result
}

/// The settings file `quantrac demo` leaves in its folder, so that the commands that read a
/// journal find the demo's (paths as given on the command line).
fn demo_config(stations: &std::path::Path, journal: &std::path::Path) -> String {
    format!(
        "# Written by `quantrac demo`: where its stations file and journal are, for\n\
         # quantrac dead-letters list / refused list / verify --config <this file>.\n\n\
         [stations]\nfile = {stations:?}\n\n[journal]\npath = {journal:?}\n",
        stations = stations.display().to_string(),
        journal = journal.display().to_string(),
    )
}

/// `simulate --stations FILE`: writes the park's stations file when there is none, or reads
/// the one there; returns the simulated stations it configures (`park/site/station`).
fn stations_file(
    path: &std::path::Path,
    replicas: u32,
    interval_s: f64,
) -> anyhow::Result<std::collections::BTreeSet<String>> {
    let simulated: std::collections::BTreeSet<String> =
        super::Simulator::with_replicas(1, Duration::from_secs(1), replicas)
            .station_keys()
            .into_iter()
            .collect();
    if !path.exists() {
        // Whole seconds: `expected_interval_s` is an integer.
        let interval = interval_s.round().max(1.0) as u64;
        std::fs::write(path, stations_toml_for(replicas, interval))
            .with_context(|| format!("writing {}", path.display()))?;
        println!(
            "wrote {}: the {} simulated stations, reporting every {interval} s (set stations.file to it)",
            path.display(),
            simulated.len()
        );
        return Ok(simulated);
    }
    let defaults = crate::config::ComplianceSettings::default().station_defaults();
    let configured = crate::config::Stations::load(path, &defaults)?;
    let keys: std::collections::BTreeSet<String> =
        configured.iter().map(|s| s.key.to_string()).collect();
    let kept: std::collections::BTreeSet<String> = simulated.intersection(&keys).cloned().collect();
    if kept.is_empty() {
        bail!(
            "{} configures none of the simulated stations ({}); remove it and run again to have it written",
            path.display(),
            simulated.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    let left_out: Vec<&String> = simulated.difference(&keys).collect();
    if !left_out.is_empty() {
        println!(
            "{} configures {} of the {} simulated stations; not publishing {}",
            path.display(),
            kept.len(),
            simulated.len(),
            left_out
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(kept)
}

/// `quantrac simulate`: the simulated park, published to a real broker.
pub async fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        app::shutdown_signal().await;
        on_signal.cancel();
    });
    let replicas = u32::try_from(args.copies.max(1)).unwrap_or(u32::MAX);
    let only = match &args.stations {
        Some(path) => Some(stations_file(path, replicas, args.interval_s)?),
        None => None,
    };
    let options = PublishOptions {
        url: args.url.clone(),
        interval: Duration::from_secs_f64(args.interval_s.max(0.001)),
        duration: (args.duration_s > 0).then(|| Duration::from_secs(args.duration_s)),
        replicas,
        only,
        ..Default::default()
    };
    let report = publish(options, stop).await?;
    println!(
        "sent {} messages, {} acknowledged by the broker, {} unacknowledged, in {:.1} s",
        report.sent,
        report.acked,
        report.unacked,
        report.elapsed.as_secs_f64()
    );
    if report.unacked > 0 {
        bail!(
            "{} messages were not acknowledged by the broker",
            report.unacked
        );
    }
    Ok(())
}
