//! What the dashboard reads. Usage comes from rollups of the ledger
//! (migration 0016; maintained in the same transaction as the ledger rows,
//! counting each request once even when a batch is retried), so the
//! overview, the charts and the usage explorer read aggregates, never the
//! whole ledger; keys come a page at a time, by keyset pagination on
//! indexed columns.
//!
//! The rollups are sized by time, not by the number of keys or owners:
//! `usage_hourly` (hour, tenancy, provider, model), `usage_daily` (UTC
//! day, tenancy, owner, provider, model) and `usage_daily_totals`
//! (`usage_daily` summed over owners). Each query reads the smallest that
//! answers it exactly:
//!
//! - [`DashboardStore::usage_series`]: whole-day buckets starting at a UTC
//!   midnight read the daily totals (the hours of a last, partial day from
//!   the hourly rollup); any other buckets read the hourly rollup.
//! - [`DashboardStore::usage_summary`]: the whole UTC days inside the
//!   range from the daily totals, the hours at either end from the hourly
//!   rollup.
//! - [`DashboardStore::usage_explorer`]: grouped or filtered by key, the
//!   ledger; by owner, `usage_daily` over the range rounded outward to
//!   whole UTC days; otherwise the hourly rollup for ranges up to
//!   [`HOURLY_EXPLORER_MAX_MS`], beyond that as the summary (daily totals
//!   plus hourly edges).
//! - Key counts read one covering index (`keys_kind_state`), never the
//!   table.

use super::sql::{Rollup, RollupPart, UsageSource};
use super::{KeyRecord, StoreError, UsageFilter, UsageGroup, UsageTotal};
use crate::auth::KeyKind;
use std::collections::HashMap;

/// Width of a rollup bucket: one hour (Unix ms). Series buckets are whole
/// multiples of it.
pub const ROLLUP_BUCKET_MS: i64 = 3_600_000;

/// A UTC day, ms: the period of the daily rollups.
pub const DAY_MS: i64 = 86_400_000;

/// Explorer ranges (without owner) up to this long read the hourly rollup
/// alone; longer ones read whole days from the daily totals.
pub const HOURLY_EXPLORER_MAX_MS: i64 = 8 * DAY_MS;

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
    /// Buckets without use are absent. Buckets of whole days from a UTC
    /// midnight read the daily totals, others the hourly rollup; the result
    /// is the same.
    async fn usage_series(
        &self,
        scope: &TenantScope,
        since: i64,
        until: i64,
        bucket_ms: i64,
        split: SeriesSplit,
    ) -> Result<Vec<UsagePoint>, StoreError>;

    /// Usage in scope over `[since, until)` (hour-aligned), summed
    /// (`bucket_ms` = `since`, `group` = `None`): whole UTC days from the
    /// daily totals, the hours at either end from the hourly rollup.
    async fn usage_summary(
        &self,
        scope: &TenantScope,
        since: i64,
        until: i64,
    ) -> Result<UsagePoint, StoreError>;

    /// The usage explorer: like [`Store::usage_totals`](super::Store), but
    /// read from the rollups whenever neither `by` nor `filter` needs the
    /// key (the rollups hold no key id), and from the ledger's indexes
    /// otherwise; `filter.since`/`until` are required and hour-aligned.
    ///
    /// Grouped or filtered by owner, it reads `usage_daily`, so **the
    /// range is rounded outward to whole UTC days**: `since` down to its
    /// midnight, `until` up to the next one (unless already a midnight).
    /// Without owner (and without key) the range is exact: the hourly
    /// rollup for ranges up to [`HOURLY_EXPLORER_MAX_MS`], whole days from
    /// the daily totals plus the hours at either end beyond that.
    ///
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

/// Where a key page starts: after the row with this sort value and id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeyCursor {
    /// `created_at` (newest first) or `COALESCE(rotated_at, created_at)`
    /// (oldest secret first), then the id.
    Time(i64, String),
    /// The name, then the id.
    Name(String, String),
}

