//! Wiring and lifecycle: builds every stage, connects them with bounded channels, learns at
//! once when one ends, and stops them in order within one budget. The only module that names
//! every stage; it holds no domain rule.
//!
//! ```text
//! mqtt  ─┬─Envelope──▶ decode ──(Envelope, Decoded)──▶ compliance ──Processed──▶ journal (thread)
//! inbox ─┘                                                                      │ commit
//!   ▲                                                                           │
//!   └──────────────────────── Ack resolved after commit ◀──────────────────────┘
//!                                                          outbox ──▶ sink ──▶ InfluxDB
//!                                                   uplink outbox ◀─▶ uplink ──▶ department FTP
//! ```
//!
//! Shutdown, within [`SHUTDOWN_BUDGET`] from the signal:
//! 1. `/readyz` turns 503 and the `intake` token is cancelled: `mqtt` and `inbox` (when
//!    `[inbox]` is set) stop forwarding.
//! 2. `decode`, `compliance` and `journal` drain until their input closes; the last commit
//!    resolves the last acks, the acker sends the PUBACKs and disconnects.
//! 3. When the journal has ended, the `flush` token tells the sink to make one last flush
//!    (bounded by [`SINK_FINAL_FLUSH`]); anything unwritten stays behind the outbox cursor.
//! 4. Any stage still running when the budget is spent is named in the log and abandoned
//!    (unacknowledged messages come back from the broker; the journal is the truth).
//! 5. The HTTP server stops last, so `/readyz` keeps answering 503 during the drain.
//!
//! A stage that ends before it was asked to (an error, a panic, or an early return) starts the
//! same shutdown, and `run` then fails naming the stage, so the process exits non-zero.

mod lock;
mod recovery;
mod uplink;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::sync::{mpsc, watch, Notify};

use crate::config::Settings;
use crate::journal::{self, Journal, Outbox};
use crate::metrics::Metrics;
use crate::model::ParkStatus;
use crate::pipeline::{Envelope, Processed};
use crate::readiness::Readiness;
use crate::shutdown::{CancellationToken, Outcome, Tasks};
use crate::uplink as uplink_stage;
use crate::{compliance, decode, http, inbox, mqtt, sink};

pub use lock::JournalLock;
pub use recovery::{decoder, replay_dead_letters};
pub use uplink::preview as uplink_preview;

/// The whole shutdown, from the signal to the exit. Every other deadline derives from it.
pub const SHUTDOWN_BUDGET: Duration = Duration::from_secs(30);

/// The sink's last flush: a third of the budget, leaving the rest for the drain before it.
pub const SINK_FINAL_FLUSH: Duration = Duration::from_secs(SHUTDOWN_BUDGET.as_secs() / 3);

/// The end of the budget kept for the HTTP server's own graceful stop, after the pipeline.
const HTTP_STOP: Duration = Duration::from_secs(SHUTDOWN_BUDGET.as_secs() / 15);

/// The client certificates quantrac presents: when each expires, as a gauge for the alert
/// rule, and a warning when that is less than [`crate::tls::EXPIRY_WARNING_DAYS`] away. (An expired
/// one was refused when the settings were loaded.)
fn certificate_expiry(settings: &Settings, metrics: &Metrics) {
    let now = chrono::Utc::now().timestamp();
    for (client, tls) in [
        ("mqtt", &settings.mqtt.tls),
        ("influx", &settings.influx.tls),
    ] {
        let Some(id) = tls.identity() else {
            continue;
        };
        metrics
            .tls_certificate_expiry
            .with_label_values(&[client])
            .set(id.not_after as f64);
        let days_left = id.days_left(now);
        let key = format!("{client}.cert_file");
        if id.expiry_warning(now).is_some() {
            tracing::warn!(
                client,
                key,
                subject = %id.subject,
                expires = %id.expires(),
                days_left,
                "the client certificate expires in {days_left} days: renew {key} and restart quantrac"
            );
        } else {
            tracing::info!(client, key, subject = %id.subject, expires = %id.expires(), "client certificate");
        }
    }
}

