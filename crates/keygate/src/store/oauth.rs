//! Persistence of the OAuth authorization server: the token signing keys,
//! revoked tokens, used JWT-bearer assertions, service-account public keys
//! and trusted OIDC issuers.

use super::StoreError;

/// A token signing key as stored. The private half is sealed under the
/// master key; only the public JWK is stored in the clear.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// Key id, the JWT header's `kid`.
    pub kid: String,
    /// JWS algorithm (`ES256`).
    pub alg: String,
    /// The public key as a JWK (JSON text).
    pub public_jwk: String,
    /// The PKCS#8 private key, sealed (AES-256-GCM envelope).
    pub private_key: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms from which nodes sign with it (after every node has had time
    /// to publish it).
    pub active_from: i64,
    /// Unix ms after which it is no longer published (set once a newer key
    /// has signed for longer than any token lives).
    pub published_until: Option<i64>,
}

/// A token revoked before its expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedToken {
    /// The token's `jti`.
    pub jti: String,
    /// The token's own expiry, Unix ms: the row is useless after it.
    pub expires_at: i64,
    /// Unix ms.
    pub revoked_at: i64,
    /// Why.
    pub reason: Option<String>,
}

/// A public key registered for a service account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccountKeyRecord {
    /// Key id (the assertion header's `kid`, the key file's `private_key_id`).
    pub kid: String,
    /// The service account (a key record of kind `service_account`).
    pub account_id: String,
    /// JWS algorithm the key signs with (`RS256`, `ES256`).
    pub alg: String,
    /// SubjectPublicKeyInfo, PEM.
    pub public_key: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms since when assertions it signs are refused.
    pub disabled_at: Option<i64>,
    /// Unix ms of the last change.
    pub updated_at: i64,
}

/// A trusted OIDC issuer and the rule an identity token must match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedIssuerRecord {
    /// Public id (`tis_…`).
    pub id: String,
    /// The key record (kind `workload`) whose policy bounds minted tokens.
    pub key_id: String,
    /// The `iss` identity tokens must carry.
    pub issuer: String,
    /// Where its signing keys are fetched (`None`: `jwks` is fixed).
    pub jwks_uri: Option<String>,
    /// A fixed JWKS (JSON text), when the issuer's keys are configured
    /// rather than fetched.
    pub jwks: Option<String>,
    /// The `aud` identity tokens must carry.
    pub audience: String,
    /// Claim rules: claim name → glob the claim's value must match.
    pub claims: std::collections::BTreeMap<String, String>,
    /// Lifetime of the tokens it mints, ms.
    pub token_ttl_ms: i64,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms since when it is no longer trusted.
    pub disabled_at: Option<i64>,
    /// Unix ms of the last change.
    pub updated_at: i64,
}

/// Persistence of the authorization server; every [`Store`](super::Store)
/// implements it.
#[async_trait::async_trait]
pub trait OAuthStore {
    /// Every signing key, oldest first.
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;
    /// Store a new signing key.
    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError>;
    /// Stop publishing `kid` after `until` (Unix ms), unless an earlier end
    /// is already set.
    async fn end_signing_key(&self, kid: &str, until: i64) -> Result<(), StoreError>;
    /// Delete signing keys no longer published at `now`.
    async fn delete_unpublished_signing_keys(&self, now: i64) -> Result<u64, StoreError>;

    /// Record a revocation; `false` when the token was already revoked.
    async fn revoke_token(&self, token: &RevokedToken) -> Result<bool, StoreError>;
    /// Revocations recorded after `cursor_ms` (`0`: every one not yet
    /// expired at `now`), oldest first.
    async fn revoked_tokens_since(
        &self,
        cursor_ms: i64,
        now: i64,
    ) -> Result<Vec<RevokedToken>, StoreError>;
    /// Note that an assertion (by `id`, a digest of its issuer and `jti`)
    /// was used; `false` when it was used before (a replay).
    async fn record_assertion(&self, id: &str, expires_at: i64) -> Result<bool, StoreError>;
    /// Drop revocations and used assertions that expired before `now`.
    async fn purge_expired_tokens(&self, now: i64) -> Result<u64, StoreError>;

