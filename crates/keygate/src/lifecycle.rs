//! Key lifecycle jobs, off the request path: reminding owners of keys whose
//! secret reached the rotation policy's age, and rotating the keys that
//! opted into automatic rotation.
//!
//! A pass runs every `KEYGATE_LIFECYCLE_INTERVAL` (default 1 h) on one node
//! at a time (a lease in the store). Reminders go through the alert
//! channels, once per key and secret (the alert's dedupe key names the time
//! the secret was issued). An automatic rotation first delivers the new
//! secret to the key's webhook, signed like alerts (`x-keygate-timestamp`,
//! `x-keygate-signature: v1=HMAC-SHA256("<timestamp>.<body>")` keyed with
//! `KEYGATE_ROTATION_WEBHOOK_SECRET`), and only commits the rotation once
//! the receiver has answered 2xx: the secret is never written anywhere, and
//! a failed delivery leaves the current secret working and is retried on
//! the next pass (its owner is alerted once per secret).
//!
//! ```json
//! {"type": "key.rotated", "key_id": "key_…", "key": "kg_live_…",
//!  "hint": "...abcd", "previous_secret_expires_at": "…", "owner": "…",
//!  "project_id": "proj_…", "org_id": "org_…", "rotated_at": "…"}
//! ```

use crate::alerts::{sign, Alert, Alerts, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::auth::{key, KeyCache};
use crate::credentials::Credential;
use crate::store::{AuditEvent, KeyRecord, Store, StoreError};
use secrecy::ExposeSecret;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// What the lifecycle jobs work with. It holds no ledger handle, so a
/// running pass never delays the gateway's shutdown.
#[derive(Clone, Debug)]
pub struct Lifecycle {
    /// Keys and the lease.
    pub store: Arc<dyn Store>,
    /// This node's key cache, updated at once after a rotation.
    pub keys: Arc<KeyCache>,
    /// Where reminders go.
    pub alerts: Alerts,
    /// Delivers rotated secrets.
    pub http: reqwest::Client,
    /// Age at which a secret is due.
    pub rotation_policy: Duration,
    /// Signs deliveries; without it no key is rotated automatically.
    pub signing: Option<Credential>,
    /// Dashboard sessions unused this long are deleted.
    pub session_idle: Duration,
}

/// Keys handled per query page.
const PAGE: i64 = 500;
/// Where the reminder pass has got to: keys whose secret was issued up to
/// this time (Unix ms) have been reminded.
const REMINDED_THROUGH: &str = "rotation_reminders_through";
/// Keys that expired up to this time (Unix ms) are in the audit log.
const EXPIRIES_THROUGH: &str = "expiries_recorded_through";
/// The lease that makes one node at a time run a pass.
const LEASE: &str = "lifecycle_lease";
/// How long the old secret keeps working after an automatic rotation.
const AUTO_ROTATION_GRACE_MS: i64 = 24 * 3600 * 1000;
/// Timeout of one delivery of a rotated secret.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Reminders newly raised.
    pub reminded: usize,
    /// Keys rotated automatically.
    pub rotated: usize,
    /// Automatic rotations whose delivery failed (retried next pass).
    pub failed: usize,
    /// Key expiries written to the audit log.
    pub expired: usize,
    /// Dashboard sessions past their lifetime or idle time, deleted.
    pub sessions_ended: u64,
    /// Another node held the lease; nothing was done.
    pub skipped: bool,
}

impl Lifecycle {
    /// The gateway's parts the jobs need (clones of shared handles).
    pub fn new(state: &crate::server::AppState) -> Lifecycle {
        Lifecycle {
            store: Arc::clone(&state.store),
            keys: Arc::clone(&state.keys),
            alerts: state.alerts.clone(),
            http: state.http.clone(),
            rotation_policy: state.config.rotation_policy,
            signing: state.config.rotation_webhook_secret.clone(),
            session_idle: state.config.dashboard.session_idle,
        }
    }
}

/// Run passes forever, every `every`.
pub fn spawn(state: Lifecycle, every: Duration) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let now = crate::time::now_ms();
            let lease_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
            match run_pass(&state, now, now.saturating_add(lease_ms / 2)).await {
                Ok(report) if report != PassReport::default() => {
                    tracing::info!(?report, "key lifecycle pass");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "key lifecycle pass failed; will retry"),
            }
        }
    });
}

