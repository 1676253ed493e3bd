//! What an anomaly does to its key: `alert` (the default) only raises the
//! alert; `suspend` also suspends the key (store and this node's cache at
//! once, the other nodes within their key refresh), writes `key.suspend` to
//! the audit log with actor `anomaly`, and says so in the alert. A key's own
//! policy wins; a key without one follows its project's; a project without
//! one alerts.

use crate::auth::KeyCache;
use crate::store::{AuditEvent, KeyRecord, Store, StoreError};
use serde::{Deserialize, Serialize};

/// The policy of a key or a project.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum OnAnomaly {
    /// Raise an alert.
    Alert,
    /// Raise an alert and suspend the key.
    Suspend,
}

impl OnAnomaly {
    /// The stored and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            OnAnomaly::Alert => "alert",
            OnAnomaly::Suspend => "suspend",
        }
    }

    /// Parse a stored name.
    pub fn parse(name: &str) -> Option<OnAnomaly> {
        match name {
            "alert" => Some(OnAnomaly::Alert),
            "suspend" => Some(OnAnomaly::Suspend),
            _ => None,
        }
    }
}

/// What was done about an anomaly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Alerted only (the policy, or the key is gone).
    Alerted,
    /// The key was suspended now.
    Suspended,
    /// The key's policy is `suspend` and it was suspended already.
    AlreadySuspended,
}

impl Action {
    /// Name in alert details.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Alerted => "alerted",
            Action::Suspended => "suspended",
            Action::AlreadySuspended => "already_suspended",
        }
    }
}

/// The policy in force for `key`: its own, else its project's, else alert.
pub async fn policy_of(store: &dyn Store, key: &KeyRecord) -> Result<OnAnomaly, StoreError> {
    if let Some(own) = key.on_anomaly {
        return Ok(own);
    }
    let Some(project_id) = &key.project_id else {
        return Ok(OnAnomaly::Alert);
    };
    Ok(store
        .get_project(project_id)
        .await?
        .and_then(|p| p.on_anomaly)
        .unwrap_or(OnAnomaly::Alert))
}

/// Apply the policy of `key_id` to an anomaly of `kind` found at `now`;
/// returns the key (when it exists) and what was done.
pub async fn apply(
    store: &dyn Store,
    keys: &KeyCache,
    key_id: &str,
    kind: &str,
    now: i64,
) -> Result<(Option<KeyRecord>, Action), StoreError> {
    let Some(record) = store.get_key(key_id).await? else {
        return Ok((None, Action::Alerted));
    };
    if record.revoked_at.is_some() || policy_of(store, &record).await? != OnAnomaly::Suspend {
        return Ok((Some(record), Action::Alerted));
    }
    if record.suspended_at.is_some() {
        return Ok((Some(record), Action::AlreadySuspended));
    }
    let Some(suspended) = store.set_suspended(key_id, Some(now), now).await? else {
        // Revoked meanwhile.
        return Ok((Some(record), Action::Alerted));
    };
    keys.upsert(&suspended);
    store
        .append_audit(&AuditEvent {
            ts: now,
            actor: "anomaly".into(),
            action: "key.suspend".into(),
            target: Some(key_id.to_string()),
            source_ip: None,
            status: 200,
            fields: vec![kind.to_string()],
        })
        .await?;
    tracing::warn!(key_id, kind, "key suspended automatically after an anomaly");
    Ok((Some(suspended), Action::Suspended))
}
