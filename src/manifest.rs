//! Reading Kubernetes manifests from files: YAML (multi-document) or JSON, with `v1 List`s flattened.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

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

/// A YAML manifest may build at most this many bytes of values per byte of text (plus [`EXPANSION_ALLOWANCE`]).
/// Without aliases a manifest builds well under 32 per byte; YAML aliases replay the anchored node at every use, so a
/// few kilobytes can otherwise expand to gigabytes (one anchored list aliased in every item of another).
pub const MAX_EXPANSION: usize = 64;
/// What any manifest may build, whatever its length: room for a few aliased blocks in a small file.
pub const EXPANSION_ALLOWANCE: usize = 1 << 20;

/// All objects in `text`, in order; empty documents are dropped and `kind: List` (or `*List`) items flattened.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, ManifestError> {
    let trimmed = text.trim_start();
    let documents: Vec<Value> = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        // JSON is YAML, but the JSON parser is exact about numbers and escapes and gives better errors.
        vec![serde_json::from_str(text).map_err(|e| ManifestError::Syntax(e.to_string()))?]
    } else {
        let mut budget = text.len().saturating_mul(MAX_EXPANSION).saturating_add(EXPANSION_ALLOWANCE);
        let mut documents = Vec::new();
        for document in serde_yaml_ng::Deserializer::from_str(text) {
            let value = Bounded { budget: &mut budget }.deserialize(document);
            documents.push(value.map_err(|e| ManifestError::Syntax(e.to_string()))?);
        }
        documents
    };
    let mut objects = Vec::new();
    for document in documents {
        flatten_into(document, &mut objects);
    }
    Ok(objects)
}

/// Builds a `serde_json::Value` exactly as `Value::deserialize` does, charging what it builds (an estimate in bytes:
/// each node, each map entry and each string's length) to a budget shared by all documents of the text, and stops
/// with an error when the budget is spent. The YAML deserializer replays an alias's events at every use, so this
/// sees the expanded document and bounds its size, and the time spent building it, by the length of the text.
struct Bounded<'b> {
    budget: &'b mut usize,
}

/// An estimate of one node's and one map entry's overhead, in bytes.
const NODE_COST: usize = std::mem::size_of::<Value>();

impl Bounded<'_> {
    fn charge<E: de::Error>(&mut self, bytes: usize) -> Result<(), E> {
        match self.budget.checked_sub(bytes) {
            Some(left) => {
                *self.budget = left;
                Ok(())
            }
            None => Err(E::custom(format_args!(
                "the manifest expands to more than {MAX_EXPANSION} times its length (YAML aliases?); refused"
            ))),
        }
    }

    fn again(&mut self) -> Bounded<'_> {
        Bounded { budget: &mut *self.budget }
    }
}

impl<'de> DeserializeSeed<'de> for Bounded<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Bounded<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(mut self, v: bool) -> Result<Value, E> {
        self.charge(NODE_COST)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(mut self, v: i64) -> Result<Value, E> {
        self.charge(NODE_COST)?;
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(mut self, v: u64) -> Result<Value, E> {
        self.charge(NODE_COST)?;
        Ok(Value::from(v))
    }

    fn visit_i128<E: de::Error>(mut self, v: i128) -> Result<Value, E> {
        self.charge(NODE_COST)?;
        serde_json::Number::deserialize(de::value::I128Deserializer::<E>::new(v)).map(Value::Number)
    }

    fn visit_u128<E: de::Error>(mut self, v: u128) -> Result<Value, E> {
        self.charge(NODE_COST)?;
        serde_json::Number::deserialize(de::value::U128Deserializer::<E>::new(v)).map(Value::Number)
    }

    fn visit_f64<E: de::Error>(mut self, v: f64) -> Result<Value, E> {
        self.charge(NODE_COST)?;
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<Value, E> {
        self.charge(NODE_COST + v.len())?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_unit<E: de::Error>(mut self) -> Result<Value, E> {
        self.charge(NODE_COST)?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        self.charge(NODE_COST)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.again())? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Value, A::Error> {
        self.charge(NODE_COST)?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.charge(NODE_COST + key.len())?;
            let value = map.next_value_seed(self.again())?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
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
    fn alias_bombs_are_refused_not_expanded() {
        // One anchored list of 1,000 items aliased 1,000 times: 6 KB of text, a million values once expanded.
        let items = vec!["x"; 1000].join(",");
        let aliases = vec!["*a"; 1000].join(",");
        let text = format!("kind: ServiceAccount\nmetadata: {{name: a}}\nlist: &a [{items}]\nbomb: [{aliases}]\n");
        // Not `expect_err`: on failure it would print the million values.
        let Err(error) = parse_documents(&text) else { panic!("an alias bomb is refused") };
        assert!(error.to_string().contains("expands to more than 64 times its length"), "{error}");
        // The budget is shared by the documents of a text: one document expanding to a few hundred kilobytes is fine,
        // eight of them in one text are not.
        let items = vec!["x"; 100].join(",");
        let aliases = vec!["*a"; 60].join(",");
        let document = format!("list: &a [{items}]\nbomb: [{aliases}]\n---\n");
        assert!(parse_documents(&document).is_ok());
        assert!(parse_documents(&document.repeat(8)).is_err());
    }

    #[test]
    fn ordinary_aliases_still_work() {
        // Anchors belong to one document: a List shares annotations between its items.
        let text = "kind: List\nitems:\n- kind: ServiceAccount\n  metadata: {name: a, annotations: &common {eks.amazonaws.com/role-arn: x}}\n- kind: ServiceAccount\n  metadata: {name: b, annotations: *common}\n";
        let sas = parse_service_accounts(text).unwrap();
        assert_eq!(sas[1].annotations.get("eks.amazonaws.com/role-arn").map(String::as_str), Some("x"));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        for text in ["[".repeat(100_000), "- ".repeat(100_000), "{\"a\":".repeat(100_000)] {
            assert!(matches!(parse_documents(&text), Err(ManifestError::Syntax(_))));
        }
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
