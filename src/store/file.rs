//! `--service-accounts FILE`: ServiceAccounts from a manifest file instead of the API, for running without a
//! cluster. Read once at start.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::{Lookup, ServiceAccountSource, SourceStats};
use crate::identity::{ServiceAccountConfig, ServiceAccountRef};
use crate::manifest::{self, ManifestError};
use crate::settings::MutationSettings;

#[derive(Debug, thiserror::Error)]
pub enum FileSourceError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path}: {error}")]
    Manifest { path: String, error: ManifestError },
}

pub struct FileSource {
    configs: HashMap<ServiceAccountRef, Arc<ServiceAccountConfig>>,
}

impl FileSource {
    pub fn load(path: &Path, settings: &MutationSettings) -> Result<Self, FileSourceError> {
        let shown = || path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| FileSourceError::Read { path: shown(), error })?;
        let manifests = manifest::parse_service_accounts(&text)
            .map_err(|error| FileSourceError::Manifest { path: shown(), error })?;
        Ok(Self::from_manifests(manifests, settings))
    }

    pub fn from_manifests(manifests: Vec<manifest::ServiceAccountManifest>, settings: &MutationSettings) -> Self {
        let configs = manifests
            .into_iter()
            .map(|m| {
                let annotations = m.annotations.iter().map(|(k, v)| (k.as_str(), v.as_str()));
                let config = ServiceAccountConfig::from_annotations(&m.reference, annotations, settings);
                (m.reference, Arc::new(config))
            })
            .collect();
        Self { configs }
    }
}

impl FileSource {
    fn answer(&self, sa: &ServiceAccountRef) -> Lookup {
        self.configs.get(sa).map_or(Lookup::NotFound, |c| Lookup::Found(Arc::clone(c)))
    }
}

impl ServiceAccountSource for FileSource {
    fn lookup<'a>(&'a self, sa: &'a ServiceAccountRef) -> BoxFuture<'a, Lookup> {
        Box::pin(std::future::ready(self.answer(sa)))
    }

    fn at_hand(&self, sa: &ServiceAccountRef) -> Option<Lookup> {
        Some(self.answer(sa))
    }

    fn is_ready(&self) -> bool {
        true
    }

    fn stats(&self) -> SourceStats {
        SourceStats { cached: self.configs.len() as u64, ..SourceStats::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_what_the_file_says() {
        let text = "kind: ServiceAccount\nmetadata:\n  name: a\n  annotations:\n    eks.amazonaws.com/role-arn: arn:aws:iam::111122223333:role/a\n";
        let manifests = manifest::parse_service_accounts(text).unwrap();
        let source = FileSource::from_manifests(manifests, &MutationSettings::default());
        let found = source.lookup(&ServiceAccountRef::new("default", "a")).await;
        assert!(matches!(found, Lookup::Found(c) if c.role_arn.is_some()));
        assert_eq!(source.lookup(&ServiceAccountRef::new("default", "b")).await, Lookup::NotFound);
        assert!(source.is_ready());
    }
}
