//! `keygate serve`: assembling state, the router and the listener.

use crate::auth::{key, KeyCache, KeyHasher, KeyKind};
use crate::config::Config;
use crate::error::{ApiError, ErrorShape};
use crate::ledger::Ledger;
use crate::providers::Registry;
use crate::store::{KeyRecord, Store};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use http::HeaderValue;
use secrecy::ExposeSecret;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Store.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Ledger journal.
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    /// Server secret.
    #[error(transparent)]
    Pepper(#[from] crate::auth::pepper::PepperError),
    /// The server secret does not match the one the database was created with.
    #[error("the server secret (KEYGATE_SERVER_SECRET or server.secret in the data directory) is not the one this database was created with; every stored key would be rejected. Restore the original secret.")]
    PepperMismatch,
    /// Stored provider credentials (master key missing or not theirs).
    #[error("stored provider credentials: {0}")]
    Credentials(#[from] crate::credentials::CredentialError),
    /// Providers.
    #[error("providers: {0}")]
    Providers(String),
    /// Network or file system.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// Alert channels.
    #[error(transparent)]
    Alerts(#[from] crate::alerts::AlertError),
    /// The token issuer's signing keys could not be loaded or created.
    #[error(transparent)]
    Signing(#[from] crate::auth::signing::SigningError),
    /// The price table.
    #[error(transparent)]
    Prices(#[from] crate::ledger::pricing::PriceError),
    /// The limit counters (Redis) could not be reached.
    #[error(transparent)]
    Counters(#[from] crate::policy::counters::CounterError),
    /// The metrics recorder could not be built.
    #[error("metrics: {0}")]
    Metrics(String),
}

/// Everything a request handler needs; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    shared: Arc<Shared>,
    /// Upstream HTTP client (connection pool).
    pub http: reqwest::Client,
}

/// The shared parts of [`AppState`].
#[derive(Debug)]
pub struct Shared {
    /// Validated configuration.
    pub config: Config,
    /// Verification cache.
    pub keys: Arc<KeyCache>,
    /// Persistent state.
    pub store: Arc<dyn Store>,
    /// Usage ledger writer.
    pub ledger: Ledger,
    /// Providers and aliases.
    pub registry: Registry,
    /// Stored provider credentials, decrypted in memory.
    pub credentials: crate::credentials::StoredCredentials,
    /// Alert outbox and delivery: `state.alerts.raise(alert)`.
    pub alerts: crate::alerts::Alerts,
    /// Model prices: what each request costs.
    pub prices: crate::ledger::pricing::Prices,
    /// The limits stage: rates, concurrency, budgets.
    pub governor: Arc<crate::policy::governor::Governor>,
    /// Access tokens: issuing, verifying, revocation.
    pub tokens: Arc<crate::auth::token::Tokens>,
    /// Trusted OIDC issuers' signing keys (token exchange).
    pub federation: crate::auth::oauth::federation::IssuerKeys,
    /// Anomaly detection and the credential-stuffing lockout.
    pub anomaly: crate::anomaly::Anomaly,
    /// Prometheus metrics (`/metrics`); the ledger counts every row in them.
    pub metrics: Arc<crate::telemetry::metrics::Metrics>,
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl AppState {
    /// Assemble state from its parts.
    pub fn new(shared: Shared) -> Result<Self, StartError> {
        let http = http_client(shared.config.upstream_connect_timeout)?;
        Ok(AppState {
            shared: Arc::new(shared),
            http,
        })
    }
}

/// The full HTTP surface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(crate::proxy::chat_completions))
        .route("/v1/embeddings", post(crate::proxy::embeddings))
        .route("/v1/messages", post(crate::proxy::messages))
        .route("/v1beta/models/{*rest}", post(crate::proxy::gemini))
        .route("/v1/models", get(crate::proxy::list_models))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(crate::telemetry::metrics::serve))
        .merge(crate::auth::oauth::routes())
        .route("/leak-reports", post(crate::leaks::report::receive))
        .nest("/admin/v1", crate::admin::router(state.clone()))
        .nest("/dashboard", crate::dashboard::router(state.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit_headers,
        ))
        .layer(axum::middleware::from_fn(request_id))
        .with_state(state)
}

async fn ready(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => "ready".into_response(),
        Err(_) => {
            ApiError::unavailable("The store is unreachable.").to_response(ErrorShape::OpenAi)
        }
    }
}

async fn not_found(request: Request) -> Response {
    let path = request.uri().path();
    ApiError::not_found(format!(
        "No route {} {}.",
        request.method(),
        crate::error::printable(path)
    ))
    .to_response(ErrorShape::for_path(path))
}

async fn method_not_allowed(request: Request) -> Response {
    let path = request.uri().path();
    let mut error = ApiError::invalid_request(format!(
        "Method {} is not allowed on {}.",
        request.method(),
        crate::error::printable(path)
    ));
    error.status = http::StatusCode::METHOD_NOT_ALLOWED;
    error.to_response(ErrorShape::for_path(path))
}

/// The id of the request being served, set by the outermost middleware.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Give every request an id (returned as `x-request-id`, keyed in the
/// ledger), and close the connection after a response sent before the
/// request body was read: the unread bytes would otherwise be taken for the
/// next request on a kept-alive connection.
async fn request_id(request: Request, next: Next) -> Response {
    let id = crate::proxy::new_request_id();
    let header = HeaderValue::from_str(&id).ok();
    let declares_body = request
        .headers()
        .contains_key(http::header::TRANSFER_ENCODING)
        || request
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(RequestId(id));
    let (body, finished) = crate::proxy::tracked_body(body);
    let mut response = next.run(Request::from_parts(parts, body)).await;
    let headers = response.headers_mut();
    if let Some(header) = header {
        headers.insert("x-request-id", header);
    }
    if declares_body && !finished.load(std::sync::atomic::Ordering::Acquire) {
        headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Refuse any single header over the configured size (431), before any
/// handler looks at the request.
async fn limit_headers(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = state.config.max_header_bytes;
    let too_large = request
        .headers()
        .iter()
        .any(|(name, value)| name.as_str().len() + value.len() > limit);
    if too_large {
        return ApiError::header_too_large(limit)
            .to_response(ErrorShape::for_path(request.uri().path()));
    }
    next.run(request).await
}

/// The upstream HTTP client: pooled, TCP_NODELAY, rustls.
pub fn http_client(connect_timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        // Upstreams are named explicitly in configuration; matching every
        // request against HTTP(S)_PROXY rules re-parses its URL each time.
        .no_proxy()
        // A provider never redirects an API call; following one could carry
        // the provider key to another host.
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .user_agent(concat!("keygate/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Load every stored key into the cache, a page at a time (a million
/// records at once would set the process's resident size for its life).
async fn load_keys(store: &dyn Store, keys: &KeyCache) -> Result<(), crate::store::StoreError> {
    const PAGE: i64 = 10_000;
    let mut after = String::new();
    loop {
        let page = store.keys_after(&after, PAGE).await?;
        for record in &page {
            keys.upsert(record);
        }
        match page.last() {
            Some(last) if i64::try_from(page.len()) == Ok(PAGE) => after = last.id.clone(),
            _ => return Ok(()),
        }
    }
}

/// Keep the cache in step with changes made on other nodes: re-read keys
/// changed since shortly before the last seen change (overlap absorbs
/// clock skew between nodes; re-applying a row is harmless).
/// It holds only the store and the cache, not the whole state, so that
/// shutdown can tell when the last ledger handle is gone.
fn spawn_key_refresh(
    store: Arc<dyn Store>,
    refreshed: Refreshed,
    every: Duration,
    loaded_at: i64,
    changed: Arc<tokio::sync::Notify>,
) {
    const OVERLAP_MS: i64 = 5_000;
    let Refreshed {
        keys,
        governor,
        tokens,
    } = refreshed;
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Rows changed after a poll began carry an `updated_at` no earlier
        // than that moment minus the clock skew between nodes (OVERLAP_MS),
        // so each poll reads from there: a change is re-read for a few
        // seconds at most, never forever (a bulk import of a million keys
        // must not be re-read every interval).
        let mut since = loaded_at.saturating_sub(OVERLAP_MS);
        let mut purged_at = loaded_at;
        loop {
            // A change announced by another node refreshes at once; the
            // ticker bounds how long a lost announcement can go unnoticed.
            tokio::select! {
                _ = ticker.tick() => {}
                () = changed.notified() => {}
            }
            let poll_started = crate::time::now_ms();
            let polled = async {
                for record in &store.keys_changed_since(since).await? {
                    keys.upsert(record);
                }
                // Revoked tokens follow the same clock.
                tokens.apply_revocations(
                    &store.revoked_tokens_since(since, poll_started).await?,
                    poll_started,
                );
                // Owners', projects' and organisations' limits too.
                store.subject_limits_changed_since(since).await
            };
            match polled.await {
                Ok(limits) => {
                    governor.apply(limits);
                    since = since.max(poll_started.saturating_sub(OVERLAP_MS));
                }
                Err(e) => tracing::warn!(error = %e, "key refresh failed; will retry"),
            }
            // Revocations of expired tokens and used assertions are kept
            // no longer than the tokens themselves.
            if poll_started - purged_at > 600_000 {
                purged_at = poll_started;
                if let Err(e) = store.purge_expired_tokens(poll_started - 600_000).await {
                    tracing::warn!(error = %e, "purging expired token rows failed");
                }
            }
        }
    });
}

/// What the key refresh keeps current.
struct Refreshed {
    keys: Arc<KeyCache>,
    governor: Arc<crate::policy::governor::Governor>,
    tokens: Arc<crate::auth::token::Tokens>,
}

/// Listen on PostgreSQL's `keygate_keys` channel (a trigger announces every
/// key change, see the `0003` migration) and wake the key refresh for each
/// announcement. On a lost connection it reconnects; meanwhile polling
/// keeps the cache within the refresh interval.
fn spawn_key_change_listener(url: String, changed: Arc<tokio::sync::Notify>) {
    tokio::spawn(async move {
        loop {
            let mut listener = match sqlx::postgres::PgListener::connect(&url).await {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::warn!(error = %e, "key change listener cannot connect; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Err(e) = listener.listen("keygate_keys").await {
                tracing::warn!(error = %e, "LISTEN keygate_keys failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            // Changes made while (re)connecting are picked up at once.
            changed.notify_one();
            loop {
                match listener.try_recv().await {
                    Ok(Some(_)) => changed.notify_one(),
                    Ok(None) => {
                        // The connection dropped; sqlx reconnects on the next
                        // call, and a refresh covers what was missed.
                        tracing::warn!("key change listener reconnecting");
                        changed.notify_one();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "key change listener failed; reconnecting");
                        break;
                    }
                }
            }
        }
    });
}

/// Create the first admin credential on an empty store; write it to an
/// owner-only file and return the file's path (never the secret).
async fn bootstrap_admin(
    config: &Config,
    store: &dyn Store,
    keys: &KeyCache,
) -> Result<Option<std::path::PathBuf>, StartError> {
    if !store.list_keys(KeyKind::Admin).await?.is_empty() {
        return Ok(None);
    }
    let secret = key::generate(key::ADMIN_ENV);
    let now = crate::time::now_ms();
    let record = KeyRecord {
        // The first credential may do everything, everywhere.
        role: Some("owner".into()),
        ..KeyRecord::fresh(
            KeyKind::Admin,
            "bootstrap admin".into(),
            key::ADMIN_ENV,
            secret.expose_secret(),
            keys.hasher(),
            now,
        )
    };
    let path = config.bootstrap_key_path();
    let mut contents = secret.expose_secret().as_bytes().to_vec();
    contents.push(b'\n');
    crate::config::write_owner_only(&path, &contents)
        .map_err(io_error(format!("writing {}", path.display())))?;
    zeroize::Zeroize::zeroize(&mut contents);
    store.insert_key(&record).await?;
    keys.upsert(&record);
    Ok(Some(path))
}

/// A gateway that is bound and ready to serve.
#[derive(Debug)]
pub struct Gateway {
    state: AppState,
    listener: tokio::net::TcpListener,
    ledger_writer: tokio::task::JoinHandle<()>,
    local_addr: SocketAddr,
}

impl Gateway {
    /// The shared state (tests watch the ledger through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serve until `shutdown` completes, then let the ledger drain.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let Gateway {
            state,
            listener,
            ledger_writer,
            ..
        } = self;
        serve_listener(listener, state, shutdown).await?;
        // The router (and its ledger handles) are gone: let the writer drain.
        if tokio::time::timeout(Duration::from_secs(10), ledger_writer)
            .await
            .is_err()
        {
            tracing::warn!("ledger writer did not drain within 10 s of shutdown");
        }
        Ok(())
    }
}

/// Run the gateway until SIGINT or SIGTERM on a runtime with
/// `KEYGATE_WORKERS` threads (default: one per core).
pub fn serve(config: Config) -> Result<(), StartError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.workers.max(1))
        .enable_all()
        .build()
        .map_err(io_error("starting the async runtime"))?
        .block_on(async move { start(config).await?.run(shutdown_signal()).await })
}

/// Resolve the provider keys that need the runtime or the vault (commands,
/// stored credentials), so a misconfigured one fails the start, not a request.
async fn resolve_provider_keys(
    config: &mut Config,
    credentials: &crate::credentials::StoredCredentials,
) -> Result<(), StartError> {
    use crate::config::ProviderKey;
    let env = crate::config::ProcessEnv;
    let ctx = crate::credentials::ResolveContext {
        env: &env,
        base_dir: None,
        stored: Some(credentials),
    };
    for provider in &mut config.providers {
        let mut keys: Vec<&mut ProviderKey> = provider.keys.iter_mut().collect();
        if let Some(ad) = provider.azure_ad.as_mut() {
            keys.push(&mut ad.client_secret);
        }
        if let Some(aws) = provider.aws.as_mut() {
            keys.push(&mut aws.secret_access_key);
            keys.extend(aws.session_token.as_mut());
        }
        for key in keys {
            if let ProviderKey::AtStart(spec) = key {
                let credential = crate::credentials::Credential::resolve(spec, &ctx).await?;
                *key = ProviderKey::Ready(credential);
            }
        }
    }
    Ok(())
}

/// Serve the router on one listener until `shutdown` completes.
async fn serve_listener(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    // Accepted sockets get TCP_NODELAY: without it small responses on
    // keep-alive connections wait on Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(io_error("serving"))
}

fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    let context = context.into();
    move |source| StartError::Io { context, source }
}

/// Open the store, load keys, bootstrap the admin credential, start the
/// built-in mock if needed, the ledger writer and the key refresher, and
/// bind the listener.
pub async fn start(mut config: Config) -> Result<Gateway, StartError> {
    // Before anything is opened: a bad price entry stops the start.
    let prices = crate::ledger::pricing::Prices::from_config(&config)?;
    std::fs::create_dir_all(&config.data_dir).map_err(io_error(format!(
        "creating data directory {}",
        config.data_dir.display()
    )))?;
    let store = crate::store::open(&config).await?;
    let (pepper, _created) =
        crate::auth::pepper::load_or_create(config.server_secret.as_ref(), &config.data_dir)?;
    let hasher = KeyHasher::new(&pepper)?;
    if store
        .init_meta("pepper_fingerprint", &hasher.fingerprint())
        .await?
        != hasher.fingerprint()
    {
        return Err(StartError::PepperMismatch);
    }
    let credentials =
        crate::credentials::StoredCredentials::open(Arc::clone(&store), config.master_key.clone())
            .await?;
    let keys = Arc::new(KeyCache::new(hasher));
    // Everything changed before the load began is in the cache; the refresh
    // picks up from there (its own overlap covers clock skew).
    let loaded_at = crate::time::now_ms();
    load_keys(store.as_ref(), &keys).await?;
    if let Some(path) = bootstrap_admin(&config, store.as_ref(), &keys).await? {
        println!(
            "keygate: created the first admin credential in {} (readable only by its owner)",
            path.display()
        );
    }

    let mock_base = if config.providers.is_empty() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(io_error("binding the built-in mock provider"))?;
        let addr = listener
            .local_addr()
            .map_err(io_error("built-in mock provider address"))?;
        let options = crate::mock::MockOptions {
            listen: addr,
            ..Default::default()
        };
        tokio::spawn(async move {
            if let Err(e) = crate::mock::serve_on(listener, options).await {
                tracing::error!(error = %e, "built-in mock provider stopped");
            }
        });
        println!("keygate: no provider configured (set OPENAI_API_KEY, ANTHROPIC_API_KEY, … or a config file); the built-in mock provider answers every model");
        Some(format!("http://{addr}"))
    } else {
        let names: Vec<&str> = config.providers.iter().map(|p| p.name.as_str()).collect();
        println!("keygate: providers: {}", names.join(", "));
        None
    };
    resolve_provider_keys(&mut config, &credentials).await?;
    let registry = Registry::new(&config, mock_base).map_err(StartError::Providers)?;

    let (ledger, ledger_writer) =
        Ledger::start(Arc::clone(&store), &config.data_dir.join("journal")).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(io_error(format!("binding {}", config.listen)))?;
    let local_addr = listener
        .local_addr()
        .map_err(io_error("listener address"))?;
    if config.oauth.issuer_from_listen {
        config.oauth.issuer = format!("http://{local_addr}");
    }
    let changed = Arc::new(tokio::sync::Notify::new());
    if let Some(url) = config.database_url_secret() {
        spawn_key_change_listener(url.to_string(), Arc::clone(&changed));
    }
    credentials.spawn_refresh(config.key_refresh_interval);
    let alerts =
        crate::alerts::Alerts::start(Arc::clone(&store), &config.alerts, Some(&credentials))
            .await?;
    let governor = start_governor(&config, &store, &ledger, &alerts).await?;
    let anomaly = if config.anomaly.enabled {
        crate::anomaly::Anomaly::start(crate::anomaly::Detection {
            store: Arc::clone(&store),
            keys: Arc::clone(&keys),
            alerts: alerts.clone(),
            config: config.anomaly.clone(),
            zone: config.limits.timezone,
        })
    } else {
        crate::anomaly::Anomaly::disabled()
    };
    if let Some(feed) = anomaly.feed() {
        ledger.observe(feed.clone());
    }
    let metrics = Arc::new(
        crate::telemetry::metrics::Metrics::new(&registry, prices.model_names())
            .map_err(StartError::Metrics)?,
    );
    metrics.spawn_upkeep();
    ledger.count_in(Arc::clone(&metrics));
    let signing = crate::auth::signing::SigningKeys::start(
        Arc::clone(&store),
        credentials.clone(),
        config.oauth.clone(),
    )
    .await?;
    signing.spawn_refresh();
    let tokens = Arc::new(crate::auth::token::Tokens::new(
        signing,
        config.oauth.clone(),
    ));
    tokens.apply_revocations(&store.revoked_tokens_since(0, loaded_at).await?, loaded_at);
    spawn_key_refresh(
        Arc::clone(&store),
        Refreshed {
            keys: Arc::clone(&keys),
            governor: Arc::clone(&governor),
            tokens: Arc::clone(&tokens),
        },
        config.key_refresh_interval,
        loaded_at,
        changed,
    );
    let state = AppState::new(Shared {
        prices,
        config,
        keys,
        store: Arc::clone(&store),
        ledger,
        registry,
        credentials,
        alerts,
        governor,
        tokens,
        federation: crate::auth::oauth::federation::IssuerKeys::new()?,
        anomaly,
        metrics,
    })?;
    crate::lifecycle::spawn(
        crate::lifecycle::Lifecycle::new(&state),
        state.config.lifecycle_interval,
    );
    println!(
        "keygate: listening on http://{local_addr} (store: {})",
        store.backend()
    );
    Ok(Gateway {
        state,
        listener,
        ledger_writer,
        local_addr,
    })
}

/// The limits stage over in-process counters, or Redis when configured;
/// with every owner's, project's and organisation's limits loaded.
async fn start_governor(
    config: &Config,
    store: &Arc<dyn Store>,
    ledger: &Ledger,
    alerts: &crate::alerts::Alerts,
) -> Result<Arc<crate::policy::governor::Governor>, StartError> {
    use crate::policy::counters::{Counters, LocalCounters};
    use crate::policy::governor::{Governor, LedgerSpend};
    let spend = Arc::new(LedgerSpend::new(Arc::clone(store), ledger.clone()));
    let counters: Arc<dyn Counters> = match &config.counters.redis_url {
        Some(url) => Arc::new(
            crate::policy::redis_counters::RedisCounters::connect(
                url,
                spend,
                &config.counters.redis_prefix,
            )
            .await?,
        ),
        None => Arc::new(LocalCounters::new(spend)),
    };
    let governor = Arc::new(Governor::new(
        counters,
        config.limits.clone(),
        Some(alerts.clone()),
    ));
    governor.apply(store.subject_limits_changed_since(0).await?);
    Ok(governor)
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
