//! Alerts: the outbox in both stores, signed webhook delivery to a real
//! HTTP receiver on loopback, and email over SMTP.
//!
//! Tests that check timing run on tokio's paused clock with auto-advance
//! held off ([`freeze_clock`]): time moves only when the test advances it,
//! while the store and the receiver do real I/O. Every wait is on an event
//! (a delivery outcome, a request reaching the receiver), never a sleep.
//!
//! Email channels, against an SMTP server on loopback, are in [`email`].

mod email;

use crate::support::{drop_database, fresh_database, Backend, TestGateway, BACKENDS};
use axum::extract::State;
use axum::response::IntoResponse;
use bytes::Bytes;
use http::HeaderMap;
use keygate::alerts::{
    verify, Alert, Alerts, AlertsOptions, Clock, DeliveryEvent, DeliveryResult, Raised,
    RetryPolicy, VerifyError,
};
use keygate::config::{AlertsConfig, Config, RawConfig};
use keygate::store::{
    postgres::PostgresStore, sqlite::SqliteStore, AlertDeliveryOutcome, AlertRecord,
    NewAlertDelivery, Store,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

const SECRET: &str = "whsec_0123456789abcdef0123456789abcdef";
/// Bounds a wait that should end at once, so a bug fails the test instead
/// of hanging it. Inert on a frozen clock.
const PATIENCE: Duration = Duration::from_secs(30);

/// Hold off the paused clock's auto-advance for the rest of the test: while
/// a blocking task runs, tokio does not jump to the next timer when the
/// runtime waits on I/O (tokio::time::pause, "Preventing auto-advance").
/// Without this, a database round trip on another thread could let time
/// leap and fire timeouts at random.
struct FrozenClock(#[allow(dead_code)] std::sync::mpsc::Sender<()>);

fn freeze_clock() -> FrozenClock {
    let (hold, released) = std::sync::mpsc::channel::<()>();
    tokio::task::spawn_blocking(move || {
        // Returns when the sender (the guard) is dropped.
        let _ = released.recv();
    });
    FrozenClock(hold)
}

/// What the receiver does with a request.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Answer {
    Status(u16),
    /// Never answer (the sender dies waiting).
    Hang,
}

/// One request as the receiver saw it.
#[derive(Debug)]
pub(crate) struct Received {
    at: tokio::time::Instant,
    headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Received {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_else(|| panic!("no {name} header"))
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// Verify the signature as a receiver would, at `now` (Unix seconds).
    fn verify(&self, secret: &str, now: i64) -> Result<(), VerifyError> {
        verify(
            secret.as_bytes(),
            self.header("x-keygate-timestamp"),
            &self.body,
            self.header("x-keygate-signature"),
            now,
            Duration::from_secs(300),
        )
    }
}

#[derive(Clone)]
struct ReceiverState {
    answers: Arc<Mutex<VecDeque<Answer>>>,
    seen: mpsc::UnboundedSender<Received>,
}

/// A webhook receiver on loopback: answers `answers` in order, then 200.
pub(crate) struct Receiver {
    pub(crate) url: String,
    requests: mpsc::UnboundedReceiver<Received>,
}

impl Receiver {
    pub(crate) async fn start(answers: &[Answer]) -> Receiver {
        let (seen, requests) = mpsc::unbounded_channel();
        let state = ReceiverState {
            answers: Arc::new(Mutex::new(answers.iter().copied().collect())),
            seen,
        };
        let app = axum::Router::new()
            .route("/hooks/keygate", axum::routing::post(hook))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url: format!("http://{addr}/hooks/keygate"),
            requests,
        }
    }

    /// The next request (waiting for it).
    pub(crate) async fn next(&mut self) -> Received {
        tokio::time::timeout(PATIENCE, self.requests.recv())
            .await
            .expect("no request reached the receiver")
            .unwrap()
    }

    /// Requests received and not yet taken, without waiting.
    fn pending(&mut self) -> Vec<Received> {
        let mut all = Vec::new();
        while let Ok(request) = self.requests.try_recv() {
            all.push(request);
        }
        all
    }
}

async fn hook(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let answer = state
        .answers
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Answer::Status(200));
    let _ = state.seen.send(Received {
        at: tokio::time::Instant::now(),
        headers,
        body,
    });
    match answer {
        Answer::Status(code) => http::StatusCode::from_u16(code).unwrap().into_response(),
        Answer::Hang => std::future::pending::<axum::response::Response>().await,
    }
}

