//! Trusted OIDC issuers in the admin API (workload identity federation):
//! a rule names an issuer, the audience its identity tokens must carry,
//! where its keys are, and claim rules (claim → glob); a key record of kind
//! `workload` holds the policy and limits of every token an exchange under
//! the rule mints (see [`crate::auth::oauth::federation`]).
//!
//! A rule must pin at least one claim to something literal: an issuer like
//! GitHub Actions signs tokens for every repository on GitHub, so trusting
//! the issuer alone would trust everyone.

use super::access::{Actor, Role};
use super::ids::TrustedIssuerId;
use super::keys::{create_record, read_definition, split_definition, CreateKey};
use super::openapi::{
    BadRequest, Conflict, NotFound, PayloadTooLarge, Unavailable, UnsupportedMediaType,
};
use super::{fail, store_failed, AdminResult};
use crate::auth::{key, KeyKind};
use crate::error::{ApiError, ShapedError};
use crate::server::AppState;
use crate::store::{KeyQuery, KeyRecord, TrustedIssuerRecord};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// Most claim rules in one trust rule.
const MAX_CLAIMS: usize = 32;
/// Longest claim name.
const MAX_CLAIM_NAME: usize = 64;
/// Longest claim glob.
const MAX_CLAIM_GLOB: usize = 256;
/// Longest issuer or JWKS URL.
const MAX_URL: usize = 512;
/// Longest audience.
const MAX_AUDIENCE: usize = 256;
/// Most keys in a configured JWKS.
const MAX_JWKS_KEYS: usize = 32;
/// Shortest lifetime of the tokens a rule mints.
const MIN_TOKEN_TTL: Duration = Duration::from_secs(60);
/// Members a configured JWK may have.
const JWK_MEMBERS: &[&str] = &[
    "kty", "kid", "use", "alg", "n", "e", "crv", "x", "y", "x5c", "x5t", "x5t#S256",
];

/// Routes under `/admin/v1/trusted-issuers`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/trusted-issuers",
            post(create_trusted_issuer).get(list_trusted_issuers),
        )
        .route(
            "/trusted-issuers/{id}/disable",
            post(disable_trusted_issuer),
        )
        .route("/trusted-issuers/{id}/enable", post(enable_trusted_issuer))
}

/// The fields a trust rule's definition adds to a key's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFields {
    issuer: String,
    audience: String,
    #[serde(default)]
    jwks_uri: Option<String>,
    #[serde(default)]
    jwks: Option<Map<String, Value>>,
    claims: BTreeMap<String, String>,
    #[serde(default)]
    token_ttl: Option<String>,
}

const RULE_FIELDS: &[&str] = &[
    "issuer",
    "audience",
    "jwks_uri",
    "jwks",
    "claims",
    "token_ttl",
];

/// Body of `POST /admin/v1/trusted-issuers`: the rule, and a key definition
/// (as `POST /admin/v1/keys` takes; `name` defaults to the issuer) for the
/// policy and limits of the tokens it mints.
#[derive(Debug)]
pub(super) struct CreateTrustedIssuer;

const URL_PATTERN: &str =
    "^https://[a-z0-9]+([.-][a-z0-9]+)*(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~-]*)*$";
const GLOB_PATTERN: &str = r"^[^\u0000-\u001f\u007f-\u009f\[\]{}\\]*[^\u0000-\u001f\u007f-\u009f\[\]{}\\*?][^\u0000-\u001f\u007f-\u009f\[\]{}\\]*$";
const B64URL: &str = "^([A-Za-z0-9_-]{4}){1,512}$";
const B64URL_32: &str = "^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$";

