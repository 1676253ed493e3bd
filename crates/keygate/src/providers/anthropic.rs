//! Anthropic: `x-api-key` plus `anthropic-version`.

use secrecy::{ExposeSecret, SecretString};

/// The API version sent when the client names none.
pub const DEFAULT_VERSION: &str = "2023-06-01";

/// The upstream Messages request, authenticated with the provider key.
/// `anthropic-version` is added by the caller (the client's, or the default).
pub fn request(
    client: &reqwest::Client,
    url: &reqwest::Url,
    api_key: &SecretString,
) -> reqwest::RequestBuilder {
    client
        .post(url.clone())
        .header("x-api-key", api_key.expose_secret())
}
