//! Token usage as providers report it, in JSON bodies and in streams.

use crate::translate::Format as Dialect;
use serde::Deserialize;

/// Tokens a request consumed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Input tokens, including cached ones.
    pub prompt: i64,
    /// Of `prompt`, those read from the provider's prompt cache.
    pub cached: i64,
    /// Output tokens.
    pub completion: i64,
}

impl Tokens {
    /// From the translation layer's usage, whose input includes cache reads
    /// and writes.
    pub fn from_ir(usage: &crate::translate::ir::Usage) -> Tokens {
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        Tokens {
            prompt: count(usage.input_tokens),
            cached: count(usage.cached_input_tokens),
            completion: count(usage.output_tokens),
        }
    }

    /// The counts to price.
    pub fn count(&self) -> crate::ledger::pricing::TokenCount {
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        crate::ledger::pricing::TokenCount {
            prompt: count(self.prompt),
            cached: count(self.cached),
            completion: count(self.completion),
        }
    }
}

/// A rough token count for text when no provider reported one: a token is
/// about four characters of English, so characters / 4, rounded up. Used
/// only where the alternative would be billing nothing (a stream cut before
/// its usage arrived); tokenizers differ per model, and this is cheap.
pub fn tokens_for_chars(chars: u64) -> i64 {
    i64::try_from(chars.div_ceil(4)).unwrap_or(i64::MAX)
}

/// The prompt tokens of a request body, estimated from its text when the
/// provider never said (characters / 4 of every string but the model name,
/// data URLs and base64 `data` fields, which are images and files: they
/// are priced per item, not per character; at least 1). Parses the whole
/// body, so it runs only on the rare path that needs it.
pub fn estimate_prompt_tokens(body: &[u8]) -> i64 {
    fn walk(value: &serde_json::Value, chars: &mut u64) {
        match value {
            serde_json::Value::String(text) if !text.starts_with("data:") => {
                *chars += text.chars().count() as u64;
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, chars)),
            serde_json::Value::Object(fields) => {
                for (name, v) in fields {
                    if name != "model" && name != "data" {
                        walk(v, chars);
                    }
                }
            }
            _ => {}
        }
    }
    let mut chars = 0;
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        walk(&value, &mut chars);
    }
    tokens_for_chars(chars).max(1)
}

#[derive(Deserialize, Default)]
struct OpenAiUsage {
    #[serde(default)]
    prompt_tokens: i64,
    #[serde(default)]
    completion_tokens: i64,
    #[serde(default)]
    prompt_tokens_details: Option<OpenAiPromptDetails>,
}

#[derive(Deserialize, Default)]
struct OpenAiPromptDetails {
    #[serde(default)]
    cached_tokens: Option<i64>,
}

impl OpenAiUsage {
    fn tokens(&self) -> Tokens {
        Tokens {
            prompt: self.prompt_tokens,
            cached: self
                .prompt_tokens_details
                .as_ref()
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            completion: self.completion_tokens,
        }
    }
}

#[derive(Deserialize, Default)]
struct AnthropicUsage {
    #[serde(default)]
    input_tokens: Option<i64>,
    #[serde(default)]
    output_tokens: Option<i64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<i64>,
    #[serde(default)]
    cache_read_input_tokens: Option<i64>,
}

impl AnthropicUsage {
    fn input(&self) -> Option<i64> {
        self.input_tokens.map(|n| {
            n + self.cache_creation_input_tokens.unwrap_or(0)
                + self.cache_read_input_tokens.unwrap_or(0)
        })
    }
}

#[derive(Deserialize)]
struct WithUsage<U> {
    #[serde(default = "Option::default")]
    usage: Option<U>,
}

/// The `usage` object of a response body. Providers put it at the top level,
/// usually last; the unescaped key `"usage":` cannot occur inside a JSON
/// string, so the object is parsed from there instead of parsing the whole
/// (possibly large) body.
fn usage_object<'a, U: Deserialize<'a>>(body: &'a [u8]) -> Option<U> {
    let key = memchr::memmem::rfind(body, b"\"usage\":")?;
    let rest = &body[key + b"\"usage\":".len()..];
    let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<Option<U>>();
    values.next()?.ok()?
}

