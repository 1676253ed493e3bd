//! `[alerts]`: the channels alerts are delivered to.
//!
//! ```toml
//! [[alerts.webhooks]]
//! name = "security"                       # optional; default webhook-1, webhook-2, …
//! url = "https://hooks.example.com/keygate"
//! secret = { env = "KEYGATE_WEBHOOK_SECRET" }  # the HMAC key: env, file, dotenv, command or stored
//! format = "json"                         # or "slack" (`{"text": …, "blocks": […]}`)
//! kinds = ["key.*", "budget.*"]           # optional: only these alert kinds (globs)
//! allow_insecure = false                  # plain http:// to a non-loopback host
//! ```
//!
//! One more webhook, named `env`, from the environment:
//! `KEYGATE_ALERT_WEBHOOK_URL`, `KEYGATE_ALERT_WEBHOOK_SECRET` (the secret
//! itself), `KEYGATE_ALERT_WEBHOOK_FORMAT`, `KEYGATE_ALERT_WEBHOOK_KINDS`
//! (comma-separated) and `KEYGATE_ALERT_WEBHOOK_ALLOW_INSECURE` (`true`).
//!
//! A webhook URL can itself be a secret (a Slack incoming-webhook URL is
//! one), so neither messages nor `Debug` show more of it than scheme, host
//! and port.
//!
//! Email over SMTP, optionally:
//!
//! ```toml
//! [[alerts.email]]
//! name = "oncall-mail"                    # optional; default email-1, email-2, …
//! smtp_url = "smtps://smtp.example.com"   # implicit TLS (port 465); smtp:// is STARTTLS, required (587)
//! username = "keygate@example.com"        # optional; AUTH PLAIN or LOGIN
//! password = { file = "/run/secrets/smtp" }  # with username: env, file, dotenv, command or stored
//! from = "keygate <keygate@example.com>"
//! to = ["oncall@example.com", "Security <security@example.com>"]
//! kinds = ["leak.*", "budget.*"]          # optional: only these alert kinds (globs)
//! allow_insecure = false                  # smtp://…?tls=none to a host that is not loopback
//! ```
//!
//! Unencrypted SMTP needs `?tls=none` in the URL, and is accepted only to a
//! loopback host (a local relay) unless `allow_insecure = true`. One more
//! email channel, named `env-email`, from the environment:
//! `KEYGATE_ALERT_EMAIL_SMTP_URL`, `KEYGATE_ALERT_EMAIL_FROM`,
//! `KEYGATE_ALERT_EMAIL_TO` (comma-separated), `KEYGATE_ALERT_EMAIL_USERNAME`,
//! `KEYGATE_ALERT_EMAIL_PASSWORD` (the password itself) or
//! `KEYGATE_ALERT_EMAIL_PASSWORD_FILE` (a file holding it, re-read when it
//! changes), `KEYGATE_ALERT_EMAIL_KINDS` (comma-separated) and
//! `KEYGATE_ALERT_EMAIL_ALLOW_INSECURE` (`true`).

use super::provider::{provider_key, ProviderKey};
use super::{invalid, ConfigError, Env};
use crate::credentials::{Credential, CredentialSpec};
use globset::{Glob, GlobSet, GlobSetBuilder};
use lettre::message::Mailbox;
use serde::Deserialize;

/// The `[alerts]` table of the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    /// `[[alerts.webhooks]]`.
    #[serde(default)]
    pub webhooks: Vec<RawWebhook>,
    /// `[[alerts.email]]`.
    #[serde(default)]
    pub email: Vec<RawEmail>,
}

/// One `[[alerts.email]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmail {
    /// Name in the outbox and in logs (default `email-<position>`).
    pub name: Option<String>,
    /// The SMTP server: `smtps://host[:port]` (implicit TLS),
    /// `smtp://host[:port]` (STARTTLS, required) or
    /// `smtp://host[:port]?tls=none` (unencrypted).
    pub smtp_url: String,
    /// User name for SMTP AUTH; with `password`.
    pub username: Option<String>,
    /// Password for SMTP AUTH, from any credential source; with `username`.
    pub password: Option<CredentialSpec>,
    /// The sender: `addr@example.com` or `Name <addr@example.com>`.
    pub from: String,
    /// Recipients, in the same forms.
    #[serde(default)]
    pub to: Vec<String>,
    /// Alert kinds delivered here, as globs (`key.*`); empty: every kind.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Allow unencrypted SMTP (`?tls=none`) to a host that is not loopback.
    #[serde(default)]
    pub allow_insecure: bool,
}

/// One `[[alerts.webhooks]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    /// Name in the outbox and in logs (default `webhook-<position>`).
    pub name: Option<String>,
    /// Where alerts are POSTed: `https://…`, or `http://` to a loopback host.
    pub url: String,
    /// The HMAC-SHA256 signing key, from any credential source. Required for
    /// the `json` format; a `slack` webhook is signed only when it has one.
    pub secret: Option<CredentialSpec>,
    /// Body format (default `json`).
    pub format: Option<WebhookFormat>,
    /// Alert kinds delivered here, as globs (`key.*`); empty: every kind.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Allow plain `http://` to a host that is not loopback.
    #[serde(default)]
    pub allow_insecure: bool,
}

