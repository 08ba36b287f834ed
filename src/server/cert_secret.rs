//! Self-managed certificates (`--cert-secret NAME`, `--webhook-config NAME`): a Secret in the webhook's own
//! namespace holds the CA and the serving certificate and is the one source of truth for every replica. The first
//! replica creates it (a lost create race means reading the winner's); each replica re-reads it periodically,
//! renews the serving certificate before it expires (optimistic concurrency on resourceVersion, so two replicas
//! never keep different certificates), serves what the Secret holds, and keeps the caBundle of its
//! MutatingWebhookConfiguration equal to the CA.

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

const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const TLS_CERT: &str = "tls.crt";
const TLS_KEY: &str = "tls.key";

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

/// Reads the Secret, creating or renewing it when needed, and returns what it now holds.
pub async fn load_or_create(api: &Api<Secret>, config: &SecretCertConfig) -> Result<GeneratedCerts, CertSecretError> {
    for _ in 0..5 {
        let existing = api.get_opt(&config.secret_name).await?;
        let Some(secret) = existing else {
            let fresh = certs::generate(&config.sans, config.ca_days, config.leaf_days)?;
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
            Some(m) if usable(m, config) => return Ok(m.clone()),
            Some(m) if ca_usable(m, config) => {
                tracing::info!(secret = %config.secret_name, "renewing the serving certificate with the existing CA");
                certs::renew_leaf(&m.ca_pem, &m.ca_key_pem, &config.sans, config.leaf_days)?
            }
            _ => {
                tracing::warn!(secret = %config.secret_name, "certificate Secret incomplete or its CA expiring; making a new CA");
                certs::generate(&config.sans, config.ca_days, config.leaf_days)?
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

/// Sets `clientConfig.caBundle` of every webhook in the configuration to `ca_pem`; returns whether it patched.
pub async fn ensure_ca_bundle(
    api: &Api<MutatingWebhookConfiguration>,
    name: &str,
    ca_pem: &str,
) -> Result<bool, CertSecretError> {
    let Some(configuration) = api.get_opt(name).await? else {
        tracing::warn!(webhook_config = name, "MutatingWebhookConfiguration not found; caBundle not set");
        return Ok(false);
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
        return Ok(false);
    }
    api.patch(name, &PatchParams::default(), &Patch::Json::<()>(json_patch::Patch(operations))).await?;
    tracing::info!(webhook_config = name, "caBundle updated");
    Ok(true)
}

/// Re-reads the Secret every `resync`, serves what it holds, renews when due, keeps the caBundle right.
pub async fn keep_current(
    client: kube::Client,
    config: SecretCertConfig,
    store: Arc<CertStore>,
    mut served: GeneratedCerts,
) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &config.namespace);
    let configurations: Api<MutatingWebhookConfiguration> = Api::all(client);
    let mut ticker = tokio::time::interval(config.resync);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if let Some(name) = &config.webhook_config {
            if let Err(error) = ensure_ca_bundle(&configurations, name, &served.ca_pem).await {
                tracing::warn!(%error, webhook_config = %name, "cannot update the caBundle; will retry");
            }
        }
        ticker.tick().await;
        match load_or_create(&secrets, &config).await {
            Ok(current) if current.cert_pem != served.cert_pem || current.key_pem != served.key_pem => {
                match CertPair::from_pem(current.cert_pem.as_bytes(), current.key_pem.as_bytes(), TLS_CERT, TLS_KEY) {
                    Ok(pair) => {
                        tracing::info!(not_after = pair.not_after, "serving the certificate from the Secret");
                        store.replace(pair);
                        served = current;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "certificate in the Secret is not usable; keeping the current one")
                    }
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot read the certificate Secret; keeping the current certificate"),
        }
    }
}

fn material(secret: &Secret) -> Option<GeneratedCerts> {
    let data = secret.data.as_ref()?;
    let text = |key: &str| data.get(key).and_then(|b| String::from_utf8(b.0.clone()).ok());
    Some(GeneratedCerts {
        ca_pem: text(CA_CERT)?,
        ca_key_pem: text(CA_KEY)?,
        cert_pem: text(TLS_CERT)?,
        key_pem: text(TLS_KEY)?,
    })
}

fn not_after_of(pem: &str) -> Option<i64> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some(cert.validity().not_after.timestamp())
}

fn has_sans(pem: &str, wanted: &[String]) -> bool {
    use rustls_pki_types::pem::PemObject;
    let Ok(der) = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()) else {
        return false;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return false;
    };
    let Ok(Some(extension)) = cert.subject_alternative_name() else {
        return false;
    };
    let names: Vec<String> = extension
        .value
        .general_names
        .iter()
        .map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => (*dns).to_owned(),
            x509_parser::extensions::GeneralName::IPAddress(ip) => match ip.len() {
                4 => <[u8; 4]>::try_from(*ip).map(|b| std::net::IpAddr::from(b).to_string()).unwrap_or_default(),
                16 => <[u8; 16]>::try_from(*ip).map(|b| std::net::IpAddr::from(b).to_string()).unwrap_or_default(),
                _ => String::new(),
            },
            _ => String::new(),
        })
        .collect();
    wanted.iter().all(|w| names.contains(w))
}

fn remaining_seconds(pem: &str) -> i64 {
    not_after_of(pem).map_or(0, |t| t - time::OffsetDateTime::now_utc().unix_timestamp())
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

fn secret_object(config: &SecretCertConfig, m: &GeneratedCerts, resource_version: Option<String>) -> Secret {
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    Secret {
        metadata: ObjectMeta {
            name: Some(config.secret_name.clone()),
            namespace: Some(config.namespace.clone()),
            resource_version,
            labels: Some([("app.kubernetes.io/managed-by".to_owned(), "irsa-webhook".to_owned())].into()),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(
            [
                (CA_CERT.to_owned(), bytes(&m.ca_pem)),
                (CA_KEY.to_owned(), bytes(&m.ca_key_pem)),
                (TLS_CERT.to_owned(), bytes(&m.cert_pem)),
                (TLS_KEY.to_owned(), bytes(&m.key_pem)),
            ]
            .into(),
        ),
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
        let m = certs::generate(&c.sans, c.ca_days, c.leaf_days).unwrap();
        let secret = secret_object(&c, &m, None);
        let back = material(&secret).unwrap();
        assert!(usable(&back, &c));
    }

    #[test]
    fn short_lived_or_wrong_names_need_renewal_but_keep_the_ca() {
        let c = config();
        let short = certs::generate(&c.sans, c.ca_days, 10).unwrap();
        assert!(!usable(&short, &c) && ca_usable(&short, &c));
        let other_names = certs::generate(&certs::service_sans("old", "ns"), c.ca_days, c.leaf_days).unwrap();
        assert!(!usable(&other_names, &c));
        let renewed = certs::renew_leaf(&short.ca_pem, &short.ca_key_pem, &c.sans, c.leaf_days).unwrap();
        assert!(usable(&renewed, &c));
        assert_eq!(renewed.ca_pem, short.ca_pem);
    }
}
