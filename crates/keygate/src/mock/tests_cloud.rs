//! Tests of the cloud-provider routes: Bedrock (SigV4, event stream), Azure
//! OpenAI with Azure AD tokens, Google OAuth and Vertex AI, and API keys.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_types::event_stream::HeaderValue as EventHeaderValue;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use base64::Engine as _;
use serde_json::{json, Value};

use super::tests::{app, get, post, send, Reply, EXPECTED};
use super::{DEFAULT_AWS_ACCESS_KEY_ID, DEFAULT_AWS_SECRET_ACCESS_KEY};
use super::{DEFAULT_AZURE_CLIENT_ID, DEFAULT_AZURE_CLIENT_SECRET};

const HOST: &str = "bedrock-runtime.us-east-1.amazonaws.com";
const MODEL_PATH: &str = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0";

async fn configure(app: &Router, change: Value) -> Value {
    let r = send(
        app,
        Request::builder()
            .method(Method::PUT)
            .uri("/_mock/config")
            .body(Body::from(change.to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

/// How to sign a Bedrock request in a test.
struct Signing<'a> {
    key_id: &'a str,
    secret: &'a str,
    token: Option<&'a str>,
    time: SystemTime,
    sha_header: bool,
}

impl Default for Signing<'_> {
    fn default() -> Self {
        Signing {
            key_id: DEFAULT_AWS_ACCESS_KEY_ID,
            secret: DEFAULT_AWS_SECRET_ACCESS_KEY,
            token: None,
            time: SystemTime::now(),
            sha_header: false,
        }
    }
}

/// A request to `path` signed (with the `aws-sigv4` crate) over
/// `signed_body`, carrying `sent_body`.
fn signed(path: &str, signed_body: &str, sent_body: &str, how: &Signing<'_>) -> Request<Body> {
    let uri = format!("https://{HOST}{path}");
    let headers = [("content-type", "application/json"), ("host", HOST)];
    let identity: Identity = Credentials::new(
        how.key_id,
        how.secret,
        how.token.map(str::to_owned),
        None,
        "test",
    )
    .into();
    let mut settings = SigningSettings::default();
    if how.sha_header {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("bedrock")
        .time(how.time)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        "POST",
        uri.clone(),
        headers.iter().copied(),
        SignableBody::Bytes(signed_body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut builder = Request::builder().method(Method::POST).uri(&uri);
    for (k, v) in headers {
        builder = builder.header(k, v);
    }
    let mut request = builder.body(Body::from(sent_body.to_owned())).unwrap();
    instructions.apply_to_request_http1x(&mut request);
    request
}

fn converse_body() -> Value {
    json!({
        "system": [{"text": "be nice"}],
        "messages": [{"role": "user", "content": [{"text": "hi there"}]}],
    })
}

async fn converse(app: &Router, path: &str, body: &Value) -> Reply {
    let body = body.to_string();
    send(app, signed(path, &body, &body, &Signing::default())).await
}

fn assert_aws_error(r: &Reply, kind: &str, message_part: &str) {
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert_eq!(r.headers["x-amzn-errortype"], kind);
    let message = r.json()["message"].as_str().unwrap().to_owned();
    assert!(message.contains(message_part), "{message}");
}

#[tokio::test]
async fn bedrock_converse_signed_request_is_answered() {
    let app = app();
    let r = converse(&app, &format!("{MODEL_PATH}/converse"), &converse_body()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.headers.contains_key("x-amzn-requestid"));
    let v = r.json();
    assert_eq!(v["output"]["message"]["role"], "assistant");
    assert_eq!(v["output"]["message"]["content"][0]["text"], EXPECTED);
    assert_eq!(v["stopReason"], "end_turn");
    assert_eq!(v["usage"]["inputTokens"], 4);
    assert_eq!(v["usage"]["outputTokens"], 7);
    assert_eq!(v["usage"]["totalTokens"], 11);
    assert!(v["usage"].get("cacheReadInputTokens").is_none());
    assert!(v["metrics"]["latencyMs"].is_u64());

    // With x-amz-content-sha256, as S3-style signers send it.
    let body = converse_body().to_string();
    let how = Signing {
        sha_header: true,
        ..Signing::default()
    };
    let path = format!("{MODEL_PATH}/converse");
    let r = send(&app, signed(&path, &body, &body, &how)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // … and a body that is not the one hashed.
    let other = body.replace("hi there", "hi where");
    let r = send(&app, signed(&path, &body, &other, &how)).await;
    assert_aws_error(&r, "InvalidSignatureException", "x-amz-content-sha256");
}

#[tokio::test]
async fn bedrock_refuses_bad_signatures() {
    let app = app();
    let path = format!("{MODEL_PATH}/converse");
    let body = converse_body().to_string();
    let tampered = body.replace("hi there", "hi where");
    let r = send(&app, signed(&path, &body, &tampered, &Signing::default())).await;
    assert_aws_error(
        &r,
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided.",
    );

    let wrong_secret = Signing {
        secret: "not-the-secret",
        ..Signing::default()
    };
    let r = send(&app, signed(&path, &body, &body, &wrong_secret)).await;
    assert_aws_error(&r, "InvalidSignatureException", "does not match");

    let unknown_key = Signing {
        key_id: "unknown-access-key-id",
        ..Signing::default()
    };
    let r = send(&app, signed(&path, &body, &body, &unknown_key)).await;
    assert_aws_error(&r, "UnrecognizedClientException", "security token");

    let old = Signing {
        time: SystemTime::now() - Duration::from_secs(600),
        ..Signing::default()
    };
    let r = send(&app, signed(&path, &body, &body, &old)).await;
    assert_aws_error(&r, "InvalidSignatureException", "Signature expired");

    // Signed for another path.
    let mut request = signed(&path, &body, &body, &Signing::default());
    *request.uri_mut() = format!("https://{HOST}/model/other/converse")
        .parse()
        .unwrap();
    assert_aws_error(
        &send(&app, request).await,
        "InvalidSignatureException",
        "does not match",
    );

    let r = post(&app, &path, converse_body()).await;
    assert_aws_error(
        &r,
        "MissingAuthenticationTokenException",
        "Missing Authentication Token",
    );
}

#[tokio::test]
async fn bedrock_session_tokens_and_configured_credentials() {
    let app = app();
    let config = configure(
        &app,
        json!({"aws_access_key_id": "other-access-key-id", "aws_secret_access_key": "s3cret", "aws_session_token": "tok"}),
    )
    .await;
    assert_eq!(config["aws_access_key_id"], "other-access-key-id");
    assert_eq!(config["aws_session_token"], "tok");
    let path = format!("{MODEL_PATH}/converse");
    let body = converse_body().to_string();
    let with = |token| Signing {
        key_id: "other-access-key-id",
        secret: "s3cret",
        token,
        ..Signing::default()
    };
    let r = send(&app, signed(&path, &body, &body, &with(Some("tok")))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = send(&app, signed(&path, &body, &body, &with(None))).await;
    assert_aws_error(&r, "UnrecognizedClientException", "security token");
    let r = send(&app, signed(&path, &body, &body, &with(Some("other")))).await;
    assert_aws_error(&r, "UnrecognizedClientException", "security token");
    // The old defaults no longer sign.
    let r = send(&app, signed(&path, &body, &body, &Signing::default())).await;
    assert_aws_error(&r, "UnrecognizedClientException", "security token");
}

/// Decode an event-stream body into (event type, payload) pairs, checking
/// every frame's headers.
pub(super) fn decode_events(mut body: &[u8]) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let message = aws_smithy_eventstream::frame::read_message_from(&mut body).unwrap();
        let header = |name: &str| -> String {
            let h = message
                .headers()
                .iter()
                .find(|h| h.name().as_str() == name)
                .unwrap_or_else(|| panic!("no {name} header"));
            match h.value() {
                EventHeaderValue::String(s) => s.as_str().to_owned(),
                other => panic!("{name} is {other:?}"),
            }
        };
        assert_eq!(header(":message-type"), "event");
        assert_eq!(header(":content-type"), "application/json");
        let payload = serde_json::from_slice(message.payload()).unwrap();
        out.push((header(":event-type"), payload));
    }
    out
}

#[tokio::test]
async fn bedrock_converse_stream_frames_decode() {
    let app = app();
    let r = converse(
        &app,
        &format!("{MODEL_PATH}/converse-stream"),
        &converse_body(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.headers["content-type"],
        "application/vnd.amazon.eventstream"
    );
    let events = decode_events(&r.body);
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"messageStart"));
    assert_eq!(
        kinds[kinds.len() - 3..],
        ["contentBlockStop", "messageStop", "metadata"]
    );
    assert_eq!(events[0].1, json!({"role": "assistant"}));
    let text: String = events
        .iter()
        .filter(|(k, _)| k == "contentBlockDelta")
        .map(|(_, p)| p["delta"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, EXPECTED);
    let (_, stop) = &events[events.len() - 2];
    assert_eq!(stop["stopReason"], "end_turn");
    let (_, meta) = &events[events.len() - 1];
    assert_eq!(meta["usage"]["inputTokens"], 4);
    assert_eq!(meta["usage"]["outputTokens"], 7);
    assert_eq!(meta["usage"]["totalTokens"], 11);
    assert!(meta["metrics"]["latencyMs"].is_u64());
}

#[tokio::test]
async fn bedrock_tools_limits_and_faults() {
    let app = app();
    let mut body = converse_body();
    body["toolConfig"] = json!({"tools": [
        {"toolSpec": {"name": "search", "inputSchema": {"json": {"type": "object"}}}},
        {"toolSpec": {"name": "lookup", "inputSchema": {"json": {"type": "object"}}}},
    ]});
    let v = converse(&app, &format!("{MODEL_PATH}/converse"), &body)
        .await
        .json();
    assert_eq!(v["stopReason"], "tool_use");
    let call = &v["output"]["message"]["content"][0]["toolUse"];
    assert!(call["toolUseId"]
        .as_str()
        .unwrap()
        .starts_with("tooluse_mock_"));
    assert_eq!(call["name"], "search");
    assert_eq!(call["input"], json!({"query": "hi there"}));

    body["toolConfig"]["toolChoice"] = json!({"tool": {"name": "lookup"}});
    let r = converse(&app, &format!("{MODEL_PATH}/converse-stream"), &body).await;
    let events = decode_events(&r.body);
    let start = events
        .iter()
        .find(|(k, _)| k == "contentBlockStart")
        .unwrap();
    assert_eq!(start.1["start"]["toolUse"]["name"], "lookup");
    assert!(start.1["start"]["toolUse"]["toolUseId"]
        .as_str()
        .unwrap()
        .starts_with("tooluse_mock_"));
    let fragments: Vec<&str> = events
        .iter()
        .filter(|(k, _)| k == "contentBlockDelta")
        .map(|(_, p)| p["delta"]["toolUse"]["input"].as_str().unwrap())
        .collect();
    assert!(fragments.len() >= 2);
    let args: Value = serde_json::from_str(&fragments.concat()).unwrap();
    assert_eq!(args, json!({"query": "hi there"}));
    let stop = events.iter().find(|(k, _)| k == "messageStop").unwrap();
    assert_eq!(stop.1["stopReason"], "tool_use");

    // The tool result comes back.
    let result = json!({
        "toolConfig": body["toolConfig"],
        "messages": [
            {"role": "user", "content": [{"text": "hi there"}]},
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "lookup", "input": {}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "sunny"}]}}]},
        ],
    });
    let v = converse(&app, &format!("{MODEL_PATH}/converse"), &result)
        .await
        .json();
    assert_eq!(
        v["output"]["message"]["content"][0]["text"],
        "Tool result: sunny"
    );
    assert_eq!(v["stopReason"], "end_turn");

    // Limits.
    let mut limited = converse_body();
    limited["inferenceConfig"] = json!({"maxTokens": 2});
    let v = converse(&app, &format!("{MODEL_PATH}/converse"), &limited)
        .await
        .json();
    assert_eq!(v["output"]["message"]["content"][0]["text"], "Hello from");
    assert_eq!(v["stopReason"], "max_tokens");
    limited["inferenceConfig"] = json!({"stopSequences": ["said"]});
    let v = converse(&app, &format!("{MODEL_PATH}/converse"), &limited)
        .await
        .json();
    assert_eq!(
        v["output"]["message"]["content"][0]["text"],
        "Hello from mock! You "
    );
    assert_eq!(v["stopReason"], "stop_sequence");
    limited["inferenceConfig"] = json!({"maxTokens": 0});
    let r = converse(&app, &format!("{MODEL_PATH}/converse"), &limited).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.headers["x-amzn-errortype"], "ValidationException");

    // Images and cached tokens.
    let images = json!({"messages": [{"role": "user", "content": [
        {"text": "see"},
        {"image": {"format": "png", "source": {"bytes": "AAAA"}}},
    ]}]});
    let v = converse(&app, &format!("{MODEL_PATH}/converse"), &images)
        .await
        .json();
    assert_eq!(
        v["output"]["message"]["content"][0]["text"],
        "Hello from mock! You said: see [images: 1]"
    );
    configure(&app, json!({"cached_tokens": 4})).await;
    let v = converse(&app, &format!("{MODEL_PATH}/converse"), &images)
        .await
        .json();
    assert_eq!(v["usage"]["cacheReadInputTokens"], 4);
    let r = converse(&app, &format!("{MODEL_PATH}/converse-stream"), &images).await;
    let events = decode_events(&r.body);
    assert_eq!(events.last().unwrap().1["usage"]["cacheReadInputTokens"], 4);

    // Faults: a status in AWS's shape, and a cut event stream.
    post(
        &app,
        "/_mock/faults",
        json!([{"status": 429, "path": "/model/"}, {"cut_after_chunks": 2, "path": "/model/"}]),
    )
    .await;
    let r = converse(&app, &format!("{MODEL_PATH}/converse"), &converse_body()).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers["x-amzn-errortype"], "ThrottlingException");
    assert!(r.json()["message"].is_string());
    let body = converse_body().to_string();
    let request = signed(
        &format!("{MODEL_PATH}/converse-stream"),
        &body,
        &body,
        &Signing::default(),
    );
    let response = tower::ServiceExt::oneshot(app.clone(), request)
        .await
        .unwrap();
    let mut stream = response.into_body().into_data_stream();
    let mut got = Vec::new();
    let mut failed = false;
    while let Some(frame) = futures_util::StreamExt::next(&mut stream).await {
        match frame {
            Ok(bytes) => got.extend_from_slice(&bytes),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed);
    let mut bytes = got.as_slice();
    let mut frames = 0;
    while !bytes.is_empty() {
        aws_smithy_eventstream::frame::read_message_from(&mut bytes).unwrap();
        frames += 1;
    }
    assert_eq!(frames, 2);
}