/// A store for one test, removed afterwards.
struct TestStore {
    store: Arc<dyn Store>,
    url: Option<String>,
    database: Option<String>,
    _dir: tempfile::TempDir,
}

impl TestStore {
    async fn open(backend: Backend) -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => TestStore {
                store: Arc::new(SqliteStore::open(&dir.path().join("k.db")).await.unwrap()),
                url: None,
                database: None,
                _dir: dir,
            },
            Backend::Postgres => {
                let (name, url) = fresh_database().await;
                TestStore {
                    store: Arc::new(PostgresStore::connect(&url).await.unwrap()),
                    url: Some(url),
                    database: Some(name),
                    _dir: dir,
                }
            }
        }
    }

    async fn finish(self) {
        drop(self.store);
        if let Some(name) = self.database {
            drop_database(&name).await;
        }
    }
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `[alerts]` as the gateway's configuration would validate it.
fn alerts_config(toml_text: &str, vars: &BTreeMap<String, String>) -> AlertsConfig {
    let raw: RawConfig = toml::from_str(toml_text).unwrap();
    Config::from_raw(raw, vars).unwrap().alerts
}

/// One signed JSON webhook, from the environment, to `url`.
fn signed_webhook(url: &str) -> AlertsConfig {
    alerts_config(
        "",
        &env(&[
            ("KEYGATE_ALERT_WEBHOOK_URL", url),
            ("KEYGATE_ALERT_WEBHOOK_SECRET", SECRET),
        ]),
    )
}

async fn next_event(events: &mut broadcast::Receiver<DeliveryEvent>) -> DeliveryEvent {
    tokio::time::timeout(PATIENCE, events.recv())
        .await
        .expect("no delivery outcome")
        .unwrap()
}

fn rotation_alert(key: &str) -> Alert {
    Alert::new(
        "key.rotation_due",
        format!("Key {key} is 91 days old; rotate it."),
    )
    .subject(key)
    .owner("alice@example.com")
    .details(json!({"secret_age_days": 91, "policy": "90d"}))
}

async fn delivered_once_signed(backend: Backend) {
    let store = TestStore::open(backend).await;
    let mut receiver = Receiver::start(&[]).await;
    let alerts = Alerts::start(
        Arc::clone(&store.store),
        &signed_webhook(&receiver.url),
        None,
    )
    .await
    .unwrap();
    let mut events = alerts.subscribe();

    let Raised::Stored { id, deliveries } = alerts.raise(rotation_alert("key_abc")).await.unwrap()
    else {
        panic!("not stored")
    };
    assert_eq!(deliveries, 1);

    let event = next_event(&mut events).await;
    assert_eq!(event.result, DeliveryResult::Delivered);
    assert_eq!((event.alert_id.as_str(), event.attempt), (id.as_str(), 1));
    let request = receiver.next().await;
    assert!(receiver.pending().is_empty(), "delivered more than once");

    // Headers and body.
    assert_eq!(request.header("content-type"), "application/json");
    assert_eq!(request.header("x-keygate-delivery"), event.delivery_id);
    assert_eq!(request.header("x-keygate-alert-kind"), "key.rotation_due");
    let body = request.json();
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["delivery_id"], event.delivery_id.as_str());
    assert_eq!(body["kind"], "key.rotation_due");
    assert_eq!(body["subject"], "key_abc");
    assert_eq!(body["owner"], "alice@example.com");
    assert_eq!(body["details"]["secret_age_days"], 91);

    // The signature covers timestamp and body, under this secret only.
    let now = alerts.now_ms() / 1000;
    let timestamp: i64 = request.header("x-keygate-timestamp").parse().unwrap();
    assert!((now - timestamp).abs() <= 5);
    request.verify(SECRET, now).unwrap();
    assert_eq!(
        request.verify("whsec_someone_elses_secret_000000", now),
        Err(VerifyError::Mismatch)
    );
    let mut tampered = request.json();
    tampered["message"] = json!("nothing to see");
    let tampered = Received {
        body: Bytes::from(serde_json::to_vec(&tampered).unwrap()),
        at: request.at,
        headers: request.headers.clone(),
    };
    assert_eq!(tampered.verify(SECRET, now), Err(VerifyError::Mismatch));
    // The secret itself never travels.
    assert!(!format!("{:?}{:?}", request.headers, request.body).contains(SECRET));

    // The outbox says so too.
    let rows = store.store.alert_deliveries(&id).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].attempts, 1);
    assert!(rows[0].delivered_at.is_some());
    assert_eq!(rows[0].claimed_until, None);
    drop(alerts);
    store.finish().await;
}

