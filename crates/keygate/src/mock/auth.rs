//! Credentials the provider routes check, and the token endpoints that issue
//! them:
//!
//! - Bedrock: AWS Signature V4, recomputed from the request (canonical URI
//!   double-encoded, as for every service but S3);
//! - Azure OpenAI: `api-key`, or `Authorization: Bearer` with a token from
//!   the Azure AD endpoint `POST /{tenant}/oauth2/v2.0/token`;
//! - Vertex AI: `Authorization: Bearer` with a token from Google's OAuth
//!   endpoint `POST /token` (JWT-bearer grant);
//! - Gemini AI Studio: `x-goog-api-key` (or `?key=`).
//!
//! Issued tokens are self-verifying (expiry plus an HMAC under a
//! per-process key), so the mock keeps no token table.

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use hmac::Mac as _;
use serde_json::{json, Value};
use sha2::Digest as _;

use super::api::{self, ApiError, Ctx, Flavor, Reply};
use super::control::{Shared, TokenError, TokenKind};

/// How far a signed request's `x-amz-date` may be from now.
const SIGV4_SKEW_SECONDS: i64 = 5 * 60;

// ------------------------------------------------------------- encoding --

/// Percent-encode every byte but the unreserved ones (and `/` when
/// `keep_slash`), with upper-case hex, as SigV4 requires.
fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decode `application/x-www-form-urlencoded` text (`+` is a space; bad
/// escapes are kept as they are).
pub(super) fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(v) = hex {
                    out.push(v);
                    i += 3;
                    continue;
                }
                out.push(b);
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The fields of a form body (last one wins).
fn form(body: &[u8]) -> std::collections::HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    match hmac::Hmac::<sha2::Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        // HMAC takes keys of any length; unreachable.
        Err(_) => Vec::new(),
    }
}

// ---------------------------------------------------------------- SigV4 --

fn aws_error(kind: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::FORBIDDEN,
        message: message.into(),
        param: None,
        code: Some(kind),
    }
}

const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

