//! `.env` files: read with `dotenvy`'s iterator, so the process environment
//! is never modified; the values fill in only what the environment lacks.

use super::CredentialError;
use crate::config::Env;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Variables of a `.env` file. Values are zeroed when dropped and never shown
/// by `Debug`.
#[derive(Default)]
pub struct DotEnvVars {
    vars: BTreeMap<String, Zeroizing<String>>,
}

impl std::fmt::Debug for DotEnvVars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.vars.keys()).finish()
    }
}

impl DotEnvVars {
    /// Parse `path`. Parse errors name the entry, never its text.
    pub fn read(path: &Path) -> Result<DotEnvVars, CredentialError> {
        let display = path.display().to_string();
        let iter = dotenvy::from_path_iter(path).map_err(|e| match e {
            dotenvy::Error::Io(source) => CredentialError::Read {
                path: display.clone(),
                source,
            },
            _ => CredentialError::DotEnvParse {
                path: display.clone(),
                line: 0,
            },
        })?;
        let mut vars = BTreeMap::new();
        for (index, item) in iter.enumerate() {
            match item {
                Ok((name, value)) => {
                    vars.insert(name, Zeroizing::new(value));
                }
                Err(dotenvy::Error::Io(source)) => {
                    return Err(CredentialError::Read {
                        path: display,
                        source,
                    })
                }
                Err(_) => {
                    return Err(CredentialError::DotEnvParse {
                        path: display,
                        line: index + 1,
                    })
                }
            }
        }
        Ok(DotEnvVars { vars })
    }

    /// A variable's value, if defined and non-empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Variable names defined.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.keys().map(String::as_str)
    }
}

/// Which `.env` file to read: `KEYGATE_ENV_FILE`, else the `env_file`
/// setting (both must exist), else `.env` in the working directory if it
/// exists; `None` when there is none.
pub fn env_file_path(
    env: &dyn Env,
    configured: Option<&Path>,
) -> Result<Option<PathBuf>, CredentialError> {
    let named = env
        .var("KEYGATE_ENV_FILE")
        .map(PathBuf::from)
        .or_else(|| configured.map(Path::to_path_buf));
    match named {
        Some(path) => {
            if let Err(source) = std::fs::metadata(&path) {
                return Err(CredentialError::Read {
                    path: path.display().to_string(),
                    source,
                });
            }
            Ok(Some(path))
        }
        None => {
            let default = PathBuf::from(".env");
            Ok(default.is_file().then_some(default))
        }
    }
}

/// An environment whose variables win, filled in from a `.env` file.
pub struct DotEnvOverlay<'a> {
    base: &'a dyn Env,
    file: DotEnvVars,
}

impl std::fmt::Debug for DotEnvOverlay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DotEnvOverlay")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl<'a> DotEnvOverlay<'a> {
    /// `base` filled in from the variables of `file`.
    pub fn new(base: &'a dyn Env, file: DotEnvVars) -> Self {
        DotEnvOverlay { base, file }
    }

    /// `base` filled in from the `.env` file [`env_file_path`] picks.
    pub fn load(base: &'a dyn Env, configured: Option<&Path>) -> Result<Self, CredentialError> {
        let file = match env_file_path(base, configured)? {
            Some(path) => DotEnvVars::read(&path)?,
            None => DotEnvVars::default(),
        };
        Ok(DotEnvOverlay { base, file })
    }

    /// The process environment filled in from the `.env` file the
    /// configuration loaded (`Config::env_file`); for resolving
    /// `{ env = … }` credentials after startup.
    pub fn for_config(
        base: &'a dyn Env,
        config: &crate::config::Config,
    ) -> Result<Self, CredentialError> {
        let file = match &config.env_file {
            Some(path) => DotEnvVars::read(path)?,
            None => DotEnvVars::default(),
        };
        Ok(DotEnvOverlay { base, file })
    }
}

impl Env for DotEnvOverlay<'_> {
    fn var(&self, name: &str) -> Option<String> {
        self.base
            .var(name)
            .or_else(|| self.file.get(name).map(str::to_string))
    }
}
