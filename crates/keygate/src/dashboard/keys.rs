//! Keys: a filtered, sorted list a page at a time (with age, idle,
//! near-budget and anomaly flags), one key's details and policy, and the
//! changes — create (the secret shown once, with a copy button), rotate,
//! revoke, suspend, resume, policy edits — made through the admin API.

use super::actions::{self, Answer};
use super::overview::scope_of;
use super::session::Peer;
use super::{format, problem, render, store_failed, Layout, SignedIn};
use crate::auth::KeyKind;
use crate::policy::limits::Subject;
use crate::server::AppState;
use crate::store::{KeyPageQuery, KeySort, KeyState};
use askama::Template;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

/// Keys per page.
const PAGE_SIZE: i64 = 50;
/// A key unused this long (or never used and this old) is flagged idle.
const IDLE_MS: i64 = 30 * 86_400_000;
/// Anomaly alerts this recent flag their key.
const ANOMALY_RECENT_MS: i64 = 7 * 86_400_000;
/// How many recent alerts are read to find them.
const ANOMALY_ALERTS_READ: i64 = 1000;

/// `?q=&state=&sort=&after=` of the list.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    q: Option<String>,
    state: Option<String>,
    sort: Option<String>,
    after: Option<String>,
}

/// One row of the list.
pub(crate) struct KeyRow {
    pub id: String,
    pub name: String,
    pub owner: String,
    pub project: String,
    pub env: String,
    pub status: &'static str,
    pub created: String,
    pub secret_age_days: i64,
    pub last_used: String,
    pub spend_month: String,
    pub flags: Vec<&'static str>,
}

#[derive(Template)]
#[template(path = "dashboard/keys.html")]
struct KeysPage {
    page: Layout,
    rows: Vec<KeyRow>,
    q: String,
    state: String,
    sort: String,
    next: Option<String>,
    counts: crate::store::KeyCounts,
    environments: Vec<String>,
    can_set_owner: bool,
}

fn parse_state(text: Option<&str>) -> Option<KeyState> {
    match text {
        Some("active") => Some(KeyState::Active),
        Some("suspended") => Some(KeyState::Suspended),
        Some("revoked") => Some(KeyState::Revoked),
        Some("expired") => Some(KeyState::Expired),
        _ => None,
    }
}

fn parse_sort(text: Option<&str>) -> KeySort {
    match text {
        Some("oldest") => KeySort::OldestSecret,
        Some("name") => KeySort::Name,
        _ => KeySort::Newest,
    }
}

fn status(record: &crate::store::KeyRecord, now: i64) -> &'static str {
    if record.revoked_at.is_some() {
        "revoked"
    } else if record.suspended_at.is_some() {
        "suspended"
    } else if record.expires_at.is_some_and(|t| t <= now) {
        "expired"
    } else {
        "active"
    }
}

/// `GET /dashboard/keys`.
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    match list_page(&state, &signed_in, query).await {
        Ok(page) => render(&page),
        Err(error) => store_failed(&signed_in, error),
    }
}

