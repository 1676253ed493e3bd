//! The scanner's rules: what a leaked credential looks like, one rule per
//! format. Each rule names the keywords that must occur in a file before
//! its regex runs at all (the aho-corasick prefilter), the regex, and the
//! check a candidate must pass: keygate keys their CRC32 checksum, generic
//! assignments their entropy, and so on.

use super::Secret;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::bytes::{Regex, RegexBuilder};

/// A rule as written: compiled into a [`RuleSet`].
#[derive(Debug)]
pub struct Rule {
    /// Stable id, used in output, fingerprints and SARIF.
    pub id: &'static str,
    /// What the rule finds, for people.
    pub description: &'static str,
    /// At least one of these (ASCII case-insensitive) must occur in a file
    /// before the regex is run on it.
    pub keywords: &'static [&'static str],
    /// The regex (bytes, ASCII). Capture group 1, when present, is the
    /// secret; otherwise the whole match.
    pattern: &'static str,
    /// Characters that continue a token of this format: a candidate with
    /// one right before or right after it is part of something longer and
    /// is not reported. `None` when the regex bounds the match itself.
    token: Option<fn(u8) -> bool>,
    /// The check a candidate must pass.
    check: Check,
}

/// What a candidate must pass besides the regex.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    /// Nothing more than not being an obvious placeholder.
    Placeholder,
    /// Shape and CRC32 checksum of a keygate key (`auth::key::parse`).
    KeygateChecksum,
    /// A generic `*_API_KEY=` / `*_SECRET=` / `*_TOKEN=` value: no
    /// placeholder, letters and digits, Shannon entropy over the threshold.
    Generic,
    /// An AWS secret access key: mixed case, high entropy, and either an
    /// access key id within a few lines or the word `secret` on its line.
    AwsSecret,
    /// A PEM private key block: the base64 body up to `-----END` is the
    /// secret, and it must be long enough to be a key.
    PemBody,
}

fn alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}
fn word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}
fn token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}
fn base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'/' || b == b'+' || b == b'='
}

/// Shannon entropy threshold (bits per character) of generic values and AWS
/// secret keys. Random base62 runs score about 5, hex about 4, English
/// identifiers and words 2.5–3.5.
pub const ENTROPY_THRESHOLD: f64 = 3.5;
/// Shortest value a generic assignment must have to be reported.
pub const GENERIC_MIN_LEN: usize = 16;
/// Lines either side of an AWS access key id within which a bare 40-character
/// secret key is reported.
const AWS_PAIR_LINES: usize = 3;

