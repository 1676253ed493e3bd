//! Limits on projects, organisations and owners, prepaid balances and their
//! top-ups. Keys carry their limits on their own row (see
//! [`KeyRecord::limits`](super::KeyRecord::limits)); everything else is read
//! by every node through [`LimitStore::subject_limits_changed_since`], about
//! once a second, into an in-memory copy the request path consults.

use super::StoreError;
use crate::policy::limits::{Budget, LimitColumns, Limits, Nanos, SubjectLimits};

/// One owner's budget within an organisation: every key of that owner in
/// the organisation spends from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerBudget {
    /// The organisation.
    pub org_id: String,
    /// The owner, exactly as keys name it.
    pub owner: String,
    /// The budget.
    pub budget: Budget,
    /// Unix ms of the last change.
    pub updated_at: i64,
}

/// One top-up of an organisation's prepaid balance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BalanceTopUp {
    /// Public id (`topup_…`).
    pub id: String,
    /// The organisation.
    pub org_id: String,
    /// Amount added, in nanos.
    pub amount: Nanos,
    /// Unix ms.
    pub created_at: i64,
    /// Id of the admin credential that made it.
    pub actor: String,
}

/// Persistence of the limits set on projects, organisations and owners;
/// every [`Store`](super::Store) implements it.
#[async_trait::async_trait]
pub trait LimitStore {
    /// Every project, organisation and owner budget whose `updated_at` is
    /// after `cursor_ms` (`0`: every one), oldest change first. A removed
    /// owner budget comes back with `limits.budget == None`, as does a
    /// project or organisation whose budget was removed: `None` always means
    /// "no limit of that kind any more". The writer's clock sets
    /// `updated_at`, and a change committed late can carry an earlier time,
    /// so pollers should ask from a little before the newest change they
    /// have seen; applying the same row twice is harmless.
    async fn subject_limits_changed_since(
        &self,
        cursor_ms: i64,
    ) -> Result<Vec<SubjectLimits>, StoreError>;

    /// Replace a project's limits; the project as now stored, or `None`
    /// when there is no such project.
    async fn set_project_limits(
        &self,
        project_id: &str,
        limits: &Limits,
        now: i64,
    ) -> Result<Option<super::Project>, StoreError>;

    /// Replace (or with `None` remove) an organisation's budget, the only
    /// limit an organisation carries; the organisation as now stored, or
    /// `None` when there is no such organisation.
    async fn set_organisation_limits(
        &self,
        org_id: &str,
        budget: Option<&Budget>,
        now: i64,
    ) -> Result<Option<super::Organisation>, StoreError>;

    /// Add `amount` nanos to an organisation's prepaid balance (making it
    /// prepaid if it was not) and record the top-up with the `actor` that
    /// made it, atomically. Returns the new total of everything topped up,
    /// or `None` (nothing changed) when there is no such organisation or
    /// the total would exceed [`MAX_PREPAID`](crate::policy::limits::MAX_PREPAID).
    async fn top_up_balance(
        &self,
        org_id: &str,
        amount: Nanos,
        actor: &str,
        now: i64,
    ) -> Result<Option<Nanos>, StoreError>;

    /// An organisation's top-ups, newest first, at most `limit`.
    async fn balance_topups(
        &self,
        org_id: &str,
        limit: i64,
    ) -> Result<Vec<BalanceTopUp>, StoreError>;

    /// Set (`Some`) or remove (`None`) the budget of `owner` within an
    /// existing organisation. A removal keeps the row as a tombstone so that
    /// [`subject_limits_changed_since`](Self::subject_limits_changed_since)
    /// reports it. Returns whether a budget is set (`Some`) or was removed
    /// (`None`: `false` when there was none to remove).
    async fn set_owner_budget(
        &self,
        org_id: &str,
        owner: &str,
        budget: Option<&Budget>,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// The owner budgets of an organisation (not removed ones), by owner.
    async fn owner_budgets(&self, org_id: &str) -> Result<Vec<OwnerBudget>, StoreError>;
}

/// The limits kept in a row's limit columns (with `rates`, the rate and
/// concurrency columns too; organisations and owners have only a budget).
pub(crate) fn read_limits<'r, R>(
    row: &'r R,
    table: &'static str,
    rates: bool,
) -> Result<Limits, StoreError>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let mut columns = LimitColumns {
        budget_nanos: row.try_get("budget_nanos")?,
        budget_period: row.try_get("budget_period")?,
        budget_alerts: row.try_get("budget_alerts")?,
        ..LimitColumns::default()
    };
    if rates {
        columns.rpm = row.try_get("rpm")?;
        columns.tpm = row.try_get("tpm")?;
        columns.max_concurrent = row.try_get("max_concurrent")?;
    }
    columns
        .into_limits()
        .map_err(|message| StoreError::Corrupt { table, message })
}

