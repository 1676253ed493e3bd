//! Data-plane keys in the admin API: create, list, show, update, rotate,
//! suspend, resume and revoke (one key, or every key of an owner or a
//! project). What a caller may touch is decided by [`Actor`].

use super::access::{Actor, Role};
use super::ids::KeyId;
use super::limits::{alert_thresholds, present, LimitsInput, LimitsView, Whole};
use super::openapi::{
    BadRequest, Conflict, NotFound, PayloadTooLarge, Unavailable, UnsupportedMediaType,
};
use super::{fail, optional_body, parse_object, store_failed, AdminResult};
use crate::auth::{key, KeyKind, ModelAllowlist};
use crate::error::{ApiError, ShapedError};
use crate::server::AppState;
use crate::store::{KeyQuery, KeyRecord, LastUse, DEFAULT_ORG, DEFAULT_PROJECT};
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::{IntoParams, ToSchema};

/// Routes under `/admin/v1/keys`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/keys", post(create_key).get(list_keys))
        .route("/keys/revoke", post(revoke_keys))
        .route(
            "/keys/{id}",
            get(show_key).patch(update_key).delete(revoke_key_by_delete),
        )
        .route("/keys/{id}/revoke", post(revoke_key))
        .route("/keys/{id}/rotate", post(rotate_key))
        .route("/keys/{id}/suspend", post(suspend_key))
        .route("/keys/{id}/resume", post(resume_key))
}

/// A key as the admin API shows it: never the secret, except `key` in the
/// answer that creates or rotates it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct KeyView {
    /// Public id (`key_…`).
    id: String,
    /// `data` (an API key), or the record behind an OAuth `client`, a
    /// `service_account` or a trusted issuer's `workload` rule.
    kind: &'static str,
    name: String,
    /// Environment, also in the secret's prefix.
    env: String,
    /// `active`, `suspended`, `expired` or `revoked`.
    status: &'static str,
    org_id: Option<String>,
    project_id: Option<String>,
    /// Who answers for the key.
    owner: Option<String>,
    /// Where automatic rotations deliver the new secret (opted in).
    auto_rotate_webhook: Option<String>,
    /// What an anomaly (spike, new network, odd hour) on this key does:
    /// `alert` or `suspend`; `null`: as its project says.
    on_anomaly: Option<crate::anomaly::OnAnomaly>,
    /// Last characters of the secret, for recognition.
    hint: String,
    /// The key's own limits (its owner's, project's and organisation's
    /// apply too).
    #[serde(flatten)]
    limits: LimitsView,
    /// Model allowlist globs (empty: every model).
    models: Vec<String>,
    /// Route families allowed (empty: all).
    scopes: Vec<String>,
    /// Source networks allowed (empty: any).
    allow_ips: Vec<String>,
    description: Option<String>,
    metadata: serde_json::Map<String, Value>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    #[schema(format = DateTime)]
    revoked_at: Option<String>,
    revoke_reason: Option<String>,
    #[schema(format = DateTime)]
    suspended_at: Option<String>,
    #[schema(format = DateTime)]
    rotated_at: Option<String>,
    /// Age of the current secret.
    secret_age_days: i64,
    /// The current secret is as old as the rotation policy.
    rotation_due: bool,
    /// During a rotation's grace period the replaced secret works until
    /// this time.
    #[schema(format = DateTime)]
    previous_secret_expires_at: Option<String>,
    /// Last request with this key (lists and single keys only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    last_used_at: Option<String>,
    /// The client address of that request.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_source_ip: Option<String>,
    /// The secret: only in the answer that creates or rotates the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) key: Option<String>,
}

pub(super) fn key_view(
    record: &KeyRecord,
    now: i64,
    rotation_policy: std::time::Duration,
) -> KeyView {
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
    KeyView {
        id: record.id.clone(),
        kind: record.kind.as_str(),
        name: record.name.clone(),
        env: record.env.clone(),
        status,
        org_id: record.org_id.clone(),
        project_id: record.project_id.clone(),
        owner: record.owner.clone(),
        auto_rotate_webhook: record.auto_rotate_webhook.clone(),
        on_anomaly: record.on_anomaly,
        hint: record.hint.clone(),
        limits: LimitsView::of(&record.limits),
        models: record.models.clone(),
        scopes: record.scopes.clone(),
        allow_ips: record.allow_ips.clone(),
        description: record.description.clone(),
        metadata: record.metadata.clone(),
        created_at: crate::time::rfc3339(record.created_at),
        expires_at: record.expires_at.map(crate::time::rfc3339),
        revoked_at: record.revoked_at.map(crate::time::rfc3339),
        revoke_reason: record.revoke_reason.clone(),
        suspended_at: record.suspended_at.map(crate::time::rfc3339),
        rotated_at: record.rotated_at.map(crate::time::rfc3339),
        secret_age_days: secret_age_ms / 86_400_000,
        rotation_due: record.revoked_at.is_none() && secret_age_ms >= policy_ms,
        previous_secret_expires_at: record
            .previous_expires_at
            .filter(|t| *t > now && record.revoked_at.is_none())
            .map(crate::time::rfc3339),
        last_used_at: None,
        last_source_ip: None,
        key: None,
    }
}

