//! The dashboard's store queries (DashboardStore) on SQLite and PostgreSQL:
//! the rollups (hourly, daily by owner, daily totals) stay equal to the
//! ledger, whichever of them series, summaries and the explorer read, and
//! key lists page by keyset.

use crate::support::{drop_database, fresh_database};
use keygate::auth::KeyKind;
use keygate::ledger::UsageEvent;
use keygate::store::{
    postgres::PostgresStore, sqlite::SqliteStore, KeyCounts, KeyPageQuery, KeyRecord, KeySort,
    KeyState, SeriesSplit, Store, TenantScope, UsageFilter, UsageGroup, UsagePoint, UsageTotal,
    DAY_MS, ROLLUP_BUCKET_MS,
};
use std::collections::{BTreeMap, HashSet};

const HOUR: i64 = ROLLUP_BUCKET_MS;
const DAY: i64 = DAY_MS;
/// A UTC midnight.
const MIDNIGHT: i64 = 1_700_006_400_000;
/// Two hours before it: the events span ten days and seven hours from
/// here, so they start and end inside a day.
const BASE: i64 = MIDNIGHT - 2 * HOUR;
const SPAN: i64 = 10 * DAY + 7 * HOUR;

async fn on_both<F, Fut>(test: F)
where
    F: Fn(Box<dyn Store>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("k.db")).await.unwrap();
    test(Box::new(sqlite)).await;
    let (name, url) = fresh_database().await;
    let postgres = PostgresStore::connect(&url).await.unwrap();
    test(Box::new(postgres)).await;
    drop_database(&name).await;
}

fn key(n: usize, kind: KeyKind) -> KeyRecord {
    let id = format!("key_{n:04}");
    KeyRecord {
        id: id.clone(),
        kind,
        name: format!("name{:02}", n % 13),
        env: "live".into(),
        secret_hash: format!("{:0>60}{n:04}", 0),
        hint: "...abcd".into(),
        models: Vec::new(),
        created_at: 1_000 + (n as i64 / 3) * 10,
        expires_at: None,
        revoked_at: None,
        revoke_reason: None,
        updated_at: 1_000,
        previous_secret_hash: None,
        previous_expires_at: None,
        suspended_at: None,
        scopes: Vec::new(),
        allow_ips: Vec::new(),
        description: None,
        metadata: serde_json::Map::new(),
        rotated_at: None,
        org_id: None,
        project_id: None,
        owner: None,
        role: None,
        auto_rotate_webhook: None,
        limits: Default::default(),
        on_anomaly: None,
    }
}

/// The data key `key_000n` of the usage tests: org `org_{n%2}`, project
/// `proj_{n%3}`, owner `owner{n%4}`.
fn usage_key(n: usize) -> KeyRecord {
    let mut k = key(n, KeyKind::Data);
    k.org_id = Some(format!("org_{}", n % 2));
    k.project_id = Some(format!("proj_{}", n % 3));
    k.owner = Some(format!("owner{}", n % 4));
    k
}

fn event(i: usize) -> UsageEvent {
    let n = i % 7;
    let k = usage_key(n);
    // Every ninth: refused before a key was identified.
    let refused = i.is_multiple_of(9);
    let (provider, model) = match i % 4 {
        0 => ("openai", "gpt-4o"),
        1 => ("openai", "gpt-4o-mini"),
        2 => ("anthropic", "claude"),
        _ => ("mock", "gpt-4o"),
    };
    UsageEvent {
        request_id: format!("req_{i:05}"),
        ts: BASE + (i as i64 * 2_411_117) % SPAN,
        key_id: (!refused).then(|| k.id.clone()),
        route: "/v1/chat/completions".into(),
        model: (!refused).then(|| model.into()),
        provider: (!refused && !i.is_multiple_of(11)).then(|| provider.into()),
        prompt_tokens: 10 + i as i64 % 17,
        completion_tokens: 3 + i as i64 % 5,
        cached_tokens: i as i64 % 3,
        cost_nanos: 1_000 * (1 + i as i64 % 23),
        owner: if refused { None } else { k.owner },
        project_id: if refused { None } else { k.project_id },
        org_id: if refused { None } else { k.org_id },
        token_id: None,
        status: if refused {
            401
        } else if i % 10 == 3 {
            500
        } else {
            200
        },
        error_code: None,
        latency_ms: 5 + i as i64 % 40,
        streamed: false,
        source_ip: None,
        user_agent: None,
    }
}

