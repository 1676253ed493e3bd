//! `POST /leak-reports`: leaked keys reported in the form GitHub's
//! secret-scanning partner program sends them.
//!
//! The body is a JSON array of `{"token", "type", "url", "source"}`; the
//! headers `Github-Public-Key-Identifier` and `Github-Public-Key-Signature`
//! name one of the configured reporter keys
//! ([`crate::config::leaks`]) and carry its ECDSA P-256 / SHA-256
//! signature (ASN.1 DER, base64) over the raw body. Nothing is read from a
//! batch before its signature verifies; a batch already processed (the same
//! bytes) is refused as a replay; a malformed batch is refused whole. Then
//! each token that is a live keygate key is revoked at once (reason
//! `leaked`), the report is kept (where it was found, for the incident
//! report), the key's owner is alerted (`key.leaked`, with the URL), and
//! the answer labels every token, by its SHA-256 (never echoing it):
//! `[{"token_hash", "token_type", "label": "true_positive" |
//! "false_positive"}]` — true when it is a keygate key (live or already
//! revoked), false otherwise.

use crate::alerts::Alert;
use crate::error::{ApiError, ErrorShape};
use crate::server::AppState;
use crate::store::{AuditEvent, LeakReportRecord};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;

/// Header naming the reporter key.
pub const KEY_ID_HEADER: &str = "github-public-key-identifier";
/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "github-public-key-signature";
/// Largest batch accepted.
const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// Most tokens in one batch.
const MAX_TOKENS: usize = 1000;
/// How long a processed batch is remembered to refuse its replay.
const REPLAY_WINDOW_MS: i64 = 90 * 86_400_000;

#[derive(Debug, Deserialize)]
struct Reported {
    token: String,
    #[serde(rename = "type")]
    token_type: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    source: Option<String>,
}

fn refuse(status: StatusCode, code: &'static str, message: &str) -> Response {
    let mut error = ApiError::invalid_request(message.to_string());
    error.status = status;
    error.code = code;
    error.to_response(ErrorShape::OpenAi)
}

/// The verified reporter, or why the batch is refused.
fn verify(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<String, &'static str> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let (Some(identifier), Some(signature)) = (header(KEY_ID_HEADER), header(SIGNATURE_HEADER))
    else {
        return Err(
            "A leak report must carry Github-Public-Key-Identifier and Github-Public-Key-Signature.",
        );
    };
    let key = state
        .config
        .leak_report_keys
        .iter()
        .find(|k| k.identifier == identifier)
        .ok_or("The report is signed with an unknown key.")?;
    let signature = B64
        .decode(signature)
        .map_err(|_| "The signature is not base64.")?;
    let public = aws_lc_rs::signature::ParsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        &key.spki_der,
    )
    .map_err(|_| "The reporter key is unusable.")?;
    public
        .verify_sig(body, &signature)
        .map_err(|_| "The signature does not verify.")?;
    Ok(key.identifier.clone())
}