impl KeySort {
    fn tag(self) -> &'static str {
        match self {
            KeySort::Newest => "n",
            KeySort::OldestSecret => "s",
            KeySort::Name => "a",
        }
    }
}

impl KeyCursor {
    /// The cursor after `key` in `sort`: base64url of `tag \n id \n value`
    /// (the value last, so a name may hold any character).
    pub(crate) fn after(key: &KeyRecord, sort: KeySort) -> String {
        use base64::Engine;
        let value = match sort {
            KeySort::Newest => key.created_at.to_string(),
            KeySort::OldestSecret => key.rotated_at.unwrap_or(key.created_at).to_string(),
            KeySort::Name => key.name.clone(),
        };
        let text = format!("{}\n{}\n{value}", sort.tag(), key.id);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    /// Read a cursor made by [`KeyCursor::after`] for `sort`; `None` for
    /// anything else (a cursor from a URL may be garbage, or from another
    /// order), which starts the list from the top.
    pub(crate) fn parse(cursor: &str, sort: KeySort) -> Option<KeyCursor> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cursor)
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let mut parts = text.splitn(3, '\n');
        let (tag, id, value) = (parts.next()?, parts.next()?, parts.next()?);
        if tag != sort.tag() {
            return None;
        }
        let id = id.to_string();
        match sort {
            KeySort::Newest | KeySort::OldestSecret => {
                Some(KeyCursor::Time(value.parse().ok()?, id))
            }
            KeySort::Name => Some(KeyCursor::Name(value.to_string(), id)),
        }
    }
}

/// The condition on the `keys` table that selects `state` at `now` (bound
/// as the builder's next parameter where needed).
pub(crate) fn push_key_state<DB: sqlx::Database>(
    query: &mut sqlx::QueryBuilder<'_, DB>,
    state: KeyState,
    now: i64,
) where
    i64: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    match state {
        KeyState::Active => {
            query
                .push(
                    " AND revoked_at IS NULL AND suspended_at IS NULL \
                     AND (expires_at IS NULL OR expires_at > ",
                )
                .push_bind(now)
                .push(")");
        }
        KeyState::Suspended => {
            query.push(" AND revoked_at IS NULL AND suspended_at IS NOT NULL");
        }
        KeyState::Revoked => {
            query.push(" AND revoked_at IS NOT NULL");
        }
        KeyState::Expired => {
            query
                .push(" AND revoked_at IS NULL AND expires_at <= ")
                .push_bind(now);
        }
    }
}

/// A usage point from a row of sums (`bucket`, `grp` and the sums).
pub(crate) fn point_from_row<R: sqlx::Row>(
    row: &R,
    bucket_ms: Option<i64>,
    grouped: bool,
) -> Result<UsagePoint, StoreError>
where
    usize: sqlx::ColumnIndex<R>,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: for<'r> sqlx::Decode<'r, R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database>,
    String: sqlx::Type<R::Database>,
{
    let sum = |column: &str| -> Result<i64, StoreError> {
        Ok(row.try_get::<Option<i64>, _>(column)?.unwrap_or(0))
    };
    Ok(UsagePoint {
        bucket_ms: match bucket_ms {
            Some(bucket) => bucket,
            None => row.try_get("bucket")?,
        },
        group: if grouped {
            row.try_get::<Option<String>, _>("grp")?
                .filter(|g| !g.is_empty())
        } else {
            None
        },
        requests: sum("requests")?,
        errors: sum("errors")?,
        prompt_tokens: sum("prompt_tokens")?,
        cached_tokens: sum("cached_tokens")?,
        completion_tokens: sum("completion_tokens")?,
        cost_nanos: sum("cost_nanos")?,
        latency_ms_sum: sum("latency_ms_sum")?,
    })
}

