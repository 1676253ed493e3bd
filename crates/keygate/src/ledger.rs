//! The usage ledger: one row per request, accepted or refused.
//!
//! A single writer task group-commits rows: each transaction takes every row
//! waiting, so under load one commit serves many requests. A request whose
//! response completes waits for its row's commit before the last bytes go
//! out; a response the client received in full is therefore in the ledger
//! even if the gateway is killed the next instant.

use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// One ledger row.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
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

/// Client-supplied text made safe for every store: no control characters
/// (PostgreSQL refuses NUL in text), bounded length.
pub fn clean_text(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(256).collect()
}

struct Job {
    event: UsageEvent,
    committed: Option<oneshot::Sender<()>>,
}

/// Handle to the ledger writer. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Ledger {
    jobs: mpsc::Sender<Job>,
    committed: watch::Receiver<u64>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("event", &self.event.request_id)
            .finish()
    }
}

/// Most rows in one transaction.
const MAX_BATCH: usize = 256;
/// Rows waiting before producers are made to wait (back-pressure).
const QUEUE: usize = 16_384;

impl Ledger {
    /// Start the writer on `store`. The returned handle finishes once every
    /// [`Ledger`] clone is dropped and every queued row is committed.
    pub fn start(store: Arc<dyn Store>) -> (Ledger, tokio::task::JoinHandle<()>) {
        let (jobs, rx) = mpsc::channel(QUEUE);
        let (committed_tx, committed) = watch::channel(0);
        let writer = tokio::spawn(write_loop(store, rx, committed_tx));
        (Ledger { jobs, committed }, writer)
    }

    /// Rows committed since start; lets tests and metrics wait on the ledger
    /// instead of polling the store.
    pub fn committed(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }

    /// Queue a row without waiting for its commit (refusals).
    pub async fn record(&self, event: UsageEvent) {
        if self
            .jobs
            .send(Job {
                event,
                committed: None,
            })
            .await
            .is_err()
        {
            tracing::error!("ledger writer has stopped; a usage row was not recorded");
        }
    }

    /// Queue a row and wait until it is committed, or until `patience` runs
    /// out (the store is down): the row stays queued and is written when the
    /// store returns, but the client is not held hostage to it.
    pub async fn record_durably(&self, event: UsageEvent, patience: Duration) {
        let (tx, rx) = oneshot::channel();
        let request_id = event.request_id.clone();
        if self
            .jobs
            .send(Job {
                event,
                committed: Some(tx),
            })
            .await
            .is_err()
        {
            tracing::error!("ledger writer has stopped; a usage row was not recorded");
            return;
        }
        if tokio::time::timeout(patience, rx).await.is_err() {
            tracing::warn!(%request_id, "ledger commit is slow; answering before it completes");
        }
    }
}

async fn write_loop(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Job>,
    committed: watch::Sender<u64>,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut events: Vec<UsageEvent> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        events.clear();
        events.extend(batch.iter().map(|j| j.event.clone()));
        write_batch(store.as_ref(), &events).await;
        committed.send_modify(|n| *n += events.len() as u64);
        for job in batch.drain(..) {
            if let Some(tx) = job.committed {
                let _ = tx.send(());
            }
        }
    }
}

/// Write one batch, retrying while the store is unreachable. A batch the
/// database refuses outright (a constraint or encoding it rejects) is split
/// into single rows so that one bad row cannot hold up the others; a single
/// row it refuses is logged with its request id and skipped.
async fn write_batch(store: &dyn Store, events: &[UsageEvent]) {
    let mut backoff = Duration::from_millis(50);
    loop {
        match store.append_usage(events).await {
            Ok(()) => return,
            Err(crate::store::StoreError::Database(sqlx::Error::Database(error))) => {
                if let [event] = events {
                    tracing::error!(request_id = %event.request_id, error = %error, "ledger row refused by the database; skipped");
                    return;
                }
                for event in events {
                    Box::pin(write_batch(store, std::slice::from_ref(event))).await;
                }
                return;
            }
            Err(error) => {
                tracing::error!(error = %error, rows = events.len(), "ledger write failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
