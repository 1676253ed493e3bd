//! Persistence of leak defence: reported leaks, and the ledger read as an
//! exposure report (what one key did during a window).

use super::StoreError;

/// A key reported as leaked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeakReportRecord {
    /// Public id (`leak_…`).
    pub id: String,
    /// The key that leaked.
    pub key_id: String,
    /// The reporter's name for the token type.
    pub token_type: String,
    /// Where it was found.
    pub url: Option<String>,
    /// What kind of place that is (`content`, `commit`, …).
    pub source: Option<String>,
    /// Who reported it (the identifier of the public key that signed).
    pub reporter: String,
    /// Unix ms.
    pub reported_at: i64,
}

/// One group of an exposure report.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ExposureGroup {
    /// The model, source address, user agent or hour (`"07"`, UTC).
    pub name: String,
    /// Requests.
    pub requests: i64,
    /// Prompt plus completion tokens.
    pub tokens: i64,
    /// Spend, nanodollars.
    pub cost_nanos: i64,
    /// First request, Unix ms.
    pub first_ts: i64,
    /// Last request, Unix ms.
    pub last_ts: i64,
}

/// What a key did between two times, from the ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Exposure {
    /// Requests, accepted or refused.
    pub requests: i64,
    /// Of those, refused or failed (status ≥ 400).
    pub refused: i64,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
    /// Spend, nanodollars.
    pub cost_nanos: i64,
    /// By model, busiest first.
    pub models: Vec<ExposureGroup>,
    /// By client address, busiest first.
    pub sources: Vec<ExposureGroup>,
    /// By user agent, busiest first.
    pub user_agents: Vec<ExposureGroup>,
    /// By hour of the day (UTC), in order.
    pub hours: Vec<ExposureGroup>,
}

/// Most groups of each kind an exposure report lists.
pub const MAX_GROUPS: i64 = 1000;

/// Persistence of leak reports and exposure; every [`Store`](super::Store)
/// implements it.
#[async_trait::async_trait]
pub trait LeakStore {
    /// Record a leak report.
    async fn insert_leak_report(&self, report: &LeakReportRecord) -> Result<(), StoreError>;
    /// Every leak report of a key, oldest first.
    async fn leak_reports(&self, key_id: &str) -> Result<Vec<LeakReportRecord>, StoreError>;
    /// What `key_id` did from `since` (inclusive) to `until` (exclusive),
    /// Unix ms, by the ledger rows the store holds.
    async fn exposure(&self, key_id: &str, since: i64, until: i64) -> Result<Exposure, StoreError>;
}

macro_rules! impl_leak_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::LeakStore for $store {
            async fn insert_leak_report(
                &self,
                report: &$crate::store::LeakReportRecord,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO leak_reports (id, key_id, token_type, url, source, reporter, \
                     reported_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&report.id)
                .bind(&report.key_id)
                .bind(&report.token_type)
                .bind(&report.url)
                .bind(&report.source)
                .bind(&report.reporter)
                .bind(report.reported_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn leak_reports(
                &self,
                key_id: &str,
            ) -> Result<Vec<$crate::store::LeakReportRecord>, $crate::store::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT * FROM leak_reports WHERE key_id = $1 ORDER BY reported_at, id",
                )
                .bind(key_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok($crate::store::LeakReportRecord {
                            id: row.try_get("id")?,
                            key_id: row.try_get("key_id")?,
                            token_type: row.try_get("token_type")?,
                            url: row.try_get("url")?,
                            source: row.try_get("source")?,
                            reporter: row.try_get("reporter")?,
                            reported_at: row.try_get("reported_at")?,
                        })
                    })
                    .collect()
            }

            async fn exposure(
                &self,
                key_id: &str,
                since: i64,
                until: i64,
            ) -> Result<$crate::store::Exposure, $crate::store::StoreError> {
                use sqlx::Row;
                // Every query reads the (key_id, ts) index.
                const WINDOW: &str = " FROM usage_events WHERE key_id = $1 AND ts >= $2 AND ts < $3";
                let row = sqlx::query(&format!(
                    "SELECT COUNT(*) AS requests, \
                     CAST(COALESCE(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), 0) AS BIGINT) AS refused, \
                     CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) AS prompt_tokens, \
                     CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT) AS completion_tokens, \
                     CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) AS cost_nanos{WINDOW}"
                ))
                .bind(key_id)
                .bind(since)
                .bind(until)
                .fetch_one(&self.pool)
                .await?;
                let mut exposure = $crate::store::Exposure {
                    requests: row.try_get("requests")?,
                    refused: row.try_get("refused")?,
                    prompt_tokens: row.try_get("prompt_tokens")?,
                    completion_tokens: row.try_get("completion_tokens")?,
                    cost_nanos: row.try_get("cost_nanos")?,
                    ..Default::default()
                };
                let limit = $crate::store::leaks::MAX_GROUPS;
                for (column, order) in [
                    ("COALESCE(model, '')", "requests DESC, name"),
                    ("COALESCE(source_ip, '')", "requests DESC, name"),
                    ("COALESCE(user_agent, '')", "requests DESC, name"),
                    ("CAST((ts / 3600000) % 24 AS BIGINT)", "name"),
                ] {
                    let hours = column.starts_with("CAST");
                    let rows = sqlx::query(&format!(
                        "SELECT {column} AS name, COUNT(*) AS requests, \
                         CAST(COALESCE(SUM(prompt_tokens + completion_tokens), 0) AS BIGINT) AS tokens, \
                         CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) AS cost_nanos, \
                         MIN(ts) AS first_ts, MAX(ts) AS last_ts{WINDOW} \
                         GROUP BY {column} ORDER BY {order} LIMIT {limit}"
                    ))
                    .bind(key_id)
                    .bind(since)
                    .bind(until)
                    .fetch_all(&self.pool)
                    .await?;
                    let mut groups = Vec::with_capacity(rows.len());
                    for row in &rows {
                        let name = if hours {
                            let hour: i64 = row.try_get("name")?;
                            format!("{hour:02}")
                        } else {
                            row.try_get("name")?
                        };
                        groups.push($crate::store::ExposureGroup {
                            name,
                            requests: row.try_get("requests")?,
                            tokens: row.try_get("tokens")?,
                            cost_nanos: row.try_get("cost_nanos")?,
                            first_ts: row.try_get("first_ts")?,
                            last_ts: row.try_get("last_ts")?,
                        });
                    }
                    if hours {
                        groups.sort_by(|a, b| a.name.cmp(&b.name));
                        exposure.hours = groups;
                    } else if column.contains("model") {
                        exposure.models = groups;
                    } else if column.contains("source_ip") {
                        exposure.sources = groups;
                    } else {
                        exposure.user_agents = groups;
                    }
                }
                Ok(exposure)
            }
        }
    };
}

pub(crate) use impl_leak_store;
