//! Tool calls, generation limits, images and cached-token usage in the
//! OpenAI, Anthropic and Gemini formats (Bedrock's are in `tests_cloud`).

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};

use super::tests::{app, post, send, sse_events};

const GEMINI: &str = "/v1beta/models/gemini-2.5-flash:generateContent";
const GEMINI_SSE: &str = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse";

fn data(events: &[(Option<String>, String)]) -> Vec<Value> {
    events
        .iter()
        .filter(|(_, d)| d != "[DONE]")
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect()
}

fn gemini_chunks(text: &str) -> Vec<Value> {
    text.split("\r\n\r\n")
        .filter(|e| !e.is_empty())
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect()
}

// ---------------------------------------------------------------- OpenAI --

fn openai_tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}},
    ])
}

#[tokio::test]
async fn openai_tool_calls_json_and_stream() {
    let app = app();
    let body = json!({
        "model": "gpt-4o",
        "tools": openai_tools(),
        "messages": [{"role": "user", "content": "hi there"}],
    });
    let v = post(&app, "/v1/chat/completions", body.clone())
        .await
        .json();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert!(choice["message"]["content"].is_null());
    let call = &choice["message"]["tool_calls"][0];
    assert!(call["id"].as_str().unwrap().starts_with("call_mock_"));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "search");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"query": "hi there"}));
    assert_eq!(choice["message"]["tool_calls"].as_array().unwrap().len(), 1);

    let mut forced = body.clone();
    forced["tool_choice"] = json!({"type": "function", "function": {"name": "lookup"}});
    let v = post(&app, "/v1/chat/completions", forced).await.json();
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "lookup"
    );
    let mut none = body.clone();
    none["tool_choice"] = json!("none");
    let v = post(&app, "/v1/chat/completions", none).await.json();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["choices"][0]["message"].get("tool_calls").is_none());

    let mut stream = body.clone();
    stream["stream"] = json!(true);
    let chunks = data(&sse_events(
        &post(&app, "/v1/chat/completions", stream).await.text(),
    ));
    let first = &chunks[0]["choices"][0]["delta"]["tool_calls"][0];
    assert!(first["id"].as_str().unwrap().starts_with("call_mock_"));
    assert_eq!(first["function"]["name"], "search");
    let fragments: Vec<&str> = chunks[1..]
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert!(fragments.len() >= 2, "{fragments:?}");
    let args: Value = serde_json::from_str(&fragments.concat()).unwrap();
    assert_eq!(args, json!({"query": "hi there"}));
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );

    // The tool's result comes back.
    let result = json!({
        "model": "gpt-4o",
        "tools": openai_tools(),
        "messages": [
            {"role": "user", "content": "hi there"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "search", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny and"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "warm"}]},
        ],
    });
    let v = post(&app, "/v1/chat/completions", result).await.json();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Tool result: sunny and warm"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn openai_stop_images_and_cached_tokens() {
    let app = app();
    let body = json!({
        "model": "gpt-4o",
        "stop": ["said", "mock"],
        "messages": [{"role": "user", "content": "hi there"}],
    });
    let v = post(&app, "/v1/chat/completions", body).await.json();
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from ");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["completion_tokens"], 2);

    let body = json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
        ]}],
    });
    let v = post(&app, "/v1/chat/completions", body.clone())
        .await
        .json();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Hello from mock! You said: look [images: 2]"
    );
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 0);

    set_cached(&app, 3).await;
    let v = post(&app, "/v1/chat/completions", body.clone())
        .await
        .json();
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 3);
    let mut stream = body;
    stream["stream"] = json!(true);
    stream["stream_options"] = json!({"include_usage": true});
    let chunks = data(&sse_events(
        &post(&app, "/v1/chat/completions", stream).await.text(),
    ));
    assert_eq!(
        chunks.last().unwrap()["usage"]["prompt_tokens_details"]["cached_tokens"],
        3
    );
    let v = post(&app, "/v1/responses", json!({"model": "m", "input": "hi"}))
        .await
        .json();
    assert_eq!(v["usage"]["input_tokens_details"]["cached_tokens"], 3);
}

