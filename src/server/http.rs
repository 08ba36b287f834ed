//! Requests: `POST /mutate` and `/healthz` on the TLS port; `/healthz`, `/readyz` and `/metrics` on the plain
//! metrics port. Plain hyper services: the routes are three paths, and every limit below is visible in one place.
//!
//! `/mutate`, outermost first:
//! 1. counted in `http_request_count` / latencies with the status it was really answered with (every 503, 413,
//!    415, 400, 404, 405 included), and `Connection: close` on HTTP/1 answers while draining;
//! 2. `--request-timeout` around everything below — reading the body, waiting for memory or a review thread, the
//!    review — so a slow client or a slow review is answered 503 on time;
//! 3. `--max-requests-in-flight`: a request over it is shed at once with 503 (a concurrency limit with load
//!    shedding, as tower's `ConcurrencyLimit` + `LoadShed`, written out so the 503 says why and is counted);
//! 4. content type (415) and `Content-Length` over `--max-body-bytes` (413), both before a byte of body is read;
//! 5. bodies above `--inline-review-max-bytes` (or of unknown length) first take their size from the memory
//!    budget `--max-large-body-bytes-in-flight`, then the body is read into one buffer of exactly its size; a
//!    small body that arrives in one frame is used as it is;
//! 6. the review: inline on the async worker for small bodies (the fast path), on the blocking pool for large
//!    ones (at most `--review-threads` at once), so the timer of step 2 is polled on time.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::sync::OwnedSemaphorePermit;

use super::conn::Handler;
use super::logging::Clip;
use super::metrics::{Route, Shed, Verb};
use super::AppState;
use crate::admission::{AdmissionError, Outcome, Reviewed};
use crate::const_duration;

/// `--max-body-bytes`: the API server's own request limit, 3 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 3 * 1024 * 1024;
/// `--request-timeout`, as the flag's text ([`crate::const_duration`]).
pub const DEFAULT_REQUEST_TIMEOUT_TEXT: &str = "10s";
pub const DEFAULT_REQUEST_TIMEOUT: Duration = const_duration::parse(DEFAULT_REQUEST_TIMEOUT_TEXT);
/// `--max-requests-in-flight`.
pub const DEFAULT_MAX_REQUESTS_IN_FLIGHT: u64 = 256;
/// `--inline-review-max-bytes`.
pub const DEFAULT_INLINE_REVIEW_MAX_BYTES: u64 = 64 * 1024;
/// `--max-large-body-bytes-in-flight`.
pub const DEFAULT_MAX_LARGE_BODY_BYTES_IN_FLIGHT: u64 = 24 * 1024 * 1024;

/// Bounds of one request and of all of them together (see docs/reliability.md for the memory arithmetic).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest accepted body; the API server's own request limit is 3 MiB.
    pub max_body_bytes: usize,
    /// Reading the body plus the review; answered 503 when over.
    pub request_timeout: Duration,
    /// Requests on /mutate being served at once; more are answered 503 at once.
    pub max_requests_in_flight: usize,
    /// Bodies larger than this are reviewed on the blocking pool and count against the memory budget.
    pub inline_review_max_bytes: usize,
    /// Memory budget for the bodies of large requests in flight (they wait for room, within the timeout).
    pub max_large_body_bytes_in_flight: usize,
    /// Threads reviewing large bodies at once.
    pub review_threads: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES as usize,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_requests_in_flight: DEFAULT_MAX_REQUESTS_IN_FLIGHT as usize,
            inline_review_max_bytes: DEFAULT_INLINE_REVIEW_MAX_BYTES as usize,
            max_large_body_bytes_in_flight: DEFAULT_MAX_LARGE_BODY_BYTES_IN_FLIGHT as usize,
            review_threads: std::thread::available_parallelism().map_or(2, |n| n.get()).max(2),
        }
    }
}

type Body = Full<Bytes>;

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, format!("method not allowed; use {allow}\n"));
    response.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// The TLS port.
#[derive(Clone)]
pub struct WebhookHandler(pub Arc<AppState>);

impl Handler for WebhookHandler {
    fn call(self, request: Request<Incoming>) -> impl std::future::Future<Output = Response<Body>> + Send + 'static {
        let state = self.0;
        async move {
            let started = Instant::now();
            let verb = Verb::of(request.method());
            let route = Route::of(request.uri().path());
            let http1 = request.version() <= Version::HTTP_11;
            let mut response = match (route, request.method()) {
                (Route::Mutate, &Method::POST) => {
                    let timeout = state.limits.request_timeout;
                    match tokio::time::timeout(timeout, mutate(&state, request)).await {
                        Ok(response) => response,
                        Err(_) => {
                            state.metrics.shed(Shed::Timeout);
                            tracing::warn!(?timeout, "/mutate request timed out (slow body or review); answered 503");
                            text(
                                StatusCode::SERVICE_UNAVAILABLE,
                                format!("request not answered within {timeout:?} (--request-timeout)\n"),
                            )
                        }
                    }
                }
                (Route::Mutate, _) => method_not_allowed("POST"),
                (Route::Healthz, &Method::GET | &Method::HEAD) => text(StatusCode::OK, "ok\n"),
                (Route::Healthz, _) => method_not_allowed("GET"),
                (Route::Other, _) => text(StatusCode::NOT_FOUND, "not found; the webhook serves POST /mutate\n"),
            };
            // While draining, HTTP/1.1 answers carry `Connection: close`: the API server opens its next connection
            // to a replica that is still ready instead of reusing this one. HTTP/2 peers get a GOAWAY (conn.rs).
            if http1 && state.draining.load(Ordering::Relaxed) {
                response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            state.metrics.observe_request(verb, route, response.status().as_u16(), started.elapsed());
            response
        }
    }
}

