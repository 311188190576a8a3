//! The simulated park: six discharge points in four Hải Phòng industrial parks, with the
//! permit of each (as `stations.toml` text) and what each one publishes (as data the
//! simulator reads).
//!
//! The two are written side by side so a reader can check one against the other; a test
//! checks that every simulated station is configured and has a limit for its main pollutant.
//!
//! Coefficients follow the (unverified) QCVN tables for the flows simulated here: Kf = 1.0 for
//! 500–5 000 m³/day, 1.1 for 50–500 m³/day; Kp = 0.8 above 100 000 m³/h. Stack limits are
//! written as permit values, because the QCVN 19:2009 table is unverified and a permit value
//! is what an inspector applies anyway.

/// How a station's datalogger frames its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// The contract's JSON, `ts` in RFC 3339 with the +07:00 offset.
    Json,
    /// Circular 10/2021 text: `SYMBOL<TAB>VALUE<TAB>UNIT<TAB>yyyyMMddHHmmss<TAB>STATUS`, CRLF.
    Tab,
}

/// What goes wrong at a station, so the demo shows every kind of event within minutes. The
/// minutes are counted from the first message; [`ALERT_TIMELINE`] says which shipped alert
/// each one fires, and when.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Scenario {
    /// The main pollutant reads about `high` for `on_min` minutes of every `period_min`,
    /// starting at the first message, and never above `normal_cap` the rest of the time.
    Exceeds {
        period_min: u32,
        on_min: u32,
        high: f64,
        normal_cap: f64,
    },
    /// The quality analysers calibrate (status `01`) for `on_min` minutes of every
    /// `period_min`, starting at the first message.
    Calibrates { period_min: u32, on_min: u32 },
    /// One analyser reports a device fault (status `02`) from minute `from_min` to `to_min` of
    /// every `period_min`.
    Faults {
        param: &'static str,
        period_min: u32,
        from_min: u32,
        to_min: u32,
    },
    /// Publishes `messages` messages, then nothing: the staleness alert's case.
    FallsSilent { messages: u32 },
    /// One analyser is frozen: `param` repeats `value` (status `00`) in every message.
    Stuck { param: &'static str, value: f64 },
    /// The datalogger sends `params` with no value (`"---"`) in every message: readings the
    /// service rejects (`malformed`) and keeps as dead letters, the rest of the message is
    /// accepted.
    Garbles { params: &'static [&'static str] },
}

/// The shape of a station's day (local time), from -1 to 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Daily {
    /// Two production shifts, busiest early afternoon, quietest at 2 a.m.
    Shifts,
    /// Grid demand: a morning and an evening peak.
    Grid,
}

impl Daily {
    /// The station's activity at local hour `h` (fractional), in [-1, 1].
    pub(crate) fn at(self, h: f64) -> f64 {
        use std::f64::consts::TAU;
        match self {
            Daily::Shifts => (TAU * (h - 14.0) / 24.0).cos(),
            Daily::Grid => {
                0.5 * (TAU * (h - 14.0) / 24.0).cos() + 0.5 * (TAU * (h - 10.0) / 12.0).cos()
            }
        }
    }
}

/// One parameter as the station publishes it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ParamSpec {
    /// Symbol as written by the datalogger.
    pub symbol: &'static str,
    /// Unit as written by the datalogger (`""`: none, e.g. pH).
    pub unit: &'static str,
    /// Typical value, in `unit`.
    pub base: f64,
    /// How much the daily pattern moves it, as a fraction of `base`.
    pub daily: f64,
    /// Standard deviation of the measurement noise, in `unit`.
    pub noise: f64,
}

const fn p(
    symbol: &'static str,
    unit: &'static str,
    base: f64,
    daily: f64,
    noise: f64,
) -> ParamSpec {
    ParamSpec {
        symbol,
        unit,
        base,
        daily,
        noise,
    }
}

