//! The SQL both stores run, written once: `impl_store!` expands to a
//! [`Store`](super::Store) implementation for a struct with a `pool` field of
//! the given sqlx database. SQLite and PostgreSQL accept the same `$n`
//! placeholders, `ON CONFLICT … DO NOTHING` and `CAST(… AS BIGINT)`.

/// Ledger rows per INSERT statement.
pub(crate) const USAGE_CHUNK: usize = 32;

/// Rollup groups per upsert statement.
pub(crate) const ROLLUP_CHUNK: usize = 32;

/// A rollup of the ledger (migration 0016): sums per period, tenancy,
/// provider and model (and owner, in the daily one), '' for absent values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rollup {
    /// `usage_hourly`: per hour, no owner.
    Hourly,
    /// `usage_daily`: per UTC day and owner.
    Daily,
    /// `usage_daily_totals`: per UTC day, summed over owners.
    DailyTotals,
}

impl Rollup {
    /// Every rollup, in the order writers lock them.
    pub(crate) const ALL: [Rollup; 3] = [Rollup::Hourly, Rollup::Daily, Rollup::DailyTotals];

    pub(crate) fn table(self) -> &'static str {
        match self {
            Rollup::Hourly => "usage_hourly",
            Rollup::Daily => "usage_daily",
            Rollup::DailyTotals => "usage_daily_totals",
        }
    }

    /// The column holding the period's start, Unix ms.
    pub(crate) fn time_column(self) -> &'static str {
        match self {
            Rollup::Hourly => "hour_ms",
            Rollup::Daily | Rollup::DailyTotals => "day_ms",
        }
    }

    /// The period, ms.
    pub(crate) fn period_ms(self) -> i64 {
        match self {
            Rollup::Hourly => super::ROLLUP_BUCKET_MS,
            Rollup::Daily | Rollup::DailyTotals => super::DAY_MS,
        }
    }

    pub(crate) fn has_owner(self) -> bool {
        self == Rollup::Daily
    }

    /// The primary key's columns.
    pub(crate) fn key_columns(self) -> &'static str {
        match self {
            Rollup::Hourly => "hour_ms, org_id, project_id, provider, model",
            Rollup::Daily => "day_ms, org_id, project_id, owner, provider, model",
            Rollup::DailyTotals => "day_ms, org_id, project_id, provider, model",
        }
    }
}

/// The rows of one rollup whose period starts in `[since, until)` (an
/// absent bound: unbounded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RollupPart {
    pub(crate) rollup: Rollup,
    pub(crate) since: Option<i64>,
    pub(crate) until: Option<i64>,
}

/// Where usage totals are read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum UsageSource {
    /// The ledger, `usage_events`: one row per request.
    Ledger,
    /// Rollup rows over disjoint time ranges, read as one (`UNION ALL`):
    /// no key ids, '' for absent values.
    Rollup(Vec<RollupPart>),
}

/// The sums of a rollup row, as its columns are named.
pub(crate) const ROLLUP_SUMS: [&str; 7] = [
    "requests",
    "errors",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "cost_nanos",
    "latency_ms_sum",
];

/// A rollup row's key: (period start, org, project, owner, provider,
/// model), '' for an absent value (and for the owner in a rollup without
/// one).
pub(crate) type RollupKey = (i64, String, String, String, String, String);

/// A rollup row's sums, as [`ROLLUP_SUMS`].
pub(crate) type RollupSums = [i64; 7];

/// The rows of `rollup` that `events` add up to, in key order (so
/// concurrent writers lock rows in the same order).
pub(crate) fn rollup<'a>(
    rollup: Rollup,
    events: impl IntoIterator<Item = &'a crate::ledger::UsageEvent>,
) -> std::collections::BTreeMap<RollupKey, RollupSums> {
    let mut groups = std::collections::BTreeMap::<RollupKey, RollupSums>::new();
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let period = rollup.period_ms();
    for e in events {
        let start = e.ts / period * period;
        let owner = if rollup.has_owner() {
            text(&e.owner)
        } else {
            String::new()
        };
        let sums = groups
            .entry((
                start,
                text(&e.org_id),
                text(&e.project_id),
                owner,
                text(&e.provider),
                text(&e.model),
            ))
            .or_default();
        for (sum, value) in sums.iter_mut().zip([
            1,
            i64::from(e.status >= 400),
            e.prompt_tokens,
            e.cached_tokens,
            e.completion_tokens,
            e.cost_nanos,
            e.latency_ms,
        ]) {
            *sum = sum.saturating_add(value);
        }
    }
    groups
}

