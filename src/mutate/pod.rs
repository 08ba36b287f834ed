//! The pod as the rules see it: decoded straight from the request bytes (or from a parsed manifest), keeping only
//! what the rules read — names, annotations, env names, mounts, volumes, security contexts, the OS — and skipping
//! everything else without building it. Then checked for shape once ([`PodView`]).

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use super::env::EnvNames;
use super::lenient::{visit_keys, Arr, Capped, Flag, Int, Obj, Set, StrMap, Text};
use super::{MutateError, MAX_CONTAINERS, POD_IDENTITY_LABEL};
use crate::identity::ServiceAccountRef;

/// A pod, decoded. Borrows its strings from the input.
#[derive(Debug, Default)]
pub struct Pod<'a>(Obj<PodDoc<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for Pod<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Obj::deserialize(deserializer).map(Pod)
    }
}

impl<'a> Pod<'a> {
    /// Decodes a pod from JSON text (the API server's bytes), with the request path's reader ([`crate::json`]).
    pub fn from_json(json: &'a [u8]) -> Result<Self, MutateError> {
        crate::json::from_slice(json).map_err(|e| MutateError::Decode(e.to_string()))
    }

    /// Decodes a pod from a parsed manifest, borrowing its strings.
    pub fn from_value(value: &'a Value) -> Result<Self, MutateError> {
        Pod::deserialize(value).map_err(|e| MutateError::Decode(e.to_string()))
    }

    fn doc(&self) -> Option<&PodDoc<'a>> {
        self.0.get()
    }

    fn metadata(&self) -> Option<&Metadata<'a>> {
        self.doc()?.metadata.get()
    }

    fn meta_text<'s>(&'s self, field: impl Fn(&'s Metadata<'a>) -> &'s Text<'a>) -> Option<&'s str> {
        self.metadata().and_then(|m| field(m).get()).filter(|s| !s.is_empty())
    }

    /// `metadata.name`; empty when the API server has not named the pod yet.
    pub fn name(&self) -> Option<&str> {
        self.meta_text(|m| &m.name)
    }

    /// `metadata.name` as decoded: borrowed from the review's body unless it held an escape.
    pub(crate) fn name_text(&self) -> Option<&std::borrow::Cow<'a, str>> {
        self.metadata().and_then(|m| m.name.0.as_ref()).filter(|s| !s.is_empty())
    }

    pub fn generate_name(&self) -> Option<&str> {
        self.meta_text(|m| &m.generate_name)
    }

    pub fn namespace(&self) -> Option<&str> {
        self.meta_text(|m| &m.namespace)
    }

    /// How to name the pod to a person: its name, else its generateName (`web-`), else `<unnamed>`.
    pub fn display_name(&self) -> &str {
        self.name().or(self.generate_name()).unwrap_or("<unnamed>")
    }

    /// The namespace and ServiceAccount the pod runs as, with Kubernetes' defaults: the request's namespace (when
    /// given) wins over the pod's own, which defaults to `default`.
    pub fn service_account(&self, namespace_override: Option<&str>) -> ServiceAccountRef {
        let namespace = namespace_override.filter(|n| !n.is_empty()).or(self.namespace()).unwrap_or("default");
        ServiceAccountRef::new(namespace, self.service_account_name())
    }

    /// `spec.serviceAccountName`, else the deprecated `spec.serviceAccount`, else `default`.
    pub fn service_account_name(&self) -> &str {
        let spec = self.doc().and_then(|d| d.spec.get());
        spec.and_then(|s| s.service_account_name.get().filter(|n| !n.is_empty()))
            .or_else(|| spec.and_then(|s| s.service_account.get().filter(|n| !n.is_empty())))
            .unwrap_or("default")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PodDoc<'a> {
    #[serde(default, borrow)]
    kind: Text<'a>,
    #[serde(default, borrow)]
    metadata: Obj<Metadata<'a>>,
    #[serde(default, borrow)]
    spec: Obj<Spec<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Metadata<'a> {
    #[serde(default, borrow)]
    name: Text<'a>,
    #[serde(default, borrow)]
    generate_name: Text<'a>,
    #[serde(default, borrow)]
    namespace: Text<'a>,
    #[serde(default, borrow)]
    annotations: Obj<StrMap<'a>>,
    #[serde(default)]
    labels: Obj<Labels>,
}

