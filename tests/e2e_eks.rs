//! End-to-end, issue 15: irsa-webhook on EKS, next to the managed pod identity webhook, against a real
//! kube-apiserver (v1.20.2, `tests/e2e/cluster.sh`). Two MutatingWebhookConfigurations act on every pod:
//!
//! - **the managed webhook**, registered exactly as EKS registers it (configuration `pod-identity-webhook`,
//!   webhook `iam-for-pods.amazonaws.com`, `reinvocationPolicy: IfNeeded`). It is a stand-in served by the test
//!   process that applies the reference's own patch logic (`pkg/handler/handler.go` of
//!   amazon-eks-pod-identity-webhook, ported below in [`reference_patch`]): it decodes the pod into typed structs,
//!   adds env and mounts per container exactly as `addEnvToContainer` does (a container that already has a role
//!   variable, a region and the STS variable is skipped whole), then replaces the whole `containers` and
//!   `initContainers` arrays with their re-serialized form and **prepends** its volume. Its ServiceAccounts come
//!   from a cache the test refreshes ([`ManagedStandIn::sync`]), as the reference reads an informer: that makes the
//!   reference's cache lag reproducible. It runs with `--aws-default-region=us-west-2`, as EKS's does. On the 12
//!   web-identity cases of the reference's own test data its patch gives exactly the reference's pod
//!   (`stand_in_matches_the_reference_fixtures`).
//!   Why not this binary with the fsGroup fix off under the reference's names: that would test our surgical patches
//!   twice and never the reference's whole-array replacement, prepended volume and skip rules.
//! - **ours**, the `irsa-webhook serve` binary, under a configuration name that sorts before `pod-identity-webhook`
//!   (ours is called first) or after it (the managed one first) — the API server calls webhook configurations in
//!   the order of their names — also with `reinvocationPolicy: IfNeeded`, in `--inject=fs-group-only` and in full
//!   mode with its defaults (a user who installs the chart with defaults on EKS).
//!
//! For each mode and order, the **stored** pods — non-root with an init container and a sidecar, root, one with a
//! skipped container, and pods created before, while and after a ServiceAccount got its role — are checked for
//! exactly one token volume, one token mount and one `AWS_ROLE_ARN` / `AWS_WEB_IDENTITY_TOKEN_FILE` per container,
//! nothing duplicated at all, and the fsGroup fix where it applies; and printed (their relevant parts, with which
//! webhook saw what), so run with `--nocapture` to read them:
//!
//! ```text
//! tests/e2e/cluster.sh start && eval "$(tests/e2e/cluster.sh env)"
//! cargo test --features e2e --test e2e_eks -- --test-threads=1 --nocapture
//! ```
//!
//! The four tests share the cluster-wide name `pod-identity-webhook`, so they take a lock and run one at a time
//! whatever `--test-threads` says; a configuration of that name left behind by a crashed run (it carries the
//! scope label) is deleted first, one that these tests did not make is never touched (the test fails instead).

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod as TypedPod, VolumeMount};
use kube::api::{DeleteParams, ListParams};
use serde_json::{json, Value};
use support::e2e::*;

// ------------------------------------------------------------------------------------------------------------------
// Names and settings
// ------------------------------------------------------------------------------------------------------------------

/// EKS's registration of the managed webhook.
const MANAGED_CONFIG: &str = "pod-identity-webhook";
const MANAGED_WEBHOOK: &str = "iam-for-pods.amazonaws.com";
/// The chart's default webhook name.
const OUR_WEBHOOK: &str = "irsa-webhook.amazonaws.com";
/// EKS runs the managed webhook with the cluster's region.
const MANAGED_REGION: &str = "us-west-2";

const ROLE_PREFIX: &str = "eks.amazonaws.com";
const SKIP_CONTAINERS: &str = "eks.amazonaws.com/skip-containers";
const POD_TOKEN_EXPIRATION: &str = "eks.amazonaws.com/token-expiration";
/// The reference's bounds and default (pkg/constants.go).
const MIN_TOKEN_EXPIRATION: i64 = 600;

