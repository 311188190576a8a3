//! The pipeline's benchmark. `cargo bench --bench pipeline` prints figures; nothing here
//! asserts a speed.
//!
//! 1. **Per core** (one thread, no I/O): [`Decoder::decode`] alone, then decode followed by
//!    [`Engine::judge`], over realistic messages of the simulated park replicated to about 200
//!    stations — one message per station per interval, 6–8 readings each, contract JSON
//!    (~400 bytes) and Circular 10/2021 TAB text — with timestamps 5 minutes apart, so every
//!    reading lands in its 5 min, 1 h and 24 h windows and windows close as time moves on.
//! 2. **End to end**: publishers (rumqttc, QoS 1) → mosquitto → the real `quantrac run` → InfluxDB
//!    1.x, everything started here on loopback in a temporary folder and killed at the end:
//!    - *live*: quantrac running while the publishers send at full speed;
//!    - *backlog drain*: quantrac's persistent session holds a queue built while it was
//!      stopped, then quantrac starts and drains it (journal `durable = true`);
//!    - the same drain with `durable = false`, and the ratio of the two;
//!    - the journal's bytes per reading after the drain.
//!
//! End-to-end messages carry timestamps 5 minutes apart that end at the time of the run, so
//! most readings arrive after their window closed: as after an outage, each such reading
//! rewrites its window points (`average`), and InfluxDB receives several points per reading.
//! The figures print that ratio.
//!
//! Sizes come from environment variables ([`Sizes::from_env`]). Without the `--bench` argument
//! (that is, under `cargo test --all-targets`) only a small per-core pass runs, with no server.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use chrono_tz::Tz;
use quantrac::compliance::{Catalogue, Engine};
use quantrac::config::{ComplianceSettings, Stations};
use quantrac::decode::Decoder;
use quantrac::demo::{stations_toml_replicated, Simulator};
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{oneshot, Semaphore};

const TZ: Tz = chrono_tz::Asia::Ho_Chi_Minh;
const TOPIC_TEMPLATE: &str = "env/{park}/{site}/{station}";
const MAX_PAYLOAD: usize = 65_536;
/// Stations in one copy of the demo park.
const PARK_STATIONS: u32 = 6;
/// One station of each copy falls silent after three messages; the rest report every interval.
const PARK_REPORTING: u32 = 5;
const SEED: u64 = 2021;
/// 2026-11-29 07:00:00 +07:00, the start of the per-core workload (a fixed time, so two runs
/// judge the same bytes).
const CORE_START_MS: i64 = 1_795_910_400_000;
/// Messages a publisher may have waiting for their PUBACK.
const PUBLISHER_INFLIGHT: u16 = 1000;
/// Clock ticks per second in `/proc/*/stat` (100 on every Linux this runs on).
const CLK_TCK: f64 = 100.0;
/// How often the end-to-end runs look at quantrac's metrics while waiting: seldom while much
/// is left (a scrape of ~200 stations' gauges costs quantrac tens of milliseconds of CPU), often
/// near the end, so the finish is timed to within [`POLL_FAST`].
const POLL_SLOW: Duration = Duration::from_secs(1);
const POLL_FAST: Duration = Duration::from_millis(200);
/// Points left in quantrac's backlog below which the wait polls fast.
const FAST_BELOW: f64 = 30_000.0;
/// InfluxDB is asked for its count at least this often, whatever the metrics say.
const ASK_INFLUX: Duration = Duration::from_secs(3);

const TARGET_CORE: f64 = 1_000_000.0;
const TARGET_E2E: f64 = 50_000.0;
const TARGET_RATIO: f64 = 0.8;

fn main() -> anyhow::Result<()> {
    let bench = std::env::args().any(|a| a == "--bench");
    if !bench {
        return smoke();
    }
    let sizes = Sizes::from_env()?;
    println!("quantrac pipeline benchmark ({} CPUs)", cpus());
    println!("{sizes}");
    let mut summary = Summary::default();

    let core = per_core(&sizes)?;
    core.print();
    core.summarise(&mut summary);

    if sizes.e2e {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        match runtime.block_on(end_to_end(&sizes)) {
            Ok(e2e) => e2e.summarise(&mut summary),
            Err(e) => {
                println!("\nend-to-end benchmark failed: {e:#}");
                summary.row("end to end", "failed".into(), "");
            }
        }
    } else {
        println!("\nend-to-end part skipped (QUANTRAC_BENCH_E2E=0)");
    }
    summary.print();
    Ok(())
}

/// Under `cargo test`: the per-core path once over a few messages, to show it still runs.
fn smoke() -> anyhow::Result<()> {
    let sizes = Sizes {
        stations: 12,
        core_messages: 300,
        passes: 1,
        ..Sizes::default()
    };
    let core = per_core(&sizes)?;
    if core.verdict.readings == 0 || core.verdict.readings != core.decode_all.readings {
        bail!(
            "decode + verdict saw {} readings, decode {}",
            core.verdict.readings,
            core.decode_all.readings
        );
    }
    println!(
        "pipeline bench smoke run: {} messages, {} readings decoded and judged (run `cargo bench --bench pipeline` for figures)",
        core.messages, core.verdict.readings
    );
    Ok(())
}

