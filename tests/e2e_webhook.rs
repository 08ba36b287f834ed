//! End-to-end: the `irsa-webhook serve` binary behind a real kube-apiserver (v1.20.2, `tests/e2e/cluster.sh`).
//! Every test creates objects through the API and reads the stored pod back; nothing is mocked.
//!
//! Run: `tests/e2e/cluster.sh start && eval "$(tests/e2e/cluster.sh env)"`, then
//! `cargo test --features e2e --test e2e_webhook -- --test-threads=1`. Without the harness every test fails and
//! says how to start it.
//!
//! Each test works in its own [`Scope`]: unique namespaces, and webhook configurations that only select those
//! namespaces, deleted at the end — the tests share one cluster and run one after another.
//!
//! What 1.20 cannot show, and how it is covered instead (see `newer_pod_fields_survive_and_only_our_additions_are_made`):
//! a 1.20 API server decodes a pod into its own types before admission, so fields it does not know (sidecar
//! `restartPolicy: Always` on an init container, `grpc` probes, `resizePolicy`, `hostUsers`, ...) are gone before
//! any webhook runs — neither our webhook nor a webhook after it can ever see them, and a dry-run with `-o json`
//! shows the same. So survival of such fields is proven one level down: the exact object the API server sent to
//! the webhook chain (recorded by a test webhook placed before ours) gets those fields added back and is sent to
//! the running binary; its patch must leave them untouched.

mod support;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use base64::Engine;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use serde_json::{json, Value};
use support::e2e::*;

fn role(name: &str) -> String {
    format!("arn:aws:iam::111122223333:role/{name}")
}

/// A scope with one namespace, a ServiceAccount `probe` with a role, the webhook binary, and our webhook registered
/// (by URL, customised by `spec`) and seen to take effect.
struct Setup {
    ns: Namespace,
    registration: Registration,
    // Dropped in reverse order: the process, then the scope (which deletes the configuration if still there).
    webhook: WebhookProcess,
    scope: Scope,
}

const PROBE_SA: &str = "probe";

fn probe_role() -> String {
    role("probe")
}

async fn setup(tag: &str, options: WebhookOptions, spec: impl FnOnce(WebhookSpec) -> WebhookSpec) -> Setup {
    let cluster = connect().await;
    let scope = cluster.scope(tag);
    let ns = scope.namespace("app").await;
    ns.service_account_with_role(PROBE_SA, &probe_role()).await;
    let webhook = WebhookProcess::start(options).await;
    let registration = scope.register("irsa", &[spec(WebhookSpec::irsa(&webhook))]).await;
    ns.wait_until_mutated(&pod("probe", PROBE_SA), &probe_role()).await;
    Setup { ns, registration, webhook, scope }
}

/// Scenario 1: a pod of an annotated ServiceAccount is stored with the env vars, the projected token volume
/// (audience, lifetime) and the mounts in every container — the API server applied our patch and the result passed
/// its validation. The ServiceAccount annotations for audience, lifetime and regional STS are honoured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_of_an_annotated_service_account_is_stored_mutated() {
    let s = setup("mut", WebhookOptions::default(), |w| w).await;
    s.ns.service_account_with_role("app", &role("app")).await;

    let mut p = pod("app", "app");
    p["spec"]["initContainers"] = json!([{"name": "init", "image": "busybox"}]);
    p["spec"]["containers"] = json!([{"name": "app", "image": "busybox"}, {"name": "second", "image": "busybox"}]);
    let stored = s.ns.create_pod_ok(&p).await;
    assert_mutated(&stored, &Expected::role(&role("app")));
    // A root pod under --fs-group-fix=auto keeps its security context as it was (none).
    assert_eq!(stored["spec"]["securityContext"], json!({}), "root pod: no fsGroup fix\n{stored:#}");

    s.ns.service_account(
        "tuned",
        &[
            (ROLE_ANNOTATION, &role("tuned")),
            (AUDIENCE_ANNOTATION, "example.com/custom"),
            (TOKEN_EXPIRATION_ANNOTATION, "3600"),
            (STS_REGIONAL_ANNOTATION, "true"),
        ],
    )
    .await;
    let stored = s.ns.create_pod_ok(&pod("tuned", "tuned")).await;
    assert_mutated(
        &stored,
        &Expected {
            audience: "example.com/custom".into(),
            expiration: 3600,
            regional_sts: true,
            ..Expected::role(&role("tuned"))
        },
    );
    s.scope.cleanup().await;
}

