//! Shared helpers for the end-to-end tests (`tests/e2e_*.rs`) against the harness of `tests/e2e/cluster.sh`: a
//! real kube-apiserver v1.20.2 + etcd on loopback, no kubelet and no controller-manager.
//!
//! Use it from a test file with
//! ```ignore
//! #[path = "e2e_support/mod.rs"]
//! mod e2e_support;
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
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use k8s_openapi::api::core::v1::{Namespace as K8sNamespace, Pod, ServiceAccount};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

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
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .unwrap_or_else(|e| panic!("cannot read KUBECONFIG {}: {e}", self.kubeconfig.display()));
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap_or_else(|e| panic!("bad KUBECONFIG {}: {e}", self.kubeconfig.display()));
        // Nothing a test asks for takes long; a hung request should fail the test, not stall it for 5 minutes.
        config.read_timeout = Some(Duration::from_secs(60));
        config.connect_timeout = Some(Duration::from_secs(5));
        kube::Client::try_from(config).unwrap_or_else(|e| panic!("cannot build a kube client: {e}"))
    }
}

/// The repository root.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
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
    KUBECTL.get_or_init(|| {
        let output = Command::new(repo_root().join("tests/tools.sh"))
            .arg("kubectl")
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run tests/tools.sh kubectl: {e}"));
        assert!(output.status.success(), "tests/tools.sh kubectl failed: {}", output.status);
        let path = String::from_utf8_lossy(&output.stdout).lines().last().unwrap_or_default().trim().to_owned();
        assert!(Path::new(&path).is_file(), "tests/tools.sh kubectl printed {path:?}, not a file");
        PathBuf::from(path)
    })
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
            owned: Mutex::new(Vec::new()),
            cleaned: AtomicBool::new(false),
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }
}

/// Five lowercase base-36 characters, unique enough per run (process id, time, a counter).
pub fn random_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let mut x = (nanos as u64) ^ (u64::from(std::process::id()) << 32) ^ COUNTER.fetch_add(1, Ordering::Relaxed);
    // splitmix64 finaliser: spread the bits.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (0..5)
        .map(|i| {
            let digit = ((x >> (i * 6)) % 36) as u32;
            char::from_digit(digit, 36).unwrap_or('0')
        })
        .collect()
}

/// A free TCP port on `ip` (bound and released; another process could take it in between, which is unlikely).
pub fn free_port(ip: IpAddr) -> u16 {
    StdTcpListener::bind(SocketAddr::new(ip, 0))
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("no free port on {ip}: {e}"))
        .port()
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
    /// What to delete at the end: (resource, name), cluster-scoped; see [`cleanup`] for the order.
    owned: Mutex<Vec<(ApiResource, String)>>,
    cleaned: AtomicBool,
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
        self.owned.lock().unwrap_or_else(|e| e.into_inner()).push((resource, name.to_owned()));
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
        self.cleaned.store(true, Ordering::SeqCst);
        let owned = std::mem::take(&mut *self.owned.lock().unwrap_or_else(|e| e.into_inner()));
        cleanup(self.client(), owned).await;
    }
}

/// Deletes webhook configurations first (they may point at webhooks that are gone), namespaces last. Without a
/// controller-manager a deleted namespace stays Terminating (nothing empties it): harmless, and it keeps new
/// objects out.
async fn cleanup(client: kube::Client, mut owned: Vec<(ApiResource, String)>) {
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

impl Drop for Scope {
    fn drop(&mut self) {
        if self.cleaned.load(Ordering::SeqCst) {
            return;
        }
        let owned = std::mem::take(&mut *self.owned.lock().unwrap_or_else(|e| e.into_inner()));
        if owned.is_empty() {
            return;
        }
        // The test's runtime may be unwinding (and a current-thread runtime cannot be blocked on from inside):
        // clean up from a thread with its own runtime and client.
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            match runtime {
                Ok(runtime) => runtime.block_on(async {
                    let client = Harness::get().client().await;
                    cleanup(client, owned).await;
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

// ------------------------------------------------------------------------------------------------------------------
// Reading pods back
// ------------------------------------------------------------------------------------------------------------------

/// `initContainers` then `containers`.
pub fn all_containers(pod: &Value) -> Vec<&Value> {
    ["initContainers", "containers"]
        .iter()
        .filter_map(|key| pod["spec"][key].as_array())
        .flat_map(|list| list.iter())
        .collect()
}

pub fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    all_containers(pod)
        .into_iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name:?} in pod {pod:#}"))
}

/// Values of env var `name` in a container (a list, to see duplicates).
pub fn env_values<'a>(container: &'a Value, name: &str) -> Vec<&'a Value> {
    container["env"].as_array().into_iter().flatten().filter(|e| e["name"] == name).collect()
}

/// The single value of env var `name`, if set exactly once.
pub fn env_value(container: &Value, name: &str) -> Option<String> {
    match env_values(container, name).as_slice() {
        [one] => one["value"].as_str().map(str::to_owned),
        _ => None,
    }
}

pub fn volumes_named<'a>(pod: &'a Value, name: &str) -> Vec<&'a Value> {
    pod["spec"]["volumes"].as_array().into_iter().flatten().filter(|v| v["name"] == name).collect()
}

pub fn mounts_named<'a>(container: &'a Value, name: &str) -> Vec<&'a Value> {
    container["volumeMounts"].as_array().into_iter().flatten().filter(|m| m["name"] == name).collect()
}

