//! OpenAI wire format: chat completions (JSON and SSE), embeddings, the
//! Responses API (JSON and SSE) and the model list, in the shapes the
//! official `openai` SDK parses.

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::api::{self, ApiError, Ctx, Flavor, Reply};
use super::auth;
use super::control::Shared;
use super::sse::Events;
use super::text::{self, Answer, Ask, Finish, Pieces, Text};

/// Models listed by `GET /v1/models`; every other name is served as well.
pub(super) const MODELS: &[&str] = &[
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "o4-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "claude-opus-4-1",
    "gemini-2.5-flash",
    "gemini-2.5-pro",
];

/// `created` of every listed model (a fixed date keeps output stable).
const MODEL_CREATED: i64 = 1_715_367_049;
/// Default embedding width; small, since only determinism matters.
const DEFAULT_DIMENSIONS: usize = 8;
/// Widest embedding served.
const MAX_DIMENSIONS: usize = 8192;
/// Most inputs in one embeddings request (OpenAI's own limit).
const MAX_INPUTS: usize = 2048;
/// Most floats in one embeddings response, so that no request can make
/// the mock build an unbounded reply.
const MAX_FLOATS: usize = 1 << 22;

// ---------------------------------------------------------------- routes --

pub(super) async fn chat(State(state): State<Arc<Shared>>, request: Request) -> Response {
    api::handle(state, Flavor::OpenAi, request, |ctx| chat_reply(ctx, None)).await
}

pub(super) async fn azure_chat(State(state): State<Arc<Shared>>, request: Request) -> Response {
    api::handle(state, Flavor::OpenAi, request, |ctx| {
        if let Some(reply) = auth::azure_denial(ctx) {
            return reply;
        }
        chat_reply(ctx, azure_deployment(ctx.path))
    })
    .await
}

pub(super) async fn embeddings(State(state): State<Arc<Shared>>, request: Request) -> Response {
    api::handle(state, Flavor::OpenAi, request, |ctx| {
        embeddings_reply(ctx, None)
    })
    .await
}

pub(super) async fn azure_embeddings(
    State(state): State<Arc<Shared>>,
    request: Request,
) -> Response {
    api::handle(state, Flavor::OpenAi, request, |ctx| {
        if let Some(reply) = auth::azure_denial(ctx) {
            return reply;
        }
        embeddings_reply(ctx, azure_deployment(ctx.path))
    })
    .await
}

pub(super) async fn responses(State(state): State<Arc<Shared>>, request: Request) -> Response {
    api::handle(state, Flavor::OpenAi, request, responses_reply).await
}

pub(super) async fn models(State(state): State<Arc<Shared>>, request: Request) -> Response {
    // The list never changes: encode it once per process.
    static LIST: std::sync::OnceLock<Option<axum::body::Bytes>> = std::sync::OnceLock::new();
    api::handle(state, Flavor::OpenAi, request, |_| {
        match LIST.get_or_init(|| {
            let data: Vec<ModelObject<'_>> = MODELS.iter().map(|id| ModelObject::new(id)).collect();
            match api::json(&json!({"object": "list", "data": data})) {
                Reply::Json(doc) => Some(doc),
                _ => None,
            }
        }) {
            Some(doc) => Reply::Json(doc.clone()),
            None => ApiError::internal("mock could not encode its model list").into(),
        }
    })
    .await
}

pub(super) async fn model(State(state): State<Arc<Shared>>, request: Request) -> Response {
    api::handle(state, Flavor::OpenAi, request, |ctx| {
        let id = ctx.path.rsplit('/').next().unwrap_or_default();
        api::json(&ModelObject::new(id))
    })
    .await
}

/// `/openai/deployments/{deployment}/…` → the deployment, which Azure uses
/// in place of the body's `model`.
fn azure_deployment(path: &str) -> Option<&str> {
    path.strip_prefix("/openai/deployments/")?.split('/').next()
}

#[derive(Serialize)]
struct ModelObject<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    owned_by: &'static str,
}

impl<'a> ModelObject<'a> {
    fn new(id: &'a str) -> Self {
        ModelObject {
            id,
            object: "model",
            created: MODEL_CREATED,
            owned_by: "mock",
        }
    }
}

