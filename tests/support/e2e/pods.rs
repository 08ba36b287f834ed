//! Reading pods back: containers, env, volumes, and the assertions on what the webhook added.

use super::*;

/// The caBundle of each webhook of a configuration, in order (None where it has none).
pub fn ca_bundles_of(configuration: &MutatingWebhookConfiguration) -> Vec<Option<String>> {
    let webhooks = configuration.webhooks.as_deref().unwrap_or_default();
    webhooks
        .iter()
        .map(|w| w.client_config.ca_bundle.as_ref().map(|b| String::from_utf8_lossy(&b.0).into_owned()))
        .collect()
}

/// The first container's env of a typed pod, as (name, value) pairs (valueFrom entries with an empty value).
pub fn env_of(pod: &Pod) -> Vec<(String, String)> {
    let containers = pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
    let env = containers.first().and_then(|c| c.env.clone()).unwrap_or_default();
    env.into_iter().map(|e| (e.name, e.value.unwrap_or_default())).collect()
}

/// `initContainers` then `containers`.
pub fn all_containers(pod: &Value) -> Vec<&Value> {
    ["initContainers", "containers"]
        .iter()
        .filter_map(|key| pod["spec"][key].as_array())
        .flat_map(|list| list.iter())
        .collect()
}

pub fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    all_containers(pod)
        .into_iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name:?} in pod {pod:#}"))
}

/// Values of env var `name` in a container (a list, to see duplicates).
pub fn env_values<'a>(container: &'a Value, name: &str) -> Vec<&'a Value> {
    container["env"].as_array().into_iter().flatten().filter(|e| e["name"] == name).collect()
}

/// The single value of env var `name`, if set exactly once.
pub fn env_value(container: &Value, name: &str) -> Option<String> {
    match env_values(container, name).as_slice() {
        [one] => one["value"].as_str().map(str::to_owned),
        _ => None,
    }
}

pub fn volumes_named<'a>(pod: &'a Value, name: &str) -> Vec<&'a Value> {
    pod["spec"]["volumes"].as_array().into_iter().flatten().filter(|v| v["name"] == name).collect()
}

pub fn mounts_named<'a>(container: &'a Value, name: &str) -> Vec<&'a Value> {
    container["volumeMounts"].as_array().into_iter().flatten().filter(|m| m["name"] == name).collect()
}

/// `AWS_ROLE_ARN` of the first container.
pub fn role_of(pod: &Value) -> Option<String> {
    all_containers(pod).first().and_then(|c| env_value(c, "AWS_ROLE_ARN"))
}

/// Any trace of our mutation: the token volume, or AWS_ROLE_ARN / AWS_WEB_IDENTITY_TOKEN_FILE in a container.
pub fn is_mutated(pod: &Value) -> bool {
    !volumes_named(pod, TOKEN_VOLUME).is_empty()
        || all_containers(pod).iter().any(|c| {
            !env_values(c, "AWS_ROLE_ARN").is_empty()
                || !env_values(c, "AWS_WEB_IDENTITY_TOKEN_FILE").is_empty()
                || !mounts_named(c, TOKEN_VOLUME).is_empty()
        })
}

/// What a mutated pod must carry.
#[derive(Debug, Clone)]
pub struct Expected {
    pub role: String,
    pub audience: String,
    pub expiration: i64,
    /// `AWS_STS_REGIONAL_ENDPOINTS=regional`.
    pub regional_sts: bool,
}

