//! The audit log, newest first, filtered by actor, action or target, a
//! page at a time. Like `GET /admin/v1/audit`, it needs an instance-wide
//! credential.

use super::{format, problem, render, store_failed, Layout, SignedIn};
use crate::server::AppState;
use crate::store::AuditFilter;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use serde::Deserialize;

/// Entries per page.
const PAGE_SIZE: i64 = 100;

/// `?actor=&action=&target=&before=`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    /// Only entries before this Unix ms (the next page's cursor).
    before: Option<i64>,
}

/// One entry as shown.
pub(crate) struct AuditRow {
    pub when: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub source_ip: String,
    pub status: u16,
    pub fields: String,
}

#[derive(Template)]
#[template(path = "dashboard/audit.html")]
struct AuditPage {
    page: Layout,
    rows: Vec<AuditRow>,
    actor: String,
    action: String,
    target: String,
    next: Option<String>,
}

fn text(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| v.chars().take(256).collect())
}

/// `GET /dashboard/audit`.
pub(crate) async fn page(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if !signed_in.actor.is_instance_wide() {
        return problem(
            Some(&signed_in),
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Only an instance-wide admin credential may read the audit log.",
        );
    }
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let filter = AuditFilter {
        actor: text(&query.actor),
        action: text(&query.action),
        target: text(&query.target),
        since: None,
        until: query.before,
    };
    let events = match state.store.audit_events(&filter, PAGE_SIZE + 1).await {
        Ok(events) => events,
        Err(error) => return store_failed(&signed_in, error),
    };
    let next = (events.len() as i64 > PAGE_SIZE)
        .then(|| events.get(PAGE_SIZE as usize - 1).map(|e| e.ts))
        .flatten()
        .map(|before| {
            let mut query = form_urlencoded::Serializer::new(String::new());
            for (name, value) in [
                ("actor", &filter.actor),
                ("action", &filter.action),
                ("target", &filter.target),
            ] {
                if let Some(value) = value {
                    query.append_pair(name, value);
                }
            }
            query.append_pair("before", &before.to_string());
            query.finish()
        });
    let rows = events
        .into_iter()
        .take(PAGE_SIZE as usize)
        .map(|e| AuditRow {
            when: format::time(e.ts),
            actor: e.actor,
            action: e.action,
            target: e.target.unwrap_or_default(),
            source_ip: e.source_ip.unwrap_or_default(),
            status: e.status,
            fields: e.fields.join(", "),
        })
        .collect();
    render(&AuditPage {
        page: Layout::new(&signed_in, "Audit log", "audit"),
        rows,
        actor: filter.actor.unwrap_or_default(),
        action: filter.action.unwrap_or_default(),
        target: filter.target.unwrap_or_default(),
        next,
    })
}
