//! `[[providers]]`: upstream providers, their endpoints and how keygate
//! authenticates to each.

use super::{invalid, normalise_url, ConfigError, Env};
use crate::credentials::{Credential, CredentialSpec};
use secrecy::SecretString;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Which upstream API a provider is, and so its wire format and auth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// OpenAI and every OpenAI-compatible server (Groq, DeepSeek, vLLM, …):
    /// Bearer key.
    Openai,
    /// Anthropic's Messages API: `x-api-key` + `anthropic-version`.
    Anthropic,
    /// Google AI Studio (Gemini API): `x-goog-api-key`.
    Gemini,
    /// Azure OpenAI: `api-key`, or an Azure AD token (client credentials).
    Azure,
    /// AWS Bedrock Runtime (Converse): SigV4.
    Bedrock,
    /// Google Vertex AI (Gemini and Anthropic models): service-account OAuth.
    Vertex,
    /// keygate's own mock provider: speaks every format, answers every model.
    Mock,
}

/// Azure AD (Entra ID) client-credentials settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAzureAd {
    /// Directory (tenant) id.
    pub tenant_id: String,
    /// Application (client) id.
    pub client_id: String,
    /// Variable holding the client secret.
    pub client_secret_env: Option<String>,
    /// The client secret from any credential source (instead of the variable).
    pub client_secret: Option<CredentialSpec>,
    /// Authority host (default `https://login.microsoftonline.com`).
    pub authority_url: Option<String>,
}

/// One `[[providers]]` entry of the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    /// Name used in `provider/model` and in the ledger.
    pub name: String,
    /// Which API.
    pub kind: ProviderKind,
    /// Base URL (OpenAI style includes `/v1`; the others do not). Defaults
    /// to the provider's public endpoint where there is one.
    pub base_url: Option<String>,
    /// Variable holding the provider key (short for `api_key = { env = … }`).
    pub api_key_env: Option<String>,
    /// Several variables holding keys of the same account or deployment, to
    /// spread load over and fail over between.
    #[serde(default)]
    pub api_key_envs: Vec<String>,
    /// The provider key from any source: `{ env = … }`, `{ file = … }`,
    /// `{ dotenv = …, var = … }`, `{ command = […], ttl = … }`, `{ stored = … }`.
    pub api_key: Option<CredentialSpec>,
    /// Several keys, from any sources.
    #[serde(default)]
    pub api_keys: Vec<CredentialSpec>,
    /// Model globs this provider serves (for routing by bare model name).
    #[serde(default)]
    pub models: Vec<String>,
    /// Share of traffic among providers serving the same model (default 1).
    pub weight: Option<u32>,
    /// Key environments this provider serves (default: all). A `test` key
    /// never spends a provider account reserved for `live`.
    pub environments: Option<Vec<String>>,
    /// Azure: `api-version` query parameter.
    pub api_version: Option<String>,
    /// Azure: model name → deployment name (default: the model name).
    #[serde(default)]
    pub deployments: BTreeMap<String, String>,
    /// Azure: authenticate with Azure AD instead of an `api-key`.
    pub azure_ad: Option<RawAzureAd>,
    /// Bedrock: AWS region (default `AWS_REGION`, then `AWS_DEFAULT_REGION`).
    pub region: Option<String>,
    /// Bedrock: variable holding the access key id (default `AWS_ACCESS_KEY_ID`).
    pub aws_access_key_id_env: Option<String>,
    /// Bedrock: variable holding the secret key (default `AWS_SECRET_ACCESS_KEY`).
    pub aws_secret_access_key_env: Option<String>,
    /// Bedrock: variable holding a session token (default `AWS_SESSION_TOKEN`, optional).
    pub aws_session_token_env: Option<String>,
    /// Bedrock: the secret key from any credential source (instead of the variable).
    pub aws_secret_access_key: Option<CredentialSpec>,
    /// Bedrock: a session token from any credential source (instead of the variable).
    pub aws_session_token: Option<CredentialSpec>,
    /// Vertex: Google Cloud project (default: the key file's `project_id`).
    pub project: Option<String>,
    /// Vertex: location, e.g. `us-central1` or `global`.
    pub location: Option<String>,
    /// Vertex: service-account JSON key file (default
    /// `GOOGLE_APPLICATION_CREDENTIALS`).
    pub service_account_file: Option<PathBuf>,
}

