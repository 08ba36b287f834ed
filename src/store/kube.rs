//! ServiceAccounts from the API server: a metadata-only watch over all namespaces that keeps, per ServiceAccount,
//! only its resolved [`ServiceAccountConfig`] — never whole objects. A miss waits a short grace period for the watch
//! to deliver, then asks the API directly through [`live`](super::live)'s bounded lookups (shared per
//! ServiceAccount, misses remembered briefly, rate-limited).
//!
//! The event-applying state machine ([`KubeSource::apply`]) is separate from the watch task, and the API side of a
//! live lookup sits behind [`ServiceAccountApi`], so both are tested without a cluster.
//!
//! The initial list is paged ([`LIST_PAGE_SIZE`]) and metadata-only, decoded into [`ServiceAccountMeta`] (name,
//! namespace, resourceVersion, annotations; the rest skipped unparsed), and applied a page at a time under one lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use ::kube::api::Api;
use ::kube::runtime::watcher::{self, Event};
use ::kube::runtime::WatchStreamExt;
use ::kube::Client;
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::live::{lock, LiveCounters, NegativeCache, TokenBucket, NEGATIVE_CACHE_CAPACITY};
pub use super::live::{
    Annotations, KubeApi, LiveAnswer, LiveLookupError, RateLimit, ServiceAccountApi, ServiceAccountMeta,
    DEFAULT_LIVE_LOOKUP_BURST, DEFAULT_LIVE_LOOKUP_RATE, DEFAULT_LIVE_LOOKUP_TIMEOUT, DEFAULT_NEGATIVE_CACHE_TTL,
};
use super::{Lookup, ServiceAccountSource, SourceStats};
use crate::identity::{ServiceAccountConfig, ServiceAccountRef};
use crate::settings::MutationSettings;

/// `--service-account-lookup-grace-period` when the caller has no opinion, as the flag's text
/// ([`crate::const_duration`]) and as a `Duration`.
pub const DEFAULT_GRACE_PERIOD_TEXT: &str = "100ms";
pub const DEFAULT_GRACE_PERIOD: Duration = crate::const_duration::parse(DEFAULT_GRACE_PERIOD_TEXT);
/// ServiceAccounts per page of the initial list (and of every re-list). Each page is one request the watcher waits
/// for before asking the next, so pages of client-go's 500 make 200 round trips for 100k ServiceAccounts; 5,000
/// make 20, while a page (about 2 MB of metadata JSON, decoded one page at a time) stays small next to the cache.
pub const LIST_PAGE_SIZE: u32 = 5000;

/// The time budget and limits of a lookup that misses the cache.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timings {
    /// How long to wait for the watch to deliver a missing ServiceAccount before asking the API.
    pub grace: Duration,
    pub live_timeout: Duration,
    pub negative_ttl: Duration,
    /// New live lookups allowed (coalesced ones and cache hits are free).
    pub rate_limit: RateLimit,
}

impl Timings {
    pub fn with_grace(grace: Duration) -> Self {
        Self { grace, ..Self::default() }
    }
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            grace: DEFAULT_GRACE_PERIOD,
            live_timeout: DEFAULT_LIVE_LOOKUP_TIMEOUT,
            negative_ttl: DEFAULT_NEGATIVE_CACHE_TTL,
            rate_limit: RateLimit::default(),
        }
    }
}

/// ServiceAccount configs by `"namespace/name"`. One boxed key per ServiceAccount: interning namespaces would cost a
/// 16-byte `Arc<str>` per entry plus a table, about what typical namespace text costs, so one string is as small
/// and simpler. Neither part can contain `/`, so the key is unambiguous.
#[derive(Debug, Default)]
struct Index(HashMap<Box<str>, Arc<ServiceAccountConfig>>);

impl Index {
    fn with_capacity(capacity: usize) -> Self {
        Self(HashMap::with_capacity(capacity))
    }

    fn get(&self, key: &str) -> Option<&Arc<ServiceAccountConfig>> {
        self.0.get(key)
    }

    fn insert(&mut self, key: &str, config: Arc<ServiceAccountConfig>) {
        // Updates keep the existing key allocation.
        match self.0.get_mut(key) {
            Some(slot) => *slot = config,
            None => {
                self.0.insert(Box::from(key), config);
            }
        }
    }

