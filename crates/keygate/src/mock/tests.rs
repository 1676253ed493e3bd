//! Tests of the mock provider through its router, as a client sees it.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::{router, MockOptions};

pub(super) fn app() -> Router {
    router(&MockOptions::default())
}

pub(super) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub(super) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub(super) fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).unwrap()
    }
}

pub(super) fn request(method: Method, path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        // Gemini AI Studio and Azure routes want a key (any value).
        .header("x-goog-api-key", "test-key")
        .header("api-key", "test-key")
        .body(body.into())
        .unwrap()
}

pub(super) async fn send(app: &Router, req: Request<Body>) -> Reply {
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

pub(super) async fn post(app: &Router, path: &str, body: Value) -> Reply {
    send(app, request(Method::POST, path, body.to_string())).await
}

pub(super) async fn get(app: &Router, path: &str) -> Reply {
    send(app, request(Method::GET, path, Body::empty())).await
}

/// `data:` payloads of an SSE body, with the `event:` name when present.
pub(super) fn sse_events(body: &str) -> Vec<(Option<String>, String)> {
    body.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let mut name = None;
            let mut data = String::new();
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = d.to_string();
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            (name, data)
        })
        .collect()
}

pub(super) fn chat_body(stream: bool) -> Value {
    json!({
        "model": "gpt-4o-mini",
        "stream": stream,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi there"}, {"type": "input_audio", "input_audio": {"data": "x"}}]},
        ],
    })
}

pub(super) const EXPECTED: &str = "Hello from mock! You said: hi there";

#[tokio::test]
async fn chat_completion_json_shape_and_usage() {
    let app = app();
    let r = post(&app, "/v1/chat/completions", chat_body(false)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/json");
    assert!(r.headers.contains_key("x-request-id"));
    let v = r.json();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert!(v["created"].as_i64().unwrap() > 1_600_000_000);
    assert_eq!(v["model"], "gpt-4o-mini");
    let choice = &v["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], EXPECTED);
    assert_eq!(choice["finish_reason"], "stop");
    assert!(choice["logprobs"].is_null());
    // "be brief" + "hi there" = 4 words; the reply has 7.
    assert_eq!(v["usage"]["prompt_tokens"], 4);
    assert_eq!(v["usage"]["completion_tokens"], 7);
    assert_eq!(v["usage"]["total_tokens"], 11);
}

#[tokio::test]
async fn chat_completion_is_cut_by_max_tokens() {
    let app = app();
    for field in ["max_tokens", "max_completion_tokens"] {
        let mut body = chat_body(false);
        body[field] = json!(3);
        let v = post(&app, "/v1/chat/completions", body).await.json();
        assert_eq!(v["choices"][0]["message"]["content"], "Hello from mock!");
        assert_eq!(v["choices"][0]["finish_reason"], "length");
        assert_eq!(v["usage"]["completion_tokens"], 3);
    }
    let mut body = chat_body(false);
    body["max_tokens"] = json!(0);
    let r = post(&app, "/v1/chat/completions", body).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["param"], "max_tokens");
}

#[tokio::test]
async fn chat_stream_sequence_with_usage() {
    let app = app();
    let mut body = chat_body(true);
    body["stream_options"] = json!({"include_usage": true});
    let r = post(&app, "/v1/chat/completions", body).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "text/event-stream");
    let text = r.text();
    assert!(text.ends_with("data: [DONE]\n\n"));
    let events = sse_events(&text);
    let (last, chunks) = events.split_last().unwrap();
    assert_eq!(last.1, "[DONE]");
    let chunks: Vec<Value> = chunks
        .iter()
        .map(|(name, data)| {
            assert!(name.is_none());
            serde_json::from_str(data).unwrap()
        })
        .collect();
    // role chunk, 7 word chunks, finish chunk, usage chunk
    assert_eq!(chunks.len(), 10);
    let id = &chunks[0]["id"];
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(&c["id"], id);
        assert_eq!(c["model"], "gpt-4o-mini");
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[0]["choices"][0]["delta"]["content"], "");
    let joined: String = chunks[1..8]
        .iter()
        .map(|c| {
            assert!(c["choices"][0]["finish_reason"].is_null());
            c["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(joined, EXPECTED);
    assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Hello ");
    let finish = &chunks[8];
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    for c in &chunks[..9] {
        assert!(c.as_object().unwrap().contains_key("usage"));
        assert!(c["usage"].is_null());
    }
    let usage = &chunks[9];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 4);
    assert_eq!(usage["usage"]["completion_tokens"], 7);
    assert_eq!(usage["usage"]["total_tokens"], 11);
}

#[tokio::test]
async fn chat_stream_without_usage_has_no_usage_field() {
    let app = app();
    let r = post(&app, "/v1/chat/completions", chat_body(true)).await;
    let events = sse_events(&r.text());
    assert_eq!(events.len(), 10); // role, 7 words, finish, [DONE]
    for (_, data) in &events[..9] {
        let v: Value = serde_json::from_str(data).unwrap();
        assert!(!v.as_object().unwrap().contains_key("usage"));
    }
}

#[tokio::test]
async fn anthropic_message_json() {
    let app = app();
    let body = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "system": [{"type": "text", "text": "be nice"}],
        "messages": [{"role": "user", "content": "hi there"}],
    });
    let r = post(&app, "/v1/messages", body.clone()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers.contains_key("request-id"));
    let v = r.json();
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "claude-sonnet-4-5");
    assert_eq!(v["content"], json!([{"type": "text", "text": EXPECTED}]));
    assert_eq!(v["stop_reason"], "end_turn");
    assert!(v["stop_sequence"].is_null());
    assert_eq!(v["usage"]["input_tokens"], 4);
    assert_eq!(v["usage"]["output_tokens"], 7);

    let mut short = body.clone();
    short["max_tokens"] = json!(2);
    let v = post(&app, "/v1/messages", short).await.json();
    assert_eq!(v["content"][0]["text"], "Hello from");
    assert_eq!(v["stop_reason"], "max_tokens");

    let mut missing = body;
    missing.as_object_mut().unwrap().remove("max_tokens");
    let r = post(&app, "/v1/messages", missing).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let v = r.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_tokens"));
}

