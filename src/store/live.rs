//! Live lookups: asking the API server about a ServiceAccount the watch has not delivered (yet). Anyone who can
//! reach the webhook's port can name any ServiceAccount in a review, so this path is bounded on every side:
//!
//! - **Coalesced:** concurrent lookups of one ServiceAccount await the same request (a Deployment's scale-up of 50
//!   pods for a ServiceAccount the watch has not delivered costs one GET, not 50).
//! - **Remembered misses:** a ServiceAccount the API says does not exist is answered from memory for a few
//!   seconds, in a map with a hard capacity ([`NegativeCache`]).
//! - **Rate-limited:** new requests pass a token bucket ([`RateLimit`]); beyond it the pod is admitted unmutated
//!   with a warning, exactly as when the API does not answer. The watch keeps delivering meanwhile, so a real
//!   ServiceAccount is mutated again as soon as it is cached.
//!
//! Counted by result ([`LiveCounters`]) for `/metrics`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ::kube::api::Api;
use ::kube::core::{NamespaceResourceScope, ObjectMeta, Resource};
use ::kube::Client;
use futures::future::BoxFuture;
use serde::Deserialize;

use super::SourceStats;
use crate::identity::ServiceAccountRef;

/// How long a pod's admission may wait for the API when the cache misses; the webhook's own timeout is longer.
pub const DEFAULT_LIVE_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a ServiceAccount the API says does not exist is answered from memory.
pub const DEFAULT_NEGATIVE_CACHE_TTL: Duration = Duration::from_secs(5);
/// Live lookups per second, sustained. The watch normally delivers a new ServiceAccount within milliseconds, well
/// inside the grace period, so live lookups happen only while it lags (a re-list, an API server restart); 20 a
/// second is far more than a cluster creates new ServiceAccounts and costs the API server nothing noticeable (a
/// metadata-only GET each), while an attacker inventing names gets no more than that out of us.
pub const DEFAULT_LIVE_LOOKUP_RATE: f64 = 20.0;
/// Live lookups allowed at once above the sustained rate. Pods of one ServiceAccount share one lookup, so a burst
/// is made of distinct ServiceAccounts: a `helm install` or `kubectl apply -f dir/` that creates tens of
/// ServiceAccounts with their Deployments while the watch lags. 100 covers the largest charts we know of.
pub const DEFAULT_LIVE_LOOKUP_BURST: u32 = 100;
/// Most misses remembered at once. Every entry comes from a lookup that passed the rate limit, so with the
/// defaults at most burst + rate × TTL = 200 are alive; the cap only matters for a much higher configured rate.
pub const NEGATIVE_CACHE_CAPACITY: usize = 4096;

/// The annotations of a ServiceAccount, as the API returns them.
pub type Annotations = BTreeMap<String, String>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum LiveLookupError {
    #[error("the API server did not answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Api(String),
    #[error("the lookup task stopped: {0}")]
    Task(String),
}

/// What a live lookup learns about a ServiceAccount that exists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveAnswer {
    pub annotations: Annotations,
    /// `metadata.resourceVersion`: tells whether the answer is older than a deletion the watch already applied.
    pub resource_version: Option<String>,
}

/// The API side of a live lookup: `sa`, or `None` when it does not exist.
pub trait ServiceAccountApi: Send + Sync + 'static {
    fn get(&self, sa: &ServiceAccountRef) -> BoxFuture<'static, Result<Option<LiveAnswer>, LiveLookupError>>;
}

/// [`ServiceAccountApi`] against a real API server; asks for metadata only.
pub struct KubeApi {
    client: Client,
}

impl KubeApi {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl ServiceAccountApi for KubeApi {
    fn get(&self, sa: &ServiceAccountRef) -> BoxFuture<'static, Result<Option<LiveAnswer>, LiveLookupError>> {
        let api = Api::<ServiceAccountMeta>::namespaced(self.client.clone(), &sa.namespace);
        let name = sa.name.clone();
        Box::pin(async move {
            match api.get_opt(&name).await {
                Ok(found) => Ok(found.map(|sa| LiveAnswer {
                    annotations: sa.metadata.annotations.unwrap_or_default(),
                    resource_version: sa.metadata.resource_version,
                })),
                Err(error) => Err(LiveLookupError::Api(error.to_string())),
            }
        })
    }
}