/// `AWS_ROLE_ARN` of the first container.
pub fn role_of(pod: &Value) -> Option<String> {
    all_containers(pod).first().and_then(|c| env_value(c, "AWS_ROLE_ARN"))
}

/// Any trace of our mutation: the token volume, or AWS_ROLE_ARN / AWS_WEB_IDENTITY_TOKEN_FILE in a container.
pub fn is_mutated(pod: &Value) -> bool {
    !volumes_named(pod, TOKEN_VOLUME).is_empty()
        || all_containers(pod).iter().any(|c| {
            !env_values(c, "AWS_ROLE_ARN").is_empty()
                || !env_values(c, "AWS_WEB_IDENTITY_TOKEN_FILE").is_empty()
                || !mounts_named(c, TOKEN_VOLUME).is_empty()
        })
}

/// What a mutated pod must carry.
#[derive(Debug, Clone)]
pub struct Expected {
    pub role: String,
    pub audience: String,
    pub expiration: i64,
    /// `AWS_STS_REGIONAL_ENDPOINTS=regional`.
    pub regional_sts: bool,
}

impl Expected {
    /// The webhook's defaults for a ServiceAccount with just a role.
    pub fn role(role: &str) -> Self {
        Self {
            role: role.to_owned(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            expiration: DEFAULT_EXPIRATION,
            regional_sts: false,
        }
    }
}

/// Every container (init and regular) has the env vars and the mount exactly once, and the pod has exactly one
/// token volume with the expected audience and lifetime.
pub fn assert_mutated(pod: &Value, expected: &Expected) {
    let name = pod["metadata"]["name"].as_str().unwrap_or("?");
    let volumes = volumes_named(pod, TOKEN_VOLUME);
    assert_eq!(volumes.len(), 1, "pod {name}: expected exactly one {TOKEN_VOLUME} volume\n{pod:#}");
    let sources = volumes[0]["projected"]["sources"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        sources,
        vec![json!({"serviceAccountToken": {
            "audience": expected.audience, "expirationSeconds": expected.expiration, "path": "token"
        }})],
        "pod {name}: token volume sources\n{pod:#}"
    );
    let containers = all_containers(pod);
    assert!(!containers.is_empty(), "pod {name} has no containers");
    for c in containers {
        let cname = c["name"].as_str().unwrap_or("?");
        assert_eq!(
            env_value(c, "AWS_ROLE_ARN").as_deref(),
            Some(expected.role.as_str()),
            "pod {name}, container {cname}: AWS_ROLE_ARN (exactly once)\n{c:#}"
        );
        assert_eq!(
            env_value(c, "AWS_WEB_IDENTITY_TOKEN_FILE").as_deref(),
            Some(TOKEN_FILE),
            "pod {name}, container {cname}: AWS_WEB_IDENTITY_TOKEN_FILE (exactly once)\n{c:#}"
        );
        let regional = env_value(c, "AWS_STS_REGIONAL_ENDPOINTS");
        assert_eq!(
            regional.as_deref(),
            expected.regional_sts.then_some("regional"),
            "pod {name}, container {cname}: AWS_STS_REGIONAL_ENDPOINTS\n{c:#}"
        );
        let mounts = mounts_named(c, TOKEN_VOLUME);
        assert_eq!(
            mounts,
            vec![&json!({"name": TOKEN_VOLUME, "mountPath": TOKEN_MOUNT_PATH, "readOnly": true})],
            "pod {name}, container {cname}: the token mount (exactly once)\n{c:#}"
        );
    }
}

/// No trace of our mutation.
pub fn assert_unmutated(pod: &Value) {
    assert!(!is_mutated(pod), "pod {} was mutated but should not be:\n{pod:#}", pod["metadata"]["name"]);
}

/// The pod without what the webhook adds (token volume; its mounts; AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE,
/// AWS_STS_REGIONAL_ENDPOINTS; `env`/`volumeMounts` lists left empty by that). fsGroup is left alone: a test that
/// expects the fsGroup fix says so.
pub fn strip_irsa(pod: &Value) -> Value {
    let mut pod = pod.clone();
    if let Some(volumes) = pod["spec"]["volumes"].as_array_mut() {
        volumes.retain(|v| v["name"] != TOKEN_VOLUME);
    }
    for key in ["initContainers", "containers"] {
        for c in pod["spec"][key].as_array_mut().into_iter().flatten() {
            let Some(c) = c.as_object_mut() else { continue };
            for (list, drop) in [
                ("env", &["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_STS_REGIONAL_ENDPOINTS"][..]),
                ("volumeMounts", &[TOKEN_VOLUME][..]),
            ] {
                if let Some(items) = c.get_mut(list).and_then(Value::as_array_mut) {
                    items.retain(|item| !drop.iter().any(|d| item["name"] == *d));
                    if items.is_empty() {
                        c.remove(list);
                    }
                }
            }
        }
    }
    pod
}

/// Comparable form of a stored or dry-run pod: without what the API server sets per object (uid,
/// resourceVersion, creationTimestamp, managedFields, selfLink, status) and with the random suffix of the
/// ServiceAccount admission's `kube-api-access-xxxxx` volume replaced by `kube-api-access-*`.
pub fn normalize(pod: &Value) -> Value {
    let mut pod = pod.clone();
    if let Some(meta) = pod["metadata"].as_object_mut() {
        for key in ["uid", "resourceVersion", "creationTimestamp", "managedFields", "selfLink", "generation"] {
            meta.remove(key);
        }
    }
    if let Some(object) = pod.as_object_mut() {
        object.remove("status");
    }
    let rename = |v: &mut Value| {
        if v["name"].as_str().is_some_and(|n| n.starts_with("kube-api-access-")) {
            v["name"] = json!("kube-api-access-*");
        }
    };
    for v in pod["spec"]["volumes"].as_array_mut().into_iter().flatten() {
        rename(v);
    }
    for key in ["initContainers", "containers"] {
        for c in pod["spec"][key].as_array_mut().into_iter().flatten() {
            for m in c["volumeMounts"].as_array_mut().into_iter().flatten() {
                rename(m);
            }
        }
    }
    pod
}

/// Asserts two pods are equal; on failure shows the JSON Patch from `expected` to `actual`.
pub fn assert_same_pod(actual: &Value, expected: &Value, what: &str) {
    if actual != expected {
        let diff = json_patch::diff(expected, actual);
        panic!(
            "{what}: the pods differ; JSON Patch from expected to actual:\n{:#}\nexpected:\n{expected:#}\nactual:\n{actual:#}",
            serde_json::to_value(&diff).unwrap_or_default()
        );
    }
}

// ------------------------------------------------------------------------------------------------------------------
// Webhook configurations
// ------------------------------------------------------------------------------------------------------------------

pub fn webhook_config_resource() -> ApiResource {
    ApiResource {
        group: "admissionregistration.k8s.io".into(),
        version: "v1".into(),
        api_version: "admissionregistration.k8s.io/v1".into(),
        kind: "MutatingWebhookConfiguration".into(),
        plural: "mutatingwebhookconfigurations".into(),
    }
}

pub fn webhook_configs(client: kube::Client) -> Api<DynamicObject> {
    Api::all_with(client, &webhook_config_resource())
}

/// Where the API server sends the review.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// `clientConfig.url`, e.g. `https://127.0.0.1:PORT/mutate`.
    Url(String),
    /// `clientConfig.service`: the API server dials `<clusterIP>:<port>` and checks the cert for
    /// `<name>.<namespace>.svc`.
    Service { namespace: String, name: String, port: u16, path: String },
}