/// Usage from a complete (non-streamed) response body; zero when absent.
pub fn from_body(dialect: Dialect, body: &[u8]) -> Tokens {
    match dialect {
        Dialect::OpenAiChat => usage_object::<OpenAiUsage>(body)
            .map(|u| u.tokens())
            .unwrap_or_default(),
        Dialect::Anthropic => usage_object::<AnthropicUsage>(body)
            .map(|u| Tokens {
                prompt: u.input().unwrap_or(0),
                cached: u.cache_read_input_tokens.unwrap_or(0),
                completion: u.output_tokens.unwrap_or(0),
            })
            .unwrap_or_default(),
        // Gemini and Converse answers are always translated, and metered by
        // the translation.
        Dialect::Gemini | Dialect::Converse => Tokens::default(),
    }
}

/// What a stream event means to the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Ordinary content, forwarded at once.
    Content,
    /// OpenAI's usage-only chunk (`"choices": []`), which keygate may have
    /// asked for on the client's behalf.
    UsageOnly,
    /// The last event of a complete stream (`[DONE]`, `message_stop`).
    Terminal,
}

/// Meters a stream event by event.
#[derive(Debug)]
pub struct StreamMeter {
    dialect: Dialect,
    tokens: Tokens,
    reported_completion: bool,
    /// Events that delivered output (text, tool arguments, reasoning).
    content_events: i64,
    /// Characters of output delivered, as escaped in the JSON.
    content_chars: u64,
    /// Anthropic prompt-cache reads and writes reported so far.
    cache_read: i64,
    cache_created: i64,
}

/// The string fields that carry output in OpenAI chunks.
const OPENAI_OUTPUT: &[&[u8]] = &[
    b"\"content\":",
    b"\"reasoning_content\":",
    b"\"arguments\":",
    b"\"refusal\":",
];
/// The string fields that carry output in Anthropic deltas.
const ANTHROPIC_OUTPUT: &[&[u8]] = &[b"\"text\":", b"\"partial_json\":", b"\"thinking\":"];

/// Characters in the string values of `fields` in a JSON event, counted
/// without parsing it: a field name followed by `:` cannot occur inside a
/// JSON string (its quotes would be escaped there). An escape counts as
/// one character; a UTF-8 sequence as one.
fn output_chars(data: &[u8], fields: &[&[u8]]) -> u64 {
    let mut chars = 0;
    for field in fields {
        for at in memchr::memmem::find_iter(data, field) {
            let mut i = at + field.len();
            while data.get(i).is_some_and(u8::is_ascii_whitespace) {
                i += 1;
            }
            if data.get(i) != Some(&b'"') {
                continue; // null, a number, an object
            }
            i += 1;
            while let Some(&byte) = data.get(i) {
                match byte {
                    b'"' => break,
                    b'\\' => {
                        i += if data.get(i + 1) == Some(&b'u') { 6 } else { 2 };
                        chars += 1;
                    }
                    _ => {
                        // Count only the first byte of each UTF-8 sequence.
                        if byte & 0xC0 != 0x80 {
                            chars += 1;
                        }
                        i += 1;
                    }
                }
            }
        }
    }
    chars
}

#[derive(Deserialize)]
struct OpenAiChunk {
    #[serde(default)]
    choices: Option<Vec<serde::de::IgnoredAny>>,
    #[serde(default)]
    usage: Option<OpenAiUsage>,
}

#[derive(Deserialize)]
struct AnthropicEvent {
    #[serde(default)]
    message: Option<WithUsage<AnthropicUsage>>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

impl StreamMeter {
    /// A meter for a stream in `dialect`.
    pub fn new(dialect: Dialect) -> Self {
        StreamMeter {
            dialect,
            tokens: Tokens::default(),
            reported_completion: false,
            content_events: 0,
            content_chars: 0,
            cache_read: 0,
            cache_created: 0,
        }
    }

    /// Tokens so far. When the stream ended before the provider reported
    /// output tokens, they are estimated from what was delivered: the
    /// larger of one per content event and characters / 4 (see
    /// [`tokens_for_chars`]), so a cut stream is billed for what was
    /// delivered, never zero. The prompt is 0 until reported.
    pub fn tokens(&self) -> Tokens {
        let mut tokens = self.tokens;
        if !self.reported_completion {
            tokens.completion = tokens
                .completion
                .max(self.content_events)
                .max(tokens_for_chars(self.content_chars));
        }
        tokens
    }

