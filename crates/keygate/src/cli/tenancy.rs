//! `keygate orgs create|list|show|update|top-up|owner-budget|owner-budgets`
//! and `keygate projects create|list|show|update`

use super::admin_client::AdminClient;
use super::keys::path_segment;
use super::limits::{with_limit_cells, BudgetFlags, ClearFlags, LimitFlags};
use super::output::print;
use super::{Format, Target};
use anyhow::bail;
use reqwest::Method;
use serde_json::{json, Value};

const ORG_COLUMNS: &[&str] = &["id", "name", "budget", "prepaid", "created_at"];
const PROJECT_COLUMNS: &[&str] = &[
    "id",
    "org_id",
    "name",
    "rpm",
    "tpm",
    "max_concurrent",
    "budget",
    "on_anomaly",
    "created_at",
];
const OWNER_BUDGET_COLUMNS: &[&str] = &["org_id", "owner", "budget", "budget_alerts"];

/// A budget part `orgs update --clear` removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BudgetPart {
    /// The whole budget.
    Budget,
    /// Its alert thresholds (back to the default 50,80,100).
    BudgetAlerts,
}

/// Organisation commands.
#[derive(Debug, clap::Subcommand)]
pub enum OrgsCommand {
    /// Create an organisation (instance-wide admins and owners).
    Create {
        /// Unique name.
        #[arg(long)]
        name: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List the organisations the credential can see.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show an organisation, its budget and its prepaid balance.
    Show {
        /// Organisation id.
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Set or remove an organisation's budget (admins and owners of the
    /// organisation or the instance).
    Update {
        /// Organisation id.
        id: String,
        #[command(flatten)]
        budget: BudgetFlags,
        /// Remove the budget, or only its alert thresholds (back to the
        /// default 50,80,100).
        #[arg(long, value_enum, value_name = "PART")]
        clear: Option<BudgetPart>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Add to an organisation's prepaid balance (making it prepaid).
    TopUp {
        /// Organisation id.
        id: String,
        /// US dollars to add.
        #[arg(long, value_name = "AMOUNT")]
        usd: f64,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Set (or with --clear remove) the budget every key of one owner in an
    /// organisation spends from, whatever their project.
    OwnerBudget {
        /// Organisation id.
        org_id: String,
        /// The owner, exactly as keys name it.
        owner: String,
        #[command(flatten)]
        budget: BudgetFlags,
        /// Remove the owner's budget.
        #[arg(long, conflicts_with_all = ["budget", "budget_period", "budget_alerts"], required_unless_present = "budget")]
        clear: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List the owner budgets of an organisation.
    OwnerBudgets {
        /// Organisation id.
        org_id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// Project commands.
#[derive(Debug, clap::Subcommand)]
pub enum ProjectsCommand {
    /// Create a project in an organisation.
    Create {
        /// Name, unique within the organisation.
        #[arg(long)]
        name: String,
        /// Organisation id (default: the credential's, or the default one).
        #[arg(long)]
        org: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List the projects the credential can see.
    List {
        /// Only this organisation's.
        #[arg(long)]
        org: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show a project and its limits.
    Show {
        /// Project id.
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Set or remove the limits every key of a project shares, and its
    /// anomaly policy (admins and owners of the organisation or the
    /// instance).
    Update {
        /// Project id.
        id: String,
        /// What an anomaly (usage spike, new network, odd hour) does to a
        /// key of the project that has no policy of its own.
        #[arg(long, value_enum, value_name = "POLICY")]
        on_anomaly: Option<crate::anomaly::OnAnomaly>,
        #[command(flatten)]
        limits: LimitFlags,
        #[command(flatten)]
        clear: ClearFlags,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// Print one resource, or a `{"data": [...]}` listing; tables show limits
/// as `$100/month`.
fn show(format: Format, answer: &Value, columns: &[&str]) {
    let rows = match answer["data"].as_array() {
        Some(rows) => rows.clone(),
        None => vec![answer.clone()],
    };
    let table: Vec<Value> = rows.iter().cloned().map(with_limit_cells).collect();
    let value = match answer["data"].as_array() {
        Some(_) => Value::Array(rows),
        None => answer.clone(),
    };
    print(format, &value, &table, columns);
}

/// Percent-encode a name for one path segment (an owner may hold `/`,
/// `?`, spaces, anything printable).
fn name_segment(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string()
}

pub(super) async fn run_orgs(command: OrgsCommand, target: &Target) -> anyhow::Result<()> {
    let client = AdminClient::new(target)?;
    let (answer, format, columns) = match command {
        OrgsCommand::Create { name, format } => (
            client
                .call(
                    Method::POST,
                    "/organisations",
                    &[],
                    Some(json!({ "name": name })),
                )
                .await?,
            format,
            ORG_COLUMNS,
        ),
        OrgsCommand::List { format } => (
            client
                .call(Method::GET, "/organisations", &[], None)
                .await?,
            format,
            ORG_COLUMNS,
        ),
        OrgsCommand::Show { id, format } => (
            client
                .call(
                    Method::GET,
                    &format!("/organisations/{}", path_segment(&id)),
                    &[],
                    None,
                )
                .await?,
            format,
            ORG_COLUMNS,
        ),
        OrgsCommand::Update {
            id,
            budget,
            clear,
            format,
        } => {
            let mut body = json!({});
            budget.apply(&mut body)?;
            match clear {
                Some(BudgetPart::Budget) if body.as_object().is_some_and(|b| !b.is_empty()) => {
                    bail!("--clear budget removes the whole budget; do not set any of it too")
                }
                Some(BudgetPart::Budget) => body["budget_usd"] = Value::Null,
                Some(BudgetPart::BudgetAlerts) if body.get("budget_alerts").is_some() => {
                    bail!("--clear budget-alerts contradicts --budget-alerts")
                }
                Some(BudgetPart::BudgetAlerts) => body["budget_alerts"] = Value::Null,
                None => {}
            }
            (
                client
                    .call(
                        Method::PATCH,
                        &format!("/organisations/{}", path_segment(&id)),
                        &[],
                        Some(body),
                    )
                    .await?,
                format,
                ORG_COLUMNS,
            )
        }
        OrgsCommand::TopUp { id, usd, format } => (
            client
                .call(
                    Method::POST,
                    &format!("/organisations/{}/balance", path_segment(&id)),
                    &[],
                    Some(json!({ "amount_usd": usd })),
                )
                .await?,
            format,
            ORG_COLUMNS,
        ),
        OrgsCommand::OwnerBudget {
            org_id,
            owner,
            budget,
            clear,
            format,
        } => {
            let owner = owner.trim();
            if owner.is_empty() {
                bail!("name the owner whose budget to set");
            }
            let path = format!(
                "/organisations/{}/owners/{}/budget",
                path_segment(&org_id),
                name_segment(owner)
            );
            let answer = if clear {
                client.call(Method::DELETE, &path, &[], None).await?
            } else {
                let mut body = json!({});
                budget.apply(&mut body)?;
                client.call(Method::PUT, &path, &[], Some(body)).await?
            };
            (answer, format, OWNER_BUDGET_COLUMNS)
        }
        OrgsCommand::OwnerBudgets { org_id, format } => (
            client
                .call(
                    Method::GET,
                    &format!("/organisations/{}/owner-budgets", path_segment(&org_id)),
                    &[],
                    None,
                )
                .await?,
            format,
            OWNER_BUDGET_COLUMNS,
        ),
    };
    show(format, &answer, columns);
    Ok(())
}

pub(super) async fn run_projects(command: ProjectsCommand, target: &Target) -> anyhow::Result<()> {
    let client = AdminClient::new(target)?;
    let (answer, format) = match command {
        ProjectsCommand::Create { name, org, format } => (
            client
                .call(
                    Method::POST,
                    "/projects",
                    &[],
                    Some(json!({ "name": name, "org_id": org })),
                )
                .await?,
            format,
        ),
        ProjectsCommand::List { org, format } => {
            let query: Vec<(&str, &str)> = org.iter().map(|o| ("org_id", o.as_str())).collect();
            (
                client.call(Method::GET, "/projects", &query, None).await?,
                format,
            )
        }
        ProjectsCommand::Show { id, format } => (
            client
                .call(
                    Method::GET,
                    &format!("/projects/{}", path_segment(&id)),
                    &[],
                    None,
                )
                .await?,
            format,
        ),
        ProjectsCommand::Update {
            id,
            on_anomaly,
            limits,
            clear,
            format,
        } => {
            let mut body = json!({});
            if let Some(policy) = on_anomaly {
                body["on_anomaly"] = json!(policy.as_str());
            }
            limits.apply(&mut body)?;
            clear.apply(&mut body)?;
            (
                client
                    .call(
                        Method::PATCH,
                        &format!("/projects/{}", path_segment(&id)),
                        &[],
                        Some(body),
                    )
                    .await?,
                format,
            )
        }
    };
    show(format, &answer, PROJECT_COLUMNS);
    Ok(())
}
