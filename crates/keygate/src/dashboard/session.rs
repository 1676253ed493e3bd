//! Sign-in, sessions and CSRF.
//!
//! - Sign-in takes an admin credential (verified like the admin API's:
//!   in memory, in constant time; refused sources count toward the
//!   credential-stuffing lockout; both outcomes are audited).
//! - The browser gets a random 256-bit session secret in an `HttpOnly`,
//!   `SameSite=Strict` cookie (`Secure` and `__Host-` prefixed when the
//!   request came over TLS through a trusted proxy); the store keeps only
//!   its SHA-256. Sessions end after an idle time and a lifetime
//!   (`[dashboard]`), at sign-out, and at once when the admin credential
//!   is revoked, suspended or expires (re-read on every request).
//! - Every change (any method but GET/HEAD) must carry the session's CSRF
//!   token (form field `csrf` or header `x-csrf-token`), which is derived
//!   from the session secret and compared in constant time, and must not
//!   come from another site (`Sec-Fetch-Site`, `Origin`).

use super::{problem, render};
use crate::admin::Actor;
use crate::auth::KeyKind;
use crate::server::AppState;
use crate::store::{AuditEvent, SessionRecord};
use askama::Template;
use axum::extract::{ConnectInfo, Form, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use subtle::ConstantTimeEq;

/// The cookie over plain HTTP (a gateway on loopback or a private network).
const COOKIE: &str = "keygate_session";
/// The cookie under TLS: the `__Host-` prefix pins it to this host, path
/// `/` and `Secure`.
const SECURE_COOKIE: &str = "__Host-keygate_session";
/// A session is touched in the store at most this often.
const TOUCH_EVERY_MS: i64 = 60_000;
/// Largest form a change may post (keys' policy fields included).
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The peer's address, when the listener recorded it (it always does;
/// in-process test routers may not).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peer(pub Option<ConnectInfo<SocketAddr>>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts.extensions.get::<ConnectInfo<SocketAddr>>().copied(),
        ))
    }
}

/// The signed-in user of a request, put in its extensions by
/// [`require_session`].
#[derive(Clone, Debug)]
pub(crate) struct SignedIn {
    /// The admin credential, its role and scope, as stored now.
    pub actor: Actor,
    /// The session's CSRF token.
    pub csrf: String,
    /// The session's id in the store.
    id_hash: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The CSRF token of a session: a one-way function of its secret, so a
/// token seen in a page cannot be turned back into the session cookie.
fn csrf_token(secret: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"keygate dashboard csrf\0");
    hasher.update(secret.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hasher.finalize())
}

/// The session secret the browser presented, if any.
fn presented_secret(headers: &HeaderMap) -> Option<SecretString> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE || *name == SECURE_COOKIE)
        .map(|(_, value)| value.trim())
        // 32 bytes in unpadded base64url; anything else is not ours.
        .filter(|value| {
            value.len() == 43
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(|value| SecretString::from(value.to_string()))
}

/// Whether the request reached us over TLS (through a trusted proxy that
/// says so).
fn over_tls(state: &AppState, peer: Option<SocketAddr>, headers: &HeaderMap) -> bool {
    let Some(peer) = peer else { return false };
    let trusted = state
        .config
        .trusted_proxies
        .iter()
        .any(|net| net.contains(&peer.ip()));
    trusted
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

fn set_cookie(secret: &str, secure: bool, max_age_secs: u64) -> Option<HeaderValue> {
    let value = if secure {
        format!(
            "{SECURE_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Secure; Max-Age={max_age_secs}"
        )
    } else {
        format!(
            "{COOKIE}={secret}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}"
        )
    };
    HeaderValue::from_str(&value).ok()
}

fn clear_cookies() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (
            header::SET_COOKIE,
            HeaderValue::from_static(
                "keygate_session=; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=0",
            ),
        ),
        (
            header::SET_COOKIE,
            HeaderValue::from_static(
                "__Host-keygate_session=; Path=/; HttpOnly; SameSite=Strict; Secure; Max-Age=0",
            ),
        ),
    ]
}

