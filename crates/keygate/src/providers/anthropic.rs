//! Anthropic: `x-api-key` plus `anthropic-version`.

use http::HeaderMap;
use secrecy::{ExposeSecret, SecretString};

/// The API version sent when the client names none.
pub const DEFAULT_VERSION: &str = "2023-06-01";

/// The upstream Messages request, authenticated with the provider key.
pub fn request(
    client: &reqwest::Client,
    url: &reqwest::Url,
    api_key: &SecretString,
) -> reqwest::RequestBuilder {
    client
        .post(url.clone())
        .header("x-api-key", api_key.expose_secret())
}

/// Add `anthropic-version`: the client's when it sent one (the Anthropic
/// SDK does), else the default.
pub fn versioned(
    request: reqwest::RequestBuilder,
    client_headers: &HeaderMap,
) -> reqwest::RequestBuilder {
    match client_headers.get("anthropic-version") {
        Some(version) => request.header("anthropic-version", version),
        None => request.header("anthropic-version", DEFAULT_VERSION),
    }
}
