//! Upstream providers: which providers serve a model, in which order to try
//! them, and how each one is called (URL, authentication, wire format). One
//! file per provider API.

pub mod anthropic;
pub mod azure;
pub mod bedrock;
pub mod catalogue;
pub mod gemini;
pub mod openai;
pub mod vertex;

use crate::config::{Config, ProviderConfig, ProviderKey, ProviderKind};
use crate::credentials::Credential;
use crate::error::ApiError;
use crate::translate::Format;
use bytes::Bytes;
use globset::{Glob, GlobSet, GlobSetBuilder};
use http::HeaderMap;
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
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
    /// Gemini `POST /v1beta/models/{model}:generateContent` (or `:streamGenerateContent`).
    GenerateContent,
}

impl Operation {
    /// The route, as recorded in the ledger.
    pub fn route(self) -> &'static str {
        match self {
            Operation::ChatCompletions => "/v1/chat/completions",
            Operation::Embeddings => "/v1/embeddings",
            Operation::Messages => "/v1/messages",
            Operation::GenerateContent => "/v1beta/models:generateContent",
        }
    }

    /// The route family keys are scoped by.
    pub fn scope(self) -> crate::policy::Scope {
        match self {
            Operation::ChatCompletions => crate::policy::Scope::Chat,
            Operation::Embeddings => crate::policy::Scope::Embeddings,
            Operation::Messages => crate::policy::Scope::Messages,
            Operation::GenerateContent => crate::policy::Scope::Generate,
        }
    }

    /// The wire format of the client's request and response; `None` for
    /// embeddings, which are only relayed between OpenAI-format peers.
    pub fn client_format(self) -> Option<Format> {
        match self {
            Operation::ChatCompletions => Some(Format::OpenAiChat),
            Operation::Embeddings => None,
            Operation::Messages => Some(Format::Anthropic),
            Operation::GenerateContent => Some(Format::Gemini),
        }
    }
}

/// Longest a failing upstream key or provider is skipped, unless the
/// provider says when to come back (`Retry-After`).
const MAX_COOLDOWN_MS: i64 = 10 * 60 * 1000;

/// Why an upstream attempt failed, and so how long to avoid what failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The provider refused this key (401/403): the key is dead or rotated.
    KeyRefused,
    /// Rate limited (429), with the provider's `Retry-After` seconds.
    RateLimited(Option<u64>),
    /// Connect error, timeout or 5xx: the provider (or the route to it) is down.
    Unavailable,
}

/// One provider key (or, for token-authenticated providers, the one
/// identity), with its health.
#[derive(Debug)]
pub struct UpstreamKey {
    credential: Option<Credential>,
    cooled_until_ms: AtomicI64,
}

/// How a provider authenticates, and the state that needs (cached tokens).
#[derive(Debug)]
enum Auth {
    /// A key per request (Bearer, `x-api-key`, `x-goog-api-key`, `api-key`).
    Key,
    /// Azure AD access tokens from client credentials.
    AzureAd(azure::TokenSource),
    /// AWS SigV4.
    SigV4(bedrock::Signer),
    /// Google service-account access tokens.
    ServiceAccount(vertex::TokenSource),
}

/// A provider's failover state at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderHealth {
    /// The provider is tried last until then (it failed as a whole).
    pub cooled_until_ms: Option<i64>,
    /// Each upstream key, in configuration order: tried last until then.
    pub keys_cooled_until_ms: Vec<Option<i64>>,
    /// Where it forwards (no credential in it).
    pub base_url: String,
}

