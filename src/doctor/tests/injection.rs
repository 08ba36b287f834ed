//! `injection` and `timing`.

use super::*;

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