    /// Register a service-account public key.
    async fn insert_service_account_key(
        &self,
        key: &ServiceAccountKeyRecord,
    ) -> Result<(), StoreError>;
    /// One service-account key by `kid`.
    async fn service_account_key(
        &self,
        kid: &str,
    ) -> Result<Option<ServiceAccountKeyRecord>, StoreError>;
    /// Every key of a service account, oldest first.
    async fn service_account_keys(
        &self,
        account_id: &str,
    ) -> Result<Vec<ServiceAccountKeyRecord>, StoreError>;
    /// Disable (`Some(at)`) or re-enable (`None`) a key of `account_id`;
    /// `false` when the account has no such key.
    async fn set_service_account_key_disabled(
        &self,
        account_id: &str,
        kid: &str,
        disabled_at: Option<i64>,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Register a trusted issuer rule.
    async fn insert_trusted_issuer(&self, issuer: &TrustedIssuerRecord) -> Result<(), StoreError>;
    /// Every trusted issuer rule, oldest first.
    async fn trusted_issuers(&self) -> Result<Vec<TrustedIssuerRecord>, StoreError>;
    /// Disable (`Some(at)`) or re-enable (`None`) a rule; `false` when there
    /// is no such rule.
    async fn set_trusted_issuer_disabled(
        &self,
        id: &str,
        disabled_at: Option<i64>,
        now: i64,
    ) -> Result<bool, StoreError>;
}

macro_rules! impl_oauth_store {
    ($store:ty, $db:ty) => {
        impl $store {
            fn signing_key_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::store::SigningKeyRecord, $crate::store::StoreError> {
                use sqlx::Row;
                Ok($crate::store::SigningKeyRecord {
                    kid: row.try_get("kid")?,
                    alg: row.try_get("alg")?,
                    public_jwk: row.try_get("public_jwk")?,
                    private_key: row.try_get("private_key")?,
                    created_at: row.try_get("created_at")?,
                    active_from: row.try_get("active_from")?,
                    published_until: row.try_get("published_until")?,
                })
            }

            fn revoked_token_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::store::RevokedToken, $crate::store::StoreError> {
                use sqlx::Row;
                Ok($crate::store::RevokedToken {
                    jti: row.try_get("jti")?,
                    expires_at: row.try_get("expires_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                    reason: row.try_get("reason")?,
                })
            }

            fn service_account_key_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::store::ServiceAccountKeyRecord, $crate::store::StoreError> {
                use sqlx::Row;
                Ok($crate::store::ServiceAccountKeyRecord {
                    kid: row.try_get("kid")?,
                    account_id: row.try_get("account_id")?,
                    alg: row.try_get("alg")?,
                    public_key: row.try_get("public_key")?,
                    created_at: row.try_get("created_at")?,
                    disabled_at: row.try_get("disabled_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            }

            fn trusted_issuer_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::store::TrustedIssuerRecord, $crate::store::StoreError> {
                use sqlx::Row;
                let claims: String = row.try_get("claims")?;
                Ok($crate::store::TrustedIssuerRecord {
                    id: row.try_get("id")?,
                    key_id: row.try_get("key_id")?,
                    issuer: row.try_get("issuer")?,
                    jwks_uri: row.try_get("jwks_uri")?,
                    jwks: row.try_get("jwks")?,
                    audience: row.try_get("audience")?,
                    claims: serde_json::from_str(&claims).map_err(|e| {
                        $crate::store::StoreError::Corrupt {
                            table: "trusted_issuers",
                            message: format!("claims: {e}"),
                        }
                    })?,
                    token_ttl_ms: row.try_get("token_ttl_ms")?,
                    created_at: row.try_get("created_at")?,
                    disabled_at: row.try_get("disabled_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::OAuthStore for $store {
            async fn signing_keys(
                &self,
            ) -> Result<Vec<$crate::store::SigningKeyRecord>, $crate::store::StoreError> {
                let rows = sqlx::query("SELECT * FROM signing_keys ORDER BY created_at, kid")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(Self::signing_key_from_row).collect()
            }

            async fn insert_signing_key(
                &self,
                key: &$crate::store::SigningKeyRecord,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO signing_keys (kid, alg, public_jwk, private_key, created_at, \
                     active_from, published_until) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&key.kid)
                .bind(&key.alg)
                .bind(&key.public_jwk)
                .bind(&key.private_key)
                .bind(key.created_at)
                .bind(key.active_from)
                .bind(key.published_until)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn end_signing_key(
                &self,
                kid: &str,
                until: i64,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "UPDATE signing_keys SET published_until = $1 WHERE kid = $2 \
                     AND (published_until IS NULL OR published_until > $1)",
                )
                .bind(until)
                .bind(kid)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn delete_unpublished_signing_keys(
                &self,
                now: i64,
            ) -> Result<u64, $crate::store::StoreError> {
                let done = sqlx::query(
                    "DELETE FROM signing_keys WHERE published_until IS NOT NULL AND published_until < $1",
                )
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn revoke_token(
                &self,
                token: &$crate::store::RevokedToken,
            ) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query(
                    "INSERT INTO revoked_tokens (jti, expires_at, revoked_at, reason) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING",
                )
                .bind(&token.jti)
                .bind(token.expires_at)
                .bind(token.revoked_at)
                .bind(&token.reason)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn revoked_tokens_since(
                &self,
                cursor_ms: i64,
                now: i64,
            ) -> Result<Vec<$crate::store::RevokedToken>, $crate::store::StoreError> {
                let rows = sqlx::query(
                    "SELECT * FROM revoked_tokens WHERE revoked_at > $1 AND expires_at >= $2 \
                     ORDER BY revoked_at",
                )
                .bind(cursor_ms)
                .bind(now)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::revoked_token_from_row).collect()
            }

            async fn record_assertion(
                &self,
                id: &str,
                expires_at: i64,
            ) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query(
                    "INSERT INTO seen_assertions (id, expires_at) VALUES ($1, $2) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(id)
                .bind(expires_at)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn purge_expired_tokens(&self, now: i64) -> Result<u64, $crate::store::StoreError> {
                let revoked = sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                let seen = sqlx::query("DELETE FROM seen_assertions WHERE expires_at < $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(revoked.rows_affected() + seen.rows_affected())
            }

            async fn insert_service_account_key(
                &self,
                key: &$crate::store::ServiceAccountKeyRecord,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO service_account_keys (kid, account_id, alg, public_key, \
                     created_at, disabled_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&key.kid)
                .bind(&key.account_id)
                .bind(&key.alg)
                .bind(&key.public_key)
                .bind(key.created_at)
                .bind(key.disabled_at)
                .bind(key.updated_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn service_account_key(
                &self,
                kid: &str,
            ) -> Result<Option<$crate::store::ServiceAccountKeyRecord>, $crate::store::StoreError>
            {
                let row = sqlx::query("SELECT * FROM service_account_keys WHERE kid = $1")
                    .bind(kid)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(Self::service_account_key_from_row).transpose()
            }

            async fn service_account_keys(
                &self,
                account_id: &str,
            ) -> Result<Vec<$crate::store::ServiceAccountKeyRecord>, $crate::store::StoreError> {
                let rows = sqlx::query(
                    "SELECT * FROM service_account_keys WHERE account_id = $1 \
                     ORDER BY created_at, kid",
                )
                .bind(account_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::service_account_key_from_row).collect()
            }

            async fn set_service_account_key_disabled(
                &self,
                account_id: &str,
                kid: &str,
                disabled_at: Option<i64>,
                now: i64,
            ) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query(
                    "UPDATE service_account_keys SET disabled_at = $1, updated_at = $2 \
                     WHERE kid = $3 AND account_id = $4",
                )
                .bind(disabled_at)
                .bind(now)
                .bind(kid)
                .bind(account_id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_trusted_issuer(
                &self,
                issuer: &$crate::store::TrustedIssuerRecord,
            ) -> Result<(), $crate::store::StoreError> {
                let claims = serde_json::to_string(&issuer.claims).map_err(|e| {
                    $crate::store::StoreError::Corrupt {
                        table: "trusted_issuers",
                        message: e.to_string(),
                    }
                })?;
                sqlx::query(
                    "INSERT INTO trusted_issuers (id, key_id, issuer, jwks_uri, jwks, audience, \
                     claims, token_ttl_ms, created_at, disabled_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(&issuer.id)
                .bind(&issuer.key_id)
                .bind(&issuer.issuer)
                .bind(&issuer.jwks_uri)
                .bind(&issuer.jwks)
                .bind(&issuer.audience)
                .bind(claims)
                .bind(issuer.token_ttl_ms)
                .bind(issuer.created_at)
                .bind(issuer.disabled_at)
                .bind(issuer.updated_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn trusted_issuers(
                &self,
            ) -> Result<Vec<$crate::store::TrustedIssuerRecord>, $crate::store::StoreError> {
                let rows = sqlx::query("SELECT * FROM trusted_issuers ORDER BY created_at, id")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(Self::trusted_issuer_from_row).collect()
            }

            async fn set_trusted_issuer_disabled(
                &self,
                id: &str,
                disabled_at: Option<i64>,
                now: i64,
            ) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query(
                    "UPDATE trusted_issuers SET disabled_at = $1, updated_at = $2 WHERE id = $3",
                )
                .bind(disabled_at)
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use impl_oauth_store;
