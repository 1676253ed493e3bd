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
use crate::policy::estimate;
use crate::policy::governor::{Demand, KeyView, Permit, Precision, TokenView};
use crate::providers::{Call, Failure, Operation, Registry, Route};
use crate::server::AppState;
use crate::telemetry::metrics::UpstreamFailure;
use crate::translate::{self, Format};
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use secrecy::SecretString;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use models::list_models;

/// `POST /v1/chat/completions`
pub async fn chat_completions(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    forward(state.0, Operation::ChatCompletions, peer.0, req, None).await
}

/// `POST /v1/embeddings`
pub async fn embeddings(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    forward(state.0, Operation::Embeddings, peer.0, req, None).await
}

/// `POST /v1/messages`
pub async fn messages(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    forward(state.0, Operation::Messages, peer.0, req, None).await
}

/// `POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent`
/// (Gemini clients). The model may itself contain `/` (`provider/model`).
pub async fn gemini(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    Path(rest): Path<String>,
    req: Request,
) -> Response {
    let op = Operation::GenerateContent;
    let refuse = |error: ApiError| error.to_response(ErrorShape::Google);
    let Some((model, action)) = rest.rsplit_once(':') else {
        return refuse(ApiError::not_found(
            "Use models/{model}:generateContent or :streamGenerateContent.",
        ));
    };
    let stream = match action {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => {
            return refuse(ApiError::not_found(format!(
                "The method '{}' is not offered; use generateContent or streamGenerateContent.",
                crate::error::printable(action)
            )))
        }
    };
    let sse = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|pair| pair == "alt=sse"));
    if stream && !sse {
        return refuse(ApiError::invalid_request(
            "keygate streams Gemini answers as server-sent events only; add ?alt=sse (the Google SDKs do).",
        ));
    }
    forward(state.0, op, peer.0, req, Some((model.to_string(), stream))).await
}

/// A fresh request id, returned as `x-request-id` and keyed in the ledger.
pub fn new_request_id() -> String {
    format!("req_{}", uuid::Uuid::now_v7().simple())
}

/// The start of a ledger row for a request that just arrived.
/// `source_ip` is the client's address: the peer, or what trusted proxies
/// reported in `X-Forwarded-For`.
pub fn arriving(
    route: &str,
    peer: SocketAddr,
    request: &Request,
    trusted_proxies: &[ipnet::IpNet],
) -> UsageEvent {
    let headers = request.headers();
    let client = crate::policy::client_ip(peer.ip(), headers, trusted_proxies);
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
        cached_tokens: 0,
        cost_nanos: 0,
        owner: None,
        project_id: None,
        org_id: None,
        token_id: None,
        status: 0,
        error_code: None,
        latency_ms: 0,
        streamed: false,
        source_ip: Some(client.to_string()),
        user_agent: headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(crate::error::printable),
    }
}

fn elapsed_ms(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)
}

/// Who is calling: a key, or a token minted under a key record.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The key, or the key record the token was minted under: its policy,
    /// limits and budgets govern the request.
    pub key: Arc<KeyEntry>,
    /// The access token presented, if the caller used one.
    pub token: Option<Arc<crate::auth::token::TokenGrant>>,
}

impl Caller {
    /// May the caller name `requested`, routed to `canonical`? The key's
    /// allowlist, narrowed by the token's.
    pub fn allows_model(&self, requested: &str, canonical: &str) -> bool {
        self.key.models.allows(requested, canonical)
            && self
                .token
                .as_ref()
                .is_none_or(|t| t.allows_model(requested, canonical))
    }

    /// Record the caller on the request's ledger row.
    pub fn mark(&self, event: &mut UsageEvent) {
        event.set_key(&self.key);
        event.token_id = self.token.as_ref().map(|t| t.claims.jti.clone());
    }
}