/// Only whether the pod-identity label is there: the rules read nothing else of the labels.
#[derive(Debug, Default)]
pub(crate) struct Labels {
    pod_identity: bool,
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Labels;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Labels, A::Error> {
                let mut labels = Labels::default();
                visit_keys(map, |key| labels.pod_identity |= key == POD_IDENTITY_LABEL)?;
                Ok(labels)
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// Containers of one list, at most [`MAX_CONTAINERS`] of them decoded.
type Containers<'a> = Capped<Obj<Container<'a>>, MAX_CONTAINERS>;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Spec<'a> {
    #[serde(default, borrow)]
    containers: Arr<Containers<'a>>,
    #[serde(default, borrow)]
    init_containers: Arr<Containers<'a>>,
    #[serde(default, borrow)]
    volumes: Arr<Vec<Obj<Volume<'a>>>>,
    #[serde(default)]
    security_context: Obj<PodSecurityContext>,
    #[serde(default)]
    node_selector: Obj<NodeSelector>,
    #[serde(default, borrow)]
    os: Obj<Os<'a>>,
    #[serde(default, borrow)]
    service_account_name: Text<'a>,
    #[serde(default, borrow)]
    service_account: Text<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PodSecurityContext {
    #[serde(default)]
    pub(crate) fs_group: Set,
    #[serde(default)]
    pub(crate) fs_group_change_policy: Set,
    #[serde(default)]
    pub(crate) run_as_user: Int,
    #[serde(default)]
    pub(crate) run_as_group: Int,
    #[serde(default)]
    pub(crate) run_as_non_root: Flag,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ContainerSecurityContext {
    #[serde(default)]
    pub(crate) run_as_user: Int,
    #[serde(default)]
    pub(crate) run_as_non_root: Flag,
}

/// Whether the node selector asks for Windows (by either OS label, as the reference).
#[derive(Debug, Default)]
pub(crate) struct NodeSelector {
    windows: bool,
}

impl<'de> Deserialize<'de> for NodeSelector {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = StrMap::deserialize(deserializer)?;
        let windows =
            ["kubernetes.io/os", "beta.kubernetes.io/os"].iter().any(|key| entries.get(key) == Some("windows"));
        Ok(NodeSelector { windows })
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Os<'a> {
    #[serde(default, borrow)]
    name: Text<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Volume<'a> {
    #[serde(default, borrow)]
    name: Text<'a>,
    #[serde(default)]
    projected: Obj<Projected>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Projected {
    #[serde(default)]
    sources: Arr<SourcesWithToken>,
}

/// Whether any projected source is a service-account token.
#[derive(Debug, Default)]
pub(crate) struct SourcesWithToken(bool);

impl<'de> Deserialize<'de> for SourcesWithToken {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SourcesWithToken;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SourcesWithToken, A::Error> {
                let mut found = false;
                while let Some(source) = seq.next_element::<Obj<SourceKinds>>()? {
                    found |= source.get().is_some_and(|s| s.0);
                }
                Ok(SourcesWithToken(found))
            }
        }
        deserializer.deserialize_seq(V)
    }
}

/// Whether a projected source has a `serviceAccountToken` key.
#[derive(Debug, Default)]
pub(crate) struct SourceKinds(bool);

impl<'de> Deserialize<'de> for SourceKinds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SourceKinds;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SourceKinds, A::Error> {
                let mut token = false;
                visit_keys(map, |key| token |= key == "serviceAccountToken")?;
                Ok(SourceKinds(token))
            }
        }
        deserializer.deserialize_map(V)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Container<'a> {
    #[serde(default, borrow)]
    name: Text<'a>,
    #[serde(default)]
    env: Arr<EnvNames>,
    #[serde(default, borrow)]
    volume_mounts: Arr<Vec<Obj<Mount<'a>>>>,
    #[serde(default)]
    security_context: Obj<ContainerSecurityContext>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Mount<'a> {
    #[serde(default, borrow)]
    name: Text<'a>,
    #[serde(default, borrow)]
    mount_path: Text<'a>,
}

