//! `token-request` and `issuer`: `doctor pod NS/NAME --token-request` asks the API server for a token exactly as
//! the kubelet does for this pod — a TokenRequest for its ServiceAccount with the audience and `expirationSeconds`
//! of its projected token volume, bound to the pod — and checks the token's claims: `iss` against the issuer the
//! cluster publishes, `sub` and `aud` against the pod, the lifetime against the request. The shell makes the call
//! ([`TokenRequestPlan`] says what to send) and keeps only the decoded claims ([`TokenClaims::from_jwt`]): the
//! token itself is never printed, logged or kept, and its signature is not checked (the API server just made it).

use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

use super::certificate::unix_date;
use super::{subject_of, Diagnosis, Finding, Source, CHECK_ISSUER, CHECK_TOKEN_REQUEST};
use crate::identity::ServiceAccountRef;
use crate::oidc::Issuer;

/// A service-account token is a few hundred bytes to a few KiB; anything larger is not one the API server made.
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// What `--token-request` asks for: the kubelet's request for this pod's projected token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequestPlan {
    pub service_account: ServiceAccountRef,
    pub audience: String,
    pub expiration_seconds: i64,
    pub pod_name: String,
    pub pod_uid: String,
    /// The audience and lifetime are those of the pod's own volume (else: of the volume the webhook adds).
    pub from_pod: bool,
}

impl TokenRequestPlan {
    /// `POST` here.
    pub fn path(&self) -> String {
        format!(
            "/api/v1/namespaces/{}/serviceaccounts/{}/token",
            self.service_account.namespace, self.service_account.name
        )
    }

    /// The TokenRequest, as the kubelet sends it for a projected volume.
    pub fn body(&self) -> Value {
        json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": [self.audience],
                "expirationSeconds": self.expiration_seconds,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": self.pod_name, "uid": self.pod_uid},
            },
        })
    }
}

/// What the API server answered to the TokenRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRequestOutcome {
    /// A token was issued; only its claims were kept.
    Issued { plan: TokenRequestPlan, claims: TokenClaims },
    /// 401/403: the doctor's own credentials may not create tokens.
    Refused { plan: TokenRequestPlan, reason: String },
    /// Anything else (the ServiceAccount is gone, the pod was replaced, the answer is not a token).
    Failed { plan: TokenRequestPlan, reason: String },
    /// Nothing was asked for: why.
    NotAsked(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClaimsError {
    #[error("the token is larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("the token is not a JWT (header.payload.signature)")]
    NotAJwt,
    #[error("the token's payload is not base64url")]
    Base64,
    #[error("the token's payload is not a JSON object of claims: {0}")]
    Json(String),
}

/// The claims STS reads, and the pod the token is bound to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct TokenClaims {
    #[serde(default)]
    pub iss: Option<String>,
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    #[serde(default)]
    pub exp: Option<i64>,
    #[serde(default)]
    pub iat: Option<i64>,
    #[serde(default, rename = "kubernetes.io")]
    pub kubernetes: Option<KubernetesClaims>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct KubernetesClaims {
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub pod: Option<BoundObject>,
    #[serde(default)]
    pub serviceaccount: Option<BoundObject>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct BoundObject {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub uid: Option<String>,
}

/// `aud` is a string or a list of strings (RFC 7519 §4.1.3).
fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(OneOrMany::One(one)) => vec![one],
        Some(OneOrMany::Many(many)) => many,
    })
}

impl TokenClaims {
    /// Decodes the payload of a JWT. Errors never contain the token.
    pub fn from_jwt(token: &str) -> Result<Self, ClaimsError> {
        use base64::Engine as _;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(ClaimsError::TooLarge);
        }
        let mut parts = token.trim().split('.');
        let (Some(_header), Some(payload), Some(_signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ClaimsError::NotAJwt);
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|_| ClaimsError::Base64)?;
        serde_json::from_slice(&bytes).map_err(|e| ClaimsError::Json(e.to_string()))
    }

    /// The ServiceAccount a `system:serviceaccount:NS:NAME` subject names.
    pub fn service_account(&self) -> Option<ServiceAccountRef> {
        let rest = self.sub.as_deref()?.strip_prefix("system:serviceaccount:")?;
        let (namespace, name) = rest.split_once(':')?;
        (!namespace.is_empty() && !name.is_empty() && !name.contains(':'))
            .then(|| ServiceAccountRef::new(namespace, name))
    }
}

