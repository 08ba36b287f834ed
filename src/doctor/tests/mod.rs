//! `diagnose` as a whole, one file per check; the pods, ServiceAccounts, webhook configurations and the cluster view
//! they share are here.

use super::certificate::unix_date;
use super::facts::is_later;
use super::*;
use crate::identity::ServiceAccountConfig;
use crate::settings::{FsGroupFix, InjectMode};
use serde_json::json;

mod fs_group;
mod iam;
mod injection;
mod overlap;
mod service_account;
mod skip_containers;
mod token;
mod webhook;

const ROLE: &str = "arn:aws:iam::111122223333:role/app";
const POD_CREATED: &str = "2024-05-02T10:00:00Z";
const EARLIER: &str = "2024-05-01T09:00:00Z";
const LATER: &str = "2024-05-03T11:00:00Z";

fn sa(annotations: &[(&str, &str)], created: Option<&str>) -> ServiceAccountManifest {
    ServiceAccountManifest {
        reference: ServiceAccountRef::new("team", "app"),
        annotations: annotations.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        creation_timestamp: created.map(str::to_owned),
    }
}

fn role_sa() -> ServiceAccountManifest {
    sa(&[("eks.amazonaws.com/role-arn", ROLE)], Some(EARLIER))
}

/// A pod as the API stores it (with a creation timestamp and a controller), not mutated.
fn stored_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "app-1", "namespace": "team", "uid": "u-1", "creationTimestamp": POD_CREATED,
            "labels": {"app": "app"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "app-5d9", "controller": true}],
        },
        "spec": {"serviceAccountName": "app", "containers": [{"name": "app", "image": "app:1"}]},
    })
}

fn with(mut pod: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let mut target = &mut pod;
    for token in parent.split('/').skip(1) {
        target = target.as_object_mut().unwrap().entry(token).or_insert_with(|| json!({}));
    }
    target.as_object_mut().unwrap().insert(key.to_owned(), value);
    pod
}

/// What the webhook would have stored: the real mutation applied.
fn mutated(pod: Value, sa: &ServiceAccountManifest, settings: &MutationSettings) -> Value {
    let config = ServiceAccountConfig::from_annotations(
        &sa.reference,
        sa.annotations.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        settings,
    );
    let identity = identity::resolve(&sa.reference, Some(&config), false).unwrap();
    let mutation = mutate::mutate_value(&pod, Some(&identity), settings).unwrap();
    let mut pod = pod;
    json_patch::patch(&mut pod, &mutation.patch).unwrap();
    pod
}

fn offline(pod: &Value, sa: Option<&ServiceAccountManifest>) -> Vec<Finding> {
    offline_with(pod, sa, &MutationSettings::default())
}

fn offline_with(pod: &Value, sa: Option<&ServiceAccountManifest>, settings: &MutationSettings) -> Vec<Finding> {
    let inputs = Inputs {
        pod,
        service_account: sa,
        container_credentials: false,
        settings,
        source: Source::Offline,
        iam: IamInputs::default(),
    };
    diagnose(&inputs).unwrap()
}

struct Cluster {
    configurations: Vec<Value>,
    only: Option<&'static str>,
    namespace_labels: BTreeMap<String, String>,
    namespace_readable: bool,
    now: i64,
    settings: MutationSettings,
    published_issuer: Result<&'static str, &'static str>,
}

/// 2024-05-10T00:00:00Z: a week after the pods above were created.
const NOW: i64 = 1_715_299_200;

impl Cluster {
    fn new(configurations: Vec<Value>) -> Self {
        Self {
            configurations,
            only: None,
            namespace_labels: BTreeMap::new(),
            namespace_readable: true,
            now: NOW,
            settings: MutationSettings::default(),
            published_issuer: Err("not read"),
        }
    }

    fn labels(mut self, pairs: &[(&str, &str)]) -> Self {
        self.namespace_labels = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        self
    }

