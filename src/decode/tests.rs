//! End-to-end tests of the decoding stage: topic + payload in, readings and rejections out.
//! Section names refer to the contract (`Topics and payloads`, `Parameters and canonical units`).

use super::*;

const HCM: Tz = chrono_tz::Asia::Ho_Chi_Minh;
/// 2026-11-29T14:05:00+07:00 = 2026-11-29T07:05:00Z.
const T0: i64 = 1_795_935_900_000;
/// Received one second after T0.
const RECV: i64 = T0 + 1_000;
const TOPIC: &str = "env/nam-dinh-vu/nd-textile/outfall-1";

fn decoder() -> Decoder {
    Decoder::new(&["env/{park}/{site}/{station}".to_owned()], HCM, 65_536).unwrap()
}

fn decode(payload: &str) -> Decoded {
    decoder().decode(TOPIC, payload.as_bytes(), RECV)
}

fn key() -> StationKey {
    StationKey::parse("nam-dinh-vu", "nd-textile", "outfall-1").unwrap()
}

/// The only rejection of a decode, checked to be of `reason`.
fn only_rejection(d: &Decoded, reason: Reason) -> &Rejection {
    assert_eq!(d.rejections.len(), 1, "{d:#?}");
    let r = &d.rejections[0];
    assert_eq!(r.reason, reason, "{r:?}");
    r
}

/// A one-reading JSON payload with the message time T0.
fn one(reading: &str) -> Decoded {
    decode(&format!(
        r#"{{"ts": "2026-11-29T14:05:00+07:00", "readings": [{reading}]}}"#
    ))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

// ---- the contract's examples ----

#[test]
fn contract_json_example_decodes_with_ppm_converted() {
    // Contract "Topics and payloads" JSON example; SO2 ppm → mg/Nm3 = ppm × 64.066 / 24.45
    // (QCVN 19:2009 normal conditions), and SO2 carries its own epoch-ms ts.
    let d = decode(
        r#"{"ts": "2026-11-29T14:05:00+07:00",
            "readings": [
              {"param": "COD", "value": 48.2, "unit": "mg/L", "status": "00"},
              {"param": "pH",  "value": 7.1},
              {"param": "SO2", "value": 120, "unit": "ppm", "ts": 1795935900000}
            ]}"#,
    );
    assert!(d.rejections.is_empty(), "{:?}", d.rejections);
    assert_eq!(d.key, Some(key()));
    let r = &d.readings;
    assert_eq!(r.len(), 3);
    assert_eq!(
        r[0],
        Reading {
            key: key(),
            param: Param::COD,
            ts_ms: T0,
            value: 48.2,
            status: Status::Normal
        }
    );
    assert_eq!((r[1].param, r[1].value, r[1].ts_ms), (Param::PH, 7.1, T0));
    assert_eq!(r[1].status, Status::Normal, "status defaults to 00");
    assert_eq!(r[2].param, Param::SO2);
    assert!(close(r[2].value, 120.0 * 64.066 / 24.45), "{}", r[2].value);
    assert_eq!(r[2].ts_ms, 1_795_935_900_000);
}

#[test]
fn circular_10_2021_text_with_crlf_and_local_time() {
    // Circular 10/2021 file lines; 20261129140500 in Asia/Ho_Chi_Minh = 2026-11-29T07:05:00Z.
    let d = decode(
        "COD\t48.2\tmg/L\t20261129140500\t00\r\n\
         pH\t7.1\t\t20261129140500\t00\r\n\
         TSS\t20\tmg/L\t20261129140000\t01\r\n",
    );
    assert!(d.rejections.is_empty(), "{:?}", d.rejections);
    assert_eq!(d.key, Some(key()));
    let r = &d.readings;
    assert_eq!(r.len(), 3);
    assert_eq!((r[0].param, r[0].value, r[0].ts_ms), (Param::COD, 48.2, T0));
    assert_eq!((r[1].param, r[1].value, r[1].ts_ms), (Param::PH, 7.1, T0));
    assert_eq!((r[2].param, r[2].ts_ms), (Param::TSS, T0 - 300_000));
    assert_eq!(r[2].status, Status::Calibrating);
}