/// The events as the ledger keeps them: the first of each request id.
fn unique(batches: &[Vec<UsageEvent>]) -> Vec<UsageEvent> {
    let mut seen = HashSet::new();
    batches
        .iter()
        .flatten()
        .filter(|e| seen.insert(e.request_id.clone()))
        .cloned()
        .collect()
}

fn add(point: &mut UsagePoint, e: &UsageEvent) {
    point.requests += 1;
    point.errors += i64::from(e.status >= 400);
    point.prompt_tokens += e.prompt_tokens;
    point.cached_tokens += e.cached_tokens;
    point.completion_tokens += e.completion_tokens;
    point.cost_nanos += e.cost_nanos;
    point.latency_ms_sum += e.latency_ms;
}

/// The series computed from the events themselves.
fn expected_series(
    events: &[UsageEvent],
    scope: &TenantScope,
    since: i64,
    until: i64,
    bucket: i64,
    split: SeriesSplit,
) -> Vec<UsagePoint> {
    let mut points = BTreeMap::<(i64, Option<String>), UsagePoint>::new();
    for e in events {
        let in_scope = scope
            .org_id
            .as_ref()
            .is_none_or(|o| e.org_id.as_ref() == Some(o))
            && scope
                .project_id
                .as_ref()
                .is_none_or(|p| e.project_id.as_ref() == Some(p));
        let hour = e.ts / HOUR * HOUR;
        if !in_scope || hour < since || hour >= until {
            continue;
        }
        let start = since + (hour - since) / bucket * bucket;
        let group = match split {
            SeriesSplit::Total => None,
            SeriesSplit::Provider => e.provider.clone(),
            SeriesSplit::Model => e.model.clone(),
            SeriesSplit::Project => e.project_id.clone(),
        };
        let point = points.entry((start, group.clone())).or_insert(UsagePoint {
            bucket_ms: start,
            group,
            ..Default::default()
        });
        add(point, e);
    }
    points.into_values().collect()
}

fn canonical(mut totals: Vec<UsageTotal>) -> Vec<UsageTotal> {
    totals.sort_by_key(|t| {
        (
            t.key_id.clone(),
            t.org_id.clone(),
            t.owner.clone(),
            t.project_id.clone(),
            t.model.clone(),
            t.provider.clone(),
            t.day.clone(),
        )
    });
    totals
}

/// Requests, errors, prompt, cached and completion tokens, cost.
fn sums_of(point: &UsagePoint) -> [i64; 6] {
    [
        point.requests,
        point.errors,
        point.prompt_tokens,
        point.cached_tokens,
        point.completion_tokens,
        point.cost_nanos,
    ]
}

/// The same sums from the ledger (usage_totals) over `[since, until)`.
async fn ledger_sums(store: &dyn Store, scope: &TenantScope, since: i64, until: i64) -> [i64; 6] {
    let filter = UsageFilter {
        since: Some(since),
        until: Some(until),
        scope_org_id: scope.org_id.clone(),
        scope_project_id: scope.project_id.clone(),
        ..Default::default()
    };
    let mut sums = [0; 6];
    for t in store
        .usage_totals(&filter, &[UsageGroup::Provider])
        .await
        .unwrap()
    {
        for (sum, value) in sums.iter_mut().zip([
            t.requests,
            t.errors,
            t.prompt_tokens,
            t.cached_tokens,
            t.completion_tokens,
            t.cost_nanos,
        ]) {
            *sum += value;
        }
    }
    sums
}

