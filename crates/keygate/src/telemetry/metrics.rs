//! Prometheus metrics, served as text at `GET /metrics`.
//!
//! Every request, accepted or refused, yields one ledger row; the ledger
//! hands each row to [`Metrics::observe`] as it records it, which costs a
//! few map lookups, atomic increments and one histogram observation (the
//! label handles are created once per label set and kept). Gauges that
//! describe state (ledger lag, upstream health, the token cache) are read
//! from the atomics their owners keep, at scrape time only.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `keygate_requests_total` | counter | `route`, `provider`, `model`, `status` |
//! | `keygate_request_duration_seconds` | histogram (1 ms … 60 s) | `route`, `provider`, `model`, `status` |
//! | `keygate_prompt_tokens_total` | counter | `provider`, `model` |
//! | `keygate_cached_prompt_tokens_total` | counter | `provider`, `model` |
//! | `keygate_completion_tokens_total` | counter | `provider`, `model` |
//! | `keygate_spend_usd_total` | counter | `provider`, `model` |
//! | `keygate_refusals_total` | counter | `reason` (the ledger row's error code) |
//! | `keygate_token_cache_lookups_total` | counter | `result` (`hit`, `miss`) |
//! | `keygate_ledger_pending_events` | gauge | |
//! | `keygate_ledger_oldest_pending_age_seconds` | gauge | |
//! | `keygate_upstream_healthy` | gauge (1/0) | `provider` |
//! | `keygate_upstream_key_healthy` | gauge (1/0) | `provider`, `key` (index in the provider's configured keys) |
//! | `keygate_upstream_failures_total` | counter | `provider`, `kind` (`timeout`, `connect`, `credential`, `status_429`, `status_4xx`, `status_5xx`) |
//! | `keygate_build_info` | gauge (1) | `version` |
//! | `keygate_start_time_seconds` | gauge | |
//!
//! Label cardinality is bounded; no key id, token id, owner, project or
//! address is ever a label:
//! - `route`: the fixed set of data-plane routes as the ledger names them,
//!   else `other`;
//! - `provider`: a configured provider's name, `none` before routing;
//! - `status`: the HTTP status code (at most a few dozen values);
//! - `model` (client input): a model the configuration knows (an alias, a
//!   model a provider lists, as itself and as `provider/model`, or an exact
//!   price-table entry) keeps its name; of the others, only the first
//!   [`SERVED_MODELS`] distinct names that a provider actually answered
//!   (status below 400) get a label of their own, passed through the
//!   redactor. Everything else is `other`, and `none` when the request
//!   never named a model. A flood of made-up names therefore adds no label.
//! - `reason`: the first [`REASONS`] distinct error codes (codes are a
//!   fixed set in the code base), then `other`.

use crate::ledger::{Ledger, UsageEvent};
use crate::providers::Registry;
use dashmap::DashMap;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Most models outside the configuration that get a label of their own.
pub const SERVED_MODELS: usize = 100;
/// Most distinct refusal reasons that get a label of their own.
pub const REASONS: usize = 64;

/// Latency buckets, seconds: 1 ms to 60 s.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The data-plane routes, as the ledger names them.
const ROUTES: &[&str] = &[
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/messages",
    "/v1beta/models:generateContent",
    "/v1/models",
];
const OTHER: &str = "other";
const NONE: &str = "none";

const REQUESTS: &str = "keygate_requests_total";
const DURATION: &str = "keygate_request_duration_seconds";
const PROMPT: &str = "keygate_prompt_tokens_total";
const CACHED: &str = "keygate_cached_prompt_tokens_total";
const COMPLETION: &str = "keygate_completion_tokens_total";
const SPEND: &str = "keygate_spend_usd_total";
const REFUSALS: &str = "keygate_refusals_total";
const TOKEN_CACHE: &str = "keygate_token_cache_lookups_total";
const LEDGER_PENDING: &str = "keygate_ledger_pending_events";
const LEDGER_AGE: &str = "keygate_ledger_oldest_pending_age_seconds";
const UPSTREAM_HEALTHY: &str = "keygate_upstream_healthy";
const KEY_HEALTHY: &str = "keygate_upstream_key_healthy";
const UPSTREAM_FAILURES: &str = "keygate_upstream_failures_total";
const BUILD_INFO: &str = "keygate_build_info";
const START_TIME: &str = "keygate_start_time_seconds";

