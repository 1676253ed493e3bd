//! Stored provider credentials: sealed secrets (see
//! [`crate::credentials::envelope`]) and their metadata. Never plaintext.

use super::StoreError;
use crate::credentials::Sealed;

/// One stored provider credential as the database holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderCredentialRecord {
    /// Unique name (`openai-prod`).
    pub name: String,
    /// Free text for operators.
    pub description: Option<String>,
    /// Non-secret hint (`…x9aQ`).
    pub hint: String,
    /// The envelope.
    pub sealed: Sealed,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms of the last change of secret or description.
    pub updated_at: i64,
}

/// Persistence of stored provider credentials; every [`Store`](super::Store)
/// implements it.
#[async_trait::async_trait]
pub trait CredentialStore {
    /// Add a credential; `false` if the name is taken.
    async fn insert_provider_credential(
        &self,
        record: &ProviderCredentialRecord,
    ) -> Result<bool, StoreError>;
    /// One credential by name.
    async fn get_provider_credential(
        &self,
        name: &str,
    ) -> Result<Option<ProviderCredentialRecord>, StoreError>;
    /// Every credential, by name.
    async fn list_provider_credentials(&self) -> Result<Vec<ProviderCredentialRecord>, StoreError>;
    /// (name, updated_at) of every credential: the cheap poll each node runs
    /// to follow changes made elsewhere.
    async fn provider_credential_versions(&self) -> Result<Vec<(String, i64)>, StoreError>;
    /// Replace description, hint, envelope and `updated_at` of an existing
    /// credential; `false` if there is none by that name.
    async fn update_provider_credential(
        &self,
        record: &ProviderCredentialRecord,
    ) -> Result<bool, StoreError>;
    /// Delete; `false` if there was none.
    async fn delete_provider_credential(&self, name: &str) -> Result<bool, StoreError>;
    /// Master-key rotation: replace the wrapped data keys of `rows` in one
    /// transaction. Every row must still be wrapped under
    /// `old_master_key_id`, else nothing changes and the call fails.
    async fn rewrap_provider_credentials(
        &self,
        old_master_key_id: &str,
        rows: &[(String, Sealed)],
    ) -> Result<(), StoreError>;
}

macro_rules! impl_credential_store {
    ($store:ty, $db:ty) => {
        impl $store {
            fn provider_credential_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::store::ProviderCredentialRecord, $crate::store::StoreError> {
                use sqlx::Row;
                Ok($crate::store::ProviderCredentialRecord {
                    name: row.try_get("name")?,
                    description: row.try_get("description")?,
                    hint: row.try_get("hint")?,
                    sealed: $crate::credentials::Sealed {
                        data_nonce: row.try_get("data_nonce")?,
                        ciphertext: row.try_get("ciphertext")?,
                        key_nonce: row.try_get("key_nonce")?,
                        wrapped_key: row.try_get("wrapped_key")?,
                        master_key_id: row.try_get("master_key_id")?,
                    },
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::CredentialStore for $store {
            async fn insert_provider_credential(
                &self,
                record: &$crate::store::ProviderCredentialRecord,
            ) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query(
                    "INSERT INTO provider_credentials (name, description, hint, data_nonce, \
                     ciphertext, key_nonce, wrapped_key, master_key_id, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (name) DO NOTHING",
                )
                .bind(&record.name)
                .bind(&record.description)
                .bind(&record.hint)
                .bind(&record.sealed.data_nonce)
                .bind(&record.sealed.ciphertext)
                .bind(&record.sealed.key_nonce)
                .bind(&record.sealed.wrapped_key)
                .bind(&record.sealed.master_key_id)
                .bind(record.created_at)
                .bind(record.updated_at)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn get_provider_credential(
                &self,
                name: &str,
            ) -> Result<Option<$crate::store::ProviderCredentialRecord>, $crate::store::StoreError> {
                let row = sqlx::query("SELECT * FROM provider_credentials WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(Self::provider_credential_from_row).transpose()
            }

            async fn list_provider_credentials(
                &self,
            ) -> Result<Vec<$crate::store::ProviderCredentialRecord>, $crate::store::StoreError> {
                let rows = sqlx::query("SELECT * FROM provider_credentials ORDER BY name")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(Self::provider_credential_from_row).collect()
            }

            async fn provider_credential_versions(
                &self,
            ) -> Result<Vec<(String, i64)>, $crate::store::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query("SELECT name, updated_at FROM provider_credentials")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|row| Ok((row.try_get("name")?, row.try_get("updated_at")?)))
                    .collect()
            }

            async fn update_provider_credential(
                &self,
                record: &$crate::store::ProviderCredentialRecord,
            ) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query(
                    "UPDATE provider_credentials SET description = $1, hint = $2, data_nonce = $3, \
                     ciphertext = $4, key_nonce = $5, wrapped_key = $6, master_key_id = $7, \
                     updated_at = $8 WHERE name = $9",
                )
                .bind(&record.description)
                .bind(&record.hint)
                .bind(&record.sealed.data_nonce)
                .bind(&record.sealed.ciphertext)
                .bind(&record.sealed.key_nonce)
                .bind(&record.sealed.wrapped_key)
                .bind(&record.sealed.master_key_id)
                .bind(record.updated_at)
                .bind(&record.name)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_provider_credential(
                &self,
                name: &str,
            ) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query("DELETE FROM provider_credentials WHERE name = $1")
                    .bind(name)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn rewrap_provider_credentials(
                &self,
                old_master_key_id: &str,
                rows: &[(String, $crate::credentials::Sealed)],
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                for (name, sealed) in rows {
                    let done = sqlx::query(
                        "UPDATE provider_credentials SET key_nonce = $1, wrapped_key = $2, \
                         master_key_id = $3 WHERE name = $4 AND master_key_id = $5 AND ciphertext = $6",
                    )
                    .bind(&sealed.key_nonce)
                    .bind(&sealed.wrapped_key)
                    .bind(&sealed.master_key_id)
                    .bind(name)
                    .bind(old_master_key_id)
                    .bind(&sealed.ciphertext)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() != 1 {
                        tx.rollback().await?;
                        return Err($crate::store::StoreError::Corrupt {
                            table: "provider_credentials",
                            message: format!(
                                "'{name}' changed or vanished during the re-wrap; nothing was changed, run it again"
                            ),
                        });
                    }
                }
                tx.commit().await?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_credential_store;
