//! Shared helpers for the end-to-end tests (`tests/e2e_*.rs`) against the harness of `tests/e2e/cluster.sh`: a
//! real kube-apiserver v1.20.2 + etcd on loopback, no kubelet and no controller-manager.
//!
//! Use it from a test file (gated on the `e2e` feature, see Cargo.toml) with
//! ```ignore
//! mod support;
//! use support::e2e::*;
//! ```
//!
//! Entry point: [`connect`] reads the harness from the environment (`eval "$(tests/e2e/cluster.sh env)"`) and
//! **panics with the reason** when it is missing or not answering — an e2e test never skips silently. Everything
//! a test creates hangs off a [`Scope`]: a unique id, namespaces labelled with it, and MutatingWebhookConfigurations
//! whose `namespaceSelector` only matches those namespaces, so a test's webhooks never touch another test's pods
//! (tests run one after another against one shared cluster). [`Scope::cleanup`] deletes what the scope made; if a
//! test panics first, dropping the scope does it.
//!
//! The other pieces:
//! - [`WebhookProcess`]: the `irsa-webhook serve` binary as a child process on a free loopback port with the
//!   harness's `webhook.crt`/`webhook.key`, its `/readyz` awaited; killed on drop (its log is printed if the test
//!   is failing).
//! - [`WebhookSpec`] / [`Scope::register`]: a webhook configuration by `url:` or `service:`, with the harness CA as
//!   `caBundle`, and [`Namespace::wait_for_dry_run`] to poll (server-side dry-run create) until it takes effect.
//! - [`TestWebhook`]: a second, tiny mutating webhook served from the test process (axum + rustls) that records
//!   what it receives and answers with a patch the test chooses.
//! - Pods are plain JSON ([`pod`]) created through `Api<DynamicObject>`, so no field is lost to (or invented by) the
//!   typed client; [`assert_mutated`], [`assert_unmutated`], [`strip_irsa`] and [`normalize`] read them back.
//! - [`Load`]: pod creations in the background, each attempt timed and classified.
//! - [`kubectl`], [`issue_certificate`] (the repo's `certs/gen-certs.sh` with the harness CA), [`jwt_claims`].
//!
//! The API server is 1.20: stick to fields it knows, or expect it to drop the others at decode time.
use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Namespace as K8sNamespace, Pod, ServiceAccount};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

#[allow(unused_imports)] // for the e2e test files, which each use a part
pub use super::{free_port, kube_client, random_suffix, repo_root, unique};
use super::{irsa_webhook, tool, BIN};

mod load;
mod pods;
mod test_webhook;
mod tokens;
mod webhooks;
#[allow(unused_imports)]
pub use load::*;
#[allow(unused_imports)]
pub use pods::*;
#[allow(unused_imports)]
pub use test_webhook::*;
#[allow(unused_imports)]
pub use tokens::*;
#[allow(unused_imports)]
pub use webhooks::*;

// ------------------------------------------------------------------------------------------------------------------
// What the webhook adds (its defaults)
// ------------------------------------------------------------------------------------------------------------------

pub const ROLE_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
pub const AUDIENCE_ANNOTATION: &str = "eks.amazonaws.com/audience";
pub const TOKEN_EXPIRATION_ANNOTATION: &str = "eks.amazonaws.com/token-expiration";
pub const STS_REGIONAL_ANNOTATION: &str = "eks.amazonaws.com/sts-regional-endpoints";
/// The chart's objectSelector: pods with this label are never sent to the webhook.
pub const SKIP_LABEL: &str = "eks.amazonaws.com/skip-pod-identity-webhook";
/// Set automatically from Kubernetes 1.21 on; on 1.20 [`Scope::namespace`] sets it, so the chart's
/// `kubernetes.io/metadata.name NotIn [...]` exclusion can be exercised.
pub const NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// Every namespace of a scope carries `irsa-e2e/scope: <scope id>`; every webhook of the scope selects on it.
pub const SCOPE_LABEL: &str = "irsa-e2e/scope";

pub const TOKEN_VOLUME: &str = "aws-iam-token";
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount";
pub const TOKEN_FILE: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token";
pub const DEFAULT_AUDIENCE: &str = "sts.amazonaws.com";
pub const DEFAULT_EXPIRATION: i64 = 86400;
/// The issuer the harness gives the API server (`--service-account-issuer`).
pub const ISSUER: &str = "https://kubernetes.default.svc";

