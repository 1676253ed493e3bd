//! The deterministic "model": reply text, word-based token counts, streaming
//! pieces, embeddings, and the small encoders the wire formats need.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// Every reply starts with this.
const REPLY_PREFIX: &str = "Hello from mock! You said: ";
/// How much of the user's text the reply echoes, in characters.
const ECHO_CHARS: usize = 200;

/// Message content as the providers send it: a string, or an array of parts
/// of which those carrying a string `text` are kept (joined by a space);
/// `null` is empty. Borrowed from the request body when unescaped. The
/// second field counts media parts and collects tool results.
#[derive(Debug, Default)]
pub(super) struct Text<'a>(pub Cow<'a, str>, pub Extra);

/// What a content array carries besides text.
#[derive(Debug, Default)]
pub(super) struct Extra {
    /// Image (or other media) parts: OpenAI `image_url`/`input_image`,
    /// Anthropic `image`, Gemini `inlineData`/`fileData`, Converse `image`.
    pub images: u32,
    /// Text of the tool results in the content (Anthropic `tool_result`,
    /// Gemini `functionResponse`, Converse `toolResult`), joined by a space.
    pub tool_result: Option<String>,
}

/// One content part: its text, and whether it is media or a tool result
/// (anything else is skipped by serde as unknown fields).
#[derive(Deserialize)]
struct Part<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(default, rename = "inlineData", alias = "inline_data")]
    inline_data: Option<IgnoredAny>,
    #[serde(default, rename = "fileData", alias = "file_data")]
    file_data: Option<IgnoredAny>,
    #[serde(default)]
    image: Option<IgnoredAny>,
    /// Anthropic `tool_result` content.
    #[serde(default)]
    content: Option<Value>,
    #[serde(default, rename = "functionResponse", alias = "function_response")]
    function_response: Option<Value>,
    #[serde(default, rename = "toolResult")]
    tool_result: Option<Value>,
}

impl Part<'_> {
    fn is_media(&self) -> bool {
        matches!(
            self.kind.as_deref(),
            Some("image_url" | "image" | "input_image")
        ) || self.inline_data.is_some()
            || self.file_data.is_some()
            || self.image.is_some()
    }

    /// The tool result this part carries, as text.
    fn tool_result(&self) -> Option<String> {
        if self.kind.as_deref() == Some("tool_result") {
            return Some(self.content.as_ref().map(result_text).unwrap_or_default());
        }
        if let Some(fr) = &self.function_response {
            return Some(fr.get("response").map(result_text).unwrap_or_default());
        }
        if let Some(tr) = &self.tool_result {
            return Some(tr.get("content").map(result_text).unwrap_or_default());
        }
        None
    }
}

/// A tool result value as text: a string as is; an array's parts' `text`
/// (or `json`, encoded) joined by a space; an object with one string field
/// that string; anything else its JSON.
pub(super) fn result_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => s.clone(),
                _ => match (item.get("text"), item.get("json")) {
                    (Some(Value::String(t)), _) => t.clone(),
                    (_, Some(j)) => j.to_string(),
                    _ => item.to_string(),
                },
            })
            .collect::<Vec<_>>()
            .join(" "),
        Value::Object(map) => match map.values().next() {
            Some(Value::String(s)) if map.len() == 1 => s.clone(),
            _ => v.to_string(),
        },
        _ => v.to_string(),
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor<'a>(std::marker::PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = Text<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of content parts")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v), Extra::default()))
            }

            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned()), Extra::default()))
            }

            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v), Extra::default()))
            }

            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Text::default())
            }

            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Text::default())
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out: Option<Cow<'a, str>> = None;
                let mut extra = Extra::default();
                while let Some(part) = seq.next_element::<Part<'a>>()? {
                    if part.is_media() {
                        extra.images = extra.images.saturating_add(1);
                    }
                    if let Some(result) = part.tool_result() {
                        match &mut extra.tool_result {
                            None => extra.tool_result = Some(result),
                            Some(joined) => {
                                joined.push(' ');
                                joined.push_str(&result);
                            }
                        }
                    }
                    let Some(text) = part.text else { continue };
                    match &mut out {
                        None => out = Some(text),
                        Some(joined) => {
                            let joined = joined.to_mut();
                            joined.push(' ');
                            joined.push_str(&text);
                        }
                    }
                }
                Ok(Text(out.unwrap_or_default(), extra))
            }
        }

        deserializer.deserialize_any(TextVisitor(std::marker::PhantomData))
    }
}

