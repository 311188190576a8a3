//! One parameter's cells on the status page, and its section on a station's page: latest
//! value, limit in force and where it comes from, ratio, running windows and the chart.

use std::fmt::Write;

use super::chart;
use super::html::{self, Html};
use super::page::exceedance_when;
use super::view::{Over, View};
use crate::model::status::{Exceedance, ParamStatus, WindowStatus};
use crate::model::{Limit, LimitSource, Status};

pub fn param_row(
    h: &mut Html,
    v: &View,
    p: &ParamStatus,
    over: Option<&Over>,
    recent: Option<&Exceedance>,
    labels: &[&str],
) {
    let unit = p.param.canonical_unit();
    h.raw(if over.is_some() {
        "<tr class=\"is-over\">"
    } else {
        "<tr>"
    });
    h.raw("<th scope=\"row\" data-label=\"Parameter\">")
        .text(p.param.symbol());
    if over.is_some() {
        h.raw(" <span class=\"flag\">▲ over</span>");
    } else if let Some(e) = recent {
        h.raw(" <span class=\"flag recent\">△ over until ");
        v.clock.time(&mut h.out, e.to_ms);
        h.raw("</span>");
    }
    h.raw("</th><td data-label=\"Latest\" class=\"val\">");
    latest(h, v, p);
    h.raw("</td><td data-label=\"Limit\">");
    limit(h, p.limit.as_ref(), unit);
    h.raw("</td>");
    ratio_cell(h, p);
    for label in labels {
        h.raw("<td data-label=\"").text(label).raw(" mean\">");
        match p.windows.iter().find(|w| *w.label == **label) {
            Some(w) => window(h, v, w, unit),
            None => {
                h.raw("–");
            }
        }
        h.raw("</td>");
    }
    h.raw("<td data-label=\"Last 24 h\">");
    if !p.hourly.is_empty() || p.limit.as_ref().is_some_and(|l| l.max.is_some()) {
        let max = p.limit.as_ref().and_then(|l| l.max);
        let hourly = p.hourly.to_vec();
        let label = chart::describe(p.param.symbol(), unit, &hourly, max);
        chart::sparkline(h, &hourly, max, v.now_ms, &label);
    }
    h.raw("</td></tr>");
}

pub fn ratio_cell(h: &mut Html, p: &ParamStatus) {
    match p.latest.and_then(|l| l.ratio) {
        Some(r) => {
            h.raw(if r > 1.0 {
                "<td data-label=\"Ratio\" class=\"ratio hi\">"
            } else if r >= 0.8 {
                "<td data-label=\"Ratio\" class=\"ratio warn\">"
            } else {
                "<td data-label=\"Ratio\" class=\"ratio\">"
            });
            html::percent(&mut h.out, r);
            h.raw("</td>");
        }
        None => {
            h.raw("<td data-label=\"Ratio\" class=\"ratio\">–</td>");
        }
    }
}

/// The latest value with its unit, the corrected value when O2 correction applied, and its
/// status when it is not 00.
pub fn latest(h: &mut Html, v: &View, p: &ParamStatus) {
    let Some(l) = p.latest else {
        h.raw("<span class=\"none\">no reading</span>");
        return;
    };
    let unit = p.param.canonical_unit();
    h.raw("<span title=\"reading of ");
    v.clock.time(&mut h.out, l.ts_ms);
    h.raw("\">");
    match l.value {
        Some(value) => h.num(value),
        None => h.raw("no value"),
    };
    if !unit.is_empty() {
        h.raw(" ").text(unit);
    }
    h.raw("</span>");
    if let Some(r) = l.value_ref {
        h.raw(" <small>(O2-corrected ").num(r).raw(")</small>");
    }
    match l.status {
        Status::Normal => {}
        Status::Calibrating => {
            h.raw(" <span class=\"tag st-calibrating\">⚙ calibrating</span>");
        }
        Status::Fault => {
            h.raw(" <span class=\"tag st-fault\">✕ device fault</span>");
        }
    }
}

/// The limit in force (`≤ 135 mg/L`, `6–9`), its source as a tooltip.
pub fn limit(h: &mut Html, l: Option<&Limit>, unit: &str) {
    let Some(l) = l else {
        h.raw("<span class=\"none\">none</span>");
        return;
    };
    h.raw("<span title=\"");
    source(h, l);
    h.raw("\">");
    match (l.min, l.max) {
        (Some(min), Some(max)) => {
            h.num(min).raw("–").num(max);
        }
        (None, Some(max)) => {
            h.raw("≤ ").num(max);
        }
        (Some(min), None) => {
            h.raw("≥ ").num(min);
        }
        (None, None) => {
            h.raw("–");
        }
    }
    if !unit.is_empty() {
        h.raw(" ").text(unit);
    }
    h.raw("</span>");
}

