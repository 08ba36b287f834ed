//! EC2 instance metadata, for `--compose-role-arn` without `--aws-account-id`: the account and region come from the
//! instance identity document, where the reference reads them (`imds.GetInstanceIdentityDocument` of the Go SDK).
//!
//! As the AWS SDKs do: an IMDSv2 session token (`PUT /latest/api/token`), then
//! `GET /latest/dynamic/instance-identity/document` with it; IMDSv1 (no token) only when the token endpoint does not
//! exist (404, 405). The endpoint is `AWS_EC2_METADATA_SERVICE_ENDPOINT` when set (read by the CLI), else
//! `http://169.254.169.254`. Each request has [`REQUEST_TIMEOUT`] and a response is at most [`MAX_RESPONSE_BYTES`]:
//! off EC2, or from a pod when the instance's IMDSv2 hop limit is 1, the answer never comes, and start-up fails
//! within seconds with an error that says so and names the fix.

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde::Deserialize;

/// The SDKs' default endpoint.
pub const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";
/// Per request (connect, send, read the answer).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Larger answers are refused (a real identity document is under 1 KiB).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
const TOKEN_PATH: &str = "/latest/api/token";
const DOCUMENT_PATH: &str = "/latest/dynamic/instance-identity/document";
const TOKEN_TTL_SECONDS: &str = "60";

