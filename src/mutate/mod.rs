//! THE RULES: pod + identity + settings → what to add (as data and as a JSON Patch) + warnings. Pure: no I/O, no
//! async, no clients.
//!
//! Every change is an `add` at a precise pointer into the pod, so fields this code does not know survive, and every
//! rule first checks whether its result is already there, so mutating a mutated pod yields no change.
//!
//! Bounded: a pod with more than [`MAX_CONTAINERS`] containers and init containers is not mutated (the decode stops
//! keeping them there), every lookup is linear or better, and warnings are capped in number and length.

mod containers;
mod env;
mod fs_group;
mod lenient;
mod patch;
mod pod;
mod volume;
mod warnings;

use std::borrow::Cow;

use serde_json::Value;

use crate::identity::{Credentials, Identity, POD_KEYS, POD_SKIP_CONTAINERS, POD_TOKEN_EXPIRATION};
use crate::settings::{
    clamp_token_expiration, InjectMode, MutationSettings, MAX_TOKEN_EXPIRATION, MIN_TOKEN_EXPIRATION,
    WEB_IDENTITY_TOKEN_FILE_NAME, WEB_IDENTITY_VOLUME_NAME,
};

pub use env::{EnvName, EnvNames};
pub use pod::{ContainerList, Pod};
pub use warnings::{shown, Warnings, MAX_WARNINGS};

use pod::PodView;

/// Label the reference puts on pods in container-credentials (EKS Pod Identity) mode.
pub const POD_IDENTITY_LABEL: &str = "eks.amazonaws.com/pod-identity";

/// Containers and init containers together, at most, for a pod to be mutated. Real pods have a handful; the bound
/// keeps the answer (a few operations per container) small whatever a client sends.
pub const MAX_CONTAINERS: usize = 256;

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
    #[error("the pod has {found} containers and init containers; the webhook mutates pods with at most {limit}")]
    TooManyContainers { found: usize, limit: usize },
    #[error("the pod is not valid JSON: {0}")]
    Decode(String),
}

/// One container of the pod, as a change names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerRef<'a> {
    pub list: ContainerList,
    pub index: usize,
    pub name: &'a str,
}

/// The value of an env var the webhook adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue<'a> {
    Literal(&'a str),
    /// `<mount path>/<file>`, or its `C:\…` form for Windows containers.
    TokenFile {
        mount_path: &'a str,
        file: &'a str,
        windows: bool,
    },
    /// `valueFrom.fieldRef.fieldPath`: the downward API.
    FieldRef(&'static str),
}

impl EnvValue<'_> {
    /// The value as a person reads it (`metadata.name` for a field reference).
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            EnvValue::Literal(value) => Cow::Borrowed(value),
            EnvValue::TokenFile { mount_path, file, windows } => {
                Cow::Owned(token_file_path(mount_path, file, *windows))
            }
            EnvValue::FieldRef(path) => Cow::Borrowed(path),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar<'a> {
    pub name: EnvName,
    pub value: EnvValue<'a>,
}

/// The projected service-account token volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenVolume<'a> {
    pub name: &'a str,
    pub audience: &'a str,
    pub expiration_seconds: i64,
    pub path: &'a str,
}

/// Where `pod_identity_label` goes: the pod may lack labels, or metadata altogether.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelAt {
    Metadata,
    Labels,
    Key,
}

/// What the webhook adds to a pod, as data: `doctor` reads these, the JSON Patch is written from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<'a> {
    /// `metadata.labels["eks.amazonaws.com/pod-identity"] = "enabled"` (container-credentials mode).
    PodIdentityLabel { at: LabelAt },
    /// The token volume; `create_list` when the pod has no `volumes` array yet.
    TokenVolume { volume: TokenVolume<'a>, create_list: bool },
    /// Env vars appended to one container, in this order.
    Env { container: ContainerRef<'a>, vars: Vec<EnvVar<'a>>, create_list: bool },
    /// The token mount (read-only) of one container.
    Mount { container: ContainerRef<'a>, volume: &'a str, mount_path: &'a str, create_list: bool },
    /// `spec.securityContext.fsGroup`, and `fsGroupChangePolicy: OnRootMismatch` when the pod has none.
    FsGroup { gid: i64, change_policy: bool, create_context: bool },
}

/// The result of the rules: what to add, and what the user should be told.
#[derive(Debug, Default)]
pub struct Mutation<'a> {
    pub changes: Vec<Change<'a>>,
    pub warnings: Vec<String>,
}

impl Mutation<'_> {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Appends the JSON Patch (RFC 6902) to `out`: the one place where the patch is written.
    pub fn write_patch(&self, out: &mut Vec<u8>) {
        patch::write(&self.changes, out);
    }

    /// The JSON Patch as a `json_patch::Patch`, for callers that apply it (the offline commands, tests).
    pub fn to_patch(&self) -> json_patch::Patch {
        let mut bytes = Vec::new();
        self.write_patch(&mut bytes);
        // What `write_patch` writes is a valid patch by construction; an empty one is the only fallback.
        serde_json::from_slice(&bytes).unwrap_or_default()
    }
}

