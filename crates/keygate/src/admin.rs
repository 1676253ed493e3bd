//! The admin API, `/admin/v1/…`: keys and usage. Every route requires an
//! admin credential; data-plane keys get 403.

mod access;
mod admin_credentials;
mod audit;
mod ids;
mod incident;
mod key_lookup;
mod keys;
mod limits;
mod oauth_clients;
mod openapi;
mod provider_credentials;
mod service_accounts;
mod tenancy;
mod trust;

use crate::auth::extract::{refuse_credential_in_query, required_credential};
use crate::auth::{key, KeyKind};
use crate::error::{ApiError, ErrorShape, ShapedError};
use crate::server::AppState;
use crate::store::{UsageFilter, UsageGroup};
pub(crate) use access::{Actor, Role};
use axum::extract::{Query, Request, State};
use axum::http::{Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Deserialize;

type AdminResult = Result<Response, ShapedError>;

fn fail(error: ApiError) -> ShapedError {
    ShapedError(error, ErrorShape::OpenAi)
}

fn store_failed(error: crate::store::StoreError) -> ShapedError {
    tracing::error!(error = %error, "admin store operation failed");
    fail(ApiError::unavailable(
        "The store is unavailable; retry shortly.",
    ))
}

/// Routes under `/admin/v1`.
pub fn router(state: AppState) -> Router<AppState> {
    routes()
        .layer(axum::middleware::from_fn_with_state(state, require_admin))
        .layer(axum::middleware::from_fn(redact_answer))
}

/// The same routes for the dashboard, which signs its users in with an
/// admin credential and calls these in-process with the session's
/// [`Actor`] already in the request's extensions: the same role checks,
/// the same audit log, the same answers. Never mounted on a listener
/// (extensions cannot come from the network).
pub(crate) fn session_router(state: AppState) -> Router {
    routes()
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_session_actor,
        ))
        .layer(axum::middleware::from_fn(redact_answer))
        .with_state(state)
}

fn routes() -> Router<AppState> {
    // Settings that belong to no tenant: instance-wide credentials only.
    let instance_wide = Router::new()
        .route("/audit", get(audit::list))
        .merge(provider_credentials::routes())
        .route_layer(axum::middleware::from_fn(require_instance_wide));
    Router::new()
        .merge(keys::routes())
        .merge(tenancy::routes())
        .merge(admin_credentials::routes())
        .merge(oauth_clients::routes())
        .merge(incident::routes())
        .merge(key_lookup::routes())
        .merge(service_accounts::routes())
        .merge(trust::routes())
        .route("/usage", get(usage_totals))
        .route("/usage/events", get(usage_events))
        .route("/openapi.json", get(openapi::serve))
        .merge(instance_wide)
}

/// The dashboard's requests: the actor was put there by the dashboard's
/// session check; changes are audited exactly as with a credential.
async fn require_session_actor(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(actor) = request.extensions().get::<Actor>().cloned() else {
        return ApiError::unauthorized("invalid_api_key", "Sign in first.")
            .to_response(ErrorShape::OpenAi);
    };
    audit::run_audited(&state, actor.id, request, next).await
}

/// Fields of an answer that exist to show a secret, once (a created or
/// rotated key, a client secret, a service account's key file, an
/// incident's replacement key): everything else in every admin answer
/// passes the redactor, so a credential pasted into a description, a
/// metadata value or a user agent is never shown back.
const SHOWN_ONCE: &[&str] = &[
    "key",
    "client_secret",
    "key_file",
    "private_key",
    "replacement",
];

/// Largest admin answer the redactor reads (larger ones are refused rather
/// than shown unredacted).
const MAX_ANSWER_BYTES: usize = 256 * 1024 * 1024;

async fn redact_answer(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let is_json = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ANSWER_BYTES).await else {
        return ApiError::unavailable("The answer could not be read.")
            .to_response(ErrorShape::OpenAi);
    };
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    };
    crate::telemetry::redact::redact_json(&mut value, SHOWN_ONCE);
    let Ok(text) = serde_json::to_vec(&value) else {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    };
    parts.headers.remove(http::header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(text))
}

