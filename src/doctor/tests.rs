use super::certificate::unix_date;
use super::facts::is_later;
use super::*;
use crate::identity::ServiceAccountConfig;
use crate::settings::{FsGroupFix, InjectMode};
use crate::trust_policy::shell_word;
use serde_json::json;

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
// service-account

#[test]
fn a_missing_service_account_is_a_problem_with_a_fix_for_the_mode() {
    let findings = offline(&stored_pod(), None);
    let problem = expect(&findings, Status::Problem, CHECK_SERVICE_ACCOUNT);
    assert_eq!(problem.message, "ServiceAccount team/app not found in the --service-account files");
    assert!(problem.fix.as_deref().unwrap().contains("kubectl get serviceaccount -n team app -o yaml"));
    // Nothing to inject, so nothing else to say about the pod.
    assert!(find(&findings, Status::Problem, CHECK_INJECTION).is_none());

    let findings = Cluster::new(vec![chart_webhook()]).run(&stored_pod(), None);
    let problem = expect(&findings, Status::Problem, CHECK_SERVICE_ACCOUNT);
    assert_eq!(problem.message, "ServiceAccount team/app not found");
    assert!(problem.fix.as_deref().unwrap().starts_with("kubectl create serviceaccount -n team app"));
    // The webhook registration is still checked.
    expect(&findings, Status::Ok, CHECK_WEBHOOK);
}

#[test]
fn a_service_account_without_a_role_is_a_problem() {
    let findings = offline(&stored_pod(), Some(&sa(&[], Some(EARLIER))));
    let problem = expect(&findings, Status::Problem, CHECK_SERVICE_ACCOUNT);
    assert!(problem.message.contains("has no eks.amazonaws.com/role-arn annotation"));
    assert_eq!(
        problem.fix.as_deref(),
        Some(
            "kubectl annotate serviceaccount -n team app eks.amazonaws.com/role-arn=arn:aws:iam::<account>:role/<role>"
        )
    );
}

#[test]
fn a_foreign_prefix_is_called_out_with_a_rename() {
    let findings = offline(&stored_pod(), Some(&sa(&[("eks.amazon.com/role-arn", ROLE)], Some(EARLIER))));
    let problems: Vec<_> = findings.iter().filter(|f| f.status == Status::Problem).collect();
    assert_eq!(problems.len(), 1, "{}", render_text(&findings));
    assert!(problems[0].message.contains("eks.amazon.com/role-arn is ignored"));
    assert_eq!(
        problems[0].fix.as_deref(),
        Some(
            "rename it to eks.amazonaws.com/role-arn: kubectl annotate serviceaccount -n team app \
             eks.amazon.com/role-arn- eks.amazonaws.com/role-arn=arn:aws:iam::111122223333:role/app"
        )
    );
}

#[test]
fn typos_and_wrong_case_are_called_out() {
    for key in [
        "eks.amazonaws.com/role_arn",
        "eks.amazonaws.com/Role-Arn",
        "eks.amazonaws.com/rolearn",
        "EKS.amazonaws.com/role-arn",
    ] {
        let findings = offline(&stored_pod(), Some(&sa(&[(key, ROLE)], Some(EARLIER))));
        let problems: Vec<_> = findings.iter().filter(|f| f.status == Status::Problem).collect();
        assert_eq!(problems.len(), 1, "{key}:\n{}", render_text(&findings));
        assert!(problems[0].fix.as_deref().unwrap().contains("rename it to eks.amazonaws.com/role-arn"), "{key}");
    }
}

#[test]
fn an_invalid_arn_is_a_problem_and_the_pod_is_still_checked() {
    let bad = sa(&[("eks.amazonaws.com/role-arn", "arn:aws:iam::1234:role/app")], Some(EARLIER));
    let pod = mutated(stored_pod(), &bad, &MutationSettings::default());
    let findings = offline(&pod, Some(&bad));
    let problem = expect(&findings, Status::Problem, CHECK_SERVICE_ACCOUNT);
    assert!(problem.message.contains("12 digits"), "{}", problem.message);
    assert!(problem.fix.as_deref().unwrap().contains("--overwrite eks.amazonaws.com/role-arn=arn:aws:iam::"));
    assert!(find(&findings, Status::Ok, CHECK_SERVICE_ACCOUNT).is_none());
    expect(&findings, Status::Ok, CHECK_INJECTION);
}

#[test]
fn other_annotation_values_get_their_own_fix() {
    let bad = sa(
        &[
            ("eks.amazonaws.com/role-arn", ROLE),
            ("eks.amazonaws.com/sts-regional-endpoints", "yes"),
            ("eks.amazonaws.com/skip-containers", "x"),
        ],
        Some(EARLIER),
    );
    let findings = offline(&stored_pod(), Some(&bad));
    let fixes: Vec<_> = findings
        .iter()
        .filter(|f| f.status == Status::Problem && f.check == CHECK_SERVICE_ACCOUNT)
        .filter_map(|f| f.fix.as_deref())
        .collect();
    assert_eq!(fixes.len(), 2, "{}", render_text(&findings));
    assert!(fixes.iter().any(|f| f.ends_with("--overwrite eks.amazonaws.com/sts-regional-endpoints=true")));
    assert!(fixes.iter().any(|f| f.starts_with("move eks.amazonaws.com/skip-containers to the pod template")));
}

#[test]
fn container_credentials_need_no_role() {
    let settings = MutationSettings::default();
    let inputs = Inputs {
        pod: &stored_pod(),
        service_account: None,
        container_credentials: true,
        settings: &settings,
        source: Source::Offline,
        iam: IamInputs::default(),
    };
    let findings = diagnose(&inputs).unwrap();
    assert!(expect(&findings, Status::Ok, CHECK_SERVICE_ACCOUNT).message.contains("EKS Pod Identity"));
    let problem = expect(&findings, Status::Problem, CHECK_INJECTION);
    assert!(problem.message.contains("eks-pod-identity-token"), "{}", problem.message);
    assert!(expect(&findings, Status::Hint, CHECK_AWS_SDK).message.contains("Pod Identity"));
}

