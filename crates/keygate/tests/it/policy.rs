//! Per-key policy: route scopes, source networks (with trusted proxies), and
//! updates that cannot set what the API does not offer.

use crate::support::{chat_body, error_code, Backend, TestGateway};
use keygate::mock::MockOptions;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;

async fn post(
    gw: &TestGateway,
    path: &str,
    key: &str,
    body: Value,
    xff: Option<&str>,
) -> reqwest::Response {
    let mut request = gw
        .http
        .post(format!("{}{path}", gw.base))
        .bearer_auth(key)
        .json(&body);
    if let Some(xff) = xff {
        request = request.header("x-forwarded-for", xff);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn scopes_limit_a_key_to_its_route_families() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let (_, key) = gw
        .create_key(json!({"name": "chat only", "scopes": ["chat"]}))
        .await;
    assert_eq!(
        post(&gw, "/v1/chat/completions", &key, chat_body(false), None)
            .await
            .status(),
        200
    );
    let embeddings = json!({"model": "text-embedding-3-small", "input": "x"});
    let response = post(&gw, "/v1/embeddings", &key, embeddings, None).await;
    assert_eq!(
        error_code(response).await,
        (403, json!("scope_not_allowed"))
    );
    let response = gw
        .http
        .get(format!("{}/v1/models", gw.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (403, json!("scope_not_allowed"))
    );
    let response = gw
        .admin(Method::POST, "/keys")
        .json(&json!({"name": "bad", "scopes": ["everything"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (400, json!("invalid_request_error"))
    );
    gw.finish().await;
}

#[tokio::test]
async fn source_networks_and_trusted_proxies() {
    let gw = TestGateway::start_with(Backend::Sqlite, MockOptions::default(), |_| {
        (
            String::new(),
            BTreeMap::from([(
                "KEYGATE_TRUSTED_PROXIES".to_string(),
                "127.0.0.1/32".to_string(),
            )]),
        )
    })
    .await;
    let (_, local) = gw
        .create_key(json!({"name": "local", "allow_ips": ["127.0.0.1"]}))
        .await;
    let (_, office) = gw
        .create_key(json!({"name": "office", "allow_ips": ["203.0.113.0/24"]}))
        .await;
    let chat = "/v1/chat/completions";
    assert_eq!(
        post(&gw, chat, &local, chat_body(false), None)
            .await
            .status(),
        200
    );
    // Directly from 127.0.0.1 (not the office).
    let response = post(&gw, chat, &office, chat_body(false), None).await;
    assert_eq!(error_code(response).await, (403, json!("ip_not_allowed")));
    // Through the trusted proxy (127.0.0.1) for an office client; the
    // ledger records the client, not the proxy.
    assert_eq!(
        post(&gw, chat, &office, chat_body(false), Some("203.0.113.9"))
            .await
            .status(),
        200
    );
    let office_id = gw.state.keys.verify(&office, 0).unwrap().id.clone();
    let events = gw.events_of(&office_id).await;
    assert!(events
        .iter()
        .any(|e| e.status == 200 && e.source_ip.as_deref() == Some("203.0.113.9")));
    // A client forging an office address in front of its own: the proxy
    // appended the real one, which is what counts.
    let response = post(
        &gw,
        chat,
        &office,
        chat_body(false),
        Some("203.0.113.9, 198.51.100.4"),
    )
    .await;
    assert_eq!(error_code(response).await, (403, json!("ip_not_allowed")));
    let response = gw
        .admin(Method::POST, "/keys")
        .json(&json!({"name": "bad", "allow_ips": ["10.0.0.0/40"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    gw.finish().await;

    // Without trusted proxies, X-Forwarded-For is never believed.
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let (_, office) = gw
        .create_key(json!({"name": "office", "allow_ips": ["203.0.113.0/24"]}))
        .await;
    let response = post(&gw, chat, &office, chat_body(false), Some("203.0.113.9")).await;
    assert_eq!(error_code(response).await, (403, json!("ip_not_allowed")));
    gw.finish().await;
}

#[tokio::test]
async fn updates_change_policy_at_once_and_refuse_mass_assignment() {
    for backend in crate::support::BACKENDS {
        let gw = TestGateway::start(backend, MockOptions::default()).await;
        let (id, key) = gw
            .create_key(json!({"name": "u", "expires": "30d", "metadata": {"team": "search"}}))
            .await;
        let patch = |body: Value| {
            gw.admin(Method::PATCH, &format!("/keys/{id}"))
                .json(&body)
                .send()
        };
        // Fields the API does not offer are refused, not ignored.
        for forbidden in [
            json!({"env": "test"}),
            json!({"kind": "admin"}),
            json!({"secret_hash": "00"}),
            json!({"revoked_at": null}),
            json!({"id": "key_other"}),
        ] {
            let response = patch(forbidden.clone()).await.unwrap();
            assert_eq!(response.status(), 400, "{backend:?}: {forbidden}");
        }
        let updated: Value = patch(json!({
            "name": "renamed", "models": ["claude-*"], "description": "search team",
            "expires": null, "metadata": {"team": "search", "cost_center": "42"},
        }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert_eq!(updated["name"], "renamed");
        assert_eq!(updated["expires_at"], Value::Null);
        assert_eq!(updated["metadata"]["cost_center"], "42");
        assert_eq!(updated["env"], "live", "unchanged");
        // The new model allowlist applies at once.
        let response = gw.chat(&key, chat_body(false)).await;
        assert_eq!(
            error_code(response).await,
            (403, json!("model_not_allowed"))
        );
        let shown: Value = gw
            .admin(Method::GET, &format!("/keys/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(shown["description"], "search team");
        assert_eq!(shown["models"], json!(["claude-*"]));
        // Bad values are refused and change nothing.
        for bad in [
            json!({"scopes": ["root"]}),
            json!({"name": ""}),
            json!({"metadata": []}),
        ] {
            assert_eq!(patch(bad.clone()).await.unwrap().status(), 400, "{bad}");
        }
        gw.admin(Method::POST, &format!("/keys/{id}/revoke"))
            .send()
            .await
            .unwrap();
        // A revoked key's state forbids changes: 409.
        assert_eq!(patch(json!({"name": "x"})).await.unwrap().status(), 409);
        gw.finish().await;
    }
}
