//! The ServiceAccount store at scale, against the real API server of tests/e2e/cluster.sh: run by
//! `benches/scale.sh` (which starts that API server); the figures go to docs/benchmarks.md.
//!
//! 1. Makes sure the cluster holds `IRSA_SCALE_COUNT` ServiceAccounts (default 100,000; 100 per namespace
//!    `irsa-scale-NNNN`, every third with a role annotation), creating what is missing.
//! 2. Times one unpaged LIST of all ServiceAccounts (full objects and metadata only) and the paged metadata-only
//!    lists the webhook's watch makes, to the last byte of the body.
//! 3. Starts `irsa-webhook serve` (this build) watching them: time from start to `/readyz`, RSS of the process
//!    (from /proc) at start, at its peak and once settled, and the same binary with a one-entry
//!    `--service-accounts` file for the baseline.
//! 4. `/mutate` latency, sequential over one keep-alive connection, with the full cache and with the file, in
//!    alternating rounds.
//! 5. Changes the role annotation of `IRSA_SCALE_CHANGES` ServiceAccounts (default 10,000), 8 at a time, and
//!    for each measures how long after the API server acknowledged the change `/mutate` answers with the new
//!    role.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use futures::{stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde::Deserialize;
use serde_json::{json, Value};

const PER_NAMESPACE: usize = 100;
const ROLE_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
const LABEL: &str = "irsa-scale";
/// Concurrent creations while populating, and concurrent changes while measuring visibility.
const CREATE_CONCURRENCY: usize = 32;
const CHANGE_CONCURRENCY: usize = 8;
const LATENCY_ROUNDS: usize = 4;
const START_ROUNDS: usize = 3;
const LATENCY_REQUESTS: usize = 2000;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn namespace_of(i: usize) -> String {
    format!("irsa-scale-{:04}", i / PER_NAMESPACE)
}

fn name_of(i: usize) -> String {
    format!("sa-{i:06}")
}

fn has_role(i: usize) -> bool {
    i.is_multiple_of(3)
}

