//! `irsa-webhook doctor`: gather the pod, its ServiceAccount, its namespace, the webhook configurations and (for
//! IAM's side) the issuer the cluster publishes and a token — from files (`-f`) or the API (`pod NS/NAME`) — and
//! hand them to the pure checks in `crate::doctor`. `doctor pods -A` / `-n NS` lists the cluster page by page for
//! `crate::doctor::scan`.
//!
//! Exit status: 0 no problem, 1 at least one problem (so it can gate a CI job), 2 bad usage or unreadable input.
//! Every request to the API server is bounded by [`CLUSTER_TIMEOUT`]; the scan lists [`PAGE_SIZE`] objects a page.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use serde::Deserialize;
use serde_json::Value;

use crate::cli::{DoctorArgs, DoctorOutput};
use crate::doctor::scan::{self, Owners, Registrations, Scanner, Tally};
use crate::doctor::{
    self, selector::labels_of, ClusterView, Finding, IamInputs, Inputs, Source, Status, TokenClaims,
    TokenRequestOutcome, TokenRequestPlan,
};
use crate::iam::RolePolicy;
use crate::identity::{self, ServiceAccountConfig, ServiceAccountRef};
use crate::kube_client::{self, CLUSTER_TIMEOUT};
use crate::manifest::{self, ServiceAccountManifest};
use crate::oidc::Issuer;
use crate::settings::MutationSettings;

use super::inputs::{self as input_files, InputError};
use super::trust_policy::{read_policy, CheckError};

/// Objects per LIST page in `doctor pods`, as kubectl's `--chunk-size`.
pub const PAGE_SIZE: usize = 500;

const NAME: &str = "irsa-webhook doctor";

