//! OAuth clients in the admin API. A client is a key record of kind
//! `client`: its policy (models, scopes, networks, environment, limits,
//! project, owner) bounds every token it obtains, and its secret — shown
//! once, a keygate-format string the scanner recognises — is accepted only
//! at `/oauth/token`. Show, update, rotate, suspend and revoke it through
//! `/admin/v1/keys/{id}`: a revoked client's tokens stop working at once.

use super::access::{Actor, Role};
use super::keys::{
    create_record, key_view, list_of_kind, read_definition, CreateKey, KeyList, KeyView,
};
use super::openapi::{BadRequest, NotFound, PayloadTooLarge, Unavailable, UnsupportedMediaType};
use super::AdminResult;
use crate::auth::KeyKind;
use crate::server::AppState;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Extension, Json, Router};
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa::ToSchema;

/// Routes under `/admin/v1/oauth-clients`.
pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/oauth-clients", post(create_client).get(list_clients))
}

/// A new OAuth client: its credentials (the secret only in this answer)
/// and its key record.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct CreatedClient {
    /// The client id (the key record's id).
    client_id: String,
    /// The client secret, shown once.
    client_secret: String,
    /// The key record behind the client.
    #[serde(flatten)]
    record: KeyView,
}

/// Create an OAuth client
///
/// The body is a key definition, as for `POST /keys`: the client's tokens
/// never get more than it allows. The secret is shown once.
#[utoipa::path(
    post,
    path = "/oauth-clients",
    tag = "oauth-clients",
    request_body = CreateKey,
    responses(
        (status = 201, description = "Created; `client_secret` is shown only here.", body = CreatedClient),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn create_client(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    request: Request,
) -> AdminResult {
    actor.require(Role::Member, "create OAuth clients")?;
    let input: CreateKey = read_definition(request, "OAuth client definition").await?;
    let (record, secret) = create_record(&state, &actor, input, KeyKind::Client).await?;
    let created = CreatedClient {
        client_id: record.id.clone(),
        client_secret: secret.expose_secret().to_string(),
        record: key_view(&record, record.created_at, state.config.rotation_policy),
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// List OAuth clients
///
/// Newest first, within the caller's scope; the same filters as `GET /keys`.
#[utoipa::path(
    get,
    path = "/oauth-clients",
    tag = "oauth-clients",
    params(super::keys::ListQuery),
    responses(
        (status = 200, description = "A page of OAuth clients.", body = KeyList),
        (status = 400, response = BadRequest),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn list_clients(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    uri: Uri,
) -> AdminResult {
    list_of_kind(&state, &actor, &uri, KeyKind::Client).await
}
