//! End to end: self-managed certificates (`serve --cert-secret`) against a real kube-apiserver.
//!
//! Needs the harness of tests/e2e/README.md (`KUBECONFIG` and `IRSA_E2E_*` from `tests/e2e/cluster.sh env`);
//! without it every test fails, saying so. Each test uses its own namespace and MutatingWebhookConfiguration and
//! deletes the configuration at the end (also on failure); the replicas are `irsa-webhook serve` processes killed
//! when the test ends, whose logs are printed when it fails.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, ServiceAccount};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Api;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::{json, Value};

mod support;
use support::e2e::{ca_bundles_of, connect, env_of, free_port, poll, unique, Cleanup};
use support::{irsa_webhook, BIN};

const SECRET: &str = "irsa-webhook-certs";
const SERVICE: &str = "irsa-webhook";
const ROLE: &str = "arn:aws:iam::111122223333:role/e2e-certs";
/// `--cert-resync` of every replica here.
const RESYNC: Duration = Duration::from_secs(1);
/// What a loaded 2-core machine may add on top of one resync (a Secret read, a patch, a handshake).
const SLACK: Duration = Duration::from_secs(3);
const READY_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------------------------
// The harness: environment, client, namespaces, clean-up

struct E2e {
    kubeconfig: PathBuf,
    client: kube::Client,
    /// Logs, ServiceAccount files; removed at the end.
    dir: tempfile::TempDir,
}

async fn e2e() -> E2e {
    let cluster = connect().await;
    E2e {
        kubeconfig: cluster.harness.kubeconfig.clone(),
        client: cluster.client,
        dir: tempfile::tempdir().expect("temp dir"),
    }
}

/// A pod of ServiceAccount `app`; `metadata` gives its name or generateName.
fn app_pod(metadata: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": metadata,
        "spec": {"serviceAccountName": "app", "containers": [{"name": "app", "image": "busybox"}]}
    }))
    .unwrap()
}

/// The webhook gave the pod [`ROLE`].
fn has_role(pod: &Pod) -> bool {
    env_of(pod).contains(&("AWS_ROLE_ARN".into(), ROLE.into()))
}

impl E2e {
    fn cleanup(&self) -> Cleanup {
        Cleanup::new(&self.kubeconfig)
    }

