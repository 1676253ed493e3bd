//! Google Vertex AI: Gemini models (`publishers/google`) and Anthropic
//! models (`publishers/anthropic`), authenticated with access tokens that
//! `gcp_auth` obtains from a service-account key file (a signed JWT
//! assertion exchanged at the key file's `token_uri`), caches and renews
//! before expiry.

use crate::config::VertexConfig;
use crate::error::ApiError;
use bytes::Bytes;
use gcp_auth::TokenProvider;
use secrecy::SecretString;
use std::path::Path;
use std::sync::Arc;

/// OAuth scope for Vertex AI.
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// The `anthropic_version` Vertex requires in the body.
pub const ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// Whether a Vertex model is Anthropic's (and so speaks Messages).
pub fn is_anthropic(model: &str) -> bool {
    model.starts_with("claude")
}

/// Service-account access tokens.
#[derive(Debug)]
pub struct TokenSource {
    path: std::path::PathBuf,
    account: std::sync::RwLock<Arc<gcp_auth::CustomServiceAccount>>,
}

impl TokenSource {
    /// Read a service-account key file.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let account = gcp_auth::CustomServiceAccount::from_file(path)
            .map_err(|e| format!("service-account key file {}: {e}", path.display()))?;
        Ok(TokenSource {
            path: path.to_path_buf(),
            account: std::sync::RwLock::new(Arc::new(account)),
        })
    }

    /// A valid access token (cached by `gcp_auth` until shortly before expiry).
    pub async fn token(&self) -> Result<SecretString, gcp_auth::Error> {
        let account = match self.account.read() {
            Ok(account) => Arc::clone(&account),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        let token = account.token(&[SCOPE]).await?;
        Ok(SecretString::from(token.as_str().to_string()))
    }

    /// Vertex refused the token: drop it (and re-read the key file, which
    /// may have been rotated) so the next call signs a fresh assertion.
    pub fn forget(&self) {
        match gcp_auth::CustomServiceAccount::from_file(&self.path) {
            Ok(account) => {
                if let Ok(mut slot) = self.account.write() {
                    *slot = Arc::new(account);
                }
            }
            Err(error) => {
                tracing::warn!(%error, "service-account key file could not be re-read");
            }
        }
    }
}

fn model_url(
    base: &reqwest::Url,
    config: &VertexConfig,
    publisher: &str,
    model_action: &str,
) -> Result<reqwest::Url, ApiError> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| ApiError::bad_gateway("The upstream provider's URL is unusable."))?
        .pop_if_empty()
        .extend([
            "v1",
            "projects",
            &config.project,
            "locations",
            &config.location,
            "publishers",
            publisher,
            "models",
            model_action,
        ]);
    Ok(url)
}

/// `…/publishers/google/models/{model}:generateContent` (or the SSE stream).
pub fn gemini_url(
    base: &reqwest::Url,
    config: &VertexConfig,
    model: &str,
    stream: bool,
) -> Result<reqwest::Url, ApiError> {
    let action = if stream {
        "streamGenerateContent"
    } else {
        "generateContent"
    };
    let mut url = model_url(base, config, "google", &format!("{model}:{action}"))?;
    if stream {
        url.set_query(Some("alt=sse"));
    }
    Ok(url)
}

/// `…/publishers/anthropic/models/{model}:rawPredict` (or `:streamRawPredict`).
pub fn anthropic_url(
    base: &reqwest::Url,
    config: &VertexConfig,
    model: &str,
    stream: bool,
) -> Result<reqwest::Url, ApiError> {
    let action = if stream {
        "streamRawPredict"
    } else {
        "rawPredict"
    };
    model_url(base, config, "anthropic", &format!("{model}:{action}"))
}

/// An Anthropic Messages body as Vertex wants it: the model is in the URL,
/// and `anthropic_version` is in the body.
pub fn anthropic_body(body: &Bytes) -> Result<Bytes, ApiError> {
    let mut value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| ApiError::invalid_request("The request body is not valid JSON."))?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| ApiError::invalid_request("The request body must be a JSON object."))?;
    object.remove("model");
    object.insert("anthropic_version".into(), ANTHROPIC_VERSION.into());
    serde_json::to_vec(&value)
        .map(Bytes::from)
        .map_err(|_| ApiError::invalid_request("The request body could not be re-encoded."))
}
