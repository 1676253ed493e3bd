//! Alerts: durable delivery to signed webhooks and, optionally, email over
//! SMTP.
//!
//! Code that notices something (a key due for rotation, a budget threshold,
//! a reported leak) calls [`Alerts::raise`]. It returns once the alert and
//! one delivery row per matching channel are committed to the store's
//! outbox, so a crash right after loses nothing; a `dedupe_key` makes
//! raising the same alert again a no-op ("remind once per rotation", "each
//! threshold fires once per period"). A delivery worker, off every request
//! path, sends due rows and retries failures with exponential backoff and
//! jitter (5 s, doubling, at most 1 h apart, for up to 24 h; see
//! [`RetryPolicy`]). It wakes at once when an alert is raised on this node,
//! otherwise at the earliest due retry (and at least every 30 s, for rows
//! other nodes left). Rows are claimed with a lease before they are sent, so
//! several nodes on PostgreSQL never send one delivery concurrently, and a
//! row whose sender died is sent again once its lease runs out.
//!
//! # The webhook request
//!
//! `POST` to the configured URL (`[[alerts.webhooks]]`, see
//! [`crate::config::AlertsConfig`]) with
//!
//! | header | value |
//! |---|---|
//! | `content-type` | `application/json` |
//! | `x-keygate-timestamp` | Unix time of this attempt, seconds |
//! | `x-keygate-signature` | `v1=` + hex HMAC-SHA256 over `"<timestamp>.<body>"`, keyed with the webhook's secret |
//! | `x-keygate-delivery` | delivery id (`dlv_…`): the same on every retry of this alert to this webhook |
//! | `x-keygate-alert-kind` | the alert's kind |
//!
//! and a body in the webhook's format: keygate's JSON document (`format =
//! "json"`, see [`payload`]) or a Slack-compatible message (`format =
//! "slack"`: `{"text": …, "blocks": […]}`). A 2xx answer means delivered;
//! anything else, a timeout (10 s) or a connection failure is retried.
//! Redirects are not followed. The body of a delivery is identical on every
//! attempt.
//!
//! # Verifying a delivery (receivers)
//!
//! 1. Read the raw body bytes, before any JSON parsing.
//! 2. Refuse the request when `x-keygate-timestamp` is more than a few
//!    minutes from your clock (a replay).
//! 3. Compute `HMAC-SHA256(secret, timestamp + "." + body)`, hex-encode it and
//!    compare it, in constant time, with the `v1=` value of
//!    `x-keygate-signature` (the header may list several comma-separated
//!    entries; accept any `v1=` that matches).
//! 4. Drop a repeated `x-keygate-delivery`: a retry after a lost answer
//!    delivers the same alert again.
//!
//! [`verify`] does exactly this. In Python:
//!
//! ```python
//! expected = hmac.new(secret, f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
//! ok = any(hmac.compare_digest(expected, part.strip()[3:])
//!          for part in sig.split(",") if part.strip().startswith("v1="))
//! ```
//!
//! The signing secret comes from a credential source (env, file, command,
//! stored); it is never logged, stored or sent. Errors recorded for failed
//! attempts are status lines (`HTTP 503`, `timed out`), never response
//! bodies, and neither logs nor the outbox name a webhook by more than its
//! configured name and host: a Slack webhook URL is itself a secret.
//!
//! # Email
//!
//! `[[alerts.email]]` channels (see [`crate::config::AlertsConfig`]) take
//! the same outbox rows, leases, retries and dedupe: one message per
//! delivery, with `X-Keygate-Delivery` and a `Message-ID` that are the same
//! on every retry. [`email`] describes the message.

pub mod email;
pub mod payload;
mod retry;
mod signing;
mod worker;

pub use retry::RetryPolicy;
pub use signing::{
    sign, verify, VerifyError, DELIVERY_HEADER, KIND_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};

use crate::config::{AlertsConfig, KindFilter, ProviderKey, WebhookFormat, WebhookUrl};
use crate::credentials::{Credential, CredentialError, StoredCredentials};
use crate::store::{AlertRecord, NewAlertDelivery, Store, StoreError};
use email::EmailTarget;
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, Notify};