/// What to measure, from `QUANTRAC_BENCH_*` environment variables.
#[derive(Clone, Debug)]
struct Sizes {
    /// `QUANTRAC_BENCH_STATIONS`: stations (rounded up to whole copies of the 6-station park).
    stations: u32,
    /// `QUANTRAC_BENCH_CORE_MESSAGES`: messages of the per-core workload.
    core_messages: usize,
    /// `QUANTRAC_BENCH_PASSES`: per-core passes; the fastest counts.
    passes: usize,
    /// `QUANTRAC_BENCH_LIVE_MESSAGES`: messages published while quantrac runs.
    live_messages: usize,
    /// `QUANTRAC_BENCH_MESSAGES`: messages of the backlog drains.
    backlog_messages: usize,
    /// `QUANTRAC_BENCH_PUBLISHERS`: concurrent MQTT publishers.
    publishers: usize,
    /// `QUANTRAC_BENCH_SPACING_S`: time between two messages of one station.
    spacing_s: u64,
    /// `QUANTRAC_BENCH_TIMEOUT_S`: longest wait for any one phase.
    timeout: Duration,
    /// `QUANTRAC_BENCH_E2E`: `0` skips the end-to-end part.
    e2e: bool,
}

impl Default for Sizes {
    fn default() -> Self {
        Sizes {
            stations: 200,
            core_messages: 60_000,
            passes: 3,
            live_messages: 50_000,
            backlog_messages: 100_000,
            publishers: 4,
            spacing_s: 300,
            timeout: Duration::from_secs(120),
            e2e: true,
        }
    }
}

impl Sizes {
    fn from_env() -> anyhow::Result<Sizes> {
        let d = Sizes::default();
        Ok(Sizes {
            stations: env_or("QUANTRAC_BENCH_STATIONS", d.stations)?.max(1),
            core_messages: env_or("QUANTRAC_BENCH_CORE_MESSAGES", d.core_messages)?.max(1),
            passes: env_or("QUANTRAC_BENCH_PASSES", d.passes)?.max(1),
            live_messages: env_or("QUANTRAC_BENCH_LIVE_MESSAGES", d.live_messages)?.max(1),
            backlog_messages: env_or("QUANTRAC_BENCH_MESSAGES", d.backlog_messages)?.max(1),
            publishers: env_or("QUANTRAC_BENCH_PUBLISHERS", d.publishers)?.max(1),
            spacing_s: env_or("QUANTRAC_BENCH_SPACING_S", d.spacing_s)?.max(1),
            timeout: Duration::from_secs(env_or("QUANTRAC_BENCH_TIMEOUT_S", d.timeout.as_secs())?),
            e2e: env_or("QUANTRAC_BENCH_E2E", 1u8)? != 0,
        })
    }

    fn replicas(&self) -> u32 {
        self.stations.div_ceil(PARK_STATIONS)
    }

    fn spacing_ms(&self) -> i64 {
        i64::try_from(self.spacing_s).unwrap_or(300) * 1000
    }
}

impl std::fmt::Display for Sizes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stations {} ({} copies of the demo park), message spacing {} s, per-core messages {} × {} passes, \
             live messages {}, backlog messages {}, publishers {}",
            self.replicas() * PARK_STATIONS,
            self.replicas(),
            self.spacing_s,
            self.core_messages,
            self.passes,
            self.live_messages,
            self.backlog_messages,
            self.publishers
        )
    }
}

fn env_or<T: FromStr>(name: &str, default: T) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .replace('_', "")
            .parse()
            .map_err(|e| anyhow!("{name}={v:?}: {e}")),
        Err(_) => Ok(default),
    }
}

// ---------------------------------------------------------------------------------------------
// Workload

/// One MQTT message as a station publishes it.
struct Message {
    topic: String,
    payload: Bytes,
    ts_ms: i64,
}

/// Messages of the simulated park in publishing order, with what they hold.
struct Workload {
    messages: Vec<Message>,
    readings: u64,
}

impl Workload {
    /// `count` messages of `replicas` copies of the demo park, one per reporting station every
    /// `spacing_ms` from `start_ms`. Every message is decoded once here, to count its readings
    /// and to be sure none is rejected (a rejected reading would never reach InfluxDB).
    fn generate(
        replicas: u32,
        count: usize,
        start_ms: i64,
        spacing_ms: i64,
    ) -> anyhow::Result<Workload> {
        let interval = Duration::from_millis(u64::try_from(spacing_ms).unwrap_or(300_000));
        let mut sim = Simulator::with_replicas(SEED, interval, replicas);
        let mut decoder = decoder()?;
        let mut messages = Vec::with_capacity(count);
        let mut readings = 0u64;
        let mut t = start_ms;
        while messages.len() < count {
            for (topic, payload) in sim.messages_at(t) {
                if messages.len() == count {
                    break;
                }
                let decoded = decoder.decode(&topic, &payload, t + 1000);
                if let Some(r) = decoded.rejections.first() {
                    bail!("the simulator's message on {topic} was rejected: {r:?}");
                }
                readings += decoded.readings.len() as u64;
                messages.push(Message {
                    topic,
                    payload: Bytes::from(payload),
                    ts_ms: t,
                });
            }
            t += spacing_ms;
        }
        Ok(Workload { messages, readings })
    }

