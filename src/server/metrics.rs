//! Prometheus metrics. Names follow the reference webhook where it has one, so existing dashboards keep working.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use crate::store::ServiceAccountSource;

/// A counter exposed under its exact name: prometheus-client appends `_total` to counters, which would rename the
/// reference's `pod_identity_webhook_pod_count` and break dashboards. Exposed untyped, as a plain number.
#[derive(Debug, Default, Clone)]
pub struct PlainCounter(Counter<u64, AtomicU64>);

impl PlainCounter {
    pub fn inc(&self) {
        self.0.inc();
    }

    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

impl TypedMetric for PlainCounter {
    const TYPE: MetricType = MetricType::Unknown;
}

impl EncodeMetric for PlainCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&(self.0.get() as i64))
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Unknown
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub path: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabel {
    pub path: String,
}

pub struct Metrics {
    pub registry: Registry,
    pub pod_count: Family<MethodLabel, PlainCounter>,
    pub missing_sa_count: PlainCounter,
    pub request_count: Family<RequestLabels, PlainCounter>,
    pub request_latency: Family<PathLabel, Histogram>,
    pub certificate_expiry: Gauge,
    pub service_accounts_cached: Gauge,
    pub live_lookups: Gauge,
    pub live_lookup_failures: Gauge,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::default();
        let pod_count = Family::<MethodLabel, PlainCounter>::default();
        registry.register("pod_identity_webhook_pod_count", "Pods mutated, by credential method", pod_count.clone());
        let missing_sa_count = PlainCounter::default();
        registry.register(
            "pod_identity_webhook_missing_sa_count",
            "Pods whose ServiceAccount was not found",
            missing_sa_count.clone(),
        );
        let request_count = Family::<RequestLabels, PlainCounter>::default();
        registry.register("http_request_count", "HTTP requests, by path and status code", request_count.clone());
        let request_latency = Family::<PathLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5])
        });
        registry.register(
            "http_request_latencies",
            "HTTP request latency in seconds, by path",
            request_latency.clone(),
        );
        let certificate_expiry = Gauge::default();
        registry.register(
            "irsa_webhook_certificate_expiry_timestamp_seconds",
            "Unix time at which the serving certificate expires",
            certificate_expiry.clone(),
        );
        let service_accounts_cached = Gauge::default();
        registry.register(
            "irsa_webhook_service_accounts_cached",
            "ServiceAccounts held in the cache",
            service_accounts_cached.clone(),
        );
        let live_lookups = Gauge::default();
        registry.register(
            "irsa_webhook_live_lookups",
            "ServiceAccount lookups that missed the cache and went to the API (cumulative)",
            live_lookups.clone(),
        );
        let live_lookup_failures = Gauge::default();
        registry.register(
            "irsa_webhook_live_lookup_failures",
            "Live ServiceAccount lookups that failed (cumulative)",
            live_lookup_failures.clone(),
        );
        Arc::new(Self {
            registry,
            pod_count,
            missing_sa_count,
            request_count,
            request_latency,
            certificate_expiry,
            service_accounts_cached,
            live_lookups,
            live_lookup_failures,
        })
    }

    /// Text exposition; store figures are sampled now rather than pushed on every change.
    pub fn render(&self, source: &dyn ServiceAccountSource, cert_not_after: i64) -> String {
        let stats = source.stats();
        self.service_accounts_cached.set(stats.cached as i64);
        self.live_lookups.set(stats.live_lookups as i64);
        self.live_lookup_failures.set(stats.live_lookup_failures as i64);
        self.certificate_expiry.set(cert_not_after);
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::warn!(%error, "cannot encode metrics");
        }
        text
    }
}