/// A running pipeline.
pub struct Running {
    pub http_addr: SocketAddr,
    _lock: JournalLock,
    readiness: Readiness,
    tasks: Tasks,
    /// Sources stop taking input.
    intake: CancellationToken,
    /// Sinks make their last flush (after the journal ended).
    flush: CancellationToken,
    /// The HTTP server stops (last).
    http_stop: CancellationToken,
    http: tokio::task::JoinHandle<()>,
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

    certificate_expiry(&settings, &metrics);
    metrics.stations.set_detail(crate::metrics::Detail {
        full: settings.metrics.detail == crate::config::MetricsDetail::Full,
        running_min_ratio: settings.metrics.running_min_ratio,
        running_min_capture: settings.metrics.running_min_capture,
    });
    for s in stations.iter() {
        metrics
            .stations
            .set_expected_interval(&s.key, s.expected_interval_s as f64);
    }
    let mut decoder = recovery::decoder(&settings, &stations)?;
    let mut engine = recovery::engine(&settings, stations);
    for w in engine.warnings() {
        tracing::warn!("{w}");
    }

    let lock = JournalLock::acquire(&settings.journal.path)?;
    let (path, durable) = (settings.journal.path.clone(), settings.journal.durable);
    let archive = (
        journal::archive::configured_dir(&settings.journal),
        settings.stations.timezone,
        settings.journal.signing_key.clone(),
    );
    // Opening and rebuilding read SQLite: off the runtime's workers.
    let (journal, decoder, engine) = tokio::task::spawn_blocking(move || {
        let mut journal = Journal::open(&path, durable)
            .with_context(|| format!("opening the journal in {}", path.display()))?;
        journal
            .set_archive(&archive.0, archive.1, archive.2)
            .with_context(|| format!("opening the archive in {}", archive.0.display()))?;
        recovery::rebuild_windows(&mut journal, &mut decoder, &mut engine)?;
        anyhow::Ok((journal, decoder, engine))
    })
    .await
    .context("rebuilding compliance windows")??;

    // The compliance stage publishes the park's status; the status page only reads it.
    let (status_tx, status_rx) =
        watch::channel(Arc::new(ParkStatus::empty(settings.stations.timezone)));
    let http_stop = CancellationToken::new();
    let (http_addr, http) = http::serve(
        settings.http.listen,
        metrics.clone(),
        readiness.clone(),
        status_rx,
        http_stop.clone(),
    )
    .await
    .with_context(|| format!("binding http.listen {}", settings.http.listen))?;
    tracing::info!(address = %http_addr, "HTTP listening on http://{http_addr}/metrics");

    let cap = mqtt::channel_capacity(&settings.mqtt);
    let (to_decode, decode_rx) = mpsc::channel::<Envelope>(cap);
    let (to_compliance, compliance_rx) = mpsc::channel(cap);
    let (to_journal, journal_rx) = mpsc::channel::<Processed>(cap);

    let mut tasks = Tasks::default();
    let intake = CancellationToken::new();
    let flush = CancellationToken::new();
    let filters = decoder.filters();
    let journal_params = journal::RunParams::from_settings(&settings.journal);
    // The compliance stage's state, kept by the journal stage now and then and at a clean stop.
    let handover = journal_params.handover.clone();
    tasks.spawn(
        "decode",
        never_fails(decode::run(
            decoder,
            decode_rx,
            to_compliance,
            metrics.clone(),
        )),
    );
    tasks.spawn(
        "compliance",
        never_fails(compliance::run(
            engine,
            compliance_rx,
            to_journal,
            metrics.clone(),
            status_tx,
            handover.clone(),
        )),
    );

    let wake_sink = Arc::new(Notify::new());
    {
        let (metrics, wake_sink, readiness) =
            (metrics.clone(), wake_sink.clone(), readiness.clone());
        let params = journal_params;
        tasks
            .spawn_thread("journal", move || {
                journal::run(
                    journal,
                    journal_rx,
                    Box::new(recovery::render_points),
                    metrics,
                    wake_sink,
                    params,
                    readiness,
                )
            })
            .context("starting the journal thread")?;
    }

