//! Wiring: builds every stage, connects them with bounded channels, and stops them in order.
//! The only module that names every stage; it holds no domain rule.
//!
//! ```text
//! mqtt ──Envelope──▶ decode ──(Envelope, Decoded)──▶ compliance ──Processed──▶ journal (thread)
//!   ▲                                                                           │ commit
//!   └──────────────────────── Ack resolved after commit ◀──────────────────────┘
//!                                                          outbox ──▶ sink ──▶ InfluxDB
//! ```
//!
//! Shutdown: the stop signal makes `mqtt` stop forwarding; `decode`, `compliance` and `journal`
//! drain until their input closes; the last commit resolves the last acks, the acker sends the
//! PUBACKs and disconnects; the sink makes one last flush; then the HTTP server stops.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::sync::{mpsc, Notify};

use crate::compliance::{self, Catalogue, Engine};
use crate::config::{Settings, Stations};
use crate::decode::{self, Decoder};
use crate::journal::{self, Journal, Outbox};
use crate::metrics::Metrics;
use crate::pipeline::{Envelope, Processed};
use crate::readiness::Readiness;
use crate::shutdown::Stop;
use crate::{http, mqtt, sink};

/// How long shutdown may take before stragglers are named and left behind.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);

/// A running pipeline.
pub struct Running {
    pub http_addr: SocketAddr,
    stop: Stop,
    readiness: Readiness,
    mqtt: tokio::task::JoinHandle<Result<(), mqtt::Error>>,
    decode: tokio::task::JoinHandle<()>,
    compliance: tokio::task::JoinHandle<()>,
    journal: std::thread::JoinHandle<Result<(), journal::Error>>,
    sink: Option<(tokio::task::JoinHandle<()>, tokio::sync::watch::Sender<bool>)>,
    http: tokio::task::JoinHandle<()>,
}

/// Builds the compliance engine from settings and stations, logging start-up warnings.
fn engine(settings: &Settings, stations: Stations) -> Engine {
    let engine = Engine::new(stations, &Catalogue::builtin(), settings.stations.timezone);
    for w in engine.warnings() {
        tracing::warn!("{w}");
    }
    engine
}

/// `check-config`'s table: every station × parameter limit, its window and where it comes from.
pub fn limit_table(settings: &Settings, stations: Stations) -> anyhow::Result<String> {
    let n = stations.by_key.len();
    let engine = engine(settings, stations);
    Ok(compliance::render_limit_table(&engine.limit_table(), &engine.warnings(), n))
}

/// Starts every stage. Returns once the HTTP server listens; the pipeline runs in tasks.
pub async fn start(settings: Settings) -> anyhow::Result<Running> {
    let stations = settings.load_stations()?;
    let metrics = Metrics::new();
    let readiness = Readiness::default();
    let (stop, stop_listener) = Stop::new();

    for s in stations.iter() {
        metrics
            .station_expected_interval
            .with_label_values(&Metrics::station_labels(&s.key))
            .set(s.expected_interval_s as f64);
    }
    let mut engine = engine(&settings, stations);
    let mut decoder = Decoder::new(
        &settings.mqtt.topics,
        settings.stations.timezone,
        settings.mqtt.max_payload_bytes,
    )
    .context("mqtt.topics")?;

    let journal = Journal::open(&settings.journal.path, settings.journal.durable)
        .with_context(|| format!("opening the journal in {}", settings.journal.path.display()))?;
    rebuild_windows(&journal, &mut decoder, &mut engine)?;

    let (http_addr, http) = http::serve(
        &settings.http.listen,
        metrics.clone(),
        readiness.clone(),
        stop_listener.clone(),
    )
    .await
    .with_context(|| format!("binding http.listen {}", settings.http.listen))?;
    tracing::info!(address = %http_addr, "HTTP listening on http://{http_addr}/metrics");

    let cap = mqtt::channel_capacity(&settings.mqtt);
    let (to_decode, decode_rx) = mpsc::channel::<Envelope>(cap);
    let (to_compliance, compliance_rx) = mpsc::channel(cap);
    let (to_journal, journal_rx) = mpsc::channel::<Processed>(cap);

    let filters = decoder.filters();
    let decode = tokio::spawn(decode::run(decoder, decode_rx, to_compliance, metrics.clone()));
    let compliance = tokio::spawn(compliance::run(
        engine,
        compliance_rx,
        to_journal,
        metrics.clone(),
        stop_listener.clone(),
    ));

    let wake_sink = Arc::new(Notify::new());
    let journal = journal::spawn(
        journal,
        journal_rx,
        Box::new(render_points),
        metrics.clone(),
        wake_sink.clone(),
        journal::RunSettings::from(&settings.journal),
        readiness.clone(),
    );

    let sink = match sink::Client::from_settings(&settings.influx)? {
        Some(client) => {
            let outbox = Outbox::open(&settings.journal.path)?;
            let (sink_stop, sink_stop_rx) = tokio::sync::watch::channel(false);
            let task = tokio::spawn(sink::run(
                OutboxBacklog(outbox),
                client,
                sink::Options::from_settings(&settings.influx, Duration::from_secs(10)),
                metrics.clone(),
                wake_sink,
                sink_stop_rx,
            ));
            Some((task, sink_stop))
        }
        None => {
            tracing::warn!("influx.url is empty: readings stay in the journal only");
            None
        }
    };

    let mqtt_settings = settings.mqtt;
    let mqtt = {
        let (metrics, readiness, stop) = (metrics.clone(), readiness.clone(), stop_listener.clone());
        tokio::spawn(async move {
            mqtt::run(&mqtt_settings, filters, to_decode, metrics, readiness, stop).await
        })
    };

    Ok(Running {
        http_addr,
        stop,
        readiness,
        mqtt,
        decode,
        compliance,
        journal,
        sink,
        http,
    })
}

