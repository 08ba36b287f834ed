//! End to end: the chart's RBAC is enough for the webhook and no more.
//!
//! The chart is rendered with helm (`tests/tools.sh helm`) for Kubernetes 1.20.2; its ServiceAccount, ClusterRole,
//! ClusterRoleBinding, Role, RoleBinding, Service and MutatingWebhookConfiguration are applied with kubectl into the
//! harness's API server (tests/e2e/README.md). The binary then runs with the arguments and environment of the
//! rendered Deployment, authenticated only by a TokenRequest token of the chart's ServiceAccount, listening on the
//! Service's ClusterIP (the harness routes `service:` webhooks there). It must become ready, create its certificate
//! Secret, patch its own webhook configuration's caBundle and mutate pods through it; and a SelfSubjectAccessReview
//! with the same token must refuse everything the webhook does not need.
//!
//! Without the harness (`KUBECONFIG`, `IRSA_E2E_*`) every test fails, saying so.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::PostParams;
use kube::Api;
use serde::Deserialize as _;
use serde_json::{json, Value};

mod support;
use support::e2e::{ca_bundles_of, connect, env_of, free_port, kube_client, poll, repo_root, unique, Cleanup};
use support::{irsa_webhook, run, tool, BIN};

const ROLE: &str = "arn:aws:iam::111122223333:role/e2e-rbac";
const CONFIG_MAP_ROLE: &str = "arn:aws:iam::111122223333:role/e2e-rbac-from-configmap";
/// The API server's default token audience (its --api-audiences / issuer).
const API_AUDIENCE: &str = "https://kubernetes.default.svc";
const TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------------------------
// The harness

/// Plain HTTP to the metrics port, never through a proxy from the environment.
fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(5)).no_proxy().build().unwrap()
}

async fn create_namespace(client: &kube::Client, cleanup: &mut Cleanup, name: &str) {
    // 1.20 does not set kubernetes.io/metadata.name itself; the chart's namespaceSelector relies on it (1.21+).
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}}))
            .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap_or_else(|e| panic!("cannot create namespace {name}: {e}"));
    cleanup.add_kind::<Namespace>(name);
}

// ---------------------------------------------------------------------------------------------------------------
// The chart

struct Rendering {
    docs: Vec<Value>,
}

impl Rendering {
    fn new(release: &str, namespace: &str, sets: &[String]) -> Self {
        let helm = tool("helm");
        let chart = repo_root().join("charts/irsa-webhook");
        let mut args = vec![
            "template".to_owned(),
            release.to_owned(),
            chart.display().to_string(),
            "--namespace".into(),
            namespace.into(),
            "--kube-version".into(),
            "1.20.2".into(),
        ];
        for set in sets {
            args.push("--set".into());
            args.push(set.clone());
        }
        let yaml = run(&helm, &args.iter().map(String::as_str).collect::<Vec<_>>());
        let docs = serde_yaml_ng::Deserializer::from_str(&yaml)
            .map(|doc| serde_json::Value::deserialize(doc).expect("helm rendered YAML that does not parse"))
            .filter(|doc| !doc.is_null())
            .collect();
        Rendering { docs }
    }

    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.docs.iter().filter(|d| d["kind"] == kind).collect()
    }

    fn one(&self, kind: &str) -> &Value {
        match self.of_kind(kind).as_slice() {
            [one] => one,
            other => panic!("the rendering has {} objects of kind {kind}, expected 1", other.len()),
        }
    }
}

/// The rendered Deployment's container (its entrypoint is the binary): the args, starting with `serve`, and the
/// environment, resolved for `namespace`.
fn deployment_command(rendering: &Rendering, namespace: &str) -> (Vec<String>, Vec<(String, String)>) {
    let deployment = rendering.one("Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<String> = container["args"]
        .as_array()
        .expect("the Deployment's container has args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_owned())
        .collect();
    assert_eq!(args.first().map(String::as_str), Some("serve"), "the chart runs `serve`: {args:?}");
    let env = container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let name = e["name"].as_str().unwrap().to_owned();
            let value = if let Some(v) = e["value"].as_str() {
                v.to_owned()
            } else if e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace" {
                namespace.to_owned()
            } else {
                panic!("env {name} of the Deployment comes from something this test cannot resolve: {e}")
            };
            (name, value)
        })
        .collect();
    (args, env)
}

