//! The admin API's OpenAPI 3.1 document, served at
//! `GET /admin/v1/openapi.json` (behind the admin credential, like every
//! admin route). It is generated from the handlers and their types by
//! `utoipa`, never written by hand: a handler that changes changes the
//! document with it.
//!
//! # Documenting a route
//!
//! 1. Give the handler typed bodies. The request body type derives
//!    `utoipa::ToSchema` next to `Deserialize` (keep
//!    `#[serde(deny_unknown_fields)]`: it becomes
//!    `additionalProperties: false`); the answer is a `Serialize + ToSchema`
//!    struct rather than `json!`, so the document is what the code sends.
//!    A generic Rust name gets a schema name of its own with
//!    `#[schema(as = CreateKey)]`. Query parameters and path parameters are
//!    a struct deriving `Deserialize + utoipa::IntoParams`
//!    (`#[into_params(parameter_in = Query)]` or `Path`) that the handler
//!    itself extracts (see `CredentialName` in `provider_credentials.rs`:
//!    its extractor answers a path that does not decode with a 404 in the
//!    error shape instead of axum's plain-text 400). Field doc comments
//!    become descriptions; `#[schema(format = DateTime)]`, `#[schema(pattern
//!    = …, max_length = …)]`, `#[param(minimum = 1)]` state what the handler
//!    checks, and `#[param(schema_with = super::openapi::time_or_duration)]`
//!    describes a `since`/`until` filter. Say everything the handler
//!    refuses: schemathesis sends whatever the schema allows and fails the
//!    run when a schema-valid request gets a 400.
//! 2. Put `#[utoipa::path]` on the handler, with the same path string as its
//!    `.route(…)` in the admin router (paths are relative to the server URL
//!    `/admin/v1`, exactly as the router is nested), a `tag`, and every
//!    status the *handler* can answer with, and an `operation_id` when the
//!    function's name is not unique in the document (`list`). Error
//!    statuses name the shared
//!    responses below (`BadRequest`, `NotFound`, …); all of them carry the
//!    OpenAI error shape [`ErrorBody`]. The first doc-comment line is the
//!    summary:
//!
//!    ```ignore
//!    /// Show a key
//!    #[utoipa::path(
//!        get,
//!        path = "/keys/{id}",
//!        tag = "keys",
//!        params(KeyId),
//!        responses(
//!            (status = 200, description = "The key; never its secret.", body = KeyView),
//!            (status = 404, response = NotFound),
//!            (status = 503, response = Unavailable),
//!        )
//!    )]
//!    async fn show_key(State(state): State<AppState>, KeyId { id }: KeyId) -> AdminResult {
//!    ```
//!
//!    Do not list 401, 403 and 431 (every admin route, from the admin
//!    check and the header limit) nor, on a method with a body, 413 (the
//!    audit layer's read limit): [`MiddlewareResponses`] adds those to every
//!    operation, as the middleware adds them to every route.
//! 3. Add the handler to `paths(…)` of [`AdminApi`] below (a handler in
//!    `admin.rs` is `super::name`; one in a submodule must be `pub(super)`
//!    and is `super::module::name`). Schemas the handler names are collected
//!    by themselves.
//! 4. Remove the route from `UNDOCUMENTED` in this file's tests. The tests
//!    read every `.route(…)` in `admin.rs` and `admin/*.rs` and fail on a
//!    route that is neither documented nor listed there, on an operation
//!    that does not declare its error responses, and on a request body that
//!    accepts unknown fields. The end-to-end suite
//!    (`tests/e2e/test_openapi.py`) then runs schemathesis against every
//!    documented operation of a real gateway; add the route to `DOCUMENTED`
//!    there too, so that it cannot silently drop out.

use crate::error::{ApiError, ErrorShape};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{KnownFormat, Ref, RefOr, SchemaFormat};
use utoipa::{Modify, OpenApi, ToResponse, ToSchema};

