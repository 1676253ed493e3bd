//! The limits stage of the request path: before a request is forwarded,
//! every limit above its key (the key's, its owner's, its project's, its
//! organisation's and the organisation's prepaid balance) is checked and
//! taken at once; after the answer, the real cost is settled and the rest
//! released, and budget thresholds raise alerts.

use super::counters::{
    Admission, AdmitError, BudgetSlot, ConcurrencySlot, CounterError, Counters, RateSlot,
    RateState, Refusal, Settlement,
};
use super::limits::{nanos_to_usd, Budget, Limits, Nanos, Period, Subject, SubjectLimits};
use super::period::{window, Window};
use crate::alerts::{Alert, Alerts};
use crate::error::ApiError;
use chrono_tz::Tz;
use http::{HeaderName, HeaderValue};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Settings of the limits stage.
#[derive(Clone, Debug)]
pub struct GovernorConfig {
    /// Time zone budget periods follow (`KEYGATE_BUDGET_TIMEZONE`).
    pub timezone: Tz,
    /// Output tokens reserved for a request that sets no `max_tokens`
    /// (`KEYGATE_DEFAULT_MAX_TOKENS`).
    pub default_max_tokens: u64,
    /// How long a crashed node's reservations and leases block others
    /// (`KEYGATE_RESERVATION_TTL`); Redis only.
    pub lease_ttl: Duration,
    /// Default alert thresholds, percent (`KEYGATE_BUDGET_ALERTS`).
    pub alert_thresholds: Vec<u8>,
}

impl Default for GovernorConfig {
    fn default() -> Self {
        GovernorConfig {
            timezone: Tz::UTC,
            default_max_tokens: 4096,
            lease_ttl: Duration::from_secs(3600),
            alert_thresholds: vec![50, 80, 100],
        }
    }
}

/// What the limits stage needs to know about a key.
#[derive(Clone, Copy, Debug)]
pub struct KeyView<'a> {
    /// Key id.
    pub id: &'a str,
    /// Its owner.
    pub owner: Option<&'a str>,
    /// Its project.
    pub project_id: Option<&'a str>,
    /// Its organisation.
    pub org_id: Option<&'a str>,
    /// Its own limits.
    pub limits: Option<&'a Limits>,
    /// When its limits last changed (Unix ms): a changed budget starts a
    /// fresh counter.
    pub version: i64,
    /// The access token the request came with, when it carries limits of
    /// its own (on top of every limit of the key it was minted under).
    pub token: Option<TokenView<'a>>,
}

/// An access token's own limits.
#[derive(Clone, Copy, Debug)]
pub struct TokenView<'a> {
    /// The token's `jti`.
    pub jti: &'a str,
    /// Its limits (a total budget, at most).
    pub limits: &'a Limits,
    /// When it was issued (Unix ms).
    pub issued_at: i64,
}

/// What a budget rule limits: a period's spend, or a prepaid balance.
#[derive(Clone, Copy, Debug)]
enum RuleKind {
    Period(Period),
    Prepaid,
}

/// A budget that applies to a request, with what its alerts need.
#[derive(Clone, Debug)]
struct BudgetRule {
    slot: BudgetSlot,
    kind: RuleKind,
    thresholds: Vec<u8>,
    owner: Option<String>,
    window: Window,
}

impl BudgetRule {
    /// "the monthly budget of project proj_x ($50.00)", for messages; built
    /// only when a message needs it, not per request.
    fn name(&self) -> String {
        let subject = self.slot.subject.describe();
        let limit = usd(self.slot.limit);
        match self.kind {
            RuleKind::Period(period) => format!(
                "the {} budget of {subject} ({limit})",
                period_adjective(period)
            ),
            RuleKind::Prepaid => format!("the prepaid balance of {subject} ({limit})"),
        }
    }
}

/// The limits that apply to one request.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    concurrency: Vec<ConcurrencySlot>,
    /// Whose each concurrency slot is, for messages.
    concurrency_subjects: Vec<Subject>,
    /// Request-rate slots (cost 1).
    requests: Vec<RateSlot>,
    /// Token-rate slots (cost filled in at admission).
    tokens: Vec<RateSlot>,
    /// Whose each request-rate slot is, then each token-rate slot.
    request_subjects: Vec<Subject>,
    token_subjects: Vec<Subject>,
    budgets: Vec<BudgetRule>,
}

