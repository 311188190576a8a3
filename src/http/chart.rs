//! The hourly-means charts, as inline SVG: a sparkline for the overview and a larger chart with
//! axes for a station's page. Each draws the last 24 hours' hourly means against the limit;
//! hours over the limit are marked red, invalid hours (too little data captured) hollow.
//! Styling comes from the stylesheet (classes only), so the page needs no inline style.

use std::fmt::Write;

use chrono_tz::Tz;

use super::html::{self, Html};
use crate::model::status::HourMean;

const HOUR_MS: i64 = 3_600_000;
const SPAN_MS: i64 = 24 * HOUR_MS;

/// Geometry of one chart: the plot area inside the SVG's viewBox.
struct Frame {
    width: f64,
    height: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
}

impl Frame {
    fn x(&self, ms: i64, now_ms: i64) -> f64 {
        let from = now_ms - SPAN_MS;
        let w = self.width - self.left - self.right;
        self.left + (ms - from) as f64 / SPAN_MS as f64 * w
    }

    fn y(&self, v: f64, top_value: f64) -> f64 {
        let h = self.height - self.top - self.bottom;
        self.top + h - (v / top_value).clamp(0.0, 1.0) * h
    }
}

/// The value at the chart's top: a little above the highest mean and the limit.
fn top_value(means: &[HourMean], limit_max: Option<f64>) -> f64 {
    let highest = means
        .iter()
        .map(|m| m.mean)
        .chain(limit_max)
        .fold(0.0_f64, f64::max);
    if highest > 0.0 {
        highest * 1.15
    } else {
        1.0
    }
}

