//! The usage ledger: one row per request, accepted or refused.
//!
//! Recording a row appends it to a local journal file with one `write`
//! before the response's last bytes go out; a write that returned is in the
//! kernel's hands and survives the gateway being killed (SIGKILL). A writer
//! task then moves rows into the store in batches, off the request path, and
//! a journal segment is deleted once all its rows are committed. On start, a
//! journal left by a killed process is replayed into the store (inserts are
//! idempotent by request id) before serving.

mod journal;
pub mod pricing;
mod writer;

use crate::store::Store;
use journal::Journal;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

/// One ledger row.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct UsageEvent {
    /// Gateway request id (also the `x-request-id` response header).
    pub request_id: String,
    /// Arrival, Unix ms.
    pub ts: i64,
    /// The key, once identified.
    pub key_id: Option<String>,
    /// Route, e.g. `/v1/chat/completions`.
    pub route: String,
    /// Model as requested.
    pub model: Option<String>,
    /// Provider it was routed to.
    pub provider: Option<String>,
    /// Prompt (input) tokens, from the provider's usage.
    pub prompt_tokens: i64,
    /// Completion (output) tokens, from the provider's usage.
    pub completion_tokens: i64,
    /// Of `prompt_tokens`, those the provider read from its prompt cache.
    /// Rows journaled before keygate recorded money read as 0 (so do the
    /// four fields below as 0 or absent).
    #[serde(default)]
    pub cached_tokens: i64,
    /// What the request cost, in nanodollars (billionths of a US dollar),
    /// by the price table in force when it was answered.
    #[serde(default)]
    pub cost_nanos: i64,
    /// The key's owner when the request was made.
    #[serde(default)]
    pub owner: Option<String>,
    /// The key's project when the request was made.
    #[serde(default)]
    pub project_id: Option<String>,
    /// The key's organisation when the request was made.
    #[serde(default)]
    pub org_id: Option<String>,
    /// The access token the request presented (its `jti`), when it came
    /// with a token rather than a key; `key_id` is then the credential the
    /// token was minted under, which its spend counts against.
    #[serde(default)]
    pub token_id: Option<String>,
    /// Status returned to the client (499: client went away).
    pub status: u16,
    /// Refusal or failure reason.
    pub error_code: Option<String>,
    /// Time to the end of the response, ms.
    pub latency_ms: i64,
    /// Whether the response was streamed.
    pub streamed: bool,
    /// Client address.
    pub source_ip: Option<String>,
    /// Client `User-Agent`, bounded.
    pub user_agent: Option<String>,
}

impl UsageEvent {
    /// Attribute the request to `key`: its id and, as they are now, its
    /// owner, project and organisation (budgets and reports count spend by
    /// who held the key when it was spent).
    pub fn set_key(&mut self, key: &crate::auth::KeyEntry) {
        self.key_id = Some(key.id.clone());
        self.owner = key.owner.as_deref().map(str::to_string);
        self.project_id = key.project_id.as_deref().map(str::to_string);
        self.org_id = key.org_id.as_deref().map(str::to_string);
    }
}

/// Client-supplied text made safe for every store: no control characters
/// (PostgreSQL refuses NUL in text), bounded length.
pub fn clean_text(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(256).collect()
}

/// The ledger could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The journal directory or a segment could not be used.
    #[error("ledger journal {path}: {source}")]
    Journal {
        /// File or directory.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Replaying a journal into the store failed.
    #[error("replaying the ledger journal: {0}")]
    Replay(#[from] crate::store::StoreError),
}

// Rows dominate the traffic; boxing them would add an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Message {
    Row { event: UsageEvent, segment: u64 },
    Flush(oneshot::Sender<()>),
}

/// Handle to the ledger. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Ledger {
    messages: mpsc::Sender<Message>,
    journal: Arc<Journal>,
    committed: watch::Receiver<u64>,
    /// Anomaly detection, offered every recorded row (shared by clones).
    observer: Arc<std::sync::OnceLock<crate::anomaly::Feed>>,
    /// Metrics, counting every recorded row (shared by clones).
    metrics: Arc<std::sync::OnceLock<Arc<crate::telemetry::metrics::Metrics>>>,
    /// Rows accepted and committed, for the lag gauges.
    lag: Arc<LagCounters>,
}

/// What the writer has not yet moved into the store (atomics: the request
/// path adds one increment, the writer two stores per batch).
#[derive(Debug, Default)]
pub(crate) struct LagCounters {
    /// Rows recorded (journaled and queued).
    accepted: std::sync::atomic::AtomicU64,
    /// Rows the writer is done with (committed, or refused by the store).
    committed: std::sync::atomic::AtomicU64,
    /// When the oldest row of the batch being written was recorded, Unix
    /// ms; 0 while no batch is in hand.
    oldest_ms: std::sync::atomic::AtomicI64,
}

