//! Arbitrary bytes → `Admission::review`, as the server calls it for every POST /mutate body.
//!
//! First, the request path's JSON reader against serde_json on the same bytes (`tests/support/json_contract.rs`):
//! the same `Value` or both refuse; the same `Pod` wherever serde_json decodes one, and the same decision on valid
//! JSON.
//!
//! Every input is reviewed under two settings profiles, against a few ServiceAccounts (a role, no role, container
//! credentials, every optional annotation, `fs-group: off`, `default/default`). Checked:
//! - never a panic; a refused body's message is bounded (it is logged and sent back);
//! - an answer is a JSON AdmissionReview of a supported apiVersion, `kind: AdmissionReview`, with `allowed: true`,
//!   the request's uid and only the fields an answer has; at most `MAX_WARNINGS` + 1 warnings, each bounded;
//! - a patch is there exactly when the outcome is "mutated"; it decodes (base64 → JSON Patch), is bounded by the
//!   number of containers the webhook mutates, applies to the request's object, and the patched object, reviewed
//!   again, gets no patch.

#![no_main]

use std::sync::{Arc, OnceLock};

use base64::Engine;
use futures::executor::block_on;
use irsa_webhook::admission::Admission;
use irsa_webhook::container_credentials::ContainerCredentialsConfig;
use irsa_webhook::manifest::parse_service_accounts;
use irsa_webhook::mutate::{MAX_CONTAINERS, MAX_WARNINGS};
use irsa_webhook::settings::{FsGroupFix, MutationSettings, RoleArnComposer};
use irsa_webhook::store::file::FileSource;
use irsa_webhook_fuzz as common;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const SERVICE_ACCOUNTS: &str = r#"
kind: ServiceAccount
metadata:
  name: app
  namespace: default
  annotations: {eks.amazonaws.com/role-arn: "arn:aws:iam::111122223333:role/app"}
---
kind: ServiceAccount
metadata: {name: default, namespace: default, annotations: {eks.amazonaws.com/role-arn: "arn:aws:iam::111122223333:role/default"}}
---
kind: ServiceAccount
metadata: {name: plain, namespace: default}
---
kind: ServiceAccount
metadata: {name: cc, namespace: default}
---
kind: ServiceAccount
metadata:
  name: tuned
  namespace: team-a
  annotations:
    eks.amazonaws.com/role-arn: reader
    eks.amazonaws.com/audience: "custom\"aud"
    eks.amazonaws.com/sts-regional-endpoints: "true"
    eks.amazonaws.com/token-expiration: "3600"
    eks.amazonaws.com/fs-group: "1234"
    eks.amazonaws.com/role_arn: typo
---
kind: ServiceAccount
metadata:
  name: off
  namespace: default
  annotations:
    eks.amazonaws.com/role-arn: "arn:aws:iam::111122223333:role/off"
    eks.amazonaws.com/fs-group: "off"
    eks.amazonaws.com/token-expiration: "1"
"#;

const CONTAINER_CREDENTIALS: &str =
    r#"{"identities":[{"namespace":"default","serviceAccount":"cc"},{"namespace":"team-a","serviceAccount":"app"}]}"#;

/// The answer's fields; anything else in it is a bug.
const RESPONSE_FIELDS: &[&str] = &["uid", "allowed", "patchType", "patch", "warnings"];

/// A refused body's message: a sentence and at most a few quoted values.
const MAX_ERROR_BYTES: usize = 1024;