/// The `token-request` and `issuer` lines; the claims when a token was issued.
pub(super) fn check<'d>(d: &Diagnosis<'d>, findings: &mut Vec<Finding>) -> Option<&'d TokenClaims> {
    let outcome = d.inputs.iam.token_request?;
    let (plan, claims) = match outcome {
        TokenRequestOutcome::NotAsked(why) => {
            findings.push(Finding::hint(CHECK_TOKEN_REQUEST, format!("no TokenRequest was made: {why}"), None));
            return None;
        }
        TokenRequestOutcome::Refused { plan, reason } => {
            let ns = &plan.service_account.namespace;
            findings.push(Finding::hint(
                CHECK_TOKEN_REQUEST,
                format!(
                    "the API server refused the TokenRequest for ServiceAccount {} ({reason}): the token's claims were \
                     not checked",
                    plan.service_account
                ),
                Some(format!(
                    "--token-request needs create on serviceaccounts/token in namespace {ns}: kubectl create role \
                     irsa-doctor-token -n {ns} --verb=create --resource=serviceaccounts/token && kubectl create \
                     rolebinding irsa-doctor-token -n {ns} --role=irsa-doctor-token --user=<you>"
                )),
            ));
            return None;
        }
        TokenRequestOutcome::Failed { plan, reason } => {
            findings.push(Finding::hint(
                CHECK_TOKEN_REQUEST,
                format!("the TokenRequest for ServiceAccount {} failed: {reason}", plan.service_account),
                None,
            ));
            return None;
        }
        TokenRequestOutcome::Issued { plan, claims } => (plan, claims),
    };

    let shown = |value: Option<&str>| value.map_or_else(|| "(none)".to_owned(), str::to_owned);
    let lifetime = claims.exp.zip(claims.iat).map(|(exp, iat)| exp - iat);
    let volume = if plan.from_pod { "the pod's token volume" } else { "the token volume the webhook adds" };
    findings.push(Finding::ok(
        CHECK_TOKEN_REQUEST,
        format!(
            "the API server issued a token for ServiceAccount {} bound to pod {}/{}, with the audience and lifetime of \
             {volume} (the token is not printed): iss {}, sub {}, aud {}, {}",
            plan.service_account,
            plan.service_account.namespace,
            plan.pod_name,
            shown(claims.iss.as_deref()),
            shown(claims.sub.as_deref()),
            if claims.aud.is_empty() { "(none)".to_owned() } else { claims.aud.join(", ") },
            match (lifetime, claims.exp) {
                (Some(seconds), Some(exp)) => format!("valid {seconds} s (until {})", unix_date(exp)),
                _ => "no exp/iat".to_owned(),
            }
        ),
    ));

    let subject = subject_of(&plan.service_account);
    if claims.sub.as_deref() != Some(subject.as_str()) {
        findings.push(Finding::problem(
            CHECK_TOKEN_REQUEST,
            format!("the token's sub is {}, not {subject}", shown(claims.sub.as_deref())),
            "the API server does not issue ServiceAccount tokens as Kubernetes does: check its --service-account-* flags",
        ));
    }
    if !claims.aud.iter().any(|a| a == &plan.audience) {
        findings.push(Finding::problem(
            CHECK_TOKEN_REQUEST,
            format!("the token's aud is {:?}, which lacks the requested {}", claims.aud, plan.audience),
            "the API server rewrote the audience: check its --api-audiences and admission plugins",
        ));
    }
    match lifetime {
        Some(seconds) if seconds + 60 < plan.expiration_seconds => findings.push(Finding::hint(
            CHECK_TOKEN_REQUEST,
            format!(
                "the API server shortened the token to {seconds} s (asked: {} s), as its \
                 --service-account-max-token-expiration says: the kubelet's tokens are as short",
                plan.expiration_seconds
            ),
            None,
        )),
        Some(seconds) if seconds > plan.expiration_seconds + 60 => findings.push(Finding::hint(
            CHECK_TOKEN_REQUEST,
            format!(
                "the API server extended the token to {seconds} s (asked: {} s; --service-account-extend-token-expiration)",
                plan.expiration_seconds
            ),
            None,
        )),
        _ => {}
    }
    let bound = claims.kubernetes.as_ref().and_then(|k| k.pod.as_ref()).and_then(|p| p.name.as_deref());
    if bound.is_some_and(|name| name != plan.pod_name) {
        findings.push(Finding::problem(
            CHECK_TOKEN_REQUEST,
            format!("the token is bound to pod {}, not {}", shown(bound), plan.pod_name),
            "run doctor again: the pod was replaced while it ran",
        ));
    }
    check_iss(d, claims, findings);
    Some(claims)
}

