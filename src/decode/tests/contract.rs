//! The contract's examples (`Topics and payloads`): JSON and Circular 10/2021 text, times
//! with and without an offset, per-reading times.

use super::*;

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
            value: Some(48.2),
            status: Status::Normal
        }
    );
    assert_eq!(
        (r[1].param, r[1].value, r[1].ts_ms),
        (Param::PH, Some(7.1), T0)
    );
    assert_eq!(r[1].status, Status::Normal, "status defaults to 00");
    assert_eq!(r[2].param, Param::SO2);
    assert!(
        close(r[2].value.unwrap(), 120.0 * 64.066 / 24.45),
        "{:?}",
        r[2].value
    );
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
    assert_eq!(
        (r[0].param, r[0].value, r[0].ts_ms),
        (Param::COD, Some(48.2), T0)
    );
    assert_eq!(
        (r[1].param, r[1].value, r[1].ts_ms),
        (Param::PH, Some(7.1), T0)
    );
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
    assert!(close(d.readings[1].value.unwrap(), 1.5));
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
