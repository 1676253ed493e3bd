//! The vault: stored provider credentials, decrypted into memory.
//!
//! Every node holds the decrypted secrets in memory (in `SecretString`s,
//! zeroed when dropped) and polls the store's (name, updated_at) list every
//! key refresh interval, re-reading what changed and dropping what was
//! deleted; the node that took an admin call applies it at once.

use super::envelope::{self, MasterKey, Sealed};
use super::master_key::MasterKeySource;
use super::CredentialError;
use crate::store::{ProviderCredentialRecord, Store};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::Duration;

/// Whether `name` may name a stored credential: 1-64 characters of letters,
/// digits, `.`, `_` and `-`, starting with a letter or digit.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// What the admin API shows of a stored credential: never the secret, never
/// the envelope.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StoredMeta {
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// `…` and the last four characters (for secrets of 16 or more).
    pub hint: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
    /// Id of the master key its data key is wrapped under.
    pub master_key_id: String,
}

impl From<&ProviderCredentialRecord> for StoredMeta {
    fn from(record: &ProviderCredentialRecord) -> Self {
        StoredMeta {
            name: record.name.clone(),
            description: record.description.clone(),
            hint: record.hint.clone(),
            created_at: record.created_at,
            updated_at: record.updated_at,
            master_key_id: record.sealed.master_key_id.clone(),
        }
    }
}

struct Entry {
    updated_at: i64,
    value: Arc<SecretString>,
}

struct Inner {
    store: Arc<dyn Store>,
    source: MasterKeySource,
    master: tokio::sync::OnceCell<Arc<MasterKey>>,
    cache: RwLock<HashMap<String, Entry>>,
}

/// The vault of stored provider credentials. Cheap to clone.
#[derive(Clone)]
pub struct StoredCredentials {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for StoredCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCredentials")
            .field("master_key", &self.inner.source)
            .field("loaded", &self.read().len())
            .finish()
    }
}

impl StoredCredentials {
    /// Load and decrypt every stored credential. Fails, with a message
    /// saying what to do, when rows exist that the configured master key
    /// did not seal (or the key cannot be loaded). With no rows the master
    /// key is loaded (or generated) only when the first credential is stored.
    pub async fn open(
        store: Arc<dyn Store>,
        source: MasterKeySource,
    ) -> Result<StoredCredentials, CredentialError> {
        let vault = StoredCredentials {
            inner: Arc::new(Inner {
                store,
                source,
                master: tokio::sync::OnceCell::new(),
                cache: RwLock::new(HashMap::new()),
            }),
        };
        // A key the operator configured is checked now, so a bad one fails
        // the start rather than the first admin call; a generated one is
        // created only when first needed.
        if !matches!(vault.inner.source, MasterKeySource::Generated(_)) {
            if let Some(key) = vault.inner.source.load(false).await? {
                let _ = vault.inner.master.set(Arc::new(key));
            }
        }
        let rows = vault.inner.store.list_provider_credentials().await?;
        if rows.is_empty() {
            return Ok(vault);
        }
        let loaded = match vault.inner.master.get() {
            Some(key) => Some(Arc::clone(key)),
            None => vault.inner.source.load(false).await?.map(Arc::new),
        };
        let master = match loaded {
            Some(key) => key,
            None => {
                return Err(CredentialError::MasterKey(format!(
                    "{} stored provider credential(s) exist but {} is missing; restore it or set KEYGATE_MASTER_KEY / KEYGATE_MASTER_KEY_FILE / KEYGATE_MASTER_KEY_COMMAND",
                    rows.len(),
                    vault.inner.source.describe()
                )))
            }
        };
        check_master_key(&master, &rows)?;
        let _ = vault.inner.master.set(Arc::clone(&master));
        let mut cache = HashMap::new();
        for row in &rows {
            let value = envelope::open(&master, &row.name, &row.sealed)?;
            cache.insert(
                row.name.clone(),
                Entry {
                    updated_at: row.updated_at,
                    value: Arc::new(value),
                },
            );
        }
        *vault.write() = cache;
        Ok(vault)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Entry>> {
        self.inner
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Entry>> {
        self.inner
            .cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    async fn master(&self) -> Result<Arc<MasterKey>, CredentialError> {
        self.inner
            .master
            .get_or_try_init(|| async {
                match self.inner.source.load(true).await? {
                    Some(key) => Ok(Arc::new(key)),
                    None => Err(CredentialError::MasterKey(format!(
                        "{} could not be created",
                        self.inner.source.describe()
                    ))),
                }
            })
            .await
            .map(Arc::clone)
    }

    /// Id of the master key in use, once loaded.
    pub fn master_key_id(&self) -> Option<String> {
        self.inner.master.get().map(|k| k.id().to_string())
    }

    /// The decrypted secret of `name`, from memory.
    pub fn secret(&self, name: &str) -> Result<Arc<SecretString>, CredentialError> {
        self.read()
            .get(name)
            .map(|entry| Arc::clone(&entry.value))
            .ok_or_else(|| CredentialError::NotStored {
                name: name.to_string(),
            })
    }

    /// Re-read one credential from the store (or forget it if deleted).
    pub async fn reload(&self, name: &str) -> Result<(), CredentialError> {
        match self.inner.store.get_provider_credential(name).await? {
            Some(row) => self.apply(&row).await,
            None => {
                self.write().remove(name);
                Ok(())
            }
        }
    }

    async fn apply(&self, row: &ProviderCredentialRecord) -> Result<(), CredentialError> {
        let master = self.master().await?;
        let value = envelope::open(&master, &row.name, &row.sealed)?;
        self.write().insert(
            row.name.clone(),
            Entry {
                updated_at: row.updated_at,
                value: Arc::new(value),
            },
        );
        Ok(())
    }

    /// Follow changes made on other nodes: re-read rows whose `updated_at`
    /// differs from what is in memory, forget deleted ones.
    pub async fn refresh(&self) -> Result<(), CredentialError> {
        // Entries this node wrote after the list was taken are newer than it.
        let started = crate::time::now_ms();
        let versions = self.inner.store.provider_credential_versions().await?;
        let changed: Vec<String> = {
            let cache = self.read();
            versions
                .iter()
                .filter(|(name, updated_at)| {
                    cache.get(name).is_none_or(|e| e.updated_at != *updated_at)
                })
                .map(|(name, _)| name.clone())
                .collect()
        };
        {
            let mut cache = self.write();
            cache.retain(|name, entry| {
                entry.updated_at >= started || versions.iter().any(|(n, _)| n == name)
            });
        }
        for name in changed {
            if let Err(e) = self.reload(&name).await {
                tracing::warn!(credential = %name, error = %e, "could not load a changed stored provider credential; keeping the previous value");
            }
        }
        Ok(())
    }

    /// Refresh every `every` until the vault is dropped.
    pub fn spawn_refresh(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let vault = StoredCredentials { inner };
                if let Err(e) = vault.refresh().await {
                    tracing::warn!(error = %e, "stored provider credential refresh failed; will retry");
                }
            }
        })
    }

