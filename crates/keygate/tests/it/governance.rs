//! Spend and rate governance through the real router: budgets, request and
//! token rates and concurrency caps, on in-process counters and on Redis
//! shared by two nodes on one PostgreSQL database. The same tests run
//! against both kinds of counters.
//!
//! Prices are set so that a request's worst case equals its real cost: the
//! test model's input is free and its output costs $1,000 per million
//! tokens, and every request asks for `max_tokens: 5`, which the mock
//! provider always fills (its replies are longer). Each request therefore
//! costs exactly $0.005, the reservation is exact, and "a budget of N
//! requests admits N" holds with no estimate error. A separate test uses the
//! shipped prices, where the prompt estimate is larger than the real count,
//! and shows the budget is never exceeded.

use crate::support::{error_code, Backend, TestGateway};
use keygate::mock::MockOptions;
use rand::distr::{Alphanumeric, SampleString};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Which counters a gateway keeps its limits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Counting {
    InProcess,
    Redis,
}

const COUNTINGS: [Counting; 2] = [Counting::InProcess, Counting::Redis];

const PRICES: &str = r#"
[prices."gpt-4o-mini"]
input = 0.0
cached_input = 0.0
output = 1000.0
"#;

const MAX_TOKENS: u64 = 5;
/// One request's cost in nanodollars: 5 output tokens at $0.001 each.
const REQUEST_NANOS: i64 = 5_000_000;
const REQUEST_USD: f64 = 0.005;

/// Bounds a wait that should end promptly, so a bug fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(30);

fn redis_prefix() -> String {
    format!(
        "kgtest-{}",
        Alphanumeric
            .sample_string(&mut rand::rng(), 10)
            .to_lowercase()
    )
}

fn counting_env(counting: Counting, prefix: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    if counting == Counting::Redis {
        env.insert("KEYGATE_REDIS_URL".into(), "redis://127.0.0.1:6379".into());
        env.insert("KEYGATE_REDIS_PREFIX".into(), prefix.to_string());
    }
    env
}

async fn gateway(counting: Counting, options: MockOptions) -> TestGateway {
    let env = counting_env(counting, &redis_prefix());
    TestGateway::start_with(Backend::Sqlite, options, move |_| (PRICES.into(), env)).await
}

fn body() -> Value {
    json!({
        "model": "gpt-4o-mini",
        "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": "count the words here please"}]
    })
}

fn streamed_body() -> Value {
    let mut body = body();
    body["stream"] = json!(true);
    body
}

/// Spend the ledger holds for a key, nanodollars.
async fn ledger_spend(gateway: &TestGateway, key_id: &str) -> i64 {
    gateway
        .events_of(key_id)
        .await
        .iter()
        .map(|e| e.cost_nanos)
        .sum()
}

/// Send `count` requests at once, split over `nodes`; the status of each.
async fn burst(nodes: &[&TestGateway], key: &str, count: usize) -> Vec<(u16, Value)> {
    let requests = (0..count).map(|i| {
        let node = nodes[i % nodes.len()];
        async move {
            let response = node.chat(key, body()).await;
            let status = response.status().as_u16();
            let json: Value = response.json().await.unwrap_or(Value::Null);
            (status, json)
        }
    });
    futures_util::future::join_all(requests).await
}

