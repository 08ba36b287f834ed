//! The soak's load: legitimate reviews at a fixed rate alongside hostile clients, RSS sampled every 10 s.
//! Run by benches/soak.sh (which starts the webhook and passes the environment below); without SOAK_URL it only
//! says so and exits, so `cargo bench` and `cargo test --all-targets` stay quick.
//!
//! SOAK_URL, SOAK_METRICS (http://host:port of the metrics port), SOAK_CA (the CA file), SOAK_PID (the webhook's
//! pid, for RSS), SOAK_REVIEW (the legitimate review), SOAK_SECONDS, SOAK_CONNECTIONS, SOAK_RATE (legitimate
//! requests per second; 0 = as fast as possible, to find saturation), SOAK_HOSTILE (1 = run the hostile clients),
//! SOAK_RSS_GROWTH_MIB (allowed RSS growth after the first minute; default 32).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

struct Config {
    url: String,
    metrics: String,
    ca: String,
    pid: u32,
    review: bytes::Bytes,
    seconds: u64,
    connections: usize,
    rate: f64,
    hostile: bool,
    growth_mib: u64,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn main() {
    let Some(url) = env("SOAK_URL") else {
        println!("soak driver: run benches/soak.sh");
        return;
    };
    let number = |name: &str, default: f64| env(name).and_then(|v| v.parse::<f64>().ok()).unwrap_or(default);
    let config = Config {
        url,
        metrics: env("SOAK_METRICS").unwrap_or_default(),
        ca: std::fs::read_to_string(env("SOAK_CA").unwrap_or_default()).expect("SOAK_CA"),
        pid: number("SOAK_PID", 0.0) as u32,
        review: std::fs::read(env("SOAK_REVIEW").unwrap_or_default()).expect("SOAK_REVIEW").into(),
        seconds: number("SOAK_SECONDS", 60.0) as u64,
        connections: number("SOAK_CONNECTIONS", 64.0) as usize,
        rate: number("SOAK_RATE", 0.0),
        hostile: number("SOAK_HOSTILE", 0.0) > 0.0,
        growth_mib: number("SOAK_RSS_GROWTH_MIB", 32.0) as u64,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let ok = runtime.block_on(run(Arc::new(config)));
    std::process::exit(if ok { 0 } else { 1 });
}

/// Latencies of legitimate requests, in microseconds, and the failures with their first few reasons.
#[derive(Default)]
struct Legit {
    latencies_us: Mutex<Vec<u32>>,
    ok: AtomicU64,
    failed: AtomicU64,
    reasons: Mutex<Vec<String>>,
}

impl Legit {
    fn record(&self, result: Result<u16, String>, took: Duration) {
        match result {
            Ok(200) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                let us = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
                self.latencies_us.lock().unwrap().push(us);
            }
            other => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut reasons = self.reasons.lock().unwrap();
                if reasons.len() < 10 {
                    reasons.push(format!("{other:?}"));
                }
            }
        }
    }
}

/// What the hostile clients did, by kind.
#[derive(Default)]
struct Hostile {
    counts: Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

impl Hostile {
    fn count(&self, kind: &'static str) {
        *self.counts.lock().unwrap().entry(kind).or_default() += 1;
    }
}

fn client(config: &Config, http2: bool, reuse: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(config.ca.as_bytes()).expect("CA"))
        .timeout(Duration::from_secs(30));
    builder = if http2 { builder.http2_prior_knowledge() } else { builder.http1_only() };
    if !reuse {
        builder = builder.pool_max_idle_per_host(0);
    }
    builder.build().expect("client")
}

async fn post(client: &reqwest::Client, url: &str, body: bytes::Bytes) -> Result<u16, String> {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    response.bytes().await.map_err(|e| e.to_string())?;
    Ok(status)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix(" kB")?.parse().ok()))
        .unwrap_or(0)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[index]) / 1000.0
}