/// One webhook of a MutatingWebhookConfiguration: the chart's shape (pods CREATE, `sideEffects: None`,
/// admissionReviewVersions v1 + v1beta1, the skip-label objectSelector), plus the scope's namespaceSelector.
/// Defaults: `failurePolicy: Fail` (so a webhook that cannot be called fails the test loudly instead of leaving
/// pods silently unmutated), `reinvocationPolicy: IfNeeded`, `timeoutSeconds: 10`.
#[derive(Debug, Clone)]
pub struct WebhookSpec {
    pub name: String,
    pub endpoint: Endpoint,
    pub failure_policy: String,
    pub reinvocation_policy: String,
    pub timeout_seconds: u32,
    /// Namespaces excluded through `kubernetes.io/metadata.name NotIn [...]`, as the chart does.
    pub exclude_namespaces: Vec<String>,
    /// `caBundle`, base64; default: the harness CA.
    pub ca_bundle: String,
    /// More objectSelector expressions (after the skip-label one).
    pub object_selector: Vec<Value>,
}

impl WebhookSpec {
    pub fn new(name: &str, endpoint: Endpoint) -> Self {
        Self {
            name: name.to_owned(),
            endpoint,
            failure_policy: "Fail".into(),
            reinvocation_policy: "IfNeeded".into(),
            timeout_seconds: 10,
            exclude_namespaces: Vec::new(),
            ca_bundle: Harness::get().ca_bundle(),
            object_selector: Vec::new(),
        }
    }

