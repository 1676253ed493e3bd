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

use super::provider::{provider_key, ProviderKey};
use super::{invalid, ConfigError, Env};
use crate::credentials::{Credential, CredentialSpec};
use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;

/// The `[alerts]` table of the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    /// `[[alerts.webhooks]]`.
    #[serde(default)]
    pub webhooks: Vec<RawWebhook>,
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

/// Validated `[alerts]`.
#[derive(Clone, Debug, Default)]
pub struct AlertsConfig {
    /// Webhook channels, file entries first, then the one from the
    /// environment.
    pub webhooks: Vec<WebhookConfig>,
}

/// The name of the webhook configured by `KEYGATE_ALERT_WEBHOOK_URL`.
pub const ENV_WEBHOOK_NAME: &str = "env";

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
            // IPv6 hosts come bracketed (`[::1]`).
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !loopback && !allow_insecure {
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
    Ok(AlertsConfig { webhooks })
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
    let allow_insecure = match env.var(INSECURE).as_deref().map(str::trim) {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(_) => return Err(invalid(INSECURE, "must be true or false")),
    };
    let secret = match env.var(SECRET) {
        Some(_) => Some(ProviderKey::Ready(
            Credential::from_env(SECRET, env).map_err(|e| invalid(SECRET, e.to_string()))?,
        )),
        None => None,
    };
    let kinds = env
        .var(KINDS)
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
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
}
