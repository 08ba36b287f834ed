//! End to end: a true drop-in for amazon-eks-pod-identity-webhook, against a real kube-apiserver.
//!
//! The binary is started **under the name `webhook`** (hard-linked into a temp dir, as the reference image has
//! `/webhook`) with the container command of the reference's `deploy/deployment-base.yaml`
//! (`tests/fixtures/dropin/reference-deploy/`, verbatim), behind the reference's Service and a
//! MutatingWebhookConfiguration taken from its `deploy/mutatingwebhook.yaml` (`admissionReviewVersions: [v1beta1]`,
//! `failurePolicy: Ignore`), and must mutate pods through the API server.
//!
//! What the tests change from the reference's manifests, and why: the Service and the configuration's service
//! reference point at a scope namespace (tests share one cluster), and the configuration gets the scope's
//! namespaceSelector; the webhook gets `--bind-address=<the Service's ClusterIP>` and a free `--metrics-port` (the
//! harness routes `service:` webhooks to the ClusterIP on loopback); it reaches the API server through `KUBECONFIG`
//! (the stand-in for the in-cluster config). Port 443 is kept when this process may bind it (root), else a free
//! port is passed as `--port` and used as the Service's port. Certificates at the default path
//! `/etc/webhook/certs` are moved for the test by `IRSA_DEFAULT_CERT_DIR`, the one way to point that default
//! elsewhere; the other cases pass `--tls-cert`/`--tls-key` instead. In-cluster mode keeps its Secret and Service
//! in `--namespace`, so there `--namespace` is the scope's namespace rather than `default`.
//!
//! `reference_metrics_after_admissions` checks `/metrics` for every metric name, label and label value the
//! reference exports; those come from the `server` branch's metrics rewrite (issue 9, item 3) and fail without it.
//!
//! Needs the harness of tests/e2e/README.md; run with `--test-threads=1`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{json, Value};

mod support;
use support::e2e::{
    assert_mutated, connect, env_value, free_port, issue_certificate, metric_value, pod, poll, webhook_config_resource,
    webhook_configs, Expected, Harness, Namespace, Scope, SETTLE_TIMEOUT,
};

const ROLE: &str = "arn:aws:iam::111122223333:role/e2e-dropin";
const SERVICE: &str = "pod-identity-webhook";
/// The reference's MutatingWebhookConfiguration name: the default `--webhook-config` of in-cluster mode.
const REFERENCE_CONFIG: &str = "pod-identity-webhook";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dropin").join(name)
}

/// The first document of `kind` in a (multi-document) YAML fixture.
fn document(file: &str, kind: &str) -> Value {
    let text = std::fs::read_to_string(fixture(file)).unwrap_or_else(|e| panic!("read {file}: {e}"));
    let found = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap_or_else(|e| panic!("{file}: {e}")))
        .find(|doc: &Value| doc["kind"] == kind);
    found.unwrap_or_else(|| panic!("no {kind} in {file}"))
}

/// The container command of the reference's deploy/deployment-base.yaml: `/webhook` and its arguments.
fn reference_command() -> Vec<String> {
    let deployment = document("reference-deploy/deployment-base.yaml", "Deployment");
    let command = &deployment["spec"]["template"]["spec"]["containers"][0]["command"];
    let command: Vec<String> = serde_json::from_value(command.clone()).expect("a command list");
    assert_eq!(command[0], "/webhook", "the reference image runs /webhook");
    command
}

