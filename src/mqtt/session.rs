//! One MQTT session over either protocol version. rumqttc has separate types for v3.1.1 and v5;
//! this file is the only place that tells them apart, so the source loop is written once, and
//! the demo's simulator publishes through the same session code ([`connect_publisher`]).

use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5;

use crate::config::{BrokerUrl, MqttSettings, Protocol};
use crate::tls::{Failure, Handshake};
use secrecy::ExposeSecret;

/// What the source loop (and the simulator) cares about from `poll()`.
pub enum Incoming {
    /// Connected; `session_present` = the broker kept our session (subscriptions and queue).
    Connected {
        session_present: bool,
    },
    Publish(Box<Message>),
    /// Subscriptions granted (`ok`) or refused by the broker.
    Subscribed {
        ok: bool,
    },
    /// The broker acknowledged one of our QoS 1 publishes.
    PubAck,
    /// Our DISCONNECT went out: the session is closing.
    Closed,
    Other,
}

/// A received publish: what the pipeline needs, and the packet the PUBACK answers.
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    pub packet: Packet,
}

pub enum Packet {
    V4(rumqttc::Publish),
    V5(v5::mqttbytes::v5::Publish),
}

#[derive(Clone)]
pub enum Client {
    V4(rumqttc::AsyncClient),
    V5(v5::AsyncClient),
}

pub enum EventLoop {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<v5::EventLoop>),
}

/// Why a session cannot be set up from the settings (before any connection).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("MQTT {0}")]
    Tls(#[from] crate::tls::Error),
}

/// Why the connection is down, sorted by what the source does about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// The broker refused our user name, password or client id. Retrying cannot help: the
    /// source stops trying and says so until the configuration is fixed.
    #[error("the broker refused the connection: {0}")]
    Refused(String),
    /// The broker refused the connection for a reason that may pass (unavailable, busy).
    #[error("the broker is not accepting connections: {0}")]
    Unavailable(String),
    /// The broker handed our session to another client with the same client id (MQTT v5
    /// reason code 0x8E): two instances share `mqtt.client_id`. Retried with backoff, so the
    /// two do not steal the session from each other in a tight loop.
    #[error("another client with the same client id took the session over")]
    TakenOver,
    /// The TLS handshake failed: a certificate was refused (by us or by the broker), or the
    /// two sides share no protocol version or cipher suite. Retried with backoff: the broker's
    /// side may be fixed without restarting quantrac.
    #[error("{0}")]
    Tls(Handshake),
    /// The network, a timeout, or the broker closing the connection: reconnect with backoff.
    #[error("{0}")]
    Network(String),
}

impl ConnectionError {
    /// Whether retrying the same configuration can succeed.
    pub fn is_permanent(&self) -> bool {
        matches!(self, ConnectionError::Refused(_))
    }