    /// A fresh namespace labelled `irsa-e2e-ns=<name>` (1.20 does not set kubernetes.io/metadata.name).
    async fn namespace(&self, cleanup: &mut Cleanup, prefix: &str) -> String {
        let name = unique(prefix);
        let namespace: Namespace = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"irsa-e2e-ns": name}}
        }))
        .unwrap();
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|e| panic!("cannot create namespace {name}: {e}"));
        cleanup.add_kind::<Namespace>(&name);
        name
    }

    /// A MutatingWebhookConfiguration calling `url`, for pods of namespace `ns` only, without a caBundle (the
    /// webhook under test maintains it). `webhooks` entries, named w0.irsa.e2e, w1.irsa.e2e, ...
    async fn webhook_config(
        &self,
        cleanup: &mut Cleanup,
        ns: &str,
        url: &str,
        failure_policy: &str,
        webhooks: usize,
    ) -> String {
        self.webhook_config_for(cleanup, ns, &vec![url.to_owned(); webhooks], failure_policy).await
    }

    /// As [`E2e::webhook_config`], one webhook per url (`w<i>.irsa.e2e` calls `urls[i]`).
    async fn webhook_config_for(
        &self,
        cleanup: &mut Cleanup,
        ns: &str,
        urls: &[String],
        failure_policy: &str,
    ) -> String {
        let name = format!("{ns}-webhook");
        let entries: Vec<Value> = urls
            .iter()
            .enumerate()
            .map(|(i, url)| {
                json!({
                    "name": format!("w{i}.irsa.e2e"),
                    "admissionReviewVersions": ["v1", "v1beta1"],
                    "sideEffects": "None",
                    "failurePolicy": failure_policy,
                    "timeoutSeconds": 5,
                    "clientConfig": {"url": url},
                    "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
                    "namespaceSelector": {"matchLabels": {"irsa-e2e-ns": ns}},
                })
            })
            .collect();
        let configuration: MutatingWebhookConfiguration =
            serde_json::from_value(json!({"metadata": {"name": name}, "webhooks": entries})).unwrap();
        cleanup.add_kind::<MutatingWebhookConfiguration>(&name);
        Api::<MutatingWebhookConfiguration>::all(self.client.clone())
            .create(&PostParams::default(), &configuration)
            .await
            .unwrap_or_else(|e| panic!("cannot create MutatingWebhookConfiguration {name}: {e}"));
        name
    }

    /// The manifest file given to `--service-accounts` (so the replicas need no ServiceAccount watch).
    fn service_accounts_file(&self, ns: &str) -> PathBuf {
        let path = self.dir.path().join(format!("serviceaccounts-{ns}.yaml"));
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app\n  namespace: {ns}\n  annotations:\n    \
                 eks.amazonaws.com/role-arn: {ROLE}\n"
            ),
        )
        .unwrap();
        path
    }

    fn replica_args(&self, ns: &str, webhook_config: &str, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "--cert-secret",
            SECRET,
            "--webhook-config",
            webhook_config,
            "--namespace",
            ns,
            "--service-name",
            SERVICE,
            "--bind-address",
            "127.0.0.1",
            "--shutdown-timeout",
            "1s",
            "--log-level",
            "info,irsa_webhook=debug",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push("--cert-resync".into());
        args.push(format!("{}s", RESYNC.as_secs()));
        args.push("--kubeconfig".into());
        args.push(self.kubeconfig.display().to_string());
        args.push("--service-accounts".into());
        args.push(self.service_accounts_file(ns).display().to_string());
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    async fn secret(&self, ns: &str) -> Option<Secret> {
        Api::<Secret>::namespaced(self.client.clone(), ns).get_opt(SECRET).await.expect("get the certificate Secret")
    }

    /// Waits until the configuration's caBundles are exactly `want`, one per webhook entry.
    async fn wait_for_ca_bundles(&self, config: &str, want: &[Option<String>], what: &str) {
        poll(what, RESYNC + SLACK, || async {
            let got = self.ca_bundles(config).await;
            if got == want {
                Ok(())
            } else {
                Err(format!("caBundles {got:?}"))
            }
        })
        .await;
    }

    /// ServiceAccount `app` of `ns`, annotated with [`ROLE`].
    async fn create_app_service_account(&self, ns: &str) {
        let service_account: ServiceAccount = serde_json::from_value(json!({
            "metadata": {"name": "app", "annotations": {"eks.amazonaws.com/role-arn": ROLE}}
        }))
        .unwrap();
        Api::<ServiceAccount>::namespaced(self.client.clone(), ns)
            .create(&PostParams::default(), &service_account)
            .await
            .unwrap();
    }

    /// Server-side dry-run creations of `pod` until one comes back mutated: a new configuration takes up to about
    /// a second to be used.
    async fn wait_until_mutated(&self, pods: &Api<Pod>, pod: &Pod) {
        let dry_run = PostParams { dry_run: true, ..PostParams::default() };
        poll("a dry-run pod to come back mutated", Duration::from_secs(20), || async {
            match pods.create(&dry_run, pod).await {
                Ok(created) if has_role(&created) => Ok(()),
                Ok(_) => Err("admitted unmutated".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
    }

    async fn ca_bundles(&self, name: &str) -> Vec<Option<String>> {
        let configuration = Api::<MutatingWebhookConfiguration>::all(self.client.clone())
            .get(name)
            .await
            .expect("get the webhook config");
        ca_bundles_of(&configuration)
    }
}

fn secret_text(secret: &Secret, key: &str) -> String {
    let data = secret.data.as_ref().unwrap_or_else(|| panic!("Secret {SECRET} has no data"));
    let bytes = data.get(key).unwrap_or_else(|| panic!("Secret {SECRET} has no {key}: keys {:?}", data.keys()));
    String::from_utf8(bytes.0.clone()).unwrap_or_else(|_| panic!("Secret {SECRET} {key} is not text"))
}

fn pem_der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap_or_else(|e| panic!("not a PEM certificate ({e}): {pem}"))
        .to_vec()
}

/// Seconds from now to the certificate's notAfter.
fn seconds_left(der: &[u8]) -> i64 {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("parse the certificate");
    cert.validity().not_after.timestamp() - time::OffsetDateTime::now_utc().unix_timestamp()
}

// ---------------------------------------------------------------------------------------------------------------
// Replicas: `irsa-webhook serve` processes

struct Replica {
    name: String,
    child: Child,
    port: u16,
    metrics_port: u16,
    log: PathBuf,
}

impl Replica {
    fn spawn(name: &str, dir: &Path, args: &[String]) -> Self {
        let (port, metrics_port) = (free_port(Ipv4Addr::LOCALHOST.into()), free_port(Ipv4Addr::LOCALHOST.into()));
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        // Nothing from the test runner's environment may act as a flag (IRSA_<FLAG>).
        let child = irsa_webhook()
            .arg("serve")
            .args(args)
            .args(["--port", &port.to_string(), "--metrics-port", &metrics_port.to_string()])
            .env("RUST_LOG", "info,irsa_webhook=debug")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        Replica { name: name.to_owned(), child, port, metrics_port, log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics (with the log) if the process has exited: a restart would defeat "without restart".
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("replica {} exited ({status}); its log:\n{}", self.name, self.log_text());
        }
    }

    async fn wait_ready(&mut self) {
        let url = format!("http://127.0.0.1:{}/readyz", self.metrics_port);
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).no_proxy().build().unwrap();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.assert_running();
            let answer = match http.get(&url).send().await {
                Ok(r) if r.status().is_success() => return,
                Ok(r) => format!("{} {}", r.status(), r.text().await.unwrap_or_default().trim()),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                panic!(
                    "replica {} not ready after {READY_TIMEOUT:?} ({url}: {answer}); its log:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn leaf(&self) -> Result<Vec<u8>, String> {
        served_leaf(self.port).await
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/mutate", self.port)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- log of replica {} ({}) -----\n{}", self.name, self.log.display(), self.log_text());
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// TLS: what a replica serves, and whether it verifies against a CA for a name

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Accepts any server certificate (still checking the handshake signature), to see what is served.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

async fn handshake(port: u16, config: rustls::ClientConfig, server_name: &str) -> Result<Vec<u8>, String> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| format!("connect :{port}: {e}"))?;
    let name = ServerName::try_from(server_name.to_owned()).map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tls = tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
        .await
        .map_err(|_| format!("TLS handshake with :{port} timed out"))?
        .map_err(|e| format!("TLS handshake with :{port} as {server_name}: {e}"))?;
    let leaf = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).ok_or("no peer certificate")?;
    Ok(leaf.to_vec())
}

/// The leaf certificate (DER) a fresh handshake with 127.0.0.1:`port` is given.
async fn served_leaf(port: u16) -> Result<Vec<u8>, String> {
    let provider = provider();
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    handshake(port, config, "localhost").await
}

fn roots(ca_pem: &str) -> Arc<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(pem_der(ca_pem))).expect("the CA is a usable trust anchor");
    Arc::new(roots)
}