/// What a webhook's body looks like.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// keygate's JSON document (see [`crate::alerts`]).
    #[default]
    Json,
    /// Slack-compatible: `{"text": …, "blocks": […]}`, accepted by Slack
    /// incoming webhooks and by Mattermost, Rocket.Chat and others.
    Slack,
}

impl WebhookFormat {
    fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "json" => Some(WebhookFormat::Json),
            "slack" => Some(WebhookFormat::Slack),
            _ => None,
        }
    }
}

/// A webhook URL: http(s), checked. `Debug` and `Display` show only
/// scheme, host and port, since the path may be the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(reqwest::Url);

impl WebhookUrl {
    /// The whole URL, for sending.
    pub fn url(&self) -> &reqwest::Url {
        &self.0
    }

    /// `scheme://host[:port]`, safe for logs.
    pub fn origin(&self) -> String {
        redacted(&self.0)
    }
}

impl std::fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/…", self.origin())
    }
}

impl std::fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/…", self.origin())
    }
}

fn redacted(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

/// Which alert kinds a channel takes: globs over the kind; none means all.
#[derive(Clone, Debug)]
pub struct KindFilter {
    patterns: Vec<String>,
    set: GlobSet,
}

impl KindFilter {
    /// Compile `patterns`; an invalid glob is an error naming it.
    pub fn new(patterns: Vec<String>) -> Result<Self, String> {
        let mut builder = GlobSetBuilder::new();
        for pattern in &patterns {
            let glob = Glob::new(pattern).map_err(|e| {
                format!(
                    "invalid kind pattern '{}': {}",
                    crate::error::printable(pattern),
                    e.kind()
                )
            })?;
            builder.add(glob);
        }
        let set = builder
            .build()
            .map_err(|e| format!("invalid kind patterns: {e}"))?;
        Ok(KindFilter { patterns, set })
    }

    /// Does a channel with this filter take alerts of `kind`?
    pub fn matches(&self, kind: &str) -> bool {
        self.patterns.is_empty() || self.set.is_match(kind)
    }

    /// The patterns as configured.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

/// One webhook channel, validated.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Unique name; the outbox refers to the channel by it.
    pub name: String,
    /// Where to POST.
    pub url: WebhookUrl,
    /// The signing key; `None` only for an unsigned Slack webhook.
    /// Resolved by [`crate::alerts::Alerts::start`] when it needs the
    /// gateway (command, stored).
    pub secret: Option<ProviderKey>,
    /// Body format.
    pub format: WebhookFormat,
    /// Alert kinds it takes.
    pub kinds: KindFilter,
}

/// How the connection to an SMTP server is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtps://`: TLS from the first byte (port 465 by default).
    ImplicitTls,
    /// `smtp://`: plain connect, then STARTTLS, which the server must offer
    /// (port 587 by default).
    StartTls,
    /// `smtp://…?tls=none`: no encryption at all (port 25 by default); only
    /// to loopback, or with `allow_insecure`.
    None,
}

/// An SMTP server, checked: host, port and how the connection is
/// protected. Credentials never live in the URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpUrl {
    host: String,
    port: u16,
    security: SmtpSecurity,
}

impl SmtpUrl {
    /// Host name or IP address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How the connection is protected.
    pub fn security(&self) -> SmtpSecurity {
        self.security
    }
}

impl std::fmt::Display for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.security {
            SmtpSecurity::ImplicitTls => "smtps",
            SmtpSecurity::StartTls | SmtpSecurity::None => "smtp",
        };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)?;
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)?;
        }
        if self.security == SmtpSecurity::None {
            f.write_str("?tls=none")?;
        }
        Ok(())
    }
}