/// One simulated station.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StationSpec {
    pub park: &'static str,
    pub site: &'static str,
    pub station: &'static str,
    pub format: Format,
    pub scenario: Scenario,
    pub daily: Daily,
    /// The parameter the permit cares most about (the exceedance scenario drives this one).
    pub main: &'static str,
    pub params: &'static [ParamSpec],
}

/// The textile outfall's COD while it exceeds, in mg/L: far enough above the 135 mg/L of
/// QCVN 40:2011 column B (150) × Kq 0.9 × Kf 1.0 that noise never brings it back under.
pub(crate) const EXCEEDING_COD: f64 = 168.0;
/// Its COD on a normal day never goes above this (well under the limit, so verdicts flip).
pub(crate) const NORMAL_COD_CAP: f64 = 120.0;

/// The electronics outfall's frozen TSS analyser repeats this, in mg/L.
pub(crate) const STUCK_TSS: f64 = 18.4;

/// Which shipped alert (deploy/prometheus/rules/quantrac.rules.yml) each scenario fires, and
/// when, counted from the demo's start with Prometheus scraping it: `(when, alert, what)`.
/// The demo's banner prints it and the README repeats it; the times follow from the scenarios
/// above, the 5-second interval, the demo's windows and the rules' `for:` durations.
pub const ALERT_TIMELINE: &[(&str, &str, &str)] = &[
    (
        "~3 min",
        "StationSilent",
        "trang-due/td-footwear/outfall-1 stops after 3 messages (silent after 3 intervals, alert after 2 min)",
    ),
    (
        "~7 min",
        "StationDeviceFault",
        "dinh-vu/dv-power/boiler-1: NOx analyser in fault (status 02) in minutes 1-12 of every 30",
    ),
    (
        "5-10 min",
        "LimitExceeded",
        "nam-dinh-vu/nd-textile/outfall-1: COD 168 mg/L against 135 in minutes 0-18 of every 30; the first whole 5-minute window closes over the limit",
    ),
    (
        "~11 min",
        "AnalyserStuck",
        "deep-c/dc-electronics/outfall-1: TSS repeats 18.4 mg/L (stuck_after_s = 300, alert after 5 min)",
    ),
    (
        "~16 min",
        "InstantLimitExceeded",
        "nam-dinh-vu/nd-textile/outfall-1: every COD reading over the limit for 15 minutes",
    ),
    (
        "~16 min",
        "ReadingsRejected",
        "dinh-vu/dv-steel/stack-1 sends H2S, HCl and HF with no value: about 8 % of readings rejected (malformed), kept as dead letters",
    ),
    (
        "at :45 past an hour",
        "LimitEarlyWarning",
        "nam-dinh-vu/nd-textile/outfall-1: the running 1h COD mean is above 80 % of the limit, once that hour has half its samples, for 15 minutes (within 75 min)",
    ),
    (
        "after 1 h",
        "StationSilent (critical)",
        "trang-due/td-footwear/outfall-1 still silent",
    ),
    (
        "not in the demo",
        "StationCalibrating",
        "nam-dinh-vu/nd-chem/outfall-1 calibrates (status 01) in minutes 0-3 of every 30: its state shows it; the alert needs 2 h of calibration",
    ),
];

