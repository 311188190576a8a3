//! The embedded MQTT broker (rumqttd) for `quantrac demo`: no external service to install.
//!
//! rumqttd serves one protocol per listener, so the broker gets two on 127.0.0.1: MQTT v5 and
//! MQTT 3.1.1, sharing one router (a v3.1.1 publisher reaches a v5 subscriber). In front of
//! them one port takes both: it reads the protocol level of each connection's CONNECT packet
//! ([`protocol_level`]) and passes the connection on to the listener of that version, so
//! `mosquitto_sub -p 1883` (3.1.1 by default) and a v5 client meet on the same port. It all
//! runs on its own threads for the life of the process; there is no stop, a demo ends with its
//! process.
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
    /// MQTT 3.1.1 and v5 alike: each connection goes to the listener of its version.
    pub mqtt: SocketAddr,
    /// MQTT v5 only (`mqtt.protocol = "v5"`).
    pub v5: SocketAddr,
    /// MQTT 3.1.1 only (`mqtt.protocol = "v3.1.1"`).
    pub v311: SocketAddr,
}

/// Starts the embedded broker on 127.0.0.1:`port` (0 = a free port), for MQTT 3.1.1 and v5
/// alike, and returns that address.
pub fn start_broker(port: u16) -> Result<SocketAddr, DemoError> {
    start_broker_listeners(port).map(|a| a.mqtt)
}

