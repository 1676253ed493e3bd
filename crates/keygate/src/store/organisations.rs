//! Organisations and their projects: the tenancy every data key and every
//! scoped admin credential belongs to.

use super::StoreError;
use crate::policy::limits::{Limits, Nanos};

/// The organisation every installation starts with (migration `0009`).
pub const DEFAULT_ORG: &str = "org_default";
/// The default organisation's project, where keys go unless told otherwise.
pub const DEFAULT_PROJECT: &str = "proj_default";

/// An organisation. The admin API shows it in dollars (`admin::tenancy`),
/// never these nanos directly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Organisation {
    /// Public id (`org_…`).
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Unix ms.
    pub created_at: i64,
    /// Its limits: only a budget (rates are set on projects and keys).
    pub limits: Limits,
    /// Everything ever topped up, in nanos (`None`: not prepaid).
    pub prepaid_nanos: Option<Nanos>,
    /// Unix ms of the last change to its limits or balance.
    pub updated_at: i64,
}

/// A project inside an organisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Project {
    /// Public id (`proj_…`).
    pub id: String,
    /// The organisation it belongs to.
    pub org_id: String,
    /// Name, unique within the organisation.
    pub name: String,
    /// Unix ms.
    pub created_at: i64,
    /// Limits shared by every key of the project.
    pub limits: Limits,
    /// Unix ms of the last change to its limits.
    pub updated_at: i64,
    /// What an anomaly on one of its keys does, for keys without a policy
    /// of their own (`None`: alert).
    pub on_anomaly: Option<crate::anomaly::OnAnomaly>,
}

/// Persistence of organisations and projects; every
/// [`Store`](super::Store) implements it.
#[async_trait::async_trait]
pub trait OrganisationStore {
    /// Add an organisation; `false` if the name is taken.
    async fn insert_organisation(&self, org: &Organisation) -> Result<bool, StoreError>;
    /// One organisation by id.
    async fn get_organisation(&self, id: &str) -> Result<Option<Organisation>, StoreError>;
    /// Every organisation (or only `only`), by name.
    async fn list_organisations(&self, only: Option<&str>)
        -> Result<Vec<Organisation>, StoreError>;
    /// Add a project; `false` if its organisation already has one by that
    /// name.
    async fn insert_project(&self, project: &Project) -> Result<bool, StoreError>;
    /// One project by id.
    async fn get_project(&self, id: &str) -> Result<Option<Project>, StoreError>;
    /// Projects of one organisation (or every one), by name.
    async fn list_projects(&self, org_id: Option<&str>) -> Result<Vec<Project>, StoreError>;
}

macro_rules! impl_organisation_store {
    ($store:ty, $db:ty) => {
        impl $store {
            fn organisation_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::store::Organisation, $crate::store::StoreError> {
                use sqlx::Row;
                Ok($crate::store::Organisation {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    created_at: row.try_get("created_at")?,
                    limits: $crate::store::limits::read_limits(row, "organisations", false)?,
                    prepaid_nanos: row.try_get("prepaid_nanos")?,
                    updated_at: row.try_get("updated_at")?,
                })
            }

            fn project_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::store::Project, $crate::store::StoreError> {
                use sqlx::Row;
                Ok($crate::store::Project {
                    id: row.try_get("id")?,
                    org_id: row.try_get("org_id")?,
                    name: row.try_get("name")?,
                    created_at: row.try_get("created_at")?,
                    limits: $crate::store::limits::read_limits(row, "projects", true)?,
                    updated_at: row.try_get("updated_at")?,
                    on_anomaly: $crate::store::anomaly::read_on_anomaly(
                        row.try_get("on_anomaly")?,
                        "projects",
                    )?,
                })
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::OrganisationStore for $store {
            async fn insert_organisation(
                &self,
                org: &$crate::store::Organisation,
            ) -> Result<bool, $crate::store::StoreError> {
                let budget = $crate::policy::limits::LimitColumns::from_limits(&org.limits);
                let done = sqlx::query(
                    "INSERT INTO organisations (id, name, created_at, budget_nanos, budget_period, \
                     budget_alerts, prepaid_nanos, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                )
                .bind(&org.id)
                .bind(&org.name)
                .bind(org.created_at)
                .bind(budget.budget_nanos)
                .bind(budget.budget_period)
                .bind(budget.budget_alerts)
                .bind(org.prepaid_nanos)
                .bind(org.updated_at)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn get_organisation(
                &self,
                id: &str,
            ) -> Result<Option<$crate::store::Organisation>, $crate::store::StoreError> {
                let row = sqlx::query("SELECT * FROM organisations WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(Self::organisation_from_row).transpose()
            }

            async fn list_organisations(
                &self,
                only: Option<&str>,
            ) -> Result<Vec<$crate::store::Organisation>, $crate::store::StoreError> {
                let rows = sqlx::query(
                    "SELECT * FROM organisations WHERE ($1 IS NULL OR id = $1) ORDER BY name",
                )
                .bind(only)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::organisation_from_row).collect()
            }

            async fn insert_project(
                &self,
                project: &$crate::store::Project,
            ) -> Result<bool, $crate::store::StoreError> {
                let limits = $crate::policy::limits::LimitColumns::from_limits(&project.limits);
                let done = sqlx::query(
                    "INSERT INTO projects (id, org_id, name, created_at, rpm, tpm, max_concurrent, \
                     budget_nanos, budget_period, budget_alerts, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
                )
                .bind(&project.id)
                .bind(&project.org_id)
                .bind(&project.name)
                .bind(project.created_at)
                .bind(limits.rpm)
                .bind(limits.tpm)
                .bind(limits.max_concurrent)
                .bind(limits.budget_nanos)
                .bind(limits.budget_period)
                .bind(limits.budget_alerts)
                .bind(project.updated_at)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn get_project(
                &self,
                id: &str,
            ) -> Result<Option<$crate::store::Project>, $crate::store::StoreError> {
                let row = sqlx::query("SELECT * FROM projects WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(Self::project_from_row).transpose()
            }

            async fn list_projects(
                &self,
                org_id: Option<&str>,
            ) -> Result<Vec<$crate::store::Project>, $crate::store::StoreError> {
                let rows = sqlx::query(
                    "SELECT * FROM projects WHERE ($1 IS NULL OR org_id = $1) ORDER BY org_id, name",
                )
                .bind(org_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::project_from_row).collect()
            }
        }
    };
}

pub(crate) use impl_organisation_store;