#[test]
fn text_tolerates_lf_blank_lines_trailing_tabs_and_a_bom() {
    let d = decode(
        "\u{feff}COD\t48.2\tmg/L\t20261129140500\t00\t\n\n  \nNH4\t1500\tug/L\t20261129140500\t02",
    );
    assert!(d.rejections.is_empty(), "{:?}", d.rejections);
    assert_eq!(d.readings.len(), 2);
    assert_eq!(d.readings[1].param, Param::NH4);
    assert!(close(d.readings[1].value, 1.5));
    assert_eq!(d.readings[1].status, Status::Fault);
}

#[test]
fn offset_less_json_time_is_in_the_station_timezone() {
    // Contract: "an offset-less time is in stations.timezone".
    for ts in [
        "2026-11-29T14:05:00",
        "2026-11-29 14:05:00",
        "2026-11-29T14:05:00.000",
    ] {
        let d = decode(&format!(
            r#"{{"ts": "{ts}", "readings": [{{"param": "COD", "value": 1}}]}}"#
        ));
        assert_eq!(d.readings.len(), 1, "{ts}: {:?}", d.rejections);
        assert_eq!(d.readings[0].ts_ms, T0, "{ts}");
    }
}

#[test]
fn a_readings_own_ts_overrides_the_messages() {
    let d = decode(
        r#"{"ts": 1795935900000, "readings": [
            {"param": "COD", "value": 1, "ts": "2026-11-29T13:55:00+07:00"},
            {"param": "BOD5", "value": 2, "ts": null},
            {"param": "TN", "value": 3}
        ]}"#,
    );
    assert!(d.rejections.is_empty(), "{:?}", d.rejections);
    let ts: Vec<i64> = d.readings.iter().map(|r| r.ts_ms).collect();
    assert_eq!(ts, [T0 - 600_000, T0, T0]);
}

#[test]
fn readings_with_their_own_ts_need_no_message_ts() {
    let d = decode(r#"{"readings": [{"param": "COD", "value": 1, "ts": 1795935900000}]}"#);
    assert_eq!(d.readings.len(), 1, "{:?}", d.rejections);
}

// ---- one bad reading does not affect its neighbours ----

#[test]
fn a_bad_reading_rejects_only_itself() {
    // Contract: "One bad reading rejects that reading, not its neighbours."
    let d = decode(
        r#"{"ts": "2026-11-29T14:05:00+07:00", "readings": [
            {"param": "COD", "value": 48.2},
            {"param": "SO2", "value": 1, "unit": "ppb"},
            {"param": "pH", "value": 7.1}
        ]}"#,
    );
    assert_eq!(d.readings.len(), 2);
    assert_eq!(d.readings[0].param, Param::COD);
    assert_eq!(d.readings[1].param, Param::PH);
    let r = only_rejection(&d, Reason::Unit);
    assert_eq!(r.index, Some(1));
    assert_eq!(
        r.detail,
        r#"reading 1 (SO2): unit "ppb" does not convert to mg/Nm3"#
    );
}

#[test]
fn a_bad_line_rejects_only_itself_and_is_indexed_by_physical_line() {
    let d = decode(
        "COD\t48.2\tmg/L\t20261129140500\t00\r\n\
         \r\n\
         Benzene\t1\tmg/L\t20261129140500\t00\r\n\
         pH\t7.1\t-\t20261129140500\t00\r\n",
    );
    assert_eq!(d.readings.len(), 2);
    let r = only_rejection(&d, Reason::UnknownParam);
    assert_eq!(r.index, Some(2));
    assert_eq!(
        r.detail,
        r#"line 2 ("Benzene"): unknown parameter "Benzene""#
    );
}

