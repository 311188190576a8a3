//! The simulator: what every station of the demo park publishes at a given wall time.
//!
//! Pure apart from its seeded random generator: time is a parameter, so tests step through
//! hours of a park's life in microseconds, and two simulators with the same seed fed the same
//! times produce the same bytes.

use std::time::Duration;

use chrono::{DateTime, FixedOffset, SecondsFormat, Timelike};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::park::{replica_name, Format, ParamSpec, Scenario, StationSpec, PARK};

/// Hải Phòng is on UTC+07:00 all year; dataloggers stamp local time.
const VIETNAM_OFFSET_S: i32 = 7 * 3600;

/// Topic prefix: topics are `env/{park}/{site}/{station}`, the default `mqtt.topics`.
const TOPIC_ROOT: &str = "env";

struct SimStation {
    spec: &'static StationSpec,
    station: String,
    topic: String,
    sent: u32,
    last_ms: Option<i64>,
}

/// Simulated stations of the demo park (optionally replicated for load tests).
pub struct Simulator {
    rng: StdRng,
    interval_ms: i64,
    start_ms: Option<i64>,
    stations: Vec<SimStation>,
}

impl Simulator {
    /// The demo park once. `seed` makes the noise reproducible; `interval` is the time
    /// between two messages of one station.
    pub fn new(seed: u64, interval: Duration) -> Simulator {
        Simulator::with_replicas(seed, interval, 1)
    }

    /// The park `replicas` times (at least once), copies named as in
    /// [`super::stations_toml_replicated`]; every copy plays the same scenarios.
    pub fn with_replicas(seed: u64, interval: Duration, replicas: u32) -> Simulator {
        let stations = (0..replicas.max(1))
            .flat_map(|r| {
                PARK.iter().map(move |spec| {
                    let station = replica_name(spec.station, r);
                    SimStation {
                        topic: format!("{TOPIC_ROOT}/{}/{}/{station}", spec.park, spec.site),
                        station,
                        spec,
                        sent: 0,
                        last_ms: None,
                    }
                })
            })
            .collect();
        Simulator {
            rng: StdRng::seed_from_u64(seed),
            interval_ms: i64::try_from(interval.as_millis())
                .unwrap_or(i64::MAX)
                .max(1),
            start_ms: None,
            stations,
        }
    }

    /// Stations the simulator publishes for, as `park/site/station`.
    pub fn station_keys(&self) -> Vec<String> {
        self.stations
            .iter()
            .map(|s| format!("{}/{}/{}", s.spec.park, s.spec.site, s.station))
            .collect()
    }

    /// Keeps only the stations whose `park/site/station` is in `keys` (those a stations file
    /// configures); returns how many are left.
    pub fn retain(&mut self, keys: &std::collections::BTreeSet<String>) -> usize {
        self.stations
            .retain(|s| keys.contains(&format!("{}/{}/{}", s.spec.park, s.spec.site, s.station)));
        self.stations.len()
    }

    /// The messages due at wall time `now_ms` (epoch milliseconds): `(topic, payload)`.
    ///
    /// A station is due when it has not published for about one interval (a tenth of it is
    /// forgiven, so a timer that fires a little early does not skip a turn). The first call
    /// starts the scenarios' clocks: the exceedance and the calibration begin at once.
    pub fn messages_at(&mut self, now_ms: i64) -> Vec<(String, Vec<u8>)> {
        let Some(offset) = FixedOffset::east_opt(VIETNAM_OFFSET_S) else {
            return Vec::new();
        };
        let Some(local) = DateTime::from_timestamp_millis(now_ms).map(|t| t.with_timezone(&offset))
        else {
            return Vec::new();
        };
        let start = *self.start_ms.get_or_insert(now_ms);
        let minute = u32::try_from((now_ms - start).max(0) / 60_000).unwrap_or(u32::MAX);
        let hour = f64::from(local.hour())
            + f64::from(local.minute()) / 60.0
            + f64::from(local.second()) / 3600.0;
        let due_after = self.interval_ms - self.interval_ms / 10;

        let mut out = Vec::new();
        for st in &mut self.stations {
            if let Scenario::FallsSilent { messages } = st.spec.scenario {
                if st.sent >= messages {
                    continue;
                }
            }
            if st.last_ms.is_some_and(|last| now_ms - last < due_after) {
                continue;
            }
            let readings: Vec<Sample> = st
                .spec
                .params
                .iter()
                .map(|p| sample(&mut self.rng, st.spec, p, hour, minute))
                .collect();
            let payload = match st.spec.format {
                Format::Json => json_payload(&local, &readings),
                Format::Tab => tab_payload(&local, &readings),
            };
            st.sent += 1;
            st.last_ms = Some(now_ms);
            out.push((st.topic.clone(), payload));
        }
        out
    }
}

