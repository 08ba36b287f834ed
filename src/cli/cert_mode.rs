//! Where the serving certificate comes from, decided once from the flags.
//!
//! Mode choices: `--self-signed`; `--cert-secret NAME`; `--tls-cert`/`--tls-key` (files); the reference's
//! `--in-cluster=true` (a Secret) and `--in-cluster=false` (files). Two choices that ask for different sources are
//! refused in one line. Without any choice the reference's default applies: `--in-cluster` is true, so the
//! certificate is the self-managed one kept in Secret `--tls-secret` (default `pod-identity-webhook`) of
//! `--namespace`, and the caBundle of MutatingWebhookConfiguration `--webhook-config` (default: the reference's
//! `pod-identity-webhook`) is kept equal to its CA.
//!
//! The reference's `--in-cluster=true` asked the CSR API for a certificate, which certificates/v1 no longer signs
//! (its README: "no longer works"); here it means a certificate that works: the Secret that `--cert-secret`
//! manages. `--cert-secret` keeps its own meaning: it touches a webhook configuration only when `--webhook-config`
//! names one. `--in-cluster=false` with no file flags means the reference's paths `/etc/webhook/certs/tls.crt` and
//! `tls.key`.
//!
//! Parameters of a mode not in use: `--tls-secret` is ignored with a warning, as the reference ignores it without
//! `--in-cluster` (Terraform modules render `--in-cluster=false --tls-secret=...`); `--webhook-config` without a
//! Secret is refused, as it always was.

use std::path::{Path, PathBuf};

/// The reference's default for `--tls-secret`.
pub const REFERENCE_TLS_SECRET: &str = "pod-identity-webhook";
/// The reference's MutatingWebhookConfiguration (its `deploy/mutatingwebhook.yaml`).
pub const REFERENCE_WEBHOOK_CONFIG: &str = "pod-identity-webhook";
/// Where the reference reads its certificate files by default.
pub const REFERENCE_CERT_DIR: &str = "/etc/webhook/certs";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertMode {
    /// PEM files, reloaded when they change.
    Files { cert: PathBuf, key: PathBuf },
    /// A CA and certificate generated in memory (`--self-signed`).
    SelfSigned,
    /// The self-managed certificate in Secret `secret` of `--namespace`; `webhook_config`'s caBundle kept current.
    Secret { secret: String, webhook_config: Option<String> },
}

impl CertMode {
    /// Whether this mode needs the Kubernetes API.
    pub fn needs_cluster(&self) -> bool {
        matches!(self, CertMode::Secret { .. })
    }
}

/// The certificate flags as given (`None`/`false`: not given).
#[derive(Debug, Clone, Copy)]
pub struct CertFlags<'a> {
    pub tls_cert: Option<&'a Path>,
    pub tls_key: Option<&'a Path>,
    pub self_signed: bool,
    pub cert_secret: Option<&'a str>,
    pub webhook_config: Option<&'a str>,
    pub in_cluster: Option<bool>,
    pub tls_secret: Option<&'a str>,
    /// Where `tls.crt` and `tls.key` are when files are chosen without naming them: [`REFERENCE_CERT_DIR`], or what
    /// a test points it at.
    pub default_cert_dir: &'a Path,
}