macro_rules! impl_store {
    ($store:ty, $db:ty, $backend:literal) => {
        impl $store {
            fn key_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::store::KeyRecord, $crate::store::StoreError> {
                use sqlx::Row;
                let corrupt = |message: String| $crate::store::StoreError::Corrupt {
                    table: "keys",
                    message,
                };
                let kind: String = row.try_get("kind")?;
                let models: String = row.try_get("models")?;
                Ok($crate::store::KeyRecord {
                    id: row.try_get("id")?,
                    kind: $crate::auth::KeyKind::parse(&kind)
                        .ok_or_else(|| corrupt(format!("unknown kind '{kind}'")))?,
                    name: row.try_get("name")?,
                    env: row.try_get("env")?,
                    secret_hash: row.try_get("secret_hash")?,
                    hint: row.try_get("hint")?,
                    models: serde_json::from_str(&models)
                        .map_err(|e| corrupt(format!("models: {e}")))?,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                    revoke_reason: row.try_get("revoke_reason")?,
                    updated_at: row.try_get("updated_at")?,
                    previous_secret_hash: row.try_get("previous_secret_hash")?,
                    previous_expires_at: row.try_get("previous_expires_at")?,
                    suspended_at: row.try_get("suspended_at")?,
                    scopes: {
                        let text: String = row.try_get("scopes")?;
                        serde_json::from_str(&text).map_err(|e| corrupt(format!("scopes: {e}")))?
                    },
                    allow_ips: {
                        let text: String = row.try_get("allow_ips")?;
                        serde_json::from_str(&text).map_err(|e| corrupt(format!("allow_ips: {e}")))?
                    },
                    description: row.try_get("description")?,
                    rotated_at: row.try_get("rotated_at")?,
                    org_id: row.try_get("org_id")?,
                    project_id: row.try_get("project_id")?,
                    owner: row.try_get("owner")?,
                    role: row.try_get("role")?,
                    auto_rotate_webhook: row.try_get("auto_rotate_webhook")?,
                    limits: $crate::store::limits::read_limits(row, "keys", true)?,
                    on_anomaly: $crate::store::anomaly::read_on_anomaly(
                        row.try_get("on_anomaly")?,
                        "keys",
                    )?,
                    metadata: {
                        let text: String = row.try_get("metadata")?;
                        serde_json::from_str(&text).map_err(|e| corrupt(format!("metadata: {e}")))?
                    },
                })
            }

            fn json<T: serde::Serialize>(value: &T) -> Result<String, $crate::store::StoreError> {
                serde_json::to_string(value).map_err(|e| $crate::store::StoreError::Corrupt {
                    table: "keys",
                    message: e.to_string(),
                })
            }

            fn event_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::ledger::UsageEvent, $crate::store::StoreError> {
                use sqlx::Row;
                let status: i64 = row.try_get("status")?;
                let streamed: i64 = row.try_get("streamed")?;
                Ok($crate::ledger::UsageEvent {
                    request_id: row.try_get("request_id")?,
                    ts: row.try_get("ts")?,
                    key_id: row.try_get("key_id")?,
                    route: row.try_get("route")?,
                    model: row.try_get("model")?,
                    provider: row.try_get("provider")?,
                    prompt_tokens: row.try_get("prompt_tokens")?,
                    completion_tokens: row.try_get("completion_tokens")?,
                    cached_tokens: row.try_get("cached_tokens")?,
                    cost_nanos: row.try_get("cost_nanos")?,
                    owner: row.try_get("owner")?,
                    project_id: row.try_get("project_id")?,
                    org_id: row.try_get("org_id")?,
                    token_id: row.try_get("token_id")?,
                    status: u16::try_from(status).unwrap_or(0),
                    error_code: row.try_get("error_code")?,
                    latency_ms: row.try_get("latency_ms")?,
                    streamed: streamed != 0,
                    source_ip: row.try_get("source_ip")?,
                    user_agent: row.try_get("user_agent")?,
                })
            }

            /// ` WHERE …`: the rows of the ledger (`rollup` = `None`) or of
            /// a rollup that `filter` selects, with the time column in
            /// `[since, until)` instead of the filter's own range.
            fn push_filter(
                query: &mut sqlx::QueryBuilder<'_, $db>,
                filter: &$crate::store::UsageFilter,
                rollup: Option<$crate::store::sql::Rollup>,
                since: Option<i64>,
                until: Option<i64>,
            ) {
                let ts = rollup.map_or("ts", |r| r.time_column());
                query.push(" WHERE 1 = 1");
                if let Some(key_id) = &filter.key_id {
                    query.push(" AND key_id = ").push_bind(key_id.clone());
                }
                if let Some(since) = since {
                    query.push(format!(" AND {ts} >= ")).push_bind(since);
                }
                if let Some(until) = until {
                    query.push(format!(" AND {ts} < ")).push_bind(until);
                }
                match rollup {
                    // The caller's scope: keys as they are now.
                    None => {
                        if let Some(org_id) = &filter.scope_org_id {
                            query
                                .push(" AND key_id IN (SELECT id FROM keys WHERE org_id = ")
                                .push_bind(org_id.clone())
                                .push(")");
                        }
                        if let Some(project_id) = &filter.scope_project_id {
                            query
                                .push(" AND key_id IN (SELECT id FROM keys WHERE project_id = ")
                                .push_bind(project_id.clone())
                                .push(")");
                        }
                    }
                    // The rollups hold no key: the tenancy the rows recorded.
                    Some(_) => {
                        for (column, value) in [
                            ("org_id", &filter.scope_org_id),
                            ("project_id", &filter.scope_project_id),
                        ] {
                            if let Some(value) = value {
                                query.push(format!(" AND {column} = ")).push_bind(value.clone());
                            }
                        }
                    }
                }
                // What the report asked for: the rows as recorded.
                for (column, value) in [
                    ("owner", &filter.owner),
                    ("project_id", &filter.project_id),
                    ("model", &filter.model),
                    ("provider", &filter.provider),
                ] {
                    if let Some(value) = value {
                        query.push(format!(" AND {column} = ")).push_bind(value.clone());
                    }
                }
            }

            /// `(SELECT … UNION ALL SELECT …) AS u`: the rows of each part
            /// that `filter` selects (its range replaced by the part's), as
            /// `t` (the period's start), the `columns` asked for and every
            /// sum. A part of a rollup without owners never has `owner`
            /// among `columns` or in `filter` (the caller routes owner
            /// queries to `usage_daily`).
            pub(crate) fn push_rollup_parts(
                query: &mut sqlx::QueryBuilder<'_, $db>,
                parts: &[$crate::store::sql::RollupPart],
                columns: &[&str],
                filter: &$crate::store::UsageFilter,
            ) {
                let mut selected = columns.to_vec();
                selected.extend($crate::store::sql::ROLLUP_SUMS);
                let selected = selected.join(", ");
                query.push("(");
                for (n, part) in parts.iter().enumerate() {
                    if n > 0 {
                        query.push(" UNION ALL ");
                    }
                    query.push(format!(
                        "SELECT {} AS t, {selected} FROM {}",
                        part.rollup.time_column(),
                        part.rollup.table()
                    ));
                    Self::push_filter(query, filter, Some(part.rollup), part.since, part.until);
                }
                query.push(") AS u");
            }

            /// Totals of the rows `filter` selects in `source`, one per
            /// distinct value of the `by` columns: ordered by them (`null`
            /// first) without `page`, by cost (highest first, then the
            /// group columns) with `page` = `(limit, offset)`.
            async fn grouped_usage(
                &self,
                source: &$crate::store::sql::UsageSource,
                filter: &$crate::store::UsageFilter,
                by: &[$crate::store::UsageGroup],
                page: Option<(i64, i64)>,
            ) -> Result<Vec<$crate::store::UsageTotal>, $crate::store::StoreError> {
                use $crate::store::sql::UsageSource;
                use $crate::store::UsageGroup;
                use sqlx::Row;
                // A day is whole days since the epoch, the same integer
                // division in both databases (no time-zone functions); it
                // becomes a UTC calendar date below. The rollup parts are
                // read as `u`, their period's start as `t`.
                let rollup = matches!(source, UsageSource::Rollup(_));
                let (requests, errors, day_column) = if rollup {
                    ("SUM(requests)", "SUM(errors)", "CAST(t / 86400000 AS BIGINT)")
                } else {
                    (
                        "COUNT(*)",
                        "SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END)",
                        "CAST(ts / 86400000 AS BIGINT)",
                    )
                };

                let by: &[UsageGroup] = if by.is_empty() {
                    &[UsageGroup::Key, UsageGroup::Model]
                } else {
                    by
                };
                let mut columns: Vec<&str> = Vec::new();
                for group in by {
                    let group_columns: &[&str] = match group {
                        UsageGroup::Key => &["key_id"],
                        UsageGroup::Owner => &["org_id", "owner"],
                        UsageGroup::Project => &["project_id"],
                        UsageGroup::Model => &["model"],
                        UsageGroup::Provider => &["provider"],
                        UsageGroup::Day => std::slice::from_ref(&day_column),
                    };
                    for column in group_columns {
                        if !columns.contains(column) {
                            columns.push(column);
                        }
                    }
                }
                let grouped = columns.join(", ");
                let selected = columns
                    .iter()
                    .map(|c| {
                        if *c == day_column {
                            format!("{day_column} AS day_number")
                        } else if rollup {
                            // The rollup stores '' for an absent value.
                            format!("NULLIF({c}, '') AS {c}")
                        } else {
                            c.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut query = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {selected}, CAST({requests} AS BIGINT) AS requests, \
                     CAST({errors} AS BIGINT) AS errors, \
                     CAST(SUM(prompt_tokens) AS BIGINT) AS prompt_tokens, \
                     CAST(SUM(cached_tokens) AS BIGINT) AS cached_tokens, \
                     CAST(SUM(completion_tokens) AS BIGINT) AS completion_tokens, \
                     CAST(SUM(cost_nanos) AS BIGINT) AS cost_nanos \
                     FROM "
                ));
                match source {
                    UsageSource::Ledger => {
                        query.push("usage_events");
                        Self::push_filter(&mut query, filter, None, filter.since, filter.until);
                    }
                    UsageSource::Rollup(parts) => {
                        let stored: Vec<&str> = columns
                            .iter()
                            .copied()
                            .filter(|c| *c != day_column)
                            .collect();
                        Self::push_rollup_parts(&mut query, parts, &stored, filter);
                    }
                }
                query.push(format!(" GROUP BY {grouped}"));
                if let Some((limit, offset)) = page {
                    query
                        .push(format!(" ORDER BY SUM(cost_nanos) DESC, {grouped} LIMIT "))
                        .push_bind(limit.max(0))
                        .push(" OFFSET ")
                        .push_bind(offset.max(0));
                }
                let rows = query.build().fetch_all(&self.pool).await?;
                let text = |row: &<$db as sqlx::Database>::Row, column: &str| -> Result<Option<String>, sqlx::Error> {
                    if columns.contains(&column) {
                        row.try_get(column)
                    } else {
                        Ok(None)
                    }
                };
                let mut totals = rows
                    .iter()
                    .map(|row| {
                        let day = if columns.contains(&day_column) {
                            let number: i64 = row.try_get("day_number")?;
                            number
                                .checked_mul(86_400)
                                .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
                                .map(|t| t.format("%Y-%m-%d").to_string())
                        } else {
                            None
                        };
                        let cost_nanos: i64 = row.try_get("cost_nanos")?;
                        Ok($crate::store::UsageTotal {
                            key_id: text(row, "key_id")?,
                            model: text(row, "model")?,
                            provider: text(row, "provider")?,
                            owner: text(row, "owner")?,
                            org_id: text(row, "org_id")?,
                            project_id: text(row, "project_id")?,
                            day,
                            requests: row.try_get("requests")?,
                            errors: row.try_get("errors")?,
                            prompt_tokens: row.try_get("prompt_tokens")?,
                            cached_tokens: row.try_get("cached_tokens")?,
                            completion_tokens: row.try_get("completion_tokens")?,
                            cost_nanos,
                            cost_usd: $crate::policy::limits::nanos_to_usd(cost_nanos),
                        })
                    })
                    .collect::<Result<Vec<_>, $crate::store::StoreError>>()?;
                if page.is_some() {
                    return Ok(totals);
                }
                // Sorted here, not in SQL: the databases disagree on where
                // NULL sorts, and reports must not depend on the backend.
                totals.sort_by_cached_key(|t| {
                    by.iter()
                        .flat_map(|group| match group {
                            UsageGroup::Key => [t.key_id.clone(), None],
                            UsageGroup::Owner => [t.org_id.clone(), t.owner.clone()],
                            UsageGroup::Project => [t.project_id.clone(), None],
                            UsageGroup::Model => [t.model.clone(), None],
                            UsageGroup::Provider => [t.provider.clone(), None],
                            UsageGroup::Day => [t.day.clone(), None],
                        })
                        .collect::<Vec<_>>()
                });
                Ok(totals)
            }

            fn push_key_query(
                query: &mut sqlx::QueryBuilder<'_, $db>,
                kind: $crate::auth::KeyKind,
                key_query: &$crate::store::KeyQuery,
            ) {
                query.push(" WHERE kind = ").push_bind(kind.as_str());
                for (column, value) in [
                    ("org_id", &key_query.org_id),
                    ("project_id", &key_query.project_id),
                    ("owner", &key_query.owner),
                ] {
                    if let Some(value) = value {
                        query.push(format!(" AND {column} = ")).push_bind(value.clone());
                    }
                }
                if key_query.unrevoked {
                    query.push(" AND revoked_at IS NULL");
                }
                if let Some(id) = &key_query.except_id {
                    query.push(" AND id <> ").push_bind(id.clone());
                }
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn ping(&self) -> Result<(), $crate::store::StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn get_meta(&self, name: &str) -> Result<Option<String>, $crate::store::StoreError> {
                use sqlx::Row;
                let row = sqlx::query("SELECT value FROM meta WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match row {
                    Some(row) => Some(row.try_get("value")?),
                    None => None,
                })
            }

            async fn set_meta(&self, name: &str, value: &str) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO meta (name, value) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                )
                .bind(name)
                .bind(value)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn init_meta(&self, name: &str, value: &str) -> Result<String, $crate::store::StoreError> {
                sqlx::query("INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                    .bind(name)
                    .bind(value)
                    .execute(&self.pool)
                    .await?;
                self.get_meta(name).await?.ok_or_else(|| $crate::store::StoreError::Corrupt {
                    table: "meta",
                    message: format!("{name} vanished after insert"),
                })
            }

            async fn insert_key(&self, key: &$crate::store::KeyRecord) -> Result<(), $crate::store::StoreError> {
                let models = serde_json::to_string(&key.models).map_err(|e| $crate::store::StoreError::Corrupt {
                    table: "keys",
                    message: e.to_string(),
                })?;
                let limits = $crate::policy::limits::LimitColumns::from_limits(&key.limits);
                sqlx::query(
                    "INSERT INTO keys (id, kind, name, env, secret_hash, hint, models, created_at, \
                     expires_at, revoked_at, revoke_reason, updated_at, previous_secret_hash, \
                     previous_expires_at, suspended_at, scopes, allow_ips, description, metadata, \
                     rotated_at, org_id, project_id, owner, role, auto_rotate_webhook, rpm, tpm, \
                     max_concurrent, budget_nanos, budget_period, budget_alerts, on_anomaly) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                     $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, \
                     $32)",
                )
                .bind(&key.id)
                .bind(key.kind.as_str())
                .bind(&key.name)
                .bind(&key.env)
                .bind(&key.secret_hash)
                .bind(&key.hint)
                .bind(models)
                .bind(key.created_at)
                .bind(key.expires_at)
                .bind(key.revoked_at)
                .bind(&key.revoke_reason)
                .bind(key.updated_at)
                .bind(&key.previous_secret_hash)
                .bind(key.previous_expires_at)
                .bind(key.suspended_at)
                .bind(Self::json(&key.scopes)?)
                .bind(Self::json(&key.allow_ips)?)
                .bind(&key.description)
                .bind(Self::json(&key.metadata)?)
                .bind(key.rotated_at)
                .bind(&key.org_id)
                .bind(&key.project_id)
                .bind(&key.owner)
                .bind(&key.role)
                .bind(&key.auto_rotate_webhook)
                .bind(limits.rpm)
                .bind(limits.tpm)
                .bind(limits.max_concurrent)
                .bind(limits.budget_nanos)
                .bind(limits.budget_period)
                .bind(limits.budget_alerts)
                .bind(key.on_anomaly.map(|p| p.as_str()))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_key(&self, id: &str) -> Result<Option<$crate::store::KeyRecord>, $crate::store::StoreError> {
                let row = sqlx::query("SELECT * FROM keys WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(Self::key_from_row).transpose()
            }

            async fn list_keys(
                &self,
                kind: $crate::auth::KeyKind,
            ) -> Result<Vec<$crate::store::KeyRecord>, $crate::store::StoreError> {
                let rows = sqlx::query("SELECT * FROM keys WHERE kind = $1 ORDER BY created_at DESC, id")
                    .bind(kind.as_str())
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(Self::key_from_row).collect()
            }

            async fn find_keys(
                &self,
                kind: $crate::auth::KeyKind,
                key_query: &$crate::store::KeyQuery,
                limit: i64,
                offset: i64,
            ) -> Result<Vec<$crate::store::KeyRecord>, $crate::store::StoreError> {
                let mut query = sqlx::QueryBuilder::<$db>::new("SELECT * FROM keys");
                Self::push_key_query(&mut query, kind, key_query);
                query
                    .push(" ORDER BY created_at DESC, id LIMIT ")
                    .push_bind(limit)
                    .push(" OFFSET ")
                    .push_bind(offset);
                let rows = query.build().fetch_all(&self.pool).await?;
                rows.iter().map(Self::key_from_row).collect()
            }

            async fn revoke_keys(
                &self,
                kind: $crate::auth::KeyKind,
                key_query: &$crate::store::KeyQuery,
                at: i64,
                reason: &str,
            ) -> Result<Vec<$crate::store::KeyRecord>, $crate::store::StoreError> {
                let mut query = sqlx::QueryBuilder::<$db>::new("UPDATE keys SET revoked_at = ");
                query
                    .push_bind(at)
                    .push(", revoke_reason = ")
                    .push_bind(reason.to_string())
                    .push(", updated_at = ")
                    .push_bind(at);
                Self::push_key_query(&mut query, kind, key_query);
                query.push(" AND revoked_at IS NULL RETURNING *");
                let rows = query.build().fetch_all(&self.pool).await?;
                rows.iter().map(Self::key_from_row).collect()
            }

            async fn last_uses(
                &self,
                key_ids: &[String],
            ) -> Result<std::collections::HashMap<String, $crate::store::LastUse>, $crate::store::StoreError> {
                use sqlx::Row;
                let mut uses = std::collections::HashMap::new();
                if key_ids.is_empty() {
                    return Ok(uses);
                }
                // One index probe per key (usage_events_key_ts), whatever
                // the ledger's size.
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "SELECT u.key_id, u.ts, u.source_ip FROM usage_events u WHERE u.key_id IN (",
                );
                let mut ids = query.separated(", ");
                for id in key_ids {
                    ids.push_bind(id.clone());
                }
                query.push(
                    ") AND u.ts = (SELECT MAX(ts) FROM usage_events m WHERE m.key_id = u.key_id)",
                );
                for row in query.build().fetch_all(&self.pool).await? {
                    let key_id: String = row.try_get("key_id")?;
                    uses.insert(
                        key_id,
                        $crate::store::LastUse {
                            ts: row.try_get("ts")?,
                            source_ip: row.try_get("source_ip")?,
                        },
                    );
                }
                Ok(uses)
            }

            async fn keys_issued_between(
                &self,
                after: i64,
                through: i64,
                limit: i64,
            ) -> Result<Vec<$crate::store::KeyRecord>, $crate::store::StoreError> {
                let rows = sqlx::query(
                    "SELECT * FROM keys WHERE kind = 'data' AND revoked_at IS NULL \
                     AND COALESCE(rotated_at, created_at) > $1 \
                     AND COALESCE(rotated_at, created_at) <= $2 \
                     ORDER BY COALESCE(rotated_at, created_at), id LIMIT $3",
                )
                .bind(after)
                .bind(through)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::key_from_row).collect()
            }

            async fn keys_expiring_between(
                &self,
                after: i64,
                through: i64,
                limit: i64,
            ) -> Result<Vec<$crate::store::KeyRecord>, $crate::store::StoreError> {
                let rows = sqlx::query(
                    "SELECT * FROM keys WHERE revoked_at IS NULL \
                     AND expires_at > $1 AND expires_at <= $2 \
                     ORDER BY expires_at, id LIMIT $3",
                )
                .bind(after)
                .bind(through)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::key_from_row).collect()
            }

            async fn keys_due_for_auto_rotation(
                &self,
                through: i64,
                now: i64,
                limit: i64,
            ) -> Result<Vec<$crate::store::KeyRecord>, $crate::store::StoreError> {
                let rows = sqlx::query(
                    "SELECT * FROM keys WHERE kind = 'data' AND revoked_at IS NULL \
                     AND suspended_at IS NULL AND (expires_at IS NULL OR expires_at > $3) \
                     AND auto_rotate_webhook IS NOT NULL \
                     AND COALESCE(rotated_at, created_at) <= $1 \
                     ORDER BY COALESCE(rotated_at, created_at), id LIMIT $2",
                )
                .bind(through)
                .bind(limit)
                .bind(now)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::key_from_row).collect()
            }

            async fn try_lease(
                &self,
                name: &str,
                until: i64,
                now: i64,
            ) -> Result<bool, $crate::store::StoreError> {
                // Expiry times are kept zero-padded so that text order is
                // time order in both databases.
                let pad = |ms: i64| format!("{:020}", ms.max(0));
                sqlx::query("INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                    .bind(name)
                    .bind(pad(0))
                    .execute(&self.pool)
                    .await?;
                let done = sqlx::query("UPDATE meta SET value = $1 WHERE name = $2 AND value < $3")
                    .bind(pad(until))
                    .bind(name)
                    .bind(pad(now))
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn keys_after(
                &self,
                after: &str,
                limit: i64,
            ) -> Result<Vec<$crate::store::KeyRecord>, $crate::store::StoreError> {
                let rows = sqlx::query("SELECT * FROM keys WHERE id > $1 ORDER BY id LIMIT $2")
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(Self::key_from_row).collect()
            }

            async fn keys_changed_since(
                &self,
                since: i64,
            ) -> Result<Vec<$crate::store::KeyRecord>, $crate::store::StoreError> {
                let rows = sqlx::query("SELECT * FROM keys WHERE updated_at >= $1")
                    .bind(since)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(Self::key_from_row).collect()
            }

            async fn rotate_key(
                &self,
                id: &str,
                expected_secret_hash: Option<&str>,
                new_secret_hash: &str,
                new_hint: &str,
                previous_expires_at: i64,
                now: i64,
            ) -> Result<Option<$crate::store::KeyRecord>, $crate::store::StoreError> {
                let done = sqlx::query(
                    "UPDATE keys SET previous_secret_hash = secret_hash, previous_expires_at = $1, \
                     secret_hash = $2, hint = $3, updated_at = $4, rotated_at = $4 \
                     WHERE id = $5 AND revoked_at IS NULL AND ($6 IS NULL OR secret_hash = $6)",
                )
                .bind(previous_expires_at)
                .bind(new_secret_hash)
                .bind(new_hint)
                .bind(now)
                .bind(id)
                .bind(expected_secret_hash)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(None);
                }
                self.get_key(id).await
            }

            async fn update_key(
                &self,
                key: &$crate::store::KeyRecord,
            ) -> Result<Option<$crate::store::KeyRecord>, $crate::store::StoreError> {
                let limits = $crate::policy::limits::LimitColumns::from_limits(&key.limits);
                let done = sqlx::query(
                    "UPDATE keys SET name = $1, description = $2, models = $3, scopes = $4, \
                     allow_ips = $5, expires_at = $6, metadata = $7, updated_at = $8, owner = $10, \
                     org_id = $11, project_id = $12, auto_rotate_webhook = $13, rpm = $14, \
                     tpm = $15, max_concurrent = $16, budget_nanos = $17, budget_period = $18, \
                     budget_alerts = $19, on_anomaly = $20 \
                     WHERE id = $9 AND revoked_at IS NULL",
                )
                .bind(&key.name)
                .bind(&key.description)
                .bind(Self::json(&key.models)?)
                .bind(Self::json(&key.scopes)?)
                .bind(Self::json(&key.allow_ips)?)
                .bind(key.expires_at)
                .bind(Self::json(&key.metadata)?)
                .bind(key.updated_at)
                .bind(&key.id)
                .bind(&key.owner)
                .bind(&key.org_id)
                .bind(&key.project_id)
                .bind(&key.auto_rotate_webhook)
                .bind(limits.rpm)
                .bind(limits.tpm)
                .bind(limits.max_concurrent)
                .bind(limits.budget_nanos)
                .bind(limits.budget_period)
                .bind(limits.budget_alerts)
                .bind(key.on_anomaly.map(|p| p.as_str()))
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(None);
                }
                self.get_key(&key.id).await
            }

            async fn set_suspended(
                &self,
                id: &str,
                suspended_at: Option<i64>,
                now: i64,
            ) -> Result<Option<$crate::store::KeyRecord>, $crate::store::StoreError> {
                let done = sqlx::query(
                    "UPDATE keys SET suspended_at = $1, updated_at = $2 \
                     WHERE id = $3 AND revoked_at IS NULL",
                )
                .bind(suspended_at)
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(None);
                }
                self.get_key(id).await
            }

            async fn revoke_key(
                &self,
                id: &str,
                at: i64,
                reason: &str,
            ) -> Result<Option<$crate::store::KeyRecord>, $crate::store::StoreError> {
                sqlx::query(
                    "UPDATE keys SET revoked_at = $1, revoke_reason = $2, updated_at = $1 \
                     WHERE id = $3 AND revoked_at IS NULL",
                )
                .bind(at)
                .bind(reason)
                .bind(id)
                .execute(&self.pool)
                .await?;
                self.get_key(id).await
            }

            async fn append_usage(
                &self,
                events: &[$crate::ledger::UsageEvent],
            ) -> Result<(), $crate::store::StoreError> {
                if events.is_empty() {
                    return Ok(());
                }
                // Fixed-size chunks keep the number of distinct statements
                // small, so each is prepared once and then reused from the
                // connection's statement cache; one transaction for all.
                use sqlx::Row;
                let mut tx = self.pool.begin().await?;
                let mut inserted = std::collections::HashSet::<String>::new();
                for chunk in events.chunks($crate::store::sql::USAGE_CHUNK) {
                    let mut query = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO usage_events (request_id, ts, key_id, route, model, provider, \
                         prompt_tokens, completion_tokens, status, error_code, latency_ms, streamed, \
                         source_ip, user_agent, cached_tokens, cost_nanos, owner, project_id, org_id, \
                         token_id) ",
                    );
                    query.push_values(chunk, |mut row, e| {
                        row.push_bind(e.request_id.as_str())
                            .push_bind(e.ts)
                            .push_bind(e.key_id.as_deref())
                            .push_bind(e.route.as_str())
                            .push_bind(e.model.as_deref())
                            .push_bind(e.provider.as_deref())
                            .push_bind(e.prompt_tokens)
                            .push_bind(e.completion_tokens)
                            .push_bind(i64::from(e.status))
                            .push_bind(e.error_code.as_deref())
                            .push_bind(e.latency_ms)
                            .push_bind(i64::from(e.streamed))
                            .push_bind(e.source_ip.as_deref())
                            .push_bind(e.user_agent.as_deref())
                            .push_bind(e.cached_tokens)
                            .push_bind(e.cost_nanos)
                            .push_bind(e.owner.as_deref())
                            .push_bind(e.project_id.as_deref())
                            .push_bind(e.org_id.as_deref())
                            .push_bind(e.token_id.as_deref());
                    });
                    // Which rows were really inserted: a retried batch's
                    // rows conflict and must not count twice in the rollup.
                    query.push(" ON CONFLICT (request_id) DO NOTHING RETURNING request_id");
                    for row in query.build().fetch_all(&mut *tx).await? {
                        inserted.insert(row.try_get::<String, _>("request_id")?);
                    }
                }
                // Each inserted id counts once (a batch may hold one twice;
                // its first row is the one inserted).
                let counted: Vec<&$crate::ledger::UsageEvent> = events
                    .iter()
                    .filter(|e| inserted.remove(e.request_id.as_str()))
                    .collect();
                // Each rollup in turn, its rows in key order.
                for rollup in $crate::store::sql::Rollup::ALL {
                    let groups = $crate::store::sql::rollup(rollup, counted.iter().copied());
                    let groups: Vec<_> = groups.into_iter().collect();
                    let table = rollup.table();
                    let sums = $crate::store::sql::ROLLUP_SUMS;
                    let updates = sums
                        .iter()
                        .map(|s| format!("{s} = {table}.{s} + excluded.{s}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    for chunk in groups.chunks($crate::store::sql::ROLLUP_CHUNK) {
                        let mut query = sqlx::QueryBuilder::<$db>::new(format!(
                            "INSERT INTO {table} ({}, {}) ",
                            rollup.key_columns(),
                            sums.join(", ")
                        ));
                        query.push_values(chunk, |mut row, ((start, org, project, owner, provider, model), sums)| {
                            row.push_bind(*start)
                                .push_bind(org.as_str())
                                .push_bind(project.as_str());
                            if rollup.has_owner() {
                                row.push_bind(owner.as_str());
                            }
                            row.push_bind(provider.as_str()).push_bind(model.as_str());
                            for sum in sums {
                                row.push_bind(*sum);
                            }
                        });
                        query.push(format!(
                            " ON CONFLICT ({}) DO UPDATE SET {updates}",
                            rollup.key_columns()
                        ));
                        query.build().execute(&mut *tx).await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn usage_totals(
                &self,
                filter: &$crate::store::UsageFilter,
                by: &[$crate::store::UsageGroup],
            ) -> Result<Vec<$crate::store::UsageTotal>, $crate::store::StoreError> {
                self.grouped_usage(&$crate::store::sql::UsageSource::Ledger, filter, by, None)
                    .await
            }

            async fn spent_since(
                &self,
                subject: &$crate::policy::limits::Subject,
                since_ms: i64,
            ) -> Result<$crate::policy::limits::Nanos, $crate::store::StoreError> {
                use $crate::policy::limits::Subject;
                use sqlx::Row;
                // Each subject's condition leads an index: (key_id, ts),
                // (owner, ts), (project_id, ts), (org_id, ts).
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "SELECT CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) AS spent FROM usage_events WHERE ",
                );
                match subject {
                    Subject::Key(id) => {
                        query.push("key_id = ").push_bind(id.clone());
                    }
                    Subject::Owner { org_id, owner } => {
                        query
                            .push("owner = ")
                            .push_bind(owner.clone())
                            .push(" AND org_id = ")
                            .push_bind(org_id.clone());
                    }
                    Subject::Project(id) => {
                        query.push("project_id = ").push_bind(id.clone());
                    }
                    Subject::Organisation(id) => {
                        query.push("org_id = ").push_bind(id.clone());
                    }
                    Subject::Token(jti) => {
                        query.push("token_id = ").push_bind(jti.clone());
                    }
                }
                query.push(" AND ts >= ").push_bind(since_ms);
                let row = query.build().fetch_one(&self.pool).await?;
                Ok(row.try_get("spent")?)
            }

            async fn usage_events(
                &self,
                filter: &$crate::store::UsageFilter,
                limit: i64,
            ) -> Result<Vec<$crate::ledger::UsageEvent>, $crate::store::StoreError> {
                let mut query = sqlx::QueryBuilder::<$db>::new("SELECT * FROM usage_events");
                Self::push_filter(&mut query, filter, None, filter.since, filter.until);
                query.push(" ORDER BY ts, request_id LIMIT ").push_bind(limit);
                let rows = query.build().fetch_all(&self.pool).await?;
                rows.iter().map(Self::event_from_row).collect()
            }

            async fn append_audit(
                &self,
                event: &$crate::store::AuditEvent,
            ) -> Result<(), $crate::store::StoreError> {
                let fields = serde_json::to_string(&event.fields).map_err(|e| {
                    $crate::store::StoreError::Corrupt {
                        table: "audit_events",
                        message: e.to_string(),
                    }
                })?;
                sqlx::query(
                    "INSERT INTO audit_events (ts, actor, action, target, source_ip, status, fields) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(event.ts)
                .bind(&event.actor)
                .bind(&event.action)
                .bind(&event.target)
                .bind(&event.source_ip)
                .bind(i64::from(event.status))
                .bind(fields)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn audit_events(
                &self,
                filter: &$crate::store::AuditFilter,
                limit: i64,
            ) -> Result<Vec<$crate::store::AuditEvent>, $crate::store::StoreError> {
                use sqlx::Row;
                let mut query = sqlx::QueryBuilder::<$db>::new("SELECT * FROM audit_events WHERE 1 = 1");
                for (column, value) in [
                    ("actor", &filter.actor),
                    ("action", &filter.action),
                    ("target", &filter.target),
                ] {
                    if let Some(value) = value {
                        query.push(format!(" AND {column} = ")).push_bind(value.clone());
                    }
                }
                if let Some(since) = filter.since {
                    query.push(" AND ts >= ").push_bind(since);
                }
                if let Some(until) = filter.until {
                    query.push(" AND ts < ").push_bind(until);
                }
                query.push(" ORDER BY ts DESC, id DESC LIMIT ").push_bind(limit);
                let rows = query.build().fetch_all(&self.pool).await?;
                rows.iter()
                    .map(|row| {
                        let status: i64 = row.try_get("status")?;
                        let fields: String = row.try_get("fields")?;
                        Ok($crate::store::AuditEvent {
                            ts: row.try_get("ts")?,
                            actor: row.try_get("actor")?,
                            action: row.try_get("action")?,
                            target: row.try_get("target")?,
                            source_ip: row.try_get("source_ip")?,
                            status: u16::try_from(status).unwrap_or(0),
                            fields: serde_json::from_str(&fields).map_err(|e| {
                                $crate::store::StoreError::Corrupt {
                                    table: "audit_events",
                                    message: e.to_string(),
                                }
                            })?,
                        })
                    })
                    .collect()
            }
        }
    };
}

pub(crate) use impl_store;