async fn rollup_and_usage(store: Box<dyn Store>) {
    let store = store.as_ref();
    for n in 0..7 {
        store.insert_key(&usage_key(n)).await.unwrap();
    }
    let all: Vec<UsageEvent> = (0..1200).map(event).collect();
    // Three batches, then the first retried, then one that repeats a row
    // of its own and overlaps the third.
    let mut overlapping: Vec<UsageEvent> = all[600..800].to_vec();
    overlapping.push(all[650].clone());
    overlapping.extend_from_slice(&all[800..1200]);
    let batches = vec![
        all[0..400].to_vec(),
        all[400..480].to_vec(),
        all[480..700].to_vec(),
        all[0..400].to_vec(),
        overlapping,
    ];
    for batch in &batches {
        store.append_usage(batch).await.unwrap();
    }
    let events = unique(&batches);
    assert_eq!(events.len(), 1200);

    assert!(
        events.iter().any(|e| e.ts < MIDNIGHT)
            && events.iter().any(|e| e.ts >= MIDNIGHT + 10 * DAY),
        "the events span partial days at both ends"
    );

    // Summaries equal the ledger's totals: everything, ranges that start
    // and end inside a day (hourly edges around whole days), ranges inside
    // one day (hourly only), whole days only, and nothing.
    let everything = TenantScope::default();
    let scopes = [
        everything.clone(),
        TenantScope {
            org_id: Some("org_1".into()),
            project_id: None,
        },
        TenantScope {
            org_id: Some("org_0".into()),
            project_id: Some("proj_2".into()),
        },
    ];
    for scope in &scopes {
        for (since, until) in [
            (BASE - DAY, BASE + 12 * DAY),
            (BASE, MIDNIGHT + 10 * DAY + 5 * HOUR),
            (MIDNIGHT - HOUR, MIDNIGHT + 3 * DAY + 7 * HOUR),
            (MIDNIGHT + 5 * HOUR, MIDNIGHT + 4 * DAY),
            (MIDNIGHT + DAY, MIDNIGHT + 2 * DAY + HOUR),
            (MIDNIGHT + DAY + HOUR, MIDNIGHT + DAY + 20 * HOUR),
            (MIDNIGHT + 23 * HOUR, MIDNIGHT + 25 * HOUR),
            (MIDNIGHT, MIDNIGHT + 3 * DAY),
            (MIDNIGHT + DAY, MIDNIGHT + DAY),
        ] {
            let summary = store.usage_summary(scope, since, until).await.unwrap();
            let expected = expected_series(
                &events,
                scope,
                since,
                until,
                (until - since).max(HOUR),
                SeriesSplit::Total,
            )
            .pop()
            .unwrap_or_default();
            assert_eq!(
                summary,
                UsagePoint {
                    bucket_ms: since,
                    ..expected
                },
                "{scope:?} {since} {until}"
            );
            let ledger = ledger_sums(store, scope, since, until).await;
            assert_eq!(sums_of(&summary), ledger, "{scope:?} {since} {until}");
        }
    }
    let whole = store
        .usage_summary(&everything, BASE - DAY, BASE + 12 * DAY)
        .await
        .unwrap();
    assert_eq!(whole.requests, 1200);

    // Series: every split and scope; hour buckets, 6-hour buckets, day
    // buckets from a midnight (the daily totals, with a last partial day
    // from the hourly rollup) and not from one (the hourly rollup).
    for scope in &scopes {
        for split in [
            SeriesSplit::Total,
            SeriesSplit::Provider,
            SeriesSplit::Model,
            SeriesSplit::Project,
        ] {
            for (since, until, bucket) in [
                (BASE, BASE + 5 * HOUR, HOUR),
                (BASE - 3 * HOUR, BASE + 24 * HOUR, 2 * HOUR),
                (BASE + HOUR, BASE + 4 * HOUR, 24 * HOUR),
                (MIDNIGHT - DAY, MIDNIGHT + 7 * DAY, 6 * HOUR),
                (MIDNIGHT - DAY, MIDNIGHT + 11 * DAY, DAY),
                (MIDNIGHT, MIDNIGHT + 8 * DAY + 5 * HOUR, DAY),
                (MIDNIGHT + DAY, MIDNIGHT + 10 * DAY + 3 * HOUR, 2 * DAY),
                (MIDNIGHT + 3 * HOUR, MIDNIGHT + 9 * DAY, DAY),
            ] {
                let series = store
                    .usage_series(scope, since, until, bucket, split)
                    .await
                    .unwrap();
                let expected = expected_series(&events, scope, since, until, bucket, split);
                assert!(!expected.is_empty());
                assert_eq!(series, expected, "{scope:?} {split:?} {since} {bucket}");
                if split == SeriesSplit::Total {
                    let mut sums = [0; 6];
                    for point in &series {
                        for (sum, value) in sums.iter_mut().zip(sums_of(point)) {
                            *sum += value;
                        }
                    }
                    let ledger = ledger_sums(store, scope, since, until).await;
                    assert_eq!(sums, ledger, "{scope:?} {since} {until} {bucket}");
                }
            }
        }
    }
    // Split by provider: refusals (no provider) are their own line.
    let by_provider = store
        .usage_series(&everything, BASE, BASE + HOUR, HOUR, SeriesSplit::Provider)
        .await
        .unwrap();
    assert_eq!(by_provider[0].group, None);
    assert!(by_provider.iter().all(|p| p.bucket_ms == BASE));

    // The explorer from the rollups equals usage_totals over the ledger
    // (the keys never moved, so "keys now in scope" is the recorded scope):
    // over the same range without owner, short (hourly) or long (daily
    // totals and hourly edges); over the range rounded out to whole UTC
    // days by owner or for one owner (usage_daily).
    let short = UsageFilter {
        since: Some(BASE - DAY),
        until: Some(BASE + DAY),
        ..Default::default()
    };
    let long = UsageFilter {
        since: Some(MIDNIGHT - 5 * HOUR),
        until: Some(MIDNIGHT + 9 * DAY + 3 * HOUR),
        ..Default::default()
    };
    let mut filters = Vec::new();
    for base_filter in [&short, &long] {
        filters.extend([
            base_filter.clone(),
            UsageFilter {
                scope_org_id: Some("org_0".into()),
                ..base_filter.clone()
            },
            UsageFilter {
                scope_project_id: Some("proj_1".into()),
                owner: Some("owner1".into()),
                ..base_filter.clone()
            },
            UsageFilter {
                model: Some("gpt-4o".into()),
                provider: Some("openai".into()),
                ..base_filter.clone()
            },
        ]);
    }
    filters.extend([
        UsageFilter {
            project_id: Some("proj_2".into()),
            since: Some(BASE + HOUR),
            until: Some(BASE + 3 * HOUR),
            ..Default::default()
        },
        UsageFilter {
            owner: Some("owner2".into()),
            since: Some(MIDNIGHT + DAY + 5 * HOUR),
            until: Some(MIDNIGHT + DAY + 7 * HOUR),
            ..Default::default()
        },
        UsageFilter {
            since: Some(MIDNIGHT + 2 * DAY),
            until: Some(MIDNIGHT + 12 * DAY),
            ..Default::default()
        },
    ]);
    let groupings: [&[UsageGroup]; 7] = [
        &[UsageGroup::Owner],
        &[UsageGroup::Project],
        &[UsageGroup::Model],
        &[UsageGroup::Provider],
        &[UsageGroup::Day],
        &[UsageGroup::Provider, UsageGroup::Model],
        &[UsageGroup::Project, UsageGroup::Day, UsageGroup::Owner],
    ];
    for filter in &filters {
        for by in groupings {
            let explored = store.usage_explorer(filter, by, 1000, 0).await.unwrap();
            assert!(
                explored
                    .windows(2)
                    .all(|w| w[0].cost_nanos >= w[1].cost_nanos),
                "highest cost first"
            );
            let owner = by.contains(&UsageGroup::Owner) || filter.owner.is_some();
            let ledger_filter = if owner {
                UsageFilter {
                    since: filter.since.map(|s| s.div_euclid(DAY) * DAY),
                    until: filter.until.map(|u| (u + DAY - 1).div_euclid(DAY) * DAY),
                    ..filter.clone()
                }
            } else {
                filter.clone()
            };
            let totals = store.usage_totals(&ledger_filter, by).await.unwrap();
            assert!(!totals.is_empty(), "{filter:?} {by:?}");
            assert_eq!(
                canonical(explored.clone()),
                canonical(totals),
                "{filter:?} {by:?}"
            );
            // Pages put together are the whole.
            let mut paged = Vec::new();
            for offset in (0..explored.len() as i64 + 3).step_by(3) {
                paged.extend(store.usage_explorer(filter, by, 3, offset).await.unwrap());
            }
            assert_eq!(paged, explored, "{filter:?} {by:?}");
        }
    }
    // The owner report's range really is rounded: a two-hour range by
    // owner holds the whole day's use.
    let (day_start, day_end) = (MIDNIGHT + DAY, MIDNIGHT + 2 * DAY);
    let two_hours = UsageFilter {
        since: Some(day_start + 5 * HOUR),
        until: Some(day_start + 7 * HOUR),
        ..Default::default()
    };
    let by_owner = store
        .usage_explorer(&two_hours, &[UsageGroup::Owner], 1000, 0)
        .await
        .unwrap();
    assert_eq!(
        by_owner.iter().map(|t| t.requests).sum::<i64>(),
        events
            .iter()
            .filter(|e| e.ts >= day_start && e.ts < day_end)
            .count() as i64
    );

    let base_filter = short.clone();
    // By key, or for one key: from the ledger.
    for (filter, by) in [
        (base_filter.clone(), vec![UsageGroup::Key]),
        (
            base_filter.clone(),
            vec![UsageGroup::Key, UsageGroup::Model],
        ),
        (
            UsageFilter {
                key_id: Some("key_0003".into()),
                ..base_filter.clone()
            },
            vec![UsageGroup::Model],
        ),
        (
            UsageFilter {
                scope_org_id: Some("org_1".into()),
                ..base_filter.clone()
            },
            vec![UsageGroup::Key, UsageGroup::Day],
        ),
        (base_filter.clone(), vec![]),
    ] {
        let explored = store.usage_explorer(&filter, &by, 1000, 0).await.unwrap();
        assert!(explored
            .windows(2)
            .all(|w| w[0].cost_nanos >= w[1].cost_nanos));
        let totals = store.usage_totals(&filter, &by).await.unwrap();
        assert!(!totals.is_empty());
        assert_eq!(canonical(explored), canonical(totals), "{filter:?} {by:?}");
    }
    let top = store
        .usage_explorer(&base_filter, &[UsageGroup::Key], 2, 0)
        .await
        .unwrap();
    assert_eq!(top.len(), 2);
    let cost_of = |id: &str| {
        events
            .iter()
            .filter(|e| e.key_id.as_deref() == Some(id))
            .filter(|e| e.ts >= BASE - DAY && e.ts < BASE + DAY)
            .map(|e| e.cost_nanos)
            .sum::<i64>()
    };
    assert_eq!(
        top[0].cost_nanos,
        cost_of(top[0].key_id.as_deref().unwrap())
    );

    // Key activity: last use ever, requests and cost since.
    let since = BASE + 2 * HOUR;
    let ids: Vec<String> = (0..9).map(|n| format!("key_{n:04}")).collect();
    let activity = store.key_activity(&ids, since).await.unwrap();
    assert_eq!(
        activity.len(),
        7,
        "keys 7 and 8 have no use (and do not exist)"
    );
    for n in 0..7 {
        let id = format!("key_{n:04}");
        let of_key: Vec<&UsageEvent> = events
            .iter()
            .filter(|e| e.key_id.as_deref() == Some(id.as_str()))
            .collect();
        let got = &activity[&id];
        assert_eq!(got.last_used, of_key.iter().map(|e| e.ts).max());
        assert_eq!(
            got.requests,
            of_key.iter().filter(|e| e.ts >= since).count() as i64
        );
        assert_eq!(
            got.cost_nanos,
            of_key
                .iter()
                .filter(|e| e.ts >= since)
                .map(|e| e.cost_nanos)
                .sum::<i64>()
        );
    }
    let later = store
        .key_activity(&ids[..2], BASE + 12 * DAY)
        .await
        .unwrap();
    assert_eq!(later["key_0001"].requests, 0);
    assert_eq!(later["key_0001"].cost_nanos, 0);
    assert!(later["key_0001"].last_used.is_some());
    assert!(store.key_activity(&[], 0).await.unwrap().is_empty());
}

