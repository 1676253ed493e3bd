//! Envelope encryption of stored provider credentials.
//!
//! Each credential gets its own random 256-bit data key, which encrypts the
//! secret with AES-256-GCM; the associated data binds the credential's name,
//! so a ciphertext moved to another row fails to decrypt. The data key is in
//! turn encrypted (wrapped) under the master key, with associated data
//! binding the name and the master key id. Rotating the master key re-wraps
//! only the data keys ([`rewrap`]); the secrets' ciphertexts stay as they are.

use super::CredentialError;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use zeroize::Zeroizing;

const NONCE_LEN: usize = 12;
const KEY_LEN: usize = 32;

/// The master key: 32 bytes, zeroed on drop, and its public id.
pub struct MasterKey {
    key: Zeroizing<[u8; KEY_LEN]>,
    id: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    /// A master key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> MasterKey {
        let key = Zeroizing::new(bytes);
        let id = fingerprint(&key);
        MasterKey { key, id }
    }

    /// A master key from base64 text (standard or URL-safe alphabet) of
    /// exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<MasterKey, CredentialError> {
        use base64::Engine;
        let text = text.trim();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text))
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .map(Zeroizing::new)
            .map_err(|_| CredentialError::MasterKey("not base64 text".into()))?;
        let bytes: [u8; KEY_LEN] = decoded.as_slice().try_into().map_err(|_| {
            CredentialError::MasterKey(format!(
                "must be {KEY_LEN} bytes (base64), got {}",
                decoded.len()
            ))
        })?;
        Ok(MasterKey::from_bytes(bytes))
    }

    /// A new random master key.
    pub fn generate() -> Result<MasterKey, CredentialError> {
        Ok(MasterKey::from_bytes(random()?))
    }

    /// The key as base64 text (for writing a key file).
    pub fn to_base64(&self) -> SecretString {
        use base64::Engine;
        SecretString::from(base64::engine::general_purpose::STANDARD.encode(*self.key))
    }

    /// The public id: the first 16 hex digits of HMAC-SHA256(key, label).
    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.key.as_slice()))
    }
}

fn fingerprint(key: &[u8; KEY_LEN]) -> String {
    // HMAC accepts any key length; the error branch cannot happen.
    match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(b"keygate master key id v1");
            let digest = mac.finalize().into_bytes();
            hex::encode(&digest[..8])
        }
        Err(_) => String::from("unknown"),
    }
}

fn random<const N: usize>() -> Result<[u8; N], CredentialError> {
    use rand::TryRngCore;
    let mut bytes = [0u8; N];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| CredentialError::Encrypt(format!("no randomness from the OS: {e}")))?;
    Ok(bytes)
}

/// A sealed secret as stored: nothing here is secret without the master key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// Nonce of the secret's encryption.
    pub data_nonce: Vec<u8>,
    /// The secret under the data key (with its GCM tag).
    pub ciphertext: Vec<u8>,
    /// Nonce of the data key's encryption.
    pub key_nonce: Vec<u8>,
    /// The data key under the master key (with its GCM tag).
    pub wrapped_key: Vec<u8>,
    /// Id of the master key the data key is wrapped under.
    pub master_key_id: String,
}

fn data_aad(name: &str) -> Vec<u8> {
    [
        b"keygate provider credential v1\0".as_slice(),
        name.as_bytes(),
    ]
    .concat()
}

fn key_aad(name: &str, master_key_id: &str) -> Vec<u8> {
    [
        b"keygate data key v1\0".as_slice(),
        name.as_bytes(),
        b"\0",
        master_key_id.as_bytes(),
    ]
    .concat()
}

/// Encrypt `secret`, the credential called `name`, under a new data key
/// wrapped by `master`.
pub fn seal(
    master: &MasterKey,
    name: &str,
    secret: &SecretString,
) -> Result<Sealed, CredentialError> {
    let data_key = Zeroizing::new(random::<KEY_LEN>()?);
    let data_nonce = random::<NONCE_LEN>()?;
    let encrypt_failed = || CredentialError::Encrypt("AES-GCM refused the input".into());
    let ciphertext = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(data_key.as_slice()))
        .encrypt(
            Nonce::from_slice(&data_nonce),
            Payload {
                msg: secret.expose_secret().as_bytes(),
                aad: &data_aad(name),
            },
        )
        .map_err(|_| encrypt_failed())?;
    let (key_nonce, wrapped_key) = wrap(master, name, &data_key)?;
    Ok(Sealed {
        data_nonce: data_nonce.to_vec(),
        ciphertext,
        key_nonce,
        wrapped_key,
        master_key_id: master.id.clone(),
    })
}

fn wrap(
    master: &MasterKey,
    name: &str,
    data_key: &[u8; KEY_LEN],
) -> Result<(Vec<u8>, Vec<u8>), CredentialError> {
    let key_nonce = random::<NONCE_LEN>()?;
    let wrapped = master
        .cipher()
        .encrypt(
            Nonce::from_slice(&key_nonce),
            Payload {
                msg: data_key,
                aad: &key_aad(name, &master.id),
            },
        )
        .map_err(|_| CredentialError::Encrypt("AES-GCM refused the data key".into()))?;
    Ok((key_nonce.to_vec(), wrapped))
}

fn unwrap_key(
    master: &MasterKey,
    name: &str,
    sealed: &Sealed,
) -> Result<Zeroizing<[u8; KEY_LEN]>, CredentialError> {
    let refused = || CredentialError::Decrypt {
        name: name.to_string(),
    };
    if sealed.master_key_id != master.id {
        return Err(CredentialError::UnknownMasterKey {
            names: name.to_string(),
            stored_id: sealed.master_key_id.clone(),
            current_id: master.id.clone(),
        });
    }
    if sealed.key_nonce.len() != NONCE_LEN || sealed.data_nonce.len() != NONCE_LEN {
        return Err(refused());
    }
    let plain = Zeroizing::new(
        master
            .cipher()
            .decrypt(
                Nonce::from_slice(&sealed.key_nonce),
                Payload {
                    msg: &sealed.wrapped_key,
                    aad: &key_aad(name, &sealed.master_key_id),
                },
            )
            .map_err(|_| refused())?,
    );
    let key: [u8; KEY_LEN] = plain.as_slice().try_into().map_err(|_| refused())?;
    Ok(Zeroizing::new(key))
}

/// Decrypt the credential `name` sealed by [`seal`].
pub fn open(
    master: &MasterKey,
    name: &str,
    sealed: &Sealed,
) -> Result<SecretString, CredentialError> {
    let data_key = unwrap_key(master, name, sealed)?;
    let refused = || CredentialError::Decrypt {
        name: name.to_string(),
    };
    let plain = Zeroizing::new(
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(data_key.as_slice()))
            .decrypt(
                Nonce::from_slice(&sealed.data_nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &data_aad(name),
                },
            )
            .map_err(|_| refused())?,
    );
    let text = std::str::from_utf8(&plain).map_err(|_| refused())?;
    Ok(SecretString::from(text.to_string()))
}

/// Re-wrap the data key of `sealed` from `old` to `new`; the ciphertext of
/// the secret is unchanged.
pub fn rewrap(
    old: &MasterKey,
    new: &MasterKey,
    name: &str,
    sealed: &Sealed,
) -> Result<Sealed, CredentialError> {
    let data_key = unwrap_key(old, name, sealed)?;
    let (key_nonce, wrapped_key) = wrap(new, name, &data_key)?;
    Ok(Sealed {
        key_nonce,
        wrapped_key,
        master_key_id: new.id.clone(),
        ..sealed.clone()
    })
}
