//! Leak reports signed like GitHub's secret-scanning partner program, and
//! incidents: revoke, replace, and the exposure report checked against the
//! ledger.

use crate::support::{chat_body, error_code, Backend, TestGateway};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use keygate::mock::MockOptions;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// A reporter: a P-256 key pair made for this test, and its identifier.
struct Reporter {
    pair: EcdsaKeyPair,
    id: String,
}

impl Reporter {
    fn new(id: &str) -> Reporter {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        Reporter {
            pair,
            id: id.into(),
        }
    }

    /// The public key document in GitHub's shape.
    fn key_document(&self) -> String {
        let der = self.pair.public_key().as_der().unwrap();
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            B64.encode(der.as_ref())
        );
        json!({"public_keys": [{"key_identifier": self.id, "key": pem, "is_current": true}]})
            .to_string()
    }

    fn sign(&self, body: &[u8]) -> String {
        B64.encode(self.pair.sign(&SystemRandom::new(), body).unwrap().as_ref())
    }
}

async fn gateway(reporter: &Reporter) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("github-keys.json");
    std::fs::write(&path, reporter.key_document()).unwrap();
    let gw = TestGateway::start_with(Backend::Sqlite, MockOptions::default(), move |_| {
        let mut env = BTreeMap::new();
        env.insert(
            "KEYGATE_LEAK_REPORT_KEYS".into(),
            path.display().to_string(),
        );
        // The test client stands in for a proxy, so a request can come
        // "from" a new network.
        env.insert("KEYGATE_TRUSTED_PROXIES".into(), "127.0.0.1/32".into());
        (String::new(), env)
    })
    .await;
    // The key file is read at start; the directory can go.
    drop(dir);
    gw
}

