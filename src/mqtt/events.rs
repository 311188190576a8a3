//! What the MQTT source tells the outside world, one method per event: each writes its log
//! line, its metrics and, where the event changes whether quantrac can take messages, its
//! `/readyz` reason, together (see [`crate::metrics`] for the pattern).
//!
//! | event | log | metrics | readiness |
//! |---|---|---|---|
//! | [`Events::connected`] | info | `quantrac_mqtt_connected` 1 | `mqtt: waiting for the broker to grant subscriptions` |
//! | [`Events::subscribed`] | info | — | ready |
//! | [`Events::subscription_refused`] | error | — | `mqtt: broker refused a subscription` |
//! | [`Events::received`] | — | `quantrac_messages_received_total` | — |
//! | [`Events::disconnected`] | warn once per outage, then debug | `quantrac_mqtt_connected` 0, `quantrac_mqtt_connection_errors_total{kind}`, `quantrac_tls_handshake_failures_total{client="mqtt",reason}` for a TLS failure | `mqtt: not connected to …: why` |
//! | [`Events::refused`] | error, once | `quantrac_mqtt_connected` 0, `quantrac_mqtt_connection_errors_total{kind="refused"}` | `mqtt: the broker refused …; not retrying` |
//! | [`Events::stopping`] | info | — | `mqtt: shutting down` |
//! | [`Events::ack_sent`] | — | `quantrac_mqtt_acks_total` | — |
//! | [`Events::ack_dropped`] | error, once | `quantrac_mqtt_acks_dropped_total` | `mqtt: message #n was dropped …` |

use std::time::Duration;

use prometheus::{IntCounter, IntCounterVec, IntGauge};
use tokio::time::Instant;

use super::{ConnectionError, COMPONENT};
use crate::config::BrokerUrl;
use crate::metrics::Metrics;
use crate::readiness::Readiness;

/// The MQTT source's events, with the metric handles resolved once. Cloned into the acker.
#[derive(Clone)]
pub struct Events {
    connected: IntGauge,
    received: IntCounter,
    acks_sent: IntCounter,
    acks_dropped: IntCounter,
    connection_errors: IntCounterVec,
    handshake_failures: IntCounterVec,
    readiness: Readiness,
    url: BrokerUrl,
    /// Since when the connection is down (`None` while up, and before the first connection).
    down_since: Option<Instant>,
    /// An ack was dropped: said once.
    dropped_said: bool,
    /// Connections in a row that ended right after they were made.
    short_lived: u32,
    /// The session takeover was said (until a connection holds again).
    takeover_said: bool,
}

impl Events {
    pub fn new(m: &Metrics, readiness: Readiness, url: BrokerUrl) -> Events {
        // Every kind exists at 0, so a rate over it works before the first failure.
        for kind in ConnectionError::KINDS {
            m.mqtt_connection_errors.with_label_values(&[kind]);
        }
        Events {
            connection_errors: m.mqtt_connection_errors.clone(),
            handshake_failures: m.tls_handshake_failures.clone(),
            connected: m.mqtt_connected.clone(),
            received: m.messages_received.clone(),
            acks_sent: m.acks_sent.clone(),
            acks_dropped: m.acks_dropped.clone(),
            readiness,
            url,
            down_since: None,
            dropped_said: false,
            short_lived: 0,
            takeover_said: false,
        }
    }

    /// Before the first connection.
    pub fn connecting(&self) {
        self.readiness
            .not_ready(COMPONENT, format!("connecting to {}", self.url));
    }

    pub fn is_connected(&self) -> bool {
        self.connected.get() == 1
    }

    /// The broker accepted the connection (connection number `epoch`).
    pub fn connected(&mut self, session_present: bool, epoch: u64) {
        self.connected.set(1);
        match self.down_since.take() {
            Some(since) => tracing::info!(
                down_s = since.elapsed().as_secs_f64(),
                session_present,
                "MQTT reconnected"
            ),
            None => {
                tracing::info!(url = %self.url, session_present, epoch, "MQTT connected")
            }
        }
        self.readiness
            .not_ready(COMPONENT, "waiting for the broker to grant subscriptions");
    }

    /// The subscriptions were granted: messages can flow.
    pub fn subscribed(&self, filters: &[String], taking_messages: bool) {
        if taking_messages {
            self.readiness.ready(COMPONENT);
        }
        tracing::info!(filters = ?filters, "MQTT subscribed at QoS 1");
    }

    pub fn subscription_refused(&self, filters: &[String]) {
        self.readiness
            .not_ready(COMPONENT, "broker refused a subscription");
        tracing::error!(filters = ?filters, "the broker refused a subscription (check its ACL)");
    }

    pub fn received(&self) {
        self.received.inc();
    }