/// How long to wait for things that normally take well under a second (a webhook configuration taking effect, a
/// process becoming ready): generous, because CI machines are shared and busy.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

// ------------------------------------------------------------------------------------------------------------------
// The harness
// ------------------------------------------------------------------------------------------------------------------

/// The running harness, as `tests/e2e/cluster.sh env` exports it.
#[derive(Debug, Clone)]
pub struct Harness {
    pub kubeconfig: PathBuf,
    /// `ca.crt/key`, `webhook.crt/key` (SANs 127.0.0.1 and localhost), `sa.pub`, `admin-token`.
    pub pki: PathBuf,
    pub api_url: String,
    /// The run dir; `cluster.sh restart-apiserver` finds the running cluster through `IRSA_E2E_RUN`.
    pub run_dir: PathBuf,
}

const HOW_TO_START: &str =
    "the e2e tests need the harness: run `tests/e2e/cluster.sh start && eval \"$(tests/e2e/cluster.sh env)\"` \
     first (tests/run-all.sh does this), then `cargo test --features e2e --test 'e2e_*' -- --test-threads=1`";

impl Harness {
    /// Reads the harness from the environment; the error says what is missing and how to get it.
    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| match std::env::var_os(name) {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(format!("{name} is not set: {HOW_TO_START}")),
        };
        let harness = Self {
            kubeconfig: PathBuf::from(var("KUBECONFIG")?),
            pki: PathBuf::from(var("IRSA_E2E_PKI")?),
            api_url: var("IRSA_E2E_API_URL")?.to_string_lossy().into_owned(),
            run_dir: PathBuf::from(var("IRSA_E2E_RUN")?),
        };
        for file in [harness.kubeconfig.clone(), harness.ca_cert(), harness.webhook_cert(), harness.webhook_key()] {
            if !file.is_file() {
                return Err(format!("{} does not exist (stale environment?): {HOW_TO_START}", file.display()));
            }
        }
        Ok(harness)
    }

    /// The harness of this process; panics (fails the test) with the reason when there is none.
    pub fn get() -> &'static Harness {
        static HARNESS: OnceLock<Result<Harness, String>> = OnceLock::new();
        match HARNESS.get_or_init(Harness::from_env) {
            Ok(harness) => harness,
            Err(why) => panic!("{why}"),
        }
    }

    pub fn ca_cert(&self) -> PathBuf {
        self.pki.join("ca.crt")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.pki.join("ca.key")
    }
    pub fn webhook_cert(&self) -> PathBuf {
        self.pki.join("webhook.crt")
    }
    pub fn webhook_key(&self) -> PathBuf {
        self.pki.join("webhook.key")
    }
    /// PEM of the CA that signed the API server's and the webhook's certificates.
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.ca_cert()).expect("read the harness ca.crt")
    }
    /// `caBundle` for a webhook configuration: base64 of the CA PEM.
    pub fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.ca_pem())
    }

    /// A client for the harness API server (from `KUBECONFIG`: the admin token, the harness CA).
    pub async fn client(&self) -> kube::Client {
        kube_client(&self.kubeconfig).await
    }
}

/// `tests/e2e/cluster.sh` (for `restart-apiserver`; it finds the running cluster through `IRSA_E2E_RUN`).
pub fn cluster_sh() -> PathBuf {
    repo_root().join("tests/e2e/cluster.sh")
}

/// Runs `tests/e2e/cluster.sh <verb>` and panics with its output unless it succeeds.
pub fn cluster_sh_run(verb: &str) -> String {
    let harness = Harness::get();
    let output = Command::new(cluster_sh())
        .arg(verb)
        .env("IRSA_E2E_RUN", &harness.run_dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run cluster.sh {verb}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "cluster.sh {verb} failed ({}):\n{text}", output.status);
    text
}

/// Path of kubectl (v1.35) from `tests/tools.sh kubectl` (fetched on first use, then cached).
pub fn kubectl() -> &'static Path {
    static KUBECTL: OnceLock<PathBuf> = OnceLock::new();
    KUBECTL.get_or_init(|| tool("kubectl"))
}

