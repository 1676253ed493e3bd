//! Google AI Studio (the Gemini API): `x-goog-api-key`, model in the path.

use crate::error::ApiError;
use secrecy::{ExposeSecret, SecretString};

/// `{base}/v1beta/models/{model}:generateContent`, or
/// `:streamGenerateContent?alt=sse` for a stream. The model becomes one
/// percent-encoded path segment, so no model name can reach another path.
pub fn url(base: &reqwest::Url, model: &str, stream: bool) -> Result<reqwest::Url, ApiError> {
    let action = if stream {
        "streamGenerateContent"
    } else {
        "generateContent"
    };
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| ApiError::bad_gateway("The upstream provider's URL is unusable."))?
        .pop_if_empty()
        .extend(["v1beta", "models", &format!("{model}:{action}")]);
    if stream {
        url.set_query(Some("alt=sse"));
    }
    Ok(url)
}

/// The upstream request, authenticated with the provider key.
pub fn request(
    client: &reqwest::Client,
    url: reqwest::Url,
    api_key: &SecretString,
) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header("x-goog-api-key", api_key.expose_secret())
}