/// Scenario 2: pods are stored exactly as without the webhook when their ServiceAccount has no role, when their
/// namespace is excluded (the chart's `kubernetes.io/metadata.name NotIn`; 1.20 does not set that label, the scope
/// does), or when they carry the skip label (the chart's objectSelector). A pod that is none of these, in the
/// same configuration, is mutated (the control).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unannotated_excluded_and_skipped_pods_are_stored_unchanged() {
    let cluster = connect().await;
    let scope = cluster.scope("skip");
    let ns = scope.namespace("app").await;
    let excluded = scope.namespace("excluded").await;
    ns.service_account_with_role("app", &role("app")).await;
    ns.service_account("plain", &[]).await;
    excluded.service_account_with_role("app", &role("app")).await;

    let plain = pod("plain", "plain");
    let in_excluded = pod("in-excluded", "app");
    let mut skipped = pod("skipped", "app");
    skipped["metadata"]["labels"] = json!({SKIP_LABEL: "true"});
    // What the API server stores without any webhook: the baselines.
    let baseline_plain = ns.dry_run_pod(&plain).await.expect("baseline dry-run");
    let baseline_excluded = excluded.dry_run_pod(&in_excluded).await.expect("baseline dry-run");
    let baseline_skipped = ns.dry_run_pod(&skipped).await.expect("baseline dry-run");

    let webhook = WebhookProcess::start(WebhookOptions::default()).await;
    scope.register("irsa", &[WebhookSpec::irsa(&webhook).exclude_namespaces(&[&excluded.name])]).await;
    ns.wait_until_mutated(&pod("probe", "app"), &role("app")).await;

    for (namespace, p, baseline, why) in [
        (&ns, &plain, &baseline_plain, "ServiceAccount without a role"),
        (&excluded, &in_excluded, &baseline_excluded, "namespace excluded by the namespaceSelector"),
        (&ns, &skipped, &baseline_skipped, "pod with the skip label"),
    ] {
        let stored = namespace.create_pod_ok(p).await;
        assert_unmutated(&stored);
        assert_same_pod(&normalize(&stored), &normalize(baseline), why);
    }
    let control = ns.create_pod_ok(&pod("control", "app")).await;
    assert_mutated(&control, &Expected::role(&role("app")));
    scope.cleanup().await;
}

/// Creates `pairs` ServiceAccounts each immediately followed by its pod, then `burst` such pairs at once; returns
/// the pods not mutated with their own ServiceAccount's role.
async fn race(ns: &Namespace, prefix: &str, pairs: usize, burst: usize) -> Vec<String> {
    let mut wrong = Vec::new();
    for i in 0..pairs {
        let sa = format!("{prefix}-{i}");
        ns.service_account_with_role(&sa, &role(&sa)).await;
        let stored = ns.create_pod(&pod(&sa, &sa)).await.unwrap_or_else(|e| panic!("pod {sa} refused: {e}"));
        if role_of(&stored) != Some(role(&sa)) {
            wrong.push(format!("{sa}: AWS_ROLE_ARN {:?}", role_of(&stored)));
        }
    }
    let concurrent: Vec<_> = (0..burst)
        .map(|i| {
            let ns = ns.clone();
            let sa = format!("{prefix}-burst-{i}");
            tokio::spawn(async move {
                ns.service_account_with_role(&sa, &role(&sa)).await;
                let stored = ns.create_pod(&pod(&sa, &sa)).await.unwrap_or_else(|e| panic!("pod {sa} refused: {e}"));
                (role_of(&stored) == Some(role(&sa)), format!("{sa}: AWS_ROLE_ARN {:?}", role_of(&stored)))
            })
        })
        .collect();
    for handle in concurrent {
        let (ok, what) = handle.await.expect("burst task");
        if !ok {
            wrong.push(what);
        }
    }
    wrong
}

async fn live_lookups(webhook: &WebhookProcess) -> f64 {
    let metrics = webhook.metrics().await;
    metric_value(&metrics, "irsa_webhook_live_lookups_total")
        .or_else(|| metric_value(&metrics, "irsa_webhook_live_lookups"))
        .unwrap_or_else(|| panic!("no irsa_webhook_live_lookups in /metrics:\n{metrics}"))
}

/// Scenario 3: a ServiceAccount created immediately before its pod — the watch may not have delivered it yet, the
/// webhook must then look it up live. 20 pairs back to back and 10 pairs at once, every pod mutated with its own
/// role: first with the default `--service-account-lookup-grace-period` (100 ms for the watch to deliver), then
/// with a webhook started with `0s`, where every pod that beats the watch goes straight to the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_created_right_before_its_pod_is_used() {
    let mut s = setup("race", WebhookOptions::default(), |w| w).await;
    let mut wrong = race(&s.ns, "grace", 20, 10).await;
    println!("default grace period: {} live lookups", live_lookups(&s.webhook).await);

    let impatient =
        WebhookProcess::start(WebhookOptions::default().args(["--service-account-lookup-grace-period", "0s"])).await;
    s.registration.update(&s.scope, &[WebhookSpec::irsa(&impatient)]).await;
    // With the first webhook gone and failurePolicy Fail, a mutated dry-run means the new one answers.
    s.webhook.kill();
    s.ns.wait_until_mutated(&pod("probe-impatient", PROBE_SA), &probe_role()).await;
    wrong.extend(race(&s.ns, "nograce", 20, 10).await);
    println!("no grace period: {} live lookups", live_lookups(&impatient).await);

    // The watch always won above (0 live lookups on an idle harness), so make it lose for certain: a webhook whose
    // identity may `get` and `list` ServiceAccounts but not `watch` them syncs once and then never hears of new
    // ones — every pod below must be mutated through a live lookup.
    let kubeconfig = s
        .scope
        .service_account_kubeconfig(
            &s.ns,
            "no-watch",
            json!([{"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get", "list"]}]),
        )
        .await;
    let blind = WebhookProcess::start(WebhookOptions::default().kubeconfig(kubeconfig)).await;
    s.registration.update(&s.scope, &[WebhookSpec::irsa(&blind)]).await;
    drop(impatient);
    s.ns.wait_until_mutated(&pod("probe-blind", PROBE_SA), &probe_role()).await;
    let before = live_lookups(&blind).await;
    wrong.extend(race(&s.ns, "live", 20, 10).await);
    let live = live_lookups(&blind).await - before;
    println!("watch denied: {live} live lookups");
    assert!(live >= 30.0, "only {live} live lookups for 30 pods of ServiceAccounts the watch never delivered");

    assert!(
        wrong.is_empty(),
        "pods created right after their ServiceAccount were not mutated with its role:\n{}",
        wrong.join("\n")
    );
    // The stored objects, not just the create answers.
    for name in ["grace-0", "grace-19", "nograce-0", "nograce-burst-9", "live-0", "live-burst-9"] {
        assert_mutated(&s.ns.get_pod(name).await, &Expected::role(&role(name)));
    }
    s.scope.cleanup().await;
}