async fn list_page(
    state: &AppState,
    signed_in: &SignedIn,
    query: ListQuery,
) -> Result<KeysPage, crate::store::StoreError> {
    let now = crate::time::now_ms();
    let search = query
        .q
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(|q| q.chars().take(128).collect::<String>());
    let key_state = parse_state(query.state.as_deref());
    let sort = parse_sort(query.sort.as_deref());
    let scope = scope_of(signed_in);
    let page = state
        .store
        .key_page(&KeyPageQuery {
            kind: KeyKind::Data,
            scope: scope.clone(),
            search: search.clone(),
            state: key_state,
            sort,
            after: query.after.clone().filter(|a| a.len() <= 512),
            limit: PAGE_SIZE,
            now,
        })
        .await?;
    let counts = state.store.key_counts(KeyKind::Data, &scope, now).await?;
    let ids: Vec<String> = page.keys.iter().map(|k| k.id.clone()).collect();
    let month_start =
        crate::policy::period::window(crate::policy::limits::Period::Month, now, chrono_tz::UTC)
            .since_ms;
    let activity = state.store.key_activity(&ids, month_start).await?;
    let odd = keys_with_recent_anomalies(state, now).await?;
    let policy_ms = i64::try_from(state.config.rotation_policy.as_millis()).unwrap_or(i64::MAX);
    let tz = state.config.limits.timezone;
    let mut rows = Vec::with_capacity(page.keys.len());
    for record in &page.keys {
        let used = activity.get(&record.id);
        let issued = record.rotated_at.unwrap_or(record.created_at);
        let status = status(record, now);
        let mut flags = Vec::new();
        if status == "active" {
            if now - issued >= policy_ms {
                flags.push("rotation due");
            }
            let last = used.and_then(|a| a.last_used).unwrap_or(record.created_at);
            if now - last >= IDLE_MS {
                flags.push("idle");
            }
            if let Some(budget) = &record.limits.budget {
                let window = crate::policy::period::window(budget.period, now, tz);
                let spent = state
                    .store
                    .spent_since(&Subject::Key(record.id.clone()), window.since_ms)
                    .await?;
                if budget.limit > 0 && i128::from(spent) * 100 >= i128::from(budget.limit) * 80 {
                    flags.push("near budget");
                }
            }
            if odd.contains(&record.id) {
                flags.push("anomaly");
            }
        }
        rows.push(KeyRow {
            id: record.id.clone(),
            name: record.name.clone(),
            owner: record.owner.clone().unwrap_or_default(),
            project: record.project_id.clone().unwrap_or_default(),
            env: record.env.clone(),
            status,
            created: format::time(record.created_at),
            secret_age_days: format::days(issued, now),
            last_used: used
                .and_then(|a| a.last_used)
                .map(format::time)
                .unwrap_or_else(|| "never".to_string()),
            spend_month: format::usd(used.map(|a| a.cost_nanos).unwrap_or(0)),
            flags,
        });
    }
    let role = signed_in.actor.role;
    Ok(KeysPage {
        page: Layout::new(signed_in, "Keys", "keys"),
        rows,
        q: search.unwrap_or_default(),
        state: query.state.unwrap_or_default(),
        sort: query.sort.unwrap_or_default(),
        next: page.next,
        counts,
        environments: state.config.environments.clone(),
        can_set_owner: role >= crate::admin::Role::Admin,
    })
}

/// Keys named by an anomaly alert of the last week.
async fn keys_with_recent_anomalies(
    state: &AppState,
    now: i64,
) -> Result<HashSet<String>, crate::store::StoreError> {
    Ok(state
        .store
        .recent_alerts(ANOMALY_ALERTS_READ)
        .await?
        .into_iter()
        .filter(|a| a.kind.starts_with("anomaly.") && now - a.created_at <= ANOMALY_RECENT_MS)
        .filter_map(|a| a.subject)
        .collect())
}

/// A key id from a URL: the form keygate issues, nothing that could walk
/// the admin API's paths.
fn checked_id(id: &str) -> Option<&str> {
    (id.len() <= 80 && !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .then_some(id)
}

fn no_such_key(signed_in: &SignedIn) -> Response {
    problem(
        Some(signed_in),
        StatusCode::NOT_FOUND,
        "No such key",
        "There is no such key.",
    )
}

fn unreadable_form(signed_in: &SignedIn) -> Response {
    problem(
        Some(signed_in),
        StatusCode::BAD_REQUEST,
        "Form not understood",
        "The form could not be read.",
    )
}

/// The create and policy forms (every field optional; blank = not set).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct KeyForm {
    name: Option<String>,
    env: Option<String>,
    models: Option<String>,
    scopes: Option<String>,
    allow_ips: Option<String>,
    description: Option<String>,
    owner: Option<String>,
    project: Option<String>,
    expires: Option<String>,
    rpm: Option<String>,
    tpm: Option<String>,
    max_concurrent: Option<String>,
    budget_usd: Option<String>,
    budget_period: Option<String>,
    /// Which part of a key's policy a form edits: `access` or `limits`.
    section: Option<String>,
}