    /// The `kind` label of `quantrac_mqtt_connection_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            ConnectionError::Refused(_) => "refused",
            ConnectionError::Unavailable(_) => "unavailable",
            ConnectionError::TakenOver => "taken_over",
            ConnectionError::Tls(_) => "tls",
            ConnectionError::Network(_) => "network",
        }
    }

    /// Every `kind` label.
    pub const KINDS: [&'static str; 5] = ["refused", "unavailable", "taken_over", "tls", "network"];

    fn from_v4(e: rumqttc::ConnectionError) -> ConnectionError {
        use rumqttc::ConnectReturnCode as C;
        // A refused certificate shows up as a TLS error during the handshake, or (TLS 1.3:
        // the server checks our certificate after we finished) as an I/O error on the first
        // read after it.
        if let Some(h) = Handshake::find(&e).or_else(|| match &e {
            // The packet reader keeps its I/O error out of the `source` chain.
            rumqttc::ConnectionError::MqttState(rumqttc::StateError::Deserialization(
                rumqttc::mqttbytes::Error::Io(io),
            )) => Handshake::find(io),
            _ => None,
        }) {
            return ConnectionError::Tls(h);
        }
        match e {
            rumqttc::ConnectionError::ConnectionRefused(code) => match code {
                C::BadUserNamePassword => {
                    ConnectionError::Refused("bad user name or password".into())
                }
                C::NotAuthorized => ConnectionError::Refused("not authorized".into()),
                C::BadClientId => ConnectionError::Refused("client id refused".into()),
                C::RefusedProtocolVersion => {
                    ConnectionError::Refused("protocol version refused".into())
                }
                other => ConnectionError::Unavailable(format!("{other:?}")),
            },
            rumqttc::ConnectionError::Tls(e) => ConnectionError::Tls(Handshake {
                failure: Failure::Handshake,
                detail: e.to_string(),
            }),
            other => ConnectionError::Network(other.to_string()),
        }
    }

    fn from_v5(e: v5::ConnectionError) -> ConnectionError {
        use v5::mqttbytes::v5::ConnectReturnCode as C;
        if let Some(h) = Handshake::find(&e).or_else(|| match &e {
            v5::ConnectionError::MqttState(v5::StateError::Deserialization(
                v5::mqttbytes::Error::Io(io),
            )) => Handshake::find(io),
            _ => None,
        }) {
            return ConnectionError::Tls(h);
        }
        match e {
            v5::ConnectionError::ConnectionRefused(code) => match code {
                C::BadUserNamePassword => {
                    ConnectionError::Refused("bad user name or password".into())
                }
                C::NotAuthorized => ConnectionError::Refused("not authorized".into()),
                C::BadAuthenticationMethod => {
                    ConnectionError::Refused("bad authentication method".into())
                }
                C::Banned => ConnectionError::Refused("banned".into()),
                C::ClientIdentifierNotValid | C::BadClientId => {
                    ConnectionError::Refused("client id refused".into())
                }
                C::UnsupportedProtocolVersion | C::RefusedProtocolVersion => {
                    ConnectionError::Refused("protocol version refused".into())
                }
                other => ConnectionError::Unavailable(format!("{other:?}")),
            },
            v5::ConnectionError::Tls(e) => ConnectionError::Tls(Handshake {
                failure: Failure::Handshake,
                detail: e.to_string(),
            }),
            v5::ConnectionError::MqttState(v5::StateError::ServerDisconnect {
                reason_code: v5::mqttbytes::v5::DisconnectReasonCode::SessionTakenOver,
                ..
            }) => ConnectionError::TakenOver,
            other => ConnectionError::Network(other.to_string()),
        }
    }
}

/// The client stopped taking requests: its event loop is gone.
#[derive(Debug, thiserror::Error)]
#[error("MQTT client: {0}")]
pub struct ClientClosed(String);

/// Plain TCP, or TLS as [`crate::tls`] builds it for every client (the CA, the client
/// certificate, TLS 1.3/1.2), from the files read when the settings were loaded.
fn transport(tls: bool, s: &MqttSettings) -> Result<rumqttc::Transport, Error> {
    if !tls {
        return Ok(rumqttc::Transport::Tcp);
    }
    let config = s.tls.client_config()?;
    Ok(rumqttc::Transport::tls_with_config(
        rumqttc::TlsConfiguration::Rustls(std::sync::Arc::new(config)),
    ))
}

/// Largest packet we accept from the broker: the largest the protocol allows (a remaining
/// length of 268,435,455 bytes plus the fixed header). Any message is received, then one over
/// `max_payload_bytes` is cut to an excerpt at once and rejected as `too_large` (acknowledged,
/// counted, kept as a dead letter). A smaller limit would be a poison pill: under v3.1.1 the
/// client refuses the packet and reconnects, the broker redelivers it, forever, and ingestion
/// stops for every station; under v5 the broker drops, without a trace, any message above the
/// maximum packet size the client announced.
pub const INCOMING_PACKET_LIMIT: usize = 268_435_455 + 5;

