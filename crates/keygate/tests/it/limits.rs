//! Limits as administrators set them: rates, concurrency and budgets on
//! keys, projects, organisations and owners, and prepaid balances. Checked
//! through the admin API (values, roles, scopes, audit), the key cache the
//! request path reads, and the store every node polls.

use crate::support::{drop_database, error_code, fresh_database, Backend, TestGateway, BACKENDS};
use keygate::auth::KeyKind;
use keygate::mock::MockOptions;
use keygate::policy::limits::{
    Budget, Limits, Period, Subject, SubjectLimits, MAX_PREPAID, NANOS_PER_USD,
};
use keygate::store::{
    postgres::PostgresStore, sqlite::SqliteStore, AuditFilter, KeyRecord, Organisation, Project,
    Store,
};
use reqwest::Method;
use serde_json::{json, Value};

/// A request to the admin API as `credential`.
fn call(gw: &TestGateway, credential: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
    gw.http
        .request(method, format!("{}/admin/v1{path}", gw.base))
        .bearer_auth(credential)
}

/// Send `body` (if any) as `credential`; the answer, asserting its status.
async fn send(
    gw: &TestGateway,
    credential: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    status: u16,
) -> Value {
    let mut request = call(gw, credential, method.clone(), path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let got = response.status().as_u16();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(got, status, "{method} {path}: {answer}");
    answer
}

/// As the bootstrap owner.
async fn admin(
    gw: &TestGateway,
    method: Method,
    path: &str,
    body: Option<Value>,
    status: u16,
) -> Value {
    send(gw, &gw.admin_key, method, path, body, status).await
}

/// An admin credential's secret.
async fn credential(gw: &TestGateway, body: Value) -> String {
    admin(gw, Method::POST, "/admin-credentials", Some(body), 201).await["key"]
        .as_str()
        .unwrap()
        .to_string()
}

fn id(answer: &Value) -> String {
    answer["id"].as_str().unwrap().to_string()
}

/// Only the limit fields of an answer.
fn limits_of(view: &Value) -> Value {
    json!({
        "rpm": view["rpm"], "tpm": view["tpm"], "max_concurrent": view["max_concurrent"],
        "budget_usd": view["budget_usd"], "budget_period": view["budget_period"],
        "budget_alerts": view["budget_alerts"],
    })
}

#[tokio::test]
async fn key_limits_are_set_shown_changed_cleared_and_reach_the_cache() {
    for backend in BACKENDS {
        let gw = TestGateway::start(backend, MockOptions::default()).await;
        let created = admin(
            &gw,
            Method::POST,
            "/keys",
            Some(json!({
                "name": "limited", "owner": "ann", "rpm": 60, "tpm": 1000, "max_concurrent": 2,
                "budget_usd": 5, "budget_period": "week", "budget_alerts": [80, 50],
            })),
            201,
        )
        .await;
        let key_id = id(&created);
        let secret = created["key"].as_str().unwrap().to_string();
        assert_eq!(
            limits_of(&created),
            json!({"rpm": 60, "tpm": 1000, "max_concurrent": 2, "budget_usd": 5.0,
                   "budget_period": "week", "budget_alerts": [50, 80]}),
            "thresholds are kept ascending"
        );
        // Stored in nanos, shown in dollars.
        let stored = gw.store().get_key(&key_id).await.unwrap().unwrap();
        assert_eq!(
            stored.limits.budget,
            Some(Budget {
                limit: 5 * NANOS_PER_USD,
                period: Period::Week,
                alert_thresholds: Some(vec![50, 80]),
            })
        );
        // The request path reads them from the key cache, with the key's
        // tenancy and the version its budget counters are named with.
        let entry = gw
            .state
            .keys
            .verify(&secret, keygate::time::now_ms())
            .unwrap();
        assert_eq!(entry.limits.as_deref(), Some(&stored.limits));
        assert_eq!(entry.limits_version, stored.updated_at);
        assert_eq!(entry.owner.as_deref(), Some("ann"));
        assert_eq!(entry.project_id.as_deref(), Some("proj_default"));
        assert_eq!(entry.org_id.as_deref(), Some("org_default"));

        let shown = admin(&gw, Method::GET, &format!("/keys/{key_id}"), None, 200).await;
        assert_eq!(limits_of(&shown), limits_of(&created));
        let listed = admin(&gw, Method::GET, "/keys", None, 200).await;
        assert_eq!(limits_of(&listed["data"][0]), limits_of(&created));

        // An update changes what it names; a new amount keeps the period.
        let path = format!("/keys/{key_id}");
        let updated = admin(
            &gw,
            Method::PATCH,
            &path,
            Some(json!({"rpm": 120, "budget_usd": 7.5})),
            200,
        )
        .await;
        assert_eq!(
            limits_of(&updated),
            json!({"rpm": 120, "tpm": 1000, "max_concurrent": 2, "budget_usd": 7.5,
                   "budget_period": "week", "budget_alerts": [50, 80]})
        );
        let updated = admin(
            &gw,
            Method::PATCH,
            &path,
            Some(json!({"budget_period": "day", "budget_alerts": null})),
            200,
        )
        .await;
        assert_eq!(
            (&updated["budget_period"], &updated["budget_alerts"]),
            (&json!("day"), &Value::Null)
        );
        // `null` removes a limit.
        let cleared = admin(
            &gw,
            Method::PATCH,
            &path,
            Some(json!({"rpm": null, "max_concurrent": null, "budget_usd": null})),
            200,
        )
        .await;
        assert_eq!(
            limits_of(&cleared),
            json!({"rpm": null, "tpm": 1000, "max_concurrent": null, "budget_usd": null,
                   "budget_period": null, "budget_alerts": null})
        );
        // A budget's period cannot be set where there is no budget.
        let response = call(&gw, &gw.admin_key, Method::PATCH, &path)
            .json(&json!({"budget_period": "month"}))
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(response).await, (409, json!("no_budget")));

        let entry = gw
            .state
            .keys
            .verify(&secret, keygate::time::now_ms())
            .unwrap();
        let now_stored = gw.store().get_key(&key_id).await.unwrap().unwrap();
        assert_eq!(
            entry.limits.as_deref(),
            Some(&Limits {
                tpm: Some(1000),
                ..Limits::default()
            })
        );
        assert_eq!(entry.limits_version, now_stored.updated_at);
        // A key without limits carries none in the cache.
        let (_, plain) = gw.create_key(json!({"name": "plain"})).await;
        let entry = gw
            .state
            .keys
            .verify(&plain, keygate::time::now_ms())
            .unwrap();
        assert!(entry.limits.is_none());
        gw.finish().await;
    }
}