/// The admin API's document. Add each annotated handler to `paths(…)`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "keygate admin API",
        version = env!("CARGO_PKG_VERSION"),
        description = "Administration of a keygate gateway: keys, usage, stored provider \
            credentials and the audit log. Every operation needs an admin credential in \
            `Authorization: Bearer …`; a data-plane key gets 403. Errors have OpenAI's \
            shape, `{\"error\":{\"message\",\"type\",\"param\",\"code\"}}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "/admin/v1", description = "This gateway's admin API")),
    paths(
        serve,
        super::audit::list,
        super::provider_credentials::list,
        super::provider_credentials::create,
        super::provider_credentials::show,
        super::provider_credentials::replace,
        super::provider_credentials::remove,
        super::tenancy::create_organisation,
        super::tenancy::list_organisations,
        super::tenancy::show_organisation,
        super::tenancy::create_project,
        super::tenancy::list_projects,
        super::tenancy::show_project,
        super::limits::update_project,
        super::limits::update_organisation,
        super::limits::top_up,
        super::limits::set_owner_budget,
        super::limits::remove_owner_budget,
        super::limits::list_owner_budgets,
        super::incident::incident,
        super::oauth_clients::create_client,
        super::oauth_clients::list_clients,
        super::admin_credentials::create_credential,
        super::admin_credentials::list_credentials,
        super::admin_credentials::show_credential,
        super::admin_credentials::revoke_credential,
        super::keys::create_key,
        super::keys::list_keys,
        super::keys::show_key,
        super::keys::update_key,
        super::keys::revoke_key,
        super::keys::revoke_key_by_delete,
        super::keys::revoke_keys,
        super::keys::rotate_key,
        super::keys::suspend_key,
        super::keys::resume_key,
        super::key_lookup::lookup_keys,
        super::service_accounts::create_service_account,
        super::service_accounts::list_service_accounts,
        super::service_accounts::add_key,
        super::service_accounts::list_account_keys,
        super::service_accounts::disable_key,
        super::service_accounts::enable_key,
        super::trust::create_trusted_issuer,
        super::trust::list_trusted_issuers,
        super::trust::disable_trusted_issuer,
        super::trust::enable_trusted_issuer,
        super::usage_totals,
        super::usage_events,
    ),
    components(
        schemas(ErrorBody, ErrorDetail),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            Conflict,
            PayloadTooLarge,
            UnsupportedMediaType,
            HeaderTooLarge,
            Unavailable
        )
    ),
    security(("bearer" = [])),
    tags(
        (name = "provider-credentials", description = "Upstream secrets stored encrypted in the database"),
        (name = "keys", description = "Data-plane API keys: create, list, rotate, suspend, revoke"),
        (name = "oauth-clients", description = "OAuth clients: key records whose secret obtains access tokens at /oauth/token (client credentials)"),
        (name = "service-accounts", description = "Service accounts: key files whose signed assertions get tokens (RFC 7523)"),
        (name = "trusted-issuers", description = "Trusted OIDC issuers: identity tokens matching a rule are exchanged for tokens (RFC 8693)"),
        (name = "usage", description = "The usage ledger"),
        (name = "admin-credentials", description = "Admin credentials with a role and a scope"),
        (name = "tenancy", description = "Organisations and their projects, their limits, owner budgets and prepaid balances"),
        (name = "audit", description = "Every administrative change and refused admin sign-in"),
        (name = "meta", description = "This document"),
    ),
    modifiers(&MiddlewareResponses),
)]
pub(super) struct AdminApi;

/// An error, in OpenAI's shape: `{"error":{"message","type","param","code"}}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(super) struct ErrorBody {
    error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(super) struct ErrorDetail {
    /// Human-readable explanation; never contains a secret.
    message: String,
    /// OpenAI's error type for the status: `invalid_request_error`,
    /// `authentication_error`, `permission_error`, `not_found_error`,
    /// `api_error`, …
    #[serde(rename = "type")]
    kind: String,
    /// The request parameter at fault, when there is one.
    #[schema(required = true)]
    param: Option<String>,
    /// Machine-readable reason, e.g. `invalid_api_key`, `admin_required`,
    /// `not_found`, `already_exists`.
    code: String,
}

// The shared error responses. Only their types are used (by the
// `#[utoipa::path]` attributes); none is ever built.

/// The request is malformed: not a JSON object, an unknown or wrongly
/// typed field, a parameter out of range.
#[derive(ToResponse)]
#[allow(dead_code)]
pub(super) struct BadRequest(ErrorBody);

/// No credential, or an unknown, malformed, expired or revoked one; or a
/// credential in the URL query.
#[derive(ToResponse)]
#[allow(dead_code)]
pub(super) struct Unauthorized(ErrorBody);

/// The credential is valid but not an admin credential (`admin_required`).
#[derive(ToResponse)]
#[allow(dead_code)]
pub(super) struct Forbidden(ErrorBody);

