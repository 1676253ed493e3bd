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

#[tokio::test]
async fn rotation_keeps_the_old_secret_for_its_grace_period_only() {
    for backend in crate::support::BACKENDS {
        let gw = TestGateway::start(backend, MockOptions::default()).await;
        let (id, old) = gw.create_key(json!({"name": "r"})).await;
        let rotate = |body: Value| {
            gw.admin(Method::POST, &format!("/keys/{id}/rotate"))
                .json(&body)
                .send()
        };
        let response = rotate(json!({"grace": "1h"})).await.unwrap();
        assert_eq!(response.status(), 200);
        let rotated: Value = response.json().await.unwrap();
        assert_eq!(rotated["id"], id.as_str());
        let new = rotated["key"].as_str().unwrap().to_string();
        assert_ne!(new, old);
        assert!(rotated["previous_secret_expires_at"].is_string());
        // Both secrets work now, through the real route.
        for secret in [&old, &new] {
            assert_eq!(gw.chat(secret, chat_body(false)).await.status(), 200);
        }
        // The grace period ends on time: checked at its last and first
        // instants on the verification clock, not by waiting.
        let record = gw.store().get_key(&id).await.unwrap().unwrap();
        let until = record.previous_expires_at.unwrap();
        assert!(gw.state.keys.verify(&old, until - 1).is_ok());
        assert_eq!(
            gw.state.keys.verify(&old, until).unwrap_err().code,
            "expired_api_key"
        );
        assert!(gw.state.keys.verify(&new, until + 1).is_ok());
        // The secret is shown once: not by show or list.
        let shown = gw
            .admin(Method::GET, &format!("/keys/{id}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!shown.contains(&new) && !shown.contains(&old));

        // A zero grace ends the replaced secret at once.
        let response = rotate(json!({"grace": "0s"})).await.unwrap();
        assert_eq!(response.status(), 200);
        let newest: Value = response.json().await.unwrap();
        let response = gw.chat(&new, chat_body(false)).await;
        assert_eq!(error_code(response).await, (401, json!("expired_api_key")));
        let newest = newest["key"].as_str().unwrap();
        assert_eq!(gw.chat(newest, chat_body(false)).await.status(), 200);
        // The first secret is gone for good.
        let response = gw.chat(&old, chat_body(false)).await;
        assert_eq!(error_code(response).await, (401, json!("invalid_api_key")));

        // Bad grace values, unknown ids and revoked keys are refused clearly.
        for bad in [
            json!({"grace": "soon"}),
            json!({"grace": "90d"}),
            json!({"secret": "x"}),
        ] {
            let response = rotate(bad.clone()).await.unwrap();
            assert_eq!(response.status(), 400, "{bad}");
        }
        let response = gw
            .admin(Method::POST, "/keys/key_doesnotexist/rotate")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
        gw.admin(Method::POST, &format!("/keys/{id}/revoke"))
            .send()
            .await
            .unwrap();
        let response = rotate(json!({})).await.unwrap();
        assert_eq!(response.status(), 409);
        let response = gw.chat(newest, chat_body(false)).await;
        assert_eq!(error_code(response).await, (401, json!("revoked_api_key")));
        gw.finish().await;
    }
}

#[tokio::test]
async fn a_suspended_key_is_refused_until_resumed() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let (id, key) = gw.create_key(json!({"name": "s"})).await;
    let act = |action: &str| {
        gw.admin(Method::POST, &format!("/keys/{id}/{action}"))
            .send()
    };
    let suspended: Value = act("suspend").await.unwrap().json().await.unwrap();
    assert_eq!(suspended["status"], "suspended");
    let response = gw.chat(&key, chat_body(false)).await;
    assert_eq!(
        error_code(response).await,
        (401, json!("suspended_api_key"))
    );
    // Suspending twice keeps the first time.
    let again: Value = act("suspend").await.unwrap().json().await.unwrap();
    assert_eq!(again["suspended_at"], suspended["suspended_at"]);
    let resumed: Value = act("resume").await.unwrap().json().await.unwrap();
    assert_eq!(resumed["status"], "active");
    assert_eq!(gw.chat(&key, chat_body(false)).await.status(), 200);
    // A revoked key stays revoked: no resuming it.
    gw.admin(Method::POST, &format!("/keys/{id}/revoke"))
        .send()
        .await
        .unwrap();
    assert_eq!(act("resume").await.unwrap().status(), 409);
    assert_eq!(act("suspend").await.unwrap().status(), 409);
    let response = gw
        .admin(Method::POST, "/keys/key_nope/suspend")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    gw.finish().await;
}

#[tokio::test]
async fn the_key_age_flag_appears_at_the_rotation_policy_age() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let (fresh, _) = gw.create_key(json!({"name": "fresh"})).await;
    // Keys whose secrets were issued just before and exactly at the
    // default 90-day policy age, written straight into the store.
    let day = 86_400_000i64;
    let now = keygate::time::now_ms();
    let mut aged = gw.store().get_key(&fresh).await.unwrap().unwrap();
    for (id, age) in [
        ("key_agedjustunder", 90 * day - 60_000),
        ("key_agedatpolicy", 90 * day),
    ] {
        aged.id = id.to_string();
        aged.secret_hash = format!("{:0>64}", id.len());
        aged.created_at = now - age;
        aged.updated_at = now;
        gw.store().insert_key(&aged).await.unwrap();
    }
    let show = |id: String| {
        let request = gw.admin(Method::GET, &format!("/keys/{id}"));
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    assert_eq!(show(fresh.clone()).await["rotation_due"], false);
    let under = show("key_agedjustunder".into()).await;
    assert_eq!(
        (
            under["rotation_due"].clone(),
            under["secret_age_days"].clone()
        ),
        (json!(false), json!(89))
    );
    let at = show("key_agedatpolicy".into()).await;
    assert_eq!(
        (at["rotation_due"].clone(), at["secret_age_days"].clone()),
        (json!(true), json!(90))
    );
    // The list flags it too, and a rotation clears the flag.
    let list: Value = gw
        .admin(Method::GET, "/keys")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let flagged: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["rotation_due"] == true)
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(flagged, vec!["key_agedatpolicy"]);
    let rotated: Value = gw
        .admin(Method::POST, "/keys/key_agedatpolicy/rotate")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rotated["rotation_due"], false);
    assert_eq!(rotated["secret_age_days"], 0);
    gw.finish().await;
}