/// The JSON Schema of the rule's own fields.
fn rule_properties() -> Value {
    let common = json!({
        "kid": {"type": "string", "minLength": 1, "maxLength": 256},
        "use": {"type": "string", "enum": ["sig"]},
        "x5c": {"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z0-9+/=]{1,8192}$"}, "maxItems": 8},
        "x5t": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
        "x5t#S256": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
    });
    let jwk = |kty: &str, algs: &[&str], own: Value, required: &[&str]| {
        let mut properties = common.clone();
        if let (Some(all), Some(own)) = (properties.as_object_mut(), own.as_object()) {
            all.insert("kty".into(), json!({"type": "string", "enum": [kty]}));
            all.insert("alg".into(), json!({"type": "string", "enum": algs}));
            all.extend(own.clone());
        }
        json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        })
    };
    json!({
        "issuer": {
            "type": "string", "maxLength": MAX_URL, "pattern": URL_PATTERN,
            "description": "The `iss` identity tokens carry: an https:// URL (http:// only to a loopback host).",
        },
        "audience": {
            "type": "string",
            "pattern": format!(r"^[^\u0000-\u001f\u007f-\u009f]{{1,{MAX_AUDIENCE}}}$"),
            "description": "The `aud` identity tokens must carry.",
        },
        "jwks_uri": {
            "type": "string", "maxLength": MAX_URL, "pattern": URL_PATTERN,
            "description": "Where the issuer's keys are (https; http:// only to a loopback host). Without it and without `jwks`, found by OIDC discovery from the issuer.",
        },
        "jwks": {
            "type": "object",
            "description": "The issuer's keys, fixed (instead of `jwks_uri`): a JWK set of RSA, EC or OKP public keys.",
            "properties": {
                "keys": {
                    "type": "array", "minItems": 1, "maxItems": MAX_JWKS_KEYS,
                    "items": {"oneOf": [
                        jwk("RSA", &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"],
                            json!({"n": {"type": "string", "pattern": B64URL}, "e": {"type": "string", "enum": ["AQAB"]}}),
                            &["kty", "n", "e"]),
                        jwk("EC", &["ES256"],
                            json!({"crv": {"type": "string", "enum": ["P-256"]},
                                   "x": {"type": "string", "pattern": B64URL_32},
                                   "y": {"type": "string", "pattern": B64URL_32}}),
                            &["kty", "crv", "x", "y"]),
                        jwk("OKP", &["EdDSA"],
                            json!({"crv": {"type": "string", "enum": ["Ed25519"]},
                                   "x": {"type": "string", "pattern": B64URL_32}}),
                            &["kty", "crv", "x"]),
                    ]},
                },
            },
            "required": ["keys"],
            "additionalProperties": false,
        },
        "claims": {
            "type": "object", "minProperties": 1, "maxProperties": MAX_CLAIMS,
            "description": "Claim rules: claim name → glob its value must match (`*` and `?` wildcards; each glob pins at least one literal character). At least one.",
            "propertyNames": {"type": "string", "pattern": format!(r"^[^\u0000-\u001f\u007f-\u009f]{{1,{MAX_CLAIM_NAME}}}$")},
            "additionalProperties": {"type": "string", "maxLength": MAX_CLAIM_GLOB, "pattern": GLOB_PATTERN},
        },
        "token_ttl": {
            "type": "string",
            "pattern": "^(([1-9]|[1-9][0-9]|[1-6][0-9]{2}|7[01][0-9]|720)m|([1-9]|1[0-2])h)$",
            "description": "Lifetime of the tokens it mints (default 15m; at most the gateway's longest token lifetime, 12h unless configured).",
        },
    })
}

impl PartialSchema for CreateTrustedIssuer {
    fn schema() -> RefOr<Schema> {
        let mut schema = <CreateKey as PartialSchema>::schema();
        if let RefOr::T(Schema::Object(object)) = &mut schema {
            object.description = Some(
                "A trusted issuer rule, and the key definition of `POST /keys` (its policy and \
                 limits bound every token the rule mints; `name` defaults to the issuer)."
                    .into(),
            );
            if let Value::Object(properties) = rule_properties() {
                for (name, property) in properties {
                    if let Ok(property) = serde_json::from_value::<Schema>(property) {
                        object.properties.insert(name, RefOr::T(property));
                    }
                }
            }
            object.required.retain(|name| name != "name");
            object
                .required
                .extend(["issuer", "audience", "claims"].map(String::from));
        }
        schema
    }
}

impl ToSchema for CreateTrustedIssuer {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("CreateTrustedIssuer")
    }
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        <CreateKey as ToSchema>::schemas(schemas);
    }
}

/// A trusted issuer rule.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct TrustedIssuerView {
    /// Public id (`tis_…`).
    id: String,
    /// The key record (kind `workload`) whose policy and limits bound the
    /// tokens the rule mints; managed under `/keys/{id}`.
    key_id: String,
    /// The key record's name.
    name: Option<String>,
    issuer: String,
    audience: String,
    jwks_uri: Option<String>,
    /// A fixed JWK set, when configured instead of `jwks_uri`.
    #[schema(value_type = Option<Object>)]
    jwks: Option<Value>,
    /// Claim name → glob.
    claims: BTreeMap<String, String>,
    /// Lifetime of the tokens it mints, seconds.
    token_ttl_s: i64,
    /// `enabled` or `disabled`.
    status: &'static str,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    disabled_at: Option<String>,
    #[schema(format = DateTime)]
    updated_at: String,
}

