//! Anomaly detection: each detector driven through the real router on
//! tokio's paused clock, with auto-advance held off (time moves only when a
//! test advances it, while the store and the sockets do real I/O). Every
//! wait is on an event (the detectors having handled what they were fed),
//! never a sleep. Clients are told apart by `X-Forwarded-For` from a
//! trusted loopback proxy.

use crate::support::{chat_body, Backend, TestGateway};
use chrono::TimeZone;
use keygate::ledger::UsageEvent;
use keygate::mock::MockOptions;
use keygate::store::{AlertRecord, AuditFilter};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);
const HOUR_MS: i64 = 3_600_000;

/// Hold off the paused clock's auto-advance for the rest of the test (see
/// `alerts::freeze_clock`).
struct FrozenClock(#[allow(dead_code)] std::sync::mpsc::Sender<()>);

fn freeze_clock() -> FrozenClock {
    let (hold, released) = std::sync::mpsc::channel::<()>();
    tokio::task::spawn_blocking(move || {
        let _ = released.recv();
    });
    FrozenClock(hold)
}

/// A gateway that believes `X-Forwarded-For` from loopback, with extra
/// settings.
async fn gateway(settings: &[(&str, &str)]) -> TestGateway {
    let mut env: BTreeMap<String, String> = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.insert("KEYGATE_TRUSTED_PROXIES".into(), "127.0.0.1/32".into());
    TestGateway::start_with(Backend::Sqlite, MockOptions::default(), move |_| {
        (String::new(), env)
    })
    .await
}

/// A chat request with `key`, from client address `from`.
async fn chat_from(gw: &TestGateway, key: &str, from: &str) -> reqwest::Response {
    gw.http
        .post(format!("{}/v1/chat/completions", gw.base))
        .bearer_auth(key)
        .header("x-forwarded-for", from)
        .json(&chat_body(false))
        .send()
        .await
        .unwrap()
}

async fn status_from(gw: &TestGateway, key: &str, from: &str) -> u16 {
    chat_from(gw, key, from).await.status().as_u16()
}

/// Every alert raised so far, oldest first, once the detectors have
/// handled everything they were fed.
async fn alerts(gw: &TestGateway) -> Vec<AlertRecord> {
    gw.state.anomaly.settled().await;
    let mut all = gw.store().recent_alerts(1000).await.unwrap();
    all.reverse();
    all
}

fn kinds(alerts: &[AlertRecord]) -> Vec<&str> {
    alerts.iter().map(|a| a.kind.as_str()).collect()
}

/// Ledger history of `key_id` written straight to the store, as a previous
/// run of the gateway would have left it.
async fn history(gw: &TestGateway, key_id: &str, rows: &[(i64, &str)]) {
    let events: Vec<UsageEvent> = rows
        .iter()
        .enumerate()
        .map(|(i, (ts, ip))| UsageEvent {
            request_id: format!("req_seed_{key_id}_{i}"),
            ts: *ts,
            key_id: Some(key_id.to_string()),
            route: "/v1/chat/completions".into(),
            model: Some("gpt-4o-mini".into()),
            provider: Some("openai".into()),
            prompt_tokens: 10,
            completion_tokens: 10,
            cached_tokens: 0,
            cost_nanos: 100,
            owner: None,
            project_id: None,
            org_id: None,
            token_id: None,
            status: 200,
            error_code: None,
            latency_ms: 5,
            streamed: false,
            source_ip: Some(ip.to_string()),
            user_agent: None,
        })
        .collect();
    gw.store().append_usage(&events).await.unwrap();
}

/// Two days of use from the usual networks, one request every 6 hours.
fn usual_use(now: i64) -> Vec<(i64, &'static str)> {
    (1..=8)
        .map(|i| {
            let ip = if i % 2 == 0 {
                "203.0.113.5"
            } else {
                "2001:db8:1::5"
            };
            (now - i * 6 * HOUR_MS, ip)
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_stuffing_source_is_locked_out_while_other_sources_pass_and_the_lockout_expires() {
    let _frozen = freeze_clock();
    let gw = gateway(&[
        ("KEYGATE_ANOMALY_STUFFING_FAILURES", "5"),
        ("KEYGATE_ANOMALY_STUFFING_WINDOW", "1m"),
        ("KEYGATE_ANOMALY_LOCKOUT", "10m"),
    ])
    .await;
    let (_, key) = gw.create_key(json!({"name": "app"})).await;
    let attacker = "192.0.2.66";
    let guesses = [
        "kg_live_notarealkey",
        "sk-proj-guess",
        "kg_live_0000",
        "x",
        "y",
    ];
    for guess in guesses {
        assert_eq!(status_from(&gw, guess, attacker).await, 401);
    }
    // Locked out: refused before the credential is looked at, even a valid
    // one, with a clear code and Retry-After.
    let refused = chat_from(&gw, &key, attacker).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "600");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "source_locked_out");
    // The admin API refuses it too.
    let admin = gw
        .admin(reqwest::Method::GET, "/keys")
        .header("x-forwarded-for", attacker)
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 429);
    // Another source with a valid key is unaffected.
    assert_eq!(status_from(&gw, &key, "192.0.2.7").await, 200);

    let raised = alerts(&gw).await;
    assert_eq!(kinds(&raised), ["auth.stuffing"], "{raised:#?}");
    assert_eq!(raised[0].subject.as_deref(), Some(attacker));
    assert_eq!(raised[0].details["failures"], 5);
    assert_eq!(raised[0].details["lockout_seconds"], 600);

    tokio::time::advance(Duration::from_secs(599)).await;
    let still = chat_from(&gw, &key, attacker).await;
    assert_eq!(still.status(), 429);
    assert_eq!(still.headers()["retry-after"], "1");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(status_from(&gw, &key, attacker).await, 200);
    // One lockout, one alert.
    assert_eq!(kinds(&alerts(&gw).await), ["auth.stuffing"]);
    gw.finish().await;
}

#[tokio::test(start_paused = true)]
async fn refusals_spread_beyond_the_window_do_not_lock_out_and_loopback_is_exempt() {
    let _frozen = freeze_clock();
    let gw = gateway(&[
        ("KEYGATE_ANOMALY_STUFFING_FAILURES", "5"),
        ("KEYGATE_ANOMALY_STUFFING_WINDOW", "1m"),
    ])
    .await;
    let (_, key) = gw.create_key(json!({"name": "app"})).await;
    for _ in 0..4 {
        assert_eq!(status_from(&gw, "kg_live_wrong", "192.0.2.66").await, 401);
    }
    tokio::time::advance(Duration::from_secs(61)).await;
    for _ in 0..4 {
        assert_eq!(status_from(&gw, "kg_live_wrong", "192.0.2.66").await, 401);
    }
    assert_eq!(status_from(&gw, &key, "192.0.2.66").await, 200);
    // The proxy itself (loopback) is never locked out.
    for _ in 0..10 {
        assert_eq!(
            gw.chat("kg_live_wrong", chat_body(false)).await.status(),
            401
        );
    }
    assert_eq!(gw.chat(&key, chat_body(false)).await.status(), 200);
    assert!(alerts(&gw).await.is_empty());
    gw.finish().await;
}

#[tokio::test(start_paused = true)]
async fn refused_admin_sign_ins_count_towards_the_lockout() {
    let _frozen = freeze_clock();
    let gw = gateway(&[("KEYGATE_ANOMALY_STUFFING_FAILURES", "3")]).await;
    let (_, key) = gw.create_key(json!({"name": "app"})).await;
    for _ in 0..3 {
        let response = gw
            .http
            .get(format!("{}/admin/v1/keys", gw.base))
            .bearer_auth("kg_admin_guess")
            .header("x-forwarded-for", "198.51.100.9")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    assert_eq!(status_from(&gw, &key, "198.51.100.9").await, 429);
    assert_eq!(kinds(&alerts(&gw).await), ["auth.stuffing"]);
    gw.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_new_network_alerts_once_and_known_ones_never() {
    let _frozen = freeze_clock();
    let gw = gateway(&[]).await;
    let (key_id, key) = gw.create_key(json!({"name": "app"})).await;
    // What an earlier run of the gateway saw: the detectors read it back.
    history(&gw, &key_id, &usual_use(gw.state.anomaly.now_ms())).await;

    for known in ["203.0.113.77", "2001:db8:1:ff::2", "203.0.113.5"] {
        assert_eq!(status_from(&gw, &key, known).await, 200);
    }
    assert!(alerts(&gw).await.is_empty());
    for from in [
        "198.51.100.5",
        "198.51.100.9",
        "2001:db8:2::1",
        "198.51.100.200",
        "2001:db8:2:7::1",
        "203.0.113.5",
    ] {
        assert_eq!(status_from(&gw, &key, from).await, 200);
    }
    let raised = alerts(&gw).await;
    assert_eq!(
        kinds(&raised),
        ["anomaly.new_network", "anomaly.new_network"],
        "{raised:#?}"
    );
    assert_eq!(raised[0].subject.as_deref(), Some(key_id.as_str()));
    assert_eq!(raised[0].details["network"], "198.51.100.0/24");
    assert_eq!(raised[0].details["source_ip"], "198.51.100.5");
    assert_eq!(raised[0].details["action"], "alerted");
    assert_eq!(raised[1].details["network"], "2001:db8:2::/48");
    assert!(raised[0].message.contains("198.51.100.5"));
    gw.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_new_key_learns_its_networks_without_alerting() {
    let _frozen = freeze_clock();
    let gw = gateway(&[]).await;
    let (_, key) = gw.create_key(json!({"name": "app"})).await;
    for from in ["203.0.113.5", "198.51.100.5", "2001:db8:9::1"] {
        assert_eq!(status_from(&gw, &key, from).await, 200);
    }
    tokio::time::advance(HOUR).await;
    assert_eq!(status_from(&gw, &key, "192.0.2.1").await, 200);
    assert!(alerts(&gw).await.is_empty());
    gw.finish().await;
}

#[tokio::test(start_paused = true)]
async fn use_at_an_hour_never_active_alerts_once_in_the_budget_time_zone() {
    let _frozen = freeze_clock();
    let zone = chrono_tz::Asia::Kolkata;
    let gw = gateway(&[
        ("KEYGATE_BUDGET_TIMEZONE", "Asia/Kolkata"),
        ("KEYGATE_ANOMALY_ODD_HOUR_MIN_DAYS", "3"),
    ])
    .await;
    let (key_id, key) = gw.create_key(json!({"name": "app"})).await;
    let local_hour = |ms: i64| chrono::Timelike::hour(&zone.timestamp_millis_opt(ms).unwrap());
    let now = gw.state.anomaly.now_ms();
    let odd = (local_hour(now) + 2) % 24;
    // Four days of use at every hour of the day but one.
    let rows: Vec<(i64, &str)> = (1..=4 * 24)
        .map(|h| (now - h * HOUR_MS, "203.0.113.5"))
        .filter(|(ts, _)| local_hour(*ts) != odd)
        .collect();
    history(&gw, &key_id, &rows).await;

    assert_eq!(status_from(&gw, &key, "203.0.113.5").await, 200);
    assert!(alerts(&gw).await.is_empty());
    tokio::time::advance(2 * HOUR).await;
    assert_eq!(local_hour(gw.state.anomaly.now_ms()), odd);
    for _ in 0..3 {
        assert_eq!(status_from(&gw, &key, "203.0.113.5").await, 200);
    }
    let raised = alerts(&gw).await;
    assert_eq!(kinds(&raised), ["anomaly.odd_hour"], "{raised:#?}");
    assert_eq!(raised[0].details["hour"], odd);
    assert_eq!(raised[0].details["timezone"], "Asia/Kolkata");
    assert_eq!(raised[0].details["active_hours"], 23);
    // The next hour is a usual one; the same hour a day later is known now.
    tokio::time::advance(HOUR).await;
    assert_eq!(status_from(&gw, &key, "203.0.113.5").await, 200);
    tokio::time::advance(23 * HOUR).await;
    assert_eq!(local_hour(gw.state.anomaly.now_ms()), odd);
    assert_eq!(status_from(&gw, &key, "203.0.113.5").await, 200);
    assert_eq!(kinds(&alerts(&gw).await), ["anomaly.odd_hour"]);
    gw.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_spike_against_the_hourly_baseline_alerts_once() {
    let _frozen = freeze_clock();
    let gw = gateway(&[
        ("KEYGATE_ANOMALY_SPIKE_BASELINE", "3h"),
        ("KEYGATE_ANOMALY_SPIKE_FACTOR", "3"),
        ("KEYGATE_ANOMALY_SPIKE_MIN_REQUESTS", "5"),
    ])
    .await;
    let (key_id, key) = gw.create_key(json!({"name": "app"})).await;
    // Three quiet hours: 2 requests each, the baseline.
    for hour in 0..3 {
        if hour > 0 {
            tokio::time::advance(HOUR).await;
        }
        for _ in 0..2 {
            assert_eq!(status_from(&gw, &key, "203.0.113.5").await, 200);
        }
    }
    assert!(alerts(&gw).await.is_empty());
    // Then 10 in an hour: above 3 × 2 from the 7th on; one alert.
    tokio::time::advance(HOUR).await;
    for _ in 0..10 {
        assert_eq!(status_from(&gw, &key, "203.0.113.5").await, 200);
    }
    let raised = alerts(&gw).await;
    assert_eq!(kinds(&raised), ["anomaly.spike"], "{raised:#?}");
    assert_eq!(raised[0].subject.as_deref(), Some(key_id.as_str()));
    assert_eq!(raised[0].details["requests"], 7);
    assert_eq!(raised[0].details["baseline_requests_per_hour"], 2.0);
    assert_eq!(raised[0].details["request_spike"], true);
    // The same again the next hour is within the risen baseline.
    tokio::time::advance(HOUR).await;
    for _ in 0..10 {
        assert_eq!(status_from(&gw, &key, "203.0.113.5").await, 200);
    }
    assert_eq!(kinds(&alerts(&gw).await), ["anomaly.spike"]);
    gw.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_suspend_policy_suspends_the_key_on_an_anomaly() {
    let _frozen = freeze_clock();
    let gw = gateway(&[]).await;
    let (key_id, key) = gw
        .create_key(json!({"name": "strict", "on_anomaly": "suspend"}))
        .await;
    history(&gw, &key_id, &usual_use(gw.state.anomaly.now_ms())).await;

    // Detection is off the request path: the request itself is served.
    assert_eq!(status_from(&gw, &key, "198.51.100.5").await, 200);
    let raised = alerts(&gw).await;
    assert_eq!(kinds(&raised), ["anomaly.new_network"], "{raised:#?}");
    assert_eq!(raised[0].details["action"], "suspended");
    assert!(
        raised[0].message.contains("suspended automatically"),
        "{}",
        raised[0].message
    );
    // Its next request, even from a usual network, is refused.
    let refused = chat_from(&gw, &key, "203.0.113.5").await;
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "suspended_api_key");
    assert!(gw
        .store()
        .get_key(&key_id)
        .await
        .unwrap()
        .unwrap()
        .suspended_at
        .is_some());
    let audit = gw
        .store()
        .audit_events(
            &AuditFilter {
                actor: Some("anomaly".into()),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].action, "key.suspend");
    assert_eq!(audit[0].target.as_deref(), Some(key_id.as_str()));
    assert_eq!(audit[0].fields, ["anomaly.new_network"]);
    gw.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_project_policy_applies_to_keys_without_their_own() {
    let _frozen = freeze_clock();
    let gw = gateway(&[]).await;
    let response = gw
        .admin(reqwest::Method::PATCH, "/projects/proj_default")
        .json(&json!({"on_anomaly": "suspend"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let project: Value = response.json().await.unwrap();
    assert_eq!(project["on_anomaly"], "suspend");
    let (inherits_id, inherits) = gw.create_key(json!({"name": "inherits"})).await;
    let (own_id, own) = gw
        .create_key(json!({"name": "own", "on_anomaly": "alert"}))
        .await;
    let now = gw.state.anomaly.now_ms();
    history(&gw, &inherits_id, &usual_use(now)).await;
    history(&gw, &own_id, &usual_use(now)).await;

    assert_eq!(status_from(&gw, &inherits, "198.51.100.5").await, 200);
    assert_eq!(status_from(&gw, &own, "198.51.100.5").await, 200);
    let raised = alerts(&gw).await;
    assert_eq!(
        kinds(&raised),
        ["anomaly.new_network", "anomaly.new_network"]
    );
    let action_of = |id: &str| {
        raised
            .iter()
            .find(|a| a.subject.as_deref() == Some(id))
            .map(|a| a.details["action"].clone())
    };
    assert_eq!(action_of(&inherits_id), Some(json!("suspended")));
    assert_eq!(action_of(&own_id), Some(json!("alerted")));
    assert_eq!(status_from(&gw, &inherits, "203.0.113.5").await, 401);
    assert_eq!(status_from(&gw, &own, "203.0.113.5").await, 200);

    // The key's own policy shows in the admin API, and can be cleared.
    let updated: Value = gw
        .admin(reqwest::Method::PATCH, &format!("/keys/{own_id}"))
        .json(&json!({"on_anomaly": null}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(updated["on_anomaly"], Value::Null);
    let updated: Value = gw
        .admin(reqwest::Method::PATCH, &format!("/keys/{own_id}"))
        .json(&json!({"on_anomaly": "suspend"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(updated["on_anomaly"], "suspend");
    let refused = gw
        .admin(reqwest::Method::PATCH, &format!("/keys/{own_id}"))
        .json(&json!({"on_anomaly": "sometimes"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    gw.finish().await;
}

#[tokio::test]
async fn detection_can_be_turned_off() {
    let gw = gateway(&[
        ("KEYGATE_ANOMALY_ENABLED", "false"),
        ("KEYGATE_ANOMALY_STUFFING_FAILURES", "1"),
    ])
    .await;
    let (_, key) = gw.create_key(json!({"name": "app"})).await;
    for _ in 0..3 {
        assert_eq!(status_from(&gw, "kg_live_wrong", "192.0.2.66").await, 401);
    }
    assert_eq!(status_from(&gw, &key, "192.0.2.66").await, 200);
    assert!(gw.state.anomaly.feed().is_none());
    assert!(alerts(&gw).await.is_empty());
    gw.finish().await;
}

/// Run the real `keygate` binary against `gw`; its JSON answer.
fn keygate_json(gw: &TestGateway, args: &[&str]) -> Value {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(args)
        .args(["--format", "json"])
        .current_dir(gw.dir.path())
        .env("KEYGATE_URL", &gw.base)
        .env("KEYGATE_ADMIN_KEY", &gw.admin_key)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{args:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap()
}

// The CLI is waited for synchronously: the gateway needs other threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sets_key_and_project_policies() {
    let gw = gateway(&[]).await;
    let created = keygate_json(
        &gw,
        &["keys", "create", "--name", "ci", "--on-anomaly", "suspend"],
    );
    assert_eq!(created["on_anomaly"], "suspend");
    let id = created["id"].as_str().unwrap().to_string();
    let updated = keygate_json(&gw, &["keys", "update", &id, "--on-anomaly", "project"]);
    assert_eq!(updated["on_anomaly"], Value::Null);
    let updated = keygate_json(&gw, &["keys", "update", &id, "--on-anomaly", "alert"]);
    assert_eq!(updated["on_anomaly"], "alert");
    let project = keygate_json(
        &gw,
        &[
            "projects",
            "update",
            "proj_default",
            "--on-anomaly",
            "suspend",
        ],
    );
    assert_eq!(project["on_anomaly"], "suspend");
    gw.finish().await;
}
