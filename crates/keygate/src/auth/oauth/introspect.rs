//! `POST /oauth/introspect` (RFC 7662) and `POST /oauth/revoke` (RFC 7009).
//!
//! Both need the caller to authenticate: an admin credential (any token),
//! an OAuth client (HTTP Basic or the body), or an API key as a bearer
//! credential (tokens it minted, or minted under it). A token the caller has
//! no say over is reported inactive, not described (RFC 7662 §2.2), and
//! refused for revocation.

use super::form::authenticate_client;
use super::{json_no_store, Form, OAuthError, MAX_FORM_BYTES};
use crate::auth::token::TokenGrant;
use crate::auth::{KeyEntry, KeyKind};
use crate::server::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

/// Who asks.
enum Authority {
    /// An admin credential: every token.
    Admin(String),
    /// A client or key: the tokens minted by it or under it.
    Holder(Arc<KeyEntry>),
}

impl Authority {
    fn may_touch(&self, grant: &TokenGrant) -> bool {
        match self {
            Authority::Admin(_) => true,
            Authority::Holder(key) => {
                grant.claims.client_id == key.id || grant.claims.kg_key == key.id
            }
        }
    }
    fn id(&self) -> &str {
        match self {
            Authority::Admin(id) => id,
            Authority::Holder(key) => &key.id,
        }
    }
}

fn authority(
    state: &AppState,
    headers: &HeaderMap,
    form: &Form,
    now: i64,
) -> Result<Authority, OAuthError> {
    if let Some(client) = authenticate_client(state, headers, form, now)? {
        return Ok(Authority::Holder(client));
    }
    let presented = crate::auth::extract::presented_credential(headers).ok_or_else(|| {
        OAuthError::invalid_client(
            "Authenticate: an OAuth client (HTTP Basic or client_id + client_secret), an API key \
             or an admin credential (Authorization: Bearer).",
        )
    })?;
    let entry = state
        .keys
        .verify(presented, now)
        .map_err(|_| OAuthError::invalid_client("Client authentication failed."))?;
    match entry.kind {
        KeyKind::Admin => Ok(Authority::Admin(entry.id.clone())),
        KeyKind::Data | KeyKind::Client => Ok(Authority::Holder(entry)),
        _ => Err(OAuthError::invalid_client("Client authentication failed.")),
    }
}

async fn read(state: &AppState, request: Request) -> Result<(Authority, Form, i64), OAuthError> {
    let (parts, body) = request.into_parts();
    let form = Form::read(&parts.headers, body, MAX_FORM_BYTES).await?;
    let now = crate::time::now_ms();
    let authority = authority(state, &parts.headers, &form, now)?;
    form.required("token")?;
    Ok((authority, form, now))
}

/// `POST /oauth/introspect`
pub async fn introspect(State(state): State<AppState>, request: Request) -> Response {
    let (authority, form, now) = match read(&state, request).await {
        Ok(read) => read,
        Err(error) => return error.into_response(),
    };
    let token = form.get("token").unwrap_or_default();
    let inactive = || json_no_store(StatusCode::OK, json!({"active": false}));
    let Ok(grant) = state.tokens.verify(token, now) else {
        return inactive();
    };
    if !authority.may_touch(&grant) {
        return inactive();
    }
    // A token whose credential was revoked, suspended or expired is dead.
    let live = state
        .keys
        .by_id(&grant.claims.kg_key)
        .is_some_and(|key| crate::auth::cache::usable(&key, now).is_ok());
    if !live {
        return inactive();
    }
    let claims = &grant.claims;
    let mut body = json!({
        "active": true,
        "token_type": "Bearer",
        "client_id": claims.client_id,
        "sub": claims.sub,
        "aud": claims.aud,
        "iss": claims.iss,
        "exp": claims.exp,
        "iat": claims.iat,
        "nbf": claims.nbf,
        "jti": claims.jti,
        "kg_key": claims.kg_key,
    });
    if !claims.scope.is_empty() {
        body["scope"] = json!(claims.scope);
    }
    if let Some(budget) = claims.kg_budget {
        body["kg_budget_usd"] = json!(crate::policy::limits::nanos_to_usd(budget));
    }
    json_no_store(StatusCode::OK, body)
}

/// `POST /oauth/revoke`
pub async fn revoke(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let source_ip =
        crate::policy::client_ip(peer.ip(), request.headers(), &state.config.trusted_proxies);
    let (authority, form, now) = match read(&state, request).await {
        Ok(read) => read,
        Err(error) => return error.into_response(),
    };
    let token = form.get("token").unwrap_or_default();
    // RFC 7009 §2.2: an invalid, expired or already revoked token is
    // answered 200 like a revoked one.
    let Ok(grant) = state.tokens.verify(token, now) else {
        return json_no_store(StatusCode::OK, json!({}));
    };
    if !authority.may_touch(&grant) {
        return OAuthError::unauthorized_client(
            "This token was not issued to the authenticated client.",
        )
        .into_response();
    }
    let row = crate::store::RevokedToken {
        jti: grant.claims.jti.clone(),
        expires_at: grant.expires_at_ms(),
        revoked_at: now,
        reason: Some(format!("revoked by {}", authority.id())),
    };
    if let Err(error) = state.store.revoke_token(&row).await {
        return OAuthError::from(error).into_response();
    }
    state.tokens.revoke_locally(&row.jti, row.expires_at);
    let audit = crate::store::AuditEvent {
        ts: now,
        actor: authority.id().to_string(),
        action: "token.revoke".into(),
        target: Some(row.jti.clone()),
        source_ip: Some(source_ip.to_string()),
        status: 200,
        fields: vec!["token".into()],
    };
    if let Err(error) = state.store.append_audit(&audit).await {
        tracing::warn!(error = %error, "could not audit a token revocation");
    }
    tracing::info!(jti = %row.jti, "access token revoked");
    json_no_store(StatusCode::OK, json!({}))
}