/// A configured upstream.
#[derive(Debug)]
pub struct Provider {
    /// Name (`openai`, `anthropic`, a configured name, or `mock`).
    pub name: String,
    /// Which API.
    pub kind: ProviderKind,
    /// Share of traffic among providers serving the same model.
    pub weight: u32,
    config: ProviderConfig,
    base: reqwest::Url,
    /// OpenAI-format endpoints, parsed once (the hot path).
    chat_url: reqwest::Url,
    embeddings_url: reqwest::Url,
    messages_url: reqwest::Url,
    keys: Vec<UpstreamKey>,
    auth: Auth,
    models: GlobSet,
    cooled_until_ms: AtomicI64,
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
        // The mock serves every format under one origin, OpenAI's under /v1.
        let openai_base = match config.kind {
            ProviderKind::Mock => format!("{}/v1", config.base_url),
            _ => config.base_url.clone(),
        };
        let url = |text: String| {
            reqwest::Url::parse(&text)
                .map_err(|e| format!("provider {}: URL {text}: {e}", config.name))
        };
        let auth = match config.kind {
            ProviderKind::Azure => match &config.azure_ad {
                Some(ad) => Auth::AzureAd(azure::TokenSource::new(ad.clone())),
                None => Auth::Key,
            },
            ProviderKind::Bedrock => match &config.aws {
                Some(aws) => Auth::SigV4(bedrock::Signer::new(aws.clone())),
                None => return Err(format!("provider {}: AWS credentials missing", config.name)),
            },
            ProviderKind::Vertex => match &config.vertex {
                Some(vertex) => Auth::ServiceAccount(
                    vertex::TokenSource::from_file(&vertex.service_account_file)
                        .map_err(|e| format!("provider {}: {e}", config.name))?,
                ),
                None => return Err(format!("provider {}: Vertex settings missing", config.name)),
            },
            _ => Auth::Key,
        };
        let mut keys: Vec<UpstreamKey> = config
            .keys
            .iter()
            .map(|key| match key {
                ProviderKey::Ready(credential) => Ok(UpstreamKey {
                    credential: Some(credential.clone()),
                    cooled_until_ms: AtomicI64::new(0),
                }),
                ProviderKey::AtStart(_) => Err(format!(
                    "provider {}: a key was not resolved at start",
                    config.name
                )),
            })
            .collect::<Result<_, _>>()?;
        if keys.is_empty() || !matches!(auth, Auth::Key) {
            // Token-authenticated providers have one identity.
            keys = vec![UpstreamKey {
                credential: None,
                cooled_until_ms: AtomicI64::new(0),
            }];
        }
        Ok(Provider {
            name: config.name.clone(),
            kind: config.kind,
            weight: config.weight,
            base: url(config.base_url.clone())?,
            chat_url: url(format!("{openai_base}/chat/completions"))?,
            embeddings_url: url(format!("{openai_base}/embeddings"))?,
            messages_url: url(format!("{}/v1/messages", config.base_url))?,
            keys,
            auth,
            models: builder.build().map_err(|e| e.to_string())?,
            cooled_until_ms: AtomicI64::new(0),
            config: config.clone(),
        })
    }

    /// The wire format this provider is called in for `op` on `model`, or
    /// `None` when it cannot serve `op` at all.
    pub fn format(&self, op: Operation, model: &str) -> Option<Format> {
        if op == Operation::Embeddings {
            return matches!(
                self.kind,
                ProviderKind::Openai | ProviderKind::Azure | ProviderKind::Mock
            )
            .then_some(Format::OpenAiChat);
        }
        Some(match self.kind {
            ProviderKind::Openai | ProviderKind::Azure => Format::OpenAiChat,
            ProviderKind::Anthropic => Format::Anthropic,
            ProviderKind::Gemini => Format::Gemini,
            ProviderKind::Bedrock => Format::Converse,
            ProviderKind::Vertex if vertex::is_anthropic(model) => Format::Anthropic,
            ProviderKind::Vertex => Format::Gemini,
            ProviderKind::Mock => op.client_format()?,
        })
    }

    /// Whether the client's body can be relayed byte for byte (after the
    /// small rewrites of `proxy::body::rewrite`) rather than translated.
    pub fn relays_as_is(&self, op: Operation, model: &str) -> bool {
        match op.client_format() {
            None => true,
            Some(client) => {
                matches!(client, Format::OpenAiChat | Format::Anthropic)
                    && self.format(op, model) == Some(client)
                    && self.kind != ProviderKind::Vertex
            }
        }
    }

    /// The provider refused key `key` when it was `used`: re-read its source
    /// (a rotated file, command output or stored secret) and say whether it
    /// now holds another value, in which case the request is worth retrying
    /// with it at once.
    pub async fn reread_key(&self, key: usize, used: Option<&Arc<SecretString>>) -> bool {
        use secrecy::ExposeSecret;
        use subtle::ConstantTimeEq;
        let (Some(credential), Some(before)) =
            (self.keys.get(key).and_then(|k| k.credential.as_ref()), used)
        else {
            return false;
        };
        credential.invalidate();
        match credential.current().await {
            Ok(after) => !bool::from(
                before
                    .expose_secret()
                    .as_bytes()
                    .ct_eq(after.expose_secret().as_bytes()),
            ),
            Err(_) => false,
        }
    }

    /// Whether keys of environment `env` may use this provider.
    pub fn serves_env(&self, env: &str) -> bool {
        self.config.environments.is_empty() || self.config.environments.iter().any(|e| e == env)
    }

    /// Whether it authenticates with short-lived tokens it fetches itself
    /// (a refused token is worth one retry with a fresh one).
    pub fn uses_tokens(&self) -> bool {
        matches!(self.auth, Auth::AzureAd(_) | Auth::ServiceAccount(_))
    }

    /// Model ids to list in `GET /v1/models`: the built-in catalogue for
    /// providers from standard variables, plus every configured model name
    /// that is not a pattern and every Azure deployment's model.
    pub fn listed_models(&self) -> Vec<String> {
        let mut names: Vec<String> = match self.kind {
            ProviderKind::Mock => ["openai", "anthropic", "gemini"]
                .iter()
                .flat_map(|p| catalogue::known_models(p).iter())
                .map(|s| s.to_string())
                .collect(),
            _ if self.config.from_env => catalogue::known_models(&self.name)
                .iter()
                .map(|s| s.to_string())
                .collect(),
            _ => Vec::new(),
        };
        names.extend(
            self.config
                .models
                .iter()
                .filter(|m| !m.contains(['*', '?', '[', '{']))
                .cloned(),
        );
        names.extend(self.config.deployments.keys().cloned());
        names
    }

    /// Keys of this provider, in the order to try them: healthy ones
    /// first, each group in weighted random order.
    fn key_order(&self, now: i64) -> impl Iterator<Item = usize> + '_ {
        let (mut healthy, cooled): (Vec<usize>, Vec<usize>) = (0..self.keys.len())
            .partition(|i| self.keys[*i].cooled_until_ms.load(Ordering::Relaxed) <= now);
        shuffle(&mut healthy);
        healthy.into_iter().chain(cooled)
    }

    /// How many keys (identities) this provider has.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Whether key `key` is in use at `now` (not cooling down after a
    /// refusal or a rate limit).
    pub fn key_is_healthy(&self, key: usize, now: i64) -> bool {
        self.keys
            .get(key)
            .is_some_and(|k| k.cooled_until_ms.load(Ordering::Relaxed) <= now)
    }

    /// Whether the provider is in use at `now` (not cooling down after
    /// failures).
    pub fn is_healthy(&self, now: i64) -> bool {
        self.cooled_until_ms.load(Ordering::Relaxed) <= now
    }

    /// Whether the provider, and each of its keys, is cooling down after
    /// failures at `now`, and until when (Unix ms): what the dashboard's
    /// providers page shows.
    pub fn health(&self, now: i64) -> ProviderHealth {
        let until = |cell: &AtomicI64| Some(cell.load(Ordering::Relaxed)).filter(|t| *t > now);
        ProviderHealth {
            cooled_until_ms: until(&self.cooled_until_ms),
            keys_cooled_until_ms: self
                .keys
                .iter()
                .map(|k| until(&k.cooled_until_ms))
                .collect(),
            base_url: {
                // Only where it forwards, never a credential in the URL.
                let mut url = self.base.clone();
                let _ = url.set_username("");
                let _ = url.set_password(None);
                url.set_query(None);
                url.to_string()
            },
        }
    }

    /// Record a failed attempt so the next requests avoid what failed.
    pub fn penalize(&self, key: usize, failure: Failure) {
        let now = crate::time::now_ms();
        let (target, ms) = match failure {
            Failure::KeyRefused => (self.keys.get(key).map(|k| &k.cooled_until_ms), 60_000),
            Failure::RateLimited(after) => (
                self.keys.get(key).map(|k| &k.cooled_until_ms),
                after.map_or(10_000, |s| {
                    i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)
                }),
            ),
            Failure::Unavailable => (Some(&self.cooled_until_ms), 5_000),
        };
        if let Some(target) = target {
            target.store(
                now.saturating_add(ms.min(MAX_COOLDOWN_MS)),
                Ordering::Relaxed,
            );
        }
        if failure == Failure::KeyRefused {
            match &self.auth {
                Auth::AzureAd(source) => source.forget(),
                Auth::ServiceAccount(source) => source.forget(),
                Auth::Key | Auth::SigV4(_) => {}
            }
        }
    }

    /// Build the authenticated upstream request for one attempt.
    pub async fn request(
        &self,
        client: &reqwest::Client,
        call: &Call<'_>,
        key: usize,
    ) -> Result<(reqwest::RequestBuilder, Option<Arc<SecretString>>), (Failure, ApiError)> {
        let secret = match self.keys.get(key).and_then(|k| k.credential.as_ref()) {
            Some(credential) => Some(credential.current().await.map_err(|error| {
                tracing::warn!(provider = %self.name, %error, "provider credential unavailable");
                (Failure::KeyRefused, error.to_api_error())
            })?),
            None => None,
        };
        let request = self
            .build(client, call, secret.as_deref())
            .await
            .map_err(|error| (Failure::Unavailable, error))?;
        Ok((request, secret))
    }

    async fn build(
        &self,
        client: &reqwest::Client,
        call: &Call<'_>,
        secret: Option<&SecretString>,
    ) -> Result<reqwest::RequestBuilder, ApiError> {
        let missing = || {
            ApiError::bad_gateway(format!(
                "The upstream provider '{}' has no usable credential.",
                self.name
            ))
        };
        let body = call.body.clone();
        let builder = match (self.kind, call.format) {
            (_, _) if call.op == Operation::Embeddings => match self.kind {
                ProviderKind::Azure => {
                    let url = azure::url(&self.base, &self.config, call.model, "embeddings")?;
                    self.azure_auth(client.post(url), secret).await?
                }
                _ => openai::request(client, &self.embeddings_url, secret.ok_or_else(missing)?),
            },
            (ProviderKind::Azure, _) => {
                let url = azure::url(&self.base, &self.config, call.model, "chat/completions")?;
                self.azure_auth(client.post(url), secret).await?
            }
            (ProviderKind::Bedrock, _) => {
                let Auth::SigV4(signer) = &self.auth else {
                    return Err(missing());
                };
                let url = bedrock::url(&self.base, call.model, call.stream)?;
                return signer.sign(client, url, body, call.stream).await;
            }
            (ProviderKind::Vertex, format) => {
                let Auth::ServiceAccount(source) = &self.auth else {
                    return Err(missing());
                };
                let project = self.config.vertex.as_ref().ok_or_else(missing)?;
                let token = source.token().await.map_err(|error| {
                    tracing::warn!(provider = %self.name, %error, "Vertex access token unavailable");
                    missing()
                })?;
                let (url, body) = if format == Format::Anthropic {
                    (
                        vertex::anthropic_url(&self.base, project, call.model, call.stream)?,
                        vertex::anthropic_body(&call.body)?,
                    )
                } else {
                    (
                        vertex::gemini_url(&self.base, project, call.model, call.stream)?,
                        body,
                    )
                };
                return Ok(client
                    .post(url)
                    .bearer_auth(secrecy::ExposeSecret::expose_secret(&token))
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(body));
            }
            (_, Format::OpenAiChat) => {
                openai::request(client, &self.chat_url, secret.ok_or_else(missing)?)
            }
            (_, Format::Anthropic) => {
                let request =
                    anthropic::request(client, &self.messages_url, secret.ok_or_else(missing)?);
                anthropic::versioned(request, call.client_headers)
            }
            (_, Format::Gemini) => {
                let url = gemini::url(&self.base, call.model, call.stream)?;
                gemini::request(client, url, secret.ok_or_else(missing)?)
            }
            (_, Format::Converse) => return Err(missing()),
        };
        let mut builder = builder
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body);
        // A format's own option headers, only to a peer of that format.
        let pass_through = match call.format {
            Format::OpenAiChat => Some("openai-beta"),
            Format::Anthropic => Some("anthropic-beta"),
            Format::Gemini | Format::Converse => None,
        };
        if let Some(name) = pass_through {
            if let Some(value) = call.client_headers.get(name) {
                builder = builder.header(name, value);
            }
        }
        if call.stream {
            builder = builder.header(http::header::ACCEPT, "text/event-stream");
        }
        Ok(builder)
    }

    async fn azure_auth(
        &self,
        request: reqwest::RequestBuilder,
        secret: Option<&SecretString>,
    ) -> Result<reqwest::RequestBuilder, ApiError> {
        match (&self.auth, secret) {
            (Auth::AzureAd(source), _) => {
                let token = source.token().await.map_err(|error| {
                    tracing::warn!(provider = %self.name, %error, "Azure AD token unavailable");
                    ApiError::bad_gateway(format!(
                        "The upstream provider '{}' could not authenticate.",
                        self.name
                    ))
                })?;
                Ok(request.bearer_auth(secrecy::ExposeSecret::expose_secret(token.as_ref())))
            }
            (_, Some(key)) => {
                Ok(request.header("api-key", secrecy::ExposeSecret::expose_secret(key)))
            }
            _ => Err(ApiError::bad_gateway(format!(
                "The upstream provider '{}' has no usable credential.",
                self.name
            ))),
        }
    }
}

