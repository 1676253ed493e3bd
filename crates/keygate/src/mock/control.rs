//! The mock's state and its control API under `/_mock/` (not part of any
//! provider's API):
//!
//! | method | path | effect |
//! |---|---|---|
//! | `GET` | `/_mock/health` | `200 {"status":"ok"}` |
//! | `GET` | `/_mock/requests` | recorded requests, oldest first |
//! | `DELETE` | `/_mock/requests` | forget them; `204` |
//! | `GET` | `/_mock/faults` | faults still queued |
//! | `POST` | `/_mock/faults` | queue one fault object or an array of them; `200 {"queued":N}` |
//! | `DELETE` | `/_mock/faults` | drop every queued fault; `204` |
//! | `GET` | `/_mock/config` | live settings |
//! | `PUT`/`PATCH`/`POST` | `/_mock/config` | change some of them; returns all |
//!
//! Settings (`GET`/`PUT /_mock/config`; a change names only the fields it
//! sets; strings marked *clearable* are unset by `""`, and read as `""`
//! when unset):
//!
//! | field | default | effect |
//! |---|---|---|
//! | `latency_ms` | `--latency-ms` (0) | delay before every response |
//! | `chunk_delay_ms` | `--chunk-delay-ms` (0) | delay between streamed events |
//! | `record` | `true` | record provider requests |
//! | `record_limit` | 1000 | requests kept |
//! | `cached_tokens` | 0 | cached input tokens every response reports: OpenAI `prompt_tokens_details.cached_tokens` (and Responses `input_tokens_details`), Anthropic `cache_read_input_tokens`, Gemini `cachedContentTokenCount`, Bedrock `cacheReadInputTokens` (the last two omitted at 0) |
//! | `aws_access_key_id` | `--aws-access-key-id` (`keygate-mock-access-key-id`) | key Bedrock requests must be signed with; others → 403 `UnrecognizedClientException` |
//! | `aws_secret_access_key` | `--aws-secret-access-key` (`keygate-mock-aws-secret-access-key`) | its secret; a wrong signature → 403 `InvalidSignatureException` |
//! | `aws_session_token` | `--aws-session-token` (unset) | *clearable*; when set, `x-amz-security-token` must equal it (when unset, must be absent) |
//! | `azure_api_key` | unset | *clearable*; when set, Azure `api-key` must equal it, or one of its comma-separated keys (a rotation's overlap); else any non-empty key |
//! | `azure_client_id` | `keygate-mock-client` | Azure AD client; another → 400 `unauthorized_client` |
//! | `azure_client_secret` | `keygate-mock-client-secret` | its secret; another → 401 `invalid_client` |
//! | `azure_token_lifetime_s` | 3600 | lifetime of Azure AD tokens (0: born expired) |
//! | `google_token_lifetime_s` | 3600 | lifetime of Google OAuth tokens (0: born expired) |
//! | `gemini_api_key` | unset | *clearable*; when set, `x-goog-api-key` must equal it (else 400 `INVALID_ARGUMENT`; absent → 403 `PERMISSION_DENIED`) |
//!
//! A recorded request is `{"seq","timestamp_ms","method","path","query",
//! "headers":{lowercased name: value, repeats joined by ", "},"body"}` with
//! the body as UTF-8 (lossy) cut to 64 KiB and `body_truncated` set when cut.
//!
//! A fault is `{"status","count","body","cut_after_chunks","latency_ms",
//! "path"}`, all optional but at least one of `status`, `cut_after_chunks`
//! or `latency_ms`; it applies to the next `count` (default 1) provider
//! requests whose path starts with `path` (any when absent), first queued
//! first used.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::MockOptions;

/// Requests kept by default.
const DEFAULT_RECORD_LIMIT: usize = 1000;
/// Longest body prefix kept per recorded request.
const RECORD_BODY_LIMIT: usize = 64 * 1024;
/// Bodies kept in all, so a long run of large requests cannot make the
/// mock (also embedded in `keygate serve`) grow without bound.
const RECORD_BYTES_BUDGET: usize = 32 * 1024 * 1024;

/// One request as received.
#[derive(Debug)]
pub(super) struct Recorded {
    seq: u64,
    timestamp_ms: i64,
    method: Method,
    path: Box<str>,
    query: Option<Box<str>>,
    headers: HeaderMap,
    body: Bytes,
    body_truncated: bool,
}

/// A queued fault, as posted.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Fault {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default = "one")]
    pub count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_after_chunks: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

fn one() -> u64 {
    1
}

