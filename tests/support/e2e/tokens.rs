//! Service-account tokens: their claims, and their signature checked against the harness's `sa.pub`.

use super::*;

/// The claims (payload) of a JWT, without verifying it.
pub fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap_or_else(|| panic!("not a JWT: {token:?}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .unwrap_or_else(|e| panic!("JWT payload is not base64url: {e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("JWT payload is not JSON: {e}"))
}

/// Verifies an RS256 JWT against the harness's service-account public key (`sa.pub`, what the issuer's JWKS
/// publishes): what AWS STS checks before anything else.
pub fn verify_service_account_token(token: &str) -> Result<(), String> {
    let header: Value = {
        let part = token.split('.').next().ok_or("no header")?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())?
    };
    if header["alg"] != "RS256" {
        return Err(format!("alg is {}, not RS256", header["alg"]));
    }
    let (signed, signature) = token.rsplit_once('.').ok_or("no signature")?;
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature).map_err(|e| e.to_string())?;
    let pem = std::fs::read(Harness::get().pki.join("sa.pub")).map_err(|e| format!("read sa.pub: {e}"))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).map_err(|e| format!("sa.pub: {e}"))?;
    let (_, spki) =
        <x509_parser::x509::SubjectPublicKeyInfo as x509_parser::prelude::FromDer<_>>::from_der(&pem.contents)
            .map_err(|e| format!("sa.pub is not a public key: {e}"))?;
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        spki.subject_public_key.data.as_ref(),
    );
    key.verify(signed.as_bytes(), &signature).map_err(|_| "signature does not verify with sa.pub".to_owned())
}
