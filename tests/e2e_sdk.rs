//! End-to-end with the real AWS SDKs (issue 12): what a mutated pod gets is what the SDKs need.
//!
//! For boto3, the AWS CLI v1, the AWS SDK for JavaScript v3 and aws-sdk-rust (installed by `tests/e2e/sdks.sh`,
//! cached outside the repository), in both modes of the webhook:
//! 1. a pod is created through the real API server and read back as stored;
//! 2. the test does what the kubelet would: a TokenRequest for the pod's ServiceAccount with the audience and
//!    `expirationSeconds` of the projected volume the webhook added, bound to the pod, written at the volume's
//!    mount path (the webhook runs with `--token-mount-path` and `--container-credentials-token-mount-path` inside a
//!    temporary directory, so nothing is written elsewhere);
//! 3. the SDK runs as a child process whose environment is exactly the stored container's env (`fieldRef`s resolved
//!    as the kubelet would), plus `AWS_ENDPOINT_URL_STS` (the STS stand-in), `HOME` (an empty directory, so no
//!    profile or cache can supply credentials), `AWS_EC2_METADATA_DISABLED=true` (so a failed lookup never falls
//!    through to the instance-metadata address 169.254.169.254) and `PATH`; nothing else of the test's environment;
//! 4. the STS stand-in is moto's server behind a recording proxy of this test, so the assertions read the requests
//!    the SDK actually sent.
//!
//! Web identity: AssumeRoleWithWebIdentity names exactly the ServiceAccount's role, the session name the webhook
//! injected (the pod name) and the token file's content, whose `aud` is the volume's audience and `sub` the
//! ServiceAccount; GetCallerIdentity is signed with the key that call returned, and answers the assumed role.
//! EKS Pod Identity: the test serves the agent's credentials endpoint on loopback and hands out credentials only
//! to a request whose `Authorization` equals the token file's content; GetCallerIdentity is signed with them.
//! The SDK-age rule of `doctor`: a botocore older than its minimum does not use the injected credentials, and one
//! exactly at the minimum does.
//!
//! Run: `tests/e2e/cluster.sh start && eval "$(tests/e2e/cluster.sh env)"`, then
//! `cargo test --features e2e --test e2e_sdk -- --test-threads=1` (the first run installs the SDKs: minutes).

mod support;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use irsa_webhook::doctor::MINIMUM_SDK_VERSIONS;
use kube::api::PostParams;
use serde_json::{json, Value};
use support::e2e::*;

const ACCOUNT: &str = "111122223333";
/// Given to the webhook as `--aws-default-region`, as on EKS: the SDKs need a region to sign GetCallerIdentity.
const REGION: &str = "us-west-2";
/// One SDK run: interpreters start in about a second; generous because CI machines are shared.
const SDK_TIMEOUT: Duration = Duration::from_secs(90);
/// The container's PATH comes from its image, not from the pod: the children get a plain one.
const CHILD_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Request bodies the proxy relays (STS requests are a few KiB; a token is ~1 KiB).
const MAX_BODY: usize = 1 << 20;

const WEB_IDENTITY_VOLUME: &str = "aws-iam-token";
const POD_IDENTITY_VOLUME: &str = "eks-pod-identity-token";
const POD_IDENTITY_AUDIENCE: &str = "pods.eks.amazonaws.com";

// ------------------------------------------------------------------------------------------------------------------
// The SDKs
// ------------------------------------------------------------------------------------------------------------------

/// What `tests/e2e/sdks.sh provide` printed.
struct Sdks {
    python: PathBuf,
    aws: PathBuf,
    moto_server: PathBuf,
    python_old: PathBuf,
    python_min: PathBuf,
    node: PathBuf,
    node_modules: PathBuf,
    rust_client: PathBuf,
}

/// Installs the SDKs on first use (cached across runs); panics with the reason when that fails.
fn sdks() -> &'static Sdks {
    static SDKS: OnceLock<Sdks> = OnceLock::new();
    SDKS.get_or_init(|| {
        let script = repo_root().join("tests/e2e/sdks.sh");
        let started = Instant::now();
        let output = Command::new(&script)
            .arg("provide")
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(output.status.success(), "tests/e2e/sdks.sh provide failed ({}); its log is above", output.status);
        eprintln!("tests/e2e/sdks.sh provide: {:.1} s", started.elapsed().as_secs_f64());
        let stdout = String::from_utf8_lossy(&output.stdout);
        let paths: BTreeMap<&str, PathBuf> =
            stdout.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k, PathBuf::from(v.trim()))).collect();
        let path = |key: &str| {
            let path = paths.get(key).unwrap_or_else(|| panic!("sdks.sh printed no {key}=… line:\n{stdout}"));
            assert!(path.exists(), "sdks.sh printed {key}={}, which does not exist", path.display());
            path.clone()
        };
        Sdks {
            python: path("python"),
            aws: path("aws"),
            moto_server: path("moto_server"),
            python_old: path("python_old"),
            python_min: path("python_min"),
            node: path("node"),
            node_modules: path("node_modules"),
            rust_client: path("rust_client"),
        }
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sdk {
    Boto3,
    AwsCli,
    JsV3,
    Rust,
    /// boto3/botocore older than `doctor`'s minimum.
    Boto3Old,
    /// botocore exactly at `doctor`'s minimum.
    Boto3Minimum,
}

impl Sdk {
    const CURRENT: [Sdk; 4] = [Sdk::Boto3, Sdk::AwsCli, Sdk::JsV3, Sdk::Rust];

