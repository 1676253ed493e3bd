//! Usage reports: totals per key, owner, project, model, provider and UTC
//! day, with cached tokens and cost by the price table, over the admin API.

use crate::support::{chat_body, TestGateway, BACKENDS};
use keygate::ledger::pricing::{Prices, TokenCount};
use keygate::mock::MockOptions;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;

async fn get(gw: &TestGateway, query: &str) -> (u16, Value) {
    let response = gw
        .admin(Method::GET, &format!("/usage{query}"))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn chat(model: &str, text: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]})
}

/// What a report should say, folded from the ledger rows themselves:
/// group columns → (requests, prompt, cached, completion, cost in nanos at
/// the shipped prices).
fn expected(
    rows: &[Value],
    group: impl Fn(&Value) -> Vec<Value>,
) -> BTreeMap<String, (i64, i64, i64, i64, i64)> {
    let prices = Prices::shipped().unwrap();
    let mut totals = BTreeMap::new();
    for row in rows {
        let n = |field: &str| row[field].as_i64().unwrap();
        let cost = prices
            .price(
                row["provider"].as_str().unwrap(),
                row["model"].as_str().unwrap(),
            )
            .unwrap()
            .cost(&TokenCount {
                prompt: n("prompt_tokens") as u64,
                cached: n("cached_tokens") as u64,
                completion: n("completion_tokens") as u64,
            });
        assert_eq!(n("cost_nanos"), cost, "row priced by the table: {row}");
        let entry = totals
            .entry(Value::Array(group(row)).to_string())
            .or_insert((0, 0, 0, 0, 0));
        entry.0 += 1;
        entry.1 += n("prompt_tokens");
        entry.2 += n("cached_tokens");
        entry.3 += n("completion_tokens");
        entry.4 += cost;
    }
    totals
}

fn reported(
    data: &Value,
    group: impl Fn(&Value) -> Vec<Value>,
) -> BTreeMap<String, (i64, i64, i64, i64, i64)> {
    let mut totals = BTreeMap::new();
    for row in data.as_array().unwrap() {
        // Every row names its key and model, null when not grouped by them.
        assert!(
            row.get("key_id").is_some() && row.get("model").is_some(),
            "{row}"
        );
        let n = |field: &str| row[field].as_i64().unwrap();
        let usd = row["cost_usd"].as_f64().unwrap();
        assert!(
            (usd - n("cost_nanos") as f64 / 1e9).abs() < 1e-12,
            "cost_usd is cost_nanos in dollars: {row}"
        );
        let previous = totals.insert(
            Value::Array(group(row)).to_string(),
            (
                n("requests"),
                n("prompt_tokens"),
                n("cached_tokens"),
                n("completion_tokens"),
                n("cost_nanos"),
            ),
        );
        assert!(previous.is_none(), "one row per group: {row}");
    }
    totals
}

