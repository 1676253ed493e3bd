//! The JWT-bearer grant (RFC 7523 §2.1) for service accounts: the account's
//! holder signs an assertion with the private key from its downloaded key
//! file, the gateway checks it against the public key registered under the
//! assertion's `kid`.
//!
//! The assertion must carry `iss` and `sub` equal to the account's client id,
//! `aud` equal to the token endpoint URL (or the issuer URL), `exp` at most
//! one hour after `iat` (as Google's token endpoint requires), and a `jti`
//! that is never accepted twice (each `jti` is remembered until its
//! assertion expires, in the store, so every node refuses a replay). The
//! algorithm is pinned per registered key: an assertion whose header names
//! another algorithm, `none`, or HMAC is refused.

use super::mint::Parent;
use super::{Form, OAuthError};
use crate::auth::signing::CLOCK_SKEW;
use crate::auth::token::MAX_TOKEN_BYTES;
use crate::auth::KeyKind;
use crate::server::AppState;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::str::FromStr;

/// Longest lifetime of an assertion (`exp` − `iat`), seconds.
pub const MAX_ASSERTION_LIFETIME_S: i64 = 3600;

/// The algorithms a service-account key may sign with.
pub const ALGORITHMS: &[&str] = &["RS256", "ES256"];

#[derive(Debug, Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    exp: i64,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    jti: Option<String>,
}

/// The decoding key for a registered public key (PEM) and algorithm.
pub fn decoding_key(alg: &str, pem: &str) -> Result<(Algorithm, DecodingKey), String> {
    let algorithm = Algorithm::from_str(alg).map_err(|_| format!("unsupported algorithm {alg}"))?;
    let key = match algorithm {
        Algorithm::RS256 => DecodingKey::from_rsa_pem(pem.as_bytes()),
        Algorithm::ES256 => DecodingKey::from_ec_pem(pem.as_bytes()),
        _ => return Err(format!("unsupported algorithm {alg}; use RS256 or ES256")),
    }
    .map_err(|e| format!("the public key is not a valid {alg} PEM key: {e}"))?;
    Ok((algorithm, key))
}

/// The SubjectPublicKeyInfo prefix of an uncompressed P-256 point
/// (id-ecPublicKey, prime256v1): what an ES256 public key must start with.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// Smallest and largest RSA modulus accepted, bits.
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;
/// Largest PEM document accepted for a public key.
pub const MAX_PUBLIC_KEY_PEM: usize = 8 * 1024;

/// DER wrapped as PEM under `label`, in 64-character lines.
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        text.push_str(&String::from_utf8_lossy(line));
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}

/// The DER inside a PEM document with exactly one block labelled `label`.
fn pem_der(label: &str, text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let text = text.trim();
    let inner = text.strip_prefix(&begin)?.strip_suffix(&end)?;
    if inner.contains("-----") {
        return None;
    }
    let body: String = inner.split_ascii_whitespace().collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// A new key pair for a service account signing with `alg` (`RS256`: RSA
/// 2048; `ES256`: P-256): the PKCS#8 private key and the
/// SubjectPublicKeyInfo public key, both PEM. The private key is never
/// stored: it goes into the key file handed out once.
pub fn generate_key_pair(alg: &str) -> Result<(zeroize::Zeroizing<String>, String), String> {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair;
    let failed = |_| format!("could not generate an {alg} key pair");
    let (private_der, public_der) = match alg {
        "RS256" => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(failed)?;
            let private = pair.as_der().map_err(failed)?;
            let public = pair.public_key().as_der().map_err(failed)?;
            (
                zeroize::Zeroizing::new(private.as_ref().to_vec()),
                public.as_ref().to_vec(),
            )
        }
        "ES256" => {
            let pair = aws_lc_rs::signature::EcdsaKeyPair::generate(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            )
            .map_err(failed)?;
            let private = pair.to_pkcs8v1().map_err(failed)?;
            let public = pair.public_key().as_der().map_err(failed)?;
            (
                zeroize::Zeroizing::new(private.as_ref().to_vec()),
                public.as_ref().to_vec(),
            )
        }
        other => return Err(format!("unsupported algorithm {other}; use RS256 or ES256")),
    };
    Ok((
        zeroize::Zeroizing::new(pem("PRIVATE KEY", &private_der)),
        pem("PUBLIC KEY", &public_der),
    ))
}

