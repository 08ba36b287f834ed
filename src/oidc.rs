//! OIDC discovery for self-managed clusters: service-account public keys → the JWKS and discovery document that
//! the API server itself serves at `/openid/v1/jwks` and `/.well-known/openid-configuration`, so STS can verify the
//! projected tokens from a static host. Pure: bytes in, documents out.
//!
//! "As the API server does" is meant literally: the `kid` is the one the API server writes into every token header
//! (base64url of SHA-256 over Go's `x509.MarshalPKIXPublicKey`), and the JSON has go-jose's fields in go-jose's
//! order, so a JWKS from here and one from `kubectl get --raw /openid/v1/jwks` are interchangeable.

use std::collections::BTreeSet;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use x509_parser::asn1_rs::{Any, Class, FromDer, Tag};

/// Where the documents live under the issuer: the API server's own paths, so one layout serves both.
pub const DISCOVERY_PATH: &str = ".well-known/openid-configuration";
pub const JWKS_PATH: &str = "openid/v1/jwks";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OidcError {
    #[error("no PEM block found")]
    NoPem,
    #[error("not valid PEM: {0}")]
    Pem(String),
    #[error("no RSA or EC key among the PEM blocks (found: {0})")]
    NoKey(String),
    #[error("the key is encrypted; decrypt it first (openssl pkey -in KEY -out PLAIN.pem) or pass the public key")]
    Encrypted,
    #[error("malformed {label}: {reason}")]
    Malformed { label: String, reason: &'static str },
    #[error(
        "unsupported key type {0}: the API server signs service-account tokens with RSA or ECDSA P-256/P-384/P-521"
    )]
    UnsupportedKey(String),
    #[error(
        "the EC private key does not embed its public point; export the public key with `openssl ec -in KEY -pubout`"
    )]
    NoPublicPoint,
    #[error("compressed EC points are not supported; export with `openssl ec -pubin -in KEY -conv_form uncompressed`")]
    CompressedPoint,
    #[error("issuer {url:?} {reason}")]
    Issuer { url: String, reason: &'static str },
    #[error("jwks_uri {url:?} {reason}")]
    JwksUri { url: String, reason: &'static str },
    #[error("the API server's {document} is not what an OIDC issuer serves: {reason}")]
    ClusterDocument { document: &'static str, reason: &'static str },
}

// ---------------------------------------------------------------------------------------------------------------
// Issuer
// ---------------------------------------------------------------------------------------------------------------

/// A validated issuer URL: `https://host[:port][/path]`, exactly as it must appear in the tokens' `iss` claim, in
/// `--service-account-issuer` and in the IAM OIDC provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer(String);

impl Issuer {
    pub fn parse(url: &str) -> Result<Self, OidcError> {
        let refuse = |reason| Err(OidcError::Issuer { url: url.to_owned(), reason });
        let Some(rest) = url.strip_prefix("https://") else {
            return refuse("must start with https://: STS fetches the discovery document and keys only over HTTPS");
        };
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return refuse("contains whitespace or control characters");
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return refuse("must not contain user info (user@host)");
        }
        if authority.is_empty() || authority.starts_with(':') {
            return refuse("has no host");
        }
        if url.contains('?') {
            return refuse("must not have a query: an OIDC issuer is scheme, host and path only, and STS refuses it");
        }
        if url.contains('#') {
            return refuse(
                "must not have a fragment: an OIDC issuer is scheme, host and path only, and STS refuses it",
            );
        }
        if url.ends_with('/') {
            return refuse(
                "must not end with '/': the token's iss claim must equal the IAM provider URL character for \
                 character, and <issuer>/.well-known/openid-configuration would contain '//'",
            );
        }
        if rest.contains("//") {
            return refuse("has an empty path segment ('//'), which static hosts and STS do not treat as the same URL");
        }
        Ok(Self(url.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `host[:port][/path]`: how IAM names the provider (`oidc-provider/<this>`) and prefixes condition keys.
    pub fn without_scheme(&self) -> &str {
        self.0.strip_prefix("https://").unwrap_or(&self.0)
    }

    pub fn host(&self) -> &str {
        let authority = self.without_scheme().split('/').next().unwrap_or_default();
        authority
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(authority, |p| p.0)
    }

    /// The path after the host, without a leading '/'; empty for a bare host.
    pub fn path(&self) -> &str {
        self.without_scheme().split_once('/').map_or("", |(_, path)| path)
    }

    pub fn default_jwks_uri(&self) -> String {
        format!("{}/{JWKS_PATH}", self.0)
    }

    pub fn discovery_url(&self) -> String {
        format!("{}/{DISCOVERY_PATH}", self.0)
    }

    /// Legal but likely to hurt: IAM documents that the provider URL "should not contain a port", and it compares
    /// the URL case-sensitively while DNS does not.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.without_scheme().split('/').next().is_some_and(|a| a.contains(':')) {
            warnings.push(format!("issuer {:?} has a port; IAM OIDC providers should not", self.0));
        }
        if self.host().bytes().any(|b| b.is_ascii_uppercase()) {
            warnings.push(format!(
                "issuer {:?} has upper-case letters in the host; IAM compares the iss claim case-sensitively, so use \
                 exactly this spelling everywhere",
                self.0
            ));
        }
        warnings
    }

    /// Where an S3-hosted issuer's files go: `(bucket, key prefix)` for virtual-hosted
    /// (`BUCKET.s3[.REGION].amazonaws.com[/prefix]`) and path-style (`s3[.-]REGION.amazonaws.com/BUCKET[/prefix]`)
    /// URLs; `None` for anything else (CloudFront, a custom domain).
    pub fn s3_location(&self) -> Option<(String, String)> {
        let host = self.host();
        let path = self.path();
        let s3_endpoint = |h: &str| {
            (h == "s3" || h.starts_with("s3.") || h.starts_with("s3-"))
                && (h.ends_with(".amazonaws.com") || h.ends_with(".amazonaws.com.cn"))
        };
        if s3_endpoint(host) {
            let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
            return (!bucket.is_empty()).then(|| (bucket.to_owned(), prefix.to_owned()));
        }
        let (bucket, endpoint) = host.split_once(".s3")?;
        s3_endpoint(&format!("s3{endpoint}")).then(|| (bucket.to_owned(), path.to_owned()))
    }
}

impl fmt::Display for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A `jwks_uri` given explicitly: STS fetches it, so it must be HTTPS; a fragment is meaningless in a fetch.
pub fn validate_jwks_uri(url: &str) -> Result<(), OidcError> {
    let refuse = |reason| Err(OidcError::JwksUri { url: url.to_owned(), reason });
    if !url.starts_with("https://") || url.len() == "https://".len() {
        return refuse("must be an https:// URL: STS fetches the keys only over HTTPS");
    }
    if url.contains('#') || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return refuse("must not contain a fragment, whitespace or control characters");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    /// DER contents of the named-curve OIDs (RFC 5480).
    const P256_OID: &'static [u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    const P384_OID: &'static [u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
    const P521_OID: &'static [u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];

    fn from_oid(oid: &[u8]) -> Option<Self> {
        match oid {
            Self::P256_OID => Some(Self::P256),
            Self::P384_OID => Some(Self::P384),
            Self::P521_OID => Some(Self::P521),
            _ => None,
        }
    }

    fn oid(self) -> &'static [u8] {
        match self {
            Self::P256 => Self::P256_OID,
            Self::P384 => Self::P384_OID,
            Self::P521 => Self::P521_OID,
        }
    }

    /// Bytes per coordinate; JWK x/y are fixed-length (RFC 7518 §6.2.1.2).
    pub fn coordinate_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
            Self::P521 => 66,
        }
    }

    pub fn jwk_name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
            Self::P521 => "P-521",
        }
    }

    pub fn algorithm(self) -> &'static str {
        match self {
            Self::P256 => "ES256",
            Self::P384 => "ES384",
            Self::P521 => "ES512",
        }
    }
}