    /// Our webhook, by URL.
    pub fn irsa(webhook: &WebhookProcess) -> Self {
        Self::new("irsa.e2e.irsa-webhook.test", Endpoint::Url(webhook.mutate_url()))
    }

    pub fn failure_policy(mut self, policy: &str) -> Self {
        self.failure_policy = policy.into();
        self
    }

    pub fn reinvocation_policy(mut self, policy: &str) -> Self {
        self.reinvocation_policy = policy.into();
        self
    }

    pub fn exclude_namespaces(mut self, names: &[&str]) -> Self {
        self.exclude_namespaces = names.iter().map(|n| n.to_string()).collect();
        self
    }

    pub fn ca_bundle(mut self, bundle: String) -> Self {
        self.ca_bundle = bundle;
        self
    }

    /// Pods labelled `key: value` are not sent to this webhook. Also a way to see that a configuration change
    /// took effect: put a new marker in it and wait until a pod with that label is admitted unmutated.
    pub fn skip_pods_labelled(mut self, key: &str, value: &str) -> Self {
        self.object_selector.push(json!({"key": key, "operator": "NotIn", "values": [value]}));
        self
    }

    fn to_json(&self, scope: &Scope) -> Value {
        let client_config = match &self.endpoint {
            Endpoint::Url(url) => json!({"url": url, "caBundle": self.ca_bundle}),
            Endpoint::Service { namespace, name, port, path } => json!({
                "service": {"namespace": namespace, "name": name, "port": port, "path": path},
                "caBundle": self.ca_bundle
            }),
        };
        let mut namespace_expressions = vec![scope.selector_expression()];
        if !self.exclude_namespaces.is_empty() {
            namespace_expressions
                .push(json!({"key": NAME_LABEL, "operator": "NotIn", "values": self.exclude_namespaces}));
        }
        json!({
            "name": self.name,
            "admissionReviewVersions": ["v1", "v1beta1"],
            "sideEffects": "None",
            "failurePolicy": self.failure_policy,
            "matchPolicy": "Equivalent",
            "timeoutSeconds": self.timeout_seconds,
            "reinvocationPolicy": self.reinvocation_policy,
            "clientConfig": client_config,
            "rules": [{
                "operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"],
                "scope": "Namespaced"
            }],
            "namespaceSelector": {"matchExpressions": namespace_expressions},
            "objectSelector": {"matchExpressions": std::iter::once(json!({"key": SKIP_LABEL, "operator": "DoesNotExist"}))
                .chain(self.object_selector.iter().cloned())
                .collect::<Vec<_>>()}
        })
    }
}

