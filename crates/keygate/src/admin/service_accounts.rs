//! Service accounts in the admin API: create one (a key record of kind
//! `service_account` carrying the policy, plus a key pair whose private half
//! is handed out once as a Google-style JSON key file), list them, add,
//! list, disable and enable their keys.
//!
//! The account's own secret is never shown: it authenticates nothing. Its
//! holders get tokens at `/oauth/token` with a JWT-bearer assertion
//! (RFC 7523) signed by one of its keys (see
//! [`crate::auth::oauth::service_account`]). Its policy, limits and
//! lifecycle (update, suspend, revoke) are managed as a key's, under
//! `/admin/v1/keys/{id}`.

use super::access::{Actor, Role};
use super::ids::{ServiceAccountId, ServiceAccountKeyPath};
use super::keys::{
    create_record, key_view, list_records, read_definition, split_definition, CreateKey, KeyList,
    KeyView, ListQuery,
};
use super::openapi::{
    BadRequest, Conflict, NotFound, PayloadTooLarge, Unavailable, UnsupportedMediaType,
};
use super::{fail, optional_body, store_failed, AdminResult};
use crate::auth::oauth::service_account::{generate_key_pair, parse_public_key};
use crate::auth::{key, KeyKind};
use crate::error::{ApiError, ShapedError};
use crate::server::AppState;
use crate::store::{KeyRecord, ServiceAccountKeyRecord};
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// Keys one service account may have (enabled or not), as Google allows.
pub const MAX_KEYS_PER_ACCOUNT: usize = 10;

/// Routes under `/admin/v1/service-accounts`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/service-accounts",
            post(create_service_account).get(list_service_accounts),
        )
        .route(
            "/service-accounts/{id}/keys",
            post(add_key).get(list_account_keys),
        )
        .route(
            "/service-accounts/{id}/keys/{kid}/disable",
            post(disable_key),
        )
        .route("/service-accounts/{id}/keys/{kid}/enable", post(enable_key))
}

/// The algorithm a service-account key signs with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
pub(super) enum Algorithm {
    /// RSA 2048 (or, for a registered key, up to 8192) with SHA-256.
    #[default]
    RS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::ES256 => "ES256",
        }
    }
}

/// The fields a service account's definition adds to a key's.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountFields {
    #[serde(default)]
    algorithm: Option<Algorithm>,
}

/// Body of `POST /admin/v1/service-accounts`: a key definition (as
/// `POST /admin/v1/keys` takes) plus the `algorithm` of its first key.
#[derive(Debug)]
pub(super) struct CreateServiceAccount;

impl PartialSchema for CreateServiceAccount {
    fn schema() -> RefOr<Schema> {
        let mut schema = <CreateKey as PartialSchema>::schema();
        if let RefOr::T(Schema::Object(object)) = &mut schema {
            object.description = Some(
                "A service account: the key definition of `POST /keys` (its policy and limits \
                 bound every token the account gets) and the algorithm of its first key."
                    .into(),
            );
            object.properties.insert(
                "algorithm".into(),
                RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    <Algorithm as ToSchema>::name(),
                )),
            );
        }
        schema
    }
}

impl ToSchema for CreateServiceAccount {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("CreateServiceAccount")
    }
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            <Algorithm as ToSchema>::name().into_owned(),
            <Algorithm as PartialSchema>::schema(),
        ));
        <CreateKey as ToSchema>::schemas(schemas);
    }
}

/// Body of `POST /admin/v1/service-accounts/{id}/keys` (optional): with
/// `public_key`, register a key whose private half stays with its holder;
/// without, generate a key pair and answer with its key file.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AddKey {
    /// Algorithm of the key (default `RS256`).
    #[serde(default)]
    algorithm: Option<Algorithm>,
    /// A SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`): RSA of
    /// 2048-8192 bits for RS256, P-256 for ES256.
    #[serde(default)]
    #[schema(
        pattern = r"^\s*-----BEGIN PUBLIC KEY-----[A-Za-z0-9+/=\s]{1,8000}-----END PUBLIC KEY-----\s*$"
    )]
    public_key: Option<String>,
}

