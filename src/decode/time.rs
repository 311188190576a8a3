//! Reading times: RFC 3339 with an offset, offset-less local date-times (in
//! `stations.timezone`), integer epoch milliseconds, and the `yyyyMMddHHmmss` local time of
//! Circular 10/2021 files.
//!
//! The parsers are hand-written instead of going through chrono's format machinery: every
//! message carries at least one time, and these few fixed layouts parse in a handful of byte
//! comparisons. chrono still does the calendar and time-zone arithmetic.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone};
use chrono_tz::Tz;

/// 2000-01-01T00:00:00Z. Anything older is a datalogger with a reset clock, not a reading.
pub(crate) const EARLIEST_MS: i64 = 946_684_800_000;
/// How far ahead of its receipt a reading may be stamped (datalogger clock drift).
pub(crate) const MAX_AHEAD_MS: i64 = 10 * 60 * 1000;

/// Why a time could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimeProblem {
    /// Not one of the accepted layouts, or not a calendar date/time.
    Syntax,
    /// A local time that the clock skipped (a daylight-saving gap in the configured zone).
    Nonexistent,
    /// A number that is not a whole number of milliseconds.
    NotInteger,
}

/// Why a well-formed time is not believable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Implausible {
    BeforeEarliest,
    InFuture,
}

/// Parses `2026-11-29T14:05:00+07:00`, `…Z`, `2026-11-29 14:05:00.250` (offset-less → `tz`).
/// Fractional seconds beyond milliseconds are truncated.
pub(crate) fn parse_iso(s: &str, tz: Tz) -> Result<i64, TimeProblem> {
    let b = s.trim().as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(TimeProblem::Syntax);
    }
    let naive = naive(
        digits(&b[0..4])?,
        digits(&b[5..7])?,
        digits(&b[8..10])?,
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    )?;
    let mut rest = &b[19..];
    let mut millis = 0i64;
    if let Some((b'.', frac)) = rest.split_first() {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return Err(TimeProblem::Syntax);
        }
        for (i, c) in frac[..n.min(3)].iter().enumerate() {
            millis += i64::from(c - b'0') * [100, 10, 1][i];
        }
        rest = &frac[n..];
    }
    let base = match rest {
        [] => local_to_utc_ms(naive, tz)?,
        [b'Z' | b'z'] => naive.and_utc().timestamp_millis(),
        [sign @ (b'+' | b'-'), tail @ ..] => {
            let (h, m) = match tail {
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => {
                    (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?)
                }
                [h1, h2] => (digits(&[*h1, *h2])?, 0),
                _ => return Err(TimeProblem::Syntax),
            };
            if h > 23 || m > 59 {
                return Err(TimeProblem::Syntax);
            }
            let offset_ms = (i64::from(h) * 60 + i64::from(m)) * 60_000;
            let utc = naive.and_utc().timestamp_millis();
            if *sign == b'+' {
                utc - offset_ms
            } else {
                utc + offset_ms
            }
        }
        _ => return Err(TimeProblem::Syntax),
    };
    Ok(base + millis)
}

/// Parses the Circular 10/2021 file time `yyyyMMddHHmmss`, local to `tz`.
pub(crate) fn parse_compact(s: &str, tz: Tz) -> Result<i64, TimeProblem> {
    let b = s.trim().as_bytes();
    if b.len() != 14 {
        return Err(TimeProblem::Syntax);
    }
    let naive = naive(
        digits(&b[0..4])?,
        digits(&b[4..6])?,
        digits(&b[6..8])?,
        digits(&b[8..10])?,
        digits(&b[10..12])?,
        digits(&b[12..14])?,
    )?;
    local_to_utc_ms(naive, tz)
}

/// Parses a JSON number as epoch milliseconds. `1795935900000.0` is accepted (some encoders
/// write every number as a float); a fraction of a millisecond is not.
pub(crate) fn parse_epoch_ms(number: &str) -> Result<i64, TimeProblem> {
    if let Ok(ms) = number.parse::<i64>() {
        return Ok(ms);
    }
    match number.parse::<f64>() {
        // 2^53: beyond it a float no longer holds every integer.
        Ok(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
            Ok(f as i64)
        }
        Ok(_) => Err(TimeProblem::NotInteger),
        Err(_) => Err(TimeProblem::Syntax),
    }
}

/// Rejects times before 2000 and more than ten minutes after the message arrived.
pub(crate) fn check_plausible(ts_ms: i64, received_at_ms: i64) -> Result<(), Implausible> {
    if ts_ms < EARLIEST_MS {
        Err(Implausible::BeforeEarliest)
    } else if ts_ms > received_at_ms.saturating_add(MAX_AHEAD_MS) {
        Err(Implausible::InFuture)
    } else {
        Ok(())
    }
}

/// `2026-11-29T07:05:00Z`, for rejection details.
pub(crate) fn fmt_ms(ms: i64) -> String {
    match DateTime::from_timestamp_millis(ms) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        None => format!("{ms} ms"),
    }
}

/// Local wall-clock time in `tz` to epoch milliseconds. An ambiguous time (the hour repeated
/// when clocks go back) takes the earlier instant; a skipped one is refused.
fn local_to_utc_ms(naive: NaiveDateTime, tz: Tz) -> Result<i64, TimeProblem> {
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.timestamp_millis())
        .ok_or(TimeProblem::Nonexistent)
}

