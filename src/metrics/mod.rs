//! Every Prometheus metric quantrac exposes, named once, in a cloneable [`Metrics`] handle that
//! `app` passes to each stage. No global registry: tests build their own.
//!
//! # Events: a log line and its metrics, together
//! Stages do not update these fields inline. Each stage has an `events` module beside its
//! driver loop (`decode/events.rs`, `compliance/events.rs`, `journal/events.rs`) with one
//! method per observable event, which writes that event's log line, its metrics and, when the
//! event changes what `/readyz` says, its readiness reason, so none of them can happen without
//! the others (vector's `internal_events`, without a global registry). The stage builds its
//! `Events` from `&Metrics` once, when it starts; `Events` keeps the label-resolved counters
//! and gauges, so the hot path does no `with_label_values` lookup. A state that lasts (journal
//! full, pruning failing) is logged when it starts and when it ends, not on every turn: the
//! `Events` remembers which state it last reported.
//!
//! ```ignore
//! // stage/events.rs
//! pub struct Events { connected: IntGauge, readiness: Readiness }
//! impl Events {
//!     pub fn new(m: &Metrics, readiness: Readiness) -> Events {
//!         Events { connected: m.mqtt_connected.clone(), readiness }
//!     }
//!     /// Lost the broker: the gauge to 0, `/readyz` says why, one warning.
//!     pub fn disconnected(&self, error: &ConnectionError) {
//!         self.connected.set(0);
//!         self.readiness.not_ready(COMPONENT, format!("not connected: {error}"));
//!         tracing::warn!(error.message = %error, "MQTT connection lost; reconnecting");
//!     }
//! }
//! // stage/run.rs
//! let events = Events::new(&metrics, readiness);
//! events.disconnected(&e);
//! ```
//!
//! The events live with their stage, not here: their fields are the stage's own vocabulary
//! (a [`Rejection`](crate::model::Rejection), a judged reading, a journal error), and two
//! stages adding events never edit the same file. This file stays the one place a metric is
//! named and described.

use prometheus::{
    Encoder, Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::model::{Reason, StationKey};

pub mod stations;

pub use stations::{Detail, StationTable, WindowValues, INSTANT, STATION_STATES};

/// Outcomes of `quantrac_inbox_files_total`: where a journaled file went.
pub const INBOX_OUTCOMES: [&str; 2] = ["done", "rejected"];

/// Results of `quantrac_uplink_files_total`: one per upload attempt of a file.
pub const UPLINK_RESULTS: [&str; 5] = ["sent", "refused", "unreachable", "login", "tls"];

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// The per-station families (see [`stations`]).
    pub stations: StationTable,
    pub messages_received: IntCounter,
    pub readings_accepted: IntCounter,
    pub readings_rejected: IntCounterVec,
    pub mqtt_connected: IntGauge,
    pub mqtt_connection_errors: IntCounterVec,
    pub tls_handshake_failures: IntCounterVec,
    pub tls_certificate_expiry: GaugeVec,
    pub influx_points_written: IntCounter,
    pub influx_points_rejected: IntCounter,
    pub influx_write_errors: IntCounterVec,
    pub journal_backlog: IntGauge,
    pub journal_bytes: IntGauge,
    pub journal_full: IntGauge,
    pub journal_commits: IntCounter,
    pub journal_duplicates: IntCounter,
    pub journal_chain_head: IntGaugeVec,
    pub acks_sent: IntCounter,
    pub acks_dropped: IntCounter,
    pub inbox_files: IntCounterVec,
    pub uplink_files: IntCounterVec,
    pub uplink_backlog: IntGauge,
    pub uplink_last_success: Gauge,
    pub build_info: IntGaugeVec,
    pub ingest_lag: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("metric names are valid constants");
    r.register(Box::new(c.clone()))
        .expect("each metric is registered once");
    c
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone()))
        .expect("each metric is registered once");
    c
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let g = GaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone()))
        .expect("each metric is registered once");
    g
}

fn int_gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone()))
        .expect("each metric is registered once");
    g
}

