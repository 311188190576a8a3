//! The contract's InfluxDB schema as line protocol (contract.md "InfluxDB schema"), pure.
//!
//! Timestamps are epoch milliseconds (the writer asks for `precision=ms`). Tags are written in
//! key order (`param, park, site, station[, window]`), which is what InfluxDB sorts them to
//! anyway, so the server does less work and identical points render identically: a resend is a
//! byte-for-byte overwrite of the same series and time.
//!
//! Every field keeps one type for the life of a series, because InfluxDB refuses a point whose
//! field changes type (`field type conflict`). That is why `unit` is always a string, `""` for
//! pH (which has no unit), rather than sometimes absent and sometimes present.
//!
//! A non-finite `value`/`mean` makes the whole point `None` (the caller counts it); a non-finite
//! optional field (`value_ref`, limits, `ratio`, `capture`) is left out, since line protocol has
//! no spelling for NaN or infinity and one such field would get the whole batch refused.

use std::fmt::Write as _;

use crate::model::{Judged, WindowPoint};

/// The `reading` point of one judged reading, or `None` when its value is not finite. A
/// status event (an analyser calibrating or in fault that gave no number) has no `value`
/// field: its point carries the status.
///
/// ```text
/// reading,param=COD,park=p,site=s,station=o value=48.2,unit="mg/L",status="00",limit_max=67.5,ratio=0.714,exceeded=false 1795935900000
/// reading,param=COD,park=p,site=s,station=o unit="mg/L",status="02",limit_max=67.5,exceeded=false 1795935900000
/// ```
pub fn reading_line(j: &Judged) -> Option<String> {
    let r = &j.reading;
    if r.value.is_some_and(|v| !v.is_finite()) {
        return None;
    }
    let mut line = String::with_capacity(160);
    line.push_str("reading");
    tag(&mut line, "param", r.param.symbol());
    tag(&mut line, "park", r.key.park());
    tag(&mut line, "site", r.key.site());
    tag(&mut line, "station", r.key.station());

    let mut fields = Fields::new(&mut line);
    if let Some(value) = r.value {
        fields.float("value", value);
    }
    fields.opt_float("value_ref", j.value_ref);
    fields.string("unit", r.param.canonical_unit());
    fields.string("status", r.status.code());
    if let Some(limit) = &j.limit {
        fields.opt_float("limit_max", limit.max);
        fields.opt_float("limit_min", limit.min);
    }
    fields.opt_float("ratio", j.ratio);
    fields.boolean("exceeded", j.exceeded);

    timestamp(&mut line, r.ts_ms);
    Some(line)
}

/// The `average` point of one compliance window, or `None` when its mean is not finite.
/// Its timestamp is the window's start, so a late reading that changes the window rewrites
/// the same point.
pub fn average_line(w: &WindowPoint) -> Option<String> {
    if !w.mean.is_finite() {
        return None;
    }
    let mut line = String::with_capacity(160);
    line.push_str("average");
    tag(&mut line, "param", w.param.symbol());
    tag(&mut line, "park", w.key.park());
    tag(&mut line, "site", w.key.site());
    tag(&mut line, "station", w.key.station());
    tag(&mut line, "window", &w.window);

    let mut fields = Fields::new(&mut line);
    fields.float("mean", w.mean);
    fields.integer("samples", i64::from(w.samples));
    fields.opt_float("capture", Some(w.capture));
    fields.boolean("valid", w.valid);
    fields.opt_float("limit_max", w.limit_max);
    fields.opt_float("ratio", w.ratio);
    fields.boolean("exceeded", w.exceeded);

    timestamp(&mut line, w.start_ms);
    Some(line)
}

/// Appends `,key=value` with the tag escaping of line protocol: comma, equals sign and space
/// are backslash-escaped. (Identifiers cannot hold them, but a window name comes from config.)
fn tag(line: &mut String, key: &str, value: &str) {
    line.push(',');
    escape_tag(line, key);
    line.push('=');
    escape_tag(line, value);
}

