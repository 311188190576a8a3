//! The acker: sends PUBACKs in arrival order, once the journal has made each message durable.
//!
//! It never waits on the client's request channel, which only the poll loop drains (rumqttc
//! moves only while polled): under a flood the event loop serves a request only between
//! batches of incoming packets, the channel fills, and an acker waiting on it would stop
//! taking resolved acks, so the poll loop, waiting for a free ack slot, would stop polling:
//! a deadlock. A PUBACK that does not fit is tried again a moment later, while the acker goes
//! on taking acks and packets.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::events::Events;
use super::session::{Client, Packet};
use crate::pipeline::AckEvent;

/// How soon a PUBACK that did not fit the client's request channel is tried again.
const RETRY: std::time::Duration = std::time::Duration::from_millis(2);

/// A packet waiting for its ack, tagged with the connection it arrived on.
pub(super) struct Pending {
    pub seq: u64,
    pub epoch: u64,
    pub packet: Packet,
}

/// Sends PUBACKs in arrival order for durable messages. Ends when every `Ack` is gone (the
/// source dropped its senders and the journal resolved or dropped the rest), then disconnects.
///
/// A dropped `Ack` stops acknowledging for good: the messages after it may be durable, but a
/// PUBACK for them would let the broker forget them while the one before is lost. It is
/// counted, logged and shown on `/readyz`; it only happens when a stage failed or the service
/// stopped with messages queued, both of which end the run, and the broker redelivers.
pub(super) async fn acker(
    client: Client,
    mut resolved: mpsc::Receiver<AckEvent>,
    mut pending: mpsc::Receiver<Pending>,
    epoch: Arc<AtomicU64>,
    mut events: Events,
) {
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut durable: BTreeSet<u64> = BTreeSet::new();
    let mut pending_open = true;
    let mut blocked = false;
    // The client's request channel was full at the last PUBACK: try again shortly.
    let mut retry = false;
    loop {
        tokio::select! {
            biased;
            p = pending.recv(), if pending_open => match p {
                Some(p) => queue.push_back(p),
                None => pending_open = false,
            },
            _ = tokio::time::sleep(RETRY), if retry => {}
            event = resolved.recv() => match event {
                // A refused message is a dead letter in the journal: durable all the same.
                Some(AckEvent::Durable(seq) | AckEvent::Refused(seq)) => { durable.insert(seq); }
                Some(AckEvent::Dropped(seq)) => {
                    events.ack_dropped(seq);
                    blocked = true;
                }
                None => break,
            },
        }
        if blocked {
            queue.clear();
            durable.clear();
            continue;
        }
        retry = false;
        while let Some(head) = queue.front() {
            if !durable.contains(&head.seq) {
                break;
            }
            // Arrived on a connection that is gone: the broker redelivers it (persistent
            // session) and the journal makes the duplicate harmless. A PUBACK now could
            // acknowledge a different message with the same packet id.
            let stale = head.epoch != epoch.load(Ordering::SeqCst);
            if !stale && !client.try_ack(&head.packet) {
                retry = true;
                break;
            }
            durable.remove(&head.seq);
            queue.pop_front();
            if !stale {
                events.ack_sent();
            }
        }
    }
    if !queue.is_empty() {
        tracing::info!(
            unacknowledged = queue.len(),
            "messages left unacknowledged for redelivery"
        );
    }
    let _ = client.disconnect().await;
}
