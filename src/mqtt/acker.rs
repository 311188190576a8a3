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

/// Which packets may be acknowledged, and in what order: the acker's bookkeeping, without I/O.
///
/// Packets are acknowledged in arrival order, each once its message is durable and every
/// message before it has been acknowledged or skipped. A packet that arrived on a connection
/// that is gone (an older epoch) is skipped: the broker redelivers it, and a PUBACK now could
/// acknowledge a different message with the same packet id. A dropped message blocks for good:
/// nothing waiting or arriving later is acknowledged.
pub(super) struct AckOrder<P> {
    /// `(seq, epoch, packet)` in arrival order.
    queue: VecDeque<(u64, u64, P)>,
    durable: BTreeSet<u64>,
    blocked: bool,
}

impl<P> Default for AckOrder<P> {
    fn default() -> Self {
        AckOrder {
            queue: VecDeque::new(),
            durable: BTreeSet::new(),
            blocked: false,
        }
    }
}

impl<P> AckOrder<P> {
    /// Message `seq` arrived on connection `epoch`; `packet` answers it.
    pub fn arrived(&mut self, seq: u64, epoch: u64, packet: P) {
        if !self.blocked {
            self.queue.push_back((seq, epoch, packet));
        }
    }

    /// The journal committed message `seq`.
    pub fn durable(&mut self, seq: u64) {
        if !self.blocked {
            self.durable.insert(seq);
        }
    }

    /// Message `seq` was dropped before it was durable: no more acknowledgements.
    pub fn dropped(&mut self) {
        self.blocked = true;
        self.queue.clear();
        self.durable.clear();
    }

    /// The next packet to acknowledge now that the current connection is `epoch`, if any,
    /// left in place until [`AckOrder::sent`] (sending it may have to wait). Stale packets in
    /// front of it are skipped here.
    pub fn peek(&mut self, epoch: u64) -> Option<&P> {
        while let Some(&(seq, arrived_on, _)) = self.queue.front() {
            if !self.durable.contains(&seq) {
                return None;
            }
            if arrived_on == epoch {
                return self.queue.front().map(|(_, _, packet)| packet);
            }
            self.durable.remove(&seq);
            self.queue.pop_front();
        }
        None
    }

    /// The packet [`AckOrder::peek`] gave was acknowledged.
    pub fn sent(&mut self) {
        if let Some((seq, _, _)) = self.queue.pop_front() {
            self.durable.remove(&seq);
        }
    }

    /// The next packet to acknowledge at `epoch`, taken out.
    #[cfg(test)]
    pub fn next(&mut self, epoch: u64) -> Option<P> {
        self.peek(epoch)?;
        let (seq, _, packet) = self.queue.pop_front().expect("peek saw it");
        self.durable.remove(&seq);
        Some(packet)
    }

