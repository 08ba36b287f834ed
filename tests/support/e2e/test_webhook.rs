//! A second, tiny mutating webhook served from the test process: records what it receives, answers with a chosen patch.

use super::*;

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
