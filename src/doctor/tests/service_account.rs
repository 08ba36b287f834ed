//! `service-account`: the ServiceAccount and its annotations.

use super::*;

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
