//! The admin API, `/admin/v1/…`: keys and usage. Every route requires an
//! admin credential; data-plane keys get 403.

mod audit;
mod openapi;
mod provider_credentials;

use crate::auth::extract::{refuse_credential_in_query, required_credential};
use crate::auth::{key, KeyKind, ModelAllowlist};
use crate::error::{ApiError, ErrorShape, ShapedError};
use crate::server::AppState;
use crate::store::{KeyRecord, UsageFilter};
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{json, Value};

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
    Router::new()
        .route("/keys", post(create_key).get(list_keys))
        .route(
            "/keys/{id}",
            get(show_key).patch(update_key).delete(revoke_key_by_delete),
        )
        .route("/keys/{id}/revoke", post(revoke_key))
        .route("/keys/{id}/rotate", post(rotate_key))
        .route("/keys/{id}/suspend", post(suspend_key))
        .route("/keys/{id}/resume", post(resume_key))
        .route("/usage", get(usage_totals))
        .route("/usage/events", get(usage_events))
        .route("/audit", get(audit::list))
        .route("/openapi.json", get(openapi::serve))
        .merge(provider_credentials::routes())
        .layer(axum::middleware::from_fn_with_state(state, require_admin))
}

/// Every admin route: an admin credential is required; every change (and
/// every refused sign-in) goes to the audit log.
async fn require_admin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match admin_credential(&state, &request) {
        Ok(actor) => audit::run_audited(&state, actor, request, next).await,
        Err((error, actor)) => {
            let failed = audit::failed_sign_in(&state, actor, &request, &error);
            drop(request);
            failed.await;
            error.to_response(ErrorShape::OpenAi)
        }
    }
}

/// The admin credential's key id; on refusal, the error and the id of the
/// key that was presented, when it was a known one.
fn admin_credential(
    state: &AppState,
    request: &Request,
) -> Result<String, (ApiError, Option<String>)> {
    refuse_credential_in_query(request.uri().query()).map_err(|e| (e, None))?;
    let presented = required_credential(request.headers()).map_err(|e| (e, None))?;
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

/// A key as the admin API shows it: never the secret.
fn key_view(record: &KeyRecord, now: i64, rotation_policy: std::time::Duration) -> Value {
    // The current secret's age, against the rotation policy.
    let secret_age_ms = now.saturating_sub(record.rotated_at.unwrap_or(record.created_at));
    let policy_ms = i64::try_from(rotation_policy.as_millis()).unwrap_or(i64::MAX);
    let status = if record.revoked_at.is_some() {
        "revoked"
    } else if record.suspended_at.is_some() {
        "suspended"
    } else if record.expires_at.is_some_and(|t| t <= now) {
        "expired"
    } else {
        "active"
    };
    json!({
        "id": record.id,
        "name": record.name,
        "env": record.env,
        "status": status,
        "hint": record.hint,
        "models": record.models,
        "scopes": record.scopes,
        "allow_ips": record.allow_ips,
        "description": record.description,
        "metadata": record.metadata,
        "created_at": crate::time::rfc3339(record.created_at),
        "expires_at": record.expires_at.map(crate::time::rfc3339),
        "revoked_at": record.revoked_at.map(crate::time::rfc3339),
        "revoke_reason": record.revoke_reason,
        "suspended_at": record.suspended_at.map(crate::time::rfc3339),
        "rotated_at": record.rotated_at.map(crate::time::rfc3339),
        "secret_age_days": secret_age_ms / 86_400_000,
        "rotation_due": record.revoked_at.is_none() && secret_age_ms >= policy_ms,
        // During a rotation's grace period the replaced secret still works
        // until this time.
        "previous_secret_expires_at": record
            .previous_expires_at
            .filter(|t| *t > now && record.revoked_at.is_none())
            .map(crate::time::rfc3339),
    })
}

/// Parse a JSON object body (serde would also accept an array for a struct).
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

/// A small optional JSON object body (an action's options): empty means
/// the defaults; anything else gets the usual checks.
async fn optional_body<T: Default + serde::de::DeserializeOwned>(
    request: Request,
    what: &str,
) -> Result<T, ShapedError> {
    const LIMIT: usize = 16 * 1024;
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, LIMIT)
        .await
        .map_err(|_| fail(ApiError::payload_too_large(LIMIT)))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let bytes = crate::proxy::read_json_body(&parts.headers, axum::body::Body::from(bytes), LIMIT)
        .await
        .map_err(fail)?;
    parse_object(&bytes, what)
}

