//! The key lifecycle pass: owners are reminded once per secret when it
//! reaches the rotation policy's age; keys that opted in are rotated and
//! their new secret delivered, signed, to their webhook before the rotation
//! is committed. Passes run at a chosen time, so no clock is waited on.

use crate::support::{chat_body, Backend, TestGateway, BACKENDS};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use keygate::lifecycle::{run_pass, Lifecycle, PassReport};
use keygate::mock::MockOptions;
use rand::distr::{Alphanumeric, SampleString};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc;

const DAY_MS: i64 = 86_400_000;

/// One request a receiver got: path, headers, raw body.
type Received = (String, HeaderMap, Bytes);

/// A webhook receiver on loopback: `/ok/…` answers 200, `/down/…` 503.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel::<Received>();
    let app = axum::Router::new()
        .route(
            "/{*path}",
            post(
                |State(tx): State<mpsc::UnboundedSender<Received>>,
                 uri: Uri,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let path = uri.path().to_string();
                    let status = if path.starts_with("/down") {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::OK
                    };
                    let _ = tx.send((path, headers, body));
                    status
                },
            ),
        )
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("a delivery within 30 s")
        .unwrap()
}

fn secret() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

#[tokio::test]
async fn owners_are_reminded_once_and_opted_in_keys_rotate_through_their_webhook() {
    for backend in BACKENDS {
        let (hooks, mut received) = receiver().await;
        let alert_secret = secret();
        let rotation_secret = secret();
        let env_hooks = hooks.clone();
        let (alert_key, rotation_key) = (alert_secret.clone(), rotation_secret.clone());
        let gw = TestGateway::start_with(backend, MockOptions::default(), move |_| {
            let env = BTreeMap::from([
                ("KEYGATE_ROTATION_POLICY".to_string(), "30d".to_string()),
                (
                    "KEYGATE_ALERT_WEBHOOK_URL".to_string(),
                    format!("{env_hooks}/ok/alerts"),
                ),
                ("KEYGATE_ALERT_WEBHOOK_SECRET".to_string(), alert_key),
                ("KEYGATE_ROTATION_WEBHOOK_SECRET".to_string(), rotation_key),
            ]);
            (String::new(), env)
        })
        .await;

        let (plain, _) = gw
            .create_key(json!({"name": "plain", "owner": "alice@example.com"}))
            .await;
        let (auto, auto_secret) = gw
            .create_key(json!({
                "name": "auto", "owner": "bob@example.com",
                "auto_rotate_webhook": format!("{hooks}/ok/rotated"),
            }))
            .await;
        let (broken, broken_secret) = gw
            .create_key(json!({
                "name": "broken", "owner": "carol@example.com",
                "auto_rotate_webhook": format!("{hooks}/down/rotated"),
            }))
            .await;
        let (expiring, _) = gw
            .create_key(json!({"name": "short-lived", "owner": "dan", "expires": "1h"}))
            .await;
        // A secret may only travel to https or loopback.
        let response = gw
            .admin(Method::POST, "/keys")
            .json(&json!({"name": "x", "auto_rotate_webhook": "http://example.com/hook"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);

        let lifecycle = Lifecycle::new(&gw.state);
        let start = keygate::time::now_ms();
        // Before the policy age only the expiry is recorded.
        let early = run_pass(&lifecycle, start + 29 * DAY_MS, start + 29 * DAY_MS)
            .await
            .unwrap();
        assert_eq!(
            early,
            PassReport {
                expired: 1,
                ..PassReport::default()
            }
        );

        let now = start + 31 * DAY_MS;
        let report = run_pass(&lifecycle, now, now).await.unwrap();
        assert_eq!(
            report,
            PassReport {
                reminded: 3,
                rotated: 1,
                failed: 1,
                expired: 0,
                sessions_ended: 0,
                skipped: false
            }
        );

        // Deliveries: the rotated secret (signed, with the rotation secret)
        // and the failed attempt happen during the pass; alerts follow
        // from the outbox.
        let mut rotated_body = None;
        let mut alerts: Vec<Value> = Vec::new();
        let mut down_attempts = 0;
        while rotated_body.is_none() || alerts.len() < 4 {
            let (path, headers, body) = next(&mut received).await;
            let header = |name: &str| headers[name].to_str().unwrap().to_string();
            match path.as_str() {
                "/ok/rotated" => {
                    let ts = header("x-keygate-timestamp");
                    keygate::alerts::verify(
                        rotation_secret.as_bytes(),
                        &ts,
                        &body,
                        &header("x-keygate-signature"),
                        now / 1000,
                        Duration::from_secs(300),
                    )
                    .expect("a rotation delivery signed with the rotation secret");
                    assert!(keygate::alerts::verify(
                        alert_secret.as_bytes(),
                        &ts,
                        &body,
                        &header("x-keygate-signature"),
                        now / 1000,
                        Duration::from_secs(300),
                    )
                    .is_err());
                    rotated_body = Some(serde_json::from_slice::<Value>(&body).unwrap());
                }
                "/down/rotated" => down_attempts += 1,
                "/ok/alerts" => alerts.push(serde_json::from_slice(&body).unwrap()),
                other => panic!("unexpected delivery to {other}"),
            }
        }
        assert_eq!(down_attempts, 1);
        let rotated = rotated_body.unwrap();
        assert_eq!(rotated["type"], json!("key.rotated"));
        assert_eq!(rotated["key_id"], json!(auto));
        assert_eq!(rotated["owner"], json!("bob@example.com"));
        let new_secret = rotated["key"].as_str().unwrap().to_string();
        assert!(new_secret.starts_with("kg_live_") && new_secret != auto_secret);

        // The new secret works at once; the old one for its grace period.
        assert_eq!(gw.chat(&new_secret, chat_body(false)).await.status(), 200);
        assert_eq!(gw.chat(&auto_secret, chat_body(false)).await.status(), 200);
        // The key whose webhook failed keeps its secret.
        assert_eq!(
            gw.chat(&broken_secret, chat_body(false)).await.status(),
            200
        );

        let mut reminders: Vec<(String, String)> = alerts
            .iter()
            .filter(|a| a["kind"] == json!("key.rotation_due"))
            .map(|a| {
                (
                    a["subject"].as_str().unwrap().to_string(),
                    a["owner"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        reminders.sort();
        let mut expected = vec![
            (plain.clone(), "alice@example.com".to_string()),
            (auto.clone(), "bob@example.com".to_string()),
            (broken.clone(), "carol@example.com".to_string()),
        ];
        expected.sort();
        assert_eq!(reminders, expected);
        let failed: Vec<&Value> = alerts
            .iter()
            .filter(|a| a["kind"] == json!("key.auto_rotation_failed"))
            .collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0]["subject"], json!(broken));
        assert!(!failed[0].to_string().contains(&broken_secret));

        // A second pass: no reminder twice, the rotated key is not due any
        // more, the broken one is retried without a second alert.
        let again = run_pass(&lifecycle, now + 1, now + 1).await.unwrap();
        assert_eq!(
            again,
            PassReport {
                reminded: 0,
                rotated: 0,
                failed: 1,
                expired: 0,
                sessions_ended: 0,
                skipped: false
            }
        );
        let (path, _, _) = next(&mut received).await;
        assert_eq!(path, "/down/rotated");

        // Another node holding the lease: this one skips.
        assert!(gw
            .store()
            .try_lease("lifecycle_lease", now + 10_000, now + 2)
            .await
            .unwrap());
        let skipped = run_pass(&lifecycle, now + 3, now + 3).await.unwrap();
        assert!(skipped.skipped);

        // The rotation is in the audit log, by keygate itself.
        let audit: Value = gw
            .admin(
                Method::GET,
                &format!("/audit?action=key.auto_rotate&target={auto}"),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(audit["data"][0]["actor"], json!("keygate"));
        // The expiry is in the audit log too, at the time it happened.
        let audit: Value = gw
            .admin(
                Method::GET,
                &format!("/audit?action=key.expire&target={expiring}"),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(audit["data"].as_array().unwrap().len(), 1);
        assert_eq!(audit["data"][0]["actor"], json!("keygate"));
        gw.finish().await;
        // No further deliveries were made (nothing duplicated).
        assert!(received.try_recv().is_err());
    }
}

#[tokio::test]
async fn without_a_signing_secret_keys_cannot_opt_into_automatic_rotation() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let response = gw
        .admin(Method::POST, "/keys")
        .json(&json!({"name": "x", "auto_rotate_webhook": "https://hooks.example.com/rotated"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("KEYGATE_ROTATION_WEBHOOK_SECRET"));
    gw.finish().await;
}