/// Runs kubectl against the harness; returns stdout, panics with stderr on failure.
pub fn kubectl_run(args: &[&str]) -> String {
    let output = Command::new(kubectl())
        .args(args)
        .env("KUBECONFIG", &Harness::get().kubeconfig)
        .output()
        .unwrap_or_else(|e| panic!("cannot run kubectl: {e}"));
    assert!(
        output.status.success(),
        "kubectl {} failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A connected test: the harness and a client that has been seen to work.
#[derive(Clone)]
pub struct Cluster {
    pub harness: &'static Harness,
    pub client: kube::Client,
}

/// Connects to the harness; panics with the reason when the environment is missing or the API server is down.
pub async fn connect() -> Cluster {
    let harness = Harness::get();
    let client = harness.client().await;
    match tokio::time::timeout(Duration::from_secs(20), client.apiserver_version()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!(
            "the API server at {} does not answer ({e}); is the harness running? (tests/e2e/cluster.sh status)",
            harness.api_url
        ),
        Err(_) => panic!("the API server at {} did not answer within 20 s", harness.api_url),
    }
    Cluster { harness, client }
}

impl Cluster {
    /// A new scope: `tag` (short, lowercase) names the test in object names, a random suffix makes them unique.
    pub fn scope(&self, tag: &str) -> Scope {
        Scope {
            id: format!("e2e-{tag}-{}", random_suffix()),
            cluster: self.clone(),
            owned: Cleanup::new(&self.harness.kubeconfig),
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }
}

/// Polls `check` every 100 ms until it returns `Ok`, at most `timeout`; then panics with `what` and the last
/// observation (`Err` text).
pub async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last observation: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

// ------------------------------------------------------------------------------------------------------------------
// Scopes, namespaces, ServiceAccounts, pods
// ------------------------------------------------------------------------------------------------------------------

/// Everything one test creates. Namespaces are labelled with the scope id; webhooks registered through the scope
/// select on that label, so they only ever see this test's pods.
pub struct Scope {
    /// `e2e-<tag>-<random>`: the prefix of every name the scope makes.
    pub id: String,
    pub cluster: Cluster,
    /// What to delete at the end (also when the test panics first).
    owned: Cleanup,
    /// Files of the scope (kubeconfigs, certificates).
    pub dir: tempfile::TempDir,
}

impl Scope {
    pub fn client(&self) -> kube::Client {
        self.cluster.client.clone()
    }

    /// Creates namespace `<scope id>-<suffix>`, labelled with the scope and `kubernetes.io/metadata.name`.
    pub async fn namespace(&self, suffix: &str) -> Namespace {
        self.namespace_with_labels(suffix, &[]).await
    }

    pub async fn namespace_with_labels(&self, suffix: &str, labels: &[(&str, &str)]) -> Namespace {
        let name = format!("{}-{suffix}", self.id);
        assert!(name.len() <= 63, "namespace name {name:?} is longer than 63 characters: shorten the tag or suffix");
        let mut all: BTreeMap<String, String> =
            [(SCOPE_LABEL.to_owned(), self.id.clone()), (NAME_LABEL.to_owned(), name.clone())].into();
        all.extend(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let namespace: K8sNamespace = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": all}
        }))
        .expect("namespace object");
        Api::<K8sNamespace>::all(self.client())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
        self.own(ApiResource::erase::<K8sNamespace>(&()), &name);
        Namespace { name, client: self.client() }
    }

    /// The namespaceSelector expression every webhook of this scope carries.
    pub fn selector_expression(&self) -> Value {
        json!({"key": SCOPE_LABEL, "operator": "In", "values": [self.id]})
    }

    /// Name for a cluster-scoped object of this scope.
    pub fn name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.id)
    }

    /// Creates MutatingWebhookConfiguration `<scope id>-<suffix>` with these webhooks (called in this order).
    /// Does not wait for it to take effect: see [`Namespace::wait_for_dry_run`].
    pub async fn register(&self, suffix: &str, webhooks: &[WebhookSpec]) -> Registration {
        let name = self.name(suffix);
        let api = webhook_configs(self.client());
        let object = webhook_config_object(&name, self, webhooks);
        api.create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("create MutatingWebhookConfiguration {name}: {e}\n{:#}", object.data));
        self.own(webhook_config_resource(), &name);
        Registration { name, api }
    }

    /// Like [`Scope::register`], under exactly `name` (no scope prefix): for names a test must control, such as
    /// the managed webhook's `pod-identity-webhook` or a name that sorts after it (the API server calls the
    /// configurations in the order of their names). Still labelled with the scope, selecting only its namespaces,
    /// and deleted at cleanup; creating it fails if the name is taken.
    pub async fn register_as(&self, name: &str, webhooks: &[WebhookSpec]) -> Registration {
        let api = webhook_configs(self.client());
        let object = webhook_config_object(name, self, webhooks);
        api.create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("create MutatingWebhookConfiguration {name}: {e}\n{:#}", object.data));
        self.own(webhook_config_resource(), name);
        Registration { name: name.to_owned(), api }
    }

    /// Records a cluster-scoped object for deletion at cleanup.
    pub fn own(&self, resource: ApiResource, name: &str) {
        self.owned.add(resource, name);
    }

    /// Creates a cluster-scoped object from JSON (`resource` says where it goes) and owns it.
    pub async fn create_cluster_object(&self, resource: &ApiResource, object: Value) -> DynamicObject {
        let object: DynamicObject = serde_json::from_value(object).expect("a Kubernetes object");
        let name = object.metadata.name.clone().expect("a named object");
        let created = Api::<DynamicObject>::all_with(self.client(), resource)
            .create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("create {} {name}: {e}", resource.kind));
        self.own(resource.clone(), &name);
        created
    }

    /// A kubeconfig for ServiceAccount `name` (created here) of `namespace`, allowed exactly `rules` cluster-wide
    /// (a ClusterRole and ClusterRoleBinding owned by the scope), authenticated by a one-hour TokenRequest token.
    /// For running the webhook as a ServiceAccount with chosen permissions.
    pub async fn service_account_kubeconfig(&self, namespace: &Namespace, name: &str, rules: Value) -> PathBuf {
        namespace.service_account(name, &[]).await;
        let role_name = self.name(name);
        let rbac = |kind: &str, plural: &str| ApiResource {
            group: "rbac.authorization.k8s.io".into(),
            version: "v1".into(),
            api_version: "rbac.authorization.k8s.io/v1".into(),
            kind: kind.into(),
            plural: plural.into(),
        };
        self.create_cluster_object(
            &rbac("ClusterRole", "clusterroles"),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                   "metadata": {"name": role_name}, "rules": rules}),
        )
        .await;
        self.create_cluster_object(
            &rbac("ClusterRoleBinding", "clusterrolebindings"),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                   "metadata": {"name": role_name},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
                   "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace.name}]}),
        )
        .await;
        let request: k8s_openapi::api::authentication::v1::TokenRequest = serde_json::from_value(json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}
        }))
        .expect("TokenRequest");
        let token = namespace
            .service_accounts()
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .unwrap_or_else(|e| panic!("TokenRequest for {}/{name}: {e}", namespace.name))
            .status
            .expect("TokenRequest status")
            .token;
        let harness = self.cluster.harness;
        let kubeconfig = json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "e2e", "cluster": {
                "server": harness.api_url, "certificate-authority": harness.ca_cert()}}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": name}}],
            "current-context": "e2e"
        });
        let path = self.dir.path().join(format!("kubeconfig-{}-{name}", namespace.name));
        std::fs::write(&path, kubeconfig.to_string()).expect("write kubeconfig");
        path
    }

    /// Deletes the scope's webhook configurations (first: they may point at webhooks that are gone) and
    /// namespaces. Call it at the end of the test; dropping the scope without it does the same, synchronously.
    pub async fn cleanup(&self) {
        self.owned.run(self.client()).await;
    }
}