/// Body of `POST /admin/v1/keys`. Unknown fields are refused, so a client
/// cannot set anything the API does not offer (OWASP API3).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    name: String,
    #[serde(default)]
    models: Vec<String>,
    #[serde(default)]
    env: Option<String>,
    /// A duration from now (`30d`) or an RFC 3339 time.
    #[serde(default)]
    expires: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    allow_ips: Vec<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    metadata: serde_json::Map<String, Value>,
}

const MAX_DESCRIPTION: usize = 1024;
const MAX_METADATA_BYTES: usize = 8 * 1024;

/// Check the policy fields a create or an update sets.
fn validate_policy(
    scopes: &[String],
    allow_ips: &[String],
    description: Option<&str>,
    metadata: &serde_json::Map<String, Value>,
) -> Result<(), ShapedError> {
    crate::policy::Scopes::parse(scopes).map_err(|e| fail(ApiError::invalid_param("scopes", e)))?;
    crate::policy::IpAllowlist::parse(allow_ips)
        .map_err(|e| fail(ApiError::invalid_param("allow_ips", e)))?;
    if description.is_some_and(|d| {
        d.chars().count() > MAX_DESCRIPTION || d.chars().any(|c| c.is_control() && c != '\n')
    }) {
        return Err(fail(ApiError::invalid_param(
            "description",
            format!("'description' takes up to {MAX_DESCRIPTION} printable characters."),
        )));
    }
    if serde_json::to_vec(metadata).map_or(true, |b| b.len() > MAX_METADATA_BYTES) {
        return Err(fail(ApiError::invalid_param(
            "metadata",
            format!("'metadata' must be a JSON object of at most {MAX_METADATA_BYTES} bytes."),
        )));
    }
    Ok(())
}

fn validate_name(name: &str) -> Result<(), ShapedError> {
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(fail(ApiError::invalid_param(
            "name",
            format!("'name' must be 1-{MAX_NAME} printable characters."),
        )));
    }
    Ok(())
}

fn validate_models(models: &[String]) -> Result<(), ShapedError> {
    if models.len() > MAX_MODEL_PATTERNS || models.iter().any(|m| m.is_empty() || m.len() > 256) {
        return Err(fail(ApiError::invalid_param(
            "models",
            format!("'models' takes at most {MAX_MODEL_PATTERNS} non-empty patterns of up to 256 characters."),
        )));
    }
    ModelAllowlist::new(models.to_vec())
        .map(|_| ())
        .map_err(|e| fail(ApiError::invalid_param("models", e)))
}

fn parse_expiry(text: Option<&str>, now: i64) -> Result<Option<i64>, ShapedError> {
    let expires_at = text
        .map(|text| crate::time::parse_time_or_duration(text, now))
        .transpose()
        .map_err(|e| {
            fail(ApiError::invalid_param(
                "expires",
                crate::error::printable(&e),
            ))
        })?;
    if expires_at.is_some_and(|t| t <= now) {
        return Err(fail(ApiError::invalid_param(
            "expires",
            "'expires' must be in the future.",
        )));
    }
    Ok(expires_at)
}

const MAX_NAME: usize = 128;
const MAX_MODEL_PATTERNS: usize = 256;

