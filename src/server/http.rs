//! HTTP routes: `POST /mutate` (TLS port) and `/healthz`, `/readyz`, `/metrics` (plain metrics port).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::timeout::TimeoutLayer;

use super::metrics::{MethodLabel, PathLabel, RequestLabels};
use super::AppState;
use crate::admission::Outcome;

/// Request bounds. The body limit matches the API server's own request limit (3 MiB).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub handshake_timeout: Duration,
    pub header_read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 3 * 1024 * 1024,
            request_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

pub fn mutate_router(state: Arc<AppState>, limits: &Limits) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/healthz", get(healthz))
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), close_when_draining))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, limits.request_timeout))
        .with_state(state)
}

pub fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// While draining, HTTP/1.1 answers carry `Connection: close`: the API server then opens a new connection for its
/// next request (to a replica that is still ready) instead of reusing one that is about to be shut under it.
/// HTTP/2 connections are told by the GOAWAY that graceful shutdown sends.
async fn close_when_draining(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let http1 = request.version() <= axum::http::Version::HTTP_11;
    let mut response = next.run(request).await;
    if http1 && state.draining.load(Ordering::Relaxed) {
        response.headers_mut().insert(header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    }
    response
}

async fn mutate(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    let response = handle_mutate(&state, &headers, &body).await;
    let code = response.status().as_u16().to_string();
    state.metrics.request_count.get_or_create(&RequestLabels { path: "/mutate".into(), code }).inc();
    state
        .metrics
        .request_latency
        .get_or_create(&PathLabel { path: "/mutate".into() })
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn handle_mutate(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Response {
    // `application/json`, with or without parameters (`; charset=utf-8`).
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        tracing::warn!(content_type, "rejected /mutate request: wrong content type");
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content type must be application/json, got {content_type:?}\n"),
        )
            .into_response();
    }
    match state.admission.review(body).await {
        Ok(reviewed) => {
            match &reviewed.outcome {
                Outcome::Mutated { credentials } => {
                    state.metrics.pod_count.get_or_create(&MethodLabel { method: (*credentials).to_owned() }).inc()
                }
                Outcome::ServiceAccountNotFound => state.metrics.missing_sa_count.inc(),
                _ => {}
            }
            if reviewed.outcome != Outcome::Ignored {
                tracing::info!(
                    uid = %reviewed.uid,
                    namespace = %reviewed.namespace,
                    pod = %reviewed.pod,
                    service_account = %reviewed.service_account.as_ref().map(|s| s.name.as_str()).unwrap_or_default(),
                    mutated = reviewed.outcome.mutated(),
                    reason = %reviewed.outcome.reason(),
                    warnings = reviewed.warnings,
                    dry_run = reviewed.dry_run,
                    "admission"
                );
            }
            ([(header::CONTENT_TYPE, "application/json")], reviewed.body).into_response()
        }
        Err(error) => {
            tracing::warn!(%error, "rejected /mutate request");
            (StatusCode::BAD_REQUEST, format!("{error}\n")).into_response()
        }
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.draining.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    if !state.source.is_ready() {
        return (StatusCode::SERVICE_UNAVAILABLE, "ServiceAccount store not synced yet\n").into_response();
    }
    // The store holds a certificate from the start; an expired one is not ready.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if state.certs.not_after() <= now {
        return (StatusCode::SERVICE_UNAVAILABLE, "serving certificate has expired\n").into_response();
    }
    "ok\n".into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let text = state.metrics.render(state.source.as_ref(), state.certs.not_after());
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response()
}