    /// Short and DNS-safe: part of ServiceAccount, pod and role names.
    fn tag(self) -> &'static str {
        match self {
            Sdk::Boto3 => "boto3",
            Sdk::AwsCli => "awscli",
            Sdk::JsV3 => "js",
            Sdk::Rust => "rust",
            Sdk::Boto3Old => "boto3-old",
            Sdk::Boto3Minimum => "boto3-min",
        }
    }

    /// The client program: STS GetCallerIdentity with the SDK's default credential chain; JSON on stdout.
    fn command(self) -> Command {
        let sdks = sdks();
        let clients = repo_root().join("tests/sdk");
        match self {
            Sdk::Boto3 | Sdk::Boto3Old | Sdk::Boto3Minimum => {
                let python = match self {
                    Sdk::Boto3Old => &sdks.python_old,
                    Sdk::Boto3Minimum => &sdks.python_min,
                    _ => &sdks.python,
                };
                let mut command = Command::new(python);
                command.arg(clients.join("boto3_identity.py"));
                command
            }
            Sdk::AwsCli => {
                let mut command = Command::new(&sdks.aws);
                command.args(["sts", "get-caller-identity", "--output", "json"]);
                command
            }
            Sdk::JsV3 => {
                let mut command = Command::new(&sdks.node);
                command.arg(clients.join("js_identity.js")).arg(&sdks.node_modules);
                command
            }
            Sdk::Rust => Command::new(&sdks.rust_client),
        }
    }
}

impl fmt::Display for Sdk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Sdk::Boto3 => "boto3",
            Sdk::AwsCli => "AWS CLI v1",
            Sdk::JsV3 => "AWS SDK for JavaScript v3",
            Sdk::Rust => "aws-sdk-rust",
            Sdk::Boto3Old => "boto3 older than doctor's minimum",
            Sdk::Boto3Minimum => "boto3 at doctor's botocore minimum",
        })
    }
}

/// A finished SDK run.
struct SdkRun {
    sdk: Sdk,
    status: ExitStatus,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl SdkRun {
    /// The JSON answer on stdout (the CLI prints it over several lines).
    fn answer(&self) -> Result<Value, String> {
        serde_json::from_str(self.stdout.trim()).map_err(|e| format!("stdout is not the JSON answer ({e})\n{self}"))
    }

    fn arn(&self) -> Result<String, String> {
        let answer = self.answer()?;
        answer["Arn"].as_str().map(str::to_owned).ok_or_else(|| format!("no Arn in the answer\n{self}"))
    }
}

impl fmt::Display for SdkRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Tracebacks are long; their end says what went wrong.
        let stderr: Vec<&str> = self.stderr.lines().collect();
        let tail = stderr[stderr.len().saturating_sub(40)..].join("\n");
        write!(
            f,
            "--- {} exited {} after {:.1} s\n--- stdout:\n{}\n--- stderr (last 40 lines):\n{tail}\n---",
            self.sdk,
            self.status,
            self.elapsed.as_secs_f64(),
            self.stdout.trim_end()
        )
    }
}

/// Kills the child when dropped (a timed-out or abandoned run leaves nothing behind).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Runs `sdk` with exactly `env` (plus [`CHILD_PATH`]); stdout and stderr go to files in `dir`, so a chatty child
/// never blocks on a full pipe while the test's servers answer it.
async fn run_sdk(sdk: Sdk, env: &[(String, String)], dir: &Path) -> SdkRun {
    let run_dir = tempfile::tempdir_in(dir).expect("run dir");
    let (out_path, err_path) = (run_dir.path().join("stdout"), run_dir.path().join("stderr"));
    let mut command = sdk.command();
    command
        .env_clear()
        .env("PATH", CHILD_PATH)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(run_dir.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"));
    let started = Instant::now();
    let mut child = KillOnDrop(command.spawn().unwrap_or_else(|e| panic!("cannot start {sdk} ({command:?}): {e}")));
    let status = loop {
        match child.0.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > SDK_TIMEOUT => {
                drop(child);
                panic!(
                    "{sdk} did not finish within {SDK_TIMEOUT:?}; stderr:\n{}",
                    std::fs::read_to_string(&err_path).unwrap_or_default()
                );
            }
            Ok(None) => tokio::time::sleep(Duration::from_millis(25)).await,
            Err(e) => panic!("wait for {sdk}: {e}"),
        }
    };
    SdkRun {
        sdk,
        status,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        elapsed: started.elapsed(),
    }
}

// ------------------------------------------------------------------------------------------------------------------
// The STS stand-in: moto's server, behind a recording proxy
// ------------------------------------------------------------------------------------------------------------------