#[test]
fn every_kind_of_bad_reading_among_good_ones() {
    let d = decode(
        r#"{"ts": "2026-11-29T14:05:00+07:00", "readings": [
            {"param": "COD", "value": 1},
            42,
            {"value": 1},
            {"param": "COD"},
            {"param": "COD", "value": "48.2"},
            {"param": "COD", "value": 1, "status": "07"},
            {"param": "Benzene", "value": 1},
            {"param": "COD", "value": 1, "unit": "ppm"},
            {"param": "COD", "value": -1},
            {"param": "COD", "value": 1, "ts": "yesterday"},
            {"param": "TSS", "value": 2}
        ]}"#,
    );
    assert_eq!(d.readings.len(), 2);
    assert_eq!(d.readings[1].param, Param::TSS);
    let got: Vec<(Option<usize>, Reason)> =
        d.rejections.iter().map(|r| (r.index, r.reason)).collect();
    use Reason::*;
    assert_eq!(
        got,
        [
            (Some(1), Malformed),
            (Some(2), Malformed),
            (Some(3), Malformed),
            (Some(4), Malformed),
            (Some(5), Malformed),
            (Some(6), UnknownParam),
            (Some(7), Unit),
            (Some(8), Value),
            (Some(9), Timestamp),
        ]
    );
}

// ---- whole-payload rejections ----

#[test]
fn too_large_payload_is_rejected_whole_but_keeps_the_key() {
    let mut dec = Decoder::new(&["env/{park}/{site}/{station}".to_owned()], HCM, 16).unwrap();
    let d = dec.decode(
        TOPIC,
        br#"{"readings": [{"param": "COD", "value": 1}]}"#,
        RECV,
    );
    let r = only_rejection(&d, Reason::TooLarge);
    assert_eq!(r.index, None);
    assert!(d.readings.is_empty());
    assert_eq!(d.key, Some(key()));
    // Exactly at the limit is allowed.
    let d = dec.decode(TOPIC, b"0123456789abcdef", RECV);
    assert_ne!(d.rejections[0].reason, Reason::TooLarge);
}

#[test]
fn topic_matching_no_template_is_rejected_whole() {
    let mut dec = decoder();
    for topic in [
        "env/p/s",
        "env/p/s/st/extra",
        "other/p/s/st",
        "",
        "env/p/s t/st",
        "env/p//st",
        "env/p/trạm/st",
    ] {
        let d = dec.decode(topic, b"COD\t1\tmg/L\t20261129140500\t00", RECV);
        let r = only_rejection(&d, Reason::Topic);
        assert_eq!(r.index, None);
        assert_eq!(d.key, None, "{topic}");
        assert!(d.readings.is_empty());
    }
    let d = dec.decode("other/p/s/st", b"", RECV);
    assert_eq!(
        d.rejections[0].detail,
        r#"topic "other/p/s/st" matches no template (env/{park}/{site}/{station})"#
    );
    let d = dec.decode("env/p/s t/st", b"", RECV);
    assert!(
        d.rejections[0].detail.contains("site \"s t\""),
        "{:?}",
        d.rejections
    );
}

#[test]
fn unreadable_payloads_are_malformed_whole_with_the_key_kept() {
    for payload in [
        &b""[..],
        b"  \r\n\t ",
        b"\xff\xfe\x00garbage",
        b"{\"readings\": [",
        b"{\"ts\": 1795935900000}",
        b"{\"readings\": {\"param\": \"COD\"}}",
        b"{\"readings\": null}",
        b"{\"readings\": []} trailing",
        b"The quick brown fox jumps over the lazy dog.",
        b"hello\tworld\nfoo\tbar",
        b"COD 48.2 mg/L 20261129140500 00",
    ] {
        let d = decoder().decode(TOPIC, payload, RECV);
        let r = only_rejection(&d, Reason::Malformed);
        assert_eq!(r.index, None, "{:?}", String::from_utf8_lossy(payload));
        assert!(d.readings.is_empty());
        assert_eq!(d.key, Some(key()));
    }
}

