//! Minting a token under a key record: the requested scope, resources,
//! lifetime and budget may only narrow what the record (and, for a token
//! minted from a token, that token) allows.
//!
//! Request parameters every grant accepts:
//! - `scope`: route families (`chat embeddings messages generate models`)
//!   and `model:<name or glob>` entries;
//! - `resource` (RFC 8707, repeatable): the gateway's issuer URL (the
//!   token's audience), or `urn:keygate:model:<name>` to narrow the token
//!   to a model;
//! - `expires_in`: a shorter lifetime, seconds;
//! - `budget_usd`: a lifetime budget of the token's own (its spend counts
//!   against every budget of the key record too).

use super::{Form, OAuthError, ACCESS_TOKEN_TYPE};
use crate::auth::token::{AccessClaims, TokenGrant, TokenScope, Tokens, MAX_CHAIN};
use crate::auth::{KeyEntry, ModelAllowlist};
use crate::policy::limits::{usd_to_nanos, Nanos};
use crate::server::AppState;
use serde_json::json;
use std::sync::Arc;

/// Resources naming one model.
const MODEL_RESOURCE: &str = "urn:keygate:model:";

/// What a token request asks for, beyond the grant.
#[derive(Debug, Default)]
pub struct Params {
    scope: Option<TokenScope>,
    resource_models: Vec<String>,
    expires_in_s: Option<i64>,
    budget: Option<Nanos>,
}

impl Params {
    /// Read `scope`, `resource`, `expires_in` and `budget_usd`.
    pub fn from_form(form: &Form, issuer: &str) -> Result<Params, OAuthError> {
        let scope = form
            .get("scope")
            .map(|text| TokenScope::parse(text).map_err(OAuthError::invalid_scope))
            .transpose()?;
        let mut resource_models = Vec::new();
        for resource in form.all("resource") {
            match resource.strip_prefix(MODEL_RESOURCE) {
                Some(model) if !model.is_empty() && model.len() <= 256 => {
                    resource_models.push(model.to_string())
                }
                None if resource.trim_end_matches('/') == issuer => {}
                _ => {
                    return Err(OAuthError::invalid_target(format!(
                    "keygate serves the resource {issuer} (and {MODEL_RESOURCE}<model>), not '{}'.",
                    crate::error::printable(resource)
                )))
                }
            }
        }
        let expires_in_s = form
            .get("expires_in")
            .map(|text| {
                text.parse::<i64>().ok().filter(|s| *s > 0).ok_or_else(|| {
                    OAuthError::invalid_request("expires_in must be a positive number of seconds.")
                })
            })
            .transpose()?;
        let budget = form
            .get("budget_usd")
            .map(|text| {
                text.parse::<f64>()
                    .ok()
                    .and_then(usd_to_nanos)
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        OAuthError::invalid_request(
                            "budget_usd must be a positive amount of US dollars.",
                        )
                    })
            })
            .transpose()?;
        Ok(Params {
            scope,
            resource_models,
            expires_in_s,
            budget,
        })
    }
}

/// The credential a token is minted under.
#[derive(Debug)]
pub struct Parent {
    /// The key record whose policy and budgets govern the token.
    pub key: Arc<KeyEntry>,
    /// The token it is minted from, when the subject was a token.
    pub token: Option<Arc<TokenGrant>>,
    /// The token's `sub`.
    pub subject: String,
    /// The token's `client_id`.
    pub client_id: String,
    /// A lifetime cap of the grant (a trusted issuer's rule), ms.
    pub max_ttl_ms: Option<i64>,
}

/// A minted token and what the response says of it.
#[derive(Debug)]
pub struct Issued {
    token: String,
    expires_in: i64,
    scope: String,
    exchanged: bool,
}

impl Issued {
    /// The token response (RFC 6749 §5.1; RFC 8693 §2.2.1 for exchanges).
    pub fn to_json(&self) -> serde_json::Value {
        let mut body = json!({
            "access_token": self.token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        });
        if !self.scope.is_empty() {
            body["scope"] = json!(self.scope);
        }
        if self.exchanged {
            body["issued_token_type"] = json!(ACCESS_TOKEN_TYPE);
        }
        body
    }
}

/// The parent of an exchange whose subject is a keygate key or token.
pub fn keygate_subject(state: &AppState, subject: &str, now: i64) -> Result<Parent, OAuthError> {
    if crate::auth::token::looks_like_jwt(subject) {
        let grant = state
            .tokens
            .verify(subject, now)
            .map_err(|e| OAuthError::invalid_grant(format!("subject_token: {e}")))?;
        let key = state.keys.by_id(&grant.claims.kg_key).ok_or_else(|| {
            OAuthError::invalid_grant("subject_token: its credential no longer exists.")
        })?;
        return Ok(Parent {
            subject: grant.claims.sub.clone(),
            client_id: grant.claims.client_id.clone(),
            key,
            token: Some(grant),
            max_ttl_ms: None,
        });
    }
    let key = state
        .keys
        .verify(subject, now)
        .map_err(|e| OAuthError::invalid_grant(format!("subject_token: {}", e.message)))?;
    if key.kind != crate::auth::KeyKind::Data {
        return Err(OAuthError::invalid_grant(
            "subject_token: only API keys (and tokens) can be exchanged this way.",
        ));
    }
    Ok(Parent {
        subject: key.id.clone(),
        client_id: key.id.clone(),
        key,
        token: None,
        max_ttl_ms: None,
    })
}