/// `moto_server` on a free loopback port; killed on drop (its log printed if the test is failing).
struct Moto {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Moto {
    async fn start(dir: &Path) -> Self {
        let port = free_port(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let log = dir.join("moto.log");
        let file = std::fs::File::create(&log).expect("moto log");
        let child = Command::new(&sdks().moto_server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            // Nothing of the test runner's environment (AWS_* variables, proxies) reaches the stand-in.
            .env_clear()
            .env("PATH", CHILD_PATH)
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone().expect("log handle")))
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto_server: {e}"));
        let mut moto = Self { child, port, log };
        let url = moto.url();
        let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build().expect("client");
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited ({status}); log:\n{}", moto.log_text());
            }
            if client.get(format!("{url}/moto-api/")).send().await.is_ok() {
                return moto;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server not answering after {SETTLE_TIMEOUT:?}; log:\n{}",
                moto.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// AssumeRoleWithWebIdentity straight to moto (not through the proxy): credentials for the Pod Identity agent
    /// stand-in to hand out, so that GetCallerIdentity with them answers an assumed role, as with the real agent.
    async fn mint_credentials(&self, role: &str, session: &str, token: &str) -> Issued {
        let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().expect("client");
        let form = [
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", role),
            ("RoleSessionName", session),
            ("WebIdentityToken", token),
        ];
        let body = form.iter().map(|(k, v)| format!("{k}={}", percent_encode(v))).collect::<Vec<_>>().join("&");
        let response = client
            .post(self.url())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("AssumeRoleWithWebIdentity to moto: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "moto refused AssumeRoleWithWebIdentity ({status}): {text}");
        let tag = |name: &str| xml_text(&text, name).unwrap_or_else(|| panic!("no <{name}> in moto's answer: {text}"));
        Issued {
            access_key_id: tag("AccessKeyId"),
            secret_access_key: tag("SecretAccessKey"),
            session_token: tag("SessionToken"),
            // RFC 3339 without the fraction moto adds: what the agent sends.
            expiration: format!("{}Z", tag("Expiration").split('.').next().unwrap_or_default().trim_end_matches('Z')),
            arn: tag("Arn"),
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log_text();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "--- moto_server log, last 40 lines ---\n{}\n---",
                lines[lines.len().saturating_sub(40)..].join("\n")
            );
        }
    }
}

/// One request an SDK sent to "STS", as the proxy saw it, with moto's answer.
#[derive(Debug, Clone)]
struct StsCall {
    /// `Action`, from the form body or the query.
    action: String,
    params: BTreeMap<String, String>,
    authorization: Option<String>,
    security_token: Option<String>,
    user_agent: String,
    status: u16,
    response: String,
}

impl StsCall {
    /// `Credential=<key>/<date>/<region>/<service>/aws4_request` of a SigV4 `Authorization` header.
    fn credential_scope(&self) -> Option<Vec<&str>> {
        let credential = self.authorization.as_deref()?.split("Credential=").nth(1)?.split([',', ' ']).next()?;
        Some(credential.split('/').collect())
    }

    fn access_key(&self) -> Option<&str> {
        self.credential_scope()?.first().copied()
    }

    fn signing_region(&self) -> Option<&str> {
        self.credential_scope()?.get(2).copied()
    }

    fn param(&self, name: &str) -> &str {
        self.params.get(name).map(String::as_str).unwrap_or_default()
    }
}

impl fmt::Display for StsCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params: BTreeMap<_, _> = self
            .params
            .iter()
            .map(|(k, v)| {
                (k.as_str(), if k == "WebIdentityToken" { format!("<{} bytes>", v.len()) } else { v.clone() })
            })
            .collect();
        write!(
            f,
            "{} → {} (signed by {:?} for {:?}; {params:?}; User-Agent {:?})",
            self.action,
            self.status,
            self.access_key(),
            self.signing_region(),
            self.user_agent
        )
    }
}

struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    calls: Mutex<Vec<StsCall>>,
}

/// A plain-HTTP reverse proxy on a free loopback port in front of moto that records every request: the SDKs'
/// `AWS_ENDPOINT_URL_STS`.
struct StsProxy {
    port: u16,
    state: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

impl StsProxy {
    async fn start(upstream: String) -> Self {
        let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().expect("client");
        let state = Arc::new(ProxyState { upstream, client, calls: Mutex::new(Vec::new()) });
        let router = axum::Router::new().fallback(relay).with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind the STS proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { port, state, task }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The calls recorded since the last `take`.
    fn take(&self) -> Vec<StsCall> {
        std::mem::take(&mut *self.state.calls.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for StsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(State(state): State<Arc<ProxyState>>, request: axum::extract::Request) -> Response {
    const HOP_BY_HOP: &[&str] = &["host", "content-length", "connection", "transfer-encoding", "keep-alive"];
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(e) => return (StatusCode::PAYLOAD_TOO_LARGE, e.to_string()).into_response(),
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut forward =
        state.client.request(parts.method.clone(), format!("{}{path}", state.upstream)).body(body.clone());
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            forward = forward.header(name, value);
        }
    }
    let (status, headers, answer) = match forward.send().await {
        Ok(response) => {
            let (status, headers) = (response.status(), response.headers().clone());
            (status, headers, response.bytes().await.unwrap_or_default())
        }
        Err(e) => (StatusCode::BAD_GATEWAY, HeaderMap::new(), format!("proxy: moto did not answer: {e}").into()),
    };

    let mut params = form_decode(parts.uri.query().unwrap_or_default());
    params.extend(form_decode(&String::from_utf8_lossy(&body)));
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    state.calls.lock().unwrap_or_else(|e| e.into_inner()).push(StsCall {
        action: params.get("Action").cloned().unwrap_or_else(|| format!("(no Action: {} {path})", parts.method)),
        params,
        authorization: header("authorization"),
        security_token: header("x-amz-security-token"),
        user_agent: header("user-agent").unwrap_or_default(),
        status: status.as_u16(),
        response: String::from_utf8_lossy(&answer).into_owned(),
    });

    let mut response = (status, answer).into_response();
    for (name, value) in &headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

/// `application/x-www-form-urlencoded` pairs.
fn form_decode(text: &str) -> BTreeMap<String, String> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match (bytes[i], escaped) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 2;
            }
            (byte, _) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The text of the first `<name>…</name>` in an XML answer.
fn xml_text(xml: &str, name: &str) -> Option<String> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    Some(xml[start..end].to_owned())
}

// ------------------------------------------------------------------------------------------------------------------
// The EKS Pod Identity agent stand-in
// ------------------------------------------------------------------------------------------------------------------

/// Credentials handed out by the agent stand-in.
#[derive(Debug, Clone)]
struct Issued {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: String,
    /// The assumed role they belong to.
    arn: String,
}

#[derive(Default)]
struct AgentState {
    /// Token → the credentials for it.
    grants: Mutex<Vec<(String, Issued)>>,
    /// Every request: (Authorization header, answered with credentials).
    requests: Mutex<Vec<(Option<String>, bool)>>,
}

/// `GET /v1/credentials` on a free loopback port, answering only a request whose `Authorization` header is a token
/// it was given (the token file's content), as the EKS Pod Identity agent does after checking the token.
struct PodIdentityAgent {
    port: u16,
    state: Arc<AgentState>,
    task: tokio::task::JoinHandle<()>,
}

impl PodIdentityAgent {
    async fn start() -> Self {
        let state = Arc::new(AgentState::default());
        let router = axum::Router::new()
            .route("/v1/credentials", axum::routing::get(agent_credentials))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind the agent");
        let port = listener.local_addr().expect("agent address").port();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { port, state, task }
    }