#[test]
fn whole_payload_details_say_what_was_wrong() {
    let detail = |p: &str| decode(p).rejections[0].detail.clone();
    assert_eq!(detail(""), "payload is empty");
    assert!(detail("{\"readings\": [").starts_with("not valid JSON: "));
    assert_eq!(
        detail(r#"{"ts": 1}"#),
        r#"JSON payload has no "readings" array"#
    );
    assert_eq!(
        detail(r#"{"readings": "COD=1"}"#),
        r#""readings" is a string, not an array"#
    );
    let d = decoder().decode(TOPIC, b"\xc3\x28", RECV);
    assert_eq!(
        d.rejections[0].detail,
        "payload is not UTF-8 (invalid byte at offset 0)"
    );
}

#[test]
fn empty_readings_array_is_a_message_with_nothing_in_it() {
    let d = decode(r#"{"ts": 1795935900000, "readings": []}"#);
    assert!(d.readings.is_empty());
    assert!(d.rejections.is_empty());
    assert_eq!(d.key, Some(key()));
}

#[test]
fn leading_whitespace_before_the_brace_is_still_json() {
    let d =
        decode("\r\n  {\"ts\": 1795935900000, \"readings\": [{\"param\": \"COD\", \"value\": 1}]}");
    assert_eq!(d.readings.len(), 1, "{:?}", d.rejections);
}

// ---- JSON reading shapes ----

#[test]
fn json_shape_errors_are_malformed_with_a_detail() {
    let cases = [
        (r#"42"#, "reading 0: is a number, not an object"),
        (r#"[1]"#, "reading 0: is an array, not an object"),
        (r#"{"value": 1}"#, r#"reading 0: has no "param""#),
        (
            r#"{"param": 7, "value": 1}"#,
            r#"reading 0: "param" is a number, not a string"#,
        ),
        (r#"{"param": "COD"}"#, r#"reading 0 (COD): has no "value""#),
        (
            r#"{"param": "COD", "value": "48.2"}"#,
            r#"reading 0 (COD): "value" is a string, not a number"#,
        ),
        (
            r#"{"param": "COD", "value": true}"#,
            r#"reading 0 (COD): "value" is a boolean, not a number"#,
        ),
        (
            r#"{"param": "COD", "value": 1, "unit": 3}"#,
            r#"reading 0 (COD): "unit" is a number, not a string"#,
        ),
        (
            r#"{"param": "COD", "value": 1, "value": 2}"#,
            r#"reading 0 (COD): "value" is given twice"#,
        ),
    ];
    for (reading, detail) in cases {
        let d = one(reading);
        let r = only_rejection(&d, Reason::Malformed);
        assert_eq!(r.detail, detail);
        assert_eq!(r.index, Some(0));
    }
}

#[test]
fn null_value_is_a_value_rejection() {
    // A present-but-null value is a missing measurement (typically with status 02), not a
    // broken payload: counted under `value`.
    let d = one(r#"{"param": "COD", "value": null, "status": "02"}"#);
    let r = only_rejection(&d, Reason::Value);
    assert_eq!(r.detail, "reading 0 (COD): value is null (no measurement)");
}

#[test]
fn escaped_strings_and_extra_fields_are_fine() {
    let d = one(
        r#"{"param": "C\u004fD", "value": 1, "unit": "mg\/L", "sensor": {"id": 3}, "q": [1e400]}"#,
    );
    assert_eq!(d.readings.len(), 1, "{:?}", d.rejections);
    assert_eq!(d.readings[0].param, Param::COD);
}

#[test]
fn status_codes_follow_circular_10_2021() {
    // Circular 10/2021: 00 measuring, 01 calibrating, 02 device fault; nothing else.
    let status = |s: &str| {
        let d = one(&format!(r#"{{"param": "COD", "value": 1, "status": {s}}}"#));
        d.readings.first().map(|r| r.status)
    };
    assert_eq!(status(r#""00""#), Some(Status::Normal));
    assert_eq!(status(r#""01""#), Some(Status::Calibrating));
    assert_eq!(status(r#""02""#), Some(Status::Fault));
    assert_eq!(status("2"), Some(Status::Fault));
    assert_eq!(status("null"), Some(Status::Normal));
    for bad in [r#""03""#, r#""OK""#, "7", "true"] {
        assert_eq!(status(bad), None, "{bad}");
        let d = one(&format!(
            r#"{{"param": "COD", "value": 1, "status": {bad}}}"#
        ));
        only_rejection(&d, Reason::Malformed);
    }
    let d = decode("COD\t1\tmg/L\t20261129140500\t09");
    let r = only_rejection(&d, Reason::Malformed);
    assert_eq!(
        r.detail,
        r#"line 0 (COD): status "09" is not a Circular 10/2021 code (00, 01, 02)"#
    );
}

// ---- parameters, units and values ----

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
            close(d.readings[0].value, want),
            "{param} {value} {unit} → {} (want {want})",
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
            "reading 0 (COD): value -0.1 mg/L is physically impossible (must be at least 0 mg/L)",
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
            "reading 0 (Flow): value -3600 m3/h is physically impossible (must be at least 0 m3/h)",
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
    let d = decode("COD\t48,2\tmg/L\t20261129140500\t00");
    let r = only_rejection(&d, Reason::Malformed);
    assert_eq!(
        r.detail,
        r#"line 0 (COD): value "48,2" is not a number (the decimal separator must be '.')"#
    );
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

// ---- times ----

#[test]
fn missing_time_everywhere_is_a_timestamp_rejection() {
    let d = decode(r#"{"readings": [{"param": "COD", "value": 1}]}"#);
    let r = only_rejection(&d, Reason::Timestamp);
    assert_eq!(
        r.detail,
        r#"reading 0 (COD): no time: neither the reading nor the message has "ts""#
    );
}

#[test]
fn unparsable_times_are_timestamp_rejections() {
    let cases = [
        (r#""2026-11-29T14:05""#, "reading 0 (COD): message ts \"2026-11-29T14:05\" is not RFC 3339, a local date-time or epoch milliseconds"),
        (r#"1795935900000.5"#, "reading 0 (COD): message ts 1795935900000.5 is not a whole number of epoch milliseconds"),
        (r#"true"#, "reading 0 (COD): message ts is a boolean, not a string or number"),
    ];
    for (ts, detail) in cases {
        let d = decode(&format!(
            r#"{{"ts": {ts}, "readings": [{{"param": "COD", "value": 1}}, {{"param": "TN", "value": 1, "ts": 1795935900000}}]}}"#
        ));
        assert_eq!(only_rejection(&d, Reason::Timestamp).detail, detail);
        // The reading with its own good time is unaffected by the bad message time.
        assert_eq!(d.readings.len(), 1);
        assert_eq!(d.readings[0].param, Param::TN);
    }
    let d = decode("COD\t1\tmg/L\t2026-11-29 14:05\t00\nTN\t1\tmg/L\t20261129140500\t00");
    let r = only_rejection(&d, Reason::Timestamp);
    assert_eq!(
        r.detail,
        r#"line 0 (COD): time "2026-11-29 14:05" is not yyyyMMddHHmmss"#
    );
    assert_eq!(d.readings.len(), 1);
}

#[test]
fn implausible_times_are_timestamp_rejections() {
    // Before 2000-01-01.
    let d = one(r#"{"param": "COD", "value": 1, "ts": "1999-12-31T23:59:59Z"}"#);
    assert_eq!(
        only_rejection(&d, Reason::Timestamp).detail,
        "reading 0 (COD): time 1999-12-31T23:59:59Z is before 2000-01-01"
    );
    // Epoch seconds where milliseconds are expected.
    let d = one(r#"{"param": "COD", "value": 1, "ts": 1795935900}"#);
    assert!(only_rejection(&d, Reason::Timestamp)
        .detail
        .ends_with("(epoch seconds? ts is in milliseconds)"));
    // More than 10 minutes after receipt; exactly 10 minutes is accepted.
    let ahead = |ms: i64| one(&format!(r#"{{"param": "COD", "value": 1, "ts": {ms}}}"#));
    assert_eq!(ahead(RECV + 600_000).readings.len(), 1);
    let d = ahead(RECV + 600_001);
    assert_eq!(
        only_rejection(&d, Reason::Timestamp).detail,
        "reading 0 (COD): time 2026-11-29T07:15:01.001Z is more than 10 minutes after the message arrived (2026-11-29T07:05:01Z)"
    );
}

#[test]
fn nonexistent_local_times_are_refused_in_a_zone_with_daylight_saving() {
    let mut dec = Decoder::new(
        &["env/{park}/{site}/{station}".to_owned()],
        chrono_tz::Europe::Berlin,
        1024,
    )
    .unwrap();
    let recv = 1_790_000_000_000; // 2026-09-21
    let d = dec.decode(TOPIC, b"COD\t1\tmg/L\t20260329023000\t00", recv);
    let r = only_rejection(&d, Reason::Timestamp);
    assert!(
        r.detail.contains("does not exist in Europe/Berlin"),
        "{}",
        r.detail
    );
}

// ---- decoder plumbing ----

#[test]
fn filters_come_from_templates_without_duplicates() {
    let dec = Decoder::new(
        &[
            "env/{park}/{site}/{station}".to_owned(),
            "env/{site}/{park}/{station}".to_owned(),
            "dl/{park}/{site}/{station}/txt".to_owned(),
        ],
        HCM,
        1024,
    )
    .unwrap();
    assert_eq!(dec.filters(), ["env/+/+/+", "dl/+/+/+/txt"]);
}

#[test]
fn multiple_templates_each_name_their_station() {
    let mut dec = Decoder::new(
        &[
            "env/{park}/{site}/{station}".to_owned(),
            "dl/{park}/{site}/{station}/txt".to_owned(),
        ],
        HCM,
        1024,
    )
    .unwrap();
    let d = dec.decode(
        "dl/nam-dinh-vu/nd-textile/outfall-1/txt",
        b"COD\t1\tmg/L\t20261129140500\t00",
        RECV,
    );
    assert_eq!(d.key, Some(key()));
    assert_eq!(d.readings[0].key, key());
    let d = dec.decode("dl/a/b/c", b"", RECV);
    only_rejection(&d, Reason::Topic);
}

#[test]
fn bad_templates_fail_construction() {
    for t in [
        "env/+/{site}/{station}",
        "env/{park}/{site}",
        "env/{park}/x{site}/{station}",
    ] {
        assert!(Decoder::new(&[t.to_owned()], HCM, 1024).is_err(), "{t}");
    }
    assert!(matches!(
        Decoder::new(&[], HCM, 1024),
        Err(TemplateError::NoTemplates)
    ));
}

#[test]
fn topic_cache_is_bounded() {
    let mut dec = decoder();
    for i in 0..KEY_CACHE_LIMIT + 5 {
        let d = dec.decode(&format!("env/p/s/st{i}"), b"", RECV);
        assert_eq!(
            d.key.as_ref().map(|k| k.station().to_owned()),
            Some(format!("st{i}"))
        );
    }
    assert!(dec.keys.len() <= KEY_CACHE_LIMIT);
    assert_eq!(dec.keys.len(), 5);
    // A cached topic gives the same key as a fresh match.
    let a = dec.decode("env/p/s/st0", b"", RECV).key;
    let b = dec.decode("env/p/s/st0", b"", RECV).key;
    assert_eq!(a, b);
}

#[test]
fn hostile_text_in_details_is_quoted_and_cut_short() {
    let long = "x\"".repeat(200);
    let d = one(&format!(
        r#"{{"param": "{}", "value": 1}}"#,
        long.replace('"', "\\\"")
    ));
    let r = only_rejection(&d, Reason::UnknownParam);
    assert!(r.detail.len() < 250, "{}", r.detail);
    assert!(r.detail.contains('…'));
}
