use super::{mutate_value as mutate, *};
use crate::identity::{FsGroupRequest, ServiceAccountRef};
use serde_json::json;

fn web_identity() -> Identity<'static> {
    Identity {
        service_account: Box::leak(Box::new(ServiceAccountRef::new("default", "app"))),
        credentials: Credentials::WebIdentity { role_arn: "arn:aws:iam::111122223333:role/app" },
        audience: None,
        regional_sts: None,
        token_expiration: None,
        fs_group: None,
    }
}

fn apply(pod: &Value, mutation: &ValueMutation) -> Value {
    let mut out = pod.clone();
    json_patch::patch(&mut out, &mutation.patch).expect("patch applies");
    out
}

fn mutated(pod: Value, identity: &Identity, settings: &MutationSettings) -> Value {
    let m = mutate(&pod, Some(identity), settings).expect("valid pod");
    let out = apply(&pod, &m);
    let again = mutate(&out, Some(identity), settings).expect("valid pod");
    assert!(again.is_empty(), "second mutation must be empty: {:?}", again.patch);
    out
}

#[test]
fn no_identity_means_no_patch() {
    let pod = json!({"spec": {"containers": [{"name": "a"}]}});
    assert!(mutate(&pod, None, &MutationSettings::default()).unwrap().is_empty());
}

#[test]
fn basic_pod_gets_env_volume_and_mount_in_reference_order() {
    let settings = MutationSettings {
        aws_default_region: Some("us-west-2".into()),
        sts_regional_endpoint: true,
        ..Default::default()
    };
    let out = mutated(json!({"spec": {"containers": [{"name": "a", "image": "x"}]}}), &web_identity(), &settings);
    let names: Vec<_> =
        out["spec"]["containers"][0]["env"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "AWS_STS_REGIONAL_ENDPOINTS",
            "AWS_DEFAULT_REGION",
            "AWS_REGION",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE"
        ]
    );
    assert_eq!(out["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"], 86400);
    assert_eq!(out["spec"]["containers"][0]["volumeMounts"][0]["readOnly"], true);
    assert!(out["spec"].get("securityContext").is_none(), "root pod in auto mode: no fsGroup");
}

#[test]
fn patch_appends_to_existing_arrays_without_touching_them() {
    let pod = json!({"spec": {
        "containers": [{"name": "a", "env": [{"name": "X", "value": "1"}], "volumeMounts": [{"name": "data", "mountPath": "/d"}]}],
        "volumes": [{"name": "data", "emptyDir": {}}],
    }});
    let m = mutate(&pod, Some(&web_identity()), &MutationSettings::default()).unwrap();
    let paths: Vec<String> = m.patch.0.iter().map(|op| op.path().to_string()).collect();
    assert_eq!(
        paths,
        [
            "/spec/volumes/-",
            "/spec/containers/0/env/-",
            "/spec/containers/0/env/-",
            "/spec/containers/0/volumeMounts/-"
        ]
    );
}

#[test]
fn mount_path_collision_is_skipped_with_a_warning() {
    let pod = json!({"spec": {"containers": [{"name": "a", "volumeMounts": [{"name": "mine", "mountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount/"}]}]}});
    let m = mutate(&pod, Some(&web_identity()), &MutationSettings::default()).unwrap();
    assert!(m.patch.0.iter().all(|op| !op.path().to_string().contains("volumeMounts")));
    assert!(m.warnings.iter().any(|w| w.contains("\"mine\"")), "{:?}", m.warnings);
}

