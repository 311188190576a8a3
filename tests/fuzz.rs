//! Fuzzing the parts a publisher controls: the JSON and Circular 10/2021 decoders and the topic
//! parser, fed arbitrary and near-valid input. Whatever arrives, decoding must not panic, and
//! everything it lets through must be a reading the rest of the pipeline can trust: a finite
//! value inside the parameter's plausible range, a known status, a time near the receive time.
//!
//! The suite runs a short pass (`PROPTEST_CASES`, default 256 per property). A long run:
//! `PROPTEST_CASES=200000 cargo test --release --test fuzz`.

use proptest::prelude::*;
use quantrac::decode::Decoder;
use quantrac::model::topic;
use quantrac::model::Reason;

const RECEIVED_AT_MS: i64 = 1_795_910_400_000; // 2026-11-29T00:00:00Z

fn decoder() -> Decoder {
    Decoder::new(
        &["env/{park}/{site}/{station}".to_string()],
        chrono_tz::Asia::Ho_Chi_Minh,
        65_536,
    )
    .unwrap()
}

/// What every decoded message must satisfy, whatever went in.
fn check(topic: &str, payload: &[u8]) {
    let decoded = decoder().decode(topic, payload, RECEIVED_AT_MS);
    for r in &decoded.readings {
        let (min, max) = r.param.physical_range();
        // No value only for a status event: an analyser calibrating or in fault.
        let ok = match r.value {
            Some(v) => v.is_finite() && v >= min && v <= max,
            None => r.status != quantrac::model::Status::Normal,
        };
        assert!(ok, "{r:?} from {:?}", String::from_utf8_lossy(payload));
        // The documented window: from 2000-01-01 to ten minutes after the message arrived.
        assert!(
            r.ts_ms >= 946_684_800_000 && r.ts_ms <= RECEIVED_AT_MS + 600_000,
            "implausible time {r:?}"
        );
    }
    for j in &decoded.rejections {
        assert!(Reason::ALL.contains(&j.reason));
        assert!(
            j.detail.len() < 2_000,
            "a bounded detail: {}",
            j.detail.len()
        );
    }
}

fn symbol() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("COD".to_string()),
        Just("pH".to_string()),
        Just("SO2".to_string()),
        Just("O2".to_string()),
        Just("NH4+".to_string()),
        "[A-Za-z0-9,.+-]{0,8}",
    ]
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<f64>().prop_map(|v| v.to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        Just("1e308".to_string()),
        Just("-0".to_string()),
        Just("NaN".to_string()),
        Just("".to_string()),
        Just("null".to_string()),
        "[0-9.,eE+-]{0,12}",
    ]
}

fn unit() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("mg/L".to_string()),
        Just("ppm".to_string()),
        Just("mg/Nm3".to_string()),
        Just("".to_string()),
        "[A-Za-z/%0-9]{0,6}",
    ]
}

fn status() -> impl Strategy<Value = String> {
    prop_oneof![Just("00"), Just("01"), Just("02"), Just("7"), Just("")].prop_map(String::from)
}

fn time() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("20261129140500".to_string()),
        "[0-9]{0,16}",
        (2020u32..2030, 1u32..13, 1u32..29, 0u32..24, 0u32..60)
            .prop_map(|(y, m, d, h, min)| format!("{y}{m:02}{d:02}{h:02}{min:02}00")),
    ]
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..2048)) {
        check("env/p/s/st", &payload);
    }

    #[test]
    fn arbitrary_text_lines_never_panic(text in "(?s).{0,600}") {
        check("env/p/s/st", text.as_bytes());
    }

    #[test]
    fn near_valid_circular_10_text_yields_only_trustworthy_readings(
        lines in proptest::collection::vec((symbol(), number(), unit(), time(), status()), 0..12),
        sep in prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
        bom in any::<bool>(),
    ) {
        let mut text = if bom { "\u{feff}".to_string() } else { String::new() };
        let body: Vec<String> = lines
            .iter()
            .map(|(s, v, u, t, st)| format!("{s}\t{v}\t{u}\t{t}\t{st}"))
            .collect();
        text.push_str(&body.join(sep));
        check("env/p/s/st", text.as_bytes());
    }

    #[test]
    fn near_valid_json_yields_only_trustworthy_readings(
        readings in proptest::collection::vec((symbol(), number(), unit(), status()), 0..12),
        ts in prop_oneof![
            Just("\"2026-11-29T14:05:00+07:00\"".to_string()),
            any::<i64>().prop_map(|v| v.to_string()),
            "\"[0-9T:+-]{0,25}\"",
        ],
    ) {
        let rs: Vec<String> = readings
            .iter()
            .map(|(p, v, u, st)| {
                let v = if v.is_empty() { "\"\"".to_string() } else { v.clone() };
                format!(r#"{{"param":"{p}","value":{v},"unit":"{u}","status":"{st}"}}"#)
            })
            .collect();
        let json = format!(r#"{{"ts":{ts},"readings":[{}]}}"#, rs.join(","));
        check("env/p/s/st", json.as_bytes());
    }

    #[test]
    fn arbitrary_topics_never_panic(t in "(?s).{0,200}") {
        let mut d = decoder();
        let decoded = d.decode(&t, b"{}", RECEIVED_AT_MS);
        if let Some(key) = decoded.key {
            // A station key only from a topic of the template's shape.
            prop_assert_eq!(t.split('/').count(), 4);
            prop_assert!(t.starts_with("env/"));
            prop_assert!(key.to_string().split('/').all(|id| !id.is_empty() && id.len() <= 64));
        }
    }

    #[test]
    fn arbitrary_templates_are_parsed_or_refused_never_panic(t in "(?s).{0,80}") {
        if let Ok(parsed) = topic::Template::parse(&t) {
            prop_assert!(!parsed.filter().contains('#'));
        }
    }
}
