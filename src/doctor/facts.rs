//! What the checks know about the pod, and what the rules would still add to it — read once, from the pod itself
//! and from the core's [`Change`]s (never from the text of a patch).

use std::collections::BTreeMap;

use serde_json::Value;

use super::selector::labels_of;
use crate::identity::ServiceAccountRef;
use crate::mutate::{Change, Pod};
use crate::shell;

/// The controller of an object (`ownerReferences` with `controller: true`, else the first owner).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OwnerRef {
    pub kind: String,
    pub name: String,
}

impl std::fmt::Display for OwnerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// The object's controller, if it names one.
pub fn controller_of(object: &Value) -> Option<OwnerRef> {
    let owners = object.pointer("/metadata/ownerReferences")?.as_array()?;
    let owner = owners.iter().find(|o| o.get("controller").and_then(Value::as_bool) == Some(true)).or(owners.first())?;
    Some(OwnerRef { kind: owner.get("kind")?.as_str()?.to_owned(), name: owner.get("name")?.as_str()?.to_owned() })
}

/// What the checks need to know about the pod itself.
pub(crate) struct PodFacts<'a> {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) service_account: ServiceAccountRef,
    /// Created through the API (has a creation timestamp or UID), as opposed to a manifest never applied.
    pub(crate) stored: bool,
    pub(crate) created: Option<&'a str>,
    pub(crate) uid: Option<&'a str>,
    /// The controller that recreates it.
    pub(crate) owner: Option<OwnerRef>,
    pub(crate) labels: BTreeMap<String, String>,
}

impl<'a> PodFacts<'a> {
    pub(crate) fn new(value: &'a Value, pod: &Pod<'_>) -> Self {
        let text = |pointer| value.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty());
        let service_account = pod.service_account(None);
        let created = text("/metadata/creationTimestamp");
        let uid = text("/metadata/uid");
        Self {
            namespace: service_account.namespace.clone(),
            name: pod.display_name().to_owned(),
            service_account,
            stored: created.is_some() || uid.is_some(),
            created,
            uid,
            owner: controller_of(value),
            labels: labels_of(value),
        }
    }

    pub(crate) fn display(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub(crate) fn recreate_fix(&self) -> String {
        let delete = format!("kubectl delete pod -n {} {}", shell::word(&self.namespace), shell::word(&self.name));
        match &self.owner {
            Some(owner) => format!("recreate the pod: {delete} (its controller {owner} recreates it)"),
            None => {
                format!("recreate the pod: {delete}, then create it again from its manifest (no controller owns it)")
            }
        }
    }
}

/// What the rules would still add, for people: read from the core's [`Change`]s.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Additions {
    /// The token volume, env vars, mounts, the pod-identity label: what "being mutated" means.
    pub injection: Vec<String>,
    /// `fsGroup` the fsGroup fix would set, if it would.
    pub fs_group: Option<i64>,
}

