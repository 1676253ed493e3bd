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