impl Plan {
    /// Nothing limits the request.
    pub fn is_empty(&self) -> bool {
        self.concurrency.is_empty()
            && self.requests.is_empty()
            && self.tokens.is_empty()
            && self.budgets.is_empty()
    }

    /// The request's token estimate is needed (token rate or budget).
    pub fn needs_estimate(&self) -> bool {
        !self.tokens.is_empty() || !self.budgets.is_empty()
    }
}

/// How a request's prompt was sized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// A cheap upper bound (the body's byte count).
    Bound,
    /// Counted with the tokenizer.
    Tokenized,
}

/// An admission that did not pass.
enum Attempt {
    /// A limit refused it (nothing was taken).
    Refused(Refusal, Vec<RateSlot>, Plan),
    /// The counters failed.
    Failed(ApiError),
}

/// What an admission reserves for one request.
#[derive(Clone, Copy, Debug, Default)]
pub struct Demand {
    /// Prompt estimate plus the most output tokens the request may produce.
    pub tokens: u64,
    /// Worst-case cost.
    pub cost: Nanos,
}

/// The limits stage, shared by every request of a node.
#[derive(Debug)]
pub struct Governor {
    counters: Arc<dyn Counters>,
    config: GovernorConfig,
    alerts: Option<Alerts>,
    subjects: RwLock<HashMap<Subject, SubjectLimits>>,
    /// Threshold alerts this node already raised (the outbox dedupes across
    /// nodes; this spares it a write per request past a threshold).
    raised: Mutex<HashSet<String>>,
}

fn period_adjective(period: Period) -> &'static str {
    match period {
        Period::Day => "daily",
        Period::Week => "weekly",
        Period::Month => "monthly",
        Period::Total => "total",
    }
}

fn usd(nanos: Nanos) -> String {
    format!("${:.2}", nanos_to_usd(nanos))
}

impl Governor {
    /// A limits stage over `counters`; `alerts` receives threshold alerts.
    pub fn new(
        counters: Arc<dyn Counters>,
        config: GovernorConfig,
        alerts: Option<Alerts>,
    ) -> Self {
        Governor {
            counters,
            config,
            alerts,
            subjects: RwLock::new(HashMap::new()),
            raised: Mutex::new(HashSet::new()),
        }
    }

