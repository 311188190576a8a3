//! The types that travel between stages: a message as an [`Envelope`] with its [`Ack`], what
//! `decode` made of it ([`Decoded`]), and what the journal commits ([`Processed`]).
//!
//! A message comes from a source: an MQTT publish, or a Circular 10/2021 file taken from the
//! inbox, whose file name stands in for the topic ([`inbox_topic`]). One message stays one value
//! from its source to the journal: never split or merged, so its acknowledgement can follow it.

use tokio::sync::mpsc;

use crate::model::{Judged, Reading, Rejection, StationKey, WindowPoint};

/// What became of a message, as its source learns it: durable (committed to the journal), or
/// dropped before that (a stage failed or the service stopped with the message in a queue).
/// `Refused` is durable too, but nothing of the message was accepted: it is in the journal only
/// as a dead letter (the inbox keeps such a file apart; MQTT acknowledges it like any other).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckEvent {
    Durable(u64),
    Refused(u64),
    Dropped(u64),
}

/// Topics of messages taken from the inbox start with this: `$inbox/` then the file's path
/// relative to the inbox folder. `$` topics are the broker's own (MQTT 3.1.1 §4.7.2): no MQTT
/// client publishes one, so a file record cannot be mistaken for an MQTT message.
pub const INBOX_TOPIC_PREFIX: &str = "$inbox/";

/// The topic of a file at `relative_path` in the inbox (`/`-separated).
pub fn inbox_topic(relative_path: &str) -> String {
    format!("{INBOX_TOPIC_PREFIX}{relative_path}")
}

/// The file name (last path component) of an inbox topic; `None` for any other topic.
pub fn inbox_file_name(topic: &str) -> Option<&str> {
    let path = topic.strip_prefix(INBOX_TOPIC_PREFIX)?;
    Some(path.rsplit('/').next().unwrap_or(path))
}

/// "This message is durable": resolved by the journal after the commit that holds the message.
///
/// A finalizer, as vector's are: the source keeps the message itself and sends the PUBACK only
/// once every message before it is durable too. An `Ack` dropped without [`Ack::resolve`]
/// reports [`AckEvent::Dropped`]: the message is never acknowledged (the broker delivers it
/// again) and the source counts it and says so, so a lost acknowledgement is never silent.
///
/// Each `Ack` holds a reserved slot of the source's acknowledgement channel from the moment it
/// is made, so reporting never waits and never fails, and the channel's capacity bounds the
/// messages in flight between the source and the journal.
pub struct Ack {
    seq: u64,
    permit: Option<mpsc::OwnedPermit<AckEvent>>,
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ack")
            .field("seq", &self.seq)
            .field("pending", &self.permit.is_some())
            .finish()
    }
}

impl Ack {
    /// An ack for message `seq`, reporting through the reserved slot `permit`.
    pub fn new(seq: u64, permit: mpsc::OwnedPermit<AckEvent>) -> Ack {
        Ack {
            seq,
            permit: Some(permit),
        }
    }

    /// An ack that nobody waits for (records quantrac makes itself, replayed dead letters,
    /// benchmarks).
    pub fn none() -> Ack {
        Ack {
            seq: 0,
            permit: None,
        }
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Whether a source waits for this ack (the message came from outside, and may come again).
    pub fn from_source(&self) -> bool {
        self.permit.is_some()
    }

    /// Tells the source that the message is durable.
    pub fn resolve(mut self) {
        if let Some(permit) = self.permit.take() {
            // The source may already have stopped (shutdown); the broker redelivers then.
            permit.send(AckEvent::Durable(self.seq));
        }
    }

    /// Tells the source that the message is durable as a dead letter only: nothing of it was
    /// accepted.
    pub fn resolve_refused(mut self) {
        if let Some(permit) = self.permit.take() {
            permit.send(AckEvent::Refused(self.seq));
        }
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            permit.send(AckEvent::Dropped(self.seq));
        }
    }
}

/// How much of an oversized payload is kept, as evidence of what was sent.
pub const EXCERPT_BYTES: usize = 4096;

/// A payload larger than `mqtt.max_payload_bytes`: its whole size and SHA-256. Only its first
/// [`EXCERPT_BYTES`] travel on (in [`Envelope::payload`]) and are journaled, so a publisher
/// sending megabytes cannot fill the journal or the memory of the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oversize {
    pub bytes: usize,
    pub sha256: [u8; 32],
}

/// One message as received: an MQTT publish, or a file from the inbox.
#[derive(Debug)]
pub struct Envelope {
    /// The MQTT topic, or [`inbox_topic`] for a file.
    pub topic: String,
    /// The payload, or only its first [`EXCERPT_BYTES`] when `oversize` is set.
    pub payload: Vec<u8>,
    /// Set when the payload was over the limit and cut to an excerpt on arrival.
    pub oversize: Option<Oversize>,
    /// Receive time, Unix epoch milliseconds.
    pub received_at_ms: i64,
    pub ack: Ack,
}

