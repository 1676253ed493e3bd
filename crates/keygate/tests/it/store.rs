//! The Store trait behaves the same on SQLite and PostgreSQL.

use crate::support::{drop_database, fresh_database};
use keygate::auth::KeyKind;
use keygate::ledger::UsageEvent;
use keygate::policy::limits::Subject;
use keygate::store::{
    postgres::PostgresStore, sqlite::SqliteStore, KeyRecord, Store, UsageFilter, UsageGroup,
};

fn key(id: &str, updated_at: i64) -> KeyRecord {
    KeyRecord {
        id: id.into(),
        kind: KeyKind::Data,
        name: format!("name {id}"),
        env: "live".into(),
        secret_hash: format!("{:0>64}", id.len()) + id,
        hint: "...abcd".into(),
        models: vec!["gpt-*".into()],
        created_at: updated_at,
        expires_at: Some(updated_at + 1000),
        revoked_at: None,
        revoke_reason: None,
        updated_at,
        previous_secret_hash: None,
        previous_expires_at: None,
        suspended_at: None,
        scopes: Vec::new(),
        allow_ips: Vec::new(),
        description: None,
        metadata: serde_json::Map::new(),
        rotated_at: None,
        org_id: Some("org_default".into()),
        project_id: Some("proj_default".into()),
        owner: None,
        role: None,
        auto_rotate_webhook: None,
        limits: Default::default(),
        on_anomaly: None,
    }
}

fn event(id: &str, key: &str, ts: i64, status: u16) -> UsageEvent {
    UsageEvent {
        request_id: id.into(),
        ts,
        key_id: Some(key.into()),
        route: "/v1/chat/completions".into(),
        model: Some("gpt-4o".into()),
        provider: Some("openai".into()),
        prompt_tokens: 10,
        completion_tokens: 5,
        cached_tokens: 2,
        cost_nanos: 1_000,
        owner: Some("alice@example.com".into()),
        project_id: Some("proj_default".into()),
        org_id: Some("org_default".into()),
        token_id: Some(format!("tok_{id}")),
        status,
        error_code: (status >= 400).then(|| "x".into()),
        latency_ms: 3,
        streamed: true,
        source_ip: Some("127.0.0.1".into()),
        user_agent: None,
    }
}