/// One upstream call, before authentication.
#[derive(Debug)]
pub struct Call<'a> {
    /// What the client asked for.
    pub op: Operation,
    /// The wire format of `body`.
    pub format: Format,
    /// The model the provider knows.
    pub model: &'a str,
    /// Whether a stream is wanted.
    pub stream: bool,
    /// The body in `format`.
    pub body: Bytes,
    /// The client's headers (only the non-credential pass-through ones are sent).
    pub client_headers: &'a HeaderMap,
}

/// Shuffle in place (Fisher–Yates), to spread load.
fn shuffle(items: &mut [usize]) {
    use rand::Rng;
    let mut rng = rand::rng();
    for i in (1..items.len()).rev() {
        let j = rng.random_range(0..=i);
        items.swap(i, j);
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

/// One attempt: a route and which of its provider's keys to use.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Provider and model.
    pub route: Route,
    /// Index of the provider key.
    pub key: usize,
}

/// All providers and aliases.
#[derive(Debug)]
pub struct Registry {
    providers: Vec<Arc<Provider>>,
    aliases: BTreeMap<String, Vec<(usize, String)>>,
}

impl Registry {
    /// Build from configuration. `mock_base` is where the built-in mock
    /// listens when no provider is configured.
    pub fn new(config: &Config, mock_base: Option<String>) -> Result<Self, String> {
        let mut configs = config.providers.clone();
        if let Some(base) = mock_base {
            configs.push(ProviderConfig::simple(
                "mock",
                ProviderKind::Mock,
                base,
                Credential::fixed("built-in mock", SecretString::from("mock")),
                vec!["*".into()],
                false,
            ));
        }
        let providers = configs
            .iter()
            .map(Provider::new)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .map(Arc::new)
            .collect::<Vec<_>>();
        let mut aliases = BTreeMap::new();
        for (alias, targets) in &config.aliases {
            let mut resolved = Vec::new();
            for target in targets.split(',').map(str::trim) {
                let Some((provider, model)) = target.split_once('/') else {
                    return Err(format!("alias {alias}: target must be provider/model"));
                };
                let index = providers
                    .iter()
                    .position(|p| p.name == provider)
                    .ok_or_else(|| {
                        format!("alias {alias}: provider {provider} is not configured")
                    })?;
                resolved.push((index, model.to_string()));
            }
            aliases.insert(alias.clone(), resolved);
        }
        Ok(Registry { providers, aliases })
    }

    /// The providers, in configuration order.
    pub fn providers(&self) -> &[Arc<Provider>] {
        &self.providers
    }

    /// Aliases and their (first) canonical targets.
    pub fn aliases(&self) -> impl Iterator<Item = (&str, String)> {
        self.aliases.iter().filter_map(|(alias, targets)| {
            let (i, model) = targets.first()?;
            Some((
                alias.as_str(),
                format!("{}/{}", self.providers[*i].name, model),
            ))
        })
    }

    /// Every route the model a client asked for may take: an alias (all its
    /// targets), `provider/model`, or every provider whose model patterns
    /// match. Providers that cannot serve `op` are left out.
    pub fn resolve(&self, model: &str, op: Operation) -> Result<Vec<Route>, ApiError> {
        let route = |provider: &Arc<Provider>, upstream: &str| Route {
            provider: Arc::clone(provider),
            upstream_model: upstream.to_string(),
            canonical: format!("{}/{}", provider.name, upstream),
        };
        let found: Vec<Route> = if let Some(targets) = self.aliases.get(model) {
            targets
                .iter()
                .map(|(i, upstream)| route(&self.providers[*i], upstream))
                .collect()
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
            vec![route(p, upstream)]
        } else {
            self.providers
                .iter()
                .filter(|p| p.models.is_match(model))
                .map(|p| route(p, model))
                .collect()
        };
        if found.is_empty() {
            return Err(ApiError::unknown_model(model));
        }
        let usable: Vec<Route> = found
            .iter()
            .filter(|r| r.provider.format(op, &r.upstream_model).is_some())
            .cloned()
            .collect();
        if usable.is_empty() {
            return Err(ApiError::invalid_param(
                "model",
                format!(
                    "The model '{}' is served by provider '{}', which does not offer {}.",
                    crate::error::printable(model),
                    found[0].provider.name,
                    op.route()
                ),
            ));
        }
        Ok(usable)
    }

    /// The order to try `routes` in: healthy providers before cooled ones,
    /// weighted random within each group, and each provider's keys in turn.
    pub fn attempts(routes: &[Route]) -> Vec<Attempt> {
        use rand::Rng;
        let now = crate::time::now_ms();
        let mut rng = rand::rng();
        // Weighted random order (Efraimidis–Spirakis): sort by u^(1/w).
        let mut ranked: Vec<(bool, f64, &Route)> = routes
            .iter()
            .map(|r| {
                let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
                let weight = f64::from(r.provider.weight.max(1));
                (r.provider.is_healthy(now), u.powf(1.0 / weight), r)
            })
            .collect();
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.total_cmp(&a.1)));
        let mut attempts = Vec::new();
        let mut later = Vec::new();
        for (healthy, _, route) in ranked {
            for key in route.provider.key_order(now) {
                let attempt = Attempt {
                    route: route.clone(),
                    key,
                };
                // A cooling key goes after every usable key of every
                // provider, not just after its provider's other keys.
                if healthy && route.provider.key_is_healthy(key, now) {
                    attempts.push(attempt);
                } else {
                    later.push(attempt);
                }
            }
        }
        attempts.append(&mut later);
        attempts
    }
}

#[cfg(test)]
mod tests;
