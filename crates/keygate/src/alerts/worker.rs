//! The delivery worker: claims due outbox rows, sends them, records what
//! happened, sleeps until the next is due or an alert is raised.

use super::{
    email, payload, signing, Core, DeliveryEvent, DeliveryResult, Target, Webhook, REQUEST_TIMEOUT,
};
use crate::store::{AlertDeliveryOutcome, AlertRecord, ClaimedAlertDelivery, StoreError};
use futures_util::StreamExt;
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A claim outlives the longest attempt of a whole batch (a batch of
/// `BATCH` rows, `CONCURRENCY` at a time, each within `REQUEST_TIMEOUT`)
/// with room to record the outcomes; a row whose worker died is taken up
/// again once it runs out.
const LEASE: Duration = Duration::from_secs(60);
/// Rows claimed at once.
const BATCH: i64 = 16;
/// Attempts in flight at once (one slow receiver must not hold up others).
const CONCURRENCY: usize = 8;
/// Longest sleep: rows raised on other nodes, or left by a node that died,
/// are picked up within this even when nothing wakes the worker.
const MAX_IDLE: Duration = Duration::from_secs(30);
/// Pause after the store failed.
const STORE_RETRY: Duration = Duration::from_secs(5);
/// Pause when rows are due but another node holds them (PostgreSQL's `SKIP
/// LOCKED` skipped them mid-claim).
const CONTENDED: Duration = Duration::from_millis(100);
/// Most of a receiver's answer read (and discarded) so the connection can
/// be reused.
const DRAIN_BYTES: usize = 64 * 1024;

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Run until aborted (when the last [`super::Alerts`] handle is dropped).
pub(super) async fn run(core: Arc<Core>) {
    loop {
        let deadline = match deliver_due(&core).await {
            Ok(deadline) => deadline,
            Err(e) => {
                tracing::warn!(error = %e, "alert outbox unavailable; retrying");
                Instant::now() + STORE_RETRY
            }
        };
        tokio::select! {
            () = core.wake.notified() => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// Deliver every row due now; return when to look again.
async fn deliver_due(core: &Core) -> Result<Instant, StoreError> {
    let mut rechecked = false;
    loop {
        let now = core.clock.now_ms();
        let token = uuid::Uuid::now_v7().simple().to_string();
        let batch = core
            .store
            .claim_alert_deliveries(
                &core.channel_names,
                now,
                now.saturating_add(millis(LEASE)),
                &token,
                BATCH,
            )
            .await?;
        if !batch.is_empty() {
            futures_util::stream::iter(batch)
                .for_each_concurrent(CONCURRENCY, |claimed| deliver_one(core, claimed, &token))
                .await;
            rechecked = false;
            continue;
        }
        let due = core
            .store
            .next_alert_delivery_due(&core.channel_names)
            .await?;
        // The deadline counts from the same reading as `now`: time passing
        // between this and the sleep does not push the wake-up back.
        let (instant, now) = core.clock.now();
        let wait = match due {
            // It became due since the claim: claim again at once.
            Some(due) if due <= now && !rechecked => {
                rechecked = true;
                continue;
            }
            // Due, yet not claimable twice running: another node is
            // claiming it right now.
            Some(due) if due <= now => CONTENDED,
            Some(due) => Duration::from_millis(u64::try_from(due - now).unwrap_or(0)).min(MAX_IDLE),
            None => MAX_IDLE,
        };
        return Ok(instant + wait);
    }
}

/// Why an attempt failed: a printable line, and the receiver's
/// `Retry-After` if it gave one.
struct Failure {
    error: String,
    retry_after: Option<Duration>,
}

impl Failure {
    fn new(error: impl Into<String>) -> Self {
        Failure {
            error: error.into(),
            retry_after: None,
        }
    }
}

async fn deliver_one(core: &Core, claimed: ClaimedAlertDelivery, token: &str) {
    let ClaimedAlertDelivery { delivery, alert } = claimed;
    let attempt = u32::try_from(delivery.attempts).unwrap_or(u32::MAX);
    let result = match core.channel(&delivery.channel) {
        Some(channel) => match &channel.target {
            Target::Webhook(webhook) => send(core, webhook, &alert, &delivery.id).await,
            Target::Email(target) => email::send(target, &alert, &delivery.id)
                .await
                .map_err(Failure::new),
        },
        // Only rows of configured channels are claimed.
        None => Err(Failure::new("channel is not configured on this node")),
    };
    let now = core.clock.now_ms();
    let (outcome, result) = match result {
        Ok(()) => (
            AlertDeliveryOutcome::Delivered { at: now },
            DeliveryResult::Delivered,
        ),
        Err(failure) => {
            let next = core.retry.next_attempt(
                attempt,
                delivery.created_at,
                now,
                rand::random::<f64>(),
                failure.retry_after,
            );
            match next {
                Some(next_attempt_at) => (
                    AlertDeliveryOutcome::Retry {
                        next_attempt_at,
                        error: failure.error.clone(),
                    },
                    DeliveryResult::Retrying {
                        error: failure.error,
                        next_attempt_at,
                        retry_in: Duration::from_millis(
                            u64::try_from(next_attempt_at - now).unwrap_or(0),
                        ),
                    },
                ),
                None => (
                    AlertDeliveryOutcome::GaveUp {
                        at: now,
                        error: failure.error.clone(),
                    },
                    DeliveryResult::GaveUp {
                        error: failure.error,
                    },
                ),
            }
        }
    };
    match &result {
        DeliveryResult::Delivered => tracing::info!(
            delivery_id = %delivery.id, alert_id = %alert.id, kind = %alert.kind,
            channel = %delivery.channel, attempt, "alert delivered"
        ),
        DeliveryResult::Retrying {
            error, retry_in, ..
        } => tracing::warn!(
            delivery_id = %delivery.id, alert_id = %alert.id, kind = %alert.kind,
            channel = %delivery.channel, attempt, error = %error,
            retry_in_s = retry_in.as_secs(), "alert delivery failed; will retry"
        ),
        DeliveryResult::GaveUp { error } => tracing::error!(
            delivery_id = %delivery.id, alert_id = %alert.id, kind = %alert.kind,
            channel = %delivery.channel, attempts = attempt, error = %error,
            "alert delivery failed; giving up"
        ),
    }
    match core
        .store
        .finish_alert_delivery(&delivery.id, token, &outcome)
        .await
    {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            delivery_id = %delivery.id,
            "alert delivery outlived its claim; another worker has taken it over"
        ),
        // The claim lapses and the row is tried again after the lease: a
        // delivered alert may then arrive twice (receivers deduplicate on
        // x-keygate-delivery), but none is lost.
        Err(e) => tracing::warn!(
            delivery_id = %delivery.id, error = %e,
            "could not record an alert delivery outcome"
        ),
    }
    // Nobody listening is fine.
    let _ = core.events.send(DeliveryEvent {
        delivery_id: delivery.id,
        alert_id: alert.id,
        channel: delivery.channel,
        attempt,
        result,
    });
}

/// One webhook attempt: sign and POST; `Ok` on a 2xx answer.
async fn send(
    core: &Core,
    channel: &Webhook,
    alert: &AlertRecord,
    delivery_id: &str,
) -> Result<(), Failure> {
    let body = payload::render(channel.format, alert, delivery_id)
        .map_err(|e| Failure::new(format!("could not render the alert: {e}")))?;
    let timestamp = core.clock.now_ms().div_euclid(1000);
    let mut request = core
        .http
        .post(channel.url.url().clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(signing::TIMESTAMP_HEADER, timestamp.to_string())
        .header(signing::DELIVERY_HEADER, delivery_id)
        .header(signing::KIND_HEADER, alert.kind.as_str());
    if let Some(secret) = &channel.secret {
        let secret = secret
            .current()
            .await
            .map_err(|e| Failure::new(format!("signing secret unavailable: {e}")))?;
        let signature = signing::sign(secret.expose_secret().as_bytes(), timestamp, &body);
        request = request.header(signing::SIGNATURE_HEADER, signature);
    }
    let mut response = request
        .body(body)
        .send()
        .await
        .map_err(|e| Failure::new(describe(&e)))?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    // Read a little of the answer so the connection can be reused; its
    // content is never kept (it could echo anything).
    let mut drained = 0;
    while drained < DRAIN_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => drained += chunk.len(),
            Ok(None) | Err(_) => break,
        }
    }
    if status.is_success() {
        Ok(())
    } else {
        Err(Failure {
            error: format!("HTTP {}", status.as_u16()),
            retry_after,
        })
    }
}

/// A transport error as one printable line without the URL (whose path may
/// be a secret): what failed, and the innermost cause.
fn describe(error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        format!("timed out after {} s", REQUEST_TIMEOUT.as_secs())
    } else if error.is_connect() {
        "could not connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut cause: &dyn std::error::Error = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if std::ptr::addr_eq(cause, error) {
        return what;
    }
    format!("{what}: {}", crate::error::printable(&cause.to_string()))
}
