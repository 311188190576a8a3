//! The files themselves: content, name and folder of one station's file for one period, pure.
//!
//! Content (Circular 10/2021/TT-BTNMT art. 39, as dataloggers write it): one line per
//! parameter, `SYMBOL<TAB>VALUE<TAB>UNIT<TAB>yyyyMMddHHmmss<TAB>STATUS`, each ended by CRLF;
//! symbols and units as the Circular writes them (quantrac's canonical ones: `COD` in `mg/L`,
//! `SO2` in `mg/Nm3`, pH with an empty unit); the time is the file's, the period's end in local
//! time; status `00` measuring, `01` calibrating, `02` device fault. A calibration or fault
//! reported without a number has an empty value, as dataloggers send it.

use chrono_tz::Tz;

use crate::config::{Stations, UplinkSettings, UplinkValue};
use crate::model::file_template::{FileTemplate, NameParts};
use crate::model::{Reading, StationKey};

use super::period::{self, Line};

/// A file to send, before the journal commits it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutFile {
    pub station: StationKey,
    /// Folder below the URL's base (`""`: the base).
    pub dir: String,
    pub name: String,
    pub content: Vec<u8>,
}

/// Everything needed to make a period's files, from the settings and the stations.
#[derive(Clone, Debug)]
pub struct Plan {
    pub period_ms: i64,
    pub tz: Tz,
    province: String,
    facility: String,
    name: FileTemplate,
    dir: FileTemplate,
    value: UplinkValue,
    send_empty: bool,
    /// The stations sent, in `stations.toml` order, with their `uplink_code`.
    pub stations: Vec<(StationKey, String)>,
}

impl Plan {
    pub fn new(settings: &UplinkSettings, stations: &Stations, tz: Tz) -> Plan {
        let (name, dir) = settings.templates();
        Plan {
            period_ms: settings.period_s as i64 * 1000,
            tz,
            province: settings.province.clone(),
            facility: settings.facility.clone(),
            name,
            dir,
            value: settings.value,
            send_empty: settings.send_empty,
            stations: stations
                .iter()
                .filter(|s| s.uplink)
                .map(|s| (s.key.clone(), s.uplink_code.clone()))
                .collect(),
        }
    }

    /// Two stations sent under one `uplink_code` would write each other's files: refused.
    pub fn check(&self) -> Result<(), String> {
        let mut seen: std::collections::HashMap<String, &StationKey> =
            std::collections::HashMap::new();
        for (key, code) in &self.stations {
            if let Some(other) = seen.insert(code.to_ascii_lowercase(), key) {
                return Err(format!(
                    "stations {other} and {key} have the same uplink_code {code:?}: their files \
                     for the department would have the same names (set uplink_code, or \
                     uplink = false for one)"
                ));
            }
        }
        Ok(())
    }

    /// The same plan for one station only.
    pub fn only(mut self, station: StationKey, code: String) -> Plan {
        self.stations = vec![(station, code)];
        self
    }

    /// The files of the period ending at `end_ms`, one per station with a reading in it (every
    /// station with `send_empty`), from the readings in it. Readings of other stations and
    /// outside the period are ignored.
    pub fn files(&self, end_ms: i64, readings: &[Reading]) -> Vec<OutFile> {
        let start_ms = end_ms - self.period_ms;
        let time = period::local(end_ms, self.tz);
        let mut out = Vec::new();
        for (key, code) in &self.stations {
            let mine = readings
                .iter()
                .filter(|r| &r.key == key && r.ts_ms > start_ms && r.ts_ms <= end_ms);
            let lines = period::lines(mine, self.value);
            if lines.is_empty() && !self.send_empty {
                continue;
            }
            let parts = NameParts {
                province: &self.province,
                facility: &self.facility,
                station: code,
                time,
            };
            out.push(OutFile {
                station: key.clone(),
                dir: self.dir.render(&parts),
                name: self.name.render(&parts),
                content: content(&lines, time),
            });
        }
        out
    }
}