/// Every admin route: an admin credential is required; every change (and
/// every refused sign-in) goes to the audit log. The credential's role and
/// scope are read from the store on each request, so a change to them
/// applies at once.
async fn require_admin(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let client = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|peer| {
            crate::policy::client_ip(
                peer.0.ip(),
                request.headers(),
                &state.config.trusted_proxies,
            )
        });
    // A source locked out for credential stuffing is refused before its
    // credential is looked at, here as on the data plane.
    if let Some(client) = client {
        if let Err(error) = state.anomaly.admit_source(client) {
            return error.to_response(ErrorShape::OpenAi);
        }
    }
    let actor = match admin_credential(&state, &request) {
        Ok(id) => match state.store.get_key(&id).await {
            Ok(Some(record)) if record.kind == KeyKind::Admin => Actor::from_record(&record),
            Ok(_) => {
                return ApiError::unauthorized(
                    "revoked_api_key",
                    "This admin credential no longer exists.",
                )
                .to_response(ErrorShape::OpenAi)
            }
            Err(error) => return store_failed(error).into_response(),
        },
        Err((error, actor)) => {
            let presented = required_credential(request.headers()).is_ok();
            if let (Some(client), true) = (client, presented) {
                if error.status == http::StatusCode::UNAUTHORIZED {
                    state.anomaly.credential_refused(client);
                }
            }
            let failed = audit::failed_sign_in(&state, actor, &request, &error);
            drop(request);
            failed.await;
            return error.to_response(ErrorShape::OpenAi);
        }
    };
    let id = actor.id.clone();
    request.extensions_mut().insert(actor);
    audit::run_audited(&state, id, request, next).await
}

/// Instance settings: any instance-wide credential reads them; changing
/// them takes an instance-wide admin or owner.
async fn require_instance_wide(
    Extension(actor): Extension<Actor>,
    request: Request,
    next: Next,
) -> Response {
    let allowed = actor
        .require_instance("read or change instance settings")
        .and_then(|()| match *request.method() {
            Method::GET | Method::HEAD => Ok(()),
            _ => actor.require(access::Role::Admin, "change instance settings"),
        });
    match allowed {
        Ok(()) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}

/// Let the request through only with an instance-wide admin credential of
/// any role, still in the store (`/metrics`, which shows every tenant's
/// spend). The error is the one the admin API would answer.
pub(crate) async fn require_instance_admin(
    state: &AppState,
    request: &http::request::Parts,
    what: &str,
) -> Result<(), ApiError> {
    let id =
        credential_of(state, &request.headers, request.uri.query()).map_err(|(error, _)| error)?;
    match state.store.get_key(&id).await {
        Ok(Some(record)) if record.kind == KeyKind::Admin => Actor::from_record(&record)
            .require_instance(what)
            .map_err(|refused| refused.0),
        Ok(_) => Err(ApiError::unauthorized(
            "revoked_api_key",
            "This admin credential no longer exists.",
        )),
        Err(error) => Err(store_failed(error).0),
    }
}

/// The admin credential's key id; on refusal, the error and the id of the
/// key that was presented, when it was a known one.
fn admin_credential(
    state: &AppState,
    request: &Request,
) -> Result<String, (ApiError, Option<String>)> {
    credential_of(state, request.headers(), request.uri().query())
}

fn credential_of(
    state: &AppState,
    headers: &http::HeaderMap,
    query: Option<&str>,
) -> Result<String, (ApiError, Option<String>)> {
    refuse_credential_in_query(query).map_err(|e| (e, None))?;
    let presented = required_credential(headers).map_err(|e| (e, None))?;
    let entry = state
        .keys
        .verify(presented, crate::time::now_ms())
        .map_err(|e| (e, None))?;
    if entry.kind != KeyKind::Admin {
        return Err((
            ApiError::forbidden(
                "admin_required",
                "This route needs an admin credential; API keys cannot administer the gateway.",
            ),
            Some(entry.id.clone()),
        ));
    }
    Ok(entry.id.clone())
}

fn parse_object<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &str,
) -> Result<T, ShapedError> {
    let invalid = |detail: String| {
        fail(ApiError::invalid_request(format!(
            "Invalid {what}: {detail}"
        )))
    };
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(invalid("expected a JSON object".into()));
    }
    serde_json::from_slice(bytes).map_err(|e| invalid(crate::error::printable(&e.to_string())))
}