fn role(name: &str) -> String {
    format!("arn:aws:iam::111122223333:role/{name}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    FsGroupOnly,
    /// The binary's (and the chart's) defaults.
    Full,
}

impl Mode {
    fn args(self) -> Vec<String> {
        match self {
            Mode::FsGroupOnly => vec!["--inject=fs-group-only".to_owned()],
            Mode::Full => Vec::new(),
        }
    }
    fn label(self) -> &'static str {
        match self {
            Mode::FsGroupOnly => "--inject=fs-group-only",
            Mode::Full => "full (defaults)",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    ManagedFirst,
    OursFirst,
}

// ------------------------------------------------------------------------------------------------------------------
// The managed webhook's stand-in: the reference's patch logic
// ------------------------------------------------------------------------------------------------------------------

/// What the reference's ServiceAccount cache holds for one ServiceAccount (`pkg/cache/cache.go`, `addSA`), with its
/// defaults: audience `sts.amazonaws.com`, regional STS off, 86400 s.
#[derive(Debug, Clone)]
struct CacheEntry {
    role_arn: String,
    audience: String,
    regional_sts: bool,
    token_expiration: i64,
}

impl CacheEntry {
    fn from_annotations(annotations: &BTreeMap<String, String>) -> Self {
        let get = |key: &str| annotations.get(&format!("{ROLE_PREFIX}/{key}"));
        Self {
            role_arn: get("role-arn").cloned().unwrap_or_default(),
            audience: get("audience").cloned().unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned()),
            regional_sts: get("sts-regional-endpoints").and_then(|v| go_parse_bool(v)).unwrap_or(false),
            token_expiration: get("token-expiration")
                .and_then(|v| v.parse::<i64>().ok())
                .map_or(DEFAULT_EXPIRATION, |v| v.max(MIN_TOKEN_EXPIRATION)),
        }
    }
}

/// Go's `strconv.ParseBool`.
fn go_parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

type Cache = Arc<Mutex<HashMap<String, CacheEntry>>>;

/// `Modifier.MutatePod` + `getPodSpecPatch` for a web-identity ServiceAccount (the stand-in knows no
/// container-credentials config, as an EKS cluster without Pod Identity associations). `cache` is keyed by
/// ServiceAccount name: one stand-in serves one namespace (the request's object carries no namespace on 1.20).
fn reference_patch(object: &Value, cache: &Cache, region: Option<&str>) -> Vec<Value> {
    let Ok(pod) = serde_json::from_value::<TypedPod>(object.clone()) else {
        return Vec::new();
    };
    let Some(spec) = pod.spec else { return Vec::new() };
    let sa = spec.service_account_name.clone().unwrap_or_default();
    let entry = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&sa).cloned();
    // Not in the cache, or no role: "Pod was not mutated", no patch.
    let Some(entry) = entry.filter(|e| !e.role_arn.is_empty()) else {
        return Vec::new();
    };
    let annotations = pod.metadata.annotations.unwrap_or_default();
    // parsePodAnnotations: the pod's token-expiration wins; the skip list is CSV (not trimmed).
    let token_expiration = annotations
        .get(POD_TOKEN_EXPIRATION)
        .and_then(|v| v.parse::<i64>().ok())
        .map_or(entry.token_expiration, |v| v.max(MIN_TOKEN_EXPIRATION));
    let skipped: BTreeSet<&str> = annotations.get(SKIP_CONTAINERS).map(|v| v.split(',').collect()).unwrap_or_default();

    let node_selector = spec.node_selector.clone().unwrap_or_default();
    let windows = ["beta.kubernetes.io/os", "kubernetes.io/os"]
        .iter()
        .any(|key| node_selector.get(*key).map(String::as_str) == Some("windows"));
    let token_file = if windows { format!("C:{}", TOKEN_FILE.replace('/', "\\")) } else { TOKEN_FILE.to_owned() };

    let patch_containers = |list: &[Container]| -> Vec<Value> {
        list.iter()
            .map(|c| {
                let mut c = c.clone();
                if !skipped.contains(c.name.as_str()) {
                    add_env_to_container(&mut c, &token_file, &entry, region);
                }
                // Go serializes `resources` even when empty.
                let mut value = serde_json::to_value(&c).unwrap_or_default();
                if value.get("resources").is_none() {
                    value["resources"] = json!({});
                }
                value
            })
            .collect()
    };
    let containers = patch_containers(&spec.containers);
    let init_containers = patch_containers(spec.init_containers.as_deref().unwrap_or_default());

    let volume = json!({"name": TOKEN_VOLUME, "projected": {"sources": [{"serviceAccountToken": {
        "audience": entry.audience, "expirationSeconds": token_expiration, "path": "token"}}]}});
    let mut patch = Vec::new();
    let volumes = spec.volumes.as_deref();
    if !volumes.unwrap_or_default().iter().any(|v| v.name == TOKEN_VOLUME) {
        patch.push(match volumes {
            None => json!({"op": "add", "path": "/spec/volumes", "value": [volume]}),
            Some(_) => json!({"op": "add", "path": "/spec/volumes/0", "value": volume}),
        });
    }
    // Always, changed or not: the whole arrays.
    patch.push(json!({"op": "add", "path": "/spec/containers", "value": containers}));
    if !init_containers.is_empty() {
        patch.push(json!({"op": "add", "path": "/spec/initContainers", "value": init_containers}));
    }
    patch
}

