//! `GET /api/stations`: the snapshot behind the status page as JSON, for a department's own
//! tools. Same order and same "over a limit" verdicts as the page ([`super::view`]); times are
//! RFC 3339 in the park's zone, values in each parameter's canonical unit. The README documents
//! the shape; a field is added, never renamed.

use chrono_tz::Tz;
use serde::Serialize;

use super::html::rfc3339;
use super::view::{self, Basis, Over, View};
use crate::model::status::{
    HourMean, Latest, ParamStatus, RecentRejection, WindowMean, WindowStatus,
};
use crate::model::{HealthState, Kind, Limit, LimitSource, ParkStatus};

#[derive(Serialize)]
struct Body<'a> {
    generated_at: Option<String>,
    timezone: &'a str,
    summary: Summary,
    stations: Vec<Station<'a>>,
    rejections: Vec<Rejection<'a>>,
}

#[derive(Serialize)]
struct Summary {
    stations: usize,
    over_limit: usize,
    was_over_limit_24h: usize,
    ok: usize,
    silent: usize,
    fault: usize,
    calibrating: usize,
    stuck: usize,
    /// Configured, and not heard from since quantrac started (not yet counted as silent).
    unheard: usize,
}

#[derive(Serialize)]
struct Station<'a> {
    park: &'a str,
    site: &'a str,
    station: &'a str,
    page: String,
    configured: bool,
    kind: Option<Kind>,
    expected_interval_s: Option<u64>,
    state: &'static str,
    over_limit: bool,
    was_over_limit_24h: bool,
    last_message: Option<String>,
    stuck_params: Vec<&'static str>,
    params: Vec<Param<'a>>,
}

#[derive(Serialize)]
struct Param<'a> {
    param: &'static str,
    unit: &'static str,
    over_limit: Option<OverLimit<'a>>,
    latest: Option<LatestJson>,
    limit: Option<LimitJson<'a>>,
    windows: Vec<Window<'a>>,
    hourly: Option<Hourly>,
    last_exceedance: Option<ExceedanceJson>,
}

#[derive(Serialize)]
struct ExceedanceJson {
    from: Option<String>,
    to: Option<String>,
    peak: f64,
    peak_ratio: Option<f64>,
}

/// Hourly means as parallel arrays, hour `i` starting at `start` + `i` hours; `null` for an
/// hour without a status-00 sample. Compact: a 1,000-station park has 192,000 of them.
#[derive(Serialize)]
struct Hourly {
    start: Option<String>,
    step_s: u32,
    mean: Vec<Option<f64>>,
    capture: Vec<Option<f64>>,
    valid: Vec<Option<bool>>,
}

#[derive(Serialize)]
struct OverLimit<'a> {
    /// `reading` or the window label (`1h`, `24h`…).
    basis: &'a str,
    value: f64,
    ratio: Option<f64>,
    since: Option<String>,
}

#[derive(Serialize)]
struct LatestJson {
    time: Option<String>,
    value: Option<f64>,
    value_ref: Option<f64>,
    status: &'static str,
    ratio: Option<f64>,
    exceeded: bool,
    exceeding_since: Option<String>,
}

#[derive(Serialize)]
struct LimitJson<'a> {
    max: Option<f64>,
    min: Option<f64>,
    source: &'a str,
    unverified: bool,
}

#[derive(Serialize)]
struct Window<'a> {
    window: &'a str,
    seconds: u64,
    running: Option<Mean>,
    closed: Option<Mean>,
}

#[derive(Serialize)]
struct Mean {
    start: Option<String>,
    mean: f64,
    samples: u32,
    capture: f64,
    valid: bool,
    ratio: Option<f64>,
    exceeded: bool,
}

#[derive(Serialize)]
struct Rejection<'a> {
    received_at: Option<String>,
    topic: &'a str,
    station: Option<String>,
    reason: &'static str,
    detail: &'a str,
}

