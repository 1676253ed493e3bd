//! The data plane: credential → authorization → routing → upstream → relay →
//! ledger, for every client-facing model route.

mod body;
mod models;
mod relay;
pub mod sse;
pub mod usage;

use crate::auth::extract::{refuse_credential_in_query, required_credential};
use crate::auth::{KeyEntry, KeyKind};
use crate::error::{ApiError, ErrorShape};
use crate::ledger::UsageEvent;
use crate::providers::{Dialect, Operation, Route};
use crate::server::AppState;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use models::list_models;

/// Client headers the providers' APIs need and that carry no credential.
const PASS_THROUGH: &[&str] = &["anthropic-version", "anthropic-beta", "openai-beta"];

/// `POST /v1/chat/completions`
pub async fn chat_completions(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    forward(state.0, Operation::ChatCompletions, peer.0, req).await
}

/// `POST /v1/embeddings`
pub async fn embeddings(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    forward(state.0, Operation::Embeddings, peer.0, req).await
}

/// `POST /v1/messages`
pub async fn messages(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    forward(state.0, Operation::Messages, peer.0, req).await
}

/// A fresh request id, returned as `x-request-id` and keyed in the ledger.
pub fn new_request_id() -> String {
    format!("req_{}", uuid::Uuid::now_v7().simple())
}

/// The start of a ledger row for a request that just arrived.
pub fn arriving(route: &str, peer: SocketAddr, request: &Request) -> UsageEvent {
    let headers = request.headers();
    UsageEvent {
        request_id: request
            .extensions()
            .get::<crate::server::RequestId>()
            .map(|id| id.0.clone())
            .unwrap_or_else(new_request_id),
        ts: crate::time::now_ms(),
        key_id: None,
        route: route.to_string(),
        model: None,
        provider: None,
        prompt_tokens: 0,
        completion_tokens: 0,
        status: 0,
        error_code: None,
        latency_ms: 0,
        streamed: false,
        source_ip: Some(peer.ip().to_string()),
        user_agent: headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(crate::error::printable),
    }
}

fn elapsed_ms(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)
}

/// Verify the credential on a data-plane request.
pub fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Arc<KeyEntry>, ApiError> {
    refuse_credential_in_query(query)?;
    let key = state
        .keys
        .verify(required_credential(headers)?, crate::time::now_ms())?;
    if key.kind != KeyKind::Data {
        return Err(ApiError::forbidden(
            "wrong_credential_kind",
            "Admin credentials cannot call models; use a keygate API key.",
        ));
    }
    Ok(key)
}

async fn forward(state: AppState, op: Operation, peer: SocketAddr, req: Request) -> Response {
    let started = Instant::now();
    let mut event = arriving(op.route(), peer, &req);
    match proxy(&state, op, req, &mut event, started).await {
        Ok(response) => response,
        Err(error) => {
            event.status = error.status.as_u16();
            event.error_code = Some(error.code.to_string());
            event.latency_ms = elapsed_ms(started);
            state.ledger.record(event).await;
            error.to_response(ErrorShape::for_path(op.route()))
        }
    }
}

async fn proxy(
    state: &AppState,
    op: Operation,
    req: Request,
    event: &mut UsageEvent,
    started: Instant,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let key = authenticate(state, &parts.headers, parts.uri.query())?;
    event.key_id = Some(key.id.clone());

    let bytes = body::read_json(&parts.headers, body, state.config.max_body_bytes).await?;
    let head = body::parse_head(&bytes)?;
    event.model = Some(crate::ledger::clean_text(&head.model));
    event.streamed = head.stream;

    let not_allowed = || {
        ApiError::forbidden(
            "model_not_allowed",
            format!(
                "This API key is not allowed to use the model '{}'.",
                crate::error::printable(&head.model)
            ),
        )
    };
    // A model the key may not use is refused as such even when it is not
    // configured, so a key cannot probe which models the gateway serves.
    let route = match state.registry.resolve(&head.model, op) {
        Ok(route) => route,
        Err(_) if !key.models.allows(&head.model, &head.model) => return Err(not_allowed()),
        Err(error) => return Err(error),
    };
    if !key.models.allows(&head.model, &route.canonical) {
        return Err(not_allowed());
    }
    event.provider = Some(route.provider.name.clone());

    // Ask OpenAI-format upstreams for usage in the stream, so a streamed
    // request is metered from the stream itself; strip that extra chunk again
    // if the client did not ask for it.
    let want_stream_usage = head.stream && op.dialect() == Dialect::OpenAi && !head.include_usage;
    let upstream_body = body::rewrite(&bytes, &head, &route, want_stream_usage)?;
    let upstream = send_upstream(
        state,
        op,
        &parts.headers,
        &route,
        upstream_body,
        head.stream,
    )
    .await?;

    let status = upstream.status();
    if !status.is_success() {
        return passthrough_or_refuse(state, upstream, event, started, op).await;
    }
    let is_sse = upstream
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/event-stream"));
    if head.stream && is_sse {
        event.status = status.as_u16();
        let body = relay::relay(
            upstream,
            relay::Plan {
                dialect: op.dialect(),
                strip_usage_chunk: want_stream_usage,
                idle_timeout: state.config.stream_idle_timeout,
                ledger: state.ledger.clone(),
                event: event.clone(),
                started,
            },
        );
        // The relay records this request's ledger row when the stream ends.
        return Ok(sse_response(body));
    }

    let content_type = upstream.headers().get(http::header::CONTENT_TYPE).cloned();
    let body = read_upstream(upstream, state.config.upstream_timeout).await?;
    let tokens = usage::from_body(op, &body);
    event.prompt_tokens = tokens.prompt;
    event.completion_tokens = tokens.completion;
    event.status = status.as_u16();
    event.latency_ms = elapsed_ms(started);
    state.ledger.record(event.clone()).await;
    Ok(plain_response(status, content_type, body))
}

