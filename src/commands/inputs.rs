//! Reading the offline commands' inputs: the pod (a file, or stdin for `-` or none), ServiceAccount manifests and
//! the container-credentials config. Shared by `mutate` and `doctor -f`, so both read files the same way.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::container_credentials::{ContainerCredentialsConfig, ContainerCredentialsError};
use crate::identity::ServiceAccountRef;
use crate::manifest::{self, ManifestError, ServiceAccountManifest};

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path}: {error}")]
    Manifest { path: String, error: ManifestError },
    #[error("{path}: {error}")]
    ContainerCredentials { path: String, error: ContainerCredentialsError },
}

/// The pod and the name to report it by (`<stdin>` or the path).
pub fn read_pod(path: Option<&Path>, mut stdin: impl Read) -> Result<(String, Value), InputError> {
    let (name, text) = match path {
        Some(path) if path != Path::new("-") => (path.display().to_string(), read_file(path)?),
        _ => {
            let mut text = String::new();
            stdin.read_to_string(&mut text).map_err(|error| InputError::Read { path: "<stdin>".into(), error })?;
            ("<stdin>".to_owned(), text)
        }
    };
    let pod = manifest::parse_pod(&text).map_err(|error| InputError::Manifest { path: name.clone(), error })?;
    Ok((name, pod))
}

/// Every ServiceAccount in `paths`, by reference; a later file wins.
pub fn read_service_accounts(
    paths: &[PathBuf],
) -> Result<HashMap<ServiceAccountRef, ServiceAccountManifest>, InputError> {
    let mut service_accounts = HashMap::new();
    for path in paths {
        let parsed = manifest::parse_service_accounts(&read_file(path)?)
            .map_err(|error| InputError::Manifest { path: path.display().to_string(), error })?;
        service_accounts.extend(parsed.into_iter().map(|sa| (sa.reference.clone(), sa)));
    }
    Ok(service_accounts)
}

/// `--watch-container-credentials-config`, read once; empty when not given.
pub fn read_container_credentials(path: Option<&Path>) -> Result<ContainerCredentialsConfig, InputError> {
    match path {
        Some(path) => ContainerCredentialsConfig::parse(&read_file(path)?)
            .map_err(|error| InputError::ContainerCredentials { path: path.display().to_string(), error }),
        None => Ok(ContainerCredentialsConfig::default()),
    }
}

fn read_file(path: &Path) -> Result<String, InputError> {
    std::fs::read_to_string(path).map_err(|error| InputError::Read { path: path.display().to_string(), error })
}
