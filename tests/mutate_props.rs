//! Properties of the mutation core over generated pods, identities and settings.
//!
//! For any pod (random containers, init and ephemeral containers, env that sometimes already holds AWS_* names,
//! mounts that sometimes sit at the token path or are named like the token volume, volumes, security contexts,
//! annotations including skip-containers, Windows selectors and unknown fields), any identity and any settings:
//! the patch only adds, at the paths we own, applies cleanly, leaves everything else as it was, yields a Pod, adds
//! nothing twice, and a second mutation is empty. On arbitrary JSON the core answers Ok or Err, never panics.
//! `--inject=fs-group-only` writes only the fsGroup fix, the same fix whether the credentials are already there or
//! not, and in either order with the injection the result is that of full mode.

use std::collections::{BTreeSet, HashMap};

use irsa_webhook::commands::mutate::mutate_with_service_accounts;
use irsa_webhook::container_credentials::ContainerCredentialsConfig;
use irsa_webhook::identity::{self, Credentials, FsGroupRequest, Identity, ServiceAccountConfig, ServiceAccountRef};
use irsa_webhook::manifest::ServiceAccountManifest;
use irsa_webhook::mutate::mutate_value as mutate;
use irsa_webhook::settings::{clamp_token_expiration, FsGroupFix, InjectMode, MutationSettings};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{json, Map, Value};

/// The invariants every mutation must satisfy, shared with the fuzz target `fuzz/fuzz_targets/mutate.rs`.
mod support;
use support::arbitrary_json;
use support::pod_invariants::{check_patch, drop_nulls, duplicates, ops, typed_pod};
use support::pointers::pointers;

const TOKEN_PATH: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount";
const CC_PATH: &str = "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount";
const CUSTOM_PATH: &str = "/custom/token/path";