/// Scenario 4: changing a ServiceAccount's role changes what new pods get; removing it stops the mutation. The
/// webhook learns of the change through its watch, so a pod created in the same instant may still get the old
/// role; the test waits (bounded) for the new one and then requires it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_changes_reach_new_pods() {
    let s = setup("change", WebhookOptions::default(), |w| w).await;
    s.ns.service_account_with_role("app", &role("first")).await;
    assert_mutated(&s.ns.create_pod_ok(&pod("first", "app")).await, &Expected::role(&role("first")));

    s.ns.annotate_service_account("app", &[(ROLE_ANNOTATION, Some(&role("second")))]).await;
    let changed_at = Instant::now();
    let immediate = s.ns.create_pod(&pod("immediate", "app")).await.expect("pod right after the change");
    println!("pod created right after the role change got {:?}", role_of(&immediate));
    s.ns.wait_until_mutated(&pod("probe-second", "app"), &role("second")).await;
    println!("new role served {:?} after the change", changed_at.elapsed());
    assert_mutated(&s.ns.create_pod_ok(&pod("second", "app")).await, &Expected::role(&role("second")));

    s.ns.annotate_service_account("app", &[(ROLE_ANNOTATION, None)]).await;
    s.ns.wait_until_unmutated(&pod("probe-none", "app")).await;
    assert_unmutated(&s.ns.create_pod_ok(&pod("none", "app")).await);
    s.scope.cleanup().await;
}