async fn conformance(store: &dyn Store) {
    store.ping().await.unwrap();
    assert_eq!(store.init_meta("m", "one").await.unwrap(), "one");
    assert_eq!(
        store.init_meta("m", "two").await.unwrap(),
        "one",
        "init_meta never overwrites"
    );

    store.insert_key(&key("key_a", 100)).await.unwrap();
    store.insert_key(&key("key_b", 200)).await.unwrap();
    assert!(
        store.insert_key(&key("key_a", 300)).await.is_err(),
        "ids are unique"
    );
    assert_eq!(
        store.get_key("key_a").await.unwrap(),
        Some(key("key_a", 100))
    );
    assert_eq!(store.get_key("nope").await.unwrap(), None);
    // Paging by id, as a start loads the cache.
    let ids = |page: Vec<keygate::store::KeyRecord>| -> Vec<String> {
        page.into_iter().map(|k| k.id).collect()
    };
    assert_eq!(ids(store.keys_after("", 1).await.unwrap()), ["key_a"]);
    assert_eq!(ids(store.keys_after("key_a", 5).await.unwrap()), ["key_b"]);
    assert!(store.keys_after("key_b", 5).await.unwrap().is_empty());
    // The meta table holds settable values and leases.
    store.set_meta("m2", "x").await.unwrap();
    store.set_meta("m2", "y").await.unwrap();
    assert_eq!(store.get_meta("m2").await.unwrap().as_deref(), Some("y"));
    assert!(store.try_lease("lease", 1_000, 10).await.unwrap());
    assert!(
        !store.try_lease("lease", 2_000, 999).await.unwrap(),
        "held until 1000"
    );
    assert!(
        store.try_lease("lease", 2_000, 1_001).await.unwrap(),
        "free once expired"
    );
    let listed: Vec<String> = store
        .list_keys(KeyKind::Data)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(listed, vec!["key_b", "key_a"], "newest first");
    assert!(store.list_keys(KeyKind::Admin).await.unwrap().is_empty());

    let revoked = store
        .revoke_key("key_a", 500, "leaked")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            revoked.revoked_at,
            revoked.revoke_reason.as_deref(),
            revoked.updated_at
        ),
        (Some(500), Some("leaked"), 500)
    );
    let again = store
        .revoke_key("key_a", 900, "other")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again.revoked_at,
        Some(500),
        "revoking twice keeps the first revocation"
    );
    let changed: Vec<String> = store
        .keys_changed_since(300)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(changed, vec!["key_a"]);

    let batch = vec![
        event("r1", "key_a", 10, 200),
        event("r2", "key_a", 20, 401),
        event("r3", "key_b", 30, 200),
    ];
    store.append_usage(&batch).await.unwrap();
    store.append_usage(&batch[..1]).await.unwrap(); // a retried batch is harmless
    let all = store
        .usage_events(&UsageFilter::default(), 100)
        .await
        .unwrap();
    assert_eq!(all, batch);
    let totals = store
        .usage_totals(
            &UsageFilter {
                key_id: Some("key_a".into()),
                ..Default::default()
            },
            &[UsageGroup::Key, UsageGroup::Model],
        )
        .await
        .unwrap();
    assert_eq!(totals.len(), 1);
    assert_eq!(
        (
            totals[0].requests,
            totals[0].errors,
            totals[0].prompt_tokens,
            totals[0].cached_tokens,
            totals[0].completion_tokens,
            totals[0].cost_nanos,
        ),
        (2, 1, 20, 4, 10, 2_000)
    );
    assert_eq!(totals[0].cost_usd, 0.000_002);
    assert_eq!(
        (totals[0].key_id.as_deref(), totals[0].model.as_deref()),
        (Some("key_a"), Some("gpt-4o"))
    );
    assert_eq!((&totals[0].owner, &totals[0].day), (&None, &None));
    let windowed = store
        .usage_events(
            &UsageFilter {
                since: Some(15),
                until: Some(30),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap();
    assert_eq!(windowed, batch[1..2]);
    assert_eq!(
        store
            .usage_events(&UsageFilter::default(), 1)
            .await
            .unwrap()
            .len(),
        1
    );
    money(store).await;
}

/// Spend per budget subject and totals per grouping, over rows of two
/// organisations where one owner name appears in both.
async fn money(store: &dyn Store) {
    const DAY: i64 = 86_400_000;
    let row = |id: &str, key: &str, ts: i64, owner: &str, org: &str, project: &str, cost: i64| {
        UsageEvent {
            owner: Some(owner.into()),
            org_id: Some(org.into()),
            project_id: Some(project.into()),
            cost_nanos: cost,
            provider: Some(
                if key == "key_c" {
                    "anthropic"
                } else {
                    "openai"
                }
                .into(),
            ),
            model: Some(
                if key == "key_c" {
                    "claude-haiku-4-5"
                } else {
                    "gpt-4o"
                }
                .into(),
            ),
            ..event(id, key, ts, 200)
        }
    };
    store
        .append_usage(&[
            row(
                "m1",
                "key_c",
                2 * DAY + 5,
                "bob",
                "org_other",
                "proj_other",
                7,
            ),
            row(
                "m2",
                "key_d",
                2 * DAY + 9,
                "alice@example.com",
                "org_other",
                "proj_x",
                11,
            ),
        ])
        .await
        .unwrap();
    // The rows of the conformance test: key_a (10, 20) and key_b (30), each
    // 1000 nanos, alice@example.com in org_default / proj_default.
    for (subject, since, spent) in [
        (Subject::Key("key_a".into()), 0, 2_000),
        (Subject::Key("key_a".into()), 15, 1_000),
        (Subject::Key("key_nobody".into()), 0, 0),
        (
            Subject::Owner {
                org_id: "org_default".into(),
                owner: "alice@example.com".into(),
            },
            0,
            3_000,
        ),
        (
            Subject::Owner {
                org_id: "org_other".into(),
                owner: "alice@example.com".into(),
            },
            0,
            11,
        ),
        (Subject::Project("proj_default".into()), 0, 3_000),
        (Subject::Project("proj_other".into()), 0, 7),
        (Subject::Organisation("org_other".into()), 0, 18),
        (Subject::Organisation("org_other".into()), 2 * DAY + 6, 11),
        (Subject::Organisation("org_default".into()), 25, 1_000),
    ] {
        assert_eq!(
            store.spent_since(&subject, since).await.unwrap(),
            spent,
            "{subject:?} since {since}"
        );
    }

    let all = UsageFilter::default();
    let owners = store
        .usage_totals(&all, &[UsageGroup::Owner])
        .await
        .unwrap();
    let owners: Vec<_> = owners
        .iter()
        .map(|t| {
            (
                t.org_id.as_deref(),
                t.owner.as_deref(),
                t.requests,
                t.cost_nanos,
                t.key_id.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        owners,
        [
            (
                Some("org_default"),
                Some("alice@example.com"),
                3,
                3_000,
                None
            ),
            (Some("org_other"), Some("alice@example.com"), 1, 11, None),
            (Some("org_other"), Some("bob"), 1, 7, None),
        ]
    );
    let days = store
        .usage_totals(&all, &[UsageGroup::Day, UsageGroup::Provider])
        .await
        .unwrap();
    let days: Vec<_> = days
        .iter()
        .map(|t| (t.day.as_deref(), t.provider.as_deref(), t.requests))
        .collect();
    assert_eq!(
        days,
        [
            (Some("1970-01-01"), Some("openai"), 3),
            (Some("1970-01-03"), Some("anthropic"), 1),
            (Some("1970-01-03"), Some("openai"), 1),
        ]
    );
    let filtered = store
        .usage_totals(
            &UsageFilter {
                owner: Some("alice@example.com".into()),
                project_id: Some("proj_x".into()),
                model: Some("gpt-4o".into()),
                provider: Some("openai".into()),
                ..Default::default()
            },
            &[UsageGroup::Project],
        )
        .await
        .unwrap();
    assert_eq!(filtered.len(), 1);
    assert_eq!(
        (filtered[0].project_id.as_deref(), filtered[0].cost_nanos),
        (Some("proj_x"), 11)
    );
}

#[tokio::test]
async fn sqlite_store_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("k.db")).await.unwrap();
    conformance(&store).await;
}

#[tokio::test]
async fn postgres_store_conformance() {
    let (name, url) = fresh_database().await;
    let store = PostgresStore::connect(&url).await.unwrap();
    conformance(&store).await;
    drop(store);
    drop_database(&name).await;
}