/// Something to tell people about.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// What happened, dotted lowercase (`key.rotation_due`,
    /// `budget.threshold`, `leak.reported`); channels filter on it.
    pub kind: String,
    /// What it is about, e.g. a key id.
    pub subject: Option<String>,
    /// Who is concerned, e.g. the key's owner.
    pub owner: Option<String>,
    /// One or two sentences for people.
    pub message: String,
    /// Machine-readable particulars (usually a JSON object).
    pub details: serde_json::Value,
    /// Raising another alert with the same key is a no-op, forever: make it
    /// name the occasion (`rotation_due:key_abc:<rotated_at>`,
    /// `budget:proj_x:80:2026-05`).
    pub dedupe_key: Option<String>,
}

impl Alert {
    /// An alert of `kind` with `message` and nothing else.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Alert {
            kind: kind.into(),
            subject: None,
            owner: None,
            message: message.into(),
            details: serde_json::Value::Object(serde_json::Map::new()),
            dedupe_key: None,
        }
    }

    /// With a subject.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// With an owner.
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// With details.
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    /// With a dedupe key.
    pub fn dedupe_key(mut self, key: impl Into<String>) -> Self {
        self.dedupe_key = Some(key.into());
        self
    }
}

/// What [`Alerts::raise`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Raised {
    /// Stored, with this many deliveries queued (none when no channel takes
    /// its kind: it is still kept for the dashboard).
    Stored {
        /// The alert's id (`alert_…`).
        id: String,
        /// Channels it goes to.
        deliveries: usize,
    },
    /// An alert with the same `dedupe_key` exists; nothing was done.
    Duplicate,
}

/// Why alerts could not be set up or an alert not raised.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The alert is malformed (a programming error in the caller).
    #[error("invalid alert: {0}")]
    Invalid(String),
    /// The outbox could not be written or read.
    #[error("alert outbox: {0}")]
    Store(#[from] StoreError),
    /// A webhook's signing secret could not be resolved.
    #[error("alert webhook '{channel}': signing secret: {source}")]
    Secret {
        /// The webhook's name.
        channel: String,
        /// Cause (never contains the secret).
        source: CredentialError,
    },
    /// An email channel's SMTP password could not be resolved.
    #[error("alert email '{channel}': SMTP password: {source}")]
    Password {
        /// The channel's name.
        channel: String,
        /// Cause (never contains the password).
        source: CredentialError,
    },
    /// An email channel cannot be set up (TLS for its host).
    #[error("alert email '{channel}': {message}")]
    Email {
        /// The channel's name.
        channel: String,
        /// What is wrong.
        message: String,
    },
    /// A webhook's signing secret is too short to resist guessing.
    #[error("alert webhook '{channel}': the signing secret has fewer than {MIN_SECRET_CHARS} characters; use a long random value (e.g. `openssl rand -hex 32`)")]
    WeakSecret {
        /// The webhook's name.
        channel: String,
    },
    /// The HTTP client could not be built.
    #[error("alert HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// Shortest signing secret accepted.
pub const MIN_SECRET_CHARS: usize = 16;
/// Longest time one delivery attempt may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What became of one delivery attempt, as [`Alerts::subscribe`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryEvent {
    /// Delivery id (`dlv_…`).
    pub delivery_id: String,
    /// Alert id (`alert_…`).
    pub alert_id: String,
    /// Channel name.
    pub channel: String,
    /// Which attempt this was (1 for the first).
    pub attempt: u32,
    /// Its result.
    pub result: DeliveryResult,
}

/// The result of one delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryResult {
    /// The receiver answered 2xx.
    Delivered,
    /// It failed; the next attempt is due after `retry_in`.
    Retrying {
        /// Why it failed.
        error: String,
        /// Unix ms of the next attempt.
        next_attempt_at: i64,
        /// The delay until then.
        retry_in: Duration,
    },
    /// It failed and retries are given up.
    GaveUp {
        /// Why the last attempt failed.
        error: String,
    },
}

/// The wall clock as the outbox sees it: Unix ms at start plus the time
/// elapsed on tokio's clock since. Every timestamp the alerts module writes
/// and every due-time it compares comes from here, so a test that pauses
/// tokio's clock controls them all; in production it is the wall clock at
/// start moved on by the monotonic clock (a wall-clock step after the start
/// is not followed until the next restart).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    wall_at_start: i64,
    started: tokio::time::Instant,
}

