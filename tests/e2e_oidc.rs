//! `irsa-webhook oidc` and `trust-policy` against a real kube-apiserver (tests/e2e/cluster.sh): our JWKS and
//! discovery document equal the API server's own, field for field; a real TokenRequest token verifies against our
//! JWKS and matches the trust policy's conditions; `publish --from-cluster` re-homes the API server's documents.
//!
//! Runs with `--features e2e` after `eval "$(tests/e2e/cluster.sh env)"` (tests/run-all.sh does both); the
//! cluster-free cases of the same commands are in tests/oidc.rs.

use std::path::PathBuf;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

mod support;
use support::e2e::Harness;
use support::run_binary;

/// The API server of the harness (tests/support/e2e): a missing environment fails the test instead of skipping it.
struct Cluster {
    url: String,
    token: String,
    pki: PathBuf,
    kubeconfig: String,
    client: reqwest::Client,
}

impl Cluster {
    fn from_env() -> Self {
        let harness = Harness::get();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .add_root_certificate(reqwest::Certificate::from_pem(&harness.ca_pem()).expect("ca.crt is PEM"))
            .build()
            .expect("http client");
        let token = std::fs::read_to_string(harness.pki.join("admin-token")).expect("the harness's admin-token");
        Self {
            url: harness.api_url.clone(),
            token: token.trim().to_owned(),
            pki: harness.pki.clone(),
            kubeconfig: harness.kubeconfig.display().to_string(),
            client,
        }
    }

    fn key(&self, name: &str) -> String {
        self.pki.join(name).display().to_string()
    }

    async fn get(&self, path: &str) -> Value {
        let response =
            self.client.get(format!("{}{path}", self.url)).bearer_auth(&self.token).send().await.expect("GET");
        assert!(response.status().is_success(), "GET {path}: {}", response.status());
        response.json().await.expect("JSON")
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .expect("POST");
        (response.status().as_u16(), response.json().await.expect("JSON"))
    }
}

fn success(args: &[&str]) -> Value {
    let output = run_binary(args);
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

/// Object keys in document order, recursively: "field for field" includes the order the API server writes.
fn shape(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Array(map.iter().map(|(k, v)| json!([k, shape(v)])).collect()),
        Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
        _ => Value::Null,
    }
}

fn b64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).expect("base64url")
}

#[tokio::test]
async fn jwks_and_discovery_equal_the_api_servers() {
    let cluster = Cluster::from_env();
    let served_jwks = cluster.get("/openid/v1/jwks").await;
    let served_discovery = cluster.get("/.well-known/openid-configuration").await;

    // The signing pair in both encodings the API server is given: public PKIX and private PKCS#1/PKCS#8.
    for key in ["sa.pub", "sa.key"] {
        let ours = success(&["oidc", "jwks", "--key", &cluster.key(key)]);
        assert_eq!(ours, served_jwks, "{key}");
        assert_eq!(shape(&ours), shape(&served_jwks), "{key}: field order");
    }

    let issuer = served_discovery["issuer"].as_str().expect("issuer");
    let jwks_uri = served_discovery["jwks_uri"].as_str().expect("jwks_uri");
    let ours =
        success(&["oidc", "discovery", "--issuer", issuer, "--jwks-uri", jwks_uri, "--key", &cluster.key("sa.pub")]);
    assert_eq!(ours, served_discovery);
    assert_eq!(shape(&ours), shape(&served_discovery), "field order");
}