/// Scenario 5: the fsGroup fix. A non-root pod without fsGroup gets one (its runAsGroup, else 65534) and
/// `fsGroupChangePolicy: OnRootMismatch` (beta and on by default in 1.20, so the API server keeps it); a pod with
/// its own fsGroup keeps it untouched; a root pod gets none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_root_pods_get_an_fs_group_and_existing_ones_are_kept() {
    let s = setup("fsgroup", WebhookOptions::default(), |w| w).await;
    s.ns.service_account_with_role("app", &role("app")).await;
    let expected = Expected::role(&role("app"));
    let cases = [
        (
            "nobody",
            json!({"runAsUser": 65534}),
            None,
            json!({"runAsUser": 65534, "fsGroup": 65534, "fsGroupChangePolicy": "OnRootMismatch"}),
        ),
        (
            "with-group",
            json!({"runAsUser": 1000, "runAsGroup": 3000}),
            None,
            json!({"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 3000, "fsGroupChangePolicy": "OnRootMismatch"}),
        ),
        (
            "container-user",
            json!({}),
            Some(json!({"runAsUser": 1001})),
            json!({"fsGroup": 65534, "fsGroupChangePolicy": "OnRootMismatch"}),
        ),
        ("own-fsgroup", json!({"runAsUser": 1000, "fsGroup": 2000}), None, json!({"runAsUser": 1000, "fsGroup": 2000})),
        ("root", json!({}), None, json!({})),
    ];
    let mut failures = Vec::new();
    for (name, pod_context, container_context, want) in cases {
        let mut p = pod(name, "app");
        p["spec"]["securityContext"] = pod_context;
        if let Some(context) = container_context {
            p["spec"]["containers"][0]["securityContext"] = context;
        }
        let stored = s.ns.create_pod_ok(&p).await;
        assert_mutated(&stored, &expected);
        if stored["spec"]["securityContext"] != want {
            failures.push(format!("{name}: want securityContext {want}, stored {}", stored["spec"]["securityContext"]));
        }
    }
    assert!(failures.is_empty(), "fsGroup fix:\n{}", failures.join("\n"));
    s.scope.cleanup().await;
}

/// Fields a 1.20 API server does not know (1.23-1.29 additions).
fn add_newer_fields(pod: &mut Value) {
    pod["spec"]["initContainers"][0]["restartPolicy"] = json!("Always");
    pod["spec"]["containers"][0]["startupProbe"] =
        json!({"grpc": {"port": 9000, "service": "health"}, "periodSeconds": 5});
    pod["spec"]["containers"][0]["resizePolicy"] = json!([{"resourceName": "cpu", "restartPolicy": "NotRequired"}]);
    pod["spec"]["hostUsers"] = json!(false);
    pod["spec"]["schedulingGates"] = json!([{"name": "example.com/gate"}]);
}

fn newer_fields(pod: &Value) -> Value {
    json!([
        pod["spec"]["initContainers"][0]["restartPolicy"],
        pod["spec"]["containers"][0]["startupProbe"],
        pod["spec"]["containers"][0]["resizePolicy"],
        pod["spec"]["hostUsers"],
        pod["spec"]["schedulingGates"],
    ])
}

fn remove_newer_fields(pod: &mut Value) {
    let remove = |v: &mut Value, key: &str| {
        if let Some(o) = v.as_object_mut() {
            o.remove(key);
        }
    };
    remove(&mut pod["spec"]["initContainers"][0], "restartPolicy");
    remove(&mut pod["spec"]["containers"][0], "startupProbe");
    remove(&mut pod["spec"]["containers"][0], "resizePolicy");
    remove(&mut pod["spec"], "hostUsers");
    remove(&mut pod["spec"], "schedulingGates");
}

/// Scenario 6: (a) the stored pod is the submitted one plus exactly our additions: the stored object minus the
/// token volume, its mounts and our env vars equals a server-side dry-run of the same pod taken before the webhook
/// was registered (the API server's own defaulting and ServiceAccount admission included). (b) Fields newer than
/// 1.20 survive our patch — proven at the admission level, since 1.20 drops them before any webhook (see the file
/// comment): the review the API server sent is recorded by a test webhook placed before ours, the newer fields are
/// added back, and the running binary's patch, applied to it, keeps them and adds only what it added in (a).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_pod_fields_survive_and_only_our_additions_are_made() {
    let cluster = connect().await;
    let scope = cluster.scope("fields");
    let ns = scope.namespace("app").await;
    ns.service_account_with_role("app", &role("app")).await;
    let submitted = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "full", "labels": {"app": "full"}, "annotations": {"example.com/note": "kept"}},
        "spec": {
            "serviceAccountName": "app",
            "initContainers": [{"name": "log-shipper", "image": "busybox", "restartPolicy": "Always",
                                "command": ["sh", "-c", "sleep 3600"]}],
            "containers": [
                {"name": "app", "image": "busybox", "env": [{"name": "FOO", "value": "bar"}],
                 "ports": [{"containerPort": 8080}], "readinessProbe": {"tcpSocket": {"port": 8080}},
                 "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}},
                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                {"name": "helper", "image": "busybox"}
            ],
            "volumes": [{"name": "data", "emptyDir": {}}]
        }
    });
    let baseline = ns.dry_run_pod(&submitted).await.expect("baseline dry-run without the webhook");
    let server_keeps_sidecars = baseline["spec"]["initContainers"][0]["restartPolicy"] == "Always";
    println!(
        "API server keeps initContainers[].restartPolicy: {server_keeps_sidecars} (1.20: false, dropped at decode)"
    );

    let recorder = TestWebhook::start(|_| Vec::new()).await;
    let webhook = WebhookProcess::start(WebhookOptions::default()).await;
    scope
        .register(
            "chain",
            &[
                WebhookSpec::new("recorder.e2e.irsa-webhook.test", recorder.endpoint()).reinvocation_policy("Never"),
                WebhookSpec::irsa(&webhook),
            ],
        )
        .await;
    ns.wait_until_mutated(&pod("probe", "app"), &role("app")).await;

    // (a) Stored = baseline + exactly our additions.
    let stored = ns.create_pod_ok(&submitted).await;
    assert_mutated(&stored, &Expected::role(&role("app")));
    assert_eq!(env_value(container(&stored, "app"), "FOO").as_deref(), Some("bar"), "existing env kept");
    assert_same_pod(
        &normalize(&strip_irsa(&stored)),
        &normalize(&baseline),
        "stored pod minus our additions vs. the dry-run without the webhook",
    );

    // (b) Replay the review the API server sent, with the newer fields added back, to the running binary.
    let sent = recorder
        .received()
        .into_iter()
        .find(|r| r["object"]["metadata"]["name"] == "full" && r["dryRun"] != true)
        .expect("the recorder saw the create of pod full");
    let mut object = sent["object"].clone();
    add_newer_fields(&mut object);
    let mut review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": sent});
    review["request"]["object"] = object.clone();
    review["request"]["uid"] = json!("e2e-replay");
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&cluster.harness.ca_pem()).expect("harness CA"))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTPS client");
    let answer: Value = http
        .post(webhook.mutate_url())
        .json(&review)
        .send()
        .await
        .expect("POST the replayed review")
        .json()
        .await
        .expect("an AdmissionReview answer");
    assert_eq!(answer["response"]["allowed"], true, "{answer:#}");
    assert_eq!(answer["response"]["uid"], "e2e-replay", "{answer:#}");
    let patch_b64 = answer["response"]["patch"].as_str().unwrap_or_else(|| panic!("no patch in {answer:#}"));
    let patch: json_patch::Patch =
        serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(patch_b64).expect("base64 patch"))
            .expect("a JSON Patch");
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch).unwrap_or_else(|e| panic!("our patch does not apply: {e}\n{patch:?}"));
    assert_eq!(newer_fields(&patched), newer_fields(&object), "newer fields after our patch\npatch: {patch:?}");
    assert_mutated(&patched, &Expected::role(&role("app")));
    let mut without_newer = strip_irsa(&patched);
    remove_newer_fields(&mut without_newer);
    assert_same_pod(
        &normalize(&without_newer),
        &normalize(&sent["object"]),
        "replayed review: our patch adds only the IRSA fields",
    );
    scope.cleanup().await;
}