async fn create_key(State(state): State<AppState>, request: Request) -> AdminResult {
    let (parts, body) = request.into_parts();
    let bytes = crate::proxy::read_json_body(&parts.headers, body, 64 * 1024)
        .await
        .map_err(fail)?;
    let input: CreateKey = parse_object(&bytes, "key definition")?;
    let name = input.name.trim();
    validate_name(name)?;
    validate_models(&input.models)?;
    validate_policy(
        &input.scopes,
        &input.allow_ips,
        input.description.as_deref(),
        &input.metadata,
    )?;
    let env = input.env.unwrap_or_else(|| "live".into());
    if !state.config.environments.contains(&env) {
        return Err(fail(ApiError::invalid_param(
            "env",
            format!(
                "Unknown environment '{}'; configured: {}.",
                crate::error::printable(&env),
                state.config.environments.join(", ")
            ),
        )));
    }
    let now = crate::time::now_ms();
    let expires_at = parse_expiry(input.expires.as_deref(), now)?;

    let secret = key::generate(&env);
    let record = KeyRecord {
        id: key::new_key_id(),
        kind: KeyKind::Data,
        name: name.to_string(),
        env,
        secret_hash: hex::encode(state.keys.hasher().digest(secret.expose_secret())),
        hint: key::hint(secret.expose_secret()),
        models: input.models,
        created_at: now,
        expires_at,
        revoked_at: None,
        revoke_reason: None,
        updated_at: now,
        previous_secret_hash: None,
        previous_expires_at: None,
        suspended_at: None,
        scopes: input.scopes,
        allow_ips: input.allow_ips,
        description: input.description,
        metadata: input.metadata,
        rotated_at: None,
    };
    state
        .store
        .insert_key(&record)
        .await
        .map_err(store_failed)?;
    state.keys.upsert(&record);
    tracing::info!(key_id = %record.id, env = %record.env, "key created");
    let mut view = key_view(&record, now, state.config.rotation_policy);
    // The secret is shown exactly once, here.
    view["key"] = Value::String(secret.expose_secret().to_string());
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn list_keys(State(state): State<AppState>) -> AdminResult {
    let now = crate::time::now_ms();
    let keys = state
        .store
        .list_keys(KeyKind::Data)
        .await
        .map_err(store_failed)?;
    let data: Vec<Value> = keys
        .iter()
        .map(|k| key_view(k, now, state.config.rotation_policy))
        .collect();
    Ok(Json(json!({ "data": data })).into_response())
}

async fn find_data_key(state: &AppState, id: &str) -> Result<KeyRecord, ShapedError> {
    let not_found = || {
        fail(ApiError::not_found(format!(
            "No key with id '{}'.",
            crate::error::printable(id)
        )))
    };
    if !key::valid_key_id(id) {
        return Err(not_found());
    }
    state
        .store
        .get_key(id)
        .await
        .map_err(store_failed)?
        .filter(|k| k.kind == KeyKind::Data)
        .ok_or_else(|| {
            fail(ApiError::not_found(format!(
                "No key with id '{}'.",
                crate::error::printable(id)
            )))
        })
}

async fn show_key(State(state): State<AppState>, Path(id): Path<String>) -> AdminResult {
    let record = find_data_key(&state, &id).await?;
    Ok(Json(key_view(
        &record,
        crate::time::now_ms(),
        state.config.rotation_policy,
    ))
    .into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeKey {
    #[serde(default)]
    reason: Option<String>,
}

async fn revoke(state: &AppState, id: &str, reason: Option<String>) -> AdminResult {
    find_data_key(state, id).await?;
    let reason = reason
        .map(|r| crate::error::printable(r.trim()))
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "revoked by admin".into());
    let now = crate::time::now_ms();
    let record = state
        .store
        .revoke_key(id, now, &reason)
        .await
        .map_err(store_failed)?
        .ok_or_else(|| fail(ApiError::not_found("The key vanished while being revoked.")))?;
    state.keys.upsert(&record);
    tracing::info!(key_id = %record.id, "key revoked");
    Ok(Json(key_view(&record, now, state.config.rotation_policy)).into_response())
}

async fn revoke_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> AdminResult {
    let input: RevokeKey = optional_body(request, "revocation").await?;
    revoke(&state, &id, input.reason).await
}

async fn revoke_key_by_delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> AdminResult {
    revoke(&state, &id, None).await
}

/// Body of `PATCH /admin/v1/keys/{id}`: only these fields may change; an
/// unknown one (`env`, `kind`, `secret_hash`, …) is refused, never applied
/// or ignored (OWASP API3, mass assignment). `expires: null` removes expiry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateKey {
    name: Option<String>,
    models: Option<Vec<String>>,
    scopes: Option<Vec<String>>,
    allow_ips: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    expires: Option<Option<String>>,
    metadata: Option<serde_json::Map<String, Value>>,
}

/// Distinguish `"expires": null` (remove) from an absent field (keep).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `PATCH /admin/v1/keys/{id}`
async fn update_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> AdminResult {
    let (parts, body) = request.into_parts();
    let bytes = crate::proxy::read_json_body(&parts.headers, body, 64 * 1024)
        .await
        .map_err(fail)?;
    let input: UpdateKey = parse_object(&bytes, "key update")?;
    let mut record = find_data_key(&state, &id).await?;
    if record.revoked_at.is_some() {
        return Err(fail(ApiError::invalid_request(
            "A revoked key cannot be changed.",
        )));
    }
    let now = crate::time::now_ms();
    if let Some(name) = input.name {
        let name = name.trim().to_string();
        validate_name(&name)?;
        record.name = name;
    }
    if let Some(models) = input.models {
        validate_models(&models)?;
        record.models = models;
    }
    if let Some(scopes) = input.scopes {
        record.scopes = scopes;
    }
    if let Some(allow_ips) = input.allow_ips {
        record.allow_ips = allow_ips;
    }
    if let Some(description) = input.description {
        record.description = description;
    }
    if let Some(metadata) = input.metadata {
        record.metadata = metadata;
    }
    if let Some(expires) = input.expires {
        record.expires_at = parse_expiry(expires.as_deref(), now)?;
    }
    validate_policy(
        &record.scopes,
        &record.allow_ips,
        record.description.as_deref(),
        &record.metadata,
    )?;
    record.updated_at = now;
    let stored = state
        .store
        .update_key(&record)
        .await
        .map_err(store_failed)?
        .ok_or_else(|| {
            fail(ApiError::not_found(
                "The key was revoked or removed meanwhile.",
            ))
        })?;
    state.keys.upsert(&stored);
    tracing::info!(key_id = %stored.id, "key updated");
    Ok(Json(key_view(&stored, now, state.config.rotation_policy)).into_response())
}

/// `POST /admin/v1/keys/{id}/suspend`: refused until resumed.
async fn suspend_key(State(state): State<AppState>, Path(id): Path<String>) -> AdminResult {
    set_suspended(&state, &id, true).await
}

/// `POST /admin/v1/keys/{id}/resume`
async fn resume_key(State(state): State<AppState>, Path(id): Path<String>) -> AdminResult {
    set_suspended(&state, &id, false).await
}

async fn set_suspended(state: &AppState, id: &str, suspend: bool) -> AdminResult {
    let existing = find_data_key(state, id).await?;
    if existing.revoked_at.is_some() {
        return Err(fail(ApiError::invalid_request(
            "A revoked key cannot be suspended or resumed.",
        )));
    }
    let now = crate::time::now_ms();
    // Suspending a suspended key keeps its original time.
    let since = suspend.then(|| existing.suspended_at.unwrap_or(now));
    let record = state
        .store
        .set_suspended(id, since, now)
        .await
        .map_err(store_failed)?
        .ok_or_else(|| {
            fail(ApiError::not_found(
                "The key was revoked or removed meanwhile.",
            ))
        })?;
    state.keys.upsert(&record);
    tracing::info!(key_id = %record.id, suspended = suspend, "key suspension changed");
    Ok(Json(key_view(&record, now, state.config.rotation_policy)).into_response())
}

/// Body of `POST /admin/v1/keys/{id}/rotate`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateKey {
    /// How long the replaced secret keeps working (`1h`, `0s`); default 24 h.
    #[serde(default)]
    grace: Option<String>,
}

