//! What to measure: sizes from `QUANTRAC_BENCH_*` environment variables.

use std::str::FromStr;
use std::time::Duration;

use anyhow::anyhow;

use crate::PARK_STATIONS;

/// What to measure, from `QUANTRAC_BENCH_*` environment variables.
#[derive(Clone, Debug)]
pub(crate) struct Sizes {
    /// `QUANTRAC_BENCH_STATIONS`: stations (rounded up to whole copies of the 6-station park).
    pub(crate) stations: u32,
    /// `QUANTRAC_BENCH_CORE_MESSAGES`: messages of the per-core workload.
    pub(crate) core_messages: usize,
    /// `QUANTRAC_BENCH_PASSES`: per-core passes; the fastest counts.
    pub(crate) passes: usize,
    /// `QUANTRAC_BENCH_LIVE_MESSAGES`: messages published while quantrac runs.
    pub(crate) live_messages: usize,
    /// `QUANTRAC_BENCH_MESSAGES`: messages of the backlog drains.
    pub(crate) backlog_messages: usize,
    /// `QUANTRAC_BENCH_PUBLISHERS`: concurrent MQTT publishers.
    pub(crate) publishers: usize,
    /// `QUANTRAC_BENCH_SPACING_S`: time between two messages of one station.
    pub(crate) spacing_s: u64,
    /// `QUANTRAC_BENCH_TIMEOUT_S`: longest wait for any one phase.
    pub(crate) timeout: Duration,
    /// `QUANTRAC_BENCH_E2E`: `0` skips the end-to-end part.
    pub(crate) e2e: bool,
    /// `QUANTRAC_BENCH_PROVINCE`: `0` skips the province-scale part (3).
    pub(crate) province: bool,
    /// `QUANTRAC_BENCH_PROVINCE_STATIONS`: generated wastewater stations of part 3.
    pub(crate) province_stations: usize,
    /// `QUANTRAC_BENCH_VERSUS_MESSAGES`: one-reading messages, once to `mosquitto_sub` and once
    /// to quantrac.
    pub(crate) versus_messages: usize,
    /// `QUANTRAC_BENCH_PROVINCE_MESSAGES`: six-reading messages of the province run.
    pub(crate) province_messages: usize,
    /// `QUANTRAC_BENCH_PROVINCE_PUBLISHERS`: concurrent MQTT publishers of part 3.
    pub(crate) province_publishers: usize,
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
            province: true,
            province_stations: 10_000,
            versus_messages: 50_000,
            province_messages: 50_000,
            province_publishers: 10,
        }
    }
}

impl Sizes {
    pub(crate) fn from_env() -> anyhow::Result<Sizes> {
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
            province: env_or("QUANTRAC_BENCH_PROVINCE", 1u8)? != 0,
            province_stations: env_or("QUANTRAC_BENCH_PROVINCE_STATIONS", d.province_stations)?
                .max(1),
            versus_messages: env_or("QUANTRAC_BENCH_VERSUS_MESSAGES", d.versus_messages)?.max(1),
            province_messages: env_or("QUANTRAC_BENCH_PROVINCE_MESSAGES", d.province_messages)?
                .max(1),
            province_publishers: env_or(
                "QUANTRAC_BENCH_PROVINCE_PUBLISHERS",
                d.province_publishers,
            )?
            .max(1),
        })
    }

    pub(crate) fn replicas(&self) -> u32 {
        self.stations.div_ceil(PARK_STATIONS)
    }

    pub(crate) fn spacing_ms(&self) -> i64 {
        i64::try_from(self.spacing_s).unwrap_or(300) * 1000
    }
}

impl std::fmt::Display for Sizes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stations {} ({} copies of the demo park), message spacing {} s, per-core messages {} × {} passes, \
             live messages {}, backlog messages {}, publishers {}; province: {} stations, \
             {} one-reading messages, {} six-reading messages, {} publishers",
            self.replicas() * PARK_STATIONS,
            self.replicas(),
            self.spacing_s,
            self.core_messages,
            self.passes,
            self.live_messages,
            self.backlog_messages,
            self.publishers,
            self.province_stations,
            self.versus_messages,
            self.province_messages,
            self.province_publishers
        )
    }
}

pub(crate) fn env_or<T: FromStr>(name: &str, default: T) -> anyhow::Result<T>
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
