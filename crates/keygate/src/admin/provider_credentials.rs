//! `/admin/v1/provider-credentials`: upstream secrets stored encrypted in
//! the database. Responses carry metadata only — never the secret, never
//! the envelope.

use super::{fail, parse_object, AdminResult};
use crate::credentials::{CredentialError, StoredMeta};
use crate::error::{ApiError, ShapedError};
use crate::server::AppState;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{json, Value};
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

fn view(meta: &StoredMeta) -> Value {
    json!({
        "name": meta.name,
        "description": meta.description,
        "hint": meta.hint,
        "created_at": crate::time::rfc3339(meta.created_at),
        "updated_at": crate::time::rfc3339(meta.updated_at),
        "master_key_id": meta.master_key_id,
    })
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    name: String,
    secret: SecretField,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Replace {
    secret: SecretField,
    #[serde(default)]
    description: Option<String>,
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

async fn create(State(state): State<AppState>, request: Request) -> AdminResult {
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

async fn list(State(state): State<AppState>) -> AdminResult {
    let all = state.credentials.list().await.map_err(vault_failed)?;
    let data: Vec<Value> = all.iter().map(view).collect();
    Ok(Json(json!({ "data": data })).into_response())
}

async fn show(State(state): State<AppState>, Path(name): Path<String>) -> AdminResult {
    if !crate::credentials::stored_name_is_valid(&name) {
        return Err(not_found(&name));
    }
    match state.credentials.get(&name).await.map_err(vault_failed)? {
        Some(meta) => Ok(Json(view(&meta)).into_response()),
        None => Err(not_found(&name)),
    }
}

async fn replace(
    State(state): State<AppState>,
    Path(name): Path<String>,
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

async fn remove(State(state): State<AppState>, Path(name): Path<String>) -> AdminResult {
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
    let mut body = view(&meta);
    body["deleted"] = Value::Bool(true);
    Ok(Json(body).into_response())
}
