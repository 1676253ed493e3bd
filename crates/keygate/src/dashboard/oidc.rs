//! Sign-in through the organisation's OpenID Provider (`[dashboard.oidc]`):
//! the authorization code flow with PKCE (S256), `state` and `nonce`.
//!
//! `GET /dashboard/sign-in/oidc` sends the browser to the provider with a
//! fresh state, nonce and code challenge, remembered in a short-lived
//! `HttpOnly` cookie (`SameSite=Lax`: the provider's redirect back is a
//! cross-site navigation). The callback checks the state in constant time,
//! redeems the code with the verifier (and the client secret, when there is
//! one), verifies the identity token (signature by the provider's JWKS,
//! algorithm pinned to the key's family, issuer, audience, expiry, nonce)
//! and gives the first matching role rule's role and scope; nobody else
//! gets in.

use super::session::{self, Peer};
use crate::auth::oauth::federation::{algorithm_allowed, claim_matches};
use crate::config::dashboard::OidcConfig;
use crate::server::AppState;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use rand::RngCore;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The cookie carrying state, nonce, verifier and destination.
const FLOW_COOKIE: &str = "keygate_oidc";
/// How long the provider may take to send the browser back.
const FLOW_MAX_AGE_SECS: u64 = 600;
/// Largest document read from the provider.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

fn random() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn refused(state: &AppState, status: StatusCode, message: &str) -> Response {
    let mut response = session::sign_in_again(state, status, session::safe_next(None), message);
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "keygate_oidc=; Path=/dashboard/sign-in/oidc; HttpOnly; SameSite=Lax; Max-Age=0",
        ),
    );
    response
}

async fn get_json(state: &AppState, url: &str) -> Result<Value, String> {
    json_answer(state.http.get(url)).await
}

/// Send a request to the provider and read its JSON answer (bounded).
async fn json_answer(request: reqwest::RequestBuilder) -> Result<Value, String> {
    let response = request
        .send()
        .await
        .map_err(|e| format!("the OpenID Provider did not answer: {}", e.without_url()))?;
    if !response.status().is_success() {
        return Err(format!(
            "the OpenID Provider answered HTTP {}",
            response.status().as_u16()
        ));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| format!("reading the OpenID Provider's answer: {}", e.without_url()))?;
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err("the OpenID Provider's answer is too large".to_string());
    }
    serde_json::from_slice(&bytes)
        .map_err(|_| "the OpenID Provider's answer is not JSON".to_string())
}

/// The provider's endpoints, by OIDC discovery.
struct Endpoints {
    authorization: String,
    token: String,
    jwks: String,
}

async fn discover(state: &AppState, oidc: &OidcConfig) -> Result<Endpoints, String> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        oidc.issuer.trim_end_matches('/')
    );
    let document = get_json(state, &url).await?;
    if document.get("issuer").and_then(Value::as_str) != Some(oidc.issuer.as_str()) {
        return Err("the OpenID Provider's discovery document names another issuer".to_string());
    }
    let field = |name: &str| {
        document
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("the OpenID Provider's discovery document has no {name}"))
    };
    Ok(Endpoints {
        authorization: field("authorization_endpoint")?,
        token: field("token_endpoint")?,
        jwks: field("jwks_uri")?,
    })
}

/// `?next=` of the start.
#[derive(Deserialize)]
pub(crate) struct StartQuery {
    next: Option<String>,
}

/// `GET /dashboard/sign-in/oidc`: off to the provider.
pub(crate) async fn start(
    State(state): State<AppState>,
    query: Result<Query<StartQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(oidc) = state.config.dashboard.oidc.clone() else {
        return refused(
            &state,
            StatusCode::NOT_FOUND,
            "Sign-in with an OpenID Provider is not configured.",
        );
    };
    let next = session::safe_next(query.ok().and_then(|Query(q)| q.next).as_deref());
    let endpoints = match discover(&state, &oidc).await {
        Ok(endpoints) => endpoints,
        Err(message) => {
            tracing::warn!(%message, "OpenID discovery failed");
            return refused(
                &state,
                StatusCode::BAD_GATEWAY,
                "The OpenID Provider could not be reached; try again shortly.",
            );
        }
    };
    let (flow_state, nonce, verifier) = (random(), random(), random());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    let Ok(mut url) = reqwest::Url::parse(&endpoints.authorization) else {
        return refused(
            &state,
            StatusCode::BAD_GATEWAY,
            "The OpenID Provider's sign-in address is not valid.",
        );
    };
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &oidc.client_id)
        .append_pair("redirect_uri", &oidc.redirect_url)
        .append_pair("scope", "openid email profile")
        .append_pair("state", &flow_state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let next_b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(next.as_bytes());
    let cookie = format!(
        "{FLOW_COOKIE}={flow_state}.{nonce}.{verifier}.{next_b64}; Path=/dashboard/sign-in/oidc; \
         HttpOnly; SameSite=Lax; Max-Age={FLOW_MAX_AGE_SECS}"
    );
    let mut response = Redirect::to(url.as_str()).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// What the start remembered.
struct Flow {
    state: String,
    nonce: String,
    verifier: String,
    next: String,
}

fn flow_of(headers: &HeaderMap) -> Option<Flow> {
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == FLOW_COOKIE)?
        .1;
    let mut parts = value.split('.');
    let (state, nonce, verifier, next) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let next = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(next)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())?;
    Some(Flow {
        state: state.to_string(),
        nonce: nonce.to_string(),
        verifier: verifier.to_string(),
        next: session::safe_next(Some(&next)),
    })
}

