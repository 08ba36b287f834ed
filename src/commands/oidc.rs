//! `irsa-webhook oidc`: read key files (or ask the API server), hand them to `crate::oidc`, print or write the
//! documents. The rules live in `crate::oidc`; this is file and network I/O plus the instructions text.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::Output;
use crate::cli::{OidcArgs, OidcCommand, OidcPublishArgs};
use crate::kube_client::{self, KubeClientError, CLUSTER_TIMEOUT};
use crate::oidc::{self, Issuer, OidcError, PublicKey, DISCOVERY_PATH, JWKS_PATH};
use crate::settings::DEFAULT_TOKEN_AUDIENCE;
use crate::shell;

#[derive(Debug, thiserror::Error)]
pub enum OidcCommandError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path}: {error}")]
    Key { path: String, error: OidcError },
    #[error(transparent)]
    Oidc(#[from] OidcError),
    #[error("cannot write {path}: {error}")]
    Write { path: String, error: std::io::Error },
    #[error("cannot serialize")]
    Serialize(#[source] serde_json::Error),
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("cannot read the OIDC documents from the API server")]
    Cluster(#[source] ClusterError),
}

/// Why `oidc publish --from-cluster` could not read the API server's documents; each on one line.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{}", one_line(.0))]
    Client(KubeClientError),
    #[error("GET {path}: {}", one_line(.error))]
    Request { path: &'static str, error: http::Error },
    #[error("GET {path}: {}", one_line(.error))]
    Get { path: &'static str, error: kube::Error },
    #[error("GET {path}: the answer is not JSON: {}", one_line(.error))]
    NotJson { path: &'static str, error: serde_json::Error },
    #[error("no answer within {}s", CLUSTER_TIMEOUT.as_secs())]
    Timeout,
}

fn one_line(error: &impl std::fmt::Display) -> String {
    error.to_string().replace('\n', " ")
}

pub fn run(args: &OidcArgs) -> Result<Output, OidcCommandError> {
    match &args.command {
        OidcCommand::Jwks(jwks) => {
            let keys = read_keys(&jwks.keys)?;
            Ok(Output { stdout: pretty(&oidc::jwks(&keys.all()))?, warnings: Vec::new() })
        }
        OidcCommand::Discovery(discovery) => {
            let issuer = Issuer::parse(&discovery.issuer)?;
            let keys = read_keys(&discovery.keys)?.all();
            let document =
                oidc::discovery(&issuer, discovery.jwks_uri.as_deref(), keys.iter().map(PublicKey::algorithm))?;
            Ok(Output { stdout: pretty(&document)?, warnings: issuer.warnings() })
        }
        OidcCommand::Publish(publish) => run_publish(publish),
    }
}

/// Keys per file, in argument order; the files are named again in the API-server flags.
struct KeyFiles(Vec<(PathBuf, Vec<PublicKey>, bool)>);

impl KeyFiles {
    fn all(&self) -> Vec<PublicKey> {
        self.0.iter().flat_map(|(_, keys, _)| keys.iter().cloned()).collect()
    }
}

fn read_keys(paths: &[PathBuf]) -> Result<KeyFiles, OidcCommandError> {
    let mut files = Vec::new();
    for path in paths {
        let text = std::fs::read(path).map_err(|error| OidcCommandError::Read { path: shown(path), error })?;
        let keys = oidc::parse_pem_keys(&text).map_err(|error| OidcCommandError::Key { path: shown(path), error })?;
        // A file with a private key can serve as --service-account-signing-key-file.
        let private = String::from_utf8_lossy(&text).contains("PRIVATE KEY-----");
        files.push((path.clone(), keys, private));
    }
    Ok(KeyFiles(files))
}

fn run_publish(args: &OidcPublishArgs) -> Result<Output, OidcCommandError> {
    let issuer = Issuer::parse(&args.issuer)?;
    let mut warnings = issuer.warnings();
    let (discovery, jwks, key_files) = if args.from_cluster {
        let (cluster_discovery, cluster_jwks) = fetch_cluster_documents(args.kubeconfig.as_deref())?;
        let (discovery, jwks, rehome_warnings) =
            oidc::rehome_cluster_documents(&cluster_discovery, &cluster_jwks, &issuer)?;
        warnings.extend(rehome_warnings);
        (discovery, jwks, None)
    } else {
        let files = read_keys(&args.keys)?;
        let keys = files.all();
        let discovery = oidc::discovery(&issuer, None, keys.iter().map(PublicKey::algorithm))?;
        (to_value(&discovery)?, to_value(&oidc::jwks(&keys))?, Some(files))
    };

    let discovery_file = args.out.join(DISCOVERY_PATH);
    let jwks_file = args.out.join(JWKS_PATH);
    write(&discovery_file, &pretty(&discovery)?)?;
    write(&jwks_file, &pretty(&jwks)?)?;

    let kids: Vec<String> = jwks
        .get("keys")
        .and_then(Value::as_array)
        .map(|keys| {
            keys.iter()
                .map(|k| {
                    let field = |name| k.get(name).and_then(Value::as_str).unwrap_or("?");
                    format!("{} kid={}", field("alg"), field("kid"))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = format!("wrote {}\nwrote {} ({})\n", shown(&discovery_file), shown(&jwks_file), kids.join(", "));
    out.push_str(&instructions(&issuer, &args.out, key_files.as_ref()));
    Ok(Output { stdout: out, warnings })
}

/// The three steps after publishing: upload, API-server flags, IAM provider.
fn instructions(issuer: &Issuer, out_dir: &Path, key_files: Option<&KeyFiles>) -> String {
    let destination = match issuer.s3_location() {
        Some((bucket, prefix)) if prefix.is_empty() => format!("s3://{bucket}/"),
        Some((bucket, prefix)) => format!("s3://{bucket}/{prefix}/"),
        None if issuer.path().is_empty() => "s3://<BUCKET>/".to_owned(),
        None => format!("s3://<BUCKET>/{}/", issuer.path()),
    };
    let mut text = String::new();
    let mut line = |l: &str| {
        text.push_str(l);
        text.push('\n');
    };
    line("");
    line("# 1. Upload. STS fetches both documents anonymously, so they must be publicly readable at:");
    line(&format!("#      {}", issuer.discovery_url()));
    line(&format!("#      {}", issuer.default_jwks_uri()));
    line(&format!(
        "aws s3 cp --recursive {} {destination} --content-type application/json",
        shell::word(&shown(out_dir))
    ));
    if issuer.s3_location().is_none() {
        line("#    (or copy the directory to the web root behind the issuer URL; serve both as application/json)");
    }
    line("#    Grant public s3:GetObject on those two keys with a bucket policy (or add --acl public-read if the");
    line("#    bucket has ACLs enabled).");
    line("");
    line("# 2. kube-apiserver flags (then restart it):");
    line(&format!("--service-account-issuer={issuer}"));
    line(&format!("--service-account-jwks-uri={}", issuer.default_jwks_uri()));
    match key_files {
        Some(files) => {
            for (path, _, _) in &files.0 {
                line(&format!("--service-account-key-file={}", shell::word(&shown(path))));
            }
            let signing = files.0.iter().find(|(_, _, private)| *private).map(|(path, _, _)| shown(path));
            line(&format!(
                "--service-account-signing-key-file={}",
                signing
                    .map_or_else(|| "<PRIVATE KEY FILE whose public key is published>".to_owned(), |p| shell::word(&p))
            ));
        }
        None => line(
            "# --service-account-key-file / --service-account-signing-key-file: unchanged (keys published as served)",
        ),
    }
    line("# --api-audiences: keep what the API server accepts today (without the flag: its first issuer). Do NOT add");
    line(&format!(
        "#   {DEFAULT_TOKEN_AUDIENCE}: the webhook's tokens ask for that audience themselves, and adding it"
    ));
    line("#   would let a token meant for STS authenticate to the API server.");
    line("# Changing the issuer of a running cluster (1.22+): repeat --service-account-issuer, new one first, old one");
    line("#   second, so tokens already issued stay valid until they are rotated.");
    line("");
    line("# 3. Register the issuer with IAM (once per AWS account):");
    line(&format!("aws iam create-open-id-connect-provider --url {issuer} --client-id-list {DEFAULT_TOKEN_AUDIENCE}"));
    text
}

fn fetch_cluster_documents(kubeconfig: Option<&Path>) -> Result<(Value, Value), OidcCommandError> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(OidcCommandError::Runtime)?;
    runtime.block_on(async {
        let fetch = async {
            let client = kube_client::client(kubeconfig).await.map_err(ClusterError::Client)?;
            let mut documents = Vec::new();
            for path in ["/.well-known/openid-configuration", "/openid/v1/jwks"] {
                let request =
                    http::Request::get(path).body(Vec::new()).map_err(|error| ClusterError::Request { path, error })?;
                let text = client.request_text(request).await.map_err(|error| ClusterError::Get { path, error })?;
                let value: Value =
                    serde_json::from_str(&text).map_err(|error| ClusterError::NotJson { path, error })?;
                documents.push(value);
            }
            let jwks = documents.pop().unwrap_or_default();
            let discovery = documents.pop().unwrap_or_default();
            Ok((discovery, jwks))
        };
        let result = tokio::time::timeout(CLUSTER_TIMEOUT, fetch).await.unwrap_or(Err(ClusterError::Timeout));
        result.map_err(OidcCommandError::Cluster)
    })
}

fn write(path: &Path, text: &str) -> Result<(), OidcCommandError> {
    let error = |error| OidcCommandError::Write { path: shown(path), error };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    std::fs::write(path, text).map_err(error)
}

fn to_value(value: &impl Serialize) -> Result<Value, OidcCommandError> {
    serde_json::to_value(value).map_err(OidcCommandError::Serialize)
}

fn pretty(value: &impl Serialize) -> Result<String, OidcCommandError> {
    let mut text = serde_json::to_string_pretty(value).map_err(OidcCommandError::Serialize)?;
    text.push('\n');
    Ok(text)
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}
