//! `/admin/v1/provider-credentials`: upstream secrets stored encrypted in
//! the database. Responses carry metadata only — never the secret, never
//! the envelope.

use super::openapi::{
    BadRequest, Conflict, NotFound, PayloadTooLarge, Unavailable, UnsupportedMediaType,
};
use super::{fail, parse_object, AdminResult};
use crate::credentials::{CredentialError, StoredMeta};
use crate::error::{ApiError, ShapedError};
use crate::server::AppState;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use zeroize::Zeroize;

/// Largest request body (a secret is at most [`MAX_SECRET`] bytes).
const BODY_LIMIT: usize = 32 * 1024;
/// Longest secret accepted, in bytes (service-account JSON fits).
pub const MAX_SECRET: usize = 16 * 1024;
const MAX_DESCRIPTION: usize = 512;

/// Routes, mounted under `/admin/v1` behind the admin check.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/provider-credentials", get(list).post(create))
        .route(
            "/provider-credentials/{name}",
            get(show).put(replace).delete(remove),
        )
}

/// A stored provider credential as the admin API shows it: metadata only,
/// never the secret, never the envelope.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ProviderCredential {
    /// The credential's name, as provider configuration refers to it.
    #[schema(example = "openai-prod")]
    name: String,
    description: Option<String>,
    /// `…` and the secret's last four characters (for secrets of 16 or more).
    hint: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    /// Id of the master key the credential's data key is wrapped under.
    master_key_id: String,
}

/// `GET /admin/v1/provider-credentials`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ProviderCredentialList {
    data: Vec<ProviderCredential>,
}

/// The answer to a deletion: what was deleted.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct DeletedProviderCredential {
    #[serde(flatten)]
    credential: ProviderCredential,
    /// Always `true`.
    deleted: bool,
}

fn view(meta: &StoredMeta) -> ProviderCredential {
    ProviderCredential {
        name: meta.name.clone(),
        description: meta.description.clone(),
        hint: meta.hint.clone(),
        created_at: crate::time::rfc3339(meta.created_at),
        updated_at: crate::time::rfc3339(meta.updated_at),
        master_key_id: meta.master_key_id.clone(),
    }
}

fn vault_failed(error: CredentialError) -> ShapedError {
    match error {
        CredentialError::Store(e) => super::store_failed(e),
        other => {
            tracing::error!(error = %other, "stored provider credential operation failed");
            fail(ApiError::unavailable(
                "Stored provider credentials are unavailable (master key); see the gateway log.",
            ))
        }
    }
}

fn not_found(name: &str) -> ShapedError {
    fail(ApiError::not_found(format!(
        "No provider credential named '{}'.",
        crate::error::printable(name)
    )))
}

/// A secret field: zeroed when dropped, never shown by `Debug`.
struct SecretField(String);

impl<'de> Deserialize<'de> for SecretField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SecretField)
    }
}

impl Drop for SecretField {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for SecretField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl SecretField {
    /// Trimmed; 1..=MAX_SECRET bytes; no control characters.
    fn validate(&self) -> Result<SecretString, ShapedError> {
        let value = self.0.trim();
        if value.is_empty() || value.len() > MAX_SECRET || value.chars().any(char::is_control) {
            return Err(fail(ApiError::invalid_param(
                "secret",
                format!(
                    "'secret' must be 1-{MAX_SECRET} bytes of text without control characters."
                ),
            )));
        }
        Ok(SecretString::from(value.to_string()))
    }
}

fn description(text: Option<String>) -> Result<Option<String>, ShapedError> {
    let Some(text) = text else { return Ok(None) };
    let text = text.trim();
    if text.chars().count() > MAX_DESCRIPTION || text.chars().any(char::is_control) {
        return Err(fail(ApiError::invalid_param(
            "description",
            format!("'description' must be at most {MAX_DESCRIPTION} printable characters."),
        )));
    }
    Ok((!text.is_empty()).then(|| text.to_string()))
}

/// Body of `POST /admin/v1/provider-credentials`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreateProviderCredential)]
struct Create {
    /// Letters, digits, `.`, `_` or `-`, starting with a letter or digit.
    #[schema(
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        min_length = 1,
        max_length = 64
    )]
    name: String,
    /// The upstream secret (an API key, or a service-account JSON key):
    /// stored encrypted, never shown again. Surrounding whitespace is
    /// trimmed; at most 16 KiB; no control characters.
    #[schema(
        value_type = String,
        format = Password,
        write_only,
        min_length = 1,
        max_length = 16384,
        pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*[^\\s\\x00-\\x1F\\x7F-\\x9F][^\\x00-\\x1F\\x7F-\\x9F]*$"
    )]
    secret: SecretField,
    /// At most 512 printable characters; empty means none.
    #[serde(default)]
    #[schema(max_length = 512, pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$")]
    description: Option<String>,
}

/// Body of `PUT /admin/v1/provider-credentials/{name}`: a new secret, and
/// the description (absent or `null` removes it).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ReplaceProviderCredential)]
struct Replace {
    /// The new upstream secret, as for creation.
    #[schema(
        value_type = String,
        format = Password,
        write_only,
        min_length = 1,
        max_length = 16384,
        pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*[^\\s\\x00-\\x1F\\x7F-\\x9F][^\\x00-\\x1F\\x7F-\\x9F]*$"
    )]
    secret: SecretField,
    /// At most 512 printable characters; empty means none.
    #[serde(default)]
    #[schema(max_length = 512, pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$")]
    description: Option<String>,
}

/// The `{name}` in `/admin/v1/provider-credentials/{name}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct CredentialName {
    /// The credential's name.
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", max_length = 64)]
    name: String,
}

