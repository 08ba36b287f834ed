//! Connections, on both ports alike: accept under a cap, the TLS handshake, HTTP/1.1 or HTTP/2, and a deadline
//! for every phase of a connection's life, so that no client can hold a connection (a file descriptor and its
//! buffers) longer than the limits say.
//!
//! What hyper enforces by itself, checked by tests rather than read from docs (tests/hostile.rs, and the unit
//! tests below): its HTTP/1 `header_read_timeout` starts when hyper begins waiting for a head, which includes the
//! wait between keep-alive requests (so it would also cut idle keep-alive connections at the same deadline); its
//! HTTP/2 server has keep-alive pings but no idle timeout; hyper-util's `auto` builder waits for the first bytes
//! (HTTP/1-or-2 detection) with no deadline at all. So the deadlines live here, in one watchdog per connection:
//!
//! | phase                         | deadline                         | then                                      |
//! |-------------------------------|----------------------------------|-------------------------------------------|
//! | TLS handshake                 | `tls_handshake_timeout`          | closed                                    |
//! | first request after handshake | `header_read_timeout`            | closed (no request was ever served)       |
//! | HTTP/1 head, from first byte  | `header_read_timeout`            | closed                                    |
//! | request body, and the review  | `request_timeout` (in `http`)    | 503                                       |
//! | no request in flight          | `idle_timeout`                   | graceful close, hard close after `close_grace` |
//! | connection age                | `max_connection_age` (±10 %)     | HTTP/1: `Connection: close` on the next answer (idle: the idle deadline); HTTP/2: GOAWAY, hard after `close_grace` |
//! | HTTP/2 peer alive             | ping every `http2_keepalive_interval`, answer within `http2_keepalive_timeout` | closed by hyper |
//! | server draining               | HTTP/1: `Connection: close` on the next answer; HTTP/2: GOAWAY once it has served a request | |
//! | server stopping               | now                              | graceful close; hard at `--shutdown-timeout` |
//!
//! The protocol is chosen by ALPN on the TLS port (`h2`, else HTTP/1.1) and is HTTP/1.1 on the plain metrics
//! port, so there is no unbounded sniffing of the first bytes.
//!
//! At the connection cap the acceptor evicts the connection that has been idle longest (preferring one that never
//! sent a request) and takes its slot; if every connection has a request in flight it stops accepting until one
//! closes (new connections wait in the kernel's backlog). Eviction keeps a flood of silent connections from
//! locking out the API server: each new connection pushes out the oldest idle one instead of queueing behind it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::metrics::{Closed, Metrics, PortMetrics, PortName};
use crate::const_duration;

// The defaults of the `serve` flags, as their text ([`crate::const_duration`]).
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT_TEXT: &str = "10s";
pub const DEFAULT_HEADER_READ_TIMEOUT_TEXT: &str = "10s";
pub const DEFAULT_IDLE_TIMEOUT_TEXT: &str = "120s";
pub const DEFAULT_MAX_CONNECTION_AGE_TEXT: &str = "5m";
pub const DEFAULT_HTTP2_KEEPALIVE_INTERVAL_TEXT: &str = "30s";
pub const DEFAULT_HTTP2_KEEPALIVE_TIMEOUT_TEXT: &str = "10s";

