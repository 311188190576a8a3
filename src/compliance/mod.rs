//! The compliance stage's core: what the permit and the regulation say about each reading.
//!
//! - [`catalogue`] — the QCVN tables as data files (`regulations/*.toml`), each value tagged
//!   verified / corroborated / unverified.
//! - [`limits`] — limit resolution: permit entry first, else table value × coefficients.
//! - [`o2`] — O2 normalisation of stack concentrations.
//! - [`windows`] — clock-aligned averaging windows with data capture and validity.
//! - [`health`] — silent / fault / calibrating / stuck stations.
//! - [`Engine`] (`engine.rs`) — all of the above per station, applied message by message.
//! - [`status`] — the snapshot of every station the stage publishes for the status page.
//! - [`state`] — the engine's state as bytes, kept at a clean stop so a restart need not
//!   rebuild it from the journal.
//! - [`events`] — the stage's gauges (verdicts, windows, station health and freshness); the
//!   only part that touches metrics.
//!
//! Everything else here is a function of `(state, readings, now)`: no I/O, no clock reads, no
//! metrics. The stage's task feeds [`Engine::judge`] one message at a time, calls
//! [`Engine::tick`] on a timer to close windows, and reads [`Engine::window_states`] and
//! [`Engine::health`] for the gauges.

pub mod catalogue;
mod engine;
pub mod events;
pub mod health;
pub mod limits;
pub mod o2;
mod run;
pub mod state;
pub mod status;
mod table;
pub mod windows;

use crate::model::status::WindowMean;
use crate::model::{Limit, Param, StationKey};

pub use catalogue::{Catalogue, CatalogueError};
pub use engine::Engine;
pub use health::{HealthState, StationHealth};
pub use run::{run, windows_record, PendingWindows, WINDOWS_TOPIC};
pub use status::StatusBoard;
pub use table::limit_table;

/// Late readings are windowed for at least this long after their window closed.
pub const MIN_LATE_HORIZON_MS: i64 = 48 * 3_600_000;

/// One row of `check-config`'s limit table.
#[derive(Clone, Debug, PartialEq)]
pub struct LimitRow {
    pub key: StationKey,
    pub param: Param,
    pub limit: Limit,
    /// Averaging windows of this parameter (`1h`, `24h`, …).
    pub windows: Vec<String>,
    /// The reference O2 the value is corrected to before comparison, when it is.
    pub o2_ref: Option<f64>,
}

/// The averaging state of one station × parameter × window, for the gauges.
#[derive(Clone, Debug, PartialEq)]
///
/// A province's tick hands out about a thousand of these a second, so it holds no string of
/// its own: the label is the configuration's shared one, the means have no key.
pub struct WindowState {
    pub key: StationKey,
    pub param: Param,
    pub window: std::sync::Arc<str>,
    /// The parameter's upper limit, when it has one.
    pub limit_max: Option<f64>,
    /// The latest closed window that was valid: its `ratio` and `exceeded` are the window's
    /// verdict (`quantrac_limit_ratio`, `quantrac_exceedance`).
    pub closed: Option<WindowMean>,
    /// The window still open at the latest time the engine was given, as it stands: `mean`,
    /// `ratio`, `capture` for early warnings. Its `valid`/`exceeded` are computed as if it
    /// closed now, so they are not a verdict.
    pub running: Option<WindowMean>,
}

pub(crate) use crate::model::fxhash::FxBuild;

#[cfg(test)]
mod tests;
