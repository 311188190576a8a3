//! The per-station families — a few series per station × parameter × window, so at
//! province scale nearly every series quantrac exposes — kept in a table of plain numbers and
//! written out by hand.
//!
//! A labelled gauge of the `prometheus` crate costs about a kilobyte (its label pairs as
//! protobuf strings, a hash-map entry, an `Arc`) and is copied into a protobuf message on
//! every scrape; at 10,000 stations that was gigabytes and seconds. Here a station is one row
//! (its key shared with the engine), a parameter a few words, a window 40 bytes, an unset
//! value a NaN, and a scrape writes the text straight from the table.
//!
//! ## The series budget
//! By default (`[metrics] detail = "compact"`) the table exposes what the shipped alert rules
//! and dashboards need, and no more: per station × parameter `quantrac_reading_value`,
//! `quantrac_exceedance` (instant and each window, 0/1) and `quantrac_window_running_ratio`
//! only while a running window is worth an early warning (capture and ratio at least
//! `running_min_capture` and `running_min_ratio`, 0.5 and 0.8 like the shipped early-warning
//! rule); per station the newest reading's time, the
//! latest message's receive time, the expected interval and `quantrac_station_state` for the
//! current state only (value 1; a station not heard from has none). That is at most
//! 1 + 2 × (1 + windows) series per station × parameter (6 with two windows, usually 4) and 4
//! per station. `detail = "full"` adds `quantrac_limit_ratio` (instant and latest closed
//! valid window), `quantrac_window_running_ratio` and `quantrac_window_running_capture` of
//! every running window, and the states a station is not in (value 0).
//!
//! Every family's `# HELP` and `# TYPE` are written even with no series, so the set of
//! families does not depend on the detail or on what has been measured yet.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use crate::model::fxhash::FxBuild;
use crate::model::{Param, StationKey};

/// Station states reported by `quantrac_station_state`.
pub const STATION_STATES: [&str; 5] = ["ok", "silent", "fault", "calibrating", "stuck"];

/// The window label of the instantaneous verdict series.
pub const INSTANT: &str = "instant";

/// What the per-station families expose (`[metrics]` in the configuration).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detail {
    /// Every series (`detail = "full"`), or the budget (`"compact"`).
    pub full: bool,
    /// In compact detail, a running window's ratio is exposed while its ratio and its
    /// capture are at least these.
    pub running_min_ratio: f64,
    pub running_min_capture: f64,
}

impl Default for Detail {
    fn default() -> Self {
        Detail {
            full: false,
            running_min_ratio: 0.8,
            running_min_capture: 0.5,
        }
    }
}

/// The per-station families, shared between the compliance stage (which sets them) and
/// `/metrics` (which renders them).
#[derive(Clone, Default)]
pub struct StationTable {
    inner: Arc<Mutex<Table>>,
}

#[derive(Default)]
struct Table {
    detail: Detail,
    /// Rows by position; a station's position never changes.
    rows: Vec<Row>,
    /// Position by station, searched with every message: hashed, since at a province's
    /// scale an ordered map's string comparisons each fetch a key from far away in memory.
    index: HashMap<StationKey, u32, FxBuild>,
    /// Position by station in key order, for rendering (changed only by a new station).
    order: BTreeMap<StationKey, u32>,
    /// Window labels, each once: a window row names its label by position.
    labels: Vec<Arc<str>>,
}

struct Row {
    last_reading: f64,
    last_received: f64,
    expected_interval: f64,
    /// Position in [`STATION_STATES`]; `None`: no state is 1 (not heard from yet), or never set.
    state: Option<u8>,
    /// A state was ever set (the full detail then writes the zeros).
    states_set: bool,
    /// By parameter.
    params: Vec<ParamRow>,
}

struct ParamRow {
    param: Param,
    value: f64,
    windows: Vec<WindowRow>,
}

/// NaN = not set.
struct WindowRow {
    label: u8,
    ratio: f64,
    exceedance: f64,
    running_ratio: f64,
    running_capture: f64,
}

impl Row {
    fn new() -> Row {
        Row {
            last_reading: f64::NAN,
            last_received: f64::NAN,
            expected_interval: f64::NAN,
            state: None,
            states_set: false,
            params: Vec::new(),
        }
    }

    fn param(&mut self, param: Param) -> &mut ParamRow {
        // By table position: unique within the running table, and compared without reading
        // the symbol.
        let i = match self
            .params
            .binary_search_by_key(&param.index(), |p| p.param.index())
        {
            Ok(i) => i,
            Err(i) => {
                self.params.insert(
                    i,
                    ParamRow {
                        param,
                        value: f64::NAN,
                        windows: Vec::new(),
                    },
                );
                i
            }
        };
        &mut self.params[i]
    }
}

impl ParamRow {
    fn window(&mut self, label: u8) -> &mut WindowRow {
        let i = match self.windows.iter().position(|w| w.label == label) {
            Some(i) => i,
            None => {
                self.windows.push(WindowRow {
                    label,
                    ratio: f64::NAN,
                    exceedance: f64::NAN,
                    running_ratio: f64::NAN,
                    running_capture: f64::NAN,
                });
                self.windows.len() - 1
            }
        };
        &mut self.windows[i]
    }
}

