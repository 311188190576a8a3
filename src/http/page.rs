//! The status page (`GET /`) and a station's page (`GET /station/{park}/{site}/{station}`),
//! rendered on the server from one snapshot: complete without JavaScript (a reload shows
//! current data); `status.js` only fetches the page again every few seconds and swaps its
//! `<main>`. Every text from the pipeline is escaped ([`Html::text`]); states are written as
//! words, never shown by colour alone.

use std::fmt::Write;

use super::html::{self, Html};
use super::params::{limit, param_row, param_section};
use super::view::{self, Basis, Over, StationView, View};
use crate::model::status::{Exceedance, ParamStatus, RecentRejection, StationStatus};
use crate::model::{HealthState, Kind, ParkStatus, StationKey};

/// Rejections listed on the overview (the JSON has all the snapshot keeps).
const OVERVIEW_REJECTIONS: usize = 20;

/// The overview: every park → site → station, exceedances first.
pub fn overview(status: &ParkStatus) -> String {
    let v = View::new(status);
    let mut h = Html::with_capacity(4096 + 3000 * status.stations.len());
    head(&mut h, "Park status");
    h.raw("<main id=\"status\">");
    updated(&mut h, &v);
    summary(&mut h, &v);
    over_table(&mut h, &v, true);
    recent_table(&mut h, &v);
    for park in &v.parks {
        h.raw("<section class=\"park\"><h2><span class=\"kicker\">Park</span> ")
            .text(park.name)
            .raw("</h2>");
        for site in &park.sites {
            h.raw("<h3><span class=\"kicker\">Site</span> ")
                .text(site.name)
                .raw("</h3>");
            for st in &site.stations {
                station_card(&mut h, &v, st);
            }
        }
        h.raw("</section>");
    }
    if v.parks.is_empty() {
        h.raw("<p class=\"empty\">No station is configured and none has been heard from yet.</p>");
    }
    rejections(
        &mut h,
        &v,
        status.rejections.iter().take(OVERVIEW_REJECTIONS),
        status.rejections.len() > OVERVIEW_REJECTIONS,
    );
    h.raw("</main>");
    foot(&mut h);
    h.out
}

/// One station's page; `None` when the snapshot does not know the station.
pub fn station(status: &ParkStatus, key: &StationKey) -> Option<String> {
    let s = status.stations.iter().find(|s| s.key == *key)?;
    let now_ms = status.at_ms.unwrap_or(0);
    let st = view::station_view(s, now_ms);
    let v = View {
        status,
        now_ms,
        clock: html::Clock::new(now_ms, status.tz),
        parks: Vec::new(),
    };
    let mut h = Html::with_capacity(32 * 1024);
    head(&mut h, &key.to_string());
    h.raw("<main id=\"status\"><p class=\"back\"><a href=\"/\">← every station</a></p>");
    updated(&mut h, &v);
    h.raw("<h2 class=\"station-title\">")
        .text(key.park())
        .raw(" / ")
        .text(key.site())
        .raw(" / <strong>")
        .text(key.station())
        .raw("</strong></h2><p class=\"badges\">");
    badges(&mut h, &st);
    h.raw("</p>");
    meta(&mut h, &v, s);
    over_rows(&mut h, &v, &st, false);
    let (measured, unmeasured): (Vec<_>, Vec<_>) =
        st.params.iter().partition(|(p, _)| p.latest.is_some());
    for (p, over) in &measured {
        param_section(&mut h, &v, p, over.as_ref());
    }
    if measured.is_empty() {
        h.raw("<p class=\"empty\">No reading yet.</p>");
    }
    if !unmeasured.is_empty() {
        h.raw("<section class=\"param\"><h3>Limits with no reading</h3><p class=\"unmeasured\">");
        for (i, (p, _)) in unmeasured.iter().enumerate() {
            if i > 0 {
                h.raw(" · ");
            }
            h.raw("<b>").text(p.param.symbol()).raw("</b> ");
            limit(&mut h, p.limit.as_ref(), p.param.canonical_unit());
        }
        h.raw("</p></section>");
    }
    let mine: Vec<&RecentRejection> = status
        .rejections
        .iter()
        .filter(|r| r.key.as_ref() == Some(key))
        .collect();
    rejections(&mut h, &v, mine.into_iter(), false);
    h.raw("</main>");
    foot(&mut h);
    Some(h.out)
}