    fn remove(&mut self, key: &str) {
        self.0.remove(key);
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

#[derive(Debug, Default)]
struct Indexes {
    /// What lookups are answered from.
    current: Index,
    /// A re-list in progress (between `Init` and `InitDone`); it replaces `current` when done, so ServiceAccounts
    /// deleted while the watch was down disappear. Newer than `current`, so lookups look here first.
    pending: Option<Index>,
    /// ServiceAccounts the watch deleted while a live lookup of them was in flight, with the deletion's
    /// resourceVersion: an answer older than that must not put the ServiceAccount back in the cache. At most one
    /// entry per lookup in flight; each lookup removes its own when it ends.
    deleted_during_lookup: HashMap<Box<str>, Option<u64>>,
}

type LiveRequest = Shared<BoxFuture<'static, Lookup>>;

/// Everything the watch task, live-lookup tasks and lookups share.
struct State {
    settings: Arc<MutationSettings>,
    /// Handed out for every ServiceAccount whose annotations say nothing to us (most of them): one allocation.
    empty: Arc<ServiceAccountConfig>,
    indexes: RwLock<Indexes>,
    ready: AtomicBool,
    /// Bumped after every applied batch of events, so a lookup waiting out the grace period wakes as soon as the
    /// watch delivers.
    changes: watch::Sender<u64>,
    /// ServiceAccounts the API said do not exist, until when.
    missing: NegativeCache,
    /// Live lookups in flight; concurrent lookups of one ServiceAccount await the same request. Lock order:
    /// `indexes`, then `inflight`.
    inflight: Mutex<HashMap<ServiceAccountRef, LiveRequest>>,
    bucket: TokenBucket,
    counters: LiveCounters,
}

fn key(namespace: &str, name: &str) -> String {
    let mut key = String::with_capacity(namespace.len() + 1 + name.len());
    key.push_str(namespace);
    key.push('/');
    key.push_str(name);
    key
}

/// A resourceVersion as a number, for ordering. Kubernetes calls them opaque; every API server stores etcd's
/// revision there, and a value that does not parse is treated as "cannot tell", which keeps the safe side.
fn revision(resource_version: Option<&str>) -> Option<u64> {
    resource_version.and_then(|v| v.parse().ok())
}

impl State {
    fn new(settings: Arc<MutationSettings>, timings: &Timings) -> Self {
        Self {
            settings,
            empty: Arc::new(ServiceAccountConfig::default()),
            indexes: RwLock::default(),
            ready: AtomicBool::new(false),
            changes: watch::Sender::new(0),
            missing: NegativeCache::new(timings.negative_ttl, NEGATIVE_CACHE_CAPACITY),
            inflight: Mutex::default(),
            bucket: TokenBucket::new(timings.rate_limit),
            counters: LiveCounters::default(),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Indexes> {
        self.indexes.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Indexes> {
        self.indexes.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The config to keep for a ServiceAccount with these annotations.
    fn config(&self, namespace: &str, name: &str, annotations: Option<&Annotations>) -> Arc<ServiceAccountConfig> {
        let Some(annotations) = annotations.filter(|a| !a.is_empty()) else {
            return Arc::clone(&self.empty);
        };
        let sa = ServiceAccountRef::new(namespace, name);
        let pairs = annotations.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let config = ServiceAccountConfig::from_annotations(&sa, pairs, &self.settings);
        if config == *self.empty {
            Arc::clone(&self.empty)
        } else {
            Arc::new(config)
        }
    }

    fn ingest(&self, meta: &ObjectMeta) -> Option<(String, Arc<ServiceAccountConfig>)> {
        let (Some(namespace), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) else {
            tracing::debug!("ignoring a ServiceAccount event without namespace or name");
            return None;
        };
        Some((key(namespace, name), self.config(namespace, name, meta.annotations.as_ref())))
    }

    /// Applies events in order under one lock, then wakes lookups waiting for the watch once. The resolved
    /// configs are computed before the lock is taken, so lookups wait only for the map updates.
    fn apply_all(&self, events: impl IntoIterator<Item = Event<ObjectMeta>>) {
        let mut done = false;
        let resolved: Vec<_> = events
            .into_iter()
            .map(|event| match event {
                Event::Apply(meta) => Change::Apply(self.ingest(&meta)),
                Event::InitApply(meta) => Change::InitApply(self.ingest(&meta)),
                Event::Delete(meta) => Change::Delete(Deleted::of(&meta)),
                Event::Init => Change::Init,
                Event::InitDone => {
                    done = true;
                    Change::InitDone
                }
            })
            .collect();
        {
            let mut indexes = self.write();
            for change in resolved {
                self.apply_change(&mut indexes, change);
            }
        }
        if done {
            self.ready.store(true, Ordering::Release);
        }
        self.changes.send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    fn apply_change(&self, indexes: &mut Indexes, change: Change) {
        match change {
            Change::Apply(Some((key, config))) => indexes.current.insert(&key, config),
            Change::InitApply(Some((key, config))) => {
                indexes.pending.get_or_insert_with(Index::default).insert(&key, config)
            }
            Change::Apply(None) | Change::InitApply(None) => {}
            Change::Delete(None) => {}
            Change::Delete(Some(Deleted { key, sa, deleted_at })) => {
                indexes.current.remove(&key);
                if let Some(pending) = &mut indexes.pending {
                    pending.remove(&key);
                }
                // A live lookup of it may be waiting for an answer read before this deletion.
                if lock(&self.inflight).contains_key(&sa) {
                    indexes.deleted_during_lookup.insert(key.into_boxed_str(), deleted_at);
                }
            }
            Change::Init => {
                let capacity = indexes.current.len();
                indexes.pending = Some(Index::with_capacity(capacity));
            }
            Change::InitDone => {
                if let Some(pending) = indexes.pending.take() {
                    indexes.current = pending;
                }
            }
        }
    }

    fn cached(&self, key: &str) -> Option<Arc<ServiceAccountConfig>> {
        let indexes = self.read();
        indexes.pending.as_ref().and_then(|p| p.get(key)).or_else(|| indexes.current.get(key)).cloned()
    }

    /// Ends the live lookup of `sa`: caches what it found unless the watch knows better — it delivered the
    /// ServiceAccount meanwhile (its version is at least as new), or deleted it after the answer was read — and
    /// forgets the lookup. Returns what the lookup answers its callers.
    fn finish_live(&self, sa: &ServiceAccountRef, found: Option<&LiveAnswer>) -> Option<Arc<ServiceAccountConfig>> {
        let key = key(&sa.namespace, &sa.name);
        let mut indexes = self.write();
        let deleted_at = indexes.deleted_during_lookup.remove(key.as_str());
        lock(&self.inflight).remove(sa);
        let answer = found?;
        if let Some(known) = indexes.pending.as_ref().and_then(|p| p.get(&key)).or_else(|| indexes.current.get(&key)) {
            return Some(Arc::clone(known));
        }
        let config = self.config(&sa.namespace, &sa.name, Some(&answer.annotations));
        let newer_than_the_deletion = match deleted_at {
            None => true,
            Some(deleted_at) => matches!(
                (revision(answer.resource_version.as_deref()), deleted_at),
                (Some(read_at), Some(deleted_at)) if read_at > deleted_at
            ),
        };
        if newer_than_the_deletion {
            indexes.current.insert(&key, Arc::clone(&config));
        } else {
            tracing::debug!(service_account = %sa, "live answer predates a deletion the watch delivered; not cached");
        }
        Some(config)
    }
}

/// An event with its config resolved, ready to apply under the lock.
enum Change {
    Apply(Option<(String, Arc<ServiceAccountConfig>)>),
    InitApply(Option<(String, Arc<ServiceAccountConfig>)>),
    Delete(Option<Deleted>),
    Init,
    InitDone,
}

/// What a deletion needs: the key, the ServiceAccount (to find a live lookup of it) and the deletion's revision.
struct Deleted {
    key: String,
    sa: ServiceAccountRef,
    deleted_at: Option<u64>,
}

impl Deleted {
    fn of(meta: &ObjectMeta) -> Option<Self> {
        let (Some(namespace), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) else {
            tracing::debug!("ignoring a ServiceAccount deletion without namespace or name");
            return None;
        };
        Some(Self {
            key: key(namespace, name),
            sa: ServiceAccountRef::new(namespace, name),
            deleted_at: revision(meta.resource_version.as_deref()),
        })
    }
}

/// The ServiceAccount store. Cheap to query from many requests at once.
pub struct KubeSource {
    state: Arc<State>,
    api: Arc<dyn ServiceAccountApi>,
    timings: Timings,
    watch_task: Option<AbortHandle>,
}

impl KubeSource {
    /// Watches all ServiceAccounts of the cluster. Must be called inside a Tokio runtime (it spawns the watch).
    pub fn start(client: Client, settings: Arc<MutationSettings>, grace: Duration) -> Arc<Self> {
        Self::start_with(client, settings, Timings::with_grace(grace))
    }

    ///
    /// On glibc this also pins malloc's mmap threshold for the whole process ([`return_page_buffers_to_the_os`]).
    pub fn start_with(client: Client, settings: Arc<MutationSettings>, timings: Timings) -> Arc<Self> {
        return_page_buffers_to_the_os();
        let mut source = Self::with_api(Arc::new(KubeApi::new(client.clone())), settings, timings);
        let task = tokio::spawn(watch_service_accounts(client, Arc::clone(&source.state)));
        source.watch_task = Some(task.abort_handle());
        Arc::new(source)
    }

    /// A store without a watch: events come from [`KubeSource::apply`], live lookups from `api`. For tests, and
    /// for anyone who brings their own event stream.
    pub fn with_api(api: Arc<dyn ServiceAccountApi>, settings: Arc<MutationSettings>, timings: Timings) -> Self {
        Self { state: Arc::new(State::new(settings, &timings)), api, timings, watch_task: None }
    }

    /// Applies one watch event. `InitDone` replaces the whole state with what was listed since `Init`.
    pub fn apply(&self, event: Event<ObjectMeta>) {
        self.state.apply_all(vec![event]);
    }

    /// Applies events in order, under one lock (the watch hands over a page of the initial list at a time).
    pub fn apply_all(&self, events: Vec<Event<ObjectMeta>>) {
        self.state.apply_all(events);
    }

    async fn find(&self, sa: &ServiceAccountRef) -> Lookup {
        if let Some(found) = self.at_hand(sa) {
            return found;
        }
        let key = key(&sa.namespace, &sa.name);
        if !self.timings.grace.is_zero() {
            // Subscribe, then look again: an event applied in between is seen either way.
            let mut changes = self.state.changes.subscribe();
            let deadline = Instant::now() + self.timings.grace;
            loop {
                if let Some(config) = self.state.cached(&key) {
                    return Lookup::Found(config);
                }
                match tokio::time::timeout_at(deadline, changes.changed()).await {
                    Ok(Ok(())) => continue,
                    Ok(Err(_)) | Err(_) => break,
                }
            }
        }
        if self.state.missing.contains(sa) {
            return Lookup::NotFound;
        }
        self.live(sa).await
    }

    async fn live(&self, sa: &ServiceAccountRef) -> Lookup {
        let request = {
            let mut inflight = lock(&self.state.inflight);
            match inflight.get(sa) {
                Some(request) => {
                    LiveCounters::count(&self.state.counters.coalesced);
                    request.clone()
                }
                None if !self.state.bucket.try_take() => {
                    drop(inflight);
                    LiveCounters::count(&self.state.counters.rate_limited);
                    let limit = self.state.bucket.limit();
                    tracing::debug!(service_account = %sa, "live lookup rate-limited");
                    return Lookup::Unavailable(format!(
                        "ServiceAccount {sa} is not in the cache yet and live lookups are over their limit ({}/s, \
                         burst {})",
                        limit.per_second, limit.burst
                    ));
                }
                None => {
                    // A task, not a future polled by the first caller: it finishes (and fills the cache) even if
                    // that caller's request is cancelled, and later callers never inherit a half-spent timeout.
                    let task = tokio::spawn(live_lookup(
                        Arc::clone(&self.state),
                        Arc::clone(&self.api),
                        sa.clone(),
                        self.timings,
                    ));
                    let request = async move {
                        task.await.unwrap_or_else(|error| {
                            Lookup::Unavailable(LiveLookupError::Task(error.to_string()).to_string())
                        })
                    }
                    .boxed()
                    .shared();
                    inflight.insert(sa.clone(), request.clone());
                    request
                }
            }
        };
        request.await
    }
}

impl Drop for KubeSource {
    fn drop(&mut self) {
        if let Some(task) = &self.watch_task {
            task.abort();
        }
    }
}

impl ServiceAccountSource for KubeSource {
    fn lookup<'a>(&'a self, sa: &'a ServiceAccountRef) -> BoxFuture<'a, Lookup> {
        Box::pin(self.find(sa))
    }

    /// A cache hit; a miss waits for the watch or asks the API (`lookup`).
    fn at_hand(&self, sa: &ServiceAccountRef) -> Option<Lookup> {
        self.state.cached(&key(&sa.namespace, &sa.name)).map(Lookup::Found)
    }

    fn is_ready(&self) -> bool {
        self.state.ready.load(Ordering::Acquire)
    }

    fn stats(&self) -> SourceStats {
        SourceStats { cached: self.state.read().current.len() as u64, ..self.state.counters.stats() }
    }
}

async fn live_lookup(
    state: Arc<State>,
    api: Arc<dyn ServiceAccountApi>,
    sa: ServiceAccountRef,
    timings: Timings,
) -> Lookup {
    let answer = match tokio::time::timeout(timings.live_timeout, api.get(&sa)).await {
        Ok(answer) => answer,
        Err(_) => Err(LiveLookupError::Timeout(timings.live_timeout)),
    };
    if matches!(answer, Ok(None)) {
        // Before the lookup is forgotten, so a lookup right behind it finds the miss remembered.
        state.missing.insert(sa.clone());
    }
    let found = answer.as_ref().ok().and_then(Option::as_ref);
    let config = state.finish_live(&sa, found);
    match (answer, config) {
        (Ok(Some(_)), Some(config)) => {
            LiveCounters::count(&state.counters.found);
            tracing::debug!(service_account = %sa, "ServiceAccount found by a live lookup");
            Lookup::Found(config)
        }
        (Ok(_), _) => {
            LiveCounters::count(&state.counters.not_found);
            tracing::debug!(service_account = %sa, "ServiceAccount does not exist");
            Lookup::NotFound
        }
        (Err(error), _) => {
            LiveCounters::count(&state.counters.failed);
            tracing::warn!(service_account = %sa, %error, "live ServiceAccount lookup failed");
            Lookup::Unavailable(format!("ServiceAccount {sa} is not in the cache and looking it up failed: {error}"))
        }
    }
}

/// glibc raises its mmap threshold each time a mapped block is freed, so after the first page of the initial list
/// every later page body and page-sized list (a few MB with [`LIST_PAGE_SIZE`]) is carved from the heap, between
/// the cache entries made from it, and stays there as free but unreturnable memory: with 100k ServiceAccounts
/// that held RSS 40 % above what the cache needs (42 MB against 30 MB, measured with `MALLOC_MMAP_THRESHOLD_`).
/// Pinning the threshold at glibc's default (128 KiB) keeps such buffers mapped and unmapped on free. The cost is
/// a map and unmap per allocation above 128 KiB, which on the request path only a review larger than that pays.
/// musl (the container image) always maps large blocks; elsewhere this does nothing.
pub fn return_page_buffers_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// `M_MMAP_THRESHOLD` of glibc's <malloc.h>.
        const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
        unsafe extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        // SAFETY: mallopt only changes a malloc tuning value; any value is valid and it may be called at any time.
        let set = unsafe { mallopt(M_MMAP_THRESHOLD, 128 * 1024) };
        if set != 1 {
            tracing::debug!("malloc refused to pin its mmap threshold");
        }
    }
}

fn metadata_of(event: Event<ServiceAccountMeta>) -> Event<ObjectMeta> {
    match event {
        Event::Apply(object) => Event::Apply(object.metadata),
        Event::Delete(object) => Event::Delete(object.metadata),
        Event::Init => Event::Init,
        Event::InitApply(object) => Event::InitApply(object.metadata),
        Event::InitDone => Event::InitDone,
    }
}

/// Runs for the life of the source. Errors are retried with kube's default backoff (client-go's parameters); the
/// cache keeps serving what it has meanwhile.
async fn watch_service_accounts(client: Client, state: Arc<State>) {
    let api = Api::<ServiceAccountMeta>::all(client);
    let config = watcher::Config::default().page_size(LIST_PAGE_SIZE);
    // The watcher yields a listed page's objects one by one without waiting; `ready_chunks` hands them over
    // together (up to a page), so the store takes its lock and wakes waiting lookups once per page.
    let mut events = watcher::watcher(api, config).default_backoff().ready_chunks(LIST_PAGE_SIZE as usize).boxed();
    let mut synced = false;
    while let Some(batch) = events.next().await {
        let done = batch.iter().any(|event| matches!(event, Ok(Event::InitDone)));
        // Converted as they are applied: no second page-sized list of events.
        state.apply_all(batch.into_iter().filter_map(|event| match event {
            Ok(event) => Some(metadata_of(event)),
            Err(error) => {
                tracing::warn!(%error, "ServiceAccount watch failed; retrying, serving from the cache meanwhile");
                None
            }
        }));
        if done && !synced {
            synced = true;
            let cached = state.read().current.len();
            tracing::info!(cached, "ServiceAccount cache synced");
        }
    }
    tracing::warn!("ServiceAccount watch ended; the cache is no longer updated");
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tokio::sync::Semaphore;

    use super::*;

    const ROLE: &str = "arn:aws:iam::111122223333:role/r";

    /// Counts calls; answers from a map; optionally holds every answer until released.
    #[derive(Default)]
    struct FakeApi {
        calls: AtomicUsize,
        service_accounts: Mutex<HashMap<ServiceAccountRef, LiveAnswer>>,
        /// Answers wait for a permit, so a test decides when the API "responds".
        gate: Option<Arc<Semaphore>>,
        hang: bool,
        fail: bool,
    }

    impl FakeApi {
        fn with(sa: &ServiceAccountRef, annotations: &[(&str, &str)]) -> Self {
            let fake = Self::default();
            fake.set(sa, annotations, None);
            fake
        }

        fn set(&self, sa: &ServiceAccountRef, annotations: &[(&str, &str)], resource_version: Option<&str>) {
            let annotations = annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            let answer = LiveAnswer { annotations, resource_version: resource_version.map(str::to_owned) };
            lock(&self.service_accounts).insert(sa.clone(), answer);
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    impl ServiceAccountApi for FakeApi {
        fn get(&self, sa: &ServiceAccountRef) -> BoxFuture<'static, Result<Option<LiveAnswer>, LiveLookupError>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let answer = lock(&self.service_accounts).get(sa).cloned();
            let (gate, hang, fail) = (self.gate.clone(), self.hang, self.fail);
            Box::pin(async move {
                if let Some(gate) = gate {
                    let _permit = gate.acquire().await;
                }
                if hang {
                    futures::future::pending::<()>().await;
                }
                if fail {
                    return Err(LiveLookupError::Api("boom".into()));
                }
                Ok(answer)
            })
        }
    }

    fn meta(namespace: &str, name: &str, annotations: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            namespace: Some(namespace.into()),
            name: Some(name.into()),
            annotations: (!annotations.is_empty())
                .then(|| annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..ObjectMeta::default()
        }
    }

    fn source(api: FakeApi, timings: Timings) -> (Arc<KubeSource>, Arc<FakeApi>) {
        let api = Arc::new(api);
        let dyn_api: Arc<dyn ServiceAccountApi> = api.clone();
        (Arc::new(KubeSource::with_api(dyn_api, Arc::new(MutationSettings::default()), timings)), api)
    }

    fn fast() -> Timings {
        Timings {
            grace: Duration::ZERO,
            live_timeout: Duration::from_secs(5),
            negative_ttl: Duration::from_secs(60),
            rate_limit: RateLimit::default(),
        }
    }

    fn sa(namespace: &str, name: &str) -> ServiceAccountRef {
        ServiceAccountRef::new(namespace, name)
    }

    fn role_of(lookup: &Lookup) -> Option<&str> {
        match lookup {
            Lookup::Found(config) => config.role_arn.as_deref(),
            _ => None,
        }
    }

    #[tokio::test]
    async fn keeps_resolved_configs_and_shares_the_empty_one() {
        let (source, api) = source(FakeApi::default(), fast());
        source.apply(Event::Init);
        source.apply(Event::InitApply(meta("a", "plain", &[])));
        source.apply(Event::InitApply(meta(
            "a",
            "other",
            &[("kubectl.kubernetes.io/last-applied-configuration", "{}")],
        )));
        source.apply(Event::InitApply(meta("b", "role", &[("eks.amazonaws.com/role-arn", ROLE)])));
        assert!(!source.is_ready(), "not ready before the initial list is complete");
        source.apply(Event::InitDone);
        assert!(source.is_ready());
        assert_eq!(source.stats().cached, 3);

        let Lookup::Found(plain) = source.lookup(&sa("a", "plain")).await else { panic!("plain not found") };
        let Lookup::Found(other) = source.lookup(&sa("a", "other")).await else { panic!("other not found") };
        assert!(Arc::ptr_eq(&plain, &other), "ServiceAccounts without our annotations share one config");
        assert!(Arc::ptr_eq(&plain, &source.state.empty));
        assert_eq!(role_of(&source.lookup(&sa("b", "role")).await), Some(ROLE));
        assert_eq!(api.calls(), 0, "hits never reach the API");
    }

    #[tokio::test]
    async fn apply_and_delete_update_the_cache() {
        let (source, _) = source(FakeApi::default(), fast());
        source.apply(Event::Init);
        source.apply(Event::InitDone);
        source.apply(Event::Apply(meta("n", "s", &[])));
        assert_eq!(role_of(&source.lookup(&sa("n", "s")).await), None);
        source.apply(Event::Apply(meta("n", "s", &[("eks.amazonaws.com/role-arn", ROLE)])));
        assert_eq!(role_of(&source.lookup(&sa("n", "s")).await), Some(ROLE));
        assert_eq!(source.at_hand(&sa("n", "s")), Some(source.lookup(&sa("n", "s")).await), "a hit is at hand");
        source.apply(Event::Delete(meta("n", "s", &[])));
        assert_eq!(source.stats().cached, 0);
        assert_eq!(source.at_hand(&sa("n", "s")), None, "a miss asks the API");
        assert_eq!(source.lookup(&sa("n", "s")).await, Lookup::NotFound);
    }

    #[tokio::test]
    async fn relist_replaces_the_state_and_serves_the_old_one_meanwhile() {
        let (source, _) = source(FakeApi::default(), fast());
        source.apply(Event::Init);
        source.apply(Event::InitApply(meta("n", "kept", &[])));
        source.apply(Event::InitApply(meta("n", "deleted-while-away", &[])));
        source.apply(Event::InitDone);

        // The watch reconnects; the re-list no longer has one of them.
        source.apply(Event::Init);
        source.apply(Event::InitApply(meta("n", "kept", &[("eks.amazonaws.com/role-arn", ROLE)])));
        assert!(matches!(source.lookup(&sa("n", "deleted-while-away")).await, Lookup::Found(_)));
        assert_eq!(role_of(&source.lookup(&sa("n", "kept")).await), Some(ROLE), "the re-list is newer");
        source.apply(Event::InitApply(meta("n", "new", &[])));
        source.apply(Event::InitDone);

        assert_eq!(source.stats().cached, 2);
        assert_eq!(source.lookup(&sa("n", "deleted-while-away")).await, Lookup::NotFound);
        assert!(matches!(source.lookup(&sa("n", "new")).await, Lookup::Found(_)));
    }

    #[tokio::test]
    async fn a_miss_is_looked_up_live_and_cached() {
        let target = sa("n", "fresh");
        let (source, api) = source(FakeApi::with(&target, &[("eks.amazonaws.com/role-arn", ROLE)]), fast());
        assert_eq!(role_of(&source.lookup(&target).await), Some(ROLE));
        assert_eq!(role_of(&source.lookup(&target).await), Some(ROLE));
        assert_eq!(api.calls(), 1, "the live hit was cached");
        let expected = SourceStats { cached: 1, live_lookups: 1, live_lookups_found: 1, ..SourceStats::default() };
        assert_eq!(source.stats(), expected);
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_request() {
        // A missing ServiceAccount and no memory of misses: only sharing can keep this to one request.
        let gate = Arc::new(Semaphore::new(0));
        let api = FakeApi { gate: Some(Arc::clone(&gate)), ..FakeApi::default() };
        let (source, api) = source(api, Timings { negative_ttl: Duration::ZERO, ..fast() });
        let lookups: Vec<_> = (0..50)
            .map(|_| {
                let source = Arc::clone(&source);
                tokio::spawn(async move { source.lookup(&sa("n", "missing")).await })
            })
            .collect();
        // Let every lookup reach the in-flight request before the API answers.
        tokio::time::sleep(Duration::from_millis(50)).await;
        gate.add_permits(1);
        for lookup in lookups {
            assert!(matches!(lookup.await, Ok(Lookup::NotFound)));
        }
        assert_eq!(api.calls(), 1);
        let stats = source.stats();
        assert_eq!((stats.live_lookups, stats.live_lookups_not_found, stats.live_lookups_coalesced), (1, 1, 49));
        assert_eq!(source.lookup(&sa("n", "missing")).await, Lookup::NotFound);
        assert_eq!(api.calls(), 2, "with no memory of misses, a later lookup asks again");
    }

    #[tokio::test]
    async fn misses_are_remembered_briefly() {
        let timings = Timings { negative_ttl: Duration::from_millis(200), ..fast() };
        let (source, api) = source(FakeApi::default(), timings);
        let missing = sa("n", "missing");
        for _ in 0..20 {
            assert_eq!(source.lookup(&missing).await, Lookup::NotFound);
        }
        assert_eq!(api.calls(), 1, "a storm of pods for a missing ServiceAccount costs one request");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(source.lookup(&missing).await, Lookup::NotFound);
        assert_eq!(api.calls(), 2, "the memory of a miss expires");
    }

    #[tokio::test]
    async fn the_watch_beats_the_memory_of_a_miss() {
        let (source, _) = source(FakeApi::default(), fast());
        let target = sa("n", "late");
        assert_eq!(source.lookup(&target).await, Lookup::NotFound);
        source.apply(Event::Apply(meta("n", "late", &[("eks.amazonaws.com/role-arn", ROLE)])));
        assert_eq!(role_of(&source.lookup(&target).await), Some(ROLE));
    }

    #[tokio::test]
    async fn failures_and_timeouts_are_unavailable_and_counted() {
        let timings = Timings { live_timeout: Duration::from_millis(50), ..fast() };
        let (hanging, _) = source(FakeApi { hang: true, ..FakeApi::default() }, timings);
        let answer = hanging.lookup(&sa("n", "s")).await;
        assert!(matches!(&answer, Lookup::Unavailable(m) if m.contains("did not answer")), "{answer:?}");
        let (failing, api) = source(FakeApi { fail: true, ..FakeApi::default() }, timings);
        assert!(matches!(failing.lookup(&sa("n", "s")).await, Lookup::Unavailable(m) if m.contains("boom")));
        assert!(matches!(failing.lookup(&sa("n", "s")).await, Lookup::Unavailable(_)));
        assert_eq!(api.calls(), 2, "failures are not remembered: the next pod tries again");
        assert_eq!(failing.stats().live_lookup_failures, 2);
        assert_eq!(failing.stats().live_lookups, 2);
        assert_eq!(hanging.stats().live_lookup_failures, 1);
    }

    #[tokio::test]
    async fn the_grace_period_ends_as_soon_as_the_watch_delivers() {
        let timings = Timings { grace: Duration::from_secs(30), ..fast() };
        let (source, api) = source(FakeApi::default(), timings);
        let waiting = {
            let source = Arc::clone(&source);
            tokio::spawn(async move { source.lookup(&sa("n", "new")).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let started = std::time::Instant::now();
        source.apply(Event::Apply(meta("n", "unrelated", &[])));
        source.apply(Event::Apply(meta("n", "new", &[("eks.amazonaws.com/role-arn", ROLE)])));
        let answer = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(matches!(answer, Ok(Ok(Lookup::Found(c))) if c.role_arn.as_deref() == Some(ROLE)));
        assert_eq!(api.calls(), 0, "the watch delivered within the grace period");
    }

    #[tokio::test]
    async fn after_the_grace_period_the_api_is_asked() {
        let timings = Timings { grace: Duration::from_millis(30), ..fast() };
        let (source, api) = source(FakeApi::with(&sa("n", "s"), &[]), timings);
        let started = std::time::Instant::now();
        assert!(matches!(source.lookup(&sa("n", "s")).await, Lookup::Found(_)));
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert_eq!(api.calls(), 1);
    }

    #[tokio::test]
    async fn a_live_hit_does_not_overwrite_what_the_watch_delivered() {
        let target = sa("n", "s");
        let gate = Arc::new(Semaphore::new(0));
        let api = FakeApi { gate: Some(Arc::clone(&gate)), ..FakeApi::with(&target, &[]) };
        let (source, _) = source(api, fast());
        let waiting = {
            let (source, target) = (Arc::clone(&source), target.clone());
            tokio::spawn(async move { source.lookup(&target).await })
        };
        while lock(&source.state.inflight).is_empty() {
            tokio::task::yield_now().await;
        }
        source.apply(Event::Apply(meta("n", "s", &[("eks.amazonaws.com/role-arn", ROLE)])));
        gate.add_permits(1);
        assert!(matches!(waiting.await, Ok(Lookup::Found(c)) if c.role_arn.as_deref() == Some(ROLE)));
        assert_eq!(role_of(&source.lookup(&target).await), Some(ROLE));
    }

    #[tokio::test]
    async fn events_without_a_name_are_ignored() {
        let (source, _) = source(FakeApi::default(), fast());
        source.apply(Event::Apply(ObjectMeta::default()));
        assert_eq!(source.stats().cached, 0);
    }

    /// A lookup of `target` that is waiting for the API's answer (released through the returned gate).
    async fn lookup_in_flight(source: &Arc<KubeSource>, target: &ServiceAccountRef) -> tokio::task::JoinHandle<Lookup> {
        let waiting = {
            let (source, target) = (Arc::clone(source), target.clone());
            tokio::spawn(async move { source.lookup(&target).await })
        };
        while lock(&source.state.inflight).is_empty() {
            tokio::task::yield_now().await;
        }
        waiting
    }

    fn with_version(namespace: &str, name: &str, resource_version: &str) -> ObjectMeta {
        ObjectMeta { resource_version: Some(resource_version.into()), ..meta(namespace, name, &[]) }
    }

    #[tokio::test]
    async fn a_live_answer_read_before_a_deletion_is_not_cached_after_it() {
        let target = sa("n", "s");
        let gate = Arc::new(Semaphore::new(0));
        let api = FakeApi { gate: Some(Arc::clone(&gate)), ..FakeApi::default() };
        api.set(&target, &[("eks.amazonaws.com/role-arn", ROLE)], Some("5"));
        let (source, api) = source(api, fast());
        let waiting = lookup_in_flight(&source, &target).await;
        // The API read version 5; the watch then delivers the deletion (version 10) before the answer lands.
        source.apply(Event::Delete(with_version("n", "s", "10")));
        gate.add_permits(1);
        let answer = waiting.await.unwrap();
        assert_eq!(role_of(&answer), Some(ROLE), "the pod that asked gets what the API said");
        assert_eq!(source.stats().cached, 0, "the deleted ServiceAccount is not put back");
        assert!(source.state.read().deleted_during_lookup.is_empty(), "the lookup's tombstone is gone with it");
        lock(&api.service_accounts).clear();
        gate.add_permits(1);
        assert_eq!(source.lookup(&target).await, Lookup::NotFound, "the next pod asks again");
        assert_eq!(api.calls(), 2);
    }

    #[tokio::test]
    async fn a_live_answer_newer_than_the_deletion_is_cached() {
        // Deleted (version 10) and created again (version 12) while the lookup was in flight: the answer is the
        // new ServiceAccount, and the watch's Apply for it may still be on its way.
        let target = sa("n", "s");
        let gate = Arc::new(Semaphore::new(0));
        let api = FakeApi { gate: Some(Arc::clone(&gate)), ..FakeApi::default() };
        api.set(&target, &[("eks.amazonaws.com/role-arn", ROLE)], Some("12"));
        let (source, _) = source(api, fast());
        let waiting = lookup_in_flight(&source, &target).await;
        source.apply(Event::Delete(with_version("n", "s", "10")));
        gate.add_permits(1);
        assert_eq!(role_of(&waiting.await.unwrap()), Some(ROLE));
        assert_eq!(source.stats().cached, 1);
    }

    #[tokio::test]
    async fn without_comparable_versions_the_deletion_wins() {
        let target = sa("n", "s");
        let gate = Arc::new(Semaphore::new(0));
        let api = FakeApi { gate: Some(Arc::clone(&gate)), ..FakeApi::default() };
        api.set(&target, &[], None);
        let (source, _) = source(api, fast());
        let waiting = lookup_in_flight(&source, &target).await;
        source.apply(Event::Delete(with_version("n", "s", "not-a-number")));
        gate.add_permits(1);
        assert!(matches!(waiting.await.unwrap(), Lookup::Found(_)));
        assert_eq!(source.stats().cached, 0);
    }

    #[tokio::test]
    async fn deletions_without_a_lookup_in_flight_leave_no_tombstone() {
        let (source, _) = source(FakeApi::default(), fast());
        source.apply(Event::Apply(meta("n", "s", &[])));
        source.apply(Event::Delete(with_version("n", "s", "3")));
        assert!(source.state.read().deleted_during_lookup.is_empty());
    }

    #[tokio::test]
    async fn new_lookups_beyond_the_rate_limit_are_unavailable_and_counted() {
        let limit = RateLimit { per_second: 0.001, burst: 3 };
        let (source, api) = source(FakeApi::default(), Timings { rate_limit: limit, ..fast() });
        for n in 0..3 {
            assert_eq!(source.lookup(&sa("n", &format!("invented-{n}"))).await, Lookup::NotFound);
        }
        let answer = source.lookup(&sa("n", "invented-3")).await;
        assert!(
            matches!(&answer, Lookup::Unavailable(why) if why.contains("n/invented-3") && why.contains("over their limit")),
            "{answer:?}"
        );
        assert_eq!(api.calls(), 3, "no request beyond the burst");
        // What is cached or remembered costs no token.
        source.apply(Event::Apply(meta("n", "real", &[])));
        assert!(matches!(source.lookup(&sa("n", "real")).await, Lookup::Found(_)));
        assert_eq!(source.lookup(&sa("n", "invented-0")).await, Lookup::NotFound);
        let stats = source.stats();
        assert_eq!((stats.live_lookups_not_found, stats.live_lookups_rate_limited, stats.live_lookups), (3, 1, 3));
    }

    #[tokio::test]
    async fn a_rate_limited_source_still_coalesces_onto_a_lookup_in_flight() {
        let target = sa("n", "s");
        let gate = Arc::new(Semaphore::new(0));
        let api = FakeApi { gate: Some(Arc::clone(&gate)), ..FakeApi::with(&target, &[]) };
        let limit = RateLimit { per_second: 0.001, burst: 1 };
        let (source, api) = source(api, Timings { rate_limit: limit, ..fast() });
        let first = lookup_in_flight(&source, &target).await;
        let second = {
            let (source, target) = (Arc::clone(&source), target.clone());
            tokio::spawn(async move { source.lookup(&target).await })
        };
        while source.stats().live_lookups_coalesced == 0 {
            tokio::task::yield_now().await;
        }
        gate.add_permits(1);
        assert!(matches!(first.await.unwrap(), Lookup::Found(_)));
        assert!(matches!(second.await.unwrap(), Lookup::Found(_)));
        assert_eq!((api.calls(), source.stats().live_lookups_rate_limited), (1, 0));
    }

    #[tokio::test]
    async fn a_page_of_events_is_applied_at_once() {
        let (source, _) = source(FakeApi::default(), fast());
        let mut events = vec![Event::Init];
        events.extend((0..100).map(|n| Event::InitApply(meta("n", &format!("s{n}"), &[]))));
        events.push(Event::InitDone);
        let generation = *source.state.changes.borrow();
        source.apply_all(events);
        assert!(source.is_ready());
        assert_eq!(source.stats().cached, 100);
        assert_eq!(*source.state.changes.borrow(), generation.wrapping_add(1), "waiting lookups are woken once");
    }
}
