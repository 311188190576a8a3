//! Publishing the simulated park to a broker (the embedded one, or a real one for load tests
//! and site demos) with rumqttc, QoS 1.
//!
//! The event loop runs in its own task and only counts: connections, PUBACKs, sessions lost.
//! The publishing loop takes a permit from a semaphore before each publish and the event loop
//! gives it back on the PUBACK, so at most `max_inflight` messages wait for their
//! acknowledgement and the publishing loop never blocks the event loop (rumqttc's request
//! channel is larger than that bound). The session is persistent (stable client id,
//! clean session off), so messages in flight across a reconnect are sent again; if the
//! broker lost the session they cannot be, and they are counted as unacknowledged.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::config::{BrokerUrl, MqttSettings, Protocol};
use crate::mqtt::{self, Incoming};
use crate::shutdown::CancellationToken;

use super::{DemoError, Simulator};

/// What to publish, where, and for how long.
#[derive(Clone, Debug)]
pub struct PublishOptions {
    /// `mqtt://host[:port]` (port 1883 when absent).
    pub url: String,
    /// MQTT version to speak; the embedded broker has one listener for each.
    pub protocol: Protocol,
    /// Stable, so the broker keeps the session across reconnects.
    pub client_id: String,
    /// Noise seed: the same seed publishes the same values.
    pub seed: u64,
    /// Time between two messages of one station.
    pub interval: Duration,
    /// Stop after this long (`None`: only when told to stop).
    pub duration: Option<Duration>,
    /// How many copies of the park to simulate (`--copies N`); copies are named as in
    /// [`super::stations_toml_replicated`].
    pub replicas: u32,
    /// Only these stations (`park/site/station`), e.g. those a stations file configures;
    /// `None`: every station of the park.
    pub only: Option<std::collections::BTreeSet<String>>,
    /// At most this many messages a second over all stations (`None`: as fast as PUBACKs
    /// come back).
    pub rate: Option<f64>,
    /// Most messages waiting for their PUBACK.
    pub max_inflight: u16,
    /// After stopping, how long to wait for outstanding PUBACKs.
    pub drain_timeout: Duration,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            url: "mqtt://127.0.0.1:1883".into(),
            protocol: Protocol::V5,
            client_id: "quantrac-simulator".into(),
            seed: 1,
            interval: Duration::from_secs(5),
            duration: None,
            replicas: 1,
            only: None,
            rate: None,
            max_inflight: 100,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// What happened to the messages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Handed to the MQTT client.
    pub sent: u64,
    /// Acknowledged by the broker (PUBACK).
    pub acked: u64,
    /// Sent but never acknowledged: still in flight at the end, or lost with a session the
    /// broker forgot.
    pub unacked: u64,
    /// Connection attempts or connections that failed (each one retried).
    pub connection_errors: u64,
    pub elapsed: Duration,
}

/// Counters shared by the publishing loop and the event-loop task.
struct Shared {
    sent: AtomicU64,
    acked: AtomicU64,
    lost: AtomicU64,
    connection_errors: AtomicU64,
    connected_before: AtomicBool,
    closing: AtomicBool,
    permits: Semaphore,
}

impl Shared {
    fn outstanding(&self) -> u64 {
        let done = self.acked.load(Ordering::SeqCst) + self.lost.load(Ordering::SeqCst);
        self.sent.load(Ordering::SeqCst).saturating_sub(done)
    }

    fn on_event(&self, seen: Seen) {
        match seen {
            Seen::ConnAck { session_present } => {
                let reconnect = self.connected_before.swap(true, Ordering::SeqCst);
                if reconnect && !session_present {
                    // rumqttc drops what was in flight when the session is new: those
                    // messages will never be acknowledged.
                    let lost = self.outstanding();
                    if lost > 0 {
                        tracing::warn!(lost, "broker forgot the session; in-flight messages lost");
                        self.lost.fetch_add(lost, Ordering::SeqCst);
                        self.permits
                            .add_permits(usize::try_from(lost).unwrap_or(usize::MAX));
                    }
                }
            }
            Seen::PubAck => {
                self.acked.fetch_add(1, Ordering::SeqCst);
                self.permits.add_permits(1);
            }
        }
    }

    fn on_error(&self, error: &dyn std::fmt::Display) -> bool {
        if self.closing.load(Ordering::SeqCst) {
            return false;
        }
        let n = self.connection_errors.fetch_add(1, Ordering::SeqCst) + 1;
        if n == 1 || n.is_multiple_of(20) {
            tracing::warn!(error.message = %error, errors = n, "simulator: MQTT connection failed; retrying");
        }
        true
    }
}

