//! `irsa-webhook oidc` against keys made by openssl (and rcgen): the kid is the API server's (checked against an
//! openssl pipeline), every encoding of a key gives the same JWK, tokens signed with the private key verify with the
//! published JWK, and bad issuers are refused with one line.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use irsa_webhook::oidc::{self, Curve, PublicKey};
use serde_json::{json, Value};

mod support;
use support::run_binary;

fn success(args: &[&str]) -> String {
    let output = run_binary(args);
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8")
}

/// Runs `sh -c script` in `dir` (openssl pipelines), returning stdout.
fn sh(dir: &Path, script: &str) -> Vec<u8> {
    let output = Command::new("sh").arg("-c").arg(script).current_dir(dir).output().expect("sh");
    assert!(output.status.success(), "{script}: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// A directory of one key in every encoding openssl writes.
struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn rsa() -> Self {
        let keys = Self { dir: tempfile::tempdir().expect("tempdir") };
        sh(
            keys.path(),
            "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out pkcs8.key 2>/dev/null && \
             openssl pkey -in pkcs8.key -traditional -out pkcs1.key && \
             openssl pkey -in pkcs8.key -pubout -out pkix.pub && \
             openssl rsa -in pkcs8.key -RSAPublicKey_out -out pkcs1.pub 2>/dev/null && \
             openssl req -new -x509 -key pkcs8.key -subj /CN=sa -days 1 -out cert.pem 2>/dev/null",
        );
        keys
    }

    fn ec(curve: &str) -> Self {
        let keys = Self { dir: tempfile::tempdir().expect("tempdir") };
        sh(
            keys.path(),
            &format!(
                "openssl ecparam -name {curve} -genkey -out sec1.key && \
                 openssl pkcs8 -topk8 -nocrypt -in sec1.key -out pkcs8.key && \
                 openssl ec -in sec1.key -pubout -out pkix.pub 2>/dev/null"
            ),
        );
        keys
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.file(name).display().to_string()
    }

    /// The kid as the API server computes it, by openssl: SHA-256 of the PKIX DER, base64url without padding.
    fn openssl_kid(&self) -> String {
        URL_SAFE_NO_PAD
            .encode(sh(self.path(), "openssl pkey -pubin -in pkix.pub -outform DER | openssl dgst -sha256 -binary"))
    }

    fn jwks(&self, files: &[&str]) -> Value {
        let mut args = vec!["oidc".to_owned(), "jwks".to_owned()];
        for file in files {
            args.extend(["--key".to_owned(), self.arg(file)]);
        }
        serde_json::from_str(&success(&args.iter().map(String::as_str).collect::<Vec<_>>())).expect("json")
    }
}

fn decode(field: &Value) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(field.as_str().expect("a string")).expect("base64url without padding")
}

#[test]
fn rsa_kid_is_the_api_servers_and_every_encoding_gives_the_same_jwk() {
    let keys = Keys::rsa();
    let expected = keys.jwks(&["pkix.pub"])["keys"][0].clone();
    assert_eq!(expected["kid"], keys.openssl_kid());
    for file in ["pkcs1.pub", "pkcs1.key", "pkcs8.key", "cert.pem"] {
        assert_eq!(keys.jwks(&[file])["keys"][0], expected, "{file}");
    }
    // Field for field what the API server serves for an RSA key.
    let fields: Vec<&str> = expected.as_object().expect("object").keys().map(String::as_str).collect();
    assert_eq!(fields, ["use", "kty", "kid", "alg", "n", "e"]);
    assert_eq!((&expected["use"], &expected["kty"], &expected["alg"]), (&json!("sig"), &json!("RSA"), &json!("RS256")));
    // n: the modulus, big-endian, no leading zero byte; e: 65537 as AQAB.
    let modulus =
        String::from_utf8(sh(keys.path(), "openssl pkey -pubin -in pkix.pub -noout -text_pub")).expect("utf-8");
    let n = decode(&expected["n"]);
    assert_eq!(n.len(), 256);
    assert!(n[0] >= 0x80);
    let hex: String = modulus
        .split("Modulus:")
        .nth(1)
        .and_then(|m| m.split("Exponent").next())
        .expect("openssl -text_pub output")
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect();
    let hex = hex.trim_start_matches("00");
    assert_eq!(hex, n.iter().map(|b| format!("{b:02x}")).collect::<String>());
    assert_eq!(expected["e"], "AQAB");
}