/// Checks the pod's shape exactly as [`mutate`] does, without an identity: `Ok` when the webhook can read it.
pub fn validate(pod: &Pod<'_>) -> Result<(), MutateError> {
    PodView::new(pod).map(|_| ())
}

/// Computes what makes `pod` use `identity`. With no identity the pod is left alone (after its shape is checked).
pub fn mutate<'a>(
    pod: &'a Pod<'a>,
    identity: Option<&'a Identity<'a>>,
    settings: &'a MutationSettings,
) -> Result<Mutation<'a>, MutateError> {
    let view = PodView::new(pod)?;
    let Some(identity) = identity else {
        return Ok(Mutation::default());
    };
    let mut warnings = Warnings::default();
    let prefix = settings.annotation_prefix.as_str();
    warn_about_unknown_pod_annotations(&view, prefix, &mut warnings);

    let targets: Vec<_> = match skipped_containers(&view, prefix) {
        Some(skipped) => view.containers.iter().zip(&skipped).filter(|(_, skip)| !**skip).map(|(c, _)| c).collect(),
        None => view.containers.iter().collect(),
    };
    if targets.is_empty() {
        warnings.push(format!(
            "pod {}: every container is listed in {prefix}/{POD_SKIP_CONTAINERS}; no credentials injected",
            shown(view.name_for_messages())
        ));
        return Ok(Mutation { changes: Vec::new(), warnings: warnings.into_vec() });
    }

    let mut changes = Vec::new();
    if settings.inject == InjectMode::Full {
        let plan = TokenPlan::new(&view, identity, settings, &mut warnings);
        if identity.credentials == Credentials::ContainerCredentials && !view.has_pod_identity_label() {
            let at = match (view.has_metadata(), view.has_labels()) {
                // A pod without metadata at all (never from the API server, but valid input to `mutate`).
                (false, _) => LabelAt::Metadata,
                (true, false) => LabelAt::Labels,
                (true, true) => LabelAt::Key,
            };
            changes.push(Change::PodIdentityLabel { at });
        }
        volume::add_token_volume(&view, &plan, &mut changes, &mut warnings);
        for container in &targets {
            containers::add_env_and_mount(container, &plan, &mut changes, &mut warnings);
        }
    }
    fs_group::add_fs_group(&view, &targets, identity, settings, &mut changes, &mut warnings);
    Ok(Mutation { changes, warnings: warnings.into_vec() })
}

/// The rules' result on a parsed manifest, owned: for the offline commands and tests, which apply the patch.
#[derive(Debug, Default)]
pub struct ValueMutation {
    pub patch: json_patch::Patch,
    pub warnings: Vec<String>,
}

impl ValueMutation {
    pub fn is_empty(&self) -> bool {
        self.patch.0.is_empty()
    }
}

/// The same rules on a parsed manifest (see [`mutate`]).
pub fn mutate_value(
    pod: &Value,
    identity: Option<&Identity<'_>>,
    settings: &MutationSettings,
) -> Result<ValueMutation, MutateError> {
    let pod = Pod::from_value(pod)?;
    let mutation = mutate(&pod, identity, settings)?;
    Ok(ValueMutation { patch: mutation.to_patch(), warnings: mutation.warnings })
}

/// Everything about the token and the environment, decided once per pod.
pub(crate) struct TokenPlan<'a> {
    pub(crate) volume: TokenVolume<'a>,
    pub(crate) mount_path: &'a str,
    /// In the order they are appended; a group (e.g. the region pair) is added only if none of its names is set.
    pub(crate) env_groups: Vec<&'a [EnvName]>,
    token_file: EnvValue<'a>,
    role_arn: &'a str,
    settings: &'a MutationSettings,
}

