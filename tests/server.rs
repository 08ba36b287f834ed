//! The real HTTPS server on a loopback port with generated certificates.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures::future::BoxFuture;
use irsa_webhook::admission::Admission;
use irsa_webhook::identity::{ServiceAccountConfig, ServiceAccountRef};
use irsa_webhook::manifest::parse_service_accounts;
use irsa_webhook::server::certs::{generate, GeneratedCerts};
use irsa_webhook::server::conn::ConnLimits;
use irsa_webhook::server::http::Limits;
use irsa_webhook::server::tls::TlsMinVersion;
use irsa_webhook::server::{self, CertificateSource, Listeners, ServerConfig};
use irsa_webhook::settings::MutationSettings;
use irsa_webhook::store::file::FileSource;
use irsa_webhook::store::{Lookup, ServiceAccountSource, SourceStats};
use serde_json::{json, Value};
use tokio::sync::oneshot;

mod support;
use support::secret_volume_write;

const SERVICE_ACCOUNTS: &str = "kind: ServiceAccount\nmetadata:\n  name: app\n  namespace: ns\n  annotations:\n    eks.amazonaws.com/role-arn: arn:aws:iam::111122223333:role/app\n";

/// A source whose readiness and speed the test controls.
struct ControlledSource {
    inner: FileSource,
    ready: AtomicBool,
    delay: Duration,
    lookups: AtomicUsize,
}

impl ServiceAccountSource for ControlledSource {
    fn lookup<'a>(&'a self, sa: &'a ServiceAccountRef) -> BoxFuture<'a, Lookup> {
        Box::pin(async move {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            self.inner.lookup(sa).await
        })
    }
    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
    fn stats(&self) -> SourceStats {
        self.inner.stats()
    }
}

fn controlled(ready: bool, delay: Duration) -> Arc<ControlledSource> {
    let settings = MutationSettings::default();
    let inner = FileSource::from_manifests(parse_service_accounts(SERVICE_ACCOUNTS).unwrap(), &settings);
    Arc::new(ControlledSource { inner, ready: AtomicBool::new(ready), delay, lookups: AtomicUsize::new(0) })
}

struct Running {
    url: String,
    metrics: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), server::ServerError>>,
    _dir: tempfile::TempDir,
    cert_dir: PathBuf,
    first_ca: String,
}

/// Writes a pair the way the kubelet updates a Secret volume (new directory, then an atomic `..data` swap).
fn write_pair(dir: &Path, version: &str, certs: &GeneratedCerts) {
    secret_volume_write(dir, version, &[("tls.crt", certs.cert_pem.as_bytes()), ("tls.key", certs.key_pem.as_bytes())]);
}

fn sans() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into()]
}

async fn start(source: Arc<dyn ServiceAccountSource>, limits: Limits) -> Running {
    start_with_delay(source, limits, Duration::ZERO).await
}

async fn start_with_delay(source: Arc<dyn ServiceAccountSource>, limits: Limits, shutdown_delay: Duration) -> Running {
    let dir = tempfile::tempdir().unwrap();
    // Kubernetes Secret volume layout: files are symlinks through `..data` to a timestamped directory.
    let cert_dir = dir.path().join("certs");
    let first = generate(&sans(), 30, 30).unwrap();
    write_pair(&cert_dir, "v1", &first);
    let listeners = Listeners::bind("127.0.0.1:0".parse().unwrap(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = format!("https://localhost:{}", listeners.mutate.local_addr().unwrap().port());
    let metrics = format!("http://127.0.0.1:{}", listeners.metrics.local_addr().unwrap().port());
    let config = ServerConfig {
        certificate: CertificateSource::Files {
            cert: cert_dir.join("tls.crt"),
            key: cert_dir.join("tls.key"),
            reload_interval: Duration::from_millis(100),
        },
        tls: TlsMinVersion::Tls12.into(),
        limits,
        connections: ConnLimits::default(),
        metrics_connections: ConnLimits::default(),
        shutdown_timeout: Duration::from_secs(5),
        shutdown_delay,
    };
    let admission = Admission { settings: Arc::new(MutationSettings::default()), source, container_credentials: None };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server::run(config, listeners, admission, async move {
        let _ = stopped.await;
    }));
    Running { url, metrics, stop: Some(stop), task, _dir: dir, cert_dir, first_ca: first.ca_pem }
}

fn client(cas: &[&str], reuse: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
    for ca in cas {
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap());
    }
    if !reuse {
        builder = builder.pool_max_idle_per_host(0);
    }
    builder.build().unwrap()
}

