//! Configuration: a raw serde structure (TOML file, `deny_unknown_fields`),
//! overlaid with `KEYGATE_*` environment variables and the providers' standard
//! variables, then validated into a typed [`Config`].

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why configuration is unusable. Messages name the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("config file {path}: {message}")]
    Parse {
        /// File.
        path: String,
        /// What is wrong, from the TOML parser.
        message: String,
    },
    /// A setting has an unusable value.
    #[error("setting {setting}: {message}")]
    Invalid {
        /// The setting (file key or environment variable).
        setting: String,
        /// What is wrong.
        message: String,
    },
}

fn invalid(setting: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.into(),
        message: message.into(),
    }
}

mod alerts;
pub mod anomaly;
pub mod dashboard;
pub mod leaks;
pub mod limits;
pub mod oauth;
mod provider;

pub use alerts::{
    smtp_url, webhook_url, AlertsConfig, EmailConfig, KindFilter, RawAlerts, RawEmail, RawWebhook,
    SmtpSecurity, SmtpUrl, WebhookConfig, WebhookFormat, WebhookUrl, ENV_EMAIL_NAME,
    ENV_WEBHOOK_NAME, MAX_EMAIL_RECIPIENTS,
};
pub use provider::{
    AwsConfig, AzureAdConfig, ProviderConfig, ProviderKey, ProviderKind, RawAzureAd, RawProvider,
    VertexConfig, DEFAULT_AZURE_API_VERSION,
};

/// The TOML file's schema. Every top-level setting can also be set from the
/// environment as `KEYGATE_<NAME>` (upper case), which wins over the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `KEYGATE_LISTEN`
    pub listen: Option<String>,
    /// `KEYGATE_DATA_DIR`
    pub data_dir: Option<PathBuf>,
    /// `KEYGATE_DATABASE_URL`
    pub database_url: Option<String>,
    /// `KEYGATE_MAX_BODY_BYTES`
    pub max_body_bytes: Option<usize>,
    /// `KEYGATE_MAX_HEADER_BYTES`
    pub max_header_bytes: Option<usize>,
    /// `KEYGATE_UPSTREAM_TIMEOUT` (e.g. `10m`)
    pub upstream_timeout: Option<String>,
    /// `KEYGATE_UPSTREAM_CONNECT_TIMEOUT` (e.g. `10s`)
    pub upstream_connect_timeout: Option<String>,
    /// `KEYGATE_FIRST_BYTE_TIMEOUT` (e.g. `10m`): until the upstream's response head
    pub first_byte_timeout: Option<String>,
    /// `KEYGATE_STREAM_IDLE_TIMEOUT` (e.g. `2m`)
    pub stream_idle_timeout: Option<String>,
    /// `KEYGATE_KEY_REFRESH_INTERVAL` (e.g. `1s`)
    pub key_refresh_interval: Option<String>,
    /// `KEYGATE_ROTATION_POLICY` (e.g. `90d`): secrets older than this are flagged
    pub rotation_policy: Option<String>,
    /// `KEYGATE_LIFECYCLE_INTERVAL` (e.g. `1h`): how often rotation
    /// reminders and automatic rotations run
    pub lifecycle_interval: Option<String>,
    /// `KEYGATE_WORKERS`: serving threads (default: one per core)
    pub workers: Option<usize>,
    /// `KEYGATE_ENVIRONMENTS` (comma-separated)
    pub environments: Option<Vec<String>>,
    /// `KEYGATE_TRUSTED_PROXIES` (comma-separated CIDRs): peers whose
    /// `X-Forwarded-For` is believed
    pub trusted_proxies: Option<Vec<String>>,
    /// `KEYGATE_ENV_FILE`: a `.env` file whose variables fill in what the
    /// process environment lacks (default: `.env` in the working directory,
    /// if it exists).
    pub env_file: Option<PathBuf>,
    /// `KEYGATE_MASTER_KEY_FILE`: file holding the master key (base64 of 32
    /// bytes) that seals stored provider credentials.
    pub master_key_file: Option<PathBuf>,
    /// `KEYGATE_MASTER_KEY_COMMAND`: command printing the master key (split
    /// on whitespace, run without a shell).
    pub master_key_command: Option<String>,
    /// Model aliases: `alias = "provider/model"`.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// Extra providers.
    #[serde(default)]
    pub providers: Vec<RawProvider>,
    /// Alert channels (`[[alerts.webhooks]]`, `[[alerts.email]]`; one more
    /// of each from `KEYGATE_ALERT_WEBHOOK_*` and `KEYGATE_ALERT_EMAIL_*`).
    #[serde(default)]
    pub alerts: RawAlerts,
    /// `KEYGATE_REDIS_URL`: share rate and budget counters between nodes.
    pub redis_url: Option<String>,
    /// `KEYGATE_REDIS_PREFIX`: first part of keygate's Redis key names.
    pub redis_prefix: Option<String>,
    /// `[limits]`: budget reckoning and reservations.
    #[serde(default)]
    pub limits: limits::RawLimits,
    /// `[oauth]`: the token issuer.
    #[serde(default)]
    pub oauth: oauth::RawOAuth,
    /// `[anomaly]`: per-key anomaly detection and the stuffing lockout.
    #[serde(default)]
    pub anomaly: anomaly::RawAnomaly,
    /// `[dashboard]`: sign-in sessions of the web dashboard.
    #[serde(default)]
    pub dashboard: dashboard::RawDashboard,
    /// `KEYGATE_LEAK_REPORT_KEYS`: file of the public keys that may sign
    /// leak reports (GitHub's secret-scanning key document).
    pub leak_report_keys: Option<PathBuf>,
    /// `KEYGATE_LOG_BODIES`: log bodies (redacted) at debug level.
    pub log_bodies: Option<bool>,
    /// `KEYGATE_METRICS_TOKEN`: a bearer token that may scrape `/metrics`
    /// (admin credentials always may).
    pub metrics_token: Option<String>,
    /// Model prices over the shipped table, US dollars per million tokens:
    /// `[prices."gpt-4o"] input = 2.5, cached_input = 1.25, output = 10.0`.
    /// A glob (`"claude-*"`) prices the models it matches that have no
    /// entry of their own, `"*"` every model nothing else prices.
    /// `KEYGATE_PRICES`: the same as a JSON object, whose entries win over
    /// the file's.
    #[serde(default)]
    pub prices: BTreeMap<String, crate::ledger::pricing::RawPrice>,
}

/// Validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// Directory for the SQLite file, server secret and bootstrap credential.
    pub data_dir: PathBuf,
    /// PostgreSQL URL; `None` means embedded SQLite in `data_dir`.
    pub database_url: Option<SecretString>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Largest single request header accepted.
    pub max_header_bytes: usize,
    /// Total time allowed for a non-streamed upstream answer.
    pub upstream_timeout: Duration,
    /// Longest wait for a TCP (and TLS) connection to an upstream.
    pub upstream_connect_timeout: Duration,
    /// Longest wait for an upstream's response head; past it the next
    /// upstream is tried.
    pub first_byte_timeout: Duration,
    /// Longest silence allowed inside an upstream stream.
    pub stream_idle_timeout: Duration,
    /// How often each node re-reads changed keys from the store.
    pub key_refresh_interval: Duration,
    /// Age at which a key's secret is flagged as due for rotation.
    pub rotation_policy: Duration,
    /// How often the key lifecycle pass runs.
    pub lifecycle_interval: Duration,
    /// Signs deliveries of automatically rotated secrets
    /// (`KEYGATE_ROTATION_WEBHOOK_SECRET`); without it keys cannot opt in.
    pub rotation_webhook_secret: Option<crate::credentials::Credential>,
    /// Runtime worker threads serving requests.
    pub workers: usize,
    /// Environment names keys may carry.
    pub environments: Vec<String>,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Model aliases.
    pub aliases: BTreeMap<String, String>,
    /// Providers; empty means the built-in mock is used.
    pub providers: Vec<ProviderConfig>,
    /// `KEYGATE_SERVER_SECRET`: the pepper, when not kept in `data_dir`.
    pub server_secret: Option<SecretString>,
    /// The `.env` file [`Config::load`] read, if any.
    pub env_file: Option<PathBuf>,
    /// Where the master key of stored provider credentials comes from.
    pub master_key: crate::credentials::MasterKeySource,
    /// Where alerts are delivered.
    pub alerts: AlertsConfig,
    /// How budgets are reckoned and reservations held.
    pub limits: crate::policy::governor::GovernorConfig,
    /// Where limit counters live (in process, or Redis).
    pub counters: limits::CountersConfig,
    /// The OAuth token issuer.
    pub oauth: oauth::OAuthConfig,
    /// Anomaly detection and the credential-stuffing lockout.
    pub anomaly: anomaly::AnomalyConfig,
    /// Dashboard sessions.
    pub dashboard: dashboard::DashboardConfig,
    /// `KEYGATE_LOG_BODIES`: log request and (non-streamed) response
    /// bodies at debug level, redacted. Off by default: bodies carry users'
    /// prompts.
    pub log_bodies: bool,
    /// Public keys whose signed leak reports are believed (none: the
    /// leak-report endpoint is off).
    pub leak_report_keys: Vec<leaks::ReporterKey>,
    /// Validated price entries (nanodollars per million tokens) laid over
    /// the shipped table, by model name or glob.
    pub prices: BTreeMap<String, crate::ledger::pricing::Price>,
    /// `KEYGATE_METRICS_TOKEN`: the bearer token a scraper may present at
    /// `/metrics` instead of an admin credential.
    pub metrics_token: Option<SecretString>,
}