/// Cluster objects a test made, deleted when [`Cleanup::run`] is awaited or, if the test panics first, when the
/// guard drops: webhook configurations first (they may point at webhooks that are gone), namespaces last. Without
/// a controller-manager a deleted namespace stays Terminating (nothing empties it): harmless, and it keeps new
/// objects out.
pub struct Cleanup {
    kubeconfig: PathBuf,
    owned: Mutex<Vec<(ApiResource, String)>>,
}

impl Cleanup {
    /// Deletes through a client of this kubeconfig when dropped.
    pub fn new(kubeconfig: &Path) -> Self {
        Cleanup { kubeconfig: kubeconfig.to_owned(), owned: Mutex::new(Vec::new()) }
    }

    /// Deletes this cluster-scoped object (or namespace) at the end.
    pub fn add(&self, resource: ApiResource, name: &str) {
        self.owned.lock().unwrap_or_else(|e| e.into_inner()).push((resource, name.to_owned()));
    }

    /// [`Cleanup::add`] for a typed resource.
    pub fn add_kind<K: kube::Resource<DynamicType = ()>>(&self, name: &str) {
        self.add(ApiResource::erase::<K>(&()), name);
    }

    fn take(&self) -> Vec<(ApiResource, String)> {
        std::mem::take(&mut *self.owned.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Deletes everything added so far.
    pub async fn run(&self, client: kube::Client) {
        delete_all(client, self.take()).await;
    }
}

async fn delete_all(client: kube::Client, mut owned: Vec<(ApiResource, String)>) {
    let rank = |r: &ApiResource| match r.kind.as_str() {
        "MutatingWebhookConfiguration" => 0,
        "Namespace" => 2,
        _ => 1,
    };
    owned.sort_by_key(|(resource, _)| rank(resource));
    for (resource, name) in owned {
        let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
        if let Err(e) = api.delete(&name, &DeleteParams::default()).await {
            if !is_not_found(&e) {
                eprintln!("cleanup: delete {} {name}: {e}", resource.kind);
            }
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let owned = self.take();
        if owned.is_empty() {
            return;
        }
        // The test's runtime may be unwinding (and a current-thread runtime cannot be blocked on from inside):
        // clean up from a thread with its own runtime and client.
        let kubeconfig = self.kubeconfig.clone();
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            match runtime {
                Ok(runtime) => runtime.block_on(async {
                    let client = kube_client(&kubeconfig).await;
                    delete_all(client, owned).await;
                }),
                Err(e) => eprintln!("cleanup: no runtime: {e}; left behind: {owned:?}"),
            }
        })
        .join();
        if done.is_err() {
            eprintln!("cleanup thread panicked");
        }
    }
}

/// A namespace of a [`Scope`].
#[derive(Clone)]
pub struct Namespace {
    pub name: String,
    pub client: kube::Client,
}

impl Namespace {
    pub fn service_accounts(&self) -> Api<ServiceAccount> {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Pods as raw JSON: nothing added or dropped by a typed client.
    pub fn pods(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.name, &ApiResource::erase::<Pod>(&()))
    }

