//! The decode stage's task: one [`Decoder::decode`] per message, counting and logging every
//! rejection ([`Events`]). The message itself, rejected or not, goes on: the journal keeps
//! rejected payloads as dead letters, and only then is the message acknowledged.

use tokio::sync::mpsc;

use super::events::Events;
use super::Decoder;
use crate::metrics::Metrics;
use crate::pipeline::{Decoded, Envelope};

pub async fn run(
    mut decoder: Decoder,
    mut rx: mpsc::Receiver<Envelope>,
    tx: mpsc::Sender<(Envelope, Decoded)>,
    metrics: Metrics,
) {
    let mut events = Events::new(&metrics);
    while let Some(envelope) = rx.recv().await {
        let decoded = match &envelope.oversize {
            Some(oversize) => decoder.oversized(&envelope.topic, oversize),
            None => decoder.decode(&envelope.topic, &envelope.payload, envelope.received_at_ms),
        };
        events.accepted(decoded.readings.len());
        for r in &decoded.rejections {
            events.rejected(&envelope.topic, r);
        }
        if tx.send((envelope, decoded)).await.is_err() {
            break;
        }
    }
    events.flush();
}