/// A handshake that verifies the server's chain against `ca_pem` for `server_name` (webpki, as a client would).
async fn verified_handshake(port: u16, ca_pem: &str, server_name: &str) -> Result<Vec<u8>, String> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(ca_pem))
        .with_no_client_auth();
    handshake(port, config, server_name).await
}

/// Whether `leaf` verifies against `ca_pem` for `server_name` (DNS name or IP address), now.
fn verifies_for(leaf: &[u8], ca_pem: &str, server_name: &str) -> Result<(), String> {
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(roots(ca_pem), provider())
        .build()
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(server_name.to_owned()).map_err(|e| e.to_string())?;
    verifier
        .verify_server_cert(&CertificateDer::from(leaf.to_vec()), &[], &name, &[], UnixTime::now())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn service_names(ns: &str) -> Vec<String> {
    vec![
        format!("{SERVICE}.{ns}.svc"),
        format!("{SERVICE}.{ns}.svc.cluster.local"),
        format!("{SERVICE}.{ns}"),
        SERVICE.to_owned(),
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
    ]
}

// ---------------------------------------------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_started_together_make_one_secret_and_serve_the_same_verified_certificate() {
    let e2e = e2e().await;
    let mut cleanup = e2e.cleanup();
    let ns = e2e.namespace(&mut cleanup, "e2e-certs-race").await;
    // Two webhooks in one configuration: the caBundle of each must be kept.
    let config = e2e.webhook_config(&mut cleanup, &ns, "https://127.0.0.1:1/mutate", "Ignore", 2).await;
    assert!(e2e.secret(&ns).await.is_none(), "no Secret before the replicas start");

    let args = e2e.replica_args(&ns, &config, &[]);
    let mut a = Replica::spawn("a", e2e.dir.path(), &args);
    let mut b = Replica::spawn("b", e2e.dir.path(), &args);
    a.wait_ready().await;
    b.wait_ready().await;

    let secrets = Api::<Secret>::namespaced(e2e.client.clone(), &ns).list(&ListParams::default()).await.unwrap();
    let names: Vec<_> = secrets.items.iter().filter_map(|s| s.metadata.name.clone()).collect();
    assert_eq!(names, vec![SECRET.to_owned()], "exactly one Secret in {ns} after two replicas raced to create it");
    let secret = &secrets.items[0];
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    let mut keys: Vec<_> = secret.data.as_ref().map(|d| d.keys().cloned().collect()).unwrap_or_default();
    keys.sort();
    assert_eq!(keys, ["ca.crt", "ca.key", "tls.crt", "tls.key"]);
    let ca = secret_text(secret, "ca.crt");
    let tls_crt = pem_der(&secret_text(secret, "tls.crt"));

    let leaf_a = a.leaf().await.unwrap();
    let leaf_b = b.leaf().await.unwrap();
    assert!(leaf_a == leaf_b, "the two replicas serve different certificates");
    assert!(leaf_a == tls_crt, "the served certificate is not the Secret's tls.crt");
    let creators = [&a, &b].iter().filter(|r| r.log_text().contains("created the certificate Secret")).count();
    eprintln!("replicas that created the Secret (by their logs): {creators}");

    for name in service_names(&ns) {
        verifies_for(&leaf_a, &ca, &name)
            .unwrap_or_else(|e| panic!("the served certificate does not verify against ca.crt for {name}: {e}"));
    }
    assert!(
        verifies_for(&leaf_a, &ca, &format!("other.{ns}.svc")).is_err(),
        "verification must be for the service names only (sanity check of the verifier)"
    );
    let svc = format!("{SERVICE}.{ns}.svc");
    for replica in [&a, &b] {
        let served = verified_handshake(replica.port, &ca, &svc).await.unwrap_or_else(|e| {
            panic!("replica {}: a client trusting only ca.crt cannot connect as {svc}: {e}", replica.name)
        });
        assert!(served == leaf_a);
    }

    e2e.wait_for_ca_bundles(
        &config,
        &[Some(ca.clone()), Some(ca.clone())],
        "every caBundle to equal the Secret's ca.crt",
    )
    .await;

    // Settled: over several resyncs nobody rewrites the Secret and the replicas keep serving the same certificate.
    let version = e2e.secret(&ns).await.unwrap().metadata.resource_version;
    tokio::time::sleep(RESYNC * 3).await;
    assert_eq!(
        e2e.secret(&ns).await.unwrap().metadata.resource_version,
        version,
        "the Secret was rewritten although nothing was due"
    );
    a.assert_running();
    b.assert_running();
    assert!(a.leaf().await.unwrap() == leaf_a && b.leaf().await.unwrap() == leaf_a);
}