/// The sums a usage point reads from the rollups.
pub(crate) const POINT_SUMS: &str = "CAST(SUM(requests) AS BIGINT) AS requests, \
     CAST(SUM(errors) AS BIGINT) AS errors, \
     CAST(SUM(prompt_tokens) AS BIGINT) AS prompt_tokens, \
     CAST(SUM(cached_tokens) AS BIGINT) AS cached_tokens, \
     CAST(SUM(completion_tokens) AS BIGINT) AS completion_tokens, \
     CAST(SUM(cost_nanos) AS BIGINT) AS cost_nanos, \
     CAST(SUM(latency_ms_sum) AS BIGINT) AS latency_ms_sum";

fn floor_day(t: i64) -> i64 {
    t.div_euclid(DAY_MS).saturating_mul(DAY_MS)
}

fn ceil_day(t: i64) -> i64 {
    let floor = floor_day(t);
    if floor == t {
        t
    } else {
        floor.saturating_add(DAY_MS)
    }
}

fn hourly(since: Option<i64>, until: Option<i64>) -> RollupPart {
    RollupPart {
        rollup: Rollup::Hourly,
        since,
        until,
    }
}

/// The rollup rows that add up to `[since, until)` exactly (an absent
/// bound: unbounded): the whole UTC days inside it from `days`, the hours
/// before the first and after the last from `usage_hourly`. Never empty.
pub(crate) fn day_parts(since: Option<i64>, until: Option<i64>, days: Rollup) -> Vec<RollupPart> {
    let first = since.map(ceil_day);
    let last = until.map(floor_day);
    if let (Some(first), Some(last)) = (first, last) {
        if first >= last {
            return vec![hourly(since, until)];
        }
    }
    let mut parts = Vec::new();
    if let (Some(since), Some(first)) = (since, first) {
        if since < first {
            parts.push(hourly(Some(since), Some(first)));
        }
    }
    parts.push(RollupPart {
        rollup: days,
        since: first,
        until: last,
    });
    if let (Some(last), Some(until)) = (last, until) {
        if last < until {
            parts.push(hourly(Some(last), Some(until)));
        }
    }
    parts
}

/// Where a series over `[since, until)` in buckets of `bucket_ms` reads:
/// whole-day buckets from a UTC midnight hold whole days (but for the
/// last, which may end inside one), so the daily totals serve them.
pub(crate) fn series_parts(since: i64, until: i64, bucket_ms: i64) -> Vec<RollupPart> {
    if bucket_ms % DAY_MS == 0 && since.rem_euclid(DAY_MS) == 0 {
        day_parts(Some(since), Some(until), Rollup::DailyTotals)
    } else {
        vec![hourly(Some(since), Some(until))]
    }
}

/// The rollup filter of a dashboard reader's scope.
pub(crate) fn scope_filter(scope: &TenantScope) -> UsageFilter {
    UsageFilter {
        scope_org_id: scope.org_id.clone(),
        scope_project_id: scope.project_id.clone(),
        ..UsageFilter::default()
    }
}

/// Where the explorer reads (see [`DashboardStore::usage_explorer`]).
pub(crate) fn explorer_source(filter: &UsageFilter, by: &[UsageGroup]) -> UsageSource {
    // `by` empty means by key and model, as in usage_totals.
    if by.is_empty() || by.contains(&UsageGroup::Key) || filter.key_id.is_some() {
        return UsageSource::Ledger;
    }
    if by.contains(&UsageGroup::Owner) || filter.owner.is_some() {
        return UsageSource::Rollup(vec![RollupPart {
            rollup: Rollup::Daily,
            since: filter.since.map(floor_day),
            until: filter.until.map(ceil_day),
        }]);
    }
    match (filter.since, filter.until) {
        (Some(since), Some(until)) if until.saturating_sub(since) <= HOURLY_EXPLORER_MAX_MS => {
            UsageSource::Rollup(vec![hourly(Some(since), Some(until))])
        }
        (since, until) => UsageSource::Rollup(day_parts(since, until, Rollup::DailyTotals)),
    }
}

/// The largest character: `x || MAX_CHAR` is above every text that starts
/// with `x` (in byte order), so a prefix is a range an index can serve.
pub(crate) const MAX_CHAR: char = '\u{10FFFF}';