/// Events of either protocol that the counters care about.
enum Seen {
    ConnAck { session_present: bool },
    PubAck,
}

/// Builds the session (the same code as the service's MQTT source) and starts the task that
/// drives it, counting connections and PUBACKs. `tcp://` is taken as `mqtt://`.
fn connect(
    opts: &PublishOptions,
    shared: Arc<Shared>,
) -> Result<(mqtt::Client, JoinHandle<()>), DemoError> {
    let url = match opts.url.strip_prefix("tcp://") {
        Some(rest) => format!("mqtt://{rest}"),
        None => opts.url.clone(),
    };
    let url = BrokerUrl::parse(&url).map_err(|reason| DemoError::Url {
        url: opts.url.clone(),
        reason,
    })?;
    let settings = MqttSettings {
        url,
        protocol: opts.protocol,
        client_id: opts.client_id.clone(),
        keep_alive_s: 30,
        session_expiry_s: 3600,
        ..MqttSettings::default()
    };
    let (client, mut events) = mqtt::connect_publisher(&settings, opts.max_inflight)
        .map_err(|e| DemoError::Client(e.to_string()))?;
    let task = tokio::spawn(async move {
        let mut backoff = mqtt::Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            match events.poll().await {
                Ok(Incoming::Connected { session_present }) => {
                    backoff.reset();
                    shared.on_event(Seen::ConnAck { session_present });
                }
                Ok(Incoming::PubAck) => shared.on_event(Seen::PubAck),
                Ok(Incoming::Closed) => break,
                Ok(_) => {}
                Err(e) => {
                    if !shared.on_error(&e) {
                        break;
                    }
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    });
    Ok((client, task))
}

/// Publishes the simulated park to the broker at `opts.url`, QoS 1, every `opts.interval`,
/// until `stop` is cancelled or `opts.duration` has passed; then waits up to
/// `opts.drain_timeout` for outstanding PUBACKs, disconnects and reports the counts.
pub async fn publish(
    opts: PublishOptions,
    stop: CancellationToken,
) -> Result<PublishReport, DemoError> {
    if opts.interval.is_zero() {
        return Err(DemoError::Options("interval must be above zero".into()));
    }
    if let Some(rate) = opts.rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(DemoError::Options(format!(
                "rate {rate} must be a positive number"
            )));
        }
    }
    let started = Instant::now();
    let shared = Arc::new(Shared {
        sent: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        lost: AtomicU64::new(0),
        connection_errors: AtomicU64::new(0),
        connected_before: AtomicBool::new(false),
        closing: AtomicBool::new(false),
        permits: Semaphore::new(usize::from(opts.max_inflight.max(1))),
    });
    let (client, events) = connect(&opts, shared.clone())?;
    let mut sim = Simulator::with_replicas(opts.seed, opts.interval, opts.replicas);
    if let Some(only) = &opts.only {
        sim.retain(only);
    }
    let deadline = opts.duration.map(|d| tokio::time::Instant::now() + d);
    let until_deadline = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        r = publish_loop(&opts, &client, &shared, &mut sim) => r,
        () = stop.cancelled() => Ok(()),
        () = until_deadline => Ok(()),
    };

    // Drain: give outstanding messages their chance to be acknowledged.
    let drain_until = Instant::now() + opts.drain_timeout;
    while shared.outstanding() > 0 && Instant::now() < drain_until && !events.is_finished() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shared.closing.store(true, Ordering::SeqCst);
    // The event loop may already be gone; nothing is left to tell the broker then.
    let _ = client.disconnect().await;
    let mut events = events;
    if tokio::time::timeout(Duration::from_secs(2), &mut events)
        .await
        .is_err()
    {
        events.abort();
    }
    result?;

    let sent = shared.sent.load(Ordering::SeqCst);
    let acked = shared.acked.load(Ordering::SeqCst);
    let report = PublishReport {
        sent,
        acked,
        unacked: sent.saturating_sub(acked),
        connection_errors: shared.connection_errors.load(Ordering::SeqCst),
        elapsed: started.elapsed(),
    };
    tracing::info!(
        sent = report.sent,
        acked = report.acked,
        unacked = report.unacked,
        connection_errors = report.connection_errors,
        "simulator finished"
    );
    Ok(report)
}