/// `args` with each `--name=value` of `replace` put in place of the argument with that `--name=`.
fn replaced(args: &[String], replace: &[String]) -> Vec<String> {
    args.iter()
        .map(|arg| {
            let name = arg.split('=').next().unwrap_or_default();
            replace.iter().find(|r| r.split('=').next() == Some(name)).cloned().unwrap_or_else(|| arg.clone())
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------------------------
// The reference's Service and webhook configuration, in the test's namespaces

/// What a test's webhook is reached through.
struct Front {
    system: Namespace,
    app: Namespace,
    cluster_ip: IpAddr,
    /// 443 as in the reference, when this process may bind it.
    port: u16,
}

/// The reference's Service (deploy/service.yaml) in a scope namespace, and an app namespace with ServiceAccount
/// `app` (role [`ROLE`]).
async fn front(scope: &Scope) -> Front {
    let system = scope.namespace("sys").await;
    let app = scope.namespace("app").await;
    app.service_account_with_role("app", ROLE).await;
    // 443 when free on every address (so on the ClusterIP allocated next); else a free port, passed as --port.
    let port = match std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, 443)) {
        Ok(_) => 443,
        Err(_) => free_port(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
    };
    let mut service = document("reference-deploy/service.yaml", "Service");
    service["metadata"]["namespace"] = json!(system.name);
    service["spec"]["ports"] = json!([{"port": port, "targetPort": port}]);
    let service: Service = serde_json::from_value(service).expect("Service");
    let service = Api::<Service>::namespaced(scope.client(), &system.name)
        .create(&PostParams::default(), &service)
        .await
        .expect("create the reference's Service");
    let cluster_ip: IpAddr =
        service.spec.and_then(|s| s.cluster_ip).expect("a ClusterIP").parse().expect("ClusterIP is an IP");
    assert!(cluster_ip.is_loopback(), "the harness's service CIDR must be loopback, got {cluster_ip}");
    Front { system, app, cluster_ip, port }
}

impl Front {
    /// Where to listen: the ClusterIP, the Service's port when not 443, a free metrics port.
    fn listen_args(&self) -> Vec<String> {
        let mut args = vec![
            format!("--bind-address={}", self.cluster_ip),
            format!("--metrics-port={}", free_port(self.cluster_ip)),
        ];
        if self.port != 443 {
            args.push(format!("--port={}", self.port));
        }
        args
    }

    /// Registers deploy/mutatingwebhook.yaml as `name`: its service reference in the system namespace, the
    /// scope's namespaceSelector, `ca_bundle` if given (cert-manager injects it in the reference's deploy).
    async fn register(&self, scope: &Scope, name: &str, ca_bundle: Option<String>) {
        let mut config = document("reference-deploy/mutatingwebhook.yaml", "MutatingWebhookConfiguration");
        config["metadata"]["name"] = json!(name);
        config["metadata"]["labels"] = json!({support::e2e::SCOPE_LABEL: scope.id});
        let webhook = &mut config["webhooks"][0];
        assert_eq!(webhook["admissionReviewVersions"], json!(["v1beta1"]));
        webhook["clientConfig"]["service"]["namespace"] = json!(self.system.name);
        if self.port != 443 {
            webhook["clientConfig"]["service"]["port"] = json!(self.port);
        }
        if let Some(bundle) = ca_bundle {
            webhook["clientConfig"]["caBundle"] = json!(bundle);
        }
        webhook["namespaceSelector"] = json!({"matchExpressions": [scope.selector_expression()]});
        // A configuration of that name left by an aborted run would make the create fail.
        let _ = webhook_configs(scope.client()).delete(name, &DeleteParams::default()).await;
        scope.create_cluster_object(&webhook_config_resource(), config).await;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The binary as `webhook`

/// `webhook` with the given arguments and environment, its log in a file; killed on drop, the log printed if the
/// test is failing.
struct Webhook {
    child: Child,
    log: PathBuf,
    metrics: String,
    _dir: tempfile::TempDir,
}

impl Webhook {
    fn spawn(args: &[String], env: &[(&str, &Path)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let binary = support::binary_as(dir.path(), "webhook");
        let log = dir.path().join("webhook.log");
        let out = std::fs::File::create(&log).expect("log file");
        let metrics = args
            .iter()
            .find_map(|a| a.strip_prefix("--metrics-port="))
            .expect("the tests pass --metrics-port")
            .to_owned();
        let bind = args.iter().find_map(|a| a.strip_prefix("--bind-address=")).expect("the tests pass --bind-address");
        let mut command = Command::new(&binary);
        command.args(args).stdin(Stdio::null()).stdout(out.try_clone().expect("log")).stderr(out);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("IRSA_") || name == "RUST_LOG" {
                command.env_remove(name);
            }
        }
        // The stand-in for the in-cluster config; `env` may name another.
        command.env("KUBECONFIG", &Harness::get().kubeconfig);
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        Self {
            child,
            log,
            metrics: format!("http://{}", SocketAddr::new(bind.parse().expect("ip"), metrics.parse().expect("port"))),
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().ok()?;
        let response = client.get(format!("{}{path}", self.metrics)).send().await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.unwrap_or_default()))
    }

    /// Waits for `/healthz` (the reference's probe) and `/readyz`.
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("webhook exited ({status}) before it was ready; log:\n{}", self.log());
            }
            let healthz = self.get("/healthz").await.map(|(s, _)| s);
            let readyz = self.get("/readyz").await.map(|(s, _)| s);
            if healthz == Some(200) && readyz == Some(200) {
                return;
            }
            assert!(Instant::now() < deadline, "webhook not ready after {SETTLE_TIMEOUT:?}; log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn metrics(&self) -> String {
        self.get("/metrics").await.map(|(_, text)| text).unwrap_or_default()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            let _ =
                writeln!(std::io::stderr(), "--- webhook log (last 80 lines) ---\n{}\n--- end ---", tail.join("\n"));
        }
    }
}

/// A certificate for the reference's Service in `front`'s system namespace, signed by the harness CA, in
/// `<dir>/tls.crt` and `<dir>/tls.key` (the layout of /etc/webhook/certs).
fn certificates(scope: &Scope, front: &Front) -> (PathBuf, PathBuf, PathBuf) {
    let dir = scope.dir.path().join("certs");
    let (cert, key) = issue_certificate(&dir, SERVICE, &front.system.name, &[]);
    (dir, cert, key)
}

// ---------------------------------------------------------------------------------------------------------------
// The tests

/// deploy/deployment-base.yaml's command, word for word (`--in-cluster=false`: files at /etc/webhook/certs),
/// behind deploy/service.yaml and deploy/mutatingwebhook.yaml: pods are mutated through the API server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_deployment_mutates_pods_through_its_webhook_configuration() {
    let cluster = connect().await;
    let scope = cluster.scope("dropin");
    let front = front(&scope).await;
    let (cert_dir, _, _) = certificates(&scope, &front);
    let command = reference_command();
    let mut args = command[1..].to_vec();
    assert!(args.contains(&"--in-cluster=false".to_owned()) && args.contains(&"--logtostderr".to_owned()));
    args.extend(front.listen_args());
    let mut webhook = Webhook::spawn(&args, &[("IRSA_DEFAULT_CERT_DIR", &cert_dir)]);
    webhook.wait_ready().await;
    assert!(
        webhook.log().contains(&format!("cert={}", cert_dir.join("tls.crt").display())),
        "the certificate comes from the default path (moved by IRSA_DEFAULT_CERT_DIR); log:\n{}",
        webhook.log()
    );

    front.register(&scope, &scope.name("pod-identity-webhook"), Some(Harness::get().ca_bundle())).await;
    front.app.wait_until_mutated(&pod("probe", "app"), ROLE).await;
    assert_mutated(&front.app.create_pod_ok(&pod("app", "app")).await, &Expected::role(ROLE));
    scope.cleanup().await;
}

