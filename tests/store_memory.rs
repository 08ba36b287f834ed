//! What the ServiceAccount store keeps: bytes per cached ServiceAccount, measured with a counting allocator, against
//! a stated budget. A separate binary because it replaces the global allocator. No time is asserted (that is a
//! benchmark's job: `benches/scale.sh` measures the store against a real API server with 100k ServiceAccounts);
//! `cargo test --test store_memory -- --nocapture` prints the numbers.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use irsa_webhook::identity::ServiceAccountRef;
use irsa_webhook::settings::MutationSettings;
use irsa_webhook::store::kube::{KubeSource, LiveAnswer, LiveLookupError, ServiceAccountApi, Timings};
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
    fn get(&self, _: &ServiceAccountRef) -> BoxFuture<'static, Result<Option<LiveAnswer>, LiveLookupError>> {
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

/// Bytes the store keeps per ServiceAccount after an initial list of `COUNT`, `per_namespace` to a namespace, applied
/// a page at a time as the watch does. Each page is built and freed inside the measured span, so the difference is
/// what the store holds, including the slack of its hash table.
fn bytes_per_service_account(per_namespace: usize, annotations: &[(&str, &str)]) -> f64 {
    const PAGE: usize = 500;
    let source = new_source();
    let before = live_bytes();
    source.apply(Event::Init);
    for page in (0..COUNT).collect::<Vec<_>>().chunks(PAGE) {
        source.apply_all(page.iter().map(|&i| event(i, per_namespace, annotations)).collect());
    }
    source.apply(Event::InitDone);
    let kept = live_bytes() - before;
    assert!(source.is_ready());
    assert_eq!(source.stats().cached, COUNT as u64);
    kept as f64 / COUNT as f64
}

/// Within the 300 bytes of RSS per cached ServiceAccount that issue 10 sets for the whole process, the store's own
/// share must leave room for the allocator's overhead and the rest of the process.
const BUDGET_WITHOUT_ANNOTATIONS: f64 = 200.0;

#[test]
fn ten_thousand_service_accounts_without_annotations() {
    for per_namespace in [100, 1] {
        let bytes = bytes_per_service_account(per_namespace, &[]);
        println!("{COUNT} ServiceAccounts, {per_namespace} per namespace, no annotations: {bytes:.1} bytes each");
        assert!(
            bytes <= BUDGET_WITHOUT_ANNOTATIONS,
            "{bytes:.1} bytes per cached ServiceAccount is over the {BUDGET_WITHOUT_ANNOTATIONS}-byte budget"
        );
    }
}

/// An annotated ServiceAccount has its own config with an owned ARN: more than a plain one, still bounded.
const BUDGET_WITH_A_ROLE: f64 = 400.0;

#[test]
fn ten_thousand_service_accounts_with_a_role() {
    let role = [("eks.amazonaws.com/role-arn", "arn:aws:iam::111122223333:role/reader")];
    let bytes = bytes_per_service_account(10, &role);
    println!("{COUNT} ServiceAccounts with a role: {bytes:.1} bytes each");
    assert!(
        bytes <= BUDGET_WITH_A_ROLE,
        "{bytes:.1} bytes per ServiceAccount with a role is over {BUDGET_WITH_A_ROLE}"
    );
}