/// An array of strings each matching `pattern`, for the document.
fn string_list(pattern: &str, max_items: Option<usize>, description: &str) -> Schema {
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(pattern)),
        )
        .max_items(max_items)
        .description(Some(description))
        .build()
        .into()
}

/// Model allowlist globs over model names (`gpt-4o*`, `openai/*`).
fn model_globs() -> Schema {
    string_list(
        "^.{1,256}$",
        Some(MAX_MODEL_PATTERNS),
        "Model allowlist globs (`gpt-4o*`, `openai/*`, `{a,b}-*`); empty: every model.",
    )
}

/// Route families.
fn scope_names() -> Schema {
    string_list(
        "^(chat|embeddings|messages|generate|models)$",
        None,
        "Route families allowed; empty: all.",
    )
}

/// Source networks.
fn networks() -> Schema {
    string_list(
        "^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$",
        Some(crate::policy::MAX_NETWORKS),
        "Source networks allowed: CIDRs or addresses, IPv4 or IPv6; empty: any.",
    )
}

/// A page of keys.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct KeyList {
    data: Vec<KeyView>,
}

/// What a bulk revocation did.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct BulkRevocation {
    /// What was revoked: `owner:…`, `project:…` or both.
    selector: String,
    /// How many keys were revoked.
    revoked: usize,
    /// Ids of the admin credentials revoked with them.
    admin_credentials_revoked: Vec<String>,
    /// The keys revoked.
    data: Vec<KeyView>,
}

/// Add the key's last use (time and source address) to its view.
fn with_last_use(mut view: KeyView, last: Option<&LastUse>) -> KeyView {
    view.last_used_at = last.map(|l| crate::time::rfc3339(l.ts));
    view.last_source_ip = last.and_then(|l| l.source_ip.clone());
    view
}

/// A key may opt into automatic rotation only when the gateway can sign
/// what it delivers, and only to an address a secret may travel to.
fn validate_rotation_webhook(state: &AppState, url: String) -> Result<String, ShapedError> {
    if state.config.rotation_webhook_secret.is_none() {
        return Err(fail(ApiError::invalid_param(
            "auto_rotate_webhook",
            "Automatic rotation needs KEYGATE_ROTATION_WEBHOOK_SECRET set on the gateway, to sign deliveries.",
        )));
    }
    crate::config::webhook_url("auto_rotate_webhook", &url, false).map_err(|e| {
        fail(ApiError::invalid_param(
            "auto_rotate_webhook",
            crate::error::printable(&e.to_string()),
        ))
    })?;
    Ok(url)
}

/// Owner names: a person's identity (`alice@example.com`) or a service.
const MAX_OWNER: usize = 256;

pub(super) fn validate_owner(owner: &str) -> Result<(), ShapedError> {
    if owner.is_empty() || owner.chars().count() > MAX_OWNER || owner.chars().any(char::is_control)
    {
        return Err(fail(ApiError::invalid_param(
            "owner",
            format!("'owner' must be 1-{MAX_OWNER} printable characters."),
        )));
    }
    Ok(())
}