/// Scenario 7: with `reinvocationPolicy: IfNeeded` and a second webhook after ours that adds an env var to every
/// container and a sidecar container, the stored pod is mutated once: no duplicated env vars, mounts or volumes —
/// and the sidecar added after our first call gets the credentials on our reinvocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reinvocation_after_another_webhook_mutates_once() {
    let cluster = connect().await;
    let scope = cluster.scope("reinv");
    let ns = scope.namespace("app").await;
    ns.service_account_with_role("app", &role("app")).await;
    let injector = TestWebhook::start(|pod| {
        let containers = pod["spec"]["containers"].as_array().cloned().unwrap_or_default();
        if containers.iter().any(|c| c["name"] == "injected-sidecar") {
            return Vec::new();
        }
        let mut ops: Vec<Value> = containers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if c["env"].is_array() {
                    json!({"op": "add", "path": format!("/spec/containers/{i}/env/-"), "value": {"name": "INJECTED", "value": "1"}})
                } else {
                    json!({"op": "add", "path": format!("/spec/containers/{i}/env"), "value": [{"name": "INJECTED", "value": "1"}]})
                }
            })
            .collect();
        ops.push(json!({"op": "add", "path": "/spec/containers/-", "value": {
            "name": "injected-sidecar", "image": "busybox", "env": [{"name": "INJECTED", "value": "1"}]
        }}));
        ops
    })
    .await;
    let webhook = WebhookProcess::start(WebhookOptions::default()).await;
    scope
        .register(
            "chain",
            &[
                WebhookSpec::irsa(&webhook).reinvocation_policy("IfNeeded"),
                WebhookSpec::new("injector.e2e.irsa-webhook.test", injector.endpoint()).reinvocation_policy("Never"),
            ],
        )
        .await;
    ns.wait_until_mutated(&pod("probe", "app"), &role("app")).await;

    let mut p = pod("chained", "app");
    p["spec"]["containers"] = json!([{"name": "app", "image": "busybox", "env": [{"name": "FOO", "value": "bar"}]}, {"name": "second", "image": "busybox"}]);
    let stored = ns.create_pod_ok(&p).await;
    let names: Vec<&str> = all_containers(&stored).iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["app", "second", "injected-sidecar"], "the injector's sidecar is there once\n{stored:#}");
    // Exactly once everywhere, the injected sidecar included (it only exists after our first call).
    assert_mutated(&stored, &Expected::role(&role("app")));
    for c in all_containers(&stored) {
        assert_eq!(env_values(c, "INJECTED").len(), 1, "INJECTED once in {}\n{stored:#}", c["name"]);
    }
    assert_eq!(env_value(container(&stored, "app"), "FOO").as_deref(), Some("bar"));

    // Order: ours ran first (the injector saw our mutation), so the sidecar's credentials came from reinvocation.
    let seen: Vec<Value> =
        injector.received().into_iter().filter(|r| r["object"]["metadata"]["name"] == "chained").collect();
    assert_eq!(seen.len(), 1, "the injector (reinvocationPolicy: Never) is called once");
    assert!(is_mutated(&seen[0]["object"]), "the injector runs after our first call: {:#}", seen[0]["object"]);
    println!("HTTP versions the API server used with the injector: {:?}", {
        let mut v = injector.http_versions();
        v.dedup();
        v
    });
    let calls = webhook.log().lines().filter(|l| l.contains("pod=chained ") && l.contains("admission")).count();
    println!("our webhook logged {calls} admissions of pod chained (2 = first call + reinvocation)");
    scope.cleanup().await;
}

/// Scenario 8: with the webhook down, `failurePolicy: Ignore` admits pods unmutated and `Fail` refuses them; with
/// the webhook back (same port, as a restarted pod behind a Service), pods are mutated again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_down_ignore_admits_fail_refuses_and_recovery_mutates() {
    let mut s = setup("down", WebhookOptions::default(), |w| w.failure_policy("Ignore")).await;
    s.ns.service_account_with_role("app", &role("app")).await;
    let port = s.webhook.port;
    s.webhook.kill();

    let stored =
        s.ns.create_pod(&pod("ignored", "app"))
            .await
            .unwrap_or_else(|e| panic!("failurePolicy Ignore with the webhook down must admit the pod, got: {e}"));
    assert_unmutated(&stored);

    let irsa =
        WebhookSpec::new("irsa.e2e.irsa-webhook.test", Endpoint::Url(format!("https://127.0.0.1:{port}/mutate")));
    s.registration.update(&s.scope, &[irsa.clone().failure_policy("Fail")]).await;
    s.ns.wait_until_refused(&pod("probe-fail", "app")).await;
    match s.ns.create_pod(&pod("refused", "app")).await {
        Err(e) => assert!(is_webhook_call_failure(&e), "refused, but not for the webhook: {e}"),
        Ok(pod) => panic!("failurePolicy Fail with the webhook down admitted the pod:\n{pod:#}"),
    }

    let back = WebhookProcess::start(WebhookOptions::default().port(port)).await;
    s.ns.wait_until_mutated(&pod("probe-back", "app"), &role("app")).await;
    assert_mutated(&s.ns.create_pod_ok(&pod("back", "app")).await, &Expected::role(&role("app")));
    s.scope.cleanup().await;
    drop(back);
}

/// A cert/key pair written the way the kubelet updates a Secret volume ([`support::secret_volume_write`]).
fn secret_volume_write_pair(dir: &std::path::Path, version: &str, cert: &std::path::Path, key: &std::path::Path) {
    let read = |path: &std::path::Path| std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    support::secret_volume_write(dir, version, &[("tls.crt", &read(cert)), ("tls.key", &read(key))]);
}