/// The reference's RBAC (deploy/auth.yaml: its Role's and ClusterRole's rules, the Secret's name as given to
/// --tls-secret) plus the one rule docs/migrating.md adds for in-cluster mode, as cluster-wide rules of a
/// ServiceAccount of the test.
fn reference_rbac_rules(secret_name: &str) -> Value {
    let text = std::fs::read_to_string(fixture("reference-deploy/auth.yaml")).expect("auth.yaml");
    let mut rules = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let doc: Value = serde::Deserialize::deserialize(doc).expect("YAML");
        if doc["kind"] == "Role" || doc["kind"] == "ClusterRole" {
            rules.extend(doc["rules"].as_array().cloned().unwrap_or_default());
        }
    }
    for rule in &mut rules {
        if rule["resourceNames"] == json!(["pod-identity-webhook"]) {
            rule["resourceNames"] = json!([secret_name]);
        }
    }
    rules.push(json!({
        "apiGroups": ["admissionregistration.k8s.io"], "resources": ["mutatingwebhookconfigurations"],
        "resourceNames": [REFERENCE_CONFIG], "verbs": ["get", "patch"]
    }));
    Value::Array(rules)
}

/// `--in-cluster=true --tls-secret=NAME` (the reference's other deployment form), running with the reference's
/// RBAC plus the documented caBundle rule: the webhook creates the Secret in --namespace, sets the caBundle of the
/// reference's configuration `pod-identity-webhook` (the default --webhook-config of this mode), and the API
/// server, trusting that CA, gets pods mutated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_cluster_true_creates_the_secret_and_sets_the_ca_bundle() {
    let cluster = connect().await;
    let scope = cluster.scope("dropin-ic");
    let front = front(&scope).await;
    front.register(&scope, REFERENCE_CONFIG, None).await;
    let secret_name = "e2e-dropin-serving-cert";
    let command = reference_command();
    let mut args =
        replaced(&command[1..], &[format!("--namespace={}", front.system.name), "--in-cluster=true".to_owned()]);
    args.push(format!("--tls-secret={secret_name}"));
    args.extend(front.listen_args());
    let kubeconfig = scope.service_account_kubeconfig(&front.system, SERVICE, reference_rbac_rules(secret_name)).await;
    let mut webhook = Webhook::spawn(&args, &[("KUBECONFIG", &kubeconfig)]);
    webhook.wait_ready().await;

    let secret = Api::<Secret>::namespaced(scope.client(), &front.system.name)
        .get(secret_name)
        .await
        .unwrap_or_else(|e| panic!("the Secret {secret_name} was not created: {e}\n{}", webhook.log()));
    let data = secret.data.expect("Secret data");
    for key in ["ca.crt", "tls.crt", "tls.key"] {
        assert!(data.contains_key(key), "Secret {secret_name} has no {key}: {:?}", data.keys());
    }
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(&data["ca.crt"].0);
    poll("the caBundle of pod-identity-webhook to be the Secret's CA", SETTLE_TIMEOUT, || async {
        let config = webhook_configs(scope.client()).get(REFERENCE_CONFIG).await.map_err(|e| e.to_string())?;
        let bundle = config.data["webhooks"][0]["clientConfig"]["caBundle"].clone();
        if bundle == json!(ca_bundle) {
            Ok(())
        } else {
            Err(format!("caBundle is {bundle}"))
        }
    })
    .await;
    front.app.wait_until_mutated(&pod("probe", "app"), ROLE).await;
    assert_mutated(&front.app.create_pod_ok(&pod("app", "app")).await, &Expected::role(ROLE));
    scope.cleanup().await;
}