/// Whitespace-separated words, the mock's unit of tokens.
pub(super) fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The reply to a conversation whose last user message is `last_user`.
pub(super) fn reply(last_user: &str) -> String {
    let echo = echo(last_user);
    let mut out = String::with_capacity(REPLY_PREFIX.len() + echo.len());
    out.push_str(REPLY_PREFIX);
    out.push_str(echo);
    out
}

/// The first `ECHO_CHARS` characters of `s`.
pub(super) fn echo(s: &str) -> &str {
    match s.char_indices().nth(ECHO_CHARS) {
        Some((cut, _)) => &s[..cut],
        None => s,
    }
}

/// What a request asks of the "model", as each wire format gathers it.
#[derive(Debug, Default)]
pub(super) struct Ask<'a> {
    /// Text of the last user message.
    pub last_user: &'a str,
    /// Media parts in the last user message.
    pub images: u32,
    /// Tool results carried by the last message, if it carries any.
    pub tool_result: Option<String>,
    /// The tool to call: the forced one, else the first offered (none when
    /// the request offers none or forbids calls).
    pub tool: Option<String>,
    /// Reply limit in words (tokens).
    pub max: Option<u64>,
    /// Stop sequences.
    pub stop: Vec<String>,
}

/// Why generation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Finish {
    End,
    Length,
    /// Cut before this stop sequence.
    Stop(String),
    /// A tool call.
    Tool,
}

/// The "model"'s answer to an [`Ask`].
#[derive(Debug)]
pub(super) enum Answer {
    Text {
        text: String,
        tokens: u64,
        finish: Finish,
    },
    /// One call to `name` with `args` (a JSON object, encoded).
    Tool {
        name: String,
        args: String,
        tokens: u64,
    },
}

impl Answer {
    pub(super) fn finish(&self) -> Finish {
        match self {
            Answer::Text { finish, .. } => finish.clone(),
            Answer::Tool { .. } => Finish::Tool,
        }
    }

    pub(super) fn tokens(&self) -> u64 {
        match self {
            Answer::Text { tokens, .. } | Answer::Tool { tokens, .. } => *tokens,
        }
    }
}

/// Answer `ask`: a tool result is acknowledged; an offered tool is called
/// with `{"query": <last user text>}`; otherwise the usual reply (with
/// ` [images: N]` when the last user message had media), cut before the
/// first stop sequence and then to `max` words.
pub(super) fn answer(ask: &Ask<'_>) -> Answer {
    let mut full = match (&ask.tool_result, &ask.tool) {
        (Some(result), _) => format!("Tool result: {}", echo(result)),
        (None, Some(name)) => {
            let args = serde_json::json!({ "query": echo(ask.last_user) }).to_string();
            return Answer::Tool {
                name: name.clone(),
                tokens: words(&args).max(1),
                args,
            };
        }
        (None, None) => reply(ask.last_user),
    };
    if ask.images > 0 {
        full.push_str(&format!(" [images: {}]", ask.images));
    }
    let mut stopped = None;
    for s in ask.stop.iter().filter(|s| !s.is_empty()) {
        if let Some(at) = full.find(s.as_str()) {
            if stopped.as_ref().is_none_or(|(best, _)| at < *best) {
                stopped = Some((at, s.clone()));
            }
        }
    }
    if let Some((at, _)) = &stopped {
        full.truncate(*at);
    }
    let (text, tokens, cut) = generate(&full, ask.max);
    let finish = match (cut, stopped) {
        (true, _) => Finish::Length,
        (false, Some((_, s))) => Finish::Stop(s),
        (false, None) => Finish::End,
    };
    Answer::Text {
        text: text.to_owned(),
        tokens,
        finish,
    }
}

/// Stop sequences from a string or an array of strings (others ignored).
pub(super) fn stop_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// `s` in two non-empty pieces (split at a character boundary near the
/// middle), for streaming tool arguments in fragments.
pub(super) fn halves(s: &str) -> Vec<&str> {
    let mut mid = s.len() / 2;
    while mid > 0 && !s.is_char_boundary(mid) {
        mid -= 1;
    }
    if mid == 0 {
        return vec![s];
    }
    let (a, b) = s.split_at(mid);
    vec![a, b]
}

/// The reply as generated under a token limit: the text (cut to `max` words
/// when it has more, trailing whitespace dropped), its token count, and
/// whether the limit cut it.
pub(super) fn generate(full: &str, max: Option<u64>) -> (&str, u64, bool) {
    let total = words(full);
    match max {
        Some(max) if max < total => {
            let end = Pieces::new(full)
                .take(usize::try_from(max).unwrap_or(usize::MAX))
                .map(str::len)
                .sum::<usize>();
            (full[..end].trim_end(), max, true)
        }
        _ => (full, total, false),
    }
}

