//! The counters behind the limits: budget reservations, request and token
//! rates, and requests in flight. One node keeps them in process
//! ([`LocalCounters`]); several nodes share them in Redis
//! (`redis_counters::RedisCounters`). Both implement [`Counters`] with the
//! same meaning, checked by one conformance suite (`tests/it/counters.rs`).
//!
//! # Meaning
//!
//! An admission is all or nothing: every concurrency slot, rate slot and
//! budget slot it names must have room, else nothing is taken and the first
//! refusal (in the order concurrency, rate, budget) is returned.
//!
//! **Concurrency** slot `c` with maximum `m`: admitted while fewer than `m`
//! leases hold it; the settlement releases the lease. A lease left by a
//! crashed node expires `lease_ttl_ms` after admission (Redis), or with the
//! process (in process).
//!
//! **Rate** slot (GCRA, "generic cell rate algorithm") with `L` units per
//! minute keeps a theoretical arrival time `tat` in microseconds. Each unit
//! costs `60_000_000 / L` µs (computed as `ceil(cost * 60_000_000 / L)` for a
//! request of `cost` units). With `t0 = max(tat, now)` and
//! `new = t0 + that`, the request is admitted iff `new - now <= 60_000_000`
//! (a full minute's worth of units may be used at once), and then
//! `tat = new`. Afterwards `remaining = floor((60_000_000 - (new - now)) * L
//! / 60_000_000)` and `reset_ms = ceil((new - now) / 1000)` (until the slot
//! is full again). A refusal's `retry_after_ms = ceil((new - now -
//! 60_000_000) / 1000)`, or `None` when `cost > L` (it never fits).
//! Tolerance: over any interval of `t` seconds at most `L + L * t / 60`
//! units are admitted.
//!
//! **Budget** slot with `limit` keeps `spent` (settled spend in the window)
//! and `reserved` (what admitted, unsettled requests may still cost). A
//! reservation of `r` is admitted iff `spent + reserved < limit` and
//! `spent + reserved + r <= limit`. A slot the counters have not seen (or
//! whose counter expired) starts from [`SpendSource::spent_since`] the
//! window's start. The settlement removes the lease's reservation and adds
//! the real spend. A reservation left by a crashed node expires
//! `lease_ttl_ms` after admission (Redis) or with the process (in process).
//! Counter names carry the budget's window and limit version, so a new
//! period or a changed limit starts a fresh counter.

use super::limits::{Nanos, Subject};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One budget an admission reserves against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetSlot {
    /// Counter name: subject, window and limit version
    /// (`key:key_1:2026-11:1732950000000`).
    pub counter: String,
    /// Whose budget: where its spend is read from the ledger.
    pub subject: Subject,
    /// Start of the window, Unix ms (inclusive).
    pub since_ms: i64,
    /// End of the window, Unix ms (exclusive); `None`: never ends. A counter
    /// may be forgotten after its window ends.
    pub until_ms: Option<i64>,
    /// Most that may be spent in the window.
    pub limit: Nanos,
}

/// One rate an admission takes from, or a settlement corrects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateSlot {
    /// Counter name (`key:key_1:rpm`).
    pub counter: String,
    /// Units allowed per minute (`L`).
    pub per_minute: u64,
    /// Units this request takes (admission), or the correction (settlement):
    /// negative gives units back, positive takes more.
    pub cost: i64,
}

/// A cap on requests in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConcurrencySlot {
    /// Counter name (`key:key_1:concurrent`).
    pub counter: String,
    /// Most leases at once.
    pub max: u32,
}

/// What one request asks for.
#[derive(Debug)]
pub struct Admission<'a> {
    /// Unique per request (its request id): names its leases.
    pub lease: &'a str,
    /// Unix ms.
    pub now_ms: i64,
    /// How long a crashed node's leases and reservations hold.
    pub lease_ttl_ms: i64,
    /// Concurrency caps to hold.
    pub concurrency: &'a [ConcurrencySlot],
    /// Rates to take from.
    pub rates: &'a [RateSlot],
    /// Budgets to reserve against.
    pub budgets: &'a [BudgetSlot],
    /// The request's worst-case cost, reserved against every budget.
    pub reserve: Nanos,
}

