//! End-to-end: `irsa-webhook doctor pod NS/NAME` against a real kube-apiserver (v1.20.2, `tests/e2e/cluster.sh`).
//! Pods are created through the API in each state the doctor diagnoses, then the binary reads them back through
//! the harness kubeconfig.
//!
//! Run: `tests/e2e/cluster.sh start && eval "$(tests/e2e/cluster.sh env)"`, then
//! `cargo test --features e2e --test e2e_doctor -- --test-threads=1`. Without the harness every test fails and
//! says how to start it.
//!
//! Webhook configurations registered here belong to a [`Scope`]: their namespaceSelector matches only the scope's
//! namespaces, and they are deleted at the end. The one that "points nowhere" has failurePolicy Ignore and
//! sideEffects None, so pods in its namespaces are admitted as sent. The doctor lists every configuration in the
//! cluster, so the tests of this file take turns (one lock) and expect no other test's configuration to be left.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::Duration;

use kube::api::{DeleteParams, ListParams};
use serde_json::{json, Value};
use support::e2e::*;

use support::BIN;

/// The doctor sees every MutatingWebhookConfiguration in the cluster: one test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn role(name: &str) -> String {
    format!("arn:aws:iam::111122223333:role/{name}")
}

/// What `doctor` printed, and how it exited.
struct Report {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Report {
    /// Some line has this status and check, and contains `text`.
    #[track_caller]
    fn has(&self, status: &str, check: &str, text: &str) -> &Self {
        let prefix = format!("{status:<8} {check:<17} ");
        assert!(
            self.stdout.lines().any(|l| l.starts_with(&prefix) && l.contains(text)),
            "expected a `{status} {check}` line containing {text:?}\n{self}"
        );
        self
    }

    #[track_caller]
    fn lacks(&self, status: &str, check: &str) -> &Self {
        let prefix = format!("{status:<8} {check:<17} ");
        assert!(!self.stdout.lines().any(|l| l.starts_with(&prefix)), "unexpected `{status} {check}` line\n{self}");
        self
    }

    #[track_caller]
    fn exit(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "exit status\n{self}");
        self
    }