fn webhook_config_object(name: &str, scope: &Scope, webhooks: &[WebhookSpec]) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {SCOPE_LABEL: scope.id}},
        "webhooks": webhooks.iter().map(|w| w.to_json(scope)).collect::<Vec<_>>()
    }))
    .expect("webhook configuration object")
}

/// A registered MutatingWebhookConfiguration (deleted by [`Scope::cleanup`], or earlier by [`Registration::delete`]).
pub struct Registration {
    pub name: String,
    api: Api<DynamicObject>,
}

impl Registration {
    /// Replaces the webhooks (JSON merge patch: the list is replaced as a whole). Does not wait for the change
    /// to take effect.
    pub async fn update(&self, scope: &Scope, webhooks: &[WebhookSpec]) {
        let patch = json!({"webhooks": webhooks.iter().map(|w| w.to_json(scope)).collect::<Vec<_>>()});
        self.api
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap_or_else(|e| panic!("update MutatingWebhookConfiguration {}: {e}", self.name));
    }

    pub async fn delete(&self) {
        match self.api.delete(&self.name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => panic!("delete MutatingWebhookConfiguration {}: {e}", self.name),
        }
    }
}

// ------------------------------------------------------------------------------------------------------------------
// The webhook binary as a child process
// ------------------------------------------------------------------------------------------------------------------

/// How to run `irsa-webhook serve`.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// `--bind-address` (both ports). Default 127.0.0.1.
    pub bind: IpAddr,
    /// `--port`; default: a free port.
    pub port: Option<u16>,
    /// `--tls-cert`, `--tls-key`; default: the harness's webhook.crt/key (SANs 127.0.0.1, localhost).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `--kubeconfig`; default: the harness's (cluster admin).
    pub kubeconfig: Option<PathBuf>,
    /// Appended after the generated flags.
    pub args: Vec<String>,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        Self { bind: IpAddr::V4(Ipv4Addr::LOCALHOST), port: None, tls: None, kubeconfig: None, args: Vec::new() }
    }
}

impl WebhookOptions {
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
    pub fn bind(mut self, ip: IpAddr) -> Self {
        self.bind = ip;
        self
    }
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
    pub fn tls(mut self, cert: PathBuf, key: PathBuf) -> Self {
        self.tls = Some((cert, key));
        self
    }
    pub fn kubeconfig(mut self, path: PathBuf) -> Self {
        self.kubeconfig = Some(path);
        self
    }
}

/// A running `irsa-webhook serve`. Killed (SIGKILL) on drop; if the test is failing, its log is printed then.
pub struct WebhookProcess {
    child: Child,
    pub bind: IpAddr,
    pub port: u16,
    pub metrics_port: u16,
    pub options: WebhookOptions,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl WebhookProcess {
    /// Starts the binary and waits for its `/readyz` (the ServiceAccount cache synced); panics with its log if it
    /// exits or is not ready within [`SETTLE_TIMEOUT`].
    pub async fn start(options: WebhookOptions) -> Self {
        let mut process = Self::spawn(options);
        process.wait_ready().await;
        process
    }

    /// Starts the binary without waiting.
    pub fn spawn(options: WebhookOptions) -> Self {
        let harness = Harness::get();
        let dir = tempfile::tempdir().expect("temp dir");
        let log_path = dir.path().join("webhook.log");
        let log = std::fs::File::create(&log_path).expect("webhook log file");
        let port = options.port.unwrap_or_else(|| free_port(options.bind));
        let metrics_port = loop {
            let p = free_port(options.bind);
            if p != port {
                break p;
            }
        };
        let (cert, key) = options.tls.clone().unwrap_or_else(|| (harness.webhook_cert(), harness.webhook_key()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_irsa-webhook"));
        command
            .arg("serve")
            .args(["--bind-address", &options.bind.to_string()])
            .args(["--port", &port.to_string()])
            .args(["--metrics-port", &metrics_port.to_string()])
            .arg("--kubeconfig")
            .arg(options.kubeconfig.as_ref().unwrap_or(&harness.kubeconfig))
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .args(&options.args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log));
        // Every flag can come from IRSA_<FLAG>: keep the test runner's environment out of it.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("IRSA_") {
                command.env_remove(name);
            }
        }
        command.env_remove("RUST_LOG");
        let child =
            command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", env!("CARGO_BIN_EXE_irsa-webhook")));
        Self { child, bind: options.bind, port, metrics_port, options, log_path, _dir: dir }
    }