/// Nothing by that id or name.
#[derive(ToResponse)]
#[allow(dead_code)]
pub(super) struct NotFound(ErrorBody);

/// Something by that name already exists (`already_exists`).
#[derive(ToResponse)]
#[allow(dead_code)]
pub(super) struct Conflict(ErrorBody);

/// The request body is over the limit (`request_too_large`).
#[derive(ToResponse)]
#[allow(dead_code)]
pub(super) struct PayloadTooLarge(ErrorBody);

/// The request body is not sent as `application/json`.
#[derive(ToResponse)]
#[allow(dead_code)]
pub(super) struct UnsupportedMediaType(ErrorBody);

/// A request header is over the configured limit.
#[derive(ToResponse)]
#[allow(dead_code)]
pub(super) struct HeaderTooLarge(ErrorBody);

/// The store (or, for stored provider credentials, the master key) is
/// unavailable; retry shortly.
#[derive(ToResponse)]
#[allow(dead_code)]
pub(super) struct Unavailable(ErrorBody);

/// The schema of a time filter (`since`, `until`): an RFC 3339 time, or a
/// duration back from now (`24h`, `1h30m`: a number and `ns`, `us`, `ms`,
/// `s`, `m`, `h`, `d` or `w`, up to four times; or `0`). A subset of what
/// `humantime` reads, enough for schema-driven clients. Use it as
/// `#[param(schema_with = super::openapi::time_or_duration)]`.
pub(super) fn time_or_duration() -> Schema {
    AnyOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^(0|([0-9]{1,9}(ns|us|ms|s|m|h|d|w)){1,4})$")),
        )
        .description(Some(
            "An RFC 3339 time, or a duration back from now such as `24h` or `1h30m`.",
        ))
        .examples([serde_json::json!("24h")])
        .build()
        .into()
}

/// Adds what the middleware does to every admin route: the bearer security
/// scheme, and the responses of the admin check (401, 403), of the header
/// limit (431) and, where a body may be sent, of the audit layer's read
/// limit (413).
pub(super) struct MiddlewareResponses;

impl Modify for MiddlewareResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "An admin credential (the bootstrap file's, or one made for an \
                             operator). Data-plane keys are refused with 403.",
                        ))
                        .build(),
                ),
            );
        }
        for item in openapi.paths.paths.values_mut() {
            let with_body = [
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in with_body.into_iter().flatten() {
                add_response(operation, "413", "PayloadTooLarge");
            }
            let all = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
                &mut item.head,
                &mut item.options,
                &mut item.trace,
            ];
            for operation in all.into_iter().flatten() {
                add_response(operation, "401", "Unauthorized");
                add_response(operation, "403", "Forbidden");
                add_response(operation, "431", "HeaderTooLarge");
            }
        }
    }
}

fn add_response(operation: &mut Operation, status: &str, name: &str) {
    operation
        .responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
}

/// The document, rendered once.
static DOCUMENT: LazyLock<Result<String, String>> =
    LazyLock::new(|| AdminApi::openapi().to_json().map_err(|e| e.to_string()));