/// One pass at time `now` (Unix ms), holding the lease until `lease_until`.
pub async fn run_pass(
    state: &Lifecycle,
    now: i64,
    lease_until: i64,
) -> Result<PassReport, StoreError> {
    if !state.store.try_lease(LEASE, lease_until, now).await? {
        return Ok(PassReport {
            skipped: true,
            ..PassReport::default()
        });
    }
    let policy_ms = i64::try_from(state.rotation_policy.as_millis()).unwrap_or(i64::MAX);
    let due_through = now.saturating_sub(policy_ms);
    let mut report = PassReport::default();
    record_expiries(state, now, &mut report).await?;
    remind(state, now, due_through, &mut report).await?;
    auto_rotate(state, now, due_through, &mut report).await?;
    let idle_ms = i64::try_from(state.session_idle.as_millis()).unwrap_or(i64::MAX);
    report.sessions_ended = state
        .store
        .purge_sessions(now, now.saturating_sub(idle_ms))
        .await?;
    Ok(report)
}

/// How far a job has got (Unix ms); from the beginning when never run.
async fn watermark(state: &Lifecycle, name: &str) -> Result<i64, StoreError> {
    Ok(state
        .store
        .get_meta(name)
        .await?
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(i64::MIN))
}

/// When a key's current secret was issued.
fn issued_at(record: &KeyRecord) -> i64 {
    record.rotated_at.unwrap_or(record.created_at)
}

async fn remind(
    state: &Lifecycle,
    now: i64,
    due_through: i64,
    report: &mut PassReport,
) -> Result<(), StoreError> {
    let mut after = watermark(state, REMINDED_THROUGH).await?;
    loop {
        let keys = state
            .store
            .keys_issued_between(after, due_through, PAGE)
            .await?;
        for record in &keys {
            after = issued_at(record);
            if record.expires_at.is_some_and(|t| t <= now) || record.suspended_at.is_some() {
                // Nobody needs reminding to rotate a dead or suspended key.
                continue;
            }
            let age_days = now.saturating_sub(issued_at(record)) / 86_400_000;
            let mut alert = Alert::new(
                "key.rotation_due",
                format!(
                    "Key {} ({}) has used the same secret for {age_days} days; rotate it: keygate keys rotate {}",
                    record.id, record.name, record.id
                ),
            )
            .subject(record.id.clone())
            .details(json!({
                "key_id": record.id,
                "name": record.name,
                "env": record.env,
                "project_id": record.project_id,
                "secret_issued_at": crate::time::rfc3339(issued_at(record)),
                "secret_age_days": age_days,
                "auto_rotation": record.auto_rotate_webhook.is_some(),
            }))
            .dedupe_key(format!("key.rotation_due:{}:{}", record.id, issued_at(record)));
            if let Some(owner) = &record.owner {
                alert = alert.owner(owner.clone());
            }
            match state.alerts.raise(alert).await {
                Ok(crate::alerts::Raised::Stored { .. }) => report.reminded += 1,
                Ok(_) => {}
                Err(error) => {
                    // Not marked as reminded: the next pass tries again.
                    tracing::warn!(%error, key_id = %record.id, "rotation reminder not recorded");
                    return Ok(());
                }
            }
            state
                .store
                .set_meta(REMINDED_THROUGH, &after.to_string())
                .await?;
        }
        if keys.len() < usize::try_from(PAGE).unwrap_or(usize::MAX) {
            break;
        }
    }
    if after < due_through {
        state
            .store
            .set_meta(REMINDED_THROUGH, &due_through.to_string())
            .await?;
    }
    Ok(())
}

/// An expiry happens by itself, with no request to audit: the pass writes
/// one `key.expire` entry per key, at the time it expired.
async fn record_expiries(
    state: &Lifecycle,
    now: i64,
    report: &mut PassReport,
) -> Result<(), StoreError> {
    let mut after = watermark(state, EXPIRIES_THROUGH).await?;
    loop {
        let keys = state.store.keys_expiring_between(after, now, PAGE).await?;
        for record in &keys {
            let expired_at = record.expires_at.unwrap_or(now);
            state
                .store
                .append_audit(&AuditEvent {
                    ts: expired_at,
                    actor: "keygate".into(),
                    action: if record.kind == crate::auth::KeyKind::Admin {
                        "admin_credential.expire".into()
                    } else {
                        "key.expire".into()
                    },
                    target: Some(record.id.clone()),
                    source_ip: None,
                    status: 200,
                    fields: Vec::new(),
                })
                .await?;
            report.expired += 1;
            after = expired_at;
            state
                .store
                .set_meta(EXPIRIES_THROUGH, &after.to_string())
                .await?;
        }
        if keys.len() < usize::try_from(PAGE).unwrap_or(usize::MAX) {
            break;
        }
    }
    state
        .store
        .set_meta(EXPIRIES_THROUGH, &now.to_string())
        .await
}

