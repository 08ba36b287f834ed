//! Benchmarks of the mutation core and of the offline pipeline a request takes.
//!
//! cargo bench --bench mutate -- --warm-up-time 1 --measurement-time 3

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use irsa_webhook::commands::mutate::mutate_with_service_accounts;
use irsa_webhook::container_credentials::ContainerCredentialsConfig;
use irsa_webhook::identity::{Credentials, Identity, ServiceAccountRef};
use irsa_webhook::manifest::ServiceAccountManifest;
use irsa_webhook::mutate::mutate_value as mutate;
use irsa_webhook::settings::MutationSettings;
use serde_json::{json, Value};

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

/// A pod as a Deployment makes it: `containers` containers and one init container, each with 5 env vars and
/// 2 mounts, non-root so the fsGroup fix applies.
fn pod(containers: usize) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "web-7d4b9c8f6-",
            "namespace": "default",
            "labels": {"app": "web", "pod-template-hash": "7d4b9c8f6"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c8f6", "uid": "0b0c5c6e-7a43-4d8e-9c1e-0f2f0a6b1d11", "controller": true}],
        },
        "spec": {
            "serviceAccountName": "app",
            "securityContext": {"runAsUser": 1000, "runAsNonRoot": true},
            "initContainers": [container("init", 5, 2)],
            "containers": (0..containers).map(|i| container(&format!("c{i}"), 5, 2)).collect::<Vec<_>>(),
            "volumes": [{"name": "data-0", "emptyDir": {}}, {"name": "data-1", "configMap": {"name": "web"}}],
        },
    })
}

fn identity() -> Identity<'static> {
    Identity {
        service_account: Box::leak(Box::new(ServiceAccountRef::new("default", "app"))),
        credentials: Credentials::WebIdentity { role_arn: "arn:aws:iam::111122223333:role/app" },
        audience: None,
        regional_sts: Some(true),
        token_expiration: None,
        fs_group: None,
    }
}

fn settings() -> MutationSettings {
    MutationSettings { aws_default_region: Some("us-west-2".into()), ..MutationSettings::default() }
}

fn service_accounts() -> HashMap<ServiceAccountRef, ServiceAccountManifest> {
    let sa = json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "app", "namespace": "default", "annotations": {
            "eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/app",
            "eks.amazonaws.com/sts-regional-endpoints": "true",
        }},
    });
    let manifest = ServiceAccountManifest::from_object(&sa).expect("a ServiceAccount");
    HashMap::from([(manifest.reference.clone(), manifest)])
}

fn core(c: &mut Criterion) {
    let identity = identity();
    let settings = settings();
    let mut group = c.benchmark_group("core");
    for (label, containers) in [("typical (2 containers + 1 init)", 2), ("large (20 containers + 1 init)", 20)] {
        let pod = pod(containers);
        assert!(!mutate(&pod, Some(&identity), &settings).unwrap().is_empty());
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("mutate", label), &pod, |b, pod| {
            b.iter(|| mutate(black_box(pod), Some(&identity), &settings).unwrap())
        });
    }
    group.finish();
}

/// What a request does around the core: parse the pod bytes, find the ServiceAccount and resolve the identity,
/// mutate, serialize the patch.
fn pipeline(c: &mut Criterion) {
    let settings = settings();
    let service_accounts = service_accounts();
    let container_credentials = ContainerCredentialsConfig::default();
    let mut group = c.benchmark_group("pipeline");
    for (label, containers) in [("typical (2 containers + 1 init)", 2), ("large (20 containers + 1 init)", 20)] {
        let bytes = serde_json::to_vec(&pod(containers)).unwrap();
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::new("parse+resolve+mutate+serialize", label), &bytes, |b, bytes| {
            b.iter(|| {
                let pod: Value = serde_json::from_slice(black_box(bytes)).unwrap();
                let mutation =
                    mutate_with_service_accounts(&pod, &service_accounts, &container_credentials, &settings).unwrap();
                serde_json::to_vec(&mutation.patch).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, core, pipeline);
criterion_main!(benches);