/// The page for a station the snapshot does not know.
pub fn not_found(path: &str) -> String {
    let mut h = Html::with_capacity(2048);
    head(&mut h, "No such station");
    h.raw("<main id=\"status\"><p class=\"back\"><a href=\"/\">← every station</a></p><h2>No such station</h2><p>quantrac knows no station at <code>")
        .text(path)
        .raw("</code>: it is not in <code>stations.toml</code> and has not been heard from.</p></main>");
    foot(&mut h);
    h.out
}

fn head(h: &mut Html, title: &str) {
    h.raw("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>")
        .text(title)
        .raw(" · quantrac</title><link rel=\"stylesheet\" href=\"/assets/status.css\"><link rel=\"icon\" href=\"data:,\"></head><body><header><h1><a href=\"/\">quantrac</a> <span class=\"sub\">quan trắc · park status</span></h1><p id=\"offline\" role=\"status\">Connection lost: the figures below are from the time shown, not now.</p></header>");
}

fn foot(h: &mut Html) {
    h.raw("<footer><p>Updates itself every 5 seconds; without JavaScript, reload the page. Times are the park's local time. A value is <b>over its limit</b> when its latest reading (status 00) or its latest closed valid average exceeds the limit in force.</p><p>Machine-readable: <a href=\"/api/stations\">/api/stations</a> (JSON) · <a href=\"/metrics\">/metrics</a> (Prometheus) · <a href=\"/readyz\">/readyz</a></p></footer><script src=\"/assets/status.js\" defer></script></body></html>");
}

fn updated(h: &mut Html, v: &View) {
    match v.status.at_ms {
        Some(at) => {
            h.raw("<p class=\"updated\">Updated <time data-ms=\"");
            let _ = write!(h.out, "{at}");
            h.raw("\">");
            v.clock.time(&mut h.out, at);
            h.raw("</time> (");
            html::utc_offset(&mut h.out, at, v.status.tz);
            h.raw(", ").text(v.status.tz.name()).raw(")</p>");
        }
        None => {
            h.raw("<p class=\"updated\">Starting: no snapshot of the park yet.</p>");
        }
    }
}

fn summary(h: &mut Html, v: &View) {
    let n = v.status.stations.len();
    let over = v.over_count();
    h.raw("<p class=\"summary\">");
    let _ = write!(h.out, "{n} station{} · ", if n == 1 { "" } else { "s" });
    if over > 0 {
        let _ = write!(h.out, "<b class=\"n-over\">▲ {over} over a limit</b>");
    } else {
        h.raw("<span class=\"n-ok\">none over a limit</span>");
    }
    let was = v.was_over_count();
    if was > 0 {
        let _ = write!(
            h.out,
            " · <span class=\"n-recent\">△ {was} over one in the last 24 h</span>"
        );
    }
    for (state, count) in view::STATES.iter().zip(v.state_counts()) {
        if count > 0 {
            let _ = write!(
                h.out,
                " · <span class=\"st-{}\">{} {count} {}</span>",
                state.label(),
                icon(*state),
                state.label()
            );
        }
    }
    h.raw("</p>");
}

/// The "over a limit now" table of the overview (every station), most over first.
fn over_table(h: &mut Html, v: &View, with_station: bool) {
    let over = v.over();
    h.raw("<section class=\"over-now\"><h2>Over a limit now</h2>");
    if over.is_empty() {
        h.raw("<p class=\"all-clear\">✓ No station is over a limit right now.</p></section>");
        return;
    }
    over_head(h, with_station);
    for (st, p, o) in over {
        over_row(h, v, st.s, p, &o, with_station);
    }
    h.raw("</tbody></table></section>");
}

/// Parameters over their limit earlier in the last 24 hours (not now), latest first: a
/// station that pollutes in bursts shows here between them.
fn recent_table(h: &mut Html, v: &View) {
    let recent = v.recent();
    if recent.is_empty() {
        return;
    }
    h.raw("<section class=\"recent\"><h2>Over a limit earlier in the last 24 hours</h2><table><thead><tr><th>Station</th><th>Parameter</th><th>Peak</th><th>Limit</th><th>Peak ratio</th><th>When</th></tr></thead><tbody>");
    for (st, p, e) in recent {
        let unit = p.param.canonical_unit();
        h.raw("<tr><td data-label=\"Station\">");
        station_link(h, &st.s.key);
        h.raw("</td><td data-label=\"Parameter\"><b>")
            .text(p.param.symbol())
            .raw("</b></td><td data-label=\"Peak\" class=\"val\">")
            .num(e.peak)
            .raw(" ")
            .text(unit)
            .raw("</td><td data-label=\"Limit\">");
        limit(h, p.limit.as_ref(), unit);
        h.raw("</td><td data-label=\"Peak ratio\" class=\"ratio\">");
        match e.peak_ratio {
            Some(r) => html::percent(&mut h.out, r),
            None => h.out.push('–'),
        }
        h.raw("</td><td data-label=\"When\">");
        exceedance_when(h, v, &e);
        h.raw("</td></tr>");
    }
    h.raw("</tbody></table></section>");
}