#[tokio::test]
async fn a_budget_admits_exactly_the_requests_it_covers_then_402_naming_it() {
    for counting in COUNTINGS {
        let gateway = gateway(counting, MockOptions::default()).await;
        let (id, key) = gateway
            .create_key(json!({"name": "capped", "budget_usd": 4.0 * REQUEST_USD, "budget_period": "month"}))
            .await;
        for i in 0..4 {
            let response = gateway.chat(&key, body()).await;
            assert_eq!(response.status(), 200, "{counting:?}: request {i}");
        }
        let refused = gateway.chat(&key, body()).await;
        assert_eq!(refused.status(), 402, "{counting:?}");
        let error: Value = refused.json().await.unwrap();
        assert_eq!(error["error"]["code"], "budget_exceeded");
        assert_eq!(error["error"]["type"], "insufficient_quota");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("monthly budget of key {id}")) && message.contains("$0.02"),
            "{message}"
        );
        let events = gateway.events_of(&id).await;
        assert!(events
            .iter()
            .filter(|e| e.status == 200)
            .all(|e| e.completion_tokens == MAX_TOKENS as i64 && e.cost_nanos == REQUEST_NANOS));
        assert_eq!(ledger_spend(&gateway, &id).await, 4 * REQUEST_NANOS);
        let refusal = events.iter().find(|e| e.status == 402).unwrap();
        assert_eq!(refusal.error_code.as_deref(), Some("budget_exceeded"));
        gateway.finish().await;
    }
}

#[tokio::test]
async fn ten_times_n_concurrent_requests_on_a_budget_of_n_admit_n() {
    const N: usize = 5;
    for counting in COUNTINGS {
        let gateway = gateway(counting, MockOptions::default()).await;
        let (id, key) = gateway
            .create_key(json!({"name": "raced", "budget_usd": N as f64 * REQUEST_USD, "budget_period": "day"}))
            .await;
        let outcomes = burst(&[&gateway], &key, 10 * N).await;
        let admitted = outcomes.iter().filter(|(s, _)| *s == 200).count();
        let refused = outcomes
            .iter()
            .filter(|(s, b)| *s == 402 && b["error"]["code"] == "budget_exceeded")
            .count();
        // Reservations are exact here, so the estimate error is zero: at
        // most N, and N because the budget covers N.
        assert_eq!(admitted, N, "{counting:?}");
        assert_eq!(refused, 9 * N, "{counting:?}");
        assert_eq!(ledger_spend(&gateway, &id).await, N as i64 * REQUEST_NANOS);
        gateway.finish().await;
    }
}

#[tokio::test]
async fn with_shipped_prices_a_budget_is_never_exceeded_under_concurrency() {
    // Real prices: the reservation (prompt estimate from the tokenizer plus
    // max_tokens) is larger than the real cost, so fewer than "budget /
    // real cost" requests may pass at once, and never more.
    for counting in COUNTINGS {
        let env = counting_env(counting, &redis_prefix());
        let gateway = TestGateway::start_with(Backend::Sqlite, MockOptions::default(), move |_| {
            (String::new(), env)
        })
        .await;
        let (probe_id, probe) = gateway.create_key(json!({"name": "probe"})).await;
        assert_eq!(gateway.chat(&probe, body()).await.status(), 200);
        let one = ledger_spend(&gateway, &probe_id).await;
        assert!(one > 0, "gpt-4o-mini has a shipped price");
        let budget_nanos = 10 * one;
        let (id, key) = gateway
            .create_key(json!({"name": "shipped", "budget_usd": budget_nanos as f64 / 1e9, "budget_period": "total"}))
            .await;
        let outcomes = burst(&[&gateway], &key, 100).await;
        let admitted = outcomes.iter().filter(|(s, _)| *s == 200).count();
        assert!((1..=10).contains(&admitted), "{counting:?}: {admitted}");
        assert!(outcomes.iter().all(|(s, _)| *s == 200 || *s == 402));
        assert!(ledger_spend(&gateway, &id).await <= budget_nanos);
        gateway.finish().await;
    }
}