/// Starts the embedded broker: both MQTT versions on 127.0.0.1:`port` (0 = a free port), and
/// one listener per version on free ports; returns once all three accept connections.
pub fn start_broker_listeners(port: u16) -> Result<BrokerAddrs, DemoError> {
    // The shared port is held from here on, so no one can take it before the front serves it.
    let front = reserve(port)?;
    // Hold both probes at once so a port-0 pick cannot return the same port twice.
    let v5_probe = reserve(0)?;
    let v311_probe = reserve(0)?;
    let addrs = BrokerAddrs {
        mqtt: front.local_addr().map_err(DemoError::Bind)?,
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

    serve_front(front, addrs)?;

    let deadline = Instant::now() + READY_WITHIN;
    for addr in [addrs.v5, addrs.v311, addrs.mqtt] {
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if Instant::now() >= deadline {
                return Err(DemoError::BrokerNotListening(addr));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
    tracing::info!(mqtt = %addrs.mqtt, v5 = %addrs.v5, v311 = %addrs.v311, "embedded MQTT broker listening");
    Ok(addrs)
}

/// What the first bytes of a connection say about its MQTT version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sniff {
    /// The CONNECT packet's protocol level: 5 = MQTT v5, 4 = 3.1.1, 3 = 3.1.
    Level(u8),
    /// Not enough bytes yet.
    NeedMore,
    /// Not an MQTT CONNECT packet.
    NotMqtt,
}

/// Longest prefix [`protocol_level`] needs: fixed header (1), remaining length (≤ 4), protocol
/// name length (2), name (≤ 6, "MQIsdp" of 3.1) and the level (1).
const SNIFF_MAX: usize = 14;

/// The protocol level of the CONNECT packet `b` starts with (MQTT 3.1.1 §3.1.2.2, MQTT 5.0
/// §3.1.2.2: fixed header 0x10, remaining length, protocol name "MQTT", protocol level).
pub fn protocol_level(b: &[u8]) -> Sniff {
    let Some(&first) = b.first() else {
        return Sniff::NeedMore;
    };
    if first != 0x10 {
        return Sniff::NotMqtt;
    }
    // Remaining length: 1 to 4 bytes, 7 bits each, high bit = more follow.
    let mut at = 1;
    loop {
        match b.get(at) {
            None => return Sniff::NeedMore,
            Some(&byte) => {
                at += 1;
                if byte & 0x80 == 0 {
                    break;
                }
                if at > 4 {
                    return Sniff::NotMqtt;
                }
            }
        }
    }
    let (Some(&hi), Some(&lo)) = (b.get(at), b.get(at + 1)) else {
        return Sniff::NeedMore;
    };
    let name_len = usize::from(u16::from_be_bytes([hi, lo]));
    if !(4..=6).contains(&name_len) {
        return Sniff::NotMqtt;
    }
    let name_at = at + 2;
    match b.get(name_at + name_len) {
        None => Sniff::NeedMore,
        Some(&level) => match &b[name_at..name_at + name_len] {
            b"MQTT" | b"MQIsdp" => Sniff::Level(level),
            _ => Sniff::NotMqtt,
        },
    }
}

/// Serves the shared port on its own thread: each connection is passed on, bytes untouched,
/// to the listener of the MQTT version its CONNECT packet names.
fn serve_front(front: TcpListener, addrs: BrokerAddrs) -> Result<(), DemoError> {
    front.set_nonblocking(true).map_err(DemoError::Bind)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(DemoError::Bind)?;
    thread::Builder::new()
        .name("mqtt-front".into())
        .spawn(move || {
            runtime.block_on(async move {
                let front = match tokio::net::TcpListener::from_std(front) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error.message = %e, "embedded MQTT broker: shared port unusable");
                        return;
                    }
                };
                loop {
                    match front.accept().await {
                        Ok((client, _)) => {
                            tokio::spawn(async move {
                                if let Err(e) = pass_on(client, addrs).await {
                                    tracing::debug!(error.message = %e, "embedded MQTT broker: connection ended");
                                }
                            });
                        }
                        Err(e) => {
                            tracing::warn!(error.message = %e, "embedded MQTT broker: accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            })
        })
        .map_err(DemoError::Bind)?;
    Ok(())
}

/// Reads the start of the CONNECT packet, connects to the listener of its version, replays
/// what was read and then copies both ways until either side closes.
async fn pass_on(mut client: tokio::net::TcpStream, addrs: BrokerAddrs) -> std::io::Result<()> {
    use tokio::io::AsyncReadExt as _;
    use tokio::io::AsyncWriteExt as _;
    let mut head = Vec::with_capacity(SNIFF_MAX);
    let level = loop {
        match protocol_level(&head) {
            Sniff::Level(level) => break level,
            Sniff::NotMqtt => return Ok(()),
            Sniff::NeedMore => {}
        }
        let mut byte = [0u8; SNIFF_MAX];
        let want = SNIFF_MAX.saturating_sub(head.len()).max(1);
        let n = tokio::time::timeout(READY_WITHIN, client.read(&mut byte[..want]))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no CONNECT"))??;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&byte[..n]);
    };
    let to = if level >= 5 { addrs.v5 } else { addrs.v311 };
    let mut server = tokio::net::TcpStream::connect(to).await?;
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    server.write_all(&head).await?;
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
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

    // MQTT 5.0 §3.1.2.2 / MQTT 3.1.1 §3.1.2.2: CONNECT = 0x10, remaining length, "MQTT", level.
    #[test]
    fn the_protocol_level_is_read_from_the_connect_packet() {
        let v5 = [0x10, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02];
        let v311 = [0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02];
        let v31 = [
            0x10, 0x0e, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03,
        ];
        assert_eq!(protocol_level(&v5), Sniff::Level(5));
        assert_eq!(protocol_level(&v311), Sniff::Level(4));
        assert_eq!(protocol_level(&v31), Sniff::Level(3));
        // A long CONNECT: a two-byte remaining length.
        let long = [0x10, 0xc8, 0x01, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05];
        assert_eq!(protocol_level(&long), Sniff::Level(5));
        for cut in 0..v5.len() - 1 {
            assert_eq!(protocol_level(&v5[..cut]), Sniff::NeedMore, "{cut} bytes");
        }
        assert_eq!(protocol_level(b"GET / HTTP/1.1\r\n"), Sniff::NotMqtt);
        assert_eq!(
            protocol_level(&[0x10, 0x0c, 0x00, 0x04, b'H', b'T', b'T', b'P', 4]),
            Sniff::NotMqtt
        );
        assert_eq!(
            protocol_level(&[0x10, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Sniff::NotMqtt
        );
    }

    /// Subscribes with MQTT v5, publishes one QoS 1 message with MQTT 3.1.1 (and one with v5),
    /// all on the one shared port, and waits for both to arrive.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_embedded_broker_round_trips_qos1_over_v5_and_v311_on_one_port() {
        let addrs = start_broker_listeners(0).unwrap();
        assert_ne!(addrs.v5.port(), addrs.v311.port());
        let port = addrs.mqtt.port();

        // Subscriber (v5).
        let mut opts = rumqttc::v5::MqttOptions::new("sub-v5", "127.0.0.1", port);
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
        let opts = rumqttc::MqttOptions::new("pub-v311", "127.0.0.1", port);
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
