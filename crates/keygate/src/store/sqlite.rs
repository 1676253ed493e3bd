//! The embedded store: one SQLite file in WAL mode.
//!
//! `synchronous = NORMAL` in WAL mode means a committed transaction is in the
//! operating system's hands before the commit returns: it survives the
//! gateway being killed (SIGKILL), which is the ledger's promise, without an
//! fsync per request.

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
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite};
use std::path::Path;
use std::time::Duration;

/// State in a SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: Pool<Sqlite>,
}

impl SqliteStore {
    /// Open (creating if needed) the database at `path` and migrate it.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        create_owner_only(path)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        restrict_permissions(path);
        Ok(SqliteStore { pool })
    }
}

/// The database holds no secrets, but usage data is nobody else's business.
/// Creating the file owner-only first matters: SQLite gives the `-wal` and
/// `-shm` files it creates later the database file's permissions.
fn create_owner_only(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let data_dir_error = |source| StoreError::DataDir {
        path: path.display().to_string(),
        source,
    };
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(data_dir_error)?;
    Ok(())
}

/// Files made before owner-only creation, or by another tool, are tightened.
fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        if file.exists() {
            if let Err(e) = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
            {
                tracing::warn!(error = %e, "could not restrict a database file to its owner");
            }
        }
    }
}

impl_store!(SqliteStore, Sqlite, "sqlite");
impl_alert_store!(SqliteStore, Sqlite, "");
impl_credential_store!(SqliteStore, Sqlite);
impl_organisation_store!(SqliteStore, Sqlite);
impl_limit_store!(SqliteStore, Sqlite);
impl_oauth_store!(SqliteStore, Sqlite);
impl_leak_store!(SqliteStore, Sqlite);
impl_anomaly_store!(SqliteStore, Sqlite);
impl_session_store!(SqliteStore, Sqlite);
impl_dashboard_store!(SqliteStore, Sqlite, "");
