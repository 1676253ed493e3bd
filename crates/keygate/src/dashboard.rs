//! The web dashboard, `/dashboard`: served by the gateway itself from
//! server-rendered templates (askama) with two small vendored libraries
//! embedded in the binary (htmx for live fragments, uPlot for charts). No
//! CDN, no Node build, no inline script: the Content-Security-Policy allows
//! scripts and styles from this origin only.
//!
//! Sign-in takes an admin credential and opens a server-side session (see
//! [`session`]); every change goes through the admin API's own routes
//! in-process ([`actions`]), so roles, validation and the audit log are
//! exactly the admin API's. Reads in a tenant's scope use the store's
//! dashboard queries (an hourly rollup of the ledger, keyset pages of keys).

mod actions;
mod alerts;
mod assets;
mod audit;
mod format;
mod keys;
mod oidc;
mod overview;
mod providers;
mod session;
mod usage;

use crate::server::AppState;
use askama::Template;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
pub(crate) use session::SignedIn;

/// Routes under `/dashboard`.
pub fn router(state: AppState) -> Router<AppState> {
    let signed_in = Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard/overview") }))
        .route("/overview", get(overview::page))
        .route("/overview/live", get(overview::live))
        .route("/overview/series", get(overview::series))
        .route("/keys", get(keys::list).post(keys::create))
        .route("/keys/{id}", get(keys::show).post(keys::update_policy))
        .route("/keys/{id}/rotate", post(keys::rotate))
        .route("/keys/{id}/revoke", post(keys::revoke))
        .route("/keys/{id}/suspend", post(keys::suspend))
        .route("/keys/{id}/resume", post(keys::resume))
        .route("/usage", get(usage::page))
        .route("/usage.csv", get(usage::csv))
        .route("/alerts", get(alerts::page))
        .route("/audit", get(audit::page))
        .route("/providers", get(providers::page))
        .route("/sign-out", post(session::sign_out))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            session::require_session,
        ));
    Router::new()
        .route(
            "/sign-in",
            get(session::sign_in_form).post(session::sign_in),
        )
        .route("/sign-in/oidc", get(oidc::start))
        .route("/sign-in/oidc/callback", get(oidc::callback))
        .route("/assets/{name}", get(assets::serve))
        .merge(signed_in)
        .fallback(not_found)
        .layer(axum::middleware::from_fn(security_headers))
}

/// The policy every dashboard answer carries: scripts, styles, images and
/// fetches from this origin only, no inline script or style, no framing,
/// forms post only here.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Security headers on every dashboard answer, and its server time
/// (`Server-Timing: app;dur=…`, milliseconds) so that slow pages show.
async fn security_headers(request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let mut response = next.run(request).await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        // Not `no-referrer`: with it, browsers send `Origin: null` on the
        // dashboard's own form posts, which the cross-site check refuses.
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        // Pages can hold a secret shown once: never cached, anywhere
        // (assets set their own, long, caching).
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if let Ok(value) = HeaderValue::from_str(&format!("app;dur={elapsed_ms:.1}")) {
        headers.insert("server-timing", value);
    }
    response
}

/// What every signed-in page shows around its content.
pub(crate) struct Layout {
    /// The page's title.
    pub title: String,
    /// Which navigation entry is current.
    pub active: &'static str,
    /// The signed-in credential, its role and scope, for the header.
    pub who: String,
    /// The session's CSRF token, for every form.
    pub csrf: String,
    /// Whether the credential may change keys (member and above).
    pub can_change_keys: bool,
    /// Whether the credential is instance-wide (audit log, providers).
    pub instance_wide: bool,
}

impl Layout {
    pub(crate) fn new(
        signed_in: &SignedIn,
        title: impl Into<String>,
        active: &'static str,
    ) -> Self {
        let actor = &signed_in.actor;
        let scope = match (&actor.org_id, &actor.project_id) {
            (None, _) => "whole instance".to_string(),
            (Some(org), None) => format!("organisation {org}"),
            (Some(org), Some(project)) => format!("project {project} of {org}"),
        };
        Layout {
            title: title.into(),
            active,
            who: format!("{} · {} · {}", actor.id, actor.role.as_str(), scope),
            csrf: signed_in.csrf.clone(),
            can_change_keys: actor.role >= crate::admin::Role::Member,
            instance_wide: actor.is_instance_wide(),
        }
    }
}

/// Render a template as an HTML answer; a template that cannot render is
/// a short 503 page, never a panic.
pub(crate) fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(error = %error, "dashboard template failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Html("<!doctype html><title>keygate</title><p>This page could not be shown.</p>"),
            )
                .into_response()
        }
    }
}

/// A page that says what went wrong, with the admin API's status.
#[derive(Template)]
#[template(path = "dashboard/problem.html")]
pub(crate) struct Problem {
    pub page: Option<Layout>,
    pub heading: String,
    pub message: String,
}

/// Answer `status` with a page saying `message` (autoescaped).
pub(crate) fn problem(
    signed_in: Option<&SignedIn>,
    status: StatusCode,
    heading: &str,
    message: impl Into<String>,
) -> Response {
    let page = Problem {
        page: signed_in.map(|s| Layout::new(s, heading, "")),
        heading: heading.to_string(),
        message: message.into(),
    };
    (status, render(&page)).into_response()
}

/// The store failed: a short page, the details in the log.
pub(crate) fn store_failed(signed_in: &SignedIn, error: crate::store::StoreError) -> Response {
    tracing::error!(error = %error, "dashboard store read failed");
    problem(
        Some(signed_in),
        StatusCode::SERVICE_UNAVAILABLE,
        "Store unavailable",
        "The store did not answer; retry shortly.",
    )
}

async fn not_found() -> Response {
    problem(
        None,
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such dashboard page.",
    )
}
