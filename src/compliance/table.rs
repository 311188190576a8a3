//! `check-config`'s table of effective limits: one line per station × parameter.

use std::fmt::Write;

use chrono_tz::Tz;

use super::{Catalogue, Engine, LimitRow};
use crate::config::Stations;
use crate::model::LimitSource;

/// `check-config`'s table: every station × parameter limit in force, its windows and where it
/// comes from, then the warnings (unverified values a station relies on).
pub fn limit_table(stations: Stations, catalogue: &Catalogue, tz: Tz) -> String {
    let n = stations.by_key.len();
    let engine = Engine::new(stations, catalogue, tz);
    render_limit_table(&engine.limit_table(), &engine.warnings(), n)
}

fn number(v: Option<f64>) -> String {
    v.map(|v| format!("{v}")).unwrap_or_else(|| "-".into())
}

/// Renders the rows, then the warnings, as plain text for a terminal.
pub fn render_limit_table(rows: &[LimitRow], warnings: &[String], stations: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{stations} stations, {} limits", rows.len());
    let _ = writeln!(
        out,
        "{:<40} {:<6} {:>10} {:>10} {:<8} {:<10} {:<8} source",
        "station", "param", "min", "max", "unit", "windows", "o2_ref"
    );
    for r in rows {
        let source = match &r.limit.source {
            LimitSource::Permit => "permit".to_string(),
            LimitSource::Regulation { text, unverified } => {
                if *unverified {
                    format!("{text} [UNVERIFIED value]")
                } else {
                    text.to_string()
                }
            }
        };
        let unit = match r.param.canonical_unit() {
            "" => "-",
            u => u,
        };
        let _ = writeln!(
            out,
            "{:<40} {:<6} {:>10} {:>10} {:<8} {:<10} {:<8} {source}",
            r.key.to_string(),
            r.param.symbol(),
            number(r.limit.min),
            number(r.limit.max),
            unit,
            r.windows.join(","),
            number(r.o2_ref),
        );
    }
    if !warnings.is_empty() {
        let _ = writeln!(out, "\nwarnings:");
        for w in warnings {
            let _ = writeln!(out, "  - {w}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{StationDefaults, WindowSpec};

    #[test]
    fn the_table_lists_each_limit_with_its_source_then_the_warnings() {
        let defaults = StationDefaults {
            windows: vec![WindowSpec::parse("1h").unwrap()],
            min_capture: 0.75,
            stuck_after_s: 0,
        };
        let text = quantrac_testkit::fixtures::CONTRACT_STATIONS;
        let stations = Stations::parse(text, "stations.toml", &defaults).unwrap();
        let table = limit_table(
            stations,
            &Catalogue::builtin(),
            chrono_tz::Asia::Ho_Chi_Minh,
        );
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("2 stations, "), "{table}");
        assert!(lines[1].starts_with("station") && lines[1].ends_with("source"));
        // QCVN 40:2011 column B COD 150 × Kq 0.9 × Kf 1.0; pH a range without coefficients.
        let row = |station: &str, param: &str| -> Vec<String> {
            let line = lines
                .iter()
                .find(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    f.len() > 2 && f[0].ends_with(station) && f[1] == param
                })
                .unwrap_or_else(|| panic!("{station} {param}: {table}"));
            line.split_whitespace().map(str::to_string).collect()
        };
        let cod = row("outfall-1", "COD");
        assert_eq!(&cod[2..6], ["-", "135", "mg/L", "1h"], "{table}");
        assert!(cod[7].starts_with("QCVN"), "{table}");
        assert_eq!(&row("outfall-1", "pH")[2..5], ["5.5", "9", "-"], "{table}");
        // The stack's QCVN 19:2009 values are unverified: said in the row and warned below.
        assert!(table.contains("[UNVERIFIED value]"), "{table}");
        let warnings = table.split("\nwarnings:\n").nth(1).expect("warnings");
        assert!(warnings.lines().all(|l| l.starts_with("  - ")), "{table}");
    }
}