#[tokio::test]
async fn limit_values_out_of_range_are_400s_that_name_the_field() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let project = admin(
        &gw,
        Method::POST,
        "/projects",
        Some(json!({"name": "checked"})),
        201,
    )
    .await;
    let too_many: Vec<u32> = (1..=11).collect();
    for (fields, param) in [
        (json!({"rpm": 0}), Some("rpm")),
        (json!({"rpm": 10_000_001}), Some("rpm")),
        (json!({"rpm": 1.5}), None),
        (json!({"rpm": "60"}), None),
        (json!({"rpm": -1}), None),
        (json!({"tpm": 0}), Some("tpm")),
        (json!({"tpm": 100_000_000_001_u64}), Some("tpm")),
        (json!({"max_concurrent": 0}), Some("max_concurrent")),
        (json!({"max_concurrent": 1_000_001}), Some("max_concurrent")),
        (json!({"budget_usd": -0.01}), Some("budget_usd")),
        (json!({"budget_usd": 1e9 + 1.0}), Some("budget_usd")),
        (
            json!({"budget_usd": 1, "budget_period": "year"}),
            Some("budget_period"),
        ),
        (
            json!({"budget_usd": 1, "budget_alerts": [0]}),
            Some("budget_alerts"),
        ),
        (
            json!({"budget_usd": 1, "budget_alerts": [101]}),
            Some("budget_alerts"),
        ),
        (
            json!({"budget_usd": 1, "budget_alerts": [50, 50]}),
            Some("budget_alerts"),
        ),
        (
            json!({"budget_usd": 1, "budget_alerts": too_many}),
            Some("budget_alerts"),
        ),
        (json!({"budget_usd": 1, "budget_alerts": [300]}), None),
    ] {
        let mut key_body = fields.clone();
        key_body["name"] = json!("k");
        for (method, path, body) in [
            (Method::POST, "/keys".to_string(), key_body),
            (
                Method::PATCH,
                format!("/projects/{}", id(&project)),
                fields.clone(),
            ),
        ] {
            let response = call(&gw, &gw.admin_key, method.clone(), &path)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 400, "{method} {path} {body}");
            let answer: Value = response.json().await.unwrap();
            if let Some(param) = param {
                assert_eq!(answer["error"]["param"], json!(param), "{body}");
            }
            if param == Some("budget_period") {
                let message = answer["error"]["message"].as_str().unwrap();
                assert!(message.contains("day, week, month and total"), "{message}");
            }
        }
    }
    // A period without an amount, on a new key, is an incomplete request.
    let response = call(&gw, &gw.admin_key, Method::POST, "/keys")
        .json(&json!({"name": "k", "budget_period": "day"}))
        .send()
        .await
        .unwrap();
    let (status, _) = error_code(response).await;
    assert_eq!(status, 400);
    // Nothing was stored by any refusal.
    let keys = admin(&gw, Method::GET, "/keys", None, 200).await;
    assert_eq!(keys["data"], json!([]));
    let shown = admin(
        &gw,
        Method::GET,
        &format!("/projects/{}", id(&project)),
        None,
        200,
    )
    .await;
    assert_eq!(shown["rpm"], Value::Null);
    gw.finish().await;
}

