//! Figures: what each end-to-end run saw, and the closing summary against the targets.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::{TARGET_E2E, TARGET_RATIO};

pub(crate) struct E2e {
    pub(crate) live: Run,
    pub(crate) on: Run,
    pub(crate) off: Run,
}

impl E2e {
    pub(crate) fn summarise(&self, s: &mut Summary) {
        let e2e = |r: &Run| target(r.reading_rate(), TARGET_E2E, "≥ 50,000");
        s.row(
            "live e2e, readings/s",
            fmt_rate(self.live.reading_rate()),
            &e2e(&self.live),
        );
        s.row(
            "live: last PUBACK → all queryable",
            format!("{:.2} s", self.live.lag().as_secs_f64()),
            "",
        );
        s.row(
            "backlog drain (durable), readings/s",
            fmt_rate(self.on.reading_rate()),
            &e2e(&self.on),
        );
        s.row(
            "backlog drain (durable), messages/s",
            fmt_rate(self.on.message_rate()),
            "",
        );
        s.row(
            "backlog drain (not durable), readings/s",
            fmt_rate(self.off.reading_rate()),
            &e2e(&self.off),
        );
        let ratio = self.on.reading_rate() / self.off.reading_rate().max(1.0);
        s.row(
            "ratio durable / not durable",
            format!("{ratio:.2}"),
            &target(ratio, TARGET_RATIO, "≥ 0.8"),
        );
        s.row(
            "journal bytes per reading (durable drain)",
            format!(
                "{:.0}",
                self.on.journal_bytes as f64 / self.on.readings.max(1) as f64
            ),
            "",
        );
        s.row(
            "peak RSS of quantrac (live / on / off)",
            format!(
                "{} / {} / {} MB",
                self.live.rss_kb / 1024,
                self.on.rss_kb / 1024,
                self.off.rss_kb / 1024
            ),
            "",
        );
    }
}

/// One end-to-end run, and what was seen of it.
#[derive(Default)]
pub(crate) struct Run {
    pub(crate) name: String,
    pub(crate) messages: u64,
    pub(crate) readings: u64,
    /// Publishing (live) or quantrac's start (drain) to the moment InfluxDB held every reading.
    pub(crate) elapsed: Duration,
    /// From the start of the timed span to the last PUBACK (live) or to /readyz (drain).
    pub(crate) publish_or_ready: Duration,
    /// From the start of the timed span until quantrac had accepted every reading.
    pub(crate) intake: Duration,
    pub(crate) publish_rate: f64,
    pub(crate) broker_received: Option<u64>,
    pub(crate) points_written: f64,
    pub(crate) commits: f64,
    pub(crate) acks: f64,
    pub(crate) rejected: f64,
    pub(crate) write_errors: f64,
    pub(crate) rss_kb: u64,
    pub(crate) journal_bytes: u64,
    pub(crate) cpu: CpuSplit,
    pub(crate) scrape_bytes: usize,
    pub(crate) scrape_ms: f64,
    pub(crate) journal_wal_bytes: u64,
}

impl Run {
    pub(crate) fn reading_rate(&self) -> f64 {
        rate(self.readings, self.elapsed)
    }

    pub(crate) fn message_rate(&self) -> f64 {
        rate(self.messages, self.elapsed)
    }

    pub(crate) fn lag(&self) -> Duration {
        self.elapsed.saturating_sub(self.publish_or_ready)
    }

    pub(crate) fn print(&self, live: bool) {
        println!("   {}:", self.name);
        println!(
            "     {} messages, {} readings in {:.2} s: {} readings/s, {} messages/s (target ≥ {} readings/s)",
            self.messages,
            self.readings,
            self.elapsed.as_secs_f64(),
            fmt_rate(self.reading_rate()),
            fmt_rate(self.message_rate()),
            fmt_rate(TARGET_E2E)
        );
        if live {
            println!(
                "     publishers: last PUBACK after {:.2} s ({} messages/s into the broker); last PUBACK → all readings queryable: {:.2} s",
                self.publish_or_ready.as_secs_f64(),
                fmt_rate(self.publish_rate),
                self.lag().as_secs_f64()
            );
        } else {
            println!(
                "     quantrac ready {:.2} s after start; backlog published beforehand at {} messages/s",
                self.publish_or_ready.as_secs_f64(),
                fmt_rate(self.publish_rate)
            );
        }
        println!(
            "     every reading accepted after {:.2} s; in InfluxDB after {:.2} s; broker-side count of received publishes: {}",
            self.intake.as_secs_f64(),
            self.elapsed.as_secs_f64(),
            self.broker_received.map_or("n/a".into(), |n| n.to_string())
        );
        println!(
            "     InfluxDB points written {:.0} ({:.2} per reading), write errors {:.0}, rejected readings {:.0}",
            self.points_written,
            self.points_written / self.readings.max(1) as f64,
            self.write_errors,
            self.rejected
        );
        println!(
            "     journal: {:.0} commits ({:.1} messages each), {:.0} PUBACKs sent, {} bytes on disk of which WAL {} ({:.0} bytes/reading)",
            self.commits,
            self.messages as f64 / self.commits.max(1.0),
            self.acks,
            self.journal_bytes,
            self.journal_wal_bytes,
            self.journal_bytes as f64 / self.readings.max(1) as f64
        );
        println!(
            "     peak RSS of quantrac {} MB; CPU s over the run: {}",
            self.rss_kb / 1024,
            self.cpu
        );
    }
}

