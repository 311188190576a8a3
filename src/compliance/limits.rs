//! Limit resolution and the comparison of a value against a limit.
//!
//! Order (contract, "Stations"): an explicit `[station.limits]` entry from the permit wins;
//! otherwise the regulation's table value times its coefficients. QCVN 40:2011 clause 2.1
//! gives `Cmax = C × Kq × Kf`, clause 2.2 exempts temperature, colour and pH (`Cmax = C`);
//! QCVN 19:2009 gives `Cmax = C × Kp × Kv` (regulations.md §1.1, §2.1).

use std::collections::BTreeMap;

use crate::config::Station;
use crate::model::{Kind, Limit, LimitSource, Param};

use super::catalogue::{Catalogue, Coefficient, Regulation};

/// The effective limits of one station, and what is worth telling the operator about them.
#[derive(Debug, Default)]
pub struct Resolved {
    pub limits: BTreeMap<Param, Limit>,
    pub warnings: Vec<String>,
}

/// Resolves every parameter of the station's kind that has a limit: the built-in ones, and
/// the operator-defined ones its permit gives a limit (no regulation table knows those).
pub fn resolve(station: &Station, catalogue: &Catalogue) -> Resolved {
    let mut out = Resolved::default();
    let key = &station.key;
    let regulation = regulation_of(station, catalogue, &mut out.warnings);
    let defined = station.limits.keys().copied().filter(|p| p.is_defined());
    for param in Param::ALL.iter().copied().chain(defined) {
        if !param.kinds().contains(&station.kind) {
            continue;
        }
        if let Some(p) = station.limits.get(&param) {
            out.limits.insert(
                param,
                Limit {
                    max: p.max,
                    min: p.min,
                    source: LimitSource::Permit,
                },
            );
            continue;
        }
        let (Some(reg), Some(column)) = (regulation, station.column.as_deref()) else {
            continue;
        };
        let Some((row, cell)) = reg.cell(param, column) else {
            continue;
        };
        let column = column.trim().to_ascii_uppercase();
        let mut text = format!("{} {} col {column}", reg.id, reg.table);
        let mut factor = 1.0;
        if row.coefficients {
            for &c in &reg.coefficients {
                let k = coefficient(station, c);
                factor *= k;
                text.push_str(&format!(" × {} {}", c.name(), number(k)));
            }
        } else {
            text.push_str(" (Cmax = C, no coefficients)");
        }
        // The coefficients scale the maximum only: a lower bound (pH) has none in the tables.
        let limit = Limit {
            max: cell.max.map(|c| tidy(c * factor)),
            min: cell.min,
            source: LimitSource::Regulation {
                text: text.into(),
                unverified: cell.unverified(),
            },
        };
        if cell.unverified() {
            out.warnings.push(format!(
                "station {key}: the {param} limit ({} {}) rests on an unverified value of {} {} \
                 col {column}; confirm it against the official text or set limits.{param} \
                 from the permit",
                describe(&limit),
                param.canonical_unit(),
                reg.id,
                reg.table,
            ));
        }
        out.limits.insert(param, limit);
    }
    if out.limits.is_empty() {
        out.warnings.push(format!(
            "station {key}: no limit applies to any parameter (no usable regulation and column, \
             no [station.limits]); readings get no verdict"
        ));
    }
    out
}

/// The station's regulation, if it names one the catalogue has, of the right kind, with a
/// column it has. Anything else is a warning: the station keeps its permit limits only.
fn regulation_of<'c>(
    station: &Station,
    catalogue: &'c Catalogue,
    warnings: &mut Vec<String>,
) -> Option<&'c Regulation> {
    let key = &station.key;
    let Some(name) = station.regulation.as_deref() else {
        if station.column.is_some() {
            warnings.push(format!(
                "station {key}: column is set but no regulation is named; it is ignored"
            ));
        }
        return None;
    };
    let Some(reg) = catalogue.find(name) else {
        let known: Vec<&str> = catalogue
            .regulations()
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        warnings.push(format!(
            "station {key}: regulation {name:?} is not in the catalogue (known: {}); only \
             permit limits apply",
            known.join(", ")
        ));
        return None;
    };
    if reg.kind != station.kind {
        warnings.push(format!(
            "station {key}: {} is a {} regulation but the station is {}; only permit \
             limits apply",
            reg.id,
            kind_name(reg.kind),
            kind_name(station.kind)
        ));
        return None;
    }
    match station.column.as_deref() {
        None => {
            warnings.push(format!(
                "station {key}: {} needs a column ({}); only permit limits apply",
                reg.id,
                reg.columns().join(" or ")
            ));
            None
        }
        Some(col) if !reg.has_column(col) => {
            warnings.push(format!(
                "station {key}: {} has no column {col:?} (columns: {}); only permit limits apply",
                reg.id,
                reg.columns().join(", ")
            ));
            None
        }
        Some(_) => Some(reg),
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Wastewater => "wastewater",
        Kind::Emission => "emission",
    }
}

