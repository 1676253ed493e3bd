//! `keygate usage`

use super::admin_client::AdminClient;
use super::output::print;
use super::{Format, Target};
use reqwest::Method;
use serde_json::Value;

/// Flags of `keygate usage`.
#[derive(Debug, clap::Args)]
pub struct UsageArgs {
    /// Only this key.
    #[arg(long)]
    key: Option<String>,
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

pub(super) async fn run(args: UsageArgs, target: &Target) -> anyhow::Result<()> {
    let client = AdminClient::new(target)?;
    let query: Vec<(&str, &str)> = [
        ("key_id", &args.key),
        ("since", &args.since),
        ("until", &args.until),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
    .collect();
    let totals = client.call(Method::GET, "/usage", &query, None).await?;
    let rows = totals["data"].as_array().cloned().unwrap_or_default();
    print(
        args.format,
        &Value::Array(rows.clone()),
        &rows,
        &[
            "key_id",
            "model",
            "requests",
            "errors",
            "prompt_tokens",
            "completion_tokens",
        ],
    );
    Ok(())
}
