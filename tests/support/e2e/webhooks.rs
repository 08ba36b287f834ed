//! Webhook configurations (by `url:` or `service:`) and the `irsa-webhook serve` binary as a child process.

use super::*;

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

pub(super) fn webhook_config_object(name: &str, scope: &Scope, webhooks: &[WebhookSpec]) -> DynamicObject {
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
    pub(super) api: Api<DynamicObject>,
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
        let mut command = irsa_webhook();
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
        command.env_remove("RUST_LOG");
        let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
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