#[tokio::test]
async fn anthropic_stream_sequence() {
    let app = app();
    let body = json!({
        "model": "claude-haiku-4-5",
        "max_tokens": 100,
        "stream": true,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi there"}]}],
    });
    let r = post(&app, "/v1/messages", body).await;
    assert_eq!(r.headers["content-type"], "text/event-stream");
    let events = sse_events(&r.text());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_deref().unwrap()).collect();
    let mut expected = vec!["message_start", "content_block_start", "ping"];
    expected.extend(std::iter::repeat_n("content_block_delta", 7));
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, expected);
    let data: Vec<Value> = events
        .iter()
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    for ((name, _), v) in events.iter().zip(&data) {
        assert_eq!(v["type"].as_str(), name.as_deref());
    }
    let start = &data[0]["message"];
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["model"], "claude-haiku-4-5");
    assert!(start["stop_reason"].is_null());
    assert_eq!(start["usage"]["input_tokens"], 2);
    assert_eq!(start["usage"]["output_tokens"], 1);
    assert_eq!(
        data[1]["content_block"],
        json!({"type": "text", "text": ""})
    );
    let joined: String = data[3..10]
        .iter()
        .map(|d| {
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(joined, EXPECTED);
    assert_eq!(data[11]["delta"]["stop_reason"], "end_turn");
    assert_eq!(data[11]["usage"]["output_tokens"], 7);
}

#[tokio::test]
async fn embeddings_float_and_base64_agree() {
    let app = app();
    let float = post(
        &app,
        "/v1/embeddings",
        json!({"model": "text-embedding-3-small", "input": ["hello world", "bye"], "encoding_format": "float"}),
    )
    .await
    .json();
    assert_eq!(float["object"], "list");
    assert_eq!(float["model"], "text-embedding-3-small");
    assert_eq!(
        float["usage"],
        json!({"prompt_tokens": 3, "total_tokens": 3})
    );
    let data = float["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["index"], 1);
    assert_eq!(data[0]["object"], "embedding");
    let v0: Vec<f32> = data[0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(v0.len(), 8);
    let norm: f32 = v0.iter().map(|x| x * x).sum();
    assert!((norm - 1.0).abs() < 1e-4);
    assert_ne!(data[0]["embedding"], data[1]["embedding"]);

    let b64 = post(
        &app,
        "/v1/embeddings",
        json!({"model": "m", "input": "hello world", "encoding_format": "base64"}),
    )
    .await
    .json();
    let encoded = b64["data"][0]["embedding"].as_str().unwrap();
    let decoded = decode_base64(encoded);
    assert_eq!(decoded.len(), 32);
    let floats: Vec<f32> = decoded
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(floats, v0);

    let wide = post(
        &app,
        "/v1/embeddings",
        json!({"model": "m", "input": [[1, 2, 3], [4]], "dimensions": 32}),
    )
    .await
    .json();
    assert_eq!(wide["data"][0]["embedding"].as_array().unwrap().len(), 32);
    assert_eq!(wide["usage"]["prompt_tokens"], 4);

    for bad in [json!([]), json!([1, "a"]), json!({"a": 1}), json!([[]])] {
        let r = post(&app, "/v1/embeddings", json!({"model": "m", "input": bad})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.json()["error"]["param"], "input");
    }
}

fn decode_base64(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut out = Vec::new();
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    out
}

#[tokio::test]
async fn models_list() {
    let app = app();
    let v = get(&app, "/v1/models").await.json();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["object"], "model");
            assert_eq!(m["owned_by"], "mock");
            m["id"].as_str().unwrap()
        })
        .collect();
    for id in [
        "gpt-4o",
        "gpt-4o-mini",
        "text-embedding-3-small",
        "claude-sonnet-4-5",
    ] {
        assert!(ids.contains(&id), "{id}");
    }
    let one = get(&app, "/v1/models/gpt-4o").await.json();
    assert_eq!(one["id"], "gpt-4o");
}

