//! The server secret (pepper) and the keyed hash keys are stored under.
//!
//! Keys are stored only as HMAC-SHA256(pepper, key). The pepper lives outside
//! the database (environment or an owner-only file), so a dump of the store
//! can neither authenticate nor confirm a guessed key.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;
use std::path::Path;

type HmacSha256 = Hmac<Sha256>;

/// Digest of a key under the pepper.
pub type KeyDigest = [u8; 32];

/// Why the server secret could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PepperError {
    /// `KEYGATE_SERVER_SECRET` is too short to be a secret.
    #[error("KEYGATE_SERVER_SECRET must be at least 32 characters")]
    TooShort,
    /// The secret file could not be read or created.
    #[error("server secret file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Computes key digests; pre-keyed so the hot path only clones the state.
#[derive(Clone)]
pub struct KeyHasher {
    keyed: HmacSha256,
}

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHasher(..)")
    }
}

impl KeyHasher {
    /// A hasher keyed with `pepper`.
    pub fn new(pepper: &SecretBox<Vec<u8>>) -> Result<Self, PepperError> {
        // HMAC accepts keys of any length; the error exists for fixed-key MACs.
        let keyed = HmacSha256::new_from_slice(pepper.expose_secret())
            .map_err(|_| PepperError::TooShort)?;
        Ok(KeyHasher { keyed })
    }

    /// HMAC-SHA256 of `secret` under the pepper.
    pub fn digest(&self, secret: &str) -> KeyDigest {
        let mut mac = self.keyed.clone();
        mac.update(secret.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A fingerprint of the pepper itself, stored so that starting with the
    /// wrong server secret is detected instead of silently rejecting every key.
    pub fn fingerprint(&self) -> String {
        hex::encode(self.digest("keygate pepper fingerprint v1"))
    }
}

/// Load the pepper: from `KEYGATE_SERVER_SECRET` when given, else from
/// `<data_dir>/server.secret`, which is created (owner-only) on first start.
/// Returns the pepper and whether it was newly created.
pub fn load_or_create(
    from_env: Option<&SecretString>,
    data_dir: &Path,
) -> Result<(SecretBox<Vec<u8>>, bool), PepperError> {
    if let Some(secret) = from_env {
        let bytes = secret.expose_secret().as_bytes().to_vec();
        if bytes.len() < 32 {
            return Err(PepperError::TooShort);
        }
        return Ok((SecretBox::new(Box::new(bytes)), false));
    }
    let path = data_dir.join("server.secret");
    let file_err = |source| PepperError::File {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let bytes = hex::decode(text.trim()).map_err(|_| {
                file_err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "not hex",
                ))
            })?;
            if bytes.len() < 32 {
                return Err(PepperError::TooShort);
            }
            Ok((SecretBox::new(Box::new(bytes)), false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = vec![0u8; 32];
            use rand::TryRngCore;
            rand::rngs::OsRng
                .try_fill_bytes(&mut bytes)
                .map_err(|e| file_err(std::io::Error::other(e)))?;
            crate::config::write_owner_only(&path, hex::encode(&bytes).as_bytes())
                .map_err(file_err)?;
            Ok((SecretBox::new(Box::new(bytes)), true))
        }
        Err(e) => Err(file_err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_depends_on_pepper_and_key() {
        let a = KeyHasher::new(&SecretBox::new(Box::new(vec![1u8; 32]))).unwrap();
        let b = KeyHasher::new(&SecretBox::new(Box::new(vec![2u8; 32]))).unwrap();
        assert_ne!(a.digest("k"), b.digest("k"));
        assert_ne!(a.digest("k"), a.digest("j"));
        assert_eq!(a.digest("k"), a.digest("k"));
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn file_pepper_is_created_once_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let (p1, created) = load_or_create(None, dir.path()).unwrap();
        assert!(created);
        let (p2, created) = load_or_create(None, dir.path()).unwrap();
        assert!(!created);
        assert_eq!(p1.expose_secret(), p2.expose_secret());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("server.secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn short_env_secret_refused() {
        let s = SecretString::from("short");
        assert!(matches!(
            load_or_create(Some(&s), Path::new("/nonexistent")),
            Err(PepperError::TooShort)
        ));
    }
}
