//! One MQTT session over either protocol version. rumqttc has separate types for v3.1.1 and v5;
//! this file is the only place that tells them apart, so the source loop is written once.

use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5;

use crate::config::{BrokerUrl, MqttSettings, Protocol};
use secrecy::ExposeSecret;

/// What the source loop cares about from `poll()`.
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

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("mqtt.url {0:?}: expected mqtt://host:port or mqtts://host:port")]
    Url(String),
    #[error("mqtt.ca_file: {0}")]
    CaFile(String),
}

fn transport(tls: bool, s: &MqttSettings) -> Result<rumqttc::Transport, Error> {
    if !tls {
        return Ok(rumqttc::Transport::Tcp);
    }
    Ok(match &s.ca_file {
        Some(path) => {
            let ca = std::fs::read(path)
                .map_err(|e| Error::CaFile(format!("{}: {e}", path.display())))?;
            rumqttc::Transport::tls(ca, None, None)
        }
        None => rumqttc::Transport::tls_with_default_config(),
    })
}

/// Largest packet we accept from the broker. Above `max_payload_bytes` so an oversized payload
/// reaches `decode` and is rejected as `too_large` (counted), instead of breaking the connection.
fn incoming_packet_limit(s: &MqttSettings) -> usize {
    (s.max_payload_bytes.saturating_mul(4)).max(16 * 1024 * 1024)
}

/// Builds the client and event loop: stable client id, persistent session, manual acks.
pub fn connect(s: &MqttSettings) -> Result<(Client, EventLoop), Error> {
    let BrokerUrl { tls, host, port } = s.url.clone();
    let transport = transport(tls, s)?;
    // The request channel carries our PUBACKs: larger than the number of unacknowledged
    // messages the broker may send, so acking rarely waits.
    let cap = usize::from(s.receive_maximum) * 2 + 64;
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
                .set_max_packet_size(Some(incoming_packet_limit(s) as u32))
                .set_manual_acks(true)
                .set_transport(transport);
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
                .set_max_packet_size(incoming_packet_limit(s), 64 * 1024)
                .set_manual_acks(true)
                .set_transport(transport);
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
    pub async fn poll(&mut self) -> Result<Incoming, String> {
        match self {
            EventLoop::V4(el) => {
                use rumqttc::{Event, Packet as P};
                match el.poll().await.map_err(|e| e.to_string())? {
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
                    _ => Ok(Incoming::Other),
                }
            }
            EventLoop::V5(el) => {
                use v5::mqttbytes::v5::Packet as P;
                use v5::Event;
                match el.poll().await.map_err(|e| e.to_string())? {
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

    /// Sends the PUBACK for `packet`. Waits when the request channel is full, so never call
    /// it from the polling task.
    pub async fn ack(&self, packet: &Packet) -> Result<(), String> {
        match (self, packet) {
            (Client::V4(c), Packet::V4(p)) => c.ack(p).await.map_err(|e| e.to_string()),
            (Client::V5(c), Packet::V5(p)) => c.ack(p).await.map_err(|e| e.to_string()),
            _ => Err("packet of the other protocol version".into()),
        }
    }

    pub async fn disconnect(&self) -> Result<(), String> {
        match self {
            Client::V4(c) => c.disconnect().await.map_err(|e| e.to_string()),
            Client::V5(c) => c.disconnect().await.map_err(|e| e.to_string()),
        }
    }
}