// ---------------------------------------------------------------------------------------------------------------
// injection and timing

#[test]
fn an_unmutated_stored_pod_is_a_problem_with_what_it_lacks_and_how_to_recreate_it() {
    let findings = offline(&stored_pod(), Some(&role_sa()));
    let problem = expect(&findings, Status::Problem, CHECK_INJECTION);
    assert_eq!(
        problem.message,
        "pod team/app-1 was not mutated: it lacks volume aws-iam-token; container app: AWS_ROLE_ARN, \
         AWS_WEB_IDENTITY_TOKEN_FILE, mount of aws-iam-token at /var/run/secrets/eks.amazonaws.com/serviceaccount"
    );
    assert_eq!(
        problem.fix.as_deref(),
        Some("recreate the pod: kubectl delete pod -n team app-1 (its controller ReplicaSet/app-5d9 recreates it)")
    );
    // The ServiceAccount is older than the pod: the annotation must have come later.
    let timing = expect(&findings, Status::Hint, CHECK_TIMING);
    assert!(timing.message.contains("may have been annotated after the pod was created"), "{}", timing.message);
}

#[test]
fn a_service_account_created_after_the_pod_is_named_as_the_cause() {
    let findings = offline(&stored_pod(), Some(&sa(&[("eks.amazonaws.com/role-arn", ROLE)], Some(LATER))));
    let timing = expect(&findings, Status::Hint, CHECK_TIMING);
    assert_eq!(
        timing.message,
        format!(
            "ServiceAccount team/app was created at {LATER}, after the pod ({POD_CREATED}): the webhook found no role \
             when the pod was created"
        )
    );
}

#[test]
fn a_pod_without_a_controller_is_recreated_from_its_manifest() {
    let mut pod = stored_pod();
    pod["metadata"].as_object_mut().unwrap().remove("ownerReferences");
    let findings = offline(&pod, Some(&role_sa()));
    let fix = expect(&findings, Status::Problem, CHECK_INJECTION).fix.clone().unwrap();
    assert!(fix.ends_with("then create it again from its manifest (no controller owns it)"), "{fix}");
}

#[test]
fn a_partially_mutated_pod_names_only_what_is_missing() {
    let sa = role_sa();
    let mut pod = mutated(stored_pod(), &sa, &MutationSettings::default());
    pod["spec"]["containers"].as_array_mut().unwrap().push(json!({"name": "late-sidecar"}));
    let findings = offline(&pod, Some(&sa));
    let problem = expect(&findings, Status::Problem, CHECK_INJECTION);
    assert!(problem.message.ends_with("it lacks container late-sidecar: AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE, mount of aws-iam-token at /var/run/secrets/eks.amazonaws.com/serviceaccount"), "{}", problem.message);
}

#[test]
fn a_stale_role_arn_in_the_pod_is_a_problem() {
    let old = sa(&[("eks.amazonaws.com/role-arn", "arn:aws:iam::111122223333:role/old")], Some(EARLIER));
    let pod = mutated(stored_pod(), &old, &MutationSettings::default());
    let findings = offline(&pod, Some(&role_sa()));
    let problem = expect(&findings, Status::Problem, CHECK_INJECTION);
    assert!(problem
        .message
        .contains("has AWS_ROLE_ARN arn:aws:iam::111122223333:role/old, but ServiceAccount team/app says"));
}

#[test]
fn the_mutation_flags_are_those_of_the_deployed_webhook() {
    // Mutated by a webhook that injects the region; checked with default flags: nothing missing.
    let sa = role_sa();
    let regional = MutationSettings { aws_default_region: Some("eu-west-1".into()), ..MutationSettings::default() };
    let pod = mutated(stored_pod(), &sa, &MutationSettings::default());
    no_problems(&offline(&pod, Some(&sa)));
    // Checked with --aws-default-region: the region is what the webhook would still add.
    let findings = offline_with(&pod, Some(&sa), &regional);
    let problem = expect(&findings, Status::Problem, CHECK_INJECTION);
    assert!(problem.message.ends_with("it lacks container app: AWS_DEFAULT_REGION, AWS_REGION"), "{}", problem.message);
    // A custom prefix: the default one is ignored, and said so (rather than a bare "no role-arn").
    let custom = MutationSettings { annotation_prefix: "example.com".into(), ..MutationSettings::default() };
    let findings = offline_with(&pod, Some(&sa), &custom);
    let problems: Vec<_> = findings.iter().filter(|f| f.status == Status::Problem).collect();
    assert_eq!(problems.len(), 1, "{}", render_text(&findings));
    assert!(problems[0]
        .message
        .contains("eks.amazonaws.com/role-arn is ignored; the webhook reads example.com/role-arn"));
}

#[test]
fn webhook_warnings_are_passed_on_as_hints() {
    let pod = with(stored_pod(), "/spec/volumes", json!([{"name": "aws-iam-token", "emptyDir": {}}]));
    let findings = offline(&pod, Some(&role_sa()));
    let hint = findings.iter().find(|f| f.message.starts_with("the webhook warns:")).unwrap();
    assert!(hint.message.contains("not a projected service-account token"));
    expect(&findings, Status::Problem, CHECK_TOKEN_AUDIENCE);
}

// ---------------------------------------------------------------------------------------------------------------
// webhook

#[test]
fn no_webhook_configuration_is_a_problem_and_the_only_explanation() {
    let findings = Cluster::new(vec![unrelated_webhook()]).run(&stored_pod(), Some(&role_sa()));
    let problem = expect(&findings, Status::Problem, CHECK_WEBHOOK);
    assert!(problem.message.starts_with("no MutatingWebhookConfiguration for irsa-webhook found"));
    assert!(problem.fix.as_deref().unwrap().contains("helm install"));
    expect(&findings, Status::Problem, CHECK_INJECTION);
    assert!(find(&findings, Status::Hint, CHECK_TIMING).is_none());
}

