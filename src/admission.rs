//! AdmissionReview `admission.k8s.io/v1` and `v1beta1` in → response out, given an identity source.
//! The only module that knows the review wire format; it knows nothing of HTTP.

use std::sync::Arc;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::container_credentials::ContainerCredentialsConfig;
use crate::identity::{self, Credentials, ServiceAccountRef};
use crate::manifest::pod_service_account;
use crate::mutate::mutate;
use crate::settings::MutationSettings;
use crate::store::{Lookup, ServiceAccountSource};

const API_VERSIONS: [&str; 2] = ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"];

/// A body we cannot answer with a review: the server maps these to HTTP 400.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    #[error("body is not a JSON AdmissionReview: {0}")]
    NotJson(String),
    #[error("unsupported apiVersion {0:?}; expected admission.k8s.io/v1 or admission.k8s.io/v1beta1")]
    ApiVersion(String),
    #[error("kind is {0:?}, not AdmissionReview")]
    Kind(String),
    #[error("AdmissionReview has no request")]
    NoRequest,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewIn {
    api_version: Option<String>,
    kind: Option<String>,
    request: Option<ObjectOnly<RequestIn>>,
}

/// serde's derived structs also accept a JSON array (fields by position); a review's request must be an object.
struct ObjectOnly<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer.deserialize_map(Visitor(std::marker::PhantomData)).map(ObjectOnly)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestIn {
    uid: String,
    #[serde(default)]
    resource: GroupVersionResource,
    #[serde(default)]
    sub_resource: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    object: Option<Value>,
    #[serde(default)]
    dry_run: Option<bool>,
}

#[derive(Deserialize, Default)]
struct GroupVersionResource {
    #[serde(default)]
    group: String,
    #[serde(default)]
    resource: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut<'a> {
    api_version: &'a str,
    kind: &'static str,
    response: ResponseOut<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseOut<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// Why a pod was or was not mutated: one log line and the metrics per admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Mutated {
        credentials: &'static str,
    },
    /// Not a pod CREATE: allowed unchanged without looking.
    Ignored,
    ServiceAccountNotFound,
    NoRole,
    AlreadyMutated,
    LookupUnavailable(String),
    InvalidPod(String),
}

impl Outcome {
    pub fn mutated(&self) -> bool {
        matches!(self, Outcome::Mutated { .. })
    }

    pub fn reason(&self) -> String {
        match self {
            Outcome::Mutated { credentials } => format!("mutated ({credentials})"),
            Outcome::Ignored => "not a pod CREATE".into(),
            Outcome::ServiceAccountNotFound => "ServiceAccount not found".into(),
            Outcome::NoRole => "ServiceAccount has no role".into(),
            Outcome::AlreadyMutated => "already has everything".into(),
            Outcome::LookupUnavailable(why) => format!("ServiceAccount lookup failed: {why}"),
            Outcome::InvalidPod(why) => format!("invalid pod object: {why}"),
        }
    }
}

/// What the server logs for each admission.
#[derive(Debug, Clone)]
pub struct Reviewed {
    pub body: Vec<u8>,
    pub uid: String,
    pub namespace: String,
    /// The pod's name, or its generateName (the name does not exist yet).
    pub pod: String,
    pub service_account: Option<ServiceAccountRef>,
    pub dry_run: bool,
    pub outcome: Outcome,
    pub warnings: usize,
}

/// Everything admission needs; cheap to clone into each request.
#[derive(Clone)]
pub struct Admission {
    pub settings: Arc<MutationSettings>,
    pub source: Arc<dyn ServiceAccountSource>,
    /// The current container-credentials config (watched file), if that mode is on.
    pub container_credentials: Option<Arc<dyn Fn() -> Arc<ContainerCredentialsConfig> + Send + Sync>>,
}