/// Refuse a change that another site started. Browsers say where a
/// request came from in `Sec-Fetch-Site` (which pages cannot forge); older
/// ones only in `Origin`, which must then name this host (`Origin: null`,
/// from a sandboxed or privacy-stripped context, is not provably ours).
pub(crate) fn cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return !matches!(site.to_str(), Ok("same-origin" | "none"));
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest);
    match (origin_host, host) {
        (Some(origin_host), Some(host)) => !origin_host.eq_ignore_ascii_case(host),
        _ => true,
    }
}

/// Where to send someone who must sign in first: back here afterwards.
fn to_sign_in(request: &Request) -> Response {
    // Inside the nested router the path lacks `/dashboard`; the original
    // URI has it.
    let uri = request
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map(|original| &original.0)
        .unwrap_or(request.uri());
    let path = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/dashboard/overview");
    let back = if request.method() == Method::GET {
        path
    } else {
        "/dashboard/overview"
    };
    let target = format!(
        "/dashboard/sign-in?next={}",
        percent_encoding::utf8_percent_encode(back, percent_encoding::NON_ALPHANUMERIC)
    );
    let mut response = if request.headers().contains_key("hx-request") {
        // htmx follows this header with a full page load.
        let mut response = StatusCode::UNAUTHORIZED.into_response();
        if let Ok(value) = HeaderValue::from_str(&target) {
            response.headers_mut().insert("hx-redirect", value);
        }
        response
    } else {
        Redirect::to(&target).into_response()
    };
    for (name, value) in clear_cookies() {
        response.headers_mut().append(name, value);
    }
    response
}

/// A `next` that stays inside the dashboard (no open redirect).
pub(crate) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next)
            if next.starts_with("/dashboard/")
                && !next.starts_with("/dashboard//")
                && !next.contains('\\')
                && next.chars().all(|c| !c.is_control()) =>
        {
            next.to_string()
        }
        _ => "/dashboard/overview".to_string(),
    }
}

/// Whether an admin credential may still be used, and as whom.
async fn live_actor(
    state: &AppState,
    key_id: &str,
) -> Result<Option<Actor>, crate::store::StoreError> {
    let now = crate::time::now_ms();
    Ok(state.store.get_key(key_id).await?.and_then(|record| {
        let live = record.kind == KeyKind::Admin
            && record.revoked_at.is_none()
            && record.suspended_at.is_none()
            && record.expires_at.is_none_or(|t| t > now);
        live.then(|| Actor::from_record(&record))
    }))
}

/// Who a session acts as: its admin credential as stored now, or the role
/// and scope an OpenID sign-in was given.
async fn session_actor(
    state: &AppState,
    session: &SessionRecord,
) -> Result<Option<Actor>, crate::store::StoreError> {
    match &session.actor {
        Some(text) => Ok(OidcActor::parse(text).map(|a| a.actor(&session.key_id))),
        None => live_actor(state, &session.key_id).await,
    }
}

/// The role and scope of an OpenID sign-in, kept with its session.
#[derive(Debug, serde::Serialize, Deserialize)]
pub(crate) struct OidcActor {
    pub role: String,
    pub org_id: Option<String>,
    pub project_id: Option<String>,
    pub identity: String,
}

impl OidcActor {
    fn parse(text: &str) -> Option<OidcActor> {
        serde_json::from_str(text).ok()
    }

    fn actor(self, id: &str) -> Actor {
        Actor {
            id: id.to_string(),
            role: crate::admin::Role::parse(&self.role).unwrap_or(crate::admin::Role::Viewer),
            org_id: self.org_id,
            project_id: self.project_id,
            identity: self.identity,
        }
    }
}

