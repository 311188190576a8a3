//! Part 3, province scale (issue 10's throughput and journal targets), through the same servers
//! as part 2 — mosquitto, InfluxDB 1.x and the real `quantrac run`, journal `durable = true` —
//! with generated wastewater stations (10,000 by default, windows 1 h and 24 h, the defaults):
//!
//! a. **versus `mosquitto_sub`**: one-reading messages (contract JSON), 10 QoS 1 publishers
//!    that wait for their PUBACKs (so none is lost). The same workload is published twice, each
//!    time to a broker of its own: first with a plain `mosquitto_sub -q 1` (persistent session)
//!    subscribed, timed until it printed every message; then with quantrac subscribed, timed
//!    until it had acknowledged every message (`quantrac_mqtt_acks_total`: a PUBACK leaves only
//!    once its message is committed to the journal). Publishing twice rather than subscribing
//!    both at once is the fairer of the two: subscribed together they would share the broker's
//!    fan-out and the two cores, and the slower would set the pace of both; one after the
//!    other, each has the machine as it is (InfluxDB idle in the first pass, as quantrac's
//!    database), and `mosquitto_sub`'s figure is what these publishers and this broker deliver
//!    to a client that does nothing with a message but print it.
//! b. **six-reading messages**: every station sends its six readings in one message, a minute
//!    apart: readings/s committed, and readings/s until the outbox was empty (every point in
//!    InfluxDB, checked by counting them there).
//! c. **the journal**: bytes per reading after each run; how long after the last commit the
//!    sink's outbox backlog (`quantrac_journal_backlog_readings`) is back to 0; and pruning:
//!    records are pruned by day (`retention_days` ≥ 1), so nothing falls due during a run;
//!    after the six-reading run the benchmark opens the stopped journal and seals and prunes
//!    all its records as if two days had passed, timed against the run's intake rate.
//!
//! Messages carry the minutes just before the run, so readings land in open windows, as live
//! data does. Before each measured quantrac run every station sends one six-reading message
//! (the minute before), and the run starts once those are in InfluxDB: a province instance
//! runs for months, so in steady state every station is known to quantrac (its windows, its
//! series on `/metrics`) and to InfluxDB (its series in the index); a fresh database would
//! otherwise charge the creation of 60,000 series to the measured run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use quantrac::journal::{Journal, MIN_RETENTION};
use quantrac_testkit::{Broker, Influx1};

use crate::e2e::{backlog_broker, Ctx, Root};
use crate::procfs::{machine_cpu, peak_rss_kb, process_cpu, thread_cpu_by_name};
use crate::province_work::generate;
use crate::publish::publish;
use crate::report::{cpus, fmt_rate, rate, Table};
use crate::service::{count_readings, create_database, drop_database, Service};
use crate::sizes::Sizes;
use crate::versus::{mosquitto_sub_pass, SubRun};
use crate::watch::follow;
use crate::workload::Workload;
use quantrac_testkit::fixtures::province_stations_toml;

const TARGET_VERSUS: f64 = 0.7;
const TARGET_SIX: f64 = 50_000.0;
/// The outbox is keeping pace when it is empty this soon after the last commit.
const TARGET_DRAIN: Duration = Duration::from_secs(30);
const COMMITS: &str = "quantrac_journal_commits_total";

/// What part 3 measured.
pub(crate) struct Province {
    stations: usize,
    sub: SubRun,
    one: QRun,
    six: QRun,
    prune: Pruned,
}

