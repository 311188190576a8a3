//! JSON reading shapes: malformed readings, null values, escapes and extra fields, status codes.

use super::*;

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
fn null_value_is_a_status_event_with_01_or_02_and_a_value_rejection_with_00() {
    // A present-but-null value is a missing measurement, not a broken payload. With status 02
    // (or 01) it is the analyser saying it is in fault: a status event (issue #14). With 00
    // there should have been a number: counted under `value`.
    let d = one(r#"{"param": "COD", "value": null, "status": "02"}"#);
    assert!(d.rejections.is_empty(), "{:?}", d.rejections);
    assert_eq!(d.readings[0].value, None);
    assert_eq!(d.readings[0].status, Status::Fault);
    let d = one(r#"{"param": "COD", "value": null}"#);
    let r = only_rejection(&d, Reason::Value);
    assert!(
        r.detail.starts_with("reading 0 (COD): no value"),
        "{}",
        r.detail
    );
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
