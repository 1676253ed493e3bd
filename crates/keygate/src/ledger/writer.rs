//! Moves journaled rows into the store in batches, off the request path.

use super::journal::{Journal, NO_SEGMENT};
use super::{Message, UsageEvent};
use crate::store::Store;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Most rows in one transaction.
const MAX_BATCH: usize = 512;
/// How long a batch waits for company: rows are already safe in the
/// journal, so a short wait buys one transaction per many requests.
const LINGER: Duration = Duration::from_millis(5);

pub(super) async fn run(
    store: Arc<dyn Store>,
    journal: Arc<Journal>,
    mut rx: mpsc::Receiver<Message>,
    committed: watch::Sender<u64>,
    lag: Arc<super::LagCounters>,
) {
    let mut events: Vec<UsageEvent> = Vec::with_capacity(MAX_BATCH);
    let mut segments: HashMap<u64, u64> = HashMap::new();
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    let mut open = true;
    while open {
        match rx.recv().await {
            None => break,
            Some(message) => take(message, &mut events, &mut segments, &mut flushes),
        }
        // Linger without waiting on the channel: a receiver parked in
        // `recv` would be woken (across threads) by every request's send.
        if flushes.is_empty() {
            tokio::time::sleep(LINGER).await;
        }
        while events.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(message) => take(message, &mut events, &mut segments, &mut flushes),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        // Rows arrive in order: the batch's first is the oldest not yet in
        // the store (for the lag gauge; when it was recorded).
        if let Some(first) = events.first() {
            lag.oldest_ms.store(
                first.ts.saturating_add(first.latency_ms).max(1),
                Ordering::Relaxed,
            );
        }
        write_batch(store.as_ref(), &events).await;
        segments.remove(&NO_SEGMENT);
        journal.committed(&segments);
        lag.committed
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        lag.oldest_ms.store(0, Ordering::Relaxed);
        committed.send_modify(|n| *n += events.len() as u64);
        events.clear();
        segments.clear();
        for flush in flushes.drain(..) {
            let _ = flush.send(());
        }
    }
    journal.close();
}

fn take(
    message: Message,
    events: &mut Vec<UsageEvent>,
    segments: &mut HashMap<u64, u64>,
    flushes: &mut Vec<oneshot::Sender<()>>,
) {
    match message {
        Message::Row { event, segment } => {
            events.push(event);
            *segments.entry(segment).or_default() += 1;
        }
        Message::Flush(done) => flushes.push(done),
    }
}

/// Write one batch, retrying while the store is unreachable. A batch the
/// database refuses outright (a constraint or encoding it rejects) is split
/// into single rows so that one bad row cannot hold up the others; a single
/// row it refuses is logged with its request id and skipped.
async fn write_batch(store: &dyn Store, events: &[UsageEvent]) {
    if events.is_empty() {
        return;
    }
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