/// What a fault does to one request (the queue entry minus bookkeeping).
#[derive(Debug, Default)]
pub(super) struct Applied {
    pub status: Option<StatusCode>,
    pub body: Option<serde_json::Value>,
    pub cut_after_chunks: Option<usize>,
    pub latency_ms: u64,
}

/// Everything the handlers share.
#[derive(Debug)]
pub(super) struct Shared {
    latency_ms: AtomicU64,
    chunk_delay_ms: AtomicU64,
    record: AtomicBool,
    record_limit: AtomicUsize,
    records: Mutex<Records>,
    faults: Mutex<VecDeque<Fault>>,
    /// Length of `faults`, read without the lock so that the common case
    /// (no faults) costs one atomic load per request.
    faults_queued: AtomicUsize,
    /// Per-process nonce and counter for response ids.
    nonce: u64,
    seq: AtomicU64,
    /// Cached input tokens every response reports.
    cached_tokens: AtomicU64,
    /// Credentials the provider routes check.
    auth: Mutex<AuthConfig>,
    /// Key of the HMAC that makes issued access tokens self-verifying.
    token_key: [u8; 32],
}

/// Credentials and token lifetimes the provider routes check, settable
/// through `/_mock/config`.
#[derive(Clone, Debug)]
pub(super) struct AuthConfig {
    pub aws_access_key_id: String,
    pub aws_secret_access_key: String,
    pub aws_session_token: Option<String>,
    pub azure_api_key: Option<String>,
    pub azure_client_id: String,
    pub azure_client_secret: String,
    pub azure_token_lifetime_s: u64,
    pub google_token_lifetime_s: u64,
    pub gemini_api_key: Option<String>,
}

/// Default Azure AD client of the mock.
pub const DEFAULT_AZURE_CLIENT_ID: &str = "keygate-mock-client";
/// Default Azure AD client secret of the mock.
pub const DEFAULT_AZURE_CLIENT_SECRET: &str = "keygate-mock-client-secret";

/// Which endpoint issued an access token (a token is valid only where its
/// issuer's tokens are).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TokenKind {
    AzureAd,
    Google,
}

impl TokenKind {
    fn prefix(self) -> &'static str {
        match self {
            TokenKind::AzureAd => "mock-aad.",
            TokenKind::Google => "ya29.mock.",
        }
    }
}

/// Why an access token was refused.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum TokenError {
    Invalid,
    Expired,
}

#[derive(Debug, Default)]
struct Records {
    list: VecDeque<Recorded>,
    bytes: usize,
    next_seq: u64,
}

