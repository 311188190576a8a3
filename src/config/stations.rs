//! `stations.toml`: every station with its permit (regulation, column, coefficients, limits,
//! averaging windows) and its code in the department's system (`uplink_code`). Parsed into
//! [`Station`] values that cannot be invalid, against a parameter table ([`Params`]: the
//! built-in parameters and those of the parameters file, see [`super::params`]).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::model::{Kind, Param, Params, StationKey};

use super::Error;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StationsFile {
    #[serde(default)]
    station: Vec<RawStation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStation {
    park: String,
    site: String,
    station: String,
    kind: Kind,
    #[serde(default)]
    uplink_code: Option<String>,
    #[serde(default = "yes")]
    uplink: bool,
    #[serde(default)]
    regulation: Option<String>,
    #[serde(default)]
    column: Option<String>,
    #[serde(default)]
    kq: Option<f64>,
    #[serde(default)]
    kf: Option<f64>,
    #[serde(default)]
    kp: Option<f64>,
    #[serde(default)]
    kv: Option<f64>,
    #[serde(default)]
    o2_ref: Option<f64>,
    #[serde(default = "default_interval")]
    expected_interval_s: u64,
    #[serde(default)]
    windows: Option<Vec<String>>,
    #[serde(default)]
    min_capture: Option<f64>,
    #[serde(default)]
    stuck_after_s: Option<u64>,
    #[serde(default)]
    limits: BTreeMap<String, RawLimit>,
}

fn default_interval() -> u64 {
    300
}

fn yes() -> bool {
    true
}

/// `PM = 100` or `pH = { min = 6, max = 9, windows = ["1h"] }`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawLimit {
    Max(f64),
    Full(RawLimitTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimitTable {
    #[serde(default)]
    max: Option<f64>,
    #[serde(default)]
    min: Option<f64>,
    #[serde(default)]
    windows: Option<Vec<String>>,
}

/// A limit written in the station's permit, in the parameter's canonical unit.
#[derive(Clone, Debug, PartialEq)]
pub struct PermitLimit {
    pub max: Option<f64>,
    pub min: Option<f64>,
}

/// An averaging window: a label (`"1h"`, `"24h"`, `"30m"`) and its length. Hour-multiple
/// windows align to clock hours; a window of whole days aligns to local midnight.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WindowSpec {
    /// Shared by every series of this length (a province holds tens of thousands).
    pub label: std::sync::Arc<str>,
    pub seconds: u64,
}

impl WindowSpec {
    /// Parses `30m`, `1h`, `8h`, `24h`, `1d`. The length must divide a day evenly or be
    /// whole days, so windows tile the clock.
    pub fn parse(s: &str) -> Result<WindowSpec, String> {
        let s = s.trim();
        let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
        let n: u64 = num
            .parse()
            .map_err(|_| format!("window {s:?}: expected a number then m, h or d"))?;
        let seconds = match unit {
            "m" => n * 60,
            "h" => n * 3600,
            "d" => n * 86_400,
            _ => return Err(format!("window {s:?}: unit must be m, h or d")),
        };
        if seconds == 0
            || (seconds < 86_400 && 86_400 % seconds != 0)
            || (seconds > 86_400 && seconds % 86_400 != 0)
        {
            return Err(format!(
                "window {s:?}: must divide a day evenly (e.g. 30m, 1h, 8h) or be whole days"
            ));
        }
        Ok(WindowSpec {
            label: s.into(),
            seconds,
        })
    }
}

/// One configured station, validated.
#[derive(Clone, Debug)]
pub struct Station {
    pub key: StationKey,
    pub kind: Kind,
    /// The station's code in the department's system (the `{station}` of Circular 10/2021
    /// file names); the station id unless set. Station ids repeat across sites, so with
    /// `[inbox]` the codes must tell the stations apart (checked where files are matched).
    pub uplink_code: String,
    /// Whether the station's files are sent to the department (`[uplink]`); `uplink = false`
    /// leaves it out.
    pub uplink: bool,
    /// E.g. `QCVN 40:2011/BTNMT`; `None` when only permit limits apply.
    pub regulation: Option<String>,
    pub column: Option<String>,
    pub kq: f64,
    pub kf: f64,
    pub kp: f64,
    pub kv: f64,
    pub o2_ref: Option<f64>,
    pub expected_interval_s: u64,
    /// Windows for parameters without their own list.
    pub windows: Vec<WindowSpec>,
    /// Per-parameter windows from `limits.X.windows`.
    pub param_windows: BTreeMap<Param, Vec<WindowSpec>>,
    pub min_capture: f64,
    /// Identical values for this long mean the analyser is stuck.
    pub stuck_after_s: u64,
    pub limits: BTreeMap<Param, PermitLimit>,
}

impl Station {
    /// The averaging windows that apply to `param` at this station.
    pub fn windows_for(&self, param: Param) -> &[WindowSpec] {
        self.param_windows
            .get(&param)
            .map(Vec::as_slice)
            .unwrap_or(&self.windows)
    }
}

/// Defaults for every station, from `[compliance]` in `quantrac.toml`.
#[derive(Clone, Debug)]
pub struct StationDefaults {
    pub windows: Vec<WindowSpec>,
    pub min_capture: f64,
    pub stuck_after_s: u64,
}

/// All configured stations, by key, and the parameter table their limits were read with.
#[derive(Clone, Debug, Default)]
pub struct Stations {
    pub by_key: BTreeMap<StationKey, Station>,
    pub params: Params,
}

impl Stations {
    pub fn get(&self, key: &StationKey) -> Option<&Station> {
        self.by_key.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Station> {
        self.by_key.values()
    }

    /// Reads and validates a stations file with the built-in parameters. Errors name the file,
    /// the station and the key.
    pub fn load(path: &Path, defaults: &StationDefaults) -> Result<Stations, Error> {
        Self::load_with(path, defaults, Params::builtin())
    }

    /// [`Stations::load`] with a parameter table that may hold the operator's own parameters.
    pub fn load_with(
        path: &Path,
        defaults: &StationDefaults,
        params: Params,
    ) -> Result<Stations, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse_with(&text, &path.display().to_string(), defaults, params)
    }

    /// Parses stations from TOML text with the built-in parameters; `origin` names the file
    /// in errors.
    pub fn parse(text: &str, origin: &str, defaults: &StationDefaults) -> Result<Stations, Error> {
        Self::parse_with(text, origin, defaults, Params::builtin())
    }

    /// [`Stations::parse`] with a parameter table.
    pub fn parse_with(
        text: &str,
        origin: &str,
        defaults: &StationDefaults,
        params: Params,
    ) -> Result<Stations, Error> {
        let file: StationsFile = toml::from_str(text).map_err(|e| Error::Invalid {
            file: origin.to_owned(),
            key: e.span().map(|s| line_of(text, s.start)).unwrap_or_default(),
            reason: e.message().to_owned(),
        })?;
        let mut by_key = BTreeMap::new();
        for (i, raw) in file.station.into_iter().enumerate() {
            let at = |key: &str| format!("station[{i}].{key}");
            let bad = |key: &str, reason: String| Error::Invalid {
                file: origin.to_owned(),
                key: at(key),
                reason,
            };
            let key = StationKey::parse(&raw.park, &raw.site, &raw.station)
                .map_err(|r| bad("station", r))?;
            let station = validate(raw, key.clone(), defaults, &params, &bad)?;
            if by_key.insert(key.clone(), station).is_some() {
                return Err(bad("station", format!("{key} is configured twice")));
            }
        }
        Ok(Stations { by_key, params })
    }
}

fn line_of(text: &str, offset: usize) -> String {
    let line = text[..offset.min(text.len())].matches('\n').count() + 1;
    format!("line {line}")
}

fn parse_windows(
    list: &[String],
    key: &str,
    bad: &dyn Fn(&str, String) -> Error,
) -> Result<Vec<WindowSpec>, Error> {
    list.iter()
        .map(|w| WindowSpec::parse(w).map_err(|r| bad(key, r)))
        .collect()
}

fn coefficient(
    v: Option<f64>,
    key: &str,
    bad: &dyn Fn(&str, String) -> Error,
) -> Result<f64, Error> {
    match v {
        None => Ok(1.0),
        Some(k) if k.is_finite() && k > 0.0 && k <= 5.0 => Ok(k),
        Some(k) => Err(bad(key, format!("coefficient {k} must be > 0 and ≤ 5"))),
    }
}

fn validate(
    raw: RawStation,
    key: StationKey,
    defaults: &StationDefaults,
    params: &Params,
    bad: &dyn Fn(&str, String) -> Error,
) -> Result<Station, Error> {
    let uplink_code = match raw.uplink_code {
        None => key.station().to_owned(),
        Some(code) => {
            let ok = (1..=64).contains(&code.len())
                && !code
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '/');
            if !ok {
                return Err(bad(
                    "uplink_code",
                    format!("{code:?} must be 1 to 64 characters, without spaces or '/'"),
                ));
            }
            code
        }
    };
    if raw.expected_interval_s == 0 || raw.expected_interval_s > 86_400 {
        return Err(bad(
            "expected_interval_s",
            format!(
                "{} must be between 1 and 86400 seconds",
                raw.expected_interval_s
            ),
        ));
    }
    if let Some(o2) = raw.o2_ref {
        if raw.kind != Kind::Emission {
            return Err(bad(
                "o2_ref",
                "only emission stations have a reference O2".into(),
            ));
        }
        if !(0.0..20.0).contains(&o2) {
            return Err(bad("o2_ref", format!("{o2} % must be in 0–20")));
        }
    }
    let (kq, kf, kp, kv) = (
        coefficient(raw.kq, "kq", bad)?,
        coefficient(raw.kf, "kf", bad)?,
        coefficient(raw.kp, "kp", bad)?,
        coefficient(raw.kv, "kv", bad)?,
    );
    match raw.kind {
        Kind::Wastewater if raw.kp.is_some() || raw.kv.is_some() => return Err(bad(
            "kp",
            "kp and kv are emission coefficients (QCVN 19); a wastewater station takes kq and kf"
                .into(),
        )),
        Kind::Emission if raw.kq.is_some() || raw.kf.is_some() => return Err(bad(
            "kq",
            "kq and kf are wastewater coefficients (QCVN 40); an emission station takes kp and kv"
                .into(),
        )),
        _ => {}
    }
    let windows = match &raw.windows {
        Some(list) => parse_windows(list, "windows", bad)?,
        None => defaults.windows.clone(),
    };
    let min_capture = raw.min_capture.unwrap_or(defaults.min_capture);
    if !(0.0..=1.0).contains(&min_capture) {
        return Err(bad("min_capture", format!("{min_capture} must be in 0–1")));
    }
    let mut limits = BTreeMap::new();
    let mut param_windows = BTreeMap::new();
    for (symbol, limit) in raw.limits {
        let lkey = format!("limits.{symbol}");
        let param = params
            .parse(&symbol)
            .ok_or_else(|| bad(&lkey, format!("unknown parameter {symbol:?}")))?;
        if !param.kinds().contains(&raw.kind) {
            return Err(bad(
                &lkey,
                format!("{param} is not measured at a {:?} station", raw.kind),
            ));
        }
        let (max, min, windows) = match limit {
            RawLimit::Max(m) => (Some(m), None, None),
            RawLimit::Full(t) => (t.max, t.min, t.windows),
        };
        for v in [max, min].into_iter().flatten() {
            if !v.is_finite() || v < 0.0 {
                return Err(bad(
                    &lkey,
                    format!("limit {v} must be a finite, non-negative number"),
                ));
            }
        }
        if let (Some(lo), Some(hi)) = (min, max) {
            if lo > hi {
                return Err(bad(&lkey, format!("min {lo} is above max {hi}")));
            }
        }
        if let Some(w) = windows {
            param_windows.insert(param, parse_windows(&w, &format!("{lkey}.windows"), bad)?);
        }
        if max.is_some() || min.is_some() {
            limits.insert(param, PermitLimit { max, min });
        }
    }
    Ok(Station {
        key,
        kind: raw.kind,
        uplink_code,
        uplink: raw.uplink,
        regulation: raw.regulation,
        column: raw.column,
        kq,
        kf,
        kp,
        kv,
        o2_ref: raw.o2_ref,
        expected_interval_s: raw.expected_interval_s,
        windows,
        param_windows,
        min_capture,
        stuck_after_s: raw.stuck_after_s.unwrap_or(defaults.stuck_after_s),
        limits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantrac_testkit::fixtures::CONTRACT_STATIONS as CONTRACT_EXAMPLE;

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

    #[test]
    fn the_contract_example_parses() {
        let s = Stations::parse(CONTRACT_EXAMPLE, "stations.toml", &defaults()).unwrap();
        assert_eq!(s.by_key.len(), 2);
        let stack = s
            .get(&StationKey::parse("dinh-vu", "dv-steel", "stack-1").unwrap())
            .unwrap();
        assert_eq!(stack.kp, 0.9);
        assert_eq!(stack.o2_ref, Some(7.0));
        assert_eq!(
            stack.limits[&Param::PM],
            PermitLimit {
                max: Some(100.0),
                min: None
            }
        );
        assert_eq!(stack.limits[&Param::SO2].max, Some(300.0));
        assert_eq!(stack.windows_for(Param::SO2).len(), 2);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_station_and_key() {
        let text = CONTRACT_EXAMPLE.replace("kq = 0.9", "kq = 0.9\nkz = 1");
        let e = Stations::parse(&text, "stations.toml", &defaults())
            .unwrap_err()
            .to_string();
        assert!(e.contains("stations.toml") && e.contains("kz"), "{e}");

        let text = CONTRACT_EXAMPLE.replace("PM = 100", "Benzene = 5");
        let e = Stations::parse(&text, "stations.toml", &defaults())
            .unwrap_err()
            .to_string();
        assert!(e.contains("station[1].limits.Benzene"), "{e}");

        let text = CONTRACT_EXAMPLE.replace("outfall-1", "outfall 1");
        let e = Stations::parse(&text, "stations.toml", &defaults())
            .unwrap_err()
            .to_string();
        assert!(e.contains("station[0].station"), "{e}");
    }

    #[test]
    fn the_uplink_code_defaults_to_the_station_id() {
        let s = Stations::parse(CONTRACT_EXAMPLE, "stations.toml", &defaults()).unwrap();
        let outfall = s
            .get(&StationKey::parse("nam-dinh-vu", "nd-textile", "outfall-1").unwrap())
            .unwrap();
        assert_eq!(outfall.uplink_code, "outfall-1");

        let text = CONTRACT_EXAMPLE.replace(
            "kind = \"wastewater\"",
            "kind = \"wastewater\"\nuplink_code = \"HP_NUO01\"",
        );
        let s = Stations::parse(&text, "stations.toml", &defaults()).unwrap();
        assert_eq!(
            s.iter()
                .find(|st| st.kind == Kind::Wastewater)
                .unwrap()
                .uplink_code,
            "HP_NUO01"
        );

        let text = CONTRACT_EXAMPLE.replace(
            "kind = \"wastewater\"",
            "kind = \"wastewater\"\nuplink_code = \"a b\"",
        );
        let e = Stations::parse(&text, "stations.toml", &defaults())
            .unwrap_err()
            .to_string();
        assert!(e.contains("station[0].uplink_code"), "{e}");
    }

    #[test]
    fn limits_may_name_a_defined_parameter() {
        let params = crate::model::Params::define(vec![crate::model::Definition {
            symbol: "Xylene-t".into(),
            aliases: vec![],
            kinds: vec![Kind::Emission],
            unit: "mg/Nm3".into(),
            units: vec![],
            molar_mass: None,
            min: 0.0,
            max: f64::INFINITY,
        }])
        .unwrap();
        let text = CONTRACT_EXAMPLE.replace("PM = 100", "PM = 100\nxylene-T = 20");
        assert!(Stations::parse(&text, "stations.toml", &defaults()).is_err());
        let s = Stations::parse_with(&text, "stations.toml", &defaults(), params.clone()).unwrap();
        let stack = s
            .get(&StationKey::parse("dinh-vu", "dv-steel", "stack-1").unwrap())
            .unwrap();
        let x = params.parse("Xylene-t").unwrap();
        assert_eq!(stack.limits[&x].max, Some(20.0));
        assert_eq!(s.params.count(), params.count());
    }

    #[test]
    fn windows_parse_and_must_tile_the_clock() {
        assert_eq!(WindowSpec::parse("1h").unwrap().seconds, 3600);
        assert_eq!(WindowSpec::parse("30m").unwrap().seconds, 1800);
        assert_eq!(WindowSpec::parse("24h").unwrap().seconds, 86_400);
        assert!(WindowSpec::parse("7m").is_err());
        assert!(WindowSpec::parse("h").is_err());
        assert!(WindowSpec::parse("36h").is_err());
    }
}
