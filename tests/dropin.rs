//! The binary as the reference webhook's users run it, without a cluster: started under the reference's name
//! `webhook`, with the reference's command lines and Go's flag syntax; the one-line refusals; a port below 1024
//! refused with its fixes; a missing container-credentials file; the reference's ConfigMap as kOps writes it.
//! (tests/e2e_dropin.rs does the same against a real API server.)

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use irsa_webhook::identity::ServiceAccountRef;
use irsa_webhook::server::certs::generate;
use irsa_webhook::settings::MutationSettings;
use irsa_webhook::store::config_map::ConfigMapEntries;
use serde_json::{json, Value};

mod support;
use support::{binary_as, free_loopback_port};

const SERVICE_ACCOUNTS: &str = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app\n  namespace: ns\n  annotations:\n    eks.amazonaws.com/role-arn: arn:aws:iam::111122223333:role/app\n";
/// The arguments of the container command of the reference's deploy/deployment-base.yaml (after `/webhook`).
fn reference_deployment_args() -> Vec<String> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dropin/reference-deploy/deployment-base.yaml");
    let text = std::fs::read_to_string(path).expect("the reference's deployment-base.yaml");
    let deployment: Value = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("YAML"))
        .find(|doc: &Value| doc["kind"] == "Deployment")
        .expect("a Deployment");
    let command: Vec<String> =
        serde_json::from_value(deployment["spec"]["template"]["spec"]["containers"][0]["command"].clone()).unwrap();
    assert_eq!(command[0], "/webhook");
    command[1..].to_vec()
}
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A directory (world-readable, so another user can run what is in it) with the built binary hard-linked as
/// `webhook`, as the reference image has it.
struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        binary_as(dir.path(), "webhook");
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn webhook(&self) -> Command {
        let mut command = Command::new(self.path("webhook"));
        // Every flag can come from IRSA_<FLAG>: keep the test runner's environment out.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("IRSA_") || name == "RUST_LOG" || name == "KUBECONFIG" {
                command.env_remove(name);
            }
        }
        command.stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.webhook().args(args).output().expect("run webhook")
    }

    /// A serving pair for localhost in `<dir>/certs/tls.{crt,key}`, the layout of /etc/webhook/certs; the CA PEM.
    fn certificates(&self) -> String {
        let certs = generate(&["localhost".into(), "127.0.0.1".into()], 2, 2).expect("certificates");
        std::fs::create_dir_all(self.path("certs")).unwrap();
        std::fs::write(self.path("certs/tls.crt"), &certs.cert_pem).unwrap();
        std::fs::write(self.path("certs/tls.key"), &certs.key_pem).unwrap();
        certs.ca_pem
    }

    fn service_accounts(&self) -> PathBuf {
        let path = self.path("serviceaccounts.yaml");
        std::fs::write(&path, SERVICE_ACCOUNTS).unwrap();
        path
    }
}

fn stderr_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr).lines().map(str::to_owned).collect()
}

/// Exit status 1 and exactly one line on stderr that contains every `wanted`.
fn assert_one_line_refusal(output: &Output, wanted: &[&str]) {
    let lines = stderr_lines(output);
    assert_eq!(output.status.code(), Some(1), "stderr: {lines:?}");
    assert_eq!(lines.len(), 1, "one line: {lines:?}");
    for w in wanted {
        assert!(lines[0].contains(w), "{w:?} missing from {:?}", lines[0]);
    }
}

/// Exit status 1, and the last stderr line (after the start-up log) is the one error line with every `wanted`.
fn assert_ends_with_one_error_line(output: &Output, wanted: &[&str]) {
    let lines = stderr_lines(output);
    assert_eq!(output.status.code(), Some(1), "stderr: {lines:?}");
    let errors: Vec<&String> = lines.iter().filter(|l| l.starts_with("irsa-webhook: ")).collect();
    assert_eq!(errors.len(), 1, "one error line: {lines:?}");
    assert_eq!(Some(errors[0]), lines.last(), "the error ends the output: {lines:?}");
    for w in wanted {
        assert!(errors[0].contains(w), "{w:?} missing from {:?}", errors[0]);
    }
}

/// A `webhook` process serving on loopback; killed on drop, its log printed if the test is failing.
struct Serving {
    child: Child,
    log: PathBuf,
    https: String,
    metrics: String,
}

