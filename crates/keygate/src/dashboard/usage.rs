//! The usage explorer: totals grouped and filtered over a time range, a
//! page at a time, highest spend first, and the same as CSV. Read from the
//! hourly rollup unless the key is asked for (then the ledger's indexes).

use super::{format, problem, render, store_failed, Layout, SignedIn};
use crate::server::AppState;
use crate::store::{UsageFilter, UsageGroup, UsageTotal, ROLLUP_BUCKET_MS};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;

/// Rows per page.
const PAGE_SIZE: i64 = 100;
/// Most rows one CSV export holds.
const CSV_ROWS: i64 = 100_000;
/// Longest range the explorer reads.
const MAX_RANGE_MS: i64 = 400 * 86_400_000;

/// `?by=&range=&since=&until=&provider=&model=&project=&owner=&key=&page=`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ExplorerQuery {
    by: Option<String>,
    range: Option<String>,
    since: Option<String>,
    until: Option<String>,
    provider: Option<String>,
    model: Option<String>,
    project: Option<String>,
    owner: Option<String>,
    key: Option<String>,
    page: Option<u32>,
}

/// A validated explorer request.
struct Explorer {
    by: Vec<UsageGroup>,
    filter: UsageFilter,
    offset: i64,
}

fn text(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| v.chars().take(256).collect())
}

fn floor_hour(ms: i64) -> i64 {
    ms.div_euclid(ROLLUP_BUCKET_MS) * ROLLUP_BUCKET_MS
}

