//! Kubernetes label selectors (`matchLabels` + `matchExpressions`), evaluated against a label map. Pure.
//!
//! Used by `doctor` to decide whether a MutatingWebhookConfiguration's namespaceSelector and objectSelector let a
//! pod through, with the same semantics as the API server: an absent, null or empty selector matches everything,
//! every requirement must hold, and `NotIn` / `DoesNotExist` hold when the key is absent.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SelectorError {
    #[error("the selector is not an object")]
    NotAnObject,
    #[error("matchLabels must map keys to strings")]
    MatchLabels,
    #[error("matchExpressions[{0}] must be an object with a string key and operator")]
    Expression(usize),
    #[error("matchExpressions[{index}] has operator {operator:?}; known: In, NotIn, Exists, DoesNotExist")]
    Operator { index: usize, operator: String },
    #[error("matchExpressions[{0}].values must be a list of strings")]
    Values(usize),
}

/// One condition on one label key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// From `matchLabels`.
    Equals {
        key: String,
        value: String,
    },
    In {
        key: String,
        values: Vec<String>,
    },
    NotIn {
        key: String,
        values: Vec<String>,
    },
    Exists {
        key: String,
    },
    DoesNotExist {
        key: String,
    },
}

impl Requirement {
    pub fn key(&self) -> &str {
        match self {
            Self::Equals { key, .. }
            | Self::In { key, .. }
            | Self::NotIn { key, .. }
            | Self::Exists { key }
            | Self::DoesNotExist { key } => key,
        }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(self.key());
        match self {
            Self::Equals { value: wanted, .. } => value == Some(wanted),
            Self::In { values, .. } => value.is_some_and(|v| values.contains(v)),
            Self::NotIn { values, .. } => value.is_none_or(|v| !values.contains(v)),
            Self::Exists { .. } => value.is_some(),
            Self::DoesNotExist { .. } => value.is_none(),
        }
    }

    /// True when the requirement asks for a label to be present (so the fix is to add one).
    pub fn wants_label(&self) -> bool {
        matches!(self, Self::Equals { .. } | Self::In { .. } | Self::Exists { .. })
    }
}

/// kubectl's notation: `k=v`, `k in (a,b)`, `k notin (a)`, `k`, `!k`.
impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Equals { key, value } => write!(f, "{key}={value}"),
            Self::In { key, values } => write!(f, "{key} in ({})", values.join(",")),
            Self::NotIn { key, values } => write!(f, "{key} notin ({})", values.join(",")),
            Self::Exists { key } => write!(f, "{key}"),
            Self::DoesNotExist { key } => write!(f, "!{key}"),
        }
    }
}

/// A parsed selector: all requirements must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses a `metav1.LabelSelector` as JSON; `None` and `null` are the empty selector.
    pub fn parse(selector: Option<&Value>) -> Result<Self, SelectorError> {
        let object = match selector {
            None | Some(Value::Null) => return Ok(Self::default()),
            Some(Value::Object(object)) => object,
            Some(_) => return Err(SelectorError::NotAnObject),
        };
        let mut requirements = Vec::new();
        match object.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (key, value) in labels {
                    let value = value.as_str().ok_or(SelectorError::MatchLabels)?;
                    requirements.push(Requirement::Equals { key: key.clone(), value: value.to_owned() });
                }
            }
            Some(_) => return Err(SelectorError::MatchLabels),
        }
        let expressions = match object.get("matchExpressions") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(expressions)) => expressions.as_slice(),
            Some(_) => return Err(SelectorError::Expression(0)),
        };
        for (index, expression) in expressions.iter().enumerate() {
            let text = |field| expression.get(field).and_then(Value::as_str);
            let (Some(key), Some(operator)) = (text("key"), text("operator")) else {
                return Err(SelectorError::Expression(index));
            };
            let key = key.to_owned();
            let values = || -> Result<Vec<String>, SelectorError> {
                match expression.get("values") {
                    None | Some(Value::Null) => Ok(Vec::new()),
                    Some(Value::Array(values)) => values
                        .iter()
                        .map(|v| v.as_str().map(str::to_owned).ok_or(SelectorError::Values(index)))
                        .collect(),
                    Some(_) => Err(SelectorError::Values(index)),
                }
            };
            requirements.push(match operator {
                "In" => Requirement::In { key, values: values()? },
                "NotIn" => Requirement::NotIn { key, values: values()? },
                "Exists" => Requirement::Exists { key },
                "DoesNotExist" => Requirement::DoesNotExist { key },
                other => return Err(SelectorError::Operator { index, operator: other.to_owned() }),
            });
        }
        Ok(Self { requirements })
    }

    /// The first requirement `labels` do not meet; `None` means the selector matches.
    pub fn first_unmet(&self, labels: &BTreeMap<String, String>) -> Option<&Requirement> {
        self.requirements.iter().find(|r| !r.matches(labels))
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.first_unmet(labels).is_none()
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.requirements.is_empty() {
            return f.write_str("(everything)");
        }
        let parts: Vec<String> = self.requirements.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(", "))
    }
}

