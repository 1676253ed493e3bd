//! OpenAI and every OpenAI-compatible server: Bearer authentication.

use secrecy::{ExposeSecret, SecretString};

/// The upstream request to `url`, authenticated with the provider key.
pub fn request(
    client: &reqwest::Client,
    url: &reqwest::Url,
    api_key: &SecretString,
) -> reqwest::RequestBuilder {
    client
        .post(url.clone())
        .bearer_auth(api_key.expose_secret())
}