/// A 100 × 28 sparkline: the line and the limit, with a dot only on the newest hour and on
/// hours over the limit (the overview holds hundreds of these). `label` describes it for screen readers and as a
/// tooltip.
pub fn sparkline(
    h: &mut Html,
    means: &[HourMean],
    limit_max: Option<f64>,
    now_ms: i64,
    label: &str,
) {
    let f = Frame {
        width: 100.0,
        height: 28.0,
        left: 1.0,
        right: 3.0,
        top: 2.0,
        bottom: 2.0,
    };
    h.raw(r#"<svg class="spark" viewBox="0 0 100 28" role="img"><title>"#)
        .text(label)
        .raw("</title>");
    draw(h, &f, means, limit_max, now_ms, 1.6, false);
    h.raw("</svg>");
}

/// A 640 × 220 chart with the limit and mean values on the left and hours below.
pub fn chart(
    h: &mut Html,
    means: &[HourMean],
    limit_max: Option<f64>,
    unit: &str,
    now_ms: i64,
    tz: Tz,
    label: &str,
) {
    let f = Frame {
        width: 640.0,
        height: 220.0,
        left: 52.0,
        right: 12.0,
        top: 10.0,
        bottom: 26.0,
    };
    let top = top_value(means, limit_max);
    h.raw(r#"<svg class="chart" viewBox="0 0 640 220" role="img"><title>"#)
        .text(label)
        .raw("</title>");
    // Horizontal guides at 0, half and the top, labelled in the parameter's unit.
    for frac in [0.0, 0.5, 1.0 / 1.15] {
        let v = top * frac;
        let y = f.y(v, top);
        let _ = write!(
            h.out,
            r#"<line class="grid" x1="{:.1}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}"/><text class="axis" x="{:.1}" y="{:.1}" text-anchor="end">"#,
            f.left,
            f.width - f.right,
            f.left - 4.0,
            y + 4.0
        );
        h.num(v).raw("</text>");
    }
    // Hours below, every 6 hours on the local clock.
    let first = (now_ms - SPAN_MS).div_euclid(HOUR_MS) * HOUR_MS + HOUR_MS;
    let mut t = first;
    while t <= now_ms {
        let local = chrono::DateTime::from_timestamp_millis(t).map(|d| d.with_timezone(&tz));
        if let Some(local) = local {
            if chrono::Timelike::hour(&local) % 6 == 0 {
                let x = f.x(t, now_ms);
                let _ = write!(
                    h.out,
                    r#"<line class="grid" x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}"/><text class="axis" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                    f.top,
                    f.height - f.bottom,
                    f.height - 8.0,
                    local.format("%H:%M")
                );
            }
        }
        t += HOUR_MS;
    }
    draw(h, &f, means, limit_max, now_ms, 3.5, true);
    if let Some(limit) = limit_max {
        let y = f.y(limit, top);
        let _ = write!(
            h.out,
            r#"<text class="limtext" x="{:.1}" y="{:.1}" text-anchor="end">limit "#,
            f.width - f.right - 2.0,
            y - 4.0
        );
        h.num(limit).raw(" ").text(unit).raw("</text>");
    }
    h.raw("</svg>");
}

/// The limit line, the means as a line, and a dot on the newest hour and each hour over the
/// limit (red) or, with `every_dot`, on every hour (hollow when the hour is not valid).
fn draw(
    h: &mut Html,
    f: &Frame,
    means: &[HourMean],
    limit_max: Option<f64>,
    now_ms: i64,
    r: f64,
    every_dot: bool,
) {
    // The sparkline's units are pixels: whole ones are precise enough, and the overview of a
    // thousand stations is smaller and quicker for it. The larger chart keeps tenths.
    let tenths = every_dot;
    let top = top_value(means, limit_max);
    if let Some(limit) = limit_max {
        let y = f.y(limit, top);
        h.raw(r#"<line class="lim" x1=""#);
        coord(&mut h.out, f.left, tenths);
        h.raw(r#"" x2=""#);
        coord(&mut h.out, f.width - f.right, tenths);
        h.raw(r#"" y1=""#);
        coord(&mut h.out, y, tenths);
        h.raw(r#"" y2=""#);
        coord(&mut h.out, y, tenths);
        h.raw(r#""/>"#);
    }
    if means.is_empty() {
        return;
    }
    // Centre of each hour; a gap of more than an hour breaks the line.
    let mut points = String::with_capacity(64);
    let mut previous_start = None;
    h.raw(r#"<path class="ln" d=""#);
    for m in means {
        let x = f.x((m.start_ms + m.end_ms()) / 2, now_ms);
        let y = f.y(m.mean, top);
        h.out.push(match previous_start {
            Some(p) if m.start_ms - p <= HOUR_MS => 'L',
            _ => 'M',
        });
        coord(&mut h.out, x, tenths);
        h.out.push(' ');
        coord(&mut h.out, y, tenths);
        previous_start = Some(m.start_ms);
        let class = match (m.valid, limit_max.is_some_and(|l| m.mean > l)) {
            (_, true) => "pt hi",
            (true, false) => "pt",
            (false, false) => "pt inv",
        };
        let newest = std::ptr::eq(m, means.last().expect("not empty"));
        if !every_dot && class != "pt hi" && !newest {
            continue;
        }
        let _ = write!(points, r#"<circle class="{class}" cx=""#);
        coord(&mut points, x, tenths);
        points.push_str(r#"" cy=""#);
        coord(&mut points, y, tenths);
        let _ = write!(points, r#"" r="{r}"/>"#);
    }
    h.raw(r#""/>"#).raw(&points);
}

/// A coordinate, whole or to a tenth, written with integer arithmetic.
fn coord(out: &mut String, v: f64, tenths: bool) {
    if tenths {
        let mut t = (v * 10.0).round() as i64;
        if t < 0 {
            out.push('-');
            t = -t;
        }
        let _ = write!(out, "{}.{}", t / 10, t % 10);
    } else {
        let _ = write!(out, "{}", v.round() as i64);
    }
}

/// A short description of a chart for screen readers: range of the means and the limit.
pub fn describe(symbol: &str, unit: &str, means: &[HourMean], limit_max: Option<f64>) -> String {
    let mut s = format!("{symbol}, hourly means of the last 24 hours");
    if let (Some(lo), Some(hi)) = (
        means.iter().map(|m| m.mean).reduce(f64::min),
        means.iter().map(|m| m.mean).reduce(f64::max),
    ) {
        s.push_str(": ");
        html::num(&mut s, lo);
        s.push_str(" to ");
        html::num(&mut s, hi);
        s.push(' ');
        s.push_str(unit);
    } else {
        s.push_str(": none yet");
    }
    if let Some(l) = limit_max {
        s.push_str("; limit ");
        html::num(&mut s, l);
    }
    s
}