/// Longest grace period a rotation may leave the old secret working.
const MAX_GRACE_MS: i64 = 30 * 24 * 3600 * 1000;
/// Grace period when none is given.
const DEFAULT_GRACE_MS: i64 = 24 * 3600 * 1000;

/// `POST /admin/v1/keys/{id}/rotate`: a new secret, shown once; the old one
/// keeps working for the grace period, then stops by itself.
async fn rotate_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> AdminResult {
    let input: RotateKey = optional_body(request, "rotation").await?;
    let grace_ms = match input.grace.as_deref() {
        None => DEFAULT_GRACE_MS,
        Some(text) => humantime::parse_duration(text.trim())
            .ok()
            .and_then(|d| i64::try_from(d.as_millis()).ok())
            .filter(|ms| *ms <= MAX_GRACE_MS)
            .ok_or_else(|| {
                fail(ApiError::invalid_param(
                    "grace",
                    "'grace' must be a duration like 1h or 0s, at most 30 days.",
                ))
            })?,
    };
    let existing = find_data_key(&state, &id).await?;
    if existing.revoked_at.is_some() {
        return Err(fail(ApiError::invalid_request(
            "A revoked key cannot be rotated; create a new one.",
        )));
    }
    let now = crate::time::now_ms();
    let secret = key::generate(&existing.env);
    let record = state
        .store
        .rotate_key(
            &id,
            &hex::encode(state.keys.hasher().digest(secret.expose_secret())),
            &key::hint(secret.expose_secret()),
            now.saturating_add(grace_ms),
            now,
        )
        .await
        .map_err(store_failed)?
        .ok_or_else(|| {
            fail(ApiError::not_found(
                "The key was revoked or removed while being rotated.",
            ))
        })?;
    state.keys.upsert(&record);
    tracing::info!(key_id = %record.id, grace_ms, "key rotated");
    let mut view = key_view(&record, now, state.config.rotation_policy);
    // The new secret is shown exactly once, here.
    view["key"] = Value::String(secret.expose_secret().to_string());
    Ok(Json(view).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageQuery {
    key_id: Option<String>,
    /// RFC 3339 time, or a duration back from now (`24h`).
    since: Option<String>,
    until: Option<String>,
    limit: Option<i64>,
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

fn usage_query(uri: &Uri) -> Result<(UsageFilter, i64), ShapedError> {
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
    let filter = UsageFilter {
        key_id: query.key_id,
        since: when("since", query.since)?,
        until: when("until", query.until)?,
    };
    let limit = query.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(fail(ApiError::invalid_param(
            "limit",
            "'limit' must be between 1 and 10000.",
        )));
    }
    Ok((filter, limit))
}

async fn usage_totals(State(state): State<AppState>, uri: Uri) -> AdminResult {
    let (filter, _) = usage_query(&uri)?;
    state.ledger.flush().await;
    let rows = state
        .store
        .usage_totals(&filter)
        .await
        .map_err(store_failed)?;
    Ok(Json(json!({ "data": rows })).into_response())
}

async fn usage_events(State(state): State<AppState>, uri: Uri) -> AdminResult {
    let (filter, limit) = usage_query(&uri)?;
    state.ledger.flush().await;
    let rows = state
        .store
        .usage_events(&filter, limit)
        .await
        .map_err(store_failed)?;
    Ok(Json(json!({ "data": rows })).into_response())
}