#[tokio::test]
async fn dashboard_store_rollup_series_explorer_activity() {
    on_both(rollup_and_usage).await;
}

const NOW: i64 = 5_000;

/// A varied key population: ties on every sort column, all four states,
/// several organisations, projects and owners, some admin keys.
fn population() -> Vec<KeyRecord> {
    (0..83)
        .map(|n| {
            let mut k = key(
                n,
                if n % 10 == 9 {
                    KeyKind::Admin
                } else {
                    KeyKind::Data
                },
            );
            if k.kind == KeyKind::Data {
                k.org_id = Some(format!("org_{}", n % 3));
                k.project_id = Some(format!("proj_{}_{}", n % 3, n % 2));
                k.owner = Some(if n % 5 == 0 {
                    "bob".to_string()
                } else {
                    format!("owner{}", n % 6)
                });
            }
            if n % 4 == 1 {
                k.rotated_at = Some(1_000 + (n as i64 % 7) * 100);
            }
            match n % 6 {
                1 => k.revoked_at = Some(2_000),
                2 => k.suspended_at = Some(2_000),
                3 => k.expires_at = Some(NOW - 1),
                4 => k.expires_at = Some(NOW),
                5 => k.expires_at = Some(NOW + 1),
                _ => {}
            }
            if n == 7 {
                // Revoked and expired counts as revoked only.
                k.expires_at = Some(NOW - 10);
            }
            k
        })
        .collect()
}

