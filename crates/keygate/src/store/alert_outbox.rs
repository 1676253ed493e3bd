//! The alert outbox: alerts and one delivery row per (alert, channel), so
//! that an alert handed to [`crate::alerts::Alerts::raise`] survives a crash
//! and reaches every channel, and several nodes never send a delivery twice
//! at the same time (rows are claimed with a lease before they are sent).

use super::StoreError;

/// An alert as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertRecord {
    /// Public id (`alert_…`).
    pub id: String,
    /// What happened, dotted (`key.rotation_due`).
    pub kind: String,
    /// What it is about (a key id, …).
    pub subject: Option<String>,
    /// Who is concerned (the key's owner, …).
    pub owner: Option<String>,
    /// One line for people.
    pub message: String,
    /// Machine-readable particulars: a JSON value, usually an object.
    pub details: serde_json::Value,
    /// Raising a second alert with the same key is a no-op.
    pub dedupe_key: Option<String>,
    /// Unix ms.
    pub created_at: i64,
}

/// A delivery to create along with its alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAlertDelivery {
    /// Public id (`dlv_…`), sent as `x-keygate-delivery`.
    pub id: String,
    /// The configured channel's name.
    pub channel: String,
}

/// One (alert, channel) delivery as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertDeliveryRecord {
    /// Public id (`dlv_…`).
    pub id: String,
    /// The alert.
    pub alert_id: String,
    /// The configured channel's name.
    pub channel: String,
    /// Attempts started so far.
    pub attempts: i64,
    /// Unix ms of the next attempt (while pending).
    pub next_attempt_at: i64,
    /// Unix ms until which a worker holds the row.
    pub claimed_until: Option<i64>,
    /// Unix ms when a receiver accepted it.
    pub delivered_at: Option<i64>,
    /// Unix ms when retries were given up.
    pub failed_at: Option<i64>,
    /// Why the last attempt failed (a status line, never a secret).
    pub last_error: Option<String>,
    /// Unix ms.
    pub created_at: i64,
}

/// A delivery a worker claimed, with its alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedAlertDelivery {
    /// The delivery (its `attempts` already counts this attempt).
    pub delivery: AlertDeliveryRecord,
    /// The alert to send.
    pub alert: AlertRecord,
}

/// What became of a claimed delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlertDeliveryOutcome {
    /// A receiver accepted it at this Unix ms.
    Delivered {
        /// Unix ms.
        at: i64,
    },
    /// It failed and is tried again at `next_attempt_at`.
    Retry {
        /// Unix ms.
        next_attempt_at: i64,
        /// Why it failed.
        error: String,
    },
    /// It failed and will not be tried again.
    GaveUp {
        /// Unix ms.
        at: i64,
        /// Why the last attempt failed.
        error: String,
    },
}

/// Persistence of the alert outbox; every [`Store`](super::Store)
/// implements it.
#[async_trait::async_trait]
pub trait AlertStore {
    /// Store an alert and its deliveries in one transaction. `false` (and
    /// nothing stored) when an alert with the same `dedupe_key` exists.
    async fn insert_alert(
        &self,
        alert: &AlertRecord,
        deliveries: &[NewAlertDelivery],
    ) -> Result<bool, StoreError>;

    /// Claim up to `limit` pending deliveries of `channels` that are due at
    /// `now` and not claimed by anyone else: each gets `claim_token`, a lease
    /// until `lease_until` and one more attempt. Atomic across nodes: two
    /// workers never claim the same row while a lease holds.
    async fn claim_alert_deliveries(
        &self,
        channels: &[String],
        now: i64,
        lease_until: i64,
        claim_token: &str,
        limit: i64,
    ) -> Result<Vec<ClaimedAlertDelivery>, StoreError>;

    /// Record the outcome of a claimed delivery and release the claim.
    /// `false` when the claim was lost (its lease ran out and another worker
    /// took the row): nothing is changed then.
    async fn finish_alert_delivery(
        &self,
        delivery_id: &str,
        claim_token: &str,
        outcome: &AlertDeliveryOutcome,
    ) -> Result<bool, StoreError>;

    /// The earliest Unix ms at which a pending delivery of `channels`
    /// becomes claimable (possibly in the past), or `None` when none is
    /// pending.
    async fn next_alert_delivery_due(&self, channels: &[String])
        -> Result<Option<i64>, StoreError>;

    /// One alert by id.
    async fn get_alert(&self, id: &str) -> Result<Option<AlertRecord>, StoreError>;