/// `20:00:32–20:06:27 (3 min ago)`.
pub fn exceedance_when(h: &mut Html, v: &View, e: &Exceedance) {
    v.clock.time(&mut h.out, e.from_ms);
    h.raw("–");
    v.clock.time(&mut h.out, e.to_ms);
    h.raw(" <small>(");
    v.clock.ago(&mut h.out, e.to_ms);
    h.raw(")</small>");
}

/// The same table for one station (its page), when it is over a limit.
fn over_rows(h: &mut Html, v: &View, st: &StationView, with_station: bool) {
    if !st.is_over() {
        return;
    }
    h.raw("<section class=\"over-now\"><h3>Over a limit now</h3>");
    over_head(h, with_station);
    for (p, o) in &st.params {
        if let Some(o) = o {
            over_row(h, v, st.s, p, o, with_station);
        }
    }
    h.raw("</tbody></table></section>");
}

fn over_head(h: &mut Html, with_station: bool) {
    h.raw("<table class=\"over\"><thead><tr>");
    if with_station {
        h.raw("<th>Station</th>");
    }
    h.raw("<th>Parameter</th><th>Value</th><th>Limit</th><th>Ratio</th><th>Since</th><th>Judged on</th></tr></thead><tbody>");
}

fn over_row(
    h: &mut Html,
    v: &View,
    s: &StationStatus,
    p: &ParamStatus,
    o: &Over,
    with_station: bool,
) {
    let unit = p.param.canonical_unit();
    h.raw("<tr class=\"is-over\">");
    if with_station {
        h.raw("<td data-label=\"Station\">");
        station_link(h, &s.key);
        h.raw("</td>");
    }
    h.raw("<td data-label=\"Parameter\"><b>")
        .text(p.param.symbol())
        .raw("</b></td><td data-label=\"Value\" class=\"val\">")
        .num(o.value)
        .raw(" ")
        .text(unit)
        .raw("</td><td data-label=\"Limit\">");
    limit(h, p.limit.as_ref(), unit);
    h.raw("</td><td data-label=\"Ratio\" class=\"ratio hi\">");
    match o.ratio {
        Some(r) => html::percent(&mut h.out, r),
        None => h.out.push('–'),
    }
    h.raw("</td><td data-label=\"Since\">");
    v.clock.time(&mut h.out, o.since_ms);
    h.raw(" <small>(");
    v.clock.ago(&mut h.out, o.since_ms);
    h.raw(")</small></td><td data-label=\"Judged on\">");
    match o.basis {
        Basis::Reading => h.raw("latest reading"),
        Basis::Window(w) => h.raw("closed ").text(&w.label).raw(" average"),
    };
    h.raw("</td></tr>");
}

fn station_link(h: &mut Html, key: &StationKey) {
    h.raw("<a href=\"");
    station_href(h, key);
    h.raw("\">")
        .text(key.park())
        .raw(" / ")
        .text(key.site())
        .raw(" / <b>")
        .text(key.station())
        .raw("</b></a>");
}

/// `/station/park/site/station` (identifiers, escaped all the same).
pub fn station_href(h: &mut Html, key: &StationKey) {
    h.raw("/station/")
        .text(key.park())
        .raw("/")
        .text(key.site())
        .raw("/")
        .text(key.station());
}

fn icon(state: HealthState) -> &'static str {
    match state {
        HealthState::Ok => "✓",
        HealthState::Silent => "…",
        HealthState::Fault => "✕",
        HealthState::Calibrating => "⚙",
        HealthState::Stuck => "=",
        HealthState::Unheard => "?",
    }
}

