//! `[dashboard]`: sign-in sessions of the web dashboard.
//!
//! ```toml
//! [dashboard]
//! session_idle = "30m"      # KEYGATE_DASHBOARD_SESSION_IDLE: signed out after this long without a request
//! session_lifetime = "12h"  # KEYGATE_DASHBOARD_SESSION_LIFETIME: signed out this long after sign-in, however active
//!
//! # Optional: sign in with the organisation's OpenID Provider (authorization
//! # code flow with PKCE). The client secret comes from the environment only:
//! # KEYGATE_DASHBOARD_OIDC_CLIENT_SECRET.
//! [dashboard.oidc]
//! issuer = "https://login.example.com"          # KEYGATE_DASHBOARD_OIDC_ISSUER
//! client_id = "keygate-dashboard"               # KEYGATE_DASHBOARD_OIDC_CLIENT_ID
//! redirect_url = "https://keygate.example.com/dashboard/sign-in/oidc/callback"  # KEYGATE_DASHBOARD_OIDC_REDIRECT_URL
//! # Who gets which role: the first rule whose claim matches (a glob) wins;
//! # nobody else may sign in. KEYGATE_DASHBOARD_OIDC_ROLES: the same as JSON.
//! roles = [
//!   { claim = "email", match = "*@example.com", role = "viewer" },
//!   { claim = "groups", match = "platform-admins", role = "admin" },
//!   { claim = "email", match = "lead@example.com", role = "admin", org_id = "org_…", project_id = "proj_…" },
//! ]
//! ```

use super::{invalid, ConfigError, Env};
use secrecy::SecretString;
use serde::Deserialize;
use std::time::Duration;

/// The `[dashboard]` table of the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDashboard {
    /// `KEYGATE_DASHBOARD_SESSION_IDLE`.
    pub session_idle: Option<String>,
    /// `KEYGATE_DASHBOARD_SESSION_LIFETIME`.
    pub session_lifetime: Option<String>,
    /// `[dashboard.oidc]`: sign-in with an OpenID Provider.
    pub oidc: Option<RawOidc>,
}

/// `[dashboard.oidc]` of the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOidc {
    /// `KEYGATE_DASHBOARD_OIDC_ISSUER`.
    pub issuer: Option<String>,
    /// `KEYGATE_DASHBOARD_OIDC_CLIENT_ID`.
    pub client_id: Option<String>,
    /// `KEYGATE_DASHBOARD_OIDC_REDIRECT_URL`.
    pub redirect_url: Option<String>,
    /// `KEYGATE_DASHBOARD_OIDC_ROLES` (JSON).
    #[serde(default)]
    pub roles: Vec<OidcRoleRule>,
}

/// Who signing in through the OpenID Provider gets which role.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcRoleRule {
    /// The identity token's claim (`email`, `groups`, `sub`, …).
    pub claim: String,
    /// A glob its value (or, for an array, one element) must match.
    #[serde(rename = "match")]
    pub pattern: String,
    /// `viewer`, `member`, `admin` or `owner`.
    pub role: String,
    /// Scope: one organisation (default: the whole instance).
    #[serde(default)]
    pub org_id: Option<String>,
    /// Scope: one project of that organisation.
    #[serde(default)]
    pub project_id: Option<String>,
}

/// Validated `[dashboard.oidc]`.
#[derive(Clone, Debug)]
pub struct OidcConfig {
    /// The issuer, exactly as its identity tokens name it.
    pub issuer: String,
    /// This dashboard's client id at the issuer.
    pub client_id: String,
    /// Its client secret (`None`: a public client, PKCE only).
    pub client_secret: Option<SecretString>,
    /// Where the issuer sends the browser back.
    pub redirect_url: String,
    /// Role rules, in order.
    pub roles: Vec<OidcRoleRule>,
}

impl PartialEq for OidcConfig {
    fn eq(&self, other: &Self) -> bool {
        self.issuer == other.issuer
            && self.client_id == other.client_id
            && self.redirect_url == other.redirect_url
            && self.roles == other.roles
            && self.client_secret.is_some() == other.client_secret.is_some()
    }
}

impl Eq for OidcConfig {}

/// Validated `[dashboard]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DashboardConfig {
    /// A session unused this long is over.
    pub session_idle: Duration,
    /// A session this old is over.
    pub session_lifetime: Duration,
    /// Sign-in with an OpenID Provider, when configured.
    pub oidc: Option<OidcConfig>,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            session_idle: Duration::from_secs(30 * 60),
            session_lifetime: Duration::from_secs(12 * 3600),
            oidc: None,
        }
    }
}

fn duration(
    env: &dyn Env,
    field: &str,
    var: &str,
    file: Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let Some(text) = env.var(var).or(file) else {
        return Ok(default);
    };
    humantime::parse_duration(text.trim())
        .ok()
        .filter(|d| *d >= Duration::from_secs(60) && *d <= Duration::from_secs(30 * 86_400))
        .ok_or_else(|| {
            invalid(
                format!("dashboard.{field} / {var}"),
                format!(
                    "'{}' is not a duration between 1m and 30d",
                    crate::error::printable(&text)
                ),
            )
        })
}

