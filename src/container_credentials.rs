//! The container-credentials (EKS Pod Identity) config file: which ServiceAccounts use the Pod Identity agent.
//! Format (the reference's): `{"identities":[{"namespace":"…","serviceAccount":"…"}]}`.

use std::collections::HashSet;

use serde::Deserialize;

use crate::identity::ServiceAccountRef;

#[derive(Debug, thiserror::Error)]
#[error("container-credentials config is not valid: {0}")]
pub struct ContainerCredentialsError(String);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerCredentialsConfig {
    identities: HashSet<ServiceAccountRef>,
}

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    identities: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    namespace: String,
    service_account: String,
}

impl ContainerCredentialsConfig {
    pub fn parse(text: &str) -> Result<Self, ContainerCredentialsError> {
        let file: File = serde_json::from_str(text).map_err(|e| ContainerCredentialsError(e.to_string()))?;
        let identities =
            file.identities.into_iter().map(|e| ServiceAccountRef::new(e.namespace, e.service_account)).collect();
        Ok(Self { identities })
    }

    pub fn contains(&self, sa: &ServiceAccountRef) -> bool {
        self.identities.contains(sa)
    }

    pub fn len(&self) -> usize {
        self.identities.len()
    }

    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_reference_format() {
        let c =
            ContainerCredentialsConfig::parse(r#"{"identities":[{"namespace":"n","serviceAccount":"s"}]}"#).unwrap();
        assert!(c.contains(&ServiceAccountRef::new("n", "s")));
        assert!(!c.contains(&ServiceAccountRef::new("n", "t")));
        assert!(ContainerCredentialsConfig::parse("{").is_err());
        assert!(ContainerCredentialsConfig::parse("{}").unwrap().is_empty());
    }
}
