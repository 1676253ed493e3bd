//! Streams are relayed as they arrive and metered from the stream itself;
//! a complete stream is in the ledger before the client sees its end.

use crate::support::{chat_body, TestGateway, BACKENDS};
use futures_util::StreamExt;
use keygate::mock::MockOptions;
use serde_json::json;

#[tokio::test]
async fn a_stream_the_client_saw_complete_is_already_journaled() {
    for backend in BACKENDS {
        let gw = TestGateway::start(backend, MockOptions::default()).await;
        let (id, key) = gw.create_key(json!({"name": "s"})).await;
        for _ in 0..5 {
            let response = gw.chat(&key, chat_body(true)).await;
            let request_id = response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_string();
            let body = response.text().await.unwrap();
            assert!(
                body.ends_with("data: [DONE]\n\n"),
                "{backend:?}: stream incomplete"
            );
            assert!(
                !body.contains("\"choices\":[]"),
                "usage chunk keygate asked for is stripped"
            );
            // No waiting: the terminal event was held until the row was journaled.
            assert!(
                gw.journal_text().contains(&request_id),
                "{backend:?}: journaled before the end"
            );
        }
        let events = gw.events_of(&id).await;
        assert_eq!(events.len(), 5, "{backend:?}");
        for event in events {
            assert_eq!((event.status, event.streamed), (200, true));
            // "count the words here" = 4 prompt words; the reply has 9 words.
            assert_eq!(
                (event.prompt_tokens, event.completion_tokens),
                (4, 9),
                "{backend:?}"
            );
        }
        gw.finish().await;
    }
}

#[tokio::test]
async fn a_stream_cut_upstream_is_billed_for_what_was_delivered() {
    let gw = TestGateway::start(crate::support::Backend::Sqlite, MockOptions::default()).await;
    let (id, key) = gw.create_key(json!({"name": "cut"})).await;
    gw.fault(json!({"cut_after_chunks": 4})).await;
    let response = gw.chat(&key, chat_body(true)).await;
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut received = Vec::new();
    let mut failed = false;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => received.extend_from_slice(&bytes),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&received);
    assert!(failed, "the client sees the stream end abnormally");
    assert!(!text.contains("[DONE]"));
    gw.ledger_rows(1).await;
    let events = gw.events_of(&id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].status, events[0].error_code.as_deref()),
        (502, Some("upstream_stream_cut"))
    );
    assert!(
        events[0].completion_tokens >= 1,
        "a cut stream is never billed zero"
    );
    gw.finish().await;
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_is_recorded() {
    let gw = TestGateway::start(
        crate::support::Backend::Sqlite,
        MockOptions {
            chunk_delay_ms: 100,
            ..Default::default()
        },
    )
    .await;
    let (id, key) = gw.create_key(json!({"name": "gone"})).await;
    let response = gw.chat(&key, chat_body(true)).await;
    let mut stream = response.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(
        first.starts_with(b"data: "),
        "first chunk arrives before the stream ends"
    );
    drop(stream);
    gw.ledger_rows(1).await;
    let events = gw.events_of(&id).await;
    assert_eq!(
        (events[0].status, events[0].error_code.as_deref()),
        (499, Some("client_closed_request"))
    );
    gw.finish().await;
}

#[tokio::test]
async fn upstream_failures_map_to_gateway_errors_without_upstream_text() {
    let gw = TestGateway::start(crate::support::Backend::Sqlite, MockOptions::default()).await;
    let (_, key) = gw.create_key(json!({"name": "f"})).await;

    gw.fault(json!({"status": 500, "body": {"error": {"message": "internal secret detail"}}}))
        .await;
    let response = gw.chat(&key, chat_body(false)).await;
    assert_eq!(response.status(), 502);
    let text = response.text().await.unwrap();
    assert!(
        !text.contains("secret detail"),
        "upstream text is not reflected"
    );

    gw.fault(json!({"status": 429})).await;
    let response = gw.chat(&key, chat_body(false)).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));

    gw.fault(json!({"status": 401})).await;
    assert_eq!(
        gw.chat(&key, chat_body(false)).await.status(),
        502,
        "a bad provider key is the gateway's problem"
    );

    gw.fault(json!({"status": 400})).await;
    assert_eq!(
        gw.chat(&key, chat_body(false)).await.status(),
        400,
        "the client's own mistakes pass through"
    );

    assert_eq!(
        gw.chat(&key, chat_body(false)).await.status(),
        200,
        "faults are consumed"
    );
    gw.finish().await;
}

#[tokio::test]
async fn a_stream_abandoned_half_way_is_billed_for_what_was_delivered() {
    let gw = TestGateway::start(
        crate::support::Backend::Sqlite,
        MockOptions {
            chunk_delay_ms: 100,
            ..Default::default()
        },
    )
    .await;
    let (id, key) = gw.create_key(json!({"name": "half"})).await;
    let response = gw.chat(&key, chat_body(true)).await;
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    // Read until the first words of the answer arrive, then hang up: the
    // provider's usage (sent only at the end) never comes.
    let mut received = Vec::new();
    while !String::from_utf8_lossy(&received).contains("\"content\":\"Hello") {
        received.extend_from_slice(&stream.next().await.unwrap().unwrap());
    }
    drop(stream);
    gw.ledger_rows(1).await;
    let events = gw.events_of(&id).await;
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(
        (event.status, event.error_code.as_deref()),
        (499, Some("client_closed_request"))
    );
    // The whole answer is 9 words; the client saw at least the first.
    assert!(
        (1..9).contains(&event.completion_tokens),
        "completion estimated from the deltas delivered: {}",
        event.completion_tokens
    );
    // No usage arrived: the prompt is estimated from the request's text,
    // "user" and "count the words here", 24 characters / 4.
    assert_eq!(event.prompt_tokens, 6);
    let price = *keygate::ledger::pricing::Prices::shipped()
        .unwrap()
        .price("openai", "gpt-4o-mini")
        .unwrap();
    let expected = price.cost(&keygate::ledger::pricing::TokenCount {
        prompt: 6,
        cached: 0,
        completion: event.completion_tokens as u64,
    });
    assert!(expected > 0);
    assert_eq!(event.cost_nanos, expected, "billed at the shipped price");
    gw.finish().await;
}