/// Verify the credential on a data-plane request (a keygate key, or an
/// access token), then the policy for this route family and this client's
/// network.
pub fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
    peer: SocketAddr,
    scope: crate::policy::Scope,
) -> Result<Caller, ApiError> {
    let client = crate::policy::client_ip(peer.ip(), headers, &state.config.trusted_proxies);
    // A source locked out for credential stuffing is refused before its
    // credential is looked at.
    state.anomaly.admit_source(client)?;
    refuse_credential_in_query(query)?;
    let presented = required_credential(headers)?;
    let caller = match verify_credential(state, presented, scope) {
        Ok(caller) => caller,
        Err(error) => {
            if error.status == StatusCode::UNAUTHORIZED {
                state.anomaly.credential_refused(client);
            }
            return Err(error);
        }
    };
    let key = &caller.key;
    if !key.scopes.allows(scope) {
        return Err(ApiError::forbidden(
            "scope_not_allowed",
            format!(
                "This API key is not allowed to call '{}' routes.",
                scope.name()
            ),
        ));
    }
    if !key.allow_ips.allows(client) {
        return Err(ApiError::forbidden(
            "ip_not_allowed",
            format!("This API key may not be used from {client}."),
        ));
    }
    Ok(caller)
}

/// The caller a presented credential (a keygate key, or an access token)
/// stands for, with the token's own scope checked for `scope`.
fn verify_credential(
    state: &AppState,
    presented: &str,
    scope: crate::policy::Scope,
) -> Result<Caller, ApiError> {
    let now = crate::time::now_ms();
    let caller = if crate::auth::token::looks_like_jwt(presented) {
        let grant = state
            .tokens
            .verify(presented, now)
            .map_err(crate::auth::token::TokenError::to_api_error)?;
        // The key record is looked up on every use: revoking, suspending
        // or narrowing it holds for its tokens at once.
        let key = state
            .keys
            .by_id(&grant.claims.kg_key)
            .filter(|k| k.kind.mints_tokens())
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "invalid_token",
                    "The credential this access token was issued under no longer exists.",
                )
            })?;
        crate::auth::cache::usable(&key, now).map_err(|e| {
            ApiError::unauthorized(
                if e.code == "expired_api_key" {
                    "expired_token"
                } else {
                    "revoked_token"
                },
                format!(
                    "The credential this access token was issued under is no longer valid: {}",
                    e.message
                ),
            )
        })?;
        if !grant.scope.routes.allows(scope) {
            return Err(ApiError::forbidden(
                "scope_not_allowed",
                format!(
                    "This access token's scope does not include '{}' routes.",
                    scope.name()
                ),
            ));
        }
        Caller {
            key,
            token: Some(grant),
        }
    } else {
        let key = state.keys.verify(presented, now)?;
        if key.kind != KeyKind::Data {
            return Err(ApiError::forbidden(
                "wrong_credential_kind",
                match key.kind {
                    KeyKind::Client => {
                        "An OAuth client secret cannot call models; exchange it for an access \
                         token at /oauth/token (client_credentials)."
                    }
                    _ => "Admin credentials cannot call models; use a keygate API key.",
                },
            ));
        }
        Caller { key, token: None }
    };
    Ok(caller)
}

/// A refused request that presented a real key (revoked, suspended,
/// expired, or used where it may not be) is recorded against that key: an
/// incident report must show what was tried with a key after it died.
fn attribute_refusal(state: &AppState, headers: &HeaderMap, event: &mut UsageEvent) {
    let Some(presented) = crate::auth::extract::presented_credential(headers) else {
        return;
    };
    if let Some(key) = state.keys.lookup(presented) {
        event.set_key(&key);
    }
}

/// The model and streaming choice of a route that carries them in its path.
type PathModel = Option<(String, bool)>;

async fn forward(
    state: AppState,
    op: Operation,
    peer: SocketAddr,
    req: Request,
    path_model: PathModel,
) -> Response {
    let started = Instant::now();
    let mut pending = Pending {
        ledger: state.ledger.clone(),
        event: arriving(op.route(), peer, &req, &state.config.trusted_proxies),
        started,
        armed: true,
    };
    let outcome = proxy(
        &state,
        op,
        req,
        path_model,
        peer,
        &mut pending.event,
        started,
    )
    .await;
    // The request's fate is decided: whoever records it, it is not the guard.
    pending.armed = false;
    match outcome {
        Ok(response) => response,
        Err(error) => {
            let mut event = pending.event.clone();
            event.status = error.status.as_u16();
            event.error_code = Some(error.code.to_string());
            event.latency_ms = elapsed_ms(started);
            state.ledger.record(event).await;
            error.to_response(ErrorShape::for_path(op.route()))
        }
    }
}

