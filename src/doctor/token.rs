//! `token-audience` and `token-expiration`: the projected token the pod mounts — or, for a pod still to be
//! (re)created, the one the webhook adds — read from the pod with the core's additions applied.

use serde_json::Value;

use super::{Diagnosis, Finding, CHECK_TOKEN_AUDIENCE, CHECK_TOKEN_EXPIRATION};
use crate::identity::{Credentials, Identity, SA_AUDIENCE, SA_TOKEN_EXPIRATION};
use crate::settings::{MutationSettings, DEFAULT_TOKEN_AUDIENCE, MIN_TOKEN_EXPIRATION, WEB_IDENTITY_VOLUME_NAME};

/// Below this a token lifetime earns a hint.
pub const RECOMMENDED_TOKEN_EXPIRATION: i64 = 3600;
/// Kubernetes' default `expirationSeconds` for a projected token.
const DEFAULT_PROJECTED_EXPIRATION: i64 = 3600;

/// The projected service-account token of the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenSource {
    pub(crate) volume_name: String,
    /// The audience the trust policy expects: the ServiceAccount's, else the webhook's setting.
    pub(crate) expected: String,
    /// The token's own audience; `None` when the volume sets none (the API server's audiences apply).
    pub(crate) audience: Option<String>,
    pub(crate) expiration: i64,
    /// The pod does not have the volume yet: this is the token the webhook adds once the pod is (re)created.
    pub(crate) future: bool,
}

impl TokenSource {
    pub(super) fn of(d: &Diagnosis<'_>, identity: &Identity) -> Option<Self> {
        Self::read(&d.effective, d.inputs.pod, identity, d.inputs.settings)
    }

    /// The token volume of `effective` (the pod with the webhook's additions); `None` when the volume of that
    /// name is not a projected service-account token.
    pub(crate) fn read(
        effective: &Value,
        pod: &Value,
        identity: &Identity,
        settings: &MutationSettings,
    ) -> Option<Self> {
        let (volume_name, expected) = volume_and_audience(identity, settings);
        let source = volume(effective, volume_name)
            .and_then(|v| v.pointer("/projected/sources"))
            .and_then(Value::as_array)
            .and_then(|sources| sources.iter().find_map(|s| s.get("serviceAccountToken")))?;
        Some(Self {
            volume_name: volume_name.to_owned(),
            expected: expected.to_owned(),
            audience: source.get("audience").and_then(Value::as_str).filter(|a| !a.is_empty()).map(str::to_owned),
            expiration: source.get("expirationSeconds").and_then(Value::as_i64).unwrap_or(DEFAULT_PROJECTED_EXPIRATION),
            future: volume(pod, volume_name).is_none(),
        })
    }
}

/// The token volume's name and the audience the trust policy expects, for these credentials.
pub(crate) fn volume_and_audience<'a>(identity: &'a Identity, settings: &'a MutationSettings) -> (&'a str, &'a str) {
    match identity.credentials {
        Credentials::WebIdentity { .. } => {
            (WEB_IDENTITY_VOLUME_NAME, identity.audience.unwrap_or(&settings.token_audience))
        }
        Credentials::ContainerCredentials => (
            settings.container_credentials.token_volume_name.as_str(),
            settings.container_credentials.audience.as_str(),
        ),
    }
}

fn volume<'v>(pod: &'v Value, name: &str) -> Option<&'v Value> {
    pod.pointer("/spec/volumes")
        .and_then(Value::as_array)
        .and_then(|volumes| volumes.iter().find(|v| v.get("name").and_then(Value::as_str) == Some(name)))
}

/// The pod's own volume of the token's name is something else: the webhook leaves it, so no token is mounted.
pub(super) fn not_a_token(d: &Diagnosis<'_>, identity: &Identity) -> Finding {
    let (volume_name, _) = volume_and_audience(identity, d.inputs.settings);
    Finding::problem(
        CHECK_TOKEN_AUDIENCE,
        format!("volume {volume_name} is not a projected service-account token, so no token is mounted"),
        format!("rename the pod's own volume {volume_name}; the webhook never replaces it"),
    )
}

pub(super) fn check(d: &Diagnosis<'_>, token: &TokenSource, findings: &mut Vec<Finding>) {
    let prefix = d.inputs.settings.annotation_prefix.as_str();
    let expected = token.expected.as_str();
    let subject = if token.future { "the token the webhook adds has" } else { "token" };

    let accepted = [expected, DEFAULT_TOKEN_AUDIENCE];
    match token.audience.as_deref() {
        Some(audience) if accepted.contains(&audience) => findings.push(Finding::ok(
            CHECK_TOKEN_AUDIENCE,
            format!("{subject} audience {audience}, as the trust policy expects (<issuer>:aud)"),
        )),
        other => findings.push(Finding::problem(
            CHECK_TOKEN_AUDIENCE,
            format!(
                "token audience is {}, but the trust policy expects {expected} (<issuer>:aud): STS answers InvalidIdentityToken",
                other.unwrap_or("the API server's own (none set)")
            ),
            format!(
                "make {prefix}/{SA_AUDIENCE} on the ServiceAccount (or --token-audience) match the trust policy's aud, then recreate the pod"
            ),
        )),
    }

    let expiration = token.expiration;
    let raise = format!(
        "set {prefix}/{SA_TOKEN_EXPIRATION} to {RECOMMENDED_TOKEN_EXPIRATION} or more on the ServiceAccount or pod, then recreate the pod"
    );
    if expiration < MIN_TOKEN_EXPIRATION {
        findings.push(Finding::problem(
            CHECK_TOKEN_EXPIRATION,
            format!(
                "{subject} expirationSeconds {expiration}, below {MIN_TOKEN_EXPIRATION}: the API server rejects the pod"
            ),
            raise,
        ));
    } else if expiration < RECOMMENDED_TOKEN_EXPIRATION {
        findings.push(Finding::hint(
            CHECK_TOKEN_EXPIRATION,
            format!(
                "{subject} expirationSeconds {expiration}, under an hour: the kubelet refreshes it at 80% of its life, \
                 but a process that reads the file once fails when it expires"
            ),
            Some(raise),
        ));
    } else {
        findings.push(Finding::ok(CHECK_TOKEN_EXPIRATION, format!("{subject} expirationSeconds {expiration}")));
    }
}
