//! `quantrac report`: per station × parameter, what a period of records says — the content
//! of the annual report of automatic continuous monitoring (Circular 02/2022/TT-BTNMT form
//! 05.A as filled in practice: data capture, valid data, exceedances of the hourly means).
//!
//! Computed from the records of the archive and the journal (after `verify`), never from
//! InfluxDB: every raw message is decoded again ([`crate::decode`]), and the compliance rules
//! are the service's own ([`crate::compliance`]: the limit in force and its source, O2
//! correction, clock-aligned hourly windows and their validity). A pure computation: records
//! in, [`Row`]s out; [`render`] writes them as CSV, JSON or a self-contained HTML page.
//!
//! # What each column counts
//! Readings are those whose own timestamp is in `[from, to)`, wherever they arrived (late
//! data counts in the hour it was measured); one reading per timestamp, the last received
//! (a redelivery or a replayed buffer is not counted twice).
//! - `expected`: `(to − from) ÷ expected_interval_s`, rounded down.
//! - `received`, `valid` (status `00`), `calibrating` (`01`), `fault` (`02`).
//! - `rejected`: readings of this station and parameter that decode refused (dead letters),
//!   counted by receive time in the period; a whole payload refused names no parameter.
//! - `capture`: `valid ÷ expected`, at most 1.
//! - `hours`: clock hours (local) with at least one valid reading; `hours_valid`: those whose
//!   capture reaches `min_capture`; `hours_exceeded`: valid hours whose mean (O2-corrected
//!   where the station has `o2_ref`) breaks the limit; `days_exceeded`: local days with at
//!   least one exceeding hour; `max_hour_mean`, `max_hour_ratio`: the highest valid hourly
//!   mean and its ratio to the maximum limit.

mod html;
mod render;

use std::collections::{BTreeMap, BTreeSet};

use chrono::TimeZone;
use chrono_tz::Tz;
use serde::Serialize;

use crate::compliance::{limits, o2, windows, Catalogue};
use crate::config::{Stations, WindowSpec};
use crate::decode::Decoder;
use crate::journal::archive::{local_day, Line};
use crate::model::{Limit, LimitSource, Param, Reading, StationKey, Status};

pub use render::{render, Format};

/// The period `[from, to)`, Unix epoch milliseconds, with the text it was given as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Period {
    pub from: String,
    pub to: String,
    #[serde(skip)]
    pub from_ms: i64,
    #[serde(skip)]
    pub to_ms: i64,
    pub timezone: String,
}

impl Period {
    /// `from` and `to` as local dates (`YYYY-MM-DD`, midnight in `tz`) or RFC 3339 times.
    pub fn parse(from: &str, to: &str, tz: Tz) -> Result<Period, String> {
        let from_ms = instant(from, tz)?;
        let to_ms = instant(to, tz)?;
        if to_ms <= from_ms {
            return Err(format!("--to {to} is not after --from {from}"));
        }
        Ok(Period {
            from: from.trim().to_string(),
            to: to.trim().to_string(),
            from_ms,
            to_ms,
            timezone: tz.name().to_string(),
        })
    }
}

/// A local date (its midnight in `tz`) or an RFC 3339 time, as Unix epoch milliseconds.
pub fn instant(s: &str, tz: Tz) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(crate::journal::archive::day_start_ms(d, tz));
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| format!("{s:?} is neither a date YYYY-MM-DD nor an RFC 3339 time"))
}

/// Which stations the report covers: each given part must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub park: Option<String>,
    pub site: Option<String>,
    pub station: Option<String>,
}

impl Filter {
    fn matches(&self, k: &StationKey) -> bool {
        self.park.as_deref().is_none_or(|p| p == k.park())
            && self.site.as_deref().is_none_or(|s| s == k.site())
            && self.station.as_deref().is_none_or(|s| s == k.station())
    }
}

/// One station × parameter over the period: the CSV's columns, in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub park: String,
    pub site: String,
    pub station: String,
    pub param: String,
    pub unit: String,
    pub limit: String,
    pub limit_source: String,
    pub expected: u64,
    pub received: u64,
    pub valid: u64,
    pub calibrating: u64,
    pub fault: u64,
    pub rejected: u64,
    pub capture: f64,
    pub hours: u64,
    pub hours_valid: u64,
    pub hours_exceeded: u64,
    pub days_exceeded: u64,
    pub max_hour_mean: Option<f64>,
    pub max_hour_ratio: Option<f64>,
    /// The hourly means, for the chart (not a CSV column).
    #[serde(skip)]
    pub hourly: Vec<Hour>,
    #[serde(skip)]
    pub limit_max: Option<f64>,
    #[serde(skip)]
    pub limit_min: Option<f64>,
}