/// A request whose ledger row is not yet written. If the client goes away
/// while keygate waits for the upstream, the server drops the request's
/// future (which also cancels the upstream call); the guard then records the
/// request as abandoned, so it is never missing from the ledger.
struct Pending {
    ledger: crate::ledger::Ledger,
    event: UsageEvent,
    started: Instant,
    armed: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut event = self.event.clone();
        event.status = 499;
        event.error_code = Some("client_closed_request".into());
        event.latency_ms = elapsed_ms(self.started);
        let ledger = self.ledger.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { ledger.record(event).await });
        }
    }
}

/// Most upstream attempts one request makes (keys and providers together).
const MAX_ATTEMPTS: usize = 4;

#[allow(clippy::too_many_arguments)]
async fn proxy(
    state: &AppState,
    op: Operation,
    req: Request,
    path_model: PathModel,
    peer: SocketAddr,
    event: &mut UsageEvent,
    started: Instant,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let caller = match authenticate(state, &parts.headers, parts.uri.query(), peer, op.scope()) {
        Ok(caller) => caller,
        Err(error) => {
            attribute_refusal(state, &parts.headers, event);
            return Err(error);
        }
    };
    caller.mark(event);
    let key = &caller.key;

    let bytes = body::read_json(&parts.headers, body, state.config.max_body_bytes).await?;
    if state.config.log_bodies {
        log_body("request", &event.request_id, &bytes);
    }
    let head = match &path_model {
        Some((model, stream)) => body::gemini_head(&bytes, model, *stream)?,
        None => body::parse_head(&bytes)?,
    };
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
    let routes = match state.registry.resolve(&head.model, op) {
        Ok(routes) => routes,
        Err(_) if !caller.allows_model(&head.model, &head.model) => return Err(not_allowed()),
        Err(error) => return Err(error),
    };
    let routes: Vec<Route> = routes
        .into_iter()
        .filter(|r| caller.allows_model(&head.model, &r.canonical))
        .collect();
    if routes.is_empty() {
        return Err(not_allowed());
    }
    // Environments are boundaries: a key only spends provider accounts of
    // its own environment.
    let routes: Vec<Route> = routes
        .into_iter()
        .filter(|r| r.provider.serves_env(&key.env))
        .collect();
    if routes.is_empty() {
        return Err(ApiError::forbidden(
            "environment_not_allowed",
            format!(
                "The model '{}' is not served to '{}' keys.",
                crate::error::printable(&head.model),
                key.env
            ),
        ));
    }

    let mut permit = admit(
        state,
        &caller,
        op,
        &bytes,
        &head.model,
        &routes,
        &event.request_id,
    )
    .await?;
    let rate_headers: Vec<(http::HeaderName, HeaderValue)> = permit
        .as_ref()
        .map(|p| p.headers().to_vec())
        .unwrap_or_default();

    // Try providers and keys in turn until one answers; an attempt fails
    // over only before anything reached the client.
    let mut last_error = None;
    // Providers found down during this request: their other keys would fare no better.
    let mut down: Vec<&str> = Vec::new();
    let mut attempts = Registry::attempts(&routes);
    attempts.truncate(MAX_ATTEMPTS);
    let mut index = 0;
    let mut refreshed = false;
    while let Some(attempt) = attempts.get(index) {
        index += 1;
        let route = &attempt.route;
        let provider = &route.provider;
        if down.contains(&provider.name.as_str()) {
            continue;
        }
        let Some(format) = provider.format(op, &route.upstream_model) else {
            continue;
        };
        event.provider = Some(provider.name.clone());
        let as_is = provider.relays_as_is(op, &route.upstream_model);
        // Ask OpenAI-format upstreams for usage in the stream, so a streamed
        // request is metered from the stream itself; strip that extra chunk
        // again if the client did not ask for it.
        let want_stream_usage = as_is
            && head.stream
            && format == Format::OpenAiChat
            && op != Operation::Embeddings
            && !head.include_usage;
        let upstream_body = match op.client_format() {
            Some(client) if !as_is => translate::request(
                client,
                format,
                &bytes,
                translate::Target {
                    model: &route.upstream_model,
                    stream: head.stream,
                },
            )
            .map(Bytes::from)
            .map_err(translate::TranslateError::into_api_error)?,
            _ => body::rewrite(&bytes, &head, route, want_stream_usage)?,
        };
        let call = Call {
            op,
            format,
            model: &route.upstream_model,
            stream: head.stream,
            body: upstream_body,
            client_headers: &parts.headers,
        };
        let (upstream, used_secret) = match send_upstream(state, route, &call, attempt.key).await {
            Ok(sent) => sent,
            Err((failure, error)) => {
                provider.penalize(attempt.key, failure);
                if failure == Failure::Unavailable {
                    down.push(&provider.name);
                }
                last_error = Some(error);
                continue;
            }
        };
        if let Some((failure, error)) = retryable(&upstream, &provider.name, op) {
            state.metrics.upstream_failure(
                &provider.name,
                UpstreamFailure::from_status(upstream.status().as_u16()),
            );
            last_error = Some(error);
            // A refused key whose source now holds another value (the
            // operator rotated it) is retried at once with the new one; so
            // is a refused short-lived token, with a freshly fetched one.
            if failure == Failure::KeyRefused && !refreshed {
                if provider.reread_key(attempt.key, used_secret.as_ref()).await {
                    refreshed = true;
                    index -= 1;
                    continue;
                }
                if provider.uses_tokens() {
                    refreshed = true;
                    provider.penalize(attempt.key, failure);
                    index -= 1;
                    continue;
                }
            }
            provider.penalize(attempt.key, failure);
            if failure == Failure::Unavailable {
                down.push(&provider.name);
            }
            continue;
        }
        let plan = Answer {
            op,
            format,
            as_is,
            want_stream_usage,
            client_model: &head.model,
            stream: head.stream,
            price: state
                .prices
                .price_for(&provider.name, &route.upstream_model, &head.model)
                .copied(),
            request: &bytes,
            permit: permit.take(),
        };
        let mut response = respond(state, upstream, plan, event, started).await?;
        response.headers_mut().extend(rate_headers);
        return Ok(response);
    }
    Err(last_error
        .unwrap_or_else(|| ApiError::bad_gateway("No upstream provider could serve this request.")))
}