/// A ServiceAccount as the store reads it from the API: metadata only (the request asks the API server for
/// `PartialObjectMetadata`), and of that only name, namespace, resourceVersion and annotations. Everything else —
/// `managedFields` above all, a JSON tree per object — is skipped by the parser without being built, so the
/// initial list of 100k ServiceAccounts does no work per object beyond what the store keeps.
#[derive(Debug, Clone, Default)]
pub struct ServiceAccountMeta {
    pub metadata: ObjectMeta,
}

impl<'de> Deserialize<'de> for ServiceAccountMeta {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Object {
            #[serde(default)]
            metadata: Metadata,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase")]
        struct Metadata {
            name: Option<String>,
            namespace: Option<String>,
            resource_version: Option<String>,
            annotations: Option<Annotations>,
        }
        let Object { metadata } = Object::deserialize(deserializer)?;
        Ok(Self {
            metadata: ObjectMeta {
                name: metadata.name,
                namespace: metadata.namespace,
                resource_version: metadata.resource_version,
                annotations: metadata.annotations,
                ..ObjectMeta::default()
            },
        })
    }
}

impl Resource for ServiceAccountMeta {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "ServiceAccount".into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        "serviceaccounts".into()
    }

    /// Metadata-only requests: `Accept: application/json;as=PartialObjectMetadata(List)`.
    fn metadata_api() -> bool {
        true
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// How many new live lookups may start: `per_second` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self { per_second: DEFAULT_LIVE_LOOKUP_RATE, burst: DEFAULT_LIVE_LOOKUP_BURST }
    }
}

/// A token bucket: full (`burst` tokens) at start, refilled at `per_second`, one token per new request.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    limit: RateLimit,
    /// Tokens left and when they were counted.
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    pub(crate) fn new(limit: RateLimit) -> Self {
        Self::new_at(limit, Instant::now())
    }

    fn new_at(limit: RateLimit, now: Instant) -> Self {
        Self { limit, state: Mutex::new((f64::from(limit.burst), now)) }
    }

    pub(crate) fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes a token if one is left; never waits (a pod's admission must not queue behind others' lookups).
    pub(crate) fn try_take(&self) -> bool {
        self.try_take_at(Instant::now())
    }

    fn try_take_at(&self, now: Instant) -> bool {
        let mut state = lock(&self.state);
        let (tokens, counted) = *state;
        let refilled = tokens + now.saturating_duration_since(counted).as_secs_f64() * self.limit.per_second;
        let tokens = refilled.min(f64::from(self.limit.burst));
        if tokens >= 1.0 {
            *state = (tokens - 1.0, now);
            true
        } else {
            *state = (tokens, now);
            false
        }
    }
}

/// ServiceAccounts the API said do not exist, until when; at most `capacity` of them.
#[derive(Debug)]
pub(crate) struct NegativeCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<ServiceAccountRef, Instant>>,
}

impl NegativeCache {
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Self {
        Self { ttl, capacity, entries: Mutex::default() }
    }

    pub(crate) fn contains(&self, sa: &ServiceAccountRef) -> bool {
        self.contains_at(sa, Instant::now())
    }

    fn contains_at(&self, sa: &ServiceAccountRef, now: Instant) -> bool {
        let mut entries = lock(&self.entries);
        match entries.get(sa) {
            Some(until) if now < *until => true,
            Some(_) => {
                entries.remove(sa);
                false
            }
            None => false,
        }
    }

    /// Remembers `sa` for the TTL. When full, expired entries are swept first; if it is still full the miss is
    /// not remembered (the next lookup of it asks again, through the rate limit).
    pub(crate) fn insert(&self, sa: ServiceAccountRef) {
        self.insert_at(sa, Instant::now());
    }