/// Builds the client and event loop: stable client id, persistent session, manual acks.
pub fn connect(s: &MqttSettings) -> Result<(Client, EventLoop), Error> {
    open(s, None)
}

/// The same session for publishing (the demo's simulator): at most `inflight` QoS 1 messages
/// wait for their PUBACK; [`Client::publish`] waits when the request channel is full.
pub fn connect_publisher(s: &MqttSettings, inflight: u16) -> Result<(Client, EventLoop), Error> {
    open(s, Some(inflight.max(1)))
}

fn open(s: &MqttSettings, publish_inflight: Option<u16>) -> Result<(Client, EventLoop), Error> {
    let BrokerUrl { tls, host, port } = s.url.clone();
    let transport = transport(tls, s)?;
    // The request channel carries our PUBACKs: larger than the number of unacknowledged
    // messages the broker may send, so acking rarely waits. A publisher's carries its
    // publishes: a little above what may be in flight.
    let cap = match publish_inflight {
        None => usize::from(s.receive_maximum) * 2 + 64,
        Some(n) => usize::from(n) + 16,
    };
    let password = s
        .password
        .as_ref()
        .map(|p| p.expose_secret().to_owned())
        .unwrap_or_default();
    match s.protocol {
        Protocol::V5 => {
            let mut o = v5::MqttOptions::new(&s.client_id, host, port);
            o.set_keep_alive(Duration::from_secs(s.keep_alive_s.max(5)))
                .set_clean_start(false)
                .set_session_expiry_interval(Some(s.session_expiry_s))
                .set_receive_maximum(Some(s.receive_maximum))
                .set_max_packet_size(Some(INCOMING_PACKET_LIMIT as u32))
                .set_manual_acks(true)
                .set_transport(transport);
            if let Some(n) = publish_inflight {
                o.set_outgoing_inflight_upper_limit(n);
            }
            if let Some(username) = &s.username {
                o.set_credentials(username.clone(), password);
            }
            let (client, eventloop) = v5::AsyncClient::new(o, cap);
            Ok((Client::V5(client), EventLoop::V5(Box::new(eventloop))))
        }
        Protocol::V311 => {
            let mut o = rumqttc::MqttOptions::new(&s.client_id, host, port);
            o.set_keep_alive(Duration::from_secs(s.keep_alive_s.max(5)))
                .set_clean_session(false)
                .set_max_packet_size(INCOMING_PACKET_LIMIT, 64 * 1024)
                .set_manual_acks(true)
                .set_transport(transport);
            if let Some(n) = publish_inflight {
                o.set_inflight(n);
            }
            if let Some(username) = &s.username {
                o.set_credentials(username.clone(), password);
            }
            let (client, eventloop) = rumqttc::AsyncClient::new(o, cap);
            Ok((Client::V4(client), EventLoop::V4(Box::new(eventloop))))
        }
    }
}

impl EventLoop {
    /// Drives the connection. An error is weather, not death: the next call reconnects.
    pub async fn poll(&mut self) -> Result<Incoming, ConnectionError> {
        match self {
            EventLoop::V4(el) => {
                use rumqttc::{Event, Packet as P};
                match el.poll().await.map_err(ConnectionError::from_v4)? {
                    Event::Incoming(P::ConnAck(c)) => Ok(Incoming::Connected {
                        session_present: c.session_present,
                    }),
                    Event::Incoming(P::Publish(p)) => Ok(Incoming::Publish(Box::new(Message {
                        topic: p.topic.clone(),
                        payload: p.payload.clone(),
                        packet: Packet::V4(p),
                    }))),
                    Event::Incoming(P::SubAck(a)) => Ok(Incoming::Subscribed {
                        ok: a
                            .return_codes
                            .iter()
                            .all(|c| !matches!(c, rumqttc::SubscribeReasonCode::Failure)),
                    }),
                    Event::Incoming(P::PubAck(_)) => Ok(Incoming::PubAck),
                    Event::Outgoing(rumqttc::Outgoing::Disconnect) => Ok(Incoming::Closed),
                    _ => Ok(Incoming::Other),
                }
            }
            EventLoop::V5(el) => {
                use v5::mqttbytes::v5::Packet as P;
                use v5::Event;
                match el.poll().await.map_err(ConnectionError::from_v5)? {
                    Event::Incoming(P::ConnAck(c)) => Ok(Incoming::Connected {
                        session_present: c.session_present,
                    }),
                    Event::Incoming(P::Publish(p)) => Ok(Incoming::Publish(Box::new(Message {
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        payload: p.payload.clone(),
                        packet: Packet::V5(p),
                    }))),
                    Event::Incoming(P::SubAck(a)) => Ok(Incoming::Subscribed {
                        ok: a.return_codes.iter().all(|c| {
                            matches!(c, v5::mqttbytes::v5::SubscribeReasonCode::Success(_))
                        }),
                    }),
                    Event::Incoming(P::PubAck(_)) => Ok(Incoming::PubAck),
                    Event::Outgoing(rumqttc::Outgoing::Disconnect) => Ok(Incoming::Closed),
                    _ => Ok(Incoming::Other),
                }
            }
        }
    }
}