/// Deadlines and caps of one port's connections.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub tls_handshake_timeout: Duration,
    /// From the handshake to the first request, and from the first byte of any HTTP/1 head to its end.
    pub header_read_timeout: Duration,
    /// No request in flight this long: closed. Longer than the API server's own idle timeout (Go's 90 s), so the
    /// client closes first and never sends a request on a connection we are closing.
    pub idle_timeout: Duration,
    pub max_connection_age: Duration,
    pub http2_keepalive_interval: Duration,
    pub http2_keepalive_timeout: Duration,
    /// After a graceful close (idle, age, shutdown): how long the connection may take to finish before it is cut.
    pub close_grace: Duration,
    pub http2_max_concurrent_streams: u32,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            max_connections: super::limits::DEFAULT_MAX_CONNECTIONS as usize,
            tls_handshake_timeout: const { const_duration::parse(DEFAULT_TLS_HANDSHAKE_TIMEOUT_TEXT) },
            header_read_timeout: const { const_duration::parse(DEFAULT_HEADER_READ_TIMEOUT_TEXT) },
            idle_timeout: const { const_duration::parse(DEFAULT_IDLE_TIMEOUT_TEXT) },
            max_connection_age: const { const_duration::parse(DEFAULT_MAX_CONNECTION_AGE_TEXT) },
            http2_keepalive_interval: const { const_duration::parse(DEFAULT_HTTP2_KEEPALIVE_INTERVAL_TEXT) },
            http2_keepalive_timeout: const { const_duration::parse(DEFAULT_HTTP2_KEEPALIVE_TIMEOUT_TEXT) },
            close_grace: Duration::from_secs(10),
            http2_max_concurrent_streams: 200,
        }
    }
}

impl ConnLimits {
    /// How often the watchdog looks: a quarter of the shortest deadline, between 10 ms and 1 s.
    fn tick(&self) -> Duration {
        let shortest = [self.header_read_timeout, self.idle_timeout, self.close_grace, self.max_connection_age]
            .into_iter()
            .min()
            .unwrap_or(Duration::from_secs(1));
        (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }
}

/// HTTP/1 read buffer cap: bounds a request head (the API server's are a few hundred bytes) and what hyper reads
/// ahead of the handler.
const H1_MAX_BUF: usize = 16 * 1024;
/// HTTP/2 flow-control windows: the most a peer may send before the handler reads it. With the stream window at
/// HTTP/2's own default (64 KiB), requests waiting on the memory budget or the in-flight limit hold at most that
/// each; a 3 MiB review still streams in (window updates as the handler reads).
const H2_STREAM_WINDOW: u32 = 64 * 1024;
const H2_CONN_WINDOW: u32 = 1024 * 1024;
/// Accept errors back off from this, doubling up to [`ACCEPT_BACKOFF_MAX`].
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// One log line per distinct accept error per this interval (with the count of those not logged).
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// The server's life, seen by every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Serving,
    /// Shutdown delay: still accepting and serving; each connection is closed after its next request.
    Draining,
    /// No more accepting; every connection closed gracefully.
    Stopping,
    /// `--shutdown-timeout` is over: every connection is cut.
    Killed,
}

/// One listening port.
pub struct Port {
    pub name: PortName,
    pub listener: TcpListener,
    /// TLS on the webhook port; none on the metrics port.
    pub tls: Option<TlsAcceptor>,
    pub limits: ConnLimits,
}

/// What serves requests: one call per request, on a clone (an `Arc` clone) of the handler. Must not fail; errors
/// are responses.
pub trait Handler: Clone + Send + Sync + 'static {
    fn call(self, request: Request<Incoming>) -> impl Future<Output = Response<Full<Bytes>>> + Send + 'static;
}

/// Accepts and serves until the phase reaches [`Phase::Stopping`], then waits for the port's connections to end
/// (the caller bounds that wait with `--shutdown-timeout`, then sets [`Phase::Killed`]).
pub async fn serve<H: Handler>(port: Port, handler: H, metrics: Arc<Metrics>, mut phase: watch::Receiver<Phase>) {
    let Port { name, listener, tls, limits } = port;
    let limits = Arc::new(limits);
    let port_metrics = PortRef { metrics: Arc::clone(&metrics), name };
    port_metrics.get().limit.store(limits.max_connections as u64, Ordering::Relaxed);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let registry = Arc::new(Registry::default());
    let mut errors = AcceptErrors::default();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = phase.wait_for(|p| *p >= Phase::Stopping) => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => {
                errors.succeeded();
                accepted
            }
            Err(error) => {
                port_metrics.get().accept_errors.fetch_add(1, Ordering::Relaxed);
                let pause = errors.failed(name, &error);
                tokio::select! {
                    _ = phase.wait_for(|p| *p >= Phase::Stopping) => break,
                    () = tokio::time::sleep(pause) => continue,
                }
            }
        };
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                // At the cap: push out the longest-idle connection and take its slot as it closes.
                if !registry.evict_one() {
                    tracing::debug!(port = name.label(), "connection cap reached and every connection is busy");
                }
                tokio::select! {
                    _ = phase.wait_for(|p| *p >= Phase::Stopping) => break,
                    slot = Arc::clone(&slots).acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                }
            }
        };
        port_metrics.get().accepted.fetch_add(1, Ordering::Relaxed);
        let _ = tcp.set_nodelay(true);
        let state = registry.insert();
        let task = Connection {
            peer,
            tls: tls.clone(),
            limits: Arc::clone(&limits),
            state,
            registry: Arc::clone(&registry),
            handler: handler.clone(),
            metrics: port_metrics.clone(),
            phase: phase.clone(),
        };
        tokio::spawn(async move {
            let _slot = slot;
            task.run(tcp).await;
        });
    }
    // Closing the listener refuses new connections at once (rather than leaving them in the backlog).
    drop(listener);
    // Every slot back means every connection of this port has ended.
    let _ = slots.acquire_many(limits.max_connections as u32).await;
}

