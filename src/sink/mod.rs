//! The InfluxDB writer: line protocol and the classification of write answers.
//!
//! - [`line`] — the contract's schema as line protocol (pure).
//! - [`classify`] — what an answer means (written, split, retry, …) and the backoff (pure).

pub mod classify;
pub mod line;

pub use classify::{ErrorKind, Outcome, RetryPolicy};
pub use line::{average_line, reading_line};