fn state_of(k: &KeyRecord, now: i64) -> Vec<KeyState> {
    let expired = k.expires_at.is_some_and(|e| e <= now);
    if k.revoked_at.is_some() {
        return vec![KeyState::Revoked];
    }
    let mut states = Vec::new();
    if k.suspended_at.is_some() {
        states.push(KeyState::Suspended);
    }
    if expired {
        states.push(KeyState::Expired);
    }
    if states.is_empty() {
        states.push(KeyState::Active);
    }
    states
}

fn expected_page(all: &[KeyRecord], q: &KeyPageQuery) -> Vec<String> {
    let mut keys: Vec<&KeyRecord> = all
        .iter()
        .filter(|k| k.kind == q.kind)
        .filter(|k| q.scope.org_id.is_none() || k.org_id == q.scope.org_id)
        .filter(|k| q.scope.project_id.is_none() || k.project_id == q.scope.project_id)
        .filter(|k| q.state.is_none_or(|s| state_of(k, q.now).contains(&s)))
        .filter(|k| {
            q.search.as_deref().is_none_or(|s| {
                k.id.starts_with(s)
                    || k.name.starts_with(s)
                    || k.owner.as_deref().is_some_and(|o| o.starts_with(s))
            })
        })
        .collect();
    match q.sort {
        KeySort::Newest => keys.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id))),
        KeySort::OldestSecret => {
            keys.sort_by_key(|k| (k.rotated_at.unwrap_or(k.created_at), k.id.clone()))
        }
        KeySort::Name => keys.sort_by_key(|k| (k.name.clone(), k.id.clone())),
    }
    keys.into_iter().map(|k| k.id.clone()).collect()
}