/// A service-account verification key, normalised: the same key read from any encoding compares equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Modulus and exponent, big-endian without leading zero bytes.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// Affine coordinates, each exactly `curve.coordinate_len()` bytes.
    Ec { curve: Curve, x: Vec<u8>, y: Vec<u8> },
}

const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const OID_ED448: &[u8] = &[0x2b, 0x65, 0x71];
const OID_RSASSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];

impl PublicKey {
    /// The JWS algorithm the API server signs with for this key.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Self::Rsa { .. } => "RS256",
            Self::Ec { curve, .. } => curve.algorithm(),
        }
    }

    /// The PKIX (SubjectPublicKeyInfo) DER exactly as Go's `x509.MarshalPKIXPublicKey` writes it: RSA with NULL
    /// parameters, EC with the named curve and an uncompressed point. Re-encoding (rather than hashing the input)
    /// keeps the `kid` stable across input encodings.
    pub fn pkix_der(&self) -> Vec<u8> {
        let (algorithm, key_bits) = match self {
            Self::Rsa { n, e } => {
                let pkcs1 = der(Tag::Sequence, &[der_uint(n), der_uint(e)].concat());
                let algorithm = [der(Tag::Oid, OID_RSA_ENCRYPTION), der(Tag::Null, &[])].concat();
                (algorithm, pkcs1)
            }
            Self::Ec { curve, x, y } => {
                let algorithm = [der(Tag::Oid, OID_EC_PUBLIC_KEY), der(Tag::Oid, curve.oid())].concat();
                (algorithm, [&[0x04][..], x, y].concat())
            }
        };
        let bit_string = der(Tag::BitString, &[&[0u8][..], &key_bits].concat());
        der(Tag::Sequence, &[der(Tag::Sequence, &algorithm), bit_string].concat())
    }

    /// The API server's key ID: base64url (no padding) of SHA-256 over the PKIX DER.
    pub fn key_id(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.pkix_der()))
    }

    pub fn to_jwk(&self) -> Jwk {
        let b64 = |bytes: &[u8]| Some(URL_SAFE_NO_PAD.encode(bytes));
        let mut jwk = Jwk {
            key_use: "sig",
            kty: "RSA",
            kid: self.key_id(),
            crv: None,
            alg: self.algorithm(),
            x: None,
            y: None,
            n: None,
            e: None,
        };
        match self {
            Self::Rsa { n, e } => {
                jwk.n = b64(n);
                jwk.e = b64(e);
            }
            Self::Ec { curve, x, y } => {
                jwk.kty = "EC";
                jwk.crv = Some(curve.jwk_name());
                jwk.x = b64(x);
                jwk.y = b64(y);
            }
        }
        jwk
    }

    /// Kubernetes-style description for logs: `RS256 kid=...`.
    pub fn describe(&self) -> String {
        format!("{} kid={}", self.algorithm(), self.key_id())
    }

    fn rsa(n: &[u8], e: &[u8], label: &str) -> Result<Self, OidcError> {
        let (n, e) = (strip_zeros(n), strip_zeros(e));
        if n.is_empty() || e.is_empty() {
            return Err(malformed(label, "RSA modulus or exponent is zero"));
        }
        Ok(Self::Rsa { n: n.to_vec(), e: e.to_vec() })
    }

    fn ec(curve: Curve, point: &[u8]) -> Result<Self, OidcError> {
        let size = curve.coordinate_len();
        match point.split_first() {
            Some((0x04, xy)) if xy.len() == 2 * size => {
                Ok(Self::Ec { curve, x: xy[..size].to_vec(), y: xy[size..].to_vec() })
            }
            Some((0x02 | 0x03, _)) => Err(OidcError::CompressedPoint),
            _ => Err(malformed("EC key", "the public point has the wrong length for its curve")),
        }
    }
}