impl Clock {
    /// A clock reading the wall clock now (via [`crate::time::now_ms`]).
    pub fn new() -> Self {
        Clock {
            wall_at_start: crate::time::now_ms(),
            started: tokio::time::Instant::now(),
        }
    }

    /// Unix ms now.
    pub fn now_ms(&self) -> i64 {
        self.now().1
    }

    /// Now, as tokio's instant and as Unix ms read together, so that a
    /// deadline computed from the one is exact in the other.
    pub fn now(&self) -> (tokio::time::Instant, i64) {
        let instant = tokio::time::Instant::now();
        let elapsed = instant.saturating_duration_since(self.started).as_millis();
        let elapsed = i64::try_from(elapsed).unwrap_or(i64::MAX);
        (instant, self.wall_at_start.saturating_add(elapsed))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// A configured channel, with its secret resolved.
#[derive(Debug)]
struct Channel {
    name: String,
    kinds: KindFilter,
    target: Target,
}

/// Where a channel delivers.
#[derive(Debug)]
enum Target {
    /// A signed webhook.
    Webhook(Webhook),
    /// Email over SMTP.
    Email(EmailTarget),
}

/// A webhook, with its secret resolved.
#[derive(Debug)]
struct Webhook {
    url: WebhookUrl,
    secret: Option<Credential>,
    format: WebhookFormat,
}

/// What the handle and the worker share.
#[derive(Debug)]
struct Core {
    store: Arc<dyn Store>,
    channels: Vec<Channel>,
    channel_names: Vec<String>,
    wake: Notify,
    clock: Clock,
    retry: RetryPolicy,
    http: reqwest::Client,
    events: broadcast::Sender<DeliveryEvent>,
}

impl Core {
    fn channel(&self, name: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.name == name)
    }
}

#[derive(Debug)]
struct Inner {
    core: Arc<Core>,
    worker: Option<tokio::task::AbortHandle>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(worker) = &self.worker {
            worker.abort();
        }
    }
}

/// Handle to the alert outbox and its delivery worker. Cheap to clone; the
/// worker stops when the last clone is dropped (what it had not delivered
/// yet stays in the outbox for the next start).
#[derive(Clone, Debug)]
pub struct Alerts {
    inner: Arc<Inner>,
}

/// Options of [`Alerts::start_with`].
#[derive(Clone, Copy, Debug, Default)]
pub struct AlertsOptions {
    /// Retry schedule.
    pub retry: RetryPolicy,
    /// Whether to run the delivery worker. Without it the handle only
    /// records alerts; a gateway started later on the same store delivers
    /// them.
    pub record_only: bool,
    /// The clock (default: a new one, reading the wall clock at start).
    /// Handles given the same clock agree on the time as two processes on
    /// one machine do, whatever tokio's clock does in between.
    pub clock: Option<Clock>,
}

impl Alerts {
    /// Resolve the channels' signing secrets (`stored` is the vault for
    /// `{ stored = … }` secrets) and start the delivery worker on `store`.
    pub async fn start(
        store: Arc<dyn Store>,
        config: &AlertsConfig,
        stored: Option<&StoredCredentials>,
    ) -> Result<Alerts, AlertError> {
        Self::start_with(store, config, stored, AlertsOptions::default()).await
    }