#[tokio::test]
async fn faults_status_in_provider_shape() {
    let app = app();
    let r = post(&app, "/_mock/faults", json!({"status": 429})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"queued": 1}));
    let r = post(&app, "/v1/chat/completions", chat_body(false)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers["retry-after"], "1");
    let v = r.json();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert!(v["error"]["message"].is_string());
    assert!(v["error"].as_object().unwrap().contains_key("param"));
    // Consumed: the next request succeeds.
    assert_eq!(
        post(&app, "/v1/chat/completions", chat_body(false))
            .await
            .status,
        StatusCode::OK
    );

    post(&app, "/_mock/faults", json!({"status": 529})).await;
    let body =
        json!({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]});
    let r = post(&app, "/v1/messages", body).await;
    assert_eq!(r.status.as_u16(), 529);
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "overloaded_error");

    post(
        &app,
        "/_mock/faults",
        json!({"status": 503, "body": {"custom": true}}),
    )
    .await;
    let r = post(&app, "/v1/embeddings", json!({"model": "m", "input": "x"})).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json(), json!({"custom": true}));
}

#[tokio::test]
async fn faults_fifo_count_and_path() {
    let app = app();
    post(
        &app,
        "/_mock/faults",
        json!([
            {"status": 500, "count": 2},
            {"status": 502},
            {"status": 401, "path": "/v1/messages"},
        ]),
    )
    .await;
    assert_eq!(
        get(&app, "/_mock/faults")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // The path-limited fault goes first to the route it names.
    let body =
        json!({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]});
    assert_eq!(post(&app, "/v1/messages", body).await.status.as_u16(), 500);
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(
            post(&app, "/v1/chat/completions", chat_body(false))
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(seen, [500, 502, 200, 200]);
    let body =
        json!({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]});
    assert_eq!(
        post(&app, "/v1/messages", body.clone())
            .await
            .status
            .as_u16(),
        401
    );
    assert_eq!(post(&app, "/v1/messages", body).await.status.as_u16(), 200);

    post(&app, "/_mock/faults", json!({"status": 500, "count": 5})).await;
    let r = send(
        &app,
        request(Method::DELETE, "/_mock/faults", Body::empty()),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        post(&app, "/v1/chat/completions", chat_body(false))
            .await
            .status,
        StatusCode::OK
    );

    for bad in [
        json!({}),
        json!({"status": 42}),
        json!({"status": 500, "count": 0}),
        json!({"sttus": 500}),
    ] {
        let r = post(&app, "/_mock/faults", bad.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let r = send(&app, request(Method::POST, "/_mock/faults", "{nope")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

/// Reads a body until it ends or fails: the bytes received and whether it
/// failed.
async fn read_until_error(response: axum::response::Response) -> (String, bool) {
    let mut stream = response.into_body().into_data_stream();
    let mut got = Vec::new();
    while let Some(frame) = stream.next().await {
        match frame {
            Ok(bytes) => got.extend_from_slice(&bytes),
            Err(_) => return (String::from_utf8(got).unwrap(), true),
        }
    }
    (String::from_utf8(got).unwrap(), false)
}

#[tokio::test]
async fn fault_cut_truncates_streams() {
    let app = app();
    post(&app, "/_mock/faults", json!({"cut_after_chunks": 3})).await;
    let req = request(
        Method::POST,
        "/v1/chat/completions",
        chat_body(true).to_string(),
    );
    let response = app.clone().oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (got, failed) = read_until_error(response).await;
    assert!(failed);
    assert_eq!(sse_events(&got).len(), 3);
    assert!(!got.contains("[DONE]"));

    // Anthropic, cut before anything is sent.
    post(&app, "/_mock/faults", json!({"cut_after_chunks": 0})).await;
    let body = json!({"model": "c", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": "x"}]});
    let response = app
        .clone()
        .oneshot(request(Method::POST, "/v1/messages", body.to_string()))
        .await
        .unwrap();
    let (got, failed) = read_until_error(response).await;
    assert!(failed);
    assert_eq!(got, "");

    // A non-streaming reply is cut in the middle of its JSON.
    post(&app, "/_mock/faults", json!({"cut_after_chunks": 1})).await;
    let req = request(
        Method::POST,
        "/v1/chat/completions",
        chat_body(false).to_string(),
    );
    let (got, failed) = read_until_error(app.clone().oneshot(req).await.unwrap()).await;
    assert!(failed);
    assert!(!got.is_empty());
    assert!(serde_json::from_str::<Value>(&got).is_err());

    // A cut beyond the end still fails instead of ending cleanly.
    post(&app, "/_mock/faults", json!({"cut_after_chunks": 100})).await;
    let req = request(
        Method::POST,
        "/v1/chat/completions",
        chat_body(true).to_string(),
    );
    let (got, failed) = read_until_error(app.clone().oneshot(req).await.unwrap()).await;
    assert!(failed);
    assert!(got.ends_with("data: [DONE]\n\n"));
}

/// Delays are checked as lower bounds on real time (tokio's paused clock
/// needs a feature the crate does not enable); they are short so the test
/// stays fast.
#[tokio::test]
async fn latency_and_chunk_delay_are_applied() {
    let app = router(&MockOptions {
        latency_ms: 30,
        chunk_delay_ms: 5,
        ..MockOptions::default()
    });
    let start = std::time::Instant::now();
    let r = post(&app, "/v1/chat/completions", chat_body(false)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(start.elapsed() >= Duration::from_millis(30));

    let start = std::time::Instant::now();
    let r = post(&app, "/v1/chat/completions", chat_body(true)).await;
    // 10 events: 9 pauses between them.
    assert_eq!(sse_events(&r.text()).len(), 10);
    assert!(start.elapsed() >= Duration::from_millis(30 + 9 * 5));

    post(
        &app,
        "/_mock/faults",
        json!({"latency_ms": 100, "path": "/v1/models"}),
    )
    .await;
    let start = std::time::Instant::now();
    let r = get(&app, "/v1/models").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(start.elapsed() >= Duration::from_millis(130));

    let v = send(
        &app,
        request(Method::PUT, "/_mock/config", r#"{"latency_ms":0}"#),
    )
    .await
    .json();
    assert_eq!(v["latency_ms"], 0);
    assert_eq!(v["chunk_delay_ms"], 5);
    assert_eq!(v["record"], true);
    let r = send(
        &app,
        request(Method::PUT, "/_mock/config", r#"{"latency":0}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn requests_are_recorded() {
    let app = app();
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/chat/completions?x=1")
        .header("Authorization", "Bearer sk-test")
        .header("X-Multi", "a")
        .header("x-multi", "b")
        .body(Body::from(chat_body(false).to_string()))
        .unwrap();
    send(&app, req).await;
    let big = "x".repeat(70 * 1024);
    send(&app, request(Method::POST, "/v1/embeddings", big.clone())).await;
    get(&app, "/nope").await;
    get(&app, "/_mock/health").await;

    let list = get(&app, "/_mock/requests").await.json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3);
    let first = &list[0];
    assert_eq!(first["method"], "POST");
    assert_eq!(first["path"], "/v1/chat/completions");
    assert_eq!(first["query"], "x=1");
    assert_eq!(first["headers"]["authorization"], "Bearer sk-test");
    assert_eq!(first["headers"]["x-multi"], "a, b");
    assert_eq!(
        serde_json::from_str::<Value>(first["body"].as_str().unwrap()).unwrap(),
        chat_body(false)
    );
    assert!(first["timestamp_ms"].as_i64().unwrap() > 1_600_000_000_000);
    assert_eq!(list[1]["body"].as_str().unwrap().len(), 64 * 1024);
    assert_eq!(list[1]["body_truncated"], true);
    assert_eq!(list[2]["path"], "/nope");

    let r = send(
        &app,
        request(Method::DELETE, "/_mock/requests", Body::empty()),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(get(&app, "/_mock/requests").await.json(), json!([]));
}

#[tokio::test]
async fn recording_keeps_the_last_1000() {
    let app = app();
    for _ in 0..1005 {
        get(&app, "/v1/models").await;
    }
    let list = get(&app, "/_mock/requests").await.json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1000);
    assert_eq!(list[0]["seq"], 5);
    assert_eq!(list[999]["seq"], 1004);
}

#[tokio::test]
async fn malformed_json_is_400_in_provider_shape() {
    let app = app();
    for path in ["/v1/chat/completions", "/v1/embeddings", "/v1/responses"] {
        for body in [
            "{not json",
            "",
            "[]",
            r#"{"model": 5}"#,
            r#"{"model":"m","messages":"x"}"#,
        ] {
            let r = send(&app, request(Method::POST, path, body)).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path} {body}");
            assert_eq!(
                r.json()["error"]["type"],
                "invalid_request_error",
                "{path} {body}"
            );
        }
    }
    let r = send(&app, request(Method::POST, "/v1/messages", "{oops")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    let r = send(
        &app,
        request(Method::POST, "/v1beta/models/g:generateContent", "{oops"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(r.json()["error"]["code"], 400);

    let r = post(
        &app,
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(r.json()["error"]["param"], "model");
    let r = post(&app, "/v1/chat/completions", json!({"model": "m"})).await;
    assert_eq!(r.json()["error"]["code"], "missing_required_parameter");
    // Invalid UTF-8 is malformed, not a crash.
    let r = send(
        &app,
        request(Method::POST, "/v1/chat/completions", vec![0xff, 0xfe]),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unknown_routes_are_404_in_openai_shape() {
    let app = app();
    let r = get(&app, "/v2/whatever").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"]["code"], "unknown_url");
    assert_eq!(r.json()["error"]["type"], "not_found_error");
    let r = get(&app, "/v1/chat/completions").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.json()["error"]["message"].is_string());
    let r = get(&app, "/_mock/health").await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn gemini_generate_and_stream() {
    let app = app();
    let body = json!({
        "systemInstruction": {"parts": [{"text": "be nice"}]},
        "contents": [{"role": "user", "parts": [{"text": "hi there"}]}],
    });
    let v = post(
        &app,
        "/v1beta/models/gemini-2.5-flash:generateContent",
        body.clone(),
    )
    .await
    .json();
    assert_eq!(v["candidates"][0]["content"]["parts"][0]["text"], EXPECTED);
    assert_eq!(v["candidates"][0]["content"]["role"], "model");
    assert_eq!(v["candidates"][0]["finishReason"], "STOP");
    assert_eq!(v["usageMetadata"]["promptTokenCount"], 4);
    assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 7);
    assert_eq!(v["usageMetadata"]["totalTokenCount"], 11);
    assert_eq!(v["modelVersion"], "gemini-2.5-flash");

    let r = post(
        &app,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        body.clone(),
    )
    .await;
    assert_eq!(r.headers["content-type"], "text/event-stream");
    let text = r.text();
    let chunks: Vec<Value> = text
        .split("\r\n\r\n")
        .filter(|e| !e.is_empty())
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    assert_eq!(chunks.len(), 7);
    let joined: String = chunks
        .iter()
        .map(|c| {
            c["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(joined, EXPECTED);
    assert_eq!(chunks[6]["candidates"][0]["finishReason"], "STOP");
    assert!(chunks[5]["candidates"][0].get("finishReason").is_none());
    assert_eq!(chunks[6]["usageMetadata"]["candidatesTokenCount"], 7);

    let r = post(
        &app,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        body.clone(),
    )
    .await;
    let array = r.json();
    assert_eq!(array.as_array().unwrap().len(), 7);

    let mut short = body;
    short["generationConfig"] = json!({"maxOutputTokens": 2});
    let v = post(&app, "/v1beta/models/g:generateContent", short)
        .await
        .json();
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        "Hello from"
    );
    assert_eq!(v["candidates"][0]["finishReason"], "MAX_TOKENS");

    let r = post(&app, "/v1beta/models/g:doSomething", json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"]["status"], "NOT_FOUND");
}

#[tokio::test]
async fn responses_api_json_and_stream() {
    let app = app();
    let body = json!({"model": "gpt-4.1", "instructions": "be nice", "input": "hi there"});
    let v = post(&app, "/v1/responses", body.clone()).await.json();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["output"][0]["content"][0]["text"], EXPECTED);
    assert_eq!(v["usage"]["input_tokens"], 4);
    assert_eq!(v["usage"]["output_tokens"], 7);

    let mut stream = body;
    stream["stream"] = json!(true);
    let events = sse_events(&post(&app, "/v1/responses", stream).await.text());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_deref().unwrap()).collect();
    assert_eq!(names.first(), Some(&"response.created"));
    assert_eq!(names.last(), Some(&"response.completed"));
    let joined: String = events
        .iter()
        .filter(|(n, _)| n.as_deref() == Some("response.output_text.delta"))
        .map(|(_, d)| {
            serde_json::from_str::<Value>(d).unwrap()["delta"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(joined, EXPECTED);
    for (i, (_, d)) in events.iter().enumerate() {
        assert_eq!(
            serde_json::from_str::<Value>(d).unwrap()["sequence_number"],
            i
        );
    }
}

#[tokio::test]
async fn odd_inputs_never_produce_a_server_error() {
    let app = app();
    let bodies = [
        "null",
        "0",
        "\"str\"",
        "{}",
        r#"{"model":"m","messages":[]}"#,
        r#"{"model":"m","messages":[null]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":{"a":1}}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":[1,2]}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":[{"text":5}]}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"\ud800"}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":-1}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":1e99}"#,
        r#"{"model":"m","max_tokens":9223372036854775807,"stream":true,"messages":[{"role":"user","content":"  "}]}"#,
        r#"{"model":"m","input":[[1,2],["a"]]}"#,
        r#"{"model":"m","input":"x","dimensions":-3}"#,
        r#"{"model":"m","input":"x","dimensions":8192,"encoding_format":"hex"}"#,
        r#"{"model":"m","input":[{"role":"user"}],"stream":true}"#,
        r#"{"contents":[{"parts":"x"}],"generationConfig":{"maxOutputTokens":0}}"#,
        r#"{"contents":[{}],"systemInstruction":null}"#,
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    ];
    let paths = [
        "/v1/chat/completions",
        "/v1/embeddings",
        "/v1/responses",
        "/v1/messages",
        "/v1/messages/count_tokens",
        "/v1beta/models/g:generateContent",
        "/v1beta/models/g:streamGenerateContent?alt=sse",
        "/v1beta/models/g:countTokens",
        "/v1beta/models/:generateContent",
        "/openai/deployments/d/chat/completions?api-version=2024-10-21",
        "/openai/deployments/d/embeddings?api-version=2024-10-21",
        "/model/m/converse",
        "/model/m/converse-stream",
        "/v1/projects/p/locations/l/publishers/google/models/g:generateContent",
        "/v1/projects/p/locations/l/publishers/anthropic/models/c:rawPredict",
        "/token",
        "/t/oauth2/v2.0/token",
    ];
    for path in paths {
        for body in bodies {
            let r = send(&app, request(Method::POST, path, body)).await;
            assert!(r.status.as_u16() < 500, "{path} {body} → {}", r.status);
            // Every error is JSON.
            if !r.status.is_success() {
                r.json();
            }
        }
    }
    let oversized = Request::builder()
        .method(Method::POST)
        .uri("/v1/chat/completions")
        .header("content-length", "999999999999")
        .body(Body::empty())
        .unwrap();
    let r = send(&app, oversized).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.json()["error"]["message"].is_string());
}

#[tokio::test]
async fn azure_deployment_names_the_model() {
    let app = app();
    let body = json!({"messages": [{"role": "user", "content": "hi there"}]});
    let v = post(
        &app,
        "/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21",
        body,
    )
    .await
    .json();
    assert_eq!(v["model"], "my-gpt");
    assert_eq!(v["choices"][0]["message"]["content"], EXPECTED);
}
