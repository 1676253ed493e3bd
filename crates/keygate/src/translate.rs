//! Translation between the wire formats keygate speaks: OpenAI Chat
//! Completions, Anthropic Messages, Gemini `generateContent` and Bedrock
//! Converse — requests, complete responses and streams, every direction.
//!
//! Everything goes through the format-neutral [`ir`]: a client's request is
//! parsed into it and rendered for the upstream; the upstream's answer is
//! parsed into it and rendered for the client. Streams are translated event
//! by event as bytes arrive ([`StreamTranslator`]), so a translated stream is
//! still a stream, and the result does not depend on where the network split
//! the upstream's bytes.
//!
//! Same-format traffic does not come through here: the proxy relays it as is.

pub mod anthropic;
pub mod converse;
pub mod gemini;
pub mod ir;
mod json;
pub mod openai;
#[cfg(test)]
mod tests;

use crate::error::ApiError;
use ir::{StreamEvent, Usage};

/// A wire format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// OpenAI `POST /v1/chat/completions` (and every compatible server).
    OpenAiChat,
    /// Anthropic `POST /v1/messages`.
    Anthropic,
    /// Gemini `models/{model}:generateContent` / `:streamGenerateContent?alt=sse`.
    Gemini,
    /// AWS Bedrock `model/{id}/converse` / `converse-stream` (upstream only).
    Converse,
}

impl Format {
    /// The format's name, as error messages show it.
    pub fn name(self) -> &'static str {
        match self {
            Format::OpenAiChat => "OpenAI Chat Completions",
            Format::Anthropic => "Anthropic Messages",
            Format::Gemini => "Gemini",
            Format::Converse => "Bedrock Converse",
        }
    }
}

/// Why a translation failed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TranslateError {
    /// The request uses a feature the target format (or keygate's
    /// translation) cannot carry; refused rather than silently dropped.
    #[error("{feature} is not supported when the model is served in the {} format", target.name())]
    Unsupported {
        /// What the client asked for, named as the client's format names it
        /// (e.g. `parameter 'logprobs'`, `image URLs`).
        feature: String,
        /// The format that lacks it.
        target: Format,
    },
    /// The client's request is malformed for its own format.
    #[error("{message}")]
    Invalid {
        /// The offending parameter, when there is one.
        param: Option<String>,
        /// What is wrong, for the client.
        message: String,
    },
    /// The upstream's answer could not be understood (never shown verbatim).
    #[error("the upstream answer could not be translated: {0}")]
    Upstream(String),
}

impl TranslateError {
    /// The client-facing error.
    pub fn into_api_error(self) -> ApiError {
        match self {
            TranslateError::Unsupported { .. } => ApiError::invalid_request(format!("{self}.")),
            TranslateError::Invalid { message, .. } => ApiError::invalid_request(message),
            TranslateError::Upstream(detail) => {
                tracing::warn!(%detail, "untranslatable upstream answer");
                ApiError::bad_gateway("The upstream provider's answer could not be translated.")
            }
        }
    }
}

/// What the rendered upstream request is for.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// The model the upstream knows. Formats that carry the model in the
    /// URL (Gemini, Converse) leave it out of the body.
    pub model: &'a str,
    /// Whether a stream is requested. Formats that choose streaming by
    /// endpoint (Gemini, Converse) take it from here, not from the body.
    pub stream: bool,
}

/// Translate a client's request body from `from` into `to`.
pub fn request(
    from: Format,
    to: Format,
    body: &[u8],
    target: Target<'_>,
) -> Result<Vec<u8>, TranslateError> {
    let mut request = match from {
        Format::OpenAiChat => openai::parse_request(body)?,
        Format::Anthropic => anthropic::parse_request(body)?,
        Format::Gemini => gemini::parse_request(body)?,
        Format::Converse => converse::parse_request(body)?,
    };
    request.model = target.model.to_string();
    request.stream = target.stream;
    match to {
        Format::OpenAiChat => openai::render_request(&request),
        Format::Anthropic => anthropic::render_request(&request),
        Format::Gemini => gemini::render_request(&request),
        Format::Converse => converse::render_request(&request),
    }
}

/// Translate a complete upstream answer from `from` into the client's `to`,
/// showing the client `client_model`. Returns the body and its usage.
pub fn response(
    from: Format,
    to: Format,
    body: &[u8],
    client_model: &str,
) -> Result<(Vec<u8>, Usage), TranslateError> {
    let mut response = match from {
        Format::OpenAiChat => openai::parse_response(body)?,
        Format::Anthropic => anthropic::parse_response(body)?,
        Format::Gemini => gemini::parse_response(body)?,
        Format::Converse => converse::parse_response(body)?,
    };
    response.model = client_model.to_string();
    let rendered = match to {
        Format::OpenAiChat => openai::render_response(&response),
        Format::Anthropic => anthropic::render_response(&response),
        Format::Gemini => gemini::render_response(&response),
        Format::Converse => converse::render_response(&response),
    }?;
    Ok((rendered, response.usage))
}