/// The ledger's backlog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lag {
    /// Rows recorded but not yet written to the store.
    pub pending: u64,
    /// Age of the oldest such row, ms (0 when none; a row that waits in the
    /// queue while the writer is idle for an instant also reads as 0).
    pub oldest_age_ms: i64,
}

/// Rows waiting for the store before producers are made to wait.
const QUEUE: usize = 16_384;

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Row { event, .. } => f.debug_tuple("Row").field(&event.request_id).finish(),
            Message::Flush(_) => f.write_str("Flush"),
        }
    }
}

impl Ledger {
    /// Replay any journal a previous process left in `journal_dir`, then
    /// start the writer on `store`. The returned handle finishes once every
    /// [`Ledger`] clone is dropped and every row is committed.
    pub async fn start(
        store: Arc<dyn Store>,
        journal_dir: &Path,
    ) -> Result<(Ledger, tokio::task::JoinHandle<()>), LedgerError> {
        let replayed = journal::replay_orphans(store.as_ref(), journal_dir).await?;
        if replayed > 0 {
            tracing::info!(
                rows = replayed,
                "ledger rows recovered from the journal of a stopped process"
            );
        }
        let journal = Arc::new(Journal::open(journal_dir)?);
        let (messages, rx) = mpsc::channel(QUEUE);
        let (committed_tx, committed) = watch::channel(0);
        let lag = Arc::new(LagCounters::default());
        let writer = tokio::spawn(writer::run(
            store,
            Arc::clone(&journal),
            rx,
            committed_tx,
            Arc::clone(&lag),
        ));
        Ok((
            Ledger {
                messages,
                journal,
                committed,
                observer: Arc::new(std::sync::OnceLock::new()),
                metrics: Arc::new(std::sync::OnceLock::new()),
                lag,
            },
            writer,
        ))
    }

    /// Offer every row recorded from now on, by this handle and every
    /// clone, to anomaly detection (once; a second call is ignored).
    pub fn observe(&self, feed: crate::anomaly::Feed) {
        if self.observer.set(feed).is_err() {
            tracing::debug!("the ledger already feeds anomaly detection");
        }
    }

    /// Count every row recorded from now on, by this handle and every
    /// clone, in `metrics` (once; a second call is ignored).
    pub fn count_in(&self, metrics: Arc<crate::telemetry::metrics::Metrics>) {
        if self.metrics.set(metrics).is_err() {
            tracing::debug!("the ledger already feeds metrics");
        }
    }

    /// The writer's backlog at `now_ms`.
    pub fn lag(&self, now_ms: i64) -> Lag {
        use std::sync::atomic::Ordering;
        let committed = self.lag.committed.load(Ordering::Relaxed);
        let pending = self
            .lag
            .accepted
            .load(Ordering::Relaxed)
            .saturating_sub(committed);
        let oldest = self.lag.oldest_ms.load(Ordering::Relaxed);
        Lag {
            pending,
            oldest_age_ms: if pending > 0 && oldest > 0 {
                now_ms.saturating_sub(oldest).max(0)
            } else {
                0
            },
        }
    }

    /// Record a row. When this returns the row is in the journal: it
    /// survives a crash of the gateway and reaches the store shortly; it
    /// has been offered to anomaly detection (which never waits) and
    /// counted in the metrics.
    pub async fn record(&self, event: UsageEvent) {
        if let Some(feed) = self.observer.get() {
            feed.offer(&event);
        }
        if let Some(metrics) = self.metrics.get() {
            metrics.observe(&event);
        }
        self.lag
            .accepted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let segment = match self.journal.append(&event) {
            Ok(segment) => segment,
            Err(e) => {
                // The row still goes to the store; only crash safety is lost.
                tracing::error!(error = %e, request_id = %event.request_id, "ledger journal write failed");
                journal::NO_SEGMENT
            }
        };
        if self
            .messages
            .send(Message::Row { event, segment })
            .await
            .is_err()
        {
            tracing::error!("ledger writer has stopped; a usage row is only in the journal");
        }
    }

    /// Wait until every row recorded before this call is in the store, so
    /// that reports read what this node has answered; at most a few seconds,
    /// so a report still answers while the store is unreachable.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.messages.send(Message::Flush(tx)).await.is_ok()
            && tokio::time::timeout(std::time::Duration::from_secs(5), rx)
                .await
                .is_err()
        {
            tracing::warn!("ledger flush timed out; the report may miss the latest rows");
        }
    }

    /// Rows committed to the store since start; lets tests and metrics wait
    /// on the ledger instead of polling the store.
    pub fn committed(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }
}
