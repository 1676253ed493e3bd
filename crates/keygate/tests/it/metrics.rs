//! `GET /metrics`: who may scrape it, and that what it counts is what was
//! sent, with bounded labels and no credential ids.

use crate::support::{chat_body, error_code, Backend, TestGateway};
use keygate::mock::MockOptions;
use prometheus_parse::{Sample, Scrape, Value};
use rand::distr::{Alphanumeric, SampleString};
use reqwest::StatusCode;
use serde_json::json;
use std::collections::{BTreeMap, HashSet};

const CHAT: &str = "/v1/chat/completions";

async fn gateway(token: &str) -> TestGateway {
    let token = token.to_string();
    TestGateway::start_with(Backend::Sqlite, MockOptions::default(), move |_| {
        (
            String::new(),
            BTreeMap::from([("KEYGATE_METRICS_TOKEN".to_string(), token)]),
        )
    })
    .await
}

fn random(n: usize) -> String {
    Alphanumeric.sample_string(&mut rand::rng(), n)
}

async fn scrape_with(gw: &TestGateway, bearer: Option<&str>) -> reqwest::Response {
    let mut request = gw.http.get(format!("{}/metrics", gw.base));
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    request.send().await.unwrap()
}

async fn scrape(gw: &TestGateway, bearer: &str) -> (String, Scrape) {
    let response = scrape_with(gw, Some(bearer)).await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    let parsed = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    (text, parsed)
}

fn value(sample: &Sample) -> f64 {
    match &sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{} is not a number: {other:?}", sample.metric),
    }
}

/// Sum of `metric` over the samples whose labels include all of `labels`.
fn sum(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(value)
        .sum()
}

fn label_values(scrape: &Scrape, metric: &str, label: &str) -> HashSet<String> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter_map(|s| s.labels.get(label).map(str::to_string))
        .collect()
}

