//! The acker: sends PUBACKs in arrival order, once the journal has made each message durable.
//! A task of its own because acknowledging may wait on the client's request channel, which
//! only the poll loop drains (rumqttc moves only while polled).

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::events::Events;
use super::session::{Client, Packet};
use crate::pipeline::AckEvent;

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
    loop {
        tokio::select! {
            biased;
            p = pending.recv(), if pending_open => match p {
                Some(p) => queue.push_back(p),
                None => pending_open = false,
            },
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
        while let Some(head) = queue.front() {
            if !durable.remove(&head.seq) {
                break;
            }
            let head = queue.pop_front().expect("front exists");
            if head.epoch != epoch.load(Ordering::SeqCst) {
                // Arrived on a connection that is gone: the broker redelivers it (persistent
                // session) and the journal makes the duplicate harmless. A PUBACK now could
                // acknowledge a different message with the same packet id.
                continue;
            }
            match client.ack(&head.packet).await {
                Ok(()) => events.ack_sent(),
                Err(e) => events.ack_failed(&e),
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