// ------------------------------------------------------ chat completions --

#[derive(Deserialize)]
struct ChatRequest<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    messages: Option<Vec<ChatMessage<'a>>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    max_tokens: Option<i64>,
    #[serde(default)]
    max_completion_tokens: Option<i64>,
    #[serde(default)]
    tools: Option<Value>,
    #[serde(default)]
    functions: Option<Value>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    function_call: Option<Value>,
    #[serde(default)]
    stop: Option<Value>,
}

#[derive(Deserialize)]
struct ChatMessage<'a> {
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: CachedTokens,
    completion_tokens_details: ReasoningTokens,
}

#[derive(Serialize)]
struct CachedTokens {
    cached_tokens: u64,
}

#[derive(Serialize)]
struct ReasoningTokens {
    reasoning_tokens: u64,
}

impl Usage {
    fn new(prompt: u64, completion: u64, cached: u64) -> Self {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_details: CachedTokens {
                cached_tokens: cached,
            },
            completion_tokens_details: ReasoningTokens {
                reasoning_tokens: 0,
            },
        }
    }
}

#[derive(Serialize)]
struct ChatCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: [Choice<'a>; 1],
    usage: Usage,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: Message<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: Option<()>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCall<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionCall<'a>,
}

#[derive(Serialize)]
struct FunctionCall<'a> {
    name: &'a str,
    arguments: &'a str,
}

