//! THE RULES: pod + identity + settings → JSON Patch + warnings. Pure: no I/O, no async, no clients.
//!
//! Every operation is an `add` at a precise pointer into the raw pod, so fields this code does not know survive,
//! and every rule first checks whether its result is already there, so mutating a mutated pod yields no operation.

mod containers;
mod fs_group;
mod patch;
mod pod;
mod volume;

use json_patch::Patch;
use serde_json::{json, Value};

use crate::identity::{Credentials, Identity, POD_KEYS, POD_SKIP_CONTAINERS, POD_TOKEN_EXPIRATION};
use crate::settings::{
    clamp_token_expiration, MutationSettings, MAX_TOKEN_EXPIRATION, MIN_TOKEN_EXPIRATION, WEB_IDENTITY_TOKEN_FILE_NAME,
    WEB_IDENTITY_VOLUME_NAME,
};

use patch::{PatchBuilder, Step};
use pod::PodView;

/// Label the reference puts on pods in container-credentials (EKS Pod Identity) mode.
pub const POD_IDENTITY_LABEL: &str = "eks.amazonaws.com/pod-identity";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MutateError {
    #[error("the pod is not a JSON object")]
    NotAnObject,
    #[error("the object is a {0}, not a Pod")]
    NotAPod(String),
    #[error("the pod has no spec")]
    MissingSpec,
    #[error("the pod has no spec.containers")]
    NoContainers,
    #[error("{path} must be {expected}")]
    Shape { path: String, expected: &'static str },
}

/// The result of the rules: the operations to apply, and what the user should be told.
#[derive(Debug, Default)]
pub struct Mutation {
    pub patch: Patch,
    pub warnings: Vec<String>,
}

impl Mutation {
    pub fn is_empty(&self) -> bool {
        self.patch.0.is_empty()
    }
}

/// Computes the patch that makes `pod` use `identity`. With no identity the pod is left alone.
pub fn mutate(pod: &Value, identity: Option<&Identity>, settings: &MutationSettings) -> Result<Mutation, MutateError> {
    let view = PodView::parse(pod)?;
    let Some(identity) = identity else {
        return Ok(Mutation::default());
    };
    let mut warnings = Vec::new();
    let prefix = settings.annotation_prefix.as_str();
    warn_about_unknown_pod_annotations(&view, prefix, &mut warnings);

    let skipped = skipped_containers(&view, prefix);
    let targets: Vec<_> = view.containers.iter().filter(|c| !skipped.contains(&c.name)).collect();
    if targets.is_empty() {
        warnings.push(format!(
            "pod {}: every container is listed in {prefix}/{POD_SKIP_CONTAINERS}; no credentials injected",
            view.name_for_messages()
        ));
        return Ok(Mutation { patch: Patch::default(), warnings });
    }

    let plan = TokenPlan::new(&view, identity, settings, &mut warnings);
    let mut patch = PatchBuilder::default();
    if identity.credentials == Credentials::ContainerCredentials {
        add_pod_identity_label(&view, &mut patch);
    }
    volume::add_token_volume(&view, &plan, &mut patch, &mut warnings);
    for container in &targets {
        containers::add_env_and_mount(container, &plan, &mut patch, &mut warnings);
    }
    fs_group::add_fs_group(&view, &targets, identity, settings, &mut patch, &mut warnings);
    Ok(Mutation { patch: patch.finish(), warnings })
}

/// Everything about the token and the environment, decided once per pod.
pub(crate) struct TokenPlan<'a> {
    pub(crate) volume_name: &'a str,
    pub(crate) mount_path: &'a str,
    pub(crate) token_file_name: &'a str,
    pub(crate) audience: &'a str,
    pub(crate) expiration_seconds: i64,
    /// In the order they are appended, as (name, env var); a group is added only if none of its names is set.
    pub(crate) env_groups: Vec<Vec<(&'static str, Value)>>,
}

impl<'a> TokenPlan<'a> {
    fn new(
        view: &PodView<'_>,
        identity: &'a Identity,
        settings: &'a MutationSettings,
        warnings: &mut Vec<String>,
    ) -> Self {
        let cc = &settings.container_credentials;
        let (volume_name, mount_path, token_file_name, audience) = match identity.credentials {
            Credentials::WebIdentity { .. } => (
                WEB_IDENTITY_VOLUME_NAME,
                settings.token_mount_path.as_str(),
                WEB_IDENTITY_TOKEN_FILE_NAME,
                identity.audience.as_deref().unwrap_or(&settings.token_audience),
            ),
            Credentials::ContainerCredentials => (
                cc.token_volume_name.as_str(),
                cc.token_mount_path.as_str(),
                cc.token_path.as_str(),
                cc.audience.as_str(),
            ),
        };
        let token_file = token_file_path(mount_path, token_file_name, view.is_windows());

        let mut env_groups = Vec::new();
        if identity.regional_sts.unwrap_or(settings.sts_regional_endpoint) {
            env_groups.push(vec![env("AWS_STS_REGIONAL_ENDPOINTS", "regional")]);
        }
        if let Some(region) = settings.aws_default_region.as_deref().filter(|r| !r.is_empty()) {
            env_groups.push(vec![env("AWS_DEFAULT_REGION", region), env("AWS_REGION", region)]);
        }
        match &identity.credentials {
            Credentials::WebIdentity { role_arn } => {
                env_groups.push(vec![env("AWS_ROLE_ARN", role_arn)]);
                env_groups.push(vec![env("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file)]);
                if settings.inject_role_session_name {
                    env_groups.push(vec![(
                        "AWS_ROLE_SESSION_NAME",
                        json!({
                            "name": "AWS_ROLE_SESSION_NAME",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                        }),
                    )]);
                }
            }
            Credentials::ContainerCredentials => {
                env_groups.push(vec![env("AWS_CONTAINER_CREDENTIALS_FULL_URI", &cc.full_uri)]);
                env_groups.push(vec![env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token_file)]);
            }
        }

        Self {
            volume_name,
            mount_path,
            token_file_name,
            audience,
            expiration_seconds: token_expiration(view, identity, settings, warnings),
            env_groups,
        }
    }
}

fn env(name: &'static str, value: &str) -> (&'static str, Value) {
    (name, json!({"name": name, "value": value}))
}

/// Windows containers see the mount under `C:`; the mount path in the spec stays as it is.
fn token_file_path(mount_path: &str, file: &str, windows: bool) -> String {
    let joined = format!("{}/{}", mount_path.trim_end_matches('/'), file);
    if windows {
        format!("C:{}", joined.replace('/', "\\"))
    } else {
        joined
    }
}

/// Pod annotation, else the identity's, else the setting; raised to what Kubernetes accepts.
fn token_expiration(
    view: &PodView<'_>,
    identity: &Identity,
    settings: &MutationSettings,
    warnings: &mut Vec<String>,
) -> i64 {
    let key = format!("{}/{POD_TOKEN_EXPIRATION}", settings.annotation_prefix);
    let from_pod = view.annotation(&key).and_then(|value| match value.trim().parse::<i64>() {
        Ok(seconds) => Some(seconds),
        Err(_) => {
            warnings.push(format!("pod annotation {key} {value:?} is not a number of seconds; ignored"));
            None
        }
    });
    let requested = from_pod.or(identity.token_expiration).unwrap_or(settings.token_expiration);
    let clamped = clamp_token_expiration(requested);
    if clamped != requested {
        warnings.push(format!(
            "token expiration {requested} s is outside [{MIN_TOKEN_EXPIRATION}, {MAX_TOKEN_EXPIRATION}]; {clamped} s used"
        ));
    }
    clamped
}

fn skipped_containers<'a>(view: &PodView<'a>, prefix: &str) -> Vec<&'a str> {
    let key = format!("{prefix}/{POD_SKIP_CONTAINERS}");
    view.annotation(&key)
        .map(|list| list.split(',').map(str::trim).filter(|n| !n.is_empty()).collect())
        .unwrap_or_default()
}

fn add_pod_identity_label(view: &PodView<'_>, patch: &mut PatchBuilder) {
    match view.labels() {
        // A pod without metadata at all (never from the API server, but valid input to `mutate`).
        None if !view.has_metadata() => {
            patch.add(&[Step::Key("metadata")], json!({"labels": {POD_IDENTITY_LABEL: "enabled"}}))
        }
        None => patch.add(&[Step::Key("metadata"), Step::Key("labels")], json!({POD_IDENTITY_LABEL: "enabled"})),
        Some(labels) if !labels.contains_key(POD_IDENTITY_LABEL) => {
            patch.add(&[Step::Key("metadata"), Step::Key("labels"), Step::Key(POD_IDENTITY_LABEL)], json!("enabled"))
        }
        Some(_) => {}
    }
}

fn warn_about_unknown_pod_annotations(view: &PodView<'_>, prefix: &str, warnings: &mut Vec<String>) {
    for (key, _) in view.annotations() {
        let Some(name) = key.strip_prefix(prefix).and_then(|rest| rest.strip_prefix('/')) else {
            continue;
        };
        if POD_KEYS.contains(&name) {
            continue;
        }
        if let Some(known) = crate::identity::near_miss(name, POD_KEYS) {
            warnings.push(format!("pod annotation {key} is not known; did you mean {prefix}/{known}?"));
        } else if crate::identity::near_miss(name, crate::identity::SA_KEYS).is_some() {
            warnings.push(format!("pod annotation {key} is read from the ServiceAccount, not from the pod"));
        }
    }
}

#[cfg(test)]
mod tests;
