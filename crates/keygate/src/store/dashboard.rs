//! What the dashboard reads. Usage comes from an hourly rollup of the
//! ledger (maintained in the same transaction as the ledger rows, counting
//! each request once even when a batch is retried), so the overview, the
//! charts and the usage explorer read aggregates, never the whole ledger;
//! keys come a page at a time, by keyset pagination on indexed columns.

use super::{KeyRecord, StoreError, UsageFilter, UsageGroup, UsageTotal};
use crate::auth::KeyKind;
use std::collections::HashMap;

/// Width of a rollup bucket: one hour (Unix ms). Series buckets are whole
/// multiples of it.
pub const ROLLUP_BUCKET_MS: i64 = 3_600_000;

/// The tenancy a dashboard reader sees: its admin credential's scope.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantScope {
    /// Only this organisation (`None`: the whole instance).
    pub org_id: Option<String>,
    /// Only this project (`None`: the whole organisation or instance).
    pub project_id: Option<String>,
}

/// What a usage series is split by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeriesSplit {
    /// One line: everything in scope.
    Total,
    /// One line per provider.
    Provider,
    /// One line per model, as requested.
    Model,
    /// One line per project.
    Project,
}

/// Usage in one bucket (of one group, when split).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct UsagePoint {
    /// Start of the bucket, Unix ms (for a summary: the range's start).
    pub bucket_ms: i64,
    /// The group's value (provider, model or project); `None` when not
    /// split, or for rows without one (refusals before routing).
    pub group: Option<String>,
    /// Requests, accepted or refused.
    pub requests: i64,
    /// Requests refused or failed (status >= 400).
    pub errors: i64,
    /// Prompt tokens (cached ones included).
    pub prompt_tokens: i64,
    /// Of them, read from the provider's prompt cache.
    pub cached_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
    /// Cost in nanodollars.
    pub cost_nanos: i64,
    /// Sum of the requests' latencies in ms (divide by `requests` for the
    /// mean).
    pub latency_ms_sum: i64,
}

/// A key's state at a given time, for filtering lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// Neither revoked, suspended nor expired.
    Active,
    /// Suspended (and not revoked).
    Suspended,
    /// Revoked.
    Revoked,
    /// Past its expiry (and not revoked).
    Expired,
}

/// The order of a key list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySort {
    /// Most recently created first.
    Newest,
    /// Oldest current secret first (`COALESCE(rotated_at, created_at)`
    /// ascending): the keys most overdue for rotation.
    OldestSecret,
    /// By name, then id.
    Name,
}

/// One page of a key list.
#[derive(Clone, Debug)]
pub struct KeyPageQuery {
    /// Only keys of this kind.
    pub kind: KeyKind,
    /// Only keys in this scope.
    pub scope: TenantScope,
    /// Only keys whose id, name or owner starts with this text.
    pub search: Option<String>,
    /// Only keys in this state at `now`.
    pub state: Option<KeyState>,
    /// The order.
    pub sort: KeySort,
    /// Opaque cursor from the previous page's [`KeyPage::next`].
    pub after: Option<String>,
    /// Page size.
    pub limit: i64,
    /// Unix ms, for `state`.
    pub now: i64,
}

/// A page of keys and the cursor of the next one.
#[derive(Clone, Debug)]
pub struct KeyPage {
    /// The keys, in the requested order.
    pub keys: Vec<KeyRecord>,
    /// Cursor for the next page; `None` on the last one.
    pub next: Option<String>,
}

/// How many keys of a kind are in a scope, by state at a given time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct KeyCounts {
    /// Every key, whatever its state.
    pub total: i64,
    /// Neither revoked, suspended nor expired.
    pub active: i64,
    /// Suspended, not revoked.
    pub suspended: i64,
    /// Revoked.
    pub revoked: i64,
    /// Expired, not revoked.
    pub expired: i64,
}

/// A key's recent use, from the ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyActivity {
    /// Unix ms of its most recent request, if any.
    pub last_used: Option<i64>,
    /// Requests at or after the `since` asked for.
    pub requests: i64,
    /// Cost at or after the `since` asked for, nanodollars.
    pub cost_nanos: i64,
}

/// Persistence the dashboard reads; every [`Store`](super::Store)
/// implements it.
#[async_trait::async_trait]
pub trait DashboardStore {
    /// Usage in scope over `[since, until)` (Unix ms, hour-aligned by the
    /// caller), in buckets of `bucket_ms` (a multiple of
    /// [`ROLLUP_BUCKET_MS`]) split as asked, ascending by bucket then group.
    /// Buckets without use are absent.
    async fn usage_series(
        &self,
        scope: &TenantScope,
        since: i64,
        until: i64,
        bucket_ms: i64,
        split: SeriesSplit,
    ) -> Result<Vec<UsagePoint>, StoreError>;

    /// Usage in scope over `[since, until)`, summed (`bucket_ms` = `since`,
    /// `group` = `None`).
    async fn usage_summary(
        &self,
        scope: &TenantScope,
        since: i64,
        until: i64,
    ) -> Result<UsagePoint, StoreError>;

    /// The usage explorer: like [`Store::usage_totals`](super::Store), but
    /// read from the rollup whenever neither `by` nor `filter` needs the
    /// key (the rollup holds no key id), and from the ledger's indexes
    /// otherwise; `filter.since`/`until` are required and hour-aligned.
    /// Sorted by cost, highest first; at most `limit` rows after `offset`.
    async fn usage_explorer(
        &self,
        filter: &UsageFilter,
        by: &[UsageGroup],
        limit: i64,
        offset: i64,
    ) -> Result<Vec<UsageTotal>, StoreError>;

    /// One page of keys.
    async fn key_page(&self, query: &KeyPageQuery) -> Result<KeyPage, StoreError>;

    /// Counts of the keys of `kind` in scope, by state at `now`.
    async fn key_counts(
        &self,
        kind: KeyKind,
        scope: &TenantScope,
        now: i64,
    ) -> Result<KeyCounts, StoreError>;

    /// Each key's last use ever and its requests and cost at or after
    /// `since` (Unix ms). Keys without any use are absent.
    async fn key_activity(
        &self,
        key_ids: &[String],
        since: i64,
    ) -> Result<HashMap<String, KeyActivity>, StoreError>;
}
