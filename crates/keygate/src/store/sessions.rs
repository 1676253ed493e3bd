//! Dashboard sessions: a row per sign-in, found by the SHA-256 of the
//! session secret the browser holds (never the secret itself).

use super::StoreError;

/// One signed-in dashboard session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// Hex SHA-256 of the cookie's session secret.
    pub id_hash: String,
    /// The admin credential that signed in.
    pub key_id: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms of the last request (idle timeout counts from here).
    pub last_seen_at: i64,
    /// Unix ms after which the session is over, however active.
    pub expires_at: i64,
    /// Where the sign-in came from.
    pub source_ip: Option<String>,
    /// The browser's user agent at sign-in (redacted, truncated).
    pub user_agent: Option<String>,
    /// For an OpenID sign-in: the role and scope its rule gave, as JSON.
    pub actor: Option<String>,
}

/// Persistence of dashboard sessions; every [`Store`](super::Store)
/// implements it.
#[async_trait::async_trait]
pub trait SessionStore {
    /// Record a new session.
    async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError>;
    /// The session with this hash, if it exists and is neither past
    /// `expires_at` nor idle since before `idle_since` at `now`.
    async fn live_session(
        &self,
        id_hash: &str,
        now: i64,
        idle_since: i64,
    ) -> Result<Option<SessionRecord>, StoreError>;
    /// Note activity on a session.
    async fn touch_session(&self, id_hash: &str, now: i64) -> Result<(), StoreError>;
    /// End one session (sign-out).
    async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError>;
    /// Forget sessions past their lifetime or idle since before
    /// `idle_since`; returns how many.
    async fn purge_sessions(&self, now: i64, idle_since: i64) -> Result<u64, StoreError>;
}

macro_rules! impl_session_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::SessionStore for $store {
            async fn insert_session(
                &self,
                session: &$crate::store::SessionRecord,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO dashboard_sessions (id_hash, key_id, created_at, last_seen_at, \
                     expires_at, source_ip, user_agent, actor) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&session.id_hash)
                .bind(&session.key_id)
                .bind(session.created_at)
                .bind(session.last_seen_at)
                .bind(session.expires_at)
                .bind(&session.source_ip)
                .bind(&session.user_agent)
                .bind(&session.actor)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn live_session(
                &self,
                id_hash: &str,
                now: i64,
                idle_since: i64,
            ) -> Result<Option<$crate::store::SessionRecord>, $crate::store::StoreError> {
                use sqlx::Row;
                let row = sqlx::query(
                    "SELECT * FROM dashboard_sessions \
                     WHERE id_hash = $1 AND expires_at > $2 AND last_seen_at >= $3",
                )
                .bind(id_hash)
                .bind(now)
                .bind(idle_since)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|row| {
                    Ok($crate::store::SessionRecord {
                        id_hash: row.try_get("id_hash")?,
                        key_id: row.try_get("key_id")?,
                        created_at: row.try_get("created_at")?,
                        last_seen_at: row.try_get("last_seen_at")?,
                        expires_at: row.try_get("expires_at")?,
                        source_ip: row.try_get("source_ip")?,
                        user_agent: row.try_get("user_agent")?,
                        actor: row.try_get("actor")?,
                    })
                })
                .transpose()
            }

            async fn touch_session(
                &self,
                id_hash: &str,
                now: i64,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query("UPDATE dashboard_sessions SET last_seen_at = $1 WHERE id_hash = $2")
                    .bind(now)
                    .bind(id_hash)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn delete_session(&self, id_hash: &str) -> Result<(), $crate::store::StoreError> {
                sqlx::query("DELETE FROM dashboard_sessions WHERE id_hash = $1")
                    .bind(id_hash)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn purge_sessions(
                &self,
                now: i64,
                idle_since: i64,
            ) -> Result<u64, $crate::store::StoreError> {
                let done = sqlx::query(
                    "DELETE FROM dashboard_sessions WHERE expires_at <= $1 OR last_seen_at < $2",
                )
                .bind(now)
                .bind(idle_since)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(crate) use impl_session_store;
