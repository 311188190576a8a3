//! quantrac: environmental telemetry from industrial parks, turned into evidence.
//!
//! The pipeline, in the order a reading travels:
//!
//! 1. The sources: [`mqtt`] — one persistent MQTT session, QoS 1, manual acknowledgements;
//!    [`inbox`] — Circular 10/2021 files that dataloggers push over FTP, taken from a folder.
//! 2. [`decode`] — bytes to readings: topic templates and file names, JSON and Circular
//!    10/2021 text, the parameter table, units.
//! 3. [`compliance`] — limits (QCVN tables × coefficients, permit overrides), O2 correction,
//!    instantaneous verdicts and averaging windows.
//! 4. [`journal`] — the local SQLite store where a message becomes durable (hash-chained),
//!    before its acknowledgement is sent.
//! 5. [`sink`] — InfluxDB writer: reads the journal's outbox in order, batches, retries;
//!    [`uplink`] — Circular 10/2021 files for the provincial department, made from the
//!    journal per station and period, committed, then sent over FTP/FTPS.
//!
//! Readers of the evidence: [`report`] (`quantrac report`: data capture and exceedances per
//! station × parameter, from the archive and the journal); the journal's archive and export.
//!
//! Beside it: [`metrics`] (Prometheus), [`http`] (the status page, `/api/stations`,
//! `/metrics`, `/healthz`, `/readyz`), [`config`] (settings and stations), [`tls`] (certificate
//! files and the one TLS client setup every connection uses), [`model`] (the vocabulary),
//! [`pipeline`] (what travels between stages), [`memory`] (freed memory back to the system),
//! [`app`] (wiring and shutdown order), [`demo`] (a simulated park).

pub mod app;
pub mod cli;
pub mod compliance;
pub mod config;
pub mod decode;
pub mod demo;
pub mod http;
pub mod inbox;
pub mod journal;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod mqtt;
pub mod pipeline;
pub mod readiness;
pub mod report;
pub mod shutdown;
pub mod sink;
pub mod telemetry;
pub mod tls;
pub mod uplink;
