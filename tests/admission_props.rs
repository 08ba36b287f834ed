//! Zero panics on any input: the admission path over arbitrary bytes and over valid reviews with arbitrary JSON
//! grafted into them.

use std::sync::Arc;

use irsa_webhook::admission::Admission;
use irsa_webhook::manifest::parse_service_accounts;
use irsa_webhook::settings::MutationSettings;
use irsa_webhook::store::file::FileSource;
use proptest::prelude::*;
use serde_json::{json, Value};

mod support;
use support::arbitrary_json;
use support::pointers::pointers;

fn admission() -> Admission {
    let sas = parse_service_accounts(
        "kind: ServiceAccount\nmetadata:\n  name: app\n  namespace: ns\n  annotations:\n    eks.amazonaws.com/role-arn: arn:aws:iam::111122223333:role/app\n    eks.amazonaws.com/fs-group: \"7\"\n",
    )
    .expect("fixture parses");
    let settings = Arc::new(MutationSettings::default());
    Admission { source: Arc::new(FileSource::from_manifests(sas, &settings)), settings, container_credentials: None }
}

fn base_review() -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u", "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "ns", "operation": "CREATE",
            "object": {
                "metadata": {"name": "p", "annotations": {"eks.amazonaws.com/skip-containers": "x"}},
                "spec": {"serviceAccountName": "app", "securityContext": {"runAsUser": 1},
                         "containers": [{"name": "c", "env": [], "volumeMounts": []}],
                         "initContainers": [{"name": "i"}], "volumes": []},
            }
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let _ = runtime.block_on(admission().review(&bytes));
    }

    #[test]
    fn grafted_reviews_never_panic_and_always_answer(choice in any::<prop::sample::Index>(), graft in arbitrary_json()) {
        let mut review = base_review();
        let all: Vec<String> = std::iter::once(String::new()).chain(pointers(&review)).collect();
        let target = all[choice.index(all.len())].clone();
        if let Some(slot) = review.pointer_mut(&target) {
            *slot = graft;
        }
        let body = serde_json::to_vec(&review).expect("serializes");
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        if let Ok(reviewed) = runtime.block_on(admission().review(&body)) {
            // Whatever the pod looks like, the answer is a well-formed, allowing response for the same uid.
            let answer: Value = serde_json::from_slice(&reviewed.body).expect("answer is JSON");
            prop_assert_eq!(&answer["response"]["allowed"], &json!(true));
            prop_assert_eq!(&answer["response"]["uid"], &review["request"]["uid"]);
        }
    }
}