/// Every signed-in route: a live session of a live admin credential, and
/// for changes a same-site request with the session's CSRF token.
pub(crate) async fn require_session(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(secret) = presented_secret(request.headers()) else {
        return to_sign_in(&request);
    };
    let id_hash = sha256_hex(secret.expose_secret().as_bytes());
    let now = crate::time::now_ms();
    let idle = i64::try_from(state.config.dashboard.session_idle.as_millis()).unwrap_or(i64::MAX);
    let session = match state
        .store
        .live_session(&id_hash, now, now.saturating_sub(idle))
        .await
    {
        Ok(Some(session)) => session,
        Ok(None) => return to_sign_in(&request),
        Err(error) => return unavailable(error),
    };
    let actor = match session_actor(&state, &session).await {
        Ok(Some(actor)) => actor,
        Ok(None) => {
            // The credential was revoked, suspended or expired: so is
            // every session it opened.
            if let Err(error) = state.store.delete_session(&id_hash).await {
                return unavailable(error);
            }
            return to_sign_in(&request);
        }
        Err(error) => return unavailable(error),
    };
    if now - session.last_seen_at >= TOUCH_EVERY_MS {
        if let Err(error) = state.store.touch_session(&id_hash, now).await {
            return unavailable(error);
        }
    }
    let signed_in = SignedIn {
        actor,
        csrf: csrf_token(secret.expose_secret()),
        id_hash,
    };
    let request = if request.method() == Method::GET || request.method() == Method::HEAD {
        request
    } else {
        match check_change(&signed_in, request).await {
            Ok(request) => request,
            Err(refused) => return refused,
        }
    };
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(signed_in);
    next.run(Request::from_parts(parts, body)).await
}

/// A change must be same-site and carry the session's CSRF token; the
/// form is read (bounded) to find it and handed on unchanged.
async fn check_change(signed_in: &SignedIn, request: Request) -> Result<Request, Response> {
    let refused = |message: &str| {
        problem(
            Some(signed_in),
            StatusCode::FORBIDDEN,
            "Request refused",
            message.to_string(),
        )
    };
    if cross_site(request.headers()) {
        return Err(refused(
            "This change came from another site; changes are only taken from the dashboard's own pages.",
        ));
    }
    let header_token = request
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| {
            problem(
                Some(signed_in),
                StatusCode::PAYLOAD_TOO_LARGE,
                "Form too large",
                format!("A form may hold at most {MAX_FORM_BYTES} bytes."),
            )
        })?;
    let form_token = form_urlencoded::parse(&bytes)
        .find(|(name, _)| name == "csrf")
        .map(|(_, value)| value.into_owned());
    let presented = header_token.or(form_token).unwrap_or_default();
    let expected = signed_in.csrf.as_bytes();
    if !bool::from(presented.as_bytes().ct_eq(expected)) {
        return Err(refused(
            "This form is missing its security token or it has expired; reload the page and try again.",
        ));
    }
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}

pub(crate) fn unavailable(error: crate::store::StoreError) -> Response {
    tracing::error!(error = %error, "dashboard session check failed");
    problem(
        None,
        StatusCode::SERVICE_UNAVAILABLE,
        "Store unavailable",
        "The store did not answer; retry shortly.",
    )
}

#[derive(Template)]
#[template(path = "dashboard/sign_in.html")]
struct SignInPage {
    next: String,
    error: Option<String>,
    /// The OpenID Provider's host, when sign-in through it is configured.
    oidc: Option<String>,
}

fn oidc_host(state: &AppState) -> Option<String> {
    state.config.dashboard.oidc.as_ref().map(|oidc| {
        reqwest::Url::parse(&oidc.issuer)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| oidc.issuer.clone())
    })
}

/// The sign-in page again, with what went wrong.
pub(crate) fn sign_in_again(
    state: &AppState,
    status: StatusCode,
    next: String,
    error: &str,
) -> Response {
    (
        status,
        render(&SignInPage {
            next,
            error: Some(error.to_string()),
            oidc: oidc_host(state),
        }),
    )
        .into_response()
}

/// `?next=` on the sign-in page.
#[derive(Deserialize)]
pub(crate) struct SignInQuery {
    next: Option<String>,
}

/// `GET /dashboard/sign-in`.
pub(crate) async fn sign_in_form(
    State(state): State<AppState>,
    query: Result<Query<SignInQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let next = query.ok().and_then(|Query(q)| q.next);
    render(&SignInPage {
        next: safe_next(next.as_deref()),
        error: None,
        oidc: oidc_host(&state),
    })
}

/// The sign-in form.
#[derive(Deserialize)]
pub(crate) struct SignInForm {
    credential: SecretString,
    next: Option<String>,
}