    /// Creates a ServiceAccount with these annotations.
    pub async fn service_account(&self, name: &str, annotations: &[(&str, &str)]) -> ServiceAccount {
        let annotations: BTreeMap<&str, &str> = annotations.iter().copied().collect();
        let sa: ServiceAccount = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": self.name, "annotations": annotations}
        }))
        .expect("ServiceAccount object");
        self.service_accounts()
            .create(&PostParams::default(), &sa)
            .await
            .unwrap_or_else(|e| panic!("create ServiceAccount {}/{name}: {e}", self.name))
    }

    /// Creates a ServiceAccount whose pods get `role`.
    pub async fn service_account_with_role(&self, name: &str, role: &str) -> ServiceAccount {
        self.service_account(name, &[(ROLE_ANNOTATION, role)]).await
    }

    /// Sets (`Some`) or removes (`None`) annotations of a ServiceAccount (JSON merge patch).
    pub async fn annotate_service_account(&self, name: &str, annotations: &[(&str, Option<&str>)]) {
        let annotations: serde_json::Map<String, Value> =
            annotations.iter().map(|(k, v)| (k.to_string(), v.map_or(Value::Null, |v| json!(v)))).collect();
        self.service_accounts()
            .patch(name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"annotations": annotations}})))
            .await
            .unwrap_or_else(|e| panic!("annotate ServiceAccount {}/{name}: {e}", self.name));
    }

    /// Creates a pod; the answer is the object as stored.
    pub async fn create_pod(&self, pod: &Value) -> Result<Value, kube::Error> {
        self.create_pod_with(pod, false).await
    }

    /// Server-side dry-run create: every admission step (our webhook included) runs, nothing is stored.
    pub async fn dry_run_pod(&self, pod: &Value) -> Result<Value, kube::Error> {
        self.create_pod_with(pod, true).await
    }

    async fn create_pod_with(&self, pod: &Value, dry_run: bool) -> Result<Value, kube::Error> {
        let object: DynamicObject = serde_json::from_value(pod.clone()).expect("a pod object");
        let params = PostParams { dry_run, ..PostParams::default() };
        let created = self.pods().create(&params, &object).await?;
        Ok(serde_json::to_value(created).expect("pod as JSON"))
    }

    /// Creates a pod that must be admitted; panics with the API server's answer otherwise. Returns the pod as read
    /// back from the API (a GET after the create).
    pub async fn create_pod_ok(&self, pod: &Value) -> Value {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        if let Err(e) = self.create_pod(pod).await {
            panic!("create pod {}/{name} was refused: {e}\npod: {pod:#}", self.name);
        }
        self.get_pod(&name).await
    }

    /// The stored pod.
    pub async fn get_pod(&self, name: &str) -> Value {
        let pod = self.pods().get(name).await.unwrap_or_else(|e| panic!("get pod {}/{name}: {e}", self.name));
        serde_json::to_value(pod).expect("pod as JSON")
    }

    /// Dry-run creates `pod` until `accept` takes the result (`Ok(())`), at most [`SETTLE_TIMEOUT`]. The way to
    /// wait for a webhook configuration change to take effect (the API server picks it up within ~1 s).
    pub async fn wait_for_dry_run<F>(&self, what: &str, pod: &Value, accept: F)
    where
        F: Fn(&Result<Value, kube::Error>) -> Result<(), String>,
    {
        poll(what, SETTLE_TIMEOUT, || async {
            let result = self.dry_run_pod(pod).await;
            accept(&result)
        })
        .await
    }

    /// Waits until a dry-run of `pod` (whose ServiceAccount has `role`) comes back mutated with `role`.
    pub async fn wait_until_mutated(&self, pod: &Value, role: &str) {
        self.wait_for_dry_run(&format!("pods in {} to be mutated with {role}", self.name), pod, |result| match result {
            Ok(pod) if role_of(pod).as_deref() == Some(role) => Ok(()),
            Ok(pod) => Err(format!("admitted with AWS_ROLE_ARN {:?}", role_of(pod))),
            Err(e) => Err(format!("refused: {e}")),
        })
        .await
    }

    /// Waits until a dry-run of `pod` is refused because a webhook could not be called.
    pub async fn wait_until_refused(&self, pod: &Value) {
        self.wait_for_dry_run(&format!("pods in {} to be refused (webhook unreachable)", self.name), pod, |result| {
            match result {
                Err(e) if is_webhook_call_failure(e) => Ok(()),
                Err(e) => Err(format!("refused for another reason: {e}")),
                Ok(pod) => Err(format!("admitted (mutated: {})", is_mutated(pod))),
            }
        })
        .await
    }

    /// Waits until a dry-run of `pod` is admitted without our additions.
    pub async fn wait_until_unmutated(&self, pod: &Value) {
        self.wait_for_dry_run(&format!("pods in {} to be admitted unmutated", self.name), pod, |result| match result {
            Ok(pod) if !is_mutated(pod) => Ok(()),
            Ok(pod) => Err(format!("admitted mutated with {:?}", role_of(pod))),
            Err(e) => Err(format!("refused: {e}")),
        })
        .await
    }
}

/// A minimal pod: one container `app` (busybox), the given ServiceAccount. Tests add fields to the JSON.
pub fn pod(name: &str, service_account: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "serviceAccountName": service_account,
            "containers": [{"name": "app", "image": "busybox"}]
        }
    })
}

/// `pod` with another name (for loops and dry-run probes).
pub fn renamed(pod: &Value, name: &str) -> Value {
    let mut pod = pod.clone();
    pod["metadata"]["name"] = json!(name);
    pod
}

/// The API server's message for an API error, else the client error.
pub fn error_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// The API server refused the request because calling a webhook failed (failurePolicy: Fail).
pub fn is_webhook_call_failure(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.message.contains("failed calling webhook"))
}

/// The API server could not be reached at all (connection refused, reset, timed out): a client-side failure,
/// not an admission decision.
pub fn is_connection_failure(error: &kube::Error) -> bool {
    !matches!(error, kube::Error::Api(_))
}
