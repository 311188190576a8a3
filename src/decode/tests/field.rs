//! What real dataloggers send (issue #14): status without a value, the text-format variants
//! seen in the field, the symbols of Circular 10/2021 Table 34 and their field spellings,
//! operator-defined parameters, and inbox files named by their file name. Each test says what
//! it stands for.

use super::*;

use crate::model::{Definition, Kind, Params};

/// A file exactly as a public open-source Vietnamese datalogger writes it for Circular 10/2021:
/// one reading per line, `symbol<TAB>value<TAB>unit<TAB>yyyyMMddHHmmss<TAB>status`, values with
/// four decimals, LF between lines and no final newline, an empty value while the analyser is
/// in fault, an empty unit for pH.
const DATALOGGER_FILE: &str = "COD\t48.2000\tmg/L\t20261129140500\t00\n\
                               pH\t7.1000\t\t20261129140500\t00\n\
                               TSS\t\tmg/L\t20261129140500\t02\n\
                               Turbidity\t12.5000\tNTU\t20261129140500\t00\n\
                               Flow\t35.0000\tm3/h\t20261129140500\t00";

#[test]
fn the_open_source_datalogger_file_decodes_whole_with_its_fault() {
    let d = decode(DATALOGGER_FILE);
    assert!(d.rejections.is_empty(), "{:?}", d.rejections);
    let got: Vec<(Param, Option<f64>, Status)> = d
        .readings
        .iter()
        .map(|r| (r.param, r.value, r.status))
        .collect();
    assert_eq!(
        got,
        [
            (Param::COD, Some(48.2), Status::Normal),
            (Param::PH, Some(7.1), Status::Normal),
            (Param::TSS, None, Status::Fault),
            (Param::Turbidity, Some(12.5), Status::Normal),
            (Param::Flow, Some(35.0), Status::Normal),
        ]
    );
    assert!(d.readings.iter().all(|r| r.ts_ms == T0));
}

// ---- 1. Status without a value.

#[test]
fn a_fault_or_calibration_without_a_value_is_a_status_event_in_text() {
    // Circular 10/2021 status 02 (device fault) and 01 (calibrating) with an empty or `null`
    // value: accepted without a value, so the state reaches the station.
    for (line, status) in [
        ("COD\t\tmg/L\t20261129140500\t02", Status::Fault),
        ("COD\tnull\tmg/L\t20261129140500\t02", Status::Fault),
        ("COD\tNULL\tmg/L\t20261129140500\t01", Status::Calibrating),
        ("COD\tNaN\tmg/L\t20261129140500\t02", Status::Fault),
        ("pH\t\t\t20261129140500\t01", Status::Calibrating),
    ] {
        let d = decode(line);
        assert!(d.rejections.is_empty(), "{line:?}: {:?}", d.rejections);
        assert_eq!(
            (d.readings[0].value, d.readings[0].status),
            (None, status),
            "{line:?}"
        );
    }
}