/// Check a public key registered from outside (the holder keeps the
/// private half): a SubjectPublicKeyInfo PEM (`BEGIN PUBLIC KEY`) of an
/// RSA key of 2048-8192 bits for RS256, or a P-256 key for ES256. Returns
/// the key re-encoded as stored.
pub fn parse_public_key(alg: &str, text: &str) -> Result<String, String> {
    if text.len() > MAX_PUBLIC_KEY_PEM {
        return Err(format!(
            "the public key is longer than {MAX_PUBLIC_KEY_PEM} bytes"
        ));
    }
    if text.contains("PRIVATE KEY") {
        return Err(
            "that is a private key: register the public key (BEGIN PUBLIC KEY) and keep the \
             private key to yourself"
                .into(),
        );
    }
    let der = pem_der("PUBLIC KEY", text).ok_or_else(|| {
        "the public key must be one PEM block '-----BEGIN PUBLIC KEY-----' (SubjectPublicKeyInfo)"
            .to_string()
    })?;
    match alg {
        "RS256" => {
            let key = aws_lc_rs::rsa::PublicEncryptingKey::from_der(&der)
                .map_err(|_| "the public key is not an RSA SubjectPublicKeyInfo".to_string())?;
            if !RSA_BITS.contains(&key.key_size_bits()) {
                return Err(format!(
                    "an RS256 key must have 2048 to 8192 bits, not {}",
                    key.key_size_bits()
                ));
            }
        }
        "ES256" => {
            if der.len() != P256_SPKI_PREFIX.len() + 65 || !der.starts_with(&P256_SPKI_PREFIX) {
                return Err("an ES256 key must be an uncompressed P-256 public key".into());
            }
        }
        other => return Err(format!("unsupported algorithm {other}; use RS256 or ES256")),
    }
    let stored = pem("PUBLIC KEY", &der);
    // What the grant will use must load.
    decoding_key(alg, &stored)?;
    Ok(stored)
}

/// Verify the assertion of a JWT-bearer grant and return the service
/// account it speaks for.
pub async fn exchange_assertion(
    state: &AppState,
    form: &Form,
    now: i64,
) -> Result<Parent, OAuthError> {
    let assertion = form.required("assertion")?;
    if assertion.len() > MAX_TOKEN_BYTES {
        return Err(OAuthError::invalid_grant("The assertion is too long."));
    }
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| OAuthError::invalid_grant("The assertion is not a signed JWT."))?;
    let kid = header
        .kid
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_grant("The assertion's header has no kid."))?;
    let record = state.store.service_account_key(kid).await?.ok_or_else(|| {
        OAuthError::invalid_grant("The assertion was signed by an unknown key (kid).")
    })?;
    if record.disabled_at.is_some_and(|t| t <= now) {
        return Err(OAuthError::invalid_grant(
            "The assertion was signed by a disabled key.",
        ));
    }
    let (algorithm, key) = decoding_key(&record.alg, &record.public_key).map_err(|e| {
        tracing::error!(kid = %record.kid, error = %e, "a stored service-account key is unusable");
        OAuthError::invalid_grant("The key that signed the assertion is unusable.")
    })?;
    if header.alg != algorithm {
        return Err(OAuthError::invalid_grant(format!(
            "The assertion must be signed {} with this key.",
            record.alg
        )));
    }
    let config = &state.config.oauth;
    let mut validation = jsonwebtoken::Validation::new(algorithm);
    validation.set_issuer(&[&record.account_id]);
    validation.sub = Some(record.account_id.clone());
    validation.set_audience(&[config.token_endpoint(), config.issuer.clone()]);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.validate_nbf = true;
    validation.leeway = CLOCK_SKEW.as_secs();
    let claims = jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &validation)
        .map_err(|e| OAuthError::invalid_grant(describe(&e)))?
        .claims;
    debug_assert_eq!(claims.iss, claims.sub);
    let now_s = now / 1000;
    let issued = claims.iat.unwrap_or(now_s);
    if claims.exp - issued > MAX_ASSERTION_LIFETIME_S
        || claims.exp - now_s
            > MAX_ASSERTION_LIFETIME_S + i64::try_from(CLOCK_SKEW.as_secs()).unwrap_or(0)
    {
        return Err(OAuthError::invalid_grant(
            "The assertion may live at most one hour (exp - iat).",
        ));
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or_else(|| {
            OAuthError::invalid_grant("The assertion needs a jti (1-256 characters).")
        })?;
    let account = state
        .keys
        .by_id(&record.account_id)
        .filter(|k| k.kind == KeyKind::ServiceAccount)
        .ok_or_else(|| OAuthError::invalid_grant("The service account no longer exists."))?;
    // Remember the jti until the assertion expires (plus the skew it is
    // granted): a second use is a replay.
    let seen = hex::encode(Sha256::digest(format!("{}\n{jti}", record.account_id)));
    let until = (claims.exp + i64::try_from(CLOCK_SKEW.as_secs()).unwrap_or(0)) * 1000;
    if !state.store.record_assertion(&seen, until).await? {
        return Err(OAuthError::invalid_grant(
            "The assertion was used before (its jti was replayed).",
        ));
    }
    Ok(Parent {
        subject: account.id.clone(),
        client_id: account.id.clone(),
        key: account,
        token: None,
        max_ttl_ms: None,
    })
}