impl Additions {
    pub fn of(changes: &[Change<'_>]) -> Self {
        let mut additions = Self::default();
        // Per container, in pod order: containers, then init containers.
        let mut per_container: BTreeMap<(&'static str, usize), (&str, Vec<String>)> = BTreeMap::new();
        for change in changes {
            match change {
                Change::PodIdentityLabel { .. } => additions.injection.push("the pod-identity label".to_owned()),
                Change::TokenVolume { volume, .. } => additions.injection.push(format!("volume {}", volume.name)),
                Change::Env { container, vars, .. } => {
                    let entry = per_container.entry((container.list.field(), container.index)).or_default();
                    entry.0 = container.name;
                    entry.1.extend(vars.iter().map(|var| var.name.as_str().to_owned()));
                }
                Change::Mount { container, volume, mount_path, .. } => {
                    let entry = per_container.entry((container.list.field(), container.index)).or_default();
                    entry.0 = container.name;
                    entry.1.push(format!("mount of {volume} at {mount_path}"));
                }
                Change::FsGroup { gid, .. } => additions.fs_group = Some(*gid),
            }
        }
        for (name, parts) in per_container.into_values() {
            additions.injection.push(format!("container {name}: {}", parts.join(", ")));
        }
        additions
    }

    /// One phrase: `volume aws-iam-token; container app: AWS_ROLE_ARN, …; fsGroup 65534`.
    pub fn describe(&self) -> String {
        let mut parts = self.injection.clone();
        if let Some(gid) = self.fs_group {
            parts.push(format!("fsGroup {gid} (the fsGroup fix)"));
        }
        parts.join("; ")
    }
}

/// Containers, then init containers, as JSON.
pub(crate) fn containers(pod: &Value) -> impl Iterator<Item = &Value> {
    ["containers", "initContainers"]
        .into_iter()
        .filter_map(|list| pod.pointer(&format!("/spec/{list}")).and_then(Value::as_array))
        .flatten()
}

/// Kubernetes timestamps are RFC 3339 in UTC with a `Z`; compare them as such, never guess with other shapes.
pub(crate) fn is_later(a: &str, b: &str) -> bool {
    let shaped = |t: &str| {
        let bytes = t.as_bytes();
        t.len() >= 20
            && t.ends_with('Z')
            && bytes.get(4) == Some(&b'-')
            && bytes.get(10) == Some(&b'T')
            && bytes[..4].iter().all(u8::is_ascii_digit)
    };
    shaped(a) && shaped(b) && a[..19] > b[..19]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{self, ServiceAccountConfig};
    use crate::settings::{InjectMode, MutationSettings};
    use serde_json::json;

    fn additions(pod: &Value, settings: &MutationSettings) -> Additions {
        let sa = ServiceAccountRef::new("team", "app");
        let config = ServiceAccountConfig::from_annotations(
            &sa,
            [("eks.amazonaws.com/role-arn", "arn:aws:iam::111122223333:role/app")],
            settings,
        );
        let identity = identity::resolve(&sa, Some(&config), false).unwrap();
        let decoded = Pod::from_value(pod).unwrap();
        Additions::of(&crate::mutate::mutate(&decoded, Some(&identity), settings).unwrap().changes)
    }

    #[test]
    fn additions_name_the_volume_then_each_container_in_pod_order() {
        let pod = json!({"metadata": {"name": "p", "namespace": "team"}, "spec": {
            "securityContext": {"runAsUser": 1000},
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "app", "env": [{"name": "AWS_ROLE_ARN", "value": "x"}]}, {"name": "side"}]}});
        let found = additions(&pod, &MutationSettings::default());
        let mount = "mount of aws-iam-token at /var/run/secrets/eks.amazonaws.com/serviceaccount";
        assert_eq!(
            found.injection,
            [
                "volume aws-iam-token".to_owned(),
                format!("container app: AWS_WEB_IDENTITY_TOKEN_FILE, {mount}"),
                format!("container side: AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE, {mount}"),
                format!("container init: AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE, {mount}"),
            ]
        );
        assert_eq!(found.fs_group, Some(65534));
        assert!(found.describe().ends_with("; fsGroup 65534 (the fsGroup fix)"), "{}", found.describe());

        let fs_group_only = MutationSettings { inject: InjectMode::FsGroupOnly, ..MutationSettings::default() };
        let found = additions(&pod, &fs_group_only);
        assert!(found.injection.is_empty());
        assert_eq!(found.fs_group, Some(65534));
    }

    #[test]
    fn the_controller_is_the_owner_marked_so() {
        let pod = json!({"metadata": {"ownerReferences": [
            {"kind": "Node", "name": "n1"}, {"kind": "ReplicaSet", "name": "app-5d9", "controller": true}]}});
        assert_eq!(controller_of(&pod), Some(OwnerRef { kind: "ReplicaSet".into(), name: "app-5d9".into() }));
        let pod = json!({"metadata": {"ownerReferences": [{"kind": "Job", "name": "j"}]}});
        assert_eq!(controller_of(&pod).unwrap().to_string(), "Job/j");
        assert_eq!(controller_of(&json!({"metadata": {}})), None);
    }
}