#[derive(Debug, thiserror::Error)]
pub enum DoctorCommandError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{path}: {error}")]
    Manifest { path: String, error: manifest::ManifestError },
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
    #[error("{source_name}: {error}")]
    Doctor { source_name: String, error: doctor::DoctorError },
    #[error(transparent)]
    Policy(#[from] CheckError),
    #[error("--issuer")]
    Issuer(#[source] crate::oidc::OidcError),
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("cannot connect to the cluster")]
    Connect(#[source] kube_client::KubeClientError),
    #[error("pod {0} not found")]
    PodNotFound(String),
    #[error("GET {path}: {error}")]
    Api { path: String, error: String },
    #[error("no answer from the API server within {} s", CLUSTER_TIMEOUT.as_secs())]
    Timeout,
    #[error("cannot write the output")]
    Output(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The findings for the pod, and which pod that was (for the summary on stderr).
pub struct Report {
    pub findings: Vec<Finding>,
    pub pod: String,
}

/// Runs the command as `main` does: prints the report, returns the exit status.
pub fn main(args: &DoctorArgs) -> ExitCode {
    if is_scan(args) {
        return scan_main(args);
    }
    match run(args, std::io::stdin().lock()) {
        Ok(report) => finish(NAME, &format!("pod {}", report.pod), &report.findings, args.output),
        Err(error) => fail(NAME, &error),
    }
}

/// Bad usage or unreadable input: the message and its causes on stderr, exit status 2.
pub fn fail(command: &str, error: &dyn std::error::Error) -> ExitCode {
    eprintln!("{command}: {}", super::with_causes(error));
    ExitCode::from(2)
}

/// The tail of `doctor` and `trust-policy check`: the findings on stdout (text or JSON), a count on stderr, and the
/// exit status: 0 no problem, 1 at least one, 2 when the output cannot be written.
pub fn finish(command: &str, subject: &str, findings: &[Finding], output: DoctorOutput) -> ExitCode {
    let text = match render(findings, output) {
        Ok(text) => text,
        Err(error) => return fail(command, &error),
    };
    if let Err(error) = write_stdout(&text) {
        return fail(command, &error);
    }
    let count = |status| findings.iter().filter(|f| f.status == status).count();
    eprintln!("{command}: {subject}: {} problem(s), {} hint(s)", count(Status::Problem), count(Status::Hint));
    if doctor::has_problems(findings) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn write_stdout(text: &str) -> Result<(), DoctorCommandError> {
    std::io::stdout().lock().write_all(text.as_bytes()).map_err(|e| DoctorCommandError::Output(Box::new(e)))
}

pub fn render(findings: &[Finding], output: DoctorOutput) -> Result<String, DoctorCommandError> {
    match output {
        DoctorOutput::Text => Ok(doctor::render_text(findings)),
        DoctorOutput::Json => json(&findings),
    }
}

fn json(value: &impl serde::Serialize) -> Result<String, DoctorCommandError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| DoctorCommandError::Output(Box::new(e)))?;
    text.push('\n');
    Ok(text)
}

/// `doctor pods` (or `pod`) without a name: the whole-namespace or whole-cluster scan.
fn is_scan(args: &DoctorArgs) -> bool {
    args.file.is_none() && args.kind.is_some() && args.name.is_none()
}

pub fn run(args: &DoctorArgs, mut stdin: impl Read) -> Result<Report, DoctorCommandError> {
    let settings = MutationSettings::try_from(&args.mutation)?;
    let container_credentials =
        input_files::read_container_credentials(args.mutation.watch_container_credentials_config.as_deref())?;
    if let Some(issuer) = &args.issuer {
        Issuer::parse(issuer).map_err(DoctorCommandError::Issuer)?;
    }
    let stdin_twice =
        args.file.as_deref() == Some(Path::new("-")) && args.role_policy.as_deref() == Some(Path::new("-"));
    if stdin_twice {
        return Err(DoctorCommandError::Usage("-f - and --role-policy - cannot both read stdin".to_owned()));
    }
    let role_policy = args.role_policy.as_deref().map(|path| read_policy(path, &mut stdin)).transpose()?;
    match (&args.file, &args.kind, &args.name) {
        (Some(file), _, _) => {
            if role_policy.is_some() && args.issuer.is_none() {
                return Err(DoctorCommandError::Usage(
                    "--role-policy with -f needs --issuer URL, the cluster's service-account issuer (aws eks \
                     describe-cluster --query cluster.identity.oidc.issuer, or kubectl get --raw \
                     /.well-known/openid-configuration)"
                        .to_owned(),
                ));
            }
            let (source_name, pod) = input_files::read_pod(Some(file), stdin)?;
            let service_accounts = input_files::read_service_accounts(&args.service_accounts)?;
            let sa = manifest::pod_service_account(&pod, None);
            let inputs = Inputs {
                pod: &pod,
                service_account: service_accounts.get(&sa),
                container_credentials: container_credentials.contains(&sa),
                settings: &settings,
                source: Source::Offline,
                iam: IamInputs {
                    role_policy: role_policy.as_ref(),
                    issuer: args.issuer.as_deref(),
                    token_request: None,
                },
            };
            let findings =
                doctor::diagnose(&inputs).map_err(|error| DoctorCommandError::Doctor { source_name, error })?;
            Ok(Report { findings, pod: doctor::pod_label(&pod) })
        }
        (None, Some(_), Some(name)) => {
            let runtime = runtime()?;
            let (client, cluster) = runtime.block_on(async {
                let client = client(args).await?;
                let cluster = bounded(read_cluster(&client, args, name, role_policy.as_ref())).await?;
                Ok::<_, DoctorCommandError>((client, cluster))
            })?;
            let sa = manifest::pod_service_account(&cluster.pod, None);
            let view = || ClusterView {
                webhook_configurations: cluster.webhook_configurations.as_deref().map_err(String::as_str),
                webhook_config_name: args.webhook_config.as_deref(),
                namespace_labels: cluster.namespace_labels.as_ref().map_err(String::as_str),
                published_issuer: cluster.published_issuer.as_deref().map_err(String::as_str),
                now: now(),
            };
            let mut inputs = Inputs {
                pod: &cluster.pod,
                service_account: cluster.service_account.as_ref(),
                container_credentials: container_credentials.contains(&sa),
                settings: &settings,
                source: Source::Cluster(view()),
                iam: IamInputs {
                    role_policy: role_policy.as_ref(),
                    issuer: args.issuer.as_deref(),
                    token_request: None,
                },
            };
            let token = if args.token_request {
                Some(match doctor::token_request_plan(&inputs) {
                    Some(plan) => runtime.block_on(request_token(&client, plan)),
                    None => TokenRequestOutcome::NotAsked(
                        "the pod's ServiceAccount gives no role (or is missing), or the pod has no uid".to_owned(),
                    ),
                })
            } else {
                None
            };
            inputs.iam.token_request = token.as_ref();
            let pod = doctor::pod_label(&cluster.pod);
            let findings = doctor::diagnose(&inputs)
                .map_err(|error| DoctorCommandError::Doctor { source_name: format!("pod {pod}"), error })?;
            Ok(Report { findings, pod })
        }
        _ => Err(DoctorCommandError::Usage("give `pod NAMESPACE/NAME`, `pods -A` or `-f FILE`".to_owned())),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, DoctorCommandError> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(DoctorCommandError::Runtime)
}

async fn bounded<T>(
    future: impl std::future::Future<Output = Result<T, DoctorCommandError>>,
) -> Result<T, DoctorCommandError> {
    tokio::time::timeout(CLUSTER_TIMEOUT, future).await.map_err(|_| DoctorCommandError::Timeout)?
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// What the API says; the parts that may be forbidden carry the reason instead.
struct ClusterData {
    pod: Value,
    service_account: Option<ServiceAccountManifest>,
    namespace_labels: Result<BTreeMap<String, String>, String>,
    webhook_configurations: Result<Vec<Value>, String>,
    published_issuer: Result<String, String>,
}

async fn read_cluster(
    client: &kube::Client,
    args: &DoctorArgs,
    target: &str,
    role_policy: Option<&RolePolicy>,
) -> Result<ClusterData, DoctorCommandError> {
    let (namespace, name) = match target.split_once('/') {
        Some((namespace, name)) => (namespace.to_owned(), name.to_owned()),
        None => (args.namespace.clone().unwrap_or_else(|| client.default_namespace().to_owned()), target.to_owned()),
    };
    if namespace.is_empty() || name.is_empty() || name.contains('/') {
        return Err(DoctorCommandError::Usage(format!("expected NAMESPACE/NAME or NAME, got {target:?}")));
    }
    let pod = match get(client, &format!("/api/v1/namespaces/{namespace}/pods/{name}")).await? {
        Some(pod) => pod,
        None => return Err(DoctorCommandError::PodNotFound(format!("{namespace}/{name}"))),
    };
    let sa = manifest::pod_service_account(&pod, Some(&namespace));
    let service_account =
        match get(client, &format!("/api/v1/namespaces/{}/serviceaccounts/{}", sa.namespace, sa.name)).await? {
            Some(object) => Some(
                ServiceAccountManifest::from_object(&with_kind(object, "ServiceAccount"))
                    .map_err(|error| DoctorCommandError::Manifest { path: format!("ServiceAccount {sa}"), error })?,
            ),
            None => None,
        };
    // Reading the namespace and listing webhook configurations need cluster-wide rights a developer may lack: a
    // refusal becomes a hint, not an error.
    let namespace_labels = match get_or_refusal(client, &format!("/api/v1/namespaces/{namespace}")).await? {
        Ok(Some(object)) => Ok(labels_of(&object)),
        Ok(None) => Err("not found".to_owned()),
        Err(refusal) => Err(refusal),
    };
    let webhook_configurations =
        match get_or_refusal(client, "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations").await? {
            Ok(Some(list)) => Ok(list.get("items").and_then(Value::as_array).cloned().unwrap_or_default()),
            Ok(None) => Err("admissionregistration.k8s.io/v1 is not served".to_owned()),
            Err(refusal) => Err(refusal),
        };
    // Only IAM's side needs the issuer; nothing is read that the checks do not use.
    let published_issuer = if role_policy.is_some() || args.token_request || args.issuer.is_some() {
        match get_or_refusal(client, "/.well-known/openid-configuration").await? {
            Ok(Some(document)) => document
                .get("issuer")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| "the document has no issuer".to_owned()),
            Ok(None) => Err("not served (404): service-account issuer discovery is off".to_owned()),
            Err(refusal) => Err(refusal),
        }
    } else {
        Err("not read".to_owned())
    };
    Ok(ClusterData { pod, service_account, namespace_labels, webhook_configurations, published_issuer })
}

/// The TokenRequest the kubelet makes for the pod's projected volume. Only the claims leave this function; the
/// token itself is dropped here, never printed or logged.
async fn request_token(client: &kube::Client, plan: TokenRequestPlan) -> TokenRequestOutcome {
    let path = plan.path();
    let request = match http::Request::post(&path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(plan.body().to_string().into_bytes())
    {
        Ok(request) => request,
        Err(error) => return TokenRequestOutcome::Failed { plan, reason: error.to_string() },
    };
    let answer = match tokio::time::timeout(CLUSTER_TIMEOUT, client.request::<Value>(request)).await {
        Err(_) => {
            let reason = format!("no answer within {} s", CLUSTER_TIMEOUT.as_secs());
            return TokenRequestOutcome::Failed { plan, reason };
        }
        Ok(answer) => answer,
    };
    match answer {
        Ok(answer) => {
            let claims = answer.pointer("/status/token").and_then(Value::as_str).map(TokenClaims::from_jwt);
            match claims {
                Some(Ok(claims)) => TokenRequestOutcome::Issued { plan, claims },
                Some(Err(error)) => TokenRequestOutcome::Failed { plan, reason: error.to_string() },
                None => TokenRequestOutcome::Failed { plan, reason: "the answer holds no status.token".to_owned() },
            }
        }
        Err(kube::Error::Api(status)) if status.code == 401 || status.code == 403 => {
            TokenRequestOutcome::Refused { plan, reason: format!("{} {}", status.code, status.message) }
        }
        Err(kube::Error::Api(status)) => {
            TokenRequestOutcome::Failed { plan, reason: format!("POST {path}: {} {}", status.code, status.message) }
        }
        Err(error) => TokenRequestOutcome::Failed { plan, reason: format!("POST {path}: {error}") },
    }
}

/// Objects read by GET carry their kind; the check insists on it, so make sure.
fn with_kind(mut object: Value, kind: &str) -> Value {
    if let Some(map) = object.as_object_mut() {
        map.entry("kind").or_insert_with(|| Value::String(kind.to_owned()));
    }
    object
}

async fn client(args: &DoctorArgs) -> Result<kube::Client, DoctorCommandError> {
    kube_client::client(args.kubeconfig.as_deref()).await.map_err(DoctorCommandError::Connect)
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

// ---------------------------------------------------------------------------------------------------------------
// doctor pods: the scan

fn scan_main(args: &DoctorArgs) -> ExitCode {
    let report = match scan(args) {
        Ok(report) => report,
        Err(error) => return fail(NAME, &error),
    };
    let text = match args.output {
        DoctorOutput::Text => Ok(doctor::render_text(&report.findings())),
        DoctorOutput::Json => json(&report),
    };
    if let Err(error) = text.and_then(|text| write_stdout(&text)) {
        return fail(NAME, &error);
    }
    eprintln!("{NAME}: {}", report.summary());
    if report.needs_action() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Lists what the scan needs, page by page: ServiceAccounts, pods, then — only when some pod needs action — the
/// ReplicaSets and Jobs that lead to its Deployment or CronJob, the webhook configurations and the namespaces.
pub fn scan(args: &DoctorArgs) -> Result<scan::Report, DoctorCommandError> {
    let started = Instant::now();
    if args.role_policy.is_some() || args.token_request || args.issuer.is_some() {
        return Err(DoctorCommandError::Usage(
            "--role-policy, --issuer and --token-request are for one pod: doctor pod NAMESPACE/NAME".to_owned(),
        ));
    }
    let settings = MutationSettings::try_from(&args.mutation)?;
    let container_credentials =
        input_files::read_container_credentials(args.mutation.watch_container_credentials_config.as_deref())?;
    runtime()?.block_on(async {
        let client = client(args).await?;
        let namespace = match (args.all_namespaces, &args.namespace) {
            (true, _) => None,
            (false, Some(namespace)) => Some(namespace.clone()),
            (false, None) => Some(client.default_namespace().to_owned()),
        };
        let scope = namespace.as_ref().map_or_else(|| "all namespaces".to_owned(), |ns| format!("namespace {ns}"));
        let in_scope = |group: &str, resource: &str| match &namespace {
            Some(ns) => format!("{group}/namespaces/{ns}/{resource}"),
            None => format!("{group}/{resource}"),
        };
        let mut lister = Lister { client: &client, requests: 0 };

        let mut service_accounts = HashMap::new();
        lister
            .each(&in_scope("/api/v1", "serviceaccounts"), |object| {
                let text = |pointer| object.pointer(pointer).and_then(Value::as_str);
                let (Some(namespace), Some(name)) = (text("/metadata/namespace"), text("/metadata/name")) else {
                    return;
                };
                let sa = ServiceAccountRef::new(namespace, name);
                let annotations = identity::annotations_of(&object);
                let config = ServiceAccountConfig::from_annotations(&sa, annotations, &settings);
                // Only what gives a role is kept: memory grows with the ServiceAccounts that matter.
                if config.role_arn.is_some() {
                    service_accounts.insert(sa, config);
                }
            })
            .await?;

        let scanner = Scanner {
            settings: &settings,
            service_accounts: &service_accounts,
            container_credentials: &container_credentials,
        };
        let mut tally = Tally::default();
        lister.each(&in_scope("/api/v1", "pods"), |pod| tally.add(scanner.examine(&pod))).await?;

        let mut notes = Vec::new();
        let mut owners = Owners::default();
        for (kind, group, resource) in
            [("ReplicaSet", "/apis/apps/v1", "replicasets"), ("Job", "/apis/batch/v1", "jobs")]
        {
            if !tally.needs.iter().any(|need| need.owner.as_ref().is_some_and(|owner| owner.kind == kind)) {
                continue;
            }
            if let Err(refusal) =
                lister.each_or_refusal(&in_scope(group, resource), |o| owners.record(kind, &o)).await?
            {
                notes.push(format!("cannot list {resource} ({refusal}): their pods are grouped by {kind}"));
            }
        }

        let mut configurations = Vec::new();
        let mut namespace_labels = HashMap::new();
        let mut registrations_known = !tally.needs.is_empty();
        if registrations_known {
            let path = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations";
            let listed = lister.each_or_refusal(path, |c| configurations.push(c)).await?;
            let namespaces = match &namespace {
                Some(ns) => match get_or_refusal(&client, &format!("/api/v1/namespaces/{ns}")).await? {
                    Ok(found) => {
                        lister.requests += 1;
                        namespace_labels.extend(found.map(|object| (ns.clone(), labels_of(&object))));
                        Ok(())
                    }
                    Err(refusal) => Err(refusal),
                },
                None => {
                    lister
                        .each_or_refusal("/api/v1/namespaces", |object| {
                            if let Some(name) = object.pointer("/metadata/name").and_then(Value::as_str) {
                                namespace_labels.insert(name.to_owned(), labels_of(&object));
                            }
                        })
                        .await?
                }
            };
            if let Err(refusal) = listed.and(namespaces) {
                registrations_known = false;
                notes.push(format!(
                    "cannot list mutatingwebhookconfigurations or namespaces ({refusal}): whether the webhook would \
                     select the recreated pods was not checked"
                ));
            }
        }
        let registrations = Registrations {
            webhook_configurations: &configurations,
            webhook_config_name: args.webhook_config.as_deref(),
            namespace_labels: &namespace_labels,
        };
        let mut report = tally.report(&owners, registrations_known.then_some(&registrations), scope);
        report.notes = notes;
        report.requests = lister.requests;
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    })
}

/// Paged LISTs (`limit` + `continue`), each page bounded by [`CLUSTER_TIMEOUT`]; counts the requests.
struct Lister<'c> {
    client: &'c kube::Client,
    requests: usize,
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    metadata: PageMetadata,
    #[serde(default)]
    items: Vec<Value>,
}

#[derive(Default, Deserialize)]
struct PageMetadata {
    #[serde(default, rename = "continue")]
    next: Option<String>,
}

impl Lister<'_> {
    /// Every object at `path`, one page in memory at a time; a refusal is an error.
    async fn each(&mut self, path: &str, on_item: impl FnMut(Value)) -> Result<(), DoctorCommandError> {
        self.each_or_refusal(path, on_item)
            .await?
            .map_err(|refusal| DoctorCommandError::Api { path: path.to_owned(), error: refusal })
    }

    /// Every object at `path`; `Ok(Err(reason))` when the list is refused (401/403) or not served (404).
    async fn each_or_refusal(
        &mut self,
        path: &str,
        mut on_item: impl FnMut(Value),
    ) -> Result<Result<(), String>, DoctorCommandError> {
        let mut next: Option<String> = None;
        loop {
            let mut url = format!("{path}?limit={PAGE_SIZE}");
            if let Some(token) = &next {
                url.push_str("&continue=");
                url.push_str(&percent_encode(token));
            }
            self.requests += 1;
            let page = match bounded(get_or_refusal(self.client, &url)).await? {
                Ok(Some(page)) => page,
                Ok(None) => return Ok(Err("404 not found".to_owned())),
                Err(refusal) => return Ok(Err(refusal)),
            };
            let page: Page = serde_json::from_value(page)
                .map_err(|e| DoctorCommandError::Api { path: path.to_owned(), error: format!("not a list: {e}") })?;
            page.items.into_iter().for_each(&mut on_item);
            match page.metadata.next.filter(|token| !token.is_empty()) {
                Some(token) => next = Some(token),
                None => return Ok(Ok(())),
            }
        }
    }
}

/// A continue token is opaque (base64 today): escape everything but the unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_are_escaped() {
        assert_eq!(percent_encode("eyJ2Ijoi+/=="), "eyJ2Ijoi%2B%2F%3D%3D");
        assert_eq!(percent_encode("a-b_c.d~e"), "a-b_c.d~e");
    }
}