/// The tool an OpenAI request makes the model call: the forced one
/// (`tool_choice` / legacy `function_call`), else the first offered; none
/// when none is offered or the choice is `"none"`.
fn chosen_tool(req: &ChatRequest<'_>) -> Option<String> {
    let name_of = |t: &Value| {
        t.get("function")
            .and_then(|f| f.get("name"))
            .or_else(|| t.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let first = [&req.tools, &req.functions]
        .into_iter()
        .filter_map(|list| list.as_ref()?.as_array())
        .flatten()
        .find_map(name_of)?;
    match req.tool_choice.as_ref().or(req.function_call.as_ref()) {
        Some(Value::String(s)) if s == "none" => None,
        Some(choice @ Value::Object(_)) => name_of(choice).or(Some(first)),
        _ => Some(first),
    }
}

fn finish_reason(finish: &Finish) -> &'static str {
    match finish {
        Finish::End | Finish::Stop(_) => "stop",
        Finish::Length => "length",
        Finish::Tool => "tool_calls",
    }
}

/// `max_tokens`-style limit: absent, or at least 1.
pub(super) fn token_limit(value: Option<i64>, name: &'static str) -> Result<Option<u64>, ApiError> {
    match value {
        None => Ok(None),
        Some(n) if n >= 1 => Ok(u64::try_from(n).ok()),
        Some(n) => Err(ApiError::invalid(format!(
            "Invalid '{name}': integer below minimum value. Expected a value >= 1, but got {n} instead."
        ))
        .param(name)
        .code("integer_below_min_value")),
    }
}

/// The model named by the body, or by the path (Azure) when the body has none.
fn require_model<'a>(body: Option<&'a str>, path: Option<&'a str>) -> Result<&'a str, ApiError> {
    match body.filter(|m| !m.is_empty()).or(path) {
        Some(m) => Ok(m),
        None => Err(ApiError::invalid("you must provide a model parameter").param("model")),
    }
}

fn chat_reply(ctx: &Ctx<'_>, path_model: Option<&str>) -> Reply {
    let req: ChatRequest<'_> = match serde_json::from_slice(ctx.body) {
        Ok(r) => r,
        Err(e) => return ApiError::bad_json(Flavor::OpenAi, &e).into(),
    };
    let model = match require_model(req.model.as_deref(), path_model) {
        Ok(m) => m,
        Err(e) => return e.into(),
    };
    let tool = chosen_tool(&req);
    let Some(messages) = req.messages else {
        return ApiError::invalid("Missing required parameter: 'messages'.")
            .param("messages")
            .code("missing_required_parameter")
            .into();
    };
    if messages.is_empty() {
        return ApiError::invalid(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
        )
        .param("messages")
        .code("empty_array")
        .into();
    }
    let limit = match (
        token_limit(req.max_completion_tokens, "max_completion_tokens"),
        token_limit(req.max_tokens, "max_tokens"),
    ) {
        (Err(e), _) | (_, Err(e)) => return e.into(),
        (Ok(a), Ok(b)) => a.or(b),
    };

    let mut prompt = 0;
    let mut ask = Ask {
        max: limit,
        stop: text::stop_list(req.stop.as_ref()),
        tool,
        ..Ask::default()
    };
    for m in &messages {
        let Some(content) = &m.content else { continue };
        prompt += text::words(&content.0);
        if m.role.as_deref() == Some("user") {
            ask.last_user = &content.0;
            ask.images = content.1.images;
        }
    }
    // Trailing tool messages (one per parallel call) are the results.
    let results: Vec<&str> = messages
        .iter()
        .rev()
        .take_while(|m| matches!(m.role.as_deref(), Some("tool" | "function")))
        .map(|m| m.content.as_ref().map_or("", |c| c.0.as_ref()))
        .collect();
    if !results.is_empty() {
        let mut in_order = results;
        in_order.reverse();
        ask.tool_result = Some(in_order.join(" "));
    }
    let prompt = prompt.max(1);
    let answer = text::answer(&ask);
    let completion = answer.tokens();
    let finish = finish_reason(&answer.finish());
    let call_id = format!("call_mock_{}", ctx.state.counter());
    let (content, tool_calls) = match &answer {
        Answer::Text { text, .. } => (Some(text.as_str()), None),
        Answer::Tool { name, args, .. } => (
            None,
            Some([ToolCall {
                id: &call_id,
                kind: "function",
                function: FunctionCall {
                    name,
                    arguments: args,
                },
            }]),
        ),
    };
    let cached = ctx.state.cached_tokens();
    let id = ctx.state.id("chatcmpl-");
    let created = text::unix_seconds();

    if req.stream == Some(true) {
        let include_usage = req
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        return match chat_stream(
            &id,
            created,
            model,
            (content, tool_calls.as_ref().map(|[call]| call)),
            finish,
            include_usage,
            Usage::new(prompt, completion, cached),
        ) {
            Ok(events) => Reply::Stream(events),
            Err(e) => e.into(),
        };
    }
    api::json(&ChatCompletion {
        id: &id,
        object: "chat.completion",
        created,
        model,
        system_fingerprint: "fp_mock",
        choices: [Choice {
            index: 0,
            message: Message {
                role: "assistant",
                content,
                refusal: None,
                tool_calls,
            },
            logprobs: None,
            finish_reason: finish,
        }],
        usage: Usage::new(prompt, completion, cached),
    })
}