/// Every key in a PEM file, in order. Like the API server's `--service-account-key-file`, a file may hold several
/// keys, public or private, and blocks that are not keys (EC PARAMETERS, comments) are skipped; a file without a
/// key is an error.
pub fn parse_pem_keys(text: &[u8]) -> Result<Vec<PublicKey>, OidcError> {
    // x509-parser's reader would fail on the headers with a base64 error; say what is really wrong.
    if String::from_utf8_lossy(text).contains("Proc-Type: 4,ENCRYPTED") {
        return Err(OidcError::Encrypted);
    }
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(text) {
        let block = block.map_err(|e| OidcError::Pem(e.to_string()))?;
        match parse_der_key(&block.label, &block.contents)? {
            Some(key) => keys.push(key),
            None => skipped.push(block.label),
        }
    }
    if keys.is_empty() {
        return Err(if skipped.is_empty() { OidcError::NoPem } else { OidcError::NoKey(skipped.join(", ")) });
    }
    Ok(keys)
}

/// The public key in one PEM block's DER, by its label; `None` for blocks that are not keys.
pub fn parse_der_key(label: &str, der: &[u8]) -> Result<Option<PublicKey>, OidcError> {
    let key = match label {
        "PUBLIC KEY" => parse_spki(der, label)?,
        "RSA PUBLIC KEY" => {
            let items = sequence(der, label)?;
            match items.as_slice() {
                [n, e] => PublicKey::rsa(integer(n, label)?, integer(e, label)?, label)?,
                _ => return Err(malformed(label, "expected SEQUENCE { modulus, publicExponent }")),
            }
        }
        "CERTIFICATE" => {
            let (_, cert) = x509_parser::parse_x509_certificate(der)
                .map_err(|_| malformed(label, "not a DER X.509 certificate"))?;
            parse_spki(cert.tbs_certificate.subject_pki.raw, label)?
        }
        "RSA PRIVATE KEY" => parse_rsa_private(der, label)?,
        "EC PRIVATE KEY" => parse_ec_private(der, None, label)?,
        "PRIVATE KEY" => parse_pkcs8(der, label)?,
        "ENCRYPTED PRIVATE KEY" => return Err(OidcError::Encrypted),
        _ => return Ok(None),
    };
    Ok(Some(key))
}

