//! `keygate keys create|list|show|update|rotate|suspend|resume|revoke`

use super::admin_client::AdminClient;
use super::limits::{with_limit_cells, ClearFlags, LimitFlags};
use super::output::{print, print_with_secret};
use super::{Format, Target};
use reqwest::Method;
use serde_json::{json, Value};

const COLUMNS: &[&str] = &[
    "id",
    "name",
    "env",
    "status",
    "owner",
    "project_id",
    "hint",
    "models",
    "scopes",
    "allow_ips",
    "rpm",
    "tpm",
    "max_concurrent",
    "budget",
    "on_anomaly",
    "created_at",
    "expires_at",
];

/// `keys list`: what an operator scans for — who holds it, where it may be
/// used, how old its secret is, and when and from where it was last used.
const LIST_COLUMNS: &[&str] = &[
    "id",
    "name",
    "status",
    "owner",
    "project_id",
    "env",
    "age",
    "budget",
    "last_used_at",
    "last_source_ip",
];

/// Policy flags shared by `create` and `update`.
#[derive(Debug, clap::Args)]
pub struct PolicyFlags {
    /// Route families allowed, comma-separated: chat, embeddings, messages,
    /// generate, models (default: all).
    #[arg(long, value_delimiter = ',')]
    scopes: Option<Vec<String>>,
    /// Source networks allowed, comma-separated CIDRs (default: any).
    #[arg(long, value_delimiter = ',')]
    allow_ips: Option<Vec<String>>,
    /// Free-text description.
    #[arg(long)]
    description: Option<String>,
    /// Who answers for the key: a person's identity or a service name
    /// (default: the admin credential's owner).
    #[arg(long)]
    owner: Option<String>,
    /// Project id (default: the admin credential's, or the default project).
    #[arg(long)]
    project: Option<String>,
    /// Environment: live, test or another configured one (default live;
    /// fixed once created).
    #[arg(long)]
    env: Option<String>,
    /// What an anomaly (usage spike, new network, odd hour) does to the
    /// key: alert, suspend, or project (follow the project's policy; the
    /// default).
    #[arg(long, value_enum, value_name = "POLICY")]
    on_anomaly: Option<KeyAnomalyPolicy>,
}

/// `--on-anomaly` of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyAnomalyPolicy {
    /// Raise an alert.
    Alert,
    /// Raise an alert and suspend the key.
    Suspend,
    /// As the key's project says.
    Project,
}

impl PolicyFlags {
    /// Put the flags given into a key definition.
    pub(super) fn apply(self, body: &mut Value) {
        if let Some(scopes) = self.scopes {
            body["scopes"] = json!(scopes);
        }
        if let Some(allow_ips) = self.allow_ips {
            body["allow_ips"] = json!(allow_ips);
        }
        if let Some(description) = self.description {
            body["description"] = Value::String(description);
        }
        for (field, value) in [
            ("owner", self.owner),
            ("project", self.project),
            ("env", self.env),
        ] {
            if let Some(value) = value {
                body[field] = Value::String(value);
            }
        }
        match self.on_anomaly {
            Some(KeyAnomalyPolicy::Alert) => body["on_anomaly"] = json!("alert"),
            Some(KeyAnomalyPolicy::Suspend) => body["on_anomaly"] = json!("suspend"),
            Some(KeyAnomalyPolicy::Project) => body["on_anomaly"] = Value::Null,
            None => {}
        }
    }
}