/// How to turn an upstream answer into the client's.
struct Answer<'a> {
    op: Operation,
    format: Format,
    as_is: bool,
    want_stream_usage: bool,
    client_model: &'a str,
    stream: bool,
    /// What the answering model costs (`None`: unpriced).
    price: Option<crate::ledger::pricing::Price>,
    /// The client's request, for a prompt estimate should a stream end
    /// before the provider reports usage.
    request: &'a Bytes,
    /// The request's hold on its limits, settled with the real cost.
    permit: Option<Permit>,
}

/// The limits stage: take every limit above the key for this request
/// (rates, concurrency, a reservation of its worst-case cost against every
/// budget), or refuse it. `None` when nothing limits the key.
async fn admit(
    state: &AppState,
    caller: &Caller,
    op: Operation,
    bytes: &[u8],
    model: &str,
    routes: &[Route],
    lease: &str,
) -> Result<Option<Permit>, ApiError> {
    let now = crate::time::now_ms();
    let key = &caller.key;
    let view = KeyView {
        id: &key.id,
        owner: key.owner.as_deref(),
        project_id: key.project_id.as_deref(),
        org_id: key.org_id.as_deref(),
        limits: key.limits.as_deref(),
        version: key.limits_version,
        token: caller.token.as_ref().and_then(|t| {
            t.limits.as_ref().map(|limits| TokenView {
                jti: &t.claims.jti,
                limits,
                issued_at: t.issued_at_ms(),
            })
        }),
    };
    let plan = state.governor.plan(&view, now);
    if plan.is_empty() {
        return Ok(None);
    }
    if !plan.needs_estimate() {
        return state
            .governor
            .admit(plan, lease, |_| Demand::default(), now)
            .await
            .map(Some);
    }
    estimate::prepare();
    let completion = if op == Operation::Embeddings {
        0
    } else {
        estimate::completion_tokens(bytes, state.governor.default_max_tokens())
    };
    // The dearest route prices the worst case: failover may land there.
    let prices: Vec<_> = routes
        .iter()
        .filter_map(|r| {
            state
                .prices
                .price_for(&r.provider.name, &r.upstream_model, model)
        })
        .collect();
    let demand = |precision: Precision| {
        let prompt = match precision {
            Precision::Bound => bytes.len() as u64,
            Precision::Tokenized => estimate::prompt_tokens(bytes),
        };
        Demand {
            tokens: prompt.saturating_add(completion),
            cost: prices
                .iter()
                .map(|price| price.worst_case(prompt, completion))
                .max()
                .unwrap_or(0),
        }
    };
    state
        .governor
        .admit(plan, lease, demand, now)
        .await
        .map(Some)
}

