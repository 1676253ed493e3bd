//! Azure OpenAI: deployments in the path, `api-version` in the query, and
//! either an `api-key` or an Azure AD (Entra ID) access token obtained with
//! client credentials, cached and renewed before it expires.

use crate::config::{AzureAdConfig, ProviderConfig};
use crate::error::ApiError;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::Mutex;
use tokio::time::{Duration, Instant};

/// Scope of Azure OpenAI data-plane tokens.
const SCOPE: &str = "https://cognitiveservices.azure.com/.default";

/// `{base}/openai/deployments/{deployment}/{operation}?api-version=…`.
pub fn url(
    base: &reqwest::Url,
    config: &ProviderConfig,
    model: &str,
    operation: &str,
) -> Result<reqwest::Url, ApiError> {
    let deployment = config
        .deployments
        .get(model)
        .map(String::as_str)
        .unwrap_or(model);
    let mut url = base.clone();
    {
        let mut segments = url
            .path_segments_mut()
            .map_err(|()| ApiError::bad_gateway("The upstream provider's URL is unusable."))?;
        segments
            .pop_if_empty()
            .extend(["openai", "deployments", deployment]);
        segments.extend(operation.split('/'));
    }
    let version = config.api_version.as_deref().unwrap_or_default();
    url.query_pairs_mut().append_pair("api-version", version);
    Ok(url)
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

#[derive(Debug)]
struct Cached {
    token: Arc<SecretString>,
    renew_at: Instant,
}

/// How long a token with `lifetime` is used before a new one is fetched:
/// two thirds of its life, and never closer than a minute to its expiry
/// (clock skew, slow requests), so a request never carries an expired token.
pub fn renew_after(lifetime: Duration) -> Duration {
    let early = (lifetime / 3).max(Duration::from_secs(60)).min(lifetime);
    lifetime - early
}

/// Azure AD tokens for one application, fetched on first use and renewed
/// before they expire (at two thirds of their lifetime, and at least a
/// minute early), so no request waits on, or fails for, an expired token.
#[derive(Debug)]
pub struct TokenSource {
    config: AzureAdConfig,
    http: reqwest::Client,
    cached: Mutex<Option<Cached>>,
}

/// Why a token could not be had (never contains the secret).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token endpoint could not be reached.
    #[error("token endpoint unreachable: {0}")]
    Unreachable(String),
    /// It refused the client credentials.
    #[error("token endpoint refused the client credentials (status {0})")]
    Refused(u16),
    /// It answered something else.
    #[error("token endpoint answered an unexpected body")]
    Malformed,
    /// The client secret is unavailable.
    #[error("client secret unavailable: {0}")]
    Secret(String),
}

impl TokenSource {
    /// A source for `config`.
    pub fn new(config: AzureAdConfig) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        TokenSource {
            config,
            http,
            cached: Mutex::new(None),
        }
    }

    /// A valid access token.
    pub async fn token(&self) -> Result<Arc<SecretString>, TokenError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            if Instant::now() < c.renew_at {
                return Ok(Arc::clone(&c.token));
            }
        }
        let secret = match self.config.client_secret.ready() {
            Some(credential) => credential
                .current()
                .await
                .map_err(|e| TokenError::Secret(e.to_string()))?,
            None => return Err(TokenError::Secret("not resolved".into())),
        };
        let response = self
            .http
            .post(&self.config.token_url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.config.client_id.as_str()),
                ("client_secret", secret.expose_secret()),
                ("scope", SCOPE),
            ])
            .send()
            .await
            .map_err(|e| TokenError::Unreachable(e.without_url().to_string()))?;
        if !response.status().is_success() {
            // A rotated client secret (file, command, store) is re-read.
            if let Some(credential) = self.config.client_secret.ready() {
                credential.invalidate();
            }
            return Err(TokenError::Refused(response.status().as_u16()));
        }
        let body: TokenResponse = response.json().await.map_err(|_| TokenError::Malformed)?;
        let token = Arc::new(SecretString::from(body.access_token));
        *cached = Some(Cached {
            token: Arc::clone(&token),
            renew_at: Instant::now() + renew_after(Duration::from_secs(body.expires_in)),
        });
        Ok(token)
    }

    /// Drop the cached token (the provider refused it).
    pub fn forget(&self) {
        if let Ok(mut cached) = self.cached.try_lock() {
            *cached = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_renewed_well_before_they_expire() {
        let hour = Duration::from_secs(3600);
        assert_eq!(renew_after(hour), Duration::from_secs(2400));
        assert_eq!(
            renew_after(Duration::from_secs(120)),
            Duration::from_secs(60)
        );
        // A token shorter-lived than the margin is fetched afresh each time.
        assert_eq!(renew_after(Duration::from_secs(30)), Duration::ZERO);
        assert_eq!(renew_after(Duration::ZERO), Duration::ZERO);
    }
}
