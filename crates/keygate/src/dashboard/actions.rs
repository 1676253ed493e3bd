//! Changes made from the dashboard run through the admin API's own
//! routes, in-process, as the signed-in credential: one implementation of
//! every rule (roles, scopes, validation, field limits) and one audit log.

use super::SignedIn;
use crate::server::AppState;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::Value;
use std::net::SocketAddr;
use tower::ServiceExt;

/// Largest admin answer read back (a created key is a few KiB).
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// What the admin API answered.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    /// The admin API's error message, for the page.
    pub(crate) fn message(&self) -> String {
        self.body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("The change was refused.")
            .to_string()
    }
}

/// Call `method path` of the admin API (`/keys/…`, as under `/admin/v1`)
/// as the signed-in credential, with `body` as JSON.
pub(crate) async fn call(
    state: &AppState,
    signed_in: &SignedIn,
    peer: Option<ConnectInfo<SocketAddr>>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let bytes = body
        .map(|body| serde_json::to_vec(&body).unwrap_or_default())
        .unwrap_or_default();
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(bytes));
    let Ok(mut request) = request else {
        return Answer {
            status: StatusCode::BAD_REQUEST,
            body: serde_json::json!({"error": {"message": "That address is not valid."}}),
        };
    };
    request.extensions_mut().insert(signed_in.actor.clone());
    if let Some(peer) = peer {
        // The audit log records where the change came from.
        request.extensions_mut().insert(peer);
    }
    let response = match crate::admin::session_router(state.clone())
        .oneshot(request)
        .await
    {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
        .await
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null);
    Answer { status, body }
}