/// Azure AD client credentials, validated.
#[derive(Clone, Debug)]
pub struct AzureAdConfig {
    /// Token endpoint: `{authority}/{tenant}/oauth2/v2.0/token`.
    pub token_url: String,
    /// Application (client) id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: ProviderKey,
}

/// AWS credentials and region for SigV4.
#[derive(Clone, Debug)]
pub struct AwsConfig {
    /// Region, e.g. `us-east-1`.
    pub region: String,
    /// Access key id.
    pub access_key_id: SecretString,
    /// Secret access key.
    pub secret_access_key: ProviderKey,
    /// Session token of temporary credentials.
    pub session_token: Option<ProviderKey>,
}

/// Vertex AI project and service account.
#[derive(Clone, Debug)]
pub struct VertexConfig {
    /// Project id.
    pub project: String,
    /// Location.
    pub location: String,
    /// Service-account key file.
    pub service_account_file: PathBuf,
}

/// One provider key: resolved while configuration is validated (env, files),
/// or when the gateway starts (commands, stored credentials).
#[derive(Clone, Debug)]
pub enum ProviderKey {
    /// Ready to use.
    Ready(Credential),
    /// Resolved by `server::start`, which has the runtime and the vault.
    AtStart(CredentialSpec),
}

impl ProviderKey {
    /// The credential, once resolved (always, after `server::start`).
    pub fn ready(&self) -> Option<&Credential> {
        match self {
            ProviderKey::Ready(credential) => Some(credential),
            ProviderKey::AtStart(_) => None,
        }
    }
}

/// Resolve a credential spec now when it needs nothing but the environment
/// and files, or leave it for `server::start`.
pub(super) fn provider_key(
    spec: CredentialSpec,
    env: &dyn Env,
    setting: &str,
) -> Result<ProviderKey, ConfigError> {
    if spec.needs_gateway() {
        spec.validate()
            .map_err(|e| invalid(setting, e.to_string()))?;
        Ok(ProviderKey::AtStart(spec))
    } else {
        Credential::resolve_sync(&spec, env, None)
            .map(ProviderKey::Ready)
            .map_err(|e| invalid(setting, e.to_string()))
    }
}

/// A configured upstream provider, validated.
#[derive(Clone, Debug)]
pub struct ProviderConfig {
    /// Unique name.
    pub name: String,
    /// Which API.
    pub kind: ProviderKind,
    /// Base URL without a trailing slash.
    pub base_url: String,
    /// Provider keys (none for Azure AD, Bedrock and Vertex); never logged,
    /// never forwarded anywhere but this provider.
    pub keys: Vec<ProviderKey>,
    /// Model globs served (empty: only by alias or `provider/model`).
    pub models: Vec<String>,
    /// Whether it came from a provider's standard environment variable (and
    /// so uses the built-in model catalogue for routing).
    pub from_env: bool,
    /// Share of traffic among providers serving the same model.
    pub weight: u32,
    /// Key environments served; empty means all.
    pub environments: Vec<String>,
    /// Azure `api-version`.
    pub api_version: Option<String>,
    /// Azure model → deployment.
    pub deployments: BTreeMap<String, String>,
    /// Azure AD client credentials.
    pub azure_ad: Option<AzureAdConfig>,
    /// Bedrock credentials.
    pub aws: Option<AwsConfig>,
    /// Vertex settings.
    pub vertex: Option<VertexConfig>,
}

impl ProviderConfig {
    /// A provider with one key and defaults for everything kind-specific.
    pub fn simple(
        name: &str,
        kind: ProviderKind,
        base_url: String,
        key: Credential,
        models: Vec<String>,
        from_env: bool,
    ) -> Self {
        ProviderConfig {
            name: name.into(),
            kind,
            base_url,
            keys: vec![ProviderKey::Ready(key)],
            models,
            from_env,
            weight: 1,
            environments: Vec::new(),
            api_version: None,
            deployments: BTreeMap::new(),
            azure_ad: None,
            aws: None,
            vertex: None,
        }
    }
}