async fn set_cached(app: &Router, n: u64) {
    let r = send(
        app,
        Request::builder()
            .method(Method::PUT)
            .uri("/_mock/config")
            .body(Body::from(json!({ "cached_tokens": n }).to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["cached_tokens"], n);
}

// ------------------------------------------------------------- Anthropic --

fn anthropic_body() -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "tools": [
            {"name": "search", "input_schema": {"type": "object"}},
            {"name": "lookup", "input_schema": {"type": "object"}},
        ],
        "messages": [{"role": "user", "content": "hi there"}],
    })
}

#[tokio::test]
async fn anthropic_tool_use_json_and_stream() {
    let app = app();
    let v = post(&app, "/v1/messages", anthropic_body()).await.json();
    assert_eq!(v["stop_reason"], "tool_use");
    let block = &v["content"][0];
    assert_eq!(block["type"], "tool_use");
    assert!(block["id"].as_str().unwrap().starts_with("toolu_mock_"));
    assert_eq!(block["name"], "search");
    assert_eq!(block["input"], json!({"query": "hi there"}));

    let mut forced = anthropic_body();
    forced["tool_choice"] = json!({"type": "tool", "name": "lookup"});
    let v = post(&app, "/v1/messages", forced).await.json();
    assert_eq!(v["content"][0]["name"], "lookup");
    let mut none = anthropic_body();
    none["tool_choice"] = json!({"type": "none"});
    let v = post(&app, "/v1/messages", none).await.json();
    assert_eq!(v["content"][0]["type"], "text");

    let mut stream = anthropic_body();
    stream["stream"] = json!(true);
    let events = sse_events(&post(&app, "/v1/messages", stream).await.text());
    let start = events
        .iter()
        .find(|(n, _)| n.as_deref() == Some("content_block_start"))
        .unwrap();
    let start: Value = serde_json::from_str(&start.1).unwrap();
    assert_eq!(start["content_block"]["type"], "tool_use");
    assert_eq!(start["content_block"]["name"], "search");
    assert_eq!(start["content_block"]["input"], json!({}));
    let fragments: Vec<String> = events
        .iter()
        .filter(|(n, _)| n.as_deref() == Some("content_block_delta"))
        .map(|(_, d)| {
            let d: Value = serde_json::from_str(d).unwrap();
            assert_eq!(d["delta"]["type"], "input_json_delta");
            d["delta"]["partial_json"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(fragments.len() >= 2);
    let args: Value = serde_json::from_str(&fragments.concat()).unwrap();
    assert_eq!(args, json!({"query": "hi there"}));
    let delta = events
        .iter()
        .find(|(n, _)| n.as_deref() == Some("message_delta"))
        .unwrap();
    let delta: Value = serde_json::from_str(&delta.1).unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");

    let mut result = anthropic_body();
    result["messages"] = json!([
        {"role": "user", "content": "hi there"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "search", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "sunny"}]}]},
    ]);
    let v = post(&app, "/v1/messages", result).await.json();
    assert_eq!(v["content"][0]["text"], "Tool result: sunny");
    assert_eq!(v["stop_reason"], "end_turn");
}

#[tokio::test]
async fn anthropic_stop_sequences_images_and_cache() {
    let app = app();
    let body = json!({
        "model": "claude",
        "max_tokens": 100,
        "stop_sequences": ["You"],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "see"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        ]}],
    });
    let v = post(&app, "/v1/messages", body.clone()).await.json();
    assert_eq!(v["content"][0]["text"], "Hello from mock! ");
    assert_eq!(v["stop_reason"], "stop_sequence");
    assert_eq!(v["stop_sequence"], "You");
    let mut stream = body.clone();
    stream["stream"] = json!(true);
    let events = sse_events(&post(&app, "/v1/messages", stream).await.text());
    let delta = events
        .iter()
        .find(|(n, _)| n.as_deref() == Some("message_delta"))
        .unwrap();
    let delta: Value = serde_json::from_str(&delta.1).unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "stop_sequence");
    assert_eq!(delta["delta"]["stop_sequence"], "You");

    let mut images = body;
    images.as_object_mut().unwrap().remove("stop_sequences");
    let v = post(&app, "/v1/messages", images.clone()).await.json();
    assert_eq!(
        v["content"][0]["text"],
        "Hello from mock! You said: see [images: 1]"
    );
    assert!(v["stop_sequence"].is_null());
    assert_eq!(v["usage"]["cache_read_input_tokens"], 0);
    set_cached(&app, 7).await;
    let v = post(&app, "/v1/messages", images).await.json();
    assert_eq!(v["usage"]["cache_read_input_tokens"], 7);
}