#[tokio::test]
async fn only_admins_change_a_keys_limits() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let member = credential(
        &gw,
        json!({"name": "m", "role": "member", "owner": "meg", "org_id": "org_default"}),
    )
    .await;
    let viewer = credential(
        &gw,
        json!({"name": "v", "role": "viewer", "owner": "vic", "org_id": "org_default"}),
    )
    .await;
    let org_admin = credential(
        &gw,
        json!({"name": "a", "role": "admin", "owner": "al", "org_id": "org_default"}),
    )
    .await;
    // A member may limit a key it creates: that only restricts it.
    let own = send(
        &gw,
        &member,
        Method::POST,
        "/keys",
        Some(json!({"name": "meg's", "rpm": 10, "budget_usd": 1})),
        201,
    )
    .await;
    let path = format!("/keys/{}", id(&own));
    // Raising, removing or even lowering it afterwards takes an admin.
    for body in [
        json!({"rpm": 1000}),
        json!({"rpm": null}),
        json!({"rpm": 5}),
        json!({"budget_usd": null}),
        json!({"budget_period": "total"}),
    ] {
        let response = call(&gw, &member, Method::PATCH, &path)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(response).await,
            (403, json!("field_not_allowed")),
            "{body}"
        );
    }
    // Restating the limits as they are, or changing other fields, is fine.
    let renamed = send(
        &gw,
        &member,
        Method::PATCH,
        &path,
        Some(json!({"name": "renamed", "rpm": 10})),
        200,
    )
    .await;
    assert_eq!(
        (&renamed["name"], &renamed["rpm"]),
        (&json!("renamed"), &json!(10))
    );
    let response = call(&gw, &viewer, Method::PATCH, &path)
        .json(&json!({"rpm": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (403, json!("insufficient_role"))
    );
    let raised = send(
        &gw,
        &org_admin,
        Method::PATCH,
        &path,
        Some(json!({"rpm": 1000})),
        200,
    )
    .await;
    assert_eq!(raised["rpm"], json!(1000));
    // The refusals were audited with the fields they tried to set.
    let refused = gw
        .store()
        .audit_events(
            &AuditFilter {
                action: Some("key.update".into()),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap();
    assert!(refused
        .iter()
        .any(|e| e.status == 403 && e.fields == vec!["rpm".to_string()]));
    gw.finish().await;
}

#[tokio::test]
async fn project_limits_are_set_from_above_and_shown() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let org = admin(
        &gw,
        Method::POST,
        "/organisations",
        Some(json!({"name": "acme"})),
        201,
    )
    .await;
    let other_org = admin(
        &gw,
        Method::POST,
        "/organisations",
        Some(json!({"name": "globex"})),
        201,
    )
    .await;
    let project = admin(
        &gw,
        Method::POST,
        "/projects",
        Some(json!({"name": "web", "org_id": id(&org)})),
        201,
    )
    .await;
    assert_eq!(project["rpm"], Value::Null);
    let path = format!("/projects/{}", id(&project));

    let project_admin = credential(
        &gw,
        json!({"name": "pa", "role": "admin", "project_id": id(&project), "owner": "pat"}),
    )
    .await;
    let org_admin = credential(
        &gw,
        json!({"name": "oa", "role": "admin", "org_id": id(&org), "owner": "olga"}),
    )
    .await;
    let org_viewer = credential(
        &gw,
        json!({"name": "ov", "role": "viewer", "org_id": id(&org), "owner": "vic"}),
    )
    .await;
    let stranger = credential(
        &gw,
        json!({"name": "ga", "role": "owner", "org_id": id(&other_org), "owner": "gus"}),
    )
    .await;
    let body = json!({"rpm": 600, "tpm": 50_000, "max_concurrent": 8, "budget_usd": 250,
                      "budget_period": "month", "budget_alerts": [75]});

    // Another organisation's owner does not see the project at all.
    let response = call(&gw, &stranger, Method::PATCH, &path)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, (404, json!("not_found")));
    // A project's own admin does not set the limits it is held to; a
    // viewer sets nothing.
    for who in [&project_admin, &org_viewer] {
        let response = call(&gw, who, Method::PATCH, &path)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(response).await,
            (403, json!("insufficient_role"))
        );
    }
    let set = send(&gw, &org_admin, Method::PATCH, &path, Some(body), 200).await;
    assert_eq!(
        limits_of(&set),
        json!({"rpm": 600, "tpm": 50_000, "max_concurrent": 8, "budget_usd": 250.0,
               "budget_period": "month", "budget_alerts": [75]})
    );
    // Every reader in scope sees them, in the project and in listings.
    for who in [&project_admin, &org_viewer] {
        let shown = send(&gw, who, Method::GET, &path, None, 200).await;
        assert_eq!(limits_of(&shown), limits_of(&set));
        let listed = send(&gw, who, Method::GET, "/projects", None, 200).await;
        let row = listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == project["id"])
            .unwrap()
            .clone();
        assert_eq!(limits_of(&row), limits_of(&set));
    }
    // Restating them changes nothing, not even the time of the last change
    // (which restarts budget counters).
    let again = admin(&gw, Method::PATCH, &path, Some(json!({"rpm": 600})), 200).await;
    assert_eq!(again["updated_at"], set["updated_at"]);
    // `null` removes, `{}` keeps.
    let cleared = admin(
        &gw,
        Method::PATCH,
        &path,
        Some(json!({"tpm": null, "budget_usd": null})),
        200,
    )
    .await;
    assert_eq!(
        (&cleared["tpm"], &cleared["budget_usd"], &cleared["rpm"]),
        (&Value::Null, &Value::Null, &json!(600))
    );
    let stored = gw
        .store()
        .get_project(&id(&project))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.limits,
        Limits {
            rpm: Some(600),
            max_concurrent: Some(8),
            ..Limits::default()
        }
    );
    // Unknown projects, malformed ids and unknown fields.
    for (path, body, status) in [
        ("/projects/proj_nothere", json!({"rpm": 1}), 404),
        ("/projects/not-an-id", json!({"rpm": 1}), 404),
        (path.as_str(), json!({"name": "x"}), 400),
        (path.as_str(), json!([1]), 400),
    ] {
        let response = call(&gw, &gw.admin_key, Method::PATCH, path)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{path} {body}");
    }
    gw.finish().await;
}

