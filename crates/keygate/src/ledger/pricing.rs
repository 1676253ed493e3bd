//! What a request costs: the price table keygate ships (`prices.toml`,
//! embedded at build time), overlaid with the operator's `[prices."…"]`
//! entries, and exact integer arithmetic in nanodollars.
//!
//! A model is looked up, first match wins:
//!
//! 1. by exact name, then by the names it reduces to: without a provider
//!    prefix (`openai/gpt-4o`, `models/gemini-2.5-pro`), without a Bedrock
//!    region and vendor (`us.anthropic.…`), without a version suffix
//!    (`:0`, `@20241022`, `-v2`), and without a date or release suffix
//!    (`-2024-08-06`, `-20241022`, `-latest`, `-001`, `-preview-05-20`).
//!    At each name an entry scoped to the provider (`groq/llama-…`) wins
//!    over the bare one, and an operator's entry replaces the shipped one of
//!    the same name;
//! 2. by the operator's glob entries (`[prices."claude-*"]`), the longest
//!    matching pattern winning, against the model as given, the model
//!    without its provider prefix, and `provider/model`;
//! 3. by the operator's `[prices."*"]`, the price of every other model.
//!
//! A model nothing matches has no price and costs nothing; it is logged
//! once, so an operator can add it.

use crate::policy::limits::{usd_to_nanos, Nanos};
use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

/// The shipped table, in US dollars per million tokens.
const SHIPPED: &str = include_str!("prices.toml");

/// Prices are per million tokens.
const TOKENS_PER_RATE: i128 = 1_000_000;

/// Unpriced models remembered for logging each once; past this a few more
/// log lines are the price of bounded memory.
const UNPRICED_REMEMBERED: usize = 1024;

/// A model's price, in nanodollars per million tokens: $2.50 per million is
/// `2_500_000_000`. Integers keep every sum exact; only the final division
/// by a million rounds (up).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Price {
    /// Fresh (uncached) input tokens.
    pub input: Nanos,
    /// Input tokens served from the provider's prompt cache; `None`: the
    /// model has no cache price and cached tokens cost `input`.
    pub cached_input: Option<Nanos>,
    /// Output tokens (reasoning included).
    pub output: Nanos,
}

/// Tokens one request used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenCount {
    /// Input tokens, cached ones included.
    pub prompt: u64,
    /// Of `prompt`, those read from the provider's prompt cache.
    pub cached: u64,
    /// Output tokens.
    pub completion: u64,
}

/// `sum / 1_000_000`, rounded up to the nano and capped at `Nanos::MAX`:
/// a request is never billed less than it cost.
fn per_million_rounded_up(sum: i128) -> Nanos {
    let nanos = (sum + TOKENS_PER_RATE - 1).div_euclid(TOKENS_PER_RATE);
    Nanos::try_from(nanos).unwrap_or(Nanos::MAX)
}

impl Price {
    /// What `tokens` cost: uncached input at `input`, cached input at
    /// `cached_input` (or `input`), output at `output`.
    pub fn cost(&self, tokens: &TokenCount) -> Nanos {
        let cached = tokens.cached.min(tokens.prompt);
        let fresh = tokens.prompt - cached;
        let sum = i128::from(fresh) * i128::from(self.input)
            + i128::from(cached) * i128::from(self.cached_input.unwrap_or(self.input))
            + i128::from(tokens.completion) * i128::from(self.output);
        per_million_rounded_up(sum)
    }

    /// The most a request can cost before its usage is known: every prompt
    /// token as uncached input (a cache hit is never assumed) and every
    /// output token it may generate.
    pub fn worst_case(&self, prompt_tokens: u64, max_output_tokens: u64) -> Nanos {
        self.cost(&TokenCount {
            prompt: prompt_tokens,
            cached: 0,
            completion: max_output_tokens,
        })
    }
}

/// A price as people write it (configuration, the shipped table): US
/// dollars per million tokens.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    /// Fresh input, USD per million tokens.
    pub input: f64,
    /// Cached input, USD per million tokens (absent: same as `input`).
    #[serde(default)]
    pub cached_input: Option<f64>,
    /// Output, USD per million tokens.
    pub output: f64,
}