    /// Seal a secret that is not a provider credential (a token signing
    /// key) under the master key, bound to `label`: it opens only under the
    /// same label, so one sealed value cannot stand in for another.
    pub async fn seal(
        &self,
        label: &str,
        secret: &SecretString,
    ) -> Result<Sealed, CredentialError> {
        let master = self.master().await?;
        envelope::seal(&master, label, secret)
    }

    /// Open what [`seal`](Self::seal) sealed under `label`.
    pub async fn open_sealed(
        &self,
        label: &str,
        sealed: &Sealed,
    ) -> Result<SecretString, CredentialError> {
        let master = self.master().await?;
        if sealed.master_key_id != master.id() {
            return Err(CredentialError::MasterKey(format!(
                "'{label}' was sealed under master key {}, not the configured {}",
                sealed.master_key_id,
                master.id()
            )));
        }
        envelope::open(&master, label, sealed)
    }

    /// Store a new credential; `Ok(None)` if the name is taken.
    pub async fn create(
        &self,
        name: &str,
        description: Option<String>,
        secret: SecretString,
        now: i64,
    ) -> Result<Option<StoredMeta>, CredentialError> {
        let master = self.master().await?;
        let record = ProviderCredentialRecord {
            name: name.to_string(),
            description,
            hint: super::last_four(secret.expose_secret()),
            sealed: envelope::seal(&master, name, &secret)?,
            created_at: now,
            updated_at: now,
        };
        if !self.inner.store.insert_provider_credential(&record).await? {
            return Ok(None);
        }
        self.write().insert(
            record.name.clone(),
            Entry {
                updated_at: now,
                value: Arc::new(secret),
            },
        );
        Ok(Some(StoredMeta::from(&record)))
    }

