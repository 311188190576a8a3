//! The embedded MQTT broker (rumqttd) for `quantrac demo`: no external service to install.
//!
//! rumqttd serves one protocol per listener, so the broker gets two on 127.0.0.1: MQTT v5 and
//! MQTT 3.1.1, sharing one router (a v3.1.1 publisher reaches a v5 subscriber). It runs on its
//! own threads for the life of the process; there is no stop, a demo ends with its process.
//!
//! rumqttd logs through `tracing` like quantrac (and logs every client disconnect at error
//! level); [`QUIET_BROKER_LOG`] is the filter directive that keeps it quiet.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use super::DemoError;

/// Filter directive that silences rumqttd's own log; add it to the default filter when
/// `RUST_LOG` is not set.
pub const QUIET_BROKER_LOG: &str = "rumqttd=off";

/// How long the broker's listeners get to come up.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// Where the embedded broker listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrokerAddrs {
    /// MQTT v5 (`mqtt.protocol = "v5"`).
    pub v5: SocketAddr,
    /// MQTT 3.1.1 (`mqtt.protocol = "v3.1.1"`).
    pub v311: SocketAddr,
}

/// Starts the embedded broker with its MQTT v5 listener on 127.0.0.1:`port` (0 = a free
/// port) and returns that address. A v3.1.1 listener runs beside it on a free port; use
/// [`start_broker_listeners`] to know or choose it.
pub fn start_broker(port: u16) -> Result<SocketAddr, DemoError> {
    start_broker_listeners(port, 0).map(|a| a.v5)
}

/// Starts the embedded broker with an MQTT v5 listener on `v5_port` and an MQTT 3.1.1
/// listener on `v311_port` (0 = a free port), and returns once both accept connections.
pub fn start_broker_listeners(v5_port: u16, v311_port: u16) -> Result<BrokerAddrs, DemoError> {
    // Hold both probes at once so a port-0 pick cannot return the same port twice.
    let v5_probe = reserve(v5_port)?;
    let v311_probe = reserve(v311_port)?;
    let addrs = BrokerAddrs {
        v5: v5_probe.local_addr().map_err(DemoError::Bind)?,
        v311: v311_probe.local_addr().map_err(DemoError::Bind)?,
    };
    drop((v5_probe, v311_probe));

    let config = broker_config(addrs);
    let mut broker = Broker::new(config);
    thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error.message = %e, "embedded MQTT broker stopped");
            }
        })
        .map_err(DemoError::Bind)?;

    let deadline = Instant::now() + READY_WITHIN;
    for addr in [addrs.v5, addrs.v311] {
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if Instant::now() >= deadline {
                return Err(DemoError::BrokerNotListening(addr));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
    tracing::info!(v5 = %addrs.v5, v311 = %addrs.v311, "embedded MQTT broker listening");
    Ok(addrs)
}

/// Binds 127.0.0.1:`port` to learn (or check) the port; the caller drops it before rumqttd
/// binds, so a taken port is reported here rather than logged inside rumqttd.
fn reserve(port: u16) -> Result<TcpListener, DemoError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).map_err(|e| {
        if port == 0 {
            DemoError::Bind(e)
        } else {
            DemoError::PortInUse { port, source: e }
        }
    })
}

/// Generous limits: the demo pipeline keeps a persistent session, publishers may send
/// thousands of messages a second in load tests, and nothing should be dropped for size.
fn broker_config(addrs: BrokerAddrs) -> Config {
    let connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: 1024 * 1024,
        max_inflight_count: 1000,
        auth: None,
        external_auth: None,
        // Publishes to any topic are accepted without preconfigured filters.
        dynamic_filters: true,
    };
    let server = |name: &str, listen: SocketAddr| ServerSettings {
        name: name.to_owned(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: connections.clone(),
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_000,
            max_outgoing_packet_count: 1000,
            // The retained log per topic filter: 8 × 16 MiB, enough for hours of the demo park
            // while the pipeline is away.
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 8,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([(
            "1".to_owned(),
            server("v311", addrs.v311),
        )])),
        v5: Some(HashMap::from([("1".to_owned(), server("v5", addrs.v5))])),
        ..Config::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::QoS;

    const DEADLINE: Duration = Duration::from_secs(10);

    /// Subscribes with MQTT v5, publishes one QoS 1 message with MQTT 3.1.1 (and one with v5),
    /// and waits for both to arrive: the two listeners share one router.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_embedded_broker_round_trips_qos1_over_v5_and_v311() {
        let addrs = start_broker_listeners(0, 0).unwrap();
        assert_ne!(addrs.v5.port(), addrs.v311.port());

        // Subscriber (v5).
        let mut opts = rumqttc::v5::MqttOptions::new("sub-v5", "127.0.0.1", addrs.v5.port());
        opts.set_keep_alive(Duration::from_secs(5));
        let (sub, mut sub_loop) = rumqttc::v5::AsyncClient::new(opts, 10);
        let (got_tx, mut got_rx) = tokio::sync::mpsc::unbounded_channel();
        let (subacked_tx, subacked_rx) = tokio::sync::oneshot::channel();
        let mut subacked_tx = Some(subacked_tx);
        tokio::spawn(async move {
            loop {
                match sub_loop.poll().await {
                    Ok(rumqttc::v5::Event::Incoming(rumqttc::v5::Incoming::SubAck(_))) => {
                        if let Some(tx) = subacked_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(rumqttc::v5::Event::Incoming(rumqttc::v5::Incoming::Publish(p))) => {
                        let _ = got_tx.send((p.topic.to_vec(), p.payload.to_vec(), p.qos));
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        sub.subscribe("env/#", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
            .await
            .unwrap();
        tokio::time::timeout(DEADLINE, subacked_rx)
            .await
            .unwrap()
            .unwrap();

        // Publisher (v3.1.1).
        let opts = rumqttc::MqttOptions::new("pub-v311", "127.0.0.1", addrs.v311.port());
        let (publ, mut pub_loop) = rumqttc::AsyncClient::new(opts, 10);
        let (acked_tx, acked_rx) = tokio::sync::oneshot::channel();
        let mut acked_tx = Some(acked_tx);
        tokio::spawn(async move {
            loop {
                match pub_loop.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Incoming::PubAck(_))) => {
                        if let Some(tx) = acked_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        publ.publish("env/p/s/st", QoS::AtLeastOnce, false, b"hello".to_vec())
            .await
            .unwrap();
        tokio::time::timeout(DEADLINE, acked_rx)
            .await
            .unwrap()
            .unwrap();
        let (topic, payload, qos) = tokio::time::timeout(DEADLINE, got_rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(topic, b"env/p/s/st");
        assert_eq!(payload, b"hello");
        assert_eq!(qos, rumqttc::v5::mqttbytes::QoS::AtLeastOnce);

        // And v5 to v5.
        sub.publish(
            "env/p/s/v5",
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            false,
            b"again".to_vec(),
        )
        .await
        .unwrap();
        let (topic, payload, _) = tokio::time::timeout(DEADLINE, got_rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (topic.as_slice(), payload.as_slice()),
            (&b"env/p/s/v5"[..], &b"again"[..])
        );
    }

    #[test]
    fn a_taken_port_is_reported_not_swallowed() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        match start_broker(port) {
            Err(DemoError::PortInUse { port: p, .. }) => assert_eq!(p, port),
            other => panic!("expected PortInUse, got {other:?}"),
        }
    }
}
