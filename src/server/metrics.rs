//! Prometheus metrics in the text exposition format 0.0.4, the format the reference's Go client serves by default.
//!
//! The reference's series keep their exact names, labels, types and units (`http_request_count{code,path,verb}`,
//! `http_request_latencies` in microseconds, `http_request_duration_microseconds`, `pod_identity_webhook_*`), so
//! dashboards and alerts written for amazon-eks-pod-identity-webhook keep working. Ours live under `irsa_webhook_`.
//!
//! Every series is a fixed slot resolved from enums, so recording a request is a few relaxed atomic adds: no label
//! `String`, no map lookup, no lock.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::identity::Method;
use crate::store::ServiceAccountSource;

/// The HTTP method, from a fixed set so a client cannot grow the label space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Connect,
    Options,
    Trace,
    Patch,
    /// Any extension method.
    Other,
}

impl Verb {
    const ALL: [Verb; 10] = [
        Verb::Get,
        Verb::Head,
        Verb::Post,
        Verb::Put,
        Verb::Delete,
        Verb::Connect,
        Verb::Options,
        Verb::Trace,
        Verb::Patch,
        Verb::Other,
    ];

    pub fn of(method: &http::Method) -> Self {
        match *method {
            http::Method::GET => Verb::Get,
            http::Method::HEAD => Verb::Head,
            http::Method::POST => Verb::Post,
            http::Method::PUT => Verb::Put,
            http::Method::DELETE => Verb::Delete,
            http::Method::CONNECT => Verb::Connect,
            http::Method::OPTIONS => Verb::Options,
            http::Method::TRACE => Verb::Trace,
            http::Method::PATCH => Verb::Patch,
            _ => Verb::Other,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Head => "HEAD",
            Verb::Post => "POST",
            Verb::Put => "PUT",
            Verb::Delete => "DELETE",
            Verb::Connect => "CONNECT",
            Verb::Options => "OPTIONS",
            Verb::Trace => "TRACE",
            Verb::Patch => "PATCH",
            Verb::Other => "OTHER",
        }
    }
}

/// The routes of the TLS port; any other path is `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Mutate,
    Healthz,
    Other,
}

impl Route {
    const ALL: [Route; 3] = [Route::Mutate, Route::Healthz, Route::Other];

    pub fn of(path: &str) -> Self {
        match path {
            "/mutate" => Route::Mutate,
            "/healthz" => Route::Healthz,
            _ => Route::Other,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Route::Mutate => "/mutate",
            Route::Healthz => "/healthz",
            Route::Other => "other",
        }
    }
}

/// Why a request was answered without being served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// `--max-requests-in-flight` reached: 503 at once.
    InFlight,
    /// The request timeout expired (while reading the body, waiting for memory or a review thread, or reviewing).
    Timeout,
}

impl Shed {
    const ALL: [Shed; 2] = [Shed::InFlight, Shed::Timeout];

    fn label(self) -> &'static str {
        match self {
            Shed::InFlight => "in_flight_limit",
            Shed::Timeout => "timeout",
        }
    }
}

/// The two listening ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortName {
    Https,
    Metrics,
}

impl PortName {
    const ALL: [PortName; 2] = [PortName::Https, PortName::Metrics];

    pub fn label(self) -> &'static str {
        match self {
            PortName::Https => "https",
            PortName::Metrics => "metrics",
        }
    }
}

/// Why the server closed a connection (a client closing its own is `peer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The client closed it, or it ended normally.
    Peer,
    /// TLS handshake failed or took longer than `--tls-handshake-timeout`.
    Handshake,
    /// No complete request within `--header-read-timeout` of the connection or of its first byte.
    HeaderRead,
    /// No request in flight for `--idle-timeout`.
    Idle,
    /// Older than `--max-connection-age`.
    MaxAge,
    /// Evicted to make room for a new connection at `--max-connections`.
    Evicted,
    /// Server shutdown.
    Shutdown,
    /// Did not finish within the grace given after a graceful close.
    Forced,
}

impl Closed {
    const ALL: [Closed; 8] = [
        Closed::Evicted,
        Closed::Forced,
        Closed::Handshake,
        Closed::HeaderRead,
        Closed::Idle,
        Closed::MaxAge,
        Closed::Peer,
        Closed::Shutdown,
    ];