async fn run(config: Arc<Config>) -> bool {
    let stop = Arc::new(AtomicBool::new(false));
    let legit = Arc::new(Legit::default());
    let hostile = Arc::new(Hostile::default());
    let mut tasks = Vec::new();

    // Legitimate load: `connections` clients (3 in 4 keep-alive HTTP/1.1, 1 in 4 HTTP/2), each on its own
    // schedule so that together they send `rate` requests a second; rate 0 sends back to back (saturation).
    for i in 0..config.connections {
        let client = client(&config, i % 4 == 3, true);
        let (config, stop, legit) = (Arc::clone(&config), Arc::clone(&stop), Arc::clone(&legit));
        tasks.push(tokio::spawn(async move {
            let period = (config.rate > 0.0).then(|| Duration::from_secs_f64(config.connections as f64 / config.rate));
            let mut ticker = period.map(|p| {
                let mut t = tokio::time::interval_at(
                    tokio::time::Instant::now() + p.mul_f64(i as f64 / config.connections as f64),
                    p,
                );
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                t
            });
            while !stop.load(Ordering::Relaxed) {
                if let Some(ticker) = ticker.as_mut() {
                    ticker.tick().await;
                }
                let started = Instant::now();
                let result = post(&client, &config.url, config.review.clone()).await;
                legit.record(result, started.elapsed());
            }
        }));
    }
    if config.hostile {
        tasks.extend(hostile_clients(&config, &stop, &hostile));
    }

    // RSS every 10 s, with the legitimate figures of the interval.
    let started = Instant::now();
    let mut samples: Vec<(u64, u64)> = Vec::new();
    let mut seen = 0usize;
    println!("{:>6} {:>10} {:>8} {:>7} {:>9} {:>9}", "t(s)", "RSS(KiB)", "ok", "failed", "p50(ms)", "p99(ms)");
    while started.elapsed() < Duration::from_secs(config.seconds) {
        let left = Duration::from_secs(config.seconds).saturating_sub(started.elapsed());
        tokio::time::sleep(left.min(Duration::from_secs(10))).await;
        let rss = rss_kib(config.pid);
        let t = started.elapsed().as_secs();
        samples.push((t, rss));
        let mut window = legit.latencies_us.lock().unwrap()[seen..].to_vec();
        seen += window.len();
        window.sort_unstable();
        println!(
            "{t:>6} {rss:>10} {:>8} {:>7} {:>9.2} {:>9.2}",
            legit.ok.load(Ordering::Relaxed),
            legit.failed.load(Ordering::Relaxed),
            percentile(&window, 0.5),
            percentile(&window, 0.99)
        );
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(35), task).await;
    }

    let mut all = legit.latencies_us.lock().unwrap().clone();
    all.sort_unstable();
    let (ok, failed) = (legit.ok.load(Ordering::Relaxed), legit.failed.load(Ordering::Relaxed));
    let elapsed = started.elapsed().as_secs_f64();
    println!();
    println!("legitimate: {ok} ok, {failed} failed, {:.0} req/s", ok as f64 / elapsed);
    println!(
        "latency (ms): p50 {:.2}, p99 {:.2}, p99.9 {:.2}, max {:.2}",
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        percentile(&all, 0.999),
        percentile(&all, 1.0)
    );
    for reason in legit.reasons.lock().unwrap().iter() {
        println!("  failure: {reason}");
    }
    let mut passed = failed == 0;
    if !samples.is_empty() {
        let rss: Vec<u64> = samples.iter().map(|s| s.1).collect();
        let (min, max) = (rss.iter().min().copied().unwrap_or(0), rss.iter().max().copied().unwrap_or(0));
        // Growth is measured from the first sample after a minute (warm-up: caches, pools, allocator arenas).
        let baseline = samples.iter().find(|s| s.0 >= 60).map_or(samples[0].1, |s| s.1);
        let last = samples.last().map_or(0, |s| s.1);
        let growth = last.saturating_sub(baseline);
        println!(
            "RSS (KiB): first {}, min {min}, max {max}, last {last}; growth after the first minute {growth} KiB \
             (bound {} MiB)",
            samples[0].1, config.growth_mib
        );
        passed &= growth <= config.growth_mib * 1024;
    }
    if config.hostile {
        println!("hostile clients: {:?}", hostile.counts.lock().unwrap());
    }
    if !config.metrics.is_empty() {
        if let Ok(response) = reqwest::get(format!("{}/metrics", config.metrics)).await {
            if let Ok(text) = response.text().await {
                for line in text.lines().filter(|l| {
                    !l.starts_with('#')
                        && (l.starts_with("http_request_count")
                            || l.starts_with("irsa_webhook_connections_closed_total")
                            || l.starts_with("irsa_webhook_requests_shed_total")
                            || l.starts_with("irsa_webhook_connections_accept_errors_total")
                            || l.starts_with("irsa_webhook_log_lines_dropped_total"))
                        && !l.ends_with(" 0")
                }) {
                    println!("  {line}");
                }
            }
        }
    }
    println!("{}", if passed { "PASS" } else { "FAIL" });
    passed
}