// ---------------------------------------------------------------- Gemini --

fn gemini_body() -> Value {
    json!({
        "contents": [{"role": "user", "parts": [{"text": "hi there"}]}],
        "tools": [{"functionDeclarations": [
            {"name": "search", "parameters": {"type": "OBJECT"}},
            {"name": "lookup", "parameters": {"type": "OBJECT"}},
        ]}],
    })
}

#[tokio::test]
async fn gemini_function_calls_json_and_stream() {
    let app = app();
    let v = post(&app, GEMINI, gemini_body()).await.json();
    let candidate = &v["candidates"][0];
    assert_eq!(candidate["finishReason"], "STOP");
    assert_eq!(
        candidate["content"]["parts"][0]["functionCall"],
        json!({"name": "search", "args": {"query": "hi there"}})
    );
    assert!(candidate["content"]["parts"][0].get("text").is_none());

    let mut forced = gemini_body();
    forced["toolConfig"] =
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["lookup"]}});
    let v = post(&app, GEMINI, forced).await.json();
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["functionCall"]["name"],
        "lookup"
    );
    let mut none = gemini_body();
    none["toolConfig"] = json!({"functionCallingConfig": {"mode": "NONE"}});
    let v = post(&app, GEMINI, none).await.json();
    assert!(v["candidates"][0]["content"]["parts"][0]["text"].is_string());

    let chunks = gemini_chunks(&post(&app, GEMINI_SSE, gemini_body()).await.text());
    assert_eq!(chunks.len(), 1);
    assert_eq!(
        chunks[0]["candidates"][0]["content"]["parts"][0]["functionCall"]["name"],
        "search"
    );
    assert_eq!(chunks[0]["candidates"][0]["finishReason"], "STOP");

    let mut result = gemini_body();
    result["contents"] = json!([
        {"role": "user", "parts": [{"text": "hi there"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "search", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "search", "response": {"result": "sunny"}}}]},
    ]);
    let v = post(&app, GEMINI, result).await.json();
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        "Tool result: sunny"
    );
}

#[tokio::test]
async fn gemini_stop_sequences_images_and_cache() {
    let app = app();
    let body = json!({
        "contents": [{"role": "user", "parts": [
            {"text": "see"},
            {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
        ]}],
        "generationConfig": {"stopSequences": ["said"]},
    });
    let v = post(&app, GEMINI, body.clone()).await.json();
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        "Hello from mock! You "
    );
    assert_eq!(v["candidates"][0]["finishReason"], "STOP");
    assert!(v["usageMetadata"].get("cachedContentTokenCount").is_none());
    let mut start = body.clone();
    start["generationConfig"] = json!({"stopSequences": ["Hello"]});
    let chunks = gemini_chunks(&post(&app, GEMINI_SSE, start).await.text());
    assert_eq!(chunks.len(), 1);
    assert_eq!(
        chunks[0]["candidates"][0]["content"]["parts"][0]["text"],
        ""
    );

    let mut images = body;
    images["generationConfig"] = json!({"maxOutputTokens": 100});
    let v = post(&app, GEMINI, images.clone()).await.json();
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        "Hello from mock! You said: see [images: 1]"
    );
    set_cached(&app, 2).await;
    let v = post(&app, GEMINI, images).await.json();
    assert_eq!(v["usageMetadata"]["cachedContentTokenCount"], 2);
}