    /// The connection is down for a reason that may pass; the next attempt is in `retry_in`.
    /// `short_lived`: it had just been made (and ended within seconds).
    pub fn disconnected(
        &mut self,
        e: &ConnectionError,
        retry_in: Duration,
        short_lived: bool,
        client_id: &str,
    ) {
        self.connected.set(0);
        self.count(e);
        self.short_lived = if short_lived { self.short_lived + 1 } else { 0 };
        // MQTT v5 says so (0x8E); under v3.1.1 the broker just closes the connection, and
        // the same thing right after every connect is how a session taken over looks.
        let taken_over = matches!(e, ConnectionError::TakenOver) || self.short_lived >= 3;
        if taken_over {
            let why = format!(
                "the broker keeps handing the session to another client: is a second quantrac (or another client) using client_id {client_id:?}?"
            );
            self.readiness.not_ready(COMPONENT, why.clone());
            if !self.takeover_said {
                self.takeover_said = true;
                tracing::error!(error.message = %e, client_id, retry_in_ms = retry_in.as_millis() as u64, "{why}");
            }
            self.down_since.get_or_insert_with(Instant::now);
            return;
        }
        if !short_lived {
            self.takeover_said = false;
        }
        self.readiness
            .not_ready(COMPONENT, format!("not connected to {}: {e}", self.url));
        if self.down_since.is_none() {
            self.down_since = Some(Instant::now());
            tracing::warn!(error.message = %e, url = %self.url, "MQTT connection lost; reconnecting with backoff");
        } else {
            tracing::debug!(error.message = %e, retry_in_ms = retry_in.as_millis() as u64, "MQTT reconnect failed");
        }
    }

    /// The broker refused this configuration (credentials, client id): retrying cannot help.
    pub fn refused(&self, e: &ConnectionError, client_id: &str) {
        self.connected.set(0);
        self.count(e);
        tracing::error!(
            error.message = %e,
            url = %self.url,
            client_id,
            "MQTT broker refused quantrac; not retrying: fix mqtt.username, mqtt.password (or password_file) or mqtt.client_id and restart"
        );
        self.readiness.not_ready(
            COMPONENT,
            format!("{e} ({}); not retrying until restarted", self.url),
        );
    }

    /// Counts a failed or lost connection by kind, and a failed TLS handshake by reason.
    fn count(&self, e: &ConnectionError) {
        self.connection_errors.with_label_values(&[e.kind()]).inc();
        if let ConnectionError::Tls(h) = e {
            self.handshake_failures
                .with_label_values(&["mqtt", h.failure.as_label()])
                .inc();
        }
    }

    /// Shutdown: no new messages are taken.
    pub fn stopping(&self) {
        tracing::info!("MQTT source stopping: no new messages taken");
        self.readiness.not_ready(COMPONENT, "shutting down");
    }

    /// The source ended (the connection is gone or closing).
    pub fn stopped(&self) {
        self.connected.set(0);
    }

    pub fn ack_sent(&self) {
        self.acks_sent.inc();
    }

