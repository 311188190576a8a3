//! The MQTT source: one persistent session (stable client id, clean start off, QoS 1), manual
//! acknowledgements, reconnects with capped exponential backoff and jitter.
//!
//! Two tasks, because rumqttc's event loop only moves while it is polled:
//! - the **poll loop** drives the connection, turns each publish into an [`Envelope`] (never
//!   blocking on the client's request channel) and hands the packet to the acker;
//! - the **acker** sends PUBACKs in arrival order once the journal has resolved each message's
//!   [`Ack`]. It may wait on the request channel; the poll loop keeps draining it.
//!
//! Unacknowledged messages are bounded by the v5 receive maximum (v3.1.1: the broker's
//! in-flight limit), and the pipeline's first channel is larger than that, so the poll loop never
//! waits on the pipeline in normal operation. A message whose ack is never resolved (shutdown,
//! failed commit) is never acknowledged: the broker delivers it again.

mod backoff;
mod session;

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::MqttSettings;
use crate::metrics::Metrics;
use crate::pipeline::{Ack, Envelope};
use crate::readiness::Readiness;
use crate::shutdown::StopListener;

pub use backoff::Backoff;
pub use session::Error;
use session::{Client, Incoming, Packet};

/// This stage's key in [`Readiness`].
pub const COMPONENT: &str = "mqtt";

/// A packet waiting for its ack, tagged with the connection it arrived on.
struct Pending {
    seq: u64,
    epoch: u64,
    packet: Packet,
}

/// Capacity of the channel from the source into the pipeline: above the most unacknowledged
/// messages the broker may send, so the poll loop does not wait.
pub fn channel_capacity(s: &MqttSettings) -> usize {
    usize::from(s.receive_maximum) + 256
}