async fn walk(store: &dyn Store, q: &KeyPageQuery) -> Vec<String> {
    let mut q = q.clone();
    let mut ids = Vec::new();
    for _ in 0..100 {
        let page = store.key_page(&q).await.unwrap();
        assert!(page.keys.len() as i64 <= q.limit);
        ids.extend(page.keys.iter().map(|k| k.id.clone()));
        match page.next {
            Some(next) => {
                assert_eq!(
                    page.keys.len() as i64,
                    q.limit,
                    "a page before the last is full"
                );
                q.after = Some(next);
            }
            None => return ids,
        }
    }
    panic!("the walk did not end");
}

async fn key_pages(store: Box<dyn Store>) {
    let store = store.as_ref();
    let all = population();
    for k in &all {
        store.insert_key(k).await.unwrap();
    }
    let start = KeyPageQuery {
        kind: KeyKind::Data,
        scope: TenantScope::default(),
        search: None,
        state: None,
        sort: KeySort::Newest,
        after: None,
        limit: 7,
        now: NOW,
    };
    let scopes = [
        TenantScope::default(),
        TenantScope {
            org_id: Some("org_1".into()),
            project_id: None,
        },
        TenantScope {
            org_id: Some("org_2".into()),
            project_id: Some("proj_2_0".into()),
        },
    ];
    let searches = [
        None,
        Some("key_00"),
        Some("name1"),
        Some("bob"),
        Some("key_%"),
        Some(""),
    ];
    let states = [
        None,
        Some(KeyState::Active),
        Some(KeyState::Suspended),
        Some(KeyState::Revoked),
        Some(KeyState::Expired),
    ];
    let mut walked = 0;
    for sort in [KeySort::Newest, KeySort::OldestSecret, KeySort::Name] {
        // The whole list of each kind, one key at a time and in pages.
        for kind in [KeyKind::Data, KeyKind::Admin] {
            for limit in [1, 7, 200] {
                let q = KeyPageQuery {
                    kind,
                    sort,
                    limit,
                    ..start.clone()
                };
                let ids = walk(store, &q).await;
                let expected = expected_page(&all, &q);
                assert_eq!(ids, expected, "{sort:?} {kind:?} {limit}");
                let unique: HashSet<&String> = ids.iter().collect();
                assert_eq!(unique.len(), ids.len(), "each key once");
            }
        }
        for scope in &scopes {
            for search in searches {
                for state in states {
                    let q = KeyPageQuery {
                        scope: scope.clone(),
                        search: search.map(str::to_string),
                        state,
                        sort,
                        ..start.clone()
                    };
                    let ids = walk(store, &q).await;
                    assert_eq!(ids, expected_page(&all, &q), "{q:?}");
                    walked += ids.len();
                }
            }
        }
        // A garbage cursor, or one from another order, starts from the top.
        let first = store
            .key_page(&KeyPageQuery {
                sort,
                ..start.clone()
            })
            .await
            .unwrap();
        let other = store
            .key_page(&KeyPageQuery {
                sort: if sort == KeySort::Name {
                    KeySort::Newest
                } else {
                    KeySort::Name
                },
                ..start.clone()
            })
            .await
            .unwrap();
        for garbage in [
            "".to_string(),
            "!!!".to_string(),
            "bm90IGEgY3Vyc29y".to_string(),
            "'; DROP TABLE keys; --".to_string(),
            "n\nkey_0001\nnot-a-number".to_string(),
            other.next.clone().unwrap(),
        ] {
            let page = store
                .key_page(&KeyPageQuery {
                    sort,
                    after: Some(garbage.clone()),
                    ..start.clone()
                })
                .await
                .unwrap();
            let ids = |p: &keygate::store::KeyPage| {
                p.keys.iter().map(|k| k.id.clone()).collect::<Vec<_>>()
            };
            assert_eq!(ids(&page), ids(&first), "{garbage:?}");
        }
    }
    assert!(walked > 300, "the filtered walks saw keys");
    let empty = store
        .key_page(&KeyPageQuery {
            limit: 0,
            ..start.clone()
        })
        .await
        .unwrap();
    assert!(empty.keys.is_empty() && empty.next.is_none());

    // Counts by state, per kind and scope.
    for kind in [KeyKind::Data, KeyKind::Admin] {
        for scope in &scopes {
            for now in [0, NOW] {
                let mut expected = KeyCounts::default();
                for k in all.iter().filter(|k| {
                    k.kind == kind
                        && (scope.org_id.is_none() || k.org_id == scope.org_id)
                        && (scope.project_id.is_none() || k.project_id == scope.project_id)
                }) {
                    expected.total += 1;
                    for state in state_of(k, now) {
                        match state {
                            KeyState::Active => expected.active += 1,
                            KeyState::Suspended => expected.suspended += 1,
                            KeyState::Revoked => expected.revoked += 1,
                            KeyState::Expired => expected.expired += 1,
                        }
                    }
                }
                let counts = store.key_counts(kind, scope, now).await.unwrap();
                assert_eq!(counts, expected, "{kind:?} {scope:?} {now}");
            }
        }
    }
    let none = store
        .key_counts(
            KeyKind::Data,
            &TenantScope {
                org_id: Some("org_none".into()),
                project_id: None,
            },
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(none, KeyCounts::default());
}

#[tokio::test]
async fn dashboard_store_key_pages_and_counts() {
    on_both(key_pages).await;
}

/// Every order's cursor survives names with the separator and non-ASCII.
#[tokio::test]
async fn dashboard_store_cursor_names() {
    on_both(|store: Box<dyn Store>| async move {
        let names = ["a\nb", "a", "a\n", "é", "a|b", ""];
        let mut all = Vec::new();
        for (n, name) in names.iter().enumerate() {
            let mut k = key(n, KeyKind::Data);
            k.name = name.to_string();
            store.insert_key(&k).await.unwrap();
            all.push(k);
        }
        let q = KeyPageQuery {
            kind: KeyKind::Data,
            scope: TenantScope::default(),
            search: None,
            state: None,
            sort: KeySort::Name,
            after: None,
            limit: 1,
            now: NOW,
        };
        let ids = walk(store.as_ref(), &q).await;
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(ids.len(), names.len());
        assert_eq!(unique.len(), names.len());
    })
    .await;
}

/// Times the dashboard's queries on a database seeded by
/// `tests/e2e/dashboard_seed.py` (ignored; run by hand):
///
/// ```text
/// KEYGATE_DASHBOARD_DB=/tmp/seed/keygate.db cargo nextest run \
///     -E 'test(dashboard_store_timing)' --run-ignored only --no-capture
/// ```
///
/// Each query runs three times; the best time is printed (the first run
/// also warms the page cache).
#[tokio::test]
#[ignore = "needs a seeded database (KEYGATE_DASHBOARD_DB)"]
async fn dashboard_store_timing() {
    use keygate::store::DashboardStore;
    let Ok(path) = std::env::var("KEYGATE_DASHBOARD_DB") else {
        panic!("set KEYGATE_DASHBOARD_DB to a seeded keygate.db");
    };
    let store = SqliteStore::open(std::path::Path::new(&path))
        .await
        .unwrap();
    let last = store
        .usage_events(
            &UsageFilter {
                since: Some(0),
                ..Default::default()
            },
            1,
        )
        .await
        .unwrap();
    assert!(!last.is_empty(), "a seeded database");
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let now = (wall / HOUR + 1) * HOUR;
    let midnight = now / DAY * DAY;
    let everything = TenantScope::default();
    let range = |since: i64| UsageFilter {
        since: Some(since),
        until: Some(now),
        ..Default::default()
    };
    macro_rules! time {
        ($name:expr, $query:expr) => {{
            let mut best = std::time::Duration::MAX;
            let mut size = 0;
            for _ in 0..3 {
                let started = std::time::Instant::now();
                let result = $query.await.unwrap();
                best = best.min(started.elapsed());
                size = format!("{result:?}").len();
            }
            println!(
                "{:<44} {:>9.1} ms  ({size} bytes of result)",
                $name,
                best.as_secs_f64() * 1e3
            );
        }};
    }
    time!(
        "summary 24 h",
        store.usage_summary(&everything, now - DAY, now)
    );
    time!(
        "summary 30 d",
        store.usage_summary(&everything, now - 30 * DAY, now)
    );
    time!(
        "series 30 d daily by model",
        store.usage_series(
            &everything,
            midnight - 29 * DAY,
            now,
            DAY,
            SeriesSplit::Model
        )
    );
    time!(
        "series 30 d daily by project",
        store.usage_series(
            &everything,
            midnight - 29 * DAY,
            now,
            DAY,
            SeriesSplit::Project
        )
    );
    time!(
        "series 7 d 6-hourly by model",
        store.usage_series(
            &everything,
            now - 7 * DAY,
            now,
            6 * HOUR,
            SeriesSplit::Model
        )
    );
    time!(
        "explorer by owner 30 d (top 50)",
        store.usage_explorer(&range(now - 30 * DAY), &[UsageGroup::Owner], 50, 0)
    );
    time!(
        "explorer by project 30 d (top 50)",
        store.usage_explorer(&range(now - 30 * DAY), &[UsageGroup::Project], 50, 0)
    );
    time!(
        "explorer by provider 24 h",
        store.usage_explorer(&range(now - DAY), &[UsageGroup::Provider], 50, 0)
    );
    time!(
        "key_counts data, whole instance",
        store.key_counts(KeyKind::Data, &everything, wall)
    );
    time!(
        "key_counts data, one organisation",
        store.key_counts(
            KeyKind::Data,
            &TenantScope {
                org_id: Some("org_seed1".into()),
                project_id: None
            },
            wall
        )
    );
}