/// Every simulated station, in publishing order.
pub(crate) const PARK: &[StationSpec] = &[
    // Sinter/electric-arc steel works: dust and SO2 follow the production shifts. Since a
    // firmware update its datalogger sends three gases it has no analyser for, with no value.
    StationSpec {
        park: "dinh-vu",
        site: "dv-steel",
        station: "stack-1",
        format: Format::Json,
        scenario: Scenario::Garbles {
            params: &["H2S", "HCl", "HF"],
        },
        daily: Daily::Shifts,
        main: "PM",
        params: &[
            p("Flow", "m3/h", 180_000.0, 0.15, 4_000.0),
            p("Temp", "°C", 125.0, 0.05, 2.0),
            p("P", "kPa", 101.6, 0.0, 0.15),
            p("O2", "%", 12.5, 0.0, 0.3),
            p("PM", "mg/Nm3", 34.0, 0.25, 3.0),
            p("SO2", "mg/Nm3", 105.0, 0.2, 8.0),
            p("NOx", "mg/Nm3", 210.0, 0.15, 12.0),
            p("CO", "mg/Nm3", 250.0, 0.2, 30.0),
            // Sent as "---" (Scenario::Garbles): no analyser behind them.
            p("H2S", "mg/Nm3", 0.0, 0.0, 0.0),
            p("HCl", "mg/Nm3", 0.0, 0.0, 0.0),
            p("HF", "mg/Nm3", 0.0, 0.0, 0.0),
        ],
    },
    // Coal-fired boiler of a power plant: the datalogger reports SO2 in ppm and flow in m³/s;
    // the NOx analyser is in fault for minutes 1 to 12 of every half hour.
    StationSpec {
        park: "dinh-vu",
        site: "dv-power",
        station: "boiler-1",
        format: Format::Json,
        scenario: Scenario::Faults {
            param: "NOx",
            period_min: 30,
            from_min: 1,
            to_min: 12,
        },
        daily: Daily::Grid,
        main: "SO2",
        params: &[
            p("Flow", "m3/s", 120.0, 0.2, 2.5),
            p("Temp", "°C", 138.0, 0.04, 1.5),
            p("O2", "%", 6.5, 0.0, 0.25),
            p("PM", "mg/Nm3", 24.0, 0.2, 2.0),
            p("SO2", "ppm", 70.0, 0.2, 4.0),
            p("NOx", "mg/Nm3", 340.0, 0.15, 15.0),
            p("CO", "mg/Nm3", 85.0, 0.1, 8.0),
        ],
    },
    // Textile dyeing: COD and colour rise with the dye-house shifts, and COD exceeds for the
    // first 18 minutes of every half hour.
    StationSpec {
        park: "nam-dinh-vu",
        site: "nd-textile",
        station: "outfall-1",
        format: Format::Json,
        scenario: Scenario::Exceeds {
            period_min: 30,
            on_min: 18,
            high: EXCEEDING_COD,
            normal_cap: NORMAL_COD_CAP,
        },
        daily: Daily::Shifts,
        main: "COD",
        params: &[
            p("Flow", "m3/h", 120.0, 0.3, 5.0),
            p("Temp", "°C", 33.0, 0.05, 0.4),
            p("pH", "", 8.2, 0.02, 0.1),
            p("Color", "Pt-Co", 95.0, 0.2, 6.0),
            p("TSS", "mg/L", 48.0, 0.2, 4.0),
            p("COD", "mg/L", 88.0, 0.2, 5.0),
            p("NH4", "mg/L", 4.2, 0.2, 0.4),
        ],
    },
    // Chemical plant: an older datalogger that writes Circular 10/2021 text; its analysers
    // calibrate every half hour.
    StationSpec {
        park: "nam-dinh-vu",
        site: "nd-chem",
        station: "outfall-1",
        format: Format::Tab,
        scenario: Scenario::Calibrates {
            period_min: 30,
            on_min: 3,
        },
        daily: Daily::Shifts,
        main: "COD",
        params: &[
            p("Flow", "m3/h", 60.0, 0.2, 3.0),
            p("Temp", "oC", 30.5, 0.04, 0.3),
            p("pH", "", 7.3, 0.02, 0.08),
            p("TSS", "mg/L", 32.0, 0.15, 3.0),
            p("COD", "mg/L", 64.0, 0.15, 4.0),
            p("NH4", "mg/L", 3.1, 0.15, 0.3),
            p("TN", "mg/L", 16.0, 0.1, 1.0),
            p("TP", "mg/L", 1.6, 0.1, 0.15),
        ],
    },
    // Electronics assembly: a steady outfall, flow reported per day; its TSS analyser froze.
    StationSpec {
        park: "deep-c",
        site: "dc-electronics",
        station: "outfall-1",
        format: Format::Json,
        scenario: Scenario::Stuck {
            param: "TSS",
            value: STUCK_TSS,
        },
        daily: Daily::Shifts,
        main: "COD",
        params: &[
            p("Flow", "m3/day", 2_400.0, 0.15, 60.0),
            p("Temp", "°C", 29.0, 0.03, 0.3),
            p("pH", "", 7.0, 0.01, 0.08),
            p("TSS", "mg/L", 18.0, 0.1, 2.0),
            p("COD", "mg/L", 42.0, 0.15, 3.0),
            p("NH4", "mg/L", 2.0, 0.1, 0.2),
        ],
    },
    // Footwear: a station whose link goes down after a few messages.
    StationSpec {
        park: "trang-due",
        site: "td-footwear",
        station: "outfall-1",
        format: Format::Json,
        scenario: Scenario::FallsSilent { messages: 3 },
        daily: Daily::Shifts,
        main: "COD",
        params: &[
            p("Flow", "m3/h", 15.0, 0.3, 0.8),
            p("Temp", "°C", 31.0, 0.04, 0.3),
            p("pH", "", 7.6, 0.02, 0.1),
            p("TSS", "mg/L", 40.0, 0.2, 4.0),
            p("COD", "mg/L", 95.0, 0.2, 6.0),
            p("NH4", "mg/L", 5.5, 0.2, 0.5),
        ],
    },
];

