//! The pipeline's benchmark. `cargo bench --bench pipeline` prints figures; nothing here
//! asserts a speed, but a part that cannot be measured (a server that does not start, a phase
//! that times out) fails the run after the summary is printed.
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
//! 3. **Province scale** ([`province`]): issue 10's throughput and journal targets with 10,000
//!    generated stations — quantrac against a plain `mosquitto_sub` on one-reading messages,
//!    six-reading messages in readings/s, the journal's bytes per reading, its outbox and its
//!    pruning — printed as a `| figure | target | measured | met |` table at the end.
//!
//! End-to-end messages carry timestamps 5 minutes apart that end at the time of the run, so
//! most readings arrive after their window closed: as after an outage, each such reading
//! rewrites its window points (`average`), and InfluxDB receives several points per reading.
//! The figures print that ratio.
//!
//! Sizes come from environment variables ([`Sizes::from_env`]). Without the `--bench` argument
//! (that is, under `cargo test --all-targets`) only a small per-core pass runs, with no server,
//! and part 3's workload is generated small, with no server either.
//!
//! The servers and the quantrac process come from `quantrac-testkit`, as in the integration
//! tests. Modules: [`sizes`], [`workload`], [`per_core`] (part 1), [`e2e`] with [`service`] and
//! [`publish`] (part 2), [`province`] with [`province_work`], [`versus`] and [`watch`] (part 3),
//! [`report`] (figures), [`procfs`] (CPU and memory).

mod e2e;
mod per_core;
mod procfs;
mod province;
mod province_work;
mod publish;
mod report;
mod service;
mod sizes;
mod versus;
mod watch;
mod workload;

use std::panic::AssertUnwindSafe;

use anyhow::{anyhow, bail, Context};
use chrono_tz::Tz;

use crate::e2e::end_to_end;
use crate::per_core::per_core;
use crate::province::province;
use crate::report::{cpus, Summary};
use crate::sizes::Sizes;

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
    // A part that failed to measure: the summary is still printed, then the run fails.
    let mut failed: Option<anyhow::Error> = None;

    let core = per_core(&sizes)?;
    core.print();
    core.summarise(&mut summary);

    if sizes.e2e {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        // A server that cannot start fails its testkit helper with a panic: reported like an
        // error, so the per-core figures still reach the summary.
        let e2e =
            std::panic::catch_unwind(AssertUnwindSafe(|| runtime.block_on(end_to_end(&sizes))))
                .unwrap_or_else(|panic| Err(anyhow!("{}", panic_text(panic.as_ref()))));
        match e2e {
            Ok(e2e) => e2e.summarise(&mut summary),
            Err(e) => {
                println!("\nend-to-end benchmark failed: {e:#}");
                summary.row("end to end", "failed".into(), "");
                failed = Some(e.context("end-to-end benchmark"));
            }
        }
    } else {
        println!("\nend-to-end part skipped (QUANTRAC_BENCH_E2E=0)");
    }

    let mut table = None;
    if sizes.province {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let part =
            std::panic::catch_unwind(AssertUnwindSafe(|| runtime.block_on(province(&sizes))))
                .unwrap_or_else(|panic| Err(anyhow!("{}", panic_text(panic.as_ref()))));
        match part {
            Ok(p) => table = Some(p.table()),
            Err(e) => {
                println!("\nprovince-scale benchmark failed: {e:#}");
                summary.row("province scale", "failed".into(), "");
                let e = e.context("province-scale benchmark");
                failed = Some(match failed {
                    Some(first) => first.context(format!("{e:#}")),
                    None => e,
                });
            }
        }
    } else {
        println!("\nprovince-scale part skipped (QUANTRAC_BENCH_PROVINCE=0)");
    }
    summary.print();
    if let Some(table) = table {
        table.print("province scale (issue 10): throughput and the journal");
    }
    failed.map_or(Ok(()), Err)
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
    // Part 3's generator, small: every message decodes whole (it checks that itself).
    let now = chrono::Utc::now().timestamp_millis();
    let one = province_work::generate(20, 50, 1, now)?;
    let six = province_work::generate(20, 50, 6, now)?;
    if one.readings != 50 || six.readings != 300 {
        bail!(
            "province workloads hold {} and {} readings",
            one.readings,
            six.readings
        );
    }
    println!(
        "pipeline bench smoke run: {} messages, {} readings decoded and judged (run `cargo bench --bench pipeline` for figures)",
        core.messages, core.verdict.readings
    );
    Ok(())
}

/// The message of a caught panic.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic".to_owned())
}