#[test]
fn ec_keys_on_every_curve() {
    for (curve, crv, alg, size) in
        [("prime256v1", "P-256", "ES256", 32), ("secp384r1", "P-384", "ES384", 48), ("secp521r1", "P-521", "ES512", 66)]
    {
        let keys = Keys::ec(curve);
        let expected = keys.jwks(&["pkix.pub"])["keys"][0].clone();
        assert_eq!(expected["kid"], keys.openssl_kid(), "{curve}");
        for file in ["sec1.key", "pkcs8.key"] {
            assert_eq!(keys.jwks(&[file])["keys"][0], expected, "{curve} {file}");
        }
        let fields: Vec<&str> = expected.as_object().expect("object").keys().map(String::as_str).collect();
        assert_eq!(fields, ["use", "kty", "kid", "crv", "alg", "x", "y"]);
        assert_eq!((&expected["kty"], &expected["crv"], &expected["alg"]), (&json!("EC"), &json!(crv), &json!(alg)));
        // x and y are the point's coordinates, as in the tail of the PKIX DER (04 || x || y).
        let der = sh(keys.path(), "openssl pkey -pubin -in pkix.pub -outform DER");
        let point = &der[der.len() - 2 * size..];
        assert_eq!([decode(&expected["x"]), decode(&expected["y"])].concat(), point, "{curve}");
    }
}

/// JWK coordinates are fixed-length: a coordinate with leading zero bytes keeps them (1 key in 128 has one).
#[test]
fn ec_coordinates_keep_their_leading_zeros() {
    let mut seen_leading_zero = false;
    for _ in 0..4000 {
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("keygen");
        let pem = key_pair.public_key_pem();
        let keys = oidc::parse_pem_keys(pem.as_bytes()).expect("parse");
        let PublicKey::Ec { curve: Curve::P256, x, y } = &keys[0] else { panic!("not P-256: {keys:?}") };
        assert_eq!((x.len(), y.len()), (32, 32));
        // rcgen writes the same canonical PKIX DER as Go, so the kid is its hash.
        assert_eq!(keys[0].pkix_der(), rcgen::PublicKeyData::subject_public_key_info(&key_pair));
        let jwk = serde_json::to_value(keys[0].to_jwk()).expect("json");
        assert_eq!((decode(&jwk["x"]).len(), decode(&jwk["y"]).len()), (32, 32));
        if x[0] == 0 || y[0] == 0 {
            seen_leading_zero = true;
            break;
        }
    }
    assert!(seen_leading_zero, "no coordinate with a leading zero in 4000 keys");
}

#[test]
fn several_files_several_keys_one_jwks_for_rotation() {
    let (old, new) = (Keys::rsa(), Keys::ec("prime256v1"));
    let both = tempfile::tempdir().expect("tempdir");
    let bundle = both.path().join("bundle.pem");
    // A file may hold several keys, and non-key blocks (EC PARAMETERS) are skipped, as the API server does.
    let text = [std::fs::read(old.file("pkix.pub")).expect("read"), std::fs::read(new.file("sec1.key")).expect("read")]
        .concat();
    std::fs::write(&bundle, text).expect("write");
    let jwks: Value =
        serde_json::from_str(&success(&["oidc", "jwks", "--key", &bundle.display().to_string()])).expect("json");
    let kids: Vec<&Value> = jwks["keys"].as_array().expect("keys").iter().map(|k| &k["kid"]).collect();
    assert_eq!(kids, [&json!(old.openssl_kid()), &json!(new.openssl_kid())]);
    // The same key twice (public and private file) is listed once.
    let jwks = old.jwks(&["pkix.pub", "pkcs1.key"]);
    assert_eq!(jwks["keys"].as_array().expect("keys").len(), 1);
}

fn jwt_part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("json"))
}

