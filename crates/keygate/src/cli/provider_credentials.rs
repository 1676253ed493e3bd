//! `keygate provider-credentials add|list|show|update|rm|rekey`
//!
//! All but `rekey` talk to the admin API of a running gateway. Secrets are
//! read from a file (`--secret-file`) or standard input, never from the
//! command line (where `ps` and shell history would see them).
//!
//! `rekey` rotates the master key offline: with every gateway stopped, it
//! opens the store the configuration names, re-wraps every data key from
//! the current master key to the new one in one transaction, and the
//! gateways are then started with the new key.

use super::admin_client::AdminClient;
use super::output::print;
use super::{Format, Target};
use crate::config::{Config, FlagsOverEnv};
use crate::credentials::MasterKeySource;
use anyhow::{bail, Context};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use zeroize::Zeroizing;

const COLUMNS: &[&str] = &[
    "name",
    "description",
    "hint",
    "master_key_id",
    "created_at",
    "updated_at",
];

/// Stored provider credential commands.
#[derive(Debug, clap::Subcommand)]
pub enum ProviderCredentialsCommand {
    /// Store a provider secret, encrypted; read from --secret-file or stdin.
    Add {
        /// Name providers refer to (`api_key = { stored = "NAME" }`).
        name: String,
        /// File holding the secret (default: read standard input).
        #[arg(long)]
        secret_file: Option<PathBuf>,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List stored provider credentials (metadata only).
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show one stored provider credential (metadata only).
    Show {
        /// Name.
        name: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Replace the secret (rotation); read from --secret-file or stdin.
    Update {
        /// Name.
        name: String,
        /// File holding the new secret (default: read standard input).
        #[arg(long)]
        secret_file: Option<PathBuf>,
        /// New description.
        #[arg(long)]
        description: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Delete a stored provider credential.
    Rm {
        /// Name.
        name: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Rotate the master key: re-wrap every data key under a new master key
    /// (offline: stop the gateways first, start them with the new key after).
    Rekey {
        /// File holding the new master key (base64 of 32 bytes).
        #[arg(
            long,
            conflicts_with = "new_master_key_command",
            required_unless_present = "new_master_key_command"
        )]
        new_master_key_file: Option<PathBuf>,
        /// Command printing the new master key (split on whitespace, no shell).
        #[arg(long)]
        new_master_key_command: Option<String>,
        /// Create --new-master-key-file with a random key if it does not exist.
        #[arg(long, requires = "new_master_key_file")]
        generate: bool,
        /// TOML configuration file (as for `serve`): names the store and the
        /// current master key.
        #[arg(long, env = "KEYGATE_CONFIG")]
        config: Option<PathBuf>,
        /// PostgreSQL URL (default: SQLite in the data directory).
        #[arg(long)]
        database_url: Option<String>,
    },
}

pub(super) async fn run(
    command: ProviderCredentialsCommand,
    target: &Target,
) -> anyhow::Result<()> {
    if let ProviderCredentialsCommand::Rekey {
        new_master_key_file,
        new_master_key_command,
        generate,
        config,
        database_url,
    } = command
    {
        return rekey(
            new_master_key_file,
            new_master_key_command,
            generate,
            config,
            database_url,
            target,
        )
        .await;
    }
    let client = AdminClient::new(target)?;
    match command {
        ProviderCredentialsCommand::Add {
            name,
            secret_file,
            description,
            format,
        } => {
            let secret = read_secret(secret_file.as_ref())?;
            let mut body = json!({ "name": name, "secret": secret.as_str() });
            if let Some(description) = description {
                body["description"] = Value::String(description);
            }
            let created = client
                .call(Method::POST, "/provider-credentials", &[], Some(body))
                .await?;
            print(format, &created, std::slice::from_ref(&created), COLUMNS);
        }
        ProviderCredentialsCommand::List { format } => {
            let list = client
                .call(Method::GET, "/provider-credentials", &[], None)
                .await?;
            let rows = list["data"].as_array().cloned().unwrap_or_default();
            print(format, &Value::Array(rows.clone()), &rows, COLUMNS);
        }
        ProviderCredentialsCommand::Show { name, format } => {
            let one = client.call(Method::GET, &path(&name)?, &[], None).await?;
            print(format, &one, std::slice::from_ref(&one), COLUMNS);
        }
        ProviderCredentialsCommand::Update {
            name,
            secret_file,
            description,
            format,
        } => {
            let path = path(&name)?;
            let secret = read_secret(secret_file.as_ref())?;
            let mut body = json!({ "secret": secret.as_str() });
            if let Some(description) = description {
                body["description"] = Value::String(description);
            }
            let updated = client.call(Method::PUT, &path, &[], Some(body)).await?;
            print(format, &updated, std::slice::from_ref(&updated), COLUMNS);
        }
        ProviderCredentialsCommand::Rm { name, format } => {
            let deleted = client
                .call(Method::DELETE, &path(&name)?, &[], None)
                .await?;
            print(format, &deleted, std::slice::from_ref(&deleted), COLUMNS);
        }
        ProviderCredentialsCommand::Rekey { .. } => {}
    }
    Ok(())
}

fn path(name: &str) -> anyhow::Result<String> {
    if !crate::credentials::stored_name_is_valid(name) {
        bail!(
            "'{}' is not a provider credential name (letters, digits, '.', '_', '-')",
            crate::error::printable(name)
        );
    }
    Ok(format!("/provider-credentials/{name}"))
}

/// The secret from `file`, or standard input; trimmed.
fn read_secret(file: Option<&PathBuf>) -> anyhow::Result<Zeroizing<String>> {
    let mut text = Zeroizing::new(String::new());
    match file {
        Some(path) => {
            std::fs::File::open(path)
                .and_then(|mut f| f.read_to_string(&mut text))
                .with_context(|| format!("reading the secret from {}", path.display()))?;
        }
        None => {
            use std::io::IsTerminal;
            if std::io::stdin().is_terminal() {
                eprintln!("Paste the secret, then press Enter and Ctrl-D:");
            }
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the secret from standard input")?;
        }
    }
    let trimmed = Zeroizing::new(text.trim().to_string());
    if trimmed.is_empty() {
        bail!("the secret is empty");
    }
    Ok(trimmed)
}

async fn rekey(
    new_file: Option<PathBuf>,
    new_command: Option<String>,
    generate: bool,
    config_file: Option<PathBuf>,
    database_url: Option<String>,
    target: &Target,
) -> anyhow::Result<()> {
    let mut flags = BTreeMap::new();
    if let Some(url) = database_url {
        flags.insert("KEYGATE_DATABASE_URL".to_string(), url);
    }
    if let Some(dir) = &target.data_dir {
        flags.insert("KEYGATE_DATA_DIR".to_string(), dir.display().to_string());
    }
    let config = Config::load(config_file.as_deref(), &FlagsOverEnv(flags))?;
    let new_source = match (new_file, new_command) {
        (Some(file), _) => {
            if generate && !file.exists() {
                let key = crate::credentials::MasterKey::generate()?;
                let mut text = secrecy::ExposeSecret::expose_secret(&key.to_base64())
                    .as_bytes()
                    .to_vec();
                text.push(b'\n');
                let written = crate::config::write_owner_only(&file, &text);
                zeroize::Zeroize::zeroize(&mut text);
                written.with_context(|| format!("writing {}", file.display()))?;
                eprintln!("created {} (readable only by its owner)", file.display());
            }
            MasterKeySource::File(file)
        }
        (None, Some(command)) => MasterKeySource::command(&command)?,
        (None, None) => bail!("give --new-master-key-file or --new-master-key-command"),
    };
    let store = crate::store::open(&config).await?;
    let new = new_source
        .load(false)
        .await?
        .context("the new master key could not be loaded")?;
    let Some(old) = config.master_key.load(false).await? else {
        if store.list_provider_credentials().await?.is_empty() {
            println!(
                "no stored provider credentials; start the gateway with the new master key ({})",
                new.id()
            );
            return Ok(());
        }
        bail!(
            "the current master key ({}) is missing",
            config.master_key.describe()
        );
    };
    if old.id() == new.id() {
        bail!("the new master key is the current one ({})", old.id());
    }
    let count = crate::credentials::rekey(store.as_ref(), &old, &new).await?;
    println!(
        "re-wrapped {count} stored provider credential(s) from master key {} to {}.",
        old.id(),
        new.id()
    );
    println!(
        "Start every gateway with the new key ({}); the old one no longer opens them.",
        new_source.describe()
    );
    Ok(())
}
