//! Reading and checking a client's JSON body: size limit, content type,
//! UTF-8, shape; and the minimal rewrite an upstream needs.

use crate::error::{printable, ApiError};
use crate::providers::Route;
use axum::body::Body;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;
use std::borrow::Cow;

/// Read the body, refusing non-JSON content types, bodies over `limit`
/// (413, checked against `Content-Length` before reading a byte), empty
/// bodies and non-UTF-8 bytes.
pub async fn read_json(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    if let Some(content_type) = headers.get(http::header::CONTENT_TYPE) {
        let text = content_type.to_str().unwrap_or("");
        let essence = text
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::unsupported_media_type());
        }
    }
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::payload_too_large(limit));
    }
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(ApiError::payload_too_large(limit))
        }
        Err(_) => {
            return Err(ApiError::invalid_request(
                "The request body could not be read completely.",
            ))
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid_request(
            "The request body is empty; send a JSON object.",
        ));
    }
    if std::str::from_utf8(&bytes).is_err() {
        return Err(ApiError::invalid_request(
            "The request body is not valid UTF-8.",
        ));
    }
    Ok(bytes)
}

#[derive(Deserialize)]
struct RawHead<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

/// What routing needs from a request body.
#[derive(Debug)]
pub struct Head<'a> {
    /// Requested model.
    pub model: Cow<'a, str>,
    /// Streamed response requested.
    pub stream: bool,
    /// The client asked for the usage chunk itself.
    pub include_usage: bool,
}

/// Longest model name accepted.
const MAX_MODEL_LEN: usize = 256;

/// Parse the fields routing needs, validating the whole body as a JSON object.
pub fn parse_head(bytes: &Bytes) -> Result<Head<'_>, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(ApiError::invalid_request(
            "The request body must be a JSON object.",
        ));
    }
    let raw: RawHead<'_> = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::invalid_request(format!(
            "The request body is not valid JSON: {}",
            printable(&e.to_string())
        ))
    })?;
    let model = raw
        .model
        .filter(|m| !m.trim().is_empty())
        .ok_or_else(|| ApiError::invalid_param("model", "The 'model' field is required."))?;
    if model.len() > MAX_MODEL_LEN {
        return Err(ApiError::invalid_param(
            "model",
            "The 'model' field is too long.",
        ));
    }
    Ok(Head {
        model,
        stream: raw.stream.unwrap_or(false),
        include_usage: raw
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
    })
}

/// The head of a Gemini request, whose model and streaming are in the path:
/// the body must still be a JSON object.
pub fn gemini_head<'a>(bytes: &Bytes, model: &'a str, stream: bool) -> Result<Head<'a>, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(ApiError::invalid_request(
            "The request body must be a JSON object.",
        ));
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|e| {
        ApiError::invalid_request(format!(
            "The request body is not valid JSON: {}",
            printable(&e.to_string())
        ))
    })?;
    if model.trim().is_empty() || model.len() > MAX_MODEL_LEN {
        return Err(ApiError::invalid_param(
            "model",
            "The model in the path is empty or too long.",
        ));
    }
    Ok(Head {
        model: Cow::Borrowed(model),
        stream,
        include_usage: false,
    })
}