/// Finds the JWK by the token's kid and checks the signature with ring, as STS would with the published JWKS.
fn verify(token: &str, jwks: &Value) -> Result<(), String> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("not a JWS".into());
    };
    let message = format!("{header}.{payload}");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let jwk = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == header["kid"]))
        .ok_or("no key with the token's kid")?;
    if jwk["alg"] != header["alg"] {
        return Err("alg mismatch".into());
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|e| e.to_string())?;
    use ring::signature as sig;
    let result = match jwk["kty"].as_str() {
        Some("RSA") => sig::RsaPublicKeyComponents { n: decode(&jwk["n"]), e: decode(&jwk["e"]) }.verify(
            &sig::RSA_PKCS1_2048_8192_SHA256,
            message.as_bytes(),
            &signature,
        ),
        Some("EC") => {
            let algorithm = match jwk["crv"].as_str() {
                Some("P-256") => &sig::ECDSA_P256_SHA256_FIXED,
                Some("P-384") => &sig::ECDSA_P384_SHA384_FIXED,
                _ => return Err("curve".into()),
            };
            let point = [vec![4], decode(&jwk["x"]), decode(&jwk["y"])].concat();
            sig::UnparsedPublicKey::new(algorithm, point).verify(message.as_bytes(), &signature)
        }
        _ => return Err("kty".into()),
    };
    result.map_err(|_| "bad signature".into())
}

#[test]
fn tokens_signed_with_the_private_key_verify_against_the_published_jwks() {
    use ring::rand::SystemRandom;
    use ring::signature as sig;
    let rng = SystemRandom::new();
    let rsa = Keys::rsa();
    let p256 = Keys::ec("prime256v1");
    let p384 = Keys::ec("secp384r1");
    let jwks = serde_json::from_str::<Value>(&success(&[
        "oidc",
        "jwks",
        "--key",
        &rsa.arg("pkix.pub"),
        &p256.arg("pkix.pub"),
        "--key",
        &p384.arg("pkix.pub"),
    ]))
    .expect("json");
    let claims = json!({"iss": "https://oidc.example.com", "sub": "system:serviceaccount:default:app", "aud": ["sts.amazonaws.com"]});

    let pem_der = |keys: &Keys| {
        let text = std::fs::read_to_string(keys.file("pkcs8.key")).expect("read");
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD.decode(body).expect("pem body")
    };
    let signing_input =
        |alg: &str, kid: String| format!("{}.{}", jwt_part(&json!({"alg": alg, "kid": kid})), jwt_part(&claims));

    let rsa_key = sig::RsaKeyPair::from_pkcs8(&pem_der(&rsa)).expect("rsa pkcs8");
    let input = signing_input("RS256", rsa.openssl_kid());
    let mut signature = vec![0; rsa_key.public().modulus_len()];
    rsa_key.sign(&sig::RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut signature).expect("sign");
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&signature));
    assert_eq!(verify(&token, &jwks), Ok(()));

    for (keys, alg, signing) in [
        (&p256, "ES256", &sig::ECDSA_P256_SHA256_FIXED_SIGNING),
        (&p384, "ES384", &sig::ECDSA_P384_SHA384_FIXED_SIGNING),
    ] {
        let key = sig::EcdsaKeyPair::from_pkcs8(signing, &pem_der(keys), &rng).expect("ec pkcs8");
        let input = signing_input(alg, keys.openssl_kid());
        let signature = key.sign(&rng, input.as_bytes()).expect("sign");
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()));
        assert_eq!(verify(&token, &jwks), Ok(()), "{alg}");
        // A tampered token does not.
        let tampered = token.replacen(&jwt_part(&claims), &jwt_part(&json!({"sub": "someone:else"})), 1);
        assert!(verify(&tampered, &jwks).is_err());
    }
}

#[test]
fn discovery_document_matches_the_api_servers_fields() {
    let keys = Keys::ec("secp384r1");
    let rsa = Keys::rsa();
    let text = success(&[
        "oidc",
        "discovery",
        "--issuer",
        "https://oidc.example.com/cluster",
        "--key",
        &keys.arg("pkix.pub"),
        &rsa.arg("pkcs1.key"),
    ]);
    let document: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        document,
        json!({
            "issuer": "https://oidc.example.com/cluster",
            "jwks_uri": "https://oidc.example.com/cluster/openid/v1/jwks",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES384", "RS256"],
        })
    );
    let fields: Vec<&str> = document.as_object().expect("object").keys().map(String::as_str).collect();
    assert_eq!(
        fields,
        [
            "issuer",
            "jwks_uri",
            "response_types_supported",
            "subject_types_supported",
            "id_token_signing_alg_values_supported"
        ]
    );
    let custom = success(&["oidc", "discovery", "--issuer", "https://a.example", "--jwks-uri", "https://b.example/k"]);
    let custom: Value = serde_json::from_str(&custom).expect("json");
    assert_eq!(
        (&custom["jwks_uri"], &custom["id_token_signing_alg_values_supported"]),
        (&json!("https://b.example/k"), &json!(["RS256"]))
    );
}