/// `Modifier.addEnvToContainer` in web-identity mode; `region` is `--aws-default-region`.
fn add_env_to_container(container: &mut Container, token_file: &str, entry: &CacheEntry, region: Option<&str>) {
    let env = container.env.get_or_insert_with(Vec::new);
    let has = |names: &[&str]| env.iter().any(|e| names.contains(&e.name.as_str()));
    let web_identity = has(&["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"]);
    let has_region = has(&["AWS_REGION", "AWS_DEFAULT_REGION"]);
    let sts = has(&["AWS_STS_REGIONAL_ENDPOINTS"]);
    if web_identity && has_region && sts {
        // "Container has necessary env variables already present": no mount either.
        return;
    }
    let var =
        |name: &str, value: &str| EnvVar { name: name.to_owned(), value: Some(value.to_owned()), value_from: None };
    if !sts && entry.regional_sts {
        env.push(var("AWS_STS_REGIONAL_ENDPOINTS", "regional"));
    }
    if let Some(value) = region.filter(|_| !has_region) {
        env.push(var("AWS_DEFAULT_REGION", value));
        env.push(var("AWS_REGION", value));
    }
    if !web_identity {
        env.push(var("AWS_ROLE_ARN", &entry.role_arn));
        env.push(var("AWS_WEB_IDENTITY_TOKEN_FILE", token_file));
    }
    let mounts = container.volume_mounts.get_or_insert_with(Vec::new);
    if !mounts.iter().any(|m| m.name == TOKEN_VOLUME) {
        mounts.push(VolumeMount {
            name: TOKEN_VOLUME.to_owned(),
            read_only: Some(true),
            mount_path: TOKEN_MOUNT_PATH.to_owned(),
            ..VolumeMount::default()
        });
    }
}

/// The stand-in, served from the test process.
struct ManagedStandIn {
    webhook: TestWebhook,
    cache: Cache,
}

impl ManagedStandIn {
    async fn start() -> Self {
        let cache: Cache = Arc::default();
        let webhook = TestWebhook::start({
            let cache = Arc::clone(&cache);
            move |object| reference_patch(object, &cache, Some(MANAGED_REGION))
        })
        .await;
        Self { webhook, cache }
    }

    /// The reference's informer delivers the namespace's ServiceAccounts as they are now.
    async fn sync(&self, ns: &Namespace) {
        let list = ns
            .service_accounts()
            .list(&ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("list ServiceAccounts in {}: {e}", ns.name));
        let entries = list
            .items
            .into_iter()
            .filter_map(|sa| {
                let annotations = sa.metadata.annotations.unwrap_or_default();
                Some((sa.metadata.name?, CacheEntry::from_annotations(&annotations)))
            })
            .collect();
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = entries;
    }

    fn spec(&self) -> WebhookSpec {
        WebhookSpec::new(MANAGED_WEBHOOK, self.webhook.endpoint()).reinvocation_policy("IfNeeded")
    }

    /// The pod as the stand-in received it, once per call (dry runs excluded).
    fn calls_for(&self, pod: &str) -> Vec<Value> {
        self.webhook
            .received()
            .into_iter()
            .filter(|r| r["object"]["metadata"]["name"] == pod && r["dryRun"] != true)
            .map(|r| r["object"].clone())
            .collect()
    }
}