/// A key of a service account; never its private half.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct AccountKeyView {
    /// Key id: the assertion header's `kid`, the key file's
    /// `private_key_id`.
    kid: String,
    /// The service account (its client id).
    account_id: String,
    /// `RS256` or `ES256`.
    algorithm: String,
    /// The public key (SubjectPublicKeyInfo, PEM).
    public_key: String,
    /// `enabled` or `disabled`.
    status: &'static str,
    #[schema(format = DateTime)]
    created_at: String,
    /// Since when assertions it signs are refused.
    #[schema(format = DateTime)]
    disabled_at: Option<String>,
}

fn account_key_view(record: &ServiceAccountKeyRecord, now: i64) -> AccountKeyView {
    AccountKeyView {
        kid: record.kid.clone(),
        account_id: record.account_id.clone(),
        algorithm: record.alg.clone(),
        public_key: record.public_key.clone(),
        status: if record.disabled_at.is_some_and(|t| t <= now) {
            "disabled"
        } else {
            "enabled"
        },
        created_at: crate::time::rfc3339(record.created_at),
        disabled_at: record.disabled_at.map(crate::time::rfc3339),
    }
}

/// A service-account key file, in the shape of Google's: what the
/// account's holder needs to sign assertions and find the token endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct KeyFile {
    /// Always `service_account`.
    #[serde(rename = "type")]
    kind: String,
    /// The service account's id: `iss` and `sub` of its assertions.
    client_id: String,
    /// The key's id: the assertion header's `kid`.
    private_key_id: String,
    /// The PKCS#8 private key, PEM. It exists only in this answer.
    private_key: String,
    /// Where assertions are exchanged for tokens, and their `aud`.
    token_uri: String,
    /// The gateway's issuer URL (also accepted as `aud`).
    keygate_issuer: String,
}

/// A service account as created: the account (a key record), its client
/// id, its first key and that key's file.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ServiceAccountCreated {
    /// The service account's id, as `client_id` of its assertions.
    client_id: String,
    #[serde(flatten)]
    account: KeyView,
    /// Its first key.
    private_key: AccountKeyView,
    /// The key file, with the private key: shown only now.
    key_file: KeyFile,
}

/// A key added to a service account.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct KeyAdded {
    /// The service account's id.
    client_id: String,
    #[serde(flatten)]
    key: AccountKeyView,
    /// The key file of a generated key pair (absent for a registered
    /// public key): shown only now.
    #[serde(skip_serializing_if = "Option::is_none")]
    key_file: Option<KeyFile>,
}

/// The keys of a service account, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct AccountKeyList {
    data: Vec<AccountKeyView>,
}

/// A fresh key id (`sak_` and a UUID v7).
fn new_kid() -> String {
    format!("sak_{}", uuid::Uuid::now_v7().simple())
}

fn key_failure(message: String) -> ShapedError {
    tracing::error!(error = %message, "service-account key generation failed");
    fail(ApiError::unavailable(
        "The key pair could not be generated; retry shortly.",
    ))
}

/// A key pair for `account` (generated by [`generate_key_pair`]): the
/// stored public key and the key file carrying the private key.
fn key_and_file(
    state: &AppState,
    account_id: &str,
    algorithm: Algorithm,
    (private_key, public_key): (zeroize::Zeroizing<String>, String),
    now: i64,
) -> (ServiceAccountKeyRecord, KeyFile) {
    let kid = new_kid();
    let file = KeyFile {
        kind: "service_account".into(),
        client_id: account_id.to_string(),
        private_key_id: kid.clone(),
        private_key: private_key.to_string(),
        token_uri: state.config.oauth.token_endpoint(),
        keygate_issuer: state.config.oauth.issuer.clone(),
    };
    let record = ServiceAccountKeyRecord {
        kid,
        account_id: account_id.to_string(),
        alg: algorithm.name().to_string(),
        public_key,
        created_at: now,
        disabled_at: None,
        updated_at: now,
    };
    (record, file)
}

