//! Rejections: one bad reading or line rejects only itself; a payload that cannot be read at
//! all (too large, unknown topic, not JSON or text) is rejected whole, keeping the station key.

use super::*;

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