/// The permits of the simulated stations, one `[[station]]` each.
const STATIONS_TOML: &str = r#"# The demo park: simulated discharge points in Hải Phòng industrial parks.
# Reporting every 5 s, so a silent station shows within seconds; 5-minute windows beside
# the regulatory ones, so averages move while someone watches.

[[station]]
park = "dinh-vu"
site = "dv-steel"
station = "stack-1"
kind = "emission"
regulation = "QCVN 19:2009/BTNMT"
column = "B"
kp = 0.8                        # total exhaust flow > 100 000 m3/h
kv = 1.0                        # industrial park
o2_ref = 7.0
expected_interval_s = 5
windows = ["5m", "1h", "24h"]
[station.limits]                # permit values, stricter than the table
PM = 100
SO2 = { max = 300 }
NOx = 650
CO = 800

[[station]]
park = "dinh-vu"
site = "dv-power"
station = "boiler-1"
kind = "emission"
regulation = "QCVN 19:2009/BTNMT"
column = "B"
kp = 0.8
kv = 1.0
o2_ref = 6.0
expected_interval_s = 5
windows = ["5m", "1h", "24h"]
[station.limits]
PM = 50
SO2 = 300
NOx = 650
CO = 800

[[station]]
park = "nam-dinh-vu"
site = "nd-textile"
station = "outfall-1"
kind = "wastewater"
regulation = "QCVN 40:2011/BTNMT"
column = "B"
kq = 0.9                        # tidal river, Q <= 50 m3/s
kf = 1.0                        # 500-5 000 m3/day
expected_interval_s = 5
windows = ["5m", "1h", "24h"]

[[station]]
park = "nam-dinh-vu"
site = "nd-chem"
station = "outfall-1"
kind = "wastewater"
regulation = "QCVN 40:2011/BTNMT"
column = "B"
kq = 0.9
kf = 1.0
expected_interval_s = 5
windows = ["5m", "1h", "24h"]

[[station]]
park = "deep-c"
site = "dc-electronics"
station = "outfall-1"
kind = "wastewater"
regulation = "QCVN 40:2011/BTNMT"
column = "B"
kq = 1.0
kf = 1.0
expected_interval_s = 5
windows = ["5m", "1h", "24h"]
stuck_after_s = 300             # a frozen analyser shows within minutes