fn is_loopback(host: &str) -> bool {
    // IPv6 hosts come bracketed (`[::1]`).
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Check an SMTP URL: `smtps://host[:port]`, `smtp://host[:port]`
/// (STARTTLS required) or `smtp://host[:port]?tls=none`, the last only to a
/// loopback host unless `allow_insecure` (alerts and the AUTH password
/// would cross the network in the clear). No user or password in the URL,
/// no path.
pub fn smtp_url(setting: &str, text: &str, allow_insecure: bool) -> Result<SmtpUrl, ConfigError> {
    let url = reqwest::Url::parse(text.trim())
        .map_err(|e| invalid(setting, format!("smtp_url is not a valid URL: {e}")))?;
    let scheme = url.scheme().to_ascii_lowercase();
    if scheme != "smtp" && scheme != "smtps" {
        return Err(invalid(
            setting,
            format!(
                "smtp_url scheme '{}' is not supported: use smtps://host (implicit TLS) or \
                 smtp://host (STARTTLS)",
                crate::error::printable(url.scheme())
            ),
        ));
    }
    let host = match url.host_str() {
        Some(host) if !host.is_empty() => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase(),
        _ => return Err(invalid(setting, "smtp_url needs a host")),
    };
    if !url.username().is_empty() || url.password().is_some() {
        // Never echo the URL: the part before '@' may be a password.
        return Err(invalid(
            setting,
            "smtp_url must not carry a user or password: set username, and password as a \
             credential source (KEYGATE_ALERT_EMAIL_USERNAME / KEYGATE_ALERT_EMAIL_PASSWORD)",
        ));
    }
    if !matches!(url.path(), "" | "/") || url.fragment().is_some() {
        return Err(invalid(
            setting,
            "smtp_url takes only scheme, host, port and ?tls=none",
        ));
    }
    let mut plain = false;
    for (name, value) in url.query_pairs() {
        match (name.as_ref(), value.as_ref()) {
            ("tls", "none") => plain = true,
            _ => {
                return Err(invalid(
                    setting,
                    format!(
                        "smtp_url parameter '{}' is not supported: the only one is tls=none",
                        crate::error::printable(&name)
                    ),
                ))
            }
        }
    }
    let security = match (scheme.as_str(), plain) {
        ("smtps", false) => SmtpSecurity::ImplicitTls,
        ("smtps", true) => {
            return Err(invalid(
                setting,
                "smtp_url: smtps:// is always encrypted; drop ?tls=none, or use smtp://",
            ))
        }
        (_, false) => SmtpSecurity::StartTls,
        (_, true) => SmtpSecurity::None,
    };
    let port = url.port().unwrap_or(match security {
        SmtpSecurity::ImplicitTls => 465,
        SmtpSecurity::StartTls => 587,
        SmtpSecurity::None => 25,
    });
    let parsed = SmtpUrl {
        host,
        port,
        security,
    };
    if security == SmtpSecurity::None && !is_loopback(&parsed.host) && !allow_insecure {
        return Err(invalid(
            setting,
            format!(
                "{parsed} is unencrypted SMTP to a host that is not loopback: alerts and the \
                 AUTH password would cross the network in the clear. Use smtps:// or smtp:// \
                 (STARTTLS), or set allow_insecure = true \
                 (KEYGATE_ALERT_EMAIL_ALLOW_INSECURE=true) if that network path is trusted"
            ),
        ));
    }
    Ok(parsed)
}

/// One address: `addr@example.com` or `Name <addr@example.com>`.
fn mailbox(setting: &str, field: &str, text: &str) -> Result<Mailbox, ConfigError> {
    text.trim().parse::<Mailbox>().map_err(|e| {
        invalid(
            setting,
            format!(
                "{field} '{}' is not an email address ({e}): use addr@example.com or \
                 Name <addr@example.com>",
                crate::error::printable(text)
            ),
        )
    })
}

/// Most recipients of one email channel.
pub const MAX_EMAIL_RECIPIENTS: usize = 50;

/// One email channel, validated.
#[derive(Clone, Debug)]
pub struct EmailConfig {
    /// Unique name (among webhooks too); the outbox refers to the channel
    /// by it.
    pub name: String,
    /// The SMTP server.
    pub smtp: SmtpUrl,
    /// SMTP AUTH user and password (`None`: no AUTH). The password is
    /// resolved by [`crate::alerts::Alerts::start`] when it needs the
    /// gateway (command, stored).
    pub auth: Option<(String, ProviderKey)>,
    /// The sender.
    pub from: Mailbox,
    /// The recipients (at least one).
    pub to: Vec<Mailbox>,
    /// Alert kinds it takes.
    pub kinds: KindFilter,
}

/// Validated `[alerts]`.
#[derive(Clone, Debug, Default)]
pub struct AlertsConfig {
    /// Webhook channels, file entries first, then the one from the
    /// environment.
    pub webhooks: Vec<WebhookConfig>,
    /// Email channels, file entries first, then the one from the
    /// environment.
    pub email: Vec<EmailConfig>,
}

/// The name of the webhook configured by `KEYGATE_ALERT_WEBHOOK_URL`.
pub const ENV_WEBHOOK_NAME: &str = "env";
/// The name of the email channel configured by
/// `KEYGATE_ALERT_EMAIL_SMTP_URL`.
pub const ENV_EMAIL_NAME: &str = "env-email";

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Check a webhook URL: http or https with a host; plain http only to a
/// loopback host unless `allow_insecure` (the body carries alert details and
/// the signature would be replayable by anyone on the path).
pub fn webhook_url(
    setting: &str,
    text: &str,
    allow_insecure: bool,
) -> Result<WebhookUrl, ConfigError> {
    let url = reqwest::Url::parse(text.trim())
        .map_err(|e| invalid(setting, format!("url is not a valid URL: {e}")))?;
    let host = match url.host_str() {
        Some(host) if !host.is_empty() => host,
        _ => return Err(invalid(setting, "url needs a host")),
    };
    match url.scheme() {
        "https" => {}
        "http" => {
            if !is_loopback(host) && !allow_insecure {
                return Err(invalid(
                    setting,
                    format!(
                        "{} uses plain http:// to a host that is not loopback: alerts and their \
                         signatures would cross the network unencrypted. Use https://, or set \
                         allow_insecure = true (KEYGATE_ALERT_WEBHOOK_ALLOW_INSECURE=true) if \
                         that network path is trusted",
                        redacted(&url)
                    ),
                ));
            }
        }
        other => {
            return Err(invalid(
                setting,
                format!(
                "url scheme '{}' is not supported: use https:// (or http:// to a loopback host)",
                crate::error::printable(other)
            ),
            ))
        }
    }
    Ok(WebhookUrl(url))
}

struct Parts {
    setting: String,
    name: String,
    url: String,
    secret: Option<ProviderKey>,
    format: WebhookFormat,
    kinds: Vec<String>,
    allow_insecure: bool,
}

fn webhook(parts: Parts) -> Result<WebhookConfig, ConfigError> {
    let setting = parts.setting.as_str();
    if !valid_name(&parts.name) {
        return Err(invalid(
            setting,
            "name must be 1-64 characters: letters, digits, '.', '_' or '-'",
        ));
    }
    let url = webhook_url(setting, &parts.url, parts.allow_insecure)?;
    if parts.secret.is_none() && parts.format == WebhookFormat::Json {
        return Err(invalid(
            setting,
            "a json webhook needs a secret (the HMAC key receivers verify x-keygate-signature with)",
        ));
    }
    let kinds = KindFilter::new(parts.kinds).map_err(|e| invalid(setting, e))?;
    Ok(WebhookConfig {
        name: parts.name,
        url,
        secret: parts.secret,
        format: parts.format,
        kinds,
    })
}

/// Validate `[alerts]` and add the webhook the environment configures.
pub fn validate(raw: RawAlerts, env: &dyn Env) -> Result<AlertsConfig, ConfigError> {
    let mut webhooks: Vec<WebhookConfig> = Vec::new();
    for (index, entry) in raw.webhooks.into_iter().enumerate() {
        let name = entry
            .name
            .clone()
            .unwrap_or_else(|| format!("webhook-{}", index + 1));
        let setting = format!("alerts.webhooks[{}]", index + 1);
        let secret = entry
            .secret
            .map(|spec| provider_key(spec, env, &setting))
            .transpose()?;
        webhooks.push(webhook(Parts {
            setting,
            name,
            url: entry.url,
            secret,
            format: entry.format.unwrap_or_default(),
            kinds: entry.kinds,
            allow_insecure: entry.allow_insecure,
        })?);
    }
    if let Some(env_webhook) = from_env(env)? {
        webhooks.push(env_webhook);
    }
    for (i, webhook) in webhooks.iter().enumerate() {
        if webhooks[..i].iter().any(|w| w.name == webhook.name) {
            return Err(invalid(
                "alerts.webhooks",
                format!("two webhooks are named '{}'", webhook.name),
            ));
        }
    }
    let mut email: Vec<EmailConfig> = Vec::new();
    for (index, entry) in raw.email.into_iter().enumerate() {
        let setting = format!("alerts.email[{}]", index + 1);
        let password = entry
            .password
            .map(|spec| provider_key(spec, env, &setting))
            .transpose()?;
        email.push(email_channel(EmailParts {
            name: entry.name.unwrap_or_else(|| format!("email-{}", index + 1)),
            settings: EmailSettings::entry(&setting),
            smtp_url: entry.smtp_url,
            username: entry.username,
            password,
            from: entry.from,
            to: entry.to,
            kinds: entry.kinds,
            allow_insecure: entry.allow_insecure,
        })?);
    }
    if let Some(env_email) = email_from_env(env)? {
        email.push(env_email);
    }
    // One namespace: the outbox names a delivery's channel, webhook or email.
    for (i, channel) in email.iter().enumerate() {
        if email[..i].iter().any(|e| e.name == channel.name)
            || webhooks.iter().any(|w| w.name == channel.name)
        {
            return Err(invalid(
                "alerts.email",
                format!(
                    "two alert channels are named '{}' (webhooks and email channels share names)",
                    channel.name
                ),
            ));
        }
    }
    Ok(AlertsConfig { webhooks, email })
}

/// The settings an email channel's errors name: its file entry for each
/// field, or the environment variable that set it.
struct EmailSettings {
    url: String,
    from: String,
    to: String,
    auth: String,
}

impl EmailSettings {
    fn entry(setting: &str) -> Self {
        EmailSettings {
            url: setting.to_string(),
            from: setting.to_string(),
            to: setting.to_string(),
            auth: setting.to_string(),
        }
    }
}

struct EmailParts {
    settings: EmailSettings,
    name: String,
    smtp_url: String,
    username: Option<String>,
    password: Option<ProviderKey>,
    from: String,
    to: Vec<String>,
    kinds: Vec<String>,
    allow_insecure: bool,
}

fn email_channel(parts: EmailParts) -> Result<EmailConfig, ConfigError> {
    let settings = &parts.settings;
    if !valid_name(&parts.name) {
        return Err(invalid(
            &settings.url,
            "name must be 1-64 characters: letters, digits, '.', '_' or '-'",
        ));
    }
    let smtp = smtp_url(&settings.url, &parts.smtp_url, parts.allow_insecure)?;
    let setting = settings.auth.as_str();
    let username = parts
        .username
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty());
    let auth = match (username, parts.password) {
        (Some(username), Some(password)) => {
            if username.chars().any(char::is_control) || username.len() > 256 {
                return Err(invalid(
                    setting,
                    "username must be at most 256 characters without control characters",
                ));
            }
            Some((username, password))
        }
        (None, None) => None,
        (Some(_), None) => {
            return Err(invalid(
                setting,
                "username is set but password is not: SMTP AUTH needs both (password is a \
                 credential source: env, file, dotenv, command or stored)",
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                setting,
                "password is set but username is not: SMTP AUTH needs both",
            ))
        }
    };
    let from = mailbox(&settings.from, "from", &parts.from)?;
    let to = parts
        .to
        .iter()
        .filter(|t| !t.trim().is_empty())
        .map(|t| mailbox(&settings.to, "to", t))
        .collect::<Result<Vec<_>, _>>()?;
    if to.is_empty() {
        return Err(invalid(&settings.to, "to needs at least one recipient"));
    }
    if to.len() > MAX_EMAIL_RECIPIENTS {
        return Err(invalid(
            &settings.to,
            format!(
                "to has {} recipients; at most {MAX_EMAIL_RECIPIENTS}",
                to.len()
            ),
        ));
    }
    let kinds = KindFilter::new(parts.kinds).map_err(|e| invalid(&settings.url, e))?;
    Ok(EmailConfig {
        name: parts.name,
        smtp,
        auth,
        from,
        to,
        kinds,
    })
}