fn role_of(i: usize, tag: &str) -> String {
    format!("arn:aws:iam::111122223333:role/scale-{tag}-{i}")
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn env_path(name: &str) -> Result<PathBuf, Error> {
    Ok(PathBuf::from(std::env::var(name).map_err(|_| format!("{name} is not set: run benches/scale.sh"))?))
}

fn main() -> Result<(), Error> {
    // `cargo test --all-targets` runs every bench once as a test: only benches/scale.sh (which sets
    // IRSA_SCALE_COUNT and starts the API server) means to populate one with 100k ServiceAccounts.
    if std::env::var_os("IRSA_SCALE_COUNT").is_none() {
        println!("scale benchmark: run benches/scale.sh (it starts the API server this needs)");
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run())
}

async fn run() -> Result<(), Error> {
    let count = env_usize("IRSA_SCALE_COUNT", 100_000);
    let changes = env_usize("IRSA_SCALE_CHANGES", 10_000).min(count.div_ceil(3));
    let kubeconfig = env_path("KUBECONFIG")?;
    let pki = env_path("IRSA_E2E_PKI")?;
    let client = irsa_webhook::kube_client::client(Some(&kubeconfig)).await?;
    let work = tempfile::tempdir()?;
    println!("# irsa-webhook scale benchmark: {count} ServiceAccounts, {changes} annotation changes");
    println!("# machine: {} cores, load average {}", cores(), load_average());

    populate(&client, count).await?;

    println!("\n## One LIST of every ServiceAccount (median of 3, time to the last byte)");
    let full = median_of(3, || list_unpaged(&client, false)).await?;
    let metadata = median_of(3, || list_unpaged(&client, true)).await?;
    let paged_500 = median_of(3, || list_paged_metadata(&client, 500)).await?;
    let paged_5000 = median_of(3, || list_paged_metadata(&client, 5000)).await?;
    println!("| LIST | time | body |\n|---|---:|---:|");
    for (what, (time, bytes)) in [
        ("unpaged, full objects", full),
        ("unpaged, metadata only", metadata),
        ("pages of 500, metadata only", paged_500),
        ("pages of 5000, metadata only", paged_5000),
    ] {
        println!("| {what} | {} | {:.1} MB |", secs(time), bytes as f64 / 1e6);
    }

    // The role ServiceAccount 0 has now (a previous run's changes may have replaced the first one).
    let sa0_object = Api::<ServiceAccount>::namespaced(client.clone(), &namespace_of(0)).get(&name_of(0)).await?;
    let sa0_role =
        sa0_object.metadata.annotations.and_then(|a| a.get(ROLE_ANNOTATION).cloned()).ok_or("sa 0 has no role")?;
    let sa0 = (namespace_of(0), name_of(0), sa0_role);
    let file = work.path().join("serviceaccounts.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {}\n  namespace: {}\n  annotations:\n    {ROLE_ANNOTATION}: {}\n",
            sa0.1, sa0.0, sa0.2
        ),
    )?;
    let file_hook = Webhook::start(&pki, &["--service-accounts", &file.display().to_string()], work.path(), "file")?;
    let file_start = file_hook.wait_ready(Duration::from_secs(60)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let file_rss = rss_kib(file_hook.pid())?;

    // Three starts, each right after an unpaged LIST of its own, so both see the same load on a shared machine.
    println!("\n## Start with {count} ServiceAccounts ({START_ROUNDS} starts, each after an unpaged LIST)");
    println!("| round | unpaged LIST (full) | start to /readyz | ratio | RSS at first answer | RSS peak | RSS 3 s after ready | cached |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut rounds = Vec::new();
    let mut watch_hook = None;
    for round in 1..=START_ROUNDS {
        drop(watch_hook.take());
        let (list, _) = list_unpaged(&client, false).await?;
        let hook = Webhook::start(&pki, &["--kubeconfig", &kubeconfig.display().to_string()], work.path(), "watch")?;
        let started = hook.wait_ready(Duration::from_secs(300)).await?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let settled = rss_kib(hook.pid())?;
        let cached = hook.metric("irsa_webhook_service_accounts_cached").await?;
        println!(
            "| {round} | {} | {} | {:.2}× | {:.1} MB | {:.1} MB | {:.1} MB | {cached} |",
            secs(list),
            secs(started.ready_after),
            ratio(started.ready_after, list),
            mb(started.serving_rss),
            mb(started.peak_rss),
            mb(settled)
        );
        rounds.push((ratio(started.ready_after, list), started, settled, cached));
        watch_hook = Some(hook);
    }
    let watch_hook = watch_hook.ok_or("no start")?;
    rounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (median_ratio, started, settled_rss, cached) = &rounds[rounds.len() / 2];
    let cached = *cached;
    println!("\n| measure (the median round by ratio) | value |\n|---|---:|");
    println!("| start to /readyz against one unpaged LIST | {median_ratio:.2}× |");
    println!(
        "| RSS of the same binary serving a one-entry file (baseline; ready {} after start) | {:.1} MB |",
        secs(file_start.ready_after),
        mb(file_rss)
    );
    println!(
        "| RSS per cached ServiceAccount, against the first answer ({} after start, list in flight) | {:.0} B |",
        secs(started.serving_after),
        settled_rss.saturating_sub(started.serving_rss) as f64 * 1024.0 / cached
    );
    println!(
        "| RSS per cached ServiceAccount, against the file baseline (includes the kube client) | {:.0} B |",
        settled_rss.saturating_sub(file_rss) as f64 * 1024.0 / cached
    );

    println!("\n## /mutate latency, sequential, one keep-alive connection ({LATENCY_ROUNDS} alternating rounds of {LATENCY_REQUESTS})");
    let review = review_for(&sa0.0, &sa0.1);
    let (mut watch_rounds, mut file_rounds) = (Vec::new(), Vec::new());
    for _ in 0..LATENCY_ROUNDS {
        watch_rounds.push(latency_round(&watch_hook, &pki, &review, &sa0.2).await?);
        file_rounds.push(latency_round(&file_hook, &pki, &review, &sa0.2).await?);
    }
    println!("| ServiceAccounts from | p50 | p99 | rounds (p50 / p99) |\n|---|---:|---:|---|");
    for (what, rounds) in
        [(format!("the watch, {cached} cached"), &watch_rounds), ("a one-entry file".to_owned(), &file_rounds)]
    {
        let p50 = median(rounds.iter().map(|r| r.0).collect());
        let p99 = median(rounds.iter().map(|r| r.1).collect());
        let each: Vec<String> = rounds.iter().map(|(a, b)| format!("{} / {}", ms(*a), ms(*b))).collect();
        println!("| {what} | {} | {} | {} |", ms(p50), ms(p99), each.join(", "));
    }
    drop(file_hook);

    println!("\n## {changes} role annotation changes, {CHANGE_CONCURRENCY} at a time: acknowledged by the API server → answered by /mutate");
    let visible = churn(&client, &watch_hook, &pki, changes).await?;
    let rss_after = rss_kib(watch_hook.pid())?;
    let mut delays: Vec<Duration> = visible.iter().filter_map(|v| v.ok()).collect();
    let missed = visible.len() - delays.len();
    delays.sort();
    let at = |q: f64| delays.get(((delays.len() as f64 * q) as usize).min(delays.len().saturating_sub(1))).copied();
    let over = delays.iter().filter(|d| **d > Duration::from_secs(1)).count();
    println!("| measure | value |\n|---|---:|");
    println!("| changes seen by /mutate | {} of {} |", delays.len(), visible.len());
    println!("| not seen within 10 s | {missed} |");
    for (label, q) in [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)] {
        println!("| {label} | {} |", at(q).map(ms).unwrap_or_default());
    }
    println!("| max | {} |", delays.last().copied().map(ms).unwrap_or_default());
    println!("| over 1 s | {over} |");
    println!("| RSS after the changes | {:.1} MB |", mb(rss_after));
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Populating the cluster

async fn populate(client: &Client, count: usize) -> Result<(), Error> {
    let existing = count_labelled(client).await?;
    println!("# {existing} ServiceAccounts labelled {LABEL} already in the cluster");
    if existing >= count {
        return Ok(());
    }
    let started = Instant::now();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace_count = count.div_ceil(PER_NAMESPACE);
    stream::iter(0..namespace_count)
        .map(|n| {
            let namespaces = namespaces.clone();
            async move {
                let namespace: Namespace = serde_json::from_value(json!({
                    "metadata": {"name": namespace_of(n * PER_NAMESPACE), "labels": {LABEL: "bench"}}
                }))?;
                create_or_exists(namespaces.create(&PostParams::default(), &namespace).await)
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let done = Arc::new(AtomicUsize::new(0));
    stream::iter(0..count)
        .map(|i| {
            let (client, done) = (client.clone(), Arc::clone(&done));
            async move {
                let api: Api<ServiceAccount> = Api::namespaced(client, &namespace_of(i));
                let mut metadata = json!({"name": name_of(i), "labels": {LABEL: "bench"}});
                if has_role(i) {
                    metadata["annotations"] = json!({ROLE_ANNOTATION: role_of(i, "0")});
                }
                let sa: ServiceAccount = serde_json::from_value(json!({"metadata": metadata}))?;
                create_or_exists(api.create(&PostParams::default(), &sa).await)?;
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                if n % 10_000 == 0 {
                    eprintln!("  {n} ServiceAccounts created or present ({:.0} s)", started.elapsed().as_secs_f64());
                }
                Ok::<_, Error>(())
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    println!("# populated in {}", secs(started.elapsed()));
    Ok(())
}

fn create_or_exists<T>(result: Result<T, kube::Error>) -> Result<(), Error> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

async fn count_labelled(client: &Client) -> Result<usize, Error> {
    let api: Api<ServiceAccount> = Api::all(client.clone());
    let mut params = ListParams::default().labels(LABEL).limit(5000);
    let mut total = 0;
    loop {
        let page = api.list_metadata(&params).await?;
        total += page.items.len();
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(total),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// LIST timings

const METADATA_LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";

async fn get_text(client: &Client, path: &str, metadata: bool) -> Result<String, Error> {
    let mut request = http::Request::get(path);
    if metadata {
        request = request.header(http::header::ACCEPT, METADATA_LIST);
    }
    Ok(client.request_text(request.body(Vec::new())?).await?)
}

/// Time and body size of one unpaged LIST.
async fn list_unpaged(client: &Client, metadata: bool) -> Result<(Duration, usize), Error> {
    let started = Instant::now();
    let body = get_text(client, "/api/v1/serviceaccounts", metadata).await?;
    Ok((started.elapsed(), body.len()))
}

/// Time and total body size of a paged metadata-only LIST, as the watch's initial list makes it.
async fn list_paged_metadata(client: &Client, page: usize) -> Result<(Duration, usize), Error> {
    #[derive(Deserialize)]
    struct Page {
        metadata: PageMeta,
    }
    #[derive(Deserialize)]
    struct PageMeta {
        #[serde(rename = "continue")]
        continue_: Option<String>,
    }
    let started = Instant::now();
    let (mut bytes, mut token) = (0, None::<String>);
    loop {
        let mut path = format!("/api/v1/serviceaccounts?limit={page}");
        if let Some(token) = &token {
            path.push_str(&format!("&continue={token}"));
        }
        let body = get_text(client, &path, true).await?;
        bytes += body.len();
        let parsed: Page = serde_json::from_str(&body)?;
        match parsed.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(next) => token = Some(next),
            None => return Ok((started.elapsed(), bytes)),
        }
    }
}

async fn median_of<F, Fut>(rounds: usize, mut measure: F) -> Result<(Duration, usize), Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(Duration, usize), Error>>,
{
    let mut results = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        results.push(measure().await?);
    }
    results.sort();
    Ok(results[rounds / 2])
}

// ---------------------------------------------------------------------------------------------------------------
// The webhook process

struct Webhook {
    child: Child,
    port: u16,
    metrics_port: u16,
    log: PathBuf,
}

struct Started {
    ready_after: Duration,
    /// When the metrics port first answered (503 while the list runs), and the RSS then.
    serving_after: Duration,
    serving_rss: u64,
    peak_rss: u64,
}

impl Webhook {
    fn start(pki: &Path, source: &[&str], dir: &Path, name: &str) -> Result<Self, Error> {
        let (port, metrics_port) = (free_port()?, free_port()?);
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        // IRSA_SCALE_BINARY measures another build, e.g. the image's static one (tests/chart/build-static.sh).
        let binary = std::env::var_os("IRSA_SCALE_BINARY").unwrap_or_else(|| env!("CARGO_BIN_EXE_irsa-webhook").into());
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .args(source)
            .args(["--tls-cert", &pki.join("webhook.crt").display().to_string()])
            .args(["--tls-key", &pki.join("webhook.key").display().to_string()])
            .args(["--bind-address", "127.0.0.1", "--port", &port.to_string()])
            .args(["--metrics-port", &metrics_port.to_string()])
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        // Nothing from this environment may act as a flag (IRSA_<FLAG>), and RUST_LOG would override the level.
        for (key, _) in std::env::vars() {
            if key.starts_with("IRSA_") || key == "RUST_LOG" {
                command.env_remove(key);
            }
        }
        Ok(Self { child: command.spawn()?, port, metrics_port, log })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Samples RSS every 5 ms and polls /readyz until it answers 200.
    async fn wait_ready(&self, timeout: Duration) -> Result<Started, Error> {
        let started = Instant::now();
        let http = reqwest::Client::builder().timeout(Duration::from_millis(500)).no_proxy().build()?;
        let url = format!("http://127.0.0.1:{}/readyz", self.metrics_port);
        let (mut serving, mut peak) = (None, 0);
        let mut next_poll = Instant::now();
        loop {
            let rss = rss_kib(self.pid()).unwrap_or(0);
            peak = peak.max(rss);
            if Instant::now() >= next_poll {
                next_poll = Instant::now() + Duration::from_millis(20);
                if let Ok(answer) = http.get(&url).send().await {
                    let (serving_after, serving_rss) = *serving.get_or_insert((started.elapsed(), rss));
                    if answer.status().is_success() {
                        let ready_after = started.elapsed();
                        return Ok(Started { ready_after, serving_after, serving_rss, peak_rss: peak });
                    }
                }
            }
            if started.elapsed() > timeout {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                return Err(format!("webhook not ready after {timeout:?}; its log:\n{log}").into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn metric(&self, name: &str) -> Result<f64, Error> {
        let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", self.metrics_port)).await?.text().await?;
        text.lines()
            .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.trim().parse().ok()))
            .ok_or_else(|| format!("no {name} in /metrics").into())
    }

    fn client(&self, pki: &Path) -> Result<reqwest::Client, Error> {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(pki.join("ca.crt"))?)?;
        Ok(reqwest::Client::builder()
            .add_root_certificate(ca)
            .http1_only()
            .pool_max_idle_per_host(1)
            .timeout(Duration::from_secs(10))
            .no_proxy()
            .build()?)
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/mutate", self.port)
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// VmRSS of a process, in KiB.
fn rss_kib(pid: u32) -> Result<u64, Error> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS".into())
}

// ---------------------------------------------------------------------------------------------------------------
// Admission

fn review_for(namespace: &str, name: &str) -> Vec<u8> {
    let mut review: Value =
        serde_json::from_str(include_str!("../examples/admission-review.json")).expect("the example review is JSON");
    review["request"]["namespace"] = json!(namespace);
    review["request"]["object"]["metadata"]["namespace"] = json!(namespace);
    review["request"]["object"]["spec"]["serviceAccountName"] = json!(name);
    serde_json::to_vec(&review).expect("serializable")
}

/// The role `/mutate` injects for this review, if any (from the base64 JSON Patch of the answer).
async fn injected_role(http: &reqwest::Client, url: &str, review: &[u8]) -> Result<Option<String>, Error> {
    let answer: Value = http
        .post(url)
        .header("content-type", "application/json")
        .body(review.to_vec())
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let Some(patch) = answer.pointer("/response/patch").and_then(Value::as_str) else {
        return Ok(None);
    };
    let patch: Value = serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(patch)?)?;
    let text = patch.to_string();
    Ok(text.find("arn:aws:iam::").map(|start| {
        let rest = &text[start..];
        rest[..rest.find('"').unwrap_or(rest.len())].to_owned()
    }))
}

/// p50 and p99 of `LATENCY_REQUESTS` sequential admissions (after a warm-up), checking each answer's role.
async fn latency_round(hook: &Webhook, pki: &Path, review: &[u8], role: &str) -> Result<(Duration, Duration), Error> {
    let http = hook.client(pki)?;
    let url = hook.url();
    for _ in 0..200 {
        injected_role(&http, &url, review).await?;
    }
    let mut times = Vec::with_capacity(LATENCY_REQUESTS);
    for _ in 0..LATENCY_REQUESTS {
        let started = Instant::now();
        let injected = injected_role(&http, &url, review).await?;
        times.push(started.elapsed());
        if injected.as_deref() != Some(role) {
            return Err(format!("/mutate injected {injected:?}, not {role}").into());
        }
    }
    times.sort();
    Ok((times[times.len() / 2], times[times.len() * 99 / 100]))
}

/// Changes the role of `changes` ServiceAccounts; for each, the time from the API server's acknowledgement to the
/// first `/mutate` answer with the new role (`Err` when not seen within 10 s).
async fn churn(
    client: &Client,
    hook: &Webhook,
    pki: &Path,
    changes: usize,
) -> Result<Vec<Result<Duration, ()>>, Error> {
    let tag = format!("{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs());
    let http = hook.client(pki)?;
    let url = hook.url();
    let started = Instant::now();
    let results = stream::iter((0..changes).map(|k| k * 3))
        .map(|i| {
            let (client, http, url, tag) = (client.clone(), http.clone(), url.clone(), tag.clone());
            async move {
                let (namespace, name) = (namespace_of(i), name_of(i));
                let role = role_of(i, &tag);
                let api: Api<ServiceAccount> = Api::namespaced(client, &namespace);
                let patch = json!({"metadata": {"annotations": {ROLE_ANNOTATION: role}}});
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
                let acknowledged = Instant::now();
                let review = review_for(&namespace, &name);
                loop {
                    if injected_role(&http, &url, &review).await?.as_deref() == Some(role.as_str()) {
                        return Ok::<_, Error>(Ok(acknowledged.elapsed()));
                    }
                    if acknowledged.elapsed() > Duration::from_secs(10) {
                        return Ok(Err(()));
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        })
        .buffer_unordered(CHANGE_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    println!(
        "({changes} changes in {}: {:.0} changes/s)",
        secs(started.elapsed()),
        changes as f64 / started.elapsed().as_secs_f64()
    );
    Ok(results)
}

// ---------------------------------------------------------------------------------------------------------------
// Figures

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn cores() -> usize {
    std::thread::available_parallelism().map(usize::from).unwrap_or(0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