fn admissions() -> &'static [(Admission, usize)] {
    static ADMISSIONS: OnceLock<Vec<(Admission, usize)>> = OnceLock::new();
    ADMISSIONS.get_or_init(|| {
        let tuned = MutationSettings {
            aws_default_region: Some("us-west-2".into()),
            sts_regional_endpoint: true,
            inject_role_session_name: true,
            fs_group_fix: FsGroupFix::Always,
            token_mount_path: "/custom/token/path/".into(),
            compose_role_arn: Some(RoleArnComposer { partition: "aws-cn".into(), account_id: "111122223333".into() }),
            ..MutationSettings::default()
        };
        [MutationSettings::default(), tuned]
            .into_iter()
            .map(|settings| {
                let manifests = parse_service_accounts(SERVICE_ACCOUNTS).expect("the ServiceAccounts parse");
                let config = Arc::new(ContainerCredentialsConfig::parse(CONTAINER_CREDENTIALS).expect("valid"));
                // The longest string a patch may take from the settings or a ServiceAccount.
                let longest = common::longest_patch_string(&settings, &["arn:aws-cn:iam::111122223333:role/reader"]);
                let admission = Admission {
                    source: Arc::new(FileSource::from_manifests(manifests, &settings)),
                    settings: Arc::new(settings),
                    container_credentials: Some(Arc::new(move || Arc::clone(&config))),
                };
                (admission, longest)
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = common::json_contract::check(data) {
        panic!("{broken}");
    }
    for (admission, longest) in admissions() {
        check(admission, *longest, data);
    }
});

fn check(admission: &Admission, longest: usize, data: &[u8]) {
    let reviewed = match block_on(admission.review(data)) {
        Ok(reviewed) => reviewed,
        Err(error) => {
            let message = error.to_string();
            assert!(message.len() <= MAX_ERROR_BYTES, "a {} byte error message: {message:.200}…", message.len());
            return;
        }
    };
    let body: Value = serde_json::from_slice(&reviewed.body).expect("the answer is JSON");
    let top: Vec<&str> = body.as_object().expect("an object").keys().map(String::as_str).collect();
    assert_eq!(top, ["apiVersion", "kind", "response"]);
    assert!(matches!(body["apiVersion"].as_str(), Some("admission.k8s.io/v1" | "admission.k8s.io/v1beta1")));
    assert_eq!(body["kind"], "AdmissionReview");
    let response = body["response"].as_object().expect("response is an object");
    assert!(response.keys().all(|k| RESPONSE_FIELDS.contains(&k.as_str())), "answer fields: {:?}", response.keys());
    assert_eq!(response["uid"].as_str(), Some(&*reviewed.uid));
    assert_eq!(response["allowed"], true);

    if let Some(warnings) = response.get("warnings") {
        let warnings = warnings.as_array().expect("warnings are an array");
        assert!(!warnings.is_empty() && warnings.len() <= MAX_WARNINGS + 1, "{} warnings", warnings.len());
        for warning in warnings {
            let warning = warning.as_str().expect("a warning is a string");
            assert!(warning.len() <= common::MAX_WARNING_BYTES, "a {} byte warning: {warning:.300}", warning.len());
        }
    }
    assert!(reviewed.pod.chars().count() <= 102 && reviewed.namespace.chars().count() <= 101, "log fields are cut");

    let Some(patch) = response.get("patch") else {
        assert!(!reviewed.outcome.mutated(), "mutated without a patch");
        assert!(!response.contains_key("patchType"));
        return;
    };
    assert!(reviewed.outcome.mutated(), "a patch, yet the outcome is {:?}", reviewed.outcome);
    assert_eq!(response["patchType"], "JSONPatch");
    let patch = base64::engine::general_purpose::STANDARD.decode(patch.as_str().expect("a string")).expect("base64");
    let bound = (MAX_CONTAINERS + 1) * common::patch_bytes_per_container(longest);
    assert!(patch.len() <= bound, "a {} byte patch, bound {bound}", patch.len());
    let patch: json_patch::Patch = serde_json::from_slice(&patch).expect("a JSON Patch");

    // The same body as a plain JSON value; bodies that only the lenient decoder reads (e.g. deeper than serde_json's
    // recursion limit in a skipped field) stop here.
    let Ok(mut request) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let object = request.pointer_mut("/request/object").expect("a patch means an object");
    json_patch::patch(object, &patch).unwrap_or_else(|e| panic!("the patch does not apply to the object: {e}"));
    let again = serde_json::to_vec(&request).expect("serializes");
    let reviewed = block_on(admission.review(&again)).expect("the patched review is still a review");
    let body: Value = serde_json::from_slice(&reviewed.body).expect("the answer is JSON");
    assert!(body["response"].get("patch").is_none(), "a second patch: {:?}", reviewed.outcome);
}