/// Keeps `irsa_webhook_requests_in_flight` and the in-flight slot for as long as the request lives.
struct InFlightSlot<'a> {
    state: &'a AppState,
    _permit: OwnedSemaphorePermit,
}

impl Drop for InFlightSlot<'_> {
    fn drop(&mut self) {
        self.state.metrics.requests_in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Room in the large-body budget, returned (and the gauge lowered) when the review using it ends.
struct BodyBudget {
    state: Arc<AppState>,
    bytes: usize,
    _permit: OwnedSemaphorePermit,
}

impl Drop for BodyBudget {
    fn drop(&mut self) {
        self.state.metrics.large_body_bytes.fetch_sub(self.bytes as i64, Ordering::Relaxed);
    }
}

async fn mutate(state: &Arc<AppState>, request: Request<Incoming>) -> Response<Body> {
    let limits = &state.limits;
    let Ok(permit) = Arc::clone(&state.in_flight).try_acquire_owned() else {
        state.metrics.shed(Shed::InFlight);
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "too many requests in flight (--max-requests-in-flight {}); try again\n",
                limits.max_requests_in_flight
            ),
        );
    };
    state.metrics.requests_in_flight.fetch_add(1, Ordering::Relaxed);
    let _slot = InFlightSlot { state, _permit: permit };

    // `application/json`, with or without parameters (`; charset=utf-8`).
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        tracing::warn!(content_type = %Clip(content_type), "rejected /mutate request: wrong content type");
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content type must be application/json, got {:?}\n", Clip(content_type).to_string()),
        );
    }
    let declared = match request.headers().get(header::CONTENT_LENGTH).map(|v| v.to_str().map(str::parse::<u64>)) {
        None => None,
        Some(Ok(Ok(length))) => Some(length),
        Some(_) => return text(StatusCode::BAD_REQUEST, "Content-Length is not a number\n"),
    };
    if let Some(length) = declared.filter(|l| *l > limits.max_body_bytes as u64) {
        return too_large(Some(length), limits.max_body_bytes);
    }
    // A large body (or one of unknown length, counted at the limit) first takes its room in the memory budget.
    let declared = declared.map(|l| l as usize);
    let large = declared.is_none_or(|l| l > limits.inline_review_max_bytes);
    let budget = if large {
        let bytes = declared.unwrap_or(limits.max_body_bytes);
        let permits = u32::try_from(bytes).unwrap_or(u32::MAX);
        let Ok(permit) = Arc::clone(&state.large_bodies).acquire_many_owned(permits).await else {
            return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
        };
        state.metrics.large_body_bytes.fetch_add(bytes as i64, Ordering::Relaxed);
        Some(BodyBudget { state: Arc::clone(state), bytes, _permit: permit })
    } else {
        None
    };
    let body = match read_body(request.into_body(), declared, limits.max_body_bytes, large).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return too_large(None, limits.max_body_bytes),
        Err(BodyError::Read(error)) => {
            tracing::debug!(%error, "cannot read a /mutate body");
            return text(StatusCode::BAD_REQUEST, format!("cannot read the request body: {error}\n"));
        }
    };

    let reviewed = if large || body.len() > limits.inline_review_max_bytes {
        state.metrics.reviews_offloaded.fetch_add(1, Ordering::Relaxed);
        match review_on_blocking_pool(state, body, budget).await {
            Ok(reviewed) => reviewed,
            Err(response) => return response,
        }
    } else {
        state.admission.review(&body).await
    };
    match reviewed {
        Ok(reviewed) => answer(state, reviewed),
        Err(error) => {
            let message = error.to_string();
            tracing::warn!(error = %Clip(&message), "rejected /mutate request");
            text(StatusCode::BAD_REQUEST, message + "\n")
        }
    }
}

fn too_large(length: Option<u64>, limit: usize) -> Response<Body> {
    let got = length.map(|l| format!(" ({l} bytes)")).unwrap_or_default();
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body too large{got}; the limit is {limit} bytes (--max-body-bytes)\n"),
    )
}