/// Every rule, most specific first: when two rules match the same text, the
/// earlier one is reported.
pub static RULES: &[Rule] = &[
    Rule {
        id: "keygate-key",
        description: "keygate API key or admin credential (checksum verified)",
        keywords: &["kg_"],
        pattern: r"kg_[a-z0-9]{1,16}_[A-Za-z0-9]{38}",
        token: Some(word),
        check: Check::KeygateChecksum,
    },
    Rule {
        id: "anthropic-api-key",
        description: "Anthropic API key",
        keywords: &["sk-ant-api"],
        pattern: r"sk-ant-api[0-9]{2}-[A-Za-z0-9_\-]{32,200}",
        token: Some(token),
        check: Check::Placeholder,
    },
    Rule {
        id: "anthropic-admin-key",
        description: "Anthropic Admin API key",
        keywords: &["sk-ant-admin"],
        pattern: r"sk-ant-admin[0-9]{2}-[A-Za-z0-9_\-]{32,200}",
        token: Some(token),
        check: Check::Placeholder,
    },
    Rule {
        id: "openrouter-api-key",
        description: "OpenRouter API key",
        keywords: &["sk-or-v1-"],
        pattern: r"sk-or-v1-[0-9a-f]{64}",
        token: Some(token),
        check: Check::Placeholder,
    },
    Rule {
        id: "openai-project-key",
        description: "OpenAI project API key",
        keywords: &["sk-proj-"],
        pattern: r"sk-proj-[A-Za-z0-9_\-]{40,250}",
        token: Some(token),
        check: Check::Placeholder,
    },
    Rule {
        id: "openai-service-account-key",
        description: "OpenAI service account key",
        keywords: &["sk-svcacct-"],
        pattern: r"sk-svcacct-[A-Za-z0-9_\-]{40,250}",
        token: Some(token),
        check: Check::Placeholder,
    },
    Rule {
        id: "openai-admin-key",
        description: "OpenAI admin key",
        keywords: &["sk-admin-"],
        pattern: r"sk-admin-[A-Za-z0-9_\-]{40,250}",
        token: Some(token),
        check: Check::Placeholder,
    },
    Rule {
        id: "openai-legacy-key",
        description: "OpenAI user API key (legacy sk- and 48 characters)",
        keywords: &["sk-"],
        pattern: r"sk-[A-Za-z0-9]{48}",
        token: Some(token),
        check: Check::Placeholder,
    },
    Rule {
        id: "deepseek-api-key",
        description: "DeepSeek API key (sk- and 32 hex digits)",
        keywords: &["sk-"],
        pattern: r"sk-[0-9a-f]{32}",
        token: Some(token),
        check: Check::Placeholder,
    },
    Rule {
        id: "google-api-key",
        description: "Google API key (AI Studio / Gemini, Cloud)",
        keywords: &["AIza"],
        pattern: r"AIza[0-9A-Za-z_\-]{35}",
        token: Some(token),
        check: Check::Placeholder,
    },
    Rule {
        id: "groq-api-key",
        description: "Groq API key",
        keywords: &["gsk_"],
        pattern: r"gsk_[A-Za-z0-9]{52}",
        token: Some(word),
        check: Check::Placeholder,
    },
    Rule {
        id: "xai-api-key",
        description: "xAI (Grok) API key",
        keywords: &["xai-"],
        pattern: r"xai-[A-Za-z0-9]{80}",
        token: Some(token),
        check: Check::Placeholder,
    },
    Rule {
        id: "perplexity-api-key",
        description: "Perplexity API key",
        keywords: &["pplx-"],
        pattern: r"pplx-[A-Za-z0-9]{48}",
        token: Some(token),
        check: Check::Placeholder,
    },
    Rule {
        id: "aws-access-key-id",
        description: "AWS access key id (long-term AKIA or temporary ASIA)",
        keywords: &["AKIA", "ASIA"],
        pattern: r"(?:AKIA|ASIA)[A-Z0-9]{16}",
        token: Some(alnum),
        check: Check::Placeholder,
    },
    Rule {
        id: "aws-secret-access-key",
        description: "AWS secret access key next to an access key id or labelled as secret",
        keywords: &["AKIA", "ASIA", "secret_access_key", "secretaccesskey"],
        pattern: r"[A-Za-z0-9/+]{40}",
        token: Some(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'+'),
        check: Check::AwsSecret,
    },
    Rule {
        id: "github-token",
        description: "GitHub token (personal, OAuth, user-to-server, server-to-server, refresh)",
        keywords: &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
        pattern: r"gh[pousr]_[A-Za-z0-9]{36}",
        token: Some(word),
        check: Check::Placeholder,
    },
    Rule {
        id: "github-fine-grained-token",
        description: "GitHub fine-grained personal access token",
        keywords: &["github_pat_"],
        pattern: r"github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}",
        token: Some(word),
        check: Check::Placeholder,
    },
    Rule {
        id: "private-key",
        description: "PEM private key block",
        keywords: &["PRIVATE KEY"],
        pattern: r"-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----",
        token: None,
        check: Check::PemBody,
    },
    Rule {
        id: "generic-api-key",
        description: "Secret-looking value assigned to an *_API_KEY, *_SECRET or *_TOKEN name",
        keywords: &["api_key", "apikey", "api-key", "secret", "token"],
        pattern: r#"(?i)[a-z0-9_.\-]*(?:api[_\-]?key|secret|token)[a-z0-9_\-]*["']?[ \t]*(?::=|=>|=|:)[ \t]*["']?([A-Za-z0-9_\-+/=.~]{16,256})"#,
        token: Some(|b| base64(b) || b == b'_' || b == b'-' || b == b'.' || b == b'~'),
        check: Check::Generic,
    },
];