impl Expected {
    /// The webhook's defaults for a ServiceAccount with just a role.
    pub fn role(role: &str) -> Self {
        Self {
            role: role.to_owned(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            expiration: DEFAULT_EXPIRATION,
            regional_sts: false,
        }
    }
}

/// Every container (init and regular) has the env vars and the mount exactly once, and the pod has exactly one
/// token volume with the expected audience and lifetime.
pub fn assert_mutated(pod: &Value, expected: &Expected) {
    let name = pod["metadata"]["name"].as_str().unwrap_or("?");
    let volumes = volumes_named(pod, TOKEN_VOLUME);
    assert_eq!(volumes.len(), 1, "pod {name}: expected exactly one {TOKEN_VOLUME} volume\n{pod:#}");
    let sources = volumes[0]["projected"]["sources"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        sources,
        vec![json!({"serviceAccountToken": {
            "audience": expected.audience, "expirationSeconds": expected.expiration, "path": "token"
        }})],
        "pod {name}: token volume sources\n{pod:#}"
    );
    let containers = all_containers(pod);
    assert!(!containers.is_empty(), "pod {name} has no containers");
    for c in containers {
        let cname = c["name"].as_str().unwrap_or("?");
        assert_eq!(
            env_value(c, "AWS_ROLE_ARN").as_deref(),
            Some(expected.role.as_str()),
            "pod {name}, container {cname}: AWS_ROLE_ARN (exactly once)\n{c:#}"
        );
        assert_eq!(
            env_value(c, "AWS_WEB_IDENTITY_TOKEN_FILE").as_deref(),
            Some(TOKEN_FILE),
            "pod {name}, container {cname}: AWS_WEB_IDENTITY_TOKEN_FILE (exactly once)\n{c:#}"
        );
        let regional = env_value(c, "AWS_STS_REGIONAL_ENDPOINTS");
        assert_eq!(
            regional.as_deref(),
            expected.regional_sts.then_some("regional"),
            "pod {name}, container {cname}: AWS_STS_REGIONAL_ENDPOINTS\n{c:#}"
        );
        let mounts = mounts_named(c, TOKEN_VOLUME);
        assert_eq!(
            mounts,
            vec![&json!({"name": TOKEN_VOLUME, "mountPath": TOKEN_MOUNT_PATH, "readOnly": true})],
            "pod {name}, container {cname}: the token mount (exactly once)\n{c:#}"
        );
    }
}

/// No trace of our mutation.
pub fn assert_unmutated(pod: &Value) {
    assert!(!is_mutated(pod), "pod {} was mutated but should not be:\n{pod:#}", pod["metadata"]["name"]);
}

/// The pod without what the webhook adds (token volume; its mounts; AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE,
/// AWS_STS_REGIONAL_ENDPOINTS; `env`/`volumeMounts` lists left empty by that). fsGroup is left alone: a test that
/// expects the fsGroup fix says so.
pub fn strip_irsa(pod: &Value) -> Value {
    let mut pod = pod.clone();
    if let Some(volumes) = pod["spec"]["volumes"].as_array_mut() {
        volumes.retain(|v| v["name"] != TOKEN_VOLUME);
    }
    for key in ["initContainers", "containers"] {
        for c in pod["spec"][key].as_array_mut().into_iter().flatten() {
            let Some(c) = c.as_object_mut() else { continue };
            for (list, drop) in [
                ("env", &["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_STS_REGIONAL_ENDPOINTS"][..]),
                ("volumeMounts", &[TOKEN_VOLUME][..]),
            ] {
                if let Some(items) = c.get_mut(list).and_then(Value::as_array_mut) {
                    items.retain(|item| !drop.iter().any(|d| item["name"] == *d));
                    if items.is_empty() {
                        c.remove(list);
                    }
                }
            }
        }
    }
    pod
}

/// Comparable form of a stored or dry-run pod: without what the API server sets per object (uid,
/// resourceVersion, creationTimestamp, managedFields, selfLink, status) and with the random suffix of the
/// ServiceAccount admission's `kube-api-access-xxxxx` volume replaced by `kube-api-access-*`.
pub fn normalize(pod: &Value) -> Value {
    let mut pod = pod.clone();
    if let Some(meta) = pod["metadata"].as_object_mut() {
        for key in ["uid", "resourceVersion", "creationTimestamp", "managedFields", "selfLink", "generation"] {
            meta.remove(key);
        }
    }
    if let Some(object) = pod.as_object_mut() {
        object.remove("status");
    }
    let rename = |v: &mut Value| {
        if v["name"].as_str().is_some_and(|n| n.starts_with("kube-api-access-")) {
            v["name"] = json!("kube-api-access-*");
        }
    };
    for v in pod["spec"]["volumes"].as_array_mut().into_iter().flatten() {
        rename(v);
    }
    for key in ["initContainers", "containers"] {
        for c in pod["spec"][key].as_array_mut().into_iter().flatten() {
            for m in c["volumeMounts"].as_array_mut().into_iter().flatten() {
                rename(m);
            }
        }
    }
    pod
}

/// Asserts two pods are equal; on failure shows the JSON Patch from `expected` to `actual`.
pub fn assert_same_pod(actual: &Value, expected: &Value, what: &str) {
    if actual != expected {
        let diff = json_patch::diff(expected, actual);
        panic!(
            "{what}: the pods differ; JSON Patch from expected to actual:\n{:#}\nexpected:\n{expected:#}\nactual:\n{actual:#}",
            serde_json::to_value(&diff).unwrap_or_default()
        );
    }
}