// ------------------------------------------------------------------------------------------------------------------
// The setup of one mode and order
// ------------------------------------------------------------------------------------------------------------------

/// Serializes the tests of this file: they all need the cluster-wide name `pod-identity-webhook`.
fn name_lock() -> &'static tokio::sync::Mutex<()> {
    static LOCK: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(()))
}

/// Deletes a `pod-identity-webhook` configuration left by a crashed run of these tests; refuses to touch one they
/// did not make.
async fn free_managed_name(cluster: &Cluster) {
    let api = webhook_configs(cluster.client.clone());
    let Some(existing) = api.get_opt(MANAGED_CONFIG).await.unwrap_or_else(|e| panic!("get {MANAGED_CONFIG}: {e}"))
    else {
        return;
    };
    let labels = existing.metadata.labels.unwrap_or_default();
    assert!(
        labels.contains_key(SCOPE_LABEL),
        "MutatingWebhookConfiguration {MANAGED_CONFIG} exists and was not made by these tests: they need its name; \
         run them against the harness cluster"
    );
    match api.delete(MANAGED_CONFIG, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        Err(e) => panic!("delete the leftover {MANAGED_CONFIG}: {e}"),
    }
}

struct Eks {
    mode: Mode,
    order: Order,
    ns: Namespace,
    managed: ManagedStandIn,
    /// Both configuration names, in the order the API server calls them.
    called_in_order: [String; 2],
    // Dropped in reverse order: our process, then the scope (which deletes the configurations).
    ours: WebhookProcess,
    scope: Scope,
}

/// ServiceAccount with a role from the start.
const APP_SA: &str = "app";
/// ServiceAccount that gets its role during the test.
const LATE_SA: &str = "late";

async fn setup(mode: Mode, order: Order) -> Eks {
    let cluster = connect().await;
    let tag = match (mode, order) {
        (Mode::FsGroupOnly, Order::ManagedFirst) => "eks-fsg-mf",
        (Mode::FsGroupOnly, Order::OursFirst) => "eks-fsg-of",
        (Mode::Full, Order::ManagedFirst) => "eks-full-mf",
        (Mode::Full, Order::OursFirst) => "eks-full-of",
    };
    free_managed_name(&cluster).await;
    let scope = cluster.scope(tag);
    let ns = scope.namespace("app").await;
    ns.service_account_with_role(APP_SA, &role(APP_SA)).await;
    ns.service_account(LATE_SA, &[]).await;

    let managed = ManagedStandIn::start().await;
    managed.sync(&ns).await;
    let ours = WebhookProcess::start(WebhookOptions::default().args(mode.args())).await;
    let our_spec = WebhookSpec::new(OUR_WEBHOOK, Endpoint::Url(ours.mutate_url())).reinvocation_policy("IfNeeded");

    let our_config = match order {
        Order::OursFirst => scope.name("irsa"),
        Order::ManagedFirst => format!("zz-{}", scope.name("irsa")),
    };
    let called_in_order = match order {
        Order::OursFirst => [our_config.clone(), MANAGED_CONFIG.to_owned()],
        Order::ManagedFirst => [MANAGED_CONFIG.to_owned(), our_config.clone()],
    };
    assert!(
        called_in_order[0] < called_in_order[1],
        "configuration names do not sort as intended: {called_in_order:?}"
    );
    scope.register_as(MANAGED_CONFIG, &[managed.spec()]).await;
    scope.register_as(&our_config, &[our_spec]).await;

    // Both in effect: AWS_REGION only comes from the stand-in, fsGroup only from us.
    let mut probe = pod("probe", APP_SA);
    probe["spec"]["securityContext"] = json!({"runAsUser": 1000});
    ns.wait_for_dry_run("both webhooks to act on pods", &probe, |result| match result {
        Ok(pod) => {
            let region = all_containers(pod).first().and_then(|c| env_value(c, "AWS_REGION"));
            let fs_group = &pod["spec"]["securityContext"]["fsGroup"];
            if region.is_some() && !fs_group.is_null() {
                Ok(())
            } else {
                Err(format!("AWS_REGION {region:?}, fsGroup {fs_group}"))
            }
        }
        Err(e) => Err(format!("refused: {e}")),
    })
    .await;
    Eks { mode, order, ns, managed, called_in_order, ours, scope }
}