/// A small optional JSON object body (an action's options): empty or
/// `null` means the defaults; anything else gets the usual checks.
async fn optional_body<T: Default + serde::de::DeserializeOwned>(
    request: Request,
    what: &str,
) -> Result<T, ShapedError> {
    const LIMIT: usize = 16 * 1024;
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, LIMIT)
        .await
        .map_err(|_| fail(ApiError::payload_too_large(LIMIT)))?;
    // Empty or `null`: no options, the defaults.
    if bytes.iter().all(u8::is_ascii_whitespace) || bytes.trim_ascii() == b"null" {
        return Ok(T::default());
    }
    let bytes = crate::proxy::read_json_body(&parts.headers, axum::body::Body::from(bytes), LIMIT)
        .await
        .map_err(fail)?;
    parse_object(&bytes, what)
}

/// Filters of the usage reports.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct UsageQuery {
    /// What the totals are per (totals only), comma-separated: `key`,
    /// `owner`, `project`, `model`, `provider`, `day` (a calendar day in
    /// UTC). Default: `key,model`.
    #[param(
        pattern = r"^(key|owner|project|model|provider|day)(,(key|owner|project|model|provider|day))*$"
    )]
    by: Option<String>,
    /// Only this key.
    #[param(pattern = "^key_[A-Za-z0-9]{1,64}$")]
    key_id: Option<String>,
    /// Only requests made with keys of this owner.
    #[param(pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,256}$")]
    owner: Option<String>,
    /// Only requests made with keys of this project.
    #[param(pattern = "^proj_[A-Za-z0-9]{1,64}$")]
    project_id: Option<String>,
    /// Only this model, as requested.
    #[param(pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,256}$")]
    model: Option<String>,
    /// Only this provider.
    #[param(pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,256}$")]
    provider: Option<String>,
    /// From (inclusive): an RFC 3339 time, or a duration back from now.
    #[param(schema_with = openapi::time_or_duration)]
    since: Option<String>,
    /// Until (exclusive), likewise.
    #[param(schema_with = openapi::time_or_duration)]
    until: Option<String>,
    /// At most this many rows (events only; default 1000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<i64>,
}

/// Usage totals, one row per group.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct UsageTotals {
    data: Vec<crate::store::UsageTotal>,
}

/// Ledger rows, oldest first.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct UsageEvents {
    data: Vec<crate::ledger::UsageEvent>,
}

/// A time filter: an RFC 3339 time, or a duration back from `now` (`24h`).
fn query_time(
    param: &'static str,
    text: Option<String>,
    now: i64,
) -> Result<Option<i64>, ShapedError> {
    text.map(|t| match chrono::DateTime::parse_from_rfc3339(&t) {
        Ok(time) => Ok(time.timestamp_millis()),
        Err(_) => humantime::parse_duration(&t)
            .ok()
            .and_then(|d| i64::try_from(d.as_millis()).ok())
            .map(|ms| now.saturating_sub(ms))
            .ok_or_else(|| {
                fail(ApiError::invalid_param(
                    param,
                    format!("'{param}' must be an RFC 3339 time or a duration like 24h."),
                ))
            }),
    })
    .transpose()
}

/// A free-text filter (owner, model, provider): what the ledger can hold,
/// 1-256 printable characters; anything else is refused rather than sent
/// to a database that cannot even compare it (PostgreSQL and NUL).
fn text_filter(param: &'static str, value: Option<String>) -> Result<Option<String>, ShapedError> {
    match value {
        Some(text)
            if text.is_empty()
                || text.chars().count() > 256
                || text.chars().any(char::is_control) =>
        {
            Err(fail(ApiError::invalid_param(
                param,
                format!("'{param}' must be 1-256 printable characters."),
            )))
        }
        other => Ok(other),
    }
}