/// The JSON text of `/api/stations`.
pub fn stations(status: &ParkStatus) -> String {
    let v = View::new(status);
    let tz = status.tz;
    let counts = v.state_counts();
    let count = |s: HealthState| counts[view::state_index(s)];
    let stations = v
        .stations()
        .map(|st| {
            let s = st.s;
            Station {
                park: s.key.park(),
                site: s.key.site(),
                station: s.key.station(),
                page: format!("/station/{}", s.key),
                configured: s.kind.is_some(),
                kind: s.kind,
                expected_interval_s: s.expected_interval_s,
                state: s.state.label(),
                over_limit: st.is_over(),
                was_over_limit_24h: st.was_over(),
                last_message: s.last_message_ms.and_then(|ms| rfc3339(ms, tz)),
                stuck_params: s.stuck.iter().map(|p| p.symbol()).collect(),
                params: st
                    .params
                    .iter()
                    .map(|(p, o)| param(p, o.as_ref(), tz))
                    .collect(),
            }
        })
        .collect();
    let rejections = status
        .rejections
        .iter()
        .map(|r: &RecentRejection| Rejection {
            received_at: rfc3339(r.received_at_ms, tz),
            topic: &r.topic,
            station: r.key.as_ref().map(|k| k.to_string()),
            reason: r.reason.as_label(),
            detail: &r.detail,
        })
        .collect();
    let body = Body {
        generated_at: status.at_ms.and_then(|ms| rfc3339(ms, tz)),
        timezone: tz.name(),
        summary: Summary {
            stations: status.stations.len(),
            over_limit: v.over_count(),
            was_over_limit_24h: v.was_over_count(),
            ok: count(HealthState::Ok),
            silent: count(HealthState::Silent),
            fault: count(HealthState::Fault),
            calibrating: count(HealthState::Calibrating),
            stuck: count(HealthState::Stuck),
            unheard: count(HealthState::Unheard),
        },
        stations,
        rejections,
    };
    // Non-finite numbers are never held (decode refuses them), and serde_json writes them as
    // null anyway: serialising these plain structs cannot fail.
    serde_json::to_string(&body).expect("plain structs always serialise")
}

fn param<'a>(p: &'a ParamStatus, over: Option<&Over<'a>>, tz: Tz) -> Param<'a> {
    Param {
        param: p.param.symbol(),
        unit: p.param.canonical_unit(),
        over_limit: over.map(|o| OverLimit {
            basis: match o.basis {
                Basis::Reading => "reading",
                Basis::Window(w) => &w.label,
            },
            value: o.value,
            ratio: o.ratio,
            since: rfc3339(o.since_ms, tz),
        }),
        latest: p.latest.as_ref().map(|l| latest(l, tz)),
        limit: p.limit.as_ref().map(limit),
        windows: p.windows.iter().map(|w| window(w, tz)).collect(),
        hourly: hourly(&p.hourly.to_vec(), tz),
        last_exceedance: p.last_exceedance.map(|e| ExceedanceJson {
            from: rfc3339(e.from_ms, tz),
            to: rfc3339(e.to_ms, tz),
            peak: e.peak,
            peak_ratio: e.peak_ratio,
        }),
    }
}

const HOUR_MS: i64 = 3_600_000;

fn hourly(means: &[HourMean], tz: Tz) -> Option<Hourly> {
    let (first, last) = (means.first()?, means.last()?);
    let n = usize::try_from((last.start_ms - first.start_ms) / HOUR_MS + 1).unwrap_or(0);
    let mut h = Hourly {
        start: rfc3339(first.start_ms, tz),
        step_s: 3600,
        mean: vec![None; n],
        capture: vec![None; n],
        valid: vec![None; n],
    };
    for m in means {
        let Ok(i) = usize::try_from((m.start_ms - first.start_ms) / HOUR_MS) else {
            continue;
        };
        if i < n {
            h.mean[i] = Some(m.mean);
            h.capture[i] = Some(m.capture);
            h.valid[i] = Some(m.valid);
        }
    }
    Some(h)
}

fn latest(l: &Latest, tz: Tz) -> LatestJson {
    LatestJson {
        time: rfc3339(l.ts_ms, tz),
        value: l.value,
        value_ref: l.value_ref,
        status: l.status.code(),
        ratio: l.ratio,
        exceeded: l.exceeded,
        exceeding_since: l.exceeding_since_ms.and_then(|ms| rfc3339(ms, tz)),
    }
}

fn limit(l: &Limit) -> LimitJson<'_> {
    let (source, unverified) = match &l.source {
        LimitSource::Permit => ("permit", false),
        LimitSource::Regulation { text, unverified } => (&**text, *unverified),
    };
    LimitJson {
        max: l.max,
        min: l.min,
        source,
        unverified,
    }
}

fn window(w: &WindowStatus, tz: Tz) -> Window<'_> {
    Window {
        window: &w.label,
        seconds: w.seconds,
        running: w.running.as_ref().map(|m| mean(m, tz)),
        closed: w.closed.as_ref().map(|m| mean(m, tz)),
    }
}

fn mean(m: &WindowMean, tz: Tz) -> Mean {
    Mean {
        start: rfc3339(m.start_ms, tz),
        mean: m.mean,
        samples: m.samples,
        capture: m.capture,
        valid: m.valid,
        ratio: m.ratio,
        exceeded: m.exceeded,
    }
}