#[test]
fn a_measuring_reading_without_a_value_is_still_a_value_rejection() {
    // Status 00 says the analyser measured: without a number that is a bad reading (`value`).
    for line in [
        "COD\t\tmg/L\t20261129140500\t00",
        "COD\tnull\tmg/L\t20261129140500\t00",
    ] {
        let d = decode(line);
        let r = only_rejection(&d, Reason::Value);
        assert!(
            r.detail.starts_with("line 0 (COD): no value"),
            "{}",
            r.detail
        );
    }
    let d = one(r#"{"param": "COD", "value": "", "status": "00"}"#);
    only_rejection(&d, Reason::Value);
}

#[test]
fn a_status_event_still_needs_a_unit_of_its_parameter_and_a_good_time() {
    let d = decode("COD\t\tNTU\t20261129140500\t02");
    only_rejection(&d, Reason::Unit);
    let d = decode("COD\t\tmg/L\t2026112914\t02");
    only_rejection(&d, Reason::Timestamp);
}

#[test]
fn a_status_event_in_json_has_a_null_empty_or_no_value() {
    for reading in [
        r#"{"param": "SO2", "value": null, "status": "02"}"#,
        r#"{"param": "SO2", "value": "", "status": "02"}"#,
        r#"{"param": "SO2", "status": "02"}"#,
        r#"{"param": "SO2", "value": null, "status": "01", "unit": "ppm"}"#,
    ] {
        let d = one(reading);
        assert!(d.rejections.is_empty(), "{reading}: {:?}", d.rejections);
        assert_eq!(d.readings[0].value, None, "{reading}");
        assert_ne!(d.readings[0].status, Status::Normal);
    }
    // Without a status (00 by default) a missing value is a broken reading, as before.
    only_rejection(&one(r#"{"param": "SO2"}"#), Reason::Malformed);
}

// ---- 2. Text-format variants.

#[test]
fn a_decimal_comma_is_read_when_the_field_is_otherwise_a_number() {
    // Vietnamese locales write 7,1 for 7.1 (the same comma as Table 34's "PM2,5").
    let d = decode("pH\t7,1\t\t20261129140500\t00\nCOD\t48,2500\tmg/L\t20261129140500\t00");
    assert!(d.rejections.is_empty(), "{:?}", d.rejections);
    assert_eq!(d.readings[0].value, Some(7.1));
    assert_eq!(d.readings[1].value, Some(48.25));
}

#[test]
fn any_number_of_decimals() {
    // The datalogger above writes four decimals; others write none or many.
    for (v, want) in [
        ("48", 48.0),
        ("48.2", 48.2),
        ("48.2000", 48.2),
        ("48.123456", 48.123456),
    ] {
        let d = decode(&format!("COD\t{v}\tmg/L\t20261129140500\t00"));
        assert_eq!(d.readings[0].value, Some(want), "{v}");
    }
}

#[test]
fn lf_crlf_and_cr_line_ends_with_or_without_a_final_one() {
    // Unix loggers write LF, Windows ones CRLF, old ones a lone CR; some end the last line.
    for sep in ["\n", "\r\n", "\r"] {
        for end in ["", sep] {
            let text = format!(
                "COD\t48.2\tmg/L\t20261129140500\t00{sep}pH\t7.1\t\t20261129140500\t00{end}"
            );
            let d = decode(&text);
            assert!(d.rejections.is_empty(), "{text:?}: {:?}", d.rejections);
            assert_eq!(d.readings.len(), 2, "{text:?}");
        }
    }
    // A bad line is still named by its physical line, whatever the line ends.
    let d = decode("COD\t48.2\tmg/L\t20261129140500\t00\rTSS\tx\tmg/L\t20261129140500\t00");
    assert_eq!(only_rejection(&d, Reason::Malformed).index, Some(1));
}

#[test]
fn a_bom_trailing_spaces_and_blank_lines_are_tolerated() {
    // Windows editors add a byte-order mark; some loggers pad fields and leave blank lines.
    let d = decode("\u{feff}COD\t48.2 \tmg/L  \t20261129140500\t00   \r\n\r\n \t \r\npH\t7.1\t\t20261129140500\t00\r\n\r\n");
    assert!(d.rejections.is_empty(), "{:?}", d.rejections);
    assert_eq!(d.readings.len(), 2);
}

#[test]
fn a_header_line_is_skipped_when_every_other_line_is_a_reading() {
    // Some loggers write column names (or the station) first.
    for header in [
        "Parameter\tValue\tUnit\tTime\tStatus",
        "Thông số\tGiá trị\tĐơn vị\tThời gian\tTrạng thái",
        "HP_DINHVU_NUO01",
    ] {
        let d = decode(&format!(
            "{header}\nCOD\t48.2\tmg/L\t20261129140500\t00\npH\t7.1\t\t20261129140500\t00"
        ));
        assert!(d.rejections.is_empty(), "{header}: {:?}", d.rejections);
        assert_eq!(d.readings.len(), 2);
    }
}

#[test]
fn a_first_line_is_not_skipped_when_it_may_be_a_reading_or_another_line_is_bad() {
    // Another bad line: the first is no header, it is reported too.
    let d = decode("Parameter\tValue\tUnit\tTime\tStatus\nCOD\t48.2\tmg/L\t20261129140500\t00\nTSS\tx\tmg/L\t20261129140500\t00");
    assert_eq!(d.rejections.len(), 2, "{:?}", d.rejections);
    // A known symbol, or a number where the value goes: a reading gone wrong, not a header.
    let d = decode("COD\tabc\tmg/L\t20261129140500\t00\npH\t7.1\t\t20261129140500\t00");
    only_rejection(&d, Reason::Malformed);
    let d = decode("Benzene\t1.5\tmg/Nm3\t20261129140500\t00\npH\t7.1\t\t20261129140500\t00");
    only_rejection(&d, Reason::UnknownParam);
    // A header alone is not a file of readings.
    let d = decode("Parameter\tValue\tUnit\tTime\tStatus");
    assert_eq!(d.readings.len(), 0);
    assert_eq!(d.rejections.len(), 1);
}

// ---- 3. The parameter table and field spellings.

#[test]
fn table_34_and_field_spellings_are_accepted() {
    // Circular 10/2021 Annex 15 Table 34 (PM2,5, PM10, O3, RH, VHg) and the spellings seen in
    // the field for the same parameters (PM2.5, NH4+, N-NH4, TURB, Turbidity).
    let lines = [
        ("PM2,5\t25.0000\tug/Nm3", Param::PM25, 0.025),
        ("PM2.5\t0.025\tmg/Nm3", Param::PM25, 0.025),
        ("PM10\t0.05\tmg/Nm3", Param::PM10, 0.05),
        ("O3\t1\tppm", Param::O3, 47.997 / 24.45),
        ("RH\t63.5\t%", Param::RH, 63.5),
        ("VHg\t4.2\tug/Nm3", Param::VHg, 4.2),
        ("NH4+\t1.5\tmg/L", Param::NH4, 1.5),
        ("N-NH4\t1.5\tmg/L", Param::NH4, 1.5),
        ("TURB\t12.5\tNTU", Param::Turbidity, 12.5),
        ("Turbidity\t12.5\tNTU", Param::Turbidity, 12.5),
    ];
    for (line, param, want) in lines {
        let d = decode(&format!("{line}\t20261129140500\t00"));
        assert!(d.rejections.is_empty(), "{line}: {:?}", d.rejections);
        assert_eq!(d.readings[0].param, param, "{line}");
        assert!(
            close(d.readings[0].value.unwrap(), want),
            "{line}: {:?}",
            d.readings[0].value
        );
    }
    // Still unknown: rejected as such.
    only_rejection(
        &decode("Benzene\t1\tmg/Nm3\t20261129140500\t00"),
        Reason::UnknownParam,
    );
}

fn benzene() -> Params {
    Params::define(vec![Definition {
        symbol: "Benzene-d".into(),
        aliases: vec!["C6H6-d".into()],
        kinds: vec![Kind::Emission],
        unit: "mg/Nm3".into(),
        units: vec![("ug/Nm3".into(), 0.001)],
        molar_mass: None,
        min: 0.0,
        max: 100.0,
    }])
    .unwrap()
}

#[test]
fn an_operator_defined_parameter_decodes_converts_and_is_bounded() {
    // `[[param]]` in the parameters file: accepted without a new release.
    let params = benzene();
    let mut dec = decoder().with_params(params.clone());
    let d = dec.decode(
        TOPIC,
        b"C6H6-d\t250\tug/Nm3\t20261129140500\t00\nBenzene-d\t101\tmg/Nm3\t20261129140500\t00",
        RECV,
    );
    assert_eq!(d.readings.len(), 1, "{:?}", d.rejections);
    assert_eq!(d.readings[0].param, params.parse("Benzene-d").unwrap());
    assert!(close(d.readings[0].value.unwrap(), 0.25));
    assert_eq!(
        only_rejection(&d, Reason::Value).index,
        Some(1),
        "above its max"
    );
    let d = dec.decode(
        TOPIC,
        br#"{"ts": 1795935900000, "readings": [{"param": "benzene-D", "value": 1}]}"#,
        RECV,
    );
    assert_eq!(d.readings.len(), 1, "{:?}", d.rejections);
    // Without the definition: unknown.
    only_rejection(
        &decode("Benzene-d\t1\tmg/Nm3\t20261129140500\t00"),
        Reason::UnknownParam,
    );
}

// ---- 4. Files from the inbox: the file name names the station.

fn inbox_decoder() -> Decoder {
    decoder().with_files(
        FileNames::new(
            crate::model::file_name::FilePattern::DEFAULT,
            Some("HP"),
            None,
            [("NUO01".to_owned(), key())],
        )
        .unwrap(),
    )
}

#[test]
fn an_inbox_file_names_its_station_by_uplink_code() {
    let d = inbox_decoder().decode(
        "$inbox/HP_NDTEXTILE_NUO01_20261129140500.txt",
        DATALOGGER_FILE.as_bytes(),
        RECV,
    );
    assert_eq!(d.key, Some(key()));
    assert_eq!(d.readings.len(), 5, "{:?}", d.rejections);
    // In a subfolder (a department's station/yyyy/MM/dd layout): the same.
    let d = inbox_decoder().decode(
        "$inbox/NUO01/2026/11/29/HP_NDTEXTILE_NUO01_20261129140500.txt",
        DATALOGGER_FILE.as_bytes(),
        RECV,
    );
    assert_eq!(d.key, Some(key()));
}

#[test]
fn an_unmatched_file_name_is_a_topic_rejection_of_the_whole_file() {
    for topic in [
        "$inbox/notes.txt",
        "$inbox/HP_NDTEXTILE_NUO99_20261129140500.txt",
        "$inbox/HN_NDTEXTILE_NUO01_20261129140500.txt",
    ] {
        let d = inbox_decoder().decode(topic, DATALOGGER_FILE.as_bytes(), RECV);
        assert_eq!(d.key, None, "{topic}");
        assert!(d.readings.is_empty());
        let r = only_rejection(&d, Reason::Topic);
        assert_eq!(r.index, None);
        assert!(r.detail.starts_with("file name"), "{}", r.detail);
    }
    // No [inbox] configured: a file record cannot be placed either (a replay, say).
    let d = decode_on(
        "$inbox/HP_NDTEXTILE_NUO01_20261129140500.txt",
        DATALOGGER_FILE,
    );
    only_rejection(&d, Reason::Topic);
}

fn decode_on(topic: &str, payload: &str) -> Decoded {
    decoder().decode(topic, payload.as_bytes(), RECV)
}