/// Verify the request's SigV4 signature (service `bedrock`) against the
/// configured credentials.
pub(super) fn check_sigv4(ctx: &Ctx<'_>) -> Result<(), ApiError> {
    let Some(authorization) = ctx.header("authorization") else {
        return Err(aws_error(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    let Some(fields) = authorization.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return Err(aws_error(
            "IncompleteSignatureException",
            "Authorization header requires the AWS4-HMAC-SHA256 algorithm.",
        ));
    };
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for field in fields.split(',') {
        match field.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed_headers = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => {}
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(aws_error(
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters.",
        ));
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [key_id, date, region, service, terminator] = scope.as_slice() else {
        return Err(aws_error(
            "IncompleteSignatureException",
            format!("Credential should be scoped to a valid region, not '{credential}'."),
        ));
    };
    let auth = ctx.state.auth();
    if *key_id != auth.aws_access_key_id {
        return Err(aws_error(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    if *service != "bedrock" || *terminator != "aws4_request" {
        return Err(aws_error(
            "InvalidSignatureException",
            format!("Credential should be scoped to correct service: 'bedrock', not '{service}'."),
        ));
    }
    let Some(amz_date) = ctx.header("x-amz-date") else {
        return Err(aws_error(
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ));
    };
    let Ok(when) = chrono::NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ") else {
        return Err(aws_error(
            "IncompleteSignatureException",
            format!("Date must be in ISO-8601 'basic format'. Got '{amz_date}'."),
        ));
    };
    if !amz_date.starts_with(date) {
        return Err(aws_error(
            "InvalidSignatureException",
            format!("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{date}' != '{amz_date}'"),
        ));
    }
    let now = chrono::Utc::now().timestamp();
    let age = now - when.and_utc().timestamp();
    if age > SIGV4_SKEW_SECONDS {
        return Err(aws_error(
            "InvalidSignatureException",
            format!("Signature expired: {amz_date} is now earlier than 5 minutes ago."),
        ));
    }
    if age < -SIGV4_SKEW_SECONDS {
        return Err(aws_error(
            "InvalidSignatureException",
            format!("Signature not yet current: {amz_date} is more than 5 minutes in the future."),
        ));
    }
    let token = ctx.header("x-amz-security-token");
    if token != auth.aws_session_token.as_deref() {
        return Err(aws_error(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    let body_hash = hex::encode(sha2::Sha256::digest(ctx.body));
    let payload_hash = match ctx.header("x-amz-content-sha256") {
        Some("UNSIGNED-PAYLOAD") => Cow::Borrowed("UNSIGNED-PAYLOAD"),
        Some(h) if h.eq_ignore_ascii_case(&body_hash) => Cow::Borrowed(h),
        Some(_) => {
            return Err(aws_error(
                "InvalidSignatureException",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            ))
        }
        None => Cow::Owned(body_hash),
    };

    let path = if ctx.path.is_empty() { "/" } else { ctx.path };
    let canonical_uri = uri_encode(path, true);
    let mut query: Vec<(String, String)> = ctx
        .query
        .unwrap_or_default()
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (
                uri_encode(&form_decode(k), false),
                uri_encode(&form_decode(v), false),
            )
        })
        .collect();
    query.sort();
    let canonical_query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut canonical_headers = String::new();
    for name in signed_headers.split(';') {
        let values: Vec<String> = ctx
            .headers
            .get_all(name)
            .iter()
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let value = if values.is_empty() && name == "host" {
            ctx.uri
                .authority()
                .map(|a| a.to_string())
                .unwrap_or_default()
        } else {
            values.join(",")
        };
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(&value);
        canonical_headers.push('\n');
    }
    let canonical_request = format!(
        "{}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}",
        ctx.method.as_str()
    );
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(sha2::Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = hmac_sha256(
        format!("AWS4{}", auth.aws_secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    for part in [*region, *service, "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    let expected = hex::encode(hmac_sha256(&key, string_to_sign.as_bytes()));
    use subtle::ConstantTimeEq as _;
    if bool::from(expected.as_bytes().ct_eq(signature.as_bytes())) {
        Ok(())
    } else {
        Err(aws_error("InvalidSignatureException", SIGNATURE_MISMATCH))
    }
}

// ------------------------------------------------------------- Azure AD --

/// An Azure AD error document.
fn aad_error(status: StatusCode, error: &str, code: u32, description: &str) -> Reply {
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
    let trace = uuid::Uuid::from_u128(rand::random()).to_string();
    api::raw_json(
        status,
        &json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description} Trace ID: {trace} Timestamp: {now}"),
            "error_codes": [code],
            "timestamp": now,
            "trace_id": trace,
            "correlation_id": uuid::Uuid::from_u128(rand::random()).to_string(),
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

/// `POST /{tenant}/oauth2/v2.0/token`: the client-credentials grant.
pub(super) async fn azure_token(State(state): State<Arc<Shared>>, request: Request) -> Response {
    api::handle(state, Flavor::OpenAi, request, |ctx| {
        let fields = form(ctx.body);
        let get = |k: &str| fields.get(k).map(String::as_str);
        let auth = ctx.state.auth();
        match get("grant_type") {
            Some("client_credentials") => {}
            None => {
                return aad_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    900_144,
                    "The request body must contain the following parameter: 'grant_type'.",
                )
            }
            Some(other) => {
                return aad_error(
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    70_003,
                    &format!("The app requested an unsupported grant type '{other}'."),
                )
            }
        }
        let Some(client_id) = get("client_id") else {
            return aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900_144,
                "The request body must contain the following parameter: 'client_id'.",
            );
        };
        if client_id != auth.azure_client_id {
            return aad_error(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                700_016,
                &format!("Application with identifier '{client_id}' was not found in the directory."),
            );
        }
        let Some(scope) = get("scope") else {
            return aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900_144,
                "The request body must contain the following parameter: 'scope'.",
            );
        };
        if !scope.ends_with("/.default") {
            return aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                1_002_012,
                &format!("The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
            );
        }
        use subtle::ConstantTimeEq as _;
        let secret_ok = get("client_secret").is_some_and(|s| {
            bool::from(s.as_bytes().ct_eq(auth.azure_client_secret.as_bytes()))
        });
        if !secret_ok {
            return aad_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7_000_215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app.",
            );
        }
        let lifetime = auth.azure_token_lifetime_s;
        let token = ctx.state.issue_token(TokenKind::AzureAd, lifetime);
        api::json(&json!({
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token,
        }))
    })
    .await
}

fn azure_error(status: StatusCode, message: &str) -> Reply {
    api::raw_json(
        status,
        &json!({"error": {"code": status.as_u16().to_string(), "message": message}}),
    )
}

/// Azure OpenAI's checks: `api-version` present, then `api-key` (any value
/// unless `azure_api_key` is configured) or an unexpired Azure AD token;
/// the error response when they fail.
pub(super) fn azure_denial(ctx: &Ctx<'_>) -> Option<Reply> {
    if ctx.query_param("api-version").is_none_or(str::is_empty) {
        return Some(azure_error(StatusCode::NOT_FOUND, "Resource not found"));
    }
    if let Some(token) = ctx.bearer() {
        return match ctx.state.check_token(TokenKind::AzureAd, token) {
            Ok(()) => None,
            Err(TokenError::Expired) => Some(azure_error(
                StatusCode::UNAUTHORIZED,
                "Unauthorized. Access token has expired.",
            )),
            Err(TokenError::Invalid) => Some(azure_error(
                StatusCode::UNAUTHORIZED,
                "Unauthorized. Access token is missing, invalid, audience is incorrect (https://cognitiveservices.azure.com), or have expired.",
            )),
        };
    }
    let denied = || {
        azure_error(
            StatusCode::UNAUTHORIZED,
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
        )
    };
    match (ctx.header("api-key"), ctx.state.auth().azure_api_key) {
        (None | Some(""), _) => Some(denied()),
        (Some(_), None) => None,
        // Several keys, comma-separated, model a rotation's overlap.
        (Some(given), Some(want)) if want.split(',').any(|k| k == given) => None,
        (Some(_), Some(_)) => Some(denied()),
    }
}

// --------------------------------------------------------- Google OAuth --

fn oauth_error(error: &str, description: &str) -> Reply {
    api::raw_json(
        StatusCode::BAD_REQUEST,
        &json!({"error": error, "error_description": description}),
    )
}

fn b64url_json(part: &str) -> Option<Value> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `POST /token`: Google's OAuth endpoint, JWT-bearer grant (service
/// accounts). The assertion's shape and claims are checked; its signature
/// is not.
pub(super) async fn google_token(State(state): State<Arc<Shared>>, request: Request) -> Response {
    api::handle(state, Flavor::Gemini, request, |ctx| {
        let fields = form(ctx.body);
        match fields.get("grant_type").map(String::as_str) {
            Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {}
            Some(other) => {
                return oauth_error(
                    "unsupported_grant_type",
                    &format!("Invalid grant_type: {other}"),
                )
            }
            None => return oauth_error("unsupported_grant_type", "Invalid grant_type: "),
        }
        let Some(assertion) = fields.get("assertion") else {
            return oauth_error("invalid_request", "Missing required parameter: assertion");
        };
        let parts: Vec<&str> = assertion.split('.').collect();
        let [header, claims, signature] = parts.as_slice() else {
            return oauth_error("invalid_grant", "Invalid JWT: not three base64url parts.");
        };
        let valid_sig = !signature.is_empty()
            && base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(signature.trim_end_matches('='))
                .is_ok();
        let (Some(Value::Object(_)), Some(Value::Object(claims)), true) =
            (b64url_json(header), b64url_json(claims), valid_sig)
        else {
            return oauth_error("invalid_grant", "Invalid JWT: not three base64url parts.");
        };
        for name in ["iss", "aud", "exp", "iat", "scope"] {
            if !claims.contains_key(name) {
                return oauth_error(
                    "invalid_grant",
                    &format!("Invalid JWT: claim '{name}' is missing."),
                );
            }
        }
        let now = chrono::Utc::now().timestamp();
        let (Some(exp), Some(_iat)) = (
            claims.get("exp").and_then(Value::as_i64),
            claims.get("iat").and_then(Value::as_i64),
        ) else {
            return oauth_error("invalid_grant", "Invalid JWT: exp and iat must be integers.");
        };
        if exp <= now {
            return oauth_error(
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
            );
        }
        let lifetime = ctx.state.auth().google_token_lifetime_s;
        let token = ctx.state.issue_token(TokenKind::Google, lifetime);
        api::json(&json!({
            "access_token": token,
            "expires_in": lifetime,
            "token_type": "Bearer",
        }))
    })
    .await
}

/// Vertex AI's check: an unexpired bearer token from `POST /token`.
pub(super) fn check_google_bearer(ctx: &Ctx<'_>) -> Result<(), ApiError> {
    let unauthenticated = |message: &str| ApiError {
        status: StatusCode::UNAUTHORIZED,
        message: message.to_owned(),
        param: None,
        code: None,
    };
    let Some(token) = ctx.bearer() else {
        return Err(unauthenticated("Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."));
    };
    match ctx.state.check_token(TokenKind::Google, token) {
        Ok(()) => Ok(()),
        Err(TokenError::Expired) => Err(unauthenticated(
            "Request had invalid authentication credentials. The access token has expired.",
        )),
        Err(TokenError::Invalid) => Err(unauthenticated("Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.")),
    }
}

/// Gemini AI Studio's check: `x-goog-api-key` (or `?key=`) present, equal
/// to `gemini_api_key` when configured; a mock Google token also passes.
pub(super) fn check_gemini_key(ctx: &Ctx<'_>) -> Result<(), ApiError> {
    let given = ctx
        .header("x-goog-api-key")
        .or_else(|| ctx.query_param("key"))
        .filter(|k| !k.is_empty());
    let Some(given) = given else {
        if ctx.bearer().is_some() {
            return check_google_bearer(ctx);
        }
        return Err(ApiError {
            status: StatusCode::FORBIDDEN,
            message: "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.".into(),
            param: None,
            code: None,
        });
    };
    match ctx.state.auth().gemini_api_key {
        Some(want) if want != given => Err(ApiError::invalid(
            "API key not valid. Please pass a valid API key.",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn encoding_and_decoding() {
        assert_eq!(
            uri_encode("/model/a.b-v1%3A0/converse", true),
            "/model/a.b-v1%253A0/converse"
        );
        assert_eq!(uri_encode("a b/c~", false), "a%20b%2Fc~");
        assert_eq!(form_decode("a+b%2Fc%zz%4"), "a b/c%zz%4");
        let f = form(b"grant_type=client_credentials&scope=https%3A%2F%2Fx%2F.default&x");
        assert_eq!(f["scope"], "https://x/.default");
        assert_eq!(f["x"], "");
    }
}
