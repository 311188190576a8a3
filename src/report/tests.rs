//! The report's pure parts: the period, the parameter a rejection names, how limits and
//! numbers are written, CSV quoting.

use super::render::{cells, num};
use super::*;
use crate::model::LimitSource;

const HANOI: Tz = chrono_tz::Asia::Ho_Chi_Minh;

#[test]
fn dates_are_local_midnights_and_times_are_rfc3339() {
    let p = Period::parse("2026-11-10", "2026-11-12", HANOI).unwrap();
    // Midnight in Hanoi is 17:00 UTC the day before.
    assert_eq!(p.from_ms, 1_794_243_600_000); // 2026-11-09T17:00:00Z
    assert_eq!(p.to_ms - p.from_ms, 2 * 86_400_000);
    let t = Period::parse("2026-11-10T08:00:00+07:00", "2026-11-10T01:30:00Z", HANOI).unwrap();
    assert_eq!(t.to_ms - t.from_ms, 30 * 60_000);
    assert!(Period::parse("2026-11-12", "2026-11-10", HANOI).is_err());
    assert!(Period::parse("10/11/2026", "2026-11-12", HANOI)
        .unwrap_err()
        .contains("neither a date"));
}

#[test]
fn a_rejection_names_its_parameter_in_its_detail() {
    let stations = Stations::default();
    let p = |d: &str| named_param(d, &stations).map(|p| p.symbol());
    assert_eq!(
        p("reading 2 (SO2): unit \"ppb\" does not convert"),
        Some("SO2")
    );
    assert_eq!(p("line 0 (COD): value -3 is below 0"), Some("COD"));
    assert_eq!(p("reading 1 (\"XYZ\"): unknown parameter"), None);
    assert_eq!(p("not JSON: expected value at line 1"), None);
    assert_eq!(p("reading 3: \"param\" is missing"), None);
}

#[test]
fn limits_and_numbers_are_written_plainly() {
    let l = |min, max| Limit {
        min,
        max,
        source: LimitSource::Permit,
    };
    assert_eq!(limit_text(&l(None, Some(135.0))), "135");
    assert_eq!(limit_text(&l(Some(5.5), Some(9.0))), "5.5-9");
    assert_eq!(limit_text(&l(Some(6.0), None)), ">=6");
    assert_eq!(source_text(&l(None, Some(1.0))), "permit");
    let reg = Limit {
        min: None,
        max: Some(1.0),
        source: LimitSource::Regulation {
            text: "QCVN 19:2009/BTNMT Table 1 col B".into(),
            unverified: true,
        },
    };
    assert_eq!(
        source_text(&reg),
        "QCVN 19:2009/BTNMT Table 1 col B (unverified table value)"
    );
    assert_eq!(num(61.0 / 576.0), "0.1059");
    assert_eq!(num(150.0 / 135.0), "1.1111");
    assert_eq!(num(150.0), "150");
    assert_eq!(num(0.75), "0.75");
    assert_eq!(num(-0.00001), "0");
}

#[test]
fn csv_cells_are_quoted_when_they_hold_a_comma_or_a_quote() {
    let row = Row {
        park: "p".into(),
        site: "s".into(),
        station: "st".into(),
        param: "Temp".into(),
        unit: "°C".into(),
        limit: "40".into(),
        limit_source: "QCVN 40:2011/BTNMT Table 1 col B (Cmax = C, no coefficients)".into(),
        expected: 12,
        received: 0,
        valid: 0,
        calibrating: 0,
        fault: 0,
        rejected: 0,
        capture: 0.0,
        hours: 0,
        hours_valid: 0,
        hours_exceeded: 0,
        days_exceeded: 0,
        max_hour_mean: None,
        max_hour_ratio: None,
        hourly: vec![],
        limit_max: Some(40.0),
        limit_min: None,
    };
    let c = cells(&row);
    assert_eq!(c.len(), 20);
    assert_eq!(
        c[6],
        "\"QCVN 40:2011/BTNMT Table 1 col B (Cmax = C, no coefficients)\""
    );
    assert_eq!((c[18].as_str(), c[19].as_str()), ("", ""));
    let mut quoted = row.clone();
    quoted.limit_source = "say \"x\"".into();
    assert_eq!(cells(&quoted)[6], "\"say \"\"x\"\"\"");
}
