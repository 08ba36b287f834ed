//! Self-managed certificates (`--cert-secret NAME`, `--webhook-config NAME`): a Secret in the webhook's own
//! namespace holds the CA and the serving certificate and is the one source of truth for every replica. The first
//! replica creates it (a lost create race means reading the winner's); each replica re-reads it every resync,
//! renews the serving certificate before it expires (optimistic concurrency on resourceVersion, so two replicas
//! never keep different certificates), serves what the Secret holds, and keeps the caBundle of its
//! MutatingWebhookConfiguration right.
//!
//! **A new CA is rolled out with an overlap.** When the CA changes (it is about to expire, or the Secret was
//! deleted or broken), the replica that writes the new one also records the CA it replaces (`previous-ca.crt`)
//! and until when it stays trusted (annotation [`PREVIOUS_CA_UNTIL`]: [`CA_OVERLAP_RESYNCS`] resyncs after the
//! change). Every replica computes the same caBundle from the Secret — the CA, then the previous one while it is
//! trusted — so they never fight over it. A replica serves a certificate of a new CA only from the resync after
//! the one at which the caBundle already held that CA, so the API server has had a resync to see the new bundle
//! before any replica needs it. Each replica re-reads the Secret every resync and switches at most one resync
//! after seeing the new CA in the caBundle, so every replica serves the new CA about two resyncs after the
//! change; the overlap of five leaves three resyncs for replicas whose reads fail meanwhile. A renewal that keeps
//! the CA is served at once (the caBundle already trusts it).
//!
//! Each distinct problem (the Secret unreadable, the caBundle not writable, the configuration missing) is logged
//! once, and once more when it is over, not at every resync.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;

use super::certs::{self, GeneratedCerts};
use super::tls::{CertPair, CertStore};
use crate::log_once::ProblemLog;
use crate::x509;

const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const TLS_CERT: &str = "tls.crt";
const TLS_KEY: &str = "tls.key";
/// The CA the current one replaced, kept while replicas may still serve a certificate it signed.
const PREVIOUS_CA_CERT: &str = "previous-ca.crt";
/// Annotation on the Secret: until when (RFC 3339, UTC) [`PREVIOUS_CA_CERT`] stays in the caBundle.
pub const PREVIOUS_CA_UNTIL: &str = "irsa-webhook/previous-ca-trusted-until";
/// How many resyncs the replaced CA stays in the caBundle after a CA change (see the module documentation).
pub const CA_OVERLAP_RESYNCS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum CertSecretError {
    #[error("Kubernetes API: {0}")]
    Api(#[from] kube::Error),
    #[error("{0}")]
    Certs(#[from] certs::CertError),
    #[error("Secret {0} keeps changing under us; giving up this round")]
    Contended(String),
}

#[derive(Debug, Clone)]
pub struct SecretCertConfig {
    pub namespace: String,
    pub secret_name: String,
    pub webhook_config: Option<String>,
    pub sans: Vec<String>,
    pub ca_days: i64,
    pub leaf_days: i64,
    /// Renew the serving certificate when it has less than this left.
    pub renew_before: Duration,
    /// How often the Secret is re-read (other replicas may have renewed it).
    pub resync: Duration,
}

/// A CA that was replaced, and until when (Unix seconds) it stays trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PreviousCa {
    pem: String,
    until: i64,
}

/// What the Secret holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    certs: GeneratedCerts,
    previous: Option<PreviousCa>,
}