/// A rule's candidate that passed its check.
#[derive(Debug)]
pub struct Hit {
    /// Index into [`RULES`].
    pub rule: usize,
    /// Byte offset of the secret in the scanned text.
    pub start: usize,
    /// One past its last byte.
    pub end: usize,
    /// The secret.
    pub secret: Secret,
}

/// The rules compiled: regexes and the keyword automaton.
#[derive(Debug)]
pub struct RuleSet {
    regexes: Vec<Regex>,
    prefilter: AhoCorasick,
    /// For each keyword of the automaton, the rules it enables.
    keyword_rules: Vec<Vec<usize>>,
}

/// A rule failed to compile (a bug in [`RULES`]; unit tests compile them).
#[derive(Debug, thiserror::Error)]
#[error("scan rule {rule} does not compile: {message}")]
pub struct RuleError {
    rule: &'static str,
    message: String,
}

impl RuleSet {
    /// Compile [`RULES`].
    pub fn new() -> Result<Self, RuleError> {
        let mut regexes = Vec::with_capacity(RULES.len());
        let mut keywords: Vec<String> = Vec::new();
        let mut keyword_rules: Vec<Vec<usize>> = Vec::new();
        for (index, rule) in RULES.iter().enumerate() {
            let regex = RegexBuilder::new(rule.pattern)
                .unicode(false)
                .size_limit(16 << 20)
                .build()
                .map_err(|e| RuleError {
                    rule: rule.id,
                    message: e.to_string(),
                })?;
            regexes.push(regex);
            for keyword in rule.keywords {
                let keyword = keyword.to_ascii_lowercase();
                match keywords.iter().position(|k| *k == keyword) {
                    Some(at) => keyword_rules[at].push(index),
                    None => {
                        keywords.push(keyword);
                        keyword_rules.push(vec![index]);
                    }
                }
            }
        }
        // A keyword that contains another (`sk-proj-` holds `sk-`) enables
        // that one's rules too, so a leftmost-longest, non-overlapping pass
        // finds every rule a file needs.
        let contained: Vec<Vec<usize>> = keywords
            .iter()
            .map(|outer| {
                keywords
                    .iter()
                    .enumerate()
                    .filter(|(_, inner)| outer.contains(inner.as_str()))
                    .flat_map(|(at, _)| keyword_rules[at].iter().copied())
                    .collect()
            })
            .collect();
        let keyword_rules = contained;
        let prefilter = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(&keywords)
            .map_err(|e| RuleError {
                rule: "prefilter",
                message: e.to_string(),
            })?;
        Ok(RuleSet {
            regexes,
            prefilter,
            keyword_rules,
        })
    }

    /// The rules whose keywords occur in `text`, as a bit set over
    /// [`RULES`] (there are fewer than 64).
    fn candidates(&self, text: &[u8]) -> u64 {
        let all: u64 = (1u64 << RULES.len()) - 1;
        let mut wanted = 0u64;
        for found in self.prefilter.find_iter(text) {
            for &rule in &self.keyword_rules[found.pattern().as_usize()] {
                wanted |= 1 << rule;
            }
            if wanted == all {
                break;
            }
        }
        wanted
    }