fn parse_spki(der: &[u8], label: &str) -> Result<PublicKey, OidcError> {
    let items = sequence(der, label)?;
    let [algorithm, bits] = items.as_slice() else {
        return Err(malformed(label, "expected SEQUENCE { algorithm, subjectPublicKey }"));
    };
    let (oid, parameters) = algorithm_identifier(algorithm, label)?;
    let key_bits = bit_string(bits, label)?;
    match oid {
        OID_RSA_ENCRYPTION => match sequence(key_bits, label)?.as_slice() {
            [n, e] => PublicKey::rsa(integer(n, label)?, integer(e, label)?, label),
            _ => Err(malformed(label, "expected RSAPublicKey { modulus, publicExponent }")),
        },
        OID_EC_PUBLIC_KEY => PublicKey::ec(named_curve(parameters, label)?, key_bits),
        other => Err(OidcError::UnsupportedKey(key_type_name(other))),
    }
}

/// PKCS#1 RSAPrivateKey: `SEQUENCE { version, modulus, publicExponent, ... }`.
fn parse_rsa_private(der: &[u8], label: &str) -> Result<PublicKey, OidcError> {
    match sequence(der, label)?.as_slice() {
        [_version, n, e, ..] => PublicKey::rsa(integer(n, label)?, integer(e, label)?, label),
        _ => Err(malformed(label, "expected RSAPrivateKey { version, modulus, publicExponent, ... }")),
    }
}

/// SEC 1 ECPrivateKey: `SEQUENCE { 1, privateKey, [0] parameters OPTIONAL, [1] publicKey OPTIONAL }`. The curve may
/// come from the PKCS#8 wrapper instead. Deriving a missing public point needs curve arithmetic; openssl always
/// writes it, so a missing one is an error with a remedy rather than a reason to pull in an EC library.
fn parse_ec_private(der: &[u8], outer_curve: Option<Curve>, label: &str) -> Result<PublicKey, OidcError> {
    let items = sequence(der, label)?;
    let mut curve = outer_curve;
    let mut point = None;
    for item in items.iter().skip(2) {
        match (item.class(), item.tag().0) {
            (Class::ContextSpecific, 0) => curve = Some(named_curve(Some(single(item.data, label)?), label)?),
            (Class::ContextSpecific, 1) => point = Some(bit_string(&single(item.data, label)?, label)?.to_vec()),
            _ => {}
        }
    }
    let curve = curve.ok_or_else(|| malformed(label, "the EC key does not name its curve"))?;
    PublicKey::ec(curve, &point.ok_or(OidcError::NoPublicPoint)?)
}