/// Settle a finished request's limits with its real cost and tokens, before
/// its ledger row is written (so a request whose row is in the ledger has
/// released what it held).
pub(crate) async fn settle(permit: Option<Permit>, event: &UsageEvent) {
    if let Some(permit) = permit {
        let tokens = event.prompt_tokens.saturating_add(event.completion_tokens);
        permit
            .settle(event.cost_nanos, u64::try_from(tokens).unwrap_or(0))
            .await;
    }
}

async fn respond(
    state: &AppState,
    upstream: reqwest::Response,
    mut answer: Answer<'_>,
    event: &mut UsageEvent,
    started: Instant,
) -> Result<Response, ApiError> {
    let status = upstream.status();
    if !status.is_success() {
        return client_error(state, upstream, answer, event, started).await;
    }
    let client_format = answer.op.client_format();
    if answer.stream {
        let is_sse = upstream
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.starts_with("text/event-stream")
                    || ct.starts_with("application/vnd.amazon.eventstream")
            });
        if is_sse {
            event.status = status.as_u16();
            let translator = match client_format {
                Some(client) if !answer.as_is => Some(translate::StreamTranslator::new(
                    answer.format,
                    client,
                    answer.client_model,
                )),
                _ => None,
            };
            let body = relay::relay(
                upstream,
                relay::Plan {
                    dialect: answer.format,
                    translator,
                    strip_usage_chunk: answer.want_stream_usage,
                    idle_timeout: state.config.stream_idle_timeout,
                    price: answer.price,
                    request: answer.request.clone(),
                    ledger: state.ledger.clone(),
                    event: event.clone(),
                    started,
                    permit: answer.permit.take(),
                },
            );
            // The relay records this request's ledger row when the stream ends.
            return Ok(sse_response(body));
        }
    }

    let content_type = upstream.headers().get(http::header::CONTENT_TYPE).cloned();
    let body = read_upstream(upstream, state.config.upstream_timeout).await?;
    let (body, content_type, tokens) = match client_format {
        Some(client) if !answer.as_is => {
            let (translated, usage) =
                translate::response(answer.format, client, &body, answer.client_model)
                    .map_err(translate::TranslateError::into_api_error)?;
            let tokens = usage::Tokens::from_ir(&usage);
            (Bytes::from(translated), None, tokens)
        }
        _ => {
            let tokens = usage::from_body(answer.format, &body);
            (body, content_type, tokens)
        }
    };
    event.prompt_tokens = tokens.prompt;
    event.cached_tokens = tokens.cached;
    event.completion_tokens = tokens.completion;
    event.cost_nanos = answer.price.map_or(0, |p| p.cost(&tokens.count()));
    event.status = status.as_u16();
    event.latency_ms = elapsed_ms(started);
    settle(answer.permit.take(), event).await;
    if state.config.log_bodies {
        log_body("response", &event.request_id, &body);
    }
    state.ledger.record(event.clone()).await;
    Ok(plain_response(status, content_type, body))
}

/// Most bytes of a body that body logging writes.
const LOGGED_BODY_BYTES: usize = 16 * 1024;

/// Log a body at debug level, cut to [`LOGGED_BODY_BYTES`] and redacted
/// (only when the operator turned body logging on: bodies carry users'
/// prompts).
fn log_body(which: &'static str, request_id: &str, body: &[u8]) {
    let cut = &body[..body.len().min(LOGGED_BODY_BYTES)];
    let text = String::from_utf8_lossy(cut);
    tracing::debug!(
        request_id,
        which,
        bytes = body.len(),
        body = %crate::telemetry::redact::redact(&text),
        "body"
    );
}

