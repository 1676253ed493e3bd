//! The audit log: every administrative change and every refused admin
//! sign-in, with actor, time, source IP, target, outcome and the names of
//! the fields the request set — never their values, so no secret is ever
//! written. `GET /admin/v1/audit` reads it.

use super::openapi::{BadRequest, Unavailable};
use super::{fail, query_time, store_failed, AdminResult};
use crate::error::ApiError;
use crate::server::AppState;
use crate::store::{AuditEvent, AuditFilter};
use axum::body::Body;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::SocketAddr;
use utoipa::{IntoParams, ToSchema};

/// Largest admin request body read to learn its field names.
const MAX_BODY: usize = 1024 * 1024;
/// Largest created-resource answer read to learn its id.
const MAX_ANSWER: usize = 256 * 1024;

fn source_ip(request: &Request) -> Option<String> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip().to_string())
}

/// The audited action and its target, from the method and path.
fn describe(method: &Method, path: &str) -> (String, Option<String>) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let clean = |s: &str| {
        crate::error::printable(s)
            .chars()
            .take(128)
            .collect::<String>()
    };
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["keys"]) => ("key.create".into(), None),
        // The answer names the owner or project (`selector`).
        ("POST", ["keys", "revoke"]) => ("key.revoke_bulk".into(), None),
        // `keygate scan --verify`: the secrets asked about are never kept.
        ("POST", ["keys", "lookup"]) => ("key.lookup".into(), None),
        ("DELETE", ["keys", id]) => ("key.revoke".into(), Some(clean(id))),
        ("PATCH", ["keys", id]) => ("key.update".into(), Some(clean(id))),
        ("POST", ["keys", id, verb]) => (format!("key.{}", clean(verb)), Some(clean(id))),
        ("POST", ["organisations"]) => ("organisation.create".into(), None),
        ("PATCH", ["organisations", id]) => ("organisation.update".into(), Some(clean(id))),
        ("POST", ["organisations", id, "balance"]) => {
            ("organisation.top_up".into(), Some(clean(id)))
        }
        (method @ ("PUT" | "DELETE"), ["organisations", id, "owners", owner, "budget"]) => {
            // The owner is a name, percent-encoded in the path.
            let owner = percent_encoding::percent_decode_str(owner).decode_utf8_lossy();
            let verb = if method == "PUT" { "set" } else { "remove" };
            (
                format!("owner_budget.{verb}"),
                Some(clean(&format!("owner:{id}:{owner}"))),
            )
        }
        ("POST", ["projects"]) => ("project.create".into(), None),
        ("PATCH", ["projects", id]) => ("project.update".into(), Some(clean(id))),
        ("POST", ["admin-credentials"]) => ("admin_credential.create".into(), None),
        ("POST", ["admin-credentials", id, verb]) => {
            (format!("admin_credential.{}", clean(verb)), Some(clean(id)))
        }
        ("POST", ["service-accounts"]) => ("service_account.create".into(), None),
        ("POST", ["service-accounts", id, "keys"]) => {
            ("service_account.key_add".into(), Some(clean(id)))
        }
        ("POST", ["service-accounts", id, "keys", kid, verb]) => (
            format!("service_account.key_{}", clean(verb)),
            Some(clean(&format!("{id}/{kid}"))),
        ),
        ("POST", ["trusted-issuers"]) => ("trusted_issuer.create".into(), None),
        ("POST", ["trusted-issuers", id, verb]) => {
            (format!("trusted_issuer.{}", clean(verb)), Some(clean(id)))
        }
        ("POST", ["provider-credentials"]) => ("provider_credential.create".into(), None),
        ("PUT", ["provider-credentials", name]) => {
            ("provider_credential.update".into(), Some(clean(name)))
        }
        ("DELETE", ["provider-credentials", name]) => {
            ("provider_credential.delete".into(), Some(clean(name)))
        }
        _ => (format!("{} {}", method.as_str(), clean(path)), None),
    }
}

/// Top-level field names of a JSON object body (values are never kept).
fn field_names(body: &[u8]) -> Vec<String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => map
            .keys()
            .take(64)
            .map(|k| crate::error::printable(k).chars().take(64).collect())
            .collect(),
        _ => Vec::new(),
    }
}

async fn append(state: &AppState, event: AuditEvent) {
    if let Err(error) = state.store.append_audit(&event).await {
        // The change itself happened; losing its audit row is logged loudly.
        tracing::error!(%error, action = %event.action, "audit log write failed");
    }
}

