//! `keygate serve`

use super::Target;
use crate::config::{Config, FlagsOverEnv};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Flags of `keygate serve`; each also has a `KEYGATE_*` variable.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "KEYGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (KEYGATE_LISTEN; default 127.0.0.1:8080).
    #[arg(long)]
    listen: Option<String>,
    /// PostgreSQL URL (KEYGATE_DATABASE_URL; default: SQLite in the data directory).
    #[arg(long)]
    database_url: Option<String>,
}

pub(super) fn run(args: ServeArgs, target: &Target) -> anyhow::Result<()> {
    crate::telemetry::init();
    let mut flags = BTreeMap::new();
    if let Some(listen) = args.listen {
        flags.insert("KEYGATE_LISTEN".to_string(), listen);
    }
    if let Some(url) = args.database_url {
        flags.insert("KEYGATE_DATABASE_URL".to_string(), url);
    }
    if let Some(dir) = &target.data_dir {
        flags.insert("KEYGATE_DATA_DIR".to_string(), dir.display().to_string());
    }
    let config = Config::load(args.config.as_deref(), &FlagsOverEnv(flags))?;
    crate::server::serve(config)?;
    Ok(())
}
