//! The redactor: every log line, panic message, client-facing error message
//! and admin API answer passes through [`redact`], which masks every
//! credential format keygate knows — keygate keys and access tokens, the
//! provider formats of the guide (OpenAI, Anthropic, Google, Groq, DeepSeek,
//! xAI, OpenRouter, Perplexity), AWS access keys and secrets, GitHub
//! tokens, private keys, passwords in URLs, authentication headers and
//! generic `*_API_KEY=` / `*_SECRET=` / `*_TOKEN=` / `*_PASSWORD=`
//! assignments.
//!
//! A keyword prefilter (Aho-Corasick, one pass) keeps the common case — a
//! line with no credential — to a scan and no allocation; only lines that
//! contain a keyword run the regular expressions. A masked secret keeps its
//! first characters (enough to tell an OpenAI key from a keygate one) and
//! loses the rest: `sk-pro…[redacted]`.

use aho_corasick::AhoCorasick;
use regex::{Captures, Regex};
use std::borrow::Cow;
use std::sync::LazyLock;

/// Characters of a secret kept in front of the mask.
const KEEP: usize = 6;
/// What replaces the rest.
pub const MASK: &str = "…[redacted]";

/// Words that precede or start every format below (matched without case).
const KEYWORDS: &[&str] = &[
    "kg_",
    "sk-",
    "sk_",
    "aiza",
    "gsk_",
    "xai-",
    "pplx-",
    "akia",
    "asia",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "private key",
    "eyj",
    "authorization",
    "api-key",
    "api_key",
    "apikey",
    "secret",
    "token",
    "password",
    "passwd",
    "://",
    "bearer",
    "basic ",
];

/// One format: a regular expression whose group `s` is the secret.
struct Rule {
    regex: Regex,
}

/// Every format, most specific first. Each has one group named `s`.
const PATTERNS: &[&str] = &[
    // PEM private keys, whole blocks (or to the end of a cut-off text).
    r"(?s)(?P<s>-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z))",
    // JWTs (keygate access tokens, identity tokens, assertions).
    r"(?P<s>eyJ[A-Za-z0-9_-]{6,}\.eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*)",
    // keygate keys (look-alikes too: a mask costs nothing).
    r"(?P<s>kg_[a-z0-9]{1,16}_[A-Za-z0-9]{16,})",
    // OpenAI (sk-proj-, sk-svcacct-, sk-admin-, legacy), Anthropic
    // (sk-ant-…), DeepSeek, OpenRouter (sk-or-v1-), Stripe-like sk_live_.
    r"(?P<s>sk[-_][A-Za-z0-9_-]{16,})",
    r"(?P<s>AIza[0-9A-Za-z_-]{30,})",
    r"(?P<s>gsk_[A-Za-z0-9]{16,})",
    r"(?P<s>xai-[A-Za-z0-9]{16,})",
    r"(?P<s>pplx-[A-Za-z0-9]{16,})",
    r"(?P<s>(?:AKIA|ASIA)[0-9A-Z]{16})",
    r"(?P<s>gh[pousr]_[A-Za-z0-9]{20,})",
    r"(?P<s>github_pat_[A-Za-z0-9_]{20,})",
    // Passwords in URLs: scheme://user:password@host.
    r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:(?P<s>[^@\s/]{3,})@",
    // Authentication headers, however they are printed.
    r#"(?i)(?:authorization|proxy-authorization|x-api-key|x-goog-api-key|api-key)["']?\s*[:=]\s*["']?(?:bearer\s+|basic\s+)?(?P<s>[^\s"',;}]{8,})"#,
    // Generic assignments: OPENAI_API_KEY=…, "client_secret": "…", password: …
    r#"(?i)[A-Za-z0-9_.-]*(?:api[_-]?key|secret|token|passw(?:or)?d)["']?\s*[:=]\s*["']?(?P<s>[^\s"',;}]{8,})"#,
];

static PREFILTER: LazyLock<Option<AhoCorasick>> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(KEYWORDS)
        .ok()
});

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    PATTERNS
        .iter()
        .filter_map(|p| Regex::new(p).ok().map(|regex| Rule { regex }))
        .collect()
});

/// `secret` as it may be shown: its first characters and the mask. An
/// already masked value stays as it is.
fn mask(secret: &str) -> String {
    if secret.ends_with(MASK) || secret.contains("[redacted]") {
        return secret.to_string();
    }
    let keep: String = secret
        .chars()
        .take(KEEP.min(secret.chars().count() / 3))
        .collect();
    format!("{keep}{MASK}")
}

/// `text` with every credential masked; borrowed when there is none.
pub fn redact(text: &str) -> Cow<'_, str> {
    let Some(prefilter) = PREFILTER.as_ref() else {
        // The keyword automaton always builds; should it not, every text
        // goes through the expressions rather than none.
        return redact_all(text);
    };
    if !prefilter.is_match(text) {
        return Cow::Borrowed(text);
    }
    redact_all(text)
}