fn escape_tag(out: &mut String, s: &str) {
    for c in s.chars() {
        if matches!(c, ',' | '=' | ' ') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Writes the field set: the first field after a space, the others after commas.
struct Fields<'a> {
    line: &'a mut String,
    first: bool,
}

impl<'a> Fields<'a> {
    fn new(line: &'a mut String) -> Fields<'a> {
        Fields { line, first: true }
    }

    fn key(&mut self, key: &str) {
        self.line.push(if self.first { ' ' } else { ',' });
        self.first = false;
        // Field keys escape like tag keys; ours are fixed names, escaped anyway for safety.
        escape_tag(self.line, key);
        self.line.push('=');
    }

    /// A float in Rust's shortest round-trip form. `Display` for `f64` never uses exponent
    /// notation (1e21 prints as `1000000000000000000000`), so every value is in the plain
    /// decimal form all InfluxDB versions parse, and parses back to the same `f64`.
    fn float(&mut self, key: &str, v: f64) {
        self.key(key);
        write!(self.line, "{v}").expect("writing to a String cannot fail");
    }

    fn opt_float(&mut self, key: &str, v: Option<f64>) {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            self.float(key, v);
        }
    }

    fn integer(&mut self, key: &str, v: i64) {
        self.key(key);
        write!(self.line, "{v}i").expect("writing to a String cannot fail");
    }

    fn boolean(&mut self, key: &str, v: bool) {
        self.key(key);
        self.line.push_str(if v { "true" } else { "false" });
    }

    /// A string field: double quote and backslash are escaped.
    fn string(&mut self, key: &str, v: &str) {
        self.key(key);
        self.line.push('"');
        for c in v.chars() {
            if matches!(c, '"' | '\\') {
                self.line.push('\\');
            }
            self.line.push(c);
        }
        self.line.push('"');
    }
}

fn timestamp(line: &mut String, ms: i64) {
    write!(line, " {ms}").expect("writing to a String cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Limit, LimitSource, Param, Reading, StationKey, Status};

    fn key() -> StationKey {
        StationKey::parse("nam-dinh-vu", "nd-textile", "outfall-1").unwrap()
    }

    fn judged(param: Param, value: f64) -> Judged {
        Judged {
            reading: Reading {
                key: key(),
                param,
                ts_ms: 1_795_935_900_000,
                value: Some(value),
                status: Status::Normal,
            },
            value_ref: None,
            limit: None,
            ratio: None,
            exceeded: false,
        }
    }

    fn window() -> WindowPoint {
        WindowPoint {
            key: key(),
            param: Param::COD,
            window: "1h".into(),
            start_ms: 1_795_935_600_000,
            mean: 52.25,
            samples: 11,
            capture: 0.9166666666666666,
            valid: true,
            limit_max: Some(67.5),
            ratio: Some(0.774074074074074),
            exceeded: false,
        }
    }

    // contract.md "InfluxDB schema": measurement `reading`, tags park/site/station/param,
    // value, unit, status (Circular 10/2021 code), exceeded; timestamp = the reading's time (ms).
    #[test]
    fn contract_schema_reading_minimal() {
        let line = reading_line(&judged(Param::COD, 48.2)).unwrap();
        assert_eq!(
            line,
            "reading,param=COD,park=nam-dinh-vu,site=nd-textile,station=outfall-1 \
             value=48.2,unit=\"mg/L\",status=\"00\",exceeded=false 1795935900000"
        );
    }

    // Issue #14: a status event (status 02 with an empty value in a Circular 10/2021 file) is
    // stored with its status and no `value` field.
    #[test]
    fn a_status_event_is_a_reading_without_a_value_field() {
        let mut j = judged(Param::COD, 0.0);
        j.reading.value = None;
        j.reading.status = Status::Fault;
        j.limit = Some(Limit {
            max: Some(135.0),
            min: None,
            source: LimitSource::Permit,
        });
        assert_eq!(
            reading_line(&j).unwrap(),
            "reading,param=COD,park=nam-dinh-vu,site=nd-textile,station=outfall-1 \
             unit=\"mg/L\",status=\"02\",limit_max=135,exceeded=false 1795935900000"
        );
    }

    // contract.md "InfluxDB schema": value_ref when O2 correction applied, limit_max/limit_min
    // when a limit applies, ratio = value ÷ limit_max, exceeded is the instantaneous verdict.
    #[test]
    fn contract_schema_reading_every_field() {
        let mut j = judged(Param::SO2, 320.0);
        j.reading.key = StationKey::parse("dinh-vu", "dv-steel", "stack-1").unwrap();
        j.reading.status = Status::Normal;
        j.value_ref = Some(345.6);
        j.limit = Some(Limit {
            max: Some(300.0),
            min: None,
            source: LimitSource::Permit,
        });
        j.ratio = Some(1.152);
        j.exceeded = true;
        assert_eq!(
            reading_line(&j).unwrap(),
            "reading,param=SO2,park=dinh-vu,site=dv-steel,station=stack-1 \
             value=320,value_ref=345.6,unit=\"mg/Nm3\",status=\"00\",limit_max=300,ratio=1.152,exceeded=true \
             1795935900000"
        );
    }

    // QCVN 40:2011 Table 1: pH has a range (5.5–9 for column B), i.e. both limit_min and limit_max.
    // pH has no unit: the field stays a string (""), so its type never changes.
    #[test]
    fn ph_has_both_limits_and_an_empty_string_unit() {
        let mut j = judged(Param::PH, 7.1);
        j.limit = Some(Limit {
            max: Some(9.0),
            min: Some(5.5),
            source: LimitSource::Regulation {
                text: "QCVN 40:2011/BTNMT Table 1 col B".into(),
                unverified: false,
            },
        });
        let line = reading_line(&j).unwrap();
        assert!(
            line.contains(
                " value=7.1,unit=\"\",status=\"00\",limit_max=9,limit_min=5.5,exceeded=false "
            ),
            "{line}"
        );
    }

    // Circular 10/2021 status codes: 01 calibrating, 02 fault, stored as string codes.
    #[test]
    fn status_is_the_circular_10_2021_code_as_a_string() {
        let mut j = judged(Param::COD, 1.0);
        j.reading.status = Status::Calibrating;
        assert!(reading_line(&j).unwrap().contains("status=\"01\""));
        j.reading.status = Status::Fault;
        assert!(reading_line(&j).unwrap().contains("status=\"02\""));
    }

    #[test]
    fn temperature_unit_keeps_its_degree_sign() {
        let line = reading_line(&judged(Param::Temp, 31.5)).unwrap();
        assert!(line.contains("unit=\"°C\""), "{line}");
    }

    #[test]
    fn non_finite_value_gives_no_point() {
        assert_eq!(reading_line(&judged(Param::COD, f64::NAN)), None);
        assert_eq!(reading_line(&judged(Param::COD, f64::INFINITY)), None);
        assert_eq!(reading_line(&judged(Param::COD, f64::NEG_INFINITY)), None);
        let mut w = window();
        w.mean = f64::NAN;
        assert_eq!(average_line(&w), None);
    }

    #[test]
    fn non_finite_optional_fields_are_left_out() {
        let mut j = judged(Param::COD, 10.0);
        j.value_ref = Some(f64::NAN);
        j.ratio = Some(f64::INFINITY);
        j.limit = Some(Limit {
            max: Some(f64::NAN),
            min: Some(f64::NEG_INFINITY),
            source: LimitSource::Permit,
        });
        let line = reading_line(&j).unwrap();
        for bad in ["value_ref", "ratio", "limit_max", "limit_min", "NaN", "inf"] {
            assert!(!line.contains(bad), "{bad} in {line}");
        }
        let mut w = window();
        w.capture = f64::NAN;
        w.ratio = Some(f64::INFINITY);
        let line = average_line(&w).unwrap();
        assert!(
            !line.contains("capture") && !line.contains("ratio"),
            "{line}"
        );
    }

    // Floats must parse back to the same f64, in plain decimal form (no exponent).
    #[test]
    fn floats_round_trip_without_exponent() {
        for v in [
            48.2,
            0.1 + 0.2,
            1e21,
            1e-7,
            123_456_789.123_456_79,
            5e-324,
            f64::MAX,
            -0.0,
        ] {
            let line = reading_line(&judged(Param::Temp, v)).unwrap();
            let text = line
                .split(" value=")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap();
            assert!(!text.contains(['e', 'E']), "{text}");
            assert_eq!(
                text.parse::<f64>().unwrap().to_bits(),
                v.to_bits(),
                "{text}"
            );
        }
        assert!(reading_line(&judged(Param::COD, 1e21))
            .unwrap()
            .contains("value=1000000000000000000000,"));
    }

    // contract.md "InfluxDB schema": measurement `average`, tags + window, fields mean,
    // samples (integer), capture (0–1), valid, limit_max, ratio, exceeded; time = window start.
    #[test]
    fn contract_schema_average_every_field() {
        assert_eq!(
            average_line(&window()).unwrap(),
            "average,param=COD,park=nam-dinh-vu,site=nd-textile,station=outfall-1,window=1h \
             mean=52.25,samples=11i,capture=0.9166666666666666,valid=true,limit_max=67.5,\
             ratio=0.774074074074074,exceeded=false 1795935600000"
        );
    }

    #[test]
    fn average_without_limit_has_no_limit_or_ratio() {
        let mut w = window();
        w.limit_max = None;
        w.ratio = None;
        w.valid = false;
        w.samples = 0;
        let line = average_line(&w).unwrap();
        assert!(
            line.contains(
                " mean=52.25,samples=0i,capture=0.9166666666666666,valid=false,exceeded=false "
            ),
            "{line}"
        );
    }

    // Line protocol escaping: tag keys/values escape comma, equals and space.
    #[test]
    fn tags_escape_comma_equals_and_space() {
        let mut w = window();
        w.window = "a b,c=d".into();
        let line = average_line(&w).unwrap();
        assert!(line.contains(",window=a\\ b\\,c\\=d "), "{line}");
        let mut out = String::new();
        escape_tag(&mut out, r#"x"y\z"#);
        assert_eq!(
            out, r#"x"y\z"#,
            "quotes and backslashes are literal in tags"
        );
    }

    // Line protocol escaping: string field values escape double quote and backslash only.
    #[test]
    fn string_fields_escape_quote_and_backslash() {
        let mut line = String::new();
        let mut f = Fields::new(&mut line);
        f.string("unit", r#"a"b\c, d=e"#);
        assert_eq!(line, r#" unit="a\"b\\c, d=e""#);
    }

    #[test]
    fn negative_timestamps_before_1970_render() {
        let mut j = judged(Param::COD, 1.0);
        j.reading.ts_ms = -1000;
        assert!(reading_line(&j).unwrap().ends_with(" -1000"));
    }
}