#[tokio::test]
async fn a_token_request_token_verifies_against_our_jwks_and_matches_the_trust_policy() {
    let cluster = Cluster::from_env();
    let (namespace, name) = ("default", "irsa-e2e-oidc");
    let (status, body) = cluster
        .post(
            &format!("/api/v1/namespaces/{namespace}/serviceaccounts"),
            &json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}),
        )
        .await;
    assert!(status == 201 || status == 409, "create ServiceAccount: {status} {body}");
    let (status, body) = cluster
        .post(
            &format!("/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"),
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                    "spec": {"audiences": ["sts.amazonaws.com"], "expirationSeconds": 3600}}),
        )
        .await;
    assert_eq!(status, 201, "TokenRequest: {body}");
    let token = body["status"]["token"].as_str().expect("status.token");

    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS");
    let header: Value = serde_json::from_slice(&b64(parts[0])).expect("header");
    let claims: Value = serde_json::from_slice(&b64(parts[1])).expect("claims");

    // STS's check: the JWK with the header's kid verifies the signature.
    let jwks = success(&["oidc", "jwks", "--key", &cluster.key("sa.pub")]);
    let jwk = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == header["kid"]))
        .unwrap_or_else(|| panic!("no key with the token's kid {} in {jwks}", header["kid"]));
    assert_eq!((&header["alg"], &jwk["alg"]), (&json!("RS256"), &json!("RS256")));
    let n = b64(jwk["n"].as_str().expect("n"));
    let e = b64(jwk["e"].as_str().expect("e"));
    let signed = format!("{}.{}", parts[0], parts[1]);
    ring::signature::RsaPublicKeyComponents { n: &n, e: &e }
        .verify(&ring::signature::RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &b64(parts[2]))
        .expect("the token's signature verifies with our JWK");

    // IAM's check: the trust policy's provider and conditions are exactly the token's iss, sub and aud.
    let issuer = claims["iss"].as_str().expect("iss");
    let policy = success(&[
        "trust-policy",
        "--issuer",
        issuer,
        "--account",
        "111122223333",
        "--service-account",
        &format!("{namespace}/{name}"),
    ]);
    let statement = &policy["Statement"][0];
    let provider = issuer.strip_prefix("https://").expect("https issuer");
    assert_eq!(statement["Principal"]["Federated"], format!("arn:aws:iam::111122223333:oidc-provider/{provider}"));
    let equals = &statement["Condition"]["StringEquals"];
    assert_eq!(equals[format!("{provider}:sub")], claims["sub"]);
    assert_eq!(json!([equals[format!("{provider}:aud")]]), claims["aud"]);
}

#[tokio::test]
async fn publish_from_cluster_rehomes_the_api_servers_documents() {
    let cluster = Cluster::from_env();
    let served_jwks = cluster.get("/openid/v1/jwks").await;
    let served_discovery = cluster.get("/.well-known/openid-configuration").await;
    let out = tempfile::tempdir().expect("tempdir");
    let issuer = "https://irsa-e2e.s3.eu-west-1.amazonaws.com";
    let output = run_binary(&[
        "oidc",
        "publish",
        "--issuer",
        issuer,
        "--out",
        &out.path().display().to_string(),
        "--from-cluster",
        "--kubeconfig",
        &cluster.kubeconfig,
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // The API server still signs with its own issuer: publishing under another must say so.
    assert!(stderr.contains("warning: the API server's issuer is"), "{stderr}");
    let read = |path: &str| -> Value {
        serde_json::from_slice(&std::fs::read(out.path().join(path)).expect("published")).expect("JSON")
    };
    assert_eq!(read("openid/v1/jwks"), served_jwks);
    let mut expected = served_discovery.clone();
    expected["issuer"] = json!(issuer);
    expected["jwks_uri"] = json!(format!("{issuer}/openid/v1/jwks"));
    assert_eq!(read(".well-known/openid-configuration"), expected);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("aws s3 cp --recursive"), "{stdout}");
    assert!(stdout.contains(&format!("--service-account-issuer={issuer}")), "{stdout}");

    // The same from the key file: identical documents.
    let from_keys = tempfile::tempdir().expect("tempdir");
    let output = run_binary(&[
        "oidc",
        "publish",
        "--issuer",
        issuer,
        "--out",
        &from_keys.path().display().to_string(),
        "--key",
        &cluster.key("sa.pub"),
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    for path in ["openid/v1/jwks", ".well-known/openid-configuration"] {
        let a = std::fs::read(out.path().join(path)).expect("read");
        let b = std::fs::read(from_keys.path().join(path)).expect("read");
        assert_eq!(serde_json::from_slice::<Value>(&a).ok(), serde_json::from_slice::<Value>(&b).ok(), "{path}");
    }
}