/// Scenario 9: the serving certificate is rotated (Secret-volume layout, `..data` swap) twice while pods are being
/// created with `failurePolicy: Fail`: zero creations fail and every pod is mutated. The new certificates come
/// from `certs/gen-certs.sh --reuse-ca` with the harness CA (RSA → ECDSA → ECDSA). After each swap the test waits
/// until the webhook serves the new certificate, then changes the caBundle bytes (same CA) so the API server
/// builds a new client and handshakes again — otherwise it could keep using a connection opened before the swap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_under_load_fails_nothing() {
    let harness = Harness::get();
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).expect("cert dir");
    secret_volume_write_pair(&certs, "v1", &harness.webhook_cert(), &harness.webhook_key());
    let localhost: IpAddr = "127.0.0.1".parse().expect("ip");
    let (cert2, key2) = issue_certificate(&dir.path().join("v2"), "irsa-webhook", "irsa-system", &[localhost]);
    let (cert3, key3) = issue_certificate(&dir.path().join("v3"), "irsa-webhook", "irsa-system", &[localhost]);
    let options = WebhookOptions::default()
        .tls(certs.join("tls.crt"), certs.join("tls.key"))
        .args(["--tls-reload-interval", "200ms"]);
    let s = setup("rotate", options, |w| w).await;
    let template = pod("load", PROBE_SA);
    let load = Load::start(&s.ns, &template, "load", 3);
    let t0 = Instant::now();
    load.wait_for(10, t0, Duration::from_secs(60)).await;

    let ca_pem = harness.ca_pem();
    for (round, (version, cert, key)) in [("v2", &cert2, &key2), ("v3", &cert3, &key3)].into_iter().enumerate() {
        secret_volume_write_pair(&certs, version, cert, key);
        let swapped = Instant::now();
        let want = first_cert_der(cert);
        poll(&format!("the webhook to serve certificate {version}"), SETTLE_TIMEOUT, || async {
            match served_certificate(s.webhook.https_addr(), "127.0.0.1").await {
                Ok(der) if der == want => Ok(()),
                Ok(_) => Err("still the previous certificate".into()),
                Err(e) => Err(e),
            }
        })
        .await;
        println!("{version} served {:?} after the swap", swapped.elapsed());
        // Same CA, different bytes: the API server builds a new client, so the next admissions handshake anew
        // (with the old bytes it would keep a connection opened before the swap). The marker label shows when the
        // new configuration is in effect: a pod carrying it is no longer sent to the webhook.
        let mut bundle = ca_pem.clone();
        bundle.extend(std::iter::repeat_n(b'\n', round + 1));
        let spec = WebhookSpec::irsa(&s.webhook)
            .ca_bundle(base64::engine::general_purpose::STANDARD.encode(&bundle))
            .skip_pods_labelled("e2e-config", version);
        s.registration.update(&s.scope, &[spec]).await;
        let mut marker = pod(&format!("marker-{version}"), PROBE_SA);
        marker["metadata"]["labels"] = json!({"e2e-config": version});
        s.ns.wait_until_unmutated(&marker).await;
        let since = Instant::now();
        load.wait_for(10, since, Duration::from_secs(60)).await;
    }
    let attempts = load.stop().await;
    let bad: Vec<String> = attempts
        .iter()
        .filter(|a| !matches!(&a.result, Ok(pod) if role_of(pod) == Some(probe_role())))
        .map(|a| a.describe(t0))
        .collect();
    println!("{} pod creations during two rotations", attempts.len());
    assert!(
        bad.is_empty(),
        "{} of {} creations failed or were not mutated:\n{}",
        bad.len(),
        attempts.len(),
        bad.join("\n")
    );
    assert!(s.webhook.log().contains("TLS certificate reloaded"), "the webhook never logged a reload");
    s.scope.cleanup().await;
}

/// Scenario 10: the token the kubelet would put in the projected volume — a TokenRequest for the pod's
/// ServiceAccount with the volume's audience and lifetime, bound to the pod — carries what an AWS IAM trust policy
/// checks: issuer `https://kubernetes.default.svc`, audience `sts.amazonaws.com`, subject
/// `system:serviceaccount:NS:NAME`, and it verifies with the issuer's key. `kubectl create token` agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_request_has_the_claims_the_trust_policy_checks() {
    let s = setup("token", WebhookOptions::default(), |w| w).await;
    s.ns.service_account_with_role("app", &role("app")).await;
    let stored = s.ns.create_pod_ok(&pod("app", "app")).await;
    assert_mutated(&stored, &Expected::role(&role("app")));
    let source = &volumes_named(&stored, TOKEN_VOLUME)[0]["projected"]["sources"][0]["serviceAccountToken"];
    let audience = source["audience"].as_str().expect("audience").to_owned();
    let expiration = source["expirationSeconds"].as_i64().expect("expirationSeconds");
    let subject = format!("system:serviceaccount:{}:app", s.ns.name);

    let request: TokenRequest = serde_json::from_value(json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {
            "audiences": [audience], "expirationSeconds": expiration,
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "app", "uid": stored["metadata"]["uid"]}
        }
    }))
    .expect("TokenRequest");
    let answer =
        s.ns.service_accounts()
            .create_token_request("app", &PostParams::default(), &request)
            .await
            .expect("TokenRequest");
    let token = answer.status.expect("TokenRequest status").token;
    let claims = jwt_claims(&token);
    assert_eq!(claims["iss"], ISSUER, "{claims:#}");
    assert_eq!(claims["aud"], json!([DEFAULT_AUDIENCE]), "{claims:#}");
    assert_eq!(claims["sub"], subject, "{claims:#}");
    assert_eq!(claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0), expiration, "{claims:#}");
    assert_eq!(claims["kubernetes.io"]["pod"]["name"], "app", "bound to the pod: {claims:#}");
    assert_eq!(claims["kubernetes.io"]["serviceaccount"]["name"], "app", "{claims:#}");
    verify_service_account_token(&token).unwrap_or_else(|e| panic!("token signature: {e}"));

    let token = kubectl_run(&["create", "token", "app", "-n", &s.ns.name, "--audience", DEFAULT_AUDIENCE]);
    let claims = jwt_claims(token.trim());
    assert_eq!(
        (&claims["iss"], &claims["aud"], &claims["sub"]),
        (&json!(ISSUER), &json!([DEFAULT_AUDIENCE]), &json!(subject))
    );
    verify_service_account_token(token.trim()).unwrap_or_else(|e| panic!("kubectl token signature: {e}"));
    s.scope.cleanup().await;
}

