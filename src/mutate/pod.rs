//! A read-only view of the raw pod JSON: only the parts the rules look at, checked for shape once.

use serde_json::{Map, Value};

use super::MutateError;

type Object = Map<String, Value>;

pub(crate) struct PodView<'a> {
    metadata: Option<&'a Object>,
    spec: &'a Object,
    /// Containers, then init containers; ephemeral containers are never mutated.
    pub(crate) containers: Vec<ContainerView<'a>>,
}

pub(crate) struct ContainerView<'a> {
    /// `containers` or `initContainers`.
    pub(crate) list: &'static str,
    pub(crate) index: usize,
    pub(crate) name: &'a str,
    /// `None` when absent or null: the patch must create the array.
    pub(crate) env: Option<&'a [Value]>,
    pub(crate) mounts: Option<&'a [Value]>,
    pub(crate) security_context: Option<&'a Object>,
}

impl<'a> ContainerView<'a> {
    pub(crate) fn mount_named(&self, name: &str) -> Option<&'a Value> {
        self.mounts.unwrap_or_default().iter().find(|m| m.get("name").and_then(Value::as_str) == Some(name))
    }

    pub(crate) fn mount_at(&self, path: &str) -> Option<&'a Value> {
        let wanted = path.trim_end_matches('/');
        self.mounts
            .unwrap_or_default()
            .iter()
            .find(|m| m.get("mountPath").and_then(Value::as_str).is_some_and(|p| p.trim_end_matches('/') == wanted))
    }
}

impl<'a> PodView<'a> {
    pub(crate) fn parse(pod: &'a Value) -> Result<Self, MutateError> {
        let pod = pod.as_object().ok_or(MutateError::NotAnObject)?;
        if let Some(kind) = pod.get("kind").and_then(Value::as_str) {
            if kind != "Pod" {
                return Err(MutateError::NotAPod(kind.to_owned()));
            }
        }
        let metadata = optional_object(pod.get("metadata")).map_err(shape("metadata"))?;
        for field in ["annotations", "labels"] {
            optional_object(metadata.and_then(|m| m.get(field))).map_err(shape(field))?;
        }
        let spec = optional_object(pod.get("spec")).map_err(shape("spec"))?.ok_or(MutateError::MissingSpec)?;
        if spec.get("containers").is_none_or(Value::is_null) {
            return Err(MutateError::NoContainers);
        }
        optional_array(spec.get("volumes")).map_err(shape("spec.volumes"))?;
        optional_object(spec.get("securityContext")).map_err(shape("spec.securityContext"))?;
        let mut containers = Vec::new();
        for (list, path) in [("containers", "spec.containers"), ("initContainers", "spec.initContainers")] {
            for (index, container) in
                optional_array(spec.get(list)).map_err(shape(path))?.unwrap_or_default().iter().enumerate()
            {
                containers.push(ContainerView::parse(container, list, index)?);
            }
        }
        Ok(Self { metadata, spec, containers })
    }

    pub(crate) fn annotation(&self, key: &str) -> Option<&'a str> {
        self.metadata?.get("annotations")?.get(key)?.as_str()
    }

    pub(crate) fn annotations(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        let annotations = self.metadata.and_then(|m| m.get("annotations")).and_then(Value::as_object);
        annotations.into_iter().flatten().filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
    }

    pub(crate) fn has_metadata(&self) -> bool {
        self.metadata.is_some()
    }

    /// `None` when the pod has no labels object at all (the patch must create it).
    pub(crate) fn labels(&self) -> Option<&'a Object> {
        self.metadata?.get("labels")?.as_object()
    }

    pub(crate) fn volumes(&self) -> Option<&'a [Value]> {
        self.spec.get("volumes")?.as_array().map(Vec::as_slice)
    }

    pub(crate) fn security_context(&self) -> Option<&'a Object> {
        self.spec.get("securityContext")?.as_object()
    }

    pub(crate) fn name_for_messages(&self) -> &'a str {
        let name = |key| self.metadata.and_then(|m| m.get(key)).and_then(Value::as_str).filter(|n| !n.is_empty());
        name("name").or_else(|| name("generateName")).unwrap_or("<unnamed>")
    }

    /// Windows pods: by node selector (as the reference) or by `spec.os.name`.
    pub(crate) fn is_windows(&self) -> bool {
        let selector = self.spec.get("nodeSelector");
        let by_selector = ["kubernetes.io/os", "beta.kubernetes.io/os"]
            .iter()
            .any(|key| selector.and_then(|s| s.get(*key)).and_then(Value::as_str) == Some("windows"));
        let by_os = self.spec.get("os").and_then(|os| os.get("name")).and_then(Value::as_str) == Some("windows");
        by_selector || by_os
    }
}

impl<'a> ContainerView<'a> {
    fn parse(container: &'a Value, list: &'static str, index: usize) -> Result<Self, MutateError> {
        // Paths for error messages are only formatted on the error path: this runs for every container of every pod.
        let at = |field: &str| format!("spec.{list}[{index}]{field}");
        let object = container.as_object().ok_or_else(|| MutateError::Shape { path: at(""), expected: "an object" })?;
        let name = object
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| MutateError::Shape { path: at(".name"), expected: "a string" })?;
        let env =
            optional_array(object.get("env")).map_err(|expected| MutateError::Shape { path: at(".env"), expected })?;
        let mounts = optional_array(object.get("volumeMounts"))
            .map_err(|expected| MutateError::Shape { path: at(".volumeMounts"), expected })?;
        let security_context = optional_object(object.get("securityContext"))
            .map_err(|expected| MutateError::Shape { path: at(".securityContext"), expected })?;
        Ok(Self { list, index, name, env, mounts, security_context })
    }
}

fn optional_object(value: Option<&Value>) -> Result<Option<&Object>, &'static str> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(object)) => Ok(Some(object)),
        Some(_) => Err("an object"),
    }
}

fn optional_array(value: Option<&Value>) -> Result<Option<&[Value]>, &'static str> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(array)) => Ok(Some(array)),
        Some(_) => Err("an array"),
    }
}

fn shape(path: &str) -> impl Fn(&'static str) -> MutateError + '_ {
    move |expected| MutateError::Shape { path: path.to_owned(), expected }
}