    /// Where the messages should start so that `count` of them end near `end_ms`.
    fn start_for(replicas: u32, count: usize, end_ms: i64, spacing_ms: i64) -> i64 {
        let per_interval = u64::from(replicas * PARK_REPORTING).max(1);
        let intervals = (count as u64).div_ceil(per_interval);
        let start = end_ms - i64::try_from(intervals).unwrap_or(0) * spacing_ms;
        start - start.rem_euclid(60_000)
    }

    fn bytes(&self) -> usize {
        self.messages.iter().map(|m| m.payload.len()).sum()
    }

    fn json(&self) -> Vec<&Message> {
        self.messages
            .iter()
            .filter(|m| m.payload.first() == Some(&b'{'))
            .collect()
    }

    fn tab(&self) -> Vec<&Message> {
        self.messages
            .iter()
            .filter(|m| m.payload.first() != Some(&b'{'))
            .collect()
    }

    /// Splits the messages over `n` publishers, each station always on the same one, so a
    /// station's messages reach the broker in order, as from its one datalogger.
    fn split(&self, n: usize) -> Vec<Vec<usize>> {
        let mut publisher_of: HashMap<&str, usize> = HashMap::new();
        let mut groups = vec![Vec::new(); n];
        for (i, m) in self.messages.iter().enumerate() {
            let next = publisher_of.len() % n;
            let p = *publisher_of.entry(m.topic.as_str()).or_insert(next);
            groups[p].push(i);
        }
        groups
    }
}

fn decoder() -> anyhow::Result<Decoder> {
    Decoder::new(&[TOPIC_TEMPLATE.to_owned()], TZ, MAX_PAYLOAD).context("topic template")
}

/// The demo park's permits for `replicas` copies, each station expected every `spacing_s`.
fn stations_text(replicas: u32, spacing_s: u64) -> anyhow::Result<String> {
    const DEMO_INTERVAL: &str = "expected_interval_s = 5\n";
    let text = stations_toml_replicated(replicas);
    if !text.contains(DEMO_INTERVAL) {
        bail!("the demo park's stations no longer say {DEMO_INTERVAL:?}");
    }
    Ok(text.replace(
        DEMO_INTERVAL,
        &format!("expected_interval_s = {spacing_s}\n"),
    ))
}

fn stations(replicas: u32, spacing_s: u64) -> anyhow::Result<Stations> {
    let defaults = ComplianceSettings::default().station_defaults();
    Ok(Stations::parse(
        &stations_text(replicas, spacing_s)?,
        "stations.toml",
        &defaults,
    )?)
}

// ---------------------------------------------------------------------------------------------
// Part 1: per core

/// One timed single-thread pass.
#[derive(Clone, Copy, Debug, Default)]
struct Pass {
    readings: u64,
    messages: u64,
    wall: Duration,
    cpu: Duration,
    /// Window points emitted (verdict passes only).
    averages: u64,
    /// The engine's timer within the pass: calls and time spent.
    ticks: u64,
    tick_time: Duration,
    /// One timer call after the pass, with every window of the pass held.
    last_tick: Duration,
}

impl Pass {
    fn wall_rate(&self) -> f64 {
        rate(self.readings, self.wall)
    }

    /// Readings per second of this thread's own CPU time: the per-core figure, unaffected by
    /// other work on the machine.
    fn cpu_rate(&self) -> f64 {
        rate(
            self.readings,
            if self.cpu.is_zero() {
                self.wall
            } else {
                self.cpu
            },
        )
    }
}

struct Core {
    messages: usize,
    bytes: usize,
    stations: u32,
    decode_all: Pass,
    decode_json: Pass,
    decode_tab: Pass,
    verdict: Pass,
}

fn per_core(sizes: &Sizes) -> anyhow::Result<Core> {
    let replicas = sizes.replicas();
    let work = Workload::generate(
        replicas,
        sizes.core_messages,
        CORE_START_MS,
        sizes.spacing_ms(),
    )?;
    let stations = stations(replicas, sizes.spacing_s)?;
    let best = |passes: Vec<Pass>| {
        passes
            .into_iter()
            .min_by_key(|p| p.cpu.max(Duration::from_nanos(1)))
            .unwrap_or_default()
    };

    let all: Vec<&Message> = work.messages.iter().collect();
    let json = work.json();
    let tab = work.tab();
    let run = |msgs: &[&Message]| -> anyhow::Result<Pass> {
        let mut passes = Vec::new();
        for _ in 0..sizes.passes {
            passes.push(decode_pass(msgs)?);
        }
        Ok(best(passes))
    };
    let decode_all = run(&all)?;
    let decode_json = run(&json)?;
    let decode_tab = run(&tab)?;
    let mut passes = Vec::new();
    for _ in 0..sizes.passes {
        passes.push(verdict_pass(&work.messages, &stations)?);
    }
    Ok(Core {
        messages: work.messages.len(),
        bytes: work.bytes(),
        stations: replicas * PARK_STATIONS,
        decode_all,
        decode_json,
        decode_tab,
        verdict: best(passes),
    })
}

fn decode_pass(msgs: &[&Message]) -> anyhow::Result<Pass> {
    let mut decoder = decoder()?;
    let mut readings = 0u64;
    let cpu0 = thread_cpu();
    let t0 = Instant::now();
    for m in msgs {
        let decoded = decoder.decode(&m.topic, &m.payload, m.ts_ms + 1000);
        readings += decoded.readings.len() as u64;
        black_box(decoded);
    }
    Ok(Pass {
        readings,
        messages: msgs.len() as u64,
        wall: t0.elapsed(),
        cpu: thread_cpu().saturating_sub(cpu0),
        ..Pass::default()
    })
}

