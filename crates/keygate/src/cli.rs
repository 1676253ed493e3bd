//! The `keygate` command line: one file per command group.

mod admin_client;
mod admin_credentials;
mod audit;
mod incident;
mod keys;
mod limits;
mod oauth_clients;
mod output;
mod provider_credentials;
mod scan;
mod serve;
mod service_accounts;
mod tenancy;
mod trust;
mod usage;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// keygate: one gateway, one key, every AI provider.
#[derive(Debug, Parser)]
#[command(name = "keygate", version, about)]
pub struct Cli {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: Command,
}

/// Which gateway operator commands talk to, and as whom.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// Gateway URL for operator commands.
    #[arg(
        long,
        global = true,
        env = "KEYGATE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// Admin credential (default: the bootstrap file in the data directory).
    #[arg(long, global = true, env = "KEYGATE_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,
    /// Data directory (SQLite file, server secret, bootstrap admin credential).
    #[arg(long, global = true, env = "KEYGATE_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(serve::ServeArgs),
    /// Run a fake upstream provider (OpenAI and Anthropic formats) for tests and demos.
    MockProvider(crate::mock::MockOptions),
    /// Create, list, show, update, rotate, suspend, resume and revoke API keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Show usage totals by key and model.
    Usage(usage::UsageArgs),
    /// Read the audit log (admin changes and refused admin sign-ins).
    Audit(audit::AuditArgs),
    /// Create, list and show organisations; set their budgets, owner
    /// budgets and prepaid balances.
    #[command(subcommand)]
    Orgs(tenancy::OrgsCommand),
    /// Create, list and show projects; set their limits.
    #[command(subcommand)]
    Projects(tenancy::ProjectsCommand),
    /// Hand out and revoke admin credentials with a role and a scope.
    #[command(subcommand)]
    AdminCredentials(admin_credentials::AdminCredentialsCommand),
    /// Store, list, rotate and delete provider (upstream) secrets kept
    /// encrypted in the database; rotate their master key.
    #[command(subcommand)]
    ProviderCredentials(provider_credentials::ProviderCredentialsCommand),
    /// Contain a leaked key: revoke it now (optionally mint a replacement)
    /// and report what it did while exposed.
    Incident(incident::IncidentArgs),
    /// Register and list OAuth clients (client credentials grant).
    #[command(subcommand)]
    OauthClients(oauth_clients::OAuthClientsCommand),
    /// Create and list service accounts (key files whose signed assertions
    /// get short-lived tokens); add, list, disable and enable their keys.
    #[command(subcommand)]
    ServiceAccounts(service_accounts::ServiceAccountsCommand),
    /// Trust OIDC issuers (GitHub Actions, Kubernetes, a cloud): their
    /// identity tokens that match claim rules get short-lived tokens.
    #[command(subcommand)]
    Trust(trust::TrustCommand),
    /// Find leaked secrets (keygate keys and every major provider's) in
    /// files and git history. Exit status: 0 nothing found, 1 found, 2 error.
    Scan(scan::ScanArgs),
}

/// Output format of operator commands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    #[default]
    Table,
    /// JSON for programs.
    Json,
    /// CSV for spreadsheets: a header line, then one record a row.
    Csv,
}

/// Parse the command line and run it.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Serve(args) = cli.command {
        // The gateway runs its own runtimes, one per worker thread.
        return report(serve::run(args, &cli.target));
    }
    if let Command::Scan(args) = cli.command {
        // Threads of its own; a runtime only for --verify. Exit 1 means
        // "found", so errors exit 2.
        return scan::run(args, &cli.target);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(_) | Command::Scan(_) => Ok(()),
            Command::MockProvider(options) => crate::mock::run(options).await,
            Command::Keys(command) => keys::run(command, &cli.target).await,
            Command::Usage(args) => usage::run(args, &cli.target).await,
            Command::Audit(args) => audit::run(args, &cli.target).await,
            Command::Orgs(command) => tenancy::run_orgs(command, &cli.target).await,
            Command::Projects(command) => tenancy::run_projects(command, &cli.target).await,
            Command::AdminCredentials(command) => {
                admin_credentials::run(command, &cli.target).await
            }
            Command::ProviderCredentials(command) => {
                provider_credentials::run(command, &cli.target).await
            }
            Command::OauthClients(command) => oauth_clients::run(command, &cli.target).await,
            Command::Incident(args) => incident::run(args, &cli.target).await,
            Command::ServiceAccounts(command) => service_accounts::run(command, &cli.target).await,
            Command::Trust(command) => trust::run(command, &cli.target).await,
        }
    });
    report(result)
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
