//! The OAuth 2.0 authorization server: `POST /oauth/token`,
//! `POST /oauth/introspect` (RFC 7662), `POST /oauth/revoke` (RFC 7009),
//! `GET /.well-known/oauth-authorization-server` (RFC 8414) and
//! `GET /.well-known/jwks.json`.
//!
//! Grants of the token endpoint:
//! - `client_credentials` (RFC 6749 §4.4), the client authenticated with
//!   HTTP Basic or `client_id` + `client_secret` in the body;
//! - `urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523), an assertion
//!   signed by a service account's key ([`service_account`]);
//! - `urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693), whose
//!   subject is a keygate key or access token (minting a narrower token) or
//!   an identity token from a trusted OIDC issuer ([`federation`]).
//!
//! Every grant ends in [`mint::mint`], which narrows (never widens) what
//! the key record behind the grant may do. Errors are RFC 6749 §5.2's JSON
//! (`{"error", "error_description"}`); answers carry `Cache-Control:
//! no-store`.

pub mod federation;
mod form;
mod introspect;
pub mod mint;
pub mod service_account;

use crate::auth::KeyKind;
use crate::server::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
pub use form::Form;
use serde_json::json;

/// The grant type URNs.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// RFC 8693.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 token types.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// An OIDC identity token.
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
/// Any JWT.
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// A keygate API key as the subject of an exchange.
pub const API_KEY_TOKEN_TYPE: &str = "urn:keygate:params:oauth:token-type:api_key";

/// Largest form body accepted.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Routes of the authorization server.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/oauth/token", post(token))
        .route("/oauth/introspect", post(introspect::introspect))
        .route("/oauth/revoke", post(introspect::revoke))
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/.well-known/jwks.json", get(jwks))
}

/// An OAuth error (RFC 6749 §5.2).
#[derive(Debug)]
pub struct OAuthError {
    /// HTTP status (400, or 401 for `invalid_client`).
    pub status: StatusCode,
    /// The `error` code.
    pub error: &'static str,
    /// The `error_description`, for people; never a secret.
    pub description: String,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
        }
    }
    /// `invalid_request`: a parameter is missing, repeated or malformed.
    pub fn invalid_request(description: impl Into<String>) -> OAuthError {
        OAuthError::new("invalid_request", description)
    }
    /// `invalid_client`: client authentication failed (401).
    pub fn invalid_client(description: impl Into<String>) -> OAuthError {
        OAuthError {
            status: StatusCode::UNAUTHORIZED,
            ..OAuthError::new("invalid_client", description)
        }
    }
    /// `invalid_grant`: the grant (assertion, subject token, credential) is
    /// invalid, expired, revoked or not trusted.
    pub fn invalid_grant(description: impl Into<String>) -> OAuthError {
        OAuthError::new("invalid_grant", description)
    }
    /// `invalid_scope`: wider than the credential allows, or unknown.
    pub fn invalid_scope(description: impl Into<String>) -> OAuthError {
        OAuthError::new("invalid_scope", description)
    }
    /// `invalid_target` (RFC 8707): a resource keygate does not serve.
    pub fn invalid_target(description: impl Into<String>) -> OAuthError {
        OAuthError::new("invalid_target", description)
    }
    /// `unauthorized_client`: the client may not use this grant or token.
    pub fn unauthorized_client(description: impl Into<String>) -> OAuthError {
        OAuthError::new("unauthorized_client", description)
    }
    /// `unsupported_grant_type`.
    pub fn unsupported_grant_type(description: impl Into<String>) -> OAuthError {
        OAuthError::new("unsupported_grant_type", description)
    }
    /// `temporarily_unavailable` (503): the store or signer is down.
    pub fn unavailable(description: impl Into<String>) -> OAuthError {
        OAuthError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            ..OAuthError::new("temporarily_unavailable", description)
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let description =
            crate::telemetry::redact::redact(&crate::error::printable(&self.description))
                .into_owned();
        let mut response = (
            self.status,
            axum::Json(json!({"error": self.error, "error_description": description})),
        )
            .into_response();
        no_store(response.headers_mut());
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"keygate\""),
            );
        }
        response
    }
}

impl From<crate::store::StoreError> for OAuthError {
    fn from(error: crate::store::StoreError) -> OAuthError {
        tracing::error!(error = %error, "store failed during an OAuth request");
        OAuthError::unavailable("The store is unavailable; try again shortly.")
    }
}

/// Tokens and their metadata must not be cached (RFC 6749 §5.1).
fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// A JSON answer that must not be cached.
fn json_no_store(status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    no_store(response.headers_mut());
    response
}