impl<'a> TokenPlan<'a> {
    fn new(
        view: &PodView<'a>,
        identity: &'a Identity<'a>,
        settings: &'a MutationSettings,
        warnings: &mut Warnings,
    ) -> Self {
        let cc = &settings.container_credentials;
        let (volume_name, mount_path, token_file_name, audience) = match identity.credentials {
            Credentials::WebIdentity { .. } => (
                WEB_IDENTITY_VOLUME_NAME,
                settings.token_mount_path.as_str(),
                WEB_IDENTITY_TOKEN_FILE_NAME,
                identity.audience.unwrap_or(&settings.token_audience),
            ),
            Credentials::ContainerCredentials => (
                cc.token_volume_name.as_str(),
                cc.token_mount_path.as_str(),
                cc.token_path.as_str(),
                cc.audience.as_str(),
            ),
        };
        let mut env_groups: Vec<&'static [EnvName]> = Vec::with_capacity(5);
        if identity.regional_sts.unwrap_or(settings.sts_regional_endpoint) {
            env_groups.push(&[EnvName::StsRegionalEndpoints]);
        }
        if settings.aws_default_region.as_deref().is_some_and(|r| !r.is_empty()) {
            env_groups.push(&[EnvName::DefaultRegion, EnvName::Region]);
        }
        let role_arn = match identity.credentials {
            Credentials::WebIdentity { role_arn } => {
                env_groups.push(&[EnvName::RoleArn]);
                env_groups.push(&[EnvName::WebIdentityTokenFile]);
                if settings.inject_role_session_name {
                    env_groups.push(&[EnvName::RoleSessionName]);
                }
                role_arn
            }
            Credentials::ContainerCredentials => {
                env_groups.push(&[EnvName::ContainerCredentialsFullUri]);
                env_groups.push(&[EnvName::ContainerAuthorizationTokenFile]);
                ""
            }
        };
        Self {
            volume: TokenVolume {
                name: volume_name,
                audience,
                expiration_seconds: token_expiration(view, identity, settings, warnings),
                path: token_file_name,
            },
            mount_path,
            env_groups,
            token_file: EnvValue::TokenFile { mount_path, file: token_file_name, windows: view.is_windows() },
            role_arn,
            settings,
        }
    }

    /// The value the plan gives `name`.
    pub(crate) fn value(&self, name: EnvName) -> EnvValue<'a> {
        let region = || self.settings.aws_default_region.as_deref().unwrap_or_default();
        match name {
            EnvName::StsRegionalEndpoints => EnvValue::Literal("regional"),
            EnvName::DefaultRegion | EnvName::Region => EnvValue::Literal(region()),
            EnvName::RoleArn => EnvValue::Literal(self.role_arn),
            EnvName::WebIdentityTokenFile | EnvName::ContainerAuthorizationTokenFile => self.token_file.clone(),
            EnvName::RoleSessionName => EnvValue::FieldRef("metadata.name"),
            EnvName::ContainerCredentialsFullUri => {
                EnvValue::Literal(self.settings.container_credentials.full_uri.as_str())
            }
        }
    }
}

/// Windows containers see the mount under `C:`; the mount path in the spec stays as it is.
pub fn token_file_path(mount_path: &str, file: &str, windows: bool) -> String {
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
    identity: &Identity<'_>,
    settings: &MutationSettings,
    warnings: &mut Warnings,
) -> i64 {
    let prefix = &settings.annotation_prefix;
    let from_pod =
        view.annotation_under(prefix, POD_TOKEN_EXPIRATION).and_then(|value| match value.trim().parse::<i64>() {
            Ok(seconds) => Some(seconds),
            Err(_) => {
                warnings.push(format!(
                    "pod annotation {prefix}/{POD_TOKEN_EXPIRATION} {:?} is not a number of seconds; ignored",
                    shown(value)
                ));
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

/// Which containers (in `view.containers` order) the pod's skip list names; `None` without a list (most pods: no
/// allocation). Linear in the list's length: the containers are sorted once and each listed name is found by
/// binary search.
fn skipped_containers(view: &PodView<'_>, prefix: &str) -> Option<Vec<bool>> {
    let list = view.annotation_under(prefix, POD_SKIP_CONTAINERS)?;
    let mut skipped = vec![false; view.containers.len()];
    let mut by_name: Vec<(&str, usize)> = view.containers.iter().enumerate().map(|(i, c)| (c.name, i)).collect();
    by_name.sort_unstable();
    for name in skip_list(list) {
        let first = by_name.partition_point(|(n, _)| *n < name);
        for (_, index) in by_name[first..].iter().take_while(|(n, _)| *n == name) {
            skipped[*index] = true;
        }
    }
    Some(skipped)
}

/// The pod's skip list as names (trimmed, no empties): what `doctor` compares with the containers.
pub fn skip_list(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|n| !n.is_empty())
}

fn warn_about_unknown_pod_annotations(view: &PodView<'_>, prefix: &str, warnings: &mut Warnings) {
    for (key, _) in view.annotations {
        let Some(name) = key.strip_prefix(prefix).and_then(|rest| rest.strip_prefix('/')) else {
            continue;
        };
        if POD_KEYS.contains(&name) {
            continue;
        }
        if let Some(known) = crate::identity::near_miss(name, POD_KEYS) {
            warnings.push(format!("pod annotation {} is not known; did you mean {prefix}/{known}?", shown(key)));
        } else if crate::identity::near_miss(name, crate::identity::SA_KEYS).is_some() {
            warnings.push(format!("pod annotation {} is read from the ServiceAccount, not from the pod", shown(key)));
        }
    }
}

#[cfg(test)]
mod tests;