    /// `https://<bind>:<port>/mutate` (127.0.0.1 when bound to 0.0.0.0).
    pub fn mutate_url(&self) -> String {
        format!("https://{}/mutate", self.https_addr())
    }

    pub fn https_addr(&self) -> SocketAddr {
        let ip = if self.bind.is_unspecified() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { self.bind };
        SocketAddr::new(ip, self.port)
    }

    fn metrics_base(&self) -> String {
        let ip = if self.bind.is_unspecified() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { self.bind };
        format!("http://{}", SocketAddr::new(ip, self.metrics_port))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// HTTP status of `GET /readyz` (None: no answer).
    pub async fn readyz(&self) -> Option<u16> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().ok()?;
        let response = client.get(format!("{}/readyz", self.metrics_base())).send().await.ok()?;
        Some(response.status().as_u16())
    }

    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("irsa-webhook exited ({status}) before it was ready; log:\n{}", self.log());
            }
            if self.readyz().await == Some(200) {
                return;
            }
            if Instant::now() >= deadline {
                panic!("irsa-webhook not ready after {SETTLE_TIMEOUT:?}; log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.metrics_base());
        let response = reqwest::get(&url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        response.text().await.unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }

    /// One sample of `/metrics`: `series` is the name with its labels exactly as printed, e.g.
    /// `pod_identity_webhook_pod_count{method="sts_web_identity"}`.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        metric_value(&self.metrics().await, series)
    }

    /// Sends a signal (`TERM`, `INT`, ...) with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(status.success(), "kill -{signal} {} failed: {status}", self.pid());
    }

    /// Waits for the process to exit (panics after `timeout`, with the log).
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if Instant::now() >= deadline => {
                    panic!("irsa-webhook still running {timeout:?} later; log tail:\n{}", self.log_tail(30))
                }
                Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(e) => panic!("wait for irsa-webhook: {e}"),
            }
        }
    }

    /// SIGKILL, and wait for it to be gone (its ports are free afterwards).
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for WebhookProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(
                err,
                "--- irsa-webhook log (pid {}, {}:{}), last 80 lines ---\n{}\n--- end of log ---",
                self.child.id(),
                self.bind,
                self.port,
                self.log_tail(80)
            );
        }
    }
}

/// Parses one sample out of Prometheus/OpenMetrics text.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

/// Issues a serving certificate signed by the harness CA with `certs/gen-certs.sh --reuse-ca` (ECDSA P-256;
/// SANs `<service>`, `<service>.<namespace>`, `<service>.<namespace>.svc`, `....svc.cluster.local` and `ips`).
/// Returns (cert, key) paths inside `out` (which also receives a copy of the CA).
pub fn issue_certificate(out: &Path, service: &str, namespace: &str, ips: &[IpAddr]) -> (PathBuf, PathBuf) {
    let harness = Harness::get();
    std::fs::create_dir_all(out).expect("certificate dir");
    std::fs::copy(harness.ca_cert(), out.join("ca.crt")).expect("copy ca.crt");
    std::fs::copy(harness.ca_key(), out.join("ca.key")).expect("copy ca.key");
    let mut command = Command::new(repo_root().join("certs/gen-certs.sh"));
    command.args(["--service", service, "--namespace", namespace, "--reuse-ca", "--days", "2", "--out"]).arg(out);
    for ip in ips {
        command.args(["--ip", &ip.to_string()]);
    }
    let output = command.output().unwrap_or_else(|e| panic!("cannot run certs/gen-certs.sh: {e}"));
    assert!(
        output.status.success(),
        "certs/gen-certs.sh failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    (out.join("tls.crt"), out.join("tls.key"))
}

/// DER of the first certificate in a PEM file.
pub fn first_cert_der(pem_path: &Path) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    let pem = std::fs::read(pem_path).unwrap_or_else(|e| panic!("read {}: {e}", pem_path.display()));
    rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
        .next()
        .unwrap_or_else(|| panic!("no certificate in {}", pem_path.display()))
        .unwrap_or_else(|e| panic!("bad certificate in {}: {e}", pem_path.display()))
        .as_ref()
        .to_vec()
}

