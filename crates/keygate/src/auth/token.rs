//! keygate access tokens: JWTs in the RFC 9068 profile (`typ: at+jwt`),
//! signed ES256 with the keys of [`super::signing`], minted under a key
//! record (an OAuth client, a service account, a trusted issuer's rule or a
//! plain key) and never allowed more than that record.
//!
//! # Claims
//!
//! | claim | meaning |
//! |---|---|
//! | `iss` | the gateway's issuer URL (`KEYGATE_OAUTH_ISSUER`) |
//! | `sub` | who the token speaks for: the client, service account, workload identity (`repo:org/app:ref:…`) or key |
//! | `aud` | the gateway's issuer URL: tokens are for this gateway only |
//! | `exp`, `iat`, `nbf` | Unix seconds; `exp` and `nbf` are checked with [`CLOCK_SKEW`] of tolerance |
//! | `jti` | unique id (`tok_…`): what revocation and the ledger name |
//! | `client_id` | the key record that minted it |
//! | `scope` | route families (`chat embeddings messages generate models`) and `model:<glob>` entries it is narrowed to; absent: the record's own |
//! | `kg_key` | the key record whose policy and budgets govern every request |
//! | `kg_budget` | a budget of the token's own, nanodollars, over its lifetime |
//! | `kg_parents` | `jti`s of the tokens it was minted from: revoking one revokes it |
//!
//! # Verification
//!
//! In memory, on every node: the header must say `ES256` and `at+jwt` and
//! name a published `kid`; signature, `iss` and `aud` are checked by
//! `jsonwebtoken` with the algorithm pinned; `exp` and `nbf` against the
//! gateway clock. A verified token is remembered by the SHA-256 of its text
//! until it expires, so a token used again costs a hash and a map lookup,
//! not a signature check. Revocation is checked on every use: by `jti` (the
//! set every node keeps from the store) and through the key record (looked
//! up on every request, so revoking, suspending or narrowing the key holds
//! for its tokens at once).

use super::signing::{SigningKeys, ALGORITHM, CLOCK_SKEW};
use super::ModelAllowlist;
use crate::config::oauth::OAuthConfig;
use crate::error::ApiError;
use crate::policy::limits::{Budget, Limits, Nanos, Period};
use crate::policy::Scopes;
use crate::store::RevokedToken;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The JWT `typ` of access tokens (RFC 9068 §2.1).
pub const TOKEN_TYPE: &str = "at+jwt";
/// Longest token text accepted.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Verified tokens remembered at most.
const MAX_REMEMBERED: usize = 100_000;
/// Longest chain of tokens minted from tokens.
pub const MAX_CHAIN: usize = 4;
/// Longest `scope` accepted.
const MAX_SCOPE_ENTRIES: usize = 64;

/// The claims of a keygate access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Subject.
    pub sub: String,
    /// Audience.
    pub aud: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Not before, Unix seconds.
    pub nbf: i64,
    /// Token id.
    pub jti: String,
    /// The key record that minted it.
    pub client_id: String,
    /// Route families and `model:` entries (space-separated); empty: the
    /// key record's own.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// The key record governing its requests.
    pub kg_key: String,
    /// Its own lifetime budget, nanodollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kg_budget: Option<Nanos>,
    /// The tokens it was minted from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kg_parents: Vec<String>,
}

/// A token's `scope`: route families and model patterns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenScope {
    /// Route families (empty: the key record's).
    pub routes: Scopes,
    /// Model globs (empty: the key record's).
    pub models: Vec<String>,
}