fn naive(y: u32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Result<NaiveDateTime, TimeProblem> {
    let year = i32::try_from(y).map_err(|_| TimeProblem::Syntax)?;
    NaiveDate::from_ymd_opt(year, mo, d)
        .and_then(|date| date.and_hms_opt(h, mi, s))
        .ok_or(TimeProblem::Syntax)
}

/// A fixed-width run of ASCII digits.
fn digits(b: &[u8]) -> Result<u32, TimeProblem> {
    b.iter().try_fold(0u32, |acc, c| {
        if c.is_ascii_digit() {
            Ok(acc * 10 + u32::from(c - b'0'))
        } else {
            Err(TimeProblem::Syntax)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Tz;

    const HCM: Tz = chrono_tz::Asia::Ho_Chi_Minh;
    /// 2026-11-29T07:05:00Z.
    const T0: i64 = 1_795_935_900_000;

    #[test]
    fn rfc3339_with_offset_or_z() {
        // Contract "Topics and payloads": ts is RFC 3339.
        assert_eq!(parse_iso("2026-11-29T14:05:00+07:00", HCM), Ok(T0));
        assert_eq!(parse_iso("2026-11-29T07:05:00Z", HCM), Ok(T0));
        assert_eq!(parse_iso("2026-11-29t07:05:00z", HCM), Ok(T0));
        assert_eq!(parse_iso("2026-11-29T02:05:00-0500", HCM), Ok(T0));
        assert_eq!(
            parse_iso("2026-11-29T14:05:00.250+07:00", HCM),
            Ok(T0 + 250)
        );
        assert_eq!(parse_iso("2026-11-29T14:05:00.2+07:00", HCM), Ok(T0 + 200));
        assert_eq!(
            parse_iso("2026-11-29T14:05:00.123456789+07:00", HCM),
            Ok(T0 + 123)
        );
    }

    #[test]
    fn offset_less_time_is_local_to_the_station_timezone() {
        // Contract: an offset-less time is in stations.timezone (UTC+7, no DST).
        assert_eq!(parse_iso("2026-11-29T14:05:00", HCM), Ok(T0));
        assert_eq!(parse_iso("2026-11-29 14:05:00", HCM), Ok(T0));
        assert_eq!(parse_iso("2026-11-29 14:05:00.5", HCM), Ok(T0 + 500));
    }

    #[test]
    fn malformed_iso_times_are_refused() {
        for s in [
            "",
            "2026-11-29",
            "2026-11-29T14:05",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-29T24:00:00Z",
            "2026-11-29T14:05:00+7",
            "2026-11-29T14:05:00+07:00x",
            "2026-11-29T14:05:00.+07:00",
            "2026-11-29T14:05:00+25:00",
            "2026/11/29 14:05:00",
            "yesterday at noon",
        ] {
            assert_eq!(parse_iso(s, HCM), Err(TimeProblem::Syntax), "{s:?}");
        }
    }

    #[test]
    fn circular_10_2021_compact_local_time() {
        // Circular 10/2021 file lines carry yyyyMMddHHmmss in local time.
        assert_eq!(parse_compact("20261129140500", HCM), Ok(T0));
        assert_eq!(
            parse_compact("2026112914050", HCM),
            Err(TimeProblem::Syntax)
        );
        assert_eq!(
            parse_compact("20261329140500", HCM),
            Err(TimeProblem::Syntax)
        );
        assert_eq!(
            parse_compact("2026-11-29T14:", HCM),
            Err(TimeProblem::Syntax)
        );
    }

    #[test]
    fn daylight_saving_gap_is_refused_and_overlap_takes_the_earlier_instant() {
        let berlin: Tz = chrono_tz::Europe::Berlin;
        // 2026-03-29 02:30 does not exist in Berlin (clocks jump 02:00 → 03:00).
        assert_eq!(
            parse_iso("2026-03-29T02:30:00", berlin),
            Err(TimeProblem::Nonexistent)
        );
        assert_eq!(
            parse_compact("20260329023000", berlin),
            Err(TimeProblem::Nonexistent)
        );
        // 2026-10-25 02:30 happens twice; the first one is at +02:00 = 00:30Z.
        assert_eq!(
            parse_iso("2026-10-25T02:30:00", berlin),
            parse_iso("2026-10-25T00:30:00Z", berlin)
        );
    }

    #[test]
    fn epoch_milliseconds() {
        assert_eq!(parse_epoch_ms("1795935900000"), Ok(T0));
        assert_eq!(parse_epoch_ms("1795935900000.0"), Ok(T0));
        assert_eq!(parse_epoch_ms("1.7959359e12"), Ok(T0));
        assert_eq!(
            parse_epoch_ms("1795935900000.5"),
            Err(TimeProblem::NotInteger)
        );
        assert_eq!(parse_epoch_ms("1e400"), Err(TimeProblem::NotInteger));
    }

    #[test]
    fn plausibility_window() {
        assert_eq!(check_plausible(T0, T0), Ok(()));
        assert_eq!(check_plausible(T0 + MAX_AHEAD_MS, T0), Ok(()));
        assert_eq!(
            check_plausible(T0 + MAX_AHEAD_MS + 1, T0),
            Err(Implausible::InFuture)
        );
        assert_eq!(check_plausible(EARLIEST_MS, T0), Ok(()));
        assert_eq!(
            check_plausible(EARLIEST_MS - 1, T0),
            Err(Implausible::BeforeEarliest)
        );
        assert_eq!(fmt_ms(T0), "2026-11-29T07:05:00Z");
    }
}
