//! Benchmarks of the request path: a whole review answered (`Admission::review`: decode, look up, mutate, write the
//! answer) next to the floor — a plain serde_json parse of the same bytes into a `Value` and its serialization —
//! and the mutation core alone.
//!
//! cargo bench --bench mutate -- --warm-up-time 1 --measurement-time 3

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use irsa_webhook::identity::{Credentials, Identity, ServiceAccountRef};
use irsa_webhook::mutate::{mutate, Pod};
use irsa_webhook::settings::MutationSettings;
use serde_json::{json, Value};

mod support;
use support::admission;

/// The two reviews `benches/load.sh` sends: the README's example, and a Deployment's pod as the API server sends
/// it (managedFields, ownerReferences, two containers with probes, resources, ports and ten env vars each, the
/// kube-api-access volume).
const REVIEWS: [(&str, &str); 2] = [
    ("example", include_str!("../examples/admission-review.json")),
    ("deployment", include_str!("../examples/admission-review-deployment.json")),
];

/// Answering a review against the floor of touching its bytes at all with serde_json.
fn review(c: &mut Criterion) {
    let admission = admission();
    let mut group = c.benchmark_group("review");
    for (label, review) in REVIEWS {
        let bytes = review.as_bytes();
        let answered = futures::executor::block_on(admission.review(bytes)).expect("a review");
        assert!(answered.outcome.mutated(), "{label}: {:?}", answered.outcome);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::new("floor: Value parse + serialize", label), bytes, |b, bytes| {
            b.iter(|| {
                let value: Value = serde_json::from_slice(black_box(bytes)).expect("JSON");
                serde_json::to_vec(&value).expect("serializes")
            })
        });
        group.bench_with_input(BenchmarkId::new("Admission::review", label), bytes, |b, bytes| {
            b.iter(|| futures::executor::block_on(admission.review(black_box(bytes))).expect("a review").body)
        });
    }
    group.finish();
}

fn container(name: &str, env: usize, mounts: usize) -> Value {
    json!({
        "name": name,
        "image": "public.ecr.aws/docker/library/busybox:1.36",
        "args": ["sh", "-c", "sleep 3600"],
        "env": (0..env).map(|i| json!({"name": format!("VAR_{i}"), "value": format!("value-{i}")})).collect::<Vec<_>>(),
        "volumeMounts": (0..mounts).map(|i| json!({"name": format!("data-{i}"), "mountPath": format!("/data/{i}")})).collect::<Vec<_>>(),
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5},
    })
}

/// A pod with `containers` containers and one init container, each with 5 env vars and 2 mounts, non-root so
/// the fsGroup fix applies.
fn pod(containers: usize) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "web-7d4b9c8f6-", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "serviceAccountName": "app",
            "securityContext": {"runAsUser": 1000, "runAsNonRoot": true},
            "initContainers": [container("init", 5, 2)],
            "containers": (0..containers).map(|i| container(&format!("c{i}"), 5, 2)).collect::<Vec<_>>(),
            "volumes": [{"name": "data-0", "emptyDir": {}}, {"name": "data-1", "configMap": {"name": "web"}}],
        },
    }))
    .expect("serializes")
}

/// The rules alone: decode the pod bytes, mutate, write the patch.
fn core(c: &mut Criterion) {
    let service_account = ServiceAccountRef::new("default", "app");
    let identity = Identity {
        service_account: &service_account,
        credentials: Credentials::WebIdentity { role_arn: "arn:aws:iam::111122223333:role/app" },
        audience: None,
        regional_sts: Some(true),
        token_expiration: None,
        fs_group: None,
    };
    let settings = MutationSettings { aws_default_region: Some("us-west-2".into()), ..MutationSettings::default() };
    let mut group = c.benchmark_group("core");
    for (label, containers) in [("typical (2 containers + 1 init)", 2), ("large (20 containers + 1 init)", 20)] {
        let bytes = pod(containers);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::new("decode + mutate + write patch", label), &bytes, |b, bytes| {
            b.iter(|| {
                let pod = Pod::from_json(black_box(bytes)).expect("a pod");
                let mutation = mutate(&pod, Some(&identity), &settings).expect("valid");
                let mut patch = Vec::with_capacity(2048);
                mutation.write_patch(&mut patch);
                patch
            })
        });
    }
    group.finish();
}

criterion_group!(benches, review, core);
criterion_main!(benches);
