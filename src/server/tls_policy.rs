//! `--tls-min-version` and `--tls-cipher-suites` as the reference spells them (Go's `crypto/tls` names), mapped to
//! what rustls does.
//!
//! - Versions: `1.0`–`1.3` and `VersionTLS10`–`VersionTLS13` are accepted. rustls has no TLS 1.0 or 1.1, so those
//!   start the server at TLS 1.2 with a warning that 1.2 is the floor.
//! - Cipher suites: Go's names. As in Go, the list restricts TLS 1.2 only; TLS 1.3 suites are not configurable in
//!   Go and all of them stay on (naming one is accepted and changes nothing). A suite rustls cannot do (CBC, RSA key
//!   exchange, 3DES, RC4: everything but ECDHE with AES-GCM or ChaCha20-Poly1305) is refused at start, with the
//!   list of those it can. A list that leaves no TLS 1.2 suite serves TLS 1.3 only, as Go would.

use rustls::crypto::CryptoProvider;
use rustls::{SupportedCipherSuite, SupportedProtocolVersion};

use super::tls::TlsMinVersion;

/// `--tls-min-version` as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinVersionFlag {
    Tls10,
    Tls11,
    Tls12,
    Tls13,
}

impl MinVersionFlag {
    /// What rustls is set to: TLS 1.2 for anything below.
    pub fn effective(self) -> TlsMinVersion {
        match self {
            MinVersionFlag::Tls13 => TlsMinVersion::Tls13,
            _ => TlsMinVersion::Tls12,
        }
    }

    /// The startup warning for a version rustls does not have.
    pub fn warning(self) -> Option<String> {
        let asked = match self {
            MinVersionFlag::Tls10 => "1.0",
            MinVersionFlag::Tls11 => "1.1",
            _ => return None,
        };
        Some(format!(
            "--tls-min-version={asked}: TLS 1.2 is the floor here (rustls has no TLS 1.0 or 1.1); serving TLS 1.2 and 1.3"
        ))
    }
}

/// The reference's `ValidateTLSMinVersion`: `1.0`–`1.3` or `VersionTLS10`–`VersionTLS13`.
pub fn parse_min_version(text: &str) -> Result<MinVersionFlag, String> {
    match text {
        "1.0" | "VersionTLS10" => Ok(MinVersionFlag::Tls10),
        "1.1" | "VersionTLS11" => Ok(MinVersionFlag::Tls11),
        "1.2" | "VersionTLS12" => Ok(MinVersionFlag::Tls12),
        "1.3" | "VersionTLS13" => Ok(MinVersionFlag::Tls13),
        _ => Err(format!("{text:?} is not a TLS version (1.0, 1.1, 1.2, 1.3, or VersionTLS10 to VersionTLS13)")),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsPolicyError {
    #[error("--tls-cipher-suites: {name} is not available here (rustls does TLS 1.2 with {supported}; TLS 1.3 suites are always on)")]
    Unsupported { name: String, supported: String },
}

/// What the TLS server offers.
#[derive(Debug, Clone)]
pub struct TlsPolicy {
    pub min_version: TlsMinVersion,
    /// The TLS 1.2 suites to offer; `None`: every one rustls has.
    pub tls12_suites: Option<Vec<SupportedCipherSuite>>,
}

impl Default for TlsPolicy {
    fn default() -> Self {
        Self::from(TlsMinVersion::Tls12)
    }
}

impl From<TlsMinVersion> for TlsPolicy {
    fn from(min_version: TlsMinVersion) -> Self {
        Self { min_version, tls12_suites: None }
    }
}

impl TlsPolicy {
    /// From the flags' values; `cipher_suites` is the comma-separated list (empty: rustls's defaults).
    pub fn new(min_version: TlsMinVersion, cipher_suites: &str) -> Result<Self, TlsPolicyError> {
        Ok(Self { min_version, tls12_suites: parse_cipher_suites(cipher_suites)? })
    }

    pub fn versions(&self) -> Vec<&'static SupportedProtocolVersion> {
        let tls12 =
            self.min_version == TlsMinVersion::Tls12 && self.tls12_suites.as_ref().is_none_or(|s| !s.is_empty());
        if tls12 {
            vec![&rustls::version::TLS13, &rustls::version::TLS12]
        } else {
            vec![&rustls::version::TLS13]
        }
    }

    /// rustls's ring provider with the chosen TLS 1.2 suites and every TLS 1.3 suite.
    pub fn provider(&self) -> CryptoProvider {
        let mut provider = rustls::crypto::ring::default_provider();
        if let Some(allowed) = &self.tls12_suites {
            provider
                .cipher_suites
                .retain(|suite| suite.tls13().is_some() || allowed.iter().any(|a| a.suite() == suite.suite()));
        }
        provider
    }
}

/// Go's name for a rustls suite: the IANA name, which rustls spells `TLS13_...` for TLS 1.3 where Go has `TLS_...`.
fn go_name(suite: &SupportedCipherSuite) -> Option<String> {
    let name = suite.suite().as_str()?;
    Some(match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name.to_owned(),
    })
}