/// Shortest scrape token accepted.
const MIN_METRICS_TOKEN: usize = 16;

/// The scrape token: long enough not to be guessed, and sendable as a
/// bearer token (printable ASCII, no spaces).
fn metrics_token(token: Option<String>) -> Result<Option<SecretString>, ConfigError> {
    let Some(token) = token else {
        return Ok(None);
    };
    if token.len() < MIN_METRICS_TOKEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "metrics_token / KEYGATE_METRICS_TOKEN",
            format!("must be at least {MIN_METRICS_TOKEN} printable characters without spaces"),
        ));
    }
    Ok(Some(SecretString::from(token)))
}

/// Default body limit: 32 MiB, room for requests that carry several images.
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// A source of environment variables (the process, or a map in tests).
pub trait Env {
    /// The variable's value, if set and non-empty.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

/// Values from command-line flags, falling back to the process environment.
pub struct FlagsOverEnv(pub BTreeMap<String, String>);

impl Env for FlagsOverEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.var(name).or_else(|| ProcessEnv.var(name))
    }
}

impl Env for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty()).cloned()
    }
}

/// Providers configured by their standard variables: (name, key variable,
/// base-URL variable, default base URL, wire format).
const ENV_PROVIDERS: &[(&str, &str, &str, &str, ProviderKind)] = &[
    (
        "openai",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "https://api.openai.com/v1",
        ProviderKind::Openai,
    ),
    (
        "anthropic",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "https://api.anthropic.com",
        ProviderKind::Anthropic,
    ),
    (
        "groq",
        "GROQ_API_KEY",
        "GROQ_BASE_URL",
        "https://api.groq.com/openai/v1",
        ProviderKind::Openai,
    ),
    (
        "deepseek",
        "DEEPSEEK_API_KEY",
        "DEEPSEEK_BASE_URL",
        "https://api.deepseek.com/v1",
        ProviderKind::Openai,
    ),
    (
        "gemini",
        "GEMINI_API_KEY",
        "GEMINI_BASE_URL",
        "https://generativelanguage.googleapis.com",
        ProviderKind::Gemini,
    ),
];

impl Config {
    /// Load from an optional TOML file and `env` (the process environment,
    /// possibly overlaid with command-line flags).
    pub fn load(file: Option<&Path>, env: &dyn Env) -> Result<Config, ConfigError> {
        let raw = match file {
            Some(path) => read_file(path)?,
            None => RawConfig::default(),
        };
        let env_file = crate::credentials::dotenv::env_file_path(env, raw.env_file.as_deref())
            .map_err(|e| invalid("env_file / KEYGATE_ENV_FILE", e.to_string()))?;
        let vars = match &env_file {
            Some(path) => crate::credentials::dotenv::DotEnvVars::read(path)
                .map_err(|e| invalid("env_file / KEYGATE_ENV_FILE", e.to_string()))?,
            None => Default::default(),
        };
        let overlay = crate::credentials::DotEnvOverlay::new(env, vars);
        let mut config = Config::from_raw(raw, &overlay)?;
        config.env_file = env_file;
        Ok(config)
    }

