//! The in-memory verification cache: every live key, indexed by its digest,
//! so verifying a request is a hash-map lookup and a constant-time compare,
//! with no store round-trip on the hot path.

use super::key::{self, KeyKind};
use super::pepper::{KeyDigest, KeyHasher};
use crate::error::ApiError;
use crate::policy::limits::Limits;
use crate::store::KeyRecord;
use dashmap::DashMap;
use globset::{Glob, GlobSet, GlobSetBuilder};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// A key's model allowlist: globs over model names as the client wrote them
/// or in their canonical `provider/model` form. Empty means every model.
#[derive(Clone, Debug)]
pub struct ModelAllowlist {
    patterns: Vec<String>,
    set: GlobSet,
}

impl ModelAllowlist {
    /// Compile `patterns`; an invalid glob is an error naming it.
    pub fn new(patterns: Vec<String>) -> Result<Self, String> {
        let mut builder = GlobSetBuilder::new();
        for pattern in &patterns {
            let glob = Glob::new(pattern)
                .map_err(|e| format!("invalid model pattern '{pattern}': {}", e.kind()))?;
            builder.add(glob);
        }
        let set = builder
            .build()
            .map_err(|e| format!("invalid model patterns: {e}"))?;
        Ok(ModelAllowlist { patterns, set })
    }

    /// May a request name `requested`, which routes to `canonical`?
    pub fn allows(&self, requested: &str, canonical: &str) -> bool {
        self.patterns.is_empty() || self.set.is_match(requested) || self.set.is_match(canonical)
    }

