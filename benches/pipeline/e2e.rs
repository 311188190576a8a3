//! Part 2, end to end: publishers → mosquitto → the real `quantrac run` → InfluxDB 1.x, on
//! loopback in a temporary folder. One live run, then two backlog drains (journal durable and
//! not), each with its own broker, database, journal and client id.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use quantrac_testkit::{Broker, BrokerOpts, Influx1};

use crate::procfs::{machine_cpu, peak_rss_kb, process_cpu, thread_cpu_by_name};
use crate::publish::publish;
use crate::report::{rate, CpuSplit, E2e, Run};
use crate::service::{create_database, drop_database, Service, POLL_FAST, POLL_SLOW};
use crate::sizes::Sizes;
use crate::workload::{stations_text, Workload};
use crate::{PARK_STATIONS, TARGET_RATIO, TOPIC_TEMPLATE, TZ};

/// A broker for backlogs: ten million queued messages, no autosave while measuring, and `$SYS`
/// every second for its count of received publishes.
pub(crate) fn backlog_broker() -> BrokerOpts {
    BrokerOpts {
        max_queued_messages: 10_000_000,
        autosave_interval: None,
        sys_interval: Some(1),
    }
}

pub(crate) async fn end_to_end(sizes: &Sizes) -> anyhow::Result<E2e> {
    let root = Root::temp()?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("HTTP client")?;
    let mut influx = Influx1::start(root.path());
    let replicas = sizes.replicas();
    let stations_file = root.path().join("stations.toml");
    std::fs::write(&stations_file, stations_text(replicas, sizes.spacing_s)?)?;
    let ctx = Ctx {
        sizes,
        root: root.path(),
        http: &http,
        influx: &influx,
        stations_file: &stations_file,
    };

    println!(
        "\n2. end to end: publishers → mosquitto → quantrac → InfluxDB 1.x, {} stations",
        replicas * PARK_STATIONS
    );
    let live = ctx.live().await.context("live run")?;
    live.print(true);
    let on = ctx
        .drain(true)
        .await
        .context("backlog drain, durable journal")?;
    on.print(false);
    let off = ctx
        .drain(false)
        .await
        .context("backlog drain, journal not durable")?;
    off.print(false);
    println!(
        "   ratio durable / not durable: {:.2} (target ≥ {TARGET_RATIO})",
        on.reading_rate() / off.reading_rate().max(1.0)
    );
    println!(
        "   quantrac's /metrics answer is {} bytes, {:.1} ms a request under load (asked every {} ms while waiting, {} ms near the end)",
        on.scrape_bytes,
        on.scrape_ms,
        POLL_SLOW.as_millis(),
        POLL_FAST.as_millis()
    );
    influx.proc.kill9();
    Ok(E2e { live, on, off })
}

/// The run's temporary folder: removed at the end unless `QUANTRAC_BENCH_KEEP=1`.
pub(crate) struct Root {
    dir: Option<tempfile::TempDir>,
    keep: bool,
}

impl Root {
    pub(crate) fn temp() -> anyhow::Result<Root> {
        let dir = tempfile::Builder::new()
            .prefix("quantrac-bench-")
            .tempdir()
            .context("temporary folder")?;
        // Kept for a post-mortem when asked (logs of every server and quantrac's journal).
        let keep = std::env::var_os("QUANTRAC_BENCH_KEEP").is_some_and(|v| v != "0");
        Ok(Root {
            dir: Some(dir),
            keep,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir
            .as_ref()
            .map_or(Path::new("/nonexistent"), |d| d.path())
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        if let (true, Some(dir)) = (self.keep, self.dir.take()) {
            println!("   (kept {})", dir.keep().display());
        }
    }
}

/// What every run shares.
pub(crate) struct Ctx<'a> {
    pub(crate) sizes: &'a Sizes,
    pub(crate) root: &'a Path,
    pub(crate) http: &'a reqwest::Client,
    pub(crate) influx: &'a Influx1,
    pub(crate) stations_file: &'a Path,
}

impl Ctx<'_> {
    fn workload(&self, count: usize) -> anyhow::Result<Workload> {
        let replicas = self.sizes.replicas();
        let now = chrono::Utc::now().timestamp_millis();
        let start = Workload::start_for(replicas, count, now - 60_000, self.sizes.spacing_ms());
        Workload::generate(replicas, count, start, self.sizes.spacing_ms())
    }

