//! The rules applied to one reading: its window sample, its instantaneous verdict, and what
//! the status page keeps of it.

use chrono_tz::Tz;

use super::ParamState;
use crate::compliance::{limits, windows};
use crate::model::status::Exceedance;
use crate::model::status::Latest;
use crate::model::{Judged, Limit, Reading, Status};

/// The time zone's UTC offset at the last timestamp asked about: the readings of one message
/// nearly always share their timestamp, so the zone is consulted about once per message.
#[derive(Default)]
pub(super) struct Offset(Option<(i64, i64)>);

impl Offset {
    pub(super) fn at(&mut self, ts_ms: i64, tz: Tz) -> i64 {
        match self.0 {
            Some((ts, off)) if ts == ts_ms => off,
            _ => {
                let off = windows::offset_ms(ts_ms, tz);
                self.0 = Some((ts_ms, off));
                off
            }
        }
    }
}

/// What a reading gives its windows: the (O2-corrected) value of a status-00 reading; nothing
/// for a calibration, a fault, or a status event without a value.
pub(super) fn sample(reading: &Reading, value_ref: Option<f64>) -> Option<f64> {
    match (reading.status, reading.value) {
        (Status::Normal, Some(v)) => Some(value_ref.unwrap_or(v)),
        _ => None,
    }
}

/// The instantaneous verdict. Readings of stations that are not configured have no limit,
/// hence no verdict; neither has a reading that is not status 00 (nor one without a value).
pub(super) fn verdict(reading: Reading, value_ref: Option<f64>, limit: Option<Limit>) -> Judged {
    let (ratio, exceeded) = instant(limit.as_ref(), &reading, value_ref);
    Judged {
        reading,
        value_ref,
        limit,
        ratio,
        exceeded,
    }
}

/// The instantaneous ratio and verdict: only status-00 readings with a value are compared.
pub(super) fn instant(
    limit: Option<&Limit>,
    reading: &Reading,
    value_ref: Option<f64>,
) -> (Option<f64>, bool) {
    match (limit, sample(reading, value_ref)) {
        (Some(l), Some(v)) => (limits::ratio(l, v), limits::exceeds(l, v)),
        _ => (None, false),
    }
}

impl ParamState {
    /// Keeps the newest reading of a parameter and its latest run of exceeded readings. A run
    /// starts at the first exceeded reading after one that was not, and ends with the next
    /// reading that is not (whatever its status: a calibration interrupts it). Late readings
    /// move neither.
    pub(super) fn observe(
        &mut self,
        reading: &Reading,
        value_ref: Option<f64>,
        ratio: Option<f64>,
        exceeded: bool,
    ) {
        if self
            .seen
            .as_ref()
            .and_then(|s| s.latest)
            .is_some_and(|l| l.ts_ms > reading.ts_ms)
        {
            return;
        }
        let seen = self.seen.get_or_insert_with(Box::default);
        let latest = &mut seen.latest;
        let ongoing = latest.and_then(|l| l.exceeding_since_ms);
        let since = match ongoing {
            _ if !exceeded => None,
            Some(since) => Some(since),
            None => Some(reading.ts_ms),
        };
        if let Some(value) = sample(reading, value_ref).filter(|_| exceeded) {
            let run = match (ongoing, seen.exceedance) {
                (Some(_), Some(run)) if run.peak >= value => Exceedance {
                    to_ms: reading.ts_ms,
                    ..run
                },
                (Some(_), Some(run)) => Exceedance {
                    to_ms: reading.ts_ms,
                    peak: value,
                    peak_ratio: ratio,
                    ..run
                },
                _ => Exceedance {
                    from_ms: reading.ts_ms,
                    to_ms: reading.ts_ms,
                    peak: value,
                    peak_ratio: ratio,
                },
            };
            seen.exceedance = Some(run);
        }
        *latest = Some(Latest {
            ts_ms: reading.ts_ms,
            value: reading.value,
            value_ref,
            status: reading.status,
            ratio,
            exceeded,
            exceeding_since_ms: since,
        });
    }
}
