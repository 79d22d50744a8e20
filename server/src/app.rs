//! The HTTP routes: the two WebSocket endpoints, health, readiness and metrics, the API and
//! the web editor. What they share is `crate::state::AppState`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::api;
/// Kept at its old path for code that still imports it from here; it lives in `crate::state`.
pub use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let by_ip = axum::middleware::from_fn_with_state(state.clone(), crate::public_rate::limit_by_ip);
    let origins = Arc::new(crate::origin::OriginPolicy::new(
        &state.config().http.cors_origins,
        state.auth().dev_mode(),
    ));
    Router::new()
        // A wildcard: a y-websocket client puts the room name in the path as it is, so a name
        // with a `/` arrives as several segments.
        .route("/rooms/{*room}", get(crate::y_websocket::room_socket))
        .route("/collab", get(crate::hocuspocus::collab_socket))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz).layer(by_ip))
        .route("/metrics", get(metrics))
        .merge(api::routes(&state))
        .merge(crate::web::routes(&state.config().http.web_dir))
        // After the merges, so that it also sees the 404s of paths no route has.
        .layer(axum::middleware::from_fn(api::bare_errors::envelope))
        .layer(axum::middleware::from_fn_with_state(origins, crate::origin::refuse_foreign_origins))
        .with_state(state)
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.shutdown_token().is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    match state.store().ping().await {
        Ok(()) => "ready".into_response(),
        Err(error) => {
            tracing::warn!(%error, "not ready: storage unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "storage unreachable").into_response()
        }
    }
}

/// How long a `/metrics` scrape waits for the run gauges from the database.
const RUN_GAUGES_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

async fn metrics(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    let peer = request.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>();
    let token = crate::caller::bearer_token(request.headers(), None);
    let configured = state.config().http.metrics_token.as_ref();
    if let Err(error) =
        crate::metrics_access::check(peer.map(|info| info.0.ip()), configured, token.as_deref())
    {
        return error.into_response();
    }
    let metrics = state.metrics();
    metrics.outbound_bytes_held.set(state.outbound().held().try_into().unwrap_or(i64::MAX));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX));
    let runs = state.executor().runs().clone();
    // Bounded: a slow database delays the scrape at most this long, never fails it.
    match tokio::time::timeout(RUN_GAUGES_TIMEOUT, runs.run_gauges(now)).await {
        Ok(Ok(gauges)) => metrics.runs.set(&gauges),
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot read the run gauges for /metrics");
            metrics.runs.read_failures.inc();
        }
        Err(_) => {
            tracing::warn!("the run gauges for /metrics timed out");
            metrics.runs.read_failures.inc();
        }
    }
    let body = metrics.render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}