    /// Anthropic reports input in `message_start` and may restate it in
    /// `message_delta`; a restatement that leaves out the cache fields still
    /// means the cache use reported before.
    fn anthropic_input(&mut self, usage: &AnthropicUsage) {
        if let Some(read) = usage.cache_read_input_tokens {
            self.cache_read = read;
        }
        if let Some(created) = usage.cache_creation_input_tokens {
            self.cache_created = created;
        }
        if let Some(input) = usage.input_tokens {
            self.tokens.prompt = input + self.cache_read + self.cache_created;
            self.tokens.cached = self.cache_read;
        }
    }

    fn delivered(&mut self, data: &[u8], fields: &[&[u8]], always_content: bool) {
        let chars = output_chars(data, fields);
        self.content_chars += chars;
        if chars > 0 || always_content {
            self.content_events += 1;
        }
    }

    /// Look at one complete SSE event (its raw bytes).
    pub fn observe(&mut self, event: &[u8]) -> EventKind {
        let data = super::sse::data(event);
        match self.dialect {
            Dialect::OpenAiChat => {
                let Some(data) = data else {
                    return EventKind::Content;
                };
                if data.trim_ascii() == b"[DONE]" {
                    return EventKind::Terminal;
                }
                self.delivered(data, OPENAI_OUTPUT, false);
                if memchr::memmem::find(data, b"\"usage\"").is_none() {
                    return EventKind::Content;
                }
                match serde_json::from_slice::<OpenAiChunk>(data) {
                    Ok(chunk) => {
                        if let Some(usage) = chunk.usage {
                            self.tokens = usage.tokens();
                            self.reported_completion = true;
                        }
                        match chunk.choices {
                            Some(choices) if choices.is_empty() && self.reported_completion => {
                                EventKind::UsageOnly
                            }
                            _ => EventKind::Content,
                        }
                    }
                    Err(_) => EventKind::Content,
                }
            }
            Dialect::Anthropic => {
                let name = super::sse::event_name(event);
                if name == Some(b"message_stop".as_slice()) {
                    return EventKind::Terminal;
                }
                if name == Some(b"content_block_delta".as_slice()) {
                    // Every delta carries output, even when its text is
                    // not in a field counted here.
                    self.delivered(data.unwrap_or_default(), ANTHROPIC_OUTPUT, true);
                    return EventKind::Content;
                }
                let Some(data) = data else {
                    return EventKind::Content;
                };
                if memchr::memmem::find(data, b"\"usage\"").is_none() {
                    return EventKind::Content;
                }
                if let Ok(parsed) = serde_json::from_slice::<AnthropicEvent>(data) {
                    if let Some(usage) = parsed.message.and_then(|m| m.usage) {
                        self.anthropic_input(&usage);
                    }
                    if let Some(usage) = parsed.usage {
                        self.anthropic_input(&usage);
                        if let Some(output) = usage.output_tokens {
                            self.tokens.completion = output;
                            self.reported_completion = true;
                        }
                    }
                }
                EventKind::Content
            }
            // Never relayed untranslated (see `Provider::relays_as_is`).
            Dialect::Gemini | Dialect::Converse => EventKind::Content,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(prompt: i64, cached: i64, completion: i64) -> Tokens {
        Tokens {
            prompt,
            cached,
            completion,
        }
    }

    #[test]
    fn body_usage_in_both_formats() {
        let openai =
            br#"{"id":"x","usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#;
        assert_eq!(from_body(Dialect::OpenAiChat, openai), t(5, 0, 7));
        let cached = br#"{"usage":{"prompt_tokens":2006,"completion_tokens":300,"prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0}}}"#;
        assert_eq!(from_body(Dialect::OpenAiChat, cached), t(2006, 1920, 300));
        let null_details =
            br#"{"usage":{"prompt_tokens":3,"completion_tokens":1,"prompt_tokens_details":null}}"#;
        assert_eq!(from_body(Dialect::OpenAiChat, null_details), t(3, 0, 1));
        let embed = br#"{"data":[],"usage":{"prompt_tokens":3,"total_tokens":3}}"#;
        assert_eq!(from_body(Dialect::OpenAiChat, embed), t(3, 0, 0));
        // Anthropic's input excludes cache reads and writes; the prompt
        // includes both, and the reads are the cached share.
        let anthropic = br#"{"usage":{"input_tokens":4,"output_tokens":9,"cache_read_input_tokens":2,"cache_creation_input_tokens":10}}"#;
        assert_eq!(from_body(Dialect::Anthropic, anthropic), t(16, 2, 9));
        assert_eq!(
            from_body(Dialect::Anthropic, b"not json"),
            Tokens::default()
        );
    }

    #[test]
    fn openai_stream_usage_and_terminal() {
        let mut m = StreamMeter::new(Dialect::OpenAiChat);
        assert_eq!(
            m.observe(b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":null}\n\n"),
            EventKind::Content
        );
        assert_eq!(
            m.tokens().completion,
            1,
            "unreported output counts delivered events"
        );
        assert_eq!(
            m.observe(b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"prompt_tokens_details\":{\"cached_tokens\":1}}}\n\n"),
            EventKind::UsageOnly
        );
        assert_eq!(m.observe(b"data: [DONE]\n\n"), EventKind::Terminal);
        assert_eq!(m.tokens(), t(3, 1, 2));
    }

    #[test]
    fn a_stream_cut_before_usage_is_estimated_from_its_text() {
        let mut m = StreamMeter::new(Dialect::OpenAiChat);
        // The role chunk and an empty delta deliver nothing.
        m.observe(
            b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
        );
        m.observe(b"data: {\"choices\":[{\"delta\":{},\"finish_reason\":null}]}\n\n");
        assert_eq!(m.tokens().completion, 0);
        // One chunk of 40 characters (an escape is one): 40 / 4 = 10
        // tokens, more than its one event.
        m.observe(
            b"data: {\"choices\":[{\"delta\":{\"content\":\"The quick brown fox jumps over the \\\"dog\\\"\"}}]}\n\n",
        );
        assert_eq!(m.tokens().completion, 10);
        // Reasoning and tool arguments are output too; `\u00e9` is one
        // character, `é` (two bytes) another.
        m.observe(
            b"data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"\\u00e9\xc3\xa9\"}}]}\n\n",
        );
        m.observe(b"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{}\"}}]}}]}\n\n");
        assert_eq!(m.tokens().completion, 11, "44 characters");
        // A field name inside a string is text, not a field.
        assert_eq!(
            output_chars(br#"{"content":"say \"content\":\"x\""}"#, OPENAI_OUTPUT),
            17
        );
        assert_eq!(tokens_for_chars(0), 0);
        assert_eq!(tokens_for_chars(1), 1);
        assert_eq!(tokens_for_chars(8), 2);
    }

    #[test]
    fn a_request_prompt_is_estimated_from_its_text() {
        // 20 characters of messages, the model name and an image's base64
        // left out: 5 tokens.
        let body = br#"{"model":"gpt-4o-mini-with-a-long-name","messages":[{"role":"user","content":[{"type":"text","text":"sixteen chars.."},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}]}]}"#;
        // "user" (4) + "text" (4) + "sixteen chars.." (15) + "image_url" (9) = 32 → 8.
        assert_eq!(estimate_prompt_tokens(body), 8);
        assert_eq!(estimate_prompt_tokens(b"{}"), 1, "never nothing");
        assert_eq!(estimate_prompt_tokens(b"not json"), 1);
    }

    #[test]
    fn anthropic_stream_usage_and_terminal() {
        let mut m = StreamMeter::new(Dialect::Anthropic);
        m.observe(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":30,\"output_tokens\":1}}}\n\n");
        m.observe(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n");
        m.observe(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n");
        assert_eq!(m.tokens(), t(40, 30, 2), "a delta is at least a token");
        // A restated input without its cache fields keeps the cache use.
        m.observe(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"input_tokens\":10,\"output_tokens\":5}}\n\n");
        assert_eq!(
            m.observe(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
            EventKind::Terminal
        );
        assert_eq!(m.tokens(), t(40, 30, 5));
    }
}