impl RawPrice {
    /// Convert to nanos, refusing negative, non-finite or absurd amounts;
    /// the message names the field at fault.
    pub fn validate(&self) -> Result<Price, String> {
        let field = |name: &str, usd: f64| {
            usd_to_nanos(usd).ok_or_else(|| {
                format!("'{name}' must be a finite, non-negative number of US dollars per million tokens (got {usd})")
            })
        };
        Ok(Price {
            input: field("input", self.input)?,
            cached_input: self
                .cached_input
                .map(|usd| field("cached_input", usd))
                .transpose()?,
            output: field("output", self.output)?,
        })
    }
}

/// Whether a price-table name is a glob pattern rather than a model name.
pub fn is_pattern(name: &str) -> bool {
    name.contains(['*', '?', '[', '{'])
}

/// The price table could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    /// An entry is unusable.
    #[error("price of '{name}': {message}")]
    Entry {
        /// The entry's model name or pattern.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The table built into keygate does not parse (a build defect).
    #[error("the shipped price table is broken: {0}")]
    Shipped(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShippedTable {
    models: BTreeMap<String, RawPrice>,
}

/// The shipped price table, in USD per million tokens, as written.
pub fn shipped_table() -> Result<BTreeMap<String, RawPrice>, PriceError> {
    toml::from_str::<ShippedTable>(SHIPPED)
        .map(|table| table.models)
        .map_err(|e| PriceError::Shipped(e.message().to_string()))
}

/// Every price keygate knows, ready for lookups.
#[derive(Debug)]
pub struct Prices {
    /// By name as written (model ids may contain `/`).
    exact: HashMap<String, Price>,
    /// Entries named `provider/model`, by provider then model, so a lookup
    /// scoped to a provider allocates nothing.
    scoped: HashMap<String, HashMap<String, Price>>,
    globs: GlobSet,
    /// Pattern and price of each glob, in `globs`' order.
    glob_prices: Vec<(String, Price)>,
    /// `[prices."*"]`.
    fallback: Option<Price>,
    unpriced: Mutex<HashSet<String>>,
}

impl Prices {
    /// The shipped table alone.
    pub fn shipped() -> Result<Prices, PriceError> {
        Prices::shipped_with(&BTreeMap::new())
    }

    /// The shipped table with `overrides` (validated prices by model name or
    /// glob; `*` is the fallback) laid over it.
    pub fn shipped_with(overrides: &BTreeMap<String, Price>) -> Result<Prices, PriceError> {
        let mut entries = BTreeMap::new();
        for (name, raw) in shipped_table()? {
            let price = raw.validate().map_err(|message| PriceError::Entry {
                name: name.clone(),
                message,
            })?;
            entries.insert(name, price);
        }
        entries.extend(overrides.iter().map(|(name, price)| (name.clone(), *price)));

        let mut exact = HashMap::new();
        let mut scoped: HashMap<String, HashMap<String, Price>> = HashMap::new();
        let mut builder = GlobSetBuilder::new();
        let mut glob_prices = Vec::new();
        let mut fallback = None;
        for (name, price) in entries {
            if name == "*" {
                fallback = Some(price);
            } else if is_pattern(&name) {
                let glob = Glob::new(&name).map_err(|e| PriceError::Entry {
                    name: name.clone(),
                    message: format!("not a valid pattern: {}", e.kind()),
                })?;
                builder.add(glob);
                glob_prices.push((name, price));
            } else {
                if let Some((provider, model)) = name.split_once('/') {
                    scoped
                        .entry(provider.to_string())
                        .or_default()
                        .insert(model.to_string(), price);
                }
                exact.insert(name, price);
            }
        }
        let globs = builder.build().map_err(|e| PriceError::Entry {
            name: "patterns".into(),
            message: e.to_string(),
        })?;
        Ok(Prices {
            exact,
            scoped,
            globs,
            glob_prices,
            fallback,
            unpriced: Mutex::new(HashSet::new()),
        })
    }

    /// Every model priced by name (not by a pattern).
    pub fn model_names(&self) -> impl Iterator<Item = &str> {
        self.exact.keys().map(String::as_str)
    }

    /// The shipped table with the configuration's `[prices]` over it.
    pub fn from_config(config: &crate::config::Config) -> Result<Prices, PriceError> {
        Prices::shipped_with(&config.prices)
    }

    /// The price of `model` served by `provider`, or `None` when nothing
    /// (not even a `*` entry) prices it.
    pub fn price(&self, provider: &str, model: &str) -> Option<&Price> {
        self.find(provider, model).or(self.fallback.as_ref())
    }

    /// The price of a routed request: of the model the provider was sent
    /// (`upstream_model`), else of the model the client asked for (an Azure
    /// deployment or an alias priced by its public name), else the fallback.
    /// A model without a price is logged once.
    pub fn price_for(
        &self,
        provider: &str,
        upstream_model: &str,
        requested_model: &str,
    ) -> Option<&Price> {
        let found = self
            .find(provider, upstream_model)
            .or_else(|| self.find(provider, requested_model))
            .or(self.fallback.as_ref());
        if found.is_none() {
            self.note_unpriced(provider, upstream_model);
        }
        found
    }

    /// What `tokens` of `model` served by `provider` cost; 0 for a model
    /// without a price (logged once).
    pub fn cost(&self, provider: &str, model: &str, tokens: &TokenCount) -> Nanos {
        match self.price(provider, model) {
            Some(price) => price.cost(tokens),
            None => {
                self.note_unpriced(provider, model);
                0
            }
        }
    }

    fn find(&self, provider: &str, model: &str) -> Option<&Price> {
        let scoped = self.scoped.get(provider);
        for name in lookup_names(model) {
            if let Some(price) = scoped.and_then(|models| models.get(name)) {
                return Some(price);
            }
            if let Some(price) = self.exact.get(name) {
                return Some(price);
            }
        }
        if self.glob_prices.is_empty() {
            return None;
        }
        let bare = model.rsplit('/').next().unwrap_or(model);
        let qualified = format!("{provider}/{model}");
        [model, bare, qualified.as_str()]
            .iter()
            .flat_map(|name| self.globs.matches(name))
            .filter_map(|index| self.glob_prices.get(index))
            // The most specific pattern: the longest; on a tie the first
            // by name, as the configuration lists them.
            .min_by(|(a, _), (b, _)| b.len().cmp(&a.len()).then_with(|| a.cmp(b)))
            .map(|(_, price)| price)
    }

    fn note_unpriced(&self, provider: &str, model: &str) {
        let Ok(mut seen) = self.unpriced.lock() else {
            return;
        };
        let name = format!("{provider}/{model}");
        if seen.len() < UNPRICED_REMEMBERED && seen.insert(name) {
            tracing::warn!(
                %provider,
                model = %crate::error::printable(model),
                "no price for this model: its requests cost nothing and no budget counts them; add [prices.\"<model>\"] (or [prices.\"*\"]) to the configuration"
            );
        }
    }
}

/// Bedrock's cross-region inference prefixes (`us.anthropic.…`).
const BEDROCK_REGIONS: &[&str] = &["us", "eu", "apac", "global", "us-gov", "jp", "au", "ca"];
/// Bedrock's model vendors (`anthropic.claude-…`).
const BEDROCK_VENDORS: &[&str] = &[
    "anthropic",
    "meta",
    "amazon",
    "mistral",
    "cohere",
    "ai21",
    "deepseek",
    "openai",
    "qwen",
    "writer",
];

/// The names a model is looked up by, most specific first: the name, then
/// each reduction of it. Every one is a slice of `model`.
fn lookup_names(model: &str) -> Vec<&str> {
    // A provider or path prefix: `openai/gpt-4o`, `models/gemini-2.5-pro`,
    // `publishers/anthropic/models/claude-…`.
    let prefixless = model.rsplit('/').next().unwrap_or(model);
    // Bedrock: region, then vendor.
    let vendorless = strip_dotted_prefix(
        strip_dotted_prefix(prefixless, BEDROCK_REGIONS),
        BEDROCK_VENDORS,
    );
    // Version suffixes: Bedrock `:0`, Vertex `@20241022`, Bedrock `-v2`.
    let versionless = vendorless.split(':').next().unwrap_or(vendorless);
    let versionless = versionless.split('@').next().unwrap_or(versionless);
    let versionless = strip_version(versionless);
    let base = strip_release(versionless);
    let mut names = Vec::with_capacity(5);
    for name in [model, prefixless, vendorless, versionless, base] {
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

fn strip_dotted_prefix<'a>(name: &'a str, prefixes: &[&str]) -> &'a str {
    match name.split_once('.') {
        Some((head, rest)) if prefixes.contains(&head) => rest,
        _ => name,
    }
}

fn all_digits(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_digit())
}

/// `claude-3-5-sonnet-20241022-v2` → `claude-3-5-sonnet-20241022`.
fn strip_version(name: &str) -> &str {
    match name.rsplit_once("-v") {
        Some((base, version))
            if !base.is_empty()
                && !version.is_empty()
                && version.bytes().all(|b| b.is_ascii_digit()) =>
        {
            base
        }
        _ => name,
    }
}

/// A release suffix: a date (`-2024-08-06`, `-20241022`), `-latest`, a
/// three-digit release (`-001`), a preview (`-preview`, `-preview-05-20`)
/// or `-exp`.
fn strip_release(name: &str) -> &str {
    let parts: Vec<&str> = name.split('-').collect();
    let n = parts.len();
    let cut = |keep: usize| -> &str {
        // `keep` leading parts, joined by their original dashes.
        let len = parts[..keep].iter().map(|p| p.len()).sum::<usize>() + keep.saturating_sub(1);
        &name[..len]
    };
    if n >= 4
        && all_digits(parts[n - 3], 4)
        && all_digits(parts[n - 2], 2)
        && all_digits(parts[n - 1], 2)
    {
        return cut(n - 3);
    }
    if n >= 4
        && parts[n - 3] == "preview"
        && all_digits(parts[n - 2], 2)
        && all_digits(parts[n - 1], 2)
    {
        return cut(n - 3);
    }
    if n >= 2 {
        let last = parts[n - 1];
        if all_digits(last, 8)
            || all_digits(last, 3)
            || matches!(last, "latest" | "preview" | "exp")
        {
            return cut(n - 1);
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(input: f64, cached: Option<f64>, output: f64) -> Price {
        RawPrice {
            input,
            cached_input: cached,
            output,
        }
        .validate()
        .unwrap()
    }

    fn overrides(entries: &[(&str, Price)]) -> BTreeMap<String, Price> {
        entries.iter().map(|(n, p)| (n.to_string(), *p)).collect()
    }

    #[test]
    fn the_shipped_table_parses_and_covers_every_provider() {
        let prices = Prices::shipped().unwrap();
        for (provider, model) in [
            ("openai", "gpt-4o"),
            ("openai", "gpt-4o-mini"),
            ("openai", "gpt-4.1"),
            ("openai", "gpt-4.1-mini"),
            ("openai", "gpt-4.1-nano"),
            ("openai", "o1"),
            ("openai", "o3"),
            ("openai", "o4-mini"),
            ("openai", "text-embedding-3-small"),
            ("openai", "text-embedding-3-large"),
            ("anthropic", "claude-opus-4-1"),
            ("anthropic", "claude-sonnet-4-5"),
            ("anthropic", "claude-haiku-4-5"),
            ("anthropic", "claude-3-7-sonnet-latest"),
            ("anthropic", "claude-3-5-haiku-latest"),
            ("gemini", "gemini-2.5-pro"),
            ("gemini", "gemini-2.5-flash"),
            ("gemini", "gemini-2.5-flash-lite"),
            ("gemini", "gemini-2.0-flash"),
            ("groq", "llama-3.3-70b-versatile"),
            ("groq", "llama-3.1-8b-instant"),
            ("groq", "openai/gpt-oss-120b"),
            ("deepseek", "deepseek-chat"),
            ("deepseek", "deepseek-reasoner"),
            ("bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0"),
            ("bedrock", "anthropic.claude-3-5-sonnet-20241022-v2:0"),
            ("bedrock", "amazon.nova-pro-v1:0"),
            ("bedrock", "us.meta.llama3-3-70b-instruct-v1:0"),
            ("vertex", "claude-sonnet-4@20250514"),
            ("vertex", "claude-3-5-sonnet-v2@20241022"),
            ("vertex", "publishers/google/models/gemini-2.5-flash"),
        ] {
            assert!(
                prices.price(provider, model).is_some(),
                "{provider}/{model} has no shipped price"
            );
        }
        // Every model the catalogue lists for its providers has a price.
        for provider in ["openai", "anthropic", "groq", "deepseek", "gemini"] {
            for model in crate::providers::catalogue::known_models(provider) {
                assert!(
                    prices.price(provider, model).is_some(),
                    "{provider}/{model}"
                );
            }
        }
        assert_eq!(prices.price("openai", "no-such-model"), None);
    }

    #[test]
    fn lookup_goes_exact_then_reduced_then_glob_then_fallback() {
        let prices = Prices::shipped().unwrap();
        // Exact beats the reduction: the first gpt-4o snapshot kept its price.
        assert_eq!(
            prices.price("openai", "gpt-4o-2024-05-13"),
            Some(&usd(5.0, None, 15.0))
        );
        // A dated snapshot without its own entry is its base model.
        let gpt4o = usd(2.5, Some(1.25), 10.0);
        assert_eq!(prices.price("openai", "gpt-4o-2024-08-06"), Some(&gpt4o));
        assert_eq!(prices.price("openai", "openai/gpt-4o"), Some(&gpt4o));
        assert_eq!(
            prices.price("anthropic", "claude-3-5-sonnet-20241022"),
            prices.price("anthropic", "claude-3-5-sonnet")
        );
        assert_eq!(
            prices.price("gemini", "gemini-2.0-flash-001"),
            prices.price("gemini", "gemini-2.0-flash")
        );
        // A model whose name has a date-like tail but its own entry is not
        // mistaken for a snapshot of something else.
        assert_eq!(
            prices.price("gemini", "gemini-2.5-flash-lite"),
            Some(&usd(0.10, Some(0.01), 0.40))
        );

        let tuned = usd(1.0, None, 2.0);
        let family = usd(3.0, None, 4.0);
        let anything = usd(9.0, None, 9.0);
        let prices = Prices::shipped_with(&overrides(&[
            ("my-deployment", tuned),
            ("claude-*", family),
            ("claude-opus-*", usd(5.0, None, 6.0)),
            ("*", anything),
        ]))
        .unwrap();
        assert_eq!(prices.price("azure", "my-deployment"), Some(&tuned));
        // Shipped exact entries beat operator globs…
        assert_eq!(
            prices.price("anthropic", "claude-sonnet-4-5"),
            Some(&usd(3.0, Some(0.30), 15.0))
        );
        // …globs price what the table lacks, the longest pattern winning…
        assert_eq!(prices.price("anthropic", "claude-next"), Some(&family));
        assert_eq!(
            prices.price("anthropic", "claude-opus-9"),
            Some(&usd(5.0, None, 6.0))
        );
        // …and `*` prices everything else.
        assert_eq!(prices.price("local", "llama-homebrew"), Some(&anything));
        assert_eq!(
            prices.cost(
                "local",
                "llama-homebrew",
                &TokenCount {
                    prompt: 1_000_000,
                    cached: 0,
                    completion: 0
                }
            ),
            9_000_000_000
        );
    }

    #[test]
    fn operator_entries_replace_shipped_ones_and_can_be_provider_scoped() {
        let mine = usd(2.0, Some(1.0), 8.0);
        let on_groq = usd(0.5, None, 0.5);
        let prices =
            Prices::shipped_with(&overrides(&[("gpt-4o", mine), ("groq/gpt-4o", on_groq)]))
                .unwrap();
        assert_eq!(prices.price("openai", "gpt-4o"), Some(&mine));
        assert_eq!(prices.price("openai", "gpt-4o-2024-11-20"), Some(&mine));
        assert_eq!(prices.price("groq", "gpt-4o"), Some(&on_groq));
        // Groq's own id for an open-weights model is scoped to Groq.
        let shipped = Prices::shipped().unwrap();
        assert_eq!(
            shipped.price("groq", "openai/gpt-oss-120b"),
            Some(&usd(0.15, None, 0.75))
        );
    }

    #[test]
    fn a_routed_request_falls_back_to_the_requested_model() {
        let prices = Prices::shipped().unwrap();
        assert_eq!(
            prices.price_for("azure", "prod-deployment-7", "gpt-4o-mini"),
            prices.price("openai", "gpt-4o-mini")
        );
        assert_eq!(prices.price_for("azure", "prod-deployment-7", "nope"), None);
    }

    #[test]
    fn cost_prices_cached_input_at_its_own_rate() {
        // gpt-4o-mini: $0.15 in, $0.075 cached, $0.60 out per million, so
        // 150, 75 and 600 nanos a token.
        let price = usd(0.15, Some(0.075), 0.60);
        let one = |prompt, cached, completion| {
            price.cost(&TokenCount {
                prompt,
                cached,
                completion,
            })
        };
        assert_eq!(one(0, 0, 0), 0);
        assert_eq!(one(10, 0, 9), 1_500 + 5_400);
        assert_eq!(one(1_000_000, 0, 1_000_000), 750_000_000);
        // Cached tokens are part of the prompt and cost half here.
        assert_eq!(one(1_000_000, 400_000, 0), 90_000_000 + 30_000_000);
        // More cached than prompt (a confused upstream) never goes negative.
        assert_eq!(one(10, 50, 0), 750);
        // No cached price: cached input costs full input.
        let plain = usd(0.15, None, 0.60);
        assert_eq!(
            plain.cost(&TokenCount {
                prompt: 1_000_000,
                cached: 400_000,
                completion: 0
            }),
            150_000_000
        );
        // Huge counts saturate instead of wrapping.
        assert_eq!(one(u64::MAX, 0, u64::MAX), Nanos::MAX);
    }

    #[test]
    fn cost_rounds_up_to_the_nano() {
        // Half a nano a fresh input token, a tenth cached, 2.5 out.
        let tiny = usd(0.0005, Some(0.0001), 0.0025);
        let one = |prompt, cached, completion| {
            tiny.cost(&TokenCount {
                prompt,
                cached,
                completion,
            })
        };
        assert_eq!(one(1, 0, 0), 1, "half a nano is billed as one, never zero");
        assert_eq!(one(3, 0, 0), 2, "1.5 → 2");
        assert_eq!(one(3, 0, 1), 4, "1.5 + 2.5 is exactly 4");
        assert_eq!(one(2, 2, 0), 1, "0.2 → 1");
        assert_eq!(one(2_000_000, 0, 0), 1_000_000);
    }

    #[test]
    fn worst_case_prices_every_prompt_token_uncached() {
        let price = usd(2.5, Some(1.25), 10.0);
        assert_eq!(price.worst_case(1000, 500), 2_500_000 + 5_000_000);
        assert_eq!(
            price.worst_case(1000, 0),
            price.cost(&TokenCount {
                prompt: 1000,
                cached: 0,
                completion: 0
            })
        );
        assert_eq!(usd(0.0005, Some(0.0001), 0.0025).worst_case(3, 0), 2);
    }

    #[test]
    fn bad_prices_are_refused_with_the_field_named() {
        for (raw, field) in [
            (
                RawPrice {
                    input: -1.0,
                    cached_input: None,
                    output: 1.0,
                },
                "input",
            ),
            (
                RawPrice {
                    input: 1.0,
                    cached_input: Some(f64::NAN),
                    output: 1.0,
                },
                "cached_input",
            ),
            (
                RawPrice {
                    input: 1.0,
                    cached_input: None,
                    output: f64::INFINITY,
                },
                "output",
            ),
        ] {
            let message = raw.validate().unwrap_err();
            assert!(message.contains(&format!("'{field}'")), "{message}");
        }
        let error = Prices::shipped_with(&overrides(&[("claude-[", usd(1.0, None, 1.0))]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("claude-["), "{error}");
    }

    #[test]
    fn names_reduce_step_by_step() {
        assert_eq!(
            lookup_names("us.anthropic.claude-3-5-sonnet-20241022-v2:0"),
            vec![
                "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
                "claude-3-5-sonnet-20241022-v2:0",
                "claude-3-5-sonnet-20241022",
                "claude-3-5-sonnet"
            ]
        );
        assert_eq!(lookup_names("gpt-4.1"), vec!["gpt-4.1"]);
        assert_eq!(
            lookup_names("gemini-2.5-flash-preview-05-20"),
            vec!["gemini-2.5-flash-preview-05-20", "gemini-2.5-flash"]
        );
        assert_eq!(lookup_names("o1-2024-12-17"), vec!["o1-2024-12-17", "o1"]);
        assert_eq!(lookup_names("llama3-70b-8192"), vec!["llama3-70b-8192"]);
    }
}
