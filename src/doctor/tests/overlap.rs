//! `webhook-overlap` and `duplicates` (issue 15: next to EKS's managed webhook).

use super::*;

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
