//! quantrac's HTTP listener (`http.listen`). Reads snapshots; owns no pipeline state.
//!
//! - `GET /` — the status page: every park → site → station, exceedances first ([`page`]).
//! - `GET /station/{park}/{site}/{station}` — one station, larger charts, its rejections.
//! - `GET /api/stations` — the same snapshot as JSON ([`api`]).
//! - `GET /assets/status.css`, `/assets/status.js` — served from the binary: no CDN, no build
//!   step, works offline.
//! - `GET /metrics` (Prometheus text format), `GET /healthz` (200 while the process runs) and
//!   `GET /readyz` (200 once subscribed and able to accept readings, else 503 with the reason).
//!
//! The pages read the [`ParkStatus`] the compliance stage publishes through a `watch` (at most
//! once a second): a request clones an `Arc` and renders, never waiting for the pipeline.
//! Every HTML response carries a Content-Security-Policy that allows only the binary's own
//! script and stylesheet, so even a mistake in escaping could not run a publisher's script.

mod api;
mod chart;
mod html;
mod page;
mod params;
mod view;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::model::{ParkStatus, StationKey};
use crate::readiness::Readiness;
use crate::shutdown::CancellationToken;

/// The status snapshot as published by the compliance stage.
pub type StatusFeed = watch::Receiver<Arc<ParkStatus>>;

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    readiness: Readiness,
    status: StatusFeed,
}

/// Only the binary's own stylesheet and script; inline SVG and `data:` images are allowed,
/// nothing else is loaded or framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const STATUS_CSS: &str = include_str!("assets/status.css");
const STATUS_JS: &str = include_str!("assets/status.js");

/// Binds `listen` (port 0 picks a free port) and returns the bound address and the server task.
/// The server runs until `stop` is cancelled, which `app` does last, so `/readyz` keeps
/// answering (503, "shutting down") while the pipeline drains.
pub async fn serve(
    listen: SocketAddr,
    metrics: Metrics,
    readiness: Readiness,
    status: StatusFeed,
    stop: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/", get(overview))
        .route("/station/{park}/{site}/{station}", get(station))
        .route("/api/stations", get(api_stations))
        .route(
            "/assets/status.css",
            get(|| async { asset("text/css; charset=utf-8", STATUS_CSS) }),
        )
        .route(
            "/assets/status.js",
            get(|| async { asset("text/javascript; charset=utf-8", STATUS_JS) }),
        )
        .with_state(AppState {
            metrics,
            readiness,
            status,
        });
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error.message = %e, "HTTP server failed");
        }
    });
    Ok((addr, task))
}

async fn metrics_handler(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    match s.readiness.reason() {
        None => (StatusCode::OK, "ready\n".to_string()),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    }
}

/// The latest snapshot (an `Arc` clone: the lock is held for no longer than that).
fn snapshot(s: &AppState) -> Arc<ParkStatus> {
    s.status.borrow().clone()
}

async fn overview(State(s): State<AppState>) -> Response {
    html_page(StatusCode::OK, page::overview(&snapshot(&s)))
}

async fn station(
    State(s): State<AppState>,
    Path((park, site, station)): Path<(String, String, String)>,
) -> Response {
    let status = snapshot(&s);
    let found = StationKey::parse(&park, &site, &station)
        .ok()
        .and_then(|key| page::station(&status, &key));
    match found {
        Some(body) => html_page(StatusCode::OK, body),
        None => html_page(
            StatusCode::NOT_FOUND,
            page::not_found(&format!("{park}/{site}/{station}")),
        ),
    }
}

async fn api_stations(State(s): State<AppState>) -> Response {
    let mut r = api::stations(&snapshot(&s)).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn html_page(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

#[cfg(test)]
mod tests;
