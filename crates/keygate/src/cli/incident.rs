//! `keygate incident KEY_ID [--since TIME] [--replace] [--format json]`:
//! revoke now, optionally mint a replacement, and report the exposure.

use super::admin_client::AdminClient;
use super::keys::path_segment;
use super::output::print;
use super::{Format, Target};
use reqwest::Method;
use serde_json::{json, Value};

/// `keygate incident`.
#[derive(Debug, clap::Args)]
pub struct IncidentArgs {
    /// The key that leaked.
    key_id: String,
    /// Start of the exposure window: an RFC 3339 time or a duration ago
    /// (36h, 7d). Default: the key's first leak report, else its creation.
    #[arg(long)]
    since: Option<String>,
    /// Mint a replacement key with the same policy and owner (its secret is
    /// printed once).
    #[arg(long)]
    replace: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

fn usd(nanos: &Value) -> String {
    format!("${:.4}", nanos.as_f64().unwrap_or_default() / 1e9)
}

fn list(title: &str, items: &Value) {
    let items: Vec<String> = items
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if !items.is_empty() {
        println!("  {title}: {}", items.join(", "));
    }
}

pub(super) async fn run(args: IncidentArgs, target: &Target) -> anyhow::Result<()> {
    let client = AdminClient::new(target)?;
    let body = json!({ "since": args.since, "replace": args.replace });
    let answer = client
        .call(
            Method::POST,
            &format!("/keys/{}/incident", path_segment(&args.key_id)),
            &[],
            Some(body),
        )
        .await?;
    if args.format != Format::Table {
        print(
            args.format,
            &answer,
            std::slice::from_ref(&answer["report"]["exposure"]),
            &[
                "requests",
                "refused",
                "prompt_tokens",
                "completion_tokens",
                "cost_nanos",
            ],
        );
        return Ok(());
    }
    let report = &answer["report"];
    let exposure = &report["exposure"];
    let key = &answer["key"];
    println!(
        "Key {} ({}) is revoked ({}).",
        key["id"].as_str().unwrap_or_default(),
        key["name"].as_str().unwrap_or_default(),
        key["revoke_reason"].as_str().unwrap_or_default()
    );
    if let Some(replacement) = answer.get("replacement").filter(|r| !r.is_null()) {
        println!(
            "Replacement {}: {}\nThis secret is shown only now; store it safely.",
            replacement["id"].as_str().unwrap_or_default(),
            replacement["key"].as_str().unwrap_or_default()
        );
    }
    let ms = |v: &Value| keygate_time(v.as_i64().unwrap_or_default());
    println!(
        "\nExposure window: {} → {} (start: {})",
        ms(&report["since"]),
        ms(&report["until"]),
        report["window_start"].as_str().unwrap_or_default()
    );
    for leak in report["leak_reports"].as_array().into_iter().flatten() {
        println!(
            "  reported {} at {}",
            leak["reported_at"].as_str().unwrap_or_default(),
            leak["url"].as_str().unwrap_or("(no url)")
        );
    }
    println!(
        "  {} requests ({} refused), {} prompt + {} completion tokens, {} spent",
        exposure["requests"],
        exposure["refused"],
        exposure["prompt_tokens"],
        exposure["completion_tokens"],
        usd(&exposure["cost_nanos"])
    );
    for (title, field) in [
        ("models", "models"),
        ("source addresses", "sources"),
        ("user agents", "user_agents"),
    ] {
        let groups = exposure[field].as_array().cloned().unwrap_or_default();
        if groups.is_empty() {
            continue;
        }
        println!("  {title}:");
        for g in groups.iter().take(20) {
            println!(
                "    {:<40} {:>8} requests {:>10} tokens {:>12}",
                g["name"].as_str().unwrap_or_default(),
                g["requests"],
                g["tokens"],
                usd(&g["cost_nanos"])
            );
        }
    }
    let differences = &report["differences"];
    println!("\nCompared with the 30 days before:");
    list("new source addresses", &differences["new_sources"]);
    list("new user agents", &differences["new_user_agents"]);
    list("new models", &differences["new_models"]);
    list("new hours (UTC)", &differences["new_hours"]);
    println!(
        "  requests per hour: {} (usually {})",
        differences["requests_per_hour"], differences["baseline_requests_per_hour"]
    );
    Ok(())
}

fn keygate_time(ms: i64) -> String {
    crate::time::rfc3339(ms)
}
