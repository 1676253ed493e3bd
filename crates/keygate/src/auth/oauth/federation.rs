//! Token exchange of OIDC identity tokens (workload identity federation):
//! a CI job or a pod presents the identity token its platform gave it
//! (GitHub Actions, Kubernetes, a cloud) and receives a keygate token bound
//! by a trusted issuer rule.
//!
//! A rule (`keygate trust add-issuer`) names the issuer (`iss`), the
//! audience the identity token must carry, where the issuer's keys are
//! (a JWKS URL, a fixed JWKS, or discovered from
//! `<issuer>/.well-known/openid-configuration`), claim rules (claim name →
//! glob over its value, e.g. `repository = "acme/app"`, `ref =
//! "refs/heads/main"`), the lifetime of the tokens it mints (15 minutes by
//! default) and, as a key record of kind `workload`, the models, routes,
//! networks and budgets those tokens get. The first enabled rule whose
//! audience and claims all match wins.
//!
//! The identity token's algorithm is pinned to its key's: RS256/RS384/
//! RS512/PS256/ES256/ES384/EdDSA keys from the JWKS, never `none` or HMAC
//! (an HMAC token "signed" with a public key is refused).

use super::mint::Parent;
use super::OAuthError;
use crate::auth::signing::CLOCK_SKEW;
use crate::auth::token::MAX_TOKEN_BYTES;
use crate::auth::KeyKind;
use crate::server::AppState;
use crate::store::TrustedIssuerRecord;
use dashmap::DashMap;
use globset::Glob;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

/// How long fetched issuer keys are used before they are fetched again.
const KEYS_FRESH_FOR: Duration = Duration::from_secs(600);
/// An unknown `kid` refetches the keys at most this often per issuer.
const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(30);
/// Largest JWKS or discovery document accepted.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Default lifetime of tokens minted by exchange of an identity token.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);

struct Fetched {
    keys: JwkSet,
    at: Instant,
}

/// Trusted issuers' signing keys, fetched and cached.
pub struct IssuerKeys {
    http: reqwest::Client,
    fetched: DashMap<String, Fetched>,
}

impl std::fmt::Debug for IssuerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerKeys")
            .field("issuers", &self.fetched.len())
            .finish()
    }
}

impl IssuerKeys {
    /// A cache fetching with its own client (no redirects, short timeouts).
    pub fn new() -> Result<IssuerKeys, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(IssuerKeys {
            http,
            fetched: DashMap::new(),
        })
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("fetching {url}: {}", e.without_url()))?;
        if !response.status().is_success() {
            return Err(format!(
                "fetching {url}: HTTP {}",
                response.status().as_u16()
            ));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("reading {url}: {}", e.without_url()))?;
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(format!(
                "{url} answered more than {MAX_DOCUMENT_BYTES} bytes"
            ));
        }
        serde_json::from_slice(&bytes).map_err(|e| format!("{url} is not JSON: {e}"))
    }

    /// Where `rule`'s keys are, found by OIDC discovery when not configured.
    async fn jwks_uri(&self, rule: &TrustedIssuerRecord) -> Result<String, String> {
        if let Some(uri) = &rule.jwks_uri {
            return Ok(uri.clone());
        }
        let discovery = format!(
            "{}/.well-known/openid-configuration",
            rule.issuer.trim_end_matches('/')
        );
        let document = self.get_json(&discovery).await?;
        if document.get("issuer").and_then(Value::as_str) != Some(rule.issuer.as_str()) {
            return Err(format!("{discovery} names another issuer"));
        }
        document
            .get("jwks_uri")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("{discovery} has no jwks_uri"))
    }

    /// The key `kid` of `rule`'s issuer: from the fixed JWKS, the cache, or
    /// a fetch (again at most every [`REFETCH_AT_MOST_EVERY`] when the kid
    /// is unknown, so a stream of made-up kids cannot hammer the issuer).
    async fn key(
        &self,
        rule: &TrustedIssuerRecord,
        kid: Option<&str>,
    ) -> Result<Option<jsonwebtoken::jwk::Jwk>, String> {
        let find = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            // Without a kid, only a single-key set is unambiguous.
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        };
        if let Some(text) = &rule.jwks {
            let set: JwkSet =
                serde_json::from_str(text).map_err(|e| format!("the configured JWKS: {e}"))?;
            return Ok(find(&set));
        }
        let cache_key = rule.issuer.clone();
        if let Some(entry) = self.fetched.get(&cache_key) {
            let found = find(&entry.keys);
            let age = entry.at.elapsed();
            if found.is_some() && age < KEYS_FRESH_FOR {
                return Ok(found);
            }
            if found.is_none() && age < REFETCH_AT_MOST_EVERY {
                return Ok(None);
            }
        }
        let uri = self.jwks_uri(rule).await?;
        let document = self.get_json(&uri).await?;
        let keys: JwkSet =
            serde_json::from_value(document).map_err(|e| format!("{uri} is not a JWKS: {e}"))?;
        let found = find(&keys);
        self.fetched.insert(
            cache_key,
            Fetched {
                keys,
                at: Instant::now(),
            },
        );
        Ok(found)
    }
}

/// The algorithms an identity token may be signed with, by key family.
pub(crate) fn algorithm_allowed(alg: Algorithm, jwk: &jsonwebtoken::jwk::Jwk) -> bool {
    let family_ok = matches!(
        (&jwk.algorithm, alg.family()),
        (AlgorithmParameters::RSA(_), AlgorithmFamily::Rsa)
            | (AlgorithmParameters::EllipticCurve(_), AlgorithmFamily::Ec)
            | (AlgorithmParameters::OctetKeyPair(_), AlgorithmFamily::Ed)
    );
    // A JWK that names its algorithm pins it.
    let pinned = jwk
        .common
        .key_algorithm
        .is_none_or(|named| named.to_string() == format!("{alg:?}"));
    family_ok && pinned
}