/// The body sent upstream: the client's bytes untouched unless the model
/// name must change (alias, `provider/model`) or stream usage must be asked for.
pub fn rewrite(
    bytes: &Bytes,
    head: &Head<'_>,
    route: &Route,
    want_stream_usage: bool,
) -> Result<Bytes, ApiError> {
    if route.upstream_model == head.model && !want_stream_usage {
        return Ok(bytes.clone());
    }
    if route.upstream_model == head.model
        && memchr::memmem::find(bytes, b"\"stream_options\"").is_none()
    {
        // The common streamed request: splice the option in after the
        // opening brace instead of re-encoding a possibly large body. The
        // body is a validated JSON object with a `model` member, so a member
        // follows the brace, and the key is absent, so none is duplicated.
        if let Some(brace) = bytes.iter().position(|b| *b == b'{') {
            const OPTION: &[u8] = b"\"stream_options\":{\"include_usage\":true},";
            let mut spliced = Vec::with_capacity(bytes.len() + OPTION.len());
            spliced.extend_from_slice(&bytes[..=brace]);
            spliced.extend_from_slice(OPTION);
            spliced.extend_from_slice(&bytes[brace + 1..]);
            return Ok(Bytes::from(spliced));
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|_| ApiError::invalid_request("The request body is not valid JSON."))?;
    let Some(object) = value.as_object_mut() else {
        return Err(ApiError::invalid_request(
            "The request body must be a JSON object.",
        ));
    };
    object.insert("model".into(), route.upstream_model.clone().into());
    if want_stream_usage {
        let options = object
            .entry("stream_options")
            .or_insert_with(|| serde_json::json!({}));
        if !options.is_object() {
            *options = serde_json::json!({});
        }
        if let Some(options) = options.as_object_mut() {
            options.insert("include_usage".into(), true.into());
        }
    }
    serde_json::to_vec(&value)
        .map(Bytes::from)
        .map_err(|_| ApiError::invalid_request("The request body could not be re-encoded."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &'static str) -> Result<(String, bool, bool), u16> {
        let bytes = Bytes::from_static(text.as_bytes());
        parse_head(&bytes)
            .map(|h| (h.model.to_string(), h.stream, h.include_usage))
            .map_err(|e| e.status.as_u16())
    }

    #[test]
    fn heads_parse_and_bad_bodies_are_400() {
        assert_eq!(
            head(r#"{"model":"m","stream":true}"#),
            Ok(("m".into(), true, false))
        );
        assert_eq!(
            head(r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#),
            Ok(("m".into(), true, true))
        );
        assert_eq!(
            head(r#"{"model":"m\u00e9"}"#),
            Ok(("mé".into(), false, false))
        );
        assert_eq!(head(r#"["model"]"#), Err(400));
        assert_eq!(head(r#"{"model":"m""#), Err(400));
        assert_eq!(head(r#"{"model":""}"#), Err(400));
        assert_eq!(head(r#"{"model":1}"#), Err(400));
        assert_eq!(head(r#"{"stream":true}"#), Err(400));
        assert_eq!(head(r#"{"model":"m","stream":"yes"}"#), Err(400));
        assert_eq!(head(r#"{"model":"m"} trailing"#), Err(400));
    }

    fn route(model: &str) -> Route {
        let config = crate::config::Config::from_raw(
            crate::config::RawConfig::default(),
            &std::collections::BTreeMap::<String, String>::new(),
        )
        .unwrap();
        let registry =
            crate::providers::Registry::new(&config, Some("http://127.0.0.1:1".into())).unwrap();
        let mut route = registry
            .resolve(model, crate::providers::Operation::ChatCompletions)
            .unwrap()
            .remove(0);
        route.upstream_model = model.to_string();
        route
    }

    #[test]
    fn stream_usage_is_requested_with_or_without_a_rewrite() {
        for (body, model) in [
            (r#"{"model":"m","stream":true,"messages":[]}"#, "m"),
            (r#" { "model" : "m", "stream": true } "#, "m"),
            (
                r#"{"model":"m","stream":true,"stream_options":{"include_usage":false}}"#,
                "m",
            ),
            (r#"{"model":"m","stream":true,"stream_options":null}"#, "m"),
            (r#"{"model":"alias","stream":true}"#, "upstream"),
        ] {
            let bytes = Bytes::from(body);
            let head = parse_head(&bytes).unwrap();
            let out = rewrite(&bytes, &head, &route(model), true).unwrap();
            let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(value["stream_options"]["include_usage"], true, "{body}");
            assert_eq!(value["model"], model, "{body}");
            assert_eq!(value["stream"], true, "{body}");
            let text = String::from_utf8(out.to_vec()).unwrap();
            assert_eq!(text.matches("stream_options").count(), 1, "{body}");
        }
        let bytes = Bytes::from(r#"{"model":"m"}"#);
        let head = parse_head(&bytes).unwrap();
        assert_eq!(
            rewrite(&bytes, &head, &route("m"), false).unwrap(),
            bytes,
            "untouched"
        );
    }

    #[tokio::test]
    async fn read_json_enforces_limits_and_types() {
        let mut headers = HeaderMap::new();
        let ok = read_json(&headers, Body::from("{\"a\":1}"), 100).await;
        assert!(ok.is_ok());
        assert_eq!(
            read_json(&headers, Body::from("x".repeat(101)), 100)
                .await
                .unwrap_err()
                .status
                .as_u16(),
            413
        );
        assert_eq!(
            read_json(&headers, Body::from(""), 100)
                .await
                .unwrap_err()
                .status
                .as_u16(),
            400
        );
        assert_eq!(
            read_json(&headers, Body::from(vec![b'{', 0xff, b'}']), 100)
                .await
                .unwrap_err()
                .status
                .as_u16(),
            400
        );
        headers.insert(http::header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert_eq!(
            read_json(&headers, Body::from("{}"), 100)
                .await
                .unwrap_err()
                .status
                .as_u16(),
            415
        );
        headers.insert(
            http::header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        headers.insert(http::header::CONTENT_LENGTH, "1000".parse().unwrap());
        assert_eq!(
            read_json(&headers, Body::from("{}"), 100)
                .await
                .unwrap_err()
                .status
                .as_u16(),
            413
        );
    }
}
