//! Logging: `KEYGATE_LOG` (an env-filter, default `info`) and
//! `KEYGATE_LOG_FORMAT` (`text` or `json`), to standard error.

use tracing_subscriber::EnvFilter;

/// Install the global subscriber once.
pub fn init() {
    let filter = EnvFilter::try_from_env("KEYGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("KEYGATE_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