    fn full_uri(&self) -> String {
        format!("http://127.0.0.1:{}/v1/credentials", self.port)
    }

    fn grant(&self, token: &str, issued: Issued) {
        self.state.grants.lock().unwrap_or_else(|e| e.into_inner()).push((token.to_owned(), issued));
    }

    /// The requests received since the last `take`.
    fn take(&self) -> Vec<(Option<String>, bool)> {
        std::mem::take(&mut *self.state.requests.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for PodIdentityAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn agent_credentials(State(state): State<Arc<AgentState>>, headers: HeaderMap) -> Response {
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let issued = authorization.as_deref().and_then(|auth| {
        let grants = state.grants.lock().unwrap_or_else(|e| e.into_inner());
        grants.iter().find(|(token, _)| token == auth).map(|(_, issued)| issued.clone())
    });
    state.requests.lock().unwrap_or_else(|e| e.into_inner()).push((authorization, issued.is_some()));
    match issued {
        Some(issued) => axum::Json(json!({
            "AccessKeyId": issued.access_key_id,
            "SecretAccessKey": issued.secret_access_key,
            "Token": issued.session_token,
            "AccountId": ACCOUNT,
            "Expiration": issued.expiration,
        }))
        .into_response(),
        None => {
            (StatusCode::UNAUTHORIZED, axum::Json(json!({"Message": "the Authorization header is not a known token"})))
                .into_response()
        }
    }
}

// ------------------------------------------------------------------------------------------------------------------
// The cluster side: the webhook, pods, and what the kubelet would do
// ------------------------------------------------------------------------------------------------------------------

fn role(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

/// Everything a test runs against: one namespace, our webhook (both modes configured), moto behind the proxy, the
/// agent stand-in, and a temporary directory that receives the token files.
struct Rig {
    scope: Scope,
    namespace: Namespace,
    moto: Moto,
    proxy: StsProxy,
    agent: PodIdentityAgent,
    _webhook: WebhookProcess,
    dir: tempfile::TempDir,
}

impl Rig {
    /// `pod_identity_accounts`: the ServiceAccounts of the namespace that use EKS Pod Identity.
    async fn start(tag: &str, pod_identity_accounts: &[String]) -> Self {
        sdks(); // install (minutes on a cold cache) before anything that waits on a timeout
        let cluster = connect().await;
        let scope = cluster.scope(tag);
        let namespace = scope.namespace("ns").await;
        let dir = tempfile::tempdir().expect("temp dir");
        let moto = Moto::start(dir.path()).await;
        let proxy = StsProxy::start(moto.url()).await;
        let agent = PodIdentityAgent::start().await;

        let identities: Vec<Value> =
            pod_identity_accounts.iter().map(|sa| json!({"namespace": namespace.name, "serviceAccount": sa})).collect();
        let config = dir.path().join("pod-identity.json");
        std::fs::write(&config, json!({ "identities": identities }).to_string()).expect("write the config");
        let mounts = dir.path().join("mounts");
        let webhook = WebhookProcess::start(WebhookOptions::default().args([
            "--token-mount-path".to_owned(),
            mounts.join("eks.amazonaws.com/serviceaccount").display().to_string(),
            "--inject-role-session-name".to_owned(),
            "--aws-default-region".to_owned(),
            REGION.to_owned(),
            "--watch-container-credentials-config".to_owned(),
            config.display().to_string(),
            "--container-credentials-full-uri".to_owned(),
            agent.full_uri(),
            "--container-credentials-token-mount-path".to_owned(),
            mounts.join("pods.eks.amazonaws.com/serviceaccount").display().to_string(),
        ]))
        .await;
        scope.register("sdk", &[WebhookSpec::irsa(&webhook)]).await;
        let probe_role = role("probe");
        namespace.service_account_with_role("probe", &probe_role).await;
        namespace.wait_until_mutated(&pod("probe", "probe"), &probe_role).await;
        Self { scope, namespace, moto, proxy, agent, _webhook: webhook, dir }
    }

    /// Creates a pod of ServiceAccount `sa` and returns it as stored.
    async fn pod(&self, name: &str, sa: &str) -> Value {
        self.namespace.create_pod_ok(&pod(name, sa)).await
    }

    /// What the kubelet does for the projected token volume `volume` of the stored `pod`: a TokenRequest with the
    /// volume's audience and expirationSeconds, bound to the pod, written at `<mountPath>/<path>` of the volume's
    /// mount in container `app`. Returns (token, file).
    async fn kubelet_token(&self, pod: &Value, volume: &str) -> (String, PathBuf) {
        let name = pod["metadata"]["name"].as_str().expect("pod name");
        let volumes = volumes_named(pod, volume);
        assert_eq!(volumes.len(), 1, "pod {name}: expected one {volume} volume\n{pod:#}");
        let source = &volumes[0]["projected"]["sources"][0]["serviceAccountToken"];
        let (audience, expiration, path) = (
            source["audience"].as_str().unwrap_or_else(|| panic!("{volume}: no audience\n{pod:#}")),
            source["expirationSeconds"].as_i64().unwrap_or_else(|| panic!("{volume}: no expirationSeconds\n{pod:#}")),
            source["path"].as_str().unwrap_or_else(|| panic!("{volume}: no path\n{pod:#}")),
        );
        let mounts = mounts_named(container(pod, "app"), volume);
        assert_eq!(mounts.len(), 1, "pod {name}: container app should mount {volume} once\n{pod:#}");
        let mount_path = mounts[0]["mountPath"].as_str().expect("mountPath");
        assert!(
            Path::new(mount_path).starts_with(self.dir.path()),
            "the mount path {mount_path} is not inside the test's directory: the webhook flags did not take"
        );

        let sa = pod["spec"]["serviceAccountName"].as_str().expect("serviceAccountName");
        let request: k8s_openapi::api::authentication::v1::TokenRequest = serde_json::from_value(json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {
                "audiences": [audience],
                "expirationSeconds": expiration,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": pod["metadata"]["uid"]}
            }
        }))
        .expect("TokenRequest");
        let token = self
            .namespace
            .service_accounts()
            .create_token_request(sa, &PostParams::default(), &request)
            .await
            .unwrap_or_else(|e| panic!("TokenRequest for {}/{sa} bound to pod {name}: {e}", self.namespace.name))
            .status
            .expect("TokenRequest status")
            .token;

        // The token says what STS will check: the volume's audience, the ServiceAccount, the pod.
        let claims = jwt_claims(&token);
        assert_eq!(claims["aud"], json!([audience]), "token audience\n{claims:#}");
        assert_eq!(claims["sub"], format!("system:serviceaccount:{}:{sa}", self.namespace.name), "token subject");
        assert_eq!(claims["kubernetes.io"]["pod"]["name"], name, "token bound to the pod\n{claims:#}");
        verify_service_account_token(&token).unwrap_or_else(|e| panic!("the token does not verify: {e}"));

        std::fs::create_dir_all(mount_path).expect("mount dir");
        let file = Path::new(mount_path).join(path);
        std::fs::write(&file, &token).expect("write the token file");
        (token, file)
    }

    /// The child's environment: the stored container's env, plus only the STS endpoint, an empty HOME and the
    /// instance-metadata switch.
    fn sdk_env(&self, pod: &Value) -> Vec<(String, String)> {
        let home = tempfile::tempdir_in(self.dir.path()).expect("home").keep();
        let mut env = container_env(pod, "app");
        env.push(("AWS_ENDPOINT_URL_STS".into(), self.proxy.url()));
        env.push(("HOME".into(), home.display().to_string()));
        env.push(("AWS_EC2_METADATA_DISABLED".into(), "true".into()));
        env
    }
}

/// The env of container `name` as the kubelet sets it: `value`, or `valueFrom.fieldRef` resolved against the pod.
fn container_env(pod: &Value, name: &str) -> Vec<(String, String)> {
    let entries = container(pod, name)["env"].as_array().cloned().unwrap_or_default();
    entries
        .iter()
        .map(|entry| {
            let var = entry["name"].as_str().unwrap_or_else(|| panic!("env entry without a name: {entry}"));
            let value = if let Some(field) = entry["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                let value = match field {
                    "metadata.name" => &pod["metadata"]["name"],
                    "metadata.namespace" => &pod["metadata"]["namespace"],
                    "metadata.uid" => &pod["metadata"]["uid"],
                    "spec.serviceAccountName" => &pod["spec"]["serviceAccountName"],
                    other => panic!("env {var}: fieldRef {other} is not resolved by this test"),
                };
                value.as_str().unwrap_or_else(|| panic!("env {var}: {field} is not set on the pod")).to_owned()
            } else if entry.get("valueFrom").is_some() {
                panic!("env {var}: only value and valueFrom.fieldRef are resolved by this test: {entry}")
            } else {
                entry["value"].as_str().unwrap_or_default().to_owned()
            };
            // The kubelet expands $(VAR) references; none of what the webhook adds has one.
            assert!(!value.contains("$("), "env {var}={value:?}: $(VAR) expansion is not done by this test");
            (var.to_owned(), value)
        })
        .collect()
}

fn env_of<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The last role name segment of an ARN (`arn:aws:iam::1:role/path/name` → `name`).
fn role_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// Runs every check of one case; the error lists what was wrong with the SDK's output and the recorded calls.
fn check(sdk: Sdk, run: &SdkRun, calls: &[StsCall], problems: Vec<String>) -> Result<String, String> {
    if problems.is_empty() {
        let gci = calls.iter().rev().find(|c| c.action == "GetCallerIdentity");
        Ok(format!(
            "{sdk}: ok in {:.1} s; calls: {}; GetCallerIdentity signed for region {:?}, User-Agent {:?}",
            run.elapsed.as_secs_f64(),
            calls.iter().map(|c| c.action.as_str()).collect::<Vec<_>>().join(", "),
            gci.and_then(StsCall::signing_region),
            gci.map(|c| c.user_agent.as_str()).unwrap_or_default()
        ))
    } else {
        Err(format!("{sdk}:\n- {}\nSTS calls recorded:\n{}\n{run}", problems.join("\n- "), list(calls)))
    }
}

/// One call a line, tokens left out (see [`StsCall`]'s `Display`).
fn list(calls: &[StsCall]) -> String {
    calls.iter().map(|c| format!("  {c}")).collect::<Vec<_>>().join("\n")
}

/// Panics with every failed case, after all of them ran.
fn report(what: &str, results: Vec<Result<String, String>>) {
    let (ok, failed): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    for line in ok.into_iter().flatten() {
        eprintln!("{what}: {line}");
    }
    let failed: Vec<String> = failed.into_iter().filter_map(Result::err).collect();
    assert!(failed.is_empty(), "{what}: {} SDK(s) failed:\n\n{}", failed.len(), failed.join("\n\n"));
}

// ------------------------------------------------------------------------------------------------------------------
// Web identity (IRSA)
// ------------------------------------------------------------------------------------------------------------------

async fn web_identity_case(rig: &Rig, sdk: Sdk) -> Result<String, String> {
    let (sa, pod_name) = (format!("wi-{}", sdk.tag()), format!("wi-{}-pod", sdk.tag()));
    let role_arn = role(&format!("irsa-{}", sdk.tag()));
    rig.namespace.service_account_with_role(&sa, &role_arn).await;
    let pod = rig.pod(&pod_name, &sa).await;
    let (token, file) = rig.kubelet_token(&pod, WEB_IDENTITY_VOLUME).await;
    let audience = volumes_named(&pod, WEB_IDENTITY_VOLUME)[0]["projected"]["sources"][0]["serviceAccountToken"]
        ["audience"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let env = rig.sdk_env(&pod);
    assert_eq!(env_of(&env, "AWS_ROLE_ARN"), Some(role_arn.as_str()), "stored pod's AWS_ROLE_ARN\n{pod:#}");
    assert_eq!(env_of(&env, "AWS_ROLE_SESSION_NAME"), Some(pod_name.as_str()), "resolved AWS_ROLE_SESSION_NAME");
    assert_eq!(env_of(&env, "AWS_WEB_IDENTITY_TOKEN_FILE"), file.to_str(), "the env names the file the volume holds");

    rig.proxy.take();
    let run = run_sdk(sdk, &env, rig.dir.path()).await;
    let calls = rig.proxy.take();
    let mut problems = Vec::new();
    if !run.status.success() {
        problems.push("the SDK failed".to_owned());
    }
    let expected_arn = format!("arn:aws:sts::{ACCOUNT}:assumed-role/{}/{pod_name}", role_name(&role_arn));
    match run.arn() {
        Ok(arn) if arn == expected_arn => {}
        Ok(arn) => problems.push(format!("GetCallerIdentity answered {arn}, expected {expected_arn}")),
        Err(e) if run.status.success() => problems.push(e),
        Err(_) => {}
    }
    let assumes: Vec<&StsCall> = calls.iter().filter(|c| c.action == "AssumeRoleWithWebIdentity").collect();
    if assumes.is_empty() {
        problems.push("no AssumeRoleWithWebIdentity was sent".to_owned());
    }
    for call in &assumes {
        for (param, expected) in [("RoleArn", role_arn.as_str()), ("RoleSessionName", pod_name.as_str())] {
            if call.param(param) != expected {
                problems.push(format!(
                    "AssumeRoleWithWebIdentity {param} is {:?}, expected {expected:?}",
                    call.param(param)
                ));
            }
        }
        // Tokens stay out of the test's output: say how they differ, not what they are.
        let sent = call.param("WebIdentityToken");
        if sent != token {
            problems.push(format!(
                "AssumeRoleWithWebIdentity WebIdentityToken is not the token file's content ({} bytes sent, {} in \
                 the file)",
                sent.len(),
                token.len()
            ));
        } else {
            // What STS checks in the token it was sent: the audience of the pod's volume, the ServiceAccount.
            let claims = jwt_claims(sent);
            if claims["aud"] != json!([audience]) {
                problems.push(format!("the token sent has aud {}, the volume's audience is {audience}", claims["aud"]));
            }
            let subject = format!("system:serviceaccount:{}:{sa}", rig.namespace.name);
            if claims["sub"] != subject {
                problems.push(format!("the token sent has sub {}, expected {subject}", claims["sub"]));
            }
        }
        if call.status != 200 {
            problems.push(format!("moto answered AssumeRoleWithWebIdentity with {}: {}", call.status, call.response));
        }
    }
    // GetCallerIdentity is signed with the key the exchange returned: the credentials came from it.
    let assumed_keys: Vec<String> = assumes.iter().filter_map(|c| xml_text(&c.response, "AccessKeyId")).collect();
    match calls.iter().rev().find(|c| c.action == "GetCallerIdentity") {
        None => problems.push("no GetCallerIdentity was sent".to_owned()),
        Some(gci) if !gci.access_key().is_some_and(|k| assumed_keys.iter().any(|a| a == k)) => problems.push(format!(
            "GetCallerIdentity signed by {:?}, not by a key AssumeRoleWithWebIdentity returned ({assumed_keys:?})",
            gci.access_key()
        )),
        Some(_) => {}
    }
    check(sdk, &run, &calls, problems)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_identity_credentials_reach_every_sdk() {
    let rig = Rig::start("sdk-wi", &[]).await;
    let mut results = Vec::new();
    for sdk in Sdk::CURRENT {
        results.push(web_identity_case(&rig, sdk).await);
    }
    rig.scope.cleanup().await;
    report("web identity", results);
}

// ------------------------------------------------------------------------------------------------------------------
// EKS Pod Identity (container credentials)
// ------------------------------------------------------------------------------------------------------------------

async fn pod_identity_case(rig: &Rig, sdk: Sdk) -> Result<String, String> {
    let (sa, pod_name) = (format!("pi-{}", sdk.tag()), format!("pi-{}-pod", sdk.tag()));
    rig.namespace.service_account(&sa, &[]).await;
    let pod = rig.pod(&pod_name, &sa).await;
    let (token, file) = rig.kubelet_token(&pod, POD_IDENTITY_VOLUME).await;
    let volume = &volumes_named(&pod, POD_IDENTITY_VOLUME)[0];
    assert_eq!(volume["projected"]["sources"][0]["serviceAccountToken"]["audience"], POD_IDENTITY_AUDIENCE);
    let env = rig.sdk_env(&pod);
    assert_eq!(env_of(&env, "AWS_CONTAINER_CREDENTIALS_FULL_URI"), Some(rig.agent.full_uri().as_str()), "{pod:#}");
    assert_eq!(env_of(&env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"), file.to_str(), "the env names the token file");
    assert_eq!(env_of(&env, "AWS_ROLE_ARN"), None, "no web identity in Pod Identity mode\n{pod:#}");

    // The agent would exchange the token for the association's role: mint that role's credentials with moto.
    let role_arn = role(&format!("pod-identity-{}", sdk.tag()));
    let session = format!("eks-e2e-{pod_name}");
    let issued = rig.moto.mint_credentials(&role_arn, &session, &token).await;
    rig.agent.grant(&token, issued.clone());

    rig.proxy.take();
    rig.agent.take();
    let run = run_sdk(sdk, &env, rig.dir.path()).await;
    let calls = rig.proxy.take();
    let agent_requests = rig.agent.take();
    let mut problems = Vec::new();
    if !run.status.success() {
        problems.push("the SDK failed".to_owned());
    }
    match run.arn() {
        Ok(arn) if arn == issued.arn => {}
        Ok(arn) => problems.push(format!("GetCallerIdentity answered {arn}, expected {}", issued.arn)),
        Err(e) if run.status.success() => problems.push(e),
        Err(_) => {}
    }
    if !agent_requests.iter().any(|(auth, granted)| *granted && auth.as_deref() == Some(token.as_str())) {
        problems.push(format!(
            "the agent never got the token file's content as Authorization: {} request(s), granted: {:?}",
            agent_requests.len(),
            agent_requests.iter().map(|(_, g)| g).collect::<Vec<_>>()
        ));
    }
    if agent_requests.iter().any(|(_, granted)| !granted) {
        problems.push("the agent was asked with another Authorization than the token".to_owned());
    }
    match calls.iter().rev().find(|c| c.action == "GetCallerIdentity") {
        None => problems.push("no GetCallerIdentity was sent".to_owned()),
        Some(gci) => {
            if gci.access_key() != Some(issued.access_key_id.as_str()) {
                problems.push(format!(
                    "GetCallerIdentity signed by {:?}, not by the agent's {}",
                    gci.access_key(),
                    issued.access_key_id
                ));
            }
            if gci.security_token.as_deref() != Some(issued.session_token.as_str()) {
                problems.push("GetCallerIdentity did not carry the agent's session token".to_owned());
            }
        }
    }
    if calls.iter().any(|c| c.action.starts_with("AssumeRole")) {
        problems.push("the SDK called AssumeRole* itself in Pod Identity mode".to_owned());
    }
    check(sdk, &run, &calls, problems)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_identity_credentials_reach_every_sdk() {
    let accounts: Vec<String> = Sdk::CURRENT.iter().map(|sdk| format!("pi-{}", sdk.tag())).collect();
    let rig = Rig::start("sdk-pi", &accounts).await;
    let mut results = Vec::new();
    for sdk in Sdk::CURRENT {
        results.push(pod_identity_case(&rig, sdk).await);
    }
    rig.scope.cleanup().await;
    report("pod identity", results);
}

// ------------------------------------------------------------------------------------------------------------------
// doctor's minimum SDK versions
// ------------------------------------------------------------------------------------------------------------------

fn version(text: &str) -> Vec<u64> {
    text.split('.').map(|part| part.parse().unwrap_or_else(|_| panic!("not a version: {text:?}"))).collect()
}

fn doctor_minimum(sdk: &str) -> Vec<u64> {
    let (_, minimum) = MINIMUM_SDK_VERSIONS
        .iter()
        .find(|(name, _)| *name == sdk)
        .unwrap_or_else(|| panic!("doctor names no minimum for {sdk:?}: {MINIMUM_SDK_VERSIONS:?}"));
    version(minimum)
}

/// The botocore/boto3 versions an SDK run printed.
fn python_sdk_versions(run: &SdkRun) -> (String, String) {
    let answer = run.answer().unwrap_or_else(|e| panic!("{e}"));
    let field = |name: &str| answer[name].as_str().unwrap_or_else(|| panic!("no {name} version\n{run}")).to_owned();
    (field("boto3"), field("botocore"))
}

/// `doctor`'s minimum for boto3 is where web identity starts: the pod env and token the webhook gives are used by
/// a botocore exactly at the minimum, and not by the release before it — which finds no credentials at all and
/// never calls AssumeRoleWithWebIdentity. Controls keep that honest: the old SDK works here with static keys (so
/// it is its age that matters, not this machine), and the current boto3 succeeds with the very same env and token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_minimum_for_boto3_is_where_web_identity_starts() {
    let rig = Rig::start("sdk-min", &[]).await;
    let role_arn = role("irsa-boto3-age");
    rig.namespace.service_account_with_role("age", &role_arn).await;
    let pod = rig.pod("age-pod", "age").await;
    let (token, _file) = rig.kubelet_token(&pod, WEB_IDENTITY_VOLUME).await;
    let env = rig.sdk_env(&pod);
    let expected_arn = format!("arn:aws:sts::{ACCOUNT}:assumed-role/{}/age-pod", role_name(&role_arn));
    let minimum_botocore = doctor_minimum("botocore");

    // Control: with static keys the old SDK signs and sends GetCallerIdentity to the stand-in.
    let mut with_keys = env.clone();
    with_keys.push(("AWS_ACCESS_KEY_ID".into(), "AKIAOLDBOTO3CONTROL1".into()));
    with_keys.push(("AWS_SECRET_ACCESS_KEY".into(), "control-secret".into()));
    rig.proxy.take();
    let control = run_sdk(Sdk::Boto3Old, &with_keys, rig.dir.path()).await;
    let calls = rig.proxy.take();
    assert!(control.status.success(), "the old boto3 does not work here even with static keys\n{control}");
    assert!(
        calls.iter().any(|c| c.action == "GetCallerIdentity" && c.access_key() == Some("AKIAOLDBOTO3CONTROL1")),
        "the old boto3's GetCallerIdentity did not reach the stand-in:\n{}",
        list(&calls)
    );
    let (old_boto3, old_botocore) = python_sdk_versions(&control);
    assert!(
        version(&old_boto3) < doctor_minimum("Python boto3") && version(&old_botocore) < minimum_botocore,
        "the old SDK (boto3 {old_boto3}, botocore {old_botocore}) is not older than doctor's minimum: fix sdks.sh"
    );

    // Below the minimum, without keys: web identity is not understood, so there are no credentials.
    let old = run_sdk(Sdk::Boto3Old, &env, rig.dir.path()).await;
    let calls = rig.proxy.take();
    assert_eq!(old.status.code(), Some(3), "the old boto3 should find no credentials (exit 3)\n{old}");
    assert!(old.stderr.contains("NoCredentialsError"), "expected NoCredentialsError\n{old}");
    assert!(calls.is_empty(), "the old boto3 should send nothing to STS:\n{}", list(&calls));

    // At the minimum, and the current release: the same env and token give the role.
    let mut seen = Vec::new();
    for sdk in [Sdk::Boto3Minimum, Sdk::Boto3] {
        let run = run_sdk(sdk, &env, rig.dir.path()).await;
        let calls = rig.proxy.take();
        assert_eq!(run.arn().unwrap_or_else(|e| panic!("{e}")), expected_arn, "{run}");
        let exchange = calls
            .iter()
            .find(|c| c.action == "AssumeRoleWithWebIdentity")
            .unwrap_or_else(|| panic!("{sdk} sent no AssumeRoleWithWebIdentity:\n{}", list(&calls)));
        assert_eq!(exchange.param("RoleArn"), role_arn, "{sdk}: {exchange}");
        assert_eq!(exchange.param("RoleSessionName"), "age-pod", "{sdk}: {exchange}");
        assert!(exchange.param("WebIdentityToken") == token, "{sdk}: the token sent is not the file's: {exchange}");
        let (boto3, botocore) = python_sdk_versions(&run);
        match sdk {
            Sdk::Boto3Minimum => {
                assert_eq!(version(&botocore), minimum_botocore, "{sdk}: botocore {botocore}");
                // The first boto3 that requires that botocore is the boto3 minimum doctor names.
                assert_eq!(version(&boto3), doctor_minimum("Python boto3"), "{sdk}: boto3 {boto3}");
            }
            _ => assert!(version(&botocore) >= minimum_botocore, "{sdk}: botocore {botocore}"),
        }
        seen.push(format!("boto3 {boto3}/botocore {botocore}"));
    }
    eprintln!(
        "doctor's minimum: boto3 {old_boto3}/botocore {old_botocore} found no credentials in the injected env; {} \
         assumed {role_arn}",
        seen.join(" and ")
    );
    rig.scope.cleanup().await;
}

/// Keeps the helpers of this file honest without a cluster.
#[test]
fn form_and_xml_helpers() {
    let params = form_decode("Action=AssumeRoleWithWebIdentity&RoleSessionName=a+b&Token=x%2Fy%3D&Empty=&Bad=%Z1");
    assert_eq!(params["Action"], "AssumeRoleWithWebIdentity");
    assert_eq!(params["RoleSessionName"], "a b");
    assert_eq!(params["Token"], "x/y=");
    assert_eq!(params["Empty"], "");
    assert_eq!(params["Bad"], "%Z1");
    assert_eq!(percent_decode(&percent_encode("a b/c=d~é")), "a b/c=d~é");
    assert_eq!(xml_text("<A><B>x</B><B>y</B></A>", "B").as_deref(), Some("x"));
    assert_eq!(xml_text("<A></A>", "B"), None);
    let call = StsCall {
        action: "GetCallerIdentity".into(),
        params: BTreeMap::new(),
        authorization: Some(
            "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20260101/us-west-2/sts/aws4_request, SignedHeaders=host, Signature=0"
                .into(),
        ),
        security_token: None,
        user_agent: String::new(),
        status: 200,
        response: String::new(),
    };
    assert_eq!(call.access_key(), Some("ASIAEXAMPLE"));
    assert_eq!(call.signing_region(), Some("us-west-2"));
}
