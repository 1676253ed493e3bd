//! The intermediate representation every wire format is translated through.
//!
//! A client request is parsed from its format into [`ChatRequest`] and
//! rendered into the upstream's; responses and stream events go the other
//! way through [`ChatResponse`] and [`StreamEvent`]. The IR carries every
//! feature keygate translates; a field a format has that the IR cannot carry
//! is refused at parse time (never dropped), and a feature the target cannot
//! express is refused at render time, both with [`TranslateError::Unsupported`].

use serde_json::Value;

/// A chat request in no particular format.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChatRequest {
    /// The model the upstream knows (already resolved by routing).
    pub model: String,
    /// System instructions, in order (text parts only).
    pub system: Vec<String>,
    /// The conversation, oldest first.
    pub messages: Vec<Message>,
    /// Upper bound on generated tokens.
    pub max_tokens: Option<u64>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Top-k sampling (Anthropic, Gemini).
    pub top_k: Option<u64>,
    /// Stop sequences.
    pub stop: Vec<String>,
    /// Presence penalty (OpenAI, Gemini).
    pub presence_penalty: Option<f64>,
    /// Frequency penalty (OpenAI, Gemini).
    pub frequency_penalty: Option<f64>,
    /// Seed (OpenAI, Gemini).
    pub seed: Option<i64>,
    /// Structured output.
    pub response_format: Option<ResponseFormat>,
    /// Tools the model may call.
    pub tools: Vec<Tool>,
    /// How the model must use them.
    pub tool_choice: Option<ToolChoice>,
    /// Whether tools may be called in parallel (`None`: provider default).
    pub parallel_tool_calls: Option<bool>,
    /// End-user id for abuse tracking (OpenAI `user`, Anthropic `metadata.user_id`).
    pub user: Option<String>,
    /// Whether the client wants a stream.
    pub stream: bool,
}

/// Who said it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The user, including tool results sent back to the model.
    User,
    /// The model.
    Assistant,
}

/// One turn.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Speaker.
    pub role: Role,
    /// Content, in order.
    pub content: Vec<Part>,
}

/// A piece of content.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    /// Text.
    Text(String),
    /// An image given to the model.
    Image(Image),
    /// The model calling a tool.
    ToolCall(ToolCall),
    /// A tool's result, sent back by the client.
    ToolResult(ToolResult),
}

/// An image.
#[derive(Clone, Debug, PartialEq)]
pub enum Image {
    /// Inline bytes, base64-encoded as received.
    Base64 {
        /// e.g. `image/png`.
        media_type: String,
        /// Base64 text.
        data: String,
    },
    /// A URL the provider fetches itself.
    Url(String),
}

/// A tool call made by the model.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCall {
    /// Call id (synthesised as `call_<n>` for formats without ids).
    pub id: String,
    /// Function name.
    pub name: String,
    /// Arguments: a JSON object.
    pub arguments: Value,
}

/// A tool result.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolResult {
    /// The id of the call this answers.
    pub id: String,
    /// The function's name when the format carries it (Gemini needs it;
    /// renderers look it up from the earlier call when absent).
    pub name: Option<String>,
    /// Result content (text and images).
    pub content: Vec<Part>,
    /// Whether the tool failed.
    pub is_error: bool,
}

/// A function the model may call.
#[derive(Clone, Debug, PartialEq)]
pub struct Tool {
    /// Name.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// JSON Schema of its arguments.
    pub parameters: Value,
}

/// How the model must use tools.
#[derive(Clone, Debug, PartialEq)]
pub enum ToolChoice {
    /// Model decides.
    Auto,
    /// No tool calls.
    None,
    /// At least one tool call.
    Required,
    /// This tool.
    Named(String),
}

/// Structured output request.
#[derive(Clone, Debug, PartialEq)]
pub enum ResponseFormat {
    /// Plain text (the default, stated explicitly).
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// Schema name.
        name: String,
        /// The schema.
        schema: Value,
        /// Strict adherence requested.
        strict: Option<bool>,
    },
}

/// Why generation stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// Natural end of turn.
    EndTurn,
    /// `max_tokens` reached.
    MaxTokens,
    /// A stop sequence matched (which one, when known).
    StopSequence(Option<String>),
    /// The model called tools.
    ToolUse,
    /// Safety or content filter.
    ContentFilter,
    /// Anything else, by the upstream's name.
    Other(String),
}

/// Token usage. `input_tokens` includes cached and cache-write tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// All input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens served from the provider's prompt cache.
    pub cached_input_tokens: u64,
    /// Input tokens written to the prompt cache (Anthropic, Bedrock).
    pub cache_creation_input_tokens: u64,
}

/// A complete (non-streamed) answer.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatResponse {
    /// Upstream's id (or a synthesised one).
    pub id: String,
    /// Model name to show the client.
    pub model: String,
    /// Text and tool calls, in order.
    pub content: Vec<Part>,
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// Tokens.
    pub usage: Usage,
}

/// One event of a streamed answer, in no particular format. Blocks are
/// numbered from 0 in the order they start; text and tool calls may
/// interleave between blocks but a block's deltas are contiguous.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    /// The answer begins.
    Start {
        /// Id to show the client.
        id: String,
        /// Model to show the client.
        model: String,
    },
    /// More text in text block `index` (which starts at its first delta).
    TextDelta {
        /// Block number.
        index: usize,
        /// Text.
        text: String,
    },
    /// A tool call block begins.
    ToolCallStart {
        /// Block number.
        index: usize,
        /// Call id.
        id: String,
        /// Function name.
        name: String,
    },
    /// More of a tool call's arguments, as a fragment of JSON text.
    ToolCallDelta {
        /// Block number.
        index: usize,
        /// JSON text fragment.
        arguments: String,
    },
    /// Block `index` is complete.
    BlockStop {
        /// Block number.
        index: usize,
    },
    /// Generation stopped.
    Finish {
        /// Why.
        stop_reason: StopReason,
    },
    /// Usage so far; later events carry totals that replace earlier ones
    /// field by field where non-zero.
    Usage(Usage),
    /// The upstream stream ended properly.
    Done,
}