#[tokio::test]
async fn a_raised_alert_arrives_once_signed_over_timestamp_and_body_sqlite() {
    delivered_once_signed(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_raised_alert_arrives_once_signed_over_timestamp_and_body_postgres() {
    delivered_once_signed(Backend::Postgres).await;
}

#[tokio::test(start_paused = true)]
async fn a_failing_receiver_gets_three_attempts_with_growing_delays() {
    let _frozen = freeze_clock();
    let store = TestStore::open(Backend::Sqlite).await;
    let mut receiver = Receiver::start(&[Answer::Status(500), Answer::Status(503)]).await;
    let alerts = Alerts::start(
        Arc::clone(&store.store),
        &signed_webhook(&receiver.url),
        None,
    )
    .await
    .unwrap();
    let mut events = alerts.subscribe();
    let Raised::Stored { id, .. } = alerts.raise(rotation_alert("key_r")).await.unwrap() else {
        panic!("not stored")
    };

    // Attempt 1 fails; the next is 5 s away, less up to a quarter (jitter).
    let first = next_event(&mut events).await;
    let DeliveryResult::Retrying {
        retry_in: delay_1,
        ref error,
        ..
    } = first.result
    else {
        panic!("{first:?}")
    };
    assert_eq!((first.attempt, error.as_str()), (1, "HTTP 500"));
    assert!(
        delay_1 >= Duration::from_millis(3_750) && delay_1 <= Duration::from_secs(5),
        "{delay_1:?}"
    );

    // Nothing happens a millisecond before it is due.
    tokio::time::advance(delay_1 - Duration::from_millis(1)).await;
    let rows = store.store.alert_deliveries(&id).await.unwrap();
    assert_eq!((rows[0].attempts, rows[0].delivered_at), (1, None));
    assert_eq!(rows[0].last_error.as_deref(), Some("HTTP 500"));
    let mut requests = receiver.pending();
    assert_eq!(requests.len(), 1);
    tokio::time::advance(Duration::from_millis(1)).await;

    // Attempt 2 fails; the delay doubles (7.5-10 s).
    let second = next_event(&mut events).await;
    let DeliveryResult::Retrying {
        retry_in: delay_2, ..
    } = second.result
    else {
        panic!("{second:?}")
    };
    assert_eq!(second.attempt, 2);
    assert!(
        delay_2 >= Duration::from_millis(7_500) && delay_2 <= Duration::from_secs(10),
        "{delay_2:?}"
    );
    assert!(delay_2 > delay_1);
    tokio::time::advance(delay_2).await;

    // Attempt 3 is accepted.
    let third = next_event(&mut events).await;
    assert_eq!(
        (third.attempt, third.result),
        (3, DeliveryResult::Delivered)
    );
    requests.push(receiver.next().await);
    requests.push(receiver.next().await);
    assert!(receiver.pending().is_empty());

    // The receiver saw the attempts exactly that far apart, all one delivery
    // with the same body, each freshly timestamped and signed.
    assert_eq!(requests[1].at - requests[0].at, delay_1);
    assert_eq!(requests[2].at - requests[1].at, delay_2);
    let delivery = requests[0].header("x-keygate-delivery").to_string();
    for request in &requests {
        assert_eq!(request.header("x-keygate-delivery"), delivery);
        assert_eq!(request.body, requests[0].body);
        let sent: i64 = request.header("x-keygate-timestamp").parse().unwrap();
        request.verify(SECRET, sent).unwrap();
    }
    let stamps: Vec<i64> = requests
        .iter()
        .map(|r| r.header("x-keygate-timestamp").parse().unwrap())
        .collect();
    assert!(stamps[0] < stamps[1] && stamps[1] < stamps[2], "{stamps:?}");

    let rows = store.store.alert_deliveries(&id).await.unwrap();
    assert_eq!(rows[0].attempts, 3);
    assert!(rows[0].delivered_at.is_some());
    assert_eq!(rows[0].last_error.as_deref(), Some("HTTP 503"));
    drop(alerts);
    store.finish().await;
}

#[tokio::test(start_paused = true)]
async fn retries_are_given_up_after_the_last_attempt() {
    let _frozen = freeze_clock();
    let store = TestStore::open(Backend::Sqlite).await;
    let mut receiver = Receiver::start(&[Answer::Status(500); 10]).await;
    let options = AlertsOptions {
        retry: RetryPolicy {
            max_attempts: 2,
            ..RetryPolicy::default()
        },
        ..AlertsOptions::default()
    };
    let alerts = Alerts::start_with(
        Arc::clone(&store.store),
        &signed_webhook(&receiver.url),
        None,
        options,
    )
    .await
    .unwrap();
    let mut events = alerts.subscribe();
    let Raised::Stored { id, .. } = alerts.raise(rotation_alert("key_g")).await.unwrap() else {
        panic!("not stored")
    };
    let DeliveryResult::Retrying { retry_in, .. } = next_event(&mut events).await.result else {
        panic!("first attempt did not fail")
    };
    tokio::time::advance(retry_in).await;
    let last = next_event(&mut events).await;
    assert_eq!(
        (last.attempt, last.result),
        (
            2,
            DeliveryResult::GaveUp {
                error: "HTTP 500".into()
            }
        )
    );
    let rows = store.store.alert_deliveries(&id).await.unwrap();
    assert!(rows[0].failed_at.is_some() && rows[0].delivered_at.is_none());
    assert_eq!(
        store
            .store
            .next_alert_delivery_due(&alerts.channels())
            .await
            .unwrap(),
        None,
        "a given-up delivery is never due again"
    );
    assert_eq!(receiver.pending().len(), 2);
    drop(alerts);
    store.finish().await;
}

async fn duplicate_delivered_once(backend: Backend) {
    let store = TestStore::open(backend).await;
    let mut receiver = Receiver::start(&[]).await;
    let alerts = Alerts::start(
        Arc::clone(&store.store),
        &signed_webhook(&receiver.url),
        None,
    )
    .await
    .unwrap();
    let mut events = alerts.subscribe();

    let reminder = rotation_alert("key_d").dedupe_key("rotation_due:key_d:0");
    let Raised::Stored { id, .. } = alerts.raise(reminder.clone()).await.unwrap() else {
        panic!("not stored")
    };
    assert_eq!(
        alerts.raise(reminder.clone()).await.unwrap(),
        Raised::Duplicate
    );
    let first = next_event(&mut events).await;
    assert_eq!(
        (first.alert_id.as_str(), first.result),
        (id.as_str(), DeliveryResult::Delivered)
    );
    // Still a duplicate after delivery.
    assert_eq!(alerts.raise(reminder).await.unwrap(), Raised::Duplicate);

    // Another alert, delivered after: had the duplicate queued anything, it
    // would be in the outbox too.
    let Raised::Stored { id: other, .. } = alerts
        .raise(rotation_alert("key_e").dedupe_key("rotation_due:key_e:0"))
        .await
        .unwrap()
    else {
        panic!("not stored")
    };
    assert_eq!(next_event(&mut events).await.alert_id, other);
    let bodies: Vec<Value> = vec![receiver.next().await.json(), receiver.next().await.json()];
    assert!(receiver.pending().is_empty());
    assert_eq!(bodies[0]["id"], id.as_str());
    assert_eq!(bodies[1]["id"], other.as_str());
    let stored = store.store.recent_alerts(10).await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(store.store.alert_deliveries(&id).await.unwrap().len(), 1);
    drop(alerts);
    store.finish().await;
}

#[tokio::test]
async fn a_duplicate_dedupe_key_is_delivered_once_sqlite() {
    duplicate_delivered_once(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_duplicate_dedupe_key_is_delivered_once_postgres() {
    duplicate_delivered_once(Backend::Postgres).await;
}

#[tokio::test]
async fn the_slack_format_carries_text() {
    let store = TestStore::open(Backend::Sqlite).await;
    let mut receiver = Receiver::start(&[]).await;
    let config = alerts_config(
        &format!(
            "[[alerts.webhooks]]\nname = \"chat\"\nurl = \"{}\"\nformat = \"slack\"\nkinds = [\"key.*\"]\n",
            receiver.url
        ),
        &env(&[]),
    );
    let alerts = Alerts::start(Arc::clone(&store.store), &config, None)
        .await
        .unwrap();
    let mut events = alerts.subscribe();
    // Not a `key.*` kind: stored, but not sent to this channel.
    assert!(matches!(
        alerts
            .raise(Alert::new("budget.threshold", "Project p reached 80 %."))
            .await
            .unwrap(),
        Raised::Stored { deliveries: 0, .. }
    ));
    alerts
        .raise(rotation_alert("key_s").owner("<!channel>"))
        .await
        .unwrap();
    let event = next_event(&mut events).await;
    assert_eq!(
        (event.channel.as_str(), event.result),
        ("chat", DeliveryResult::Delivered)
    );
    let request = receiver.next().await;
    assert!(receiver.pending().is_empty());
    let body = request.json();
    assert_eq!(
        body["text"],
        "[keygate] key.rotation_due: Key key_s is 91 days old; rotate it."
    );
    assert_eq!(body["blocks"][0]["type"], "section");
    assert!(body["blocks"][0]["text"]["text"]
        .as_str()
        .unwrap()
        .contains("key.rotation_due"));
    // Escaped: no mention of the whole channel.
    assert!(!String::from_utf8_lossy(&request.body).contains("<!channel>"));
    // No secret configured: unsigned, but still identified.
    assert!(request.headers.get("x-keygate-signature").is_none());
    assert_eq!(request.header("x-keygate-delivery"), event.delivery_id);
    drop(alerts);
    store.finish().await;
}

#[tokio::test(start_paused = true)]
async fn an_alert_recorded_before_a_crash_is_delivered_by_the_next_start() {
    let _frozen = freeze_clock();
    let store = TestStore::open(Backend::Sqlite).await;
    let mut receiver = Receiver::start(&[]).await;
    let config = signed_webhook(&receiver.url);

    // A process that records the alert and dies before its worker sends it.
    let crashed = Alerts::start_with(
        Arc::clone(&store.store),
        &config,
        None,
        AlertsOptions {
            record_only: true,
            ..AlertsOptions::default()
        },
    )
    .await
    .unwrap();
    let Raised::Stored { id, .. } = crashed.raise(rotation_alert("key_c")).await.unwrap() else {
        panic!("not stored")
    };
    drop(crashed);
    assert!(receiver.pending().is_empty());

    // The next start on the same store delivers it.
    let next = Alerts::start(Arc::clone(&store.store), &config, None)
        .await
        .unwrap();
    let mut events = next.subscribe();
    let event = next_event(&mut events).await;
    assert_eq!(
        (event.alert_id.as_str(), event.result),
        (id.as_str(), DeliveryResult::Delivered)
    );
    assert_eq!(receiver.next().await.json()["id"], id.as_str());
    drop(next);
    store.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_delivery_cut_off_by_a_crash_is_sent_again_after_its_lease() {
    let _frozen = freeze_clock();
    let store = TestStore::open(Backend::Sqlite).await;
    // The first request never gets an answer: the sender dies waiting.
    let mut receiver = Receiver::start(&[Answer::Hang]).await;
    let config = signed_webhook(&receiver.url);
    // Both "processes" read one wall clock.
    let clock = Clock::new();
    let options = AlertsOptions {
        clock: Some(clock),
        ..AlertsOptions::default()
    };

    let crashed = Alerts::start_with(Arc::clone(&store.store), &config, None, options)
        .await
        .unwrap();
    let Raised::Stored { id, .. } = crashed.raise(rotation_alert("key_x")).await.unwrap() else {
        panic!("not stored")
    };
    let cut_off = receiver.next().await;
    drop(crashed);

    // The row stays claimed by the dead worker until its lease runs out.
    let channels = vec!["env".to_string()];
    let due = store
        .store
        .next_alert_delivery_due(&channels)
        .await
        .unwrap()
        .unwrap();
    let lease = due - clock.now_ms();
    assert!(
        lease > 10_000,
        "lease of {lease} ms is not longer than an attempt"
    );
    tokio::time::advance(Duration::from_millis(u64::try_from(lease).unwrap())).await;

    let next = Alerts::start_with(Arc::clone(&store.store), &config, None, options)
        .await
        .unwrap();
    let mut events = next.subscribe();
    let event = next_event(&mut events).await;
    assert_eq!(
        (event.alert_id.as_str(), event.attempt, event.result),
        (id.as_str(), 2, DeliveryResult::Delivered)
    );
    let again = receiver.next().await;
    // The same delivery: a receiver that did get the first one drops this.
    assert_eq!(
        again.header("x-keygate-delivery"),
        cut_off.header("x-keygate-delivery")
    );
    drop(next);
    store.finish().await;
}

#[test]
fn plain_http_to_a_remote_host_is_refused_at_config_validation() {
    let error = Config::from_raw(
        RawConfig::default(),
        &env(&[
            (
                "KEYGATE_ALERT_WEBHOOK_URL",
                "http://alerts.example.com/T0/secret-path",
            ),
            ("KEYGATE_ALERT_WEBHOOK_SECRET", SECRET),
        ]),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("KEYGATE_ALERT_WEBHOOK_URL"), "{error}");
    assert!(error.contains("plain http://"), "{error}");
    assert!(error.contains("http://alerts.example.com"), "{error}");
    assert!(error.contains("Use https://"), "{error}");
    // Neither the URL's path (a Slack URL's secret) nor the signing secret.
    assert!(
        !error.contains("secret-path") && !error.contains(SECRET),
        "{error}"
    );

    let file = |extra: &str| {
        toml::from_str::<RawConfig>(&format!(
            "[[alerts.webhooks]]\nurl = \"http://10.0.0.7/hook\"\nformat = \"slack\"\n{extra}"
        ))
        .unwrap()
    };
    let error = Config::from_raw(file(""), &env(&[]))
        .unwrap_err()
        .to_string();
    assert!(error.contains("alerts.webhooks[1]"), "{error}");
    assert!(error.contains("allow_insecure"), "{error}");
    // Explicitly allowed, and loopback, are fine.
    Config::from_raw(file("allow_insecure = true"), &env(&[])).unwrap();
    Config::from_raw(
        RawConfig::default(),
        &env(&[
            ("KEYGATE_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/hook"),
            ("KEYGATE_ALERT_WEBHOOK_SECRET", SECRET),
        ]),
    )
    .unwrap();
}

/// The outbox contract, straight on the store, with explicit times.
async fn outbox_conformance(store: &dyn Store) {
    let alert = |id: &str, dedupe: Option<&str>| AlertRecord {
        id: id.into(),
        kind: "key.rotation_due".into(),
        subject: Some("key_1".into()),
        owner: None,
        message: "m".into(),
        details: json!({"n": 1}),
        dedupe_key: dedupe.map(str::to_string),
        created_at: 1_000,
    };
    let delivery = |id: &str, channel: &str| NewAlertDelivery {
        id: id.into(),
        channel: channel.into(),
    };
    let a1 = alert("alert_1", Some("once"));
    assert!(store
        .insert_alert(&a1, &[delivery("dlv_a", "a"), delivery("dlv_b", "b")])
        .await
        .unwrap());
    // Same dedupe key: nothing stored, not even its deliveries.
    assert!(!store
        .insert_alert(&alert("alert_2", Some("once")), &[delivery("dlv_c", "a")])
        .await
        .unwrap());
    assert_eq!(store.get_alert("alert_2").await.unwrap(), None);
    assert!(store.alert_deliveries("alert_2").await.unwrap().is_empty());
    // Alerts without a dedupe key never collide.
    assert!(store
        .insert_alert(&alert("alert_3", None), &[])
        .await
        .unwrap());
    assert!(store
        .insert_alert(&alert("alert_4", None), &[])
        .await
        .unwrap());

    let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        store
            .next_alert_delivery_due(&names(&["a", "b"]))
            .await
            .unwrap(),
        Some(1_000)
    );
    assert_eq!(
        store.next_alert_delivery_due(&names(&["z"])).await.unwrap(),
        None
    );
    assert_eq!(store.next_alert_delivery_due(&[]).await.unwrap(), None);
    assert!(
        store
            .claim_alert_deliveries(&names(&["a"]), 999, 60_999, "t0", 10)
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );

    // A claim takes the row for its lease, with its alert.
    let claimed = store
        .claim_alert_deliveries(&names(&["a"]), 1_000, 61_000, "t1", 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].delivery.id, "dlv_a");
    assert_eq!(claimed[0].delivery.attempts, 1);
    assert_eq!(claimed[0].delivery.claimed_until, Some(61_000));
    assert_eq!(claimed[0].alert, a1);
    // Nobody else gets it while the lease holds.
    let others = store
        .claim_alert_deliveries(&names(&["a", "b"]), 1_000, 61_000, "t2", 10)
        .await
        .unwrap();
    assert_eq!(others.len(), 1);
    assert_eq!(others[0].delivery.id, "dlv_b");
    assert!(store
        .claim_alert_deliveries(&names(&["a"]), 60_999, 120_999, "t3", 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.next_alert_delivery_due(&names(&["a"])).await.unwrap(),
        Some(61_000)
    );
    // Then someone else does, and the first claim is void.
    let retaken = store
        .claim_alert_deliveries(&names(&["a"]), 61_000, 121_000, "t4", 10)
        .await
        .unwrap();
    assert_eq!(retaken[0].delivery.attempts, 2);
    assert!(!store
        .finish_alert_delivery(
            "dlv_a",
            "t1",
            &AlertDeliveryOutcome::Delivered { at: 61_500 }
        )
        .await
        .unwrap());
    let retry = AlertDeliveryOutcome::Retry {
        next_attempt_at: 70_000,
        error: "HTTP 500".into(),
    };
    assert!(store
        .finish_alert_delivery("dlv_a", "t4", &retry)
        .await
        .unwrap());
    assert_eq!(
        store.next_alert_delivery_due(&names(&["a"])).await.unwrap(),
        Some(70_000)
    );
    let gave_up = AlertDeliveryOutcome::GaveUp {
        at: 2_000,
        error: "HTTP 410".into(),
    };
    assert!(store
        .finish_alert_delivery("dlv_b", "t2", &gave_up)
        .await
        .unwrap());
    assert!(store
        .claim_alert_deliveries(&names(&["b"]), i64::MAX / 2, i64::MAX / 2, "t5", 10)
        .await
        .unwrap()
        .is_empty());
    let last = store
        .claim_alert_deliveries(&names(&["a"]), 70_000, 130_000, "t6", 10)
        .await
        .unwrap();
    assert_eq!(last[0].delivery.attempts, 3);
    assert!(store
        .finish_alert_delivery(
            "dlv_a",
            "t6",
            &AlertDeliveryOutcome::Delivered { at: 70_001 }
        )
        .await
        .unwrap());
    assert_eq!(
        store
            .next_alert_delivery_due(&names(&["a", "b"]))
            .await
            .unwrap(),
        None
    );

    let rows = store.alert_deliveries("alert_1").await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (
            rows[0].channel.as_str(),
            rows[0].attempts,
            rows[0].delivered_at,
            rows[0].failed_at
        ),
        ("a", 3, Some(70_001), None)
    );
    assert_eq!(rows[0].last_error.as_deref(), Some("HTTP 500"));
    assert_eq!(rows[0].claimed_until, None);
    assert_eq!(
        (
            rows[1].channel.as_str(),
            rows[1].failed_at,
            rows[1].last_error.as_deref()
        ),
        ("b", Some(2_000), Some("HTTP 410"))
    );
    let recent = store.recent_alerts(10).await.unwrap();
    let ids: HashSet<&str> = recent.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, HashSet::from(["alert_1", "alert_3", "alert_4"]));
}

#[tokio::test]
async fn the_outbox_claims_each_delivery_once_per_lease() {
    for backend in BACKENDS {
        let store = TestStore::open(backend).await;
        outbox_conformance(store.store.as_ref()).await;
        store.finish().await;
    }
}

#[tokio::test]
async fn two_nodes_on_postgres_never_send_a_delivery_twice() {
    const ALERTS: usize = 24;
    let first = TestStore::open(Backend::Postgres).await;
    let url = first.url.clone().unwrap();
    let second: Arc<dyn Store> = Arc::new(PostgresStore::connect(&url).await.unwrap());
    let mut receiver = Receiver::start(&[]).await;
    let config = signed_webhook(&receiver.url);
    let nodes = [
        Alerts::start(Arc::clone(&first.store), &config, None)
            .await
            .unwrap(),
        Alerts::start(Arc::clone(&second), &config, None)
            .await
            .unwrap(),
    ];
    let mut events = [nodes[0].subscribe(), nodes[1].subscribe()];
    // Each node raises half; both workers race for every due row.
    let raised = futures_util::future::join_all((0..ALERTS).map(|i| {
        let node = nodes[i % 2].clone();
        async move {
            node.raise(rotation_alert(&format!("key_{i}")))
                .await
                .unwrap()
        }
    }))
    .await;
    let ids: HashSet<String> = raised
        .into_iter()
        .map(|r| match r {
            Raised::Stored { id, .. } => id,
            Raised::Duplicate => panic!("duplicate"),
        })
        .collect();

    let mut delivered = HashSet::new();
    let [from_first, from_second] = &mut events;
    while delivered.len() < ALERTS {
        let event = tokio::time::timeout(PATIENCE, async {
            tokio::select! {
                event = from_first.recv() => event.unwrap(),
                event = from_second.recv() => event.unwrap(),
            }
        })
        .await
        .expect("no delivery outcome");
        assert_eq!(event.result, DeliveryResult::Delivered);
        assert!(delivered.insert(event.delivery_id), "sent twice");
    }
    let mut seen = HashSet::new();
    for _ in 0..ALERTS {
        let request = receiver.next().await;
        assert!(seen.insert(request.header("x-keygate-delivery").to_string()));
    }
    assert_eq!(seen, delivered);
    // Every row was claimed exactly once: a second claim would have counted
    // a second attempt.
    for id in &ids {
        let rows = first.store.alert_deliveries(id).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].attempts, 1, "{id} claimed twice");
        assert!(rows[0].delivered_at.is_some());
    }
    assert!(receiver.pending().is_empty());
    drop(nodes);
    drop(second);
    first.finish().await;
}

#[tokio::test]
async fn the_gateway_delivers_alerts_raised_through_its_state() {
    let mut receiver = Receiver::start(&[]).await;
    let url = receiver.url.clone();
    let gw = TestGateway::start_with(
        Backend::Sqlite,
        keygate::mock::MockOptions::default(),
        move |_| {
            (
                String::new(),
                env(&[
                    ("KEYGATE_ALERT_WEBHOOK_URL", url.as_str()),
                    ("KEYGATE_ALERT_WEBHOOK_SECRET", SECRET),
                ]),
            )
        },
    )
    .await;
    assert_eq!(gw.state.alerts.channels(), ["env"]);
    let Raised::Stored { id, deliveries } = gw
        .state
        .alerts
        .raise(rotation_alert("key_gw"))
        .await
        .unwrap()
    else {
        panic!("not stored")
    };
    assert_eq!(deliveries, 1);
    let request = receiver.next().await;
    assert_eq!(request.json()["id"], id.as_str());
    request
        .verify(SECRET, gw.state.alerts.now_ms() / 1000)
        .unwrap();
    gw.finish().await;
}