/// Turns an upstream's stream bytes (SSE, or AWS event-stream for Converse)
/// into format-neutral events. Must not depend on how bytes were split.
pub trait StreamDecoder: Send {
    /// Feed bytes as they arrived; complete events are appended to `out`.
    fn push(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) -> Result<(), TranslateError>;
    /// The upstream closed the stream; flush anything pending.
    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), TranslateError>;
}

/// Turns format-neutral events into a client format's stream bytes.
pub trait StreamEncoder: Send {
    /// Encode one event, appending the client's bytes to `out`.
    fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>) -> Result<(), TranslateError>;
}

fn decoder(from: Format) -> Box<dyn StreamDecoder> {
    match from {
        Format::OpenAiChat => Box::new(openai::Decoder::default()),
        Format::Anthropic => Box::new(anthropic::Decoder::default()),
        Format::Gemini => Box::new(gemini::Decoder::default()),
        Format::Converse => Box::new(converse::Decoder::default()),
    }
}

fn encoder(to: Format, client_model: &str) -> Box<dyn StreamEncoder> {
    match to {
        Format::OpenAiChat => Box::new(openai::Encoder::new(client_model)),
        Format::Anthropic => Box::new(anthropic::Encoder::new(client_model)),
        Format::Gemini => Box::new(gemini::Encoder::new(client_model)),
        Format::Converse => Box::new(converse::Encoder::new(client_model)),
    }
}

/// A stream being translated. Everything encoded from the `Finish` event on
/// is held back and only returned by [`StreamTranslator::finish`], so the
/// proxy can commit the ledger row before the client sees the stream end.
pub struct StreamTranslator {
    decoder: Box<dyn StreamDecoder>,
    encoder: Box<dyn StreamEncoder>,
    events: Vec<StreamEvent>,
    held: Vec<u8>,
    holding: bool,
    done: bool,
    usage: Usage,
    /// Text and tool-argument deltas seen: a lower bound on output tokens
    /// when the stream is cut before the upstream reported usage.
    content_events: u64,
    /// Characters in those deltas, for the same estimate.
    content_chars: u64,
}

impl StreamTranslator {
    /// Translate a stream in `from` into `to`, showing the client `client_model`.
    pub fn new(from: Format, to: Format, client_model: &str) -> Self {
        StreamTranslator {
            decoder: decoder(from),
            encoder: encoder(to, client_model),
            events: Vec::new(),
            held: Vec::new(),
            holding: false,
            done: false,
            usage: Usage::default(),
            content_events: 0,
            content_chars: 0,
        }
    }

    /// Feed upstream bytes; returns the client bytes ready to send now.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<u8>, TranslateError> {
        let mut out = Vec::new();
        self.decoder.push(bytes, &mut self.events)?;
        self.encode_pending(&mut out)?;
        Ok(out)
    }

    /// The upstream closed the stream. Returns the held-back end of the
    /// client's stream, or an error when the upstream's stream was incomplete.
    pub fn finish(&mut self) -> Result<Vec<u8>, TranslateError> {
        let mut out = Vec::new();
        self.decoder.finish(&mut self.events)?;
        self.encode_pending(&mut out)?;
        if !self.done {
            return Err(TranslateError::Upstream(
                "the stream ended before its final event".into(),
            ));
        }
        out.append(&mut self.held);
        Ok(out)
    }

    /// Usage seen so far (what to bill if the stream is cut). Until the
    /// upstream reports output tokens, they are estimated from the deltas
    /// delivered: the larger of one per delta and characters / 4 (rounded
    /// up), so a stream cut short is billed for what was delivered, never
    /// zero.
    pub fn usage(&self) -> Usage {
        let mut usage = self.usage;
        if usage.output_tokens == 0 {
            usage.output_tokens = self.content_events.max(self.content_chars.div_ceil(4));
        }
        usage
    }

    /// Whether the upstream's final event has been seen.
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn encode_pending(&mut self, out: &mut Vec<u8>) -> Result<(), TranslateError> {
        for event in std::mem::take(&mut self.events) {
            match &event {
                StreamEvent::Usage(u) => merge_usage(&mut self.usage, u),
                StreamEvent::Finish { .. } => self.holding = true,
                StreamEvent::Done => self.done = true,
                StreamEvent::TextDelta { text: delta, .. }
                | StreamEvent::ToolCallDelta {
                    arguments: delta, ..
                } => {
                    self.content_events += 1;
                    self.content_chars += delta.chars().count() as u64;
                }
                _ => {}
            }
            let sink = if self.holding {
                &mut self.held
            } else {
                &mut *out
            };
            self.encoder.encode(&event, sink)?;
        }
        Ok(())
    }
}

/// Later usage reports replace earlier ones field by field where non-zero.
pub fn merge_usage(total: &mut Usage, update: &Usage) {
    let fields = [
        (&mut total.input_tokens, update.input_tokens),
        (&mut total.output_tokens, update.output_tokens),
        (&mut total.cached_input_tokens, update.cached_input_tokens),
        (
            &mut total.cache_creation_input_tokens,
            update.cache_creation_input_tokens,
        ),
    ];
    for (field, value) in fields {
        if value != 0 {
            *field = value;
        }
    }
}