/// Key commands.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Create a key; its secret is printed once.
    Create {
        /// Human name.
        #[arg(long)]
        name: String,
        /// Model allowlist, comma-separated globs (default: every model).
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        /// Expiry: a duration (30d, 12h) or an RFC 3339 time.
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
    /// Change a key's name, models, scopes, networks, expiry, description
    /// or limits (changing limits takes an admin or owner credential).
    Update {
        /// Key id.
        id: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New model allowlist, comma-separated globs.
        #[arg(long, value_delimiter = ',')]
        models: Option<Vec<String>>,
        /// New expiry (a duration or an RFC 3339 time), or `never`.
        #[arg(long)]
        expires: Option<String>,
        #[command(flatten)]
        policy: PolicyFlags,
        #[command(flatten)]
        limits: LimitFlags,
        #[command(flatten)]
        clear: ClearFlags,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List keys: status, owner, environment, age, last use and its source.
    List {
        /// Only keys of this owner.
        #[arg(long)]
        owner: Option<String>,
        /// Only keys of this project.
        #[arg(long)]
        project: Option<String>,
        /// At most this many (1-1000).
        #[arg(long)]
        limit: Option<u32>,
        /// Skip this many first.
        #[arg(long)]
        offset: Option<u32>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show one key.
    #[command(visible_alias = "get")]
    Show {
        /// Key id.
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Give a key a new secret (printed once); the old secret keeps working
    /// for the grace period, then stops by itself.
    Rotate {
        /// Key id.
        id: String,
        /// How long the old secret keeps working (default 24h; 0s ends it now).
        #[arg(long)]
        grace: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Suspend a key: refused until resumed.
    Suspend {
        /// Key id.
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Resume a suspended key.
    Resume {
        /// Key id.
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Revoke a key at once, or every key of an owner or a project.
    Revoke {
        /// Key id.
        #[arg(required_unless_present_any = ["owner", "project"], conflicts_with_all = ["owner", "project"])]
        id: Option<String>,
        /// Every key this person or service owns (and, for an owner-role
        /// credential, the admin credentials they hold).
        #[arg(long)]
        owner: Option<String>,
        /// Every key of this project.
        #[arg(long)]
        project: Option<String>,
        /// Why (kept with the key).
        #[arg(long)]
        reason: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

pub(super) async fn run(command: KeysCommand, target: &Target) -> anyhow::Result<()> {
    let client = AdminClient::new(target)?;
    match command {
        KeysCommand::Create {
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
            let created = client.call(Method::POST, "/keys", &[], Some(body)).await?;
            print_with_secret(format, &table_row(format, created), COLUMNS, None);
        }
        KeysCommand::Update {
            id,
            name,
            models,
            expires,
            policy,
            limits,
            clear,
            format,
        } => {
            let mut body = json!({});
            if let Some(name) = name {
                body["name"] = Value::String(name);
            }
            if let Some(models) = models {
                body["models"] = json!(models);
            }
            match expires.as_deref() {
                Some("never") => body["expires"] = Value::Null,
                Some(expires) => body["expires"] = Value::String(expires.to_string()),
                None => {}
            }
            policy.apply(&mut body);
            limits.apply(&mut body)?;
            clear.apply(&mut body)?;
            let key = client
                .call(
                    Method::PATCH,
                    &format!("/keys/{}", path_segment(&id)),
                    &[],
                    Some(body),
                )
                .await?;
            print(format, &key, &[with_limit_cells(key.clone())], COLUMNS);
        }
        KeysCommand::List {
            owner,
            project,
            limit,
            offset,
            format,
        } => {
            let mut query = Vec::new();
            for (name, value) in [
                ("owner", owner),
                ("project", project),
                ("limit", limit.map(|n| n.to_string())),
                ("offset", offset.map(|n| n.to_string())),
            ] {
                if let Some(value) = value {
                    query.push((name, value));
                }
            }
            let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let list = client.call(Method::GET, "/keys", &query, None).await?;
            let rows = list["data"].as_array().cloned().unwrap_or_default();
            let table: Vec<Value> = rows
                .iter()
                .cloned()
                .map(|row| with_limit_cells(with_age(row)))
                .collect();
            print(format, &Value::Array(rows), &table, LIST_COLUMNS);
        }
        KeysCommand::Show { id, format } => {
            let key = client
                .call(
                    Method::GET,
                    &format!("/keys/{}", path_segment(&id)),
                    &[],
                    None,
                )
                .await?;
            print(format, &key, &[with_limit_cells(key.clone())], COLUMNS);
        }
        KeysCommand::Rotate { id, grace, format } => {
            let body = json!({ "grace": grace });
            let rotated = client
                .call(
                    Method::POST,
                    &format!("/keys/{}/rotate", path_segment(&id)),
                    &[],
                    Some(body),
                )
                .await?;
            let note = match rotated["previous_secret_expires_at"].as_str() {
                Some(until) => format!("The old secret keeps working until {until}."),
                None => "The old secret no longer works.".to_string(),
            };
            print_with_secret(format, &rotated, COLUMNS, Some(&note));
        }
        KeysCommand::Suspend { id, format } => key_action(&client, &id, "suspend", format).await?,
        KeysCommand::Resume { id, format } => key_action(&client, &id, "resume", format).await?,
        KeysCommand::Revoke {
            id: Some(id),
            reason,
            format,
            ..
        } => {
            let body = json!({ "reason": reason });
            let key = client
                .call(
                    Method::POST,
                    &format!("/keys/{}/revoke", path_segment(&id)),
                    &[],
                    Some(body),
                )
                .await?;
            print(format, &key, std::slice::from_ref(&key), COLUMNS);
        }
        KeysCommand::Revoke {
            id: None,
            owner,
            project,
            reason,
            format,
        } => {
            let body = json!({ "owner": owner, "project": project, "reason": reason });
            let answer = client
                .call(Method::POST, "/keys/revoke", &[], Some(body))
                .await?;
            let rows = answer["data"].as_array().cloned().unwrap_or_default();
            match format {
                Format::Json => print(format, &answer, &[], &[]),
                // The revoked keys alone, so the output is one CSV document.
                Format::Csv => print(format, &answer, &rows, COLUMNS),
                Format::Table => {
                    print(format, &answer, &rows, COLUMNS);
                    println!(
                        "\n{} key(s) revoked for {}.",
                        answer["revoked"],
                        answer["selector"].as_str().unwrap_or_default()
                    );
                    if let Some(ids) = answer["admin_credentials_revoked"]
                        .as_array()
                        .filter(|ids| !ids.is_empty())
                    {
                        println!(
                            "Admin credentials revoked too: {}.",
                            super::output::cell(&Value::Array(ids.clone()))
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

/// `POST /keys/{id}/{action}` without a body, and print the key.
async fn key_action(
    client: &AdminClient,
    id: &str,
    action: &str,
    format: Format,
) -> anyhow::Result<()> {
    let key = client
        .call(
            Method::POST,
            &format!("/keys/{}/{action}", path_segment(id)),
            &[],
            None,
        )
        .await?;
    print(format, &key, std::slice::from_ref(&key), COLUMNS);
    Ok(())
}

/// The answer as a table or CSV shows it (with its budget cell), or as it
/// came for JSON.
pub(super) fn table_row(format: Format, answer: Value) -> Value {
    match format {
        Format::Table | Format::Csv => with_limit_cells(answer),
        Format::Json => answer,
    }
}

/// A list row with its secret's age as `12d`, marked when due for rotation.
fn with_age(mut row: Value) -> Value {
    let days = row["secret_age_days"].as_i64().unwrap_or_default();
    let due = row["rotation_due"].as_bool().unwrap_or_default();
    row["age"] = Value::String(if due {
        format!("{days}d (rotate)")
    } else {
        format!("{days}d")
    });
    row
}

/// Keep an id from altering the request path.
pub(super) fn path_segment(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}
