//! `POST /admin/v1/keys/{id}/incident`: contain a leaked key in one call —
//! revoke it now, optionally mint a replacement with the same policy and
//! owner — and report what it did while exposed
//! ([`crate::leaks::incident`]).

use super::access::Actor;
use super::ids::KeyId;
use super::keys::{find_changeable_key, key_view, KeyView};
use super::openapi::{BadRequest, NotFound, PayloadTooLarge, Unavailable, UnsupportedMediaType};
use super::{fail, optional_body, store_failed, AdminResult};
use crate::auth::key;
use crate::error::ApiError;
use crate::leaks::incident::{parse_since, report, Report};
use crate::server::AppState;
use crate::store::KeyRecord;
use axum::extract::{Request, State};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Extension, Json, Router};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Routes of incidents.
pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/keys/{id}/incident", post(incident))
}

/// Body of `POST /admin/v1/keys/{id}/incident` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct OpenIncident {
    /// Start of the exposure window: an RFC 3339 time or a duration ago
    /// (`36h`); default the key's first leak report, else its creation.
    #[serde(default)]
    #[schema(pattern = "^[1-9][0-9]{0,4}(s|m|h|d)$")]
    since: Option<String>,
    /// Mint a replacement key with the same policy and owner.
    #[serde(default)]
    replace: bool,
}

/// What an incident did and found.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Incident {
    /// The key, now revoked.
    key: KeyView,
    /// The replacement, with its secret (shown once), when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    replacement: Option<KeyView>,
    /// What the key did while exposed.
    report: Report,
}

/// Handle an incident
///
/// Revokes the key at once (reason `incident`, unless already revoked),
/// mints a replacement when asked, and reports the exposure window.
#[utoipa::path(
    post,
    path = "/keys/{id}/incident",
    tag = "keys",
    params(KeyId),
    request_body(content = Option<OpenIncident>, description = "Optional."),
    responses(
        (status = 200, description = "Revoked; the exposure report.", body = Incident),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn incident(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    KeyId { id }: KeyId,
    request: Request,
) -> AdminResult {
    let input: OpenIncident = optional_body(request, "incident").await?;
    let record = find_changeable_key(&state, &actor, &id).await?;
    let now = crate::time::now_ms();
    let since = input
        .since
        .as_deref()
        .map(|text| parse_since(text, now).map_err(|e| fail(ApiError::invalid_param("since", e))))
        .transpose()?;
    let revoked = match record.revoked_at {
        Some(_) => record,
        None => {
            let revoked = state
                .store
                .revoke_key(&id, now, "incident")
                .await
                .map_err(store_failed)?
                .ok_or_else(|| {
                    fail(ApiError::not_found("The key vanished while being revoked."))
                })?;
            state.keys.upsert(&revoked);
            tracing::warn!(key_id = %id, "key revoked in an incident");
            revoked
        }
    };
    let replacement = if input.replace {
        Some(replace(&state, &revoked, now).await?)
    } else {
        None
    };
    // Everything answered before the revocation counts.
    state.ledger.flush().await;
    let until = revoked.revoked_at.unwrap_or(now);
    let report = report(state.store.as_ref(), &id, revoked.created_at, since, until)
        .await
        .map_err(store_failed)?;
    Ok(Json(Incident {
        key: key_view(&revoked, now, state.config.rotation_policy),
        replacement,
        report,
    })
    .into_response())
}

/// A new key with the policy, limits and owner of `old`.
async fn replace(
    state: &AppState,
    old: &KeyRecord,
    now: i64,
) -> Result<KeyView, crate::error::ShapedError> {
    let secret = key::generate(&old.env);
    let fresh = KeyRecord::fresh(
        old.kind,
        format!("{} (replacement)", old.name)
            .chars()
            .take(128)
            .collect(),
        &old.env,
        secret.expose_secret(),
        state.keys.hasher(),
        now,
    );
    let record = KeyRecord {
        models: old.models.clone(),
        expires_at: old.expires_at.filter(|t| *t > now),
        scopes: old.scopes.clone(),
        allow_ips: old.allow_ips.clone(),
        description: old.description.clone(),
        metadata: old.metadata.clone(),
        org_id: old.org_id.clone(),
        project_id: old.project_id.clone(),
        owner: old.owner.clone(),
        limits: old.limits.clone(),
        ..fresh
    };
    state
        .store
        .insert_key(&record)
        .await
        .map_err(store_failed)?;
    state.keys.upsert(&record);
    tracing::info!(key_id = %record.id, replaces = %old.id, "replacement key created");
    let mut view = key_view(&record, now, state.config.rotation_policy);
    view.key = Some(secret.expose_secret().to_string());
    Ok(view)
}