/// A `YYYY-MM-DD` date (UTC midnight), in Unix ms.
fn date(text: &str) -> Option<i64> {
    chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

fn explorer(signed_in: &SignedIn, query: &ExplorerQuery) -> Result<Explorer, String> {
    let by = query
        .by
        .as_deref()
        .unwrap_or("provider")
        .split(',')
        .filter(|g| !g.is_empty())
        .map(|g| {
            UsageGroup::parse(g.trim())
                .ok_or_else(|| format!("Unknown grouping: {}", crate::error::printable(g)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if by.is_empty() || by.len() > 3 {
        return Err("Group by one to three of key, owner, project, model, provider, day.".into());
    }
    let now = crate::time::now_ms();
    let until = match query.until.as_deref().filter(|u| !u.is_empty()) {
        Some(u) => date(u).ok_or("The end date must look like 2026-11-29.")? + 86_400_000,
        None => floor_hour(now) + ROLLUP_BUCKET_MS,
    };
    let since = match query.since.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => date(s).ok_or("The start date must look like 2026-11-01.")?,
        None => {
            let span = match query.range.as_deref() {
                Some("7d") => 7 * 86_400_000,
                Some("30d") => 30 * 86_400_000,
                Some("90d") => 90 * 86_400_000,
                _ => 86_400_000,
            };
            floor_hour(until - span)
        }
    };
    if since >= until {
        return Err("The start must come before the end.".into());
    }
    if until - since > MAX_RANGE_MS {
        return Err("A range may cover at most 400 days.".into());
    }
    let page = i64::from(query.page.unwrap_or(1).clamp(1, 10_000));
    Ok(Explorer {
        by,
        filter: UsageFilter {
            key_id: text(&query.key),
            since: Some(since),
            until: Some(until),
            scope_org_id: signed_in.actor.org_id.clone(),
            scope_project_id: signed_in.actor.project_id.clone(),
            owner: text(&query.owner),
            project_id: text(&query.project),
            model: text(&query.model),
            provider: text(&query.provider),
        },
        offset: (page - 1) * PAGE_SIZE,
    })
}

/// One row as shown.
pub(crate) struct Row {
    pub group: Vec<String>,
    pub requests: String,
    pub errors: String,
    pub prompt_tokens: String,
    pub completion_tokens: String,
    pub cost: String,
}

fn group_values(total: &UsageTotal, by: &[UsageGroup]) -> Vec<String> {
    by.iter()
        .map(|group| {
            let value = match group {
                UsageGroup::Key => total.key_id.clone(),
                UsageGroup::Owner => total.owner.clone(),
                UsageGroup::Project => total.project_id.clone(),
                UsageGroup::Model => total.model.clone(),
                UsageGroup::Provider => total.provider.clone(),
                UsageGroup::Day => total.day.clone(),
            };
            value.unwrap_or_else(|| "(none)".to_string())
        })
        .collect()
}

#[derive(Template)]
#[template(path = "dashboard/usage.html")]
struct UsagePage {
    page: Layout,
    columns: Vec<&'static str>,
    rows: Vec<Row>,
    query: String,
    by: String,
    range: String,
    since: String,
    until: String,
    provider: String,
    model: String,
    project: String,
    owner: String,
    key: String,
    page_number: i64,
    has_next: bool,
    span: String,
}

fn query_string(query: &ExplorerQuery) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (name, value) in [
        ("by", &query.by),
        ("range", &query.range),
        ("since", &query.since),
        ("until", &query.until),
        ("provider", &query.provider),
        ("model", &query.model),
        ("project", &query.project),
        ("owner", &query.owner),
        ("key", &query.key),
    ] {
        if let Some(value) = text(value) {
            out.append_pair(name, &value);
        }
    }
    out.finish()
}

/// Check the request and read its rows: at most `limit`, from the page's
/// offset or (an export) from the first.
async fn read(
    state: &AppState,
    signed_in: &SignedIn,
    query: &ExplorerQuery,
    limit: i64,
    from_first: bool,
) -> Result<(Explorer, Vec<UsageTotal>), Response> {
    let explorer = explorer(signed_in, query)
        .map_err(|message| problem(Some(signed_in), StatusCode::BAD_REQUEST, "Usage", message))?;
    let offset = if from_first { 0 } else { explorer.offset };
    let totals = state
        .store
        .usage_explorer(&explorer.filter, &explorer.by, limit, offset)
        .await
        .map_err(|error| store_failed(signed_in, error))?;
    Ok((explorer, totals))
}

/// `GET /dashboard/usage`.
pub(crate) async fn page(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    query: Result<Query<ExplorerQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let (explorer, totals) = match read(&state, &signed_in, &query, PAGE_SIZE + 1, false).await {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    let has_next = totals.len() as i64 > PAGE_SIZE;
    let rows = totals
        .iter()
        .take(PAGE_SIZE as usize)
        .map(|t| Row {
            group: group_values(t, &explorer.by),
            requests: format::thousands(t.requests),
            errors: format::thousands(t.errors),
            prompt_tokens: format::thousands(t.prompt_tokens),
            completion_tokens: format::thousands(t.completion_tokens),
            cost: format::usd(t.cost_nanos),
        })
        .collect();
    let since = explorer.filter.since.unwrap_or_default();
    let until = explorer.filter.until.unwrap_or_default();
    let value = |v: &Option<String>| text(v).unwrap_or_default();
    render(&UsagePage {
        page: Layout::new(&signed_in, "Usage", "usage"),
        columns: explorer.by.iter().map(|g| g.name()).collect(),
        rows,
        query: query_string(&query),
        by: query.by.clone().unwrap_or_else(|| "provider".into()),
        range: query.range.clone().unwrap_or_else(|| "24h".into()),
        since: value(&query.since),
        until: value(&query.until),
        provider: value(&query.provider),
        model: value(&query.model),
        project: value(&query.project),
        owner: value(&query.owner),
        key: value(&query.key),
        page_number: explorer.offset / PAGE_SIZE + 1,
        has_next,
        span: format!("{} to {}", format::time(since), format::time(until)),
    })
}

/// A CSV cell that a spreadsheet will not run as a formula.
fn cell(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    }
}

/// `GET /dashboard/usage.csv`: the same rows, every page (up to a bound).
pub(crate) async fn csv(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    query: Result<Query<ExplorerQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let (explorer, totals) = match read(&state, &signed_in, &query, CSV_ROWS, true).await {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header_row: Vec<&str> = explorer.by.iter().map(|g| g.name()).collect();
    header_row.extend([
        "requests",
        "errors",
        "prompt_tokens",
        "cached_tokens",
        "completion_tokens",
        "cost_usd",
    ]);
    let mut written = writer.write_record(&header_row).is_ok();
    for total in &totals {
        let mut record: Vec<String> = group_values(total, &explorer.by)
            .iter()
            .map(|v| cell(v))
            .collect();
        record.extend([
            total.requests.to_string(),
            total.errors.to_string(),
            total.prompt_tokens.to_string(),
            total.cached_tokens.to_string(),
            total.completion_tokens.to_string(),
            format!("{:.9}", total.cost_usd),
        ]);
        written &= writer.write_record(&record).is_ok();
    }
    let Ok(bytes) = writer.into_inner() else {
        return problem(
            Some(&signed_in),
            StatusCode::SERVICE_UNAVAILABLE,
            "Usage",
            "The export could not be written.",
        );
    };
    if !written {
        return problem(
            Some(&signed_in),
            StatusCode::SERVICE_UNAVAILABLE,
            "Usage",
            "The export could not be written.",
        );
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"keygate-usage.csv\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn csv_cells_never_start_a_formula() {
        assert_eq!(cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("gpt-4o"), "gpt-4o");
    }
}