#[tokio::test]
async fn totals_per_grouping_match_the_ledger_at_the_table_prices() {
    for backend in BACKENDS {
        let gw = TestGateway::start(backend, MockOptions::default()).await;
        // Every mock answer reports 2 cached prompt tokens.
        let configured = gw
            .http
            .put(format!("http://{}/_mock/config", gw.mock))
            .json(&json!({"cached_tokens": 2}))
            .send()
            .await
            .unwrap();
        assert!(configured.status().is_success());
        let project = gw
            .admin(Method::POST, "/projects")
            .json(&json!({"name": "research", "org_id": "org_default"}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let (alice_id, alice) = gw
            .create_key(json!({"name": "a", "owner": "alice@example.com"}))
            .await;
        let (bob_id, bob) = gw
            .create_key(json!({"name": "b", "owner": "bob@example.com", "project": project}))
            .await;

        for (key, model, stream) in [
            (&alice, "gpt-4o-mini", false),
            (&alice, "gpt-4o-mini", true),
            (&alice, "gpt-4o", false),
            (&bob, "gpt-4o", true),
            (&bob, "gpt-4o-mini", false),
        ] {
            let response = gw.chat(key, chat(model, "one two three", stream)).await;
            assert_eq!(response.status(), 200);
            response.bytes().await.unwrap();
        }
        let response = gw
            .http
            .post(format!("{}/v1/messages", gw.base))
            .header("x-api-key", &bob)
            .header("anthropic-version", "2023-06-01")
            .json(&json!({"model": "claude-haiku-4-5", "max_tokens": 50,
                          "messages": [{"role": "user", "content": "one two three"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        gw.ledger_rows(6).await;

        let events = gw
            .admin(Method::GET, "/usage/events")
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        let rows = events["data"].as_array().unwrap().clone();
        assert_eq!(rows.len(), 6, "{backend:?}");
        // The provider's own counts, cached share included: the mock counts
        // words (3 in, "Hello from mock! You said: one two three" out).
        let first = &rows[0];
        assert_eq!(
            (
                first["prompt_tokens"].as_i64(),
                first["cached_tokens"].as_i64(),
                first["completion_tokens"].as_i64()
            ),
            (Some(3), Some(2), Some(8)),
            "{backend:?}: {first}"
        );
        assert_eq!(first["owner"], "alice@example.com");
        assert_eq!(first["project_id"], "proj_default");
        assert_eq!(first["org_id"], "org_default");
        for row in &rows {
            assert!(row["cost_nanos"].as_i64().unwrap() > 0, "{row}");
            assert!(
                row["cached_tokens"].as_i64().unwrap() == 2,
                "cached tokens from every dialect and the stream: {row}"
            );
        }

        type Group = fn(&Value) -> Vec<Value>;
        let groupings: [(&str, Group); 8] = [
            ("", |r| vec![r["key_id"].clone(), r["model"].clone()]),
            ("?by=key", |r| vec![r["key_id"].clone()]),
            ("?by=owner", |r| {
                vec![r["org_id"].clone(), r["owner"].clone()]
            }),
            ("?by=project", |r| vec![r["project_id"].clone()]),
            ("?by=model", |r| vec![r["model"].clone()]),
            ("?by=provider", |r| vec![r["provider"].clone()]),
            ("?by=provider,model,provider", |r| {
                vec![r["provider"].clone(), r["model"].clone()]
            }),
            ("?by=day", |_| vec![]),
        ];
        for (query, group) in groupings {
            let (status, body) = get(&gw, query).await;
            assert_eq!(status, 200, "{backend:?} {query}: {body}");
            if query == "?by=day" {
                // Every request was today (UTC).
                let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
                let data = body["data"].as_array().unwrap();
                assert_eq!(data.len(), 1, "{body}");
                assert_eq!(data[0]["day"], today.as_str());
                assert_eq!(data[0]["key_id"], Value::Null);
                assert_eq!(data[0]["model"], Value::Null);
                assert_eq!(
                    reported(&body["data"], |_| vec![]),
                    expected(&rows, |_| vec![])
                );
                continue;
            }
            assert_eq!(
                reported(&body["data"], group),
                expected(&rows, group),
                "{backend:?} {query}"
            );
        }
        // Grouped by key only, the model is null (and the other way round).
        let (_, by_key) = get(&gw, "?by=key").await;
        assert!(by_key["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["model"].is_null() && !r["key_id"].is_null()));

        // Filters combine, and scope the totals to the rows they select.
        let (status, body) = get(
            &gw,
            &format!(
                "?by=key&owner=bob%40example.com&project_id={project}&model=gpt-4o&provider=openai"
            ),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let selected: Vec<Value> = rows
            .iter()
            .filter(|r| r["key_id"] == bob_id.as_str() && r["model"] == "gpt-4o")
            .cloned()
            .collect();
        assert_eq!(selected.len(), 1);
        assert_eq!(
            reported(&body["data"], |r| vec![r["key_id"].clone()]),
            expected(&selected, |r| vec![r["key_id"].clone()])
        );
        let (_, body) = get(&gw, &format!("?by=model&key_id={alice_id}")).await;
        assert_eq!(body["data"].as_array().unwrap().len(), 2, "{body}");

        gw.finish().await;
    }
}

#[tokio::test]
async fn a_bad_grouping_or_filter_is_a_clear_400() {
    let gw = TestGateway::start(crate::support::Backend::Sqlite, MockOptions::default()).await;
    let (_, key) = gw.create_key(json!({"name": "k"})).await;
    assert_eq!(gw.chat(&key, chat_body(false)).await.status(), 200);
    for (query, param) in [
        ("?by=team", "by"),
        ("?by=key,", "by"),
        ("?by=", "by"),
        ("?owner=a%00b", "owner"),
        ("?model=", "model"),
        ("?provider=%7F", "provider"),
        ("?project_id=research", "project_id"),
        ("?key_id=nope", "key_id"),
        ("?since=yesterday-ish", "since"),
    ] {
        let (status, body) = get(&gw, query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["param"], param, "{query}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("'{param}'")),
            "the message names the parameter: {body}"
        );
    }
    let (status, body) = get(&gw, "?group=key").await;
    assert_eq!(status, 400, "an unknown parameter: {body}");
    gw.finish().await;
}
