//! Certificates we make ourselves (rcgen): an in-memory CA and serving certificate for `--self-signed`.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A CA and a serving certificate it signed, as PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct GeneratedCerts {
    pub ca_pem: String,
    pub ca_key_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Shows when the certificates expire; never the keys.
impl std::fmt::Debug for GeneratedCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedCerts")
            .field("ca_not_after", &crate::x509::first_not_after(self.ca_pem.as_bytes()).ok())
            .field("cert_not_after", &crate::x509::first_not_after(self.cert_pem.as_bytes()).ok())
            .finish_non_exhaustive()
    }
}

/// The names the API server may use to reach the webhook's Service, plus loopback for local use.
pub fn service_sans(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ]
}

/// A fresh CA (valid `ca_days`) and a serving certificate for `sans` (valid `days`).
pub fn generate(sans: &[String], ca_days: i64, days: i64) -> Result<GeneratedCerts, CertError> {
    let now = time::OffsetDateTime::now_utc();
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name = name("irsa-webhook-ca");
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    ca_params.not_before = now - time::Duration::hours(1);
    ca_params.not_after = now + time::Duration::days(ca_days);
    let ca_key = KeyPair::generate()?;
    let ca_key_pem = ca_key.serialize_pem();
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key)?;
    let (cert_pem, key_pem) = sign_leaf(&ca, sans, days)?;
    Ok(GeneratedCerts { ca_pem: ca.pem(), ca_key_pem, cert_pem, key_pem })
}

/// A new serving certificate signed by an existing CA (renewal keeps the CA, so the caBundle stays valid).
pub fn renew_leaf(ca_pem: &str, ca_key_pem: &str, sans: &[String], days: i64) -> Result<GeneratedCerts, CertError> {
    let ca_key = KeyPair::from_pem(ca_key_pem)?;
    let issuer = rcgen::Issuer::from_ca_cert_pem(ca_pem, ca_key)?;
    let (cert_pem, key_pem) = sign_leaf(&issuer, sans, days)?;
    Ok(GeneratedCerts { ca_pem: ca_pem.to_owned(), ca_key_pem: ca_key_pem.to_owned(), cert_pem, key_pem })
}

fn sign_leaf(issuer: &rcgen::Issuer<'_, KeyPair>, sans: &[String], days: i64) -> Result<(String, String), CertError> {
    let now = time::OffsetDateTime::now_utc();
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.subject_alt_names = sans
        .iter()
        .map(|san| match san.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => san.clone().try_into().map(SanType::DnsName),
        })
        .collect::<Result<_, _>>()?;
    params.distinguished_name = name(sans.first().map(String::as_str).unwrap_or("irsa-webhook"));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(days);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::tls::CertPair;

    #[test]
    fn debug_output_never_shows_a_key() {
        let certs = generate(&service_sans("svc", "ns"), 365, 30).unwrap();
        let shown = format!("{certs:?}");
        assert!(shown.contains("cert_not_after: Some(") && !shown.contains("PRIVATE KEY"), "{shown}");
    }

    #[test]
    fn generated_pair_loads_and_names_the_service() {
        let certs = generate(&service_sans("svc", "ns"), 365, 30).unwrap();
        let pair = CertPair::from_pem(certs.cert_pem.as_bytes(), certs.key_pem.as_bytes(), "cert", "key").unwrap();
        let in_29_days = time::OffsetDateTime::now_utc().unix_timestamp() + 29 * 86400;
        assert!(pair.not_after > in_29_days);
        let der = rustls_pki_types::CertificateDer::from(pem_der(&certs.cert_pem));
        let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let sans = format!("{:?}", parsed.subject_alternative_name().unwrap().unwrap().value);
        assert!(sans.contains("\"svc.ns.svc\"") && sans.contains("IPAddress([127, 0, 0, 1])"), "{sans}");
    }

    fn pem_der(pem: &str) -> Vec<u8> {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec()
    }
}
