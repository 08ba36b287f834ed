//! What the ServiceAccount store costs: bytes kept per cached ServiceAccount, measured with a counting allocator,
//! and the time to apply an initial list of 10k. A separate binary because it replaces the global allocator.
//! `cargo test --release --test store_memory -- --nocapture` prints the numbers.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use irsa_webhook::identity::ServiceAccountRef;
use irsa_webhook::settings::MutationSettings;
use irsa_webhook::store::kube::{Annotations, KubeSource, LiveLookupError, ServiceAccountApi, Timings};
use irsa_webhook::store::ServiceAccountSource;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::watcher::Event;

/// Counts bytes per thread, so tests running in parallel do not see each other's allocations.
struct Counting;

thread_local! {
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn add(delta: isize) {
    // try_with: the allocator may run while this thread's locals are being torn down.
    let _ = LIVE_BYTES.try_with(|b| b.set(b.get() + delta));
}

fn live_bytes() -> isize {
    LIVE_BYTES.with(Cell::get)
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

struct NoApi;

impl ServiceAccountApi for NoApi {
    fn get(&self, _: &ServiceAccountRef) -> BoxFuture<'static, Result<Option<Annotations>, LiveLookupError>> {
        Box::pin(async { Err(LiveLookupError::Api("not used".into())) })
    }
}

const COUNT: usize = 10_000;

fn new_source() -> KubeSource {
    KubeSource::with_api(Arc::new(NoApi), Arc::new(MutationSettings::default()), Timings::default())
}

fn event(i: usize, per_namespace: usize, annotations: &[(&str, &str)]) -> Event<ObjectMeta> {
    Event::InitApply(ObjectMeta {
        namespace: Some(format!("team-{:04}", i / per_namespace)),
        name: Some(format!("workload-{i:05}")),
        annotations: (!annotations.is_empty())
            .then(|| annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()),
        ..ObjectMeta::default()
    })
}

/// Bytes the store keeps per ServiceAccount after an initial list of `COUNT`, `per_namespace` to a namespace. Each
/// event is built and freed inside the measured span, so the difference is what the store holds, including the
/// slack of its hash table.
fn bytes_per_service_account(per_namespace: usize, annotations: &[(&str, &str)]) -> f64 {
    let source = new_source();
    let before = live_bytes();
    source.apply(Event::Init);
    for i in 0..COUNT {
        source.apply(event(i, per_namespace, annotations));
    }
    source.apply(Event::InitDone);
    let kept = live_bytes() - before;
    assert!(source.is_ready());
    assert_eq!(source.stats().cached, COUNT as u64);
    kept as f64 / COUNT as f64
}

/// Time to apply an initial list of `COUNT` already-decoded events, as the watcher hands them over.
fn apply_time(per_namespace: usize, annotations: &[(&str, &str)]) -> Duration {
    let source = new_source();
    let events: Vec<_> = (0..COUNT).map(|i| event(i, per_namespace, annotations)).collect();
    let started = Instant::now();
    source.apply(Event::Init);
    for event in events {
        source.apply(event);
    }
    source.apply(Event::InitDone);
    let elapsed = started.elapsed();
    assert!(source.is_ready());
    elapsed
}

#[test]
fn ten_thousand_service_accounts_without_annotations() {
    for per_namespace in [100, 1] {
        let bytes = bytes_per_service_account(per_namespace, &[]);
        let elapsed = apply_time(per_namespace, &[]);
        println!(
            "{COUNT} ServiceAccounts, {per_namespace} per namespace, no annotations: {bytes:.1} bytes each; \
             {COUNT} InitApply applied in {elapsed:?}"
        );
        assert!(bytes <= 200.0, "{bytes:.1} bytes per cached ServiceAccount is over the 200-byte budget");
        assert!(elapsed < Duration::from_secs(1), "applying {COUNT} InitApply events took {elapsed:?}");
    }
}

#[test]
fn ten_thousand_service_accounts_with_a_role() {
    let role = [("eks.amazonaws.com/role-arn", "arn:aws:iam::111122223333:role/reader")];
    let bytes = bytes_per_service_account(10, &role);
    let elapsed = apply_time(10, &role);
    // Reported, not budgeted: each annotated ServiceAccount has its own config with an owned ARN.
    println!("{COUNT} ServiceAccounts with a role: {bytes:.1} bytes each; {COUNT} InitApply applied in {elapsed:?}");
    assert!(elapsed < Duration::from_secs(1), "applying {COUNT} InitApply events took {elapsed:?}");
}