/// The leaf certificate (DER) `addr` serves on a new TLS connection verified against the harness CA, with SNI
/// `server_name`.
pub async fn served_certificate(addr: SocketAddr, server_name: &str) -> Result<Vec<u8>, String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&Harness::get().ca_pem()) {
        roots.add(cert.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls_pki_types::ServerName::try_from(server_name.to_owned()).map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
    let tls = tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
        .await
        .map_err(|_| format!("TLS handshake with {addr} timed out"))?
        .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
    let (_, session) = tls.get_ref();
    let leaf = session.peer_certificates().and_then(|c| c.first()).ok_or("no peer certificate")?;
    Ok(leaf.as_ref().to_vec())
}

// ------------------------------------------------------------------------------------------------------------------
// A second webhook, in the test process
// ------------------------------------------------------------------------------------------------------------------

type Responder = dyn Fn(&Value) -> Vec<Value> + Send + Sync;

/// A tiny mutating webhook served by the test process over TLS (the harness's webhook.crt, so the harness CA is
/// its caBundle). For each review it records the request and answers `allowed` with the JSON Patch operations
/// `respond(request.object)` returns (none: no patch).
pub struct TestWebhook {
    pub port: u16,
    received: Arc<Mutex<Vec<Value>>>,
    versions: Arc<Mutex<Vec<axum::http::Version>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestWebhook {
    pub async fn start<F>(respond: F) -> Self
    where
        F: Fn(&Value) -> Vec<Value> + Send + Sync + 'static,
    {
        use rustls_pki_types::pem::PemObject;
        let harness = Harness::get();
        let cert_pem = std::fs::read(harness.webhook_cert()).expect("read webhook.crt");
        let key_pem = std::fs::read(harness.webhook_key()).expect("read webhook.key");
        let chain = rustls_pki_types::CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .expect("webhook.crt");
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(&key_pem).expect("webhook.key");
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .expect("TLS server config");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let received = Arc::new(Mutex::new(Vec::new()));
        let versions = Arc::new(Mutex::new(Vec::new()));
        let respond: Arc<Responder> = Arc::new(respond);
        let router = axum::Router::new().route(
            "/mutate",
            axum::routing::post({
                let (received, versions) = (Arc::clone(&received), Arc::clone(&versions));
                move |version: axum::http::Version, axum::Json(review): axum::Json<Value>| {
                    let (received, respond) = (Arc::clone(&received), Arc::clone(&respond));
                    versions.lock().unwrap_or_else(|e| e.into_inner()).push(version);
                    async move { axum::Json(answer(&review, &received, respond.as_ref())) }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind test webhook");
        let port = listener.local_addr().expect("test webhook address").port();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let (acceptor, router) = (acceptor.clone(), router.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = hyper_util::service::TowerToHyperService::new(router);
                    let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self { port, received, versions, task }
    }

    pub fn endpoint(&self) -> Endpoint {
        Endpoint::Url(format!("https://127.0.0.1:{}/mutate", self.port))
    }

    /// The `request` of every review received so far, in order.
    pub fn received(&self) -> Vec<Value> {
        self.received.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The HTTP version of every review received so far (the API server offers only HTTP/1.1 to webhooks).
    pub fn http_versions(&self) -> Vec<axum::http::Version> {
        self.versions.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn answer(review: &Value, received: &Mutex<Vec<Value>>, respond: &Responder) -> Value {
    let request = &review["request"];
    received.lock().unwrap_or_else(|e| e.into_inner()).push(request.clone());
    let mut response = json!({"uid": request["uid"], "allowed": true});
    let patch = respond(&request["object"]);
    if !patch.is_empty() {
        response["patchType"] = json!("JSONPatch");
        response["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(Value::Array(patch).to_string()));
    }
    json!({"apiVersion": review["apiVersion"], "kind": "AdmissionReview", "response": response})
}

impl Drop for TestWebhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ------------------------------------------------------------------------------------------------------------------
// Pod creations under load
// ------------------------------------------------------------------------------------------------------------------

/// One pod creation of a [`Load`].
#[derive(Debug)]
pub struct Attempt {
    pub name: String,
    pub started: Instant,
    pub finished: Instant,
    /// The stored pod, or the error.
    pub result: Result<Value, kube::Error>,
}

impl Attempt {
    pub fn describe(&self, origin: Instant) -> String {
        let outcome = match &self.result {
            Ok(pod) => format!("created, mutated: {}", is_mutated(pod)),
            Err(e) => format!("failed: {}", error_message(e)),
        };
        format!(
            "{} [{:.3} s .. {:.3} s after start]: {outcome}",
            self.name,
            self.started.duration_since(origin).as_secs_f64(),
            self.finished.duration_since(origin).as_secs_f64()
        )
    }
}

/// `workers` tasks creating pods from `template` (renamed `<prefix>-<n>`) back to back until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    attempts: Arc<Mutex<Vec<Attempt>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub started: Instant,
}

impl Load {
    pub fn start(namespace: &Namespace, template: &Value, prefix: &str, workers: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let counter = Arc::new(AtomicU64::new(0));
        let tasks = (0..workers)
            .map(|_| {
                let (stop, attempts, counter) = (Arc::clone(&stop), Arc::clone(&attempts), Arc::clone(&counter));
                let (namespace, template, prefix) = (namespace.clone(), template.clone(), prefix.to_owned());
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let name = format!("{prefix}-{}", counter.fetch_add(1, Ordering::SeqCst));
                        let started = Instant::now();
                        let result = namespace.create_pod(&renamed(&template, &name)).await;
                        let failed_to_connect = matches!(&result, Err(e) if is_connection_failure(e));
                        attempts.lock().unwrap_or_else(|e| e.into_inner()).push(Attempt {
                            name,
                            started,
                            finished: Instant::now(),
                            result,
                        });
                        if failed_to_connect {
                            // The API server is away (restart): don't spin.
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                })
            })
            .collect();
        Self { stop, attempts, tasks, started: Instant::now() }
    }

    /// Attempts finished so far.
    pub fn finished(&self) -> usize {
        self.attempts.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Attempts that started after `since` and finished so far.
    pub fn finished_since(&self, since: Instant) -> usize {
        self.attempts.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|a| a.started >= since).count()
    }

    /// Waits until `n` attempts that started after `since` have finished.
    pub async fn wait_for(&self, n: usize, since: Instant, timeout: Duration) {
        poll(&format!("{n} pod creations"), timeout, || async {
            let done = self.finished_since(since);
            if done >= n {
                Ok(())
            } else {
                Err(format!("{done} finished"))
            }
        })
        .await
    }

    /// Stops the workers (each finishes its current attempt) and returns every attempt, in start order.
    pub async fn stop(self) -> Vec<Attempt> {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.expect("load worker panicked");
        }
        let mut attempts = std::mem::take(&mut *self.attempts.lock().unwrap_or_else(|e| e.into_inner()));
        attempts.sort_by_key(|a| a.started);
        attempts
    }
}

// ------------------------------------------------------------------------------------------------------------------
// Tokens
// ------------------------------------------------------------------------------------------------------------------

/// The claims (payload) of a JWT, without verifying it.
pub fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap_or_else(|| panic!("not a JWT: {token:?}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .unwrap_or_else(|e| panic!("JWT payload is not base64url: {e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("JWT payload is not JSON: {e}"))
}

/// Verifies an RS256 JWT against the harness's service-account public key (`sa.pub`, what the issuer's JWKS
/// publishes): what AWS STS checks before anything else.
pub fn verify_service_account_token(token: &str) -> Result<(), String> {
    let header: Value = {
        let part = token.split('.').next().ok_or("no header")?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())?
    };
    if header["alg"] != "RS256" {
        return Err(format!("alg is {}, not RS256", header["alg"]));
    }
    let (signed, signature) = token.rsplit_once('.').ok_or("no signature")?;
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature).map_err(|e| e.to_string())?;
    let pem = std::fs::read(Harness::get().pki.join("sa.pub")).map_err(|e| format!("read sa.pub: {e}"))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).map_err(|e| format!("sa.pub: {e}"))?;
    let (_, spki) =
        <x509_parser::x509::SubjectPublicKeyInfo as x509_parser::prelude::FromDer<_>>::from_der(&pem.contents)
            .map_err(|e| format!("sa.pub is not a public key: {e}"))?;
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        spki.subject_public_key.data.as_ref(),
    );
    key.verify(signed.as_bytes(), &signature).map_err(|_| "signature does not verify with sa.pub".to_owned())
}