[[station]]
park = "trang-due"
site = "td-footwear"
station = "outfall-1"
kind = "wastewater"
regulation = "QCVN 40:2011/BTNMT"
column = "B"
kq = 0.9
kf = 1.1                        # 50-500 m3/day
expected_interval_s = 5
windows = ["5m", "1h", "24h"]
"#;

/// The demo park's `stations.toml`: valid for [`crate::config::Stations::parse`].
pub fn stations_toml() -> String {
    STATIONS_TOML.to_owned()
}

/// The name of copy `replica` (0-based) of a station: the first copy keeps the real name,
/// the others get `-r2`, `-r3`, … so a load test's stations stay valid identifiers.
pub(crate) fn replica_name(station: &str, replica: u32) -> String {
    if replica == 0 {
        station.to_owned()
    } else {
        format!("{station}-r{}", replica + 1)
    }
}

/// `stations.toml` for a park replicated `replicas` times (as [`super::Simulator::with_replicas`]
/// publishes it), so a service under load test judges every copy against its permit.
pub fn stations_toml_replicated(replicas: u32) -> String {
    let (header, body) = STATIONS_TOML
        .split_once("[[station]]")
        .expect("the park text holds at least one station");
    let body = format!("[[station]]{body}");
    let mut out = String::from(header);
    for replica in 0..replicas.max(1) {
        for line in body.lines() {
            match line
                .strip_prefix("station = \"")
                .and_then(|rest| rest.strip_suffix('"'))
            {
                Some(name) => {
                    out.push_str(&format!("station = \"{}\"", replica_name(name, replica)))
                }
                None => out.push_str(line),
            }
            out.push('\n');
        }
    }
    out
}