    /// Replace the secret (and, when given, the description) of `name`;
    /// `Ok(None)` if there is none. Effective on this node at once.
    pub async fn replace(
        &self,
        name: &str,
        secret: SecretString,
        description: Option<String>,
        now: i64,
    ) -> Result<Option<StoredMeta>, CredentialError> {
        let Some(existing) = self.inner.store.get_provider_credential(name).await? else {
            return Ok(None);
        };
        let master = self.master().await?;
        let record = ProviderCredentialRecord {
            description: description.or(existing.description),
            hint: super::last_four(secret.expose_secret()),
            sealed: envelope::seal(&master, name, &secret)?,
            // Strictly increasing, so other nodes see the change even
            // within one millisecond.
            updated_at: now.max(existing.updated_at + 1),
            ..existing
        };
        if !self.inner.store.update_provider_credential(&record).await? {
            return Ok(None);
        }
        self.write().insert(
            record.name.clone(),
            Entry {
                updated_at: record.updated_at,
                value: Arc::new(secret),
            },
        );
        Ok(Some(StoredMeta::from(&record)))
    }

    /// Delete `name`; `false` if there was none.
    pub async fn delete(&self, name: &str) -> Result<bool, CredentialError> {
        let deleted = self.inner.store.delete_provider_credential(name).await?;
        self.write().remove(name);
        Ok(deleted)
    }

    /// Metadata of every stored credential, by name.
    pub async fn list(&self) -> Result<Vec<StoredMeta>, CredentialError> {
        let rows = self.inner.store.list_provider_credentials().await?;
        Ok(rows.iter().map(StoredMeta::from).collect())
    }

    /// Metadata of one.
    pub async fn get(&self, name: &str) -> Result<Option<StoredMeta>, CredentialError> {
        let row = self.inner.store.get_provider_credential(name).await?;
        Ok(row.as_ref().map(StoredMeta::from))
    }
}

/// Every row must be sealed under `master`.
fn check_master_key(
    master: &MasterKey,
    rows: &[ProviderCredentialRecord],
) -> Result<(), CredentialError> {
    let foreign: Vec<&ProviderCredentialRecord> = rows
        .iter()
        .filter(|r| r.sealed.master_key_id != master.id())
        .collect();
    match foreign.first() {
        None => Ok(()),
        Some(first) => Err(CredentialError::UnknownMasterKey {
            names: foreign
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            stored_id: first.sealed.master_key_id.clone(),
            current_id: master.id().to_string(),
        }),
    }
}

/// Master-key rotation, run against the store while no gateway is running:
/// re-wrap every data key from `old` to `new` in one transaction (rows
/// already under `new` are left alone, so an interrupted run can be
/// repeated). Returns how many rows were re-wrapped. Gateways must then be
/// started with the new key.
pub async fn rekey(
    store: &dyn Store,
    old: &MasterKey,
    new: &MasterKey,
) -> Result<usize, CredentialError> {
    let rows = store.list_provider_credentials().await?;
    let pending: Vec<ProviderCredentialRecord> = rows
        .into_iter()
        .filter(|r| r.sealed.master_key_id != new.id())
        .collect();
    check_master_key(old, &pending)?;
    let mut rewrapped: Vec<(String, Sealed)> = Vec::with_capacity(pending.len());
    for row in &pending {
        rewrapped.push((
            row.name.clone(),
            envelope::rewrap(old, new, &row.name, &row.sealed)?,
        ));
    }
    if !rewrapped.is_empty() {
        store
            .rewrap_provider_credentials(old.id(), &rewrapped)
            .await?;
    }
    Ok(rewrapped.len())
}

/// A [`Credential`](super::Credential) backed by the vault.
pub(super) struct StoredSource {
    vault: StoredCredentials,
    name: String,
    /// When an invalidation last re-read the row: a burst of upstream 401s
    /// reads the store once, not once per request.
    invalidated: std::sync::Mutex<Option<tokio::time::Instant>>,
}

impl StoredSource {
    pub(super) fn new(vault: StoredCredentials, name: String) -> Self {
        StoredSource {
            vault,
            name,
            invalidated: std::sync::Mutex::new(None),
        }
    }

    pub(super) fn current(&self) -> Result<Arc<SecretString>, CredentialError> {
        self.vault.secret(&self.name)
    }

    /// Re-read this credential from the store in the background.
    pub(super) fn invalidate(&self) {
        let now = tokio::time::Instant::now();
        {
            let mut last = self
                .invalidated
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|t| now < t + Duration::from_secs(1)) {
                return;
            }
            *last = Some(now);
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let vault = self.vault.clone();
            let name = self.name.clone();
            runtime.spawn(async move {
                if let Err(e) = vault.reload(&name).await {
                    tracing::warn!(credential = %name, error = %e, "could not re-read a stored provider credential");
                }
            });
        }
    }
}
