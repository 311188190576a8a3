//! The InfluxDB writer: line protocol, classification of write answers, the HTTP client.
//!
//! - [`line`] — the contract's schema as line protocol (pure).
//! - [`classify`] — what an answer means (written, split, retry, …) and the backoff (pure).
//! - [`client`] — one HTTP write, v1 or v2, behind the [`WriteApi`] trait.

pub mod classify;
pub mod client;
pub mod line;

pub use classify::{ErrorKind, Outcome, RetryPolicy};
pub use client::{Client, Error, Reply, WriteApi, WriteError};
pub use line::{average_line, reading_line};