fn rule_view(
    rule: &TrustedIssuerRecord,
    record: Option<&KeyRecord>,
    now: i64,
) -> TrustedIssuerView {
    TrustedIssuerView {
        id: rule.id.clone(),
        key_id: rule.key_id.clone(),
        name: record.map(|r| r.name.clone()),
        issuer: rule.issuer.clone(),
        audience: rule.audience.clone(),
        jwks_uri: rule.jwks_uri.clone(),
        jwks: rule
            .jwks
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok()),
        claims: rule.claims.clone(),
        token_ttl_s: rule.token_ttl_ms / 1000,
        status: if rule.disabled_at.is_some_and(|t| t <= now) {
            "disabled"
        } else {
            "enabled"
        },
        created_at: crate::time::rfc3339(rule.created_at),
        disabled_at: rule.disabled_at.map(crate::time::rfc3339),
        updated_at: crate::time::rfc3339(rule.updated_at),
    }
}

/// Trusted issuer rules, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct TrustedIssuerList {
    data: Vec<TrustedIssuerView>,
}

fn invalid(param: &'static str, message: impl Into<String>) -> ShapedError {
    fail(ApiError::invalid_param(param, message))
}

/// An issuer or JWKS URL: https, or http to a loopback host (a local test
/// issuer); no credentials, query or fragment.
pub(crate) fn validate_url(param: &'static str, text: &str) -> Result<(), ShapedError> {
    let refuse = || {
        invalid(
            param,
            format!(
                "'{param}' must be an https:// URL (http:// only to a loopback host) of at most \
                 {MAX_URL} characters, without credentials, query or fragment."
            ),
        )
    };
    if text.len() > MAX_URL {
        return Err(refuse());
    }
    let url = reqwest::Url::parse(text).map_err(|_| refuse())?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(refuse)?;
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    if !scheme_ok
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(refuse());
    }
    Ok(())
}

/// Printable: no control characters.
fn printable(text: &str) -> bool {
    !text.chars().any(char::is_control)
}

/// Claim rules: 1-32, names of 1-64 printable characters, globs of 1-256
/// printable characters with `*` and `?` wildcards (no classes,
/// alternatives or escapes) and at least one literal character.
pub(crate) fn validate_claims(claims: &BTreeMap<String, String>) -> Result<(), ShapedError> {
    if claims.is_empty() {
        return Err(invalid(
            "claims",
            "A trust rule needs at least one claim rule (e.g. repository = acme/app): an issuer \
             such as GitHub Actions signs tokens for everyone, so trusting the issuer alone would \
             trust every identity it vouches for.",
        ));
    }
    if claims.len() > MAX_CLAIMS {
        return Err(invalid(
            "claims",
            format!("A trust rule takes at most {MAX_CLAIMS} claim rules."),
        ));
    }
    for (name, glob) in claims {
        if name.is_empty() || name.chars().count() > MAX_CLAIM_NAME || !printable(name) {
            return Err(invalid(
                "claims",
                format!("Claim names must be 1-{MAX_CLAIM_NAME} printable characters."),
            ));
        }
        let shown = crate::error::printable(name);
        if glob.is_empty()
            || glob.chars().count() > MAX_CLAIM_GLOB
            || !printable(glob)
            || glob.contains(['[', ']', '{', '}', '\\'])
        {
            return Err(invalid(
                "claims",
                format!(
                    "The rule for '{shown}' must be 1-{MAX_CLAIM_GLOB} printable characters, with \
                     the wildcards * and ? only."
                ),
            ));
        }
        if glob.chars().all(|c| c == '*' || c == '?') {
            return Err(invalid(
                "claims",
                format!(
                    "The rule for '{shown}' matches any value; pin it to something, or leave the \
                     claim out."
                ),
            ));
        }
        globset::Glob::new(glob).map_err(|e| {
            invalid(
                "claims",
                format!(
                    "The rule for '{shown}' is not a valid glob: {}",
                    crate::error::printable(&e.to_string())
                ),
            )
        })?;
    }
    Ok(())
}

