//! `irsa-webhook doctor`: gather the pod, its ServiceAccount, its namespace and the webhook configurations — from
//! files (`-f`) or the API (`pod NS/NAME`) — and hand them to the pure checks in `crate::doctor`.
//!
//! Exit status: 0 no problem, 1 at least one problem (so it can gate a CI job), 2 bad usage or unreadable input.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::ExitCode;

use serde_json::Value;

use crate::cli::{DoctorArgs, DoctorOutput};
use crate::doctor::{self, selector::labels_of, ClusterView, Finding, Inputs, Source, Status};
use crate::kube_client::{self, CLUSTER_TIMEOUT};
use crate::manifest::{self, ServiceAccountManifest};

use super::inputs::{self as input_files, InputError};

#[derive(Debug, thiserror::Error)]
pub enum DoctorCommandError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Input(#[from] InputError),
    #[error("{path}: {error}")]
    Manifest { path: String, error: manifest::ManifestError },
    #[error("{0}")]
    Settings(#[from] crate::cli::SettingsError),
    #[error("{source_name}: {error}")]
    Doctor { source_name: String, error: doctor::DoctorError },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot connect to the cluster: {0}")]
    Connect(String),
    #[error("pod {0} not found")]
    PodNotFound(String),
    #[error("GET {path}: {error}")]
    Api { path: String, error: String },
    #[error("no answer from the API server within {} s", CLUSTER_TIMEOUT.as_secs())]
    Timeout,
    #[error("cannot write the output: {0}")]
    Output(String),
}

/// The findings for the pod, and which pod that was (for the summary on stderr).
pub struct Report {
    pub findings: Vec<Finding>,
    pub pod: String,
}

/// Runs the command as `main` does: prints the report, returns the exit status.
pub fn main(args: &DoctorArgs) -> ExitCode {
    let report = match run(args, std::io::stdin().lock()) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("irsa-webhook doctor: {error}");
            return ExitCode::from(2);
        }
    };
    let text = match render(&report.findings, args.output) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("irsa-webhook doctor: {error}");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = std::io::stdout().lock().write_all(text.as_bytes()) {
        eprintln!("irsa-webhook doctor: cannot write the output: {error}");
        return ExitCode::from(2);
    }
    let count = |status| report.findings.iter().filter(|f| f.status == status).count();
    eprintln!(
        "irsa-webhook doctor: pod {}: {} problem(s), {} hint(s)",
        report.pod,
        count(Status::Problem),
        count(Status::Hint)
    );
    if doctor::has_problems(&report.findings) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

pub fn render(findings: &[Finding], output: DoctorOutput) -> Result<String, DoctorCommandError> {
    match output {
        DoctorOutput::Text => Ok(doctor::render_text(findings)),
        DoctorOutput::Json => {
            let mut text =
                serde_json::to_string_pretty(findings).map_err(|e| DoctorCommandError::Output(e.to_string()))?;
            text.push('\n');
            Ok(text)
        }
    }
}

pub fn run(args: &DoctorArgs, stdin: impl Read) -> Result<Report, DoctorCommandError> {
    let settings = args.mutation.to_settings()?;
    let container_credentials =
        input_files::read_container_credentials(args.mutation.watch_container_credentials_config.as_deref())?;
    match (&args.file, &args.kind, &args.name) {
        (Some(file), _, _) => {
            let (source_name, pod) = input_files::read_pod(Some(file), stdin)?;
            let service_accounts = input_files::read_service_accounts(&args.service_accounts)?;
            let sa = manifest::pod_service_account(&pod, None);
            let inputs = Inputs {
                pod: &pod,
                service_account: service_accounts.get(&sa),
                container_credentials: container_credentials.contains(&sa),
                settings: &settings,
                source: Source::Offline,
            };
            let findings =
                doctor::diagnose(&inputs).map_err(|error| DoctorCommandError::Doctor { source_name, error })?;
            Ok(Report { findings, pod: pod_name(&pod) })
        }
        (None, Some(_), Some(name)) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(DoctorCommandError::Runtime)?;
            let cluster = runtime.block_on(async {
                tokio::time::timeout(CLUSTER_TIMEOUT, read_cluster(args, name))
                    .await
                    .map_err(|_| DoctorCommandError::Timeout)?
            })?;
            let sa = manifest::pod_service_account(&cluster.pod, None);
            let view = ClusterView {
                webhook_configurations: cluster.webhook_configurations.as_deref().map_err(String::as_str),
                webhook_config_name: args.webhook_config.as_deref(),
                namespace_labels: cluster.namespace_labels.as_ref().map_err(String::as_str),
                now: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
            };
            let inputs = Inputs {
                pod: &cluster.pod,
                service_account: cluster.service_account.as_ref(),
                container_credentials: container_credentials.contains(&sa),
                settings: &settings,
                source: Source::Cluster(view),
            };
            let pod = pod_name(&cluster.pod);
            let findings = doctor::diagnose(&inputs)
                .map_err(|error| DoctorCommandError::Doctor { source_name: format!("pod {pod}"), error })?;
            Ok(Report { findings, pod })
        }
        _ => Err(DoctorCommandError::Usage("give `pod NAMESPACE/NAME` or `-f FILE`".to_owned())),
    }
}