impl Table {
    fn row(&mut self, key: &StationKey) -> &mut Row {
        let i = self.position(key);
        &mut self.rows[i]
    }

    /// The station's row position, a new row when it has none.
    fn position(&mut self, key: &StationKey) -> usize {
        let i = match self.index.get(key) {
            Some(&i) => i,
            None => {
                let i = u32::try_from(self.rows.len()).expect("fewer than 2³² stations");
                self.rows.push(Row::new());
                self.index.insert(key.clone(), i);
                self.order.insert(key.clone(), i);
                i
            }
        };
        i as usize
    }

    /// The rows in station order.
    fn sorted(&self) -> impl Iterator<Item = (&StationKey, &Row)> {
        self.order.iter().map(|(k, &i)| (k, &self.rows[i as usize]))
    }
}

/// One window's values as the compliance stage knows them; `None` leaves a value as it is.
#[derive(Clone, Copy, Debug, Default)]
pub struct WindowValues {
    pub ratio: Option<f64>,
    pub exceeded: Option<bool>,
    /// The running window's ratio and capture; `running` false: no running window.
    pub running: bool,
    pub running_ratio: Option<f64>,
    pub running_capture: Option<f64>,
}

impl StationTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while holding the lock leaves plain numbers behind: still fine to read.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_detail(&self, detail: Detail) {
        self.lock().detail = detail;
    }

    pub fn detail(&self) -> Detail {
        self.lock().detail
    }

    /// Runs `f` on the table of one station (one lock for a message's worth of updates).
    pub fn station<R>(&self, key: &StationKey, f: impl FnOnce(&mut StationRow<'_>) -> R) -> R {
        let mut table = self.lock();
        let table = &mut *table;
        let detail = table.detail;
        let i = table.position(key);
        let row = &mut table.rows[i];
        f(&mut StationRow {
            row,
            labels: &mut table.labels,
            detail,
        })
    }

    pub fn set_expected_interval(&self, key: &StationKey, seconds: f64) {
        self.lock().row(key).expected_interval = seconds;
    }

    /// The station's state: `Some(i)` = [`STATION_STATES`]`[i]`, `None` = none (unheard).
    pub fn set_state(&self, key: &StationKey, state: Option<usize>) {
        let mut t = self.lock();
        let row = t.row(key);
        row.state = state.and_then(|s| u8::try_from(s).ok());
        row.states_set = true;
    }

    /// The text exposition of the per-station families, appended to `out`.
    pub fn render_into(&self, out: &mut String) {
        let t = self.lock();
        let full = t.detail.full;
        let labels = &t.labels;
        let station = |out: &mut String, key: &StationKey| {
            out.push_str("park=\"");
            escaped(out, key.park());
            out.push_str("\",site=\"");
            escaped(out, key.site());
            out.push_str("\",station=\"");
            escaped(out, key.station());
            out.push('"');
        };
        let param_labels = |out: &mut String, key: &StationKey, param: Param| {
            out.push_str("param=\"");
            escaped(out, param.symbol());
            out.push_str("\",");
            station(out, key);
        };
        // quantrac_reading_value
        header(out, FAMILIES[0]);
        for (key, row) in t.sorted() {
            for p in &row.params {
                if !p.value.is_nan() {
                    out.push_str(FAMILIES[0].0);
                    out.push('{');
                    param_labels(out, key, p.param);
                    out.push_str("} ");
                    value(out, p.value);
                }
            }
        }
        // The window families: (family, which value, exposed in compact detail).
        type Pick = fn(&WindowRow) -> f64;
        let windowed: [(usize, Pick, bool); 4] = [
            (1, |w| w.ratio, false),
            (2, |w| w.exceedance, true),
            (3, |w| w.running_ratio, true),
            (4, |w| w.running_capture, false),
        ];
        for (family, pick, compact) in windowed {
            let name = FAMILIES[family].0;
            header(out, FAMILIES[family]);
            if !(full || compact) {
                continue;
            }
            for (key, row) in t.sorted() {
                for p in &row.params {
                    for w in &p.windows {
                        let v = pick(w);
                        if v.is_nan() {
                            continue;
                        }
                        out.push_str(name);
                        out.push('{');
                        param_labels(out, key, p.param);
                        out.push_str(",window=\"");
                        escaped(out, &labels[usize::from(w.label)]);
                        out.push_str("\"} ");
                        value(out, v);
                    }
                }
            }
        }
        type Of = fn(&Row) -> f64;
        let per_station: [(usize, Of); 3] = [
            (5, |r| r.last_reading),
            (6, |r| r.last_received),
            (7, |r| r.expected_interval),
        ];
        for (family, of) in per_station {
            let name = FAMILIES[family].0;
            header(out, FAMILIES[family]);
            for (key, row) in t.sorted() {
                let v = of(row);
                if !v.is_nan() {
                    out.push_str(name);
                    out.push('{');
                    station(out, key);
                    out.push_str("} ");
                    value(out, v);
                }
            }
        }
        let name = FAMILIES[8].0;
        header(out, FAMILIES[8]);
        for (key, row) in t.sorted() {
            if !row.states_set {
                continue;
            }
            for (i, state) in STATION_STATES.iter().enumerate() {
                let on = row.state == Some(i as u8);
                if !(on || full) {
                    continue;
                }
                out.push_str(name);
                out.push_str("{park=\"");
                escaped(out, key.park());
                out.push_str("\",site=\"");
                escaped(out, key.site());
                out.push_str("\",state=\"");
                out.push_str(state);
                out.push_str("\",station=\"");
                escaped(out, key.station());
                out.push_str("\"} ");
                out.push_str(if on { "1\n" } else { "0\n" });
            }
        }
    }
}