    /// Overlay `env` on `raw` and validate.
    pub fn from_raw(raw: RawConfig, env: &dyn Env) -> Result<Config, ConfigError> {
        let listen_text = env
            .var("KEYGATE_LISTEN")
            .or(raw.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen = listen_text.parse().map_err(|_| {
            invalid(
                "listen / KEYGATE_LISTEN",
                format!("'{listen_text}' is not an address like 127.0.0.1:8080"),
            )
        })?;
        let data_dir = env
            .var("KEYGATE_DATA_DIR")
            .map(PathBuf::from)
            .or(raw.data_dir)
            .unwrap_or_else(|| PathBuf::from("."));
        let database_url = env.var("KEYGATE_DATABASE_URL").or(raw.database_url);
        if let Some(url) = &database_url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(invalid(
                    "database_url / KEYGATE_DATABASE_URL",
                    "only postgres:// URLs are supported; leave it unset for embedded SQLite",
                ));
            }
        }
        let max_body_bytes = number(
            env,
            "KEYGATE_MAX_BODY_BYTES",
            raw.max_body_bytes,
            DEFAULT_MAX_BODY_BYTES,
        )?;
        let max_header_bytes = number(
            env,
            "KEYGATE_MAX_HEADER_BYTES",
            raw.max_header_bytes,
            8 * 1024,
        )?;
        let upstream_timeout =
            duration(env, "KEYGATE_UPSTREAM_TIMEOUT", raw.upstream_timeout, "10m")?;
        let upstream_connect_timeout = duration(
            env,
            "KEYGATE_UPSTREAM_CONNECT_TIMEOUT",
            raw.upstream_connect_timeout,
            "10s",
        )?;
        let first_byte_timeout = duration(
            env,
            "KEYGATE_FIRST_BYTE_TIMEOUT",
            raw.first_byte_timeout,
            "10m",
        )?;
        let stream_idle_timeout = duration(
            env,
            "KEYGATE_STREAM_IDLE_TIMEOUT",
            raw.stream_idle_timeout,
            "2m",
        )?;
        let key_refresh_interval = duration(
            env,
            "KEYGATE_KEY_REFRESH_INTERVAL",
            raw.key_refresh_interval,
            "1s",
        )?;
        let rotation_policy = duration(env, "KEYGATE_ROTATION_POLICY", raw.rotation_policy, "90d")?;
        let lifecycle_interval = duration(
            env,
            "KEYGATE_LIFECYCLE_INTERVAL",
            raw.lifecycle_interval,
            "1h",
        )?;
        const ROTATION_SECRET: &str = "KEYGATE_ROTATION_WEBHOOK_SECRET";
        let rotation_webhook_secret = env
            .var(ROTATION_SECRET)
            .map(|_| crate::credentials::Credential::from_env(ROTATION_SECRET, env))
            .transpose()
            .map_err(|e| ConfigError::Invalid {
                setting: ROTATION_SECRET.into(),
                message: e.to_string(),
            })?;
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let workers = number(env, "KEYGATE_WORKERS", raw.workers, cores)?;
        let environments = env
            .var("KEYGATE_ENVIRONMENTS")
            .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
            .or(raw.environments)
            .unwrap_or_else(|| vec!["live".into(), "test".into()]);
        for name in &environments {
            if !crate::auth::key::valid_env_name(name) || name == crate::auth::key::ADMIN_ENV {
                return Err(invalid(
                    "environments",
                    format!("'{name}' must be 1-16 lowercase letters or digits, and not 'admin'"),
                ));
            }
        }

        let master_key = crate::credentials::MasterKeySource::from_settings(
            env,
            raw.master_key_file,
            raw.master_key_command,
            &data_dir,
        )
        .map_err(|e| invalid("master_key_file / KEYGATE_MASTER_KEY*", e.to_string()))?;

