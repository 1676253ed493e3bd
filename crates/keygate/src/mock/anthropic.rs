//! Anthropic wire format: `POST /v1/messages` (JSON and SSE) and
//! `POST /v1/messages/count_tokens`, in the shapes the official `anthropic`
//! SDK parses.

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::api::{self, ApiError, Ctx, Flavor, Reply};
use super::control::Shared;
use super::sse::Events;
use super::text::{self, Answer, Ask, Finish, Pieces, Text};

/// `anthropic_version` a Vertex AI request body must carry.
pub(super) const VERTEX_VERSION: &str = "vertex-2023-10-16";

pub(super) async fn messages(State(state): State<Arc<Shared>>, request: Request) -> Response {
    api::handle(state, Flavor::Anthropic, request, |ctx| {
        messages_reply(ctx, None, false)
    })
    .await
}

pub(super) async fn count_tokens(State(state): State<Arc<Shared>>, request: Request) -> Response {
    api::handle(state, Flavor::Anthropic, request, |ctx| {
        let req = match parse(ctx) {
            Ok(r) => r,
            Err(e) => return e.into(),
        };
        match prompt_of(&req) {
            Ok((input_tokens, _)) => api::json(&CountTokens { input_tokens }),
            Err(e) => e.into(),
        }
    })
    .await
}

#[derive(Deserialize)]
struct MessagesRequest<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    messages: Option<Vec<InputMessage<'a>>>,
    #[serde(borrow, default)]
    system: Option<Text<'a>>,
    #[serde(default)]
    max_tokens: Option<i64>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    tools: Option<Value>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    stop_sequences: Option<Value>,
    #[serde(borrow, default)]
    anthropic_version: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct InputMessage<'a> {
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<Text<'a>>,
}

#[derive(Serialize)]
struct CountTokens {
    input_tokens: u64,
}

#[derive(Serialize)]
struct MessageObject<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<Block<'a>>,
    stop_reason: Option<&'static str>,
    stop_sequence: Option<&'a str>,
    usage: Usage,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Value,
    },
}

/// The tool the request makes the model call: `tool_choice` of type
/// `tool` names it, else the first offered; none for type `none`.
fn chosen_tool(tools: Option<&Value>, choice: Option<&Value>) -> Option<String> {
    let first = tools?
        .as_array()?
        .iter()
        .find_map(|t| t.get("name").and_then(Value::as_str))?;
    let kind = choice.and_then(|c| c.get("type")).and_then(Value::as_str);
    let forced = choice.and_then(|c| c.get("name")).and_then(Value::as_str);
    match kind {
        Some("none") => None,
        Some("tool") => Some(forced.unwrap_or(first).to_owned()),
        _ => Some(first.to_owned()),
    }
}

#[derive(Serialize)]
struct Usage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
    service_tier: &'static str,
}

impl Usage {
    fn new(input: u64, output: u64, cached: u64) -> Self {
        Usage {
            input_tokens: input,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: cached,
            output_tokens: output,
            service_tier: "standard",
        }
    }
}

fn parse<'a>(ctx: &Ctx<'a>) -> Result<MessagesRequest<'a>, ApiError> {
    let req: MessagesRequest<'a> =
        serde_json::from_slice(ctx.body).map_err(|e| ApiError::bad_json(Flavor::Anthropic, &e))?;
    if req.model.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::invalid("model: Field required"));
    }
    Ok(req)
}

/// A Vertex AI body: no `model` (the path names it), and
/// `anthropic_version` = [`VERTEX_VERSION`].
fn parse_vertex<'a>(ctx: &Ctx<'a>) -> Result<MessagesRequest<'a>, ApiError> {
    let req: MessagesRequest<'a> =
        serde_json::from_slice(ctx.body).map_err(|e| ApiError::bad_json(Flavor::Anthropic, &e))?;
    if req.model.is_some() {
        return Err(ApiError::invalid("model: Extra inputs are not permitted"));
    }
    match req.anthropic_version.as_deref() {
        Some(VERTEX_VERSION) => Ok(req),
        None => Err(ApiError::invalid("anthropic_version: Field required")),
        Some(other) => Err(ApiError::invalid(format!(
            "anthropic_version: Input should be '{VERTEX_VERSION}', got '{other}'"
        ))),
    }
}

/// Input tokens (system prompt and every message) and the last user text.
fn prompt_of<'r>(req: &'r MessagesRequest<'_>) -> Result<(u64, &'r str), ApiError> {
    let Some(messages) = &req.messages else {
        return Err(ApiError::invalid("messages: Field required"));
    };
    if messages.is_empty() {
        return Err(ApiError::invalid(
            "messages: at least one message is required",
        ));
    }
    let mut input = req.system.as_ref().map_or(0, |s| text::words(&s.0));
    let mut last_user: &str = "";
    for m in messages {
        let Some(content) = &m.content else { continue };
        input += text::words(&content.0);
        if m.role.as_deref() == Some("user") {
            last_user = &content.0;
        }
    }
    Ok((input.max(1), last_user))
}

