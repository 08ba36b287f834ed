//! `webhook` and `certificate`: the registration's rules, selectors and caBundle.

use super::*;

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
