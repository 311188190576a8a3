//! `quantrac demo` and `quantrac simulate`: the command-line arguments and the wiring of the
//! embedded broker, the simulator and the real pipeline ([`app::start`]).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};

use super::{publish, start_broker_listeners, stations_toml, DemoError, PublishOptions};
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
}

/// `quantrac demo`: an embedded broker, the simulated park and the real pipeline.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    // The usual ports may be taken (a broker or another quantrac already running): the demo
    // then takes free ones and says so, rather than refusing to start.
    let listeners = match start_broker_listeners(args.mqtt_port, 0) {
        Err(DemoError::PortInUse { port, .. }) if port != 0 => {
            tracing::warn!(
                port,
                "MQTT port in use; the demo broker takes a free port instead"
            );
            start_broker_listeners(0, 0)?
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
        url: format!("mqtt://{broker}"),
        client_id: "quantrac-demo-simulator".into(),
        interval: Duration::from_secs(args.interval_s.max(1)),
        ..Default::default()
    };
    let simulator = tokio::spawn(publish(options, running.stopping()));
    let http = running.http_addr;
    println!("\nquantrac status page: http://{http}/  ← open it in a browser: which sites are over their limits, right now");
    println!(
        "\nquantrac demo: a simulated Hải Phòng park is publishing to an embedded MQTT broker.\n\n\
         \x20 metrics      http://{http}/metrics   (try: curl -s http://{http}/metrics | grep quantrac_exceedance)\n\
         \x20 readiness    http://{http}/readyz\n\
         \x20 MQTT broker  mqtt://{broker} (v5) and mqtt://{v311} (v3.1.1); watch it: mosquitto_sub -h {h} -p {p} -t 'env/#' -v\n\
         \x20 journal      {journal}   (quantrac verify / dead-letters list work on it with a config naming it)\n\
         \x20 Grafana      add Prometheus scraping http://{http}/metrics and import deploy/grafana/dashboards/\n\
         \x20              (run with --influx-url http://127.0.0.1:8086 to fill InfluxDB too)\n\n\
         The textile outfall exceeds its COD limit, the chemical outfall calibrates, a boiler reports a\n\
         device fault and the footwear outfall goes silent. Ctrl-C stops.\n",
        h = broker.ip(),
        p = listeners.v311.port(),
        v311 = listeners.v311,
        journal = args.dir.join("journal").display(),
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

/// `quantrac simulate`: the simulated park, published to a real broker.
pub async fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        app::shutdown_signal().await;
        on_signal.cancel();
    });
    let options = PublishOptions {
        url: args.url.clone(),
        interval: Duration::from_secs_f64(args.interval_s.max(0.001)),
        duration: (args.duration_s > 0).then(|| Duration::from_secs(args.duration_s)),
        replicas: u32::try_from(args.copies.max(1)).unwrap_or(u32::MAX),
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