/// One station's row, for a run of updates under one lock.
pub struct StationRow<'a> {
    row: &'a mut Row,
    labels: &'a mut Vec<Arc<str>>,
    detail: Detail,
}

impl StationRow<'_> {
    pub fn last_received(&mut self, seconds: f64) {
        self.row.last_received = seconds;
    }

    pub fn last_reading(&mut self, seconds: f64) {
        self.row.last_reading = seconds;
    }

    pub fn value(&mut self, param: Param, value: f64) {
        self.row.param(param).value = value;
    }

    /// Sets what `values` has of the `window` series of `param` (`instant` for the
    /// instantaneous verdict).
    pub fn window(&mut self, param: Param, window: &str, values: WindowValues) {
        let label = match self.labels.iter().position(|l| &**l == window) {
            Some(i) => i as u8,
            None => {
                self.labels.push(Arc::from(window));
                u8::try_from(self.labels.len() - 1).expect("fewer than 256 window lengths")
            }
        };
        let d = self.detail;
        let w = self.row.param(param).window(label);
        if let Some(r) = values.ratio {
            w.ratio = r;
        }
        if let Some(e) = values.exceeded {
            w.exceedance = if e { 1.0 } else { 0.0 };
        }
        if values.running {
            if let Some(c) = values.running_capture {
                w.running_capture = c;
            }
            match values.running_ratio {
                // Compact: only while the window is worth an early warning.
                Some(r) if d.full => w.running_ratio = r,
                Some(r)
                    if r >= d.running_min_ratio
                        && values
                            .running_capture
                            .is_some_and(|c| c >= d.running_min_capture) =>
                {
                    w.running_ratio = r
                }
                Some(_) => w.running_ratio = f64::NAN,
                None => {}
            }
        } else if !d.full {
            // A new window with no sample yet: no early warning.
            w.running_ratio = f64::NAN;
        }
    }
}

/// Name, help and type of each per-station family, in the order they are written.
pub const FAMILIES: [(&str, &str, &str); 9] = [
    (
        "quantrac_reading_value",
        "Latest value of each station parameter, canonical unit.",
        "gauge",
    ),
    (
        "quantrac_limit_ratio",
        "Value ÷ limit: instant reading, or latest closed valid window (metrics.detail = \"full\").",
        "gauge",
    ),
    (
        "quantrac_exceedance",
        "1 while the limit is exceeded (instant reading, or latest closed valid window).",
        "gauge",
    ),
    (
        "quantrac_window_running_ratio",
        "Running (open) window mean ÷ limit, for early warnings (compact detail: only while capture and ratio reach metrics.running_min_capture and metrics.running_min_ratio).",
        "gauge",
    ),
    (
        "quantrac_window_running_capture",
        "Share of expected samples the running window has so far, 0–1 (metrics.detail = \"full\").",
        "gauge",
    ),
    (
        "quantrac_station_last_reading_timestamp_seconds",
        "Own timestamp of the newest reading seen from the station (never moves back).",
        "gauge",
    ),
    (
        "quantrac_station_last_message_received_timestamp_seconds",
        "Receive time of the station's latest message with accepted readings.",
        "gauge",
    ),
    (
        "quantrac_station_expected_interval_seconds",
        "How often a configured station should report.",
        "gauge",
    ),
    (
        "quantrac_station_state",
        "1 for the station's current state (ok, silent, fault, calibrating, stuck); with metrics.detail = \"full\" also 0 for the others.",
        "gauge",
    ),
];

fn header(out: &mut String, (name, help, kind): (&str, &str, &str)) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn value(out: &mut String, v: f64) {
    if v.is_finite() {
        let _ = writeln!(out, "{v}");
    } else if v.is_nan() {
        out.push_str("NaN\n");
    } else if v > 0.0 {
        out.push_str("+Inf\n");
    } else {
        out.push_str("-Inf\n");
    }
}

/// A label value as the text format wants it (backslash, quote and newline escaped).
fn escaped(out: &mut String, s: &str) {
    if !s.contains(['\\', '"', '\n']) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}