    /// [`start`](Self::start) with options.
    pub async fn start_with(
        store: Arc<dyn Store>,
        config: &AlertsConfig,
        stored: Option<&StoredCredentials>,
        options: AlertsOptions,
    ) -> Result<Alerts, AlertError> {
        let mut channels = Vec::with_capacity(config.webhooks.len() + config.email.len());
        for webhook in &config.webhooks {
            let secret = match &webhook.secret {
                Some(key) => Some(resolve_secret(&webhook.name, key, stored).await?),
                None => None,
            };
            channels.push(Channel {
                name: webhook.name.clone(),
                kinds: webhook.kinds.clone(),
                target: Target::Webhook(Webhook {
                    url: webhook.url.clone(),
                    secret,
                    format: webhook.format,
                }),
            });
        }
        for email in &config.email {
            let password = match &email.auth {
                Some((_, key)) => Some(resolve_password(&email.name, key, stored).await?),
                None => None,
            };
            let target =
                EmailTarget::new(email, password).map_err(|message| AlertError::Email {
                    channel: email.name.clone(),
                    message,
                })?;
            channels.push(Channel {
                name: email.name.clone(),
                kinds: email.kinds.clone(),
                target: Target::Email(target),
            });
        }
        let http = reqwest::Client::builder()
            // A receiver never needs a redirect; following one could carry
            // the alert to a host nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(REQUEST_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("keygate-alerts/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let (events, _) = broadcast::channel(256);
        let core = Arc::new(Core {
            store,
            channel_names: channels.iter().map(|c| c.name.clone()).collect(),
            channels,
            wake: Notify::new(),
            clock: options.clock.unwrap_or_default(),
            retry: options.retry,
            http,
            events,
        });
        for channel in &core.channels {
            match &channel.target {
                Target::Webhook(webhook) => tracing::info!(
                    channel = %channel.name,
                    target = %webhook.url,
                    signed = webhook.secret.is_some(),
                    "alert webhook configured"
                ),
                Target::Email(email) => tracing::info!(
                    channel = %channel.name,
                    server = %email.server(),
                    recipients = email.recipients(),
                    auth = email.authenticates(),
                    "alert email configured"
                ),
            }
        }
        let worker = (!options.record_only && !core.channels.is_empty())
            .then(|| tokio::spawn(worker::run(Arc::clone(&core))).abort_handle());
        Ok(Alerts {
            inner: Arc::new(Inner { core, worker }),
        })
    }

    /// Store `alert` in the outbox, with a delivery for every channel whose
    /// `kinds` match, and wake the worker. Returns once it is committed;
    /// [`Raised::Duplicate`] when its `dedupe_key` was raised before.
    pub async fn raise(&self, alert: Alert) -> Result<Raised, AlertError> {
        let core = &self.inner.core;
        let record = AlertRecord {
            id: new_id("alert"),
            kind: valid_kind(alert.kind)?,
            subject: alert.subject.as_deref().map(short_text),
            owner: alert.owner.as_deref().map(short_text),
            message: message_text(&alert.message)?,
            details: valid_details(alert.details)?,
            dedupe_key: alert.dedupe_key.map(valid_dedupe_key).transpose()?,
            created_at: core.clock.now_ms(),
        };
        let deliveries: Vec<NewAlertDelivery> = core
            .channels
            .iter()
            .filter(|channel| channel.kinds.matches(&record.kind))
            .map(|channel| NewAlertDelivery {
                id: new_id("dlv"),
                channel: channel.name.clone(),
            })
            .collect();
        if !core.store.insert_alert(&record, &deliveries).await? {
            tracing::debug!(kind = %record.kind, "alert already raised (same dedupe key)");
            return Ok(Raised::Duplicate);
        }
        tracing::info!(
            alert_id = %record.id,
            kind = %record.kind,
            subject = record.subject.as_deref().unwrap_or(""),
            deliveries = deliveries.len(),
            "alert raised"
        );
        if !deliveries.is_empty() {
            core.wake.notify_one();
        }
        Ok(Raised::Stored {
            id: record.id,
            deliveries: deliveries.len(),
        })
    }

    /// Outcomes of delivery attempts from now on (for metrics, the
    /// dashboard and tests). A receiver that falls behind loses the oldest.
    pub fn subscribe(&self) -> broadcast::Receiver<DeliveryEvent> {
        self.inner.core.events.subscribe()
    }

    /// Names of the configured channels.
    pub fn channels(&self) -> Vec<String> {
        self.inner.core.channel_names.clone()
    }

    /// Unix ms now, on the clock the outbox uses.
    pub fn now_ms(&self) -> i64 {
        self.inner.core.clock.now_ms()
    }
}

/// The credential `key` stands for, resolving it now if it needs the
/// gateway (a command, the vault).
async fn resolve_credential(
    key: &ProviderKey,
    stored: Option<&StoredCredentials>,
) -> Result<Credential, CredentialError> {
    match key {
        ProviderKey::Ready(credential) => Ok(credential.clone()),
        ProviderKey::AtStart(spec) => {
            let env = crate::config::ProcessEnv;
            let ctx = crate::credentials::ResolveContext {
                env: &env,
                base_dir: None,
                stored,
            };
            Credential::resolve(spec, &ctx).await
        }
    }
}

