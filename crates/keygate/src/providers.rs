//! Upstream providers: which provider serves a model, and how each one is
//! called (URL and authentication). One file per wire format.

pub mod anthropic;
pub mod catalogue;
pub mod openai;

use crate::config::{Config, ProviderConfig, ProviderKind};
use crate::error::ApiError;
use globset::{Glob, GlobSet, GlobSetBuilder};
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A data-plane operation, and so the wire format the client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// OpenAI `POST /v1/chat/completions`.
    ChatCompletions,
    /// OpenAI `POST /v1/embeddings`.
    Embeddings,
    /// Anthropic `POST /v1/messages`.
    Messages,
}

impl Operation {
    /// The route path, as recorded in the ledger.
    pub fn route(self) -> &'static str {
        match self {
            Operation::ChatCompletions => "/v1/chat/completions",
            Operation::Embeddings => "/v1/embeddings",
            Operation::Messages => "/v1/messages",
        }
    }

    /// The wire format of the request and response.
    pub fn dialect(self) -> Dialect {
        match self {
            Operation::ChatCompletions | Operation::Embeddings => Dialect::OpenAi,
            Operation::Messages => Dialect::Anthropic,
        }
    }
}

/// A wire format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI (and compatible).
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
}

/// A configured upstream.
#[derive(Debug)]
pub struct Provider {
    /// Name (`openai`, `anthropic`, a configured name, or `mock`).
    pub name: String,
    /// Wire format(s).
    pub kind: ProviderKind,
    /// Endpoints, parsed once so the hot path does not re-parse URLs.
    chat_url: reqwest::Url,
    embeddings_url: reqwest::Url,
    messages_url: reqwest::Url,
    api_key: SecretString,
    models: GlobSet,
}

impl Provider {
    fn new(config: &ProviderConfig) -> Result<Self, String> {
        let mut patterns = config.models.clone();
        if config.from_env {
            patterns.extend(
                catalogue::routing_globs(&config.name)
                    .iter()
                    .map(|s| s.to_string()),
            );
        }
        let mut builder = GlobSetBuilder::new();
        for p in &patterns {
            builder.add(
                Glob::new(p)
                    .map_err(|e| format!("provider {}: model pattern '{p}': {e}", config.name))?,
            );
        }
        // The mock serves both formats under one origin, OpenAI's under /v1.
        let openai_base = match config.kind {
            ProviderKind::Mock => format!("{}/v1", config.base_url),
            _ => config.base_url.clone(),
        };
        let url = |text: String| {
            reqwest::Url::parse(&text)
                .map_err(|e| format!("provider {}: URL {text}: {e}", config.name))
        };
        Ok(Provider {
            name: config.name.clone(),
            kind: config.kind,
            chat_url: url(format!("{openai_base}/chat/completions"))?,
            embeddings_url: url(format!("{openai_base}/embeddings"))?,
            messages_url: url(format!("{}/v1/messages", config.base_url))?,
            api_key: config.api_key.clone(),
            models: builder.build().map_err(|e| e.to_string())?,
        })
    }

    /// Whether this provider speaks `op`'s wire format.
    pub fn supports(&self, op: Operation) -> bool {
        match self.kind {
            ProviderKind::Mock => true,
            ProviderKind::Openai => op.dialect() == Dialect::OpenAi,
            ProviderKind::Anthropic => op == Operation::Messages,
        }
    }

    /// The upstream URL and authentication for `op`.
    pub fn request(&self, client: &reqwest::Client, op: Operation) -> reqwest::RequestBuilder {
        match op {
            Operation::ChatCompletions => openai::request(client, &self.chat_url, &self.api_key),
            Operation::Embeddings => openai::request(client, &self.embeddings_url, &self.api_key),
            Operation::Messages => anthropic::request(client, &self.messages_url, &self.api_key),
        }
    }
}

/// Where a model name leads.
#[derive(Debug, Clone)]
pub struct Route {
    /// The provider.
    pub provider: Arc<Provider>,
    /// The model name the provider knows.
    pub upstream_model: String,
    /// `provider/model`, for allowlists and the ledger.
    pub canonical: String,
}

/// All providers and aliases.
#[derive(Debug)]
pub struct Registry {
    providers: Vec<Arc<Provider>>,
    aliases: BTreeMap<String, (usize, String)>,
}