/// CPU seconds each process (and quantrac's threads) used during a run.
#[derive(Default)]
pub(crate) struct CpuSplit {
    pub(crate) wall: f64,
    pub(crate) quantrac: f64,
    pub(crate) quantrac_threads: BTreeMap<String, f64>,
    pub(crate) influxd: f64,
    pub(crate) mosquitto: f64,
    pub(crate) publishers: f64,
    /// Every process of the machine, these included.
    pub(crate) machine: f64,
}

impl std::fmt::Display for CpuSplit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let threads: Vec<String> = self
            .quantrac_threads
            .iter()
            .filter(|(_, s)| **s >= 0.01)
            .map(|(n, s)| format!("{n} {s:.2}"))
            .collect();
        write!(
            f,
            "quantrac {:.2} [{}], influxd {:.2}, mosquitto {:.2}, bench process {:.2}, \
             other processes {:.2} — of {:.2} available ({} CPUs × {:.2} s)",
            self.quantrac,
            threads.join(", "),
            self.influxd,
            self.mosquitto,
            self.publishers,
            (self.machine - self.quantrac - self.influxd - self.mosquitto - self.publishers)
                .max(0.0),
            self.wall * cpus() as f64,
            cpus(),
            self.wall
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Figures

#[derive(Default)]
pub(crate) struct Summary {
    pub(crate) rows: Vec<(String, String, String)>,
}

impl Summary {
    pub(crate) fn row(&mut self, name: &str, value: String, target: &str) {
        self.rows.push((name.to_owned(), value, target.to_owned()));
    }

    pub(crate) fn print(&self) {
        let w0 = self
            .rows
            .iter()
            .map(|r| r.0.chars().count())
            .max()
            .unwrap_or(0)
            .max(6);
        let w1 = self
            .rows
            .iter()
            .map(|r| r.1.chars().count())
            .max()
            .unwrap_or(0)
            .max(5);
        let mut out = String::new();
        let _ = writeln!(out, "\nsummary");
        let _ = writeln!(out, "  {:<w0$}  {:>w1$}  target", "figure", "value");
        for (name, value, target) in &self.rows {
            let _ = writeln!(out, "  {name:<w0$}  {value:>w1$}  {target}");
        }
        print!("{out}");
    }
}

pub(crate) fn target(value: f64, goal: f64, text: &str) -> String {
    format!(
        "{text} {}",
        if value >= goal { "(met)" } else { "(NOT met)" }
    )
}

pub(crate) fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// `1234567.8` → `1,234,568`.
pub(crate) fn fmt_rate(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(crate) fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Figures beside their targets, printed as `| figure | target | measured | met |` rows, as
/// `cargo bench --bench scale` prints its own.
#[derive(Default)]
pub(crate) struct Table {
    rows: Vec<[String; 4]>,
}

impl Table {
    /// `met`: `None` for a figure without a target (or one that is only to be stated).
    pub(crate) fn row(&mut self, figure: &str, target: &str, measured: String, met: Option<bool>) {
        let met = match met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        self.rows.push([
            figure.to_owned(),
            target.to_owned(),
            measured,
            met.to_owned(),
        ]);
    }

    pub(crate) fn print(&self, title: &str) {
        let mut out =
            format!("\n{title}\n| figure | target | measured | met |\n|---|---|---|---|\n");
        for [figure, target, measured, met] in &self.rows {
            let _ = writeln!(out, "| {figure} | {target} | {measured} | {met} |");
        }
        print!("{out}");
    }
}