async fn resolve_password(
    channel: &str,
    key: &ProviderKey,
    stored: Option<&StoredCredentials>,
) -> Result<Credential, AlertError> {
    let credential =
        resolve_credential(key, stored)
            .await
            .map_err(|source| AlertError::Password {
                channel: channel.to_string(),
                source,
            })?;
    if let Err(e) = credential.current().await {
        // A stored password not added yet: deliveries wait (and retry)
        // until it is.
        tracing::warn!(channel, error = %e, "alert email SMTP password unavailable; its deliveries are retried until it is");
    }
    Ok(credential)
}

async fn resolve_secret(
    channel: &str,
    key: &ProviderKey,
    stored: Option<&StoredCredentials>,
) -> Result<Credential, AlertError> {
    let credential =
        resolve_credential(key, stored)
            .await
            .map_err(|source| AlertError::Secret {
                channel: channel.to_string(),
                source,
            })?;
    match credential.current().await {
        Ok(secret) if secret.expose_secret().chars().count() < MIN_SECRET_CHARS => {
            Err(AlertError::WeakSecret {
                channel: channel.to_string(),
            })
        }
        Ok(_) => Ok(credential),
        // A stored secret not added yet: deliveries wait (and retry) until
        // it is.
        Err(e) => {
            tracing::warn!(channel, error = %e, "alert webhook signing secret unavailable; its deliveries are retried until it is");
            Ok(credential)
        }
    }
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// Kinds are dotted lowercase names: they go into a header and are matched
/// by channel filters.
fn valid_kind(kind: String) -> Result<String, AlertError> {
    let ok = !kind.is_empty()
        && kind.len() <= 64
        && kind.starts_with(|c: char| c.is_ascii_lowercase())
        && kind.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if ok {
        Ok(kind)
    } else {
        Err(AlertError::Invalid(format!(
            "kind '{}' must be 1-64 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter",
            crate::error::printable(&kind)
        )))
    }
}

fn valid_dedupe_key(key: String) -> Result<String, AlertError> {
    if key.is_empty() || key.len() > 256 || key.chars().any(char::is_control) {
        return Err(AlertError::Invalid(
            "dedupe_key must be 1-256 bytes without control characters".into(),
        ));
    }
    Ok(key)
}

/// Longest `details`, serialized: they go into the outbox and into every
/// webhook request.
pub const MAX_DETAILS_BYTES: usize = 16 * 1024;

fn valid_details(details: serde_json::Value) -> Result<serde_json::Value, AlertError> {
    let size = serde_json::to_vec(&details)
        .map_err(|e| AlertError::Invalid(format!("details: {e}")))?
        .len();
    if size > MAX_DETAILS_BYTES {
        return Err(AlertError::Invalid(format!(
            "details are {size} bytes as JSON; at most {MAX_DETAILS_BYTES}"
        )));
    }
    Ok(details)
}

/// Subjects and owners: printable, bounded.
fn short_text(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(256).collect()
}

/// Messages keep their line breaks; other control characters (PostgreSQL
/// refuses NUL) go.
fn message_text(text: &str) -> Result<String, AlertError> {
    let message: String = text
        .chars()
        .filter(|c| *c == '\n' || !c.is_control())
        .take(4_000)
        .collect();
    if message.trim().is_empty() {
        return Err(AlertError::Invalid("message must not be empty".into()));
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_fields_are_checked_and_cleaned() {
        assert!(valid_kind("key.rotation_due".into()).is_ok());
        for bad in ["", "Key.Due", "1key", "key due", "key\n"] {
            assert!(valid_kind(bad.into()).is_err(), "{bad:?}");
        }
        assert!(valid_dedupe_key("x".repeat(257)).is_err());
        assert!(valid_dedupe_key("budget:p:80:2026-05".into()).is_ok());
        assert_eq!(short_text("a\u{0}b\nc"), "abc");
        assert_eq!(
            message_text("line 1\nline\u{0} 2").unwrap(),
            "line 1\nline 2"
        );
        assert!(message_text(" \n").is_err());
        assert!(valid_details(serde_json::json!({"n": 1})).is_ok());
        let huge = serde_json::json!({ "text": "x".repeat(MAX_DETAILS_BYTES) });
        assert!(valid_details(huge).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_clock_follows_tokio_time() {
        let clock = Clock::new();
        let start = clock.now_ms();
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(clock.now_ms(), start + 5_000);
    }
}