/// The newest Azure OpenAI GA `api-version` keygate was tested against.
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";

fn secret_var(env: &dyn Env, setting: &str, var: &str) -> Result<SecretString, ConfigError> {
    env.var(var)
        .map(SecretString::from)
        .ok_or_else(|| invalid(setting, format!("environment variable {var} is not set")))
}

/// Validate one `[[providers]]` entry; `environments` are the key
/// environments the gateway knows.
pub fn validate(
    p: RawProvider,
    env: &dyn Env,
    environments: &[String],
) -> Result<ProviderConfig, ConfigError> {
    let setting = format!("providers.{}", p.name);
    let served = p.environments.clone().unwrap_or_default();
    if let Some(unknown) = served.iter().find(|e| !environments.contains(e)) {
        return Err(invalid(
            &setting,
            format!(
                "environment '{unknown}' is not one of the configured environments ({})",
                environments.join(", ")
            ),
        ));
    }
    if p.name.is_empty() || p.name.contains('/') || p.name.len() > 64 {
        return Err(invalid(
            setting,
            "name must be 1-64 characters and contain no '/'",
        ));
    }
    let mut specs: Vec<CredentialSpec> = p
        .api_key_env
        .iter()
        .chain(p.api_key_envs.iter())
        .map(|var| CredentialSpec::Env { env: var.clone() })
        .collect();
    specs.extend(p.api_key.iter().cloned());
    specs.extend(p.api_keys.iter().cloned());
    let keys = specs
        .into_iter()
        .map(|spec| provider_key(spec, env, &setting))
        .collect::<Result<Vec<_>, ConfigError>>()?;
    let needs_key = match p.kind {
        ProviderKind::Openai | ProviderKind::Anthropic | ProviderKind::Gemini => true,
        ProviderKind::Azure => p.azure_ad.is_none(),
        ProviderKind::Bedrock | ProviderKind::Vertex | ProviderKind::Mock => false,
    };
    let mut keys = keys;
    if p.kind == ProviderKind::Mock && keys.is_empty() {
        // The mock checks only that a key is present.
        keys.push(ProviderKey::Ready(Credential::fixed(
            "mock",
            SecretString::from("mock"),
        )));
    }
    if needs_key && keys.is_empty() {
        return Err(invalid(
            &setting,
            "api_key_env (or api_key_envs) is required",
        ));
    }
    let default_url = |url: &str| -> Result<String, ConfigError> {
        match &p.base_url {
            Some(base) => normalise_url(&setting, base),
            None => Ok(url.to_string()),
        }
    };
    let mut aws = None;
    let mut vertex = None;
    let mut azure_ad = None;
    let base_url = match p.kind {
        ProviderKind::Openai => default_url("https://api.openai.com/v1")?,
        ProviderKind::Anthropic => default_url("https://api.anthropic.com")?,
        ProviderKind::Gemini => default_url("https://generativelanguage.googleapis.com")?,
        ProviderKind::Mock => default_url("http://127.0.0.1:9090")?,
        ProviderKind::Azure => {
            let base = p.base_url.as_deref().ok_or_else(|| {
                invalid(
                    &setting,
                    "base_url (https://<resource>.openai.azure.com) is required",
                )
            })?;
            if let Some(ad) = &p.azure_ad {
                let authority = ad
                    .authority_url
                    .as_deref()
                    .unwrap_or("https://login.microsoftonline.com");
                let authority = normalise_url(&setting, authority)?;
                azure_ad = Some(AzureAdConfig {
                    token_url: format!("{authority}/{}/oauth2/v2.0/token", ad.tenant_id),
                    client_id: ad.client_id.clone(),
                    client_secret: match (&ad.client_secret, &ad.client_secret_env) {
                        (Some(spec), None) => provider_key(spec.clone(), env, &setting)?,
                        (None, Some(var)) => {
                            provider_key(CredentialSpec::Env { env: var.clone() }, env, &setting)?
                        }
                        _ => {
                            return Err(invalid(
                                &setting,
                                "azure_ad needs exactly one of client_secret and client_secret_env",
                            ))
                        }
                    },
                });
            }
            normalise_url(&setting, base)?
        }
        ProviderKind::Bedrock => {
            let region = p
                .region
                .clone()
                .or_else(|| env.var("AWS_REGION"))
                .or_else(|| env.var("AWS_DEFAULT_REGION"))
                .ok_or_else(|| invalid(&setting, "region (or AWS_REGION) is required"))?;
            if !region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return Err(invalid(
                    &setting,
                    format!("'{region}' is not an AWS region"),
                ));
            }
            let var = |own: &Option<String>, standard: &str| {
                own.clone().unwrap_or_else(|| standard.to_string())
            };
            let token_var = var(&p.aws_session_token_env, "AWS_SESSION_TOKEN");
            let secret_spec =
                p.aws_secret_access_key
                    .clone()
                    .unwrap_or_else(|| CredentialSpec::Env {
                        env: var(&p.aws_secret_access_key_env, "AWS_SECRET_ACCESS_KEY"),
                    });
            let token_spec = match &p.aws_session_token {
                Some(spec) => Some(spec.clone()),
                // The standard variable is optional: temporary credentials only.
                None => env.var(&token_var).map(|_| CredentialSpec::Env {
                    env: token_var.clone(),
                }),
            };
            aws = Some(AwsConfig {
                access_key_id: secret_var(
                    env,
                    &setting,
                    &var(&p.aws_access_key_id_env, "AWS_ACCESS_KEY_ID"),
                )?,
                secret_access_key: provider_key(secret_spec, env, &setting)?,
                session_token: token_spec
                    .map(|spec| provider_key(spec, env, &setting))
                    .transpose()?,
                region: region.clone(),
            });
            default_url(&format!("https://bedrock-runtime.{region}.amazonaws.com"))?
        }
        ProviderKind::Vertex => {
            let file = p
                .service_account_file
                .clone()
                .or_else(|| env.var("GOOGLE_APPLICATION_CREDENTIALS").map(PathBuf::from))
                .ok_or_else(|| {
                    invalid(
                        &setting,
                        "service_account_file (or GOOGLE_APPLICATION_CREDENTIALS) is required",
                    )
                })?;
            let project = match p.project.clone() {
                Some(project) => project,
                None => project_of_key_file(&file)
                    .ok_or_else(|| invalid(&setting, "project is required"))?,
            };
            let location = p.location.clone().unwrap_or_else(|| "us-central1".into());
            let valid = |s: &str| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            };
            if !valid(&project) || !valid(&location) {
                return Err(invalid(
                    &setting,
                    "project and location must be plain names",
                ));
            }
            let host = if location == "global" {
                "https://aiplatform.googleapis.com".to_string()
            } else {
                format!("https://{location}-aiplatform.googleapis.com")
            };
            vertex = Some(VertexConfig {
                project,
                location,
                service_account_file: file,
            });
            default_url(&host)?
        }
    };
    let api_version = match p.kind {
        ProviderKind::Azure => Some(
            p.api_version
                .clone()
                .unwrap_or_else(|| DEFAULT_AZURE_API_VERSION.into()),
        ),
        _ => None,
    };
    let weight = p.weight.unwrap_or(1);
    if weight == 0 || weight > 1000 {
        return Err(invalid(&setting, "weight must be 1-1000"));
    }
    Ok(ProviderConfig {
        name: p.name,
        kind: p.kind,
        base_url,
        keys,
        models: p.models,
        from_env: false,
        weight,
        environments: served,
        api_version,
        deployments: p.deployments,
        azure_ad,
        aws,
        vertex,
    })
}

/// The `project_id` of a service-account key file, when readable.
fn project_of_key_file(path: &std::path::Path) -> Option<String> {
    #[derive(Deserialize)]
    struct KeyFile {
        project_id: Option<String>,
    }
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str::<KeyFile>(&text).ok()?.project_id
}
