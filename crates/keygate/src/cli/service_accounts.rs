//! `keygate service-accounts create|list` and
//! `keygate service-accounts keys add|list|disable|enable`.
//!
//! A key file holds a private key: it is written readable by its owner only
//! (0600), never over an existing file, and the private key is never
//! printed.

use super::admin_client::AdminClient;
use super::keys::{path_segment, PolicyFlags};
use super::limits::{with_limit_cells, LimitFlags};
use super::output::print;
use super::{Format, Target};
use anyhow::{bail, Context};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const ACCOUNT_COLUMNS: &[&str] = &[
    "id",
    "name",
    "env",
    "status",
    "owner",
    "project_id",
    "models",
    "scopes",
    "rpm",
    "budget",
    "created_at",
    "expires_at",
];

const LIST_COLUMNS: &[&str] = &[
    "id",
    "name",
    "status",
    "owner",
    "project_id",
    "env",
    "models",
    "budget",
    "last_used_at",
];

const KEY_COLUMNS: &[&str] = &["kid", "algorithm", "status", "created_at", "disabled_at"];

/// The algorithm a key signs with.
#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
pub enum Algorithm {
    /// RSA 2048, SHA-256.
    #[default]
    #[value(name = "RS256", alias = "rs256")]
    Rs256,
    /// ECDSA P-256, SHA-256.
    #[value(name = "ES256", alias = "es256")]
    Es256,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Es256 => "ES256",
        }
    }
}