#[tokio::test]
async fn two_nodes_on_postgres_and_redis_share_one_budget_and_one_rate() {
    const N: usize = 5;
    let prefix = redis_prefix();
    let mut env = counting_env(Counting::Redis, &prefix);
    // Nodes sharing a database share the server secret keys are hashed under.
    env.insert(
        "KEYGATE_SERVER_SECRET".into(),
        Alphanumeric.sample_string(&mut rand::rng(), 40),
    );
    let first = TestGateway::start_with(Backend::Postgres, MockOptions::default(), {
        let env = env.clone();
        move |_| (PRICES.into(), env)
    })
    .await;
    let database_url = first.database_url.clone().unwrap();
    let mut second_env = env.clone();
    second_env.insert("KEYGATE_DATABASE_URL".into(), database_url);
    let second = TestGateway::start_with(Backend::Sqlite, MockOptions::default(), move |_| {
        (PRICES.into(), second_env)
    })
    .await;
    let nodes = [&first, &second];

    // Budget: 10 × N requests spread over both nodes admit exactly N.
    let (id, key) = first
        .create_key(json!({"name": "shared", "budget_usd": N as f64 * REQUEST_USD, "budget_period": "month"}))
        .await;
    second.load_key(&id).await;
    let outcomes = burst(&nodes, &key, 10 * N).await;
    let admitted = outcomes.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(admitted, N);
    assert!(outcomes.iter().all(|(s, _)| *s == 200 || *s == 402));
    // Both nodes write the one ledger.
    second.state.ledger.flush().await;
    assert_eq!(ledger_spend(&first, &id).await, N as i64 * REQUEST_NANOS);

    // Rate: R requests per minute across both nodes. GCRA admits a burst of
    // R and then one more every 60/R seconds, so over t seconds at most
    // R + R·t/60 pass.
    const R: u32 = 6;
    let (rate_id, rate_key) = first.create_key(json!({"name": "rated", "rpm": R})).await;
    second.load_key(&rate_id).await;
    let started = std::time::Instant::now();
    let outcomes = burst(&nodes, &rate_key, 40).await;
    let elapsed = started.elapsed().as_secs_f64();
    let admitted = outcomes.iter().filter(|(s, _)| *s == 200).count();
    let tolerance = (f64::from(R) * elapsed / 60.0).floor() as usize;
    assert!(
        admitted >= R as usize && admitted <= R as usize + tolerance,
        "{admitted} admitted in {elapsed:.1}s"
    );
    assert!(outcomes
        .iter()
        .all(|(s, b)| *s == 200 || (*s == 429 && b["error"]["code"] == "rate_limit_exceeded")));

    second.finish().await;
    first.finish().await;
}

#[tokio::test]
async fn request_rates_answer_with_openai_headers_and_429_with_retry_after() {
    for counting in COUNTINGS {
        let gateway = gateway(counting, MockOptions::default()).await;
        let (id, key) = gateway.create_key(json!({"name": "rated", "rpm": 3})).await;
        for remaining in [2, 1, 0] {
            let response = gateway.chat(&key, body()).await;
            assert_eq!(response.status(), 200);
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .unwrap_or_else(|| panic!("no {name}"))
                    .to_str()
                    .unwrap()
                    .to_string()
            };
            assert_eq!(header("x-ratelimit-limit-requests"), "3");
            assert_eq!(
                header("x-ratelimit-remaining-requests"),
                remaining.to_string()
            );
            assert!(header("x-ratelimit-reset-requests").ends_with('s'));
        }
        let refused = gateway.chat(&key, body()).await;
        assert_eq!(refused.status(), 429, "{counting:?}");
        let retry_after: u64 = refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        // One request in three per minute comes back after 20 s at most.
        assert!((1..=20).contains(&retry_after), "{retry_after}");
        let (_, body) = (refused.status(), refused.json::<Value>().await.unwrap());
        assert_eq!(body["error"]["code"], "rate_limit_exceeded");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("3 requests per minute on key {id}")),
            "{message}"
        );
        gateway.finish().await;
    }
}