    /// Message `seq` was dropped before the journal made it durable. Counted every time;
    /// said once, since every later message waits behind it.
    pub fn ack_dropped(&mut self, seq: u64) {
        self.acks_dropped.inc();
        if !self.dropped_said {
            self.dropped_said = true;
            tracing::error!(seq, "a message was dropped before it was durable; no more PUBACKs until restart (the broker redelivers)");
            self.readiness.not_ready(
                COMPONENT,
                format!("message #{seq} was dropped before it was durable; no more acknowledgements until restarted"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    //! The table above, row by row: each event's metrics, `/readyz` reason and log line.
    use super::*;
    use crate::tls::{Failure, Handshake};

    fn events() -> (Events, Metrics, Readiness) {
        let m = Metrics::new();
        let r = Readiness::default();
        let url = BrokerUrl::parse("mqtt://broker.example:1883").unwrap();
        (Events::new(&m, r.clone(), url), m, r)
    }

    fn errors(m: &Metrics, kind: &str) -> u64 {
        m.mqtt_connection_errors.with_label_values(&[kind]).get()
    }

    #[test]
    fn every_connection_error_kind_is_exported_at_zero_before_the_first_failure() {
        let (_e, m, _r) = events();
        let text = m.render();
        for kind in ConnectionError::KINDS {
            assert!(
                text.contains(&format!(
                    "quantrac_mqtt_connection_errors_total{{kind=\"{kind}\"}} 0"
                )),
                "{kind}"
            );
        }
    }

    #[test]
    fn connecting_connected_subscribed_and_received() {
        let (mut e, m, r) = events();
        e.connecting();
        assert_eq!(
            r.reason().unwrap(),
            "mqtt: connecting to mqtt://broker.example:1883"
        );
        assert!(!e.is_connected());
        e.connected(false, 1);
        assert!(e.is_connected());
        assert_eq!(m.mqtt_connected.get(), 1);
        assert_eq!(
            r.reason().unwrap(),
            "mqtt: waiting for the broker to grant subscriptions"
        );
        // Granted while the journal cannot take messages: still not ready.
        e.subscribed(&["env/#".into()], false);
        assert!(r.reason().is_some());
        e.subscribed(&["env/#".into()], true);
        assert_eq!(r.reason(), None);
        e.received();
        e.received();
        assert_eq!(m.messages_received.get(), 2);
        e.ack_sent();
        assert_eq!(m.acks_sent.get(), 1);
        e.subscription_refused(&["env/#".into()]);
        assert_eq!(r.reason().unwrap(), "mqtt: broker refused a subscription");
    }

    #[test]
    fn a_lost_connection_is_counted_by_kind_said_once_and_reconnection_timed() {
        let (mut e, m, r) = events();
        e.connected(false, 1);
        let lost = ConnectionError::Network("connection reset".into());
        let log = crate::telemetry::logged(|| {
            e.disconnected(&lost, Duration::from_secs(1), false, "quantrac");
            e.disconnected(&lost, Duration::from_secs(2), false, "quantrac");
        });
        assert_eq!(m.mqtt_connected.get(), 0);
        assert_eq!(errors(&m, "network"), 2);
        assert_eq!(
            r.reason().unwrap(),
            "mqtt: not connected to mqtt://broker.example:1883: connection reset"
        );
        assert_eq!(log.matches("MQTT connection lost").count(), 1, "{log}");
        let log = crate::telemetry::logged(|| e.connected(true, 2));
        assert!(log.contains("MQTT reconnected"), "{log}");
        assert!(log.contains("session_present=true"), "{log}");

        // A TLS failure also counts the handshake by reason.
        let tls = ConnectionError::Tls(Handshake {
            failure: Failure::Expired,
            detail: "certificate expired".into(),
        });
        e.disconnected(&tls, Duration::from_secs(1), false, "quantrac");
        assert_eq!(errors(&m, "tls"), 1);
        assert_eq!(
            m.tls_handshake_failures
                .with_label_values(&["mqtt", Failure::Expired.as_label()])
                .get(),
            1
        );
    }

    #[test]
    fn a_session_taken_over_is_named_with_the_client_id_once() {
        // Under MQTT 3.1.1 a takeover looks like connections ending just after they were made:
        // the third in a row names it.
        let (mut e, m, r) = events();
        let closed = ConnectionError::Network("closed by the broker".into());
        let log = crate::telemetry::logged(|| {
            for _ in 0..2 {
                e.connected(false, 1);
                e.disconnected(&closed, Duration::from_secs(1), true, "quantrac-a");
            }
            assert!(!r.reason().unwrap().contains("client_id"));
            for _ in 0..2 {
                e.connected(false, 1);
                e.disconnected(&closed, Duration::from_secs(1), true, "quantrac-a");
            }
        });
        assert!(r.reason().unwrap().contains("client_id \"quantrac-a\""));
        assert_eq!(log.matches("keeps handing the session").count(), 1, "{log}");
        assert_eq!(errors(&m, "network"), 4);
        // A connection that held resets the count; MQTT v5 says it at once.
        e.connected(false, 1);
        e.disconnected(&closed, Duration::from_secs(1), false, "quantrac-a");
        assert!(!r.reason().unwrap().contains("client_id"));
        let log = crate::telemetry::logged(|| {
            e.disconnected(
                &ConnectionError::TakenOver,
                Duration::from_secs(1),
                false,
                "q",
            )
        });
        assert!(log.contains("keeps handing the session"), "{log}");
        assert_eq!(errors(&m, "taken_over"), 1);
    }

    #[test]
    fn refused_stopping_and_a_dropped_ack() {
        let (mut e, m, r) = events();
        e.connected(false, 1);
        e.refused(
            &ConnectionError::Refused("bad user name or password".into()),
            "q",
        );
        assert_eq!((m.mqtt_connected.get(), errors(&m, "refused")), (0, 1));
        assert!(r.reason().unwrap().contains("not retrying until restarted"));
        e.stopping();
        assert_eq!(r.reason().unwrap(), "mqtt: shutting down");
        e.connected(false, 2);
        e.stopped();
        assert_eq!(m.mqtt_connected.get(), 0);
        let log = crate::telemetry::logged(|| {
            e.ack_dropped(7);
            e.ack_dropped(8);
        });
        assert_eq!(m.acks_dropped.get(), 2);
        assert_eq!(log.matches("a message was dropped").count(), 1, "{log}");
        assert!(r.reason().unwrap().contains("message #7 was dropped"));
    }
}
