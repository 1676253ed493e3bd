//! Admin credentials in the admin API: owners hand out credentials with a
//! role no wider than their own scope; the secret is shown once.

use super::access::{Actor, Role};
use super::ids::CredentialId;
use super::keys::{parse_expiry, validate_name, validate_owner};
use super::openapi::{
    BadRequest, Conflict, NotFound, PayloadTooLarge, Unavailable, UnsupportedMediaType,
};
use super::{fail, optional_body, parse_object, store_failed, AdminResult};
use crate::auth::{key, KeyKind};
use crate::error::{ApiError, ShapedError};
use crate::server::AppState;
use crate::store::{KeyQuery, KeyRecord};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Routes under `/admin/v1/admin-credentials`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/admin-credentials",
            post(create_credential).get(list_credentials),
        )
        .route("/admin-credentials/{id}", get(show_credential))
        .route("/admin-credentials/{id}/revoke", post(revoke_credential))
}

/// An admin credential as the API shows it: never the secret (but for
/// `key`, in the answer that creates it).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct AdminCredentialView {
    /// Public id (`key_…`).
    id: String,
    name: String,
    /// `owner`, `admin`, `member` or `viewer`.
    role: Option<String>,
    /// Scope: `null` is the whole instance.
    org_id: Option<String>,
    /// Scope within the organisation: `null` is all of it.
    project_id: Option<String>,
    /// The person or service it is for.
    owner: Option<String>,
    /// `active`, `expired` or `revoked`.
    status: &'static str,
    /// Last characters of the secret, for recognition.
    hint: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    #[schema(format = DateTime)]
    revoked_at: Option<String>,
    revoke_reason: Option<String>,
    /// The secret, shown once: only in the answer that creates it.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

/// Admin credentials in the caller's scope.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct AdminCredentialList {
    data: Vec<AdminCredentialView>,
}

fn view(record: &KeyRecord, now: i64) -> AdminCredentialView {
    let status = if record.revoked_at.is_some() {
        "revoked"
    } else if record.expires_at.is_some_and(|t| t <= now) {
        "expired"
    } else {
        "active"
    };
    AdminCredentialView {
        id: record.id.clone(),
        name: record.name.clone(),
        role: record.role.clone(),
        org_id: record.org_id.clone(),
        project_id: record.project_id.clone(),
        owner: record.owner.clone(),
        status,
        hint: record.hint.clone(),
        created_at: crate::time::rfc3339(record.created_at),
        expires_at: record.expires_at.map(crate::time::rfc3339),
        revoked_at: record.revoked_at.map(crate::time::rfc3339),
        revoke_reason: record.revoke_reason.clone(),
        key: None,
    }
}

/// Body of `POST /admin/v1/admin-credentials`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateCredential {
    /// 1-128 characters, no control characters.
    #[schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,128}$")]
    name: String,
    /// `owner`, `admin`, `member` or `viewer`.
    #[schema(pattern = "^(owner|admin|member|viewer)$")]
    role: String,
    /// Scope: an organisation (default: the caller's).
    #[serde(default)]
    #[schema(pattern = "^org_[A-Za-z0-9]{1,64}$")]
    org_id: Option<String>,
    /// Scope: a project of that organisation (default: the caller's).
    #[serde(default)]
    #[schema(pattern = "^proj_[A-Za-z0-9]{1,64}$")]
    project_id: Option<String>,
    /// The person or service it is for: 1-256 characters, no control
    /// characters.
    #[serde(default)]
    #[schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,256}$")]
    owner: Option<String>,
    /// Expiry: a duration from now (`30d`; an RFC 3339 time in the future
    /// is accepted too).
    #[serde(default)]
    #[schema(pattern = "^[1-9][0-9]{0,4}(s|m|h|d)$")]
    expires: Option<String>,
}