/// Decode then judge every message, received one second after its time (live traffic). The
/// engine's timer (`tick`: closes windows, forgets those beyond the late-data horizon) runs
/// once per second of wall time, as the compliance stage runs it, and is timed on its own:
/// its cost grows with the windows held, not with the message rate.
fn verdict_pass(msgs: &[Message], stations: &Stations) -> anyhow::Result<Pass> {
    let mut decoder = decoder()?;
    let mut engine = Engine::new(stations.clone(), &Catalogue::builtin(), TZ);
    let mut readings = 0u64;
    let mut averages = 0u64;
    let mut ticks = 0u64;
    let mut tick_time = Duration::ZERO;
    let cpu0 = thread_cpu();
    let t0 = Instant::now();
    let mut next_tick = t0 + Duration::from_secs(1);
    for m in msgs {
        let received = m.ts_ms + 1000;
        let decoded = decoder.decode(&m.topic, &m.payload, received);
        readings += decoded.readings.len() as u64;
        let (judged, points) = engine.judge(decoded.readings, received);
        averages += points.len() as u64;
        black_box(judged);
        if Instant::now() >= next_tick {
            let t = Instant::now();
            averages += engine.tick(received).len() as u64;
            tick_time += t.elapsed();
            ticks += 1;
            next_tick += Duration::from_secs(1);
        }
    }
    let wall = t0.elapsed();
    let cpu = thread_cpu().saturating_sub(cpu0);
    // One more tick with every window of the pass held: what the timer costs at this size.
    let t = Instant::now();
    averages += engine.tick(msgs.last().map_or(0, |m| m.ts_ms + 1000)).len() as u64;
    let last_tick = t.elapsed();
    Ok(Pass {
        readings,
        messages: msgs.len() as u64,
        wall,
        cpu,
        averages,
        ticks,
        tick_time,
        last_tick,
    })
}

impl Core {
    fn print(&self) {
        println!(
            "\n1. per core (one thread): {} messages from {} stations, {} readings, {:.0} bytes/message on average",
            self.messages,
            self.stations,
            self.verdict.readings,
            self.bytes as f64 / self.messages.max(1) as f64
        );
        let line = |name: &str, p: &Pass| {
            println!(
                "   {name:<28} {:>12} readings/s per core ({:>10} wall)  {:>6.2} µs/message",
                fmt_rate(p.cpu_rate()),
                fmt_rate(p.wall_rate()),
                if p.cpu.is_zero() { p.wall } else { p.cpu }.as_secs_f64() * 1e6
                    / p.messages.max(1) as f64,
            );
        };
        line("decode, all messages", &self.decode_all);
        line("decode, JSON only", &self.decode_json);
        line("decode, Circular 10 TAB only", &self.decode_tab);
        line("decode + verdict", &self.verdict);
        let v = &self.verdict;
        println!(
            "   verdict pass: {} window points emitted; timer (tick, once a second) {} calls, {:.1} ms in all; \
             one tick holding the whole pass's windows: {:.1} ms",
            v.averages,
            v.ticks,
            v.tick_time.as_secs_f64() * 1e3,
            v.last_tick.as_secs_f64() * 1e3
        );
        println!(
            "   target: decode + verdict ≥ {} readings/s per core",
            fmt_rate(TARGET_CORE)
        );
    }