#[tokio::test]
async fn organisations_carry_a_budget_and_a_prepaid_balance_topped_up_by_admins() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let org = admin(
        &gw,
        Method::POST,
        "/organisations",
        Some(json!({"name": "acme"})),
        201,
    )
    .await;
    assert_eq!(
        (&org["budget_usd"], &org["prepaid_usd"]),
        (&Value::Null, &Value::Null)
    );
    let org_id = id(&org);
    let other = admin(
        &gw,
        Method::POST,
        "/organisations",
        Some(json!({"name": "globex"})),
        201,
    )
    .await;
    let project = admin(
        &gw,
        Method::POST,
        "/projects",
        Some(json!({"name": "web", "org_id": org_id})),
        201,
    )
    .await;
    let org_admin = credential(
        &gw,
        json!({"name": "oa", "role": "admin", "org_id": org_id, "owner": "olga"}),
    )
    .await;
    let member = credential(
        &gw,
        json!({"name": "om", "role": "member", "org_id": org_id, "owner": "meg"}),
    )
    .await;
    let project_owner = credential(
        &gw,
        json!({"name": "po", "role": "owner", "project_id": id(&project), "owner": "pete"}),
    )
    .await;
    let stranger = credential(
        &gw,
        json!({"name": "ga", "role": "owner", "org_id": id(&other), "owner": "gus"}),
    )
    .await;
    let path = format!("/organisations/{org_id}");
    let balance = format!("{path}/balance");

    let budgeted = send(
        &gw,
        &org_admin,
        Method::PATCH,
        &path,
        Some(json!({"budget_usd": 1000, "budget_alerts": [90]})),
        200,
    )
    .await;
    assert_eq!(
        (
            &budgeted["budget_usd"],
            &budgeted["budget_period"],
            &budgeted["budget_alerts"]
        ),
        (&json!(1000.0), &json!("month"), &json!([90]))
    );
    // An organisation has only a budget: rates are set on projects and keys.
    let response = call(&gw, &org_admin, Method::PATCH, &path)
        .json(&json!({"rpm": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    // Top-ups add up, each recorded with who made it.
    let first = send(
        &gw,
        &org_admin,
        Method::POST,
        &balance,
        Some(json!({"amount_usd": 100})),
        200,
    )
    .await;
    assert_eq!(first["prepaid_usd"], json!(100.0));
    let second = admin(
        &gw,
        Method::POST,
        &balance,
        Some(json!({"amount_usd": 25.5})),
        200,
    )
    .await;
    assert_eq!(second["prepaid_usd"], json!(125.5));
    let topups = gw.store().balance_topups(&org_id, 10).await.unwrap();
    assert_eq!(topups.len(), 2);
    assert_eq!(
        topups.iter().map(|t| t.amount).sum::<i64>(),
        125 * NANOS_PER_USD + NANOS_PER_USD / 2
    );
    assert!(topups.iter().all(|t| t.actor.starts_with("key_")));
    assert_ne!(topups[0].actor, topups[1].actor, "two admins topped up");

    // Amounts are positive, bounded, numbers.
    for body in [
        json!({"amount_usd": 0}),
        json!({"amount_usd": -5}),
        json!({"amount_usd": 1e-10}),
        json!({"amount_usd": 2e9}),
        json!({"amount_usd": "10"}),
        json!({}),
        json!({"amount_usd": 1, "note": "x"}),
    ] {
        let response = call(&gw, &gw.admin_key, Method::POST, &balance)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
    }
    // A balance is bounded in total too.
    let response = call(&gw, &gw.admin_key, Method::POST, &balance)
        .json(&json!({"amount_usd": 1e9}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, (409, json!("balance_limit")));

    // Who may top up: admins and owners of the organisation or instance.
    let response = call(&gw, &stranger, Method::POST, &balance)
        .json(&json!({"amount_usd": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, (404, json!("not_found")));
    for who in [&member, &project_owner] {
        for (method, path, body) in [
            (Method::POST, &balance, json!({"amount_usd": 1})),
            (Method::PATCH, &path, json!({"budget_usd": 1})),
        ] {
            let response = call(&gw, who, method.clone(), path)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(
                error_code(response).await,
                (403, json!("insufficient_role")),
                "{method} {path}"
            );
        }
    }
    // Readers in scope see the budget and the balance.
    let shown = send(&gw, &project_owner, Method::GET, &path, None, 200).await;
    assert_eq!(
        (&shown["budget_usd"], &shown["prepaid_usd"]),
        (&json!(1000.0), &json!(125.5))
    );
    // Removing the budget keeps the balance.
    let cleared = admin(
        &gw,
        Method::PATCH,
        &path,
        Some(json!({"budget_usd": null})),
        200,
    )
    .await;
    assert_eq!(
        (&cleared["budget_usd"], &cleared["prepaid_usd"]),
        (&Value::Null, &json!(125.5))
    );
    let listed = admin(&gw, Method::GET, "/organisations", None, 200).await;
    let row = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == json!(org_id))
        .unwrap()
        .clone();
    assert_eq!(row["prepaid_usd"], json!(125.5));

    // Every change is in the audit log, with its target and field names.
    let events = gw
        .store()
        .audit_events(&AuditFilter::default(), 100)
        .await
        .unwrap();
    let done = |action: &str| {
        events
            .iter()
            .filter(|e| e.action == action && e.status == 200)
            .map(|e| (e.target.clone(), e.fields.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        done("organisation.top_up"),
        vec![
            (Some(org_id.clone()), vec!["amount_usd".to_string()]),
            (Some(org_id.clone()), vec!["amount_usd".to_string()]),
        ]
    );
    assert_eq!(done("organisation.update").len(), 2);
    gw.finish().await;
}

#[tokio::test]
async fn owner_budgets_are_set_listed_and_removed() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let org = admin(
        &gw,
        Method::POST,
        "/organisations",
        Some(json!({"name": "acme"})),
        201,
    )
    .await;
    let org_id = id(&org);
    let viewer = credential(
        &gw,
        json!({"name": "v", "role": "viewer", "org_id": org_id, "owner": "vic"}),
    )
    .await;
    let member = credential(
        &gw,
        json!({"name": "m", "role": "member", "org_id": org_id, "owner": "meg"}),
    )
    .await;
    let cursor = keygate::time::now_ms() - 1;
    let alice = format!("/organisations/{org_id}/owners/alice@example.com/budget");
    // A service name may hold anything printable: percent-encoded here.
    let service = format!("/organisations/{org_id}/owners/batch%2Fnightly%20jobs/budget");

    let set = admin(
        &gw,
        Method::PUT,
        &alice,
        Some(json!({"budget_usd": 50})),
        200,
    )
    .await;
    assert_eq!(
        (
            &set["owner"],
            &set["budget_usd"],
            &set["budget_period"],
            &set["budget_alerts"]
        ),
        (
            &json!("alice@example.com"),
            &json!(50.0),
            &json!("month"),
            &Value::Null
        )
    );
    admin(
        &gw,
        Method::PUT,
        &service,
        Some(json!({"budget_usd": 10, "budget_period": "day", "budget_alerts": [100, 50]})),
        200,
    )
    .await;
    // Setting again replaces the whole budget.
    admin(
        &gw,
        Method::PUT,
        &alice,
        Some(json!({"budget_usd": 75, "budget_period": "week"})),
        200,
    )
    .await;
    let listed = send(
        &gw,
        &viewer,
        Method::GET,
        &format!("/organisations/{org_id}/owner-budgets"),
        None,
        200,
    )
    .await;
    let rows: Vec<(Value, Value, Value, Value)> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["owner"].clone(),
                b["budget_usd"].clone(),
                b["budget_period"].clone(),
                b["budget_alerts"].clone(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                json!("alice@example.com"),
                json!(75.0),
                json!("week"),
                Value::Null
            ),
            (
                json!("batch/nightly jobs"),
                json!(10.0),
                json!("day"),
                json!([50, 100])
            ),
        ]
    );

    // Members and viewers set nothing; unknown organisations do not exist;
    // an owner name with a control character is refused.
    for who in [&viewer, &member] {
        let response = call(&gw, who, Method::PUT, &alice)
            .json(&json!({"budget_usd": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(response).await,
            (403, json!("insufficient_role"))
        );
    }
    for (method, path, status) in [
        (
            Method::PUT,
            "/organisations/org_nothere/owners/alice/budget".to_string(),
            404,
        ),
        (
            Method::GET,
            "/organisations/org_nothere/owner-budgets".to_string(),
            404,
        ),
        (
            Method::PUT,
            format!("/organisations/{org_id}/owners/al%01ce/budget"),
            400,
        ),
    ] {
        let response = call(&gw, &gw.admin_key, method.clone(), &path)
            .json(&json!({"budget_usd": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
    }
    for body in [
        json!({}),
        json!({"budget_usd": -1}),
        json!({"budget_usd": 1, "budget_period": "fortnight"}),
        json!({"budget_usd": 1, "rpm": 5}),
    ] {
        let response = call(&gw, &gw.admin_key, Method::PUT, &alice)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
    }

    // Removing is idempotent; the removal reaches the nodes that poll.
    let removed = admin(&gw, Method::DELETE, &alice, None, 200).await;
    assert_eq!(removed["deleted"], json!(true));
    let again = admin(&gw, Method::DELETE, &alice, None, 200).await;
    assert_eq!(again["deleted"], json!(false));
    let listed = admin(
        &gw,
        Method::GET,
        &format!("/organisations/{org_id}/owner-budgets"),
        None,
        200,
    )
    .await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    let changed = gw
        .store()
        .subject_limits_changed_since(cursor)
        .await
        .unwrap();
    let alice_now = changed
        .iter()
        .find(|c| {
            c.subject
                == Subject::Owner {
                    org_id: org_id.clone(),
                    owner: "alice@example.com".into(),
                }
        })
        .unwrap();
    assert_eq!(alice_now.limits.budget, None, "removed");

    let events = gw
        .store()
        .audit_events(&AuditFilter::default(), 100)
        .await
        .unwrap();
    let target = format!("owner:{org_id}:alice@example.com");
    assert!(events
        .iter()
        .any(|e| e.action == "owner_budget.set" && e.target.as_deref() == Some(&target)));
    assert!(events.iter().any(|e| e.action == "owner_budget.remove"
        && e.target.as_deref() == Some(&target)
        && e.status == 200));
    assert!(events.iter().any(|e| e.action == "owner_budget.set"
        && e.target.as_deref() == Some(&format!("owner:{org_id}:batch/nightly jobs"))));
    gw.finish().await;
}

fn org(id: &str, at: i64) -> Organisation {
    Organisation {
        id: id.into(),
        name: format!("name {id}"),
        created_at: at,
        limits: Limits::default(),
        prepaid_nanos: None,
        updated_at: at,
    }
}

fn monthly(usd: i64) -> Budget {
    Budget {
        limit: usd * NANOS_PER_USD,
        period: Period::Month,
        alert_thresholds: None,
    }
}

/// What every node reads to keep its copy of the limits fresh, and keys'
/// limits on their records: the same on both databases.
async fn limits_conformance(store: &dyn Store) {
    // Cursor 0: everything, including what the migration made.
    let all = store.subject_limits_changed_since(0).await.unwrap();
    let subjects: Vec<&Subject> = all.iter().map(|c| &c.subject).collect();
    assert!(subjects.contains(&&Subject::Project("proj_default".into())));
    assert!(subjects.contains(&&Subject::Organisation("org_default".into())));
    assert!(all
        .iter()
        .all(|c| c.limits.is_empty() && c.prepaid.is_none()));

    assert!(store.insert_organisation(&org("org_a", 100)).await.unwrap());
    let project = Project {
        id: "proj_a".into(),
        org_id: "org_a".into(),
        name: "web".into(),
        created_at: 100,
        limits: Limits::default(),
        updated_at: 100,
        on_anomaly: None,
    };
    assert!(store.insert_project(&project).await.unwrap());
    let project_limits = Limits {
        rpm: Some(60),
        tpm: Some(10_000),
        max_concurrent: Some(3),
        budget: Some(Budget {
            alert_thresholds: Some(vec![50, 90]),
            ..monthly(20)
        }),
    };
    let stored = store
        .set_project_limits("proj_a", &project_limits, 200)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.limits.clone(), stored.updated_at),
        (project_limits.clone(), 200)
    );
    assert_eq!(
        store
            .set_project_limits("proj_none", &project_limits, 200)
            .await
            .unwrap(),
        None
    );
    let org_budget = monthly(1000);
    let stored = store
        .set_organisation_limits("org_a", Some(&org_budget), 300)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.limits.budget.as_ref(), Some(&org_budget));
    assert_eq!(
        store
            .set_organisation_limits("org_none", None, 300)
            .await
            .unwrap(),
        None
    );
    assert!(store
        .set_owner_budget("org_a", "ann", Some(&monthly(5)), 400)
        .await
        .unwrap());
    // Top-ups add up atomically, each recorded; the total is bounded.
    assert_eq!(
        store
            .top_up_balance("org_a", 7, "key_x", 500)
            .await
            .unwrap(),
        Some(7)
    );
    assert_eq!(
        store
            .top_up_balance("org_a", 5, "key_y", 600)
            .await
            .unwrap(),
        Some(12)
    );
    assert_eq!(
        store
            .top_up_balance("org_a", MAX_PREPAID - 11, "key_y", 650)
            .await
            .unwrap(),
        None,
        "past the bound: nothing changes"
    );
    assert_eq!(
        store
            .top_up_balance("org_none", 5, "key_y", 650)
            .await
            .unwrap(),
        None
    );
    let topups = store.balance_topups("org_a", 10).await.unwrap();
    assert_eq!(
        topups
            .iter()
            .map(|t| (t.amount, t.actor.as_str(), t.created_at))
            .collect::<Vec<_>>(),
        vec![(5, "key_y", 600), (7, "key_x", 500)],
        "newest first, refused ones absent"
    );
    let org_now = store.get_organisation("org_a").await.unwrap().unwrap();
    assert_eq!((org_now.prepaid_nanos, org_now.updated_at), (Some(12), 600));

    // Changes after a cursor, oldest first; prepaid with the organisation.
    let changed = store.subject_limits_changed_since(150).await.unwrap();
    assert_eq!(
        changed,
        vec![
            SubjectLimits {
                subject: Subject::Project("proj_a".into()),
                limits: project_limits.clone(),
                prepaid: None,
                updated_at: 200,
            },
            SubjectLimits {
                subject: Subject::Owner {
                    org_id: "org_a".into(),
                    owner: "ann".into(),
                },
                limits: Limits {
                    budget: Some(monthly(5)),
                    ..Limits::default()
                },
                prepaid: None,
                updated_at: 400,
            },
            SubjectLimits {
                subject: Subject::Organisation("org_a".into()),
                limits: Limits {
                    budget: Some(org_budget.clone()),
                    ..Limits::default()
                },
                prepaid: Some(12),
                updated_at: 600,
            },
        ]
    );
    assert!(store
        .subject_limits_changed_since(600)
        .await
        .unwrap()
        .is_empty());

    // A removed owner budget is reported as "no budget", once removed; a
    // second removal finds nothing; setting it again revives it.
    assert!(store
        .set_owner_budget("org_a", "ann", None, 700)
        .await
        .unwrap());
    assert!(!store
        .set_owner_budget("org_a", "ann", None, 710)
        .await
        .unwrap());
    assert!(!store
        .set_owner_budget("org_a", "bob", None, 710)
        .await
        .unwrap());
    let changed = store.subject_limits_changed_since(600).await.unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].limits.budget, None);
    assert_eq!(changed[0].updated_at, 700);
    assert!(store.owner_budgets("org_a").await.unwrap().is_empty());
    assert!(store
        .set_owner_budget("org_a", "ann", Some(&monthly(9)), 800)
        .await
        .unwrap());
    let budgets = store.owner_budgets("org_a").await.unwrap();
    assert_eq!(
        budgets
            .iter()
            .map(|b| (b.owner.as_str(), b.budget.limit, b.updated_at))
            .collect::<Vec<_>>(),
        vec![("ann", 9 * NANOS_PER_USD, 800)]
    );
    // Removing a project's or an organisation's budget is a change too.
    store
        .set_organisation_limits("org_a", None, 900)
        .await
        .unwrap()
        .unwrap();
    let changed = store.subject_limits_changed_since(800).await.unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(
        (&changed[0].subject, &changed[0].limits, changed[0].prepaid),
        (
            &Subject::Organisation("org_a".into()),
            &Limits::default(),
            Some(12)
        )
    );

    // Keys carry their limits through every key query.
    let mut key = KeyRecord {
        id: "key_limited".into(),
        kind: KeyKind::Data,
        name: "limited".into(),
        env: "live".into(),
        secret_hash: "0".repeat(64),
        hint: "...abcd".into(),
        models: Vec::new(),
        created_at: 1000,
        expires_at: None,
        revoked_at: None,
        revoke_reason: None,
        updated_at: 1000,
        previous_secret_hash: None,
        previous_expires_at: None,
        suspended_at: None,
        scopes: Vec::new(),
        allow_ips: Vec::new(),
        description: None,
        metadata: serde_json::Map::new(),
        rotated_at: None,
        org_id: Some("org_a".into()),
        project_id: Some("proj_a".into()),
        owner: Some("ann".into()),
        role: None,
        auto_rotate_webhook: None,
        limits: project_limits.clone(),
        on_anomaly: None,
    };
    store.insert_key(&key).await.unwrap();
    assert_eq!(store.get_key("key_limited").await.unwrap().unwrap(), key);
    key.limits = Limits {
        tpm: Some(u64::from(u32::MAX) + 1),
        budget: Some(Budget {
            alert_thresholds: Some(Vec::new()),
            ..monthly(0)
        }),
        ..Limits::default()
    };
    key.updated_at = 1100;
    let updated = store.update_key(&key).await.unwrap().unwrap();
    assert_eq!(
        updated.limits, key.limits,
        "an empty alert list stays empty"
    );
    let changed = store.keys_changed_since(1100).await.unwrap();
    assert_eq!(changed, vec![key.clone()]);
    let revoked = store
        .revoke_key("key_limited", 1200, "x")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.limits, key.limits);
}

#[tokio::test]
async fn limits_are_stored_alike_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("k.db")).await.unwrap();
    limits_conformance(&store).await;
}

#[tokio::test]
async fn limits_are_stored_alike_on_postgres() {
    let (name, url) = fresh_database().await;
    let store = PostgresStore::connect(&url).await.unwrap();
    limits_conformance(&store).await;
    drop(store);
    drop_database(&name).await;
}