    /// quantrac's configuration for one run: its own broker, database, journal and client id.
    pub(crate) fn config(
        &self,
        name: &str,
        mqtt_port: u16,
        durable: bool,
    ) -> anyhow::Result<(PathBuf, PathBuf)> {
        let dir = self.root.join(name);
        std::fs::create_dir_all(&dir)?;
        let journal = dir.join("journal");
        let mut doc = toml::Table::new();
        let mut section = |name: &str, entries: Vec<(&str, toml::Value)>| {
            let table: toml::Table = entries
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            doc.insert(name.to_owned(), toml::Value::Table(table));
        };
        let s = |v: &str| toml::Value::String(v.to_owned());
        section(
            "mqtt",
            vec![
                ("url", s(&format!("mqtt://127.0.0.1:{mqtt_port}"))),
                ("client_id", s(&format!("quantrac-bench-{name}"))),
                ("protocol", s("v5")),
                ("topics", toml::Value::Array(vec![s(TOPIC_TEMPLATE)])),
            ],
        );
        section(
            "influx",
            vec![
                ("url", s(&self.influx.url())),
                ("api", s("v1")),
                ("database", s(name)),
            ],
        );
        section("http", vec![("listen", s("127.0.0.1:0"))]);
        section(
            "stations",
            vec![
                ("file", s(&self.stations_file.display().to_string())),
                ("timezone", s(TZ.name())),
            ],
        );
        section(
            "journal",
            vec![
                ("path", s(&journal.display().to_string())),
                ("durable", toml::Value::Boolean(durable)),
            ],
        );
        let path = dir.join("quantrac.toml");
        std::fs::write(&path, toml::to_string(&doc)?)?;
        Ok((path, journal))
    }

    /// Publishers send at full speed while quantrac runs.
    async fn live(&self) -> anyhow::Result<Run> {
        let name = "live";
        let work = Arc::new(self.workload(self.sizes.live_messages)?);
        let mut broker = Broker::start_with(&self.root.join(name), backlog_broker());
        create_database(self.influx, self.http, name).await?;
        let (config, journal) = self.config(name, broker.port, true)?;
        let mut quantrac = Service::start(&config);
        quantrac.wait_ready(self.http, self.sizes.timeout).await?;

        let before = Snapshot::take(&[broker.proc.pid(), self.influx.proc.pid()]);
        let t0 = Instant::now();
        let published = publish(
            broker.port,
            &work,
            self.sizes.publishers,
            name,
            self.sizes.timeout,
        )
        .await?;
        let last_puback = published.last_ack.saturating_duration_since(t0);
        let done = quantrac
            .wait_in_influx(self, name, work.readings, t0)
            .await?;
        let mut run = self
            .finish(name, &work, &quantrac, &broker, &journal, before, done)
            .await?;
        run.publish_or_ready = last_puback;
        run.publish_rate = rate(published.acked, last_puback);
        run.broker_received = broker.received(work.messages.len() as u64).await;
        quantrac.stop(self.sizes.timeout)?;
        broker.proc.kill9();
        drop_database(self.influx, self.http, name).await;
        Ok(run)
    }

