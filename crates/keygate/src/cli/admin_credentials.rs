//! `keygate admin-credentials create|list|show|revoke`

use super::admin_client::AdminClient;
use super::keys::path_segment;
use super::output::{print, print_with_secret};
use super::{Format, Target};
use reqwest::Method;
use serde_json::{json, Value};

const COLUMNS: &[&str] = &[
    "id",
    "name",
    "role",
    "org_id",
    "project_id",
    "owner",
    "status",
    "hint",
    "created_at",
];

/// Admin credential commands.
#[derive(Debug, clap::Subcommand)]
pub enum AdminCredentialsCommand {
    /// Create an admin credential; its secret is printed once. Only owners
    /// may, and only within their own scope.
    Create {
        /// Human name.
        #[arg(long)]
        name: String,
        /// owner, admin, member or viewer.
        #[arg(long)]
        role: String,
        /// Scope: an organisation id (default: the caller's scope).
        #[arg(long)]
        org: Option<String>,
        /// Scope: a project id.
        #[arg(long)]
        project: Option<String>,
        /// The person or service it is for.
        #[arg(long)]
        owner: Option<String>,
        /// Expiry: a duration (30d) or an RFC 3339 time.
        #[arg(long)]
        expires: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List admin credentials in scope.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show one admin credential.
    Show {
        /// Credential id.
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Revoke an admin credential at once.
    Revoke {
        /// Credential id.
        id: String,
        /// Why (kept with the credential).
        #[arg(long)]
        reason: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

pub(super) async fn run(command: AdminCredentialsCommand, target: &Target) -> anyhow::Result<()> {
    let client = AdminClient::new(target)?;
    match command {
        AdminCredentialsCommand::Create {
            name,
            role,
            org,
            project,
            owner,
            expires,
            format,
        } => {
            let body = json!({
                "name": name, "role": role, "org_id": org, "project_id": project,
                "owner": owner, "expires": expires,
            });
            let created = client
                .call(Method::POST, "/admin-credentials", &[], Some(body))
                .await?;
            print_with_secret(format, &created, COLUMNS, None);
        }
        AdminCredentialsCommand::List { format } => {
            let list = client
                .call(Method::GET, "/admin-credentials", &[], None)
                .await?;
            let rows = list["data"].as_array().cloned().unwrap_or_default();
            print(format, &Value::Array(rows.clone()), &rows, COLUMNS);
        }
        AdminCredentialsCommand::Show { id, format } => {
            let shown = client
                .call(
                    Method::GET,
                    &format!("/admin-credentials/{}", path_segment(&id)),
                    &[],
                    None,
                )
                .await?;
            print(format, &shown, std::slice::from_ref(&shown), COLUMNS);
        }
        AdminCredentialsCommand::Revoke { id, reason, format } => {
            let revoked = client
                .call(
                    Method::POST,
                    &format!("/admin-credentials/{}/revoke", path_segment(&id)),
                    &[],
                    Some(json!({ "reason": reason })),
                )
                .await?;
            print(format, &revoked, std::slice::from_ref(&revoked), COLUMNS);
        }
    }
    Ok(())
}
