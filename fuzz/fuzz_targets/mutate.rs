//! Structured arbitrary pods → `mutate` → the patch applied with `json-patch`.
//!
//! The pod is either built from the model in `src/model.rs`, or (input `F` + a little-endian u16) one of the
//! repository's fixture pods; either way up to two arbitrary JSON values are then grafted anywhere in it. An
//! arbitrary identity and settings complete the case. The pod is decoded as the request path does (borrowed, from
//! the JSON bytes), and checked:
//! - the decode from bytes and the one from a parsed value (`mutate_value`) give the same answer;
//! - without an identity nothing changes;
//! - an error's message is bounded; warnings are at most `MAX_WARNINGS` + 1, each bounded;
//! - the patch is bounded: at most `patch_bytes_per_container` per container and init container, plus as much again;
//! - the invariants of `tests/support/pod_invariants.rs`: only adds at our paths, applies, nothing added twice,
//!   nothing else changed;
//! - the result still deserializes as a `k8s_openapi` Pod whenever the input did, and a second mutation is empty.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use irsa_webhook::identity::{resolve, Credentials, ServiceAccountRef};
use irsa_webhook::mutate::{mutate, mutate_value, Pod, MAX_WARNINGS};
use irsa_webhook_fuzz::model::{Graft, IdentityModel, PodModel, SettingsModel, ToJson};
use irsa_webhook_fuzz::pod_invariants::{check_patch, typed_pod};
use irsa_webhook_fuzz::{fixture_pods, longest_patch_string, patch_bytes_per_container, MAX_WARNING_BYTES};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// An error names a path in the pod or quotes one value, cut (`mutate::shown`).
const MAX_ERROR_BYTES: usize = 1024;

struct Case {
    pod: Value,
    identity: IdentityModel,
    settings: SettingsModel,
}

fn case(data: &[u8]) -> arbitrary::Result<Case> {
    let (mut u, mut pod) = match data {
        [b'F', lo, hi, rest @ ..] => {
            let pods = fixture_pods();
            (Unstructured::new(rest), pods[usize::from(u16::from_le_bytes([*lo, *hi])) % pods.len()].clone())
        }
        _ => {
            let mut u = Unstructured::new(data);
            let pod = PodModel::arbitrary(&mut u)?.to_json();
            (u, pod)
        }
    };
    for _ in 0..u.int_in_range(0..=2u8)? {
        Graft::arbitrary(&mut u)?.apply(&mut pod);
    }
    Ok(Case { pod, identity: IdentityModel::arbitrary(&mut u)?, settings: SettingsModel::arbitrary(&mut u)? })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(case) = case(data) {
        check(case);
    }
});

fn check(case: Case) {
    let Case { pod, identity, settings } = case;
    let settings = settings.settings();
    let config = identity.config();
    let service_account = ServiceAccountRef::new("default", "app");
    let identity = resolve(&service_account, Some(&config), identity.container_credentials).expect("an identity");

    // As the request path decodes it: borrowed, from the bytes.
    let bytes = serde_json::to_vec(&pod).expect("serializes");
    let from_value = mutate_value(&pod, Some(&identity), &settings);
    let decoded = match Pod::from_json(&bytes) {
        Ok(decoded) => decoded,
        Err(error) => {
            assert!(from_value.is_err(), "only the decode from bytes failed: {error}");
            return;
        }
    };
    if let Ok(unchanged) = mutate(&decoded, None, &settings) {
        assert!(unchanged.is_empty() && unchanged.warnings.is_empty(), "a change without an identity");
    }
    let mutation = match mutate(&decoded, Some(&identity), &settings) {
        Ok(mutation) => mutation,
        Err(error) => {
            let message = error.to_string();
            assert!(message.len() <= MAX_ERROR_BYTES, "a {} byte error: {message:.300}", message.len());
            assert_eq!(from_value.err(), Some(error), "the two decoders disagree");
            return;
        }
    };
    let from_value = from_value.expect("the decode from a parsed value accepts what the one from bytes does");
    assert_eq!(mutation.warnings, from_value.warnings, "the two decoders disagree");
    assert!(mutation.warnings.len() <= MAX_WARNINGS + 1, "{} warnings", mutation.warnings.len());
    for warning in &mutation.warnings {
        assert!(warning.len() <= MAX_WARNING_BYTES, "a {} byte warning: {warning:.300}", warning.len());
    }

    let mut written = Vec::new();
    mutation.write_patch(&mut written);
    let containers: usize =
        ["containers", "initContainers"].iter().map(|list| pod["spec"][list].as_array().map_or(0, Vec::len)).sum();
    let role_arn = match identity.credentials {
        Credentials::WebIdentity { role_arn } => role_arn,
        Credentials::ContainerCredentials => "",
    };
    let longest = longest_patch_string(&settings, &[role_arn, identity.audience.unwrap_or_default()]);
    let bound = (containers + 1) * patch_bytes_per_container(longest);
    assert!(written.len() <= bound, "a {} byte patch for {containers} containers; bound {bound}", written.len());
    let patch: json_patch::Patch = serde_json::from_slice(&written).expect("the patch is a JSON Patch");
    assert!(patch == from_value.patch, "the two decoders disagree on the patch");

    let result = check_patch(&pod, &patch).unwrap_or_else(|e| panic!("{e}"));
    if typed_pod(&pod).is_ok() {
        typed_pod(&result).unwrap_or_else(|e| panic!("the input was a Pod, the mutated one is not: {e}"));
    }
    let again = mutate_value(&result, Some(&identity), &settings).expect("the mutated pod is still accepted");
    assert!(again.is_empty(), "a second mutation: {:?}", again.patch);
}