    /// Packets still waiting for their message to be durable.
    pub fn waiting(&self) -> usize {
        self.queue.len()
    }
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
    let mut order: AckOrder<Packet> = AckOrder::default();
    let mut pending_open = true;
    // The client's request channel was full at the last PUBACK: try again shortly.
    let mut retry = false;
    loop {
        tokio::select! {
            biased;
            p = pending.recv(), if pending_open => match p {
                Some(p) => order.arrived(p.seq, p.epoch, p.packet),
                None => pending_open = false,
            },
            _ = tokio::time::sleep(RETRY), if retry => {}
            event = resolved.recv() => match event {
                // A refused message is a dead letter in the journal: durable all the same.
                Some(AckEvent::Durable(seq) | AckEvent::Refused(seq)) => order.durable(seq),
                Some(AckEvent::Dropped(seq)) => {
                    events.ack_dropped(seq);
                    order.dropped();
                }
                None => break,
            },
        }
        retry = false;
        // The epoch is read for each packet: a reconnect while one PUBACK is handed over makes
        // the next ones stale.
        while let Some(packet) = order.peek(epoch.load(Ordering::SeqCst)) {
            if !client.try_ack(packet) {
                retry = true;
                break;
            }
            order.sent();
            events.ack_sent();
        }
    }
    if order.waiting() > 0 {
        tracing::info!(
            unacknowledged = order.waiting(),
            "messages left unacknowledged for redelivery"
        );
    }
    let _ = client.disconnect().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything `next` gives at `epoch`, in order.
    fn drain(order: &mut AckOrder<&'static str>, epoch: u64) -> Vec<&'static str> {
        std::iter::from_fn(|| order.next(epoch)).collect()
    }

    // README, delivery guarantee 2: PUBACKs go out in arrival order, each only once its
    // message is durable.
    #[test]
    fn acks_go_out_in_arrival_order_once_every_earlier_message_is_durable() {
        let mut order = AckOrder::default();
        for (seq, packet) in [(1, "p1"), (2, "p2"), (3, "p3"), (4, "p4")] {
            order.arrived(seq, 0, packet);
        }
        assert!(drain(&mut order, 0).is_empty(), "nothing durable yet");
        order.durable(2);
        order.durable(3);
        assert!(
            drain(&mut order, 0).is_empty(),
            "2 and 3 wait for 1, which is not durable"
        );
        order.durable(1);
        assert_eq!(drain(&mut order, 0), ["p1", "p2", "p3"]);
        assert_eq!(order.waiting(), 1);
        order.durable(4);
        assert_eq!(drain(&mut order, 0), ["p4"]);
        assert_eq!(order.waiting(), 0);
        // Each packet once.
        order.durable(4);
        assert!(drain(&mut order, 0).is_empty());
    }

    // A packet of a connection that is gone is skipped, not acknowledged on the new one (its
    // packet id may name another message there), and does not hold back the ones after it.
    #[test]
    fn acks_of_a_dropped_connection_are_skipped() {
        let mut order = AckOrder::default();
        order.arrived(1, 0, "old-1");
        order.arrived(2, 0, "old-2");
        order.arrived(3, 1, "new-3");
        order.durable(1);
        order.durable(3);
        assert!(
            drain(&mut order, 1).is_empty(),
            "3 waits for 2, stale or not"
        );
        order.durable(2);
        assert_eq!(drain(&mut order, 1), ["new-3"]);
        assert_eq!(order.waiting(), 0);
        // Still the old connection: its packets go out.
        let mut order = AckOrder::default();
        order.arrived(1, 0, "p1");
        order.durable(1);
        assert_eq!(drain(&mut order, 0), ["p1"]);
    }

    // README, delivery guarantee 2: after a dropped message no later message is acknowledged
    // before a restart, durable or not, waiting or arriving afterwards.
    #[test]
    fn after_a_dropped_message_nothing_more_is_acknowledged() {
        let mut order = AckOrder::default();
        order.arrived(1, 0, "p1");
        order.arrived(2, 0, "p2");
        order.arrived(3, 0, "p3");
        order.durable(1);
        order.durable(3);
        assert_eq!(drain(&mut order, 0), ["p1"]);
        order.dropped();
        order.durable(2);
        assert!(drain(&mut order, 0).is_empty());
        order.arrived(4, 0, "p4");
        order.durable(4);
        assert!(drain(&mut order, 0).is_empty());
        assert_eq!(order.waiting(), 0, "nothing is held for acknowledgement");
    }

    // What the acker loop relies on: `peek` leaves the packet in place (its PUBACK may have to
    // wait for room) and only `sent` moves on to the next one.
    #[test]
    fn a_peeked_packet_stays_first_until_it_is_sent() {
        let mut order = AckOrder::default();
        order.arrived(1, 0, "p1");
        order.arrived(2, 0, "p2");
        order.durable(1);
        order.durable(2);
        assert_eq!(order.peek(0), Some(&"p1"));
        assert_eq!(order.peek(0), Some(&"p1"), "not sent yet");
        order.sent();
        assert_eq!(order.peek(0), Some(&"p2"));
        order.sent();
        assert_eq!(order.peek(0), None);
        assert_eq!(order.waiting(), 0);
    }

    /// A v3.1.1 publish with packet id `pkid`, as the broker delivers it at QoS 1.
    fn publish(pkid: u16) -> Packet {
        let mut p = rumqttc::Publish::new("t", rumqttc::QoS::AtLeastOnce, "x");
        p.pkid = pkid;
        Packet::V4(p)
    }

    // The acker itself, with the client's request channel in the test's hands: the PUBACKs
    // it queues are exactly those of durable (or refused) messages of the current connection,
    // each once and in arrival order, and it disconnects when the acks are gone. Time is
    // paused: an acker that never ends fails the test at once.
    #[tokio::test(start_paused = true)]
    async fn the_acker_queues_each_puback_once_in_arrival_order_then_disconnects() {
        let (requests, queued) = flume::bounded(16);
        let client = Client::V4(rumqttc::AsyncClient::from_senders(requests));
        let (resolved_tx, resolved) = mpsc::channel(8);
        let (pending_tx, pending) = mpsc::channel(8);
        let metrics = crate::metrics::Metrics::new();
        let events = Events::new(
            &metrics,
            crate::readiness::Readiness::default(),
            crate::config::MqttSettings::default().url,
        );
        // Message 1 came on the connection before this one (epoch 1).
        for (seq, epoch) in [(1, 0), (2, 1), (3, 1), (4, 1)] {
            pending_tx
                .send(Pending {
                    seq,
                    epoch,
                    packet: publish(seq as u16),
                })
                .await
                .unwrap();
        }
        for event in [
            AckEvent::Refused(3),
            AckEvent::Durable(2),
            AckEvent::Durable(1),
        ] {
            resolved_tx.send(event).await.unwrap();
        }
        drop((pending_tx, resolved_tx));
        let epoch = Arc::new(AtomicU64::new(1));
        tokio::time::timeout(
            std::time::Duration::from_secs(60),
            acker(client, resolved, pending, epoch, events),
        )
        .await
        .expect("the acker ends once every ack is gone");
        assert_eq!(
            queued.drain().collect::<Vec<_>>(),
            [
                rumqttc::Request::PubAck(rumqttc::PubAck::new(2)),
                rumqttc::Request::PubAck(rumqttc::PubAck::new(3)),
                rumqttc::Request::Disconnect(rumqttc::Disconnect),
            ],
            "1 is stale, 4 never became durable"
        );
        assert_eq!(metrics.acks_sent.get(), 2);
    }
}