/// Whether a claim's value matches a rule's glob. Strings compare as they
/// are; numbers and booleans by their JSON text; arrays (`aud`) when any
/// element matches.
pub(crate) fn claim_matches(value: Option<&Value>, pattern: &str) -> bool {
    let Ok(glob) = Glob::new(pattern) else {
        return false;
    };
    let matcher = glob.compile_matcher();
    let one = |v: &Value| match v {
        Value::String(s) => matcher.is_match(s),
        Value::Number(_) | Value::Bool(_) => matcher.is_match(v.to_string()),
        _ => false,
    };
    match value {
        Some(Value::Array(items)) => items.iter().any(one),
        Some(v) => one(v),
        None => false,
    }
}

/// Verify an identity token against the trusted issuers' rules and return
/// the rule's key record as the parent of the token to mint.
pub async fn exchange_identity(
    state: &AppState,
    subject_token: &str,
    now: i64,
) -> Result<Parent, OAuthError> {
    if subject_token.len() > MAX_TOKEN_BYTES {
        return Err(OAuthError::invalid_grant("The subject token is too long."));
    }
    let header = jsonwebtoken::decode_header(subject_token)
        .map_err(|_| OAuthError::invalid_grant("The subject token is not a signed JWT."))?;
    // The issuer is read before verification only to pick the rules (and
    // keys) to verify with.
    let unverified: Value = jsonwebtoken::dangerous::insecure_decode_claims(subject_token)
        .map_err(|_| OAuthError::invalid_grant("The subject token's claims are malformed."))?;
    let issuer = unverified
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| OAuthError::invalid_grant("The subject token has no issuer (iss)."))?;
    let rules: Vec<TrustedIssuerRecord> = state
        .store
        .trusted_issuers()
        .await?
        .into_iter()
        .filter(|r| r.issuer == issuer && r.disabled_at.is_none_or(|t| t > now))
        .collect();
    let Some(first) = rules.first() else {
        return Err(OAuthError::invalid_grant(format!(
            "The issuer '{}' is not trusted.",
            crate::error::printable(issuer)
        )));
    };
    if matches!(header.alg.family(), AlgorithmFamily::Hmac) {
        return Err(OAuthError::invalid_grant(
            "Identity tokens must be signed with the issuer's private key, not HMAC.",
        ));
    }
    let jwk = state
        .federation
        .key(first, header.kid.as_deref())
        .await
        .map_err(|e| {
            tracing::warn!(issuer = %issuer, error = %e, "could not load a trusted issuer's keys");
            OAuthError::unavailable(
                "The issuer's signing keys could not be loaded; try again shortly.",
            )
        })?
        .ok_or_else(|| {
            OAuthError::invalid_grant("The subject token was signed by an unknown key (kid).")
        })?;
    if !algorithm_allowed(header.alg, &jwk) {
        return Err(OAuthError::invalid_grant(
            "The subject token's algorithm does not match its key.",
        ));
    }
    let key = DecodingKey::from_jwk(&jwk)
        .map_err(|_| OAuthError::invalid_grant("The issuer's key is unusable."))?;
    let mut last_error = OAuthError::invalid_grant("No trust rule matches the subject token.");
    for rule in &rules {
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.set_issuer(&[&rule.issuer]);
        validation.set_audience(&[&rule.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = CLOCK_SKEW.as_secs();
        let claims = match jsonwebtoken::decode::<Value>(subject_token, &key, &validation) {
            Ok(data) => data.claims,
            Err(e) => {
                last_error = OAuthError::invalid_grant(super::service_account::describe(&e));
                use jsonwebtoken::errors::ErrorKind;
                // Only the audience differs between rules of one issuer.
                if matches!(e.kind(), ErrorKind::InvalidAudience) {
                    continue;
                }
                return Err(last_error);
            }
        };
        if let Some((name, _)) = rule
            .claims
            .iter()
            .find(|(name, pattern)| !claim_matches(claims.get(name.as_str()), pattern))
        {
            last_error = OAuthError::invalid_grant(format!(
                "The subject token's '{}' claim does not match the trust rule.",
                crate::error::printable(name)
            ));
            continue;
        }
        let Some(record) = state
            .keys
            .by_id(&rule.key_id)
            .filter(|k| k.kind == KeyKind::Workload)
        else {
            continue;
        };
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .chars()
            .take(256)
            .collect();
        return Ok(Parent {
            subject,
            client_id: rule.key_id.clone(),
            key: record,
            token: None,
            max_ttl_ms: Some(rule.token_ttl_ms),
        });
    }
    Err(last_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claims_match_globs_strings_numbers_and_arrays() {
        assert!(claim_matches(Some(&json!("acme/app")), "acme/app"));
        assert!(claim_matches(
            Some(&json!("refs/heads/main")),
            "refs/heads/*"
        ));
        assert!(!claim_matches(
            Some(&json!("refs/heads/dev")),
            "refs/heads/main"
        ));
        assert!(claim_matches(Some(&json!(42)), "42"));
        assert!(claim_matches(Some(&json!(["a", "keygate"])), "keygate"));
        assert!(!claim_matches(None, "*"));
        assert!(!claim_matches(Some(&json!({"x": 1})), "*"));
    }
}