/// A Messages reply; `vertex_model` (the model of a Vertex AI path) switches
/// to Vertex's body rules, and `force_stream` streams (`:streamRawPredict`).
pub(super) fn messages_reply(
    ctx: &Ctx<'_>,
    vertex_model: Option<&str>,
    force_stream: bool,
) -> Reply {
    let parsed = match vertex_model {
        Some(_) => parse_vertex(ctx),
        None => parse(ctx),
    };
    let req = match parsed {
        Ok(r) => r,
        Err(e) => return e.into(),
    };
    let model = vertex_model.unwrap_or(req.model.as_deref().unwrap_or_default());
    let limit = match req.max_tokens {
        None => return ApiError::invalid("max_tokens: Field required").into(),
        Some(n) if n < 1 => {
            return ApiError::invalid(format!(
                "max_tokens: Input should be greater than or equal to 1, got {n}"
            ))
            .into()
        }
        Some(n) => u64::try_from(n).ok(),
    };
    let (input, last_user) = match prompt_of(&req) {
        Ok(p) => p,
        Err(e) => return e.into(),
    };
    let mut ask = Ask {
        last_user,
        max: limit,
        stop: text::stop_list(req.stop_sequences.as_ref()),
        tool: chosen_tool(req.tools.as_ref(), req.tool_choice.as_ref()),
        ..Ask::default()
    };
    let messages = req.messages.as_deref().unwrap_or_default();
    if let Some(m) = messages
        .iter()
        .rev()
        .find(|m| m.role.as_deref() == Some("user"))
    {
        ask.images = m.content.as_ref().map_or(0, |c| c.1.images);
    }
    ask.tool_result = messages
        .last()
        .and_then(|m| m.content.as_ref())
        .and_then(|c| c.1.tool_result.clone());
    let answer = text::answer(&ask);
    let output = answer.tokens();
    let finish = answer.finish();
    let stop_reason = match &finish {
        Finish::End => "end_turn",
        Finish::Length => "max_tokens",
        Finish::Stop(_) => "stop_sequence",
        Finish::Tool => "tool_use",
    };
    let stop_sequence = match &finish {
        Finish::Stop(s) => Some(s.as_str()),
        _ => None,
    };
    let tool_id = format!("toolu_mock_{}", ctx.state.counter());
    let block = match &answer {
        Answer::Text { text, .. } => Block::Text { text },
        Answer::Tool { name, args, .. } => Block::ToolUse {
            id: &tool_id,
            name,
            input: serde_json::from_str(args).unwrap_or(Value::Null),
        },
    };
    let cached = ctx.state.cached_tokens();
    let id = ctx.state.id("msg_");

    if req.stream != Some(true) && !force_stream {
        return api::json(&MessageObject {
            id: &id,
            kind: "message",
            role: "assistant",
            model,
            content: vec![block],
            stop_reason: Some(stop_reason),
            stop_sequence,
            usage: Usage::new(input, output, cached),
        });
    }
    let usage = Usage::new(input, 1, cached);
    match stream(
        &id,
        model,
        &answer,
        &tool_id,
        (stop_reason, stop_sequence),
        usage,
        output,
    ) {
        Ok(events) => Reply::Stream(events),
        Err(e) => e.into(),
    }
}

/// The event sequence of a streamed message, as the real API sends it.
fn stream(
    id: &str,
    model: &str,
    answer: &Answer,
    tool_id: &str,
    (stop_reason, stop_sequence): (&'static str, Option<&str>),
    start_usage: Usage,
    output: u64,
) -> Result<Events, serde_json::Error> {
    let content = match answer {
        Answer::Text { text, .. } => text.as_str(),
        Answer::Tool { .. } => "",
    };
    let mut events = Events::sse(1024 + content.len() * 6);
    // Written by hand so that `type` comes first, as in the real stream.
    let buf = events.buf();
    buf.extend_from_slice(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":");
    serde_json::to_writer(
        &mut *buf,
        &MessageObject {
            id,
            kind: "message",
            role: "assistant",
            model,
            content: Vec::new(),
            stop_reason: None,
            stop_sequence: None,
            // The real API reports one output token at the start.
            usage: start_usage,
        },
    )?;
    buf.extend_from_slice(b"}\n\n");
    events.end();
    if let Answer::Tool { name, args, .. } = answer {
        events.event(
            Some("content_block_start"),
            &json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "tool_use", "id": tool_id, "name": name, "input": {}}}),
        )?;
        events.raw(b"event: ping\ndata: {\"type\": \"ping\"}\n\n");
        for fragment in text::halves(args) {
            events.event(
                Some("content_block_delta"),
                &json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": fragment}}),
            )?;
        }
    } else {
        events.raw(
            b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        );
        events.raw(b"event: ping\ndata: {\"type\": \"ping\"}\n\n");
    }
    for piece in Pieces::new(content) {
        let buf = events.buf();
        buf.extend_from_slice(
            b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":",
        );
        serde_json::to_writer(&mut *buf, piece)?;
        buf.extend_from_slice(b"}}\n\n");
        events.end();
    }
    events
        .raw(b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n");
    let buf = events.buf();
    buf.extend_from_slice(
        b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"",
    );
    buf.extend_from_slice(stop_reason.as_bytes());
    buf.extend_from_slice(b"\",\"stop_sequence\":");
    serde_json::to_writer(&mut *buf, &stop_sequence)?;
    buf.extend_from_slice(b"},\"usage\":{\"output_tokens\":");
    buf.extend_from_slice(output.to_string().as_bytes());
    buf.extend_from_slice(b"}}\n\n");
    events.end();
    events.raw(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    Ok(events)
}
