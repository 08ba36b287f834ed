//! `skip-containers`.

use super::*;

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