/// Runs the source until `stop` fires and every forwarded message was acknowledged or given up.
/// `filters` are the subscriptions (from the topic templates).
pub async fn run(
    settings: &MqttSettings,
    filters: Vec<String>,
    out: mpsc::Sender<Envelope>,
    metrics: Metrics,
    readiness: Readiness,
    mut stop: StopListener,
) -> Result<(), Error> {
    let (client, mut eventloop) = session::connect(settings)?;
    readiness.not_ready(COMPONENT, format!("connecting to {}", settings.url));
    let (ack_tx, ack_rx) = mpsc::unbounded_channel::<u64>();
    let (pending_tx, pending_rx) = mpsc::unbounded_channel::<Pending>();
    let epoch = Arc::new(AtomicU64::new(0));
    let acker = tokio::spawn(acker(
        client.clone(),
        ack_rx,
        pending_rx,
        epoch.clone(),
        metrics.clone(),
    ));

    let mut out = Some(out);
    let mut ack_tx = Some(ack_tx);
    let mut pending_tx = Some(pending_tx);
    let mut seq: u64 = 0;
    // A SUBSCRIBE is on its way (or granted) for the current connection.
    let mut subscribe_sent = false;
    let mut backoff = Backoff::new(
        Duration::from_millis(settings.reconnect_min_ms),
        Duration::from_millis(settings.reconnect_max_ms),
    );
    let mut down_since: Option<tokio::time::Instant> = None;
    let mut acker = Some(acker);
    let mut drain_deadline: Option<tokio::time::Instant> = None;

    loop {
        // Shutdown: stop forwarding. Later publishes stay unacknowledged in the broker session.
        if stop.is_stopped() && out.is_some() {
            tracing::info!("MQTT source stopping: no new messages taken");
            readiness.not_ready(COMPONENT, "shutting down");
            out = None;
            ack_tx = None;
            pending_tx = None;
            drain_deadline = Some(tokio::time::Instant::now() + Duration::from_secs(20));
        }
        let event = tokio::select! {
            e = eventloop.poll() => e,
            _ = stop.stopped(), if out.is_some() => continue,
            done = async { acker.as_mut().expect("guarded by is_some").await }, if acker.is_some() && out.is_none() => {
                acker = None;
                if let Err(e) = done {
                    tracing::error!(error.message = %e, "MQTT acker task failed");
                }
                // The acker sent the last PUBACKs and DISCONNECT; poll until they are flushed.
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while eventloop.poll().await.is_ok() {}
                }).await;
                break;
            }
            _ = tokio::time::sleep_until(drain_deadline.unwrap_or_else(far_future)), if drain_deadline.is_some() => {
                tracing::warn!("MQTT acker did not finish in time; unacknowledged messages will be redelivered");
                break;
            }
        };
        match event {
            Ok(Incoming::Connected { session_present }) => {
                let e = epoch.fetch_add(1, Ordering::SeqCst) + 1;
                metrics.mqtt_connected.set(1);
                backoff.reset();
                if let Some(since) = down_since.take() {
                    tracing::info!(
                        down_s = since.elapsed().as_secs_f64(),
                        session_present,
                        "MQTT reconnected"
                    );
                } else {
                    tracing::info!(url = %settings.url, session_present, epoch = e, "MQTT connected");
                }
                // Without a kept session the broker forgot our subscriptions; with one it
                // keeps them, but subscribing again is harmless and covers changed topics.
                subscribe_sent = out.is_some() && client.try_subscribe(&filters);
                if out.is_some() && !subscribe_sent {
                    tracing::warn!("MQTT request channel full; subscribing on the next event");
                }
                readiness.not_ready(COMPONENT, "waiting for the broker to grant subscriptions");
            }
            Ok(Incoming::Subscribed { ok }) => {
                if ok {
                    if out.is_some() {
                        readiness.ready(COMPONENT);
                    }
                    tracing::info!(filters = ?filters, "MQTT subscribed at QoS 1");
                } else {
                    readiness.not_ready(COMPONENT, "broker refused a subscription");
                    tracing::error!(filters = ?filters, "the broker refused a subscription (check its ACL)");
                }
            }
            Ok(Incoming::Publish(msg)) => {
                metrics.messages_received.inc();
                let (Some(out), Some(ack_tx), Some(pending_tx)) = (&out, &ack_tx, &pending_tx)
                else {
                    continue; // shutting down: leave it to the broker
                };
                seq += 1;
                let current = epoch.load(Ordering::SeqCst);
                let _ = pending_tx.send(Pending {
                    seq,
                    epoch: current,
                    packet: msg.packet,
                });
                let envelope = Envelope {
                    topic: msg.topic,
                    payload: msg.payload.to_vec(),
                    received_at_ms: chrono::Utc::now().timestamp_millis(),
                    ack: Ack::new(seq, ack_tx.clone()),
                };
                if out.send(envelope).await.is_err() {
                    tracing::error!("pipeline closed; MQTT source stopping");
                    break;
                }
            }
            Ok(Incoming::Other) => {
                if !subscribe_sent && out.is_some() && metrics.mqtt_connected.get() == 1 {
                    // A subscribe that did not fit the request channel earlier.
                    subscribe_sent = client.try_subscribe(&filters);
                }
            }
            Err(e) => {
                metrics.mqtt_connected.set(0);
                if out.is_none() {
                    break; // shutting down and the connection is gone: nothing left to flush
                }
                subscribe_sent = false;
                readiness.not_ready(COMPONENT, format!("not connected to {}: {e}", settings.url));
                let delay = backoff.next_delay();
                if down_since.is_none() {
                    down_since = Some(tokio::time::Instant::now());
                    tracing::warn!(error.message = %e, url = %settings.url, "MQTT connection lost; reconnecting with backoff");
                } else {
                    tracing::debug!(error.message = %e, retry_in_ms = delay.as_millis() as u64, "MQTT reconnect failed");
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.stopped() => {}
                }
            }
        }
    }
    metrics.mqtt_connected.set(0);
    if let Some(a) = acker {
        a.abort();
    }
    Ok(())
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400 * 365)
}

/// Sends PUBACKs in arrival order for resolved messages. Ends when every `Ack` is gone (the
/// source dropped its sender and the journal resolved or dropped the rest), then disconnects.
async fn acker(
    client: Client,
    mut acks: mpsc::UnboundedReceiver<u64>,
    mut pending: mpsc::UnboundedReceiver<Pending>,
    epoch: Arc<AtomicU64>,
    metrics: Metrics,
) {
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut resolved: BTreeSet<u64> = BTreeSet::new();
    let mut pending_open = true;
    loop {
        tokio::select! {
            biased;
            p = pending.recv(), if pending_open => match p {
                Some(p) => queue.push_back(p),
                None => pending_open = false,
            },
            seq = acks.recv() => match seq {
                Some(seq) => { resolved.insert(seq); }
                None => break,
            },
        }
        while let Some(head) = queue.front() {
            if !resolved.remove(&head.seq) {
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
                Ok(()) => metrics.acks_sent.inc(),
                Err(e) => {
                    tracing::warn!(error.message = %e, "PUBACK not sent; the broker will redeliver")
                }
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