/// `impl DashboardStore` for a store with a `pool` of the given database.
/// `$collate` makes text comparisons byte-wise (SQLite's are already;
/// PostgreSQL's follow the database's locale otherwise, under which a
/// prefix is not a range).
macro_rules! impl_dashboard_store {
    ($store:ty, $db:ty, $collate:literal) => {
        impl $store {
            fn push_tenant_scope(
                query: &mut sqlx::QueryBuilder<'_, $db>,
                scope: &$crate::store::TenantScope,
            ) {
                for (column, value) in [("org_id", &scope.org_id), ("project_id", &scope.project_id)] {
                    if let Some(value) = value {
                        query.push(format!(" AND {column} = ")).push_bind(value.clone());
                    }
                }
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::DashboardStore for $store {
            async fn usage_series(
                &self,
                scope: &$crate::store::TenantScope,
                since: i64,
                until: i64,
                bucket_ms: i64,
                split: $crate::store::SeriesSplit,
            ) -> Result<Vec<$crate::store::UsagePoint>, $crate::store::StoreError> {
                use $crate::store::SeriesSplit;
                // Whole hours; buckets start at `since`.
                let bucket_ms = bucket_ms.max($crate::store::ROLLUP_BUCKET_MS);
                let group = match split {
                    SeriesSplit::Total => None,
                    SeriesSplit::Provider => Some("provider"),
                    SeriesSplit::Model => Some("model"),
                    SeriesSplit::Project => Some("project_id"),
                };
                let mut query = sqlx::QueryBuilder::<$db>::new("SELECT ");
                query
                    .push_bind(since)
                    .push(" + CAST((t - ")
                    .push_bind(since)
                    .push(") / ")
                    .push_bind(bucket_ms)
                    .push(" AS BIGINT) * ")
                    .push_bind(bucket_ms)
                    .push(" AS bucket, ");
                if let Some(group) = group {
                    query.push(format!("{group} AS grp, "));
                }
                query
                    .push($crate::store::dashboard::POINT_SUMS)
                    .push(" FROM ");
                Self::push_rollup_parts(
                    &mut query,
                    &$crate::store::dashboard::series_parts(since, until, bucket_ms),
                    group.as_slice(),
                    &$crate::store::dashboard::scope_filter(scope),
                );
                query.push(" GROUP BY bucket");
                if group.is_some() {
                    query.push(", grp");
                }
                let rows = query.build().fetch_all(&self.pool).await?;
                let mut points = rows
                    .iter()
                    .map(|row| $crate::store::dashboard::point_from_row(row, None, group.is_some()))
                    .collect::<Result<Vec<_>, _>>()?;
                // Sorted here: the databases order text (and NULL) differently.
                points.sort_by(|a, b| (a.bucket_ms, &a.group).cmp(&(b.bucket_ms, &b.group)));
                Ok(points)
            }

            async fn usage_summary(
                &self,
                scope: &$crate::store::TenantScope,
                since: i64,
                until: i64,
            ) -> Result<$crate::store::UsagePoint, $crate::store::StoreError> {
                let mut query = sqlx::QueryBuilder::<$db>::new("SELECT ");
                query
                    .push($crate::store::dashboard::POINT_SUMS)
                    .push(" FROM ");
                Self::push_rollup_parts(
                    &mut query,
                    &$crate::store::dashboard::day_parts(
                        Some(since),
                        Some(until),
                        $crate::store::sql::Rollup::DailyTotals,
                    ),
                    &[],
                    &$crate::store::dashboard::scope_filter(scope),
                );
                let row = query.build().fetch_one(&self.pool).await?;
                $crate::store::dashboard::point_from_row(&row, Some(since), false)
            }

            async fn usage_explorer(
                &self,
                filter: &$crate::store::UsageFilter,
                by: &[$crate::store::UsageGroup],
                limit: i64,
                offset: i64,
            ) -> Result<Vec<$crate::store::UsageTotal>, $crate::store::StoreError> {
                let source = $crate::store::dashboard::explorer_source(filter, by);
                self.grouped_usage(&source, filter, by, Some((limit, offset))).await
            }

            async fn key_page(
                &self,
                page: &$crate::store::KeyPageQuery,
            ) -> Result<$crate::store::KeyPage, $crate::store::StoreError> {
                use $crate::store::dashboard::KeyCursor;
                use $crate::store::KeySort;
                let limit = page.limit.max(0);
                if limit == 0 {
                    return Ok($crate::store::KeyPage { keys: Vec::new(), next: None });
                }
                let mut query = sqlx::QueryBuilder::<$db>::new("SELECT * FROM keys WHERE kind = ");
                query.push_bind(page.kind.as_str());
                Self::push_tenant_scope(&mut query, &page.scope);
                if let Some(state) = page.state {
                    $crate::store::dashboard::push_key_state(&mut query, state, page.now);
                }
                if let Some(search) = page.search.as_deref().filter(|s| !s.is_empty()) {
                    // A prefix as a range (served by the indexes on id,
                    // name and owner), compared byte-wise.
                    let upper = format!("{search}{}", $crate::store::dashboard::MAX_CHAR);
                    query.push(" AND (");
                    for (n, column) in ["id", "name", "owner"].into_iter().enumerate() {
                        if n > 0 {
                            query.push(" OR ");
                        }
                        query
                            .push(format!("({column}{} >= ", $collate))
                            .push_bind(search.to_string())
                            .push(format!(" AND {column}{} < ", $collate))
                            .push_bind(upper.clone())
                            .push(")");
                    }
                    query.push(")");
                }
                let cursor = page
                    .after
                    .as_deref()
                    .and_then(|c| KeyCursor::parse(c, page.sort));
                // Row-value comparisons in the order's direction, so each
                // page is a range of the (kind, order, id) indexes.
                match (page.sort, cursor) {
                    (KeySort::Newest, Some(KeyCursor::Time(at, id))) => {
                        query
                            .push(" AND (created_at, id) < (")
                            .push_bind(at)
                            .push(", ")
                            .push_bind(id)
                            .push(")");
                    }
                    (KeySort::OldestSecret, Some(KeyCursor::Time(at, id))) => {
                        // The plain bound too: SQLite seeks an expression
                        // index by it, not by the row value alone.
                        query
                            .push(" AND COALESCE(rotated_at, created_at) >= ")
                            .push_bind(at)
                            .push(" AND (COALESCE(rotated_at, created_at), id) > (")
                            .push_bind(at)
                            .push(", ")
                            .push_bind(id)
                            .push(")");
                    }
                    (KeySort::Name, Some(KeyCursor::Name(name, id))) => {
                        query
                            .push(" AND (name, id) > (")
                            .push_bind(name)
                            .push(", ")
                            .push_bind(id)
                            .push(")");
                    }
                    _ => {}
                }
                query.push(match page.sort {
                    KeySort::Newest => " ORDER BY created_at DESC, id DESC",
                    KeySort::OldestSecret => " ORDER BY COALESCE(rotated_at, created_at), id",
                    KeySort::Name => " ORDER BY name, id",
                });
                // One more than the page tells whether there is a next one.
                query.push(" LIMIT ").push_bind(limit.saturating_add(1));
                let rows = query.build().fetch_all(&self.pool).await?;
                let mut keys = rows
                    .iter()
                    .map(Self::key_from_row)
                    .collect::<Result<Vec<_>, _>>()?;
                let more = i64::try_from(keys.len()).map_or(true, |n| n > limit);
                keys.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
                let next = match keys.last() {
                    Some(last) if more => Some(KeyCursor::after(last, page.sort)),
                    _ => None,
                };
                Ok($crate::store::KeyPage { keys, next })
            }

            async fn key_counts(
                &self,
                kind: $crate::auth::KeyKind,
                scope: &$crate::store::TenantScope,
                now: i64,
            ) -> Result<$crate::store::KeyCounts, $crate::store::StoreError> {
                use sqlx::Row;
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "SELECT COUNT(*) AS total, \
                     CAST(COALESCE(SUM(CASE WHEN revoked_at IS NULL AND suspended_at IS NULL \
                     AND (expires_at IS NULL OR expires_at > ",
                );
                query
                    .push_bind(now)
                    .push(
                        ") THEN 1 ELSE 0 END), 0) AS BIGINT) AS active, \
                         CAST(COALESCE(SUM(CASE WHEN revoked_at IS NULL AND suspended_at IS NOT NULL \
                         THEN 1 ELSE 0 END), 0) AS BIGINT) AS suspended, \
                         CAST(COALESCE(SUM(CASE WHEN revoked_at IS NOT NULL \
                         THEN 1 ELSE 0 END), 0) AS BIGINT) AS revoked, \
                         CAST(COALESCE(SUM(CASE WHEN revoked_at IS NULL AND expires_at <= ",
                    )
                    .push_bind(now)
                    .push(" THEN 1 ELSE 0 END), 0) AS BIGINT) AS expired FROM keys WHERE kind = ")
                    .push_bind(kind.as_str());
                Self::push_tenant_scope(&mut query, scope);
                let row = query.build().fetch_one(&self.pool).await?;
                Ok($crate::store::KeyCounts {
                    total: row.try_get("total")?,
                    active: row.try_get("active")?,
                    suspended: row.try_get("suspended")?,
                    revoked: row.try_get("revoked")?,
                    expired: row.try_get("expired")?,
                })
            }

            async fn key_activity(
                &self,
                key_ids: &[String],
                since: i64,
            ) -> Result<
                std::collections::HashMap<String, $crate::store::KeyActivity>,
                $crate::store::StoreError,
            > {
                use sqlx::Row;
                let mut activity = std::collections::HashMap::new();
                if key_ids.is_empty() {
                    return Ok(activity);
                }
                // Last use: one probe of usage_events_key_ts per key.
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "SELECT k.id, (SELECT MAX(u.ts) FROM usage_events u WHERE u.key_id = k.id) \
                     AS last_used FROM keys k WHERE k.id IN (",
                );
                let mut ids = query.separated(", ");
                for id in key_ids {
                    ids.push_bind(id.clone());
                }
                query.push(")");
                for row in query.build().fetch_all(&self.pool).await? {
                    let last_used: Option<i64> = row.try_get("last_used")?;
                    if last_used.is_some() {
                        activity.insert(
                            row.try_get::<String, _>("id")?,
                            $crate::store::KeyActivity { last_used, ..Default::default() },
                        );
                    }
                }
                if activity.is_empty() {
                    return Ok(activity);
                }
                // Since `since`: a range of the same index per key.
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "SELECT key_id, COUNT(*) AS requests, \
                     CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) AS cost_nanos \
                     FROM usage_events WHERE key_id IN (",
                );
                let mut ids = query.separated(", ");
                for id in activity.keys() {
                    ids.push_bind(id.clone());
                }
                query.push(") AND ts >= ").push_bind(since).push(" GROUP BY key_id");
                for row in query.build().fetch_all(&self.pool).await? {
                    let key_id: String = row.try_get("key_id")?;
                    if let Some(entry) = activity.get_mut(&key_id) {
                        entry.requests = row.try_get("requests")?;
                        entry.cost_nanos = row.try_get("cost_nanos")?;
                    }
                }
                Ok(activity)
            }
        }
    };
}

