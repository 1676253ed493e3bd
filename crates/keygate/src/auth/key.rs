//! The keygate key format: `kg_<env>_<32 random base62><6 base62 CRC32>`.
//!
//! The fixed prefix with the environment in it makes keys recognisable to
//! scanners; 32 base62 characters drawn from the OS carry about 190 bits; the
//! trailing CRC32 (the GitHub token scheme) lets the gateway and the scanner
//! reject a look-alike offline, without touching the store.

use rand::distr::{Alphanumeric, Distribution};
use rand::rngs::OsRng;
use rand::TryRngCore;
use secrecy::SecretString;

/// Every keygate key starts with this.
pub const PREFIX: &str = "kg_";
/// The environment name reserved for admin credentials.
pub const ADMIN_ENV: &str = "admin";
/// Random characters after the environment.
const RANDOM_LEN: usize = 32;
/// Base62 characters of the checksum (CRC32 < 62^6).
const CHECKSUM_LEN: usize = 6;
/// Longest environment name.
pub const MAX_ENV_LEN: usize = 16;

/// What a credential may do: call the data plane, administer the gateway,
/// or stand behind short-lived tokens.
///
/// The three token principals are key records too, so that the policy
/// every token inherits (models, scopes, networks, environment, limits,
/// project, owner) is edited, rotated, suspended and revoked exactly like a
/// key's, and a token's spend counts against the record's budgets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// A data-plane key: calls models.
    Data,
    /// An admin credential: calls `/admin/v1`.
    Admin,
    /// An OAuth client: its secret is accepted only at `/oauth/token`
    /// (client credentials), never as a key on the data plane.
    Client,
    /// A service account: tokens from RFC 7523 assertions signed by one of
    /// its registered keys. Its own secret is never handed out.
    ServiceAccount,
    /// A trusted OIDC issuer's rule (workload identity federation): tokens
    /// from RFC 8693 exchanges of matching identity tokens. Its own secret
    /// is never handed out.
    Workload,
}

impl KeyKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Data => "data",
            KeyKind::Admin => "admin",
            KeyKind::Client => "client",
            KeyKind::ServiceAccount => "service_account",
            KeyKind::Workload => "workload",
        }
    }
    /// Parse the stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "data" => Some(KeyKind::Data),
            "admin" => Some(KeyKind::Admin),
            "client" => Some(KeyKind::Client),
            "service_account" => Some(KeyKind::ServiceAccount),
            "workload" => Some(KeyKind::Workload),
            _ => None,
        }
    }
    /// Whether tokens may be minted under a credential of this kind (every
    /// kind but admin credentials).
    pub fn mints_tokens(self) -> bool {
        self != KeyKind::Admin
    }
}

/// A string that has the shape and checksum of a keygate key.
#[derive(Debug, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    /// Environment named in the prefix (`live`, `test`, … or `admin`).
    pub env: &'a str,
}

impl ParsedKey<'_> {
    /// Admin credentials carry the reserved `admin` environment.
    pub fn kind(&self) -> KeyKind {
        if self.env == ADMIN_ENV {
            KeyKind::Admin
        } else {
            KeyKind::Data
        }
    }
}

/// Why a string is not a keygate key.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// It does not start with `kg_<env>_`.
    #[error("not a keygate key: it must start with 'kg_<environment>_'")]
    Prefix,
    /// The part after the prefix has the wrong length or alphabet.
    #[error("not a keygate key: wrong length or characters")]
    Body,
    /// Shape right, checksum wrong: a typo or a forgery.
    #[error("not a keygate key: checksum mismatch")]
    Checksum,
}