pub(crate) async fn province(sizes: &Sizes) -> anyhow::Result<Province> {
    let root = Root::temp()?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("HTTP client")?;
    let mut influx = Influx1::start(root.path());
    let n = sizes.province_stations;
    let stations_file = root.path().join("province-stations.toml");
    std::fs::write(&stations_file, province_stations_toml(n))?;
    let ctx = Ctx {
        sizes,
        root: root.path(),
        http: &http,
        influx: &influx,
        stations_file: &stations_file,
    };
    let publishers = sizes.province_publishers;
    println!(
        "\n3. province scale: {n} wastewater stations (6 parameters, windows 1h + 24h), {publishers} QoS 1 publishers, journal durable"
    );

    let now = chrono::Utc::now().timestamp_millis();
    let one = Arc::new(generate(n, sizes.versus_messages, 1, now)?);
    println!(
        "   a. {} one-reading messages ({} bytes on average), published twice",
        one.messages.len(),
        one.bytes() / one.messages.len().max(1)
    );
    let sub = mosquitto_sub_pass(
        &root.path().join("versus_sub"),
        &one,
        publishers,
        sizes.timeout,
    )
    .await
    .context("mosquitto_sub pass")?;
    println!(
        "      mosquitto_sub: {} messages in {:.2} s = {} messages/s (publishers' last PUBACK after {:.2} s; CPU s: mosquitto_sub {:.2}, mosquitto {:.2})",
        sub.messages,
        sub.elapsed.as_secs_f64(),
        fmt_rate(sub.rate()),
        sub.last_puback.as_secs_f64(),
        sub.sub_cpu,
        sub.broker_cpu
    );
    let one_run = ctx
        .run("versus_quantrac", &one)
        .await
        .context("quantrac pass")?;
    one_run.print();

    let six = Arc::new(generate(n, sizes.province_messages, 6, now)?);
    println!(
        "   b. {} six-reading messages, {} readings ({} bytes a message on average)",
        six.messages.len(),
        six.readings,
        six.bytes() / six.messages.len().max(1)
    );
    let six_run = ctx
        .run("province_six", &six)
        .await
        .context("six-reading run")?;
    six_run.print();
    let prune = prune(&six_run.journal, six_run.journal_records)?;
    println!(
        "   c. pruning the six-reading run's journal as if two days had passed: {} records sealed and pruned in {:.2} s ({:.2} s sealing the day into the archive) = {} records/s; journal {} → {} bytes (SQLite keeps freed pages for reuse)",
        prune.records,
        prune.elapsed.as_secs_f64(),
        prune.sealed.as_secs_f64(),
        fmt_rate(prune.rate()),
        prune.bytes_before,
        prune.bytes_after
    );
    influx.proc.kill9();
    Ok(Province {
        stations: n,
        sub,
        one: one_run,
        six: six_run,
        prune,
    })
}

/// One run of quantrac on a workload, and what was seen of it.
struct QRun {
    messages: u64,
    readings: u64,
    /// From the first publish: the last PUBACK to the publishers, the last message committed,
    /// the outbox empty (both within the journal's polling interval).
    last_puback: Duration,
    committed: Duration,
    drained: Duration,
    backlog_at_commit: u64,
    points_written: f64,
    commits: f64,
    journal_bytes: u64,
    /// Messages and readings in the journal: the warm-up's and the run's.
    journal_records: u64,
    journal_readings: u64,
    journal: PathBuf,
    cpu: String,
    /// CPU seconds over the measured span: quantrac, InfluxDB, and the share of the machine
    /// that processes other than these servers and the benchmark used.
    quantrac_cpu: f64,
    influxd_cpu: f64,
    others_share: f64,
    rss_kb: u64,
}

impl QRun {
    fn message_rate(&self) -> f64 {
        rate(self.messages, self.committed)
    }

    fn committed_reading_rate(&self) -> f64 {
        rate(self.readings, self.committed)
    }

    fn written_reading_rate(&self) -> f64 {
        rate(self.readings, self.drained)
    }

    fn bytes_per_reading(&self) -> f64 {
        self.journal_bytes as f64 / self.journal_readings.max(1) as f64
    }

    fn drain(&self) -> Duration {
        self.drained.saturating_sub(self.committed)
    }

