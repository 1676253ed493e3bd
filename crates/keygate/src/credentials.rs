//! Provider (upstream) credentials: where they come from and how they are
//! kept.
//!
//! A provider's configuration names a [`CredentialSpec`] — an environment
//! variable, a `.env` file entry, a mounted file, an external command, or a
//! secret stored encrypted in the database. [`Credential::resolve`] turns it
//! into a [`Credential`]: a cheap-to-clone handle whose
//! [`current`](Credential::current) is the hot-path read (no system call for
//! environment values, at most one `stat` a second for files, a cache with
//! background refresh for commands, an in-memory map for stored secrets).
//!
//! Stored secrets are sealed with an AES-256-GCM envelope ([`envelope`])
//! under a master key ([`master_key`]); [`StoredCredentials`] is the vault
//! that decrypts them into memory and follows changes made on other nodes.
//!
//! # Wiring a provider
//!
//! - Configuration embeds a [`CredentialSpec`] (`api_key = { file = … }`).
//!   While the config is validated (synchronously), `env`, `file` and
//!   `dotenv` specs can be resolved with [`Credential::resolve_sync`];
//!   [`CredentialSpec::needs_gateway`] tells which (`command`, `stored`)
//!   must wait for the gateway.
//! - In `server::start`, once the vault exists (`Shared::credentials`):
//!   `Credential::resolve(&spec, &ResolveContext { env, base_dir, stored:
//!   Some(&credentials) }).await`, with `env` the process environment
//!   filled in from the `.env` file ([`DotEnvOverlay::for_config`]).
//! - Per request: [`Credential::current`] gives the secret to send; when the
//!   upstream answers 401/403, [`Credential::invalidate`] makes the next
//!   request re-read the source. [`CredentialError::to_api_error`] is what
//!   a client sees when no secret is available.

mod command;
pub mod dotenv;
pub mod envelope;
mod file;
pub mod master_key;
mod spec;
mod stored;

pub use command::{CommandRunner, COMMAND_TIMEOUT, DEFAULT_COMMAND_TTL};
pub use dotenv::DotEnvOverlay;
pub use envelope::{MasterKey, Sealed};
pub use master_key::MasterKeySource;
pub use spec::CredentialSpec;
pub use stored::{rekey, valid_name as stored_name_is_valid, StoredCredentials, StoredMeta};

use crate::config::Env;
use secrecy::{ExposeSecret, SecretString};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a provider credential is unavailable. No message ever contains the
/// secret (or file contents, or a command's output).
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The named environment variable is not set (or empty).
    #[error("environment variable {var} is not set")]
    MissingEnv {
        /// Variable name.
        var: String,
    },
    /// A file could not be read.
    #[error("credential file {path}: {source}")]
    Read {
        /// File.
        path: String,
        /// Cause (an I/O error, which never quotes the file).
        source: std::io::Error,
    },
    /// A `.env` file could not be parsed.
    #[error(
        "env file {path}: cannot parse entry {line} (its text is not shown: it may hold a secret)"
    )]
    DotEnvParse {
        /// File.
        path: String,
        /// Entry (1-based, counting assignments) at fault.
        line: usize,
    },
    /// A `.env` file does not define the variable.
    #[error("env file {path} does not define {var}")]
    MissingDotEnvVar {
        /// File.
        path: String,
        /// Variable.
        var: String,
    },
    /// The source yielded an empty secret (after trimming).
    #[error("{source_label} yielded an empty secret")]
    Empty {
        /// Which source.
        source_label: String,
    },
    /// The source yielded bytes that are not UTF-8 text.
    #[error("{source_label} yielded a secret that is not UTF-8 text")]
    NotText {
        /// Which source.
        source_label: String,
    },
    /// An external command failed; only its exit status is reported, never
    /// its output.
    #[error("credential command {program}: {reason}")]
    Command {
        /// The program (argv\[0\]).
        program: String,
        /// Exit status, timeout or spawn failure.
        reason: String,
    },
    /// The credential specification is unusable.
    #[error("invalid credential source: {0}")]
    InvalidSpec(String),
    /// No stored credential has this name.
    #[error("no stored provider credential named '{name}'")]
    NotStored {
        /// Name.
        name: String,
    },
    /// Stored credentials are not available here (no vault was given).
    #[error("stored provider credentials are not available in this context")]
    NoVault,
    /// The master key could not be loaded.
    #[error("master key: {0}")]
    MasterKey(String),
    /// Rows were sealed under a master key other than the one configured.
    #[error("stored provider credentials {names} are sealed under master key {stored_id}, but the configured master key is {current_id}; start with the master key they were sealed under (KEYGATE_MASTER_KEY, KEYGATE_MASTER_KEY_FILE or KEYGATE_MASTER_KEY_COMMAND), or re-wrap them with `keygate provider-credentials rekey`")]
    UnknownMasterKey {
        /// Affected credentials (comma-separated).
        names: String,
        /// The id in the rows.
        stored_id: String,
        /// The configured key's id.
        current_id: String,
    },
    /// Decryption failed: wrong master key, or tampered ciphertext.
    #[error("stored provider credential '{name}' cannot be decrypted (wrong master key or tampered row)")]
    Decrypt {
        /// Name.
        name: String,
    },
    /// Encryption failed (no randomness from the OS).
    #[error("encryption failed: {0}")]
    Encrypt(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl CredentialError {
    /// What a client sees when a provider credential is unavailable: 503,
    /// without details (which go to the log, not to clients).
    pub fn to_api_error(&self) -> crate::error::ApiError {
        crate::error::ApiError::unavailable(
            "The gateway cannot reach this provider right now: its credential is unavailable.",
        )
    }
}

/// Where the secret of a resolved [`Credential`] lives.
enum Source {
    /// Read once (environment variable): never changes.
    Fixed(Arc<SecretString>),
    /// A file (whole, or one `.env` entry), re-read when it changes.
    File(file::FileSource),
    /// An external command, cached for a lifetime.
    Command(Arc<command::CommandSource>),
    /// Stored encrypted in the database.
    Stored(stored::StoredSource),
}

struct Inner {
    /// Non-secret description of the source (`env:OPENAI_API_KEY`).
    label: String,
    source: Source,
}

/// A resolved provider credential. Cheap to clone; `Debug` shows only the
/// source, never the secret.
#[derive(Clone)]
pub struct Credential {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Credential")
            .field(&self.inner.label)
            .finish()
    }
}