#[test]
fn fs_group_fix_for_non_root_pod_uses_run_as_group() {
    let pod =
        json!({"spec": {"securityContext": {"runAsUser": 1000, "runAsGroup": 3000}, "containers": [{"name": "a"}]}});
    let out = mutated(pod, &web_identity(), &MutationSettings::default());
    assert_eq!(
        out["spec"]["securityContext"],
        json!({"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 3000, "fsGroupChangePolicy": "OnRootMismatch"})
    );
}

#[test]
fn fs_group_explicit_annotation_wins_and_off_opts_out() {
    let pod = |v: &str| json!({"metadata": {"annotations": {"eks.amazonaws.com/fs-group": v}}, "spec": {"containers": [{"name": "a", "securityContext": {"runAsNonRoot": true}}]}});
    let out = mutated(pod("42"), &web_identity(), &MutationSettings::default());
    assert_eq!(out["spec"]["securityContext"]["fsGroup"], 42);
    let out = mutated(pod("off"), &web_identity(), &MutationSettings::default());
    assert!(out["spec"].get("securityContext").is_none());
    let sa_says = Identity { fs_group: Some(FsGroupRequest::Gid(7)), ..web_identity() };
    let out = mutated(json!({"spec": {"containers": [{"name": "a"}]}}), &sa_says, &MutationSettings::default());
    assert_eq!(out["spec"]["securityContext"]["fsGroup"], 7);
}

#[test]
fn existing_fs_group_is_never_changed() {
    let pod = json!({"spec": {"securityContext": {"runAsUser": 1000, "fsGroup": 5}, "containers": [{"name": "a"}]}});
    let m = mutate(
        &pod,
        Some(&web_identity()),
        &MutationSettings { fs_group_fix: FsGroupFix::Always, ..Default::default() },
    )
    .unwrap();
    assert!(m.patch.0.iter().all(|op| !op.path().to_string().contains("securityContext")));
}

#[test]
fn windows_by_os_name_gets_windows_token_path_and_no_fs_group() {
    let pod = json!({"spec": {"os": {"name": "windows"}, "securityContext": {"runAsUser": 1000}, "containers": [{"name": "a"}]}});
    let out = mutated(pod, &web_identity(), &MutationSettings::default());
    assert_eq!(
        out["spec"]["containers"][0]["env"][1]["value"],
        "C:\\var\\run\\secrets\\eks.amazonaws.com\\serviceaccount\\token"
    );
    assert!(out["spec"]["securityContext"].get("fsGroup").is_none());
}

use crate::settings::FsGroupFix;

#[test]
fn invalid_shapes_are_clear_errors() {
    let s = MutationSettings::default();
    let id = web_identity();
    assert_eq!(mutate(&json!([]), Some(&id), &s).unwrap_err(), MutateError::NotAnObject);
    assert_eq!(
        mutate(&json!({"kind": "Service", "spec": {}}), Some(&id), &s).unwrap_err(),
        MutateError::NotAPod("Service".into())
    );
    assert_eq!(mutate(&json!({}), Some(&id), &s).unwrap_err(), MutateError::MissingSpec);
    // A kind of any length is quoted cut, as every value from the input (a fuzz finding: 6,851 bytes echoed).
    let long = "\u{f0000}".repeat(2000);
    let err = mutate(&json!({"kind": long, "spec": {}}), Some(&id), &s).unwrap_err();
    assert!(err.to_string().len() < 512, "{} bytes", err.to_string().len());
    let err = mutate(&json!({"spec": {"containers": [{"name": "a", "env": {}}]}}), Some(&id), &s).unwrap_err();
    assert_eq!(err.to_string(), "spec.containers[0].env must be an array");
}

#[test]
fn session_name_comes_from_the_downward_api() {
    let settings = MutationSettings { inject_role_session_name: true, ..Default::default() };
    let out = mutated(json!({"spec": {"containers": [{"name": "a"}]}}), &web_identity(), &settings);
    assert_eq!(out["spec"]["containers"][0]["env"][2]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name");
}

// --inject=fs-group-only: only the fsGroup fix, whoever injects the credentials and in whichever order.

fn fs_group_only() -> MutationSettings {
    MutationSettings { inject: InjectMode::FsGroupOnly, ..Default::default() }
}

#[test]
fn fs_group_only_adds_the_fix_and_nothing_else() {
    let pod = json!({"spec": {"securityContext": {"runAsUser": 1000}, "initContainers": [{"name": "i"}], "containers": [{"name": "a"}]}});
    let m = mutate(&pod, Some(&web_identity()), &fs_group_only()).unwrap();
    let paths: Vec<String> = m.patch.0.iter().map(|op| op.path().to_string()).collect();
    assert_eq!(paths, ["/spec/securityContext/fsGroup", "/spec/securityContext/fsGroupChangePolicy"]);
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    // Root pod: nothing at all.
    let root = json!({"spec": {"containers": [{"name": "a"}]}});
    assert!(mutate(&root, Some(&web_identity()), &fs_group_only()).unwrap().is_empty());
}

#[test]
fn fs_group_only_commutes_with_the_injection() {
    // The other webhook's injection (here: ours in full mode without the fix) and the fix may run in either order.
    let inject = MutationSettings { fs_group_fix: FsGroupFix::Never, ..Default::default() };
    let id = web_identity();
    let pod = json!({"spec": {"securityContext": {"runAsUser": 1000, "runAsGroup": 3000}, "containers": [{"name": "a"}, {"name": "b"}]}});
    let fix_first = mutated(mutated(pod.clone(), &id, &fs_group_only()), &id, &inject);
    let fix_last = mutated(mutated(pod.clone(), &id, &inject), &id, &fs_group_only());
    assert_eq!(fix_first, fix_last);
    assert_eq!(fix_first["spec"]["securityContext"]["fsGroup"], 3000);
    // And both equal full mode with the fix.
    assert_eq!(fix_first, mutated(pod, &id, &MutationSettings::default()));
}