// ------------------------------------------------------------------------------------------------------------------
// What a stored pod must carry
// ------------------------------------------------------------------------------------------------------------------

/// Which credentials a container ends up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credentials {
    /// Role, token file and mount (once each), and the managed webhook's region.
    WithRegion,
    /// Role, token file and mount, no region: only we injected (the managed webhook's cache had no role yet).
    OursOnly,
    None,
}

/// Everything in one place: the token volume, each container's credentials, nothing duplicated anywhere, and the
/// pod's securityContext. Returns the problems (empty: as expected).
fn check(pod: &Value, role: &str, credentials: &BTreeMap<&str, Credentials>, security_context: Value) -> Vec<String> {
    let mut problems = Vec::new();
    let name = pod["metadata"]["name"].as_str().unwrap_or("?");
    let any_token = credentials.values().any(|c| *c != Credentials::None);
    let volumes = volumes_named(pod, TOKEN_VOLUME);
    let want_volumes = usize::from(any_token);
    if volumes.len() != want_volumes {
        problems.push(format!("{name}: {} {TOKEN_VOLUME} volumes, want {want_volumes}", volumes.len()));
    }
    if let [volume] = volumes.as_slice() {
        let want = json!([{"serviceAccountToken": {"audience": DEFAULT_AUDIENCE, "expirationSeconds": DEFAULT_EXPIRATION, "path": "token"}}]);
        if volume["projected"]["sources"] != want {
            problems.push(format!("{name}: token volume sources {}", volume["projected"]["sources"]));
        }
    }
    problems.extend(duplicates(pod).into_iter().map(|d| format!("{name}: duplicate {d}")));
    let containers = all_containers(pod);
    if containers.len() != credentials.len() {
        problems.push(format!("{name}: {} containers, expected {}", containers.len(), credentials.len()));
    }
    for c in containers {
        let cname = c["name"].as_str().unwrap_or("?");
        let Some(want) = credentials.get(cname) else {
            problems.push(format!("{name}: unexpected container {cname}"));
            continue;
        };
        let var = |n: &str| {
            env_values(c, n).iter().map(|v| v["value"].as_str().unwrap_or("?").to_owned()).collect::<Vec<_>>()
        };
        let one = |v: &str| vec![v.to_owned()];
        let mounts = mounts_named(c, TOKEN_VOLUME);
        let token_mount = json!({"name": TOKEN_VOLUME, "mountPath": TOKEN_MOUNT_PATH, "readOnly": true});
        let (want_role, want_file, want_region, want_mounts) = match want {
            Credentials::WithRegion => (one(role), one(TOKEN_FILE), one(MANAGED_REGION), vec![&token_mount]),
            Credentials::OursOnly => (one(role), one(TOKEN_FILE), vec![], vec![&token_mount]),
            Credentials::None => (vec![], vec![], vec![], vec![]),
        };
        for (var_name, got, want) in [
            ("AWS_ROLE_ARN", var("AWS_ROLE_ARN"), want_role),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", var("AWS_WEB_IDENTITY_TOKEN_FILE"), want_file),
            ("AWS_REGION", var("AWS_REGION"), want_region.clone()),
            ("AWS_DEFAULT_REGION", var("AWS_DEFAULT_REGION"), want_region),
            ("AWS_STS_REGIONAL_ENDPOINTS", var("AWS_STS_REGIONAL_ENDPOINTS"), vec![]),
        ] {
            if got != want {
                problems.push(format!("{name}/{cname}: {var_name} {got:?}, want {want:?}"));
            }
        }
        if mounts != want_mounts {
            problems.push(format!("{name}/{cname}: token mounts {mounts:?}, want {want_mounts:?}"));
        }
    }
    if pod["spec"]["securityContext"] != security_context {
        problems.push(format!("{name}: securityContext {}, want {security_context}", pod["spec"]["securityContext"]));
    }
    problems
}