/// `POST /dashboard/sign-in`.
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let peer = peer.map(|ConnectInfo(peer)| peer);
    let client = peer
        .map(|peer| crate::policy::client_ip(peer.ip(), &headers, &state.config.trusted_proxies));
    let again =
        |status: StatusCode, next: String, error: &str| sign_in_again(&state, status, next, error);
    if cross_site(&headers) {
        return again(
            StatusCode::FORBIDDEN,
            safe_next(None),
            "Sign in from the dashboard's own page.",
        );
    }
    if let Some(client) = client {
        if state.anomaly.admit_source(client).is_err() {
            return again(
                StatusCode::TOO_MANY_REQUESTS,
                safe_next(None),
                "Too many refused sign-ins from this address; try again later.",
            );
        }
    }
    let Ok(Form(form)) = form else {
        return again(
            StatusCode::BAD_REQUEST,
            safe_next(None),
            "Enter an admin credential.",
        );
    };
    let next = safe_next(form.next.as_deref());
    let now = crate::time::now_ms();
    let source_ip = client.map(|ip| ip.to_string());
    let presented = form.credential.expose_secret().trim();
    let verified = state
        .keys
        .verify(presented, now)
        .ok()
        .filter(|entry| entry.kind == KeyKind::Admin);
    let actor = match verified {
        Some(entry) => match live_actor(&state, &entry.id).await {
            Ok(actor) => actor,
            Err(error) => return unavailable(error),
        },
        None => None,
    };
    let Some(actor) = actor else {
        if let Some(client) = client {
            state.anomaly.credential_refused(client);
        }
        audit(
            &state,
            "unknown",
            "dashboard.sign_in",
            None,
            &source_ip,
            401,
        )
        .await;
        return again(
            StatusCode::UNAUTHORIZED,
            next,
            "That is not a valid admin credential.",
        );
    };
    open_session(&state, &actor.id, None, source_ip, peer, &headers, &next).await
}

/// Open a session for `actor_id` (with an OpenID sign-in's role and scope
/// as JSON), audit it, set the cookie and send the browser on to `next`.
pub(crate) async fn open_session(
    state: &AppState,
    actor_id: &str,
    actor: Option<String>,
    source_ip: Option<String>,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    next: &str,
) -> Response {
    let now = crate::time::now_ms();
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let lifetime = state.config.dashboard.session_lifetime;
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| {
            crate::telemetry::redact::redact(&crate::error::printable(ua))
                .chars()
                .take(256)
                .collect::<String>()
        });
    let record = SessionRecord {
        id_hash: sha256_hex(secret.as_bytes()),
        key_id: actor_id.to_string(),
        created_at: now,
        last_seen_at: now,
        expires_at: now.saturating_add(i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX)),
        source_ip: source_ip.clone(),
        user_agent,
        actor,
    };
    if let Err(error) = state.store.insert_session(&record).await {
        return unavailable(error);
    }
    audit(
        state,
        actor_id,
        "dashboard.sign_in",
        Some(actor_id),
        &source_ip,
        200,
    )
    .await;
    let mut response = Redirect::to(next).into_response();
    if let Some(cookie) = set_cookie(&secret, over_tls(state, peer, headers), lifetime.as_secs()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// `POST /dashboard/sign-out`.
pub(crate) async fn sign_out(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
) -> Response {
    if let Err(error) = state.store.delete_session(&signed_in.id_hash).await {
        return unavailable(error);
    }
    let mut response = Redirect::to("/dashboard/sign-in").into_response();
    for (name, value) in clear_cookies() {
        response.headers_mut().append(name, value);
    }
    response
}

pub(crate) async fn audit(
    state: &AppState,
    actor: &str,
    action: &str,
    target: Option<&str>,
    source_ip: &Option<String>,
    status: u16,
) {
    let event = AuditEvent {
        ts: crate::time::now_ms(),
        actor: actor.to_string(),
        action: action.to_string(),
        target: target.map(str::to_string),
        source_ip: source_ip.clone(),
        status,
        fields: Vec::new(),
    };
    if let Err(error) = state.store.append_audit(&event).await {
        tracing::error!(error = %error, "dashboard sign-in could not be audited");
    }
}