impl TokenScope {
    /// Parse a space-separated `scope`: route family names and
    /// `model:<glob>` entries. Anything else is an error naming it.
    pub fn parse(text: &str) -> Result<TokenScope, String> {
        let mut routes = Vec::new();
        let mut models = Vec::new();
        let words: Vec<&str> = text.split(' ').filter(|w| !w.is_empty()).collect();
        if words.len() > MAX_SCOPE_ENTRIES {
            return Err(format!("at most {MAX_SCOPE_ENTRIES} scope entries"));
        }
        for word in words {
            if let Some(model) = word.strip_prefix("model:") {
                if model.is_empty() || model.len() > 256 || model.chars().any(char::is_control) {
                    return Err("a model: scope needs a model name or glob".into());
                }
                if !models.iter().any(|m| m == model) {
                    models.push(model.to_string());
                }
            } else {
                routes.push(word.to_string());
            }
        }
        let routes =
            Scopes::parse(&routes).map_err(|e| format!("{e}; narrow models with model:<name>"))?;
        ModelAllowlist::new(models.clone())?;
        Ok(TokenScope { routes, models })
    }

    /// The `scope` text.
    pub fn to_text(&self) -> String {
        let mut words: Vec<String> = self.routes.names().iter().map(|n| n.to_string()).collect();
        words.extend(self.models.iter().map(|m| format!("model:{m}")));
        words.join(" ")
    }
}

/// A verified token, as requests use it.
#[derive(Debug)]
pub struct TokenGrant {
    /// Its claims.
    pub claims: AccessClaims,
    /// Its scope, parsed.
    pub scope: TokenScope,
    /// Its model patterns compiled (`None`: the key record's).
    pub models: Option<ModelAllowlist>,
    /// Its own limits (a lifetime budget), if any.
    pub limits: Option<Limits>,
}

impl TokenGrant {
    /// Expiry, Unix ms.
    pub fn expires_at_ms(&self) -> i64 {
        self.claims.exp.saturating_mul(1000)
    }
    /// Issue time, Unix ms.
    pub fn issued_at_ms(&self) -> i64 {
        self.claims.iat.saturating_mul(1000)
    }
    /// Whether the token's own model narrowing lets `requested` (routed to
    /// `canonical`) through; the key record's allowlist applies as well.
    pub fn allows_model(&self, requested: &str, canonical: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|m| m.allows(requested, canonical))
    }

    fn from_claims(claims: AccessClaims) -> Result<TokenGrant, TokenError> {
        let scope = TokenScope::parse(&claims.scope).map_err(|_| TokenError::Malformed)?;
        let models = if scope.models.is_empty() {
            None
        } else {
            Some(ModelAllowlist::new(scope.models.clone()).map_err(|_| TokenError::Malformed)?)
        };
        let limits = claims.kg_budget.map(|limit| Limits {
            budget: Some(Budget {
                limit,
                period: Period::Total,
                // A token's budget is small and short-lived: its owner
                // learns of it from the 402, not from alerts.
                alert_thresholds: Some(Vec::new()),
            }),
            ..Limits::default()
        });
        Ok(TokenGrant {
            claims,
            scope,
            models,
            limits,
        })
    }
}

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, too long, or claims missing or of the wrong shape.
    #[error("the access token is malformed")]
    Malformed,
    /// Its header names an algorithm or type keygate does not issue.
    #[error("the access token's header is not ES256 at+jwt")]
    WrongHeader,
    /// Its `kid` is not a published signing key.
    #[error("the access token was signed by an unknown key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the access token's signature is invalid")]
    BadSignature,
    /// `iss` is not this gateway.
    #[error("the access token was issued by someone else")]
    WrongIssuer,
    /// `aud` is not this gateway.
    #[error("the access token is meant for another audience")]
    WrongAudience,
    /// Past `exp`.
    #[error("the access token has expired")]
    Expired,
    /// Before `nbf`.
    #[error("the access token is not valid yet")]
    NotYetValid,
    /// Revoked (itself or a token it was minted from).
    #[error("the access token has been revoked")]
    Revoked,
}

impl TokenError {
    /// The 401 a data-plane client sees.
    pub fn to_api_error(self) -> ApiError {
        let code = match self {
            TokenError::Expired => "expired_token",
            TokenError::Revoked => "revoked_token",
            _ => "invalid_token",
        };
        ApiError::unauthorized(code, format!("{self}."))
    }
}