/// Volume names, and per container env names and mount paths, that occur more than once.
fn duplicates(pod: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut repeated = |what: String, items: Vec<&str>| {
        let mut seen = BTreeSet::new();
        for item in items {
            if !seen.insert(item) {
                out.push(format!("{what} {item}"));
            }
        }
    };
    let strings = |list: &Value, key: &str| -> Vec<String> {
        list.as_array().into_iter().flatten().filter_map(|i| i[key].as_str().map(str::to_owned)).collect()
    };
    let volumes = strings(&pod["spec"]["volumes"], "name");
    repeated("volume".into(), volumes.iter().map(String::as_str).collect());
    for c in all_containers(pod) {
        let cname = c["name"].as_str().unwrap_or("?");
        let env = strings(&c["env"], "name");
        repeated(format!("{cname} env"), env.iter().map(String::as_str).collect());
        let paths = strings(&c["volumeMounts"], "mountPath");
        repeated(format!("{cname} mountPath"), paths.iter().map(|p| p.trim_end_matches('/')).collect());
    }
    out
}

// ------------------------------------------------------------------------------------------------------------------
// Showing the stored pods
// ------------------------------------------------------------------------------------------------------------------

/// The parts of a stored pod the two webhooks touch, in stored order.
fn relevant_parts(pod: &Value) -> Value {
    let containers: Vec<Value> = all_containers(pod)
        .into_iter()
        .map(|c| {
            let env: Vec<String> = c["env"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    format!("{}={}", e["name"].as_str().unwrap_or("?"), e["value"].as_str().unwrap_or("<valueFrom>"))
                })
                .collect();
            let mounts: Vec<String> = c["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| format!("{} -> {}", m["name"].as_str().unwrap_or("?"), m["mountPath"].as_str().unwrap_or("?")))
                .collect();
            json!({"name": c["name"], "env": env, "volumeMounts": mounts})
        })
        .collect();
    let volumes: Vec<Value> = pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let token = v["projected"]["sources"]
                .as_array()
                .into_iter()
                .flatten()
                .find_map(|s| s.get("serviceAccountToken"))
                .filter(|_| v["name"] == TOKEN_VOLUME);
            match token {
                Some(token) => json!({"name": v["name"], "serviceAccountToken": token}),
                None => json!(v["name"]),
            }
        })
        .collect();
    json!({
        "pod": pod["metadata"]["name"],
        "securityContext": pod["spec"]["securityContext"],
        "volumes": volumes,
        "containers (init first)": containers,
    })
}

impl Eks {
    fn title(&self) -> String {
        let first = match self.order {
            Order::ManagedFirst => "the managed webhook first",
            Order::OursFirst => "ours first",
        };
        format!(
            "ours in {} mode, {first}: configurations called as {} then {}, both reinvocationPolicy IfNeeded",
            self.mode.label(),
            self.called_in_order[0],
            self.called_in_order[1]
        )
    }

    /// Who saw the pod when: the stand-in's calls (what it found on the pod) and ours (our log's admission lines).
    fn calls(&self, pod: &str) -> Value {
        let managed: Vec<String> = self
            .managed
            .calls_for(pod)
            .iter()
            .map(|seen| {
                format!(
                    "saw fsGroup: {}, token volume: {}",
                    !seen["spec"]["securityContext"]["fsGroup"].is_null(),
                    !volumes_named(seen, TOKEN_VOLUME).is_empty()
                )
            })
            .collect();
        let needle = format!("pod={pod} ");
        let ours: Vec<String> = self
            .ours
            .log()
            .lines()
            .filter(|l| l.contains(&needle) && l.contains("admission") && !l.contains("dry_run=true"))
            .map(|l| {
                // `... mutated=true reason=already has everything warnings=0 ...` (the text log format).
                let between = |start: &str, end: &str| {
                    l.split_once(start).map_or("?", |(_, rest)| rest.split_once(end).map_or(rest, |(v, _)| v))
                };
                format!("mutated: {}, reason: {}", between("mutated=", " "), between("reason=", " warnings="))
            })
            .collect();
        json!({"managed stand-in calls": managed, "our calls": ours})
    }

    fn show(&self, pod: &Value, note: &str) {
        let name = pod["metadata"]["name"].as_str().unwrap_or("?");
        let mut parts = relevant_parts(pod);
        parts["note"] = json!(note);
        parts["calls"] = self.calls(name);
        let text = serde_yaml_ng::to_string(&parts).unwrap_or_else(|e| format!("(cannot print: {e})"));
        println!("--- {} ---\n{text}", self.title());
    }
}