    match sink::Client::from_settings(&settings.influx)? {
        Some(client) => {
            let path = settings.journal.path.clone();
            let outbox = tokio::task::spawn_blocking(move || Outbox::open(&path))
                .await
                .context("opening the outbox")??;
            let outbox = journal::outbox::AsyncOutbox::new(outbox);
            tasks.spawn(
                "sink",
                sink::run(
                    OutboxBacklog(outbox),
                    client,
                    sink::Options::from_settings(&settings.influx, SINK_FINAL_FLUSH),
                    metrics.clone(),
                    readiness.clone(),
                    wake_sink,
                    flush.clone(),
                ),
            );
        }
        None => tracing::warn!("influx.url is empty: readings stay in the journal only"),
    }

    if let Some(up) = settings.uplink.clone() {
        // Beside the pipeline: /readyz never waits for the department's server.
        let stations = settings.load_stations()?;
        let plan = uplink_stage::Plan::new(&up, &stations, settings.stations.timezone);
        plan.check()
            .map_err(anyhow::Error::msg)
            .context("[uplink]")?;
        let store = uplink::UplinkStore::open(&settings, &stations).await?;
        tasks.spawn(
            "uplink",
            uplink_stage::run(
                store,
                uplink_stage::Options { settings: up, plan },
                metrics.clone(),
                intake.child_token(),
            ),
        );
    }

    if let Some(inbox_settings) = settings.inbox.clone() {
        tasks.spawn(
            "inbox",
            never_fails(inbox::run(
                inbox_settings,
                settings.mqtt.max_payload_bytes,
                to_decode.clone(),
                metrics.clone(),
                readiness.clone(),
                intake.clone(),
            )),
        );
    }

    {
        let (metrics, readiness, intake) = (metrics.clone(), readiness.clone(), intake.clone());
        let mqtt_settings = settings.mqtt;
        tasks.spawn("mqtt", async move {
            mqtt::run(
                &mqtt_settings,
                filters,
                to_decode,
                metrics,
                readiness,
                intake,
            )
            .await
        });
    }

    Ok(Running {
        http_addr,
        _lock: lock,
        readiness,
        tasks,
        intake,
        flush,
        http_stop,
        http,
    })
}

/// A stage loop that cannot fail by returning, as a task [`Tasks`] can supervise.
async fn never_fails(stage: impl Future<Output = ()>) -> Result<(), std::convert::Infallible> {
    stage.await;
    Ok(())
}

/// The journal's outbox as the sink's backlog. [`journal::outbox::AsyncOutbox`] keeps SQLite
/// off the runtime's workers; the journal says which of its errors are worth retrying.
struct OutboxBacklog(journal::outbox::AsyncOutbox);

impl sink::Backlog for OutboxBacklog {
    async fn next_batch(&mut self, limit: usize) -> Result<Vec<(u64, String)>, sink::BacklogError> {
        self.0.next_batch(limit).await.map_err(backlog_error)
    }
    async fn next_batch_after(
        &mut self,
        after_id: u64,
        _ahead: usize,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, sink::BacklogError> {
        let batch = self.0.next_batch_after(after_id, limit).await;
        batch.map_err(backlog_error)
    }
    async fn written(&mut self, upto_id: u64) -> Result<(), sink::BacklogError> {
        self.0.written(upto_id).await.map_err(backlog_error)
    }
    async fn rejected(&mut self, id: u64, reason: &str) -> Result<(), sink::BacklogError> {
        let reason = reason.to_owned();
        self.0.rejected(id, reason).await.map_err(backlog_error)
    }
    async fn backlog(&mut self) -> Result<u64, sink::BacklogError> {
        self.0.backlog().await.map_err(backlog_error)
    }
}

/// A journal error as the sink acts on it: retry what the journal calls transient, stop on
/// the rest.
fn backlog_error(e: journal::Error) -> sink::BacklogError {
    if e.is_transient() {
        sink::BacklogError::Transient(e.to_string())
    } else {
        sink::BacklogError::Fatal(e.to_string())
    }
}

impl Running {
    /// A token cancelled when the service starts to stop: for tasks beside the pipeline (the
    /// demo's simulator) that must stop with it.
    pub fn stopping(&self) -> CancellationToken {
        self.intake.child_token()
    }