impl Client {
    /// Subscribes to every filter at QoS 1 without waiting on the request channel (safe to
    /// call from the polling task). Returns false when the channel was full; retry later.
    pub fn try_subscribe(&self, filters: &[String]) -> bool {
        match self {
            Client::V4(c) => c
                .try_subscribe_many(
                    filters.iter().map(|f| {
                        rumqttc::SubscribeFilter::new(f.clone(), rumqttc::QoS::AtLeastOnce)
                    }),
                )
                .is_ok(),
            Client::V5(c) => c
                .try_subscribe_many(filters.iter().map(|f| {
                    v5::mqttbytes::v5::Filter::new(f.clone(), v5::mqttbytes::QoS::AtLeastOnce)
                }))
                .is_ok(),
        }
    }

    /// Queues the PUBACK for `packet` without waiting. `false`: the request channel is full
    /// (or the event loop gone); try again later. Never waiting matters: the channel empties
    /// only while the poll loop polls, and the poll loop may be waiting for the acker.
    pub fn try_ack(&self, packet: &Packet) -> bool {
        match (self, packet) {
            (Client::V4(c), Packet::V4(p)) => c.try_ack(p).is_ok(),
            (Client::V5(c), Packet::V5(p)) => c.try_ack(p).is_ok(),
            _ => unreachable!("a client only receives packets of its own protocol version"),
        }
    }

    /// Publishes at QoS 1. Waits when the request channel is full, so never call it from the
    /// polling task.
    pub async fn publish(&self, topic: String, payload: Vec<u8>) -> Result<(), ClientClosed> {
        match self {
            Client::V4(c) => c
                .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
                .await
                .map_err(closed),
            Client::V5(c) => c
                .publish(topic, v5::mqttbytes::QoS::AtLeastOnce, false, payload)
                .await
                .map_err(closed),
        }
    }

    pub async fn disconnect(&self) -> Result<(), ClientClosed> {
        match self {
            Client::V4(c) => c.disconnect().await.map_err(closed),
            Client::V5(c) => c.disconnect().await.map_err(closed),
        }
    }
}