/// Validate `[dashboard]` with its environment overrides.
pub fn validate(raw: RawDashboard, env: &dyn Env) -> Result<DashboardConfig, ConfigError> {
    let defaults = DashboardConfig::default();
    let session_idle = duration(
        env,
        "session_idle",
        "KEYGATE_DASHBOARD_SESSION_IDLE",
        raw.session_idle,
        defaults.session_idle,
    )?;
    let session_lifetime = duration(
        env,
        "session_lifetime",
        "KEYGATE_DASHBOARD_SESSION_LIFETIME",
        raw.session_lifetime,
        defaults.session_lifetime,
    )?;
    if session_idle > session_lifetime {
        return Err(invalid(
            "dashboard.session_idle / KEYGATE_DASHBOARD_SESSION_IDLE",
            "the idle timeout may not be longer than the session lifetime",
        ));
    }
    Ok(DashboardConfig {
        session_idle,
        session_lifetime,
        oidc: validate_oidc(raw.oidc.unwrap_or_default(), env)?,
    })
}

fn validate_oidc(raw: RawOidc, env: &dyn Env) -> Result<Option<OidcConfig>, ConfigError> {
    let issuer = env.var("KEYGATE_DASHBOARD_OIDC_ISSUER").or(raw.issuer);
    let client_id = env
        .var("KEYGATE_DASHBOARD_OIDC_CLIENT_ID")
        .or(raw.client_id);
    let redirect_url = env
        .var("KEYGATE_DASHBOARD_OIDC_REDIRECT_URL")
        .or(raw.redirect_url);
    let roles = match env.var("KEYGATE_DASHBOARD_OIDC_ROLES") {
        Some(text) => serde_json::from_str::<Vec<OidcRoleRule>>(&text).map_err(|e| {
            invalid(
                "dashboard.oidc.roles / KEYGATE_DASHBOARD_OIDC_ROLES",
                format!("not a JSON array of role rules: {e}"),
            )
        })?,
        None => raw.roles,
    };
    let Some(issuer) = issuer else {
        if client_id.is_some() || redirect_url.is_some() || !roles.is_empty() {
            return Err(invalid(
                "dashboard.oidc.issuer / KEYGATE_DASHBOARD_OIDC_ISSUER",
                "OpenID sign-in needs the issuer",
            ));
        }
        return Ok(None);
    };
    let setting = |field: &str, var: &str| format!("dashboard.oidc.{field} / {var}");
    let issuer_url = reqwest::Url::parse(&issuer).map_err(|e| {
        invalid(
            setting("issuer", "KEYGATE_DASHBOARD_OIDC_ISSUER"),
            format!("not a URL: {e}"),
        )
    })?;
    let loopback =
        |url: &reqwest::Url| matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if issuer_url.scheme() != "https" && !loopback(&issuer_url) {
        return Err(invalid(
            setting("issuer", "KEYGATE_DASHBOARD_OIDC_ISSUER"),
            "the issuer must be https (http only on loopback)",
        ));
    }
    let client_id = client_id.filter(|c| !c.trim().is_empty()).ok_or_else(|| {
        invalid(
            setting("client_id", "KEYGATE_DASHBOARD_OIDC_CLIENT_ID"),
            "OpenID sign-in needs the client id",
        )
    })?;
    let redirect_url = redirect_url.ok_or_else(|| {
        invalid(
            setting("redirect_url", "KEYGATE_DASHBOARD_OIDC_REDIRECT_URL"),
            "OpenID sign-in needs the URL the issuer sends the browser back to",
        )
    })?;
    let parsed = reqwest::Url::parse(&redirect_url).map_err(|e| {
        invalid(
            setting("redirect_url", "KEYGATE_DASHBOARD_OIDC_REDIRECT_URL"),
            format!("not a URL: {e}"),
        )
    })?;
    if !parsed.path().ends_with("/dashboard/sign-in/oidc/callback")
        || (parsed.scheme() != "https" && !loopback(&parsed))
    {
        return Err(invalid(
            setting("redirect_url", "KEYGATE_DASHBOARD_OIDC_REDIRECT_URL"),
            "must be this gateway's https://…/dashboard/sign-in/oidc/callback (http only on loopback)",
        ));
    }
    if roles.is_empty() {
        return Err(invalid(
            setting("roles", "KEYGATE_DASHBOARD_OIDC_ROLES"),
            "at least one role rule is needed (nobody could sign in)",
        ));
    }
    for rule in &roles {
        if crate::admin::Role::parse(&rule.role).is_none() {
            return Err(invalid(
                setting("roles", "KEYGATE_DASHBOARD_OIDC_ROLES"),
                format!("unknown role '{}'", crate::error::printable(&rule.role)),
            ));
        }
        if globset::Glob::new(&rule.pattern).is_err() || rule.claim.is_empty() {
            return Err(invalid(
                setting("roles", "KEYGATE_DASHBOARD_OIDC_ROLES"),
                format!("'{}' is not a glob", crate::error::printable(&rule.pattern)),
            ));
        }
        if rule.project_id.is_some() && rule.org_id.is_none() {
            return Err(invalid(
                setting("roles", "KEYGATE_DASHBOARD_OIDC_ROLES"),
                "a rule scoped to a project names its organisation too",
            ));
        }
    }
    Ok(Some(OidcConfig {
        issuer,
        client_id,
        client_secret: env
            .var("KEYGATE_DASHBOARD_OIDC_CLIENT_SECRET")
            .map(SecretString::from),
        redirect_url,
        roles,
    }))
}