/// The labels of a raw object (`metadata.labels`), string values only.
pub fn labels_of(object: &Value) -> BTreeMap<String, String> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| labels.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn matches(selector: Value, pairs: &[(&str, &str)]) -> bool {
        LabelSelector::parse(Some(&selector)).unwrap().matches(&labels(pairs))
    }

    #[test]
    fn empty_null_and_absent_selectors_match_everything() {
        assert!(LabelSelector::parse(None).unwrap().matches(&labels(&[])));
        assert!(LabelSelector::parse(Some(&Value::Null)).unwrap().matches(&labels(&[("a", "b")])));
        assert!(matches(json!({}), &[]));
        assert!(matches(json!({"matchLabels": null, "matchExpressions": null}), &[("x", "y")]));
        assert!(matches(json!({"matchLabels": {}, "matchExpressions": []}), &[]));
    }

    #[test]
    fn match_labels_need_every_pair() {
        let selector = json!({"matchLabels": {"team": "a", "env": "prod"}});
        assert!(matches(selector.clone(), &[("team", "a"), ("env", "prod"), ("other", "x")]));
        assert!(!matches(selector.clone(), &[("team", "a")]));
        assert!(!matches(selector, &[("team", "b"), ("env", "prod")]));
    }

    #[test]
    fn in_needs_the_key_with_one_of_the_values() {
        let selector = json!({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}]});
        assert!(matches(selector.clone(), &[("team", "b")]));
        assert!(!matches(selector.clone(), &[("team", "c")]));
        assert!(!matches(selector, &[]));
        // In with no values matches nothing (the API rejects it, but a stored object could still say so).
        assert!(!matches(json!({"matchExpressions": [{"key": "k", "operator": "In"}]}), &[("k", "")]));
    }

    #[test]
    fn not_in_holds_when_the_key_is_absent() {
        let selector = json!({"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}]});
        assert!(matches(selector.clone(), &[]));
        assert!(matches(selector.clone(), &[("kubernetes.io/metadata.name", "team")]));
        assert!(!matches(selector, &[("kubernetes.io/metadata.name", "kube-system")]));
    }

    #[test]
    fn exists_and_does_not_exist_ignore_the_value() {
        let exists = json!({"matchExpressions": [{"key": "k", "operator": "Exists"}]});
        assert!(matches(exists.clone(), &[("k", "")]));
        assert!(!matches(exists, &[("other", "k")]));
        let absent = json!({"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]});
        assert!(matches(absent.clone(), &[("k", "v")]));
        assert!(!matches(absent, &[("skip", "false")]));
    }

    #[test]
    fn labels_and_expressions_combine_with_and() {
        let selector = json!({
            "matchLabels": {"irsa": "on"},
            "matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]});
        assert!(matches(selector.clone(), &[("irsa", "on")]));
        assert!(!matches(selector.clone(), &[("irsa", "on"), ("skip", "")]));
        assert!(!matches(selector, &[]));
    }

    #[test]
    fn first_unmet_names_the_failing_requirement() {
        let selector = LabelSelector::parse(Some(&json!({
            "matchLabels": {"a": "1"},
            "matchExpressions": [{"key": "b", "operator": "NotIn", "values": ["x", "y"]}]})))
        .unwrap();
        let unmet = selector.first_unmet(&labels(&[("a", "1"), ("b", "y")])).unwrap();
        assert_eq!(unmet.to_string(), "b notin (x,y)");
        assert!(!unmet.wants_label());
        assert_eq!(selector.to_string(), "a=1, b notin (x,y)");
        assert_eq!(LabelSelector::default().to_string(), "(everything)");
    }

    #[test]
    fn display_uses_kubectl_notation() {
        let r = |v: Value| LabelSelector::parse(Some(&json!({"matchExpressions": [v]}))).unwrap().to_string();
        assert_eq!(r(json!({"key": "k", "operator": "In", "values": ["a", "b"]})), "k in (a,b)");
        assert_eq!(r(json!({"key": "k", "operator": "Exists"})), "k");
        assert_eq!(r(json!({"key": "k", "operator": "DoesNotExist"})), "!k");
    }

    #[test]
    fn malformed_selectors_are_errors_not_matches() {
        let parse = |v: Value| LabelSelector::parse(Some(&v));
        assert_eq!(parse(json!([])), Err(SelectorError::NotAnObject));
        assert_eq!(parse(json!({"matchLabels": {"a": 1}})), Err(SelectorError::MatchLabels));
        assert_eq!(parse(json!({"matchExpressions": [{"key": "a"}]})), Err(SelectorError::Expression(0)));
        assert_eq!(
            parse(json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})),
            Err(SelectorError::Operator { index: 0, operator: "Gt".into() })
        );
        assert_eq!(
            parse(json!({"matchExpressions": [{"key": "a", "operator": "In", "values": "x"}]})),
            Err(SelectorError::Values(0))
        );
        // Operators are case-sensitive, as in the API server.
        assert!(parse(json!({"matchExpressions": [{"key": "a", "operator": "in", "values": ["x"]}]})).is_err());
    }

    #[test]
    fn labels_of_reads_string_labels() {
        let object = json!({"metadata": {"labels": {"a": "1", "b": 2}}});
        assert_eq!(labels_of(&object), labels(&[("a", "1")]));
        assert!(labels_of(&json!({})).is_empty());
    }
}
