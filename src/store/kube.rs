//! ServiceAccounts from the API server: a metadata-only watch over all namespaces that keeps, per ServiceAccount,
//! only its resolved [`ServiceAccountConfig`] — never whole objects. A miss waits a short grace period for the watch
//! to deliver, then asks the API directly; live lookups are shared per ServiceAccount and misses are remembered
//! briefly, so a storm of pods for one ServiceAccount costs one request.
//!
//! The event-applying state machine ([`KubeSource::apply`]) is separate from the watch task, and the API side of a
//! live lookup sits behind [`ServiceAccountApi`], so both are tested without a cluster.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use ::kube::api::{Api, PartialObjectMeta};
use ::kube::runtime::watcher::{self, Event};
use ::kube::runtime::WatchStreamExt;
use ::kube::Client;
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::{Lookup, ServiceAccountSource, SourceStats};
use crate::identity::{ServiceAccountConfig, ServiceAccountRef};
use crate::settings::MutationSettings;

/// How long a pod's admission may wait for the API when the cache misses; the webhook's own timeout is longer.
pub const DEFAULT_LIVE_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a ServiceAccount the API says does not exist is answered from memory.
pub const DEFAULT_NEGATIVE_CACHE_TTL: Duration = Duration::from_secs(5);
/// `--service-account-lookup-grace-period` when the caller has no opinion.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_millis(100);

/// Above this many remembered misses, expired ones are swept on insert, so the map cannot grow without bound.
const NEGATIVE_CACHE_SWEEP_AT: usize = 1024;

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

/// The API side of a live lookup: the annotations of `sa`, or `None` when it does not exist.
pub trait ServiceAccountApi: Send + Sync + 'static {
    fn get(&self, sa: &ServiceAccountRef) -> BoxFuture<'static, Result<Option<Annotations>, LiveLookupError>>;
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
    fn get(&self, sa: &ServiceAccountRef) -> BoxFuture<'static, Result<Option<Annotations>, LiveLookupError>> {
        let api = Api::<ServiceAccount>::namespaced(self.client.clone(), &sa.namespace);
        let name = sa.name.clone();
        Box::pin(async move {
            match api.get_metadata_opt(&name).await {
                Ok(found) => Ok(found.map(|meta| meta.metadata.annotations.unwrap_or_default())),
                Err(error) => Err(LiveLookupError::Api(error.to_string())),
            }
        })
    }
}

/// The time budget of a lookup that misses the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// How long to wait for the watch to deliver a missing ServiceAccount before asking the API.
    pub grace: Duration,
    pub live_timeout: Duration,
    pub negative_ttl: Duration,
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
}

type LiveRequest = Shared<BoxFuture<'static, Lookup>>;

/// Everything the watch task, live-lookup tasks and lookups share.
struct State {
    settings: Arc<MutationSettings>,
    /// Handed out for every ServiceAccount whose annotations say nothing to us (most of them): one allocation.
    empty: Arc<ServiceAccountConfig>,
    indexes: RwLock<Indexes>,
    ready: AtomicBool,
    /// Bumped on every applied event, so a lookup waiting out the grace period wakes as soon as the watch delivers.
    changes: watch::Sender<u64>,
    /// ServiceAccounts the API said do not exist, until when.
    missing: Mutex<HashMap<ServiceAccountRef, Instant>>,
    /// Live lookups in flight; concurrent lookups of one ServiceAccount await the same request.
    inflight: Mutex<HashMap<ServiceAccountRef, LiveRequest>>,
    live_lookups: AtomicU64,
    live_lookup_failures: AtomicU64,
}

