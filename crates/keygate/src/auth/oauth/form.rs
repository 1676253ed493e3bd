//! Reading `application/x-www-form-urlencoded` requests (RFC 6749 §3.2:
//! no parameter twice, except the ones RFC 8707 and 8693 let repeat) and
//! client authentication (§2.3.1: HTTP Basic or the body, never both).

use super::OAuthError;
use crate::auth::KeyEntry;
use crate::server::AppState;
use axum::body::Body;
use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use std::sync::Arc;

/// Parameters that may appear more than once.
const REPEATABLE: &[&str] = &["resource", "audience"];
/// Most parameters accepted.
const MAX_PARAMS: usize = 64;

/// A parsed form.
#[derive(Debug, Default)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// Read and parse the body: the right content type, at most `limit`
    /// bytes, valid UTF-8, no repeated parameter.
    pub async fn read(headers: &HeaderMap, body: Body, limit: usize) -> Result<Form, OAuthError> {
        let form_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !form_type {
            return Err(OAuthError::invalid_request(
                "The body must be application/x-www-form-urlencoded.",
            ));
        }
        let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
            OAuthError::invalid_request(format!(
                "The body is larger than {limit} bytes, or was cut off."
            ))
        })?;
        Form::parse(&bytes)
    }

    /// Parse form bytes.
    pub fn parse(bytes: &[u8]) -> Result<Form, OAuthError> {
        if std::str::from_utf8(bytes).is_err() {
            return Err(OAuthError::invalid_request("The body is not valid UTF-8."));
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (name, value) in form_urlencoded::parse(bytes) {
            if pairs.len() >= MAX_PARAMS {
                return Err(OAuthError::invalid_request("Too many parameters."));
            }
            if value.is_empty() {
                // RFC 6749 §3.1: empty parameters are treated as omitted.
                continue;
            }
            if !REPEATABLE.contains(&name.as_ref()) && pairs.iter().any(|(n, _)| *n == name) {
                return Err(OAuthError::invalid_request(format!(
                    "The parameter '{}' is repeated.",
                    crate::error::printable(&name)
                )));
            }
            pairs.push((name.into_owned(), value.into_owned()));
        }
        Ok(Form { pairs })
    }

    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeatable parameter.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether `name` was given.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The value of `name`, or `invalid_request` naming it.
    pub fn required(&self, name: &'static str) -> Result<&str, OAuthError> {
        self.get(name).ok_or_else(|| {
            OAuthError::invalid_request(format!("The parameter '{name}' is required."))
        })
    }
}

/// The client id and secret the request authenticates with, if any.
fn client_credentials<'a>(
    headers: &'a HeaderMap,
    form: &'a Form,
) -> Result<Option<(String, String)>, OAuthError> {
    let basic = match headers.get(header::AUTHORIZATION) {
        Some(value) => {
            let text = value.to_str().unwrap_or_default();
            match text.split_once(' ') {
                Some((scheme, encoded)) if scheme.eq_ignore_ascii_case("basic") => {
                    let decoded = B64
                        .decode(encoded.trim())
                        .ok()
                        .and_then(|b| String::from_utf8(b).ok())
                        .ok_or_else(|| {
                            OAuthError::invalid_client("The Basic credentials are malformed.")
                        })?;
                    let (id, secret) = decoded.split_once(':').ok_or_else(|| {
                        OAuthError::invalid_client("The Basic credentials are malformed.")
                    })?;
                    // §2.3.1: both parts are form-urlencoded first.
                    let unescape = |s: &str| {
                        form_urlencoded::parse(format!("v={s}").as_bytes())
                            .next()
                            .map(|(_, v)| v.into_owned())
                            .unwrap_or_default()
                    };
                    Some((unescape(id), unescape(secret)))
                }
                _ => None,
            }
        }
        None => None,
    };
    let posted = form.get("client_secret").map(|secret| {
        (
            form.get("client_id").unwrap_or_default().to_string(),
            secret.to_string(),
        )
    });
    match (basic, posted) {
        (Some(_), Some(_)) => Err(OAuthError::invalid_request(
            "Authenticate the client one way only: HTTP Basic or the body, not both.",
        )),
        (Some(basic), None) => {
            if form.get("client_id").is_some_and(|id| id != basic.0) {
                return Err(OAuthError::invalid_request(
                    "client_id in the body differs from the authenticated client.",
                ));
            }
            Ok(Some(basic))
        }
        (None, posted) => Ok(posted),
    }
}

/// The OAuth client the request authenticates as: `None` when it presents
/// no client credentials; `invalid_client` when they are wrong, or the
/// credential is not an OAuth client.
pub fn authenticate_client(
    state: &AppState,
    headers: &HeaderMap,
    form: &Form,
    now: i64,
) -> Result<Option<Arc<KeyEntry>>, OAuthError> {
    let Some((client_id, secret)) = client_credentials(headers, form)? else {
        return Ok(None);
    };
    let refused = || OAuthError::invalid_client("Client authentication failed.");
    let entry = state.keys.verify(&secret, now).map_err(|e| {
        if e.code == "invalid_api_key" {
            refused()
        } else {
            OAuthError::invalid_client(format!("Client authentication failed: {}", e.message))
        }
    })?;
    if entry.id != client_id || !super::is_client(entry.kind) {
        return Err(refused());
    }
    Ok(Some(entry))
}
