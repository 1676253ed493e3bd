//! The shared store for many nodes: PostgreSQL.

use super::alert_outbox::impl_alert_store;
use super::anomaly::impl_anomaly_store;
use super::dashboard::impl_dashboard_store;
use super::leaks::impl_leak_store;
use super::limits::impl_limit_store;
use super::oauth::impl_oauth_store;
use super::organisations::impl_organisation_store;
use super::provider_credentials::impl_credential_store;
use super::sessions::impl_session_store;
use super::sql::impl_store;
use super::StoreError;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Pool, Postgres};
use std::time::Duration;

/// State in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: Pool<Postgres>,
}

impl PostgresStore {
    /// Connect to `url` and migrate.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(PostgresStore { pool })
    }
}

impl_store!(PostgresStore, Postgres, "postgres");
impl_alert_store!(PostgresStore, Postgres, " FOR UPDATE SKIP LOCKED");
impl_credential_store!(PostgresStore, Postgres);
impl_organisation_store!(PostgresStore, Postgres);
impl_limit_store!(PostgresStore, Postgres);
impl_oauth_store!(PostgresStore, Postgres);
impl_leak_store!(PostgresStore, Postgres);
impl_anomaly_store!(PostgresStore, Postgres);
impl_session_store!(PostgresStore, Postgres);
impl_dashboard_store!(PostgresStore, Postgres, " COLLATE \"C\"");