    /// Which counters are in use (`in-process`, `redis`).
    pub fn backend(&self) -> &'static str {
        self.counters.backend()
    }

    /// Apply owners', projects' and organisations' limits as the store
    /// returned them (changed since some moment). Every node does this with
    /// its key refresh, and the admin API after a change, so a new limit
    /// applies within the refresh interval everywhere. Re-applying a row is
    /// harmless; a row older than the one applied is ignored.
    pub fn apply(&self, changed: Vec<SubjectLimits>) {
        {
            let mut subjects = self
                .subjects
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for limits in changed {
                let keep = !limits.limits.is_empty() || limits.prepaid.is_some();
                match subjects.get(&limits.subject) {
                    // A row read before a newer one already applied is stale.
                    Some(known) if known.updated_at > limits.updated_at => {}
                    _ if keep => {
                        subjects.insert(limits.subject.clone(), limits);
                    }
                    _ => {
                        subjects.remove(&limits.subject);
                    }
                }
            }
        }
    }

    fn rule(
        &self,
        subject: &Subject,
        budget: &Budget,
        version: i64,
        now_ms: i64,
        owner: Option<&str>,
    ) -> BudgetRule {
        let window = window(budget.period, now_ms, self.config.timezone);
        BudgetRule {
            slot: BudgetSlot {
                counter: format!("{}:{}:{}", subject.name(), window.label, version),
                subject: subject.clone(),
                since_ms: window.since_ms,
                until_ms: window.until_ms,
                limit: budget.limit,
            },
            kind: RuleKind::Period(budget.period),
            thresholds: budget
                .alert_thresholds
                .clone()
                .unwrap_or_else(|| self.config.alert_thresholds.clone()),
            owner: owner.map(str::to_string),
            window,
        }
    }

    fn add_limits(
        &self,
        plan: &mut Plan,
        subject: &Subject,
        limits: &Limits,
        version: i64,
        now_ms: i64,
        owner: Option<&str>,
    ) {
        let name = subject.name();
        if let Some(max) = limits.max_concurrent {
            plan.concurrency.push(ConcurrencySlot {
                counter: format!("{name}:concurrent"),
                max,
            });
            plan.concurrency_subjects.push(subject.clone());
        }
        if let Some(rpm) = limits.rpm {
            plan.requests.push(RateSlot {
                counter: format!("{name}:rpm:{rpm}"),
                per_minute: u64::from(rpm),
                cost: 1,
            });
            plan.request_subjects.push(subject.clone());
        }
        if let Some(tpm) = limits.tpm {
            plan.tokens.push(RateSlot {
                counter: format!("{name}:tpm:{tpm}"),
                per_minute: tpm,
                cost: 0,
            });
            plan.token_subjects.push(subject.clone());
        }
        if let Some(budget) = &limits.budget {
            plan.budgets
                .push(self.rule(subject, budget, version, now_ms, owner));
        }
    }

    /// The limits that apply to a request of `key` at `now_ms`.
    pub fn plan(&self, key: &KeyView<'_>, now_ms: i64) -> Plan {
        let mut plan = Plan::default();
        if let Some(limits) = key.limits {
            let subject = Subject::Key(key.id.to_string());
            self.add_limits(&mut plan, &subject, limits, key.version, now_ms, key.owner);
        }
        if let Some(token) = key.token {
            let subject = Subject::Token(token.jti.to_string());
            self.add_limits(
                &mut plan,
                &subject,
                token.limits,
                token.issued_at,
                now_ms,
                key.owner,
            );
        }
        let subjects = self
            .subjects
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if subjects.is_empty() {
            return plan;
        }
        let mut above = Vec::with_capacity(3);
        if let (Some(org_id), Some(owner)) = (key.org_id, key.owner) {
            above.push(Subject::Owner {
                org_id: org_id.to_string(),
                owner: owner.to_string(),
            });
        }
        if let Some(project) = key.project_id {
            above.push(Subject::Project(project.to_string()));
        }
        if let Some(org) = key.org_id {
            above.push(Subject::Organisation(org.to_string()));
        }
        for subject in above {
            let Some(limits) = subjects.get(&subject) else {
                continue;
            };
            self.add_limits(
                &mut plan,
                &subject,
                &limits.limits,
                limits.updated_at,
                now_ms,
                key.owner,
            );
            if let Some(prepaid) = limits.prepaid {
                // The prepaid balance covers all spend since the
                // organisation began; a top-up starts a fresh counter.
                plan.budgets.push(BudgetRule {
                    slot: BudgetSlot {
                        counter: format!("{}:prepaid:{}", subject.name(), limits.updated_at),
                        subject: subject.clone(),
                        since_ms: 0,
                        until_ms: None,
                        limit: prepaid,
                    },
                    kind: RuleKind::Prepaid,
                    thresholds: self.config.alert_thresholds.clone(),
                    owner: key.owner.map(str::to_string),
                    window: Window {
                        label: "prepaid".into(),
                        since_ms: 0,
                        until_ms: None,
                    },
                });
            }
        }
        plan
    }

    /// The output tokens reserved for a request without its own limit.
    pub fn default_max_tokens(&self) -> u64 {
        self.config.default_max_tokens
    }

    /// Take every limit of `plan` for one request, or refuse it: 429 for a
    /// rate or concurrency limit (with `Retry-After`), 402
    /// `budget_exceeded` naming the budget, 503 when the counters cannot be
    /// reached (limits fail closed).
    ///
    /// `demand` gives the request's demand from a cheap upper bound of its
    /// prompt (`Precision::Bound`) or from the tokenizer
    /// (`Precision::Tokenized`). The bound is tried first: far from every
    /// limit it admits the request without tokenizing (the settlement
    /// corrects token rates to the real count); only a budget or token rate
    /// it would exhaust is asked again with the tokenized, smaller demand.
    pub async fn admit(
        self: &Arc<Self>,
        plan: Plan,
        lease: &str,
        demand: impl Fn(Precision) -> Demand,
        now_ms: i64,
    ) -> Result<Permit, ApiError> {
        let bound = demand(Precision::Bound);
        match self.try_admit(plan.clone(), lease, bound, now_ms).await {
            Err(Attempt::Refused(refusal, rates, plan))
                if matches!(refusal, Refusal::Budget { .. })
                    || matches!(refusal, Refusal::Rate { index, .. } if index >= plan.requests.len()) =>
            {
                let tokenized = demand(Precision::Tokenized);
                if tokenized.tokens >= bound.tokens && tokenized.cost >= bound.cost {
                    return Err(self.refusal(&plan, &rates, refusal, bound));
                }
                match self.try_admit(plan, lease, tokenized, now_ms).await {
                    Ok(permit) => Ok(permit),
                    Err(Attempt::Refused(refusal, rates, plan)) => {
                        Err(self.refusal(&plan, &rates, refusal, tokenized))
                    }
                    Err(Attempt::Failed(error)) => Err(error),
                }
            }
            Ok(permit) => Ok(permit),
            Err(Attempt::Refused(refusal, rates, plan)) => {
                Err(self.refusal(&plan, &rates, refusal, bound))
            }
            Err(Attempt::Failed(error)) => Err(error),
        }
    }

    async fn try_admit(
        self: &Arc<Self>,
        mut plan: Plan,
        lease: &str,
        demand: Demand,
        now_ms: i64,
    ) -> Result<Permit, Attempt> {
        let tokens = i64::try_from(demand.tokens).unwrap_or(i64::MAX);
        for slot in &mut plan.tokens {
            slot.cost = tokens;
        }
        let rates: Vec<RateSlot> = plan.requests.iter().chain(&plan.tokens).cloned().collect();
        let budgets: Vec<BudgetSlot> = plan.budgets.iter().map(|b| b.slot.clone()).collect();
        let reserve = if budgets.is_empty() { 0 } else { demand.cost };
        let admission = Admission {
            lease,
            now_ms,
            lease_ttl_ms: i64::try_from(self.config.lease_ttl.as_millis()).unwrap_or(i64::MAX),
            concurrency: &plan.concurrency,
            rates: &rates,
            budgets: &budgets,
            reserve,
        };
        match self.counters.admit(&admission).await {
            Ok(admitted) => {
                let (requests, tokens_state) = admitted
                    .rates
                    .split_at(plan.requests.len().min(admitted.rates.len()));
                let headers = rate_headers(requests, tokens_state);
                Ok(Permit {
                    governor: Arc::clone(self),
                    plan,
                    lease: lease.to_string(),
                    tokens_taken: tokens,
                    headers,
                    done: false,
                })
            }
            Err(AdmitError::Refused(refusal)) => Err(Attempt::Refused(refusal, rates, plan)),
            Err(AdmitError::Backend(error)) => {
                tracing::error!(%error, "limit counters unavailable; refusing the request");
                Err(Attempt::Failed(ApiError {
                    retry_after: Some(1),
                    ..ApiError::unavailable_code(
                        "limits_unavailable",
                        "The gateway cannot check this key's limits right now; retry shortly.",
                    )
                }))
            }
        }
    }

    fn refusal(
        &self,
        plan: &Plan,
        rates: &[RateSlot],
        refusal: Refusal,
        demand: Demand,
    ) -> ApiError {
        match refusal {
            Refusal::Concurrency { index } => {
                let max = plan.concurrency.get(index).map_or(0, |s| s.max);
                let who = plan
                    .concurrency_subjects
                    .get(index)
                    .map(Subject::describe)
                    .unwrap_or_default();
                ApiError::rate_limited(
                    "concurrency_limit_exceeded",
                    format!(
                        "{} allows {max} requests at once; wait for one to finish.",
                        capitalise(&who)
                    ),
                    Some(1),
                )
            }
            Refusal::Rate {
                index,
                retry_after_ms,
            } => {
                let slot = rates.get(index);
                let per_minute = slot.map_or(0, |s| s.per_minute);
                let (unit, subject) = match index.checked_sub(plan.requests.len()) {
                    Some(token_index) => ("tokens", plan.token_subjects.get(token_index)),
                    None => ("requests", plan.request_subjects.get(index)),
                };
                let who = format!(
                    "{per_minute} {unit} per minute on {}",
                    subject.map(Subject::describe).unwrap_or_default()
                );
                match retry_after_ms {
                    Some(ms) => ApiError::rate_limited(
                        "rate_limit_exceeded",
                        format!(
                            "Rate limit of {who} reached; retry in {:.1} s.",
                            ms as f64 / 1000.0
                        ),
                        Some(u64::try_from((ms + 999) / 1000).unwrap_or(1).max(1)),
                    ),
                    None => ApiError::rate_limited(
                        "rate_limit_exceeded",
                        format!(
                            "This request may use up to {} tokens, more than the rate limit of {who} allows at once; lower max_tokens or the prompt.",
                            demand.tokens
                        ),
                        None,
                    ),
                }
            }
            Refusal::Budget {
                index,
                spent,
                reserved,
            } => {
                let Some(rule) = plan.budgets.get(index) else {
                    return ApiError::budget_exceeded("A budget of this key is exhausted.");
                };
                let mut message = format!("{} is exhausted", capitalise(&rule.name()));
                message.push_str(&format!(": {} spent", usd(spent)));
                if reserved > 0 {
                    message.push_str(&format!(", {} held by requests in flight", usd(reserved)));
                }
                message.push_str(&format!(
                    "; this request may cost up to {}.",
                    usd(demand.cost)
                ));
                if let Some(until) = rule.window.until_ms {
                    if let Some(time) = chrono::DateTime::from_timestamp_millis(until) {
                        message.push_str(&format!(
                            " It resets at {}.",
                            time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        ));
                    }
                }
                ApiError::budget_exceeded(message)
            }
        }
    }

    async fn settle(&self, permit: &Permit, spent: Nanos, tokens_used: u64, now_ms: i64) {
        let used = i64::try_from(tokens_used).unwrap_or(i64::MAX);
        let corrections: Vec<RateSlot> = permit
            .plan
            .tokens
            .iter()
            .map(|slot| RateSlot {
                cost: used - permit.tokens_taken,
                ..slot.clone()
            })
            .collect();
        let budgets: Vec<BudgetSlot> = permit.plan.budgets.iter().map(|b| b.slot.clone()).collect();
        let settlement = Settlement {
            lease: &permit.lease,
            now_ms,
            concurrency: &permit.plan.concurrency,
            rates: &corrections,
            budgets: &budgets,
            spent,
        };
        match self.counters.settle(&settlement).await {
            Ok(settled) => {
                for (rule, spent) in permit.plan.budgets.iter().zip(settled.spent) {
                    if let Some(spent) = spent {
                        self.check_thresholds(rule, spent);
                    }
                }
            }
            Err(error) => {
                // The ledger holds the spend; the reservation expires.
                tracing::error!(%error, "settling a request's limits failed");
            }
        }
    }

    fn check_thresholds(&self, rule: &BudgetRule, spent: Nanos) {
        let limit = rule.slot.limit;
        if limit <= 0 && spent <= 0 {
            return;
        }
        let crossed: Vec<u8> = rule
            .thresholds
            .iter()
            .copied()
            .filter(|t| i128::from(spent) * 100 >= i128::from(*t) * i128::from(limit))
            .collect();
        let Some(alerts) = &self.alerts else {
            return;
        };
        for threshold in crossed {
            // Once per budget, window, limit and threshold: an unrelated
            // change to the key (which starts a fresh counter) does not
            // alert again, a new limit may.
            let occasion = format!(
                "{}:{}:{}",
                rule.slot.subject.name(),
                rule.window.label,
                rule.slot.limit
            );
            let mut dedupe = format!("budget:{occasion}:{threshold}");
            if dedupe.len() > 256 {
                use sha2::Digest;
                dedupe = format!(
                    "budget:{}:{threshold}",
                    hex::encode(sha2::Sha256::digest(occasion.as_bytes()))
                );
            }
            {
                let mut raised = self
                    .raised
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if !raised.insert(dedupe.clone()) {
                    continue;
                }
            }
            let mut alert = Alert::new(
                "budget.threshold",
                format!(
                    "{} has reached {threshold}%: {} spent of {} ({}).",
                    capitalise(&rule.name()),
                    usd(spent),
                    usd(limit),
                    rule.window.label
                ),
            )
            .subject(rule.slot.subject.name())
            .details(serde_json::json!({
                "budget": rule.slot.subject.name(),
                "threshold_percent": threshold,
                "spent_usd": nanos_to_usd(spent),
                "limit_usd": nanos_to_usd(limit),
                "period": rule.window.label,
                "period_start_ms": rule.window.since_ms,
                "period_end_ms": rule.window.until_ms,
            }))
            .dedupe_key(dedupe);
            if let Some(owner) = &rule.owner {
                alert = alert.owner(owner.clone());
            }
            let alerts = alerts.clone();
            tokio::spawn(async move {
                if let Err(error) = alerts.raise(alert).await {
                    tracing::error!(%error, "raising a budget alert failed");
                }
            });
        }
    }
}