/// kOps's add-on command line (`--watch-config-map`, `--sts-regional-endpoint` bare, `--v=5`), written partly with
/// Go's single-dash spellings, certificate files named explicitly, and the ConfigMap as kOps writes it: a pod whose
/// ServiceAccount has no annotation but an entry in the ConfigMap is mutated with that entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kops_spellings_and_its_config_map_start_it_and_mutate() {
    let cluster = connect().await;
    let scope = cluster.scope("dropin-kops");
    let front = front(&scope).await;
    let (_, cert, key) = certificates(&scope, &front);
    front.app.service_account("plain", &[]).await;

    // The ConfigMap as kOps renders it, its entry moved to the test's namespace.
    let mut config_map = document("kops-configmap.yaml", "ConfigMap");
    let entries: BTreeMap<String, Value> =
        serde_json::from_str(config_map["data"]["config"].as_str().expect("config")).expect("kOps's JSON");
    let kops_role = entries["default/s3-reader"]["RoleARN"].as_str().expect("RoleARN").to_owned();
    let moved: BTreeMap<String, Value> =
        [(format!("{}/plain", front.app.name), entries["default/s3-reader"].clone())].into();
    config_map["metadata"]["namespace"] = json!(front.system.name);
    config_map["data"]["config"] = json!(serde_json::to_string(&moved).expect("JSON"));
    let config_map: ConfigMap = serde_json::from_value(config_map).expect("ConfigMap");
    Api::<ConfigMap>::namespaced(scope.client(), &front.system.name)
        .create(&PostParams::default(), &config_map)
        .await
        .expect("create the ConfigMap");

    let mut args: Vec<String> = [
        "-in-cluster=false",
        &format!("-namespace={}", front.system.name),
        "-service-name=pod-identity-webhook",
        "-annotation-prefix=eks.amazonaws.com",
        "-token-audience=amazonaws.com",
        "-logtostderr",
        "--watch-config-map",
        "--sts-regional-endpoint",
        "--aws-default-region=eu-west-1",
        "--v=5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend([format!("-tls-cert={}", cert.display()), format!("-tls-key={}", key.display())]);
    args.extend(front.listen_args());
    let mut webhook = Webhook::spawn(&args, &[]);
    webhook.wait_ready().await;
    assert!(webhook.log().contains("DEBUG"), "--v=5 logs at debug level; log:\n{}", webhook.log());

    front.register(&scope, &scope.name("pod-identity-webhook"), Some(Harness::get().ca_bundle())).await;
    front.app.wait_until_mutated(&pod("probe", "plain"), &kops_role).await;
    let mutated = front.app.create_pod_ok(&pod("plain", "plain")).await;
    let expected =
        Expected { role: kops_role, audience: "amazonaws.com".into(), expiration: 86400, regional_sts: true };
    assert_mutated(&mutated, &expected);
    let container = &mutated["spec"]["containers"][0];
    assert_eq!(env_value(container, "AWS_DEFAULT_REGION").as_deref(), Some("eu-west-1"));
    assert_eq!(env_value(container, "AWS_REGION").as_deref(), Some("eu-west-1"));
    // The annotated ServiceAccount still gets its own role, with the flags' audience and regional STS.
    let annotated = front.app.create_pod_ok(&pod("annotated", "app")).await;
    assert_mutated(
        &annotated,
        &Expected { audience: "amazonaws.com".into(), regional_sts: true, ..Expected::role(ROLE) },
    );
    scope.cleanup().await;
}

