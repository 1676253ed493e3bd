//! The audit log: every admin change and refused admin sign-in, with actor,
//! target, source and field names — never a secret — and append-only in
//! the database itself.

use crate::support::{TestGateway, BACKENDS};
use keygate::mock::MockOptions;
use keygate::store::AuditFilter;
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn admin_changes_and_refused_sign_ins_are_audited_without_secrets() {
    for backend in BACKENDS {
        let gw = TestGateway::start(backend, MockOptions::default()).await;
        let admin_id = gw.state.keys.verify(&gw.admin_key, 0).unwrap().id.clone();
        let (id, key) = gw
            .create_key(json!({"name": "audited", "models": ["gpt-*"]}))
            .await;
        let rotated: Value = gw
            .admin(Method::POST, &format!("/keys/{id}/rotate"))
            .json(&json!({"grace": "1h"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let new_secret = rotated["key"].as_str().unwrap().to_string();
        gw.admin(Method::POST, &format!("/keys/{id}/revoke"))
            .json(&json!({"reason": "left the team"}))
            .send()
            .await
            .unwrap();
        let provider_secret = "upstream-provider-secret-never-audited-0001";
        let response = gw
            .admin(Method::POST, "/provider-credentials")
            .json(&json!({"name": "audited-cred", "secret": provider_secret}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        // A (live) data key on the admin API, and a garbage credential.
        let (other_id, other) = gw.create_key(json!({"name": "not an admin"})).await;
        for credential in [other.as_str(), "kg_live_nonsense"] {
            let response = gw
                .http
                .post(format!("{}/admin/v1/keys", gw.base))
                .bearer_auth(credential)
                .json(&json!({"name": "x"}))
                .send()
                .await
                .unwrap();
            assert!(response.status() == 401 || response.status() == 403);
        }

        let listed: Value = gw
            .admin(Method::GET, "/audit?limit=50")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let text = listed.to_string();
        for secret in [
            key.as_str(),
            new_secret.as_str(),
            provider_secret,
            gw.admin_key.as_str(),
        ] {
            assert!(
                !text.contains(secret),
                "{backend:?}: a secret reached the audit log"
            );
        }
        let events = listed["data"].as_array().unwrap();
        let find = |action: &str| {
            events
                .iter()
                .rev()
                .find(|e| e["action"] == action)
                .unwrap_or_else(|| panic!("{backend:?}: no {action} in {text}"))
        };
        let created = find("key.create");
        assert_eq!(created["actor"], admin_id.as_str());
        assert_eq!(created["target"], id.as_str());
        assert_eq!(created["status"], 201);
        assert_eq!(created["source_ip"], "127.0.0.1");
        assert_eq!(created["fields"], json!(["models", "name"]));
        assert!(created["time"].is_string());
        assert_eq!(find("key.rotate")["fields"], json!(["grace"]));
        assert_eq!(find("key.revoke")["target"], id.as_str());
        let cred = find("provider_credential.create");
        assert_eq!(cred["target"], "audited-cred");
        assert_eq!(cred["fields"], json!(["name", "secret"]), "names only");
        let refused: Vec<&Value> = events
            .iter()
            .filter(|e| e["action"] == "admin.sign_in_failed")
            .collect();
        assert_eq!(refused.len(), 2);
        assert!(refused
            .iter()
            .any(|e| e["actor"] == other_id.as_str() && e["status"] == 403));
        assert!(refused
            .iter()
            .any(|e| e["actor"] == "unknown" && e["status"] == 401));
        // Newest first, and filters narrow it.
        assert!(events[0]["time"].as_str() >= events[events.len() - 1]["time"].as_str());
        let only: Value = gw
            .admin(
                Method::GET,
                &format!("/audit?target={id}&action=key.revoke"),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(only["data"].as_array().unwrap().len(), 1);
        for bad in ["/audit?limit=0", "/audit?since=yesterday", "/audit?bogus=1"] {
            let response = gw.admin(Method::GET, bad).send().await.unwrap();
            assert_eq!(response.status(), 400, "{bad}");
        }
        // Reads are not audited.
        let reads = gw
            .store()
            .audit_events(
                &AuditFilter {
                    action: Some("GET /audit".into()),
                    ..Default::default()
                },
                10,
            )
            .await
            .unwrap();
        assert!(reads.is_empty());
        gw.finish().await;
    }
}

#[tokio::test]
async fn the_audit_log_is_append_only_in_the_database() {
    let gw = TestGateway::start(crate::support::Backend::Sqlite, MockOptions::default()).await;
    gw.create_key(json!({"name": "a"})).await;
    let path = gw.dir.path().join("keygate.db");
    let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        path.display()
    ))
    .await
    .unwrap();
    for statement in [
        "UPDATE audit_events SET actor = 'someone else'",
        "DELETE FROM audit_events",
    ] {
        let error = sqlx::query(statement).execute(&mut db).await.unwrap_err();
        assert!(error.to_string().contains("append-only"), "{error}");
    }
    gw.finish().await;
}