/// Every interval, publishes what the simulator says is due, paced by `rate` and bounded by
/// the in-flight permits. Runs until cancelled by the caller's `select!`.
async fn publish_loop(
    opts: &PublishOptions,
    client: &mqtt::Client,
    shared: &Shared,
    sim: &mut Simulator,
) -> Result<(), DemoError> {
    let mut ticks = tokio::time::interval(opts.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let spacing = opts.rate.map(|r| Duration::from_secs_f64(1.0 / r));
    let mut next_slot = tokio::time::Instant::now();
    loop {
        ticks.tick().await;
        let now_ms = chrono::Utc::now().timestamp_millis();
        for (topic, payload) in sim.messages_at(now_ms) {
            if let Some(spacing) = spacing {
                next_slot = next_slot.max(tokio::time::Instant::now());
                tokio::time::sleep_until(next_slot).await;
                next_slot += spacing;
            }
            let permit = shared
                .permits
                .acquire()
                .await
                .map_err(|e| DemoError::Client(e.to_string()))?;
            permit.forget();
            shared.sent.fetch_add(1, Ordering::SeqCst);
            client
                .publish(topic, payload)
                .await
                .map_err(|e| DemoError::Client(e.to_string()))?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::start_broker_listeners;

    /// Counts what a subscriber receives on `env/#`.
    async fn subscriber(addr: std::net::SocketAddr) -> (Arc<AtomicU64>, rumqttc::AsyncClient) {
        let opts = rumqttc::MqttOptions::new("counter", "127.0.0.1", addr.port());
        let (client, mut events) = rumqttc::AsyncClient::new(opts, 10);
        let count = Arc::new(AtomicU64::new(0));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let c = count.clone();
        tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Incoming::SubAck(_))) => {
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Incoming::Publish(p))) => {
                        assert!(p.topic.starts_with("env/"));
                        c.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        client
            .subscribe("env/#", rumqttc::QoS::AtLeastOnce)
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .unwrap()
            .unwrap();
        (count, client)
    }

    async fn run_for(protocol: Protocol, port: u16, replicas: u32) -> PublishReport {
        let opts = PublishOptions {
            url: format!("mqtt://127.0.0.1:{port}"),
            protocol,
            client_id: format!("sim-{protocol:?}"),
            interval: Duration::from_millis(200),
            duration: Some(Duration::from_millis(900)),
            replicas,
            ..PublishOptions::default()
        };
        tokio::time::timeout(
            Duration::from_secs(30),
            publish(opts, CancellationToken::new()),
        )
        .await
        .unwrap()
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn publishes_the_park_and_every_message_is_acknowledged() {
        let addrs = start_broker_listeners(0).unwrap();
        let (received, _sub) = subscriber(addrs.v311).await;

        let v5 = run_for(Protocol::V5, addrs.v5.port(), 1).await;
        // 5 ticks in 0.9 s at 200 ms, all six stations on the first (the silent one stops at 3).
        assert!(v5.sent >= 20, "{v5:?}");
        assert_eq!((v5.acked, v5.unacked), (v5.sent, 0), "{v5:?}");

        // (MQTT 3.1.1 publishing is covered by the broker's own round-trip test.)
        let total = v5.sent;
        let deadline = Instant::now() + Duration::from_secs(10);
        while received.load(Ordering::SeqCst) < total && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(received.load(Ordering::SeqCst), total);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stop_ends_publishing_and_an_absent_broker_leaves_messages_unacknowledged() {
        // Nothing listens on this port: every publish stays unacknowledged, none is lost
        // silently.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let stop = CancellationToken::new();
        let opts = PublishOptions {
            url: format!("mqtt://127.0.0.1:{port}"),
            interval: Duration::from_millis(100),
            drain_timeout: Duration::from_millis(200),
            ..PublishOptions::default()
        };
        let run = tokio::spawn(publish(opts, stop.clone()));
        tokio::time::sleep(Duration::from_millis(450)).await;
        stop.cancel();
        let report = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(report.sent > 0);
        assert_eq!(report.acked, 0);
        assert_eq!(report.unacked, report.sent);
        assert!(report.connection_errors > 0);
    }

    #[tokio::test]
    async fn bad_options_are_refused() {
        let opts = PublishOptions {
            url: "http://x".into(),
            ..PublishOptions::default()
        };
        assert!(matches!(
            publish(opts, CancellationToken::new()).await,
            Err(DemoError::Url { .. })
        ));
        let opts = PublishOptions {
            rate: Some(0.0),
            ..PublishOptions::default()
        };
        assert!(matches!(
            publish(opts, CancellationToken::new()).await,
            Err(DemoError::Options(_))
        ));
    }
}
