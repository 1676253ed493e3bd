//! Several upstreams per model: a dead key, a 429 storm and a dead provider
//! are routed around before anything reaches the client; a stream cut after
//! its first byte is not retried.

use crate::support::{chat_body, mock, Backend, TestGateway};
use futures_util::StreamExt;
use keygate::mock::MockOptions;
use rand::distr::{Alphanumeric, SampleString};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;

fn secret(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        Alphanumeric.sample_string(&mut rand::rng(), 24)
    )
}

async fn recorded(mock: SocketAddr) -> Vec<Value> {
    reqwest::get(format!("http://{mock}/_mock/requests"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn fault(mock: SocketAddr, fault: Value) {
    let response = reqwest::Client::new()
        .post(format!("http://{mock}/_mock/faults"))
        .json(&fault)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
}

fn bearer(request: &Value) -> String {
    request["headers"]["authorization"]
        .as_str()
        .unwrap()
        .trim_start_matches("Bearer ")
        .to_string()
}

/// A gateway whose `gpt-*` models are served by provider `east` (two keys,
/// on the gateway's mock) and, when `west` is given, also by provider `west`
/// (one key, on that mock).
async fn gateway(west: Option<SocketAddr>, env: &[(&str, &str)]) -> (TestGateway, [String; 3]) {
    let keys = [secret("east-a"), secret("east-b"), secret("west")];
    let vars = keys.clone();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let gw = TestGateway::start_with(Backend::Sqlite, MockOptions::default(), move |mock| {
        let mut toml = format!(
            "[[providers]]\nname = \"east\"\nkind = \"openai\"\nbase_url = \"http://{mock}/v1\"\n\
             api_key_envs = [\"EAST_A\", \"EAST_B\"]\nmodels = [\"gpt-*\"]\n"
        );
        if let Some(west) = west {
            toml.push_str(&format!(
                "\n[[providers]]\nname = \"west\"\nkind = \"openai\"\nbase_url = \"http://{west}/v1\"\n\
                 api_key_env = \"WEST\"\nmodels = [\"gpt-*\"]\n"
            ));
        }
        let mut vars_env = BTreeMap::from([
            ("EAST_A".to_string(), vars[0].clone()),
            ("EAST_B".to_string(), vars[1].clone()),
            ("WEST".to_string(), vars[2].clone()),
            // Only the providers above: no standard-variable providers.
            ("OPENAI_API_KEY".to_string(), String::new()),
            ("ANTHROPIC_API_KEY".to_string(), String::new()),
        ]);
        vars_env.extend(env);
        (toml, vars_env)
    })
    .await;
    (gw, keys)
}

#[tokio::test]
async fn a_dead_key_is_routed_around_and_then_avoided() {
    let (gw, keys) = gateway(None, &[]).await;
    let (_, key) = gw.create_key(json!({"name": "f"})).await;
    // Whichever key is tried first is refused once, as a revoked provider
    // key would be.
    fault(gw.mock, json!({"status": 401, "count": 1})).await;
    let response = gw.chat(&key, chat_body(false)).await;
    assert_eq!(response.status(), 200, "the other key answered");
    let seen = recorded(gw.mock).await;
    assert_eq!(seen.len(), 2);
    let (dead, good) = (bearer(&seen[0]), bearer(&seen[1]));
    assert_ne!(dead, good);
    assert!(keys[..2].contains(&dead) && keys[..2].contains(&good));
    // The refused key now waits out its cooldown: the next requests start
    // with the good one.
    for _ in 0..5 {
        assert_eq!(gw.chat(&key, chat_body(false)).await.status(), 200);
    }
    let seen = recorded(gw.mock).await;
    assert!(seen[2..].iter().all(|r| bearer(r) == good));
    gw.finish().await;
}

#[tokio::test]
async fn a_429_storm_on_one_provider_moves_traffic_to_the_other() {
    let west = mock(MockOptions::default()).await;
    let (gw, keys) = gateway(Some(west), &[]).await;
    let (id, key) = gw.create_key(json!({"name": "f"})).await;
    fault(
        gw.mock,
        json!({"status": 429, "count": 1000, "body": {"error": {"message": "slow down"}}}),
    )
    .await;
    for _ in 0..8 {
        let response = gw.chat(&key, chat_body(false)).await;
        assert_eq!(response.status(), 200);
    }
    let west_seen = recorded(west).await;
    assert_eq!(west_seen.len(), 8, "every request was answered by west");
    assert!(west_seen.iter().all(|r| bearer(r) == keys[2]));
    // East was tried at most until both of its keys were cooling down.
    assert!(recorded(gw.mock).await.len() <= 2);
    let events = gw.events_of(&id).await;
    assert!(events
        .iter()
        .all(|e| e.status == 200 && e.provider.as_deref() == Some("west")));

    // When every upstream is rate limited the client gets 429 with Retry-After.
    fault(west, json!({"status": 429, "count": 1000})).await;
    let response = gw.chat(&key, chat_body(false)).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    gw.finish().await;
}

#[tokio::test]
async fn a_dead_provider_fails_over_and_all_dead_is_a_502_without_upstream_text() {
    // West's address is a port nobody listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let (gw, _) = gateway(Some(closed), &[]).await;
    let (_, key) = gw.create_key(json!({"name": "f"})).await;
    for _ in 0..4 {
        assert_eq!(gw.chat(&key, chat_body(false)).await.status(), 200);
    }
    fault(
        gw.mock,
        json!({"status": 503, "count": 1000, "body": {"error": {"message": "internal detail xyz"}}}),
    )
    .await;
    let response = gw.chat(&key, chat_body(false)).await;
    assert_eq!(response.status(), 502);
    let text = response.text().await.unwrap();
    assert!(!text.contains("internal detail xyz"), "{text}");
    gw.finish().await;
}

#[tokio::test]
async fn a_stream_cut_after_its_first_byte_is_not_retried() {
    let west = mock(MockOptions::default()).await;
    let (gw, _) = gateway(Some(west), &[]).await;
    let (id, key) = gw.create_key(json!({"name": "f"})).await;
    fault(gw.mock, json!({"cut_after_chunks": 2, "count": 1000})).await;
    fault(west, json!({"cut_after_chunks": 2, "count": 1000})).await;
    let response = gw.chat(&key, chat_body(true)).await;
    assert_eq!(response.status(), 200, "the stream had begun");
    let mut stream = response.bytes_stream();
    let mut failed = false;
    while let Some(chunk) = stream.next().await {
        if chunk.is_err() {
            failed = true;
            break;
        }
    }
    assert!(
        failed,
        "the client sees a truncated stream, not a complete one"
    );
    let attempts = recorded(gw.mock).await.len() + recorded(west).await.len();
    assert_eq!(attempts, 1, "no retry once bytes reached the client");
    let events = gw.events_of(&id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].status, 502);
    assert_eq!(events[0].error_code.as_deref(), Some("upstream_stream_cut"));
    gw.finish().await;
}

#[tokio::test]
async fn a_client_that_leaves_a_slow_request_cancels_it_and_is_recorded() {
    let (gw, _) = gateway(None, &[]).await;
    let (id, key) = gw.create_key(json!({"name": "f"})).await;
    // The upstream would take a minute; the client gives up long before.
    fault(gw.mock, json!({"latency_ms": 60000})).await;
    let impatient = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(300))
        .build()
        .unwrap();
    let result = impatient
        .post(format!("{}/v1/chat/completions", gw.base))
        .bearer_auth(&key)
        .json(&chat_body(false))
        .send()
        .await;
    assert!(result.is_err(), "the client timed out");
    // The row arrives when the gateway drops the request, not when the
    // upstream would have answered.
    gw.ledger_rows(1).await;
    let events = gw.events_of(&id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].status, 499);
    assert_eq!(
        events[0].error_code.as_deref(),
        Some("client_closed_request")
    );
    assert!(events[0].latency_ms < 30_000);
    gw.finish().await;
}

#[tokio::test]
async fn an_upstream_slower_than_the_first_byte_timeout_fails_over() {
    let west = mock(MockOptions::default()).await;
    let (gw, _) = gateway(Some(west), &[("KEYGATE_FIRST_BYTE_TIMEOUT", "300ms")]).await;
    let (id, key) = gw.create_key(json!({"name": "f"})).await;
    // East would answer in a minute, far past the first-byte timeout.
    fault(gw.mock, json!({"latency_ms": 60000, "count": 1000})).await;
    for _ in 0..3 {
        assert_eq!(gw.chat(&key, chat_body(false)).await.status(), 200);
    }
    let events = gw.events_of(&id).await;
    assert!(events
        .iter()
        .all(|e| e.provider.as_deref() == Some("west") && e.status == 200));
    // East timed out at most once: afterwards it was cooling down.
    assert!(recorded(gw.mock).await.len() <= 1);
    gw.finish().await;
}