static METADATA: Metadata<'static> = Metadata::new("keygate", Level::INFO, Some(module_path!()));

/// Model label ids: 0 is `none`, 1 is `other`, the rest name a model.
const MODEL_NONE: u32 = 0;
const MODEL_OTHER: u32 = 1;

/// Why an upstream attempt failed, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// No response head within the first-byte timeout.
    Timeout,
    /// The connection could not be made (or broke before an answer).
    Connect,
    /// The provider credential could not be obtained or the request built.
    Credential,
    /// 429.
    RateLimited,
    /// 401 or 403: the provider refused the gateway's credential.
    Refused,
    /// 5xx.
    ServerError,
}

impl UpstreamFailure {
    const ALL: [UpstreamFailure; 6] = [
        UpstreamFailure::Timeout,
        UpstreamFailure::Connect,
        UpstreamFailure::Credential,
        UpstreamFailure::RateLimited,
        UpstreamFailure::Refused,
        UpstreamFailure::ServerError,
    ];

    /// The kind of an upstream answer worth failing over from.
    pub fn from_status(status: u16) -> UpstreamFailure {
        match status {
            429 => UpstreamFailure::RateLimited,
            500..=599 => UpstreamFailure::ServerError,
            _ => UpstreamFailure::Refused,
        }
    }

    fn label(self) -> &'static str {
        match self {
            UpstreamFailure::Timeout => "timeout",
            UpstreamFailure::Connect => "connect",
            UpstreamFailure::Credential => "credential",
            UpstreamFailure::RateLimited => "status_429",
            UpstreamFailure::Refused => "status_4xx",
            UpstreamFailure::ServerError => "status_5xx",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Handles of one (route, provider, model, status).
struct RequestHandles {
    count: Counter,
    duration: Histogram,
}

/// Handles of one (provider, model).
struct UsageHandles {
    prompt: Counter,
    cached: Counter,
    completion: Counter,
    /// Rendered by hand: the `metrics` counters are integers, spend is USD.
    spend_nanos: AtomicU64,
    provider: String,
    model: String,
}

/// One provider's health gauges and failure counters.
struct ProviderHandles {
    name: String,
    healthy: Gauge,
    keys: Vec<Gauge>,
    failures: Vec<Counter>,
}

/// The bounded `model` label (see the module comment).
struct ModelLabels {
    known: HashMap<String, u32>,
    served: DashMap<String, u32>,
    next: AtomicU32,
    taken: AtomicU64,
}

impl ModelLabels {
    fn new(names: impl Iterator<Item = String>) -> ModelLabels {
        let mut known = HashMap::new();
        let mut next = MODEL_OTHER + 1;
        for name in names {
            known.entry(name).or_insert_with(|| {
                next += 1;
                next - 1
            });
        }
        ModelLabels {
            known,
            served: DashMap::new(),
            next: AtomicU32::new(next),
            taken: AtomicU64::new(0),
        }
    }

    fn id(&self, model: Option<&str>, served: bool) -> u32 {
        let Some(model) = model else {
            return MODEL_NONE;
        };
        if let Some(id) = self.known.get(model) {
            return *id;
        }
        if let Some(id) = self.served.get(model) {
            return *id;
        }
        if !served || model.is_empty() {
            return MODEL_OTHER;
        }
        if self.taken.fetch_add(1, Ordering::Relaxed) >= SERVED_MODELS as u64 {
            self.taken.fetch_sub(1, Ordering::Relaxed);
            return MODEL_OTHER;
        }
        *self
            .served
            .entry(model.to_string())
            .or_insert_with(|| self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// The label of `id`, which `model` was classified as.
    fn label(id: u32, model: Option<&str>) -> String {
        match (id, model) {
            (MODEL_NONE, _) | (_, None) => NONE.to_string(),
            (MODEL_OTHER, _) => OTHER.to_string(),
            (_, Some(model)) => crate::telemetry::redact::redact(model).into_owned(),
        }
    }
}

/// The gateway's metrics; one per gateway (tests run several in one
/// process, so nothing here is global).
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    providers: Vec<ProviderHandles>,
    models: ModelLabels,
    requests: DashMap<(u8, u16, u32, u16), RequestHandles>,
    usage: DashMap<(u16, u32), UsageHandles>,
    reasons: DashMap<String, Counter>,
    other_reason: Counter,
    token_hits: Counter,
    token_misses: Counter,
    ledger_pending: Gauge,
    ledger_age: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("request_series", &self.requests.len())
            .field("usage_series", &self.usage.len())
            .finish()
    }
}

fn key(name: &'static str, labels: Vec<Label>) -> Key {
    Key::from_parts(name, labels)
}

impl Metrics {
    /// Metrics for a gateway routing through `registry`; `prices` and
    /// `aliases` name the models the configuration knows.
    pub fn new<'a>(
        registry: &Registry,
        price_models: impl Iterator<Item = &'a str>,
    ) -> Result<Metrics, String> {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DURATION.into()), BUCKETS)
            .map_err(|e| e.to_string())?
            .build_recorder();
        let handle = recorder.handle();
        describe(&recorder);