/// PKCS#8 PrivateKeyInfo: `SEQUENCE { version, AlgorithmIdentifier, OCTET STRING privateKey, ... }`.
fn parse_pkcs8(der: &[u8], label: &str) -> Result<PublicKey, OidcError> {
    let items = sequence(der, label)?;
    let [_version, algorithm, private_key, ..] = items.as_slice() else {
        return Err(malformed(label, "expected PrivateKeyInfo { version, algorithm, privateKey }"));
    };
    let (oid, parameters) = algorithm_identifier(algorithm, label)?;
    let inner = universal(private_key, Tag::OctetString, label)?;
    match oid {
        OID_RSA_ENCRYPTION => parse_rsa_private(inner, label),
        OID_EC_PUBLIC_KEY => parse_ec_private(inner, Some(named_curve(parameters, label)?), label),
        other => Err(OidcError::UnsupportedKey(key_type_name(other))),
    }
}

fn key_type_name(oid: &[u8]) -> String {
    match oid {
        OID_ED25519 => "Ed25519".into(),
        OID_ED448 => "Ed448".into(),
        OID_RSASSA_PSS => "RSASSA-PSS (an RSA key restricted to PSS)".into(),
        other => format!("with algorithm OID bytes {}", other.iter().map(|b| format!("{b:02x}")).collect::<String>()),
    }
}

// DER, read with asn1-rs (via x509-parser) and written by hand: the canonical SPKI is four nested TLVs.

fn malformed(label: &str, reason: &'static str) -> OidcError {
    OidcError::Malformed { label: label.to_owned(), reason }
}

fn single<'a>(der: &'a [u8], label: &str) -> Result<Any<'a>, OidcError> {
    match Any::from_der(der) {
        Ok(([], any)) => Ok(any),
        _ => Err(malformed(label, "invalid DER")),
    }
}

fn sequence<'a>(der: &'a [u8], label: &str) -> Result<Vec<Any<'a>>, OidcError> {
    let mut rest = universal(&single(der, label)?, Tag::Sequence, label)?;
    let mut items = Vec::new();
    while !rest.is_empty() {
        let (next, any) = Any::from_der(rest).map_err(|_| malformed(label, "invalid DER"))?;
        items.push(any);
        rest = next;
    }
    Ok(items)
}

fn universal<'a>(any: &Any<'a>, tag: Tag, label: &str) -> Result<&'a [u8], OidcError> {
    if any.class() == Class::Universal && any.tag() == tag {
        Ok(any.data)
    } else {
        Err(malformed(label, "unexpected ASN.1 type"))
    }
}

fn integer<'a>(any: &Any<'a>, label: &str) -> Result<&'a [u8], OidcError> {
    let bytes = universal(any, Tag::Integer, label)?;
    if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        return Err(malformed(label, "negative integer"));
    }
    Ok(bytes)
}

fn bit_string<'a>(any: &Any<'a>, label: &str) -> Result<&'a [u8], OidcError> {
    match universal(any, Tag::BitString, label)?.split_first() {
        Some((0, bits)) => Ok(bits),
        _ => Err(malformed(label, "key bit string is not byte-aligned")),
    }
}

fn algorithm_identifier<'a>(any: &Any<'a>, label: &str) -> Result<(&'a [u8], Option<Any<'a>>), OidcError> {
    let mut rest = universal(any, Tag::Sequence, label)?;
    let (next, oid) = Any::from_der(rest).map_err(|_| malformed(label, "invalid AlgorithmIdentifier"))?;
    rest = next;
    let parameters = if rest.is_empty() {
        None
    } else {
        Some(Any::from_der(rest).map_err(|_| malformed(label, "invalid AlgorithmIdentifier"))?.1)
    };
    Ok((universal(&oid, Tag::Oid, label)?, parameters))
}