/// Body of `POST /admin/v1/keys`. Unknown fields are refused, so a client
/// cannot set anything the API does not offer (OWASP API3).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateKey {
    /// 1-128 characters, no control characters.
    #[schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,128}$")]
    name: String,
    /// Model allowlist globs (`gpt-4o*`, `openai/*`); empty: every model.
    #[serde(default)]
    #[schema(schema_with = model_globs)]
    models: Vec<String>,
    /// A configured environment (default `live`; `live` and `test` unless
    /// configured otherwise).
    #[serde(default)]
    #[schema(pattern = "^(live|test)$")]
    env: Option<String>,
    /// A duration from now (`30d`) or a future RFC 3339 time.
    #[serde(default)]
    #[schema(pattern = "^[1-9][0-9]{0,4}(s|m|h|d)$")]
    expires: Option<String>,
    /// Route families allowed; empty: all.
    #[serde(default)]
    #[schema(schema_with = scope_names)]
    scopes: Vec<String>,
    /// Source networks allowed (CIDRs or addresses); empty: any.
    #[serde(default)]
    #[schema(schema_with = networks)]
    allow_ips: Vec<String>,
    /// Up to 1024 characters; no control characters but newlines.
    #[serde(default)]
    #[schema(pattern = r"^[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]{0,1024}$")]
    description: Option<String>,
    /// Free-form JSON object, at most 8 KiB.
    #[serde(default)]
    metadata: serde_json::Map<String, Value>,
    /// A person's identity or a service name; default: the caller's.
    #[serde(default)]
    #[schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,256}$")]
    owner: Option<String>,
    /// Project id; default: the caller's project, or the default project.
    #[serde(default)]
    #[schema(pattern = "^proj_[A-Za-z0-9]{1,64}$")]
    project: Option<String>,
    /// Opt into automatic rotation: the new secret is delivered here
    /// (https, or http to loopback; needs `KEYGATE_ROTATION_WEBHOOK_SECRET`).
    #[serde(default)]
    #[schema(
        pattern = "^https://[a-z0-9]+([.][a-z0-9]+)*(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~-]*)*$"
    )]
    auto_rotate_webhook: Option<String>,
    /// Requests per minute (1-10,000,000); default none.
    #[serde(default)]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 10000000)]
    rpm: Option<Whole>,
    /// Tokens per minute (1-100,000,000,000); default none.
    #[serde(default)]
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 100000000000_u64)]
    tpm: Option<Whole>,
    /// Requests in flight at once (1-1,000,000); default none.
    #[serde(default)]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 1000000)]
    max_concurrent: Option<Whole>,
    /// Budget per period in US dollars (0 to 1e9); default none.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1000000000)]
    budget_usd: Option<f64>,
    /// The budget's period (default `month`); only with `budget_usd`.
    #[serde(default)]
    #[schema(value_type = Option<crate::policy::limits::Period>)]
    budget_period: Option<String>,
    /// Alert thresholds; only with `budget_usd`.
    #[serde(default)]
    #[schema(schema_with = alert_thresholds)]
    budget_alerts: Option<Vec<Whole>>,
    /// What an anomaly (spike, new network, odd hour) on this key does:
    /// `alert` or `suspend`; default: as its project says.
    #[serde(default)]
    on_anomaly: Option<crate::anomaly::OnAnomaly>,
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