fn review(api_version: &str, operation: &str, resource: &str, sa: &str) -> Value {
    json!({
        "apiVersion": api_version, "kind": "AdmissionReview",
        "request": {
            "uid": "uid-42", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": resource},
            "namespace": "ns", "operation": operation,
            "object": {"metadata": {"name": "p"}, "spec": {"serviceAccountName": sa, "containers": [{"name": "c"}]}},
        }
    })
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let response = client.post(format!("{url}/mutate")).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn decoded_patch(response: &Value) -> Value {
    let patch = response["response"]["patch"].as_str().expect("a patch");
    serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(patch).unwrap()).unwrap()
}

#[tokio::test]
async fn answers_v1_and_v1beta1_in_kind() {
    let server = start(controlled(true, Duration::ZERO), Limits::default()).await;
    let client = client(&[&server.first_ca], true);
    for version in ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"] {
        let (status, body) = post(&client, &server.url, &review(version, "CREATE", "pods", "app")).await;
        assert_eq!(status, 200);
        assert_eq!(body["apiVersion"], version);
        assert_eq!(body["response"]["uid"], "uid-42");
        assert_eq!(body["response"]["allowed"], true);
        let patch = decoded_patch(&body);
        assert!(patch.to_string().contains("arn:aws:iam::111122223333:role/app"));
    }
    let metrics = reqwest::get(format!("{}/metrics", server.metrics)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("pod_identity_webhook_pod_count{method=\"sts_web_identity\"} 2"), "{metrics}");
    assert!(metrics.contains("irsa_webhook_service_accounts_cached 1"), "{metrics}");
}

#[tokio::test]
async fn non_pods_non_creates_and_unknown_service_accounts_are_allowed_unchanged() {
    let server = start(controlled(true, Duration::ZERO), Limits::default()).await;
    let client = client(&[&server.first_ca], true);
    for body in [
        review("admission.k8s.io/v1", "UPDATE", "pods", "app"),
        review("admission.k8s.io/v1", "CREATE", "services", "app"),
        review("admission.k8s.io/v1", "CREATE", "pods", "nobody"),
    ] {
        let (status, answer) = post(&client, &server.url, &body).await;
        assert_eq!(status, 200);
        assert_eq!(answer["response"]["allowed"], true);
        assert!(answer["response"].get("patch").is_none(), "{answer}");
    }
    let metrics = reqwest::get(format!("{}/metrics", server.metrics)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("pod_identity_webhook_missing_sa_count 1"), "{metrics}");
}

#[tokio::test]
async fn malformed_oversized_and_wrong_content_type_are_refused_clearly() {
    let limits = Limits { max_body_bytes: 64 * 1024, ..Limits::default() };
    let server = start(controlled(true, Duration::ZERO), limits).await;
    let client = client(&[&server.first_ca], true);
    let url = format!("{}/mutate", server.url);

    let r = client.post(&url).header("content-type", "application/json").body("{nope").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("not a JSON AdmissionReview"));

    let r = client
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"apiVersion":"v1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(100 * 1024));
    let r = client.post(&url).header("content-type", "application/json").body(big).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 413);

    let r = client.post(&url).header("content-type", "text/plain").body("{}").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 415);

    let body = serde_json::to_vec(&review("admission.k8s.io/v1", "CREATE", "pods", "app")).unwrap();
    let r =
        client.post(&url).header("content-type", "application/json; charset=utf-8").body(body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "media type parameters are accepted");

    let mut bad_pod = review("admission.k8s.io/v1", "CREATE", "pods", "app");
    bad_pod["request"]["object"]["spec"]["containers"] = json!(7);
    let (status, answer) = post(&client, &server.url, &bad_pod).await;
    assert_eq!(status, 200);
    assert_eq!(answer["response"]["allowed"], true);
    assert!(answer["response"]["warnings"][0].as_str().unwrap().contains("not valid"));
}