// ------------------------------------------------------------------------------------------------------------------
// The scenario
// ------------------------------------------------------------------------------------------------------------------

fn non_root() -> Value {
    json!({"runAsUser": 1000, "fsGroup": 65534, "fsGroupChangePolicy": "OnRootMismatch"})
}

async fn scenario(mode: Mode, order: Order) {
    let _one_at_a_time = name_lock().lock().await;
    let eks = setup(mode, order).await;
    let ns = &eks.ns;
    let app_role = role(APP_SA);
    let mut problems = Vec::new();
    use Credentials::{None as NoCredentials, OursOnly, WithRegion};

    // A non-root pod with an init container and a sidecar.
    let mut p = pod("non-root", APP_SA);
    p["spec"]["securityContext"] = json!({"runAsUser": 1000});
    p["spec"]["initContainers"] = json!([{"name": "init", "image": "busybox"}]);
    p["spec"]["containers"] = json!([{"name": "app", "image": "busybox"}, {"name": "sidecar", "image": "envoy"}]);
    let stored = ns.create_pod_ok(&p).await;
    eks.show(&stored, "non-root: the fsGroup fix applies");
    let every = BTreeMap::from([("init", WithRegion), ("app", WithRegion), ("sidecar", WithRegion)]);
    problems.extend(check(&stored, &app_role, &every, non_root()));

    // The order really is the one the names say; managed first, IfNeeded calls it again after our change.
    let managed_calls = eks.managed.calls_for("non-root");
    let first_saw_fs_group = managed_calls.first().map(|seen| !seen["spec"]["securityContext"]["fsGroup"].is_null());
    match order {
        Order::ManagedFirst => {
            if first_saw_fs_group != Some(false) {
                problems.push("the managed webhook was called first, yet its first call saw our fsGroup".into());
            }
            // Our fsGroup came after its first call: IfNeeded called it again (and it changed nothing).
            if managed_calls.len() != 2 {
                problems
                    .push(format!("the managed webhook was called {} times, want 2 (reinvoked)", managed_calls.len()));
            }
        }
        Order::OursFirst => {
            if first_saw_fs_group != Some(true) {
                problems
                    .push("ours was called first, yet the managed webhook's first call did not see our fsGroup".into());
            }
        }
    }

    // A root pod: credentials once, no fsGroup.
    let mut p = pod("root", APP_SA);
    p["spec"]["containers"] = json!([{"name": "app", "image": "busybox"}, {"name": "sidecar", "image": "envoy"}]);
    let stored = ns.create_pod_ok(&p).await;
    eks.show(&stored, "root: no fsGroup fix");
    let both = BTreeMap::from([("app", WithRegion), ("sidecar", WithRegion)]);
    problems.extend(check(&stored, &app_role, &both, json!({})));

    // A skipped container (both webhooks skip it); the fix follows the container that gets the token.
    let mut p = pod("skip", APP_SA);
    p["metadata"]["annotations"] = json!({SKIP_CONTAINERS: "proxy"});
    p["spec"]["containers"] = json!([
        {"name": "app", "image": "busybox", "securityContext": {"runAsUser": 1000, "runAsGroup": 3000}},
        {"name": "proxy", "image": "envoy"}
    ]);
    let stored = ns.create_pod_ok(&p).await;
    eks.show(&stored, "container proxy skipped; app runs as non-root (container level)");
    let skip = BTreeMap::from([("app", WithRegion), ("proxy", NoCredentials)]);
    problems.extend(check(
        &stored,
        &app_role,
        &skip,
        json!({"fsGroup": 65534, "fsGroupChangePolicy": "OnRootMismatch"}),
    ));

    // Before the ServiceAccount has a role: neither webhook touches the pod.
    let late_role = role(LATE_SA);
    let mut late = pod("before-role", LATE_SA);
    late["spec"]["securityContext"] = json!({"runAsUser": 1000});
    let before = ns.create_pod_ok(&late).await;
    eks.show(&before, "created before ServiceAccount late had a role: nothing from either webhook");
    let single = |c: Credentials| BTreeMap::from([("app", c)]);
    problems.extend(check(&before, &late_role, &single(NoCredentials), json!({"runAsUser": 1000})));

    // The role arrives. We see it at once (watch, else a live lookup); the managed webhook's cache lags (here until
    // `sync`, in EKS until its informer catches up).
    ns.annotate_service_account(LATE_SA, &[(ROLE_ANNOTATION, Some(&late_role))]).await;
    let probe = renamed(&late, "late-probe");
    ns.wait_for_dry_run("our webhook to see the new role", &probe, |result| match result {
        Ok(pod) if !pod["spec"]["securityContext"]["fsGroup"].is_null() => Ok(()),
        Ok(pod) => Err(format!("no fsGroup yet: {}", pod["spec"]["securityContext"])),
        Err(e) => Err(format!("refused: {e}")),
    })
    .await;
    let during = ns.create_pod_ok(&renamed(&late, "during-lag")).await;
    let during_credentials = match mode {
        // Full mode covers the managed webhook's lag: our own injection, without its region.
        Mode::Full => OursOnly,
        // Only the managed webhook injects; until its cache has the role, the pod gets only our fsGroup.
        Mode::FsGroupOnly => NoCredentials,
    };
    eks.show(&during, "created after the role was set, while the managed webhook's cache still had none");
    problems.extend(check(&during, &late_role, &single(during_credentials), non_root()));

    eks.managed.sync(ns).await;
    let after = ns.create_pod_ok(&renamed(&late, "after-role")).await;
    eks.show(&after, "created once both webhooks knew the role");
    problems.extend(check(&after, &late_role, &single(WithRegion), non_root()));
    // Pods are admitted once: the one created before the role stays as it was stored.
    let before_again = ns.get_pod("before-role").await;
    problems.extend(check(&before_again, &late_role, &single(NoCredentials), json!({"runAsUser": 1000})));

    assert!(problems.is_empty(), "{}:\n{}", eks.title(), problems.join("\n"));
    eks.scope.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_group_only_managed_webhook_first() {
    scenario(Mode::FsGroupOnly, Order::ManagedFirst).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_group_only_ours_first() {
    scenario(Mode::FsGroupOnly, Order::OursFirst).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_mode_managed_webhook_first() {
    scenario(Mode::Full, Order::ManagedFirst).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_mode_ours_first() {
    scenario(Mode::Full, Order::OursFirst).await;
}

/// The stand-in is the reference: on the reference's own web-identity test cases (converted for this repository's
/// fixtures, each with the reference's expected patch) the stand-in's patch gives the same pod. Needs no cluster.
#[test]
fn stand_in_matches_the_reference_fixtures() {
    let dir = repo_root().join("tests/fixtures/mutate/reference");
    let mut compared = Vec::new();
    let mut failures = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for path in files {
        let case: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&path).expect("read fixture"))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // Web identity only (the stand-in has no container-credentials config); --aws-default-region is its one flag.
        let flags: Vec<&str> = case["flags"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let region = flags.iter().find_map(|f| f.strip_prefix("--aws-default-region="));
        if !case["containerCredentials"].is_null() || flags.len() > usize::from(region.is_some()) {
            continue;
        }
        let sa = &case["serviceAccounts"][0];
        let annotations: BTreeMap<String, String> =
            serde_json::from_value(sa["metadata"]["annotations"].clone()).unwrap_or_default();
        let cache: Cache = Arc::new(Mutex::new(HashMap::from([(
            sa["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
            CacheEntry::from_annotations(&annotations),
        )])));
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let patch: json_patch::Patch =
            serde_json::from_value(json!(reference_patch(&case["pod"], &cache, region))).expect("a JSON Patch");
        let expected: json_patch::Patch =
            serde_json::from_str(case["reference"]["expectedPatch"].as_str().unwrap_or("[]")).expect("expectedPatch");
        let (mut ours, mut theirs) = (case["pod"].clone(), case["pod"].clone());
        json_patch::patch(&mut ours, &patch).expect("the stand-in's patch applies");
        json_patch::patch(&mut theirs, &expected).expect("the reference's patch applies");
        if ours == theirs {
            compared.push(name);
        } else {
            failures.push(format!("{name}:\nstand-in:  {ours}\nreference: {theirs}"));
        }
    }
    println!("the stand-in gives the reference's pod on {} fixtures: {}", compared.len(), compared.join(", "));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(compared.len() >= 10, "only {} reference fixtures compared", compared.len());
}