#[derive(Clone)]
struct PortRef {
    metrics: Arc<Metrics>,
    name: PortName,
}

impl PortRef {
    fn get(&self) -> &PortMetrics {
        self.metrics.port(self.name)
    }
}

/// Accept failures (EMFILE, ENFILE, ENOBUFS, …): exponential back-off, and one log line per distinct error per
/// [`ACCEPT_LOG_INTERVAL`] rather than one per attempt.
#[derive(Default)]
struct AcceptErrors {
    backoff: Option<Duration>,
    logged: HashMap<i32, (Instant, u64)>,
}

impl AcceptErrors {
    fn succeeded(&mut self) {
        self.backoff = None;
    }

    fn failed(&mut self, port: PortName, error: &std::io::Error) -> Duration {
        let pause = self.backoff.map_or(ACCEPT_BACKOFF_MIN, |d| (d * 2).min(ACCEPT_BACKOFF_MAX));
        self.backoff = Some(pause);
        let key = error.raw_os_error().unwrap_or(-1);
        let now = Instant::now();
        match self.logged.get_mut(&key) {
            Some((at, suppressed)) if now.duration_since(*at) < ACCEPT_LOG_INTERVAL => *suppressed += 1,
            entry => {
                let suppressed = entry.map_or(0, |(_, n)| *n);
                tracing::warn!(
                    port = port.label(),
                    %error,
                    ?pause,
                    not_logged_since_last = suppressed,
                    "accept failed; backing off (logged once a minute per distinct error)"
                );
                self.logged.insert(key, (now, 0));
            }
        }
        pause
    }
}

/// The open connections of a port, for eviction at the cap.
#[derive(Default)]
struct Registry {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<ConnState>>>,
}

