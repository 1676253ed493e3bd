//! A credential in a file (a mounted secret) or in one entry of a `.env`
//! file, re-read when the file changes.
//!
//! Kubernetes swaps a mounted secret by pointing a symlink at a new
//! directory, so the path keeps its name while its target changes: the
//! check compares the identity of what the path resolves to (device, inode,
//! size, modification time), at most once per [`RECHECK`]. A request gets
//! the value current when it asked; requests already in flight keep theirs.

use super::{bytes_secret, same_secret, CredentialError};
use secrecy::SecretString;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// How often the file's identity is checked on the request path.
pub(super) const RECHECK: Duration = Duration::from_secs(1);

/// What to take from the file.
#[derive(Clone, Debug)]
pub(super) enum Extract {
    /// The whole file, trimmed.
    Whole,
    /// One variable of a `.env` file.
    DotEnvVar(String),
}

/// What identifies a version of the file without reading it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    len: u64,
    modified: Option<SystemTime>,
    ctime: (i64, i64),
}

impl Identity {
    fn of(meta: &std::fs::Metadata) -> Identity {
        use std::os::unix::fs::MetadataExt;
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            modified: meta.modified().ok(),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

struct State {
    value: Arc<SecretString>,
    identity: Identity,
    checked: Instant,
    /// Re-read regardless of identity at the next request.
    force: bool,
}

pub(super) struct FileSource {
    path: PathBuf,
    extract: Extract,
    state: RwLock<State>,
}

impl FileSource {
    /// Read the file now; fails if it is missing, empty or lacks the variable.
    pub(super) fn open(path: PathBuf, extract: Extract) -> Result<FileSource, CredentialError> {
        let (value, identity) = read(&path, &extract)?;
        Ok(FileSource {
            path,
            extract,
            state: RwLock::new(State {
                value: Arc::new(value),
                identity,
                checked: Instant::now(),
                force: false,
            }),
        })
    }

    /// The value, re-read if the file changed (checked at most once per
    /// [`RECHECK`]). A file that vanished or became unreadable keeps the
    /// last good value serving, with a warning.
    pub(super) fn current(&self) -> Result<Arc<SecretString>, CredentialError> {
        let now = Instant::now();
        {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            if !state.force && now < state.checked + RECHECK {
                return Ok(Arc::clone(&state.value));
            }
        }
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if !state.force && now < state.checked + RECHECK {
            return Ok(Arc::clone(&state.value));
        }
        state.checked = now;
        let force = std::mem::replace(&mut state.force, false);
        match std::fs::metadata(&self.path) {
            Ok(meta) if !force && Identity::of(&meta) == state.identity => {}
            Ok(_) => match read(&self.path, &self.extract) {
                Ok((value, identity)) => {
                    state.identity = identity;
                    if !same_secret(&value, &state.value) {
                        tracing::info!(path = %self.path.display(), "provider credential file changed; using the new value");
                        state.value = Arc::new(value);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "provider credential file unreadable; keeping the last good value")
                }
            },
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "provider credential file unavailable; keeping the last good value")
            }
        }
        Ok(Arc::clone(&state.value))
    }

    /// Re-read the file at the next request, even if it looks unchanged.
    pub(super) fn invalidate(&self) {
        self.state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .force = true;
    }

    /// The value last read, without checking the file.
    pub(super) fn last(&self) -> Arc<SecretString> {
        Arc::clone(
            &self
                .state
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .value,
        )
    }
}

/// Open the file, take its identity from the open handle (so identity and
/// contents belong to the same version), and extract the secret.
fn read(path: &PathBuf, extract: &Extract) -> Result<(SecretString, Identity), CredentialError> {
    use std::io::Read;
    let display = path.display().to_string();
    let io = |source| CredentialError::Read {
        path: display.clone(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let identity = Identity::of(&file.metadata().map_err(io)?);
    match extract {
        Extract::Whole => {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).map_err(io)?;
            Ok((bytes_secret(bytes, &format!("file {display}"))?, identity))
        }
        Extract::DotEnvVar(var) => {
            let vars = super::dotenv::DotEnvVars::read(path)?;
            let value = vars
                .get(var)
                .ok_or_else(|| CredentialError::MissingDotEnvVar {
                    path: display.clone(),
                    var: var.clone(),
                })?;
            let secret = super::text_secret(value.to_string(), &format!("{display}#{var}"))?;
            Ok((secret, identity))
        }
    }
}
