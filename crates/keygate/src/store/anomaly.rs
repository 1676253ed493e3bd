//! What the anomaly detectors read from the store: a key's recent history
//! (seeded once per key after a start, off the request path) and the
//! projects' anomaly policy.

use super::StoreError;
use crate::anomaly::OnAnomaly;

/// Width of the history's time buckets: 15 minutes, so that local hours
/// in every time zone (some are 30 or 45 minutes off UTC) can be told.
pub const HISTORY_BUCKET_MS: i64 = 900_000;

/// A key's use between two times.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyHistory {
    /// `(bucket, requests, cost_nanos)` per 15-minute bucket (Unix ms /
    /// [`HISTORY_BUCKET_MS`]) with any use, ascending.
    pub buckets: Vec<(i64, i64, i64)>,
    /// Distinct client addresses, at most the number asked for.
    pub sources: Vec<String>,
}

/// Persistence the anomaly detectors need; every
/// [`Store`](super::Store) implements it.
#[async_trait::async_trait]
pub trait AnomalyStore {
    /// `key_id`'s ledger rows in `[since, until)` (Unix ms), summed per
    /// 15-minute bucket, and up to `max_sources` of its client addresses.
    async fn key_history(
        &self,
        key_id: &str,
        since: i64,
        until: i64,
        max_sources: i64,
    ) -> Result<KeyHistory, StoreError>;

    /// Set (or clear) a project's anomaly policy; the project as now
    /// stored, `None` when there is no such project.
    async fn set_project_on_anomaly(
        &self,
        project_id: &str,
        on_anomaly: Option<OnAnomaly>,
        now: i64,
    ) -> Result<Option<super::Project>, StoreError>;
}

/// Read an `on_anomaly` column.
pub(crate) fn read_on_anomaly(
    value: Option<String>,
    table: &'static str,
) -> Result<Option<OnAnomaly>, StoreError> {
    value
        .map(|name| {
            OnAnomaly::parse(&name).ok_or_else(|| StoreError::Corrupt {
                table,
                message: format!("on_anomaly '{name}'"),
            })
        })
        .transpose()
}

macro_rules! impl_anomaly_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::AnomalyStore for $store {
            async fn key_history(
                &self,
                key_id: &str,
                since: i64,
                until: i64,
                max_sources: i64,
            ) -> Result<$crate::store::KeyHistory, $crate::store::StoreError> {
                use sqlx::Row;
                // Both lead with (key_id, ts): the usage_events_key_ts index.
                let rows = sqlx::query(
                    "SELECT CAST(ts / 900000 AS BIGINT) AS bucket, COUNT(*) AS requests, \
                     CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) AS cost \
                     FROM usage_events WHERE key_id = $1 AND ts >= $2 AND ts < $3 \
                     GROUP BY CAST(ts / 900000 AS BIGINT) ORDER BY bucket",
                )
                .bind(key_id)
                .bind(since)
                .bind(until)
                .fetch_all(&self.pool)
                .await?;
                let mut buckets = Vec::with_capacity(rows.len());
                for row in &rows {
                    buckets.push((
                        row.try_get("bucket")?,
                        row.try_get("requests")?,
                        row.try_get("cost")?,
                    ));
                }
                let rows = sqlx::query(
                    "SELECT DISTINCT source_ip FROM usage_events \
                     WHERE key_id = $1 AND ts >= $2 AND ts < $3 AND source_ip IS NOT NULL \
                     LIMIT $4",
                )
                .bind(key_id)
                .bind(since)
                .bind(until)
                .bind(max_sources)
                .fetch_all(&self.pool)
                .await?;
                let mut sources = Vec::with_capacity(rows.len());
                for row in &rows {
                    sources.push(row.try_get("source_ip")?);
                }
                Ok($crate::store::KeyHistory { buckets, sources })
            }

            async fn set_project_on_anomaly(
                &self,
                project_id: &str,
                on_anomaly: Option<$crate::anomaly::OnAnomaly>,
                now: i64,
            ) -> Result<Option<$crate::store::Project>, $crate::store::StoreError> {
                let done = sqlx::query(
                    "UPDATE projects SET on_anomaly = $1, updated_at = $2 WHERE id = $3",
                )
                .bind(on_anomaly.map(|p| p.as_str()))
                .bind(now)
                .bind(project_id)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(None);
                }
                $crate::store::OrganisationStore::get_project(self, project_id).await
            }
        }
    };
}

pub(crate) use impl_anomaly_store;