/// Does `presented` look like a JWT rather than a keygate key? (Keys start
/// with `kg_`; a JWT is three base64url parts and starts with `eyJ`, the
/// encoding of `{"`.)
pub fn looks_like_jwt(presented: &str) -> bool {
    presented.starts_with("eyJ") && presented.bytes().filter(|b| *b == b'.').count() == 2
}

/// Issuing and verifying tokens; one per gateway.
pub struct Tokens {
    signing: Arc<SigningKeys>,
    config: OAuthConfig,
    /// Revoked `jti`s not yet expired, with their expiry (Unix ms).
    revoked: DashMap<String, i64>,
    /// Verified tokens by the SHA-256 of their text.
    verified: DashMap<[u8; 32], Arc<TokenGrant>>,
    /// Verifications answered from `verified`, and those that were not.
    cache_hits: std::sync::atomic::AtomicU64,
    cache_misses: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("issuer", &self.config.issuer)
            .field("revoked", &self.revoked.len())
            .field("remembered", &self.verified.len())
            .finish()
    }
}

impl Tokens {
    /// Tokens signed by `signing`, issued as `config` says.
    pub fn new(signing: Arc<SigningKeys>, config: OAuthConfig) -> Tokens {
        Tokens {
            signing,
            config,
            revoked: DashMap::new(),
            verified: DashMap::new(),
            cache_hits: std::sync::atomic::AtomicU64::new(0),
            cache_misses: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The issuer settings.
    pub fn config(&self) -> &OAuthConfig {
        &self.config
    }

    /// The signing keys.
    pub fn signing(&self) -> &Arc<SigningKeys> {
        &self.signing
    }

    /// A fresh token id.
    pub fn new_jti() -> String {
        format!("tok_{}", uuid::Uuid::now_v7().simple())
    }

    /// Sign `claims` with the current key.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, ApiError> {
        let ring = self.signing.ring();
        let Some((kid, key)) = ring.signer() else {
            return Err(ApiError::unavailable(
                "The token issuer has no signing key yet; try again shortly.",
            ));
        };
        let mut header = jsonwebtoken::Header::new(ALGORITHM);
        header.typ = Some(TOKEN_TYPE.into());
        header.kid = Some(kid.to_string());
        jsonwebtoken::encode(&header, claims, key).map_err(|e| {
            tracing::error!(error = %e, "token signing failed");
            ApiError::unavailable("The token issuer could not sign a token; try again shortly.")
        })
    }

    /// Verify `token` at `now_ms`: signature, header, issuer, audience,
    /// times and revocation. The key record it names is the caller's to
    /// check.
    pub fn verify(&self, token: &str, now_ms: i64) -> Result<Arc<TokenGrant>, TokenError> {
        if token.len() > MAX_TOKEN_BYTES || !looks_like_jwt(token) {
            return Err(TokenError::Malformed);
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let grant = match self.verified.get(&digest) {
            Some(grant) => {
                self.cache_hits.fetch_add(1, Ordering::Relaxed);
                Arc::clone(grant.value())
            }
            None => {
                self.cache_misses.fetch_add(1, Ordering::Relaxed);
                let grant = Arc::new(self.verify_signed(token)?);
                self.remember(digest, &grant, now_ms);
                grant
            }
        };
        self.check_live(&grant, now_ms)?;
        Ok(grant)
    }

    /// Verifications answered from the verified-token cache, and those
    /// that checked a signature (for the metrics).
    pub fn cache_stats(&self) -> (u64, u64) {
        (
            self.cache_hits.load(Ordering::Relaxed),
            self.cache_misses.load(Ordering::Relaxed),
        )
    }

    /// Times and revocation of an already verified token.
    pub fn check_live(&self, grant: &TokenGrant, now_ms: i64) -> Result<(), TokenError> {
        let skew = i64::try_from(CLOCK_SKEW.as_millis()).unwrap_or(0);
        if grant.expires_at_ms().saturating_add(skew) <= now_ms {
            return Err(TokenError::Expired);
        }
        if grant.claims.nbf.saturating_mul(1000) > now_ms.saturating_add(skew) {
            return Err(TokenError::NotYetValid);
        }
        if self.is_revoked(&grant.claims) {
            return Err(TokenError::Revoked);
        }
        Ok(())
    }

    /// Whether the token, or one it was minted from, is revoked.
    pub fn is_revoked(&self, claims: &AccessClaims) -> bool {
        self.revoked.contains_key(&claims.jti)
            || claims
                .kg_parents
                .iter()
                .any(|p| self.revoked.contains_key(p))
    }

    fn verify_signed(&self, token: &str) -> Result<TokenGrant, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let typ_ok = header.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case(TOKEN_TYPE) || t.eq_ignore_ascii_case("application/at+jwt")
        });
        if header.alg != ALGORITHM || !typ_ok {
            return Err(TokenError::WrongHeader);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let ring = self.signing.ring();
        let key = ring.verifier(&kid).ok_or(TokenError::UnknownKey)?;
        let mut validation = jsonwebtoken::Validation::new(ALGORITHM);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.issuer]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        // Times are checked against the gateway's clock in `check_live`,
        // on every use, not only the first.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let data = jsonwebtoken::decode::<AccessClaims>(token, key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                ErrorKind::InvalidAudience => TokenError::WrongAudience,
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidAlgorithm => TokenError::WrongHeader,
                _ => TokenError::Malformed,
            }
        })?;
        if data.claims.kg_parents.len() > MAX_CHAIN {
            return Err(TokenError::Malformed);
        }
        TokenGrant::from_claims(data.claims)
    }

    fn remember(&self, digest: [u8; 32], grant: &Arc<TokenGrant>, now_ms: i64) {
        if self.verified.len() >= MAX_REMEMBERED {
            self.verified.retain(|_, g| g.expires_at_ms() > now_ms);
            if self.verified.len() >= MAX_REMEMBERED {
                // Many live tokens: verifying again is correct, only slower.
                self.verified.clear();
            }
        }
        self.verified.insert(digest, Arc::clone(grant));
    }

    /// Take revocations read from the store (this node's or others').
    pub fn apply_revocations(&self, rows: &[RevokedToken], now_ms: i64) {
        for row in rows {
            self.revoked.insert(row.jti.clone(), row.expires_at);
        }
        if !rows.is_empty() {
            // Expired entries are useless: the token fails on `exp` anyway.
            let skew = i64::try_from(CLOCK_SKEW.as_millis()).unwrap_or(0);
            self.revoked
                .retain(|_, exp| exp.saturating_add(skew) > now_ms);
        }
    }

    /// Revoke on this node at once (the store row reaches the others).
    pub fn revoke_locally(&self, jti: &str, expires_at_ms: i64) {
        self.revoked.insert(jti.to_string(), expires_at_ms);
    }

    /// The JWKS document.
    pub fn jwks(&self) -> Arc<str> {
        self.signing.ring().jwks()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_print() {
        let scope = TokenScope::parse("chat  model:gpt-4o-mini models").unwrap();
        assert_eq!(scope.models, vec!["gpt-4o-mini".to_string()]);
        assert_eq!(scope.to_text(), "chat models model:gpt-4o-mini");
        assert!(TokenScope::parse("admin").is_err());
        assert!(TokenScope::parse("model:").is_err());
        assert!(TokenScope::parse("model:[").is_err());
        assert_eq!(TokenScope::parse("").unwrap(), TokenScope::default());
    }

    #[test]
    fn only_jwt_shapes_are_tokens() {
        assert!(looks_like_jwt("eyJhbGciOiJFUzI1NiJ9.eyJ9.sig"));
        assert!(!looks_like_jwt("kg_live_abc"));
        assert!(!looks_like_jwt("eyJ.a"));
    }
}