/// One hourly window of a row.
#[derive(Debug, Clone, PartialEq)]
pub struct Hour {
    pub start_ms: i64,
    pub mean: f64,
    pub valid: bool,
    pub exceeded: bool,
}

/// What `verify` said before the report was computed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub intact: bool,
    pub summary: String,
    pub head_id: u64,
    pub head_hash: String,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub period: Period,
    pub generated_at: String,
    pub verification: Verification,
    pub rows: Vec<Row>,
}

/// One reading as the report keeps it.
#[derive(Debug, Clone, Copy)]
struct Sample {
    status: Status,
    value: Option<f64>,
}

/// Everything collected for one station × parameter.
#[derive(Default)]
struct Collected {
    /// By reading timestamp: the last reading received for it.
    samples: BTreeMap<i64, Sample>,
    rejected: u64,
}

/// Computes the rows from every record of the chain, oldest first: `records` are decoded
/// with `decoder`, judged against `stations`' limits from `catalogue`.
pub fn compute(
    records: impl IntoIterator<Item = Line>,
    decoder: Decoder,
    stations: &Stations,
    catalogue: &Catalogue,
    tz: Tz,
    period: &Period,
    filter: &Filter,
) -> Vec<Row> {
    let mut b = Builder::new(decoder, period.clone(), filter.clone());
    for line in records {
        b.add(&line, stations);
    }
    b.rows(stations, catalogue, tz)
}

/// [`compute`] one record at a time, so a long history is never held in memory.
pub struct Builder {
    decoder: Decoder,
    period: Period,
    filter: Filter,
    data: BTreeMap<(StationKey, Param), Collected>,
    o2_readings: Vec<Reading>,
}

impl Builder {
    pub fn new(decoder: Decoder, period: Period, filter: Filter) -> Builder {
        Builder {
            decoder,
            period,
            filter,
            data: BTreeMap::new(),
            o2_readings: Vec::new(),
        }
    }

    /// Takes the next record of the chain.
    pub fn add(&mut self, line: &Line, stations: &Stations) {
        let (from, to) = (self.period.from_ms, self.period.to_ms);
        let in_period = |ms: i64| from <= ms && ms < to;
        // quantrac's own records (windows) hold no readings; inbox files decode like MQTT.
        if line.topic.starts_with('$') && !line.topic.starts_with("$inbox/") {
            return;
        }
        let Some(payload) = line.payload_bytes() else {
            return;
        };
        let decoded = self
            .decoder
            .decode(&line.topic, &payload, line.received_at_ms);
        for r in decoded.readings {
            if !self.filter.matches(&r.key) || !in_period(r.ts_ms) {
                continue;
            }
            if r.param == Param::O2 {
                self.o2_readings.push(r.clone());
            }
            self.data
                .entry((r.key.clone(), r.param))
                .or_default()
                .samples
                .insert(
                    r.ts_ms,
                    Sample {
                        status: r.status,
                        value: r.value,
                    },
                );
        }
        // The rejections as journaled (the evidence), attributed by the station of the
        // record and the parameter their detail names: `reading 2 (SO2): …`.
        if !in_period(line.received_at_ms) {
            return;
        }
        let Some(key) = line.station.as_deref().and_then(parse_key) else {
            return;
        };
        if !self.filter.matches(&key) {
            return;
        }
        for j in &line.rejections {
            if let Some(param) = named_param(&j.detail, stations) {
                self.data.entry((key.clone(), param)).or_default().rejected += 1;
            }
        }
    }

    /// The rows: every configured station the filter takes × every parameter with a limit
    /// or with data in the period.
    pub fn rows(mut self, stations: &Stations, catalogue: &Catalogue, tz: Tz) -> Vec<Row> {
        // O2 of the same station and instant, status 00 only, the last received per instant.
        self.o2_readings.reverse();
        let mut seen = BTreeSet::new();
        self.o2_readings
            .retain(|r| seen.insert((r.key.clone(), r.ts_ms)));
        let o2 = o2::valid_o2(&self.o2_readings);
        let mut rows = Vec::new();
        for station in stations.iter().filter(|s| self.filter.matches(&s.key)) {
            let resolved = limits::resolve(station, catalogue);
            let mut params: BTreeSet<Param> = resolved.limits.keys().copied().collect();
            params.extend(
                self.data
                    .keys()
                    .filter(|(k, _)| *k == station.key)
                    .map(|(_, p)| *p),
            );
            for param in params {
                let collected = self.data.get(&(station.key.clone(), param));
                let limit = resolved.limits.get(&param);
                rows.push(row(station, param, limit, collected, &o2, tz, &self.period));
            }
        }
        rows
    }
}

