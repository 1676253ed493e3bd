//! Routing: configured OpenAI-compatible providers, aliases and
//! `provider/model`, each reaching the right upstream with its own key.

use crate::support::{error_code, Backend, TestGateway};
use keygate::mock::MockOptions;
use rand::distr::{Alphanumeric, SampleString};
use serde_json::{json, Value};
use std::collections::BTreeMap;

#[tokio::test]
async fn configured_providers_and_aliases_reach_their_upstream_with_their_key() {
    let local_key = format!("local-{}", Alphanumeric.sample_string(&mut rand::rng(), 24));
    let key_for_env = local_key.clone();
    let gw = TestGateway::start_with(Backend::Sqlite, MockOptions::default(), move |mock| {
        let toml = format!(
            "[[providers]]\nname = \"local\"\nkind = \"openai\"\nbase_url = \"http://{mock}/v1\"\n\
             api_key_env = \"LOCAL_LLM_KEY\"\nmodels = [\"llama-*\"]\n\n[aliases]\nfast = \"local/llama-3-8b\"\n"
        );
        (toml, BTreeMap::from([("LOCAL_LLM_KEY".to_string(), key_for_env)]))
    })
    .await;
    let (id, key) = gw
        .create_key(json!({"name": "r", "models": ["fast", "llama-*", "local/*"]}))
        .await;
    let ask =
        |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});

    for (model, upstream_model) in [
        ("fast", "llama-3-8b"),
        ("llama-3-70b", "llama-3-70b"),
        ("local/qwen", "qwen"),
    ] {
        let http = reqwest::Client::new();
        http.delete(format!("http://{}/_mock/requests", gw.mock))
            .send()
            .await
            .unwrap();
        let response = gw.chat(&key, ask(model)).await;
        assert_eq!(response.status(), 200, "{model}");
        let seen: Value = http
            .get(format!("http://{}/_mock/requests", gw.mock))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let request = &seen[0];
        assert_eq!(request["path"], "/v1/chat/completions");
        assert_eq!(
            request["headers"]["authorization"],
            format!("Bearer {local_key}"),
            "{model}: the configured provider's key"
        );
        let body: Value = serde_json::from_str(request["body"].as_str().unwrap()).unwrap();
        assert_eq!(
            body["model"], upstream_model,
            "{model}: the upstream's own model name"
        );
        assert!(
            !request.to_string().contains(&key),
            "the client's key never goes upstream"
        );
    }

    // Allowed by the key but not served: 400 naming the model; not allowed: 403.
    let response = gw.chat(&key, ask("llama")).await;
    assert_eq!(response.status(), 403);
    let response = gw.chat(&key, ask("gpt-4o")).await;
    assert_eq!(response.status(), 403);
    let (_, all) = gw.create_key(json!({"name": "all"})).await;
    let response = gw.chat(&all, ask("mistral-large")).await;
    assert_eq!(error_code(response).await, (400, json!("model_not_found")));

    let events = gw.events_of(&id).await;
    let providers: Vec<_> = events
        .iter()
        .filter(|e| e.status == 200)
        .map(|e| e.provider.clone().unwrap())
        .collect();
    assert_eq!(providers, vec!["local", "local", "local"]);
    gw.finish().await;
}

#[tokio::test]
async fn environments_are_boundaries_a_test_key_never_reaches_a_live_provider() {
    let sandbox = crate::support::mock(MockOptions::default()).await;
    let gw = TestGateway::start_with(Backend::Sqlite, MockOptions::default(), move |live| {
        let toml = format!(
            "[[providers]]\nname = \"prod\"\nkind = \"openai\"\nbase_url = \"http://{live}/v1\"\n\
             api_key_env = \"PROD_KEY\"\nmodels = [\"gpt-*\", \"o3*\"]\nenvironments = [\"live\"]\n\n\
             [[providers]]\nname = \"sandbox\"\nkind = \"openai\"\nbase_url = \"http://{sandbox}/v1\"\n\
             api_key_env = \"SANDBOX_KEY\"\nmodels = [\"gpt-*\"]\nenvironments = [\"test\"]\n"
        );
        (
            toml,
            BTreeMap::from([
                ("PROD_KEY".to_string(), "sk-prod-account".to_string()),
                ("SANDBOX_KEY".to_string(), "sk-sandbox-account".to_string()),
                ("OPENAI_API_KEY".to_string(), String::new()),
                ("ANTHROPIC_API_KEY".to_string(), String::new()),
            ]),
        )
    })
    .await;
    let (_, live_key) = gw.create_key(json!({"name": "l", "env": "live"})).await;
    let (_, test_key) = gw.create_key(json!({"name": "t", "env": "test"})).await;
    assert!(test_key.starts_with("kg_test_"));
    let ask =
        |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    let seen = |mock: std::net::SocketAddr| async move {
        let list: Value = reqwest::get(format!("http://{mock}/_mock/requests"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .map(|r| r["headers"]["authorization"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    for _ in 0..5 {
        assert_eq!(gw.chat(&test_key, ask("gpt-4o")).await.status(), 200);
        assert_eq!(gw.chat(&live_key, ask("gpt-4o")).await.status(), 200);
    }
    assert!(seen(sandbox)
        .await
        .iter()
        .all(|a| a == "Bearer sk-sandbox-account"));
    assert_eq!(
        seen(sandbox).await.len(),
        5,
        "every test-key request went to the sandbox"
    );
    assert!(seen(gw.mock)
        .await
        .iter()
        .all(|a| a == "Bearer sk-prod-account"));
    // A model only the live provider serves is refused to a test key, and
    // `prod/…` cannot reach around the boundary.
    for model in ["o3-mini", "prod/gpt-4o"] {
        let response = gw.chat(&test_key, ask(model)).await;
        assert_eq!(
            error_code(response).await,
            (403, json!("environment_not_allowed")),
            "{model}"
        );
    }
    assert_eq!(
        seen(gw.mock).await.len(),
        5,
        "the live account was never used by the test key"
    );
    gw.finish().await;
}

#[test]
fn a_provider_environment_must_be_configured() {
    let raw: keygate::config::RawConfig = toml::from_str(
        "[[providers]]\nname = \"p\"\nkind = \"openai\"\napi_key_env = \"K\"\nenvironments = [\"staging\"]\n",
    )
    .unwrap();
    let env = BTreeMap::from([("K".to_string(), "k".to_string())]);
    let error = keygate::config::Config::from_raw(raw, &env).unwrap_err();
    assert!(error.to_string().contains("staging"), "{error}");
}