/// A rate's state after an admission, for `x-ratelimit-*` headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateState {
    /// Units per minute.
    pub limit: u64,
    /// Units that could still be taken at once.
    pub remaining: u64,
    /// Until the slot is full again, ms.
    pub reset_ms: i64,
}

/// An admitted request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admitted {
    /// Per rate slot, in the admission's order.
    pub rates: Vec<RateState>,
}

/// Why a request was not admitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `concurrency[index]` is full.
    Concurrency {
        /// Slot index.
        index: usize,
    },
    /// `rates[index]` has no room.
    Rate {
        /// Slot index.
        index: usize,
        /// When it would have room; `None`: the request is larger than the
        /// whole per-minute rate.
        retry_after_ms: Option<i64>,
    },
    /// `budgets[index]` cannot take the reservation.
    Budget {
        /// Slot index.
        index: usize,
        /// Settled spend in the window.
        spent: Nanos,
        /// Held by requests in flight.
        reserved: Nanos,
    },
}

/// The counters could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("limit counters unavailable: {0}")]
pub struct CounterError(pub String);

/// The outcome of an admission that did not pass.
#[derive(Debug)]
pub enum AdmitError {
    /// A limit refused the request.
    Refused(Refusal),
    /// The counters failed: the request is refused (limits fail closed).
    Backend(CounterError),
}

impl From<CounterError> for AdmitError {
    fn from(error: CounterError) -> Self {
        AdmitError::Backend(error)
    }
}

/// What one finished request gives back and spends.
#[derive(Debug)]
pub struct Settlement<'a> {
    /// The admission's lease.
    pub lease: &'a str,
    /// Unix ms.
    pub now_ms: i64,
    /// Concurrency slots to release.
    pub concurrency: &'a [ConcurrencySlot],
    /// Rate corrections (`cost`: negative gives back).
    pub rates: &'a [RateSlot],
    /// Budgets the admission reserved against.
    pub budgets: &'a [BudgetSlot],
    /// What the request really cost.
    pub spent: Nanos,
}

/// After a settlement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settled {
    /// Per budget slot, settled spend in the window now (`None`: the counter
    /// was gone, e.g. its window ended).
    pub spent: Vec<Option<Nanos>>,
}

/// Where a budget counter's starting point comes from: the ledger.
#[async_trait]
pub trait SpendSource: Send + Sync + std::fmt::Debug {
    /// Spend the ledger holds for `subject` at or after `since_ms`.
    async fn spent_since(&self, subject: &Subject, since_ms: i64) -> Result<Nanos, CounterError>;
}

