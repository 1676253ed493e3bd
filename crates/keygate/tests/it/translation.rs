//! Translated streams stay streams: the first translated event reaches the
//! client while the upstream is still generating, and a long translated
//! stream does not grow the gateway's memory.

use crate::support::{Backend, TestGateway};
use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;
use keygate::mock::MockOptions;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use tokio::sync::mpsc;

type Chunks = mpsc::Sender<Result<Bytes, std::io::Error>>;

/// An OpenAI-format upstream whose one streamed answer is whatever the test
/// pushes into the returned channel, when it pushes it.
async fn held_upstream() -> (SocketAddr, mpsc::Receiver<Chunks>) {
    let (streams_tx, streams_rx) = mpsc::channel::<Chunks>(4);
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || {
            let streams_tx = streams_tx.clone();
            async move {
                let (tx, rx) = mpsc::channel(16);
                let _ = streams_tx.send(tx).await;
                axum::response::Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::from_stream(
                        tokio_stream::wrappers::ReceiverStream::new(rx),
                    ))
                    .unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, streams_rx)
}

async fn gateway_to(upstream: SocketAddr) -> TestGateway {
    TestGateway::start_with(Backend::Sqlite, MockOptions::default(), move |_| {
        let toml = format!(
            "[[providers]]\nname = \"held\"\nkind = \"openai\"\nbase_url = \"http://{upstream}/v1\"\n\
             api_key_env = \"HELD_KEY\"\nmodels = [\"held-*\"]\n"
        );
        (
            toml,
            BTreeMap::from([
                ("HELD_KEY".to_string(), "sk-held-test".to_string()),
                ("OPENAI_API_KEY".to_string(), String::new()),
                ("ANTHROPIC_API_KEY".to_string(), String::new()),
            ]),
        )
    })
    .await
}

fn chunk(delta: serde_json::Value, finish: Option<&str>) -> Bytes {
    let chunk = json!({
        "id": "chatcmpl-held", "object": "chat.completion.chunk", "created": 1, "model": "held-1",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    Bytes::from(format!("data: {chunk}\n\n"))
}

async fn anthropic_stream(base: String, http: reqwest::Client, key: String) -> reqwest::Response {
    let response = http
        .post(format!("{base}/v1/messages"))
        .header("x-api-key", &key)
        .header("anthropic-version", "2023-06-01")
        .json(
            &json!({"model": "held-1", "max_tokens": 100, "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response
}

#[tokio::test]
async fn the_first_translated_event_arrives_before_the_upstream_ends() {
    let (upstream, mut streams) = held_upstream().await;
    let gw = gateway_to(upstream).await;
    let (_, key) = gw.create_key(json!({"name": "t"})).await;
    let client = tokio::spawn(anthropic_stream(gw.base.clone(), gw.http.clone(), key));
    let upstream_tx = streams.recv().await.unwrap();
    upstream_tx
        .send(Ok(chunk(json!({"role": "assistant", "content": ""}), None)))
        .await
        .unwrap();
    upstream_tx
        .send(Ok(chunk(json!({"content": "Hello"}), None)))
        .await
        .unwrap();
    let response = client.await.unwrap();
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("\"text\":\"Hello\"") {
        let next = body.next().await.expect("stream open").unwrap();
        seen.push_str(std::str::from_utf8(&next).unwrap());
    }
    // The upstream has not finished (the test still holds its stream open),
    // yet the client already has the Anthropic-format text delta.
    assert!(seen.contains("event: message_start"), "{seen}");
    assert!(seen.contains("event: content_block_delta"), "{seen}");
    assert!(!seen.contains("message_stop"));
    upstream_tx
        .send(Ok(chunk(json!({}), Some("stop"))))
        .await
        .unwrap();
    let usage = json!({"id": "chatcmpl-held", "object": "chat.completion.chunk", "created": 1,
                       "model": "held-1", "choices": [],
                       "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}});
    upstream_tx
        .send(Ok(Bytes::from(format!(
            "data: {usage}\n\ndata: [DONE]\n\n"
        ))))
        .await
        .unwrap();
    drop(upstream_tx);
    while let Some(next) = body.next().await {
        seen.push_str(std::str::from_utf8(&next.unwrap()).unwrap());
    }
    assert!(seen.contains("\"stop_reason\":\"end_turn\""), "{seen}");
    assert!(
        seen.trim_end().ends_with("{\"type\":\"message_stop\"}"),
        "{seen}"
    );
    gw.finish().await;
}

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[tokio::test]
async fn a_long_translated_stream_keeps_memory_flat() {
    // Each test runs in its own process (nextest), so this process's
    // resident memory is the gateway's, the upstream's and the client's.
    let (upstream, mut streams) = held_upstream().await;
    let gw = gateway_to(upstream).await;
    let (_, key) = gw.create_key(json!({"name": "t"})).await;
    let client = tokio::spawn(anthropic_stream(gw.base.clone(), gw.http.clone(), key));
    let upstream_tx = streams.recv().await.unwrap();
    const CHUNKS: usize = 50_000;
    let text = "x".repeat(1000);
    let producer = tokio::spawn(async move {
        upstream_tx
            .send(Ok(chunk(json!({"role": "assistant", "content": ""}), None)))
            .await
            .unwrap();
        for _ in 0..CHUNKS {
            upstream_tx
                .send(Ok(chunk(json!({"content": text}), None)))
                .await
                .unwrap();
        }
        upstream_tx
            .send(Ok(chunk(json!({}), Some("stop"))))
            .await
            .unwrap();
        upstream_tx
            .send(Ok(Bytes::from_static(b"data: [DONE]\n\n")))
            .await
            .unwrap();
    });
    let response = client.await.unwrap();
    let mut body = response.bytes_stream();
    let mut received = 0usize;
    let mut baseline = None;
    let mut peak = 0u64;
    let mut tail = Vec::new();
    while let Some(next) = body.next().await {
        let next = next.unwrap();
        received += next.len();
        tail = next.to_vec();
        // Measure once the stream is warm (10 MB through), then throughout.
        if received > 10_000_000 {
            let now = resident_bytes();
            baseline.get_or_insert(now);
            peak = peak.max(now);
        }
    }
    producer.await.unwrap();
    assert!(received > CHUNKS * 1000, "about 50 MB went through");
    assert!(String::from_utf8_lossy(&tail).contains("message_stop"));
    let growth = peak.saturating_sub(baseline.unwrap());
    assert!(
        growth < 16 * 1024 * 1024,
        "resident memory grew by {growth} bytes over a 50 MB stream"
    );
    gw.finish().await;
}