/// Create an admin credential
///
/// Owners only, with a scope inside their own; the secret is in the answer
/// (`key`) and never shown again.
#[utoipa::path(
    post,
    path = "/admin-credentials",
    tag = "admin-credentials",
    request_body = CreateCredential,
    responses(
        (status = 201, description = "Created; `key` holds the secret.", body = AdminCredentialView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn create_credential(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    request: Request,
) -> AdminResult {
    actor.require(Role::Owner, "create admin credentials")?;
    let (parts, body) = request.into_parts();
    let bytes = crate::proxy::read_json_body(&parts.headers, body, 16 * 1024)
        .await
        .map_err(fail)?;
    let input: CreateCredential = parse_object(&bytes, "admin credential")?;
    let name = input.name;
    validate_name(&name)?;
    let role = Role::parse(&input.role).ok_or_else(|| {
        fail(ApiError::invalid_param(
            "role",
            format!("'role' must be one of {}.", Role::NAMES),
        ))
    })?;
    if let Some(owner) = &input.owner {
        validate_owner(owner)?;
    }
    let org_id = input.org_id.or_else(|| actor.org_id.clone());
    let project_id = input.project_id.or_else(|| actor.project_id.clone());
    let (org_id, project_id) = scope(&state, &actor, org_id, project_id).await?;
    let now = crate::time::now_ms();
    let expires_at = parse_expiry(input.expires.as_deref(), now)?;
    let secret = key::generate(key::ADMIN_ENV);
    let record = KeyRecord {
        expires_at,
        org_id,
        project_id,
        owner: input.owner,
        role: Some(role.as_str().into()),
        ..KeyRecord::fresh(
            KeyKind::Admin,
            name,
            key::ADMIN_ENV,
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
    tracing::info!(credential_id = %record.id, role = role.as_str(), "admin credential created");
    let mut shown = view(&record, now);
    // The secret is shown exactly once, here.
    shown.key = Some(secret.expose_secret().to_string());
    Ok((StatusCode::CREATED, Json(shown)).into_response())
}

/// Check a requested scope: it must exist, the project must belong to the
/// organisation, and it must lie inside the caller's own scope.
async fn scope(
    state: &AppState,
    actor: &Actor,
    org_id: Option<String>,
    project_id: Option<String>,
) -> Result<(Option<String>, Option<String>), ShapedError> {
    let not_found = |what: &str, id: &str| {
        fail(ApiError::not_found(format!(
            "No {what} with id '{}'.",
            crate::error::printable(id)
        )))
    };
    let project = match &project_id {
        Some(id) => {
            let found = if key::valid_id("proj", id) {
                state.store.get_project(id).await.map_err(store_failed)?
            } else {
                None
            };
            // Another tenant's project does not exist for the caller.
            Some(
                found
                    .filter(|p| actor.sees_project(p))
                    .ok_or_else(|| not_found("project", id))?,
            )
        }
        None => None,
    };
    let org_id = match (org_id, &project) {
        // Not a project of that organisation: none by that id there.
        (Some(org), Some(project)) if org != project.org_id => {
            return Err(not_found("project", &project.id))
        }
        (None, Some(project)) => Some(project.org_id.clone()),
        (org, _) => org,
    };
    if let Some(org) = &org_id {
        let exists = key::valid_id("org", org)
            && actor.covers(Some(org), actor.project_id.as_deref())
            && state
                .store
                .get_organisation(org)
                .await
                .map_err(store_failed)?
                .is_some();
        if !exists {
            return Err(not_found("organisation", org));
        }
    }
    let within = match &org_id {
        None => actor.is_instance_wide(),
        Some(org) => {
            actor.covers(Some(org), project_id.as_deref())
                && (actor.project_id.is_none() || project_id.is_some())
        }
    };
    if !within {
        return Err(fail(ApiError::forbidden(
            "insufficient_role",
            "An admin credential can only be given a scope inside its creator's.",
        )));
    }
    Ok((org_id, project_id))
}

/// An admin credential the caller may see (admins and owners, within
/// their scope); anything else is "not found".
async fn find_credential(
    state: &AppState,
    actor: &Actor,
    id: &str,
) -> Result<KeyRecord, ShapedError> {
    actor.require(Role::Admin, "read admin credentials")?;
    let not_found = || {
        fail(ApiError::not_found(format!(
            "No admin credential with id '{}'.",
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
        .filter(|k| k.kind == KeyKind::Admin && actor.sees_key(k))
        .ok_or_else(not_found)
}

/// List admin credentials
///
/// Admins and owners; the credentials inside the caller's scope.
#[utoipa::path(
    get,
    path = "/admin-credentials",
    tag = "admin-credentials",
    responses(
        (status = 200, description = "Admin credentials in scope.", body = AdminCredentialList),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn list_credentials(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> AdminResult {
    actor.require(Role::Admin, "read admin credentials")?;
    let query = KeyQuery {
        org_id: actor.org_id.clone(),
        project_id: actor.project_id.clone(),
        ..KeyQuery::default()
    };
    let now = crate::time::now_ms();
    let data: Vec<AdminCredentialView> = state
        .store
        .find_keys(KeyKind::Admin, &query, 1000, 0)
        .await
        .map_err(store_failed)?
        .iter()
        .filter(|k| actor.sees_key(k))
        .map(|k| view(k, now))
        .collect();
    Ok(Json(AdminCredentialList { data }).into_response())
}

/// Show an admin credential
#[utoipa::path(
    get,
    path = "/admin-credentials/{id}",
    tag = "admin-credentials",
    params(CredentialId),
    responses(
        (status = 200, description = "The credential; never its secret.", body = AdminCredentialView),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn show_credential(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    CredentialId { id }: CredentialId,
) -> AdminResult {
    let record = find_credential(&state, &actor, &id).await?;
    Ok(Json(view(&record, crate::time::now_ms())).into_response())
}

/// Body of `POST /admin/v1/admin-credentials/{id}/revoke` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RevokeCredential {
    /// Why (kept with the credential; at most 512 characters are kept).
    #[serde(default)]
    reason: Option<String>,
}

/// Revoke an admin credential
///
/// Owners only; never the caller's own credential (another owner must do
/// it).
#[utoipa::path(
    post,
    path = "/admin-credentials/{id}/revoke",
    tag = "admin-credentials",
    params(CredentialId),
    request_body(content = Option<RevokeCredential>, description = "Optional; empty means no reason."),
    responses(
        (status = 200, description = "Revoked.", body = AdminCredentialView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn revoke_credential(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    CredentialId { id }: CredentialId,
    request: Request,
) -> AdminResult {
    let input: RevokeCredential = optional_body(request, "revocation").await?;
    let record = find_credential(&state, &actor, &id).await?;
    actor.require(Role::Owner, "revoke admin credentials")?;
    if record.id == actor.id {
        return Err(fail(ApiError::state_conflict(
            "self_revocation",
            "A credential cannot revoke itself; use another owner credential.",
        )));
    }
    let reason = super::keys::revoke_reason(input.reason);
    let now = crate::time::now_ms();
    let record = state
        .store
        .revoke_key(&record.id, now, &reason)
        .await
        .map_err(store_failed)?
        .ok_or_else(|| fail(ApiError::not_found("The credential vanished meanwhile.")))?;
    state.keys.upsert(&record);
    tracing::info!(credential_id = %record.id, "admin credential revoked");
    Ok(Json(view(&record, now)).into_response())
}