fn row(
    station: &crate::config::Station,
    param: Param,
    limit: Option<&Limit>,
    collected: Option<&Collected>,
    o2: &o2::O2Values,
    tz: Tz,
    period: &Period,
) -> Row {
    let key = &station.key;
    let interval = station.expected_interval_s.max(1);
    let expected = ((period.to_ms - period.from_ms) / 1000).max(0) as u64 / interval;
    let mut counts = [0u64; 3];
    let hour = WindowSpec::parse("1h").expect("1h is a window");
    let mut series = windows::Series::new(
        key.clone(),
        param,
        hour,
        interval,
        station.min_capture,
        limit.cloned(),
    );
    let empty = Collected::default();
    let collected = collected.unwrap_or(&empty);
    for (&ts, s) in &collected.samples {
        counts[match s.status {
            Status::Normal => 0,
            Status::Calibrating => 1,
            Status::Fault => 2,
        }] += 1;
        let Some(value) = s.value.filter(|_| s.status == Status::Normal) else {
            continue;
        };
        let reading = Reading {
            key: key.clone(),
            param,
            ts_ms: ts,
            value: Some(value),
            status: s.status,
        };
        let compared = o2::value_ref(&reading, station.o2_ref, o2).unwrap_or(value);
        series.put(ts, Some(compared), tz, i64::MIN);
    }
    let points = series.close(i64::MAX);
    let valid_hours: Vec<_> = points.iter().filter(|p| p.valid).collect();
    let exceeded: Vec<_> = valid_hours.iter().filter(|p| p.exceeded).collect();
    let days: BTreeSet<_> = exceeded.iter().map(|p| local_day(p.start_ms, tz)).collect();
    let max_hour_mean = valid_hours.iter().map(|p| p.mean).reduce(f64::max);
    let max_hour_ratio = max_hour_mean.and_then(|m| limit.and_then(|l| limits::ratio(l, m)));
    let capture = if expected == 0 {
        0.0
    } else {
        (counts[0] as f64 / expected as f64).min(1.0)
    };
    Row {
        park: key.park().into(),
        site: key.site().into(),
        station: key.station().into(),
        param: param.symbol().into(),
        unit: param.canonical_unit().into(),
        limit: limit.map(limit_text).unwrap_or_default(),
        limit_source: limit.map(source_text).unwrap_or_default(),
        expected,
        received: collected.samples.len() as u64,
        valid: counts[0],
        calibrating: counts[1],
        fault: counts[2],
        rejected: collected.rejected,
        capture,
        hours: points.len() as u64,
        hours_valid: valid_hours.len() as u64,
        hours_exceeded: exceeded.len() as u64,
        days_exceeded: days.len() as u64,
        max_hour_mean,
        max_hour_ratio,
        hourly: points
            .iter()
            .map(|p| Hour {
                start_ms: p.start_ms,
                mean: p.mean,
                valid: p.valid,
                exceeded: p.exceeded,
            })
            .collect(),
        limit_max: limit.and_then(|l| l.max),
        limit_min: limit.and_then(|l| l.min),
    }
}

/// `150`, `5.5-9` (a range), `>=6` (a minimum only).
fn limit_text(l: &Limit) -> String {
    match (l.min, l.max) {
        (Some(lo), Some(hi)) => format!("{lo}-{hi}"),
        (None, Some(hi)) => format!("{hi}"),
        (Some(lo), None) => format!(">={lo}"),
        (None, None) => String::new(),
    }
}

fn source_text(l: &Limit) -> String {
    match &l.source {
        LimitSource::Permit => "permit".into(),
        LimitSource::Regulation { text, unverified } => {
            if *unverified {
                format!("{text} (unverified table value)")
            } else {
                text.to_string()
            }
        }
    }
}

fn parse_key(s: &str) -> Option<StationKey> {
    let mut parts = s.split('/');
    let (p, si, st) = (parts.next()?, parts.next()?, parts.next()?);
    StationKey::parse(p, si, st).ok()
}

/// The parameter a rejection's detail names: `reading 2 (SO2): …`, `line 0 (COD): …`.
fn named_param(detail: &str, stations: &Stations) -> Option<Param> {
    let head = detail.split(':').next()?;
    let inner = head.split_once('(')?.1.strip_suffix(')')?;
    stations.params.parse(inner.trim_matches('"'))
}

/// Local time of an hour, for the chart and the tables.
pub fn local_hour(ms: i64, tz: Tz) -> String {
    tz.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