pub(crate) use impl_dashboard_store;

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = ROLLUP_BUCKET_MS;
    const D: i64 = DAY_MS;
    /// A UTC midnight.
    const M: i64 = 1_700_006_400_000;

    fn part(rollup: Rollup, since: i64, until: i64) -> RollupPart {
        RollupPart {
            rollup,
            since: Some(since),
            until: Some(until),
        }
    }

    #[test]
    fn whole_days_from_daily_totals_edges_from_hourly() {
        use Rollup::{DailyTotals, Hourly};
        assert_eq!(
            day_parts(Some(M - 5 * H), Some(M + 3 * D + 2 * H), DailyTotals),
            vec![
                part(Hourly, M - 5 * H, M),
                part(DailyTotals, M, M + 3 * D),
                part(Hourly, M + 3 * D, M + 3 * D + 2 * H),
            ]
        );
        assert_eq!(
            day_parts(Some(M), Some(M + 2 * D), DailyTotals),
            vec![part(DailyTotals, M, M + 2 * D)]
        );
        // No whole day inside: hours only.
        for (since, until) in [
            (M - H, M + 5 * H),
            (M + H, M + 20 * H),
            (M, M + 23 * H),
            (M, M),
        ] {
            assert_eq!(
                day_parts(Some(since), Some(until), DailyTotals),
                vec![part(Hourly, since, until)]
            );
        }
        // Open ends stay open.
        assert_eq!(
            day_parts(None, Some(M + 2 * H), DailyTotals),
            vec![
                RollupPart {
                    rollup: DailyTotals,
                    since: None,
                    until: Some(M)
                },
                part(Hourly, M, M + 2 * H),
            ]
        );
    }

    #[test]
    fn series_reads_days_only_for_day_buckets_from_a_midnight() {
        use Rollup::{DailyTotals, Hourly};
        assert_eq!(
            series_parts(M - 30 * D, M + 5 * H, D),
            vec![part(DailyTotals, M - 30 * D, M), part(Hourly, M, M + 5 * H)]
        );
        assert_eq!(
            series_parts(M - 30 * D, M, 7 * D),
            vec![part(DailyTotals, M - 30 * D, M)]
        );
        assert_eq!(
            series_parts(M - 7 * D, M, 6 * H),
            vec![part(Hourly, M - 7 * D, M)]
        );
        assert_eq!(
            series_parts(M + H, M + 9 * D, D),
            vec![part(Hourly, M + H, M + 9 * D)]
        );
    }

    #[test]
    fn explorer_routes_by_owner_key_and_length() {
        use Rollup::{Daily, DailyTotals, Hourly};
        let filter = |since: i64, until: i64| UsageFilter {
            since: Some(since),
            until: Some(until),
            ..UsageFilter::default()
        };
        let rollup = |parts: Vec<RollupPart>| UsageSource::Rollup(parts);
        // Key: the ledger.
        assert_eq!(explorer_source(&filter(M, M + H), &[]), UsageSource::Ledger);
        assert_eq!(
            explorer_source(&filter(M, M + H), &[UsageGroup::Key, UsageGroup::Owner]),
            UsageSource::Ledger
        );
        let for_key = UsageFilter {
            key_id: Some("k".into()),
            ..filter(M, M + H)
        };
        assert_eq!(
            explorer_source(&for_key, &[UsageGroup::Model]),
            UsageSource::Ledger
        );
        // Owner: usage_daily over whole days around the range.
        assert_eq!(
            explorer_source(&filter(M + 5 * H, M + 7 * H), &[UsageGroup::Owner]),
            rollup(vec![part(Daily, M, M + D)])
        );
        let of_owner = UsageFilter {
            owner: Some("o".into()),
            ..filter(M - 30 * D, M + D)
        };
        assert_eq!(
            explorer_source(&of_owner, &[UsageGroup::Model]),
            rollup(vec![part(Daily, M - 30 * D, M + D)])
        );
        // Otherwise: hourly up to eight days, daily totals and hourly
        // edges beyond.
        assert_eq!(
            explorer_source(&filter(M - 8 * D, M), &[UsageGroup::Provider]),
            rollup(vec![part(Hourly, M - 8 * D, M)])
        );
        assert_eq!(
            explorer_source(
                &filter(M - 30 * D + 3 * H, M + 2 * H),
                &[UsageGroup::Project]
            ),
            rollup(vec![
                part(Hourly, M - 30 * D + 3 * H, M - 29 * D),
                part(DailyTotals, M - 29 * D, M),
                part(Hourly, M, M + 2 * H),
            ])
        );
    }
}