/// Lines for the journal's outbox: one `reading` point per judged reading, one `average` point
/// per window the message changed.
fn render_points(p: &Processed) -> Vec<String> {
    p.readings
        .iter()
        .filter_map(sink::line::reading_line)
        .chain(p.averages.iter().filter_map(sink::line::average_line))
        .collect()
}

/// Rebuilds compliance windows from the journal, so a restart in the middle of a window loses
/// no sample: the messages of the late-data horizon are decoded again and fed to the engine.
fn rebuild_windows(
    journal: &Journal,
    decoder: &mut Decoder,
    engine: &mut Engine,
) -> anyhow::Result<()> {
    let now = chrono::Utc::now().timestamp_millis();
    let since = now - engine.late_horizon_ms();
    let messages = journal.messages_since(since)?;
    let mut readings = Vec::new();
    for m in messages.iter().filter(|m| !m.topic.starts_with('$')) {
        readings.extend(decoder.decode(&m.topic, &m.payload, m.received_at_ms).readings);
    }
    let n = readings.len();
    engine.restore(readings, now);
    if !messages.is_empty() {
        tracing::info!(messages = messages.len(), readings = n, "compliance windows rebuilt from the journal");
    }
    Ok(())
}

/// The journal's outbox as the sink's backlog.
struct OutboxBacklog(Outbox);

impl sink::Backlog for OutboxBacklog {
    fn next_batch(&mut self, limit: usize) -> Result<Vec<(u64, String)>, String> {
        self.0.next_batch(limit).map_err(|e| e.to_string())
    }
    fn written(&mut self, upto_id: u64) -> Result<(), String> {
        self.0.written(upto_id).map_err(|e| e.to_string())
    }
    fn rejected(&mut self, id: u64, reason: &str) -> Result<(), String> {
        self.0.rejected(id, reason).map_err(|e| e.to_string())
    }
    fn backlog(&mut self) -> Result<u64, String> {
        self.0.backlog().map_err(|e| e.to_string())
    }
}

impl Running {
    /// Stops intake, drains the pipeline, flushes, and waits for every task (within a deadline).
    pub async fn shutdown(self) -> anyhow::Result<()> {
        tracing::info!("shutting down: no new messages; draining the pipeline");
        self.readiness.not_ready("app", "shutting down");
        self.stop.fire();
        let deadline = tokio::time::Instant::now() + SHUTDOWN_DEADLINE;
        let mut failed = false;
        match tokio::time::timeout_at(deadline, self.mqtt).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                tracing::error!(error.message = %e, "MQTT source failed");
                failed = true;
            }
            Ok(Err(e)) => tracing::error!(error.message = %e, "MQTT source task failed"),
            Err(_) => tracing::warn!("MQTT source overran the shutdown deadline"),
        }
        for (name, task) in [("decode", self.decode), ("compliance", self.compliance)] {
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                tracing::warn!(stage = name, "stage overran the shutdown deadline");
            }
        }
        let journal = self.journal;
        let joined = tokio::task::spawn_blocking(move || journal.join());
        match tokio::time::timeout_at(deadline, joined).await {
            Ok(Ok(Ok(Ok(())))) => {}
            Ok(Ok(Ok(Err(e)))) => {
                tracing::error!(error.message = %e, "journal failed");
                failed = true;
            }
            _ => tracing::warn!(stage = "journal", "stage overran the shutdown deadline"),
        }
        if let Some((task, stop)) = self.sink {
            let _ = stop.send(true);
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                tracing::warn!(stage = "sink", "stage overran the shutdown deadline");
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.http).await;
        if failed {
            bail!("a stage failed; see the log above");
        }
        tracing::info!("stopped");
        Ok(())
    }

    /// Waits until `signal` resolves or a stage fails, then shuts down.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(signal);
        let mut readiness_check = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = &mut signal => break,
                _ = readiness_check.tick() => {
                    if self.journal.is_finished() || self.mqtt.is_finished() {
                        tracing::error!("a pipeline stage stopped; shutting down");
                        break;
                    }
                }
            }
        }
        self.shutdown().await
    }
}

/// Resolves on the first SIGINT or SIGTERM. A second signal exits at once: the journal holds
/// everything that was acknowledged, so nothing is lost by not waiting.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::warn!("second signal: exiting now");
            std::process::exit(130);
        });
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `quantrac run`.
pub async fn run_until_signal(settings: Settings) -> anyhow::Result<()> {
    let running = start(settings).await?;
    running.run_until(shutdown_signal()).await
}