#[test]
fn a_selected_pod_is_ok_and_an_unmutated_one_hints_at_failure_policy_ignore() {
    let cluster =
        Cluster::new(vec![unrelated_webhook(), chart_webhook()]).labels(&[("kubernetes.io/metadata.name", "team")]);
    let sa = role_sa();
    let healthy = mutated(stored_pod(), &sa, &MutationSettings::default());
    let findings = cluster.run(&healthy, Some(&sa));
    no_problems(&findings);
    assert_eq!(
        expect(&findings, Status::Ok, CHECK_WEBHOOK).message,
        "MutatingWebhookConfiguration irsa-webhook (webhook irsa-webhook.amazonaws.com) selects namespace team and this pod"
    );
    assert!(find(&findings, Status::Hint, CHECK_WEBHOOK).is_none());

    let findings = cluster.run(&stored_pod(), Some(&sa));
    let hint = expect(&findings, Status::Hint, CHECK_WEBHOOK);
    assert!(hint.message.contains("failurePolicy Ignore"), "{}", hint.message);
    assert!(hint.fix.as_deref().unwrap().starts_with("kubectl get endpoints -n irsa-system irsa-webhook"));
    expect(&findings, Status::Hint, CHECK_TIMING);
}

#[test]
fn a_namespace_excluded_by_the_namespace_selector_is_a_problem() {
    let mut pod = stored_pod();
    pod["metadata"]["namespace"] = json!("kube-system");
    let cluster = Cluster::new(vec![chart_webhook()]).labels(&[("kubernetes.io/metadata.name", "kube-system")]);
    let findings = cluster.run(&pod, Some(&role_sa()));
    let problem = expect(&findings, Status::Problem, CHECK_WEBHOOK);
    assert_eq!(
        problem.message,
        "namespace kube-system is excluded by MutatingWebhookConfiguration irsa-webhook (webhook \
         irsa-webhook.amazonaws.com): its namespaceSelector needs kubernetes.io/metadata.name notin (kube-system) \
         (namespace labels: kubernetes.io/metadata.name=kube-system)"
    );
    assert!(problem.fix.as_deref().unwrap().contains("webhook.excludeNamespaces"));
    assert!(find(&findings, Status::Hint, CHECK_TIMING).is_none());
}

#[test]
fn a_namespace_without_the_required_label_gets_a_kubectl_label_fix() {
    let mut config = chart_webhook();
    config["webhooks"][0]["namespaceSelector"] = json!({"matchLabels": {"irsa": "enabled"}});
    let findings = Cluster::new(vec![config]).run(&stored_pod(), Some(&role_sa()));
    let problem = expect(&findings, Status::Problem, CHECK_WEBHOOK);
    assert!(problem.message.contains("needs irsa=enabled (namespace labels: none)"), "{}", problem.message);
    assert_eq!(problem.fix.as_deref(), Some("kubectl label namespace team irsa=enabled"));
}

#[test]
fn a_pod_excluded_by_the_object_selector_is_a_problem() {
    let mut pod = stored_pod();
    pod["metadata"]["labels"]["eks.amazonaws.com/skip-pod-identity-webhook"] = json!("true");
    let findings = Cluster::new(vec![chart_webhook()]).run(&pod, Some(&role_sa()));
    let problem = expect(&findings, Status::Problem, CHECK_WEBHOOK);
    assert!(problem.message.contains("its objectSelector needs !eks.amazonaws.com/skip-pod-identity-webhook"));
    assert!(problem
        .fix
        .as_deref()
        .unwrap()
        .starts_with("remove the label eks.amazonaws.com/skip-pod-identity-webhook"));
}

#[test]
fn one_selecting_webhook_is_enough() {
    let mut narrow = chart_webhook();
    narrow["metadata"]["name"] = json!("irsa-webhook-narrow");
    narrow["webhooks"][0]["namespaceSelector"] = json!({"matchLabels": {"only": "this"}});
    let findings = Cluster::new(vec![narrow, chart_webhook()]).run(&stored_pod(), Some(&role_sa()));
    assert!(find(&findings, Status::Problem, CHECK_WEBHOOK).is_none(), "{}", render_text(&findings));
    expect(&findings, Status::Ok, CHECK_WEBHOOK);
}