#[tokio::test]
async fn readyz_waits_for_the_store() {
    let source = controlled(false, Duration::ZERO);
    let server = start(source.clone(), Limits::default()).await;
    let readyz = format!("{}/readyz", server.metrics);
    assert_eq!(reqwest::get(&readyz).await.unwrap().status().as_u16(), 503);
    assert_eq!(reqwest::get(format!("{}/healthz", server.metrics)).await.unwrap().status().as_u16(), 200);
    source.ready.store(true, Ordering::SeqCst);
    assert_eq!(reqwest::get(&readyz).await.unwrap().status().as_u16(), 200);
}

#[tokio::test]
async fn certificate_rotation_is_served_without_restart_and_without_failed_handshakes() {
    let server = start(controlled(true, Duration::ZERO), Limits::default()).await;
    let second = generate(&sans(), 30, 60).unwrap();
    // New connection per request, so every request is a new handshake with whichever certificate is current.
    let client = client(&[&server.first_ca, &second.ca_pem], false);
    let body = review("admission.k8s.io/v1", "CREATE", "pods", "app");

    let cas = [server.first_ca.clone(), second.ca_pem.clone()];
    let first_served = served_certificate(&server.url, &cas).await;

    let load = {
        let client = client.clone();
        let url = server.url.clone();
        let body = body.clone();
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0, 0);
            for _ in 0..150 {
                match client.post(format!("{url}/mutate")).json(&body).send().await {
                    Ok(r) if r.status().is_success() => ok += 1,
                    _ => failed += 1,
                }
            }
            (ok, failed)
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    write_pair(&server.cert_dir, "v2", &second);
    let (ok, failed) = load.await.unwrap();
    assert_eq!(failed, 0, "{failed} of {} requests failed during rotation", ok + failed);

    let mut rotated = false;
    for _ in 0..50 {
        let now = served_certificate(&server.url, &cas).await;
        if now != first_served {
            rotated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rotated, "the new certificate was never served");

    // A broken pair keeps the current one serving.
    std::fs::write(server.cert_dir.join("..v2/tls.crt"), "garbage").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _) = post(&client, &server.url, &body).await;
    assert_eq!(status, 200);
}

/// The leaf certificate a fresh handshake is given.
async fn served_certificate(url: &str, cas: &[String]) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        roots.add(rustls_pki_types::CertificateDer::from_pem_slice(ca.as_bytes()).unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(irsa_webhook::server::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let port = url.rsplit(':').next().unwrap();
    let tcp = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}")).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tls = connector.connect("localhost".try_into().unwrap(), tcp).await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight_and_refuses_new_ones() {
    let source = controlled(true, Duration::from_millis(600));
    let mut server = start(source.clone(), Limits::default()).await;
    let client = client(&[&server.first_ca], false);
    let in_flight = {
        let client = client.clone();
        let url = server.url.clone();
        tokio::spawn(async move { post(&client, &url, &review("admission.k8s.io/v1", "CREATE", "pods", "app")).await })
    };
    while source.lookups.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = server.stop.take().unwrap().send(());
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200, "the request in flight completes");
    assert!(body["response"]["patch"].is_string());
    tokio::time::timeout(Duration::from_secs(10), &mut server.task).await.unwrap().unwrap().unwrap();
    let refused = client.post(format!("{}/mutate", server.url)).json(&json!({})).send().await;
    assert!(refused.is_err(), "no new connections after shutdown");
}