/// `by=`: comma-separated groupings, each once (a repeat is ignored).
fn usage_groups(text: Option<&str>) -> Result<Vec<UsageGroup>, ShapedError> {
    let Some(text) = text else {
        return Ok(vec![UsageGroup::Key, UsageGroup::Model]);
    };
    let mut groups = Vec::new();
    for name in text.split(',') {
        let group = UsageGroup::parse(name).ok_or_else(|| {
            let names: Vec<&str> = UsageGroup::ALL.iter().map(|g| g.name()).collect();
            fail(ApiError::invalid_param(
                "by",
                format!(
                    "'by' takes a comma-separated list of {}; '{}' is not one.",
                    names.join(", "),
                    crate::error::printable(name)
                ),
            ))
        })?;
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    Ok(groups)
}

/// A usage report's request, within the caller's scope.
struct UsageRequest {
    filter: UsageFilter,
    limit: i64,
    by: Vec<UsageGroup>,
}

/// The usage a caller asked for, within its scope.
fn usage_query(actor: &Actor, uri: &Uri) -> Result<UsageRequest, ShapedError> {
    let Query(query) = Query::<UsageQuery>::try_from_uri(uri).map_err(|e| {
        fail(ApiError::invalid_request(crate::error::printable(
            &e.body_text(),
        )))
    })?;
    let now = crate::time::now_ms();
    let when = |param: &'static str, text: Option<String>| query_time(param, text, now);
    if query
        .key_id
        .as_deref()
        .is_some_and(|id| !key::valid_key_id(id))
    {
        return Err(fail(ApiError::invalid_param(
            "key_id",
            "'key_id' is not a key id (key_…).",
        )));
    }
    let is_project_id = |id: &str| {
        id.strip_prefix("proj_").is_some_and(|rest| {
            (1..=64).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric())
        })
    };
    if query
        .project_id
        .as_deref()
        .is_some_and(|id| !is_project_id(id))
    {
        return Err(fail(ApiError::invalid_param(
            "project_id",
            "'project_id' is not a project id (proj_…).",
        )));
    }
    let by = usage_groups(query.by.as_deref())?;
    let filter = UsageFilter {
        key_id: query.key_id,
        since: when("since", query.since)?,
        until: when("until", query.until)?,
        scope_org_id: actor.org_id.clone(),
        scope_project_id: actor.project_id.clone(),
        owner: text_filter("owner", query.owner)?,
        project_id: query.project_id,
        model: text_filter("model", query.model)?,
        provider: text_filter("provider", query.provider)?,
    };
    let limit = query.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(fail(ApiError::invalid_param(
            "limit",
            "'limit' must be between 1 and 10000.",
        )));
    }
    Ok(UsageRequest { filter, limit, by })
}

/// Usage totals
///
/// Requests, errors, tokens and cost per group (by default per key and
/// model), within the caller's scope. Every row carries every group column,
/// `null` where it is not part of the grouping. Days are calendar days in
/// UTC.
#[utoipa::path(
    get,
    path = "/usage",
    tag = "usage",
    params(UsageQuery),
    responses(
        (status = 200, description = "Totals.", body = UsageTotals),
        (status = 400, response = openapi::BadRequest),
        (status = 503, response = openapi::Unavailable),
    )
)]
async fn usage_totals(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    uri: Uri,
) -> AdminResult {
    let request = usage_query(&actor, &uri)?;
    state.ledger.flush().await;
    let rows = state
        .store
        .usage_totals(&request.filter, &request.by)
        .await
        .map_err(store_failed)?;
    Ok(Json(UsageTotals { data: rows }).into_response())
}

/// Usage events
///
/// Individual ledger rows, oldest first, within the caller's scope.
#[utoipa::path(
    get,
    path = "/usage/events",
    tag = "usage",
    params(UsageQuery),
    responses(
        (status = 200, description = "Ledger rows.", body = UsageEvents),
        (status = 400, response = openapi::BadRequest),
        (status = 503, response = openapi::Unavailable),
    )
)]
async fn usage_events(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    uri: Uri,
) -> AdminResult {
    let request = usage_query(&actor, &uri)?;
    state.ledger.flush().await;
    let rows = state
        .store
        .usage_events(&request.filter, request.limit)
        .await
        .map_err(store_failed)?;
    Ok(Json(UsageEvents { data: rows }).into_response())
}