impl Envelope {
    /// A message as it arrives from a source. A payload over `max_payload_bytes` is cut to its
    /// first [`EXCERPT_BYTES`] here, at once, with its size and SHA-256 kept beside it.
    pub fn received(
        topic: String,
        payload: &[u8],
        received_at_ms: i64,
        ack: Ack,
        max_payload_bytes: usize,
    ) -> Envelope {
        let (payload, oversize) = if payload.len() > max_payload_bytes {
            use sha2::Digest;
            let oversize = Oversize {
                bytes: payload.len(),
                sha256: sha2::Sha256::digest(payload).into(),
            };
            (
                payload[..EXCERPT_BYTES.min(payload.len())].to_vec(),
                Some(oversize),
            )
        } else {
            (payload.to_vec(), None)
        };
        Envelope {
            topic,
            payload,
            oversize,
            received_at_ms,
            ack,
        }
    }

    /// A message quantrac makes itself or takes from the journal (nobody to acknowledge).
    pub fn internal(topic: String, payload: Vec<u8>, received_at_ms: i64) -> Envelope {
        Envelope {
            topic,
            payload,
            oversize: None,
            received_at_ms,
            ack: Ack::none(),
        }
    }
}

/// What `decode` made of a message: the station it came from (when the topic said), the
/// readings that passed, and one rejection per reading (or payload) that did not.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Decoded {
    pub key: Option<StationKey>,
    pub readings: Vec<Reading>,
    pub rejections: Vec<Rejection>,
}

/// A message after decoding and compliance: everything the journal commits for it.
#[derive(Debug)]
pub struct Processed {
    pub envelope: Envelope,
    pub key: Option<StationKey>,
    pub readings: Vec<Judged>,
    pub rejections: Vec<Rejection>,
    /// Compliance windows this message changed (rewritten in InfluxDB by start time).
    pub averages: Vec<WindowPoint>,
    /// The compliance engine's state just after this record (a windows record, every
    /// [`Handover::every`]): the journal stage keeps it once the record is committed, so a
    /// start after a crash replays only the records after it (see `journal::engine_state`).
    pub engine_state: Option<Box<EngineState>>,
}

/// The compliance engine's state (see `compliance::state`): bytes only its own build reads,
/// and the fingerprint of the configuration they were made under.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineState {
    pub fingerprint: [u8; 32],
    pub bytes: Vec<u8>,
}

/// How the compliance stage's state reaches the journal stage, which keeps it beside the
/// journal once every record before it is committed (see `journal::engine_state`): while
/// running, on a windows record every [`Handover::every`] ([`Processed::engine_state`]), and
/// here, when the stage's input ends (a clean stop).
#[derive(Debug, Clone)]
pub struct Handover {
    slot: std::sync::Arc<std::sync::Mutex<Option<EngineState>>>,
    every: std::time::Duration,
}

impl Handover {
    /// State kept while running at most every `every` (`journal.state_interval_s`).
    pub fn new(every: std::time::Duration) -> Handover {
        Handover {
            slot: Default::default(),
            every,
        }
    }

    pub fn every(&self) -> std::time::Duration {
        self.every
    }

    pub fn put(&self, state: EngineState) {
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(state);
    }

    pub fn take(&self) -> Option<EngineState> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl Default for Handover {
    /// Kept at a clean stop only.
    fn default() -> Handover {
        Handover::new(std::time::Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ack_reports_once_resolved_or_dropped_and_never_twice() {
        let (tx, mut rx) = mpsc::channel(2);
        let resolved = Ack::new(1, tx.clone().try_reserve_owned().unwrap());
        let dropped = Ack::new(2, tx.clone().try_reserve_owned().unwrap());
        assert!(
            tx.clone().try_reserve_owned().is_err(),
            "each ack holds its slot from the start: the channel bounds acks in flight"
        );
        resolved.resolve();
        drop(dropped);
        drop(Ack::none());
        assert_eq!(rx.try_recv(), Ok(AckEvent::Durable(1)));
        assert_eq!(rx.try_recv(), Ok(AckEvent::Dropped(2)));
        assert!(
            rx.try_recv().is_err(),
            "one report per ack, none for Ack::none"
        );
        let refused = Ack::new(3, tx.clone().try_reserve_owned().unwrap());
        refused.resolve_refused();
        assert_eq!(rx.try_recv(), Ok(AckEvent::Refused(3)));
    }

    #[test]
    fn inbox_topics_carry_the_file_path_and_no_mqtt_topic_is_one() {
        let topic = inbox_topic("HP/2026/11/29/HP_DV_K1_20261129140500.txt");
        assert_eq!(topic, "$inbox/HP/2026/11/29/HP_DV_K1_20261129140500.txt");
        assert_eq!(inbox_file_name(&topic), Some("HP_DV_K1_20261129140500.txt"));
        assert_eq!(inbox_file_name("$inbox/a.txt"), Some("a.txt"));
        assert_eq!(inbox_file_name("env/p/s/a.txt"), None);
        assert_eq!(inbox_file_name("$quantrac/windows"), None);
    }
}
