//! `POST /admin/v1/keys/lookup`: what `keygate scan --verify` asks — for
//! each keygate key found in a file, whether this gateway knows it and in
//! what state. Keys are matched by digest through the verification cache,
//! as a request would be; the answer never echoes a secret, and keys
//! outside the caller's scope are `unknown`, as unknown keys are.

use super::access::Actor;
use super::keys::read_definition;
use super::openapi::{BadRequest, PayloadTooLarge, UnsupportedMediaType};
use super::{fail, AdminResult};
use crate::auth::cache::KeyEntry;
use crate::error::ApiError;
use crate::server::AppState;
use axum::extract::{Request, State};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most keys one lookup may name.
pub const MAX_LOOKUP_KEYS: usize = 100;

/// Routes of key lookups.
pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/keys/lookup", post(lookup_keys))
}

/// Body of `POST /admin/v1/keys/lookup`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LookupKeys {
    /// keygate secrets (`kg_<env>_…`) found somewhere, at most 100. They
    /// are hashed and matched, never stored, logged or echoed; a string
    /// that is not a well-formed keygate key is simply `unknown`.
    #[schema(max_items = 100)]
    keys: Vec<String>,
}

/// Verdicts, one per key, in the order asked.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct KeyLookups {
    data: Vec<KeyLookup>,
}

/// What the gateway knows about one presented key.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct KeyLookup {
    /// `active` (it works right now), `revoked`, `expired`, `suspended`,
    /// or `unknown` (not a key of this gateway, a malformed string, a
    /// secret whose rotation grace period is over, or a key outside the
    /// caller's scope).
    #[schema(pattern = "^(active|revoked|expired|suspended|unknown)$")]
    status: &'static str,
    /// The key's id, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    /// The record's kind (`data`, `admin`, `client`, …), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
}

/// A known key's state at `now`, in the order a request is refused.
fn status(entry: &KeyEntry, now: i64) -> &'static str {
    if entry.revoked_at.is_some_and(|t| t <= now) {
        "revoked"
    } else if entry.suspended {
        "suspended"
    } else if entry.expires_at.is_some_and(|t| t <= now) {
        "expired"
    } else {
        "active"
    }
}

/// Look up keys by secret
///
/// For each presented keygate secret (at most 100), whether this gateway
/// knows it and its state, matched by digest; never echoes a secret.
#[utoipa::path(
    post,
    path = "/keys/lookup",
    tag = "keys",
    request_body = LookupKeys,
    responses(
        (status = 200, description = "One verdict per key, in the order asked.", body = KeyLookups),
        (status = 400, response = BadRequest),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
    )
)]
pub(super) async fn lookup_keys(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    request: Request,
) -> AdminResult {
    let input: LookupKeys = read_definition(request, "key lookup").await?;
    if input.keys.len() > MAX_LOOKUP_KEYS {
        return Err(fail(ApiError::invalid_request(format!(
            "At most {MAX_LOOKUP_KEYS} keys per lookup."
        ))));
    }
    let now = crate::time::now_ms();
    let data = input
        .keys
        .iter()
        .map(|presented| {
            state
                .keys
                .lookup(presented.trim())
                .filter(|entry| actor.covers(entry.org_id.as_deref(), entry.project_id.as_deref()))
                .map_or(
                    KeyLookup {
                        status: "unknown",
                        id: None,
                        kind: None,
                    },
                    |entry| KeyLookup {
                        status: status(&entry, now),
                        id: Some(entry.id.clone()),
                        kind: Some(entry.kind.as_str()),
                    },
                )
        })
        .collect();
    Ok(Json(KeyLookups { data }).into_response())
}