/// The body is kept as hyper's bytes when it comes in one frame and copied when it comes in several, or is large
/// (over --inline-review-max-bytes, reviewed on the blocking pool): the answer is the same every way.
#[tokio::test]
async fn a_review_is_answered_the_same_whole_in_pieces_and_large() {
    let settings = MutationSettings::default();
    let source = Arc::new(FileSource::load(Path::new("examples/serviceaccounts.yaml"), &settings).unwrap());
    let bytes = std::fs::read("examples/admission-review-deployment.json").unwrap();
    async fn answer(client: &reqwest::Client, server: &Running, body: reqwest::Body) -> bytes::Bytes {
        let url = format!("{}/mutate", server.url);
        let response = client.post(url).header("content-type", "application/json").body(body).send().await;
        let response = response.unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(response.status().as_u16(), 200);
        response.bytes().await.unwrap()
    }
    let pieces = |size: usize| {
        let chunks: Vec<Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>> =
            bytes.chunks(size).map(|c| Ok(hyper::body::Frame::data(bytes::Bytes::copy_from_slice(c)))).collect();
        reqwest::Body::wrap(http_body_util::StreamBody::new(futures::stream::iter(chunks)))
    };
    let server = start(source.clone(), Limits::default()).await;
    let whole = answer(&client(&[&server.first_ca], true), &server, bytes.clone().into()).await;
    assert!(String::from_utf8_lossy(&whole).contains("\"patch\""), "{}", String::from_utf8_lossy(&whole));
    for http1 in [true, false] {
        let builder = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(server.first_ca.as_bytes()).unwrap());
        let client = if http1 { builder.http1_only() } else { builder.http2_prior_knowledge() }.build().unwrap();
        // Twice on one connection: on HTTP/1 the read buffer has grown to hold the whole request by then.
        for _ in 0..2 {
            assert_eq!(answer(&client, &server, bytes.clone().into()).await, whole, "whole, http1 {http1}");
        }
        // HTTP/2 peers sending tiny DATA frames are cut off by the h2 crate (GOAWAY ENHANCE_YOUR_CALM,
        // "too_many_data_frames"): its flood protection, so only HTTP/1 gets the 1- and 7-byte chunks.
        let sizes: &[usize] = if http1 { &[1, 7, 1000, 4096] } else { &[1000, 4096] };
        for &size in sizes {
            assert_eq!(answer(&client, &server, pieces(size)).await, whole, "in pieces of {size} bytes, http1 {http1}");
        }
    }
    let small_inline = Limits { inline_review_max_bytes: 1024, ..Limits::default() };
    let large = start(source, small_inline).await;
    let client = client(&[&large.first_ca], true);
    assert_eq!(answer(&client, &large, bytes.clone().into()).await, whole, "large, whole");
    assert_eq!(answer(&client, &large, pieces(1000)).await, whole, "large, in pieces");
}

#[tokio::test]
async fn static_store_serves_the_example_file() {
    let settings = MutationSettings::default();
    let source = FileSource::load(Path::new("examples/serviceaccounts.yaml"), &settings).unwrap();
    let server = start(Arc::new(source), Limits::default()).await;
    let client = client(&[&server.first_ca], true);
    let review: Value =
        serde_json::from_str(&std::fs::read_to_string("examples/admission-review.json").unwrap()).unwrap();
    let (status, body) = post(&client, &server.url, &review).await;
    assert_eq!(status, 200);
    let patch = decoded_patch(&body).to_string();
    assert!(patch.contains("s3-reader") && patch.contains("fsGroup"), "{patch}");
    let _ = ServiceAccountConfig::default();
}

#[tokio::test]
async fn draining_keeps_serving_fails_readyz_and_closes_keep_alive_connections() {
    let mut server =
        start_with_delay(controlled(true, Duration::ZERO), Limits::default(), Duration::from_millis(800)).await;
    // HTTP/1.1, as the API server talks to webhooks (HTTP/2 clients are sent a GOAWAY instead).
    let client = reqwest::Client::builder()
        .http1_only()
        .add_root_certificate(reqwest::Certificate::from_pem(server.first_ca.as_bytes()).unwrap())
        .build()
        .unwrap();
    let body = review("admission.k8s.io/v1", "CREATE", "pods", "app");
    let before = client.post(format!("{}/mutate", server.url)).json(&body).send().await.unwrap();
    assert!(before.headers().get("connection").is_none(), "keep-alive before draining");
    let _ = server.stop.take().unwrap().send(());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let readyz = reqwest::get(format!("{}/readyz", server.metrics)).await.unwrap();
    assert_eq!(readyz.status().as_u16(), 503, "not ready while draining");
    let during = client.post(format!("{}/mutate", server.url)).json(&body).send().await.unwrap();
    assert_eq!(during.status().as_u16(), 200, "still serving during the delay");
    assert_eq!(during.headers().get("connection").map(|v| v.to_str().unwrap()), Some("close"));
    tokio::time::timeout(Duration::from_secs(10), &mut server.task).await.unwrap().unwrap().unwrap();
}