/// Budget counters start from the ledger: the store's spend, after this
/// node's journaled rows have reached it.
#[derive(Debug)]
pub struct LedgerSpend {
    store: Arc<dyn crate::store::Store>,
    ledger: crate::ledger::Ledger,
}

impl LedgerSpend {
    /// Spend read from `store`, once `ledger` has delivered what it holds.
    pub fn new(store: Arc<dyn crate::store::Store>, ledger: crate::ledger::Ledger) -> Self {
        LedgerSpend { store, ledger }
    }
}

#[async_trait::async_trait]
impl super::counters::SpendSource for LedgerSpend {
    async fn spent_since(&self, subject: &Subject, since_ms: i64) -> Result<Nanos, CounterError> {
        // Rows this node recorded but has not yet written would otherwise be
        // missing from the starting point.
        self.ledger.flush().await;
        self.store
            .spent_since(subject, since_ms)
            .await
            .map_err(|e| CounterError(format!("reading spend from the ledger: {e}")))
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A duration as OpenAI writes it in `x-ratelimit-reset-*` (`20ms`, `1s`,
/// `6m0s`).
pub fn reset_text(ms: i64) -> String {
    if ms < 1000 {
        return format!("{}ms", ms.max(0));
    }
    let seconds = (ms + 999) / 1000;
    if seconds < 60 {
        format!("{seconds}s")
    } else {
        format!("{}m{}s", seconds / 60, seconds % 60)
    }
}

/// The tightest state among slots of one kind.
fn tightest(states: &[RateState]) -> Option<RateState> {
    states
        .iter()
        .copied()
        .min_by_key(|s| (s.remaining, std::cmp::Reverse(s.reset_ms)))
}

/// OpenAI's rate-limit headers: limit, remaining, reset; for requests, then
/// tokens.
const RATE_HEADERS: [[&str; 3]; 2] = [
    [
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
    ],
    [
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
    ],
];

fn rate_headers(requests: &[RateState], tokens: &[RateState]) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = Vec::with_capacity(6);
    for (names, state) in RATE_HEADERS
        .iter()
        .zip([tightest(requests), tightest(tokens)])
    {
        let Some(state) = state else { continue };
        let values = [
            HeaderValue::from(state.limit),
            HeaderValue::from(state.remaining),
            HeaderValue::try_from(reset_text(state.reset_ms))
                .unwrap_or(HeaderValue::from_static("0ms")),
        ];
        for (name, value) in names.iter().zip(values) {
            headers.push((HeaderName::from_static(name), value));
        }
    }
    headers
}

/// An admitted request's hold on its limits. Settle it with the real cost
/// when the answer is complete; dropped unsettled (the request failed or
/// was abandoned before any usage was known), it releases everything and
/// spends nothing.
#[derive(Debug)]
pub struct Permit {
    governor: Arc<Governor>,
    plan: Plan,
    lease: String,
    tokens_taken: i64,
    headers: Vec<(HeaderName, HeaderValue)>,
    done: bool,
}

impl Permit {
    /// `x-ratelimit-*` headers for the response.
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// Record the real cost and tokens, release the reservation and leases.
    pub async fn settle(mut self, spent: Nanos, tokens_used: u64) {
        self.done = true;
        let governor = Arc::clone(&self.governor);
        governor
            .settle(&self, spent, tokens_used, crate::time::now_ms())
            .await;
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let permit = Permit {
            governor: Arc::clone(&self.governor),
            plan: std::mem::take(&mut self.plan),
            lease: std::mem::take(&mut self.lease),
            tokens_taken: self.tokens_taken,
            headers: Vec::new(),
            done: true,
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let governor = Arc::clone(&permit.governor);
                governor.settle(&permit, 0, 0, crate::time::now_ms()).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_durations_read_like_openai_headers() {
        assert_eq!(reset_text(20), "20ms");
        assert_eq!(reset_text(1000), "1s");
        assert_eq!(reset_text(1001), "2s");
        assert_eq!(reset_text(360_000), "6m0s");
    }
}