fn int_gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone()))
        .expect("each metric is registered once");
    g
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let m = Metrics {
            stations: StationTable::default(),
            messages_received: counter(
                &r,
                "quantrac_messages_received_total",
                "MQTT messages received.",
            ),
            readings_accepted: counter(
                &r,
                "quantrac_readings_accepted_total",
                "Readings that passed decoding and validation.",
            ),
            readings_rejected: counter_vec(
                &r,
                "quantrac_readings_rejected_total",
                "Readings (or whole payloads) rejected, by reason.",
                &["reason"],
            ),
            mqtt_connected: int_gauge(
                &r,
                "quantrac_mqtt_connected",
                "1 while connected to the MQTT broker.",
            ),
            mqtt_connection_errors: counter_vec(
                &r,
                "quantrac_mqtt_connection_errors_total",
                "Lost or failed MQTT connections, by kind (refused, unavailable, taken_over, tls, network).",
                &["kind"],
            ),
            tls_handshake_failures: counter_vec(
                &r,
                "quantrac_tls_handshake_failures_total",
                "Failed TLS handshakes, by client (mqtt, influx) and reason (unknown_ca, expired, bad_certificate, certificate_required, name_mismatch, handshake).",
                &["client", "reason"],
            ),
            tls_certificate_expiry: gauge_vec(
                &r,
                "quantrac_tls_certificate_expiry_timestamp_seconds",
                "When the client certificate quantrac presents expires (Unix time), by client (mqtt, influx); only for clients with a certificate.",
                &["client"],
            ),
            influx_points_written: counter(
                &r,
                "quantrac_influx_points_written_total",
                "Points InfluxDB accepted.",
            ),
            influx_points_rejected: counter(
                &r,
                "quantrac_influx_points_rejected_total",
                "Points InfluxDB refused for good (kept in the journal).",
            ),
            influx_write_errors: counter_vec(
                &r,
                "quantrac_influx_write_errors_total",
                "Failed InfluxDB write attempts, by kind.",
                &["kind"],
            ),
            journal_backlog: int_gauge(
                &r,
                "quantrac_journal_backlog_readings",
                "Points committed to the journal and not yet written to InfluxDB.",
            ),
            journal_bytes: int_gauge(&r, "quantrac_journal_bytes", "Size of the journal on disk."),
            journal_full: int_gauge(
                &r,
                "quantrac_journal_full",
                "1 while intake is paused because the journal is at journal.max_bytes or the disk is full.",
            ),
            journal_commits: counter(
                &r,
                "quantrac_journal_commits_total",
                "Journal transactions committed.",
            ),
            journal_duplicates: counter(
                &r,
                "quantrac_journal_duplicates_total",
                "Messages delivered again by the broker (same topic and payload as a record in the journal) and journaled once.",
            ),
            journal_chain_head: int_gauge_vec(
                &r,
                "quantrac_journal_chain_head",
                "Current head of the journal hash chain (label), value = record id.",
                &["hash"],
            ),
            acks_sent: counter(
                &r,
                "quantrac_mqtt_acks_total",
                "PUBACKs sent after the journal commit.",
            ),
            acks_dropped: counter(
                &r,
                "quantrac_mqtt_acks_dropped_total",
                "Messages whose acknowledgement was dropped before the journal made them durable (a stage failed or stopped with them queued); never acknowledged, so the broker delivers them again.",
            ),
            inbox_files: counter_vec(
                &r,
                "quantrac_inbox_files_total",
                "Inbox files journaled and moved out of the inbox: to done_dir (outcome done) or, with nothing accepted, to rejected_dir (outcome rejected).",
                &["outcome"],
            ),
            uplink_files: counter_vec(
                &r,
                "quantrac_uplink_files_total",
                "Upload attempts of Circular 10/2021 files to the department's FTP server, by result: sent (the server confirmed the rename), refused (the server refused the file for good), unreachable, login, tls.",
                &["result"],
            ),
            uplink_backlog: int_gauge(
                &r,
                "quantrac_uplink_backlog_files",
                "Files for the department committed to the journal and not yet confirmed by its server.",
            ),
            uplink_last_success: {
                let g = Gauge::new(
                    "quantrac_uplink_last_success_timestamp_seconds",
                    "When the department's server last confirmed a file (0: not since start).",
                )
                .expect("valid metric");
                r.register(Box::new(g.clone())).expect("registered once");
                g
            },
            build_info: int_gauge_vec(
                &r,
                "quantrac_build_info",
                "Always 1; the version label tells the build.",
                &["version"],
            ),
            ingest_lag: {
                let g = Gauge::new(
                    "quantrac_ingest_lag_seconds",
                    "Receive time minus reading time of the latest reading.",
                )
                .expect("valid metric");
                r.register(Box::new(g.clone())).expect("registered once");
                g
            },
            registry: r,
        };
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for reason in Reason::ALL {
            m.readings_rejected.with_label_values(&[reason.as_label()]);
        }
        for outcome in INBOX_OUTCOMES {
            m.inbox_files.with_label_values(&[outcome]);
        }
        for result in UPLINK_RESULTS {
            m.uplink_files.with_label_values(&[result]);
        }
        m
    }

    /// The text exposition format, for `GET /metrics`: the registry's families, then the
    /// per-station ones.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("encoding to a Vec cannot fail");
        let mut text = String::from_utf8(buf).expect("the text format is UTF-8");
        self.stations.render_into(&mut text);
        text
    }

    /// Label values for a station.
    pub fn station_labels(key: &StationKey) -> [&str; 3] {
        [key.park(), key.site(), key.station()]
    }
}