/// The SSE body of a streamed chat completion. Chunks share everything but
/// the choice, so that part is written once and copied.
fn chat_stream(
    id: &str,
    created: i64,
    model: &str,
    (content, tool_call): (Option<&str>, Option<&ToolCall<'_>>),
    finish: &str,
    include_usage: bool,
    usage: Usage,
) -> Result<Events, serde_json::Error> {
    let content = content.unwrap_or_default();
    let mut head = Vec::with_capacity(128 + model.len());
    head.extend_from_slice(b"data: {\"id\":");
    serde_json::to_writer(&mut head, id)?;
    head.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
    head.extend_from_slice(created.to_string().as_bytes());
    head.extend_from_slice(b",\"model\":");
    serde_json::to_writer(&mut head, model)?;
    head.extend_from_slice(b",\"system_fingerprint\":\"fp_mock\",\"choices\":[");
    let tail: &[u8] = if include_usage {
        b"],\"usage\":null}\n\n"
    } else {
        b"]}\n\n"
    };

    let pieces = content.split_whitespace().count();
    let mut events = Events::sse((head.len() + 80) * (pieces + 4) + content.len());
    let buf = events.buf();
    buf.extend_from_slice(&head);
    if let Some(call) = tool_call {
        let first = json!({"index": 0, "delta": {"role": "assistant", "content": null, "tool_calls": [
            {"index": 0, "id": call.id, "type": "function", "function": {"name": call.function.name, "arguments": ""}}
        ]}, "logprobs": null, "finish_reason": null});
        serde_json::to_writer(&mut *buf, &first)?;
        buf.extend_from_slice(tail);
        events.end();
        for fragment in text::halves(call.function.arguments) {
            let buf = events.buf();
            buf.extend_from_slice(&head);
            let delta = json!({"index": 0, "delta": {"tool_calls": [
                {"index": 0, "function": {"arguments": fragment}}
            ]}, "logprobs": null, "finish_reason": null});
            serde_json::to_writer(&mut *buf, &delta)?;
            buf.extend_from_slice(tail);
            events.end();
        }
    } else {
        buf.extend_from_slice(
            b"{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}",
        );
        buf.extend_from_slice(tail);
        events.end();
    }
    for piece in Pieces::new(content) {
        let buf = events.buf();
        buf.extend_from_slice(&head);
        buf.extend_from_slice(b"{\"index\":0,\"delta\":{\"content\":");
        serde_json::to_writer(&mut *buf, piece)?;
        buf.extend_from_slice(b"},\"logprobs\":null,\"finish_reason\":null}");
        buf.extend_from_slice(tail);
        events.end();
    }
    let buf = events.buf();
    buf.extend_from_slice(&head);
    buf.extend_from_slice(b"{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"");
    buf.extend_from_slice(finish.as_bytes());
    buf.extend_from_slice(b"\"}");
    buf.extend_from_slice(tail);
    events.end();
    if include_usage {
        let buf = events.buf();
        buf.extend_from_slice(&head);
        buf.extend_from_slice(b"],\"usage\":");
        serde_json::to_writer(&mut *buf, &usage)?;
        buf.extend_from_slice(b"}\n\n");
        events.end();
    }
    events.raw(b"data: [DONE]\n\n");
    Ok(events)
}

// ------------------------------------------------------------ embeddings --

#[derive(Deserialize)]
struct EmbeddingsRequest<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    dimensions: Option<i64>,
    #[serde(borrow, default)]
    encoding_format: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<EmbeddingObject>,
    model: &'a str,
    usage: EmbeddingUsage,
}

#[derive(Serialize)]
struct EmbeddingObject {
    object: &'static str,
    index: usize,
    embedding: EmbeddingData,
}

#[derive(Serialize)]
#[serde(untagged)]
enum EmbeddingData {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// One input to embed: its seed and token count.
fn embedding_inputs(input: &Value) -> Option<Vec<(u64, u64)>> {
    let tokens =
        |v: &Value| -> Option<Vec<i64>> { v.as_array()?.iter().map(Value::as_i64).collect() };
    match input {
        Value::String(s) => Some(vec![(text::seed_text(s), text::words(s))]),
        Value::Array(items) if items.is_empty() => None,
        Value::Array(items) => match items.first() {
            Some(Value::String(_)) => items
                .iter()
                .map(|v| v.as_str().map(|s| (text::seed_text(s), text::words(s))))
                .collect(),
            Some(Value::Number(_)) => {
                let t = tokens(input)?;
                Some(vec![(text::seed_tokens(&t), t.len() as u64)])
            }
            Some(Value::Array(_)) => items
                .iter()
                .map(|v| {
                    let t = tokens(v).filter(|t| !t.is_empty())?;
                    Some((text::seed_tokens(&t), t.len() as u64))
                })
                .collect(),
            _ => None,
        },
        _ => None,
    }
}

fn embeddings_reply(ctx: &Ctx<'_>, path_model: Option<&str>) -> Reply {
    let req: EmbeddingsRequest<'_> = match serde_json::from_slice(ctx.body) {
        Ok(r) => r,
        Err(e) => {
            return ApiError::invalid(format!(
                "We could not parse the JSON body of your request. ({e})"
            ))
            .into()
        }
    };
    let model = match require_model(req.model.as_deref(), path_model) {
        Ok(m) => m,
        Err(e) => return e.into(),
    };
    let Some(input) = &req.input else {
        return ApiError::invalid("Missing required parameter: 'input'.")
            .param("input")
            .code("missing_required_parameter")
            .into();
    };
    let Some(inputs) = embedding_inputs(input) else {
        return ApiError::invalid(
            "'$.input' is invalid: expected a string, an array of strings, an array of integers \
             or an array of non-empty integer arrays, and not an empty array.",
        )
        .param("input")
        .into();
    };
    let dims = match req.dimensions {
        None => DEFAULT_DIMENSIONS,
        Some(d) => match usize::try_from(d) {
            Ok(d) if (1..=MAX_DIMENSIONS).contains(&d) => d,
            _ => {
                return ApiError::invalid(format!(
                    "Invalid 'dimensions': expected a value between 1 and {MAX_DIMENSIONS}, but got {d} instead."
                ))
                .param("dimensions")
                .into()
            }
        },
    };
    if inputs.len() > MAX_INPUTS {
        return ApiError::invalid(format!(
            "Invalid 'input': maximum array size is {MAX_INPUTS}, but got {} items.",
            inputs.len()
        ))
        .param("input")
        .into();
    }
    if inputs.len() * dims > MAX_FLOATS {
        return ApiError::invalid(format!(
            "Invalid 'dimensions': {} inputs of {dims} dimensions exceed the mock's limit of {MAX_FLOATS} values.",
            inputs.len()
        ))
        .param("dimensions")
        .into();
    }
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return ApiError::invalid(format!(
                "Invalid value for 'encoding_format': '{other}'. Supported values are: 'float' and 'base64'."
            ))
            .param("encoding_format")
            .into()
        }
    };
    let mut prompt = 0;
    let data = inputs
        .iter()
        .enumerate()
        .map(|(index, &(seed, tokens))| {
            prompt += tokens;
            let v = text::embedding(seed, dims);
            EmbeddingObject {
                object: "embedding",
                index,
                embedding: if base64 {
                    EmbeddingData::Base64(text::base64_f32(&v))
                } else {
                    EmbeddingData::Float(v)
                },
            }
        })
        .collect();
    let prompt = prompt.max(1);
    api::json(&EmbeddingList {
        object: "list",
        data,
        model,
        usage: EmbeddingUsage {
            prompt_tokens: prompt,
            total_tokens: prompt,
        },
    })
}