/// `POST /leak-reports`
pub async fn receive(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    if state.config.leak_report_keys.is_empty() {
        return refuse(
            StatusCode::NOT_FOUND,
            "not_found",
            "Leak reports are not enabled on this gateway (KEYGATE_LEAK_REPORT_KEYS).",
        );
    }
    let source_ip =
        crate::policy::client_ip(peer.ip(), request.headers(), &state.config.trusted_proxies);
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BATCH_BYTES).await else {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "The batch is larger than 1 MiB, or was cut off.",
        );
    };
    let reporter = match verify(&state, &parts.headers, &body) {
        Ok(reporter) => reporter,
        Err(why) => {
            tracing::warn!(source_ip = %source_ip, why, "leak report refused");
            return refuse(StatusCode::UNAUTHORIZED, "invalid_signature", why);
        }
    };
    let batch: Vec<Reported> = match serde_json::from_slice(&body) {
        Ok(batch) => batch,
        Err(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "The batch must be a JSON array of {\"token\", \"type\", \"url\", \"source\"}.",
            )
        }
    };
    if batch.len() > MAX_TOKENS {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "At most 1000 tokens per batch.",
        );
    }
    let now = crate::time::now_ms();
    let digest = hex::encode(Sha256::digest(
        [b"leak-report\n".as_slice(), &body].concat(),
    ));
    match state
        .store
        .record_assertion(&digest, now + REPLAY_WINDOW_MS)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            return refuse(
                StatusCode::CONFLICT,
                "replayed_report",
                "This batch was already reported.",
            )
        }
        Err(error) => {
            tracing::error!(error = %error, "leak report: store failed");
            return ApiError::unavailable("The store is unavailable; retry shortly.")
                .to_response(ErrorShape::OpenAi);
        }
    }
    let mut answer = Vec::with_capacity(batch.len());
    for item in &batch {
        let label = match handle(&state, item, &reporter, &source_ip.to_string(), now).await {
            Ok(true) => "true_positive",
            Ok(false) => "false_positive",
            Err(error) => {
                tracing::error!(error = %error, "leak report: store failed");
                return ApiError::unavailable("The store is unavailable; retry shortly.")
                    .to_response(ErrorShape::OpenAi);
            }
        };
        answer.push(json!({
            "token_hash": hex::encode(Sha256::digest(item.token.as_bytes())),
            "token_type": crate::error::printable(&item.token_type),
            "label": label,
        }));
    }
    (StatusCode::OK, axum::Json(answer)).into_response()
}

/// Revoke, record and alert for one reported token; whether it is a
/// keygate key.
async fn handle(
    state: &AppState,
    item: &Reported,
    reporter: &str,
    source_ip: &str,
    now: i64,
) -> Result<bool, crate::store::StoreError> {
    let Some(entry) = state.keys.lookup(&item.token) else {
        return Ok(false);
    };
    let Some(record) = state.store.get_key(&entry.id).await? else {
        return Ok(false);
    };
    // A secret that no longer works (revoked, or replaced by a rotation
    // whose grace period is over) leaks nothing more: it is reported, but
    // the key's current secret is not taken from its holder.
    let live = crate::auth::cache::usable(&entry, now).is_ok();
    let bounded = |text: &Option<String>| {
        text.as_deref().map(|t| {
            crate::error::printable(t)
                .chars()
                .take(2048)
                .collect::<String>()
        })
    };
    let report = LeakReportRecord {
        id: format!("leak_{}", uuid::Uuid::now_v7().simple()),
        key_id: record.id.clone(),
        token_type: crate::error::printable(&item.token_type)
            .chars()
            .take(128)
            .collect(),
        url: bounded(&item.url),
        source: bounded(&item.source),
        reporter: reporter.to_string(),
        reported_at: now,
    };
    state.store.insert_leak_report(&report).await?;
    let already = !live;
    if live {
        if let Some(revoked) = state.store.revoke_key(&record.id, now, "leaked").await? {
            state.keys.upsert(&revoked);
        }
        tracing::warn!(key_id = %record.id, "key reported as leaked: revoked");
        let audit = AuditEvent {
            ts: now,
            actor: format!("leak-report:{reporter}"),
            action: "key.revoke".into(),
            target: Some(record.id.clone()),
            source_ip: Some(source_ip.to_string()),
            status: 200,
            fields: vec!["leaked".into()],
        };
        state.store.append_audit(&audit).await?;
    }
    let url = report
        .url
        .clone()
        .unwrap_or_else(|| "an unnamed place".into());
    let mut alert = Alert::new(
        "key.leaked",
        format!(
            "The key {} ({}) was reported leaked at {url}{}",
            record.id,
            record.name,
            if already {
                "; that secret no longer worked."
            } else {
                "; the key has been revoked."
            }
        ),
    )
    .subject(record.id.clone());
    if let Some(owner) = &record.owner {
        alert = alert.owner(owner.clone());
    }
    alert.details = json!({
        "key_id": record.id,
        "url": report.url,
        "source": report.source,
        "token_type": report.token_type,
        "reporter": reporter,
        "revoked": !already,
    });
    alert.dedupe_key = Some(format!("leak:{}", report.id));
    if let Err(error) = state.alerts.raise(alert).await {
        tracing::error!(error = %error, "could not raise the leak alert");
    }
    Ok(true)
}