    fn summarise(&self, s: &mut Summary) {
        s.row(
            "decode, readings/s per core",
            fmt_rate(self.decode_all.cpu_rate()),
            "",
        );
        s.row(
            "decode + verdict, readings/s per core",
            fmt_rate(self.verdict.cpu_rate()),
            &target(self.verdict.cpu_rate(), TARGET_CORE, "≥ 1,000,000"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Part 2: end to end

struct E2e {
    live: Run,
    on: Run,
    off: Run,
}

impl E2e {
    fn summarise(&self, s: &mut Summary) {
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
struct Run {
    name: String,
    messages: u64,
    readings: u64,
    /// Publishing (live) or quantrac's start (drain) to the moment InfluxDB held every reading.
    elapsed: Duration,
    /// From the start of the timed span to the last PUBACK (live) or to /readyz (drain).
    publish_or_ready: Duration,
    /// From the start of the timed span until quantrac had accepted every reading.
    intake: Duration,
    publish_rate: f64,
    broker_received: Option<u64>,
    points_written: f64,
    commits: f64,
    acks: f64,
    rejected: f64,
    write_errors: f64,
    rss_kb: u64,
    journal_bytes: u64,
    cpu: CpuSplit,
    scrape_bytes: usize,
    scrape_ms: f64,
    journal_wal_bytes: u64,
}

impl Run {
    fn reading_rate(&self) -> f64 {
        rate(self.readings, self.elapsed)
    }

    fn message_rate(&self) -> f64 {
        rate(self.messages, self.elapsed)
    }

    fn lag(&self) -> Duration {
        self.elapsed.saturating_sub(self.publish_or_ready)
    }

    fn print(&self, live: bool) {
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
struct CpuSplit {
    wall: f64,
    quantrac: f64,
    quantrac_threads: BTreeMap<String, f64>,
    influxd: f64,
    mosquitto: f64,
    publishers: f64,
    /// Every process of the machine, these included.
    machine: f64,
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

async fn end_to_end(sizes: &Sizes) -> anyhow::Result<E2e> {
    let root = tempfile::Builder::new()
        .prefix("quantrac-bench-")
        .tempdir()
        .context("temporary folder")?;
    // Kept for a post-mortem when asked (logs of every server and quantrac's journal).
    let keep = std::env::var_os("QUANTRAC_BENCH_KEEP").is_some_and(|v| v != "0");
    let root = Root {
        dir: Some(root),
        keep,
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("HTTP client")?;
    let influx = Influx::start(root.path(), &http).await?;
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
    influx.proc.stop().await;
    Ok(E2e { live, on, off })
}

/// The run's temporary folder: removed at the end unless `QUANTRAC_BENCH_KEEP=1`.
struct Root {
    dir: Option<tempfile::TempDir>,
    keep: bool,
}

impl Root {
    fn path(&self) -> &Path {
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
struct Ctx<'a> {
    sizes: &'a Sizes,
    root: &'a Path,
    http: &'a reqwest::Client,
    influx: &'a Influx,
    stations_file: &'a Path,
}

impl Ctx<'_> {
    fn workload(&self, count: usize) -> anyhow::Result<Workload> {
        let replicas = self.sizes.replicas();
        let now = chrono::Utc::now().timestamp_millis();
        let start = Workload::start_for(replicas, count, now - 60_000, self.sizes.spacing_ms());
        Workload::generate(replicas, count, start, self.sizes.spacing_ms())
    }

    /// quantrac's configuration for one run: its own broker, database, journal and client id.
    fn config(
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
                ("url", s(&self.influx.url)),
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
        let broker = Mosquitto::start(&self.root.join(name).join("mosquitto")).await?;
        self.influx.create_database(self.http, name).await?;
        let (config, journal) = self.config(name, broker.port, true)?;
        let mut quantrac =
            Quantrac::start(&config, &self.root.join(name).join("quantrac.log")).await?;
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
        quantrac.stop(self.sizes.timeout).await?;
        broker.proc.stop().await;
        self.influx.drop_database(self.http, name).await;
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
        let broker = Mosquitto::start(&self.root.join(name).join("mosquitto")).await?;
        self.influx.create_database(self.http, name).await?;
        let (config, journal) = self.config(name, broker.port, durable)?;
        let log = self.root.join(name).join("quantrac.log");

        // Once, so the broker knows the persistent session and its subscription.
        let mut first = Quantrac::start(&config, &log).await?;
        first.wait_ready(self.http, self.sizes.timeout).await?;
        first.stop(self.sizes.timeout).await?;

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
        let mut quantrac = Quantrac::start(&config, &log).await?;
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
        quantrac.stop(self.sizes.timeout).await?;
        broker.proc.stop().await;
        self.influx.drop_database(self.http, name).await;
        Ok(run)
    }

    /// Reads what the run left: quantrac's metrics, RSS, journal size, CPU used.
    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        name: &str,
        work: &Workload,
        quantrac: &Quantrac,
        broker: &Mosquitto,
        journal: &Path,
        before: Snapshot,
        done: Done,
    ) -> anyhow::Result<Run> {
        let (metrics, scrape_bytes) = quantrac.scrape(self.http).await?;
        let m = |k: &str| metrics.get(k).copied().unwrap_or(0.0);
        let after = Snapshot::take(&[broker.proc.pid(), self.influx.proc.pid()]);
        let pid = quantrac.proc.pid();
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
struct Done {
    intake: Duration,
    elapsed: Duration,
    /// `/metrics` requests made while waiting, and the time they took.
    scrapes: u32,
    scrape_time: Duration,
}

// ---------------------------------------------------------------------------------------------
// Processes

/// A child process killed when dropped (an error or panic still cleans up).
struct Proc {
    name: &'static str,
    child: tokio::process::Child,
    pid: u32,
}

impl Proc {
    fn spawn(name: &'static str, mut cmd: tokio::process::Command) -> anyhow::Result<Proc> {
        let child = cmd
            .kill_on_drop(true)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let pid = child.id().ok_or_else(|| anyhow!("{name} exited at once"))?;
        Ok(Proc { name, child, pid })
    }

    fn pid(&self) -> u32 {
        self.pid
    }

    /// Kills the process and waits for it.
    async fn stop(mut self) {
        if let Err(e) = self.child.kill().await {
            println!("   (stopping {}: {e})", self.name);
        }
    }
}

/// Finds a server program on PATH or in the sbin folders Debian installs daemons to.
fn program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into(), "/sbin".into()])
        .map(|d: PathBuf| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

async fn wait_for_port(port: u16, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("{what} is not listening on 127.0.0.1:{port}")
}

struct Mosquitto {
    proc: Proc,
    port: u16,
}

impl Mosquitto {
    /// A broker configured as quantrac's README asks: persistent, a queue large enough for a
    /// long outage, and `$SYS` counters every second for the received-count check.
    async fn start(dir: &Path) -> anyhow::Result<Mosquitto> {
        std::fs::create_dir_all(dir)?;
        let port = free_port()?;
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\n\
                 max_queued_messages 10000000\nmax_inflight_messages 1000\npersistent_client_expiration 7d\n\
                 memory_limit 0\nsys_interval 1\nlog_dest file {}\nlog_type error\nlog_type warning\n",
                dir.display(),
                dir.join("mosquitto.log").display()
            ),
        )?;
        let mut cmd = tokio::process::Command::new(program("mosquitto"));
        cmd.arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let proc = Proc::spawn("mosquitto", cmd)?;
        wait_for_port(port, "mosquitto").await?;
        Ok(Mosquitto { proc, port })
    }

    /// The broker's own count of PUBLISH packets received (`$SYS`), once it reaches `expected`
    /// or stops moving; `None` when the broker does not publish it.
    async fn received(&self, expected: u64) -> Option<u64> {
        let mut opts = MqttOptions::new(format!("bench-sys-{}", self.port), "127.0.0.1", self.port);
        opts.set_clean_session(true);
        let (client, mut events) = AsyncClient::new(opts, 16);
        client
            .subscribe("$SYS/broker/publish/messages/received", QoS::AtMostOnce)
            .await
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = None;
        while let Ok(Ok(event)) =
            tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), events.poll()).await
        {
            if let Event::Incoming(Packet::Publish(p)) = event {
                let n = std::str::from_utf8(&p.payload)
                    .ok()?
                    .trim()
                    .parse::<u64>()
                    .ok()?;
                seen = Some(n);
                if n >= expected {
                    break;
                }
            }
        }
        let _ = client.disconnect().await;
        seen
    }
}

struct Influx {
    proc: Proc,
    url: String,
}

impl Influx {
    async fn start(root: &Path, http: &reqwest::Client) -> anyhow::Result<Influx> {
        let dir = root.join("influxdb");
        std::fs::create_dir_all(&dir)?;
        let (rpc, port) = (free_port()?, free_port()?);
        let conf = dir.join("influxdb.conf");
        let d = |sub: &str| dir.join(sub).display().to_string();
        std::fs::write(
            &conf,
            format!(
                "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n\
                 [meta]\n  dir = {:?}\n\
                 [data]\n  dir = {:?}\n  wal-dir = {:?}\n  wal-fsync-delay = \"0s\"\n  query-log-enabled = false\n\
                 [http]\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n\
                 [monitor]\n  store-enabled = false\n\
                 [logging]\n  level = \"warn\"\n",
                d("meta"),
                d("data"),
                d("wal")
            ),
        )?;
        let log = std::fs::File::create(dir.join("influxd.log"))?;
        let mut cmd = tokio::process::Command::new(program("influxd"));
        cmd.arg("-config")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        let proc = Proc::spawn("influxd", cmd)?;
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match http.get(format!("{url}/ping")).send().await {
                Ok(r) if r.status().is_success() => break,
                _ if Instant::now() > deadline => bail!("influxd did not answer /ping on {url}"),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        Ok(Influx { proc, url })
    }

    async fn query(
        &self,
        http: &reqwest::Client,
        db: Option<&str>,
        q: &str,
        post: bool,
    ) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}/query", self.url);
        let mut params = vec![("q", q)];
        if let Some(db) = db {
            params.push(("db", db));
        }
        let req = if post { http.post(url) } else { http.get(url) };
        let answer = req.query(&params).send().await?;
        let status = answer.status();
        let body = answer.text().await?;
        if !status.is_success() {
            bail!("InfluxDB answered {status} to {q:?}: {body}");
        }
        Ok(serde_json::from_str(&body)?)
    }

    async fn create_database(&self, http: &reqwest::Client, db: &str) -> anyhow::Result<()> {
        self.query(http, None, &format!("CREATE DATABASE \"{db}\""), true)
            .await?;
        Ok(())
    }

    /// Frees the run's data, so its compactions do not run under the next one.
    async fn drop_database(&self, http: &reqwest::Client, db: &str) {
        if let Err(e) = self
            .query(http, None, &format!("DROP DATABASE \"{db}\""), true)
            .await
        {
            println!("   (dropping database {db}: {e:#})");
        }
    }

    /// `SELECT count(value) FROM reading`: readings queryable now.
    async fn count(&self, http: &reqwest::Client, db: &str) -> anyhow::Result<u64> {
        let v = self
            .query(http, Some(db), "SELECT count(value) FROM reading", false)
            .await?;
        Ok(v["results"][0]["series"][0]["values"][0][1]
            .as_u64()
            .unwrap_or(0))
    }
}

struct Quantrac {
    proc: Proc,
    /// `http://ADDR`, from the log line that announces the metrics address.
    base: String,
    log: PathBuf,
    /// Set once the log says "MQTT subscribed".
    subscribed: tokio::sync::watch::Receiver<bool>,
}

impl Quantrac {
    /// Starts `quantrac run`; its stderr goes to `log` (appended) and is watched for the line
    /// "HTTP listening on http://ADDR/metrics".
    async fn start(config: &Path, log: &Path) -> anyhow::Result<Quantrac> {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_quantrac"));
        cmd.arg("run")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("QUANTRAC_LOG_FORMAT")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut proc = Proc::spawn("quantrac", cmd)?;
        let stderr = proc
            .child
            .stderr
            .take()
            .ok_or_else(|| anyhow!("quantrac's stderr"))?;
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .await?;
        let (addr_tx, addr_rx) = oneshot::channel::<String>();
        let (subscribed_tx, subscribed) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            const MARK: &str = "HTTP listening on http://";
            let mut addr_tx = Some(addr_tx);
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("MQTT subscribed") {
                    subscribed_tx.send_replace(true);
                }
                if let Some(rest) = line.split_once(MARK).map(|(_, r)| r) {
                    if let (Some(addr), Some(tx)) = (rest.split('/').next(), addr_tx.take()) {
                        let _ = tx.send(addr.to_owned());
                    }
                }
                let _ = file.write_all(line.as_bytes()).await;
                let _ = file.write_all(b"\n").await;
            }
            let _ = file.flush().await;
        });
        let addr = match tokio::time::timeout(Duration::from_secs(60), addr_rx).await {
            Ok(Ok(addr)) => addr,
            _ => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                bail!(
                    "quantrac did not announce its HTTP address; log:\n{}",
                    tail(log)
                );
            }
        };
        Ok(Quantrac {
            proc,
            base: format!("http://{addr}"),
            log: log.to_owned(),
            subscribed,
        })
    }

    /// Waits for `/readyz` 200 and for the log line saying the subscription was granted: what
    /// is published before the subscription exists reaches nobody, and a lost message would
    /// leave the benchmark waiting for readings that never come.
    async fn wait_ready(
        &mut self,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if *self.subscribed.borrow() {
                if let Ok(r) = http.get(format!("{}/readyz", self.base)).send().await {
                    if r.status().is_success() {
                        return Ok(());
                    }
                }
            }
            if let Ok(Some(status)) = self.proc.child.try_wait() {
                bail!("quantrac exited ({status}); log:\n{}", tail(&self.log));
            }
            if Instant::now() > deadline {
                bail!(
                    "quantrac not ready after {timeout:?}; log:\n{}",
                    tail(&self.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `/metrics`, each metric summed over its label sets, and the answer's size.
    async fn scrape(
        &self,
        http: &reqwest::Client,
    ) -> anyhow::Result<(HashMap<String, f64>, usize)> {
        let text = http
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .text()
            .await?;
        let mut out = HashMap::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let value = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
            if let Some(v) = value {
                *out.entry(line[..name_end].to_owned()).or_insert(0.0) += v;
            }
        }
        Ok((out, text.len()))
    }

    /// Waits until InfluxDB holds `expected` readings. Watches quantrac's metrics and asks
    /// InfluxDB once they say everything is written, or every [`ASK_INFLUX`] in any case.
    async fn wait_in_influx(
        &mut self,
        ctx: &Ctx<'_>,
        db: &str,
        expected: u64,
        t0: Instant,
    ) -> anyhow::Result<Done> {
        let deadline = Instant::now() + ctx.sizes.timeout;
        let mut intake = None;
        let mut asked = Instant::now();
        let mut count = 0;
        let (mut scrapes, mut scrape_time) = (0u32, Duration::ZERO);
        loop {
            let t = Instant::now();
            let metrics = self
                .scrape(ctx.http)
                .await
                .map(|(m, _)| m)
                .unwrap_or_default();
            scrapes += 1;
            scrape_time += t.elapsed();
            let m = |k: &str| metrics.get(k).copied().unwrap_or(0.0);
            let accepted = m("quantrac_readings_accepted_total") as u64 >= expected;
            if accepted && intake.is_none() {
                intake = Some(t0.elapsed());
            }
            let backlog = m("quantrac_journal_backlog_readings");
            let written = accepted && backlog == 0.0;
            if written || asked.elapsed() >= ASK_INFLUX {
                asked = Instant::now();
                count = ctx.influx.count(ctx.http, db).await?;
                if count >= expected {
                    let elapsed = t0.elapsed();
                    return Ok(Done {
                        intake: intake.unwrap_or(elapsed),
                        elapsed,
                        scrapes,
                        scrape_time,
                    });
                }
            }
            if let Ok(Some(status)) = self.proc.child.try_wait() {
                bail!("quantrac exited ({status}); log:\n{}", tail(&self.log));
            }
            if Instant::now() > deadline {
                bail!(
                    "after {:?} InfluxDB holds {count} of {expected} readings (accepted {}, backlog {}); log:\n{}",
                    ctx.sizes.timeout,
                    m("quantrac_readings_accepted_total"),
                    m("quantrac_journal_backlog_readings"),
                    tail(&self.log)
                );
            }
            tokio::time::sleep(if accepted && backlog < FAST_BELOW {
                POLL_FAST
            } else {
                POLL_SLOW
            })
            .await;
        }
    }

    /// SIGTERM, as systemd stops it; quantrac flushes and exits 0.
    async fn stop(mut self, timeout: Duration) -> anyhow::Result<()> {
        let term = tokio::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.proc.pid().to_string())
            .status()
            .await?;
        if !term.success() {
            bail!("kill -TERM {} failed", self.proc.pid());
        }
        match tokio::time::timeout(timeout, self.proc.child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => bail!(
                "quantrac exited with {status} after SIGTERM; log:\n{}",
                tail(&self.log)
            ),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => {
                self.proc.stop().await;
                bail!("quantrac did not exit within {timeout:?} of SIGTERM")
            }
        }
    }
}

/// The last lines of a log, for error messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Publishers

struct Published {
    acked: u64,
    elapsed: Duration,
    last_ack: Instant,
}

/// Publishes every message of `work` at QoS 1 from `n` concurrent clients; returns once the
/// broker acknowledged them all.
async fn publish(
    port: u16,
    work: &Arc<Workload>,
    n: usize,
    run: &str,
    timeout: Duration,
) -> anyhow::Result<Published> {
    let t0 = Instant::now();
    let tasks: Vec<_> = work
        .split(n)
        .into_iter()
        .enumerate()
        .map(|(i, indices)| {
            tokio::spawn(publisher(
                port,
                format!("bench-{run}-{i}"),
                work.clone(),
                indices,
                timeout,
            ))
        })
        .collect();
    let mut acked = 0;
    let mut last_ack = t0;
    for task in tasks {
        let (n, last) = task.await??;
        acked += n;
        last_ack = last_ack.max(last);
    }
    Ok(Published {
        acked,
        elapsed: last_ack.duration_since(t0),
        last_ack,
    })
}

/// One MQTT 3.1.1 client. The event loop runs in its own task and only counts PUBACKs,
/// returning a permit for each; the publishing loop takes a permit per message, so at most
/// [`PUBLISHER_INFLIGHT`] wait for their PUBACK and the loop never blocks the event loop.
async fn publisher(
    port: u16,
    id: String,
    work: Arc<Workload>,
    indices: Vec<usize>,
    timeout: Duration,
) -> anyhow::Result<(u64, Instant)> {
    let total = indices.len() as u64;
    if total == 0 {
        return Ok((0, Instant::now()));
    }
    let mut opts = MqttOptions::new(id.clone(), "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_inflight(PUBLISHER_INFLIGHT)
        .set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut events) = AsyncClient::new(opts, 256);
    let permits = Arc::new(Semaphore::new(usize::from(PUBLISHER_INFLIGHT)));
    let (done_tx, done_rx) = oneshot::channel::<Instant>();
    let poll = tokio::spawn({
        let permits = permits.clone();
        async move {
            let mut acked = 0u64;
            let mut done_tx = Some(done_tx);
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        acked += 1;
                        permits.add_permits(1);
                        if acked == total {
                            if let Some(tx) = done_tx.take() {
                                let _ = tx.send(Instant::now());
                            }
                        }
                    }
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => return Ok(acked),
                    Ok(_) => {}
                    Err(e) => {
                        permits.close();
                        if acked == total {
                            return Ok(acked);
                        }
                        return Err(anyhow!("{e} after {acked} of {total} PUBACKs"));
                    }
                }
            }
        }
    });
    let sent: anyhow::Result<()> = async {
        for &i in &indices {
            permits
                .acquire()
                .await
                .map_err(|_| anyhow!("connection lost"))?
                .forget();
            let m = &work.messages[i];
            client
                .publish_bytes(m.topic.clone(), QoS::AtLeastOnce, false, m.payload.clone())
                .await?;
        }
        Ok(())
    }
    .await;
    let last = match (sent, tokio::time::timeout(timeout, done_rx).await) {
        (Ok(()), Ok(Ok(at))) => at,
        (sent, _) => {
            poll.abort();
            let cause = sent
                .err()
                .map_or("no PUBACK for every message".to_owned(), |e| e.to_string());
            bail!("publisher {id}: {cause}");
        }
    };
    let _ = client.disconnect().await;
    let acked = match tokio::time::timeout(Duration::from_secs(5), poll).await {
        Ok(Ok(Ok(n))) => n,
        _ => total,
    };
    Ok((acked, last))
}