/// A fixed JWK set: 1-32 RSA, EC or OKP public keys (never a symmetric
/// key), each usable by the exchange. Returns its JSON text.
fn validate_jwks(jwks: Map<String, Value>) -> Result<String, ShapedError> {
    use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
    let refuse =
        |detail: String| invalid("jwks", format!("'jwks' is not a usable JWK set: {detail}"));
    if jwks.keys().any(|k| k != "keys") {
        return Err(refuse("it takes only 'keys'".into()));
    }
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| refuse("'keys' must be an array".into()))?;
    if keys.is_empty() || keys.len() > MAX_JWKS_KEYS {
        return Err(refuse(format!("it needs 1-{MAX_JWKS_KEYS} keys")));
    }
    for key in keys {
        let members = key
            .as_object()
            .ok_or_else(|| refuse("each key must be an object".into()))?;
        if let Some(member) = members.keys().find(|m| !JWK_MEMBERS.contains(&m.as_str())) {
            return Err(refuse(format!(
                "a key has the member '{}', which a public signing key does not",
                crate::error::printable(member)
            )));
        }
    }
    let text = serde_json::to_string(&jwks).map_err(|e| refuse(e.to_string()))?;
    let set: JwkSet =
        serde_json::from_str(&text).map_err(|e| refuse(crate::error::printable(&e.to_string())))?;
    for jwk in &set.keys {
        if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
            return Err(refuse(
                "symmetric (oct) keys are refused: identity tokens are signed with the issuer's \
                 private key"
                    .into(),
            ));
        }
        jsonwebtoken::DecodingKey::from_jwk(jwk)
            .map_err(|e| refuse(crate::error::printable(&e.to_string())))?;
    }
    Ok(text)
}

/// The lifetime of the tokens a rule mints: 15 minutes unless asked, at
/// least a minute, at most the gateway's longest token lifetime.
fn token_ttl(state: &AppState, text: Option<&str>) -> Result<Duration, ShapedError> {
    let max = state.config.oauth.max_token_ttl;
    let Some(text) = text else {
        return Ok(crate::auth::oauth::federation::DEFAULT_TOKEN_TTL.min(max));
    };
    humantime::parse_duration(text.trim())
        .ok()
        .filter(|d| *d >= MIN_TOKEN_TTL && *d <= max)
        .ok_or_else(|| {
            invalid(
                "token_ttl",
                format!(
                    "'token_ttl' must be a duration like 15m, from 1m to {}.",
                    humantime::format_duration(max)
                ),
            )
        })
}