fn badges(h: &mut Html, st: &StationView) {
    if st.is_over() {
        h.raw("<span class=\"badge b-over\">▲ over limit</span> ");
    } else if st.was_over() {
        h.raw("<span class=\"badge b-recent\">△ over a limit in the last 24 h</span> ");
    }
    let state = st.s.state;
    let _ = write!(
        h.out,
        "<span class=\"badge st-{0}\">{1} {0}</span>",
        state.label(),
        icon(state)
    );
    if !st.s.stuck.is_empty() {
        h.raw(" <span class=\"stuck-params\">flat: ");
        for (i, p) in st.s.stuck.iter().enumerate() {
            if i > 0 {
                h.raw(", ");
            }
            h.text(p.symbol());
        }
        h.raw("</span>");
    }
}

fn meta(h: &mut Html, v: &View, s: &StationStatus) {
    h.raw("<p class=\"meta\">");
    match s.kind {
        Some(Kind::Wastewater) => h.raw("Wastewater outfall"),
        Some(Kind::Emission) => h.raw("Stack emissions"),
        None => h.raw("<span class=\"unconfigured\">Not in stations.toml: no limits</span>"),
    };
    h.raw(" · last message ");
    match s.last_message_ms {
        Some(ms) => {
            v.clock.time(&mut h.out, ms);
            h.raw(" <small>(");
            v.clock.ago(&mut h.out, ms);
            h.raw(")</small>");
        }
        None => {
            h.raw("never");
        }
    }
    if let Some(every) = s.expected_interval_s {
        let _ = write!(h.out, " · expected every {every} s");
    }
    h.raw("</p>");
}

fn station_card(h: &mut Html, v: &View, st: &StationView) {
    let s = st.s;
    let _ = write!(
        h.out,
        "<article class=\"station{} s-{}\"><h4>",
        if st.is_over() { " is-over" } else { "" },
        s.state.label()
    );
    h.raw("<a href=\"");
    station_href(h, &s.key);
    h.raw("\">").text(s.key.station()).raw("</a> ");
    badges(h, st);
    h.raw("</h4>");
    meta(h, v, s);
    // Parameters measured; the ones with only a limit are on the station's page.
    let measured: Vec<_> = st
        .params
        .iter()
        .filter(|(p, _)| p.latest.is_some())
        .collect();
    if measured.is_empty() {
        h.raw("<p class=\"none\">No reading yet.</p></article>");
        return;
    }
    // One column per window length the station uses (usually 1h and 24h).
    let mut labels: Vec<&str> = Vec::new();
    for (p, _) in &measured {
        for w in &p.windows {
            if !labels.contains(&&*w.label) {
                labels.push(&w.label);
            }
        }
    }
    h.raw("<table class=\"params\"><thead><tr><th>Parameter</th><th>Latest</th><th>Limit</th><th>Ratio</th>");
    for l in &labels {
        h.raw("<th>").text(l).raw(" mean</th>");
    }
    h.raw("<th>Last 24 h</th></tr></thead><tbody>");
    for (p, o) in measured {
        let recent = view::recent(p, o.as_ref(), v.now_ms);
        param_row(h, v, p, o.as_ref(), recent.as_ref(), &labels);
    }
    h.raw("</tbody></table></article>");
}

fn rejections<'a>(
    h: &mut Html,
    v: &View,
    list: impl Iterator<Item = &'a RecentRejection>,
    more: bool,
) {
    let mut list = list.peekable();
    h.raw("<section class=\"rejections\"><h2>Recent rejections</h2>");
    if list.peek().is_none() {
        h.raw("<p class=\"none\">None since quantrac started.</p></section>");
        return;
    }
    h.raw("<table><thead><tr><th>Time</th><th>Reason</th><th>Topic</th><th>Detail</th></tr></thead><tbody>");
    for r in list {
        h.raw("<tr><td data-label=\"Time\">");
        v.clock.time(&mut h.out, r.received_at_ms);
        h.raw("</td><td data-label=\"Reason\">")
            .text(r.reason.as_label())
            .raw("</td><td data-label=\"Topic\"><code>")
            .text(&r.topic)
            .raw("</code></td><td data-label=\"Detail\">")
            .text(&r.detail)
            .raw("</td></tr>");
    }
    h.raw("</tbody></table>");
    if more {
        h.raw("<p><small>More in <a href=\"/api/stations\">/api/stations</a>.</small></p>");
    }
    h.raw("</section>");
}
