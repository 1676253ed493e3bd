//! The overview: spend today and this month against budgets, requests,
//! error rate and latency (a fragment htmx refreshes every few seconds),
//! and charts over time by provider, model or project (JSON for uPlot,
//! refetched by `dashboard.js`). Everything reads the hourly rollup.

use super::{format, render, store_failed, Layout, SignedIn};
use crate::server::AppState;
use crate::store::{SeriesSplit, TenantScope, UsagePoint, ROLLUP_BUCKET_MS};
use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The signed-in credential's scope, as the store filters by it.
pub(crate) fn scope_of(signed_in: &SignedIn) -> TenantScope {
    TenantScope {
        org_id: signed_in.actor.org_id.clone(),
        project_id: signed_in.actor.project_id.clone(),
    }
}

fn floor_hour(ms: i64) -> i64 {
    ms.div_euclid(ROLLUP_BUCKET_MS) * ROLLUP_BUCKET_MS
}

fn ceil_hour(ms: i64) -> i64 {
    floor_hour(ms) + ROLLUP_BUCKET_MS
}

/// One headline figure.
pub(crate) struct Tile {
    pub label: &'static str,
    pub value: String,
    pub note: String,
}

/// A budget and how much of it is spent.
pub(crate) struct BudgetRow {
    pub subject: String,
    pub period: String,
    pub spent: String,
    pub limit: String,
    pub percent: i64,
    pub state: &'static str,
}

#[derive(Template)]
#[template(path = "dashboard/overview.html")]
struct OverviewPage {
    page: Layout,
    live: Live,
}

#[derive(Template)]
#[template(path = "dashboard/overview_live.html")]
struct Live {
    tiles: Vec<Tile>,
    budgets: Vec<BudgetRow>,
    updated: String,
}

async fn live_figures(
    state: &AppState,
    signed_in: &SignedIn,
) -> Result<Live, crate::store::StoreError> {
    let scope = scope_of(signed_in);
    let now = crate::time::now_ms();
    let until = ceil_hour(now);
    let day_start = now.div_euclid(86_400_000) * 86_400_000;
    let month_start =
        crate::policy::period::window(crate::policy::limits::Period::Month, now, chrono_tz::UTC)
            .since_ms;
    let today = state.store.usage_summary(&scope, day_start, until).await?;
    let month = state
        .store
        .usage_summary(&scope, floor_hour(month_start), until)
        .await?;
    let last_day = state
        .store
        .usage_summary(&scope, floor_hour(now - 86_400_000), until)
        .await?;
    let tiles = vec![
        Tile {
            label: "Spend today",
            value: format::usd(today.cost_nanos),
            note: format!("{} requests (UTC day)", format::thousands(today.requests)),
        },
        Tile {
            label: "Spend this month",
            value: format::usd(month.cost_nanos),
            note: format!("{} requests", format::thousands(month.requests)),
        },
        Tile {
            label: "Requests, last 24 h",
            value: format::thousands(last_day.requests),
            note: format!(
                "{} tokens",
                format::thousands(last_day.prompt_tokens + last_day.completion_tokens)
            ),
        },
        Tile {
            label: "Error rate, last 24 h",
            value: format::percent(last_day.errors, last_day.requests),
            note: format!("{} refused or failed", format::thousands(last_day.errors)),
        },
        Tile {
            label: "Mean latency, last 24 h",
            value: format::mean_ms(last_day.latency_ms_sum, last_day.requests),
            note: "from request to last byte".to_string(),
        },
    ];
    Ok(Live {
        tiles,
        budgets: budgets(state, signed_in, now).await?,
        updated: format::time(now),
    })
}