        let mut names: Vec<String> = registry.aliases().map(|(a, _)| a.to_string()).collect();
        for provider in registry.providers() {
            for model in provider.listed_models() {
                names.push(format!("{}/{model}", provider.name));
                names.push(model);
            }
        }
        names.extend(price_models.map(str::to_string));
        let models = ModelLabels::new(names.into_iter());

        let providers = registry
            .providers()
            .iter()
            .map(|p| {
                let provider = Label::new("provider", p.name.clone());
                ProviderHandles {
                    name: p.name.clone(),
                    healthy: recorder
                        .register_gauge(&key(UPSTREAM_HEALTHY, vec![provider.clone()]), &METADATA),
                    keys: (0..p.key_count())
                        .map(|i| {
                            recorder.register_gauge(
                                &key(
                                    KEY_HEALTHY,
                                    vec![provider.clone(), Label::new("key", i.to_string())],
                                ),
                                &METADATA,
                            )
                        })
                        .collect(),
                    failures: UpstreamFailure::ALL
                        .iter()
                        .map(|kind| {
                            recorder.register_counter(
                                &key(
                                    UPSTREAM_FAILURES,
                                    vec![
                                        provider.clone(),
                                        Label::from_static_parts("kind", kind.label()),
                                    ],
                                ),
                                &METADATA,
                            )
                        })
                        .collect(),
                }
            })
            .collect();

