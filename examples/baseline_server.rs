//! The load-test baseline: a bare axum + rustls server that answers every POST with a fixed body. `/mutate`
//! throughput is reported as a ratio to this, measured in the same run (see benches/load.sh).
//!
//! usage: cargo run --release --example baseline_server -- PORT BODY_FILE

use axum::routing::post;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use irsa_webhook::server::certs::{generate, service_sans};
use irsa_webhook::server::tls::{server_config, CertPair, CertStore, TlsMinVersion};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().unwrap_or_else(|| "28443".into()).parse()?;
    let body: &'static [u8] = match args.next() {
        Some(path) => Box::leak(std::fs::read(path)?.into_boxed_slice()),
        None => b"{\"ok\":true}",
    };
    let certs = generate(&service_sans("baseline", "default"), 30, 30)?;
    let pair = CertPair::from_pem(certs.cert_pem.as_bytes(), certs.key_pem.as_bytes(), "cert", "key")?;
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config(CertStore::new(pair), &TlsMinVersion::Tls12.into())?);
    let router = Router::new().route(
        "/mutate",
        post(move || async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], body) }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("baseline listening on 127.0.0.1:{port}");
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            if let Ok(tls) = acceptor.accept(tcp).await {
                let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(tls), service).await;
            }
        });
    }
}