pub fn source(h: &mut Html, l: &Limit) {
    match &l.source {
        LimitSource::Permit => {
            h.raw("the station's permit");
        }
        LimitSource::Regulation { text, unverified } => {
            h.text(text);
            if *unverified {
                h.raw(" (table value not verified)");
            }
        }
    }
}

/// A window cell: the running mean and its capture; the closed window's verdict when it
/// exceeded.
pub fn window(h: &mut Html, v: &View, w: &WindowStatus, unit: &str) {
    match w.running {
        Some(r) => {
            h.raw("<span title=\"since ");
            v.clock.time(&mut h.out, r.start_ms);
            let _ = write!(h.out, ", {} samples", r.samples);
            if let Some(ratio) = r.ratio {
                h.raw(", ");
                html::percent(&mut h.out, ratio);
                h.raw(" of the limit");
            }
            h.raw("\"");
            if r.ratio.is_some_and(|x| x > 1.0) {
                h.raw(" class=\"hi\"");
            }
            h.raw(">").num(r.mean);
            if !unit.is_empty() {
                h.raw(" ").text(unit);
            }
            h.raw("</span> <small class=\"cap\">");
            html::percent(&mut h.out, r.capture);
            h.raw(" captured</small>");
        }
        None => {
            h.raw("<span class=\"none\">no data</span>");
        }
    }
    if let Some(c) = w.closed.filter(|c| c.exceeded) {
        if v.now_ms < c.end_ms + (c.end_ms - c.start_ms) {
            h.raw("<br><small class=\"hi\">▲ last ")
                .text(&w.label)
                .raw(" (");
            v.clock.time(&mut h.out, c.start_ms);
            h.raw("): ").num(c.mean).raw("</small>");
        }
    }
}

/// A parameter on a station's page: its figures and the larger chart.
pub fn param_section(h: &mut Html, v: &View, p: &ParamStatus, over: Option<&Over>) {
    let unit = p.param.canonical_unit();
    h.raw(if over.is_some() {
        "<section class=\"param is-over\"><h3>"
    } else {
        "<section class=\"param\"><h3>"
    });
    h.text(p.param.symbol());
    if over.is_some() {
        h.raw(" <span class=\"flag\">▲ over its limit</span>");
    }
    h.raw("</h3><dl><dt>Latest</dt><dd>");
    latest(h, v, p);
    if let Some(l) = p.latest {
        h.raw(" <small>at ");
        v.clock.time(&mut h.out, l.ts_ms);
        h.raw("</small>");
    }
    h.raw("</dd><dt>Limit</dt><dd>");
    limit(h, p.limit.as_ref(), unit);
    if let Some(l) = &p.limit {
        h.raw(" <small>(");
        source(h, l);
        h.raw(")</small>");
    }
    h.raw("</dd><dt>Ratio</dt><dd>");
    match p.latest.and_then(|l| l.ratio) {
        Some(r) => {
            html::percent(&mut h.out, r);
            h.raw(" of the limit");
        }
        None => {
            h.raw("–");
        }
    }
    if let Some(o) = over {
        h.raw(" <small>(over since ");
        v.clock.time(&mut h.out, o.since_ms);
        h.raw(")</small>");
    }
    h.raw("</dd>");
    if let Some(e) = p.last_exceedance {
        h.raw("<dt>Last exceedance</dt><dd>");
        exceedance_when(h, v, &e);
        h.raw(": peak ").num(e.peak);
        if !unit.is_empty() {
            h.raw(" ").text(unit);
        }
        if let Some(r) = e.peak_ratio {
            h.raw(" (");
            html::percent(&mut h.out, r);
            h.raw(")");
        }
        h.raw("</dd>");
    }
    for w in &p.windows {
        h.raw("<dt>").text(&w.label).raw(" mean</dt><dd>");
        window(h, v, w, unit);
        if let Some(c) = w.closed {
            h.raw("<br><small>last closed valid window, from ");
            v.clock.time(&mut h.out, c.start_ms);
            h.raw(": ").num(c.mean);
            h.raw(if c.exceeded {
                " — exceeded</small>"
            } else {
                " — within the limit</small>"
            });
        }
        h.raw("</dd>");
    }
    h.raw("</dl>");
    let max = p.limit.as_ref().and_then(|l| l.max);
    if p.hourly.is_empty() && p.windows.iter().all(|w| w.seconds != 3600) {
        h.raw("<p class=\"none\">No one-hour window is configured for this parameter: no hourly chart.</p>");
    } else {
        let hourly = p.hourly.to_vec();
        let label = chart::describe(p.param.symbol(), unit, &hourly, max);
        chart::chart(h, &hourly, max, unit, v.now_ms, v.status.tz, &label);
    }
    h.raw("</section>");
}
