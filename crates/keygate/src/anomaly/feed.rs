//! The detectors' feed: the ledger offers every row it records (accepted or
//! refused) to a bounded queue, and a lockout that has just begun is sent
//! the same way. Offering never waits: when the detector task falls behind
//! and the queue is full, the row is dropped and counted (and the count
//! logged), so a request is never held up by anomaly detection.

use super::lockout::LockedOut;
use crate::alerts::Clock;
use crate::ledger::UsageEvent;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// What the detectors learn from one ledger row of an identified key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// The key (or the key a token was minted under).
    pub key_id: String,
    /// The row's own time (Unix ms, wall clock): the history read from the
    /// store for a key seen for the first time stops before it.
    pub ledger_ts: i64,
    /// When the detectors saw it, on their clock (tokio's, so tests can
    /// pause it).
    pub at: i64,
    /// The client's address.
    pub source: Option<IpAddr>,
    /// What it cost, nanodollars.
    pub cost_nanos: i64,
}

/// One item of the queue.
#[derive(Clone, Debug)]
pub enum Signal {
    /// A key was used.
    Used(Observation),
    /// A source was just locked out.
    LockedOut(LockedOut),
}

/// Counters shared by the feed and the detector task.
#[derive(Debug, Default)]
pub struct Counters {
    /// Signals queued.
    pub queued: AtomicU64,
    /// Signals dropped because the queue was full.
    pub dropped: AtomicU64,
}

/// The sending side; cheap to clone.
#[derive(Clone, Debug)]
pub struct Feed {
    tx: mpsc::Sender<Signal>,
    clock: Clock,
    counters: Arc<Counters>,
    processed: watch::Receiver<u64>,
}

impl Feed {
    /// A feed of `capacity` signals on `clock`; the receiving side, and the
    /// sender of how many signals have been handled.
    pub fn new(
        capacity: usize,
        clock: Clock,
    ) -> (Feed, mpsc::Receiver<Signal>, watch::Sender<u64>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let (processed_tx, processed) = watch::channel(0);
        (
            Feed {
                tx,
                clock,
                counters: Arc::new(Counters::default()),
                processed,
            },
            rx,
            processed_tx,
        )
    }

    /// Offer a recorded ledger row. Rows of no identified key teach the
    /// per-key detectors nothing and are skipped.
    pub fn offer(&self, event: &UsageEvent) {
        let Some(key_id) = &event.key_id else {
            return;
        };
        self.send(Signal::Used(Observation {
            key_id: key_id.clone(),
            ledger_ts: event.ts,
            at: self.clock.now_ms(),
            source: event.source_ip.as_deref().and_then(|s| s.parse().ok()),
            cost_nanos: event.cost_nanos,
        }));
    }

    /// Send a signal without waiting; count it as dropped when the queue
    /// is full (or the detector task has stopped).
    pub fn send(&self, signal: Signal) {
        self.counters.queued.fetch_add(1, Ordering::AcqRel);
        if self.tx.try_send(signal).is_err() {
            self.counters.queued.fetch_sub(1, Ordering::AcqRel);
            let dropped = self.counters.dropped.fetch_add(1, Ordering::AcqRel) + 1;
            if dropped.is_power_of_two() || dropped.is_multiple_of(10_000) {
                tracing::warn!(
                    dropped_total = dropped,
                    "anomaly detection is behind: ledger rows dropped from its queue (requests are unaffected)"
                );
            }
        }
    }

    /// Signals dropped so far.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Acquire)
    }

    /// Wait until every signal queued before this call has been handled
    /// (tests, and reports that want the detectors current).
    pub async fn settled(&self) {
        let target = self.counters.queued.load(Ordering::Acquire);
        let mut processed = self.processed.clone();
        // The task stopping (sender dropped) ends the wait too.
        let _ = processed.wait_for(|n| *n >= target).await;
    }

    /// The clock the detectors reckon with.
    pub fn clock(&self) -> Clock {
        self.clock
    }
}
