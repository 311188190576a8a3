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
    _lock: JournalLock,
    stop: Stop,
    readiness: Readiness,
    mqtt: tokio::task::JoinHandle<Result<(), mqtt::Error>>,
    decode: tokio::task::JoinHandle<()>,
    compliance: tokio::task::JoinHandle<()>,
    journal: std::thread::JoinHandle<Result<(), journal::Error>>,
    sink: Option<(
        tokio::task::JoinHandle<()>,
        tokio::sync::watch::Sender<bool>,
    )>,
    http: tokio::task::JoinHandle<()>,
}

/// Builds the compliance engine from settings and stations.
fn engine(settings: &Settings, stations: Stations) -> Engine {
    Engine::new(stations, &Catalogue::builtin(), settings.stations.timezone)
}

/// `check-config`'s table: every station × parameter limit, its window and where it comes from.
pub fn limit_table(settings: &Settings, stations: Stations) -> anyhow::Result<String> {
    let n = stations.by_key.len();
    let engine = engine(settings, stations);
    Ok(compliance::render_limit_table(
        &engine.limit_table(),
        &engine.warnings(),
        n,
    ))
}

/// Starts every stage. Returns once the HTTP server listens; the pipeline runs in tasks.
pub async fn start(settings: Settings) -> anyhow::Result<Running> {
    let stations = settings.load_stations()?;
    let metrics = Metrics::new();
    let readiness = Readiness::default();
    // Not ready until the MQTT source has its subscriptions: set before /readyz can be asked.
    readiness.not_ready(
        mqtt::COMPONENT,
        format!("connecting to {}", settings.mqtt.url),
    );
    let (stop, stop_listener) = Stop::new();

    for s in stations.iter() {
        metrics
            .station_expected_interval
            .with_label_values(&Metrics::station_labels(&s.key))
            .set(s.expected_interval_s as f64);
    }
    let mut engine = engine(&settings, stations);
    for w in engine.warnings() {
        tracing::warn!("{w}");
    }
    let mut decoder = Decoder::new(
        &settings.mqtt.topics,
        settings.stations.timezone,
        settings.mqtt.max_payload_bytes,
    )
    .context("mqtt.topics")?;

    let lock = JournalLock::acquire(&settings.journal.path)?;
    let mut journal = Journal::open(&settings.journal.path, settings.journal.durable)
        .with_context(|| format!("opening the journal in {}", settings.journal.path.display()))?;
    rebuild_windows(&mut journal, &mut decoder, &mut engine)?;

    let (http_addr, http) = http::serve(
        settings.http.listen,
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
    let decode = tokio::spawn(decode::run(
        decoder,
        decode_rx,
        to_compliance,
        metrics.clone(),
    ));
    let compliance = tokio::spawn(compliance::run(
        engine,
        compliance_rx,
        to_journal,
        metrics.clone(),
    ));

    let wake_sink = Arc::new(Notify::new());
    let journal = journal::spawn(
        journal,
        journal_rx,
        Box::new(render_points),
        metrics.clone(),
        wake_sink.clone(),
        journal::RunParams::from_settings(&settings.journal),
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
        let (metrics, readiness, stop) =
            (metrics.clone(), readiness.clone(), stop_listener.clone());
        tokio::spawn(async move {
            mqtt::run(&mqtt_settings, filters, to_decode, metrics, readiness, stop).await
        })
    };

    Ok(Running {
        http_addr,
        _lock: lock,
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
/// per window the message changed. The renderers refuse only non-finite values, which cannot get
/// this far: `decode` rejects them (reason `value`) and O2 correction is not applied at O2 ≥ 20.
fn render_points(p: &Processed) -> Vec<String> {
    p.readings
        .iter()
        .filter_map(sink::line::reading_line)
        .chain(p.averages.iter().filter_map(sink::line::average_line))
        .collect()
}

/// Rebuilds compliance windows from the journal, so a restart in the middle of a window loses
/// no sample: the messages of the late-data horizon are decoded again and fed to the engine.
///
/// Window points are journaled once per tick (see `compliance::run`), so readings committed
/// after the last windows record may have changed windows whose points never reached the
/// journal. Those readings are judged again here, and the windows they touch are committed now.
fn rebuild_windows(
    journal: &mut Journal,
    decoder: &mut Decoder,
    engine: &mut Engine,
) -> anyhow::Result<()> {
    let now = chrono::Utc::now().timestamp_millis();
    let messages = journal.messages_since(now - engine.late_horizon_ms())?;
    let last_windows_record = messages
        .iter()
        .rposition(|m| m.topic == compliance::WINDOWS_TOPIC)
        .map_or(0, |i| i + 1);
    let (before, after) = messages.split_at(last_windows_record);
    let mut decode = |m: &journal::StoredMessage| {
        if m.topic.starts_with('$') {
            Vec::new()
        } else {
            decoder
                .decode(&m.topic, &m.payload, m.received_at_ms)
                .readings
        }
    };
    let restored: Vec<_> = before.iter().flat_map(&mut decode).collect();
    let n = restored.len();
    engine.restore(restored, now);
    let mut pending = compliance::PendingWindows::default();
    for m in after {
        let (_, averages) = engine.judge(decode(m), now);
        pending.add(averages);
    }
    if let Some(record) = pending.take_record(now) {
        journal.append(&[journal::Entry::of(&record, render_points(&record))])?;
    }
    if !messages.is_empty() {
        tracing::info!(
            messages = messages.len(),
            readings = n,
            rejudged = after.len(),
            "compliance windows rebuilt from the journal"
        );
    }
    Ok(())
}

/// The journal's outbox as the sink's backlog.
struct OutboxBacklog(Outbox);

impl sink::Backlog for OutboxBacklog {
    fn next_batch(&mut self, limit: usize) -> Result<Vec<(u64, String)>, String> {
        self.0.next_batch(limit).map_err(|e| e.to_string())
    }
    fn next_batch_after(
        &mut self,
        after_id: u64,
        _ahead: usize,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, String> {
        self.0
            .next_batch_after(after_id, limit)
            .map_err(|e| e.to_string())
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

/// Holds `journal/LOCK` for as long as it lives: one writer per journal. The running service
/// holds it; `dead-letters replay` needs it, so it cannot interleave with a running service.
pub struct JournalLock(#[allow(dead_code)] std::fs::File);

impl JournalLock {
    pub fn acquire(dir: &std::path::Path) -> anyhow::Result<JournalLock> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("LOCK");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(JournalLock(file)),
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "the journal in {} is in use by a running quantrac; stop it first",
                dir.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }
}

/// `quantrac dead-letters replay`: decodes and judges every dead letter not yet replayed with
/// the current configuration, and commits the outcome as new journal records (the original
/// records stay, as evidence). The service ships the new points to InfluxDB when it runs.
pub async fn replay_dead_letters(settings: Settings) -> anyhow::Result<usize> {
    let _lock = JournalLock::acquire(&settings.journal.path)?;
    let stations = settings.load_stations()?;
    let mut engine = engine(&settings, stations);
    let mut decoder = Decoder::new(
        &settings.mqtt.topics,
        settings.stations.timezone,
        settings.mqtt.max_payload_bytes,
    )
    .context("mqtt.topics")?;
    let mut journal = Journal::open(&settings.journal.path, settings.journal.durable)?;
    rebuild_windows(&mut journal, &mut decoder, &mut engine)?;
    let letters: Vec<_> = journal::dead_letters(&settings.journal.path, usize::MAX)?
        .into_iter()
        .filter(|d| !d.replayed)
        .collect();
    let now = chrono::Utc::now().timestamp_millis();
    let mut processed = Vec::new();
    for d in &letters {
        let decoded = decoder.decode(&d.topic, &d.payload, d.received_at_ms);
        let (readings, averages) = engine.judge(decoded.readings, now);
        println!(
            "#{} {}: {} readings accepted, {} still rejected",
            d.id,
            d.topic,
            readings.len(),
            decoded.rejections.len()
        );
        for r in &decoded.rejections {
            println!("  {}: {}", r.reason.as_label(), r.detail);
        }
        processed.push(Processed {
            envelope: Envelope {
                topic: d.topic.clone(),
                payload: d.payload.clone(),
                received_at_ms: now,
                ack: crate::pipeline::Ack::none(),
            },
            key: decoded.key,
            readings,
            rejections: decoded.rejections,
            averages,
        });
    }
    let entries: Vec<journal::Entry> = processed
        .iter()
        .map(|p| journal::Entry::of(p, render_points(p)))
        .collect();
    if !entries.is_empty() {
        journal.append(&entries)?;
        let ids: Vec<u64> = letters.iter().map(|d| d.id).collect();
        journal::mark_replayed(&settings.journal.path, &ids, now)?;
    }
    Ok(letters.len())
}

/// `quantrac demo`: an embedded broker, the simulated park and the real pipeline.
pub async fn demo(args: crate::cli::DemoArgs) -> anyhow::Result<()> {
    use crate::demo;
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    // The usual ports may be taken (a broker or another quantrac already running): the demo
    // then takes free ones and says so, rather than refusing to start.
    let listeners = match demo::start_broker_listeners(args.mqtt_port, 0) {
        Err(demo::DemoError::PortInUse { port, .. }) if port != 0 => {
            tracing::warn!(
                port,
                "MQTT port in use; the demo broker takes a free port instead"
            );
            demo::start_broker_listeners(0, 0)?
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
    std::fs::write(&stations, demo::stations_toml())
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
    let running = start(settings).await?;
    let (sim_stop, sim_stop_rx) = tokio::sync::watch::channel(false);
    let options = demo::PublishOptions {
        url: format!("mqtt://{broker}"),
        client_id: "quantrac-demo-simulator".into(),
        interval: Duration::from_secs(args.interval_s.max(1)),
        ..Default::default()
    };
    let simulator = tokio::spawn(demo::publish(options, sim_stop_rx));
    let http = running.http_addr;
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
    let signal = async move {
        shutdown_signal().await;
        let _ = sim_stop.send(true);
    };
    let result = running.run_until(signal).await;
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
pub async fn simulate(args: crate::cli::SimulateArgs) -> anyhow::Result<()> {
    use crate::demo;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let options = demo::PublishOptions {
        url: args.url.clone(),
        interval: Duration::from_secs_f64(args.interval_s.max(0.001)),
        duration: (args.duration_s > 0).then(|| Duration::from_secs(args.duration_s)),
        replicas: u32::try_from(args.copies.max(1)).unwrap_or(u32::MAX),
        ..Default::default()
    };
    let report = demo::publish(options, stop_rx).await?;
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