/// `?code=&state=` (or `?error=`) of the callback.
#[derive(Deserialize)]
pub(crate) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /dashboard/sign-in/oidc/callback`.
pub(crate) async fn callback(
    State(state): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    query: Result<Query<Callback>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(oidc) = state.config.dashboard.oidc.clone() else {
        return refused(
            &state,
            StatusCode::NOT_FOUND,
            "Sign-in with an OpenID Provider is not configured.",
        );
    };
    let Ok(Query(callback)) = query else {
        return refused(
            &state,
            StatusCode::BAD_REQUEST,
            "The OpenID Provider's answer could not be read.",
        );
    };
    if callback.error.is_some() {
        return refused(
            &state,
            StatusCode::UNAUTHORIZED,
            "The OpenID Provider did not sign you in.",
        );
    }
    let (Some(code), Some(returned_state), Some(flow)) =
        (callback.code, callback.state, flow_of(&headers))
    else {
        return refused(
            &state,
            StatusCode::BAD_REQUEST,
            "This sign-in was not started here or has expired; start again.",
        );
    };
    if !bool::from(returned_state.as_bytes().ct_eq(flow.state.as_bytes())) {
        return refused(
            &state,
            StatusCode::BAD_REQUEST,
            "This sign-in was not started here or has expired; start again.",
        );
    }
    let client = peer
        .map(|info| crate::policy::client_ip(info.0.ip(), &headers, &state.config.trusted_proxies));
    let source_ip = client.map(|ip| ip.to_string());
    let claims = match redeem(&state, &oidc, &code, &flow).await {
        Ok(claims) => claims,
        Err(message) => {
            tracing::warn!(%message, "OpenID sign-in refused");
            session::audit(
                &state,
                "unknown",
                "dashboard.sign_in_oidc",
                None,
                &source_ip,
                401,
            )
            .await;
            return refused(
                &state,
                StatusCode::UNAUTHORIZED,
                "The OpenID Provider's answer did not verify; start again.",
            );
        }
    };
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .map(|s| {
            crate::error::printable(s)
                .chars()
                .take(128)
                .collect::<String>()
        })
        .unwrap_or_default();
    let Some(rule) = oidc
        .roles
        .iter()
        .find(|rule| claim_matches(claims.get(&rule.claim), &rule.pattern))
    else {
        let id = format!("oidc:{subject}");
        session::audit(
            &state,
            &id,
            "dashboard.sign_in_oidc",
            Some(&id),
            &source_ip,
            403,
        )
        .await;
        return refused(
            &state,
            StatusCode::FORBIDDEN,
            "You are signed in with the OpenID Provider, but no rule gives you a role here.",
        );
    };
    let identity = claims
        .get("email")
        .and_then(Value::as_str)
        .map(|e| {
            crate::error::printable(e)
                .chars()
                .take(256)
                .collect::<String>()
        })
        .unwrap_or_else(|| subject.clone());
    let actor = session::OidcActor {
        role: rule.role.clone(),
        org_id: rule.org_id.clone(),
        project_id: rule.project_id.clone(),
        identity,
    };
    let Ok(actor_json) = serde_json::to_string(&actor) else {
        return refused(
            &state,
            StatusCode::SERVICE_UNAVAILABLE,
            "The sign-in could not be recorded.",
        );
    };
    let id = format!("oidc:{subject}");
    let mut response = session::open_session(
        &state,
        &id,
        Some(actor_json),
        source_ip,
        peer.map(|p| p.0),
        &headers,
        &flow.next,
    )
    .await;
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "keygate_oidc=; Path=/dashboard/sign-in/oidc; HttpOnly; SameSite=Lax; Max-Age=0",
        ),
    );
    response
}

/// Redeem the code and verify the identity token; its claims.
async fn redeem(
    state: &AppState,
    oidc: &OidcConfig,
    code: &str,
    flow: &Flow,
) -> Result<serde_json::Map<String, Value>, String> {
    let endpoints = discover(state, oidc).await?;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", oidc.redirect_url.as_str()),
        ("code_verifier", flow.verifier.as_str()),
        ("client_id", oidc.client_id.as_str()),
    ];
    let mut request = state.http.post(&endpoints.token).form(&form);
    if let Some(secret) = &oidc.client_secret {
        request = request.basic_auth(&oidc.client_id, Some(secret.expose_secret()));
    }
    let answer = json_answer(request).await?;
    let id_token = answer
        .get("id_token")
        .and_then(Value::as_str)
        .ok_or("the token endpoint sent no id_token")?;
    let header =
        jsonwebtoken::decode_header(id_token).map_err(|e| format!("id_token header: {e}"))?;
    let keys: JwkSet = serde_json::from_value(get_json(state, &endpoints.jwks).await?)
        .map_err(|_| "the provider's JWKS is not a key set".to_string())?;
    let jwk = match &header.kid {
        Some(kid) => keys.find(kid).cloned(),
        None if keys.keys.len() == 1 => keys.keys.first().cloned(),
        None => None,
    }
    .ok_or("the id_token's signing key is not in the provider's JWKS")?;
    if !algorithm_allowed(header.alg, &jwk) {
        return Err(format!("algorithm {:?} does not fit the key", header.alg));
    }
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).map_err(|e| format!("JWK: {e}"))?;
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[oidc.client_id.as_str()]);
    validation.set_issuer(&[oidc.issuer.as_str()]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = 30;
    let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(id_token, &key, &validation)
        .map_err(|e| format!("id_token: {e}"))?;
    let nonce = data
        .claims
        .get("nonce")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !bool::from(nonce.as_bytes().ct_eq(flow.nonce.as_bytes())) {
        return Err("id_token nonce does not match".to_string());
    }
    Ok(data.claims)
}