/// Scenario 11: the webhook registered through a `service:` reference, as the chart does. The harness's service
/// CIDR is loopback: the API server dials `<clusterIP>:<service port>` and checks the certificate for
/// `irsa-webhook.<ns>.svc`, so the webhook listens on the ClusterIP with a certificate for that name, issued here
/// with the harness CA (`certs/gen-certs.sh --reuse-ca`) — no IRSA_E2E_WEBHOOK_SANS needed at `cluster.sh start`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_by_service_reference() {
    let cluster = connect().await;
    let scope = cluster.scope("svc");
    let system = scope.namespace("system").await;
    let ns = scope.namespace("app").await;
    ns.service_account_with_role("app", &role("app")).await;

    // A port free on every address now, so it is free on the ClusterIP the API server allocates next.
    let port = free_port("0.0.0.0".parse().expect("ip"));
    let service: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "irsa-webhook", "namespace": system.name},
        "spec": {"type": "ClusterIP", "ports": [{"name": "https", "port": port, "targetPort": port}]}
    }))
    .expect("Service");
    let service = Api::<Service>::namespaced(scope.client(), &system.name)
        .create(&PostParams::default(), &service)
        .await
        .expect("create the Service");
    let cluster_ip: IpAddr =
        service.spec.and_then(|s| s.cluster_ip).expect("a ClusterIP").parse().expect("ClusterIP is an IP");
    assert!(cluster_ip.is_loopback(), "the harness's service CIDR must be loopback, got ClusterIP {cluster_ip}");

    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = issue_certificate(dir.path(), "irsa-webhook", &system.name, &[]);
    let webhook = WebhookProcess::start(WebhookOptions::default().bind(cluster_ip).port(port).tls(cert, key)).await;
    let endpoint =
        Endpoint::Service { namespace: system.name.clone(), name: "irsa-webhook".into(), port, path: "/mutate".into() };
    scope.register("irsa", &[WebhookSpec::new("irsa.e2e.irsa-webhook.test", endpoint)]).await;
    ns.wait_until_mutated(&pod("probe", "app"), &role("app")).await;
    assert_mutated(&ns.create_pod_ok(&pod("app", "app")).await, &Expected::role(&role("app")));
    scope.cleanup().await;
    drop(webhook);
}

/// Scenario 12: across an API-server restart (`cluster.sh restart-apiserver`) with `failurePolicy: Fail` and pods
/// being created throughout: no admission fails (creations refused because the API server is down are client-side
/// connection failures, not admissions), every pod created is mutated — including one whose ServiceAccount was
/// created after the restart — the webhook stays ready, and its ServiceAccount watch reconnects (a ServiceAccount
/// created afterwards, with no pod to look it up, reaches its cache).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_restart_fails_no_admission() {
    let s = setup("restart", WebhookOptions::default(), |w| w).await;
    s.ns.service_account_with_role("before", &role("before")).await;
    assert_mutated(&s.ns.create_pod_ok(&pod("before", "before")).await, &Expected::role(&role("before")));

    let load = Load::start(&s.ns, &pod("load", "before"), "load", 2);
    let t0 = Instant::now();
    load.wait_for(3, t0, Duration::from_secs(60)).await;
    let restart = tokio::task::spawn_blocking(|| cluster_sh_run("restart-apiserver"));
    let log = restart.await.expect("restart task");
    let restarted = Instant::now();
    println!("API server restarted in {:?}:\n{log}", restarted.duration_since(t0));

    s.ns.service_account_with_role("after", &role("after")).await;
    let after =
        s.ns.create_pod(&pod("after", "after"))
            .await
            .unwrap_or_else(|e| panic!("pod after the restart refused: {e}\n{log}"));
    assert_mutated(&after, &Expected::role(&role("after")));
    println!("live lookups after the restart: {}", live_lookups(&s.webhook).await);
    load.wait_for(10, restarted, Duration::from_secs(60)).await;
    let attempts = load.stop().await;

    let mut refused = Vec::new();
    let mut unmutated = Vec::new();
    let (mut created, mut unreachable, mut other) = (0, 0, Vec::new());
    for a in &attempts {
        match &a.result {
            Ok(pod) if role_of(pod) == Some(role("before")) => created += 1,
            Ok(_) => unmutated.push(a.describe(t0)),
            Err(e) if is_webhook_call_failure(e) => refused.push(a.describe(t0)),
            Err(e) if is_connection_failure(e) => unreachable += 1,
            Err(_) => other.push(a.describe(t0)),
        }
    }
    println!(
        "{} creations: {created} mutated, {unreachable} could not reach the API server, {} other API errors:\n{}",
        attempts.len(),
        other.len(),
        other.join("\n")
    );
    assert!(refused.is_empty(), "admissions failed (webhook not callable):\n{}", refused.join("\n"));
    assert!(unmutated.is_empty(), "pods stored unmutated:\n{}", unmutated.join("\n"));
    let after_restart = attempts.iter().filter(|a| a.started >= restarted && a.result.is_ok()).count();
    assert!(after_restart >= 10, "only {after_restart} pods created after the restart");

    assert_eq!(s.webhook.readyz().await, Some(200), "the webhook is ready after the restart");
    let cached = s.webhook.metric("irsa_webhook_service_accounts_cached").await.expect("cached metric");
    s.ns.service_account_with_role("watched", &role("watched")).await;
    poll(
        "the ServiceAccount watch to deliver a ServiceAccount created after the restart",
        Duration::from_secs(60),
        || async {
            let now = s.webhook.metric("irsa_webhook_service_accounts_cached").await.unwrap_or(0.0);
            if now > cached {
                Ok(())
            } else {
                Err(format!("irsa_webhook_service_accounts_cached = {now} (was {cached})"))
            }
        },
    )
    .await;
    println!("watch reconnected {:?} after the restart", restarted.elapsed());
    s.scope.cleanup().await;
}