async fn auto_rotate(
    state: &Lifecycle,
    now: i64,
    due_through: i64,
    report: &mut PassReport,
) -> Result<(), StoreError> {
    let Some(signing) = state.signing.as_ref() else {
        return Ok(());
    };
    let keys = state
        .store
        .keys_due_for_auto_rotation(due_through, now, PAGE)
        .await?;
    for record in keys {
        let Some(url) = record.auto_rotate_webhook.clone() else {
            continue;
        };
        match rotate_and_deliver(state, signing, &record, &url, now).await {
            Ok(Some(rotated)) => {
                report.rotated += 1;
                state.keys.upsert(&rotated);
                let event = AuditEvent {
                    ts: now,
                    actor: "keygate".into(),
                    action: "key.auto_rotate".into(),
                    target: Some(rotated.id.clone()),
                    source_ip: None,
                    status: 200,
                    fields: Vec::new(),
                };
                if let Err(error) = state.store.append_audit(&event).await {
                    tracing::error!(%error, "audit log write failed");
                }
                tracing::info!(key_id = %rotated.id, "key rotated automatically");
            }
            Ok(None) => {
                tracing::info!(key_id = %record.id, "key changed during automatic rotation; left as it is");
            }
            Err(reason) => {
                report.failed += 1;
                tracing::warn!(key_id = %record.id, %reason, "automatic rotation not delivered; will retry");
                let mut alert = Alert::new(
                    "key.auto_rotation_failed",
                    format!(
                        "Key {} could not be rotated automatically: its webhook did not accept the new secret ({reason}). The current secret keeps working; keygate retries every pass.",
                        record.id
                    ),
                )
                .subject(record.id.clone())
                .details(json!({"key_id": record.id, "reason": reason}))
                .dedupe_key(format!(
                    "key.auto_rotation_failed:{}:{}",
                    record.id,
                    issued_at(&record)
                ));
                if let Some(owner) = &record.owner {
                    alert = alert.owner(owner.clone());
                }
                if let Err(error) = state.alerts.raise(alert).await {
                    tracing::warn!(%error, "alert not recorded");
                }
            }
        }
    }
    Ok(())
}

/// Deliver a new secret for `record` to `url`; once accepted, commit the
/// rotation (if the key still has the secret it had). `Ok(None)`: the key
/// changed meanwhile. `Err`: why the delivery failed (printable, no secret).
async fn rotate_and_deliver(
    state: &Lifecycle,
    signing: &Credential,
    record: &KeyRecord,
    url: &str,
    now: i64,
) -> Result<Option<KeyRecord>, String> {
    let secret = key::generate(&record.env);
    let previous_expires_at = now.saturating_add(AUTO_ROTATION_GRACE_MS);
    let body = json!({
        "type": "key.rotated",
        "key_id": record.id,
        "key": secret.expose_secret(),
        "hint": key::hint(secret.expose_secret()),
        "previous_secret_expires_at": crate::time::rfc3339(previous_expires_at),
        "owner": record.owner,
        "project_id": record.project_id,
        "org_id": record.org_id,
        "rotated_at": crate::time::rfc3339(now),
    });
    let mut body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
    let signing_key = signing
        .current()
        .await
        .map_err(|_| "the rotation webhook secret cannot be read".to_string())?;
    let timestamp = now / 1000;
    let signature = sign(signing_key.expose_secret().as_bytes(), timestamp, &body);
    let sent = state
        .http
        .post(url)
        .timeout(DELIVERY_TIMEOUT)
        .header("content-type", "application/json")
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header(SIGNATURE_HEADER, signature)
        .header("x-keygate-key-id", record.id.clone())
        .body(body.clone())
        .send()
        .await;
    zeroize::Zeroize::zeroize(&mut body);
    let response = sent.map_err(|e| {
        if e.is_timeout() {
            "timed out".to_string()
        } else {
            "connection failed".to_string()
        }
    })?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status().as_u16()));
    }
    state
        .store
        .rotate_key(
            &record.id,
            Some(&record.secret_hash),
            &hex::encode(state.keys.hasher().digest(secret.expose_secret())),
            &key::hint(secret.expose_secret()),
            previous_expires_at,
            now,
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "storing an automatic rotation failed");
            "the store is unavailable".to_string()
        })
}