    /// Every secret in `text`, in order of position; where two rules match
    /// overlapping text, only the more specific one.
    pub fn scan(&self, text: &[u8]) -> Vec<Hit> {
        let wanted = self.candidates(text);
        if wanted == 0 {
            return Vec::new();
        }
        let mut hits = Vec::new();
        // AWS key ids are needed to judge bare AWS secret keys.
        let mut aws_ids: Vec<usize> = Vec::new();
        for (index, rule) in RULES.iter().enumerate() {
            if wanted & (1 << index) == 0 {
                continue;
            }
            let regex = &self.regexes[index];
            // Only the generic rule has a group; the others need no
            // capture engine, just the match.
            let spans: Vec<(usize, usize)> = if regex.captures_len() > 1 {
                regex
                    .captures_iter(text)
                    .filter_map(|c| c.get(1))
                    .map(|m| (m.start(), m.end()))
                    .collect()
            } else {
                regex
                    .find_iter(text)
                    .map(|m| (m.start(), m.end()))
                    .collect()
            };
            for (start, mut end) in spans {
                if let Some(continues) = rule.token {
                    // A generic value's left edge is the assignment the
                    // regex matched (`=`, a quote), not a token boundary.
                    let before = start
                        .checked_sub(1)
                        .map(|i| text[i])
                        .filter(|_| rule.check != Check::Generic);
                    let after = text.get(end).copied();
                    if before.is_some_and(continues) || after.is_some_and(continues) {
                        continue;
                    }
                }
                let candidate = &text[start..end];
                let secret = match rule.check {
                    Check::Placeholder => {
                        (!placeholder(candidate, false)).then(|| Secret::from_ascii(candidate))
                    }
                    Check::KeygateChecksum => std::str::from_utf8(candidate)
                        .ok()
                        .filter(|s| crate::auth::key::parse(s).is_ok())
                        .map(|s| Secret::new(s.to_string())),
                    Check::Generic => {
                        generic_value(candidate).then(|| Secret::from_ascii(candidate))
                    }
                    Check::AwsSecret => aws_secret(text, start, candidate, &aws_ids)
                        .then(|| Secret::from_ascii(candidate)),
                    Check::PemBody => pem_body(text, end).map(|(secret, block_end)| {
                        end = block_end;
                        secret
                    }),
                };
                let Some(secret) = secret else { continue };
                if rule.id == "aws-access-key-id" {
                    aws_ids.push(start);
                }
                hits.push(Hit {
                    rule: index,
                    start,
                    end,
                    secret,
                });
            }
        }
        // Most specific rule first at equal positions, then drop whatever
        // overlaps a hit already kept (a provider key that is also the
        // value of an `OPENAI_API_KEY=` line is reported once, as itself).
        hits.sort_by_key(|h| (h.start, h.rule));
        let mut kept: Vec<Hit> = Vec::with_capacity(hits.len());
        let mut covered = 0;
        for hit in hits {
            if kept.is_empty() || hit.start >= covered {
                covered = covered.max(hit.end);
                kept.push(hit);
            }
        }
        kept
    }
}

/// Words and runs that mark a documentation example rather than a secret.
/// Long enough that a random key contains one by chance about never.
const PLACEHOLDERS: &[&str] = &[
    "example",
    "xxxxxx",
    "******",
    "......",
    "placeholder",
    "changeme",
    "change_me",
    "change-me",
    "redacted",
    "dummy",
    "sample",
    "insert",
    "replace",
    "abcdefgh",
    "12345678",
    "00000000",
];
/// More words that mark a placeholder in a generic assignment, whose
/// values are free text rather than a fixed format.
const GENERIC_PLACEHOLDERS: &[&str] = &["your", "here", "todo", "fixme", "secret", "token", "..."];

/// Prefixes of the formats that have a rule of their own: a generic value
/// with one of them is that rule's to judge (a keygate look-alike with a
/// wrong checksum, or a shortened `sk-proj-abc123` in documentation, is not
/// a secret under another name).
const OWN_RULE_PREFIXES: &[&str] = &[
    "kg_",
    "sk-",
    "gsk_",
    "xai-",
    "pplx-",
    "aiza",
    "akia",
    "asia",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
];

/// Whether `value` is an obvious placeholder (`your-key-here`, `xxx…`,
/// `…EXAMPLE`); `generic` adds the words only free text would have.
pub fn placeholder(value: &[u8], generic: bool) -> bool {
    let lower = value.to_ascii_lowercase();
    let extra: &[&str] = if generic { GENERIC_PLACEHOLDERS } else { &[] };
    PLACEHOLDERS
        .iter()
        .chain(extra)
        .any(|p| memchr::memmem::find(&lower, p.as_bytes()).is_some())
}

/// Shannon entropy of `value` in bits per byte.
pub fn shannon_entropy(value: &[u8]) -> f64 {
    if value.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in value {
        counts[usize::from(b)] += 1;
    }
    let len = value.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / len;
            -p * p.log2()
        })
        .sum()
}

