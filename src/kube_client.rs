//! One way to reach the cluster, for every command that does (`serve`, `doctor`, `oidc`): a kube client from an
//! explicit kubeconfig, else inferred (`$KUBECONFIG` or `~/.kube/config`, then the in-cluster config), and the one
//! time limit the one-shot commands give the cluster.

use std::path::Path;
use std::time::Duration;

use kube::config::{InferConfigError, KubeConfigOptions, Kubeconfig, KubeconfigError};

/// How long `doctor` and `oidc --from-cluster` wait for the API server: long enough for a slow one, short enough
/// that a wrong kubeconfig does not look like a hang.
pub const CLUSTER_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum KubeClientError {
    #[error("kubeconfig {path}: {error}")]
    Kubeconfig { path: String, error: KubeconfigError },
    #[error("no kubeconfig ($KUBECONFIG, ~/.kube/config) and no in-cluster config: {0}")]
    Infer(InferConfigError),
    #[error("cannot build a Kubernetes client: {0}")]
    Client(kube::Error),
}

/// A client from `kubeconfig` when given, else from `$KUBECONFIG` or `~/.kube/config`, else the in-cluster config
/// (kube's inference order).
pub async fn client(kubeconfig: Option<&Path>) -> Result<kube::Client, KubeClientError> {
    kube::Client::try_from(config(kubeconfig).await?).map_err(KubeClientError::Client)
}

/// The configuration [`client`] builds a client from, for a caller that adjusts it first (`serve --kube-api`).
pub async fn config(kubeconfig: Option<&Path>) -> Result<kube::Config, KubeClientError> {
    Ok(match kubeconfig {
        Some(path) => {
            let shown = || path.display().to_string();
            let file =
                Kubeconfig::read_from(path).map_err(|error| KubeClientError::Kubeconfig { path: shown(), error })?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(|error| KubeClientError::Kubeconfig { path: shown(), error })?
        }
        None => kube::Config::infer().await.map_err(KubeClientError::Infer)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_or_broken_kubeconfig_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let error = client(Some(&missing)).await.err().unwrap();
        assert!(error.to_string().starts_with(&format!("kubeconfig {}: ", missing.display())), "{error}");

        let broken = dir.path().join("broken");
        std::fs::write(&broken, "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n").unwrap();
        let error = client(Some(&broken)).await.err().unwrap();
        assert!(matches!(error, KubeClientError::Kubeconfig { .. }), "{error}");
    }

    #[tokio::test]
    async fn a_usable_kubeconfig_gives_a_client_without_contacting_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
             clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1'}}]\n\
             contexts: [{name: c, context: {cluster: k, user: u}}]\nusers: [{name: u, user: {token: t}}]\n",
        )
        .unwrap();
        assert!(client(Some(&path)).await.is_ok());
    }
}