pub(super) fn validate_name(name: &str) -> Result<(), ShapedError> {
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

pub(super) fn parse_expiry(text: Option<&str>, now: i64) -> Result<Option<i64>, ShapedError> {
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

/// The project a new key goes to: the one named, else the caller's own,
/// else (instance-wide callers and the default organisation's) the default
/// project. A project outside the caller's scope does not exist for it.
async fn target_project(
    state: &AppState,
    actor: &Actor,
    named: Option<&str>,
) -> Result<crate::store::Project, ShapedError> {
    let id = match (named, &actor.project_id, &actor.org_id) {
        (Some(id), _, _) => id,
        (None, Some(own), _) => own.as_str(),
        (None, None, None) => DEFAULT_PROJECT,
        (None, None, Some(org)) if org == DEFAULT_ORG => DEFAULT_PROJECT,
        (None, None, Some(_)) => {
            return Err(fail(ApiError::invalid_param(
                "project",
                "Name the 'project' the key belongs to.",
            )))
        }
    };
    let not_found = || {
        fail(ApiError::not_found(format!(
            "No project with id '{}'.",
            crate::error::printable(id)
        )))
    };
    if !key::valid_id("proj", id) {
        return Err(not_found());
    }
    state
        .store
        .get_project(id)
        .await
        .map_err(store_failed)?
        .filter(|p| actor.sees_project(p))
        .ok_or_else(not_found)
}

/// Create a key
///
/// Members and above, in a project of their scope; the secret is in the
/// answer (`key`) and never shown again.
#[utoipa::path(
    post,
    path = "/keys",
    tag = "keys",
    request_body = CreateKey,
    responses(
        (status = 201, description = "Created; `key` holds the secret.", body = KeyView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn create_key(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    request: Request,
) -> AdminResult {
    actor.require(Role::Member, "create keys")?;
    let input: CreateKey = read_definition(request, "key definition").await?;
    let (record, secret) = create_record(&state, &actor, input, KeyKind::Data).await?;
    let now = record.created_at;
    let mut view = key_view(&record, now, state.config.rotation_policy);
    // The secret is shown exactly once, here.
    view.key = Some(secret.expose_secret().to_string());
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Split a key definition carrying fields of its own (a service account's
/// `algorithm`, a trust rule's `issuer`, …): the fields named in `extra`
/// are read as `E`, everything else as a [`CreateKey`] (whose unknown
/// fields are refused as usual).
pub(super) fn split_definition<E: serde::de::DeserializeOwned>(
    mut definition: serde_json::Map<String, Value>,
    extra: &[&str],
    what: &str,
) -> Result<(E, CreateKey), ShapedError> {
    let mut own = serde_json::Map::new();
    for field in extra {
        if let Some(value) = definition.remove(*field) {
            own.insert((*field).to_string(), value);
        }
    }
    let invalid = |e: serde_json::Error| {
        fail(ApiError::invalid_request(format!(
            "Invalid {what}: {}",
            crate::error::printable(&e.to_string())
        )))
    };
    let own: E = serde_json::from_value(Value::Object(own)).map_err(invalid)?;
    let key: CreateKey = serde_json::from_value(Value::Object(definition)).map_err(invalid)?;
    Ok((own, key))
}

/// Read a JSON key definition (at most 64 KiB).
pub(super) async fn read_definition<T: serde::de::DeserializeOwned>(
    request: Request,
    what: &str,
) -> Result<T, ShapedError> {
    let (parts, body) = request.into_parts();
    let bytes = crate::proxy::read_json_body(&parts.headers, body, 64 * 1024)
        .await
        .map_err(fail)?;
    parse_object(&bytes, what)
}

/// Validate a key definition and store a key record of `kind` (a data
/// key, or the record behind an OAuth client, service account or trust
/// rule); the record and its secret.
pub(super) async fn create_record(
    state: &AppState,
    actor: &Actor,
    input: CreateKey,
    kind: KeyKind,
) -> Result<(KeyRecord, secrecy::SecretString), ShapedError> {
    let name = input.name.as_str();
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
    let owner = match input.owner.as_deref().map(str::trim) {
        Some(owner) => {
            validate_owner(owner)?;
            actor.require_owner_field(Some(owner))?;
            owner.to_string()
        }
        None => actor.identity.clone(),
    };
    let project = target_project(state, actor, input.project.as_deref()).await?;
    let auto_rotate_webhook = input
        .auto_rotate_webhook
        .map(|url| validate_rotation_webhook(state, url))
        .transpose()?;
    let now = crate::time::now_ms();
    let expires_at = parse_expiry(input.expires.as_deref(), now)?;
    // Members may set limits here: on a key of their own they can only
    // restrict it. Changing them later takes an admin.
    let limits = LimitsInput {
        rpm: input.rpm.map(Some),
        tpm: input.tpm.map(Some),
        max_concurrent: input.max_concurrent.map(Some),
        budget_usd: input.budget_usd.map(Some),
        budget_period: input.budget_period,
        budget_alerts: input.budget_alerts.map(Some),
    }
    .apply(&crate::policy::limits::Limits::default(), true)?;

    let secret = key::generate(&env);
    let record = KeyRecord {
        models: input.models,
        expires_at,
        scopes: input.scopes,
        allow_ips: input.allow_ips,
        description: input.description,
        metadata: input.metadata,
        org_id: Some(project.org_id),
        project_id: Some(project.id),
        owner: Some(owner),
        auto_rotate_webhook,
        limits,
        on_anomaly: input.on_anomaly,
        ..KeyRecord::fresh(
            kind,
            name.to_string(),
            &env,
            secret.expose_secret(),
            state.keys.hasher(),
            now,
        )
    };
    state
        .store
        .insert_key(&record)
        .await
        .map_err(store_failed)?;
    state.keys.upsert(&record);
    tracing::info!(key_id = %record.id, env = %record.env, kind = kind.as_str(), "key created");
    Ok((record, secret))
}

/// Filters and paging of `GET /admin/v1/keys`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only keys of this owner.
    #[param(pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,256}$")]
    owner: Option<String>,
    /// Only keys of this project.
    project: Option<String>,
    /// At most this many (default 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Skip this many first.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

/// The caller's scope, narrowed by the selectors it asked for.
fn scoped_query(actor: &Actor, owner: Option<String>, project: Option<String>) -> KeyQuery {
    KeyQuery {
        org_id: actor.org_id.clone(),
        // A project outside the caller's scope selects nothing: both
        // conditions must hold.
        project_id: project.or_else(|| actor.project_id.clone()),
        owner,
        unrevoked: false,
        except_id: None,
    }
}

/// `GET /admin/v1/keys`: newest first, a page at a time, each with its
/// last use.
/// List keys
///
/// Newest first, within the caller's scope, each with its last use.
#[utoipa::path(
    get,
    path = "/keys",
    tag = "keys",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of keys.", body = KeyList),
        (status = 400, response = BadRequest),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn list_keys(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    uri: Uri,
) -> AdminResult {
    list_records(&state, &actor, &uri, KeyKind::Data).await
}

/// Key records of `kind` in the caller's scope, filtered and paged by
/// [`ListQuery`], newest first, each with its last use.
pub(super) async fn list_records(
    state: &AppState,
    actor: &Actor,
    uri: &Uri,
    kind: KeyKind,
) -> AdminResult {
    let Query(query) = Query::<ListQuery>::try_from_uri(uri).map_err(|e| {
        fail(ApiError::invalid_request(crate::error::printable(
            &e.body_text(),
        )))
    })?;
    let limit = query.limit.unwrap_or(1000);
    if !(1..=1000).contains(&limit) {
        return Err(fail(ApiError::invalid_param(
            "limit",
            "'limit' must be between 1 and 1000.",
        )));
    }
    let offset = query.offset.unwrap_or(0);
    if offset < 0 {
        return Err(fail(ApiError::invalid_param(
            "offset",
            "'offset' must not be negative.",
        )));
    }
    if let Some(owner) = &query.owner {
        validate_owner(owner)?;
    }
    // An id that cannot exist selects nothing (and never reaches the store:
    // PostgreSQL cannot even compare text holding a NUL).
    if query
        .project
        .as_deref()
        .is_some_and(|p| !key::valid_id("proj", p))
    {
        return Ok(Json(KeyList { data: Vec::new() }).into_response());
    }
    let mut key_query = scoped_query(actor, query.owner, None);
    if let Some(project) = query.project {
        if actor.project_id.as_ref().is_some_and(|own| *own != project) {
            return Ok(Json(KeyList { data: Vec::new() }).into_response());
        }
        key_query.project_id = Some(project);
    }
    let keys = state
        .store
        .find_keys(kind, &key_query, limit, offset)
        .await
        .map_err(store_failed)?;
    let ids: Vec<String> = keys.iter().map(|k| k.id.clone()).collect();
    // Last use comes from the ledger: what is still buffered goes first.
    state.ledger.flush().await;
    let uses = state.store.last_uses(&ids).await.map_err(store_failed)?;
    let now = crate::time::now_ms();
    let data: Vec<KeyView> = keys
        .iter()
        .map(|k| {
            with_last_use(
                key_view(k, now, state.config.rotation_policy),
                uses.get(&k.id),
            )
        })
        .collect();
    Ok(Json(KeyList { data }).into_response())
}

/// A data key the caller may see; anything else is "not found", so ids
/// cannot be probed across projects and organisations (OWASP API1).
async fn find_data_key(
    state: &AppState,
    actor: &Actor,
    id: &str,
) -> Result<KeyRecord, ShapedError> {
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
        // OAuth clients, service accounts and trust rules are key records
        // too: their policy, limits and lifecycle are managed here.
        .filter(|k| k.kind.mints_tokens() && actor.sees_key(k))
        .ok_or_else(not_found)
}

/// A data key the caller may change.
pub(super) async fn find_changeable_key(
    state: &AppState,
    actor: &Actor,
    id: &str,
) -> Result<KeyRecord, ShapedError> {
    let record = find_data_key(state, actor, id).await?;
    actor.require_key_change(&record)?;
    Ok(record)
}

/// Show a key
#[utoipa::path(
    get,
    path = "/keys/{id}",
    tag = "keys",
    params(KeyId),
    responses(
        (status = 200, description = "The key, with its last use; never its secret.", body = KeyView),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn show_key(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    KeyId { id }: KeyId,
) -> AdminResult {
    let record = find_data_key(&state, &actor, &id).await?;
    state.ledger.flush().await;
    let uses = state
        .store
        .last_uses(std::slice::from_ref(&record.id))
        .await
        .map_err(store_failed)?;
    let view = key_view(&record, crate::time::now_ms(), state.config.rotation_policy);
    Ok(Json(with_last_use(view, uses.get(&record.id))).into_response())
}

/// Body of `POST /admin/v1/keys/{id}/revoke` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RevokeKey {
    /// Why (kept with the key; at most 512 characters are kept).
    #[serde(default)]
    reason: Option<String>,
}

/// A revocation's stated reason, or the default one.
pub(super) fn revoke_reason(reason: Option<String>) -> String {
    reason
        .map(|r| {
            crate::error::printable(r.trim())
                .chars()
                .take(512)
                .collect::<String>()
        })
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "revoked by admin".into())
}

async fn revoke(state: &AppState, actor: &Actor, id: &str, reason: Option<String>) -> AdminResult {
    find_changeable_key(state, actor, id).await?;
    let reason = revoke_reason(reason);
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

/// Revoke a key
///
/// At once, on every node; with an optional reason.
#[utoipa::path(
    post,
    path = "/keys/{id}/revoke",
    tag = "keys",
    params(KeyId),
    request_body(content = Option<RevokeKey>, description = "Optional; empty means no reason."),
    responses(
        (status = 200, description = "Revoked.", body = KeyView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn revoke_key(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    KeyId { id }: KeyId,
    request: Request,
) -> AdminResult {
    let input: RevokeKey = optional_body(request, "revocation").await?;
    revoke(&state, &actor, &id, input.reason).await
}

/// Revoke a key (DELETE)
#[utoipa::path(
    delete,
    path = "/keys/{id}",
    tag = "keys",
    params(KeyId),
    responses(
        (status = 200, description = "Revoked.", body = KeyView),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn revoke_key_by_delete(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    KeyId { id }: KeyId,
) -> AdminResult {
    revoke(&state, &actor, &id, None).await
}

/// Body of `POST /admin/v1/keys/revoke`: every key of an owner, of a
/// project, or of an owner within a project.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RevokeKeys {
    /// Every key this person or service owns.
    #[serde(default)]
    owner: Option<String>,
    /// Every key of this project.
    #[serde(default)]
    project: Option<String>,
    /// Why (kept with each key).
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /admin/v1/keys/revoke`: when someone leaves, one call revokes
/// every key they hold in the caller's scope, and (for an owner-role
/// caller) the admin credentials they hold there too.
/// Revoke every key of an owner or a project
///
/// Admins and owners, within their scope; an owner-role caller revoking by
/// owner also revokes that person's admin credentials (never its own).
#[utoipa::path(
    post,
    path = "/keys/revoke",
    tag = "keys",
    request_body = RevokeKeys,
    responses(
        (status = 200, description = "What was revoked.", body = BulkRevocation),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn revoke_keys(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    request: Request,
) -> AdminResult {
    actor.require(Role::Admin, "revoke keys in bulk")?;
    let input: RevokeKeys = optional_body(request, "bulk revocation").await?;
    if input.owner.is_none() && input.project.is_none() {
        return Err(fail(ApiError::invalid_request(
            "Name the 'owner' or the 'project' whose keys to revoke.",
        )));
    }
    if let Some(owner) = &input.owner {
        validate_owner(owner)?;
    }
    if let Some(project) = &input.project {
        target_project(&state, &actor, Some(project)).await?;
    }
    let selector = match (&input.owner, &input.project) {
        (Some(owner), Some(project)) => format!("owner:{owner} project:{project}"),
        (Some(owner), None) => format!("owner:{owner}"),
        (None, project) => format!("project:{}", project.as_deref().unwrap_or_default()),
    };
    let reason = revoke_reason(input.reason);
    let query = KeyQuery {
        unrevoked: true,
        except_id: Some(actor.id.clone()),
        ..scoped_query(&actor, input.owner.clone(), input.project.clone())
    };
    let now = crate::time::now_ms();
    // Revoking a person (or a project) revokes every credential behind
    // their tokens too.
    let mut revoked = Vec::new();
    for kind in [
        KeyKind::Data,
        KeyKind::Client,
        KeyKind::ServiceAccount,
        KeyKind::Workload,
    ] {
        revoked.extend(
            state
                .store
                .revoke_keys(kind, &query, now, &reason)
                .await
                .map_err(store_failed)?,
        );
    }
    let mut admin_credentials = Vec::new();
    if actor.role == Role::Owner && input.owner.is_some() {
        // The caller's own credential is kept, so the call cannot lock its
        // author out halfway.
        for record in state
            .store
            .revoke_keys(KeyKind::Admin, &query, now, &reason)
            .await
            .map_err(store_failed)?
        {
            admin_credentials.push(record);
        }
    }
    for record in revoked.iter().chain(&admin_credentials) {
        state.keys.upsert(record);
    }
    tracing::info!(
        keys = revoked.len(),
        admin_credentials = admin_credentials.len(),
        "keys revoked in bulk"
    );
    let data: Vec<KeyView> = revoked
        .iter()
        .map(|k| key_view(k, now, state.config.rotation_policy))
        .collect();
    Ok(Json(BulkRevocation {
        selector: crate::error::printable(&selector),
        revoked: revoked.len(),
        admin_credentials_revoked: admin_credentials.iter().map(|k| k.id.clone()).collect(),
        data,
    })
    .into_response())
}

/// Body of `PATCH /admin/v1/keys/{id}`: only these fields may change; an
/// unknown one (`env`, `kind`, `secret_hash`, …) is refused, never applied
/// or ignored (OWASP API3, mass assignment). `expires: null` removes expiry.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateKey {
    /// 1-128 characters, no control characters.
    #[schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,128}$")]
    name: Option<String>,
    #[schema(schema_with = model_globs)]
    models: Option<Vec<String>>,
    #[schema(schema_with = scope_names)]
    scopes: Option<Vec<String>>,
    #[schema(schema_with = networks)]
    allow_ips: Option<Vec<String>>,
    /// New description; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
    /// A duration from now or a future RFC 3339 time; `null` removes expiry.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    expires: Option<Option<String>>,
    metadata: Option<serde_json::Map<String, Value>>,
    /// Only admins and owners may hand a key to someone else.
    owner: Option<String>,
    /// Move the key to another project in scope (admins and owners).
    project: Option<String>,
    /// Accepted only when unchanged: the environment is part of the secret.
    env: Option<String>,
    /// Opt into (a URL) or out of (`null`) automatic rotation.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    auto_rotate_webhook: Option<Option<String>>,
    /// Requests per minute; `null` removes the limit (admins and owners).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 10000000)]
    rpm: Option<Option<Whole>>,
    /// Tokens per minute; `null` removes the limit (admins and owners).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 100000000000_u64)]
    tpm: Option<Option<Whole>>,
    /// Requests in flight at once; `null` removes the limit (admins and
    /// owners).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 1000000)]
    max_concurrent: Option<Option<Whole>>,
    /// Budget per period in US dollars (0 to 1e9); `null` removes it
    /// (admins and owners).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 1000000000)]
    budget_usd: Option<Option<f64>>,
    /// The budget's period (a new budget's default: `month`).
    #[serde(default)]
    #[schema(value_type = Option<crate::policy::limits::Period>)]
    budget_period: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = alert_thresholds)]
    budget_alerts: Option<Option<Vec<Whole>>>,
    /// What an anomaly on this key does: `alert` or `suspend`; `null`: as
    /// its project says. Anything but `suspend` needs an admin or owner.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<crate::anomaly::OnAnomaly>)]
    on_anomaly: Option<Option<crate::anomaly::OnAnomaly>>,
}

/// Update a key
///
/// Only the fields named change; unknown fields are refused (no mass
/// assignment); `owner`, `project` and any change of limits need an admin
/// or owner. `null` removes a limit.
#[utoipa::path(
    patch,
    path = "/keys/{id}",
    tag = "keys",
    params(KeyId),
    request_body = UpdateKey,
    responses(
        (status = 200, description = "The key as now stored.", body = KeyView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn update_key(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    KeyId { id }: KeyId,
    request: Request,
) -> AdminResult {
    let (parts, body) = request.into_parts();
    let bytes = crate::proxy::read_json_body(&parts.headers, body, 64 * 1024)
        .await
        .map_err(fail)?;
    let input: UpdateKey = parse_object(&bytes, "key update")?;
    let mut record = find_changeable_key(&state, &actor, &id).await?;
    if record.revoked_at.is_some() {
        return Err(fail(ApiError::state_conflict(
            "key_revoked",
            "A revoked key cannot be changed.",
        )));
    }
    let now = crate::time::now_ms();
    if let Some(name) = input.name {
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
    if let Some(owner) = input.owner {
        let owner = owner.trim().to_string();
        validate_owner(&owner)?;
        actor.require_owner_field(Some(&owner))?;
        record.owner = Some(owner);
    }
    if let Some(webhook) = input.auto_rotate_webhook {
        record.auto_rotate_webhook = webhook
            .map(|url| validate_rotation_webhook(&state, url))
            .transpose()?;
    }
    if input.env.is_some_and(|env| env != record.env) {
        return Err(fail(ApiError::invalid_param(
            "env",
            "A key's environment is part of its secret and cannot change; create a new key in that environment.",
        )));
    }
    if let Some(project) = input.project {
        if record.project_id.as_deref() != Some(project.as_str()) {
            if actor.role < Role::Admin {
                return Err(fail(ApiError::forbidden(
                    "field_not_allowed",
                    "Only an admin or owner may move a key to another project.",
                )));
            }
            let project = target_project(&state, &actor, Some(&project)).await?;
            record.org_id = Some(project.org_id);
            record.project_id = Some(project.id);
        }
    }
    if let Some(expires) = input.expires {
        record.expires_at = parse_expiry(expires.as_deref(), now)?;
    }
    let limits = LimitsInput {
        rpm: input.rpm,
        tpm: input.tpm,
        max_concurrent: input.max_concurrent,
        budget_usd: input.budget_usd,
        budget_period: input.budget_period,
        budget_alerts: input.budget_alerts,
    }
    .apply(&record.limits, false)?;
    if limits != record.limits {
        actor.require_limits_change()?;
        record.limits = limits;
    }
    if let Some(on_anomaly) = input.on_anomaly {
        // Suspending on anomalies only tightens a key; anything else may
        // loosen it, like a limit.
        if on_anomaly != record.on_anomaly && on_anomaly != Some(crate::anomaly::OnAnomaly::Suspend)
        {
            actor.require_limits_change()?;
        }
        record.on_anomaly = on_anomaly;
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
/// Suspend a key
///
/// Refused until resumed.
#[utoipa::path(
    post,
    path = "/keys/{id}/suspend",
    tag = "keys",
    params(KeyId),
    responses(
        (status = 200, description = "The key as now stored.", body = KeyView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn suspend_key(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    KeyId { id }: KeyId,
) -> AdminResult {
    set_suspended(&state, &actor, &id, true).await
}

/// `POST /admin/v1/keys/{id}/resume`
/// Resume a suspended key
#[utoipa::path(
    post,
    path = "/keys/{id}/resume",
    tag = "keys",
    params(KeyId),
    responses(
        (status = 200, description = "The key as now stored.", body = KeyView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn resume_key(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    KeyId { id }: KeyId,
) -> AdminResult {
    set_suspended(&state, &actor, &id, false).await
}

async fn set_suspended(state: &AppState, actor: &Actor, id: &str, suspend: bool) -> AdminResult {
    let existing = find_changeable_key(state, actor, id).await?;
    if existing.revoked_at.is_some() {
        return Err(fail(ApiError::state_conflict(
            "key_revoked",
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
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RotateKey {
    /// How long the replaced secret keeps working (`1h`, `0s`; at most 30
    /// days); default 24 h.
    #[serde(default)]
    #[schema(
        pattern = "^([0-9]{1,6}s|[0-9]{1,4}m|([0-9]{1,2}|[1-6][0-9]{2}|7[01][0-9]|720)h|([0-9]|[12][0-9]|30)d)$"
    )]
    grace: Option<String>,
}

/// Longest grace period a rotation may leave the old secret working.
const MAX_GRACE_MS: i64 = 30 * 24 * 3600 * 1000;
/// Grace period when none is given.
const DEFAULT_GRACE_MS: i64 = 24 * 3600 * 1000;

/// `POST /admin/v1/keys/{id}/rotate`: a new secret, shown once; the old one
/// keeps working for the grace period, then stops by itself.
/// Rotate a key
///
/// A new secret, shown once in `key`; the old one keeps working for the
/// grace period (default 24 h, at most 30 d), then stops by itself.
#[utoipa::path(
    post,
    path = "/keys/{id}/rotate",
    tag = "keys",
    params(KeyId),
    request_body(content = Option<RotateKey>, description = "Optional; empty means a 24 h grace period."),
    responses(
        (status = 200, description = "Rotated; `key` holds the new secret.", body = KeyView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn rotate_key(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    KeyId { id }: KeyId,
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
    let existing = find_changeable_key(&state, &actor, &id).await?;
    if existing.revoked_at.is_some() {
        return Err(fail(ApiError::state_conflict(
            "key_revoked",
            "A revoked key cannot be rotated; create a new one.",
        )));
    }
    let now = crate::time::now_ms();
    let secret = key::generate(&existing.env);
    let record = state
        .store
        .rotate_key(
            &id,
            None,
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
    view.key = Some(secret.expose_secret().to_string());
    Ok(Json(view).into_response())
}