#[test]
fn the_reference_webhook_is_recognised_and_rules_are_checked() {
    let reference = json!({"metadata": {"name": "pod-identity-webhook"}, "webhooks": [{
        "name": "iam-for-pods.amazonaws.com", "failurePolicy": "Ignore",
        "clientConfig": {"service": {"name": "pod-identity-webhook", "namespace": "default", "path": "/mutate"}},
        "rules": [{"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
    }]});
    let findings = Cluster::new(vec![reference]).run(&stored_pod(), Some(&role_sa()));
    let problem = expect(&findings, Status::Problem, CHECK_WEBHOOK);
    assert_eq!(
        problem.message,
        "MutatingWebhookConfiguration pod-identity-webhook (webhook iam-for-pods.amazonaws.com) has no rule for CREATE of v1 pods"
    );
}

#[test]
fn a_url_webhook_calling_mutate_is_recognised() {
    let config = json!({"metadata": {"name": "local"}, "webhooks": [{
        "name": "local.example.com", "failurePolicy": "Fail",
        "clientConfig": {"url": "https://127.0.0.1:8443/mutate?irsa"},
        "rules": [{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}],
    }]});
    let findings = Cluster::new(vec![config]).run(&stored_pod(), Some(&role_sa()));
    expect(&findings, Status::Ok, CHECK_WEBHOOK);
    // failurePolicy Fail: an unreachable webhook would have refused the pod, so no such hint.
    assert!(find(&findings, Status::Hint, CHECK_WEBHOOK).is_none());
}

#[test]
fn webhook_config_name_restricts_the_search() {
    let mut cluster = Cluster::new(vec![
        json!({"metadata": {"name": "custom"}, "webhooks": [{
            "name": "anything.example.com",
            "clientConfig": {"service": {"name": "svc", "namespace": "ns", "path": "/m"}},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
        }]}),
        chart_webhook(),
    ]);
    cluster.only = Some("custom");
    let findings = cluster.run(&stored_pod(), Some(&role_sa()));
    assert!(expect(&findings, Status::Ok, CHECK_WEBHOOK).message.contains("custom"));
    cluster.only = Some("missing");
    let findings = cluster.run(&stored_pod(), Some(&role_sa()));
    assert!(expect(&findings, Status::Problem, CHECK_WEBHOOK)
        .message
        .starts_with("no MutatingWebhookConfiguration named missing found"));
}

#[test]
fn unreadable_cluster_parts_are_hints() {
    let mut cluster = Cluster::new(vec![chart_webhook()]);
    cluster.namespace_readable = false;
    let findings = cluster.run(&stored_pod(), Some(&role_sa()));
    assert!(expect(&findings, Status::Hint, CHECK_WEBHOOK).message.contains("cannot read namespace team (forbidden)"));
    // Still a suspect list for the unmutated pod.
    expect(&findings, Status::Hint, CHECK_TIMING);

    let settings = MutationSettings::default();
    let labels = BTreeMap::new();
    let view = ClusterView {
        webhook_configurations: Err("forbidden"),
        webhook_config_name: None,
        namespace_labels: Ok(&labels),
        published_issuer: Err("not read"),
        now: NOW,
    };
    let pod = stored_pod();
    let sa = role_sa();
    let inputs = Inputs {
        pod: &pod,
        service_account: Some(&sa),
        container_credentials: false,
        settings: &settings,
        source: Source::Cluster(view),
        iam: IamInputs::default(),
    };
    let findings = diagnose(&inputs).unwrap();
    assert!(expect(&findings, Status::Hint, CHECK_WEBHOOK)
        .message
        .starts_with("cannot list MutatingWebhookConfigurations (forbidden)"));
}

#[test]
fn a_malformed_selector_is_a_problem() {
    let mut config = chart_webhook();
    config["webhooks"][0]["namespaceSelector"] = json!({"matchExpressions": [{"key": "a", "operator": "Gt"}]});
    let findings = Cluster::new(vec![config]).run(&stored_pod(), Some(&role_sa()));
    assert!(expect(&findings, Status::Problem, CHECK_WEBHOOK).message.contains("operator \"Gt\""));
}

#[test]
fn the_ca_bundle_of_the_selecting_webhook_is_checked() {
    let (_, not_after) = *ca_bundle();
    let mut cluster = Cluster::new(vec![chart_webhook()]);
    cluster.now = not_after - 200 * 86400;
    let findings = cluster.run(&stored_pod(), Some(&role_sa()));
    let ok = expect(&findings, Status::Ok, CHECK_CERTIFICATE);
    assert!(ok.message.starts_with("the caBundle CA of MutatingWebhookConfiguration irsa-webhook"), "{}", ok.message);
    assert!(ok.message.contains(&format!("is valid until {}", unix_date(not_after))), "{}", ok.message);

    cluster.now = not_after - 10 * 86400 - 60;
    let findings = cluster.run(&stored_pod(), Some(&role_sa()));
    assert!(expect(&findings, Status::Hint, CHECK_CERTIFICATE).message.ends_with("in 10 days"));

    cluster.now = not_after + 1;
    let findings = cluster.run(&stored_pod(), Some(&role_sa()));
    let problem = expect(&findings, Status::Problem, CHECK_CERTIFICATE);
    assert!(problem.message.contains("x509: certificate has expired"), "{}", problem.message);
    assert!(problem.fix.as_deref().unwrap().contains("gen-certs.sh"));
}

#[test]
fn a_missing_or_broken_ca_bundle_is_a_problem() {
    let findings = Cluster::new(vec![chart_webhook_without_ca()]).run(&stored_pod(), Some(&role_sa()));
    assert!(expect(&findings, Status::Problem, CHECK_CERTIFICATE).message.contains("has no caBundle"));
    for bundle in ["%%%", "bm90IGEgY2VydGlmaWNhdGU="] {
        let mut config = chart_webhook_without_ca();
        config["webhooks"][0]["clientConfig"]["caBundle"] = json!(bundle);
        let findings = Cluster::new(vec![config]).run(&stored_pod(), Some(&role_sa()));
        expect(&findings, Status::Problem, CHECK_CERTIFICATE);
    }
}

#[test]
fn unix_dates() {
    assert_eq!(unix_date(0), "1970-01-01");
    assert_eq!(unix_date(NOW), "2024-05-10");
    assert_eq!(unix_date(951_782_400), "2000-02-29");
    assert_eq!(unix_date(4_102_444_799), "2099-12-31");
}

// ---------------------------------------------------------------------------------------------------------------
// skip-containers

#[test]
fn skipped_containers_are_hinted_and_all_skipped_is_a_problem() {
    let two = with(stored_pod(), "/spec/containers", json!([{"name": "app"}, {"name": "proxy"}]));
    let sa = role_sa();
    let skip =
        |pod: Value, list: &str| with(pod, "/metadata/annotations", json!({"eks.amazonaws.com/skip-containers": list}));

    let pod = mutated(skip(two.clone(), "proxy"), &sa, &MutationSettings::default());
    let findings = offline(&pod, Some(&sa));
    no_problems(&findings);
    let hint = expect(&findings, Status::Hint, CHECK_SKIP_CONTAINERS);
    assert_eq!(
        hint.message,
        "container proxy is listed in eks.amazonaws.com/skip-containers: it gets no AWS credentials"
    );

    let findings = offline(&skip(two.clone(), "app, proxy"), Some(&sa));
    let problem = expect(&findings, Status::Problem, CHECK_SKIP_CONTAINERS);
    assert!(problem.message.starts_with("every container of pod team/app-1 is listed"));

    let findings = offline(&mutated(skip(two, "prox"), &sa, &MutationSettings::default()), Some(&sa));
    let hint = expect(&findings, Status::Hint, CHECK_SKIP_CONTAINERS);
    assert_eq!(hint.message, "eks.amazonaws.com/skip-containers names prox, which is not a container of this pod");
    assert_eq!(hint.fix.as_deref(), Some("check the spelling; containers: app, proxy"));
}

// ---------------------------------------------------------------------------------------------------------------
// fs-group

fn non_root(pod: Value) -> Value {
    with(pod, "/spec/securityContext", json!({"runAsUser": 1000, "runAsGroup": 3000}))
}

#[test]
fn non_root_without_fs_group_is_a_problem_naming_what_the_fix_would_set() {
    let sa = role_sa();
    let never = MutationSettings { fs_group_fix: FsGroupFix::Never, ..MutationSettings::default() };
    // Mutated by a webhook without the fix (the reference), checked against one with it.
    let pod = mutated(non_root(stored_pod()), &sa, &never);
    let findings = offline(&pod, Some(&sa));
    let problem = expect(&findings, Status::Problem, CHECK_FS_GROUP);
    assert!(problem.message.contains("runs as non-root without fsGroup"), "{}", problem.message);
    assert!(problem.message.ends_with("the fsGroup fix would set fsGroup 3000"), "{}", problem.message);
    assert!(problem.fix.as_deref().unwrap().contains("fsGroup: 3000"));
    expect(&findings, Status::Ok, CHECK_INJECTION);
}

#[test]
fn non_root_with_the_fix_off_is_a_problem_saying_why() {
    let sa = role_sa();
    let never = MutationSettings { fs_group_fix: FsGroupFix::Never, ..MutationSettings::default() };
    let pod = mutated(non_root(stored_pod()), &sa, &never);
    let findings = offline_with(&pod, Some(&sa), &never);
    let problem = expect(&findings, Status::Problem, CHECK_FS_GROUP);
    assert!(problem.message.contains("the fsGroup fix is off (--fs-group-fix=never)"), "{}", problem.message);

    let off = with(non_root(stored_pod()), "/metadata/annotations", json!({"eks.amazonaws.com/fs-group": "off"}));
    let pod = mutated(off, &sa, &MutationSettings::default());
    let findings = offline(&pod, Some(&sa));
    let problem = expect(&findings, Status::Problem, CHECK_FS_GROUP);
    assert!(problem.message.contains("(the pod's eks.amazonaws.com/fs-group: off)"), "{}", problem.message);
}

#[test]
fn fs_group_is_ok_when_set_or_root_and_a_hint_when_unknown() {
    let sa = role_sa();
    let pod = mutated(non_root(stored_pod()), &sa, &MutationSettings::default());
    let findings = offline(&pod, Some(&sa));
    no_problems(&findings);
    assert_eq!(
        expect(&findings, Status::Ok, CHECK_FS_GROUP).message,
        "fsGroup 3000: the token file is readable by that group"
    );

    let root = mutated(
        with(stored_pod(), "/spec/securityContext", json!({"runAsUser": 0})),
        &sa,
        &MutationSettings::default(),
    );
    assert!(expect(&offline(&root, Some(&sa)), Status::Ok, CHECK_FS_GROUP).message.contains("runs as root"));

    let unknown = mutated(stored_pod(), &sa, &MutationSettings::default());
    let hint = expect(&offline(&unknown, Some(&sa)), Status::Hint, CHECK_FS_GROUP).clone();
    assert!(hint.message.contains("no runAsUser"));
    assert!(hint.fix.unwrap().contains("--fs-group-fix=always"));
}

#[test]
fn fs_group_for_manifests_unmutated_pods_and_windows() {
    let sa = role_sa();
    let mut manifest = non_root(stored_pod());
    manifest["metadata"] = json!({"name": "app", "namespace": "team"});
    let findings = offline(&manifest, Some(&sa));
    assert_eq!(
        expect(&findings, Status::Ok, CHECK_FS_GROUP).message,
        "the fsGroup fix will set fsGroup 3000, so the token is readable"
    );
    // Stored but never mutated: recreating fixes both, so the fsGroup is a hint beside the injection problem.
    let findings = offline(&non_root(stored_pod()), Some(&sa));
    assert!(find(&findings, Status::Problem, CHECK_FS_GROUP).is_none());
    assert!(expect(&findings, Status::Hint, CHECK_FS_GROUP).message.contains("once recreated"));
    // Windows pods cannot have an fsGroup: nothing to say.
    let windows = with(non_root(stored_pod()), "/spec/nodeSelector", json!({"kubernetes.io/os": "windows"}));
    let windows = mutated(windows, &sa, &MutationSettings::default());
    let findings = offline(&windows, Some(&sa));
    assert!(findings.iter().all(|f| f.check != CHECK_FS_GROUP), "{}", render_text(&findings));
}

// ---------------------------------------------------------------------------------------------------------------
// token

#[test]
fn token_audience_must_match_the_service_account_or_sts() {
    let custom = sa(&[("eks.amazonaws.com/role-arn", ROLE), ("eks.amazonaws.com/audience", "custom")], Some(EARLIER));
    let pod = mutated(stored_pod(), &custom, &MutationSettings::default());
    assert!(expect(&offline(&pod, Some(&custom)), Status::Ok, CHECK_TOKEN_AUDIENCE).message.contains("custom"));
    // Mutated with the default audience, then the ServiceAccount asked for another: sts.amazonaws.com still passes.
    let pod = mutated(stored_pod(), &role_sa(), &MutationSettings::default());
    no_problems(&offline(&pod, Some(&custom)));
    // A token for some other audience does not.
    let mut other = pod.clone();
    other["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["audience"] = json!("vault");
    let findings = offline(&other, Some(&custom));
    let problem = expect(&findings, Status::Problem, CHECK_TOKEN_AUDIENCE);
    assert!(problem.message.starts_with("token audience is vault, but the trust policy expects custom"));
}

#[test]
fn token_expiration_under_an_hour_is_a_hint_and_under_ten_minutes_a_problem() {
    let short =
        sa(&[("eks.amazonaws.com/role-arn", ROLE), ("eks.amazonaws.com/token-expiration", "1200")], Some(EARLIER));
    let pod = mutated(stored_pod(), &short, &MutationSettings::default());
    let findings = offline(&pod, Some(&short));
    no_problems(&findings);
    let hint = expect(&findings, Status::Hint, CHECK_TOKEN_EXPIRATION);
    assert!(hint.message.starts_with("token expirationSeconds 1200, under an hour"));

    let mut tiny = pod.clone();
    tiny["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"] = json!(300);
    expect(&offline(&tiny, Some(&short)), Status::Problem, CHECK_TOKEN_EXPIRATION);

    let mut defaulted = pod;
    defaulted["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
        .as_object_mut()
        .unwrap()
        .remove("expirationSeconds");
    assert_eq!(
        expect(&offline(&defaulted, Some(&short)), Status::Ok, CHECK_TOKEN_EXPIRATION).message,
        "token expirationSeconds 3600"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// aws-sdk

#[test]
fn the_sdk_hint_lists_the_documented_minimum_versions() {
    let findings = offline(&stored_pod(), Some(&role_sa()));
    let hint = expect(&findings, Status::Hint, CHECK_AWS_SDK);
    for needle in [
        "Java v2 2.10.11",
        "Go v2 all",
        "Python boto3 1.9.220",
        "botocore 1.12.200",
        "AWS CLI 1.16.232",
        "Node.js v3 3.27.0",
        ".NET 3.3.659.1",
        "PHP 3.110.7",
        "AWS EKS docs",
    ] {
        assert!(hint.message.contains(needle), "{needle} missing from {}", hint.message);
    }
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

#[test]
fn shell_quoting_of_annotation_values() {
    assert_eq!(shell_word(ROLE), ROLE);
    assert_eq!(shell_word("a b"), "'a b'");
    assert_eq!(shell_word("it's"), r"'it'\''s'");
    assert_eq!(shell_word(""), "''");
}

// ---------------------------------------------------------------------------------------------------------------
// webhook-overlap and duplicates (issue 15: next to EKS's managed webhook)

/// EKS's managed webhook (and the reference's own deployment) as `kubectl get -o json` shows it.
fn eks_webhook() -> Value {
    json!({"metadata": {"name": "pod-identity-webhook"}, "webhooks": [{
        "name": "iam-for-pods.amazonaws.com", "failurePolicy": "Ignore", "reinvocationPolicy": "IfNeeded",
        "clientConfig": {"url": "https://127.0.0.1:23443/mutate", "caBundle": ca_bundle().0},
        "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
        "objectSelector": {"matchExpressions": [
            {"key": "eks.amazonaws.com/skip-pod-identity-webhook", "operator": "DoesNotExist"}]},
    }]})
}

fn fs_group_only() -> MutationSettings {
    MutationSettings { inject: InjectMode::FsGroupOnly, ..MutationSettings::default() }
}

#[test]
fn ours_in_fs_group_only_mode_next_to_eks_is_safe() {
    let sa = role_sa();
    // EKS injected the credentials (no fsGroup fix there); ours added the fsGroup.
    let pod = mutated(non_root(stored_pod()), &sa, &MutationSettings::default());
    let cluster = Cluster::new(vec![chart_webhook(), eks_webhook()]).settings(fs_group_only());
    let findings = cluster.run(&pod, Some(&sa));
    no_problems(&findings);
    let ok = expect(&findings, Status::Ok, CHECK_OVERLAP);
    assert!(ok.message.contains("safe, irsa-webhook runs with --inject=fs-group-only"), "{}", ok.message);
    // Configurations are called in name order: irsa-webhook < pod-identity-webhook.
    assert!(ok
        .message
        .contains("(MutatingWebhookConfiguration irsa-webhook (webhook irsa-webhook.amazonaws.com) is called first)"));
    assert!(expect(&findings, Status::Ok, CHECK_DUPLICATES).message.contains("one token volume"));
    // Both selecting webhooks are named, each with its caBundle checked.
    assert_eq!(findings.iter().filter(|f| f.status == Status::Ok && f.check == CHECK_WEBHOOK).count(), 2);
    assert_eq!(findings.iter().filter(|f| f.check == CHECK_CERTIFICATE).count(), 2);
}

#[test]
fn two_full_injectors_are_safe_when_they_recognise_each_other_and_say_what_differs() {
    let sa = role_sa();
    let pod = mutated(stored_pod(), &sa, &MutationSettings::default());
    let findings = Cluster::new(vec![eks_webhook(), chart_webhook()]).run(&pod, Some(&sa));
    no_problems(&findings);
    let ok = expect(&findings, Status::Ok, CHECK_OVERLAP);
    assert!(ok.message.contains("both inject credentials: safe"), "{}", ok.message);
    assert!(ok.message.contains("both name the token volume aws-iam-token"), "{}", ok.message);
    let hint = expect(&findings, Status::Hint, CHECK_OVERLAP);
    assert!(hint.message.starts_with("one injector is simpler"), "{}", hint.message);

    let custom = MutationSettings { token_audience: "vault".into(), ..MutationSettings::default() };
    let findings = Cluster::new(vec![eks_webhook(), chart_webhook()]).settings(custom).run(&pod, Some(&sa));
    let hint = expect(&findings, Status::Hint, CHECK_OVERLAP);
    assert!(hint.message.contains("audience vault (theirs: sts.amazonaws.com)"), "{}", hint.message);
}

#[test]
fn two_injectors_that_do_not_recognise_each_others_volume_are_a_problem() {
    let mut settings = MutationSettings::default();
    settings.container_credentials.token_volume_name = "pod-identity-token".into();
    let cluster = Cluster::new(vec![eks_webhook(), chart_webhook()]).settings(settings);
    let view = ClusterView {
        webhook_configurations: Ok(&cluster.configurations),
        webhook_config_name: None,
        namespace_labels: Ok(&cluster.namespace_labels),
        published_issuer: Err("not read"),
        now: NOW,
    };
    let pod = stored_pod();
    let inputs = Inputs {
        pod: &pod,
        service_account: None,
        container_credentials: true,
        settings: &cluster.settings,
        source: Source::Cluster(view),
        iam: IamInputs::default(),
    };
    let findings = diagnose(&inputs).unwrap();
    let problem = expect(&findings, Status::Problem, CHECK_OVERLAP);
    assert!(problem.message.contains("pod-identity-token"), "{}", problem.message);
    assert!(problem.message.contains("eks-pod-identity-token"), "{}", problem.message);
}

#[test]
fn fs_group_only_without_an_injector_and_two_registrations_of_one() {
    let sa = role_sa();
    let findings = Cluster::new(vec![chart_webhook()]).settings(fs_group_only()).run(&stored_pod(), Some(&sa));
    let problem = expect(&findings, Status::Problem, CHECK_OVERLAP);
    assert!(problem.message.contains("no webhook that injects credentials"), "{}", problem.message);
    let injection = expect(&findings, Status::Problem, CHECK_INJECTION);
    assert!(injection.message.contains("--inject=fs-group-only"), "{}", injection.message);

    let mut second = chart_webhook();
    second["metadata"]["name"] = json!("irsa-webhook-old");
    let pod = mutated(stored_pod(), &sa, &MutationSettings::default());
    let findings = Cluster::new(vec![chart_webhook(), second]).run(&pod, Some(&sa));
    no_problems(&findings);
    let hint = expect(&findings, Status::Hint, CHECK_OVERLAP);
    assert!(hint.message.starts_with("2 registrations of irsa-webhook select this pod"), "{}", hint.message);
}

#[test]
fn duplicates_are_flagged_whatever_added_them() {
    let sa = role_sa();
    let mut pod = mutated(stored_pod(), &sa, &MutationSettings::default());
    pod["spec"]["volumes"].as_array_mut().unwrap().push(json!({"name": "irsa-token", "projected": {"sources": [
        {"serviceAccountToken": {"audience": "sts.amazonaws.com", "expirationSeconds": 3600, "path": "token"}}]}}));
    let container = &mut pod["spec"]["containers"][0];
    container["volumeMounts"].as_array_mut().unwrap().push(json!({"name": "irsa-token", "mountPath": "/irsa"}));
    container["env"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "AWS_ROLE_ARN", "value": "arn:aws:iam::111122223333:role/other"}));
    let findings = offline(&pod, Some(&sa));
    let problems: Vec<&str> = findings
        .iter()
        .filter(|f| f.status == Status::Problem && f.check == CHECK_DUPLICATES)
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(problems.len(), 3, "{}", render_text(&findings));
    assert!(problems[0].contains("has 2 token volumes for the credentials (aws-iam-token, irsa-token)"));
    assert!(problems[1].starts_with("container app mounts the token 2 times"), "{}", problems[1]);
    assert!(problems[2].starts_with("container app sets AWS_ROLE_ARN 2 times"), "{}", problems[2]);
    assert!(problems[2].ends_with("Kubernetes uses the last"));

    // The API server's own token volume (no audience) and other audiences are not the credentials' token.
    let mut pod = mutated(stored_pod(), &sa, &MutationSettings::default());
    pod["spec"]["volumes"].as_array_mut().unwrap().extend([
        json!({"name": "kube-api-access-x", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}),
        json!({"name": "vault", "projected": {"sources": [{"serviceAccountToken": {"audience": "vault", "path": "t"}}]}}),
    ]);
    let findings = offline(&pod, Some(&sa));
    assert!(find(&findings, Status::Problem, CHECK_DUPLICATES).is_none(), "{}", render_text(&findings));
    // No second webhook: no `ok duplicates` line either.
    assert!(find(&findings, Status::Ok, CHECK_DUPLICATES).is_none());
}

// ---------------------------------------------------------------------------------------------------------------
// IAM's side: --role-policy, --issuer, --token-request

const ISSUER: &str = "https://oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";

fn policy(sub: &str) -> crate::iam::RolePolicy {
    let host = ISSUER.trim_start_matches("https://");
    crate::iam::parse(
        json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": format!("arn:aws:iam::111122223333:oidc-provider/{host}")},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {format!("{host}:sub"): sub, format!("{host}:aud"): "sts.amazonaws.com"}}}]})
        .to_string()
        .as_bytes(),
    )
    .unwrap()
}

fn offline_iam(pod: &Value, sa: &ServiceAccountManifest, iam: IamInputs<'_>) -> Vec<Finding> {
    let settings = MutationSettings::default();
    let inputs = Inputs {
        pod,
        service_account: Some(sa),
        container_credentials: false,
        settings: &settings,
        source: Source::Offline,
        iam,
    };
    diagnose(&inputs).unwrap()
}

#[test]
fn the_role_policy_is_evaluated_for_the_pods_token() {
    let sa = role_sa();
    let pod = mutated(stored_pod(), &sa, &MutationSettings::default());
    let good = policy("system:serviceaccount:team:app");
    let iam = IamInputs { role_policy: Some(&good), issuer: Some(ISSUER), token_request: None };
    let findings = offline_iam(&pod, &sa, iam);
    no_problems(&findings);
    assert!(expect(&findings, Status::Ok, CHECK_TRUST_POLICY).message.contains("allows ServiceAccount team/app"));

    let typo = policy("system:serviceaccount:team:ap");
    let iam = IamInputs { role_policy: Some(&typo), issuer: Some(ISSUER), token_request: None };
    let findings = offline_iam(&pod, &sa, iam);
    let problem = expect(&findings, Status::Problem, CHECK_TRUST_POLICY);
    assert!(problem.message.contains("a typo?"), "{}", problem.message);

    // Without an issuer nothing is guessed.
    let iam = IamInputs { role_policy: Some(&good), issuer: None, token_request: None };
    let problem = offline_iam(&pod, &sa, iam).into_iter().find(|f| f.check == CHECK_TRUST_POLICY).unwrap();
    assert!(problem.message.contains("issuer is not known"), "{}", problem.message);
}

#[test]
fn the_published_issuer_wins_and_a_different_issuer_flag_is_a_problem() {
    let sa = role_sa();
    let pod = mutated(stored_pod(), &sa, &MutationSettings::default());
    let good = policy("system:serviceaccount:team:app");
    let mut cluster = Cluster::new(vec![chart_webhook()]);
    cluster.published_issuer = Ok("https://oidc.eks.us-west-2.amazonaws.com/id/C0FFEE0000000000000000000000000A");
    let iam = IamInputs { role_policy: Some(&good), issuer: Some(ISSUER), token_request: None };
    let findings = cluster.run_with(&pod, Some(&sa), iam);
    let issuer = expect(&findings, Status::Problem, CHECK_ISSUER);
    assert!(
        issuer.message.starts_with(&format!("--issuer is {ISSUER}, but the cluster publishes")),
        "{}",
        issuer.message
    );
    // Evaluated with the cluster's issuer: the policy is another cluster's.
    let problem = expect(&findings, Status::Problem, CHECK_TRUST_POLICY);
    assert!(problem.message.contains("another cluster"), "{}", problem.message);
}

fn plan() -> TokenRequestPlan {
    token_request::example_plan()
}

fn claims(iss: &str) -> TokenClaims {
    TokenClaims {
        iss: Some(iss.into()),
        sub: Some("system:serviceaccount:team:app".into()),
        aud: vec!["sts.amazonaws.com".into()],
        exp: Some(NOW + 86400),
        iat: Some(NOW),
        kubernetes: None,
    }
}

#[test]
fn the_token_request_plan_is_the_kubelets_request_for_the_pod() {
    let sa = role_sa();
    let settings = MutationSettings::default();
    let pod = mutated(stored_pod(), &sa, &settings);
    let inputs = Inputs {
        pod: &pod,
        service_account: Some(&sa),
        container_credentials: false,
        settings: &settings,
        source: Source::Offline,
        iam: IamInputs::default(),
    };
    assert_eq!(token_request_plan(&inputs), Some(plan()));
    // Not yet mutated: the volume the webhook would add, said so.
    let pod = stored_pod();
    let inputs = Inputs { pod: &pod, ..inputs };
    assert_eq!(token_request_plan(&inputs), Some(TokenRequestPlan { from_pod: false, ..plan() }));
    // No role: nothing to ask for.
    let inputs = Inputs { service_account: None, ..inputs };
    assert_eq!(token_request_plan(&inputs), None);
}

#[test]
fn the_tokens_claims_are_checked_against_the_cluster_and_the_policy() {
    let sa = role_sa();
    let pod = mutated(stored_pod(), &sa, &MutationSettings::default());
    let good = policy("system:serviceaccount:team:app");
    let mut cluster = Cluster::new(vec![chart_webhook()]);
    cluster.published_issuer = Ok(ISSUER);

    let issued = TokenRequestOutcome::Issued { plan: plan(), claims: claims(ISSUER) };
    let iam = IamInputs { role_policy: Some(&good), issuer: None, token_request: Some(&issued) };
    let findings = cluster.run_with(&pod, Some(&sa), iam);
    no_problems(&findings);
    let ok = expect(&findings, Status::Ok, CHECK_TOKEN_REQUEST);
    assert!(
        ok.message.contains(&format!(
            "iss {ISSUER}, sub system:serviceaccount:team:app, aud sts.amazonaws.com, valid 86400 s"
        )),
        "{}",
        ok.message
    );
    assert!(expect(&findings, Status::Ok, CHECK_ISSUER).message.contains("is the issuer the cluster publishes"));
    expect(&findings, Status::Ok, CHECK_TRUST_POLICY);

    // The token's iss differs from the discovery document, and the policy is evaluated with the real iss.
    let other = "https://oidc.eks.us-west-2.amazonaws.com/id/C0FFEE0000000000000000000000000A";
    let mut shortened = claims(other);
    shortened.exp = Some(NOW + 3600);
    let issued = TokenRequestOutcome::Issued { plan: plan(), claims: shortened };
    let iam = IamInputs { role_policy: Some(&good), issuer: None, token_request: Some(&issued) };
    let findings = cluster.run_with(&pod, Some(&sa), iam);
    assert!(expect(&findings, Status::Problem, CHECK_ISSUER)
        .message
        .contains("but /.well-known/openid-configuration says"));
    assert!(expect(&findings, Status::Problem, CHECK_TRUST_POLICY).message.contains("another cluster"));
    assert!(expect(&findings, Status::Hint, CHECK_TOKEN_REQUEST).message.contains("shortened the token to 3600 s"));

    // Refused: a hint naming the permission, never a problem of the pod.
    let refused = TokenRequestOutcome::Refused { plan: plan(), reason: "403 forbidden".into() };
    let iam = IamInputs { role_policy: None, issuer: None, token_request: Some(&refused) };
    let findings = cluster.run_with(&pod, Some(&sa), iam);
    no_problems(&findings);
    let hint = expect(&findings, Status::Hint, CHECK_TOKEN_REQUEST);
    assert!(hint.fix.as_deref().unwrap().contains("create on serviceaccounts/token"), "{hint:?}");
}
