//! Organisations, projects, owners and admin roles: a credential reaches
//! only its own scope (OWASP API1), does only what its role allows (API5),
//! sets only the fields its role may set (API3); one call revokes all an
//! owner or a project holds.

use crate::support::{chat_body, error_code, Backend, TestGateway, BACKENDS};
use keygate::mock::MockOptions;
use reqwest::Method;
use serde_json::{json, Value};

/// A request to the admin API as `credential`.
fn call(gw: &TestGateway, credential: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
    gw.http
        .request(method, format!("{}/admin/v1{path}", gw.base))
        .bearer_auth(credential)
}

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(got, status, "{body}");
    body
}

/// Create something as the bootstrap owner and return the answer.
async fn create(gw: &TestGateway, path: &str, body: Value) -> Value {
    json_of(
        gw.admin(Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap(),
        201,
    )
    .await
}

/// An admin credential: (id, secret).
async fn credential(gw: &TestGateway, as_key: &str, body: Value) -> (String, String) {
    let created = json_of(
        call(gw, as_key, Method::POST, "/admin-credentials")
            .json(&body)
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    (
        created["id"].as_str().unwrap().to_string(),
        created["key"].as_str().unwrap().to_string(),
    )
}

/// Two organisations; the first with two projects.
struct Tenants {
    org_a: String,
    proj_a1: String,
    proj_a2: String,
    proj_b1: String,
}

async fn tenants(gw: &TestGateway) -> Tenants {
    let org_a = create(gw, "/organisations", json!({"name": "acme"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let org_b = create(gw, "/organisations", json!({"name": "globex"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let project = |org: String, name: &'static str| async move {
        create(gw, "/projects", json!({"name": name, "org_id": org})).await["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    Tenants {
        proj_a1: project(org_a.clone(), "web").await,
        proj_a2: project(org_a.clone(), "batch").await,
        proj_b1: project(org_b.clone(), "web").await,
        org_a,
    }
}

#[tokio::test]
async fn a_credential_reaches_only_its_own_project_and_organisation() {
    for backend in BACKENDS {
        let gw = TestGateway::start(backend, MockOptions::default()).await;
        let t = tenants(&gw).await;
        let (_, a1_admin) = credential(
            &gw,
            &gw.admin_key,
            json!({"name": "a1 admin", "role": "admin", "project_id": t.proj_a1, "owner": "ann"}),
        )
        .await;
        let (_, org_a_admin) = credential(
            &gw,
            &gw.admin_key,
            json!({"name": "acme admin", "role": "admin", "org_id": t.org_a}),
        )
        .await;

        // The project admin creates in its project by default.
        let mine = json_of(
            call(&gw, &a1_admin, Method::POST, "/keys")
                .json(&json!({"name": "mine"}))
                .send()
                .await
                .unwrap(),
            201,
        )
        .await;
        assert_eq!(mine["project_id"], json!(t.proj_a1));
        assert_eq!(mine["org_id"], json!(t.org_a));
        assert_eq!(mine["owner"], json!("ann"));
        let (a2_key, a2_secret) = gw
            .create_key(json!({"name": "a2", "project": t.proj_a2}))
            .await;
        let (b1_key, _) = gw
            .create_key(json!({"name": "b1", "project": t.proj_b1}))
            .await;

        // Another project's or organisation's key, by id, does not exist
        // for it — for every verb.
        for id in [&a2_key, &b1_key] {
            for (method, path, body) in [
                (Method::GET, format!("/keys/{id}"), None),
                (
                    Method::PATCH,
                    format!("/keys/{id}"),
                    Some(json!({"name": "x"})),
                ),
                (Method::DELETE, format!("/keys/{id}"), None),
                (Method::POST, format!("/keys/{id}/revoke"), None),
                (Method::POST, format!("/keys/{id}/rotate"), None),
                (Method::POST, format!("/keys/{id}/suspend"), None),
            ] {
                let mut request = call(&gw, &a1_admin, method.clone(), &path);
                if let Some(body) = body {
                    request = request.json(&body);
                }
                let response = request.send().await.unwrap();
                assert_eq!(
                    error_code(response).await,
                    (404, json!("not_found")),
                    "{method} {path}"
                );
            }
        }
        // ... nor may it create keys there.
        let response = call(&gw, &a1_admin, Method::POST, "/keys")
            .json(&json!({"name": "sneaky", "project": t.proj_b1}))
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(response).await, (404, json!("not_found")));
        // The untouched key still works.
        assert_eq!(gw.chat(&a2_secret, chat_body(false)).await.status(), 200);

        // Listings show only what is in scope.
        let ids = |list: Value| -> Vec<String> {
            list["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["id"].as_str().unwrap().to_string())
                .collect()
        };
        let listed = ids(json_of(
            call(&gw, &a1_admin, Method::GET, "/keys")
                .send()
                .await
                .unwrap(),
            200,
        )
        .await);
        assert_eq!(listed, vec![mine["id"].as_str().unwrap().to_string()]);
        let listed = ids(json_of(
            call(&gw, &org_a_admin, Method::GET, "/keys")
                .send()
                .await
                .unwrap(),
            200,
        )
        .await);
        assert!(listed.contains(&a2_key) && !listed.contains(&b1_key));
        // The organisation admin reaches every project of its organisation,
        // not another organisation's.
        let response = call(&gw, &org_a_admin, Method::GET, &format!("/keys/{a2_key}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let response = call(&gw, &org_a_admin, Method::GET, &format!("/keys/{b1_key}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
        let response = call(
            &gw,
            &org_a_admin,
            Method::GET,
            &format!("/projects/{}", t.proj_b1),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), 404);
        let orgs = json_of(
            call(&gw, &org_a_admin, Method::GET, "/organisations")
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        assert_eq!(orgs["data"].as_array().unwrap().len(), 1);

        // Usage is scoped too: the a2 request is not the project admin's.
        gw.ledger_rows(1).await;
        let usage = json_of(
            call(&gw, &a1_admin, Method::GET, "/usage")
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        assert_eq!(usage["data"], json!([]));
        let usage = json_of(
            call(&gw, &org_a_admin, Method::GET, "/usage")
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        assert_eq!(usage["data"][0]["key_id"], json!(a2_key));

        // Instance settings are for instance-wide credentials only.
        for path in ["/audit", "/provider-credentials"] {
            let response = call(&gw, &org_a_admin, Method::GET, path)
                .send()
                .await
                .unwrap();
            assert_eq!(
                error_code(response).await,
                (403, json!("insufficient_role"))
            );
        }
        gw.finish().await;
    }
}

#[tokio::test]
async fn roles_decide_what_a_credential_may_do() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let t = tenants(&gw).await;
    let scope = json!(t.proj_a1);
    let (_, viewer) = credential(
        &gw,
        &gw.admin_key,
        json!({"name": "v", "role": "viewer", "project_id": scope, "owner": "vic"}),
    )
    .await;
    let (_, member) = credential(
        &gw,
        &gw.admin_key,
        json!({"name": "m", "role": "member", "project_id": scope, "owner": "meg"}),
    )
    .await;
    let (_, admin) = credential(
        &gw,
        &gw.admin_key,
        json!({"name": "a", "role": "admin", "project_id": scope, "owner": "al"}),
    )
    .await;
    let (_, owner) = credential(
        &gw,
        &gw.admin_key,
        json!({"name": "o", "role": "owner", "org_id": t.org_a, "owner": "olga"}),
    )
    .await;
    let (other_id, _) = gw
        .create_key(json!({"name": "someone else's", "project": t.proj_a1, "owner": "sam"}))
        .await;

    // A viewer reads but cannot create, change or revoke.
    let response = call(&gw, &viewer, Method::POST, "/keys")
        .json(&json!({"name": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (403, json!("insufficient_role"))
    );
    for (method, path) in [
        (Method::POST, format!("/keys/{other_id}/revoke")),
        (Method::POST, format!("/keys/{other_id}/rotate")),
        (Method::DELETE, format!("/keys/{other_id}")),
    ] {
        let response = call(&gw, &viewer, method, &path).send().await.unwrap();
        assert_eq!(
            error_code(response).await,
            (403, json!("insufficient_role"))
        );
    }
    let response = call(&gw, &viewer, Method::GET, &format!("/keys/{other_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // A member creates keys it owns, may not name another owner (no mass
    // assignment of ownership), and changes only its own keys.
    let own = json_of(
        call(&gw, &member, Method::POST, "/keys")
            .json(&json!({"name": "meg's"}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    assert_eq!(own["owner"], json!("meg"));
    let own_id = own["id"].as_str().unwrap();
    let response = call(&gw, &member, Method::POST, "/keys")
        .json(&json!({"name": "for sam", "owner": "sam"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (403, json!("field_not_allowed"))
    );
    let response = call(&gw, &member, Method::PATCH, &format!("/keys/{own_id}"))
        .json(&json!({"owner": "sam"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (403, json!("field_not_allowed"))
    );
    let response = call(
        &gw,
        &member,
        Method::POST,
        &format!("/keys/{other_id}/revoke"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(
        error_code(response).await,
        (403, json!("insufficient_role"))
    );
    let response = call(
        &gw,
        &member,
        Method::POST,
        &format!("/keys/{own_id}/rotate"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let response = call(&gw, &member, Method::POST, "/keys/revoke")
        .json(&json!({"owner": "sam"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (403, json!("insufficient_role"))
    );

    // An admin manages every key in scope, hands keys over, but cannot
    // mint admin credentials or move a key out of its scope.
    let handed = json_of(
        call(&gw, &admin, Method::PATCH, &format!("/keys/{other_id}"))
            .json(&json!({"owner": "meg"}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(handed["owner"], json!("meg"));
    let response = call(&gw, &admin, Method::POST, "/admin-credentials")
        .json(&json!({"name": "escalate", "role": "owner"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (403, json!("insufficient_role"))
    );
    let response = call(&gw, &admin, Method::PATCH, &format!("/keys/{other_id}"))
        .json(&json!({"project": t.proj_b1}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, (404, json!("not_found")));
    let response = call(&gw, &admin, Method::POST, "/projects")
        .json(&json!({"name": "new"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (403, json!("insufficient_role"))
    );

    // An organisation owner mints credentials inside its organisation
    // only, and moves keys between its projects.
    let response = call(&gw, &owner, Method::POST, "/admin-credentials")
        .json(&json!({"name": "x", "role": "viewer", "project_id": t.proj_b1}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, (404, json!("not_found")));
    let response = call(&gw, &owner, Method::POST, "/admin-credentials")
        .json(&json!({"name": "x", "role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let moved = json_of(
        call(&gw, &owner, Method::PATCH, &format!("/keys/{other_id}"))
            .json(&json!({"project": t.proj_a2}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(moved["project_id"], json!(t.proj_a2));
    // The project admin has lost sight of it.
    let response = call(&gw, &admin, Method::GET, &format!("/keys/{other_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    // An organisation-scoped owner cannot create organisations.
    let response = call(&gw, &owner, Method::POST, "/organisations")
        .json(&json!({"name": "initech"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (403, json!("insufficient_role"))
    );
    // A key's environment is fixed.
    let response = call(&gw, &owner, Method::PATCH, &format!("/keys/{other_id}"))
        .json(&json!({"env": "test"}))
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
async fn one_call_revokes_everything_an_owner_or_a_project_holds() {
    for backend in BACKENDS {
        let gw = TestGateway::start(backend, MockOptions::default()).await;
        let t = tenants(&gw).await;
        let (alice_cred_id, alice_cred) = credential(
            &gw,
            &gw.admin_key,
            json!({"name": "alice's", "role": "viewer", "owner": "alice"}),
        )
        .await;
        let mut alice = Vec::new();
        for project in [&t.proj_a1, &t.proj_a2, &t.proj_b1] {
            alice.push(
                gw.create_key(json!({"name": "a", "project": project, "owner": "alice"}))
                    .await
                    .1,
            );
        }
        let (_, bob) = gw
            .create_key(json!({"name": "b", "project": t.proj_a1, "owner": "bob"}))
            .await;
        let (_, carol) = gw
            .create_key(json!({"name": "c", "project": t.proj_a2, "owner": "carol"}))
            .await;
        for secret in alice.iter().chain([&bob, &carol]) {
            assert_eq!(gw.chat(secret, chat_body(false)).await.status(), 200);
        }

        // A project admin's bulk revocation stops at its project.
        let (_, a1_admin) = credential(
            &gw,
            &gw.admin_key,
            json!({"name": "a1", "role": "admin", "project_id": t.proj_a1}),
        )
        .await;
        let scoped = json_of(
            call(&gw, &a1_admin, Method::POST, "/keys/revoke")
                .json(&json!({"owner": "alice", "reason": "left the team"}))
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        assert_eq!(scoped["revoked"], json!(1));
        assert_eq!(scoped["data"][0]["revoke_reason"], json!("left the team"));
        assert_eq!(gw.chat(&alice[0], chat_body(false)).await.status(), 401);
        assert_eq!(gw.chat(&alice[1], chat_body(false)).await.status(), 200);

        // The instance owner's reaches the rest, and her admin credential.
        let all = json_of(
            gw.admin(Method::POST, "/keys/revoke")
                .json(&json!({"owner": "alice", "reason": "left the company"}))
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        assert_eq!(all["revoked"], json!(2));
        assert_eq!(all["admin_credentials_revoked"], json!([alice_cred_id]));
        for secret in &alice {
            let response = gw.chat(secret, chat_body(false)).await;
            assert_eq!(error_code(response).await, (401, json!("revoked_api_key")));
        }
        let response = call(&gw, &alice_cred, Method::GET, "/keys")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(gw.chat(&bob, chat_body(false)).await.status(), 200);

        // A whole project at once.
        let project = json_of(
            gw.admin(Method::POST, "/keys/revoke")
                .json(&json!({"project": t.proj_a2}))
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        assert_eq!(project["revoked"], json!(1));
        assert_eq!(gw.chat(&carol, chat_body(false)).await.status(), 401);
        assert_eq!(gw.chat(&bob, chat_body(false)).await.status(), 200);

        // Nothing named is a clear 400; the audit log has each with its
        // selector.
        let response = gw
            .admin(Method::POST, "/keys/revoke")
            .json(&json!({"reason": "oops"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let audit = json_of(
            gw.admin(Method::GET, "/audit?action=key.revoke_bulk")
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        let targets: Vec<&str> = audit["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["status"] == json!(200))
            .map(|e| e["target"].as_str().unwrap())
            .collect();
        let project_target = format!("project:{}", t.proj_a2);
        assert_eq!(
            targets,
            vec![project_target.as_str(), "owner:alice", "owner:alice"]
        );
        gw.finish().await;
    }
}

#[tokio::test]
async fn keys_list_shows_owner_age_last_use_and_its_source() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let (used, secret) = gw
        .create_key(json!({"name": "used", "owner": "dana"}))
        .await;
    let (idle, _) = gw.create_key(json!({"name": "idle"})).await;
    assert_eq!(gw.chat(&secret, chat_body(false)).await.status(), 200);
    gw.ledger_rows(1).await;
    let list = json_of(gw.admin(Method::GET, "/keys").send().await.unwrap(), 200).await;
    let find = |id: &str| {
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == json!(id))
            .unwrap()
            .clone()
    };
    let used = find(&used);
    assert_eq!(used["owner"], json!("dana"));
    assert_eq!(used["env"], json!("live"));
    assert_eq!(used["status"], json!("active"));
    assert_eq!(used["secret_age_days"], json!(0));
    assert_eq!(used["last_source_ip"], json!("127.0.0.1"));
    assert!(used["last_used_at"].as_str().is_some());
    let idle = find(&idle);
    assert_eq!(idle["last_used_at"], Value::Null);
    // With no owner named, the creating credential's identity is the owner.
    assert!(idle["owner"]
        .as_str()
        .is_some_and(|o| o.starts_with("key_")));
    // Paging.
    let page = json_of(
        gw.admin(Method::GET, "/keys?limit=1&offset=1")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    let response = gw.admin(Method::GET, "/keys?limit=0").send().await.unwrap();
    assert_eq!(response.status(), 400);
    gw.finish().await;
}

#[tokio::test]
async fn hostile_tenancy_requests_get_4xx_never_500() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let long = "x".repeat(5000);
    let bodies = [
        "{".to_string(),
        "[]".to_string(),
        "null".to_string(),
        r#"{"name": "a", "role": "owner", "is_superuser": true}"#.to_string(),
        format!(r#"{{"name": "{long}", "role": "viewer"}}"#),
        r#"{"name": "a\u0000b", "role": "viewer"}"#.to_string(),
        r#"{"name": "a", "role": "root"}"#.to_string(),
        r#"{"name": "a", "role": "viewer", "org_id": "../../etc"}"#.to_string(),
        r#"{"name": "a", "role": "viewer", "project_id": "proj_nope"}"#.to_string(),
        r#"{"name": "a", "org_id": "org_' OR 1=1 --"}"#.to_string(),
        r#"{"owner": "x", "project": "proj_nope"}"#.to_string(),
        format!(r#"{{"owner": "{long}"}}"#),
    ];
    for path in [
        "/organisations",
        "/projects",
        "/admin-credentials",
        "/keys/revoke",
        "/keys",
    ] {
        for body in &bodies {
            let response = gw
                .admin(Method::POST, path)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            assert!(
                (400..500).contains(&status) || (path == "/keys/revoke" && status == 200),
                "POST {path} {body:.60}: {status}"
            );
        }
    }
    for path in [
        "/organisations/org_%00",
        "/projects/..%2F..",
        "/admin-credentials/key_nope",
        "/projects?org_id=%27",
        "/keys?owner=%00&limit=5",
        "/keys?offset=-1",
        "/keys?limit=abc",
    ] {
        let response = gw.admin(Method::GET, path).send().await.unwrap();
        let status = response.status().as_u16();
        assert!(
            (400..500).contains(&status) || status == 200,
            "GET {path}: {status}"
        );
    }
    gw.finish().await;
}