/// The value of `--flag=value` in `args`.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let prefix = format!("--{name}=");
    args.iter().find_map(|a| a.strip_prefix(&prefix))
}

// ---------------------------------------------------------------------------------------------------------------
// The webhook process

struct Webhook {
    child: Child,
    log: PathBuf,
    metrics: String,
}

impl Webhook {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("the webhook exited ({status}); its log:\n{}", self.log_text());
        }
    }

    async fn metric(&self, name: &str) -> Result<f64, String> {
        let text = http()
            .get(format!("{}/metrics", self.metrics))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .text()
            .await
            .map_err(|e| e.to_string())?;
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .ok_or_else(|| format!("no metric {name}"))?
            .trim()
            .parse()
            .map_err(|e| format!("metric {name}: {e}"))
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- log of the webhook ({}) -----\n{}", self.log.display(), self.log_text());
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Access reviews

/// (verb, API group, resource, namespace ("" = cluster-wide), name ("" = any))
type Access<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str);

async fn allowed(client: &kube::Client, (verb, group, resource, namespace, name): Access<'_>) -> bool {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                namespace: Some(namespace.into()).filter(|n: &String| !n.is_empty()),
                name: Some(name.into()).filter(|n: &String| !n.is_empty()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let answer = Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap_or_else(|e| panic!("SelfSubjectAccessReview {verb} {resource}: {e}"));
    answer.status.map(|s| s.allowed).unwrap_or(false)
}

fn describe((verb, group, resource, namespace, name): Access<'_>) -> String {
    let group = if group.is_empty() { String::new() } else { format!(".{group}") };
    let name = if name.is_empty() { String::new() } else { format!("/{name}") };
    let scope = if namespace.is_empty() { "cluster-wide".to_owned() } else { format!("in namespace {namespace}") };
    format!("{verb} {resource}{group}{name} {scope}")
}

// ---------------------------------------------------------------------------------------------------------------
// The scenario

struct Case {
    /// Extra `--set` values.
    sets: Vec<String>,
    config_map: bool,
}

fn role_of(pod: &Pod) -> Option<String> {
    env_of(pod).into_iter().find(|(k, _)| k == "AWS_ROLE_ARN").map(|(_, v)| v)
}

fn pod(name: &str, service_account: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"serviceAccountName": service_account, "containers": [{"name": "app", "image": "busybox"}]}
    }))
    .unwrap()
}