/// Which container list a container is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerList {
    Containers,
    InitContainers,
}

impl ContainerList {
    /// The field name under `spec`.
    pub fn field(self) -> &'static str {
        match self {
            ContainerList::Containers => "containers",
            ContainerList::InitContainers => "initContainers",
        }
    }

    fn spec_path(self) -> &'static str {
        match self {
            ContainerList::Containers => "spec.containers",
            ContainerList::InitContainers => "spec.initContainers",
        }
    }
}

/// The pod after its shape was checked: what the rules read, by reference into the decoded [`Pod`].
pub(crate) struct PodView<'p> {
    pub(crate) pod: &'p Pod<'p>,
    pub(crate) annotations: &'p [(std::borrow::Cow<'p, str>, std::borrow::Cow<'p, str>)],
    has_metadata: bool,
    labels: Option<&'p Labels>,
    volumes: Option<&'p [Obj<Volume<'p>>]>,
    security_context: Option<&'p PodSecurityContext>,
    windows: bool,
    /// Containers, then init containers; ephemeral containers are never mutated.
    pub(crate) containers: Vec<ContainerView<'p>>,
}

pub(crate) struct ContainerView<'p> {
    pub(crate) list: ContainerList,
    pub(crate) index: usize,
    pub(crate) name: &'p str,
    /// `None` when absent or null: the patch must create the array.
    pub(crate) env: Option<EnvNames>,
    pub(crate) mounts: Option<&'p [Obj<Mount<'p>>]>,
    pub(crate) security_context: Option<&'p ContainerSecurityContext>,
}

/// A mount of a container: its volume name and path (either may be missing in a malformed pod).
pub(crate) struct MountView<'p> {
    pub(crate) name: Option<&'p str>,
    pub(crate) path: Option<&'p str>,
}

impl<'p> ContainerView<'p> {
    pub(crate) fn mounts(&self) -> impl Iterator<Item = MountView<'p>> + 'p {
        self.mounts
            .unwrap_or_default()
            .iter()
            .filter_map(Obj::get)
            .map(|m| MountView { name: m.name.get(), path: m.mount_path.get() })
    }

    pub(crate) fn mount_named(&self, name: &str) -> Option<MountView<'p>> {
        self.mounts().find(|m| m.name == Some(name))
    }

    pub(crate) fn mount_at(&self, path: &str) -> Option<MountView<'p>> {
        let wanted = path.trim_end_matches('/');
        self.mounts().find(|m| m.path.is_some_and(|p| p.trim_end_matches('/') == wanted))
    }
}

impl<'p> PodView<'p> {
    /// Checks the shapes the rules rely on, in a fixed order, so the first problem is reported.
    pub(crate) fn new(pod: &'p Pod<'p>) -> Result<Self, MutateError> {
        let doc = match &pod.0 {
            Obj::Some(doc) => doc,
            _ => return Err(MutateError::NotAnObject),
        };
        if let Some(kind) = doc.kind.get() {
            if kind != "Pod" {
                // Cut: the kind is echoed in the warning and the log line (found by fuzz/fuzz_targets/mutate.rs).
                return Err(MutateError::NotAPod(super::shown(kind).to_string()));
            }
        }
        let metadata = doc.metadata.checked().map_err(shape("metadata"))?;
        let annotations = match metadata.map(|m| m.annotations.checked()) {
            Some(Err(expected)) => return Err(shape("annotations")(expected)),
            Some(Ok(annotations)) => annotations.map(|a| a.0.as_slice()).unwrap_or_default(),
            None => &[],
        };
        let labels = metadata.map(|m| m.labels.checked()).transpose().map_err(shape("labels"))?.flatten();
        let spec = doc.spec.checked().map_err(shape("spec"))?.ok_or(MutateError::MissingSpec)?;
        if matches!(spec.containers, Arr::Absent | Arr::Null) {
            return Err(MutateError::NoContainers);
        }
        let volumes = spec.volumes.checked().map_err(shape("spec.volumes"))?.map(Vec::as_slice);
        let security_context = spec.security_context.checked().map_err(shape("spec.securityContext"))?;

        let lists =
            [(ContainerList::Containers, &spec.containers), (ContainerList::InitContainers, &spec.init_containers)];
        let mut total = 0;
        for (list, containers) in lists {
            total += containers.checked().map_err(shape(list.spec_path()))?.map_or(0, |c| c.total);
        }
        if total > MAX_CONTAINERS {
            return Err(MutateError::TooManyContainers { found: total, limit: MAX_CONTAINERS });
        }
        let mut views = Vec::with_capacity(total);
        for (list, containers) in lists {
            let items = containers.get().map(|c| c.items.as_slice()).unwrap_or_default();
            for (index, container) in items.iter().enumerate() {
                views.push(ContainerView::new(container, list, index)?);
            }
        }
        let windows = spec.node_selector.get().is_some_and(|s| s.windows)
            || spec.os.get().and_then(|os| os.name.get()) == Some("windows");
        Ok(Self {
            pod,
            annotations,
            has_metadata: metadata.is_some(),
            labels,
            volumes,
            security_context,
            windows,
            containers: views,
        })
    }

