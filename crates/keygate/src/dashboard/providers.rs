//! Providers: each configured upstream's failover state (cooling down
//! after failures, per provider and per upstream key) and its traffic,
//! error rate and latency over the last hour and day, from the rollup.
//! Like provider credentials in the admin API, instance-wide only.

use super::{format, problem, render, store_failed, Layout, SignedIn};
use crate::server::AppState;
use crate::store::{SeriesSplit, TenantScope, UsagePoint, ROLLUP_BUCKET_MS};
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use std::collections::HashMap;

/// One provider as shown.
pub(crate) struct ProviderRow {
    pub name: String,
    pub kind: String,
    pub base_url: String,
    pub weight: u32,
    pub state: &'static str,
    pub state_class: &'static str,
    pub state_note: String,
    pub keys: String,
    pub requests_hour: String,
    pub error_rate_hour: String,
    pub latency_hour: String,
    pub requests_day: String,
    pub error_rate_day: String,
}

#[derive(Template)]
#[template(path = "dashboard/providers.html")]
struct ProvidersPage {
    page: Layout,
    rows: Vec<ProviderRow>,
}

async fn by_provider(
    state: &AppState,
    since: i64,
    until: i64,
) -> Result<HashMap<String, UsagePoint>, crate::store::StoreError> {
    let points = state
        .store
        .usage_series(
            &TenantScope::default(),
            since,
            until,
            until - since,
            SeriesSplit::Provider,
        )
        .await?;
    let mut totals: HashMap<String, UsagePoint> = HashMap::new();
    for point in points {
        let entry = totals
            .entry(point.group.clone().unwrap_or_default())
            .or_default();
        entry.requests += point.requests;
        entry.errors += point.errors;
        entry.latency_ms_sum += point.latency_ms_sum;
    }
    Ok(totals)
}

/// `GET /dashboard/providers`.
pub(crate) async fn page(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
) -> Response {
    if !signed_in.actor.is_instance_wide() {
        return problem(
            Some(&signed_in),
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Only an instance-wide admin credential may read provider settings.",
        );
    }
    let now = crate::time::now_ms();
    let until = now.div_euclid(ROLLUP_BUCKET_MS) * ROLLUP_BUCKET_MS + ROLLUP_BUCKET_MS;
    let (hour, day) = match tokio::try_join!(
        by_provider(&state, until - ROLLUP_BUCKET_MS, until),
        by_provider(&state, until - 24 * ROLLUP_BUCKET_MS, until)
    ) {
        Ok(totals) => totals,
        Err(error) => return store_failed(&signed_in, error),
    };
    let empty = UsagePoint::default();
    let rows = state
        .registry
        .providers()
        .iter()
        .map(|provider| {
            let health = provider.health(now);
            let cooled_keys = health
                .keys_cooled_until_ms
                .iter()
                .filter(|k| k.is_some())
                .count();
            // (shown name, CSS class, note)
            let (state_name, state_class, note) = match health.cooled_until_ms {
                Some(until) => (
                    "cooling down",
                    "cooling-down",
                    format!("tried last until {}", format::time(until)),
                ),
                None if cooled_keys > 0 => (
                    "degraded",
                    "degraded",
                    format!("{cooled_keys} key(s) cooling down"),
                ),
                None => ("healthy", "healthy", String::new()),
            };
            let h = hour.get(&provider.name).unwrap_or(&empty);
            let d = day.get(&provider.name).unwrap_or(&empty);
            ProviderRow {
                name: provider.name.clone(),
                kind: format!("{:?}", provider.kind).to_lowercase(),
                base_url: health.base_url.clone(),
                weight: provider.weight,
                state: state_name,
                state_class,
                state_note: note,
                keys: format!(
                    "{} of {} available",
                    health.keys_cooled_until_ms.len() - cooled_keys,
                    health.keys_cooled_until_ms.len()
                ),
                requests_hour: format::thousands(h.requests),
                error_rate_hour: format::percent(h.errors, h.requests),
                latency_hour: format::mean_ms(h.latency_ms_sum, h.requests),
                requests_day: format::thousands(d.requests),
                error_rate_day: format::percent(d.errors, d.requests),
            }
        })
        .collect();
    render(&ProvidersPage {
        page: Layout::new(&signed_in, "Providers", "providers"),
        rows,
    })
}