        let cache = |result: &'static str| {
            recorder.register_counter(
                &key(
                    TOKEN_CACHE,
                    vec![Label::from_static_parts("result", result)],
                ),
                &METADATA,
            )
        };
        let token_hits = cache("hit");
        let token_misses = cache("miss");
        let ledger_pending = recorder.register_gauge(&key(LEDGER_PENDING, vec![]), &METADATA);
        let ledger_age = recorder.register_gauge(&key(LEDGER_AGE, vec![]), &METADATA);
        let other_reason = recorder.register_counter(
            &key(REFUSALS, vec![Label::from_static_parts("reason", OTHER)]),
            &METADATA,
        );
        recorder
            .register_gauge(
                &key(
                    BUILD_INFO,
                    vec![Label::from_static_parts(
                        "version",
                        env!("CARGO_PKG_VERSION"),
                    )],
                ),
                &METADATA,
            )
            .set(1.0);
        recorder
            .register_gauge(&key(START_TIME, vec![]), &METADATA)
            .set(crate::time::now_ms() as f64 / 1000.0);

        Ok(Metrics {
            recorder,
            handle,
            providers,
            models,
            requests: DashMap::new(),
            usage: DashMap::new(),
            reasons: DashMap::new(),
            other_reason,
            token_hits,
            token_misses,
            ledger_pending,
            ledger_age,
        })
    }

    /// Drain histogram samples into their buckets every few seconds, so
    /// that memory stays bounded when nobody scrapes.
    pub fn spawn_upkeep(&self) {
        let handle = self.handle.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(5));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                handle.run_upkeep();
            }
        });
    }

    fn provider_index(&self, name: Option<&str>) -> u16 {
        let Some(name) = name else {
            return u16::MAX;
        };
        self.providers
            .iter()
            .position(|p| p.name == name)
            .and_then(|i| u16::try_from(i).ok())
            .unwrap_or(u16::MAX - 1)
    }

    fn provider_label(&self, index: u16) -> &str {
        match index {
            u16::MAX => NONE,
            i => self
                .providers
                .get(usize::from(i))
                .map_or(OTHER, |p| p.name.as_str()),
        }
    }

    /// Count one ledger row (the hot path: no allocation once its label
    /// set has been seen).
    pub fn observe(&self, event: &UsageEvent) {
        let route = ROUTES
            .iter()
            .position(|r| *r == event.route)
            .map_or(u8::MAX, |i| i as u8);
        let provider = self.provider_index(event.provider.as_deref());
        let served = event.status < 400 && event.provider.is_some();
        let model = self.models.id(event.model.as_deref(), served);
        let labels = (route, provider, model, event.status);
        let seconds = event.latency_ms.max(0) as f64 / 1000.0;
        match self.requests.get(&labels) {
            Some(handles) => {
                handles.count.increment(1);
                handles.duration.record(seconds);
            }
            None => {
                let handles = self.request_handles(labels, event.model.as_deref());
                handles.count.increment(1);
                handles.duration.record(seconds);
                self.requests.entry(labels).or_insert(handles);
            }
        }
        if event.prompt_tokens > 0 || event.completion_tokens > 0 || event.cost_nanos > 0 {
            let usage = (provider, model);
            let add = |h: &UsageHandles| {
                h.prompt.increment(event.prompt_tokens.max(0) as u64);
                h.cached.increment(event.cached_tokens.max(0) as u64);
                h.completion
                    .increment(event.completion_tokens.max(0) as u64);
                h.spend_nanos
                    .fetch_add(event.cost_nanos.max(0) as u64, Ordering::Relaxed);
            };
            match self.usage.get(&usage) {
                Some(handles) => add(&handles),
                None => {
                    let entry = self
                        .usage
                        .entry(usage)
                        .or_insert_with(|| self.usage_handles(usage, event.model.as_deref()));
                    add(&entry);
                }
            }
        }
        if let Some(code) = event.error_code.as_deref() {
            self.refusal(code);
        }
    }

    fn request_handles(&self, labels: (u8, u16, u32, u16), model: Option<&str>) -> RequestHandles {
        let (route, provider, model_id, status) = labels;
        let set = vec![
            Label::from_static_parts(
                "route",
                ROUTES.get(usize::from(route)).copied().unwrap_or(OTHER),
            ),
            Label::new("provider", self.provider_label(provider).to_string()),
            Label::new("model", ModelLabels::label(model_id, model)),
            Label::new("status", status.to_string()),
        ];
        RequestHandles {
            count: self
                .recorder
                .register_counter(&key(REQUESTS, set.clone()), &METADATA),
            duration: self
                .recorder
                .register_histogram(&key(DURATION, set), &METADATA),
        }
    }

    fn usage_handles(&self, labels: (u16, u32), model: Option<&str>) -> UsageHandles {
        let provider = self.provider_label(labels.0).to_string();
        let model = ModelLabels::label(labels.1, model);
        let set = || {
            vec![
                Label::new("provider", provider.clone()),
                Label::new("model", model.clone()),
            ]
        };
        UsageHandles {
            prompt: self
                .recorder
                .register_counter(&key(PROMPT, set()), &METADATA),
            cached: self
                .recorder
                .register_counter(&key(CACHED, set()), &METADATA),
            completion: self
                .recorder
                .register_counter(&key(COMPLETION, set()), &METADATA),
            spend_nanos: AtomicU64::new(0),
            provider,
            model,
        }
    }

    fn refusal(&self, code: &str) {
        if let Some(counter) = self.reasons.get(code) {
            counter.increment(1);
            return;
        }
        if self.reasons.len() >= REASONS {
            self.other_reason.increment(1);
            return;
        }
        let label = crate::telemetry::redact::redact(code).into_owned();
        self.reasons
            .entry(code.to_string())
            .or_insert_with(|| {
                self.recorder
                    .register_counter(&key(REFUSALS, vec![Label::new("reason", label)]), &METADATA)
            })
            .increment(1);
    }

    /// Count a failed upstream attempt.
    pub fn upstream_failure(&self, provider: &str, kind: UpstreamFailure) {
        if let Some(p) = self.providers.iter().find(|p| p.name == provider) {
            if let Some(counter) = p.failures.get(kind.index()) {
                counter.increment(1);
            }
        }
    }

    /// The text exposition: state gauges read now, then every series.
    pub fn render(&self, registry: &Registry, ledger: &Ledger, token_cache: (u64, u64)) -> String {
        let now = crate::time::now_ms();
        for (handles, provider) in self.providers.iter().zip(registry.providers()) {
            handles
                .healthy
                .set(f64::from(u8::from(provider.is_healthy(now))));
            for (i, gauge) in handles.keys.iter().enumerate() {
                gauge.set(f64::from(u8::from(provider.key_is_healthy(i, now))));
            }
        }
        let lag = ledger.lag(now);
        self.ledger_pending.set(lag.pending as f64);
        self.ledger_age.set(lag.oldest_age_ms as f64 / 1000.0);
        self.token_hits.absolute(token_cache.0);
        self.token_misses.absolute(token_cache.1);

        let mut text = self.handle.render();
        let _ = writeln!(
            text,
            "# HELP {SPEND} What requests cost, US dollars, by the price table in force when each was answered."
        );
        let _ = writeln!(text, "# TYPE {SPEND} counter");
        for entry in self.usage.iter() {
            let nanos = entry.spend_nanos.load(Ordering::Relaxed);
            let _ = writeln!(
                text,
                "{SPEND}{{provider=\"{}\",model=\"{}\"}} {}",
                escape(&entry.provider),
                escape(&entry.model),
                nanos as f64 / 1e9
            );
        }
        text
    }
}