    /// The annotation `<prefix>/<name>`, found without building the key.
    pub(crate) fn annotation_under(&self, prefix: &str, name: &str) -> Option<&'p str> {
        let matches = |key: &str| key.strip_prefix(prefix).and_then(|k| k.strip_prefix('/')) == Some(name);
        self.annotations.iter().rev().find(|(k, _)| matches(k)).map(|(_, v)| v.as_ref())
    }

    pub(crate) fn has_metadata(&self) -> bool {
        self.has_metadata
    }

    /// `None` when the pod has no labels object at all (the patch must create it).
    pub(crate) fn has_labels(&self) -> bool {
        self.labels.is_some()
    }

    pub(crate) fn has_pod_identity_label(&self) -> bool {
        self.labels.is_some_and(|l| l.pod_identity)
    }

    /// `None` when the pod has no volumes array (the patch must create it).
    pub(crate) fn has_volumes(&self) -> bool {
        self.volumes.is_some()
    }

    /// The volume called `name`, and whether it is a projected service-account token.
    pub(crate) fn volume_named(&self, name: &str) -> Option<bool> {
        self.volumes
            .unwrap_or_default()
            .iter()
            .filter_map(Obj::get)
            .find(|v| v.name.get() == Some(name))
            .map(|v| v.projected.get().and_then(|p| p.sources.get()).is_some_and(|s| s.0))
    }

    pub(crate) fn security_context(&self) -> Option<&'p PodSecurityContext> {
        self.security_context
    }

    pub(crate) fn name_for_messages(&self) -> &'p str {
        self.pod.display_name()
    }

    /// Windows pods: by node selector (as the reference) or by `spec.os.name`.
    pub(crate) fn is_windows(&self) -> bool {
        self.windows
    }
}

impl<'p> ContainerView<'p> {
    fn new(container: &'p Obj<Container<'p>>, list: ContainerList, index: usize) -> Result<Self, MutateError> {
        // Paths for error messages are only formatted on the error path: this runs for every container of every pod.
        let at = |field: &str| format!("spec.{}[{index}]{field}", list.field());
        let Obj::Some(container) = container else {
            return Err(MutateError::Shape { path: at(""), expected: "an object" });
        };
        let name =
            container.name.get().ok_or_else(|| MutateError::Shape { path: at(".name"), expected: "a string" })?;
        let env =
            container.env.checked().map_err(|expected| MutateError::Shape { path: at(".env"), expected })?.copied();
        let mounts = container
            .volume_mounts
            .checked()
            .map_err(|expected| MutateError::Shape { path: at(".volumeMounts"), expected })?
            .map(Vec::as_slice);
        let security_context = container
            .security_context
            .checked()
            .map_err(|expected| MutateError::Shape { path: at(".securityContext"), expected })?;
        Ok(Self { list, index, name, env, mounts, security_context })
    }
}

fn shape(path: &'static str) -> impl Fn(&'static str) -> MutateError {
    move |expected| MutateError::Shape { path: path.to_owned(), expected }
}
