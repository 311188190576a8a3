//! Parameters, units and values (`Parameters and canonical units`): symbols, unit conversion,
//! impossible values, text fields that are not numbers.

use super::*;

#[test]
fn unknown_parameters_are_refused_in_both_formats() {
    let d = one(r#"{"param": "Benzene", "value": 1}"#);
    let r = only_rejection(&d, Reason::UnknownParam);
    assert_eq!(
        r.detail,
        r#"reading 0 ("Benzene"): unknown parameter "Benzene""#
    );
    let d = decode("XYZ\t1\tmg/L\t20261129140500\t00\nCOD\t1\tmg/L\t20261129140500\t00");
    assert_eq!(only_rejection(&d, Reason::UnknownParam).index, Some(0));
    assert_eq!(d.readings.len(), 1);
}

#[test]
fn parameter_symbols_are_case_insensitive() {
    // Contract: symbols are case-insensitive on input, stored as in the table.
    let d = one(r#"{"param": "so2", "value": 1, "unit": "MG/NM3"}"#);
    assert_eq!(d.readings[0].param, Param::SO2);
}

#[test]
fn each_unit_family_converts_to_its_canonical_unit() {
    // Contract "Parameters and canonical units".
    let cases: &[(&str, f64, &str, f64)] = &[
        ("Flow", 0.5, "m3/s", 1800.0),
        ("Flow", 2400.0, "m3/day", 100.0),
        ("Flow", 12.0, "m³/h", 12.0),
        ("Temp", 31.0, "oC", 31.0),
        ("Temp", 31.0, "C", 31.0),
        ("pH", 7.1, "", 7.1),
        ("pH", 7.1, "pH", 7.1),
        ("Color", 40.0, "Pt/Co", 40.0),
        ("COD", 48.2, "mg/l", 48.2),
        ("TSS", 20.0, "g/m3", 20.0),
        ("NH4", 1500.0, "ug/L", 1.5),
        ("O2", 9.5, "%", 9.5),
        ("PM", 80.0, "mg/Nm3", 80.0),
        ("SO2", 120.0, "ppm", 120.0 * 64.066 / 24.45),
        ("NOx", 50.0, "ppm", 50.0 * 46.006 / 24.45),
        ("CO", 10.0, "ppm", 10.0 * 28.010 / 24.45),
        ("HF", 1.0, "ppm", 20.006 / 24.45),
        ("P", 101_325.0, "Pa", 101.325),
        ("P", 760.0, "mmHg", 760.0 * 0.133322),
        ("P", 1013.25, "hPa", 101.325),
    ];
    for &(param, value, unit, want) in cases {
        let d = one(&format!(
            r#"{{"param": "{param}", "value": {value}, "unit": "{unit}"}}"#
        ));
        assert_eq!(d.readings.len(), 1, "{param} {unit}: {:?}", d.rejections);
        assert!(
            close(d.readings[0].value.unwrap(), want),
            "{param} {value} {unit} → {:?} (want {want})",
            d.readings[0].value
        );
    }
}

#[test]
fn units_that_do_not_convert_are_refused() {
    let cases = [
        (
            r#"{"param": "PM", "value": 1, "unit": "ppm"}"#,
            r#"reading 0 (PM): unit "ppm" does not convert to mg/Nm3"#,
        ),
        (
            r#"{"param": "pH", "value": 7, "unit": "mg/L"}"#,
            r#"reading 0 (pH): unit "mg/L" does not apply to pH, which has no unit"#,
        ),
        (
            r#"{"param": "Temp", "value": 300, "unit": "K"}"#,
            r#"reading 0 (Temp): unit "K" does not convert to °C"#,
        ),
        (
            r#"{"param": "Flow", "value": 1, "unit": "L/s"}"#,
            r#"reading 0 (Flow): unit "L/s" does not convert to m3/h"#,
        ),
    ];
    for (reading, detail) in cases {
        let d = one(reading);
        assert_eq!(only_rejection(&d, Reason::Unit).detail, detail);
    }
    let d = decode("COD\t1\tppm\t20261129140500\t00");
    assert_eq!(only_rejection(&d, Reason::Unit).index, Some(0));
}

#[test]
fn impossible_values_are_refused_after_conversion() {
    // Contract: values finite; pH 0–14, no negative concentrations or flows, O2 0–25 %,
    // temperatures −50…1500 °C.
    let cases = [
        (
            r#"{"param": "pH", "value": 14.5}"#,
            "reading 0 (pH): value 14.5 is physically impossible (must be 0 to 14)",
        ),
        (
            r#"{"param": "COD", "value": -0.1}"#,
            "reading 0 (COD): value -0.1 mg/L is physically impossible (must be 0 to 100000 mg/L)",
        ),
        (
            r#"{"param": "O2", "value": 26}"#,
            "reading 0 (O2): value 26 % is physically impossible (must be 0 to 25 %)",
        ),
        (
            r#"{"param": "Temp", "value": -60}"#,
            "reading 0 (Temp): value -60 °C is physically impossible (must be -50 to 1500 °C)",
        ),
        (
            r#"{"param": "Flow", "value": -1, "unit": "m3/s"}"#,
            "reading 0 (Flow): value -3600 m3/h is physically impossible (must be 0 to 10000000 m3/h)",
        ),
        (
            r#"{"param": "COD", "value": 1e400}"#,
            "reading 0 (COD): value is not a finite number",
        ),
        (
            r#"{"param": "Flow", "value": 1e306, "unit": "m3/s"}"#,
            "reading 0 (Flow): value is not a finite number",
        ),
    ];
    for (reading, detail) in cases {
        let d = one(reading);
        assert_eq!(only_rejection(&d, Reason::Value).detail, detail);
    }
    // A finite number no outfall can produce (issue: hostile world, row 12).
    let d = one(r#"{"param": "COD", "value": 1e308}"#);
    let detail = &only_rejection(&d, Reason::Value).detail;
    assert!(detail.ends_with("(must be 0 to 100000 mg/L)"), "{detail}");
    // Limits of the range are possible values.
    assert_eq!(one(r#"{"param": "pH", "value": 14}"#).readings.len(), 1);
    assert_eq!(one(r#"{"param": "COD", "value": 0}"#).readings.len(), 1);
    // Text: Rust's float parser reads NaN and inf; both are refused as values.
    for v in ["NaN", "inf", "-inf", "1e400"] {
        let d = decode(&format!("COD\t{v}\tmg/L\t20261129140500\t00"));
        only_rejection(&d, Reason::Value);
    }
}

#[test]
fn text_values_that_are_not_numbers_are_malformed() {
    // A decimal comma is read when it is the only separator (issue #14); a comma beside a
    // point is a thousands separator quantrac will not guess about.
    let d = decode("COD\t1,248.2\tmg/L\t20261129140500\t00");
    let r = only_rejection(&d, Reason::Malformed);
    assert_eq!(r.detail, r#"line 0 (COD): value "1,248.2" is not a number"#);
    let d = decode("COD\tabc\tmg/L\t20261129140500\t00");
    only_rejection(&d, Reason::Malformed);
}

#[test]
fn text_lines_with_the_wrong_field_count_are_malformed() {
    let d = decode(
        "COD\t48.2\tmg/L\t20261129140500\n\
         pH\t7.1\t\t20261129140500\t00\n\
         TSS\t20\tmg/L\t20261129140500\t00\textra\n\
         not a reading\n",
    );
    assert_eq!(d.readings.len(), 1);
    let got: Vec<(Option<usize>, Reason)> =
        d.rejections.iter().map(|r| (r.index, r.reason)).collect();
    assert_eq!(
        got,
        [
            (Some(0), Reason::Malformed),
            (Some(2), Reason::Malformed),
            (Some(3), Reason::Malformed)
        ]
    );
    assert_eq!(
        d.rejections[0].detail,
        "line 0 (COD): expected 5 TAB-separated fields (SYMBOL, VALUE, UNIT, yyyyMMddHHmmss, STATUS), found 4"
    );
}
