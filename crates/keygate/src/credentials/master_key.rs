//! Where the master key comes from: `KEYGATE_MASTER_KEY` (base64 of 32
//! bytes), `KEYGATE_MASTER_KEY_FILE` (a file holding that text),
//! `KEYGATE_MASTER_KEY_COMMAND` (a command printing it, split on whitespace
//! and run without a shell), or, when none is set, `<data_dir>/master.key`,
//! created owner-only the first time a credential is stored.

use super::envelope::MasterKey;
use super::CredentialError;
use crate::config::Env;
use secrecy::{ExposeSecret, SecretString};
use std::path::{Path, PathBuf};

/// Name of the generated master key file in the data directory.
pub const GENERATED_FILE: &str = "master.key";

/// A configured master key source.
#[derive(Clone)]
pub enum MasterKeySource {
    /// `KEYGATE_MASTER_KEY`: base64 text.
    Env(SecretString),
    /// `KEYGATE_MASTER_KEY_FILE` / `master_key_file`.
    File(PathBuf),
    /// `KEYGATE_MASTER_KEY_COMMAND` / `master_key_command`: argv.
    Command(Vec<String>),
    /// `<data_dir>/master.key`, created on first need.
    Generated(PathBuf),
}

impl std::fmt::Debug for MasterKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl MasterKeySource {
    /// The source configured in `env` (which wins) or the file settings;
    /// more than one is an error.
    pub fn from_settings(
        env: &dyn Env,
        file: Option<PathBuf>,
        command: Option<String>,
        data_dir: &Path,
    ) -> Result<MasterKeySource, CredentialError> {
        let key = env.var("KEYGATE_MASTER_KEY").map(SecretString::from);
        let file = env
            .var("KEYGATE_MASTER_KEY_FILE")
            .map(PathBuf::from)
            .or(file);
        let command = env.var("KEYGATE_MASTER_KEY_COMMAND").or(command);
        let set = usize::from(key.is_some())
            + usize::from(file.is_some())
            + usize::from(command.is_some());
        if set > 1 {
            return Err(CredentialError::MasterKey(
                "set only one of KEYGATE_MASTER_KEY, KEYGATE_MASTER_KEY_FILE and KEYGATE_MASTER_KEY_COMMAND".into(),
            ));
        }
        Ok(if let Some(key) = key {
            MasterKeySource::Env(key)
        } else if let Some(file) = file {
            MasterKeySource::File(file)
        } else if let Some(command) = command {
            MasterKeySource::Command(split_command(&command)?)
        } else {
            MasterKeySource::Generated(data_dir.join(GENERATED_FILE))
        })
    }

    /// A command line split on whitespace (no shell, no quoting).
    pub fn command(text: &str) -> Result<MasterKeySource, CredentialError> {
        Ok(MasterKeySource::Command(split_command(text)?))
    }

    /// Where the key comes from, for messages.
    pub fn describe(&self) -> String {
        match self {
            MasterKeySource::Env(_) => "KEYGATE_MASTER_KEY".into(),
            MasterKeySource::File(path) => format!("master key file {}", path.display()),
            MasterKeySource::Command(argv) => format!(
                "master key command {}",
                argv.first().map(String::as_str).unwrap_or_default()
            ),
            MasterKeySource::Generated(path) => format!("generated master key {}", path.display()),
        }
    }

    /// Load the key. A generated key file that does not exist yet is
    /// created when `create`, else `Ok(None)`.
    pub async fn load(&self, create: bool) -> Result<Option<MasterKey>, CredentialError> {
        let context =
            |e: CredentialError| CredentialError::MasterKey(format!("{}: {e}", self.describe()));
        match self {
            MasterKeySource::Env(text) => MasterKey::from_base64(text.expose_secret())
                .map(Some)
                .map_err(context),
            MasterKeySource::File(path) => read_key_file(path).map(Some).map_err(context),
            MasterKeySource::Command(argv) => {
                let text = super::command::run_process(argv.clone(), super::COMMAND_TIMEOUT)
                    .await
                    .map_err(context)?;
                MasterKey::from_base64(text.expose_secret())
                    .map(Some)
                    .map_err(context)
            }
            MasterKeySource::Generated(path) => match read_key_file(path) {
                Ok(key) => Ok(Some(key)),
                Err(CredentialError::Read { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    if !create {
                        return Ok(None);
                    }
                    let key = MasterKey::generate()?;
                    let mut text = key.to_base64().expose_secret().as_bytes().to_vec();
                    text.push(b'\n');
                    let written = crate::config::write_owner_only(path, &text);
                    zeroize::Zeroize::zeroize(&mut text);
                    written.map_err(|source| CredentialError::Read {
                        path: path.display().to_string(),
                        source,
                    })?;
                    tracing::info!(path = %path.display(), key_id = key.id(), "created the master key for stored provider credentials");
                    Ok(Some(key))
                }
                Err(e) => Err(context(e)),
            },
        }
    }
}

fn read_key_file(path: &Path) -> Result<MasterKey, CredentialError> {
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
        CredentialError::Read {
            path: path.display().to_string(),
            source,
        }
    })?);
    MasterKey::from_base64(&text)
}

fn split_command(text: &str) -> Result<Vec<String>, CredentialError> {
    let argv: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    if argv.is_empty() {
        return Err(CredentialError::MasterKey(
            "the master key command is empty".into(),
        ));
    }
    Ok(argv)
}