/// Service account commands.
// Parsed once per run: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, clap::Subcommand)]
pub enum ServiceAccountsCommand {
    /// Create a service account and write its key file (owner-only, never
    /// over an existing file); print its client id and the file's path.
    Create {
        /// Human name.
        #[arg(long)]
        name: String,
        /// Where to write the key file (must not exist).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Algorithm of the key.
        #[arg(long, value_enum, default_value_t)]
        algorithm: Algorithm,
        /// Model allowlist, comma-separated globs (default: every model).
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        /// Expiry of the account: a duration (30d, 12h) or an RFC 3339 time.
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
    /// List service accounts (update, suspend or revoke one with `keygate
    /// keys`).
    List {
        /// Only accounts of this owner.
        #[arg(long)]
        owner: Option<String>,
        /// Only accounts of this project.
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
    /// Add, list, disable and enable a service account's keys.
    #[command(subcommand)]
    Keys(AccountKeysCommand),
}

/// Commands on a service account's keys.
#[derive(Debug, clap::Subcommand)]
pub enum AccountKeysCommand {
    /// Add a key: a new key pair written to --out, or a public key of yours
    /// registered with --public-key.
    Add {
        /// Service account id.
        id: String,
        /// Where to write the new key file (must not exist).
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "public_key",
            conflicts_with = "public_key"
        )]
        out: Option<PathBuf>,
        /// Register this public key (PEM, SubjectPublicKeyInfo) instead; its
        /// private key stays with you.
        #[arg(long, value_name = "PEM_FILE")]
        public_key: Option<PathBuf>,
        /// Algorithm of the key.
        #[arg(long, value_enum, default_value_t)]
        algorithm: Algorithm,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List a service account's keys.
    List {
        /// Service account id.
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Disable a key: assertions it signs are refused.
    Disable {
        /// Service account id.
        id: String,
        /// Key id (`private_key_id` in its key file).
        kid: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Enable a disabled key again.
    Enable {
        /// Service account id.
        id: String,
        /// Key id.
        kid: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// Refuse to go on when the key file could not be written afterwards.
fn check_out(out: &Path) -> anyhow::Result<()> {
    if out.exists() || out.is_symlink() {
        bail!(
            "{} exists; keygate never overwrites a key file: choose another --out",
            out.display()
        );
    }
    Ok(())
}

/// Write a key file readable by its owner only, creating it (never
/// replacing anything there).
fn write_key_file(out: &Path, file: &Value) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut text = serde_json::to_vec_pretty(file).context("encoding the key file")?;
    text.push(b'\n');
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .and_then(|mut handle| {
            handle.write_all(&text)?;
            handle.sync_all()
        });
    zeroize::Zeroize::zeroize(&mut text);
    result.with_context(|| format!("writing the key file {}", out.display()))
}

/// Save the answer's key file to `out`, and return the answer without the
/// private key (the file's path in its place).
fn save_key_file(mut answer: Value, out: &Path) -> anyhow::Result<Value> {
    let file = answer
        .get_mut("key_file")
        .map(Value::take)
        .filter(Value::is_object)
        .context("keygate answered without a key file")?;
    let kid = file["private_key_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if let Err(e) = write_key_file(out, &file) {
        bail!(
            "{e:#}. The key {kid} was created but its private key is lost: disable it with \
             `keygate service-accounts keys disable {} {kid}` and add another",
            file["client_id"].as_str().unwrap_or_default()
        );
    }
    answer["key_file"] = Value::String(out.display().to_string());
    Ok(answer)
}

pub(super) async fn run(command: ServiceAccountsCommand, target: &Target) -> anyhow::Result<()> {
    let client = AdminClient::new(target)?;
    match command {
        ServiceAccountsCommand::Create {
            name,
            out,
            algorithm,
            models,
            expires,
            policy,
            limits,
            format,
        } => {
            check_out(&out)?;
            let mut body = json!({"name": name, "models": models, "algorithm": algorithm.name()});
            policy.apply(&mut body);
            limits.apply(&mut body)?;
            if let Some(expires) = expires {
                body["expires"] = Value::String(expires);
            }
            let created = client
                .call(Method::POST, "/service-accounts", &[], Some(body))
                .await?;
            let created = save_key_file(created, &out)?;
            match format {
                Format::Json => print(format, &created, &[], &[]),
                _ => {
                    let row = with_limit_cells(created.clone());
                    print(
                        format,
                        &created,
                        std::slice::from_ref(&row),
                        ACCOUNT_COLUMNS,
                    );
                    if format == Format::Table {
                        println!(
                            "\nclient_id: {}\nkey id:    {}\nkey file:  {} (owner-only; keep it \
                             secret: it is shown nowhere else)",
                            created["client_id"].as_str().unwrap_or_default(),
                            created["private_key"]["kid"].as_str().unwrap_or_default(),
                            out.display()
                        );
                    }
                }
            }
        }
        ServiceAccountsCommand::List {
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
            let list = client
                .call(Method::GET, "/service-accounts", &query, None)
                .await?;
            let rows = list["data"].as_array().cloned().unwrap_or_default();
            let table: Vec<Value> = rows.iter().cloned().map(with_limit_cells).collect();
            print(format, &Value::Array(rows), &table, LIST_COLUMNS);
        }
        ServiceAccountsCommand::Keys(command) => run_keys(&client, command).await?,
    }
    Ok(())
}

async fn run_keys(client: &AdminClient, command: AccountKeysCommand) -> anyhow::Result<()> {
    match command {
        AccountKeysCommand::Add {
            id,
            out,
            public_key,
            algorithm,
            format,
        } => {
            let mut body = json!({"algorithm": algorithm.name()});
            if let Some(path) = &public_key {
                let pem = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                if pem.contains("PRIVATE KEY") {
                    bail!(
                        "{} holds a private key; register the public key (openssl pkey -pubout) \
                         and keep the private key to yourself",
                        path.display()
                    );
                }
                body["public_key"] = Value::String(pem);
            }
            if let Some(out) = &out {
                check_out(out)?;
            }
            let path = format!("/service-accounts/{}/keys", path_segment(&id));
            let added = client.call(Method::POST, &path, &[], Some(body)).await?;
            let added = match &out {
                Some(out) => save_key_file(added, out)?,
                None => added,
            };
            print(format, &added, std::slice::from_ref(&added), KEY_COLUMNS);
            if let (Some(out), Format::Table) = (&out, format) {
                println!("\nkey file: {} (owner-only)", out.display());
            }
        }
        AccountKeysCommand::List { id, format } => {
            let path = format!("/service-accounts/{}/keys", path_segment(&id));
            let list = client.call(Method::GET, &path, &[], None).await?;
            let rows = list["data"].as_array().cloned().unwrap_or_default();
            print(format, &Value::Array(rows.clone()), &rows, KEY_COLUMNS);
        }
        AccountKeysCommand::Disable { id, kid, format } => {
            key_action(client, &id, &kid, "disable", format).await?
        }
        AccountKeysCommand::Enable { id, kid, format } => {
            key_action(client, &id, &kid, "enable", format).await?
        }
    }
    Ok(())
}

async fn key_action(
    client: &AdminClient,
    id: &str,
    kid: &str,
    action: &str,
    format: Format,
) -> anyhow::Result<()> {
    let path = format!(
        "/service-accounts/{}/keys/{}/{action}",
        path_segment(id),
        path_segment(kid)
    );
    let key = client.call(Method::POST, &path, &[], None).await?;
    print(format, &key, std::slice::from_ref(&key), KEY_COLUMNS);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn key_files_are_owner_only_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("sa.json");
        let answer = json!({
            "client_id": "key_a",
            "key_file": {"type": "service_account", "client_id": "key_a", "private_key_id": "sak_1", "private_key": "PEM"},
        });
        check_out(&out).unwrap();
        let shown = save_key_file(answer.clone(), &out).unwrap();
        assert_eq!(shown["key_file"], json!(out.display().to_string()));
        assert!(!shown.to_string().contains("PEM"));
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let written: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(written["private_key"], "PEM");
        assert!(check_out(&out).is_err());
        assert!(save_key_file(answer, &out).is_err());
        assert_eq!(
            std::fs::read_to_string(&out)
                .unwrap()
                .matches("PEM")
                .count(),
            1
        );
    }
}