    fn settings(mut self, settings: MutationSettings) -> Self {
        self.settings = settings;
        self
    }

    fn run(&self, pod: &Value, sa: Option<&ServiceAccountManifest>) -> Vec<Finding> {
        self.run_with(pod, sa, IamInputs::default())
    }

    fn run_with(&self, pod: &Value, sa: Option<&ServiceAccountManifest>, iam: IamInputs<'_>) -> Vec<Finding> {
        let view = ClusterView {
            webhook_configurations: Ok(&self.configurations),
            webhook_config_name: self.only,
            namespace_labels: if self.namespace_readable { Ok(&self.namespace_labels) } else { Err("forbidden") },
            published_issuer: self.published_issuer,
            now: self.now,
        };
        let inputs = Inputs {
            pod,
            service_account: sa,
            container_credentials: false,
            settings: &self.settings,
            source: Source::Cluster(view),
            iam,
        };
        diagnose(&inputs).unwrap()
    }
}

/// A CA valid for a year from the real now, as base64 PEM, and when it ends.
fn ca_bundle() -> &'static (String, i64) {
    static CA: std::sync::OnceLock<(String, i64)> = std::sync::OnceLock::new();
    CA.get_or_init(|| {
        use base64::Engine as _;
        let generated = crate::server::certs::generate(&["irsa-webhook.irsa-system.svc".to_owned()], 365, 30).unwrap();
        let der = {
            use rustls_pki_types::pem::PemObject as _;
            rustls_pki_types::CertificateDer::from_pem_slice(generated.ca_pem.as_bytes()).unwrap()
        };
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        (base64::engine::general_purpose::STANDARD.encode(&generated.ca_pem), cert.validity().not_after.timestamp())
    })
}

/// A configuration as the chart renders it (with the caBundle the webhook patches in).
fn chart_webhook() -> Value {
    let mut config = chart_webhook_without_ca();
    config["webhooks"][0]["clientConfig"]["caBundle"] = json!(ca_bundle().0);
    config
}

fn chart_webhook_without_ca() -> Value {
    json!({
        "metadata": {"name": "irsa-webhook"},
        "webhooks": [{
            "name": "irsa-webhook.amazonaws.com",
            "failurePolicy": "Ignore",
            "clientConfig": {"service": {"name": "irsa-webhook", "namespace": "irsa-system", "path": "/mutate"}},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"],
                       "scope": "Namespaced"}],
            "namespaceSelector": {"matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}]},
            "objectSelector": {"matchExpressions": [
                {"key": "eks.amazonaws.com/skip-pod-identity-webhook", "operator": "DoesNotExist"}]},
        }],
    })
}

fn unrelated_webhook() -> Value {
    json!({"metadata": {"name": "cert-manager-webhook"}, "webhooks": [{
        "name": "webhook.cert-manager.io",
        "clientConfig": {"service": {"name": "cert-manager-webhook", "namespace": "cert-manager", "path": "/mutate"}},
        "rules": [{"operations": ["CREATE"], "apiGroups": ["cert-manager.io"], "apiVersions": ["v1"], "resources": ["*"]}],
    }]})
}

fn find<'a>(findings: &'a [Finding], status: Status, check: &str) -> Option<&'a Finding> {
    findings.iter().find(|f| f.status == status && f.check == check)
}

#[track_caller]
fn expect<'a>(findings: &'a [Finding], status: Status, check: &str) -> &'a Finding {
    find(findings, status, check)
        .unwrap_or_else(|| panic!("no {} {check} in:\n{}", status.as_str(), render_text(findings)))
}

fn non_root(pod: Value) -> Value {
    with(pod, "/spec/securityContext", json!({"runAsUser": 1000, "runAsGroup": 3000}))
}

#[track_caller]
fn no_problems(findings: &[Finding]) {
    assert!(!has_problems(findings), "unexpected problems:\n{}", render_text(findings));
}

