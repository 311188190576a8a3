//! Times: missing, unparsable, implausible, and local times that do not exist.

use super::*;

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