/// Trust an OIDC issuer
///
/// Admins and owners. Identity tokens from `issuer` whose `aud` is
/// `audience` and whose claims match every claim rule are exchanged at
/// `/oauth/token` (RFC 8693) for tokens bounded by the key definition
/// given with the rule (a key record of kind `workload`, managed under
/// `/keys/{id}` like any key). At least one claim rule is required.
#[utoipa::path(
    post,
    path = "/trusted-issuers",
    tag = "trusted-issuers",
    request_body = CreateTrustedIssuer,
    responses(
        (status = 201, description = "The rule as stored.", body = TrustedIssuerView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn create_trusted_issuer(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    request: Request,
) -> AdminResult {
    actor.require(Role::Admin, "trust identity token issuers")?;
    let mut definition: Map<String, Value> =
        read_definition(request, "trusted issuer definition").await?;
    if !definition.contains_key("name") {
        if let Some(Value::String(issuer)) = definition.get("issuer") {
            let name: String = issuer.chars().take(128).collect();
            definition.insert("name".into(), Value::String(name));
        }
    }
    let (rule, input): (RuleFields, CreateKey) =
        split_definition(definition, RULE_FIELDS, "trusted issuer definition")?;
    validate_url("issuer", &rule.issuer)?;
    if rule.audience.is_empty()
        || rule.audience.chars().count() > MAX_AUDIENCE
        || !printable(&rule.audience)
    {
        return Err(invalid(
            "audience",
            format!("'audience' must be 1-{MAX_AUDIENCE} printable characters."),
        ));
    }
    if rule.jwks_uri.is_some() && rule.jwks.is_some() {
        return Err(invalid("jwks", "Give 'jwks_uri' or 'jwks', not both."));
    }
    if let Some(uri) = &rule.jwks_uri {
        validate_url("jwks_uri", uri)?;
    }
    let jwks = rule.jwks.map(validate_jwks).transpose()?;
    validate_claims(&rule.claims)?;
    let ttl = token_ttl(&state, rule.token_ttl.as_deref())?;
    let (record, secret) = create_record(&state, &actor, input, KeyKind::Workload).await?;
    // The record's own secret authenticates nothing; it is never shown.
    drop(secret);
    let now = record.created_at;
    let stored = TrustedIssuerRecord {
        id: format!("tis_{}", uuid::Uuid::now_v7().simple()),
        key_id: record.id.clone(),
        issuer: rule.issuer,
        jwks_uri: rule.jwks_uri,
        jwks,
        audience: rule.audience,
        claims: rule.claims,
        token_ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
        created_at: now,
        disabled_at: None,
        updated_at: now,
    };
    state
        .store
        .insert_trusted_issuer(&stored)
        .await
        .map_err(store_failed)?;
    tracing::info!(rule_id = %stored.id, key_id = %record.id, issuer = %stored.issuer, "issuer trusted");
    Ok((
        StatusCode::CREATED,
        Json(rule_view(&stored, Some(&record), now)),
    )
        .into_response())
}

/// The workload key records the caller sees, by id.
async fn visible_records(
    state: &AppState,
    actor: &Actor,
) -> Result<BTreeMap<String, KeyRecord>, ShapedError> {
    let query = KeyQuery {
        org_id: actor.org_id.clone(),
        project_id: actor.project_id.clone(),
        owner: None,
        unrevoked: false,
        except_id: None,
    };
    let mut records = BTreeMap::new();
    let mut offset = 0;
    loop {
        let page = state
            .store
            .find_keys(KeyKind::Workload, &query, 1000, offset)
            .await
            .map_err(store_failed)?;
        let done = page.len() < 1000;
        offset += 1000;
        records.extend(page.into_iter().map(|r| (r.id.clone(), r)));
        if done {
            return Ok(records);
        }
    }
}

/// List trusted issuers
///
/// Oldest first: the rules whose key record lies in the caller's scope.
#[utoipa::path(
    get,
    path = "/trusted-issuers",
    tag = "trusted-issuers",
    responses(
        (status = 200, description = "The rules.", body = TrustedIssuerList),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn list_trusted_issuers(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> AdminResult {
    let records = visible_records(&state, &actor).await?;
    let rules = state.store.trusted_issuers().await.map_err(store_failed)?;
    let now = crate::time::now_ms();
    let data = rules
        .iter()
        .filter_map(|rule| {
            records
                .get(&rule.key_id)
                .map(|record| rule_view(rule, Some(record), now))
        })
        .collect();
    Ok(Json(TrustedIssuerList { data }).into_response())
}

/// Stop trusting an issuer rule
///
/// Identity tokens are no longer exchanged under it, on every node, from
/// the next exchange. Admins and owners.
#[utoipa::path(
    post,
    path = "/trusted-issuers/{id}/disable",
    tag = "trusted-issuers",
    params(TrustedIssuerId),
    responses(
        (status = 200, description = "The rule as now stored.", body = TrustedIssuerView),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn disable_trusted_issuer(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    TrustedIssuerId { id }: TrustedIssuerId,
) -> AdminResult {
    set_disabled(&state, &actor, &id, true).await
}

/// Trust an issuer rule again
#[utoipa::path(
    post,
    path = "/trusted-issuers/{id}/enable",
    tag = "trusted-issuers",
    params(TrustedIssuerId),
    responses(
        (status = 200, description = "The rule as now stored.", body = TrustedIssuerView),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn enable_trusted_issuer(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    TrustedIssuerId { id }: TrustedIssuerId,
) -> AdminResult {
    set_disabled(&state, &actor, &id, false).await
}

async fn set_disabled(state: &AppState, actor: &Actor, id: &str, disable: bool) -> AdminResult {
    let not_found = || {
        fail(ApiError::not_found(format!(
            "No trusted issuer with id '{}'.",
            crate::error::printable(id)
        )))
    };
    if !key::valid_id("tis", id) {
        return Err(not_found());
    }
    let rule = state
        .store
        .trusted_issuers()
        .await
        .map_err(store_failed)?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(not_found)?;
    let record = state
        .store
        .get_key(&rule.key_id)
        .await
        .map_err(store_failed)?
        .filter(|k| actor.sees_key(k))
        .ok_or_else(not_found)?;
    actor.require(Role::Admin, "change trusted issuers")?;
    if !disable && record.revoked_at.is_some() {
        return Err(fail(ApiError::state_conflict(
            "key_revoked",
            "The rule's key record is revoked; trust the issuer anew instead.",
        )));
    }
    let now = crate::time::now_ms();
    // Disabling a disabled rule keeps its original time.
    let disabled_at = disable.then(|| rule.disabled_at.unwrap_or(now));
    if !state
        .store
        .set_trusted_issuer_disabled(id, disabled_at, now)
        .await
        .map_err(store_failed)?
    {
        return Err(not_found());
    }
    tracing::info!(rule_id = %id, disabled = disable, "trusted issuer changed");
    let rule = TrustedIssuerRecord {
        disabled_at,
        updated_at: now,
        ..rule
    };
    Ok(Json(rule_view(&rule, Some(&record), now)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn claim_rules_must_pin_something() {
        assert!(validate_claims(&claims(&[("repository", "acme/app")])).is_ok());
        assert!(validate_claims(&claims(&[("ref", "refs/heads/*")])).is_ok());
        assert!(validate_claims(&claims(&[])).is_err());
        assert!(validate_claims(&claims(&[("sub", "*")])).is_err());
        assert!(validate_claims(&claims(&[("sub", "**?")])).is_err());
        assert!(validate_claims(&claims(&[("ref", "refs/{a,b}")])).is_err());
        assert!(validate_claims(&claims(&[("", "x")])).is_err());
        assert!(validate_claims(&claims(&[("a\u{7}", "x")])).is_err());
        assert!(validate_claims(&claims(&[(&"n".repeat(65), "x")])).is_err());
    }

    #[test]
    fn every_rule_property_is_a_schema() {
        let Value::Object(properties) = rule_properties() else {
            panic!("not an object")
        };
        for (name, property) in properties {
            if let Err(e) = serde_json::from_value::<Schema>(property) {
                panic!("{name}: {e}");
            }
        }
    }

    #[test]
    fn the_documented_body_is_the_key_definition_plus_the_rule() {
        let RefOr::T(Schema::Object(object)) = CreateTrustedIssuer::schema() else {
            panic!("not an object schema")
        };
        for field in RULE_FIELDS.iter().chain(&["models", "rpm", "name"]) {
            assert!(object.properties.contains_key(*field), "{field} missing");
        }
        assert!(!object.required.iter().any(|f| f == "name"));
        for field in ["issuer", "audience", "claims"] {
            assert!(object.required.iter().any(|f| f == field), "{field}");
        }
        let RefOr::T(Schema::Object(account)) =
            super::super::service_accounts::CreateServiceAccount::schema()
        else {
            panic!("not an object schema")
        };
        assert!(account.properties.contains_key("algorithm"));
        assert!(account.required.iter().any(|f| f == "name"));
    }

    #[test]
    fn urls_are_https_or_loopback_http() {
        assert!(validate_url("issuer", "https://token.actions.githubusercontent.com").is_ok());
        assert!(validate_url("issuer", "http://127.0.0.1:8080").is_ok());
        assert!(validate_url("issuer", "http://[::1]:9/x").is_ok());
        assert!(validate_url("issuer", "http://localhost").is_ok());
        assert!(validate_url("issuer", "http://example.com").is_err());
        assert!(validate_url("issuer", "https://u:p@example.com").is_err());
        assert!(validate_url("issuer", "https://example.com/?a=b").is_err());
        assert!(validate_url("issuer", "ftp://example.com").is_err());
        assert!(validate_url("issuer", "not a url").is_err());
    }

    #[test]
    fn fixed_jwks_take_public_signing_keys_only() {
        let secret = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]});
        let Value::Object(secret) = secret else {
            unreachable!()
        };
        assert!(validate_jwks(secret).is_err());
        let rsa = json!({"keys": [{"kty": "RSA", "kid": "a", "n": "AAAA", "e": "AQAB"}]});
        let Value::Object(rsa) = rsa else {
            unreachable!()
        };
        assert!(validate_jwks(rsa).is_ok());
        let empty = json!({"keys": []});
        let Value::Object(empty) = empty else {
            unreachable!()
        };
        assert!(validate_jwks(empty).is_err());
    }
}