impl Registry {
    fn insert(&self) -> Arc<ConnState> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState::new(id));
        self.lock().insert(id, Arc::clone(&state));
        state
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Signals the best eviction candidate among connections with no request in flight: one that never served a
    /// request first (closing it cannot race with a request the client is sending on a reused connection), and
    /// among those the one whose last byte is oldest — a silent connection before one still handshaking. False
    /// when every connection is busy. A scan of the open connections, only at the cap.
    fn evict_one(&self) -> bool {
        let open = self.lock();
        let candidate = open
            .values()
            .filter(|c| c.in_flight.load(Ordering::SeqCst) == 0 && !c.evicting.load(Ordering::SeqCst))
            .min_by_key(|c| (c.served.load(Ordering::SeqCst) > 0, c.last_activity()));
        match candidate {
            Some(c) => {
                c.evicting.store(true, Ordering::SeqCst);
                c.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

const NEVER: u64 = u64::MAX;

/// What the watchdog and the eviction need to know about one connection. Times are milliseconds since `born`.
struct ConnState {
    id: u64,
    born: Instant,
    in_flight: AtomicUsize,
    /// Requests started.
    served: AtomicU64,
    /// When the last request ended (or the handshake did).
    idle_since: AtomicU64,
    /// First byte read while no request was in flight (an HTTP/1 head in progress), or [`NEVER`].
    head_since: AtomicU64,
    /// Last byte read, handshake included.
    last_read: AtomicU64,
    evicting: AtomicBool,
    evict: Notify,
    /// HTTP/1 past its age: the next answer carries `Connection: close` (see `watch`).
    close_next: AtomicBool,
}

impl ConnState {
    fn new(id: u64) -> Self {
        Self {
            id,
            born: Instant::now(),
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(NEVER),
            last_read: AtomicU64::new(0),
            close_next: AtomicBool::new(false),
            evicting: AtomicBool::new(false),
            evict: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    /// The last sign of life: a byte read or a request ended.
    fn last_activity(&self) -> Instant {
        let ms = self.last_read.load(Ordering::SeqCst).max(self.idle_since.load(Ordering::SeqCst));
        self.born + Duration::from_millis(ms)
    }

    fn on_read(&self, http_level: bool) {
        let now = self.now_ms();
        self.last_read.store(now, Ordering::Relaxed);
        if http_level && self.in_flight.load(Ordering::SeqCst) == 0 && self.head_since.load(Ordering::SeqCst) == NEVER {
            self.head_since.store(now, Ordering::SeqCst);
        }
    }

    fn begin_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.served.fetch_add(1, Ordering::SeqCst);
        self.head_since.store(NEVER, Ordering::SeqCst);
        InFlight(Arc::clone(self))
    }

    /// The deadline this connection has passed, if any.
    fn expired(&self, limits: &ConnLimits, http2: bool, max_age: Duration) -> Option<Closed> {
        let now = self.now_ms();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        // Once an HTTP/1 connection is told to close with its next answer, its other deadlines still apply.
        if now >= ms(max_age) && !self.close_next.load(Ordering::SeqCst) {
            return Some(Closed::MaxAge);
        }
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let idle_since = self.idle_since.load(Ordering::SeqCst);
        let head_since = self.head_since.load(Ordering::SeqCst);
        let idle_for = now.saturating_sub(idle_since);
        if self.served.load(Ordering::SeqCst) == 0 {
            return (idle_for >= ms(limits.header_read_timeout)).then_some(Closed::HeaderRead);
        }
        // HTTP/2 peers send PINGs and SETTINGS between requests: only HTTP/1 bytes mean a head has started.
        if !http2 && head_since != NEVER && now.saturating_sub(head_since) >= ms(limits.header_read_timeout) {
            return Some(Closed::HeaderRead);
        }
        (idle_for >= ms(limits.idle_timeout)).then_some(Closed::Idle)
    }
}

/// A request in flight on its connection; dropped when the handler's future ends or is dropped.
struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        // idle_since first: the watchdog reads in_flight, then idle_since.
        self.0.idle_since.store(self.0.now_ms(), Ordering::SeqCst);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Connection<H> {
    peer: std::net::SocketAddr,
    tls: Option<TlsAcceptor>,
    limits: Arc<ConnLimits>,
    state: Arc<ConnState>,
    registry: Arc<Registry>,
    handler: H,
    metrics: PortRef,
    phase: watch::Receiver<Phase>,
}

impl<H: Handler> Connection<H> {
    async fn run(mut self, tcp: TcpStream) {
        let port = self.metrics.clone();
        port.get().open.fetch_add(1, Ordering::Relaxed);
        let reason = self.serve(tcp).await;
        self.registry.remove(self.state.id);
        port.get().open.fetch_sub(1, Ordering::Relaxed);
        port.get().closed(reason);
    }

    async fn serve(&mut self, tcp: TcpStream) -> Closed {
        let Some(acceptor) = self.tls.clone() else {
            self.state.idle_since.store(self.state.now_ms(), Ordering::SeqCst);
            return self.http(TrackedIo::http(tcp, Arc::clone(&self.state)), false).await;
        };
        let tcp = TrackedIo::tcp(tcp, Arc::clone(&self.state));
        let handshake = tokio::time::timeout(self.limits.tls_handshake_timeout, acceptor.accept(tcp));
        let tls = tokio::select! {
            result = handshake => match result {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(peer = %self.peer, %error, "TLS handshake failed");
                    return Closed::Handshake;
                }
                Err(_) => {
                    tracing::debug!(peer = %self.peer, "TLS handshake timed out");
                    return Closed::Handshake;
                }
            },
            () = self.state.evict.notified() => return Closed::Evicted,
            _ = self.phase.wait_for(|p| *p >= Phase::Stopping) => return Closed::Shutdown,
        };
        let http2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        self.state.idle_since.store(self.state.now_ms(), Ordering::SeqCst);
        self.http(TrackedIo::http(tls, Arc::clone(&self.state)), http2).await
    }

    async fn http<I>(&mut self, io: TrackedIo<I>, http2: bool) -> Closed
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let state = Arc::clone(&self.state);
        let handler = self.handler.clone();
        let service = hyper::service::service_fn(move |request| {
            let in_flight = state.begin_request();
            let response = handler.clone().call(request);
            let state = Arc::clone(&state);
            async move {
                let mut response = response.await;
                if !http2 && state.close_next.load(Ordering::SeqCst) {
                    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                drop(in_flight);
                Ok::<_, Infallible>(response)
            }
        });
        let io = TokioIo::new(io);
        let limits = Arc::clone(&self.limits);
        if http2 {
            let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            builder
                .timer(TokioTimer::new())
                .keep_alive_interval(limits.http2_keepalive_interval)
                .keep_alive_timeout(limits.http2_keepalive_timeout)
                .max_concurrent_streams(limits.http2_max_concurrent_streams)
                .initial_stream_window_size(H2_STREAM_WINDOW)
                .initial_connection_window_size(H2_CONN_WINDOW);
            self.watch(builder.serve_connection(io, service), true).await
        } else {
            let mut builder = hyper::server::conn::http1::Builder::new();
            // hyper's own header timeout would also cut idle keep-alive connections; the watchdog does both.
            builder.timer(TokioTimer::new()).header_read_timeout(None).keep_alive(true).max_buf_size(H1_MAX_BUF);
            self.watch(builder.serve_connection(io, service), false).await
        }
    }

    /// Drives the connection and enforces its deadlines.
    async fn watch<C>(&mut self, connection: C, http2: bool) -> Closed
    where
        C: GracefulConnection,
        C::Error: fmt::Display,
    {
        let mut connection = std::pin::pin!(connection);
        let max_age = jittered(self.limits.max_connection_age, self.state.id);
        let mut ticker = tokio::time::interval(self.limits.tick());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Set once a graceful close has begun: why, and when to cut the connection if it has not ended.
        let mut closing: Option<(Closed, Instant)> = None;
        loop {
            let draining = *self.phase.borrow() == Phase::Draining;
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(peer = %self.peer, %error, "connection ended with an error");
                    }
                    let ended = if self.state.close_next.load(Ordering::SeqCst) { Closed::MaxAge } else { Closed::Peer };
                    return closing.map_or(ended, |(reason, _)| reason);
                }
                _ = ticker.tick() => {
                    if let Some((_, cut_at)) = closing {
                        if Instant::now() >= cut_at {
                            return Closed::Forced;
                        }
                        continue;
                    }
                    let reason = self.state.expired(&self.limits, http2, max_age).or_else(|| {
                        // Draining, HTTP/2: a GOAWAY once the connection has served a request; the peer retries
                        // refused streams elsewhere, so this races with nothing. HTTP/1 connections are told by the
                        // `Connection: close` of their next answer (http.rs): closing an idle one here could race
                        // with a POST the client is sending on it, which Go's client does not retry.
                        (draining && http2 && self.state.served.load(Ordering::SeqCst) > 0).then_some(Closed::Shutdown)
                    });
                    match reason {
                        // No request is in flight on a connection stuck in a head: nothing to finish.
                        Some(Closed::HeaderRead) => return Closed::HeaderRead,
                        // HTTP/1 past its age: closing it here, idle, races with a POST the client may be sending
                        // on it (seen in the soak: a few failed requests per round of age closes), so its next
                        // answer says `Connection: close` instead; an idle one ends at --idle-timeout.
                        Some(Closed::MaxAge) if !http2 => self.state.close_next.store(true, Ordering::SeqCst),
                        Some(reason) => {
                            connection.as_mut().graceful_shutdown();
                            closing = Some((reason, Instant::now() + self.limits.close_grace));
                        }
                        None => {}
                    }
                }
                () = self.state.evict.notified() => return Closed::Evicted,
                changed = self.phase.changed() => {
                    let phase = if changed.is_ok() { *self.phase.borrow() } else { Phase::Killed };
                    match phase {
                        Phase::Killed => return closing.map_or(Closed::Shutdown, |(reason, _)| reason),
                        Phase::Stopping if closing.is_none() => {
                            connection.as_mut().graceful_shutdown();
                            // The caller's --shutdown-timeout ends it (Phase::Killed) if it has not ended before.
                            closing = Some((Closed::Shutdown, Instant::now() + Duration::from_secs(86400)));
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

/// Spreads connection ages over ±10 % so connections opened together are not all closed together.
fn jittered(age: Duration, id: u64) -> Duration {
    // splitmix64 of the connection id: cheap, and different for every connection.
    let mut z = id.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let fraction = (z >> 11) as f64 / (1u64 << 53) as f64;
    age.mul_f64(0.9 + 0.2 * fraction)
}

/// A connection's byte stream, noting when a byte was last read (for eviction) and, at the HTTP level, when an
/// HTTP/1 head starts (the first byte read while no request is in flight), so the watchdog can time the head.
/// On the TLS port it wraps both the TCP stream (handshake bytes count as activity) and the TLS stream.
struct TrackedIo<I> {
    inner: I,
    state: Arc<ConnState>,
    http_level: bool,
}

impl<I> TrackedIo<I> {
    fn tcp(inner: I, state: Arc<ConnState>) -> Self {
        Self { inner, state, http_level: false }
    }

    fn http(inner: I, state: Arc<ConnState>) -> Self {
        Self { inner, state, http_level: true }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for TrackedIo<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.on_read(self.http_level);
        }
        result
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for TrackedIo<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Whether the peer closed `stream` within `within` (EOF or reset), reading and discarding what comes.
    async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0) | Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }

    async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        Ok(Response::new(Full::new(Bytes::from_static(b"hi"))))
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    /// What hyper does by itself: its HTTP/1 header timeout runs from the moment it waits for a head, so it also
    /// closes a keep-alive connection that is merely idle between requests. That is why the watchdog times heads
    /// from their first byte and leaves idle connections to `idle_timeout`.
    #[tokio::test]
    async fn hyper_header_read_timeout_also_cuts_idle_keep_alive() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(Duration::from_millis(300));
            let _ = builder.serve_connection(TokioIo::new(tcp), hyper::service::service_fn(hello)).await;
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(GET).await.unwrap();
        let mut buf = [0u8; 1024];
        assert!(client.read(&mut buf).await.unwrap() > 0, "answered");
        assert!(closed_within(&mut client, Duration::from_secs(3)).await, "hyper closed the idle connection");
    }

    /// What hyper-util's `auto` builder does by itself: it waits for the first bytes (to tell HTTP/1 from HTTP/2)
    /// with no deadline, whatever the HTTP/1 header timeout. That is why the protocol comes from ALPN here.
    #[tokio::test]
    async fn hyper_util_auto_waits_for_the_first_bytes_without_a_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new()).header_read_timeout(Duration::from_millis(300));
            let _ = builder.serve_connection(TokioIo::new(tcp), hyper::service::service_fn(hello)).await;
        });
        let mut silent = TcpStream::connect(addr).await.unwrap();
        assert!(!closed_within(&mut silent, Duration::from_secs(2)).await, "still open long after 300 ms");
    }

    /// Serves one port with our watchdog, plain HTTP/1, the given limits.
    async fn serve_plain(limits: ConnLimits) -> (std::net::SocketAddr, watch::Sender<Phase>, Arc<Metrics>) {
        #[derive(Clone)]
        struct Slow;
        impl Handler for Slow {
            async fn call(self, request: Request<Incoming>) -> Response<Full<Bytes>> {
                if request.uri().path() == "/slow" {
                    tokio::time::sleep(Duration::from_millis(700)).await;
                }
                Response::new(Full::new(Bytes::from_static(b"ok")))
            }
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Metrics::new();
        let (phase, phase_rx) = watch::channel(Phase::Serving);
        let port = Port { name: PortName::Metrics, listener, tls: None, limits };
        tokio::spawn(serve(port, Slow, Arc::clone(&metrics), phase_rx));
        (addr, phase, metrics)
    }

    fn short() -> ConnLimits {
        ConnLimits {
            header_read_timeout: Duration::from_millis(400),
            idle_timeout: Duration::from_millis(1200),
            close_grace: Duration::from_millis(500),
            max_connection_age: Duration::from_secs(60),
            ..ConnLimits::default()
        }
    }

    #[tokio::test]
    async fn silent_connections_and_dripped_heads_are_closed_at_the_header_deadline() {
        let (addr, _phase, metrics) = serve_plain(short()).await;
        let mut silent = TcpStream::connect(addr).await.unwrap();
        assert!(closed_within(&mut silent, Duration::from_secs(2)).await);

        // A head whose first byte comes after an answered request: timed from that byte, not from the answer.
        let mut drip = TcpStream::connect(addr).await.unwrap();
        drip.write_all(GET).await.unwrap();
        let mut buf = [0u8; 1024];
        assert!(drip.read(&mut buf).await.unwrap() > 0);
        tokio::time::sleep(Duration::from_millis(600)).await;
        drip.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let started = Instant::now();
        assert!(closed_within(&mut drip, Duration::from_secs(2)).await);
        assert!(started.elapsed() < Duration::from_millis(1100), "closed by the head deadline, not the idle one");
        assert_eq!(metrics.port(PortName::Metrics).closed_count(Closed::HeaderRead), 2);
    }

    #[tokio::test]
    async fn idle_keep_alive_lives_until_the_idle_deadline_not_the_header_one() {
        let (addr, _phase, metrics) = serve_plain(short()).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(GET).await.unwrap();
        let mut buf = [0u8; 1024];
        assert!(client.read(&mut buf).await.unwrap() > 0);
        let answered = Instant::now();
        assert!(closed_within(&mut client, Duration::from_secs(3)).await);
        let idle = answered.elapsed();
        assert!(idle >= Duration::from_millis(1100) && idle < Duration::from_millis(2500), "{idle:?}");
        assert_eq!(metrics.port(PortName::Metrics).closed_count(Closed::Idle), 1);
    }

    #[tokio::test]
    async fn a_request_in_flight_is_never_idle() {
        let (addr, _phase, _) = serve_plain(ConnLimits { idle_timeout: Duration::from_millis(300), ..short() }).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 1024];
        let n = client.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "answered after 700 ms");
    }

    #[tokio::test]
    async fn old_connections_are_told_to_close_after_their_next_answer() {
        let limits = ConnLimits { max_connection_age: Duration::from_millis(500), ..short() };
        let (addr, _phase, metrics) = serve_plain(limits).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        // The answer comes whole, says `connection: close`, and the connection then ends.
        tokio::time::timeout(Duration::from_secs(3), client.read_to_end(&mut answer)).await.unwrap().unwrap();
        let answer = String::from_utf8_lossy(&answer).to_lowercase();
        assert!(answer.starts_with("http/1.1 200") && answer.contains("connection: close"), "{answer}");
        assert_eq!(metrics.port(PortName::Metrics).closed_count(Closed::MaxAge), 1);
    }

    /// The soak's failed requests: an idle HTTP/1 connection closed at its age raced with the POST the client
    /// was sending on it. Now it stays open past its age and its next answer closes it.
    #[tokio::test]
    async fn an_idle_old_http1_connection_is_closed_by_its_next_answer_not_under_the_client() {
        let limits = ConnLimits { max_connection_age: Duration::from_millis(300), ..short() };
        let (addr, _phase, metrics) = serve_plain(limits).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(GET).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = client.read(&mut buf).await.unwrap();
        assert!(!String::from_utf8_lossy(&buf[..n]).to_lowercase().contains("connection: close"));
        // Idle past its age (but not past --idle-timeout): still open, and the next request is answered.
        tokio::time::sleep(Duration::from_millis(800)).await;
        client.write_all(GET).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(3), client.read_to_end(&mut answer)).await.unwrap().unwrap();
        let answer = String::from_utf8_lossy(&answer).to_lowercase();
        assert!(answer.starts_with("http/1.1 200") && answer.contains("connection: close"), "{answer}");
        assert_eq!(metrics.port(PortName::Metrics).closed_count(Closed::MaxAge), 1);
    }

    #[tokio::test]
    async fn at_the_cap_the_longest_idle_connection_makes_room() {
        let (addr, _phase, metrics) = serve_plain(ConnLimits { max_connections: 2, ..ConnLimits::default() }).await;
        let mut first = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut second = TcpStream::connect(addr).await.unwrap();
        second.write_all(GET).await.unwrap();
        let mut buf = [0u8; 1024];
        assert!(second.read(&mut buf).await.unwrap() > 0);
        // A third: the silent first one is evicted (it never sent a request), the second keeps its connection.
        let mut third = TcpStream::connect(addr).await.unwrap();
        third.write_all(GET).await.unwrap();
        assert!(third.read(&mut buf).await.unwrap() > 0, "the newcomer is served");
        assert!(closed_within(&mut first, Duration::from_secs(1)).await, "the silent one made room");
        second.write_all(GET).await.unwrap();
        assert!(second.read(&mut buf).await.unwrap() > 0, "the one that had served a request is still open");
        assert_eq!(metrics.port(PortName::Metrics).closed_count(Closed::Evicted), 1);
        assert_eq!(metrics.port(PortName::Metrics).open.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn stopping_closes_idle_connections_and_waits_for_busy_ones() {
        let (addr, phase, metrics) = serve_plain(short()).await;
        let mut idle = TcpStream::connect(addr).await.unwrap();
        idle.write_all(GET).await.unwrap();
        let mut buf = [0u8; 1024];
        assert!(idle.read(&mut buf).await.unwrap() > 0);
        let mut busy = TcpStream::connect(addr).await.unwrap();
        busy.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        phase.send(Phase::Stopping).unwrap();
        assert!(closed_within(&mut idle, Duration::from_millis(500)).await, "idle: closed at once");
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(3), busy.read_to_end(&mut answer)).await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"), "busy: answered, then closed");
        assert!(TcpStream::connect(addr).await.is_err(), "the listener is closed");
        assert_eq!(metrics.port(PortName::Metrics).open.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn accept_errors_back_off_exponentially_and_log_once_per_interval() {
        let mut errors = AcceptErrors::default();
        let emfile = std::io::Error::from_raw_os_error(libc::EMFILE);
        let pauses: Vec<Duration> = (0..10).map(|_| errors.failed(PortName::Https, &emfile)).collect();
        assert_eq!(pauses[0], ACCEPT_BACKOFF_MIN);
        assert!(pauses.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(*pauses.last().unwrap(), ACCEPT_BACKOFF_MAX);
        assert_eq!(errors.logged[&libc::EMFILE].1, 9, "one line logged, nine counted");
        errors.succeeded();
        assert_eq!(errors.failed(PortName::Https, &emfile), ACCEPT_BACKOFF_MIN, "a success resets the back-off");
    }

    #[test]
    fn connection_ages_spread_over_plus_minus_ten_percent() {
        let age = Duration::from_secs(600);
        let ages: Vec<Duration> = (0..1000).map(|id| jittered(age, id)).collect();
        assert!(ages.iter().all(|a| *a >= age.mul_f64(0.9) && *a <= age.mul_f64(1.1)));
        let (min, max) = (ages.iter().min().unwrap(), ages.iter().max().unwrap());
        assert!(*max - *min > Duration::from_secs(100), "spread: {min:?}..{max:?}");
    }
}