#[tokio::test]
async fn token_rates_take_the_estimate_and_refuse_a_request_larger_than_a_minute() {
    for counting in COUNTINGS {
        let gateway = gateway(counting, MockOptions::default()).await;
        let (_, key) = gateway
            .create_key(json!({"name": "tokens", "tpm": 1000}))
            .await;
        let response = gateway.chat(&key, body()).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-ratelimit-limit-tokens"], "1000");
        let remaining: u64 = response.headers()["x-ratelimit-remaining-tokens"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(remaining < 1000 - MAX_TOKENS, "{remaining}");
        let mut huge = body();
        huge["max_tokens"] = json!(5000);
        let refused = gateway.chat(&key, huge).await;
        assert_eq!(refused.status(), 429);
        assert!(refused.headers().get("retry-after").is_none());
        let (_, code) = error_code(refused).await;
        assert_eq!(code, "rate_limit_exceeded");
        gateway.finish().await;
    }
}

#[tokio::test]
async fn requests_beyond_the_concurrency_cap_are_refused_until_one_finishes() {
    for counting in COUNTINGS {
        let gateway = gateway(
            counting,
            MockOptions {
                chunk_delay_ms: 20,
                ..MockOptions::default()
            },
        )
        .await;
        let (_, key) = gateway
            .create_key(json!({"name": "one-at-a-time", "max_concurrent": 1}))
            .await;
        let mut open = gateway.chat(&key, streamed_body()).await;
        assert_eq!(open.status(), 200);
        // The first chunk arrived: the stream holds the key's only slot.
        assert!(open.chunk().await.unwrap().is_some());
        let refused = gateway.chat(&key, body()).await;
        assert_eq!(refused.status(), 429, "{counting:?}");
        assert_eq!(refused.headers()["retry-after"], "1");
        let (_, code) = error_code(refused).await;
        assert_eq!(code, "concurrency_limit_exceeded");
        // Reading the stream to its end releases the slot before the
        // stream's last event is sent.
        while open.chunk().await.unwrap().is_some() {}
        assert_eq!(gateway.chat(&key, body()).await.status(), 200);
        gateway.finish().await;
    }
}

#[tokio::test]
async fn a_streamed_request_is_billed_and_counts_against_the_budget() {
    for counting in COUNTINGS {
        let gateway = gateway(counting, MockOptions::default()).await;
        let (id, key) = gateway
            .create_key(json!({"name": "streamer", "budget_usd": 2.0 * REQUEST_USD, "budget_period": "week"}))
            .await;
        for _ in 0..2 {
            let response = gateway.chat(&key, streamed_body()).await;
            assert_eq!(response.status(), 200);
            let text = response.text().await.unwrap();
            assert!(text.contains("[DONE]"));
        }
        let refused = gateway.chat(&key, streamed_body()).await;
        assert_eq!(refused.status(), 402, "{counting:?}");
        let events = gateway.events_of(&id).await;
        let streamed: Vec<_> = events
            .iter()
            .filter(|e| e.streamed && e.status == 200)
            .collect();
        assert_eq!(streamed.len(), 2);
        assert!(streamed.iter().all(|e| e.cost_nanos == REQUEST_NANOS));
        gateway.finish().await;
    }
}

#[tokio::test]
async fn project_owner_and_organisation_budgets_and_a_prepaid_balance_each_hold() {
    for counting in COUNTINGS {
        let gateway = gateway(counting, MockOptions::default()).await;
        let admin = |method, path: &str, body: Value| {
            let request = gateway.admin(method, path).json(&body);
            async move {
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                (
                    status,
                    response.json::<Value>().await.unwrap_or(Value::Null),
                )
            }
        };
        let (status, org) = admin(Method::POST, "/organisations", json!({"name": "acme"})).await;
        assert_eq!(status, 201, "{org}");
        let org_id = org["id"].as_str().unwrap().to_string();
        let (status, project) = admin(
            Method::POST,
            "/projects",
            json!({"org_id": org_id, "name": "web"}),
        )
        .await;
        assert_eq!(status, 201, "{project}");
        let project_id = project["id"].as_str().unwrap().to_string();
        let key_in = |owner: &'static str| json!({"name": format!("k-{owner}"), "project": project_id, "owner": owner});

        // Project budget: two requests, whichever key of the project sends them.
        let (status, _) = admin(
            Method::PATCH,
            &format!("/projects/{project_id}"),
            json!({"budget_usd": 2.0 * REQUEST_USD, "budget_period": "month"}),
        )
        .await;
        assert_eq!(status, 200);
        let (_, alice) = gateway.create_key(key_in("alice")).await;
        let (_, bob) = gateway.create_key(key_in("bob")).await;
        assert_eq!(gateway.chat(&alice, body()).await.status(), 200);
        assert_eq!(gateway.chat(&bob, body()).await.status(), 200);
        let refused = gateway.chat(&alice, body()).await;
        assert_eq!(refused.status(), 402);
        let message = refused.json::<Value>().await.unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            message.contains(&format!("monthly budget of project {project_id}")),
            "{message}"
        );

        // Lift the project budget; an owner budget of two requests for bob,
        // who has spent one.
        let (status, _) = admin(
            Method::PATCH,
            &format!("/projects/{project_id}"),
            json!({"budget_usd": null}),
        )
        .await;
        assert_eq!(status, 200);
        let (status, _) = admin(
            Method::PUT,
            &format!("/organisations/{org_id}/owners/bob/budget"),
            json!({"budget_usd": 2.0 * REQUEST_USD, "budget_period": "month"}),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(gateway.chat(&bob, body()).await.status(), 200);
        let refused = gateway.chat(&bob, body()).await;
        assert_eq!(refused.status(), 402);
        let message = refused.json::<Value>().await.unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(message.contains("monthly budget of owner bob"), "{message}");
        // Alice is not bob.
        assert_eq!(gateway.chat(&alice, body()).await.status(), 200);

        // A prepaid balance: the organisation has spent 4 requests; a top-up
        // of 5 leaves room for one more.
        let (status, topped) = admin(
            Method::POST,
            &format!("/organisations/{org_id}/balance"),
            json!({"amount_usd": 5.0 * REQUEST_USD}),
        )
        .await;
        assert_eq!(status, 200, "{topped}");
        assert_eq!(gateway.chat(&alice, body()).await.status(), 200);
        let refused = gateway.chat(&alice, body()).await;
        assert_eq!(refused.status(), 402);
        let message = refused.json::<Value>().await.unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            message.contains(&format!("prepaid balance of organisation {org_id}")),
            "{message}"
        );
        let (status, _) = admin(
            Method::POST,
            &format!("/organisations/{org_id}/balance"),
            json!({"amount_usd": REQUEST_USD}),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(gateway.chat(&alice, body()).await.status(), 200);
        gateway.finish().await;
    }
}

#[tokio::test]
async fn budget_thresholds_alert_once_each_signed_and_retried() {
    use hmac::{Hmac, Mac};
    let receiver = crate::alerts::Receiver::start(&[crate::alerts::Answer::Status(503)]).await;
    let secret = format!("whsec_{}", Alphanumeric.sample_string(&mut rand::rng(), 32));
    let mut env = BTreeMap::new();
    env.insert(
        "KEYGATE_ALERT_WEBHOOK_URL".to_string(),
        receiver.url.clone(),
    );
    env.insert("KEYGATE_ALERT_WEBHOOK_SECRET".to_string(), secret.clone());
    env.insert(
        "KEYGATE_ALERT_WEBHOOK_KINDS".to_string(),
        "budget.*".to_string(),
    );
    let gateway = TestGateway::start_with(Backend::Sqlite, MockOptions::default(), move |_| {
        (PRICES.into(), env)
    })
    .await;
    let mut receiver = receiver;
    let (id, key) = gateway
        .create_key(json!({"name": "watched", "owner": "carol", "budget_usd": 4.0 * REQUEST_USD, "budget_period": "month"}))
        .await;
    // 25 %, 50 % (alert), 75 %, 100 % (alerts at 80 and 100), then refused.
    for i in 0..4 {
        if i == 2 {
            // Renaming the key starts a fresh counter (from the ledger); the
            // 50 % alert of this month is not raised again.
            let renamed = gateway
                .admin(Method::PATCH, &format!("/keys/{id}"))
                .json(&json!({"name": "watched-renamed"}))
                .send()
                .await
                .unwrap();
            assert_eq!(renamed.status(), 200);
        }
        assert_eq!(gateway.chat(&key, body()).await.status(), 200);
    }
    assert_eq!(gateway.chat(&key, body()).await.status(), 402);
    assert_eq!(gateway.chat(&key, body()).await.status(), 402);

    let mut delivered: BTreeMap<u64, u32> = BTreeMap::new();
    let mut attempts: BTreeMap<String, u32> = BTreeMap::new();
    let mut failed_once = false;
    while delivered.len() < 3 {
        let request = tokio::time::timeout(PATIENCE, receiver.next())
            .await
            .unwrap();
        let timestamp = request.header("x-keygate-timestamp").to_string();
        let signature = request.header("x-keygate-signature").to_string();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(&request.body);
        let expected = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
        assert!(
            signature.split(',').any(|s| s.trim() == expected),
            "bad signature"
        );
        let delivery = request.header("x-keygate-delivery").to_string();
        *attempts.entry(delivery.clone()).or_default() += 1;
        let alert = request.json();
        assert_eq!(alert["kind"], "budget.threshold");
        assert_eq!(alert["owner"], "carol");
        let threshold = alert["details"]["threshold_percent"].as_u64().unwrap();
        if !failed_once {
            // The receiver answered 503 to the first: it comes again.
            failed_once = true;
            continue;
        }
        *delivered.entry(threshold).or_default() += 1;
    }
    assert_eq!(delivered, BTreeMap::from([(50, 1), (80, 1), (100, 1)]));
    assert!(
        attempts.values().any(|n| *n == 2),
        "the failed delivery was retried: {attempts:?}"
    );
    // The outbox holds each threshold once, whatever the retries.
    let alerts = gateway.store().recent_alerts(100).await.unwrap();
    let thresholds: Vec<_> = alerts
        .iter()
        .filter(|a| {
            a.kind == "budget.threshold" && a.subject.as_deref() == Some(&format!("key:{id}"))
        })
        .map(|a| a.details["threshold_percent"].as_u64().unwrap())
        .collect();
    assert_eq!(thresholds.len(), 3, "{thresholds:?}");
    gateway.finish().await;
}

#[tokio::test]
async fn a_prompt_its_byte_count_would_refuse_is_tokenized_before_a_402() {
    // The byte count bounds a prompt's tokens cheaply; near a budget's edge
    // the tokenizer's smaller count decides. Input costs $1,000 per million
    // tokens here, output nothing.
    keygate::policy::estimate::warm_up();
    const INPUT_PRICED: &str = r#"
[prices."gpt-4o-mini"]
input = 1000.0
output = 0.0
"#;
    let gateway = TestGateway::start_with(Backend::Sqlite, MockOptions::default(), |_| {
        (INPUT_PRICED.into(), BTreeMap::new())
    })
    .await;
    let (_, key) = gateway
        .create_key(json!({"name": "edge", "budget_usd": 0.05, "budget_period": "day"}))
        .await;
    let short = body();
    let bytes = serde_json::to_vec(&short).unwrap().len();
    // The byte bound alone would reserve more than the whole budget.
    assert!(bytes as f64 * 0.001 > 0.05, "{bytes} bytes");
    assert_eq!(gateway.chat(&key, short).await.status(), 200);
    // A prompt whose tokens alone cost more than the budget is refused.
    let mut long = body();
    long["messages"][0]["content"] = json!("many different words here ".repeat(20));
    let refused = gateway.chat(&key, long).await;
    assert_eq!(refused.status(), 402);
    gateway.finish().await;
}