impl Held {
    /// The caBundle every replica agrees on at `now`: the CA, then the one it replaced while that is trusted.
    fn ca_bundle(&self, now: i64) -> String {
        let mut bundle = self.certs.ca_pem.clone();
        if let Some(previous) = self.previous.as_ref().filter(|p| now < p.until && p.pem != self.certs.ca_pem) {
            if !bundle.ends_with('\n') {
                bundle.push('\n');
            }
            bundle.push_str(&previous.pem);
        }
        bundle
    }
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Reads the Secret, creating or renewing it when needed, and returns what it now holds.
pub async fn load_or_create(api: &Api<Secret>, config: &SecretCertConfig) -> Result<GeneratedCerts, CertSecretError> {
    Ok(read_or_create(api, config, None).await?.certs)
}

/// [`load_or_create`], knowing what this replica serves: if the CA has to be replaced, the served one is recorded
/// as the previous CA (it is the one the other replicas serve too, even when the Secret was deleted or broken).
async fn read_or_create(
    api: &Api<Secret>,
    config: &SecretCertConfig,
    serving: Option<&GeneratedCerts>,
) -> Result<Held, CertSecretError> {
    let overlap_until = || unix_now() + i64::from(CA_OVERLAP_RESYNCS) * config.resync.as_secs().max(1) as i64;
    for _ in 0..5 {
        let existing = api.get_opt(&config.secret_name).await?;
        let Some(secret) = existing else {
            let fresh = Held {
                certs: certs::generate(&config.sans, config.ca_days, config.leaf_days)?,
                previous: serving.map(|s| PreviousCa { pem: s.ca_pem.clone(), until: overlap_until() }),
            };
            match api.create(&PostParams::default(), &secret_object(config, &fresh, None)).await {
                Ok(_) => {
                    tracing::info!(secret = %config.secret_name, "created the certificate Secret");
                    return Ok(fresh);
                }
                // Another replica created it first: use theirs.
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(error) => return Err(error.into()),
            }
        };
        let held = material(&secret);
        let replacement = match &held {
            Some(h) if usable(&h.certs, config) => return Ok(h.clone()),
            Some(h) if ca_usable(&h.certs, config) => {
                tracing::info!(secret = %config.secret_name, "renewing the serving certificate with the existing CA");
                let renewed = certs::renew_leaf(&h.certs.ca_pem, &h.certs.ca_key_pem, &config.sans, config.leaf_days)?;
                // Same CA: a CA replaced earlier keeps its remaining overlap.
                Held { certs: renewed, previous: h.previous.clone().filter(|p| unix_now() < p.until) }
            }
            _ => {
                tracing::warn!(secret = %config.secret_name, "certificate Secret incomplete or its CA expiring; making a new CA");
                let replaced = serving.map(|s| s.ca_pem.clone()).or_else(|| ca_in(&secret));
                Held {
                    certs: certs::generate(&config.sans, config.ca_days, config.leaf_days)?,
                    previous: replaced.map(|pem| PreviousCa { pem, until: overlap_until() }),
                }
            }
        };
        let resource_version = secret.metadata.resource_version.clone();
        match api
            .replace(
                &config.secret_name,
                &PostParams::default(),
                &secret_object(config, &replacement, resource_version),
            )
            .await
        {
            Ok(_) => return Ok(replacement),
            // Another replica renewed it first: read theirs.
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(CertSecretError::Contended(config.secret_name.clone()))
}

/// What [`ensure_ca_bundle`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleState {
    /// Every webhook of the configuration already had the bundle.
    AlreadySet,
    /// At least one webhook was patched just now.
    Patched,
    /// The configuration does not exist (yet).
    NoConfiguration,
}

/// Sets `clientConfig.caBundle` of every webhook in the configuration to `ca_pem` (one CA, or a bundle of several).
pub async fn ensure_ca_bundle(
    api: &Api<MutatingWebhookConfiguration>,
    name: &str,
    ca_pem: &str,
) -> Result<BundleState, CertSecretError> {
    let Some(configuration) = api.get_opt(name).await? else {
        return Ok(BundleState::NoConfiguration);
    };
    let encoded = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let operations: Vec<json_patch::PatchOperation> = configuration
        .webhooks
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter(|(_, w)| w.client_config.ca_bundle.as_ref().map(|b| b.0.as_slice()) != Some(ca_pem.as_bytes()))
        .filter_map(|(i, _)| {
            let path = format!("/webhooks/{i}/clientConfig/caBundle");
            Some(json_patch::PatchOperation::Add(json_patch::AddOperation {
                path: json_patch::jsonptr::PointerBuf::parse(path).ok()?,
                value: serde_json::Value::String(encoded.clone()),
            }))
        })
        .collect();
    if operations.is_empty() {
        return Ok(BundleState::AlreadySet);
    }
    api.patch(name, &PatchParams::default(), &Patch::Json::<()>(json_patch::Patch(operations))).await?;
    let cas = x509::pem_certificates(ca_pem.as_bytes()).len();
    tracing::info!(webhook_config = name, cas, "caBundle updated");
    Ok(BundleState::Patched)
}

/// Re-reads the Secret every `resync`, keeps the caBundle right, renews when due, and serves what the Secret
/// holds — a certificate of a new CA only once the caBundle has trusted that CA for a resync.
pub async fn keep_current(
    client: kube::Client,
    config: SecretCertConfig,
    store: Arc<CertStore>,
    mut served: GeneratedCerts,
) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &config.namespace);
    let configurations: Api<MutatingWebhookConfiguration> = Api::all(client);
    let secret_name = format!("certificate Secret {}/{}", config.namespace, config.secret_name);
    let mut secret_problem = ProblemLog::new(secret_name.clone());
    let mut pair_problem = ProblemLog::new(format!("serving certificate in {secret_name}"));
    let mut bundle_problem = ProblemLog::new(format!(
        "caBundle of MutatingWebhookConfiguration {}",
        config.webhook_config.as_deref().unwrap_or("")
    ));
    // The CA the caBundle held at the previous resync, as far as this replica saw.
    let mut trusted_since_last_resync: Option<String> = None;
    let mut ticker = tokio::time::interval(config.resync);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let held = match read_or_create(&secrets, &config, Some(&served)).await {
            Ok(held) => {
                secret_problem.resolved();
                held
            }
            Err(error) => {
                secret_problem.problem(&error, "keeping the current certificate; retrying every resync");
                continue;
            }
        };
        let trusted_now = match &config.webhook_config {
            // Nobody here maintains a caBundle: whoever does must trust the Secret's CA.
            None => true,
            Some(name) => match ensure_ca_bundle(&configurations, name, &held.ca_bundle(unix_now())).await {
                Ok(BundleState::AlreadySet | BundleState::Patched) => {
                    bundle_problem.resolved();
                    true
                }
                Ok(BundleState::NoConfiguration) => {
                    // No configuration, no calls to fail: nothing to wait for.
                    bundle_problem.problem(&"the configuration does not exist", "will set it when it does");
                    true
                }
                Err(error) => {
                    bundle_problem.problem(&error, "will retry every resync");
                    false
                }
            },
        };
        let was_trusted = trusted_since_last_resync.as_deref() == Some(held.certs.ca_pem.as_str());
        trusted_since_last_resync = trusted_now.then(|| held.certs.ca_pem.clone());
        if held.certs.cert_pem == served.cert_pem && held.certs.key_pem == served.key_pem {
            continue;
        }
        let same_ca = held.certs.ca_pem == served.ca_pem;
        if !(same_ca || trusted_now && was_trusted) {
            tracing::info!(secret = %config.secret_name, "new CA in the Secret: serving its certificate from the next resync, once the caBundle has trusted it for one");
            continue;
        }
        let certs = &held.certs;
        match CertPair::from_pem(certs.cert_pem.as_bytes(), certs.key_pem.as_bytes(), TLS_CERT, TLS_KEY) {
            Ok(pair) => {
                pair_problem.resolved();
                tracing::info!(
                    not_after = pair.not_after,
                    new_ca = !same_ca,
                    "serving the certificate from the Secret"
                );
                store.replace(pair);
                served = held.certs;
            }
            Err(error) => {
                pair_problem.problem(&error, "keeping the current one");
            }
        }
    }
}

