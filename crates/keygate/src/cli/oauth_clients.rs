//! `keygate oauth-clients create|list`: OAuth clients for the client
//! credentials grant. Show, update, rotate, suspend and revoke one with
//! `keygate keys … CLIENT_ID`.

use super::admin_client::AdminClient;
use super::keys::{table_row, PolicyFlags};
use super::limits::LimitFlags;
use super::output::print;
use super::{Format, Target};
use reqwest::Method;
use serde_json::{json, Value};

const COLUMNS: &[&str] = &[
    "client_id",
    "name",
    "env",
    "status",
    "owner",
    "project_id",
    "models",
    "scopes",
    "budget",
    "created_at",
];

/// OAuth client commands (parsed once per run: their size does not matter).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, clap::Subcommand)]
pub enum OAuthClientsCommand {
    /// Register an OAuth client; its secret is printed once. Its tokens
    /// never get more than the models, scopes and limits given here.
    Create {
        /// Human name.
        #[arg(long)]
        name: String,
        /// Model allowlist, comma-separated globs (default: every model).
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        /// Expiry of the client: a duration (30d) or an RFC 3339 time.
        #[arg(long)]
        expires: Option<String>,
        #[command(flatten)]
        policy: PolicyFlags,
        #[command(flatten)]
        limits: LimitFlags,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List OAuth clients.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

pub(super) async fn run(command: OAuthClientsCommand, target: &Target) -> anyhow::Result<()> {
    let client = AdminClient::new(target)?;
    match command {
        OAuthClientsCommand::Create {
            name,
            models,
            expires,
            policy,
            limits,
            format,
        } => {
            let mut body = json!({ "name": name, "models": models });
            policy.apply(&mut body);
            limits.apply(&mut body)?;
            if let Some(expires) = expires {
                body["expires"] = Value::String(expires);
            }
            let created = client
                .call(Method::POST, "/oauth-clients", &[], Some(body))
                .await?;
            if format == Format::Json {
                print(format, &created, &[], &[]);
                return Ok(());
            }
            let row = table_row(format, created);
            let mut columns = COLUMNS.to_vec();
            if format == Format::Csv {
                columns.push("client_secret");
            }
            print(format, &row, std::slice::from_ref(&row), &columns);
            let secret = row["client_secret"].as_str().unwrap_or_default();
            if format == Format::Table {
                println!("\nclient_secret: {secret}");
                println!("This secret is shown only now; store it safely.");
            } else {
                eprintln!("This secret is shown only now; store it safely.");
            }
        }
        OAuthClientsCommand::List { format } => {
            let list = client
                .call(Method::GET, "/oauth-clients", &[], None)
                .await?;
            let rows: Vec<Value> = list["data"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|mut row| {
                    row["client_id"] = row["id"].clone();
                    table_row(format, row)
                })
                .collect();
            print(format, &Value::Array(rows.clone()), &rows, COLUMNS);
        }
    }
    Ok(())
}
