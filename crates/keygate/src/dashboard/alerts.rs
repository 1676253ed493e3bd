//! The alerts inbox: budget thresholds, anomalies, leak reports and key
//! reminders, newest first. A credential scoped to a tenant sees the
//! alerts about keys in its scope.

use super::{format, render, store_failed, Layout, SignedIn};
use crate::server::AppState;
use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use std::collections::HashMap;

/// How many recent alerts the inbox reads.
const INBOX: i64 = 200;

/// One alert as shown.
pub(crate) struct AlertRow {
    pub when: String,
    pub kind: String,
    pub subject: String,
    pub owner: String,
    pub message: String,
    pub severity: &'static str,
}

#[derive(Template)]
#[template(path = "dashboard/alerts.html")]
struct AlertsPage {
    page: Layout,
    rows: Vec<AlertRow>,
}

fn severity(kind: &str) -> &'static str {
    if kind.starts_with("leak.") || kind.starts_with("anomaly.") || kind.ends_with("exceeded") {
        "high"
    } else if kind.starts_with("budget.") {
        "medium"
    } else {
        "low"
    }
}

/// `GET /dashboard/alerts`.
pub(crate) async fn page(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
) -> Response {
    let alerts = match state.store.recent_alerts(INBOX).await {
        Ok(alerts) => alerts,
        Err(error) => return store_failed(&signed_in, error),
    };
    let actor = &signed_in.actor;
    // A tenant sees an alert when its subject is a key in its scope.
    let mut visible: HashMap<String, bool> = HashMap::new();
    let mut rows = Vec::new();
    for alert in alerts {
        if !actor.is_instance_wide() {
            let Some(subject) = alert.subject.clone() else {
                continue;
            };
            let seen = match visible.get(&subject) {
                Some(seen) => *seen,
                None => {
                    let seen = match state.store.get_key(&subject).await {
                        Ok(key) => key.is_some_and(|k| actor.sees_key(&k)),
                        Err(error) => return store_failed(&signed_in, error),
                    };
                    visible.insert(subject, seen);
                    seen
                }
            };
            if !seen {
                continue;
            }
        }
        rows.push(AlertRow {
            when: format::time(alert.created_at),
            severity: severity(&alert.kind),
            kind: alert.kind,
            subject: alert.subject.unwrap_or_default(),
            owner: alert.owner.unwrap_or_default(),
            message: alert.message,
        });
    }
    render(&AlertsPage {
        page: Layout::new(&signed_in, "Alerts", "alerts"),
        rows,
    })
}