// ---------------------------------------------------------------------------------------------
// Figures

#[derive(Default)]
struct Summary {
    rows: Vec<(String, String, String)>,
}

impl Summary {
    fn row(&mut self, name: &str, value: String, target: &str) {
        self.rows.push((name.to_owned(), value, target.to_owned()));
    }

    fn print(&self) {
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

fn target(value: f64, goal: f64, text: &str) -> String {
    format!(
        "{text} {}",
        if value >= goal { "(met)" } else { "(NOT met)" }
    )
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// `1234567.8` → `1,234,568`.
fn fmt_rate(x: f64) -> String {
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

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

// ---------------------------------------------------------------------------------------------
// /proc

/// CPU time of the calling thread (`/proc/thread-self/schedstat`, nanoseconds on the CPU).
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// User + system CPU seconds of a whole process, its finished threads included.
fn process_cpu(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / CLK_TCK
}

/// Busy CPU seconds of the whole machine since boot (`/proc/stat`: all but idle and iowait).
fn machine_cpu() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    line.split_whitespace()
        .skip(1)
        .enumerate()
        .filter(|(i, _)| !matches!(i, 3 | 4))
        .filter_map(|(_, v)| v.parse::<f64>().ok())
        // user, nice, system, irq, softirq, steal (guest time is already in user and nice)
        .take(6)
        .sum::<f64>()
        / CLK_TCK
}

/// CPU seconds of each live thread of `pid`, summed by thread name.
fn thread_cpu_by_name(pid: u32) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let dir = task.path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let ns = std::fs::read_to_string(dir.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0);
        *out.entry(name.trim().to_owned()).or_insert(0.0) += ns / 1e9;
    }
    out
}

/// `VmHWM` of a process: its peak resident set, kB.
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