/// Scenario 13: SIGTERM while pods are being created, `failurePolicy: Fail`, `--shutdown-delay 2s`. Every
/// creation started before the signal, or early enough in the delay (while the webhook still accepts), succeeds
/// mutated; in-flight requests are finished; the process exits 0 after the delay. Once it is gone, creations are
/// refused by the API server (expected with Fail) — and no pod is ever stored unmutated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_finishes_in_flight_requests() {
    let delay = Duration::from_secs(2);
    let options = WebhookOptions::default().args(["--shutdown-delay", "2s", "--shutdown-timeout", "10s"]);
    let mut s = setup("sigterm", options, |w| w).await;
    let load = Load::start(&s.ns, &pod("load", PROBE_SA), "load", 4);
    let t0 = Instant::now();
    load.wait_for(12, t0, Duration::from_secs(60)).await;

    let signalled = Instant::now();
    s.webhook.signal("TERM");
    poll("/readyz to fail while draining", Duration::from_millis(1500), || async {
        match s.webhook.readyz().await {
            Some(503) => Ok(()),
            other => Err(format!("/readyz: {other:?}")),
        }
    })
    .await;
    let status = s.webhook.wait_exit(Duration::from_secs(20)).await;
    let exited = Instant::now();
    // Keep creating for a moment with the webhook gone.
    load.wait_for(4, exited, Duration::from_secs(30)).await;
    let attempts = load.stop().await;
    println!("exited with {status} {:?} after SIGTERM", exited.duration_since(signalled));
    let in_flight = s.webhook.log().lines().find(|l| l.contains("in_flight")).map(str::to_owned);
    println!("shutdown log: {in_flight:?}");

    assert!(status.success(), "exit status {status}; log tail:\n{}", s.webhook.log_tail(20));
    assert!(exited.duration_since(signalled) >= delay, "exited before --shutdown-delay was over");
    // Requests reach the webhook within milliseconds; a busy CI machine gets a second of margin before the
    // listener closes.
    let must_succeed_before = signalled + delay - Duration::from_secs(1);
    let mut problems = Vec::new();
    let (mut before, mut refused_after) = (0, 0);
    for a in &attempts {
        match &a.result {
            Ok(pod) if role_of(pod) == Some(probe_role()) => {
                if a.started < must_succeed_before {
                    before += 1;
                }
            }
            Ok(_) => problems.push(format!("stored unmutated: {}", a.describe(t0))),
            Err(e) if a.started < must_succeed_before => {
                problems.push(format!("failed while the webhook served: {} ({e})", a.describe(t0)))
            }
            Err(e) if is_webhook_call_failure(e) => refused_after += 1,
            Err(e) => problems.push(format!("failed other than by the Fail policy: {} ({e})", a.describe(t0))),
        }
    }
    // In flight at the webhook means answered: no failed creation may have been admitted by the webhook (its
    // log has an `admission` line per answered review) — that would be a response lost at shutdown.
    let log = s.webhook.log();
    for a in attempts.iter().filter(|a| a.result.is_err()) {
        let needle = format!("pod={} ", a.name);
        if let Some(line) = log.lines().find(|l| l.contains(&needle) && l.contains("admission")) {
            problems.push(format!(
                "answered by the webhook but failed at the API server: {}\n  {line}",
                a.describe(signalled)
            ));
        }
    }
    // How the late ones failed: "connection refused" (nothing listening) or "EOF" (sent on a keep-alive
    // connection the webhook closed as it stopped; never answered, see above).
    let mut reasons = std::collections::BTreeMap::<String, usize>::new();
    for e in attempts.iter().filter_map(|a| a.result.as_ref().err()) {
        *reasons.entry(error_message(e).rsplit(": ").next().unwrap_or_default().to_owned()).or_default() += 1;
    }
    println!("refusals after the listener closed ({delay:?} after the signal), by cause: {reasons:?}");
    let after_exit = attempts.iter().filter(|a| a.started > exited).count();
    println!("{} creations: {before} mutated before/at the signal, {refused_after} refused after the webhook left ({after_exit} started after exit)", attempts.len());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(before >= 12, "only {before} creations before the signal");
    assert!(
        after_exit > 0 && refused_after >= after_exit,
        "creations after the exit must be refused by the Fail policy"
    );
    s.scope.cleanup().await;
}