fn config(cases: u32) -> ProptestConfig {
    // No regression files in the shared tree: a failure prints its minimal input.
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Generators

const ENV_NAMES: &[&str] = &[
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_STS_REGIONAL_ENDPOINTS",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "LOG_LEVEL",
    "HOME",
];

/// (volume name, mount path): at the token paths, named like the token volumes, and ordinary ones.
const MOUNTS: &[(&str, &str)] = &[
    ("aws-iam-token", TOKEN_PATH),
    ("aws-iam-token", "/elsewhere"),
    ("mine", "/var/run/secrets/eks.amazonaws.com/serviceaccount/"),
    ("eks-pod-identity-token", CC_PATH),
    ("other", CC_PATH),
    ("data", "/data"),
    ("config", "/etc/config"),
    ("custom", CUSTOM_PATH),
];

fn arb_list_field(items: Vec<Value>) -> impl Strategy<Value = Option<Value>> {
    // Absent, null, or the array (possibly empty).
    prop_oneof![1 => Just(None), 1 => Just(Some(Value::Null)), 4 => Just(Some(Value::Array(items)))]
}

fn arb_security_context() -> impl Strategy<Value = Option<Value>> {
    let context = (
        prop::option::of(prop_oneof![Just(0i64), Just(1000), 1i64..70000]),
        prop::option::of(any::<bool>()),
        prop::option::of(0i64..5000),
        prop::option::of(prop_oneof![Just(Value::Null), (0i64..5000).prop_map(|g| json!(g))]),
        prop::option::of(prop_oneof![Just("Always"), Just("OnRootMismatch")]),
    )
        .prop_map(|(user, non_root, group, fs_group, policy)| {
            let mut c = Map::new();
            if let Some(u) = user {
                c.insert("runAsUser".into(), json!(u));
            }
            if let Some(n) = non_root {
                c.insert("runAsNonRoot".into(), json!(n));
            }
            if let Some(g) = group {
                c.insert("runAsGroup".into(), json!(g));
            }
            if let Some(f) = fs_group {
                c.insert("fsGroup".into(), f);
            }
            if let Some(p) = policy {
                c.insert("fsGroupChangePolicy".into(), json!(p));
            }
            Value::Object(c)
        });
    prop_oneof![2 => Just(None), 1 => Just(Some(Value::Null)), 4 => context.prop_map(Some)]
}

fn arb_container() -> impl Strategy<Value = Value> {
    let env = prop::sample::subsequence(ENV_NAMES.to_vec(), 0..=4).prop_flat_map(|names| {
        let items: Vec<Value> = names.into_iter().map(|n| json!({"name": n, "value": "preset"})).collect();
        arb_list_field(items)
    });
    let mounts = prop::sample::subsequence(MOUNTS.to_vec(), 0..=3).prop_flat_map(|mounts| {
        let mut seen = BTreeSet::new();
        let items: Vec<Value> = mounts
            .into_iter()
            .filter(|(_, path)| seen.insert(path.trim_end_matches('/')))
            .map(|(name, path)| json!({"name": name, "mountPath": path}))
            .collect();
        arb_list_field(items)
    });
    let container_context = arb_security_context().prop_map(|c| match c {
        // fsGroup is a pod-level field only.
        Some(Value::Object(mut m)) => {
            m.remove("fsGroup");
            m.remove("fsGroupChangePolicy");
            Some(Value::Object(m))
        }
        other => other,
    });
    (env, mounts, container_context, prop::option::of(arbitrary_json()), any::<bool>()).prop_map(
        |(env, mounts, context, unknown, always)| {
            let mut c = Map::new();
            c.insert("image".into(), json!("busybox"));
            if let Some(env) = env {
                c.insert("env".into(), env);
            }
            if let Some(mounts) = mounts {
                c.insert("volumeMounts".into(), mounts);
            }
            if let Some(context) = context {
                c.insert("securityContext".into(), context);
            }
            if let Some(unknown) = unknown {
                c.insert("futureField".into(), unknown);
            }
            if always {
                c.insert("resizePolicy".into(), json!([{"resourceName": "cpu", "restartPolicy": "NotRequired"}]));
            }
            Value::Object(c)
        },
    )
}

fn arb_volumes() -> impl Strategy<Value = Option<Value>> {
    let pool = vec![
        json!({"name": "aws-iam-token", "projected": {"sources": [{"serviceAccountToken": {"audience": "sts.amazonaws.com", "expirationSeconds": 3600, "path": "token"}}]}}),
        json!({"name": "aws-iam-token", "hostPath": {"path": "/token"}}),
        json!({"name": "eks-pod-identity-token", "emptyDir": {}}),
        json!({"name": "data", "emptyDir": {}}),
        json!({"name": "config", "configMap": {"name": "c"}, "futureVolumeField": 1}),
    ];
    prop::sample::subsequence(pool, 0..=3).prop_flat_map(|volumes| {
        let mut seen = BTreeSet::new();
        let unique: Vec<Value> =
            volumes.into_iter().filter(|v| seen.insert(v["name"].as_str().unwrap().to_owned())).collect();
        arb_list_field(unique)
    })
}

fn arb_annotation_value() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        Just("3600".to_owned()),
        Just("100".to_owned()),
        Just("off".to_owned()),
        Just("42".to_owned()),
        Just("-1".to_owned()),
        Just("99999999999".to_owned()),
        "[a-z0-9 ]{0,6}",
    ])
}

