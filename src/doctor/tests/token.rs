//! `token-audience`, `token-expiration` and `aws-sdk`.

use super::*;

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
        "Python boto3 1.9.200",
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