fn material(secret: &Secret) -> Option<Held> {
    let data = secret.data.as_ref()?;
    let text = |key: &str| data.get(key).and_then(|b| String::from_utf8(b.0.clone()).ok());
    let certs = GeneratedCerts {
        ca_pem: text(CA_CERT)?,
        ca_key_pem: text(CA_KEY)?,
        cert_pem: text(TLS_CERT)?,
        key_pem: text(TLS_KEY)?,
    };
    let until = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PREVIOUS_CA_UNTIL))
        .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
        .map(time::OffsetDateTime::unix_timestamp);
    let previous = match (text(PREVIOUS_CA_CERT), until) {
        (Some(pem), Some(until)) if !x509::pem_certificates(pem.as_bytes()).is_empty() => {
            Some(PreviousCa { pem, until })
        }
        _ => None,
    };
    Some(Held { certs, previous })
}

/// The Secret's CA certificate, if it still is one (for a Secret whose other parts are broken).
fn ca_in(secret: &Secret) -> Option<String> {
    let pem = secret.data.as_ref()?.get(CA_CERT).and_then(|b| String::from_utf8(b.0.clone()).ok())?;
    x509::first_not_after(pem.as_bytes()).is_ok().then_some(pem)
}

fn has_sans(pem: &str, wanted: &[String]) -> bool {
    let Some(leaf) = x509::pem_certificates(pem.as_bytes()).into_iter().next() else {
        return false;
    };
    let Ok(names) = x509::subject_alt_names(&leaf) else {
        return false;
    };
    wanted.iter().all(|w| names.contains(w))
}

fn remaining_seconds(pem: &str) -> i64 {
    x509::first_not_after(pem.as_bytes()).map_or(0, |t| t - unix_now())
}

fn usable(m: &GeneratedCerts, config: &SecretCertConfig) -> bool {
    let renew = config.renew_before.as_secs() as i64;
    remaining_seconds(&m.cert_pem) > renew
        && ca_usable(m, config)
        && has_sans(&m.cert_pem, &config.sans)
        && CertPair::from_pem(m.cert_pem.as_bytes(), m.key_pem.as_bytes(), TLS_CERT, TLS_KEY).is_ok()
}

fn ca_usable(m: &GeneratedCerts, config: &SecretCertConfig) -> bool {
    remaining_seconds(&m.ca_pem) > config.renew_before.as_secs() as i64
        && certs::renew_leaf(&m.ca_pem, &m.ca_key_pem, &[], 1).is_ok()
}

