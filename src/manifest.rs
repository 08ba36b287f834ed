//! Reading Kubernetes manifests from files: YAML (multi-document) or JSON, with `v1 List`s flattened.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::identity::ServiceAccountRef;
use crate::mutate::Pod;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("not valid YAML or JSON: {0}")]
    Syntax(String),
    #[error("expected one document, found {0}")]
    NotOne(usize),
    #[error("expected a {expected}, found kind {found:?}")]
    WrongKind { expected: &'static str, found: String },
    #[error("{0} has no metadata.name")]
    NoName(&'static str),
}

/// All objects in `text`, in order; empty documents are dropped and `kind: List` (or `*List`) items flattened.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, ManifestError> {
    let trimmed = text.trim_start();
    let documents: Vec<Value> = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        // JSON is YAML, but the JSON parser is exact about numbers and escapes and gives better errors.
        vec![serde_json::from_str(text).map_err(|e| ManifestError::Syntax(e.to_string()))?]
    } else {
        let mut documents = Vec::new();
        for document in serde_yaml_ng::Deserializer::from_str(text) {
            documents.push(Value::deserialize(document).map_err(|e| ManifestError::Syntax(e.to_string()))?);
        }
        documents
    };
    let mut objects = Vec::new();
    for document in documents {
        flatten_into(document, &mut objects);
    }
    Ok(objects)
}

fn flatten_into(document: Value, objects: &mut Vec<Value>) {
    match document {
        Value::Null => {}
        Value::Object(mut object) => {
            let is_list = object.get("kind").and_then(Value::as_str).is_some_and(|k| k.ends_with("List"));
            match object.remove("items") {
                Some(Value::Array(items)) if is_list => items.into_iter().for_each(|i| flatten_into(i, objects)),
                Some(items) => {
                    object.insert("items".into(), items);
                    objects.push(Value::Object(object));
                }
                None => objects.push(Value::Object(object)),
            }
        }
        other => objects.push(other),
    }
}

/// The single Pod in `text`.
pub fn parse_pod(text: &str) -> Result<Value, ManifestError> {
    let mut documents = parse_documents(text)?;
    if documents.len() != 1 {
        return Err(ManifestError::NotOne(documents.len()));
    }
    let pod = documents.remove(0);
    expect_kind(&pod, "Pod")?;
    Ok(pod)
}

fn expect_kind(object: &Value, expected: &'static str) -> Result<(), ManifestError> {
    match object.get("kind").and_then(Value::as_str) {
        Some(kind) if kind == expected => Ok(()),
        // A Pod without apiVersion/kind (as in an AdmissionReview's object) is still a Pod.
        None if object.get("spec").is_some() && expected == "Pod" => Ok(()),
        other => Err(ManifestError::WrongKind { expected, found: other.unwrap_or("").to_owned() }),
    }
}

/// A ServiceAccount as the webhook sees it: its reference and annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountManifest {
    pub reference: ServiceAccountRef,
    pub annotations: BTreeMap<String, String>,
    pub creation_timestamp: Option<String>,
}

impl ServiceAccountManifest {
    pub fn from_object(object: &Value) -> Result<Self, ManifestError> {
        expect_kind(object, "ServiceAccount")?;
        let text = |pointer| object.pointer(pointer).and_then(Value::as_str);
        let name = text("/metadata/name").ok_or(ManifestError::NoName("ServiceAccount"))?;
        let namespace = text("/metadata/namespace").unwrap_or("default");
        let annotations =
            crate::identity::annotations_of(object).into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        Ok(Self {
            reference: ServiceAccountRef::new(namespace, name),
            annotations,
            creation_timestamp: text("/metadata/creationTimestamp").map(str::to_owned),
        })
    }
}

/// Every ServiceAccount in `text`; any other kind is an error, so a wrong file is noticed.
pub fn parse_service_accounts(text: &str) -> Result<Vec<ServiceAccountManifest>, ManifestError> {
    parse_documents(text)?.iter().map(ServiceAccountManifest::from_object).collect()
}

/// The namespace and ServiceAccount a pod runs as, with Kubernetes' defaults (see `mutate::Pod::service_account`).
pub fn pod_service_account(pod: &Value, namespace_override: Option<&str>) -> ServiceAccountRef {
    Pod::from_value(pod).unwrap_or_default().service_account(namespace_override)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml_and_lists_are_flattened() {
        let text = "---\nkind: ServiceAccount\nmetadata: {name: a}\n---\n\n---\napiVersion: v1\nkind: List\nitems:\n- kind: ServiceAccount\n  metadata: {name: b, namespace: x}\n";
        let sas = parse_service_accounts(text).unwrap();
        let refs: Vec<String> = sas.iter().map(|s| s.reference.to_string()).collect();
        assert_eq!(refs, ["default/a", "x/b"]);
    }

    #[test]
    fn json_and_wrong_kinds() {
        assert!(parse_pod(r#"{"kind":"Pod","spec":{"containers":[]}}"#).is_ok());
        assert!(matches!(parse_pod("kind: Service\nspec: {}"), Err(ManifestError::WrongKind { .. })));
        assert!(matches!(parse_pod("{not json"), Err(ManifestError::Syntax(_))));
        assert!(matches!(parse_pod(": : :\n- ["), Err(ManifestError::Syntax(_))));
        assert!(matches!(
            parse_service_accounts("kind: Pod\nmetadata: {name: a}"),
            Err(ManifestError::WrongKind { .. })
        ));
    }

    #[test]
    fn pod_service_account_defaults() {
        let pod = serde_json::json!({"spec": {}});
        assert_eq!(pod_service_account(&pod, None).to_string(), "default/default");
        let pod = serde_json::json!({"metadata": {"namespace": "n"}, "spec": {"serviceAccountName": "s"}});
        assert_eq!(pod_service_account(&pod, None).to_string(), "n/s");
        assert_eq!(pod_service_account(&pod, Some("req")).to_string(), "req/s");
    }
}
