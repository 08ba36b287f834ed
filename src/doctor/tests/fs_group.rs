//! `fs-group`.

use super::*;

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