/// Whether a generic assignment's value looks like a real secret.
fn generic_value(value: &[u8]) -> bool {
    value.len() >= GENERIC_MIN_LEN
        && !OWN_RULE_PREFIXES
            .iter()
            .any(|p| value.len() >= p.len() && value[..p.len()].eq_ignore_ascii_case(p.as_bytes()))
        && value.iter().any(u8::is_ascii_digit)
        && value.iter().any(u8::is_ascii_alphabetic)
        && !placeholder(value, true)
        && shannon_entropy(value) >= ENTROPY_THRESHOLD
}

/// Line number (0-based) of `offset` in `text`.
fn line_of(text: &[u8], offset: usize) -> usize {
    memchr::memchr_iter(b'\n', &text[..offset]).count()
}

/// Whether a 40-character base64 run is an AWS secret access key.
fn aws_secret(text: &[u8], start: usize, value: &[u8], aws_ids: &[usize]) -> bool {
    let mixed = value.iter().any(u8::is_ascii_uppercase)
        && value.iter().any(u8::is_ascii_lowercase)
        && value
            .iter()
            .any(|b| b.is_ascii_digit() || *b == b'/' || *b == b'+');
    if !mixed || placeholder(value, false) || shannon_entropy(value) < 4.0 {
        return false;
    }
    let line_start = memchr::memrchr(b'\n', &text[..start]).map_or(0, |i| i + 1);
    let prefix = text[line_start..start].to_ascii_lowercase();
    if memchr::memmem::find(&prefix, b"secret").is_some() {
        return true;
    }
    if aws_ids.is_empty() {
        return false;
    }
    let line = line_of(text, start);
    aws_ids
        .iter()
        .any(|&id| line_of(text, id).abs_diff(line) <= AWS_PAIR_LINES)
}

/// Largest PEM block read after its header.
const PEM_MAX: usize = 64 * 1024;
/// Fewest base64 characters a private key body has (a 256-bit EC key in
/// SEC 1 form is about 160).
const PEM_MIN_BODY: usize = 64;