/// One reading as the datalogger writes it.
struct Sample {
    spec: &'static ParamSpec,
    value: f64,
    status: &'static str,
    /// Sent with `"---"` for its value (a [`Scenario::Garbles`] parameter).
    garbled: bool,
}

/// A value with the daily pattern, noise and the station's scenario applied.
fn sample(
    rng: &mut StdRng,
    station: &StationSpec,
    p: &'static ParamSpec,
    hour: f64,
    minute: u32,
) -> Sample {
    let z = gauss(rng).clamp(-3.0, 3.0);
    let mut value = p.base * (1.0 + p.daily * station.daily.at(hour)) + p.noise * z;
    let mut status = "00";
    match station.scenario {
        Scenario::Exceeds {
            period_min,
            on_min,
            high,
            normal_cap,
        } if p.symbol == station.main => {
            value = if minute % period_min.max(1) < on_min {
                high + p.noise * z.clamp(-2.0, 2.0)
            } else {
                value.min(normal_cap)
            };
        }
        Scenario::Calibrates { period_min, on_min }
            if minute % period_min.max(1) < on_min && !matches!(p.symbol, "Flow" | "Temp") =>
        {
            status = "01";
        }
        Scenario::Faults {
            param,
            period_min,
            from_min,
            to_min,
        } if p.symbol == param && (from_min..to_min).contains(&(minute % period_min.max(1))) => {
            status = "02";
            value = 0.0;
        }
        Scenario::Stuck { param, value: v } if p.symbol == param => value = v,
        _ => {}
    }
    let garbled =
        matches!(station.scenario, Scenario::Garbles { params } if params.contains(&p.symbol));
    value = match p.symbol {
        "pH" => value.clamp(0.0, 14.0),
        "O2" => value.clamp(0.0, 20.0),
        "Temp" | "P" => value,
        _ => value.max(0.0),
    };
    Sample {
        spec: p,
        value: (value * 100.0).round() / 100.0,
        status,
        garbled,
    }
}