    fn insert_at(&self, sa: ServiceAccountRef, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = lock(&self.entries);
        if entries.len() >= self.capacity && !entries.contains_key(&sa) {
            entries.retain(|_, until| now < *until);
            if entries.len() >= self.capacity {
                tracing::debug!(service_account = %sa, "negative cache full; miss not remembered");
                return;
            }
        }
        entries.insert(sa, now + self.ttl);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.entries).len()
    }
}

/// Live lookups by result.
#[derive(Debug, Default)]
pub(crate) struct LiveCounters {
    pub(crate) found: AtomicU64,
    pub(crate) not_found: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) coalesced: AtomicU64,
}

impl LiveCounters {
    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters into `stats` (whose `cached` the caller fills).
    pub(crate) fn stats(&self) -> SourceStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let (found, not_found, failed) = (get(&self.found), get(&self.not_found), get(&self.failed));
        SourceStats {
            cached: 0,
            live_lookups: found + not_found + failed,
            live_lookup_failures: failed,
            live_lookups_found: found,
            live_lookups_not_found: not_found,
            live_lookups_rate_limited: get(&self.rate_limited),
            live_lookups_coalesced: get(&self.coalesced),
        }
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain maps in a usable state; keep serving.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_the_sustained_rate() {
        let start = Instant::now();
        let bucket = TokenBucket::new_at(RateLimit { per_second: 10.0, burst: 5 }, start);
        assert_eq!((0..20).filter(|_| bucket.try_take_at(start)).count(), 5, "a full bucket gives its burst");
        let later = start + Duration::from_millis(100);
        assert!(bucket.try_take_at(later), "one token back after 1/rate");
        assert!(!bucket.try_take_at(later));
        let much_later = later + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| bucket.try_take_at(much_later)).count(), 5, "refills up to the burst only");
    }

    #[test]
    fn the_negative_cache_expires_and_stays_within_its_capacity() {
        let start = Instant::now();
        let cache = NegativeCache::new(Duration::from_secs(5), 3);
        let sa = |n: usize| ServiceAccountRef::new("ns", format!("sa-{n}"));
        for n in 0..3 {
            cache.insert_at(sa(n), start);
        }
        cache.insert_at(sa(3), start);
        assert_eq!(cache.len(), 3, "full of live entries: the new miss is not remembered");
        assert!(!cache.contains_at(&sa(3), start) && cache.contains_at(&sa(0), start));
        let later = start + Duration::from_secs(6);
        cache.insert_at(sa(4), later);
        assert_eq!(cache.len(), 1, "a full cache sweeps what expired before refusing");
        assert!(cache.contains_at(&sa(4), later) && !cache.contains_at(&sa(1), later));
    }

    #[test]
    fn the_lean_metadata_reads_only_what_the_store_keeps() {
        let json = r#"{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{
            "name":"app","namespace":"team","uid":"u","resourceVersion":"42","creationTimestamp":"2024-01-01T00:00:00Z",
            "labels":{"a":"b"},"annotations":{"eks.amazonaws.com/role-arn":"arn:aws:iam::111122223333:role/r"},
            "managedFields":[{"manager":"kubectl","operation":"Update","fieldsType":"FieldsV1",
                              "fieldsV1":{"f:metadata":{"f:annotations":{".":{}}}}}]}}"#;
        let sa: ServiceAccountMeta = serde_json::from_str(json).unwrap();
        assert_eq!(sa.metadata.name.as_deref(), Some("app"));
        assert_eq!(sa.metadata.namespace.as_deref(), Some("team"));
        assert_eq!(sa.metadata.resource_version.as_deref(), Some("42"));
        assert_eq!(sa.metadata.annotations.unwrap().len(), 1);
        assert!(sa.metadata.managed_fields.is_none() && sa.metadata.labels.is_none() && sa.metadata.uid.is_none());
        assert_eq!(
            ServiceAccountMeta::url_path(&(), Some("team")),
            k8s_openapi::api::core::v1::ServiceAccount::url_path(&(), Some("team"))
        );
    }
}