// --------------------------------------------------------- responses API --

#[derive(Deserialize)]
struct ResponsesRequest<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    input: Option<Value>,
    #[serde(borrow, default)]
    instructions: Option<Text<'a>>,
    #[serde(default)]
    max_output_tokens: Option<i64>,
    #[serde(default)]
    stream: Option<bool>,
}

/// Text of a Responses content value (string or parts with `text`).
fn value_text(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) => Cow::Borrowed(s),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            match texts.as_slice() {
                [one] => Cow::Borrowed(one),
                _ => Cow::Owned(texts.join(" ")),
            }
        }
        _ => Cow::Borrowed(""),
    }
}

fn responses_reply(ctx: &Ctx<'_>) -> Reply {
    let req: ResponsesRequest<'_> = match serde_json::from_slice(ctx.body) {
        Ok(r) => r,
        Err(e) => return ApiError::bad_json(Flavor::OpenAi, &e).into(),
    };
    let model = match require_model(req.model.as_deref(), None) {
        Ok(m) => m,
        Err(e) => return e.into(),
    };
    let limit = match token_limit(req.max_output_tokens, "max_output_tokens") {
        Ok(l) => l,
        Err(e) => return e.into(),
    };
    let mut prompt = req.instructions.as_ref().map_or(0, |t| text::words(&t.0));
    let mut last_user = Cow::Borrowed("");
    match &req.input {
        Some(Value::String(s)) => {
            prompt += text::words(s);
            last_user = Cow::Borrowed(s.as_str());
        }
        Some(Value::Array(items)) => {
            for item in items {
                // Messages carry `content`; tool outputs carry `output`.
                let Some(content) = item.get("content").or_else(|| item.get("output")) else {
                    continue;
                };
                let t = value_text(content);
                prompt += text::words(&t);
                if item.get("role").and_then(Value::as_str) == Some("user") {
                    last_user = t;
                }
            }
        }
        None | Some(Value::Null) => {
            return ApiError::invalid("Missing required parameter: 'input'.")
                .param("input")
                .code("missing_required_parameter")
                .into()
        }
        Some(_) => {
            return ApiError::invalid(
                "Invalid 'input': expected a string or an array of input items.",
            )
            .param("input")
            .into()
        }
    }
    let prompt = prompt.max(1);
    let full = text::reply(&last_user);
    let (content, completion, cut) = text::generate(&full, limit);
    let response_id = ctx.state.id("resp_");
    let item_id = ctx.state.id("msg_");
    let created = text::unix_seconds();
    let item_status = if cut { "incomplete" } else { "completed" };

    let message = |status: &str, text: Option<&str>| {
        let content = match text {
            Some(t) => {
                json!([{"type": "output_text", "text": t, "annotations": [], "logprobs": []}])
            }
            None => json!([]),
        };
        json!({"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content})
    };
    let response = |status: &str, output: Value, usage: Value| {
        json!({
            "id": response_id,
            "object": "response",
            "created_at": created,
            "status": status,
            "background": false,
            "error": null,
            "incomplete_details": if status == "incomplete" { json!({"reason": "max_output_tokens"}) } else { Value::Null },
            "instructions": req.instructions.as_ref().map(|t| t.0.as_ref()),
            "max_output_tokens": limit,
            "metadata": {},
            "model": model,
            "output": output,
            "parallel_tool_calls": true,
            "previous_response_id": null,
            "reasoning": {"effort": null, "summary": null},
            "store": false,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": usage,
            "user": null,
        })
    };
    let usage = json!({
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": ctx.state.cached_tokens()},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    });
    let final_response = response(
        item_status,
        json!([message(item_status, Some(content))]),
        usage,
    );

    if req.stream != Some(true) {
        return api::json(&final_response);
    }
    let in_progress = response("in_progress", json!([]), Value::Null);
    let part =
        |t: &str| json!({"type": "output_text", "text": t, "annotations": [], "logprobs": []});
    let mut events = Events::sse(4096 + content.len() * 8);
    let mut seq = 0u64;
    let mut emit =
        |events: &mut Events, kind: &str, mut data: Value| -> Result<(), serde_json::Error> {
            if let Value::Object(map) = &mut data {
                map.insert("type".into(), Value::from(kind));
                map.insert("sequence_number".into(), Value::from(seq));
            }
            seq += 1;
            events.event(Some(kind), &data)
        };
    let result = (|| -> Result<(), serde_json::Error> {
        emit(
            &mut events,
            "response.created",
            json!({"response": in_progress}),
        )?;
        emit(
            &mut events,
            "response.in_progress",
            json!({"response": in_progress}),
        )?;
        emit(
            &mut events,
            "response.output_item.added",
            json!({"output_index": 0, "item": message("in_progress", None)}),
        )?;
        emit(
            &mut events,
            "response.content_part.added",
            json!({"item_id": item_id, "output_index": 0, "content_index": 0, "part": part("")}),
        )?;
        for piece in Pieces::new(content) {
            emit(
                &mut events,
                "response.output_text.delta",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0, "delta": piece, "logprobs": []}),
            )?;
        }
        emit(
            &mut events,
            "response.output_text.done",
            json!({"item_id": item_id, "output_index": 0, "content_index": 0, "text": content, "logprobs": []}),
        )?;
        emit(
            &mut events,
            "response.content_part.done",
            json!({"item_id": item_id, "output_index": 0, "content_index": 0, "part": part(content)}),
        )?;
        emit(
            &mut events,
            "response.output_item.done",
            json!({"output_index": 0, "item": message(item_status, Some(content))}),
        )?;
        let last = if cut {
            "response.incomplete"
        } else {
            "response.completed"
        };
        emit(&mut events, last, json!({"response": final_response}))
    })();
    match result {
        Ok(()) => Reply::Stream(events),
        Err(e) => e.into(),
    }
}