        let trusted_proxies = env
            .var("KEYGATE_TRUSTED_PROXIES")
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .or(raw.trusted_proxies)
            .unwrap_or_default()
            .iter()
            .map(|entry: &String| crate::policy::parse_network(entry))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid("trusted_proxies / KEYGATE_TRUSTED_PROXIES", e))?;
        let alerts = alerts::validate(raw.alerts, env)?;
        let (limits, counters) =
            limits::validate(raw.limits, raw.redis_url, raw.redis_prefix, env)?;
        let prices = prices(raw.prices, env)?;
        let metrics_token = metrics_token(env.var("KEYGATE_METRICS_TOKEN").or(raw.metrics_token))?;
        let oauth = oauth::validate(raw.oauth, listen, env)?;
        let anomaly = anomaly::validate(raw.anomaly, env)?;
        let dashboard = dashboard::validate(raw.dashboard, env)?;
        let leak_report_keys = leaks::validate(raw.leak_report_keys, env)?;
        let mut providers = Vec::new();
        for (name, key_var, url_var, default_url, kind) in ENV_PROVIDERS {
            if let Some(key) = env.var(key_var) {
                let base_url = env.var(url_var).unwrap_or_else(|| (*default_url).into());
                providers.push(ProviderConfig::simple(
                    name,
                    *kind,
                    normalise_url(url_var, &base_url)?,
                    crate::credentials::Credential::fixed(
                        format!("env:{key_var}"),
                        SecretString::from(key),
                    ),
                    Vec::new(),
                    true,
                ));
            }
        }
        for p in raw.providers {
            let validated = provider::validate(p, env, &environments)?;
            if let Some(existing) = providers
                .iter()
                .position(|q: &ProviderConfig| q.name == validated.name)
            {
                // The file refines a provider that the environment configured.
                providers.remove(existing);
            }
            providers.push(validated);
        }
        // An alias names one target, or several separated by commas to
        // spread load over (and fail over between) providers.
        for (alias, target) in raw
            .aliases
            .iter()
            .flat_map(|(alias, targets)| targets.split(',').map(move |t| (alias, t.trim())))
        {
            let Some((provider, model)) = target.split_once('/') else {
                return Err(invalid(
                    format!("aliases.{alias}"),
                    "target must be 'provider/model'",
                ));
            };
            if model.is_empty()
                || !providers.iter().any(|p| p.name == provider) && !providers.is_empty()
            {
                return Err(invalid(
                    format!("aliases.{alias}"),
                    format!("provider '{provider}' is not configured"),
                ));
            }
        }
        Ok(Config {
            listen,
            data_dir,
            database_url: database_url.map(SecretString::from),
            max_body_bytes,
            max_header_bytes,
            upstream_timeout,
            upstream_connect_timeout,
            first_byte_timeout,
            stream_idle_timeout,
            key_refresh_interval,
            rotation_policy,
            lifecycle_interval,
            rotation_webhook_secret,
            workers,
            environments,
            trusted_proxies,
            aliases: raw.aliases,
            providers,
            server_secret: env.var("KEYGATE_SERVER_SECRET").map(SecretString::from),
            env_file: None,
            master_key,
            alerts,
            limits,
            counters,
            oauth,
            anomaly,
            dashboard,
            leak_report_keys,
            log_bodies: env
                .var("KEYGATE_LOG_BODIES")
                .or(raw.log_bodies.map(|b| b.to_string()))
                .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1"),
            prices,
            metrics_token,
        })
    }

    /// Path of the embedded SQLite database.
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("keygate.db")
    }

    /// Path of the bootstrap admin credential file.
    pub fn bootstrap_key_path(&self) -> PathBuf {
        bootstrap_key_path(&self.data_dir)
    }

    /// Whether the database is PostgreSQL.
    pub fn uses_postgres(&self) -> bool {
        self.database_url.is_some()
    }

    /// Database URL, exposed only to the store when connecting.
    pub fn database_url_secret(&self) -> Option<&str> {
        self.database_url.as_ref().map(|u| u.expose_secret())
    }
}