/// A label value in the text format.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn describe(recorder: &PrometheusRecorder) {
    let counter = |name: &'static str, unit: Option<Unit>, help: &'static str| {
        recorder.describe_counter(KeyName::from_const_str(name), unit, help.into());
    };
    counter(REQUESTS, None, "Requests answered, accepted or refused.");
    counter(
        PROMPT,
        None,
        "Prompt (input) tokens, from the providers' usage.",
    );
    counter(
        CACHED,
        None,
        "Of the prompt tokens, those the provider read from its prompt cache.",
    );
    counter(COMPLETION, None, "Completion (output) tokens.");
    counter(
        REFUSALS,
        None,
        "Requests refused or failed, by the error code in their ledger row.",
    );
    counter(
        TOKEN_CACHE,
        None,
        "Access-token verifications answered from the verified-token cache (hit) or by checking the signature (miss).",
    );
    counter(
        UPSTREAM_FAILURES,
        None,
        "Failed upstream attempts (each may have been followed by failover).",
    );
    recorder.describe_histogram(
        KeyName::from_const_str(DURATION),
        Some(Unit::Seconds),
        "Time from a request's arrival to the end of its response.".into(),
    );
    let gauge = |name: &'static str, help: &'static str| {
        recorder.describe_gauge(KeyName::from_const_str(name), None, help.into());
    };
    gauge(
        LEDGER_PENDING,
        "Ledger rows recorded (journaled) but not yet written to the store.",
    );
    gauge(
        LEDGER_AGE,
        "Age of the oldest ledger row not yet written to the store (0 when none).",
    );
    gauge(
        UPSTREAM_HEALTHY,
        "1 when the provider is in use, 0 while it cools down after failures.",
    );
    gauge(
        KEY_HEALTHY,
        "1 when the provider key (by index in configuration) is in use, 0 while it cools down.",
    );
    gauge(BUILD_INFO, "Always 1; the version is a label.");
    gauge(START_TIME, "When the gateway started, Unix seconds.");
}