fn secret_object(config: &SecretCertConfig, held: &Held, resource_version: Option<String>) -> Secret {
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    let m = &held.certs;
    let mut data: std::collections::BTreeMap<String, ByteString> = [
        (CA_CERT.to_owned(), bytes(&m.ca_pem)),
        (CA_KEY.to_owned(), bytes(&m.ca_key_pem)),
        (TLS_CERT.to_owned(), bytes(&m.cert_pem)),
        (TLS_KEY.to_owned(), bytes(&m.key_pem)),
    ]
    .into();
    let mut annotations = None;
    if let Some(previous) = &held.previous {
        let until = time::OffsetDateTime::from_unix_timestamp(previous.until)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok());
        if let Some(until) = until {
            data.insert(PREVIOUS_CA_CERT.to_owned(), bytes(&previous.pem));
            annotations = Some([(PREVIOUS_CA_UNTIL.to_owned(), until)].into());
        }
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(config.secret_name.clone()),
            namespace: Some(config.namespace.clone()),
            resource_version,
            labels: Some([("app.kubernetes.io/managed-by".to_owned(), "irsa-webhook".to_owned())].into()),
            annotations,
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(data),
        ..Secret::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SecretCertConfig {
        SecretCertConfig {
            namespace: "ns".into(),
            secret_name: "s".into(),
            webhook_config: None,
            sans: certs::service_sans("svc", "ns"),
            ca_days: 3650,
            leaf_days: 365,
            renew_before: Duration::from_secs(30 * 86400),
            resync: Duration::from_secs(60),
        }
    }

    #[test]
    fn fresh_material_is_usable_and_round_trips_through_the_secret() {
        let c = config();
        let held = Held { certs: certs::generate(&c.sans, c.ca_days, c.leaf_days).unwrap(), previous: None };
        let secret = secret_object(&c, &held, None);
        let back = material(&secret).unwrap();
        assert!(usable(&back.certs, &c));
        assert_eq!(back, held);
        assert!(secret.metadata.annotations.is_none() && !secret.data.unwrap().contains_key(PREVIOUS_CA_CERT));
    }

    #[test]
    fn the_replaced_ca_round_trips_and_stays_in_the_bundle_until_its_time() {
        let c = config();
        let old = certs::generate(&c.sans, c.ca_days, c.leaf_days).unwrap();
        let now = unix_now();
        let held = Held {
            certs: certs::generate(&c.sans, c.ca_days, c.leaf_days).unwrap(),
            previous: Some(PreviousCa { pem: old.ca_pem.clone(), until: now + 300 }),
        };
        let secret = secret_object(&c, &held, None);
        let until = &secret.metadata.annotations.as_ref().unwrap()[PREVIOUS_CA_UNTIL];
        assert!(until.ends_with('Z'), "RFC 3339 in UTC, readable in kubectl: {until}");
        assert_eq!(material(&secret).unwrap(), held);

        let during = held.ca_bundle(now);
        assert_eq!(x509::pem_certificates(during.as_bytes()).len(), 2, "old and new CA during the overlap");
        assert!(during.starts_with(&held.certs.ca_pem), "the current CA first");
        assert!(during.ends_with(&old.ca_pem));
        assert_eq!(held.ca_bundle(now + 300), held.certs.ca_pem, "only the new CA once the overlap is over");
    }

    #[test]
    fn a_previous_ca_without_a_readable_time_is_ignored() {
        let c = config();
        let old = certs::generate(&c.sans, c.ca_days, c.leaf_days).unwrap();
        let held = Held {
            certs: certs::generate(&c.sans, c.ca_days, c.leaf_days).unwrap(),
            previous: Some(PreviousCa { pem: old.ca_pem, until: unix_now() + 300 }),
        };
        let mut secret = secret_object(&c, &held, None);
        secret.metadata.annotations = Some([(PREVIOUS_CA_UNTIL.to_owned(), "soon".to_owned())].into());
        assert_eq!(material(&secret).unwrap().previous, None);
    }

    #[test]
    fn short_lived_or_wrong_names_need_renewal_but_keep_the_ca() {
        let c = config();
        let short = certs::generate(&c.sans, c.ca_days, 10).unwrap();
        assert!(!usable(&short, &c) && ca_usable(&short, &c));
        assert!(has_sans(&short.cert_pem, &c.sans) && !has_sans("not PEM", &c.sans));
        let other_names = certs::generate(&certs::service_sans("old", "ns"), c.ca_days, c.leaf_days).unwrap();
        assert!(!usable(&other_names, &c));
        let renewed = certs::renew_leaf(&short.ca_pem, &short.ca_key_pem, &c.sans, c.leaf_days).unwrap();
        assert!(usable(&renewed, &c));
        assert_eq!(renewed.ca_pem, short.ca_pem);
    }
}