/// `POST /oauth/token`
async fn token(State(state): State<AppState>, request: Request) -> Response {
    match grant(&state, request).await {
        Ok(issued) => json_no_store(StatusCode::OK, issued.to_json()),
        Err(error) => {
            tracing::info!(error = error.error, "token request refused");
            error.into_response()
        }
    }
}

async fn grant(state: &AppState, request: Request) -> Result<mint::Issued, OAuthError> {
    let (parts, body) = request.into_parts();
    let form = Form::read(&parts.headers, body, MAX_FORM_BYTES).await?;
    let grant_type = form.required("grant_type")?;
    let now = crate::time::now_ms();
    let params = mint::Params::from_form(&form, &state.config.oauth.issuer)?;
    match grant_type {
        "client_credentials" => {
            let client =
                form::authenticate_client(state, &parts.headers, &form, now)?.ok_or_else(|| {
                    OAuthError::invalid_client(
                        "Client authentication is required: HTTP Basic with the client id and \
                         secret, or client_id and client_secret in the body.",
                    )
                })?;
            let parent = mint::Parent {
                subject: client.id.clone(),
                client_id: client.id.clone(),
                key: client,
                token: None,
                max_ttl_ms: None,
            };
            mint::mint(state, parent, &params, now, false)
        }
        JWT_BEARER => {
            if form.has("client_secret") {
                return Err(OAuthError::invalid_request(
                    "A JWT-bearer grant authenticates with its assertion, not a client secret.",
                ));
            }
            let parent = service_account::exchange_assertion(state, &form, now).await?;
            mint::mint(state, parent, &params, now, false)
        }
        TOKEN_EXCHANGE => {
            let subject = form.required("subject_token")?;
            let subject_type = form.required("subject_token_type")?;
            if let Some(requested) = form.get("requested_token_type") {
                if requested != ACCESS_TOKEN_TYPE && requested != JWT_TOKEN_TYPE {
                    return Err(OAuthError::invalid_request(
                        "keygate issues access tokens only (requested_token_type \
                         urn:ietf:params:oauth:token-type:access_token).",
                    ));
                }
            }
            if form.has("actor_token") {
                return Err(OAuthError::invalid_request(
                    "Delegation (actor_token) is not supported.",
                ));
            }
            let parent = match subject_type {
                API_KEY_TOKEN_TYPE | ACCESS_TOKEN_TYPE => {
                    mint::keygate_subject(state, subject, now)?
                }
                ID_TOKEN_TYPE | JWT_TOKEN_TYPE => {
                    federation::exchange_identity(state, subject, now).await?
                }
                other => {
                    return Err(OAuthError::invalid_request(format!(
                        "subject_token_type '{}' is not supported; use {API_KEY_TOKEN_TYPE} (a \
                         keygate key), {ACCESS_TOKEN_TYPE} (a keygate token) or {ID_TOKEN_TYPE} \
                         (an identity token from a trusted issuer).",
                        crate::error::printable(other)
                    )))
                }
            };
            mint::mint(state, parent, &params, now, true)
        }
        "authorization_code" | "refresh_token" | "password" => {
            Err(OAuthError::unsupported_grant_type(format!(
                "The {grant_type} grant is not offered: keygate issues tokens to services \
                 (client_credentials, jwt-bearer) and by token exchange."
            )))
        }
        other => Err(OAuthError::unsupported_grant_type(format!(
            "Unknown grant_type '{}'.",
            crate::error::printable(other)
        ))),
    }
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
async fn metadata(State(state): State<AppState>) -> Response {
    let issuer = &state.config.oauth.issuer;
    let mut scopes: Vec<String> = crate::policy::Scope::ALL
        .iter()
        .map(|(_, n)| n.to_string())
        .collect();
    scopes.push("model:<name or glob>".into());
    let body = json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/oauth/token"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "grant_types_supported": ["client_credentials", JWT_BEARER, TOKEN_EXCHANGE],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "bearer"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "bearer"],
        "scopes_supported": scopes,
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"],
        "access_token_signing_alg_values_supported": ["ES256"],
        "subject_token_types_supported": [API_KEY_TOKEN_TYPE, ACCESS_TOKEN_TYPE, ID_TOKEN_TYPE, JWT_TOKEN_TYPE],
    });
    let mut response = axum::Json(body).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// `GET /.well-known/jwks.json`. Caches may keep it for a minute: a new
/// signing key is published [`PUBLISH_LEAD`](super::signing::PUBLISH_LEAD)
/// before it signs anything.
async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, "application/jwk-set+json")],
        state.tokens.jwks().to_string(),
    )
        .into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    response
}

/// Whether `kind` may be a client at the token endpoint (client
/// credentials) — only OAuth clients.
fn is_client(kind: KeyKind) -> bool {
    kind == KeyKind::Client
}