/// Where `serve` writes the first admin credential and the CLI looks for it.
pub fn bootstrap_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.key")
}

fn read_file(path: &Path) -> Result<RawConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.display().to_string(),
        message: e.message().to_string(),
    })
}

/// The `[prices]` entries with `KEYGATE_PRICES` over them, validated: each
/// amount a finite, non-negative number of dollars, each pattern a glob.
fn prices(
    file: BTreeMap<String, crate::ledger::pricing::RawPrice>,
    env: &dyn Env,
) -> Result<BTreeMap<String, crate::ledger::pricing::Price>, ConfigError> {
    const VAR: &str = "KEYGATE_PRICES";
    let mut entries = file;
    if let Some(text) = env.var(VAR) {
        let from_env: BTreeMap<String, crate::ledger::pricing::RawPrice> =
            serde_json::from_str(&text).map_err(|e| {
                invalid(
                    VAR,
                    format!("must be a JSON object like {{\"gpt-4o\": {{\"input\": 2.5, \"output\": 10}}}}: {e}"),
                )
            })?;
        entries.extend(from_env);
    }
    entries
        .into_iter()
        .map(|(name, raw)| {
            let setting = format!("prices.\"{name}\"");
            if name.trim().is_empty() {
                return Err(invalid(setting, "the model name is empty"));
            }
            if name != "*" && crate::ledger::pricing::is_pattern(&name) {
                globset::Glob::new(&name).map_err(|e| {
                    invalid(&setting, format!("not a valid model pattern: {}", e.kind()))
                })?;
            }
            let price = raw
                .validate()
                .map_err(|message| invalid(&setting, message))?;
            Ok((name, price))
        })
        .collect()
}

fn number(
    env: &dyn Env,
    var: &str,
    file: Option<usize>,
    default: usize,
) -> Result<usize, ConfigError> {
    match env.var(var) {
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| invalid(var, format!("'{text}' is not a positive whole number"))),
        None => Ok(file.unwrap_or(default)),
    }
}

fn duration(
    env: &dyn Env,
    var: &str,
    file: Option<String>,
    default: &str,
) -> Result<Duration, ConfigError> {
    let text = env.var(var).or(file).unwrap_or_else(|| default.into());
    humantime::parse_duration(&text)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| invalid(var, format!("'{text}' is not a duration like 30s or 10m")))
}