/// A CA (10 years) and a serving certificate for the replicas' names that expires `leaf_seconds` from now.
fn material_expiring_in(ns: &str, leaf_seconds: i64) -> [(String, String); 4] {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose, SanType,
    };
    let now = time::OffsetDateTime::now_utc();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "e2e-certs test CA");
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    ca_params.not_before = now - time::Duration::hours(1);
    ca_params.not_after = now + time::Duration::days(3650);
    let ca_key = KeyPair::generate().unwrap();
    let ca_key_pem = ca_key.serialize_pem();
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();

    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut names = service_names(ns);
    names.push("::1".into());
    params.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(n.clone().try_into().unwrap()),
        })
        .collect();
    params.distinguished_name.push(DnType::CommonName, SERVICE);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::seconds(leaf_seconds);
    let key = KeyPair::generate().unwrap();
    let leaf = params.signed_by(&key, &ca).unwrap();
    [
        ("ca.crt".into(), ca.pem()),
        ("ca.key".into(), ca_key_pem),
        ("tls.crt".into(), leaf.pem()),
        ("tls.key".into(), key.serialize_pem()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_serving_certificate_due_for_renewal_is_renewed_with_the_same_ca_and_served_by_every_replica_without_restart()
{
    // The Secret's certificate has 45 s left and the replicas renew 30 s before expiry: they start by serving it,
    // then, about 15 s in, one of them renews it and both switch to the new one without restarting.
    const LEAF_SECONDS: i64 = 45;
    const RENEW_BEFORE: &str = "30s";
    let e2e = e2e().await;
    let mut cleanup = e2e.cleanup();
    let ns = e2e.namespace(&mut cleanup, "e2e-certs-renew").await;
    let config = e2e.webhook_config(&mut cleanup, &ns, "https://127.0.0.1:1/mutate", "Ignore", 1).await;
    let material = material_expiring_in(&ns, LEAF_SECONDS);
    let old_ca = material[0].1.clone();
    let old_ca_key = material[1].1.clone();
    let old_leaf = pem_der(&material[2].1);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": SECRET},
        "type": "kubernetes.io/tls",
        "stringData": material.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
    }))
    .unwrap();
    Api::<Secret>::namespaced(e2e.client.clone(), &ns).create(&PostParams::default(), &secret).await.unwrap();

    let args = e2e.replica_args(&ns, &config, &["--cert-renew-before", RENEW_BEFORE]);
    let mut a = Replica::spawn("a", e2e.dir.path(), &args);
    let mut b = Replica::spawn("b", e2e.dir.path(), &args);
    a.wait_ready().await;
    b.wait_ready().await;
    let (pid_a, pid_b) = (a.child.id(), b.child.id());
    assert!(
        seconds_left(&old_leaf) > 30,
        "the machine is too slow for this test: the replicas became ready after the certificate was due"
    );
    for replica in [&a, &b] {
        assert!(
            replica.leaf().await.unwrap() == old_leaf,
            "replica {} should serve the Secret's certificate while it is not yet due (it has {} s left, renewal \
             at 30 s)",
            replica.name,
            seconds_left(&old_leaf)
        );
    }

    // Watch both replicas through the renewal: when each starts serving a new certificate.
    let deadline = Instant::now() + Duration::from_secs(LEAF_SECONDS as u64 - 30) + RESYNC + Duration::from_secs(20);
    let (mut changed_a, mut changed_b) = (None, None);
    while changed_a.is_none() || changed_b.is_none() {
        assert!(
            Instant::now() < deadline,
            "the certificate was not renewed and served by both replicas in time (a changed: {}, b changed: {})",
            changed_a.is_some(),
            changed_b.is_some()
        );
        for (replica, changed) in [(&a, &mut changed_a), (&b, &mut changed_b)] {
            if changed.is_none() {
                let leaf = replica.leaf().await.unwrap();
                if leaf != old_leaf {
                    *changed = Some((Instant::now(), leaf));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (when_a, leaf_a) = changed_a.unwrap();
    let (when_b, leaf_b) = changed_b.unwrap();
    let apart = if when_a > when_b { when_a - when_b } else { when_b - when_a };
    assert!(leaf_a == leaf_b, "the replicas switched to different new certificates");
    assert!(apart <= RESYNC + SLACK, "the replicas served different certificates for {apart:?} (resync {RESYNC:?})");

    let renewed = e2e.secret(&ns).await.unwrap();
    assert_eq!(secret_text(&renewed, "ca.crt"), old_ca, "renewal must keep the CA (ca.crt changed)");
    assert_eq!(secret_text(&renewed, "ca.key"), old_ca_key, "renewal must keep the CA key");
    assert!(pem_der(&secret_text(&renewed, "tls.crt")) == leaf_a, "the served certificate is not the Secret's tls.crt");
    let left = seconds_left(&leaf_a);
    assert!(left > 364 * 86400, "the renewed certificate should last a year, has {left} s");
    for name in service_names(&ns) {
        verifies_for(&leaf_a, &old_ca, &name).unwrap_or_else(|e| {
            panic!("the renewed certificate does not verify against the unchanged CA for {name}: {e}")
        });
    }
    assert_eq!(e2e.ca_bundles(&config).await, vec![Some(old_ca.clone())], "the caBundle stays the old CA");
    a.assert_running();
    b.assert_running();
    assert_eq!((a.child.id(), b.child.id()), (pid_a, pid_b), "no restart");

    // A replica started now takes the renewed certificate as it is.
    let version = renewed.metadata.resource_version.clone();
    let mut c = Replica::spawn("c", e2e.dir.path(), &args);
    c.wait_ready().await;
    assert!(c.leaf().await.unwrap() == leaf_a, "a new replica serves the renewed certificate");
    tokio::time::sleep(RESYNC * 2).await;
    assert_eq!(e2e.secret(&ns).await.unwrap().metadata.resource_version, version, "nobody renews again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_changed_or_emptied_ca_bundle_is_put_back_within_a_resync() {
    let e2e = e2e().await;
    let mut cleanup = e2e.cleanup();
    let ns = e2e.namespace(&mut cleanup, "e2e-certs-drift").await;
    let config = e2e.webhook_config(&mut cleanup, &ns, "https://127.0.0.1:1/mutate", "Ignore", 2).await;
    let mut a = Replica::spawn("a", e2e.dir.path(), &e2e.replica_args(&ns, &config, &[]));
    a.wait_ready().await;
    let ca = secret_text(&e2e.secret(&ns).await.unwrap(), "ca.crt");
    let want = vec![Some(ca.clone()), Some(ca.clone())];
    e2e.wait_for_ca_bundles(&config, &want, "the caBundles to be set").await;

    let other_ca = material_expiring_in(&ns, 3600)[0].1.clone();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let drifts = [
        (
            "caBundle of the second webhook removed",
            json!([{"op": "remove", "path": "/webhooks/1/clientConfig/caBundle"}]),
        ),
        (
            "caBundle of the first webhook emptied",
            json!([{"op": "replace", "path": "/webhooks/0/clientConfig/caBundle", "value": ""}]),
        ),
        (
            "both caBundles replaced by another CA",
            json!([
                {"op": "replace", "path": "/webhooks/0/clientConfig/caBundle", "value": b64(&other_ca)},
                {"op": "replace", "path": "/webhooks/1/clientConfig/caBundle", "value": b64(&other_ca)},
            ]),
        ),
    ];
    let configurations: Api<MutatingWebhookConfiguration> = Api::all(e2e.client.clone());
    for (drift, patch) in drifts {
        let patched = configurations
            .patch(&config, &PatchParams::default(), &Patch::Json::<()>(serde_json::from_value(patch).unwrap()))
            .await
            .unwrap_or_else(|e| panic!("{drift}: cannot patch: {e}"));
        let bundles: Vec<_> = ca_bundles_of(&patched);
        assert_ne!(bundles, want, "{drift}: the patch did not change anything");
        let started = Instant::now();
        poll(&format!("the webhook to put the caBundle back after: {drift}"), RESYNC + SLACK, || async {
            let got = e2e.ca_bundles(&config).await;
            if got == want {
                Ok(())
            } else {
                Err(format!("{got:?}"))
            }
        })
        .await;
        eprintln!("{drift}: put back in {:?}", started.elapsed());
        a.assert_running();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pod_is_mutated_through_a_webhook_whose_ca_bundle_the_binary_maintains() {
    let e2e = e2e().await;
    let mut cleanup = e2e.cleanup();
    let ns = e2e.namespace(&mut cleanup, "e2e-certs-pod").await;
    let args = e2e.replica_args(&ns, &format!("{ns}-webhook"), &[]);
    // The replica's port is in the webhook's url, so start it first; it finds the configuration on a resync.
    let mut a = Replica::spawn("a", e2e.dir.path(), &args);
    // failurePolicy Fail: an unverifiable or unreachable webhook rejects the pod instead of admitting it unmutated.
    let config = e2e.webhook_config(&mut cleanup, &ns, &a.url(), "Fail", 1).await;
    a.wait_ready().await;
    e2e.create_app_service_account(&ns).await;
    let ca = secret_text(&e2e.secret(&ns).await.unwrap(), "ca.crt");
    e2e.wait_for_ca_bundles(&config, &[Some(ca.clone())], "the binary to set the caBundle").await;

    let pods: Api<Pod> = Api::namespaced(e2e.client.clone(), &ns);
    let pod = app_pod(json!({"name": "app"}));
    e2e.wait_until_mutated(&pods, &pod).await;

    let created = pods
        .create(&PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("the pod was refused: {e}\nwebhook log:\n{}", a.log_text()));
    let env = env_of(&created);
    assert!(env.contains(&("AWS_ROLE_ARN".into(), ROLE.into())), "env {env:?}");
    assert!(
        env.contains(&(
            "AWS_WEB_IDENTITY_TOKEN_FILE".into(),
            "/var/run/secrets/eks.amazonaws.com/serviceaccount/token".into()
        )),
        "env {env:?}"
    );
    let spec = created.spec.as_ref().unwrap();
    let volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "aws-iam-token")
        .unwrap_or_else(|| panic!("no aws-iam-token volume: {:?}", spec.volumes));
    let token = volume.projected.as_ref().unwrap().sources.as_ref().unwrap()[0].service_account_token.as_ref().unwrap();
    assert_eq!(token.audience.as_deref(), Some("sts.amazonaws.com"));
    let mounts = spec.containers[0].volume_mounts.clone().unwrap_or_default();
    assert!(
        mounts.iter().any(|m| m.name == "aws-iam-token"
            && m.mount_path == "/var/run/secrets/eks.amazonaws.com/serviceaccount"
            && m.read_only == Some(true)),
        "mounts {mounts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_secret_is_made_again_and_every_replica_and_the_ca_bundle_follow() {
    let e2e = e2e().await;
    let mut cleanup = e2e.cleanup();
    let ns = e2e.namespace(&mut cleanup, "e2e-certs-deleted").await;
    let config = e2e.webhook_config(&mut cleanup, &ns, "https://127.0.0.1:1/mutate", "Ignore", 1).await;
    let args = e2e.replica_args(&ns, &config, &[]);
    let mut a = Replica::spawn("a", e2e.dir.path(), &args);
    let mut b = Replica::spawn("b", e2e.dir.path(), &args);
    a.wait_ready().await;
    b.wait_ready().await;
    let first = e2e.secret(&ns).await.unwrap();
    let old_uid = first.metadata.uid.clone();
    let old_leaf = pem_der(&secret_text(&first, "tls.crt"));

    Api::<Secret>::namespaced(e2e.client.clone(), &ns).delete(SECRET, &DeleteParams::default()).await.unwrap();
    // One resync to notice and make a new Secret (and put its CA in the caBundle), one for the other replica to
    // read it, one for the caBundle to have trusted the new CA for a resync before they serve it. The old CA stays
    // in the bundle after the new one for a while (a_new_ca_is_trusted_next_to_the_old_one_... checks until when).
    let (ca, leaf) =
        poll("a new Secret served by both replicas, its CA in the caBundle", RESYNC * 3 + SLACK, || async {
            let secret = e2e.secret(&ns).await.ok_or("no Secret yet")?;
            if secret.metadata.uid == old_uid {
                return Err("still the old Secret".to_owned());
            }
            let ca = secret_text(&secret, "ca.crt");
            let leaf = pem_der(&secret_text(&secret, "tls.crt"));
            let (leaf_a, leaf_b) = (a.leaf().await?, b.leaf().await?);
            let bundles = e2e.ca_bundles(&config).await;
            if leaf_a != leaf || leaf_b != leaf {
                return Err(format!("a serves the new one: {}, b: {}", leaf_a == leaf, leaf_b == leaf));
            }
            let first_ca = |bundle: &Option<String>| bundle.as_deref().map(bundle_cas).and_then(|c| c.first().cloned());
            if bundles.len() != 1 || first_ca(&bundles[0]) != bundle_cas(&ca).first().cloned() {
                return Err("the caBundle does not lead with the new CA".to_owned());
            }
            Ok((ca, leaf))
        })
        .await;
    assert!(leaf != old_leaf);
    verifies_for(&leaf, &ca, &format!("{SERVICE}.{ns}.svc")).unwrap();
    let names: Vec<_> = Api::<Secret>::namespaced(e2e.client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect();
    assert_eq!(names, vec![SECRET.to_owned()]);
    a.assert_running();
    b.assert_running();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_renew_before_longer_than_the_certificate_lifetime_is_refused_or_does_not_renew_at_every_resync() {
    // The serving certificate lives 365 days: with --cert-renew-before 400days it is due the moment it is made.
    // Acceptable: refusing the setting at start, saying which flag; or renewing at most once. Not acceptable: a
    // new certificate (and a Secret write by every replica's renewal) at every resync, for ever.
    let e2e = e2e().await;
    let mut cleanup = e2e.cleanup();
    let ns = e2e.namespace(&mut cleanup, "e2e-certs-longrenew").await;
    let config = e2e.webhook_config(&mut cleanup, &ns, "https://127.0.0.1:1/mutate", "Ignore", 1).await;
    let mut a =
        Replica::spawn("a", e2e.dir.path(), &e2e.replica_args(&ns, &config, &["--cert-renew-before", "400days"]));
    let deadline = Instant::now() + READY_TIMEOUT;
    let version = loop {
        if let Ok(Some(status)) = a.child.try_wait() {
            let log = a.log_text();
            assert!(
                !status.success() && log.contains("cert-renew-before"),
                "the replica exited ({status}) without saying --cert-renew-before is the problem:\n{log}"
            );
            return;
        }
        if let Some(secret) = e2e.secret(&ns).await {
            break secret.metadata.resource_version;
        }
        assert!(Instant::now() < deadline, "neither a Secret nor an exit after {READY_TIMEOUT:?}:\n{}", a.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut versions = vec![version];
    for _ in 0..10 {
        tokio::time::sleep(RESYNC / 2).await;
        let current = e2e.secret(&ns).await.and_then(|s| s.metadata.resource_version);
        if versions.last() != Some(&current) {
            versions.push(current);
        }
    }
    a.assert_running();
    assert!(
        versions.len() <= 2,
        "with --cert-renew-before 400days (longer than the 365-day certificate) the Secret was rewritten {} times \
         in 5 s with --cert-resync 1s: the replica renews at every resync instead of refusing the setting (with \
         several replicas each would serve a different certificate most of the time)",
        versions.len() - 1
    );
}

/// The CA certificates of a caBundle, in order.
fn bundle_cas(bundle: &str) -> Vec<Vec<u8>> {
    CertificateDer::pem_slice_iter(bundle.as_bytes()).filter_map(Result::ok).map(|der| der.to_vec()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_ca_is_trusted_next_to_the_old_one_until_every_replica_serves_it_and_no_call_fails() {
    // Two replicas, one webhook calling each, failurePolicy Fail: a pod is admitted only if the API server verifies
    // the certificate of both. Deleting the Secret makes one replica create a new CA while the other still serves a
    // certificate of the old one; pods are created (dry-run) all along, and none may be refused.
    let e2e = e2e().await;
    let mut cleanup = e2e.cleanup();
    let ns = e2e.namespace(&mut cleanup, "e2e-certs-newca").await;
    let args = e2e.replica_args(&ns, &format!("{ns}-webhook"), &[]);
    let mut a = Replica::spawn("a", e2e.dir.path(), &args);
    let mut b = Replica::spawn("b", e2e.dir.path(), &args);
    let config = e2e.webhook_config_for(&mut cleanup, &ns, &[a.url(), b.url()], "Fail").await;
    a.wait_ready().await;
    b.wait_ready().await;
    e2e.create_app_service_account(&ns).await;
    let first = e2e.secret(&ns).await.unwrap();
    let old_ca = secret_text(&first, "ca.crt");
    let want = vec![Some(old_ca.clone()), Some(old_ca.clone())];
    e2e.wait_for_ca_bundles(&config, &want, "the replicas to set both caBundles").await;

    let pods: Api<Pod> = Api::namespaced(e2e.client.clone(), &ns);
    let pod = app_pod(json!({"generateName": "app-"}));
    let dry_run = PostParams { dry_run: true, ..PostParams::default() };
    e2e.wait_until_mutated(&pods, &pod).await;

    // Pod creations in the background for the whole rotation, every outcome kept.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = tokio::spawn({
        let (pods, pod, dry_run, stop) = (pods.clone(), pod.clone(), dry_run.clone(), Arc::clone(&stop));
        async move {
            let started = Instant::now();
            let mut outcomes = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let outcome = match pods.create(&dry_run, &pod).await {
                    Ok(created) if has_role(&created) => Ok(()),
                    Ok(_) => Err("admitted unmutated".to_owned()),
                    Err(e) => Err(e.to_string()),
                };
                outcomes.push((started.elapsed(), outcome));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            outcomes
        }
    });
    tokio::time::sleep(RESYNC).await;

    Api::<Secret>::namespaced(e2e.client.clone(), &ns).delete(SECRET, &DeleteParams::default()).await.unwrap();
    let deleted = Instant::now();
    let old = bundle_cas(&old_ca);
    let saw_both = std::sync::atomic::AtomicBool::new(false);
    // A new Secret within a resync; both replicas on it about two resyncs later; the old CA out of the bundle
    // CA_OVERLAP_RESYNCS (5) resyncs after the change.
    let new_ca = poll("a new CA served by both replicas and alone in both caBundles", RESYNC * 8 + SLACK * 2, || {
        let saw_both = &saw_both;
        let (e2e, ns, config, a, b, old) = (&e2e, &ns, &config, &a, &b, &old);
        async move {
            let secret = e2e.secret(ns).await.ok_or("no Secret yet")?;
            let ca = secret_text(&secret, "ca.crt");
            if bundle_cas(&ca) == *old {
                return Err("still the old CA".to_owned());
            }
            let bundles = e2e.ca_bundles(config).await;
            let with_both: Vec<Vec<u8>> = bundle_cas(&ca).into_iter().chain(old.iter().cloned()).collect();
            if bundles.iter().all(|b| b.as_deref().map(bundle_cas).as_ref() == Some(&with_both)) {
                saw_both.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            let leaf = pem_der(&secret_text(&secret, "tls.crt"));
            let (leaf_a, leaf_b) = (a.leaf().await?, b.leaf().await?);
            if leaf_a != leaf || leaf_b != leaf {
                return Err(format!("a serves the new certificate: {}, b: {}", leaf_a == leaf, leaf_b == leaf));
            }
            if bundles != vec![Some(ca.clone()), Some(ca.clone())] {
                return Err(format!(
                    "the caBundles still hold {:?} CAs",
                    bundles.iter().map(|b| b.as_deref().map(bundle_cas).map(|c| c.len())).collect::<Vec<_>>()
                ));
            }
            Ok(ca)
        }
    })
    .await;
    let rolled_out = deleted.elapsed();
    let saw_both = saw_both.load(std::sync::atomic::Ordering::Relaxed);
    // A few more pods with the new CA alone, then stop the load.
    tokio::time::sleep(RESYNC).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let outcomes = load.await.unwrap();
    let failed: Vec<String> =
        outcomes.iter().filter_map(|(at, outcome)| outcome.as_ref().err().map(|e| format!("at {at:?}: {e}"))).collect();
    eprintln!(
        "new CA rolled out in {rolled_out:?} (old CA trusted meanwhile: {saw_both}); {} pod creations, {} failed",
        outcomes.len(),
        failed.len()
    );
    assert!(saw_both, "the caBundles never held the old and the new CA together");
    assert!(
        failed.is_empty(),
        "{} of {} pod creations failed during the CA change:\n{}",
        failed.len(),
        outcomes.len(),
        failed.join("\n")
    );
    assert!(outcomes.len() >= 20, "too few pod creations ({}) to say anything", outcomes.len());

    let secret = e2e.secret(&ns).await.unwrap();
    assert_eq!(bundle_cas(&old_ca_text(&secret)), old, "the Secret records the CA it replaced");
    verifies_for(&a.leaf().await.unwrap(), &new_ca, &format!("{SERVICE}.{ns}.svc")).unwrap();
    a.assert_running();
    b.assert_running();
}

/// The replaced CA the Secret records (empty when none).
fn old_ca_text(secret: &Secret) -> String {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get("previous-ca.crt"))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .unwrap_or_default()
}
