//! Periods and what a period's file says about each parameter: pure functions of the
//! readings and the period, no clock, no I/O.
//!
//! A period is `(end − period_s, end]`, its end on a multiple of `period_s` of the local clock
//! (`stations.timezone`): with 5 minutes, 14:00:00 < t ≤ 14:05:00 is the file of 14:05:00.
//! The end belongs to the period because a datalogger's file of 14:05:00 holds the readings it
//! took at 14:05:00 (Circular 10/2021: one file per station per transmission, the lines
//! timed like the file).

use chrono::{Offset, TimeZone};
use chrono_tz::Tz;

use crate::config::UplinkValue;
use crate::model::{Param, Reading, Status};

/// The end (Unix ms) of the period that holds `ts_ms`.
pub fn end_of(ts_ms: i64, period_ms: i64, tz: Tz) -> i64 {
    let offset = offset_ms(ts_ms, tz);
    let local = ts_ms + offset;
    let end_local = (local + period_ms - 1).div_euclid(period_ms) * period_ms;
    end_local - offset
}

/// The local clock's offset from UTC at `ts_ms`, in ms.
fn offset_ms(ts_ms: i64, tz: Tz) -> i64 {
    match tz.timestamp_millis_opt(ts_ms) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            i64::from(t.offset().fix().local_minus_utc()) * 1000
        }
        chrono::LocalResult::None => 0,
    }
}

/// The local time of `ts_ms` (the time written in a file and its name).
pub fn local(ts_ms: i64, tz: Tz) -> chrono::NaiveDateTime {
    tz.timestamp_millis_opt(ts_ms)
        .single()
        .map(|t| t.naive_local())
        .unwrap_or_default()
}

/// One line of a file: a parameter's value (none for a calibration or fault reported without
/// a number) and status.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Line {
    pub param: Param,
    pub value: Option<f64>,
    pub status: Status,
}

/// One line per parameter with a reading in the period, in the parameter table's order.
///
/// - `last`: the reading with the latest own time (the later one in journal order on a tie),
///   its value and status, as a datalogger sends the value it has at the file's time.
/// - `mean`: the mean of the status-`00` readings, status `00`; a parameter with none (the
///   analyser calibrating or in fault all period) gets its last reading, with its status.
pub fn lines<'a>(readings: impl IntoIterator<Item = &'a Reading>, how: UplinkValue) -> Vec<Line> {
    // (param, last reading, sum and count of the status-00 values)
    let mut by_param: Vec<(Param, &Reading, f64, u32)> = Vec::new();
    for r in readings {
        let normal = match (r.status, r.value) {
            (Status::Normal, Some(v)) => Some(v),
            _ => None,
        };
        match by_param.iter_mut().find(|e| e.0 == r.param) {
            Some(e) => {
                if r.ts_ms >= e.1.ts_ms {
                    e.1 = r;
                }
                if let Some(v) = normal {
                    e.2 += v;
                    e.3 += 1;
                }
            }
            None => by_param.push((
                r.param,
                r,
                normal.unwrap_or(0.0),
                u32::from(normal.is_some()),
            )),
        }
    }
    by_param.sort_by_key(|e| e.0.index());
    by_param
        .into_iter()
        .map(|(param, last, sum, n)| match how {
            UplinkValue::Mean if n > 0 => Line {
                param,
                value: Some(sum / f64::from(n)),
                status: Status::Normal,
            },
            _ => Line {
                param,
                value: last.value,
                status: last.status,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::StationKey;

    const HCM: Tz = chrono_tz::Asia::Ho_Chi_Minh;
    /// 2026-11-29 14:05:00 +07:00.
    const T: i64 = 1_795_935_900_000;
    const FIVE_MIN: i64 = 300_000;

    fn r(param: &str, secs: i64, value: Option<f64>, status: Status) -> Reading {
        Reading {
            key: StationKey::parse("p", "s", "k").unwrap(),
            param: Param::parse(param).unwrap(),
            ts_ms: T + secs * 1000,
            value,
            status,
        }
    }

    // A datalogger's file of 14:05:00 holds its reading of 14:05:00: the period is
    // (14:00:00, 14:05:00].
    #[test]
    fn periods_end_on_the_local_clock_and_include_their_end() {
        assert_eq!(end_of(T, FIVE_MIN, HCM), T);
        assert_eq!(end_of(T - 1, FIVE_MIN, HCM), T);
        assert_eq!(end_of(T - FIVE_MIN + 1, FIVE_MIN, HCM), T);
        assert_eq!(end_of(T + 1, FIVE_MIN, HCM), T + FIVE_MIN);
        // Hourly and daily periods follow the local clock (+07:00), not UTC.
        let day = 86_400_000;
        let midnight_local = end_of(T, day, HCM);
        assert_eq!(
            local(midnight_local, HCM).to_string(),
            "2026-11-30 00:00:00"
        );
        assert_eq!(local(T, HCM).to_string(), "2026-11-29 14:05:00");
    }

    #[test]
    fn last_takes_the_newest_reading_with_its_status() {
        let rs = [
            r("COD", -200, Some(40.0), Status::Normal),
            r("COD", 0, None, Status::Calibrating),
            r("pH", -100, Some(7.1), Status::Normal),
            r("COD", -100, Some(44.0), Status::Normal),
        ];
        let l = lines(&rs, UplinkValue::Last);
        assert_eq!(l.len(), 2);
        let cod = l.iter().find(|l| l.param.symbol() == "COD").unwrap();
        assert_eq!((cod.value, cod.status), (None, Status::Calibrating));
        let ph = l.iter().find(|l| l.param.symbol() == "pH").unwrap();
        assert_eq!((ph.value, ph.status), (Some(7.1), Status::Normal));
    }

    // `mean` averages the status-00 readings only (Circular 10/2021: 01 calibrating and 02 fault
    // values are not measurements); a parameter with none keeps its last status.
    #[test]
    fn mean_averages_measurements_and_keeps_faults_visible() {
        let rs = [
            r("COD", -200, Some(40.0), Status::Normal),
            r("COD", -100, Some(999.0), Status::Calibrating),
            r("COD", 0, Some(50.0), Status::Normal),
            r("TSS", -100, Some(3.0), Status::Fault),
            r("TSS", 0, None, Status::Fault),
        ];
        let l = lines(&rs, UplinkValue::Mean);
        let cod = l.iter().find(|l| l.param.symbol() == "COD").unwrap();
        assert_eq!((cod.value, cod.status), (Some(45.0), Status::Normal));
        let tss = l.iter().find(|l| l.param.symbol() == "TSS").unwrap();
        assert_eq!((tss.value, tss.status), (None, Status::Fault));
        assert!(lines(&[], UplinkValue::Mean).is_empty());
    }
}