/// Send one attempt; returns the answer and the provider key it carried.
async fn send_upstream(
    state: &AppState,
    route: &Route,
    call: &Call<'_>,
    key: usize,
) -> Result<(reqwest::Response, Option<Arc<SecretString>>), (Failure, ApiError)> {
    let failed = |kind| state.metrics.upstream_failure(&route.provider.name, kind);
    let (request, secret) = route
        .provider
        .request(&state.http, call, key)
        .await
        .inspect_err(|_| failed(UpstreamFailure::Credential))?;
    // The first-byte timeout bounds the wait for the response head (then the
    // next upstream is tried); the whole-answer timeout bounds reading a
    // non-streamed body, and the relay's idle timeout a stream.
    let head_timeout = if call.stream {
        state.config.first_byte_timeout
    } else {
        state
            .config
            .first_byte_timeout
            .min(state.config.upstream_timeout)
    };
    match tokio::time::timeout(head_timeout, request.send()).await {
        Err(_) => {
            failed(UpstreamFailure::Timeout);
            Err((Failure::Unavailable, ApiError::gateway_timeout()))
        }
        Ok(Ok(response)) => Ok((response, secret)),
        Ok(Err(error)) if error.is_timeout() => {
            failed(UpstreamFailure::Timeout);
            Err((Failure::Unavailable, ApiError::gateway_timeout()))
        }
        Ok(Err(error)) => {
            failed(UpstreamFailure::Connect);
            tracing::warn!(provider = %route.provider.name, error = %error.without_url(), "upstream request failed");
            Err((
                Failure::Unavailable,
                ApiError::bad_gateway(format!(
                    "The upstream provider '{}' could not be reached.",
                    route.provider.name
                )),
            ))
        }
    }
}

/// An upstream answer worth trying elsewhere: rate limited, credential
/// refused, or the provider failing. Returns what to avoid and the error the
/// client sees if no other attempt succeeds; upstream text is never
/// reflected.
fn retryable(
    upstream: &reqwest::Response,
    provider: &str,
    op: Operation,
) -> Option<(Failure, ApiError)> {
    let status = upstream.status().as_u16();
    match status {
        429 => {
            let retry_after = upstream
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            Some((
                Failure::RateLimited(retry_after),
                ApiError::upstream_rate_limited(retry_after),
            ))
        }
        401 | 403 => {
            tracing::error!(%provider, status, route = op.route(), "upstream refused the gateway's provider credential");
            Some((
                Failure::KeyRefused,
                ApiError::bad_gateway(format!(
                    "The upstream provider '{provider}' refused the gateway's credential; the operator must fix the provider configuration."
                )),
            ))
        }
        500..=599 => {
            tracing::warn!(%provider, status, "upstream error");
            Some((
                Failure::Unavailable,
                ApiError::bad_gateway(format!(
                    "The upstream provider '{provider}' failed (status {status})."
                )),
            ))
        }
        _ => None,
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

/// An upstream refusal of the client's own request (400, 404, 409, 413,
/// 422, …): passed on as the provider worded it when the client speaks the
/// provider's format, else re-worded in the client's format.
async fn client_error(
    state: &AppState,
    upstream: reqwest::Response,
    mut answer: Answer<'_>,
    event: &mut UsageEvent,
    started: Instant,
) -> Result<Response, ApiError> {
    let status = upstream.status();
    let content_type = upstream.headers().get(http::header::CONTENT_TYPE).cloned();
    let body = read_upstream(upstream, state.config.upstream_timeout).await?;
    event.status = status.as_u16();
    event.error_code = Some("upstream_rejected_request".into());
    event.latency_ms = elapsed_ms(started);
    settle(answer.permit.take(), event).await;
    state.ledger.record(event.clone()).await;
    if answer.as_is {
        return Ok(plain_response(status, content_type, body));
    }
    let message = upstream_error_message(&body).unwrap_or_else(|| {
        format!(
            "The upstream provider refused the request (status {}).",
            status.as_u16()
        )
    });
    let status = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_REQUEST);
    let shape = ErrorShape::for_path(answer.op.route());
    Ok(ApiError::upstream_rejected(status, message).to_response(shape))
}

/// The human-readable message of a provider's error body (OpenAI,
/// Anthropic, Google: `error.message`; AWS: `message`), made printable and
/// bounded.
fn upstream_error_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let message = value
        .pointer("/error/message")
        .or_else(|| value.get("message"))
        .or_else(|| value.get("Message"))?
        .as_str()?;
    let mut text = crate::error::printable(message);
    if text.len() > 1000 {
        let mut end = 1000;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    Some(format!("The upstream provider refused the request: {text}"))
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