async fn send_upstream(
    state: &AppState,
    op: Operation,
    client_headers: &HeaderMap,
    route: &Route,
    body: Bytes,
    stream: bool,
) -> Result<reqwest::Response, ApiError> {
    let mut request = route
        .provider
        .request(&state.http, op)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body);
    for name in PASS_THROUGH {
        if let Some(value) = client_headers.get(*name) {
            request = request.header(*name, value);
        }
    }
    if op == Operation::Messages && !client_headers.contains_key("anthropic-version") {
        request = request.header(
            "anthropic-version",
            crate::providers::anthropic::DEFAULT_VERSION,
        );
    }
    if stream {
        request = request.header(http::header::ACCEPT, "text/event-stream");
    }
    // The whole-answer timeout covers a non-streamed call; for a stream it
    // bounds the wait for the response head, and the relay's idle timeout
    // takes over from there.
    match tokio::time::timeout(state.config.upstream_timeout, request.send()).await {
        Err(_) => Err(ApiError::gateway_timeout()),
        Ok(Ok(response)) => Ok(response),
        Ok(Err(error)) if error.is_timeout() => Err(ApiError::gateway_timeout()),
        Ok(Err(error)) => {
            tracing::warn!(provider = %route.provider.name, error = %error.without_url(), "upstream request failed");
            Err(ApiError::bad_gateway(format!(
                "The upstream provider '{}' could not be reached.",
                route.provider.name
            )))
        }
    }
}

async fn read_upstream(upstream: reqwest::Response, timeout: Duration) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(timeout, upstream.bytes()).await {
        Err(_) => Err(ApiError::gateway_timeout()),
        Ok(Ok(body)) => Ok(body),
        Ok(Err(_)) => Err(ApiError::bad_gateway(
            "The upstream provider's response was cut short.",
        )),
    }
}

/// An upstream refusal: the client's own mistakes (400, 404, 409, 413, 422)
/// are passed on as the provider worded them; anything that is the gateway's
/// or the provider's problem becomes keygate's own error, without reflecting
/// upstream text.
async fn passthrough_or_refuse(
    state: &AppState,
    upstream: reqwest::Response,
    event: &mut UsageEvent,
    started: Instant,
    op: Operation,
) -> Result<Response, ApiError> {
    let status = upstream.status();
    let provider = event.provider.clone().unwrap_or_default();
    match status.as_u16() {
        400 | 404 | 409 | 413 | 422 => {
            let content_type = upstream.headers().get(http::header::CONTENT_TYPE).cloned();
            let body = read_upstream(upstream, state.config.upstream_timeout).await?;
            event.status = status.as_u16();
            event.error_code = Some("upstream_rejected_request".into());
            event.latency_ms = elapsed_ms(started);
            state.ledger.record(event.clone()).await;
            Ok(plain_response(status, content_type, body))
        }
        429 => {
            let retry_after = upstream
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            Err(ApiError::upstream_rate_limited(retry_after))
        }
        401 | 403 => {
            tracing::error!(%provider, status = status.as_u16(), route = op.route(), "upstream refused the gateway's provider credential");
            Err(ApiError::bad_gateway(format!(
                "The upstream provider '{provider}' refused the gateway's credential; the operator must fix the provider configuration."
            )))
        }
        _ => {
            tracing::warn!(%provider, status = status.as_u16(), "upstream error");
            Err(ApiError::bad_gateway(format!(
                "The upstream provider '{provider}' failed (status {}).",
                status.as_u16()
            )))
        }
    }
}

fn plain_response(
    status: reqwest::StatusCode,
    content_type: Option<HeaderValue>,
    body: Bytes,
) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        content_type.unwrap_or_else(|| HeaderValue::from_static("application/json")),
    );
    response
}

fn sse_response(body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    // Tells reverse proxies in front of keygate not to buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Read a JSON request body with the data plane's checks (content type,
/// limit, UTF-8, non-empty); shared with the admin API.
pub async fn read_json_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    body::read_json(headers, body, limit).await
}

/// A request body that reports when it has been read to the end.
pub fn tracked_body(body: Body) -> (Body, Arc<std::sync::atomic::AtomicBool>) {
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tracked = TrackedBody {
        inner: body,
        finished: Arc::clone(&finished),
    };
    (Body::new(tracked), finished)
}

struct TrackedBody {
    inner: Body,
    finished: Arc<std::sync::atomic::AtomicBool>,
}

impl axum::body::HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(None) = polled {
            self.finished
                .store(true, std::sync::atomic::Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
