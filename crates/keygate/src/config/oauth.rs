//! `[oauth]`: the token issuer.
//!
//! ```toml
//! [oauth]
//! issuer = "https://gateway.example.com"  # KEYGATE_OAUTH_ISSUER (default http://<listen address>)
//! token_ttl = "1h"                        # KEYGATE_TOKEN_TTL: lifetime when none is asked for
//! max_token_ttl = "12h"                   # KEYGATE_TOKEN_MAX_TTL: the longest a token may live
//! signing_key_rotation = "30d"            # KEYGATE_SIGNING_KEY_ROTATION: a new signing key this often
//! ```
//!
//! Every node of one deployment must name the same issuer: it is the `iss`
//! of every token, the audience tokens are checked against, and what
//! `/.well-known/oauth-authorization-server` advertises.

use super::{duration, invalid, ConfigError, Env};
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

/// The `[oauth]` table of the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOAuth {
    /// `KEYGATE_OAUTH_ISSUER`
    pub issuer: Option<String>,
    /// `KEYGATE_TOKEN_TTL`
    pub token_ttl: Option<String>,
    /// `KEYGATE_TOKEN_MAX_TTL`
    pub max_token_ttl: Option<String>,
    /// `KEYGATE_SIGNING_KEY_ROTATION`
    pub signing_key_rotation: Option<String>,
}

/// Validated `[oauth]`.
#[derive(Clone, Debug)]
pub struct OAuthConfig {
    /// The issuer URL: `iss` of every token and its default audience.
    pub issuer: String,
    /// No issuer was configured: it is the listen address, and the address
    /// actually bound once the listener is up (port 0 picks one).
    pub issuer_from_listen: bool,
    /// Lifetime of a token when the request names none.
    pub token_ttl: Duration,
    /// The longest lifetime a token may be given.
    pub max_token_ttl: Duration,
    /// How long one signing key signs before the next takes over.
    pub signing_key_rotation: Duration,
}

impl OAuthConfig {
    /// The token endpoint's URL.
    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth/token", self.issuer)
    }
}

/// Validate `[oauth]` over the environment.
pub fn validate(
    raw: RawOAuth,
    listen: SocketAddr,
    env: &dyn Env,
) -> Result<OAuthConfig, ConfigError> {
    let configured = env.var("KEYGATE_OAUTH_ISSUER").or(raw.issuer);
    let issuer_from_listen = configured.is_none();
    let issuer = configured.unwrap_or_else(|| format!("http://{listen}"));
    let issuer = issuer.trim_end_matches('/').to_string();
    let parsed = reqwest::Url::parse(&issuer)
        .ok()
        .filter(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some_and(|h| !h.is_empty())
                && u.query().is_none()
                && u.fragment().is_none()
        })
        .ok_or_else(|| {
            invalid(
                "oauth.issuer / KEYGATE_OAUTH_ISSUER",
                "must be an http:// or https:// URL without query or fragment",
            )
        })?;
    // A deployment behind a TLS-terminating proxy may name an http issuer
    // internally; say so rather than refuse.
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if parsed.scheme() == "http" && !loopback {
        tracing::warn!(issuer = %issuer, "the OAuth issuer is a plain http:// URL on a non-loopback host; serve keygate behind TLS and set KEYGATE_OAUTH_ISSUER to its https:// URL");
    }
    let token_ttl = duration(env, "KEYGATE_TOKEN_TTL", raw.token_ttl, "1h")?;
    let max_token_ttl = duration(env, "KEYGATE_TOKEN_MAX_TTL", raw.max_token_ttl, "12h")?;
    if token_ttl > max_token_ttl {
        return Err(invalid(
            "oauth.token_ttl / KEYGATE_TOKEN_TTL",
            "must not be longer than max_token_ttl (KEYGATE_TOKEN_MAX_TTL)",
        ));
    }
    let signing_key_rotation = duration(
        env,
        "KEYGATE_SIGNING_KEY_ROTATION",
        raw.signing_key_rotation,
        "30d",
    )?;
    if signing_key_rotation < Duration::from_secs(3600) {
        return Err(invalid(
            "oauth.signing_key_rotation / KEYGATE_SIGNING_KEY_ROTATION",
            "must be at least 1h",
        ));
    }
    Ok(OAuthConfig {
        issuer,
        issuer_from_listen,
        token_ttl,
        max_token_ttl,
        signing_key_rotation,
    })
}