impl Default for CertFlags<'_> {
    fn default() -> Self {
        Self {
            tls_cert: None,
            tls_key: None,
            self_signed: false,
            cert_secret: None,
            webhook_config: None,
            in_cluster: None,
            tls_secret: None,
            default_cert_dir: Path::new(REFERENCE_CERT_DIR),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertModeError {
    #[error("conflicting certificate choices: {0} and {1} ask for different certificate sources; keep one")]
    Conflict(&'static str, &'static str),
    #[error("--cert-secret={0} and --tls-secret={1} name different Secrets for the certificate; keep one")]
    TwoSecrets(String, String),
    #[error("--webhook-config needs a certificate kept in a Secret (--cert-secret, --tls-secret or --in-cluster=true), not {0}")]
    WebhookConfigWithoutSecret(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Files,
    SelfSigned,
    Secret,
}

/// The mode, and warnings for flags that were given but have no effect in it.
pub fn decide(flags: &CertFlags<'_>) -> Result<(CertMode, Vec<String>), CertModeError> {
    let mut choices: Vec<(&'static str, Kind)> = Vec::new();
    if flags.self_signed {
        choices.push(("--self-signed", Kind::SelfSigned));
    }
    if flags.cert_secret.is_some() {
        choices.push(("--cert-secret", Kind::Secret));
    }
    if flags.tls_cert.is_some() {
        choices.push(("--tls-cert", Kind::Files));
    } else if flags.tls_key.is_some() {
        choices.push(("--tls-key", Kind::Files));
    }
    match flags.in_cluster {
        Some(true) => choices.push(("--in-cluster=true", Kind::Secret)),
        Some(false) => choices.push(("--in-cluster=false", Kind::Files)),
        None => {}
    }
    if let Some((first, kind)) = choices.first() {
        if let Some((other, _)) = choices.iter().find(|(_, k)| k != kind) {
            return Err(CertModeError::Conflict(first, other));
        }
    }
    let (kind, chosen_by) = choices.first().map_or((Kind::Secret, None), |(flag, kind)| (*kind, Some(*flag)));
    let mut warnings = Vec::new();
    let mode = match kind {
        Kind::Secret => {
            let secret = match (flags.cert_secret, flags.tls_secret) {
                (Some(a), Some(b)) if a != b => return Err(CertModeError::TwoSecrets(a.into(), b.into())),
                (Some(name), _) | (None, Some(name)) => name.to_owned(),
                (None, None) => REFERENCE_TLS_SECRET.to_owned(),
            };
            // --cert-secret keeps its meaning (no configuration unless named); the reference's mode brings the
            // reference's configuration name.
            let webhook_config = match (flags.webhook_config, flags.cert_secret) {
                (Some(name), _) => Some(name.to_owned()),
                (None, Some(_)) => None,
                (None, None) => Some(REFERENCE_WEBHOOK_CONFIG.to_owned()),
            };
            CertMode::Secret { secret, webhook_config }
        }
        Kind::Files | Kind::SelfSigned => {
            let chosen_by = chosen_by.unwrap_or("--in-cluster=false");
            if flags.webhook_config.is_some() {
                return Err(CertModeError::WebhookConfigWithoutSecret(chosen_by));
            }
            if let Some(name) = flags.tls_secret {
                warnings.push(format!(
                    "--tls-secret={name} is ignored: {chosen_by} chooses the certificate, not a Secret (as in the \
                     reference, where --tls-secret applies only with --in-cluster)"
                ));
            }
            if kind == Kind::SelfSigned {
                CertMode::SelfSigned
            } else {
                CertMode::Files {
                    cert: flags.tls_cert.map_or_else(|| flags.default_cert_dir.join("tls.crt"), Path::to_owned),
                    key: flags.tls_key.map_or_else(|| flags.default_cert_dir.join("tls.key"), Path::to_owned),
                }
            }
        }
    };
    Ok((mode, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> CertFlags<'static> {
        CertFlags::default()
    }

    fn mode(flags: CertFlags<'_>) -> CertMode {
        decide(&flags).unwrap_or_else(|e| panic!("{flags:?}: {e}")).0
    }

    fn files(cert: &str, key: &str) -> CertMode {
        CertMode::Files { cert: cert.into(), key: key.into() }
    }

    fn secret(name: &str, config: Option<&str>) -> CertMode {
        CertMode::Secret { secret: name.into(), webhook_config: config.map(Into::into) }
    }

    #[test]
    fn nothing_given_is_the_reference_default_in_cluster_secret() {
        assert_eq!(mode(flags()), secret("pod-identity-webhook", Some("pod-identity-webhook")));
        assert!(mode(flags()).needs_cluster());
        assert_eq!(mode(CertFlags { in_cluster: Some(true), ..flags() }), mode(flags()));
        assert_eq!(
            mode(CertFlags { tls_secret: Some("mine"), webhook_config: Some("cfg"), ..flags() }),
            secret("mine", Some("cfg"))
        );
    }

    #[test]
    fn in_cluster_false_reads_the_reference_paths() {
        let m = mode(CertFlags { in_cluster: Some(false), ..flags() });
        assert_eq!(m, files("/etc/webhook/certs/tls.crt", "/etc/webhook/certs/tls.key"));
        assert!(!m.needs_cluster());
        let elsewhere = CertFlags { in_cluster: Some(false), default_cert_dir: Path::new("/tmp/x"), ..flags() };
        assert_eq!(mode(elsewhere), files("/tmp/x/tls.crt", "/tmp/x/tls.key"));
    }

    #[test]
    fn explicit_choices_win_over_the_default() {
        assert_eq!(mode(CertFlags { self_signed: true, ..flags() }), CertMode::SelfSigned);
        let cert = Path::new("/c.pem");
        let key = Path::new("/k.pem");
        assert_eq!(mode(CertFlags { tls_cert: Some(cert), tls_key: Some(key), ..flags() }), files("/c.pem", "/k.pem"));
        // One of the pair: the other at the reference's default path, as in the reference.
        assert_eq!(mode(CertFlags { tls_cert: Some(cert), ..flags() }), files("/c.pem", "/etc/webhook/certs/tls.key"));
        assert_eq!(mode(CertFlags { tls_key: Some(key), ..flags() }), files("/etc/webhook/certs/tls.crt", "/k.pem"));
        assert_eq!(
            mode(CertFlags { tls_cert: Some(cert), tls_key: Some(key), in_cluster: Some(false), ..flags() }),
            files("/c.pem", "/k.pem")
        );
        // The chart's selfManaged args: --cert-secret keeps its meaning (no configuration unless named).
        assert_eq!(mode(CertFlags { cert_secret: Some("s"), ..flags() }), secret("s", None));
        assert_eq!(
            mode(CertFlags { cert_secret: Some("s"), webhook_config: Some("c"), in_cluster: Some(true), ..flags() }),
            secret("s", Some("c"))
        );
        assert_eq!(mode(CertFlags { cert_secret: Some("s"), tls_secret: Some("s"), ..flags() }), secret("s", None));
    }

    #[test]
    fn contradictions_are_refused_in_one_line() {
        let cert = Path::new("/c.pem");
        let cases = [
            (CertFlags { self_signed: true, tls_cert: Some(cert), ..flags() }, "--self-signed and --tls-cert"),
            (CertFlags { self_signed: true, cert_secret: Some("s"), ..flags() }, "--self-signed and --cert-secret"),
            (CertFlags { cert_secret: Some("s"), tls_key: Some(cert), ..flags() }, "--cert-secret and --tls-key"),
            (CertFlags { in_cluster: Some(true), tls_cert: Some(cert), ..flags() }, "--tls-cert and --in-cluster=true"),
            (
                CertFlags { in_cluster: Some(false), cert_secret: Some("s"), ..flags() },
                "--cert-secret and --in-cluster=false",
            ),
            (
                CertFlags { in_cluster: Some(false), self_signed: true, ..flags() },
                "--self-signed and --in-cluster=false",
            ),
        ];
        for (flags, names) in cases {
            let error = decide(&flags).unwrap_err().to_string();
            assert!(error.contains(names), "{flags:?}: {error}");
            assert!(!error.contains('\n'), "{error}");
        }
        let two = decide(&CertFlags { cert_secret: Some("a"), tls_secret: Some("b"), ..flags() }).unwrap_err();
        assert_eq!(two, CertModeError::TwoSecrets("a".into(), "b".into()));
        let config = decide(&CertFlags { self_signed: true, webhook_config: Some("c"), ..flags() }).unwrap_err();
        assert_eq!(config, CertModeError::WebhookConfigWithoutSecret("--self-signed"));
        let config = decide(&CertFlags { in_cluster: Some(false), webhook_config: Some("c"), ..flags() }).unwrap_err();
        assert_eq!(config, CertModeError::WebhookConfigWithoutSecret("--in-cluster=false"));
    }

    #[test]
    fn tls_secret_without_a_secret_is_ignored_with_a_warning() {
        let (m, warnings) = decide(&CertFlags { in_cluster: Some(false), tls_secret: Some("x"), ..flags() }).unwrap();
        assert_eq!(m, files("/etc/webhook/certs/tls.crt", "/etc/webhook/certs/tls.key"));
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("--tls-secret=x is ignored"), "{warnings:?}");
        let (m, warnings) = decide(&CertFlags { self_signed: true, tls_secret: Some("x"), ..flags() }).unwrap();
        assert_eq!((m, warnings.len()), (CertMode::SelfSigned, 1));
        assert!(decide(&flags()).unwrap().1.is_empty());
    }
}