/// A pod as JSON, with unique container names and no duplicate env names, mount paths or volume names.
fn arb_pod() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(arb_container(), 1..4),
        prop::collection::vec((arb_container(), any::<bool>()), 0..3),
        prop::collection::vec(arb_container(), 0..2),
        arb_volumes(),
        arb_security_context(),
        prop_oneof![
            3 => Just(None),
            1 => Just(Some(json!({"kubernetes.io/os": "windows"}))),
            1 => Just(Some(json!({"beta.kubernetes.io/os": "windows"}))),
            1 => Just(Some(json!({"kubernetes.io/os": "linux"}))),
        ],
        any::<bool>(),
        (prop::collection::vec(any::<bool>(), 8), any::<bool>()),
        (arb_annotation_value(), arb_annotation_value(), arb_annotation_value()),
        prop_oneof![
            2 => Just(None),
            1 => Just(Some(Value::Null)),
            1 => Just(Some(json!({"app": "web"}))),
            1 => Just(Some(json!({"eks.amazonaws.com/pod-identity": "enabled", "a/b~c": "x"}))),
        ],
        prop::option::of(arbitrary_json()),
        // Metadata as usual, absent, or null (valid input to the offline `mutate` command).
        prop_oneof![8 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
    )
        .prop_map(
            |(
                containers,
                inits,
                ephemerals,
                volumes,
                pod_context,
                selector,
                os_windows,
                (skip_mask, spaced),
                (expiration, fs_group, typo),
                labels,
                unknown,
                metadata_shape,
            )| {
                let mut names = Vec::new();
                let mut named = |list: Vec<Value>, prefix: &str| -> Vec<Value> {
                    list.into_iter()
                        .enumerate()
                        .map(|(i, mut c)| {
                            let name = format!("{prefix}{i}");
                            c["name"] = json!(name);
                            names.push(name);
                            c
                        })
                        .collect()
                };
                let containers = named(containers, "app-");
                let inits: Vec<Value> = named(inits.iter().map(|(c, _)| c.clone()).collect(), "init-")
                    .into_iter()
                    .zip(inits.iter().map(|(_, always)| *always))
                    .map(|(mut c, always)| {
                        if always {
                            c["restartPolicy"] = json!("Always");
                        }
                        c
                    })
                    .collect();
                let ephemerals: Vec<Value> = ephemerals
                    .into_iter()
                    .enumerate()
                    .map(|(i, mut c)| {
                        c["name"] = json!(format!("debug-{i}"));
                        c
                    })
                    .collect();

                let mut annotations = Map::new();
                let skipped: Vec<&String> = names.iter().zip(&skip_mask).filter(|(_, s)| **s).map(|(n, _)| n).collect();
                if !skipped.is_empty() {
                    let sep = if spaced { " , " } else { "," };
                    let list = skipped.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(sep);
                    annotations.insert("eks.amazonaws.com/skip-containers".into(), json!(format!(" {list} ")));
                }
                if let Some(v) = expiration {
                    annotations.insert("eks.amazonaws.com/token-expiration".into(), json!(v));
                }
                if let Some(v) = fs_group {
                    annotations.insert("eks.amazonaws.com/fs-group".into(), json!(v));
                }
                if let Some(v) = typo {
                    annotations.insert("eks.amazonaws.com/skip_containers".into(), json!(v));
                }

                let mut metadata = json!({"name": "web", "namespace": "default", "annotations": annotations});
                if let Some(labels) = labels {
                    metadata["labels"] = labels;
                }
                let mut spec = json!({"serviceAccountName": "app", "containers": containers});
                if !inits.is_empty() {
                    spec["initContainers"] = json!(inits);
                }
                if !ephemerals.is_empty() {
                    spec["ephemeralContainers"] = json!(ephemerals);
                }
                if let Some(volumes) = volumes {
                    spec["volumes"] = volumes;
                }
                if let Some(context) = pod_context {
                    spec["securityContext"] = context;
                }
                if let Some(selector) = selector {
                    spec["nodeSelector"] = selector;
                }
                if os_windows {
                    spec["os"] = json!({"name": "windows"});
                }
                if let Some(unknown) = unknown {
                    spec["futureSpecField"] = unknown;
                }
                match metadata_shape {
                    0 => json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}),
                    1 => json!({"apiVersion": "v1", "kind": "Pod", "spec": spec}),
                    _ => json!({"apiVersion": "v1", "kind": "Pod", "metadata": null, "spec": spec}),
                }
            },
        )
}

/// An identity as a ServiceAccount's config gives it (the core borrows it from there).
#[derive(Debug, Clone)]
struct ArbIdentity {
    service_account: ServiceAccountRef,
    config: ServiceAccountConfig,
    container_credentials: bool,
}

impl ArbIdentity {
    fn get(&self) -> Identity<'_> {
        identity::resolve(&self.service_account, Some(&self.config), self.container_credentials)
            .expect("a role or container credentials")
    }
}

fn arb_identity() -> impl Strategy<Value = ArbIdentity> {
    let role = prop_oneof![
        3 => prop_oneof![
            Just("arn:aws:iam::111122223333:role/app".to_owned()),
            Just("arn:aws-cn:iam::111122223333:role/path/app".to_owned()),
            Just("not-an-arn".to_owned()),
        ]
        .prop_map(Some),
        1 => Just(None),
    ];
    (
        role,
        prop::option::of(prop_oneof![Just("sts.amazonaws.com".to_owned()), "[a-z~/]{1,10}"]),
        prop::option::of(any::<bool>()),
        prop::option::of(prop_oneof![-10i64..100_000, Just(i64::MAX), Just(i64::MIN)]),
        prop::option::of(prop_oneof![(0i64..70000).prop_map(FsGroupRequest::Gid), Just(FsGroupRequest::Off)]),
    )
        .prop_map(|(role_arn, audience, regional_sts, token_expiration, fs_group)| ArbIdentity {
            service_account: ServiceAccountRef::new("default", "app"),
            container_credentials: role_arn.is_none(),
            config: ServiceAccountConfig {
                role_arn,
                audience,
                regional_sts,
                token_expiration,
                fs_group,
                warnings: Vec::new(),
            },
        })
}

