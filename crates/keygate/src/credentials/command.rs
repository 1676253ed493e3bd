//! A credential printed by an external command (`vault kv get …`,
//! `aws secretsmanager get-secret-value …`, `op read …`).
//!
//! The command runs directly (no shell) with a timeout; its trimmed standard
//! output is the secret. Its standard error is never logged (it may echo
//! secrets): only the exit status is. The value is cached for the lifetime
//! (`ttl`) and refreshed in the background once 80 % of it has passed, while
//! the old value keeps serving; a failed refresh keeps the last good value
//! until it expires, after which requests get an error until the command
//! succeeds again.

use super::{bytes_secret, CredentialError};
use futures_util::future::BoxFuture;
use secrecy::SecretString;
use std::sync::{Arc, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// How long a command may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Cache lifetime when the spec gives none.
pub const DEFAULT_COMMAND_TTL: Duration = Duration::from_secs(300);
/// An invalidation within this long of the last run is ignored, so a burst
/// of upstream 401s runs the command once, not once per request.
const MIN_RERUN: Duration = Duration::from_secs(1);

type RunFn =
    dyn Fn(Vec<String>) -> BoxFuture<'static, Result<SecretString, CredentialError>> + Send + Sync;

/// Runs a credential command. [`CommandRunner::system`] spawns the process;
/// tests inject a fake with [`CommandRunner::new`].
#[derive(Clone)]
pub struct CommandRunner(Arc<RunFn>);

impl std::fmt::Debug for CommandRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommandRunner(..)")
    }
}

impl CommandRunner {
    /// A runner calling `run` with the argv.
    pub fn new(
        run: impl Fn(Vec<String>) -> BoxFuture<'static, Result<SecretString, CredentialError>>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        CommandRunner(Arc::new(run))
    }

    /// Spawn the program (no shell) with [`COMMAND_TIMEOUT`].
    pub fn system() -> Self {
        Self::new(|argv| Box::pin(run_process(argv, COMMAND_TIMEOUT)))
    }
}

/// `command:<program>` — the program only: arguments can carry secrets.
pub(super) fn label(argv: &[String]) -> String {
    let program = argv.first().map(String::as_str).unwrap_or_default();
    format!("command:{program}")
}

/// Run `argv` and return its trimmed standard output.
pub async fn run_process(
    argv: Vec<String>,
    timeout: Duration,
) -> Result<SecretString, CredentialError> {
    let program = argv.first().cloned().unwrap_or_default();
    let fail = |reason: String| CredentialError::Command {
        program: program.clone(),
        reason,
    };
    if program.is_empty() {
        return Err(fail("no program given".into()));
    }
    let child = tokio::process::Command::new(&program)
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("cannot start: {}", e.kind())))?;
    let mut output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(fail(format!("failed while running: {}", e.kind()))),
        Err(_) => {
            return Err(fail(format!(
                "did not finish within {}",
                humantime::format_duration(timeout)
            )))
        }
    };
    zeroize::Zeroize::zeroize(&mut output.stderr);
    if !output.status.success() {
        zeroize::Zeroize::zeroize(&mut output.stdout);
        return Err(fail(format!("exited with {}", output.status)));
    }
    bytes_secret(output.stdout, &format!("command {program}"))
}

struct State {
    value: Option<Arc<SecretString>>,
    /// When the value stops being served.
    expires: Instant,
    /// When a background refresh should start.
    refresh_at: Instant,
    /// When the command last finished successfully.
    fetched: Option<Instant>,
    /// When and why a run on the request path last failed: requests within
    /// [`MIN_RERUN`] of it get that error instead of running it again.
    failed: Option<(Instant, String)>,
    refreshing: bool,
    /// An invalidation asked for the next run.
    invalidation_pending: bool,
    /// The current value came from a run an invalidation asked for.
    from_invalidation: bool,
}

pub(super) struct CommandSource {
    argv: Vec<String>,
    ttl: Duration,
    runner: CommandRunner,
    state: std::sync::Mutex<State>,
    /// One run at a time.
    running: tokio::sync::Mutex<()>,
}