    /// quantrac's session queues a backlog while it is stopped; then it starts and drains it.
    async fn drain(&self, durable: bool) -> anyhow::Result<Run> {
        let name = if durable {
            "drain_durable"
        } else {
            "drain_not_durable"
        };
        let work = Arc::new(self.workload(self.sizes.backlog_messages)?);
        let mut broker = Broker::start_with(&self.root.join(name), backlog_broker());
        create_database(self.influx, self.http, name).await?;
        let (config, journal) = self.config(name, broker.port, durable)?;

        // Once, so the broker knows the persistent session and its subscription.
        let mut first = Service::start(&config);
        first.wait_ready(self.http, self.sizes.timeout).await?;
        first.stop(self.sizes.timeout)?;

        let published = publish(
            broker.port,
            &work,
            self.sizes.publishers,
            name,
            self.sizes.timeout,
        )
        .await?;
        if published.acked != work.messages.len() as u64 {
            bail!(
                "the broker acknowledged {} of {} messages",
                published.acked,
                work.messages.len()
            );
        }
        let broker_received = broker.received(work.messages.len() as u64).await;

        let before = Snapshot::take(&[broker.proc.pid(), self.influx.proc.pid()]);
        let t0 = Instant::now();
        let mut quantrac = Service::start(&config);
        quantrac.wait_ready(self.http, self.sizes.timeout).await?;
        let ready = t0.elapsed();
        let done = quantrac
            .wait_in_influx(self, name, work.readings, t0)
            .await?;
        let mut run = self
            .finish(name, &work, &quantrac, &broker, &journal, before, done)
            .await?;
        run.publish_or_ready = ready;
        run.publish_rate = rate(published.acked, published.elapsed);
        run.broker_received = broker_received;
        quantrac.stop(self.sizes.timeout)?;
        broker.proc.kill9();
        drop_database(self.influx, self.http, name).await;
        Ok(run)
    }

    /// Reads what the run left: quantrac's metrics, RSS, journal size, CPU used.
    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        name: &str,
        work: &Workload,
        quantrac: &Service,
        broker: &Broker,
        journal: &Path,
        before: Snapshot,
        done: Done,
    ) -> anyhow::Result<Run> {
        let (metrics, scrape_bytes) = quantrac.scrape(self.http).await?;
        let m = |k: &str| metrics.get(k).copied().unwrap_or(0.0);
        let after = Snapshot::take(&[broker.proc.pid(), self.influx.proc.pid()]);
        let pid = quantrac.pid();
        let size = |f: &str| std::fs::metadata(journal.join(f)).map_or(0, |m| m.len());
        let journal_wal_bytes = size("journal.sqlite-wal");
        let journal_bytes = size("journal.sqlite") + journal_wal_bytes;
        Ok(Run {
            name: name.replace('_', " "),
            messages: work.messages.len() as u64,
            readings: work.readings,
            elapsed: done.elapsed,
            publish_or_ready: Duration::ZERO,
            intake: done.intake,
            publish_rate: 0.0,
            broker_received: None,
            points_written: m("quantrac_influx_points_written_total"),
            commits: m("quantrac_journal_commits_total"),
            acks: m("quantrac_mqtt_acks_total"),
            rejected: m("quantrac_readings_rejected_total"),
            write_errors: m("quantrac_influx_write_errors_total"),
            rss_kb: peak_rss_kb(pid).unwrap_or(0),
            journal_bytes,
            cpu: CpuSplit {
                wall: after.at.duration_since(before.at).as_secs_f64(),
                quantrac: process_cpu(pid),
                quantrac_threads: thread_cpu_by_name(pid),
                mosquitto: after.cpu[0] - before.cpu[0],
                influxd: after.cpu[1] - before.cpu[1],
                publishers: after.own - before.own,
                machine: after.machine - before.machine,
            },
            scrape_bytes,
            scrape_ms: done.scrape_time.as_secs_f64() * 1e3 / f64::from(done.scrapes.max(1)),
            journal_wal_bytes,
        })
    }
}

/// CPU seconds used so far by some processes and by this one.
struct Snapshot {
    at: Instant,
    cpu: Vec<f64>,
    own: f64,
    machine: f64,
}

impl Snapshot {
    fn take(pids: &[u32]) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            cpu: pids.iter().map(|&p| process_cpu(p)).collect(),
            own: process_cpu(std::process::id()),
            machine: machine_cpu(),
        }
    }
}

/// When the last reading was accepted and when InfluxDB held them all, from the start.
pub(crate) struct Done {
    pub(crate) intake: Duration,
    pub(crate) elapsed: Duration,
    /// `/metrics` requests made while waiting, and the time they took.
    pub(crate) scrapes: u32,
    pub(crate) scrape_time: Duration,
}
