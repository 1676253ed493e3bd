//! Token usage as providers report it, in JSON bodies and in streams.

use crate::translate::Format as Dialect;
use serde::Deserialize;

/// Tokens a request consumed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Input tokens, including cached ones.
    pub prompt: i64,
    /// Output tokens.
    pub completion: i64,
}

#[derive(Deserialize, Default)]
struct OpenAiUsage {
    #[serde(default)]
    prompt_tokens: i64,
    #[serde(default)]
    completion_tokens: i64,
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
            .map(|u| Tokens {
                prompt: u.prompt_tokens,
                completion: u.completion_tokens,
            })
            .unwrap_or_default(),
        Dialect::Anthropic => usage_object::<AnthropicUsage>(body)
            .map(|u| Tokens {
                prompt: u.input().unwrap_or(0),
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
    content_events: i64,
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
        }
    }

    /// Tokens so far. When the stream ended before the provider reported
    /// output tokens, each content event counts as one token, so a cut
    /// stream is billed for what was delivered, never zero.
    pub fn tokens(&self) -> Tokens {
        let mut tokens = self.tokens;
        if !self.reported_completion {
            tokens.completion = tokens.completion.max(self.content_events);
        }
        tokens
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
                if memchr::memmem::find(data, b"\"usage\"").is_none() {
                    self.content_events += 1;
                    return EventKind::Content;
                }
                match serde_json::from_slice::<OpenAiChunk>(data) {
                    Ok(chunk) => {
                        if let Some(usage) = chunk.usage {
                            self.tokens = Tokens {
                                prompt: usage.prompt_tokens,
                                completion: usage.completion_tokens,
                            };
                            self.reported_completion = true;
                        }
                        match chunk.choices {
                            Some(choices) if choices.is_empty() && self.reported_completion => {
                                EventKind::UsageOnly
                            }
                            _ => {
                                self.content_events += 1;
                                EventKind::Content
                            }
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
                    self.content_events += 1;
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
                        self.tokens.prompt = usage.input().unwrap_or(self.tokens.prompt);
                    }
                    if let Some(usage) = parsed.usage {
                        if let Some(input) = usage.input() {
                            self.tokens.prompt = input;
                        }
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

    #[test]
    fn body_usage_in_both_formats() {
        let openai =
            br#"{"id":"x","usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#;
        assert_eq!(
            from_body(Dialect::OpenAiChat, openai),
            Tokens {
                prompt: 5,
                completion: 7
            }
        );
        let embed = br#"{"data":[],"usage":{"prompt_tokens":3,"total_tokens":3}}"#;
        assert_eq!(
            from_body(Dialect::OpenAiChat, embed),
            Tokens {
                prompt: 3,
                completion: 0
            }
        );
        let anthropic =
            br#"{"usage":{"input_tokens":4,"output_tokens":9,"cache_read_input_tokens":2}}"#;
        assert_eq!(
            from_body(Dialect::Anthropic, anthropic),
            Tokens {
                prompt: 6,
                completion: 9
            }
        );
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
            m.observe(b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n"),
            EventKind::UsageOnly
        );
        assert_eq!(m.observe(b"data: [DONE]\n\n"), EventKind::Terminal);
        assert_eq!(
            m.tokens(),
            Tokens {
                prompt: 3,
                completion: 2
            }
        );
    }

    #[test]
    fn anthropic_stream_usage_and_terminal() {
        let mut m = StreamMeter::new(Dialect::Anthropic);
        m.observe(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n");
        m.observe(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n");
        m.observe(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n");
        assert_eq!(
            m.tokens(),
            Tokens {
                prompt: 10,
                completion: 2
            }
        );
        m.observe(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":5}}\n\n");
        assert_eq!(
            m.observe(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
            EventKind::Terminal
        );
        assert_eq!(
            m.tokens(),
            Tokens {
                prompt: 10,
                completion: 5
            }
        );
    }
}
