//! OpenAI and every OpenAI-compatible server: Bearer authentication.

use super::Operation;
use secrecy::{ExposeSecret, SecretString};

/// The upstream request for `op`, authenticated with the provider key.
pub fn request(
    client: &reqwest::Client,
    base_url: &str,
    api_key: &SecretString,
    op: Operation,
) -> reqwest::RequestBuilder {
    let path = match op {
        Operation::Embeddings => "/embeddings",
        _ => "/chat/completions",
    };
    client
        .post(format!("{base_url}{path}"))
        .bearer_auth(api_key.expose_secret())
}
