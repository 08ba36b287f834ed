//! `irsa-webhook mutate`: the webhook's path without the network. File → identity → mutate → stdout.

use std::collections::HashMap;
use std::io::Read;

use serde_json::Value;

use crate::cli::{MutateArgs, MutateOutput};
use crate::container_credentials::ContainerCredentialsConfig;
use crate::identity::{self, ServiceAccountConfig, ServiceAccountRef};
use crate::manifest::{self, ServiceAccountManifest};
use crate::mutate::{mutate_value, MutateError, ValueMutation};
use crate::settings::MutationSettings;

use super::inputs::{self, InputError};
use super::Output;

#[derive(Debug, thiserror::Error)]
pub enum MutateCommandError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
    #[error("{path}: not a valid Pod: {error}")]
    InvalidPod { path: String, error: crate::mutate::MutateError },
    #[error("cannot write the output")]
    Output(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub fn run(args: &MutateArgs, stdin: impl Read) -> Result<Output, MutateCommandError> {
    let settings = MutationSettings::try_from(&args.mutation)?;
    let (pod_name, pod) = inputs::read_pod(args.pod.as_deref(), stdin)?;
    let service_accounts = inputs::read_service_accounts(&args.service_accounts)?;
    let container_credentials =
        inputs::read_container_credentials(args.mutation.watch_container_credentials_config.as_deref())?;

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
    Ok(Output { stdout, warnings })
}

/// The offline lookup: the pod's ServiceAccount from a map instead of the API. Pure; the fixture suite uses it too.
/// The returned warnings include the ServiceAccount's own (invalid ARN, annotation typos).
pub fn mutate_with_service_accounts(
    pod: &Value,
    service_accounts: &HashMap<ServiceAccountRef, ServiceAccountManifest>,
    container_credentials: &ContainerCredentialsConfig,
    settings: &MutationSettings,
) -> Result<ValueMutation, MutateError> {
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
    let mut mutation = match mutate_value(pod, identity.as_ref(), settings) {
        // The webhook admits such a pod unchanged with a warning; so does the offline command.
        Err(error @ MutateError::TooManyContainers { .. }) => {
            ValueMutation { warnings: vec![format!("{error}; the pod is left unchanged")], ..ValueMutation::default() }
        }
        other => other?,
    };
    warnings.append(&mut mutation.warnings);
    mutation.warnings = warnings;
    Ok(mutation)
}

fn pretty_json(value: &Value) -> Result<String, MutateCommandError> {
    let mut text = serde_json::to_string_pretty(value).map_err(output_error)?;
    text.push('\n');
    Ok(text)
}

fn output_error(e: impl std::error::Error + Send + Sync + 'static) -> MutateCommandError {
    MutateCommandError::Output(Box::new(e))
}