/// Whether `pattern` asks for nothing `allowlist` refuses: a plain model
/// name it allows, or a glob it lists itself (an empty allowlist allows
/// everything).
fn covered(pattern: &str, allowlist: &ModelAllowlist) -> bool {
    if allowlist.patterns().is_empty() {
        return true;
    }
    if pattern.contains(['*', '?', '[', '{']) {
        return allowlist.patterns().iter().any(|p| p == pattern);
    }
    allowlist.allows(pattern, pattern)
}

/// Mint a token for `parent`, narrowed by `params`.
pub fn mint(
    state: &AppState,
    parent: Parent,
    params: &Params,
    now: i64,
    exchanged: bool,
) -> Result<Issued, OAuthError> {
    let key = &parent.key;
    crate::auth::cache::usable(key, now).map_err(|e| {
        OAuthError::invalid_grant(format!("The credential is not usable: {}", e.message))
    })?;
    if !key.kind.mints_tokens() {
        return Err(OAuthError::unauthorized_client(
            "Admin credentials cannot mint access tokens.",
        ));
    }
    let requested = params.scope.clone().unwrap_or_default();

    // Route families: within the key's and the parent token's.
    let mut routes = requested.routes;
    if let Some(token) = &parent.token {
        if routes.is_all() {
            routes = token.scope.routes;
        } else if !routes.within(token.scope.routes) {
            return Err(OAuthError::invalid_scope(
                "The scope asks for routes the subject token does not have.",
            ));
        }
    }
    // Nothing asked (and no parent token): the key's own route families
    // bound every request anyway.
    if !routes.is_all() && !routes.within(key.scopes) {
        return Err(OAuthError::invalid_scope(
            "The scope asks for routes the credential may not call.",
        ));
    }

    // Models: within the key's allowlist and the parent token's.
    let mut models = requested.models;
    for model in &params.resource_models {
        if !models.contains(model) {
            models.push(model.clone());
        }
    }
    for model in &models {
        let wider_than_token = parent
            .token
            .as_ref()
            .and_then(|t| t.models.as_ref())
            .is_some_and(|allowed| !covered(model, allowed));
        if !covered(model, &key.models) || wider_than_token {
            return Err(OAuthError::invalid_scope(format!(
                "The credential may not use the model '{}'.",
                crate::error::printable(model)
            )));
        }
    }
    if models.is_empty() {
        if let Some(token) = &parent.token {
            models = token.scope.models.clone();
        }
    }

    // Budget: a token with a budget of its own does not mint others (their
    // spend would escape it).
    if parent.token.as_ref().is_some_and(|t| t.limits.is_some()) {
        return Err(OAuthError::invalid_grant(
            "A token with its own budget cannot mint further tokens; mint from the key instead.",
        ));
    }

    // Lifetime: the default or what was asked, within every bound.
    let config = state.tokens.config();
    let max_ms = i64::try_from(config.max_token_ttl.as_millis()).unwrap_or(i64::MAX);
    let default_ms = i64::try_from(config.token_ttl.as_millis()).unwrap_or(max_ms);
    let mut expires_at = now
        + params
            .expires_in_s
            .map_or(default_ms, |s| s.saturating_mul(1000))
            .min(max_ms);
    if let Some(cap) = parent.max_ttl_ms {
        expires_at = expires_at.min(now + cap);
    }
    if let Some(token) = &parent.token {
        expires_at = expires_at.min(token.expires_at_ms());
    }
    if let Some(key_expiry) = key.expires_at {
        expires_at = expires_at.min(key_expiry);
    }
    let exp = expires_at / 1000;
    let iat = now / 1000;
    if exp <= iat {
        return Err(OAuthError::invalid_grant(
            "The credential expires before a token could be used.",
        ));
    }

    let mut parents = Vec::new();
    if let Some(token) = &parent.token {
        parents.extend(token.claims.kg_parents.iter().cloned());
        parents.push(token.claims.jti.clone());
        if parents.len() > MAX_CHAIN {
            return Err(OAuthError::invalid_grant(format!(
                "Tokens may be minted from tokens at most {MAX_CHAIN} deep."
            )));
        }
    }
    let scope = TokenScope { routes, models }.to_text();
    let claims = AccessClaims {
        iss: config.issuer.clone(),
        sub: parent.subject,
        aud: config.issuer.clone(),
        exp,
        iat,
        nbf: iat,
        jti: Tokens::new_jti(),
        client_id: parent.client_id,
        scope: scope.clone(),
        kg_key: key.id.clone(),
        kg_budget: params.budget,
        kg_parents: parents,
    };
    let token = state
        .tokens
        .sign(&claims)
        .map_err(|e| OAuthError::unavailable(e.message))?;
    tracing::info!(jti = %claims.jti, key_id = %claims.kg_key, exp = claims.exp, "access token issued");
    Ok(Issued {
        token,
        expires_in: exp - iat,
        scope,
        exchanged,
    })
}