/// What [`Credential::resolve`] needs besides the spec.
#[derive(Clone, Copy)]
pub struct ResolveContext<'a> {
    /// Environment for `{ env = … }` (the process environment overlaid with
    /// the `.env` file: [`DotEnvOverlay`]).
    pub env: &'a dyn Env,
    /// Relative file paths are taken from here (the config file's directory,
    /// or the working directory when `None`).
    pub base_dir: Option<&'a Path>,
    /// The vault, for `{ stored = … }`; `None` makes such specs an error.
    pub stored: Option<&'a StoredCredentials>,
}

impl Credential {
    /// Resolve `spec`: read the environment or the file, or run the
    /// command, once now, so that a misconfiguration fails at startup. A
    /// `stored` name not stored yet only warns (it can be added through the
    /// admin API once the gateway runs).
    pub async fn resolve(
        spec: &CredentialSpec,
        ctx: &ResolveContext<'_>,
    ) -> Result<Credential, CredentialError> {
        spec.validate()?;
        let (label, source) = match spec {
            CredentialSpec::Env { .. }
            | CredentialSpec::File { .. }
            | CredentialSpec::DotEnv { .. } => {
                return Credential::resolve_sync(spec, ctx.env, ctx.base_dir);
            }
            CredentialSpec::Command { command, ttl } => {
                let ttl = spec::parse_ttl(ttl.as_deref())?;
                let source = command::CommandSource::new(
                    command.clone(),
                    ttl,
                    command::CommandRunner::system(),
                );
                source.current().await?;
                (command::label(command), Source::Command(source))
            }
            CredentialSpec::Stored { stored } => {
                let vault = ctx.stored.ok_or(CredentialError::NoVault)?;
                let source = stored::StoredSource::new(vault.clone(), stored.clone());
                // Not stored yet is no startup error: the admin API that
                // stores it needs the gateway running. Requests get
                // `NotStored` until it is added (any node picks it up).
                if let Err(e) = source.current() {
                    tracing::warn!(error = %e, "provider credential not stored yet; requests needing it fail until it is added");
                }
                (format!("stored:{stored}"), Source::Stored(source))
            }
        };
        Ok(Credential {
            inner: Arc::new(Inner { label, source }),
        })
    }

    /// Resolve the sources that need no runtime and no vault — `env`,
    /// `file`, `dotenv` — synchronously (for example while configuration is
    /// validated). `command` and `stored` specs are refused here
    /// ([`CredentialSpec::needs_gateway`]); resolve them with
    /// [`resolve`](Self::resolve) once the gateway's runtime and vault exist.
    pub fn resolve_sync(
        spec: &CredentialSpec,
        env: &dyn Env,
        base_dir: Option<&Path>,
    ) -> Result<Credential, CredentialError> {
        spec.validate()?;
        let path = |p: &Path| -> PathBuf {
            match base_dir {
                Some(dir) if p.is_relative() => dir.join(p),
                _ => p.to_path_buf(),
            }
        };
        let (label, source) = match spec {
            CredentialSpec::Env { env: var } => return Credential::from_env(var, env),
            CredentialSpec::File { file } => {
                let file = path(file);
                let label = format!("file:{}", file.display());
                let source = file::FileSource::open(file, file::Extract::Whole)?;
                (label, Source::File(source))
            }
            CredentialSpec::DotEnv { dotenv, var } => {
                let file = path(dotenv);
                let label = format!("dotenv:{}#{var}", file.display());
                let source = file::FileSource::open(file, file::Extract::DotEnvVar(var.clone()))?;
                (label, Source::File(source))
            }
            CredentialSpec::Command { .. } | CredentialSpec::Stored { .. } => {
                return Err(CredentialError::InvalidSpec(format!(
                    "a '{}' credential is resolved when the gateway starts",
                    spec.kind()
                )))
            }
        };
        Ok(Credential {
            inner: Arc::new(Inner { label, source }),
        })
    }