/// Counters for rates, concurrency and budgets.
#[async_trait]
pub trait Counters: Send + Sync + std::fmt::Debug {
    /// Admit a request or say which limit refuses it.
    async fn admit(&self, admission: &Admission<'_>) -> Result<Admitted, AdmitError>;
    /// Release a request's leases and reservation and record its spend.
    async fn settle(&self, settlement: &Settlement<'_>) -> Result<Settled, CounterError>;
    /// `in-process` or `redis`, for logs and health.
    fn backend(&self) -> &'static str;
}

/// One minute in µs: the GCRA window.
pub const MINUTE_US: i128 = 60_000_000;

/// The µs `cost` units take at `per_minute` units per minute (rounded up,
/// so rounding never admits more than the rate).
pub fn gcra_increment(cost: i64, per_minute: u64) -> i128 {
    let per_minute = i128::from(per_minute.max(1));
    let cost = i128::from(cost);
    if cost >= 0 {
        (cost * MINUTE_US + per_minute - 1) / per_minute
    } else {
        -((-cost * MINUTE_US) / per_minute)
    }
}

/// A GCRA step: the new `tat` if admitted, or the retry delay.
/// `tat` and `now` in µs.
pub fn gcra_take(
    tat: i128,
    now: i128,
    cost: i64,
    per_minute: u64,
) -> Result<(i128, RateState), Option<i64>> {
    if cost > 0 && cost as u64 > per_minute {
        return Err(None);
    }
    let start = tat.max(now);
    let new = start + gcra_increment(cost, per_minute);
    let used = new - now;
    if used > MINUTE_US {
        let wait = (used - MINUTE_US + 999) / 1000;
        return Err(Some(i64::try_from(wait).unwrap_or(i64::MAX)));
    }
    Ok((new, gcra_state(new, now, per_minute)))
}

/// A slot's state for headers.
pub fn gcra_state(tat: i128, now: i128, per_minute: u64) -> RateState {
    let used = (tat - now).max(0);
    let remaining = (MINUTE_US - used).max(0) * i128::from(per_minute) / MINUTE_US;
    RateState {
        limit: per_minute,
        remaining: u64::try_from(remaining).unwrap_or(0),
        reset_ms: i64::try_from((used + 999) / 1000).unwrap_or(i64::MAX),
    }
}

#[derive(Debug)]
struct BudgetCounter {
    spent: Nanos,
    /// Reservations by lease.
    reserved: HashMap<String, Nanos>,
    reserved_total: Nanos,
    until_ms: Option<i64>,
}

#[derive(Debug, Default)]
struct LocalState {
    budgets: HashMap<String, BudgetCounter>,
    /// GCRA theoretical arrival times, µs.
    rates: HashMap<String, i128>,
    /// Leases holding each concurrency slot.
    concurrency: HashMap<String, u32>,
    admissions: u64,
}

/// Counters in this process: exact for one node; lost with the process,
/// which releases every reservation and lease a crash interrupted (budgets
/// restart from the ledger).
#[derive(Debug)]
pub struct LocalCounters {
    state: Mutex<LocalState>,
    spend: Arc<dyn SpendSource>,
    /// Budget counters being loaded from the ledger: one load per counter.
    loading: tokio::sync::Mutex<()>,
}

/// How often (in admissions) ended windows and idle slots are swept.
const SWEEP_EVERY: u64 = 4096;

impl LocalCounters {
    /// Counters whose budgets start from `spend`.
    pub fn new(spend: Arc<dyn SpendSource>) -> LocalCounters {
        LocalCounters {
            state: Mutex::new(LocalState::default()),
            spend,
            loading: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LocalState> {
        // A panic while holding the lock cannot leave the maps half-updated
        // (every update is a single insert or assignment), so carry on.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Make sure every budget counter of `slots` exists, loading missing
    /// ones from the ledger.
    async fn load(&self, slots: &[BudgetSlot]) -> Result<(), CounterError> {
        let missing = |state: &LocalState| {
            slots
                .iter()
                .filter(|s| !state.budgets.contains_key(&s.counter))
                .cloned()
                .collect::<Vec<_>>()
        };
        if missing(&self.lock()).is_empty() {
            return Ok(());
        }
        // One loader at a time, so two first requests do not both load.
        let _loading = self.loading.lock().await;
        let todo = missing(&self.lock());
        for slot in todo {
            let spent = self.spend.spent_since(&slot.subject, slot.since_ms).await?;
            self.lock()
                .budgets
                .entry(slot.counter.clone())
                .or_insert(BudgetCounter {
                    spent,
                    reserved: HashMap::new(),
                    reserved_total: 0,
                    until_ms: slot.until_ms,
                });
        }
        Ok(())
    }
}

fn sweep(state: &mut LocalState, now_ms: i64) {
    let now_us = i128::from(now_ms) * 1000;
    // A window is kept a minute past its end for settlements in flight.
    state
        .budgets
        .retain(|_, b| b.until_ms.is_none_or(|end| end + 60_000 > now_ms) || b.reserved_total > 0);
    state.rates.retain(|_, tat| *tat > now_us);
    state.concurrency.retain(|_, n| *n > 0);
}

#[async_trait]
impl Counters for LocalCounters {
    async fn admit(&self, a: &Admission<'_>) -> Result<Admitted, AdmitError> {
        self.load(a.budgets).await?;
        let now_us = i128::from(a.now_ms) * 1000;
        let mut state = self.lock();
        state.admissions += 1;
        if state.admissions.is_multiple_of(SWEEP_EVERY) {
            sweep(&mut state, a.now_ms);
        }
        for (index, slot) in a.concurrency.iter().enumerate() {
            if state.concurrency.get(&slot.counter).copied().unwrap_or(0) >= slot.max {
                return Err(AdmitError::Refused(Refusal::Concurrency { index }));
            }
        }
        let mut tats = Vec::with_capacity(a.rates.len());
        let mut rates = Vec::with_capacity(a.rates.len());
        for (index, slot) in a.rates.iter().enumerate() {
            let tat = state.rates.get(&slot.counter).copied().unwrap_or(now_us);
            match gcra_take(tat, now_us, slot.cost, slot.per_minute) {
                Ok((new, rate)) => {
                    tats.push(new);
                    rates.push(rate);
                }
                Err(retry_after_ms) => {
                    return Err(AdmitError::Refused(Refusal::Rate {
                        index,
                        retry_after_ms,
                    }))
                }
            }
        }
        for (index, slot) in a.budgets.iter().enumerate() {
            let Some(counter) = state.budgets.get(&slot.counter) else {
                return Err(AdmitError::Backend(CounterError(
                    "budget counter vanished while admitting".into(),
                )));
            };
            let held = counter.spent.saturating_add(counter.reserved_total);
            if held >= slot.limit || held.saturating_add(a.reserve) > slot.limit {
                return Err(AdmitError::Refused(Refusal::Budget {
                    index,
                    spent: counter.spent,
                    reserved: counter.reserved_total,
                }));
            }
        }
        // Every limit has room: take it all.
        for slot in a.concurrency {
            *state.concurrency.entry(slot.counter.clone()).or_default() += 1;
        }
        for (slot, tat) in a.rates.iter().zip(tats) {
            state.rates.insert(slot.counter.clone(), tat);
        }
        for slot in a.budgets {
            if let Some(counter) = state.budgets.get_mut(&slot.counter) {
                *counter.reserved.entry(a.lease.to_string()).or_default() += a.reserve;
                counter.reserved_total += a.reserve;
            }
        }
        Ok(Admitted { rates })
    }

    async fn settle(&self, s: &Settlement<'_>) -> Result<Settled, CounterError> {
        let now_us = i128::from(s.now_ms) * 1000;
        let mut state = self.lock();
        for slot in s.concurrency {
            if let Some(n) = state.concurrency.get_mut(&slot.counter) {
                *n = n.saturating_sub(1);
            }
        }
        for slot in s.rates {
            if slot.cost == 0 {
                continue;
            }
            let tat = state.rates.get(&slot.counter).copied().unwrap_or(now_us);
            let corrected = tat.max(now_us) + gcra_increment(slot.cost, slot.per_minute);
            // Giving units back never moves the slot below full.
            state
                .rates
                .insert(slot.counter.clone(), corrected.max(now_us));
        }
        let spent = s
            .budgets
            .iter()
            .map(|slot| {
                let counter = state.budgets.get_mut(&slot.counter)?;
                if let Some(held) = counter.reserved.remove(s.lease) {
                    counter.reserved_total -= held;
                }
                counter.spent = counter.spent.saturating_add(s.spent);
                Some(counter.spent)
            })
            .collect();
        Ok(Settled { spent })
    }

    fn backend(&self) -> &'static str {
        "in-process"
    }
}