/// What was wrong with a JWT, for `error_description`.
pub fn describe(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => "The JWT has expired.".into(),
        ErrorKind::ImmatureSignature => "The JWT is not valid yet (nbf).".into(),
        ErrorKind::InvalidAudience => "The JWT's audience (aud) is wrong.".into(),
        ErrorKind::InvalidIssuer => "The JWT's issuer (iss) is wrong.".into(),
        ErrorKind::InvalidSubject => "The JWT's subject (sub) is wrong.".into(),
        ErrorKind::InvalidSignature => "The JWT's signature is invalid.".into(),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "The JWT's algorithm is not the one its key signs with.".into()
        }
        ErrorKind::MissingRequiredClaim(claim) => {
            format!(
                "The JWT lacks the '{}' claim.",
                crate::error::printable(claim)
            )
        }
        _ => "The JWT is malformed.".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_pairs_load_and_round_trip() {
        for alg in ALGORITHMS {
            let (private, public) = generate_key_pair(alg).unwrap();
            assert!(private.starts_with(concat!("-----BEGIN ", "PRIVATE KEY-----\n")));
            assert!(public.starts_with("-----BEGIN PUBLIC KEY-----\n"));
            assert_eq!(parse_public_key(alg, &public).unwrap(), public);
            decoding_key(alg, &public).unwrap();
            let encoding = match *alg {
                "RS256" => jsonwebtoken::EncodingKey::from_rsa_pem(private.as_bytes()),
                _ => jsonwebtoken::EncodingKey::from_ec_pem(private.as_bytes()),
            };
            encoding.unwrap();
        }
        assert!(generate_key_pair("HS256").is_err());
    }

    #[test]
    fn public_keys_of_another_kind_or_shape_are_refused() {
        let (private, rsa) = generate_key_pair("RS256").unwrap();
        let (_, ec) = generate_key_pair("ES256").unwrap();
        assert!(parse_public_key("ES256", &rsa).is_err());
        assert!(parse_public_key("RS256", &ec).is_err());
        assert!(parse_public_key("RS256", &private).is_err());
        assert!(parse_public_key("RS256", "not a key").is_err());
        assert!(parse_public_key("HS256", &rsa).is_err());
        let doubled = format!("{rsa}{rsa}");
        assert!(parse_public_key("RS256", &doubled).is_err());
        // Whitespace around and inside the block does not matter.
        let spaced = format!("\n  {}\n", rsa.replace('\n', "\r\n"));
        assert_eq!(parse_public_key("RS256", &spaced).unwrap(), rsa);
    }
}