/// Extracted like `Path<CredentialName>`, but a name that does not decode
/// (percent-encoded bytes that are not UTF-8) names nothing: 404 in the
/// admin API's error shape, not axum's plain-text 400.
impl<S: Send + Sync> FromRequestParts<S> for CredentialName {
    type Rejection = ShapedError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<CredentialName>::from_request_parts(parts, state)
            .await
            .map(|Path(name)| name)
            .map_err(|_| {
                fail(ApiError::not_found(
                    "No provider credential by that name (it is not valid UTF-8).",
                ))
            })
    }
}

async fn body<T: serde::de::DeserializeOwned>(
    request: Request,
    what: &str,
) -> Result<T, ShapedError> {
    let (parts, body) = request.into_parts();
    let bytes = crate::proxy::read_json_body(&parts.headers, body, BODY_LIMIT)
        .await
        .map_err(fail)?;
    parse_object(&bytes, what)
}

/// Store a provider credential
///
/// The secret is encrypted under the master key before it reaches the
/// database; the answer carries metadata only.
#[utoipa::path(
    post,
    path = "/provider-credentials",
    operation_id = "create_provider_credential",
    tag = "provider-credentials",
    request_body = Create,
    responses(
        (status = 201, description = "Stored.", body = ProviderCredential),
        (status = 400, response = BadRequest),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn create(State(state): State<AppState>, request: Request) -> AdminResult {
    let input: Create = body(request, "provider credential").await?;
    if !crate::credentials::stored_name_is_valid(&input.name) {
        return Err(fail(ApiError::invalid_param(
            "name",
            "'name' must be 1-64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit.",
        )));
    }
    let secret = input.secret.validate()?;
    let description = description(input.description)?;
    let created = state
        .credentials
        .create(&input.name, description, secret, crate::time::now_ms())
        .await
        .map_err(vault_failed)?;
    let Some(meta) = created else {
        return Err(fail(ApiError {
            status: StatusCode::CONFLICT,
            code: "already_exists",
            message: format!(
                "A provider credential named '{}' already exists; PUT to replace its secret.",
                input.name
            ),
            param: Some("name"),
            retry_after: None,
        }));
    };
    tracing::info!(credential = %meta.name, master_key_id = %meta.master_key_id, "provider credential stored");
    Ok((StatusCode::CREATED, Json(view(&meta))).into_response())
}

/// List stored provider credentials
#[utoipa::path(
    get,
    path = "/provider-credentials",
    operation_id = "list_provider_credentials",
    tag = "provider-credentials",
    responses(
        (status = 200, description = "Every stored credential, metadata only.", body = ProviderCredentialList),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn list(State(state): State<AppState>) -> AdminResult {
    let all = state.credentials.list().await.map_err(vault_failed)?;
    let data = all.iter().map(view).collect();
    Ok(Json(ProviderCredentialList { data }).into_response())
}

/// Show a stored provider credential
#[utoipa::path(
    get,
    path = "/provider-credentials/{name}",
    operation_id = "show_provider_credential",
    tag = "provider-credentials",
    params(CredentialName),
    responses(
        (status = 200, description = "The credential, metadata only.", body = ProviderCredential),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn show(
    State(state): State<AppState>,
    CredentialName { name }: CredentialName,
) -> AdminResult {
    if !crate::credentials::stored_name_is_valid(&name) {
        return Err(not_found(&name));
    }
    match state.credentials.get(&name).await.map_err(vault_failed)? {
        Some(meta) => Ok(Json(view(&meta)).into_response()),
        None => Err(not_found(&name)),
    }
}

/// Replace a stored provider credential's secret
///
/// Takes effect at once, without a restart.
#[utoipa::path(
    put,
    path = "/provider-credentials/{name}",
    operation_id = "replace_provider_credential",
    tag = "provider-credentials",
    params(CredentialName),
    request_body = Replace,
    responses(
        (status = 200, description = "Replaced.", body = ProviderCredential),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn replace(
    State(state): State<AppState>,
    CredentialName { name }: CredentialName,
    request: Request,
) -> AdminResult {
    if !crate::credentials::stored_name_is_valid(&name) {
        return Err(not_found(&name));
    }
    let input: Replace = body(request, "provider credential").await?;
    let secret = input.secret.validate()?;
    let description = description(input.description)?;
    match state
        .credentials
        .replace(&name, secret, description, crate::time::now_ms())
        .await
        .map_err(vault_failed)?
    {
        Some(meta) => {
            tracing::info!(credential = %meta.name, "provider credential replaced");
            Ok(Json(view(&meta)).into_response())
        }
        None => Err(not_found(&name)),
    }
}

/// Delete a stored provider credential
#[utoipa::path(
    delete,
    path = "/provider-credentials/{name}",
    operation_id = "delete_provider_credential",
    tag = "provider-credentials",
    params(CredentialName),
    responses(
        (status = 200, description = "Deleted; the answer shows what was.", body = DeletedProviderCredential),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn remove(
    State(state): State<AppState>,
    CredentialName { name }: CredentialName,
) -> AdminResult {
    if !crate::credentials::stored_name_is_valid(&name) {
        return Err(not_found(&name));
    }
    let Some(meta) = state.credentials.get(&name).await.map_err(vault_failed)? else {
        return Err(not_found(&name));
    };
    if !state
        .credentials
        .delete(&name)
        .await
        .map_err(vault_failed)?
    {
        return Err(not_found(&name));
    }
    tracing::info!(credential = %name, "provider credential deleted");
    Ok(Json(DeletedProviderCredential {
        credential: view(&meta),
        deleted: true,
    })
    .into_response())
}