/// Create a service account
///
/// Members and above, in a project of their scope (a member owns what it
/// creates). The body is a key definition as for `POST /keys`, plus the
/// `algorithm` of the account's first key (`RS256`, the default, or
/// `ES256`). The answer holds the key file with the private key: it is
/// shown only now and never stored.
#[utoipa::path(
    post,
    path = "/service-accounts",
    tag = "service-accounts",
    request_body = CreateServiceAccount,
    responses(
        (status = 201, description = "Created; `key_file` holds the private key.", body = ServiceAccountCreated),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn create_service_account(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    request: Request,
) -> AdminResult {
    actor.require(Role::Member, "create service accounts")?;
    let definition: serde_json::Map<String, serde_json::Value> =
        read_definition(request, "service account definition").await?;
    let (fields, input): (AccountFields, CreateKey) =
        split_definition(definition, &["algorithm"], "service account definition")?;
    let algorithm = fields.algorithm.unwrap_or_default();
    // The key pair first: a failure leaves nothing behind.
    let pair = generate_key_pair(algorithm.name()).map_err(key_failure)?;
    let (record, secret) = create_record(&state, &actor, input, KeyKind::ServiceAccount).await?;
    // The account's own secret authenticates nothing; it is never shown.
    drop(secret);
    let now = record.created_at;
    let (key, file) = key_and_file(&state, &record.id, algorithm, pair, now);
    state
        .store
        .insert_service_account_key(&key)
        .await
        .map_err(store_failed)?;
    tracing::info!(account_id = %record.id, kid = %key.kid, "service account created");
    let body = ServiceAccountCreated {
        client_id: record.id.clone(),
        account: key_view(&record, now, state.config.rotation_policy),
        private_key: account_key_view(&key, now),
        key_file: file,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// List service accounts
///
/// Newest first, within the caller's scope, each with its last use.
#[utoipa::path(
    get,
    path = "/service-accounts",
    tag = "service-accounts",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of service accounts.", body = KeyList),
        (status = 400, response = BadRequest),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn list_service_accounts(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    uri: Uri,
) -> AdminResult {
    list_records(&state, &actor, &uri, KeyKind::ServiceAccount).await
}

/// The service account `id` if the caller sees it; anything else is "not
/// found" (OWASP API1).
async fn find_account(state: &AppState, actor: &Actor, id: &str) -> Result<KeyRecord, ShapedError> {
    let not_found = || {
        fail(ApiError::not_found(format!(
            "No service account with id '{}'.",
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
        .filter(|k| k.kind == KeyKind::ServiceAccount && actor.sees_key(k))
        .ok_or_else(not_found)
}

/// A service account the caller may change (a member: only its own).
async fn find_changeable_account(
    state: &AppState,
    actor: &Actor,
    id: &str,
) -> Result<KeyRecord, ShapedError> {
    let account = find_account(state, actor, id).await?;
    actor.require_key_change(&account)?;
    Ok(account)
}

/// Add a key to a service account
///
/// Without a body (or without `public_key`): a new key pair, whose key file
/// (with the private key) is in the answer and never shown again. With
/// `public_key`: register a key whose private half its holder keeps.
/// At most 10 keys per account.
#[utoipa::path(
    post,
    path = "/service-accounts/{id}/keys",
    tag = "service-accounts",
    params(ServiceAccountId),
    request_body(content = Option<AddKey>, description = "Optional; empty means a new RS256 key pair."),
    responses(
        (status = 201, description = "Added; `key_file` holds the private key of a generated pair.", body = KeyAdded),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn add_key(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ServiceAccountId { id }: ServiceAccountId,
    request: Request,
) -> AdminResult {
    let input: AddKey = optional_body(request, "service account key").await?;
    let algorithm = input.algorithm.unwrap_or_default();
    let public_key = input
        .public_key
        .map(|pem| {
            parse_public_key(algorithm.name(), &pem).map_err(|e| {
                fail(ApiError::invalid_param(
                    "public_key",
                    crate::error::printable(&e),
                ))
            })
        })
        .transpose()?;
    let account = find_changeable_account(&state, &actor, &id).await?;
    if account.revoked_at.is_some() {
        return Err(fail(ApiError::state_conflict(
            "key_revoked",
            "A revoked service account cannot get new keys.",
        )));
    }
    let existing = state
        .store
        .service_account_keys(&account.id)
        .await
        .map_err(store_failed)?;
    if existing.len() >= MAX_KEYS_PER_ACCOUNT {
        return Err(fail(ApiError::state_conflict(
            "too_many_keys",
            format!(
                "A service account has at most {MAX_KEYS_PER_ACCOUNT} keys; this one has them all."
            ),
        )));
    }
    let now = crate::time::now_ms();
    let (record, file) = match public_key {
        Some(public_key) => (
            ServiceAccountKeyRecord {
                kid: new_kid(),
                account_id: account.id.clone(),
                alg: algorithm.name().to_string(),
                public_key,
                created_at: now,
                disabled_at: None,
                updated_at: now,
            },
            None,
        ),
        None => {
            let pair = generate_key_pair(algorithm.name()).map_err(key_failure)?;
            let (record, file) = key_and_file(&state, &account.id, algorithm, pair, now);
            (record, Some(file))
        }
    };
    state
        .store
        .insert_service_account_key(&record)
        .await
        .map_err(store_failed)?;
    tracing::info!(account_id = %account.id, kid = %record.kid, "service account key added");
    let body = KeyAdded {
        client_id: account.id.clone(),
        key: account_key_view(&record, now),
        key_file: file,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// List a service account's keys
///
/// Oldest first; never a private key.
#[utoipa::path(
    get,
    path = "/service-accounts/{id}/keys",
    tag = "service-accounts",
    params(ServiceAccountId),
    responses(
        (status = 200, description = "The account's keys.", body = AccountKeyList),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn list_account_keys(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ServiceAccountId { id }: ServiceAccountId,
) -> AdminResult {
    let account = find_account(&state, &actor, &id).await?;
    let keys = state
        .store
        .service_account_keys(&account.id)
        .await
        .map_err(store_failed)?;
    let now = crate::time::now_ms();
    let data = keys.iter().map(|k| account_key_view(k, now)).collect();
    Ok(Json(AccountKeyList { data }).into_response())
}

/// Disable a service account's key
///
/// Assertions it signs are refused from now on, on every node.
#[utoipa::path(
    post,
    path = "/service-accounts/{id}/keys/{kid}/disable",
    tag = "service-accounts",
    params(ServiceAccountKeyPath),
    responses(
        (status = 200, description = "The key as now stored.", body = AccountKeyView),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn disable_key(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    path: ServiceAccountKeyPath,
) -> AdminResult {
    set_key_disabled(&state, &actor, &path, true).await
}

/// Enable a service account's key
#[utoipa::path(
    post,
    path = "/service-accounts/{id}/keys/{kid}/enable",
    tag = "service-accounts",
    params(ServiceAccountKeyPath),
    responses(
        (status = 200, description = "The key as now stored.", body = AccountKeyView),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn enable_key(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    path: ServiceAccountKeyPath,
) -> AdminResult {
    set_key_disabled(&state, &actor, &path, false).await
}

async fn set_key_disabled(
    state: &AppState,
    actor: &Actor,
    path: &ServiceAccountKeyPath,
    disable: bool,
) -> AdminResult {
    let account = find_changeable_account(state, actor, &path.id).await?;
    let not_found = || {
        fail(ApiError::not_found(format!(
            "The service account has no key '{}'.",
            crate::error::printable(&path.kid)
        )))
    };
    if !key::valid_id("sak", &path.kid) {
        return Err(not_found());
    }
    let existing = state
        .store
        .service_account_key(&path.kid)
        .await
        .map_err(store_failed)?
        .filter(|k| k.account_id == account.id)
        .ok_or_else(not_found)?;
    let now = crate::time::now_ms();
    // Disabling a disabled key keeps its original time.
    let disabled_at = disable.then(|| existing.disabled_at.unwrap_or(now));
    if !state
        .store
        .set_service_account_key_disabled(&account.id, &existing.kid, disabled_at, now)
        .await
        .map_err(store_failed)?
    {
        return Err(not_found());
    }
    tracing::info!(account_id = %account.id, kid = %existing.kid, disabled = disable, "service account key changed");
    let record = ServiceAccountKeyRecord {
        disabled_at,
        updated_at: now,
        ..existing
    };
    Ok(Json(account_key_view(&record, now)).into_response())
}