    fn label(self) -> &'static str {
        match self {
            Closed::Peer => "peer",
            Closed::Handshake => "handshake",
            Closed::HeaderRead => "header_read",
            Closed::Idle => "idle",
            Closed::MaxAge => "max_age",
            Closed::Evicted => "evicted",
            Closed::Shutdown => "shutdown",
            Closed::Forced => "forced",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }
}

/// The reference's histogram buckets: 125 ms to 8 s, in microseconds (`ExponentialBuckets(125000, 2, 7)`).
const REFERENCE_BUCKETS_US: [u64; 7] = [125_000, 250_000, 500_000, 1_000_000, 2_000_000, 4_000_000, 8_000_000];
/// Our latency buckets, in seconds: the interesting range of a webhook is 100 µs to a few seconds.
const SECONDS_BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
/// Status codes 100..=599, each its own slot: exact `code` labels without a map.
const CODES: usize = 500;

/// One (verb, path) pair: counts per code, and the latency in both units.
struct RequestSeries {
    codes: Box<[AtomicU64]>,
    count: AtomicU64,
    /// Whole microseconds, as the reference sums them.
    sum_us: AtomicU64,
    reference_buckets: [AtomicU64; REFERENCE_BUCKETS_US.len()],
}

impl RequestSeries {
    fn new() -> Self {
        Self {
            codes: (0..CODES).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
            reference_buckets: Default::default(),
        }
    }
}