/// This document
///
/// The OpenAPI 3.1 description of the admin API, generated from the code.
/// Like every admin route it needs an admin credential.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi_document",
    tag = "meta",
    responses(
        (status = 200, description = "An OpenAPI 3.1 document.", content_type = "application/json", body = Object),
    )
)]
pub(super) async fn serve() -> Response {
    match &*DOCUMENT {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json.clone()).into_response(),
        Err(error) => {
            tracing::error!(%error, "the OpenAPI document could not be rendered");
            ApiError::unavailable("The OpenAPI document could not be rendered.")
                .to_response(ErrorShape::OpenAi)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::BTreeSet;

    /// Routes the admin router registers whose handlers are not annotated
    /// yet. Remove a route from here when you annotate its handler.
    const UNDOCUMENTED: &[(&str, &str)] = &[];

    const METHODS: [&str; 8] = [
        "get", "post", "put", "patch", "delete", "head", "options", "trace",
    ];

    fn document() -> Value {
        match &*DOCUMENT {
            Ok(json) => serde_json::from_str(json).unwrap(),
            Err(error) => panic!("the document does not render: {error}"),
        }
    }

    /// Every `(METHOD, path)` of the document.
    fn documented(doc: &Value) -> BTreeSet<(String, String)> {
        let mut found = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in METHODS {
                if item.get(method).is_some() {
                    found.insert((method.to_ascii_uppercase(), path.clone()));
                }
            }
        }
        found
    }

    /// Every `(METHOD, path)` that a `.route("…", get(…).post(…))` in
    /// `admin.rs` or `admin/*.rs` registers, read from the source.
    fn registered() -> BTreeSet<(String, String)> {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = vec![src.join("admin.rs")];
        for entry in std::fs::read_dir(src.join("admin")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
        let mut found = BTreeSet::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (path, methods) in routes_in(&text) {
                assert!(
                    !methods.is_empty(),
                    "{}: no method found for route {path}",
                    file.display()
                );
                for method in methods {
                    found.insert((method, path.clone()));
                }
            }
        }
        found
    }

    /// The routes of one source file: each `.route(` followed by a string
    /// literal, and the method-router functions called in its arguments.
    fn routes_in(text: &str) -> Vec<(String, Vec<String>)> {
        let mut routes = Vec::new();
        // Comments and the tests (at the end of a file) route nothing.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let code: String = code
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let text = code.as_str();
        for (start, _) in text.match_indices(".route(") {
            let rest = text[start + ".route(".len()..].trim_start();
            let Some(rest) = rest.strip_prefix('"') else {
                panic!(
                    "a .route( whose path is not a string literal: {}",
                    &text[start..]
                );
            };
            let end = rest.find('"').unwrap();
            let path = rest[..end].to_string();
            // The arguments up to the parenthesis closing `.route(`.
            let mut depth = 1;
            let mut args_end = rest.len();
            for (i, c) in rest.char_indices().skip(end + 1) {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            args_end = i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            // The functions called at the top level of the arguments
            // (`get(…).post(…)`), not those inside a handler expression.
            let mut methods = Vec::new();
            let mut depth = 0;
            let mut word = String::new();
            for c in rest[end + 1..args_end].chars() {
                match c {
                    '(' => {
                        if depth == 0 && METHODS.contains(&word.as_str()) {
                            methods.push(word.to_ascii_uppercase());
                        }
                        depth += 1;
                    }
                    ')' => depth -= 1,
                    _ => {}
                }
                if c.is_alphanumeric() || c == '_' {
                    word.push(c);
                } else {
                    word.clear();
                }
            }
            routes.push((path, methods));
        }
        routes
    }

    #[test]
    fn route_reader_reads_method_chains() {
        let text = r#"Router::new()
            .route("/a", post(create_a).get(list_a))
            .route(
                "/a/{id}",
                get(show).patch(update_a).delete(my_delete),
            )
            .route("/b", axum::routing::put(|| async { x.get(1) }))"#;
        let routes = routes_in(text);
        assert_eq!(routes.len(), 3);
        assert_eq!(routes[0], ("/a".into(), vec!["POST".into(), "GET".into()]));
        assert_eq!(
            routes[1],
            (
                "/a/{id}".into(),
                vec!["GET".into(), "PATCH".into(), "DELETE".into()]
            )
        );
        assert_eq!(routes[2].1, vec!["PUT".to_string()]);
    }

    #[test]
    fn every_admin_route_is_documented() {
        let doc = document();
        let documented = documented(&doc);
        let registered = registered();
        // Sanity: the reader found the router.
        assert!(registered.contains(&("GET".into(), "/openapi.json".into())));
        assert!(registered.contains(&("POST".into(), "/provider-credentials".into())));
        let pending: BTreeSet<(String, String)> = UNDOCUMENTED
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        for route in &registered {
            let (method, path) = route;
            if pending.contains(route) {
                assert!(
                    !documented.contains(route),
                    "{method} {path} is documented now: remove it from UNDOCUMENTED"
                );
            } else {
                assert!(
                    documented.contains(route),
                    "{method} {path} is routed but not in the OpenAPI document: annotate its \
                     handler with #[utoipa::path] and add it to AdminApi's paths \
                     (see admin/openapi.rs)"
                );
            }
        }
        for route in &documented {
            assert!(
                registered.contains(route),
                "{} {} is documented but not routed",
                route.0,
                route.1
            );
        }
        for route in &pending {
            assert!(
                registered.contains(route),
                "{} {} in UNDOCUMENTED is not routed any more: remove it",
                route.0,
                route.1
            );
        }
    }

    /// A response's schema, following a `$ref` to a shared response.
    fn response<'a>(doc: &'a Value, response: &'a Value) -> &'a Value {
        match response["$ref"].as_str() {
            Some(r) => {
                let name = r.strip_prefix("#/components/responses/").unwrap();
                &doc["components"]["responses"][name]
            }
            None => response,
        }
    }

    #[test]
    fn every_operation_declares_its_errors() {
        let doc = document();
        let mut operation_ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in METHODS {
                let Some(op) = item.get(method) else { continue };
                let what = format!("{} {path}", method.to_ascii_uppercase());
                assert!(
                    operation_ids.insert(op["operationId"].as_str().unwrap().to_string()),
                    "{what}: duplicate operationId"
                );
                assert!(
                    op["summary"].is_string(),
                    "{what}: no summary (doc comment)"
                );
                assert!(op["tags"].is_array(), "{what}: no tag");
                let responses = op["responses"].as_object().unwrap();
                let mut expected = vec!["401", "403", "431"];
                if op.get("requestBody").is_some() {
                    expected.extend(["400", "413", "415"]);
                }
                let params = op["parameters"].as_array().cloned().unwrap_or_default();
                if params.iter().any(|p| p["in"] == "path") {
                    expected.push("404");
                }
                if params.iter().any(|p| p["in"] == "query") {
                    expected.push("400");
                }
                for status in expected {
                    assert!(
                        responses.contains_key(status),
                        "{what}: no {status} response"
                    );
                }
                assert!(
                    responses.keys().any(|s| s.starts_with('2')),
                    "{what}: no success response"
                );
                for (status, declared) in responses {
                    let content = &response(&doc, declared)["content"];
                    let schema = &content["application/json"]["schema"];
                    assert!(
                        schema.is_object(),
                        "{what}: the {status} response is not application/json"
                    );
                    if !status.starts_with('2') {
                        assert_eq!(
                            schema["$ref"], "#/components/schemas/ErrorBody",
                            "{what}: the {status} response is not the error shape"
                        );
                    }
                }
            }
        }
        assert!(!operation_ids.is_empty());
    }

    #[test]
    fn request_bodies_are_closed_json_objects() {
        let doc = document();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in METHODS {
                let Some(body) = item.get(method).and_then(|op| op.get("requestBody")) else {
                    continue;
                };
                let mut schema = &body["content"]["application/json"]["schema"];
                // An optional body (`Option<T>`): `null` or the object.
                if let Some(either) = schema["oneOf"].as_array() {
                    assert!(
                        either.iter().any(|s| s["type"] == "null"),
                        "{method} {path}: a oneOf body is only for optional bodies"
                    );
                    schema = either
                        .iter()
                        .find(|s| s.get("$ref").is_some())
                        .unwrap_or_else(|| panic!("{method} {path}: no named schema"));
                }
                let name = schema["$ref"]
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/components/schemas/"))
                    .unwrap_or_else(|| panic!("{method} {path}: body is not a named schema"));
                let schema = &doc["components"]["schemas"][name];
                assert_eq!(schema["type"], "object", "{name}");
                assert_eq!(
                    schema["additionalProperties"], false,
                    "{name}: add #[serde(deny_unknown_fields)] (unknown fields are refused)"
                );
            }
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_under_admin_v1_with_bearer_auth() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["title"], "keygate admin API");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(doc["servers"][0]["url"], "/admin/v1");
        assert_eq!(doc["security"], serde_json::json!([{"bearer": []}]));
        let scheme = &doc["components"]["securitySchemes"]["bearer"];
        assert_eq!(scheme["type"], "http");
        assert_eq!(scheme["scheme"], "bearer");
    }

    #[tokio::test]
    async fn the_error_schema_is_what_errors_render() {
        let errors = [
            ApiError::not_found("No key with id 'x'."),
            ApiError::invalid_param("limit", "'limit' must be 1-10000."),
            ApiError::unavailable("The store is unavailable; retry shortly."),
        ];
        for error in errors {
            let response = error.to_response(ErrorShape::OpenAi);
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            let rendered: Value = serde_json::from_slice(&body).unwrap();
            let parsed: ErrorBody = serde_json::from_value(rendered.clone()).unwrap();
            // Nothing rendered that the schema does not describe.
            assert_eq!(serde_json::to_value(&parsed).unwrap(), rendered);
        }
        let doc = document();
        let detail = &doc["components"]["schemas"]["ErrorDetail"];
        let required: BTreeSet<&str> = detail["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            required,
            BTreeSet::from(["message", "type", "param", "code"])
        );
    }
}
