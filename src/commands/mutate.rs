//! `irsa-webhook mutate`: the webhook's path without the network. File → identity → mutate → stdout.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use serde_json::Value;

use crate::cli::{MutateArgs, MutateOutput};
use crate::container_credentials::ContainerCredentialsConfig;
use crate::identity::{self, ServiceAccountConfig, ServiceAccountRef};
use crate::manifest::{self, ServiceAccountManifest};
use crate::mutate::{mutate, MutateError, Mutation};
use crate::settings::MutationSettings;

#[derive(Debug, thiserror::Error)]
pub enum MutateCommandError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path}: {error}")]
    Manifest { path: String, error: manifest::ManifestError },
    #[error("{0}")]
    Settings(#[from] crate::cli::SettingsError),
    #[error("{path}: {error}")]
    ContainerCredentials { path: String, error: crate::container_credentials::ContainerCredentialsError },
    #[error("{path}: not a valid Pod: {error}")]
    InvalidPod { path: String, error: crate::mutate::MutateError },
    #[error("cannot write the output: {0}")]
    Output(String),
}

/// What the command produces: the text for stdout and the warnings for stderr.
pub struct MutateCommandOutput {
    pub stdout: String,
    pub warnings: Vec<String>,
}

pub fn run(args: &MutateArgs, stdin: impl Read) -> Result<MutateCommandOutput, MutateCommandError> {
    let settings = args.mutation.to_settings()?;
    let (pod_name, pod_text) = read_input(args.pod.as_deref(), stdin)?;
    let pod = manifest::parse_pod(&pod_text)
        .map_err(|error| MutateCommandError::Manifest { path: pod_name.clone(), error })?;

    let mut service_accounts: HashMap<ServiceAccountRef, ServiceAccountManifest> = HashMap::new();
    for path in &args.service_accounts {
        let text = read_file(path)?;
        let parsed = manifest::parse_service_accounts(&text)
            .map_err(|error| MutateCommandError::Manifest { path: path.display().to_string(), error })?;
        service_accounts.extend(parsed.into_iter().map(|sa| (sa.reference.clone(), sa)));
    }
    let container_credentials = match &args.mutation.watch_container_credentials_config {
        Some(path) => ContainerCredentialsConfig::parse(&read_file(path)?)
            .map_err(|error| MutateCommandError::ContainerCredentials { path: path.display().to_string(), error })?,
        None => ContainerCredentialsConfig::default(),
    };

    let mutation = mutate_with_service_accounts(&pod, &service_accounts, &container_credentials, &settings)
        .map_err(|error| MutateCommandError::InvalidPod { path: pod_name, error })?;
    let warnings = mutation.warnings.clone();

    let stdout = match args.output {
        MutateOutput::Patch => pretty_json(&serde_json::to_value(&mutation.patch).map_err(output_error)?)?,
        MutateOutput::Json | MutateOutput::Yaml => {
            let mut mutated = pod;
            json_patch::patch(&mut mutated, &mutation.patch).map_err(output_error)?;
            if args.output == MutateOutput::Json {
                pretty_json(&mutated)?
            } else {
                serde_yaml_ng::to_string(&mutated).map_err(output_error)?
            }
        }
    };
    Ok(MutateCommandOutput { stdout, warnings })
}

/// The offline lookup: the pod's ServiceAccount from a map instead of the API. Pure; the fixture suite uses it too.
/// The returned warnings include the ServiceAccount's own (invalid ARN, annotation typos).
pub fn mutate_with_service_accounts(
    pod: &Value,
    service_accounts: &HashMap<ServiceAccountRef, ServiceAccountManifest>,
    container_credentials: &ContainerCredentialsConfig,
    settings: &MutationSettings,
) -> Result<Mutation, MutateError> {
    let sa = manifest::pod_service_account(pod, None);
    let config = service_accounts.get(&sa).map(|m| {
        ServiceAccountConfig::from_annotations(
            &sa,
            m.annotations.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            settings,
        )
    });
    let in_container_credentials = container_credentials.contains(&sa);
    let mut warnings = Vec::new();
    if config.is_none() && !in_container_credentials {
        warnings
            .push(format!("ServiceAccount {sa} not found in the --service-account files; the pod is left unchanged"));
    }
    warnings.extend(config.iter().flat_map(|c| c.warnings.iter().cloned()));
    let identity = identity::resolve(&sa, config.as_ref(), in_container_credentials);
    let mut mutation = mutate(pod, identity.as_ref(), settings)?;
    warnings.append(&mut mutation.warnings);
    mutation.warnings = warnings;
    Ok(mutation)
}

fn pretty_json(value: &Value) -> Result<String, MutateCommandError> {
    let mut text = serde_json::to_string_pretty(value).map_err(output_error)?;
    text.push('\n');
    Ok(text)
}

fn output_error(e: impl std::fmt::Display) -> MutateCommandError {
    MutateCommandError::Output(e.to_string())
}

fn read_input(path: Option<&Path>, mut stdin: impl Read) -> Result<(String, String), MutateCommandError> {
    match path {
        Some(path) if path != Path::new("-") => Ok((path.display().to_string(), read_file(path)?)),
        _ => {
            let mut text = String::new();
            stdin
                .read_to_string(&mut text)
                .map_err(|error| MutateCommandError::Read { path: "<stdin>".into(), error })?;
            Ok(("<stdin>".into(), text))
        }
    }
}

pub(crate) fn read_file(path: &Path) -> Result<String, MutateCommandError> {
    std::fs::read_to_string(path).map_err(|error| MutateCommandError::Read { path: path.display().to_string(), error })
}
