//! The report as CSV (the columns of [`super::Row`], with `#` lines before the header for
//! the period and the verification), JSON, or HTML ([`super::html`]).

use std::fmt::Write as _;
use std::str::FromStr;

use super::{Report, Row};

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
    Html,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            "html" => Ok(Format::Html),
            other => Err(format!("{other:?} is not a format: csv, json or html")),
        }
    }
}

/// The CSV header: the columns, in order.
pub const COLUMNS: &str = "park,site,station,param,unit,limit,limit_source,expected,received,\
valid,calibrating,fault,rejected,capture,hours,hours_valid,hours_exceeded,days_exceeded,\
max_hour_mean,max_hour_ratio";

pub fn render(report: &Report, format: Format, tz: chrono_tz::Tz) -> String {
    match format {
        Format::Csv => csv(report),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(report).expect("a report serialises");
            s.push('\n');
            s
        }
        Format::Html => super::html::page(report, tz),
    }
}

/// A number as the report prints it: rounded to 4 decimals, shortest form (`61`, `0.75`,
/// `51.6667`).
pub fn num(x: f64) -> String {
    let r = (x * 10_000.0).round() / 10_000.0;
    if r == 0.0 {
        "0".into()
    } else {
        format!("{r}")
    }
}

fn opt(x: Option<f64>) -> String {
    x.map(num).unwrap_or_default()
}

fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The row's cells, as the CSV has them.
pub fn cells(r: &Row) -> Vec<String> {
    vec![
        field(&r.park),
        field(&r.site),
        field(&r.station),
        field(&r.param),
        field(&r.unit),
        field(&r.limit),
        field(&r.limit_source),
        r.expected.to_string(),
        r.received.to_string(),
        r.valid.to_string(),
        r.calibrating.to_string(),
        r.fault.to_string(),
        r.rejected.to_string(),
        num(r.capture),
        r.hours.to_string(),
        r.hours_valid.to_string(),
        r.hours_exceeded.to_string(),
        r.days_exceeded.to_string(),
        opt(r.max_hour_mean),
        opt(r.max_hour_ratio),
    ]
}

fn csv(report: &Report) -> String {
    let mut out = String::new();
    let p = &report.period;
    let v = &report.verification;
    let _ = writeln!(
        out,
        "# quantrac report from {} to {} (exclusive), {}, generated {}",
        p.from, p.to, p.timezone, report.generated_at
    );
    let _ = writeln!(out, "# verify: {}", v.summary.replace('\n', " | "));
    let _ = writeln!(
        out,
        "# chain head: record {} hash {}",
        v.head_id, v.head_hash
    );
    out.push_str(COLUMNS);
    out.push('\n');
    for r in &report.rows {
        out.push_str(&cells(r).join(","));
        out.push('\n');
    }
    out
}