#[derive(Debug, thiserror::Error)]
pub enum ImdsError {
    #[error("instance metadata endpoint {0:?} is not an http://host[:port] URL")]
    Endpoint(String),
    #[error(
        "no answer from the EC2 instance metadata service at {endpoint} within {timeout:?} ({what}): off EC2, or \
         in a pod on an instance whose IMDSv2 hop limit is 1, give --aws-account-id (and --aws-partition) instead"
    )]
    Timeout { endpoint: String, what: &'static str, timeout: Duration },
    #[error("EC2 instance metadata service at {endpoint} ({what}): {error}")]
    Http { endpoint: String, what: &'static str, error: String },
    #[error("EC2 instance metadata service at {endpoint} answered {status} for {what}")]
    Status { endpoint: String, what: &'static str, status: u16 },
    #[error("the instance identity document from {endpoint} is not usable: {error}")]
    Document { endpoint: String, error: String },
}

/// What `--compose-role-arn` needs from the instance identity document.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceIdentity {
    pub account_id: String,
    pub region: String,
}

/// Reads the instance identity document from `endpoint` (see the module documentation).
pub async fn instance_identity(endpoint: &str) -> Result<InstanceIdentity, ImdsError> {
    let base: Uri = endpoint.trim_end_matches('/').parse().map_err(|_| ImdsError::Endpoint(endpoint.to_owned()))?;
    let authority = match (base.scheme_str(), base.authority()) {
        (Some("http"), Some(authority)) if base.path() == "/" || base.path().is_empty() => authority.clone(),
        _ => return Err(ImdsError::Endpoint(endpoint.to_owned())),
    };
    let client = Client { endpoint: endpoint.to_owned(), authority };
    let token = client.token().await?;
    let (status, body) = client.send(Method::GET, DOCUMENT_PATH, token.as_deref(), "the identity document").await?;
    if status != StatusCode::OK {
        return Err(ImdsError::Status {
            endpoint: client.endpoint,
            what: "the identity document",
            status: status.as_u16(),
        });
    }
    let identity: InstanceIdentity = serde_json::from_slice(&body)
        .map_err(|e| ImdsError::Document { endpoint: client.endpoint.clone(), error: e.to_string() })?;
    let account_ok = identity.account_id.len() == 12 && identity.account_id.bytes().all(|b| b.is_ascii_digit());
    if !account_ok || identity.region.is_empty() {
        return Err(ImdsError::Document {
            endpoint: client.endpoint,
            error: format!("accountId {:?}, region {:?}", identity.account_id, identity.region),
        });
    }
    Ok(identity)
}

struct Client {
    endpoint: String,
    authority: hyper::http::uri::Authority,
}

impl Client {
    /// The IMDSv2 token; `None` where the service has no token endpoint (IMDSv1 only).
    async fn token(&self) -> Result<Option<String>, ImdsError> {
        let (status, body) = self.send(Method::PUT, TOKEN_PATH, None, "the IMDSv2 token").await?;
        match status {
            StatusCode::OK => {
                let token = String::from_utf8(body.to_vec()).map_err(|_| ImdsError::Http {
                    endpoint: self.endpoint.clone(),
                    what: "the IMDSv2 token",
                    error: "the token is not text".into(),
                })?;
                Ok(Some(token.trim().to_owned()))
            }
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => Ok(None),
            other => Err(ImdsError::Status {
                endpoint: self.endpoint.clone(),
                what: "the IMDSv2 token",
                status: other.as_u16(),
            }),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        what: &'static str,
    ) -> Result<(StatusCode, Bytes), ImdsError> {
        let exchange = self.exchange(method, path, token);
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(result) => result.map_err(|error| ImdsError::Http { endpoint: self.endpoint.clone(), what, error }),
            Err(_) => Err(ImdsError::Timeout { endpoint: self.endpoint.clone(), what, timeout: REQUEST_TIMEOUT }),
        }
    }

    async fn exchange(&self, method: Method, path: &str, token: Option<&str>) -> Result<(StatusCode, Bytes), String> {
        let port = self.authority.port_u16().unwrap_or(80);
        let host = self.authority.host();
        let stream = tokio::net::TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
        let driver = tokio::spawn(connection);
        let mut request = Request::builder().method(method.clone()).uri(path).header("host", self.authority.as_str());
        request = match (method, token) {
            (Method::PUT, _) => request.header("x-aws-ec2-metadata-token-ttl-seconds", TOKEN_TTL_SECONDS),
            (_, Some(token)) => request.header("x-aws-ec2-metadata-token", token),
            (_, None) => request,
        };
        let request = request.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        driver.abort();
        Ok((status, body))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    const DOCUMENT: &str = r#"{"accountId":"111122223333","architecture":"x86_64","availabilityZone":"cn-north-1a",
        "imageId":"ami-0","instanceId":"i-0","instanceType":"m5.large","pendingTime":"2026-01-01T00:00:00Z",
        "privateIp":"10.0.0.1","region":"cn-north-1","version":"2017-09-30"}"#;

    /// A fake metadata service: answers each request with `answer(request head)`, records the heads.
    struct Fake {
        endpoint: String,
        heads: Arc<Mutex<Vec<String>>>,
    }

    async fn fake(answer: fn(&str) -> Option<String>) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&heads);
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else { return };
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 4096];
                    let mut read = 0;
                    while !String::from_utf8_lossy(&buffer[..read]).contains("\r\n\r\n") {
                        match stream.read(&mut buffer[read..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => read += n,
                        }
                    }
                    let head = String::from_utf8_lossy(&buffer[..read]).to_lowercase();
                    seen.lock().unwrap().push(head.clone());
                    match answer(&head) {
                        Some(response) => {
                            let _ = stream.write_all(response.as_bytes()).await;
                        }
                        // Never answer: the client's timeout must end it.
                        None => tokio::time::sleep(Duration::from_secs(60)).await,
                    }
                });
            }
        });
        Fake { endpoint, heads }
    }

    fn http(status: &str, body: &str) -> Option<String> {
        Some(format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()))
    }

    fn imds_v2(head: &str) -> Option<String> {
        if head.starts_with("put /latest/api/token ") && head.contains("x-aws-ec2-metadata-token-ttl-seconds: 60") {
            return http("200 OK", "TOKEN-abc");
        }
        if head.starts_with("get /latest/dynamic/instance-identity/document ")
            && head.contains("x-aws-ec2-metadata-token: token-abc")
        {
            return http("200 OK", DOCUMENT);
        }
        http("401 Unauthorized", "")
    }

    #[tokio::test]
    async fn reads_account_and_region_with_an_imdsv2_token() {
        let fake = fake(imds_v2).await;
        let identity = instance_identity(&fake.endpoint).await.unwrap();
        assert_eq!(identity, InstanceIdentity { account_id: "111122223333".into(), region: "cn-north-1".into() });
        assert_eq!(fake.heads.lock().unwrap().len(), 2);
        // A trailing slash, as some set the variable, is fine.
        assert!(instance_identity(&format!("{}/", fake.endpoint)).await.is_ok());
    }

    #[tokio::test]
    async fn falls_back_to_imdsv1_only_without_a_token_endpoint() {
        let v1 =
            fake(|head| if head.starts_with("put ") { http("404 Not Found", "") } else { http("200 OK", DOCUMENT) })
                .await;
        assert_eq!(instance_identity(&v1.endpoint).await.unwrap().account_id, "111122223333");
        assert!(!v1.heads.lock().unwrap()[1].contains("x-aws-ec2-metadata-token:"));

        let forbidden = fake(|_| http("403 Forbidden", "")).await;
        let error = instance_identity(&forbidden.endpoint).await.unwrap_err();
        assert!(matches!(error, ImdsError::Status { status: 403, .. }), "{error}");
    }

    #[tokio::test]
    async fn no_answer_is_a_timeout_that_names_the_fix() {
        let silent = fake(|_| None).await;
        let started = std::time::Instant::now();
        let error = instance_identity(&silent.endpoint).await.unwrap_err();
        assert!(matches!(error, ImdsError::Timeout { .. }), "{error}");
        assert!(error.to_string().contains("--aws-account-id"), "{error}");
        // Bounded: one request timeout, with generous slack for a loaded machine.
        assert!(started.elapsed() < REQUEST_TIMEOUT + Duration::from_secs(5));
    }

    #[tokio::test]
    async fn bad_documents_and_endpoints_are_clear_errors() {
        let garbage =
            fake(|head| if head.starts_with("put ") { http("200 OK", "t") } else { http("200 OK", "<html>") }).await;
        assert!(matches!(instance_identity(&garbage.endpoint).await, Err(ImdsError::Document { .. })));
        let no_account = fake(|head| {
            if head.starts_with("put ") {
                http("200 OK", "t")
            } else {
                http("200 OK", r#"{"accountId":"","region":"us-east-1"}"#)
            }
        })
        .await;
        assert!(matches!(instance_identity(&no_account.endpoint).await, Err(ImdsError::Document { .. })));
        let huge = fake(|head| {
            if head.starts_with("put ") {
                http("200 OK", "t")
            } else {
                http("200 OK", &"x".repeat(MAX_RESPONSE_BYTES + 1))
            }
        })
        .await;
        assert!(matches!(instance_identity(&huge.endpoint).await, Err(ImdsError::Http { .. })));
        for endpoint in ["169.254.169.254", "https://169.254.169.254", "http://169.254.169.254/latest", ""] {
            assert!(matches!(instance_identity(endpoint).await, Err(ImdsError::Endpoint(_))), "{endpoint}");
        }
        // Nothing listening: refused at once.
        let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
        let error = instance_identity(&format!("http://127.0.0.1:{port}")).await.unwrap_err();
        assert!(matches!(error, ImdsError::Http { .. }), "{error}");
    }
}