fn named_curve(parameters: Option<Any<'_>>, label: &str) -> Result<Curve, OidcError> {
    let Some(parameters) = parameters else {
        return Err(malformed(label, "the EC key does not name its curve"));
    };
    let oid = universal(&parameters, Tag::Oid, label)
        .map_err(|_| malformed(label, "explicit EC curve parameters; use a named curve"))?;
    Curve::from_oid(oid).ok_or_else(|| OidcError::UnsupportedKey("on a curve other than P-256, P-384 or P-521".into()))
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

fn der(tag: Tag, content: &[u8]) -> Vec<u8> {
    // Tags used here are all universal and < 31, so one identifier byte; constructed bit for SEQUENCE.
    let identifier = if tag == Tag::Sequence { 0x30 } else { tag.0 as u8 };
    let mut out = vec![identifier];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let significant = strip_zeros(&bytes);
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

/// A non-negative INTEGER: minimal bytes, with a 0x00 in front when the high bit is set.
fn der_uint(magnitude: &[u8]) -> Vec<u8> {
    let magnitude = strip_zeros(magnitude);
    let content = match magnitude.first() {
        None => vec![0],
        Some(b) if b & 0x80 != 0 => [&[0u8][..], magnitude].concat(),
        Some(_) => magnitude.to_vec(),
    };
    der(Tag::Integer, &content)
}

// ---------------------------------------------------------------------------------------------------------------
// Documents
// ---------------------------------------------------------------------------------------------------------------

/// One JWK, fields in go-jose's order (what the API server serializes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Jwk {
    #[serde(rename = "use")]
    pub key_use: &'static str,
    pub kty: &'static str,
    pub kid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<&'static str>,
    pub alg: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// The JWKS for `keys`, in order. A key given twice (say as private and public file) appears once: a JWKS with
/// duplicate `kid`s is ambiguous to verifiers.
pub fn jwks(keys: &[PublicKey]) -> Jwks {
    let mut seen = BTreeSet::new();
    Jwks { keys: keys.iter().map(PublicKey::to_jwk).filter(|jwk| seen.insert(jwk.kid.clone())).collect() }
}

/// The discovery document, field for field what the API server serves (it has no `claims_supported` or
/// `authorization_endpoint`; STS needs neither).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Discovery {
    pub issuer: String,
    pub jwks_uri: String,
    pub response_types_supported: Vec<String>,
    pub subject_types_supported: Vec<String>,
    pub id_token_signing_alg_values_supported: Vec<String>,
}

/// `algorithms` as the API server lists them: sorted and unique; RS256 when no key is known.
pub fn discovery<'a>(
    issuer: &Issuer,
    jwks_uri: Option<&str>,
    algorithms: impl IntoIterator<Item = &'a str>,
) -> Result<Discovery, OidcError> {
    if let Some(uri) = jwks_uri {
        validate_jwks_uri(uri)?;
    }
    let mut algorithms: Vec<String> =
        algorithms.into_iter().collect::<BTreeSet<_>>().into_iter().map(str::to_owned).collect();
    if algorithms.is_empty() {
        algorithms.push("RS256".into());
    }
    Ok(Discovery {
        issuer: issuer.to_string(),
        jwks_uri: jwks_uri.map_or_else(|| issuer.default_jwks_uri(), str::to_owned),
        response_types_supported: vec!["id_token".into()],
        subject_types_supported: vec!["public".into()],
        id_token_signing_alg_values_supported: algorithms,
    })
}