impl Registry {
    /// Build from configuration. `mock_base` is where the built-in mock
    /// listens when no provider is configured.
    pub fn new(config: &Config, mock_base: Option<String>) -> Result<Self, String> {
        let mut configs = config.providers.clone();
        if let Some(base) = mock_base {
            configs.push(ProviderConfig {
                name: "mock".into(),
                kind: ProviderKind::Mock,
                base_url: base,
                api_key: SecretString::from("mock"),
                models: vec!["*".into()],
                from_env: false,
            });
        }
        let providers = configs
            .iter()
            .map(Provider::new)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .map(Arc::new)
            .collect::<Vec<_>>();
        let mut aliases = BTreeMap::new();
        for (alias, target) in &config.aliases {
            let Some((provider, model)) = target.split_once('/') else {
                return Err(format!("alias {alias}: target must be provider/model"));
            };
            let index = providers
                .iter()
                .position(|p| p.name == provider)
                .ok_or_else(|| format!("alias {alias}: provider {provider} is not configured"))?;
            aliases.insert(alias.clone(), (index, model.to_string()));
        }
        Ok(Registry { providers, aliases })
    }

    /// The providers, in configuration order.
    pub fn providers(&self) -> &[Arc<Provider>] {
        &self.providers
    }

    /// Aliases and their canonical targets.
    pub fn aliases(&self) -> impl Iterator<Item = (&str, String)> {
        self.aliases.iter().map(|(alias, (i, model))| {
            (
                alias.as_str(),
                format!("{}/{}", self.providers[*i].name, model),
            )
        })
    }

    /// Resolve the model a client asked for: an alias, then `provider/model`,
    /// then the first provider whose model patterns match, preferring one
    /// that speaks the client's format.
    pub fn resolve(&self, model: &str, op: Operation) -> Result<Route, ApiError> {
        let route = |provider: &Arc<Provider>, upstream: &str| Route {
            provider: Arc::clone(provider),
            upstream_model: upstream.to_string(),
            canonical: format!("{}/{}", provider.name, upstream),
        };
        let found = if let Some((i, upstream)) = self.aliases.get(model) {
            Some(route(&self.providers[*i], upstream))
        } else if let Some((p, upstream)) = model
            .split_once('/')
            .and_then(|(name, rest)| {
                self.providers
                    .iter()
                    .find(|p| p.name == name)
                    .map(|p| (p, rest))
            })
            .filter(|(_, rest)| !rest.is_empty())
        {
            Some(route(p, upstream))
        } else {
            let mut matching = self.providers.iter().filter(|p| p.models.is_match(model));
            let first = matching.clone().next();
            matching
                .find(|p| p.supports(op))
                .or(first)
                .map(|p| route(p, model))
        };
        let found = found.ok_or_else(|| ApiError::unknown_model(model))?;
        if !found.provider.supports(op) {
            return Err(ApiError::invalid_param(
                "model",
                format!(
                    "The model '{}' is served by provider '{}', which does not speak the {} format of {}.",
                    crate::error::printable(model),
                    found.provider.name,
                    match op.dialect() {
                        Dialect::OpenAi => "OpenAI",
                        Dialect::Anthropic => "Anthropic Messages",
                    },
                    op.route()
                ),
            ));
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawConfig;

    fn registry(env: &[(&str, &str)], file: &str, mock: bool) -> Registry {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let raw: RawConfig = toml::from_str(file).unwrap();
        let config = Config::from_raw(raw, &env).unwrap();
        Registry::new(&config, mock.then(|| "http://127.0.0.1:1".to_string())).unwrap()
    }

    #[test]
    fn routes_by_catalogue_prefix_and_alias() {
        let r = registry(
            &[("OPENAI_API_KEY", "a"), ("ANTHROPIC_API_KEY", "b")],
            "[aliases]\nfast = \"openai/gpt-4o-mini\"\n",
            false,
        );
        let chat = Operation::ChatCompletions;
        assert_eq!(
            r.resolve("gpt-4o", chat).unwrap().canonical,
            "openai/gpt-4o"
        );
        assert_eq!(
            r.resolve("text-embedding-3-small", Operation::Embeddings)
                .unwrap()
                .provider
                .name,
            "openai"
        );
        assert_eq!(
            r.resolve("claude-sonnet-4-5", Operation::Messages)
                .unwrap()
                .canonical,
            "anthropic/claude-sonnet-4-5"
        );
        let alias = r.resolve("fast", chat).unwrap();
        assert_eq!(alias.upstream_model, "gpt-4o-mini");
        assert_eq!(
            r.resolve("anthropic/claude-x", Operation::Messages)
                .unwrap()
                .upstream_model,
            "claude-x"
        );
        assert_eq!(r.resolve("llama-3", chat).unwrap_err().status.as_u16(), 400);
        // Without translation, a Claude model is not reachable in OpenAI format.
        assert_eq!(
            r.resolve("claude-sonnet-4-5", chat).unwrap_err().param,
            Some("model")
        );
    }

    #[test]
    fn mock_answers_every_model_in_both_formats() {
        let r = registry(&[], "", true);
        assert_eq!(
            r.resolve("anything", Operation::ChatCompletions)
                .unwrap()
                .provider
                .name,
            "mock"
        );
        assert_eq!(
            r.resolve("claude-x", Operation::Messages)
                .unwrap()
                .provider
                .name,
            "mock"
        );
    }
}
