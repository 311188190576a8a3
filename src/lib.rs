//! quantrac: environmental telemetry from industrial parks, turned into evidence.
//!
//! The pipeline, in the order a reading travels:
//!
//! 1. [`mqtt`] — the source: one persistent MQTT session, QoS 1, manual acknowledgements.
//! 2. [`decode`] — bytes to readings: topic templates, JSON and Circular 10/2021 text, units.
//! 3. [`compliance`] — limits (QCVN tables × coefficients, permit overrides), O2 correction,
//!    instantaneous verdicts and averaging windows.
//! 4. [`journal`] — the local SQLite store where a message becomes durable (hash-chained),
//!    before its acknowledgement is sent.
//! 5. [`sink`] — InfluxDB writer: reads the journal's outbox in order, batches, retries.
//!
//! Beside it: [`metrics`] (Prometheus), [`http`] (the status page, `/api/stations`,
//! `/metrics`, `/healthz`, `/readyz`),
//! [`config`] (settings and stations), [`model`] (the vocabulary), [`pipeline`] (what travels
//! between stages), [`app`] (wiring and shutdown order), [`demo`] (a simulated park).

pub mod app;
pub mod cli;
pub mod compliance;
pub mod config;
pub mod decode;
pub mod demo;
pub mod http;
pub mod journal;
pub mod metrics;
pub mod model;
pub mod mqtt;
pub mod pipeline;
pub mod readiness;
pub mod shutdown;
pub mod sink;
pub mod telemetry;