macro_rules! impl_limit_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::LimitStore for $store {
            async fn subject_limits_changed_since(
                &self,
                cursor_ms: i64,
            ) -> Result<Vec<$crate::policy::limits::SubjectLimits>, $crate::store::StoreError> {
                use $crate::policy::limits::{Subject, SubjectLimits};
                use $crate::store::limits::read_limits;
                use sqlx::Row;
                // `$1 <= 0` asks for everything, including rows never
                // changed since the migration (updated_at 0).
                const CHANGED: &str = " WHERE updated_at > $1 OR $1 <= 0";
                let mut changed = Vec::new();
                let rows = sqlx::query(&format!(
                    "SELECT id, rpm, tpm, max_concurrent, budget_nanos, budget_period, \
                     budget_alerts, updated_at FROM projects{CHANGED}"
                ))
                .bind(cursor_ms)
                .fetch_all(&self.pool)
                .await?;
                for row in &rows {
                    changed.push(SubjectLimits {
                        subject: Subject::Project(row.try_get("id")?),
                        limits: read_limits(row, "projects", true)?,
                        prepaid: None,
                        updated_at: row.try_get("updated_at")?,
                    });
                }
                let rows = sqlx::query(&format!(
                    "SELECT id, budget_nanos, budget_period, budget_alerts, prepaid_nanos, \
                     updated_at FROM organisations{CHANGED}"
                ))
                .bind(cursor_ms)
                .fetch_all(&self.pool)
                .await?;
                for row in &rows {
                    changed.push(SubjectLimits {
                        subject: Subject::Organisation(row.try_get("id")?),
                        limits: read_limits(row, "organisations", false)?,
                        prepaid: row.try_get("prepaid_nanos")?,
                        updated_at: row.try_get("updated_at")?,
                    });
                }
                let rows = sqlx::query(&format!(
                    "SELECT org_id, owner, budget_nanos, budget_period, budget_alerts, \
                     deleted_at, updated_at FROM owner_budgets{CHANGED}"
                ))
                .bind(cursor_ms)
                .fetch_all(&self.pool)
                .await?;
                for row in &rows {
                    let deleted_at: Option<i64> = row.try_get("deleted_at")?;
                    let mut limits = read_limits(row, "owner_budgets", false)?;
                    if deleted_at.is_some() {
                        // A tombstone: the budget it held is gone.
                        limits.budget = None;
                    }
                    changed.push(SubjectLimits {
                        subject: Subject::Owner {
                            org_id: row.try_get("org_id")?,
                            owner: row.try_get("owner")?,
                        },
                        limits,
                        prepaid: None,
                        updated_at: row.try_get("updated_at")?,
                    });
                }
                changed.sort_by_key(|c| c.updated_at);
                Ok(changed)
            }

            async fn set_project_limits(
                &self,
                project_id: &str,
                limits: &$crate::policy::limits::Limits,
                now: i64,
            ) -> Result<Option<$crate::store::Project>, $crate::store::StoreError> {
                let columns = $crate::policy::limits::LimitColumns::from_limits(limits);
                let done = sqlx::query(
                    "UPDATE projects SET rpm = $1, tpm = $2, max_concurrent = $3, \
                     budget_nanos = $4, budget_period = $5, budget_alerts = $6, updated_at = $7 \
                     WHERE id = $8",
                )
                .bind(columns.rpm)
                .bind(columns.tpm)
                .bind(columns.max_concurrent)
                .bind(columns.budget_nanos)
                .bind(columns.budget_period)
                .bind(columns.budget_alerts)
                .bind(now)
                .bind(project_id)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(None);
                }
                $crate::store::OrganisationStore::get_project(self, project_id).await
            }

            async fn set_organisation_limits(
                &self,
                org_id: &str,
                budget: Option<&$crate::policy::limits::Budget>,
                now: i64,
            ) -> Result<Option<$crate::store::Organisation>, $crate::store::StoreError> {
                let columns = $crate::policy::limits::LimitColumns::from_limits(
                    &$crate::policy::limits::Limits {
                        budget: budget.cloned(),
                        ..Default::default()
                    },
                );
                let done = sqlx::query(
                    "UPDATE organisations SET budget_nanos = $1, budget_period = $2, \
                     budget_alerts = $3, updated_at = $4 WHERE id = $5",
                )
                .bind(columns.budget_nanos)
                .bind(columns.budget_period)
                .bind(columns.budget_alerts)
                .bind(now)
                .bind(org_id)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(None);
                }
                $crate::store::OrganisationStore::get_organisation(self, org_id).await
            }

            async fn top_up_balance(
                &self,
                org_id: &str,
                amount: $crate::policy::limits::Nanos,
                actor: &str,
                now: i64,
            ) -> Result<Option<$crate::policy::limits::Nanos>, $crate::store::StoreError> {
                use sqlx::Row;
                let max = $crate::policy::limits::MAX_PREPAID;
                if !(1..=max).contains(&amount) {
                    return Ok(None);
                }
                // The increment and its record commit together: a balance
                // never holds money its history does not explain. The bound
                // is checked in the same statement, so concurrent top-ups
                // cannot pass it together.
                let mut tx = self.pool.begin().await?;
                let row = sqlx::query(
                    "UPDATE organisations SET prepaid_nanos = COALESCE(prepaid_nanos, 0) + $1, \
                     updated_at = $2 WHERE id = $3 AND COALESCE(prepaid_nanos, 0) <= $4 \
                     RETURNING prepaid_nanos",
                )
                .bind(amount)
                .bind(now)
                .bind(org_id)
                .bind(max - amount)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                let total: Option<i64> = row.try_get("prepaid_nanos")?;
                sqlx::query(
                    "INSERT INTO balance_topups (id, org_id, amount_nanos, created_at, actor) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind($crate::auth::key::new_id("topup"))
                .bind(org_id)
                .bind(amount)
                .bind(now)
                .bind(actor)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(total)
            }

            async fn balance_topups(
                &self,
                org_id: &str,
                limit: i64,
            ) -> Result<Vec<$crate::store::BalanceTopUp>, $crate::store::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT * FROM balance_topups WHERE org_id = $1 \
                     ORDER BY created_at DESC, id DESC LIMIT $2",
                )
                .bind(org_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok($crate::store::BalanceTopUp {
                            id: row.try_get("id")?,
                            org_id: row.try_get("org_id")?,
                            amount: row.try_get("amount_nanos")?,
                            created_at: row.try_get("created_at")?,
                            actor: row.try_get("actor")?,
                        })
                    })
                    .collect()
            }

            async fn set_owner_budget(
                &self,
                org_id: &str,
                owner: &str,
                budget: Option<&$crate::policy::limits::Budget>,
                now: i64,
            ) -> Result<bool, $crate::store::StoreError> {
                let Some(budget) = budget else {
                    let done = sqlx::query(
                        "UPDATE owner_budgets SET deleted_at = $1, updated_at = $1 \
                         WHERE org_id = $2 AND owner = $3 AND deleted_at IS NULL",
                    )
                    .bind(now)
                    .bind(org_id)
                    .bind(owner)
                    .execute(&self.pool)
                    .await?;
                    return Ok(done.rows_affected() > 0);
                };
                let columns = $crate::policy::limits::LimitColumns::from_limits(
                    &$crate::policy::limits::Limits {
                        budget: Some(budget.clone()),
                        ..Default::default()
                    },
                );
                sqlx::query(
                    "INSERT INTO owner_budgets (org_id, owner, budget_nanos, budget_period, \
                     budget_alerts, updated_at, deleted_at) VALUES ($1, $2, $3, $4, $5, $6, NULL) \
                     ON CONFLICT (org_id, owner) DO UPDATE SET \
                     budget_nanos = excluded.budget_nanos, budget_period = excluded.budget_period, \
                     budget_alerts = excluded.budget_alerts, updated_at = excluded.updated_at, \
                     deleted_at = NULL",
                )
                .bind(org_id)
                .bind(owner)
                .bind(columns.budget_nanos)
                .bind(columns.budget_period)
                .bind(columns.budget_alerts)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(true)
            }

            async fn owner_budgets(
                &self,
                org_id: &str,
            ) -> Result<Vec<$crate::store::OwnerBudget>, $crate::store::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT * FROM owner_budgets WHERE org_id = $1 AND deleted_at IS NULL \
                     ORDER BY owner",
                )
                .bind(org_id)
                .fetch_all(&self.pool)
                .await?;
                let mut budgets = Vec::with_capacity(rows.len());
                for row in &rows {
                    let limits = $crate::store::limits::read_limits(row, "owner_budgets", false)?;
                    let Some(budget) = limits.budget else {
                        return Err($crate::store::StoreError::Corrupt {
                            table: "owner_budgets",
                            message: "a budget row without a budget".into(),
                        });
                    };
                    budgets.push($crate::store::OwnerBudget {
                        org_id: row.try_get("org_id")?,
                        owner: row.try_get("owner")?,
                        budget,
                        updated_at: row.try_get("updated_at")?,
                    });
                }
                Ok(budgets)
            }
        }
    };
}

pub(crate) use impl_limit_store;
