//! The uplink: every station's data to the provincial environment department, as Circular
//! 10/2021 files over FTP or FTPS (Circular 10/2021/TT-BTNMT art. 39; Decree 08/2022 art.
//! 97–98): one file per station and period (5 minutes by default), the way a datalogger sends.
//!
//! # Design
//! The uplink reads only what the journal committed. When a period has ended (plus
//! `uplink.delay_s`, for readings still on their way), the readings timed in it are read back
//! from the journal's records, each station's file is made ([`file`], [`period`]), and the
//! files and the period's closing are committed together to the journal's uplink outbox
//! (through [`Store`]). Only then is anything sent ([`ftp`]): per station in period order, to a
//! temporary name, then renamed; a file is done when the server confirmed the rename.
//!
//! # Invariants
//! 1. **No loss.** A file exists in the journal before any byte of it is sent, and stays
//!    pending until the server confirmed it under its final name. After a crash or an outage
//!    the pending files are sent oldest first, under their original names and times.
//! 2. **No duplicate.** A period is closed once (its files and its closing in one commit); a
//!    file sent again (its confirmation lost in a crash) goes to the same name and replaces
//!    the copy there, byte for byte the same.
//! 3. **No half file.** The final name appears only through the rename of a complete upload.
//! 4. **One refused file blocks only its station.** A file the server refuses for good (a 5xx:
//!    permission denied, bad path) is kept, counted, logged once, and retried after
//!    [`run::REFUSED_RETRY`] and at every start; other stations go on. Anything else (server
//!    unreachable, login refused, TLS) holds every file and is retried with a growing backoff.
//! 5. **Beside the pipeline.** Nothing the uplink does changes intake or `/readyz`: the
//!    journal keeps the files while the department's server is away.
//!
//! # Files
//! [`period`] (period bounds, a parameter's value for the period), [`file`] (content and
//! names), [`ftp`] (the FTP conversation), [`run`] (the stage), `events` (what it logs and
//! counts).

mod events;
pub mod file;
pub mod ftp;
pub mod period;
pub mod run;

use std::future::Future;

use crate::model::Reading;

pub use file::{OutFile, Plan};
pub use run::{run, Options};

/// A file waiting for the server's confirmation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub id: u64,
    /// `park/site/station`.
    pub station: String,
    pub dir: String,
    pub name: String,
    pub content: Vec<u8>,
    /// The server refused it for good before (its answer).
    pub refused: Option<String>,
}

/// Why the store failed: worth trying again, or not.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Transient(String),
    #[error("{0}")]
    Fatal(String),
}

/// The journal as the uplink sees it; the implementation lives in `app`. One call at a time.
pub trait Store: Send + 'static {
    /// End of the last closed period; `None` before the uplink ever ran on this journal.
    fn closed_upto(&mut self) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;

    /// The committed readings whose own time is in `(start_ms, end_ms]`.
    fn readings(
        &mut self,
        start_ms: i64,
        end_ms: i64,
    ) -> impl Future<Output = Result<Vec<Reading>, StoreError>> + Send;

    /// Commits the period ending at `end_ms` as closed, with its files.
    fn close_period(
        &mut self,
        end_ms: i64,
        files: Vec<OutFile>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `limit` files not yet confirmed, oldest first, after file `after_id` (0: from
    /// the oldest).
    fn pending(
        &mut self,
        after_id: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Pending>, StoreError>> + Send;

    /// How many files are not yet confirmed.
    fn backlog(&mut self) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// The server confirmed file `id`.
    fn sent(&mut self, id: u64) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The server refused file `id` for good.
    fn refused(
        &mut self,
        id: u64,
        reason: String,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

#[cfg(test)]
mod tests;
