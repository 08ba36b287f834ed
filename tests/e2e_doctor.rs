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

#[path = "e2e_support/mod.rs"]
mod e2e_support;

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::Duration;

use e2e_support::*;
use kube::api::{DeleteParams, ListParams};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_irsa-webhook");

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
    let harness = Harness::get();
    let output = Command::new(BIN)
        .arg("doctor")
        .args(args)
        .arg("--kubeconfig")
        .arg(&harness.kubeconfig)
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
