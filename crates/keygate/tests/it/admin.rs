//! The admin API: credentials kept apart, unknown fields refused, revocation
//! immediate, secrets never shown twice.

use crate::support::{chat_body, error_code, Backend, TestGateway};
use keygate::mock::MockOptions;
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn admin_and_data_credentials_are_kept_apart() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let (_, key) = gw.create_key(json!({"name": "d"})).await;
    let response = gw
        .http
        .get(format!("{}/admin/v1/keys", gw.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, (403, json!("admin_required")));

    let response = gw.chat(&gw.admin_key, chat_body(false)).await;
    assert_eq!(
        error_code(response).await,
        (403, json!("wrong_credential_kind"))
    );

    let response = gw
        .http
        .get(format!("{}/admin/v1/keys", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    gw.finish().await;
}

#[tokio::test]
async fn key_definitions_are_validated() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    for (body, param) in [
        (json!({"name": "x", "revoked_at": 1}), Value::Null),
        (json!({"name": ""}), json!("name")),
        (json!({"name": "x", "env": "prod"}), json!("env")),
        (json!({"name": "x", "env": "admin"}), json!("env")),
        (json!({"name": "x", "models": ["["]}), json!("models")),
        (
            json!({"name": "x", "expires": "yesterday"}),
            json!("expires"),
        ),
        (
            json!({"name": "x", "expires": "2001-01-01T00:00:00Z"}),
            json!("expires"),
        ),
        (json!(["name"]), Value::Null),
    ] {
        let response = gw
            .admin(Method::POST, "/keys")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["param"], param, "{body}");
        assert!(error["error"]["message"].is_string());
    }
    gw.finish().await;
}

#[tokio::test]
async fn revocation_is_immediate_and_secrets_are_shown_once() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let (id, key) = gw
        .create_key(json!({"name": "r", "models": ["gpt-*"]}))
        .await;
    assert_eq!(gw.chat(&key, chat_body(false)).await.status(), 200);

    let listing = gw
        .admin(Method::GET, "/keys")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(listing.contains(&id));
    assert!(!listing.contains(&key), "a listing never shows a secret");

    let response = gw
        .admin(Method::POST, &format!("/keys/{id}/revoke"))
        .json(&json!({"reason": "test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let shown: Value = response.json().await.unwrap();
    assert_eq!(shown["status"], "revoked");
    assert!(shown.get("key").is_none());

    let response = gw.chat(&key, chat_body(false)).await;
    assert_eq!(error_code(response).await, (401, json!("revoked_api_key")));

    let missing = gw
        .admin(Method::POST, "/keys/key_nope/revoke")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    gw.finish().await;
}
