//! The InfluxDB writer: reads committed points from the journal's outbox (through [`Backlog`],
//! which `app` implements over the journal), writes them in batches, and advances the outbox
//! cursor only after InfluxDB accepted them. It knows nothing of MQTT or acks and never alters
//! a reading.
//!
//! - [`line`] — the contract's schema as line protocol (pure).
//! - [`classify`] — what an answer means (written, split, retry, …) and the backoff (pure).
//! - [`client`] — one HTTP write, v1 or v2, behind the [`WriteApi`] trait.
//! - [`backlog`] — the outbox as the sink sees it: the async [`Backlog`] trait and
//!   [`BacklogError`].
//! - [`run`](mod@run) — the driver loop: batching by size and interval, the window of writes on
//!   the wire, retries, shutdown. Beside it, private: `flight` (writes on the wire), `writer`
//!   (one batch: splitting, moving the cursor, the last flush), `health` (failing since when,
//!   the backoff) and `events` (each log line paired with its counters).

pub mod backlog;
pub mod classify;
pub mod client;
mod events;
mod flight;
mod health;
pub mod line;
pub mod run;
mod writer;

#[cfg(test)]
mod tests;

pub use backlog::{Backlog, BacklogError};
pub use classify::{ErrorKind, Outcome, RetryPolicy};
pub use client::{Client, Error, Reply, WriteApi, WriteError};
pub use line::{average_line, reading_line};
pub use run::{run, Options, IN_FLIGHT};

/// This stage's key in [`Readiness`](crate::readiness::Readiness): set only while a TLS
/// handshake with InfluxDB fails (a certificate to fix; other InfluxDB failures are weather and
/// leave readiness alone, since the journal keeps every point).
pub const COMPONENT: &str = "influx";