fn normalise_url(setting: &str, url: &str) -> Result<String, ConfigError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| invalid(setting, format!("'{url}' is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(setting, "URL must be http or https"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// Write `contents` to `path` readable only by its owner, replacing any
/// previous file atomically (write to a sibling, then rename).
pub fn write_owner_only(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_with_empty_env() {
        let c = Config::from_raw(RawConfig::default(), &env(&[])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("."));
        assert!(c.providers.is_empty());
        assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(c.environments, vec!["live", "test"]);
    }

    #[test]
    fn standard_provider_variables_configure_providers() {
        let c = Config::from_raw(
            RawConfig::default(),
            &env(&[
                ("OPENAI_API_KEY", "x"),
                ("ANTHROPIC_API_KEY", "y"),
                ("ANTHROPIC_BASE_URL", "http://127.0.0.1:9/"),
            ]),
        )
        .unwrap();
        let names: Vec<_> = c.providers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, vec!["openai", "anthropic"]);
        assert_eq!(c.providers[1].base_url, "http://127.0.0.1:9");
    }

    #[test]
    fn env_wins_over_file_and_bad_values_are_named() {
        let raw: RawConfig =
            toml::from_str("listen = \"127.0.0.1:1\"\nmax_body_bytes = 10").unwrap();
        let c = Config::from_raw(raw, &env(&[("KEYGATE_LISTEN", "127.0.0.1:2")])).unwrap();
        assert_eq!(c.listen.port(), 2);
        assert_eq!(c.max_body_bytes, 10);
        let e = Config::from_raw(
            RawConfig::default(),
            &env(&[("KEYGATE_MAX_BODY_BYTES", "-1")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("KEYGATE_MAX_BODY_BYTES"));
        let e = Config::from_raw(
            RawConfig::default(),
            &env(&[("KEYGATE_DATABASE_URL", "mysql://x")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("postgres"));
    }

    #[test]
    fn the_metrics_token_comes_from_the_file_or_the_environment_and_must_be_long() {
        use secrecy::ExposeSecret;
        let file_token = "f".repeat(20);
        let env_token = "e".repeat(24);
        let raw: RawConfig = toml::from_str(&format!("metrics_token = \"{file_token}\"")).unwrap();
        let c = Config::from_raw(raw, &env(&[])).unwrap();
        assert_eq!(c.metrics_token.unwrap().expose_secret(), file_token);
        let raw: RawConfig = toml::from_str(&format!("metrics_token = \"{file_token}\"")).unwrap();
        let c = Config::from_raw(raw, &env(&[("KEYGATE_METRICS_TOKEN", &env_token)])).unwrap();
        assert_eq!(c.metrics_token.unwrap().expose_secret(), env_token);
        assert!(Config::from_raw(RawConfig::default(), &env(&[]))
            .unwrap()
            .metrics_token
            .is_none());
        for bad in ["short", "has a space in the middle"] {
            let e = Config::from_raw(
                RawConfig::default(),
                &env(&[("KEYGATE_METRICS_TOKEN", bad)]),
            )
            .unwrap_err();
            assert!(e.to_string().contains("KEYGATE_METRICS_TOKEN"), "{e}");
            assert!(!e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn prices_are_validated_and_the_environment_wins() {
        let raw: RawConfig = toml::from_str(
            "[prices.\"gpt-4o\"]\ninput = 2.0\ncached_input = 1.0\noutput = 8.0\n\
             [prices.\"*\"]\ninput = 1\noutput = 1\n\
             [prices.\"claude-*\"]\ninput = 3\noutput = 15\n",
        )
        .unwrap();
        let c = Config::from_raw(
            raw,
            &env(&[(
                "KEYGATE_PRICES",
                r#"{"gpt-4o": {"input": 2.5, "output": 10}}"#,
            )]),
        )
        .unwrap();
        let gpt4o = c.prices["gpt-4o"];
        assert_eq!(
            (gpt4o.input, gpt4o.cached_input, gpt4o.output),
            (2_500_000_000, None, 10_000_000_000),
            "the environment's entry replaces the file's"
        );
        assert_eq!(c.prices["*"].input, 1_000_000_000);
        let prices = crate::ledger::pricing::Prices::from_config(&c).unwrap();
        assert_eq!(
            prices.price("anthropic", "claude-9").map(|p| p.output),
            Some(15_000_000_000)
        );

        for (text, named) in [
            ("[prices.\"m\"]\ninput = -1\noutput = 1\n", "prices.\"m\""),
            ("[prices.\"m\"]\ninput = nan\noutput = 1\n", "prices.\"m\""),
            ("[prices.\"m\"]\ninput = 1\noutput = inf\n", "prices.\"m\""),
            (
                "[prices.\"gpt-[\"]\ninput = 1\noutput = 1\n",
                "prices.\"gpt-[\"",
            ),
        ] {
            let raw: RawConfig = toml::from_str(text).unwrap();
            let e = Config::from_raw(raw, &env(&[])).unwrap_err().to_string();
            assert!(e.contains(named), "{e}");
        }
        // A misspelt field or a missing price is the TOML parser's error.
        assert!(
            toml::from_str::<RawConfig>("[prices.m]\ninput = 1\noutput = 1\ncached = 1\n").is_err()
        );
        assert!(toml::from_str::<RawConfig>("[prices.m]\ninput = 1\n").is_err());
        let e = Config::from_raw(RawConfig::default(), &env(&[("KEYGATE_PRICES", "[1]")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("KEYGATE_PRICES"), "{e}");
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        assert!(toml::from_str::<RawConfig>("lisen = \"x\"").is_err());
    }

    #[test]
    fn file_providers_need_their_key_variable() {
        let raw: RawConfig = toml::from_str(
            "[[providers]]\nname = \"local\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\napi_key_env = \"LOCAL_KEY\"\nmodels = [\"llama-*\"]\n",
        )
        .unwrap();
        assert!(Config::from_raw(raw, &env(&[])).is_err());
    }
}