/// The token's `iss` is what STS looks the IAM OIDC provider up by, and the discovery document at
/// `<iss>/.well-known/openid-configuration` must say the same.
fn check_iss(d: &Diagnosis<'_>, claims: &TokenClaims, findings: &mut Vec<Finding>) {
    let Some(iss) = claims.iss.as_deref() else {
        findings.push(Finding::problem(
            CHECK_ISSUER,
            "the token has no iss claim: STS cannot find an OIDC provider for it",
            "set the API server's --service-account-issuer",
        ));
        return;
    };
    if let Err(error) = Issuer::parse(iss) {
        findings.push(Finding::problem(
            CHECK_ISSUER,
            format!("the token's iss cannot be an IAM OIDC provider URL: {error}"),
            "set the API server's first --service-account-issuer to the https URL of the published discovery documents \
             (irsa-webhook oidc publish)",
        ));
    }
    if let Some(given) = d.inputs.iam.issuer.filter(|given| *given != iss) {
        findings.push(Finding::problem(
            CHECK_ISSUER,
            format!("--issuer is {given}, but the token's iss is {iss}"),
            format!("use --issuer {iss}; the IAM OIDC provider must be for {iss} too"),
        ));
    }
    let Source::Cluster(view) = &d.inputs.source else { return };
    match view.published_issuer {
        Ok(published) if published == iss => findings.push(Finding::ok(
            CHECK_ISSUER,
            format!("the token's iss {iss} is the issuer the cluster publishes (/.well-known/openid-configuration)"),
        )),
        Ok(published) => findings.push(Finding::problem(
            CHECK_ISSUER,
            format!(
                "the token's iss is {iss}, but /.well-known/openid-configuration says {published}: STS finds the \
                 provider by iss and checks the document it fetches from there"
            ),
            "give every API server the same first --service-account-issuer, then recreate the pods",
        )),
        Err(reason) => findings.push(Finding::hint(
            CHECK_ISSUER,
            format!(
                "cannot read /.well-known/openid-configuration ({reason}): the token's iss was not compared with it"
            ),
            Some(
                "run doctor with a kubeconfig allowed to get /.well-known/openid-configuration (ClusterRole \
                 system:service-account-issuer-discovery)"
                    .to_owned(),
            ),
        )),
    }
}

/// The plan the tests of this module and of `doctor` use: pod team/app-1 of ServiceAccount team/app, defaults.
#[cfg(test)]
pub(super) fn example_plan() -> TokenRequestPlan {
    TokenRequestPlan {
        service_account: ServiceAccountRef::new("team", "app"),
        audience: "sts.amazonaws.com".into(),
        expiration_seconds: 86400,
        pod_name: "app-1".into(),
        pod_uid: "u-1".into(),
        from_pod: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn jwt(claims: &Value) -> String {
        let part = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.c2lnbmF0dXJl", part(&json!({"alg": "RS256", "kid": "k"})), part(claims))
    }

    #[test]
    fn claims_are_read_from_the_payload() {
        let claims = TokenClaims::from_jwt(&jwt(&json!({
            "iss": "https://oidc.example.com", "sub": "system:serviceaccount:team:app", "aud": ["sts.amazonaws.com"],
            "exp": 1_700_086_400, "iat": 1_700_000_000, "nbf": 1_700_000_000,
            "kubernetes.io": {"namespace": "team", "pod": {"name": "app-1", "uid": "u"},
                              "serviceaccount": {"name": "app", "uid": "s"}}})))
        .unwrap();
        assert_eq!(claims.iss.as_deref(), Some("https://oidc.example.com"));
        assert_eq!(claims.aud, ["sts.amazonaws.com"]);
        assert_eq!(claims.exp.zip(claims.iat).map(|(e, i)| e - i), Some(86400));
        assert_eq!(claims.service_account(), Some(ServiceAccountRef::new("team", "app")));
        assert_eq!(claims.kubernetes.unwrap().pod.unwrap().name.as_deref(), Some("app-1"));
        // A single audience may be a string.
        let claims = TokenClaims::from_jwt(&jwt(&json!({"aud": "vault"}))).unwrap();
        assert_eq!(claims.aud, ["vault"]);
        assert_eq!(claims.service_account(), None);
    }

    #[test]
    fn what_is_not_a_token_is_an_error_without_the_token_in_it() {
        let secret = "c2VjcmV0";
        for (token, expected) in [
            (secret.to_owned(), ClaimsError::NotAJwt),
            (format!("a.{secret}!.c"), ClaimsError::Base64),
            (format!("a.{secret}.c.d"), ClaimsError::NotAJwt),
            ("x".repeat(MAX_TOKEN_BYTES + 1), ClaimsError::TooLarge),
        ] {
            let error = TokenClaims::from_jwt(&token).unwrap_err();
            assert_eq!(error, expected);
            assert!(!error.to_string().contains(secret));
        }
        assert!(matches!(TokenClaims::from_jwt(&jwt(&json!([1]))), Err(ClaimsError::Json(_))));
    }

    #[test]
    fn the_request_is_the_kubelets() {
        let plan = example_plan();
        assert_eq!(plan.path(), "/api/v1/namespaces/team/serviceaccounts/app/token");
        assert_eq!(
            plan.body()["spec"],
            json!({"audiences": ["sts.amazonaws.com"], "expirationSeconds": 86400,
                   "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "app-1", "uid": "u-1"}})
        );
    }
}