enum Next {
    Serve(Arc<SecretString>),
    ServeAndRefresh(Arc<SecretString>),
    Fetch,
}

impl CommandSource {
    pub(super) fn new(argv: Vec<String>, ttl: Duration, runner: CommandRunner) -> Arc<Self> {
        let now = Instant::now();
        Arc::new(CommandSource {
            argv,
            ttl,
            runner,
            state: std::sync::Mutex::new(State {
                value: None,
                expires: now,
                refresh_at: now,
                fetched: None,
                failed: None,
                refreshing: false,
                invalidation_pending: false,
                from_invalidation: false,
            }),
            running: tokio::sync::Mutex::new(()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn next(&self) -> Next {
        let now = Instant::now();
        let mut state = self.lock();
        match &state.value {
            Some(value) if now < state.expires => {
                let value = Arc::clone(value);
                if now >= state.refresh_at && !state.refreshing {
                    state.refreshing = true;
                    Next::ServeAndRefresh(value)
                } else {
                    Next::Serve(value)
                }
            }
            _ => Next::Fetch,
        }
    }

    pub(super) async fn current(self: &Arc<Self>) -> Result<Arc<SecretString>, CredentialError> {
        match self.next() {
            Next::Serve(value) => Ok(value),
            Next::ServeAndRefresh(value) => {
                let this = Arc::clone(self);
                tokio::spawn(async move { this.refresh().await });
                Ok(value)
            }
            Next::Fetch => {
                let _running = self.running.lock().await;
                // Another request may have fetched while this one waited.
                if let Next::Serve(value) | Next::ServeAndRefresh(value) = self.next() {
                    return Ok(value);
                }
                if let Some((at, reason)) = &self.lock().failed {
                    if Instant::now() < *at + MIN_RERUN {
                        return Err(CredentialError::Command {
                            program: self.argv.first().cloned().unwrap_or_default(),
                            reason: format!("failed less than a second ago: {reason}"),
                        });
                    }
                }
                let result = self.runner.0(self.argv.clone()).await;
                let applied = self.apply(result);
                if let Err(e) = &applied {
                    self.lock().failed = Some((Instant::now(), e.to_string()));
                }
                applied
            }
        }
    }

    async fn refresh(self: Arc<Self>) {
        let _running = self.running.lock().await;
        let result = self.runner.0(self.argv.clone()).await;
        if let Err(e) = self.apply(result) {
            let now = Instant::now();
            let mut state = self.lock();
            // Retry in a tenth of the lifetime; the old value serves until it expires.
            state.refresh_at = now + (self.ttl / 10).max(Duration::from_secs(1));
            tracing::warn!(error = %e, "credential command refresh failed; keeping the last good value until it expires");
        }
    }

    fn apply(
        &self,
        result: Result<SecretString, CredentialError>,
    ) -> Result<Arc<SecretString>, CredentialError> {
        let now = Instant::now();
        let mut state = self.lock();
        state.refreshing = false;
        let value = Arc::new(result?);
        state.value = Some(Arc::clone(&value));
        state.fetched = Some(now);
        state.failed = None;
        state.from_invalidation = std::mem::take(&mut state.invalidation_pending);
        state.expires = now + self.ttl;
        state.refresh_at = now + self.ttl.mul_f64(0.8);
        Ok(value)
    }

    /// The cached value is treated as expired: the next request runs the
    /// command. The first invalidation of a value always does (a rotation
    /// right after a run is picked up); a value that an invalidation itself
    /// produced is not invalidated again within a second, so a dead key
    /// cannot make every request run the command.
    pub(super) fn invalidate(&self) {
        let now = Instant::now();
        let mut state = self.lock();
        if state.from_invalidation && state.fetched.is_some_and(|t| now < t + MIN_RERUN) {
            return;
        }
        state.invalidation_pending = true;
        state.expires = now;
    }

    pub(super) fn last(&self) -> Option<Arc<SecretString>> {
        self.lock().value.clone()
    }
}