async fn report(gw: &TestGateway, id: &str, signature: &str, body: &[u8]) -> (u16, Value) {
    let response = gw
        .http
        .post(format!("{}/leak-reports", gw.base))
        .header("content-type", "application/json")
        .header("Github-Public-Key-Identifier", id)
        .header("Github-Public-Key-Signature", signature)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn status_of(gw: &TestGateway, id: &str) -> String {
    let shown: Value = gw
        .admin(Method::GET, &format!("/keys/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    shown["status"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn signed_reports_revoke_live_keys_and_alert_their_owners() {
    let reporter = Reporter::new("gh-key-1");
    let gw = gateway(&reporter).await;
    let (id, key) = gw
        .create_key(json!({"name": "leaky", "owner": "ann@acme.test"}))
        .await;
    let (other_id, other_key) = gw.create_key(json!({"name": "safe"})).await;
    let url = "https://github.com/acme/app/blob/abc123/config.py";
    let look_alike = format!("{}x", &key[..key.len() - 1]);
    let batch = json!([
        {"token": key, "type": "keygate_api_key", "url": url, "source": "content"},
        {"token": look_alike, "type": "keygate_api_key", "url": url, "source": "content"},
        {"token": "not-a-key", "type": "keygate_api_key", "url": url, "source": "content"},
    ])
    .to_string();

    // Refused, with nothing revoked: a bad signature (signed over other
    // bytes), an unknown reporter key, no signature, a malformed batch.
    let wrong = reporter.sign(b"[]");
    assert_eq!(
        report(&gw, &reporter.id, &wrong, batch.as_bytes()).await.0,
        401
    );
    let other = Reporter::new("gh-key-2");
    assert_eq!(
        report(
            &gw,
            &other.id,
            &other.sign(batch.as_bytes()),
            batch.as_bytes()
        )
        .await
        .0,
        401
    );
    assert_eq!(report(&gw, &reporter.id, "", batch.as_bytes()).await.0, 401);
    let malformed = br#"[{"token": 42}]"#;
    assert_eq!(
        report(&gw, &reporter.id, &reporter.sign(malformed), malformed)
            .await
            .0,
        400
    );
    let truncated = &batch.as_bytes()[..batch.len() / 2];
    assert_eq!(
        report(&gw, &reporter.id, &reporter.sign(truncated), truncated)
            .await
            .0,
        400
    );
    assert_eq!(status_of(&gw, &id).await, "active");
    assert_eq!(gw.chat(&key, chat_body(false)).await.status(), 200);

    // A valid report: the key dies, the others are labelled false.
    let (status, answer) = report(
        &gw,
        &reporter.id,
        &reporter.sign(batch.as_bytes()),
        batch.as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let labels: Vec<&str> = answer
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        ["true_positive", "false_positive", "false_positive"]
    );
    assert_eq!(
        answer[0]["token_hash"],
        hex::encode(Sha256::digest(key.as_bytes()))
    );
    assert!(
        !answer.to_string().contains(&key),
        "the token is never echoed"
    );
    assert_eq!(status_of(&gw, &id).await, "revoked");
    let (status, code) = error_code(gw.chat(&key, chat_body(false)).await).await;
    assert_eq!((status, code), (401, json!("revoked_api_key")));
    assert_eq!(status_of(&gw, &other_id).await, "active");
    assert_eq!(gw.chat(&other_key, chat_body(false)).await.status(), 200);
    // The owner is alerted with where it was found.
    let alerts = gw.store().recent_alerts(10).await.unwrap();
    let leaked: Vec<_> = alerts.iter().filter(|a| a.kind == "key.leaked").collect();
    assert_eq!(leaked.len(), 1);
    assert_eq!(leaked[0].owner.as_deref(), Some("ann@acme.test"));
    assert_eq!(leaked[0].details["url"], url);
    assert!(leaked[0].message.contains(url));
    // A replay of the same batch is refused.
    let (status, _) = report(
        &gw,
        &reporter.id,
        &reporter.sign(batch.as_bytes()),
        batch.as_bytes(),
    )
    .await;
    assert_eq!(status, 409);
    // The incident report starts at the leak report and cites it.
    let incident: Value = gw
        .admin(Method::POST, &format!("/keys/{id}/incident"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(incident["report"]["window_start"], "first_leak_report");
    assert_eq!(incident["report"]["leak_reports"][0]["url"], url);
    assert_eq!(incident["key"]["revoke_reason"], "leaked");
    gw.finish().await;
}

#[tokio::test]
async fn an_incident_revokes_replaces_and_reports_the_exposure_from_the_ledger() {
    let reporter = Reporter::new("gh-key-1");
    let gw = gateway(&reporter).await;
    let (id, key) = gw
        .create_key(
            json!({"name": "ci", "owner": "bob@acme.test", "models": ["gpt-4o*"], "rpm": 100}),
        )
        .await;
    // Its usual use, from the usual place, before the leak.
    for _ in 0..3 {
        assert_eq!(gw.chat(&key, chat_body(false)).await.status(), 200);
    }
    gw.state.ledger.flush().await;
    let before_leak = keygate::time::now_ms();
    // The leak: used from a new network with another client and model.
    let leaked_use = |model: &str| {
        gw.http
            .post(format!("{}/v1/chat/completions", gw.base))
            .bearer_auth(&key)
            .header("x-forwarded-for", "203.0.113.7")
            .header("user-agent", "curl/8.0")
            .json(
                &json!({"model": model, "messages": [{"role": "user", "content": "hello there"}]}),
            )
            .send()
    };
    for model in ["gpt-4o", "gpt-4o", "gpt-4o-mini"] {
        assert_eq!(leaked_use(model).await.unwrap().status(), 200);
    }
    assert_eq!(leaked_use("claude-sonnet-4").await.unwrap().status(), 403);

    let answer = gw
        .admin(Method::POST, &format!("/keys/{id}/incident"))
        .json(&json!({"since": keygate::time::rfc3339(before_leak), "replace": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let incident: Value = answer.json().await.unwrap();
    assert_eq!(incident["key"]["status"], "revoked");
    assert_eq!(incident["key"]["revoke_reason"], "incident");
    let replacement = incident["replacement"]["key"].as_str().unwrap();
    assert_eq!(incident["replacement"]["owner"], "bob@acme.test");
    assert_eq!(incident["replacement"]["models"], json!(["gpt-4o*"]));
    assert_eq!(incident["replacement"]["rpm"], 100);
    assert_eq!(gw.chat(replacement, chat_body(false)).await.status(), 200);
    assert_eq!(
        error_code(gw.chat(&key, chat_body(false)).await).await.0,
        401
    );

    // The report against the ledger rows of the window.
    let report = &incident["report"];
    assert_eq!(report["window_start"], "given");
    let rows: Vec<_> = gw
        .events_of(&id)
        .await
        .into_iter()
        .filter(|e| {
            e.ts >= report["since"].as_i64().unwrap() && e.ts <= report["until"].as_i64().unwrap()
        })
        .collect();
    let exposure = &report["exposure"];
    assert_eq!(exposure["requests"].as_i64().unwrap(), rows.len() as i64);
    assert_eq!(exposure["requests"], 4);
    assert_eq!(exposure["refused"], 1);
    let spent: i64 = rows.iter().map(|e| e.cost_nanos).sum();
    assert_eq!(exposure["cost_nanos"].as_i64().unwrap(), spent);
    assert!(spent > 0);
    let tokens: i64 = rows
        .iter()
        .map(|e| e.prompt_tokens + e.completion_tokens)
        .sum();
    assert_eq!(
        exposure["prompt_tokens"].as_i64().unwrap()
            + exposure["completion_tokens"].as_i64().unwrap(),
        tokens
    );
    let sources: Vec<&str> = exposure["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["203.0.113.7"]);
    let differences = &report["differences"];
    assert_eq!(differences["new_sources"], json!(["203.0.113.7"]));
    assert_eq!(differences["new_user_agents"], json!(["curl/8.0"]));
    let new_models = differences["new_models"].as_array().unwrap();
    assert!(new_models.contains(&json!("gpt-4o")), "{differences}");
    assert!(
        new_models.contains(&json!("claude-sonnet-4")),
        "{differences}"
    );
    assert!(
        !new_models.contains(&json!("gpt-4o-mini")),
        "used before the leak: {differences}"
    );
    assert_eq!(report["baseline"]["requests"], 3);
    gw.finish().await;
}