/// Run an admin request; record it when it changes something.
pub(super) async fn run_audited(
    state: &AppState,
    actor: String,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    if method == Method::GET || method == Method::HEAD {
        return next.run(request).await;
    }
    let source_ip = source_ip(&request);
    let (action, mut target) = describe(&method, request.uri().path());
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return ApiError::payload_too_large(MAX_BODY)
                .to_response(crate::error::ErrorShape::OpenAi)
        }
    };
    let fields = field_names(&bytes);
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let status = response.status();
    let mut response = response;
    if target.is_none() && status.is_success() {
        // A created resource is named in the answer (`id`, or `name` for
        // provider credentials, or the `selector` of a bulk revocation);
        // only that field is read from it.
        let (parts, body) = response.into_parts();
        let answer = axum::body::to_bytes(body, MAX_ANSWER)
            .await
            .unwrap_or_default();
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&answer) {
            target = map
                .get("id")
                .or_else(|| map.get("name"))
                .or_else(|| map.get("selector"))
                .and_then(Value::as_str)
                .map(crate::error::printable);
        }
        response = Response::from_parts(parts, Body::from(answer));
    }
    append(
        state,
        AuditEvent {
            ts: crate::time::now_ms(),
            actor,
            action,
            target,
            source_ip,
            status: status.as_u16(),
            fields,
        },
    )
    .await;
    response
}

/// Record a refused admin sign-in.
pub(super) fn failed_sign_in<'a>(
    state: &'a AppState,
    actor: Option<String>,
    request: &Request,
    error: &ApiError,
) -> impl std::future::Future<Output = ()> + Send + 'a {
    // Taken now: the future must not hold the request (not shareable
    // across threads).
    let target = Some(crate::error::printable(request.uri().path()));
    let source_ip = source_ip(request);
    let status = error.status.as_u16();
    append(
        state,
        AuditEvent {
            ts: crate::time::now_ms(),
            actor: actor.unwrap_or_else(|| "unknown".into()),
            action: "admin.sign_in_failed".into(),
            target,
            source_ip,
            status,
            fields: Vec::new(),
        },
    )
}

/// Filters of `GET /admin/v1/audit`; an unknown parameter is refused.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// Only events by this actor (an admin credential's key id, or `unknown`).
    actor: Option<String>,
    /// Only this action, e.g. `key.create`, `admin.sign_in_failed`.
    action: Option<String>,
    /// Only events on this target (a key id, a credential name).
    target: Option<String>,
    /// From this time: an RFC 3339 time, or a duration back from now (`24h`).
    #[param(schema_with = super::openapi::time_or_duration)]
    since: Option<String>,
    /// Up to this time: an RFC 3339 time, or a duration back from now.
    #[param(schema_with = super::openapi::time_or_duration)]
    until: Option<String>,
    /// At most this many events (default 100).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<i64>,
}

/// One audit event.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AuditEvent)]
struct AuditEventView {
    #[schema(format = DateTime)]
    time: String,
    /// Key id of the admin credential that acted, or `unknown` for a refused
    /// sign-in with an unknown credential.
    actor: String,
    /// What was done: `key.create`, `key.revoke`,
    /// `provider_credential.update`, `admin.sign_in_failed`, …
    action: String,
    /// What it was done to (a key id, a credential name, a path).
    target: Option<String>,
    source_ip: Option<String>,
    /// The HTTP status of the answer.
    status: u16,
    /// Names (never values) of the fields the request body set.
    fields: Vec<String>,
}

/// `GET /admin/v1/audit`.
#[derive(Debug, Serialize, ToSchema)]
struct AuditEventList {
    data: Vec<AuditEventView>,
}

/// Read the audit log
///
/// Newest first.
#[utoipa::path(
    get,
    path = "/audit",
    operation_id = "list_audit_events",
    tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "Matching events, newest first.", body = AuditEventList),
        (status = 400, response = BadRequest),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn list(State(state): State<AppState>, uri: Uri) -> AdminResult {
    let Query(query) = Query::<AuditQuery>::try_from_uri(&uri).map_err(|e| {
        fail(ApiError::invalid_request(crate::error::printable(
            &e.body_text(),
        )))
    })?;
    let now = crate::time::now_ms();
    let limit = query.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(fail(ApiError::invalid_param(
            "limit",
            "'limit' must be 1-10000.",
        )));
    }
    let filter = AuditFilter {
        actor: query.actor,
        action: query.action,
        target: query.target,
        since: query_time("since", query.since, now)?,
        until: query_time("until", query.until, now)?,
    };
    let events = state
        .store
        .audit_events(&filter, limit)
        .await
        .map_err(store_failed)?;
    let data = events
        .into_iter()
        .map(|e| AuditEventView {
            time: crate::time::rfc3339(e.ts),
            actor: e.actor,
            action: e.action,
            target: e.target,
            source_ip: e.source_ip,
            status: e.status,
            fields: e.fields,
        })
        .collect();
    Ok(Json(AuditEventList { data }).into_response())
}