/// One sample of the Prometheus text: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value: f64 = value.parse().ok()?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|p| !p.is_empty())
                .filter_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    Some((k.to_owned(), v.trim_matches('"').to_owned()))
                })
                .collect();
            Some(Sample { name: name.to_owned(), labels, value })
        })
        .collect()
}

/// The value of the sample `name` whose labels are exactly `labels`.
fn sample(all: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    all.iter().find(|s| s.name == name && s.labels == wanted).map(|s| s.value)
}

/// After admissions of each kind through the API server, `/metrics` carries every metric of the reference, with
/// its labels, label values and units (microseconds; buckets 125000·2ⁿ, n = 0..6). Needs the `server` branch's
/// metrics (issue 9, item 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_metrics_after_admissions() {
    let cluster = connect().await;
    let scope = cluster.scope("dropin-metrics");
    let front = front(&scope).await;
    let (cert_dir, _, _) = certificates(&scope, &front);
    front.app.service_account("pod-identity", &[]).await;
    front.app.service_account("no-role", &[]).await;
    let container_credentials = scope.dir.path().join("container-credentials.json");
    std::fs::write(
        &container_credentials,
        json!({"identities": [{"namespace": front.app.name, "serviceAccount": "pod-identity"}]}).to_string(),
    )
    .expect("write the container-credentials file");
    let mut args = reference_command()[1..].to_vec();
    args.push(format!("--watch-container-credentials-config={}", container_credentials.display()));
    args.extend(front.listen_args());
    let mut webhook = Webhook::spawn(&args, &[("IRSA_DEFAULT_CERT_DIR", &cert_dir)]);
    webhook.wait_ready().await;
    front.register(&scope, &scope.name("pod-identity-webhook"), Some(Harness::get().ca_bundle())).await;
    front.app.wait_until_mutated(&pod("probe", "app"), ROLE).await;
    for i in 0..3 {
        assert_mutated(&front.app.create_pod_ok(&pod(&format!("app-{i}"), "app")).await, &Expected::role(ROLE));
    }
    let pi = front.app.create_pod_ok(&pod("pi", "pod-identity")).await;
    assert!(env_value(&pi["spec"]["containers"][0], "AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some(), "{pi:#}");
    front.app.create_pod_ok(&pod("no-role", "no-role")).await;
    // A pod whose ServiceAccount does not exist never gets past the API server's ServiceAccount admission plugin,
    // so the review the reference counts as "missing" is sent to /mutate directly. (A ServiceAccount without a
    // role is found, and the reference does not count it.)
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "missing-sa", "operation": "CREATE", "namespace": front.app.name,
                    "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "resource": {"group": "", "version": "v1", "resource": "pods"},
                    "object": {"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": "ghost", "namespace": front.app.name},
                               "spec": {"serviceAccountName": "ghost", "containers": [{"name": "c", "image": "i"}]}}}
    });
    let answer = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client")
        .post(format!("https://{}/mutate", SocketAddr::new(front.cluster_ip, front.port)))
        .json(&review)
        .send()
        .await
        .expect("POST /mutate");
    assert_eq!(answer.status(), 200);

    let text = webhook.metrics().await;
    let all = samples(&text);
    let request = [("verb", "POST"), ("path", "/mutate")];
    let count = sample(&all, "http_request_count", &[("verb", "POST"), ("path", "/mutate"), ("code", "200")]);
    assert!(count.is_some_and(|c| c >= 5.0), "http_request_count{{verb,path,code}}: {count:?}\n{text}");
    for le in ["125000", "250000", "500000", "1e+06", "2e+06", "4e+06", "8e+06", "+Inf"] {
        let bucket = all.iter().find(|s| {
            s.name == "http_request_latencies_bucket"
                && s.labels.get("verb").map(String::as_str) == Some("POST")
                && s.labels.get("path").map(String::as_str) == Some("/mutate")
                && s.labels.get("le").and_then(|v| v.parse::<f64>().ok()) == le.parse::<f64>().ok()
                && s.labels.len() == 3
        });
        assert!(bucket.is_some(), "http_request_latencies_bucket{{le={le:?},verb,path}} missing\n{text}");
    }
    for summary in ["http_request_latencies", "http_request_duration_microseconds"] {
        let sum = sample(&all, &format!("{summary}_sum"), &request);
        let n = sample(&all, &format!("{summary}_count"), &request);
        let (Some(sum), Some(n)) = (sum, n) else { panic!("{summary}_sum/_count{{verb,path}} missing\n{text}") };
        assert!(n >= 5.0, "{summary}_count {n}");
        // Microseconds: an admission over TLS takes well over 10 µs (in seconds the mean would be far below 10).
        assert!(sum / n > 10.0, "{summary}: mean {} is not in microseconds", sum / n);
    }
    let web_identity = sample(&all, "pod_identity_webhook_pod_count", &[("method", "sts_web_identity")]);
    assert!(web_identity.is_some_and(|c| c >= 3.0), "pod_count{{method=sts_web_identity}}: {web_identity:?}\n{text}");
    let pod_identity = sample(&all, "pod_identity_webhook_pod_count", &[("method", "container_credentials")]);
    assert!(pod_identity.is_some_and(|c| c >= 1.0), "pod_count{{method=container_credentials}}: {pod_identity:?}");
    let missing = metric_value(&text, "pod_identity_webhook_missing_sa_count");
    assert_eq!(missing, Some(1.0), "pod_identity_webhook_missing_sa_count: {missing:?}\n{text}");
    assert_eq!(metric_value(&text, "pod_identity_webhook_used"), Some(1.0), "pod_identity_webhook_used\n{text}");
    scope.cleanup().await;
}
