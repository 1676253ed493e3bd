//! `keygate audit`

use super::admin_client::AdminClient;
use super::output::print;
use super::{Format, Target};
use reqwest::Method;
use serde_json::Value;

/// Flags of `keygate audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Only this actor (admin credential id, or `unknown`).
    #[arg(long)]
    actor: Option<String>,
    /// Only this action (`key.create`, `key.revoke`, `admin.sign_in_failed`, …).
    #[arg(long)]
    action: Option<String>,
    /// Only this target (key id or credential name).
    #[arg(long)]
    target: Option<String>,
    /// From: RFC 3339 time or a duration back from now (24h).
    #[arg(long)]
    since: Option<String>,
    /// Until: RFC 3339 time or a duration back from now.
    #[arg(long)]
    until: Option<String>,
    /// At most this many entries, newest first (default 100).
    #[arg(long)]
    limit: Option<u32>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub(super) async fn run(args: AuditArgs, target: &Target) -> anyhow::Result<()> {
    let client = AdminClient::new(target)?;
    let limit = args.limit.map(|n| n.to_string());
    let query: Vec<(&str, &str)> = [
        ("actor", &args.actor),
        ("action", &args.action),
        ("target", &args.target),
        ("since", &args.since),
        ("until", &args.until),
        ("limit", &limit),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
    .collect();
    let events = client.call(Method::GET, "/audit", &query, None).await?;
    let rows = events["data"].as_array().cloned().unwrap_or_default();
    print(
        args.format,
        &Value::Array(rows.clone()),
        &rows,
        &[
            "time",
            "actor",
            "action",
            "target",
            "source_ip",
            "status",
            "fields",
        ],
    );
    Ok(())
}