fn key(namespace: &str, name: &str) -> String {
    let mut key = String::with_capacity(namespace.len() + 1 + name.len());
    key.push_str(namespace);
    key.push('/');
    key.push_str(name);
    key
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain maps in a usable state; keep serving.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    fn new(settings: Arc<MutationSettings>) -> Self {
        Self {
            settings,
            empty: Arc::new(ServiceAccountConfig::default()),
            indexes: RwLock::default(),
            ready: AtomicBool::new(false),
            changes: watch::Sender::new(0),
            missing: Mutex::default(),
            inflight: Mutex::default(),
            live_lookups: AtomicU64::new(0),
            live_lookup_failures: AtomicU64::new(0),
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

    fn apply(&self, event: Event<ObjectMeta>) {
        match event {
            Event::Apply(meta) => {
                if let Some((key, config)) = self.ingest(&meta) {
                    self.write().current.insert(&key, config);
                }
            }
            Event::Delete(meta) => {
                if let (Some(namespace), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) {
                    self.write().current.remove(&key(namespace, name));
                }
            }
            Event::Init => {
                let mut indexes = self.write();
                let capacity = indexes.current.len();
                indexes.pending = Some(Index::with_capacity(capacity));
            }
            Event::InitApply(meta) => {
                if let Some((key, config)) = self.ingest(&meta) {
                    self.write().pending.get_or_insert_with(Index::default).insert(&key, config);
                }
            }
            Event::InitDone => {
                let mut indexes = self.write();
                if let Some(pending) = indexes.pending.take() {
                    indexes.current = pending;
                }
                drop(indexes);
                self.ready.store(true, Ordering::Release);
            }
        }
        self.changes.send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    fn cached(&self, key: &str) -> Option<Arc<ServiceAccountConfig>> {
        let indexes = self.read();
        indexes.pending.as_ref().and_then(|p| p.get(key)).or_else(|| indexes.current.get(key)).cloned()
    }

    /// Stores what a live lookup found, unless the watch got there first (its version is at least as new).
    fn insert_live(&self, sa: &ServiceAccountRef, annotations: &Annotations) -> Arc<ServiceAccountConfig> {
        let config = self.config(&sa.namespace, &sa.name, Some(annotations));
        let key = key(&sa.namespace, &sa.name);
        let mut indexes = self.write();
        if let Some(known) = indexes.pending.as_ref().and_then(|p| p.get(&key)).or_else(|| indexes.current.get(&key)) {
            return Arc::clone(known);
        }
        indexes.current.insert(&key, Arc::clone(&config));
        config
    }

    fn recently_missing(&self, sa: &ServiceAccountRef) -> bool {
        let mut missing = lock(&self.missing);
        match missing.get(sa) {
            Some(until) if Instant::now() < *until => true,
            Some(_) => {
                missing.remove(sa);
                false
            }
            None => false,
        }
    }

    fn remember_missing(&self, sa: ServiceAccountRef, until: Instant) {
        let mut missing = lock(&self.missing);
        if missing.len() >= NEGATIVE_CACHE_SWEEP_AT {
            let now = Instant::now();
            missing.retain(|_, until| now < *until);
        }
        missing.insert(sa, until);
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

    pub fn start_with(client: Client, settings: Arc<MutationSettings>, timings: Timings) -> Arc<Self> {
        let mut source = Self::with_api(Arc::new(KubeApi::new(client.clone())), settings, timings);
        let task = tokio::spawn(watch_service_accounts(client, Arc::clone(&source.state)));
        source.watch_task = Some(task.abort_handle());
        Arc::new(source)
    }

    /// A store without a watch: events come from [`KubeSource::apply`], live lookups from `api`. For tests, and
    /// for anyone who brings their own event stream.
    pub fn with_api(api: Arc<dyn ServiceAccountApi>, settings: Arc<MutationSettings>, timings: Timings) -> Self {
        Self { state: Arc::new(State::new(settings)), api, timings, watch_task: None }
    }

    /// Applies one watch event. `InitDone` replaces the whole state with what was listed since `Init`.
    pub fn apply(&self, event: Event<ObjectMeta>) {
        self.state.apply(event);
    }

    async fn find(&self, sa: &ServiceAccountRef) -> Lookup {
        let key = key(&sa.namespace, &sa.name);
        if let Some(config) = self.state.cached(&key) {
            return Lookup::Found(config);
        }
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
        if self.state.recently_missing(sa) {
            return Lookup::NotFound;
        }
        self.live(sa).await
    }

    async fn live(&self, sa: &ServiceAccountRef) -> Lookup {
        let request = {
            let mut inflight = lock(&self.state.inflight);
            match inflight.get(sa) {
                Some(request) => request.clone(),
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

    fn is_ready(&self) -> bool {
        self.state.ready.load(Ordering::Acquire)
    }

    fn stats(&self) -> SourceStats {
        SourceStats {
            cached: self.state.read().current.len() as u64,
            live_lookups: self.state.live_lookups.load(Ordering::Relaxed),
            live_lookup_failures: self.state.live_lookup_failures.load(Ordering::Relaxed),
        }
    }
}

async fn live_lookup(
    state: Arc<State>,
    api: Arc<dyn ServiceAccountApi>,
    sa: ServiceAccountRef,
    timings: Timings,
) -> Lookup {
    state.live_lookups.fetch_add(1, Ordering::Relaxed);
    let answer = match tokio::time::timeout(timings.live_timeout, api.get(&sa)).await {
        Ok(answer) => answer,
        Err(_) => Err(LiveLookupError::Timeout(timings.live_timeout)),
    };
    let lookup = match answer {
        Ok(Some(annotations)) => {
            tracing::debug!(service_account = %sa, "ServiceAccount found by a live lookup");
            Lookup::Found(state.insert_live(&sa, &annotations))
        }
        Ok(None) => {
            tracing::debug!(service_account = %sa, "ServiceAccount does not exist");
            state.remember_missing(sa.clone(), Instant::now() + timings.negative_ttl);
            Lookup::NotFound
        }
        Err(error) => {
            state.live_lookup_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(service_account = %sa, %error, "live ServiceAccount lookup failed");
            Lookup::Unavailable(format!("ServiceAccount {sa} is not in the cache and looking it up failed: {error}"))
        }
    };
    lock(&state.inflight).remove(&sa);
    lookup
}

fn metadata_of(event: Event<PartialObjectMeta<ServiceAccount>>) -> Event<ObjectMeta> {
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
    // Metadata only: annotations are all we read, and it spares the API server and us the rest of each object.
    let api = Api::<PartialObjectMeta<ServiceAccount>>::all(client);
    let mut events = watcher::watcher(api, watcher::Config::default()).default_backoff().boxed();
    let mut synced = false;
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                let done = matches!(event, Event::InitDone);
                state.apply(metadata_of(event));
                if done && !synced {
                    synced = true;
                    let cached = state.read().current.len();
                    tracing::info!(cached, "ServiceAccount cache synced");
                }
            }
            Err(error) => {
                tracing::warn!(%error, "ServiceAccount watch failed; retrying, serving from the cache meanwhile")
            }
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
        service_accounts: Mutex<HashMap<ServiceAccountRef, Annotations>>,
        /// Answers wait for a permit, so a test decides when the API "responds".
        gate: Option<Arc<Semaphore>>,
        hang: bool,
        fail: bool,
    }

    impl FakeApi {
        fn with(sa: &ServiceAccountRef, annotations: &[(&str, &str)]) -> Self {
            let fake = Self::default();
            let annotations = annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            lock(&fake.service_accounts).insert(sa.clone(), annotations);
            fake
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    impl ServiceAccountApi for FakeApi {
        fn get(&self, sa: &ServiceAccountRef) -> BoxFuture<'static, Result<Option<Annotations>, LiveLookupError>> {
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
        Timings { grace: Duration::ZERO, live_timeout: Duration::from_secs(5), negative_ttl: Duration::from_secs(60) }
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
        source.apply(Event::Delete(meta("n", "s", &[])));
        assert_eq!(source.stats().cached, 0);
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
        assert_eq!(source.stats(), SourceStats { cached: 1, live_lookups: 1, live_lookup_failures: 0 });
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
        assert_eq!(source.stats().live_lookups, 1);
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
}
