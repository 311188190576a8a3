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
