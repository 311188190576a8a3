//! InfluxDB 1.x: every InfluxQL query of the dashboards runs against data in the contract schema.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use quantrac_testkit::influx::url_encode;
use quantrac_testkit::Influx1;
use serde_json::Value;

use crate::grafana::{dashboard, fill, panels, queries, DASHBOARDS};

/// One parameter of a simulated station: canonical unit, limits, typical value.
struct Sim {
    park: &'static str,
    site: &'static str,
    station: &'static str,
    param: &'static str,
    unit: &'static str,
    max: Option<f64>,
    min: Option<f64>,
    base: f64,
    /// `(first hour, last hour, factor)`: an excursion, in hours from the start of the data.
    spike: Option<(u64, u64, f64)>,
    o2_corrected: bool,
}

const HOUR_MS: u64 = 3_600_000;
const STEP_MS: u64 = 300_000;

/// Two days of 5-minute readings and their hourly and daily averages, in the contract's
/// InfluxDB schema ("InfluxDB schema": measurements `reading` and `average`), with
/// exceedances, a calibration hour and a few device faults.
fn simulated_lines(start_ms: u64) -> Vec<String> {
    let sims = [
        Sim {
            park: "nam-dinh-vu",
            site: "nd-textile",
            station: "outfall-1",
            param: "COD",
            unit: "mg/L",
            max: Some(67.5),
            min: None,
            base: 45.0,
            spike: Some((10, 13, 1.8)),
            o2_corrected: false,
        },
        Sim {
            park: "nam-dinh-vu",
            site: "nd-textile",
            station: "outfall-1",
            param: "TSS",
            unit: "mg/L",
            max: Some(90.0),
            min: None,
            base: 50.0,
            spike: Some((0, 23, 2.0)),
            o2_corrected: false,
        },
        Sim {
            park: "nam-dinh-vu",
            site: "nd-textile",
            station: "outfall-1",
            param: "pH",
            unit: "",
            max: Some(9.0),
            min: Some(5.5),
            base: 7.2,
            spike: None,
            o2_corrected: false,
        },
        Sim {
            park: "nam-dinh-vu",
            site: "nd-textile",
            station: "outfall-1",
            param: "Flow",
            unit: "m3/h",
            max: None,
            min: None,
            base: 120.0,
            spike: None,
            o2_corrected: false,
        },
        Sim {
            park: "nam-dinh-vu",
            site: "nd-textile",
            station: "outfall-2",
            param: "COD",
            unit: "mg/L",
            max: Some(67.5),
            min: None,
            base: 30.0,
            spike: None,
            o2_corrected: false,
        },
        Sim {
            park: "dinh-vu",
            site: "dv-steel",
            station: "stack-1",
            param: "SO2",
            unit: "mg/Nm3",
            max: Some(300.0),
            min: None,
            base: 200.0,
            spike: Some((30, 32, 1.6)),
            o2_corrected: true,
        },
        Sim {
            park: "dinh-vu",
            site: "dv-steel",
            station: "stack-1",
            param: "PM",
            unit: "mg/Nm3",
            max: Some(100.0),
            min: None,
            base: 60.0,
            spike: None,
            o2_corrected: true,
        },
        Sim {
            park: "dinh-vu",
            site: "dv-steel",
            station: "stack-1",
            param: "O2",
            unit: "%",
            max: None,
            min: None,
            base: 9.0,
            spike: None,
            o2_corrected: false,
        },
    ];
    let hours = 48;
    let mut lines = Vec::new();
    for s in &sims {
        let tags = format!(
            "park={},site={},station={},param={}",
            s.park, s.site, s.station, s.param
        );
        // (sum, samples) of status-00 readings per hour and per day.
        let mut hourly = vec![(0.0, 0u64); hours as usize];
        for i in 0..hours * HOUR_MS / STEP_MS {
            let t = start_ms + i * STEP_MS;
            let hour = (t - start_ms) / HOUR_MS;
            let factor = match s.spike {
                Some((a, b, f)) if (a..=b).contains(&hour) => f,
                _ => 1.0,
            };
            let value = s.base * factor * (1.0 + 0.05 * ((i as f64) * 0.7).sin());
            let status = if s.station == "outfall-1" && hour == 20 {
                "01"
            } else if s.station == "stack-1" && hour == 40 && i % 3 == 0 {
                "02"
            } else {
                "00"
            };
            let mut fields = format!("value={value:.3},unit=\"{}\",status=\"{status}\"", s.unit);
            if s.o2_corrected {
                fields.push_str(&format!(",value_ref={:.3}", value * 1.12));
            }
            let mut exceeded = false;
            if let Some(max) = s.max {
                fields.push_str(&format!(",limit_max={max},ratio={:.4}", value / max));
                exceeded |= value > max;
            }
            if let Some(min) = s.min {
                fields.push_str(&format!(",limit_min={min}"));
                exceeded |= value < min;
            }
            fields.push_str(&format!(",exceeded={}", exceeded && status == "00"));
            lines.push(format!("reading,{tags} {fields} {t}"));
            if status == "00" {
                hourly[hour as usize].0 += value;
                hourly[hour as usize].1 += 1;
            }
        }
        let mut windows: Vec<(&str, u64, f64, u64, u64)> = Vec::new(); // label, start, sum, n, expected
        for (h, (sum, n)) in hourly.iter().enumerate() {
            windows.push(("1h", start_ms + h as u64 * HOUR_MS, *sum, *n, 12));
        }
        for day in 0..2 {
            let (sum, n) = hourly[day * 24..day * 24 + 24]
                .iter()
                .fold((0.0, 0), |(s, c), (hs, hc)| (s + hs, c + hc));
            windows.push(("24h", start_ms + day as u64 * 24 * HOUR_MS, sum, n, 288));
        }
        for (label, t, sum, n, expected) in windows {
            if n == 0 {
                continue;
            }
            let mean = sum / n as f64;
            let capture = n as f64 / expected as f64;
            let valid = capture >= 0.75;
            let mut fields =
                format!("mean={mean:.3},samples={n}i,capture={capture:.4},valid={valid}");
            let mut exceeded = false;
            if let Some(max) = s.max {
                fields.push_str(&format!(",limit_max={max},ratio={:.4}", mean / max));
                exceeded |= mean > max;
            }
            if let Some(min) = s.min {
                exceeded |= mean < min;
            }
            fields.push_str(&format!(",exceeded={}", exceeded && valid));
            lines.push(format!("average,{tags},window={label} {fields} {t}"));
        }
    }
    lines
}

