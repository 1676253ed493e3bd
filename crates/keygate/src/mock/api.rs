//! What every provider route shares: reading the body, recording, faults,
//! latency, and rendering replies and errors in the provider's shape.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use serde::Serialize;

use super::control::{Applied, Shared};
use super::sse;

/// Largest request body accepted (embedding batches can be big).
pub(super) const MAX_BODY: usize = 32 * 1024 * 1024;

/// Which provider's conventions a route follows (error shape, headers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Flavor {
    OpenAi,
    Anthropic,
    Gemini,
    /// AWS (Bedrock Runtime): `{"message"}` plus `x-amzn-errortype`.
    Bedrock,
}

/// An error to render in the provider's shape.
#[derive(Debug)]
pub(super) struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub param: Option<&'static str>,
    pub code: Option<&'static str>,
}

impl ApiError {
    /// A 400 about the request.
    pub(super) fn invalid(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            param: None,
            code: None,
        }
    }

    /// A failure of the mock itself (never expected).
    pub(super) fn internal(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            param: None,
            code: None,
        }
    }

    pub(super) fn param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    pub(super) fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// A body that is not the JSON the route expects.
    pub(super) fn bad_json(flavor: Flavor, e: &serde_json::Error) -> Self {
        let message = match flavor {
            Flavor::OpenAi => format!(
                "We could not parse the JSON body of your request. ({e}) \
                 (HINT: This likely means you aren't using your HTTP library correctly.)"
            ),
            Flavor::Anthropic | Flavor::Gemini => format!("Invalid JSON payload received. {e}"),
            Flavor::Bedrock => {
                format!("Malformed input request: {e}, please reformat your input and try again.")
            }
        };
        ApiError::invalid(message)
    }
}

/// A successful (or semantically failed) answer, before framing.
pub(super) enum Reply {
    /// A whole JSON document.
    Json(Bytes),
    /// A sequence of events sent incrementally (SSE, or Gemini's streamed
    /// JSON array).
    Stream(sse::Events),
    Error(ApiError),
    /// A response built by the route (errors in a shape of their own, such
    /// as Azure's or an OAuth endpoint's).
    Raw(Response),
}

impl From<serde_json::Error> for Reply {
    fn from(e: serde_json::Error) -> Self {
        Reply::Error(ApiError::internal(format!(
            "mock could not encode its response: {e}"
        )))
    }
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Self {
        Reply::Error(e)
    }
}

/// Serialise a response document.
pub(super) fn json<T: Serialize>(value: &T) -> Reply {
    match serde_json::to_vec(value) {
        Ok(v) => Reply::Json(Bytes::from(v)),
        Err(e) => Reply::Error(ApiError::internal(format!(
            "mock could not encode its response: {e}"
        ))),
    }
}

/// What a route handler sees of its request.
pub(super) struct Ctx<'a> {
    pub state: &'a Shared,
    pub method: &'a http::Method,
    pub uri: &'a http::Uri,
    pub headers: &'a HeaderMap,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub body: &'a [u8],
}

impl Ctx<'_> {
    /// A request header as text (absent when missing or not visible ASCII).
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The token of `Authorization: Bearer <token>`.
    pub(super) fn bearer(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        let (scheme, token) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty())
    }

    /// A query parameter's raw value.
    pub(super) fn query_param(&self, name: &str) -> Option<&str> {
        self.query?
            .split('&')
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

/// A JSON response with this status and body.
pub(super) fn raw_json(status: StatusCode, body: &serde_json::Value) -> Reply {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, json_type());
    Reply::Raw(response)
}

/// The AWS error type for a status, when the route names none.
fn aws_error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "ValidationException",
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        413 => "ValidationException",
        424 => "ModelErrorException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        _ => "InternalServerException",
    }
}

/// The error body in `flavor`'s shape.
pub(super) fn error_body(flavor: Flavor, e: &ApiError) -> Vec<u8> {
    let value = match flavor {
        Flavor::OpenAi => serde_json::json!({
            "error": {
                "message": e.message,
                "type": crate::error::openai_error_type(e.status),
                "param": e.param,
                "code": e.code,
            }
        }),
        Flavor::Anthropic => serde_json::json!({
            "type": "error",
            "error": {"type": crate::error::anthropic_error_type(e.status), "message": e.message},
        }),
        Flavor::Gemini => serde_json::json!({
            "error": {
                "code": e.status.as_u16(),
                "message": e.message,
                "status": crate::error::google_status_name(e.status),
            }
        }),
        Flavor::Bedrock => serde_json::json!({ "message": e.message }),
    };
    value.to_string().into_bytes()
}

fn json_type() -> HeaderValue {
    HeaderValue::from_static("application/json")
}

/// Adds the request-id header each provider sends (gateways log it).
fn with_headers(flavor: Flavor, state: &Shared, mut response: Response) -> Response {
    let name = match flavor {
        Flavor::OpenAi => HeaderName::from_static("x-request-id"),
        Flavor::Anthropic => HeaderName::from_static("request-id"),
        Flavor::Bedrock => HeaderName::from_static("x-amzn-requestid"),
        Flavor::Gemini => return response,
    };
    if let Ok(value) = HeaderValue::try_from(state.id("req_")) {
        response.headers_mut().insert(name, value);
    }
    response
}

