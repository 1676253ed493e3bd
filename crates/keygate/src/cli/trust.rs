//! `keygate trust add-issuer|list|disable|enable`: workload identity
//! federation, identity tokens of a trusted OIDC issuer (GitHub Actions,
//! Kubernetes, a cloud) exchanged for keygate tokens.

use super::admin_client::AdminClient;
use super::keys::{path_segment, PolicyFlags};
use super::limits::LimitFlags;
use super::output::print;
use super::{Format, Target};
use anyhow::{bail, Context};
use reqwest::Method;
use serde_json::{json, Map, Value};
use std::path::PathBuf;

const COLUMNS: &[&str] = &[
    "id",
    "name",
    "status",
    "issuer",
    "audience",
    "claims",
    "token_ttl_s",
    "key_id",
    "created_at",
];

/// Trusted issuer commands.
// Parsed once per run: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, clap::Subcommand)]
pub enum TrustCommand {
    /// Trust an OIDC issuer's identity tokens that match claim rules.
    ///
    /// Example (GitHub Actions, main branch of one repository):
    /// keygate trust add-issuer --issuer https://token.actions.githubusercontent.com
    /// --audience https://keygate.example --claim repository=acme/app
    /// --claim ref=refs/heads/main --models gpt-4o-mini --budget 20
    AddIssuer {
        /// The issuer (`iss`): an https:// URL.
        #[arg(long)]
        issuer: String,
        /// The audience (`aud`) its identity tokens must carry.
        #[arg(long)]
        audience: String,
        /// Where its keys are (default: found by OIDC discovery).
        #[arg(long, value_name = "URL", conflicts_with = "jwks_file")]
        jwks_uri: Option<String>,
        /// A file holding its keys (a JWK set), instead of fetching them.
        #[arg(long, value_name = "FILE")]
        jwks_file: Option<PathBuf>,
        /// A claim rule, NAME=GLOB (wildcards * and ?); repeat for more.
        /// At least one: every rule must hold.
        #[arg(long = "claim", value_name = "NAME=GLOB", required = true)]
        claims: Vec<String>,
        /// Lifetime of the tokens it mints (default 15m).
        #[arg(long, value_name = "DURATION")]
        token_ttl: Option<String>,
        /// Human name (default: the issuer).
        #[arg(long)]
        name: Option<String>,
        /// Model allowlist, comma-separated globs (default: every model).
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        /// Expiry of the rule's key record: a duration or an RFC 3339 time.
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
    /// List trusted issuer rules.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Stop trusting a rule: its identity tokens are refused.
    Disable {
        /// Rule id (`tis_…`).
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Trust a disabled rule again.
    Enable {
        /// Rule id (`tis_…`).
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// `NAME=GLOB` pairs as a JSON object; a name given twice is refused.
fn parse_claims(pairs: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut claims = Map::new();
    for pair in pairs {
        let Some((name, glob)) = pair.split_once('=') else {
            bail!("--claim takes NAME=GLOB (e.g. repository=acme/app), not '{pair}'");
        };
        let name = name.trim();
        if claims
            .insert(name.to_string(), Value::String(glob.to_string()))
            .is_some()
        {
            bail!("--claim names '{name}' twice; a claim has one rule");
        }
    }
    Ok(claims)
}

/// A rule as a table shows it: claims as `name=glob` pairs.
fn table_row(mut rule: Value) -> Value {
    if let Some(claims) = rule["claims"].as_object() {
        let text: Vec<String> = claims
            .iter()
            .map(|(name, glob)| format!("{name}={}", glob.as_str().unwrap_or_default()))
            .collect();
        rule["claims"] = Value::String(text.join(" "));
    }
    rule
}

pub(super) async fn run(command: TrustCommand, target: &Target) -> anyhow::Result<()> {
    let client = AdminClient::new(target)?;
    match command {
        TrustCommand::AddIssuer {
            issuer,
            audience,
            jwks_uri,
            jwks_file,
            claims,
            token_ttl,
            name,
            models,
            expires,
            policy,
            limits,
            format,
        } => {
            let mut body = json!({
                "issuer": issuer,
                "audience": audience,
                "claims": parse_claims(&claims)?,
                "models": models,
            });
            if let Some(jwks_uri) = jwks_uri {
                body["jwks_uri"] = Value::String(jwks_uri);
            }
            if let Some(path) = jwks_file {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let jwks: Value = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not JSON", path.display()))?;
                body["jwks"] = jwks;
            }
            for (field, value) in [
                ("token_ttl", token_ttl),
                ("name", name),
                ("expires", expires),
            ] {
                if let Some(value) = value {
                    body[field] = Value::String(value);
                }
            }
            policy.apply(&mut body);
            limits.apply(&mut body)?;
            let rule = client
                .call(Method::POST, "/trusted-issuers", &[], Some(body))
                .await?;
            print(format, &rule, &[table_row(rule.clone())], COLUMNS);
        }
        TrustCommand::List { format } => {
            let list = client
                .call(Method::GET, "/trusted-issuers", &[], None)
                .await?;
            let rows = list["data"].as_array().cloned().unwrap_or_default();
            let table: Vec<Value> = rows.iter().cloned().map(table_row).collect();
            print(format, &Value::Array(rows), &table, COLUMNS);
        }
        TrustCommand::Disable { id, format } => action(&client, &id, "disable", format).await?,
        TrustCommand::Enable { id, format } => action(&client, &id, "enable", format).await?,
    }
    Ok(())
}

async fn action(client: &AdminClient, id: &str, verb: &str, format: Format) -> anyhow::Result<()> {
    let path = format!("/trusted-issuers/{}/{verb}", path_segment(id));
    let rule = client.call(Method::POST, &path, &[], None).await?;
    print(format, &rule, &[table_row(rule.clone())], COLUMNS);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_name_equals_glob() {
        let claims = parse_claims(&[
            "repository=acme/app".into(),
            "sub=repo:acme/app:ref=x".into(),
        ])
        .unwrap();
        assert_eq!(claims["repository"], "acme/app");
        assert_eq!(claims["sub"], "repo:acme/app:ref=x");
        assert!(parse_claims(&["repository".into()]).is_err());
        assert!(parse_claims(&["a=1".into(), "a=2".into()]).is_err());
    }
}