fn pod_name(pod: &Value) -> String {
    let sa = manifest::pod_service_account(pod, None);
    let name = |pointer| pod.pointer(pointer).and_then(Value::as_str).filter(|n| !n.is_empty());
    format!("{}/{}", sa.namespace, name("/metadata/name").or(name("/metadata/generateName")).unwrap_or("<unnamed>"))
}

/// What the API says; the parts that may be forbidden carry the reason instead.
struct ClusterData {
    pod: Value,
    service_account: Option<ServiceAccountManifest>,
    namespace_labels: Result<BTreeMap<String, String>, String>,
    webhook_configurations: Result<Vec<Value>, String>,
}

async fn read_cluster(args: &DoctorArgs, target: &str) -> Result<ClusterData, DoctorCommandError> {
    let client = client(args).await?;
    let (namespace, name) = match target.split_once('/') {
        Some((namespace, name)) => (namespace.to_owned(), name.to_owned()),
        None => (args.namespace.clone().unwrap_or_else(|| client.default_namespace().to_owned()), target.to_owned()),
    };
    if namespace.is_empty() || name.is_empty() || name.contains('/') {
        return Err(DoctorCommandError::Usage(format!("expected NAMESPACE/NAME or NAME, got {target:?}")));
    }
    let pod = match get(&client, &format!("/api/v1/namespaces/{namespace}/pods/{name}")).await? {
        Some(pod) => pod,
        None => return Err(DoctorCommandError::PodNotFound(format!("{namespace}/{name}"))),
    };
    let sa = manifest::pod_service_account(&pod, Some(&namespace));
    let service_account =
        match get(&client, &format!("/api/v1/namespaces/{}/serviceaccounts/{}", sa.namespace, sa.name)).await? {
            Some(object) => Some(
                ServiceAccountManifest::from_object(&with_kind(object, "ServiceAccount"))
                    .map_err(|error| DoctorCommandError::Manifest { path: format!("ServiceAccount {sa}"), error })?,
            ),
            None => None,
        };
    // Reading the namespace and listing webhook configurations need cluster-wide rights a developer may lack: a
    // refusal becomes a hint, not an error.
    let namespace_labels = match get_or_refusal(&client, &format!("/api/v1/namespaces/{namespace}")).await? {
        Ok(Some(object)) => Ok(labels_of(&object)),
        Ok(None) => Err("not found".to_owned()),
        Err(refusal) => Err(refusal),
    };
    let webhook_configurations =
        match get_or_refusal(&client, "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations").await? {
            Ok(Some(list)) => Ok(list.get("items").and_then(Value::as_array).cloned().unwrap_or_default()),
            Ok(None) => Err("admissionregistration.k8s.io/v1 is not served".to_owned()),
            Err(refusal) => Err(refusal),
        };
    Ok(ClusterData { pod, service_account, namespace_labels, webhook_configurations })
}

/// Objects read by GET carry their kind; the check insists on it, so make sure.
fn with_kind(mut object: Value, kind: &str) -> Value {
    if let Some(map) = object.as_object_mut() {
        map.entry("kind").or_insert_with(|| Value::String(kind.to_owned()));
    }
    object
}

async fn client(args: &DoctorArgs) -> Result<kube::Client, DoctorCommandError> {
    kube_client::client(args.kubeconfig.as_deref()).await.map_err(|e| DoctorCommandError::Connect(e.to_string()))
}

/// GET a path as raw JSON; `None` on 404, an error otherwise.
async fn get(client: &kube::Client, path: &str) -> Result<Option<Value>, DoctorCommandError> {
    match get_or_refusal(client, path).await? {
        Ok(found) => Ok(found),
        Err(refusal) => Err(DoctorCommandError::Api { path: path.to_owned(), error: refusal }),
    }
}

/// GET a path as raw JSON; `Ok(None)` on 404, `Err(reason)` when refused (401/403), an error otherwise.
async fn get_or_refusal(
    client: &kube::Client,
    path: &str,
) -> Result<Result<Option<Value>, String>, DoctorCommandError> {
    let api_error = |error: String| DoctorCommandError::Api { path: path.to_owned(), error };
    let request = http::Request::get(path).body(Vec::new()).map_err(|e| api_error(e.to_string()))?;
    match client.request::<Value>(request).await {
        Ok(value) => Ok(Ok(Some(value))),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Ok(None)),
        Err(kube::Error::Api(status)) if status.code == 401 || status.code == 403 => {
            Ok(Err(format!("{} {}", status.code, status.message)))
        }
        Err(error) => Err(api_error(error.to_string())),
    }
}
