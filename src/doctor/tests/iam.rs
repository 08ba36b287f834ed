//! IAM's side: `--role-policy`, `--issuer`, `--token-request`.

use super::*;

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
