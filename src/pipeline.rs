//! The types that travel between stages: an MQTT message as an [`Envelope`] with its [`Ack`],
//! what `decode` made of it ([`Decoded`]), and what the journal commits ([`Processed`]).
//!
//! One MQTT message stays one value from the source to the journal: never split or merged, so
//! its acknowledgement can follow it.

use tokio::sync::mpsc;

use crate::model::{Judged, Reading, Rejection, StationKey, WindowPoint};

/// "This message is durable": resolved by the journal after the commit that holds the message.
///
/// The MQTT source keeps the message itself and sends the PUBACK only once every message
/// before it is resolved too. An `Ack` dropped without [`Ack::resolve`] means "not durable":
/// the message is never acknowledged and the broker delivers it again.
#[derive(Debug)]
pub struct Ack {
    seq: u64,
    tx: Option<mpsc::UnboundedSender<u64>>,
}

impl Ack {
    /// An ack for message `seq` of the source that owns `tx`.
    pub fn new(seq: u64, tx: mpsc::UnboundedSender<u64>) -> Ack {
        Ack { seq, tx: Some(tx) }
    }

    /// An ack that nobody waits for (replayed dead letters, benchmarks).
    pub fn none() -> Ack {
        Ack { seq: 0, tx: None }
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Tells the source that the message is durable.
    pub fn resolve(mut self) {
        if let Some(tx) = self.tx.take() {
            // The source may already have stopped (shutdown); the broker redelivers then.
            let _ = tx.send(self.seq);
        }
    }
}

/// One MQTT message as received.
#[derive(Debug)]
pub struct Envelope {
    pub topic: String,
    pub payload: Vec<u8>,
    /// Receive time, Unix epoch milliseconds.
    pub received_at_ms: i64,
    pub ack: Ack,
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
}