fn tls_config(ca: &str) -> Arc<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()).flatten() {
        let _ = roots.add(cert);
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// The hostile mix, each kind on its own loop until `stop`.
fn hostile_clients(
    config: &Arc<Config>,
    stop: &Arc<AtomicBool>,
    hostile: &Arc<Hostile>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let host = config.url.split("//").nth(1).and_then(|r| r.split('/').next()).unwrap_or_default().to_owned();
    let port: u16 = host.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(443);
    let metrics_port: u16 = config.metrics.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(9999);
    let mut tasks = Vec::new();
    let every = |period: Duration,
                 kind: &'static str,
                 job: Arc<dyn Fn() -> futures::future::BoxFuture<'static, ()> + Send + Sync>| {
        let (stop, hostile) = (Arc::clone(stop), Arc::clone(hostile));
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period);
            while !stop.load(Ordering::Relaxed) {
                ticker.tick().await;
                hostile.count(kind);
                tokio::spawn(job());
            }
        })
    };
    let hold = |stream: TcpStream| async move {
        // Held until the server closes it (or 5 minutes).
        let mut stream = stream;
        let mut buf = [0u8; 1024];
        let _ =
            tokio::time::timeout(Duration::from_secs(300), tokio::io::AsyncReadExt::read(&mut stream, &mut buf)).await;
    };

    // Silent TCP connections on the TLS port (no handshake): 20 a second.
    tasks.push(every(
        Duration::from_millis(50),
        "silent_tcp",
        Arc::new(move || {
            Box::pin(async move {
                if let Ok(tcp) = TcpStream::connect(("127.0.0.1", port)).await {
                    hold(tcp).await;
                }
            })
        }),
    ));
    // Half-sent requests on the metrics port: 5 a second.
    tasks.push(every(
        Duration::from_millis(200),
        "metrics_half_request",
        Arc::new(move || {
            Box::pin(async move {
                if let Ok(mut tcp) = TcpStream::connect(("127.0.0.1", metrics_port)).await {
                    let _ = tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ").await;
                    hold(tcp).await;
                }
            })
        }),
    ));
    // A ClientHello that never finishes: 2 a second (each closed at the handshake timeout).
    tasks.push(every(
        Duration::from_millis(500),
        "partial_handshake",
        Arc::new(move || {
            Box::pin(async move {
                if let Ok(mut tcp) = TcpStream::connect(("127.0.0.1", port)).await {
                    let _ = tcp.write_all(b"\x16\x03\x01").await;
                    hold(tcp).await;
                }
            })
        }),
    ));
    // Silent after a completed handshake, HTTP/1.1 and HTTP/2 by turns: 5 a second (closed at the header timeout).
    let tls = tls_config(&config.ca);
    let turn = Arc::new(AtomicU64::new(0));
    tasks.push(every(
        Duration::from_millis(200),
        "silent_after_handshake",
        Arc::new(move || {
            let (tls, turn) = (Arc::clone(&tls), Arc::clone(&turn));
            Box::pin(async move {
                let mut config = (*tls).clone();
                config.alpn_protocols = vec![if turn.fetch_add(1, Ordering::Relaxed) % 2 == 0 {
                    b"h2".to_vec()
                } else {
                    b"http/1.1".to_vec()
                }];
                let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
                if let Ok(tcp) = TcpStream::connect(("127.0.0.1", port)).await {
                    if let Ok(name) = rustls_pki_types::ServerName::try_from("localhost") {
                        if let Ok(mut stream) = connector.connect(name, tcp).await {
                            let mut buf = [0u8; 1024];
                            let read = tokio::io::AsyncReadExt::read(&mut stream, &mut buf);
                            let _ = tokio::time::timeout(Duration::from_secs(300), read).await;
                        }
                    }
                }
            })
        }),
    ));
    // Bodies dripped a byte every 500 ms: 1 a second (each cut at the request timeout with a 503).
    let config_for = Arc::clone(config);
    let dripper = client(config, false, false);
    tasks.push(every(
        Duration::from_secs(1),
        "drip_body_tls",
        Arc::new(move || {
            let (client, url) = (dripper.clone(), config_for.url.clone());
            Box::pin(async move {
                let body = vec![b' '; 4096];
                let chunks = futures::stream::unfold(0usize, move |i| {
                    let body = body.clone();
                    async move {
                        if i >= body.len() {
                            return None;
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        Some((
                            Ok::<_, std::io::Error>(hyper::body::Frame::data(bytes::Bytes::copy_from_slice(
                                &body[i..=i],
                            ))),
                            i + 1,
                        ))
                    }
                });
                let body = reqwest::Body::wrap(http_body_util::StreamBody::new(chunks));
                let _ = client.post(&url).header("content-type", "application/json").body(body).send().await;
            })
        }),
    ));
    // Oversized (413), malformed (400), wrong content type (415): 1, 5 and 2 a second.
    for (period, kind, content_type, body) in [
        (Duration::from_secs(1), "oversized", "application/json", bytes::Bytes::from(vec![b' '; 4 * 1024 * 1024])),
        (Duration::from_millis(200), "malformed", "application/json", bytes::Bytes::from_static(b"{\"apiVersion\":")),
        (Duration::from_millis(500), "wrong_type", "text/plain", bytes::Bytes::from_static(b"{}")),
    ] {
        let (client, url) = (client(config, false, true), config.url.clone());
        tasks.push(every(
            period,
            kind,
            Arc::new(move || {
                let (client, url, body) = (client.clone(), url.clone(), body.clone());
                Box::pin(async move {
                    let _ = client.post(&url).header("content-type", content_type).body(body).send().await;
                })
            }),
        ));
    }
    // A 1 MiB review (many annotations, reviewed off the async workers): 1 a second.
    let large = {
        let mut review: serde_json::Value = serde_json::from_slice(&config.review).expect("review JSON");
        let annotations: serde_json::Map<String, serde_json::Value> =
            (0..40_000).map(|i| (format!("soak.example/k{i:06}"), serde_json::Value::String("v".into()))).collect();
        review["request"]["object"]["metadata"]["annotations"] = serde_json::Value::Object(annotations);
        bytes::Bytes::from(serde_json::to_vec(&review).expect("JSON"))
    };
    let (large_client, url) = (client(config, false, true), config.url.clone());
    tasks.push(every(
        Duration::from_secs(1),
        "large_review",
        Arc::new(move || {
            let (client, url, body) = (large_client.clone(), url.clone(), large.clone());
            Box::pin(async move {
                let _ = post(&client, &url, body).await;
            })
        }),
    ));
    // A new TLS connection per request (handshake churn): 5 a second.
    let (churn, url, review) = (client(config, false, false), config.url.clone(), config.review.clone());
    tasks.push(every(
        Duration::from_millis(200),
        "new_connection_per_request",
        Arc::new(move || {
            let (client, url, body) = (churn.clone(), url.clone(), review.clone());
            Box::pin(async move {
                let _ = post(&client, &url, body).await;
            })
        }),
    ));
    tasks
}