/// The base64 body of the PEM block whose header ends at `header_end`, and
/// where the block ends, when it has an `-----END` line and is long enough
/// to be a key. Header lines (`Proc-Type: …`) and `\n` escapes (a key
/// inside a JSON string) are left out.
fn pem_body(text: &[u8], header_end: usize) -> Option<(Secret, usize)> {
    let window = &text[header_end..text.len().min(header_end + PEM_MAX)];
    let end = memchr::memmem::find(window, b"-----END")?;
    let mut raw = window[..end].to_vec();
    // `\n` escapes become line breaks.
    let mut i = 0;
    while i + 1 < raw.len() {
        if raw[i] == b'\\' && raw[i + 1] == b'n' {
            raw[i] = b'\n';
            raw[i + 1] = b'\n';
        }
        i += 1;
    }
    // The block must close as a private key, and hold nothing but header
    // lines and base64 (in a string literal, quotes and commas around it).
    let closing = &window[end..window.len().min(end + 64)];
    memchr::memmem::find(closing, b"PRIVATE KEY")?;
    let mut body = Vec::with_capacity(raw.len());
    for line in raw.split(|&b| b == b'\n') {
        let line = line
            .iter()
            .position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'"' | b'\'' | b','))
            .map_or(&line[..0], |first| &line[first..]);
        let line = line
            .iter()
            .rposition(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'"' | b'\'' | b','))
            .map_or(&line[..0], |last| &line[..=last]);
        if line.contains(&b':') {
            continue;
        }
        if !line.iter().all(|&b| base64(b)) {
            return None;
        }
        body.extend_from_slice(line);
    }
    if body.len() < PEM_MIN_BODY || placeholder(&body, false) {
        return None;
    }
    Some((Secret::from_ascii(&body), header_end + end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::distr::{Alphanumeric, Distribution, Uniform};
    use secrecy::ExposeSecret;

    fn random(alphabet: &[u8], len: usize) -> String {
        let mut rng = rand::rng();
        let pick = Uniform::new(0, alphabet.len()).unwrap();
        (0..len)
            .map(|_| char::from(alphabet[pick.sample(&mut rng)]))
            .collect()
    }
    fn alnum(len: usize) -> String {
        Alphanumeric
            .sample_iter(rand::rng())
            .take(len)
            .map(char::from)
            .collect()
    }
    const HEX: &[u8] = b"0123456789abcdef";
    const UPPER_DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    fn rules() -> RuleSet {
        RuleSet::new().unwrap()
    }

    /// The rule ids and secrets found in `text`.
    fn found(text: &str) -> Vec<(&'static str, String)> {
        rules()
            .scan(text.as_bytes())
            .into_iter()
            .map(|h| (RULES[h.rule].id, h.secret.expose().to_string()))
            .collect()
    }

    fn assert_found(rule: &str, secret: &str, context: &str) {
        let text = context.replace("{}", secret);
        assert_eq!(
            found(&text),
            vec![(
                RULES.iter().find(|r| r.id == rule).unwrap().id,
                secret.to_string()
            )],
            "in {text:?}"
        );
    }

    fn assert_none(text: &str) {
        assert_eq!(found(text), Vec::new(), "in {text:?}");
    }

    #[test]
    fn rules_compile_with_unique_ids_and_keywords() {
        let set = rules();
        assert!(RULES.len() < 64);
        let mut ids: Vec<_> = RULES.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), RULES.len());
        assert!(RULES.iter().all(|r| !r.keywords.is_empty()));
        assert_eq!(set.regexes.len(), RULES.len());
    }

    #[test]
    fn keygate_keys_are_found_only_with_a_valid_checksum() {
        for env in ["live", "test", "admin", "staging2"] {
            let key = crate::auth::key::generate(env);
            let key = key.expose_secret();
            assert_found("keygate-key", key, "KEYGATE_API_KEY={}\n");
            assert_found("keygate-key", key, "client = OpenAI(api_key=\"{}\")");
            // One character changed: the checksum no longer matches.
            let mut forged = key.as_bytes().to_vec();
            let last = forged.len() - 1;
            forged[last] = if forged[last] == b'a' { b'b' } else { b'a' };
            let forged = String::from_utf8(forged).unwrap();
            assert_none(&format!("KEYGATE_API_KEY={forged}\n"));
            assert_none(&format!("key = \"{forged}\""));
        }
        // Right shape, random checksum.
        assert_none(&format!("kg_live_{}", alnum(38)));
        // Part of a longer token.
        let key = crate::auth::key::generate("live");
        assert_none(&format!("x{}", key.expose_secret()));
        assert_none(&format!("{}Z", key.expose_secret()));
    }

    #[test]
    fn openai_keys() {
        let project = format!("sk-proj-{}T3BlbkFJ{}", alnum(74), alnum(74));
        assert_found("openai-project-key", &project, "OPENAI_API_KEY={}");
        let svc = format!("sk-svcacct-{}", alnum(120));
        assert_found("openai-service-account-key", &svc, "k = '{}'");
        let admin = format!("sk-admin-{}", alnum(100));
        assert_found("openai-admin-key", &admin, "Authorization: Bearer {}");
        let legacy = format!("sk-{}", alnum(48));
        assert_found("openai-legacy-key", &legacy, "openai.api_key = \"{}\"");
        // The seed's examples are placeholders.
        assert_none("client = openai.OpenAI(api_key=\"sk-proj-abc123...\")");
        assert_none("OPENAI_API_KEY=your-openai-key-here");
        assert_none(&format!("sk-{}", alnum(47)));
        assert_none(&format!("sk-{}", alnum(49)));
        assert_none(&format!("task-{}", alnum(48)));
    }

    #[test]
    fn anthropic_keys() {
        let key = format!("sk-ant-api03-{}AA", random(B64.split_at(62).0, 93));
        assert_found("anthropic-api-key", &key, "x-api-key: {}");
        let admin = format!("sk-ant-admin01-{}AA", alnum(93));
        assert_found("anthropic-admin-key", &admin, "ANTHROPIC_ADMIN_KEY=\"{}\"");
        assert_none("X-API-Key: sk-ant-api03-abc123...");
        assert_none(
            "ANTHROPIC_API_KEY=sk-ant-api03-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        );
    }

    #[test]
    fn google_groq_deepseek_xai_openrouter_perplexity() {
        let google = format!(
            "AIza{}",
            random(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                35
            )
        );
        assert_found("google-api-key", &google, "GEMINI_API_KEY={}");
        assert_none("AIzaSyBabc123...");
        assert_none(&format!("AIza{}", alnum(36)));
        let groq = format!("gsk_{}", alnum(52));
        assert_found("groq-api-key", &groq, "GROQ_API_KEY={}");
        assert_none("gsk_abc123def456...");
        let deepseek = format!("sk-{}", random(HEX, 32));
        assert_found("deepseek-api-key", &deepseek, "DEEPSEEK_API_KEY={}");
        assert_none("sk-abc123def456...");
        let xai = format!("xai-{}", alnum(80));
        assert_found("xai-api-key", &xai, "XAI_API_KEY={}");
        assert_none(&format!("xai-{}", alnum(20)));
        let router = format!("sk-or-v1-{}", random(HEX, 64));
        assert_found("openrouter-api-key", &router, "OPENROUTER_API_KEY={}");
        assert_none(&format!("sk-or-v1-{}", random(HEX, 63)));
        let pplx = format!("pplx-{}", alnum(48));
        assert_found("perplexity-api-key", &pplx, "PERPLEXITY_API_KEY={}");
        assert_none("pplx-abc123");
    }

    #[test]
    fn aws_key_ids_and_their_secret_keys() {
        let id = format!("AKIA{}", random(UPPER_DIGITS, 16));
        let secret = format!("{}Ab1", random(B64, 37));
        let text =
            format!("[default]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n");
        assert_eq!(
            found(&text),
            vec![
                ("aws-access-key-id", id.clone()),
                ("aws-secret-access-key", secret.clone())
            ]
        );
        // A bare 40-character run beside a key id is its secret key.
        let text = format!("{id}\n{secret}\n");
        assert_eq!(found(&text).len(), 2);
        // Far from any key id and unlabelled: a hash, not a secret.
        let far = format!("{id}{}\n{secret}\n", "\n".repeat(10));
        assert_eq!(found(&far), vec![("aws-access-key-id", id.clone())]);
        // A git object id is not a secret key.
        assert_eq!(found(&format!("{id} {}", random(HEX, 40))).len(), 1);
        let temporary = format!("ASIA{}", random(UPPER_DIGITS, 16));
        assert_found("aws-access-key-id", &temporary, "AWS_ACCESS_KEY_ID={}");
        // AWS's documented examples, assembled at run time.
        assert_none(&format!("aws_access_key_id = AKIA{}", "IOSFODNN7EXAMPLE"));
        assert_none(&format!(
            "aws_secret_access_key = {}{}",
            "wJalrXUtnFEMI/K7MDENG/", "bPxRfiCYEXAMPLEKEY"
        ));
    }

    #[test]
    fn github_tokens() {
        for prefix in ["ghp", "gho", "ghu", "ghs", "ghr"] {
            let t = format!("{prefix}_{}", alnum(36));
            assert_found("github-token", &t, "GITHUB_TOKEN={}");
        }
        let pat = format!("github_pat_{}_{}", alnum(22), alnum(59));
        assert_found("github-fine-grained-token", &pat, "token: {}");
        assert_none(&format!("ghp_{}", "x".repeat(36)));
        assert_none(&format!("ghx_{}", alnum(36)));
    }

    #[test]
    fn private_keys() {
        // PEM armour is assembled here, so no tracked file holds a line
        // shaped like a private key's.
        let dashes = "-".repeat(5);
        let begin = |kind: &str| format!("{dashes}BEGIN {kind}PRIVATE KEY{dashes}");
        let end = |kind: &str| format!("{dashes}END {kind}PRIVATE KEY{dashes}");
        let body: Vec<String> = (0..12).map(|_| random(B64, 64)).collect();
        for kind in ["", "RSA ", "EC ", "OPENSSH ", "ENCRYPTED "] {
            let pem = format!("{}\n{}\n{}\n", begin(kind), body.join("\n"), end(kind));
            assert_eq!(found(&pem), vec![("private-key", body.concat())], "{kind}");
        }
        // Inside a JSON string (a service account file), with \n escapes.
        let json = format!(
            "{{\"private_key\": \"{}\\n{}\\n{}\\n\"}}",
            begin(""),
            body.join("\\n"),
            end("")
        );
        assert_eq!(found(&json), vec![("private-key", body.concat())]);
        // A header without a body, or with an elided one, is documentation.
        assert_none(&format!("{}\n...\n{}", begin("RSA "), end("RSA ")));
        assert_none(&format!("starts with {} and", begin("")));
        assert_none(&format!(
            "{} is how it starts\n{}\n{dashes}END PUBLIC KEY{dashes}",
            begin(""),
            body.join("\n")
        ));
        assert_none(&format!(
            "{}\n{} and prose\n{}",
            begin(""),
            body.join("\n"),
            end("")
        ));
        assert_none(&format!(
            "{dashes}BEGIN PUBLIC KEY{dashes}\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n{dashes}END PUBLIC KEY{dashes}"
        ));
    }

    #[test]
    fn generic_assignments_need_entropy_and_no_placeholder() {
        let value = alnum(32);
        for context in [
            "SERVICE_API_KEY={}",
            "export PAYMENTS_SECRET=\"{}\"",
            "slack_token: '{}'",
            "\"apiKey\": \"{}\",",
            "WEBHOOK_TOKEN := {}",
            "client_secret => {}",
        ] {
            assert_found("generic-api-key", &value, context);
        }
        let hex = random(HEX, 40);
        assert_found("generic-api-key", &hex, "SIGNING_SECRET={}");
        for text in [
            "OPENAI_API_KEY=your-openai-key-here",
            "API_KEY=xxxxxxxxxxxxxxxxxxxxxxxx",
            "API_KEY=${OPENAI_API_KEY}",
            "SECRET=\"$APP_SECRET\"",
            "TOKEN={{ secrets.TOKEN }}",
            "api_key = os.environ[\"OPENAI_API_KEY\"]",
            "token_url: https://example.com/oauth/token",
            "SECRET_KEY=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1",
            "session_token = request_session_token_value",
            "API_KEY=short1",
            "SECRET_NAME=projects/my-project/secrets/openai-api-key/versions/latest",
        ] {
            assert_none(text);
        }
        // A keygate look-alike with a bad checksum is not reported under
        // the generic rule either.
        assert_none(&format!("KEYGATE_API_KEY=kg_live_{}", alnum(38)));
    }

    #[test]
    fn a_provider_key_in_an_assignment_is_reported_once_as_itself() {
        let key = format!("gsk_{}", alnum(52));
        assert_eq!(
            found(&format!("GROQ_API_KEY=\"{key}\"\n")),
            vec![("groq-api-key", key)]
        );
    }

    #[test]
    fn entropy() {
        assert!(shannon_entropy(b"aaaaaaaa") < 0.01);
        assert!((shannon_entropy(b"abcd") - 2.0).abs() < 1e-9);
        assert!(shannon_entropy(alnum(64).as_bytes()) > 4.5);
    }

    #[test]
    fn files_without_keywords_run_no_regex() {
        let set = rules();
        assert_eq!(set.candidates(b"fn main() { println!(\"hello\"); }"), 0);
        assert_ne!(set.candidates(b"let TOKEN = 1;"), 0);
        assert_ne!(set.candidates(b"kg_live_"), 0);
        // A longer keyword enables the rules of the keywords inside it.
        let legacy = RULES
            .iter()
            .position(|r| r.id == "openai-legacy-key")
            .unwrap();
        let generic = RULES
            .iter()
            .position(|r| r.id == "generic-api-key")
            .unwrap();
        assert_ne!(set.candidates(b"x sk-proj-y") & (1 << legacy), 0);
        assert_ne!(
            set.candidates(b"AWS_SECRET_ACCESS_KEY=") & (1 << generic),
            0
        );
    }
}