// ----------------------------------------------------------------- Azure --

async fn form(app: &Router, path: &str, fields: &[(&str, &str)]) -> Reply {
    let body = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace(':', "%3A").replace('/', "%2F")))
        .collect::<Vec<_>>()
        .join("&");
    send(
        app,
        Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap(),
    )
    .await
}

async fn azure_token(app: &Router, secret: &str) -> Reply {
    form(
        app,
        "/my-tenant/oauth2/v2.0/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_AZURE_CLIENT_ID),
            ("client_secret", secret),
            ("scope", "https://cognitiveservices.azure.com/.default"),
        ],
    )
    .await
}

async fn with_headers(app: &Router, path: &str, headers: &[(&str, &str)], body: &Value) -> Reply {
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", "application/json");
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    send(app, builder.body(Body::from(body.to_string())).unwrap()).await
}

const AZURE_CHAT: &str = "/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21";

fn user_body() -> Value {
    json!({"messages": [{"role": "user", "content": "hi there"}]})
}

#[tokio::test]
async fn azure_ad_token_then_chat() {
    let app = app();
    let r = azure_token(&app, DEFAULT_AZURE_CLIENT_SECRET).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3600);
    assert_eq!(v["ext_expires_in"], 3600);
    let token = v["access_token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {token}");
    let r = with_headers(
        &app,
        AZURE_CHAT,
        &[("authorization", &bearer)],
        &user_body(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["choices"][0]["message"]["content"], EXPECTED);

    // A forged or foreign token is refused.
    // Change the last character (to one it is not already).
    let last = if token.ends_with('0') { '1' } else { '0' };
    let forged = format!("Bearer {}{last}", &token[..token.len() - 1]);
    let r = with_headers(
        &app,
        AZURE_CHAT,
        &[("authorization", &forged)],
        &user_body(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"]["code"], "401");

    let r = azure_token(&app, "wrong").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let v = r.json();
    assert_eq!(v["error"], "invalid_client");
    assert!(v["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS7000215"));
    let r = form(&app, "/t/oauth2/v2.0/token", &[("grant_type", "password")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"], "unsupported_grant_type");

    // Short-lived tokens expire.
    let config = configure(&app, json!({"azure_token_lifetime_s": 0})).await;
    assert_eq!(config["azure_token_lifetime_s"], 0);
    let v = azure_token(&app, DEFAULT_AZURE_CLIENT_SECRET).await.json();
    assert_eq!(v["expires_in"], 0);
    let bearer = format!("Bearer {}", v["access_token"].as_str().unwrap());
    let r = with_headers(
        &app,
        AZURE_CHAT,
        &[("authorization", &bearer)],
        &user_body(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("expired"));

    // Configured client credentials.
    configure(&app, json!({"azure_client_id": "cid", "azure_client_secret": "csec", "azure_token_lifetime_s": 60})).await;
    let r = azure_token(&app, DEFAULT_AZURE_CLIENT_SECRET).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"], "unauthorized_client");
}

#[tokio::test]
async fn azure_keys_and_api_version() {
    let app = app();
    let r = with_headers(&app, AZURE_CHAT, &[], &user_body()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = with_headers(&app, AZURE_CHAT, &[("api-key", "anything")], &user_body()).await;
    assert_eq!(r.status, StatusCode::OK);
    let no_version = "/openai/deployments/my-gpt/chat/completions";
    let r = with_headers(&app, no_version, &[("api-key", "anything")], &user_body()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"]["code"], "404");

    configure(&app, json!({"azure_api_key": "az-key"})).await;
    let r = with_headers(&app, AZURE_CHAT, &[("api-key", "anything")], &user_body()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = with_headers(&app, AZURE_CHAT, &[("api-key", "az-key")], &user_body()).await;
    assert_eq!(r.status, StatusCode::OK);
    let embeddings = "/openai/deployments/emb/embeddings?api-version=2024-10-21";
    let body = json!({"input": "hi"});
    let r = with_headers(&app, embeddings, &[("api-key", "az-key")], &body).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["model"], "emb");
    let r = with_headers(&app, embeddings, &[("api-key", "nope")], &body).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    configure(&app, json!({"azure_api_key": ""})).await;
    let r = with_headers(&app, AZURE_CHAT, &[("api-key", "anything")], &user_body()).await;
    assert_eq!(r.status, StatusCode::OK);
}

// ---------------------------------------------------------------- Google --

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

fn assertion(claims: &Value) -> String {
    format!(
        "{}.{}.{}",
        b64(&json!({"alg": "RS256", "typ": "JWT", "kid": "k1"})),
        b64(claims),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"not-really-a-signature"),
    )
}

fn claims() -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "iss": "sa@project.iam.gserviceaccount.com",
        "scope": "https://www.googleapis.com/auth/cloud-platform",
        "aud": "https://oauth2.googleapis.com/token",
        "iat": now,
        "exp": now + 3600,
    })
}

async fn google_token(app: &Router, assertion: &str) -> Reply {
    form(
        app,
        "/token",
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion),
        ],
    )
    .await
}

const VERTEX: &str = "/v1/projects/proj/locations/us-central1/publishers";

#[tokio::test]
async fn google_token_endpoint_checks_the_assertion() {
    let app = app();
    let r = google_token(&app, &assertion(&claims())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3600);
    assert!(v["access_token"].as_str().unwrap().starts_with("ya29."));

    for bad in [
        "abc".to_owned(),
        "a.b".to_owned(),
        "a.b.c.d".to_owned(),
        "!!.??.##".to_owned(),
        format!("{}.{}.", b64(&json!({"alg": "RS256"})), b64(&claims())),
    ] {
        let r = google_token(&app, &bad).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.json()["error"], "invalid_grant");
    }
    for missing in ["iss", "aud", "exp", "iat", "scope"] {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(missing);
        let r = google_token(&app, &assertion(&c)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{missing}");
        assert_eq!(r.json()["error"], "invalid_grant");
    }
    let r = form(&app, "/token", &[("grant_type", "client_credentials")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"], "unsupported_grant_type");
    // The assertion is recorded.
    let list = get(&app, "/_mock/requests").await.json();
    assert!(list[0]["body"].as_str().unwrap().contains("assertion="));
}

#[tokio::test]
async fn vertex_routes_need_a_google_token() {
    let app = app();
    let token = google_token(&app, &assertion(&claims())).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bearer = format!("Bearer {token}");
    let auth = [("authorization", bearer.as_str())];
    let gemini = json!({"contents": [{"role": "user", "parts": [{"text": "hi there"}]}]});
    let path = format!("{VERTEX}/google/models/gemini-2.5-flash:generateContent");
    let r = with_headers(&app, &path, &auth, &gemini).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["candidates"][0]["content"]["parts"][0]["text"], EXPECTED);
    assert_eq!(v["modelVersion"], "gemini-2.5-flash");

    let path = format!("{VERTEX}/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
    let r = with_headers(&app, &path, &auth, &gemini).await;
    assert_eq!(r.headers["content-type"], "text/event-stream");
    assert_eq!(r.text().matches("data: ").count(), 7);

    // Anthropic on Vertex.
    let claude = json!({
        "anthropic_version": "vertex-2023-10-16",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi there"}],
    });
    let path = format!("{VERTEX}/anthropic/models/claude-sonnet-4-5@20250929:rawPredict");
    let r = with_headers(&app, &path, &auth, &claude).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["model"], "claude-sonnet-4-5@20250929");
    assert_eq!(v["content"][0]["text"], EXPECTED);
    assert_eq!(v["stop_reason"], "end_turn");

    let stream_path = format!("{VERTEX}/anthropic/models/claude-sonnet-4-5:streamRawPredict");
    let r = with_headers(&app, &stream_path, &auth, &claude).await;
    assert_eq!(r.headers["content-type"], "text/event-stream");
    let text = r.text();
    assert!(text.starts_with("event: message_start\n"));
    assert!(text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));

    let mut with_model = claude.clone();
    with_model["model"] = json!("claude");
    let r = with_headers(&app, &path, &auth, &with_model).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["type"], "error");
    let mut no_version = claude.clone();
    no_version
        .as_object_mut()
        .unwrap()
        .remove("anthropic_version");
    let r = with_headers(&app, &path, &auth, &no_version).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    no_version["anthropic_version"] = json!("2023-06-01");
    let r = with_headers(&app, &path, &auth, &no_version).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // No token, a foreign token, an expired token.
    let unauthenticated = |r: &Reply| {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
        let v = r.json();
        assert_eq!(v["error"]["code"], 401);
        assert_eq!(v["error"]["status"], "UNAUTHENTICATED");
        assert!(v["error"]["message"].is_string());
    };
    unauthenticated(&with_headers(&app, &path, &[], &claude).await);
    let azure = azure_token(&app, DEFAULT_AZURE_CLIENT_SECRET).await.json();
    let foreign = format!("Bearer {}", azure["access_token"].as_str().unwrap());
    unauthenticated(&with_headers(&app, &path, &[("authorization", &foreign)], &claude).await);
    configure(&app, json!({"google_token_lifetime_s": 0})).await;
    let expired = google_token(&app, &assertion(&claims())).await.json();
    let expired = format!("Bearer {}", expired["access_token"].as_str().unwrap());
    unauthenticated(&with_headers(&app, &path, &[("authorization", &expired)], &claude).await);
    // The earlier token is still good.
    let r = with_headers(&app, &path, &auth, &claude).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn gemini_ai_studio_wants_an_api_key() {
    let app = app();
    let body = json!({"contents": [{"parts": [{"text": "hi there"}]}]});
    let path = "/v1beta/models/gemini-2.5-flash:generateContent";
    let r = with_headers(&app, path, &[], &body).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json()["error"]["status"], "PERMISSION_DENIED");
    let r = with_headers(&app, path, &[("x-goog-api-key", "any")], &body).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = with_headers(&app, &format!("{path}?key=any"), &[], &body).await;
    assert_eq!(r.status, StatusCode::OK);

    configure(&app, json!({"gemini_api_key": "g-key"})).await;
    let r = with_headers(&app, path, &[("x-goog-api-key", "any")], &body).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["status"], "INVALID_ARGUMENT");
    let r = with_headers(&app, path, &[("x-goog-api-key", "g-key")], &body).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(
        &app,
        Request::builder()
            .uri("/v1beta/models")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn hostile_bodies_on_new_routes_are_4xx() {
    let app = app();
    let token = google_token(&app, &assertion(&claims())).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bearer = format!("Bearer {token}");
    let bodies: Vec<String> = vec![
        String::new(),
        "{".into(),
        "null".into(),
        "[]".into(),
        r#"{"messages":null}"#.into(),
        r#"{"messages":[{"role":"user","content":[{"toolResult":5}]}]}"#.into(),
        r#"{"messages":[{"role":"user","content":[{"image":null,"text":"x"}]}],"toolConfig":{"tools":"x"}}"#.into(),
        r#"{"messages":[{"role":"user","content":"x"}],"inferenceConfig":{"maxTokens":-5,"stopSequences":[1,""]}}"#.into(),
        r#"{"anthropic_version":"vertex-2023-10-16","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result","content":{"a":[1]}}]}],"tools":[{"name":null}],"tool_choice":"x"}"#.into(),
        r#"{"contents":[{"parts":[{"functionResponse":7}]}],"tools":[{"functionDeclarations":[{}]}],"toolConfig":{"functionCallingConfig":{"mode":5}}}"#.into(),
        "\u{0}\u{1}garbage".repeat(1000),
        format!("{{\"messages\":[{{\"role\":\"user\",\"content\":[{{\"text\":\"{}\"}}]}}]}}", "x ".repeat(100_000)),
    ];
    let paths = [
        format!("{MODEL_PATH}/converse"),
        format!("{MODEL_PATH}/converse-stream"),
        format!("{VERTEX}/anthropic/models/c:rawPredict"),
        format!("{VERTEX}/anthropic/models/c:streamRawPredict"),
        format!("{VERTEX}/google/models/g:streamGenerateContent?alt=sse"),
        format!("{VERTEX}/meta/models/g:rawPredict"),
        format!("{VERTEX}/anthropic/models/nocolon"),
        "/token".into(),
        "/tenant/oauth2/v2.0/token".into(),
    ];
    for path in &paths {
        for body in &bodies {
            let request = if path.starts_with("/model/") {
                signed(path, body, body, &Signing::default())
            } else {
                Request::builder()
                    .method(Method::POST)
                    .uri(path.as_str())
                    .header("authorization", &bearer)
                    .body(Body::from(body.clone()))
                    .unwrap()
            };
            let r = send(&app, request).await;
            assert!(
                r.status.as_u16() < 500,
                "{path} {} → {}",
                &body[..body.len().min(80)],
                r.status
            );
            if !r.status.is_success() {
                r.json();
            }
        }
    }
    // Hostile authorization headers.
    for authorization in [
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 Credential=",
        "AWS4-HMAC-SHA256 Credential=a/b/c/d/e/f, SignedHeaders=, Signature=",
        "AWS4-HMAC-SHA256 Credential=keygate-mock-access-key-id/x/y/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
        "Bearer",
        "Bearer ya29.mock.",
        "Bearer ya29.mock.99999999999999999999999.zz",
        "Bearer mock-aad.1.2.3",
    ] {
        for path in [format!("{MODEL_PATH}/converse"), format!("{VERTEX}/google/models/g:generateContent"), AZURE_CHAT.to_owned()] {
            let r = send(
                &app,
                Request::builder()
                    .method(Method::POST)
                    .uri(path.as_str())
                    .header("authorization", authorization)
                    .header("x-amz-date", "20200101T000000Z")
                    .body(Body::from("{}"))
                    .unwrap(),
            )
            .await;
            assert!(r.status.is_client_error(), "{path} {authorization} → {}", r.status);
            r.json();
        }
    }
}

#[test]
fn cli_flags_set_the_aws_credentials() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        opts: super::MockOptions,
    }
    let cli = Cli::try_parse_from([
        "mock-provider",
        "--aws-access-key-id",
        "cli-access-key-id",
        "--aws-secret-access-key",
        "sec",
        "--aws-session-token",
        "tok",
    ])
    .unwrap();
    assert_eq!(cli.opts.aws_access_key_id, "cli-access-key-id");
    assert_eq!(cli.opts.aws_secret_access_key, "sec");
    assert_eq!(cli.opts.aws_session_token.as_deref(), Some("tok"));
}