fn redact_all(text: &str) -> Cow<'_, str> {
    let mut out: Cow<'_, str> = Cow::Borrowed(text);
    for rule in RULES.iter() {
        if !rule.regex.is_match(&out) {
            continue;
        }
        let replaced = rule
            .regex
            .replace_all(&out, |caps: &Captures<'_>| {
                let whole = caps.get(0).map_or("", |m| m.as_str());
                match caps.name("s") {
                    Some(secret) => {
                        let start = secret.start() - caps.get(0).map_or(0, |m| m.start());
                        let end = start + secret.as_str().len();
                        format!(
                            "{}{}{}",
                            &whole[..start],
                            mask(secret.as_str()),
                            &whole[end..]
                        )
                    }
                    None => whole.to_string(),
                }
            })
            .into_owned();
        out = Cow::Owned(replaced);
    }
    out
}

/// Every string in a JSON value redacted, except the values of `keep`
/// fields at the top level (the secret an answer exists to show, once).
pub fn redact_json(value: &mut serde_json::Value, keep: &[&str]) {
    fn walk(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(text) => {
                if let Cow::Owned(masked) = redact(text) {
                    *text = masked;
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            serde_json::Value::Object(map) => map.values_mut().for_each(walk),
            _ => {}
        }
    }
    match value {
        serde_json::Value::Object(map) => {
            for (name, field) in map.iter_mut() {
                if !keep.contains(&name.as_str()) {
                    walk(field);
                }
            }
        }
        other => walk(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(n: usize) -> String {
        use rand::distr::{Alphanumeric, SampleString};
        Alphanumeric.sample_string(&mut rand::rng(), n)
    }

    #[test]
    fn every_format_is_masked() {
        let secrets = [
            secrecy::ExposeSecret::expose_secret(&crate::auth::key::generate("live")).to_string(),
            format!("sk-proj-{}", random(48)),
            format!("sk-svcacct-{}", random(48)),
            format!("sk-ant-api03-{}", random(90)),
            format!("sk-ant-admin01-{}", random(90)),
            format!("sk-{}", random(48)),
            format!("AIza{}", random(35)),
            format!("gsk_{}", random(52)),
            format!("xai-{}", random(80)),
            format!("sk-or-v1-{}", random(64)),
            format!("pplx-{}", random(48)),
            format!("AKIA{}", random(16).to_uppercase()),
            format!("ghp_{}", random(36)),
            format!("github_pat_{}", random(60)),
            format!("eyJ{}.eyJ{}.{}", random(20), random(40), random(43)),
        ];
        for secret in &secrets {
            for line in [
                format!("calling upstream with {secret} now"),
                format!("{{\"key\":\"{secret}\"}}"),
                format!("Authorization: Bearer {secret}"),
            ] {
                let masked = redact(&line);
                assert!(!masked.contains(secret.as_str()), "{line} -> {masked}");
                assert!(masked.contains(MASK), "{masked}");
            }
        }
    }

    #[test]
    fn headers_assignments_urls_and_private_keys_are_masked() {
        let value = random(32);
        // PEM armour assembled here: no tracked line looks like a key's.
        let d = "-".repeat(5);
        for line in [
            format!("x-api-key: {value}"),
            format!("headers={{\"api-key\": \"{value}\"}}"),
            format!("OPENAI_API_KEY={value}"),
            format!("\"client_secret\": \"{value}\""),
            format!("postgres://keygate:{value}@db:5432/keygate"),
            format!("Authorization: Basic {value}"),
            format!("{d}BEGIN PRIVATE KEY{d}\n{value}\n{d}END PRIVATE KEY{d}"),
            format!("{d}BEGIN RSA PRIVATE KEY{d}\n{value}"),
        ] {
            let masked = redact(&line);
            assert!(!masked.contains(&value), "{line} -> {masked}");
        }
    }

    #[test]
    fn ordinary_text_is_untouched_and_borrowed() {
        for line in [
            "request served status=200 latency_ms=12 model=gpt-4o-mini",
            "key_01jabc revoked by key_01jdef",
            "tokens: 42",
        ] {
            assert!(
                matches!(redact(line), Cow::Borrowed(_)) || redact(line) == line,
                "{line}"
            );
        }
        assert!(matches!(
            redact("request served status=200 latency_ms=12"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn json_keeps_the_shown_once_secret_and_masks_the_rest() {
        let secret =
            secrecy::ExposeSecret::expose_secret(&crate::auth::key::generate("live")).to_string();
        let leaked = format!("sk-proj-{}", random(48));
        let mut answer = serde_json::json!({
            "key": secret,
            "description": format!("copied {leaked} here"),
            "metadata": {"note": leaked},
        });
        redact_json(&mut answer, &["key"]);
        assert_eq!(answer["key"], secret.as_str());
        assert!(!answer.to_string().contains(&leaked));
    }
}
