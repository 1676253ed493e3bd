//! `keygate orgs create|list` and `keygate projects create|list`

use super::admin_client::AdminClient;
use super::output::print;
use super::{Format, Target};
use reqwest::Method;
use serde_json::{json, Value};

const ORG_COLUMNS: &[&str] = &["id", "name", "created_at"];
const PROJECT_COLUMNS: &[&str] = &["id", "org_id", "name", "created_at"];

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
}

/// Print one created resource, or a `{"data": [...]}` listing.
fn show(format: Format, answer: &Value, columns: &[&str]) {
    match answer["data"].as_array() {
        Some(rows) => print(format, &Value::Array(rows.clone()), rows, columns),
        None => print(format, answer, std::slice::from_ref(answer), columns),
    }
}

pub(super) async fn run_orgs(command: OrgsCommand, target: &Target) -> anyhow::Result<()> {
    let client = AdminClient::new(target)?;
    let (answer, format) = match command {
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
        ),
        OrgsCommand::List { format } => (
            client
                .call(Method::GET, "/organisations", &[], None)
                .await?,
            format,
        ),
    };
    show(format, &answer, ORG_COLUMNS);
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
    };
    show(format, &answer, PROJECT_COLUMNS);
    Ok(())
}