/// Runs a large review on the blocking pool, at most `review_threads` at once. The body and its budget move
/// into the thread: if the request times out meanwhile, both stay accounted until the thread is done.
async fn review_on_blocking_pool(
    state: &Arc<AppState>,
    body: Bytes,
    budget: Option<BodyBudget>,
) -> Result<Result<Reviewed<'static>, AdmissionError>, Response<Body>> {
    let Ok(thread) = Arc::clone(&state.review_threads).acquire_owned().await else {
        return Err(text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"));
    };
    let admission = state.admission.clone();
    let runtime = tokio::runtime::Handle::current();
    let job = tokio::task::spawn_blocking(move || {
        let _held = (thread, budget);
        runtime.block_on(admission.review(&body)).map(Reviewed::into_owned)
    });
    job.await.map_err(|error| {
        tracing::error!(%error, "a review on the blocking pool failed");
        text(StatusCode::INTERNAL_SERVER_ERROR, "internal error while reviewing\n")
    })
}

enum BodyError {
    TooLarge,
    Read(hyper::Error),
}

/// Reads the body, stopping at `limit`. A body that arrives in one frame (a small one, on a keep-alive connection
/// whose read buffer has grown to fit it) is kept as hyper's own bytes: the copy into a buffer of its own was
/// 5 % of a 9.6 KB review's instructions. Otherwise the frames are copied into one buffer of the declared size (no
/// growth). `large` bodies are always copied, so what they hold is exactly what the memory budget counts, not a
/// share of a larger read buffer.
async fn read_body(mut body: Incoming, declared: Option<usize>, limit: usize, large: bool) -> Result<Bytes, BodyError> {
    let mut first: Option<Bytes> = None;
    let mut buffer: Vec<u8> = Vec::new();
    let mut length = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Read)?;
        let Ok(data) = frame.into_data() else { continue };
        length += data.len();
        if length > limit {
            return Err(BodyError::TooLarge);
        }
        if !large && first.is_none() && buffer.is_empty() {
            first = Some(data);
            continue;
        }
        // A second frame (or a large body): from here on, one buffer of the declared size.
        if buffer.capacity() == 0 {
            buffer.reserve_exact(declared.unwrap_or(16 * 1024).max(length).min(limit));
        }
        if let Some(held) = first.take() {
            buffer.extend_from_slice(&held);
        }
        buffer.extend_from_slice(&data);
    }
    Ok(first.unwrap_or_else(|| Bytes::from(buffer)))
}

/// The review's answer, its metrics and its log line.
fn answer(state: &AppState, reviewed: Reviewed<'_>) -> Response<Body> {
    match &reviewed.outcome {
        Outcome::Mutated { method } => state.metrics.pod_mutated(*method),
        Outcome::ServiceAccountNotFound => state.metrics.missing_service_account(),
        _ => {}
    }
    if reviewed.outcome != Outcome::Ignored {
        tracing::info!(
            uid = %Clip(&reviewed.uid),
            namespace = %Clip(&reviewed.namespace),
            pod = %Clip(&reviewed.pod),
            service_account = %Clip(reviewed.service_account.as_ref().map(|s| s.name.as_str()).unwrap_or_default()),
            mutated = reviewed.outcome.mutated(),
            reason = %Clip(&reviewed.outcome.reason()),
            warnings = reviewed.warnings,
            dry_run = reviewed.dry_run,
            "admission"
        );
    }
    let mut response = Response::new(Full::new(Bytes::from(reviewed.body)));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The plain metrics port.
#[derive(Clone)]
pub struct MetricsHandler(pub Arc<AppState>);

impl Handler for MetricsHandler {
    fn call(self, request: Request<Incoming>) -> impl std::future::Future<Output = Response<Body>> + Send + 'static {
        let state = self.0;
        async move {
            let get = matches!(*request.method(), Method::GET | Method::HEAD);
            match request.uri().path() {
                "/healthz" | "/readyz" | "/metrics" if !get => method_not_allowed("GET"),
                "/healthz" => text(StatusCode::OK, "ok\n"),
                "/readyz" => readyz(&state),
                "/metrics" => {
                    let body = state.metrics.render(
                        state.source.as_ref(),
                        state.certs.not_after(),
                        super::logging::dropped_lines(),
                    );
                    let mut response = Response::new(Full::new(Bytes::from(body)));
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                    );
                    response
                }
                _ => text(StatusCode::NOT_FOUND, "not found; this port serves /healthz, /readyz and /metrics\n"),
            }
        }
    }
}

fn readyz(state: &AppState) -> Response<Body> {
    if state.draining.load(Ordering::Relaxed) {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    }
    if !state.source.is_ready() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "ServiceAccount store not synced yet\n");
    }
    // The store holds a certificate from the start; an expired one is not ready.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if state.certs.not_after() <= now {
        return text(StatusCode::SERVICE_UNAVAILABLE, "serving certificate has expired\n");
    }
    text(StatusCode::OK, "ok\n")
}
