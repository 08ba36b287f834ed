//! Facts read from X.509 certificates, in one place: the certificates of a PEM text, when they expire, which names
//! they are for. The server (its serving certificate, the certificate Secret) and `doctor` (a caBundle) read them
//! the same way.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum X509Error {
    #[error("no PEM certificate found")]
    NoCertificate,
    #[error("cannot parse the certificate: {0}")]
    Parse(String),
}

/// The certificates of a PEM text (a chain or a bundle), in order; other PEM blocks are skipped.
pub fn pem_certificates(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem).filter_map(Result::ok).collect()
}

/// When a DER certificate expires (`notAfter`, Unix seconds).
pub fn not_after(der: &[u8]) -> Result<i64, X509Error> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).map_err(|e| X509Error::Parse(e.to_string()))?;
    Ok(certificate.validity().not_after.timestamp())
}

/// When the first certificate of a PEM text expires: the leaf of a chain.
pub fn first_not_after(pem: &[u8]) -> Result<i64, X509Error> {
    let first = CertificateDer::pem_slice_iter(pem).find_map(Result::ok).ok_or(X509Error::NoCertificate)?;
    not_after(&first)
}

/// When each certificate of a PEM bundle expires, for those that parse.
pub fn not_afters(pem: &[u8]) -> Vec<i64> {
    pem_certificates(pem).iter().filter_map(|der| not_after(der).ok()).collect()
}

/// The DNS names and IP addresses (as text) a DER certificate is for (its subjectAltName).
pub fn subject_alt_names(der: &[u8]) -> Result<Vec<String>, X509Error> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).map_err(|e| X509Error::Parse(e.to_string()))?;
    let Some(extension) = certificate.subject_alternative_name().map_err(|e| X509Error::Parse(e.to_string()))? else {
        return Ok(Vec::new());
    };
    Ok(extension
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            GeneralName::IPAddress(ip) => match ip.len() {
                4 => <[u8; 4]>::try_from(*ip).ok().map(|b| std::net::IpAddr::from(b).to_string()),
                16 => <[u8; 16]>::try_from(*ip).ok().map(|b| std::net::IpAddr::from(b).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::certs;

    #[test]
    fn reads_expiry_and_names_of_generated_certificates() {
        let generated = certs::generate(&certs::service_sans("svc", "ns"), 3650, 30).unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let leaf = first_not_after(generated.cert_pem.as_bytes()).unwrap();
        assert!(leaf > now + 29 * 86400 && leaf <= now + 30 * 86400, "{leaf}");
        let bundle = format!("{}{}", generated.ca_pem, generated.cert_pem);
        let both = not_afters(bundle.as_bytes());
        assert_eq!(both.len(), 2);
        assert!(both[0] > now + 3649 * 86400, "the CA first, as in the bundle");
        let names = subject_alt_names(&pem_certificates(generated.cert_pem.as_bytes())[0]).unwrap();
        assert!(names.contains(&"svc.ns.svc".to_owned()) && names.contains(&"127.0.0.1".to_owned()), "{names:?}");
        assert!(names.contains(&"::1".to_owned()), "{names:?}");
    }

    #[test]
    fn says_what_is_wrong_with_text_that_is_not_a_certificate() {
        assert_eq!(first_not_after(b"not PEM"), Err(X509Error::NoCertificate));
        assert!(not_afters(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_empty());
        assert!(matches!(not_after(b"\x30\x03\x02\x01\x00"), Err(X509Error::Parse(_))));
    }
}
