//! The report as one self-contained HTML page: no script, no font, no image from elsewhere;
//! per station a table and, per parameter with hourly means, an inline SVG chart of the
//! means against the limit, exceeding hours in red. Printable on A4 (`@page`).

use std::fmt::Write as _;

use chrono_tz::Tz;

use super::render::{cells, num, COLUMNS};
use super::{local_hour, Report, Row};

const STYLE: &str = "
@page { size: A4; margin: 14mm; }
body { font-family: sans-serif; font-size: 10pt; color: #111; margin: 0 auto; max-width: 190mm; }
h1 { font-size: 15pt; margin: 0 0 4pt; }
h2 { font-size: 12pt; margin: 14pt 0 4pt; break-after: avoid; }
h3 { font-size: 10pt; margin: 8pt 0 2pt; }
p.meta { margin: 1pt 0; }
.ok { color: #065f46; font-weight: bold; }
.bad { color: #b91c1c; font-weight: bold; }
table { border-collapse: collapse; width: 100%; font-size: 7pt; }
th, td { border: 1px solid #999; padding: 1pt 2pt; text-align: right; }
th { background: #eee; font-size: 6.5pt; }
td.src { font-size: 6pt; min-width: 32mm; }
td.t { text-align: left; }
tr.exceeded td { background: #fee2e2; }
section { break-inside: avoid-page; }
figure { margin: 4pt 0; break-inside: avoid; }
figcaption { font-size: 8pt; color: #444; }
svg text { font-size: 9px; fill: #333; }
";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn page(report: &Report, tz: Tz) -> String {
    let mut h = String::new();
    let p = &report.period;
    let v = &report.verification;
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>quantrac report {} to {}</title><style>{STYLE}</style></head><body>\n",
        esc(&p.from),
        esc(&p.to)
    );
    let _ = writeln!(
        h,
        "<h1>Automatic continuous monitoring: {} to {}</h1>",
        esc(&p.from),
        esc(&p.to)
    );
    let _ = writeln!(
        h,
        "<p class=\"meta\">Period [{}, {}) in {}; generated {}. Computed from the sealed \
         archive and the journal, after verification.</p>",
        esc(&p.from),
        esc(&p.to),
        esc(&p.timezone),
        esc(&report.generated_at)
    );
    let _ = writeln!(
        h,
        "<p class=\"meta\">Verification: <span class=\"{}\">{}</span></p>\
         <p class=\"meta\">Chain head: record {} hash <code>{}</code></p>",
        if v.intact { "ok" } else { "bad" },
        esc(&v.summary).replace('\n', "<br>"),
        v.head_id,
        esc(&v.head_hash)
    );
    let headers: Vec<&str> = COLUMNS.split(',').skip(3).collect();
    let mut stations: Vec<(String, Vec<&Row>)> = Vec::new();
    for r in &report.rows {
        let name = format!("{}/{}/{}", r.park, r.site, r.station);
        match stations.last_mut() {
            Some((n, rows)) if *n == name => rows.push(r),
            _ => stations.push((name, vec![r])),
        }
    }
    if stations.is_empty() {
        h.push_str("<p>No station matches.</p>\n");
    }
    for (name, rows) in stations {
        let _ = writeln!(h, "<section><h2>Station {}</h2>", esc(&name));
        h.push_str("<table><thead><tr>");
        for c in &headers {
            // Let the long column names wrap at their underscores.
            let _ = write!(h, "<th>{}</th>", esc(c).replace('_', "_<wbr>"));
        }
        h.push_str("</tr></thead><tbody>\n");
        for r in &rows {
            let class = if r.hours_exceeded > 0 {
                " class=\"exceeded\""
            } else {
                ""
            };
            let _ = write!(h, "<tr{class}>");
            for (i, c) in cells(r).into_iter().skip(3).enumerate() {
                let cell = match i {
                    3 => " class=\"t src\"",
                    0..=2 => " class=\"t\"",
                    _ => "",
                };
                let _ = write!(h, "<td{cell}>{}</td>", esc(c.trim_matches('"')));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</tbody></table>\n");
        for r in rows.iter().filter(|r| !r.hourly.is_empty()) {
            chart(&mut h, r, report, tz);
        }
        h.push_str("</section>\n");
    }
    h.push_str("</body></html>\n");
    h
}

/// Local midnights strictly inside `(from, to)`, every day up to a month, else the first of
/// each month: `(instant, "MM-DD")`.
fn ticks(from: i64, to: i64, tz: Tz) -> Vec<(i64, String)> {
    use crate::journal::archive::{day_start_ms, local_day};
    use chrono::Datelike as _;
    let monthly = to - from > 31 * 86_400_000;
    let mut out = Vec::new();
    let mut day = local_day(from, tz);
    while let Some(next) = day.succ_opt() {
        day = next;
        let at = day_start_ms(day, tz);
        if at >= to || out.len() > 400 {
            break;
        }
        if !monthly || day.day() == 1 {
            out.push((at, day.format("%m-%d").to_string()));
        }
    }
    out
}

/// Hourly means over the period as dots (grey: not valid; red: above the limit), the limit
/// as a red dashed line.
fn chart(h: &mut String, r: &Row, report: &Report, tz: Tz) {
    const W: f64 = 680.0;
    const H: f64 = 150.0;
    const L: f64 = 46.0; // left margin, for the axis labels
    const B: f64 = 16.0; // bottom margin
    let (from, to) = (report.period.from_ms as f64, report.period.to_ms as f64);
    let top = r
        .hourly
        .iter()
        .map(|x| x.mean)
        .chain(r.limit_max)
        .fold(0.0_f64, f64::max)
        .max(1e-9)
        * 1.1;
    let x = |ms: f64| L + (ms - from) / (to - from).max(1.0) * (W - L - 4.0);
    let y = |v: f64| (H - B) - (v.max(0.0) / top) * (H - B - 6.0);
    let _ = write!(
        h,
        "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
         viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"hourly means of {p}\">\
         <rect x=\"{L}\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"#fafafa\" stroke=\"#999\"/>",
        W - L - 4.0,
        H - B,
        p = esc(&r.param)
    );
    let _ = write!(
        h,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>\
         <text x=\"{}\" y=\"10\" text-anchor=\"end\">{}</text>",
        L - 3.0,
        H - B,
        L - 3.0,
        num(top)
    );
    let _ = write!(
        h,
        "<text x=\"{L}\" y=\"{}\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
        H - 3.0,
        esc(&local_hour(report.period.from_ms, tz)),
        W - 4.0,
        H - 3.0,
        esc(&local_hour(report.period.to_ms, tz))
    );
    // Day lines (month lines past a month), labelled, so an hour can be found by eye.
    for (ms, label) in ticks(report.period.from_ms, report.period.to_ms, tz) {
        let at = x(ms as f64);
        let _ = write!(
            h,
            "<line x1=\"{at:.1}\" x2=\"{at:.1}\" y1=\"0\" y2=\"{}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{}\" fill=\"#888\">{label}</text>",
            H - B,
            at + 2.0,
            H - B - 3.0
        );
    }
    if let Some(max) = r.limit_max {
        let _ = write!(
            h,
            "<line x1=\"{L}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#dc2626\" \
             stroke-dasharray=\"5,3\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\" \
             fill=\"#dc2626\">limit {}</text>",
            W - 4.0,
            W - 6.0,
            y(max) - 3.0,
            num(max),
            y = y(max)
        );
    }
    for p in &r.hourly {
        let (fill, radius) = match (p.valid, p.exceeded) {
            (_, true) => ("#dc2626", 3.5),
            (true, false) => ("#1d4ed8", 2.5),
            (false, false) => ("#9ca3af", 2.5),
        };
        let _ = write!(
            h,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"{radius}\" fill=\"{fill}\">\
             <title>{} mean {}</title></circle>",
            x(p.start_ms as f64 + 1_800_000.0),
            y(p.mean),
            esc(&local_hour(p.start_ms, tz)),
            num(p.mean)
        );
    }
    let _ = writeln!(
        h,
        "</svg><figcaption>{} ({}): hourly means, blue valid, grey not enough data, red above \
         the limit; {} exceeding hours on {} days.</figcaption></figure>",
        esc(&r.param),
        esc(&r.unit),
        r.hours_exceeded,
        r.days_exceeded
    );
}