/// `None` for an empty list (the default); otherwise the TLS 1.2 suites named, each checked.
fn parse_cipher_suites(list: &str) -> Result<Option<Vec<SupportedCipherSuite>>, TlsPolicyError> {
    let names: Vec<&str> = list.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
    if names.is_empty() {
        return Ok(None);
    }
    let available = rustls::crypto::ring::default_provider().cipher_suites;
    let mut chosen = Vec::new();
    for name in names {
        let found = available.iter().find(|suite| go_name(suite).as_deref() == Some(name));
        match found {
            Some(suite) if suite.tls13().is_some() => {}
            Some(suite) => chosen.push(*suite),
            None => {
                let supported: Vec<String> =
                    available.iter().filter(|s| s.tls13().is_none()).filter_map(go_name).collect();
                return Err(TlsPolicyError::Unsupported { name: name.to_owned(), supported: supported.join(", ") });
            }
        }
    }
    Ok(Some(chosen))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(policy: &TlsPolicy) -> Vec<String> {
        policy.provider().cipher_suites.iter().filter_map(go_name).collect()
    }

    #[test]
    fn every_reference_version_spelling() {
        let cases = [
            ("1.0", MinVersionFlag::Tls10),
            ("VersionTLS10", MinVersionFlag::Tls10),
            ("1.1", MinVersionFlag::Tls11),
            ("VersionTLS11", MinVersionFlag::Tls11),
            ("1.2", MinVersionFlag::Tls12),
            ("VersionTLS12", MinVersionFlag::Tls12),
            ("1.3", MinVersionFlag::Tls13),
            ("VersionTLS13", MinVersionFlag::Tls13),
        ];
        for (text, flag) in cases {
            assert_eq!(parse_min_version(text), Ok(flag), "{text}");
        }
        for text in ["", "1", "TLS1.2", "versiontls12", "1.4"] {
            assert!(parse_min_version(text).is_err(), "{text}");
        }
    }

    #[test]
    fn below_1_2_starts_at_1_2_with_a_warning() {
        for flag in [MinVersionFlag::Tls10, MinVersionFlag::Tls11] {
            assert_eq!(flag.effective(), TlsMinVersion::Tls12);
            assert!(flag.warning().unwrap().contains("TLS 1.2 is the floor"));
        }
        assert_eq!((MinVersionFlag::Tls12.effective(), MinVersionFlag::Tls12.warning()), (TlsMinVersion::Tls12, None));
        assert_eq!((MinVersionFlag::Tls13.effective(), MinVersionFlag::Tls13.warning()), (TlsMinVersion::Tls13, None));
    }

    #[test]
    fn no_list_offers_everything_rustls_has() {
        let policy = TlsPolicy::new(TlsMinVersion::Tls12, " , ").unwrap();
        assert!(policy.tls12_suites.is_none());
        assert_eq!(names(&policy).len(), rustls::crypto::ring::default_provider().cipher_suites.len());
        assert_eq!(policy.versions().len(), 2);
        assert_eq!(TlsPolicy::new(TlsMinVersion::Tls13, "").unwrap().versions(), vec![&rustls::version::TLS13]);
    }

    #[test]
    fn go_names_restrict_tls12_and_leave_tls13_alone() {
        let policy = TlsPolicy::new(
            TlsMinVersion::Tls12,
            " TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 ,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,TLS_AES_128_GCM_SHA256",
        )
        .unwrap();
        let offered = names(&policy);
        for name in [
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            "TLS_AES_128_GCM_SHA256",
            "TLS_AES_256_GCM_SHA384",
            "TLS_CHACHA20_POLY1305_SHA256",
        ] {
            assert!(offered.iter().any(|n| n == name), "{name} missing from {offered:?}");
        }
        assert!(!offered.iter().any(|n| n == "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"), "{offered:?}");
        assert_eq!(policy.versions().len(), 2);
    }

    #[test]
    fn only_tls13_names_serve_tls13_only() {
        let policy = TlsPolicy::new(TlsMinVersion::Tls12, "TLS_AES_256_GCM_SHA384").unwrap();
        assert_eq!(policy.tls12_suites.as_deref().map(<[_]>::len), Some(0));
        assert_eq!(policy.versions(), vec![&rustls::version::TLS13]);
    }

    #[test]
    fn a_suite_rustls_cannot_do_is_refused_with_the_list() {
        for name in ["TLS_RSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", "NOPE"] {
            let error = TlsPolicy::new(TlsMinVersion::Tls12, name).unwrap_err().to_string();
            assert!(error.contains(name), "{error}");
            assert!(error.contains("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"), "{error}");
            assert!(!error.contains("TLS_AES_128_GCM_SHA256"), "only TLS 1.2 suites are listed: {error}");
            assert!(!error.contains('\n'));
        }
    }
}