// ---------------------------------------------------------------------------------------------------------------
// healthy

#[test]
fn a_mutated_pod_with_a_valid_role_has_no_problem() {
    let sa = role_sa();
    let pod = mutated(stored_pod(), &sa, &MutationSettings::default());
    let findings = offline(&pod, Some(&sa));
    no_problems(&findings);
    assert!(expect(&findings, Status::Ok, CHECK_SERVICE_ACCOUNT).message.contains(ROLE));
    assert!(expect(&findings, Status::Ok, CHECK_INJECTION).message.contains("AWS_ROLE_ARN"));
    expect(&findings, Status::Ok, CHECK_TOKEN_AUDIENCE);
    assert_eq!(expect(&findings, Status::Ok, CHECK_TOKEN_EXPIRATION).message, "token expirationSeconds 86400");
    expect(&findings, Status::Hint, CHECK_AWS_SDK);
    // Offline nothing is said about the webhook registration, and no timing guess is made for a mutated pod.
    assert!(findings.iter().all(|f| f.check != CHECK_WEBHOOK && f.check != CHECK_TIMING));
}

#[test]
fn a_manifest_never_created_is_told_what_the_webhook_will_add() {
    let mut pod = stored_pod();
    let metadata = pod["metadata"].as_object_mut().unwrap();
    metadata.remove("uid");
    metadata.remove("creationTimestamp");
    let findings = offline(&pod, Some(&role_sa()));
    no_problems(&findings);
    let ok = expect(&findings, Status::Ok, CHECK_INJECTION);
    assert!(ok.message.contains("not yet created"), "{}", ok.message);
    assert!(ok.message.contains("volume aws-iam-token"), "{}", ok.message);
    assert!(ok.message.contains("container app: AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE, mount of aws-iam-token"));
    // The token that will be mounted is checked too.
    assert_eq!(
        expect(&findings, Status::Ok, CHECK_TOKEN_AUDIENCE).message,
        "the token the webhook adds has audience sts.amazonaws.com, as the trust policy expects (<issuer>:aud)"
    );
}

#[test]
fn an_invalid_pod_is_an_error_not_a_finding() {
    let pod = json!({"kind": "Pod", "spec": {"containers": "app"}});
    let settings = MutationSettings::default();
    let inputs = Inputs {
        pod: &pod,
        service_account: None,
        container_credentials: false,
        settings: &settings,
        source: Source::Offline,
        iam: IamInputs::default(),
    };
    assert!(matches!(diagnose(&inputs), Err(DoctorError::InvalidPod(_))));
}

// ---------------------------------------------------------------------------------------------------------------
// output and helpers

#[test]
fn text_output_is_aligned_one_line_per_finding() {
    let findings = vec![
        Finding::problem(CHECK_SERVICE_ACCOUNT, "m1", "f1"),
        Finding::ok(CHECK_INJECTION, "m2"),
        Finding::hint(CHECK_TOKEN_EXPIRATION, "m3", None),
    ];
    assert_eq!(
        render_text(&findings),
        "problem  service-account   m1 → f1\nok       injection         m2\nhint     token-expiration  m3\n"
    );
    assert!(has_problems(&findings));
    assert!(!has_problems(&findings[1..]));
    let json = serde_json::to_value(&findings).unwrap();
    assert_eq!(json[0], json!({"status": "problem", "check": "service-account", "message": "m1", "fix": "f1"}));
    assert_eq!(json[1]["fix"], Value::Null);
}

#[test]
fn timestamps_compare_only_when_well_formed() {
    assert!(is_later(LATER, POD_CREATED));
    assert!(!is_later(EARLIER, POD_CREATED));
    assert!(!is_later(POD_CREATED, POD_CREATED));
    assert!(!is_later("yesterday", POD_CREATED));
    assert!(!is_later("2024-05-03T11:00:00+02:00", POD_CREATED));
}