/// The API server's own documents, re-homed under `issuer`: keys and every other field kept, `issuer` and
/// `jwks_uri` replaced. Warns when the API server's issuer differs, since its tokens carry that one in `iss`.
pub fn rehome_cluster_documents(
    cluster_discovery: &Value,
    cluster_jwks: &Value,
    issuer: &Issuer,
) -> Result<(Value, Value, Vec<String>), OidcError> {
    let invalid = |document, reason| OidcError::ClusterDocument { document, reason };
    const DISCOVERY: &str = "/.well-known/openid-configuration";
    const JWKS: &str = "/openid/v1/jwks";
    let mut discovery = cluster_discovery.as_object().cloned().ok_or(invalid(DISCOVERY, "not a JSON object"))?;
    let keys = cluster_jwks.get("keys").and_then(Value::as_array).ok_or(invalid(JWKS, "no \"keys\" array"))?;
    if keys.is_empty() {
        return Err(invalid(JWKS, "the key set is empty"));
    }
    if keys.iter().any(|k| k.get("kid").and_then(Value::as_str).is_none() || k.get("kty").is_none()) {
        return Err(invalid(JWKS, "a key has no kid or kty"));
    }
    let mut warnings = Vec::new();
    match discovery.get("issuer").and_then(Value::as_str) {
        Some(current) if current == issuer.as_str() => {}
        Some(current) => warnings.push(format!(
            "the API server's issuer is {current:?}: its tokens carry that iss claim and STS will refuse them until \
             kube-apiserver runs with --service-account-issuer={issuer} (listed first)"
        )),
        None => return Err(invalid(DISCOVERY, "no \"issuer\"")),
    }
    discovery.insert("issuer".into(), Value::String(issuer.to_string()));
    discovery.insert("jwks_uri".into(), Value::String(issuer.default_jwks_uri()));
    Ok((Value::Object(discovery), cluster_jwks.clone(), warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_validation() {
        for ok in ["https://oidc.example.com", "https://example.com/id/ABC123", "https://b.s3.us-east-1.amazonaws.com"]
        {
            assert_eq!(Issuer::parse(ok).map(|i| i.to_string()), Ok(ok.to_owned()));
        }
        for (bad, why) in [
            ("http://example.com", "https://"),
            ("oidc.example.com", "https://"),
            ("https://example.com/", "'/'"),
            ("https://example.com/id/", "'/'"),
            ("https://example.com?x=1", "query"),
            ("https://example.com/p?", "query"),
            ("https://example.com#f", "fragment"),
            ("https://", "no host"),
            ("https://:443/x", "no host"),
            ("https://u:p@example.com", "user info"),
            ("https://example.com//x", "'//'"),
            ("https://exa mple.com", "whitespace"),
        ] {
            let error = Issuer::parse(bad).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(error.contains(why), "{bad}: {error}");
        }
    }

    #[test]
    fn issuer_parts_and_warnings() {
        let issuer = Issuer::parse("https://Example.com:8443/a/b").unwrap();
        assert_eq!(issuer.without_scheme(), "Example.com:8443/a/b");
        assert_eq!(issuer.host(), "Example.com");
        assert_eq!(issuer.path(), "a/b");
        assert_eq!(issuer.warnings().len(), 2);
        assert!(Issuer::parse("https://example.com").unwrap().warnings().is_empty());
    }

    #[test]
    fn s3_locations() {
        let s3 = |url: &str| Issuer::parse(url).unwrap().s3_location();
        let loc = |b: &str, p: &str| Some((b.to_owned(), p.to_owned()));
        assert_eq!(s3("https://my-bucket.s3.us-west-2.amazonaws.com"), loc("my-bucket", ""));
        assert_eq!(s3("https://my-bucket.s3.amazonaws.com/clusters/a"), loc("my-bucket", "clusters/a"));
        assert_eq!(s3("https://s3-us-west-2.amazonaws.com/my-bucket"), loc("my-bucket", ""));
        assert_eq!(s3("https://s3.cn-north-1.amazonaws.com.cn/b/x"), loc("b", "x"));
        assert_eq!(s3("https://oidc.example.com/x"), None);
        assert_eq!(s3("https://s3.us-east-1.amazonaws.com"), None);
    }

    #[test]
    fn canonical_der_lengths() {
        assert_eq!(der(Tag::Null, &[]), [0x05, 0x00]);
        assert_eq!(der(Tag::OctetString, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(der(Tag::OctetString, &[0; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(der_uint(&[0, 0, 0x01, 0x00, 0x01]), [0x02, 0x03, 0x01, 0x00, 0x01]);
        assert_eq!(der_uint(&[0x80]), [0x02, 0x02, 0x00, 0x80]);
    }

    #[test]
    fn jwk_field_order_is_go_jose_order() {
        let key = PublicKey::Ec { curve: Curve::P256, x: vec![1; 32], y: vec![2; 32] };
        let json = serde_json::to_string(&key.to_jwk()).unwrap();
        let order: Vec<usize> = ["\"use\"", "\"kty\"", "\"kid\"", "\"crv\"", "\"alg\"", "\"x\"", "\"y\""]
            .map(|f| json.find(f).unwrap())
            .into();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{json}");
        let rsa = PublicKey::Rsa { n: vec![0xc0; 256], e: vec![1, 0, 1] }.to_jwk();
        assert_eq!((rsa.kty, rsa.alg, rsa.e.as_deref()), ("RSA", "RS256", Some("AQAB")));
    }

    #[test]
    fn jwks_drops_duplicate_keys_and_discovery_sorts_algorithms() {
        let a = PublicKey::Ec { curve: Curve::P384, x: vec![1; 48], y: vec![2; 48] };
        let b = PublicKey::Rsa { n: vec![0xc0; 256], e: vec![3] };
        assert_eq!(jwks(&[a.clone(), b.clone(), a.clone()]).keys.len(), 2);
        let issuer = Issuer::parse("https://example.com").unwrap();
        let doc = discovery(&issuer, None, [a.algorithm(), b.algorithm(), a.algorithm()]).unwrap();
        assert_eq!(doc.id_token_signing_alg_values_supported, ["ES384", "RS256"]);
        assert_eq!(doc.jwks_uri, "https://example.com/openid/v1/jwks");
        assert_eq!(discovery(&issuer, None, []).unwrap().id_token_signing_alg_values_supported, ["RS256"]);
        assert!(discovery(&issuer, Some("http://x/keys"), []).is_err());
    }

    #[test]
    fn rehoming_keeps_keys_and_warns_about_a_different_issuer() {
        let d = serde_json::json!({"issuer": "https://kubernetes.default.svc", "jwks_uri": "https://1.2.3.4:6443/openid/v1/jwks", "response_types_supported": ["id_token"]});
        let k = serde_json::json!({"keys": [{"use": "sig", "kty": "RSA", "kid": "k", "alg": "RS256", "n": "AQ", "e": "AQAB"}]});
        let issuer = Issuer::parse("https://oidc.example.com").unwrap();
        let (d2, k2, warnings) = rehome_cluster_documents(&d, &k, &issuer).unwrap();
        assert_eq!(d2["issuer"], "https://oidc.example.com");
        assert_eq!(d2["jwks_uri"], "https://oidc.example.com/openid/v1/jwks");
        assert_eq!(d2["response_types_supported"], d["response_types_supported"]);
        assert_eq!(k2, k);
        assert_eq!(warnings.len(), 1);
        assert!(rehome_cluster_documents(&d, &serde_json::json!({"keys": []}), &issuer).is_err());
    }

    #[test]
    fn unsupported_and_broken_input() {
        assert_eq!(parse_pem_keys(b"nothing here"), Err(OidcError::NoPem));
        let params = b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n";
        assert_eq!(parse_pem_keys(params), Err(OidcError::NoKey("EC PARAMETERS".into())));
        // An Ed25519 public key (RFC 8410 example).
        let ed = b"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
        assert_eq!(parse_pem_keys(ed), Err(OidcError::UnsupportedKey("Ed25519".into())));
        let garbage = b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        assert!(matches!(parse_pem_keys(garbage), Err(OidcError::Malformed { .. })));
        let encrypted = b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        assert_eq!(parse_pem_keys(encrypted), Err(OidcError::Encrypted));
    }
}