fn arb_settings() -> impl Strategy<Value = MutationSettings> {
    (
        prop_oneof![Just(FsGroupFix::Auto), Just(FsGroupFix::Always), Just(FsGroupFix::Never)],
        prop::option::of(prop_oneof![Just("us-west-2".to_owned()), Just("cn-north-1".to_owned())]),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![Just(TOKEN_PATH.to_owned()), Just(CUSTOM_PATH.to_owned())],
        0i64..70000,
        prop_oneof![Just(86400i64), 0i64..200_000],
    )
        .prop_map(|(fix, region, sts, session, mount_path, gid, expiration)| MutationSettings {
            fs_group_fix: fix,
            aws_default_region: region,
            sts_regional_endpoint: sts,
            inject_role_session_name: session,
            token_mount_path: mount_path,
            default_fs_group: gid,
            token_expiration: clamp_token_expiration(expiration),
            ..MutationSettings::default()
        })
}

// ---------------------------------------------------------------------------------------------------------------
// Checks

fn skipped_names(pod: &Value) -> BTreeSet<String> {
    pod.pointer("/metadata/annotations/eks.amazonaws.com~1skip-containers")
        .and_then(Value::as_str)
        .map(|list| list.split(',').map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(config(192))]

    #[test]
    fn mutation_is_sound(pod in arb_pod(), identity in arb_identity(), settings in arb_settings()) {
        let identity = identity.get();
        prop_assert!(duplicates(&pod).is_empty(), "generator made duplicates: {:?}", duplicates(&pod));
        let mutation = mutate(&pod, Some(&identity), &settings).expect("a generated pod is valid");

        // Only adds, only at our paths; applies; nothing added twice; everything else unchanged.
        let result = check_patch(&pod, &mutation.patch);
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
        let result = result.unwrap();

        // Still a Pod.
        let typed = typed_pod(&result);
        prop_assert!(typed.is_ok(), "result is not a Pod: {:?}", typed.err());

        // Idempotent.
        let again = mutate(&result, Some(&identity), &settings).expect("the result is valid");
        prop_assert!(again.is_empty(), "second mutation is not empty: {:?}", ops(&again.patch));

        // What the mutation promises: every non-skipped container can find its credentials.
        let skipped = skipped_names(&pod);
        let (arn_var, file_var) = match identity.credentials {
            Credentials::WebIdentity { .. } => ("AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"),
            Credentials::ContainerCredentials => ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
        };
        let mut any_target = false;
        for list in ["containers", "initContainers"] {
            for c in result["spec"][list].as_array().into_iter().flatten() {
                if skipped.contains(c["name"].as_str().unwrap()) {
                    continue;
                }
                any_target = true;
                let env: Vec<&str> = c["env"].as_array().into_iter().flatten().filter_map(|e| e["name"].as_str()).collect();
                prop_assert!(env.contains(&arn_var) && env.contains(&file_var), "{} lacks credentials: {:?}", c["name"], env);
                prop_assert!(c["volumeMounts"].as_array().is_some_and(|m| !m.is_empty()), "{} has no mounts", c["name"]);
            }
        }
        if !any_target {
            prop_assert!(mutation.is_empty(), "all containers skipped, yet a patch");
        }
        // Ephemeral containers are never touched.
        prop_assert_eq!(&result["spec"]["ephemeralContainers"], &pod["spec"]["ephemeralContainers"]);
    }

}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn no_identity_no_patch(pod in arb_pod(), settings in arb_settings()) {
        let mutation = mutate(&pod, None, &settings).expect("a generated pod is valid");
        prop_assert!(mutation.is_empty());
    }
}