fn series_count(v: &Value) -> usize {
    v["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["series"].as_array().map_or(0, Vec::len))
        .sum()
}

fn error_of(v: &Value) -> Option<String> {
    if let Some(e) = v.get("error") {
        return Some(e.to_string());
    }
    v["results"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|r| r.get("error").map(Value::to_string))
}

#[test]
fn every_influxql_query_runs_on_influxdb_1x_and_key_panels_return_series() {
    let dir = tempfile::tempdir().unwrap();
    let influx = Influx1::start(dir.path());
    let (status, body) = influx
        .http(
            "POST",
            &format!("/query?q={}", url_encode("CREATE DATABASE quantrac")),
            "",
        )
        .unwrap();
    assert_eq!(status, 200, "CREATE DATABASE: {body}");

    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let start_ms = (now_ms - 2 * 24 * HOUR_MS) / HOUR_MS * HOUR_MS;
    let lines = simulated_lines(start_ms);
    for chunk in lines.chunks(5000) {
        let (status, body) = influx
            .http("POST", "/write?db=quantrac&precision=ms", &chunk.join("\n"))
            .unwrap();
        assert_eq!(status, 204, "write refused: {body}");
    }

    // The variable values Grafana would substitute: a wastewater station, a stack, and the
    // multi-value / "All" forms (`(a|b)` and the dashboards' allValue `.*`).
    let selections: [BTreeMap<&str, &str>; 3] = [
        BTreeMap::from([
            ("park", "nam-dinh-vu"),
            ("site", "nd-textile"),
            ("station", "outfall-1"),
            ("param", "COD"),
            ("window", "1h"),
        ]),
        BTreeMap::from([
            ("park", "dinh-vu"),
            ("site", "dv-steel"),
            ("station", "stack-1"),
            ("param", "SO2"),
            ("window", "1h"),
        ]),
        BTreeMap::from([
            ("park", "nam-dinh-vu"),
            ("site", "nd-textile"),
            ("station", ".*"),
            ("param", "(COD|TSS)"),
            ("window", ".*"),
        ]),
    ];

    let mut ran = 0;
    for name in DASHBOARDS {
        for q in queries(name, &dashboard(name)) {
            if q.ds_type != "influxdb" {
                continue;
            }
            let mut returned = false;
            for vars in &selections {
                let filled = fill(&q.text, vars);
                let result = influx.query_blocking("quantrac", &filled);
                if let Some(e) = error_of(&result) {
                    panic!("{}: InfluxDB error {e}\nquery: {filled}", q.where_);
                }
                ran += 1;
                returned |= series_count(&result) > 0;
            }
            assert!(
                returned,
                "{}: no series for any selection\nquery: {}",
                q.where_, q.text
            );
        }
    }
    assert!(ran >= 3 * 20, "only {ran} InfluxQL queries ran");

    // The compliance report finds the simulated exceedances: COD 10:00–13:59 on day one is four
    // exceeded hourly windows at outfall-1; TSS doubled all of day one is a daily exceedance.
    let report = dashboard("compliance-report.json");
    let table = panels(&report)
        .into_iter()
        .find(|p| p["title"] == "Exceedances by station and parameter")
        .expect("the exceedance table exists");
    let q = table["targets"][0]["query"].as_str().unwrap();
    let filled = fill(q, &selections[2]);
    let result = influx.query_blocking("quantrac", &filled);
    let series = result["results"][0]["series"].as_array().expect("series");
    let find = |param: &str, window: &str| {
        series
            .iter()
            .find(|s| {
                s["tags"]["param"] == param
                    && s["tags"]["window"] == window
                    && s["tags"]["station"] == "outfall-1"
            })
            .map(|s| s["values"][0][1].as_i64().unwrap())
    };
    assert_eq!(find("COD", "1h"), Some(4), "{result}");
    assert_eq!(find("TSS", "24h"), Some(1), "{result}");
    assert_eq!(find("COD", "24h"), None, "{result}");
}