/// The budgets over the signed-in scope: its organisations' (or its
/// project's), with what was spent in the current window.
async fn budgets(
    state: &AppState,
    signed_in: &SignedIn,
    now: i64,
) -> Result<Vec<BudgetRow>, crate::store::StoreError> {
    let actor = &signed_in.actor;
    let tz = state.config.limits.timezone;
    let mut subjects = Vec::new();
    if let Some(project_id) = &actor.project_id {
        if let Some(project) = state.store.get_project(project_id).await? {
            subjects.push((
                format!("project {}", project.name),
                project.limits.budget.clone(),
                TenantScope {
                    org_id: Some(project.org_id.clone()),
                    project_id: Some(project.id.clone()),
                },
            ));
        }
    } else {
        for org in state
            .store
            .list_organisations(actor.org_id.as_deref())
            .await?
            .into_iter()
            .take(50)
        {
            subjects.push((
                format!("organisation {}", org.name),
                org.limits.budget.clone(),
                TenantScope {
                    org_id: Some(org.id.clone()),
                    project_id: None,
                },
            ));
        }
    }
    let mut rows = Vec::new();
    for (name, budget, scope) in subjects {
        let Some(budget) = budget else { continue };
        let window = crate::policy::period::window(budget.period, now, tz);
        let spent = state
            .store
            .usage_summary(&scope, floor_hour(window.since_ms), ceil_hour(now))
            .await?
            .cost_nanos;
        let percent = if budget.limit > 0 {
            (i128::from(spent) * 100 / i128::from(budget.limit)).clamp(0, 999) as i64
        } else {
            100
        };
        rows.push(BudgetRow {
            subject: name,
            period: window.label.clone(),
            spent: format::usd(spent),
            limit: format::usd(budget.limit),
            percent,
            state: match percent {
                p if p >= 100 => "over",
                p if p >= 80 => "near",
                _ => "ok",
            },
        });
    }
    Ok(rows)
}

/// `GET /dashboard/overview`.
pub(crate) async fn page(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
) -> Response {
    match live_figures(&state, &signed_in).await {
        Ok(live) => render(&OverviewPage {
            page: Layout::new(&signed_in, "Overview", "overview"),
            live,
        }),
        Err(error) => store_failed(&signed_in, error),
    }
}

/// `GET /dashboard/overview/live`: the figures alone, for htmx.
pub(crate) async fn live(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
) -> Response {
    match live_figures(&state, &signed_in).await {
        Ok(live) => render(&live),
        Err(error) => store_failed(&signed_in, error),
    }
}

/// `?range=&split=&metric=` of the chart data.
#[derive(Deserialize)]
pub(crate) struct SeriesQuery {
    range: Option<String>,
    split: Option<String>,
    metric: Option<String>,
}

/// Chart data: bucket starts (Unix seconds, as uPlot wants them) and one
/// line per group.
#[derive(Serialize)]
pub(crate) struct Series {
    buckets: Vec<i64>,
    lines: Vec<Line>,
    metric: &'static str,
}

#[derive(Serialize)]
struct Line {
    name: String,
    values: Vec<f64>,
}

/// Most lines a chart draws; the rest are summed into `other`.
const MAX_LINES: usize = 8;

/// `GET /dashboard/overview/series`.
pub(crate) async fn series(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    query: Result<Query<SeriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or(SeriesQuery {
        range: None,
        split: None,
        metric: None,
    });
    let (span, bucket) = match query.range.as_deref() {
        Some("7d") => (7 * 86_400_000, 6 * ROLLUP_BUCKET_MS),
        Some("30d") => (30 * 86_400_000, 24 * ROLLUP_BUCKET_MS),
        _ => (86_400_000, ROLLUP_BUCKET_MS),
    };
    let split = match query.split.as_deref() {
        Some("model") => SeriesSplit::Model,
        Some("project") => SeriesSplit::Project,
        Some("total") => SeriesSplit::Total,
        _ => SeriesSplit::Provider,
    };
    let metric: (&'static str, fn(&UsagePoint) -> f64) = match query.metric.as_deref() {
        Some("requests") => ("requests", |p| p.requests as f64),
        Some("errors") => ("errors", |p| p.errors as f64),
        Some("tokens") => ("tokens", |p| (p.prompt_tokens + p.completion_tokens) as f64),
        _ => ("cost_usd", |p| {
            crate::policy::limits::nanos_to_usd(p.cost_nanos)
        }),
    };
    let now = crate::time::now_ms();
    let until = ceil_hour(now);
    let since = (until - span).div_euclid(bucket) * bucket;
    let points = match state
        .store
        .usage_series(&scope_of(&signed_in), since, until, bucket, split)
        .await
    {
        Ok(points) => points,
        Err(error) => return store_failed(&signed_in, error),
    };
    Json(shape_series(&points, since, until, bucket, metric)).into_response()
}

