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
use tokio_util::sync::CancellationToken;

use crate::config::MqttSettings;
use crate::metrics::Metrics;
use crate::pipeline::{Ack, AckEvent, Envelope};
use crate::readiness::Readiness;

pub use backoff::Backoff;
use session::Packet;
pub use session::{connect_publisher, Client, ClientClosed, ConnectionError, Error, Incoming};

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

/// Messages between the source and the journal, at most: each [`Ack`] holds a slot of a
/// channel this large from the moment its message is received until the journal resolves it.
/// The broker sends no more than this unacknowledged (v5 receive maximum); the bound only
/// bites after a reconnect, while messages of the lost connection are still in the pipeline,
/// and then the poll loop waits for them to be committed.
fn acks_in_flight(s: &MqttSettings) -> usize {
    usize::from(s.receive_maximum.max(1))
}

/// Runs the source until `stop` is cancelled and every forwarded message was acknowledged or
/// given up. `filters` are the subscriptions (from the topic templates). Refused credentials
/// end the retries (said on `/readyz` and in the log, once); the source then idles until
/// `stop`, so the service stays up to say why it is not ready.
pub async fn run(
    settings: &MqttSettings,
    filters: Vec<String>,
    out: mpsc::Sender<Envelope>,
    metrics: Metrics,
    readiness: Readiness,
    stop: CancellationToken,
) -> Result<(), Error> {
    let (client, mut eventloop) = session::connect(settings)?;
    readiness.not_ready(COMPONENT, format!("connecting to {}", settings.url));
    let bound = acks_in_flight(settings);
    let (ack_tx, ack_rx) = mpsc::channel::<AckEvent>(bound);
    let (pending_tx, pending_rx) = mpsc::channel::<Pending>(bound);
    let epoch = Arc::new(AtomicU64::new(0));
    let mut acker = tokio::spawn(acker(
        client.clone(),
        ack_rx,
        pending_rx,
        epoch.clone(),
        metrics.clone(),
        readiness.clone(),
    ));

    // `Some` while taking messages; all three are dropped together when `stop` fires.
    let mut intake = Some((out, ack_tx, pending_tx));
    let mut seq: u64 = 0;
    // A SUBSCRIBE is on its way (or granted) for the current connection.
    let mut subscribe_sent = false;
    let mut backoff = Backoff::new(
        Duration::from_millis(settings.reconnect_min_ms),
        Duration::from_millis(settings.reconnect_max_ms),
    );
    let mut down_since: Option<tokio::time::Instant> = None;

    loop {
        let event = tokio::select! {
            e = eventloop.poll() => e,
            // Shutdown: stop forwarding. Later publishes stay unacknowledged in the broker
            // session; the acker ends once every forwarded message was resolved or dropped.
            _ = stop.cancelled(), if intake.is_some() => {
                tracing::info!("MQTT source stopping: no new messages taken");
                readiness.not_ready(COMPONENT, "shutting down");
                intake = None;
                continue;
            }
            done = &mut acker, if intake.is_none() => {
                if let Err(e) = done {
                    tracing::error!(error.message = %e, "MQTT acker task failed");
                }
                // The acker sent the last PUBACKs and DISCONNECT: poll until they are out (the
                // connection then closes). `app` bounds this by the shutdown budget.
                while eventloop.poll().await.is_ok() {}
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
                subscribe_sent = intake.is_some() && client.try_subscribe(&filters);
                if intake.is_some() && !subscribe_sent {
                    tracing::warn!("MQTT request channel full; subscribing on the next event");
                }
                readiness.not_ready(COMPONENT, "waiting for the broker to grant subscriptions");
            }
            Ok(Incoming::Subscribed { ok }) => {
                if ok {
                    if intake.is_some() {
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
                let Some((out, ack_tx, pending_tx)) = &intake else {
                    continue; // shutting down: leave it to the broker
                };
                let received_at_ms = chrono::Utc::now().timestamp_millis();
                let permit = match ack_tx.clone().try_reserve_owned() {
                    Ok(permit) => permit,
                    // Only after a reconnect: the lost connection's messages are still on
                    // their way to the journal. Wait for them rather than hold more.
                    Err(_) => match ack_tx.clone().reserve_owned().await {
                        Ok(permit) => permit,
                        Err(_) => break, // the acker is gone: nothing can be acknowledged
                    },
                };
                seq += 1;
                let pending = Pending {
                    seq,
                    epoch: epoch.load(Ordering::SeqCst),
                    packet: msg.packet,
                };
                if pending_tx.send(pending).await.is_err() {
                    break;
                }
                let envelope = Envelope {
                    topic: msg.topic,
                    payload: msg.payload.to_vec(),
                    received_at_ms,
                    ack: Ack::new(seq, permit),
                };
                if out.send(envelope).await.is_err() {
                    tracing::error!("pipeline closed; MQTT source stopping");
                    break;
                }
            }
            Ok(Incoming::Other | Incoming::PubAck | Incoming::Closed) => {
                if !subscribe_sent && intake.is_some() && metrics.mqtt_connected.get() == 1 {
                    // A subscribe that did not fit the request channel earlier.
                    subscribe_sent = client.try_subscribe(&filters);
                }
            }
            Err(e) => {
                metrics.mqtt_connected.set(0);
                if intake.is_none() {
                    break; // shutting down and the connection is gone: nothing left to flush
                }
                subscribe_sent = false;
                if e.is_permanent() {
                    refused(settings, &e, &readiness);
                    stop.cancelled().await;
                    break;
                }
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
                    _ = stop.cancelled() => {}
                }
            }
        }
    }
    metrics.mqtt_connected.set(0);
    acker.abort();
    Ok(())
}

/// The broker refused this configuration: said once, in the log and on `/readyz`.
fn refused(settings: &MqttSettings, e: &ConnectionError, readiness: &Readiness) {
    tracing::error!(
        error.message = %e,
        url = %settings.url,
        client_id = %settings.client_id,
        "MQTT broker refused quantrac; not retrying: fix mqtt.username, mqtt.password (or password_file) or mqtt.client_id and restart"
    );
    readiness.not_ready(
        COMPONENT,
        format!("{e} ({}); not retrying until restarted", settings.url),
    );
}

/// Sends PUBACKs in arrival order for durable messages. Ends when every `Ack` is gone (the
/// source dropped its senders and the journal resolved or dropped the rest), then disconnects.
///
/// A dropped `Ack` stops acknowledging for good: the messages after it may be durable, but a
/// PUBACK for them would let the broker forget them while the one before is lost. It is
/// counted, logged and shown on `/readyz`; it only happens when a stage failed or the service
/// stopped with messages queued, both of which end the run, and the broker redelivers.
async fn acker(
    client: Client,
    mut events: mpsc::Receiver<AckEvent>,
    mut pending: mpsc::Receiver<Pending>,
    epoch: Arc<AtomicU64>,
    metrics: Metrics,
    readiness: Readiness,
) {
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut durable: BTreeSet<u64> = BTreeSet::new();
    let mut pending_open = true;
    let mut blocked_at: Option<u64> = None;
    loop {
        tokio::select! {
            biased;
            p = pending.recv(), if pending_open => match p {
                Some(p) => queue.push_back(p),
                None => pending_open = false,
            },
            event = events.recv() => match event {
                Some(AckEvent::Durable(seq)) => { durable.insert(seq); }
                Some(AckEvent::Dropped(seq)) => {
                    metrics.acks_dropped.inc();
                    if blocked_at.is_none() {
                        tracing::error!(seq, "a message was dropped before it was durable; no more PUBACKs until restart (the broker redelivers)");
                        readiness.not_ready(COMPONENT, format!("message #{seq} was dropped before it was durable; no more acknowledgements until restarted"));
                        blocked_at = Some(seq);
                    }
                }
                None => break,
            },
        }
        if blocked_at.is_some() {
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