/// `stations.toml` for the park replicated `replicas` times, reporting every `interval_s`
/// seconds (at least 1): what `quantrac simulate --stations FILE` writes, so a service run
/// with that file judges every station the simulator publishes, and counts silence and
/// capture against the interval they really have.
pub fn stations_toml_for(replicas: u32, interval_s: u64) -> String {
    let interval_s = interval_s.max(1);
    stations_toml_replicated(replicas)
        .lines()
        .map(|line| {
            if line.starts_with("expected_interval_s = ") {
                format!("expected_interval_s = {interval_s}\n")
            } else if let Some(rest) = line.strip_prefix("# Reporting every 5 s") {
                format!("# Reporting every {interval_s} s{rest}\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{StationDefaults, Stations, WindowSpec};
    use crate::model::{Kind, Param, StationKey};

    fn defaults() -> StationDefaults {
        StationDefaults {
            windows: vec![
                WindowSpec::parse("1h").unwrap(),
                WindowSpec::parse("24h").unwrap(),
            ],
            min_capture: 0.75,
            stuck_after_s: 3600,
        }
    }

    /// QCVN 40:2011/BTNMT Table 1 column B covers these monitored parameters (COD 150 mg/L,
    /// TSS 100, NH4 10, TN 40, TP 6, …); a QCVN 40 station gets their limits from the table.
    const QCVN40_TABLE1: &[Param] = &[
        Param::Temp,
        Param::Color,
        Param::PH,
        Param::BOD5,
        Param::COD,
        Param::TSS,
        Param::NH4,
        Param::TN,
        Param::TP,
        Param::Cl,
    ];

    #[test]
    fn the_park_parses_and_spans_enough_sites_and_stations() {
        let stations = Stations::parse(&stations_toml(), "demo", &defaults()).unwrap();
        assert!(stations.by_key.len() >= 5);
        let sites: std::collections::BTreeSet<_> = stations
            .iter()
            .map(|s| (s.key.park().to_owned(), s.key.site().to_owned()))
            .collect();
        assert!(sites.len() >= 3);
        for s in stations.iter() {
            assert_eq!(s.expected_interval_s, 5, "{}", s.key);
            match s.kind {
                Kind::Wastewater => {
                    assert_eq!(s.regulation.as_deref(), Some("QCVN 40:2011/BTNMT"));
                    assert_eq!(s.column.as_deref(), Some("B"));
                }
                Kind::Emission => {
                    assert_eq!(s.regulation.as_deref(), Some("QCVN 19:2009/BTNMT"));
                    assert!(s.o2_ref.is_some(), "{}", s.key);
                    assert!(!s.limits.is_empty(), "{}: a permit override", s.key);
                }
            }
        }
    }

    #[test]
    fn every_simulated_station_is_configured_with_a_limit_for_its_main_pollutant() {
        let stations = Stations::parse(&stations_toml(), "demo", &defaults()).unwrap();
        assert_eq!(stations.by_key.len(), PARK.len());
        for spec in PARK {
            let key = StationKey::parse(spec.park, spec.site, spec.station).unwrap();
            let station = stations
                .get(&key)
                .unwrap_or_else(|| panic!("{key} not configured"));
            let main = Param::parse(spec.main).unwrap();
            let has_limit = station.limits.get(&main).is_some_and(|l| l.max.is_some())
                || (station.regulation.as_deref() == Some("QCVN 40:2011/BTNMT")
                    && station.column.as_deref() == Some("B")
                    && QCVN40_TABLE1.contains(&main));
            assert!(has_limit, "{key}: no limit for {main}");
            for param in spec.params {
                let p = Param::parse(param.symbol).unwrap();
                assert!(p.kinds().contains(&station.kind), "{key}: {p}");
            }
        }
    }

    #[test]
    fn the_textile_outfall_limit_is_qcvn40_b_times_coefficients() {
        // QCVN 40:2011 Cmax = C × Kq × Kf; Table 1 column B COD = 150 mg/L.
        let stations = Stations::parse(&stations_toml(), "demo", &defaults()).unwrap();
        let key = StationKey::parse("nam-dinh-vu", "nd-textile", "outfall-1").unwrap();
        let s = stations.get(&key).unwrap();
        let cmax = 150.0 * s.kq * s.kf;
        assert!((cmax - 135.0).abs() < 1e-9);
        assert!(EXCEEDING_COD - 4.0 * 5.0 > cmax);
        assert!(NORMAL_COD_CAP < cmax);
    }

    #[test]
    fn a_replicated_park_configures_every_copy() {
        let stations = Stations::parse(&stations_toml_replicated(3), "demo", &defaults()).unwrap();
        assert_eq!(stations.by_key.len(), 3 * PARK.len());
        let copy = StationKey::parse("dinh-vu", "dv-steel", "stack-1-r3").unwrap();
        assert_eq!(
            stations.get(&copy).unwrap().limits[&Param::PM].max,
            Some(100.0)
        );
        assert_eq!(stations_toml_replicated(1), stations_toml());
    }

    #[test]
    fn a_written_stations_file_has_the_simulated_interval() {
        let text = stations_toml_for(2, 60);
        let stations = Stations::parse(&text, "simulate", &defaults()).unwrap();
        assert_eq!(stations.by_key.len(), 2 * PARK.len());
        assert!(stations.iter().all(|s| s.expected_interval_s == 60));
        assert!(text.contains("# Reporting every 60 s"), "{text}");
        assert_eq!(stations_toml_for(1, 5), stations_toml());
    }

    #[test]
    fn daily_patterns_peak_in_the_day_and_stay_in_range() {
        for h in 0..24 {
            for d in [Daily::Shifts, Daily::Grid] {
                let v = d.at(h as f64);
                assert!((-1.0..=1.0).contains(&v), "{d:?} {h}");
            }
        }
        assert!(Daily::Shifts.at(14.0) > Daily::Shifts.at(2.0));
        assert!(Daily::Grid.at(10.0) > Daily::Grid.at(3.0));
    }
}