/// A poisoned lock only means another request panicked mid-update; the data
/// (a log and a queue) is still usable, and the mock must keep serving.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub(super) fn new(opts: &MockOptions) -> Self {
        Shared {
            latency_ms: AtomicU64::new(opts.latency_ms),
            chunk_delay_ms: AtomicU64::new(opts.chunk_delay_ms),
            record: AtomicBool::new(true),
            record_limit: AtomicUsize::new(DEFAULT_RECORD_LIMIT),
            records: Mutex::new(Records::default()),
            faults: Mutex::new(VecDeque::new()),
            faults_queued: AtomicUsize::new(0),
            nonce: rand::random::<u64>() >> 16,
            seq: AtomicU64::new(0),
            cached_tokens: AtomicU64::new(0),
            auth: Mutex::new(AuthConfig {
                aws_access_key_id: opts.aws_access_key_id.clone(),
                aws_secret_access_key: opts.aws_secret_access_key.clone(),
                aws_session_token: opts.aws_session_token.clone().filter(|t| !t.is_empty()),
                azure_api_key: None,
                azure_client_id: DEFAULT_AZURE_CLIENT_ID.to_owned(),
                azure_client_secret: DEFAULT_AZURE_CLIENT_SECRET.to_owned(),
                azure_token_lifetime_s: 3600,
                google_token_lifetime_s: 3600,
                gemini_api_key: None,
            }),
            token_key: rand::random(),
        }
    }

    /// Cached input tokens to report (0: the formats that can omit the
    /// field omit it).
    pub(super) fn cached_tokens(&self) -> u64 {
        self.cached_tokens.load(Ordering::Relaxed)
    }

    /// The credentials in force.
    pub(super) fn auth(&self) -> AuthConfig {
        lock(&self.auth).clone()
    }

    /// A small counter for tool-call ids (`call_mock_<n>`).
    pub(super) fn counter(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    fn token_mac(&self, kind: TokenKind, expires_ms: i64) -> String {
        use hmac::Mac as _;
        let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.token_key) {
            Ok(m) => m,
            // HMAC takes keys of any length; unreachable.
            Err(_) => return String::new(),
        };
        mac.update(kind.prefix().as_bytes());
        mac.update(expires_ms.to_string().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// A fresh access token of `kind` valid for `lifetime_s` seconds.
    pub(super) fn issue_token(&self, kind: TokenKind, lifetime_s: u64) -> String {
        let lifetime_ms = i64::try_from(lifetime_s.saturating_mul(1000)).unwrap_or(i64::MAX);
        let expires_ms = chrono::Utc::now()
            .timestamp_millis()
            .saturating_add(lifetime_ms);
        let mac = self.token_mac(kind, expires_ms);
        format!("{}{expires_ms}.{mac}", kind.prefix())
    }

    /// Check a token this mock issued: right kind, authentic, unexpired.
    pub(super) fn check_token(&self, kind: TokenKind, token: &str) -> Result<(), TokenError> {
        use subtle::ConstantTimeEq as _;
        let rest = token
            .strip_prefix(kind.prefix())
            .ok_or(TokenError::Invalid)?;
        let (expires, mac) = rest.split_once('.').ok_or(TokenError::Invalid)?;
        let expires_ms: i64 = expires.parse().map_err(|_| TokenError::Invalid)?;
        let expected = self.token_mac(kind, expires_ms);
        if !bool::from(expected.as_bytes().ct_eq(mac.as_bytes())) {
            return Err(TokenError::Invalid);
        }
        if chrono::Utc::now().timestamp_millis() >= expires_ms {
            return Err(TokenError::Expired);
        }
        Ok(())
    }

    pub(super) fn latency_ms(&self) -> u64 {
        self.latency_ms.load(Ordering::Relaxed)
    }

    pub(super) fn chunk_delay_ms(&self) -> u64 {
        self.chunk_delay_ms.load(Ordering::Relaxed)
    }

    /// A fresh id with the provider's prefix (`chatcmpl-`, `msg_`, …).
    pub(super) fn id(&self, prefix: &str) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}mock{:012x}{n:012x}", self.nonce)
    }

    /// Remember a provider request (no-op when recording is off).
    pub(super) fn record(
        &self,
        method: &Method,
        uri: &http::Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) {
        if !self.record.load(Ordering::Relaxed) {
            return;
        }
        let limit = self.record_limit.load(Ordering::Relaxed);
        if limit == 0 {
            return;
        }
        let kept = &body[..body.len().min(RECORD_BODY_LIMIT)];
        // Copy rather than slice: a slice would pin the whole request
        // buffer in memory for as long as the record lives.
        let mut entry = Recorded {
            seq: 0,
            timestamp_ms: chrono::Utc::now().timestamp_millis(),
            method: method.clone(),
            path: uri.path().into(),
            query: uri.query().map(Into::into),
            headers: headers.clone(),
            body: Bytes::copy_from_slice(kept),
            body_truncated: kept.len() < body.len(),
        };
        let mut records = lock(&self.records);
        entry.seq = records.next_seq;
        records.next_seq += 1;
        records.bytes += entry.body.len();
        records.list.push_back(entry);
        while records.list.len() > limit || records.bytes > RECORD_BYTES_BUDGET {
            match records.list.pop_front() {
                Some(old) => records.bytes -= old.body.len(),
                None => break,
            }
        }
    }

    /// The fault for a request to `path`, if one is queued: the first in
    /// queue order whose path prefix matches, one use consumed.
    pub(super) fn take_fault(&self, path: &str) -> Option<Applied> {
        if self.faults_queued.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut faults = lock(&self.faults);
        let index = faults
            .iter()
            .position(|f| f.path.as_deref().is_none_or(|p| path.starts_with(p)))?;
        let fault = faults.get_mut(index)?;
        fault.count = fault.count.saturating_sub(1);
        let applied = Applied {
            status: fault.status.and_then(|s| StatusCode::from_u16(s).ok()),
            body: fault.body.clone(),
            cut_after_chunks: fault.cut_after_chunks,
            latency_ms: fault.latency_ms.unwrap_or(0),
        };
        if fault.count == 0 {
            faults.remove(index);
        }
        self.faults_queued.store(faults.len(), Ordering::Release);
        Some(applied)
    }
}

pub(super) type AppState = State<Arc<Shared>>;

/// A control-API error: a small JSON body in OpenAI's shape, since that is
/// what most callers already parse.
fn control_error(status: StatusCode, message: String) -> Response {
    let body = serde_json::json!({
        "error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}
    });
    (status, axum::Json(body)).into_response()
}

fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// `GET /_mock/health`.
pub(super) async fn health() -> Response {
    json_bytes(StatusCode::OK, br#"{"status":"ok"}"#.to_vec())
}

#[derive(Serialize)]
struct RecordedView<'a> {
    seq: u64,
    timestamp_ms: i64,
    method: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    headers: serde_json::Map<String, serde_json::Value>,
    body: std::borrow::Cow<'a, str>,
    body_truncated: bool,
}

fn headers_json(headers: &HeaderMap) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    for name in headers.keys() {
        let joined = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
            .collect::<Vec<_>>()
            .join(", ");
        // HeaderName is lowercase already (HTTP/1 names are normalised on parse).
        out.insert(name.as_str().to_owned(), serde_json::Value::String(joined));
    }
    out
}

/// `GET /_mock/requests`: the recorded requests, oldest first.
pub(super) async fn list_requests(State(state): AppState) -> Response {
    let records = lock(&state.records);
    let views: Vec<RecordedView<'_>> = records
        .list
        .iter()
        .map(|r| RecordedView {
            seq: r.seq,
            timestamp_ms: r.timestamp_ms,
            method: r.method.as_str(),
            path: &r.path,
            query: r.query.as_deref(),
            headers: headers_json(&r.headers),
            body: String::from_utf8_lossy(&r.body),
            body_truncated: r.body_truncated,
        })
        .collect();
    match serde_json::to_vec(&views) {
        Ok(body) => json_bytes(StatusCode::OK, body),
        Err(e) => control_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `DELETE /_mock/requests`.
pub(super) async fn clear_requests(State(state): AppState) -> StatusCode {
    let mut records = lock(&state.records);
    records.list.clear();
    records.bytes = 0;
    StatusCode::NO_CONTENT
}

/// `GET /_mock/faults`: what is still queued, in order.
pub(super) async fn list_faults(State(state): AppState) -> Response {
    let faults: Vec<Fault> = lock(&state.faults).iter().cloned().collect();
    match serde_json::to_vec(&faults) {
        Ok(body) => json_bytes(StatusCode::OK, body),
        Err(e) => control_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<Fault>),
    One(Fault),
}

fn check_fault(f: &Fault) -> Result<(), String> {
    if f.status.is_none() && f.cut_after_chunks.is_none() && f.latency_ms.is_none() {
        return Err("a fault needs at least one of status, cut_after_chunks, latency_ms".into());
    }
    if let Some(s) = f.status {
        if !(200..=599).contains(&s) {
            return Err(format!("status {s} is not between 200 and 599"));
        }
    }
    if f.count == 0 {
        return Err("count must be at least 1".into());
    }
    if f.latency_ms.is_some_and(|ms| ms > 3_600_000) {
        return Err("latency_ms must be at most 3600000 (one hour)".into());
    }
    Ok(())
}

/// `POST /_mock/faults`: queue one fault or an array of them.
pub(super) async fn add_faults(State(state): AppState, body: Bytes) -> Response {
    let parsed: OneOrMany = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            // The untagged enum's own message says nothing useful; say
            // what is wrong with the object form, which is the usual one.
            let detail = serde_json::from_slice::<Fault>(&body)
                .err()
                .map_or_else(|| e.to_string(), |e| e.to_string());
            return control_error(StatusCode::BAD_REQUEST, format!("invalid fault: {detail}"));
        }
    };
    let new = match parsed {
        OneOrMany::Many(v) => v,
        OneOrMany::One(f) => vec![f],
    };
    for f in &new {
        if let Err(message) = check_fault(f) {
            return control_error(StatusCode::BAD_REQUEST, message);
        }
    }
    let mut faults = lock(&state.faults);
    faults.extend(new);
    let queued = faults.len();
    state.faults_queued.store(queued, Ordering::Release);
    drop(faults);
    json_bytes(
        StatusCode::OK,
        serde_json::json!({ "queued": queued })
            .to_string()
            .into_bytes(),
    )
}

/// `DELETE /_mock/faults`.
pub(super) async fn clear_faults(State(state): AppState) -> StatusCode {
    let mut faults = lock(&state.faults);
    faults.clear();
    state.faults_queued.store(0, Ordering::Release);
    StatusCode::NO_CONTENT
}