/// Our seconds-based histogram, per path.
#[derive(Default)]
struct SecondsHistogram {
    buckets: [AtomicU64; SECONDS_BUCKETS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

/// Connection figures of one port.
#[derive(Default)]
pub struct PortMetrics {
    pub open: AtomicI64,
    pub accepted: AtomicU64,
    pub accept_errors: AtomicU64,
    /// The connection cap in force (derived from RLIMIT_NOFILE unless given).
    pub limit: AtomicU64,
    closed: [AtomicU64; Closed::ALL.len()],
}

impl PortMetrics {
    pub fn closed(&self, reason: Closed) {
        self.closed[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn closed_count(&self, reason: Closed) -> u64 {
        self.closed[reason.index()].load(Ordering::Relaxed)
    }
}

pub struct Metrics {
    requests: Box<[RequestSeries]>,
    seconds: [SecondsHistogram; Route::ALL.len()],
    pod_count: [AtomicU64; Method::ALL.len()],
    missing_sa_count: AtomicU64,
    /// The reference sets its gauge to 1 whenever its cache takes in a ServiceAccount, and never back to 0.
    used: AtomicBool,
    shed: [AtomicU64; Shed::ALL.len()],
    pub requests_in_flight: AtomicI64,
    /// Reviews larger than the inline threshold, run on the blocking pool.
    pub reviews_offloaded: AtomicU64,
    /// Bytes of large request bodies holding the memory budget right now.
    pub large_body_bytes: AtomicI64,
    pub pods_over_container_limit: AtomicU64,
    pub ports: [PortMetrics; PortName::ALL.len()],
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            requests: (0..Verb::ALL.len() * Route::ALL.len()).map(|_| RequestSeries::new()).collect(),
            seconds: Default::default(),
            pod_count: Default::default(),
            missing_sa_count: AtomicU64::new(0),
            used: AtomicBool::new(false),
            shed: Default::default(),
            requests_in_flight: AtomicI64::new(0),
            reviews_offloaded: AtomicU64::new(0),
            large_body_bytes: AtomicI64::new(0),
            pods_over_container_limit: AtomicU64::new(0),
            ports: Default::default(),
        })
    }

    fn series(&self, verb: Verb, route: Route) -> &RequestSeries {
        &self.requests[verb as usize * Route::ALL.len() + route as usize]
    }

    /// One answered request, with the status code it was answered with.
    pub fn observe_request(&self, verb: Verb, route: Route, code: u16, elapsed: Duration) {
        let series = self.series(verb, route);
        let slot = usize::from(code.clamp(100, 599) - 100);
        series.codes[slot].fetch_add(1, Ordering::Relaxed);
        // Whole microseconds, as the reference computes `time.Since(start) / time.Microsecond`.
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        series.count.fetch_add(1, Ordering::Relaxed);
        series.sum_us.fetch_add(us, Ordering::Relaxed);
        if let Some(i) = REFERENCE_BUCKETS_US.iter().position(|le| us <= *le) {
            series.reference_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        let seconds = &self.seconds[route as usize];
        let secs = elapsed.as_secs_f64();
        if let Some(i) = SECONDS_BUCKETS.iter().position(|le| secs <= *le) {
            seconds.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        seconds.count.fetch_add(1, Ordering::Relaxed);
        seconds.sum_ns.fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn pod_mutated(&self, method: Method) {
        self.pod_count[method as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn missing_service_account(&self) {
        self.missing_sa_count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn shed(&self, reason: Shed) {
        self.shed[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn port(&self, port: PortName) -> &PortMetrics {
        &self.ports[port as usize]
    }

    /// Requests answered so far with `code` on `route`, all verbs (for tests and the soak).
    pub fn request_count(&self, route: Route, code: u16) -> u64 {
        let slot = usize::from(code.clamp(100, 599) - 100);
        Verb::ALL.iter().map(|v| self.series(*v, route).codes[slot].load(Ordering::Relaxed)).sum()
    }

    /// The text exposition. Store and process figures are sampled now rather than pushed on every change.
    /// Families are written in name order, as the Go client's registry sorts them.
    pub fn render(&self, source: &dyn ServiceAccountSource, cert_not_after: i64, log_lines_dropped: u64) -> String {
        let stats = source.stats();
        if stats.cached > 0 {
            self.used.store(true, Ordering::Relaxed);
        }
        let process = ProcessStats::read();
        let mut out = Text(String::with_capacity(16 * 1024));
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);

        // --- The reference's series (help texts are the reference's own). ---
        out.family(
            "http_request_count",
            "Counter of requests broken out for each verb, path, and response code.",
            "counter",
        );
        for (verb, route, series) in self.each_series() {
            for (slot, count) in series.codes.iter().enumerate() {
                let count = load(count);
                if count > 0 {
                    let code = slot + 100;
                    out.line(format_args!(
                        "http_request_count{{code=\"{code}\",path=\"{}\",verb=\"{}\"}} {}",
                        route.label(),
                        verb.label(),
                        GoFloat(count as f64)
                    ));
                }
            }
        }
        out.family(
            "http_request_duration_microseconds",
            "Response latency summary in microseconds for each verb and path.",
            "summary",
        );
        // A Go summary without objectives (the reference sets none) exposes only its sum and count.
        for (verb, route, series) in self.each_series() {
            let labels = format_args!("path=\"{}\",verb=\"{}\"", route.label(), verb.label()).to_string();
            out.line(format_args!(
                "http_request_duration_microseconds_sum{{{labels}}} {}",
                GoFloat(load(&series.sum_us) as f64)
            ));
            out.line(format_args!("http_request_duration_microseconds_count{{{labels}}} {}", load(&series.count)));
        }
        out.family(
            "http_request_latencies",
            "Response latency distribution in microseconds for each verb and path",
            "histogram",
        );
        for (verb, route, series) in self.each_series() {
            let labels = format_args!("path=\"{}\",verb=\"{}\"", route.label(), verb.label()).to_string();
            let mut cumulative = 0;
            for (le, bucket) in REFERENCE_BUCKETS_US.iter().zip(&series.reference_buckets) {
                cumulative += load(bucket);
                out.line(format_args!(
                    "http_request_latencies_bucket{{{labels},le=\"{}\"}} {cumulative}",
                    GoFloat(*le as f64)
                ));
            }
            let count = load(&series.count);
            out.line(format_args!("http_request_latencies_bucket{{{labels},le=\"+Inf\"}} {count}"));
            out.line(format_args!("http_request_latencies_sum{{{labels}}} {}", GoFloat(load(&series.sum_us) as f64)));
            out.line(format_args!("http_request_latencies_count{{{labels}}} {count}"));
        }

        // --- Ours. ---
        out.family(
            "irsa_webhook_certificate_expiry_timestamp_seconds",
            "Unix time at which the serving certificate expires.",
            "gauge",
        );
        out.line(format_args!("irsa_webhook_certificate_expiry_timestamp_seconds {cert_not_after}"));
        out.family("irsa_webhook_connection_limit", "Open connections allowed per port (--max-connections).", "gauge");
        for port in PortName::ALL {
            let m = self.port(port);
            out.line(format_args!("irsa_webhook_connection_limit{{port=\"{}\"}} {}", port.label(), load(&m.limit)));
        }
        out.family(
            "irsa_webhook_connections_accept_errors_total",
            "accept() failures (e.g. EMFILE), each followed by a back-off.",
            "counter",
        );
        for port in PortName::ALL {
            out.line(format_args!(
                "irsa_webhook_connections_accept_errors_total{{port=\"{}\"}} {}",
                port.label(),
                load(&self.port(port).accept_errors)
            ));
        }
        out.family("irsa_webhook_connections_accepted_total", "Connections accepted.", "counter");
        for port in PortName::ALL {
            out.line(format_args!(
                "irsa_webhook_connections_accepted_total{{port=\"{}\"}} {}",
                port.label(),
                load(&self.port(port).accepted)
            ));
        }
        out.family(
            "irsa_webhook_connections_closed_total",
            "Connections closed, by reason (peer: closed by the client or ended normally; the others by a limit).",
            "counter",
        );
        for port in PortName::ALL {
            for reason in Closed::ALL {
                out.line(format_args!(
                    "irsa_webhook_connections_closed_total{{port=\"{}\",reason=\"{}\"}} {}",
                    port.label(),
                    reason.label(),
                    self.port(port).closed_count(reason)
                ));
            }
        }
        out.family("irsa_webhook_connections_open", "Connections open now.", "gauge");
        for port in PortName::ALL {
            out.line(format_args!(
                "irsa_webhook_connections_open{{port=\"{}\"}} {}",
                port.label(),
                self.port(port).open.load(Ordering::Relaxed)
            ));
        }
        out.family(
            "irsa_webhook_http_request_duration_seconds",
            "Time from the request's arrival to its answer, by path (every verb and code).",
            "histogram",
        );
        for route in Route::ALL {
            let h = &self.seconds[route as usize];
            let mut cumulative = 0;
            for (le, bucket) in SECONDS_BUCKETS.iter().zip(&h.buckets) {
                cumulative += load(bucket);
                out.line(format_args!(
                    "irsa_webhook_http_request_duration_seconds_bucket{{path=\"{}\",le=\"{}\"}} {cumulative}",
                    route.label(),
                    GoFloat(*le)
                ));
            }
            let count = load(&h.count);
            out.line(format_args!(
                "irsa_webhook_http_request_duration_seconds_bucket{{path=\"{}\",le=\"+Inf\"}} {count}",
                route.label()
            ));
            out.line(format_args!(
                "irsa_webhook_http_request_duration_seconds_sum{{path=\"{}\"}} {}",
                route.label(),
                GoFloat(load(&h.sum_ns) as f64 / 1e9)
            ));
            out.line(format_args!(
                "irsa_webhook_http_request_duration_seconds_count{{path=\"{}\"}} {count}",
                route.label()
            ));
        }
        out.family(
            "irsa_webhook_large_body_bytes_in_flight",
            "Bytes of request bodies above the inline threshold holding the memory budget now.",
            "gauge",
        );
        out.line(format_args!(
            "irsa_webhook_large_body_bytes_in_flight {}",
            self.large_body_bytes.load(Ordering::Relaxed)
        ));
        out.family(
            "irsa_webhook_live_lookup_failures_total",
            "Live ServiceAccount lookups that failed (timeout, API error).",
            "counter",
        );
        out.line(format_args!("irsa_webhook_live_lookup_failures_total {}", stats.live_lookup_failures));
        out.family(
            "irsa_webhook_live_lookup_results_total",
            "ServiceAccount lookups that missed the cache, by result: found, not_found, failed, rate_limited (over \
             the live-lookup budget: admitted unmutated with a warning), coalesced (joined one in flight).",
            "counter",
        );
        for (result, n) in [
            ("coalesced", stats.live_lookups_coalesced),
            ("failed", stats.live_lookup_failures),
            ("found", stats.live_lookups_found),
            ("not_found", stats.live_lookups_not_found),
            ("rate_limited", stats.live_lookups_rate_limited),
        ] {
            out.line(format_args!("irsa_webhook_live_lookup_results_total{{result=\"{result}\"}} {n}"));
        }
        out.family(
            "irsa_webhook_live_lookups_total",
            "ServiceAccount lookups that missed the cache and went to the API.",
            "counter",
        );
        out.line(format_args!("irsa_webhook_live_lookups_total {}", stats.live_lookups));
        out.family(
            "irsa_webhook_log_lines_dropped_total",
            "Log lines dropped because the log writer's buffer was full (stderr slower than the log rate).",
            "counter",
        );
        out.line(format_args!("irsa_webhook_log_lines_dropped_total {log_lines_dropped}"));
        out.family(
            "irsa_webhook_pods_over_container_limit_total",
            "Pods admitted unmutated because they have more containers than the limit.",
            "counter",
        );
        out.line(format_args!(
            "irsa_webhook_pods_over_container_limit_total {}",
            load(&self.pods_over_container_limit)
        ));
        out.family("irsa_webhook_requests_in_flight", "Requests on /mutate being served now.", "gauge");
        out.line(format_args!("irsa_webhook_requests_in_flight {}", self.requests_in_flight.load(Ordering::Relaxed)));
        out.family(
            "irsa_webhook_requests_shed_total",
            "Requests on /mutate answered 503 without a review: in_flight_limit (--max-requests-in-flight) or \
             timeout (--request-timeout).",
            "counter",
        );
        for reason in Shed::ALL {
            out.line(format_args!(
                "irsa_webhook_requests_shed_total{{reason=\"{}\"}} {}",
                reason.label(),
                load(&self.shed[reason as usize])
            ));
        }
        out.family(
            "irsa_webhook_reviews_offloaded_total",
            "Reviews whose body was above the inline threshold, run on the blocking pool.",
            "counter",
        );
        out.line(format_args!("irsa_webhook_reviews_offloaded_total {}", load(&self.reviews_offloaded)));
        out.family("irsa_webhook_service_accounts_cached", "ServiceAccounts held in the cache.", "gauge");
        out.line(format_args!("irsa_webhook_service_accounts_cached {}", stats.cached));
        out.family(
            "irsa_webhook_watched_file_rejected_versions_total",
            "Versions of a watched file (--watch-container-credentials-config, --tls-cert/--tls-key) that did not \
             parse; the last good version stays in use.",
            "counter",
        );
        out.line(format_args!(
            "irsa_webhook_watched_file_rejected_versions_total {}",
            crate::store::watched_file::rejected_versions_total()
        ));

        // --- The reference's own counters, then the process (names of the Go client's process collector). ---
        out.family(
            "pod_identity_webhook_missing_sa_count",
            "Service account did not have the right annotations or was not found in the cache.",
            "counter",
        );
        out.line(format_args!(
            "pod_identity_webhook_missing_sa_count {}",
            GoFloat(load(&self.missing_sa_count) as f64)
        ));
        out.family(
            "pod_identity_webhook_pod_count",
            "Indicator to how many pods are using sts web identity or container credentials",
            "counter",
        );
        for method in Method::ALL {
            out.line(format_args!(
                "pod_identity_webhook_pod_count{{method=\"{}\"}} {}",
                method.label(),
                GoFloat(load(&self.pod_count[method as usize]) as f64)
            ));
        }
        out.family("pod_identity_webhook_used", "Indicator to know pod identity webhook is used", "gauge");
        out.line(format_args!("pod_identity_webhook_used {}", u8::from(self.used.load(Ordering::Relaxed))));
        if let Some(p) = process {
            out.family("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", "counter");
            out.line(format_args!("process_cpu_seconds_total {}", GoFloat(p.cpu_seconds)));
            out.family("process_max_fds", "Maximum number of open file descriptors.", "gauge");
            out.line(format_args!("process_max_fds {}", GoFloat(p.max_fds as f64)));
            out.family("process_open_fds", "Number of open file descriptors.", "gauge");
            out.line(format_args!("process_open_fds {}", GoFloat(p.open_fds as f64)));
            out.family("process_resident_memory_bytes", "Resident memory size in bytes.", "gauge");
            out.line(format_args!("process_resident_memory_bytes {}", GoFloat(p.resident_bytes as f64)));
            out.family("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", "gauge");
            out.line(format_args!("process_start_time_seconds {}", GoFloat(p.start_time_seconds)));
            out.family("process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge");
            out.line(format_args!("process_virtual_memory_bytes {}", GoFloat(p.virtual_bytes as f64)));
        }
        out.0
    }

    /// The (verb, path) pairs that have seen a request: the Go client shows a labelled series once it is used.
    fn each_series(&self) -> impl Iterator<Item = (Verb, Route, &RequestSeries)> {
        // Sorted as the Go client sorts series: by label values in label-name order (path, then verb).
        Route::ALL
            .into_iter()
            .flat_map(|route| Verb::ALL.into_iter().map(move |verb| (verb, route)))
            .map(|(verb, route)| (verb, route, self.series(verb, route)))
            .filter(|(_, _, s)| s.count.load(Ordering::Relaxed) > 0)
    }
}

/// The exposition being written. Writing to a `String` cannot fail.
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn line(&mut self, line: std::fmt::Arguments<'_>) {
        let _ = self.0.write_fmt(line);
        self.0.push('\n');
    }
}

/// A sample value as the Go client writes it: `strconv.FormatFloat(v, 'g', -1, 64)`, i.e. the shortest digits
/// that round-trip, in exponent form (`1e+06`, `1.5e-05`) when the exponent is below -4 or at least 6.
pub struct GoFloat(pub f64);

impl std::fmt::Display for GoFloat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.0;
        if v.is_nan() {
            return f.write_str("NaN");
        }
        if v.is_infinite() {
            return f.write_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        }
        if v == 0.0 {
            return f.write_str("0");
        }
        // Rust's `{:e}` gives the same shortest round-trip digits as Go, as `d.ddde<exp>`.
        let mut buf = [0u8; 40];
        let mut cursor = std::io::Cursor::new(&mut buf[..]);
        std::io::Write::write_fmt(&mut cursor, format_args!("{v:e}")).map_err(|_| std::fmt::Error)?;
        let len = usize::try_from(cursor.position()).map_err(|_| std::fmt::Error)?;
        let sci = std::str::from_utf8(&buf[..len]).map_err(|_| std::fmt::Error)?;
        let (mantissa, exp) = sci.split_once('e').ok_or(std::fmt::Error)?;
        let exp: i32 = exp.parse().map_err(|_| std::fmt::Error)?;
        if !(-4..6).contains(&exp) {
            let sign = if exp < 0 { '-' } else { '+' };
            write!(f, "{mantissa}e{sign}{:02}", exp.unsigned_abs())
        } else {
            write!(f, "{v}")
        }
    }
}

/// What the Go client's process collector reports, read from /proc.
struct ProcessStats {
    cpu_seconds: f64,
    start_time_seconds: f64,
    resident_bytes: u64,
    virtual_bytes: u64,
    open_fds: u64,
    max_fds: u64,
}

impl ProcessStats {
    #[cfg(target_os = "linux")]
    fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name is in parentheses and may contain spaces: fields are counted after the last ')'.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        // Field numbers of proc(5), minus 3 (pid and comm are before the ')', and `state` is fields[0]).
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        // SAFETY: sysconf only reads a system constant.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        // SAFETY: as above.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse::<u64>().ok()))?;
        Some(Self {
            cpu_seconds: (field(14)? + field(15)?) as f64 / ticks,
            start_time_seconds: boot as f64 + field(22)? as f64 / ticks,
            virtual_bytes: field(23)?,
            resident_bytes: field(24)? * page,
            open_fds: std::fs::read_dir("/proc/self/fd").ok()?.count() as u64,
            max_fds: super::limits::open_files_limit().unwrap_or(0),
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn read() -> Option<Self> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::ServiceAccountRef;
    use crate::store::{Lookup, SourceStats};
    use futures::future::BoxFuture;

    struct Source(u64);
    impl ServiceAccountSource for Source {
        fn lookup<'a>(&'a self, _: &'a ServiceAccountRef) -> BoxFuture<'a, Lookup> {
            Box::pin(async { Lookup::NotFound })
        }
        fn is_ready(&self) -> bool {
            true
        }
        fn stats(&self) -> SourceStats {
            SourceStats {
                cached: self.0,
                live_lookups: 3,
                live_lookup_failures: 1,
                live_lookups_found: 2,
                live_lookups_rate_limited: 4,
                ..SourceStats::default()
            }
        }
    }

    #[test]
    fn floats_are_written_as_go_writes_them() {
        let cases = [
            (125000.0, "125000"),
            (250000.0, "250000"),
            (1e6, "1e+06"),
            (8e6, "8e+06"),
            (1234567.0, "1.234567e+06"),
            (999999.0, "999999"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.000015, "1.5e-05"),
            (0.25, "0.25"),
            (2.5, "2.5"),
            (1.0, "1"),
            (0.0, "0"),
            (42.0, "42"),
            (-3.0, "-3"),
            (1e21, "1e+21"),
        ];
        for (v, want) in cases {
            assert_eq!(GoFloat(v).to_string(), want, "{v}");
        }
    }

    #[test]
    fn reference_series_have_the_reference_names_labels_and_units() {
        let m = Metrics::new();
        m.observe_request(Verb::Post, Route::Mutate, 200, Duration::from_micros(300_000));
        m.observe_request(Verb::Post, Route::Mutate, 200, Duration::from_micros(100));
        m.observe_request(Verb::Post, Route::Mutate, 503, Duration::from_secs(9));
        m.pod_mutated(Method::StsWebIdentity);
        m.missing_service_account();
        let text = m.render(&Source(0), 1_700_000_000, 0);
        for line in [
            "# TYPE http_request_count counter",
            "http_request_count{code=\"200\",path=\"/mutate\",verb=\"POST\"} 2",
            "http_request_count{code=\"503\",path=\"/mutate\",verb=\"POST\"} 1",
            "# TYPE http_request_latencies histogram",
            "http_request_latencies_bucket{path=\"/mutate\",verb=\"POST\",le=\"125000\"} 1",
            "http_request_latencies_bucket{path=\"/mutate\",verb=\"POST\",le=\"500000\"} 2",
            "http_request_latencies_bucket{path=\"/mutate\",verb=\"POST\",le=\"8e+06\"} 2",
            "http_request_latencies_bucket{path=\"/mutate\",verb=\"POST\",le=\"+Inf\"} 3",
            "http_request_latencies_sum{path=\"/mutate\",verb=\"POST\"} 9.3001e+06",
            "http_request_latencies_count{path=\"/mutate\",verb=\"POST\"} 3",
            "# TYPE http_request_duration_microseconds summary",
            "http_request_duration_microseconds_sum{path=\"/mutate\",verb=\"POST\"} 9.3001e+06",
            "http_request_duration_microseconds_count{path=\"/mutate\",verb=\"POST\"} 3",
            "pod_identity_webhook_pod_count{method=\"sts_web_identity\"} 1",
            "pod_identity_webhook_pod_count{method=\"container_credentials\"} 0",
            "pod_identity_webhook_missing_sa_count 1",
            "# TYPE pod_identity_webhook_used gauge",
            "pod_identity_webhook_used 0",
            "irsa_webhook_live_lookups_total 3",
            "irsa_webhook_live_lookup_results_total{result=\"found\"} 2",
            "irsa_webhook_live_lookup_results_total{result=\"rate_limited\"} 4",
            "irsa_webhook_certificate_expiry_timestamp_seconds 1700000000",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("quantile"), "the reference's summary has no objectives");
        assert!(!text.contains("verb=\"GET\""), "unused series are not shown");
        // `used` follows the reference: 1 once a ServiceAccount was cached, and it stays 1.
        assert!(m.render(&Source(5), 0, 0).lines().any(|l| l == "pod_identity_webhook_used 1"));
        assert!(m.render(&Source(0), 0, 0).lines().any(|l| l == "pod_identity_webhook_used 1"));
    }

    #[test]
    fn families_are_sorted_by_name_and_declared_once() {
        let m = Metrics::new();
        m.observe_request(Verb::Get, Route::Healthz, 200, Duration::from_millis(1));
        let text = m.render(&Source(1), 0, 0);
        let names: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        // Every sample belongs to the family declared above it.
        let mut family = "";
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split(' ').next().unwrap_or_default();
            } else if !line.starts_with('#') {
                assert!(line.starts_with(family), "{line} outside {family}");
            }
        }
    }

    #[test]
    fn every_code_and_extension_method_keeps_a_fixed_slot() {
        let m = Metrics::new();
        let custom = http::Method::from_bytes(b"BREW").unwrap();
        m.observe_request(Verb::of(&custom), Route::of("/x"), 418, Duration::ZERO);
        m.observe_request(Verb::Post, Route::Mutate, 999, Duration::ZERO);
        let text = m.render(&Source(0), 0, 0);
        assert!(text.contains("http_request_count{code=\"418\",path=\"other\",verb=\"OTHER\"} 1"), "{text}");
        assert_eq!(m.request_count(Route::Mutate, 599), 1, "out-of-range codes are clamped, never a panic");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_metrics_come_from_proc() {
        let text = Metrics::new().render(&Source(0), 0, 0);
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("{name} in {text}"))
        };
        assert!(value("process_resident_memory_bytes") > 1e6);
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_start_time_seconds") > 1.6e9);
    }
}