    #[track_caller]
    fn no_problem(&self) -> &Self {
        assert!(!self.stdout.lines().any(|l| l.starts_with("problem ")), "unexpected problems\n{self}");
        self.exit(0)
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "--- exit {:?}; stdout:\n{}--- stderr:\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Runs the binary with the harness kubeconfig (and nothing from the caller's environment).
fn doctor(args: &[&str]) -> Report {
    doctor_as(&Harness::get().kubeconfig, args)
}

/// Runs the binary with this kubeconfig.
fn doctor_as(kubeconfig: &std::path::Path, args: &[&str]) -> Report {
    let output = Command::new(BIN)
        .arg("doctor")
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env_clear()
        .output()
        .unwrap_or_else(|e| panic!("run {BIN}: {e}"));
    Report {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn doctor_pod(ns: &Namespace, name: &str) -> Report {
    doctor(&["pod", &format!("{}/{name}", ns.name)])
}

/// A webhook configuration for this scope whose URL nobody serves: with failurePolicy Ignore, pods in the scope's
/// namespaces are admitted exactly as sent, and the doctor still finds an irsa webhook selecting them.
fn nowhere() -> WebhookSpec {
    let port = free_port(IpAddr::V4(Ipv4Addr::LOCALHOST));
    WebhookSpec::new("doctor.e2e.irsa-webhook.test", Endpoint::Url(format!("https://127.0.0.1:{port}/mutate")))
        .failure_policy("Ignore")
}

/// `irsa-webhook mutate -o json` of `pod` with these ServiceAccounts and flags: what the webhook would store.
fn mutated_offline(pod: &Value, service_accounts: &[Value], flags: &[&str]) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let pod_path = dir.path().join("pod.json");
    let sa_path = dir.path().join("serviceaccounts.json");
    std::fs::write(&pod_path, pod.to_string()).expect("write pod");
    std::fs::write(&sa_path, json!({"apiVersion": "v1", "kind": "List", "items": service_accounts}).to_string())
        .expect("write ServiceAccounts");
    let output = Command::new(BIN)
        .args(["mutate", "-o", "json", "--service-account"])
        .arg(&sa_path)
        .args(flags)
        .arg(&pod_path)
        .env_clear()
        .output()
        .expect("run irsa-webhook mutate");
    assert!(output.status.success(), "mutate failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("mutate -o json")
}

fn sa_object(ns: &Namespace, name: &str, annotations: &[(&str, &str)]) -> Value {
    let annotations: serde_json::Map<String, Value> =
        annotations.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
    json!({"apiVersion": "v1", "kind": "ServiceAccount",
           "metadata": {"name": name, "namespace": ns.name, "annotations": annotations}})
}

fn in_namespace(mut pod: Value, ns: &Namespace) -> Value {
    pod["metadata"]["namespace"] = json!(ns.name);
    pod
}

async fn delete_service_account(ns: &Namespace, name: &str) {
    ns.service_accounts()
        .delete(name, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete ServiceAccount {}/{name}: {e}", ns.name));
}

#[tokio::test]
async fn without_a_webhook_configuration_pods_are_stored_unmutated_and_doctor_says_why() {
    let _serial = SERIAL.lock().await;
    let cluster = connect().await;
    let scope = cluster.scope("dr-none");
    let ns = scope.namespace("app").await;
    ns.service_account_with_role("app", &role("app")).await;
    ns.create_pod_ok(&pod("app", "app")).await;

    let report = doctor_pod(&ns, "app");
    if !report.stdout.contains("no MutatingWebhookConfiguration for irsa-webhook found") {
        let names: Vec<String> = webhook_configs(scope.client())
            .list(&ListParams::default())
            .await
            .map(|list| list.items.into_iter().filter_map(|c| c.metadata.name).collect())
            .unwrap_or_default();
        panic!(
            "this test needs a cluster without irsa webhook configurations; found {names:?} (left by another \
             test?)\n{report}"
        );
    }
    report
        .exit(1)
        .has("ok", "service-account", &role("app"))
        .has("problem", "injection", &format!("pod {}/app was not mutated: it lacks volume aws-iam-token", ns.name))
        .has("problem", "injection", &format!("kubectl delete pod -n {} app", ns.name))
        .has("problem", "webhook", "helm install")
        // The missing webhook explains it: no guess about timing.
        .lacks("hint", "timing");

    // -o json: the same findings as a list.
    let json = doctor(&["pod", &format!("{}/app", ns.name), "-o", "json"]);
    json.exit(1);
    let findings: Vec<Value> = serde_json::from_str(&json.stdout).unwrap_or_else(|e| panic!("{e}\n{json}"));
    assert_eq!(findings.len(), report.stdout.lines().count(), "{json}");
    assert!(findings.iter().any(|f| f["status"] == "problem" && f["check"] == "webhook" && f["fix"].is_string()));
    scope.cleanup().await;
}

#[tokio::test]
async fn service_account_problems_are_reported_from_the_api() {
    let _serial = SERIAL.lock().await;
    let cluster = connect().await;
    let scope = cluster.scope("dr-sa");
    let ns = scope.namespace("app").await;
    scope.register("nowhere", &[nowhere()]).await;

    ns.service_account("foreign", &[("eks.amazon.com/role-arn", &role("app"))]).await;
    ns.create_pod_ok(&pod("foreign", "foreign")).await;
    doctor_pod(&ns, "foreign")
        .exit(1)
        .has("problem", "service-account", "annotation eks.amazon.com/role-arn is ignored")
        .has(
            "problem",
            "service-account",
            &format!(
                "kubectl annotate serviceaccount -n {} foreign eks.amazon.com/role-arn- eks.amazonaws.com/role-arn={}",
                ns.name,
                role("app")
            ),
        )
        .lacks("problem", "injection");

    ns.service_account("typo", &[("eks.amazonaws.com/role_arn", &role("app"))]).await;
    ns.create_pod_ok(&pod("typo", "typo")).await;
    doctor_pod(&ns, "typo").exit(1).has("problem", "service-account", "did you mean eks.amazonaws.com/role-arn?");

    let invalid = "arn:aws:iam::1234:role/app";
    ns.service_account_with_role("invalid", invalid).await;
    ns.create_pod_ok(&in_namespace(pod("invalid", "invalid"), &ns)).await;
    doctor_pod(&ns, "invalid").exit(1).has("problem", "service-account", "account id must be 12 digits");

    ns.service_account("plain", &[]).await;
    ns.create_pod_ok(&pod("plain", "plain")).await;
    doctor_pod(&ns, "plain").exit(1).has("problem", "service-account", "has no eks.amazonaws.com/role-arn annotation");

    // The ServiceAccount deleted after its pod was created.
    ns.service_account_with_role("gone", &role("gone")).await;
    ns.create_pod_ok(&pod("gone", "gone")).await;
    delete_service_account(&ns, "gone").await;
    doctor_pod(&ns, "gone")
        .exit(1)
        .has("problem", "service-account", &format!("ServiceAccount {}/gone not found", ns.name))
        .has("problem", "service-account", &format!("kubectl create serviceaccount -n {} gone", ns.name));
    scope.cleanup().await;
}

#[tokio::test]
async fn an_unmutated_pod_is_traced_to_the_service_account_timeline() {
    let _serial = SERIAL.lock().await;
    let cluster = connect().await;
    let scope = cluster.scope("dr-time");
    let ns = scope.namespace("app").await;
    scope.register("nowhere", &[nowhere()]).await;

    // Annotated after the pod was created (the API keeps no time for that).
    ns.service_account("late", &[]).await;
    ns.create_pod_ok(&pod("late", "late")).await;
    ns.annotate_service_account("late", &[(ROLE_ANNOTATION, Some(&role("late")))]).await;
    doctor_pod(&ns, "late")
        .exit(1)
        .has("problem", "injection", "was not mutated")
        .has("hint", "timing", "the ServiceAccount may have been annotated after the pod was created")
        .has("ok", "webhook", "selects namespace")
        // The registered webhook selects the pod, so an outage is the other suspect.
        .has("hint", "webhook", "failurePolicy Ignore");

    // Created again (with its role) after the pod: timestamps have one-second resolution.
    ns.service_account("recreated", &[]).await;
    ns.create_pod_ok(&pod("recreated", "recreated")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    delete_service_account(&ns, "recreated").await;
    ns.service_account_with_role("recreated", &role("recreated")).await;
    doctor_pod(&ns, "recreated")
        .exit(1)
        .has("hint", "timing", &format!("ServiceAccount {}/recreated was created at", ns.name))
        .has("hint", "timing", "after the pod");
    scope.cleanup().await;
}

#[tokio::test]
async fn webhook_selectors_that_exclude_the_pod_are_problems() {
    let _serial = SERIAL.lock().await;
    let cluster = connect().await;
    let scope = cluster.scope("dr-sel");
    let selected = scope.namespace("in").await;
    let excluded = scope.namespace("out").await;
    // As the chart does for kube-system: kubernetes.io/metadata.name NotIn [<excluded>].
    let registration = scope.register("nowhere", &[nowhere().exclude_namespaces(&[&excluded.name])]).await;

    excluded.service_account_with_role("app", &role("app")).await;
    excluded.create_pod_ok(&pod("app", "app")).await;
    doctor_pod(&excluded, "app")
        .exit(1)
        .has(
            "problem",
            "webhook",
            &format!(
                "namespace {} is excluded by MutatingWebhookConfiguration {} (webhook doctor.e2e.irsa-webhook.test): \
                 its namespaceSelector needs kubernetes.io/metadata.name notin ({})",
                excluded.name, registration.name, excluded.name
            ),
        )
        .has("problem", "webhook", "webhook.excludeNamespaces")
        .lacks("hint", "timing");

    // The chart's objectSelector: pods labelled to skip the webhook.
    selected.service_account_with_role("app", &role("app")).await;
    let mut skipped = pod("skipped", "app");
    skipped["metadata"]["labels"] = json!({SKIP_LABEL: "true"});
    selected.create_pod_ok(&skipped).await;
    doctor_pod(&selected, "skipped")
        .exit(1)
        .has("problem", "webhook", &format!("its objectSelector needs !{SKIP_LABEL}"))
        .has("problem", "webhook", &format!("remove the label {SKIP_LABEL} from the pod template"));

    // `--webhook-config NAME` looks at that configuration only; `-n NS pod NAME` is the other way to name the pod.
    let report = doctor(&["-n", &selected.name, "pod", "skipped", "--webhook-config", "no-such-configuration"]);
    report.exit(1).has("problem", "webhook", "no MutatingWebhookConfiguration named no-such-configuration found");

    // Not found: bad input, not a diagnosis.
    let report = doctor_pod(&selected, "no-such-pod");
    report.exit(2);
    assert!(report.stdout.is_empty(), "{report}");
    assert!(report.stderr.contains(&format!("pod {}/no-such-pod not found", selected.name)), "{report}");
    scope.cleanup().await;
}

#[tokio::test]
async fn pods_created_already_mutated_are_healthy_or_named_for_what_they_lack() {
    let _serial = SERIAL.lock().await;
    let cluster = connect().await;
    let scope = cluster.scope("dr-ok");
    let ns = scope.namespace("app").await;
    scope.register("nowhere", &[nowhere()]).await;
    let sa = sa_object(&ns, "app", &[(ROLE_ANNOTATION, &role("app"))]);
    ns.service_account_with_role("app", &role("app")).await;
    let short = sa_object(&ns, "short", &[(ROLE_ANNOTATION, &role("short")), (TOKEN_EXPIRATION_ANNOTATION, "1200")]);
    ns.service_account("short", &[(ROLE_ANNOTATION, &role("short")), (TOKEN_EXPIRATION_ANNOTATION, "1200")]).await;

    // A non-root pod with a sidecar the webhook is told to skip, mutated offline and created as is.
    let mut base = in_namespace(pod("healthy", "app"), &ns);
    base["spec"]["securityContext"] = json!({"runAsUser": 1000, "runAsGroup": 2000});
    base["spec"]["containers"].as_array_mut().expect("containers").push(json!({"name": "proxy", "image": "busybox"}));
    base["metadata"]["annotations"] = json!({"eks.amazonaws.com/skip-containers": "proxy"});
    let healthy = mutated_offline(&base, std::slice::from_ref(&sa), &[]);
    let stored = ns.create_pod_ok(&healthy).await;
    assert_eq!(stored["spec"]["securityContext"]["fsGroup"], json!(2000), "stored as sent: {stored:#}");
    doctor_pod(&ns, "healthy")
        .no_problem()
        .has("ok", "service-account", &role("app"))
        .has("ok", "injection", "has AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE and the token volume")
        .has("ok", "webhook", "selects namespace")
        // The scope registers its webhooks with the harness CA as caBundle.
        .has("ok", "certificate", "is valid until")
        .has("ok", "fs-group", "fsGroup 2000")
        .has("ok", "token-audience", "sts.amazonaws.com")
        .has("ok", "token-expiration", "86400")
        .has("hint", "skip-containers", "container proxy is listed")
        .has("hint", "aws-sdk", "AWS EKS docs")
        .lacks("hint", "timing");

    // Mutated by a webhook running --fs-group-fix=never (as the reference webhook does).
    let mut base = in_namespace(pod("no-fsgroup", "app"), &ns);
    base["spec"]["securityContext"] = json!({"runAsUser": 1000});
    let no_fs_group = mutated_offline(&base, std::slice::from_ref(&sa), &["--fs-group-fix=never"]);
    ns.create_pod_ok(&no_fs_group).await;
    doctor_pod(&ns, "no-fsgroup")
        .exit(1)
        .has("ok", "injection", "has AWS_ROLE_ARN")
        .has("problem", "fs-group", "runs as non-root without fsGroup")
        .has("problem", "fs-group", "the fsGroup fix would set fsGroup 65534");
    // ... and checked with the flags of that webhook: the fix is off, and said so.
    doctor(&["pod", &format!("{}/no-fsgroup", ns.name), "--fs-group-fix", "never"]).exit(1).has(
        "problem",
        "fs-group",
        "the fsGroup fix is off (--fs-group-fix=never)",
    );

    // A short token lifetime from the ServiceAccount.
    let short_pod = mutated_offline(&in_namespace(pod("short", "short"), &ns), &[short], &[]);
    ns.create_pod_ok(&short_pod).await;
    doctor_pod(&ns, "short").no_problem().has("hint", "token-expiration", "expirationSeconds 1200, under an hour");
    scope.cleanup().await;
}

#[tokio::test]
async fn a_pod_mutated_by_the_running_webhook_is_healthy() {
    let _serial = SERIAL.lock().await;
    let cluster = connect().await;
    let scope = cluster.scope("dr-live");
    let ns = scope.namespace("app").await;
    ns.service_account_with_role("app", &role("app")).await;
    let webhook = WebhookProcess::start(WebhookOptions::default()).await;
    scope.register("irsa", &[WebhookSpec::irsa(&webhook)]).await;
    ns.wait_until_mutated(&pod("probe", "app"), &role("app")).await;

    let mut live = pod("live", "app");
    live["spec"]["securityContext"] = json!({"runAsNonRoot": true, "runAsUser": 1000});
    let stored = ns.create_pod_ok(&live).await;
    assert_eq!(role_of(&stored).as_deref(), Some(role("app").as_str()), "the webhook mutated it: {stored:#}");
    doctor_pod(&ns, "live")
        .no_problem()
        .has("ok", "injection", "has AWS_ROLE_ARN")
        .has("ok", "webhook", "(webhook irsa.e2e.irsa-webhook.test) selects namespace")
        .has("ok", "fs-group", "fsGroup 65534")
        .has("ok", "token-audience", "token audience sts.amazonaws.com");
    drop(webhook);
    scope.cleanup().await;
}

/// `irsa-webhook trust-policy` for this issuer and ServiceAccount, written to a file of the scope.
fn trust_policy_file(scope: &Scope, issuer: &str, service_account: &str, file: &str) -> std::path::PathBuf {
    let output = Command::new(BIN)
        .args(["trust-policy", "--issuer", issuer, "--account", "111122223333", "--service-account", service_account])
        .env_clear()
        .output()
        .expect("run irsa-webhook trust-policy");
    assert!(output.status.success(), "trust-policy: {}", String::from_utf8_lossy(&output.stderr));
    let path = scope.dir.path().join(file);
    std::fs::write(&path, &output.stdout).expect("write the policy");
    path
}

#[tokio::test]
async fn token_request_returns_the_claims_and_a_policy_for_another_issuer_is_reported() {
    let _serial = SERIAL.lock().await;
    let cluster = connect().await;
    let scope = cluster.scope("dr-tok");
    let ns = scope.namespace("app").await;
    ns.service_account_with_role("app", &role("app")).await;
    let webhook = WebhookProcess::start(WebhookOptions::default()).await;
    scope.register("irsa", &[WebhookSpec::irsa(&webhook)]).await;
    ns.wait_until_mutated(&pod("probe", "app"), &role("app")).await;
    let stored = ns.create_pod_ok(&pod("live", "app")).await;
    assert_eq!(role_of(&stored).as_deref(), Some(role("app").as_str()), "mutated: {stored:#}");
    let target = format!("{}/live", ns.name);

    // Without the flag nothing is asked for.
    doctor(&["pod", &target]).no_problem().lacks("ok", "token-request");

    let report = doctor(&["pod", &target, "--token-request"]);
    report
        .no_problem()
        .has(
            "ok",
            "token-request",
            &format!(
                "iss {ISSUER}, sub system:serviceaccount:{}:app, aud {DEFAULT_AUDIENCE}, valid {DEFAULT_EXPIRATION} s",
                ns.name
            ),
        )
        .has("ok", "token-request", &format!("bound to pod {target}"))
        .has("ok", "issuer", "is the issuer the cluster publishes (/.well-known/openid-configuration)");
    // The token itself never leaves the process: no JWT (base64url of `{"alg"...`) in what is printed.
    assert!(!report.stdout.contains("eyJ") && !report.stderr.contains("eyJ"), "{report}");

    // A policy written for another cluster's issuer, evaluated with the token's real iss.
    let other = "https://oidc.eks.us-west-2.amazonaws.com/id/C0FFEE0000000000000000000000000A";
    let wrong = trust_policy_file(&scope, other, &format!("{}/app", ns.name), "wrong.json");
    let report = doctor(&["pod", &target, "--token-request", "--role-policy", wrong.to_str().expect("path")]);
    report.exit(1).has("problem", "trust-policy", "oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/C0FFEE");
    // The same without a token: the issuer the cluster publishes is used.
    doctor(&["pod", &target, "--role-policy", wrong.to_str().expect("path")]).exit(1).has(
        "problem",
        "trust-policy",
        "oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/C0FFEE",
    );
    // --issuer that is not the cluster's is a problem of its own.
    doctor(&["pod", &target, "--issuer", other]).exit(1).has(
        "problem",
        "issuer",
        &format!("--issuer is {other}, but the cluster publishes {ISSUER}"),
    );

    let right = trust_policy_file(&scope, ISSUER, &format!("{}/app", ns.name), "right.json");
    doctor(&["pod", &target, "--token-request", "--role-policy", right.to_str().expect("path")]).no_problem().has(
        "ok",
        "trust-policy",
        &format!("allows ServiceAccount {}/app", ns.name),
    );

    // A kubeconfig that may read everything doctor reads but not create tokens: a hint naming the permission.
    let limited = scope
        .service_account_kubeconfig(
            &ns,
            "reader",
            json!([
                {"apiGroups": [""], "resources": ["pods", "serviceaccounts", "namespaces"], "verbs": ["get"]},
                {"apiGroups": ["admissionregistration.k8s.io"], "resources": ["mutatingwebhookconfigurations"],
                 "verbs": ["list"]},
                {"nonResourceURLs": ["/.well-known/openid-configuration"], "verbs": ["get"]},
            ]),
        )
        .await;
    doctor_as(&limited, &["pod", &target, "--token-request"]).no_problem().has(
        "hint",
        "token-request",
        "the API server refused the TokenRequest",
    );
    drop(webhook);
    scope.cleanup().await;
}

/// The ReplicaSet `name` of Deployment `deployment`, as the controller-manager would have made it (the Deployment
/// itself need not exist: nothing acts on it here).
async fn create_replica_set(ns: &Namespace, name: &str, deployment: &str) {
    let replica_sets = kube::Api::<kube::api::DynamicObject>::namespaced_with(
        ns.client.clone(),
        &ns.name,
        &kube::api::ApiResource::erase::<k8s_openapi::api::apps::v1::ReplicaSet>(&()),
    );
    let replica_set: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
            "name": deployment, "uid": "00000000-0000-0000-0000-000000000002", "controller": true}]},
        "spec": {"selector": {"matchLabels": {"app": deployment}},
                 "template": {"metadata": {"labels": {"app": deployment}},
                              "spec": {"containers": [{"name": "app", "image": "busybox"}]}}}}))
    .expect("ReplicaSet");
    replica_sets
        .create(&kube::api::PostParams::default(), &replica_set)
        .await
        .unwrap_or_else(|e| panic!("create ReplicaSet {}/{name}: {e}", ns.name));
}