/// An error response in `flavor`'s shape (with `retry-after` on 429).
pub(super) fn error_response(flavor: Flavor, state: &Shared, e: &ApiError) -> Response {
    let mut response = raw_error(flavor, state, e.status, error_body(flavor, e));
    if flavor == Flavor::Bedrock {
        let kind = e.code.unwrap_or_else(|| aws_error_type(e.status));
        response
            .headers_mut()
            .insert("x-amzn-errortype", HeaderValue::from_static(kind));
    }
    response
}

fn raw_error(flavor: Flavor, state: &Shared, status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, json_type());
    if status == StatusCode::TOO_MANY_REQUESTS {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    with_headers(flavor, state, response)
}

/// The response for a fault's `status`.
fn fault_response(
    flavor: Flavor,
    state: &Shared,
    status: StatusCode,
    body: Option<serde_json::Value>,
) -> Response {
    let mut response = match body {
        Some(value) => raw_error(flavor, state, status, value.to_string().into_bytes()),
        None => {
            let reason = status.canonical_reason().unwrap_or("error");
            let body = error_body(
                flavor,
                &ApiError {
                    status,
                    message: format!("mock-provider injected fault: {} {reason}", status.as_u16()),
                    param: None,
                    code: (status == StatusCode::TOO_MANY_REQUESTS && flavor == Flavor::OpenAi)
                        .then_some("rate_limit_exceeded"),
                },
            );
            raw_error(flavor, state, status, body)
        }
    };
    if flavor == Flavor::Bedrock {
        response.headers_mut().insert(
            "x-amzn-errortype",
            HeaderValue::from_static(aws_error_type(status)),
        );
    }
    response
}

/// Run a provider route: read and record the request, apply queued faults
/// and latency, call `route`, and frame its reply.
pub(super) async fn handle<F>(
    state: Arc<Shared>,
    flavor: Flavor,
    request: Request,
    route: F,
) -> Response
where
    F: FnOnce(&Ctx<'_>) -> Reply,
{
    let (parts, body) = request.into_parts();
    let body = match read_body(&parts.headers, body).await {
        Ok(b) => b,
        Err(e) => {
            state.record(&parts.method, &parts.uri, &parts.headers, &[]);
            return error_response(flavor, &state, &e);
        }
    };
    state.record(&parts.method, &parts.uri, &parts.headers, &body);
    let fault = state.take_fault(parts.uri.path()).unwrap_or_default();
    let latency = state.latency_ms().saturating_add(fault.latency_ms);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let Applied {
        status,
        body: fault_body,
        cut_after_chunks,
        ..
    } = fault;
    if let Some(status) = status {
        return fault_response(flavor, &state, status, fault_body);
    }
    let ctx = Ctx {
        state: &state,
        method: &parts.method,
        uri: &parts.uri,
        headers: &parts.headers,
        path: parts.uri.path(),
        query: parts.uri.query(),
        body: &body,
    };
    let reply = route(&ctx);
    let response = match reply {
        Reply::Json(doc) => match cut_after_chunks {
            None => {
                let mut response = Response::new(Body::from(doc));
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, json_type());
                response
            }
            Some(_) => {
                let mut response = Response::new(sse::cut_json(doc));
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, json_type());
                response
            }
        },
        Reply::Stream(events) => events.into_response(state.chunk_delay_ms(), cut_after_chunks),
        Reply::Error(e) => return error_response(flavor, &state, &e),
        Reply::Raw(response) => response,
    };
    with_headers(flavor, &state, response)
}

async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let too_large = || ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: format!("request body is larger than {MAX_BODY} bytes or could not be read"),
        param: None,
        code: None,
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| too_large())
}

/// Unknown routes: 404 in OpenAI's shape (recorded, so that a gateway
/// calling a wrong path shows up in `/_mock/requests`).
pub(super) async fn not_found(State(state): State<Arc<Shared>>, request: Request) -> Response {
    unrouted(&state, request, StatusCode::NOT_FOUND).await
}

/// Known path, wrong method: 405 in OpenAI's shape.
pub(super) async fn method_not_allowed(
    State(state): State<Arc<Shared>>,
    request: Request,
) -> Response {
    unrouted(&state, request, StatusCode::METHOD_NOT_ALLOWED).await
}

async fn unrouted(state: &Shared, request: Request, status: StatusCode) -> Response {
    let (parts, body) = request.into_parts();
    if !parts.uri.path().starts_with("/_mock/") {
        let body = read_body(&parts.headers, body).await.unwrap_or_default();
        state.record(&parts.method, &parts.uri, &parts.headers, &body);
    }
    let message = if status == StatusCode::NOT_FOUND {
        format!(
            "Unknown request URL: {} {}. Please check the URL for typos.",
            parts.method,
            parts.uri.path()
        )
    } else {
        format!(
            "Method {} is not allowed on {}.",
            parts.method,
            parts.uri.path()
        )
    };
    let e = ApiError {
        status,
        message,
        param: None,
        code: Some(if status == StatusCode::NOT_FOUND {
            "unknown_url"
        } else {
            "method_not_allowed"
        }),
    };
    error_response(Flavor::OpenAi, state, &e)
}