impl Admission {
    /// Answers one review. Errors only for bodies that are not a review at all; a review about a bad pod is answered
    /// `allowed: true` with a warning — we never deny a pod because of our own decode problem.
    pub async fn review(&self, body: &[u8]) -> Result<Reviewed, AdmissionError> {
        let review: ReviewIn = serde_json::from_slice(body).map_err(|e| AdmissionError::NotJson(e.to_string()))?;
        let api_version = review.api_version.unwrap_or_default();
        let api_version =
            API_VERSIONS.into_iter().find(|v| *v == api_version).ok_or(AdmissionError::ApiVersion(api_version))?;
        if review.kind.as_deref() != Some("AdmissionReview") {
            return Err(AdmissionError::Kind(review.kind.unwrap_or_default()));
        }
        let ObjectOnly(request) = review.request.ok_or(AdmissionError::NoRequest)?;

        let namespace = request.namespace.clone().unwrap_or_default();
        let mut reviewed = Reviewed {
            body: Vec::new(),
            uid: request.uid.clone(),
            pod: request.object.as_ref().map(pod_name).unwrap_or_default(),
            namespace,
            service_account: None,
            dry_run: request.dry_run.unwrap_or(false),
            outcome: Outcome::Ignored,
            warnings: 0,
        };
        let mut response =
            ResponseOut { uid: &request.uid, allowed: true, patch_type: None, patch: None, warnings: Vec::new() };

        let is_pod_create = request.resource.group.is_empty()
            && request.resource.resource == "pods"
            && request.sub_resource.as_deref().unwrap_or_default().is_empty()
            && request.operation.as_deref() == Some("CREATE");
        if let (true, Some(pod)) = (is_pod_create, request.object.as_ref()) {
            self.mutate_pod(pod, &mut reviewed, &mut response).await;
        } else if is_pod_create {
            reviewed.outcome = Outcome::InvalidPod("the request has no object".into());
            response.warnings.push("irsa-webhook: the request has no pod object; the pod was not mutated".into());
        }

        reviewed.warnings = response.warnings.len();
        let out = ReviewOut { api_version, kind: "AdmissionReview", response };
        reviewed.body = serde_json::to_vec(&out).map_err(|e| AdmissionError::NotJson(e.to_string()))?;
        Ok(reviewed)
    }

    async fn mutate_pod(&self, pod: &Value, reviewed: &mut Reviewed, response: &mut ResponseOut<'_>) {
        let sa = pod_service_account(pod, Some(&reviewed.namespace));
        reviewed.service_account = Some(sa.clone());
        let in_container_credentials =
            self.container_credentials.as_ref().is_some_and(|current| current().contains(&sa));
        let config = match self.source.lookup(&sa).await {
            Lookup::Found(config) => Some(config),
            Lookup::NotFound => None,
            Lookup::Unavailable(why) if !in_container_credentials => {
                response
                    .warnings
                    .push(format!("irsa-webhook: could not look up ServiceAccount {sa}: {why}; pod not mutated"));
                reviewed.outcome = Outcome::LookupUnavailable(why);
                return;
            }
            Lookup::Unavailable(_) => None,
        };
        response.warnings.extend(config.iter().flat_map(|c| c.warnings.iter().cloned()));
        let Some(identity) = identity::resolve(&sa, config.as_deref(), in_container_credentials) else {
            reviewed.outcome = if config.is_some() { Outcome::NoRole } else { Outcome::ServiceAccountNotFound };
            return;
        };
        match mutate(pod, Some(&identity), &self.settings) {
            Ok(mutation) => {
                response.warnings.extend(mutation.warnings.iter().cloned());
                if mutation.is_empty() {
                    reviewed.outcome = Outcome::AlreadyMutated;
                    return;
                }
                match serde_json::to_vec(&mutation.patch) {
                    Ok(patch) => {
                        response.patch_type = Some("JSONPatch");
                        response.patch = Some(base64::engine::general_purpose::STANDARD.encode(patch));
                        reviewed.outcome = Outcome::Mutated {
                            credentials: match identity.credentials {
                                Credentials::WebIdentity { .. } => "web-identity",
                                Credentials::ContainerCredentials => "container-credentials",
                            },
                        };
                    }
                    Err(e) => reviewed.outcome = Outcome::InvalidPod(e.to_string()),
                }
            }
            Err(error) => {
                response.warnings.push(format!("irsa-webhook: the pod object is not valid ({error}); pod not mutated"));
                reviewed.outcome = Outcome::InvalidPod(error.to_string());
            }
        }
    }
}