    fn print(&self) {
        println!(
            "      quantrac: {} messages ({} readings) committed in {:.2} s = {} messages/s, {} readings/s (publishers' last PUBACK after {:.2} s)",
            self.messages,
            self.readings,
            self.committed.as_secs_f64(),
            fmt_rate(self.message_rate()),
            fmt_rate(self.committed_reading_rate()),
            self.last_puback.as_secs_f64()
        );
        println!(
            "      outbox backlog {} points at the last commit, 0 after {:.2} s; every reading in InfluxDB after {:.2} s = {} readings/s; {:.0} points written ({:.2} per reading)",
            self.backlog_at_commit,
            self.drain().as_secs_f64(),
            self.drained.as_secs_f64(),
            fmt_rate(self.written_reading_rate()),
            self.points_written,
            self.points_written / self.readings.max(1) as f64
        );
        println!(
            "      journal: {:.0} commits ({:.1} messages each), {} bytes with the warm-up = {:.0} bytes/reading; peak RSS {} MB; CPU s: {}",
            self.commits,
            self.messages as f64 / self.commits.max(1.0),
            self.journal_bytes,
            self.bytes_per_reading(),
            self.rss_kb / 1024,
            self.cpu
        );
    }
}

impl Ctx<'_> {
    /// quantrac with a broker and a database of its own, receiving `work` from the publishers.
    async fn run(&self, name: &str, work: &Arc<Workload>) -> anyhow::Result<QRun> {
        let mut broker = Broker::start_with(&self.root.join(name), backlog_broker());
        create_database(self.influx, self.http, name).await?;
        let (config, journal) = self.config(name, broker.port, true)?;
        let mut quantrac = Service::start(&config);
        quantrac.wait_ready(self.http, self.sizes.timeout).await?;
        let first = work.messages.first().map_or(0, |m| m.ts_ms);
        let warm = Arc::new(generate(
            self.sizes.province_stations,
            self.sizes.province_stations,
            6,
            first,
        )?);
        let warm_start = Instant::now();
        publish(
            broker.port,
            &warm,
            self.sizes.province_publishers,
            &format!("{name}-warm"),
            self.sizes.timeout,
        )
        .await?;
        let warmed = follow(
            self.http,
            &mut quantrac,
            &journal,
            warm.messages.len() as u64,
            self.sizes.timeout,
        )
        .await
        .context("warming up")?;
        println!(
            "      (warm-up: one six-reading message from each of the {} stations, in InfluxDB after {:.1} s)",
            warm.messages.len(),
            warmed.drained.duration_since(warm_start).as_secs_f64()
        );
        let machine0 = machine_cpu();
        let bench0 = process_cpu(std::process::id());
        let influx_cpu0 = process_cpu(self.influx.proc.pid());
        let broker_cpu0 = process_cpu(broker.proc.pid());
        let quantrac_cpu0 = process_cpu(quantrac.pid());
        let t0 = Instant::now();
        // Publishing goes on in its own task while the journal is watched.
        let publishing = {
            let (port, work, n) = (broker.port, work.clone(), self.sizes.province_publishers);
            let (name, timeout) = (name.to_owned(), self.sizes.timeout);
            tokio::spawn(async move { publish(port, &work, n, &name, timeout).await })
        };
        let messages = work.messages.len() as u64;
        let before = warm.messages.len() as u64;
        let seen = follow(
            self.http,
            &mut quantrac,
            &journal,
            before + messages,
            self.sizes.timeout,
        )
        .await?;
        let published = publishing.await??;
        let machine = machine_cpu() - machine0;
        let bench = process_cpu(std::process::id()) - bench0;
        let pid = quantrac.pid();
        let threads: Vec<String> = thread_cpu_by_name(pid)
            .into_iter()
            .filter(|(_, s)| *s >= 0.05)
            .map(|(n, s)| format!("{n} {s:.2}"))
            .collect();
        let (q, influxd, mosquitto) = (
            process_cpu(pid) - quantrac_cpu0,
            process_cpu(self.influx.proc.pid()) - influx_cpu0,
            process_cpu(broker.proc.pid()) - broker_cpu0,
        );
        let wall = seen.drained.duration_since(t0).as_secs_f64();
        let others = (machine - q - influxd - mosquitto - bench).max(0.0);
        let cpu = format!(
            "quantrac {q:.2} (its threads since start: {}), influxd {influxd:.2}, mosquitto {mosquitto:.2}, \
             bench process {bench:.2}, other processes {:.2} — of {:.2} available ({} CPUs × {wall:.2} s)",
            threads.join(", "),
            others,
            wall * cpus() as f64,
            cpus()
        );
        let mut count = 0;
        for _ in 0..10 {
            count = count_readings(self.influx, self.http, name).await?;
            if count >= warm.readings + work.readings {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if count < warm.readings + work.readings {
            bail!(
                "the outbox is empty but InfluxDB holds {count} of {} readings",
                warm.readings + work.readings
            );
        }
        let rss_kb = peak_rss_kb(pid).unwrap_or(0);
        quantrac.stop(self.sizes.timeout)?;
        broker.proc.kill9();
        drop_database(self.influx, self.http, name).await;
        Ok(QRun {
            messages,
            readings: work.readings,
            last_puback: published.last_ack.saturating_duration_since(t0),
            committed: seen.committed.saturating_duration_since(t0),
            drained: seen.drained.saturating_duration_since(t0),
            backlog_at_commit: seen.backlog_at_commit,
            points_written: seen.last.get("quantrac_influx_points_written_total")
                - warmed.last.get("quantrac_influx_points_written_total"),
            commits: seen.last.get(COMMITS) - warmed.last.get(COMMITS),
            journal_bytes: journal_bytes(&journal),
            journal_records: before + messages,
            journal_readings: warm.readings + work.readings,
            journal,
            cpu,
            quantrac_cpu: q,
            influxd_cpu: influxd,
            others_share: others / (wall * cpus() as f64).max(1e-9),
            rss_kb,
        })
    }
}

/// The journal's database and its write-ahead log, as quantrac left them (stopped).
fn journal_bytes(dir: &Path) -> u64 {
    let size = |f: &str| std::fs::metadata(dir.join(f)).map_or(0, |m| m.len());
    size("journal.sqlite") + size("journal.sqlite-wal")
}

struct Pruned {
    records: u64,
    /// Sealing the run's day into the archive, then deleting its records.
    sealed: Duration,
    elapsed: Duration,
    bytes_before: u64,
    bytes_after: u64,
}

impl Pruned {
    fn rate(&self) -> f64 {
        rate(self.records, self.elapsed)
    }
}

/// Seals and prunes every record of a stopped journal, as the journal stage does once their
/// day is over and their retention past (two days from now here).
fn prune(dir: &Path, messages: u64) -> anyhow::Result<Pruned> {
    let bytes_before = journal_bytes(dir);
    let t = Instant::now();
    let mut journal = Journal::open(dir, true).context("opening the run's journal")?;
    let later = chrono::Utc::now().timestamp_millis() + 2 * 86_400_000;
    journal.seal(later).context("sealing")?;
    let sealed = t.elapsed();
    let records = journal.prune(later, MIN_RETENTION).context("pruning")?;
    let elapsed = t.elapsed();
    drop(journal);
    if records < messages {
        bail!("pruning removed {records} of the run's {messages} records");
    }
    Ok(Pruned {
        records,
        sealed,
        elapsed,
        bytes_before,
        bytes_after: journal_bytes(dir),
    })
}

impl Province {
    pub(crate) fn table(&self) -> Table {
        let mut t = Table::default();
        let n = self.stations;
        let ratio = self.one.message_rate() / self.sub.rate().max(1e-9);
        t.row(
            "one-reading messages: mosquitto_sub -q 1 receives, messages/s",
            "",
            fmt_rate(self.sub.rate()),
            None,
        );
        t.row(
            "one-reading messages: quantrac receives and commits, messages/s",
            "",
            fmt_rate(self.one.message_rate()),
            None,
        );
        t.row(
            "quantrac ÷ mosquitto_sub (same publishers, same run)",
            "≥ 0.7 ×",
            format!("{ratio:.2} ×"),
            Some(ratio >= TARGET_VERSUS),
        );
        let six_c = self.six.committed_reading_rate();
        let six_w = self.six.written_reading_rate();
        t.row(
            &format!("six-reading messages at {n} stations, readings/s committed"),
            "≥ 50,000",
            fmt_rate(six_c),
            Some(six_c >= TARGET_SIX),
        );
        t.row(
            &format!("six-reading messages at {n} stations, readings/s in InfluxDB"),
            "≥ 50,000",
            fmt_rate(six_w),
            Some(six_w >= TARGET_SIX),
        );
        for (what, r) in [("one-reading", &self.one), ("six-reading", &self.six)] {
            t.row(
                &format!("journal bytes per reading ({what} messages)"),
                "stated",
                format!("{:.0}", r.bytes_per_reading()),
                Some(r.journal_bytes > 0),
            );
        }
        for (what, r) in [("one-reading", &self.one), ("six-reading", &self.six)] {
            t.row(
                &format!("outbox backlog back to 0 after the last commit ({what})"),
                "≤ 30 s",
                format!(
                    "{:.1} s ({} points pending at the last commit)",
                    r.drain().as_secs_f64(),
                    r.backlog_at_commit
                ),
                Some(r.drain() <= TARGET_DRAIN),
            );
        }
        t.row(
            "CPU per one-reading message: quantrac (InfluxDB) / mosquitto_sub",
            "",
            format!(
                "{:.1} µs ({:.1} µs) / {:.1} µs",
                self.one.quantrac_cpu * 1e6 / self.one.messages.max(1) as f64,
                self.one.influxd_cpu * 1e6 / self.one.messages.max(1) as f64,
                self.sub.sub_cpu * 1e6 / self.sub.messages.max(1) as f64
            ),
            None,
        );
        t.row(
            "CPU per reading, six-reading messages: quantrac (InfluxDB)",
            "",
            format!(
                "{:.1} µs ({:.1} µs)",
                self.six.quantrac_cpu * 1e6 / self.six.readings.max(1) as f64,
                self.six.influxd_cpu * 1e6 / self.six.readings.max(1) as f64
            ),
            None,
        );
        t.row(
            "machine's CPU used by other processes during the runs (one / six)",
            "",
            format!(
                "{:.0} % / {:.0} %",
                self.one.others_share * 100.0,
                self.six.others_share * 100.0
            ),
            None,
        );
        // The province's steady intake: every station one message a minute.
        let steady = n as f64 / 60.0;
        t.row(
            "journal pruning (seal + delete, flat out), records/s",
            &format!("≥ {} (every station one message a minute)", fmt_rate(steady)),
            format!(
                "{} ({:.2} s sealing of {:.2} s); the journal stage prunes one chunk of 10,000 records a minute while not full",
                fmt_rate(self.prune.rate()),
                self.prune.sealed.as_secs_f64(),
                self.prune.elapsed.as_secs_f64()
            ),
            Some(self.prune.rate() >= steady),
        );
        // A local day is sealed in one call on the journal's thread, which commits nothing
        // meanwhile.
        let day = n as f64 * 1440.0;
        let seal_rate = self.prune.records as f64 / self.prune.sealed.as_secs_f64().max(1e-9);
        t.row(
            &format!(
                "sealing one day of {n} stations ({:.1} M messages) on the journal's thread",
                day / 1e6
            ),
            "≤ 60 s without commits",
            format!(
                "≈ {:.0} min at {} records/s, nothing committed meanwhile",
                day / seal_rate / 60.0,
                fmt_rate(seal_rate)
            ),
            Some(day / seal_rate <= 60.0),
        );
        t
    }
}