/// A pod owned by `kind`/`owner` (the owner need not exist: no controller-manager runs).
fn owned_pod(name: &str, service_account: &str, kind: &str, owner: &str) -> Value {
    let mut pod = pod(name, service_account);
    let api_version = if kind == "Job" { "batch/v1" } else { "apps/v1" };
    pod["metadata"]["ownerReferences"] = json!([{"apiVersion": api_version, "kind": kind, "name": owner,
        "uid": "00000000-0000-0000-0000-000000000001", "controller": true}]);
    pod
}

#[tokio::test]
async fn the_scan_groups_pods_created_before_their_service_account_was_annotated() {
    let _serial = SERIAL.lock().await;
    let cluster = connect().await;
    let scope = cluster.scope("dr-scan");
    let ns = scope.namespace("app").await;
    let off = scope.namespace("off").await;
    scope.register("nowhere", &[nowhere().exclude_namespaces(&[&off.name])]).await;

    create_replica_set(&ns, "web-5d9", "web").await;

    // Pods created while the ServiceAccounts had no role yet.
    ns.service_account("late", &[]).await;
    ns.service_account("plain", &[]).await;
    off.service_account("late", &[]).await;
    for pod in [
        owned_pod("web-5d9-a", "late", "ReplicaSet", "web-5d9"),
        owned_pod("web-5d9-b", "late", "ReplicaSet", "web-5d9"),
        owned_pod("db-0", "late", "StatefulSet", "db"),
        pod("debug", "late"),
        pod("other", "plain"),
    ] {
        ns.create_pod_ok(&pod).await;
    }
    off.create_pod_ok(&owned_pod("once-x", "late", "Job", "once")).await;
    ns.annotate_service_account("late", &[(ROLE_ANNOTATION, Some(&role("late")))]).await;
    off.annotate_service_account("late", &[(ROLE_ANNOTATION, Some(&role("late")))]).await;
    // One pod created afterwards, mutated (offline, as the webhook would): nothing to do for it.
    let sa = sa_object(&ns, "late", &[(ROLE_ANNOTATION, &role("late"))]);
    let fresh =
        mutated_offline(&in_namespace(owned_pod("web-5d9-c", "late", "ReplicaSet", "web-5d9"), &ns), &[sa], &[]);
    assert!(is_mutated(&fresh), "{fresh:#}");
    ns.create_pod_ok(&fresh).await;

    let report = doctor(&["pods", "-n", &ns.name, "-o", "json"]);
    report.exit(1);
    let scan: Value = serde_json::from_str(&report.stdout).unwrap_or_else(|e| panic!("{e}\n{report}"));
    assert_eq!(scan["scope"], json!(format!("namespace {}", ns.name)), "{report}");
    assert_eq!((scan["pods"].as_u64(), scan["pods_with_role"].as_u64()), (Some(6), Some(5)), "{report}");
    assert_eq!(scan["pods_needing_action"], json!(4), "{report}");
    let groups: Vec<(String, String, Value)> = scan["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| {
            (
                g["kind"].as_str().unwrap_or("?").to_owned(),
                g["name"].as_str().unwrap_or("?").to_owned(),
                g["pods"].clone(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        [
            ("Deployment".to_owned(), "web".to_owned(), json!(["web-5d9-a", "web-5d9-b"])),
            ("Pod".to_owned(), "debug".to_owned(), json!(["debug"])),
            ("StatefulSet".to_owned(), "db".to_owned(), json!(["db-0"])),
        ],
        "{report}"
    );
    let deployment = &scan["groups"][0];
    assert_eq!(deployment["check"], "injection");
    assert!(deployment["lacks"]
        .as_str()
        .unwrap_or_default()
        .starts_with("volume aws-iam-token; container app: AWS_ROLE_ARN"));
    assert!(
        deployment["fix"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!("kubectl rollout restart deployment/web -n {} (", ns.name)),
        "{report}"
    );
    assert_eq!(deployment["excluded"], Value::Null);
    assert!(report.stderr.contains("pods scanned in"), "{report}");

    // The text: one line per group, greppable, with the command.
    doctor(&["pods", "-n", &ns.name]).exit(1).has(
        "problem",
        "injection",
        &format!("Deployment {}/web: 2 pods lack volume aws-iam-token", ns.name),
    );

    // All namespaces: the Job's pod in the excluded namespace says a restart alone does not help.
    let report = doctor(&["pods", "--all-namespaces", "-o", "json"]);
    report.exit(1);
    let scan: Value = serde_json::from_str(&report.stdout).unwrap_or_else(|e| panic!("{e}\n{report}"));
    let job = scan["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["namespace"] == json!(off.name))
        .unwrap_or_else(|| panic!("no group in {}\n{report}", off.name));
    assert_eq!((job["kind"].as_str(), job["name"].as_str()), (Some("Job"), Some("once")), "{report}");
    assert!(
        job["excluded"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("kubernetes.io/metadata.name notin ({})", off.name)),
        "{report}"
    );
    assert!(job["fix"].as_str().unwrap_or_default().starts_with("the webhook would skip the recreated pods too"));

    // Bad usage: the pod-only flags with a scan.
    doctor(&["pods", "-A", "--token-request"]).exit(2);
    scope.cleanup().await;
}

#[tokio::test]
async fn two_webhooks_on_one_pod_are_named_and_duplicates_are_flagged() {
    let _serial = SERIAL.lock().await;
    let cluster = connect().await;
    let scope = cluster.scope("dr-two");
    let ns = scope.namespace("app").await;
    ns.service_account_with_role("app", &role("app")).await;
    // A stand-in for EKS's managed webhook: this binary without the fsGroup fix, under the reference's webhook name;
    // ours next to it in fs-group-only mode. Configuration names sort the stand-in first.
    let stand_in = WebhookProcess::start(WebhookOptions::default().arg("--fs-group-fix=never")).await;
    let ours = WebhookProcess::start(WebhookOptions::default().arg("--inject=fs-group-only")).await;
    scope
        .register("a-eks", &[WebhookSpec::new("iam-for-pods.amazonaws.com", Endpoint::Url(stand_in.mutate_url()))])
        .await;
    scope.register("b-irsa", &[WebhookSpec::irsa(&ours)]).await;
    let mut non_root = pod("probe", "app");
    non_root["spec"]["securityContext"] = json!({"runAsUser": 1000});
    ns.wait_for_dry_run("both webhooks", &non_root, |result| match result {
        Ok(pod) if role_of(pod).is_some() && pod["spec"]["securityContext"]["fsGroup"].is_number() => Ok(()),
        Ok(pod) => Err(format!("admitted as {:#}", pod["spec"])),
        Err(e) => Err(format!("refused: {e}")),
    })
    .await;

    let stored = ns.create_pod_ok(&renamed(&non_root, "both")).await;
    assert_eq!(stored["spec"]["securityContext"]["fsGroup"], json!(65534), "{stored:#}");
    let target = format!("{}/both", ns.name);
    doctor(&["pod", &target, "--inject=fs-group-only"])
        .no_problem()
        .has("ok", "webhook-overlap", "safe, irsa-webhook runs with --inject=fs-group-only")
        .has("ok", "duplicates", "one token volume, one token mount per container and each AWS variable once")
        .has("ok", "fs-group", "fsGroup 65534");
    // Checked as if ours ran in full mode: still safe, and it says why.
    doctor(&["pod", &target])
        .no_problem()
        .has("ok", "webhook-overlap", "both inject credentials: safe, as each recognises the other's additions")
        .has(
            "ok",
            "webhook-overlap",
            &format!("{}-a-eks (webhook iam-for-pods.amazonaws.com) is called first", scope.id),
        )
        .has("hint", "webhook-overlap", "one injector is simpler");

    // A template that carries its own token volume and AWS_REGION twice: both stored, both flagged.
    let mut own = renamed(&non_root, "own-copy");
    own["spec"]["volumes"] = json!([{"name": "irsa-token", "projected": {"sources": [
        {"serviceAccountToken": {"audience": DEFAULT_AUDIENCE, "expirationSeconds": 3600, "path": "token"}}]}}]);
    own["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "irsa-token", "mountPath": "/var/run/secrets/irsa"}]);
    own["spec"]["containers"][0]["env"] =
        json!([{"name": "AWS_REGION", "value": "eu-west-1"}, {"name": "AWS_REGION", "value": "us-east-1"}]);
    ns.create_pod_ok(&own).await;
    doctor(&["pod", &format!("{}/own-copy", ns.name), "--inject=fs-group-only"])
        .exit(1)
        .has("problem", "duplicates", "has 2 token volumes for the credentials (irsa-token, aws-iam-token)")
        .has("problem", "duplicates", "container app mounts the token 2 times")
        .has("problem", "duplicates", "container app sets AWS_REGION 2 times (eu-west-1, us-east-1)");
    drop(ours);
    drop(stand_in);
    scope.cleanup().await;
}

/// Measures `doctor pods --all-namespaces` on `IRSA_E2E_SCAN_PODS` pods (default 10,000) created directly through the
/// API (no kubelet is needed: they stay Pending), spread over 10 namespaces and 100 Deployments, all created before
/// their ServiceAccount got its role. Prints the times; asserts only what the scan found, never how fast. Run on
/// purpose (it takes minutes and ~30 MB of etcd):
/// `cargo test --features e2e --test e2e_doctor -- --ignored --nocapture scan_at_scale`
#[tokio::test]
#[ignore = "creates 10k pods: run on purpose"]
async fn scan_at_scale() {
    use futures::StreamExt as _;
    let _serial = SERIAL.lock().await;
    let total: usize = std::env::var("IRSA_E2E_SCAN_PODS").ok().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let cluster = connect().await;
    let scope = cluster.scope("dr-10k");
    scope.register("nowhere", &[nowhere()]).await;
    let mut namespaces = Vec::new();
    for i in 0..10 {
        let ns = scope.namespace(&format!("n{i}")).await;
        ns.service_account("app", &[]).await;
        for deployment in 0..10 {
            create_replica_set(&ns, &format!("web{deployment}-5d9"), &format!("web{deployment}")).await;
        }
        namespaces.push(ns);
    }
    let pods: Vec<(Namespace, Value)> = (0..total)
        .map(|i| {
            let ns = namespaces[i % 10].clone();
            let deployment = (i / 10) % 10;
            let mut pod =
                owned_pod(&format!("web{deployment}-5d9-{i}"), "app", "ReplicaSet", &format!("web{deployment}-5d9"));
            pod["metadata"]["labels"] = json!({"app": format!("web{deployment}"), "pod-template-hash": "5d9"});
            (ns, pod)
        })
        .collect();
    let started = std::time::Instant::now();
    futures::stream::iter(pods)
        .map(|(ns, pod)| async move {
            if let Err(e) = ns.create_pod(&pod).await {
                panic!("create {}: {e}", pod["metadata"]["name"]);
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    eprintln!("created {total} pods in {:.1} s", started.elapsed().as_secs_f64());
    for ns in &namespaces {
        ns.annotate_service_account("app", &[(ROLE_ANNOTATION, Some(&role("app")))]).await;
    }

    let started = std::time::Instant::now();
    let report = doctor(&["pods", "--all-namespaces", "-o", "json"]);
    let wall = started.elapsed().as_secs_f64();
    report.exit(1);
    let scan: Value = serde_json::from_str(&report.stdout).unwrap_or_else(|e| panic!("{e}\n{}", report.stderr));
    let ours: Vec<&Value> = scan["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter(|g| g["namespace"].as_str().is_some_and(|ns| ns.starts_with(&scope.id)))
        .collect();
    // Grouped by Deployment, through the ReplicaSets: 10 per namespace.
    assert_eq!(ours.len(), 100, "{}", report.stderr);
    assert!(ours.iter().all(|g| g["kind"] == "Deployment"), "{}", report.stderr);
    assert_eq!(ours.iter().map(|g| g["pods"].as_array().map_or(0, Vec::len)).sum::<usize>(), total);
    eprintln!(
        "doctor pods -A: {} pods in {:.1} s wall ({:.1} s in the scan, {} LIST requests); {}",
        scan["pods"],
        wall,
        scan["seconds"].as_f64().unwrap_or_default(),
        scan["requests"],
        report.stderr.trim()
    );

    // Leave no 10k pods behind for the other tests' --all-namespaces scans (no controller empties a namespace).
    for ns in &namespaces {
        ns.pods()
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("delete the pods of {}: {e}", ns.name));
    }
    scope.cleanup().await;
}
