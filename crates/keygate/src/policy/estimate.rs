//! Prompt size estimates for reservations and token rates, before the
//! provider has counted anything.
//!
//! The estimate counts the tokens of the whole request body with OpenAI's
//! `o200k_base` encoding. Counting the JSON around the messages as well
//! errs on the high side, which is the side a reservation must err on; other
//! providers' tokenizers differ by a few percent, which is the estimate
//! error the budget tests allow for.

use std::sync::{Once, OnceLock};
use tiktoken_rs::CoreBPE;

/// Bodies above this are not tokenized: a byte-level BPE never makes more
/// tokens than bytes, so the byte count is a safe upper bound that costs
/// nothing to compute.
const TOKENIZE_UP_TO: usize = 256 * 1024;

static BPE: OnceLock<Option<CoreBPE>> = OnceLock::new();

fn load() -> Option<CoreBPE> {
    match tiktoken_rs::o200k_base() {
        Ok(bpe) => Some(bpe),
        Err(error) => {
            tracing::error!(%error, "the o200k tokenizer could not be loaded; prompts are estimated by their byte count");
            None
        }
    }
}

/// Load the tokenizer now, blocking (tests; a gateway loads it in the
/// background on the first estimate instead).
pub fn warm_up() {
    let _ = BPE.get_or_init(load);
}

/// The tokenizer, once loaded; the first call starts loading it.
fn encoding() -> Option<&'static CoreBPE> {
    if let Some(loaded) = BPE.get() {
        return loaded.as_ref();
    }
    prepare();
    None
}

/// Start loading the tokenizer on a thread of its own, once: its tables
/// take tens of megabytes and a moment to build, which a gateway without
/// budgets or token rates should not pay, and a request should not wait for.
pub fn prepare() {
    static STARTED: Once = Once::new();
    if BPE.get().is_some() {
        return;
    }
    STARTED.call_once(|| {
        if let Err(error) = std::thread::Builder::new()
            .name("keygate-tokenizer".into())
            .spawn(warm_up)
        {
            tracing::error!(%error, "could not start loading the tokenizer");
        }
    });
}

/// Tokens a request body will count as input, at most. Until the tokenizer
/// is loaded (and for huge bodies) the byte count stands in: a safe upper
/// bound, larger than the real count.
pub fn prompt_tokens(body: &[u8]) -> u64 {
    let bytes = body.len() as u64;
    if body.len() > TOKENIZE_UP_TO {
        return bytes;
    }
    match (encoding(), std::str::from_utf8(body)) {
        (Some(bpe), Ok(text)) => bpe.encode_ordinary(text).len() as u64,
        _ => bytes,
    }
}

/// The most output tokens a request may produce: its own limit
/// (`max_tokens`, `max_completion_tokens`, `max_output_tokens`,
/// `generationConfig.maxOutputTokens`) times the choices it asks for, or
/// the gateway's cap when it sets none.
pub fn completion_tokens(body: &[u8], cap: u64) -> u64 {
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct GenerationConfig {
        max_output_tokens: Option<u64>,
        candidate_count: Option<u64>,
    }
    #[derive(serde::Deserialize)]
    struct Limits {
        max_tokens: Option<u64>,
        max_completion_tokens: Option<u64>,
        max_output_tokens: Option<u64>,
        n: Option<u64>,
        #[serde(rename = "generationConfig", alias = "generation_config")]
        generation_config: Option<GenerationConfig>,
    }
    let Ok(limits) = serde_json::from_slice::<Limits>(body) else {
        return cap;
    };
    let generation = limits.generation_config.unwrap_or_default();
    let per_choice = limits
        .max_completion_tokens
        .or(limits.max_tokens)
        .or(limits.max_output_tokens)
        .or(generation.max_output_tokens)
        .unwrap_or(cap);
    let choices = limits
        .n
        .or(generation.candidate_count)
        .unwrap_or(1)
        .clamp(1, 128);
    per_choice.saturating_mul(choices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prompt_estimate_is_at_least_the_tokens_of_its_text() {
        warm_up();
        let body = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the whole wide world, politely."}]}"#;
        let estimate = prompt_tokens(body);
        assert!(estimate >= 10, "{estimate}");
        assert!(estimate <= body.len() as u64);
    }

    #[test]
    fn a_huge_body_is_bounded_by_its_bytes() {
        warm_up();
        let body = vec![b'a'; TOKENIZE_UP_TO + 1];
        assert_eq!(prompt_tokens(&body), body.len() as u64);
    }

    #[test]
    fn output_limits_are_read_from_every_dialect() {
        assert_eq!(completion_tokens(br#"{"max_tokens":100}"#, 4096), 100);
        assert_eq!(
            completion_tokens(br#"{"max_completion_tokens":50,"n":3}"#, 4096),
            150
        );
        assert_eq!(
            completion_tokens(
                br#"{"generationConfig":{"maxOutputTokens":70,"candidateCount":2}}"#,
                4096
            ),
            140
        );
        assert_eq!(completion_tokens(br#"{"messages":[]}"#, 4096), 4096);
        assert_eq!(completion_tokens(br#"{"max_tokens":"x"}"#, 4096), 4096);
    }
}