fn closed(e: impl std::fmt::Display) -> ClientClosed {
    ClientClosed(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(a: rustls::AlertDescription) -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(a),
        )
    }

    // A TLS 1.3 server checks our certificate after the handshake: its alert arrives on the
    // first read, inside the packet reader's error.
    #[test]
    fn a_refused_certificate_is_a_tls_error_with_its_reason_whatever_wraps_it() {
        let e = ConnectionError::from_v5(v5::ConnectionError::MqttState(
            v5::StateError::Deserialization(v5::mqttbytes::Error::Io(alert(
                rustls::AlertDescription::CertificateRequired,
            ))),
        ));
        assert!(
            matches!(&e, ConnectionError::Tls(h) if h.failure == Failure::CertificateRequired),
            "{e:?}"
        );
        assert_eq!(e.kind(), "tls");
        let e = ConnectionError::from_v4(rumqttc::ConnectionError::MqttState(
            rumqttc::StateError::Deserialization(rumqttc::mqttbytes::Error::Io(alert(
                rustls::AlertDescription::CertificateExpired,
            ))),
        ));
        assert!(
            matches!(&e, ConnectionError::Tls(h) if h.failure == Failure::Expired),
            "{e:?}"
        );
        let e = ConnectionError::from_v4(rumqttc::ConnectionError::Io(alert(
            rustls::AlertDescription::UnknownCA,
        )));
        assert!(
            e.to_string()
                .starts_with("TLS handshake failed (unknown_ca)"),
            "{e}"
        );
        let e = ConnectionError::from_v4(rumqttc::ConnectionError::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert_eq!(e.kind(), "network");
    }

    // README: refused credentials end the retries; everything else is retried with backoff.
    #[test]
    fn only_a_refusal_is_permanent() {
        use rumqttc::ConnectReturnCode as C;
        let refused = ConnectionError::from_v4(rumqttc::ConnectionError::ConnectionRefused(
            C::BadUserNamePassword,
        ));
        assert!(refused.is_permanent(), "{refused:?}");
        assert_eq!(refused.kind(), "refused");
        let unavailable = ConnectionError::from_v4(rumqttc::ConnectionError::ConnectionRefused(
            C::ServiceUnavailable,
        ));
        assert!(!unavailable.is_permanent(), "{unavailable:?}");
        assert_eq!(unavailable.kind(), "unavailable");
        let network = ConnectionError::from_v4(rumqttc::ConnectionError::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert!(!network.is_permanent(), "{network:?}");
    }

    // Subscriptions are queued at QoS 1 without waiting; a full request channel says so, for
    // the poll loop to try again, instead of blocking it.
    #[test]
    fn subscribing_queues_every_filter_at_qos_1_or_says_the_channel_is_full() {
        let (requests, queued) = flume::bounded(1);
        let client = Client::V4(rumqttc::AsyncClient::from_senders(requests));
        let filters = ["env/+/+/+/data".to_string(), "env/x/#".to_string()];
        assert!(client.try_subscribe(&filters));
        assert!(
            !client.try_subscribe(&filters),
            "the channel holds one request"
        );
        let Ok(rumqttc::Request::Subscribe(s)) = queued.try_recv() else {
            panic!("a subscribe request");
        };
        let got: Vec<_> = s.filters.iter().map(|f| (f.path.as_str(), f.qos)).collect();
        assert_eq!(
            got,
            [
                ("env/+/+/+/data", rumqttc::QoS::AtLeastOnce),
                ("env/x/#", rumqttc::QoS::AtLeastOnce)
            ]
        );
    }

    // The PUBACK answers the packet it was given, under either protocol version.
    #[test]
    fn an_ack_names_its_packet_under_either_protocol() {
        let (requests, queued) = flume::bounded(4);
        let client = Client::V4(rumqttc::AsyncClient::from_senders(requests));
        let mut p = rumqttc::Publish::new("t", rumqttc::QoS::AtLeastOnce, "x");
        p.pkid = 7;
        assert!(client.try_ack(&Packet::V4(p)));
        assert_eq!(
            queued.try_recv(),
            Ok(rumqttc::Request::PubAck(rumqttc::PubAck::new(7)))
        );
        let (requests, queued) = flume::bounded(4);
        let client = Client::V5(v5::AsyncClient::from_senders(requests));
        let mut p =
            v5::mqttbytes::v5::Publish::new("t", v5::mqttbytes::QoS::AtLeastOnce, "x", None);
        p.pkid = 9;
        assert!(client.try_ack(&Packet::V5(p)));
        let Ok(v5::Request::PubAck(ack)) = queued.try_recv() else {
            panic!("a PUBACK request");
        };
        assert_eq!(ack.pkid, 9);
    }
}
