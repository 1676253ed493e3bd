//! `keygate usage`

use super::admin_client::AdminClient;
use super::output::print;
use super::{Format, Target};
use crate::store::UsageGroup;
use reqwest::Method;
use serde_json::Value;

/// Flags of `keygate usage`.
#[derive(Debug, clap::Args)]
pub struct UsageArgs {
    /// Totals per key, owner, project, model, provider or day (a calendar
    /// day in UTC); several, comma-separated (default: key,model).
    #[arg(long, value_enum, value_delimiter = ',')]
    by: Vec<UsageGroup>,
    /// Only this key.
    #[arg(long)]
    key: Option<String>,
    /// Only keys of this owner.
    #[arg(long)]
    owner: Option<String>,
    /// Only keys of this project (proj_…).
    #[arg(long)]
    project: Option<String>,
    /// Only this model, as requested.
    #[arg(long)]
    model: Option<String>,
    /// Only this provider.
    #[arg(long)]
    provider: Option<String>,
    /// From: RFC 3339 time or a duration back from now (24h).
    #[arg(long)]
    since: Option<String>,
    /// Until: RFC 3339 time or a duration back from now.
    #[arg(long)]
    until: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// The columns that name a row's group, in the order asked for.
fn group_columns(by: &[UsageGroup]) -> Vec<&'static str> {
    let mut columns = Vec::new();
    for group in by {
        let named: &[&str] = match group {
            UsageGroup::Key => &["key_id"],
            UsageGroup::Owner => &["org_id", "owner"],
            UsageGroup::Project => &["project_id"],
            UsageGroup::Model => &["model"],
            UsageGroup::Provider => &["provider"],
            UsageGroup::Day => &["day"],
        };
        for column in named {
            if !columns.contains(column) {
                columns.push(*column);
            }
        }
    }
    if columns.is_empty() {
        columns = vec!["key_id", "model"];
    }
    columns
}

pub(super) async fn run(args: UsageArgs, target: &Target) -> anyhow::Result<()> {
    let client = AdminClient::new(target)?;
    let by = (!args.by.is_empty()).then(|| {
        args.by
            .iter()
            .map(|g| g.name())
            .collect::<Vec<_>>()
            .join(",")
    });
    let query: Vec<(&str, &str)> = [
        ("by", &by),
        ("key_id", &args.key),
        ("owner", &args.owner),
        ("project_id", &args.project),
        ("model", &args.model),
        ("provider", &args.provider),
        ("since", &args.since),
        ("until", &args.until),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
    .collect();
    let totals = client.call(Method::GET, "/usage", &query, None).await?;
    let rows = totals["data"].as_array().cloned().unwrap_or_default();
    // People and spreadsheets read dollars to the nano, not `2.4e-6`.
    let shown: Vec<Value> = rows
        .iter()
        .cloned()
        .map(|mut row| {
            if let Some(usd) = row["cost_usd"].as_f64() {
                row["cost_usd"] = Value::String(format!("{usd:.9}"));
            }
            row
        })
        .collect();
    let mut columns = group_columns(&args.by);
    columns.extend([
        "requests",
        "errors",
        "prompt_tokens",
        "cached_tokens",
        "completion_tokens",
        "cost_usd",
    ]);
    print(args.format, &Value::Array(rows), &shown, &columns);
    Ok(())
}
