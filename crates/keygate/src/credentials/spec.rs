//! The configuration form of a provider credential: which source to read.

use super::CredentialError;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Where a provider credential comes from. In TOML:
///
/// ```toml
/// api_key = { env = "OPENAI_API_KEY" }
/// api_key = { file = "/run/secrets/openai" }
/// api_key = { dotenv = ".env", var = "OPENAI_API_KEY" }
/// api_key = { command = ["vault", "kv", "get", "-field=key", "secret/openai"], ttl = "5m" }
/// api_key = { stored = "openai-prod" }
/// ```
///
/// Exactly one source per table; unknown keys are refused.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawSpec")]
pub enum CredentialSpec {
    /// An environment variable (the process environment, filled in from the
    /// `.env` file where it lacks a variable).
    Env {
        /// Variable name.
        env: String,
    },
    /// A file holding only the secret (a mounted Kubernetes or Docker
    /// secret); re-read when it changes, trailing newline trimmed.
    File {
        /// Path (relative paths from the config file's directory).
        file: PathBuf,
    },
    /// One variable of a `.env` file; re-read when the file changes.
    DotEnv {
        /// The `.env` file.
        dotenv: PathBuf,
        /// Variable in it.
        var: String,
    },
    /// The standard output of a command, run without a shell, cached for
    /// `ttl` (default 5 minutes) and refreshed before it expires.
    Command {
        /// Program and arguments.
        command: Vec<String>,
        /// Cache lifetime, a duration like `5m`.
        ttl: Option<String>,
    },
    /// A secret stored encrypted in keygate's database
    /// (`keygate provider-credentials add`).
    Stored {
        /// The stored credential's name.
        stored: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    env: Option<String>,
    file: Option<PathBuf>,
    dotenv: Option<PathBuf>,
    var: Option<String>,
    command: Option<Vec<String>>,
    ttl: Option<String>,
    stored: Option<String>,
}

impl TryFrom<RawSpec> for CredentialSpec {
    type Error = String;

    fn try_from(raw: RawSpec) -> Result<Self, String> {
        let sources = [
            raw.env.is_some(),
            raw.file.is_some(),
            raw.dotenv.is_some(),
            raw.command.is_some(),
            raw.stored.is_some(),
        ]
        .iter()
        .filter(|set| **set)
        .count();
        if sources != 1 {
            return Err(
                "a credential takes exactly one of: env, file, dotenv (with var), command (with optional ttl), stored"
                    .into(),
            );
        }
        if raw.var.is_some() && raw.dotenv.is_none() {
            return Err("'var' goes only with 'dotenv'".into());
        }
        if raw.ttl.is_some() && raw.command.is_none() {
            return Err("'ttl' goes only with 'command'".into());
        }
        let spec = if let Some(env) = raw.env {
            CredentialSpec::Env { env }
        } else if let Some(file) = raw.file {
            CredentialSpec::File { file }
        } else if let Some(dotenv) = raw.dotenv {
            let var = raw
                .var
                .ok_or("'dotenv' needs 'var', the variable to read from it")?;
            CredentialSpec::DotEnv { dotenv, var }
        } else if let Some(command) = raw.command {
            CredentialSpec::Command {
                command,
                ttl: raw.ttl,
            }
        } else if let Some(stored) = raw.stored {
            CredentialSpec::Stored { stored }
        } else {
            return Err("a credential needs a source".into());
        };
        spec.validate().map_err(|e| e.to_string())?;
        Ok(spec)
    }
}

impl CredentialSpec {
    /// Check the parts that can be checked without reading anything.
    pub fn validate(&self) -> Result<(), CredentialError> {
        let invalid = |m: &str| Err(CredentialError::InvalidSpec(m.to_string()));
        match self {
            CredentialSpec::Env { env } if env.is_empty() || env.contains('=') => {
                invalid("'env' must be a variable name")
            }
            CredentialSpec::File { file } if file.as_os_str().is_empty() => {
                invalid("'file' must be a path")
            }
            CredentialSpec::DotEnv { dotenv, var } if dotenv.as_os_str().is_empty() || var.is_empty() => {
                invalid("'dotenv' and 'var' must not be empty")
            }
            CredentialSpec::Command { command, ttl } => {
                if command.first().is_none_or(|program| program.is_empty()) {
                    return invalid("'command' needs at least the program to run");
                }
                parse_ttl(ttl.as_deref()).map(|_| ())
            }
            CredentialSpec::Stored { stored } if !super::stored::valid_name(stored) => invalid(
                "'stored' must be 1-64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit",
            ),
            _ => Ok(()),
        }
    }

    /// Whether resolving needs the running gateway (its runtime for
    /// `command`, its vault for `stored`) rather than just the environment
    /// and the file system.
    pub fn needs_gateway(&self) -> bool {
        matches!(
            self,
            CredentialSpec::Command { .. } | CredentialSpec::Stored { .. }
        )
    }

    /// The source kind, for messages (`env`, `file`, `dotenv`, `command`, `stored`).
    pub fn kind(&self) -> &'static str {
        match self {
            CredentialSpec::Env { .. } => "env",
            CredentialSpec::File { .. } => "file",
            CredentialSpec::DotEnv { .. } => "dotenv",
            CredentialSpec::Command { .. } => "command",
            CredentialSpec::Stored { .. } => "stored",
        }
    }
}

/// A command's cache lifetime: a humantime duration, at least one second;
/// [`DEFAULT_COMMAND_TTL`](super::DEFAULT_COMMAND_TTL) when absent.
pub(super) fn parse_ttl(ttl: Option<&str>) -> Result<Duration, CredentialError> {
    match ttl {
        None => Ok(super::DEFAULT_COMMAND_TTL),
        Some(text) => humantime::parse_duration(text)
            .ok()
            .filter(|d| *d >= Duration::from_secs(1))
            .ok_or_else(|| {
                CredentialError::InvalidSpec(format!(
                    "ttl '{}' is not a duration of at least 1s, like 5m",
                    crate::error::printable(text)
                ))
            }),
    }
}