fn coefficient(station: &Station, c: Coefficient) -> f64 {
    match c {
        Coefficient::Kq => station.kq,
        Coefficient::Kf => station.kf,
        Coefficient::Kp => station.kp,
        Coefficient::Kv => station.kv,
    }
}

/// Drops the binary-floating-point tail of a product (`40 × 1.1` = 44.000000000000004) so a
/// limit reads as the permit would write it.
fn tidy(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// `0.9` → "0.9", `1` → "1.0": coefficients written the way permits write them.
fn number(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

/// "max 450", "5.5–9".
pub fn describe(limit: &Limit) -> String {
    match (limit.min, limit.max) {
        (Some(lo), Some(hi)) => format!("{lo}–{hi}"),
        (None, Some(hi)) => format!("max {hi}"),
        (Some(lo), None) => format!("min {lo}"),
        (None, None) => "none".into(),
    }
}

/// Whether `value` breaks `limit`: above the maximum, or below the minimum of a range.
pub fn exceeds(limit: &Limit, value: f64) -> bool {
    limit.max.is_some_and(|m| value > m) || limit.min.is_some_and(|m| value < m)
}

/// `value ÷ max`, when the limit has a positive maximum.
pub fn ratio(limit: &Limit, value: f64) -> Option<f64> {
    limit.max.filter(|m| *m > 0.0).map(|m| value / m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{StationDefaults, Stations, WindowSpec};
    use crate::model::StationKey;

    fn station(toml: &str) -> Station {
        let defaults = StationDefaults {
            windows: vec![WindowSpec::parse("1h").unwrap()],
            min_capture: 0.75,
            stuck_after_s: 3600,
        };
        let s = Stations::parse(toml, "stations.toml", &defaults).unwrap();
        let first = s.iter().next().unwrap().clone();
        first
    }

    fn outfall(extra: &str) -> Station {
        station(&format!(
            "[[station]]\npark = \"p\"\nsite = \"s\"\nstation = \"outfall-1\"\nkind = \"wastewater\"\n\
             regulation = \"QCVN 40:2011/BTNMT\"\ncolumn = \"B\"\nkq = 0.9\nkf = 1.0\n{extra}"
        ))
    }

    fn stack(extra: &str) -> Station {
        station(&format!(
            "[[station]]\npark = \"p\"\nsite = \"s\"\nstation = \"stack-1\"\nkind = \"emission\"\n\
             regulation = \"QCVN 19:2009/BTNMT\"\ncolumn = \"B\"\nkp = 0.9\nkv = 1.0\n{extra}"
        ))
    }

    #[test]
    fn qcvn_40_col_b_cod_is_150_times_kq_0_9_times_kf_1_0() {
        // QCVN 40:2011 clause 2.1: Cmax = C × Kq × Kf = 150 × 0.9 × 1.0 = 135 mg/L.
        let r = resolve(&outfall(""), &Catalogue::builtin());
        let cod = &r.limits[&Param::COD];
        assert_eq!(cod.max, Some(135.0));
        assert_eq!(cod.min, None);
        assert_eq!(
            cod.source,
            LimitSource::Regulation {
                text: "QCVN 40:2011/BTNMT Table 1 col B × Kq 0.9 × Kf 1.0".into(),
                unverified: false
            }
        );
        // No TOC row in QCVN 40:2011 and no permit value → no limit.
        assert!(!r.limits.contains_key(&Param::TOC));
        assert!(!r.limits.contains_key(&Param::Flow));
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    }

    #[test]
    fn qcvn_40_clause_2_2_ph_temp_take_no_coefficients() {
        // pH col B is the range 5.5–9 and Temp 40 °C whatever Kq and Kf are (clause 2.2).
        let r = resolve(&outfall("").clone(), &Catalogue::builtin());
        let ph = &r.limits[&Param::PH];
        assert_eq!((ph.min, ph.max), (Some(5.5), Some(9.0)));
        assert_eq!(r.limits[&Param::Temp].max, Some(40.0));
        let mut s = outfall("");
        s.kq = 1.2;
        s.kf = 1.1;
        let r = resolve(&s, &Catalogue::builtin());
        assert_eq!(r.limits[&Param::PH].max, Some(9.0));
        assert_eq!(r.limits[&Param::Temp].max, Some(40.0));
        assert_eq!(r.limits[&Param::Color].max, Some(150.0));
        // 150 × 1.2 × 1.1 = 198, without the floating-point tail.
        assert_eq!(r.limits[&Param::COD].max, Some(198.0));
        match &r.limits[&Param::Temp].source {
            LimitSource::Regulation { text, .. } => assert!(text.contains("Cmax = C"), "{text}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn qcvn_19_col_b_so2_is_500_times_kp_0_9_and_unverified() {
        // QCVN 19:2009: Cmax = C × Kp × Kv = 500 × 0.9 × 1.0 = 450 mg/Nm3, value [U].
        let r = resolve(&stack(""), &Catalogue::builtin());
        let so2 = &r.limits[&Param::SO2];
        assert_eq!(so2.max, Some(450.0));
        assert_eq!(
            so2.source,
            LimitSource::Regulation {
                text: "QCVN 19:2009/BTNMT Table 1 col B × Kp 0.9 × Kv 1.0".into(),
                unverified: true
            }
        );
        // One start-up warning per parameter resting on a [U] value: PM, CO, SO2, NOx.
        assert_eq!(r.warnings.len(), 4, "{:?}", r.warnings);
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("SO2 limit (max 450 mg/Nm3)")),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn permit_limit_beats_the_table_and_silences_the_warning() {
        // Contract, "Stations": an explicit limits entry wins over the regulation table.
        let r = resolve(
            &stack("[station.limits]\nPM = 100\n"),
            &Catalogue::builtin(),
        );
        let pm = &r.limits[&Param::PM];
        assert_eq!(pm.max, Some(100.0));
        assert_eq!(pm.source, LimitSource::Permit);
        assert!(
            !r.warnings.iter().any(|w| w.contains(" PM ")),
            "{:?}",
            r.warnings
        );
        assert_eq!(r.warnings.len(), 3);
    }

    #[test]
    fn unknown_regulation_or_column_is_a_warning_not_a_limit() {
        let mut s = outfall("[station.limits]\nCOD = 100\n");
        s.regulation = Some("QCVN 40:2025/BTNMT".into());
        let r = resolve(&s, &Catalogue::builtin());
        assert_eq!(r.limits.len(), 1);
        assert!(
            r.warnings[0].contains("not in the catalogue"),
            "{:?}",
            r.warnings
        );

        let mut s = outfall("");
        s.column = Some("C".into());
        let r = resolve(&s, &Catalogue::builtin());
        assert!(r.limits.is_empty());
        assert!(
            r.warnings[0].contains("no column \"C\""),
            "{:?}",
            r.warnings
        );
        assert!(
            r.warnings[1].contains("no limit applies"),
            "{:?}",
            r.warnings
        );

        let mut s = outfall("");
        s.regulation = Some("QCVN 19:2009".into());
        let r = resolve(&s, &Catalogue::builtin());
        assert!(
            r.warnings[0].contains("emission regulation"),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn lowercase_column_and_short_regulation_name_resolve() {
        let mut s = outfall("");
        s.column = Some("b".into());
        s.regulation = Some("qcvn 40:2011".into());
        let r = resolve(&s, &Catalogue::builtin());
        assert_eq!(r.limits[&Param::COD].max, Some(135.0));
        assert_eq!(s.key, StationKey::parse("p", "s", "outfall-1").unwrap());
    }

    #[test]
    fn range_and_max_comparisons() {
        let ph = Limit {
            max: Some(9.0),
            min: Some(5.5),
            source: LimitSource::Permit,
        };
        assert!(exceeds(&ph, 9.1));
        assert!(exceeds(&ph, 5.4));
        assert!(!exceeds(&ph, 9.0));
        assert!(!exceeds(&ph, 5.5));
        assert_eq!(ratio(&ph, 4.5), Some(0.5));
        let none = Limit {
            max: None,
            min: Some(1.0),
            source: LimitSource::Permit,
        };
        assert_eq!(ratio(&none, 4.5), None);
    }

    // A ratio is `value ÷ max` only for a positive maximum: a limit of 0 (nothing allowed)
    // gives no ratio rather than an infinite or undefined one.
    #[test]
    fn a_zero_maximum_has_no_ratio() {
        let zero = Limit {
            max: Some(0.0),
            min: None,
            source: LimitSource::Permit,
        };
        assert_eq!(ratio(&zero, 4.5), None);
        assert_eq!(ratio(&zero, 0.0), None);
        assert!(exceeds(&zero, 4.5));
        assert!(!exceeds(&zero, 0.0));
    }
}