    /// The newest alerts, newest first, at most `limit`.
    async fn recent_alerts(&self, limit: i64) -> Result<Vec<AlertRecord>, StoreError>;

    /// Deliveries of one alert, by channel.
    async fn alert_deliveries(
        &self,
        alert_id: &str,
    ) -> Result<Vec<AlertDeliveryRecord>, StoreError>;
}

/// `$skip_locked` is appended to the claim's row selection: ` FOR UPDATE
/// SKIP LOCKED` on PostgreSQL, where several nodes claim concurrently;
/// empty on SQLite, where one statement is atomic anyway.
macro_rules! impl_alert_store {
    ($store:ty, $db:ty, $skip_locked:literal) => {
        impl $store {
            fn alert_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::store::AlertRecord, $crate::store::StoreError> {
                use sqlx::Row;
                let details: String = row.try_get("details")?;
                Ok($crate::store::AlertRecord {
                    id: row.try_get("id")?,
                    kind: row.try_get("kind")?,
                    subject: row.try_get("subject")?,
                    owner: row.try_get("owner")?,
                    message: row.try_get("message")?,
                    details: serde_json::from_str(&details).map_err(|e| {
                        $crate::store::StoreError::Corrupt {
                            table: "alerts",
                            message: format!("details: {e}"),
                        }
                    })?,
                    dedupe_key: row.try_get("dedupe_key")?,
                    created_at: row.try_get("created_at")?,
                })
            }

            fn alert_delivery_from_row(
                row: &<$db as sqlx::Database>::Row,
                id_column: &str,
            ) -> Result<$crate::store::AlertDeliveryRecord, $crate::store::StoreError> {
                use sqlx::Row;
                Ok($crate::store::AlertDeliveryRecord {
                    id: row.try_get(id_column)?,
                    alert_id: row.try_get("alert_id")?,
                    channel: row.try_get("channel")?,
                    attempts: row.try_get("attempts")?,
                    next_attempt_at: row.try_get("next_attempt_at")?,
                    claimed_until: row.try_get("claimed_until")?,
                    delivered_at: row.try_get("delivered_at")?,
                    failed_at: row.try_get("failed_at")?,
                    last_error: row.try_get("last_error")?,
                    created_at: row.try_get("delivery_created_at")?,
                })
            }

            fn push_channels(
                query: &mut sqlx::QueryBuilder<'_, $db>,
                channels: &[String],
            ) {
                query.push(" AND channel IN (");
                let mut list = query.separated(", ");
                for channel in channels {
                    list.push_bind(channel.clone());
                }
                list.push_unseparated(")");
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::AlertStore for $store {
            async fn insert_alert(
                &self,
                alert: &$crate::store::AlertRecord,
                deliveries: &[$crate::store::NewAlertDelivery],
            ) -> Result<bool, $crate::store::StoreError> {
                let details = serde_json::to_string(&alert.details).map_err(|e| {
                    $crate::store::StoreError::Corrupt {
                        table: "alerts",
                        message: format!("details: {e}"),
                    }
                })?;
                let mut tx = self.pool.begin().await?;
                let inserted = sqlx::query(
                    "INSERT INTO alerts (id, kind, subject, owner, message, details, dedupe_key, \
                     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (dedupe_key) DO NOTHING",
                )
                .bind(&alert.id)
                .bind(&alert.kind)
                .bind(&alert.subject)
                .bind(&alert.owner)
                .bind(&alert.message)
                .bind(&details)
                .bind(&alert.dedupe_key)
                .bind(alert.created_at)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !inserted {
                    tx.rollback().await?;
                    return Ok(false);
                }
                for delivery in deliveries {
                    sqlx::query(
                        "INSERT INTO alert_deliveries (id, alert_id, channel, attempts, \
                         next_attempt_at, created_at) VALUES ($1, $2, $3, 0, $4, $4)",
                    )
                    .bind(&delivery.id)
                    .bind(&alert.id)
                    .bind(&delivery.channel)
                    .bind(alert.created_at)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn claim_alert_deliveries(
                &self,
                channels: &[String],
                now: i64,
                lease_until: i64,
                claim_token: &str,
                limit: i64,
            ) -> Result<Vec<$crate::store::ClaimedAlertDelivery>, $crate::store::StoreError> {
                if channels.is_empty() || limit <= 0 {
                    return Ok(Vec::new());
                }
                let mut claim = sqlx::QueryBuilder::<$db>::new(
                    "UPDATE alert_deliveries SET claimed_until = ",
                );
                claim
                    .push_bind(lease_until)
                    .push(", claim_token = ")
                    .push_bind(claim_token.to_string())
                    .push(", attempts = attempts + 1 WHERE id IN (SELECT id FROM alert_deliveries \
                           WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= ")
                    .push_bind(now)
                    .push(" AND (claimed_until IS NULL OR claimed_until <= ")
                    .push_bind(now)
                    .push(")");
                Self::push_channels(&mut claim, channels);
                claim
                    .push(" ORDER BY next_attempt_at LIMIT ")
                    .push_bind(limit)
                    .push(concat!($skip_locked, ")"));
                let claimed = claim.build().execute(&self.pool).await?.rows_affected();
                if claimed == 0 {
                    return Ok(Vec::new());
                }
                let rows = sqlx::query(
                    "SELECT d.id AS delivery_id, d.alert_id, d.channel, d.attempts, \
                     d.next_attempt_at, d.claimed_until, d.delivered_at, d.failed_at, \
                     d.last_error, d.created_at AS delivery_created_at, a.* \
                     FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id \
                     WHERE d.claim_token = $1 ORDER BY d.next_attempt_at",
                )
                .bind(claim_token)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok($crate::store::ClaimedAlertDelivery {
                            delivery: Self::alert_delivery_from_row(row, "delivery_id")?,
                            alert: Self::alert_from_row(row)?,
                        })
                    })
                    .collect()
            }

            async fn finish_alert_delivery(
                &self,
                delivery_id: &str,
                claim_token: &str,
                outcome: &$crate::store::AlertDeliveryOutcome,
            ) -> Result<bool, $crate::store::StoreError> {
                use $crate::store::AlertDeliveryOutcome as Outcome;
                let (delivered_at, failed_at, next_attempt_at, error) = match outcome {
                    Outcome::Delivered { at } => (Some(*at), None, None, None),
                    Outcome::Retry {
                        next_attempt_at,
                        error,
                    } => (None, None, Some(*next_attempt_at), Some(error.as_str())),
                    Outcome::GaveUp { at, error } => (None, Some(*at), None, Some(error.as_str())),
                };
                let done = sqlx::query(
                    "UPDATE alert_deliveries SET claimed_until = NULL, claim_token = NULL, \
                     delivered_at = $1, failed_at = $2, \
                     next_attempt_at = COALESCE($3, next_attempt_at), \
                     last_error = COALESCE($4, last_error) \
                     WHERE id = $5 AND claim_token = $6",
                )
                .bind(delivered_at)
                .bind(failed_at)
                .bind(next_attempt_at)
                .bind(error)
                .bind(delivery_id)
                .bind(claim_token)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn next_alert_delivery_due(
                &self,
                channels: &[String],
            ) -> Result<Option<i64>, $crate::store::StoreError> {
                use sqlx::Row;
                if channels.is_empty() {
                    return Ok(None);
                }
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "SELECT MIN(CASE WHEN claimed_until IS NOT NULL AND claimed_until > \
                     next_attempt_at THEN claimed_until ELSE next_attempt_at END) AS due \
                     FROM alert_deliveries WHERE delivered_at IS NULL AND failed_at IS NULL",
                );
                Self::push_channels(&mut query, channels);
                let row = query.build().fetch_one(&self.pool).await?;
                Ok(row.try_get("due")?)
            }

            async fn get_alert(
                &self,
                id: &str,
            ) -> Result<Option<$crate::store::AlertRecord>, $crate::store::StoreError> {
                let row = sqlx::query("SELECT * FROM alerts WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(Self::alert_from_row).transpose()
            }

            async fn recent_alerts(
                &self,
                limit: i64,
            ) -> Result<Vec<$crate::store::AlertRecord>, $crate::store::StoreError> {
                let rows =
                    sqlx::query("SELECT * FROM alerts ORDER BY created_at DESC, id DESC LIMIT $1")
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await?;
                rows.iter().map(Self::alert_from_row).collect()
            }

            async fn alert_deliveries(
                &self,
                alert_id: &str,
            ) -> Result<Vec<$crate::store::AlertDeliveryRecord>, $crate::store::StoreError> {
                let rows = sqlx::query(
                    "SELECT *, created_at AS delivery_created_at FROM alert_deliveries \
                     WHERE alert_id = $1 ORDER BY channel",
                )
                .bind(alert_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| Self::alert_delivery_from_row(row, "id"))
                    .collect()
            }
        }
    };
}

pub(crate) use impl_alert_store;
