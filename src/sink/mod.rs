//! The InfluxDB writer: reads committed points from the journal's outbox (through [`Backlog`],
//! which `app` implements over the journal), writes them in batches, and advances the outbox
//! cursor only after InfluxDB accepted them. It knows nothing of MQTT or acks and never alters
//! a reading.
//!
//! - [`line`] — the contract's schema as line protocol (pure).
//! - [`classify`] — what an answer means (written, split, retry, …) and the backoff (pure).
//! - [`client`] — one HTTP write, v1 or v2, behind the [`WriteApi`] trait.
//! - [`run`](mod@run) — the driver: batching by size and interval, splitting, retries, shutdown.

pub mod classify;
pub mod client;
pub mod line;
pub mod run;

pub use classify::{ErrorKind, Outcome, RetryPolicy};
pub use client::{Client, Error, Reply, WriteApi, WriteError};
pub use line::{average_line, reading_line};
pub use run::{run, Backlog, Options, IN_FLIGHT};
