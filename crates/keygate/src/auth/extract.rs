//! Finding the credential in a request, in every header style the official
//! SDKs use, and refusing credentials placed in the URL.

use crate::error::ApiError;
use http::HeaderMap;

/// The credential a request presents, from (in order) `Authorization:
/// Bearer`, `x-api-key` (Anthropic), `x-goog-api-key` (Google) or `api-key`
/// (Azure). `None` when there is none.
pub fn presented_credential(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        let text = value.to_str().ok()?;
        let (scheme, token) = text.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty());
    }
    ["x-api-key", "x-goog-api-key", "api-key"]
        .iter()
        .find_map(|name| headers.get(*name))
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Query parameters that carry credentials in other APIs.
const CREDENTIAL_PARAMS: &[&str] = &[
    "key",
    "api_key",
    "api-key",
    "apikey",
    "access_token",
    "token",
];

/// Refuse a request that carries a credential in its URL query: URLs end up
/// in access logs, browser history and proxies.
pub fn refuse_credential_in_query(query: Option<&str>) -> Result<(), ApiError> {
    let Some(query) = query else { return Ok(()) };
    let leaked = query.split('&').any(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        CREDENTIAL_PARAMS
            .iter()
            .any(|p| name.eq_ignore_ascii_case(p))
            || value.starts_with(crate::auth::key::PREFIX)
    });
    if leaked {
        return Err(ApiError::unauthorized(
            "credential_in_query",
            "Credentials in the URL query string are refused, because URLs are recorded in logs, \
             browser history and proxies. Send the key in the 'Authorization: Bearer' header (or \
             x-api-key / x-goog-api-key / api-key) instead, and consider this key exposed.",
        ));
    }
    Ok(())
}

/// The credential a request must carry, or the 401 that says it has none.
pub fn required_credential(headers: &HeaderMap) -> Result<&str, ApiError> {
    presented_credential(headers).ok_or_else(|| {
        ApiError::unauthorized(
            "missing_api_key",
            "No API key provided. Send a keygate key in the 'Authorization: Bearer' header \
             (or x-api-key / x-goog-api-key / api-key).",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(name: &'static str, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn every_header_style_is_read() {
        assert_eq!(
            presented_credential(&with("authorization", "Bearer abc")),
            Some("abc")
        );
        assert_eq!(
            presented_credential(&with("authorization", "bearer  abc ")),
            Some("abc")
        );
        assert_eq!(presented_credential(&with("x-api-key", "abc")), Some("abc"));
        assert_eq!(
            presented_credential(&with("x-goog-api-key", "abc")),
            Some("abc")
        );
        assert_eq!(presented_credential(&with("api-key", "abc")), Some("abc"));
        assert_eq!(
            presented_credential(&with("authorization", "Basic abc")),
            None
        );
        assert_eq!(
            presented_credential(&with("authorization", "Bearer ")),
            None
        );
        assert_eq!(presented_credential(&HeaderMap::new()), None);
    }

    #[test]
    fn query_credentials_are_refused() {
        assert!(refuse_credential_in_query(None).is_ok());
        assert!(refuse_credential_in_query(Some("alt=sse")).is_ok());
        assert!(refuse_credential_in_query(Some("alt=sse&key=abc")).is_err());
        assert!(refuse_credential_in_query(Some("API_KEY=abc")).is_err());
        assert!(refuse_credential_in_query(Some("x=kg_live_abc")).is_err());
    }
}