#[test]
fn publish_writes_the_tree_and_prints_the_next_steps() {
    let keys = Keys::rsa();
    let out = tempfile::tempdir().expect("tempdir");
    let dir = out.path().join("site");
    let issuer = "https://irsa-bucket.s3.eu-west-1.amazonaws.com/prod";
    let stdout = success(&[
        "oidc",
        "publish",
        "--issuer",
        issuer,
        "--out",
        &dir.display().to_string(),
        "--key",
        &keys.arg("pkix.pub"),
        "--key",
        &keys.arg("pkcs8.key"),
    ]);
    let read = |path: &str| -> Value {
        serde_json::from_slice(&std::fs::read(dir.join(path)).expect("published file")).expect("json")
    };
    let discovery = read(".well-known/openid-configuration");
    assert_eq!(discovery["issuer"], issuer);
    assert_eq!(discovery["jwks_uri"], format!("{issuer}/openid/v1/jwks"));
    let jwks = read("openid/v1/jwks");
    assert_eq!(jwks, keys.jwks(&["pkix.pub"]));
    for expected in [
        format!("aws s3 cp --recursive {} s3://irsa-bucket/prod/ --content-type application/json", dir.display()),
        format!("--service-account-issuer={issuer}\n"),
        format!("--service-account-jwks-uri={issuer}/openid/v1/jwks\n"),
        format!("--service-account-key-file={}\n", keys.arg("pkix.pub")),
        format!("--service-account-signing-key-file={}\n", keys.arg("pkcs8.key")),
        format!("aws iam create-open-id-connect-provider --url {issuer} --client-id-list sts.amazonaws.com\n"),
    ] {
        assert!(stdout.contains(&expected), "missing {expected:?} in\n{stdout}");
    }
}

#[test]
fn refusals_are_one_line_and_non_zero() {
    let keys = Keys::rsa();
    let out = tempfile::tempdir().expect("tempdir");
    let out = out.path().display().to_string();
    let not_a_key = keys.path().join("note.txt");
    std::fs::write(&not_a_key, "hello").expect("write");
    let not_a_key = not_a_key.display().to_string();
    for (args, reason) in [
        (vec!["oidc", "discovery", "--issuer", "http://oidc.example.com"], "must start with https://"),
        (vec!["oidc", "discovery", "--issuer", "https://oidc.example.com/"], "must not end with '/'"),
        (vec!["oidc", "discovery", "--issuer", "https://oidc.example.com/x?y"], "must not have a query"),
        (vec!["oidc", "discovery", "--issuer", "https://oidc.example.com#top"], "must not have a fragment"),
        (vec!["oidc", "discovery", "--issuer", "https://a.example", "--jwks-uri", "http://a.example/k"], "https://"),
        (vec!["oidc", "publish", "--issuer", "https://a.example/", "--out", &out, "--key", "x"], "must not end"),
        (vec!["oidc", "jwks", "--key", "/nonexistent/sa.pub"], "cannot read /nonexistent/sa.pub"),
        (vec!["oidc", "jwks", "--key", &not_a_key], "no PEM block"),
    ] {
        let output = run_binary(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("irsa-webhook: ") && stderr.contains(reason), "{args:?}: {stderr}");
    }
    // Publishing needs a source of keys.
    assert!(!run_binary(&["oidc", "publish", "--issuer", "https://a.example", "--out", &out]).status.success());
}

/// `publish --from-cluster` needs no cluster to fail well: an API server that is not there is one line.
#[test]
fn from_cluster_with_an_unreachable_api_server_fails_in_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}\n\
         users:\n- name: u\n  user: {token: x}\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n",
    )
    .expect("write");
    let output = run_binary(&[
        "oidc",
        "publish",
        "--issuer",
        "https://oidc.example.com",
        "--out",
        &dir.path().join("out").display().to_string(),
        "--from-cluster",
        "--kubeconfig",
        &kubeconfig.display().to_string(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot read the OIDC documents from the API server"), "{stderr}");
}
