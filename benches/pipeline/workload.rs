//! The workload: messages of the simulated park, replicated, as its stations publish them.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use quantrac::config::{ComplianceSettings, Stations};
use quantrac::decode::Decoder;
use quantrac::demo::{stations_toml_replicated, Simulator};

use crate::{MAX_PAYLOAD, PARK_REPORTING, SEED, TOPIC_TEMPLATE, TZ};

/// One MQTT message as a station publishes it.
pub(crate) struct Message {
    pub(crate) topic: String,
    pub(crate) payload: Bytes,
    pub(crate) ts_ms: i64,
}

/// Messages of the simulated park in publishing order, with what they hold.
pub(crate) struct Workload {
    pub(crate) messages: Vec<Message>,
    pub(crate) readings: u64,
}

impl Workload {
    /// `count` messages of `replicas` copies of the demo park, one per reporting station every
    /// `spacing_ms` from `start_ms`. Every message is decoded once here, to count the readings
    /// that reach InfluxDB (a rejected reading never does) and to be sure no message is refused
    /// whole.
    pub(crate) fn generate(
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
                // The demo's steel stack sends three readings without a value ("---"), which
                // are rejected as they would be in the field; a whole message refused would
                // mean the workload no longer matches the decoder.
                if let Some(r) = decoded.rejections.iter().find(|r| r.index.is_none()) {
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
    pub(crate) fn start_for(replicas: u32, count: usize, end_ms: i64, spacing_ms: i64) -> i64 {
        let per_interval = u64::from(replicas * PARK_REPORTING).max(1);
        let intervals = (count as u64).div_ceil(per_interval);
        let start = end_ms - i64::try_from(intervals).unwrap_or(0) * spacing_ms;
        start - start.rem_euclid(60_000)
    }

    pub(crate) fn bytes(&self) -> usize {
        self.messages.iter().map(|m| m.payload.len()).sum()
    }

    pub(crate) fn json(&self) -> Vec<&Message> {
        self.messages
            .iter()
            .filter(|m| m.payload.first() == Some(&b'{'))
            .collect()
    }

    pub(crate) fn tab(&self) -> Vec<&Message> {
        self.messages
            .iter()
            .filter(|m| m.payload.first() != Some(&b'{'))
            .collect()
    }

    /// Splits the messages over `n` publishers, each station always on the same one, so a
    /// station's messages reach the broker in order, as from its one datalogger.
    pub(crate) fn split(&self, n: usize) -> Vec<Vec<usize>> {
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

pub(crate) fn decoder() -> anyhow::Result<Decoder> {
    Decoder::new(&[TOPIC_TEMPLATE.to_owned()], TZ, MAX_PAYLOAD).context("topic template")
}

/// The demo park's permits for `replicas` copies, each station expected every `spacing_s`.
pub(crate) fn stations_text(replicas: u32, spacing_s: u64) -> anyhow::Result<String> {
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

pub(crate) fn stations(replicas: u32, spacing_s: u64) -> anyhow::Result<Stations> {
    let defaults = ComplianceSettings::default().station_defaults();
    Ok(Stations::parse(
        &stations_text(replicas, spacing_s)?,
        "stations.toml",
        &defaults,
    )?)
}