fn blank(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// A comma- or newline-separated list.
fn list_field(value: &Option<String>) -> Vec<Value> {
    blank(value)
        .map(|v| {
            v.split([',', '\n'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// A whole number, or a message naming the field.
fn whole(name: &str, value: &Option<String>) -> Result<Option<Value>, String> {
    match blank(value) {
        None => Ok(None),
        Some(text) => text
            .replace([',', '_'], "")
            .parse::<u64>()
            .map(|n| Some(json!(n)))
            .map_err(|_| format!("{name} must be a whole number.")),
    }
}

fn dollars(value: &Option<String>) -> Result<Option<Value>, String> {
    match blank(value) {
        None => Ok(None),
        Some(text) => text
            .trim_start_matches('$')
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(|v| Some(json!(v)))
            .ok_or_else(|| "The budget must be an amount in US dollars.".to_string()),
    }
}

/// The admin API's create body from the form.
fn create_body(form: &KeyForm) -> Result<Value, String> {
    let mut body = Map::new();
    body.insert(
        "name".into(),
        json!(blank(&form.name).ok_or("A key needs a name.")?),
    );
    for (field, value) in [
        ("env", &form.env),
        ("description", &form.description),
        ("owner", &form.owner),
        ("project", &form.project),
        ("expires", &form.expires),
    ] {
        if let Some(v) = blank(value) {
            body.insert(field.into(), json!(v));
        }
    }
    for (field, value) in [
        ("models", &form.models),
        ("scopes", &form.scopes),
        ("allow_ips", &form.allow_ips),
    ] {
        let items = list_field(value);
        if !items.is_empty() {
            body.insert(field.into(), Value::Array(items));
        }
    }
    for (field, value) in [
        ("rpm", &form.rpm),
        ("tpm", &form.tpm),
        ("max_concurrent", &form.max_concurrent),
    ] {
        if let Some(n) = whole(field, value)? {
            body.insert(field.into(), n);
        }
    }
    if let Some(budget) = dollars(&form.budget_usd)? {
        body.insert("budget_usd".into(), budget);
        if let Some(period) = blank(&form.budget_period) {
            body.insert("budget_period".into(), json!(period));
        }
    }
    Ok(Value::Object(body))
}

/// The admin API's update body for one section of the policy form: blank
/// fields clear (every model, every route, any network, no limit).
fn update_body(form: &KeyForm) -> Result<Value, String> {
    let mut body = Map::new();
    match form.section.as_deref() {
        Some("access") => {
            for (field, value) in [
                ("models", &form.models),
                ("scopes", &form.scopes),
                ("allow_ips", &form.allow_ips),
            ] {
                body.insert(field.into(), Value::Array(list_field(value)));
            }
            body.insert(
                "description".into(),
                blank(&form.description).map_or(Value::Null, |d| json!(d)),
            );
        }
        Some("limits") => {
            for (field, value) in [
                ("rpm", &form.rpm),
                ("tpm", &form.tpm),
                ("max_concurrent", &form.max_concurrent),
            ] {
                body.insert(field.into(), whole(field, value)?.unwrap_or(Value::Null));
            }
            let budget = dollars(&form.budget_usd)?;
            if budget.is_some() {
                if let Some(period) = blank(&form.budget_period) {
                    body.insert("budget_period".into(), json!(period));
                }
            }
            body.insert("budget_usd".into(), budget.unwrap_or(Value::Null));
        }
        _ => return Err("The form does not say what it changes.".to_string()),
    }
    Ok(Value::Object(body))
}

/// The page that shows a new secret, once.
#[derive(Template)]
#[template(path = "dashboard/key_secret.html")]
struct SecretPage {
    page: Layout,
    id: String,
    name: String,
    secret: String,
    note: String,
}

fn refused(signed_in: &SignedIn, answer: &Answer) -> Response {
    let status = if answer.status.is_client_error() {
        answer.status
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let heading = match status {
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "No such key",
        _ => "Change refused",
    };
    problem(Some(signed_in), status, heading, answer.message())
}

fn secret_page(
    signed_in: &SignedIn,
    heading: &'static str,
    answer: &Answer,
    note: String,
) -> Response {
    let text = |field: &str| {
        answer
            .body
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    render(&SecretPage {
        page: Layout::new(signed_in, heading, "keys"),
        id: text("id"),
        name: text("name"),
        secret: text("key"),
        note,
    })
}

/// `POST /dashboard/keys`.
pub(crate) async fn create(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Peer(peer): Peer,
    form: Result<Form<KeyForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return unreadable_form(&signed_in);
    };
    let body = match create_body(&form) {
        Ok(body) => body,
        Err(message) => {
            return problem(
                Some(&signed_in),
                StatusCode::BAD_REQUEST,
                "Key not created",
                message,
            )
        }
    };
    let answer = actions::call(&state, &signed_in, peer, Method::POST, "/keys", Some(body)).await;
    if answer.status != StatusCode::CREATED && answer.status != StatusCode::OK {
        return refused(&signed_in, &answer);
    }
    secret_page(
        &signed_in,
        "Key created",
        &answer,
        "Copy the secret now: keygate keeps only a one-way hash of it and will never show it again.".to_string(),
    )
}

#[derive(Template)]
#[template(path = "dashboard/key.html")]
struct KeyPage {
    page: Layout,
    id: String,
    status: String,
    notice: Option<&'static str>,
    facts: Vec<(&'static str, String)>,
    models: String,
    scopes: String,
    allow_ips: String,
    description: String,
    rpm: String,
    tpm: String,
    max_concurrent: String,
    budget_usd: String,
    budget_period: String,
    requests_month: String,
    spend_month: String,
    can_change: bool,
    can_set_limits: bool,
}

/// `?done=` after a change.
#[derive(Deserialize)]
pub(crate) struct ShowQuery {
    done: Option<String>,
}

fn joined(value: &Value, field: &str) -> String {
    value
        .get(field)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn field_text(value: &Value, field: &str) -> String {
    match value.get(field) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// `GET /dashboard/keys/{id}`: the admin API's view of the key (so scope
/// and visibility are the API's), never its secret.
pub(crate) async fn show(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Path(id): Path<String>,
    query: Result<Query<ShowQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(id) = checked_id(&id) else {
        return no_such_key(&signed_in);
    };
    let answer = actions::call(
        &state,
        &signed_in,
        None,
        Method::GET,
        &format!("/keys/{id}"),
        None,
    )
    .await;
    if answer.status != StatusCode::OK {
        return refused(&signed_in, &answer);
    }
    let key = answer.body;
    let now = crate::time::now_ms();
    let month_start =
        crate::policy::period::window(crate::policy::limits::Period::Month, now, chrono_tz::UTC)
            .since_ms;
    let activity: HashMap<_, _> = match state
        .store
        .key_activity(&[id.to_string()], month_start)
        .await
    {
        Ok(activity) => activity,
        Err(error) => return store_failed(&signed_in, error),
    };
    let used = activity.get(id).cloned().unwrap_or_default();
    let notice = match query.ok().and_then(|Query(q)| q.done).as_deref() {
        Some("revoked") => Some("The key is revoked: every node refuses it within a second."),
        Some("suspended") => Some("The key is suspended until it is resumed."),
        Some("resumed") => Some("The key is active again."),
        Some("updated") => Some("The key's policy is saved."),
        _ => None,
    };
    let facts = [
        ("Id", "id"),
        ("Kind", "kind"),
        ("Environment", "env"),
        ("Status", "status"),
        ("Owner", "owner"),
        ("Organisation", "org_id"),
        ("Project", "project_id"),
        ("Secret ends in", "hint"),
        ("Created", "created_at"),
        ("Secret rotated", "rotated_at"),
        ("Secret age (days)", "secret_age_days"),
        ("Rotation due", "rotation_due"),
        ("Previous secret works until", "previous_secret_expires_at"),
        ("Expires", "expires_at"),
        ("Suspended", "suspended_at"),
        ("Revoked", "revoked_at"),
        ("Revocation reason", "revoke_reason"),
        ("Last used", "last_used_at"),
        ("Last source address", "last_source_ip"),
    ]
    .into_iter()
    .map(|(label, field)| (label, field_text(&key, field)))
    .filter(|(_, value)| !value.is_empty())
    .collect();
    let can_change = signed_in.actor.role >= crate::admin::Role::Admin
        || (signed_in.actor.role == crate::admin::Role::Member
            && key.get("owner").and_then(Value::as_str) == Some(signed_in.actor.identity.as_str()));
    let status = field_text(&key, "status");
    render(&KeyPage {
        page: Layout::new(
            &signed_in,
            format!("Key {}", field_text(&key, "name")),
            "keys",
        ),
        id: id.to_string(),
        status,
        notice,
        facts,
        models: joined(&key, "models"),
        scopes: joined(&key, "scopes"),
        allow_ips: joined(&key, "allow_ips"),
        description: field_text(&key, "description"),
        rpm: field_text(&key, "rpm"),
        tpm: field_text(&key, "tpm"),
        max_concurrent: field_text(&key, "max_concurrent"),
        budget_usd: field_text(&key, "budget_usd"),
        budget_period: field_text(&key, "budget_period"),
        requests_month: format::thousands(used.requests),
        spend_month: format::usd(used.cost_nanos),
        can_change,
        can_set_limits: signed_in.actor.role >= crate::admin::Role::Admin,
    })
}

/// `POST /dashboard/keys/{id}`: save one section of the policy.
pub(crate) async fn update_policy(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Peer(peer): Peer,
    Path(id): Path<String>,
    form: Result<Form<KeyForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Some(id) = checked_id(&id) else {
        return no_such_key(&signed_in);
    };
    let Ok(Form(form)) = form else {
        return unreadable_form(&signed_in);
    };
    let body = match update_body(&form) {
        Ok(body) => body,
        Err(message) => {
            return problem(
                Some(&signed_in),
                StatusCode::BAD_REQUEST,
                "Policy not saved",
                message,
            )
        }
    };
    let answer = actions::call(
        &state,
        &signed_in,
        peer,
        Method::PATCH,
        &format!("/keys/{id}"),
        Some(body),
    )
    .await;
    if answer.status != StatusCode::OK {
        return refused(&signed_in, &answer);
    }
    Redirect::to(&format!("/dashboard/keys/{id}?done=updated")).into_response()
}

/// The rotate and revoke forms.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ChangeForm {
    grace: Option<String>,
    reason: Option<String>,
}

/// `POST /dashboard/keys/{id}/rotate`: a new secret, shown once.
pub(crate) async fn rotate(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Peer(peer): Peer,
    Path(id): Path<String>,
    form: Result<Form<ChangeForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Some(id) = checked_id(&id) else {
        return no_such_key(&signed_in);
    };
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let grace = blank(&form.grace).unwrap_or("24h").to_string();
    let answer = actions::call(
        &state,
        &signed_in,
        peer,
        Method::POST,
        &format!("/keys/{id}/rotate"),
        Some(json!({ "grace": grace })),
    )
    .await;
    if answer.status != StatusCode::OK && answer.status != StatusCode::CREATED {
        return refused(&signed_in, &answer);
    }
    let until = answer
        .body
        .get("previous_secret_expires_at")
        .and_then(Value::as_str)
        .map(|t| format!("The previous secret keeps working until {t}."))
        .unwrap_or_else(|| "The previous secret no longer works.".to_string());
    secret_page(
        &signed_in,
        "Key rotated",
        &answer,
        format!("Copy the new secret now; it is never shown again. {until}"),
    )
}

async fn simple_change(
    state: &AppState,
    signed_in: &SignedIn,
    peer: Option<ConnectInfo<SocketAddr>>,
    id: &str,
    verb: &str,
    body: Value,
    done: &str,
) -> Response {
    let Some(id) = checked_id(id) else {
        return no_such_key(signed_in);
    };
    let answer = actions::call(
        state,
        signed_in,
        peer,
        Method::POST,
        &format!("/keys/{id}/{verb}"),
        Some(body),
    )
    .await;
    if !answer.status.is_success() {
        return refused(signed_in, &answer);
    }
    Redirect::to(&format!("/dashboard/keys/{id}?done={done}")).into_response()
}

/// `POST /dashboard/keys/{id}/revoke`.
pub(crate) async fn revoke(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Peer(peer): Peer,
    Path(id): Path<String>,
    form: Result<Form<ChangeForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let body = match blank(&form.reason) {
        Some(reason) => json!({ "reason": reason }),
        None => json!({}),
    };
    simple_change(&state, &signed_in, peer, &id, "revoke", body, "revoked").await
}

/// `POST /dashboard/keys/{id}/suspend`.
pub(crate) async fn suspend(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Peer(peer): Peer,
    Path(id): Path<String>,
) -> Response {
    simple_change(
        &state,
        &signed_in,
        peer,
        &id,
        "suspend",
        json!({}),
        "suspended",
    )
    .await
}

/// `POST /dashboard/keys/{id}/resume`.
pub(crate) async fn resume(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Peer(peer): Peer,
    Path(id): Path<String>,
) -> Response {
    simple_change(
        &state,
        &signed_in,
        peer,
        &id,
        "resume",
        json!({}),
        "resumed",
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_become_admin_bodies() {
        let form = KeyForm {
            name: Some(" ci ".into()),
            models: Some("gpt-*, claude-*\n".into()),
            rpm: Some("1,000".into()),
            budget_usd: Some("$25".into()),
            budget_period: Some("day".into()),
            ..KeyForm::default()
        };
        let body = create_body(&form).unwrap();
        assert_eq!(body["name"], "ci");
        assert_eq!(body["models"], json!(["gpt-*", "claude-*"]));
        assert_eq!(body["rpm"], 1000);
        assert_eq!(body["budget_usd"], 25.0);
        assert_eq!(body["budget_period"], "day");
        assert!(body.get("scopes").is_none());
        assert!(create_body(&KeyForm::default()).is_err());
        let bad = KeyForm {
            name: Some("x".into()),
            rpm: Some("lots".into()),
            ..KeyForm::default()
        };
        assert_eq!(
            create_body(&bad).unwrap_err(),
            "rpm must be a whole number."
        );
        let limits = KeyForm {
            section: Some("limits".into()),
            tpm: Some("5".into()),
            ..KeyForm::default()
        };
        let body = update_body(&limits).unwrap();
        assert_eq!(body["tpm"], 5);
        assert_eq!(body["rpm"], Value::Null, "a blank limit clears it");
        assert!(update_body(&KeyForm::default()).is_err());
    }

    #[test]
    fn only_issued_ids_reach_the_admin_api() {
        assert_eq!(checked_id("key_abc123"), Some("key_abc123"));
        for hostile in ["", "../audit", "key/1", "key%2F1", "k ey", &"k".repeat(81)] {
            assert_eq!(checked_id(hostile), None, "{hostile}");
        }
    }
}