/// The file's text: one CRLF-ended line per parameter.
pub fn content(lines: &[Line], time: chrono::NaiveDateTime) -> Vec<u8> {
    let time = time.format("%Y%m%d%H%M%S").to_string();
    let mut out = String::new();
    for l in lines {
        out.push_str(l.param.symbol());
        out.push('\t');
        if let Some(v) = l.value {
            out.push_str(&number(v));
        }
        out.push('\t');
        out.push_str(l.param.canonical_unit());
        out.push('\t');
        out.push_str(&time);
        out.push('\t');
        out.push_str(l.status.code());
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// A value as dataloggers write it: a decimal point, at most four decimals, no exponent, no
/// trailing zeros (`48.2`, `120`, `0.3333`).
pub fn number(v: f64) -> String {
    let rounded = (v * 10_000.0).round() / 10_000.0;
    let s = format!("{rounded:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    match s {
        "-0" | "" => "0".to_owned(),
        s => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Param, Status};

    const HCM: Tz = chrono_tz::Asia::Ho_Chi_Minh;
    /// 2026-11-29 14:05:00 +07:00.
    const T: i64 = 1_795_935_900_000;

    fn settings(extra: &str) -> UplinkSettings {
        let text = format!(
            "url = \"ftp://127.0.0.1/\"\nusername = \"u\"\nprovince = \"HP\"\nfacility = \"DVSTEEL\"\n{extra}"
        );
        toml::from_str(&text).unwrap()
    }

    fn stations() -> Stations {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stations.toml");
        std::fs::write(
            &path,
            "[[station]]\npark = \"dinh-vu\"\nsite = \"dv-steel\"\nstation = \"stack-1\"\nkind = \"emission\"\nuplink_code = \"DVSTEEL_K1\"\n\n\
             [[station]]\npark = \"dinh-vu\"\nsite = \"dv-steel\"\nstation = \"stack-2\"\nkind = \"emission\"\nuplink = false\n\n\
             [[station]]\npark = \"nam-dinh-vu\"\nsite = \"nd-textile\"\nstation = \"outfall-1\"\nkind = \"wastewater\"\n",
        )
        .unwrap();
        Stations::load_with(
            &path,
            &crate::config::ComplianceSettings::default().station_defaults(),
            crate::model::Params::builtin(),
        )
        .unwrap()
    }

    fn reading(station: &str, param: &str, secs: i64, value: Option<f64>, s: Status) -> Reading {
        let site = if station == "outfall-1" {
            ("nam-dinh-vu", "nd-textile")
        } else {
            ("dinh-vu", "dv-steel")
        };
        Reading {
            key: StationKey::parse(site.0, site.1, station).unwrap(),
            param: Param::parse(param).unwrap(),
            ts_ms: T + secs * 1000,
            value,
            status: s,
        }
    }

    // Circular 10/2021 art. 39 as dataloggers implement it: TAB-separated, CRLF, local time,
    // status codes 00/01/02, long-form name in the department's station/yyyy/MM/dd folders.
    #[test]
    fn a_period_makes_one_file_per_station_with_readings() {
        let plan = Plan::new(&settings(""), &stations(), HCM);
        let rs = [
            reading("stack-1", "SO2", -60, Some(120.456_78), Status::Normal),
            reading("stack-1", "O2", 0, Some(11.0), Status::Normal),
            reading("stack-1", "PM", 0, None, Status::Fault),
            reading("stack-1", "SO2", -300, Some(1.0), Status::Normal), // the previous period
            reading("stack-2", "SO2", 0, Some(5.0), Status::Normal),    // uplink = false
        ];
        let files = plan.files(T, &rs);
        assert_eq!(files.len(), 1, "{files:?}");
        let f = &files[0];
        assert_eq!(f.dir, "DVSTEEL_K1/2026/11/29");
        assert_eq!(f.name, "HP_DVSTEEL_DVSTEEL_K1_20261129140500.txt");
        assert_eq!(
            String::from_utf8(f.content.clone()).unwrap(),
            "O2\t11\t%\t20261129140500\t00\r\n\
             PM\t\tmg/Nm3\t20261129140500\t02\r\n\
             SO2\t120.4568\tmg/Nm3\t20261129140500\t00\r\n"
        );
    }

    #[test]
    fn empty_periods_make_no_file_unless_send_empty() {
        let plan = Plan::new(&settings(""), &stations(), HCM);
        assert!(plan.files(T, &[]).is_empty());
        let plan = Plan::new(&settings("send_empty = true\nfile_name = \"{station}_{yyyyMMddHHmmss}.txt\"\ndir = \"{yyyyMMdd}\""), &stations(), HCM);
        let files = plan.files(T, &[]);
        let names: Vec<_> = files
            .iter()
            .map(|f| format!("{}/{}", f.dir, f.name))
            .collect();
        assert_eq!(
            names,
            [
                "20261129/DVSTEEL_K1_20261129140500.txt",
                "20261129/outfall-1_20261129140500.txt"
            ]
        );
        assert!(files.iter().all(|f| f.content.is_empty()));
    }

    #[test]
    fn two_stations_sent_under_one_code_are_refused() {
        let plan = Plan::new(&settings(""), &stations(), HCM);
        assert!(plan.check().is_ok());
        let twice = plan.clone().only(
            StationKey::parse("p", "s", "x").unwrap(),
            "dvsteel_k1".into(),
        );
        let mut both = plan.clone();
        both.stations.extend(twice.stations);
        let e = both.check().unwrap_err();
        assert!(e.contains("same uplink_code"), "{e}");
    }

    #[test]
    fn numbers_are_plain_decimals() {
        assert_eq!(number(48.2), "48.2");
        assert_eq!(number(120.0), "120");
        assert_eq!(number(1.0 / 3.0), "0.3333");
        assert_eq!(number(-0.000_01), "0");
        assert_eq!(number(1e7), "10000000");
        assert_eq!(number(7.123_46), "7.1235");
    }
}