proptest! {
    #![proptest_config(config(128))]

    /// Next to another webhook that injects the credentials (EKS's managed one), in either order: the fix alone
    /// touches only the pod's securityContext, does not depend on whether the injection already happened, and
    /// fix-then-inject, inject-then-fix and full mode all store the same pod.
    #[test]
    fn fs_group_only_commutes_with_the_injection(
        pod in arb_pod(),
        identity in arb_identity(),
        settings in arb_settings(),
    ) {
        let identity = identity.get();
        let full = MutationSettings { inject: InjectMode::Full, ..settings.clone() };
        let fix_only = MutationSettings { inject: InjectMode::FsGroupOnly, ..settings.clone() };
        let run = |pod: &Value, settings: &MutationSettings| -> Result<(Value, Vec<(String, String)>), String> {
            let mutation = mutate(pod, Some(&identity), settings).map_err(|e| e.to_string())?;
            Ok((check_patch(pod, &mutation.patch)?, ops(&mutation.patch)))
        };
        // The other webhook: full mode without anything under spec.securityContext (an fs-group annotation would
        // make even --fs-group-fix=never write one).
        let inject_only = |pod: &Value| -> Result<Value, String> {
            let mut patch = mutate(pod, Some(&identity), &full).map_err(|e| e.to_string())?.patch;
            patch.0.retain(|op| !op.path().to_string().starts_with("/spec/securityContext"));
            check_patch(pod, &patch)
        };

        let (fixed, fix_ops) = run(&pod, &fix_only).expect("a generated pod is valid");
        for (op, path) in &fix_ops {
            prop_assert!(op == "add" && path.starts_with("/spec/securityContext"), "fs-group-only writes {} {}", op, path);
        }
        let injected = inject_only(&pod).expect("valid");
        let (fixed_after_injection, late_fix_ops) = run(&injected, &fix_only).expect("valid");
        prop_assert_eq!(&late_fix_ops, &fix_ops, "the fix depends on whether the credentials are already there");

        let injected_after_fix = inject_only(&fixed).expect("valid");
        prop_assert_eq!(drop_nulls(injected_after_fix.clone()), drop_nulls(fixed_after_injection.clone()));
        let (full_result, _) = run(&pod, &full).expect("valid");
        prop_assert_eq!(drop_nulls(full_result), drop_nulls(fixed_after_injection));
        prop_assert!(duplicates(&injected_after_fix).is_empty(), "{:?}", duplicates(&injected_after_fix));
        let (_, again) = run(&injected_after_fix, &fix_only).expect("valid");
        prop_assert!(again.is_empty(), "fs-group-only is not idempotent: {:?}", again);
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary JSON: Ok or Err, never a panic, with or without an identity, through the offline pipeline too.
    #[test]
    fn arbitrary_json_never_panics(value in arbitrary_json(), identity in arb_identity(), settings in arb_settings()) {
        let identity = identity.get();
        let _ = mutate(&value, Some(&identity), &settings);
        let _ = mutate(&value, None, &settings);
        let mut sas = HashMap::new();
        let sa = json!({"kind": "ServiceAccount", "metadata": {"name": "default", "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/x"}}});
        let manifest = ServiceAccountManifest::from_object(&sa).unwrap();
        sas.insert(manifest.reference.clone(), manifest);
        let _ = mutate_with_service_accounts(&value, &sas, &ContainerCredentialsConfig::default(), &settings);
    }

}

proptest! {
    #![proptest_config(config(128))]

    /// A valid pod with one node (anywhere but the root) replaced by arbitrary JSON: never a panic, and when the
    /// core accepts it, its patch applies and a second mutation is empty.
    #[test]
    fn corrupted_pods_are_answered(
        pod in arb_pod(),
        pick in any::<prop::sample::Index>(),
        junk in arbitrary_json(),
        identity in arb_identity(),
        settings in arb_settings(),
    ) {
        let identity = identity.get();
        let candidates = pointers(&pod);
        let target = pick.get(&candidates).clone();
        let mut corrupted = pod.clone();
        *corrupted.pointer_mut(&target).unwrap() = junk;

        if let Ok(mutation) = mutate(&corrupted, Some(&identity), &settings) {
            let result = check_patch(&corrupted, &mutation.patch);
            prop_assert!(result.is_ok(), "accepted {} = {}, but: {}", target, corrupted.pointer(&target).unwrap(), result.as_ref().unwrap_err());
            let again = mutate(&result.unwrap(), Some(&identity), &settings);
            prop_assert!(again.is_ok_and(|m| m.is_empty()), "not idempotent after corrupting {}", target);
        }
    }
}