/// A standard normal draw (Box–Muller), so noise clusters around the typical value as real
/// analyser noise does.
fn gauss(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The contract's JSON: `ts` in RFC 3339 with the +07:00 offset, every reading with its unit
/// (when it has one) and status.
fn json_payload(local: &DateTime<FixedOffset>, readings: &[Sample]) -> Vec<u8> {
    let readings: Vec<serde_json::Value> = readings
        .iter()
        .map(|r| {
            let mut o = serde_json::Map::new();
            o.insert("param".into(), r.spec.symbol.into());
            if r.garbled {
                o.insert("value".into(), "---".into());
            } else {
                o.insert("value".into(), r.value.into());
            }
            if !r.spec.unit.is_empty() {
                o.insert("unit".into(), r.spec.unit.into());
            }
            o.insert("status".into(), r.status.into());
            serde_json::Value::Object(o)
        })
        .collect();
    serde_json::json!({
        "ts": local.to_rfc3339_opts(SecondsFormat::AutoSi, false),
        "readings": readings,
    })
    .to_string()
    .into_bytes()
}

/// Circular 10/2021 text: one `SYMBOL<TAB>VALUE<TAB>UNIT<TAB>yyyyMMddHHmmss<TAB>STATUS` line a
/// reading, local time, CRLF as the dataloggers write it. pH has an empty unit field.
fn tab_payload(local: &DateTime<FixedOffset>, readings: &[Sample]) -> Vec<u8> {
    let stamp = local.format("%Y%m%d%H%M%S");
    let mut text = String::new();
    for r in readings {
        text.push_str(&format!(
            "{}\t{}\t{}\t{stamp}\t{}\r\n",
            r.spec.symbol, r.value, r.spec.unit, r.status
        ));
    }
    text.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(5);
    /// 2026-11-29 14:05:00 +07:00.
    const T0: i64 = 1_795_935_900_000;

    fn step(sim: &mut Simulator, n: i64) -> Vec<(String, Vec<u8>)> {
        sim.messages_at(T0 + n * 5_000)
    }

    fn json(payload: &[u8]) -> serde_json::Value {
        serde_json::from_slice(payload).expect("JSON payload")
    }

    fn reading<'a>(v: &'a serde_json::Value, param: &str) -> &'a serde_json::Value {
        v["readings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["param"] == param)
            .unwrap_or_else(|| panic!("no {param}"))
    }

    fn topic_of(key: &str) -> String {
        format!("env/{key}")
    }

    #[test]
    fn every_station_publishes_except_the_silent_one_after_its_cutoff() {
        let mut sim = Simulator::new(7, INTERVAL);
        let keys = sim.station_keys();
        assert_eq!(keys.len(), PARK.len());
        let silent = topic_of("trang-due/td-footwear/outfall-1");
        for n in 0..12 {
            let topics: Vec<String> = step(&mut sim, n).into_iter().map(|(t, _)| t).collect();
            for key in &keys {
                let t = topic_of(key);
                let expected = t != silent || n < 3;
                assert_eq!(topics.contains(&t), expected, "message {n}, {t}");
            }
        }
    }

    #[test]
    fn a_station_publishes_once_an_interval_not_once_a_call() {
        let mut sim = Simulator::new(7, INTERVAL);
        assert_eq!(sim.messages_at(T0).len(), PARK.len());
        assert!(sim.messages_at(T0 + 1_000).is_empty());
        // A timer firing a little early still gets the turn.
        assert_eq!(sim.messages_at(T0 + 4_800).len(), PARK.len());
    }

    #[test]
    fn json_payloads_follow_the_contract_with_6_to_11_readings() {
        // Contract "Topics and payloads": ts in RFC 3339, status "00"/"01"/"02".
        let mut sim = Simulator::new(1, INTERVAL);
        let mut seen = 0;
        for (topic, payload) in step(&mut sim, 0) {
            if payload.first() != Some(&b'{') {
                continue;
            }
            seen += 1;
            let v = json(&payload);
            let ts = v["ts"].as_str().unwrap();
            assert_eq!(ts, "2026-11-29T14:05:00+07:00", "{topic}");
            let n = v["readings"].as_array().unwrap().len();
            assert!((6..=11).contains(&n), "{topic}: {n} readings");
            for r in v["readings"].as_array().unwrap() {
                // The steel stack's three gases without an analyser come as "---".
                match r["value"].as_f64() {
                    Some(x) => assert!(x.is_finite()),
                    None => {
                        assert_eq!(topic, "env/dinh-vu/dv-steel/stack-1");
                        assert_eq!(r["value"], "---");
                    }
                }
                assert!(["00", "01", "02"].contains(&r["status"].as_str().unwrap()));
            }
        }
        assert_eq!(
            seen,
            PARK.iter().filter(|s| s.format == Format::Json).count()
        );
    }

    #[test]
    fn text_payload_lines_have_five_tab_fields_in_local_time() {
        // Circular 10/2021 Annex 15: SYMBOL, VALUE, UNIT, yyyyMMddHHmmss, STATUS.
        let mut sim = Simulator::new(1, INTERVAL);
        let msgs = step(&mut sim, 0);
        let (_, payload) = msgs
            .iter()
            .find(|(t, _)| t == "env/nam-dinh-vu/nd-chem/outfall-1")
            .unwrap();
        let text = std::str::from_utf8(payload).unwrap();
        assert!(text.ends_with("\r\n"));
        let lines: Vec<&str> = text.lines().collect();
        assert!((6..=10).contains(&lines.len()));
        for line in lines {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 5, "{line:?}");
            assert!(fields[1].parse::<f64>().is_ok(), "{line:?}");
            assert_eq!(fields[3], "20261129140500");
        }
    }

    #[test]
    fn the_textile_cod_exceeds_135_from_the_start_and_falls_back_later() {
        // QCVN 40:2011 column B COD 150 mg/L × Kq 0.9 × Kf 1.0 = 135 mg/L.
        let limit = 150.0 * 0.9 * 1.0;
        let textile = "env/nam-dinh-vu/nd-textile/outfall-1";
        let mut sim = Simulator::new(42, INTERVAL);
        let (mut high, mut low) = (0, 0);
        // Two hours at one message every 5 s: the scenario cycles every 30 minutes, over the
        // limit for 18 (long enough for InstantLimitExceeded's 15 minutes).
        for n in 0..(2 * 3600 / 5) {
            let minute = n * 5 / 60;
            for (topic, payload) in step(&mut sim, n) {
                if topic != textile {
                    continue;
                }
                let cod = reading(&json(&payload), "COD")["value"].as_f64().unwrap();
                if minute % 30 < 18 {
                    assert!(cod > limit, "minute {minute}: COD {cod}");
                    high += 1;
                } else {
                    assert!(cod < limit, "minute {minute}: COD {cod}");
                    low += 1;
                }
            }
        }
        assert!(high > 0 && low > 0);
        // Within the first 30 s already.
        let mut sim = Simulator::new(3, INTERVAL);
        let first = sim.messages_at(T0);
        let (_, p) = first.iter().find(|(t, _)| t == textile).unwrap();
        assert!(reading(&json(p), "COD")["value"].as_f64().unwrap() > limit);
    }

    #[test]
    fn the_chemical_outfall_calibrates_at_start_and_every_half_hour() {
        // Circular 10/2021 status 01 = calibrating.
        let chem = "env/nam-dinh-vu/nd-chem/outfall-1";
        let mut sim = Simulator::new(5, INTERVAL);
        let statuses = |sim: &mut Simulator, n: i64| -> Vec<(String, String)> {
            let msgs = step(sim, n);
            let (_, p) = msgs.iter().find(|(t, _)| t == chem).unwrap();
            std::str::from_utf8(p)
                .unwrap()
                .lines()
                .map(|l| {
                    let f: Vec<&str> = l.split('\t').collect();
                    (f[0].to_owned(), f[4].to_owned())
                })
                .collect()
        };
        for (symbol, status) in statuses(&mut sim, 0) {
            let want = if symbol == "Flow" || symbol == "Temp" {
                "00"
            } else {
                "01"
            };
            assert_eq!(status, want, "{symbol}");
        }
        // Minute 10: measuring; minute 31: calibrating again.
        assert!(statuses(&mut sim, 120).iter().all(|(_, s)| s == "00"));
        assert!(statuses(&mut sim, 31 * 12).iter().any(|(_, s)| s == "01"));
    }

    #[test]
    fn the_power_boiler_nox_faults_with_status_02_and_others_keep_measuring() {
        let boiler = "env/dinh-vu/dv-power/boiler-1";
        let mut sim = Simulator::new(9, INTERVAL);
        let at = |sim: &mut Simulator, n: i64| -> serde_json::Value {
            let msgs = step(sim, n);
            json(&msgs.iter().find(|(t, _)| t == boiler).unwrap().1)
        };
        let v = at(&mut sim, 0);
        assert_eq!(reading(&v, "NOx")["status"], "00");
        let v = at(&mut sim, 2 * 12); // minute 2
        assert_eq!(reading(&v, "NOx")["status"], "02");
        assert_eq!(reading(&v, "SO2")["status"], "00");
        // Long enough for StationDeviceFault's 5 minutes: still in fault at minute 11.
        let v = at(&mut sim, 11 * 12);
        assert_eq!(reading(&v, "NOx")["status"], "02");
        assert_eq!(reading(&at(&mut sim, 13 * 12), "NOx")["status"], "00");
        // The units that need conversion: SO2 in ppm, Flow in m³/s.
        assert_eq!(reading(&v, "SO2")["unit"], "ppm");
        assert_eq!(reading(&v, "Flow")["unit"], "m3/s");
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes_and_values_are_physical() {
        let mut a = Simulator::new(11, INTERVAL);
        let mut b = Simulator::new(11, INTERVAL);
        for n in 0..50 {
            let (ma, mb) = (step(&mut a, n), step(&mut b, n));
            assert_eq!(ma, mb);
            for (_, p) in ma.iter().filter(|(_, p)| p.first() == Some(&b'{')) {
                let v = json(p);
                for r in v["readings"].as_array().unwrap() {
                    let Some(x) = r["value"].as_f64() else {
                        continue; // "---"
                    };
                    match r["param"].as_str().unwrap() {
                        "pH" => assert!((0.0..=14.0).contains(&x)),
                        "O2" => assert!((0.0..20.0).contains(&x)),
                        "Temp" => assert!((-50.0..=1500.0).contains(&x)),
                        _ => assert!(x >= 0.0),
                    }
                }
            }
        }
        let mut c = Simulator::new(12, INTERVAL);
        assert_ne!(
            step(&mut c, 0),
            Simulator::new(11, INTERVAL).messages_at(T0)
        );
    }

    #[test]
    fn stack_dust_follows_the_production_shifts() {
        // Two production shifts: the steel works is busiest in the afternoon, so its dust
        // around 14:00 local tops its dust around 02:00.
        let steel = "env/dinh-vu/dv-steel/stack-1";
        let mean_pm = |start_ms: i64| {
            let mut sim = Simulator::new(2, INTERVAL);
            let mut sum = 0.0;
            for n in 0..100 {
                let msgs = sim.messages_at(start_ms + n * 5_000);
                let (_, p) = msgs.iter().find(|(t, _)| t == steel).unwrap();
                sum += reading(&json(p), "PM")["value"].as_f64().unwrap();
            }
            sum / 100.0
        };
        let twelve_hours = 12 * 3600 * 1000;
        assert!(mean_pm(T0) > mean_pm(T0 + twelve_hours) * 1.2);
    }

    /// QCVN 40:2011/BTNMT Table 1, column B, for the parameters the park measures.
    fn qcvn40_b(param: &str) -> Option<f64> {
        match param {
            "Color" => Some(150.0),
            "TSS" => Some(100.0),
            "COD" => Some(150.0),
            "NH4" => Some(10.0),
            "TN" => Some(40.0),
            "TP" => Some(6.0),
            _ => None,
        }
    }

    /// Canonical readings of one message: (param, value, status).
    fn canonical(payload: &[u8]) -> Vec<(String, f64, String)> {
        let raw: Vec<(String, f64, String, String)> = if payload.first() == Some(&b'{') {
            json(payload)["readings"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|r| {
                    Some((
                        r["param"].as_str().unwrap().to_owned(),
                        r["value"].as_f64()?, // "---": rejected, no verdict
                        r["unit"].as_str().unwrap_or("").to_owned(),
                        r["status"].as_str().unwrap().to_owned(),
                    ))
                })
                .collect()
        } else {
            std::str::from_utf8(payload)
                .unwrap()
                .lines()
                .map(|l| {
                    let f: Vec<&str> = l.split('\t').collect();
                    (f[0].into(), f[1].parse().unwrap(), f[2].into(), f[4].into())
                })
                .collect()
        };
        raw.into_iter()
            .map(|(p, v, unit, st)| {
                // Contract units: mg/Nm3 = ppm × M / 24.45; m3/h = m3/s × 3600 = m3/day / 24.
                let v = match (p.as_str(), unit.as_str()) {
                    ("SO2", "ppm") => v * 64.066 / 24.45,
                    (_, "m3/s") => v * 3600.0,
                    (_, "m3/day") => v / 24.0,
                    _ => v,
                };
                (p, v, st)
            })
            .collect()
    }

    #[test]
    fn over_a_day_only_the_planned_exceedance_breaks_a_limit() {
        // Limits as the contract resolves them: permit values, else QCVN 40:2011 column B ×
        // Kq × Kf (pH 5.5–9 and temperature 40 °C without coefficients, clause 2.2); stack
        // concentrations corrected to the permit's O2 (contract "O2 correction").
        use crate::config::{StationDefaults, Stations};
        use crate::model::{Param, StationKey};
        let defaults = StationDefaults {
            windows: vec![],
            min_capture: 0.75,
            stuck_after_s: 3600,
        };
        let stations = Stations::parse(&super::super::stations_toml(), "demo", &defaults).unwrap();
        let mut sim = Simulator::new(2024, INTERVAL);
        let mut exceedances = 0;
        for n in 0..(24 * 12) {
            let now = T0 + n * 300_000; // every 5 minutes for a day
            for (topic, payload) in sim.messages_at(now) {
                let parts: Vec<&str> = topic.split('/').collect();
                let key = StationKey::parse(parts[1], parts[2], parts[3]).unwrap();
                let station = stations.get(&key).unwrap();
                let readings = canonical(&payload);
                let o2 = readings.iter().find(|r| r.0 == "O2").map(|r| r.1);
                for (param, value, status) in &readings {
                    if status != "00" {
                        continue;
                    }
                    let p = Param::parse(param).unwrap();
                    let (value, max, min) = match (station.limits.get(&p), station.o2_ref) {
                        (Some(l), Some(o2_ref)) => {
                            let o2 = o2.unwrap();
                            (value * (20.9 - o2_ref) / (20.9 - o2), l.max, l.min)
                        }
                        (Some(l), None) => (*value, l.max, l.min),
                        (None, _) => match param.as_str() {
                            "pH" => (*value, Some(9.0), Some(5.5)),
                            "Temp" if station.o2_ref.is_none() => (*value, Some(40.0), None),
                            _ => (
                                *value,
                                qcvn40_b(param).map(|c| c * station.kq * station.kf),
                                None,
                            ),
                        },
                    };
                    let over = max.is_some_and(|m| value > m) || min.is_some_and(|m| value < m);
                    if over {
                        assert_eq!(
                            (topic.as_str(), param.as_str()),
                            ("env/nam-dinh-vu/nd-textile/outfall-1", "COD"),
                            "{value} against {max:?}/{min:?}"
                        );
                        exceedances += 1;
                    }
                }
            }
        }
        assert!(exceedances > 0);
    }

    #[test]
    fn the_electronics_tss_is_stuck_and_the_steel_stack_sends_gases_without_values() {
        let mut sim = Simulator::new(4, INTERVAL);
        let mut tss = std::collections::BTreeSet::new();
        for n in 0..120 {
            for (topic, payload) in step(&mut sim, n) {
                match topic.as_str() {
                    "env/deep-c/dc-electronics/outfall-1" => {
                        let v = json(&payload);
                        tss.insert(reading(&v, "TSS")["value"].to_string());
                        assert_eq!(reading(&v, "TSS")["status"], "00");
                    }
                    "env/dinh-vu/dv-steel/stack-1" => {
                        let v = json(&payload);
                        for gas in ["H2S", "HCl", "HF"] {
                            assert_eq!(reading(&v, gas)["value"], "---");
                        }
                        assert!(reading(&v, "PM")["value"].is_number());
                    }
                    _ => {}
                }
            }
        }
        assert_eq!(tss.into_iter().collect::<Vec<_>>(), ["18.4"]);
    }

    #[test]
    fn a_retained_park_publishes_only_the_stations_kept() {
        let mut sim = Simulator::new(1, INTERVAL);
        let keep: std::collections::BTreeSet<String> =
            ["nam-dinh-vu/nd-textile/outfall-1".to_owned()].into();
        assert_eq!(sim.retain(&keep), 1);
        let topics: Vec<String> = sim.messages_at(T0).into_iter().map(|(t, _)| t).collect();
        assert_eq!(topics, ["env/nam-dinh-vu/nd-textile/outfall-1"]);
    }

    #[test]
    fn replicas_publish_under_suffixed_station_names() {
        let mut sim = Simulator::with_replicas(1, INTERVAL, 3);
        assert_eq!(sim.station_keys().len(), 3 * PARK.len());
        assert!(sim
            .station_keys()
            .contains(&"nam-dinh-vu/nd-textile/outfall-1-r3".to_owned()));
        let topics: Vec<String> = sim.messages_at(T0).into_iter().map(|(t, _)| t).collect();
        assert_eq!(topics.len(), 3 * PARK.len());
        assert!(topics.contains(&"env/dinh-vu/dv-power/boiler-1-r2".to_owned()));
    }
}