/// `GET /metrics`: the text exposition, for an instance-wide admin
/// credential (any role) or the scrape token (`KEYGATE_METRICS_TOKEN`,
/// compared in constant time). Spend is not public (OWASP API: excessive
/// data exposure), so without either the answer is 401.
pub async fn serve(
    axum::extract::State(state): axum::extract::State<crate::server::AppState>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use crate::error::ErrorShape;
    use axum::response::IntoResponse;
    // Only the head is read; `Parts` (unlike the body) may be held across
    // the store lookup.
    let (request, _body) = request.into_parts();
    let client = request
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|peer| {
            crate::policy::client_ip(peer.0.ip(), &request.headers, &state.config.trusted_proxies)
        });
    // A source locked out for credential stuffing is refused here too.
    if let Some(client) = client {
        if let Err(error) = state.anomaly.admit_source(client) {
            return error.to_response(ErrorShape::OpenAi);
        }
    }
    let allowed = match crate::auth::extract::refuse_credential_in_query(request.uri.query()) {
        Err(error) => Err(error),
        Ok(()) if scrape_token_matches(&state, &request.headers) => Ok(()),
        Ok(()) => crate::admin::require_instance_admin(&state, &request, "read the metrics").await,
    };
    if let Err(error) = allowed {
        let presented = crate::auth::extract::presented_credential(&request.headers).is_some();
        if let (Some(client), true) = (client, presented) {
            if error.status == http::StatusCode::UNAUTHORIZED {
                state.anomaly.credential_refused(client);
            }
        }
        return error.to_response(ErrorShape::OpenAi);
    }
    let token_cache = state.tokens.cache_stats();
    let text = state
        .metrics
        .render(&state.registry, &state.ledger, token_cache);
    (
        [
            (
                http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            (http::header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response()
}

/// Whether the request's bearer token is the configured scrape token.
fn scrape_token_matches(state: &crate::server::AppState, headers: &http::HeaderMap) -> bool {
    use secrecy::ExposeSecret;
    use subtle::ConstantTimeEq;
    let (Some(expected), Some(presented)) = (
        state.config.metrics_token.as_ref(),
        crate::auth::extract::presented_credential(headers),
    ) else {
        return false;
    };
    bool::from(
        expected
            .expose_secret()
            .as_bytes()
            .ct_eq(presented.as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_labels_are_known_names_then_a_bounded_set_of_served_ones() {
        let labels = ModelLabels::new(["gpt-4o".to_string(), "fast".to_string()].into_iter());
        assert_eq!(labels.id(None, true), MODEL_NONE);
        let known = labels.id(Some("gpt-4o"), false);
        assert!(known > MODEL_OTHER);
        assert_eq!(labels.id(Some("gpt-4o"), true), known);
        // Refused requests never take a label.
        assert_eq!(labels.id(Some("made-up"), false), MODEL_OTHER);
        let mut seen = std::collections::HashSet::new();
        for i in 0..SERVED_MODELS * 3 {
            seen.insert(labels.id(Some(&format!("served-{i}")), true));
        }
        assert!(seen.contains(&MODEL_OTHER));
        assert_eq!(seen.len(), SERVED_MODELS + 1);
        // A name that got a label keeps it.
        assert_ne!(labels.id(Some("served-0"), false), MODEL_OTHER);
        assert_eq!(ModelLabels::label(MODEL_OTHER, Some("x")), "other");
        assert_eq!(ModelLabels::label(MODEL_NONE, None), "none");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