    /// A credential from an environment variable, read once now.
    pub fn from_env(var: &str, env: &dyn Env) -> Result<Credential, CredentialError> {
        let value = env.var(var).ok_or_else(|| CredentialError::MissingEnv {
            var: var.to_string(),
        })?;
        let label = format!("env:{var}");
        let value = text_secret(value, &label)?;
        Ok(Credential::fixed(label, value))
    }

    /// A credential with a fixed value and a non-secret label (for example
    /// the built-in mock provider's placeholder key).
    pub fn fixed(label: impl Into<String>, value: SecretString) -> Credential {
        Credential {
            inner: Arc::new(Inner {
                label: label.into(),
                source: Source::Fixed(Arc::new(value)),
            }),
        }
    }

    /// A credential fed by a command run through `runner` (tests inject a
    /// fake runner; production uses [`CommandRunner::system`]). Runs it once.
    pub async fn from_command(
        argv: Vec<String>,
        ttl: std::time::Duration,
        runner: CommandRunner,
    ) -> Result<Credential, CredentialError> {
        let source = command::CommandSource::new(argv.clone(), ttl, runner);
        source.current().await?;
        Ok(Credential {
            inner: Arc::new(Inner {
                label: command::label(&argv),
                source: Source::Command(source),
            }),
        })
    }

    /// The secret to send upstream now. Requests already holding the
    /// previous value keep it; this call returns the newest.
    pub async fn current(&self) -> Result<Arc<SecretString>, CredentialError> {
        match &self.inner.source {
            Source::Fixed(value) => Ok(Arc::clone(value)),
            Source::File(file) => file.current(),
            Source::Command(command) => command.current().await,
            Source::Stored(stored) => stored.current(),
        }
    }

    /// The upstream refused the credential (401/403): re-read the source on
    /// the next [`current`](Self::current) instead of waiting for the cache.
    pub fn invalidate(&self) {
        match &self.inner.source {
            Source::Fixed(_) => {}
            Source::File(file) => file.invalidate(),
            Source::Command(command) => command.invalidate(),
            Source::Stored(stored) => stored.invalidate(),
        }
    }

    /// Non-secret description for logs and the admin API: source and the
    /// last four characters of the value last seen (`env:OPENAI_API_KEY …x9aQ`).
    pub fn hint(&self) -> String {
        let last = match &self.inner.source {
            Source::Fixed(value) => Some(Arc::clone(value)),
            Source::File(file) => Some(file.last()),
            Source::Command(command) => command.last(),
            Source::Stored(stored) => stored.current().ok(),
        };
        match last {
            Some(value) => format!("{} {}", self.inner.label, last_four(value.expose_secret())),
            None => self.inner.label.clone(),
        }
    }

    /// The source alone (`file:/run/secrets/openai`), without any part of
    /// the value.
    pub fn source_label(&self) -> &str {
        &self.inner.label
    }
}

/// `…` and the last four characters, only for values long enough that four
/// characters give little away (at least 16).
pub fn last_four(secret: &str) -> String {
    let count = secret.chars().count();
    if count < 16 {
        return "…".into();
    }
    let tail: String = secret.chars().skip(count - 4).collect();
    format!("…{tail}")
}

/// Trim a secret read from somewhere and refuse an empty one.
fn text_secret(mut value: String, label: &str) -> Result<SecretString, CredentialError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        zeroize::Zeroize::zeroize(&mut value);
        return Err(CredentialError::Empty {
            source_label: label.to_string(),
        });
    }
    let secret = SecretString::from(trimmed.to_string());
    zeroize::Zeroize::zeroize(&mut value);
    Ok(secret)
}

/// Bytes read from a file or a command's standard output as a secret.
fn bytes_secret(mut bytes: Vec<u8>, label: &str) -> Result<SecretString, CredentialError> {
    let result = match std::str::from_utf8(&bytes) {
        Ok(text) => text_secret(text.to_string(), label),
        Err(_) => Err(CredentialError::NotText {
            source_label: label.to_string(),
        }),
    };
    zeroize::Zeroize::zeroize(&mut bytes);
    result
}

/// Whether two secrets are equal, in constant time.
fn same_secret(a: &SecretString, b: &SecretString) -> bool {
    use subtle::ConstantTimeEq;
    let (a, b) = (a.expose_secret().as_bytes(), b.expose_secret().as_bytes());
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests;