    /// Runs until `signal` resolves or a stage ends by itself, then shuts down. Fails, naming
    /// the stage, when a stage failed, panicked or ended before it was asked to.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> anyhow::Result<()> {
        let mut failed = Vec::new();
        tokio::select! {
            _ = signal => {}
            exit = self.tasks.next_exit() => {
                if let Some(exit) = exit {
                    let outcome = match exit.outcome {
                        Outcome::Finished => "ended before it was asked to stop".to_string(),
                        other => other.to_string(),
                    };
                    tracing::error!(stage = exit.task, outcome = %outcome, "a pipeline stage stopped; shutting down");
                    failed.push(format!("{} {outcome}", exit.task));
                    if exit.task == "journal" {
                        self.flush.cancel();
                    }
                }
            }
        }
        self.shutdown(failed).await
    }

    /// Stops intake, drains the pipeline, flushes, waits for every stage within the budget,
    /// and stops the HTTP server last.
    async fn shutdown(mut self, mut failed: Vec<String>) -> anyhow::Result<()> {
        tracing::info!("shutting down: no new messages; draining the pipeline");
        self.readiness.not_ready("app", "shutting down");
        self.intake.cancel();
        let end = tokio::time::Instant::now() + SHUTDOWN_BUDGET;
        let deadline = end - HTTP_STOP;
        loop {
            match tokio::time::timeout_at(deadline, self.tasks.next_exit()).await {
                Ok(Some(exit)) => {
                    if exit.task == "journal" {
                        self.flush.cancel();
                    }
                    if exit.outcome.is_ok() {
                        tracing::debug!(stage = exit.task, "stage stopped");
                    } else {
                        tracing::error!(stage = exit.task, outcome = %exit.outcome, "stage failed");
                        failed.push(format!("{} {}", exit.task, exit.outcome));
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    let stragglers = self.tasks.running();
                    tracing::warn!(
                        stages = ?stragglers,
                        budget_s = SHUTDOWN_BUDGET.as_secs(),
                        "stages overran the shutdown budget; left behind (unacknowledged messages are redelivered)"
                    );
                    self.tasks.abort_all();
                    break;
                }
            }
        }
        self.http_stop.cancel();
        let _ = tokio::time::timeout_at(end, self.http).await;
        if !failed.is_empty() {
            bail!("stage failed: {}", failed.join("; "));
        }
        tracing::info!("stopped");
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn running(dir: &std::path::Path) -> Running {
        let broker = crate::demo::start_broker_listeners(0).unwrap().v5;
        let stations = dir.join("stations.toml");
        std::fs::write(&stations, crate::demo::stations_toml()).unwrap();
        let mut settings = Settings::default();
        settings.mqtt.url = broker.into();
        settings.mqtt.client_id = "app-test".into();
        settings.stations.file = stations;
        settings.journal.path = dir.join("journal");
        settings.http.listen = "127.0.0.1:0".parse().unwrap();
        start(settings).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_task_stops_the_service_and_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = running(dir.path()).await;
        r.tasks.spawn("probe", async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if true {
                panic!("out of cheese");
            }
            Ok::<(), String>(())
        });
        let result = tokio::time::timeout(
            SHUTDOWN_BUDGET + Duration::from_secs(5),
            r.run_until(std::future::pending()),
        )
        .await
        .expect("shutdown within the budget");
        let error = result.unwrap_err().to_string();
        assert!(error.contains("probe panicked: out of cheese"), "{error}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_clean_stop_drains_every_stage_and_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let r = running(dir.path()).await;
        let result = tokio::time::timeout(
            SHUTDOWN_BUDGET + Duration::from_secs(5),
            r.run_until(tokio::time::sleep(Duration::from_millis(200))),
        )
        .await
        .expect("shutdown within the budget");
        assert!(result.is_ok(), "{result:?}");
    }
}
