//! Anthropic wire format: `POST /v1/messages` (JSON and SSE) and
//! `POST /v1/messages/count_tokens`, in the shapes the official `anthropic`
//! SDK parses.

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::api::{self, ApiError, Ctx, Flavor, Reply};
use super::control::Shared;
use super::sse::Events;
use super::text::{self, Pieces, Text};

pub(super) async fn messages(State(state): State<Arc<Shared>>, request: Request) -> Response {
    api::handle(state, Flavor::Anthropic, request, messages_reply).await
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
    content: Vec<TextBlock<'a>>,
    stop_reason: Option<&'static str>,
    stop_sequence: Option<()>,
    usage: Usage,
}

#[derive(Serialize)]
struct TextBlock<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
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
    fn new(input: u64, output: u64) -> Self {
        Usage {
            input_tokens: input,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
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

fn messages_reply(ctx: &Ctx<'_>) -> Reply {
    let req = match parse(ctx) {
        Ok(r) => r,
        Err(e) => return e.into(),
    };
    let model = req.model.as_deref().unwrap_or_default();
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
    let full = text::reply(last_user);
    let (content, output, cut) = text::generate(&full, limit);
    let stop_reason = if cut { "max_tokens" } else { "end_turn" };
    let id = ctx.state.id("msg_");

    if req.stream != Some(true) {
        return api::json(&MessageObject {
            id: &id,
            kind: "message",
            role: "assistant",
            model,
            content: vec![TextBlock {
                kind: "text",
                text: content,
            }],
            stop_reason: Some(stop_reason),
            stop_sequence: None,
            usage: Usage::new(input, output),
        });
    }
    match stream(&id, model, content, stop_reason, input, output) {
        Ok(events) => Reply::Stream(events),
        Err(e) => e.into(),
    }
}

/// The event sequence of a streamed message, as the real API sends it.
fn stream(
    id: &str,
    model: &str,
    content: &str,
    stop_reason: &'static str,
    input: u64,
    output: u64,
) -> Result<Events, serde_json::Error> {
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
            usage: Usage::new(input, 1),
        },
    )?;
    buf.extend_from_slice(b"}\n\n");
    events.end();
    events.raw(
        b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    );
    events.raw(b"event: ping\ndata: {\"type\": \"ping\"}\n\n");
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
    buf.extend_from_slice(b"\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":");
    buf.extend_from_slice(output.to_string().as_bytes());
    buf.extend_from_slice(b"}}\n\n");
    events.end();
    events.raw(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    Ok(events)
}