/// Live settings, as read and as changed (all fields optional on change).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chunk_delay_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    record_limit: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cached_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aws_access_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aws_secret_access_key: Option<String>,
    /// `""` clears it.
    #[serde(skip_serializing_if = "Option::is_none")]
    aws_session_token: Option<String>,
    /// `""` clears it (any key accepted).
    #[serde(skip_serializing_if = "Option::is_none")]
    azure_api_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    azure_client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    azure_client_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    azure_token_lifetime_s: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    google_token_lifetime_s: Option<u64>,
    /// `""` clears it (any key accepted).
    #[serde(skip_serializing_if = "Option::is_none")]
    gemini_api_key: Option<String>,
}

fn current_config(state: &Shared) -> Response {
    let config = Config {
        latency_ms: Some(state.latency_ms()),
        chunk_delay_ms: Some(state.chunk_delay_ms()),
        record: Some(state.record.load(Ordering::Relaxed)),
        record_limit: Some(state.record_limit.load(Ordering::Relaxed)),
        cached_tokens: Some(state.cached_tokens()),
        ..Config::default()
    };
    let auth = state.auth();
    let config = Config {
        aws_access_key_id: Some(auth.aws_access_key_id),
        aws_secret_access_key: Some(auth.aws_secret_access_key),
        aws_session_token: Some(auth.aws_session_token.unwrap_or_default()),
        azure_api_key: Some(auth.azure_api_key.unwrap_or_default()),
        azure_client_id: Some(auth.azure_client_id),
        azure_client_secret: Some(auth.azure_client_secret),
        azure_token_lifetime_s: Some(auth.azure_token_lifetime_s),
        google_token_lifetime_s: Some(auth.google_token_lifetime_s),
        gemini_api_key: Some(auth.gemini_api_key.unwrap_or_default()),
        ..config
    };
    match serde_json::to_vec(&config) {
        Ok(body) => json_bytes(StatusCode::OK, body),
        Err(e) => control_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `GET /_mock/config`.
pub(super) async fn get_config(State(state): AppState) -> Response {
    current_config(&state)
}

/// `PUT|PATCH|POST /_mock/config`: set the given fields, keep the others.
pub(super) async fn set_config(State(state): AppState, body: Bytes) -> Response {
    let change: Config = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return control_error(StatusCode::BAD_REQUEST, format!("invalid config: {e}")),
    };
    if change.latency_ms.is_some_and(|ms| ms > 3_600_000)
        || change.chunk_delay_ms.is_some_and(|ms| ms > 3_600_000)
    {
        return control_error(
            StatusCode::BAD_REQUEST,
            "delays must be at most 3600000 ms (one hour)".into(),
        );
    }
    if let Some(ms) = change.latency_ms {
        state.latency_ms.store(ms, Ordering::Relaxed);
    }
    if let Some(ms) = change.chunk_delay_ms {
        state.chunk_delay_ms.store(ms, Ordering::Relaxed);
    }
    if change
        .azure_token_lifetime_s
        .or(change.google_token_lifetime_s)
        .is_some_and(|s| s > 366 * 86_400)
    {
        return control_error(
            StatusCode::BAD_REQUEST,
            "token lifetimes must be at most 31622400 s (a year)".into(),
        );
    }
    if let Some(n) = change.cached_tokens {
        state.cached_tokens.store(n, Ordering::Relaxed);
    }
    {
        let non_empty = |s: String| (!s.is_empty()).then_some(s);
        let mut auth = lock(&state.auth);
        if let Some(v) = change.aws_access_key_id {
            auth.aws_access_key_id = v;
        }
        if let Some(v) = change.aws_secret_access_key {
            auth.aws_secret_access_key = v;
        }
        if let Some(v) = change.aws_session_token {
            auth.aws_session_token = non_empty(v);
        }
        if let Some(v) = change.azure_api_key {
            auth.azure_api_key = non_empty(v);
        }
        if let Some(v) = change.azure_client_id {
            auth.azure_client_id = v;
        }
        if let Some(v) = change.azure_client_secret {
            auth.azure_client_secret = v;
        }
        if let Some(v) = change.azure_token_lifetime_s {
            auth.azure_token_lifetime_s = v;
        }
        if let Some(v) = change.google_token_lifetime_s {
            auth.google_token_lifetime_s = v;
        }
        if let Some(v) = change.gemini_api_key {
            auth.gemini_api_key = non_empty(v);
        }
    }
    if let Some(on) = change.record {
        state.record.store(on, Ordering::Relaxed);
    }
    if let Some(limit) = change.record_limit {
        state.record_limit.store(limit, Ordering::Relaxed);
        let mut records = lock(&state.records);
        while records.list.len() > limit {
            match records.list.pop_front() {
                Some(old) => records.bytes -= old.body.len(),
                None => break,
            }
        }
    }
    current_config(&state)
}