fn comma_list(text: Option<String>) -> Vec<String> {
    text.map(|v| {
        v.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

fn flag(env: &dyn Env, var: &str) -> Result<bool, ConfigError> {
    match env.var(var).as_deref().map(str::trim) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(_) => Err(invalid(var, "must be true or false")),
    }
}

fn email_from_env(env: &dyn Env) -> Result<Option<EmailConfig>, ConfigError> {
    const URL: &str = "KEYGATE_ALERT_EMAIL_SMTP_URL";
    const FROM: &str = "KEYGATE_ALERT_EMAIL_FROM";
    const TO: &str = "KEYGATE_ALERT_EMAIL_TO";
    const USERNAME: &str = "KEYGATE_ALERT_EMAIL_USERNAME";
    const PASSWORD: &str = "KEYGATE_ALERT_EMAIL_PASSWORD";
    const PASSWORD_FILE: &str = "KEYGATE_ALERT_EMAIL_PASSWORD_FILE";
    const KINDS: &str = "KEYGATE_ALERT_EMAIL_KINDS";
    const INSECURE: &str = "KEYGATE_ALERT_EMAIL_ALLOW_INSECURE";
    let Some(url) = env.var(URL) else {
        for var in [FROM, TO, USERNAME, PASSWORD, PASSWORD_FILE, KINDS, INSECURE] {
            if env.var(var).is_some() {
                return Err(invalid(var, format!("is set but {URL} is not")));
            }
        }
        return Ok(None);
    };
    let from = env
        .var(FROM)
        .ok_or_else(|| invalid(FROM, format!("is required with {URL}")))?;
    let to = comma_list(env.var(TO));
    if to.is_empty() {
        return Err(invalid(TO, format!("is required with {URL}")));
    }
    let password = match (env.var(PASSWORD), env.var(PASSWORD_FILE)) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                PASSWORD,
                format!("set only one of {PASSWORD} and {PASSWORD_FILE}"),
            ))
        }
        (Some(_), None) => Some(ProviderKey::Ready(
            Credential::from_env(PASSWORD, env).map_err(|e| invalid(PASSWORD, e.to_string()))?,
        )),
        (None, Some(file)) => Some(provider_key(
            CredentialSpec::File { file: file.into() },
            env,
            PASSWORD_FILE,
        )?),
        (None, None) => None,
    };
    email_channel(EmailParts {
        settings: EmailSettings {
            url: URL.into(),
            from: FROM.into(),
            to: TO.into(),
            auth: format!("{USERNAME} / {PASSWORD}"),
        },
        name: ENV_EMAIL_NAME.into(),
        smtp_url: url,
        username: env.var(USERNAME),
        password,
        from,
        to,
        kinds: comma_list(env.var(KINDS)),
        allow_insecure: flag(env, INSECURE)?,
    })
    .map(Some)
}