/// Lay points out on a full axis of buckets (absent buckets are zero), the
/// largest groups first, at most [`MAX_LINES`] of them.
fn shape_series(
    points: &[UsagePoint],
    since: i64,
    until: i64,
    bucket: i64,
    metric: (&'static str, fn(&UsagePoint) -> f64),
) -> Series {
    let (name, value) = metric;
    let count = usize::try_from((until - since).div_euclid(bucket).max(0)).unwrap_or(0);
    let buckets: Vec<i64> = (0..count)
        .map(|i| (since + i as i64 * bucket) / 1000)
        .collect();
    let mut by_group: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for point in points {
        let Ok(index) = usize::try_from((point.bucket_ms - since).div_euclid(bucket)) else {
            continue;
        };
        if index >= count {
            continue;
        }
        let group = point.group.clone().unwrap_or_else(|| "(none)".to_string());
        let line = by_group.entry(group).or_insert_with(|| vec![0.0; count]);
        line[index] += value(point);
    }
    let mut lines: Vec<Line> = by_group
        .into_iter()
        .map(|(name, values)| Line { name, values })
        .collect();
    lines.sort_by(|a, b| {
        let total = |l: &Line| l.values.iter().sum::<f64>();
        total(b).total_cmp(&total(a)).then(a.name.cmp(&b.name))
    });
    if lines.len() > MAX_LINES {
        let rest = lines.split_off(MAX_LINES - 1);
        let mut other = vec![0.0; count];
        for line in rest {
            for (sum, v) in other.iter_mut().zip(line.values) {
                *sum += v;
            }
        }
        lines.push(Line {
            name: "other".to_string(),
            values: other,
        });
    }
    Series {
        buckets,
        lines,
        metric: name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(bucket_ms: i64, group: &str, cost_nanos: i64) -> UsagePoint {
        UsagePoint {
            bucket_ms,
            group: Some(group.to_string()),
            cost_nanos,
            requests: 1,
            ..UsagePoint::default()
        }
    }

    #[test]
    fn series_fill_empty_buckets_and_fold_small_groups_into_other() {
        let hour = ROLLUP_BUCKET_MS;
        let mut points = vec![
            point(0, "a", 5_000_000_000),
            point(2 * hour, "b", 1_000_000_000),
        ];
        for i in 0..10 {
            points.push(point(hour, &format!("z{i}"), 1));
        }
        let series = shape_series(
            &points,
            0,
            3 * hour,
            hour,
            ("requests", |p| p.requests as f64),
        );
        assert_eq!(series.buckets, vec![0, 3600, 7200]);
        assert_eq!(series.lines.len(), MAX_LINES);
        assert_eq!(series.lines.last().map(|l| l.name.as_str()), Some("other"));
        let total: f64 = series.lines.iter().flat_map(|l| l.values.iter()).sum();
        assert_eq!(total, 12.0, "nothing is lost when groups are folded");
        let cost = shape_series(
            &points,
            0,
            3 * hour,
            hour,
            ("cost_usd", |p| {
                crate::policy::limits::nanos_to_usd(p.cost_nanos)
            }),
        );
        assert_eq!(cost.lines[0].name, "a");
        assert_eq!(cost.lines[0].values, vec![5.0, 0.0, 0.0]);
    }
}