    /// The patterns as configured.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

/// Digests are HMAC outputs under a secret pepper: uniformly distributed and
/// not choosable by a client, so their own first eight bytes are a good hash
/// and SipHash over them would be wasted work on every request.
type DigestHash = std::hash::BuildHasherDefault<DigestHasher>;

/// See [`DigestHash`].
#[derive(Default)]
pub struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only the digest is written (the length prefix is ignored below);
        // its first eight bytes are already uniform.
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(word);
    }

    fn write_usize(&mut self, _length_prefix: usize) {
        // Arrays hash their length first; it is the same for every digest.
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// What the hot path needs to know about a key.
#[derive(Clone, Debug)]
pub struct KeyEntry {
    /// Public id.
    pub id: String,
    /// Data-plane or admin.
    pub kind: KeyKind,
    /// Environment.
    pub env: String,
    /// Model allowlist, shared by every key with the same patterns.
    pub models: Arc<ModelAllowlist>,
    /// Expiry, Unix ms.
    pub expires_at: Option<i64>,
    /// Revocation time, Unix ms.
    pub revoked_at: Option<i64>,
    /// Suspended (refused until resumed).
    pub suspended: bool,
    /// Route families allowed.
    pub scopes: crate::policy::Scopes,
    /// Source networks allowed.
    pub allow_ips: crate::policy::IpAllowlist,
    /// The key's own limits; `None` when it has none (most keys), so a key
    /// without limits costs one pointer's width here.
    pub limits: Option<Box<Limits>>,
    /// The `updated_at` of the record the entry came from: a budget counter
    /// named with it starts afresh when the key's limits change.
    pub limits_version: i64,
    /// The key's project (shared with every key of the project).
    pub project_id: Option<Arc<str>>,
    /// The key's organisation (shared likewise).
    pub org_id: Option<Arc<str>>,
    /// Who answers for the key (shared by every key of the owner).
    pub owner: Option<Arc<str>>,
    digest: KeyDigest,
}

/// Every key the store holds, by digest and by id.
#[derive(Debug)]
pub struct KeyCache {
    hasher: KeyHasher,
    by_digest: DashMap<KeyDigest, Arc<KeyEntry>, DigestHash>,
    /// Each key's current digest and, during a rotation's grace period, the
    /// digest of the secret it replaced.
    /// Also the `updated_at` of the record they came from.
    digest_by_id: DashMap<String, (KeyDigest, Option<KeyDigest>, i64)>,
    /// Compiled allowlists by pattern list. A compiled glob set costs
    /// kilobytes even when empty, and most keys share a handful of
    /// allowlists: a million keys must not hold a million copies.
    allowlists: DashMap<Vec<String>, Arc<ModelAllowlist>>,
    /// Project ids, organisation ids and owners, one copy each: a million
    /// keys name a few thousand of them.
    names: DashMap<Arc<str>, ()>,
}

/// Distinct allowlists kept for sharing; beyond this each key compiles its
/// own (still correct, only larger).
const MAX_SHARED_ALLOWLISTS: usize = 10_000;
/// Distinct project ids, organisation ids and owners kept for sharing;
/// beyond this each key holds its own copy.
const MAX_SHARED_NAMES: usize = 1_000_000;

impl KeyCache {
    /// An empty cache hashing with `hasher`.
    pub fn new(hasher: KeyHasher) -> Self {
        KeyCache {
            hasher,
            by_digest: DashMap::with_hasher(DigestHash::default()),
            digest_by_id: DashMap::new(),
            allowlists: DashMap::new(),
            names: DashMap::new(),
        }
    }

    /// The shared copy of `name`.
    fn intern(&self, name: &str) -> Arc<str> {
        if let Some(shared) = self.names.get(name) {
            return Arc::clone(shared.key());
        }
        let name: Arc<str> = Arc::from(name);
        if self.names.len() >= MAX_SHARED_NAMES {
            return name;
        }
        Arc::clone(self.names.entry(name).or_insert(()).key())
    }

    /// The compiled allowlist for `patterns`, shared when seen before.
    fn allowlist(&self, patterns: &[String]) -> Result<Arc<ModelAllowlist>, String> {
        if let Some(shared) = self.allowlists.get(patterns) {
            return Ok(Arc::clone(shared.value()));
        }
        let compiled = Arc::new(ModelAllowlist::new(patterns.to_vec())?);
        if self.allowlists.len() >= MAX_SHARED_ALLOWLISTS {
            return Ok(compiled);
        }
        Ok(Arc::clone(
            self.allowlists
                .entry(patterns.to_vec())
                .or_insert(compiled)
                .value(),
        ))
    }

    /// The hasher keys are stored under.
    pub fn hasher(&self) -> &KeyHasher {
        &self.hasher
    }

    /// Insert or replace the entry for a stored key. A record whose digest
    /// or patterns are unreadable is skipped (and reported) rather than
    /// taking the gateway down.
    pub fn upsert(&self, record: &KeyRecord) {
        let Some(digest) = decode_digest(&record.secret_hash) else {
            tracing::error!(key_id = %record.id, "stored key digest is not 32 hex bytes; key ignored");
            return;
        };
        let models = match self.allowlist(&record.models) {
            Ok(models) => models,
            Err(e) => {
                tracing::error!(key_id = %record.id, error = %e, "stored key has bad model patterns; key ignored");
                return;
            }
        };
        let (scopes, allow_ips) = match (
            crate::policy::Scopes::parse(&record.scopes),
            crate::policy::IpAllowlist::parse(&record.allow_ips),
        ) {
            (Ok(scopes), Ok(allow_ips)) => (scopes, allow_ips),
            (Err(e), _) | (_, Err(e)) => {
                // Refuse rather than serve a key with a looser policy.
                tracing::error!(key_id = %record.id, error = %e, "stored key has an unreadable policy; key ignored");
                self.remove(&record.id);
                return;
            }
        };
        let entry = KeyEntry {
            id: record.id.clone(),
            kind: record.kind,
            env: record.env.clone(),
            models,
            expires_at: record.expires_at,
            revoked_at: record.revoked_at,
            suspended: record.suspended_at.is_some(),
            scopes,
            allow_ips,
            limits: (!record.limits.is_empty()).then(|| Box::new(record.limits.clone())),
            limits_version: record.updated_at,
            project_id: record.project_id.as_deref().map(|n| self.intern(n)),
            org_id: record.org_id.as_deref().map(|n| self.intern(n)),
            owner: record.owner.as_deref().map(|n| self.intern(n)),
            digest,
        };
        // The replaced secret of a rotation: the same key, ending at the
        // earlier of the key's expiry and the grace period's end.
        let previous = record
            .previous_secret_hash
            .as_deref()
            .zip(record.previous_expires_at)
            .and_then(|(hash, until)| Some((decode_digest(hash)?, until)))
            .filter(|(previous, _)| *previous != digest)
            .map(|(previous, until)| {
                let expires_at = Some(record.expires_at.map_or(until, |e| e.min(until)));
                (
                    previous,
                    Arc::new(KeyEntry {
                        expires_at,
                        digest: previous,
                        ..entry.clone()
                    }),
                )
            });
        // Insert the new entries before dropping stale ones, so a secret
        // that stays valid is never missing for a moment. The key's slot
        // is held throughout, and an older record than the one applied is
        // ignored: a refresh that read the row just before a revocation
        // must not bring the key back after the revocation was applied.
        let previous_digest = previous.as_ref().map(|(d, _)| *d);
        let mut slot = self.digest_by_id.entry(record.id.clone());
        let old = match &mut slot {
            dashmap::Entry::Occupied(held) if held.get().2 > record.updated_at => return,
            dashmap::Entry::Occupied(held) => Some((held.get().0, held.get().1)),
            dashmap::Entry::Vacant(_) => None,
        };
        self.by_digest.insert(digest, Arc::new(entry));
        if let Some((previous, previous_entry)) = previous {
            self.by_digest.insert(previous, previous_entry);
        }
        slot.insert((digest, previous_digest, record.updated_at));
        if let Some((old, old_previous)) = old {
            for stale in [Some(old), old_previous].into_iter().flatten() {
                if stale != digest && Some(stale) != previous_digest {
                    self.by_digest.remove(&stale);
                }
            }
        }
    }

    /// Forget a key (both of its secrets).
    fn remove(&self, id: &str) {
        if let Some((_, (digest, previous, _))) = self.digest_by_id.remove(id) {
            self.by_digest.remove(&digest);
            if let Some(previous) = previous {
                self.by_digest.remove(&previous);
            }
        }
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.digest_by_id.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.digest_by_id.is_empty()
    }

    /// Verify a presented credential of the expected kind at time `now`.
    pub fn verify(&self, presented: &str, now: i64) -> Result<Arc<KeyEntry>, ApiError> {
        let parsed = key::parse(presented).map_err(|_| {
            ApiError::unauthorized(
                "invalid_api_key",
                "The API key is malformed: keygate keys look like kg_<environment>_… . Check that the whole key was copied.",
            )
        })?;
        let digest = self.hasher.digest(presented);
        let entry = self
            .by_digest
            .get(&digest)
            .map(|e| Arc::clone(e.value()))
            .filter(|e| bool::from(e.digest.ct_eq(&digest)) && e.env == parsed.env)
            .ok_or_else(|| {
                ApiError::unauthorized("invalid_api_key", "The API key is not valid.")
            })?;
        usable(&entry, now)?;
        Ok(entry)
    }

    /// The entry a presented secret belongs to, whatever its state (a
    /// revoked key, or a secret replaced by a rotation, still names its
    /// key): what a leak report is matched against.
    pub fn lookup(&self, presented: &str) -> Option<Arc<KeyEntry>> {
        let parsed = key::parse(presented).ok()?;
        let digest = self.hasher.digest(presented);
        self.by_digest
            .get(&digest)
            .map(|e| Arc::clone(e.value()))
            .filter(|e| bool::from(e.digest.ct_eq(&digest)) && e.env == parsed.env)
    }

    /// The current entry of the key `id`, whatever its state (callers check
    /// it with [`usable`]): what a token minted under the key inherits.
    pub fn by_id(&self, id: &str) -> Option<Arc<KeyEntry>> {
        let digest = self.digest_by_id.get(id)?.0;
        self.by_digest.get(&digest).map(|e| Arc::clone(e.value()))
    }

    /// The compiled allowlist for `patterns`, shared with keys that have the
    /// same patterns.
    pub fn models_for(&self, patterns: &[String]) -> Result<Arc<ModelAllowlist>, String> {
        self.allowlist(patterns)
    }
}

/// Refuse a key that is revoked, suspended or expired at `now`.
pub fn usable(entry: &KeyEntry, now: i64) -> Result<(), ApiError> {
    if entry.revoked_at.is_some_and(|t| t <= now) {
        return Err(ApiError::unauthorized(
            "revoked_api_key",
            "The API key has been revoked.",
        ));
    }
    if entry.suspended {
        return Err(ApiError::unauthorized(
            "suspended_api_key",
            "The API key is suspended; an administrator can resume it.",
        ));
    }
    if entry.expires_at.is_some_and(|t| t <= now) {
        return Err(ApiError::unauthorized(
            "expired_api_key",
            "The API key has expired.",
        ));
    }
    Ok(())
}

fn decode_digest(text: &str) -> Option<KeyDigest> {
    let bytes = hex::decode(text).ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::{ExposeSecret, SecretBox};

    fn cache() -> KeyCache {
        KeyCache::new(KeyHasher::new(&SecretBox::new(Box::new(vec![7u8; 32]))).unwrap())
    }

    fn record(cache: &KeyCache, secret: &str, id: &str) -> KeyRecord {
        KeyRecord {
            id: id.into(),
            kind: KeyKind::Data,
            name: "t".into(),
            env: "live".into(),
            secret_hash: hex::encode(cache.hasher().digest(secret)),
            hint: key::hint(secret),
            models: vec!["gpt-*".into()],
            created_at: 0,
            expires_at: Some(1000),
            revoked_at: None,
            revoke_reason: None,
            updated_at: 0,
            previous_secret_hash: None,
            previous_expires_at: None,
            suspended_at: None,
            scopes: Vec::new(),
            allow_ips: Vec::new(),
            description: None,
            metadata: serde_json::Map::new(),
            rotated_at: None,
            org_id: None,
            project_id: None,
            owner: None,
            role: None,
            auto_rotate_webhook: None,
            limits: Limits::default(),
            on_anomaly: None,
        }
    }

    #[test]
    fn entries_carry_limits_and_share_their_tenancy_names() {
        let c = cache();
        let (a, b) = (key::generate("live"), key::generate("live"));
        let mut limited = record(&c, a.expose_secret(), "key_a");
        limited.updated_at = 7;
        limited.limits = Limits {
            rpm: Some(60),
            ..Limits::default()
        };
        limited.project_id = Some("proj_x".into());
        limited.org_id = Some("org_x".into());
        limited.owner = Some("ann".into());
        c.upsert(&limited);
        let mut plain = record(&c, b.expose_secret(), "key_b");
        plain.project_id = Some("proj_x".into());
        plain.org_id = Some("org_x".into());
        plain.owner = Some("ann".into());
        c.upsert(&plain);
        let (a, b) = (
            c.verify(a.expose_secret(), 10).unwrap(),
            c.verify(b.expose_secret(), 10).unwrap(),
        );
        assert_eq!(a.limits.as_ref().and_then(|l| l.rpm), Some(60));
        assert_eq!(a.limits_version, 7);
        assert!(b.limits.is_none(), "no limits, no allocation");
        assert_eq!(a.project_id.as_deref(), Some("proj_x"));
        for (x, y) in [
            (&a.project_id, &b.project_id),
            (&a.org_id, &b.org_id),
            (&a.owner, &b.owner),
        ] {
            assert!(Arc::ptr_eq(x.as_ref().unwrap(), y.as_ref().unwrap()));
        }
        // A million entries must stay small: limits and tenancy add a few
        // words to each, never a copy of the strings.
        assert!(
            std::mem::size_of::<KeyEntry>() <= 256,
            "{}",
            std::mem::size_of::<KeyEntry>()
        );
    }

    #[test]
    fn a_stale_record_never_undoes_a_newer_one() {
        let c = cache();
        let secret = key::generate("live");
        let mut rec = record(&c, secret.expose_secret(), "key_a");
        rec.updated_at = 20;
        rec.revoked_at = Some(5);
        c.upsert(&rec);
        // A refresh that read the row before the revocation comes late.
        let mut stale = rec.clone();
        stale.updated_at = 10;
        stale.revoked_at = None;
        c.upsert(&stale);
        assert_eq!(
            c.verify(secret.expose_secret(), 10).unwrap_err().code,
            "revoked_api_key"
        );
    }

    #[test]
    fn an_entry_carries_its_keys_tenancy_for_the_ledger() {
        let c = cache();
        let secret = key::generate("live");
        let mut rec = record(&c, secret.expose_secret(), "key_a");
        rec.owner = Some("alice@example.com".into());
        rec.project_id = Some("proj_a".into());
        rec.org_id = Some("org_a".into());
        c.upsert(&rec);
        let entry = c.verify(secret.expose_secret(), 10).unwrap();
        assert_eq!(entry.owner.as_deref(), Some("alice@example.com"));
        assert_eq!(entry.project_id.as_deref(), Some("proj_a"));
        assert_eq!(entry.org_id.as_deref(), Some("org_a"));
        // A key moved to another project is attributed there from then on.
        rec.project_id = Some("proj_b".into());
        rec.updated_at = 1;
        c.upsert(&rec);
        let entry = c.verify(secret.expose_secret(), 10).unwrap();
        assert_eq!(entry.project_id.as_deref(), Some("proj_b"));
    }

    #[test]
    fn keys_with_the_same_allowlist_share_one_compiled_copy() {
        let c = cache();
        let (a, b, d) = (
            key::generate("live"),
            key::generate("live"),
            key::generate("live"),
        );
        c.upsert(&record(&c, a.expose_secret(), "key_a"));
        c.upsert(&record(&c, b.expose_secret(), "key_b"));
        let mut other = record(&c, d.expose_secret(), "key_d");
        other.models = vec!["claude-*".into()];
        c.upsert(&other);
        let (a, b, d) = (
            c.verify(a.expose_secret(), 10).unwrap(),
            c.verify(b.expose_secret(), 10).unwrap(),
            c.verify(d.expose_secret(), 10).unwrap(),
        );
        assert!(Arc::ptr_eq(&a.models, &b.models));
        assert!(!Arc::ptr_eq(&a.models, &d.models));
        assert!(d.models.allows("claude-3", "anthropic/claude-3"));
        assert!(!d.models.allows("gpt-4o", "openai/gpt-4o"));
    }

    #[test]
    fn verifies_known_keys_and_refuses_others() {
        let c = cache();
        let secret = key::generate("live");
        let mut rec = record(&c, secret.expose_secret(), "key_a");
        c.upsert(&rec);
        let entry = c.verify(secret.expose_secret(), 10).unwrap();
        assert_eq!(entry.id, "key_a");
        assert!(entry.models.allows("gpt-4o", "openai/gpt-4o"));
        assert!(!entry.models.allows("claude-x", "anthropic/claude-x"));

        let other = key::generate("live");
        assert_eq!(
            c.verify(other.expose_secret(), 10).unwrap_err().code,
            "invalid_api_key"
        );
        assert_eq!(c.verify("garbage", 10).unwrap_err().code, "invalid_api_key");
        assert_eq!(
            c.verify(secret.expose_secret(), 1000).unwrap_err().code,
            "expired_api_key"
        );

        rec.revoked_at = Some(5);
        c.upsert(&rec);
        assert_eq!(
            c.verify(secret.expose_secret(), 10).unwrap_err().code,
            "revoked_api_key"
        );
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn a_rotated_secret_works_until_its_grace_period_ends() {
        let c = cache();
        let first = key::generate("live");
        let mut rec = record(&c, first.expose_secret(), "key_r");
        rec.expires_at = None;
        c.upsert(&rec);
        // Rotate at t=100 with the old secret good until t=500.
        let second = key::generate("live");
        rec.previous_secret_hash = Some(rec.secret_hash.clone());
        rec.previous_expires_at = Some(500);
        rec.secret_hash = hex::encode(c.hasher().digest(second.expose_secret()));
        c.upsert(&rec);
        assert_eq!(c.verify(first.expose_secret(), 499).unwrap().id, "key_r");
        assert_eq!(c.verify(second.expose_secret(), 499).unwrap().id, "key_r");
        assert_eq!(
            c.verify(first.expose_secret(), 500).unwrap_err().code,
            "expired_api_key"
        );
        assert!(c.verify(second.expose_secret(), 10_000).is_ok());
        assert_eq!(c.len(), 1, "one key, two secrets");

        // A second rotation retires the first secret for good.
        let third = key::generate("live");
        rec.previous_secret_hash = Some(rec.secret_hash.clone());
        rec.previous_expires_at = Some(900);
        rec.secret_hash = hex::encode(c.hasher().digest(third.expose_secret()));
        c.upsert(&rec);
        assert_eq!(
            c.verify(first.expose_secret(), 10).unwrap_err().code,
            "invalid_api_key"
        );
        assert!(c.verify(second.expose_secret(), 899).is_ok());
        assert!(c.verify(third.expose_secret(), 899).is_ok());

        // Revocation ends both secrets at once.
        rec.revoked_at = Some(50);
        c.upsert(&rec);
        for secret in [&second, &third] {
            assert_eq!(
                c.verify(secret.expose_secret(), 60).unwrap_err().code,
                "revoked_api_key"
            );
        }
    }

    #[test]
    fn empty_allowlist_allows_everything() {
        let all = ModelAllowlist::new(vec![]).unwrap();
        assert!(all.allows("anything", "p/anything"));
        let canonical = ModelAllowlist::new(vec!["anthropic/*".into()]).unwrap();
        assert!(canonical.allows("claude-x", "anthropic/claude-x"));
        assert!(ModelAllowlist::new(vec!["[".into()]).is_err());
    }
}