/// Is `env` usable as an environment name (and so inside a key prefix)?
pub fn valid_env_name(env: &str) -> bool {
    !env.is_empty()
        && env.len() <= MAX_ENV_LEN
        && env
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn checksum(text: &str) -> String {
    format!(
        "{:0>width$}",
        base62::encode(crc32fast::hash(text.as_bytes())),
        width = CHECKSUM_LEN
    )
}

/// Mint a new key for `env` from the OS random source.
pub fn generate(env: &str) -> SecretString {
    // OsRng reads the kernel CSPRNG directly; a failure there is
    // unrecoverable for a key generator and the kernel does not fail it
    // after boot, so UnwrapErr's behaviour is the right one.
    let mut rng = OsRng.unwrap_err();
    let random: String = Alphanumeric
        .sample_iter(&mut rng)
        .take(RANDOM_LEN)
        .map(char::from)
        .collect();
    let mut key = format!("{PREFIX}{env}_{random}");
    let sum = checksum(&key);
    key.push_str(&sum);
    SecretString::from(key)
}

/// Check shape and checksum of a presented credential, offline.
pub fn parse(text: &str) -> Result<ParsedKey<'_>, FormatError> {
    let rest = text.strip_prefix(PREFIX).ok_or(FormatError::Prefix)?;
    let (env, body) = rest.split_once('_').ok_or(FormatError::Prefix)?;
    if !valid_env_name(env) {
        return Err(FormatError::Prefix);
    }
    if body.len() != RANDOM_LEN + CHECKSUM_LEN || !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(FormatError::Body);
    }
    let (signed, sum) = text.split_at(text.len() - CHECKSUM_LEN);
    if checksum(signed) != sum {
        return Err(FormatError::Checksum);
    }
    Ok(ParsedKey { env })
}

/// The non-secret hint shown in lists and logs: the last four characters.
pub fn hint(secret: &str) -> String {
    let tail: String = secret
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("...{tail}")
}

/// A fresh public identifier (`key_…`, `org_…`, `proj_…`): not secret,
/// never accepted as a credential.
pub fn new_id(prefix: &str) -> String {
    let mut rng = OsRng.unwrap_err();
    let random: String = Alphanumeric
        .sample_iter(&mut rng)
        .take(16)
        .map(char::from)
        .collect();
    format!("{prefix}_{random}")
}

/// A fresh public identifier for a key.
pub fn new_key_id() -> String {
    new_id("key")
}

/// Whether `id` has the shape of an identifier with `prefix` (so it can be
/// looked up at all).
pub fn valid_id(prefix: &str, id: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|rest| {
            !rest.is_empty() && rest.len() <= 64 && rest.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

/// Whether `id` has the shape of a key id.
pub fn valid_key_id(id: &str) -> bool {
    valid_id("key", id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn generated_keys_parse_and_carry_their_env() {
        let key = generate("live");
        let text = key.expose_secret();
        assert!(text.starts_with("kg_live_"));
        assert_eq!(text.len(), "kg_live_".len() + 38);
        assert_eq!(parse(text).map(|p| p.env), Ok("live"));
        assert_eq!(
            parse(generate("admin").expose_secret()).map(|p| p.kind()),
            Ok(KeyKind::Admin)
        );
    }

    #[test]
    fn keys_are_unique() {
        let a = generate("test");
        let b = generate("test");
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn any_single_character_change_is_rejected_offline() {
        let key = generate("live");
        let text = key.expose_secret().to_string();
        let body_start = "kg_live_".len();
        for i in body_start..text.len() {
            let mut bytes = text.clone().into_bytes();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let altered = String::from_utf8(bytes).unwrap_or_default();
            assert!(parse(&altered).is_err(), "altered at {i} accepted");
        }
    }

    #[test]
    fn malformed_strings_are_rejected() {
        assert_eq!(parse("sk-proj-abc"), Err(FormatError::Prefix));
        assert_eq!(parse("kg_live"), Err(FormatError::Prefix));
        assert_eq!(parse("kg_LIVE_abc"), Err(FormatError::Prefix));
        assert_eq!(parse("kg_live_short"), Err(FormatError::Body));
        assert_eq!(
            parse(&format!("kg_live_{}", "é".repeat(19))),
            Err(FormatError::Body)
        );
        assert_eq!(
            parse(&format!("kg_live_{}", "a".repeat(38))),
            Err(FormatError::Checksum)
        );
    }

    #[test]
    fn env_names() {
        assert!(valid_env_name("live"));
        assert!(valid_env_name("staging2"));
        assert!(!valid_env_name(""));
        assert!(!valid_env_name("Live"));
        assert!(!valid_env_name("a_b"));
        assert!(!valid_env_name(&"a".repeat(17)));
    }

    #[test]
    fn key_ids() {
        assert!(valid_key_id(&new_key_id()));
        assert!(!valid_key_id("key_"));
        assert!(!valid_key_id("key_a\0b"));
        assert!(!valid_key_id("kg_live_x"));
    }

    #[test]
    fn hint_is_last_four() {
        assert_eq!(hint("kg_live_abcdef"), "...cdef");
    }
}
