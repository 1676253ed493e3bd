//! Errors clients see, and the one place that maps them to status codes and
//! to each API family's error shape (DESIGN "Errors clients see").

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Which provider's error shape a route answers with, so that each official
/// SDK raises its own typed exception.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorShape {
    /// `{"error":{"message","type","param","code"}}`
    OpenAi,
    /// `{"type":"error","error":{"type","message"}}`
    Anthropic,
    /// `{"error":{"code","message","status"}}`
    Google,
}

impl ErrorShape {
    /// The shape a request path answers with.
    pub fn for_path(path: &str) -> Self {
        if path.starts_with("/v1/messages") {
            ErrorShape::Anthropic
        } else if path.starts_with("/v1beta/") {
            ErrorShape::Google
        } else {
            ErrorShape::OpenAi
        }
    }
}

/// A refusal or failure as the client sees it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable reason, e.g. `invalid_api_key`; also the ledger's
    /// refusal reason.
    pub code: &'static str,
    /// Human-readable explanation; never contains a secret.
    pub message: String,
    /// The request parameter at fault, when there is one.
    pub param: Option<&'static str>,
    /// Seconds after which a retry may succeed (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    /// 400: the request itself is wrong.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }
    /// 400 naming the parameter at fault.
    pub fn invalid_param(param: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            param: Some(param),
            ..Self::invalid_request(message)
        }
    }
    /// 400: the model is neither an alias, `provider/model`, nor a known name.
    pub fn unknown_model(model: &str) -> Self {
        ApiError {
            param: Some("model"),
            ..Self::new(
                StatusCode::BAD_REQUEST,
                "model_not_found",
                format!(
                    "The model '{}' is not configured on this gateway.",
                    printable(model)
                ),
            )
        }
    }
    /// 401 with a specific code.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }
    /// 403 with a specific code.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }
    /// 409 `already_exists`: the name is taken.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "already_exists", message)
    }
    /// 409 with a specific code: the resource's state forbids the action
    /// (a revoked key cannot be rotated).
    pub fn state_conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    /// 404 for a route that does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// 413: body over the configured limit.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!("The request body exceeds this gateway's limit of {limit} bytes."),
        )
    }
    /// 415: a body that is not JSON.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request_error",
            "The request body must be JSON, sent with 'Content-Type: application/json'.",
        )
    }
    /// 431: a header over the limit.
    pub fn header_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "invalid_request_error",
            format!("A request header exceeds this gateway's limit of {limit} bytes."),
        )
    }
    /// 502: upstream failed; its own error text is deliberately not reflected.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "upstream_error", message)
    }
    /// The upstream refused the client's request as malformed (a 4xx that is
    /// the client's to fix), re-worded in the client's format.
    pub fn upstream_rejected(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(status, "upstream_rejected_request", message)
    }
    /// 504: upstream did not answer in time.
    pub fn gateway_timeout() -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            "The upstream provider did not answer in time.",
        )
    }
    /// 429 passed on from an upstream provider.
    pub fn upstream_rate_limited(retry_after: Option<u64>) -> Self {
        ApiError {
            retry_after,
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_exceeded",
                "The upstream provider is rate limiting requests; retry later.",
            )
        }
    }
    /// 429 from one of keygate's own limits (rate or concurrency).
    pub fn rate_limited(
        code: &'static str,
        message: impl Into<String>,
        retry_after: Option<u64>,
    ) -> Self {
        ApiError {
            retry_after,
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, code, message)
        }
    }
    /// 402 `budget_exceeded`: a budget or prepaid balance cannot cover the
    /// request; the message names it.
    pub fn budget_exceeded(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYMENT_REQUIRED, "budget_exceeded", message)
    }
    /// 503 with a specific code.
    pub fn unavailable_code(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }
    /// 503: the gateway cannot serve right now (store unavailable, shutting down).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            message,
        )
    }

    /// Render in the given shape.
    pub fn to_response(&self, shape: ErrorShape) -> Response {
        // A message may quote what the client sent (a model name, a
        // parameter): a credential pasted there is not echoed back.
        let message = crate::telemetry::redact::redact(&self.message);
        let body = match shape {
            ErrorShape::OpenAi => json!({"error": {
                "message": message,
                "type": openai_error_type(self.status),
                "param": self.param,
                "code": self.code,
            }}),
            ErrorShape::Anthropic => json!({"type": "error", "error": {
                "type": anthropic_error_type(self.status),
                "message": message,
            }}),
            ErrorShape::Google => json!({"error": {
                "code": self.status.as_u16(),
                "message": message,
                "status": google_status_name(self.status),
            }}),
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The OpenAI `error.type` for a status.
pub fn openai_error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        402 => "insufficient_quota",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

/// The Anthropic `error.type` for a status.
pub fn anthropic_error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        503 | 529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

/// The Google RPC status name for a status.
pub fn google_status_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "UNAUTHENTICATED",
        402 | 429 => "RESOURCE_EXHAUSTED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        504 => "DEADLINE_EXCEEDED",
        500..=599 => "UNAVAILABLE",
        _ => "INVALID_ARGUMENT",
    }
}

/// An error together with the shape its route answers in.
pub struct ShapedError(pub ApiError, pub ErrorShape);

impl IntoResponse for ShapedError {
    fn into_response(self) -> Response {
        self.0.to_response(self.1)
    }
}

/// Client-provided text quoted back in an error: bounded in length and with
/// control characters removed, so an error can't be used to inject content.
pub fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(128).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_follow_the_route() {
        assert_eq!(ErrorShape::for_path("/v1/messages"), ErrorShape::Anthropic);
        assert_eq!(
            ErrorShape::for_path("/v1beta/models/x:generateContent"),
            ErrorShape::Google
        );
        assert_eq!(
            ErrorShape::for_path("/v1/chat/completions"),
            ErrorShape::OpenAi
        );
    }

    #[test]
    fn printable_strips_control_and_bounds_length() {
        assert_eq!(printable("a\nb\u{7}c"), "abc");
        assert_eq!(printable(&"x".repeat(1000)).len(), 128);
    }
}