fn pod_name(pod: &Value) -> String {
    let field = |key| pod.pointer(key).and_then(Value::as_str).filter(|s| !s.is_empty());
    field("/metadata/name")
        .map(str::to_owned)
        .or_else(|| field("/metadata/generateName").map(|g| format!("{g}*")))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse_service_accounts;
    use crate::store::file::FileSource;
    use serde_json::json;

    fn admission() -> Admission {
        let sas = parse_service_accounts(
            "kind: ServiceAccount\nmetadata:\n  name: app\n  namespace: ns\n  annotations:\n    eks.amazonaws.com/role-arn: arn:aws:iam::111122223333:role/app\n---\nkind: ServiceAccount\nmetadata: {name: plain, namespace: ns}\n",
        )
        .unwrap();
        let settings = Arc::new(MutationSettings::default());
        Admission {
            source: Arc::new(FileSource::from_manifests(sas, &settings)),
            settings,
            container_credentials: None,
        }
    }

    fn review(api_version: &str, operation: &str, sa: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": api_version, "kind": "AdmissionReview",
            "request": {
                "uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "ns", "operation": operation,
                "object": {"metadata": {"generateName": "web-"}, "spec": {"serviceAccountName": sa, "containers": [{"name": "c"}]}},
            }
        }))
        .unwrap()
    }

    fn response(r: &Reviewed) -> Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[tokio::test]
    async fn v1_and_v1beta1_are_answered_in_kind_with_a_patch() {
        for version in API_VERSIONS {
            let r = admission().review(&review(version, "CREATE", "app")).await.unwrap();
            let body = response(&r);
            assert_eq!(body["apiVersion"], version);
            assert_eq!(body["response"]["uid"], "u-1");
            assert_eq!(body["response"]["patchType"], "JSONPatch");
            assert!(r.outcome.mutated());
            assert_eq!(r.pod, "web-*");
        }
    }

    #[tokio::test]
    async fn non_create_and_unannotated_are_allowed_unchanged() {
        let r = admission().review(&review("admission.k8s.io/v1", "UPDATE", "app")).await.unwrap();
        assert_eq!(r.outcome, Outcome::Ignored);
        assert!(response(&r)["response"].get("patch").is_none());
        let r = admission().review(&review("admission.k8s.io/v1", "CREATE", "plain")).await.unwrap();
        assert_eq!(r.outcome, Outcome::NoRole);
        let r = admission().review(&review("admission.k8s.io/v1", "CREATE", "missing")).await.unwrap();
        assert_eq!(r.outcome, Outcome::ServiceAccountNotFound);
    }

    #[tokio::test]
    async fn bad_bodies_are_errors_and_bad_pods_are_allowed_with_a_warning() {
        let a = admission();
        assert!(matches!(a.review(b"{").await, Err(AdmissionError::NotJson(_))));
        assert!(matches!(
            a.review(br#"{"apiVersion":"v1","kind":"AdmissionReview"}"#).await,
            Err(AdmissionError::ApiVersion(_))
        ));
        assert!(matches!(
            a.review(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#).await,
            Err(AdmissionError::NoRequest)
        ));
        let mut bad: Value = serde_json::from_slice(&review("admission.k8s.io/v1", "CREATE", "app")).unwrap();
        bad["request"]["object"]["spec"]["containers"] = json!("oops");
        let r = a.review(&serde_json::to_vec(&bad).unwrap()).await.unwrap();
        let body = response(&r);
        assert_eq!(body["response"]["allowed"], true);
        assert!(body["response"]["warnings"][0].as_str().unwrap().contains("spec.containers must be an array"));
    }
}
