//! Dashboard sessions in the store, on SQLite and PostgreSQL: a session is
//! found only by its hash while it is neither idle nor past its lifetime,
//! and the lifecycle purge forgets exactly the dead ones.

use crate::support::{drop_database, fresh_database};
use keygate::store::{postgres::PostgresStore, sqlite::SqliteStore, SessionRecord, Store};

const MIN: i64 = 60_000;

fn session(id_hash: &str, now: i64, lifetime: i64) -> SessionRecord {
    SessionRecord {
        id_hash: id_hash.to_string(),
        key_id: "key_admin".to_string(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + lifetime,
        source_ip: Some("127.0.0.1".to_string()),
        user_agent: None,
        actor: None,
    }
}

async fn sessions(store: Box<dyn Store>) {
    let now = 1_800_000_000_000;
    let idle = 30 * MIN;
    store
        .insert_session(&session("live", now, 12 * 60 * MIN))
        .await
        .unwrap();
    store
        .insert_session(&session("short", now, 10 * MIN))
        .await
        .unwrap();
    let mut oidc = session("oidc", now, 12 * 60 * MIN);
    oidc.actor =
        Some(r#"{"role":"viewer","org_id":null,"project_id":null,"identity":"a@b"}"#.into());
    oidc.key_id = "oidc:u-1".into();
    store.insert_session(&oidc).await.unwrap();

    // Found by hash while live; the OpenID actor comes back as stored.
    let found = store
        .live_session("oidc", now + MIN, now + MIN - idle)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.actor, oidc.actor);
    assert_eq!(found.key_id, "oidc:u-1");
    assert!(store
        .live_session("nope", now, now - idle)
        .await
        .unwrap()
        .is_none());

    // Twenty minutes on: "short" is past its lifetime; a touch keeps "live" fresh.
    let t = now + 20 * MIN;
    assert!(store
        .live_session("short", t, t - idle)
        .await
        .unwrap()
        .is_none());
    store.touch_session("live", t).await.unwrap();
    // Forty minutes on: "oidc" has been idle for 40 minutes, "live" for 20.
    let t = now + 40 * MIN;
    assert!(store
        .live_session("oidc", t, t - idle)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .live_session("live", t, t - idle)
        .await
        .unwrap()
        .is_some());

    assert_eq!(store.purge_sessions(t, t - idle).await.unwrap(), 2);
    assert_eq!(store.purge_sessions(t, t - idle).await.unwrap(), 0);
    store.delete_session("live").await.unwrap();
    assert!(store
        .live_session("live", t, t - idle)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn dashboard_sessions_live_idle_expired_and_purged() {
    let dir = tempfile::tempdir().unwrap();
    sessions(Box::new(
        SqliteStore::open(&dir.path().join("k.db")).await.unwrap(),
    ))
    .await;
    let (name, url) = fresh_database().await;
    sessions(Box::new(PostgresStore::connect(&url).await.unwrap())).await;
    drop_database(&name).await;
}