impl Serving {
    fn start(dir: &Dir, args: &[&str], env: &[(&str, &Path)]) -> Self {
        let (port, metrics_port) = (free_loopback_port(), free_loopback_port());
        let log = dir.path(&format!("webhook-{port}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let mut command = dir.webhook();
        command
            .args(args)
            .args(["--bind-address=127.0.0.1", &format!("--port={port}"), &format!("--metrics-port={metrics_port}")])
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().expect("start webhook");
        Self {
            child,
            log,
            https: format!("https://localhost:{port}"),
            metrics: format!("http://127.0.0.1:{metrics_port}"),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for `path` on the metrics port to answer 200 (`/healthz` is the reference's readiness probe).
    async fn wait_for(&mut self, path: &str) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("webhook exited ({status}); log:\n{}", self.log());
            }
            if let Ok(response) = client.get(format!("{}{path}", self.metrics)).send().await {
                if response.status().is_success() {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "{path} not answering after {READY_TIMEOUT:?}; log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let _ = writeln!(std::io::stderr(), "--- webhook log ---\n{}\n--- end ---", self.log());
        }
    }
}

/// An AdmissionReview for a pod of ServiceAccount ns/app, in the version the reference's configuration asks for.
fn review(api_version: &str) -> Value {
    json!({
        "apiVersion": api_version, "kind": "AdmissionReview",
        "request": {
            "uid": "uid-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "ns", "operation": "CREATE",
            "object": {"metadata": {"name": "p"}, "spec": {"serviceAccountName": "app", "containers": [{"name": "c"}]}}
        }
    })
}

/// The env var names the patch gives container 0.
async fn mutated_env(client: &reqwest::Client, https: &str, api_version: &str) -> Vec<String> {
    let response =
        client.post(format!("{https}/mutate")).json(&review(api_version)).send().await.expect("POST /mutate");
    assert_eq!(response.status().as_u16(), 200);
    let answer: Value = response.json().await.expect("an AdmissionReview");
    assert_eq!(answer["apiVersion"], api_version, "answered in kind: {answer}");
    assert_eq!(answer["response"]["uid"], "uid-1");
    let Some(patch) = answer["response"]["patch"].as_str() else { return Vec::new() };
    let patch: Value =
        serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(patch).unwrap()).unwrap();
    patch
        .as_array()
        .into_iter()
        .flatten()
        .filter(|op| op["path"].as_str().is_some_and(|p| p.starts_with("/spec/containers/0/env")))
        .flat_map(|op| match &op["value"] {
            Value::Array(list) => list.iter().map(|e| e["name"].as_str().unwrap_or_default().to_owned()).collect(),
            one => vec![one["name"].as_str().unwrap_or_default().to_owned()],
        })
        .collect()
}

fn https_client(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap()
}

#[test]
fn version_under_the_reference_name_in_both_spellings() {
    let dir = Dir::new();
    for flag in ["--version", "-version", "--version=true"] {
        let output = dir.run(&[flag]);
        assert!(output.status.success(), "{flag}: {output:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            format!("irsa-webhook {}", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn contradictions_and_bad_values_end_start_up_in_one_line() {
    let dir = Dir::new();
    let sas = dir.service_accounts();
    let sas = sas.to_str().unwrap();
    let output = dir.run(&["--in-cluster=false", "--cert-secret=x", "--service-accounts", sas]);
    assert_one_line_refusal(&output, &["conflicting certificate choices", "--cert-secret", "--in-cluster=false"]);
    let output = dir.run(&["-in-cluster", "-self-signed", "--service-accounts", sas]);
    assert_one_line_refusal(&output, &["--self-signed", "--in-cluster=true"]);
    let output =
        dir.run(&["--self-signed", "--service-accounts", sas, "--tls-cipher-suites=TLS_RSA_WITH_AES_128_CBC_SHA"]);
    assert_one_line_refusal(&output, &["TLS_RSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]);
    // A value Go would refuse is refused (clap's message, with usage).
    let output = dir.run(&["--in-cluster=yes"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("Go's spellings"), "{output:?}");
}

/// As a user without the right to bind below 1024 (the image's non-root user), the reference's default port 443
/// ends start-up with one line: the port, why, and the two fixes.
#[test]
fn a_privileged_port_without_the_right_names_the_port_and_both_fixes() {
    let floor: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024);
    if floor <= 443 {
        eprintln!("net.ipv4.ip_unprivileged_port_start is {floor}: anyone may bind 443 here, nothing to refuse");
        return;
    }
    let dir = Dir::new();
    let sas = dir.service_accounts();
    std::fs::set_permissions(&sas, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let args = ["--self-signed", "--ca-bundle-out=/dev/null", "--service-accounts", sas.to_str().unwrap()];
    let metrics_port = format!("--metrics-port={}", free_loopback_port());
    let args = [&args[..], &["--bind-address=127.0.0.1", &metrics_port]].concat();
    // Root drops to nobody (and with it every capability); anyone else runs it as is.
    let is_root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    let output = if is_root {
        let mut command = Command::new("setpriv");
        command.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(dir.path("webhook")).args(&args);
        command.env_clear().stdin(Stdio::null()).output().expect("setpriv (util-linux) runs the webhook as nobody")
    } else {
        dir.run(&args)
    };
    assert_ends_with_one_error_line(
        &output,
        &["127.0.0.1:443", "below 1024", "--port=8443", "targetPort", "NET_BIND_SERVICE"],
    );
}

/// deploy/deployment-base.yaml's exact args (plus where to listen, and --service-accounts instead of a cluster):
/// certificate files at the default path — /etc/webhook/certs, moved for the test by IRSA_DEFAULT_CERT_DIR, the
/// only way to point it elsewhere — `/healthz` on the metrics port as the reference's probes expect, and an
/// admission in v1beta1 as the reference's MutatingWebhookConfiguration asks for.
#[tokio::test]
async fn the_reference_deployment_args_serve_with_certificates_at_the_default_path() {
    let dir = Dir::new();
    let ca = dir.certificates();
    let sas = dir.service_accounts();
    let reference = reference_deployment_args();
    let mut args: Vec<&str> = reference.iter().map(String::as_str).collect();
    args.extend(["--service-accounts", sas.to_str().unwrap()]);
    let mut webhook = Serving::start(&dir, &args, &[("IRSA_DEFAULT_CERT_DIR", &dir.path("certs"))]);
    webhook.wait_for("/healthz").await;
    webhook.wait_for("/readyz").await;
    let client = https_client(&ca);
    let env = mutated_env(&client, &webhook.https, "admission.k8s.io/v1beta1").await;
    assert_eq!(env, ["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"]);
    let served_from = format!("cert={}", dir.path("certs/tls.crt").display());
    assert!(webhook.log().contains(&served_from), "{served_from} not in the log:\n{}", webhook.log());
    // The files named explicitly instead: the same.
    let cert = dir.path("certs/tls.crt");
    let key = dir.path("certs/tls.key");
    let mut args = reference;
    args.extend([format!("--tls-cert={}", cert.display()), format!("--tls-key={}", key.display())]);
    args.extend(["--service-accounts".into(), sas.display().to_string(), "-v=5".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut webhook = Serving::start(&dir, &args, &[]);
    webhook.wait_for("/readyz").await;
    let env = mutated_env(&client, &webhook.https, "admission.k8s.io/v1beta1").await;
    assert_eq!(env, ["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"]);
    assert!(webhook.log().contains("DEBUG"), "-v=5 logs at debug level:\n{}", webhook.log());
}

/// --watch-container-credentials-config pointing at a file that does not exist yet: the webhook starts and serves
/// web identity; the file appearing switches the ServiceAccount to Pod Identity; deleting it switches it back.
#[tokio::test]
async fn a_missing_container_credentials_file_is_no_identities_until_it_appears() {
    let dir = Dir::new();
    let ca = dir.certificates();
    let sas = dir.service_accounts();
    let config = dir.path("container-credentials.json");
    let cert = dir.path("certs/tls.crt");
    let key = dir.path("certs/tls.key");
    let args = [
        "--service-accounts",
        sas.to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--watch-container-credentials-config",
        config.to_str().unwrap(),
    ];
    let mut webhook = Serving::start(&dir, &args, &[]);
    webhook.wait_for("/readyz").await;
    let client = https_client(&ca);
    let web_identity = ["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"];
    let pod_identity = ["AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"];
    assert_eq!(mutated_env(&client, &webhook.https, "admission.k8s.io/v1").await, web_identity);

    std::fs::write(&config, r#"{"identities":[{"namespace":"ns","serviceAccount":"app"}]}"#).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while mutated_env(&client, &webhook.https, "admission.k8s.io/v1").await != pod_identity {
        assert!(Instant::now() < deadline, "the new file was not picked up; log:\n{}", webhook.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    std::fs::remove_file(&config).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while mutated_env(&client, &webhook.https, "admission.k8s.io/v1").await != web_identity {
        assert!(Instant::now() < deadline, "the deletion was not picked up; log:\n{}", webhook.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(webhook.log().lines().all(|l| !l.contains("ERROR")), "no error for a missing file:\n{}", webhook.log());
}

/// The ConfigMap kOps writes for --watch-config-map reads unchanged: every entry, its audience and regional STS,
/// and TokenExpiration 0 (Go's zero value) as "not set", which the reference turns into its default.
#[test]
fn the_config_map_kops_writes_is_read_unchanged() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dropin/kops-configmap.yaml");
    let config_map: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(config_map["metadata"]["name"], "pod-identity-webhook");
    let text = config_map["data"]["config"].as_str().expect("data.config");
    let entries = ConfigMapEntries::parse(text, &MutationSettings::default()).expect("the kOps config parses");
    assert!(entries.warnings.is_empty(), "{:?}", entries.warnings);
    assert_eq!(entries.len(), 2);
    for (namespace, name) in [("default", "s3-reader"), ("kube-system", "dns-controller")] {
        let entry = entries.get(&ServiceAccountRef::new(namespace, name)).expect("an entry");
        let role = format!("arn:aws:iam::123456789012:role/{name}.{namespace}.sa.example.com");
        assert_eq!(entry.role_arn.as_deref(), Some(role.as_str()));
        assert_eq!(entry.audience.as_deref(), Some("amazonaws.com"));
        assert_eq!(entry.regional_sts, Some(true));
        assert_eq!(entry.token_expiration, None, "0 means the --token-expiration default");
    }
    assert!(entries.get(&ServiceAccountRef::new("default", "other")).is_none());
}