/// Splits text into streaming deltas: each word with the whitespace that
/// follows it (leading whitespace rides with the first), so that the pieces
/// concatenate to exactly the original text.
pub(super) struct Pieces<'a> {
    rest: &'a str,
}

impl<'a> Pieces<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Pieces { rest: text }
    }
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest;
        if s.is_empty() {
            return None;
        }
        let lead = s.len() - s.trim_start().len();
        let word_end = s[lead..]
            .find(char::is_whitespace)
            .map_or(s.len(), |i| lead + i);
        let tail = &s[word_end..];
        let end = word_end + (tail.len() - tail.trim_start().len());
        let (piece, rest) = s.split_at(end);
        self.rest = rest;
        Some(piece)
    }
}

/// FNV-1a, to seed embeddings from input bytes.
fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// SplitMix64: a cheap, well-mixed deterministic sequence from a seed.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Seed for a text input.
pub(super) fn seed_text(text: &str) -> u64 {
    fnv1a(text.bytes())
}

/// Seed for a token-array input; distinct from any text's by construction
/// of the byte stream (little-endian 8-byte tokens after a marker).
pub(super) fn seed_tokens(tokens: &[i64]) -> u64 {
    fnv1a(
        b"\xfftokens"
            .iter()
            .copied()
            .chain(tokens.iter().flat_map(|t| t.to_le_bytes())),
    )
}

/// A unit-length vector of `dims` components determined by `seed`.
pub(super) fn embedding(seed: u64, dims: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dims as u64)
        .map(|i| {
            // Top 24 bits → [-1, 1): exactly representable in an f32.
            let bits = (splitmix(seed ^ splitmix(i)) >> 40) as f32;
            bits / 8_388_608.0 - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    } else if let Some(first) = v.first_mut() {
        *first = 1.0;
    }
    v
}

/// Standard base64 (with padding) of the little-endian f32 bytes, as the
/// OpenAI API returns for `encoding_format: "base64"`. Hand-written because
/// the `base64` crate is not a direct dependency.
pub(super) fn base64_f32(values: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b0 = chunk.first().copied().unwrap_or(0);
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        let sym = |shift: u32| char::from(ALPHABET[((n >> shift) & 63) as usize]);
        out.push(sym(18));
        out.push(sym(12));
        out.push(if chunk.len() > 1 { sym(6) } else { '=' });
        out.push(if chunk.len() > 2 { sym(0) } else { '=' });
    }
    out
}

/// Seconds since the Unix epoch (the `created` fields).
pub(super) fn unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn pieces_concatenate_to_the_text_and_count_words() {
        for text in [
            "Hello from mock! You said: hi there",
            "  lead and trail  ",
            "one",
            "",
            "tabs\tand\nnewlines  x",
            "naïve café ü",
        ] {
            let pieces: Vec<&str> = Pieces::new(text).collect();
            assert_eq!(pieces.concat(), text);
            let with_words = pieces.iter().filter(|p| !p.trim().is_empty()).count();
            assert_eq!(with_words as u64, words(text));
        }
    }

    #[test]
    fn generate_truncates_to_words() {
        let full = "Hello from mock! You said: a b c";
        assert_eq!(generate(full, None), (full, 8, false));
        assert_eq!(generate(full, Some(8)), (full, 8, false));
        assert_eq!(generate(full, Some(3)), ("Hello from mock!", 3, true));
        assert_eq!(generate(full, Some(0)), ("", 0, true));
    }

    #[test]
    fn reply_echoes_at_most_200_characters() {
        let long = "é".repeat(300);
        let r = reply(&long);
        assert_eq!(r.chars().count(), REPLY_PREFIX.len() + 200);
    }

    #[test]
    fn base64_matches_known_vectors() {
        // 1.0f32 = 00 00 80 3f
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
        assert_eq!(base64_f32(&[1.0, -2.0]), "AACAPwAAAMA=");
        assert_eq!(base64_f32(&[]), "");
        assert_eq!(base64_f32(&[0.0, 0.0, 0.0]), "AAAAAAAAAAAAAAAA");
    }

    #[test]
    fn embeddings_are_unit_and_deterministic() {
        let a = embedding(seed_text("hello"), 8);
        assert_eq!(a, embedding(seed_text("hello"), 8));
        assert_ne!(a, embedding(seed_text("hellp"), 8));
        let norm: f32 = a.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_ne!(seed_tokens(&[]), seed_text(""));
    }
}