async fn chart_rbac_runs_the_webhook_and_allows_nothing_else(case: Case) {
    let cluster = connect().await;
    let (kubeconfig, api_url, pki) = (&cluster.harness.kubeconfig, &cluster.harness.api_url, &cluster.harness.pki);
    let admin = cluster.client.clone();
    let kubectl = tool("kubectl");
    let dir = tempfile::tempdir().unwrap();
    let mut cleanup = Cleanup::new(kubeconfig);

    let id = unique("rbac");
    // A release name containing the chart's name is the full name of every object.
    let release = format!("irsa-webhook-{id}");
    let ns = format!("e2e-{id}");
    let app_ns = format!("e2e-{id}-app");
    create_namespace(&admin, &mut cleanup, &ns).await;
    create_namespace(&admin, &mut cleanup, &app_ns).await;

    // Ports above 1024, so no privilege is needed: the Service port is what the API server dials.
    let port = free_port(Ipv4Addr::LOCALHOST.into());
    let mut sets = vec![
        format!("service.port={port}"),
        format!("containerPorts.https={port}"),
        format!("containerPorts.metrics={}", free_port(Ipv4Addr::LOCALHOST.into())),
    ];
    sets.extend(case.sets.iter().cloned());
    let rendering = Rendering::new(&release, &ns, &sets);

    // What the chart grants and configures, applied as an administrator would.
    let wanted = [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "MutatingWebhookConfiguration",
    ];
    let objects: Vec<Value> =
        rendering.docs.iter().filter(|d| wanted.contains(&d["kind"].as_str().unwrap_or_default())).cloned().collect();
    for kind in
        ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "MutatingWebhookConfiguration"]
    {
        assert!(!rendering.of_kind(kind).is_empty(), "the chart rendered no {kind} (rbac.create is on by default)");
    }
    let manifest = dir.path().join("chart-objects.json");
    std::fs::write(&manifest, json!({"apiVersion": "v1", "kind": "List", "items": objects}).to_string()).unwrap();
    // Every cluster-scoped object of the chart is named after the release.
    cleanup.add_kind::<MutatingWebhookConfiguration>(&release);
    cleanup.add_kind::<ClusterRoleBinding>(&release);
    cleanup.add_kind::<ClusterRole>(&release);
    run(&kubectl, &["apply", "-f", manifest.to_str().unwrap()]);

    let config_name = rendering.one("MutatingWebhookConfiguration")["metadata"]["name"].as_str().unwrap().to_owned();
    assert_eq!(config_name, release);
    let sa_name = rendering.one("ServiceAccount")["metadata"]["name"].as_str().unwrap().to_owned();
    let service: Service = Api::namespaced(admin.clone(), &ns)
        .get(rendering.one("Service")["metadata"]["name"].as_str().unwrap())
        .await
        .unwrap();
    let cluster_ip = service.spec.as_ref().and_then(|s| s.cluster_ip.clone()).expect("the Service has a ClusterIP");

    // The chart's ServiceAccount's identity: a TokenRequest token with the API server's audience.
    let token_request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![API_AUDIENCE.into()],
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let token = Api::<ServiceAccount>::namespaced(admin.clone(), &ns)
        .create_token_request(&sa_name, &PostParams::default(), &token_request)
        .await
        .unwrap_or_else(|e| panic!("TokenRequest for {ns}/{sa_name}: {e}"))
        .status
        .expect("TokenRequest status")
        .token;
    let sa_kubeconfig = dir.path().join("sa-kubeconfig");
    std::fs::write(
        &sa_kubeconfig,
        serde_json::to_string(&json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "e2e", "cluster": {"server": api_url, "certificate-authority": pki.join("ca.crt")}}],
            "users": [{"name": sa_name, "user": {"token": token}}],
            "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": sa_name}}],
            "current-context": "e2e",
        }))
        .unwrap(),
    )
    .unwrap();
    let as_webhook = kube_client(&sa_kubeconfig).await;

    // The rendered Deployment's command line, listening on the Service's ClusterIP instead of the pod's address.
    let (mut args, env) = deployment_command(&rendering, &ns);
    assert_eq!(flag(&args, "port"), Some(port.to_string().as_str()), "args {args:?}");
    let metrics_port = flag(&args, "metrics-port").expect("--metrics-port").to_owned();
    assert!(flag(&args, "bind-address").is_some(), "the chart passes --bind-address: {args:?}");
    for arg in args.iter_mut() {
        if arg.starts_with("--bind-address=") {
            *arg = format!("--bind-address={cluster_ip}");
        }
    }
    assert!(flag(&args, "kubeconfig").is_none(), "the chart passes no --kubeconfig (in-cluster config)");
    args.push(format!("--kubeconfig={}", sa_kubeconfig.display()));
    let secret_name = flag(&args, "cert-secret").expect("selfManaged mode: --cert-secret").to_owned();
    assert_eq!(flag(&args, "webhook-config"), Some(config_name.as_str()));
    assert_eq!(args.iter().any(|a| a == "--watch-config-map"), case.config_map, "args {args:?}");

    let log = dir.path().join("webhook.log");
    let out = std::fs::File::create(&log).unwrap();
    // Only the Deployment's environment: no IRSA_* flag or KUBECONFIG of the test runner may leak in.
    let mut command = irsa_webhook();
    command.args(&args).stdin(Stdio::null()).stdout(out.try_clone().unwrap()).stderr(out);
    command.env_remove("KUBECONFIG").env_remove("RUST_LOG");
    command.envs(env.iter().map(|(k, v)| (k, v)));
    let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
    let mut webhook = Webhook { child, log, metrics: format!("http://{cluster_ip}:{metrics_port}") };

    // Ready: the ServiceAccount list (cluster-wide) synced and the certificate loaded from the Secret it created.
    let readyz = format!("{}/readyz", webhook.metrics);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        webhook.assert_running();
        let answer = match http().get(&readyz).send().await {
            Ok(r) if r.status().is_success() => break,
            Ok(r) => format!("{} {}", r.status(), r.text().await.unwrap_or_default().trim()),
            Err(e) => e.to_string(),
        };
        assert!(
            Instant::now() < deadline,
            "not ready after {TIMEOUT:?} ({readyz}: {answer}); log:\n{}",
            webhook.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let secret = Api::<Secret>::namespaced(admin.clone(), &ns)
        .get_opt(&secret_name)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("the webhook did not create its Secret {ns}/{secret_name}"));
    let data = secret.data.clone().unwrap_or_default();
    let mut keys: Vec<_> = data.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["ca.crt", "ca.key", "tls.crt", "tls.key"]);
    let ca = String::from_utf8(data["ca.crt"].0.clone()).unwrap();

    let configurations: Api<MutatingWebhookConfiguration> = Api::all(admin.clone());
    poll("the webhook to patch its configuration's caBundle", TIMEOUT, || async {
        let current = configurations.get(&config_name).await.map_err(|e| e.to_string())?;
        let bundles: Vec<_> = ca_bundles_of(&current);
        if !bundles.is_empty() && bundles.iter().all(|b| b.as_deref() == Some(ca.as_str())) {
            Ok(())
        } else {
            Err(format!("caBundles {bundles:?}"))
        }
    })
    .await;

    // The watch works: a ServiceAccount annotated after the initial list reaches the cache without a pod asking.
    let cached_before = webhook.metric("irsa_webhook_service_accounts_cached").await.unwrap();
    let service_account: ServiceAccount = serde_json::from_value(json!({
        "metadata": {"name": "app", "annotations": {"eks.amazonaws.com/role-arn": ROLE}}
    }))
    .unwrap();
    Api::<ServiceAccount>::namespaced(admin.clone(), &app_ns)
        .create(&PostParams::default(), &service_account)
        .await
        .unwrap();
    poll("the ServiceAccount watch to deliver a new annotated ServiceAccount", TIMEOUT, || async {
        let cached = webhook.metric("irsa_webhook_service_accounts_cached").await?;
        if cached > cached_before {
            Ok(())
        } else {
            Err(format!("irsa_webhook_service_accounts_cached {cached} (before: {cached_before})"))
        }
    })
    .await;

    let pods: Api<Pod> = Api::namespaced(admin.clone(), &app_ns);
    let dry_run = PostParams { dry_run: true, ..PostParams::default() };
    let app = pod("app", "app");
    // The chart's configuration (service: <release>.<ns>:<port>, caBundle from the webhook) takes about a second.
    poll("a dry-run pod to be mutated through the chart's webhook configuration", TIMEOUT, || async {
        match pods.create(&dry_run, &app).await {
            Ok(created) if role_of(&created).is_some() => Ok(()),
            Ok(_) => Err("admitted unmutated".to_owned()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    let created = pods.create(&PostParams::default(), &app).await.unwrap();
    assert_eq!(role_of(&created).as_deref(), Some(ROLE), "env {:?}", env_of(&created));

    if case.config_map {
        // Identities from the ConfigMap pod-identity-webhook of the webhook's namespace, read under the chart's Role.
        let config_map: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "pod-identity-webhook"},
            "data": {"config": json!({format!("{app_ns}/from-configmap"): {"RoleARN": CONFIG_MAP_ROLE}}).to_string()},
        }))
        .unwrap();
        Api::<ConfigMap>::namespaced(admin.clone(), &ns).create(&PostParams::default(), &config_map).await.unwrap();
        let plain: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "from-configmap"}})).unwrap();
        Api::<ServiceAccount>::namespaced(admin.clone(), &app_ns).create(&PostParams::default(), &plain).await.unwrap();
        let from_config_map = pod("from-configmap", "from-configmap");
        poll("a pod of a ServiceAccount listed in the ConfigMap to be mutated", TIMEOUT, || async {
            match pods.create(&dry_run, &from_config_map).await {
                Ok(created) if role_of(&created).as_deref() == Some(CONFIG_MAP_ROLE) => Ok(()),
                Ok(created) => Err(format!("AWS_ROLE_ARN {:?}", role_of(&created))),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
    }
    webhook.assert_running();
    let log = webhook.log_text();
    for complaint in ["forbidden", "Forbidden"] {
        assert!(!log.contains(complaint), "the webhook was refused something by RBAC; its log:\n{log}");
    }

    let (ns, app_ns, secret_name, config_name) =
        (ns.as_str(), app_ns.as_str(), secret_name.as_str(), config_name.as_str());
    // Sufficient, as the API server's authorizer sees the ServiceAccount...
    let needed: Vec<Access> = {
        let mut needed = vec![
            ("list", "", "serviceaccounts", "", ""),
            ("watch", "", "serviceaccounts", "", ""),
            ("get", "", "serviceaccounts", app_ns, "app"),
            ("create", "", "secrets", ns, ""),
            ("get", "", "secrets", ns, secret_name),
            ("update", "", "secrets", ns, secret_name),
            ("get", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", config_name),
            ("patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", config_name),
        ];
        if case.config_map {
            needed.extend([
                ("get", "", "configmaps", ns, "pod-identity-webhook"),
                ("list", "", "configmaps", ns, ""),
                ("watch", "", "configmaps", ns, ""),
            ]);
        }
        needed
    };
    // ... and minimal.
    let refused: Vec<Access> = {
        let mut refused = vec![
            ("list", "", "secrets", app_ns, ""),
            ("list", "", "secrets", "default", ""),
            ("get", "", "secrets", app_ns, ""),
            ("get", "", "secrets", "", ""),
            ("list", "", "secrets", "", ""),
            ("watch", "", "secrets", "", ""),
            ("list", "", "secrets", ns, ""),
            ("get", "", "secrets", ns, "some-other-secret"),
            ("update", "", "secrets", ns, "some-other-secret"),
            ("delete", "", "secrets", ns, secret_name),
            ("patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "another-webhook"),
            ("update", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "another-webhook"),
            ("patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", ""),
            ("list", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", ""),
            ("create", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", ""),
            ("delete", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", config_name),
            ("patch", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", config_name),
            ("create", "", "pods", app_ns, ""),
            ("create", "", "pods", ns, ""),
            ("update", "", "serviceaccounts", app_ns, "app"),
            ("patch", "", "serviceaccounts", app_ns, "app"),
            ("create", "", "serviceaccounts", app_ns, ""),
            ("delete", "", "serviceaccounts", app_ns, "app"),
            ("create", "", "serviceaccounts/token", app_ns, "app"),
            ("get", "", "configmaps", app_ns, "pod-identity-webhook"),
            ("list", "", "configmaps", "", ""),
            ("update", "", "configmaps", ns, "pod-identity-webhook"),
            ("escalate", "rbac.authorization.k8s.io", "clusterroles", "", ""),
            ("bind", "rbac.authorization.k8s.io", "clusterroles", "", ""),
            ("impersonate", "", "serviceaccounts", "", ""),
        ];
        if !case.config_map {
            refused.extend([
                ("get", "", "configmaps", ns, "pod-identity-webhook"),
                ("list", "", "configmaps", ns, ""),
                ("watch", "", "configmaps", ns, ""),
            ]);
        }
        refused
    };
    let mut wrong = Vec::new();
    for access in &needed {
        if !allowed(&as_webhook, *access).await {
            wrong.push(format!("refused but needed: {}", describe(*access)));
        }
    }
    for access in &refused {
        if allowed(&as_webhook, *access).await {
            wrong.push(format!("allowed but not needed: {}", describe(*access)));
        }
    }
    assert!(wrong.is_empty(), "the chart's RBAC for system:serviceaccount:{ns}:{sa_name}:\n  {}", wrong.join("\n  "));
    // The reviews are answered for the ServiceAccount, not the administrator.
    assert!(allowed(&admin, ("create", "", "pods", app_ns, "")).await, "sanity: the administrator may create pods");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn default_values_rbac_runs_the_webhook_and_allows_nothing_else() {
    chart_rbac_runs_the_webhook_and_allows_nothing_else(Case { sets: Vec::new(), config_map: false }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn config_map_mode_rbac_runs_the_webhook_and_allows_nothing_else() {
    chart_rbac_runs_the_webhook_and_allows_nothing_else(Case {
        sets: vec!["config.watchConfigMap=true".into()],
        config_map: true,
    })
    .await;
}
