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

mod acker;
mod backoff;
mod events;
mod session;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::MqttSettings;
use crate::metrics::Metrics;
use crate::pipeline::{Ack, AckEvent, Envelope};
use crate::readiness::Readiness;

use acker::{acker, Pending};
pub use backoff::Backoff;
use events::Events;
pub use session::{connect_publisher, Client, ClientClosed, ConnectionError, Error, Incoming};

/// This stage's key in [`Readiness`].
pub const COMPONENT: &str = "mqtt";

/// A connection that stayed up this long resets the reconnect backoff.
const STABLE_CONNECTION: Duration = Duration::from_secs(10);

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

/// Whether the backoff starts afresh after losing a connection that was up for `up_for`
/// (`None`: it never came up). Only after a connection that held: one that drops at once (a
/// session taken over, a broker refusing us after the CONNACK) keeps the delay growing instead
/// of reconnecting in a tight loop, and so does a takeover, however long the session held.
fn backs_off_afresh(up_for: Option<Duration>, e: &ConnectionError) -> bool {
    up_for.is_some_and(|d| d >= STABLE_CONNECTION) && *e != ConnectionError::TakenOver
}

/// Whether a lost connection had just been made: up, but for less than [`STABLE_CONNECTION`]
/// (three in a row is how a session taken over looks under MQTT 3.1.1).
fn dropped_at_once(up_for: Option<Duration>) -> bool {
    up_for.is_some_and(|d| d < STABLE_CONNECTION)
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
    let mut events = Events::new(&metrics, readiness, settings.url.clone());
    events.connecting();
    let bound = acks_in_flight(settings);
    let (ack_tx, ack_rx) = mpsc::channel::<AckEvent>(bound);
    let (pending_tx, pending_rx) = mpsc::channel::<Pending>(bound);
    let epoch = Arc::new(AtomicU64::new(0));
    let mut acker = tokio::spawn(acker(
        client.clone(),
        ack_rx,
        pending_rx,
        epoch.clone(),
        events.clone(),
    ));

    // `Some` while taking messages; all three are dropped together when `stop` fires.
    let mut intake = Some((out, ack_tx, pending_tx));
    let mut seq: u64 = 0;
    // A SUBSCRIBE is on its way (or granted) for the current connection.
    let mut subscribe_sent = false;
    let mut connected_at: Option<tokio::time::Instant> = None;
    let mut backoff = Backoff::new(
        Duration::from_millis(settings.reconnect_min_ms),
        Duration::from_millis(settings.reconnect_max_ms),
    );

    loop {
        let event = tokio::select! {
            e = eventloop.poll() => e,
            // Shutdown: stop forwarding. Later publishes stay unacknowledged in the broker
            // session; the acker ends once every forwarded message was resolved or dropped.
            _ = stop.cancelled(), if intake.is_some() => {
                events.stopping();
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
                connected_at = Some(tokio::time::Instant::now());
                events.connected(session_present, e);
                // Without a kept session the broker forgot our subscriptions; with one it
                // keeps them, but subscribing again is harmless and covers changed topics.
                subscribe_sent = intake.is_some() && client.try_subscribe(&filters);
                if intake.is_some() && !subscribe_sent {
                    tracing::debug!("MQTT request channel full; subscribing on the next event");
                }
            }
            Ok(Incoming::Subscribed { ok: true }) => {
                events.subscribed(&filters, intake.is_some());
            }
            Ok(Incoming::Subscribed { ok: false }) => events.subscription_refused(&filters),
            Ok(Incoming::Publish(msg)) => {
                events.received();
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
                let envelope = Envelope::received(
                    msg.topic,
                    &msg.payload,
                    received_at_ms,
                    Ack::new(seq, permit),
                    settings.max_payload_bytes,
                );
                if out.send(envelope).await.is_err() {
                    tracing::error!("pipeline closed; MQTT source stopping");
                    break;
                }
            }
            Ok(Incoming::Other | Incoming::PubAck | Incoming::Closed) => {
                if !subscribe_sent && intake.is_some() && events.is_connected() {
                    // A subscribe that did not fit the request channel earlier.
                    subscribe_sent = client.try_subscribe(&filters);
                }
            }
            Err(e) => {
                if intake.is_none() {
                    break; // shutting down and the connection is gone: nothing left to flush
                }
                subscribe_sent = false;
                if e.is_permanent() {
                    events.refused(&e, &settings.client_id);
                    stop.cancelled().await;
                    break;
                }
                let up_for = connected_at.take().map(|t| t.elapsed());
                if backs_off_afresh(up_for, &e) {
                    backoff.reset();
                }
                let delay = backoff.next_delay();
                events.disconnected(&e, delay, dropped_at_once(up_for), &settings.client_id);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.cancelled() => {}
                }
            }
        }
    }
    events.stopped();
    acker.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_channels_hold_what_the_broker_may_send_unacknowledged() {
        let mut s = MqttSettings {
            receive_maximum: 1000,
            ..MqttSettings::default()
        };
        assert_eq!(acks_in_flight(&s), 1000);
        // The pipeline's channel has room beyond it, so the poll loop does not wait.
        assert_eq!(channel_capacity(&s), 1256);
        s.receive_maximum = 1;
        assert_eq!((acks_in_flight(&s), channel_capacity(&s)), (1, 257));
    }

    #[test]
    fn the_backoff_starts_afresh_only_after_a_connection_that_held_and_was_not_taken_over() {
        let lost = ConnectionError::Network("reset".into());
        assert!(backs_off_afresh(Some(STABLE_CONNECTION), &lost));
        assert!(!backs_off_afresh(
            Some(STABLE_CONNECTION - Duration::from_millis(1)),
            &lost
        ));
        assert!(!backs_off_afresh(None, &lost), "never connected");
        // The same boundary decides a connection that dropped at once.
        assert!(dropped_at_once(Some(
            STABLE_CONNECTION - Duration::from_millis(1)
        )));
        assert!(!dropped_at_once(Some(STABLE_CONNECTION)));
        assert!(!dropped_at_once(None), "never connected: not a drop");
        assert!(!backs_off_afresh(
            Some(STABLE_CONNECTION * 10),
            &ConnectionError::TakenOver
        ));
    }
}