fn from_env(env: &dyn Env) -> Result<Option<WebhookConfig>, ConfigError> {
    const URL: &str = "KEYGATE_ALERT_WEBHOOK_URL";
    const SECRET: &str = "KEYGATE_ALERT_WEBHOOK_SECRET";
    const FORMAT: &str = "KEYGATE_ALERT_WEBHOOK_FORMAT";
    const KINDS: &str = "KEYGATE_ALERT_WEBHOOK_KINDS";
    const INSECURE: &str = "KEYGATE_ALERT_WEBHOOK_ALLOW_INSECURE";
    let Some(url) = env.var(URL) else {
        for var in [SECRET, FORMAT, KINDS, INSECURE] {
            if env.var(var).is_some() {
                return Err(invalid(var, format!("is set but {URL} is not")));
            }
        }
        return Ok(None);
    };
    let format = match env.var(FORMAT) {
        Some(text) => WebhookFormat::parse(&text).ok_or_else(|| {
            invalid(
                FORMAT,
                format!(
                    "'{}' is not a format: json or slack",
                    crate::error::printable(&text)
                ),
            )
        })?,
        None => WebhookFormat::Json,
    };
    let allow_insecure = flag(env, INSECURE)?;
    let secret = match env.var(SECRET) {
        Some(_) => Some(ProviderKey::Ready(
            Credential::from_env(SECRET, env).map_err(|e| invalid(SECRET, e.to_string()))?,
        )),
        None => None,
    };
    let kinds = comma_list(env.var(KINDS));
    webhook(Parts {
        setting: format!("{URL} / {SECRET}"),
        name: ENV_WEBHOOK_NAME.into(),
        url,
        secret,
        format,
        kinds,
        allow_insecure,
    })
    .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn raw(text: &str) -> RawAlerts {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn file_webhooks_with_every_option() {
        let config = validate(
            raw(r#"
                [[webhooks]]
                url = "https://hooks.example.com/a"
                secret = { env = "HOOK_SECRET" }
                kinds = ["key.*"]

                [[webhooks]]
                name = "chat"
                url = "https://hooks.slack.com/services/T0/B0/notforlogs"
                format = "slack"
            "#),
            &env(&[("HOOK_SECRET", "0123456789abcdef0123")]),
        )
        .unwrap();
        assert_eq!(config.webhooks.len(), 2);
        let first = &config.webhooks[0];
        assert_eq!(first.name, "webhook-1");
        assert_eq!(first.format, WebhookFormat::Json);
        assert!(first.kinds.matches("key.rotation_due"));
        assert!(!first.kinds.matches("budget.threshold"));
        assert!(first.secret.as_ref().unwrap().ready().is_some());
        let chat = &config.webhooks[1];
        assert_eq!(chat.name, "chat");
        assert_eq!(chat.format, WebhookFormat::Slack);
        assert!(chat.secret.is_none());
        assert!(chat.kinds.matches("anything"));
        // The path of a Slack URL is its secret: never in Debug output.
        let shown = format!("{config:?}");
        assert!(!shown.contains("notforlogs"), "{shown}");
        assert!(shown.contains("https://hooks.slack.com"));
    }

    #[test]
    fn plain_http_only_to_loopback_unless_allowed() {
        for ok in [
            "http://127.0.0.1:9000/hook",
            "http://localhost/hook",
            "http://[::1]:8/x",
        ] {
            webhook_url("s", ok, false).unwrap();
        }
        let e = webhook_url("s", "http://hooks.example.com/secret-path", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("plain http://"), "{e}");
        assert!(e.contains("allow_insecure"), "{e}");
        assert!(!e.contains("secret-path"), "{e}");
        webhook_url("s", "http://hooks.example.com/x", true).unwrap();
        for bad in ["ftp://example.com/x", "file:///etc/passwd", "not a url"] {
            assert!(webhook_url("s", bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn one_webhook_from_the_environment() {
        let config = validate(
            RawAlerts::default(),
            &env(&[
                ("KEYGATE_ALERT_WEBHOOK_URL", "https://hooks.example.com/k"),
                ("KEYGATE_ALERT_WEBHOOK_SECRET", "0123456789abcdef0123"),
                ("KEYGATE_ALERT_WEBHOOK_FORMAT", "slack"),
                ("KEYGATE_ALERT_WEBHOOK_KINDS", "key.*, leak.*"),
            ]),
        )
        .unwrap();
        let hook = &config.webhooks[0];
        assert_eq!(hook.name, ENV_WEBHOOK_NAME);
        assert_eq!(hook.format, WebhookFormat::Slack);
        assert_eq!(hook.kinds.patterns(), ["key.*", "leak.*"]);
        let secret = hook.secret.as_ref().unwrap().ready().unwrap();
        assert_eq!(secret.source_label(), "env:KEYGATE_ALERT_WEBHOOK_SECRET");
    }

    #[test]
    fn misconfigurations_are_named() {
        let message =
            |r: RawAlerts, e: &[(&str, &str)]| validate(r, &env(e)).unwrap_err().to_string();
        let e = message(
            RawAlerts::default(),
            &[("KEYGATE_ALERT_WEBHOOK_URL", "https://h.example.com/")],
        );
        assert!(e.contains("needs a secret"), "{e}");
        let e = message(
            RawAlerts::default(),
            &[("KEYGATE_ALERT_WEBHOOK_SECRET", "0123456789abcdef")],
        );
        assert!(e.contains("KEYGATE_ALERT_WEBHOOK_URL"), "{e}");
        let e = message(
            RawAlerts::default(),
            &[
                ("KEYGATE_ALERT_WEBHOOK_URL", "https://h.example.com/"),
                ("KEYGATE_ALERT_WEBHOOK_SECRET", "0123456789abcdef"),
                ("KEYGATE_ALERT_WEBHOOK_FORMAT", "xml"),
            ],
        );
        assert!(e.contains("json or slack"), "{e}");
        let e = message(
            raw(r#"
                [[webhooks]]
                name = "a"
                url = "https://h.example.com/"
                format = "slack"
                [[webhooks]]
                name = "a"
                url = "https://i.example.com/"
                format = "slack"
            "#),
            &[],
        );
        assert!(e.contains("two webhooks are named 'a'"), "{e}");
        let e = message(
            raw(r#"
                [[webhooks]]
                url = "https://h.example.com/"
                secret = { env = "UNSET_HOOK_SECRET" }
            "#),
            &[],
        );
        assert!(e.contains("UNSET_HOOK_SECRET"), "{e}");
        let e = message(
            raw(r#"
                [[webhooks]]
                url = "https://h.example.com/"
                format = "slack"
                kinds = ["key.[*"]
            "#),
            &[],
        );
        assert!(e.contains("invalid kind pattern"), "{e}");
        assert!(
            toml::from_str::<RawAlerts>("[[webhooks]]\nurl = \"https://x\"\nsecrets = 1").is_err()
        );
    }

    /// Test passwords are made at run time: nothing credential-shaped is
    /// committed.
    fn generated_password() -> String {
        format!("pw{:016x}", rand::random::<u64>())
    }

    #[test]
    fn file_email_channels_with_every_option() {
        let secret = generated_password();
        let config = validate(
            raw(r#"
                [[email]]
                smtp_url = "smtps://smtp.example.com"
                username = "keygate@example.com"
                password = { env = "SMTP_PASSWORD" }
                from = "keygate <keygate@example.com>"
                to = ["oncall@example.com", "Security <sec@example.org>"]
                kinds = ["leak.*"]

                [[email]]
                name = "relay"
                smtp_url = "smtp://127.0.0.1:2525?tls=none"
                from = "keygate@example.com"
                to = ["ops@example.com"]

                [[email]]
                smtp_url = "smtp://mail.example.com"
                from = "keygate@example.com"
                to = ["ops@example.com"]
            "#),
            &env(&[("SMTP_PASSWORD", &secret)]),
        )
        .unwrap();
        assert_eq!(config.email.len(), 3);
        let first = &config.email[0];
        assert_eq!(first.name, "email-1");
        assert_eq!(first.smtp.to_string(), "smtps://smtp.example.com:465");
        assert_eq!(first.smtp.security(), SmtpSecurity::ImplicitTls);
        let (user, password) = first.auth.as_ref().unwrap();
        assert_eq!(user, "keygate@example.com");
        assert_eq!(
            password.ready().unwrap().source_label(),
            "env:SMTP_PASSWORD"
        );
        assert_eq!(first.from.email.to_string(), "keygate@example.com");
        assert_eq!(first.to.len(), 2);
        assert!(first.kinds.matches("leak.reported"));
        assert!(!first.kinds.matches("key.rotation_due"));
        let relay = &config.email[1];
        assert_eq!(relay.name, "relay");
        assert_eq!(relay.smtp.security(), SmtpSecurity::None);
        assert_eq!((relay.smtp.host(), relay.smtp.port()), ("127.0.0.1", 2525));
        assert!(relay.auth.is_none());
        let starttls = &config.email[2];
        assert_eq!(starttls.smtp.security(), SmtpSecurity::StartTls);
        assert_eq!(starttls.smtp.port(), 587);
        assert!(!format!("{config:?}").contains(&secret));
    }

    #[test]
    fn smtp_urls_are_checked() {
        assert_eq!(
            smtp_url("s", "smtp://[::1]:25?tls=none", false)
                .unwrap()
                .to_string(),
            "smtp://[::1]:25?tls=none"
        );
        smtp_url("s", "smtp://localhost?tls=none", false).unwrap();
        let e = smtp_url("s", "smtp://mail.example.com?tls=none", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unencrypted SMTP"), "{e}");
        assert!(e.contains("allow_insecure"), "{e}");
        smtp_url("s", "smtp://mail.example.com?tls=none", true).unwrap();
        let password = generated_password();
        let e = smtp_url(
            "s",
            &format!("smtp://user:{password}@mail.example.com"),
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("must not carry a user or password"), "{e}");
        assert!(!e.contains(&password), "{e}");
        for bad in [
            "https://mail.example.com",
            "smtps://mail.example.com?tls=none",
            "smtp://mail.example.com?tls=maybe",
            "smtp://mail.example.com/path",
            "smtp://",
            "mail.example.com:25",
        ] {
            assert!(smtp_url("s", bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn one_email_channel_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("smtp-password");
        std::fs::write(&file, format!("{}\n", generated_password())).unwrap();
        let file = file.display().to_string();
        let config = validate(
            RawAlerts::default(),
            &env(&[
                (
                    "KEYGATE_ALERT_EMAIL_SMTP_URL",
                    "smtp://mail.example.com:587",
                ),
                ("KEYGATE_ALERT_EMAIL_FROM", "keygate@example.com"),
                ("KEYGATE_ALERT_EMAIL_TO", "a@example.com, B <b@example.com>"),
                ("KEYGATE_ALERT_EMAIL_USERNAME", "keygate"),
                ("KEYGATE_ALERT_EMAIL_PASSWORD_FILE", &file),
                ("KEYGATE_ALERT_EMAIL_KINDS", "budget.*, leak.*"),
            ]),
        )
        .unwrap();
        let email = &config.email[0];
        assert_eq!(email.name, ENV_EMAIL_NAME);
        assert_eq!(email.to.len(), 2);
        assert_eq!(email.kinds.patterns(), ["budget.*", "leak.*"]);
        let (user, password) = email.auth.as_ref().unwrap();
        assert_eq!(user, "keygate");
        assert!(password
            .ready()
            .unwrap()
            .source_label()
            .starts_with("file:"));
    }

    #[test]
    fn email_misconfigurations_are_named() {
        let password = generated_password();
        let message =
            |r: RawAlerts, e: &[(&str, &str)]| validate(r, &env(e)).unwrap_err().to_string();
        let url = ("KEYGATE_ALERT_EMAIL_SMTP_URL", "smtps://mail.example.com");
        let from = ("KEYGATE_ALERT_EMAIL_FROM", "keygate@example.com");
        let to = ("KEYGATE_ALERT_EMAIL_TO", "ops@example.com");
        let e = message(RawAlerts::default(), &[from, to]);
        assert!(e.contains("KEYGATE_ALERT_EMAIL_FROM"), "{e}");
        assert!(e.contains("KEYGATE_ALERT_EMAIL_SMTP_URL is not"), "{e}");
        let e = message(RawAlerts::default(), &[url, to]);
        assert!(e.contains("KEYGATE_ALERT_EMAIL_FROM: is required"), "{e}");
        let e = message(RawAlerts::default(), &[url, from]);
        assert!(e.contains("KEYGATE_ALERT_EMAIL_TO: is required"), "{e}");
        let e = message(
            RawAlerts::default(),
            &[
                url,
                from,
                ("KEYGATE_ALERT_EMAIL_TO", "ops@example.com, not an address"),
            ],
        );
        assert!(e.contains("setting KEYGATE_ALERT_EMAIL_TO"), "{e}");
        assert!(
            e.contains("'not an address' is not an email address"),
            "{e}"
        );
        let e = message(
            RawAlerts::default(),
            &[url, from, to, ("KEYGATE_ALERT_EMAIL_USERNAME", "u")],
        );
        assert!(e.contains("username is set but password is not"), "{e}");
        let e = message(
            RawAlerts::default(),
            &[url, from, to, ("KEYGATE_ALERT_EMAIL_PASSWORD", &password)],
        );
        assert!(e.contains("password is set but username is not"), "{e}");
        assert!(!e.contains(&password), "{e}");
        let e = message(
            RawAlerts::default(),
            &[url, from, to, ("KEYGATE_ALERT_EMAIL_ALLOW_INSECURE", "yes")],
        );
        assert!(e.contains("KEYGATE_ALERT_EMAIL_ALLOW_INSECURE"), "{e}");
        let e = message(
            raw(r#"
                [[webhooks]]
                name = "ops"
                url = "https://h.example.com/"
                format = "slack"
                [[email]]
                name = "ops"
                smtp_url = "smtps://mail.example.com"
                from = "k@example.com"
                to = ["o@example.com"]
            "#),
            &[],
        );
        assert!(e.contains("two alert channels are named 'ops'"), "{e}");
        let e = message(
            raw(r#"
                [[email]]
                smtp_url = "smtps://mail.example.com"
                from = "k@example.com"
                to = []
            "#),
            &[],
        );
        assert!(e.contains("alerts.email[1]: to needs at least one"), "{e}");
        let e = message(
            raw(r#"
                [[email]]
                smtp_url = "smtps://mail.example.com"
                from = "k@example.com"
                to = ["o@example.com"]
                username = "k"
                password = { env = "UNSET_SMTP_PASSWORD" }
            "#),
            &[],
        );
        assert!(e.contains("UNSET_SMTP_PASSWORD"), "{e}");
        assert!(toml::from_str::<RawAlerts>(
            "[[email]]\nsmtp_url = \"smtps://x\"\nfrom = \"a@b.c\"\nto = [\"a@b.c\"]\npasword = 1"
        )
        .is_err());
    }
}