#[tokio::test]
async fn metrics_count_what_was_sent_for_the_token_or_an_admin_and_no_one_else() {
    let token = random(40);
    let gw = gateway(&token).await;
    let (ok_id, ok_key) = gw
        .create_key(json!({"name": "metered", "models": ["gpt-4o-mini"]}))
        .await;
    let (poor_id, poor_key) = gw
        .create_key(json!({"name": "poor", "budget_usd": 0.000001, "budget_period": "month"}))
        .await;

    for _ in 0..3 {
        assert_eq!(gw.chat(&ok_key, chat_body(false)).await.status(), 200);
    }
    let streamed = gw.chat(&ok_key, chat_body(true)).await;
    assert_eq!(streamed.status(), 200);
    streamed.bytes().await.unwrap();
    // A look-alike key that was never issued.
    let (status, code) = error_code(
        gw.chat(&format!("kg_live_{}", random(30)), chat_body(false))
            .await,
    )
    .await;
    assert_eq!((status, code), (401, json!("invalid_api_key")));
    let (status, code) = error_code(
        gw.chat(
            &ok_key,
            json!({"model": "claude-3-5-haiku-latest", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await,
    )
    .await;
    assert_eq!((status, code), (403, json!("model_not_allowed")));
    let (status, code) = error_code(gw.chat(&poor_key, chat_body(false)).await).await;
    assert_eq!((status, code), (402, json!("budget_exceeded")));

    // Refused without a credential, with a wrong token, a data-plane key,
    // and a token in the query string.
    let (status, _) = error_code(scrape_with(&gw, None).await).await;
    assert_eq!(status, 401);
    let (status, body) = error_code(scrape_with(&gw, Some(&random(40))).await).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = error_code(scrape_with(&gw, Some(&ok_key)).await).await;
    assert_eq!(status, 403);
    let response = gw
        .http
        .get(format!("{}/metrics?token={token}", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let (admin_text, _) = scrape(&gw, &gw.admin_key).await;
    let (text, metrics) = scrape(&gw, &token).await;
    assert!(admin_text.contains("keygate_requests_total"));

    let chat = [("route", CHAT)];
    assert_eq!(
        sum(&metrics, "keygate_requests_total", &chat),
        7.0,
        "{text}"
    );
    let served = [
        ("route", CHAT),
        ("status", "200"),
        ("model", "gpt-4o-mini"),
        ("provider", "openai"),
    ];
    assert_eq!(
        sum(&metrics, "keygate_requests_total", &served),
        4.0,
        "{text}"
    );
    assert_eq!(
        sum(
            &metrics,
            "keygate_requests_total",
            &[("route", CHAT), ("status", "401"), ("provider", "none")]
        ),
        1.0
    );
    assert_eq!(
        sum(&metrics, "keygate_requests_total", &[("status", "403")]),
        1.0
    );
    assert_eq!(
        sum(&metrics, "keygate_requests_total", &[("status", "402")]),
        1.0
    );
    for reason in ["invalid_api_key", "model_not_allowed", "budget_exceeded"] {
        assert_eq!(
            sum(&metrics, "keygate_refusals_total", &[("reason", reason)]),
            1.0,
            "{reason}: {text}"
        );
    }

    // The histogram: one series per label set, +Inf equal to the count,
    // cumulative buckets from 1 ms to 60 s.
    let histogram = metrics
        .samples
        .iter()
        .find(|s| {
            s.metric == "keygate_request_duration_seconds" && s.labels.get("status") == Some("200")
        })
        .unwrap();
    let Value::Histogram(buckets) = &histogram.value else {
        panic!("not a histogram: {histogram:?}");
    };
    assert_eq!(buckets.first().unwrap().less_than, 0.001);
    assert!(buckets.iter().any(|b| b.less_than == 60.0));
    assert!(buckets.windows(2).all(|w| w[0].count <= w[1].count));
    let infinite = buckets.iter().find(|b| b.less_than.is_infinite()).unwrap();
    assert_eq!(infinite.count, 4.0);
    assert_eq!(
        sum(&metrics, "keygate_request_duration_seconds_count", &served),
        4.0
    );

    // Tokens and spend equal the ledger's.
    let events = gw.events_of(&ok_id).await;
    let ok: Vec<_> = events.iter().filter(|e| e.status == 200).collect();
    assert_eq!(ok.len(), 4);
    let prompt: i64 = ok.iter().map(|e| e.prompt_tokens).sum();
    let completion: i64 = ok.iter().map(|e| e.completion_tokens).sum();
    let nanos: i64 = ok.iter().map(|e| e.cost_nanos).sum();
    let usage = [("provider", "openai"), ("model", "gpt-4o-mini")];
    assert!(prompt > 0 && completion > 0 && nanos > 0);
    assert_eq!(
        sum(&metrics, "keygate_prompt_tokens_total", &usage),
        prompt as f64
    );
    assert_eq!(
        sum(&metrics, "keygate_completion_tokens_total", &usage),
        completion as f64
    );
    let spend = sum(&metrics, "keygate_spend_usd_total", &usage);
    assert!(
        (spend - nanos as f64 / 1e9).abs() < 1e-12,
        "{spend} vs {nanos}"
    );

    // State gauges.
    assert_eq!(
        sum(
            &metrics,
            "keygate_upstream_healthy",
            &[("provider", "openai")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &metrics,
            "keygate_upstream_key_healthy",
            &[("provider", "openai"), ("key", "0")]
        ),
        1.0
    );
    // The ledger was flushed above (events_of): nothing is pending.
    let (_, after_flush) = scrape(&gw, &token).await;
    assert_eq!(sum(&after_flush, "keygate_ledger_pending_events", &[]), 0.0);
    assert_eq!(
        sum(
            &after_flush,
            "keygate_ledger_oldest_pending_age_seconds",
            &[]
        ),
        0.0
    );
    assert!(metrics
        .samples
        .iter()
        .any(|s| s.metric == "keygate_ledger_oldest_pending_age_seconds"));
    assert_eq!(
        sum(
            &metrics,
            "keygate_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    // No credential id, owner or secret anywhere.
    for secret in [&ok_id, &poor_id, &ok_key, &poor_key, &token, &gw.admin_key] {
        assert!(!text.contains(secret.as_str()), "{secret} in the metrics");
    }
    assert!(!text.contains("127.0.0.1"));
    gw.finish().await;
}

#[tokio::test]
async fn a_flood_of_made_up_model_names_adds_no_label() {
    let token = random(32);
    let gw = gateway(&token).await;
    let (_, key) = gw.create_key(json!({"name": "flooder"})).await;
    let bogus: Vec<String> = (0..500)
        .map(|i| format!("bogus-{i}-{}", random(8)))
        .collect();
    for chunk in bogus.chunks(50) {
        let requests = chunk.iter().map(|model| {
            gw.chat(
                &key,
                json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
            )
        });
        for response in futures_util::future::join_all(requests).await {
            assert!(response.status().is_client_error(), "{}", response.status());
        }
    }
    let (text, metrics) = scrape(&gw, &token).await;
    let models = label_values(&metrics, "keygate_requests_total", "model");
    assert!(models.contains("other"), "{models:?}");
    assert!(
        models.len() <= keygate::telemetry::metrics::SERVED_MODELS + 2,
        "{models:?}"
    );
    assert!(!bogus.iter().any(|m| text.contains(m.as_str())));
    assert_eq!(
        sum(&metrics, "keygate_requests_total", &[("model", "other")]),
        500.0
    );
    gw.finish().await;
}

#[tokio::test]
async fn hostile_scrapes_get_4xx_never_5xx() {
    let token = random(32);
    let gw = gateway(&token).await;
    let url = format!("{}/metrics", gw.base);
    let huge = "x".repeat(64 * 1024);
    let cases = [
        gw.http.post(&url).bearer_auth(&token),
        gw.http.delete(&url).bearer_auth(&token),
        gw.http
            .get(&url)
            .header("authorization", format!("Bearer {huge}")),
        gw.http
            .get(&url)
            .header("authorization", "Basic Zm9vOmJhcg=="),
        gw.http.get(&url).header("authorization", "Bearer"),
        gw.http.get(&url).header("x-api-key", "kg_live_notakey"),
        gw.http.get(format!("{url}/extra")).bearer_auth(&token),
    ];
    for case in cases {
        let response = case.send().await.unwrap();
        let status = response.status();
        assert!(status.is_client_error(), "{status}");
    }
    // A query string that is not a credential, however odd, does not stop
    // the token.
    for query in ["name[]=x&debug=1", "%00%ff&a=b&&=", "format=protobuf"] {
        let response = gw
            .http
            .get(format!("{url}?{query}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{query}");
    }
    gw.finish().await;
}

#[tokio::test]
async fn the_token_cache_counts_a_miss_then_hits() {
    let token = random(32);
    let gw = gateway(&token).await;
    let (_, key) = gw.create_key(json!({"name": "minter"})).await;
    let response = gw
        .http
        .post(format!("{}/oauth/token", gw.base))
        .form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", key.as_str()),
            (
                "subject_token_type",
                "urn:keygate:params:oauth:token-type:api_key",
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_string();
    for _ in 0..3 {
        assert_eq!(gw.chat(&access, chat_body(false)).await.status(), 200);
    }
    let (text, metrics) = scrape(&gw, &token).await;
    let lookups = |result| {
        sum(
            &metrics,
            "keygate_token_cache_lookups_total",
            &[("result", result)],
        )
    };
    assert_eq!(lookups("miss"), 1.0, "{text}");
    assert_eq!(lookups("hit"), 2.0, "{text}");
    assert!(!text.contains(&access));
    gw.finish().await;
}

#[tokio::test]
async fn upstream_failures_and_cooling_show_by_provider_key_and_kind() {
    let token = random(32);
    let gw = gateway(&token).await;
    let (_, key) = gw.create_key(json!({"name": "unlucky"})).await;
    gw.fault(json!({"status": 429, "count": 1})).await;
    assert!(!gw.chat(&key, chat_body(false)).await.status().is_success());
    let (text, metrics) = scrape(&gw, &token).await;
    let failures = |metrics: &Scrape, kind| {
        sum(
            metrics,
            "keygate_upstream_failures_total",
            &[("provider", "openai"), ("kind", kind)],
        )
    };
    assert_eq!(failures(&metrics, "status_429"), 1.0, "{text}");
    assert_eq!(
        sum(
            &metrics,
            "keygate_upstream_key_healthy",
            &[("provider", "openai"), ("key", "0")]
        ),
        0.0
    );
    assert_eq!(
        sum(
            &metrics,
            "keygate_upstream_healthy",
            &[("provider", "openai")]
        ),
        1.0
    );

    gw.fault(json!({"status": 503, "count": 1})).await;
    assert_eq!(gw.chat(&key, chat_body(false)).await.status(), 502);
    let (text, metrics) = scrape(&gw, &token).await;
    assert_eq!(failures(&metrics, "status_5xx"), 1.0, "{text}");
    assert_eq!(failures(&metrics, "timeout"), 0.0);
    assert_eq!(
        sum(
            &metrics,
            "keygate_upstream_healthy",
            &[("provider", "openai")]
        ),
        0.0
    );
    assert_eq!(
        sum(
            &metrics,
            "keygate_upstream_healthy",
            &[("provider", "anthropic")]
        ),
        1.0
    );
    gw.finish().await;
}
